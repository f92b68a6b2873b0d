/* Durations and RFC 3339 times, the units every setting and API field uses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "timeutil.h"

#include <errno.h>
#include <string.h>

static void durations_parse(void **state)
{
	static const struct {
		const char *in;
		int rc;
		int64_t us;
	} rows[] = {
		{"250ms", 0, 250000}, {"2s", 0, 2000000}, {"5m", 0, 300000000},
		{"1h", 0, 3600000000}, {"1m30s", 0, 90000000}, {"0", 0, 0},
		{"100us", 0, 100}, {"0s", 0, 0},
		{"", -EINVAL, 0}, {"2", -EINVAL, 0}, {"s", -EINVAL, 0},
		{"-1s", -EINVAL, 0}, {"+1s", -EINVAL, 0}, {" 1s", -EINVAL, 0},
		{"1s ", -EINVAL, 0}, {"1.5s", -EINVAL, 0}, {"1d", -EINVAL, 0},
		{"1S", -EINVAL, 0}, {"99999999999999999999s", -ERANGE, 0},
		{"9223372036854775807h", -ERANGE, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t out = -42;
		int rc = timeutil_parse_duration(rows[i].in, &out);
		if (rc != rows[i].rc)
			fail_msg("'%s': rc %d, want %d", rows[i].in, rc, rows[i].rc);
		if (rc == 0 && out != rows[i].us)
			fail_msg("'%s': %lld, want %lld", rows[i].in, (long long)out,
				 (long long)rows[i].us);
		if (rc != 0 && out != -42)
			fail_msg("'%s': out written on failure", rows[i].in);
	}
	assert_int_equal(timeutil_parse_duration(NULL, &(int64_t){0}), -EINVAL);
}

static void durations_format(void **state)
{
	static const struct {
		int64_t us;
		const char *out;
	} rows[] = {
		{0, "0us"}, {999, "999us"}, {250000, "250ms"}, {1500000, "1.500s"},
		{2000000, "2s"}, {65000000, "1m05s"}, {3660000000, "1h01m"}, {-2000000, "-2s"},
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		timeutil_format_duration(rows[i].us, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].out);
	}
}

static void rfc3339_format(void **state)
{
	char buf[40];

	(void)state;
	timeutil_format_rfc3339(INT64_C(1795514702) * TIMEUTIL_S + 123456, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-24T10:05:02.123Z");
}

static void monotonic_clock_moves_forward(void **state)
{
	int64_t a = timeutil_mono_us(), b = timeutil_mono_us();

	(void)state;
	assert_true(b >= a);
	assert_true(timeutil_wall_us() > INT64_C(1700000000) * TIMEUTIL_S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations_parse),
		cmocka_unit_test(durations_format),
		cmocka_unit_test(rfc3339_format),
		cmocka_unit_test(monotonic_clock_moves_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
