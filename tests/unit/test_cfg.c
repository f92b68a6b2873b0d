/*
 * Configuration: flags, LOCK_ARBITER_* variables, DATABASE_URL and PG*,
 * defaults, and that every problem is reported at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const env_vars[] = {
	"LOCK_ARBITER_DATABASE", "LOCK_ARBITER_TABLE", "LOCK_ARBITER_SCHEMA",
	"LOCK_ARBITER_HOLDER_NAMESPACE", "LOCK_ARBITER_HOLDER_CONTAINER",
	"LOCK_ARBITER_POLL_INTERVAL", "LOCK_ARBITER_CLOCK_SKEW", "LOCK_ARBITER_MIN_LOCK_AGE",
	"LOCK_ARBITER_LOCKGRANTED_TIMEZONE", "LOCK_ARBITER_RELEASE_UNRESOLVED_AFTER",
	"LOCK_ARBITER_LEADER_ELECTION", "LOCK_ARBITER_DRY_RUN", "LOCK_ARBITER_LISTEN",
	"LOCK_ARBITER_KUBE_API", "LOCK_ARBITER_KUBE_TOKEN_FILE", "LOCK_ARBITER_KUBE_CA_FILE",
	"LOCK_ARBITER_EVENTS", "LOCK_ARBITER_LOG_FORMAT", "LOCK_ARBITER_LOG_LEVEL",
	"LOCK_ARBITER_JSON", "DATABASE_URL", "PGHOST", "PGDATABASE", "PGSERVICE", "POD_NAME",
	"POD_NAMESPACE", "POD_UID", "CONTAINER_NAME",
};

static int clean_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		unsetenv(env_vars[i]);
	return 0;
}

/* Loads argv (NULL-terminated) and captures the problems written. */
static int load(struct cfg *c, char *errbuf, size_t cap, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	char *text = NULL;
	size_t len = 0;
	FILE *err = open_memstream(&text, &len);
	int rc;

	argv[argc++] = (char *)"lock-arbiter";
	va_start(ap, cap);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 63;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	rc = cfg_load(c, argc, argv, err);
	fclose(err);
	snprintf(errbuf, cap, "%s", text != NULL ? text : "");
	free(text);
	return rc;
}

static void defaults_match_design(void **state)
{
	struct cfg c;
	char err[2048];

	(void)state;
	assert_int_equal(load(&c, err, sizeof(err), "--database", "dbname=app", NULL), 0);
	assert_int_equal(c.mode, CFG_MODE_RUN);
	assert_string_equal(c.table, "databasechangeloglock");
	assert_int_equal(c.schemas.n, 0);
	assert_int_equal(c.holder_namespaces.n, 1);
	assert_string_equal(c.holder_namespaces.items[0], "default");
	assert_null(c.holder_container);
	assert_int_equal(c.poll_interval_us, 2 * TIMEUTIL_S);
	assert_int_equal(c.clock_skew_us, 5 * TIMEUTIL_S);
	assert_int_equal(c.min_lock_age_us, 10 * TIMEUTIL_S);
	assert_null(c.lockgranted_timezone);
	assert_int_equal(c.release_unresolved_after_us, 0);
	assert_int_equal(c.leader_election, CFG_LEADER_ADVISORY);
	assert_false(c.dry_run);
	assert_string_equal(c.listen, "0.0.0.0:9479");
	assert_true(c.events);
	assert_int_equal(c.log_format, LOG_FORMAT_LOGFMT);
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_string_equal(c.container_name, "lock-arbiter");
	cfg_done(&c);
}

static void flags_parse(void **state)
{
	struct cfg c;
	char err[2048];

	(void)state;
	assert_int_equal(load(&c, err, sizeof(err), "check", "--json", "--database", "dbname=a",
			      "--database", "postgresql://u@h/b", "--schema", "s1", "--schema",
			      "s2", "--holder-namespace", "shop", "--holder-container", "app",
			      "--poll-interval", "250ms", "--clock-skew", "1s", "--min-lock-age",
			      "0", "--lockgranted-timezone", "America/New_York",
			      "--release-unresolved-after", "1h30m", "--leader-election", "none",
			      "--dry-run", "--listen", "[::1]:0", "--no-events", "--log-format",
			      "json", "--log-level", "debug", "--table", "MyLock", NULL),
			 0);
	assert_int_equal(c.mode, CFG_MODE_CHECK);
	assert_true(c.json);
	assert_int_equal(c.databases.n, 2);
	assert_string_equal(c.databases.items[1], "postgresql://u@h/b");
	assert_int_equal(c.schemas.n, 2);
	assert_string_equal(c.schemas.items[1], "s2");
	assert_string_equal(c.holder_namespaces.items[0], "shop");
	assert_string_equal(c.holder_container, "app");
	assert_int_equal(c.poll_interval_us, 250 * TIMEUTIL_MS);
	assert_int_equal(c.clock_skew_us, TIMEUTIL_S);
	assert_int_equal(c.min_lock_age_us, 0);
	assert_string_equal(c.lockgranted_timezone, "America/New_York");
	assert_int_equal(c.release_unresolved_after_us, 5400 * TIMEUTIL_S);
	assert_int_equal(c.leader_election, CFG_LEADER_NONE);
	assert_true(c.dry_run);
	assert_string_equal(c.listen, "[::1]:0");
	assert_false(c.events);
	assert_int_equal(c.log_format, LOG_FORMAT_JSON);
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(c.table, "MyLock");
	cfg_done(&c);
}

