/*
 * transport.c - the requests to the Kubernetes API: each on its own easy
 * handle in the client's multi handle, so that one request waiting on a
 * slow API holds up only its own caller; the client's lifetime; the
 * backoff after an outage; and the client's side of the caller's event
 * loop (k8s.h). The handles are kept for reuse and the connections are
 * the multi handle's, reused across requests.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "k8s-internal.h"

#ifndef LOCK_ARBITER_VERSION
#define LOCK_ARBITER_VERSION "0.1.0"
#endif

/* ---- libcurl callbacks ---- */

/* Collects the body, and aborts the transfer once it passes max_body. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct k8s_body *b = arg;
	size_t n = size * nmemb;
	if (n > b->max - b->len) {
		b->too_large = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 16384;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		char *nb = realloc(b->buf, cap);
		if (nb == NULL) {
			b->no_memory = true;
			return 0;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

/* Aborts a transfer when the daemon is told to stop. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	const volatile sig_atomic_t *interrupt = arg;
	return interrupt != NULL && *interrupt ? 1 : 0;
}

/* ---- handles ---- */

static long ms_ceil(int64_t us)
{
	int64_t ms = (us + 999) / 1000;
	return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

static char *dup_or_null(const char *s, bool *ok)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*ok = false;
	return d;
}

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(c, opt, val);                                        \
	} while (0)

/*
 * The options every handle talking to the API has, the client's own and
 * the watches' (k8s-internal.h).
 */
int k8s_client_setup_easy(const struct k8s_client *k, CURL *c)
{
	bool https = k->https;
	CURLcode rc = CURLE_OK;
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, ms_ceil(k->cfg.connect_timeout_us));
	/* TLS is always verified: there is no option to turn this off. */
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (k->cfg.ca_file != NULL) {
		SET(CURLOPT_CAINFO, k->cfg.ca_file);
	}
	/* Only the scheme of the configured URL, so nothing can downgrade it. */
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http");
#else
	SET(CURLOPT_PROTOCOLS, https ? (long)CURLPROTO_HTTPS : (long)CURLPROTO_HTTP);
	SET(CURLOPT_REDIR_PROTOCOLS, https ? (long)CURLPROTO_HTTPS : (long)CURLPROTO_HTTP);
#endif
	/* A redirect would carry the token elsewhere; the API never sends one. */
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_MAXREDIRS, 0L);
	SET(CURLOPT_USERAGENT, "lock-arbiter/" LOCK_ARBITER_VERSION);
	/* Keep-alive probes find a half-open connection to a vanished API server. */
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	return rc == CURLE_OK ? 0 : -EINVAL;
}

/* A handle for x: an idle one or a new one, pointed at x's buffers. */
static CURL *acquire(struct k8s_client *k, struct k8s_xfer *x)
{
	CURL *c = k->n_idle > 0 ? k->idle[--k->n_idle] : NULL;
	CURLcode rc = CURLE_OK;

	if (c == NULL) {
		c = curl_easy_init();
		if (c == NULL)
			return NULL;
		rc = k8s_client_setup_easy(k, c) == 0 ? CURLE_OK : CURLE_BAD_FUNCTION_ARGUMENT;
		SET(CURLOPT_TIMEOUT_MS, ms_ceil(k->cfg.request_timeout_us));
		SET(CURLOPT_WRITEFUNCTION, on_body);
		SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->cfg.max_body);
		SET(CURLOPT_NOPROGRESS, 0L);
		SET(CURLOPT_XFERINFOFUNCTION, on_progress);
		SET(CURLOPT_XFERINFODATA, (void *)k->cfg.interrupt);
	}
	SET(CURLOPT_WRITEDATA, &x->body);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_PRIVATE, (void *)x);
	if (rc != CURLE_OK) {
		curl_easy_cleanup(c);
		return NULL;
	}
	return c;
}
#undef SET

