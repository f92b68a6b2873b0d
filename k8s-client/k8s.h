/*
 * k8s.h - the Kubernetes API client of lock-arbiter (DESIGN.md section 7).
 *
 * What it does: reads a pod (POD, GONE or UNKNOWN), lists pods by IP, posts
 * a core/v1 Event, watches pods (watch.h). How: libcurl's multi interface
 * (each request on its own handle, connections reused), driven by the
 * caller's event loop or, without one, by the client itself; connect
 * timeout 2 s,
 * request timeout 5 s, response bodies capped at 1 MiB, TLS always
 * verified, the bearer token re-read every 60 s and after a 401 (the old one
 * is kept when the re-read fails). Path segments are validated (DNS-1123)
 * and escaped before a URL is built, so a hostile name never becomes a
 * request.
 *
 * It knows nothing of the daemon and does not log: results carry the HTTP
 * code and the Status reason (or the transport error) for the caller. The
 * token never appears in any result, error or callback.
 *
 * Times are int64_t microseconds since the Unix epoch (UTC); 0 means
 * absent.
 */
#ifndef LOCK_ARBITER_K8S_H
#define LOCK_ARBITER_K8S_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define K8S_MAX_BODY (1024 * 1024)
#define K8S_HOLDER_ANNOTATION "lock-arbiter.io/holder-container"
/* A resourceVersion is an opaque string; etcd's are decimal uint64s. */
#define K8S_RV_MAX 64

/*
 * Name checks applied before any URL is built; the daemon validates
 * LOCKEDBY and its settings with the same rules.
 *
 * DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1 to 63 characters. */
bool k8s_is_dns1123_label(const char *s);
/*
 * DNS-1123 subdomain as Kubernetes checks it (IsDNS1123Subdomain): dot-
 * separated labels, at most 253 characters in all. Like Kubernetes, it
 * does not limit each label to 63 characters.
 */
bool k8s_is_dns1123_subdomain(const char *s);

struct k8s_config {
	char *api_url;    /* "https://10.96.0.1:443", "http://127.0.0.1:8001" */
	char *token_file; /* NULL: send no token */
	char *ca_file;    /* NULL: the system CA bundle */
	int64_t connect_timeout_us;  /* default 2 s */
	int64_t request_timeout_us;  /* default 5 s */
	int64_t token_reread_us;     /* default 60 s */
	size_t max_body;             /* default K8S_MAX_BODY */
	/*
	 * After an outage answer (no response, 5xx, 429) requests are refused
	 * without being sent (UNKNOWN with that answer's code and reason, the
	 * message saying "not sent") for a delay that
	 * doubles from backoff_min_us to backoff_max_us; any other answer
	 * resets it. Defaults 500 ms and 10 s.
	 */
	int64_t backoff_min_us;
	int64_t backoff_max_us;
	const volatile sig_atomic_t *interrupt; /* aborts a transfer when set */
	/*
	 * Called after every request (metrics): verb "get", "list" or
	 * "create", and "watch" when a watch connection ends (watch.h);
	 * code the HTTP status, or 0 when no response came.
	 */
	void (*observe)(void *ctx, const char *verb, long code, int64_t duration_us);
	void *observe_ctx;
	/*
	 * The caller's event loop, or NULL. While a request waits for its
	 * answer the client calls suspend, which returns 0 after the caller's
	 * loop has called k8s_client_action (the request may then be done),
	 * or a negative errno when the caller cannot wait now: the client
	 * then polls its own descriptors for up to 100 ms. NULL: the client
	 * always polls (the request blocks its caller, within its timeouts).
	 */
	int (*suspend)(void *ctx);
	void *suspend_ctx;
};

/* A resourceVersion we accept: 1 to K8S_RV_MAX-1 bytes of printable ASCII, no space. */
bool k8s_is_resource_version(const char *s);

/* Fills the defaults above; strings NULL. */
void k8s_config_default(struct k8s_config *c);
/*
 * In-cluster: api_url from KUBERNETES_SERVICE_HOST and _PORT (IPv6 in
 * brackets), token and CA from K8S_SA_DIR (sa_dir, for tests). 0, or
 * -ENOENT when not in a cluster, with err filled.
 */
int k8s_config_in_cluster(struct k8s_config *c, const char *sa_dir, char *err, size_t cap);
/* Frees the strings of c. */
void k8s_config_done(struct k8s_config *c);

enum k8s_outcome {
	K8S_POD,     /* a pod snapshot */
	K8S_GONE,    /* 404 with a Status of reason NotFound */
	K8S_UNKNOWN, /* anything else: never evidence of death */
};

/* Why a request ended as it did; no secrets inside. */
struct k8s_result {
	enum k8s_outcome outcome;
	long http_code;   /* 0 when no response (timeout, TLS, reset) */
	/*
	 * The Status reason ("Forbidden", "NotFound"), or "Timeout", "TLS",
	 * "Malformed", "TooLarge", "Connect", "Invalid", "Reset" (the
	 * connection broke mid-exchange), "Interrupted" (*interrupt was set),
	 * "Transport" (any other libcurl failure), "NoMemory", or "HTTPnnn"
	 * for an error response without a Status body.
	 */
	char reason[64];
	char message[256];/* Status message or transport detail */
};

enum k8s_cstate { K8S_CSTATE_NONE, K8S_CSTATE_RUNNING, K8S_CSTATE_WAITING, K8S_CSTATE_TERMINATED };

