/*
 * db.c - one PostgreSQL database holding Liquibase lock tables.
 *
 * See db.h for the contract. Everything here goes through libpq's
 * asynchronous API and poll() on PQsocket against a CLOCK_MONOTONIC
 * deadline, because the blocking calls (PQexec, PQconnectdb) can wait on a
 * dead peer for as long as TCP retransmits, and the daemon must keep its
 * health endpoint and its shutdown promise (exit within 2 s) regardless of
 * what the network does.
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

#include <libpq-fe.h>

/* Type OIDs from pg_type.h, which is a server header we do not include. */
#define DB_BOOLOID 16
#define DB_TEXTOID 25

/* The poll statement's parameters: time zone, try_leader, table name. */
#define DB_POLL_NPARAMS 3

static const char *const db_col_names[DB_NCOLS] = {"id", "locked", "lockgranted", "lockedby"};

/* ---- small helpers ---------------------------------------------------- */

static int64_t db_mono_us(void)
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
static void db_seterr_redacted(char *err, size_t cap, const char *what, const char *msg)
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
static int64_t db_jitter(struct db *db, int64_t d)
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
static char *db_make_label(const PQconninfoOption *opts)
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
static void db_conninfo_free(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

/* ---- lifecycle -------------------------------------------------------- */

struct db *db_new(const char *conninfo, const struct db_options *opts, char *err, size_t cap)
{
	struct db_options o;
	PQconninfoOption *parsed;
	char *perr = NULL;
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

	parsed = PQconninfoParse(conninfo, &perr);
	if (parsed == NULL) {
		db_seterr_redacted(err, cap, "conninfo", perr != NULL ? perr : "out of memory");
		PQfreemem(perr);
		return NULL;
	}

	db = calloc(1, sizeof *db);
	if (db == NULL)
		goto nomem;
	db->opts = o;
	db->backoff_us = o.backoff_min_us;
	db->conninfo = db_strdup(conninfo);
	db->label = db_make_label(parsed);
	if (db->conninfo == NULL || db->label == NULL)
		goto nomem;
	db_conninfo_free(parsed);
	/* Different replicas (and processes) get different jitter sequences. */
	db->rng = (uint64_t)db_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)db;
	if (db->rng == 0)
		db->rng = 1;
	return db;

nomem:
	db_conninfo_free(parsed);
	db_free(db);
	db_seterr(err, cap, "conninfo: out of memory");
	return NULL;
}

static void db_set_free(struct db_entry *set, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(set[i].schema);
		free(set[i].table);
		for (int c = 0; c < DB_NCOLS; c++)
			free(set[i].col[c]);
	}
	free(set);
}

void db_free(struct db *db)
{
	if (db == NULL)
		return;
	db_disconnect(db);
	if (db->conninfo != NULL) {
		explicit_bzero(db->conninfo, strlen(db->conninfo));
		free(db->conninfo);
	}
	free(db->label);
	db_set_free(db->set, db->n_set);
	free(db->poll_sql);
	free(db->want_table);
	free(db);
}

const char *db_label(const struct db *db)
{
	return db->label;
}

bool db_is_connected(const struct db *db)
{
	return db->conn != NULL;
}

bool db_is_leader(const struct db *db)
{
	return db->conn != NULL && db->leader;
}

/*
 * PQfinish closes the socket without cancelling a running statement; the
 * server notices on its next write and statement_timeout bounds the rest.
 * PQcancel is not used because it connects synchronously, which is exactly
 * the blocking this file avoids.
 */
void db_disconnect(struct db *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	db->leader = false;
	db->prepared = false;
	db->no_prepare = false;
}

/* ---- waiting ---------------------------------------------------------- */

/*
 * Waits for events on fd until deadline: 1 ready, -ETIMEDOUT, -EINTR when
 * the caller's interrupt flag is set, or another negative errno from
 * poll(). The flag is looked at before every slice of at most
 * DB_WAIT_SLICE_US, not only on EINTR: a signal that lands just before
 * poll() is entered interrupts nothing, and shutdown must not wait for a
 * silent server's deadline (DESIGN.md section 9: exit within 2 s).
 */
#define DB_WAIT_SLICE_US INT64_C(100000)