void k8s_xfer_done(struct k8s_client *k, struct k8s_xfer *x)
{
	if (x->h != NULL) {
		if (!x->done)
			curl_multi_remove_handle(k->m.multi, x->h);
		/* Nothing of x may outlive it in the handle. */
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
		curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, (char *)NULL);
		curl_easy_setopt(x->h, CURLOPT_WRITEDATA, (void *)NULL);
		curl_easy_setopt(x->h, CURLOPT_PRIVATE, (void *)NULL);
		if (k->n_idle < sizeof(k->idle) / sizeof(k->idle[0]))
			k->idle[k->n_idle++] = x->h;
		else
			curl_easy_cleanup(x->h);
	}
	k8s_wipe_slist(x->headers);
	free(x->body.buf);
	memset(x, 0, sizeof(*x));
}

/* ---- the client ---- */

struct k8s_client *k8s_client_new(const struct k8s_config *cfg, char *err, size_t cap)
{
	if (cfg == NULL || cfg->api_url == NULL) {
		k8s_fail(err, cap, "no Kubernetes API URL");
		return NULL;
	}
	if (cfg->connect_timeout_us <= 0 || cfg->request_timeout_us <= 0 || cfg->max_body == 0 ||
	    cfg->max_body > (size_t)INT32_MAX || cfg->token_reread_us < 0) {
		k8s_fail(err, cap, "Kubernetes client: timeouts and the body cap must be positive");
		return NULL;
	}
	bool https, loopback;
	if (k8s_url_check(cfg->api_url, &https, &loopback, err, cap) < 0)
		return NULL;
	if (!https && !loopback && cfg->token_file != NULL) {
		k8s_fail(err, cap, "refusing to send a bearer token over plain http to a remote host");
		return NULL;
	}
	if (cfg->ca_file != NULL && access(cfg->ca_file, R_OK) != 0) {
		k8s_fail(err, cap, "cannot read the CA file %.200s: %s", cfg->ca_file, strerror(errno));
		return NULL;
	}

	struct k8s_client *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		k8s_fail(err, cap, "out of memory");
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(k);
		k8s_fail(err, cap, "libcurl initialisation failed");
		return NULL;
	}
	k->cfg = *cfg;
	bool ok = true;
	k->cfg.api_url = dup_or_null(cfg->api_url, &ok);
	k->cfg.token_file = dup_or_null(cfg->token_file, &ok);
	k->cfg.ca_file = dup_or_null(cfg->ca_file, &ok);
	k->base = dup_or_null(cfg->api_url, &ok);
	if (!ok) {
		k8s_fail(err, cap, "out of memory");
		goto fail;
	}
	size_t n = strlen(k->base);
	while (n > 0 && k->base[n - 1] == '/')
		k->base[--n] = '\0';
	if (k->cfg.token_file != NULL) {
		int r = k8s_token_refresh(k, true);
		if (r < 0) {
			k8s_fail(err, cap, "cannot read the token file %.200s: %s", k->cfg.token_file,
			         strerror(-r));
			goto fail;
		}
	}
	k->https = https;
	/*
	 * One reused connection (DESIGN.md section 7): requests that run at
	 * once each have one, and all but one are closed when they end.
	 */
	if (k8s_multi_init(&k->m) < 0 ||
	    curl_multi_setopt(k->m.multi, CURLMOPT_MAXCONNECTS, 1L) != CURLM_OK) {
		k8s_fail(err, cap, "libcurl multi handle setup failed");
		goto fail;
	}
	return k;
fail:
	k8s_client_free(k);
	return NULL;
}

void k8s_client_free(struct k8s_client *k)
{
	if (k == NULL)
		return;
	k8s_multi_done(&k->m);
	while (k->n_idle > 0)
		curl_easy_cleanup(k->idle[--k->n_idle]);
	k8s_wipe_free(k->token, k->token_len);
	free(k->base);
	k8s_config_done(&k->cfg);
	free(k);
	curl_global_cleanup();
}

const struct k8s_config *k8s_client_config(const struct k8s_client *k)
{
	return &k->cfg;
}

const char *k8s_client_base(const struct k8s_client *k)
{
	return k->base;
}

/* ---- the caller's event loop ---- */

size_t k8s_client_fds(const struct k8s_client *k, int *fds, int *events, size_t cap)
{
	return k8s_multi_fds(&k->m, fds, events, cap);
}

