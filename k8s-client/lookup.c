/*
 * lookup.c - the pod requests: GET one pod by name, LIST the pods that
 * have an address. Names are validated (DNS-1123) and escaped before a
 * URL is built, so a hostile LOCKEDBY never becomes a request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

/* curl_easy_escape into a string freed with curl_free (libcurl ignores the handle). */
static char *escape(const char *s)
{
	return curl_easy_escape(NULL, s, (int)strlen(s));
}

/*
 * A GET of url (taken: freed here; NULL means out of memory). 0 with x
 * holding a 200 answer, which the caller ends with k8s_xfer_done; else -1
 * with res filled (an error answer through k8s_error_result, name as
 * there) and x done.
 */
static int fetch(struct k8s_client *k, const char *verb, char *url, const char *post,
                 const char *name, struct k8s_xfer *x, struct k8s_result *res)
{
	if (url == NULL) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "NoMemory", "out of memory");
		return -1;
	}
	int r = k8s_request(k, verb, url, post, x, res);
	free(url);
	if (r == 0 && x->code == 200)
		return 0;
	if (r == 0)
		k8s_error_result(k, x, name, res);
	k8s_xfer_done(k, x);
	return -1;
}

enum k8s_outcome k8s_get_pod(struct k8s_client *k, const char *ns, const char *name,
                             struct k8s_pod *pod, struct k8s_result *res)
{
	struct k8s_result local;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (!k8s_is_dns1123_label(ns) || !k8s_is_dns1123_subdomain(name)) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Invalid",
		           "namespace must be a DNS-1123 label and name a DNS-1123 subdomain");
		return K8S_UNKNOWN;
	}
	/* The names are already safe; escaping anyway costs nothing. */
	char *ens = escape(ns), *ename = escape(name), *url = NULL;
	if (ens != NULL && ename != NULL)
		url = k8s_join(k->base, "/api/v1/namespaces/", ens, "/pods/", ename, (char *)NULL);
	curl_free(ens);
	curl_free(ename);
	struct k8s_xfer x = {0};
	if (fetch(k, "get", url, NULL, name, &x, res) < 0)
		return res->outcome;

	long code = x.code;
	char err[160];
	struct k8s_pod p;
	int r = k8s_pod_parse(x.body.buf, x.body.len, &p, err, sizeof(err));
	k8s_xfer_done(k, &x);
	if (r < 0) {
		k8s_result_set(res, K8S_UNKNOWN, code, r == -ENOMEM ? "NoMemory" : "Malformed", "%s",
		           err);
		return K8S_UNKNOWN;
	}
	/* A pod other than the one asked for is no answer about it. */
	if (strcmp(p.ns, ns) != 0 || strcmp(p.name, name) != 0) {
		k8s_pod_done(&p);
		k8s_result_set(res, K8S_UNKNOWN, code, "Malformed",
		           "the API answered with another pod");
		return K8S_UNKNOWN;
	}
	if (pod != NULL)
		*pod = p;
	else
		k8s_pod_done(&p);
	k8s_result_set(res, K8S_POD, code, "", "%s", "");
	return K8S_POD;
}

enum k8s_outcome k8s_list_pods_by_ip(struct k8s_client *k, const char *ns, const char *ip,
                                     struct k8s_pod **pods, size_t *n, struct k8s_result *res)
{
	struct k8s_result local;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	/*
	 * The field selector compares strings, and the API writes addresses
	 * in canonical form (fd00::2), while Liquibase writes fd00:0:0:0:0:0:0:2:
	 * so the address is parsed and printed back canonically.
	 */
	unsigned char addr[16];
	char canon[INET6_ADDRSTRLEN];
	bool ok = k8s_is_dns1123_label(ns) && ip != NULL;
	if (ok) {
		if (inet_pton(AF_INET, ip, addr) == 1)
			ok = inet_ntop(AF_INET, addr, canon, sizeof(canon)) != NULL;
		else if (inet_pton(AF_INET6, ip, addr) == 1)
			ok = inet_ntop(AF_INET6, addr, canon, sizeof(canon)) != NULL;
		else
			ok = false;
	}
	if (!ok) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Invalid",
		           "namespace must be a DNS-1123 label and ip an IPv4 or IPv6 address");
		return K8S_UNKNOWN;
	}
	char *selector = k8s_join("status.podIP=", canon, (char *)NULL);
	char *ens = escape(ns), *esel = selector != NULL ? escape(selector) : NULL;
	char *url = NULL;
	if (ens != NULL && esel != NULL)
		url = k8s_join(k->base, "/api/v1/namespaces/", ens, "/pods?fieldSelector=", esel,
		           (char *)NULL);
	free(selector);
	curl_free(ens);
	curl_free(esel);
	struct k8s_xfer x = {0};
	/* A list has no NotFound meaning "gone" (name NULL): always UNKNOWN. */
	if (fetch(k, "list", url, NULL, NULL, &x, res) < 0)
		return K8S_UNKNOWN;
	long code = x.code;
	char err[200];
	struct k8s_pod *v;
	size_t count;
	int r = k8s_pod_list_parse(x.body.buf, x.body.len, &v, &count, err, sizeof(err));
	k8s_xfer_done(k, &x);
	if (r < 0) {
		k8s_result_set(res, K8S_UNKNOWN, code, r == -ENOMEM ? "NoMemory" : "Malformed", "%s",
		           err);
		return K8S_UNKNOWN;
	}
	*pods = v;
	*n = count;
	k8s_result_set(res, K8S_POD, code, "", "%s", "");
	return K8S_POD;
}
