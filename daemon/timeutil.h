/*
 * timeutil.h - the one unit of time in lock-arbiter: int64_t microseconds.
 *
 * CLOCK_MONOTONIC for intervals and deadlines, the wall clock only where
 * time meets the outside (log timestamps, RFC 3339 output).
 */
#ifndef LOCK_ARBITER_TIMEUTIL_H
#define LOCK_ARBITER_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TIMEUTIL_MS INT64_C(1000)
#define TIMEUTIL_S INT64_C(1000000)

int64_t timeutil_mono_us(void);
int64_t timeutil_wall_us(void);

/*
 * Parses a duration: a sequence of <integer><unit> with units us, ms, s, m,
 * h ("250ms", "2s", "5m", "1m30s"), or "0". Writes *out only on success;
 * -EINVAL on anything else, -ERANGE past about 290 000 years.
 */
int timeutil_parse_duration(const char *s, int64_t *out);

/* Formats a duration compactly ("250ms", "2s", "1m05s", "3h00m"). */
void timeutil_format_duration(int64_t us, char *buf, size_t cap);

/* Formats Unix-epoch microseconds as RFC 3339 UTC with milliseconds. */
void timeutil_format_rfc3339(int64_t epoch_us, char *buf, size_t cap);


#endif
