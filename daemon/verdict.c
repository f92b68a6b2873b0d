#include "verdict.h"

#include "timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Static_assert(VERDICT_RULE_COUNT <= EPISODE_MAX_RULES, "episode_releases.by_rule too small");

static const char *const rule_codes[VERDICT_RULE_COUNT] = {
	[VERDICT_O1_POD_DELETED] = "O1_pod_deleted",
	[VERDICT_O2_POD_REPLACED] = "O2_pod_replaced",
	[VERDICT_O2_POD_CREATED_AFTER_GRANT] = "O2_pod_created_after_grant",
	[VERDICT_O3_POD_FINISHED] = "O3_pod_finished",
	[VERDICT_O4_CONTAINER_RESTARTED] = "O4_container_restarted",
	[VERDICT_O4_CONTAINER_NOT_RUNNING] = "O4_container_not_running",
	[VERDICT_O4_NO_LIVE_CONTAINER] = "O4_no_live_container",
	[VERDICT_O5_UNRESOLVED_TIMEOUT] = "O5_unresolved_timeout",
	[VERDICT_HELD_CONTAINER_RUNNING] = "held_container_running",
	[VERDICT_HELD_OTHER_CONTAINER_RUNNING] = "held_other_container_running",
	[VERDICT_HELD_TOO_YOUNG] = "held_too_young",
	[VERDICT_HELD_KUBERNETES_UNKNOWN] = "held_kubernetes_unknown",
	[VERDICT_UNRESOLVED_LOCKEDBY] = "unresolved_lockedby",
	[VERDICT_HELD_SESSION_ALIVE] = "held_session_alive",
	[VERDICT_HELD_SESSION_UNKNOWN] = "held_session_unknown",
	[VERDICT_UNRESOLVED_NOT_FOUND] = "unresolved_not_found",
	[VERDICT_UNRESOLVED_AMBIGUOUS] = "unresolved_ambiguous",
};

const char *verdict_rule_code(enum verdict_rule r)
{
	return r < VERDICT_RULE_COUNT ? rule_codes[r] : "invalid";
}

const char *verdict_state_name(enum verdict_state s)
{
	return s == VERDICT_ORPHANED ? "orphaned" : s == VERDICT_UNRESOLVED ? "unresolved" : "held";
}

