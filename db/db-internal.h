/*
 * db-internal.h - what the files of the db library share (not installed,
 * not for callers: db.h is the contract).
 *
 * struct db is one database: the front (db.c) and a backend, PostgreSQL
 * (pg-*.c) or MySQL/MariaDB (my-*.c), chosen by the URL scheme, behind
 * struct db_backend. Each backend sends one statement at a time
 * asynchronously and waits for its result on a CLOCK_MONOTONIC deadline
 * (opts.query_timeout_us) through db_wait, so that no file of the library
 * ever blocks on a dead peer.
 */
#ifndef LOCK_ARBITER_DB_INTERNAL_H
#define LOCK_ARBITER_DB_INTERNAL_H

#include "db.h"

#include <libpq-fe.h>

/* The four columns of a Liquibase lock table, in the order we keep them. */
enum { DB_COL_ID, DB_COL_LOCKED, DB_COL_GRANTED, DB_COL_BY, DB_NCOLS };

/* A discovered lock table with the real (case-preserved) column names. */
struct db_entry {
	char *schema;
	char *table;
	char *col[DB_NCOLS];
};

struct db;

/*
 * A backend: the functions of db.h with the same contracts, plus its
 * lifecycle. init parses db->conninfo (never connecting) and sets
 * db->label; done frees what init and the backend's calls allocated;
 * connect makes one attempt within opts.connect_timeout_s (the front
 * keeps the backoff); connected says a connection exists, broken that it
 * is known to be lost.
 */
struct db_backend {
	const char *name;
	int (*init)(struct db *db, char *err, size_t cap);
	void (*done)(struct db *db);
	int (*connect)(struct db *db, char *err, size_t cap);
	void (*disconnect)(struct db *db);
	bool (*connected)(const struct db *db);
	bool (*broken)(const struct db *db);
	int (*discover)(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
			struct db_table **out, size_t *n_out, char *err, size_t cap);
	int (*poll)(struct db *db, const struct db_table *tables, size_t n, const char *timezone,
		    bool try_leader, struct db_poll *out, char *err, size_t cap);
	int (*release)(struct db *db, const struct db_table *t, const char *lockedby,
		       const char *lockgranted, char *err, size_t cap);
	int (*sessions)(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
			size_t *n_out, bool *visible, char *err, size_t cap);
	int (*terminate)(struct db *db, int64_t pid, char *err, size_t cap);
	int (*timezone_valid)(struct db *db, const char *tz, char *err, size_t cap);
};

extern const struct db_backend db_pg_backend;
#ifdef LOCK_ARBITER_HAVE_MYSQL
extern const struct db_backend db_my_backend;
#endif

struct db {
	const struct db_backend *be;
	char *conninfo; /* the caller's string; may hold a password, wiped on free */
	char *label;
	struct db_options opts;
	bool leader;
	struct db_my *my; /* the MySQL/MariaDB backend's state */

	/* PostgreSQL */
	PGconn *conn; /* NULL when not connected */

	/* Reconnect backoff, in the caller's CLOCK_MONOTONIC microseconds. */
	int64_t backoff_us;
	int64_t retry_at_us;
	bool retry_pending;
	uint64_t rng;

	/* The last discovered set and the poll statement built for it. */
	struct db_entry *set;
	size_t n_set;
	char *want_table;   /* the discovery's table name, for the poll's signature */
	char sig[40];       /* the set's signature: md5 hex, "" for no table */
	char *poll_sql;
	bool prepared;   /* poll_sql is prepared on conn as stmt_name */
	bool no_prepare; /* this connection cannot keep named statements */
	uint64_t stmt_gen;
	char stmt_name[48];
};

enum db_send { DB_SEND_PARAMS, DB_SEND_PREPARED, DB_SEND_PREPARE };

/* Type OIDs from pg_type.h, which is a server header we do not include. */
#define DB_BOOLOID 16
#define DB_INT8OID 20
#define DB_TEXTOID 25

/* The columns' names as Liquibase writes them, indexed by DB_COL_*. */
extern const char *const db_col_names[DB_NCOLS];

/* Appends to a growing string; false on allocation failure. */
struct db_buf {
	char *s;
	size_t len, cap;
	bool failed;
};
void db_buf_add(struct db_buf *b, const char *s);

/* Formats a one-line error into err (never a password). */
__attribute__((format(printf, 3, 4))) void db_seterr(char *err, size_t cap, const char *fmt, ...);
/* "what: <libpq's message>" on one line. */
void db_seterr_conn(char *err, size_t cap, const char *what, const PGconn *conn);
char *db_strdup(const char *s);
int db_parse_i64(const char *s, int64_t *out);
bool db_sqlstate_is(const PGresult *r, const char *state);
/* 0 when r has status want; else -EIO (-ENOENT for a vanished table) with err. */
int db_check(const PGresult *r, ExecStatusType want, const char *what, char *err, size_t cap);
/*
 * One round trip: sends (kind) and collects the result into *out (an
 * error result too). Transport failures drop the connection: -ENOTCONN,
 * -ETIMEDOUT, -EINTR.
 */
int db_roundtrip(struct db *db, enum db_send kind, const char *name, const char *sql,
                 int nparams, const Oid *types, const char *const *vals, const char *what,
                 PGresult **out, char *err, size_t cap);

/* Shared by the files of the library (db.c). */
int64_t db_mono_us(void);
/* "what: msg" with any quoted part of msg (which may hold a password) hidden. */
void db_seterr_redacted(char *err, size_t cap, const char *what, const char *msg);
/* "host:port/dbname" from parsed conninfo and libpq's environment defaults. */
char *db_make_label(const PQconninfoOption *opts);
void db_conninfo_free(PQconninfoOption *opts);
/* d with random jitter, for reconnect backoff. */
int64_t db_jitter(struct db *db, int64_t d);
int db_roundtrip_until(struct db *db, int64_t deadline, enum db_send kind, const char *name,
                       const char *sql, int nparams, const Oid *types,
                       const char *const *vals, const char *what, PGresult **out, char *err,
                       size_t cap);
/* Waits for events on fd until deadline (see roundtrip.c): 1, -ETIMEDOUT, -EINTR. */
int db_wait(struct db *db, int fd, short events, int64_t deadline);

/* PostgreSQL's side of the backend table (pg-*.c). */
int pg_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
		struct db_table **out, size_t *n_out, char *err, size_t cap);
int pg_poll(struct db *db, const struct db_table *tables, size_t n, const char *timezone,
	    bool try_leader, struct db_poll *out, char *err, size_t cap);
int pg_release(struct db *db, const struct db_table *t, const char *lockedby,
	       const char *lockgranted, char *err, size_t cap);
int pg_sessions(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
		size_t *n_out, bool *visible, char *err, size_t cap);
int pg_terminate(struct db *db, int64_t pid, char *err, size_t cap);
int pg_timezone_valid(struct db *db, const char *tz, char *err, size_t cap);
/* Drops the connection after a failed wait and says why; returns rc. */
int db_wait_failed(struct db *db, int rc, const char *what, char *err, size_t cap);
void db_set_free(struct db_entry *set, size_t n);

#endif
