#include "status.h"

#include "arbiter.h"
#include "timeutil.h"
#include "verdict.h"

#include <config.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const status_k8s_verbs[STATUS_K8S_VERBS] = {"get", "list", "create", "watch"};

int status_init(struct status *st, int64_t poll_interval_us)
{
	memset(st, 0, sizeof(*st));
	if (pthread_mutex_init(&st->mu, NULL) != 0)
		return -errno;
	st->poll_interval_us = poll_interval_us;
	st->start_wall_us = timeutil_wall_us();
	st->version = LOCK_ARBITER_VERSION;
	for (int v = 0; v < STATUS_K8S_VERBS; v++)
		histogram_init(&st->k8s_duration[v], histogram_latency_buckets,
			       histogram_latency_n);
	histogram_init(&st->release_delay, histogram_delay_buckets, histogram_delay_n);
	return 0;
}

static void parts_free(struct status_tables *p)
{
	for (size_t i = 0; i < p->n_dbs; i++) {
		free(p->dbs[i].label);
		free(p->dbs[i].error);
	}
	for (size_t i = 0; i < p->n_locks; i++) {
		struct status_lock *l = &p->locks[i];
		free(l->database);
		free(l->schema);
		free(l->table);
		free(l->lockedby);
		free(l->lockgranted);
		free(l->holder);
		free(l->parsed);
		free(l->lockgranted_zone);
		free(l->explanation);
		free(l->last_release_lockedby);
		free(l->last_release_explanation);
	}
	for (size_t i = 0; i < p->n_released; i++) {
		free(p->released[i].database);
		free(p->released[i].schema);
		free(p->released[i].table);
	}
	free(p->dbs);
	free(p->locks);
	free(p->released);
	free(p->k8s);
	free(p->identity_reason);
}

/* Published tables and the number of their readers. */
struct status_hold {
	_Atomic int refs;
	struct status_tables t;
};

static void hold_put(struct status_hold *h)
{
	if (h != NULL && atomic_fetch_sub(&h->refs, 1) == 1) {
		parts_free(&h->t);
		free(h);
	}
}

void status_done(struct status *st)
{
	if (st->hold != NULL)
		hold_put(st->hold);
	else
		parts_free(&st->t);
	pthread_mutex_destroy(&st->mu);
	memset(st, 0, sizeof(*st));
}

void status_view_get(struct status *st, struct status *view)
{
	pthread_mutex_lock(&st->mu);
	/* A plain copy: scalars, histograms, and pointers into the held tables. */
	*view = *st;
	if (st->hold != NULL)
		atomic_fetch_add(&st->hold->refs, 1);
	pthread_mutex_unlock(&st->mu);
}

void status_view_put(struct status *view)
{
	hold_put(view->hold);
	view->hold = NULL;
}

/* strdup that tells a NULL input from a failed allocation. */
static bool copy_str(const char *s, char **out)
{
	*out = s != NULL ? strdup(s) : NULL;
	return s == NULL || *out != NULL;
}

