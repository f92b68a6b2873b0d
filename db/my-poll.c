/*
 * my-poll.c - MySQL/MariaDB: discovering the lock tables and reading them
 * all in one round trip (DESIGN.md sections 3 and 4).
 *
 * The databases looked at are the URL's and every --schema. A lock table
 * is a table named like --table, compared without case (Liquibase creates
 * DATABASECHANGELOGLOCK in upper case; names are case-sensitive on Linux,
 * so the real name is kept), with the columns ID, LOCKED, LOCKGRANTED and
 * LOCKEDBY in any case. LOCKED is BIT(1), TINYINT(1) or TINYINT, as the
 * Liquibase version that created the table chose: it is read as
 * LOCKED <> 0. The poll carries a signature of the catalogue's candidate
 * tables, so a table that appears is adopted at the next poll.
 */
#include "my-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns, lower case, in DB_COL_* order. */
static const char *const cols[DB_NCOLS] = {"id", "locked", "lockgranted", "lockedby"};

/*
 * "(s1, s2, ...)" of string literals for the URL's database and schemas.
 * NULL on no memory.
 */
static char *schema_list(struct db *db, char *const *schemas, size_t n)
{
	struct db_buf b = {0};
	char *list;

	db_buf_add(&b, "(");
	list = my_literal(db, db->my->database);
	db_buf_add(&b, list != NULL ? list : "");
	b.failed |= list == NULL;
	free(list);
	for (size_t i = 0; i < n; i++) {
		char *l = my_literal(db, schemas[i]);
		db_buf_add(&b, ", ");
		db_buf_add(&b, l != NULL ? l : "");
		b.failed |= l == NULL;
		free(l);
	}
	db_buf_add(&b, ")");
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* The WHERE clause of discovery: the four columns of tables named like table, any case. */
static char *where_clause(struct db *db, const char *table, const char *list, char *err,
			  size_t cap)
{
	char *t = my_literal(db, table);
	struct db_buf w = {0};

	/* The plain IN lets the server open only these databases; BINARY makes it exact. */
	db_buf_add(&w, " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ");
	db_buf_add(&w, list != NULL ? list : "");
	db_buf_add(&w, " AND BINARY TABLE_SCHEMA IN ");
	db_buf_add(&w, list != NULL ? list : "");
	db_buf_add(&w, " AND LOWER(TABLE_NAME) = LOWER(");
	db_buf_add(&w, t != NULL ? t : "");
	db_buf_add(&w, ") AND LOWER(COLUMN_NAME) IN ('id', 'locked', 'lockgranted', 'lockedby')");
	w.failed |= t == NULL;
	free(t);
	if (w.failed) {
		free(w.s);
		db_seterr(err, cap, "discover: out of memory");
		return NULL;
	}
	return w.s;
}

/*
 * The signature of the candidate tables as a subquery giving one string,
 * computed at every poll, so it must stay cheap with a thousand databases:
 * table names only (information_schema.TABLES, no column files opened) and
 * the exact names Liquibase creates (as --table gives it, upper case as on
 * MySQL, lower case), each an equality the server answers by opening just
 * that name in each database instead of reading every table's columns
 * (COLUMNS with LOWER(): 30 ms a poll at 1 000 databases). A lock table in
 * another mixed case is found by discovery; a renamed column fails the
 * poll (-ENOENT), which also rediscovers.
 */
static char *signature_sql(struct db *db, const char *table, const char *list)
{
	size_t n = strlen(table);
	char *names[3] = {malloc(n + 1), malloc(n + 1), malloc(n + 1)};
	struct db_buf b = {0};
	size_t k = 0;

	b.failed = names[0] == NULL || names[1] == NULL || names[2] == NULL;
	for (size_t i = 0; !b.failed && i <= n; i++) {
		names[0][i] = table[i];
		names[1][i] = (char)toupper((unsigned char)table[i]);
		names[2][i] = (char)tolower((unsigned char)table[i]);
	}
	db_buf_add(&b, "(SELECT COALESCE(MD5(GROUP_CONCAT(CONCAT_WS(0x1f, s, t) ORDER BY s, t"
		       " SEPARATOR 0x1e)), '') FROM (");
	/*
	 * One equality a name: MariaDB 10.11 looks an IN list on TABLE_NAME up
	 * by its first value only, and finds nothing for the others.
	 */
	for (int v = 0; v < 3 && !b.failed; v++) {
		bool dup = false;
		for (int w = 0; w < v; w++)
			dup = dup || strcmp(names[v], names[w]) == 0;
		if (dup)
			continue;
		char *lit = my_literal(db, names[v]);
		db_buf_add(&b, k++ > 0 ? " UNION ALL " : "");
		db_buf_add(&b, "SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES"
			       " WHERE TABLE_SCHEMA IN ");
		db_buf_add(&b, list);
		db_buf_add(&b, " AND BINARY TABLE_SCHEMA IN ");
		db_buf_add(&b, list);
		db_buf_add(&b, " AND TABLE_NAME = ");
		db_buf_add(&b, lit != NULL ? lit : "");
		b.failed |= lit == NULL;
		free(lit);
	}
	db_buf_add(&b, ") AS c)");
	for (int v = 0; v < 3; v++)
		free(names[v]);
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

int my_discover(struct db *db, const char *table, char *const *schemas, size_t n_schemas,
		struct db_table **out, size_t *n_out, char *err, size_t cap)
{
	struct db_my *my = db->my;
	int64_t deadline = db_mono_us() + db->opts.query_timeout_us;
	char *list = schema_list(db, schemas, n_schemas);
	char *where = list != NULL ? where_clause(db, table, list, err, cap) : NULL;
	char *sig = where != NULL ? signature_sql(db, table, list) : NULL;
	struct db_buf q = {0};
	MYSQL_RES *r = NULL;
	int rc;

	free(list);
	if (where == NULL || sig == NULL) {
		free(where);
		db_seterr(err, cap, "discover: out of memory");
		return -ENOMEM;
	}
	db_buf_add(&q, "SELECT TABLE_SCHEMA, TABLE_NAME");
	for (int c = 0; c < DB_NCOLS; c++) {
		db_buf_add(&q, ", MAX(CASE WHEN LOWER(COLUMN_NAME) = '");
		db_buf_add(&q, cols[c]);
		db_buf_add(&q, "' THEN COLUMN_NAME END)");
	}
	db_buf_add(&q, ", ");
	db_buf_add(&q, sig);
	db_buf_add(&q, where);
	db_buf_add(&q, " GROUP BY TABLE_SCHEMA, TABLE_NAME HAVING COUNT(DISTINCT LOWER(COLUMN_NAME)) = 4"
		       " ORDER BY BINARY TABLE_SCHEMA, BINARY TABLE_NAME");
	free(where);
	if (q.failed) {
		free(q.s);
		free(sig);
		db_seterr(err, cap, "discover: out of memory");
		return -ENOMEM;
	}
	rc = my_query(db, q.s, deadline, &r, "discover", err, cap);
	free(q.s);
	if (rc < 0 || r == NULL || mysql_num_fields(r) != 3 + DB_NCOLS) {
		mysql_free_result(r);
		free(sig);
		if (rc == 0)
			db_seterr(err, cap, "discover: malformed result");
		return rc < 0 ? (rc == -ENOENT ? -EIO : rc) : -EIO;
	}
	size_t n = (size_t)mysql_num_rows(r);
	struct db_table *tables = calloc(n > 0 ? n : 1, sizeof(*tables));
	struct db_entry *set = calloc(n > 0 ? n : 1, sizeof(*set));
	bool ok = tables != NULL && set != NULL;
	char sigv[40] = "";
	MYSQL_ROW row;
	size_t i = 0;

	while (ok && (row = mysql_fetch_row(r)) != NULL && i < n) {
		for (int f = 0; f < 2 + DB_NCOLS; f++)
			ok = ok && row[f] != NULL;
		if (!ok)
			break;
		set[i].schema = db_strdup(row[0]);
		set[i].table = db_strdup(row[1]);
		tables[i].schema = db_strdup(row[0]);
		tables[i].table = db_strdup(row[1]);
		for (int c = 0; c < DB_NCOLS; c++)
			set[i].col[c] = db_strdup(row[2 + c]);
		ok = set[i].schema && set[i].table && tables[i].schema && tables[i].table &&
		     set[i].col[0] && set[i].col[1] && set[i].col[2] && set[i].col[3];
		if (row[2 + DB_NCOLS] != NULL)
			snprintf(sigv, sizeof(sigv), "%s", row[2 + DB_NCOLS]);
		i++;
	}
	mysql_free_result(r);
	if (!ok) {
		db_tables_free(tables, n);
		db_set_free(set, n);
		free(sig);
		db_seterr(err, cap, "discover: out of memory or a malformed row");
		return -ENOMEM;
	}
	/* No table at all: the signature of nothing is the empty string. */
	db_set_free(my->set, my->n_set);
	free(my->sig_sql);
	my->set = set;
	my->n_set = i;
	my->sig_sql = sig;
	snprintf(my->sig, sizeof(my->sig), "%s", sigv);
	*out = tables;
	*n_out = i;
	return 0;
}

const struct db_entry *my_find(const struct db_my *my, const struct db_table *t)
{
	for (size_t i = 0; i < my->n_set; i++)
		if (strcmp(my->set[i].schema, t->schema) == 0 && strcmp(my->set[i].table, t->table) == 0)
			return &my->set[i];
	return NULL;
}

char *my_qualified(const struct db_entry *e)
{
	char *s = my_ident(e->schema), *t = my_ident(e->table), *out = NULL;
	size_t n = s != NULL && t != NULL ? strlen(s) + strlen(t) + 2 : 0;

	if (n > 0 && (out = malloc(n)) != NULL)
		snprintf(out, n, "%s.%s", s, t);
	free(s);
	free(t);
	return out;
}

/* The column c of e, quoted; NULL on no memory. */
static char *col(const struct db_entry *e, int c)
{
	return my_ident(e->col[c]);
}

/*
 * The GET_LOCK name of a database as a SQL literal: 'lock-arbiter/DB', or,
 * past GET_LOCK's 64 characters, 'lock-arbiter/#' and a 64-bit FNV-1a hash
 * of the name. Lock names are server-wide, so the database names it; every
 * arbiter computes the same. Built once here rather than in SQL: at 1 000
 * databases the poll's per-table name expressions cost more than reading
 * the rows. NULL on no memory.
 */
static char *lock_name_sql(struct db *db, const char *database)
{
	char name[80];

	if (strlen(database) <= 64 - strlen("lock-arbiter/")) {
		snprintf(name, sizeof(name), "lock-arbiter/%s", database);
	} else {
		uint64_t h = UINT64_C(14695981039346656037);
		for (const unsigned char *c = (const unsigned char *)database; *c != '\0'; c++) {
			h ^= *c;
			h *= UINT64_C(1099511628211);
		}
		snprintf(name, sizeof(name), "lock-arbiter/#%016llx", (unsigned long long)h);
	}
	return my_literal(db, name);
}

/*
 * One statement: a header row (k -1: now, the catalogue's signature, the
 * leadership attempt, the highest connection id), then for table i a row
 * k i when its row id 1 exists. Every value is cast to text, so the UNION
 * has one type per column.
 */
static char *poll_sql(struct db *db, const struct db_table *tables, size_t n, const char *tz,
		      bool ask_leader, bool ask_table)
{
	struct db_my *my = db->my;
	struct db_buf b = {0};
	char *zone = tz != NULL ? my_literal(db, tz) : NULL;
	char *name = lock_name_sql(db, my->database);
	char k[32];

	db_buf_add(&b, "SELECT -1, CAST(UNIX_TIMESTAMP(NOW(6)) AS CHAR), ");
	db_buf_add(&b, my->sig_sql != NULL ? my->sig_sql : "''");
	b.failed |= name == NULL;
	if (ask_leader) {
		db_buf_add(&b, ", CAST(GET_LOCK(");
		db_buf_add(&b, name != NULL ? name : "''");
		db_buf_add(&b, ", 0) AS CHAR)");
	} else {
		db_buf_add(&b, ", NULL");
	}
	/*
	 * The highest connection id only when every session is visible: a
	 * maximum over the role's own sessions would not bound the others.
	 */
	db_buf_add(&b, ", CAST(IF(");
	db_buf_add(&b, MY_SEES_ALL_SQL);
	db_buf_add(&b, ", (SELECT MAX(ID) FROM information_schema.PROCESSLIST), NULL) AS CHAR), NULL");
	for (size_t i = 0; i < n; i++) {
		const struct db_entry *e = my_find(my, &tables[i]);
		char *q = e != NULL ? my_qualified(e) : NULL;
		char *id = e != NULL ? col(e, DB_COL_ID) : NULL, *lk = e ? col(e, DB_COL_LOCKED) : NULL;
		char *gr = e != NULL ? col(e, DB_COL_GRANTED) : NULL, *by = e ? col(e, DB_COL_BY) : NULL;

		if (q == NULL || id == NULL || lk == NULL || gr == NULL || by == NULL)
			b.failed = true;
		snprintf(k, sizeof(k), "%zu", i);
		db_buf_add(&b, " UNION ALL SELECT ");
		db_buf_add(&b, k);
		db_buf_add(&b, ", CAST(");
		db_buf_add(&b, lk ? lk : "");
		db_buf_add(&b, " <> 0 AS CHAR), CAST(");
		db_buf_add(&b, gr ? gr : "");
		db_buf_add(&b, " AS CHAR), CAST(");
		db_buf_add(&b, by ? by : "");
		db_buf_add(&b, " AS CHAR), ");
		if (zone != NULL) {
			db_buf_add(&b, "CAST(UNIX_TIMESTAMP(CONVERT_TZ(");
			db_buf_add(&b, gr ? gr : "");
			db_buf_add(&b, ", ");
			db_buf_add(&b, zone);
			db_buf_add(&b, ", '+00:00')) AS CHAR)");
		} else {
			db_buf_add(&b, "NULL");
		}
		/*
		 * One actor per database (DESIGN.md section 6): another arbiter
		 * may have this table's database as its URL's, or as a --schema.
		 */
		if (ask_table) {
			char *ln = lock_name_sql(db, e != NULL ? e->schema : "");
			db_buf_add(&b, ", CAST(IF(IS_USED_LOCK(");
			db_buf_add(&b, ln != NULL ? ln : "");
			db_buf_add(&b, ") = CONNECTION_ID(), 1, GET_LOCK(");
			db_buf_add(&b, ln != NULL ? ln : "");
			db_buf_add(&b, ", 0)) AS CHAR)");
			b.failed |= ln == NULL;
			free(ln);
		} else {
			db_buf_add(&b, ", NULL");
		}
		db_buf_add(&b, " FROM ");
		db_buf_add(&b, q ? q : "");
		db_buf_add(&b, " WHERE ");
		db_buf_add(&b, id ? id : "");
		db_buf_add(&b, " = 1");
		free(q);
		free(id);
		free(lk);
		free(gr);
		free(by);
	}
	free(zone);
	free(name);
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

int my_poll(struct db *db, const struct db_table *tables, size_t n, const char *tz, bool try_leader,
	    struct db_poll *out, char *err, size_t cap)
{
	struct db_my *my = db->my;
	int64_t deadline = db_mono_us() + db->opts.query_timeout_us;
	bool ask = try_leader && !db->leader;
	char *sql = poll_sql(db, tables, n, tz, ask, try_leader);
	struct db_poll p = {.leader = -1};
	MYSQL_RES *r = NULL;
	MYSQL_ROW row;
	bool header = false;
	int rc;

	if (sql == NULL) {
		db_seterr(err, cap, "poll: out of memory");
		return -ENOMEM;
	}
	rc = my_query(db, sql, deadline, &r, "poll", err, cap);
	free(sql);
	if (rc < 0)
		return rc;
	if (r == NULL || mysql_num_fields(r) != 6) {
		mysql_free_result(r);
		db_seterr(err, cap, "poll: malformed result");
		return -EIO;
	}
	p.n = n;
	p.rows = calloc(n > 0 ? n : 1, sizeof(*p.rows));
	if (p.rows == NULL) {
		mysql_free_result(r);
		db_seterr(err, cap, "poll: out of memory");
		return -ENOMEM;
	}
	rc = 0;
	while (rc == 0 && (row = mysql_fetch_row(r)) != NULL) {
		int64_t k;

		if (row[0] == NULL || db_parse_i64(row[0], &k) < 0 || k < -1 || k >= (int64_t)n) {
			rc = -EIO;
			break;
		}
		if (k == -1) {
			int64_t maxid = 0;
			header = true;
			if (my_parse_epoch(row[1], &p.now_us) < 0) {
				rc = -EIO;
				break;
			}
			p.tables_changed = row[2] == NULL || strcmp(row[2], my->sig) != 0;
			if (ask)
				p.leader = row[3] != NULL && strcmp(row[3], "1") == 0;
			if (row[4] != NULL && db_parse_i64(row[4], &maxid) == 0 && maxid > 0)
				my_sample_add(my, p.now_us, (uint64_t)maxid);
			continue;
		}
		struct db_lock_row *lr = &p.rows[k];
		if (lr->present) {
			rc = -EIO; /* two rows with ID 1: not a table Liquibase made */
			break;
		}
		lr->present = true;
		lr->locked = row[1] != NULL && strcmp(row[1], "1") == 0;
		lr->lockgranted = row[2] != NULL ? db_strdup(row[2]) : NULL;
		lr->lockedby = row[3] != NULL ? db_strdup(row[3]) : NULL;
		if ((row[2] != NULL && lr->lockgranted == NULL) ||
		    (row[3] != NULL && lr->lockedby == NULL)) {
			rc = -ENOMEM;
			break;
		}
		lr->granted_zone_valid = row[4] != NULL && my_parse_epoch(row[4], &lr->granted_zone_us) == 0;
		lr->leader_known = row[5] != NULL;
		lr->leader = row[5] != NULL && strcmp(row[5], "1") == 0;
	}
	mysql_free_result(r);
	if (rc == 0 && !header)
		rc = -EIO;
	if (rc < 0) {
		db_poll_done(&p);
		db_seterr(err, cap, rc == -ENOMEM ? "poll: out of memory" : "poll: malformed result");
		return rc;
	}
	if (p.leader == 1)
		db->leader = true;
	/* A lock table the catalogue no longer has would have failed the poll (-ENOENT). */
	*out = p;
	return 0;
}
