/*
 * act.c - the one place the arbiter acts on a verdict (DESIGN.md section 6):
 * the compare-and-set release and its Event, and the session guard, which
 * turns an orphaned verdict into a held one while the dead holder's
 * database sessions are open and, with --terminate-orphaned-sessions, ends
 * them. The decisions themselves are pure (verdict.c, chooser.c, guard.c);
 * the loop that gathers the facts is arbiter.c.
 */
#include "act.h"

#include "guard.h"
#include "log.h"
#include "text.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void post_event(struct arbiter *a, const struct arbiter_db *d,
		       const struct episode_table *t, const struct episode *e,
		       const struct verdict_lookup *l, const struct verdict *v)
{
	char msg[1024], by[300];
	struct k8s_result res;
	struct k8s_event ev = {
		.ns = l->ns,
		.pod_name = l->name,
		.pod_uid = e->holder_uid[0] ? e->holder_uid : NULL,
		.reason = "LiquibaseLockReleased",
		.type = "Warning",
		.message = msg,
		.component = "lock-arbiter",
		.reporting_instance = a->cfg->pod_name,
	};

	if (!a->cfg->events || a->k8s == NULL || l->ns == NULL || l->name == NULL)
		return;
	text_quote(e->lockedby, by, sizeof(by));
	snprintf(msg, sizeof(msg), "Released Liquibase lock %s.%s on %s held by %s: rule %s: %s",
		 t->schema, t->table, d->label, by, verdict_rule_code(v->rule), v->text);
	if (k8s_post_event(a->k8s, &ev, &res) == 0) {
		a->stats.events_posted++;
	} else {
		/* An Event is a courtesy: never retried, never in the way of a release. */
		a->stats.events_failed++;
		char code[16];
		snprintf(code, sizeof(code), "%ld", res.http_code);
		log_warn("event not posted", "namespace", l->ns, "pod", l->name, "code", code,
			 "reason", res.reason, NULL);
	}
}

void act_release(struct arbiter *a, struct arbiter_db *d, size_t i,
		    const struct verdict_lookup *l, const struct verdict *v)
{
	struct episode_table *t = &d->state[i];
	struct episode *e = t->current;
	char err[256];
	int rc = db_release(d->db, &d->tables[i], e->lockedby, e->lockgranted, err, sizeof(err));
	const char *by = e->lockedby != NULL ? e->lockedby : "";

	if (rc == 1) {
		struct episode_releases *r = &t->releases;
		int64_t now = timeutil_wall_us();

		/*
		 * Done with this lock before anything below waits (the Event):
		 * its holder's later events (a replacement pod under the same
		 * name) must not judge it again before the next poll sees the
		 * row free.
		 */
		e->judgement.released = true;
		watches_forget(&a->watches, e->serial);

		r->by_rule[v->rule < EPISODE_MAX_RULES ? v->rule : 0]++;
		r->last_us = now;
		r->last_rule = (int)v->rule;
		free(r->last_lockedby);
		free(r->last_explanation);
		r->last_lockedby = e->lockedby != NULL ? strdup(e->lockedby) : NULL;
		r->last_explanation = strdup(v->text);
		if (v->died_at_us > 0)
			histogram_observe(&a->stats.release_delay,
					  (double)(now - v->died_at_us) / TIMEUTIL_S);
		log_warn("lock released", "database", d->label, "schema", t->schema, "table",
			 t->table, "lockedby", by, "rule", verdict_rule_code(v->rule), "evidence",
			 v->text, NULL);
		post_event(a, d, t, e, l, v);
	} else if (rc == 0) {
		/* The lock moved on between our read and the UPDATE: not an error. */
		d->release_conflicts++;
		log_info("release skipped: the lock moved on", "database", d->label, "schema",
			 t->schema, "table", t->table, "lockedby", by, NULL);
	} else if (rc == -ENOENT) {
		/* Dropped under the lock since the poll: nothing left to release. */
		log_info("release skipped: the lock table is gone", "database", d->label, "schema",
			 t->schema, "table", t->table, NULL);
	} else {
		d->release_errors++;
		if (!e->judgement.release_failed_logged)
			log_error("release failed", "database", d->label, "schema", t->schema,
				  "table", t->table, "error", err, NULL);
		e->judgement.release_failed_logged = true;
	}
}

/* Lists the pods that have the holder's addresses now; false when any listing failed. */
static bool address_owners(struct arbiter *a, char *const *addrs, size_t n_addrs,
			   struct k8s_pod **pods, size_t *n_pods)
{
	const struct cfg_list *ns = &a->cfg->holder_namespaces;

	*pods = NULL;
	*n_pods = 0;
	for (size_t i = 0; i < n_addrs; i++) {
		for (size_t k = 0; k < ns->n; k++) {
			struct k8s_pod *found = NULL, *all;
			struct k8s_result res;
			size_t n = 0;

			if (k8s_list_pods_by_ip(a->k8s, ns->items[k], addrs[i], &found, &n, &res) !=
			    K8S_POD)
				return false;
			all = realloc(*pods, (*n_pods + n + 1) * sizeof(**pods));
			if (all == NULL) {
				k8s_pods_free(found, n);
				return false;
			}
			*pods = all;
			if (n > 0)
				memcpy(*pods + *n_pods, found, n * sizeof(*found));
			*n_pods += n;
			free(found); /* the pods moved into *pods */
		}
	}
	return true;
}

