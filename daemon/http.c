#include "http.h"

#include "metrics.h"
#include "page.h"
#include "report.h"
#include "timeutil.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

/*
 * Limits that keep the probes answering under a flood of idle connections
 * (issue 13). Each slot held by an idle client is one a probe cannot have;
 * what bounds the harm is how many slots one client gets, how long an idle
 * one keeps its slot, and how long a probe can queue in the kernel behind
 * them. The kubelet and Prometheus send their request the moment they
 * connect and use one or two connections each; a browser on port-forward
 * (every client then comes from 127.0.0.1 in the pod) opens up to six.
 */
#define HTTP_CONNECTION_LIMIT 64
/* One address (one attacking pod) holds at most this many of the slots. */
#define HTTP_PER_IP_LIMIT 8
/* Until the request header is complete: a real client needs milliseconds. */
#define HTTP_HEADER_TIMEOUT_S 2
/* Once a request is in: a slow reader of a large /metrics, and keep-alive. */
#define HTTP_CONNECTION_TIMEOUT_S 10
/*
 * The kernel's accept queue, about the connection limit: a probe queued
 * behind a full one waits about one header timeout, not the thousands of
 * timeouts a SOMAXCONN (4096) queue of idle connections would cost.
 */
#define HTTP_LISTEN_BACKLOG 64
#define HTTP_MEMORY_LIMIT (32 * 1024) /* per connection: caps headers and bodies */

struct http_server {
	struct MHD_Daemon *d;
	struct status *st;
	unsigned port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *text)
{
	return reply(c, code, "text/plain; charset=utf-8", text, strlen(text));
}

enum page_kind { PAGE_METRICS, PAGE_LOCKS, PAGE_HTML, PAGE_READY };

/*
 * Renders a view of the status into a memory stream, then replies. The
 * mutex is held only to take the view: rendering 1 000 locks takes
 * milliseconds, and the main loop must not wait for a scrape to publish.
 */
static enum MHD_Result render(struct http_server *h, struct MHD_Connection *c, enum page_kind k)
{
	struct metrics_process proc;
	char *buf = NULL, why[512];
	size_t len = 0;
	unsigned code = MHD_HTTP_OK;
	const char *type = "text/plain; charset=utf-8";
	FILE *out;
	enum MHD_Result ret;

	/* /proc is read outside the lock: it is the slow part. */
	if (k == PAGE_METRICS)
		metrics_process_read(&proc);
	out = open_memstream(&buf, &len);
	if (out == NULL)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	struct status view;

	status_view_get(h->st, &view);
	switch (k) {
	case PAGE_METRICS:
		metrics_render(&view, &proc, out);
		type = METRICS_CONTENT_TYPE;
		break;
	case PAGE_LOCKS:
		if (report_json(&view, out) < 0)
			code = MHD_HTTP_INTERNAL_SERVER_ERROR;
		type = "application/json";
		break;
	case PAGE_HTML:
		page_render(&view, timeutil_wall_us(), out);
		type = "text/html; charset=utf-8";
		break;
	case PAGE_READY:
		if (!status_ready(&view, why, sizeof(why)))
			code = MHD_HTTP_SERVICE_UNAVAILABLE;
		fprintf(out, "%s\n", why);
		break;
	}
	status_view_put(&view);
	if (fclose(out) != 0 || buf == NULL) {
		free(buf);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	ret = reply(c, code, type, buf, len);
	free(buf);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req)
{
	struct http_server *h = cls;

	(void)version;
	(void)upload;
	/* Requests with a body: discard it; the answer is 405 anyway. */
	if (*req == NULL) {
		*req = h;
		/* The header is complete: from now on the longer timeout applies. */
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned)HTTP_CONNECTION_TIMEOUT_S);
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	}
	if (*upload_size != 0) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/healthz") == 0) {
		if (status_healthy(h->st, timeutil_mono_us()))
			return reply_text(c, MHD_HTTP_OK, "ok\n");
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "main loop has not completed a cycle in time\n");
	}
	if (strcmp(url, "/readyz") == 0)
		return render(h, c, PAGE_READY);
	if (strcmp(url, "/metrics") == 0)
		return render(h, c, PAGE_METRICS);
	if (strcmp(url, "/locks") == 0)
		return render(h, c, PAGE_LOCKS);
	if (strcmp(url, "/") == 0)
		return render(h, c, PAGE_HTML);
	return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/*
 * A new connection gets the short header timeout; handle() lifts it once
 * the request is in. Runs on the server's thread, before any read.
 */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	(void)socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned)HTTP_HEADER_TIMEOUT_S);
}