struct k8s_container {
	char name[64];
	bool init;            /* an init container (a native sidecar is one too) */
	bool restart_always;  /* init container with restartPolicy Always (native sidecar) */
	int restart_count;
	char container_id[160];
	enum k8s_cstate state;
	int64_t started_at;   /* running.startedAt, or terminated.startedAt */
	int64_t finished_at;  /* terminated.finishedAt */
	char reason[64];      /* waiting.reason or terminated.reason */
	int exit_code;        /* terminated.exitCode (added: the state's own exit code) */
	bool last_terminated; /* lastState.terminated present */
	int64_t last_finished_at;
	int last_exit_code;
};

struct k8s_pod {
	char ns[64];
	char name[254];
	char uid[64];
	int64_t created;       /* metadata.creationTimestamp */
	int64_t deleting;      /* metadata.deletionTimestamp, 0 when absent */
	/*
	 * metadata.resourceVersion, "" when absent: where a watch of this pod
	 * starts (watch.h). Opaque; printable ASCII, else the pod is -EINVAL.
	 */
	char resource_version[K8S_RV_MAX];
	char phase[16];        /* status.phase, "" when absent */
	char pod_ips[4][64];   /* status.podIPs (or podIP) */
	size_t n_pod_ips;
	char holder_container[64]; /* annotation K8S_HOLDER_ANNOTATION, "" when absent */
	struct k8s_container *containers; /* status of spec.containers then init containers */
	size_t n_containers;
};

/*
 * Parses one Pod object (JSON text of len bytes) into *out. Null and
 * missing fields are tolerated; wrong types, an object that is not a Pod,
 * or a name that is not DNS-1123 give -EINVAL with err filled. *out is
 * written only on success; free it with k8s_pod_done.
 * (Added:) metadata.name, namespace and uid are required, since the
 * verdicts compare them; a string too long for its buffer is -EINVAL,
 * never truncated; -ENOMEM when out of memory.
 */
int k8s_pod_parse(const char *json, size_t len, struct k8s_pod *out, char *err, size_t cap);
void k8s_pod_done(struct k8s_pod *p);

struct k8s_client;

/* NULL with err filled when the configuration is unusable. Copies cfg. */
struct k8s_client *k8s_client_new(const struct k8s_config *cfg, char *err, size_t cap);
/* No request may be waiting (every caller has returned). Accepts NULL. */
void k8s_client_free(struct k8s_client *k);

/*
 * The client's side of the caller's event loop, as the watches' (watch.h):
 * the descriptors its requests wait on (events K8S_WATCH_IN|OUT; returns
 * how many, which may exceed cap), how long the caller may sleep before
 * calling k8s_client_action(k, -1, 0) for libcurl's timer (-1: no timer),
 * and the call that lets libcurl work on a ready descriptor (or the timer)
 * and marks finished requests done. 0 or -EIO.
 */
size_t k8s_client_fds(const struct k8s_client *k, int *fds, int *events, size_t cap);
int64_t k8s_client_timeout_us(const struct k8s_client *k);
int k8s_client_action(struct k8s_client *k, int fd, int events);

/*
 * GET /api/v1/namespaces/NS/pods/NAME. ns must be a DNS-1123 label and name
 * a DNS-1123 subdomain, else UNKNOWN with reason "Invalid" and no request.
 * (Added:) GONE needs the Status details to name this pod (details.name
 * NAME, details.kind "pods"), as kube-apiserver always writes them; the
 * generic NotFound of a wrong path is UNKNOWN. A 200 carrying another pod
 * than NS/NAME is UNKNOWN "Malformed".
 * A 401 re-reads the token and retries once. Returns res->outcome; *pod is
 * filled (k8s_pod_done it) only for K8S_POD.
 */
enum k8s_outcome k8s_get_pod(struct k8s_client *k, const char *ns, const char *name,
			     struct k8s_pod *pod, struct k8s_result *res);

/*
 * GET /api/v1/namespaces/NS/pods?fieldSelector=status.podIP%3DIP. On success
 * (K8S_POD, even with no items) *pods is a malloc'd array of *n pods
 * (k8s_pods_free). Any failure is K8S_UNKNOWN.
 */
enum k8s_outcome k8s_list_pods_by_ip(struct k8s_client *k, const char *ns, const char *ip,
				     struct k8s_pod **pods, size_t *n, struct k8s_result *res);
void k8s_pods_free(struct k8s_pod *pods, size_t n);

struct k8s_event {
	const char *ns;           /* namespace of the event and the involved pod */
	const char *pod_name;
	const char *pod_uid;      /* may be NULL */
	const char *reason;       /* "LiquibaseLockReleased" */
	const char *type;         /* "Warning" */
	const char *message;
	const char *component;    /* source.component, "lock-arbiter" */
	const char *reporting_instance; /* the arbiter's pod name, may be NULL */
};

/*
 * POST /api/v1/namespaces/NS/events; 0 on 201/200, else -EIO with res
 * filled. (Added:) -EINVAL with reason "Invalid" and no request when ns,
 * pod_name, reason, type or component is missing or not valid; a message
 * longer than the API's 1024-byte limit is shortened, and a NULL
 * reporting_instance becomes the host name, since the API requires one
 * whenever eventTime is set.
 */
int k8s_post_event(struct k8s_client *k, const struct k8s_event *ev, struct k8s_result *res);

/* Watches of pods: the stream decoder and the non-blocking connections. */
#include "watch.h"

#endif
