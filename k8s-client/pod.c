/*
 * pod.c - a core/v1 Pod (or PodList) from the API server's JSON into the
 * small fixed struct k8s_pod that the verdicts read.
 *
 * The parser is strict where a mistake could fake a death and tolerant
 * where the API legitimately leaves things out: null and missing fields
 * become zero or empty, but a field that is present with the wrong type, a
 * string that does not fit its buffer, a name that is not DNS-1123 or an
 * object that is not a Pod makes the whole snapshot -EINVAL, which the
 * client reports as UNKNOWN (never evidence of death).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

/* A PodList with more items than this is refused rather than allocated. */
#define MAX_LIST_ITEMS 1024

int k8s_fail(char *err, size_t cap, const char *fmt, ...)
{
	if (err != NULL && cap > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

cJSON *k8s_json_parse(const char *json, size_t len)
{
	if (json == NULL || len == 0)
		return NULL;
	const char *end = NULL;
	/*
	 * Not require_null_terminated: with an explicit length cJSON would
	 * then demand a NUL inside the length. Trailing bytes are checked
	 * here instead, so that "{}garbage" is not one value.
	 */
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (root == NULL)
		return NULL;
	for (const char *p = end; p < json + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			cJSON_Delete(root);
			return NULL;
		}
	}
	return root;
}

/*
 * Context for error messages: the JSON path of the object being read, in
 * two parts so that nested paths need no copying.
 */
struct ctx {
	const char *path;
	const char *sub;
	char *err;
	size_t cap;
};

/*
 * A member, with JSON null folded into absence (the API's omitempty). A
 * key that appears twice is refused: cJSON would take the first and Go the
 * last, and a snapshot must not depend on which parser read it.
 */
static int member(const struct ctx *c, const cJSON *obj, const char *key, const cJSON **out)
{
	const cJSON *found = NULL;
	*out = NULL;
	if (obj == NULL)
		return 0;
	for (const cJSON *e = obj->child; e != NULL; e = e->next) {
		if (e->string == NULL || strcmp(e->string, key) != 0)
			continue;
		if (found != NULL)
			return k8s_fail(c->err, c->cap, "%s%s%s: duplicate key", c->path, c->sub,
			                key);
		found = e;
	}
	*out = cJSON_IsNull(found) ? NULL : found;
	return 0;
}

static int get_object(const struct ctx *c, const cJSON *obj, const char *key, const cJSON **out)
{
	const cJSON *v;
	int r = member(c, obj, key, &v);
	if (r < 0)
		return r;
	if (v != NULL && !cJSON_IsObject(v))
		return k8s_fail(c->err, c->cap, "%s%s%s: not an object", c->path, c->sub, key);
	*out = v;
	return 0;
}

static int get_array(const struct ctx *c, const cJSON *obj, const char *key, const cJSON **out)
{
	const cJSON *v;
	int r = member(c, obj, key, &v);
	if (r < 0)
		return r;
	if (v != NULL && !cJSON_IsArray(v))
		return k8s_fail(c->err, c->cap, "%s%s%s: not an array", c->path, c->sub, key);
	*out = v;
	return 0;
}

/* The string value, NULL when absent. */
static int get_str(const struct ctx *c, const cJSON *obj, const char *key, const char **out)
{
	const cJSON *v;
	int r = member(c, obj, key, &v);
	if (r < 0)
		return r;
	if (v != NULL && !cJSON_IsString(v))
		return k8s_fail(c->err, c->cap, "%s%s%s: not a string", c->path, c->sub, key);
	*out = v != NULL ? v->valuestring : NULL;
	return 0;
}

/* Copies a string member into buf whole, or fails: never truncates. */
static int get_strbuf(const struct ctx *c, const cJSON *obj, const char *key, char *buf,
                      size_t bufcap)
{
	const char *s;
	int r = get_str(c, obj, key, &s);
	if (r < 0)
		return r;
	if (s == NULL) {
		buf[0] = '\0';
		return 0;
	}
	size_t n = strlen(s);
	if (n >= bufcap)
		return k8s_fail(c->err, c->cap, "%s%s%s: longer than %zu bytes", c->path, c->sub,
		                key, bufcap - 1);
	memcpy(buf, s, n + 1);
	return 0;
}

static int get_int(const struct ctx *c, const cJSON *obj, const char *key, int lo, int hi, int *out)
{
	const cJSON *v;
	int r = member(c, obj, key, &v);
	if (r < 0)
		return r;
	if (v == NULL) {
		*out = 0;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return k8s_fail(c->err, c->cap, "%s%s%s: not a number", c->path, c->sub, key);
	double d = v->valuedouble;
	/*
	 * cJSON's valueint saturates silently; check the double instead: in
	 * range first, so that the conversion to int is defined, then whole.
	 */
	if (!isfinite(d) || d < lo || d > hi || (double)(int)d != d)
		return k8s_fail(c->err, c->cap, "%s%s%s: not an integer in [%d, %d]", c->path,
		                c->sub, key, lo, hi);
	*out = (int)d;
	return 0;
}

static int get_time(const struct ctx *c, const cJSON *obj, const char *key, int64_t *out)
{
	const char *s;
	int r = get_str(c, obj, key, &s);
	if (r < 0)
		return r;
	if (s == NULL || s[0] == '\0') {
		*out = 0;
		return 0;
	}
	if (k8s_time_parse(s, out) < 0)
		return k8s_fail(c->err, c->cap, "%s%s%s: not an RFC 3339 time", c->path, c->sub,
		                key);
	return 0;
}

/*
 * The current state. The API sets at most one of running, waiting and
 * terminated; should a body set several, running wins (a live instance is
 * never hidden), then terminated, then waiting.
 */
static int parse_state(const struct ctx *c, const cJSON *state, struct k8s_container *ct)
{
	const cJSON *running, *waiting, *terminated;
	int r;
	if ((r = get_object(c, state, "running", &running)) < 0 ||
	    (r = get_object(c, state, "waiting", &waiting)) < 0 ||
	    (r = get_object(c, state, "terminated", &terminated)) < 0)
		return r;

	struct ctx sub = *c;
	if (running != NULL) {
		sub.sub = "state.running.";
		ct->state = K8S_CSTATE_RUNNING;
		return get_time(&sub, running, "startedAt", &ct->started_at);
	}
	if (terminated != NULL) {
		sub.sub = "state.terminated.";
		ct->state = K8S_CSTATE_TERMINATED;
		if ((r = get_time(&sub, terminated, "startedAt", &ct->started_at)) < 0 ||
		    (r = get_time(&sub, terminated, "finishedAt", &ct->finished_at)) < 0 ||
		    (r = get_strbuf(&sub, terminated, "reason", ct->reason, sizeof(ct->reason))) <
		        0 ||
		    (r = get_int(&sub, terminated, "exitCode", INT_MIN, INT_MAX, &ct->exit_code)) <
		        0)
			return r;
		return 0;
	}
	if (waiting != NULL) {
		sub.sub = "state.waiting.";
		ct->state = K8S_CSTATE_WAITING;
		return get_strbuf(&sub, waiting, "reason", ct->reason, sizeof(ct->reason));
	}
	ct->state = K8S_CSTATE_NONE;
	return 0;
}

static int parse_last_state(const struct ctx *c, const cJSON *last, struct k8s_container *ct)
{
	const cJSON *terminated;
	int r = get_object(c, last, "terminated", &terminated);
	if (r < 0 || terminated == NULL)
		return r;
	struct ctx sub = *c;
	sub.sub = "lastState.terminated.";
	ct->last_terminated = true;
	if ((r = get_time(&sub, terminated, "finishedAt", &ct->last_finished_at)) < 0 ||
	    (r = get_int(&sub, terminated, "exitCode", INT_MIN, INT_MAX, &ct->last_exit_code)) < 0)
		return r;
	return 0;
}

/* A container's name, which Kubernetes requires to be a DNS-1123 label. */
static int get_container_name(const struct ctx *c, const cJSON *obj, char name[64])
{
	int r = get_strbuf(c, obj, "name", name, 64);
	if (r < 0)
		return r;
	if (!k8s_is_dns1123_label(name))
		return k8s_fail(c->err, c->cap, "%s%sname: \"%.63s\" is not a DNS-1123 label",
		                c->path, c->sub, name);
	return 0;
}

/* The containers being built, and which of them already have a status. */
struct clist {
	struct k8s_container *v;
	bool *has_status;
	size_t n, cap;
};

static struct k8s_container *clist_find(struct clist *l, size_t from, const char *name)
{
	for (size_t i = from; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

/*
 * Adds the spec entries and then the statuses of one kind of container
 * (regular or init). A status is matched to the spec entry of its name; one
 * without a spec entry still counts (a pod body without a spec), and a spec
 * entry without a status stays K8S_CSTATE_NONE.
 */
static int parse_containers(char *err, size_t cap, const cJSON *spec_list, const char *spec_key,
                            const cJSON *status_list, const char *status_key, bool init,
                            struct clist *l)
{
	char path[96];
	struct ctx c = {path, "", err, cap};
	size_t base = l->n;
	const cJSON *item;
	size_t i = 0;
	int r;

	cJSON_ArrayForEach(item, spec_list)
	{
		snprintf(path, sizeof(path), "spec.%s[%zu].", spec_key, i++);
		if (!cJSON_IsObject(item))
			return k8s_fail(err, cap, "spec.%s[%zu]: not an object", spec_key, i - 1);
		if (l->n == l->cap)
			return k8s_fail(err, cap, "more than %d containers", K8S_MAX_CONTAINERS);
		struct k8s_container *ct = &l->v[l->n];
		memset(ct, 0, sizeof(*ct));
		if ((r = get_container_name(&c, item, ct->name)) < 0)
			return r;
		/* Names are unique across containers and init containers. */
		if (clist_find(l, 0, ct->name) != NULL)
			return k8s_fail(err, cap, "%sname: duplicate \"%s\"", path, ct->name);
		const char *policy;
		if ((r = get_str(&c, item, "restartPolicy", &policy)) < 0)
			return r;
		ct->init = init;
		ct->restart_always = init && policy != NULL && strcmp(policy, "Always") == 0;
		ct->state = K8S_CSTATE_NONE;
		l->has_status[l->n] = false;
		l->n++;
	}

	i = 0;
	cJSON_ArrayForEach(item, status_list)
	{
		snprintf(path, sizeof(path), "status.%s[%zu].", status_key, i++);
		if (!cJSON_IsObject(item))
			return k8s_fail(err, cap, "status.%s[%zu]: not an object", status_key,
			                i - 1);
		char name[64];
		if ((r = get_container_name(&c, item, name)) < 0)
			return r;
		struct k8s_container *ct = clist_find(l, base, name);
		if (ct == NULL) {
			if (clist_find(l, 0, name) != NULL)
				return k8s_fail(err, cap,
				                "%sname: \"%s\" is another kind of container", path,
				                name);
			if (l->n == l->cap)
				return k8s_fail(err, cap, "more than %d containers",
				                K8S_MAX_CONTAINERS);
			ct = &l->v[l->n];
			memset(ct, 0, sizeof(*ct));
			memcpy(ct->name, name, sizeof(name));
			ct->init = init;
			l->has_status[l->n] = false;
			l->n++;
		}
		size_t idx = (size_t)(ct - l->v);
		if (l->has_status[idx])
			return k8s_fail(err, cap, "%sname: two statuses for \"%s\"", path, name);
		l->has_status[idx] = true;

		const cJSON *state, *last;
		if ((r = get_int(&c, item, "restartCount", 0, INT_MAX, &ct->restart_count)) < 0 ||
		    (r = get_strbuf(&c, item, "containerID", ct->container_id,
		                    sizeof(ct->container_id))) < 0 ||
		    (r = get_object(&c, item, "state", &state)) < 0 ||
		    (r = get_object(&c, item, "lastState", &last)) < 0)
			return r;
		struct ctx sub = {path, "state.", err, cap};
		if ((r = parse_state(&sub, state, ct)) < 0)
			return r;
		sub.sub = "lastState.";
		if ((r = parse_last_state(&sub, last, ct)) < 0)
			return r;
	}
	return 0;
}

static int array_size(const cJSON *a)
{
	return a != NULL ? cJSON_GetArraySize(a) : 0;
}

static int parse_metadata(const cJSON *meta, struct k8s_pod *p, char *err, size_t cap)
{
	struct ctx c = {"metadata.", "", err, cap};
	int r;
	if (meta == NULL)
		return k8s_fail(err, cap, "metadata: missing");
	if ((r = get_strbuf(&c, meta, "name", p->name, sizeof(p->name))) < 0 ||
	    (r = get_strbuf(&c, meta, "namespace", p->ns, sizeof(p->ns))) < 0 ||
	    (r = get_strbuf(&c, meta, "uid", p->uid, sizeof(p->uid))) < 0 ||
	    (r = get_time(&c, meta, "creationTimestamp", &p->created)) < 0 ||
	    (r = get_time(&c, meta, "deletionTimestamp", &p->deleting)) < 0 ||
	    (r = get_strbuf(&c, meta, "resourceVersion", p->resource_version,
	                    sizeof(p->resource_version))) < 0)
		return r;
	/* It goes back into a watch URL: opaque, but printable ASCII only. */
	if (p->resource_version[0] != '\0' && !k8s_is_resource_version(p->resource_version))
		return k8s_fail(err, cap, "metadata.resourceVersion: not printable ASCII");
	/*
	 * The identity fields are required although other fields may be
	 * missing: the verdicts compare them, and an empty uid would look
	 * like a replaced pod.
	 */
	if (!k8s_is_dns1123_subdomain(p->name))
		return k8s_fail(err, cap, "metadata.name: \"%.253s\" is not a DNS-1123 subdomain",
		                p->name);
	if (!k8s_is_dns1123_label(p->ns))
		return k8s_fail(err, cap, "metadata.namespace: \"%.63s\" is not a DNS-1123 label",
		                p->ns);
	if (p->uid[0] == '\0')
		return k8s_fail(err, cap, "metadata.uid: missing");
	for (const char *s = p->uid; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return k8s_fail(err, cap, "metadata.uid: not printable ASCII");

	const cJSON *ann;
	if ((r = get_object(&c, meta, "annotations", &ann)) < 0)
		return r;
	struct ctx ac = {"metadata.annotations.", "", err, cap};
	if ((r = get_strbuf(&ac, ann, K8S_HOLDER_ANNOTATION, p->holder_container,
	                    sizeof(p->holder_container))) < 0)
		return r;
	/*
	 * A holder annotation that cannot name a container is refused rather
	 * than ignored: ignoring it would silently apply another rule than the
	 * one the operator asked for.
	 */
	if (p->holder_container[0] != '\0' && !k8s_is_dns1123_label(p->holder_container))
		return k8s_fail(err, cap, "metadata.annotations.%s: not a DNS-1123 label",
		                K8S_HOLDER_ANNOTATION);
	return 0;
}

static int add_ip(struct k8s_pod *p, const char *ip, char *err, size_t cap)
{
	if (ip == NULL || ip[0] == '\0')
		return 0;
	for (size_t i = 0; i < p->n_pod_ips; i++)
		if (strcmp(p->pod_ips[i], ip) == 0)
			return 0;
	size_t max = sizeof(p->pod_ips) / sizeof(p->pod_ips[0]);
	if (p->n_pod_ips == max)
		return k8s_fail(err, cap, "status.podIPs: more than %zu addresses", max);
	size_t n = strlen(ip);
	if (n >= sizeof(p->pod_ips[0]))
		return k8s_fail(err, cap, "status.podIPs: address longer than %zu bytes",
		                sizeof(p->pod_ips[0]) - 1);
	memcpy(p->pod_ips[p->n_pod_ips++], ip, n + 1);
	return 0;
}

static int parse_status_ips(const cJSON *status, struct k8s_pod *p, char *err, size_t cap)
{
	struct ctx c = {"status.", "", err, cap};
	const char *pod_ip;
	const cJSON *ips;
	int r;
	if ((r = get_strbuf(&c, status, "phase", p->phase, sizeof(p->phase))) < 0 ||
	    (r = get_str(&c, status, "podIP", &pod_ip)) < 0 ||
	    (r = get_array(&c, status, "podIPs", &ips)) < 0)
		return r;
	const cJSON *item;
	size_t i = 0;
	cJSON_ArrayForEach(item, ips)
	{
		char path[48];
		snprintf(path, sizeof(path), "status.podIPs[%zu].", i++);
		struct ctx ic = {path, "", err, cap};
		const char *ip;
		if (!cJSON_IsObject(item))
			return k8s_fail(err, cap, "status.podIPs[%zu]: not an object", i - 1);
		if ((r = get_str(&ic, item, "ip", &ip)) < 0 || (r = add_ip(p, ip, err, cap)) < 0)
			return r;
	}
	/* podIPs[0] is podIP on every API server that has podIPs; older ones have only podIP. */
	return add_ip(p, pod_ip, err, cap);
}

int k8s_pod_from_json(const cJSON *obj, bool list_item, struct k8s_pod *out, char *err, size_t cap)
{
	struct ctx c = {"", "", err, cap};
	struct k8s_pod p;
	memset(&p, 0, sizeof(p));
	int r;

	if (!cJSON_IsObject(obj))
		return k8s_fail(err, cap, "not a JSON object");
	const char *kind, *api_version;
	if ((r = get_str(&c, obj, "kind", &kind)) < 0 ||
	    (r = get_str(&c, obj, "apiVersion", &api_version)) < 0)
		return r;
	if (kind == NULL ? !list_item : strcmp(kind, "Pod") != 0)
		return k8s_fail(err, cap, "kind: \"%.32s\" is not Pod", kind != NULL ? kind : "");
	if (api_version != NULL && strcmp(api_version, "v1") != 0)
		return k8s_fail(err, cap, "apiVersion: \"%.32s\" is not v1", api_version);

	const cJSON *meta, *spec, *status;
	if ((r = get_object(&c, obj, "metadata", &meta)) < 0 ||
	    (r = get_object(&c, obj, "spec", &spec)) < 0 ||
	    (r = get_object(&c, obj, "status", &status)) < 0)
		return r;
	if ((r = parse_metadata(meta, &p, err, cap)) < 0 ||
	    (r = parse_status_ips(status, &p, err, cap)) < 0)
		return r;

	struct ctx sc = {"spec.", "", err, cap}, tc = {"status.", "", err, cap};
	const cJSON *containers, *inits, *cstatuses, *istatuses;
	if ((r = get_array(&sc, spec, "containers", &containers)) < 0 ||
	    (r = get_array(&sc, spec, "initContainers", &inits)) < 0 ||
	    (r = get_array(&tc, status, "containerStatuses", &cstatuses)) < 0 ||
	    (r = get_array(&tc, status, "initContainerStatuses", &istatuses)) < 0)
		return r;

	/* Each array is bounded before the sum, so the sum cannot overflow. */
	int sizes[4] = {array_size(containers), array_size(inits), array_size(cstatuses),
	                array_size(istatuses)};
	size_t total = 0;
	for (int k = 0; k < 4; k++) {
		if (sizes[k] > K8S_MAX_CONTAINERS)
			return k8s_fail(err, cap, "more than %d containers", K8S_MAX_CONTAINERS);
		total += (size_t)sizes[k];
	}
	if (total > K8S_MAX_CONTAINERS)
		total = K8S_MAX_CONTAINERS;
	struct clist l = {NULL, NULL, 0, total};
	if (total > 0) {
		l.v = calloc(total, sizeof(*l.v));
		l.has_status = calloc(total, sizeof(*l.has_status));
		if (l.v == NULL || l.has_status == NULL) {
			free(l.v);
			free(l.has_status);
			k8s_fail(err, cap, "out of memory");
			return -ENOMEM;
		}
	}
	r = parse_containers(err, cap, containers, "containers", cstatuses, "containerStatuses",
	                     false, &l);
	if (r == 0)
		r = parse_containers(err, cap, inits, "initContainers", istatuses,
		                     "initContainerStatuses", true, &l);
	free(l.has_status);
	if (r < 0) {
		free(l.v);
		return r;
	}
	if (l.n == 0) {
		free(l.v);
		l.v = NULL;
	}
	p.containers = l.v;
	p.n_containers = l.n;
	*out = p;
	return 0;
}

bool k8s_is_resource_version(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f)
			return false;
	return n > 0 && n < K8S_RV_MAX;
}

int k8s_json_get_str(const cJSON *obj, const char *path, const char *key, const char **out,
                     char *err, size_t cap)
{
	struct ctx c = {path, "", err, cap};
	return get_str(&c, obj, key, out);
}

int k8s_json_get_object(const cJSON *obj, const char *path, const char *key, const cJSON **out,
                        char *err, size_t cap)
{
	struct ctx c = {path, "", err, cap};
	return get_object(&c, obj, key, out);
}

int k8s_pod_parse(const char *json, size_t len, struct k8s_pod *out, char *err, size_t cap)
{
	cJSON *root = k8s_json_parse(json, len);
	if (root == NULL)
		return k8s_fail(err, cap, "not valid JSON");
	int r = k8s_pod_from_json(root, false, out, err, cap);
	cJSON_Delete(root);
	return r;
}

void k8s_pod_done(struct k8s_pod *p)
{
	if (p == NULL)
		return;
	free(p->containers);
	p->containers = NULL;
	p->n_containers = 0;
}

void k8s_pods_free(struct k8s_pod *pods, size_t n)
{
	if (pods == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		k8s_pod_done(&pods[i]);
	free(pods);
}

int k8s_pod_list_parse(const char *json, size_t len, struct k8s_pod **pods, size_t *n, char *err,
                       size_t cap)
{
	struct ctx c = {"", "", err, cap};
	cJSON *root = k8s_json_parse(json, len);
	if (root == NULL)
		return k8s_fail(err, cap, "not valid JSON");
	int r;
	const char *kind;
	const cJSON *items;
	if (!cJSON_IsObject(root)) {
		r = k8s_fail(err, cap, "not a JSON object");
		goto out;
	}
	if ((r = get_str(&c, root, "kind", &kind)) < 0 ||
	    (r = get_array(&c, root, "items", &items)) < 0)
		goto out;
	if (kind == NULL || strcmp(kind, "PodList") != 0) {
		r = k8s_fail(err, cap, "kind: \"%.32s\" is not PodList", kind != NULL ? kind : "");
		goto out;
	}
	int count = array_size(items);
	if (count > MAX_LIST_ITEMS) {
		r = k8s_fail(err, cap, "more than %d items", MAX_LIST_ITEMS);
		goto out;
	}
	struct k8s_pod *v = NULL;
	if (count > 0 && (v = calloc((size_t)count, sizeof(*v))) == NULL) {
		k8s_fail(err, cap, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	size_t i = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, items)
	{
		char sub[160];
		if ((r = k8s_pod_from_json(item, true, &v[i], sub, sizeof(sub))) < 0) {
			k8s_pods_free(v, i);
			if (r == -EINVAL)
				k8s_fail(err, cap, "items[%zu]: %s", i, sub);
			else
				k8s_fail(err, cap, "%s", sub);
			goto out;
		}
		i++;
	}
	*pods = v;
	*n = i;
	r = 0;
out:
	cJSON_Delete(root);
	return r;
}
