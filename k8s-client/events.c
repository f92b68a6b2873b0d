/*
 * events.c - the core/v1 Event posted for every release (DESIGN.md
 * section 8), shaped as the API's validation wants it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "k8s-internal.h"

/*
 * A qualified name as ValidateQualifiedName wants reportingComponent:
 * an optional DNS subdomain prefix and '/', then 1-63 of [A-Za-z0-9_.-]
 * beginning and ending alphanumeric.
 */
static bool is_qualified_name(const char *s)
{
	const char *slash = strchr(s, '/');
	if (slash != NULL) {
		size_t plen = (size_t)(slash - s);
		char prefix[254];
		if (plen == 0 || plen >= sizeof(prefix))
			return false;
		memcpy(prefix, s, plen);
		prefix[plen] = '\0';
		if (!k8s_is_dns1123_subdomain(prefix))
			return false;
		s = slash + 1;
	}
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && ((i == 0 || i == n - 1) || (c != '-' && c != '_' && c != '.')))
			return false;
	}
	return true;
}

/* The API refuses an Event whose message passes 1024 bytes (NoteLengthLimit). */
#define EVENT_MESSAGE_MAX 1024
/* ReasonLengthLimit, ReportingInstanceLengthLimit and ActionLengthLimit. */
#define EVENT_FIELD_MAX 128

static bool add_str(cJSON *obj, const char *key, const char *val)
{
	return cJSON_AddStringToObject(obj, key, val) != NULL;
}

/* Builds the Event body; NULL when out of memory. */
static char *event_json(const struct k8s_event *ev, const char *instance, const char *message)
{
	char now_s[32], now_us[40];
	int64_t now = k8s_wall_us();
	if (k8s_time_format(now, false, now_s, sizeof(now_s)) < 0 ||
	    k8s_time_format(now, true, now_us, sizeof(now_us)) < 0)
		return NULL;
	char *gen = k8s_join(ev->pod_name, ".", (char *)NULL);
	cJSON *root = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
	cJSON *inv = cJSON_AddObjectToObject(root, "involvedObject");
	cJSON *src = cJSON_AddObjectToObject(root, "source");
	bool ok = gen != NULL && root != NULL && meta != NULL && inv != NULL && src != NULL;
	ok = ok && add_str(root, "apiVersion", "v1") && add_str(root, "kind", "Event");
	ok = ok && add_str(meta, "generateName", gen) && add_str(meta, "namespace", ev->ns);
	ok = ok && add_str(inv, "apiVersion", "v1") && add_str(inv, "kind", "Pod") &&
	     add_str(inv, "namespace", ev->ns) && add_str(inv, "name", ev->pod_name);
	if (ok && ev->pod_uid != NULL && ev->pod_uid[0] != '\0')
		ok = add_str(inv, "uid", ev->pod_uid);
	ok = ok && add_str(root, "reason", ev->reason) && add_str(root, "message", message) &&
	     add_str(root, "type", ev->type) && add_str(src, "component", ev->component) &&
	     add_str(root, "reportingComponent", ev->component) &&
	     add_str(root, "reportingInstance", instance) &&
	     add_str(root, "firstTimestamp", now_s) && add_str(root, "lastTimestamp", now_s) &&
	     add_str(root, "eventTime", now_us) && add_str(root, "action", "Release") &&
	     cJSON_AddNumberToObject(root, "count", 1) != NULL;
	char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
	cJSON_Delete(root);
	free(gen);
	return out;
}

int k8s_post_event(struct k8s_client *k, const struct k8s_event *ev, struct k8s_result *res)
{
	struct k8s_result local;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (ev == NULL || !k8s_is_dns1123_label(ev->ns) ||
	    !k8s_is_dns1123_subdomain(ev->pod_name) || ev->reason == NULL ||
	    ev->reason[0] == '\0' || strlen(ev->reason) > EVENT_FIELD_MAX || ev->type == NULL ||
	    ev->type[0] == '\0' || ev->component == NULL || !is_qualified_name(ev->component)) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Invalid",
		           "event needs a DNS-1123 namespace and pod name, a reason, a type "
		           "and a qualified component name");
		return -EINVAL;
	}
	/* eventTime makes reportingInstance mandatory; the host name is the pod name. */
	char host[256];
	const char *instance = ev->reporting_instance;
	if (instance == NULL || instance[0] == '\0') {
		if (gethostname(host, sizeof(host)) == 0 && host[0] != '\0') {
			host[sizeof(host) - 1] = '\0';
			instance = host;
		} else {
			instance = ev->component;
		}
	}
	if (strlen(instance) > EVENT_FIELD_MAX) {
		k8s_result_set(res, K8S_UNKNOWN, 0, "Invalid",
		           "reporting instance longer than %d bytes", EVENT_FIELD_MAX);
		return -EINVAL;
	}
	char message[EVENT_MESSAGE_MAX + 1];
	const char *msg = ev->message != NULL ? ev->message : "";
	size_t mlen = strlen(msg);
	if (mlen > EVENT_MESSAGE_MAX) {
		mlen = EVENT_MESSAGE_MAX;
		/* Cut before a UTF-8 continuation byte, not inside a character. */
		while (mlen > 0 && ((unsigned char)msg[mlen] & 0xc0) == 0x80)
			mlen--;
	}
	memcpy(message, msg, mlen);
	message[mlen] = '\0';

	char *body = event_json(ev, instance, message);
	char *ens = curl_easy_escape(NULL, ev->ns, (int)strlen(ev->ns));
	char *url =
	    ens != NULL ? k8s_join(k->base, "/api/v1/namespaces/", ens, "/events", (char *)NULL) : NULL;
	curl_free(ens);
	if (body == NULL || url == NULL) {
		free(url);
		cJSON_free(body);
		k8s_result_set(res, K8S_UNKNOWN, 0, "NoMemory", "out of memory");
		return -ENOMEM;
	}
	struct k8s_xfer x = {0};
	int r = k8s_request(k, "create", url, body, &x, res);
	free(url);
	cJSON_free(body);
	if (r == 0 && x.code != 201 && x.code != 200) {
		k8s_error_result(k, &x, NULL, res);
		res->outcome = K8S_UNKNOWN;
		r = -EIO;
	}
	long code = x.code;
	k8s_xfer_done(k, &x);
	if (r < 0)
		return -EIO;
	k8s_result_set(res, K8S_POD, code, "", "%s", "");
	return 0;
}
