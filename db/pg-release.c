/*
 * release.c - the compare-and-set release (DESIGN.md section 6) and the
 * time zone check. See db.h.
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

int pg_release(struct db *db, const struct db_table *t, const char *lockedby,
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

int pg_timezone_valid(struct db *db, const char *tz, char *err, size_t cap)
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
