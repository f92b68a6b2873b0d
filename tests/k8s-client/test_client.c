/*
 * test_client.c - the client against the simulated API server
 * (tests/k8s_sim), run through with_sim.py, which exports
 * LOCK_ARBITER_TEST_KUBE_{URL,CA,TOKEN_FILE,SA_DIR,CONTROL,WRONG_CA}.
 *
 * Each test sets up its scenario through the simulator's plain-HTTP control
 * API (/_sim/...) and checks both what the client returned and what the
 * simulator saw (its request log).
 */
#include <errno.h>
#include <pthread.h>
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

static const char *kube_url, *kube_ca, *token_file, *sa_dir, *wrong_ca;
/* The token the simulator currently accepts (rotated by one test). */
static char current_token[128] = "lock-arbiter-test-token-1";

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the control API (sim-ctl.h) ---- */

static int n_requests(void)
{
	cJSON *root;
	int n = cJSON_GetArraySize(sim_requests(&root));
	cJSON_Delete(root);
	return n;
}

static int reset(void **state)
{
	sim_ctl("POST", "/faults/release", "{}", NULL);
	sim_ctl("DELETE", "/faults", NULL, NULL);
	sim_ctl("DELETE", "/requests", NULL, NULL);
	return 0;
}

/* ---- the client under test ---- */

#define MAX_OBS 16
struct observed {
	int calls;
	char verb[MAX_OBS][16];
	long code[MAX_OBS];
};

static void observe(void *ctx, const char *verb, long code, int64_t duration_us)
{
	struct observed *o = ctx;
	if (o->calls < MAX_OBS) {
		snprintf(o->verb[o->calls], sizeof(o->verb[0]), "%s", verb);
		o->code[o->calls] = code;
	}
	o->calls++;
	assert_true(duration_us >= 0);
}

struct opts {
	const char *ca;     /* NULL: the simulator's CA */
	bool system_ca;     /* no ca_file at all */
	int64_t timeout_us; /* 0: 3 s */
	int64_t reread_us;  /* 0: 60 s; -1: on every request */
	volatile sig_atomic_t *interrupt;
	int64_t backoff_us; /* 0: off, so each failing request reaches the API */
};

static struct k8s_client *client(const struct opts *o, struct observed *obs)
{
	struct k8s_config c;
	k8s_config_default(&c);
	c.api_url = (char *)kube_url;
	c.token_file = (char *)token_file;
	c.ca_file =
	    o != NULL && o->system_ca ? NULL : (char *)(o != NULL && o->ca ? o->ca : kube_ca);
	c.connect_timeout_us = 2000000;
	c.request_timeout_us = o != NULL && o->timeout_us > 0 ? o->timeout_us : 3000000;
	if (o != NULL && o->reread_us != 0)
		c.token_reread_us = o->reread_us < 0 ? 0 : o->reread_us;
	c.interrupt = o != NULL ? o->interrupt : NULL;
	c.backoff_min_us = o != NULL ? o->backoff_us : 0;
	c.observe = obs != NULL ? observe : NULL;
	c.observe_ctx = obs;
	char err[256];
	struct k8s_client *k = k8s_client_new(&c, err, sizeof(err));
	if (k == NULL)
		fail_msg("k8s_client_new: %s", err);
	return k;
}

/* Every result: no token inside, and http_code 0 exactly when no response came. */
static void check_clean(const struct k8s_result *r)
{
	assert_null(strstr(r->reason, current_token));
	assert_null(strstr(r->message, current_token));
	assert_null(strstr(r->message, "Bearer"));
}

/* GET db/NAME and expect UNKNOWN with this code (-1: any) and reason (NULL: any). */
static void expect_unknown(struct k8s_client *k, const char *name, long code, const char *reason)
{
	struct k8s_pod pod;
	memset(&pod, 0x77, sizeof(pod));
	struct k8s_pod before = pod;
	struct k8s_result r;
	enum k8s_outcome o = k8s_get_pod(k, "db", name, &pod, &r);
	if (o != K8S_UNKNOWN || r.outcome != K8S_UNKNOWN || (code >= 0 && r.http_code != code) ||
	    (reason != NULL && strcmp(r.reason, reason) != 0))
		fail_msg("expected UNKNOWN %ld %s, got outcome %d code %ld reason \"%s\" (%s)",
		         code, reason != NULL ? reason : "*", o, r.http_code, r.reason, r.message);
	assert_memory_equal(&pod, &before, sizeof(pod));
	check_clean(&r);
}

/* ---- scenarios ---- */

static char db0_uid[64];

