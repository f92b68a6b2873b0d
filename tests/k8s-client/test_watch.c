/*
 * test_watch.c - the watch set (k8s-client/watch.h) against the simulated
 * API server (tests/k8s_sim), run through with_sim.py.
 *
 * Each test drives the simulator through its control API (restart,
 * delete, bookmark, expire, close, compact, faults, chunking) and checks
 * the events the set gives, the requests the simulator saw, and that
 * nothing stays open after a stop.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "k8s-internal.h"
#include "sim-ctl.h"

static const char *kube_url, *kube_ca, *token_file;

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct k8s_client *client(void)
{
	struct k8s_config c;
	k8s_config_default(&c);
	c.api_url = (char *)kube_url;
	c.token_file = (char *)token_file;
	c.ca_file = (char *)kube_ca;
	c.backoff_min_us = 100000;
	c.backoff_max_us = 400000;
	char err[256];
	struct k8s_client *k = k8s_client_new(&c, err, sizeof(err));
	if (k == NULL)
		fail_msg("k8s_client_new: %s", err);
	return k;
}

struct fixture {
	struct k8s_client *k;
	struct k8s_watches *ws;
};

static struct k8s_watches *watches(struct k8s_client *k, int64_t idle_us)
{
	struct k8s_watch_config wc;
	k8s_watch_config_default(&wc);
	wc.idle_us = idle_us;
	char err[256];
	struct k8s_watches *ws = k8s_watches_new(k, &wc, err, sizeof(err));
	if (ws == NULL)
		fail_msg("k8s_watches_new: %s", err);
	return ws;
}

static int setup(void **state)
{
	sim_reset();
	sim_ctl("POST", "/config", "{\"watch_chunking\":\"split\"}", NULL);
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->k = client();
	f->ws = watches(f->k, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	k8s_watches_free(f->ws);
	k8s_client_free(f->k);
	free(f);
	return 0;
}

/* Drives the set until an event comes; fails after timeout_ms. */
static void next_event(struct k8s_watches *ws, struct k8s_watch_event *ev, int timeout_ms)
{
	int64_t until = mono_us() + (int64_t)timeout_ms * 1000;
	while (k8s_watches_next(ws, ev) == 0) {
		if (mono_us() > until) {
			/* What the simulator saw, to tell a silent server from a deaf client. */
			cJSON *root;
			sim_requests(&root);
			char *t = cJSON_Print(root);
			fprintf(stderr, "%s\n", t != NULL ? t : "");
			cJSON_free(t);
			cJSON_Delete(root);
			fail_msg("no watch event within %d ms", timeout_ms);
		}
		int r = k8s_watches_poll(ws, 50000);
		assert_true(r == 0 || r == -EINTR);
	}
}

/* Expects an event of this type for id; returns it (k8s_watch_event_done it). */
static struct k8s_watch_event expect(struct k8s_watches *ws, uint64_t id, enum k8s_watch_type t)
{
	struct k8s_watch_event ev;
	next_event(ws, &ev, 10000);
	if (ev.type != t || ev.id != id)
		fail_msg("expected %s for %llu, got %s for %llu (%s: %s)", k8s_watch_type_name(t),
		         (unsigned long long)id, k8s_watch_type_name(ev.type),
		         (unsigned long long)ev.id, ev.result.reason, ev.result.message);
	assert_null(strstr(ev.result.message, "Bearer"));
	return ev;
}

/* Drives the set for ms and expects no event. */
static void expect_quiet(struct k8s_watches *ws, int ms)
{
	int64_t until = mono_us() + (int64_t)ms * 1000;
	struct k8s_watch_event ev;
	while (mono_us() < until) {
		k8s_watches_poll(ws, 20000);
		if (k8s_watches_next(ws, &ev) == 1)
			fail_msg("unexpected %s for %llu (%s)", k8s_watch_type_name(ev.type),
			         (unsigned long long)ev.id, ev.result.reason);
	}
}

static int open_watches(void)
{
	cJSON *r;
	sim_ctl("GET", "/watches", NULL, &r);
	int n = (int)cJSON_GetObjectItemCaseSensitive(r, "open")->valuedouble;
	cJSON_Delete(r);
	return n;
}

/* Drives the set until the simulator has n watches open. */
static void wait_open(struct k8s_watches *ws, int n)
{
	int64_t until = mono_us() + 10000000;
	while (open_watches() != n) {
		if (mono_us() > until)
			fail_msg("the simulator has %d watches open, not %d", open_watches(), n);
		k8s_watches_poll(ws, 20000);
	}
}

