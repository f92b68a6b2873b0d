/*
 * db.h - one database holding Liquibase lock tables: PostgreSQL, or
 * MySQL/MariaDB (a mysql:// or mariadb:// URL, when built with the mysql
 * option).
 *
 * The contract of the db library: connect by conninfo or URL, discover the
 * lock tables, read them all in one round trip per poll, release one with a
 * compare-and-set, and hold the session-level lock that makes one arbiter
 * the actor for a database (pg_try_advisory_lock; GET_LOCK on MySQL). It
 * knows nothing of Kubernetes or of the daemon, and it does not log: every
 * failure comes back as a negative errno with a one-line detail in the
 * caller's err buffer (never a password).
 *
 * Every round trip is asynchronous underneath (libpq's PQsend* and
 * PQconnectStart; MariaDB Connector/C's _start/_cont calls), waits through
 * opts.wait (the caller's event loop) or poll(), and is bounded by
 * opts.query_timeout_us, so a dead network cannot stall the caller; when
 * *opts.interrupt becomes non-zero during a wait the call gives up with
 * -EINTR. Identifiers are always quoted; values are passed as parameters
 * (PostgreSQL) or escaped by the client library for the connection
 * (MySQL).
 *
 * Errors: -ENOTCONN not connected (the connection was lost: call
 * db_ensure_connected), -ETIMEDOUT deadline passed (the connection is
 * dropped), -EINTR interrupted, -ENOENT a lock table vanished (rediscover),
 * -EAGAIN reconnect backoff not elapsed, -EIO any other server error,
 * -EINVAL bad arguments, -ENOMEM. After -EINTR the connection is dropped
 * as well (a statement was in flight); a renamed or dropped lock column
 * (SQLSTATE 42703; MySQL error 1054) is -ENOENT like a dropped table.
 *
 * Times are int64_t microseconds: database times since the Unix epoch (UTC),
 * intervals and the caller's clock from CLOCK_MONOTONIC.
 */
#ifndef LOCK_ARBITER_DB_H
#define LOCK_ARBITER_DB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The advisory lock key that elects one actor per database. */
#define DB_LEADER_KEY INT64_C(0x4c6f636b41726269) /* "LockArbi" */

struct db_options {
	int connect_timeout_s;          /* libpq connect_timeout, >= 2 */
	int64_t statement_timeout_us;   /* SET statement_timeout on connect */
	int64_t lock_timeout_us;        /* SET lock_timeout on connect */
	int64_t query_timeout_us;       /* client-side deadline per round trip */
	int64_t backoff_min_us;         /* first reconnect delay */
	int64_t backoff_max_us;         /* cap of the doubling delay */
	const volatile sig_atomic_t *interrupt; /* may be NULL */
	/*
	 * The caller's event loop, or NULL (then the library polls itself).
	 * Called for every wait on the connection's socket: returns when fd
	 * has one of events (the revents, > 0), at the CLOCK_MONOTONIC
	 * deadline (0), or when the caller gives up (-EINTR); -EAGAIN when it
	 * cannot wait now (the library then polls itself). This is how a
	 * database that stops answering holds up only its own caller.
	 */
	int (*wait)(void *ctx, int fd, short events, int64_t deadline_us);
	void *wait_ctx;
};

/* Fills o with the defaults: 2 s, 5 s, 1 s, 5 s, 250 ms, 15 s, no interrupt, no loop. */
void db_options_default(struct db_options *o);

struct db;

/* A lock table as the catalogue names it. Owned by the array it is in. */
struct db_table {
	char *schema;
	char *table;
};

/* One lock table's row as a poll read it. Strings owned by struct db_poll. */
struct db_lock_row {
	bool present;      /* a row with id = 1 exists */
	bool locked;
	char *lockedby;    /* NULL when SQL NULL */
	char *lockgranted; /* "YYYY-MM-DD HH:MM:SS.ffffff" as stored, or NULL */
	bool granted_zone_valid; /* granted_zone_us is set */
	int64_t granted_zone_us; /* LOCKGRANTED read in the poll's time zone */
	/*
	 * MySQL/MariaDB, where a --schema is another database: whether this
	 * connection is the actor for this table's database (leader), as
	 * asked for it with try_leader. Not known (PostgreSQL: the database
	 * is the connection's): db_poll.leader and db_is_leader decide.
	 */
	bool leader_known;
	bool leader;
};

struct db_poll {
	int64_t now_us; /* the database's now() */
	int leader;     /* pg_try_advisory_lock result: 1, 0; -1 not asked */
	                /* (not asked either when already the leader) */
	bool tables_changed; /* the catalogue's lock tables differ from the */
	                     /* discovered set: call db_discover again */
	size_t n;
	struct db_lock_row *rows; /* rows[i] is tables[i] of the db_poll call */
};

/*
 * Parses conninfo (key=value or a postgresql:// URL) without connecting.
 * Adds application_name=lock-arbiter, connect_timeout, and TCP keepalives
 * unless the conninfo sets them. NULL with err filled when the conninfo
 * does not parse or on allocation failure. The copy of conninfo is the
 * db's and is wiped on db_free.
 */