static void env_vars_apply_and_flags_win(void **state)
{
	struct cfg c;
	char err[2048];

	(void)state;
	setenv("LOCK_ARBITER_DATABASE", "dbname=a user=x\npostgresql://h1,h2/b", 1);
	setenv("LOCK_ARBITER_SCHEMA", "t1, t2,,t3", 1);
	setenv("LOCK_ARBITER_POLL_INTERVAL", "5s", 1);
	setenv("LOCK_ARBITER_DRY_RUN", "true", 1);
	setenv("LOCK_ARBITER_EVENTS", "false", 1);
	setenv("LOCK_ARBITER_HOLDER_NAMESPACE", "a,b", 1);
	setenv("POD_NAMESPACE", "ops", 1);
	assert_int_equal(load(&c, err, sizeof(err), "--poll-interval", "1s", NULL), 0);
	/* Newlines split databases, so a URL may hold commas. */
	assert_int_equal(c.databases.n, 2);
	assert_string_equal(c.databases.items[0], "dbname=a user=x");
	assert_string_equal(c.databases.items[1], "postgresql://h1,h2/b");
	assert_int_equal(c.schemas.n, 3);
	assert_string_equal(c.schemas.items[2], "t3");
	assert_int_equal(c.poll_interval_us, TIMEUTIL_S); /* the flag wins */
	assert_true(c.dry_run);
	assert_false(c.events);
	assert_int_equal(c.holder_namespaces.n, 2);
	assert_string_equal(c.pod_namespace, "ops");
	cfg_done(&c);
}

static void database_url_then_pg_variables(void **state)
{
	struct cfg c;
	char err[2048];

	(void)state;
	setenv("DATABASE_URL", "postgresql://app@db/app", 1);
	assert_int_equal(load(&c, err, sizeof(err), NULL), 0);
	assert_int_equal(c.databases.n, 1);
	assert_string_equal(c.databases.items[0], "postgresql://app@db/app");
	cfg_done(&c);
	unsetenv("DATABASE_URL");

	setenv("PGHOST", "db", 1);
	assert_int_equal(load(&c, err, sizeof(err), NULL), 0);
	assert_int_equal(c.databases.n, 1);
	assert_string_equal(c.databases.items[0], "");
	cfg_done(&c);
	unsetenv("PGHOST");

	assert_int_equal(load(&c, err, sizeof(err), NULL), 1);
	assert_non_null(strstr(err, "no database"));
	cfg_done(&c);
}

static void holder_namespace_defaults_to_own(void **state)
{
	struct cfg c;
	char err[2048];

	(void)state;
	setenv("POD_NAMESPACE", "payments", 1);
	assert_int_equal(load(&c, err, sizeof(err), "--database", "x=y", NULL), 0);
	assert_int_equal(c.holder_namespaces.n, 1);
	assert_string_equal(c.holder_namespaces.items[0], "payments");
	cfg_done(&c);
}

static void every_problem_reported_at_once(void **state)
{
	struct cfg c;
	char err[4096];
	int n;

	(void)state;
	setenv("LOCK_ARBITER_CLOCK_SKEW", "forever", 1);
	n = load(&c, err, sizeof(err), "--poll-interval", "2", "--min-lock-age", "-1s",
		 "--leader-election", "raft", "--listen", "9479", "--log-format", "xml",
		 "--log-level", "loud", "--holder-namespace", "Bad_NS", "--holder-container",
		 "../x", "--lockgranted-timezone", "../../etc/passwd", "--kube-api",
		 "ftp://x", "--release-unresolved-after", "0", "--json", "--bogus", "extra",
		 "more", NULL);
	assert_true(n >= 15);
	const char *expect[] = {"--poll-interval", "--clock-skew", "--min-lock-age",
				"--leader-election", "--listen", "--log-format", "--log-level",
				"--holder-namespace", "--holder-container",
				"--lockgranted-timezone", "--kube-api",
				"--release-unresolved-after", "--json", "--bogus",
				"unknown command 'extra'", "unexpected argument 'more'",
				"no database"};
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		if (strstr(err, expect[i]) == NULL)
			fail_msg("no problem reported for %s in:\n%s", expect[i], err);
	}
	cfg_done(&c);
}

static void poll_interval_has_a_floor(void **state)
{
	struct cfg c;
	char err[1024];

	(void)state;
	assert_int_equal(load(&c, err, sizeof(err), "--database", "x=y", "--poll-interval", "1ms",
			      NULL),
			 1);
	assert_non_null(strstr(err, "at least 10ms"));
	cfg_done(&c);
}

