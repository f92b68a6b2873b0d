/*
 * The verdict engine, DESIGN.md section 6: one row per rule (O1 to O5,
 * HELD, UNRESOLVED) and one per case that must keep the lock. Each row
 * names the rule it exercises. Times are seconds from T0, the database
 * time at which the lock was first seen; unless a row says otherwise the
 * lock is not fresh, LOCKGRANTED is not trusted (grant_before = T0), the
 * skew is 5 s, --min-lock-age 10 s and the snapshot is 20 s old.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "verdict.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S TIMEUTIL_S
#define T0 (INT64_C(1795514700) * S) /* 2026-11-24T10:05:00Z */
#define NONE INT64_MIN               /* a time that is absent */
#define AT(sec) (T0 + (int64_t)(sec) * S)

enum { RUN = K8S_CSTATE_RUNNING, WAIT = K8S_CSTATE_WAITING, TERM = K8S_CSTATE_TERMINATED };

struct crow {
	const char *name;
	bool init;
	int state;
	int64_t started; /* seconds from T0, NONE when absent */
	int restarts;
	bool last_terminated;
	const char *reason;
};

struct row {
	const char *rule;
	const char *lockedby;
	/* the episode */
	bool seen_alive;
	const char *known_uid;
	bool zone_valid;
	int64_t zone_granted; /* seconds from T0 */
	bool trust_zone;
	/* the lookup */
	enum k8s_outcome outcome;
	long code;
	const char *reason;
	const char *message;
	int64_t taken; /* seconds from T0; 0 means the default 20 */
	/* the pod */
	const char *ns, *pod, *uid, *phase, *annotation;
	int64_t created;  /* seconds from T0 */
	bool deleting;
	struct crow c[5];
	/* settings */
	const char *holder_container;
	int64_t unresolved_after; /* seconds, 0 off */
	int64_t mono_age;         /* seconds the arbiter has watched the episode */
	const char *ambiguous;    /* the chooser found several pods: its candidates line */
	/* expected */
	enum verdict_state want;
	enum verdict_rule want_rule;
	const char *want_text; /* substring of the explanation */
};

#define POD_A "ns:pod", .ns = "shop", .pod = "web-0", .uid = "uid-1", .phase = "Running", .created = -600
#define HOST_A "web-0 (10.244.1.17)", .ns = "shop", .pod = "web-0", .uid = "uid-1", .phase = "Running", .created = -600
#define APP_OLD {"app", false, RUN, -60, 0, false, NULL}
#define APP_NEW {"app", false, RUN, 30, 1, true, NULL}

