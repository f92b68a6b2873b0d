#include "histogram.h"

#include <string.h>

const double histogram_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					    0.1,   0.25,   0.5,   1,    2.5,   5};
const size_t histogram_latency_n = sizeof(histogram_latency_buckets) / sizeof(double);
const double histogram_delay_buckets[] = {0.1, 0.25, 0.5, 1,   2.5, 5,    10,
					  30,  60,   120, 300, 600, 1800};
const size_t histogram_delay_n = sizeof(histogram_delay_buckets) / sizeof(double);

void histogram_init(struct histogram *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n = n < HISTOGRAM_MAX_BUCKETS ? n : HISTOGRAM_MAX_BUCKETS;
}

void histogram_observe(struct histogram *h, double seconds)
{
	size_t i = 0;

	while (i < h->n && seconds > h->bounds[i])
		i++;
	if (i < h->n)
		h->counts[i]++;
	else
		h->inf++;
	h->sum += seconds;
	h->count++;
}
