/*
 * watch-decode.c - the watch stream decoder (watch.h): byte runs in, one
 * event per line out.
 *
 * A watch stream is one JSON object a line (Go's json.Encoder), each
 * {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}}, and
 * the transport cuts it anywhere. The decoder parses a line in place when
 * the whole of it lies in one run, and copies only a line that spans runs,
 * into a buffer that never grows past max_line. Pods go through the pod
 * parser (pod.c), so a watch snapshot is held to the same rules as a GET.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s-internal.h"

void k8s_watch_event_done(struct k8s_watch_event *ev)
{
	if (ev == NULL)
		return;
	if (ev->type == K8S_WATCH_POD || ev->type == K8S_WATCH_DELETED)
		k8s_pod_done(&ev->pod);
	memset(&ev->pod, 0, sizeof(ev->pod));
}

const char *k8s_watch_type_name(enum k8s_watch_type t)
{
	static const char *const names[] = {"POD",   "DELETED", "BOOKMARK", "EXPIRED",
	                                    "ERROR", "ENDED",   "FAILED"};
	return (size_t)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* An ERROR event of the decoder's own: the line could not be used. */
static void line_error(struct k8s_watch_event *ev, const char *reason, const char *message)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = K8S_WATCH_ERROR;
	ev->result.outcome = K8S_UNKNOWN;
	snprintf(ev->result.reason, sizeof(ev->result.reason), "%s", reason);
	snprintf(ev->result.message, sizeof(ev->result.message), "watch event: %s", message);
	/*
	 * The message quotes the server's text (a name the pod parser
	 * refused): no control characters into a log line.
	 */
	for (char *p = ev->result.message; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/*
 * An ERROR event's object: a Status. 410 (reason Expired or Gone, or code
 * 410) is EXPIRED; any other Status is ERROR with its code and reason.
 * The Status is printed back and read by the same code as an error body,
 * so its text is cleaned the same way.
 */
static int status_event(const cJSON *obj, struct k8s_watch_event *ev)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
	long c = 0;
	if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble <= 999)
		c = (long)code->valuedouble;
	char *text = cJSON_PrintUnformatted(obj);
	if (text == NULL)
		return -ENOMEM;
	struct k8s_result res;
	memset(&res, 0, sizeof(res));
	k8s_status_result(c, text, strlen(text), NULL, "application/json", &res);
	cJSON_free(text);
	memset(ev, 0, sizeof(*ev));
	ev->result = res;
	ev->result.outcome = K8S_UNKNOWN;
	bool expired = c == 410 || strcmp(res.reason, "Expired") == 0 ||
	               strcmp(res.reason, "Gone") == 0;
	ev->type = expired ? K8S_WATCH_EXPIRED : K8S_WATCH_ERROR;
	if (res.reason[0] == '\0' || strncmp(res.reason, "HTTP", 4) == 0) {
		/* Not a Status at all: the line was not what an ERROR carries. */
		if (!expired)
			line_error(ev, "Malformed", "ERROR without a Status");
	}
	return 0;
}

/* BOOKMARK: only metadata.resourceVersion counts (the rest is an empty Pod). */
static void bookmark_event(const cJSON *obj, struct k8s_watch_event *ev)
{
	char err[160];
	const cJSON *meta;
	const char *rv = NULL;
	if (!cJSON_IsObject(obj) ||
	    k8s_json_get_object(obj, "object.", "metadata", &meta, err, sizeof(err)) < 0 ||
	    k8s_json_get_str(meta, "object.metadata.", "resourceVersion", &rv, err, sizeof(err)) <
	        0) {
		line_error(ev, "Malformed", cJSON_IsObject(obj) ? err : "BOOKMARK without an object");
		return;
	}
	if (rv == NULL || !k8s_is_resource_version(rv)) {
		line_error(ev, "Malformed", "BOOKMARK without a usable resourceVersion");
		return;
	}
	memset(ev, 0, sizeof(*ev));
	ev->type = K8S_WATCH_BOOKMARK;
	snprintf(ev->resource_version, sizeof(ev->resource_version), "%s", rv);
}

static int pod_event(const cJSON *obj, enum k8s_watch_type type, bool added,
                     struct k8s_watch_event *ev)
{
	char err[200];
	struct k8s_pod p;
	int r = k8s_pod_from_json(obj, false, &p, err, sizeof(err));
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		char msg[240];
		snprintf(msg, sizeof(msg), "object: %s", err);
		line_error(ev, "Malformed", msg);
		return 0;
	}
	/* Without a version the watch could not be resumed after this event. */
	if (p.resource_version[0] == '\0') {
		k8s_pod_done(&p);
		line_error(ev, "Malformed", "pod without metadata.resourceVersion");
		return 0;
	}
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->added = added;
	memcpy(ev->resource_version, p.resource_version, sizeof(ev->resource_version));
	ev->pod = p;
	return 0;
}

