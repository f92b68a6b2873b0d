/*
 * test_config.c - configuration and client construction, and the checks a
 * request passes before anything goes on the wire. No API server needed:
 * the client points at a closed port, so a request that does leave shows
 * up as "Connect" and the observe callback.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s-internal.h"

struct observed {
	int calls;
	char verb[16];
	long code;
};

static void observe(void *ctx, const char *verb, long code, int64_t duration_us)
{
	struct observed *o = ctx;
	o->calls++;
	snprintf(o->verb, sizeof(o->verb), "%s", verb);
	o->code = code;
	assert_true(duration_us >= 0);
}

static void unset_cluster_env(void)
{
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_defaults(void **state)
{
	struct k8s_config c;
	memset(&c, 0x5a, sizeof(c));
	k8s_config_default(&c);
	c.backoff_min_us = 0; /* every failing request is sent */
	assert_null(c.api_url);
	assert_null(c.token_file);
	assert_null(c.ca_file);
	assert_int_equal(c.connect_timeout_us, 2000000);
	assert_int_equal(c.request_timeout_us, 5000000);
	assert_int_equal(c.token_reread_us, 60000000);
	assert_int_equal(c.max_body, 1024 * 1024);
	assert_null(c.interrupt);
	assert_null(c.observe);
	k8s_config_done(&c);
	k8s_config_done(&c);
	k8s_config_done(NULL);
}

static void test_in_cluster(void **state)
{
	struct k8s_config c;
	char err[256] = "";
	k8s_config_default(&c);
	c.backoff_min_us = 0; /* every failing request is sent */

	unset_cluster_env();
	assert_int_equal(k8s_config_in_cluster(&c, "/sa", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
	assert_null(c.api_url);

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	assert_int_equal(k8s_config_in_cluster(&c, "/sa", err, sizeof(err)), 0);
	assert_string_equal(c.api_url, "https://10.96.0.1:443");
	assert_string_equal(c.token_file, "/sa/token");
	assert_string_equal(c.ca_file, "/sa/ca.crt");

	/* Called again, it replaces (and frees) what it set before. */
	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	assert_int_equal(k8s_config_in_cluster(&c, NULL, err, sizeof(err)), 0);
	assert_string_equal(c.api_url, "https://[fd00:10:96::1]:6443");
	assert_string_equal(c.token_file, K8S_SA_DIR "/token");
	assert_string_equal(c.ca_file, K8S_SA_DIR "/ca.crt");

	static const char *const bad[][2] = {
	    {"10.96.0.1", "http"}, {"10.96.0.1", "0"},    {"10.96.0.1", "65536"},
	    {"10.96.0.1", "-1"},   {"10.96.0.1", "443x"}, {"evil/x", "443"},
	    {"a@b", "443"},        {"fd00::1::2", "443"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("KUBERNETES_SERVICE_HOST", bad[i][0], 1);
		setenv("KUBERNETES_SERVICE_PORT", bad[i][1], 1);
		if (k8s_config_in_cluster(&c, "/sa", err, sizeof(err)) != -EINVAL)
			fail_msg("host %s port %s accepted", bad[i][0], bad[i][1]);
	}
	/* The failures left the last good configuration alone. */
	assert_string_equal(c.api_url, "https://[fd00:10:96::1]:6443");
	k8s_config_done(&c);
	assert_null(c.api_url);
	unset_cluster_env();
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/k8s-test-token-XXXXXX");
	assert_non_null(path);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_client_new_rejects(void **state)
{
	char err[256];
	struct k8s_config c;
	k8s_config_default(&c);
	c.backoff_min_us = 0; /* every failing request is sent */
	static const char *const urls[] = {
	    "ftp://127.0.0.1/",
	    "file:///etc/passwd",
	    "https://10.0.0.1/?x=1",
	    "https://10.0.0.1/#f",
	    "https://user:pw@10.0.0.1/",
	    "not a url",
	    "",
	};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		c.api_url = (char *)urls[i];
		err[0] = '\0';
		if (k8s_client_new(&c, err, sizeof(err)) != NULL)
			fail_msg("URL %s accepted", urls[i]);
		assert_true(err[0] != '\0');
	}
	c.api_url = NULL;
	assert_null(k8s_client_new(&c, err, sizeof(err)));
	assert_null(k8s_client_new(NULL, err, sizeof(err)));

	char *tok = write_temp("tok-1\n", 6);
	/* A bearer token in clear text to another host would leak it. */
	c.api_url = "http://10.0.0.1:8001";
	c.token_file = tok;
	assert_null(k8s_client_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "plain http"));
	/* kubectl proxy on the loopback is fine. */
	c.api_url = "http://127.0.0.1:8001/";
	struct k8s_client *k = k8s_client_new(&c, err, sizeof(err));
	assert_non_null(k);
	k8s_client_free(k);

	c.api_url = "https://127.0.0.1:6443";
	c.ca_file = "/nonexistent/ca.crt";
	assert_null(k8s_client_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "CA"));
	c.ca_file = NULL;

	c.token_file = "/nonexistent/token";
	assert_null(k8s_client_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "token"));

	/* Empty, control characters inside, or past 64 KiB: not a token. */
	char *empty = write_temp(" \n", 2);
	char *crlf = write_temp("abc\r\nX-Evil: 1", 14);
	size_t big_len = 64 * 1024 + 1;
	char *big_content = malloc(big_len);
	assert_non_null(big_content);
	memset(big_content, 'a', big_len);
	char *big = write_temp(big_content, big_len);
	free(big_content);
	const char *bad_tokens[] = {empty, crlf, big};
	for (size_t i = 0; i < 3; i++) {
		c.token_file = (char *)bad_tokens[i];
		assert_null(k8s_client_new(&c, err, sizeof(err)));
	}

	c.token_file = NULL;
	c.request_timeout_us = 0;
	assert_null(k8s_client_new(&c, err, sizeof(err)));
	c.request_timeout_us = 5000000;
	c.max_body = 0;
	assert_null(k8s_client_new(&c, err, sizeof(err)));

	const char *all[] = {tok, empty, crlf, big};
	for (size_t i = 0; i < 4; i++) {
		unlink(all[i]);
		free((char *)all[i]);
	}
	k8s_client_free(NULL);
}

