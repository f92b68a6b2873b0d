#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t timeutil_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TIMEUTIL_S + ts.tv_nsec / 1000;
}

int64_t timeutil_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * TIMEUTIL_S + ts.tv_nsec / 1000;
}

static int64_t unit_us(const char *u, size_t len)
{
	static const struct {
		const char *name;
		int64_t us;
	} units[] = {
	    {"us", 1},
	    {"ms", TIMEUTIL_MS},
	    {"s", TIMEUTIL_S},
	    {"m", 60 * TIMEUTIL_S},
	    {"h", 3600 * TIMEUTIL_S},
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].name) == len && memcmp(units[i].name, u, len) == 0)
			return units[i].us;
	return 0;
}

int timeutil_parse_duration(const char *s, int64_t *out)
{
	int64_t total = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*p != '\0') {
		int64_t n = 0;
		const char *digits = p;

		/* Digits by hand: strtoll would accept signs and spaces. */
		while (*p >= '0' && *p <= '9') {
			if (n > (INT64_MAX - 9) / 10)
				return -ERANGE;
			n = n * 10 + (*p - '0');
			p++;
		}
		if (p == digits)
			return -EINVAL;
		const char *u = p;
		while ((*p >= 'a' && *p <= 'z'))
			p++;
		int64_t mult = unit_us(u, (size_t)(p - u));
		if (mult == 0)
			return -EINVAL;
		if (n > (INT64_MAX - total) / mult)
			return -ERANGE;
		total += n * mult;
	}
	*out = total;
	return 0;
}

void timeutil_format_duration(int64_t us, char *buf, size_t cap)
{
	const char *sign = "";

	if (us < 0) {
		sign = "-";
		us = us == INT64_MIN ? INT64_MAX : -us;
	}
	if (us < TIMEUTIL_MS)
		snprintf(buf, cap, "%s%lldus", sign, (long long)us);
	else if (us < TIMEUTIL_S)
		snprintf(buf, cap, "%s%lldms", sign, (long long)(us / TIMEUTIL_MS));
	else if (us < 10 * TIMEUTIL_S && us % TIMEUTIL_S != 0)
		snprintf(buf, cap, "%s%lld.%03llds", sign, (long long)(us / TIMEUTIL_S),
		         (long long)(us % TIMEUTIL_S / TIMEUTIL_MS));
	else if (us < 60 * TIMEUTIL_S)
		snprintf(buf, cap, "%s%llds", sign, (long long)(us / TIMEUTIL_S));
	else if (us < 3600 * TIMEUTIL_S)
		snprintf(buf, cap, "%s%lldm%02llds", sign, (long long)(us / (60 * TIMEUTIL_S)),
		         (long long)(us / TIMEUTIL_S % 60));
	else
		snprintf(buf, cap, "%s%lldh%02lldm", sign, (long long)(us / (3600 * TIMEUTIL_S)),
		         (long long)(us / (60 * TIMEUTIL_S) % 60));
}

void timeutil_format_rfc3339(int64_t epoch_us, char *buf, size_t cap)
{
	time_t secs = (time_t)(epoch_us / TIMEUTIL_S);
	int64_t frac = epoch_us % TIMEUTIL_S;
	struct tm tm;

	if (frac < 0) {
		frac += TIMEUTIL_S;
		secs--;
	}
	if (gmtime_r(&secs, &tm) == NULL) {
		snprintf(buf, cap, "invalid-time");
		return;
	}
	snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(frac / TIMEUTIL_MS));
}