/*
 * Ends the blocking sessions that can be placed before every current owner
 * of their address (--terminate-orphaned-sessions); the lock stays until
 * the next poll finds them gone.
 */
static void terminate_sessions(struct arbiter *a, struct arbiter_db *d, struct episode *e,
			       char *const *addrs, size_t n_addrs, const struct db_session *ss,
			       size_t n, int64_t death_us)
{
	struct k8s_pod *pods = NULL;
	struct guard_owner *owners = NULL;
	size_t n_pods = 0, n_owners = 0;
	bool known = a->k8s != NULL && address_owners(a, addrs, n_addrs, &pods, &n_pods);

	for (size_t p = 0; known && p < n_pods; p++) {
		struct guard_owner *o = realloc(owners, (n_owners + pods[p].n_pod_ips + 1) *
							    sizeof(*owners));
		if (o == NULL) {
			known = false;
			break;
		}
		owners = o;
		for (size_t k = 0; k < pods[p].n_pod_ips; k++)
			owners[n_owners++] = (struct guard_owner){pods[p].pod_ips[k], pods[p].created};
	}
	for (size_t i = 0; i < n; i++) {
		char pid[24], err[256];
		int rc;

		if (!guard_terminable(&ss[i], death_us, a->cfg->clock_skew_us, owners, n_owners,
				      known))
			continue;
		/*
		 * A session ended moments ago may not have exited by the next
		 * verdict (a watch event, the poll): end it, and count it, once.
		 */
		bool again = false;
		for (size_t k = 0; k < e->n_terminated && !again; k++)
			again = e->terminated[k] == ss[i].pid;
		if (again)
			continue;
		snprintf(pid, sizeof(pid), "%lld", (long long)ss[i].pid);
		rc = db_terminate_session(d->db, ss[i].pid, err, sizeof(err));
		if (rc == 1) {
			d->sessions_terminated++;
			if (e->n_terminated < sizeof(e->terminated) / sizeof(e->terminated[0]))
				e->terminated[e->n_terminated++] = ss[i].pid;
			log_warn("holder session terminated", "database", d->label, "pid", pid,
				 "client_addr", ss[i].addr, "state", ss[i].state, "query", ss[i].query,
				 NULL);
		} else if (rc < 0) {
			log_error("holder session not terminated", "database", d->label, "pid", pid,
				  "error", err, NULL);
		}
	}
	free(owners);
	k8s_pods_free(pods, n_pods);
}

/*
 * The session guard (DESIGN.md section 6): an ORPHANED verdict becomes
 * HELD while a session from the holder's addresses that began before its
 * death is still open, or when the sessions cannot be listed.
 */
void act_session_guard(struct arbiter *a, struct arbiter_db *d, struct episode *e,
			  int64_t taken_db_us, bool may_act, struct verdict *v)
{
	const struct cfg *c = a->cfg;
	char *addrs[9], err[256];
	size_t n_addrs = 0;
	struct guard_view g = {.require = c->session_guard == CFG_GUARD_REQUIRE,
			       .skew_us = c->clock_skew_us,
			       .grant = arbiter_guard_grant(d)};
	struct db_session *ss = NULL;

	if (v->state != VERDICT_ORPHANED || c->session_guard == CFG_GUARD_OFF)
		return;
	/* The API's record of the death, else when the arbiter first saw it: never moved. */
	if (e->orphan_seen_us == 0)
		e->orphan_seen_us = taken_db_us;
	g.death_us = v->died_at_us > 0 ? v->died_at_us : e->orphan_seen_us;
	for (size_t i = 0; i < e->n_holder_addrs; i++)
		addrs[n_addrs++] = e->holder_addrs[i];
	if (e->holder.kind == HOLDER_HOST)
		addrs[n_addrs++] = e->holder.addr;
	/* A HOST holder's ADDR is always an IP (holder.h); NS:POD names none. */
	g.no_address = n_addrs == 0;
	if (db_sessions(d->db, addrs, n_addrs, &ss, &g.n, &g.visible, err, sizeof(err)) < 0) {
		g.list_error = err;
	} else {
		g.sessions = ss;
		d->guard_visible = g.visible;
		d->guard_checked = true;
		if (!g.visible && !d->guard_blind_logged) {
			d->guard_blind_logged = true;
			char msg[96];
			snprintf(msg, sizeof(msg),
				 "session guard cannot see other roles' sessions: grant %s", g.grant);
			log_warn(msg, "database", d->label, "session_guard",
				 g.require ? "require" : "on", NULL);
		}
	}
	if (guard_decide(&g, v) > 0 && may_act && c->terminate_orphaned_sessions)
		terminate_sessions(a, d, e, addrs, n_addrs, ss, g.n, g.death_us);
	free(ss);
}
