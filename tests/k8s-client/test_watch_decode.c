/*
 * test_watch_decode.c - the watch stream decoder (k8s-client/watch.h).
 *
 * argv[1]: the fixtures root (tests/fixtures), for a real pod;
 * argv[2]: a watch stream recorded from tests/k8s_sim (MODIFIED after a
 * container restart, BOOKMARK, MODIFIED with deletionTimestamp, DELETED,
 * and the ERROR 410 Expired of an expired watch), the fuzz corpus's
 * sim-stream.jsonl. The stream is fed cut at every offset, one byte at a
 * time and in random runs, each run an exactly sized copy, so that a read
 * past the input is caught by ASan and valgrind.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s-internal.h"

static const char *fixtures_root = "tests/fixtures";
static const char *stream_path = "tests/fuzz/corpus/watch/sim-stream.jsonl";

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot read %s", path);
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap);
	assert_non_null(buf);
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			buf = realloc(buf, cap *= 2);
			assert_non_null(buf);
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

#define MAX_EVENTS 64

struct decoded {
	struct k8s_watch_event ev[MAX_EVENTS];
	size_t n;
};

static void decoded_done(struct decoded *out)
{
	for (size_t i = 0; i < out->n; i++)
		k8s_watch_event_done(&out->ev[i]);
	out->n = 0;
}

/* Feeds one run through the decoder as an exactly sized copy; collects events. */
static void feed(struct k8s_watch_decoder *d, const char *data, size_t len, struct decoded *out)
{
	char *copy = malloc(len > 0 ? len : 1);
	assert_non_null(copy);
	memcpy(copy, data, len);
	size_t pos = 0;
	for (;;) {
		size_t used = 0;
		struct k8s_watch_event ev;
		int r = k8s_watch_decode(d, copy + pos, len - pos, &used, &ev);
		assert_true(r == 0 || r == 1);
		assert_true(used <= len - pos);
		pos += used;
		if (r == 0)
			break;
		assert_true(out->n < MAX_EVENTS);
		out->ev[out->n++] = ev;
	}
	assert_int_equal(pos, len);
	free(copy);
}

/* Decodes data cut into runs of the given sizes (the last run takes the rest). */
static void decode_cut(const char *data, size_t len, const size_t *cuts, size_t ncuts,
                       size_t max_line, struct decoded *out)
{
	struct k8s_watch_decoder d;
	k8s_watch_decoder_init(&d, max_line);
	size_t pos = 0;
	for (size_t i = 0; i < ncuts && pos < len; i++) {
		size_t n = cuts[i] < len - pos ? cuts[i] : len - pos;
		feed(&d, data + pos, n, out);
		pos += n;
	}
	feed(&d, data + pos, len - pos, out);
	k8s_watch_decoder_done(&d);
}

/* What the recorded stream holds, whatever the cuts. */
static void check_sim_stream(const struct decoded *out)
{
	assert_int_equal(out->n, 5);
	const struct k8s_watch_event *e = out->ev;
	assert_int_equal(e[0].type, K8S_WATCH_POD);
	assert_false(e[0].added);
	assert_string_equal(e[0].pod.name, "db-0");
	assert_string_equal(e[0].pod.ns, "db");
	assert_int_equal(e[0].pod.containers[0].restart_count, 1);
	assert_int_equal(e[1].type, K8S_WATCH_BOOKMARK);
	assert_string_equal(e[1].resource_version, "1007");
	assert_int_equal(e[2].type, K8S_WATCH_POD);
	assert_true(e[2].pod.deleting != 0);
	assert_int_equal(e[3].type, K8S_WATCH_DELETED);
	assert_string_equal(e[3].pod.uid, e[0].pod.uid);
	assert_int_equal(e[4].type, K8S_WATCH_EXPIRED);
	assert_int_equal(e[4].result.http_code, 410);
	assert_string_equal(e[4].result.reason, "Expired");
	assert_non_null(strstr(e[4].result.message, "too old resource version"));
	/*
	 * Versions never fall through the stream (a bookmark carries the
	 * latest one), and each event names its object's.
	 */
	for (size_t i = 0; i + 1 < 4; i++)
		assert_true(strtoull(e[i].resource_version, NULL, 10) <=
		            strtoull(e[i + 1].resource_version, NULL, 10));
	assert_string_equal(e[3].resource_version, "1009");
	assert_string_equal(e[0].resource_version, e[0].pod.resource_version);
}