static int group_setup(void **state)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sim_create_pod("{\"name\":\"db-0\",\"namespace\":\"db\",\"containers\":[\"app\"],"
	           "\"initContainers\":[{\"name\":\"proxy\",\"restartPolicy\":\"Always\"}],"
	           "\"holderContainer\":\"app\",\"podIP\":\"10.20.0.5\"}",
	           db0_uid);
	return 0;
}

static void test_get_pod(void **state)
{
	struct observed obs = {0};
	struct k8s_client *k = client(NULL, &obs);
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	assert_int_equal(r.outcome, K8S_POD);
	assert_int_equal(r.http_code, 200);
	assert_string_equal(pod.name, "db-0");
	assert_string_equal(pod.ns, "db");
	assert_string_equal(pod.uid, db0_uid);
	assert_string_equal(pod.phase, "Running");
	assert_true(pod.created > 0);
	assert_int_equal(pod.deleting, 0);
	assert_int_equal(pod.n_pod_ips, 1);
	assert_string_equal(pod.pod_ips[0], "10.20.0.5");
	assert_string_equal(pod.holder_container, "app");
	assert_int_equal(pod.n_containers, 2);
	const struct k8s_container *app = &pod.containers[0], *proxy = &pod.containers[1];
	assert_string_equal(app->name, "app");
	assert_false(app->init);
	assert_int_equal(app->state, K8S_CSTATE_RUNNING);
	assert_true(app->started_at >= pod.created);
	assert_int_equal(app->restart_count, 0);
	assert_true(app->container_id[0] != '\0');
	assert_string_equal(proxy->name, "proxy");
	assert_true(proxy->init);
	assert_true(proxy->restart_always);
	assert_int_equal(proxy->state, K8S_CSTATE_RUNNING);
	k8s_pod_done(&pod);

	/* A restart shows as a new instance with a termination record. */
	sim_ctl("POST", "/pods/db/db-0/restart", "{\"container\":\"app\"}", NULL);
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	assert_int_equal(pod.containers[0].restart_count, 1);
	assert_true(pod.containers[0].last_terminated);
	assert_int_equal(pod.containers[0].last_exit_code, 137);
	k8s_pod_done(&pod);

	assert_int_equal(obs.calls, 2);
	assert_string_equal(obs.verb[0], "get");
	assert_int_equal(obs.code[0], 200);

	/* What went on the wire. */
	cJSON *root;
	cJSON *log = sim_requests(&root);
	assert_int_equal(cJSON_GetArraySize(log), 2);
	const cJSON *e = cJSON_GetArrayItem(log, 0);
	assert_string_equal(sim_entry_str(e, "method"), "GET");
	assert_string_equal(sim_entry_str(e, "path"), "/api/v1/namespaces/db/pods/db-0");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "auth")));
	assert_string_equal(sim_entry_str(e, "user_agent"), "lock-arbiter/0.1.0");
	assert_string_equal(sim_entry_str(e, "accept"), "application/json");
	cJSON_Delete(root);
	k8s_client_free(k);
}