static int db_wait(struct db *db, int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - db_mono_us();
		struct pollfd p = {.fd = fd, .events = events};
		int ms, r;

		if (db->opts.interrupt != NULL && *db->opts.interrupt != 0)
			return -EINTR;
		if (left <= 0)
			return -ETIMEDOUT;
		if (left > DB_WAIT_SLICE_US)
			left = DB_WAIT_SLICE_US;
		/* Round up so poll() does not return a millisecond early and spin. */
		ms = (int)(left / 1000 + 1);
		r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Drops the connection after a failed wait and says why. */
static int db_wait_failed(struct db *db, int rc, const char *what, char *err, size_t cap)
{
	if (rc == -ETIMEDOUT)
		db_seterr(err, cap, "%s: timed out", what);
	else if (rc == -EINTR)
		db_seterr(err, cap, "%s: interrupted", what);
	else
		db_seterr(err, cap, "%s: poll: %s", what, strerror(-rc));
	/*
	 * A statement is in flight: the connection cannot be reused until its
	 * result is drained, and we no longer want to wait for that.
	 */
	db_disconnect(db);
	return rc;
}

static int db_lost(struct db *db, const char *what, char *err, size_t cap)
{
	db_seterr_conn(err, cap, what, db->conn);
	db_disconnect(db);
	return -ENOTCONN;
}

/*
 * Completes a round trip started by a PQsend* call: flushes the request
 * (the poll statement for many tables is larger than a socket buffer, and
 * the connection is non-blocking) and collects the results until libpq
 * reports the end. On 0 *out is the result (an error result too: callers
 * look at its SQLSTATE); transport failures drop the connection and return
 * -ENOTCONN, -ETIMEDOUT or -EINTR.
 */
static int db_collect(struct db *db, int64_t deadline, const char *what, PGresult **out, char *err,
                      size_t cap)
{
	PGconn *c = db->conn;
	PGresult *keep = NULL;
	int fd = PQsocket(c);
	int rc;

	if (fd < 0)
		return db_lost(db, what, err, cap);
	for (;;) {
		int f = PQflush(c);

		if (f == 0)
			break;
		if (f < 0)
			return db_lost(db, what, err, cap);
		rc = db_wait(db, fd, POLLIN | POLLOUT, deadline);
		if (rc < 0)
			return db_wait_failed(db, rc, what, err, cap);
		/* The server may talk while we write (a notice, an error): read it. */
		if (!PQconsumeInput(c))
			return db_lost(db, what, err, cap);
	}

	for (;;) {
		while (!PQisBusy(c)) {
			PGresult *r = PQgetResult(c);

			if (r == NULL)
				goto done;
			/* The first error wins; otherwise the last result. */
			if (keep != NULL && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
				PQclear(r);
			} else {
				PQclear(keep);
				keep = r;
			}
		}
		rc = db_wait(db, fd, POLLIN, deadline);
		if (rc < 0) {
			PQclear(keep);
			return db_wait_failed(db, rc, what, err, cap);
		}
		if (!PQconsumeInput(c)) {
			PQclear(keep);
			return db_lost(db, what, err, cap);
		}
	}

done:
	/*
	 * A terminated backend (pg_terminate_backend, a server shutdown) sends
	 * a FATAL error and closes. libpq usually reports that through
	 * PQconsumeInput above; should the error come out as a result instead,
	 * the connection is just as gone.
	 */
	if (PQstatus(c) == CONNECTION_BAD) {
		PQclear(keep);
		return db_lost(db, what, err, cap);
	}
	if (keep == NULL) {
		db_seterr(err, cap, "%s: no result", what);
		return -EIO;
	}
	*out = keep;
	return 0;
}


/*
 * One round trip bounded by opts.query_timeout_us. kind selects the libpq
 * call: sql with params, the prepared statement name with params, or
 * preparing name from sql with the given parameter types.
 */
static int db_roundtrip_until(struct db *db, int64_t deadline, enum db_send kind, const char *name,
                              const char *sql, int nparams, const Oid *types,
                              const char *const *vals, const char *what, PGresult **out, char *err,
                              size_t cap)
{
	int sent;

	if (db->conn == NULL) {
		db_seterr(err, cap, "%s: not connected", what);
		return -ENOTCONN;
	}
	if (PQstatus(db->conn) == CONNECTION_BAD)
		return db_lost(db, what, err, cap);

	switch (kind) {
	case DB_SEND_PREPARED:
		sent = PQsendQueryPrepared(db->conn, name, nparams, vals, NULL, NULL, 0);
		break;
	case DB_SEND_PREPARE:
		sent = PQsendPrepare(db->conn, name, sql, nparams, types);
		break;
	default:
		sent = PQsendQueryParams(db->conn, sql, nparams, types, vals, NULL, NULL, 0);
		break;
	}
	if (!sent) {
		if (PQstatus(db->conn) == CONNECTION_BAD)
			return db_lost(db, what, err, cap);
		/* libpq refused before anything went out (out of memory, mostly). */
		db_seterr_conn(err, cap, what, db->conn);
		return -EIO;
	}
	return db_collect(db, deadline, what, out, err, cap);
}

int db_roundtrip(struct db *db, enum db_send kind, const char *name, const char *sql,
                        int nparams, const Oid *types, const char *const *vals, const char *what,
                        PGresult **out, char *err, size_t cap)
{
	return db_roundtrip_until(db, db_mono_us() + db->opts.query_timeout_us, kind, name, sql,
	                          nparams, types, vals, what, out, err, cap);
}

bool db_sqlstate_is(const PGresult *r, const char *state)
{
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return s != NULL && strcmp(s, state) == 0;
}

/*
 * Maps a result that is not `want` to an errno with a one-line detail.
 * A vanished table or schema (42P01, 3F000) and a vanished column (42703:
 * no longer a lock table by db_discover's rule) mean "rediscover".
 */
int db_check(const PGresult *r, ExecStatusType want, const char *what, char *err, size_t cap)
{
	ExecStatusType st = PQresultStatus(r);
	const char *state, *msg;

	if (st == want)
		return 0;
	if (st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR) {
		db_seterr(err, cap, "%s: unexpected result %s", what, PQresStatus(st));
		return -EIO;
	}
	state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	db_seterr(err, cap, "%s: %s (SQLSTATE %s)", what, msg != NULL ? msg : "server error",
	          state != NULL ? state : "?");
	if (state != NULL && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0 ||
	                      strcmp(state, "42703") == 0))
		return -ENOENT;
	return -EIO;
}

/* ---- connecting ------------------------------------------------------- */

