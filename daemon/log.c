#include "log.h"

#include "text.h"
#include "timeutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MAX_KV 32
#define LOG_LINE_MAX 8192

static enum log_format log_fmt = LOG_FORMAT_LOGFMT;
static enum log_level log_threshold = LOG_LEVEL_INFO;
static FILE *log_out;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_format format, enum log_level level, FILE *out)
{
	log_fmt = format;
	log_threshold = level;
	log_out = out;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "logfmt") == 0)
		*out = LOG_FORMAT_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

static size_t append(char *line, size_t o, const char *s)
{
	size_t len = strlen(s);

	/* Keep one byte for the newline; a longer line is cut. */
	if (o >= LOG_LINE_MAX - 2)
		return o;
	if (len > LOG_LINE_MAX - 2 - o)
		len = LOG_LINE_MAX - 2 - o;
	memcpy(line + o, s, len);
	return o + len;
}

static size_t append_pair(char *line, size_t o, const char *key, const char *val)
{
	char quoted[1024];

	o = append(line, o, " ");
	o = append(line, o, key);
	o = append(line, o, "=");
	if (text_is_bare(val)) {
		o = append(line, o, val);
	} else {
		text_quote(val == NULL ? "" : val, quoted, sizeof(quoted));
		o = append(line, o, quoted);
	}
	return o;
}

static void emit_logfmt(FILE *out, const char *ts, enum log_level level, const char *msg,
                        const char *const *kv, size_t n_kv)
{
	char line[LOG_LINE_MAX];
	size_t o = 0;

	o = append(line, o, "ts=");
	o = append(line, o, ts);
	o = append(line, o, " level=");
	o = append(line, o, level_names[level]);
	o = append_pair(line, o, "msg", msg);
	for (size_t i = 0; i + 1 < n_kv; i += 2)
		o = append_pair(line, o, kv[i], kv[i + 1]);
	line[o++] = '\n';
	fwrite(line, 1, o, out);
}

static void add_clean(cJSON *obj, const char *key, const char *val)
{
	char *clean = text_utf8_clean(val == NULL ? "" : val);

	cJSON_AddStringToObject(obj, key, clean != NULL ? clean : "");
	free(clean);
}

static void emit_json(FILE *out, const char *ts, enum log_level level, const char *msg,
                      const char *const *kv, size_t n_kv)
{
	cJSON *obj = cJSON_CreateObject();
	char *text;

	if (obj == NULL)
		return;
	add_clean(obj, "ts", ts);
	add_clean(obj, "level", level_names[level]);
	add_clean(obj, "msg", msg);
	for (size_t i = 0; i + 1 < n_kv; i += 2)
		add_clean(obj, kv[i], kv[i + 1]);
	text = cJSON_PrintUnformatted(obj);
	if (text != NULL) {
		fprintf(out, "%s\n", text);
		free(text);
	}
	cJSON_Delete(obj);
}

void log_vmsg(enum log_level level, const char *msg, const char *const *kv, size_t n_kv)
{
	FILE *out = log_out != NULL ? log_out : stderr;
	char ts[40];

	if (level < log_threshold)
		return;
	timeutil_format_rfc3339(timeutil_wall_us(), ts, sizeof(ts));
	if (log_fmt == LOG_FORMAT_JSON)
		emit_json(out, ts, level, msg, kv, n_kv);
	else
		emit_logfmt(out, ts, level, msg, kv, n_kv);
	fflush(out);
}

void log_msg(enum log_level level, const char *msg, ...)
{
	const char *kv[LOG_MAX_KV];
	size_t n = 0;
	va_list ap;

	if (level < log_threshold)
		return;
	va_start(ap, msg);
	for (;;) {
		const char *s = va_arg(ap, const char *);
		if (s == NULL || n == LOG_MAX_KV)
			break;
		kv[n++] = s;
	}
	va_end(ap);
	log_vmsg(level, msg, kv, n);
}
