/*
 * verdict.h - the safety core (DESIGN.md section 6).
 *
 * A pure function of the episode (what we know of the lock and what we
 * learned of its holder), one pod lookup, the settings, and time. It never
 * touches the network or the database. ORPHANED is returned only when one
 * of the rules O1 to O5 holds; everything else keeps the lock.
 *
 * Clocks: episode times and lookup.taken_us are database times; pod and
 * container times are the API server's and the kubelets'; clock_skew covers
 * the difference. O5 uses the arbiter's own monotonic clock.
 */
#ifndef LOCK_ARBITER_VERDICT_H
#define LOCK_ARBITER_VERDICT_H

#include "episode.h"

#include <k8s.h>
#include <stdbool.h>
#include <stdint.h>

enum verdict_state { VERDICT_HELD, VERDICT_ORPHANED, VERDICT_UNRESOLVED };

enum verdict_rule {
	VERDICT_O1_POD_DELETED,
	VERDICT_O2_POD_REPLACED,
	VERDICT_O2_POD_CREATED_AFTER_GRANT,
	VERDICT_O3_POD_FINISHED,
	VERDICT_O4_CONTAINER_RESTARTED,
	VERDICT_O4_CONTAINER_NOT_RUNNING,
	VERDICT_O4_NO_LIVE_CONTAINER,
	VERDICT_O5_UNRESOLVED_TIMEOUT,
	VERDICT_HELD_CONTAINER_RUNNING,
	VERDICT_HELD_OTHER_CONTAINER_RUNNING,
	VERDICT_HELD_TOO_YOUNG,
	VERDICT_HELD_KUBERNETES_UNKNOWN,
	VERDICT_HELD_SESSION_ALIVE,
	VERDICT_HELD_SESSION_UNKNOWN,
	VERDICT_UNRESOLVED_LOCKEDBY,
	VERDICT_UNRESOLVED_NOT_FOUND,
	VERDICT_UNRESOLVED_AMBIGUOUS,
	VERDICT_RULE_COUNT
};

struct verdict_settings {
	int64_t clock_skew_us;
	int64_t min_lock_age_us;
	int64_t release_unresolved_after_us; /* 0: O5 off */
	const char *holder_container;        /* --holder-container, NULL: unknown */
	bool trust_zone;                     /* LOCKGRANTED is read in a trusted zone */
	/* The arbiter itself: its container never counts as a possible holder. */
	const char *own_ns, *own_pod, *own_container;
};

/*
 * The outcome of looking the holder up in this cycle, resolved to one pod
 * by chooser_choose (chooser.h). For a HOST (ADDR) holder, GONE means no
 * candidate exists; UNKNOWN means some lookup gave no answer; ambiguous
 * means several pods could be the holder and ADDR singles out none.
 */
struct verdict_lookup {
	enum k8s_outcome outcome;
	const struct k8s_pod *pod;     /* K8S_POD */
	const struct k8s_result *res;  /* K8S_GONE, K8S_UNKNOWN: the answer */
	const char *ns, *name;         /* the pod looked up (GONE and UNKNOWN) */
	int64_t taken_us;              /* database time of the poll */
	bool skipped;                  /* no lookup: LOCKEDBY unresolvable */
	const char *skip_why;          /* why, when not the parser's reason */
	bool ambiguous;                /* several candidate pods, none singled out */
	const char *candidates;        /* every lookup and its answer; may be NULL */
};

struct verdict {
	enum verdict_state state;
	enum verdict_rule rule;
	char text[384]; /* one line for people: "held: container app running since ..." */
	/*
	 * ORPHANED: when the API records the holder's death (a termination,
	 * a replacement's creation, a deletion timestamp), Unix-epoch
	 * microseconds; 0 when it records none.
	 */
	int64_t died_at_us;
};

/* Decides; always fills *out. */
void verdict_decide(const struct episode *e, const struct verdict_lookup *l,
		    const struct verdict_settings *s, int64_t mono_now_us, struct verdict *out);

/*
 * Records what a lookup taught about the holder (the pod it resolved to, its
 * uid the first time, that it was seen alive), for rules O1 and O2 in
 * later cycles. Call after verdict_decide.
 */
void verdict_learn(struct episode *e, const struct verdict_lookup *l);

/* What the arbiter does with a verdict, given who it is right now. */
enum verdict_action {
	VERDICT_KEEP,          /* not orphaned */
	VERDICT_RELEASE,       /* orphaned, and this arbiter may act */
	VERDICT_WOULD_RELEASE, /* orphaned, --dry-run */
	VERDICT_NOT_LEADER,    /* orphaned, another arbiter acts for this database */
	VERDICT_NO_IDENTITY,   /* orphaned, but the API has not shown our own pod */
};

struct verdict_gate {
	bool leader;      /* holds the advisory lock, or --leader-election none */
	bool identity_ok; /* the cluster identity check passed (or does not apply) */
	bool dry_run;
};

/* Releases happen only for ORPHANED, by the leader, in the right cluster. */
enum verdict_action verdict_act(const struct verdict *v, const struct verdict_gate *g);

/* "O4_container_restarted", "held_container_running", ...: stable, for metrics. */
const char *verdict_rule_code(enum verdict_rule r);
/* "held", "orphaned", "unresolved". */
const char *verdict_state_name(enum verdict_state s);

#endif