/* Creates db/NAME (replacing any) and GETs it: the version a watch starts from. */
static void pod_at(struct k8s_client *k, const char *name, char rv[K8S_RV_MAX])
{
	char path[128], desc[256];
	snprintf(path, sizeof(path), "/pods/db/%s", name);
	cJSON *all;
	sim_ctl("GET", "/pods", NULL, &all);
	const cJSON *item;
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(all, "items"))
	{
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(item, "metadata");
		if (strcmp(cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring, name) == 0)
			sim_ctl("DELETE", path, NULL, NULL);
	}
	cJSON_Delete(all);
	snprintf(desc, sizeof(desc),
	         "{\"name\":\"%s\",\"namespace\":\"db\",\"containers\":[\"app\"]}", name);
	sim_create_pod(desc, NULL);
	struct k8s_pod p;
	struct k8s_result res;
	assert_int_equal(k8s_get_pod(k, "db", name, &p, &res), K8S_POD);
	assert_true(k8s_is_resource_version(p.resource_version));
	memcpy(rv, p.resource_version, K8S_RV_MAX);
	k8s_pod_done(&p);
}

static void restart(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/pods/db/%s/restart", name);
	sim_ctl("POST", path, "{\"container\":\"app\"}", NULL);
}

/* The pod's restart and deletion, as the watch reports them. */
static void test_modified_then_deleted(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	assert_int_equal(k8s_watch_start(f->ws, 7, "db", "db-0", rv), 0);
	assert_int_equal(k8s_watches_connected(f->ws), 1);
	restart("db-0");
	struct k8s_watch_event ev = expect(f->ws, 7, K8S_WATCH_POD);
	assert_false(ev.added);
	assert_string_equal(ev.pod.name, "db-0");
	assert_int_equal(ev.pod.containers[0].restart_count, 1);
	assert_true(strtoull(ev.resource_version, NULL, 10) > strtoull(rv, NULL, 10));
	assert_string_equal(k8s_watch_resource_version(f->ws, 7), ev.resource_version);
	char uid[64];
	memcpy(uid, ev.pod.uid, sizeof(uid));
	k8s_watch_event_done(&ev);

	sim_ctl("DELETE", "/pods/db/db-0", NULL, NULL);
	ev = expect(f->ws, 7, K8S_WATCH_DELETED);
	assert_string_equal(ev.pod.uid, uid);
	k8s_watch_event_done(&ev);

	/* The request: the documented watch of one pod, from that version. */
	cJSON *root;
	const cJSON *e, *found = NULL;
	const cJSON *log = sim_requests(&root);
	cJSON_ArrayForEach(e, log) if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "watch")))
	    found = e;
	assert_non_null(found);
	const char *path = sim_entry_str(found, "path");
	char want[128];
	snprintf(want, sizeof(want), "resourceVersion=%s&", rv);
	assert_non_null(strstr(path, "/api/v1/namespaces/db/pods?watch=1&"));
	assert_non_null(strstr(path, "fieldSelector=metadata.name%3Ddb-0&"));
	assert_non_null(strstr(path, want));
	assert_non_null(strstr(path, "allowWatchBookmarks=true"));
	const char *t = strstr(path, "timeoutSeconds=");
	assert_non_null(t);
	long secs = strtol(t + strlen("timeoutSeconds="), NULL, 10);
	assert_true(secs >= 300 && secs < 600);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(found, "auth")));
	cJSON_Delete(root);
}

static void test_bookmark(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	wait_open(f->ws, 1);
	/* A change elsewhere moves the version on; the bookmark carries it. */
	char other[K8S_RV_MAX];
	pod_at(f->k, "db-9", other);
	sim_ctl("POST", "/watches/bookmark", "{}", NULL);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_BOOKMARK);
	assert_string_equal(ev.resource_version, other);
	assert_string_equal(k8s_watch_resource_version(f->ws, 1), other);
	k8s_watch_event_done(&ev);
}

static void test_expire(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	wait_open(f->ws, 1);
	sim_ctl("POST", "/watches/expire", "{}", NULL);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_EXPIRED);
	assert_int_equal(ev.result.http_code, 410);
	assert_string_equal(ev.result.reason, "Expired");
	assert_int_equal(ev.retry_in_us, 0);
	assert_int_equal(k8s_watches_connected(f->ws), 0);
	assert_int_equal(k8s_watches_count(f->ws), 1);
	/* One terminal event, then nothing: the set does not reconnect by itself. */
	expect_quiet(f->ws, 300);
	assert_int_equal(open_watches(), 0);
}