struct db *db_new(const char *conninfo, const struct db_options *opts, char *err, size_t cap);
void db_free(struct db *db);

/*
 * "host:port/dbname", from the conninfo with libpq's environment defaults
 * (PGHOST, PGPORT, PGDATABASE, PGUSER). Never contains a password. Owned by
 * db.
 */
const char *db_label(const struct db *db);
/* "postgresql" or "mysql" (MySQL and MariaDB). */
const char *db_kind(const struct db *db);
/* True for a mysql:// or mariadb:// URL. */
bool db_is_mysql_url(const char *conninfo);

/*
 * Connects when not connected and the backoff since the last failure has
 * elapsed (now_mono_us from CLOCK_MONOTONIC): 0 connected (or already),
 * -EAGAIN waiting for the backoff, other negative errno on failure (the next
 * attempt is then scheduled with capped exponential backoff and jitter):
 * -ECONNREFUSED refused or rejected (authentication, unknown database),
 * -ETIMEDOUT no connection within connect_timeout_s, -EIO the session
 * settings failed. A lost connection is retried at once; only failed
 * attempts back off.
 * On connect it sets statement_timeout, lock_timeout and TimeZone=UTC.
 * A fresh connection is never the leader.
 */
int db_ensure_connected(struct db *db, int64_t now_mono_us, char *err, size_t cap);
bool db_is_connected(const struct db *db);
/* Drops the connection (and so the advisory lock). */
void db_disconnect(struct db *db);
/* True while this connection holds the advisory lock. */
bool db_is_leader(const struct db *db);

/*
 * Finds the lock tables: relations whose name equals table
 * case-insensitively, with columns id, locked, lockgranted and lockedby, in
 * the given schemas (exact names) or, when n_schemas is 0, in every schema.
 * Sorted by schema then table. On success *out (caller frees with
 * db_tables_free) and *n_out are written and prepared statements for
 * db_poll are (re)built for this set.
 */
int db_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
		struct db_table **out, size_t *n_out, char *err, size_t cap);
void db_tables_free(struct db_table *tables, size_t n);

/*
 * Reads every table's row (WHERE id = 1) and now() in one round trip,
 * together with the signature of the lock tables the catalogue holds now:
 * out->tables_changed says that a table appeared, vanished or was renamed
 * since db_discover (the rows read are still those of the discovered set).
 * timezone: when not NULL, LOCKGRANTED is also read as a time in that zone
 * (granted_zone_us). try_leader: also attempt pg_try_advisory_lock when not
 * yet the leader. On success fills *out (release with db_poll_done).
 * tables must be the set last passed to/returned by db_discover.
 */
int db_poll(struct db *db, const struct db_table *tables, size_t n, const char *timezone,
	    bool try_leader, struct db_poll *out, char *err, size_t cap);
void db_poll_done(struct db_poll *p);

/*
 * The compare-and-set release of DESIGN.md section 6:
 *   UPDATE s.t SET locked=false, lockgranted=null, lockedby=null WHERE id=1
 *   AND locked AND lockedby IS NOT DISTINCT FROM $1
 *   AND lockgranted IS NOT DISTINCT FROM $2
 * lockedby and lockgranted exactly as db_poll returned them (NULL allowed).
 * Returns 1 released, 0 the lock moved on, negative errno on failure.
 */
int db_release(struct db *db, const struct db_table *t, const char *lockedby,
	       const char *lockgranted, char *err, size_t cap);

/*
 * A database session from a client address (PostgreSQL's
 * pg_stat_activity), for the session guard. Times are database times.
 */
struct db_session {
	int64_t pid;
	char addr[64];      /* the client address, no port */
	char state[32];     /* "active", "idle in transaction", ... ("" unknown) */
	/*
	 * When the session began, as two bounds (database times, 0 unknown):
	 * it began at or before started_us and after started_after_us.
	 * PostgreSQL knows the moment (backend_start: both are it);
	 * MySQL/MariaDB only bounds it (see my-act.c).
	 */
	int64_t started_us;
	int64_t started_after_us;
	int64_t since_us;   /* when it entered its state (state_change); 0 unknown */
	char query[160];    /* what it runs or last ran, white space folded, cut */
};

/*
 * The sessions, other than this connection's, whose client address is one
 * of addrs (IP literals; a %zone is dropped, anything else ignored). On
 * success *out (the caller frees it; may be empty) and *n_out are written,
 * and *visible says whether this role sees other roles' sessions at all
 * (superuser or pg_read_all_stats): when false only the role's own
 * sessions can be listed.
 */
int db_sessions(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
		size_t *n_out, bool *visible, char *err, size_t cap);

/*
 * pg_terminate_backend(pid): 1 signalled, 0 no such session, -EPERM not
 * permitted, other negative errno on failure.
 */
int db_terminate_session(struct db *db, int64_t pid, char *err, size_t cap);

/* 1 when the server knows the time zone name, 0 when not, <0 on error. */
int db_timezone_valid(struct db *db, const char *tz, char *err, size_t cap);

#endif
