/*
 * status.h - what the arbiter shows the world: the published model.
 *
 * The main thread owns the arbiter and, after every cycle, copies what
 * people and Prometheus see into a struct status (status_publish). Every
 * renderer (check's text and JSON, /locks, the HTML page, /metrics) is a
 * pure function of a struct status, so the HTTP thread never touches the
 * arbiter: it takes status->mu, renders, and lets go. The heartbeat is an
 * atomic so that /healthz needs no lock at all.
 */
#ifndef LOCK_ARBITER_STATUS_H
#define LOCK_ARBITER_STATUS_H

#include "histogram.h"
#include "holder.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arbiter;

struct status_lock {
	char *database, *schema, *table;
	bool known; /* the database answered the last poll */
	bool held;
	char *lockedby, *lockgranted; /* NULL when free or SQL NULL */
	char *holder;                 /* holder_describe */
	struct holder *parsed;        /* a copy, NULL when free */
	char *lockgranted_zone;       /* the zone LOCKGRANTED was read in, NULL: not trusted */
	int64_t first_seen_us;        /* database time */
	double held_seconds;
	bool held_lower_bound; /* counted from first_seen, LOCKGRANTED not trusted */
	const char *verdict;   /* "held", "orphaned", "unresolved"; NULL: not judged */
	const char *reason;    /* rule code */
	char *explanation;
	/* The last release of this table by this arbiter. */
	int64_t last_release_us; /* wall clock; 0: none */
	char *last_release_reason, *last_release_lockedby, *last_release_explanation;
};

struct status_db {
	char *label;
	bool up, leader;
	bool guard_blind; /* the session guard cannot see other roles' sessions */
	const char *guard_grant; /* what to grant for it: static, by backend */
	char *error;
	uint64_t release_conflicts, release_errors, zone_mismatches, sessions_terminated;
	struct histogram poll;
};

/* locks_released_total, one series per (database, schema, table, reason). */
struct status_release_count {
	char *database, *schema, *table;
	const char *reason;
	uint64_t count;
};

/* kubernetes_requests_total, one series per (verb, code). */
struct status_k8s_count {
	const char *verb;
	long code;
	uint64_t count;
};

#define STATUS_K8S_VERBS 4 /* get, list, create, watch */

struct status {
	pthread_mutex_t mu;
	_Atomic int64_t heartbeat_mono_us; /* end of the last completed cycle; 0 none */
	int64_t poll_interval_us;
	int64_t start_wall_us;
	const char *version;

	bool kubernetes_configured, kubernetes_up;
	bool identity_required, identity_ok;
	uint64_t events_posted, events_failed;

	/* Replaced as a whole by every status_publish. */
	struct status_tables {
		struct status_db *dbs;
		size_t n_dbs;
		struct status_lock *locks;
		size_t n_locks;
		struct status_release_count *released;
		size_t n_released;
		struct status_k8s_count *k8s;
		size_t n_k8s;
		char *identity_reason;
	} t;
	/*
	 * Who still reads t: the status itself, and each renderer that took a
	 * view (status_view_get) and renders it outside the mutex. The tables
	 * are freed when the last one lets go, so a slow scrape never holds
	 * up status_publish, and so the main loop.
	 */
	struct status_hold *hold;
	struct histogram k8s_duration[STATUS_K8S_VERBS]; /* get, list, create, watch */
	uint64_t watches_open;       /* kubernetes_watches */
	uint64_t watch_events[4];    /* kubernetes_watch_events_total: pod, deleted, bookmark, error */
	struct histogram release_delay;
};

extern const char *const status_k8s_verbs[STATUS_K8S_VERBS];

/* 0, or -errno when the mutex cannot be created. */
int status_init(struct status *st, int64_t poll_interval_us);
void status_done(struct status *st);

/*
 * Copies the arbiter's state into st under st->mu (main thread), and
 * beats the heart. -ENOMEM leaves st as it was.
 */
int status_publish(struct status *st, const struct arbiter *a);

/*
 * /healthz: true while a cycle completed within max(3 x poll interval,
 * 10 s) of now_mono_us. Lock-free.
 */
bool status_healthy(const struct status *st, int64_t now_mono_us);

/*
 * /readyz: true when every database is up and the identity check passed;
 * otherwise *why is a one-line reason. Call with st->mu held.
 */
bool status_ready(const struct status *st, char *why, size_t cap);

/*
 * A copy of st to render from without the mutex: *view shares st's tables,
 * which stay valid until status_view_put. Takes the mutex briefly. view's
 * mutex is not to be used.
 */
void status_view_get(struct status *st, struct status *view);
void status_view_put(struct status *view);

#endif
