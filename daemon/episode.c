#include "episode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool same_episode(const struct episode *e, const struct episode_obs *o)
{
	return same_str(e->lockedby, o->lockedby) && same_str(e->lockgranted, o->lockgranted);
}

static int dup_nullable(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL)
		return 0;
	*out = strdup(s);
	return *out == NULL ? -ENOMEM : 0;
}

int episode_table_init(struct episode_table *t, const char *schema, const char *table)
{
	memset(t, 0, sizeof(*t));
	t->schema = strdup(schema);
	t->table = strdup(table);
	if (t->schema == NULL || t->table == NULL) {
		episode_table_done(t);
		return -ENOMEM;
	}
	return 0;
}

void episode_table_done(struct episode_table *t)
{
	if (t == NULL)
		return;
	free(t->schema);
	free(t->table);
	free(t->releases.last_lockedby);
	free(t->releases.last_explanation);
	episode_free(t->current);
	memset(t, 0, sizeof(*t));
}

void episode_free(struct episode *e)
{
	if (e == NULL)
		return;
	free(e->lockedby);
	free(e->lockgranted);
	free(e);
}

static struct episode *episode_new(const struct episode_table *t, const struct episode_obs *o,
                                   int64_t db_now_us, int64_t mono_now_us, int64_t skew_us)
{
	struct episode *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	if (dup_nullable(o->lockedby, &e->lockedby) < 0 ||
	    dup_nullable(o->lockgranted, &e->lockgranted) < 0) {
		episode_free(e);
		return NULL;
	}
	static uint64_t serials;

	e->serial = ++serials;
	e->granted_zone_valid = o->granted_zone_valid;
	e->granted_zone_us = o->granted_zone_us;
	e->first_seen_us = db_now_us;
	e->first_seen_mono_us = mono_now_us;
	/*
	 * The previous successful poll saw the row free or held by another
	 * episode, so this grant happened after that poll.
	 */
	e->fresh = t->polled;
	e->grant_after_us = t->polled ? t->last_poll_us : 0;
	if (e->fresh && e->granted_zone_valid &&
	    (e->granted_zone_us < e->grant_after_us - skew_us ||
	     e->granted_zone_us > e->first_seen_us + skew_us))
		e->zone_mismatch = true;
	holder_parse(e->lockedby, &e->holder);
	return e;
}

int episode_observe(struct episode_table *t, const struct episode_obs *obs, int64_t db_now_us,
                    int64_t mono_now_us, int64_t skew_us, struct episode **ended)
{
	struct episode *old = t->current;
	enum episode_change change = EPISODE_NONE;

	*ended = NULL;
	if (!obs->locked) {
		if (old != NULL) {
			*ended = old;
			t->current = NULL;
			change = EPISODE_ENDED;
		}
	} else if (old == NULL || !same_episode(old, obs)) {
		struct episode *e = episode_new(t, obs, db_now_us, mono_now_us, skew_us);
		if (e == NULL)
			return -ENOMEM;
		*ended = old;
		t->current = e;
		change = old == NULL ? EPISODE_STARTED : EPISODE_REPLACED;
	}
	t->polled = true;
	t->last_poll_us = db_now_us;
	return change;
}

void episode_add_addr(struct episode *e, const char *ip)
{
	size_t k = 0;

	while (k < e->n_holder_addrs && strcmp(e->holder_addrs[k], ip) != 0)
		k++;
	if (k == e->n_holder_addrs && k < sizeof(e->holder_addrs) / sizeof(e->holder_addrs[0]))
		snprintf(e->holder_addrs[e->n_holder_addrs++], sizeof(e->holder_addrs[0]), "%s", ip);
}

int64_t episode_grant_before(const struct episode *e, bool trust_zone, int64_t skew_us)
{
	int64_t gb = e->first_seen_us;

	if (trust_zone && e->granted_zone_valid && !e->zone_mismatch &&
	    e->granted_zone_us + skew_us < gb)
		gb = e->granted_zone_us + skew_us;
	return gb;
}
