/*
 * cfg.h - lock-arbiter's configuration (DESIGN.md section 8).
 *
 * Every flag is also read from LOCK_ARBITER_<FLAG> (upper case, '-' as
 * '_'); a flag given on the command line wins over its variable. Repeatable
 * flags take a comma-separated list from their variable, except
 * LOCK_ARBITER_DATABASE, which is split on newlines because conninfo strings
 * and URLs may hold commas. Without --database, DATABASE_URL is used, and
 * without that libpq's own PG* variables (PGHOST, PGDATABASE, PGSERVICE).
 *
 * cfg_load checks everything and reports every problem, not just the first.
 * struct cfg owns all of its strings; cfg_done frees them.
 */
#ifndef LOCK_ARBITER_CFG_H
#define LOCK_ARBITER_CFG_H

#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_mode { CFG_MODE_RUN, CFG_MODE_ONCE, CFG_MODE_CHECK };
enum cfg_leader { CFG_LEADER_ADVISORY, CFG_LEADER_NONE };
enum cfg_guard { CFG_GUARD_ON, CFG_GUARD_REQUIRE, CFG_GUARD_OFF };

struct cfg_list {
	char **items;
	size_t n;
};

struct cfg {
	enum cfg_mode mode;
	bool json;          /* check --json */
	bool help, version; /* print and exit 0 */

	struct cfg_list databases;
	char *table;
	struct cfg_list schemas;           /* empty: every schema */
	struct cfg_list holder_namespaces; /* never empty after cfg_load */
	char *holder_container;            /* NULL: unknown */
	int64_t poll_interval_us;
	int64_t clock_skew_us;
	int64_t min_lock_age_us;
	char *lockgranted_timezone;         /* NULL: LOCKGRANTED not trusted */
	int64_t release_unresolved_after_us; /* 0: off (O5 disabled) */
	enum cfg_leader leader_election;
	bool dry_run;
	enum cfg_guard session_guard;
	bool terminate_orphaned_sessions;
	char *listen; /* host:port; "[v6]:port" for IPv6 */
	char *kube_api, *kube_token_file, *kube_ca_file;
	bool events;
	enum log_format log_format;
	enum log_level log_level;

	/* From the Downward API, when set. */
	char *pod_name, *pod_namespace, *pod_uid, *container_name;

	/*
	 * Test-only compressed intervals (0: the production default), read
	 * from LOCK_ARBITER_TEST_INTERVALS="identity=DUR,token=DUR" only in a
	 * build configured with -Dtest_hooks=true; a release build ignores the
	 * variable and says so, so no production configuration can set them.
	 */
	int64_t test_identity_every_us;
	int64_t test_token_reread_us;
	bool test_hooks_ignored; /* the variable was set in a build without hooks */
};

/* Paths the in-cluster defaults come from; tests may point them elsewhere. */
#define CFG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/*
 * Fills c from argv and the environment (getenv). Returns 0 when valid,
 * otherwise the number of problems found, each written as one line to err.
 * c must be cfg_done'd either way.
 */
int cfg_load(struct cfg *c, int argc, char **argv, FILE *err);
void cfg_done(struct cfg *c);

/* Writes --help (every flag, its variable and default) to out. */
void cfg_usage(FILE *out);

#endif
