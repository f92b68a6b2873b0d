#include "resolve.h"

#include <stdio.h>
#include <string.h>

static bool allowed(const struct cfg_list *namespaces, const char *ns)
{
	for (size_t i = 0; i < namespaces->n; i++)
		if (strcmp(namespaces->items[i], ns) == 0)
			return true;
	return false;
}

static void unknown(struct verdict_lookup *l, struct k8s_result *res, const char *reason)
{
	memset(res, 0, sizeof(*res));
	res->outcome = K8S_UNKNOWN;
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
	l->outcome = K8S_UNKNOWN;
}

/* One GET; the found pod goes to *pod only if it beats what we have. */
static void try_pod(struct k8s_client *k, const char *ns, const char *name, const struct holder *h,
		    struct verdict_lookup *l, struct k8s_pod *pod, struct k8s_result *res,
		    bool *found, bool *found_by_ip, bool *any_unknown)
{
	struct k8s_pod p;
	struct k8s_result r;
	enum k8s_outcome o = k8s_get_pod(k, ns, name, &p, &r);

	if (o == K8S_UNKNOWN) {
		if (!*any_unknown && !*found) {
			*res = r;
			l->ns = ns;
			l->name = name;
		}
		*any_unknown = true;
		return;
	}
	if (o == K8S_GONE) {
		if (!*found && !*any_unknown) {
			*res = r;
			l->ns = ns;
			l->name = name;
		}
		return;
	}
	bool by_ip = false;
	for (size_t i = 0; i < p.n_pod_ips; i++)
		if (holder_addr_equals(h, p.pod_ips[i]))
			by_ip = true;
	if (!*found || (by_ip && !*found_by_ip)) {
		if (*found)
			k8s_pod_done(pod);
		*pod = p;
		*found = true;
		*found_by_ip = by_ip;
		*res = r;
		l->ns = ns;
		l->name = name;
	} else {
		k8s_pod_done(&p);
	}
}

void resolve_holder(struct k8s_client *k, const struct cfg_list *namespaces,
		    const struct episode *e, int64_t taken_us, struct verdict_lookup *l,
		    struct k8s_pod *pod, struct k8s_result *res)
{
	const struct holder *h = &e->holder;
	bool found = false, by_ip = false, any_unknown = false;

	memset(l, 0, sizeof(*l));
	memset(res, 0, sizeof(*res));
	l->taken_us = taken_us;
	l->res = res;
	if (h->kind == HOLDER_UNRESOLVABLE) {
		l->skipped = true;
		return;
	}
	if (h->kind == HOLDER_POD && !allowed(namespaces, h->ns)) {
		l->skipped = true;
		l->skip_why = "its namespace is not a --holder-namespace";
		return;
	}
	if (k == NULL) {
		unknown(l, res, "NotConfigured");
		l->ns = h->kind == HOLDER_POD ? h->ns : NULL;
		l->name = h->kind == HOLDER_POD ? h->pod : NULL;
		return;
	}
	if (h->kind == HOLDER_POD) {
		try_pod(k, h->ns, h->pod, h, l, pod, res, &found, &by_ip, &any_unknown);
	} else if (e->holder_pod[0] != '\0') {
		try_pod(k, e->holder_ns, e->holder_pod, h, l, pod, res, &found, &by_ip,
			&any_unknown);
	} else {
		for (size_t c = 0; c < h->n_candidates && !by_ip; c++) {
			const struct holder_candidate *cand = &h->candidates[c];
			if (cand->ns[0] != '\0') {
				if (allowed(namespaces, cand->ns))
					try_pod(k, cand->ns, cand->name, h, l, pod, res, &found,
						&by_ip, &any_unknown);
				continue;
			}
			for (size_t i = 0; i < namespaces->n && !by_ip; i++)
				try_pod(k, namespaces->items[i], cand->name, h, l, pod, res,
					&found, &by_ip, &any_unknown);
		}
	}
	if (found) {
		l->outcome = K8S_POD;
		l->pod = pod;
	} else if (any_unknown) {
		l->outcome = K8S_UNKNOWN;
	} else if (l->name == NULL) {
		/* No candidate could be asked (none in a holder namespace). */
		l->skipped = true;
		l->skip_why = "no candidate pod in a --holder-namespace";
	} else {
		l->outcome = K8S_GONE;
	}
}
