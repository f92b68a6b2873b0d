/*
 * fuzz_metrics.c - fuzz target for /metrics: the Prometheus label escaper
 * and the renderer, with the database label, schema, table, LOCKEDBY and
 * rule of a lock taken from the input (NUL-separated, in that order; the
 * whole input is escaped on its own too).
 *
 * The output is read back with a strict reader of the text format 0.0.4:
 * every line a HELP, a TYPE or a sample of the family last typed; label
 * values quoted, with no raw newline, every quote and backslash escaped,
 * only \\ \" \n as escapes, valid UTF-8; and each value read back equal to
 * what was rendered (after the replacement of bytes that are not UTF-8).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "metrics.h"
#include "status.h"
#include "text.h"

struct reader {
	char family[128];
	const char *want[2]; /* label name, and its value after text_utf8_clean */
	size_t seen;         /* samples that had that label */
};

static const char *metric_name(const char *p)
{
	if (!isalpha((unsigned char)*p) && *p != '_' && *p != ':')
		return NULL;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
		p++;
	return p;
}

/* Reads a quoted label value at p (after the opening quote) into out; NULL when invalid. */
static const char *label_value(const char *p, const char *end, char *out, size_t cap)
{
	size_t o = 0;

	while (p < end && *p != '"') {
		char ch = *p;
		if (ch == '\\') {
			if (p + 1 >= end || strchr("\\\"n", p[1]) == NULL)
				return NULL;
			ch = p[1] == 'n' ? '\n' : p[1];
			p += 2;
		} else {
			size_t n = text_utf8_seq((const unsigned char *)p);
			if (n == 0 || (size_t)(end - p) < n)
				return NULL;
			if (o + n < cap) {
				memcpy(out + o, p, n);
				o += n;
			}
			p += n;
			continue;
		}
		if (o + 1 < cap)
			out[o++] = ch;
	}
	out[o] = '\0';
	return p < end ? p + 1 : NULL;
}

static bool sample(struct reader *r, const char *p, const char *end)
{
	const char *n = metric_name(p);
	size_t flen = strlen(r->family);
	static char value[1 << 16];

	if (n == NULL || (size_t)(n - p) < flen || memcmp(p, r->family, flen) != 0)
		return false;
	size_t rest = (size_t)(n - p) - flen;
	if (rest != 0 && !(rest == 7 && memcmp(p + flen, "_bucket", 7) == 0) &&
	    !(rest == 4 && memcmp(p + flen, "_sum", 4) == 0) &&
	    !(rest == 6 && memcmp(p + flen, "_count", 6) == 0))
		return false;
	p = n;
	if (*p == '{') {
		for (p++; p < end && *p != '}';) {
			const char *ln = metric_name(p);
			if (ln == NULL || ln + 2 > end || ln[0] != '=' || ln[1] != '"')
				return false;
			const char *after = label_value(ln + 2, end, value, sizeof(value));
			if (after == NULL)
				return false;
			if (r->want[0] != NULL && (size_t)(ln - p) == strlen(r->want[0]) &&
			    memcmp(p, r->want[0], (size_t)(ln - p)) == 0) {
				if (strcmp(value, r->want[1]) != 0)
					return false;
				r->seen++;
			}
			p = after;
			if (p < end && *p == ',')
				p++;
		}
		if (p >= end)
			return false;
		p++;
	}
	if (p >= end || *p != ' ')
		return false;
	char *num_end;
	strtod(p + 1, &num_end);
	return num_end != p + 1 && num_end == end;
}

static bool line(struct reader *r, const char *p, const char *end)
{
	if (end - p > 7 && memcmp(p, "# HELP ", 7) == 0) {
		const char *n = metric_name(p + 7);
		return n != NULL && n < end && *n == ' ';
	}
	if (end - p > 7 && memcmp(p, "# TYPE ", 7) == 0) {
		const char *n = metric_name(p + 7);
		size_t len = n != NULL ? (size_t)(n - p - 7) : 0;
		if (n == NULL || len >= sizeof(r->family) || *n != ' ')
			return false;
		memcpy(r->family, p + 7, len);
		r->family[len] = '\0';
		n++;
		for (const char *const *t = (const char *const[]){"counter", "gauge", "histogram",
		                                                 "summary", "untyped", NULL};
		     *t != NULL; t++)
			if ((size_t)(end - n) == strlen(*t) && memcmp(n, *t, strlen(*t)) == 0)
				return true;
		return false;
	}
	return r->family[0] != '\0' && sample(r, p, end);
}

/* Reads the whole exposition; aborts at the first line that is not valid. */
static void read_exposition(const char *text, size_t len, const char *label, const char *want)
{
	struct reader r = {.want = {label, want}};

	if (len > 0 && text[len - 1] != '\n')
		abort();
	for (const char *p = text, *nl; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		if (!line(&r, p, nl))
			abort();
	}
	if (label != NULL && r.seen == 0)
		abort();
}

static void check_escape(const char *s)
{
	char *text = NULL, *clean = text_utf8_clean(s);
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL || clean == NULL)
		abort();
	fputs("# TYPE x gauge\nx{v=\"", out);
	metrics_escape_label(s, out);
	fputs("\"} 1\n", out);
	fclose(out);
	read_exposition(text, len, "v", clean);
	free(text);
	free(clean);
}

static void check_render(const struct fuzz_fields *f)
{
	const char *field[5];
	struct status st;
	char *text = NULL, *clean;
	size_t len = 0;

	for (size_t i = 0; i < 5; i++)
		field[i] = i < f->n ? f->field[i] : "";
	if (status_init(&st, 2000000) != 0)
		abort();
	struct status_db db = {.label = (char *)field[0], .up = true};
	struct status_lock lock = {.database = (char *)field[0], .schema = (char *)field[1],
	                           .table = (char *)field[2], .known = true, .held = true,
	                           .lockedby = (char *)field[3], .verdict = "held",
	                           .reason = field[4]};
	struct status_release_count rel = {.database = (char *)field[0],
	                                   .schema = (char *)field[1],
	                                   .table = (char *)field[2], .reason = field[4],
	                                   .count = 1};
	st.t.dbs = &db;
	st.t.n_dbs = 1;
	st.t.locks = &lock;
	st.t.n_locks = 1;
	st.t.released = &rel;
	st.t.n_released = 1;
	histogram_init(&db.poll, histogram_latency_buckets, histogram_latency_n);

	FILE *out = open_memstream(&text, &len);
	clean = text_utf8_clean(field[3]);
	if (out == NULL || clean == NULL)
		abort();
	metrics_render(&st, NULL, out);
	fclose(out);
	read_exposition(text, len, "locked_by", clean);
	free(text);
	free(clean);
	/* The tables are this function's, not status_done's to free. */
	st.t = (struct status_tables){0};
	status_done(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;

	if (!fuzz_fields_split(&f, data, size, '\0'))
		return 0;
	check_escape(f.buf);
	check_render(&f);
	fuzz_fields_done(&f);
	return 0;
}
