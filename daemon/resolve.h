/*
 * resolve.h - from a parsed holder to one pod, through the API
 * (DESIGN.md section 5).
 *
 * Makes the lookups chooser_plan lists (or, once a pod has been seen
 * during the episode, only that pod's) and lets chooser_choose decide
 * among the answers. A lookup that gives no answer ends the round early:
 * an UNKNOWN anywhere decides nothing, so the others need not be asked.
 */
#ifndef LOCK_ARBITER_RESOLVE_H
#define LOCK_ARBITER_RESOLVE_H

#include "cfg.h"
#include "episode.h"
#include "verdict.h"

#include <k8s.h>

/* The caller's storage for one resolution; resolve_done frees the pod. */
struct resolve {
	struct verdict_lookup l; /* l.pod, l.res and l.candidates point in here */
	struct k8s_pod pod;
	struct k8s_result res;
	char candidates[384]; /* "shop/web-0: pod, address confirms; ops/web-0: gone" */
	/* The IPs of every candidate pod found alive, for the session guard. */
	char alive_addrs[8][64];
	size_t n_alive_addrs;
};

/*
 * Fills *r. k may be NULL (no API configured): UNKNOWN with reason
 * "NotConfigured". l.ns and l.name point into e, its holder or namespaces.
 */
void resolve_holder(struct k8s_client *k, const struct cfg_list *namespaces,
		    const struct episode *e, int64_t taken_us, struct resolve *r);
void resolve_done(struct resolve *r);

#endif
