/*
 * test_status.c - error answers into outcomes (k8s_status_result): only a
 * 404 whose Status is NotFound about the pod asked for is GONE; every
 * other answer is UNKNOWN with the Status reason, or HTTPnnn. One row per
 * kind of answer a real API server (or a proxy in front of it) gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "k8s-internal.h"

#define NOT_FOUND_DB0                                                                          \
	"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","   \
	"\"message\":\"pods \\\"db-0\\\" not found\",\"reason\":\"NotFound\","                \
	"\"details\":{\"name\":\"db-0\",\"kind\":\"pods\"},\"code\":404}"

static void test_answers(void **state)
{
	static const struct {
		const char *why;
		long code;
		const char *name; /* NULL: a list */
		const char *body;
		enum k8s_outcome want;
		const char *reason;
	} rows[] = {
	    {"the pod is gone", 404, "db-0", NOT_FOUND_DB0, K8S_GONE, "NotFound"},
	    {"a list has no gone", 404, NULL, NOT_FOUND_DB0, K8S_UNKNOWN, "NotFound"},
	    {"another pod's NotFound", 404, "db-1", NOT_FOUND_DB0, K8S_UNKNOWN, "NotFound"},
	    {"NotFound under another code", 403, "db-0", NOT_FOUND_DB0, K8S_UNKNOWN, "NotFound"},
	    {"a wrong path, not the pod", 404, "db-0",
	     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
	     "\"message\":\"the server could not find the requested resource\","
	     "\"reason\":\"NotFound\",\"details\":{},\"code\":404}",
	     K8S_UNKNOWN, "NotFound"},
	    {"the namespace is gone, not the pod", 404, "nope",
	     "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"NotFound\","
	     "\"details\":{\"name\":\"nope\",\"kind\":\"namespaces\"},\"code\":404}",
	     K8S_UNKNOWN, "NotFound"},
	    {"a key given twice", 404, "db-0",
	     "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"reason\":\"NotFound\","
	     "\"details\":{\"name\":\"db-0\",\"kind\":\"pods\"},\"code\":404}",
	     K8S_UNKNOWN, "NotFound"},
	    {"unauthorized", 401, "db-0",
	     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
	     "\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}",
	     K8S_UNKNOWN, "Unauthorized"},
	    {"forbidden", 403, "db-0",
	     "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods \\\"db-0\\\" is "
	     "forbidden\",\"reason\":\"Forbidden\",\"details\":{\"name\":\"db-0\","
	     "\"kind\":\"pods\"},\"code\":403}",
	     K8S_UNKNOWN, "Forbidden"},
	    {"a proxy's page", 404, "db-0", "<html><body>404 Not Found</body></html>", K8S_UNKNOWN,
	     "HTTP404"},
	    {"an empty body", 503, "db-0", "", K8S_UNKNOWN, "HTTP503"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct k8s_result res;
		enum k8s_outcome o = k8s_status_result(rows[i].code, rows[i].body,
		                                       strlen(rows[i].body), rows[i].name,
		                                       "application/json", &res);
		if (o != rows[i].want || res.outcome != o || res.http_code != rows[i].code ||
		    strcmp(res.reason, rows[i].reason) != 0)
			fail_msg("%s: outcome %d reason %s", rows[i].why, o, res.reason);
	}
}

/*
 * Fuzz finding (tests/fuzz/fuzz_status): the Content-Type of an answer
 * without a Status body went into the message as the server sent it,
 * control characters included, where the Status text gets them replaced.
 */
static void test_content_type_is_cleaned(void **state)
{
	struct k8s_result res;

	(void)state;
	k8s_status_result(502, "", 0, "db-0", "text/html\x1b[2J\tevil\nline", &res);
	assert_string_equal(res.reason, "HTTP502");
	assert_string_equal(res.message,
	                    "HTTP 502 without a Status body (text/html?[2J?evil?line)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers),
	    cmocka_unit_test(test_content_type_is_cleaned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