static void test_compacted_history(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	restart("db-0");
	sim_ctl("POST", "/watches/compact", "{}", NULL);
	assert_int_equal(k8s_watch_start(f->ws, 3, "db", "db-0", rv), 0);
	struct k8s_watch_event ev = expect(f->ws, 3, K8S_WATCH_EXPIRED);
	assert_int_equal(ev.result.http_code, 410);
	assert_non_null(strstr(ev.result.message, "too old resource version"));
	/* A fresh GET's version is watchable again. */
	pod_at(f->k, "db-0", rv);
	assert_int_equal(k8s_watch_start(f->ws, 3, "db", "db-0", rv), 0);
	restart("db-0");
	k8s_watch_event_done(&ev);
	ev = expect(f->ws, 3, K8S_WATCH_POD);
	k8s_watch_event_done(&ev);
}

/* ENDED after the server's clean end or a reset; resuming loses nothing. */
static void close_and_resume(struct fixture *f, const char *mode, const char *reason)
{
	char rv[K8S_RV_MAX], body[64];
	pod_at(f->k, "db-0", rv);
	assert_int_equal(k8s_watch_start(f->ws, 5, "db", "db-0", rv), 0);
	wait_open(f->ws, 1);
	snprintf(body, sizeof(body), "{\"mode\":\"%s\"}", mode);
	sim_ctl("POST", "/watches/close", body, NULL);
	struct k8s_watch_event ev = expect(f->ws, 5, K8S_WATCH_ENDED);
	assert_string_equal(ev.result.reason, reason);
	assert_string_equal(ev.resource_version, rv);
	/* Nothing came through that connection and it lasted under 1 s: back off. */
	assert_int_equal(ev.retry_in_us, 100000);
	assert_int_equal(k8s_watches_connected(f->ws), 0);
	assert_int_equal(k8s_watch_resume(f->ws, 5), 0);
	assert_int_equal(k8s_watch_resume(f->ws, 5), -EBUSY);
	assert_int_equal(k8s_watch_resume(f->ws, 6), -ENOENT);
	/* A change while the watch was down arrives by the replay. */
	restart("db-0");
	ev = expect(f->ws, 5, K8S_WATCH_POD);
	assert_int_equal(ev.pod.containers[0].restart_count, 1);
	k8s_watch_event_done(&ev);
	cJSON *root;
	int watch_requests = 0;
	const cJSON *e, *log = sim_requests(&root);
	cJSON_ArrayForEach(e, log)
	{
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "watch")))
			continue;
		char want[128];
		snprintf(want, sizeof(want), "resourceVersion=%s&", rv);
		assert_non_null(strstr(sim_entry_str(e, "path"), want));
		watch_requests++;
	}
	assert_int_equal(watch_requests, 2);
	cJSON_Delete(root);
}

static void test_close_end(void **state)
{
	close_and_resume(*state, "end", "EndOfStream");
}

static void test_close_rst(void **state)
{
	close_and_resume(*state, "rst", "Reset");
}

static void test_several_watches(void **state)
{
	struct fixture *f = *state;
	const char *names[3] = {"db-0", "db-1", "db-2"};
	for (uint64_t i = 0; i < 3; i++) {
		char rv[K8S_RV_MAX];
		pod_at(f->k, names[i], rv);
		assert_int_equal(k8s_watch_start(f->ws, 100 + i, "db", names[i], rv), 0);
	}
	wait_open(f->ws, 3);
	assert_int_equal(k8s_watches_count(f->ws), 3);
	int fds[8], evs[8];
	assert_true(k8s_watches_fds(f->ws, fds, evs, 8) >= 3);
	for (int i = 2; i >= 0; i--)
		restart(names[i]);
	bool seen[3] = {false, false, false};
	for (int i = 0; i < 3; i++) {
		struct k8s_watch_event ev;
		next_event(f->ws, &ev, 10000);
		assert_int_equal(ev.type, K8S_WATCH_POD);
		assert_true(ev.id >= 100 && ev.id < 103);
		assert_string_equal(ev.pod.name, names[ev.id - 100]);
		seen[ev.id - 100] = true;
		k8s_watch_event_done(&ev);
	}
	assert_true(seen[0] && seen[1] && seen[2]);
	/* A stopped watch says nothing more; the others go on. */
	assert_int_equal(k8s_watch_stop(f->ws, 101), 0);
	assert_int_equal(k8s_watch_stop(f->ws, 101), -ENOENT);
	assert_null(k8s_watch_resource_version(f->ws, 101));
	wait_open(f->ws, 2);
	restart("db-1");
	restart("db-2");
	struct k8s_watch_event ev = expect(f->ws, 102, K8S_WATCH_POD);
	k8s_watch_event_done(&ev);
	expect_quiet(f->ws, 200);
}

