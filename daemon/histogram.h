/*
 * histogram.h - a Prometheus-style histogram with fixed buckets.
 *
 * Plain value type: copying it copies the counts, which is how the main
 * thread publishes it to the HTTP thread.
 */
#ifndef LOCK_ARBITER_HISTOGRAM_H
#define LOCK_ARBITER_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_MAX_BUCKETS 16

struct histogram {
	const double *bounds; /* upper bounds in seconds, ascending; static */
	size_t n;             /* number of bounds (the +Inf bucket is implied) */
	uint64_t counts[HISTOGRAM_MAX_BUCKETS]; /* not cumulative */
	uint64_t inf;         /* above the last bound */
	double sum;
	uint64_t count;
};

/* Bucket sets that fit what they measure. */
extern const double histogram_latency_buckets[];  /* 1 ms .. 5 s: polls, API requests */
extern const size_t histogram_latency_n;
extern const double histogram_delay_buckets[];    /* 100 ms .. 30 min: orphan release delay */
extern const size_t histogram_delay_n;

void histogram_init(struct histogram *h, const double *bounds, size_t n);
void histogram_observe(struct histogram *h, double seconds);

#endif
