/*
 * judge.c - one held lock from the facts to an action: the holder looked up
 * (or taken from its watch), the pure verdict (verdict.c, chooser.c), the
 * session guard and the release (act.c), and the log line when the
 * verdict changes.
 */
#include "judge.h"

#include "act.h"
#include "log.h"
#include "resolve.h"
#include "verdict.h"

#include <stdio.h>
#include <string.h>

static void log_action(const struct arbiter_db *d, const struct episode_table *t,
		       const struct verdict *v, enum verdict_action act)
{
	const char *by = t->current->lockedby != NULL ? t->current->lockedby : "";
	const char *msg = act == VERDICT_WOULD_RELEASE ? "would release (dry run)"
			  : act == VERDICT_NOT_LEADER ? "orphaned; another arbiter is the leader"
						      : "orphaned; not released: cluster identity not confirmed";

	log_warn(msg, "database", d->label, "schema", t->schema, "table", t->table, "lockedby",
		 by, "rule", verdict_rule_code(v->rule), "evidence", v->text, NULL);
}

/*
 * A HOST holder that names no pod: which pod has its address, if any. Only
 * a hint for people (DESIGN.md: the address confirms, it never names), asked
 * once per episode.
 */
static void address_hint(struct arbiter *a, struct episode *e)
{
	struct episode_judgement *j = &e->judgement;
	const struct cfg_list *ns = &a->cfg->holder_namespaces;

	if (j->addr_listed || a->k8s == NULL || e->holder.kind != HOLDER_HOST)
		return;
	j->addr_listed = true;
	for (size_t i = 0; i < ns->n && j->addr_hint[0] == '\0'; i++) {
		struct k8s_pod *pods = NULL;
		struct k8s_result res;
		size_t n = 0;

		if (k8s_list_pods_by_ip(a->k8s, ns->items[i], e->holder.addr, &pods, &n, &res) !=
		    K8S_POD)
			continue;
		if (n > 0)
			snprintf(j->addr_hint, sizeof(j->addr_hint),
				 "; address %s belongs to pod %s/%s, which the host name does not name",
				 e->holder.addr, pods[0].ns, pods[0].name);
		k8s_pods_free(pods, n);
	}
}

/* Looks the holder up, decides, and acts on one held lock. */
void judge_lock(struct arbiter *a, struct arbiter_db *d, size_t i, int64_t taken_db_us,
		int64_t mono)
{
	const struct cfg *c = a->cfg;
	struct episode_table *t = &d->state[i];
	struct episode *e = t->current;
	struct episode_judgement *j = &e->judgement;
	struct verdict_settings vs = {
		.clock_skew_us = c->clock_skew_us,
		.min_lock_age_us = c->min_lock_age_us,
		.release_unresolved_after_us = c->release_unresolved_after_us,
		.holder_container = c->holder_container,
		.trust_zone = d->zone_trusted,
		.own_ns = c->pod_namespace,
		.own_pod = c->pod_name,
		.own_container = c->container_name,
	};
	struct verdict_gate gate = {
		/* One actor per database: on MySQL a --schema is a database of its own. */
		.leader = t->leader_known && c->leader_election == CFG_LEADER_ADVISORY ? t->leader
										   : d->leader,
		.identity_ok = a->identity_ok,
		.dry_run = c->dry_run,
	};
	struct resolve r;
	const struct verdict_lookup *l = &r.l;
	struct verdict v;
	enum verdict_action act;

	if (e->judgement.released)
		return; /* freed by this arbiter: the next poll sees the row free */
	const struct holder_watch *w = watches_usable(&a->watches, e->serial);
	bool from_watch = w != NULL;
	char w_ns[sizeof(w->ns)], w_name[sizeof(w->name)];

	e->rejudge = false;
	if (from_watch) {
		/* The watch keeps this snapshot current: no GET needed. */
		memset(&r, 0, sizeof(r));
		snprintf(w_ns, sizeof(w_ns), "%s", w->ns);
		snprintf(w_name, sizeof(w_name), "%s", w->name);
		r.l.taken_us = taken_db_us;
		r.l.res = &r.res;
		r.l.ns = w_ns;
		r.l.name = w_name;
		r.l.outcome = w->gone ? K8S_GONE : K8S_POD;
		r.l.pod = w->gone ? NULL : &w->pod;
		r.res.outcome = r.l.outcome;
		r.res.http_code = w->gone ? 404 : 200;
		snprintf(r.res.reason, sizeof(r.res.reason), "%s", w->gone ? "NotFound" : "");
	} else {
		resolve_holder(a->k8s, &c->holder_namespaces, e, taken_db_us, &r);
	}
	verdict_decide(e, l, &vs, mono, &v);
	verdict_learn(e, l);
	/*
	 * While the holder is not settled (several candidates, or the one
	 * found may be a later pod), any candidate seen alive may be the one
	 * whose session still works: the guard looks at all their addresses.
	 */
	if (e->holder.kind == HOLDER_HOST)
		for (size_t k = 0; k < r.n_alive_addrs; k++)
			episode_add_addr(e, r.alive_addrs[k]);
	/*
	 * From here on this task waits (the session guard, the release), and
	 * meanwhile the watch's snapshot may change or move: nothing below
	 * reads it. A change will have set e->rejudge.
	 */
	if (from_watch)
		r.l.pod = NULL;
	act_session_guard(a, d, e, taken_db_us,
		      c->mode != CFG_MODE_CHECK && verdict_act(&v, &gate) == VERDICT_RELEASE, &v);
	if (v.rule == VERDICT_UNRESOLVED_NOT_FOUND) {
		address_hint(a, e);
		strncat(v.text, j->addr_hint, sizeof(v.text) - strlen(v.text) - 1);
	}
	act = c->mode == CFG_MODE_CHECK ? VERDICT_KEEP : verdict_act(&v, &gate);
	if (v.rule == VERDICT_HELD_TOO_YOUNG)
		a->any_too_young = true;
	/* A new explanation is a new state too: another container keeps the lock now. */
	if (!j->judged || j->state != (int)v.state || j->rule != (int)v.rule ||
	    strcmp(j->text, v.text) != 0) {
		log_msg(v.state == VERDICT_HELD ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, "verdict",
			"database", d->label, "schema", t->schema, "table", t->table, "verdict",
			verdict_state_name(v.state), "reason", verdict_rule_code(v.rule), "explanation",
			v.text, NULL);
	}
	if (act != VERDICT_KEEP && act != VERDICT_RELEASE && (!j->judged || j->action != (int)act))
		log_action(d, t, &v, act);
	j->judged = true;
	j->state = (int)v.state;
	j->rule = (int)v.rule;
	j->action = (int)act;
	snprintf(j->text, sizeof(j->text), "%s", v.text);
	if (act == VERDICT_RELEASE)
		act_release(a, d, i, l, &v);
	/*
	 * A GET that showed the holder pod: watch it from that snapshot (it
	 * moves into the watch), so the next change is judged at once. Not
	 * for a lock just released: nothing is left to judge.
	 */
	if (!from_watch && !e->judgement.released && l->pod == &r.pod && e->holder_pod[0] != '\0' &&
	    strcmp(r.pod.ns, e->holder_ns) == 0 && strcmp(r.pod.name, e->holder_pod) == 0 &&
	    watches_follow(&a->watches, e->serial, e->holder_ns, e->holder_pod, &r.pod) != NULL)
		r.l.pod = NULL;
	resolve_done(&r);
}
