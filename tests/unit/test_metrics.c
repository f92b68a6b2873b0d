/*
 * The /metrics renderer and the status page are pure functions of a struct
 * status: golden files pin their output. LOCK_ARBITER_UPDATE_GOLDEN=1
 * rewrites the files (review the diff before committing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"
#include "page.h"
#include "report.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *golden_dir;

#define HOSTILE "evil\"quote\\backslash\nnewline (10.0.0.1)"

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void compare(const char *name, const char *got, size_t len)
{
	char path[1024];
	char *want;
	size_t wlen = 0;

	snprintf(path, sizeof(path), "%s/%s", golden_dir, name);
	if (getenv("LOCK_ARBITER_UPDATE_GOLDEN") != NULL) {
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		fwrite(got, 1, len, f);
		fclose(f);
		return;
	}
	want = read_file(path, &wlen);
	if (want == NULL)
		fail_msg("golden file %s missing", path);
	if (wlen != len || memcmp(want, got, len) != 0)
		fail_msg("%s differs from the rendering:\n%s", path, got);
	free(want);
}

/* A status with two databases, a held hostile lock, releases, API requests. */
static void build(struct status *st)
{
	static struct status_db dbs[2];
	static struct status_lock locks[3];
	static struct status_release_count rel[1];
	static struct status_k8s_count k8s[3];
	static struct holder parsed;

	status_init(st, 2 * TIMEUTIL_S);
	st->version = "0.0.0-test";
	st->start_wall_us = INT64_C(1795514700) * TIMEUTIL_S;
	st->kubernetes_configured = true;
	st->kubernetes_up = true;
	st->identity_required = true;
	st->identity_ok = true;
	st->t.identity_reason = "the API shows this arbiter's pod ops/arb-0";
	st->events_posted = 2;
	st->events_failed = 1;

	memset(dbs, 0, sizeof(dbs));
	dbs[0].label = "db.example:5432/app";
	dbs[0].up = true;
	dbs[0].leader = true;
	dbs[0].release_conflicts = 1;
	histogram_init(&dbs[0].poll, histogram_latency_buckets, histogram_latency_n);
	histogram_observe(&dbs[0].poll, 0.003);
	histogram_observe(&dbs[0].poll, 0.004);
	histogram_observe(&dbs[0].poll, 7);
	dbs[1].label = "other:5433/\"quoted\"";
	dbs[1].error = "connection refused";
	histogram_init(&dbs[1].poll, histogram_latency_buckets, histogram_latency_n);

	memset(locks, 0, sizeof(locks));
	holder_parse("shop:web-0", &parsed);
	locks[0] = (struct status_lock){.database = "db.example:5432/app", .schema = "public",
					.table = "databasechangeloglock", .known = true};
	locks[1] = (struct status_lock){
		.database = "db.example:5432/app", .schema = "tenant \"a\"",
		.table = "databasechangeloglock", .known = true, .held = true,
		.lockedby = HOSTILE, .lockgranted = "2026-11-24 10:05:02.000000",
		.holder = "unresolvable: control character", .parsed = &parsed,
		.first_seen_us = INT64_C(1795514702) * TIMEUTIL_S, .held_seconds = 65.5,
		.held_lower_bound = true, .verdict = "unresolved",
		.reason = "unresolved_lockedby",
		.explanation = "unresolved: LOCKEDBY names no pod (control character)"};
	locks[2] = (struct status_lock){
		.database = "db.example:5432/app", .schema = "tenant_b",
		.table = "databasechangeloglock", .known = true, .held = true,
		.lockedby = "shop:web-0", .holder = "pod shop/web-0", .parsed = &parsed,
		.held_seconds = 3, .verdict = "held", .reason = "held_container_running",
		.explanation = "held: container app of shop/web-0 running since 10:04:59Z, "
			       "before the grant (10:05:02Z)",
		.last_release_us = INT64_C(1795514000) * TIMEUTIL_S,
		.last_release_reason = "O4_container_restarted",
		.last_release_lockedby = "shop:web-0",
		.last_release_explanation = "orphaned: container app restarted"};
	rel[0] = (struct status_release_count){"db.example:5432/app", "tenant_b",
					       "databasechangeloglock", "O4_container_restarted", 3};
	k8s[0] = (struct status_k8s_count){"get", 200, 40};
	k8s[1] = (struct status_k8s_count){"get", 404, 2};
	k8s[2] = (struct status_k8s_count){"create", 0, 1};
	histogram_observe(&st->k8s_duration[0], 0.0042);
	histogram_observe(&st->release_delay, 1.25);
	st->t.dbs = dbs;
	st->t.n_dbs = 2;
	st->t.locks = locks;
	st->t.n_locks = 3;
	st->t.released = rel;
	st->t.n_released = 1;
	st->t.k8s = k8s;
	st->t.n_k8s = 3;
}

static void render_to(void (*fn)(const struct status *, FILE *), const struct status *st,
		      const char *golden)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	fn(st, out);
	fclose(out);
	compare(golden, buf, len);
	free(buf);
}

static void metrics_with_process(const struct status *st, FILE *out)
{
	struct metrics_process p = {1.5, 6.5e6, 2e8, 1795514700, 9, 1024};
	metrics_render(st, &p, out);
}

static void page_at_fixed_time(const struct status *st, FILE *out)
{
	page_render(st, INT64_C(1795514765) * TIMEUTIL_S, out);
}

static void json_locks(const struct status *st, FILE *out)
{
	report_json(st, out);
}

static void golden_metrics_full(void **state)
{
	struct status st;

	(void)state;
	build(&st);
	render_to(metrics_with_process, &st, "metrics-full.prom");
}

static void golden_metrics_empty(void **state)
{
	struct status st;

	(void)state;
	status_init(&st, 2 * TIMEUTIL_S);
	st.version = "0.0.0-test";
	render_to(metrics_with_process, &st, "metrics-empty.prom");
	pthread_mutex_destroy(&st.mu);
}

static void golden_page_and_locks(void **state)
{
	struct status st;

	(void)state;
	build(&st);
	render_to(page_at_fixed_time, &st, "page.html");
	render_to(json_locks, &st, "locks.json");
	render_to(report_text, &st, "check.txt");
}

static void label_escaping(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	(void)state;
	metrics_escape_label("a\"b\\c\nd\xff", out);
	fclose(out);
	assert_string_equal(buf, "a\\\"b\\\\c\\nd\xef\xbf\xbd");
	free(buf);
}

static void process_figures_are_read(void **state)
{
	struct metrics_process p;

	(void)state;
	assert_int_equal(metrics_process_read(&p), 0);
	assert_true(p.resident_bytes > 0);
	assert_true(p.open_fds >= 3);
	assert_true(p.start_time_seconds > 1.7e9);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(golden_metrics_full),
		cmocka_unit_test(golden_metrics_empty),
		cmocka_unit_test(golden_page_and_locks),
		cmocka_unit_test(label_escaping),
		cmocka_unit_test(process_figures_are_read),
	};

	golden_dir = argc > 1 ? argv[1] : "golden";
	return cmocka_run_group_tests(tests, NULL, NULL);
}