static void test_gone(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "nope-0", &pod, &r), K8S_GONE);
	assert_int_equal(r.http_code, 404);
	assert_string_equal(r.reason, "NotFound");
	assert_non_null(strstr(r.message, "\"nope-0\" not found"));

	/* Alive, then deleted: GONE. */
	sim_create_pod("{\"name\":\"gone-0\",\"namespace\":\"db\",\"containers\":[\"app\"]}", NULL);
	assert_int_equal(k8s_get_pod(k, "db", "gone-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);
	sim_ctl("DELETE", "/pods/db/gone-0", NULL, NULL);
	assert_int_equal(k8s_get_pod(k, "db", "gone-0", &pod, &r), K8S_GONE);
	/* A missing namespace is a missing pod, as the API words it. */
	assert_int_equal(k8s_get_pod(k, "no-such-ns", "db-0", &pod, &r), K8S_GONE);
	k8s_client_free(k);
}

/* A 404 is GONE only with a NotFound Status about this very pod. */
static void test_404_that_is_not_gone(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	/* A proxy's HTML page. */
	sim_add_fault(
	    "{\"type\":\"status\",\"code\":404,\"path\":\"/pods/db-0$\","
	    "\"body\":\"<html><body>404 Not Found</body></html>\",\"content_type\":\"text/html\"}");
	expect_unknown(k, "db-0", 404, "HTTP404");
	sim_ctl("DELETE", "/faults", NULL, NULL);
	/* The generic "could not find the requested resource": a wrong path, not a pod. */
	sim_add_fault("{\"type\":\"status\",\"code\":404,\"path\":\"/pods/db-0$\",\"content_type\":"
	          "\"application/json\",\"body\":\"{\\\"kind\\\":\\\"Status\\\",\\\"apiVersion\\\":"
	          "\\\"v1\\\",\\\"metadata\\\":{},\\\"status\\\":\\\"Failure\\\",\\\"message\\\":"
	          "\\\"the server could not find the requested resource\\\",\\\"reason\\\":"
	          "\\\"NotFound\\\",\\\"details\\\":{},\\\"code\\\":404}\"}");
	expect_unknown(k, "db-0", 404, "NotFound");
	sim_ctl("DELETE", "/faults", NULL, NULL);
	/* NotFound about another object. */
	sim_add_fault("{\"type\":\"status\",\"code\":404,\"path\":\"/pods/db-0$\",\"content_type\":"
	          "\"application/json\",\"body\":\"{\\\"kind\\\":\\\"Status\\\",\\\"reason\\\":"
	          "\\\"NotFound\\\",\\\"details\\\":{\\\"name\\\":\\\"db-1\\\",\\\"kind\\\":"
	          "\\\"pods\\\"},\\\"code\\\":404}\"}");
	expect_unknown(k, "db-0", 404, "NotFound");
	sim_ctl("DELETE", "/faults", NULL, NULL);
	/* Malformed JSON with a 404. */
	sim_add_fault(
	    "{\"type\":\"status\",\"code\":404,\"path\":\"/pods/db-0$\",\"content_type\":"
	    "\"application/json\",\"body\":\"{\\\"kind\\\":\\\"Status\\\",\\\"reason\\\":\"}");
	expect_unknown(k, "db-0", 404, "HTTP404");
	k8s_client_free(k);
}

static void test_forbidden(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	sim_add_fault("{\"type\":\"forbidden\"}");
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_UNKNOWN);
	assert_int_equal(r.http_code, 403);
	assert_string_equal(r.reason, "Forbidden");
	assert_non_null(strstr(r.message, "cannot get resource \"pods\""));
	/* Not a 401: no token re-read, no retry. */
	assert_int_equal(n_requests(), 1);
	k8s_client_free(k);
}

/* Writes the token file the way a rotation replaces it: a new file renamed over it. */
static void rotate_token(const char *tok)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s/.token.tmp", sa_dir);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", tok);
	fclose(f);
	assert_int_equal(rename(tmp, token_file), 0);
	snprintf(current_token, sizeof(current_token), "%s", tok);
}

static void test_token_rotation(void **state)
{
	struct observed obs = {0};
	struct k8s_client *k = client(NULL, &obs); /* re-read every 60 s: not before the 401 */
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);

	rotate_token("lock-arbiter-test-token-2");
	sim_ctl("DELETE", "/requests", NULL, NULL);
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);
	/* The old token got a 401, the re-read one a 200, on one call. */
	assert_int_equal(obs.calls, 3);
	assert_int_equal(obs.code[1], 401);
	assert_int_equal(obs.code[2], 200);
	cJSON *root;
	cJSON *log = sim_requests(&root);
	assert_int_equal(cJSON_GetArraySize(log), 2);
	assert_int_equal(sim_entry_num(cJSON_GetArrayItem(log, 0), "status"), 401);
	assert_string_equal(sim_entry_str(cJSON_GetArrayItem(log, 0), "auth_detail"), "invalid");
	assert_int_equal(sim_entry_num(cJSON_GetArrayItem(log, 1), "status"), 200);
	assert_string_equal(sim_entry_str(cJSON_GetArrayItem(log, 1), "auth_detail"), "current");
	cJSON_Delete(root);

	/* A 401 that persists: one retry, then UNKNOWN. */
	sim_add_fault("{\"type\":\"unauthorized\"}");
	sim_ctl("DELETE", "/requests", NULL, NULL);
	expect_unknown(k, "db-0", 401, "Unauthorized");
	assert_int_equal(n_requests(), 2);
	k8s_client_free(k);
}

static void test_token_reread_failure_keeps_old(void **state)
{
	struct opts o = {.reread_us = -1}; /* re-read before every request */
	struct k8s_client *k = client(&o, NULL);
	struct k8s_pod pod;
	struct k8s_result r;
	/* The file disappears (a botched rotation): the token in memory still works. */
	assert_int_equal(unlink(token_file), 0);
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);
	/* A file that is no token (empty) changes nothing either. */
	rotate_token("");
	snprintf(current_token, sizeof(current_token), "lock-arbiter-test-token-2");
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);
	rotate_token("lock-arbiter-test-token-2");
	/* And with the reread interval at 0, a new token is picked up without any 401. */
	rotate_token("lock-arbiter-test-token-3");
	sim_ctl("DELETE", "/requests", NULL, NULL);
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);
	assert_int_equal(n_requests(), 1);
	k8s_client_free(k);
}

