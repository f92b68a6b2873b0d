/*
 * The session guard (DESIGN.md section 6), table-driven: which sessions of
 * a dead holder keep its lock, what the verdict then says, and which of
 * them --terminate-orphaned-sessions may end. Each row names its rule.
 */
#include "guard.h"

#include "timeutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define S TIMEUTIL_S
#define DEATH (INT64_C(1795514700) * S) /* the holder's death as the API records it */
#define SKEW (5 * S)
#define AT(sec) (DEATH + (int64_t)(sec) * S)
#define UNKNOWN_START INT64_MIN

struct srow {
	int64_t started; /* seconds from DEATH; UNKNOWN_START: backend_start unknown */
	const char *addr;
	const char *state; /* NULL: "active" */
	/*
	 * bounded (MySQL/MariaDB): started is only an upper bound, and after
	 * the lower one (UNKNOWN_START: none). Otherwise the start is exact
	 * (PostgreSQL's backend_start): both bounds are started.
	 */
	bool bounded;
	int64_t after;
};

struct row {
	const char *rule;
	struct srow s[3];
	size_t n;
	const char *list_error;
	bool blind, require;
	enum verdict_state want;
	enum verdict_rule want_rule;
	const char *want_text;
	size_t want_blocking;
};

#define IP "10.244.1.17"

static const struct row rows[] = {
	{"6 guard: a session begun before the death keeps the lock", {{-300, IP, NULL, false, 0}}, 1, NULL, false,
	 false, VERDICT_HELD, VERDICT_HELD_SESSION_ALIVE, "session pid 100 from " IP, 1},
	{"6 guard: a session begun within the clock skew after the death keeps the lock",
	 {{4, IP, NULL, false, 0}}, 1, NULL, false, false, VERDICT_HELD, VERDICT_HELD_SESSION_ALIVE, NULL, 1},
	{"6 guard: a session begun after the death plus skew belongs to the address's new owner",
	 {{6, IP, NULL, false, 0}}, 1, NULL, false, false, VERDICT_ORPHANED, VERDICT_O1_POD_DELETED, NULL, 0},
	{"6 guard: a session whose start is unknown cannot be placed after the death",
	 {{UNKNOWN_START, IP, NULL, false, 0}}, 1, NULL, false, false, VERDICT_HELD, VERDICT_HELD_SESSION_ALIVE,
	 "begun an unknown time", 1},
	{"6 guard: an idle session (no transaction open) commits nothing and keeps nothing",
	 {{-300, IP, "idle", false, 0}}, 1, NULL, false, false, VERDICT_ORPHANED, VERDICT_O1_POD_DELETED,
	 NULL, 0},
	{"6 guard: an idle-in-transaction session keeps the lock",
	 {{-300, IP, "idle in transaction", false, 0}}, 1, NULL, false, false, VERDICT_HELD,
	 VERDICT_HELD_SESSION_ALIVE, "idle in transaction", 1},
	{"6 guard: no session: the release goes on", {{0, NULL, NULL, false, 0}}, 0, NULL, false, false,
	 VERDICT_ORPHANED, VERDICT_O1_POD_DELETED, NULL, 0},
	{"6 guard: the verdict counts every blocking session, names the first",
	 {{60, IP, NULL, false, 0}, {-10, IP, NULL, false, 0}, {-20, "10.244.1.18", NULL, false, 0}}, 3, NULL, false, false, VERDICT_HELD,
	 VERDICT_HELD_SESSION_ALIVE, "pid 101 from " IP, 2},
	{"6 guard: sessions that cannot be listed keep the lock", {{0, NULL, NULL, false, 0}}, 0,
	 "sessions: timed out", false, false, VERDICT_HELD, VERDICT_HELD_SESSION_UNKNOWN,
	 "cannot be listed: sessions: timed out", 0},
	{"6 guard: blind with --session-guard require keeps the lock", {{0, NULL, NULL, false, 0}}, 0, NULL, true,
	 true, VERDICT_HELD, VERDICT_HELD_SESSION_UNKNOWN, "pg_read_all_stats", 0},
	{"6 guard: blind with --session-guard on cannot hold anything", {{0, NULL, NULL, false, 0}}, 0, NULL, true,
	 false, VERDICT_ORPHANED, VERDICT_O1_POD_DELETED, NULL, 0},
	{"6 guard: a visible session keeps the lock even when others are hidden", {{-5, IP, NULL, false, 0}}, 1,
	 NULL, true, false, VERDICT_HELD, VERDICT_HELD_SESSION_ALIVE, NULL, 1},
	{"6 guard (MySQL): begun no later than 10 s before the death, no lower bound: keeps the lock",
	 {{-10, IP, NULL, true, UNKNOWN_START}}, 1, NULL, false, false, VERDICT_HELD,
	 VERDICT_HELD_SESSION_ALIVE, NULL, 1},
	{"6 guard (MySQL): begun somewhere from 1 s before to 30 s after the death: keeps the lock",
	 {{30, IP, NULL, true, -1}}, 1, NULL, false, false, VERDICT_HELD, VERDICT_HELD_SESSION_ALIVE,
	 NULL, 1},
	{"6 guard (MySQL): known to have begun after the death plus skew: the new owner's",
	 {{60, IP, NULL, true, 7}}, 1, NULL, false, false, VERDICT_ORPHANED, VERDICT_O1_POD_DELETED,
	 NULL, 0},
};

