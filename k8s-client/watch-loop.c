/*
 * watch-loop.c - the watch set's side of the caller's event loop
 * (watch.h): the descriptors and the timer of its multi handle (multi.c),
 * and curl_multi_socket_action when the caller says one is ready, after
 * which the finished transfers become events.
 */
#include <errno.h>

#include "watch-internal.h"

size_t k8s_watches_fds(const struct k8s_watches *ws, int *fds, int *events, size_t cap)
{
	return k8s_multi_fds(&ws->m, fds, events, cap);
}

int64_t k8s_watches_timeout_us(const struct k8s_watches *ws)
{
	int64_t at = ws->m.deadline_us, stall = k8s_watches_stall_deadline(ws);
	if (stall >= 0 && (at < 0 || stall < at))
		at = stall;
	if (at < 0)
		return -1;
	int64_t left = at - k8s_mono_us();
	return left > 0 ? left : 0;
}

int k8s_watches_action(struct k8s_watches *ws, int fd, int events)
{
	int r = k8s_multi_action(&ws->m, fd, events);
	k8s_watches_collect(ws);
	return r;
}

static int action(void *ctx, int fd, int events)
{
	return k8s_watches_action(ctx, fd, events);
}

int k8s_watches_poll(struct k8s_watches *ws, int64_t timeout_us)
{
	int64_t t = k8s_watches_timeout_us(ws);
	if (t < 0 || (timeout_us >= 0 && timeout_us < t))
		t = timeout_us;
	int r = k8s_multi_poll(&ws->m, t, action, ws);
	if (k8s_watches_timeout_us(ws) == 0 && k8s_watches_action(ws, -1, 0) < 0)
		r = -EIO;
	return r;
}
