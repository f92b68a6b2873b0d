/*
 * client.c - the connection to the Kubernetes API: configuration, one
 * reused libcurl easy handle, the bearer token, and the mapping of every
 * response to POD, GONE or UNKNOWN (DESIGN.md sections 6, 7 and 9).
 *
 * The rule that matters: only a 404 whose body is a Status of reason
 * NotFound about the pod we asked for is GONE. Anything else that is not a
 * well-formed Pod is UNKNOWN, because UNKNOWN never releases a lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "k8s-internal.h"

#ifndef LOCK_ARBITER_VERSION
#define LOCK_ARBITER_VERSION "0.1.0"
#endif

/* A service-account token is a JWT of a few KiB; more is not a token. */
#define TOKEN_MAX (64 * 1024)

struct body {
	char *buf;
	size_t len, cap, max;
	bool too_large;
	bool no_memory;
};

struct k8s_client {
	struct k8s_config cfg; /* strings owned */
	char *base;            /* api_url without a trailing '/' */
	bool https;
	CURL *curl;
	struct curl_slist *get_headers;
	struct curl_slist *post_headers;
	char *token; /* NULL: none; wiped before it is freed */
	size_t token_len;
	int64_t token_checked; /* CLOCK_MONOTONIC µs of the last read attempt */
	int64_t backoff_us;    /* current delay after outage answers; 0: none */
	int64_t backoff_until; /* CLOCK_MONOTONIC µs before which nothing is sent */
	long outage_code;      /* the outage answer that started the backoff */
	char outage_reason[64];
	struct body body;
	char errbuf[CURL_ERROR_SIZE];
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void fill(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fill(char *err, size_t cap, const char *fmt, ...)
{
	if (err == NULL || cap == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/* Concatenates the NULL-terminated list of strings into a new string. */
static char *join(const char *first, ...)
{
	va_list ap;
	size_t n = 0;
	va_start(ap, first);
	for (const char *s = first; s != NULL; s = va_arg(ap, const char *))
		n += strlen(s);
	va_end(ap);
	char *out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	char *p = out;
	va_start(ap, first);
	for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
		size_t m = strlen(s);
		memcpy(p, s, m);
		p += m;
	}
	va_end(ap);
	*p = '\0';
	return out;
}

static void wipe_free(char *s, size_t n)
{
	if (s == NULL)
		return;
	explicit_bzero(s, n);
	free(s);
}

/* Frees a header list after wiping it, since one entry holds the token. */
static void wipe_slist(struct curl_slist *l)
{
	for (struct curl_slist *e = l; e != NULL; e = e->next)
		if (e->data != NULL)
			explicit_bzero(e->data, strlen(e->data));
	curl_slist_free_all(l);
}

/* ---- configuration ---- */

void k8s_config_default(struct k8s_config *c)
{
	memset(c, 0, sizeof(*c));
	c->connect_timeout_us = 2 * 1000000;
	c->request_timeout_us = 5 * 1000000;
	c->token_reread_us = 60 * (int64_t)1000000;
	c->max_body = K8S_MAX_BODY;
	c->backoff_min_us = 500 * 1000;
	c->backoff_max_us = 10 * 1000000;
}

void k8s_config_done(struct k8s_config *c)
{
	if (c == NULL)
		return;
	free(c->api_url);
	free(c->token_file);
	free(c->ca_file);
	c->api_url = c->token_file = c->ca_file = NULL;
}

int k8s_config_in_cluster(struct k8s_config *c, const char *sa_dir, char *err, size_t cap)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || host[0] == '\0') {
		fill(err, cap,
		     "KUBERNETES_SERVICE_HOST is not set: not running in a cluster "
		     "(give --kube-api instead)");
		return -ENOENT;
	}
	if (port == NULL || port[0] == '\0')
		port = "443";
	char *end;
	errno = 0;
	long pn = strtol(port, &end, 10);
	if (errno != 0 || *end != '\0' || pn < 1 || pn > 65535 || port[0] < '0' || port[0] > '9') {
		fill(err, cap, "KUBERNETES_SERVICE_PORT \"%.16s\" is not a port number", port);
		return -EINVAL;
	}

	/* An IPv6 address goes in brackets, or its colons would read as a port. */
	bool v6 = strchr(host, ':') != NULL;
	if (v6) {
		unsigned char a[16];
		if (inet_pton(AF_INET6, host, a) != 1) {
			fill(err, cap, "KUBERNETES_SERVICE_HOST \"%.64s\" is not an IPv6 address",
			     host);
			return -EINVAL;
		}
	} else {
		for (const char *s = host; *s != '\0'; s++) {
			char ch = *s;
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-')) {
				fill(err, cap, "KUBERNETES_SERVICE_HOST \"%.64s\" is not a host",
				     host);
				return -EINVAL;
			}
		}
	}

