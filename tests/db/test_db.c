/*
 * test_db.c - the db library against a real PostgreSQL.
 *
 * Run by meson through tests/integration/with_pg.py, which starts a
 * throwaway server and exports LOCK_ARBITER_TEST_DSN. Every test works in a
 * database of its own, because db_discover looks at every schema of its
 * database. A second, plain libpq connection ("admin") plays Liquibase and
 * the operator: it creates tables, takes and moves locks, and blocks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"

#define MS INT64_C(1000)
#define SEC INT64_C(1000000)

static char g_host[128], g_port[32], g_user[64];
static char g_err[512];

/* ---- helpers ------------------------------------------------------------ */

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec / 1000;
}

static bool under_valgrind(void)
{
	return getenv("LOCK_ARBITER_UNDER_VALGRIND") != NULL;
}

static void conninfo_for(char *buf, size_t cap, const char *dbname)
{
	snprintf(buf, cap, "host=%s port=%s user=%s dbname=%s", g_host, g_port, g_user, dbname);
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *admin(const char *dbname)
{
	char ci[512];
	PGconn *c;

	conninfo_for(ci, sizeof ci, dbname);
	c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("admin connection to %s: %s", dbname, PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

__attribute__((format(printf, 2, 3))) static void exec_ok(PGconn *c, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	int n;
	PGresult *r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	sql = malloc((size_t)n + 1);
	assert_non_null(sql);
	va_start(ap, fmt);
	vsnprintf(sql, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("SQL failed: %s\n%s", PQerrorMessage(c), sql);
	PQclear(r);
	free(sql);
}

/* The first value of a one-row query, as a long long. */
static long long query_ll(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("query failed: %s\n%s", PQerrorMessage(c), sql);
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static void create_database(const char *name)
{
	PGconn *c = admin("postgres");

	exec_ok(c, "DROP DATABASE IF EXISTS \"%s\"", name);
	exec_ok(c, "CREATE DATABASE \"%s\"", name);
	PQfinish(c);
}

/* The lock table exactly as Liquibase 4.28 creates it on PostgreSQL. */
static void create_lock_table(PGconn *c, const char *schema, const char *table)
{
	exec_ok(c, "CREATE SCHEMA IF NOT EXISTS \"%s\"", schema);
	exec_ok(c,
	        "CREATE TABLE \"%s\".\"%s\" (id INTEGER NOT NULL, locked BOOLEAN NOT NULL,"
	        " lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255),"
	        " CONSTRAINT \"%s_pkey\" PRIMARY KEY (id))",
	        schema, table, table);
	exec_ok(c,
	        "INSERT INTO \"%s\".\"%s\" (id, locked, lockgranted, lockedby)"
	        " VALUES (1, FALSE, NULL, NULL)",
	        schema, table);
}

static void set_lock(PGconn *c, const char *schema, const char *lockedby, const char *granted)
{
	exec_ok(c,
	        "UPDATE \"%s\".databasechangeloglock SET locked = TRUE, lockedby = '%s',"
	        " lockgranted = %s%s%s WHERE id = 1",
	        schema, lockedby, granted ? "'" : "", granted ? granted : "NULL",
	        granted ? "'" : "");
}

static struct db *open_db_opts(const char *dbname, const struct db_options *o)
{
	char ci[512];
	struct db *db;

	conninfo_for(ci, sizeof ci, dbname);
	db = db_new(ci, o, g_err, sizeof g_err);
	if (db == NULL)
		fail_msg("db_new: %s", g_err);
	if (db_ensure_connected(db, mono_us(), g_err, sizeof g_err) != 0)
		fail_msg("db_ensure_connected: %s", g_err);
	assert_true(db_is_connected(db));
	return db;
}

static struct db *open_db(const char *dbname)
{
	return open_db_opts(dbname, NULL);
}

static void discover(struct db *db, const char *table, char *const *schemas, size_t ns,
                     struct db_table **t, size_t *n)
{
	int rc = db_discover(db, table, schemas, ns, t, n, g_err, sizeof g_err);

	if (rc != 0)
		fail_msg("db_discover: %d %s", rc, g_err);
}

static void poll_ok(struct db *db, const struct db_table *t, size_t n, const char *tz,
                    bool try_leader, struct db_poll *p)
{
	int rc = db_poll(db, t, n, tz, try_leader, p, g_err, sizeof g_err);

	if (rc != 0)
		fail_msg("db_poll: %d %s", rc, g_err);
	assert_int_equal(p->n, n);
}

static void assert_table(const struct db_table *t, const char *schema, const char *table)
{
	assert_string_equal(t->schema, schema);
	assert_string_equal(t->table, table);
}

/* A TCP port on 127.0.0.1 bound by us; listening or not, as asked. */
static int bound_port(bool listening, int *fd_out)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	if (listening)
		assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*fd_out = fd;
	return ntohs(a.sin_port);
}

/* ---- label and parsing --------------------------------------------------- */

struct saved_env {
	const char *name;
	char *value;
};

static struct saved_env saved[] = {
    {"PGHOST", NULL},     {"PGHOSTADDR", NULL}, {"PGPORT", NULL},
    {"PGDATABASE", NULL}, {"PGUSER", NULL},
};

static void env_save_clear(void)
{
	for (size_t i = 0; i < sizeof saved / sizeof saved[0]; i++) {
		const char *v = getenv(saved[i].name);

		saved[i].value = v != NULL ? strdup(v) : NULL;
		unsetenv(saved[i].name);
	}
}

static void env_restore(void)
{
	for (size_t i = 0; i < sizeof saved / sizeof saved[0]; i++) {
		if (saved[i].value != NULL)
			setenv(saved[i].name, saved[i].value, 1);
		else
			unsetenv(saved[i].name);
		free(saved[i].value);
		saved[i].value = NULL;
	}
}

static void expect_label(const char *conninfo, const char *want)
{
	struct db *db = db_new(conninfo, NULL, g_err, sizeof g_err);

	if (db == NULL)
		fail_msg("db_new(%s): %s", conninfo, g_err);
	assert_string_equal(db_label(db), want);
	assert_null(strstr(db_label(db), "s3cret"));
	assert_null(strstr(db_label(db), "alice"));
	db_free(db);
}

static void test_label(void **state)
{
	struct db_options o;
	struct db *db;

	(void)state;
	env_save_clear();
	expect_label("postgresql://alice:s3cret@db.example:6543/shop?sslmode=disable",
	             "db.example:6543/shop");
	expect_label("host=db.example port=6543 dbname=shop user=alice password=s3cret",
	             "db.example:6543/shop");
	expect_label("postgresql://alice:s3cret@a.example:5432,b.example:5433/shop",
	             "a.example,b.example:5432,5433/shop");
	expect_label("host=a.example,b.example port=5432,5433 dbname=x",
	             "a.example,b.example:5432,5433/x");
	expect_label("hostaddr=10.1.2.3 dbname=x", "10.1.2.3:5432/x");
	expect_label("dbname=x", "localhost:5432/x");
	/* A dbname that is itself a conninfo is never shown. */
	expect_label("host=h dbname='host=x password=s3cret'", "h:5432/?");

	/* libpq's environment, then its defaults: dbname defaults to the user. */
	setenv("PGUSER", "bob", 1);
	expect_label("", "localhost:5432/bob");
	setenv("PGHOST", "envhost", 1);
	setenv("PGPORT", "7777", 1);
	setenv("PGDATABASE", "envdb", 1);
	expect_label("", "envhost:7777/envdb");
	expect_label("dbname=other port=1", "envhost:1/other");
	env_restore();

	/* Parse errors quote the input; a password must not come back. */
	db = db_new("postgresql://alice:se%zzcret@h/db", NULL, g_err, sizeof g_err);
	assert_null(db);
	assert_true(g_err[0] != '\0');
	assert_null(strstr(g_err, "cret"));
	db = db_new("host=h password=s3cret bogus_option=1", NULL, g_err, sizeof g_err);
	assert_null(db);
	assert_null(strstr(g_err, "s3cret"));
	db = db_new("postgresql://alice:s3cret@[::1/db", NULL, g_err, sizeof g_err);
	assert_null(db);
	assert_null(strstr(g_err, "s3cret"));

	db_options_default(&o);
	o.connect_timeout_s = 1;
	assert_null(db_new("dbname=x", &o, g_err, sizeof g_err));
	db_free(NULL);
}

/*
 * Fuzz finding (tests/fuzz/fuzz_db): a password holding a double quote
 * ended the hiding of the quoted token early, and the parse error showed
 * the rest of the password.
 */
static void test_parse_error_hides_a_password_with_a_quote(void **state)
{
	(void)state;
	assert_null(db_new("postgresql://alice:ab\"s3cretpart%zz@h/db", NULL, g_err, sizeof g_err));
	assert_true(g_err[0] != '\0');
	assert_null(strstr(g_err, "s3cret"));
	assert_null(strstr(g_err, "part"));
}

/* ---- discovery ------------------------------------------------------------- */

static void test_discover(void **state)
{
	char *const some[] = {"tenant_b", "tenant_a", "nosuch"};
	char *const lower[] = {"upper"};
	struct db_table *t = NULL;
	struct db_poll p = {0};
	size_t n = 0;
	PGconn *c;
	struct db *db;
	char ci[512];

	(void)state;
	create_database("disc");
	c = admin("disc");
	create_lock_table(c, "public", "databasechangeloglock");
	create_lock_table(c, "tenant_a", "databasechangeloglock");
	create_lock_table(c, "tenant_b", "databasechangeloglock");
	create_lock_table(c, "tenant_b", "my_lock");
	create_lock_table(c, "private", "databasechangeloglock");
	/* Created by hand with quoted upper-case names throughout. */
	exec_ok(c, "CREATE SCHEMA \"Upper\"");
	exec_ok(
	    c,
	    "CREATE TABLE \"Upper\".\"DATABASECHANGELOGLOCK\" (\"ID\" INTEGER PRIMARY KEY,"
	    " \"LOCKED\" BOOLEAN NOT NULL, \"LOCKGRANTED\" TIMESTAMP, \"LOCKEDBY\" VARCHAR(255))");
	exec_ok(c, "INSERT INTO \"Upper\".\"DATABASECHANGELOGLOCK\" VALUES (1, TRUE,"
	           " '2024-02-03 04:05:06.7', 'Upper-0 (10.1.1.1)')");
	/* Not lock tables: a column missing, a view. */
	exec_ok(c, "CREATE SCHEMA broken; CREATE TABLE broken.databasechangeloglock"
	           " (id INTEGER PRIMARY KEY, locked BOOLEAN, lockgranted TIMESTAMP)");
	exec_ok(c, "CREATE SCHEMA broken2; CREATE TABLE broken2.databasechangeloglock"
	           " (id INTEGER PRIMARY KEY, lockgranted TIMESTAMP, lockedby VARCHAR(255))");
	exec_ok(c, "CREATE SCHEMA views; CREATE VIEW views.databasechangeloglock AS"
	           " SELECT * FROM public.databasechangeloglock");

	db = open_db("disc");
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 5);
	assert_table(&t[0], "Upper", "DATABASECHANGELOGLOCK");
	assert_table(&t[1], "private", "databasechangeloglock");
	assert_table(&t[2], "public", "databasechangeloglock");
	assert_table(&t[3], "tenant_a", "databasechangeloglock");
	assert_table(&t[4], "tenant_b", "databasechangeloglock");

	/* The real column names are used: the upper-case table reads and releases. */
	poll_ok(db, t, n, "UTC", false, &p);
	assert_true(p.rows[0].present);
	assert_true(p.rows[0].locked);
	assert_string_equal(p.rows[0].lockedby, "Upper-0 (10.1.1.1)");
	assert_string_equal(p.rows[0].lockgranted, "2024-02-03 04:05:06.700000");
	assert_int_equal(
	    db_release(db, &t[0], p.rows[0].lockedby, p.rows[0].lockgranted, g_err, sizeof g_err),
	    1);
	db_poll_done(&p);
	db_tables_free(t, n);

	discover(db, "databasechangeloglock", some, 3, &t, &n);
	assert_int_equal(n, 2);
	assert_table(&t[0], "tenant_a", "databasechangeloglock");
	assert_table(&t[1], "tenant_b", "databasechangeloglock");
	db_tables_free(t, n);

	/* Schema names are exact; table names are not. */
	discover(db, "databasechangeloglock", lower, 1, &t, &n);
	assert_int_equal(n, 0);
	db_tables_free(t, n);
	discover(db, "MY_LOCK", NULL, 0, &t, &n);
	assert_int_equal(n, 1);
	assert_table(&t[0], "tenant_b", "my_lock");
	poll_ok(db, t, n, NULL, false, &p);
	assert_true(p.rows[0].present);
	db_poll_done(&p);

	/* A table list other than the discovered one is refused. */
	assert_int_equal(db_poll(db, t, 0, NULL, false, &p, g_err, sizeof g_err), -EINVAL);
	db_tables_free(t, n);
	db_free(db);

	/* Only what the user may read: SELECT on the table and USAGE on its schema. */
	exec_ok(c, "DROP ROLE IF EXISTS lock_arbiter_observer");
	exec_ok(c, "CREATE ROLE lock_arbiter_observer LOGIN");
	exec_ok(c, "GRANT SELECT ON public.databasechangeloglock TO lock_arbiter_observer");
	exec_ok(c, "GRANT SELECT ON tenant_a.databasechangeloglock TO lock_arbiter_observer");
	exec_ok(c, "GRANT USAGE ON SCHEMA tenant_b TO lock_arbiter_observer");
	snprintf(ci, sizeof ci, "host=%s port=%s user=lock_arbiter_observer dbname=disc", g_host,
	         g_port);
	db = db_new(ci, NULL, g_err, sizeof g_err);
	assert_non_null(db);
	assert_int_equal(db_ensure_connected(db, mono_us(), g_err, sizeof g_err), 0);
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 1);
	assert_table(&t[0], "public", "databasechangeloglock");
	poll_ok(db, t, n, NULL, false, &p);
	db_poll_done(&p);
	db_tables_free(t, n);
	db_free(db);
	exec_ok(c, "DROP OWNED BY lock_arbiter_observer; DROP ROLE lock_arbiter_observer");
	PQfinish(c);
}

/* ---- polling ----------------------------------------------------------------- */

static void test_poll(void **state)
{
	struct db_table *t = NULL;
	struct db_poll p = {0};
	size_t n = 0;
	int64_t before, after;
	PGconn *c;
	struct db *db;

	(void)state;
	create_database("poll");
	c = admin("poll");
	create_lock_table(c, "free", "databasechangeloglock");
	create_lock_table(c, "held", "databasechangeloglock");
	create_lock_table(c, "norow", "databasechangeloglock");
	create_lock_table(c, "whole", "databasechangeloglock");
	set_lock(c, "held", "web-0.web.shop.svc.cluster.local#migrate (fd00:0:0:0:0:0:0:2%eth0)",
	         "2024-03-05 07:08:09.123456");
	set_lock(c, "whole", "unknown (unknown)", "2024-03-05 07:08:09");
	exec_ok(c, "DELETE FROM norow.databasechangeloglock");

	db = open_db("poll");
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 4);
	before = wall_us();
	poll_ok(db, t, n, NULL, false, &p);
	after = wall_us();
	/* The database's clock: same host, so within a generous second. */
	assert_true(p.now_us > before - SEC && p.now_us < after + SEC);
	assert_int_equal(p.leader, -1);
	assert_false(db_is_leader(db));

	assert_table(&t[0], "free", "databasechangeloglock");
	assert_true(p.rows[0].present);
	assert_false(p.rows[0].locked);
	assert_null(p.rows[0].lockedby);
	assert_null(p.rows[0].lockgranted);
	assert_false(p.rows[0].granted_zone_valid);

	assert_true(p.rows[1].present);
	assert_true(p.rows[1].locked);
	assert_string_equal(p.rows[1].lockedby,
	                    "web-0.web.shop.svc.cluster.local#migrate (fd00:0:0:0:0:0:0:2%eth0)");
	assert_string_equal(p.rows[1].lockgranted, "2024-03-05 07:08:09.123456");
	assert_false(p.rows[1].granted_zone_valid); /* no zone asked */

	assert_false(p.rows[2].present);
	assert_false(p.rows[2].locked);
	assert_null(p.rows[2].lockedby);

	assert_true(p.rows[3].present);
	assert_string_equal(p.rows[3].lockgranted, "2024-03-05 07:08:09.000000");
	db_poll_done(&p);
	db_poll_done(&p); /* idempotent */

	/* Read as UTC, LOCKGRANTED is the epoch of the same wall time. */
	poll_ok(db, t, n, "UTC", false, &p);
	assert_true(p.rows[1].granted_zone_valid);
	assert_int_equal(p.rows[1].granted_zone_us, INT64_C(1709622489123456));
	assert_false(p.rows[0].granted_zone_valid); /* NULL stays NULL */
	db_poll_done(&p);

	/* A lock taken between two polls shows up in the next one. */
	set_lock(c, "free", "localhost (127.0.0.1)", "2024-03-05 08:00:00");
	poll_ok(db, t, n, NULL, false, &p);
	assert_true(p.rows[0].locked);
	assert_string_equal(p.rows[0].lockedby, "localhost (127.0.0.1)");
	db_poll_done(&p);

	db_tables_free(t, n);
	db_free(db);
	PQfinish(c);
}

static void test_timezone(void **state)
{
	struct db_table *t = NULL;
	struct db_poll p = {0};
	size_t n = 0;
	PGconn *c;
	struct db *db;

	(void)state;
	create_database("tz");
	c = admin("tz");
	create_lock_table(c, "winter", "databasechangeloglock");
	create_lock_table(c, "summer", "databasechangeloglock");
	/* A JVM in New York writes its local wall time. */
	set_lock(c, "winter", "app-0 (10.0.0.1)", "2024-01-15 10:00:00");
	set_lock(c, "summer", "app-0 (10.0.0.1)", "2024-07-01 10:00:00");

	db = open_db("tz");
	assert_int_equal(db_timezone_valid(db, "America/New_York", g_err, sizeof g_err), 1);
	assert_int_equal(db_timezone_valid(db, "UTC", g_err, sizeof g_err), 1);
	assert_int_equal(db_timezone_valid(db, "Mars/Olympus", g_err, sizeof g_err), 0);
	assert_non_null(strstr(g_err, "Mars/Olympus"));
	assert_true(db_is_connected(db)); /* an unknown zone is an answer, not a failure */

	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 2);
	assert_table(&t[0], "summer", "databasechangeloglock");
	poll_ok(db, t, n, "America/New_York", false, &p);
	/* 10:00 EDT (UTC-4) is 14:00 UTC; 10:00 EST (UTC-5) is 15:00 UTC. */
	assert_true(p.rows[0].granted_zone_valid);
	assert_int_equal(p.rows[0].granted_zone_us, INT64_C(1719842400) * SEC);
	assert_true(p.rows[1].granted_zone_valid);
	assert_int_equal(p.rows[1].granted_zone_us, INT64_C(1705330800) * SEC);
	/* The text is what is stored, whatever the zone. */
	assert_string_equal(p.rows[1].lockgranted, "2024-01-15 10:00:00.000000");
	db_poll_done(&p);

	db_tables_free(t, n);
	db_free(db);
	PQfinish(c);
}

