/*
 * watch.c - the watch set (watch.h): pod watches as non-blocking libcurl
 * transfers on one multi handle, driven by the caller's event loop through
 * curl_multi_socket_action.
 *
 * Ownership: the set owns its multi handle, one easy handle and header
 * list per connected watch (the header holds the token: wiped when freed),
 * each watch's decoder, and the queue of events not yet taken. Every
 * connection is given its terminal event's memory when it opens, so that
 * the promise of exactly one terminal event per connection holds even
 * when memory runs out. The write callback runs inside
 * k8s_watches_action; it only decodes and queues. The loop's side
 * (descriptors, timer) is watch-loop.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch-internal.h"

/* The part of an error answer kept to read its Status. */
#define ERROR_BODY_MAX (64 * 1024)
/* The transfer is cut this long after the timeoutSeconds the server was given. */
#define DEADLINE_GRACE_S 30
/* TCP keep-alive: first probe after this much silence, then one every interval. */
#define KEEPALIVE_IDLE_S 15L
#define KEEPALIVE_INTVL_S 5L
/* A clean end sooner than this, without an event, is not a normal end. */
#define MIN_HEALTHY_US 1000000

void k8s_watch_config_default(struct k8s_watch_config *c)
{
	memset(c, 0, sizeof(*c));
	c->timeout_us = 300 * (int64_t)1000000;
	c->max_watches = 1024;
	c->max_queued = 256;
}

/* ---- the event queue ---- */

static void enqueue(struct k8s_watches *ws, struct node *n)
{
	n->next = NULL;
	if (ws->tail != NULL)
		ws->tail->next = n;
	else
		ws->head = n;
	ws->tail = n;
	n->w->queued++;
}

/* Drops every queued event of w. */
static void drop_queued(struct k8s_watches *ws, struct watch *w)
{
	struct node **p = &ws->head;
	ws->tail = NULL;
	while (*p != NULL) {
		struct node *n = *p;
		if (n->w == w) {
			*p = n->next;
			k8s_watch_event_done(&n->ev);
			free(n);
		} else {
			ws->tail = n;
			p = &n->next;
		}
	}
	w->queued = 0;
}

int k8s_watches_next(struct k8s_watches *ws, struct k8s_watch_event *ev)
{
	struct node *n = ws->head;
	if (n == NULL)
		return 0;
	ws->head = n->next;
	if (ws->head == NULL)
		ws->tail = NULL;
	n->w->queued--;
	*ev = n->ev;
	free(n);
	return 1;
}

/*
 * Queues w's terminal event (its reserved node) and sets its delay: 0
 * after a normal end, else the doubled backoff of the client's settings.
 */
static void terminate(struct watch *w, enum k8s_watch_type type, const struct k8s_result *res,
                      bool healthy)
{
	const struct k8s_config *kc = k8s_client_config(w->ws->k);
	struct node *n = w->terminal;
	if (n == NULL)
		return; /* never reserved: the start that failed said so itself */
	w->terminal = NULL;
	w->ended = true;
	memset(&n->ev, 0, sizeof(n->ev));
	n->w = w;
	n->ev.type = type;
	n->ev.id = w->id;
	n->ev.result = *res;
	n->ev.result.outcome = K8S_UNKNOWN;
	memcpy(n->ev.resource_version, w->rv, sizeof(w->rv));
	if (healthy) {
		w->backoff_us = 0;
	} else {
		w->backoff_us = w->backoff_us == 0 ? kc->backoff_min_us : 2 * w->backoff_us;
		if (w->backoff_us > kc->backoff_max_us)
			w->backoff_us = kc->backoff_max_us;
	}
	n->ev.retry_in_us = w->backoff_us;
	enqueue(w->ws, n);
}

static void result(struct k8s_result *res, long code, const char *reason, const char *message)
{
	memset(res, 0, sizeof(*res));
	res->outcome = K8S_UNKNOWN;
	res->http_code = code;
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
	snprintf(res->message, sizeof(res->message), "%s", message);
}

