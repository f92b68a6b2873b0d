/*
 * pg-conninfo.c - PostgreSQL: libpq's errors, and the label of a database
 * from its conninfo ("host:port/dbname", never a password).
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

/* what: PQerrorMessage(conn), on one line. libpq messages carry no password. */
void db_seterr_conn(char *err, size_t cap, const char *what, const PGconn *conn)
{
	const char *m = conn != NULL ? PQerrorMessage(conn) : NULL;

	db_seterr(err, cap, "%s: %s", what, m != NULL && m[0] != '\0' ? m : "connection failed");
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
char *db_make_label(const PQconninfoOption *opts)
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
void db_conninfo_free(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") == 0)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}
