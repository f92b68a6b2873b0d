/*
 * test_pod_parse.c - k8s_pod_parse against the real Pod objects in
 * tests/fixtures/kubernetes/ (k9s, gitops-engine, kubernetes/api; see
 * the fixtures README for provenance), and against hand-made bodies for
 * every way the parser must refuse a snapshot. argv[1]: the fixtures root.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s-internal.h"

#define S(x) ((int64_t)(x)*1000000)

static const char *fixtures_root = "tests/fixtures";

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

static char *fixture(const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/kubernetes/%s", fixtures_root, name);
	char *buf = read_file(path, len);
	if (buf == NULL)
		fail_msg("cannot read fixture %s", path);
	return buf;
}

/* Parses a fixture file; fails the test when it does not parse. */
static void parse_fixture(const char *name, struct k8s_pod *p)
{
	size_t len;
	char *json = fixture(name, &len);
	char err[256] = "";
	int r = k8s_pod_parse(json, len, p, err, sizeof(err));
	free(json);
	if (r != 0)
		fail_msg("%s: %d %s", name, r, err);
}

/* Expects -EINVAL, with an error message and *out left as it was. */
static void expect_einval_len(const char *json, size_t len, const char *err_has)
{
	struct k8s_pod p, before;
	memset(&p, 0xa5, sizeof(p));
	before = p;
	char err[256] = "";
	int r = k8s_pod_parse(json, len, &p, err, sizeof(err));
	if (r != -EINVAL)
		fail_msg("expected -EINVAL, got %d for %s", r, json);
	assert_memory_equal(&p, &before, sizeof(p));
	assert_true(err[0] != '\0');
	if (err_has != NULL && strstr(err, err_has) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", err, err_has);
}

static void expect_einval(const char *json, const char *err_has)
{
	expect_einval_len(json, strlen(json), err_has);
}

static const struct k8s_container *find(const struct k8s_pod *p, const char *name)
{
	for (size_t i = 0; i < p->n_containers; i++)
		if (strcmp(p->containers[i].name, name) == 0)
			return &p->containers[i];
	fail_msg("no container %s", name);
	return NULL;
}

/* ---- the real fixtures ---- */

static void test_every_pod_fixture_parses(void **state)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/kubernetes", fixtures_root);
	DIR *d = opendir(dir);
	assert_non_null(d);
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		bool pod = strncmp(e->d_name, "k9s-", 4) == 0 ||
		           strncmp(e->d_name, "gitops-pod-", 11) == 0;
		if (!pod || n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		struct k8s_pod p;
		parse_fixture(e->d_name, &p);
		assert_true(p.uid[0] != '\0');
		assert_true(p.created > 0);
		assert_true(p.n_containers >= 1);
		k8s_pod_done(&p);
		count++;
	}
	closedir(d);
	/* 4 from k9s, 10 from gitops-engine: a wrong directory must not pass. */
	assert_int_equal(count, 14);
}

static void test_k9s_po(void **state)
{
	struct k8s_pod p;
	parse_fixture("k9s-po.json", &p);
	assert_string_equal(p.name, "nginx");
	assert_string_equal(p.ns, "default");
	assert_string_equal(p.uid, "614908ed-415b-4506-8370-e3e36fa8cc13");
	assert_int_equal(p.created, S(1565327539));
	assert_int_equal(p.deleting, 0);
	assert_string_equal(p.phase, "Running");
	assert_int_equal(p.n_pod_ips, 1);
	assert_string_equal(p.pod_ips[0], "172.17.0.6");
	assert_string_equal(p.holder_container, "");
	assert_int_equal(p.n_containers, 1);
	const struct k8s_container *c = &p.containers[0];
	assert_string_equal(c->name, "nginx");
	assert_false(c->init);
	assert_false(c->restart_always);
	assert_int_equal(c->restart_count, 0);
	assert_string_equal(
	    c->container_id,
	    "docker://421bd26d6c682f14b5ea1dcaf06e14a509b2b702fc7793e820520eb1e28e2eaf");
	assert_int_equal(c->state, K8S_CSTATE_RUNNING);
	assert_int_equal(c->started_at, S(1565327540));
	assert_int_equal(c->finished_at, 0);
	assert_false(c->last_terminated);
	k8s_pod_done(&p);
	assert_null(p.containers);
	assert_int_equal(p.n_containers, 0);
}