/* ---- the stream ---- */

/* Queues one decoded event; false when the watch has ended (abort the transfer). */
static bool take_event(struct watch *w, struct k8s_watch_event *ev)
{
	struct k8s_result res;
	if (ev->type == K8S_WATCH_EXPIRED || ev->type == K8S_WATCH_ERROR) {
		res = ev->result;
		k8s_watch_event_done(ev);
		/* An expiry is the API's normal way to say "list again". */
		terminate(w, ev->type, &res, ev->type == K8S_WATCH_EXPIRED);
		return false;
	}
	struct node *n = NULL;
	if (w->queued < w->ws->cfg.max_queued)
		n = malloc(sizeof(*n));
	if (n == NULL) {
		/* Nothing is lost: a resume starts after the last queued event. */
		k8s_watch_event_done(ev);
		bool full = w->queued >= w->ws->cfg.max_queued;
		result(&res, 200, full ? "Overflow" : "NoMemory",
		       full ? "too many events waiting to be taken" : "out of memory");
		terminate(w, K8S_WATCH_ENDED, &res, false);
		return false;
	}
	ev->id = w->id;
	memcpy(w->rv, ev->resource_version, sizeof(w->rv));
	n->w = w;
	n->ev = *ev;
	enqueue(w->ws, n);
	w->delivered = true;
	return true;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watch *w = arg;
	size_t len = size * nmemb;
	if (w->ended)
		return 0;
	if (w->code == 0)
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->code);
	if (w->code != 200) {
		/* An error answer: keep the start of it for its Status. */
		size_t keep = ERROR_BODY_MAX - w->err_len < len ? ERROR_BODY_MAX - w->err_len : len;
		if (keep > 0) {
			char *nb = realloc(w->err_body, w->err_len + keep);
			if (nb == NULL)
				return len;
			memcpy(nb + w->err_len, data, keep);
			w->err_body = nb;
			w->err_len += keep;
		}
		return len;
	}
	size_t pos = 0;
	while (pos < len) {
		size_t used;
		struct k8s_watch_event ev;
		int r = k8s_watch_decode(&w->dec, data + pos, len - pos, &used, &ev);
		pos += used;
		if (r == 0)
			break;
		if (r < 0) {
			struct k8s_result res;
			result(&res, 200, "NoMemory", "out of memory reading the stream");
			terminate(w, K8S_WATCH_ENDED, &res, false);
			return 0;
		}
		if (!take_event(w, &ev))
			return 0;
	}
	if (w->dec.len == 0 && !w->dec.skipping)
		w->partial_since_us = 0;
	else if (w->partial_since_us == 0)
		w->partial_since_us = k8s_mono_us();
	return len;
}

/* ---- connections ---- */

static void wipe_slist(struct curl_slist *l)
{
	for (struct curl_slist *e = l; e != NULL; e = e->next)
		explicit_bzero(e->data, strlen(e->data));
	curl_slist_free_all(l);
}

/*
 * Closes w's connection, if any; queued events stay, and so does the
 * reserved terminal node, for the next connection (or a failure to open it).
 */
static void disconnect(struct watch *w)
{
	if (w->h != NULL) {
		curl_multi_remove_handle(w->ws->m.multi, w->h);
		curl_easy_cleanup(w->h);
		w->h = NULL;
	}
	wipe_slist(w->headers);
	w->headers = NULL;
	free(w->err_body);
	w->err_body = NULL;
	w->err_len = 0;
	k8s_watch_decoder_done(&w->dec);
}

static uint32_t next_rand(struct k8s_watches *ws)
{
	ws->rng ^= ws->rng << 13;
	ws->rng ^= ws->rng >> 17;
	ws->rng ^= ws->rng << 5;
	return ws->rng;
}

