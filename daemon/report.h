/*
 * report.h - the lock tables as `check` prints them and `/locks` serves
 * them. Pure functions of a struct status (the caller holds status->mu
 * when another thread may publish). Strings from the database are escaped
 * (text) or cleaned to valid UTF-8 (JSON) here.
 */
#ifndef LOCK_ARBITER_REPORT_H
#define LOCK_ARBITER_REPORT_H

#include "status.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* A JSON array, one object per lock table; NULL on allocation failure. */
cJSON *report_locks_json(const struct status *st);

/* check --json and /locks: databases, locks, Kubernetes; 0 or -ENOMEM. */
int report_json(const struct status *st, FILE *out);

/* The human form of check. */
void report_text(const struct status *st, FILE *out);

#endif