static void test_k9s_po_init(void **state)
{
	struct k8s_pod p;
	parse_fixture("k9s-po_init.json", &p);
	assert_int_equal(p.n_containers, 2);
	/* Regular containers first, then init containers. */
	assert_string_equal(p.containers[0].name, "nginx");
	assert_false(p.containers[0].init);
	assert_string_equal(p.containers[1].name, "ic1");
	assert_true(p.containers[1].init);
	assert_false(p.containers[1].restart_always);
	assert_int_equal(p.containers[1].state, K8S_CSTATE_RUNNING);
	assert_int_equal(p.containers[1].started_at, S(1565327540));
	k8s_pod_done(&p);
}

static void test_k9s_po_sidecar(void **state)
{
	struct k8s_pod p;
	parse_fixture("k9s-po_sidecar.json", &p);
	assert_string_equal(p.name, "sleep");
	assert_string_equal(p.uid, "35079257-0ffb-4b09-b2c1-3c0d416f2523");
	assert_int_equal(p.created, S(1724464472));
	assert_int_equal(p.n_pod_ips, 1);
	assert_string_equal(p.pod_ips[0], "10.244.0.8");
	assert_int_equal(p.n_containers, 3);

	const struct k8s_container *app = find(&p, "sleep");
	assert_false(app->init);
	assert_int_equal(app->state, K8S_CSTATE_RUNNING);
	assert_int_equal(app->started_at, S(1724464478));

	const struct k8s_container *init = find(&p, "init");
	assert_true(init->init);
	assert_false(init->restart_always);
	assert_int_equal(init->state, K8S_CSTATE_TERMINATED);
	assert_string_equal(init->reason, "Completed");
	assert_int_equal(init->exit_code, 0);
	assert_int_equal(init->started_at, S(1724464475));
	assert_int_equal(init->finished_at, S(1724464477));
	assert_string_equal(
	    init->container_id,
	    "containerd://75295261e5d751382c9a6ffa4477b84af2934686c360dcba2d8a6b9bc0f8cada");

	/* The native sidecar: an init container with restartPolicy Always. */
	const struct k8s_container *sc = find(&p, "sidecar");
	assert_true(sc->init);
	assert_true(sc->restart_always);
	assert_int_equal(sc->state, K8S_CSTATE_RUNNING);
	assert_int_equal(sc->started_at, S(1724464478));
	k8s_pod_done(&p);
}

static void test_k9s_p1(void **state)
{
	struct k8s_pod p;
	parse_fixture("k9s-p1.json", &p);
	assert_string_equal(p.name, "nginx-7fb78fb6d8-2w75j");
	assert_string_equal(p.uid, "91bb1cf2-2c03-11ea-883f-42010a800044");
	assert_int_equal(p.created, S(1577820442));
	assert_string_equal(p.pod_ips[0], "10.44.0.229");
	/* Other annotations are not the holder annotation. */
	assert_string_equal(p.holder_container, "");
	k8s_pod_done(&p);
}

static void test_gitops_crashloop(void **state)
{
	struct k8s_pod p;
	parse_fixture("gitops-pod-crashloop.json", &p);
	assert_string_equal(p.name, "my-pod");
	assert_string_equal(p.ns, "argocd");
	assert_string_equal(p.uid, "63674389-f613-11e8-a057-fe5f49266390");
	assert_string_equal(p.phase, "Running");
	assert_int_equal(p.n_containers, 1);
	const struct k8s_container *c = &p.containers[0];
	assert_string_equal(c->name, "main");
	assert_int_equal(c->state, K8S_CSTATE_WAITING);
	assert_string_equal(c->reason, "CrashLoopBackOff");
	assert_int_equal(c->restart_count, 3);
	assert_true(c->last_terminated);
	assert_int_equal(c->last_exit_code, 1);
	assert_int_equal(c->last_finished_at, S(1543742425));
	k8s_pod_done(&p);
}

