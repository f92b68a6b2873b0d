/*
 * watch-internal.h - what watch.c (connections, the set) and watch-loop.c
 * (descriptors, timer, the caller's loop) share; not for the daemon.
 */
#ifndef LOCK_ARBITER_K8S_WATCH_INTERNAL_H
#define LOCK_ARBITER_K8S_WATCH_INTERNAL_H

#include "k8s-internal.h"

struct node {
	struct node *next;
	struct watch *w;
	struct k8s_watch_event ev;
};

struct watch {
	struct watch *next;
	struct k8s_watches *ws;
	uint64_t id;
	char ns[64];
	char name[254];
	char rv[K8S_RV_MAX]; /* the last version seen: where a resume starts */
	CURL *h;             /* NULL: not connected */
	struct curl_slist *headers;
	struct node *terminal; /* reserved for this connection's terminal event */
	struct k8s_watch_decoder dec;
	long code;           /* the response's status, once known */
	char *err_body;      /* a non-200 answer's body (capped) */
	size_t err_len;
	bool ended;          /* a terminal event was queued from the stream */
	bool delivered;      /* this connection queued an event */
	bool retried_401;    /* the token was re-read after a 401 already */
	size_t queued;       /* this watch's events in the queue */
	int64_t backoff_us;
	int64_t started_us;
	int64_t partial_since_us; /* an event line began then and is not complete; 0: none */
	char errbuf[CURL_ERROR_SIZE];
};

struct k8s_watches {
	struct k8s_client *k;
	struct k8s_watch_config cfg;
	struct k8s_multi m; /* the connections, with their descriptors and timer */
	struct watch *list;
	size_t n;
	struct node *head, *tail;
	uint32_t rng;
};

/* Turns the transfers libcurl has finished into terminal events (watch.c). */
void k8s_watches_collect(struct k8s_watches *ws);

/*
 * An event line that stays incomplete this long ends its stream (ENDED
 * "Stalled"): a stream that trickles (a proxy dripping bytes, a server
 * wedged inside an event) would otherwise keep the caller trusting a stale
 * snapshot until the transfer's own timeout, half an hour away. A real API
 * server writes each event whole.
 */
#define K8S_WATCH_STALL_US (10 * INT64_C(1000000))
/* The earliest stall deadline of any connected watch; -1: none (watch.c). */
int64_t k8s_watches_stall_deadline(const struct k8s_watches *ws);

#endif
