/*
 * time.c - RFC 3339 timestamps as the API server writes them (metav1.Time
 * "2019-08-09T05:12:19Z", metav1.MicroTime "2010-01-01T01:01:01.000010Z")
 * and as other clients may (offsets such as "-07:00"). Written here rather
 * than with strptime because strptime neither handles fractions nor
 * offsets with a colon portably, and it consults the local time zone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "k8s-internal.h"

/* Reads exactly n decimal digits at *p; -1 when they are not all digits. */
static int digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	return v;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

int k8s_time_parse(const char *s, int64_t *us)
{
	if (s == NULL)
		return -EINVAL;
	const char *p = s;
	int year = digits(&p, 4);
	if (year < 0 || *p++ != '-')
		return -EINVAL;
	int mon = digits(&p, 2);
	if (mon < 1 || mon > 12 || *p++ != '-')
		return -EINVAL;
	int day = digits(&p, 2);
	if (day < 1 || day > days_in_month(year, mon))
		return -EINVAL;
	if (*p != 'T' && *p != 't')
		return -EINVAL;
	p++;
	int hour = digits(&p, 2);
	if (hour < 0 || hour > 23 || *p++ != ':')
		return -EINVAL;
	int min = digits(&p, 2);
	if (min < 0 || min > 59 || *p++ != ':')
		return -EINVAL;
	/* 60 is a leap second; timegm carries it into the next minute. */
	int sec = digits(&p, 2);
	if (sec < 0 || sec > 60)
		return -EINVAL;

	int64_t frac_us = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		int64_t scale = 100000;
		/* Go writes at most nanoseconds; more digits is not a timestamp. */
		while (*p >= '0' && *p <= '9' && n < 9) {
			frac_us += (*p - '0') * scale;
			scale /= 10;
			p++;
			n++;
		}
		if (n == 0 || (*p >= '0' && *p <= '9'))
			return -EINVAL;
	}

	int64_t offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;
		int oh = digits(&p, 2);
		if (oh < 0 || oh > 23 || *p++ != ':')
			return -EINVAL;
		int om = digits(&p, 2);
		if (om < 0 || om > 59)
			return -EINVAL;
		offset_s = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;

	struct tm tm = {
	    .tm_year = year - 1900,
	    .tm_mon = mon - 1,
	    .tm_mday = day,
	    .tm_hour = hour,
	    .tm_min = min,
	    .tm_sec = sec,
	};
	time_t t = timegm(&tm);
	/* Years 0000-9999 fit in int64 microseconds many times over. */
	*us = ((int64_t)t - offset_s) * 1000000 + frac_us;
	return 0;
}

int k8s_time_format(int64_t us, bool micro, char *buf, size_t cap)
{
	int64_t secs = us / 1000000;
	int64_t frac = us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		secs -= 1;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -EINVAL;
	int n;
	if (micro)
		n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06" PRId64 "Z",
		             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		             tm.tm_sec, frac);
	else
		n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= cap)
		return -EINVAL;
	return 0;
}

int64_t k8s_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t k8s_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