static void missing_value_and_unreadable_files(void **state)
{
	struct cfg c;
	char err[1024];

	(void)state;
	assert_int_equal(load(&c, err, sizeof(err), "--database", "x=y", "--kube-api",
			      "https://k:6443", "--kube-token-file", "/nonexistent/token",
			      "--table", NULL),
			 2);
	assert_non_null(strstr(err, "cannot read '/nonexistent/token'"));
	assert_non_null(strstr(err, "'--table' needs a value"));
	cfg_done(&c);
}

static void help_lists_every_flag_and_variable(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	const char *flags[] = {"--database", "--table", "--schema", "--holder-namespace",
			       "--holder-container", "--poll-interval", "--clock-skew",
			       "--min-lock-age", "--lockgranted-timezone",
			       "--release-unresolved-after", "--leader-election", "--dry-run",
			       "--listen", "--kube-api", "--kube-token-file", "--kube-ca-file",
			       "--events", "--no-events", "--log-format", "--log-level",
			       "--json", "--help", "--version"};

	(void)state;
	cfg_usage(out);
	fclose(out);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strstr(text, flags[i]) == NULL)
			fail_msg("--help lacks %s", flags[i]);
	for (size_t i = 0; i < 20; i++)
		if (strstr(text, env_vars[i]) == NULL)
			fail_msg("--help lacks %s", env_vars[i]);
	free(text);
}

static void help_and_version_skip_validation(void **state)
{
	struct cfg c;
	char err[256];

	(void)state;
	assert_int_equal(load(&c, err, sizeof(err), "--help", NULL), 0);
	assert_true(c.help);
	cfg_done(&c);
	assert_int_equal(load(&c, err, sizeof(err), "--version", NULL), 0);
	assert_true(c.version);
	cfg_done(&c);
}

/*
 * Fuzz finding (tests/fuzz/fuzz_cfg): a load that ended inside a cluster of
 * short options ("-V") left getopt pointing into that argument, and the
 * next load read it again, from memory the caller may have reused: here
 * the bytes after it, turned into "-Vh", made the next load see --help.
 */
static void cfg_load_twice_forgets_the_previous_argv(void **state)
{
	char cluster[4] = "-V";
	char *first[] = {(char *)"lock-arbiter", cluster, NULL};
	char *second[] = {(char *)"lock-arbiter", (char *)"--database", (char *)"dbname=app", NULL};
	FILE *err = fopen("/dev/null", "w");
	struct cfg c;

	(void)state;
	assert_non_null(err);
	assert_int_equal(cfg_load(&c, 2, first, err), 0);
	assert_true(c.version);
	cfg_done(&c);
	memcpy(cluster, "-Vh", 4);
	assert_int_equal(cfg_load(&c, 3, second, err), 0);
	assert_false(c.help);
	assert_false(c.version);
	assert_int_equal(c.databases.n, 1);
	cfg_done(&c);
	fclose(err);
}

/*
 * Fuzz finding (tests/fuzz/fuzz_cfg): with --help, a bad option was
 * written to err but cfg_load returned 0, against its contract of one
 * line per counted problem. Help still wins in main.
 */
static void help_with_a_bad_option_counts_the_problem(void **state)
{
	struct cfg c;
	char err[256];

	(void)state;
	assert_int_equal(load(&c, err, sizeof(err), "-hT", NULL), 1);
	assert_true(c.help);
	assert_non_null(strstr(err, "unknown option"));
	cfg_done(&c);
}

/*
 * Fuzz finding (tests/fuzz/fuzz_cfg): a value with a newline, quoted in a
 * problem, split it into two lines; the second could pass for a problem
 * of its own. Control characters are now written as \xNN.
 */
static void problem_with_a_newline_stays_on_one_line(void **state)
{
	struct cfg c;
	char err[512];

	(void)state;
	setenv("POD_NAMESPACE", "ops\nlock-arbiter: forged\x1b[2J", 1);
	assert_int_equal(load(&c, err, sizeof(err), "--database", "dbname=app", NULL), 1);
	assert_non_null(strstr(err, "'ops\\x0alock-arbiter: forged\\x1b[2J'"));
	assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
	cfg_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(defaults_match_design, clean_env),
		cmocka_unit_test_setup(flags_parse, clean_env),
		cmocka_unit_test_setup(env_vars_apply_and_flags_win, clean_env),
		cmocka_unit_test_setup(database_url_then_pg_variables, clean_env),
		cmocka_unit_test_setup(holder_namespace_defaults_to_own, clean_env),
		cmocka_unit_test_setup(every_problem_reported_at_once, clean_env),
		cmocka_unit_test_setup(poll_interval_has_a_floor, clean_env),
		cmocka_unit_test_setup(missing_value_and_unreadable_files, clean_env),
		cmocka_unit_test_setup(help_lists_every_flag_and_variable, clean_env),
		cmocka_unit_test_setup(help_and_version_skip_validation, clean_env),
		cmocka_unit_test_setup(cfg_load_twice_forgets_the_previous_argv, clean_env),
		cmocka_unit_test_setup(help_with_a_bad_option_counts_the_problem, clean_env),
		cmocka_unit_test_setup(problem_with_a_newline_stays_on_one_line, clean_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
