#include "arbiter.h"

#include "identity.h"
#include "judge.h"
#include "tables.h"
#include "log.h"
#include "text.h"
#include "resolve.h"
#include "timeutil.h"
#include "verdict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void on_watch_change(void *ctx, struct holder_watch *w);

/* Called by the client after every request: counts and times it. */
static void observe_k8s(void *ctx, const char *verb, long code, int64_t duration_us)
{
	struct arbiter_stats *st = ctx;
	int v = 0;

	while (v < STATUS_K8S_VERBS - 1 && strcmp(status_k8s_verbs[v], verb) != 0)
		v++;
	size_t i;

	histogram_observe(&st->k8s_duration[v], (double)duration_us / TIMEUTIL_S);
	/*
	 * Reachable and answering: 403 is an answer; 5xx, 429, silence and a
	 * 401 (after the client retried with a fresh token) are not.
	 */
	st->kubernetes_up = code >= 200 && code < 500 && code != 429 && code != 401;
	for (i = 0; i < st->n_k8s; i++)
		if (st->k8s[i].verb == v && st->k8s[i].code == code)
			break;
	if (i == st->n_k8s) {
		if (st->n_k8s == ARBITER_K8S_CODES)
			return; /* more distinct codes than any real API gives */
		st->k8s[i].verb = v;
		st->k8s[i].code = code;
		st->k8s[i].count = 0;
		st->n_k8s++;
	}
	st->k8s[i].count++;
}

/*
 * The libraries wait through the loop when called from a task; anywhere
 * else (never, in this daemon) they poll by themselves.
 */
static int db_wait_hook(void *ctx, int fd, short events, int64_t deadline_us)
{
	struct arbiter *a = ctx;

	if (!loop_in_task(a->loop))
		return -EAGAIN;
	return loop_wait_fd(a->loop, fd, events, deadline_us);
}

static int k8s_suspend(void *ctx)
{
	struct arbiter *a = ctx;

	if (!loop_in_task(a->loop))
		return -EAGAIN;
	/* Woken by the client's source after each of its actions. */
	int r = loop_wait(a->loop, a->k8s, timeutil_mono_us() + TIMEUTIL_S);
	return r < 0 ? r : 0;
}

/* The API client's requests as a source of the loop. */
static size_t k8s_fds(void *ctx, int *fds, int *events, size_t cap)
{
	const struct arbiter *a = ctx;

	return k8s_client_fds(a->k8s, fds, events, cap);
}

static int64_t k8s_timeout(void *ctx)
{
	const struct arbiter *a = ctx;

	return k8s_client_timeout_us(a->k8s);
}

static void k8s_ready(void *ctx, const int *fds, const int *revents, size_t n)
{
	struct arbiter *a = ctx;
	bool acted = false;

	for (size_t i = 0; i < n; i++) {
		if (revents[i] != 0) {
			k8s_client_action(a->k8s, fds[i], revents[i]);
			acted = true;
		}
	}
	if (k8s_client_timeout_us(a->k8s) == 0) {
		k8s_client_action(a->k8s, -1, 0);
		acted = true;
	}
	if (acted)
		loop_wake(a->loop, a->k8s);
}

/*
 * The API client: --kube-api when given, else the in-cluster service
 * account. check may run without any API (verdicts then say so); run and
 * once may not, since they exist to release.
 */
static int make_k8s(struct arbiter *a, FILE *err)
{
	const struct cfg *cfg = a->cfg;
	struct k8s_config kc;
	char msg[256];

	k8s_config_default(&kc);
	if (cfg->test_token_reread_us > 0)
		kc.token_reread_us = cfg->test_token_reread_us;
	kc.interrupt = a->stop;
	kc.observe = observe_k8s;
	kc.observe_ctx = &a->stats;
	kc.suspend = k8s_suspend;
	kc.suspend_ctx = a;
	if (cfg->kube_api != NULL) {
		kc.api_url = strdup(cfg->kube_api);
		kc.token_file = cfg->kube_token_file ? strdup(cfg->kube_token_file) : NULL;
		kc.ca_file = cfg->kube_ca_file ? strdup(cfg->kube_ca_file) : NULL;
		if (kc.api_url == NULL || (cfg->kube_token_file && kc.token_file == NULL) ||
		    (cfg->kube_ca_file && kc.ca_file == NULL)) {
			k8s_config_done(&kc);
			fprintf(err, "lock-arbiter: out of memory\n");
			return -1;
		}
	} else if (k8s_config_in_cluster(&kc, K8S_SA_DIR, msg, sizeof(msg)) < 0) {
		k8s_config_done(&kc);
		if (cfg->mode == CFG_MODE_CHECK)
			return 0;
		fprintf(err, "lock-arbiter: no Kubernetes API: %s; give --kube-api out of cluster\n",
			msg);
		return -1;
	}
	a->k8s = k8s_client_new(&kc, msg, sizeof(msg));
	k8s_config_done(&kc);
	if (a->k8s == NULL) {
		fprintf(err, "lock-arbiter: Kubernetes API: %s\n", msg);
		return -1;
	}
	a->identity_required = cfg->pod_name != NULL && cfg->pod_namespace != NULL;
	/* Until a request says otherwise, a configured API counts as up. */
	a->stats.kubernetes_up = true;
	struct loop_source src = {k8s_fds, k8s_timeout, k8s_ready, a};
	if (loop_add_source(a->loop, &src) < 0) {
		fprintf(err, "lock-arbiter: event loop: too many sources\n");
		return -1;
	}
	return 0;
}