static bool fill_lock(const struct arbiter *a, const struct arbiter_db *d,
		      const struct episode_table *t, struct status_lock *l)
{
	const struct episode *e = t->current;
	const struct episode_releases *r = &t->releases;
	bool ok = copy_str(d->label, &l->database) && copy_str(t->schema, &l->schema) &&
		  copy_str(t->table, &l->table);

	l->known = d->up;
	l->held = e != NULL;
	if (r->last_us != 0) {
		l->last_release_us = r->last_us;
		l->last_release_reason = (char *)verdict_rule_code((enum verdict_rule)r->last_rule);
		ok = ok && copy_str(r->last_lockedby, &l->last_release_lockedby) &&
		     copy_str(r->last_explanation, &l->last_release_explanation);
	}
	if (e == NULL)
		return ok;
	bool trusted = d->zone_trusted && e->granted_zone_valid && !e->zone_mismatch;
	int64_t since = trusted ? e->granted_zone_us : e->first_seen_us;
	char holder[512];

	holder_describe(&e->holder, holder, sizeof(holder));
	l->parsed = malloc(sizeof(*l->parsed));
	if (l->parsed == NULL)
		return false;
	*l->parsed = e->holder;
	l->first_seen_us = e->first_seen_us;
	l->held_seconds = d->last_poll_db_us > since
				  ? (double)(d->last_poll_db_us - since) / TIMEUTIL_S
				  : 0;
	l->held_lower_bound = !trusted;
	ok = ok && copy_str(e->lockedby, &l->lockedby) && copy_str(e->lockgranted, &l->lockgranted) &&
	     copy_str(holder, &l->holder) &&
	     copy_str(trusted ? a->cfg->lockgranted_timezone : NULL, &l->lockgranted_zone);
	if (e->judgement.judged) {
		l->verdict = verdict_state_name((enum verdict_state)e->judgement.state);
		l->reason = verdict_rule_code((enum verdict_rule)e->judgement.rule);
		ok = ok && copy_str(e->judgement.text, &l->explanation);
	}
	return ok;
}

static size_t count_tables(const struct arbiter *a, size_t *released)
{
	size_t n = 0;

	*released = 0;
	for (size_t i = 0; i < a->n_dbs; i++) {
		n += a->dbs[i].n_tables;
		for (size_t j = 0; j < a->dbs[i].n_tables; j++)
			for (int r = 0; r < EPISODE_MAX_RULES; r++)
				if (a->dbs[i].state[j].releases.by_rule[r] > 0)
					(*released)++;
	}
	return n;
}

static int build(const struct arbiter *a, struct status_tables *p)
{
	size_t n_released, n_locks = count_tables(a, &n_released), li = 0, ri = 0;
	bool ok = true;

	memset(p, 0, sizeof(*p));
	p->dbs = calloc(a->n_dbs ? a->n_dbs : 1, sizeof(*p->dbs));
	p->locks = calloc(n_locks ? n_locks : 1, sizeof(*p->locks));
	p->released = calloc(n_released ? n_released : 1, sizeof(*p->released));
	p->k8s = calloc(a->stats.n_k8s ? a->stats.n_k8s : 1, sizeof(*p->k8s));
	if (p->dbs == NULL || p->locks == NULL || p->released == NULL || p->k8s == NULL)
		ok = false;
	for (size_t i = 0; ok && i < a->n_dbs; i++) {
		const struct arbiter_db *d = &a->dbs[i];
		struct status_db *sd = &p->dbs[p->n_dbs++];

		sd->up = d->up;
		sd->leader = d->leader;
		sd->release_conflicts = d->release_conflicts;
		sd->release_errors = d->release_errors;
		sd->zone_mismatches = d->zone_mismatches;
		sd->sessions_terminated = d->sessions_terminated;
		sd->guard_blind = d->guard_checked && !d->guard_visible;
		sd->guard_grant = arbiter_guard_grant(d);
		sd->poll = d->poll;
		ok = copy_str(d->label, &sd->label) && copy_str(d->up ? NULL : d->last_error, &sd->error);
		for (size_t j = 0; ok && j < d->n_tables; j++) {
			const struct episode_table *t = &d->state[j];
			ok = fill_lock(a, d, t, &p->locks[li]);
			li++;
			for (int r = 0; ok && r < EPISODE_MAX_RULES; r++) {
				if (t->releases.by_rule[r] == 0)
					continue;
				struct status_release_count *rc = &p->released[ri++];
				rc->reason = verdict_rule_code((enum verdict_rule)r);
				rc->count = t->releases.by_rule[r];
				ok = copy_str(d->label, &rc->database) && copy_str(t->schema, &rc->schema) &&
				     copy_str(t->table, &rc->table);
			}
		}
	}
	p->n_locks = li;
	p->n_released = ri;
	for (size_t i = 0; ok && i < a->stats.n_k8s; i++) {
		p->k8s[i].verb = status_k8s_verbs[a->stats.k8s[i].verb];
		p->k8s[i].code = a->stats.k8s[i].code;
		p->k8s[i].count = a->stats.k8s[i].count;
		p->n_k8s++;
	}
	ok = ok && copy_str(a->identity_reason, &p->identity_reason);
	if (!ok) {
		parts_free(p);
		return -ENOMEM;
	}
	return 0;
}