int k8s_watch_line_parse(const char *line, size_t len, struct k8s_watch_event *ev)
{
	struct k8s_watch_event out;
	cJSON *root = k8s_json_parse(line, len);
	if (root == NULL || !cJSON_IsObject(root)) {
		line_error(&out, "Malformed", "not a JSON object");
		cJSON_Delete(root);
		*ev = out;
		return 0;
	}
	char err[160];
	const char *type = NULL;
	const cJSON *obj = NULL;
	int r = 0;
	if (k8s_json_get_str(root, "", "type", &type, err, sizeof(err)) < 0 ||
	    k8s_json_get_object(root, "", "object", &obj, err, sizeof(err)) < 0)
		line_error(&out, "Malformed", err);
	else if (type == NULL || obj == NULL)
		line_error(&out, "Malformed", "no type or no object");
	else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)
		r = pod_event(obj, K8S_WATCH_POD, type[0] == 'A', &out);
	else if (strcmp(type, "DELETED") == 0)
		r = pod_event(obj, K8S_WATCH_DELETED, false, &out);
	else if (strcmp(type, "BOOKMARK") == 0)
		bookmark_event(obj, &out);
	else if (strcmp(type, "ERROR") == 0)
		r = status_event(obj, &out);
	else
		line_error(&out, "Malformed", "unknown event type");
	cJSON_Delete(root);
	if (r < 0)
		return r;
	*ev = out;
	return 0;
}

void k8s_watch_decoder_init(struct k8s_watch_decoder *d, size_t max_line)
{
	memset(d, 0, sizeof(*d));
	d->max_line = max_line > 0 ? max_line : K8S_MAX_BODY;
}

void k8s_watch_decoder_done(struct k8s_watch_decoder *d)
{
	free(d->line);
	d->line = NULL;
	d->len = d->cap = 0;
	d->skipping = false;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Appends n bytes to the partial line; the caller has checked the cap. */
static int append(struct k8s_watch_decoder *d, const char *data, size_t n)
{
	if (d->len + n > d->cap) {
		size_t cap = d->cap > 0 ? d->cap : 4096;
		while (cap < d->len + n)
			cap *= 2;
		if (cap > d->max_line)
			cap = d->max_line;
		char *nl = realloc(d->line, cap);
		if (nl == NULL)
			return -ENOMEM;
		d->line = nl;
		d->cap = cap;
	}
	memcpy(d->line + d->len, data, n);
	d->len += n;
	return 0;
}

int k8s_watch_decode(struct k8s_watch_decoder *d, const char *data, size_t len, size_t *used,
                     struct k8s_watch_event *ev)
{
	size_t pos = 0;
	*used = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (data + pos)) : len - pos;
		size_t next = pos + n + (nl != NULL ? 1 : 0);
		if (d->skipping) {
			/* The rest of an oversized line, already reported. */
			d->skipping = nl == NULL;
			pos = next;
			continue;
		}
		if (n > d->max_line - d->len) {
			/* Report it now: waiting for its end could mean waiting forever. */
			d->len = 0;
			d->skipping = nl == NULL;
			char msg[96];
			snprintf(msg, sizeof(msg), "line longer than %zu bytes", d->max_line);
			line_error(ev, "TooLarge", msg);
			*used = next;
			return 1;
		}
		if (nl == NULL) {
			if (append(d, data + pos, n) < 0) {
				*used = pos;
				return -ENOMEM;
			}
			pos = next;
			continue;
		}
		const char *line = data + pos;
		if (d->len > 0) {
			if (append(d, line, n) < 0) {
				*used = pos;
				return -ENOMEM;
			}
			line = d->line;
			n = d->len;
		}
		if (blank(line, n)) {
			d->len = 0;
			pos = next;
			continue;
		}
		int r = k8s_watch_line_parse(line, n, ev);
		if (r < 0) {
			/* Undo the append, so that a retry sees the same bytes again. */
			if (line == d->line)
				d->len -= (size_t)(nl - (data + pos));
			*used = pos;
			return r;
		}
		d->len = 0;
		*used = next;
		return 1;
	}
	*used = pos;
	return 0;
}
