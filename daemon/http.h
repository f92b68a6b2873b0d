/*
 * http.h - health, readiness, metrics and the status page over HTTP.
 *
 * libmicrohttpd on its own thread: GET and HEAD only (405 otherwise), 404
 * for unknown paths. Built to keep answering probes under a flood of idle
 * connections: 64 connections, 8 per client address, 2 s to send a request
 * header, 10 s of inactivity after it, a 64-deep accept queue, 32 KiB per
 * connection (http.c says why). The handler reads the
 * published struct status under its mutex and never touches the arbiter,
 * so the main loop and the server never wait on each other beyond a copy.
 */
#ifndef LOCK_ARBITER_HTTP_H
#define LOCK_ARBITER_HTTP_H

#include "status.h"

#include <stddef.h>

struct http_server;

/*
 * Listens on "host:port" ("[::]:9479" for IPv6; port 0 picks a free one).
 * NULL with err filled on failure.
 */
struct http_server *http_start(const char *listen, struct status *st, char *err, size_t cap);
/*
 * The same server with no listening socket: connections come only through
 * http_add_connection. For the fuzz target, which feeds it socketpairs.
 */
struct http_server *http_start_detached(struct status *st, char *err, size_t cap);
/*
 * Hands a connected stream socket to the server, which owns it from then
 * on, even on failure (libmicrohttpd closes it). 0 or a negative errno.
 */
int http_add_connection(struct http_server *h, int fd);
/* The port actually bound (0 when detached). */
unsigned http_port(const struct http_server *h);
/* Stops the thread and frees; accepts NULL. */
void http_stop(struct http_server *h);

#endif
