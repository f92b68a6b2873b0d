/*
 * episode.h - one held lock, followed from poll to poll (DESIGN.md section 4).
 *
 * An episode is identified by (database, schema, table, lockedby,
 * lockgranted); struct episode_table is one lock table of one database and
 * carries at most one current episode. For each episode we keep first_seen
 * (database time of the first poll that saw it), whether it is fresh (the
 * previous successful poll saw the row free or another episode, so the
 * grant happened after grant_after), and the parsed holder.
 *
 * Pure: no I/O, no clock. The caller passes database and monotonic times.
 */
#ifndef LOCK_ARBITER_EPISODE_H
#define LOCK_ARBITER_EPISODE_H

#include "holder.h"

#include <stdbool.h>
#include <stdint.h>

/* What one poll read for one lock table. Strings are borrowed. */
struct episode_obs {
	bool locked; /* false also when the row is absent */
	const char *lockedby;
	const char *lockgranted;
	bool granted_zone_valid;
	int64_t granted_zone_us; /* LOCKGRANTED read in --lockgranted-timezone */
};

struct episode {
	uint64_t serial;   /* unique in the process: names the episode to its watch */
	char *lockedby;    /* NULL when SQL NULL */
	char *lockgranted; /* as the database returned it, or NULL */
	bool granted_zone_valid;
	int64_t granted_zone_us;
	int64_t first_seen_us;      /* database time */
	int64_t first_seen_mono_us; /* the arbiter's own clock, for rule O5 */
	bool fresh;
	int64_t grant_after_us; /* meaningful when fresh */
	struct holder holder;   /* LOCKEDBY parsed once */
	/* The grant time the zone check rejected; LOCKGRANTED is then ignored. */
	bool zone_mismatch;

	/* What the arbiter learned of the holder during this episode. */
	bool holder_seen_alive;     /* a candidate pod was seen (HOST form) */
	char holder_ns[64];         /* the pod it resolved to, once seen */
	char holder_pod[254];
	char holder_uid[64];        /* uid of that pod when first seen */
	int64_t holder_deleting_us; /* its deletionTimestamp, once seen */
	/*
	 * For the session guard: the IPs the holder pod had while seen, and
	 * those of every other candidate pod seen alive while the holder was
	 * ambiguous (any of them may have been the holder).
	 */
	char holder_addrs[8][64];
	size_t n_holder_addrs;
	int64_t orphan_seen_us;     /* database time of the first ORPHANED verdict; 0 none */
	bool rejudge;               /* a watch event changed the holder since the last verdict */
	int64_t terminated[8];      /* sessions this arbiter ended (--terminate-orphaned-sessions) */
	size_t n_terminated;

	/* The last verdict (verdict.h values), kept for logs, check and /locks. */
	struct episode_judgement {
		bool judged;
		int state, rule, action;
		char text[384];
		bool release_failed_logged;
		bool released;        /* this arbiter freed it: nothing to judge until the next poll */
		bool addr_listed;     /* the address was looked up (once per episode) */
		char addr_hint[448];  /* "; address ... belongs to pod ns/name", or "" */
	} judgement;
};

/* Releases of one lock table, kept across episodes (metrics, status page). */
#define EPISODE_MAX_RULES 24
struct episode_releases {
	uint64_t by_rule[EPISODE_MAX_RULES]; /* indexed by verdict rule */
	int64_t last_us;                     /* wall clock of the last release; 0 none */
	int last_rule;
	char *last_lockedby, *last_explanation;
};

struct episode_table {
	char *schema;
	char *table;
	struct episode_releases releases;
	bool polled;          /* a successful poll has read this table */
	/* MySQL: the last poll said whether this arbiter acts for the table's database. */
	bool leader_known, leader;
	int64_t last_poll_us; /* database time of that poll */
	struct episode *current; /* NULL while the lock is free */
};

enum episode_change {
	EPISODE_NONE,     /* same state as before */
	EPISODE_STARTED,  /* free before (or never polled), held now */
	EPISODE_ENDED,    /* held before, free now */
	EPISODE_REPLACED, /* held before by another episode, held now */
};

/* Initialises t for schema.table (copied). -ENOMEM on failure. */
int episode_table_init(struct episode_table *t, const char *schema, const char *table);
void episode_table_done(struct episode_table *t);

/*
 * Applies one successful poll to t. When an episode ends or is replaced,
 * *ended receives it (the caller frees it with episode_free); otherwise
 * *ended is set to NULL. check_skew_us: with a trusted zone, a fresh
 * episode whose LOCKGRANTED falls outside [grant_after - skew, first_seen +
 * skew] is marked zone_mismatch. Returns the change, or a negative errno
 * (-ENOMEM: t is unchanged).
 */
int episode_observe(struct episode_table *t, const struct episode_obs *obs, int64_t db_now_us,
		    int64_t mono_now_us, int64_t skew_us, struct episode **ended);

/*
 * grant_before: the earliest of first_seen and, when trust_zone and the
 * episode's LOCKGRANTED was read in a zone and passed the zone check,
 * LOCKGRANTED + skew.
 */
int64_t episode_grant_before(const struct episode *e, bool trust_zone, int64_t skew_us);

/* Adds ip to e->holder_addrs unless it is there (or the list is full). */
void episode_add_addr(struct episode *e, const char *ip);

void episode_free(struct episode *e);

#endif
