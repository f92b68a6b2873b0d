#include "guard.h"

#include "timeutil.h"

#include <stdio.h>
#include <string.h>

bool guard_blocks(const struct db_session *s, int64_t death_us, int64_t skew_us)
{
	/*
	 * An idle session has no transaction open: it runs nothing and can
	 * commit nothing, and it is most often the pool of a live container
	 * sharing the pod's address. Every other state (active, idle in
	 * transaction, unknown) may still hold work.
	 */
	if (strcmp(s->state, "idle") == 0)
		return false;
	/*
	 * Only a session known to have begun after the death (and the skew)
	 * belongs to someone else: one whose start is unknown, or only
	 * bounded from above, cannot be placed after it.
	 */
	return s->started_after_us == 0 || s->started_after_us < death_us + skew_us;
}

/* Termination needs the opposite bound: begun no later than started_us. */
bool guard_terminable(const struct db_session *s, int64_t death_us, int64_t skew_us,
		      const struct guard_owner *owners, size_t n_owners, bool owners_known)
{
	bool owned = false;

	if (!owners_known || s->started_us == 0 || !guard_blocks(s, death_us, skew_us))
		return false;
	for (size_t i = 0; i < n_owners; i++) {
		if (strcmp(owners[i].addr, s->addr) != 0)
			continue;
		owned = true;
		/* Two live pods never share an address: before the owner, not its session. */
		if (owners[i].created_us == 0 || s->started_us >= owners[i].created_us - skew_us)
			return false;
	}
	return owned || s->started_us < death_us - skew_us;
}

size_t guard_decide(const struct guard_view *g, struct verdict *v)
{
	size_t count = 0, first = 0;
	char t1[40], t2[32];

	if (v->state != VERDICT_ORPHANED)
		return 0;
	if (g->list_error != NULL) {
		v->state = VERDICT_HELD;
		v->rule = VERDICT_HELD_SESSION_UNKNOWN;
		snprintf(v->text, sizeof(v->text),
			 "held: orphaned, but the holder's database sessions cannot be listed: %s",
			 g->list_error);
		return 0;
	}
	for (size_t i = 0; i < g->n; i++)
		if (guard_blocks(&g->sessions[i], g->death_us, g->skew_us) && count++ == 0)
			first = i;
	if (count > 0) {
		const struct db_session *s = &g->sessions[first];

		timeutil_format_rfc3339(g->death_us, t2, sizeof(t2));
		char t0[32];
		if (s->started_us != 0)
			timeutil_format_rfc3339(s->started_us, t0, sizeof(t0));
		/* MySQL/MariaDB bound the start from above only: "begun by". */
		if (s->started_us == 0)
			snprintf(t1, sizeof(t1), "an unknown time");
		else
			snprintf(t1, sizeof(t1), "%s%s", s->started_after_us == s->started_us ? "" : "by ",
				 t0);
		v->state = VERDICT_HELD;
		v->rule = VERDICT_HELD_SESSION_ALIVE;
		snprintf(v->text, sizeof(v->text),
			 "held: the holder is gone (%s) but its session pid %lld from %s, begun %s, "
			 "is still open (%s: %.80s); %zu session%s",
			 t2, (long long)s->pid, s->addr, t1, s->state[0] ? s->state : "state unknown",
			 s->query, count, count == 1 ? "" : "s");
	} else if (!g->visible && g->require) {
		v->state = VERDICT_HELD;
		v->rule = VERDICT_HELD_SESSION_UNKNOWN;
		snprintf(v->text, sizeof(v->text),
			 "held: orphaned, but this role cannot see other roles' sessions and "
			 "--session-guard is require (grant %s)",
			 g->grant != NULL ? g->grant : "pg_read_all_stats");
	} else if (g->no_address && g->require) {
		v->state = VERDICT_HELD;
		v->rule = VERDICT_HELD_SESSION_UNKNOWN;
		snprintf(v->text, sizeof(v->text),
			 "held: orphaned, but no address of the holder is known (this arbiter never "
			 "saw its pod alive) and --session-guard is require");
	} else if (g->no_address) {
		size_t len = strlen(v->text);
		snprintf(v->text + len, sizeof(v->text) - len,
			 "; session guard: no address of the holder known (never seen alive)");
	}
	return count;
}