static void test_stream_cut_at_every_offset(void **state)
{
	size_t len;
	char *s = read_file(stream_path, &len);
	for (size_t at = 0; at <= len; at++) {
		struct decoded out = {.n = 0};
		decode_cut(s, len, &at, 1, 0, &out);
		check_sim_stream(&out);
		decoded_done(&out);
	}
	free(s);
}

static void test_stream_one_byte_at_a_time(void **state)
{
	size_t len;
	char *s = read_file(stream_path, &len);
	size_t *ones = malloc(len * sizeof(*ones));
	assert_non_null(ones);
	for (size_t i = 0; i < len; i++)
		ones[i] = 1;
	struct decoded out = {.n = 0};
	decode_cut(s, len, ones, len, 0, &out);
	check_sim_stream(&out);
	decoded_done(&out);
	free(ones);
	free(s);
}

static void test_stream_random_runs(void **state)
{
	size_t len;
	char *s = read_file(stream_path, &len);
	unsigned seed = 12345;
	for (int round = 0; round < 200; round++) {
		size_t cuts[64];
		for (size_t i = 0; i < 64; i++) {
			seed = seed * 1103515245u + 12345u;
			cuts[i] = (seed >> 16) % 700;
		}
		struct decoded out = {.n = 0};
		decode_cut(s, len, cuts, 64, 0, &out);
		check_sim_stream(&out);
		decoded_done(&out);
	}
	free(s);
}

/* Several events in one run, and the run boundary right after each '\n'. */
static void test_several_events_per_run(void **state)
{
	const char *two = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"5\"}}}\n"
	                  "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"6\"}}}\n"
	                  "{\"type\":\"BOOK";
	struct k8s_watch_decoder d;
	k8s_watch_decoder_init(&d, 0);
	struct k8s_watch_event ev;
	size_t used, len = strlen(two), first = strchr(two, '\n') - two + 1;
	assert_int_equal(k8s_watch_decode(&d, two, len, &used, &ev), 1);
	assert_int_equal(used, first);
	assert_string_equal(ev.resource_version, "5");
	assert_int_equal(k8s_watch_decode(&d, two + used, len - used, &used, &ev), 1);
	assert_string_equal(ev.resource_version, "6");
	size_t rest = strlen("{\"type\":\"BOOK");
	assert_int_equal(k8s_watch_decode(&d, two + len - rest, rest, &used, &ev), 0);
	assert_int_equal(used, rest);
	const char *tail = "MARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"7\"}}}\n";
	assert_int_equal(k8s_watch_decode(&d, tail, strlen(tail), &used, &ev), 1);
	assert_int_equal(ev.type, K8S_WATCH_BOOKMARK);
	assert_string_equal(ev.resource_version, "7");
	k8s_watch_decoder_done(&d);
}

static void test_empty_lines_skipped(void **state)
{
	const char *s = "\n\n  \r\n\t\n{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":"
	                "{\"resourceVersion\":\"9\"}}}\r\n\n";
	struct decoded out = {.n = 0};
	decode_cut(s, strlen(s), NULL, 0, 0, &out);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.ev[0].type, K8S_WATCH_BOOKMARK);
	decoded_done(&out);
	/* Blank lines alone are no event at all. */
	decode_cut("\n \n\r\n", 5, NULL, 0, 0, &out);
	assert_int_equal(out.n, 0);
}

/* A pod line from a real object (k9s-po.json), wrapped as a watch event. */
static char *pod_line(const char *type)
{
	char path[1024];
	size_t len;
	snprintf(path, sizeof(path), "%s/kubernetes/k9s-po.json", fixtures_root);
	char *text = read_file(path, &len);
	cJSON *pod = cJSON_ParseWithLength(text, len);
	free(text);
	assert_non_null(pod);
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "type", type);
	cJSON_AddItemToObject(ev, "object", pod);
	char *line = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	assert_non_null(line);
	return line;
}

static void test_real_pod_added_and_deleted(void **state)
{
	static const struct {
		const char *type;
		enum k8s_watch_type want;
		bool added;
	} rows[] = {
	    {"ADDED", K8S_WATCH_POD, true},
	    {"MODIFIED", K8S_WATCH_POD, false},
	    {"DELETED", K8S_WATCH_DELETED, false},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *line = pod_line(rows[i].type);
		struct k8s_watch_event ev;
		assert_int_equal(k8s_watch_line_parse(line, strlen(line), &ev), 0);
		assert_int_equal(ev.type, rows[i].want);
		assert_int_equal(ev.added, rows[i].added);
		assert_string_equal(ev.pod.name, "nginx");
		assert_string_equal(ev.pod.uid, "614908ed-415b-4506-8370-e3e36fa8cc13");
		assert_string_equal(ev.resource_version, "1482816");
		k8s_watch_event_done(&ev);
		cJSON_free(line);
	}
}