static void test_gitops_deletion(void **state)
{
	struct k8s_pod p;
	parse_fixture("gitops-pod-deletion.json", &p);
	assert_string_equal(p.name, "image-pull-backoff");
	assert_string_equal(p.uid, "46c1e8de-f61b-11e8-a057-fe5f49266390");
	assert_int_equal(p.deleting, S(1543832164));
	assert_string_equal(p.phase, "Pending");
	const struct k8s_container *c = &p.containers[0];
	assert_int_equal(c->state, K8S_CSTATE_WAITING);
	assert_string_equal(c->reason, "PodInitializing");
	/* No containerID in the body: empty, not an error. */
	assert_string_equal(c->container_id, "");
	k8s_pod_done(&p);
}

static void test_gitops_error(void **state)
{
	struct k8s_pod p;
	parse_fixture("gitops-pod-error.json", &p);
	const struct k8s_container *c = &p.containers[0];
	assert_int_equal(c->state, K8S_CSTATE_TERMINATED);
	assert_string_equal(c->reason, "Error");
	assert_int_equal(c->exit_code, 1);
	assert_int_equal(c->restart_count, 2);
	assert_int_equal(c->started_at, S(1543742396));
	assert_int_equal(c->finished_at, S(1543742396));
	assert_true(c->last_terminated);
	assert_int_equal(c->last_finished_at, S(1543742381));
	k8s_pod_done(&p);
}

static void test_gitops_phases(void **state)
{
	static const struct {
		const char *file, *phase, *uid;
		enum k8s_cstate cstate;
		const char *reason;
	} rows[] = {
	    {"gitops-pod-failed.json", "Failed", "27c0fdf5-f613-11e8-a057-fe5f49266390",
	     K8S_CSTATE_TERMINATED, "Error"},
	    {"gitops-pod-succeeded.json", "Succeeded", "c86e909c-f612-11e8-a057-fe5f49266390",
	     K8S_CSTATE_TERMINATED, "Completed"},
	    {"gitops-pod-pending.json", "Pending", "46c1e8de-f61b-11e8-a057-fe5f49266390",
	     K8S_CSTATE_WAITING, "PodInitializing"},
	    {"gitops-pod-imagepullbackoff.json", "Pending", "ab1a9982-56f3-11e9-8721-025000000001",
	     K8S_CSTATE_WAITING, "ImagePullBackOff"},
	    {"gitops-pod-running-not-ready.json", "Running", "5aa62a14-f61d-11e8-a058-fe5f49266390",
	     K8S_CSTATE_RUNNING, ""},
	    {"gitops-pod-running-restart-always.json", "Running",
	     "1c3943ee-f614-11e8-a057-fe5f49266390", K8S_CSTATE_RUNNING, ""},
	    {"gitops-pod-running-restart-never.json", "Running",
	     "c86e909c-f612-11e8-a057-fe5f49266390", K8S_CSTATE_RUNNING, ""},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct k8s_pod p;
		parse_fixture(rows[i].file, &p);
		assert_string_equal(p.phase, rows[i].phase);
		assert_string_equal(p.uid, rows[i].uid);
		assert_int_equal(p.n_containers, 1);
		assert_int_equal(p.containers[0].state, rows[i].cstate);
		assert_string_equal(p.containers[0].reason, rows[i].reason);
		assert_int_equal(p.containers[0].restart_count, 0);
		k8s_pod_done(&p);
	}
	struct k8s_pod p;
	parse_fixture("gitops-pod-succeeded.json", &p);
	assert_int_equal(p.containers[0].exit_code, 0);
	assert_int_equal(p.containers[0].started_at, S(1543742119));
	assert_int_equal(p.containers[0].finished_at, S(1543742129));
	k8s_pod_done(&p);
	parse_fixture("gitops-pod-running-not-ready.json", &p);
	assert_string_equal(p.name, "never-ready");
	assert_int_equal(p.containers[0].started_at, S(1543746659));
	k8s_pod_done(&p);
	parse_fixture("gitops-pod-imagepullbackoff.json", &p);
	assert_string_equal(p.name, "guestbook-ui-errimagepullbackoff-66cfffb669-45w2j");
	assert_string_equal(p.pod_ips[0], "10.1.0.136");
	k8s_pod_done(&p);
}

