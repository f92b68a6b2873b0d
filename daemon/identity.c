/*
 * identity.c - the cluster identity check (DESIGN.md section 6): in
 * cluster, the API must show this arbiter's own pod before anything is
 * released, and again every 5 minutes.
 */
#include "identity.h"

#include "log.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

/*
 * The cluster identity check: in cluster, the API must show this
 * arbiter's own pod (with POD_UID when given) before anything is released,
 * and again every 5 minutes. An API that does not know us is the wrong API.
 * No answer keeps the last state and asks again next cycle.
 */
void identity_check(struct arbiter *a, int64_t mono)
{
	const struct cfg *c = a->cfg;
	struct k8s_pod pod;
	struct k8s_result res;
	bool ok;

	if (!a->identity_required || mono < a->identity_next_mono_us)
		return;
	switch (k8s_get_pod(a->k8s, c->pod_namespace, c->pod_name, &pod, &res)) {
	case K8S_POD:
		ok = c->pod_uid == NULL || strcmp(pod.uid, c->pod_uid) == 0;
		snprintf(a->identity_reason, sizeof(a->identity_reason),
			 ok ? "the API shows this arbiter's pod %s/%s"
			    : "the API shows a pod %s/%s with another uid than POD_UID: wrong cluster",
			 c->pod_namespace, c->pod_name);
		k8s_pod_done(&pod);
		break;
	case K8S_GONE:
		ok = false;
		snprintf(a->identity_reason, sizeof(a->identity_reason),
			 "the API does not know this arbiter's pod %s/%s: wrong cluster",
			 c->pod_namespace, c->pod_name);
		break;
	default:
		if (!a->identity_ok)
			snprintf(a->identity_reason, sizeof(a->identity_reason),
				 "cannot check this arbiter's pod: %ld %s", res.http_code,
				 res.reason);
		return;
	}
	a->identity_next_mono_us = mono + (c->test_identity_every_us > 0 ? c->test_identity_every_us
									 : ARBITER_IDENTITY_EVERY_US);
	if (ok != a->identity_ok || !a->identity_logged) {
		if (ok)
			log_info("cluster identity confirmed", "detail", a->identity_reason, NULL);
		else
			log_error("cluster identity check failed: no releases", "detail",
				  a->identity_reason, NULL);
	}
	a->identity_ok = ok;
	a->identity_logged = true;
}

/* The identity check as a task of its own, once. */
void identity_once(void *arg)
{
	struct arbiter *a = arg;

	identity_check(a, timeutil_mono_us());
}

/* And for the life of the daemon: when due, or again a poll later when the API did not answer. */
void identity_task(void *arg)
{
	struct arbiter *a = arg;

	while (!*a->stop) {
		int64_t now = timeutil_mono_us(), next;

		identity_check(a, now);
		arbiter_publish(a);
		next = a->identity_next_mono_us > now ? a->identity_next_mono_us
						      : now + a->cfg->poll_interval_us;
		if (loop_wait(a->loop, &a->identity_next_mono_us, next) < 0)
			return;
	}
}
