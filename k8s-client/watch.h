/*
 * watch.h - watches of single pods (DESIGN.md section 7, "Event-driven"),
 * included by k8s.h.
 *
 * Two layers:
 *
 * - The decoder: a pure, incremental reader of a watch stream (one JSON
 *   object a line, already de-chunked), fed byte runs cut anywhere. It
 *   never reads past what it is given, keeps at most one line (capped), and
 *   turns every line into one event: a line it cannot read, or one longer
 *   than the cap, is an ERROR event, never a crash and never skipped in
 *   silence.
 *
 * - The watch set: non-blocking watch connections on a libcurl multi
 *   handle, for a single-threaded poll/epoll loop. One easy handle a
 *   watch, all sharing the client's configuration (URL, CA, token and its
 *   re-read, timeouts) but not its easy handle or its backoff. Nothing
 *   here blocks: the caller waits on the descriptors the set names (or
 *   calls k8s_watches_poll), then calls k8s_watches_action, then drains
 *   the events with k8s_watches_next.
 *
 * Every watch (an id chosen by the caller) produces, per connection, any
 * number of POD, DELETED and BOOKMARK events, then exactly one terminal
 * event (EXPIRED, ERROR, ENDED or FAILED) after which it has no connection
 * until the caller starts it again; k8s_watch_stop removes it at once, and
 * no event of it is returned afterwards. No lock held, no watch: the set
 * opens nothing by itself and never reconnects on its own.
 *
 * What the caller does with each event:
 *   POD, DELETED  judge again with ev.pod (DELETED: the pod's last state,
 *                 the API's record of its deletion)
 *   BOOKMARK      nothing: the set has noted the resourceVersion
 *   EXPIRED       410: GET the pod, then k8s_watch_start from its version
 *   ERROR         an ERROR event that is not 410, or a line that could not
 *                 be read: the same as EXPIRED (resuming would replay it)
 *   ENDED         the stream ended (server closed, timeout, reset):
 *                 k8s_watch_resume after ev.retry_in_us
 *   FAILED        the watch request was refused (401 after a token
 *                 re-read, 403, 5xx, ...) or never answered: ev.result says
 *                 which; keep polling with GETs, k8s_watch_resume after
 *                 ev.retry_in_us
 * retry_in_us doubles with each consecutive terminal event that was not a
 * normal end (from the client's backoff_min_us to backoff_max_us) and is 0
 * after a stream that ran its course or delivered an event.
 */
#ifndef LOCK_ARBITER_K8S_WATCH_H
#define LOCK_ARBITER_K8S_WATCH_H

#include "k8s.h"

enum k8s_watch_type {
	K8S_WATCH_POD,      /* ADDED or MODIFIED */
	K8S_WATCH_DELETED,
	K8S_WATCH_BOOKMARK,
	K8S_WATCH_EXPIRED,  /* ERROR with a 410 Status (Expired, Gone) */
	K8S_WATCH_ERROR,    /* other ERROR, or an unreadable or oversized line */
	K8S_WATCH_ENDED,    /* set only: the stream ended */
	K8S_WATCH_FAILED,   /* set only: the watch request failed */
};

struct k8s_watch_event {
	enum k8s_watch_type type;
	uint64_t id;  /* the watch's id (0 from the decoder alone) */
	bool added;   /* POD: ADDED rather than MODIFIED */
	/*
	 * POD, DELETED, BOOKMARK: the object's resourceVersion (never "");
	 * terminal events: the last one the watch saw, where it resumes.
	 */
	char resource_version[K8S_RV_MAX];
	struct k8s_pod pod;       /* POD and DELETED; freed by k8s_watch_event_done */
	/*
	 * Terminal events: why. EXPIRED and ERROR from a Status: its code and
	 * reason ("Expired", "Gone", "InternalError"); from the decoder:
	 * reason "Malformed" or "TooLarge"; ENDED and FAILED as k8s_get_pod
	 * reports a request ("Timeout", "Reset", "Forbidden", "HTTP503",
	 * "EndOfStream" for a clean end, "Overflow" when the caller did not
	 * drain the events). outcome is always K8S_UNKNOWN.
	 */
	struct k8s_result result;
	int64_t retry_in_us; /* ENDED and FAILED: wait this long before resuming */
};

/* Frees what ev owns (its pod); ev may then be reused. Accepts NULL. */
void k8s_watch_event_done(struct k8s_watch_event *ev);
/* "POD", "DELETED", ... for logs and metrics. */
const char *k8s_watch_type_name(enum k8s_watch_type t);

/* ---- the decoder ---- */

struct k8s_watch_decoder {
	char *line;       /* the incomplete line so far (owned) */
	size_t len, cap;
	size_t max_line;  /* a longer line is a TooLarge ERROR */
	bool skipping;    /* inside an oversized line, dropped up to its '\n' */
};

/* max_line 0: K8S_MAX_BODY. Allocates nothing until a line spans two feeds. */
void k8s_watch_decoder_init(struct k8s_watch_decoder *d, size_t max_line);
/* Frees the partial line; the decoder may be initialised again. */
void k8s_watch_decoder_done(struct k8s_watch_decoder *d);

/*
 * Consumes data[0..len) up to and including the first line it completes
 * (*used says how many bytes). 1: *ev holds that line's event (release it
 * with k8s_watch_event_done); 0: all of data was consumed and no line was
 * completed (a partial one is kept); -ENOMEM: the line could not be
 * kept or read, *used bytes before it were consumed, feed the rest again
 * later. Empty and blank lines are skipped. An oversized line gives
 * its ERROR as soon as the cap is passed; its remaining bytes up to '\n'
 * are dropped. Call again with the rest until it returns 0.
 */
