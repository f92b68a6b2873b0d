/*
 * poll.c - discovering the lock tables and reading them all in one round
 * trip per poll, with the catalogue's signature of the set. See db.h.
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

/* The poll statement's parameters: time zone, try_leader, table name. */
#define DB_POLL_NPARAMS 3

const char *const db_col_names[DB_NCOLS] = {"id", "locked", "lockgranted", "lockedby"};

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


void db_buf_add(struct db_buf *b, const char *s)
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

int pg_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
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

/* ---- poll ------------------------------------------------------------- */


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

int pg_poll(struct db *db, const struct db_table *tables, size_t n, const char *tz, bool try_leader,
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