static void test_forbidden(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	sim_add_fault("{\"type\":\"forbidden\",\"watch\":true}");
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_FAILED);
	assert_int_equal(ev.result.http_code, 403);
	assert_string_equal(ev.result.reason, "Forbidden");
	assert_non_null(strstr(ev.result.message, "cannot watch resource"));
	assert_int_equal(ev.retry_in_us, 100000);
	/* The backoff doubles with each failure, to the client's maximum. */
	int64_t want[] = {200000, 400000, 400000};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(k8s_watch_resume(f->ws, 1), 0);
		ev = expect(f->ws, 1, K8S_WATCH_FAILED);
		assert_int_equal(ev.retry_in_us, want[i]);
	}
	/* GETs are not watches: the fault does not touch them. */
	pod_at(f->k, "db-0", rv);
}

static void test_server_error_and_expired_fault(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	sim_add_fault("{\"type\":\"status\",\"code\":503,\"watch\":true,\"times\":1}");
	sim_add_fault("{\"type\":\"expired\",\"watch\":true,\"times\":1}");
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_FAILED);
	assert_int_equal(ev.result.http_code, 503);
	assert_string_equal(ev.result.reason, "ServiceUnavailable");
	assert_int_equal(k8s_watch_resume(f->ws, 1), 0);
	ev = expect(f->ws, 1, K8S_WATCH_EXPIRED);
	assert_int_equal(ev.result.http_code, 410);
}

/* A 401 re-reads the token and retries once, silently, as a GET does. */
static void test_unauthorized_once(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	sim_add_fault("{\"type\":\"unauthorized\",\"watch\":true,\"times\":1}");
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	wait_open(f->ws, 1);
	restart("db-0");
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_POD);
	k8s_watch_event_done(&ev);
	/* Twice in a row is FAILED 401. */
	sim_add_fault("{\"type\":\"unauthorized\",\"watch\":true,\"times\":2}");
	sim_ctl("POST", "/watches/close", "{\"mode\":\"end\"}", NULL);
	ev = expect(f->ws, 1, K8S_WATCH_ENDED);
	assert_int_equal(k8s_watch_resume(f->ws, 1), 0);
	ev = expect(f->ws, 1, K8S_WATCH_FAILED);
	assert_int_equal(ev.result.http_code, 401);
}

/* A malformed event line ends the stream with ERROR: GET and watch again. */
static void test_malformed_event(void **state)
{
	struct fixture *f = *state;
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	sim_add_fault("{\"type\":\"malformed\",\"variant\":\"truncated\",\"watch\":true}");
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	restart("db-0");
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_ERROR);
	assert_string_equal(ev.result.reason, "Malformed");
	assert_string_equal(ev.resource_version, rv);
	assert_int_equal(k8s_watches_connected(f->ws), 0);
}

/* With an idle limit, a watch that hears nothing ends by itself. */
static void test_idle_limit(void **state)
{
	struct fixture *f = *state;
	k8s_watches_free(f->ws);
	f->ws = watches(f->k, 1000000);
	char rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	sim_add_fault("{\"type\":\"hang\",\"watch\":true}");
	int64_t t0 = mono_us();
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_FAILED);
	assert_string_equal(ev.result.reason, "Timeout");
	assert_int_equal(ev.result.http_code, 0);
	assert_true(mono_us() - t0 < 5000000);
}

static void chunking(struct fixture *f, const char *mode)
{
	char body[64], rv[K8S_RV_MAX];
	pod_at(f->k, "db-0", rv);
	snprintf(body, sizeof(body), "{\"watch_chunking\":\"%s\"}", mode);
	sim_ctl("POST", "/config", body, NULL);
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	wait_open(f->ws, 1);
	restart("db-0");
	sim_ctl("POST", "/watches/bookmark", "{}", NULL);
	sim_ctl("DELETE", "/pods/db/db-0", NULL, NULL);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_POD);
	k8s_watch_event_done(&ev);
	ev = expect(f->ws, 1, K8S_WATCH_BOOKMARK);
	ev = expect(f->ws, 1, K8S_WATCH_DELETED);
	k8s_watch_event_done(&ev);
	sim_ctl("POST", "/watches/expire", "{}", NULL);
	ev = expect(f->ws, 1, K8S_WATCH_EXPIRED);
}

static void test_chunking_split(void **state)
{
	chunking(*state, "split");
}

static void test_chunking_byte(void **state)
{
	chunking(*state, "byte");
}