struct arbiter *arbiter_new(const struct cfg *cfg, const volatile sig_atomic_t *stop, FILE *err)
{
	struct arbiter *a = calloc(1, sizeof(*a));
	struct db_options o;

	if (a == NULL)
		return NULL;
	a->cfg = cfg;
	a->stop = stop;
	a->dbs = calloc(cfg->databases.n, sizeof(*a->dbs));
	a->loop = loop_new(stop);
	if (a->dbs == NULL || a->loop == NULL) {
		free(a->dbs);
		loop_free(a->loop);
		free(a);
		return NULL;
	}
	db_options_default(&o);
	o.interrupt = stop;
	o.wait = db_wait_hook;
	o.wait_ctx = a;
	for (size_t i = 0; i < cfg->databases.n; i++) {
		char msg[256];
		struct arbiter_db *d = &a->dbs[a->n_dbs];

		d->db = db_new(cfg->databases.items[i], &o, msg, sizeof(msg));
		if (d->db == NULL) {
			fprintf(err, "lock-arbiter: --database #%zu: %s\n", i + 1, msg);
			arbiter_free(a);
			return NULL;
		}
		d->label = db_label(d->db);
		d->a = a;
		histogram_init(&d->poll, histogram_latency_buckets, histogram_latency_n);
		a->n_dbs++;
	}
	for (int v = 0; v < STATUS_K8S_VERBS; v++)
		histogram_init(&a->stats.k8s_duration[v], histogram_latency_buckets,
			       histogram_latency_n);
	histogram_init(&a->stats.release_delay, histogram_delay_buckets, histogram_delay_n);
	if (make_k8s(a, err) < 0) {
		arbiter_free(a);
		return NULL;
	}
	if (cfg->mode == CFG_MODE_RUN) {
		char msg[256];
		if (watches_init(&a->watches, a->k8s, msg, sizeof(msg)) < 0 ||
		    watches_attach(&a->watches, a->loop, on_watch_change, a) < 0) {
			fprintf(err, "lock-arbiter: pod watches: %s\n", msg);
			arbiter_free(a);
			return NULL;
		}
	}
	a->identity_ok = !a->identity_required;
	if (!a->identity_required)
		snprintf(a->identity_reason, sizeof(a->identity_reason),
			 "not checked: POD_NAME and POD_NAMESPACE are not set");
	return a;
}

void arbiter_free(struct arbiter *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n_dbs; i++) {
		tables_forget(&a->dbs[i]);
		db_free(a->dbs[i].db);
	}
	free(a->dbs);
	watches_done(&a->watches);
	k8s_client_free(a->k8s);
	loop_free(a->loop);
	free(a);
}

/* Logs a database going up or down, once per change. */
static void set_up(struct arbiter_db *d, bool up, const char *why)
{
	if (!up)
		snprintf(d->last_error, sizeof(d->last_error), "%s", why);
	d->up = up;
	if (d->ever_logged && d->was_up_logged == up)
		return;
	d->ever_logged = true;
	d->was_up_logged = up;
	if (up)
		log_info("database up", "database", d->label, NULL);
	else
		log_warn("database down", "database", d->label, "error", why, NULL);
}

/*
 * Checks --lockgranted-timezone against the server once per process. Trust
 * only ever goes away: a zone that is unknown or that a fresh episode
 * contradicted stays distrusted for the life of the process, whatever
 * reconnects and rediscoveries happen (DESIGN.md section 4).
 */
