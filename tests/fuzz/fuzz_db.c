/*
 * fuzz_db.c - fuzz target for database URLs and conninfo strings: db_new
 * (PQconninfoParse underneath) and the label built from them, without
 * connecting. The conninfo comes from a Secret and the label goes into
 * logs, metrics and the status page, so the one promise checked here is
 * db.h's: neither the label nor an error message ever shows the password.
 *
 * The label must not depend on the password at all: the same options
 * with another password (rebuilt as keyword=value) give the same label.
 * For a URL that does not parse, no 8-byte stretch of the password as
 * written may appear in the error because of the password (see check_error).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "fuzz-input.h"

#define SENTINEL "Fuzz-Sentinel-Password"
#define WINDOW 8

/* Appends key='value' to a malloc'd conninfo, quoting as libpq reads it. */
static char *append_kv(char *ci, size_t *len, const char *key, const char *val)
{
	size_t need = *len + strlen(key) + 2 * strlen(val) + 6;
	char *p = realloc(ci, need);

	if (p == NULL) {
		free(ci);
		return NULL;
	}
	*len += (size_t)snprintf(p + *len, need - *len, "%s='", key);
	for (const char *v = val; *v != '\0'; v++) {
		if (*v == '\'' || *v == '\\')
			p[(*len)++] = '\\';
		p[(*len)++] = *v;
	}
	p[(*len)++] = '\'';
	p[(*len)++] = ' ';
	p[*len] = '\0';
	return p;
}

/* The options of a parsed conninfo as keyword=value, the password replaced. */
static char *rebuild(const PQconninfoOption *opts)
{
	char *ci = calloc(1, 1);
	size_t len = 0;

	for (const PQconninfoOption *o = opts; ci != NULL && o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0)
			ci = append_kv(ci, &len, o->keyword, SENTINEL);
		else if (o->val != NULL)
			ci = append_kv(ci, &len, o->keyword, o->val);
	}
	return ci;
}

static const char *password_of(const PQconninfoOption *opts)
{
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0)
			return o->val;
	return NULL;
}

static void check_label(const char *conninfo, const char *label)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	char err[256];

	if (opts == NULL)
		return; /* out of memory: db_new parsed it */
	const char *pw = password_of(opts);
	char *ci = rebuild(opts);
	struct db *other = ci != NULL ? db_new(ci, NULL, err, sizeof(err)) : NULL;
	if (other != NULL) {
		const char *label2 = db_label(other);
		if (strcmp(label, label2) != 0)
			__builtin_trap();
		/* The input's password in the label, not put there by another field. */
		if (pw != NULL && pw[0] != '\0' && strstr(label, pw) != NULL &&
		    strstr(label2, pw) == NULL)
			__builtin_trap();
		db_free(other);
	}
	free(ci);
	PQconninfoFree(opts);
}

/*
 * The password of a URL as written, found the way its parser finds it:
 * libpq's for postgres[ql]://, db/my-conn.c's (the last '@' before the
 * first '/') for mysql:// and mariadb://.
 */
static const char *url_password(const char *s, size_t *len)
{
	const char *p, *colon;
	bool my = false;

	if (strncmp(s, "postgresql://", 13) == 0)
		s += 13;
	else if (strncmp(s, "postgres://", 11) == 0)
		s += 11;
	else if ((my = strncmp(s, "mysql://", 8) == 0))
		s += 8;
	else if ((my = strncmp(s, "mariadb://", 10) == 0))
		s += 10;
	else
		return NULL;
	if (my) {
		const char *slash = s + strcspn(s, "/");
		p = memrchr(s, '@', (size_t)(slash - s));
		if (p == NULL)
			return NULL;
	} else {
		p = s + strcspn(s, "@/");
	}
	if (*p != '@')
		return NULL;
	colon = memchr(s, ':', (size_t)(p - s));
	if (colon == NULL)
		return NULL;
	*len = (size_t)(p - colon - 1);
	return colon + 1;
}

static size_t count_in(const char *hay, const char *needle, size_t n)
{
	size_t count = 0, len = strlen(hay);

	for (size_t i = 0; i + n <= len; i++)
		count += memcmp(hay + i, needle, n) == 0;
	return count;
}

/*
 * A stretch of the password leaks when the error (or label) shows it, and
 * the error (label) for the same input with the password masked (every byte an X, except
 * what decides how libpq reads it: '%' escapes and quotes) does not.
 */
static void check_error(const char *conninfo, const char *err, bool label)
{
	size_t len = 0;
	const char *pw = url_password(conninfo, &len);
	char err2[256];

	if (pw == NULL || len < WINDOW)
		return;
	char *masked = strdup(conninfo);
	if (masked == NULL)
		return;
	for (size_t i = 0, keep = 0; i < len; i++) {
		char *ch = masked + (pw - conninfo) + i;
		keep = *ch == '%' ? 3 : keep;
		if (keep > 0)
			keep--;
		else if (*ch != '"')
			*ch = 'X';
	}
	err2[0] = '\0';
	struct db *db = db_new(masked, NULL, err2, sizeof(err2));
	/*
	 * A label is compared with the masked input's whole label (a label has
	 * no length cap, unlike an error), an error with its error.
	 */
	const char *other = label ? (db != NULL ? db_label(db) : "") : err2;
	for (size_t i = 0; i + WINDOW <= len; i++)
		if (count_in(err, pw + i, WINDOW) > 0 && count_in(other, pw + i, WINDOW) == 0 &&
		    count_in(conninfo, pw + i, WINDOW) == 1)
			__builtin_trap();
	db_free(db);
	free(masked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *conninfo = fuzz_string(data, size);
	char err[256];

	if (conninfo == NULL)
		return 0;
	err[0] = '\0';
	struct db *db = db_new(conninfo, NULL, err, sizeof(err));
	if (db != NULL) {
		const char *label = db_label(db);
		if (label == NULL)
			abort();
		check_label(conninfo, label);
		/* A MySQL label is built from the URL's parts: the password is never one. */
		check_error(conninfo, label, true);
		db_free(db);
	} else {
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0' ||
		    strchr(err, '\n') != NULL)
			abort();
		check_error(conninfo, err, false);
	}
	free(conninfo);
	return 0;
}
