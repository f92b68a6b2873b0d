/*
 * fuzz_watch.c - fuzz target for the watch stream decoder
 * (k8s-client/watch-decode.c): the framing of a watch stream into lines
 * and each line into an event.
 *
 * The input is the stream itself (the corpus holds real watch lines), so
 * the cuts are derived from its bytes rather than taken from a header.
 * It is decoded three ways: in one run, in runs of pseudo-random sizes
 * (which must give exactly the same events: where the transport cuts a
 * stream must never change what it says), and in runs under a small line
 * cap (only the invariants are checked). Every run is an exactly sized
 * copy, so a read past the input is caught.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "k8s-internal.h"

#define MAX_SEEN 256

struct seen {
	size_t n;
	bool no_memory; /* the run stopped short: nothing to compare */
	enum k8s_watch_type type[MAX_SEEN];
	char rv[MAX_SEEN][K8S_RV_MAX];
	char uid[MAX_SEEN][64];
	char reason[MAX_SEEN][64];
};

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* What every event promises, whatever the input. */
static void check_event(const struct k8s_watch_event *ev)
{
	if (!terminated(ev->resource_version, sizeof(ev->resource_version)) ||
	    !terminated(ev->result.reason, sizeof(ev->result.reason)) ||
	    !terminated(ev->result.message, sizeof(ev->result.message)) ||
	    fuzz_has_control(ev->result.reason) || fuzz_has_control(ev->result.message))
		abort();
	switch (ev->type) {
	case K8S_WATCH_POD:
	case K8S_WATCH_DELETED:
		if (!k8s_is_dns1123_subdomain(ev->pod.name) || !k8s_is_dns1123_label(ev->pod.ns) ||
		    ev->pod.uid[0] == '\0' || strcmp(ev->resource_version, ev->pod.resource_version))
			abort();
		/* fall through */
	case K8S_WATCH_BOOKMARK:
		if (!k8s_is_resource_version(ev->resource_version))
			abort();
		break;
	case K8S_WATCH_EXPIRED:
	case K8S_WATCH_ERROR:
		if (ev->result.reason[0] == '\0' || ev->result.outcome != K8S_UNKNOWN)
			abort();
		break;
	default:
		abort(); /* ENDED and FAILED come from the watch set only */
	}
}

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/*
 * Decodes data in runs (seed 0: one run) under max_line, checking every
 * event and recording it in *out when out is not NULL.
 */
static void decode(const uint8_t *data, size_t size, uint32_t seed, size_t max_line,
                   struct seen *out)
{
	struct k8s_watch_decoder d;
	k8s_watch_decoder_init(&d, max_line);
	size_t pos = 0;
	do {
		size_t run = size - pos;
		if (seed != 0 && run > 0)
			run = 1 + next_rand(&seed) % (run < 97 ? run : 97);
		uint8_t *copy = malloc(run > 0 ? run : 1);
		if (copy == NULL) {
			if (out != NULL)
				out->no_memory = true;
			break;
		}
		memcpy(copy, data + pos, run);
		size_t at = 0;
		for (;;) {
			size_t used;
			struct k8s_watch_event ev;
			int r = k8s_watch_decode(&d, (const char *)copy + at, run - at, &used, &ev);
			if (used > run - at || (r != 0 && r != 1 && r != -ENOMEM))
				abort();
			at += used;
			if (r != 1)
				break;
			check_event(&ev);
			if (out != NULL && out->n < MAX_SEEN) {
				out->type[out->n] = ev.type;
				memcpy(out->rv[out->n], ev.resource_version, K8S_RV_MAX);
				memcpy(out->uid[out->n], ev.pod.uid, 64);
				memcpy(out->reason[out->n], ev.result.reason, 64);
				out->n++;
			}
			k8s_watch_event_done(&ev);
		}
		free(copy);
		if (at != run) { /* only out of memory leaves bytes behind */
			if (out != NULL)
				out->no_memory = true;
			break;
		}
		pos += run;
	} while (pos < size);
	k8s_watch_decoder_done(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen whole, cut;
	uint32_t seed = 2166136261u;
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	seed |= 1;

	memset(&whole, 0, sizeof(whole));
	memset(&cut, 0, sizeof(cut));
	decode(data, size, 0, 0, &whole);
	decode(data, size, seed, 0, &cut);
	if (whole.no_memory || cut.no_memory)
		return 0;
	if (whole.n != cut.n)
		abort();
	for (size_t i = 0; i < whole.n; i++)
		if (whole.type[i] != cut.type[i] || strcmp(whole.rv[i], cut.rv[i]) != 0 ||
		    strcmp(whole.uid[i], cut.uid[i]) != 0 ||
		    strcmp(whole.reason[i], cut.reason[i]) != 0)
			abort();
	/* A small cap: oversized lines anywhere, then the lines after them. */
	decode(data, size, seed ^ 0x9e3779b9u, 16 + size % 200, NULL);
	return 0;
}
