/*
 * report.h - what `check` prints and `/locks` serves: every lock table,
 * its state, holder and verdict. Strings from the database are escaped
 * (text) or cleaned to valid UTF-8 (JSON) here.
 */
#ifndef LOCK_ARBITER_REPORT_H
#define LOCK_ARBITER_REPORT_H

#include "arbiter.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* A JSON array, one object per lock table; NULL on allocation failure. */
cJSON *report_locks_json(const struct arbiter *a);

/* The human form of check. */
void report_text(const struct arbiter *a, FILE *out);

/* check --json: the array of report_locks_json plus the databases. 0 or -ENOMEM. */
int report_json(const struct arbiter *a, FILE *out);

#endif
