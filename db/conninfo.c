/*
 * conninfo.c - errors, conninfo parsing and the label of a database
 * ("host:port/dbname", never a password). See db.h for the contract.
 */
#include "db-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------- */

int64_t db_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Turns a (possibly multi-line, newline-terminated) libpq message into one
 * line in place: the daemon writes it into logfmt and JSON logs.
 */
static void db_one_line(char *s)
{
	size_t w = 0;
	bool space = false;

	for (size_t r = 0; s[r] != '\0'; r++) {
		char c = s[r];

		if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
			space = w > 0;
			continue;
		}
		if (space)
			s[w++] = ' ';
		space = false;
		s[w++] = c;
	}
	s[w] = '\0';
}

void db_seterr(char *err, size_t cap, const char *fmt,
                                                            ...)
{
	va_list ap;

	if (err == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	db_one_line(err);
}

/* what: PQerrorMessage(conn), on one line. libpq messages carry no password. */
void db_seterr_conn(char *err, size_t cap, const char *what, const PGconn *conn)
{
	const char *m = conn != NULL ? PQerrorMessage(conn) : NULL;

	db_seterr(err, cap, "%s: %s", what, m != NULL && m[0] != '\0' ? m : "connection failed");
}

/*
 * Parse errors of PQconninfoParse quote the offending part of the input
 * (for a URL with a bad percent escape, the whole user:password token), so
 * everything from the first double quote to the last is replaced before
 * the message leaves us. Not quote by quote: the quoted input may itself
 * hold a quote, which would end the hiding early and show the rest.
 */
void db_seterr_redacted(char *err, size_t cap, const char *what, const char *msg)
{
	const char *first = msg != NULL ? strchr(msg, '"') : NULL;
	const char *last = first != NULL ? strrchr(msg, '"') : NULL;

	if (msg == NULL || msg[0] == '\0')
		db_seterr(err, cap, "%s: does not parse", what);
	else if (first == NULL)
		db_seterr(err, cap, "%s: %.200s", what, msg);
	else /* a lone quote hides the rest of the message */
		db_seterr(err, cap, "%s: %.*s\"...\"%.200s", what,
		          first - msg < 200 ? (int)(first - msg) : 200, msg,
		          last > first ? last + 1 : "");
}

char *db_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

/* Parses a whole decimal int64 as the server prints it. */
int db_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -EIO;
	*out = v;
	return 0;
}

/* xorshift64*: jitter only needs to spread replicas apart, not secrecy. */
static uint64_t db_rand(struct db *db)
{
	uint64_t x = db->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	db->rng = x;
	return x * UINT64_C(2685821657736338717);
}

/* d scaled by a uniform factor in [0.8, 1.2]. */
int64_t db_jitter(struct db *db, int64_t d)
{
	int64_t permille = 800 + (int64_t)(db_rand(db) % 401);

	if (d > INT64_MAX / 1200)
		return d;
	return d * permille / 1000;
}

void db_options_default(struct db_options *o)
{
	o->connect_timeout_s = 2;
	o->statement_timeout_us = 5 * INT64_C(1000000);
	o->lock_timeout_us = INT64_C(1000000);
	o->query_timeout_us = 5 * INT64_C(1000000);
	o->backoff_min_us = 250 * INT64_C(1000);
	o->backoff_max_us = 15 * INT64_C(1000000);
	o->interrupt = NULL;
	o->wait = NULL;
	o->wait_ctx = NULL;
}

/* ---- label ------------------------------------------------------------ */

static const char *db_opt(const PQconninfoOption *opts, const char *key)
{
	for (const PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0)
			return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
	return NULL;
}

static const char *db_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * Builds "host:port/dbname" the way libpq would resolve it, minus anything
 * secret: the user name and password never appear. A dbname that itself
 * looks like a connection string is not expanded by libpq a second time,
 * but it could carry a password, so it is not shown.
 */
char *db_make_label(const PQconninfoOption *opts)
{
	const char *host = db_opt(opts, "host");
	const char *port = db_opt(opts, "port");
	const char *dbname = db_opt(opts, "dbname");
	const char *user = db_opt(opts, "user");
	char userbuf[256];
	char *label;
	size_t len;

	if (host == NULL)
		host = db_opt(opts, "hostaddr");
	if (host == NULL)
		host = db_env("PGHOST");
	if (host == NULL)
		host = db_env("PGHOSTADDR");
	if (host == NULL)
		host = "localhost";
	if (port == NULL)
		port = db_env("PGPORT");
	if (port == NULL)
		port = "5432";
	if (user == NULL)
		user = db_env("PGUSER");
	if (user == NULL) {
		struct passwd pw, *res = NULL;
		char pwbuf[1024];

		if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res != NULL &&
		    strlen(pw.pw_name) < sizeof userbuf) {
			snprintf(userbuf, sizeof userbuf, "%s", pw.pw_name);
			user = userbuf;
		}
	}
	if (dbname == NULL)
		dbname = db_env("PGDATABASE");
	if (dbname == NULL)
		dbname = user != NULL ? user : "";
	if (strchr(dbname, '=') != NULL || strstr(dbname, "://") != NULL)
		dbname = "?";

	len = strlen(host) + strlen(port) + strlen(dbname) + 3;
	label = malloc(len);
	if (label != NULL)
		snprintf(label, len, "%s:%s/%s", host, port, dbname);
	return label;
}

/* Overwrites the password PQconninfoParse copied before it is freed. */
void db_conninfo_free(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}
