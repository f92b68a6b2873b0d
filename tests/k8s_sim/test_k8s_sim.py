"""Tests of the simulated Kubernetes API server itself.

The exact error bodies come from tests/fixtures/README.md; the pods are
checked the way real clients read them: the kubectl binary (1.31, from
scripts/install_kube_tools.sh) and Debian's python3-kubernetes.
"""

import sys

sys.dont_write_bytecode = True

import datetime  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

from simctl import Sim, SimError, make_pki  # noqa: E402
import k8s_sim  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import kube_tools  # noqa: E402

FIXTURES = os.environ.get("LOCK_ARBITER_FIXTURES") or k8s_sim.default_fixtures_dir()
USER = "system:serviceaccount:ops:lock-arbiter"
CID_RE = re.compile(r"^containerd://[0-9a-f]{64}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def readme_bodies():
    """The exact bodies quoted in fixtures/README.md, keyed 404, 401, 410."""
    with open(os.path.join(FIXTURES, "README.md")) as f:
        text = f.read()
    out = {}
    for key in ("404", "401"):
        m = re.search(r"^- %s: `(\{.*\})`$" % key, text, re.M)
        out[key] = m.group(1)
    m = re.search(r"^\s*`(\{\"type\":\"ERROR\".*\})`$", text, re.M)
    out["410"] = m.group(1)
    m = re.search(r"^- 403: reason `Forbidden`, message `(.*)`$", text, re.M)
    out["403"] = m.group(1)
    return out


README = readme_bodies()


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def ts(value):
    return k8s_sim.parse_time(value)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with Sim(tmp_path_factory.mktemp("sim"), seed=20240601) as s:
        yield s


@pytest.fixture
def ns(request, sim):
    """A namespace of the test's own, and a clean fault list and request log."""
    sim.clear_faults()
    sim.clear_requests()
    name = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:50]
    yield name
    sim.clear_faults()


def body_of(resp):
    return resp.body.rstrip(b"\n").decode()


# --------------------------------------------------------------------------
# TLS and authentication
# --------------------------------------------------------------------------

