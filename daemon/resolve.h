/*
 * resolve.h - from a parsed holder to one pod lookup (DESIGN.md section 5).
 *
 * NAMESPACE:POD is looked up as named. HOST (ADDR) tries each candidate
 * pod name in each holder namespace (or the namespace the host name
 * implies); a pod whose IP equals ADDR is preferred, any found pod comes
 * next. Once a pod has been seen during the episode, only that pod is
 * looked up again. Namespaces outside --holder-namespace are never asked.
 */
#ifndef LOCK_ARBITER_RESOLVE_H
#define LOCK_ARBITER_RESOLVE_H

#include "cfg.h"
#include "episode.h"
#include "verdict.h"

#include <k8s.h>

/*
 * Fills *l (whose ns/name point into e or namespaces) and, for K8S_POD,
 * *pod (the caller frees it with k8s_pod_done). k may be NULL (no API
 * configured): UNKNOWN with reason "NotConfigured".
 */
void resolve_holder(struct k8s_client *k, const struct cfg_list *namespaces,
		    const struct episode *e, int64_t taken_us, struct verdict_lookup *l,
		    struct k8s_pod *pod, struct k8s_result *res);

#endif
