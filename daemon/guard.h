/*
 * guard.h - the session guard (DESIGN.md section 6), pure.
 *
 * A killed client's database session outlives it: a statement in progress
 * keeps running and can still commit. Before a release, the sessions from
 * the holder's addresses that began before its death (plus the clock skew)
 * and are not idle (an idle session has no transaction open and can commit
 * nothing) keep the lock. Sessions that began later belong to whoever has the
 * address now and are ignored. With --terminate-orphaned-sessions, a
 * blocking session may be ended only when it can be placed before every
 * current owner of its address: it began before (creation - skew) of each
 * pod that has the address now, or, when no pod has it, before the death
 * minus the skew. A session that cannot be placed is left alone.
 *
 * Times: database and API times in Unix-epoch microseconds; the skew
 * covers the difference between their clocks.
 */
#ifndef LOCK_ARBITER_GUARD_H
#define LOCK_ARBITER_GUARD_H

#include "verdict.h"

#include <db.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s keeps the lock of a holder that died at death_us. */
bool guard_blocks(const struct db_session *s, int64_t death_us, int64_t skew_us);

/* A pod that has an address now, as the API lists it. */
struct guard_owner {
	const char *addr;
	int64_t created_us; /* 0: unknown */
};

/*
 * True when s, a blocking session, may be ended: owners are every pod
 * that has an address of the holder now (owners_known false: the listing
 * failed, and nothing may be ended).
 */
bool guard_terminable(const struct db_session *s, int64_t death_us, int64_t skew_us,
		      const struct guard_owner *owners, size_t n_owners, bool owners_known);

/* What the guard could learn of the holder's sessions. */
struct guard_view {
	const struct db_session *sessions;
	size_t n;
	const char *list_error; /* not NULL: the sessions could not be listed */
	bool visible;           /* other roles' sessions can be seen */
	bool require;           /* --session-guard require */
	/*
	 * No address of the holder is known: this arbiter never saw its pod
	 * alive (it started after the death, or the API did not answer while
	 * the pod lived) and LOCKEDBY names no IP. The guard then sees nothing
	 * of this holder, as with a blind role.
	 */
	bool no_address;
	const char *grant;      /* what lets the role see them, for the verdict's text */
	int64_t death_us, skew_us;
};

/*
 * Applies the guard to v. An ORPHANED verdict becomes HELD with
 * held_session_alive (naming the first blocking session) while a blocking
 * session is open, or held_session_unknown when the sessions could not be
 * listed, or cannot be seen (a blind role, or no address of the holder)
 * and the guard is required. Without require, that the guard saw nothing
 * of the holder is added to the explanation. Other verdicts are
 * left as they are. Returns the number of blocking sessions.
 */
size_t guard_decide(const struct guard_view *g, struct verdict *v);

#endif
