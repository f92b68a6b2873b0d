/*
 * fuzz_http.c - fuzz target for the status server: the input is what a
 * client sends, request line, headers and body, to the real libmicrohttpd
 * daemon of daemon/http.c with every limit it serves with (http.c's
 * daemon_start), through one end of a socketpair handed over with
 * http_add_connection. The status behind it holds one lock table, so that
 * /metrics, /locks and / render something.
 *
 * After the input the client shuts its side for writing and reads until
 * the server closes. The server must close within a deadline (a hang or a
 * wedged connection is a finding, as in issue 13), and whatever it sent
 * must be HTTP responses: the reply starts with "HTTP/1." and every
 * response the reply holds has a status line the server can send.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz-input.h"
#include "http.h"
#include "status.h"

/* A fuzz input is at most this much; the server caps a request at 32 KiB. */
#define FUZZ_HTTP_MAX_INPUT (64 * 1024)
/*
 * Far longer than any answer takes, and shorter than the 2 s header
 * timeout: a server that missed the close (issue 13) is a finding.
 */
#define FUZZ_HTTP_DEADLINE_MS 1500

static struct status st;
static struct http_server *server;
/* The status's tables: static, as long-lived as the server that reads them. */
static struct status_db db = {.label = (char *)"127.0.0.1:5432/app", .up = true};
static struct status_lock lock = {.database = (char *)"127.0.0.1:5432/app",
				  .schema = (char *)"public",
				  .table = (char *)"databasechangeloglock", .known = true, .held = true,
				  .lockedby = (char *)"shop:web-0", .verdict = "held",
				  .reason = "held_container_running"};

static void setup(void)
{
	char err[256];

	if (status_init(&st, 1000000) < 0)
		abort();
	histogram_init(&db.poll, histogram_latency_buckets, histogram_latency_n);
	st.t.dbs = &db;
	st.t.n_dbs = 1;
	st.t.locks = &lock;
	st.t.n_locks = 1;
	server = http_start_detached(&st, err, sizeof(err));
	if (server == NULL) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for ev; false at the deadline. */
static int wait_for(int fd, short ev, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int64_t left = deadline - now_ms();
	int rc;

	if (left <= 0)
		return 0;
	do
		rc = poll(&p, 1, (int)left);
	while (rc < 0 && errno == EINTR);
	return rc > 0;
}

/* Every "HTTP/1.x NNN " the server wrote names a code it sends. */
static void check_reply(const char *r, size_t n)
{
	static const char *const codes[] = {"100", "200", "400", "404", "405", "413", "414",
					    "431", "500", "501", "503", "505"};

	if (n == 0)
		return; /* closed without a word: allowed */
	if (n < 8 || memcmp(r, "HTTP/1.", 7) != 0) {
		fprintf(stderr, "fuzz_http: reply does not start with a status line\n");
		abort();
	}
	for (const char *p = r; (p = memmem(p, n - (size_t)(p - r), "HTTP/1.", 7)) != NULL; p++) {
		/* Only status lines at the start or after a blank line are responses. */
		if (p != r && !(p - r >= 4 && memcmp(p - 4, "\r\n\r\n", 4) == 0))
			continue;
		if ((size_t)(p - r) + 13 > n)
			break;
		int known = 0;
		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
			known |= memcmp(p + 9, codes[i], 3) == 0;
		if (!known || p[12] != ' ') {
			fprintf(stderr, "fuzz_http: unexpected status line %.20s\n", p);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char reply[1 << 20];
	size_t got = 0, sent = 0;
	int sv[2];
	int64_t deadline;

	if (server == NULL)
		setup();
	if (size > FUZZ_HTTP_MAX_INPUT)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (http_add_connection(server, sv[1]) < 0)
		abort(); /* one connection at a time: far below every limit */
	deadline = now_ms() + FUZZ_HTTP_DEADLINE_MS;
	/* The server may answer and close before it has read all of it. */
	while (sent < size && wait_for(sv[0], POLLOUT, deadline)) {
		ssize_t w = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			break;
		sent += (size_t)w;
	}
	shutdown(sv[0], SHUT_WR);
	for (;;) {
		if (!wait_for(sv[0], POLLIN, deadline)) {
			fprintf(stderr, "fuzz_http: no close within %d ms (%zu bytes sent, %zu read)\n",
				FUZZ_HTTP_DEADLINE_MS, sent, got);
			abort();
		}
		char sink[4096];
		char *to = got < sizeof(reply) ? reply + got : sink;
		size_t room = got < sizeof(reply) ? sizeof(reply) - got : sizeof(sink);
		ssize_t r = recv(sv[0], to, room, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			break; /* closed, or reset after an error answer */
		if (to == reply + got)
			got += (size_t)r;
	}
	close(sv[0]);
	check_reply(reply, got);
	return 0;
}