static void db_quiet_notice(void *arg, const char *message)
{
	/* Libraries do not log; the default processor writes to stderr. */
	(void)arg;
	(void)message;
}

/* Milliseconds for a GUC, rounding up so 1 us does not become "off". */
static void db_ms(char *buf, size_t cap, int64_t us)
{
	snprintf(buf, cap, "%" PRId64, us / 1000 + (us % 1000 != 0));
}

/*
 * Session settings in one round trip. plan_cache_mode (PostgreSQL 12+)
 * makes the poll statement use its cached generic plan from the first
 * execution: the default plans the (possibly thousand-way) UNION afresh
 * for five more executions before settling on the plan it could have kept
 * (measured with 1000 tables: 40-60 ms for each of those polls, 10-12 ms
 * with the cached plan). max_parallel_workers_per_gather = 0: the poll
 * reads one row from each table, and with many tables the planner's
 * parallel append starts workers that cost far more than they save
 * (benchmark, 1000 tables: 99 ms a poll with parallel workers, 15 ms
 * without).
 */
static int db_setup_session(struct db *db, int64_t deadline, char *err, size_t cap)
{
	static const char sql_base[] =
	    "SELECT pg_catalog.set_config('statement_timeout', $1, false),"
	    " pg_catalog.set_config('lock_timeout', $2, false),"
	    " pg_catalog.set_config('TimeZone', 'UTC', false),"
	    " pg_catalog.set_config('max_parallel_workers_per_gather', '0', false)";
	static const char sql_generic[] =
	    "SELECT pg_catalog.set_config('statement_timeout', $1, false),"
	    " pg_catalog.set_config('lock_timeout', $2, false),"
	    " pg_catalog.set_config('TimeZone', 'UTC', false),"
	    " pg_catalog.set_config('max_parallel_workers_per_gather', '0', false),"
	    " pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', false)";
	char st[32], lt[32];
	const char *vals[2] = {st, lt};
	PGresult *r = NULL;
	int rc;

	db_ms(st, sizeof st, db->opts.statement_timeout_us);
	db_ms(lt, sizeof lt, db->opts.lock_timeout_us);
	rc = db_roundtrip_until(db, deadline, DB_SEND_PARAMS, NULL,
	                        PQserverVersion(db->conn) >= 120000 ? sql_generic : sql_base, 2,
	                        NULL, vals, "connect: session settings", &r, err, cap);
	if (rc < 0)
		return rc;
	rc = db_check(r, PGRES_TUPLES_OK, "connect: session settings", err, cap);
	PQclear(r);
	return rc;
}

/*
 * One connection attempt, never longer than opts.connect_timeout_s: libpq
 * only enforces connect_timeout in its blocking PQconnectdb, so the
 * deadline is ours. Our defaults come before the caller's conninfo in the
 * keyword arrays; with expand_dbname libpq lets later (the caller's)
 * settings override earlier ones, so "unless the conninfo sets them" is
 * libpq's own rule, and URLs expand the same way as key=value strings.
 */
static int db_connect(struct db *db, char *err, size_t cap)
{
	char ct[16];
	/* keyword, value: the defaults first, the caller's conninfo last. */
	const char *const keys[] = {
	    "application_name",    "connect_timeout",  "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "dbname",     NULL};
	const char *const vals[] = {"lock-arbiter", ct, "1", "30", "10", "3", db->conninfo, NULL};
	int64_t budget = (int64_t)db->opts.connect_timeout_s * 1000000;
	int64_t deadline = db_mono_us() + budget;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int rc;

	snprintf(ct, sizeof ct, "%d", db->opts.connect_timeout_s);
	db_disconnect(db);
	db->conn = PQconnectStartParams(keys, vals, 1);
	if (db->conn == NULL) {
		db_seterr(err, cap, "connect: out of memory");
		return -ENOMEM;
	}
	PQsetNoticeProcessor(db->conn, db_quiet_notice, NULL);
	if (PQstatus(db->conn) == CONNECTION_BAD) {
		db_seterr_conn(err, cap, "connect", db->conn);
		db_disconnect(db);
		return -ECONNREFUSED;
	}

	/* libpq's documented loop: start as if PQconnectPoll said WRITING. */
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			db_seterr_conn(err, cap, "connect", db->conn);
			db_disconnect(db);
			return -ECONNREFUSED;
		}
		/* The socket changes when libpq moves on to the next host. */
		if (PQsocket(db->conn) < 0) {
			db_seterr_conn(err, cap, "connect", db->conn);
			db_disconnect(db);
			return -ECONNREFUSED;
		}
		rc = db_wait(db, PQsocket(db->conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		             deadline);
		if (rc < 0)
			return db_wait_failed(db, rc, "connect", err, cap);
		st = PQconnectPoll(db->conn);
	}

	if (PQsetnonblocking(db->conn, 1) != 0) {
		db_seterr_conn(err, cap, "connect", db->conn);
		db_disconnect(db);
		return -EIO;
	}
	/* The settings share the connect deadline: connecting is one step. */
	rc = db_setup_session(db, deadline, err, cap);
	if (rc < 0) {
		db_disconnect(db);
		return rc == -ENOENT ? -EIO : rc;
	}
	db->leader = false;
	db->prepared = false;
	db->no_prepare = false;
	return 0;
}