static const struct row rows[] = {
	/* O1 */
	{"O1: NAMESPACE:POD holder deleted", "shop:web-0", .outcome = K8S_GONE, .code = 404,
	 .reason = "NotFound", .ns = "shop", .pod = "web-0", .want = VERDICT_ORPHANED,
	 .want_rule = VERDICT_O1_POD_DELETED, .want_text = "pod shop/web-0 is gone"},
	{"O1: HOST holder gone after it was seen alive", HOST_A, .seen_alive = true,
	 .known_uid = "uid-1", .outcome = K8S_GONE, .code = 404, .reason = "NotFound",
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O1_POD_DELETED,
	 .want_text = "after it was seen alive"},
	{"O1: applies before --min-lock-age (a deletion is not status lag)", "shop:web-0",
	 .outcome = K8S_GONE, .code = 404, .taken = 2, .ns = "shop", .pod = "web-0",
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O1_POD_DELETED},
	/* UNRESOLVED */
	{"UNRESOLVED: HOST holder never seen alive and not found", HOST_A, .outcome = K8S_GONE,
	 .code = 404, .want = VERDICT_UNRESOLVED, .want_rule = VERDICT_UNRESOLVED_NOT_FOUND,
	 .want_text = "never seen alive"},
	{"UNRESOLVED: LOCKEDBY unparseable", "default:../../secrets/x", .outcome = K8S_UNKNOWN,
	 .want = VERDICT_UNRESOLVED, .want_rule = VERDICT_UNRESOLVED_LOCKEDBY,
	 .want_text = "LOCKEDBY names no pod"},
	{"UNRESOLVED: unknown (unknown), Liquibase could not resolve itself", "unknown (unknown)",
	 .outcome = K8S_UNKNOWN, .want = VERDICT_UNRESOLVED,
	 .want_rule = VERDICT_UNRESOLVED_LOCKEDBY},
	{"UNRESOLVED: several candidate pods and the address confirms none", HOST_A,
	 .outcome = K8S_UNKNOWN, .ambiguous = "a/web-0: pod; b/web-0: pod",
	 .want = VERDICT_UNRESOLVED, .want_rule = VERDICT_UNRESOLVED_AMBIGUOUS,
	 .want_text = "a/web-0: pod; b/web-0: pod"},
	{"O5: an ambiguous holder is unresolved, so the opt-in threshold applies", HOST_A,
	 .outcome = K8S_UNKNOWN, .ambiguous = "a/web-0: pod; b/web-0: pod", .unresolved_after = 60,
	 .mono_age = 120, .want = VERDICT_ORPHANED, .want_rule = VERDICT_O5_UNRESOLVED_TIMEOUT},
	/* O2 */
	{"O2: StatefulSet pod recreated under the same name (new uid)", HOST_A,
	 .seen_alive = true, .known_uid = "uid-0", .outcome = K8S_POD, .c = {APP_OLD},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O2_POD_REPLACED,
	 .want_text = "was replaced"},
	{"O2: pod created after the grant", POD_A, .outcome = K8S_POD, .created = 60,
	 .c = {{"app", false, RUN, 61, 0, false, NULL}}, .want = VERDICT_ORPHANED,
	 .want_rule = VERDICT_O2_POD_CREATED_AFTER_GRANT, .want_text = "after the grant"},
	{"O2: creation within the clock skew is not after the grant", POD_A, .outcome = K8S_POD,
	 .created = 4, .c = {{"app", false, RUN, 4, 0, false, NULL}}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING},
	/* O3 */
	{"O3: pod Failed", POD_A, .phase = "Failed", .outcome = K8S_POD,
	 .c = {{"app", false, TERM, -60, 0, false, "Error"}}, .want = VERDICT_ORPHANED,
	 .want_rule = VERDICT_O3_POD_FINISHED, .want_text = "phase Failed"},
	{"O3: pod Succeeded", POD_A, .phase = "Succeeded", .outcome = K8S_POD,
	 .c = {{"app", false, TERM, -60, 0, false, "Completed"}}, .want = VERDICT_ORPHANED,
	 .want_rule = VERDICT_O3_POD_FINISHED},
	{"O3: waits for --min-lock-age", POD_A, .phase = "Failed", .outcome = K8S_POD,
	 .taken = 3, .c = {{"app", false, TERM, -60, 0, false, "Error"}}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_TOO_YOUNG, .want_text = "--min-lock-age"},
	/* Missing evidence is never evidence of death (issue 9, defect 4). */
	{"O4 unknown: a running container without startedAt counts as running before the grant",
	 POD_A, .outcome = K8S_POD, .c = {{"app", false, RUN, NONE, 0, false, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING,
	 .want_text = "start time unknown"},
	{"O4 unknown: a restarted container without startedAt still keeps the lock", POD_A,
	 .outcome = K8S_POD, .c = {{"app", false, RUN, NONE, 2, true, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING,
	 .want_text = "start time unknown"},
	{"O4 known: the named container running without startedAt keeps the lock", POD_A,
	 .annotation = "app", .outcome = K8S_POD, .c = {{"app", false, RUN, NONE, 1, true, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_CONTAINER_RUNNING,
	 .want_text = "start time unknown"},
	/* O4, holder container known */
	{"O4: annotated holder container restarted inside a Running pod (CrashLoopBackOff recovery)",
	 POD_A, .annotation = "app", .outcome = K8S_POD,
	 .c = {APP_NEW, {"istio-proxy", false, RUN, -120, 0, false, NULL}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_CONTAINER_RESTARTED,
	 .want_text = "container app of shop/web-0 restarted at 10:05:30Z"},
	{"O4: --holder-container in CrashLoopBackOff (waiting, has run)", POD_A,
	 .holder_container = "app", .outcome = K8S_POD,
	 .c = {{"app", false, WAIT, NONE, 3, true, "CrashLoopBackOff"}}, .want = VERDICT_ORPHANED,
	 .want_rule = VERDICT_O4_CONTAINER_NOT_RUNNING, .want_text = "CrashLoopBackOff"},
	{"O4: waiting holder container with restarts but no termination record has run", POD_A,
	 .holder_container = "app", .outcome = K8S_POD,
	 .c = {{"app", false, WAIT, NONE, 2, false, "CrashLoopBackOff"}}, .want = VERDICT_ORPHANED,
	 .want_rule = VERDICT_O4_CONTAINER_NOT_RUNNING},
	{"O4: holder container terminated without restart", POD_A, .holder_container = "app",
	 .outcome = K8S_POD, .c = {{"app", false, TERM, -60, 0, false, "OOMKilled"}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_CONTAINER_NOT_RUNNING,
	 .want_text = "OOMKilled"},
	{"O4: the annotation wins over --holder-container", POD_A, .annotation = "app",
	 .holder_container = "sidecar", .outcome = K8S_POD,
	 .c = {APP_NEW, {"sidecar", false, RUN, -120, 0, false, NULL}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_CONTAINER_RESTARTED},
	{"O4: restart within the clock skew keeps the lock", POD_A, .holder_container = "app",
	 .outcome = K8S_POD, .c = {{"app", false, RUN, 4, 1, true, NULL}}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_CONTAINER_RUNNING},
	{"HELD: annotated holder container running since before the grant", POD_A,
	 .annotation = "app", .outcome = K8S_POD, .c = {APP_OLD}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_CONTAINER_RUNNING,
	 .want_text = "container app of shop/web-0 running since 10:04:00Z, before the grant (10:05:00Z)"},
	/* O4, holder container unknown */
	{"O4: unknown holder container, every container restarted after the grant", POD_A,
	 .outcome = K8S_POD, .c = {APP_NEW, {"metrics", false, RUN, 31, 2, true, NULL}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_NO_LIVE_CONTAINER},
	{"HELD: sidecar alive since before the grant keeps the lock (holder unknown)", POD_A,
	 .outcome = K8S_POD, .c = {APP_NEW, {"istio-proxy", false, RUN, -120, 0, false, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING,
	 .want_text = "container istio-proxy"},
	{"HELD: native sidecar (init, restartPolicy Always) alive since before the grant", POD_A,
	 .outcome = K8S_POD, .c = {APP_NEW, {"proxy", true, RUN, -120, 0, false, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING,
	 .want_text = "init container proxy"},
	{"HELD: init container holding the lock in a Pending pod (migrations in an init container)",
	 POD_A, .phase = "Pending", .holder_container = "app", .outcome = K8S_POD,
	 .c = {{"app", false, WAIT, NONE, 0, false, "PodInitializing"},
	       {"migrate", true, RUN, -30, 0, false, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING,
	 .want_text = "init container migrate"},
	{"O4: init container holding the lock restarted in a Pending pod", POD_A,
	 .phase = "Pending", .holder_container = "app", .outcome = K8S_POD,
	 .c = {{"app", false, WAIT, NONE, 0, false, "PodInitializing"},
	       {"migrate", true, RUN, 40, 1, true, NULL}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_NO_LIVE_CONTAINER},
	{"O4: named container absent from the pod falls back to the unknown rule", POD_A,
	 .holder_container = "liquibase", .outcome = K8S_POD, .c = {APP_OLD}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING},
	{"O4: the arbiter's own container never counts as a holder (sidecar form)", "ops:arb-0",
	 .ns = "ops", .pod = "arb-0", .uid = "uid-1", .phase = "Running", .created = -600,
	 .outcome = K8S_POD, .c = {APP_NEW, {"lock-arbiter", false, RUN, -300, 0, false, NULL}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_NO_LIVE_CONTAINER},
	{"HELD: a container named lock-arbiter in another pod still counts", POD_A,
	 .outcome = K8S_POD, .c = {APP_NEW, {"lock-arbiter", false, RUN, -300, 0, false, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING},
	{"HELD: pod with a deletionTimestamp whose containers still run", POD_A,
	 .deleting = true, .outcome = K8S_POD, .c = {APP_OLD}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_OTHER_CONTAINER_RUNNING},
	{"HELD: young episode, container still shown waiting (kubelet status lag)", POD_A,
	 .holder_container = "app", .outcome = K8S_POD, .taken = 3,
	 .c = {{"app", false, WAIT, NONE, 1, true, "ContainerCreating"}}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_TOO_YOUNG},
	/* LOCKGRANTED and time zones */
	{"HELD: LOCKGRANTED from a JVM behind UTC, read after an arbiter restart, zone not trusted",
	 POD_A, .zone_valid = true, .zone_granted = -5 * 3600, .trust_zone = false,
	 .holder_container = "app", .outcome = K8S_POD,
	 .c = {{"app", false, RUN, -180, 0, false, NULL}}, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_CONTAINER_RUNNING},
	{"O4: trusted LOCKGRANTED moves the grant earlier (restart after the real grant)", POD_A,
	 .zone_valid = true, .zone_granted = -300, .trust_zone = true, .holder_container = "app",
	 .outcome = K8S_POD, .c = {{"app", false, RUN, -120, 1, true, NULL}},
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O4_CONTAINER_RESTARTED},
	{"HELD: without a trusted zone the same restart is not provably after the grant", POD_A,
	 .zone_valid = true, .zone_granted = -300, .trust_zone = false, .holder_container = "app",
	 .outcome = K8S_POD, .c = {{"app", false, RUN, -120, 1, true, NULL}},
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_CONTAINER_RUNNING},
	/* UNKNOWN never releases */
	{"HELD: UNKNOWN 401 after the token re-read", "shop:web-0", .outcome = K8S_UNKNOWN,
	 .code = 401, .reason = "Unauthorized", .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN, .want_text = "401 Unauthorized"},
	{"HELD: UNKNOWN 403", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 403,
	 .reason = "Forbidden", .message = "pods \"web-0\" is forbidden: User \"x\" cannot get resource",
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN,
	 .want_text = "403 Forbidden): pods \"web-0\" is forbidden: User \"x\" cannot get"},
	{"HELD: UNKNOWN 500 keeps its varying message out", "shop:web-0", .outcome = K8S_UNKNOWN,
	 .code = 500, .reason = "InternalError", .message = "etcd timeout after 5012 ms",
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN,
	 .want_text = "(500 InternalError)"},
	{"HELD: UNKNOWN 429", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 429,
	 .reason = "TooManyRequests", .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN 500", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 500,
	 .reason = "InternalError", .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN 503", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 503,
	 .reason = "ServiceUnavailable", .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN 404 without a NotFound Status (a proxy's page)", "shop:web-0",
	 .outcome = K8S_UNKNOWN, .code = 404, .reason = "", .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN timeout", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 0,
	 .reason = "Timeout", .want = VERDICT_HELD, .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN,
	 .want_text = "0 Timeout"},
	{"HELD: UNKNOWN TLS error", "shop:web-0", .outcome = K8S_UNKNOWN, .reason = "TLS",
	 .want = VERDICT_HELD, .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN malformed body", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 200,
	 .reason = "Malformed", .want = VERDICT_HELD, .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN oversized body", "shop:web-0", .outcome = K8S_UNKNOWN, .code = 200,
	 .reason = "TooLarge", .want = VERDICT_HELD, .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	{"HELD: UNKNOWN for a HOST holder seen alive before", HOST_A, .seen_alive = true,
	 .known_uid = "uid-1", .outcome = K8S_UNKNOWN, .code = 503, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
	/* O5 */
	{"O5: unresolved LOCKEDBY older than --release-unresolved-after", "garbage",
	 .outcome = K8S_UNKNOWN, .unresolved_after = 3600, .mono_age = 7200,
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O5_UNRESOLVED_TIMEOUT,
	 .want_text = "--release-unresolved-after 1h00m"},
	{"O5: unresolved HOST holder older than --release-unresolved-after", HOST_A,
	 .outcome = K8S_GONE, .code = 404, .unresolved_after = 60, .mono_age = 61,
	 .want = VERDICT_ORPHANED, .want_rule = VERDICT_O5_UNRESOLVED_TIMEOUT},
	{"UNRESOLVED: O5 not yet due", "garbage", .outcome = K8S_UNKNOWN,
	 .unresolved_after = 3600, .mono_age = 1800, .want = VERDICT_UNRESOLVED,
	 .want_rule = VERDICT_UNRESOLVED_LOCKEDBY},
	{"UNRESOLVED: O5 is off by default, however old", "garbage", .outcome = K8S_UNKNOWN,
	 .mono_age = 1000000, .want = VERDICT_UNRESOLVED, .want_rule = VERDICT_UNRESOLVED_LOCKEDBY},
	{"HELD: O5 never applies to a resolved holder", "shop:web-0", .outcome = K8S_UNKNOWN,
	 .code = 503, .unresolved_after = 1, .mono_age = 7200, .want = VERDICT_HELD,
	 .want_rule = VERDICT_HELD_KUBERNETES_UNKNOWN},
};

static int64_t at(int64_t sec)
{
	return sec == NONE ? 0 : AT(sec);
}

static void build_pod(const struct row *r, struct k8s_pod *p, struct k8s_container *cs)
{
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	snprintf(p->ns, sizeof(p->ns), "%s", r->ns);
	snprintf(p->name, sizeof(p->name), "%s", r->pod);
	snprintf(p->uid, sizeof(p->uid), "%s", r->uid != NULL ? r->uid : "uid-1");
	snprintf(p->phase, sizeof(p->phase), "%s", r->phase != NULL ? r->phase : "Running");
	snprintf(p->holder_container, sizeof(p->holder_container), "%s",
		 r->annotation != NULL ? r->annotation : "");
	p->created = AT(r->created);
	p->deleting = r->deleting ? AT(10) : 0;
	for (; n < 5 && r->c[n].name != NULL; n++) {
		struct k8s_container *c = &cs[n];
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "%s", r->c[n].name);
		c->init = r->c[n].init;
		c->state = (enum k8s_cstate)r->c[n].state;
		c->started_at = at(r->c[n].started);
		c->restart_count = r->c[n].restarts;
		c->last_terminated = r->c[n].last_terminated;
		snprintf(c->reason, sizeof(c->reason), "%s", r->c[n].reason ? r->c[n].reason : "");
	}
	p->containers = cs;
	p->n_containers = n;
}

static void run_row(const struct row *r)
{
	struct episode e;
	struct k8s_pod pod;
	struct k8s_container cs[5];
	struct k8s_result res = {.outcome = r->outcome, .http_code = r->code};
	struct verdict_settings s = {
		.clock_skew_us = 5 * S,
		.min_lock_age_us = 10 * S,
		.release_unresolved_after_us = r->unresolved_after * S,
		.holder_container = r->holder_container,
		.trust_zone = r->trust_zone,
		.own_ns = "ops",
		.own_pod = "arb-0",
		.own_container = "lock-arbiter",
	};
	struct verdict_lookup l = {
		.outcome = r->outcome,
		.res = &res,
		.ns = r->ns,
		.name = r->pod,
		.taken_us = AT(r->taken != 0 ? r->taken : 20),
		.ambiguous = r->ambiguous != NULL,
		.candidates = r->ambiguous,
	};
	struct verdict v;

	memset(&e, 0, sizeof(e));
	e.lockedby = (char *)r->lockedby;
	e.first_seen_us = T0;
	e.first_seen_mono_us = 1000 * S;
	e.granted_zone_valid = r->zone_valid;
	e.granted_zone_us = AT(r->zone_granted);
	e.holder_seen_alive = r->seen_alive;
	snprintf(e.holder_uid, sizeof(e.holder_uid), "%s", r->known_uid ? r->known_uid : "");
	holder_parse(r->lockedby, &e.holder);
	l.skipped = e.holder.kind == HOLDER_UNRESOLVABLE;
	snprintf(res.reason, sizeof(res.reason), "%s", r->reason ? r->reason : "");
	snprintf(res.message, sizeof(res.message), "%s", r->message ? r->message : "");
	if (r->outcome == K8S_POD) {
		build_pod(r, &pod, cs);
		l.pod = &pod;
	}
	verdict_decide(&e, &l, &s, 1000 * S + r->mono_age * S, &v);
	if (v.state != r->want || v.rule != r->want_rule)
		fail_msg("%s\n  got %s/%s: %s\n  want %s/%s", r->rule, verdict_state_name(v.state),
			 verdict_rule_code(v.rule), v.text, verdict_state_name(r->want),
			 verdict_rule_code(r->want_rule));
	if (r->want_text != NULL && strstr(v.text, r->want_text) == NULL)
		fail_msg("%s\n  explanation '%s' lacks '%s'", r->rule, v.text, r->want_text);
	if (strncmp(v.text, verdict_state_name(v.state), strlen(verdict_state_name(v.state))) != 0)
		fail_msg("%s: explanation '%s' does not start with the verdict", r->rule, v.text);
}

static void row_test(void **state)
{
	run_row(*state);
}

/* Every rule of section 6 has at least one row naming it. */
static void every_rule_has_a_row(void **state)
{
	(void)state;
	for (int r = 0; r < VERDICT_RULE_COUNT; r++) {
		bool found = false;
		/* The session guard's rules have their own table, in test_guard.c. */
		if (r == VERDICT_HELD_SESSION_ALIVE || r == VERDICT_HELD_SESSION_UNKNOWN)
			continue;
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
			if (rows[i].want_rule == (enum verdict_rule)r)
				found = true;
		if (!found)
			fail_msg("no row expects %s", verdict_rule_code((enum verdict_rule)r));
	}
}

static void learn_records_first_pod_and_alive(void **state)
{
	struct episode e;
	struct k8s_pod pod;
	struct verdict_lookup l = {.outcome = K8S_POD, .pod = &pod};

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(&pod, 0, sizeof(pod));
	snprintf(pod.ns, sizeof(pod.ns), "shop");
	snprintf(pod.name, sizeof(pod.name), "web-0");
	snprintf(pod.uid, sizeof(pod.uid), "uid-1");
	snprintf(pod.phase, sizeof(pod.phase), "Running");
	verdict_learn(&e, &l);
	assert_true(e.holder_seen_alive);
	assert_string_equal(e.holder_uid, "uid-1");
	assert_string_equal(e.holder_pod, "web-0");
	/* A later pod under the same name does not overwrite the first uid. */
	snprintf(pod.uid, sizeof(pod.uid), "uid-2");
	verdict_learn(&e, &l);
	assert_string_equal(e.holder_uid, "uid-1");
	/* A finished pod is not "seen alive". */
	memset(&e, 0, sizeof(e));
	snprintf(pod.phase, sizeof(pod.phase), "Failed");
	verdict_learn(&e, &l);
	assert_false(e.holder_seen_alive);
	/* GONE and UNKNOWN teach nothing. */
	memset(&e, 0, sizeof(e));
	l.outcome = K8S_GONE;
	verdict_learn(&e, &l);
	assert_false(e.holder_seen_alive);
	assert_string_equal(e.holder_uid, "");
}

/* orphan_release_delay_seconds starts at the death the API records. */
static void died_at_is_the_recorded_death(void **state)
{
	struct episode e;
	struct k8s_container c = {.name = "app", .state = K8S_CSTATE_RUNNING,
				  .started_at = AT(30), .restart_count = 1,
				  .last_terminated = true, .last_finished_at = AT(29)};
	struct k8s_pod pod = {.ns = "shop", .name = "web-0", .uid = "uid-1",
			      .phase = "Running", .created = AT(-600), .containers = &c,
			      .n_containers = 1};
	struct k8s_result res = {.outcome = K8S_POD};
	struct verdict_lookup l = {.outcome = K8S_POD, .pod = &pod, .res = &res,
				   .taken_us = AT(40)};
	struct verdict_settings s = {.clock_skew_us = 5 * S, .min_lock_age_us = 10 * S,
				     .holder_container = "app"};
	struct verdict v;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.first_seen_us = T0;
	holder_parse("shop:web-0", &e.holder);
	verdict_decide(&e, &l, &s, 0, &v);
	assert_int_equal(v.rule, VERDICT_O4_CONTAINER_RESTARTED);
	assert_int_equal(v.died_at_us, AT(29));
	/* O2: the replacement's creation. */
	snprintf(e.holder_uid, sizeof(e.holder_uid), "uid-0");
	verdict_decide(&e, &l, &s, 0, &v);
	assert_int_equal(v.rule, VERDICT_O2_POD_REPLACED);
	assert_int_equal(v.died_at_us, AT(-600));
	/* O1 after a deletion timestamp was seen. */
	e.holder_deleting_us = AT(35);
	l.outcome = K8S_GONE;
	verdict_decide(&e, &l, &s, 0, &v);
	assert_int_equal(v.rule, VERDICT_O1_POD_DELETED);
	assert_int_equal(v.died_at_us, AT(35));
	/* Held: no death. */
	e.holder_uid[0] = '\0';
	c.started_at = AT(-60);
	l.outcome = K8S_POD;
	verdict_decide(&e, &l, &s, 0, &v);
	assert_int_equal(v.state, VERDICT_HELD);
	assert_int_equal(v.died_at_us, 0);
}

/* The gate: only the leader releases, only in the right cluster, never in --dry-run. */
static void act_gates_release(void **state)
{
	static const struct {
		const char *why;
		enum verdict_state st;
		bool leader, identity, dry;
		enum verdict_action want;
	} g[] = {
		{"orphaned, leader, identity ok: release", VERDICT_ORPHANED, true, true, false,
		 VERDICT_RELEASE},
		{"--dry-run: would release, no UPDATE", VERDICT_ORPHANED, true, true, true,
		 VERDICT_WOULD_RELEASE},
		{"not the leader: observe and report", VERDICT_ORPHANED, false, true, false,
		 VERDICT_NOT_LEADER},
		{"API that does not know our own pod: no release", VERDICT_ORPHANED, true, false,
		 false, VERDICT_NO_IDENTITY},
		{"held: keep", VERDICT_HELD, true, true, false, VERDICT_KEEP},
		{"unresolved: keep", VERDICT_UNRESOLVED, true, true, false, VERDICT_KEEP},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		struct verdict v = {.state = g[i].st};
		struct verdict_gate gate = {g[i].leader, g[i].identity, g[i].dry};
		if (verdict_act(&v, &gate) != g[i].want)
			fail_msg("%s", g[i].why);
	}
}

int main(void)
{
	enum { N = sizeof(rows) / sizeof(rows[0]) };
	struct CMUnitTest tests[N + 4];

	for (size_t i = 0; i < N; i++)
		tests[i] = (struct CMUnitTest){rows[i].rule, row_test, NULL, NULL, (void *)&rows[i]};
	tests[N] = (struct CMUnitTest)cmocka_unit_test(every_rule_has_a_row);
	tests[N + 1] = (struct CMUnitTest)cmocka_unit_test(learn_records_first_pod_and_alive);
	tests[N + 2] = (struct CMUnitTest)cmocka_unit_test(act_gates_release);
	tests[N + 3] = (struct CMUnitTest)cmocka_unit_test(died_at_is_the_recorded_death);
	return _cmocka_run_group_tests("verdict", tests, N + 4, NULL, NULL);
}