static void check_zone(struct arbiter *a, struct arbiter_db *d)
{
	char err[256];
	int rc;

	if (a->cfg->lockgranted_timezone == NULL || d->zone_checked)
		return;
	rc = db_timezone_valid(d->db, a->cfg->lockgranted_timezone, err, sizeof(err));
	if (rc < 0)
		return;
	d->zone_checked = true;
	d->zone_trusted = rc == 1;
	/* MySQL knows named zones only once its zone tables are loaded. */
	if (rc == 0)
		log_error("unknown time zone: LOCKGRANTED will not be trusted", "database",
		          d->label, "lockgranted_timezone", a->cfg->lockgranted_timezone, "hint",
		          strcmp(db_kind(d->db), "mysql") == 0
		              ? "load the server's time zone tables (mariadb-tzinfo-to-sql or "
		                "mysql_tzinfo_to_sql)"
		              : "a name from pg_timezone_names",
		          NULL);
}

static void log_episode(const char *msg, const struct arbiter_db *d, const struct episode_table *t,
                        const struct episode *e)
{
	char holder[512];

	holder_describe(&e->holder, holder, sizeof(holder));
	log_info(msg, "database", d->label, "schema", t->schema, "table", t->table, "lockedby",
	         e->lockedby != NULL ? e->lockedby : "", "lockgranted",
	         e->lockgranted != NULL ? e->lockgranted : "", "holder", holder, NULL);
}

static void follow(struct arbiter *a, struct arbiter_db *d, const struct db_poll *p, int64_t mono)
{
	for (size_t i = 0; i < d->n_tables && i < p->n; i++) {
		const struct db_lock_row *row = &p->rows[i];
		struct episode_table *t = &d->state[i];
		struct episode_obs obs = {
		    .locked = row->present && row->locked,
		    .lockedby = row->lockedby,
		    .lockgranted = row->lockgranted,
		    .granted_zone_valid = row->granted_zone_valid && d->zone_trusted,
		    .granted_zone_us = row->granted_zone_us,
		};
		struct episode *ended;

		t->leader_known = row->leader_known;
		t->leader = row->leader;
		int change =
		    episode_observe(t, &obs, p->now_us, mono, a->cfg->clock_skew_us, &ended);

		if (change < 0) {
			log_error("out of memory following a lock", "database", d->label, NULL);
			continue;
		}
		if (ended != NULL)
			log_episode("lock freed", d, t, ended);
		if (change == EPISODE_STARTED || change == EPISODE_REPLACED) {
			log_episode("lock held", d, t, t->current);
			if (t->current->zone_mismatch && d->zone_trusted) {
				d->zone_trusted = false;
				d->zone_mismatches++;
				log_error("LOCKGRANTED disagrees with --lockgranted-timezone: no "
				          "longer trusted",
				          "database", d->label, "schema", t->schema, "table",
				          t->table, "lockgranted", t->current->lockgranted, NULL);
			}
		}
		episode_free(ended);
		if (t->current != NULL)
			judge_lock(a, d, i, p->now_us, mono);
	}
}

/*
 * Discovers when needed and polls. A poll that finds the catalogue's lock
 * tables changed (or a table gone under it) is followed by a discovery and
 * a second poll in the same cycle, so a new lock table is seen by the poll
 * after it appears (DESIGN.md section 4).
 */
static int read_locks(struct arbiter *a, struct arbiter_db *d, struct db_poll *p, char *err,
		      size_t cap)
{
	bool try_leader = a->cfg->leader_election == CFG_LEADER_ADVISORY;
	int rc = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!d->discovered) {
			rc = tables_discover(a, d, err, cap);
			if (rc < 0)
				return rc;
		}
		rc = db_poll(d->db, d->tables, d->n_tables,
			     d->zone_trusted ? a->cfg->lockgranted_timezone : NULL, try_leader, p,
			     err, cap);
		if (rc == 0 && !p->tables_changed)
			return 0;
		if (rc == 0) {
			/* Keep what the poll said of leadership; read again. */
			db_poll_done(p);
			rc = -ENOENT;
		}
		if (rc != -ENOENT)
			return rc;
		d->discovered = false;
	}
	return rc;
}