int k8s_watch_decode(struct k8s_watch_decoder *d, const char *data, size_t len, size_t *used,
                     struct k8s_watch_event *ev);

/*
 * Reads one event line (without its '\n', no NUL needed) into *ev: always
 * an event, ERROR "Malformed" when the line is not a watch event of a Pod.
 * 0, or -ENOMEM with *ev untouched.
 */
int k8s_watch_line_parse(const char *line, size_t len, struct k8s_watch_event *ev);

/* ---- the watch set ---- */

/* Descriptor interest, for k8s_watch_config.on_fd and k8s_watches_action. */
#define K8S_WATCH_IN 1
#define K8S_WATCH_OUT 2

struct k8s_watch_config {
	/*
	 * timeoutSeconds asked of the server. Each connection asks a random
	 * value in [timeout_us, 2 * timeout_us), as client-go's reflector does,
	 * so watches started together do not all reconnect together. The
	 * transfer itself is cut 30 s after that, should the server ignore it.
	 * Default 300 s.
	 */
	int64_t timeout_us;
	/*
	 * No byte at all for this long ends the stream (reason "Timeout"),
	 * whatever the server promised; 0: off (default), since a quiet pod
	 * is a silent stream. A half-open connection is found by TCP
	 * keep-alive (15 s idle, probes every 5 s) either way.
	 */
	int64_t idle_us;
	size_t max_watches; /* k8s_watch_start refuses more (-ENOSPC); default 1024 */
	/*
	 * Events waiting in one watch's queue; past that its stream is ended
	 * (ENDED "Overflow"), so a flood cannot take memory without bound and
	 * resuming from the last queued version loses nothing. Default 256.
	 */
	size_t max_queued;
	/*
	 * Told each change of interest in a descriptor (K8S_WATCH_IN and/or
	 * K8S_WATCH_OUT; 0: forget it), for an epoll loop. NULL: the caller
	 * asks k8s_watches_fds before each wait instead.
	 */
	void (*on_fd)(void *ctx, int fd, int events);
	void *on_fd_ctx;
};

/* The defaults above. */
void k8s_watch_config_default(struct k8s_watch_config *c);

struct k8s_watches;

/*
 * A set of watches that uses k's configuration and token; k must outlive
 * it. cfg NULL: the defaults. NULL with err filled on failure.
 */
struct k8s_watches *k8s_watches_new(struct k8s_client *k, const struct k8s_watch_config *cfg,
                                    char *err, size_t cap);
/* Closes every connection (on_fd is told) and frees the set; accepts NULL. */
void k8s_watches_free(struct k8s_watches *ws);

/*
 * Starts watching pod NS/NAME from resource_version (of the snapshot the
 * caller decided on; required) under id: GET
 * /api/v1/namespaces/NS/pods?watch=1&fieldSelector=metadata.name%3DNAME
 * &resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T.
 * An id already in the set is restarted (its connection closed, its
 * queued events dropped, its backoff kept). 0; -EINVAL for a bad name or
 * version; -ENOSPC past max_watches; -ENOMEM or -EIO (libcurl refused).
 * Nothing is sent before the next k8s_watches_action.
 */
int k8s_watch_start(struct k8s_watches *ws, uint64_t id, const char *ns, const char *name,
                    const char *resource_version);
/*
 * Reconnects id from the last resourceVersion it saw, after ENDED or
 * FAILED. -ENOENT when id is unknown, -EBUSY when it is connected; else as
 * k8s_watch_start.
 */
int k8s_watch_resume(struct k8s_watches *ws, uint64_t id);
/* Closes id's connection and forgets it and its events. 0 or -ENOENT. */
int k8s_watch_stop(struct k8s_watches *ws, uint64_t id);
/* The last resourceVersion id saw ("" when unknown); NULL when id is unknown. */
const char *k8s_watch_resource_version(const struct k8s_watches *ws, uint64_t id);

/* Watches in the set, and those with a connection open or opening. */
size_t k8s_watches_count(const struct k8s_watches *ws);
size_t k8s_watches_connected(const struct k8s_watches *ws);

/*
 * The descriptors to wait on: at most cap of them in fds/events (events
 * K8S_WATCH_IN|OUT); returns how many there are (may exceed cap).
 */
size_t k8s_watches_fds(const struct k8s_watches *ws, int *fds, int *events, size_t cap);
/*
 * How long the caller may wait before calling k8s_watches_action with
 * fd -1, in µs: -1 when no deadline, 0 at once.
 */
int64_t k8s_watches_timeout_us(const struct k8s_watches *ws);
/*
 * Lets libcurl work on fd (with its ready events, K8S_WATCH_IN|OUT, or 0
 * when unknown), or on its timers when fd is -1; never blocks. Completed
 * lines become events. 0, or -EIO when libcurl failed.
 */
int k8s_watches_action(struct k8s_watches *ws, int fd, int events);
/*
 * For a loop with nothing else to wait on (and for tests): waits up to
 * timeout_us (bounded by the set's own deadline) for descriptor activity,
 * then acts on it. 0, -EINTR when a signal interrupted the wait, or -EIO.
 */
int k8s_watches_poll(struct k8s_watches *ws, int64_t timeout_us);
/*
 * Takes the oldest pending event of any watch into *ev (the caller owns
 * it: k8s_watch_event_done). 1 when one was taken, 0 when none is pending.
 */
int k8s_watches_next(struct k8s_watches *ws, struct k8s_watch_event *ev);

#endif
