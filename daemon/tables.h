/*
 * tables.h - a database's lock tables and their episode state.
 */
#ifndef LOCK_ARBITER_TABLES_H
#define LOCK_ARBITER_TABLES_H

#include "arbiter.h"

/*
 * Discovers d's lock tables and adopts them: tables that stay keep their
 * state, new ones start fresh, and the appearance and disappearance of
 * each is logged. 0, or a negative errno with err filled (d unchanged).
 */
int tables_discover(struct arbiter *a, struct arbiter_db *d, char *err, size_t cap);
/* Forgets every table of d and its state. */
void tables_forget(struct arbiter_db *d);

#endif