/* The watch URL of w, from its last version; NULL when out of memory. */
static char *watch_url(struct watch *w, CURL *h, long timeout_s)
{
	char *ens = curl_easy_escape(h, w->ns, 0);
	char *esel = NULL, *erv = curl_easy_escape(h, w->rv, 0), *url = NULL;
	char sel[300];
	snprintf(sel, sizeof(sel), "metadata.name=%s", w->name);
	esel = curl_easy_escape(h, sel, 0);
	const char *base = k8s_client_base(w->ws->k);
	size_t cap = strlen(base) + 256 + (ens ? strlen(ens) : 0) + (esel ? strlen(esel) : 0) +
	             (erv ? strlen(erv) : 0);
	if (ens != NULL && esel != NULL && erv != NULL && (url = malloc(cap)) != NULL)
		snprintf(url, cap,
		         "%s/api/v1/namespaces/%s/pods?watch=1&fieldSelector=%s&resourceVersion=%s"
		         "&allowWatchBookmarks=true&timeoutSeconds=%ld",
		         base, ens, esel, erv, timeout_s);
	curl_free(ens);
	curl_free(esel);
	curl_free(erv);
	return url;
}

/* Opens a connection for w from w->rv (force_token: after a 401). */
static int connect_watch(struct watch *w, bool force_token)
{
	struct k8s_watches *ws = w->ws;
	const struct k8s_config *kc = k8s_client_config(ws->k);
	disconnect(w);
	w->ended = w->delivered = false;
	w->code = 0;
	w->partial_since_us = 0;
	k8s_watch_decoder_init(&w->dec, kc->max_body);
	/* client-go's reflector: a timeout in [min, 2 * min), so reconnects spread. */
	int64_t t_us = ws->cfg.timeout_us + (int64_t)(next_rand(ws) % 1000000) *
	                                        (ws->cfg.timeout_us / 1000000);
	long timeout_s = (long)(t_us / 1000000) > 0 ? (long)(t_us / 1000000) : 1;
	char *auth = NULL;
	int r = -ENOMEM;
	if (w->terminal == NULL)
		w->terminal = malloc(sizeof(*w->terminal));
	w->h = curl_easy_init();
	if (w->terminal == NULL || w->h == NULL ||
	    k8s_client_auth_header(ws->k, force_token, &auth) < 0)
		goto fail;
	struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
	if (l != NULL && auth != NULL) {
		struct curl_slist *l2 = curl_slist_append(l, auth);
		if (l2 == NULL) {
			wipe_slist(l);
			l = NULL;
		}
	}
	if (auth != NULL) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if ((w->headers = l) == NULL)
		goto fail;
	char *url = watch_url(w, w->h, timeout_s);
	if (url == NULL)
		goto fail;
	r = -EIO;
	CURL *c = w->h;
	CURLcode rc = k8s_client_setup_easy(ws->k, c) == 0 ? CURLE_OK : CURLE_BAD_FUNCTION_ARGUMENT;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(c, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_HTTPHEADER, w->headers);
	SET(CURLOPT_HTTPGET, 1L);
	SET(CURLOPT_WRITEFUNCTION, on_data);
	SET(CURLOPT_WRITEDATA, w);
	SET(CURLOPT_PRIVATE, w);
	SET(CURLOPT_ERRORBUFFER, w->errbuf);
	SET(CURLOPT_TIMEOUT_MS, (long)(timeout_s + DEADLINE_GRACE_S) * 1000L);
	SET(CURLOPT_TCP_KEEPIDLE, KEEPALIVE_IDLE_S);
	SET(CURLOPT_TCP_KEEPINTVL, KEEPALIVE_INTVL_S);
	if (ws->cfg.idle_us > 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SET(CURLOPT_LOW_SPEED_TIME, (long)((ws->cfg.idle_us + 999999) / 1000000));
	}
#undef SET
	free(url);
	w->errbuf[0] = '\0';
	if (rc != CURLE_OK || curl_multi_add_handle(ws->m.multi, c) != CURLM_OK)
		goto fail;
	w->started_us = k8s_mono_us();
	return 0;
fail:
	disconnect(w);
	return r;
}