static void test_server_errors(void **state)
{
	struct observed obs = {0};
	struct k8s_client *k = client(NULL, &obs);
	static const struct {
		const char *fault;
		long code;
		const char *reason;
	} rows[] = {
	    {"{\"type\":\"status\",\"code\":500}", 500, "InternalError"},
	    {"{\"type\":\"status\",\"code\":429}", 429, "TooManyRequests"},
	    {"{\"type\":\"status\",\"code\":503}", 503, "ServiceUnavailable"},
	    {"{\"type\":\"status\",\"code\":504}", 504, "Timeout"},
	    {"{\"type\":\"status\",\"code\":409}", 409, "AlreadyExists"},
	    {"{\"type\":\"status\",\"code\":502,\"body\":\"Bad Gateway\"}", 502, "HTTP502"},
	    {"{\"type\":\"status\",\"code\":410}", 410, "Gone"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		sim_ctl("DELETE", "/faults", NULL, NULL);
		sim_add_fault(rows[i].fault);
		expect_unknown(k, "db-0", rows[i].code, rows[i].reason);
		assert_int_equal(obs.code[obs.calls - 1], rows[i].code);
	}
	k8s_client_free(k);
}

/*
 * DESIGN.md section 9: an API that is down is retried with backoff. After
 * an outage answer the next lookups are refused without a request until
 * the delay passes; the delay doubles; any real answer resets it.
 */
static void test_backoff_after_outage(void **state)
{
	struct opts o = {.backoff_us = 300000};
	struct observed obs = {0};
	struct k8s_client *k = client(&o, &obs);
	struct k8s_pod pod;
	struct k8s_result res;

	(void)state;
	sim_ctl("DELETE", "/faults", NULL, NULL);
	sim_add_fault("{\"type\":\"status\",\"code\":503}");
	expect_unknown(k, "db-0", 503, "ServiceUnavailable");
	int sent = obs.calls;
	/* Refused, with the outage's own answer, and nothing sent. */
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &res), K8S_UNKNOWN);
	assert_int_equal(res.http_code, 503);
	assert_string_equal(res.reason, "ServiceUnavailable");
	assert_non_null(strstr(res.message, "not sent"));
	assert_int_equal(obs.calls, sent);
	usleep(350000);
	expect_unknown(k, "db-0", 503, "ServiceUnavailable"); /* tried again, failed again */
	usleep(350000);
	/* The delay doubled to 600 ms: still refused after 350 ms. */
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &res), K8S_UNKNOWN);
	assert_non_null(strstr(res.message, "not sent"));
	assert_int_equal(obs.calls, sent + 1);
	sim_ctl("DELETE", "/faults", NULL, NULL);
	usleep(300000);
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &res), K8S_POD);
	k8s_pod_done(&pod);
	/* A real answer reset it: the next outage starts at 300 ms again. */
	sim_add_fault("{\"type\":\"status\",\"code\":500}");
	expect_unknown(k, "db-0", 500, "InternalError");
	usleep(350000);
	expect_unknown(k, "db-0", 500, "InternalError");
	sim_ctl("DELETE", "/faults", NULL, NULL);
	k8s_client_free(k);
}

static void test_hang_times_out(void **state)
{
	struct opts o = {.timeout_us = 800000};
	struct observed obs = {0};
	struct k8s_client *k = client(&o, &obs);
	sim_add_fault("{\"type\":\"hang\"}");
	int64_t t0 = mono_us();
	expect_unknown(k, "db-0", 0, "Timeout");
	int64_t dt = mono_us() - t0;
	assert_true(dt >= 700000);
	assert_true(dt < 800000 + 1500000);
	assert_int_equal(obs.code[0], 0);
	sim_ctl("POST", "/faults/release", "{}", NULL);

	/* Headers sent, then the body trickles past the deadline. */
	sim_ctl("DELETE", "/faults", NULL, NULL);
	sim_add_fault("{\"type\":\"drip\",\"interval_ms\":50}");
	t0 = mono_us();
	expect_unknown(k, "db-0", 0, "Timeout");
	assert_true(mono_us() - t0 < 800000 + 1500000);
	k8s_client_free(k);
}

