/*
 * my-internal.h - what the MySQL/MariaDB backend's files share (my-conn.c:
 * the URL, connecting, one statement at a time; my-poll.c: discovery and
 * the poll; my-act.c: release, sessions, time zones). Not for callers.
 *
 * MariaDB Connector/C's non-blocking API (the _start/_cont calls) does
 * the protocol; every wait goes through db_wait, so the caller's event
 * loop and deadlines apply as with PostgreSQL. A MySQL "database" plays
 * the role of a PostgreSQL schema (DESIGN.md section 3).
 */
#ifndef LOCK_ARBITER_MY_INTERNAL_H
#define LOCK_ARBITER_MY_INTERNAL_H

#include "db-internal.h"

#include <mysql.h>

/*
 * (database time, highest connection id seen so far) from the polls:
 * connection ids grow with every connection, so a session whose id is above
 * a sample's began after it, and one at or below it began before it. This
 * is how the session guard places a MySQL session around a death
 * (my-act.c). The samples start over with each connection (a restarted
 * server counts from 1 again); ids wrapping past 2^32 are not handled.
 */
#define MY_SAMPLES 256
struct my_sample {
	int64_t at_us;
	uint64_t max_id;
};

struct db_my {
	MYSQL *m; /* NULL: not connected */
	bool broken;
	char *host, *user, *password, *database; /* from the URL; password wiped */
	unsigned port;
	int ssl_mode; /* MY_SSL_* */
	char *ssl_ca, *ssl_cert, *ssl_key;

	/* The discovered set (db_entry: real column names) and its signature. */
	struct db_entry *set;
	size_t n_set;
	char *sig_sql; /* the signature's subquery for this discovery's schemas */
	char sig[40];

	struct my_sample samples[MY_SAMPLES]; /* a ring, oldest first from head */
	size_t n_samples, head;
};

/*
 * SQL true when this role sees every session in the process list: it
 * has PROCESS (or SUPER) globally. USER_PRIVILEGES may list other users'
 * grants too, so the row must be the current user's.
 */
#define MY_SEES_ALL_SQL                                                                            \
	"EXISTS(SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN"          \
	" ('PROCESS', 'SUPER') AND GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1),"  \
	" '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), ''''))"

enum { MY_SSL_PREFERRED, MY_SSL_DISABLED, MY_SSL_REQUIRED, MY_SSL_VERIFY_IDENTITY };

/*
 * One statement on the connection within deadline. *res gets the result
 * set when the statement has one (the caller frees it), else NULL. 0, or
 * -ENOTCONN (the connection is gone and dropped), -ETIMEDOUT / -EINTR
 * (dropped too), -ENOENT (a table or column vanished), -EPERM (denied),
 * -EIO any other error; err names what and the server's message.
 */
int my_query(struct db *db, const char *sql, int64_t deadline, MYSQL_RES **res,
	     const char *what, char *err, size_t cap);
/* A string literal for sql ('...' escaped for the connection), or NULL on no memory. */
char *my_literal(struct db *db, const char *s);
/* An identifier quoted with backticks (inner backticks doubled), or NULL. */
char *my_ident(const char *s);
/* Parses "secs[.frac]" (UNIX_TIMESTAMP) into microseconds. 0 or -EIO. */
int my_parse_epoch(const char *s, int64_t *us);
/* The discovered entry of t (for its real column names), or NULL (my-poll.c). */
const struct db_entry *my_find(const struct db_my *my, const struct db_table *t);
/* `database`.`table` of e; NULL on no memory. */
char *my_qualified(const struct db_entry *e);
/* Records a (time, highest connection id) sample. */
void my_sample_add(struct db_my *my, int64_t at_us, uint64_t max_id);

int my_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
		struct db_table **out, size_t *n_out, char *err, size_t cap);
int my_poll(struct db *db, const struct db_table *tables, size_t n, const char *timezone,
	    bool try_leader, struct db_poll *out, char *err, size_t cap);
int my_release(struct db *db, const struct db_table *t, const char *lockedby,
	       const char *lockgranted, char *err, size_t cap);
int my_sessions(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
		size_t *n_out, bool *visible, char *err, size_t cap);
int my_terminate(struct db *db, int64_t pid, char *err, size_t cap);
int my_timezone_valid(struct db *db, const char *tz, char *err, size_t cap);

#endif
