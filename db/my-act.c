/*
 * my-act.c - MySQL/MariaDB: the compare-and-set release, the sessions the
 * guard looks at, KILL, and the time zone check (DESIGN.md section 6).
 */
#include "my-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * UPDATE t SET LOCKED = 0, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1
 * AND LOCKED <> 0 AND LOCKEDBY <=> ? AND LOCKGRANTED <=> ?, with <=> the
 * NULL-safe equality, LOCKEDBY compared as binary (the default collation
 * ignores case) and LOCKGRANTED as the DATETIME it is.
 */
int my_release(struct db *db, const struct db_table *t, const char *lockedby,
	       const char *lockgranted, char *err, size_t cap)
{
	const struct db_entry *e = my_find(db->my, t);
	int64_t deadline = db_mono_us() + db->opts.query_timeout_us;
	struct db_buf b = {0};
	char *c[DB_NCOLS] = {NULL}, *q = NULL, *by = NULL, *gr = NULL;
	MYSQL_RES *r = NULL;
	int rc;

	if (e == NULL) {
		db_seterr(err, cap, "release: %s.%s is not a discovered lock table", t->schema,
			  t->table);
		return -ENOENT;
	}
	if (db->my->m == NULL) {
		db_seterr(err, cap, "release: not connected");
		return -ENOTCONN;
	}
	for (int i = 0; i < DB_NCOLS; i++)
		c[i] = my_ident(e->col[i]);
	q = my_qualified(e);
	by = lockedby != NULL ? my_literal(db, lockedby) : NULL;
	gr = lockgranted != NULL ? my_literal(db, lockgranted) : NULL;
	bool ok = q && c[0] && c[1] && c[2] && c[3] && (lockedby == NULL || by) &&
		  (lockgranted == NULL || gr);
	if (ok) {
		db_buf_add(&b, "UPDATE ");
		db_buf_add(&b, q);
		db_buf_add(&b, " SET ");
		db_buf_add(&b, c[DB_COL_LOCKED]);
		db_buf_add(&b, " = 0, ");
		db_buf_add(&b, c[DB_COL_GRANTED]);
		db_buf_add(&b, " = NULL, ");
		db_buf_add(&b, c[DB_COL_BY]);
		db_buf_add(&b, " = NULL WHERE ");
		db_buf_add(&b, c[DB_COL_ID]);
		db_buf_add(&b, " = 1 AND ");
		db_buf_add(&b, c[DB_COL_LOCKED]);
		db_buf_add(&b, " <> 0 AND ");
		if (by != NULL) {
			db_buf_add(&b, "CONVERT(");
			db_buf_add(&b, c[DB_COL_BY]);
			db_buf_add(&b, " USING utf8mb4) COLLATE utf8mb4_bin <=> CONVERT(");
			db_buf_add(&b, by);
			db_buf_add(&b, " USING utf8mb4) COLLATE utf8mb4_bin");
		} else {
			db_buf_add(&b, c[DB_COL_BY]);
			db_buf_add(&b, " <=> NULL");
		}
		db_buf_add(&b, " AND ");
		db_buf_add(&b, c[DB_COL_GRANTED]);
		db_buf_add(&b, " <=> ");
		db_buf_add(&b, gr != NULL ? gr : "NULL");
		ok = !b.failed;
	}
	for (int i = 0; i < DB_NCOLS; i++)
		free(c[i]);
	free(q);
	free(by);
	free(gr);
	if (!ok) {
		free(b.s);
		db_seterr(err, cap, "release: out of memory");
		return -ENOMEM;
	}
	rc = my_query(db, b.s, deadline, &r, "release", err, cap);
	free(b.s);
	mysql_free_result(r);
	if (rc < 0)
		return rc;
	return mysql_affected_rows(db->my->m) == 1 ? 1 : 0;
}

/* The address of a PROCESSLIST HOST ("ip:port", "[v6]:port"), canonical; false when it is none. */
static bool host_addr(const char *host, char *out, size_t cap)
{
	char buf[80];
	const char *end = strrchr(host, ':');
	const char *start = host;
	unsigned char a[16];

	if (end == NULL || (size_t)(end - host) >= sizeof(buf))
		return false;
	if (*start == '[' && end > start && end[-1] == ']') {
		start++;
		end--;
	}
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1)
		return inet_ntop(AF_INET, a, out, (socklen_t)cap) != NULL;
	if (inet_pton(AF_INET6, buf, a) == 1)
		return inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL;
	return false;
}