/* One row per way a line is read; each names what it checks. */
static const struct line_row {
	const char *why;
	const char *line;
	enum k8s_watch_type type;
	const char *reason; /* NULL: not checked */
	long code;
} line_rows[] = {
    {"410 Expired as a real API server writes it (fixtures README)",
     "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
     "\"status\":\"Failure\",\"message\":\"too old resource version: 100 (200)\",\"reason\":"
     "\"Expired\",\"code\":410}}",
     K8S_WATCH_EXPIRED, "Expired", 410},
    {"410 Gone without a code is still expired",
     "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"reason\":\"Gone\",\"message\":\"x\"}}",
     K8S_WATCH_EXPIRED, "Gone", 0},
    {"another Status is ERROR with its code and reason",
     "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":"
     "\"etcdserver: request timed out\",\"reason\":\"InternalError\",\"code\":500}}",
     K8S_WATCH_ERROR, "InternalError", 500},
    {"ERROR whose object is not a Status",
     "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Pod\"}}", K8S_WATCH_ERROR, "Malformed", 0},
    {"bookmark as the API server writes it",
     "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
     "{\"resourceVersion\":\"1007\",\"creationTimestamp\":null},\"spec\":{\"containers\":null},"
     "\"status\":{}}}",
     K8S_WATCH_BOOKMARK, NULL, 0},
    {"bookmark without a resourceVersion",
     "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}", K8S_WATCH_ERROR, "Malformed", 0},
    {"bookmark with a numeric resourceVersion",
     "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":7}}}", K8S_WATCH_ERROR,
     "Malformed", 0},
    {"bookmark with a resourceVersion holding a space",
     "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"1 2\"}}}",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"type not a string", "{\"type\":1,\"object\":{}}", K8S_WATCH_ERROR, "Malformed", 0},
    {"unknown type", "{\"type\":\"SYNC\",\"object\":{}}", K8S_WATCH_ERROR, "Malformed", 0},
    {"object not an object", "{\"type\":\"ADDED\",\"object\":\"pod\"}", K8S_WATCH_ERROR,
     "Malformed", 0},
    {"no object", "{\"type\":\"ADDED\"}", K8S_WATCH_ERROR, "Malformed", 0},
    {"type given twice",
     "{\"type\":\"BOOKMARK\",\"type\":\"DELETED\",\"object\":{\"metadata\":"
     "{\"resourceVersion\":\"3\"}}}",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"not JSON", "<html>It works!</html>", K8S_WATCH_ERROR, "Malformed", 0},
    {"a JSON array", "[1,2]", K8S_WATCH_ERROR, "Malformed", 0},
    {"half a line (a truncated event)", "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Po",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"trailing bytes after the object",
     "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"3\"}}}x",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"a pod with wrong types (restartCount \"x\")",
     "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
     "{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\",\"resourceVersion\":\"4\"},\"status\":"
     "{\"containerStatuses\":[{\"name\":\"app\",\"restartCount\":\"x\"}]}}}",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"a pod without resourceVersion cannot be resumed from",
     "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
     "{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\"}}}",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"another kind than Pod",
     "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":"
     "{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\",\"resourceVersion\":\"4\"}}}",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"a control character in a name: refused, and kept out of the message (fuzz finding)",
     "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
     "{\"name\":\"db-0\",\"namespace\":\"d\\u0001b\",\"uid\":\"u\",\"resourceVersion\":\"4\"}}}",
     K8S_WATCH_ERROR, "Malformed", 0},
    {"the smallest pod that is one",
     "{\"type\":\"DELETED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
     "{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\",\"resourceVersion\":\"4\"}}}",
     K8S_WATCH_DELETED, NULL, 0},
};

