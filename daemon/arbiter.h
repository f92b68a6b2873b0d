/*
 * arbiter.h - the main loop: poll every database, follow episodes, decide.
 *
 * One main thread owns everything here, running one event loop (loop.h):
 * each database is a task of its own that polls, judges and acts, so a
 * database that stops answering holds up only its own task; the cluster
 * identity check is another. The struct definitions are shared with the
 * daemon's reporting code (report.c), which reads them on the same thread.
 */
#ifndef LOCK_ARBITER_ARBITER_H
#define LOCK_ARBITER_ARBITER_H

#include "cfg.h"
#include "episode.h"
#include "histogram.h"
#include "loop.h"
#include "status.h"
#include "watch.h"

#include <db.h>
#include <k8s.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* How often the arbiter checks that the API still knows its own pod. */
#define ARBITER_IDENTITY_EVERY_US (300 * INT64_C(1000000))


struct arbiter_db {
	struct arbiter *a;
	struct db *db;
	const char *label; /* owned by db */
	struct db_table *tables; /* as db_discover returned them */
	struct episode_table *state; /* state[i] follows tables[i] */
	size_t n_tables;
	bool discovered; /* tables is the set the last db_discover found */

	bool up;            /* connected and the last poll succeeded */
	bool was_up_logged; /* the last state we logged, for log-on-change */
	bool ever_logged;
	char last_error[256];
	int64_t last_poll_db_us; /* database now() of the last good poll */
	int64_t last_poll_mono_us; /* and the arbiter's clock then */
	bool leader;
	uint64_t release_conflicts, release_errors, zone_mismatches;
	struct histogram poll; /* poll_duration_seconds */

	/* The session guard: whether this role sees other roles' sessions. */
	bool guard_checked, guard_visible, guard_blind_logged;
	uint64_t sessions_terminated; /* holder_sessions_terminated_total */

	/* --lockgranted-timezone: checked against the server, then trusted until contradicted. */
	bool zone_checked;
	bool zone_trusted;

	/* A watch event changed one of this database's holders: judge again now. */
	bool rejudge;
	int cycle_rc; /* the last arbiter_cycle's poll_db result */
};

/* Counters since start, for logs and metrics. */
#define ARBITER_K8S_CODES 32
struct arbiter_stats {
	uint64_t events_posted, events_failed;
	bool kubernetes_up;
	/* kubernetes_requests_total by verb (get, list, create) and code */
	struct {
		int verb;
		long code;
		uint64_t count;
	} k8s[ARBITER_K8S_CODES];
	size_t n_k8s;
	struct histogram k8s_duration[STATUS_K8S_VERBS];
	struct histogram release_delay; /* orphan_release_delay_seconds */
};

struct arbiter {
	const struct cfg *cfg;
	struct arbiter_db *dbs;
	size_t n_dbs;
	const volatile sig_atomic_t *stop;
	struct loop *loop;

	struct k8s_client *k8s; /* NULL when no API is configured (check only) */
	struct holder_watches watches; /* run mode: the holder pods' watches */
	/* Cluster identity: in cluster with POD_NAME and POD_NAMESPACE set. */
	bool identity_required;
	bool identity_ok;
	bool identity_logged;
	int64_t identity_next_mono_us;
	char identity_reason[256];

	/* Some episode waits for --min-lock-age (once and check wait for it). */
	bool any_too_young;
	struct arbiter_stats stats;
	struct status *status; /* published after every cycle when set */
};

/*
 * Builds one arbiter_db per configured database; does not connect. NULL
 * with a message on err when a conninfo does not parse or memory runs out.
 */
struct arbiter *arbiter_new(const struct cfg *cfg, const volatile sig_atomic_t *stop, FILE *err);
void arbiter_free(struct arbiter *a);

/*
 * One pass over every database, all at once: connect if needed, discover
 * if due, poll, follow episodes; returns when every database is done.
 * Returns the number of databases that could not be read.
 */
int arbiter_cycle(struct arbiter *a);

/*
 * Polls each database every poll interval, on its own schedule, and judges
 * again on every watch event, until *stop is set; returns the exit status.
 */
int arbiter_run(struct arbiter *a);

/*
 * once and check: cycles until no verdict waits for --min-lock-age (at most
 * min-lock-age plus one poll interval), so that a single pass can still
 * apply the container rules. Returns the number of unreadable databases in
 * the last cycle.
 */
int arbiter_settle(struct arbiter *a);

/* What lets d's role see other roles' sessions: "pg_read_all_stats" or "PROCESS". */
const char *arbiter_guard_grant(const struct arbiter_db *d);

/* Publishes the status (when a->status is set) for /metrics, /locks and the page. */
void arbiter_publish(struct arbiter *a);

/* Counts the current episodes whose verdict is ORPHANED. */
size_t arbiter_count_orphaned(const struct arbiter *a);

#endif