/* ---- release --------------------------------------------------------------- */

static void expect_row(PGconn *c, const char *want)
{
	PGresult *r =
	    PQexec(c, "SELECT locked::text || '|' || coalesce(lockedby, '-') || '|' ||"
	              " coalesce(lockgranted::text, '-') FROM public.databasechangeloglock"
	              " WHERE id = 1");

	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), want);
	PQclear(r);
}

static void test_release(void **state)
{
	struct db_table *t = NULL;
	struct db_table other = {.schema = "public", .table = "nosuch"};
	struct db_poll p = {0};
	size_t n = 0;
	PGconn *c;
	struct db *db;

	(void)state;
	create_database("rel");
	c = admin("rel");
	create_lock_table(c, "public", "databasechangeloglock");
	db = open_db("rel");
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 1);

	/* The values read are the values matched. */
	set_lock(c, "public", "pod-a (10.0.0.1)", "2024-05-01 12:00:00.5");
	poll_ok(db, t, n, NULL, true, &p);
	assert_string_equal(p.rows[0].lockgranted, "2024-05-01 12:00:00.500000");
	assert_int_equal(
	    db_release(db, &t[0], p.rows[0].lockedby, p.rows[0].lockgranted, g_err, sizeof g_err),
	    1);
	expect_row(c, "false|-|-");
	/* Released already: nothing to do, and not an error. */
	assert_int_equal(
	    db_release(db, &t[0], p.rows[0].lockedby, p.rows[0].lockgranted, g_err, sizeof g_err),
	    0);
	db_poll_done(&p);

	/* The lock moved on between the read and the release. */
	set_lock(c, "public", "pod-a (10.0.0.1)", "2024-05-01 12:00:00.5");
	poll_ok(db, t, n, NULL, false, &p);
	exec_ok(c, "UPDATE public.databasechangeloglock SET lockedby = 'pod-b (10.0.0.2)'");
	assert_int_equal(
	    db_release(db, &t[0], p.rows[0].lockedby, p.rows[0].lockgranted, g_err, sizeof g_err),
	    0);
	expect_row(c, "true|pod-b (10.0.0.2)|2024-05-01 12:00:00.5");
	db_poll_done(&p);

	/* Same holder, a new grant: a new episode, not ours to release. */
	set_lock(c, "public", "pod-b (10.0.0.2)", "2024-05-01 12:00:00.5");
	poll_ok(db, t, n, NULL, false, &p);
	exec_ok(c, "UPDATE public.databasechangeloglock SET lockgranted = '2024-05-01 12:00:01'");
	assert_int_equal(
	    db_release(db, &t[0], p.rows[0].lockedby, p.rows[0].lockgranted, g_err, sizeof g_err),
	    0);
	db_poll_done(&p);

	/* NULL lockgranted (and NULL lockedby) match as NULL. */
	set_lock(c, "public", "pod-c (10.0.0.3)", NULL);
	poll_ok(db, t, n, NULL, false, &p);
	assert_null(p.rows[0].lockgranted);
	assert_int_equal(
	    db_release(db, &t[0], "pod-c (10.0.0.3)", "2024-05-01 12:00:00", g_err, sizeof g_err),
	    0);
	assert_int_equal(db_release(db, &t[0], p.rows[0].lockedby, NULL, g_err, sizeof g_err), 1);
	expect_row(c, "false|-|-");
	db_poll_done(&p);
	exec_ok(c, "UPDATE public.databasechangeloglock SET locked = TRUE");
	assert_int_equal(db_release(db, &t[0], NULL, NULL, g_err, sizeof g_err), 1);

	/* A table that is not there. */
	assert_int_equal(db_release(db, &other, "x", NULL, g_err, sizeof g_err), -ENOENT);
	assert_true(db_is_connected(db));

	db_tables_free(t, n);
	db_free(db);
	PQfinish(c);
}