	const char *dir = sa_dir != NULL ? sa_dir : K8S_SA_DIR;
	char *url = join("https://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port, (char *)NULL);
	char *token = join(dir, "/token", (char *)NULL);
	char *ca = join(dir, "/ca.crt", (char *)NULL);
	if (url == NULL || token == NULL || ca == NULL) {
		free(url);
		free(token);
		free(ca);
		fill(err, cap, "out of memory");
		return -ENOMEM;
	}
	k8s_config_done(c);
	c->api_url = url;
	c->token_file = token;
	c->ca_file = ca;
	return 0;
}

/* ---- token ---- */

/*
 * Reads the token file: at most TOKEN_MAX bytes, surrounding whitespace
 * trimmed, and nothing but visible ASCII inside (a CR or LF would let the
 * file inject headers). 0, or a negative errno; *out is a new string.
 */
static int read_token(const char *path, char **out, size_t *out_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	char *buf = malloc(TOKEN_MAX + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	int r = 0;
	while (n <= TOKEN_MAX) {
		ssize_t got = read(fd, buf + n, TOKEN_MAX + 1 - n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	if (r == 0 && n > TOKEN_MAX)
		r = -EFBIG;
	size_t a = 0, b = n;
	while (r == 0 && a < b &&
	       (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
		a++;
	while (
	    r == 0 && b > a &&
	    (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\n' || buf[b - 1] == '\r'))
		b--;
	if (r == 0 && a == b)
		r = -ENODATA;
	for (size_t i = a; r == 0 && i < b; i++)
		if ((unsigned char)buf[i] <= ' ' || (unsigned char)buf[i] >= 0x7f)
			r = -EINVAL;
	char *tok = NULL;
	if (r == 0) {
		tok = malloc(b - a + 1);
		if (tok == NULL) {
			r = -ENOMEM;
		} else {
			memcpy(tok, buf + a, b - a);
			tok[b - a] = '\0';
			*out = tok;
			*out_len = b - a;
		}
	}
	explicit_bzero(buf, TOKEN_MAX + 1);
	free(buf);
	return r;
}

static struct curl_slist *append(struct curl_slist *l, const char *h, bool *ok)
{
	if (!*ok)
		return l;
	struct curl_slist *n = curl_slist_append(l, h);
	if (n == NULL) {
		*ok = false;
		return l;
	}
	return n;
}

/*
 * Builds both header lists for the current token. On failure the old
 * lists (and so the old token) stay in use.
 */
static int rebuild_headers(struct k8s_client *k)
{
	char *auth = NULL;
	if (k->token != NULL) {
		auth = join("Authorization: Bearer ", k->token, (char *)NULL);
		if (auth == NULL)
			return -ENOMEM;
	}
	bool ok = true;
	struct curl_slist *get = NULL, *post = NULL;
	get = append(get, "Accept: application/json", &ok);
	post = append(post, "Accept: application/json", &ok);
	post = append(post, "Content-Type: application/json", &ok);
	/* Events are small; waiting for 100-continue would only add a round trip. */
	post = append(post, "Expect:", &ok);
	if (auth != NULL) {
		get = append(get, auth, &ok);
		post = append(post, auth, &ok);
		wipe_free(auth, strlen(auth));
	}
	if (!ok) {
		wipe_slist(get);
		wipe_slist(post);
		return -ENOMEM;
	}
	wipe_slist(k->get_headers);
	wipe_slist(k->post_headers);
	k->get_headers = get;
	k->post_headers = post;
	return 0;
}

/*
 * Re-reads the token when token_reread_us has passed since the last
 * attempt, or at once when forced (after a 401). A failed read keeps the
 * old token: kubelet swaps the file atomically, so a failure is transient
 * or the old token is all there is.
 */
static int token_refresh(struct k8s_client *k, bool force)
{
	if (k->cfg.token_file == NULL)
		return 0;
	int64_t now = mono_us();
	if (!force && k->token != NULL && now - k->token_checked < k->cfg.token_reread_us)
		return 0;
	k->token_checked = now;
	char *tok = NULL;
	size_t n = 0;
	int r = read_token(k->cfg.token_file, &tok, &n);
	if (r < 0)
		return r;
	if (k->token != NULL && n == k->token_len && memcmp(tok, k->token, n) == 0) {
		wipe_free(tok, n);
		return 0;
	}
	char *old = k->token;
	size_t old_len = k->token_len;
	k->token = tok;
	k->token_len = n;
	if ((r = rebuild_headers(k)) < 0) {
		k->token = old;
		k->token_len = old_len;
		wipe_free(tok, n);
		return r;
	}
	wipe_free(old, old_len);
	return 0;
}

int k8s_client_auth_header(struct k8s_client *k, bool force, char **out)
{
	token_refresh(k, force);
	*out = NULL;
	if (k->token == NULL)
		return 0;
	*out = join("Authorization: Bearer ", k->token, (char *)NULL);
	return *out != NULL ? 0 : -ENOMEM;
}

bool k8s_client_holds_token(const struct k8s_client *k, const char *text, size_t len)
{
	return k->token != NULL && len > 0 && memmem(text, len, k->token, k->token_len) != NULL;
}

const struct k8s_config *k8s_client_config(const struct k8s_client *k)
{
	return &k->cfg;
}

const char *k8s_client_base(const struct k8s_client *k)
{
	return k->base;
}

/* ---- libcurl callbacks ---- */

/* Collects the body, and aborts the transfer once it passes max_body. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
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

/* ---- client ---- */

static long ms_ceil(int64_t us)
{
	int64_t ms = (us + 999) / 1000;
	return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

static bool is_loopback_host(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/*
 * Checks api_url with libcurl's own parser, so that what we check is what
 * it will connect to: http or https, no query, fragment or credentials.
 */
static int check_url(const char *url, bool *https, bool *loopback, char *err, size_t cap)
{
	CURLU *u = curl_url();
	if (u == NULL) {
		fill(err, cap, "out of memory");
		return -ENOMEM;
	}
	int r = 0;
	char *scheme = NULL, *host = NULL, *part = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		fill(err, cap, "Kubernetes API URL \"%.128s\" is not a URL", url);
		r = -EINVAL;
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		fill(err, cap, "Kubernetes API URL must be http:// or https://, not %.16s://",
		     scheme);
		r = -EINVAL;
		goto out;
	}
	static const CURLUPart forbidden[] = {CURLUPART_QUERY, CURLUPART_FRAGMENT, CURLUPART_USER};
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		if (curl_url_get(u, forbidden[i], &part, 0) == CURLUE_OK) {
			fill(err, cap, "Kubernetes API URL must have no query, fragment or user");
			r = -EINVAL;
			goto out;
		}
	}
	*https = strcmp(scheme, "https") == 0;
	*loopback = is_loopback_host(host);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(part);
	curl_url_cleanup(u);
	return r;
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

/* Sets the options that stay for the life of the client's handle. */
static int setup_handle(struct k8s_client *k)
{
	CURL *c = k->curl;
	CURLcode rc = k8s_client_setup_easy(k, c) == 0 ? CURLE_OK : CURLE_BAD_FUNCTION_ARGUMENT;
	SET(CURLOPT_TIMEOUT_MS, ms_ceil(k->cfg.request_timeout_us));
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, &k->body);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->cfg.max_body);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, (void *)k->cfg.interrupt);
	SET(CURLOPT_ERRORBUFFER, k->errbuf);
#undef SET
	return rc == CURLE_OK ? 0 : -EINVAL;
}

struct k8s_client *k8s_client_new(const struct k8s_config *cfg, char *err, size_t cap)
{
	if (cfg == NULL || cfg->api_url == NULL) {
		fill(err, cap, "no Kubernetes API URL");
		return NULL;
	}
	if (cfg->connect_timeout_us <= 0 || cfg->request_timeout_us <= 0 || cfg->max_body == 0 ||
	    cfg->max_body > (size_t)INT32_MAX || cfg->token_reread_us < 0) {
		fill(err, cap, "Kubernetes client: timeouts and the body cap must be positive");
		return NULL;
	}
	bool https, loopback;
	if (check_url(cfg->api_url, &https, &loopback, err, cap) < 0)
		return NULL;
	if (!https && !loopback && cfg->token_file != NULL) {
		fill(err, cap, "refusing to send a bearer token over plain http to a remote host");
		return NULL;
	}
	if (cfg->ca_file != NULL && access(cfg->ca_file, R_OK) != 0) {
		fill(err, cap, "cannot read the CA file %.200s: %s", cfg->ca_file, strerror(errno));
		return NULL;
	}

	struct k8s_client *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		fill(err, cap, "out of memory");
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(k);
		fill(err, cap, "libcurl initialisation failed");
		return NULL;
	}
	k->cfg = *cfg;
	bool ok = true;
	k->cfg.api_url = dup_or_null(cfg->api_url, &ok);
	k->cfg.token_file = dup_or_null(cfg->token_file, &ok);
	k->cfg.ca_file = dup_or_null(cfg->ca_file, &ok);
	k->base = dup_or_null(cfg->api_url, &ok);
	if (!ok) {
		fill(err, cap, "out of memory");
		goto fail;
	}
	size_t n = strlen(k->base);
	while (n > 0 && k->base[n - 1] == '/')
		k->base[--n] = '\0';
	k->body.max = cfg->max_body;

	if (k->cfg.token_file != NULL) {
		int r = token_refresh(k, true);
		if (r < 0) {
			fill(err, cap, "cannot read the token file %.200s: %s", k->cfg.token_file,
			     strerror(-r));
			goto fail;
		}
	} else if (rebuild_headers(k) < 0) {
		fill(err, cap, "out of memory");
		goto fail;
	}
	k->curl = curl_easy_init();
	k->https = https;
	if (k->curl == NULL || setup_handle(k) < 0) {
		fill(err, cap, "libcurl handle setup failed");
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
	if (k->curl != NULL)
		curl_easy_cleanup(k->curl);
	wipe_slist(k->get_headers);
	wipe_slist(k->post_headers);
	wipe_free(k->token, k->token_len);
	free(k->body.buf);
	free(k->base);
	k8s_config_done(&k->cfg);
	free(k);
	curl_global_cleanup();
}

/* ---- results ---- */

/*
 * Copies server text into a result field: control characters become '?'
 * (the text ends up in log lines), and a UTF-8 sequence cut by the cap is
 * dropped whole.
 */
static void copy_text(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap) {
		n = cap - 1;
		size_t back = n;
		while (back > 0 && ((unsigned char)src[back] & 0xc0) == 0x80)
			back--;
		n = back;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

static void set_result(struct k8s_result *res, enum k8s_outcome o, long code, const char *reason,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set_result(struct k8s_result *res, enum k8s_outcome o, long code, const char *reason,
                       const char *fmt, ...)
{
	res->outcome = o;
	res->http_code = code;
	copy_text(res->reason, sizeof(res->reason), reason, strlen(reason));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

static const char *curl_reason(CURLcode rc, const struct body *b)
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
	static const struct body none;
	return curl_reason(rc, &none);
}

/*
 * One exchange. 0 when an HTTP response arrived whole (its code in *code,
 * its body in k->body); otherwise a negative errno with res filled. The
 * observe callback sees every exchange that was attempted.
 */
static int exchange(struct k8s_client *k, const char *verb, const char *url, const char *post,
                    long *code, struct k8s_result *res)
{
	if (k->cfg.interrupt != NULL && *k->cfg.interrupt) {
		set_result(res, K8S_UNKNOWN, 0, "Interrupted", "interrupted before the request");
		return -EINTR;
	}
	k->body.len = 0;
	k->body.too_large = false;
	k->body.no_memory = false;
	k->errbuf[0] = '\0';
	CURLcode rc = curl_easy_setopt(k->curl, CURLOPT_URL, url);
	if (rc == CURLE_OK && post != NULL) {
		rc = curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, k->post_headers);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(k->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			                      (curl_off_t)strlen(post));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, post);
	} else if (rc == CURLE_OK) {
		rc = curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, k->get_headers);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(k->curl, CURLOPT_HTTPGET, 1L);
	}
	if (rc != CURLE_OK) {
		set_result(res, K8S_UNKNOWN, 0, "Transport", "curl: %s", curl_easy_strerror(rc));
		return -EIO;
	}
	int64_t t0 = mono_us();
	rc = curl_easy_perform(k->curl);
	int64_t dt = mono_us() - t0;
	long http = 0;
	curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &http);
	/* POSTFIELDS points at the caller's buffer; do not keep it past the call. */
	if (post != NULL)
		curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, (char *)NULL);
	/*
	 * A transfer that failed has no code, except a body cut at the cap,
	 * whose status line did arrive; the callback and the result agree.
	 */
	const char *reason = rc != CURLE_OK ? curl_reason(rc, &k->body) : NULL;
	long shown = rc == CURLE_OK || strcmp(reason, "TooLarge") == 0 ? http : 0;
	if (k->cfg.observe != NULL)
		k->cfg.observe(k->cfg.observe_ctx, verb, shown, dt);
	if (rc != CURLE_OK) {
		if (strcmp(reason, "TooLarge") == 0)
			set_result(res, K8S_UNKNOWN, shown, reason,
			           "response body larger than %zu bytes", k->body.max);
		else
			set_result(res, K8S_UNKNOWN, shown, reason, "curl: %s%s%s",
			           curl_easy_strerror(rc), k->errbuf[0] != '\0' ? ": " : "",
			           k->errbuf);
		return -EIO;
	}
	*code = http;
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

/*
 * An exchange, retried once with a freshly read token after a 401, unless
 * the API is in backoff after an outage: then nothing is sent, so a dead
 * API costs one timeout per backoff period, not one per lookup.
 */
static int request(struct k8s_client *k, const char *verb, const char *url, const char *post,
                   long *code, struct k8s_result *res)
{
	int64_t now = mono_us();

	if (now < k->backoff_until) {
		/*
		 * The answer is still the outage's (its code and reason), so a
		 * caller's view does not flicker between "503" and "not asked".
		 */
		set_result(res, K8S_UNKNOWN, k->outage_code, k->outage_reason,
		           "not sent: backing off after that answer; next try in %lld ms",
		           (long long)((k->backoff_until - now) / 1000));
		return -EAGAIN;
	}
	token_refresh(k, false);
	int r = exchange(k, verb, url, post, code, res);
	if (r == 0 && *code == 401 && k->cfg.token_file != NULL) {
		token_refresh(k, true);
		r = exchange(k, verb, url, post, code, res);
	}
	if (is_outage(r, r == 0 ? *code : 0, res)) {
		k->backoff_us = k->backoff_us == 0 ? k->cfg.backoff_min_us : 2 * k->backoff_us;
		if (k->backoff_us > k->cfg.backoff_max_us)
			k->backoff_us = k->cfg.backoff_max_us;
		k->backoff_until = mono_us() + k->backoff_us;
		k->outage_code = r == 0 ? *code : res->http_code;
		/* For an HTTP answer the reason comes later, from its Status body. */
		copy_text(k->outage_reason, sizeof(k->outage_reason),
		          r < 0 ? res->reason : "", r < 0 ? strlen(res->reason) : 0);
	} else if (r == 0) {
		k->backoff_us = 0;
		k->backoff_until = 0;
	}
	return r;
}

/* A member of obj; *dup is set when the key appears more than once. */
static const cJSON *field(const cJSON *obj, const char *key, bool *dup)
{
	const cJSON *found = NULL;
	for (const cJSON *e = obj != NULL ? obj->child : NULL; e != NULL; e = e->next) {
		if (e->string == NULL || strcmp(e->string, key) != 0)
			continue;
		if (found != NULL)
			*dup = true;
		else
			found = e;
	}
	return found;
}

/*
 * not_found needs kind Status, reason NotFound, a code of 404 when given,
 * and details naming the pod asked for (name, and kind "pods"), as
 * kube-apiserver's NewNotFound always writes them. The generic "the server
 * could not find the requested resource" (a wrong path or a proxy) has no
 * such details and is not our pod gone.
 */
void k8s_status_parse(const char *body, size_t len, const char *name, struct k8s_status *st)
{
	memset(st, 0, sizeof(*st));
	cJSON *root = k8s_json_parse(body, len);
	if (root == NULL)
		return;
	/* A key given twice could read differently elsewhere: never GONE then. */
	bool dup = false;
	const cJSON *kind = field(root, "kind", &dup);
	const cJSON *reason = field(root, "reason", &dup);
	const cJSON *message = field(root, "message", &dup);
	const cJSON *code = field(root, "code", &dup);
	const cJSON *details = field(root, "details", &dup);
	if (!cJSON_IsObject(root) || !cJSON_IsString(kind) ||
	    strcmp(kind->valuestring, "Status") != 0)
		goto out;
	st->is_status = true;
	if (cJSON_IsString(reason))
		copy_text(st->reason, sizeof(st->reason), reason->valuestring,
		          strlen(reason->valuestring));
	if (cJSON_IsString(message))
		copy_text(st->message, sizeof(st->message), message->valuestring,
		          strlen(message->valuestring));
	if (dup || name == NULL || !cJSON_IsString(reason) ||
	    strcmp(reason->valuestring, "NotFound") != 0)
		goto out;
	if (code != NULL && !cJSON_IsNull(code) &&
	    !(cJSON_IsNumber(code) && code->valuedouble == 404.0))
		goto out;
	if (!cJSON_IsObject(details))
		goto out;
	const cJSON *dn = field(details, "name", &dup);
	const cJSON *dk = field(details, "kind", &dup);
	if (dup || !cJSON_IsString(dn) || strcmp(dn->valuestring, name) != 0 ||
	    !cJSON_IsString(dk) || strcmp(dk->valuestring, "pods") != 0)
		goto out;
	st->not_found = true;
out:
	cJSON_Delete(root);
}

/* True when the body holds the bearer token, which must never be copied out. */
static bool body_has_token(const struct k8s_client *k)
{
	return k8s_client_holds_token(k, k->body.buf, k->body.len);
}

enum k8s_outcome k8s_status_result(long code, const char *body, size_t len, const char *name,
                                   const char *ctype, struct k8s_result *res)
{
	struct k8s_status st;
	k8s_status_parse(body, len, name, &st);
	if (code == 404 && st.not_found) {
		set_result(res, K8S_GONE, code, "NotFound", "%s", st.message);
		return K8S_GONE;
	}
	if (st.is_status && st.reason[0] != '\0') {
		set_result(res, K8S_UNKNOWN, code, st.reason, "%s", st.message);
		return K8S_UNKNOWN;
	}
	/* The Content-Type is the server's text too: no control characters. */
	char shown[65];
	if (ctype == NULL)
		ctype = "no Content-Type";
	copy_text(shown, sizeof(shown), ctype, strlen(ctype));
	set_result(res, K8S_UNKNOWN, code, "", "HTTP %ld without a Status body (%s)", code, shown);
	snprintf(res->reason, sizeof(res->reason), "HTTP%ld", code);
	return K8S_UNKNOWN;
}

/*
 * Fills res for a response that is not the success the caller wanted,
 * unless the body holds the token: then nothing of it is copied out.
 */
static enum k8s_outcome status_result(struct k8s_client *k, long code, const char *name,
                                      struct k8s_result *res)
{
	if (body_has_token(k)) {
		set_result(res, K8S_UNKNOWN, code, "", "response withheld: it contains the token");
		snprintf(res->reason, sizeof(res->reason), "HTTP%ld", code);
		return K8S_UNKNOWN;
	}
	char *ctype = NULL;
	curl_easy_getinfo(k->curl, CURLINFO_CONTENT_TYPE, &ctype);
	return k8s_status_result(code, k->body.buf, k->body.len, name, ctype, res);
}

/*
 * The result of an error answer; an outage answer's reason is also kept,
 * for the lookups refused while backing off.
 */
static enum k8s_outcome error_result(struct k8s_client *k, long code, const char *name,
                                     struct k8s_result *res)
{
	enum k8s_outcome o = status_result(k, code, name, res);

	if (code >= 500 || code == 429)
		snprintf(k->outage_reason, sizeof(k->outage_reason), "%s", res->reason);
	return o;
}

/* curl_easy_escape into a malloc'd string (freed with curl_free). */
static char *escape(struct k8s_client *k, const char *s)
{
	return curl_easy_escape(k->curl, s, (int)strlen(s));
}

enum k8s_outcome k8s_get_pod(struct k8s_client *k, const char *ns, const char *name,
                             struct k8s_pod *pod, struct k8s_result *res)
{
	struct k8s_result local;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (!k8s_is_dns1123_label(ns) || !k8s_is_dns1123_subdomain(name)) {
		set_result(res, K8S_UNKNOWN, 0, "Invalid",
		           "namespace must be a DNS-1123 label and name a DNS-1123 subdomain");
		return K8S_UNKNOWN;
	}
	/* The names are already safe; escaping anyway costs nothing. */
	char *ens = escape(k, ns), *ename = escape(k, name), *url = NULL;
	if (ens != NULL && ename != NULL)
		url = join(k->base, "/api/v1/namespaces/", ens, "/pods/", ename, (char *)NULL);
	curl_free(ens);
	curl_free(ename);
	if (url == NULL) {
		set_result(res, K8S_UNKNOWN, 0, "NoMemory", "out of memory");
		return K8S_UNKNOWN;
	}
	long code = 0;
	int r = request(k, "get", url, NULL, &code, res);
	free(url);
	if (r < 0)
		return res->outcome;
	if (code != 200)
		return error_result(k, code, name, res);

	char err[160];
	struct k8s_pod p;
	r = k8s_pod_parse(k->body.buf, k->body.len, &p, err, sizeof(err));
	if (r < 0) {
		set_result(res, K8S_UNKNOWN, code, r == -ENOMEM ? "NoMemory" : "Malformed", "%s",
		           err);
		return K8S_UNKNOWN;
	}
	/* A pod other than the one asked for is no answer about it. */
	if (strcmp(p.ns, ns) != 0 || strcmp(p.name, name) != 0) {
		k8s_pod_done(&p);
		set_result(res, K8S_UNKNOWN, code, "Malformed",
		           "the API answered with another pod");
		return K8S_UNKNOWN;
	}
	if (pod != NULL)
		*pod = p;
	else
		k8s_pod_done(&p);
	set_result(res, K8S_POD, code, "", "%s", "");
	return K8S_POD;
}

enum k8s_outcome k8s_list_pods_by_ip(struct k8s_client *k, const char *ns, const char *ip,
                                     struct k8s_pod **pods, size_t *n, struct k8s_result *res)
{
	struct k8s_result local;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	/*
	 * The field selector compares strings, and the API writes addresses
	 * in canonical form (fd00::2), while Liquibase writes fd00:0:0:0:0:0:0:2:
	 * so the address is parsed and printed back canonically.
	 */
	unsigned char addr[16];
	char canon[INET6_ADDRSTRLEN];
	bool ok = k8s_is_dns1123_label(ns) && ip != NULL;
	if (ok) {
		if (inet_pton(AF_INET, ip, addr) == 1)
			ok = inet_ntop(AF_INET, addr, canon, sizeof(canon)) != NULL;
		else if (inet_pton(AF_INET6, ip, addr) == 1)
			ok = inet_ntop(AF_INET6, addr, canon, sizeof(canon)) != NULL;
		else
			ok = false;
	}
	if (!ok) {
		set_result(res, K8S_UNKNOWN, 0, "Invalid",
		           "namespace must be a DNS-1123 label and ip an IPv4 or IPv6 address");
		return K8S_UNKNOWN;
	}
	char *selector = join("status.podIP=", canon, (char *)NULL);
	char *ens = escape(k, ns), *esel = selector != NULL ? escape(k, selector) : NULL;
	char *url = NULL;
	if (ens != NULL && esel != NULL)
		url = join(k->base, "/api/v1/namespaces/", ens, "/pods?fieldSelector=", esel,
		           (char *)NULL);
	free(selector);
	curl_free(ens);
	curl_free(esel);
	if (url == NULL) {
		set_result(res, K8S_UNKNOWN, 0, "NoMemory", "out of memory");
		return K8S_UNKNOWN;
	}
	long code = 0;
	int r = request(k, "list", url, NULL, &code, res);
	free(url);
	if (r < 0)
		return res->outcome;
	if (code != 200) {
		/* A list has no NotFound meaning "gone": always UNKNOWN. */
		error_result(k, code, NULL, res);
		res->outcome = K8S_UNKNOWN;
		return K8S_UNKNOWN;
	}
	char err[200];
	struct k8s_pod *v;
	size_t count;
	r = k8s_pod_list_parse(k->body.buf, k->body.len, &v, &count, err, sizeof(err));
	if (r < 0) {
		set_result(res, K8S_UNKNOWN, code, r == -ENOMEM ? "NoMemory" : "Malformed", "%s",
		           err);
		return K8S_UNKNOWN;
	}
	*pods = v;
	*n = count;
	set_result(res, K8S_POD, code, "", "%s", "");
	return K8S_POD;
}

/* ---- events ---- */

/*
 * A qualified name as ValidateQualifiedName wants reportingComponent:
 * an optional DNS subdomain prefix and '/', then 1-63 of [A-Za-z0-9_.-]
 * beginning and ending alphanumeric.
 */
static bool is_qualified_name(const char *s)
{
	const char *slash = strchr(s, '/');
	if (slash != NULL) {
		size_t plen = (size_t)(slash - s);
		char prefix[254];
		if (plen == 0 || plen >= sizeof(prefix))
			return false;
		memcpy(prefix, s, plen);
		prefix[plen] = '\0';
		if (!k8s_is_dns1123_subdomain(prefix))
			return false;
		s = slash + 1;
	}
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && ((i == 0 || i == n - 1) || (c != '-' && c != '_' && c != '.')))
			return false;
	}
	return true;
}

/* The API refuses an Event whose message passes 1024 bytes (NoteLengthLimit). */
#define EVENT_MESSAGE_MAX 1024
/* ReasonLengthLimit, ReportingInstanceLengthLimit and ActionLengthLimit. */
#define EVENT_FIELD_MAX 128

static bool add_str(cJSON *obj, const char *key, const char *val)
{
	return cJSON_AddStringToObject(obj, key, val) != NULL;
}

/* Builds the Event body; NULL when out of memory. */
static char *event_json(const struct k8s_event *ev, const char *instance, const char *message)
{
	char now_s[32], now_us[40];
	int64_t now = wall_us();
	if (k8s_time_format(now, false, now_s, sizeof(now_s)) < 0 ||
	    k8s_time_format(now, true, now_us, sizeof(now_us)) < 0)
		return NULL;
	char *gen = join(ev->pod_name, ".", (char *)NULL);
	cJSON *root = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
	cJSON *inv = cJSON_AddObjectToObject(root, "involvedObject");
	cJSON *src = cJSON_AddObjectToObject(root, "source");
	bool ok = gen != NULL && root != NULL && meta != NULL && inv != NULL && src != NULL;
	ok = ok && add_str(root, "apiVersion", "v1") && add_str(root, "kind", "Event");
	ok = ok && add_str(meta, "generateName", gen) && add_str(meta, "namespace", ev->ns);
	ok = ok && add_str(inv, "apiVersion", "v1") && add_str(inv, "kind", "Pod") &&
	     add_str(inv, "namespace", ev->ns) && add_str(inv, "name", ev->pod_name);
	if (ok && ev->pod_uid != NULL && ev->pod_uid[0] != '\0')
		ok = add_str(inv, "uid", ev->pod_uid);
	ok = ok && add_str(root, "reason", ev->reason) && add_str(root, "message", message) &&
	     add_str(root, "type", ev->type) && add_str(src, "component", ev->component) &&
	     add_str(root, "reportingComponent", ev->component) &&
	     add_str(root, "reportingInstance", instance) &&
	     add_str(root, "firstTimestamp", now_s) && add_str(root, "lastTimestamp", now_s) &&
	     add_str(root, "eventTime", now_us) && add_str(root, "action", "Release") &&
	     cJSON_AddNumberToObject(root, "count", 1) != NULL;
	char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
	cJSON_Delete(root);
	free(gen);
	return out;
}

int k8s_post_event(struct k8s_client *k, const struct k8s_event *ev, struct k8s_result *res)
{
	struct k8s_result local;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (ev == NULL || !k8s_is_dns1123_label(ev->ns) ||
	    !k8s_is_dns1123_subdomain(ev->pod_name) || ev->reason == NULL ||
	    ev->reason[0] == '\0' || strlen(ev->reason) > EVENT_FIELD_MAX || ev->type == NULL ||
	    ev->type[0] == '\0' || ev->component == NULL || !is_qualified_name(ev->component)) {
		set_result(res, K8S_UNKNOWN, 0, "Invalid",
		           "event needs a DNS-1123 namespace and pod name, a reason, a type "
		           "and a qualified component name");
		return -EINVAL;
	}
	/* eventTime makes reportingInstance mandatory; the host name is the pod name. */
	char host[256];
	const char *instance = ev->reporting_instance;
	if (instance == NULL || instance[0] == '\0') {
		if (gethostname(host, sizeof(host)) == 0 && host[0] != '\0') {
			host[sizeof(host) - 1] = '\0';
			instance = host;
		} else {
			instance = ev->component;
		}
	}
	if (strlen(instance) > EVENT_FIELD_MAX) {
		set_result(res, K8S_UNKNOWN, 0, "Invalid",
		           "reporting instance longer than %d bytes", EVENT_FIELD_MAX);
		return -EINVAL;
	}
	char message[EVENT_MESSAGE_MAX + 1];
	const char *msg = ev->message != NULL ? ev->message : "";
	size_t mlen = strlen(msg);
	if (mlen > EVENT_MESSAGE_MAX) {
		mlen = EVENT_MESSAGE_MAX;
		/* Cut before a UTF-8 continuation byte, not inside a character. */
		while (mlen > 0 && ((unsigned char)msg[mlen] & 0xc0) == 0x80)
			mlen--;
	}
	memcpy(message, msg, mlen);
	message[mlen] = '\0';

	char *body = event_json(ev, instance, message);
	char *ens = escape(k, ev->ns);
	char *url =
	    ens != NULL ? join(k->base, "/api/v1/namespaces/", ens, "/events", (char *)NULL) : NULL;
	curl_free(ens);
	if (body == NULL || url == NULL) {
		free(url);
		cJSON_free(body);
		set_result(res, K8S_UNKNOWN, 0, "NoMemory", "out of memory");
		return -ENOMEM;
	}
	long code = 0;
	int r = request(k, "create", url, body, &code, res);
	free(url);
	cJSON_free(body);
	if (r < 0)
		return -EIO;
	if (code != 201 && code != 200) {
		error_result(k, code, NULL, res);
		res->outcome = K8S_UNKNOWN;
		return -EIO;
	}
	set_result(res, K8S_POD, code, "", "%s", "");
	return 0;
}