int64_t k8s_client_timeout_us(const struct k8s_client *k)
{
	if (k->m.deadline_us < 0)
		return -1;
	int64_t left = k->m.deadline_us - k8s_mono_us();
	return left > 0 ? left : 0;
}

/* Marks the transfers libcurl has finished; their callers see x->done. */
static void collect(struct k8s_client *k)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(k->m.multi, &left)) != NULL) {
		struct k8s_xfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(k->m.multi, msg->easy_handle);
		if (x != NULL) {
			x->rc = rc;
			x->done = true;
		}
	}
}

int k8s_client_action(struct k8s_client *k, int fd, int events)
{
	int r = k8s_multi_action(&k->m, fd, events);
	collect(k);
	return r;
}

static int action(void *ctx, int fd, int events)
{
	return k8s_client_action(ctx, fd, events);
}

/* For a caller without a loop: waits at most timeout_us for the client's transfers. */
static int client_poll(struct k8s_client *k, int64_t timeout_us)
{
	int64_t t = k8s_client_timeout_us(k);
	if (t < 0 || (timeout_us >= 0 && timeout_us < t))
		t = timeout_us;
	int r = k8s_multi_poll(&k->m, t, action, k);
	if (k8s_client_timeout_us(k) == 0 && k8s_client_action(k, -1, 0) < 0)
		r = -EIO;
	return r;
}

/*
 * Until x is done: through the caller's loop when it has one, else by
 * polling. A stop request ends the transfer here at once (libcurl's own
 * progress callback would only see it at the transfer's next activity).
 */
static void await(struct k8s_client *k, struct k8s_xfer *x)
{
	while (!x->done) {
		if (k->cfg.interrupt != NULL && *k->cfg.interrupt) {
			curl_multi_remove_handle(k->m.multi, x->h);
			x->rc = CURLE_ABORTED_BY_CALLBACK;
			x->done = true;
			return;
		}
		if (k->cfg.suspend != NULL && k->cfg.suspend(k->cfg.suspend_ctx) == 0)
			continue;
		client_poll(k, 100 * 1000);
	}
}

/* ---- requests ---- */

static const char *curl_reason(CURLcode rc, const struct k8s_body *b)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "Timeout";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return "Connect";
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return "TLS";
	case CURLE_FILESIZE_EXCEEDED:
		return "TooLarge";
	case CURLE_WRITE_ERROR:
		if (b->too_large)
			return "TooLarge";
		return b->no_memory ? "NoMemory" : "Transport";
	case CURLE_OUT_OF_MEMORY:
		return "NoMemory";
	case CURLE_ABORTED_BY_CALLBACK:
		return "Interrupted";
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return "Reset";
	default:
		return "Transport";
	}
}

const char *k8s_client_curl_reason(CURLcode rc)
{
	static const struct k8s_body none;
	return curl_reason(rc, &none);
}

/*
 * One exchange. 0 when an HTTP response arrived whole (its code in
 * x->code, its body in x->body); otherwise a negative errno with res
 * filled. The observe callback sees every exchange that was attempted.
 */
