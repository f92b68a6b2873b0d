/*
 * db.c - the front of the db library (db.h): a database is a backend
 * (PostgreSQL, or MySQL/MariaDB by the URL scheme) behind one table of
 * functions (db-internal.h), and what every backend shares: reconnect
 * backoff, errors on one line, small helpers.
 */
#include "db-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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

/* ---- backends ---------------------------------------------------------- */

bool db_is_mysql_url(const char *conninfo)
{
	return strncmp(conninfo, "mysql://", 8) == 0 || strncmp(conninfo, "mariadb://", 10) == 0;
}

struct db *db_new(const char *conninfo, const struct db_options *opts, char *err, size_t cap)
{
	struct db_options o;
	struct db *db;

	if (conninfo == NULL) {
		db_seterr(err, cap, "conninfo: missing");
		return NULL;
	}
	if (opts != NULL)
		o = *opts;
	else
		db_options_default(&o);
	if (o.connect_timeout_s < 2 || o.statement_timeout_us < 0 || o.lock_timeout_us < 0 ||
	    o.query_timeout_us <= 0 || o.backoff_min_us <= 0 ||
	    o.backoff_max_us < o.backoff_min_us) {
		db_seterr(err, cap, "db options: out of range");
		return NULL;
	}
	db = calloc(1, sizeof *db);
	if (db == NULL || (db->conninfo = db_strdup(conninfo)) == NULL) {
		free(db);
		db_seterr(err, cap, "conninfo: out of memory");
		return NULL;
	}
	if (db_is_mysql_url(conninfo)) {
#ifdef LOCK_ARBITER_HAVE_MYSQL
		db->be = &db_my_backend;
#else
		db_seterr(err, cap, "%s: this build has no MySQL/MariaDB backend (meson -Dmysql=enabled)",
			  strncmp(conninfo, "mysql", 5) == 0 ? "mysql://" : "mariadb://");
		db_free(db);
		return NULL;
#endif
	} else {
		db->be = &db_pg_backend;
	}
	db->opts = o;
	db->backoff_us = o.backoff_min_us;
	if (db->be->init(db, err, cap) < 0) {
		db_free(db);
		return NULL;
	}
	/* Different replicas (and processes) get different jitter sequences. */
	db->rng = (uint64_t)db_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)db;
	if (db->rng == 0)
		db->rng = 1;
	return db;
}

void db_free(struct db *db)
{
	if (db == NULL)
		return;
	if (db->be != NULL) {
		db->be->disconnect(db);
		db->be->done(db);
	}
	if (db->conninfo != NULL) {
		explicit_bzero(db->conninfo, strlen(db->conninfo));
		free(db->conninfo);
	}
	free(db->label);
	free(db);
}

const char *db_label(const struct db *db)
{
	return db->label;
}

const char *db_kind(const struct db *db)
{
	return db->be->name;
}

bool db_is_connected(const struct db *db)
{
	return db->be->connected(db);
}

bool db_is_leader(const struct db *db)
{
	return db->be->connected(db) && db->leader;
}

void db_disconnect(struct db *db)
{
	db->be->disconnect(db);
	db->leader = false;
}

int db_ensure_connected(struct db *db, int64_t now_mono_us, char *err, size_t cap)
{
	int64_t t0, delay;
	int rc;

	if (db->be->connected(db)) {
		if (!db->be->broken(db))
			return 0;
		db_disconnect(db);
	}
	if (db->retry_pending && now_mono_us < db->retry_at_us) {
		db_seterr(err, cap, "reconnect backoff: next attempt in %" PRId64 " ms",
		          (db->retry_at_us - now_mono_us + 999) / 1000);
		return -EAGAIN;
	}

	t0 = db_mono_us();
	rc = db->be->connect(db, err, cap);
	if (rc == 0) {
		db->leader = false;
		db->backoff_us = db->opts.backoff_min_us;
		db->retry_pending = false;
		return 0;
	}
	/*
	 * Schedule from the end of this attempt on the caller's clock: an
	 * attempt that timed out already took its time.
	 */
	delay = db->backoff_us;
	db->retry_at_us = now_mono_us + (db_mono_us() - t0) + db_jitter(db, delay);
	db->retry_pending = true;
	db->backoff_us = delay > db->opts.backoff_max_us / 2 ? db->opts.backoff_max_us : delay * 2;
	return rc;
}

int db_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
		struct db_table **out, size_t *n_out, char *err, size_t cap)
{
	return db->be->discover(db, table, schemas, n_schemas, out, n_out, err, cap);
}

int db_poll(struct db *db, const struct db_table *tables, size_t n, const char *tz,
	    bool try_leader, struct db_poll *out, char *err, size_t cap)
{
	return db->be->poll(db, tables, n, tz, try_leader, out, err, cap);
}

int db_release(struct db *db, const struct db_table *t, const char *lockedby,
	       const char *lockgranted, char *err, size_t cap)
{
	return db->be->release(db, t, lockedby, lockgranted, err, cap);
}

int db_sessions(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
		size_t *n_out, bool *visible, char *err, size_t cap)
{
	return db->be->sessions(db, addrs, n_addrs, out, n_out, visible, err, cap);
}

int db_terminate_session(struct db *db, int64_t pid, char *err, size_t cap)
{
	return db->be->terminate(db, pid, err, cap);
}

int db_timezone_valid(struct db *db, const char *tz, char *err, size_t cap)
{
	return db->be->timezone_valid(db, tz, err, cap);
}

void db_tables_free(struct db_table *tables, size_t n)
{
	if (tables == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(tables[i].schema);
		free(tables[i].table);
	}
	free(tables);
}

void db_poll_done(struct db_poll *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; p->rows != NULL && i < p->n; i++) {
		free(p->rows[i].lockedby);
		free(p->rows[i].lockgranted);
	}
	free(p->rows);
	p->rows = NULL;
	p->n = 0;
}