static void set(struct verdict *v, enum verdict_state st, enum verdict_rule r, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

static void set(struct verdict *v, enum verdict_state st, enum verdict_rule r, const char *fmt,
		...)
{
	va_list ap;
	int n;

	v->state = st;
	v->rule = r;
	n = snprintf(v->text, sizeof(v->text), "%s: ", verdict_state_name(st));
	va_start(ap, fmt);
	vsnprintf(v->text + n, sizeof(v->text) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Times shown to people: "10:05:02Z" is enough within one episode. */
static const char *hms(int64_t us, char *buf, size_t cap)
{
	char full[40];

	timeutil_format_rfc3339(us, full, sizeof(full));
	/* full is YYYY-MM-DDTHH:MM:SS.mmmZ; keep HH:MM:SSZ. */
	snprintf(buf, cap, "%.8sZ", full + 11);
	return buf;
}

static bool is_own(const struct verdict_settings *s, const struct k8s_pod *p,
		   const struct k8s_container *c)
{
	return s->own_ns != NULL && s->own_pod != NULL && s->own_container != NULL &&
	       strcmp(p->ns, s->own_ns) == 0 && strcmp(p->name, s->own_pod) == 0 &&
	       strcmp(c->name, s->own_container) == 0;
}

static const struct k8s_container *find_container(const struct k8s_pod *p, const char *name)
{
	for (size_t i = 0; i < p->n_containers; i++)
		if (strcmp(p->containers[i].name, name) == 0)
			return &p->containers[i];
	return NULL;
}

/* A container that has run at least once: it could have taken the lock. */
static bool has_run(const struct k8s_container *c)
{
	return c->restart_count > 0 || c->last_terminated || c->state == K8S_CSTATE_TERMINATED ||
	       c->state == K8S_CSTATE_RUNNING;
}

/*
 * Rule O4 for a known holder container. Returns true when it decided;
 * false when the container cannot be the holder (never ran, or absent)
 * and the unknown-container rule must decide instead.
 */
static bool holder_container_rule(const struct k8s_pod *p, const struct k8s_container *c,
				  int64_t limit, int64_t grant_before, struct verdict *v)
{
	char t1[16], t2[16];

	if (c == NULL || !has_run(c))
		return false;
	if (c->state == K8S_CSTATE_RUNNING) {
		/* A missing or unparseable start (0) is never evidence of a restart. */
		if (c->started_at == 0) {
			set(v, VERDICT_HELD, VERDICT_HELD_CONTAINER_RUNNING,
			    "container %s of %s/%s running, start time unknown: counted as before "
			    "the grant (%s)",
			    c->name, p->ns, p->name, hms(grant_before, t2, sizeof(t2)));
		} else if (c->started_at > limit) {
			v->died_at_us = c->last_finished_at ? c->last_finished_at : c->started_at;
			set(v, VERDICT_ORPHANED, VERDICT_O4_CONTAINER_RESTARTED,
			    "container %s of %s/%s restarted at %s, after the grant (%s); %d restart%s",
			    c->name, p->ns, p->name, hms(c->started_at, t1, sizeof(t1)),
			    hms(grant_before, t2, sizeof(t2)), c->restart_count,
			    c->restart_count == 1 ? "" : "s");
		} else {
			set(v, VERDICT_HELD, VERDICT_HELD_CONTAINER_RUNNING,
			    "container %s of %s/%s running since %s, before the grant (%s)", c->name,
			    p->ns, p->name, hms(c->started_at, t1, sizeof(t1)),
			    hms(grant_before, t2, sizeof(t2)));
		}
		return true;
	}
	v->died_at_us = c->finished_at ? c->finished_at : c->last_finished_at;
	set(v, VERDICT_ORPHANED, VERDICT_O4_CONTAINER_NOT_RUNNING,
	    "container %s of %s/%s is not running (%s%s%s) and has run before; %d restart%s",
	    c->name, p->ns, p->name, c->state == K8S_CSTATE_WAITING ? "waiting" : "terminated",
	    c->reason[0] ? ": " : "", c->reason, c->restart_count, c->restart_count == 1 ? "" : "s");
	return true;
}

/* The latest termination the pod records (the arbiter's own container aside). */
static int64_t last_finish(const struct k8s_pod *p, const struct verdict_settings *s)
{
	int64_t t = 0;

	for (size_t i = 0; i < p->n_containers; i++) {
		const struct k8s_container *c = &p->containers[i];
		if (is_own(s, p, c))
			continue;
		if (c->finished_at > t)
			t = c->finished_at;
		if (c->last_finished_at > t)
			t = c->last_finished_at;
	}
	return t;
}

/*
 * Rule O4 with the holder container unknown: the lock stays while any
 * container (init containers included, the arbiter's own excluded) runs an
 * instance that started at or before the grant.
 */
static void any_container_rule(const struct k8s_pod *p, const struct verdict_settings *s,
			       int64_t limit, int64_t grant_before, struct verdict *v)
{
	char t1[16], t2[16];

	for (size_t i = 0; i < p->n_containers; i++) {
		const struct k8s_container *c = &p->containers[i];

		if (is_own(s, p, c) || c->state != K8S_CSTATE_RUNNING || c->started_at > limit)
			continue;
		/*
		 * A running container without a usable start time counts as
		 * running since before the grant: missing evidence is not
		 * evidence of death (DESIGN.md section 6).
		 */
		if (c->started_at == 0) {
			set(v, VERDICT_HELD, VERDICT_HELD_OTHER_CONTAINER_RUNNING,
			    "%scontainer %s of %s/%s running, start time unknown: counted as before "
			    "the grant (%s); holder container unknown",
			    c->init ? "init " : "", c->name, p->ns, p->name,
			    hms(grant_before, t2, sizeof(t2)));
			return;
		}
		set(v, VERDICT_HELD, VERDICT_HELD_OTHER_CONTAINER_RUNNING,
		    "%scontainer %s of %s/%s running since %s, before the grant (%s); holder container unknown",
		    c->init ? "init " : "", c->name, p->ns, p->name,
		    hms(c->started_at, t1, sizeof(t1)), hms(grant_before, t2, sizeof(t2)));
		return;
	}
	v->died_at_us = last_finish(p, s);
	set(v, VERDICT_ORPHANED, VERDICT_O4_NO_LIVE_CONTAINER,
	    "no container of %s/%s has run since before the grant (%s)", p->ns, p->name,
	    hms(grant_before, t2, sizeof(t2)));
}

static void decide_pod(const struct episode *e, const struct verdict_lookup *l,
		       const struct verdict_settings *s, struct verdict *v)
{
	const struct k8s_pod *p = l->pod;
	int64_t grant_before = episode_grant_before(e, s->trust_zone, s->clock_skew_us);
	int64_t limit = grant_before + s->clock_skew_us;
	const char *name;
	char t1[16], t2[16], age[32];

	/* O2: another pod under the same name. */
	if (e->holder_uid[0] != '\0' && strcmp(e->holder_uid, p->uid) != 0) {
		v->died_at_us = p->created;
		set(v, VERDICT_ORPHANED, VERDICT_O2_POD_REPLACED,
		    "pod %s/%s was replaced: uid %.8s seen during the lock, now %.8s", p->ns,
		    p->name, e->holder_uid, p->uid);
		return;
	}
	if (p->created > limit) {
		v->died_at_us = p->created;
		set(v, VERDICT_ORPHANED, VERDICT_O2_POD_CREATED_AFTER_GRANT,
		    "pod %s/%s was created at %s, after the grant (%s)", p->ns, p->name,
		    hms(p->created, t1, sizeof(t1)), hms(grant_before, t2, sizeof(t2)));
		return;
	}
	/* Kubelet status lags: container facts count only from an old enough snapshot. */
	if (l->taken_us - e->first_seen_us < s->min_lock_age_us) {
		timeutil_format_duration(s->min_lock_age_us, age, sizeof(age));
		set(v, VERDICT_HELD, VERDICT_HELD_TOO_YOUNG,
		    "pod %s/%s exists; container rules wait until the lock is %s old (--min-lock-age)",
		    p->ns, p->name, age);
		return;
	}
	if (strcmp(p->phase, "Succeeded") == 0 || strcmp(p->phase, "Failed") == 0) {
		v->died_at_us = last_finish(p, s);
		set(v, VERDICT_ORPHANED, VERDICT_O3_POD_FINISHED, "pod %s/%s finished (phase %s)",
		    p->ns, p->name, p->phase);
		return;
	}
	name = p->holder_container[0] != '\0' ? p->holder_container : s->holder_container;
	if (name != NULL &&
	    holder_container_rule(p, find_container(p, name), limit, grant_before, v))
		return;
	any_container_rule(p, s, limit, grant_before, v);
}

static void decide_unresolved(const struct episode *e, const struct verdict_settings *s,
			      int64_t mono_now_us, enum verdict_rule rule, const char *why,
			      struct verdict *v)
{
	int64_t age = mono_now_us - e->first_seen_mono_us;
	char a[32], d[32];

	if (s->release_unresolved_after_us > 0 && age >= s->release_unresolved_after_us) {
		timeutil_format_duration(age, a, sizeof(a));
		timeutil_format_duration(s->release_unresolved_after_us, d, sizeof(d));
		set(v, VERDICT_ORPHANED, VERDICT_O5_UNRESOLVED_TIMEOUT,
		    "holder unresolved for %s, past --release-unresolved-after %s (%s)", a, d, why);
		return;
	}
	set(v, VERDICT_UNRESOLVED, rule, "%s", why);
}

void verdict_decide(const struct episode *e, const struct verdict_lookup *l,
		    const struct verdict_settings *s, int64_t mono_now_us, struct verdict *v)
{
	const struct holder *h = &e->holder;
	char why[320];

	memset(v, 0, sizeof(*v));
	if (h->kind == HOLDER_UNRESOLVABLE || l->skipped) {
		snprintf(why, sizeof(why), "LOCKEDBY names no pod (%s)",
			 l->skip_why != NULL ? l->skip_why
			 : h->why != NULL ? h->why : "no lookup possible");
		decide_unresolved(e, s, mono_now_us, VERDICT_UNRESOLVED_LOCKEDBY, why, v);
		return;
	}
	if (l->ambiguous) {
		snprintf(why, sizeof(why), "several pods could hold it and the address confirms none: %s",
			 l->candidates != NULL ? l->candidates : "?");
		decide_unresolved(e, s, mono_now_us, VERDICT_UNRESOLVED_AMBIGUOUS, why, v);
		return;
	}
	switch (l->outcome) {
	case K8S_POD:
		decide_pod(e, l, s, v);
		return;
	case K8S_GONE:
		/*
		 * A NAMESPACE:POD holder names its pod exactly. A HOST holder
		 * is only known to be a pod once seen alive; a name that never
		 * existed may just not be a pod name at all.
		 */
		if (h->kind == HOLDER_POD || e->holder_seen_alive) {
			v->died_at_us = e->holder_deleting_us;
			set(v, VERDICT_ORPHANED, VERDICT_O1_POD_DELETED,
			    "pod %s/%s is gone (404 NotFound)%s", l->ns, l->name,
			    h->kind == HOLDER_POD ? "" : " after it was seen alive during the lock");
			return;
		}
		snprintf(why, sizeof(why), "no pod named by host %s was found (never seen alive)",
			 h->host);
		decide_unresolved(e, s, mono_now_us, VERDICT_UNRESOLVED_NOT_FOUND, why, v);
		return;
	default: {
		/*
		 * For 401 and 403 the API's own message names the missing
		 * permission; other messages vary from cycle to cycle (timings)
		 * and would make every cycle a new state.
		 */
		bool denied = l->res != NULL && (l->res->http_code == 401 || l->res->http_code == 403) &&
			      l->res->message[0] != '\0';
		bool several = l->candidates != NULL && strchr(l->candidates, ';') != NULL;
		set(v, VERDICT_HELD, VERDICT_HELD_KUBERNETES_UNKNOWN,
		    "Kubernetes API gave no answer for pod %s/%s (%ld %s)%s%s%s%s",
		    l->ns != NULL ? l->ns : "?", l->name != NULL ? l->name : "?",
		    l->res != NULL ? l->res->http_code : 0L,
		    l->res != NULL && l->res->reason[0] ? l->res->reason : "no response",
		    denied ? ": " : "", denied ? l->res->message : "",
		    several ? "; candidates: " : "", several ? l->candidates : "");
		return;
	}
	}
}

void verdict_learn(struct episode *e, const struct verdict_lookup *l)
{
	const struct k8s_pod *p = l->pod;

	if (l->outcome != K8S_POD || p == NULL)
		return;
	/* The first pod seen for this episode is the one O2 compares against. */
	if (e->holder_uid[0] == '\0') {
		snprintf(e->holder_uid, sizeof(e->holder_uid), "%s", p->uid);
		snprintf(e->holder_ns, sizeof(e->holder_ns), "%s", p->ns);
		snprintf(e->holder_pod, sizeof(e->holder_pod), "%s", p->name);
	}
	if (strcmp(p->phase, "Succeeded") != 0 && strcmp(p->phase, "Failed") != 0)
		e->holder_seen_alive = true;
	if (strcmp(p->uid, e->holder_uid) != 0)
		return;
	if (p->deleting != 0)
		e->holder_deleting_us = p->deleting;
	/* Its addresses, for the session guard: every one it had while seen. */
	for (size_t i = 0; i < p->n_pod_ips; i++)
		episode_add_addr(e, p->pod_ips[i]);
}

enum verdict_action verdict_act(const struct verdict *v, const struct verdict_gate *g)
{
	if (v->state != VERDICT_ORPHANED)
		return VERDICT_KEEP;
	if (!g->identity_ok)
		return VERDICT_NO_IDENTITY;
	if (!g->leader)
		return VERDICT_NOT_LEADER;
	return g->dry_run ? VERDICT_WOULD_RELEASE : VERDICT_RELEASE;
}