static int exchange(struct k8s_client *k, const char *verb, const char *url, const char *post,
                    struct k8s_xfer *x, struct k8s_result *res)
{
	if (k->cfg.interrupt != NULL && *k->cfg.interrupt) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Interrupted", "interrupted before the request");
		return -EINTR;
	}
	if (x->h == NULL && (x->h = acquire(k, x)) == NULL) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "NoMemory", "libcurl handle setup failed");
		return -ENOMEM;
	}
	x->body.len = 0;
	x->body.max = k->cfg.max_body;
	x->body.too_large = false;
	x->body.no_memory = false;
	x->errbuf[0] = '\0';
	x->done = false;
	x->code = 0;
	/* The list is rebuilt for each exchange: the retry after a 401 has a new token. */
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	k8s_wipe_slist(x->headers);
	x->headers = NULL;
	if (k8s_token_headers(k, post != NULL, &x->headers) < 0) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "NoMemory", "out of memory");
		return -ENOMEM;
	}
	CURLcode rc = curl_easy_setopt(x->h, CURLOPT_URL, url);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
	if (rc == CURLE_OK && post != NULL) {
		rc = curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, post);
	} else if (rc == CURLE_OK) {
		rc = curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
	}
	if (rc != CURLE_OK) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Transport", "curl: %s", curl_easy_strerror(rc));
		return -EIO;
	}
	int64_t t0 = k8s_mono_us();
	if (curl_multi_add_handle(k->m.multi, x->h) != CURLM_OK) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Transport", "curl: the request was not queued");
		return -EIO;
	}
	await(k, x);
	rc = x->rc;
	int64_t dt = k8s_mono_us() - t0;
	long http = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &http);
	/* POSTFIELDS points at the caller's buffer; do not keep it past the call. */
	if (post != NULL)
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, (char *)NULL);
	/*
	 * A transfer that failed has no code, except a body cut at the cap,
	 * whose status line did arrive; the callback and the result agree.
	 */
	const char *reason = rc != CURLE_OK ? curl_reason(rc, &x->body) : NULL;
	long shown = rc == CURLE_OK || strcmp(reason, "TooLarge") == 0 ? http : 0;
	if (k->cfg.observe != NULL)
		k->cfg.observe(k->cfg.observe_ctx, verb, shown, dt);
	if (rc != CURLE_OK) {
		if (strcmp(reason, "TooLarge") == 0)
			k8s_result_set(res, K8S_UNKNOWN, shown, reason,
			               "response body larger than %zu bytes", x->body.max);
		else
			k8s_result_set(res, K8S_UNKNOWN, shown, reason, "curl: %s%s%s",
			               curl_easy_strerror(rc), x->errbuf[0] != '\0' ? ": " : "",
			               x->errbuf);
		return -EIO;
	}
	x->code = http;
	return 0;
}

/*
 * An outage answer: no response at all (timeout, refused, TLS, reset), a
 * 5xx, a 429, or a 401 that a freshly read token did not cure (DESIGN.md
 * section 9: "401: re-read token, retry once; then as above"). A bad body
 * or another 4xx is an answer, not an outage: a 403 in one namespace must
 * not stop the lookups in the others.
 */
static bool is_outage(int r, long code, const struct k8s_result *res)
{
	if (r < 0)
		return res->http_code == 0 && strcmp(res->reason, "Interrupted") != 0 &&
		       strcmp(res->reason, "NoMemory") != 0;
	return code >= 500 || code == 429 || code == 401;
}

int k8s_request(struct k8s_client *k, const char *verb, const char *url, const char *post,
                struct k8s_xfer *x, struct k8s_result *res)
{
	int64_t now = k8s_mono_us();

	/*
	 * In backoff after an outage nothing is sent, so a dead API costs
	 * one timeout per backoff period, not one per lookup. The answer is
	 * still the outage's (its code and reason), so a caller's view does
	 * not flicker between "503" and "not asked".
	 */
	if (now < k->backoff_until) {
		k8s_result_set(res, K8S_UNKNOWN, k->outage_code, k->outage_reason,
		               "not sent: backing off after that answer; next try in %lld ms",
		               (long long)((k->backoff_until - now) / 1000));
		return -EAGAIN;
	}
	k8s_token_refresh(k, false);
	int r = exchange(k, verb, url, post, x, res);
	if (r == 0 && x->code == 401 && k->cfg.token_file != NULL) {
		k8s_token_refresh(k, true);
		r = exchange(k, verb, url, post, x, res);
	}
	if (is_outage(r, r == 0 ? x->code : 0, res)) {
		k->backoff_us = k->backoff_us == 0 ? k->cfg.backoff_min_us : 2 * k->backoff_us;
		if (k->backoff_us > k->cfg.backoff_max_us)
			k->backoff_us = k->cfg.backoff_max_us;
		k->backoff_until = k8s_mono_us() + k->backoff_us;
		k->outage_code = r == 0 ? x->code : res->http_code;
		/* For an HTTP answer the reason comes later, from its Status body. */
		k8s_copy_text(k->outage_reason, sizeof(k->outage_reason),
		              r < 0 ? res->reason : "", r < 0 ? strlen(res->reason) : 0);
	} else if (r == 0) {
		k->backoff_us = 0;
		k->backoff_until = 0;
	}
	return r;
}
