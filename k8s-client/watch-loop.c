/*
 * watch-loop.c - the watch set's side of the caller's event loop
 * (watch.h): the descriptors and the timer libcurl asks for, kept for
 * k8s_watches_fds and k8s_watches_timeout_us (and told to on_fd), and
 * curl_multi_socket_action when the caller says one is ready.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "watch-internal.h"

/* ---- descriptors and timer, as libcurl asks for them ---- */

int k8s_watches_on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *socketp)
{
	struct k8s_watches *ws = arg;
	int events = what == CURL_POLL_REMOVE ? 0
	                                      : ((what & CURL_POLL_IN) ? K8S_WATCH_IN : 0) |
	                                            ((what & CURL_POLL_OUT) ? K8S_WATCH_OUT : 0);
	size_t i = 0;
	while (i < ws->n_fds && ws->fds[i].fd != s)
		i++;
	if (events == 0) {
		if (i < ws->n_fds)
			ws->fds[i] = ws->fds[--ws->n_fds];
	} else if (i < ws->n_fds) {
		ws->fds[i].events = events;
	} else {
		if (ws->n_fds == ws->cap_fds) {
			size_t cap = ws->cap_fds > 0 ? 2 * ws->cap_fds : 8;
			struct fdrec *nf = realloc(ws->fds, cap * sizeof(*nf));
			if (nf == NULL)
				return -1; /* libcurl fails the transfer: ENDED, not a lost fd */
			ws->fds = nf;
			ws->cap_fds = cap;
		}
		ws->fds[ws->n_fds++] = (struct fdrec){s, events};
	}
	if (ws->cfg.on_fd != NULL)
		ws->cfg.on_fd(ws->cfg.on_fd_ctx, s, events);
	return 0;
}

int k8s_watches_on_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct k8s_watches *ws = arg;
	ws->deadline_us = timeout_ms < 0 ? -1 : watch_mono_us() + (int64_t)timeout_ms * 1000;
	return 0;
}

/* ---- the caller's loop ---- */

size_t k8s_watches_fds(const struct k8s_watches *ws, int *fds, int *events, size_t cap)
{
	for (size_t i = 0; i < ws->n_fds && i < cap; i++) {
		fds[i] = ws->fds[i].fd;
		events[i] = ws->fds[i].events;
	}
	return ws->n_fds;
}

int64_t k8s_watches_timeout_us(const struct k8s_watches *ws)
{
	int64_t at = ws->deadline_us, stall = k8s_watches_stall_deadline(ws);
	if (stall >= 0 && (at < 0 || stall < at))
		at = stall;
	if (at < 0)
		return -1;
	int64_t left = at - watch_mono_us();
	return left > 0 ? left : 0;
}

int k8s_watches_action(struct k8s_watches *ws, int fd, int events)
{
	int running = 0, mask = 0;
	if (events & K8S_WATCH_IN)
		mask |= CURL_CSELECT_IN;
	if (events & K8S_WATCH_OUT)
		mask |= CURL_CSELECT_OUT;
	/*
	 * libcurl's timer is one-shot: once it has fired, libcurl sets a new
	 * one if it still needs one. A call before it fires leaves it armed,
	 * since libcurl does not repeat a deadline it has already given.
	 */
	if (fd < 0 && ws->deadline_us >= 0 && ws->deadline_us <= watch_mono_us())
		ws->deadline_us = -1;
	CURLMcode mc =
	    curl_multi_socket_action(ws->multi, fd < 0 ? CURL_SOCKET_TIMEOUT : fd, mask, &running);
	k8s_watches_collect(ws);
	return mc == CURLM_OK ? 0 : -EIO;
}

int k8s_watches_poll(struct k8s_watches *ws, int64_t timeout_us)
{
	size_t n = ws->n_fds;
	struct pollfd *pfd = calloc(n > 0 ? n : 1, sizeof(*pfd));
	if (pfd == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		pfd[i].fd = ws->fds[i].fd;
		pfd[i].events = (short)(((ws->fds[i].events & K8S_WATCH_IN) ? POLLIN : 0) |
		                        ((ws->fds[i].events & K8S_WATCH_OUT) ? POLLOUT : 0));
		pfd[i].revents = 0;
	}
	int64_t t = k8s_watches_timeout_us(ws);
	if (t < 0 || (timeout_us >= 0 && timeout_us < t))
		t = timeout_us;
	int ms = t < 0 ? -1 : (int)((t + 999) / 1000 > INT_MAX ? INT_MAX : (t + 999) / 1000);
	int got = poll(pfd, (nfds_t)n, ms);
	if (got < 0) {
		int e = errno;
		free(pfd);
		return -e;
	}
	int r = 0;
	for (size_t i = 0; i < n && got > 0; i++) {
		if (pfd[i].revents == 0)
			continue;
		int ev = ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) ? K8S_WATCH_IN : 0) |
		         ((pfd[i].revents & POLLOUT) ? K8S_WATCH_OUT : 0);
		if (k8s_watches_action(ws, pfd[i].fd, ev) < 0)
			r = -EIO;
	}
	free(pfd);
	if (k8s_watches_timeout_us(ws) == 0 && k8s_watches_action(ws, -1, 0) < 0)
		r = -EIO;
	return r;
}
