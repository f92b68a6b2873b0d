/*
 * judge.h - deciding one held lock, and acting on the verdict.
 */
#ifndef LOCK_ARBITER_JUDGE_H
#define LOCK_ARBITER_JUDGE_H

#include "arbiter.h"

/*
 * Judges the current episode of d's table i at database time taken_db_us
 * (mono: the arbiter's clock): looks the holder up unless its watch has a
 * usable snapshot, decides, applies the session guard, releases when the
 * verdict and the gate say so, and starts a watch of the holder pod. May
 * wait in the loop: call it from d's task.
 */
void judge_lock(struct arbiter *a, struct arbiter_db *d, size_t i, int64_t taken_db_us,
		int64_t mono);

#endif