static void test_oversized(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	sim_add_fault("{\"type\":\"oversized\"}");
	expect_unknown(k, "db-0", 200, "TooLarge");
	sim_ctl("DELETE", "/faults", NULL, NULL);
	/* Just over the cap, where Content-Length alone does not decide. */
	sim_add_fault("{\"type\":\"oversized\",\"size\":1048600}");
	expect_unknown(k, "db-0", 200, "TooLarge");
	k8s_client_free(k);
}

static void test_malformed(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	static const char *const variants[] = {"truncated", "wrong_types", "not_json", "empty"};
	for (size_t i = 0; i < 4; i++) {
		char spec[128];
		snprintf(spec, sizeof(spec), "{\"type\":\"malformed\",\"variant\":\"%s\"}",
		         variants[i]);
		sim_ctl("DELETE", "/faults", NULL, NULL);
		sim_add_fault(spec);
		expect_unknown(k, "db-0", 200, "Malformed");
	}
	k8s_client_free(k);
}

static void test_reset(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	static const char *const faults[] = {
	    "{\"type\":\"reset\",\"mode\":\"rst\"}",
	    "{\"type\":\"reset\",\"mode\":\"close\"}",
	    "{\"type\":\"reset\",\"mode\":\"rst\",\"after_bytes\":300}",
	    "{\"type\":\"reset\",\"mode\":\"close\",\"after_bytes\":300}",
	};
	/*
	 * A reset before the response is "Reset" with no code. A cut inside
	 * the headers followed by a clean close is taken by libcurl as a
	 * complete response with an empty body (code 200, "Malformed"): the
	 * outcome is what matters, and it is UNKNOWN either way.
	 */
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		sim_ctl("DELETE", "/faults", NULL, NULL);
		sim_add_fault(faults[i]);
		expect_unknown(k, "db-0", i < 2 ? 0 : -1, i < 2 ? "Reset" : NULL);
	}
	/* The handle recovers on a new connection once the network does. */
	sim_ctl("DELETE", "/faults", NULL, NULL);
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	k8s_pod_done(&pod);
	k8s_client_free(k);
}

static void test_tls(void **state)
{
	struct opts o = {.ca = wrong_ca};
	struct k8s_client *k = client(&o, NULL);
	expect_unknown(k, "db-0", 0, "TLS");
	k8s_client_free(k);
	/* The system bundle does not know the simulator's CA either. */
	struct opts sys = {.system_ca = true};
	k = client(&sys, NULL);
	expect_unknown(k, "db-0", 0, "TLS");
	k8s_client_free(k);
	/* Nothing got as far as an HTTP request. */
	assert_int_equal(n_requests(), 0);
}

static void test_invalid_names_never_requested(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "default", "../../secrets/x", &pod, &r), K8S_UNKNOWN);
	assert_string_equal(r.reason, "Invalid");
	assert_int_equal(k8s_get_pod(k, "..", "secrets", &pod, &r), K8S_UNKNOWN);
	assert_string_equal(r.reason, "Invalid");
	struct k8s_pod *pods;
	size_t n;
	assert_int_equal(k8s_list_pods_by_ip(k, "db", "10.20.0.5&watch=true", &pods, &n, &r),
	                 K8S_UNKNOWN);
	assert_string_equal(r.reason, "Invalid");
	struct k8s_event ev = {.ns = "db",
	                       .pod_name = "../../secrets/x",
	                       .reason = "LiquibaseLockReleased",
	                       .type = "Warning",
	                       .message = "m",
	                       .component = "lock-arbiter"};
	assert_int_equal(k8s_post_event(k, &ev, &r), -EINVAL);
	assert_int_equal(n_requests(), 0);
	k8s_client_free(k);
}