/* ---- leadership and lost connections ------------------------------------------ */

static long long advisory_locks(PGconn *c)
{
	return query_ll(c,
	                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
	                " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = 'lead'");
}

static void wait_advisory_locks(PGconn *c, long long want)
{
	for (int i = 0; i < 200 && advisory_locks(c) != want; i++)
		usleep(10000);
	assert_int_equal(advisory_locks(c), want);
}

static void test_leader(void **state)
{
	struct db_table *t1 = NULL, *t2 = NULL, *t3 = NULL;
	struct db_poll p = {0};
	size_t n1 = 0, n2 = 0, n3 = 0;
	struct db *db1, *db2, *db3;
	PGconn *c;

	(void)state;
	create_database("lead");
	c = admin("lead");
	create_lock_table(c, "public", "databasechangeloglock");
	db1 = open_db("lead");
	db2 = open_db("lead");
	db3 = open_db("lead");
	discover(db1, "databasechangeloglock", NULL, 0, &t1, &n1);
	discover(db2, "databasechangeloglock", NULL, 0, &t2, &n2);
	discover(db3, "databasechangeloglock", NULL, 0, &t3, &n3);
	assert_int_equal(query_ll(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'lead'"
	                             " AND application_name = 'lock-arbiter'"),
	                 3);

	/* Not asking means not calling pg_try_advisory_lock at all. */
	poll_ok(db3, t3, n3, NULL, false, &p);
	assert_int_equal(p.leader, -1);
	db_poll_done(&p);
	assert_int_equal(advisory_locks(c), 0);

	poll_ok(db1, t1, n1, NULL, true, &p);
	assert_int_equal(p.leader, 1);
	db_poll_done(&p);
	assert_true(db_is_leader(db1));
	poll_ok(db2, t2, n2, NULL, true, &p);
	assert_int_equal(p.leader, 0);
	db_poll_done(&p);
	assert_false(db_is_leader(db2));
	/* The leader does not ask again; the lock is not taken twice. */
	poll_ok(db1, t1, n1, NULL, true, &p);
	assert_int_equal(p.leader, -1);
	db_poll_done(&p);
	assert_true(db_is_leader(db1));
	assert_int_equal(advisory_locks(c), 1);
	poll_ok(db3, t3, n3, NULL, false, &p);
	db_poll_done(&p);
	assert_int_equal(advisory_locks(c), 1);

	/* The session ends, the lock goes (once the backend has noticed). */
	db_disconnect(db1);
	assert_false(db_is_leader(db1));
	assert_false(db_is_connected(db1));
	wait_advisory_locks(c, 0);
	poll_ok(db2, t2, n2, NULL, true, &p);
	assert_int_equal(p.leader, 1);
	db_poll_done(&p);
	assert_true(db_is_leader(db2));

	/* A terminated backend: the poll says so and leadership is gone. */
	exec_ok(c, "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
	           " WHERE l.locktype = 'advisory' AND l.granted");
	assert_int_equal(db_poll(db2, t2, n2, NULL, true, &p, g_err, sizeof g_err), -ENOTCONN);
	print_message("terminated: %s\n", g_err);
	assert_false(db_is_connected(db2));
	assert_false(db_is_leader(db2));
	assert_int_equal(db_poll(db2, t2, n2, NULL, true, &p, g_err, sizeof g_err), -ENOTCONN);
	/* A lost connection reconnects at once: backoff is for failed attempts. */
	assert_int_equal(db_ensure_connected(db2, mono_us(), g_err, sizeof g_err), 0);
	assert_false(db_is_leader(db2));
	poll_ok(db2, t2, n2, NULL, true, &p);
	assert_int_equal(p.leader, 1);
	db_poll_done(&p);

	db_tables_free(t1, n1);
	db_tables_free(t2, n2);
	db_tables_free(t3, n3);
	db_free(db1);
	db_free(db2);
	db_free(db3);
	PQfinish(c);
}