/*
 * api-core.v1.Pod.json sets every field with placeholder values. Its names
 * ("nameValue") are not DNS-1123, so as served it is refused; with the
 * names made valid it must parse, all other fields as they are.
 */
static void test_api_core_pod(void **state)
{
	size_t len;
	char *json = fixture("api-core.v1.Pod.json", &len);
	expect_einval_len(json, len, "metadata.name");

	cJSON *root = cJSON_ParseWithLength(json, len);
	assert_non_null(root);
	free(json);
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
	cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
	cJSON_ReplaceItemInObjectCaseSensitive(meta, "name", cJSON_CreateString("name-value"));
	cJSON_ReplaceItemInObjectCaseSensitive(meta, "namespace", cJSON_CreateString("ns-value"));
	char *text = cJSON_PrintUnformatted(root);
	/* The container names are still "nameValue". */
	expect_einval(text, "name");
	cJSON_free(text);

	cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(spec, "containers"), 0);
	cJSON *i0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(spec, "initContainers"), 0);
	cJSON *cs0 =
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(status, "containerStatuses"), 0);
	cJSON *is0 = cJSON_GetArrayItem(
	    cJSON_GetObjectItemCaseSensitive(status, "initContainerStatuses"), 0);
	cJSON_ReplaceItemInObjectCaseSensitive(c0, "name", cJSON_CreateString("app"));
	cJSON_ReplaceItemInObjectCaseSensitive(cs0, "name", cJSON_CreateString("app"));
	cJSON_ReplaceItemInObjectCaseSensitive(i0, "name", cJSON_CreateString("init"));
	cJSON_ReplaceItemInObjectCaseSensitive(is0, "name", cJSON_CreateString("init"));
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);

	struct k8s_pod p;
	char err[256] = "";
	int r = k8s_pod_parse(text, strlen(text), &p, err, sizeof(err));
	cJSON_free(text);
	if (r != 0)
		fail_msg("%s", err);
	assert_string_equal(p.uid, "uidValue");
	assert_int_equal(p.created, S(1199149261));
	assert_int_equal(p.deleting, S(1230771661));
	assert_string_equal(p.phase, "phaseValue");
	/* podIPs first, then podIP when it differs. */
	assert_int_equal(p.n_pod_ips, 2);
	assert_string_equal(p.pod_ips[0], "ipValue");
	assert_string_equal(p.pod_ips[1], "podIPValue");
	assert_int_equal(p.n_containers, 2);
	const struct k8s_container *app = &p.containers[0];
	assert_string_equal(app->name, "app");
	assert_false(app->init);
	assert_int_equal(app->restart_count, 5);
	assert_string_equal(app->container_id, "containerIDValue");
	/* running, waiting and terminated are all set: running wins. */
	assert_int_equal(app->state, K8S_CSTATE_RUNNING);
	assert_int_equal(app->started_at, S(978310861));
	assert_true(app->last_terminated);
	assert_int_equal(app->last_exit_code, 1);
	assert_int_equal(app->last_finished_at, S(1136077261));
	const struct k8s_container *init = &p.containers[1];
	assert_string_equal(init->name, "init");
	assert_true(init->init);
	assert_false(init->restart_always); /* "restartPolicyValue" */
	k8s_pod_done(&p);
}

/* ---- hand-made bodies ---- */

#define POD_HEAD "{\"kind\":\"Pod\",\"apiVersion\":\"v1\","
#define META "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u-1\"}"