/* A caller that does not drain: the stream ends, and a resume loses nothing. */
static void test_overflow(void **state)
{
	struct fixture *f = *state;
	k8s_watches_free(f->ws);
	struct k8s_watch_config wc;
	k8s_watch_config_default(&wc);
	wc.max_queued = 2;
	char err[128], rv[K8S_RV_MAX];
	f->ws = k8s_watches_new(f->k, &wc, err, sizeof(err));
	assert_non_null(f->ws);
	pod_at(f->k, "db-0", rv);
	for (int i = 0; i < 3; i++)
		restart("db-0");
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", rv), 0);
	int64_t until = mono_us() + 10000000;
	while (k8s_watches_connected(f->ws) > 0 && mono_us() < until)
		k8s_watches_poll(f->ws, 20000);
	struct k8s_watch_event ev = expect(f->ws, 1, K8S_WATCH_POD);
	k8s_watch_event_done(&ev);
	ev = expect(f->ws, 1, K8S_WATCH_POD);
	assert_int_equal(ev.pod.containers[0].restart_count, 2);
	char second[K8S_RV_MAX];
	memcpy(second, ev.resource_version, sizeof(second));
	k8s_watch_event_done(&ev);
	ev = expect(f->ws, 1, K8S_WATCH_ENDED);
	assert_string_equal(ev.result.reason, "Overflow");
	assert_string_equal(ev.resource_version, second);
	assert_int_equal(k8s_watch_resume(f->ws, 1), 0);
	ev = expect(f->ws, 1, K8S_WATCH_POD);
	assert_int_equal(ev.pod.containers[0].restart_count, 3);
	k8s_watch_event_done(&ev);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* After stop and free, no descriptor and no server-side watch remains. */
static void test_nothing_left_after_stop(void **state)
{
	struct fixture *f = *state;
	char rv[3][K8S_RV_MAX];
	const char *names[3] = {"db-0", "db-1", "db-2"};
	for (int i = 0; i < 3; i++)
		pod_at(f->k, names[i], rv[i]);
	k8s_watches_free(f->ws);
	int before = count_fds();
	f->ws = watches(f->k, 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++)
			assert_int_equal(k8s_watch_start(f->ws, (uint64_t)i, "db", names[i], rv[i]),
			                 0);
		wait_open(f->ws, 3);
		assert_true(count_fds() >= before + 3);
		for (int i = 0; i < 3; i++)
			assert_int_equal(k8s_watch_stop(f->ws, (uint64_t)i), 0);
		assert_int_equal(k8s_watches_count(f->ws), 0);
		assert_int_equal(k8s_watches_fds(f->ws, NULL, NULL, 0), 0);
		assert_int_equal(k8s_watches_timeout_us(f->ws) >= -1, 1);
		wait_open(f->ws, 0);
	}
	k8s_watches_free(f->ws);
	assert_int_equal(count_fds(), before);
	f->ws = watches(f->k, 0);
}

static void test_invalid_arguments(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(k8s_watch_start(f->ws, 1, "DB", "db-0", "1"), -EINVAL);
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db_0", "1"), -EINVAL);
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", ""), -EINVAL);
	assert_int_equal(k8s_watch_start(f->ws, 1, "db", "db-0", "1&x=2 "), -EINVAL);
	assert_int_equal(k8s_watches_count(f->ws), 0);
	char err[128];
	struct k8s_watch_config wc;
	k8s_watch_config_default(&wc);
	wc.max_watches = 0;
	assert_null(k8s_watches_new(f->k, &wc, err, sizeof(err)));
	k8s_watches_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	kube_url = sim_need("LOCK_ARBITER_TEST_KUBE_URL");
	kube_ca = sim_need("LOCK_ARBITER_TEST_KUBE_CA");
	token_file = sim_need("LOCK_ARBITER_TEST_KUBE_TOKEN_FILE");
	sim_control = sim_need("LOCK_ARBITER_TEST_KUBE_CONTROL");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    T(test_modified_then_deleted),
	    T(test_bookmark),
	    T(test_expire),
	    T(test_compacted_history),
	    T(test_close_end),
	    T(test_close_rst),
	    T(test_several_watches),
	    T(test_forbidden),
	    T(test_server_error_and_expired_fault),
	    T(test_unauthorized_once),
	    T(test_malformed_event),
	    T(test_idle_limit),
	    T(test_chunking_split),
	    T(test_chunking_byte),
	    T(test_overflow),
	    T(test_nothing_left_after_stop),
	    T(test_invalid_arguments),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return failed;
}
