/*
 * test_names_time.c - the DNS-1123 checks that guard every URL the client
 * builds, and the RFC 3339 parser and formatter behind every timestamp.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "k8s-internal.h"

static void test_dns1123_label(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} rows[] = {
	    {"db", true},
	    {"a", true},
	    {"0", true},
	    {"lock-arbiter", true},
	    {"a1-b2", true},
	    {"012345678901234567890123456789012345678901234567890123456789012", true},
	    {"0123456789012345678901234567890123456789012345678901234567890123", false},
	    {"", false},
	    {"-a", false},
	    {"a-", false},
	    {"A", false},
	    {"a.b", false},
	    {"a_b", false},
	    {"..", false},
	    {"a/b", false},
	    {"a%2f", false},
	    {"é", false},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (k8s_is_dns1123_label(rows[i].s) != rows[i].ok)
			fail_msg("label \"%s\": expected %d", rows[i].s, rows[i].ok);
	assert_false(k8s_is_dns1123_label(NULL));
}

static void test_dns1123_subdomain(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} rows[] = {
	    {"db-0", true},
	    {"web-0.web.shop.svc.cluster.local", true},
	    {"nginx-7fb78fb6d8-2w75j", true},
	    {"a.b", true},
	    {"", false},
	    {".", false},
	    {"a.", false},
	    {".a", false},
	    {"a..b", false},
	    {"../../secrets/x", false},
	    {"db-0/exec", false},
	    {"DB-0", false},
	    {"a.-b", false},
	    {"db 0", false},
	    {"db-0?x=1", false},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (k8s_is_dns1123_subdomain(rows[i].s) != rows[i].ok)
			fail_msg("subdomain \"%s\": expected %d", rows[i].s, rows[i].ok);
	assert_false(k8s_is_dns1123_subdomain(NULL));

	/* Up to 253 characters in all; like Kubernetes, a label may pass 63. */
	char s[300];
	memset(s, 'a', sizeof(s));
	s[253] = '\0';
	assert_true(k8s_is_dns1123_subdomain(s));
	s[253] = 'a';
	s[254] = '\0';
	assert_false(k8s_is_dns1123_subdomain(s));
}

static void test_time_parse(void **state)
{
	static const struct {
		const char *s;
		int64_t us;
	} good[] = {
	    {"1970-01-01T00:00:00Z", 0},
	    {"2019-08-09T05:12:19Z", INT64_C(1565327539000000)},
	    {"2019-08-09t05:12:19z", INT64_C(1565327539000000)},
	    {"2010-01-01T01:01:01.000010Z", INT64_C(1262307661000010)},
	    {"2010-01-01T01:01:01.5Z", INT64_C(1262307661500000)},
	    /* Nanoseconds are dropped, not rounded. */
	    {"2010-01-01T01:01:01.123456789Z", INT64_C(1262307661123456)},
	    {"2019-12-31T12:26:47-07:00", INT64_C(1577820407000000)},
	    {"2019-12-31T20:26:47+01:00", INT64_C(1577820407000000)},
	    {"2020-02-29T00:00:00Z", INT64_C(1582934400000000)},
	    {"1969-12-31T23:59:59Z", -1000000},
	    {"2016-12-31T23:59:60Z", INT64_C(1483228800000000)},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t us = 42;
		if (k8s_time_parse(good[i].s, &us) != 0)
			fail_msg("\"%s\" refused", good[i].s);
		if (us != good[i].us)
			fail_msg("\"%s\": %lld, expected %lld", good[i].s, (long long)us,
			         (long long)good[i].us);
	}
	static const char *const bad[] = {
	    "",
	    "2019-08-09",
	    "2019-08-09T05:12:19",
	    "2019-08-09 05:12:19Z",
	    "2019-8-09T05:12:19Z",
	    "2019-13-09T05:12:19Z",
	    "2019-02-29T00:00:00Z",
	    "2019-08-09T24:00:00Z",
	    "2019-08-09T05:60:00Z",
	    "2019-08-09T05:12:61Z",
	    "2019-08-09T05:12:19.Z",
	    "2019-08-09T05:12:19.1234567890Z",
	    "2019-08-09T05:12:19+0700",
	    "2019-08-09T05:12:19+07",
	    "2019-08-09T05:12:19Zjunk",
	    "2019-08-09T05:12:19 Z",
	    "+2019-08-09T05:12:19Z",
	    "yesterday",
	    "2019-08-09T05:12:19+24:00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t us = 42;
		if (k8s_time_parse(bad[i], &us) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(us, 42);
	}
	assert_int_equal(k8s_time_parse(NULL, NULL), -EINVAL);
}

static void test_time_format(void **state)
{
	char buf[40];
	assert_int_equal(k8s_time_format(INT64_C(1262307661000010), true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2010-01-01T01:01:01.000010Z");
	assert_int_equal(k8s_time_format(INT64_C(1262307661999999), false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2010-01-01T01:01:01Z");
	assert_int_equal(k8s_time_format(-1, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
	/* Round trip. */
	int64_t us;
	assert_int_equal(k8s_time_format(INT64_C(1724464478123456), true, buf, sizeof(buf)), 0);
	assert_int_equal(k8s_time_parse(buf, &us), 0);
	assert_int_equal(us, INT64_C(1724464478123456));
	/* Too small a buffer is an error, not a cut timestamp. */
	assert_int_equal(k8s_time_format(0, true, buf, 20), -EINVAL);
	assert_int_equal(k8s_time_format(INT64_C(1) << 60, false, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dns1123_label),
	    cmocka_unit_test(test_dns1123_subdomain),
	    cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_time_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
