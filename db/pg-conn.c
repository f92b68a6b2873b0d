/*
 * pg-conn.c - PostgreSQL: one connection's lifecycle, connecting with
 * libpq's asynchronous API on a CLOCK_MONOTONIC deadline, and the backend
 * table (db-internal.h) the front (db.c) calls through.
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

/* ---- lifecycle -------------------------------------------------------- */

static int pg_init(struct db *db, char *err, size_t cap)
{
	char *perr = NULL;
	PQconninfoOption *parsed = PQconninfoParse(db->conninfo, &perr);

	if (parsed == NULL) {
		db_seterr_redacted(err, cap, "conninfo", perr != NULL ? perr : "out of memory");
		PQfreemem(perr);
		return -EINVAL;
	}
	db->label = db_make_label(parsed);
	db_conninfo_free(parsed);
	if (db->label == NULL) {
		db_seterr(err, cap, "conninfo: out of memory");
		return -ENOMEM;
	}
	return 0;
}

void db_set_free(struct db_entry *set, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(set[i].schema);
		free(set[i].table);
		for (int c = 0; c < DB_NCOLS; c++)
			free(set[i].col[c]);
	}
	free(set);
}

static void pg_done(struct db *db)
{
	db_set_free(db->set, db->n_set);
	free(db->poll_sql);
	free(db->want_table);
}

/*
 * PQfinish closes the socket without cancelling a running statement; the
 * server notices on its next write and statement_timeout bounds the rest.
 * PQcancel is not used because it connects synchronously, which is exactly
 * the blocking this file avoids.
 */
static void pg_disconnect(struct db *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	db->leader = false;
	db->prepared = false;
	db->no_prepare = false;
}

static bool pg_connected(const struct db *db)
{
	return db->conn != NULL;
}

static bool pg_broken(const struct db *db)
{
	return db->conn != NULL && PQstatus(db->conn) == CONNECTION_BAD;
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
static int pg_connect(struct db *db, char *err, size_t cap)
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
	pg_disconnect(db);
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

const struct db_backend db_pg_backend = {
	.name = "postgresql",
	.init = pg_init,
	.done = pg_done,
	.connect = pg_connect,
	.disconnect = pg_disconnect,
	.connected = pg_connected,
	.broken = pg_broken,
	.discover = pg_discover,
	.poll = pg_poll,
	.release = pg_release,
	.sessions = pg_sessions,
	.terminate = pg_terminate,
	.timezone_valid = pg_timezone_valid,
};
