/*
 * identity.h - the cluster identity check, and the tasks that run it.
 */
#ifndef LOCK_ARBITER_IDENTITY_H
#define LOCK_ARBITER_IDENTITY_H

#include "arbiter.h"

/*
 * Asks the API for this arbiter's own pod when a check is due (mono, the
 * monotonic clock) and updates a->identity_ok and its reason. No answer
 * keeps the last state. Waits in the loop: call it from a task.
 */
void identity_check(struct arbiter *a, int64_t mono);
/* Tasks (arg is the arbiter): one check now; or checks for the life of the daemon. */
void identity_once(void *arg);
void identity_task(void *arg);

#endif
