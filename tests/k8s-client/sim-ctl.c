/*
 * sim-ctl.c - the simulator's control API for the C tests (sim-ctl.h),
 * through a fresh libcurl handle a call (plain HTTP on the loopback).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "sim-ctl.h"

const char *sim_control;

struct buf {
	char *p;
	size_t n;
};

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	char *np = realloc(b->p, b->n + size * nmemb + 1);
	assert_non_null(np);
	b->p = np;
	memcpy(b->p + b->n, data, size * nmemb);
	b->n += size * nmemb;
	b->p[b->n] = '\0';
	return size * nmemb;
}

const char *sim_need(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0') {
		fprintf(stderr, "%s is not set: run through tests/k8s-client/with_sim.py\n", name);
		exit(1);
	}
	return v;
}

long sim_ctl(const char *method, const char *path, const char *body, cJSON **out)
{
	char url[512];
	snprintf(url, sizeof(url), "%s/_sim%s", sim_control, path);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	struct buf b = {NULL, 0};
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("control %s %s: %s", method, path, curl_easy_strerror(rc));
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (code >= 300)
		fail_msg("control %s %s: %ld %s", method, path, code, b.p != NULL ? b.p : "");
	if (out != NULL) {
		*out = cJSON_Parse(b.p);
		assert_non_null(*out);
	}
	free(b.p);
	return code;
}

void sim_create_pod(const char *desc, char uid[64])
{
	cJSON *pod;
	sim_ctl("POST", "/pods", desc, &pod);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(pod, "metadata"), "uid");
	assert_true(cJSON_IsString(u));
	if (uid != NULL)
		snprintf(uid, 64, "%s", u->valuestring);
	cJSON_Delete(pod);
}

void sim_add_fault(const char *spec)
{
	sim_ctl("POST", "/faults", spec, NULL);
}

void sim_reset(void)
{
	sim_ctl("POST", "/faults/release", "{}", NULL);
	sim_ctl("DELETE", "/faults", NULL, NULL);
	sim_ctl("DELETE", "/requests", NULL, NULL);
}

cJSON *sim_requests(cJSON **root)
{
	sim_ctl("GET", "/requests", NULL, root);
	cJSON *items = cJSON_GetObjectItemCaseSensitive(*root, "requests");
	assert_true(cJSON_IsArray(items));
	return items;
}

const char *sim_entry_str(const cJSON *e, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

double sim_entry_num(const cJSON *e, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}