static void test_nulls_tolerated(void **state)
{
	const char *json =
	    POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u-1\","
	             "\"creationTimestamp\":null,\"deletionTimestamp\":null,\"annotations\":null},"
	             "\"spec\":null,\"status\":{\"phase\":null,\"podIP\":null,\"podIPs\":null,"
	             "\"initContainerStatuses\":null,\"containerStatuses\":[{\"name\":\"app\","
	             "\"restartCount\":null,\"containerID\":null,\"state\":null,"
	             "\"lastState\":{\"terminated\":null}}]}}";
	struct k8s_pod p;
	char err[256] = "";
	assert_int_equal(k8s_pod_parse(json, strlen(json), &p, err, sizeof(err)), 0);
	assert_string_equal(p.name, "db-0");
	assert_int_equal(p.created, 0);
	assert_int_equal(p.deleting, 0);
	assert_string_equal(p.phase, "");
	assert_int_equal(p.n_pod_ips, 0);
	assert_int_equal(p.n_containers, 1);
	assert_int_equal(p.containers[0].state, K8S_CSTATE_NONE);
	assert_int_equal(p.containers[0].restart_count, 0);
	assert_false(p.containers[0].last_terminated);
	k8s_pod_done(&p);

	/* Only what identifies the pod is needed. */
	const char *bare = POD_HEAD META "}";
	assert_int_equal(k8s_pod_parse(bare, strlen(bare), &p, err, sizeof(err)), 0);
	assert_int_equal(p.n_containers, 0);
	assert_null(p.containers);
	k8s_pod_done(&p);
}

static void test_spec_without_status_and_annotation(void **state)
{
	const char *json =
	    POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u-1\","
	             "\"annotations\":{\"lock-arbiter.io/holder-container\":\"migrate\"},"
	             "\"creationTimestamp\":\"2019-12-31T12:26:47.5-07:00\"},"
	             "\"spec\":{\"containers\":[{\"name\":\"app\"},{\"name\":\"proxy\"}],"
	             "\"initContainers\":[{\"name\":\"migrate\",\"restartPolicy\":null}]},"
	             "\"status\":{\"podIP\":\"fd00::2\",\"containerStatuses\":[{\"name\":\"proxy\","
	             "\"state\":{}}],\"initContainerStatuses\":[]}}";
	struct k8s_pod p;
	char err[256] = "";
	assert_int_equal(k8s_pod_parse(json, strlen(json), &p, err, sizeof(err)), 0);
	assert_string_equal(p.holder_container, "migrate");
	/* 12:26:47.5 at -07:00 is 19:26:47.5Z. */
	assert_int_equal(p.created, S(1577820407) + 500000);
	assert_int_equal(p.n_pod_ips, 1);
	assert_string_equal(p.pod_ips[0], "fd00::2");
	assert_int_equal(p.n_containers, 3);
	assert_string_equal(p.containers[0].name, "app");
	assert_int_equal(p.containers[0].state, K8S_CSTATE_NONE);
	assert_string_equal(p.containers[1].name, "proxy");
	assert_int_equal(p.containers[1].state, K8S_CSTATE_NONE);
	assert_string_equal(p.containers[2].name, "migrate");
	assert_true(p.containers[2].init);
	assert_int_equal(p.containers[2].state, K8S_CSTATE_NONE);
	k8s_pod_done(&p);
}