static void test_vanished(void **state)
{
	struct db_table *t = NULL;
	struct db_poll p = {0};
	size_t n = 0;
	PGconn *c;
	struct db *db;

	(void)state;
	create_database("gone");
	c = admin("gone");
	create_lock_table(c, "a", "databasechangeloglock");
	create_lock_table(c, "b", "databasechangeloglock");
	db = open_db("gone");
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 2);
	poll_ok(db, t, n, NULL, false, &p);
	db_poll_done(&p);

	exec_ok(c, "DROP TABLE b.databasechangeloglock");
	assert_int_equal(db_poll(db, t, n, NULL, false, &p, g_err, sizeof g_err), -ENOENT);
	assert_true(db_is_connected(db));
	db_tables_free(t, n);
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 1);
	poll_ok(db, t, n, NULL, false, &p);
	db_poll_done(&p);

	exec_ok(c, "DROP SCHEMA a CASCADE");
	assert_int_equal(db_poll(db, t, n, NULL, false, &p, g_err, sizeof g_err), -ENOENT);
	db_tables_free(t, n);
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	assert_int_equal(n, 0);
	/* No table at all still reads now() (and can elect a leader). */
	poll_ok(db, t, n, NULL, true, &p);
	assert_true(p.now_us > 0);
	assert_int_equal(p.leader, 1);
	db_poll_done(&p);

	db_tables_free(t, n);
	db_free(db);
	PQfinish(c);
}

