/*
 * k8s-internal.h - what the files of the Kubernetes client share among
 * themselves (and with their tests and fuzz target); not part of the
 * contract in k8s.h, and not for the daemon.
 */
#ifndef LOCK_ARBITER_K8S_INTERNAL_H
#define LOCK_ARBITER_K8S_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "k8s.h"

/*
 * More containers than this in one pod is not a pod the API server would
 * serve; the cap bounds the memory a hostile body can make us allocate.
 */
#define K8S_MAX_CONTAINERS 256


/*
 * Parses an RFC 3339 timestamp ("2019-08-09T05:12:19Z", with optional
 * fractional seconds and a Z or +hh:mm offset) into microseconds since the
 * epoch. Fractions finer than a microsecond are dropped. 0 or -EINVAL;
 * *us is written only on success.
 */
int k8s_time_parse(const char *s, int64_t *us);
/*
 * Formats microseconds since the epoch in UTC, "2006-01-02T15:04:05Z"
 * (micro false) or "2006-01-02T15:04:05.000000Z" (micro true): the forms
 * of metav1.Time and metav1.MicroTime. 0 or -EINVAL (buffer too small, or
 * a time outside years 0000-9999).
 */
int k8s_time_format(int64_t us, bool micro, char *buf, size_t cap);

/*
 * Parses a Pod from a cJSON object. list_item: the object is an item of a
 * PodList, where the API server leaves out kind and apiVersion. Same
 * contract as k8s_pod_parse.
 */
int k8s_pod_from_json(const cJSON *obj, bool list_item, struct k8s_pod *out, char *err, size_t cap);
/*
 * Parses a PodList body into a malloc'd array (NULL when empty). 0 or
 * -EINVAL / -ENOMEM with err filled; *pods and *n written only on success.
 */
int k8s_pod_list_parse(const char *json, size_t len, struct k8s_pod **pods, size_t *n, char *err,
                       size_t cap);

/*
 * A member of obj for the other files, with pod.c's rules: absent and null
 * are NULL; a duplicate key or another type is -EINVAL with err naming
 * path and key.
 */
int k8s_json_get_str(const cJSON *obj, const char *path, const char *key, const char **out,
                     char *err, size_t cap);
int k8s_json_get_object(const cJSON *obj, const char *path, const char *key, const cJSON **out,
                        char *err, size_t cap);

/* What an error body says, when it is a Status. */
struct k8s_status {
	bool is_status;
	bool not_found; /* reason NotFound, about the pod asked for (name) */
	char reason[64];
	char message[256];
};

/*
 * Reads an error body of len bytes (no NUL needed) as a Status; name is
 * the pod asked for, NULL for a list. Control characters of the reason and
 * message become '?'. Anything that is not a Status leaves *st zeroed.
 */
void k8s_status_parse(const char *body, size_t len, const char *name, struct k8s_status *st);

/*
 * Maps an HTTP answer that is not the success asked for to an outcome and
 * fills res: GONE only for a 404 whose Status is NotFound about name;
 * otherwise UNKNOWN, with the Status reason and message, or reason
 * "HTTPnnn" and a message naming ctype (the Content-Type, may be NULL).
 * k8s_error_result withholds a body that holds the token before it gets
 * here.
 */
enum k8s_outcome k8s_status_result(long code, const char *body, size_t len, const char *name,
                                   const char *ctype, struct k8s_result *res);

/*
 * Parses JSON text of exactly len bytes (no NUL needed, only whitespace
 * allowed after the value). NULL when it is not one JSON value.
 */
cJSON *k8s_json_parse(const char *json, size_t len);

/* ---- small shared pieces (text.c, time.c) ---- */

/* CLOCK_MONOTONIC and CLOCK_REALTIME in microseconds. */
int64_t k8s_mono_us(void);
int64_t k8s_wall_us(void);
/* Concatenates a NULL-terminated list of strings into a new string; NULL when out of memory. */
char *k8s_join(const char *first, ...);
/* Wipes (explicit_bzero) and frees: for anything that held the token. */
void k8s_wipe_free(char *s, size_t n);
void k8s_wipe_slist(struct curl_slist *l);
/*
 * Copies server text into a result field: control characters become '?'
 * (the text ends up in log lines), and a UTF-8 sequence cut by the cap is
 * dropped whole.
 */
