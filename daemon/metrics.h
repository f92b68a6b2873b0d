/*
 * metrics.h - /metrics in the Prometheus text format 0.0.4.
 *
 * metrics_render is a pure function of a struct status and the process
 * figures (read separately by metrics_process_read), so golden files pin
 * its output. Every family has HELP and TYPE; label values are escaped as
 * the format says (backslash, double quote, newline) after any byte that
 * is not UTF-8 is replaced.
 */
#ifndef LOCK_ARBITER_METRICS_H
#define LOCK_ARBITER_METRICS_H

#include "status.h"

#include <stdbool.h>
#include <stdio.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The standard process_* figures. */
struct metrics_process {
	double cpu_seconds;
	double resident_bytes;
	double virtual_bytes;
	double start_time_seconds;
	double open_fds;
	double max_fds;
};

/* Reads /proc/self; 0 or -errno (the figures are then zero). */
int metrics_process_read(struct metrics_process *p);

/* Writes every metric; proc may be NULL (no process_* families). */
void metrics_render(const struct status *st, const struct metrics_process *proc, FILE *out);

/* Writes s as a label value, escaped, without the quotes. */
void metrics_escape_label(const char *s, FILE *out);

#endif