static void test_list_by_ip(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	char uid_a[64], uid_b[64];
	sim_create_pod("{\"name\":\"list-a\",\"namespace\":\"lst\",\"containers\":[\"app\"],"
	           "\"podIP\":\"10.30.0.7\"}",
	           uid_a);
	sim_create_pod("{\"name\":\"list-b\",\"namespace\":\"lst\",\"containers\":[\"app\"],"
	           "\"podIPs\":[\"fd00::7\",\"10.30.0.8\"]}",
	           uid_b);
	sim_create_pod("{\"name\":\"list-c\",\"namespace\":\"other\",\"containers\":[\"app\"],"
	           "\"podIP\":\"10.30.0.7\"}",
	           NULL);

	struct k8s_pod *pods = NULL;
	size_t n = 0;
	struct k8s_result r;
	assert_int_equal(k8s_list_pods_by_ip(k, "lst", "10.30.0.7", &pods, &n, &r), K8S_POD);
	assert_int_equal(n, 1);
	assert_string_equal(pods[0].name, "list-a");
	assert_string_equal(pods[0].ns, "lst");
	assert_string_equal(pods[0].uid, uid_a);
	assert_int_equal(pods[0].n_containers, 1);
	k8s_pods_free(pods, n);

	/* Liquibase's long IPv6 form finds the pod the API lists as fd00::7. */
	assert_int_equal(k8s_list_pods_by_ip(k, "lst", "fd00:0:0:0:0:0:0:7", &pods, &n, &r),
	                 K8S_POD);
	assert_int_equal(n, 1);
	assert_string_equal(pods[0].uid, uid_b);
	assert_int_equal(pods[0].n_pod_ips, 2);
	k8s_pods_free(pods, n);

	/* No pod with that address: a successful, empty answer. */
	assert_int_equal(k8s_list_pods_by_ip(k, "lst", "10.30.0.99", &pods, &n, &r), K8S_POD);
	assert_int_equal(n, 0);
	assert_null(pods);

	cJSON *root;
	cJSON *log = sim_requests(&root);
	assert_int_equal(cJSON_GetArraySize(log), 3);
	assert_string_equal(sim_entry_str(cJSON_GetArrayItem(log, 0), "path"),
	                    "/api/v1/namespaces/lst/pods?fieldSelector=status.podIP%3D10.30.0.7");
	assert_string_equal(sim_entry_str(cJSON_GetArrayItem(log, 1), "path"),
	                    "/api/v1/namespaces/lst/pods?fieldSelector=status.podIP%3Dfd00%3A%3A7");
	cJSON_Delete(root);

	/* A list that fails is UNKNOWN, never an empty success; a 404 is not GONE. */
	sim_add_fault("{\"type\":\"status\",\"code\":404}");
	pods = (struct k8s_pod *)&n;
	assert_int_equal(k8s_list_pods_by_ip(k, "lst", "10.30.0.7", &pods, &n, &r), K8S_UNKNOWN);
	assert_int_equal(r.outcome, K8S_UNKNOWN);
	assert_ptr_equal(pods, (struct k8s_pod *)&n);
	sim_ctl("DELETE", "/faults", NULL, NULL);
	sim_add_fault("{\"type\":\"malformed\",\"variant\":\"wrong_types\"}");
	assert_int_equal(k8s_list_pods_by_ip(k, "lst", "10.30.0.7", &pods, &n, &r), K8S_UNKNOWN);
	assert_string_equal(r.reason, "Malformed");
	k8s_client_free(k);
}