/*
 * What a finished transfer means, when its stream did not end it already.
 * True when the watch is to reconnect at once (a 401: the token re-read).
 */
static bool finished(struct watch *w, CURLcode rc)
{
	struct k8s_watches *ws = w->ws;
	const struct k8s_config *kc = k8s_client_config(ws->k);
	long code = w->code;
	if (code == 0)
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &code);
	int64_t took = k8s_mono_us() - w->started_us;
	if (kc->observe != NULL)
		kc->observe(kc->observe_ctx, "watch", code, took);
	if (w->ended)
		return false;
	struct k8s_result res;
	if (code == 401 && kc->token_file != NULL && !w->retried_401) {
		/* As a GET: re-read the token and try once more, at once. */
		w->retried_401 = true;
		return true;
	}
	if (code == 200)
		w->retried_401 = false;
	if (code != 0 && code != 200) {
		if (k8s_client_holds_token(ws->k, w->err_body, w->err_len)) {
			result(&res, code, "", "response withheld: it contains the token");
			snprintf(res.reason, sizeof(res.reason), "HTTP%ld", code);
		} else {
			char *ctype = NULL;
			curl_easy_getinfo(w->h, CURLINFO_CONTENT_TYPE, &ctype);
			k8s_status_result(code, w->err_body, w->err_len, NULL, ctype, &res);
		}
		terminate(w, code == 410 ? K8S_WATCH_EXPIRED : K8S_WATCH_FAILED, &res, code == 410);
		return false;
	}
	if (rc == CURLE_OK) {
		result(&res, code, "EndOfStream", "the server ended the watch");
		terminate(w, K8S_WATCH_ENDED, &res, w->delivered || took >= MIN_HEALTHY_US);
		return false;
	}
	char msg[sizeof(res.message)];
	snprintf(msg, sizeof(msg), "curl: %s%s%.200s", curl_easy_strerror(rc),
	         w->errbuf[0] != '\0' ? ": " : "", w->errbuf);
	result(&res, code, k8s_client_curl_reason(rc), msg);
	terminate(w, code == 200 ? K8S_WATCH_ENDED : K8S_WATCH_FAILED, &res, w->delivered);
	return false;
}

/* Collects the transfers libcurl has finished. */
void k8s_watches_collect(struct k8s_watches *ws)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(ws->m.multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct watch *w = NULL;
		CURL *h = m->easy_handle;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&w);
		if (w == NULL || w->h != h)
			continue;
		bool again = finished(w, rc);
		disconnect(w);
		if (again && connect_watch(w, true) < 0) {
			struct k8s_result res;
			result(&res, 401, "NoMemory", "cannot reconnect the watch after a 401");
			terminate(w, K8S_WATCH_FAILED, &res, false);
		}
	}
	/* Streams whose current event line has stalled end now (see K8S_WATCH_STALL_US). */
	int64_t now = k8s_mono_us();
	for (struct watch *w = ws->list; w != NULL; w = w->next) {
		if (w->h == NULL || w->ended || w->partial_since_us == 0 ||
		    now - w->partial_since_us < K8S_WATCH_STALL_US)
			continue;
		struct k8s_result res;
		result(&res, 200, "Stalled", "an event line stayed incomplete for 10 s");
		terminate(w, K8S_WATCH_ENDED, &res, false);
		disconnect(w);
	}
}

int64_t k8s_watches_stall_deadline(const struct k8s_watches *ws)
{
	int64_t first = -1;
	for (const struct watch *w = ws->list; w != NULL; w = w->next) {
		if (w->h == NULL || w->ended || w->partial_since_us == 0)
			continue;
		int64_t at = w->partial_since_us + K8S_WATCH_STALL_US;
		if (first < 0 || at < first)
			first = at;
	}
	return first;
}

/* ---- the set ---- */