/* A client on a closed port: whatever leaves fails with "Connect". */
static struct k8s_client *closed_client(struct observed *o, volatile sig_atomic_t *stop)
{
	struct k8s_config c;
	char err[256];
	k8s_config_default(&c);
	c.backoff_min_us = 0; /* every failing request is sent */
	c.api_url = "http://127.0.0.1:1";
	c.connect_timeout_us = 500000;
	c.request_timeout_us = 1000000;
	c.observe = observe;
	c.observe_ctx = o;
	c.interrupt = stop;
	struct k8s_client *k = k8s_client_new(&c, err, sizeof(err));
	if (k == NULL)
		fail_msg("%s", err);
	return k;
}

static void test_invalid_segments_never_leave(void **state)
{
	struct observed o = {0};
	volatile sig_atomic_t stop = 0;
	struct k8s_client *k = closed_client(&o, &stop);
	struct k8s_result res;
	struct k8s_pod pod;
	memset(&pod, 0x33, sizeof(pod));
	struct k8s_pod before = pod;

	static const char *const names[][2] = {
	    {"default", "../../secrets/x"},
	    {"..", "x"},
	    {"default", "x/../../y"},
	    {"default", "x?watch=1"},
	    {"default", "X"},
	    {"default", ""},
	    {"", "x"},
	    {"a.b", "x"},
	    {"default", "x%2F"},
	    {NULL, "x"},
	    {"default", NULL},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(k8s_get_pod(k, names[i][0], names[i][1], &pod, &res), K8S_UNKNOWN);
		assert_int_equal(res.outcome, K8S_UNKNOWN);
		assert_string_equal(res.reason, "Invalid");
		assert_int_equal(res.http_code, 0);
	}
	assert_memory_equal(&pod, &before, sizeof(pod));

	static const char *const ips[][2] = {
	    {"default", "10.0.0.1%eth0"},
	    {"default", "fd00::2%eth0"},
	    {"default", "unknown"},
	    {"default", "10.0.0"},
	    {"default", ""},
	    {"default", NULL},
	    {"Default", "10.0.0.1"},
	    {"default", "10.0.0.1/32"},
	};
	struct k8s_pod *pods = (struct k8s_pod *)&o;
	size_t n = 99;
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		assert_int_equal(k8s_list_pods_by_ip(k, ips[i][0], ips[i][1], &pods, &n, &res),
		                 K8S_UNKNOWN);
		assert_string_equal(res.reason, "Invalid");
	}
	assert_ptr_equal(pods, (struct k8s_pod *)&o);
	assert_int_equal(n, 99);

	struct k8s_event ev = {.ns = "db",
	                       .pod_name = "../x",
	                       .reason = "LiquibaseLockReleased",
	                       .type = "Warning",
	                       .message = "m",
	                       .component = "lock-arbiter"};
	assert_int_equal(k8s_post_event(k, &ev, &res), -EINVAL);
	assert_string_equal(res.reason, "Invalid");
	ev.pod_name = "db-0";
	ev.component = "lock arbiter";
	assert_int_equal(k8s_post_event(k, &ev, &res), -EINVAL);
	ev.component = "lock-arbiter";
	ev.reason = "";
	assert_int_equal(k8s_post_event(k, &ev, &res), -EINVAL);
	assert_int_equal(k8s_post_event(k, NULL, &res), -EINVAL);

	/* Nothing was attempted. */
	assert_int_equal(o.calls, 0);

	/* A valid request does leave, and fails as a connection failure. */
	assert_int_equal(k8s_get_pod(k, "default", "db-0", &pod, &res), K8S_UNKNOWN);
	assert_string_equal(res.reason, "Connect");
	assert_int_equal(res.http_code, 0);
	assert_memory_equal(&pod, &before, sizeof(pod));
	assert_int_equal(o.calls, 1);
	assert_string_equal(o.verb, "get");
	assert_int_equal(o.code, 0);

	assert_int_equal(k8s_list_pods_by_ip(k, "default", "fd00:0:0:0:0:0:0:2", &pods, &n, &res),
	                 K8S_UNKNOWN);
	assert_string_equal(res.reason, "Connect");
	assert_int_equal(o.calls, 2);
	assert_string_equal(o.verb, "list");

	ev.reason = "LiquibaseLockReleased";
	assert_int_equal(k8s_post_event(k, &ev, &res), -EIO);
	assert_string_equal(res.reason, "Connect");
	assert_int_equal(o.calls, 3);
	assert_string_equal(o.verb, "create");

	/* Once the daemon is stopping, no new request starts. */
	stop = 1;
	assert_int_equal(k8s_get_pod(k, "default", "db-0", &pod, &res), K8S_UNKNOWN);
	assert_string_equal(res.reason, "Interrupted");
	assert_int_equal(o.calls, 3);
	k8s_client_free(k);
}

int main(void)
{
	/* The closed-port client must not be sent through a proxy instead. */
	static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
	                                      "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_in_cluster),
	    cmocka_unit_test(test_client_new_rejects),
	    cmocka_unit_test(test_invalid_segments_never_leave),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