static void test_post_event(void **state)
{
	struct observed obs = {0};
	struct k8s_client *k = client(NULL, &obs);
	sim_ctl("DELETE", "/events", NULL, NULL);
	struct k8s_event ev = {
	    .ns = "db",
	    .pod_name = "db-0",
	    .pod_uid = db0_uid,
	    .reason = "LiquibaseLockReleased",
	    .type = "Warning",
	    .message = "released public.databasechangeloglock held by \"db-0 (10.20.0.5)\"",
	    .component = "lock-arbiter",
	    .reporting_instance = "lock-arbiter-7d9f-x2x7q",
	};
	struct k8s_result r;
	assert_int_equal(k8s_post_event(k, &ev, &r), 0);
	assert_int_equal(r.http_code, 201);
	assert_int_equal(obs.calls, 1);
	assert_string_equal(obs.verb[0], "create");
	assert_int_equal(obs.code[0], 201);

	cJSON *root;
	sim_ctl("GET", "/events?namespace=db", NULL, &root);
	cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
	assert_int_equal(cJSON_GetArraySize(items), 1);
	const cJSON *e = cJSON_GetArrayItem(items, 0);
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "metadata");
	const cJSON *io = cJSON_GetObjectItemCaseSensitive(e, "involvedObject");
	assert_int_equal(strncmp(sim_entry_str(meta, "name"), "db-0.", 5), 0);
	assert_true(strlen(sim_entry_str(meta, "name")) > 5);
	assert_string_equal(sim_entry_str(meta, "namespace"), "db");
	assert_string_equal(sim_entry_str(io, "kind"), "Pod");
	assert_string_equal(sim_entry_str(io, "apiVersion"), "v1");
	assert_string_equal(sim_entry_str(io, "name"), "db-0");
	assert_string_equal(sim_entry_str(io, "namespace"), "db");
	assert_string_equal(sim_entry_str(io, "uid"), db0_uid);
	assert_string_equal(sim_entry_str(e, "reason"), "LiquibaseLockReleased");
	assert_string_equal(sim_entry_str(e, "type"), "Warning");
	assert_string_equal(sim_entry_str(e, "message"), ev.message);
	assert_string_equal(sim_entry_str(e, "action"), "Release");
	assert_string_equal(sim_entry_str(e, "reportingComponent"), "lock-arbiter");
	assert_string_equal(sim_entry_str(e, "reportingInstance"), "lock-arbiter-7d9f-x2x7q");
	assert_string_equal(sim_entry_str(cJSON_GetObjectItemCaseSensitive(e, "source"), "component"),
	                    "lock-arbiter");
	assert_int_equal(sim_entry_num(e, "count"), 1);
	/* metav1.Time for the timestamps, metav1.MicroTime for eventTime. */
	int64_t first, micro;
	assert_int_equal(strlen(sim_entry_str(e, "firstTimestamp")), 20);
	assert_int_equal(k8s_time_parse(sim_entry_str(e, "firstTimestamp"), &first), 0);
	assert_int_equal(strlen(sim_entry_str(e, "eventTime")), 27);
	assert_int_equal(k8s_time_parse(sim_entry_str(e, "eventTime"), &micro), 0);
	assert_true(micro - first >= 0 && micro - first < 1000000);
	assert_string_equal(sim_entry_str(e, "lastTimestamp"), sim_entry_str(e, "firstTimestamp"));
	cJSON_Delete(root);

	/* The sent body, as the simulator logged it: JSON content type. */
	cJSON *log = sim_requests(&root);
	const cJSON *req = cJSON_GetArrayItem(log, 0);
	assert_string_equal(sim_entry_str(req, "method"), "POST");
	assert_string_equal(sim_entry_str(req, "path"), "/api/v1/namespaces/db/events");
	assert_string_equal(sim_entry_str(req, "content_type"), "application/json");
	cJSON_Delete(root);

	/* A message past the API's 1024-byte limit is shortened, not refused. */
	char big[3000];
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ev.message = big;
	ev.reporting_instance = NULL; /* the host name stands in */
	ev.pod_uid = NULL;
	sim_ctl("DELETE", "/events", NULL, NULL);
	assert_int_equal(k8s_post_event(k, &ev, &r), 0);
	sim_ctl("GET", "/events?namespace=db", NULL, &root);
	e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "items"), 0);
	assert_int_equal(strlen(sim_entry_str(e, "message")), 1024);
	assert_true(sim_entry_str(e, "reportingInstance")[0] != '\0');
	assert_null(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(e, "involvedObject"), "uid"));
	cJSON_Delete(root);

	/* Refused by the API: -EIO with the Status. */
	ev.ns = "no-such-ns";
	assert_int_equal(k8s_post_event(k, &ev, &r), -EIO);
	assert_int_equal(r.outcome, K8S_UNKNOWN);
	assert_int_equal(r.http_code, 404);
	assert_string_equal(r.reason, "NotFound");
	ev.ns = "db";
	sim_add_fault("{\"type\":\"forbidden\",\"method\":\"POST\"}");
	assert_int_equal(k8s_post_event(k, &ev, &r), -EIO);
	assert_string_equal(r.reason, "Forbidden");
	check_clean(&r);
	k8s_client_free(k);
}

static void test_one_connection(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	struct k8s_pod pod;
	struct k8s_result r;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
		k8s_pod_done(&pod);
	}
	assert_int_equal(k8s_get_pod(k, "db", "nope-0", &pod, &r), K8S_GONE);
	struct k8s_pod *pods;
	size_t n;
	assert_int_equal(k8s_list_pods_by_ip(k, "db", "10.20.0.5", &pods, &n, &r), K8S_POD);
	k8s_pods_free(pods, n);
	cJSON *root;
	cJSON *log = sim_requests(&root);
	assert_int_equal(cJSON_GetArraySize(log), 7);
	double conn = sim_entry_num(cJSON_GetArrayItem(log, 0), "conn");
	assert_true(conn > 0);
	const cJSON *e;
	cJSON_ArrayForEach(e, log) assert_true(sim_entry_num(e, "conn") == conn);
	cJSON_Delete(root);
	k8s_client_free(k);
}