int status_publish(struct status *st, const struct arbiter *a)
{
	struct status_tables fresh;
	struct status_hold *h = NULL, *old = NULL;
	int rc = build(a, &fresh);

	if (rc == 0 && (h = calloc(1, sizeof(*h))) == NULL) {
		parts_free(&fresh);
		rc = -ENOMEM;
	}
	if (rc == 0) {
		atomic_init(&h->refs, 1);
		h->t = fresh;
		pthread_mutex_lock(&st->mu);
		if (st->hold == NULL)
			parts_free(&st->t); /* the tables of status_init: empty */
		old = st->hold;
		st->hold = h;
		st->t = fresh;
		st->kubernetes_configured = a->k8s != NULL;
		st->kubernetes_up = a->k8s != NULL && a->stats.kubernetes_up;
		st->identity_required = a->identity_required;
		st->identity_ok = a->identity_ok;
		st->events_posted = a->stats.events_posted;
		st->events_failed = a->stats.events_failed;
		memcpy(st->k8s_duration, a->stats.k8s_duration, sizeof(st->k8s_duration));
		st->release_delay = a->stats.release_delay;
		st->watches_open = watches_open(&a->watches);
		{
			const uint64_t *by = a->watches.events_by_type;
			st->watch_events[0] = by[K8S_WATCH_POD];
			st->watch_events[1] = by[K8S_WATCH_DELETED];
			st->watch_events[2] = by[K8S_WATCH_BOOKMARK];
			st->watch_events[3] = by[K8S_WATCH_EXPIRED] + by[K8S_WATCH_ERROR];
		}
		pthread_mutex_unlock(&st->mu);
		hold_put(old); /* freed now, or by the last renderer still reading it */
	}
	atomic_store(&st->heartbeat_mono_us, timeutil_mono_us());
	return rc;
}

bool status_healthy(const struct status *st, int64_t now_mono_us)
{
	int64_t beat = atomic_load(&((struct status *)st)->heartbeat_mono_us);
	int64_t limit = 3 * st->poll_interval_us;

	if (limit < 10 * TIMEUTIL_S)
		limit = 10 * TIMEUTIL_S;
	return beat != 0 && now_mono_us - beat <= limit;
}

bool status_ready(const struct status *st, char *why, size_t cap)
{
	if (st->t.n_dbs == 0) {
		snprintf(why, cap, "no cycle completed yet");
		return false;
	}
	for (size_t i = 0; i < st->t.n_dbs; i++) {
		if (!st->t.dbs[i].up) {
			snprintf(why, cap, "database %s is not connected: %s", st->t.dbs[i].label,
				 st->t.dbs[i].error != NULL ? st->t.dbs[i].error : "");
			return false;
		}
	}
	if (st->identity_required && !st->identity_ok) {
		snprintf(why, cap, "cluster identity not confirmed: %s",
			 st->t.identity_reason != NULL ? st->t.identity_reason : "");
		return false;
	}
	/* Ready, but say what the session guard cannot see (DESIGN.md section 6). */
	snprintf(why, cap, "ok");
	for (size_t i = 0; i < st->t.n_dbs; i++) {
		if (st->t.dbs[i].guard_blind) {
			snprintf(why, cap,
				 "ok; session guard on %s cannot see other roles' sessions (grant "
				 "%s)",
				 st->t.dbs[i].label, st->t.dbs[i].guard_grant);
			break;
		}
	}
	return true;
}