static void test_not_a_pod(void **state)
{
	expect_einval("", "JSON");
	expect_einval("{", "JSON");
	expect_einval("[]", "object");
	expect_einval("null", NULL);
	expect_einval(POD_HEAD META "} trailing", "JSON");
	expect_einval("{\"apiVersion\":\"v1\"," META "}", "kind");
	expect_einval("{\"kind\":\"Service\",\"apiVersion\":\"v1\"," META "}", "kind");
	expect_einval("{\"kind\":\"pod\",\"apiVersion\":\"v1\"," META "}", "kind");
	expect_einval("{\"kind\":\"Pod\",\"apiVersion\":\"v2\"," META "}", "apiVersion");
	expect_einval("{\"Kind\":\"Pod\"," META "}", "kind");
	expect_einval(POD_HEAD "\"metadata\":null}", "metadata");
	expect_einval(POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\"}}", "uid");
	expect_einval(POD_HEAD "\"metadata\":{\"namespace\":\"db\",\"uid\":\"u\"}}", "name");
	expect_einval(POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"uid\":\"u\"}}", "namespace");
	/* The JSON is whole only with its last byte: a short len is not a pod. */
	const char *whole = POD_HEAD META "}";
	expect_einval_len(whole, strlen(whole) - 1, "JSON");

	size_t len;
	char *json = fixture("api-core.v1.Status.json", &len);
	expect_einval_len(json, len, "kind");
	free(json);
	json = fixture("api-core.v1.Event.json", &len);
	expect_einval_len(json, len, "kind");
	free(json);
}

