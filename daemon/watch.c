#include "watch.h"

#include "timeutil.h"

_Static_assert(LOOP_IN == K8S_WATCH_IN && LOOP_OUT == K8S_WATCH_OUT,
	       "the loop and the watch set name readiness alike");

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * timeoutSeconds of a watch: long, so that 100 held locks cost a few
 * reconnects a minute, not one each per poll; the set spreads each over
 * [timeout, 2 * timeout) as client-go does.
 */
#define WATCH_TIMEOUT_US (1800 * TIMEUTIL_S)

int watches_init(struct holder_watches *hw, struct k8s_client *k, char *err, size_t cap)
{
	struct k8s_watch_config c;

	memset(hw, 0, sizeof(*hw));
	hw->next_id = 1;
	if (k == NULL)
		return 0;
	k8s_watch_config_default(&c);
	c.timeout_us = WATCH_TIMEOUT_US;
	hw->set = k8s_watches_new(k, &c, err, cap);
	return hw->set != NULL ? 0 : -ENOMEM;
}

static void drop(struct holder_watches *hw, size_t i)
{
	struct holder_watch *w = &hw->w[i];

	k8s_watch_stop(hw->set, w->id);
	if (w->have_pod)
		k8s_pod_done(&w->pod);
	hw->w[i] = hw->w[--hw->n];
}

void watches_done(struct holder_watches *hw)
{
	while (hw->n > 0)
		drop(hw, hw->n - 1);
	free(hw->w);
	k8s_watches_free(hw->set);
	memset(hw, 0, sizeof(*hw));
}

struct holder_watch *watches_find(struct holder_watches *hw, uint64_t serial)
{
	for (size_t i = 0; i < hw->n; i++)
		if (hw->w[i].serial == serial)
			return &hw->w[i];
	return NULL;
}

static struct holder_watch *by_id(struct holder_watches *hw, uint64_t id)
{
	for (size_t i = 0; i < hw->n; i++)
		if (hw->w[i].id == id)
			return &hw->w[i];
	return NULL;
}

struct holder_watch *watches_follow(struct holder_watches *hw, uint64_t serial,
				    const char *ns, const char *name, struct k8s_pod *pod)
{
	struct holder_watch *w;

	if (hw->set == NULL || pod->resource_version[0] == '\0')
		return NULL;
	w = watches_find(hw, serial);
	if (w == NULL) {
		if (hw->n == hw->cap) {
			size_t cap = hw->cap ? 2 * hw->cap : 8;
			struct holder_watch *p = realloc(hw->w, cap * sizeof(*p));
			if (p == NULL)
				return NULL;
			hw->w = p;
			hw->cap = cap;
		}
		w = &hw->w[hw->n++];
		memset(w, 0, sizeof(*w));
		w->id = hw->next_id++;
		w->serial = serial;
	}
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->name, sizeof(w->name), "%s", name);
	if (w->have_pod)
		k8s_pod_done(&w->pod);
	w->pod = *pod;
	memset(pod, 0, sizeof(*pod));
	w->have_pod = true;
	w->gone = false;
	w->seen = true;
	if (!w->streaming) {
		if (k8s_watch_start(hw->set, w->id, w->ns, w->name, w->pod.resource_version) < 0)
			return w; /* the snapshot still serves this cycle; the GET goes on */
		w->streaming = true;
		w->resume_at_mono_us = 0;
	}
	return w;
}

const struct holder_watch *watches_usable(struct holder_watches *hw, uint64_t serial)
{
	const struct holder_watch *w = watches_find(hw, serial);

	return w != NULL && w->streaming && (w->have_pod || w->gone) ? w : NULL;
}

void watches_forget(struct holder_watches *hw, uint64_t serial)
{
	for (size_t i = 0; i < hw->n; i++) {
		if (hw->w[i].serial == serial) {
			drop(hw, i);
			return;
		}
	}
}

void watches_mark(struct holder_watches *hw, uint64_t serial)
{
	struct holder_watch *w = watches_find(hw, serial);

	if (w != NULL)
		w->seen = true;
}

void watches_sweep(struct holder_watches *hw)
{
	for (size_t i = hw->n; i-- > 0;) {
		if (!hw->w[i].seen)
			drop(hw, i);
		else
			hw->w[i].seen = false;
	}
}