static void fill(const struct row *r, struct db_session *ss)
{
	for (size_t i = 0; i < r->n; i++) {
		memset(&ss[i], 0, sizeof(ss[i]));
		ss[i].pid = 100 + (int64_t)i;
		snprintf(ss[i].addr, sizeof(ss[i].addr), "%s", r->s[i].addr);
		snprintf(ss[i].state, sizeof(ss[i].state), "%s",
			 r->s[i].state != NULL ? r->s[i].state : "active");
		snprintf(ss[i].query, sizeof(ss[i].query), "CREATE INDEX orders_idx ON orders (id)");
		ss[i].started_us = r->s[i].started == UNKNOWN_START ? 0 : AT(r->s[i].started);
		ss[i].started_after_us = !r->s[i].bounded ? ss[i].started_us
					 : r->s[i].after == UNKNOWN_START ? 0
									  : AT(r->s[i].after);
	}
}

static void row_test(void **state)
{
	const struct row *r = *state;
	struct db_session ss[3];
	struct verdict v = {.state = VERDICT_ORPHANED, .rule = VERDICT_O1_POD_DELETED};
	struct guard_view g = {.sessions = ss, .n = r->n, .list_error = r->list_error,
			       .visible = !r->blind, .require = r->require, .death_us = DEATH,
			       .skew_us = SKEW};
	size_t blocking;

	snprintf(v.text, sizeof(v.text), "orphaned: pod shop/web-0 is gone (404 NotFound)");
	fill(r, ss);
	blocking = guard_decide(&g, &v);
	if (v.state != r->want || v.rule != r->want_rule)
		fail_msg("%s: got %s/%s: %s", r->rule, verdict_state_name(v.state),
			 verdict_rule_code(v.rule), v.text);
	if (r->want_text != NULL && strstr(v.text, r->want_text) == NULL)
		fail_msg("%s: explanation '%s' lacks '%s'", r->rule, v.text, r->want_text);
	if (blocking != r->want_blocking)
		fail_msg("%s: %zu blocking, want %zu", r->rule, blocking, r->want_blocking);
	if (strncmp(v.text, verdict_state_name(v.state), strlen(verdict_state_name(v.state))) != 0)
		fail_msg("%s: explanation '%s' does not start with the verdict", r->rule, v.text);
}

/* Only ORPHANED verdicts are guarded: a held lock stays as it is. */
static void held_is_untouched(void **state)
{
	struct db_session s = {.pid = 1, .addr = IP, .started_us = AT(-60), .started_after_us = AT(-60)};
	struct guard_view g = {.sessions = &s, .n = 1, .death_us = DEATH, .skew_us = SKEW};
	struct verdict v = {.state = VERDICT_HELD, .rule = VERDICT_HELD_CONTAINER_RUNNING};

	(void)state;
	assert_int_equal(guard_decide(&g, &v), 0);
	assert_int_equal(v.rule, VERDICT_HELD_CONTAINER_RUNNING);
}

struct trow {
	const char *rule;
	int64_t started;
	bool owners_known;
	int64_t owner_created; /* seconds from DEATH; 0: no pod has the address now */
	bool want;
	bool bounded; /* as in struct srow */
	int64_t after;
};

