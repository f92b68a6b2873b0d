/*
 * config.c - where the API is and how to reach it: the defaults, the
 * in-cluster service account (DESIGN.md section 7), and the check of an
 * API URL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

void k8s_config_default(struct k8s_config *c)
{
	memset(c, 0, sizeof(*c));
	c->connect_timeout_us = 2 * 1000000;
	c->request_timeout_us = 5 * 1000000;
	c->token_reread_us = 60 * (int64_t)1000000;
	c->max_body = K8S_MAX_BODY;
	c->backoff_min_us = 500 * 1000;
	c->backoff_max_us = 10 * 1000000;
}

void k8s_config_done(struct k8s_config *c)
{
	if (c == NULL)
		return;
	free(c->api_url);
	free(c->token_file);
	free(c->ca_file);
	c->api_url = c->token_file = c->ca_file = NULL;
}

int k8s_config_in_cluster(struct k8s_config *c, const char *sa_dir, char *err, size_t cap)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || host[0] == '\0') {
		k8s_fail(err, cap,
		     "KUBERNETES_SERVICE_HOST is not set: not running in a cluster "
		     "(give --kube-api instead)");
		return -ENOENT;
	}
	if (port == NULL || port[0] == '\0')
		port = "443";
	char *end;
	errno = 0;
	long pn = strtol(port, &end, 10);
	if (errno != 0 || *end != '\0' || pn < 1 || pn > 65535 || port[0] < '0' || port[0] > '9') {
		k8s_fail(err, cap, "KUBERNETES_SERVICE_PORT \"%.16s\" is not a port number", port);
		return -EINVAL;
	}

	/* An IPv6 address goes in brackets, or its colons would read as a port. */
	bool v6 = strchr(host, ':') != NULL;
	if (v6) {
		unsigned char a[16];
		if (inet_pton(AF_INET6, host, a) != 1) {
			k8s_fail(err, cap, "KUBERNETES_SERVICE_HOST \"%.64s\" is not an IPv6 address",
			     host);
			return -EINVAL;
		}
	} else {
		for (const char *s = host; *s != '\0'; s++) {
			char ch = *s;
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-')) {
				k8s_fail(err, cap, "KUBERNETES_SERVICE_HOST \"%.64s\" is not a host",
				     host);
				return -EINVAL;
			}
		}
	}

	const char *dir = sa_dir != NULL ? sa_dir : K8S_SA_DIR;
	char *url = k8s_join("https://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port, (char *)NULL);
	char *token = k8s_join(dir, "/token", (char *)NULL);
	char *ca = k8s_join(dir, "/ca.crt", (char *)NULL);
	if (url == NULL || token == NULL || ca == NULL) {
		free(url);
		free(token);
		free(ca);
		k8s_fail(err, cap, "out of memory");
		return -ENOMEM;
	}
	k8s_config_done(c);
	c->api_url = url;
	c->token_file = token;
	c->ca_file = ca;
	return 0;
}

static bool is_loopback_host(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

int k8s_url_check(const char *url, bool *https, bool *loopback, char *err, size_t cap)
{
	CURLU *u = curl_url();
	if (u == NULL) {
		k8s_fail(err, cap, "out of memory");
		return -ENOMEM;
	}
	int r = 0;
	char *scheme = NULL, *host = NULL, *part = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		k8s_fail(err, cap, "Kubernetes API URL \"%.128s\" is not a URL", url);
		r = -EINVAL;
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
		k8s_fail(err, cap, "Kubernetes API URL must be http:// or https://, not %.16s://",
		     scheme);
		r = -EINVAL;
		goto out;
	}
	static const CURLUPart forbidden[] = {CURLUPART_QUERY, CURLUPART_FRAGMENT, CURLUPART_USER};
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		if (curl_url_get(u, forbidden[i], &part, 0) == CURLUE_OK) {
			k8s_fail(err, cap, "Kubernetes API URL must have no query, fragment or user");
			r = -EINVAL;
			goto out;
		}
	}
	*https = strcmp(scheme, "https") == 0;
	*loopback = is_loopback_host(host);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(part);
	curl_url_cleanup(u);
	return r;
}
