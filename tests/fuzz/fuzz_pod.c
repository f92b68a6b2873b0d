/*
 * fuzz_pod.c - fuzz target for the Pod and PodList parsers, the code that
 * reads whatever the API server (or anything pretending to be one) sends.
 *
 * With -Dfuzzing=true (clang) it links against libFuzzer. In a normal
 * build replay.c gives it a main() that replays every file named on the
 * command line, so the corpus and the fixtures run as a plain test under
 * the sanitizers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks what every successful parse promises: terminated strings, bounded counts. */
static void check_pod(const struct k8s_pod *p)
{
	if (memchr(p->name, '\0', sizeof(p->name)) == NULL ||
	    memchr(p->ns, '\0', sizeof(p->ns)) == NULL ||
	    memchr(p->uid, '\0', sizeof(p->uid)) == NULL || p->n_pod_ips > 4 ||
	    p->n_containers > K8S_MAX_CONTAINERS || !k8s_is_dns1123_subdomain(p->name) ||
	    !k8s_is_dns1123_label(p->ns))
		abort();
	for (size_t i = 0; i < p->n_containers; i++)
		if (!k8s_is_dns1123_label(p->containers[i].name) ||
		    memchr(p->containers[i].container_id, '\0',
		           sizeof(p->containers[i].container_id)) == NULL)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct k8s_pod p;
	if (k8s_pod_parse((const char *)data, size, &p, err, sizeof(err)) == 0) {
		check_pod(&p);
		k8s_pod_done(&p);
	}
	struct k8s_pod *pods;
	size_t n;
	if (k8s_pod_list_parse((const char *)data, size, &pods, &n, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < n; i++)
			check_pod(&pods[i]);
		k8s_pods_free(pods, n);
	}
	/* The timestamp parser takes C strings; give it the input as one. */
	if (size < 64) {
		char s[64];
		memcpy(s, data, size);
		s[size] = '\0';
		int64_t us;
		k8s_time_parse(s, &us);
	}
	return 0;
}