/* ---- deadlines, interrupts, backoff -------------------------------------- */

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_alarms;

static void on_alarm(int sig)
{
	(void)sig;
	/* The first signal is not a stop request: the wait must go on. */
	if (++g_alarms >= 2)
		g_stop = 1;
}

static void test_deadline(void **state)
{
	struct db_options o;
	struct db_table *t = NULL;
	struct db_poll p = {0};
	struct sigaction sa = {0}, old_sa;
	struct itimerval it = {0}, off = {0};
	size_t n = 0;
	int64_t t0, el;
	PGconn *c;
	struct db *db;
	int rc, fd;
	char ci[256];

	(void)state;
	create_database("slow");
	c = admin("slow");
	create_lock_table(c, "public", "databasechangeloglock");

	/* The client deadline: a poll blocked behind ACCESS EXCLUSIVE. */
	db_options_default(&o);
	o.query_timeout_us = 300 * MS;
	o.lock_timeout_us = 60 * SEC;
	o.statement_timeout_us = 60 * SEC;
	o.interrupt = &g_stop;
	db = open_db_opts("slow", &o);
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	poll_ok(db, t, n, NULL, true, &p);
	db_poll_done(&p);
	assert_true(db_is_leader(db));
	exec_ok(c, "BEGIN");
	exec_ok(c, "LOCK TABLE public.databasechangeloglock IN ACCESS EXCLUSIVE MODE");
	t0 = mono_us();
	rc = db_poll(db, t, n, NULL, true, &p, g_err, sizeof g_err);
	el = mono_us() - t0;
	print_message("deadline: poll returned %d after %" PRId64 " ms (%s)\n", rc, el / MS, g_err);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(el >= 290 * MS && el < 800 * MS);
	assert_false(db_is_connected(db));
	assert_false(db_is_leader(db));
	exec_ok(c, "ROLLBACK");
	assert_int_equal(db_ensure_connected(db, mono_us(), g_err, sizeof g_err), 0);
	/* The new session prepares the poll statement again. */
	poll_ok(db, t, n, NULL, true, &p);
	db_poll_done(&p);

	/* An interrupt ends the wait; a signal without it does not. */
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: poll() must see EINTR */
	assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0);
	exec_ok(c, "BEGIN");
	exec_ok(c, "LOCK TABLE public.databasechangeloglock IN ACCESS EXCLUSIVE MODE");
	it.it_value.tv_usec = 80000;
	it.it_interval.tv_usec = 80000;
	g_alarms = 0;
	g_stop = 0;
	t0 = mono_us();
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	rc = db_poll(db, t, n, NULL, false, &p, g_err, sizeof g_err);
	el = mono_us() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old_sa, NULL);
	print_message("interrupt: poll returned %d after %" PRId64 " ms\n", rc, el / MS);
	assert_int_equal(rc, -EINTR);
	assert_true(el >= 150 * MS && el < 290 * MS);
	assert_false(db_is_connected(db));
	exec_ok(c, "ROLLBACK");
	g_stop = 0;
	db_tables_free(t, n);
	db_free(db);

	/* The server's lock_timeout: an answer, the connection stays. */
	o.query_timeout_us = 5 * SEC;
	o.lock_timeout_us = 100 * MS;
	o.interrupt = NULL;
	db = open_db_opts("slow", &o);
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	exec_ok(c, "BEGIN");
	exec_ok(c, "LOCK TABLE public.databasechangeloglock IN ACCESS EXCLUSIVE MODE");
	t0 = mono_us();
	rc = db_poll(db, t, n, NULL, false, &p, g_err, sizeof g_err);
	el = mono_us() - t0;
	assert_int_equal(rc, -EIO);
	assert_non_null(strstr(g_err, "55P03"));
	assert_true(el >= 90 * MS && el < 2 * SEC);
	assert_true(db_is_connected(db));
	exec_ok(c, "ROLLBACK");
	poll_ok(db, t, n, NULL, false, &p);
	db_poll_done(&p);
	db_tables_free(t, n);
	db_free(db);
	PQfinish(c);

	/* A server that accepts TCP and never answers: connect_timeout_s bounds it. */
	db_options_default(&o);
	snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=x dbname=x connect_timeout=30",
	         bound_port(true, &fd));
	db = db_new(ci, &o, g_err, sizeof g_err);
	assert_non_null(db);
	t0 = mono_us();
	rc = db_ensure_connected(db, mono_us(), g_err, sizeof g_err);
	el = mono_us() - t0;
	print_message("connect deadline: %d after %" PRId64 " ms (%s)\n", rc, el / MS, g_err);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(el >= 1900 * MS && el < 2500 * MS);
	assert_false(db_is_connected(db));
	db_free(db);
	close(fd);
}

