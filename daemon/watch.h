/*
 * watch.h - the arbiter's watches of holder pods (DESIGN.md section 7,
 * "Event-driven").
 *
 * While a lock is held by a pod the arbiter has seen, it watches that pod
 * from the resourceVersion of the snapshot it decided on, and judges the
 * lock again on every event, so a release follows the API's record of a
 * death by milliseconds instead of a poll interval. The latest snapshot (a
 * GET's, then each event's) is kept: while the stream is open no event
 * means no change, so the poll judges from it without a GET. A stream that
 * ends is resumed from its last resourceVersion after the set's backoff;
 * 410 Expired (or an unreadable event) drops the snapshot, so the next
 * poll GETs the pod and starts a new watch from it. Meanwhile, and
 * whenever watching fails, the poll's GET decides, as without watches.
 * No lock held: no watch.
 *
 * Owned by the arbiter, used on its one thread. Watches are keyed by the
 * serial of the episode they follow, never reused, so a watch can never
 * be mistaken for a later lock's. The array moves as watches come and go:
 * a task must not keep a struct holder_watch pointer across a wait.
 */
#ifndef LOCK_ARBITER_WATCH_H
#define LOCK_ARBITER_WATCH_H

#include "loop.h"

#include <k8s.h>
#include <stdbool.h>
#include <stdint.h>

struct holder_watch {
	uint64_t id;
	uint64_t serial; /* of the episode it follows */
	char ns[64], name[254];
	struct k8s_pod pod; /* the latest snapshot, when have_pod */
	bool have_pod;
	bool gone;          /* a DELETED event: the API recorded the deletion */
	bool streaming;     /* a connection is open or opening */
	int64_t resume_at_mono_us; /* 0: not waiting to resume */
	bool seen;          /* marked by the sweep */
};

struct holder_watches {
	struct k8s_watches *set; /* NULL: watches are off (once, check, no API) */
	struct holder_watch *w;
	size_t n, cap;
	uint64_t next_id;
	uint64_t events_by_type[8]; /* kubernetes_watch_events_total{type} */
	void (*on_change)(void *ctx, struct holder_watch *w);
	void *on_change_ctx;
};

/* Creates the set on k. 0, or a negative errno with err filled. */
int watches_init(struct holder_watches *hw, struct k8s_client *k, char *err, size_t cap);
void watches_done(struct holder_watches *hw);

/* The watch of e, or NULL. */
struct holder_watch *watches_find(struct holder_watches *hw, uint64_t serial);

/*
 * After a GET showed e's holder pod: keeps pod (moved: *pod is the
 * watch's afterwards) as the snapshot and starts the watch from its
 * resourceVersion unless one is streaming. Returns the watch or NULL (off,
 * or the start failed: the poll's GET goes on deciding).
 */
struct holder_watch *watches_follow(struct holder_watches *hw, uint64_t serial,
				    const char *ns, const char *name, struct k8s_pod *pod);

/* A snapshot the poll may judge from without a GET, or NULL. */
const struct holder_watch *watches_usable(struct holder_watches *hw, uint64_t serial);

/* Stops the watch of an episode now (its lock was released). */
void watches_forget(struct holder_watches *hw, uint64_t serial);

/* Stops the watches whose episode is not marked by watches_mark since the last sweep. */
void watches_mark(struct holder_watches *hw, uint64_t serial);
void watches_sweep(struct holder_watches *hw);

/*
 * Makes the watches a source of the event loop: on its traffic every event
 * is applied to its watch, and on_change is called (from the loop, not a
 * task: it must not wait) for each watch whose snapshot changed (a POD or
 * DELETED event). Ended streams are resumed when their backoff is over.
 * 0 or -ENOSPC.
 */
int watches_attach(struct holder_watches *hw, struct loop *l,
		   void (*on_change)(void *ctx, struct holder_watch *w), void *ctx);

/* Open watch connections, for kubernetes_watches. */
size_t watches_open(const struct holder_watches *hw);

#endif