def test_tls_is_verified_with_the_generated_ca(sim, tmp_path):
    resp = sim.get("/version")
    assert resp.status == 200
    version = resp.json()
    assert version["gitVersion"].startswith("v1.") and version["major"] == "1"

    host, port = sim._hostport(sim.url)
    # The SANs a real in-cluster client checks.
    for name in ("kubernetes.default.svc", "localhost"):
        ctx = sim.ssl_context()
        with ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=name) as s:
            sans = {v for _k, v in s.getpeercert()["subjectAltName"]}
            assert {"127.0.0.1", "kubernetes.default.svc", "localhost"} <= sans
            assert s.selected_alpn_protocol() in (None, "http/1.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        sim.ssl_context().wrap_socket(socket.create_connection((host, port)),
                                      server_hostname="evil.example")

    # Without the CA (system roots only), and with another CA: refused.
    conn = http.client.HTTPSConnection(host, port, timeout=5,
                                       context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/version")
    other = make_pki(str(tmp_path / "other"))
    conn = http.client.HTTPSConnection(host, port, timeout=5,
                                       context=ssl.create_default_context(cafile=other["ca"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/version")

    # Plain HTTP on the TLS port gets Go's answer.
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.0 400 Bad Request")
    assert b"Client sent an HTTP request to an HTTPS server." in data


def test_401_exact_body_and_token_rotation(sim, ns):
    for token in ("wrong-token", None):
        resp = sim.get("/api/v1/namespaces/%s/pods" % ns, token=token)
        assert resp.status == 401
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.body == README["401"].encode() + b"\n"
    resp = sim.get("/version", headers={"Authorization": "Basic dXNlcjpwYXNz"}, token=None)
    assert resp.status == 401

    old = sim.token
    sim.rotate_token("rotated-" + uuid.uuid4().hex)          # kubelet-style ..data swap
    assert os.path.islink(sim.token_file)
    assert sim.get("/version", token=old).status == 401
    assert sim.get("/version").status == 200
    sim.rotate_token("inplace-" + uuid.uuid4().hex, atomic=False)
    assert sim.get("/version").status == 200

    # Old tokens only when asked for.
    sim.set_auth(accept_old_tokens=True)
    try:
        assert sim.get("/version", token=old).status == 200
        assert sim.get("/version", token="never-valid").status == 401
    finally:
        sim.set_auth(accept_old_tokens=False)
    assert sim.get("/version", token=old).status == 401

    log = sim.requests()
    assert [(r["auth"], r["auth_detail"]) for r in log[:3]] == [
        (False, "invalid"), (False, "missing"), (False, "missing")]
    assert ("old" in [r["auth_detail"] for r in log]) and all(
        r["status"] == 401 for r in log if not r["auth"])


def test_anonymous_mode(sim, ns):
    sim.set_auth(anonymous=True)
    try:
        assert sim.get("/version", token=None).status == 200
        resp = sim.get("/api/v1/namespaces/%s/pods/db-0" % ns, token=None)
        assert resp.status == 403 and resp.json()["message"] == (
            'pods "db-0" is forbidden: User "system:anonymous" cannot get resource "pods" in '
            'API group "" in the namespace "%s"' % ns)
        assert sim.get("/version", token="invalid").status == 401
    finally:
        sim.set_auth(anonymous=False)
    assert sim.get("/version", token=None).status == 401


# --------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------

def test_get_pod_and_exact_404(sim, ns):
    created = sim.create_pod("db-0", ns, containers=["app"], podIP="10.91.0.1",
                             holderContainer="app")
    resp = sim.get("/api/v1/namespaces/%s/pods/db-0" % ns)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.body)
    assert resp.headers["Audit-Id"] and resp.headers["Cache-Control"] == "no-cache, private"
    assert resp.body.endswith(b"}\n")
    pod = resp.json()
    assert pod == created
    assert list(pod)[:2] == ["kind", "apiVersion"]
    assert pod["metadata"]["annotations"]["lock-arbiter.io/holder-container"] == "app"

    missing = sim.get("/api/v1/namespaces/%s-gone/pods/db-0" % ns)
    assert missing.status == 404
    assert missing.body == README["404"].encode() + b"\n"

    unknown = sim.get("/api/v1/namespaces/%s/widgets" % ns)
    assert unknown.status == 404
    assert unknown.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure",
                              "message": "the server could not find the requested resource",
                              "reason": "NotFound", "details": {}, "code": 404}
    assert sim.request("DELETE", "/api/v1/namespaces/%s/pods/db-0" % ns).json()["reason"] \
        == "MethodNotAllowed"
    # Like kube-apiserver: ?pretty=true and curl's User-Agent get indented JSON.
    pretty = sim.get("/api/v1/namespaces/%s/pods/db-0?pretty=true" % ns)
    assert pretty.body.startswith(b'{\n  "kind": "Pod"') and json.loads(pretty.body) == pod
    assert sim.get("/version", headers={"User-Agent": "curl/7.88.1"}).body.startswith(b"{\n")
    # Protobuf only: 406, as a server that cannot encode it would answer.
    assert sim.get("/api/v1/namespaces/%s/pods/db-0" % ns, headers={
        "Accept": "application/vnd.kubernetes.protobuf"}).status == 406


def test_built_pod_is_consistent(sim, ns):
    t0 = now().replace(microsecond=0)
    pod = sim.create_pod(
        "db-0", ns, podIP="10.91.1.1", labels={"app": "db"},
        containers=["app", {"name": "metrics", "image": "prom/statsd-exporter:v0.26.0"}],
        initContainers=["migrate", {"name": "proxy", "restartPolicy": "Always"}])
    meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
    assert uuid.UUID(meta["uid"]).version == 4
    assert TIME_RE.match(meta["creationTimestamp"])
    assert abs((ts(meta["creationTimestamp"]) - t0).total_seconds()) <= 2
    assert meta["resourceVersion"].isdigit()
    assert "selfLink" not in meta
    assert [c["name"] for c in spec["containers"]] == ["app", "metrics"]
    assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [
        ("migrate", None), ("proxy", "Always")]
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.91.1.1" and status["podIPs"] == [{"ip": "10.91.1.1"}]
    by_name = {c["name"]: c for c in status["containerStatuses"] +
               status["initContainerStatuses"]}
    for name in ("app", "metrics", "proxy"):
        cs = by_name[name]
        assert CID_RE.match(cs["containerID"]), cs
        assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
        assert TIME_RE.match(cs["state"]["running"]["startedAt"])
        assert cs["lastState"] == {}
        assert "@sha256:" in cs["imageID"]
    assert by_name["metrics"]["image"] == "docker.io/prom/statsd-exporter:v0.26.0"
    term = by_name["migrate"]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert term["containerID"] == by_name["migrate"]["containerID"]
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds["Ready"] == conds["ContainersReady"] == conds["Initialized"] == "True"

    pending = sim.create_pod("db-1", ns, phase="Pending", containers=["app"])
    cs = pending["status"]["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "containerID" not in cs and cs["imageID"] == "" and cs["ready"] is False


def test_container_operations(sim, ns):
    pod = sim.create_pod("db-0", ns, containers=["app", "sidecar"], podIP="10.91.2.1")
    first = pod["status"]["containerStatuses"][0]
    before = now().replace(microsecond=0)

    pod = sim.restart(ns, "db-0", "app")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error")
    assert last["containerID"] == first["containerID"]
    assert last["startedAt"] == first["state"]["running"]["startedAt"]
    assert ts(last["finishedAt"]) >= before
    assert cs["containerID"] != first["containerID"] and CID_RE.match(cs["containerID"])
    assert ts(cs["state"]["running"]["startedAt"]) >= before
    assert int(pod["metadata"]["resourceVersion"]) > int(first and 0)

    pod = sim.restart(ns, "db-0", "app", crashloop=True)
    cs = pod["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["restartCount"] == 2 and cs["ready"] is False and cs["started"] is False
    ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and ready["message"] == \
        "containers with unready status: [app]"

    pod = sim.start_container(ns, "db-0", "app")
    assert "running" in pod["status"]["containerStatuses"][0]["state"]

    pod = sim.stop_container(ns, "db-0", "sidecar", exit_code=143, reason="Error")
    term = pod["status"]["containerStatuses"][1]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (143, "Error")
    assert TIME_RE.match(term["finishedAt"]) and CID_RE.match(term["containerID"])

    pod = sim.mark_deleting(ns, "db-0", grace=30)
    assert ts(pod["metadata"]["deletionTimestamp"]) > now()
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    assert "running" in pod["status"]["containerStatuses"][0]["state"]

    # Explicit times through a merge patch and a container patch.
    pod = sim.patch_pod(ns, "db-0", {"metadata": {"creationTimestamp": "2024-05-01T10:00:00Z"},
                                     "status": {"startTime": "2024-05-01T10:00:01Z"}})
    pod = sim.patch_container(ns, "db-0", "app",
                              {"state": {"running": {"startedAt": "2024-05-01T10:04:59Z"}}})
    served = sim.get("/api/v1/namespaces/%s/pods/db-0" % ns).json()
    assert served["metadata"]["creationTimestamp"] == "2024-05-01T10:00:00Z"
    assert served["status"]["containerStatuses"][0]["state"] == {
        "running": {"startedAt": "2024-05-01T10:04:59Z"}}

    pod = sim.set_phase(ns, "db-0", "Failed")
    assert pod["status"]["phase"] == "Failed"
    assert all("terminated" in c["state"] for c in pod["status"]["containerStatuses"])

    uid = pod["metadata"]["uid"]
    sim.delete_pod(ns, "db-0")
    assert sim.get("/api/v1/namespaces/%s/pods/db-0" % ns).status == 404
    time.sleep(1.05)
    again = sim.recreate_pod(ns, "db-0")
    assert again["metadata"]["uid"] != uid
    assert ts(again["metadata"]["creationTimestamp"]) > ts(pod["metadata"]["creationTimestamp"])
    assert again["status"]["phase"] == "Running"
    with pytest.raises(SimError) as err:
        sim.restart(ns, "db-0", "nope")
    assert err.value.status == 400
    with pytest.raises(SimError) as err:
        sim.create_pod("db-0", ns, containers=["app"])
    assert err.value.status == 409


def test_every_fixture_pod_can_be_served(sim, ns):
    names = sorted(f for f in os.listdir(os.path.join(FIXTURES, "kubernetes"))
                   if f.endswith(".json") and json.load(
                       open(os.path.join(FIXTURES, "kubernetes", f))).get("kind") == "Pod")
    assert len(names) >= 10
    ips = set()
    for i, fname in enumerate(names):
        with open(os.path.join(FIXTURES, "kubernetes", fname)) as f:
            tpl = json.load(f)
        name = "p%d" % i
        pod = sim.create_pod(name, ns, template=fname)
        served = sim.get("/api/v1/namespaces/%s/pods/%s" % (ns, name)).json()
        assert served == pod
        assert pod["metadata"]["name"] == name and pod["metadata"]["namespace"] == ns
        assert pod["metadata"]["uid"] != tpl["metadata"].get("uid")
        # Same containers as the fixture, and no record dated in the future.
        assert [c["name"] for c in pod["status"].get("containerStatuses", [])] == \
            [c["name"] for c in tpl["status"].get("containerStatuses", [])]
        latest = k8s_sim.collect_times(pod)
        assert max(latest) <= now() + datetime.timedelta(seconds=1), fname
        if pod["status"].get("podIP"):
            assert pod["status"]["podIP"] not in ips
            ips.add(pod["status"]["podIP"])
    pinned = sim.create_pod("pinned", ns, template="k9s-po_sidecar.json",
                            creationTimestamp="2024-05-01T10:00:00Z")
    assert pinned["metadata"]["creationTimestamp"] == "2024-05-01T10:00:00Z"
    # k9s-po_sidecar: created 01:54:32, sidecar started 01:54:38 (6 s later).
    side = [c for c in pinned["status"]["initContainerStatuses"] if c["name"] == "sidecar"][0]
    assert side["state"]["running"]["startedAt"] == "2024-05-01T10:00:06Z"


def test_list_with_field_selector_and_limit(sim, ns):
    other = ns + "-b"
    sim.create_pod("a", ns, containers=["app"], podIP="10.92.0.1", labels={"app": "db"})
    sim.create_pod("b", ns, containers=["app"], podIP="10.92.0.2", labels={"app": "web"})
    sim.create_pod("c", other, containers=["app"], podIP="10.92.0.1")
    sim.create_pod("d", ns, containers=["app"], podIPs=["10.92.0.9", "fd00::9"])

    resp = sim.get("/api/v1/namespaces/%s/pods?fieldSelector=status.podIP%%3D10.92.0.1" % ns)
    lst = resp.json()
    assert lst["kind"] == "PodList" and lst["apiVersion"] == "v1"
    assert lst["metadata"]["resourceVersion"].isdigit()
    assert [p["metadata"]["name"] for p in lst["items"]] == ["a"]
    assert "kind" not in lst["items"][0] and "apiVersion" not in lst["items"][0]

    every = sim.get("/api/v1/pods?fieldSelector=status.podIP%3D10.92.0.1").json()
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in every["items"]] == \
        [(ns, "a"), (other, "c")]
    # status.podIP selects on podIPs[0] only, like the real registry.
    assert sim.get("/api/v1/pods?fieldSelector=status.podIP%3Dfd00%3A%3A9").json()["items"] \
        == []
    names = lambda q: [p["metadata"]["name"] for p in sim.get(  # noqa: E731
        "/api/v1/namespaces/%s/pods?%s" % (ns, q)).json()["items"]]
    assert names("labelSelector=app%3Ddb") == ["a"]
    assert names("fieldSelector=status.podIP%21%3D10.92.0.1%2Cstatus.phase%3DRunning") == \
        ["b", "d"]

    page = sim.get("/api/v1/namespaces/%s/pods?limit=2" % ns).json()
    assert [p["metadata"]["name"] for p in page["items"]] == ["a", "b"]
    assert page["metadata"]["remainingItemCount"] == 1
    rest = sim.get("/api/v1/namespaces/%s/pods?limit=2&continue=%s"
                   % (ns, page["metadata"]["continue"])).json()
    assert [p["metadata"]["name"] for p in rest["items"]] == ["d"]
    assert "continue" not in rest["metadata"]

    bad = sim.get("/api/v1/namespaces/%s/pods?fieldSelector=spec.foo%%3Dx" % ns)
    assert bad.status == 400
    assert bad.json()["message"] == "field label not supported: spec.foo"
    assert bad.json()["reason"] == "BadRequest"


def test_discovery_documents(sim, ns):
    api = sim.get("/api").json()
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    res = sim.get("/api/v1").json()
    pods = [r for r in res["resources"] if r["name"] == "pods"][0]
    assert pods["namespaced"] and "watch" in pods["verbs"] and pods["shortNames"] == ["po"]
    assert sim.get("/apis").json()["kind"] == "APIGroupList"
    assert sim.get("/api/v1/namespaces/default").json()["status"]["phase"] == "Active"
    assert sim.get("/api/v1/namespaces/%s-none" % ns).json()["message"] == \
        'namespaces "%s-none" not found' % ns


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------

def lock_event(ns, **over):
    ev = {"apiVersion": "v1", "kind": "Event",
          "metadata": {"generateName": "db-0.", "namespace": ns},
          "involvedObject": {"kind": "Pod", "namespace": ns, "name": "db-0",
                             "uid": "3f0e9a8e-0000-4000-8000-000000000000", "apiVersion": "v1"},
          "reason": "LiquibaseLockReleased",
          "message": "released lock of db/public.databasechangeloglock: pod db-0 deleted",
          "type": "Warning", "source": {"component": "lock-arbiter"},
          "firstTimestamp": "2024-05-01T12:00:00+02:00",
          "lastTimestamp": "2024-05-01T10:00:00.123456Z", "count": 1,
          "reportingComponent": "lock-arbiter", "reportingInstance": "lock-arbiter-7d9f"}
    ev.update(over)
    return ev


def test_event_create_and_list(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"])
    path = "/api/v1/namespaces/%s/events" % ns
    resp = sim.request("POST", path, lock_event(ns))
    assert resp.status == 201, resp
    ev = resp.json()
    assert ev["kind"] == "Event" and ev["metadata"]["name"].startswith("db-0.")
    assert len(ev["metadata"]["name"]) == len("db-0.") + 5
    assert uuid.UUID(ev["metadata"]["uid"])
    assert ev["metadata"]["resourceVersion"].isdigit()
    assert TIME_RE.match(ev["metadata"]["creationTimestamp"])
    # Times are normalised to UTC seconds; unset ones are null, as in Go.
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2024-05-01T10:00:00Z"
    assert ev["eventTime"] is None and ev["count"] == 1
    assert ev["involvedObject"]["name"] == "db-0"

    listed = sim.get(path).json()
    assert listed["kind"] == "EventList"
    assert [e["metadata"]["name"] for e in listed["items"]] == [ev["metadata"]["name"]]
    assert "kind" not in listed["items"][0]
    everywhere = sim.get("/api/v1/events?fieldSelector=involvedObject.namespace%%3D%s" % ns)
    assert len(everywhere.json()["items"]) == 1
    assert sim.events(ns)[0]["metadata"]["uid"] == ev["metadata"]["uid"]

    named = lock_event(ns, metadata={"name": "db-0.fixed"})
    assert sim.request("POST", path, named).status == 201
    dup = sim.request("POST", path, named)
    assert dup.status == 409
    assert body_of(dup) == ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                            '"message":"events \\"db-0.fixed\\" already exists","reason":'
                            '"AlreadyExists","details":{"name":"db-0.fixed","kind":"events"},'
                            '"code":409}')

    invalid = sim.request("POST", path, lock_event(ns, reason="", type="Bad"))
    assert invalid.status == 422
    st = invalid.json()
    assert st["reason"] == "Invalid"
    assert {c["field"] for c in st["details"]["causes"]} == {"reason", "type"}
    wrong_ns = sim.request("POST", path, lock_event(ns, involvedObject={
        "kind": "Pod", "namespace": "elsewhere", "name": "db-0"}))
    assert wrong_ns.status == 422
    assert "does not match event.namespace" in wrong_ns.json()["message"]
    no_obj = lock_event(ns)
    del no_obj["involvedObject"]
    assert sim.request("POST", path, no_obj).status == 422
    # curl's default Content-Type for a POST body is refused, as by kube-apiserver.
    form = sim.request("POST", path, json.dumps(lock_event(ns)),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 415 and form.json()["reason"] == "UnsupportedMediaType"
    broken = sim.request("POST", path, '{"kind":"Event",', headers={
        "Content-Type": "application/json"})
    assert broken.status == 400 and broken.json()["reason"] == "BadRequest"
    typed = sim.request("POST", path, lock_event(ns, count="1"))
    assert typed.status == 400 and "Event.count of type int32" in typed.json()["message"]
    unknown = sim.request("POST", path, lock_event(ns, severity="high"))
    assert unknown.status == 201 and "severity" in unknown.headers["Warning"]
    gone = sim.request("POST", "/api/v1/namespaces/%s-none/events" % ns,
                       lock_event(ns + "-none"))
    assert gone.status == 404
    assert gone.json()["message"] == 'namespaces "%s-none" not found' % ns


# --------------------------------------------------------------------------
# Watches
# --------------------------------------------------------------------------

def test_watch_added_then_modified_then_deleted(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"], podIP="10.93.0.1")
    sim.create_pod("db-1", ns, containers=["app"], podIP="10.93.0.2")
    with sim.watch("/api/v1/namespaces/%s/pods?watch=1" % ns) as w:
        assert w.status == 200
        assert w.headers["Transfer-Encoding"] == "chunked"
        assert w.headers["Content-Length"] is None
        assert w.headers["Content-Type"] == "application/json"
        first = [w.next(), w.next()]
        assert [(t, o["metadata"]["name"]) for t, o in first] == [
            ("ADDED", "db-0"), ("ADDED", "db-1")]
        assert first[0][1]["kind"] == "Pod"
        sim.wait_watches(1)
        sim.restart(ns, "db-0", "app")
        etype, obj = w.next()
        assert etype == "MODIFIED" and obj["metadata"]["name"] == "db-0"
        assert obj["status"]["containerStatuses"][0]["restartCount"] == 1
        rv_after_restart = obj["metadata"]["resourceVersion"]
        sim.delete_pod(ns, "db-1")
        etype, obj = w.next()
        assert (etype, obj["metadata"]["name"]) == ("DELETED", "db-1")

    # One pod by field selector (watch=true), and a replay from a resourceVersion.
    path = ("/api/v1/namespaces/%s/pods?watch=true&fieldSelector=metadata.name%%3Ddb-0"
            "&resourceVersion=%s" % (ns, rv_after_restart))
    with sim.watch(path) as w:
        sim.wait_watches(1)
        sim.create_pod("db-1", ns, containers=["app"])      # not selected
        sim.stop_container(ns, "db-0", "app", exit_code=1)
        etype, obj = w.next()
        assert etype == "MODIFIED" and obj["metadata"]["name"] == "db-0"
        assert "terminated" in obj["status"]["containerStatuses"][0]["state"]

    # timeoutSeconds ends the stream cleanly; the connection stays usable.
    conn = sim.connection()
    t0 = time.monotonic()
    resp = sim.request("GET", "/api/v1/namespaces/%s/pods?watch=1&timeoutSeconds=1" % ns,
                       conn=conn)
    assert 0.9 <= time.monotonic() - t0 < 3
    assert [json.loads(x)["type"] for x in resp.body.splitlines()] == ["ADDED", "ADDED"]
    assert sim.request("GET", "/version", conn=conn).status == 200
    conn.close()
    conns = {r["conn"] for r in sim.requests() if "timeoutSeconds" in r["path"]
             or r["path"] == "/version"}
    assert len(conns) == 1


def test_watch_chunks_split_inside_objects(sim, ns):
    for i in range(3):
        sim.create_pod("w-%d" % i, ns, containers=["app"])
    status, headers, chunks = sim.raw_chunks(
        "/api/v1/namespaces/%s/pods?watch=1" % ns, count=3)
    assert status == "HTTP/1.1 200 OK" and "Transfer-Encoding: chunked" in headers
    text = b"".join(chunks)
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["type"] for e in events] == ["ADDED"] * 3
    assert len(chunks) >= 4
    assert any(not c.endswith(b"\n") for c in chunks)           # cut inside an object
    assert any(b"\n" in c[:-1] for c in chunks)                 # one object ends, next begins


def test_watch_expired_and_control_of_open_watches(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"])
    # The README's exact event, through the expired fault.
    sim.add_fault("expired", namespace=ns, times=1,
                  message="too old resource version: 100 (200)")
    status, _h, chunks = sim.raw_chunks(
        "/api/v1/namespaces/%s/pods?watch=1&resourceVersion=100" % ns, count=1)
    assert status.startswith("HTTP/1.1 200")
    assert b"".join(chunks) == README["410"].encode() + b"\n"

    # The real cause: a resourceVersion older than the compacted history.
    sim.compact()
    with sim.watch("/api/v1/namespaces/%s/pods?watch=1&resourceVersion=5" % ns) as w:
        etype, obj = w.next()
        assert etype == "ERROR" and obj["code"] == 410 and obj["reason"] == "Expired"
        assert re.match(r"too old resource version: 5 \(\d+\)$", obj["message"])
        assert w.next() is None

    # Open watches: bookmark (when allowed), then expiry ends the stream.
    with sim.watch("/api/v1/namespaces/%s/pods?watch=1&allowWatchBookmarks=true" % ns) as w:
        assert w.next()[0] == "ADDED"
        sim.wait_watches(1)
        sim.bookmark_watches()
        etype, obj = w.next()
        assert etype == "BOOKMARK" and obj["metadata"]["resourceVersion"].isdigit()
        sim.expire_watches()
        etype, obj = w.next()
        assert etype == "ERROR" and obj["code"] == 410
        assert w.next() is None
    with sim.watch("/api/v1/namespaces/%s/pods?watch=1" % ns) as w:
        w.next()
        sim.wait_watches(1)
        sim.close_watches("end")                   # clean end: the zero-length chunk
        assert w.next() is None

    # A reset drops the stream without the final chunk (raw framing shows it).
    result = {}

    def read():
        try:
            result["ok"] = sim.raw_chunks("/api/v1/namespaces/%s/pods?watch=1" % ns, count=2)
        except (EOFError, ConnectionError, ssl.SSLError) as e:
            result["error"] = e

    reader = threading.Thread(target=read)
    reader.start()
    sim.wait_watches(1)
    sim.close_watches("rst")
    reader.join(5)
    assert "error" in result, result


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------

def test_fault_latency_and_hang(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"])
    pod_path = "/api/v1/namespaces/%s/pods/db-0" % ns
    sim.add_fault("latency", ms=300, path=r"/pods/db-0$")
    t0 = time.monotonic()
    assert sim.get(pod_path).status == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    assert sim.get("/version").status == 200
    assert time.monotonic() - t0 < 0.25
    sim.clear_faults()

    sim.add_fault("hang", path=r"/pods/db-0$", times=1)
    with pytest.raises(socket.timeout):
        sim.get(pod_path, timeout=0.5)
    assert sim.faults()["hanging"] == 1
    assert sim.get("/version").status == 200                   # only that path hangs
    assert sim.release_hangs() == 1
    assert sim.get(pod_path).status == 200                     # times=1: used up
    assert sim.faults()["faults"][0]["hits"] == 1


def test_fault_drip_oversized_malformed(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"])
    pod_path = "/api/v1/namespaces/%s/pods/db-0" % ns
    plain = sim.get(pod_path).body

    sim.add_fault("drip", interval_ms=3, path="^/version$", times=1)
    t0 = time.monotonic()
    resp = sim.get("/version")
    assert resp.status == 200 and resp.json()["major"] == "1"
    assert time.monotonic() - t0 >= len(resp.body) * 0.003

    sim.add_fault("oversized", path=r"/pods/db-0$", times=1)
    big = sim.get(pod_path)
    assert big.status == 200 and len(big.body) >= 2 * 1024 * 1024
    assert int(big.headers["Content-Length"]) == len(big.body)
    assert big.json()["kind"] == "Pod"

    sim.add_fault("malformed", variant="truncated", path=r"/pods/db-0$", times=1)
    cut = sim.get(pod_path)
    assert cut.status == 200 and cut.body == plain[:len(plain) // 2]
    with pytest.raises(ValueError):
        json.loads(cut.body)
    sim.add_fault("malformed", variant="wrong_types", path=r"/pods/db-0$", times=1)
    wrong = sim.get(pod_path).json()
    assert wrong["status"]["containerStatuses"][0]["restartCount"] == "x"
    assert isinstance(wrong["metadata"]["resourceVersion"], int)
    for variant, check in (("empty", lambda b: b == b""), ("not_json", lambda b: b"<html" in b)):
        sim.add_fault("malformed", variant=variant, path=r"/pods/db-0$", times=1)
        assert check(sim.get(pod_path).body)
    assert sim.get(pod_path).body == plain


def test_fault_reset(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"])
    pod_path = "/api/v1/namespaces/%s/pods/db-0" % ns
    sim.add_fault("reset", path=r"/pods/db-0$", times=1)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
        sim.get(pod_path)
    sim.add_fault("reset", path=r"/pods/db-0$", times=1, after_bytes=600)
    with pytest.raises((ConnectionError, http.client.IncompleteRead, ssl.SSLError)):
        sim.get(pod_path)
    assert sim.get(pod_path).status == 200
    log = sim.requests()
    assert [r["fault"] for r in log] == ["reset", "reset", None]
    assert log[0]["status"] is None and log[1]["status"] == 200


def test_fault_status_codes(sim, ns):
    sim.create_pod("db-0", ns, containers=["app"])
    pod_path = "/api/v1/namespaces/%s/pods/db-0" % ns
    sim.add_fault("status", code=500, times=1)
    resp = sim.get(pod_path)
    assert resp.status == 500
    assert resp.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure",
                           "message": "Internal error occurred: etcdserver: request timed out",
                           "reason": "InternalError",
                           "details": {"causes": [{"message": "etcdserver: request timed out"}]},
                           "code": 500}
    sim.add_fault("status", code=429, retry_after=3, times=1)
    resp = sim.get(pod_path)
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json()["reason"] == "TooManyRequests"
    assert resp.json()["details"] == {"retryAfterSeconds": 3}
    sim.add_fault("status", code=409, times=1)
    assert body_of(sim.get(pod_path)) == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
        '"pods \\"db-0\\" already exists","reason":"AlreadyExists","details":{"name":"db-0",'
        '"kind":"pods"},"code":409}')
    sim.add_fault("status", code=503, times=2)
    assert [sim.get(pod_path).status for _ in range(3)] == [503, 503, 200]
    sim.add_fault("status", code=502, body="<html>bad gateway</html>", content_type="text/html",
                  times=1)
    resp = sim.get(pod_path)
    assert resp.status == 502 and resp.headers["Content-Type"] == "text/html"
    with pytest.raises(SimError):
        sim.add_fault("status", code=200)
    # Errors other than network ones come after authentication, as in a real server.
    sim.add_fault("status", code=500, times=1)
    assert sim.get(pod_path, token="bad").status == 401
    assert sim.get(pod_path).status == 500


def test_fault_forbidden_and_unauthorized(sim):
    sim.clear_faults()
    sim.create_pod("db-0", "db", containers=["app"])
    sim.add_fault("forbidden", namespace="db")
    resp = sim.get("/api/v1/namespaces/db/pods/db-0")
    assert resp.status == 403
    assert resp.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": README["403"],
                           "reason": "Forbidden", "details": {"name": "db-0", "kind": "pods"},
                           "code": 403}
    lst = sim.get("/api/v1/namespaces/db/pods?fieldSelector=status.podIP%3D10.0.0.1").json()
    assert lst["message"] == ('pods is forbidden: User "%s" cannot list resource "pods" in API '
                              'group "" in the namespace "db"' % USER)
    assert lst["details"] == {"kind": "pods"}
    ev = sim.request("POST", "/api/v1/namespaces/db/events", lock_event("db")).json()
    assert ev["message"].startswith('events "db-0." is forbidden') or \
        ev["message"].startswith("events is forbidden")
    assert "cannot create resource \"events\"" in ev["message"]
    assert sim.get("/api/v1/namespaces/default/pods").status == 200
    sim.clear_faults()
    sim.add_fault("forbidden", path=r"^/api/v1/pods")
    assert sim.get("/api/v1/pods?watch=1").json()["message"] == (
        'pods is forbidden: User "%s" cannot watch resource "pods" in API group "" at the '
        "cluster scope" % USER)
    sim.clear_faults()
    sim.add_fault("unauthorized", times=1)
    resp = sim.get("/version")
    assert resp.status == 401 and resp.body == README["401"].encode() + b"\n"
    assert sim.get("/version").status == 200
    sim.clear_faults()


def test_request_log_and_keepalive(sim, ns):
    conn = sim.connection()
    for path in ("/version", "/api/v1/namespaces/%s/pods" % ns,
                 "/api/v1/namespaces/%s/pods/x" % ns):
        sim.request("GET", path, conn=conn)
    sim.request("GET", "/version", conn=conn, token="nope")
    conn.close()
    log = sim.requests()
    assert [(r["method"], r["path"], r["auth"], r["status"]) for r in log] == [
        ("GET", "/version", True, 200),
        ("GET", "/api/v1/namespaces/%s/pods" % ns, True, 200),
        ("GET", "/api/v1/namespaces/%s/pods/x" % ns, True, 404),
        ("GET", "/version", False, 401)]
    assert len({r["conn"] for r in log}) == 1                   # one reused connection
    assert sim.clear_requests() == 4 and sim.requests() == []


# --------------------------------------------------------------------------
# Real clients
# --------------------------------------------------------------------------

def kubectl(sim, tmp_path, *args, token=None, ca=True):
    try:
        binary = kube_tools.locate().kubectl
    except kube_tools.Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(str(e))
        pytest.skip(str(e))
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cmd = [binary, "--server", sim.url, "--token", token or sim.token,
           "--cache-dir", str(home / "cache"), "--request-timeout", "10s"]
    if ca:
        cmd += ["--certificate-authority", sim.ca]
    env = {"HOME": str(home), "KUBECONFIG": str(home / "none"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd + list(args), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def test_kubectl_reads_the_pods(sim, ns, tmp_path):
    sim.create_pod("db-0", ns, podIP="10.94.0.1", containers=["app"],
                   initContainers=[{"name": "proxy", "restartPolicy": "Always"}])
    sim.create_pod("db-1", ns, podIP="10.94.0.2", template="gitops-pod-crashloop.json")
    served = sim.get("/api/v1/namespaces/%s/pods/db-0" % ns).json()

    out = kubectl(sim, tmp_path, "get", "pod", "db-0", "-n", ns, "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == served

    out = kubectl(sim, tmp_path, "get", "pods", "-n", ns, "--field-selector",
                  "status.podIP=10.94.0.1", "-o", "json")
    assert out.returncode == 0, out.stderr
    lst = json.loads(out.stdout)
    assert [(p["kind"], p["metadata"]["name"]) for p in lst["items"]] == [("Pod", "db-0")]

    out = kubectl(sim, tmp_path, "get", "pods", "-n", ns, "--field-selector",
                  "status.podIP=10.94.0.1")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0][:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[:4] for r in rows[1:]] == [["db-0", "2/2", "Running", "0"]]
    out = kubectl(sim, tmp_path, "get", "pods", "-n", ns, "-o", "wide")
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    assert rows["db-1"][1:3] == ["0/1", "CrashLoopBackOff"] and "10.94.0.2" in rows["db-1"]

    out = kubectl(sim, tmp_path, "get", "pod", "nope", "-n", ns)
    assert out.returncode == 1 and 'pods "nope" not found' in out.stderr
    out = kubectl(sim, tmp_path, "get", "pod", "db-0", "-n", ns, token="wrong")
    assert out.returncode == 1 and "Unauthorized" in out.stderr
    out = kubectl(sim, tmp_path, "get", "pod", "db-0", "-n", ns, ca=False)
    assert out.returncode == 1 and "certificate" in out.stderr
    sim.add_fault("forbidden", namespace=ns)
    out = kubectl(sim, tmp_path, "get", "pod", "db-0", "-n", ns)
    assert out.returncode == 1
    assert ('pods "db-0" is forbidden: User "%s" cannot get resource "pods" in API group "" '
            'in the namespace "%s"' % (USER, ns)) in out.stderr


def test_python_kubernetes_reads_the_pods(sim, ns):
    client = pytest.importorskip("kubernetes.client")
    rest = pytest.importorskip("kubernetes.client.rest")
    sim.create_pod("db-0", ns, podIP="10.95.0.1", containers=["app", "metrics"],
                   initContainers=["migrate", {"name": "proxy", "restartPolicy": "Always"}],
                   holderContainer="app")
    sim.restart(ns, "db-0", "app")
    sim.stop_container(ns, "db-0", "metrics", exit_code=2)
    served = sim.get("/api/v1/namespaces/%s/pods/db-0" % ns).json()

    cfg = client.Configuration()
    cfg.host = sim.url
    cfg.ssl_ca_cert = sim.ca
    cfg.api_key = {"authorization": sim.token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    api = client.CoreV1Api(client.ApiClient(cfg))

    pod = api.read_namespaced_pod("db-0", ns)
    assert isinstance(pod, client.V1Pod)
    assert pod.metadata.uid == served["metadata"]["uid"]
    assert pod.metadata.annotations["lock-arbiter.io/holder-container"] == "app"
    app, metrics = pod.status.container_statuses
    assert app.restart_count == 1 and app.ready and app.started
    assert app.container_id == served["status"]["containerStatuses"][0]["containerID"]
    assert app.state.running.started_at == ts(
        served["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    assert app.last_state.terminated.exit_code == 137
    assert app.last_state.terminated.reason == "Error"
    assert metrics.state.terminated.exit_code == 2 and metrics.state.running is None
    inits = {c.name: c for c in pod.status.init_container_statuses}
    assert inits["proxy"].state.running is not None
    assert inits["migrate"].state.terminated.reason == "Completed"
    # Debian's client (22.6) predates native sidecars: V1Container has no
    # restart_policy and the field is dropped silently. Older readers lose the
    # sidecar marker, so it must be treated as optional.
    assert [getattr(c, "restart_policy", "unknown to this client")
            for c in pod.spec.init_containers][1] in ("Always", "unknown to this client")

    lst = api.list_namespaced_pod(ns, field_selector="status.podIP=10.95.0.1", limit=10)
    assert [p.metadata.name for p in lst.items] == ["db-0"]

    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="db-0."),
        involved_object=client.V1ObjectReference(kind="Pod", namespace=ns, name="db-0",
                                                 uid=pod.metadata.uid),
        reason="LiquibaseLockReleased", message="released", type="Warning",
        source=client.V1EventSource(component="lock-arbiter"),
        first_timestamp=now(), last_timestamp=now(), count=1)
    created = api.create_namespaced_event(ns, body)
    assert created.metadata.uid and created.metadata.name.startswith("db-0.")
    assert created.first_timestamp.tzinfo is not None
    events = api.list_namespaced_event(ns)
    assert [e.metadata.uid for e in events.items] == [created.metadata.uid]

    with pytest.raises(rest.ApiException) as err:
        api.read_namespaced_pod("missing", ns)
    assert err.value.status == 404
    assert json.loads(err.value.body)["reason"] == "NotFound"
    # One keep-alive connection for all of it.
    assert len({r["conn"] for r in sim.requests()
                if r["user_agent"].startswith("OpenAPI-Generator")}) == 1


# --------------------------------------------------------------------------
# Other modes
# --------------------------------------------------------------------------

def test_plain_mode_old_tokens_and_sigterm(tmp_path):
    sim = Sim(tmp_path, plain=True, accept_old_tokens=True, token="first").start()
    try:
        assert sim.url.startswith("http://") and sim.ca is None
        assert sim.get("/version").status == 200
        sim.rotate_token("second")
        assert sim.get("/version", token="first").status == 200
        assert sim.get("/version", token="third").status == 401
        assert [r["auth_detail"] for r in sim.requests()] == ["current", "old", "invalid"]
        # A hanging request does not hold up SIGTERM.
        sim.add_fault("hang")
        t = threading.Thread(target=lambda: pytest.raises(Exception, sim.get, "/version",
                                                          timeout=10), daemon=True)
        t.start()
        sim.wait_hanging(1)
    finally:
        t0 = time.monotonic()
        rc = sim.stop()
    assert rc == 0 and time.monotonic() - t0 < 2


def test_no_token_like_kubectl_proxy(tmp_path):
    with Sim(tmp_path, plain=True, no_token=True) as sim:
        sim.create_pod("db-0", "db", containers=["app"])
        assert sim.get("/api/v1/namespaces/db/pods/db-0", token=None).status == 200
        assert sim.requests()[0]["auth_detail"] == "disabled"


def test_ipv6_loopback(tmp_path):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip("no IPv6 loopback: %s" % e)
    with Sim(tmp_path, host="::1") as sim:
        assert sim.url.startswith("https://[::1]:")
        assert sim.get("/version").status == 200


def test_script_help_runs():
    out = subprocess.run([shutil.which("python3", path="/usr/bin") or sys.executable,
                          os.path.join(os.path.dirname(__file__), "k8s_sim.py"), "--help"],
                         stdout=subprocess.PIPE, text=True, timeout=30)
    assert out.returncode == 0 and "--token-file" in out.stdout