static void test_line_table(void **state)
{
	for (size_t i = 0; i < sizeof(line_rows) / sizeof(line_rows[0]); i++) {
		const struct line_row *row = &line_rows[i];
		/* Through the decoder, with its '\n', as an exactly sized run. */
		size_t n = strlen(row->line);
		char *buf = malloc(n + 1);
		assert_non_null(buf);
		memcpy(buf, row->line, n);
		buf[n] = '\n';
		struct decoded out = {.n = 0};
		decode_cut(buf, n + 1, NULL, 0, 0, &out);
		free(buf);
		if (out.n != 1 || out.ev[0].type != row->type)
			fail_msg("%s: got %zu events, the first %s (%s)", row->why, out.n,
			         out.n > 0 ? k8s_watch_type_name(out.ev[0].type) : "-",
			         out.n > 0 ? out.ev[0].result.message : "");
		if (row->reason != NULL && strcmp(out.ev[0].result.reason, row->reason) != 0)
			fail_msg("%s: reason %s", row->why, out.ev[0].result.reason);
		for (const char *p = out.ev[0].result.message; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20)
				fail_msg("%s: control character in the message", row->why);
		if (row->code != 0 && out.ev[0].result.http_code != row->code)
			fail_msg("%s: code %ld", row->why, out.ev[0].result.http_code);
		if (row->type == K8S_WATCH_POD || row->type == K8S_WATCH_DELETED ||
		    row->type == K8S_WATCH_BOOKMARK)
			assert_true(k8s_is_resource_version(out.ev[0].resource_version));
		decoded_done(&out);
	}
}

static const char bookmark[] =
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"12\"}}}";

/* A line past the cap is one TooLarge ERROR, and the stream goes on after it. */
static void test_oversized_line(void **state)
{
	size_t max = 200, big = 1000;
	char *s = malloc(big + sizeof(bookmark) + 1);
	assert_non_null(s);
	memset(s, 'x', big);
	s[big - 1] = '\n';
	memcpy(s + big, bookmark, sizeof(bookmark) - 1);
	s[big + sizeof(bookmark) - 1] = '\n';
	size_t len = big + sizeof(bookmark);
	size_t ones[2048];
	for (size_t i = 0; i < 2048; i++)
		ones[i] = 1;
	size_t at[] = {0, 1, 150, 199, 200, 201, 998, 999, 1000, 1001};
	for (size_t k = 0; k <= sizeof(at) / sizeof(at[0]); k++) {
		struct decoded out = {.n = 0};
		if (k < sizeof(at) / sizeof(at[0]))
			decode_cut(s, len, &at[k], 1, max, &out);
		else
			decode_cut(s, len, ones, len, max, &out);
		assert_int_equal(out.n, 2);
		assert_int_equal(out.ev[0].type, K8S_WATCH_ERROR);
		assert_string_equal(out.ev[0].result.reason, "TooLarge");
		assert_int_equal(out.ev[1].type, K8S_WATCH_BOOKMARK);
		assert_string_equal(out.ev[1].resource_version, "12");
		decoded_done(&out);
	}
	free(s);
}

/* The cap is on the line without its '\n': max_line bytes pass, one more does not. */
static void test_line_at_the_cap(void **state)
{
	size_t n = sizeof(bookmark) - 1;
	char line[256];
	memcpy(line, bookmark, n);
	line[n] = '\n';
	for (int extra = 0; extra <= 1; extra++) {
		struct decoded out = {.n = 0};
		size_t cut = n / 2;
		decode_cut(line, n + 1, &cut, 1, n - (size_t)extra, &out);
		assert_int_equal(out.n, 1);
		assert_int_equal(out.ev[0].type, extra ? K8S_WATCH_ERROR : K8S_WATCH_BOOKMARK);
		decoded_done(&out);
	}
}

/* A partial line is kept across feeds and freed by done, even if never completed. */
static void test_partial_line_freed(void **state)
{
	struct k8s_watch_decoder d;
	k8s_watch_decoder_init(&d, 0);
	struct decoded out = {.n = 0};
	feed(&d, bookmark, 10, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(d.len, 10);
	k8s_watch_decoder_done(&d);
	assert_null(d.line);
	k8s_watch_event_done(NULL);
	assert_string_equal(k8s_watch_type_name(K8S_WATCH_EXPIRED), "EXPIRED");
	assert_string_equal(k8s_watch_type_name((enum k8s_watch_type)99), "?");
}

int main(int argc, char **argv)
{
	if (argc > 1)
		fixtures_root = argv[1];
	if (argc > 2)
		stream_path = argv[2];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stream_cut_at_every_offset),
	    cmocka_unit_test(test_stream_one_byte_at_a_time),
	    cmocka_unit_test(test_stream_random_runs),
	    cmocka_unit_test(test_several_events_per_run),
	    cmocka_unit_test(test_empty_lines_skipped),
	    cmocka_unit_test(test_real_pod_added_and_deleted),
	    cmocka_unit_test(test_line_table),
	    cmocka_unit_test(test_oversized_line),
	    cmocka_unit_test(test_line_at_the_cap),
	    cmocka_unit_test(test_partial_line_freed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