static int poll_db(struct arbiter *a, struct arbiter_db *d)
{
	int64_t now = timeutil_mono_us();
	struct db_poll p;
	char err[256];
	int rc;

	rc = db_ensure_connected(d->db, now, err, sizeof(err));
	if (rc == -EAGAIN)
		return rc;
	if (rc < 0) {
		set_up(d, false, err);
		return rc;
	}
	if (!db_is_leader(d->db) && d->leader) {
		d->leader = false;
		log_info("leadership lost", "database", d->label, NULL);
	}
	check_zone(a, d);
	int64_t poll_start = timeutil_mono_us();
	rc = read_locks(a, d, &p, err, sizeof(err));
	if (rc == -ENOENT)
		return rc; /* the set changed twice in a row: next cycle */
	if (rc < 0) {
		if (!db_is_connected(d->db))
			d->discovered = false;
		set_up(d, false, err);
		return rc;
	}
	histogram_observe(&d->poll, (double)(timeutil_mono_us() - poll_start) / TIMEUTIL_S);
	set_up(d, true, "");
	d->last_poll_db_us = p.now_us;
	d->last_poll_mono_us = timeutil_mono_us();
	if (db_is_leader(d->db) && !d->leader) {
		d->leader = true;
		log_info("leadership acquired", "database", d->label, NULL);
	}
	if (a->cfg->leader_election != CFG_LEADER_ADVISORY)
		d->leader = true;
	follow(a, d, &p, timeutil_mono_us());
	db_poll_done(&p);
	return 0;
}

const char *arbiter_guard_grant(const struct arbiter_db *d)
{
	return strcmp(db_kind(d->db), "mysql") == 0 ? "PROCESS" : "pg_read_all_stats";
}

/* Publishes the status for /metrics, /locks and the page, when there is one. */
void arbiter_publish(struct arbiter *a)
{
	if (a->status != NULL && status_publish(a->status, a) < 0)
		log_error("out of memory publishing the status", NULL);
}

/* A watch lives exactly as long as its episode: the others stop now. */
static void sweep_watches(struct arbiter *a)
{
	for (size_t i = 0; i < a->n_dbs; i++)
		for (size_t j = 0; j < a->dbs[i].n_tables; j++)
			if (a->dbs[i].state[j].current != NULL)
				watches_mark(&a->watches, a->dbs[i].state[j].current->serial);
	watches_sweep(&a->watches);
}

/* One database's pass, as a task: once and check run one per database at once. */
static void db_once(void *arg)
{
	struct arbiter_db *d = arg;

	d->cycle_rc = poll_db(d->a, d);
}

/* Runs the loop until every task has ended. */
static void run_tasks(struct arbiter *a)
{
	while (loop_tasks(a->loop) > 0)
		if (loop_run_once(a->loop, 100 * TIMEUTIL_MS) < 0)
			log_error("event loop: poll failed", NULL);
}

int arbiter_cycle(struct arbiter *a)
{
	int failed = 0;

	a->any_too_young = false;
	if (a->k8s != NULL && a->identity_required && loop_spawn(a->loop, "identity", identity_once, a) == 0)
		run_tasks(a);
	for (size_t i = 0; i < a->n_dbs; i++) {
		a->dbs[i].cycle_rc = -ENOMEM;
		if (!*a->stop && loop_spawn(a->loop, a->dbs[i].label, db_once, &a->dbs[i]) < 0)
			log_error("out of memory starting a database task", "database",
				  a->dbs[i].label, NULL);
	}
	run_tasks(a);
	for (size_t i = 0; i < a->n_dbs; i++)
		if (a->dbs[i].cycle_rc < 0)
			failed++;
	sweep_watches(a);
	return failed;
}

/* Sleeps until the monotonic deadline in short slices, so a signal is seen soon. */
static void sleep_until(const struct arbiter *a, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - timeutil_mono_us();
		struct timespec ts;

		if (left <= 0 || *a->stop)
			return;
		if (left > 200 * TIMEUTIL_MS)
			left = 200 * TIMEUTIL_MS;
		ts.tv_sec = (time_t)(left / TIMEUTIL_S);
		ts.tv_nsec = (long)(left % TIMEUTIL_S) * 1000;
		nanosleep(&ts, NULL);
	}
}

/*
 * A watch event changed a holder's snapshot: the database task that
 * follows the lock judges it again now, instead of at its next poll. This
 * runs in the loop, not in a task, so it only marks and wakes.
 */
static void on_watch_change(void *ctx, struct holder_watch *w)
{
	struct arbiter *a = ctx;

	for (size_t k = 0; k < a->n_dbs; k++) {
		struct arbiter_db *d = &a->dbs[k];

		for (size_t i = 0; i < d->n_tables; i++) {
			struct episode *e = d->state[i].current;
			if (e == NULL || e->serial != w->serial)
				continue;
			e->rejudge = true;
			d->rejudge = true;
			loop_wake(a->loop, d);
			return;
		}
	}
}

/*
 * Judges again the locks whose holder changed, at the database time
 * estimated from the last poll (the clock skew covers the estimate).
 */