int db_ensure_connected(struct db *db, int64_t now_mono_us, char *err, size_t cap)
{
	int64_t t0, delay;
	int rc;

	if (db->conn != NULL) {
		if (PQstatus(db->conn) != CONNECTION_BAD)
			return 0;
		db_disconnect(db);
	}
	if (db->retry_pending && now_mono_us < db->retry_at_us) {
		db_seterr(err, cap, "reconnect backoff: next attempt in %" PRId64 " ms",
		          (db->retry_at_us - now_mono_us + 999) / 1000);
		return -EAGAIN;
	}

	t0 = db_mono_us();
	rc = db_connect(db, err, cap);
	if (rc == 0) {
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

/* ---- discovery -------------------------------------------------------- */

/*
 * The text[] literal for the schema filter: every element double-quoted with
 * backslash and quote escaped, so any schema name survives.
 */
static char *db_text_array(char *const *v, size_t n)
{
	size_t len = 3, w = 0;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += 2 * strlen(v[i]) + 3;
	s = malloc(len);
	if (s == NULL)
		return NULL;
	s[w++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			s[w++] = ',';
		s[w++] = '"';
		for (const char *p = v[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				s[w++] = '\\';
			s[w++] = *p;
		}
		s[w++] = '"';
	}
	s[w++] = '}';
	s[w] = '\0';
	return s;
}

/*
 * One catalogue query. pg_catalog rather than information_schema: the
 * latter's views are slow on databases with thousands of schemas and hide
 * tables the user has no privilege on in ways that vary by version. For
 * each column the exact lower-case name is preferred when a table has
 * several that differ only in case. Temporary schemas are skipped (other
 * sessions' temporary tables cannot be read), and so are schemas we may
 * not enter, which would otherwise fail the whole poll.
 */
#define DB_DISCOVER_BODY                                                                          \
	"SELECT n.nspname::text AS nsp, c.relname::text AS rel, a.c_id, a.c_locked, a.c_granted,"  \
	" a.c_by"                                                                                  \
	" FROM pg_catalog.pg_class c"                                                              \
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"                                \
	" CROSS JOIN LATERAL (SELECT"                                                              \
	"  (array_agg(att.attname::text ORDER BY att.attname <> 'id', att.attname::text)"          \
	"    FILTER (WHERE lower(att.attname::text) = 'id'))[1] AS c_id,"                          \
	"  (array_agg(att.attname::text ORDER BY att.attname <> 'locked', att.attname::text)"      \
	"    FILTER (WHERE lower(att.attname::text) = 'locked'))[1] AS c_locked,"                  \
	"  (array_agg(att.attname::text ORDER BY att.attname <> 'lockgranted', att.attname::text)" \
	"    FILTER (WHERE lower(att.attname::text) = 'lockgranted'))[1] AS c_granted,"            \
	"  (array_agg(att.attname::text ORDER BY att.attname <> 'lockedby', att.attname::text)"    \
	"    FILTER (WHERE lower(att.attname::text) = 'lockedby'))[1] AS c_by"                     \
	"  FROM pg_catalog.pg_attribute att"                                                       \
	"  WHERE att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped) a"              \
	" WHERE c.relkind IN ('r', 'p')"                                                           \
	"  AND lower(c.relname::text) = lower($1::text)"                                           \
	"  AND (pg_catalog.cardinality($2::text[]) = 0"                                            \
	"       OR n.nspname::text = ANY ($2::text[]))"                                            \
	"  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"                  \
	"  AND n.nspname::text !~ '^pg_(toast_)?temp_'"                                            \
	"  AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')"                                    \
	"  AND pg_catalog.has_table_privilege(c.oid, 'SELECT')"                                    \
	"  AND a.c_id IS NOT NULL AND a.c_locked IS NOT NULL"                                      \
	"  AND a.c_granted IS NOT NULL AND a.c_by IS NOT NULL"

/*
 * The signature of the catalogue's candidate lock tables: every relation
 * with the table's name, with its schema, column count and privileges. It
 * changes whenever a lock table appears, goes, is renamed or moved, gains
 * or loses columns, or is granted or revoked; a renamed column fails the
 * poll itself (42703). The poll computes it in the same round trip as the
 * rows, so a new lock table is seen by the next poll (DESIGN.md section
 * 4). It covers the candidates, not the filtered set, so that it stays
 * cheap (one pass over pg_class, no pg_attribute): at 1 000 schemas the
 * full discovery query costs several times the whole poll.
 */
#define DB_SIGNATURE(tbl)                                                                          \
	"(SELECT COALESCE(pg_catalog.md5(pg_catalog.string_agg("                                   \
	"  n.nspname || '.' || c.relname || ':' || c.relnatts || ':'"                              \
	"  || COALESCE(c.relacl::text, '') || ':' || COALESCE(n.nspacl::text, ''),"                \
	"  '/' ORDER BY n.nspname, c.relname)), '')"                                               \
	" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"    \
	" WHERE c.relkind IN ('r', 'p') AND lower(c.relname::text) = lower(" tbl "::text))"

/* The first row has a NULL schema and only the signature when no table matched. */
static const char db_discover_sql[] =
    "SELECT d.nsp, d.rel, d.c_id, d.c_locked, d.c_granted, d.c_by, s.sig"
    " FROM (SELECT " DB_SIGNATURE("$1") " AS sig) s"
    " LEFT JOIN (" DB_DISCOVER_BODY ") d ON true"
    " ORDER BY d.nsp NULLS FIRST, d.rel";

/* In the poll statement the table name is $3. */
static const char db_poll_signature_sql[] = DB_SIGNATURE("$3");

/* Appends to a growing string; false on allocation failure. */
struct db_buf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void db_buf_add(struct db_buf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 4096;
		char *p;

		while (b->len + n + 1 > cap)
			cap *= 2;
		p = realloc(b->s, cap);
		if (p == NULL) {
			b->failed = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

/*
 * The poll statement. The CTE holds now() and the advisory lock attempt:
 * a CTE with a volatile function is evaluated once and never inlined, and
 * CASE does not evaluate pg_try_advisory_lock when $2 is false. Each arm
 * of the UNION reads one table's id = 1 row, tagged with its index; the
 * LEFT JOIN keeps the now() row when no table has one. Casts pin the result
 * types so the cached plan survives harmless column type changes, and
 * lockgranted is text in to_char's fixed format, exactly what db_release
 * compares against. $1 is the time zone (NULL: no conversion). The CTE
 * also carries the signature of the lock tables the catalogue has now ($3
 * is the table name), so that a table added, dropped or renamed since the
 * last discovery is noticed by this very poll.
 */
static char *db_build_poll_sql(PGconn *conn, const struct db_entry *set, size_t n)
{
	struct db_buf b = {0};
	char line[64];

	snprintf(line, sizeof line, "%" PRId64, DB_LEADER_KEY);
	db_buf_add(&b, "WITH n AS (SELECT (EXTRACT(epoch FROM pg_catalog.now()) * 1000000)::int8"
	               " AS now_us, CASE WHEN $2::bool THEN pg_catalog.pg_try_advisory_lock(");
	db_buf_add(&b, line);
	db_buf_add(&b, ") END AS leader, ");
	db_buf_add(&b, db_poll_signature_sql);
	db_buf_add(&b, " AS sig)"
	               " SELECT n.now_us, n.leader, t.i, t.locked, t.lockedby, t.granted, t.zone_us,"
	               " n.sig FROM n LEFT JOIN (");
	if (n == 0)
		db_buf_add(&b,
		           "SELECT NULL::int4 AS i, NULL::bool AS locked, NULL::text AS lockedby,"
		           " NULL::text AS granted, NULL::int8 AS zone_us WHERE false");
	for (size_t i = 0; i < n && !b.failed; i++) {
		char *q[DB_NCOLS + 2] = {NULL};
		const char *src[DB_NCOLS + 2] = {set[i].col[0], set[i].col[1], set[i].col[2],
		                                 set[i].col[3], set[i].schema, set[i].table};
		bool ok = true;

		for (int k = 0; k < DB_NCOLS + 2; k++) {
			q[k] = PQescapeIdentifier(conn, src[k], strlen(src[k]));
			ok = ok && q[k] != NULL;
		}
		if (ok) {
			snprintf(line, sizeof line, "%sSELECT %zu%s, ", i > 0 ? " UNION ALL " : "",
			         i, i == 0 ? " AS i" : "");
			db_buf_add(&b, line);
			db_buf_add(&b, q[DB_COL_LOCKED]);
			db_buf_add(&b, i == 0 ? "::bool AS locked, " : "::bool, ");
			db_buf_add(&b, q[DB_COL_BY]);
			db_buf_add(&b, i == 0 ? "::text AS lockedby, " : "::text, ");
			db_buf_add(&b, "pg_catalog.to_char(");
			db_buf_add(&b, q[DB_COL_GRANTED]);
			db_buf_add(&b, "::timestamp, 'YYYY-MM-DD HH24:MI:SS.US')");
			db_buf_add(&b, i == 0 ? " AS granted, " : ", ");
			db_buf_add(&b, "(EXTRACT(epoch FROM ");
			db_buf_add(&b, q[DB_COL_GRANTED]);
			db_buf_add(&b, "::timestamp AT TIME ZONE $1::text) * 1000000)::int8");
			db_buf_add(&b, i == 0 ? " AS zone_us FROM " : " FROM ");
			db_buf_add(&b, q[DB_NCOLS]);
			db_buf_add(&b, ".");
			db_buf_add(&b, q[DB_NCOLS + 1]);
			db_buf_add(&b, " WHERE ");
			db_buf_add(&b, q[DB_COL_ID]);
			db_buf_add(&b, " = 1");
		} else {
			b.failed = true;
		}
		for (int k = 0; k < DB_NCOLS + 2; k++)
			PQfreemem(q[k]);
	}
	db_buf_add(&b, ") t ON true");
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/*
 * Prepares db->poll_sql under a fresh name (names are never reused, so a
 * statement left behind by a failed DEALLOCATE cannot collide). -EOPNOTSUPP
 * when the server will not keep a named statement for us: a pooler in
 * transaction mode may answer the prepare on one backend and see the name
 * already taken (42P05) there.
 */
static int db_prepare_poll(struct db *db, char *err, size_t cap)
{
	static const Oid types[DB_POLL_NPARAMS] = {DB_TEXTOID, DB_BOOLOID, DB_TEXTOID};
	PGresult *r = NULL;
	int rc;

	db->stmt_gen++;
	snprintf(db->stmt_name, sizeof db->stmt_name, "lock_arbiter_poll_%" PRIu64, db->stmt_gen);
	rc = db_roundtrip(db, DB_SEND_PREPARE, db->stmt_name, db->poll_sql, DB_POLL_NPARAMS, types, NULL,
	                  "poll: prepare", &r, err, cap);
	if (rc < 0)
		return rc;
	if (db_sqlstate_is(r, "42P05")) {
		PQclear(r);
		return -EOPNOTSUPP;
	}
	rc = db_check(r, PGRES_COMMAND_OK, "poll: prepare", err, cap);
	PQclear(r);
	if (rc == 0)
		db->prepared = true;
	return rc;
}

/* Drops the current poll statement from the session. */
static int db_deallocate(struct db *db, char *err, size_t cap)
{
	char sql[96];
	PGresult *r = NULL;
	int rc;

	if (!db->prepared)
		return 0;
	db->prepared = false;
	/* The name is ours and plain ASCII: no quoting beyond the quotes. */
	snprintf(sql, sizeof sql, "DEALLOCATE \"%s\"", db->stmt_name);
	rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, sql, 0, NULL, NULL, "discover: deallocate", &r,
	                  err, cap);
	if (rc < 0)
		return rc;
	/* An unknown name (26000) is what we wanted anyway. */
	rc = db_sqlstate_is(r, "26000")
	         ? 0
	         : db_check(r, PGRES_COMMAND_OK, "discover: deallocate", err, cap);
	PQclear(r);
	return rc;
}

static void db_tables_from_set(struct db_table *t, const struct db_entry *set, size_t n, bool *ok)
{
	*ok = true;
	for (size_t i = 0; i < n; i++) {
		t[i].schema = db_strdup(set[i].schema);
		t[i].table = db_strdup(set[i].table);
		if (t[i].schema == NULL || t[i].table == NULL)
			*ok = false;
	}
}

int db_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
                struct db_table **out, size_t *n_out, char *err, size_t cap)
{
	static const Oid types[2] = {DB_TEXTOID, DB_TEXTOID};
	struct db_entry *set = NULL;
	struct db_table *tables = NULL;
	char *array = NULL, *sql = NULL, *want_table = NULL;
	char sig[sizeof db->sig];
	int first;
	const char *vals[2];
	PGresult *r = NULL;
	size_t n = 0;
	bool ok;
	int rc;

	if (table == NULL || out == NULL || n_out == NULL || (n_schemas > 0 && schemas == NULL)) {
		db_seterr(err, cap, "discover: bad arguments");
		return -EINVAL;
	}
	for (size_t i = 0; i < n_schemas; i++) {
		if (schemas[i] == NULL) {
			db_seterr(err, cap, "discover: bad arguments");
			return -EINVAL;
		}
	}
	array = db_text_array(schemas, n_schemas);
	if (array == NULL)
		goto nomem;
	vals[0] = table;
	vals[1] = array;
	rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, db_discover_sql, 2, types, vals, "discover", &r,
	                  err, cap);
	if (rc < 0) {
		free(array);
		return rc;
	}
	rc = db_check(r, PGRES_TUPLES_OK, "discover", err, cap);
	if (rc < 0) {
		PQclear(r);
		free(array);
		return rc == -ENOENT ? -EIO : rc;
	}

	if (PQntuples(r) < 1 || PQnfields(r) != 7) {
		PQclear(r);
		free(array);
		db_seterr(err, cap, "discover: malformed result");
		return -EIO;
	}
	snprintf(sig, sizeof sig, "%s", PQgetvalue(r, 0, 6));
	/* The first row carries only the signature when no table matched. */
	first = PQgetisnull(r, 0, 0) ? 1 : 0;
	n = (size_t)PQntuples(r) - (size_t)first;
	set = calloc(n > 0 ? n : 1, sizeof *set);
	tables = calloc(n > 0 ? n : 1, sizeof *tables);
	if (set == NULL || tables == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		int row = (int)i + first;

		set[i].schema = db_strdup(PQgetvalue(r, row, 0));
		set[i].table = db_strdup(PQgetvalue(r, row, 1));
		if (set[i].schema == NULL || set[i].table == NULL)
			goto nomem;
		for (int c = 0; c < DB_NCOLS; c++) {
			set[i].col[c] = db_strdup(PQgetvalue(r, row, 2 + c));
			if (set[i].col[c] == NULL)
				goto nomem;
		}
	}
	PQclear(r);
	r = NULL;

	sql = db_build_poll_sql(db->conn, set, n);
	if (sql == NULL)
		goto nomem;
	/*
	 * The same set as last time (the common case every 60 s) keeps its
	 * prepared statement; a new set replaces it.
	 */
	if (db->poll_sql == NULL || strcmp(sql, db->poll_sql) != 0) {
		char *old_sql = db->poll_sql;

		rc = db_deallocate(db, err, cap);
		if (rc == 0) {
			db->poll_sql = sql;
			rc = db->no_prepare ? 0 : db_prepare_poll(db, err, cap);
			if (rc == -EOPNOTSUPP) {
				db->no_prepare = true;
				rc = 0;
			}
			db->poll_sql = old_sql;
		}
		if (rc < 0)
			goto fail;
		free(old_sql);
		db->poll_sql = sql;
		sql = NULL;
		db_set_free(db->set, db->n_set);
		db->set = set;
		db->n_set = n;
		set = NULL;
	} else {
		db_set_free(set, n);
		set = NULL;
	}
	free(sql);

	want_table = db_strdup(table);
	db_tables_from_set(tables, db->set, db->n_set, &ok);
	if (!ok || want_table == NULL) {
		db_tables_free(tables, n);
		free(want_table);
		free(array);
		db_seterr(err, cap, "discover: out of memory");
		return -ENOMEM;
	}
	free(db->want_table);
	db->want_table = want_table;
	free(array);
	snprintf(db->sig, sizeof db->sig, "%s", sig);
	*out = tables;
	*n_out = n;
	return 0;

nomem:
	db_seterr(err, cap, "discover: out of memory");
	rc = -ENOMEM;
fail:
	PQclear(r);
	free(sql);
	free(array);
	db_set_free(set, n);
	free(tables);
	/* A failed prepare leaves no statement: db_poll prepares lazily. */
	return rc;
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

/* ---- poll ------------------------------------------------------------- */

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

/* Copies one poll result into p; -EIO when the server sent something odd. */
static int db_read_poll(const PGresult *r, size_t n, bool asked, const char *sig,
                        struct db_poll *p, char *err, size_t cap)
{
	int nt = PQntuples(r);

	if (nt < 1 || PQnfields(r) != 8 || PQgetisnull(r, 0, 0) ||
	    db_parse_i64(PQgetvalue(r, 0, 0), &p->now_us) < 0) {
		db_seterr(err, cap, "poll: malformed result");
		return -EIO;
	}
	p->tables_changed = strcmp(PQgetvalue(r, 0, 7), sig) != 0;
	p->leader = -1;
	if (asked)
		p->leader = !PQgetisnull(r, 0, 1) && PQgetvalue(r, 0, 1)[0] == 't';
	p->n = n;
	p->rows = calloc(n > 0 ? n : 1, sizeof *p->rows);
	if (p->rows == NULL) {
		db_seterr(err, cap, "poll: out of memory");
		return -ENOMEM;
	}
	for (int k = 0; k < nt; k++) {
		struct db_lock_row *row;
		int64_t i;

		if (PQgetisnull(r, k, 2))
			continue; /* no table had a row: the LEFT JOIN's filler */
		if (db_parse_i64(PQgetvalue(r, k, 2), &i) < 0 || i < 0 || (uint64_t)i >= n) {
			db_seterr(err, cap, "poll: malformed result");
			return -EIO;
		}
		row = &p->rows[i];
		if (row->present)
			continue; /* id is not unique in this table: keep the first */
		row->present = true;
		row->locked = !PQgetisnull(r, k, 3) && PQgetvalue(r, k, 3)[0] == 't';
		if (!PQgetisnull(r, k, 4) &&
		    (row->lockedby = db_strdup(PQgetvalue(r, k, 4))) == NULL)
			goto nomem;
		if (!PQgetisnull(r, k, 5) &&
		    (row->lockgranted = db_strdup(PQgetvalue(r, k, 5))) == NULL)
			goto nomem;
		if (!PQgetisnull(r, k, 6)) {
			if (db_parse_i64(PQgetvalue(r, k, 6), &row->granted_zone_us) < 0) {
				db_seterr(err, cap, "poll: malformed result");
				return -EIO;
			}
			row->granted_zone_valid = true;
		}
	}
	return 0;
nomem:
	db_seterr(err, cap, "poll: out of memory");
	return -ENOMEM;
}

/* The tables passed to db_poll must be the discovered set, in order. */
static bool db_same_set(const struct db *db, const struct db_table *t, size_t n)
{
	if (n != db->n_set || (n > 0 && t == NULL))
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i].schema == NULL || t[i].table == NULL ||
		    strcmp(t[i].schema, db->set[i].schema) != 0 ||
		    strcmp(t[i].table, db->set[i].table) != 0)
			return false;
	return true;
}

int db_poll(struct db *db, const struct db_table *tables, size_t n, const char *tz, bool try_leader,
            struct db_poll *out, char *err, size_t cap)
{
	bool ask = try_leader && !db_is_leader(db);
	const char *vals[DB_POLL_NPARAMS] = {tz, ask ? "t" : "f", db->want_table};
	struct db_poll p = {0};
	PGresult *r = NULL;
	int rc;

	if (out == NULL || db->poll_sql == NULL || !db_same_set(db, tables, n)) {
		db_seterr(err, cap, "poll: tables are not the set of the last db_discover");
		return -EINVAL;
	}
	if (db->conn == NULL) {
		db_seterr(err, cap, "poll: not connected");
		return -ENOTCONN;
	}

	/* After a reconnect the statement is gone with the old session. */
	if (!db->prepared && !db->no_prepare) {
		rc = db_prepare_poll(db, err, cap);
		if (rc == -EOPNOTSUPP)
			db->no_prepare = true;
		else if (rc < 0)
			return rc;
	}
	if (db->prepared) {
		rc = db_roundtrip(db, DB_SEND_PREPARED, db->stmt_name, NULL, DB_POLL_NPARAMS, NULL,
		                  vals, "poll", &r, err, cap);
		if (rc < 0)
			return rc;
		/*
		 * 26000: the session lost the statement, which happens only
		 * behind a pooler in transaction mode (PgBouncer before 1.21
		 * or without max_prepared_statements). Send the text instead,
		 * from now on, on this connection.
		 */
		if (db_sqlstate_is(r, "26000")) {
			PQclear(r);
			r = NULL;
			db->prepared = false;
			db->no_prepare = true;
		}
	}
	if (r == NULL) {
		static const Oid types[DB_POLL_NPARAMS] = {DB_TEXTOID, DB_BOOLOID, DB_TEXTOID};

		rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, db->poll_sql, DB_POLL_NPARAMS, types,
		                  vals, "poll", &r, err, cap);
		if (rc < 0)
			return rc;
	}
	/*
	 * If the statement failed after pg_try_advisory_lock succeeded, the
	 * session keeps the lock (advisory session locks ignore rollback)
	 * while we do not count it; the next successful attempt takes it
	 * again and the state is right from then on.
	 */
	rc = db_check(r, PGRES_TUPLES_OK, "poll", err, cap);
	if (rc == 0)
		rc = db_read_poll(r, n, ask, db->sig, &p, err, cap);
	PQclear(r);
	if (rc < 0) {
		db_poll_done(&p);
		return rc;
	}
	if (p.leader == 1)
		db->leader = true;
	*out = p;
	return 0;
}

/* ---- release and time zones ------------------------------------------ */

/* The discovered entry for t, for its real column names; NULL if unknown. */
static const struct db_entry *db_find(const struct db *db, const struct db_table *t)
{
	for (size_t i = 0; i < db->n_set; i++)
		if (strcmp(db->set[i].schema, t->schema) == 0 &&
		    strcmp(db->set[i].table, t->table) == 0)
			return &db->set[i];
	return NULL;
}

int db_release(struct db *db, const struct db_table *t, const char *lockedby,
               const char *lockgranted, char *err, size_t cap)
{
	static const Oid types[2] = {DB_TEXTOID, DB_TEXTOID};
	const struct db_entry *e;
	const char *cols[DB_NCOLS];
	char *q[DB_NCOLS + 2] = {NULL};
	const char *vals[2] = {lockedby, lockgranted};
	struct db_buf b = {0};
	PGresult *r = NULL;
	int64_t count = 0;
	int rc;

	if (t == NULL || t->schema == NULL || t->table == NULL) {
		db_seterr(err, cap, "release: bad arguments");
		return -EINVAL;
	}
	if (db->conn == NULL) {
		db_seterr(err, cap, "release: not connected");
		return -ENOTCONN;
	}
	/* A table from outside discovery gets Liquibase's own column names. */
	e = db_find(db, t);
	for (int c = 0; c < DB_NCOLS; c++)
		cols[c] = e != NULL ? e->col[c] : db_col_names[c];
	for (int k = 0; k < DB_NCOLS + 2; k++) {
		const char *s = k < DB_NCOLS ? cols[k] : k == DB_NCOLS ? t->schema : t->table;

		q[k] = PQescapeIdentifier(db->conn, s, strlen(s));
		if (q[k] == NULL)
			b.failed = true;
	}
	if (!b.failed) {
		db_buf_add(&b, "UPDATE ");
		db_buf_add(&b, q[DB_NCOLS]);
		db_buf_add(&b, ".");
		db_buf_add(&b, q[DB_NCOLS + 1]);
		db_buf_add(&b, " SET ");
		db_buf_add(&b, q[DB_COL_LOCKED]);
		db_buf_add(&b, " = false, ");
		db_buf_add(&b, q[DB_COL_GRANTED]);
		db_buf_add(&b, " = NULL, ");
		db_buf_add(&b, q[DB_COL_BY]);
		db_buf_add(&b, " = NULL WHERE ");
		db_buf_add(&b, q[DB_COL_ID]);
		db_buf_add(&b, " = 1 AND ");
		db_buf_add(&b, q[DB_COL_LOCKED]);
		db_buf_add(&b, " AND ");
		db_buf_add(&b, q[DB_COL_BY]);
		db_buf_add(&b, " IS NOT DISTINCT FROM $1::text AND ");
		db_buf_add(&b, q[DB_COL_GRANTED]);
		db_buf_add(&b, " IS NOT DISTINCT FROM $2::timestamp");
	}
	for (int k = 0; k < DB_NCOLS + 2; k++)
		PQfreemem(q[k]);
	if (b.failed) {
		free(b.s);
		db_seterr(err, cap, "release: out of memory");
		return -ENOMEM;
	}

	rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, b.s, 2, types, vals, "release", &r, err, cap);
	free(b.s);
	if (rc < 0)
		return rc;
	rc = db_check(r, PGRES_COMMAND_OK, "release", err, cap);
	if (rc == 0 && db_parse_i64(PQcmdTuples(r), &count) < 0) {
		db_seterr(err, cap, "release: malformed command tag");
		rc = -EIO;
	}
	PQclear(r);
	if (rc < 0)
		return rc;
	return count > 0 ? 1 : 0;
}

int db_timezone_valid(struct db *db, const char *tz, char *err, size_t cap)
{
	static const Oid types[1] = {DB_TEXTOID};
	const char *vals[1] = {tz};
	PGresult *r = NULL;
	int rc;

	if (tz == NULL) {
		db_seterr(err, cap, "timezone: bad arguments");
		return -EINVAL;
	}
	rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, "SELECT pg_catalog.now() AT TIME ZONE $1::text",
	                  1, types, vals, "timezone", &r, err, cap);
	if (rc < 0)
		return rc;
	/* 22023 invalid_parameter_value: "time zone ... not recognized". */
	if (db_sqlstate_is(r, "22023")) {
		db_seterr(err, cap, "timezone: \"%s\" is not a time zone the server knows", tz);
		PQclear(r);
		return 0;
	}
	rc = db_check(r, PGRES_TUPLES_OK, "timezone", err, cap);
	PQclear(r);
	return rc < 0 ? rc : 1;
}
