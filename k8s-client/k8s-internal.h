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
 * The transport (client.c) withholds a body that holds the token before
 * it gets here.
 */
enum k8s_outcome k8s_status_result(long code, const char *body, size_t len, const char *name,
                                   const char *ctype, struct k8s_result *res);

/*
 * Parses JSON text of exactly len bytes (no NUL needed, only whitespace
 * allowed after the value). NULL when it is not one JSON value.
 */
cJSON *k8s_json_parse(const char *json, size_t len);

/*
 * What the client (client.c) shares with its watches (watch.c): its
 * configuration, its base URL, the options of every handle that talks to
 * the API (TLS always verified, only the configured scheme, no redirects,
 * connect timeout, user agent, TCP keep-alive: 0 or -EINVAL), and the
 * token. k8s_client_auth_header re-reads the token when it is due (at once
 * when force, after a 401) and gives the header line in a new string that
 * the caller wipes (explicit_bzero) before freeing; *out is NULL when no
 * token is configured. 0 or -ENOMEM.
 */
const struct k8s_config *k8s_client_config(const struct k8s_client *k);
const char *k8s_client_base(const struct k8s_client *k);
int k8s_client_setup_easy(const struct k8s_client *k, CURL *h);
int k8s_client_auth_header(struct k8s_client *k, bool force, char **out);
/* The reason a failed transfer gets in a k8s_result ("Timeout", "Reset", ...). */
const char *k8s_client_curl_reason(CURLcode rc);
/* True when text (len bytes) holds the token: it must never be copied out. */
bool k8s_client_holds_token(const struct k8s_client *k, const char *text, size_t len);

/* snprintf into err when err is not NULL; always returns -EINVAL. */
int k8s_fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