/* Server text never carries the token out, even when it echoes it. */
static void test_token_not_echoed(void **state)
{
	struct k8s_client *k = client(NULL, NULL);
	char spec[512];
	snprintf(spec, sizeof(spec),
	         "{\"type\":\"status\",\"code\":500,\"content_type\":\"application/json\","
	         "\"body\":\"{\\\"kind\\\":\\\"Status\\\",\\\"reason\\\":\\\"InternalError\\\","
	         "\\\"message\\\":\\\"bad header Authorization: Bearer %s\\\"}\"}",
	         current_token);
	sim_add_fault(spec);
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_UNKNOWN);
	assert_int_equal(r.http_code, 500);
	check_clean(&r);
	k8s_client_free(k);
}

static void *stop_later(void *arg)
{
	volatile sig_atomic_t *flag = arg;
	usleep(300000);
	*flag = 1;
	return NULL;
}

static void test_interrupt(void **state)
{
	volatile sig_atomic_t stop = 0;
	struct opts o = {.timeout_us = 10000000, .interrupt = &stop};
	struct k8s_client *k = client(&o, NULL);
	sim_add_fault("{\"type\":\"hang\"}");
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, stop_later, (void *)&stop), 0);
	int64_t t0 = mono_us();
	expect_unknown(k, "db-0", 0, "Interrupted");
	/* libcurl calls the progress callback at least once a second. */
	assert_true(mono_us() - t0 < 2500000);
	pthread_join(t, NULL);
	sim_ctl("POST", "/faults/release", "{}", NULL);
	k8s_client_free(k);
}

static void test_in_cluster(void **state)
{
	/* KUBERNETES_SERVICE_HOST/PORT from the simulator's URL, SA dir as kubelet lays it out. */
	const char *hp = strstr(kube_url, "://") + 3;
	const char *colon = strrchr(hp, ':');
	char host[64];
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
	setenv("KUBERNETES_SERVICE_HOST", host, 1);
	setenv("KUBERNETES_SERVICE_PORT", colon + 1, 1);
	struct k8s_config c;
	k8s_config_default(&c);
	char err[256];
	assert_int_equal(k8s_config_in_cluster(&c, sa_dir, err, sizeof(err)), 0);
	assert_string_equal(c.api_url, kube_url);
	struct k8s_client *k = k8s_client_new(&c, err, sizeof(err));
	k8s_config_done(&c);
	if (k == NULL)
		fail_msg("%s", err);
	struct k8s_pod pod;
	struct k8s_result r;
	assert_int_equal(k8s_get_pod(k, "db", "db-0", &pod, &r), K8S_POD);
	assert_string_equal(pod.uid, db0_uid);
	k8s_pod_done(&pod);
	k8s_client_free(k);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

int main(void)
{
	kube_url = sim_need("LOCK_ARBITER_TEST_KUBE_URL");
	kube_ca = sim_need("LOCK_ARBITER_TEST_KUBE_CA");
	token_file = sim_need("LOCK_ARBITER_TEST_KUBE_TOKEN_FILE");
	sa_dir = sim_need("LOCK_ARBITER_TEST_KUBE_SA_DIR");
	sim_control = sim_need("LOCK_ARBITER_TEST_KUBE_CONTROL");
	wrong_ca = sim_need("LOCK_ARBITER_TEST_KUBE_WRONG_CA");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_get_pod, reset),
	    cmocka_unit_test_setup(test_gone, reset),
	    cmocka_unit_test_setup(test_404_that_is_not_gone, reset),
	    cmocka_unit_test_setup(test_forbidden, reset),
	    cmocka_unit_test_setup(test_token_rotation, reset),
	    cmocka_unit_test_setup(test_token_reread_failure_keeps_old, reset),
	    cmocka_unit_test_setup(test_server_errors, reset),
	    cmocka_unit_test_setup(test_backoff_after_outage, reset),
	    cmocka_unit_test_setup(test_hang_times_out, reset),
	    cmocka_unit_test_setup(test_oversized, reset),
	    cmocka_unit_test_setup(test_malformed, reset),
	    cmocka_unit_test_setup(test_reset, reset),
	    cmocka_unit_test_setup(test_tls, reset),
	    cmocka_unit_test_setup(test_invalid_names_never_requested, reset),
	    cmocka_unit_test_setup(test_list_by_ip, reset),
	    cmocka_unit_test_setup(test_post_event, reset),
	    cmocka_unit_test_setup(test_one_connection, reset),
	    cmocka_unit_test_setup(test_token_not_echoed, reset),
	    cmocka_unit_test_setup(test_interrupt, reset),
	    cmocka_unit_test_setup(test_in_cluster, reset),
	};
	int failed = cmocka_run_group_tests(tests, group_setup, NULL);
	curl_global_cleanup();
	return failed;
}
