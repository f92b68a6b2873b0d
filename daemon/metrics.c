#include "metrics.h"

#include "text.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define P "lock_arbiter_"

static const char *const verdicts[] = {"held", "orphaned", "unresolved"};

void metrics_escape_label(const char *s, FILE *out)
{
	char *clean = text_utf8_clean(s != NULL ? s : "");

	for (const char *p = clean != NULL ? clean : ""; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '"')
			fputs("\\\"", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	free(clean);
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} with escaped values; keys and values in pairs, NULL-terminated. */
static void series(FILE *out, const char *name, const char *const *kv)
{
	fputs(name, out);
	if (kv != NULL && kv[0] != NULL) {
		fputc('{', out);
		for (size_t i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
			fprintf(out, "%s%s=\"", i ? "," : "", kv[i]);
			metrics_escape_label(kv[i + 1], out);
			fputc('"', out);
		}
		fputc('}', out);
	}
	fputc(' ', out);
}

static void value(FILE *out, double v)
{
	fprintf(out, "%.17g\n", v);
}

static void count(FILE *out, uint64_t v)
{
	fprintf(out, "%" PRIu64 "\n", v);
}

/* A family with one unlabelled series. */
static void single(FILE *out, const char *name, const char *type, const char *help, double v)
{
	family(out, name, type, help);
	series(out, name, NULL);
	value(out, v);
}

static void histogram(FILE *out, const char *name, const struct histogram *h,
		      const char *label, const char *label_value)
{
	char bucket[128], le[32];
	uint64_t cum = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (size_t i = 0; i <= h->n; i++) {
		const char *kv[] = {label, label_value, "le", le, NULL};
		const char *const *use = label != NULL ? kv : kv + 2;

		cum += i < h->n ? h->counts[i] : h->inf;
		if (i < h->n)
			snprintf(le, sizeof(le), "%.17g", h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		series(out, bucket, use);
		count(out, cum);
	}
	const char *kv[] = {label, label_value, NULL};
	snprintf(bucket, sizeof(bucket), "%s_sum", name);
	series(out, bucket, label != NULL ? kv : NULL);
	value(out, h->sum);
	snprintf(bucket, sizeof(bucket), "%s_count", name);
	series(out, bucket, label != NULL ? kv : NULL);
	count(out, h->count);
}

/* The per-database families: one series per database, labelled by it. */
static const struct db_family {
	const char *name, *type, *help;
	size_t offset; /* of the field in struct status_db */
	bool is_bool;  /* a bool field; else uint64_t */
} db_families[] = {
	{P "database_up", "gauge", "1 when the last poll of the database succeeded.",
	 offsetof(struct status_db, up), true},
	{P "leader", "gauge", "1 when this arbiter is the one that releases locks in the database.",
	 offsetof(struct status_db, leader), true},
	{P "release_conflicts_total", "counter",
	 "Releases skipped because the lock moved on between the read and the UPDATE.",
	 offsetof(struct status_db, release_conflicts), false},
	{P "release_errors_total", "counter", "Releases that failed with an error.",
	 offsetof(struct status_db, release_errors), false},
	{P "session_guard_blind", "gauge",
	 "1 when the session guard cannot see other roles' sessions (needs pg_read_all_stats, or PROCESS on MySQL).",
	 offsetof(struct status_db, guard_blind), true},
	{P "holder_sessions_terminated_total", "counter",
	 "Sessions of dead holders ended by --terminate-orphaned-sessions.",
	 offsetof(struct status_db, sessions_terminated), false},
	{P "lockgranted_timezone_mismatches_total", "counter",
	 "Locks whose LOCKGRANTED contradicted --lockgranted-timezone (it is then no longer trusted).",
	 offsetof(struct status_db, zone_mismatches), false},
};

static void render_databases(const struct status *st, FILE *out)
{
	for (size_t f = 0; f < sizeof(db_families) / sizeof(db_families[0]); f++) {
		const struct db_family *df = &db_families[f];

		family(out, df->name, df->type, df->help);
		for (size_t i = 0; i < st->t.n_dbs; i++) {
			const char *field = (const char *)&st->t.dbs[i] + df->offset;

			series(out, df->name, (const char *[]){"database", st->t.dbs[i].label, NULL});
			if (df->is_bool)
				value(out, *(const bool *)field);
			else
				count(out, *(const uint64_t *)field);
		}
	}
	family(out, P "poll_duration_seconds", "histogram",
	       "Time of one poll: every lock table of a database and now() in one round trip.");
	for (size_t i = 0; i < st->t.n_dbs; i++)
		histogram(out, P "poll_duration_seconds", &st->t.dbs[i].poll, "database",
			  st->t.dbs[i].label);
}

static void render_locks(const struct status *st, FILE *out)
{
	family(out, P "lock_held", "gauge", "1 while the lock table's lock is held.");
	for (size_t i = 0; i < st->t.n_locks; i++) {
		const struct status_lock *l = &st->t.locks[i];
		series(out, P "lock_held", (const char *[]){"database", l->database, "schema",
							   l->schema, "table", l->table, NULL});
		value(out, l->held);
	}
	family(out, P "lock_held_seconds", "gauge",
	       "How long the lock has been held: from LOCKGRANTED when its zone is trusted, else since first seen; 0 when free.");
	for (size_t i = 0; i < st->t.n_locks; i++) {
		const struct status_lock *l = &st->t.locks[i];
		series(out, P "lock_held_seconds",
		       (const char *[]){"database", l->database, "schema", l->schema, "table",
					l->table, NULL});
		value(out, l->held ? l->held_seconds : 0);
	}
	family(out, P "lock_verdict", "gauge",
	       "1 for the current verdict of a held lock (held, orphaned, unresolved).");
	for (size_t i = 0; i < st->t.n_locks; i++) {
		const struct status_lock *l = &st->t.locks[i];
		for (size_t v = 0; v < 3; v++) {
			series(out, P "lock_verdict",
			       (const char *[]){"database", l->database, "schema", l->schema,
						"table", l->table, "verdict", verdicts[v], NULL});
			value(out, l->held && l->verdict != NULL && strcmp(l->verdict, verdicts[v]) == 0);
		}
	}
	family(out, P "lock_holder_info", "gauge",
	       "Who holds a lock, as LOCKEDBY says, and why the verdict is what it is.");
	for (size_t i = 0; i < st->t.n_locks; i++) {
		const struct status_lock *l = &st->t.locks[i];
		if (!l->held)
			continue;
		series(out, P "lock_holder_info",
		       (const char *[]){"database", l->database, "schema", l->schema, "table",
					l->table, "locked_by", l->lockedby != NULL ? l->lockedby : "",
					"reason", l->reason != NULL ? l->reason : "", NULL});
		value(out, 1);
	}
	family(out, P "locks_released_total", "counter",
	       "Orphaned locks released, by the rule that proved the holder gone.");
	for (size_t i = 0; i < st->t.n_released; i++) {
		const struct status_release_count *r = &st->t.released[i];
		series(out, P "locks_released_total",
		       (const char *[]){"database", r->database, "schema", r->schema, "table",
					r->table, "reason", r->reason, NULL});
		count(out, r->count);
	}
	family(out, P "orphan_release_delay_seconds", "histogram",
	       "From the holder's death as the Kubernetes API records it to the release.");
	histogram(out, P "orphan_release_delay_seconds", &st->release_delay, NULL, NULL);
}

static void render_kubernetes(const struct status *st, FILE *out)
{
	single(out, P "kubernetes_up", "gauge", "1 when the last Kubernetes API request got an answer (not 5xx, 429 or silence).", st->kubernetes_up);
	single(out, P "cluster_identity_ok", "gauge", "1 when the API shows this arbiter's own pod (or the check does not apply).", !st->identity_required || st->identity_ok);
	family(out, P "kubernetes_requests_total", "counter",
	       "Kubernetes API requests by verb and HTTP code (0: no response).");
	for (size_t i = 0; i < st->t.n_k8s; i++) {
		char code[16];
		snprintf(code, sizeof(code), "%ld", st->t.k8s[i].code);
		series(out, P "kubernetes_requests_total",
		       (const char *[]){"verb", st->t.k8s[i].verb, "code", code, NULL});
		count(out, st->t.k8s[i].count);
	}
	family(out, P "kubernetes_request_duration_seconds", "histogram",
	       "Kubernetes API request latency by verb.");
	for (int v = 0; v < STATUS_K8S_VERBS; v++)
		histogram(out, P "kubernetes_request_duration_seconds", &st->k8s_duration[v],
			  "verb", status_k8s_verbs[v]);
	single(out, P "kubernetes_watches", "gauge", "Watches of holder pods open now.",
	       (double)st->watches_open);
	family(out, P "kubernetes_watch_events_total", "counter",
	       "Watch events of holder pods by type (pod: added or modified; error: 410 and unreadable).");
	{
		static const char *const types[4] = {"pod", "deleted", "bookmark", "error"};
		for (int i = 0; i < 4; i++) {
			series(out, P "kubernetes_watch_events_total",
			       (const char *[]){"type", types[i], NULL});
			count(out, st->watch_events[i]);
		}
	}
	family(out, P "events_total", "counter",
	       "Kubernetes Events for releases, by result (posted, failed).");
	series(out, P "events_total", (const char *[]){"result", "posted", NULL});
	count(out, st->events_posted);
	series(out, P "events_total", (const char *[]){"result", "failed", NULL});
	count(out, st->events_failed);
}

static void render_process(const struct metrics_process *p, FILE *out)
{
	single(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", p->cpu_seconds);
	single(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", p->resident_bytes);
	single(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", p->virtual_bytes);
	single(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", p->start_time_seconds);
	single(out, "process_open_fds", "gauge", "Number of open file descriptors.", p->open_fds);
	single(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", p->max_fds);
}

void metrics_render(const struct status *st, const struct metrics_process *proc, FILE *out)
{
	family(out, P "build_info", "gauge", "A metric with a constant 1, labelled by version.");
	series(out, P "build_info", (const char *[]){"version", st->version, NULL});
	value(out, 1);
	render_databases(st, out);
	render_locks(st, out);
	render_kubernetes(st, out);
	if (proc != NULL)
		render_process(proc, out);
}

/* Reads fields 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss) of /proc/self/stat. */
int metrics_process_read(struct metrics_process *p)
{
	char buf[1024], *s;
	unsigned long long utime, stime, start, vsize;
	long long rss;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	double btime = 0;
	struct rlimit rl;
	FILE *f;
	size_t n;

	memset(p, 0, sizeof(*p));
	f = fopen("/proc/self/stat", "re");
	if (f == NULL)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: start after the last ')'. */
	s = strrchr(buf, ')');
	if (s == NULL || sscanf(s + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
				"%*d %*d %*d %llu %llu %lld",
				&utime, &stime, &start, &vsize, &rss) != 5)
		return -EINVAL;
	f = fopen("/proc/stat", "re");
	if (f != NULL) {
		char line[256];
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "btime %lf", &btime) == 1)
				break;
		fclose(f);
	}
	p->cpu_seconds = (double)(utime + stime) / (double)tick;
	p->start_time_seconds = btime + (double)start / (double)tick;
	p->virtual_bytes = (double)vsize;
	p->resident_bytes = (double)rss * (double)page;
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				p->open_fds++;
		closedir(d);
		p->open_fds--; /* the directory stream itself */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (double)rl.rlim_cur;
	return 0;
}
