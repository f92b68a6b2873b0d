#include "report.h"

#include "text.h"
#include "timeutil.h"
#include "verdict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void add_str(cJSON *o, const char *key, const char *val)
{
	char *clean;

	if (val == NULL) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	clean = text_utf8_clean(val);
	cJSON_AddStringToObject(o, key, clean != NULL ? clean : "");
	free(clean);
}

static cJSON *holder_json(const struct holder *h)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	switch (h->kind) {
	case HOLDER_POD:
		add_str(o, "kind", "pod");
		add_str(o, "namespace", h->ns);
		add_str(o, "pod", h->pod);
		break;
	case HOLDER_HOST: {
		cJSON *c = cJSON_AddArrayToObject(o, "candidates");
		add_str(o, "kind", "host");
		add_str(o, "host", h->host);
		add_str(o, "address", h->addr);
		for (size_t i = 0; c != NULL && i < h->n_candidates; i++) {
			cJSON *ci = cJSON_CreateObject();
			if (ci == NULL)
				break;
			add_str(ci, "namespace",
			        h->candidates[i].ns[0] ? h->candidates[i].ns : NULL);
			add_str(ci, "pod", h->candidates[i].name);
			cJSON_AddItemToArray(c, ci);
		}
		break;
	}
	default:
		add_str(o, "kind", "unresolvable");
		add_str(o, "reason", h->why);
		break;
	}
	return o;
}

/*
 * How long the lock has been held as far as we can tell: from the grant
 * when LOCKGRANTED is trusted, otherwise from the first poll that saw it
 * (a lower bound).
 */
static int64_t held_for(const struct arbiter_db *d, const struct episode *e, bool *lower_bound,
                        int64_t skew)
{
	bool trusted = d->zone_trusted && e->granted_zone_valid && !e->zone_mismatch;
	int64_t since = trusted ? e->granted_zone_us : e->first_seen_us;

	(void)skew;
	*lower_bound = !trusted;
	return d->last_poll_db_us > since ? d->last_poll_db_us - since : 0;
}

static cJSON *table_json(const struct arbiter *a, const struct arbiter_db *d,
                         const struct episode_table *t)
{
	cJSON *o = cJSON_CreateObject();
	const struct episode *e = t->current;
	char buf[64];

	if (o == NULL)
		return NULL;
	add_str(o, "database", d->label);
	add_str(o, "schema", t->schema);
	add_str(o, "table", t->table);
	add_str(o, "state", !d->up ? "unknown" : e != NULL ? "held" : "free");
	if (e == NULL)
		return o;
	add_str(o, "locked_by", e->lockedby);
	add_str(o, "lock_granted", e->lockgranted);
	timeutil_format_rfc3339(e->first_seen_us, buf, sizeof(buf));
	add_str(o, "first_seen", buf);
	bool lower;
	int64_t held = held_for(d, e, &lower, a->cfg->clock_skew_us);
	cJSON_AddNumberToObject(o, "held_for_seconds", (double)held / TIMEUTIL_S);
	cJSON_AddBoolToObject(o, "held_for_is_lower_bound", lower);
	cJSON_AddItemToObject(o, "holder", holder_json(&e->holder));
	if (e->judgement.judged) {
		add_str(o, "verdict", verdict_state_name((enum verdict_state)e->judgement.state));
		add_str(o, "reason", verdict_rule_code((enum verdict_rule)e->judgement.rule));
		add_str(o, "explanation", e->judgement.text);
	} else {
		cJSON_AddNullToObject(o, "verdict");
	}
	return o;
}

cJSON *report_locks_json(const struct arbiter *a)
{
	cJSON *arr = cJSON_CreateArray();

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < a->n_dbs; i++) {
		const struct arbiter_db *d = &a->dbs[i];
		for (size_t j = 0; j < d->n_tables; j++) {
			cJSON *o = table_json(a, d, &d->state[j]);
			if (o == NULL) {
				cJSON_Delete(arr);
				return NULL;
			}
			cJSON_AddItemToArray(arr, o);
		}
	}
	return arr;
}

int report_json(const struct arbiter *a, FILE *out)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *dbs = cJSON_AddArrayToObject(root, "databases");
	cJSON *locks = report_locks_json(a);
	char *s;

	if (root == NULL || dbs == NULL || locks == NULL) {
		cJSON_Delete(root);
		cJSON_Delete(locks);
		return -ENOMEM;
	}
	for (size_t i = 0; i < a->n_dbs; i++) {
		const struct arbiter_db *d = &a->dbs[i];
		cJSON *o = cJSON_CreateObject();
		if (o == NULL)
			break;
		add_str(o, "database", d->label);
		cJSON_AddBoolToObject(o, "up", d->up);
		add_str(o, "error", d->up ? NULL : d->last_error);
		cJSON_AddNumberToObject(o, "lock_tables", (double)d->n_tables);
		cJSON_AddItemToArray(dbs, o);
	}
	cJSON_AddItemToObject(root, "locks", locks);
	cJSON_AddBoolToObject(root, "kubernetes_configured", a->k8s != NULL);
	cJSON_AddBoolToObject(root, "cluster_identity_ok", a->identity_ok);
	add_str(root, "cluster_identity", a->identity_reason);
	s = cJSON_Print(root);
	cJSON_Delete(root);
	if (s == NULL)
		return -ENOMEM;
	fprintf(out, "%s\n", s);
	free(s);
	return 0;
}

static void text_table(const struct arbiter *a, const struct arbiter_db *d,
                       const struct episode_table *t, FILE *out)
{
	const struct episode *e = t->current;
	char q[1100], buf[512];
	bool lower;

	fprintf(out, "  %s.%s: %s\n", t->schema, t->table, e != NULL ? "held" : "free");
	if (e == NULL)
		return;
	text_quote(e->lockedby, q, sizeof(q));
	fprintf(out, "    locked by:  %s\n", q);
	if (e->lockgranted == NULL)
		fprintf(out, "    granted:    null\n");
	else if (d->zone_trusted && e->granted_zone_valid && !e->zone_mismatch)
		fprintf(out, "    granted:    %s (%s)\n", e->lockgranted,
		        a->cfg->lockgranted_timezone);
	else
		fprintf(out, "    granted:    %s (writer's time zone unknown: not trusted)\n",
		        e->lockgranted);
	timeutil_format_duration(held_for(d, e, &lower, a->cfg->clock_skew_us), buf, sizeof(buf));
	fprintf(out, "    held for:   %s%s\n", lower ? "at least " : "", buf);
	holder_describe(&e->holder, buf, sizeof(buf));
	fprintf(out, "    holder:     %s\n", buf);
	if (e->judgement.judged)
		fprintf(out, "    verdict:    %s [%s]\n", e->judgement.text,
			verdict_rule_code((enum verdict_rule)e->judgement.rule));
}

void report_text(const struct arbiter *a, FILE *out)
{
	if (a->k8s == NULL)
		fprintf(out, "no Kubernetes API configured: verdicts cannot name a dead holder\n");
	for (size_t i = 0; i < a->n_dbs; i++) {
		const struct arbiter_db *d = &a->dbs[i];

		if (!d->up) {
			fprintf(out, "%s: unreachable: %s\n", d->label, d->last_error);
			continue;
		}
		fprintf(out, "%s: %zu lock table%s\n", d->label, d->n_tables,
		        d->n_tables == 1 ? "" : "s");
		for (size_t j = 0; j < d->n_tables; j++)
			text_table(a, d, &d->state[j], out);
	}
}
