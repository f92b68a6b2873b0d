/*
 * fuzz_status.c - fuzz target for the reading of error answers: the code
 * that turns an HTTP code and a body (a Status, or whatever a proxy sends)
 * into GONE or UNKNOWN (k8s_status_result, DESIGN.md section 7).
 *
 * The input is the body. It is read as the answer to a get of pod "db-0"
 * and to a list (no name), under the codes that carry Status bodies, and
 * with the input as the Content-Type as well. What must hold: only a 404
 * about the pod asked for is GONE, never a list; the reason and message
 * are terminated and free of control characters (they end up in logs).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "k8s-internal.h"

static const long codes[] = {404, 401, 403, 410, 409, 422, 429, 500, 503, 200};

static void check(long code, const char *body, size_t len, const char *name, const char *ctype)
{
	struct k8s_result res;
	struct k8s_status st;

	memset(&res, 0x5a, sizeof(res));
	enum k8s_outcome o = k8s_status_result(code, body, len, name, ctype, &res);
	if (o != res.outcome || res.http_code != code || (o != K8S_GONE && o != K8S_UNKNOWN))
		abort();
	if (memchr(res.reason, '\0', sizeof(res.reason)) == NULL ||
	    memchr(res.message, '\0', sizeof(res.message)) == NULL || res.reason[0] == '\0' ||
	    fuzz_has_control(res.reason) || fuzz_has_control(res.message))
		abort();
	k8s_status_parse(body, len, name, &st);
	if (st.not_found && (!st.is_status || name == NULL))
		abort();
	if (o == K8S_GONE && (code != 404 || !st.not_found || strcmp(res.reason, "NotFound") != 0))
		abort();
	if (!st.is_status && (st.reason[0] != '\0' || st.message[0] != '\0'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact copy without a NUL: a read past len is caught by ASan. */
	char *body = malloc(size > 0 ? size : 1);
	char *ctype = fuzz_string(data, size);

	if (body != NULL && ctype != NULL) {
		memcpy(body, data, size);
		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
			check(codes[i], body, size, "db-0", "application/json");
			check(codes[i], body, size, NULL, NULL);
		}
		check(404, body, size, "db-0", ctype);
	}
	free(body);
	free(ctype);
	return 0;
}
