/*
 * Episode tracking, DESIGN.md section 4: first_seen, fresh, grant_after,
 * grant_before and the LOCKGRANTED time-zone check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "episode.h"
#include "timeutil.h"

#define S TIMEUTIL_S
#define T0 (INT64_C(1795514700) * S) /* 2026-11-24T10:05:00Z */

static const struct episode_obs FREE = {.locked = false};

static struct episode_obs held(const char *by, const char *granted)
{
	return (struct episode_obs){.locked = true, .lockedby = by, .lockgranted = granted};
}

static int observe(struct episode_table *t, struct episode_obs o, int64_t db_now)
{
	struct episode *ended = NULL;
	int rc = episode_observe(t, &o, db_now, db_now - T0, 5 * S, &ended);

	episode_free(ended);
	return rc;
}

static void first_poll_held_is_not_fresh(void **state)
{
	struct episode_table t;

	(void)state;
	assert_int_equal(episode_table_init(&t, "public", "databasechangeloglock"), 0);
	assert_int_equal(observe(&t, held("web-0 (10.0.0.1)", "2026-11-24 10:04:00.000000"), T0),
			 EPISODE_STARTED);
	assert_non_null(t.current);
	assert_false(t.current->fresh);
	assert_int_equal(t.current->first_seen_us, T0);
	assert_string_equal(t.current->lockedby, "web-0 (10.0.0.1)");
	assert_int_equal(t.current->holder.kind, HOLDER_HOST);
	/* Without a trusted zone, grant_before is first_seen. */
	assert_int_equal(episode_grant_before(t.current, false, 5 * S), T0);
	episode_table_done(&t);
}

static void held_after_free_is_fresh(void **state)
{
	struct episode_table t;

	(void)state;
	episode_table_init(&t, "public", "databasechangeloglock");
	assert_int_equal(observe(&t, FREE, T0), EPISODE_NONE);
	assert_null(t.current);
	assert_int_equal(observe(&t, held("ns:pod", NULL), T0 + 2 * S), EPISODE_STARTED);
	assert_true(t.current->fresh);
	assert_int_equal(t.current->grant_after_us, T0);
	assert_int_equal(t.current->first_seen_us, T0 + 2 * S);
	/* The same episode seen again keeps its first_seen. */
	assert_int_equal(observe(&t, held("ns:pod", NULL), T0 + 4 * S), EPISODE_NONE);
	assert_int_equal(t.current->first_seen_us, T0 + 2 * S);
	assert_int_equal(observe(&t, FREE, T0 + 6 * S), EPISODE_ENDED);
	assert_null(t.current);
	episode_table_done(&t);
}

static void new_lockgranted_is_a_new_episode(void **state)
{
	struct episode_table t;
	struct episode *ended = NULL;
	struct episode_obs o = held("ns:pod", "2026-11-24 10:05:01.000000");

	(void)state;
	episode_table_init(&t, "s", "t");
	observe(&t, o, T0);
	o = held("ns:pod", "2026-11-24 10:05:03.000000");
	assert_int_equal(episode_observe(&t, &o, T0 + 2 * S, 2 * S, 5 * S, &ended),
			 EPISODE_REPLACED);
	assert_non_null(ended);
	assert_string_equal(ended->lockgranted, "2026-11-24 10:05:01.000000");
	episode_free(ended);
	/* Held by another episode before: the new one is fresh. */
	assert_true(t.current->fresh);
	assert_int_equal(t.current->grant_after_us, T0);
	/* A different holder with the same grant time is another episode too. */
	assert_int_equal(observe(&t, held("ns:other", "2026-11-24 10:05:03.000000"), T0 + 4 * S),
			 EPISODE_REPLACED);
	/* NULL and "" are different values. */
	assert_int_equal(observe(&t, held("", "2026-11-24 10:05:03.000000"), T0 + 6 * S),
			 EPISODE_REPLACED);
	assert_int_equal(observe(&t, held(NULL, "2026-11-24 10:05:03.000000"), T0 + 8 * S),
			 EPISODE_REPLACED);
	assert_null(t.current->lockedby);
	assert_int_equal(t.current->holder.kind, HOLDER_UNRESOLVABLE);
	episode_table_done(&t);
}

static void trusted_zone_moves_grant_before_earlier(void **state)
{
	struct episode_table t;
	struct episode_obs o = held("ns:pod", "2026-11-24 10:00:00.000000");

	(void)state;
	episode_table_init(&t, "s", "t");
	o.granted_zone_valid = true;
	o.granted_zone_us = T0 - 300 * S; /* granted five minutes before we looked */
	observe(&t, o, T0);
	assert_int_equal(episode_grant_before(t.current, true, 5 * S), T0 - 295 * S);
	/* Not trusted: first_seen only. */
	assert_int_equal(episode_grant_before(t.current, false, 5 * S), T0);
	episode_table_done(&t);
}

static void lockgranted_later_than_first_seen_never_moves_it_later(void **state)
{
	struct episode_table t;
	struct episode_obs o = held("ns:pod", "x");

	(void)state;
	episode_table_init(&t, "s", "t");
	o.granted_zone_valid = true;
	o.granted_zone_us = T0 + 60 * S;
	observe(&t, o, T0);
	assert_int_equal(episode_grant_before(t.current, true, 5 * S), T0);
	episode_table_done(&t);
}

static void zone_check_on_fresh_episode(void **state)
{
	struct episode_table t;
	struct episode_obs o = held("ns:pod", "2026-11-24 05:05:01.000000");

	(void)state;
	/* A JVM in New York writes 05:05 for 10:05 UTC; read as UTC it is 5 h early. */
	episode_table_init(&t, "s", "t");
	observe(&t, FREE, T0);
	o.granted_zone_valid = true;
	o.granted_zone_us = T0 - 5 * 3600 * S + S;
	observe(&t, o, T0 + 2 * S);
	assert_true(t.current->fresh);
	assert_true(t.current->zone_mismatch);
	/* A mismatched LOCKGRANTED is ignored even when the zone is trusted. */
	assert_int_equal(episode_grant_before(t.current, true, 5 * S), T0 + 2 * S);
	episode_table_done(&t);

	/* The right zone: inside [grant_after - skew, first_seen + skew]. */
	episode_table_init(&t, "s", "t");
	observe(&t, FREE, T0);
	o.granted_zone_us = T0 + S;
	observe(&t, o, T0 + 2 * S);
	assert_false(t.current->zone_mismatch);
	assert_int_equal(episode_grant_before(t.current, true, 5 * S), T0 + 2 * S);
	episode_table_done(&t);

	/* Not fresh (first poll after a restart): no check is possible. */
	episode_table_init(&t, "s", "t");
	o.granted_zone_us = T0 - 5 * 3600 * S;
	observe(&t, o, T0);
	assert_false(t.current->zone_mismatch);
	episode_table_done(&t);
}

static void absent_row_is_free(void **state)
{
	struct episode_table t;

	(void)state;
	episode_table_init(&t, "s", "t");
	assert_int_equal(observe(&t, FREE, T0), EPISODE_NONE);
	assert_true(t.polled);
	assert_int_equal(t.last_poll_us, T0);
	episode_table_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_poll_held_is_not_fresh),
		cmocka_unit_test(held_after_free_is_fresh),
		cmocka_unit_test(new_lockgranted_is_a_new_episode),
		cmocka_unit_test(trusted_zone_moves_grant_before_earlier),
		cmocka_unit_test(lockgranted_later_than_first_seen_never_moves_it_later),
		cmocka_unit_test(zone_check_on_fresh_episode),
		cmocka_unit_test(absent_row_is_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
