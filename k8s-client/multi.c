/*
 * multi.c - a libcurl multi handle as the caller's event loop sees it:
 * the descriptors and the timer libcurl asks for (CURLMOPT_SOCKETFUNCTION,
 * CURLMOPT_TIMERFUNCTION), curl_multi_socket_action when the caller says
 * one is ready, and a poll() of its descriptors for callers without a
 * loop (the timer is theirs to check). The
 * client's requests (transport.c) and the watches (watch.c) each have one.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

static int on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *socketp)
{
	struct k8s_multi *m = arg;
	int events = what == CURL_POLL_REMOVE ? 0
	                                      : ((what & CURL_POLL_IN) ? K8S_WATCH_IN : 0) |
	                                            ((what & CURL_POLL_OUT) ? K8S_WATCH_OUT : 0);
	size_t i = 0;

	(void)easy;
	(void)socketp;
	while (i < m->n_fds && m->fds[i].fd != s)
		i++;
	if (events == 0) {
		if (i < m->n_fds)
			m->fds[i] = m->fds[--m->n_fds];
	} else if (i < m->n_fds) {
		m->fds[i].events = events;
	} else {
		if (m->n_fds == m->cap_fds) {
			size_t cap = m->cap_fds > 0 ? 2 * m->cap_fds : 8;
			struct k8s_fdrec *nf = realloc(m->fds, cap * sizeof(*nf));
			if (nf == NULL)
				return -1; /* libcurl fails the transfer: an error, not a lost fd */
			m->fds = nf;
			m->cap_fds = cap;
		}
		m->fds[m->n_fds++] = (struct k8s_fdrec){s, events};
	}
	if (m->on_fd != NULL)
		m->on_fd(m->on_fd_ctx, s, events);
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct k8s_multi *m = arg;

	(void)multi;
	m->deadline_us = timeout_ms < 0 ? -1 : k8s_mono_us() + (int64_t)timeout_ms * 1000;
	return 0;
}

int k8s_multi_init(struct k8s_multi *m)
{
	memset(m, 0, sizeof(*m));
	m->deadline_us = -1;
	m->multi = curl_multi_init();
	if (m->multi == NULL)
		return -ENOMEM;
	if (curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m) != CURLM_OK) {
		k8s_multi_done(m);
		return -EINVAL;
	}
	return 0;
}

void k8s_multi_done(struct k8s_multi *m)
{
	/* Closes the connections kept for reuse; on_fd hears of each. */
	if (m->multi != NULL)
		curl_multi_cleanup(m->multi);
	free(m->fds);
	memset(m, 0, sizeof(*m));
	m->deadline_us = -1;
}

size_t k8s_multi_fds(const struct k8s_multi *m, int *fds, int *events, size_t cap)
{
	for (size_t i = 0; i < m->n_fds && i < cap; i++) {
		fds[i] = m->fds[i].fd;
		events[i] = m->fds[i].events;
	}
	return m->n_fds;
}

int k8s_multi_action(struct k8s_multi *m, int fd, int events)
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
	if (fd < 0 && m->deadline_us >= 0 && m->deadline_us <= k8s_mono_us())
		m->deadline_us = -1;
	CURLMcode mc =
	    curl_multi_socket_action(m->multi, fd < 0 ? CURL_SOCKET_TIMEOUT : fd, mask, &running);
	return mc == CURLM_OK ? 0 : -EIO;
}

int k8s_multi_poll(struct k8s_multi *m, int64_t timeout_us,
                   int (*action)(void *ctx, int fd, int events), void *ctx)
{
	size_t n = m->n_fds;
	struct pollfd *pfd = calloc(n > 0 ? n : 1, sizeof(*pfd));
	if (pfd == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		pfd[i].fd = m->fds[i].fd;
		pfd[i].events = (short)(((m->fds[i].events & K8S_WATCH_IN) ? POLLIN : 0) |
		                        ((m->fds[i].events & K8S_WATCH_OUT) ? POLLOUT : 0));
	}
	int64_t t = timeout_us;
	int ms = t < 0 ? -1 : (int)((t + 999) / 1000 > INT_MAX ? INT_MAX : (t + 999) / 1000);
	int got = poll(pfd, (nfds_t)n, ms);
	if (got < 0) {
		int e = errno;
		free(pfd);
		return e == EINTR ? 0 : -e;
	}
	int r = 0;
	for (size_t i = 0; i < n && got > 0; i++) {
		if (pfd[i].revents == 0)
			continue;
		int ev = ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) ? K8S_WATCH_IN : 0) |
		         ((pfd[i].revents & POLLOUT) ? K8S_WATCH_OUT : 0);
		if (action(ctx, pfd[i].fd, ev) < 0)
			r = -EIO;
	}
	free(pfd);
	return r;
}
