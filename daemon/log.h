/*
 * log.h - one line per event, logfmt (default) or JSON, on stderr.
 *
 * Callers pass a message and key/value string pairs ending in NULL:
 *   log_info("lock held", "database", label, "lockedby", lockedby, NULL);
 * Values are escaped here, so hostile LOCKEDBY values cannot forge lines.
 * Never pass a token, a password or a conninfo string.
 */
#ifndef LOCK_ARBITER_LOG_H
#define LOCK_ARBITER_LOG_H

#include <stdio.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

/* Sets format, threshold and destination (stderr when out is NULL). */
void log_setup(enum log_format format, enum log_level level, FILE *out);

/* Parses "debug", "info", "warn", "error"; -EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);

void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));
void log_vmsg(enum log_level level, const char *msg, const char *const *kv, size_t n_kv);

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