static void test_backoff(void **state)
{
	struct db_options o;
	int64_t now, t2, t3;
	struct db *db;
	int fd, rc;
	char ci[256];
	PGconn *c;

	(void)state;
	db_options_default(&o);
	o.backoff_min_us = 200 * MS;
	o.backoff_max_us = 400 * MS;
	snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=x password=s3cret dbname=x",
	         bound_port(false, &fd));
	db = db_new(ci, &o, g_err, sizeof g_err);
	assert_non_null(db);

	now = mono_us();
	rc = db_ensure_connected(db, now, g_err, sizeof g_err);
	assert_true(rc < 0 && rc != -EAGAIN);
	assert_true(g_err[0] != '\0');
	assert_null(strstr(g_err, "s3cret"));
	/* 200 ms +-20%: waiting at +0 and +150 ms, trying again by +300 ms. */
	assert_int_equal(db_ensure_connected(db, now, g_err, sizeof g_err), -EAGAIN);
	assert_int_equal(db_ensure_connected(db, now + 150 * MS, g_err, sizeof g_err), -EAGAIN);
	t2 = now + 300 * MS;
	rc = db_ensure_connected(db, t2, g_err, sizeof g_err);
	assert_true(rc < 0 && rc != -EAGAIN);
	/* Doubled to 400 ms +-20%. */
	assert_int_equal(db_ensure_connected(db, t2 + 300 * MS, g_err, sizeof g_err), -EAGAIN);
	t3 = t2 + 600 * MS;
	rc = db_ensure_connected(db, t3, g_err, sizeof g_err);
	assert_true(rc < 0 && rc != -EAGAIN);
	/* Capped at 400 ms. */
	assert_int_equal(db_ensure_connected(db, t3 + 300 * MS, g_err, sizeof g_err), -EAGAIN);
	rc = db_ensure_connected(db, t3 + 600 * MS, g_err, sizeof g_err);
	assert_true(rc < 0 && rc != -EAGAIN);
	db_free(db);

	/*
	 * Jitter: with the delay pinned at 200 ms, each retry comes 160 to 240
	 * ms (plus the failed attempt's own few ms) after the failure, and the
	 * retries do not all come at the same moment.
	 */
	o.backoff_max_us = o.backoff_min_us;
	db = db_new(ci, &o, g_err, sizeof g_err);
	assert_non_null(db);
	{
		int64_t lo = INT64_MAX, hi = 0, at = mono_us();

		for (int k = 0; k < 20; k++) {
			int64_t d = 100 * MS;

			rc = db_ensure_connected(db, at, g_err, sizeof g_err);
			assert_true(rc < 0 && rc != -EAGAIN);
			while (db_ensure_connected(db, at + d, g_err, sizeof g_err) == -EAGAIN) {
				d += 2 * MS;
				assert_true(d < 300 * MS);
			}
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			at += d;
			/* The probe that ended the loop already made the next attempt. */
			assert_int_equal(db_ensure_connected(db, at, g_err, sizeof g_err), -EAGAIN);
			at += 300 * MS;
		}
		print_message("backoff 200 ms: retries between %" PRId64 " and %" PRId64 " ms\n",
		              lo / MS, hi / MS);
		assert_true(lo >= 158 * MS);
		assert_true(hi <= 260 * MS);
		assert_true(hi - lo >= 20 * MS);
	}
	db_free(db);
	close(fd);

	/* A success resets the delay: a database that appears, then goes. */
	o.backoff_max_us = 400 * MS;
	c = admin("postgres");
	exec_ok(c, "DROP DATABASE IF EXISTS later");
	conninfo_for(ci, sizeof ci, "later");
	db = db_new(ci, &o, g_err, sizeof g_err);
	assert_non_null(db);
	now = mono_us();
	assert_int_equal(db_ensure_connected(db, now, g_err, sizeof g_err), -ECONNREFUSED);
	assert_non_null(strstr(g_err, "later"));
	assert_int_equal(db_ensure_connected(db, now + 300 * MS, g_err, sizeof g_err),
	                 -ECONNREFUSED);
	/* Now at 400 ms; the database appears. */
	exec_ok(c, "CREATE DATABASE later");
	assert_int_equal(db_ensure_connected(db, now + 550 * MS, g_err, sizeof g_err), -EAGAIN);
	assert_int_equal(db_ensure_connected(db, now + 900 * MS, g_err, sizeof g_err), 0);
	db_disconnect(db);
	exec_ok(c, "DROP DATABASE later");
	t2 = now + 2 * SEC;
	assert_int_equal(db_ensure_connected(db, t2, g_err, sizeof g_err), -ECONNREFUSED);
	/* Back to 200 ms, not 800. */
	assert_int_equal(db_ensure_connected(db, t2 + 100 * MS, g_err, sizeof g_err), -EAGAIN);
	assert_int_equal(db_ensure_connected(db, t2 + 300 * MS, g_err, sizeof g_err),
	                 -ECONNREFUSED);
	db_free(db);
	PQfinish(c);
}