static void rejudge(struct arbiter *a, struct arbiter_db *d)
{
	d->rejudge = false;
	if (!d->up || !db_is_connected(d->db))
		return; /* the next poll judges them */
	for (size_t i = 0; i < d->n_tables; i++) {
		const struct episode *e = d->state[i].current;
		if (e == NULL || !e->rejudge)
			continue;
		int64_t mono = timeutil_mono_us();
		judge_lock(a, d, i, d->last_poll_db_us + (mono - d->last_poll_mono_us), mono);
	}
	/* /metrics, /locks and the page show the event's verdict now. */
	arbiter_publish(a);
}

/* One database for the life of the daemon: a poll every interval, and a verdict on every event. */
static void db_task(void *arg)
{
	struct arbiter_db *d = arg;
	struct arbiter *a = d->a;
	int64_t next = timeutil_mono_us();

	while (!*a->stop) {
		poll_db(a, d);
		sweep_watches(a);
		arbiter_publish(a);
		next += a->cfg->poll_interval_us;
		/* After a slow cycle, start again now instead of catching up. */
		if (next < timeutil_mono_us())
			next = timeutil_mono_us();
		while (!*a->stop && timeutil_mono_us() < next) {
			if (d->rejudge)
				rejudge(a, d);
			else if (loop_wait(a->loop, d, next) < 0)
				return;
		}
	}
}

/*
 * --schema means two things: on PostgreSQL the schemas to watch instead of
 * every one, on MySQL/MariaDB databases to watch besides the URL's. With
 * databases of both kinds, naming a MySQL database narrows PostgreSQL's
 * discovery too, which nobody expects: say so at start.
 */
static void warn_schema_mix(const struct arbiter *a)
{
	bool pg = false, my = false;

	for (size_t i = 0; i < a->n_dbs; i++) {
		if (strcmp(db_kind(a->dbs[i].db), "mysql") == 0)
			my = true;
		else
			pg = true;
	}
	if (pg && my && a->cfg->schemas.n > 0)
		log_warn("--schema applies to every --database: on PostgreSQL it restricts the "
			 "watch to those schemas (no other schema is discovered), on MySQL/MariaDB it "
			 "adds those databases to the URL's",
			 NULL);
}

int arbiter_run(struct arbiter *a)
{
	char n[24];

	snprintf(n, sizeof(n), "%zu", a->n_dbs);
	log_info("started", "databases", n, NULL);
	if (a->cfg->test_hooks_ignored)
		log_warn("LOCK_ARBITER_TEST_INTERVALS ignored: this build has no test hooks", NULL);
	warn_schema_mix(a);
	if (a->cfg->test_identity_every_us > 0 || a->cfg->test_token_reread_us > 0)
		log_warn("test-only intervals in effect (LOCK_ARBITER_TEST_INTERVALS)", NULL);
	if (a->cfg->lockgranted_timezone != NULL)
		log_warn("LOCKGRANTED is trusted in the configured zone: a lock found held at start "
			 "is judged with it unchecked; a wrong zone can release a live lock",
			 "lockgranted_timezone", a->cfg->lockgranted_timezone, NULL);
	/* The first identity check comes before any database is judged. */
	if (a->k8s != NULL && a->identity_required) {
		if (loop_spawn(a->loop, "identity", identity_once, a) == 0)
			run_tasks(a);
		if (loop_spawn(a->loop, "identity", identity_task, a) < 0) {
			log_error("out of memory starting the identity task", NULL);
			return 1;
		}
	}
	for (size_t i = 0; i < a->n_dbs; i++) {
		if (loop_spawn(a->loop, a->dbs[i].label, db_task, &a->dbs[i]) < 0) {
			log_error("out of memory starting a database task", "database",
				  a->dbs[i].label, NULL);
			*(volatile sig_atomic_t *)a->stop = 1;
			break;
		}
	}
	arbiter_publish(a);
	run_tasks(a);
	log_info("stopping", NULL);
	return 0;
}

int arbiter_settle(struct arbiter *a)
{
	warn_schema_mix(a);
	int64_t start = timeutil_mono_us();
	int64_t deadline = start + a->cfg->min_lock_age_us + a->cfg->poll_interval_us;
	int failed = arbiter_cycle(a);

	while (a->any_too_young && !*a->stop && timeutil_mono_us() < deadline) {
		sleep_until(a, timeutil_mono_us() + a->cfg->poll_interval_us);
		failed = arbiter_cycle(a);
	}
	return failed;
}

size_t arbiter_count_orphaned(const struct arbiter *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n_dbs; i++)
		for (size_t j = 0; j < a->dbs[i].n_tables; j++) {
			const struct episode *e = a->dbs[i].state[j].current;
			if (e != NULL && e->judgement.judged &&
			    e->judgement.state == VERDICT_ORPHANED)
				n++;
		}
	return n;
}