/* "host:port" or "[v6]:port" into an address. */
static int resolve(const char *listen, struct addrinfo **res, char *err, size_t cap)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	size_t hn;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	int rc;

	if (colon == NULL) {
		snprintf(err, cap, "--listen %s: no port", listen);
		return -EINVAL;
	}
	hn = (size_t)(colon - listen);
	if (hn >= 2 && listen[0] == '[' && listen[hn - 1] == ']') {
		listen++;
		hn -= 2;
	}
	if (hn >= sizeof(host)) {
		snprintf(err, cap, "--listen: host too long");
		return -EINVAL;
	}
	memcpy(host, listen, hn);
	host[hn] = '\0';
	rc = getaddrinfo(hn > 0 ? host : NULL, colon + 1, &hints, res);
	if (rc != 0) {
		snprintf(err, cap, "--listen %s: %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

/*
 * The daemon with every limit of this file; addr NULL: no listening socket
 * (http_start_detached). The same options either way, so that the fuzz
 * target exercises what the daemon serves.
 */
static struct MHD_Daemon *daemon_start(struct http_server *h, const struct sockaddr *addr)
{
	/*
	 * poll(), not epoll (MHD_USE_AUTO's choice on Linux). libmicrohttpd
	 * 0.9.75 registers connections edge-triggered and treats a short read
	 * as "drained" (connection.c, recv_param_adapter), so a client that
	 * sends a partial request and closes is never seen closing: the FIN
	 * came with the bytes, no new edge follows, and the dead connection
	 * holds its slot for the whole timeout. Thousands of them queued
	 * behind the listen socket wedged the server for minutes after the
	 * clients were gone (issue 13). Fixed upstream in 1.0.0 (commit
	 * 08f933a6, bug 7192); level-triggered poll() sees the EOF at once, and
	 * costs nothing at 64 connections.
	 *
	 * MHD_USE_ITC: without it MHD_stop_daemon wakes the server's thread by
	 * shutting the listen socket, which is not polled while the connection
	 * limit is reached; SIGTERM during a flood then waited for the next
	 * connection timeout. A pipe wakes it at once.
	 */
	unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC;

	if (addr == NULL)
		flags |= MHD_USE_NO_LISTEN_SOCKET;
	else if (addr->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	return MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, addr,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_PER_IP_LIMIT,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT_S,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
				MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)HTTP_LISTEN_BACKLOG,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
				MHD_OPTION_END);
}

struct http_server *http_start(const char *listen, struct status *st, char *err, size_t cap)
{
	struct http_server *h = calloc(1, sizeof(*h));
	struct addrinfo *ai = NULL;

	if (h == NULL) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	if (resolve(listen, &ai, err, cap) < 0) {
		free(h);
		return NULL;
	}
	h->st = st;
	h->d = daemon_start(h, ai->ai_addr);
	freeaddrinfo(ai);
	if (h->d == NULL) {
		snprintf(err, cap, "cannot listen on %s (in use, or not an address of this host)",
			 listen);
		free(h);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info != NULL ? info->port : 0;
	return h;
}

struct http_server *http_start_detached(struct status *st, char *err, size_t cap)
{
	struct http_server *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, cap, "out of memory");
		return NULL;
	}
	h->st = st;
	h->d = daemon_start(h, NULL);
	if (h->d == NULL) {
		snprintf(err, cap, "cannot start the HTTP server");
		free(h);
		return NULL;
	}
	return h;
}

int http_add_connection(struct http_server *h, int fd)
{
	/* Any address: it only counts against the per-client limit. */
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	if (MHD_add_connection(h->d, fd, (const struct sockaddr *)&peer, sizeof(peer)) != MHD_YES)
		return errno != 0 ? -errno : -EIO;
	return 0;
}

unsigned http_port(const struct http_server *h)
{
	return h->port;
}

void http_stop(struct http_server *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