/* ---- scale ------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The target case: one database, 1000 tenant schemas, each with a lock table. */
static void test_thousand_schemas(void **state)
{
	enum { N = 1000, ROUNDS = 20 };
	struct db_table *t = NULL;
	struct db_poll p = {0};
	int64_t times[ROUNDS], t0, disc_us, first_us;
	size_t n = 0;
	PGconn *c;
	struct db *db;

	(void)state;
	create_database("many");
	c = admin("many");
	/* Batches keep each transaction's lock count under the default limit. */
	for (int b = 0; b < N; b += 100)
		exec_ok(c,
		        "DO $$ BEGIN FOR i IN %d..%d LOOP EXECUTE format("
		        "'CREATE SCHEMA t%%1$s; CREATE TABLE t%%1$s.databasechangeloglock"
		        " (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP"
		        " WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT"
		        " databasechangeloglock_pkey PRIMARY KEY (id));"
		        " INSERT INTO t%%1$s.databasechangeloglock VALUES (1, FALSE, NULL, NULL)',"
		        " lpad(i::text, 4, '0')); END LOOP; END $$",
		        b, b + 99);
	set_lock(c, "t0500", "tenant-500 (10.5.0.0)", "2024-06-01 00:00:00");
	exec_ok(c, "ANALYZE");

	db = open_db("many");
	t0 = mono_us();
	discover(db, "databasechangeloglock", NULL, 0, &t, &n);
	disc_us = mono_us() - t0;
	assert_int_equal(n, N);
	assert_table(&t[500], "t0500", "databasechangeloglock");

	t0 = mono_us();
	poll_ok(db, t, n, "Europe/Berlin", true, &p);
	first_us = mono_us() - t0;
	assert_true(p.rows[500].locked);
	assert_string_equal(p.rows[500].lockedby, "tenant-500 (10.5.0.0)");
	assert_int_equal(p.rows[500].granted_zone_us, INT64_C(1717192800) * SEC);
	for (size_t i = 0; i < n; i++)
		assert_true(p.rows[i].present);
	db_poll_done(&p);

	for (int r = 0; r < ROUNDS; r++) {
		t0 = mono_us();
		poll_ok(db, t, n, "Europe/Berlin", true, &p);
		times[r] = mono_us() - t0;
		db_poll_done(&p);
	}
	qsort(times, ROUNDS, sizeof times[0], cmp_i64);
	print_message("1000 schemas: discover %.1f ms, first poll %.1f ms, poll median %.1f ms,"
	              " max %.1f ms\n",
	              disc_us / 1e3, first_us / 1e3, times[ROUNDS / 2] / 1e3,
	              times[ROUNDS - 1] / 1e3);
	if (!under_valgrind())
		assert_true(times[ROUNDS / 2] < 50 * MS);

	db_tables_free(t, n);
	db_free(db);
	PQfinish(c);
}

