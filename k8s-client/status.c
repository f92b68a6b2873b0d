/*
 * status.c - what an error answer means (DESIGN.md sections 6 and 9). The
 * rule that matters: only a 404 whose body is a Status of reason NotFound
 * about the pod asked for is GONE. Anything else that is not a
 * well-formed answer is UNKNOWN, because UNKNOWN never releases a lock.
 */
#include <stdio.h>
#include <string.h>

#include "k8s-internal.h"

/* A member of obj; *dup is set when the key appears more than once. */
static const cJSON *field(const cJSON *obj, const char *key, bool *dup)
{
	const cJSON *found = NULL;
	for (const cJSON *e = obj != NULL ? obj->child : NULL; e != NULL; e = e->next) {
		if (e->string == NULL || strcmp(e->string, key) != 0)
			continue;
		if (found != NULL)
			*dup = true;
		else
			found = e;
	}
	return found;
}

/*
 * not_found needs kind Status, reason NotFound, a code of 404 when given,
 * and details naming the pod asked for (name, and kind "pods"), as
 * kube-apiserver's NewNotFound always writes them. The generic "the server
 * could not find the requested resource" (a wrong path or a proxy) has no
 * such details and is not our pod gone.
 */
void k8s_status_parse(const char *body, size_t len, const char *name, struct k8s_status *st)
{
	memset(st, 0, sizeof(*st));
	cJSON *root = k8s_json_parse(body, len);
	if (root == NULL)
		return;
	/* A key given twice could read differently elsewhere: never GONE then. */
	bool dup = false;
	const cJSON *kind = field(root, "kind", &dup);
	const cJSON *reason = field(root, "reason", &dup);
	const cJSON *message = field(root, "message", &dup);
	const cJSON *code = field(root, "code", &dup);
	const cJSON *details = field(root, "details", &dup);
	if (!cJSON_IsObject(root) || !cJSON_IsString(kind) ||
	    strcmp(kind->valuestring, "Status") != 0)
		goto out;
	st->is_status = true;
	if (cJSON_IsString(reason))
		k8s_copy_text(st->reason, sizeof(st->reason), reason->valuestring,
		          strlen(reason->valuestring));
	if (cJSON_IsString(message))
		k8s_copy_text(st->message, sizeof(st->message), message->valuestring,
		          strlen(message->valuestring));
	if (dup || name == NULL || !cJSON_IsString(reason) ||
	    strcmp(reason->valuestring, "NotFound") != 0)
		goto out;
	if (code != NULL && !cJSON_IsNull(code) &&
	    !(cJSON_IsNumber(code) && code->valuedouble == 404.0))
		goto out;
	if (!cJSON_IsObject(details))
		goto out;
	const cJSON *dn = field(details, "name", &dup);
	const cJSON *dk = field(details, "kind", &dup);
	if (dup || !cJSON_IsString(dn) || strcmp(dn->valuestring, name) != 0 ||
	    !cJSON_IsString(dk) || strcmp(dk->valuestring, "pods") != 0)
		goto out;
	st->not_found = true;
out:
	cJSON_Delete(root);
}

enum k8s_outcome k8s_status_result(long code, const char *body, size_t len, const char *name,
                                   const char *ctype, struct k8s_result *res)
{
	struct k8s_status st;
	k8s_status_parse(body, len, name, &st);
	if (code == 404 && st.not_found) {
		k8s_result_set(res, K8S_GONE, code, "NotFound", "%s", st.message);
		return K8S_GONE;
	}
	if (st.is_status && st.reason[0] != '\0') {
		k8s_result_set(res, K8S_UNKNOWN, code, st.reason, "%s", st.message);
		return K8S_UNKNOWN;
	}
	/* The Content-Type is the server's text too: no control characters. */
	char shown[65];
	if (ctype == NULL)
		ctype = "no Content-Type";
	k8s_copy_text(shown, sizeof(shown), ctype, strlen(ctype));
	k8s_result_set(res, K8S_UNKNOWN, code, "", "HTTP %ld without a Status body (%s)", code, shown);
	snprintf(res->reason, sizeof(res->reason), "HTTP%ld", code);
	return K8S_UNKNOWN;
}

enum k8s_outcome k8s_error_result(struct k8s_client *k, const struct k8s_xfer *x,
                                  const char *name, struct k8s_result *res)
{
	enum k8s_outcome o;

	if (k8s_client_holds_token(k, x->body.buf, x->body.len)) {
		k8s_result_set(res, K8S_UNKNOWN, x->code, "",
		               "response withheld: it contains the token");
		snprintf(res->reason, sizeof(res->reason), "HTTP%ld", x->code);
		o = K8S_UNKNOWN;
	} else {
		char *ctype = NULL;
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ctype);
		o = k8s_status_result(x->code, x->body.buf, x->body.len, name, ctype, res);
	}
	if (x->code >= 500 || x->code == 429)
		snprintf(k->outage_reason, sizeof(k->outage_reason), "%s", res->reason);
	return o;
}