static const struct trow trows[] = {
	{"6 terminate: begun before the current owner's creation minus skew", -300, true, 30,
	 true, false, 0},
	{"6 terminate: begun after the owner's creation minus skew is left alone", 3, true, 6,
	 false, false, 0},
	{"6 terminate: no pod has the address: begun before the death minus skew", -60, true, 0,
	 true, false, 0},
	{"6 terminate: no owner, begun within the skew around the death: left alone", -2, true, 0,
	 false, false, 0},
	{"6 terminate: the owners could not be listed: nothing is ended", -300, false, 0, false, false, 0},
	{"6 terminate: a session the guard ignores is never ended", 60, true, 0, false, false, 0},
	{"6 terminate: an unknown start is never ended", UNKNOWN_START, true, 0, false, false, 0},
	{"6 terminate (MySQL): begun no later than 300 s before the owner, no lower bound: ended",
	 -300, true, 30, true, true, UNKNOWN_START},
	{"6 terminate (MySQL): only a lower bound is known: never ended", UNKNOWN_START, true, 30,
	 false, true, -300},
};

static void terminate_row_test(void **state)
{
	const struct trow *r = *state;
	struct db_session s = {.pid = 7, .addr = IP};
	struct guard_owner o = {.addr = IP, .created_us = AT(r->owner_created)};
	bool got;

	s.started_us = r->started == UNKNOWN_START ? 0 : AT(r->started);
	s.started_after_us = !r->bounded ? s.started_us
			     : r->after == UNKNOWN_START ? 0 : AT(r->after);
	got = guard_terminable(&s, DEATH, SKEW, &o, r->owner_created != 0 ? 1 : 0, r->owners_known);
	if (got != r->want)
		fail_msg("%s: terminable %d, want %d", r->rule, got, r->want);
}

/*
 * 6 guard: no address of the holder is known (never seen alive, NS:POD):
 * the guard sees nothing of it. on: released, and the explanation says
 * so; require: kept as held_session_unknown.
 */
static void no_address(void **state)
{
	for (int require = 0; require < 2; require++) {
		struct verdict v = {.state = VERDICT_ORPHANED, .rule = VERDICT_O1_POD_DELETED};
		struct guard_view g = {.visible = true, .require = require, .no_address = true,
				       .death_us = DEATH, .skew_us = SKEW};

		(void)state;
		snprintf(v.text, sizeof(v.text), "orphaned: pod shop/web-0 is gone (404 NotFound)");
		assert_int_equal(guard_decide(&g, &v), 0);
		if (require) {
			assert_int_equal(v.state, VERDICT_HELD);
			assert_int_equal(v.rule, VERDICT_HELD_SESSION_UNKNOWN);
			assert_non_null(strstr(v.text, "no address of the holder is known"));
		} else {
			assert_int_equal(v.state, VERDICT_ORPHANED);
			assert_int_equal(v.rule, VERDICT_O1_POD_DELETED);
			assert_non_null(strstr(v.text, "is gone (404 NotFound); session guard: no "
							"address of the holder known"));
		}
	}
}

/* Both of the guard's rules have a row here (test_verdict.c leaves them to us). */
static void both_rules_have_a_row(void **state)
{
	bool alive = false, unknown = false;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		alive = alive || rows[i].want_rule == VERDICT_HELD_SESSION_ALIVE;
		unknown = unknown || rows[i].want_rule == VERDICT_HELD_SESSION_UNKNOWN;
	}
	assert_true(alive && unknown);
}

int main(void)
{
	struct CMUnitTest tests[sizeof(rows) / sizeof(rows[0]) + sizeof(trows) / sizeof(trows[0]) +
			       3];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		tests[n++] = (struct CMUnitTest){rows[i].rule, row_test, NULL, NULL, (void *)&rows[i]};
	for (size_t i = 0; i < sizeof(trows) / sizeof(trows[0]); i++)
		tests[n++] = (struct CMUnitTest){trows[i].rule, terminate_row_test, NULL, NULL,
						 (void *)&trows[i]};
	tests[n++] = (struct CMUnitTest){"held_is_untouched", held_is_untouched, NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"6 guard: no address of the holder known", no_address, NULL,
					 NULL, NULL};
	tests[n++] = (struct CMUnitTest){"both_rules_have_a_row", both_rules_have_a_row, NULL, NULL,
					 NULL};
	return _cmocka_run_group_tests("guard", tests, n, NULL, NULL);
}