static void test_wrong_types(void **state)
{
	static const char *const rows[][2] = {
	    {POD_HEAD "\"metadata\":[]}", "metadata"},
	    {"{\"kind\":1,\"apiVersion\":\"v1\"," META "}", "kind"},
	    /* cJSON would read the first, Go the last: refused. */
	    {POD_HEAD "\"kind\":\"Service\"," META "}", "duplicate"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":0,"
	                   "\"restartCount\":5}]}}",
	     "duplicate"},
	    {POD_HEAD "\"metadata\":{\"name\":5,\"namespace\":\"db\",\"uid\":\"u\"}}", "name"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\","
	              "\"creationTimestamp\":1565327539}}",
	     "creationTimestamp"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\","
	              "\"creationTimestamp\":\"yesterday\"}}",
	     "creationTimestamp"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\","
	              "\"annotations\":[]}}",
	     "annotations"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\","
	              "\"annotations\":{\"lock-arbiter.io/holder-container\":7}}}",
	     "holder"},
	    {POD_HEAD META ",\"spec\":\"x\"}", "spec"},
	    {POD_HEAD META ",\"spec\":{\"containers\":{}}}", "containers"},
	    {POD_HEAD META ",\"spec\":{\"containers\":[1]}}", "containers[0]"},
	    {POD_HEAD META ",\"spec\":{\"initContainers\":[{\"name\":\"a\",\"restartPolicy\":1}]}}",
	     "restartPolicy"},
	    {POD_HEAD META ",\"status\":{\"phase\":1}}", "phase"},
	    {POD_HEAD META ",\"status\":{\"podIP\":[]}}", "podIP"},
	    {POD_HEAD META ",\"status\":{\"podIPs\":\"10.0.0.1\"}}", "podIPs"},
	    {POD_HEAD META ",\"status\":{\"podIPs\":[\"10.0.0.1\"]}}", "podIPs[0]"},
	    {POD_HEAD META ",\"status\":{\"podIPs\":[{\"ip\":1}]}}", "ip"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":{}}}", "containerStatuses"},
	    {POD_HEAD META ",\"status\":{\"initContainerStatuses\":\"\"}}",
	     "initContainerStatuses"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":\"x\"}]}}",
	     "restartCount"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":1.5}]}}",
	     "restartCount"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":-1}]}}",
	     "restartCount"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":1e12}]}}",
	     "restartCount"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"restartCount\":true}]}}",
	     "restartCount"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"containerID\":{}}]}}",
	     "containerID"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":[]}]}}",
	     "state"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":"
	                   "{\"running\":\"yes\"}}]}}",
	     "running"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":"
	                   "{\"running\":{\"startedAt\":\"2019-02-30T00:00:00Z\"}}}]}}",
	     "startedAt"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":"
	                   "{\"terminated\":{\"exitCode\":\"1\"}}}]}}",
	     "exitCode"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":"
	                   "{\"waiting\":{\"reason\":false}}}]}}",
	     "reason"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"lastState\":"
	                   "{\"terminated\":{\"finishedAt\":7}}}]}}",
	     "finishedAt"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"lastState\":"
	                   "{\"terminated\":[]}}]}}",
	     "terminated"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		expect_einval(rows[i][0], rows[i][1]);
}

/* Replaces the "%s" in fmt with n copies of ch (no format string: fmt is data). */
static char *long_field(const char *fmt, size_t n, char ch)
{
	const char *at = strstr(fmt, "%s");
	assert_non_null(at);
	size_t head = (size_t)(at - fmt), tail = strlen(at + 2);
	char *out = malloc(head + n + tail + 1);
	assert_non_null(out);
	memcpy(out, fmt, head);
	memset(out + head, ch, n);
	memcpy(out + head + n, at + 2, tail + 1);
	return out;
}

static void test_oversized_strings(void **state)
{
	static const struct {
		const char *fmt;
		size_t fits; /* the longest value that fits */
		const char *err;
	} rows[] = {
	    {POD_HEAD "\"metadata\":{\"name\":\"%s\",\"namespace\":\"db\",\"uid\":\"u\"}}", 253,
	     "name"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"%s\",\"uid\":\"u\"}}", 63,
	     "namespace"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"%s\"}}", 63,
	     "uid"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\","
	              "\"annotations\":{\"lock-arbiter.io/holder-container\":\"%s\"}}}",
	     63, "holder"},
	    {POD_HEAD META ",\"status\":{\"phase\":\"%s\"}}", 15, "phase"},
	    {POD_HEAD META ",\"status\":{\"podIP\":\"%s\"}}", 63, "podIPs"},
	    {POD_HEAD META ",\"spec\":{\"containers\":[{\"name\":\"%s\"}]}}", 63, "name"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"containerID\":\"%s\"}]}}",
	     159, "containerID"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":"
	                   "{\"waiting\":{\"reason\":\"%s\"}}}]}}",
	     63, "reason"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a\",\"state\":"
	                   "{\"terminated\":{\"reason\":\"%s\"}}}]}}",
	     63, "reason"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		/* At the limit it parses, one byte more it is refused, never cut. */
		char *ok = long_field(rows[i].fmt, rows[i].fits, 'a');
		struct k8s_pod p;
		char err[256] = "";
		if (k8s_pod_parse(ok, strlen(ok), &p, err, sizeof(err)) != 0)
			fail_msg("row %zu at the limit: %s", i, err);
		k8s_pod_done(&p);
		free(ok);
		char *big = long_field(rows[i].fmt, rows[i].fits + 1, 'a');
		expect_einval(big, rows[i].err);
		free(big);
	}
}

static void test_invalid_names(void **state)
{
	static const char *const rows[][2] = {
	    {POD_HEAD
	     "\"metadata\":{\"name\":\"../../secrets/x\",\"namespace\":\"db\",\"uid\":\"u\"}}",
	     "name"},
	    {POD_HEAD "\"metadata\":{\"name\":\"Nginx\",\"namespace\":\"db\",\"uid\":\"u\"}}",
	     "name"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0.\",\"namespace\":\"db\",\"uid\":\"u\"}}",
	     "name"},
	    {POD_HEAD "\"metadata\":{\"name\":\"\",\"namespace\":\"db\",\"uid\":\"u\"}}", "name"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"a.b\",\"uid\":\"u\"}}",
	     "namespace"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u 1\"}}",
	     "uid"},
	    {POD_HEAD "\"metadata\":{\"name\":\"db-0\",\"namespace\":\"db\",\"uid\":\"u\","
	              "\"annotations\":{\"lock-arbiter.io/holder-container\":\"App_1\"}}}",
	     "holder"},
	    {POD_HEAD META ",\"spec\":{\"containers\":[{\"name\":\"App\"}]}}", "name"},
	    {POD_HEAD META ",\"spec\":{\"containers\":[{}]}}", "name"},
	    {POD_HEAD META ",\"status\":{\"containerStatuses\":[{\"name\":\"a/b\"}]}}", "name"},
	    /* Ambiguous bodies: which status would count? */
	    {POD_HEAD META ",\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"a\"}]}}",
	     "duplicate"},
	    {POD_HEAD META ",\"spec\":{\"containers\":[{\"name\":\"a\"}],\"initContainers\":"
	                   "[{\"name\":\"a\"}]}}",
	     "duplicate"},
	    {POD_HEAD META
	     ",\"status\":{\"containerStatuses\":[{\"name\":\"a\"},{\"name\":\"a\"}]}}",
	     "two statuses"},
	    {POD_HEAD META ",\"status\":{\"podIPs\":[{\"ip\":\"a\"},{\"ip\":\"b\"},{\"ip\":\"c\"},"
	                   "{\"ip\":\"d\"},{\"ip\":\"e\"}]}}",
	     "podIPs"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		expect_einval(rows[i][0], rows[i][1]);
}

static void test_pod_list(void **state)
{
	const char *json =
	    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":["
	    "{\"metadata\":{\"name\":\"a\",\"namespace\":\"db\",\"uid\":\"u1\"}},"
	    "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"b\",\"namespace\":\"db\",\"uid\":\"u2\"},"
	    "\"status\":{\"podIP\":\"10.0.0.2\"}}]}";
	struct k8s_pod *pods = NULL;
	size_t n = 0;
	char err[256] = "";
	assert_int_equal(k8s_pod_list_parse(json, strlen(json), &pods, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(pods[0].name, "a");
	assert_string_equal(pods[1].uid, "u2");
	assert_string_equal(pods[1].pod_ips[0], "10.0.0.2");
	k8s_pods_free(pods, n);

	const char *empty =
	    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[]}";
	pods = (struct k8s_pod *)&n; /* must be overwritten */
	assert_int_equal(k8s_pod_list_parse(empty, strlen(empty), &pods, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_null(pods);

	static const char *const bad[] = {
	    "{\"kind\":\"Pod\",\"items\":[]}",
	    "{\"items\":[]}",
	    "{\"kind\":\"PodList\",\"items\":{}}",
	    "{\"kind\":\"PodList\",\"items\":[{\"kind\":\"Service\",\"metadata\":"
	    "{\"name\":\"a\",\"namespace\":\"db\",\"uid\":\"u1\"}}]}",
	    "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":\"db\","
	    "\"uid\":\"u1\"}},{\"metadata\":{\"name\":\"B\",\"namespace\":\"db\",\"uid\":\"u2\"}}]"
	    "}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct k8s_pod *untouched = (struct k8s_pod *)&n;
		size_t m = 77;
		pods = untouched;
		assert_int_equal(
		    k8s_pod_list_parse(bad[i], strlen(bad[i]), &pods, &m, err, sizeof(err)),
		    -EINVAL);
		assert_ptr_equal(pods, untouched);
		assert_int_equal(m, 77);
	}
	/* A pod itself is not a list item: without kind it is refused. */
	const char *item = "{\"metadata\":{\"name\":\"a\",\"namespace\":\"db\",\"uid\":\"u1\"}}";
	expect_einval(item, "kind");
}

int main(int argc, char **argv)
{
	if (argc > 1)
		fixtures_root = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_pod_fixture_parses),
	    cmocka_unit_test(test_k9s_po),
	    cmocka_unit_test(test_k9s_po_init),
	    cmocka_unit_test(test_k9s_po_sidecar),
	    cmocka_unit_test(test_k9s_p1),
	    cmocka_unit_test(test_gitops_crashloop),
	    cmocka_unit_test(test_gitops_deletion),
	    cmocka_unit_test(test_gitops_error),
	    cmocka_unit_test(test_gitops_phases),
	    cmocka_unit_test(test_api_core_pod),
	    cmocka_unit_test(test_nulls_tolerated),
	    cmocka_unit_test(test_spec_without_status_and_annotation),
	    cmocka_unit_test(test_not_a_pod),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_oversized_strings),
	    cmocka_unit_test(test_invalid_names),
	    cmocka_unit_test(test_pod_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