struct k8s_watches *k8s_watches_new(struct k8s_client *k, const struct k8s_watch_config *cfg,
                                    char *err, size_t cap)
{
	struct k8s_watch_config def;
	if (cfg == NULL) {
		k8s_watch_config_default(&def);
		cfg = &def;
	}
	if (k == NULL || cfg->timeout_us < 1000000 || cfg->idle_us < 0 || cfg->max_watches == 0 ||
	    cfg->max_queued == 0) {
		k8s_fail(err, cap, "watches: a client, a timeout of 1 s or more and positive caps");
		return NULL;
	}
	struct k8s_watches *ws = calloc(1, sizeof(*ws));
	if (ws == NULL || k8s_multi_init(&ws->m) < 0) {
		free(ws);
		k8s_fail(err, cap, "out of memory");
		return NULL;
	}
	ws->k = k;
	ws->cfg = *cfg;
	ws->m.on_fd = cfg->on_fd;
	ws->m.on_fd_ctx = cfg->on_fd_ctx;
	ws->rng = (uint32_t)k8s_mono_us() ^ (uint32_t)(uintptr_t)ws;
	if (ws->rng == 0)
		ws->rng = 1;
	return ws;
}

static void free_watch(struct k8s_watches *ws, struct watch *w)
{
	disconnect(w);
	drop_queued(ws, w);
	free(w->terminal);
	free(w);
}

void k8s_watches_free(struct k8s_watches *ws)
{
	if (ws == NULL)
		return;
	while (ws->list != NULL) {
		struct watch *w = ws->list;
		ws->list = w->next;
		free_watch(ws, w);
	}
	k8s_multi_done(&ws->m);
	free(ws);
}

static struct watch *find(const struct k8s_watches *ws, uint64_t id)
{
	struct watch *w = ws->list;
	while (w != NULL && w->id != id)
		w = w->next;
	return w;
}

int k8s_watch_start(struct k8s_watches *ws, uint64_t id, const char *ns, const char *name,
                    const char *resource_version)
{
	if (!k8s_is_dns1123_label(ns) || !k8s_is_dns1123_subdomain(name) ||
	    resource_version == NULL || !k8s_is_resource_version(resource_version))
		return -EINVAL;
	struct watch *w = find(ws, id);
	if (w == NULL) {
		if (ws->n >= ws->cfg.max_watches)
			return -ENOSPC;
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return -ENOMEM;
		w->ws = ws;
		w->id = id;
		w->next = ws->list;
		ws->list = w;
		ws->n++;
	} else {
		disconnect(w);
		drop_queued(ws, w);
	}
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->name, sizeof(w->name), "%s", name);
	snprintf(w->rv, sizeof(w->rv), "%s", resource_version);
	w->retried_401 = false;
	return connect_watch(w, false);
}

int k8s_watch_resume(struct k8s_watches *ws, uint64_t id)
{
	struct watch *w = find(ws, id);
	if (w == NULL)
		return -ENOENT;
	if (w->h != NULL)
		return -EBUSY;
	if (!k8s_is_resource_version(w->rv))
		return -EINVAL;
	return connect_watch(w, false);
}

int k8s_watch_stop(struct k8s_watches *ws, uint64_t id)
{
	for (struct watch **p = &ws->list; *p != NULL; p = &(*p)->next) {
		if ((*p)->id == id) {
			struct watch *w = *p;
			*p = w->next;
			ws->n--;
			free_watch(ws, w);
			return 0;
		}
	}
	return -ENOENT;
}

const char *k8s_watch_resource_version(const struct k8s_watches *ws, uint64_t id)
{
	const struct watch *w = find(ws, id);
	return w != NULL ? w->rv : NULL;
}

size_t k8s_watches_count(const struct k8s_watches *ws)
{
	return ws->n;
}

size_t k8s_watches_connected(const struct k8s_watches *ws)
{
	size_t n = 0;
	for (const struct watch *w = ws->list; w != NULL; w = w->next)
		n += w->h != NULL;
	return n;
}
