#include "resolve.h"

#include "chooser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool confirms(const struct holder *h, const struct k8s_pod *p)
{
	for (size_t i = 0; i < p->n_pod_ips; i++)
		if (holder_addr_equals(h, p->pod_ips[i]))
			return true;
	return false;
}

/* Appends "ns/name: what" to the candidates line. */
static void describe(struct resolve *r, const struct chooser_lookup *lk,
		     const struct chooser_answer *a, const struct k8s_result *res)
{
	size_t len = strlen(r->candidates);
	char what[96];

	if (a->outcome == K8S_POD)
		snprintf(what, sizeof(what), "pod%s",
			 a->addr_confirms ? ", address confirms" : "");
	else if (a->outcome == K8S_GONE)
		snprintf(what, sizeof(what), "gone");
	else
		snprintf(what, sizeof(what), "no answer (%ld %s)", res->http_code,
			 res->reason[0] ? res->reason : "no response");
	snprintf(r->candidates + len, sizeof(r->candidates) - len, "%s%s/%s: %s",
		 len > 0 ? "; " : "", lk->ns, lk->name, what);
}

void resolve_holder(struct k8s_client *k, const struct cfg_list *namespaces,
		    const struct episode *e, int64_t taken_us, struct resolve *r)
{
	const struct holder *h = &e->holder;
	struct verdict_lookup *l = &r->l;
	struct chooser_lookup one, *plan = &one;
	struct chooser_answer *ans = NULL;
	struct k8s_pod *pods = NULL;
	struct k8s_result *res = NULL;
	size_t n, asked = 0;

	memset(r, 0, sizeof(*r));
	l->taken_us = taken_us;
	l->res = &r->res;
	l->candidates = r->candidates;
	if (h->kind == HOLDER_UNRESOLVABLE) {
		l->skipped = true;
		return;
	}
	/* A pod seen during the episode is the holder from then on. */
	if (e->holder_pod[0] != '\0') {
		one.ns = e->holder_ns;
		one.name = e->holder_pod;
		n = 1;
	} else {
		n = chooser_plan(h, namespaces, NULL, 0);
		if (n > 1 && (plan = calloc(n, sizeof(*plan))) == NULL) {
			l->outcome = K8S_UNKNOWN;
			snprintf(r->res.reason, sizeof(r->res.reason), "OutOfMemory");
			return;
		}
		chooser_plan(h, namespaces, plan, n);
	}
	if (n == 0) {
		l->skipped = true;
		l->skip_why = h->kind == HOLDER_POD ? "its namespace is not a --holder-namespace"
						    : "no candidate pod in a --holder-namespace";
		goto out;
	}
	if (k == NULL) {
		l->outcome = K8S_UNKNOWN;
		l->ns = plan[0].ns;
		l->name = plan[0].name;
		snprintf(r->res.reason, sizeof(r->res.reason), "NotConfigured");
		goto out;
	}
	ans = calloc(n, sizeof(*ans));
	pods = calloc(n, sizeof(*pods));
	res = calloc(n, sizeof(*res));
	if (ans == NULL || pods == NULL || res == NULL) {
		l->outcome = K8S_UNKNOWN;
		snprintf(r->res.reason, sizeof(r->res.reason), "OutOfMemory");
		goto out;
	}
	while (asked < n) {
		size_t i = asked++;

		ans[i].outcome = k8s_get_pod(k, plan[i].ns, plan[i].name, &pods[i], &res[i]);
		ans[i].addr_confirms = ans[i].outcome == K8S_POD && confirms(h, &pods[i]);
		for (size_t j = 0; ans[i].outcome == K8S_POD && j < pods[i].n_pod_ips &&
				   r->n_alive_addrs < sizeof(r->alive_addrs) / sizeof(r->alive_addrs[0]);
		     j++)
			snprintf(r->alive_addrs[r->n_alive_addrs++], sizeof(r->alive_addrs[0]), "%s",
				 pods[i].pod_ips[j]);
		describe(r, &plan[i], &ans[i], &res[i]);
		if (ans[i].outcome == K8S_UNKNOWN)
			break; /* decides nothing whatever the others say */
	}

	struct chooser_choice c = chooser_choose(ans, asked);
	switch (c.kind) {
	case CHOOSER_POD:
		r->pod = pods[c.index];
		ans[c.index].outcome = K8S_GONE; /* moved: not freed below */
		l->pod = &r->pod;
		l->outcome = K8S_POD;
		break;
	case CHOOSER_AMBIGUOUS:
		l->ambiguous = true;
		l->outcome = K8S_UNKNOWN;
		break;
	case CHOOSER_GONE:
		l->outcome = K8S_GONE;
		break;
	default:
		l->outcome = K8S_UNKNOWN;
		break;
	}
	if (c.kind != CHOOSER_AMBIGUOUS) {
		r->res = res[c.index];
		l->ns = plan[c.index].ns;
		l->name = plan[c.index].name;
	}
	for (size_t i = 0; i < asked; i++)
		if (ans[i].outcome == K8S_POD)
			k8s_pod_done(&pods[i]);
out:
	free(ans);
	free(pods);
	free(res);
	if (plan != &one)
		free(plan);
}

void resolve_done(struct resolve *r)
{
	/* Only the pod this resolution owns: a watch's snapshot stays the watch's. */
	if (r->l.pod == &r->pod)
		k8s_pod_done(&r->pod);
	r->l.pod = NULL;
}