/* An address as given (a %zone dropped), canonical; false when it is no IP. */
static bool canon(const char *addr, char *out, size_t cap)
{
	char buf[80];
	unsigned char a[16];
	size_t n = strcspn(addr, "%");

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, addr, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1)
		return inet_ntop(AF_INET, a, out, (socklen_t)cap) != NULL;
	if (inet_pton(AF_INET6, buf, a) == 1)
		return inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL;
	return false;
}

/*
 * Places a session by its connection id among the polls' samples: it
 * began after the last sample whose highest id is below its own, and no
 * later than the first sample whose highest id reaches it.
 */
static void place(const struct db_my *my, uint64_t id, int64_t *after, int64_t *before)
{
	for (size_t i = 0; i < my->n_samples; i++) {
		const struct my_sample *s = &my->samples[(my->head + i) % MY_SAMPLES];
		if (s->max_id < id) {
			*after = s->at_us;
		} else {
			if (*before == 0 || s->at_us < *before)
				*before = s->at_us;
			break;
		}
	}
}

/*
 * Between statements a session is COMMAND Sleep whether or not it has a
 * transaction open; InnoDB's list of transactions (PROCESS reads it too)
 * tells the two apart, so that an open transaction keeps the lock as
 * PostgreSQL's "idle in transaction" does: its client, if it still runs
 * somewhere (a partitioned node), may yet commit.
 */
