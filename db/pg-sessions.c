/*
 * sessions.c - the database sessions of a client address, for the session
 * guard (DESIGN.md section 6): pg_stat_activity, and pg_terminate_backend.
 * See db.h for the contract.
 */
#include "db-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/*
 * One row per session from one of $1 (inet[]), and always one row (the
 * LEFT JOIN's filler when none) carrying whether this role sees other
 * roles' sessions: pg_stat_activity shows their client_addr only to
 * superusers, members of pg_read_all_stats and the same role.
 */
static const char db_sessions_sql[] =
    "SELECT a.pid::int8, pg_catalog.host(a.client_addr), a.state,"
    " (EXTRACT(epoch FROM a.backend_start) * 1000000)::int8,"
    " (EXTRACT(epoch FROM a.state_change) * 1000000)::int8,"
    " pg_catalog.left(pg_catalog.regexp_replace(COALESCE(a.query, ''), '\\s+', ' ', 'g'), 150),"
    " (SELECT r.rolsuper OR pg_catalog.pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER')"
    "  FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)"
    " FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_stat_activity a"
    "  ON a.client_addr = ANY ($1::inet[]) AND a.pid <> pg_catalog.pg_backend_pid()"
    " ORDER BY a.pid NULLS FIRST";

/* "{a,b}" of the addresses that are IP literals, zones dropped. */
static char *db_inet_array(char *const *addrs, size_t n)
{
	size_t cap = 3, len = 0;
	char *s;

	for (size_t i = 0; i < n; i++)
		cap += strlen(addrs[i]) + 1;
	s = malloc(cap);
	if (s == NULL)
		return NULL;
	s[len++] = '{';
	for (size_t i = 0; i < n; i++) {
		char a[64];
		unsigned char bin[16];
		const char *zone = strchr(addrs[i], '%');
		size_t al = zone != NULL ? (size_t)(zone - addrs[i]) : strlen(addrs[i]);

		if (al == 0 || al >= sizeof(a))
			continue;
		memcpy(a, addrs[i], al);
		a[al] = '\0';
		if (inet_pton(AF_INET, a, bin) != 1 && inet_pton(AF_INET6, a, bin) != 1)
			continue; /* not an address: nothing to ask for */
		if (len > 1)
			s[len++] = ',';
		memcpy(s + len, a, al);
		len += al;
	}
	s[len++] = '}';
	s[len] = '\0';
	return s;
}

static void db_copy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
	snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

int pg_sessions(struct db *db, char *const *addrs, size_t n_addrs, struct db_session **out,
		size_t *n_out, bool *visible, char *err, size_t cap)
{
	static const Oid types[1] = {DB_TEXTOID};
	struct db_session *s = NULL;
	const char *vals[1];
	PGresult *r = NULL;
	size_t n = 0;
	char *array;
	int rc, nt;

	if (out == NULL || n_out == NULL || visible == NULL || (n_addrs > 0 && addrs == NULL)) {
		db_seterr(err, cap, "sessions: bad arguments");
		return -EINVAL;
	}
	array = db_inet_array(addrs, n_addrs);
	if (array == NULL) {
		db_seterr(err, cap, "sessions: out of memory");
		return -ENOMEM;
	}
	vals[0] = array;
	rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, db_sessions_sql, 1, types, vals, "sessions",
			  &r, err, cap);
	free(array);
	if (rc < 0)
		return rc;
	rc = db_check(r, PGRES_TUPLES_OK, "sessions", err, cap);
	nt = rc == 0 ? PQntuples(r) : 0;
	if (rc == 0 && (nt < 1 || PQnfields(r) != 7)) {
		db_seterr(err, cap, "sessions: malformed result");
		rc = -EIO;
	}
	if (rc < 0) {
		PQclear(r);
		return rc == -ENOENT ? -EIO : rc;
	}
	s = calloc((size_t)nt, sizeof(*s));
	if (s == NULL) {
		PQclear(r);
		db_seterr(err, cap, "sessions: out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < nt; i++) {
		struct db_session *x = &s[n];

		if (PQgetisnull(r, i, 0))
			continue; /* the filler row: no session */
		if (db_parse_i64(PQgetvalue(r, i, 0), &x->pid) < 0 ||
		    (!PQgetisnull(r, i, 3) && db_parse_i64(PQgetvalue(r, i, 3), &x->started_us) < 0) ||
		    (!PQgetisnull(r, i, 4) && db_parse_i64(PQgetvalue(r, i, 4), &x->since_us) < 0)) {
			free(s);
			PQclear(r);
			db_seterr(err, cap, "sessions: malformed result");
			return -EIO;
		}
		x->started_after_us = x->started_us; /* backend_start is exact */
		db_copy(x->addr, sizeof(x->addr), r, i, 1);
		db_copy(x->state, sizeof(x->state), r, i, 2);
		db_copy(x->query, sizeof(x->query), r, i, 5);
		n++;
	}
	*visible = !PQgetisnull(r, 0, 6) && PQgetvalue(r, 0, 6)[0] == 't';
	PQclear(r);
	*out = s;
	*n_out = n;
	return 0;
}

int pg_terminate(struct db *db, int64_t pid, char *err, size_t cap)
{
	static const Oid types[1] = {DB_INT8OID};
	char num[24];
	const char *vals[1] = {num};
	PGresult *r = NULL;
	int rc;

	snprintf(num, sizeof(num), "%lld", (long long)pid);
	rc = db_roundtrip(db, DB_SEND_PARAMS, NULL, "SELECT pg_catalog.pg_terminate_backend($1::int4)",
			  1, types, vals, "terminate", &r, err, cap);
	if (rc < 0)
		return rc;
	if (db_sqlstate_is(r, "42501")) {
		db_seterr_conn(err, cap, "terminate", db->conn);
		PQclear(r);
		return -EPERM;
	}
	rc = db_check(r, PGRES_TUPLES_OK, "terminate", err, cap);
	if (rc == 0)
		rc = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't' ? 1 : 0;
	PQclear(r);
	return rc == -ENOENT ? -EIO : rc;
}