static int setup(void **state)
{
	const char *dsn = getenv("LOCK_ARBITER_TEST_DSN");
	PQconninfoOption *o, *opts;
	char *perr = NULL;

	(void)state;
	if (dsn == NULL) {
		fprintf(stderr, "LOCK_ARBITER_TEST_DSN is not set: run through with_pg.py\n");
		return -1;
	}
	opts = PQconninfoParse(dsn, &perr);
	if (opts == NULL) {
		fprintf(stderr, "LOCK_ARBITER_TEST_DSN: %s\n", perr ? perr : "does not parse");
		PQfreemem(perr);
		return -1;
	}
	snprintf(g_host, sizeof g_host, "127.0.0.1");
	snprintf(g_port, sizeof g_port, "5432");
	snprintf(g_user, sizeof g_user, "postgres");
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			snprintf(g_host, sizeof g_host, "%s", o->val);
		else if (strcmp(o->keyword, "port") == 0)
			snprintf(g_port, sizeof g_port, "%s", o->val);
		else if (strcmp(o->keyword, "user") == 0)
			snprintf(g_user, sizeof g_user, "%s", o->val);
	}
	PQconninfoFree(opts);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label),    cmocka_unit_test(test_discover),
	    cmocka_unit_test(test_parse_error_hides_a_password_with_a_quote),
	    cmocka_unit_test(test_poll),     cmocka_unit_test(test_timezone),
	    cmocka_unit_test(test_release),  cmocka_unit_test(test_leader),
	    cmocka_unit_test(test_vanished), cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_backoff),  cmocka_unit_test(test_thousand_schemas),
	};

	return cmocka_run_group_tests_name("db-postgresql", tests, setup, NULL);
}