static int open_transactions(struct db *db, struct db_session *s, size_t n, int64_t deadline,
			     char *err, size_t cap)
{
	MYSQL_RES *r = NULL;
	MYSQL_ROW row;
	int rc = my_query(db, "SELECT CAST(trx_mysql_thread_id AS CHAR) FROM information_schema.INNODB_TRX",
			  deadline, &r, "sessions: transactions", err, cap);

	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc;
	while (r != NULL && (row = mysql_fetch_row(r)) != NULL) {
		int64_t id;
		if (row[0] == NULL || db_parse_i64(row[0], &id) < 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (s[i].pid == id && strcmp(s[i].state, "idle") == 0)
				snprintf(s[i].state, sizeof(s[i].state), "idle in transaction");
	}
	mysql_free_result(r);
	return 0;
}

/*
 * The process list has no start time, so the guard gets bounds
 * (db.h): no later than now minus TIME (seconds in its current command)
 * and than the first poll that saw its id, and after the last poll that
 * saw only lower ids. COMMAND Sleep is "idle" unless InnoDB lists a
 * transaction of it (open_transactions).
 */
int my_sessions(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
		size_t *n_out, bool *visible, char *err, size_t cap)
{
	struct db_my *my = db->my;
	int64_t deadline = db_mono_us() + db->opts.query_timeout_us, now = 0;
	char want[8][64];
	size_t n_want = 0, n = 0;
	MYSQL_RES *r = NULL;
	MYSQL_ROW row;
	int rc;

	for (size_t i = 0; i < n_addrs && n_want < 8; i++)
		if (canon(addrs[i], want[n_want], sizeof(want[0])))
			n_want++;
	rc = my_query(db,
		      "SELECT NULL, NULL, NULL, NULL, NULL, CAST(UNIX_TIMESTAMP(NOW(6)) AS CHAR),"
		      " CAST(" MY_SEES_ALL_SQL " AS CHAR),"
		      " CAST((SELECT MAX(ID) FROM information_schema.PROCESSLIST) AS CHAR)"
		      " UNION ALL SELECT CAST(ID AS CHAR), HOST, COMMAND, CAST(TIME AS CHAR),"
		      " LEFT(INFO, 150), NULL, NULL, NULL FROM information_schema.PROCESSLIST"
		      " WHERE ID <> CONNECTION_ID()",
		      deadline, &r, "sessions", err, cap);
	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc;
	size_t rows = r != NULL ? (size_t)mysql_num_rows(r) : 0;
	struct db_session *s = calloc(rows > 0 ? rows : 1, sizeof(*s));
	if (r == NULL || mysql_num_fields(r) != 8 || s == NULL) {
		mysql_free_result(r);
		free(s);
		db_seterr(err, cap, s == NULL ? "sessions: out of memory" : "sessions: malformed result");
		return s == NULL ? -ENOMEM : -EIO;
	}
	*visible = false;
	while ((row = mysql_fetch_row(r)) != NULL) {
		char addr[64];
		int64_t id, t;

		if (row[0] == NULL) { /* the header row */
			int64_t maxid;
			if (my_parse_epoch(row[5], &now) < 0) {
				rc = -EIO;
				break;
			}
			*visible = row[6] != NULL && strcmp(row[6], "1") == 0;
			if (*visible && row[7] != NULL && db_parse_i64(row[7], &maxid) == 0 &&
			    maxid > 0)
				my_sample_add(my, now, (uint64_t)maxid);
			continue;
		}
		if (row[1] == NULL || !host_addr(row[1], addr, sizeof(addr)))
			continue; /* a unix socket, or a host name: not a pod's address */
		bool ours = false;
		for (size_t i = 0; i < n_want && !ours; i++)
			ours = strcmp(addr, want[i]) == 0;
		if (!ours)
			continue;
		if (db_parse_i64(row[0], &id) < 0 || id <= 0) {
			rc = -EIO;
			break;
		}
		struct db_session *x = &s[n++];
		x->pid = id;
		snprintf(x->addr, sizeof(x->addr), "%s", addr);
		snprintf(x->state, sizeof(x->state), "%s",
			 row[2] == NULL ? "" : strcmp(row[2], "Sleep") == 0 ? "idle"
					   : strcmp(row[2], "Query") == 0 ? "active" : row[2]);
		snprintf(x->query, sizeof(x->query), "%s", row[4] != NULL ? row[4] : "");
		for (char *c = x->query; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20)
				*c = ' ';
		if (row[3] != NULL && db_parse_i64(row[3], &t) == 0 && t >= 0)
			x->since_us = -t; /* made absolute below, once now is known */
	}
	mysql_free_result(r);
	if (rc == 0 && now == 0)
		rc = -EIO;
	if (rc < 0) {
		free(s);
		db_seterr(err, cap, "sessions: malformed result");
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		struct db_session *x = &s[i];
		int64_t before = 0, after = 0;

		x->since_us = now + x->since_us * 1000000;
		place(my, (uint64_t)x->pid, &after, &before);
		x->started_us = before != 0 && before < x->since_us ? before : x->since_us;
		x->started_after_us = after;
	}
	rc = *visible && n > 0 ? open_transactions(db, s, n, deadline, err, cap) : 0;
	if (rc < 0) {
		free(s);
		return rc;
	}
	*out = s;
	*n_out = n;
	return 0;
}

int my_terminate(struct db *db, int64_t pid, char *err, size_t cap)
{
	int64_t deadline = db_mono_us() + db->opts.query_timeout_us;
	char sql[48];
	MYSQL_RES *r = NULL;
	int rc;

	snprintf(sql, sizeof(sql), "KILL CONNECTION %lld", (long long)pid);
	rc = my_query(db, sql, deadline, &r, "terminate", err, cap);
	mysql_free_result(r);
	if (rc == 0)
		return 1;
	if (db->my->m != NULL && mysql_errno(db->my->m) == ER_NO_SUCH_THREAD)
		return 0;
	return rc;
}

int my_timezone_valid(struct db *db, const char *tz, char *err, size_t cap)
{
	int64_t deadline = db_mono_us() + db->opts.query_timeout_us;
	char *z = my_literal(db, tz);
	struct db_buf b = {0};
	MYSQL_RES *r = NULL;
	MYSQL_ROW row;
	int rc;

	if (z == NULL) {
		db_seterr(err, cap, "time zone: out of memory");
		return -ENOMEM;
	}
	/* NULL when the server does not know the zone (or has no zone tables loaded). */
	db_buf_add(&b, "SELECT CONVERT_TZ('2000-01-01 00:00:00', ");
	db_buf_add(&b, z);
	db_buf_add(&b, ", '+00:00') IS NOT NULL");
	free(z);
	if (b.failed) {
		free(b.s);
		db_seterr(err, cap, "time zone: out of memory");
		return -ENOMEM;
	}
	rc = my_query(db, b.s, deadline, &r, "time zone", err, cap);
	free(b.s);
	if (rc < 0)
		return rc;
	row = r != NULL ? mysql_fetch_row(r) : NULL;
	rc = row != NULL && row[0] != NULL && strcmp(row[0], "1") == 0 ? 1 : 0;
	mysql_free_result(r);
	return rc;
}
