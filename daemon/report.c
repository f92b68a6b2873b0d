#include "report.h"

#include "text.h"
#include "timeutil.h"

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

static void add_time(cJSON *o, const char *key, int64_t us)
{
	char buf[40];

	if (us == 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	timeutil_format_rfc3339(us, buf, sizeof(buf));
	add_str(o, key, buf);
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
			add_str(ci, "namespace", h->candidates[i].ns[0] ? h->candidates[i].ns : NULL);
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

static cJSON *lock_json(const struct status_lock *l)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	add_str(o, "database", l->database);
	add_str(o, "schema", l->schema);
	add_str(o, "table", l->table);
	add_str(o, "state", !l->known ? "unknown" : l->held ? "held" : "free");
	if (l->held) {
		add_str(o, "locked_by", l->lockedby);
		add_str(o, "lock_granted", l->lockgranted);
		add_str(o, "lock_granted_zone", l->lockgranted_zone);
		add_time(o, "first_seen", l->first_seen_us);
		cJSON_AddNumberToObject(o, "held_for_seconds", l->held_seconds);
		cJSON_AddBoolToObject(o, "held_for_is_lower_bound", l->held_lower_bound);
		if (l->parsed != NULL)
			cJSON_AddItemToObject(o, "holder", holder_json(l->parsed));
		add_str(o, "holder_description", l->holder);
		add_str(o, "verdict", l->verdict);
		add_str(o, "reason", l->reason);
		add_str(o, "explanation", l->explanation);
	}
	cJSON *r = cJSON_AddObjectToObject(o, "last_release");
	if (r != NULL && l->last_release_us != 0) {
		add_time(r, "at", l->last_release_us);
		add_str(r, "reason", l->last_release_reason);
		add_str(r, "locked_by", l->last_release_lockedby);
		add_str(r, "explanation", l->last_release_explanation);
	} else if (r != NULL) {
		cJSON_DeleteItemFromObject(o, "last_release");
		cJSON_AddNullToObject(o, "last_release");
	}
	return o;
}

cJSON *report_locks_json(const struct status *st)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; arr != NULL && i < st->t.n_locks; i++) {
		cJSON *o = lock_json(&st->t.locks[i]);
		if (o == NULL) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

int report_json(const struct status *st, FILE *out)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *dbs = cJSON_AddArrayToObject(root, "databases");
	cJSON *locks = report_locks_json(st);
	cJSON *k = cJSON_AddObjectToObject(root, "kubernetes");
	char *s;

	if (root == NULL || dbs == NULL || locks == NULL || k == NULL) {
		cJSON_Delete(root);
		cJSON_Delete(locks);
		return -ENOMEM;
	}
	for (size_t i = 0; i < st->t.n_dbs; i++) {
		const struct status_db *d = &st->t.dbs[i];
		cJSON *o = cJSON_CreateObject();
		if (o == NULL)
			break;
		add_str(o, "database", d->label);
		cJSON_AddBoolToObject(o, "up", d->up);
		cJSON_AddBoolToObject(o, "leader", d->leader);
		add_str(o, "error", d->error);
		cJSON_AddItemToArray(dbs, o);
	}
	cJSON_AddItemToObject(root, "locks", locks);
	cJSON_AddBoolToObject(k, "configured", st->kubernetes_configured);
	cJSON_AddBoolToObject(k, "up", st->kubernetes_up);
	cJSON_AddBoolToObject(k, "cluster_identity_ok", !st->identity_required || st->identity_ok);
	add_str(k, "cluster_identity", st->t.identity_reason);
	s = cJSON_Print(root);
	cJSON_Delete(root);
	if (s == NULL)
		return -ENOMEM;
	fprintf(out, "%s\n", s);
	free(s);
	return 0;
}

/* A catalogue name as is when plain, quoted and escaped when not. */
static void text_name(const char *s, FILE *out)
{
	char q[300];

	if (text_is_bare(s)) {
		fputs(s, out);
		return;
	}
	text_quote(s, q, sizeof(q));
	fputs(q, out);
}

static void text_lock(const struct status_lock *l, FILE *out)
{
	char q[1100], buf[64];

	fputs("  ", out);
	text_name(l->schema, out);
	fputc('.', out);
	text_name(l->table, out);
	fprintf(out, ": %s\n", l->held ? "held" : "free");
	if (!l->held)
		return;
	text_quote(l->lockedby, q, sizeof(q));
	fprintf(out, "    locked by:  %s\n", q);
	if (l->lockgranted == NULL)
		fprintf(out, "    granted:    null\n");
	else if (l->lockgranted_zone != NULL)
		fprintf(out, "    granted:    %s (%s)\n", l->lockgranted, l->lockgranted_zone);
	else
		fprintf(out, "    granted:    %s (writer's time zone unknown: not trusted)\n",
			l->lockgranted);
	timeutil_format_duration((int64_t)(l->held_seconds * TIMEUTIL_S), buf, sizeof(buf));
	fprintf(out, "    held for:   %s%s\n", l->held_lower_bound ? "at least " : "", buf);
	fprintf(out, "    holder:     %s\n", l->holder);
	if (l->verdict != NULL)
		fprintf(out, "    verdict:    %s [%s]\n", l->explanation, l->reason);
}

void report_text(const struct status *st, FILE *out)
{
	size_t li = 0;

	if (!st->kubernetes_configured)
		fprintf(out, "no Kubernetes API configured: verdicts cannot name a dead holder\n");
	for (size_t i = 0; i < st->t.n_dbs; i++) {
		const struct status_db *d = &st->t.dbs[i];
		size_t n = 0;

		while (li + n < st->t.n_locks && strcmp(st->t.locks[li + n].database, d->label) == 0)
			n++;
		if (!d->up) {
			fprintf(out, "%s: unreachable: %s\n", d->label, d->error ? d->error : "");
		} else {
			fprintf(out, "%s: %zu lock table%s\n", d->label, n, n == 1 ? "" : "s");
			for (size_t j = 0; j < n; j++)
				text_lock(&st->t.locks[li + j], out);
		}
		li += n;
	}
}