void k8s_copy_text(char *dst, size_t cap, const char *src, size_t n);
/* Fills every field of res; reason goes through k8s_copy_text. */
void k8s_result_set(struct k8s_result *res, enum k8s_outcome o, long code, const char *reason,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- configuration (config.c) ---- */

/*
 * Checks an API URL with libcurl's own parser, so that what is checked is
 * what it connects to: http or https, no query, fragment or credentials.
 * 0 with *https and *loopback written, or a negative errno with err.
 */
int k8s_url_check(const char *url, bool *https, bool *loopback, char *err, size_t cap);

/* ---- a multi handle in the caller's event loop (multi.c) ---- */

struct k8s_fdrec {
	int fd;
	int events; /* K8S_WATCH_IN | K8S_WATCH_OUT */
};

struct k8s_multi {
	CURLM *multi;
	struct k8s_fdrec *fds; /* what libcurl asked to be told about */
	size_t n_fds, cap_fds;
	int64_t deadline_us; /* libcurl's timer, CLOCK_MONOTONIC; -1: none */
	void (*on_fd)(void *ctx, int fd, int events); /* told of every change; may be NULL */
	void *on_fd_ctx;
};

/* 0, or -ENOMEM / -EINVAL; k8s_multi_done frees it (also after a failure). */
int k8s_multi_init(struct k8s_multi *m);
void k8s_multi_done(struct k8s_multi *m);
size_t k8s_multi_fds(const struct k8s_multi *m, int *fds, int *events, size_t cap);
/* curl_multi_socket_action on fd (-1: the timer). 0 or -EIO. */
int k8s_multi_action(struct k8s_multi *m, int fd, int events);
/* Polls the descriptors for at most timeout_us (-1: no limit) and calls action for each ready one. */
int k8s_multi_poll(struct k8s_multi *m, int64_t timeout_us,
                   int (*action)(void *ctx, int fd, int events), void *ctx);

/* ---- the client: transport.c, token.c, status.c ---- */

/* A response body as it arrives, capped at max. */
struct k8s_body {
	char *buf;
	size_t len, cap, max;
	bool too_large;
	bool no_memory;
};

/* One request in flight, on its own easy handle in the client's multi. */
struct k8s_xfer {
	CURL *h;
	struct k8s_body body;
	struct curl_slist *headers; /* holds the token: wiped */
	char errbuf[CURL_ERROR_SIZE];
	bool done;   /* libcurl finished it: rc is its result */
	CURLcode rc;
	long code;   /* the HTTP status of a response that arrived whole */
};

struct k8s_client {
	struct k8s_config cfg; /* strings owned */
	char *base;            /* api_url without a trailing '/' */
	bool https;
	struct k8s_multi m;    /* the requests in flight */
	CURL *idle[4];         /* set-up handles kept for the next requests */
	size_t n_idle;
	char *token;           /* NULL: none; wiped before it is freed */
	size_t token_len;
	int64_t token_checked; /* CLOCK_MONOTONIC µs of the last read attempt */
	int64_t backoff_us;    /* current delay after outage answers; 0: none */
	int64_t backoff_until; /* CLOCK_MONOTONIC µs before which nothing is sent */
	long outage_code;      /* the outage answer that started the backoff */
	char outage_reason[64];
};

/*
 * The options every handle talking to the API has, the requests' and the
 * watches' (TLS always verified, only the configured scheme, no
 * redirects, connect timeout, user agent, TCP keep-alive): 0 or -EINVAL.
 */
int k8s_client_setup_easy(const struct k8s_client *k, CURL *h);
const struct k8s_config *k8s_client_config(const struct k8s_client *k);
const char *k8s_client_base(const struct k8s_client *k);
/* The reason a failed transfer gets in a k8s_result ("Timeout", "Reset", ...). */
const char *k8s_client_curl_reason(CURLcode rc);

/*
 * One request (verb is the metrics label: "get", "list", "create"): a
 * POST when post is not NULL, else a GET. Refused without sending while
 * backing off after an outage; retried once with a freshly read token
 * after a 401. Waits for the answer through cfg.suspend (the caller's
 * loop) or by polling. 0 when an HTTP response arrived whole (x->code,
 * x->body); otherwise a negative errno with res filled. Either way the
 * caller ends with k8s_xfer_done.
 */
int k8s_request(struct k8s_client *k, const char *verb, const char *url, const char *post,
                struct k8s_xfer *x, struct k8s_result *res);
void k8s_xfer_done(struct k8s_client *k, struct k8s_xfer *x);

/*
 * The token (token.c). k8s_token_refresh re-reads it when token_reread_us
 * has passed, or at once when force (after a 401); a failed read keeps
 * the old token. k8s_client_auth_header gives the header line in a new
 * string that the caller wipes (k8s_wipe_free); *out is NULL when no token
 * is configured. k8s_token_headers builds a request's header list (Accept,
 * the token, and for a POST the Content-Type). 0 or a negative errno.
 */
int k8s_token_refresh(struct k8s_client *k, bool force);
int k8s_client_auth_header(struct k8s_client *k, bool force, char **out);
int k8s_token_headers(struct k8s_client *k, bool post, struct curl_slist **out);
/* True when text (len bytes) holds the token: it must never be copied out. */
bool k8s_client_holds_token(const struct k8s_client *k, const char *text, size_t len);

/*
 * The result of an answer that is not the success the caller wanted
 * (status.c), from x's code, body and Content-Type; nothing of a body that
 * holds the token is copied out. An outage answer's reason is kept for the
 * requests refused while backing off.
 */
enum k8s_outcome k8s_error_result(struct k8s_client *k, const struct k8s_xfer *x,
                                  const char *name, struct k8s_result *res);

/* snprintf into err when err is not NULL; always returns -EINVAL. */
int k8s_fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