/* Applies one event; true when the snapshot changed (judge again). */
static bool apply(struct holder_watches *hw, struct k8s_watch_event *ev)
{
	struct holder_watch *w = by_id(hw, ev->id);

	if ((size_t)ev->type < sizeof(hw->events_by_type) / sizeof(hw->events_by_type[0]))
		hw->events_by_type[ev->type]++;
	if (w == NULL)
		return false;
	switch (ev->type) {
	case K8S_WATCH_POD:
	case K8S_WATCH_DELETED:
		if (w->have_pod)
			k8s_pod_done(&w->pod);
		w->pod = ev->pod;
		memset(&ev->pod, 0, sizeof(ev->pod));
		w->have_pod = true;
		w->gone = ev->type == K8S_WATCH_DELETED;
		return true;
	case K8S_WATCH_BOOKMARK:
		return false;
	case K8S_WATCH_EXPIRED:
	case K8S_WATCH_ERROR:
		/* The snapshot can no longer be kept current: the next poll GETs. */
		w->streaming = false;
		w->resume_at_mono_us = 0;
		if (w->have_pod)
			k8s_pod_done(&w->pod);
		w->have_pod = false;
		w->gone = false;
		return false;
	default: /* ENDED, FAILED: resume from the last version after the backoff */
		w->streaming = false;
		w->resume_at_mono_us = timeutil_mono_us() + ev->retry_in_us;
		if (ev->type == K8S_WATCH_FAILED || strcmp(ev->result.reason, "Stalled") == 0) {
			/*
			 * Refused, or a stream that trickled: the snapshot may be
			 * stale, so the poll's GET decides until events flow again.
			 */
			if (w->have_pod)
				k8s_pod_done(&w->pod);
			w->have_pod = false;
		}
		return false;
	}
}

static void resume_due(struct holder_watches *hw, int64_t now)
{
	for (size_t i = 0; i < hw->n; i++) {
		struct holder_watch *w = &hw->w[i];

		if (w->streaming || w->resume_at_mono_us == 0 || now < w->resume_at_mono_us)
			continue;
		w->resume_at_mono_us = 0;
		if (k8s_watch_resume(hw->set, w->id) == 0)
			w->streaming = true;
	}
}

/* The earliest resume that falls due; -1: none. */
static int64_t next_resume(const struct holder_watches *hw)
{
	int64_t at = -1;

	for (size_t i = 0; i < hw->n; i++) {
		const struct holder_watch *w = &hw->w[i];
		if (!w->streaming && w->resume_at_mono_us != 0 &&
		    (at < 0 || w->resume_at_mono_us < at))
			at = w->resume_at_mono_us;
	}
	return at;
}

static size_t src_fds(void *ctx, int *fds, int *events, size_t cap)
{
	struct holder_watches *hw = ctx;

	return hw->set != NULL ? k8s_watches_fds(hw->set, fds, events, cap) : 0;
}

static int64_t src_timeout(void *ctx)
{
	struct holder_watches *hw = ctx;
	int64_t t = hw->set != NULL ? k8s_watches_timeout_us(hw->set) : -1;
	int64_t r = next_resume(hw);

	if (r >= 0) {
		r -= timeutil_mono_us();
		if (r < 0)
			r = 0;
		if (t < 0 || r < t)
			t = r;
	}
	return t;
}

static void src_ready(void *ctx, const int *fds, const int *revents, size_t n)
{
	struct holder_watches *hw = ctx;
	struct k8s_watch_event ev;

	if (hw->set == NULL)
		return;
	resume_due(hw, timeutil_mono_us());
	/* LOOP_IN and LOOP_OUT are K8S_WATCH_IN and K8S_WATCH_OUT. */
	for (size_t i = 0; i < n; i++)
		if (revents[i] != 0)
			k8s_watches_action(hw->set, fds[i], revents[i]);
	if (k8s_watches_timeout_us(hw->set) == 0)
		k8s_watches_action(hw->set, -1, 0);
	while (k8s_watches_next(hw->set, &ev) == 1) {
		uint64_t id = ev.id;
		bool changed = apply(hw, &ev);

		k8s_watch_event_done(&ev);
		if (changed && hw->on_change != NULL) {
			struct holder_watch *w = by_id(hw, id);
			if (w != NULL)
				hw->on_change(hw->on_change_ctx, w);
		}
	}
}

int watches_attach(struct holder_watches *hw, struct loop *l,
		   void (*on_change)(void *ctx, struct holder_watch *w), void *ctx)
{
	struct loop_source src = {src_fds, src_timeout, src_ready, hw};

	hw->on_change = on_change;
	hw->on_change_ctx = ctx;
	return loop_add_source(l, &src);
}

size_t watches_open(const struct holder_watches *hw)
{
	return hw->set != NULL ? k8s_watches_connected(hw->set) : 0;
}
