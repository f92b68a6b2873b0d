/*
 * act.h - acting on a verdict: the release and the session guard (act.c).
 * Called by the arbiter's loop on its one thread.
 */
#ifndef LOCK_ARBITER_ACT_H
#define LOCK_ARBITER_ACT_H

#include "arbiter.h"
#include "verdict.h"

/*
 * Releases table i of d with the compare-and-set, for the verdict v
 * (ORPHANED, this arbiter may act): counts, logs and posts the Event on
 * success, counts a lock that moved on, logs a failure once. l may point
 * into the episode's watch, which a release stops: last use.
 */
void act_release(struct arbiter *a, struct arbiter_db *d, size_t i,
		 const struct verdict_lookup *l, const struct verdict *v);

/*
 * The session guard for e's ORPHANED verdict v: lists the holder's
 * sessions, lets guard_decide turn v into HELD while one keeps the lock,
 * and with --terminate-orphaned-sessions (and may_act: this arbiter would
 * release) ends the ones it can place. taken_db_us fixes the death time
 * the first time the episode is found orphaned.
 */
void act_session_guard(struct arbiter *a, struct arbiter_db *d, struct episode *e,
		       int64_t taken_db_us, bool may_act, struct verdict *v);

#endif
