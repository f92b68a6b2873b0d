"""The arbiter end to end: the real binary, a real database, and the
simulated Kubernetes API. Every rule of DESIGN.md section 6 releases (or
keeps) a lock written with a realistic LOCKEDBY, and every fault of section 9
leaves a live lock in place.

Each test that reads or writes a lock runs against both backends (the
`backend` fixture: PostgreSQL, then MariaDB). Those about the Kubernetes API
alone (its faults, backoff and token) run against PostgreSQL, and against
MariaDB only for a few representative faults: the database plays no part
in them, and they are the slowest here.

Timing: polls every 100 ms, --clock-skew 1s and --min-lock-age 1s keep the
tests quick; the simulator writes container times in whole seconds, so a
restart meant to be "after the grant" waits a little more than two seconds
after the lock is first seen."""
import os
import sys
import time

import pytest

from arbiter_proc import Arbiter  # noqa: E402
from conftest import SIM_NS as NS  # noqa: E402
from simctl import SimError  # noqa: E402


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.clear_faults()
    sim.clear_requests()
    sim.clear_events()
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    yield
    sim.clear_faults()
    sim.release_hangs()


def arbiter(backend, sim, *extra, env=None, name="arbiter"):
    return Arbiter(["run", "--database", backend.dsn(), "--poll-interval", "100ms",
                    "--clock-skew", "1s", "--min-lock-age", "1s",
                    "--kube-api", sim.url, "--kube-token-file", sim.token_file,
                    "--kube-ca-file", sim.ca, "--holder-namespace", NS,
                    "--listen", "127.0.0.1:0"] + list(extra), env=env, name=name)


# For the tests about the Kubernetes API alone: the database plays no part.
API_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def pod(sim, name, ip=None, containers=("app",), **kw):
    desc = dict(containers=list(containers), **kw)
    if ip:
        desc["podIP"] = ip
    return sim.create_pod(name, NS, **desc)


def no_watches(sim):
    """Refuses watches (503, so that a watch's answer never says the API is
    up while the test's GETs say it is down) and cuts the open ones: from now
    on the poll's GET per held lock decides, as whenever watching fails."""
    sim.add_fault("status", code=503, watch=True)
    sim.close_watches("rst")


def assert_kept(backend, a, seconds=1.5):
    """The lock stays for several polls and the arbiter releases nothing."""
    time.sleep(seconds)
    assert backend.locked(), a.log_text()
    assert a.count("lock released") == 0


def released(backend, a, rule, timeout=15):
    rec = a.wait_for("lock released", timeout=timeout)
    assert rec["rule"] == rule, rec
    assert not backend.locked()
    return rec


# -- O1 -------------------------------------------------------------------------

def test_o1_namespace_pod_holder_deleted(backend, sim):
    backend.create_lock_table()
    pod(sim, "payments-api-5f7c9d-abcde")
    backend.lock(lockedby="%s:payments-api-5f7c9d-abcde" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "payments-api-5f7c9d-abcde")
        rec = released(backend, a, "O1_pod_deleted")
        assert "pod shop/payments-api-5f7c9d-abcde is gone" in rec["evidence"]


def test_o1_host_holder_gone_after_seen_alive(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-7d9f8c6b5-x2x7q", ip="10.244.1.17")
    backend.lock(lockedby="orders-7d9f8c6b5-x2x7q (10.244.1.17)")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "orders-7d9f8c6b5-x2x7q")
        released(backend, a, "O1_pod_deleted")


def test_o1_lock_without_lockgranted_is_released(backend, sim):
    """LOCKGRANTED NULL (a hand-made lock, an old Liquibase): the
    compare-and-set matches it NULL-safely, or nothing could release it."""
    backend.create_lock_table()
    backend.lock(lockedby="%s:gone-pod" % NS, lockgranted=None)
    assert backend.read_lock() == (True, "%s:gone-pod" % NS, None)
    with arbiter(backend, sim) as a:
        released(backend, a, "O1_pod_deleted")
        assert a.count("release skipped: the lock moved on") == 0


def test_unresolved_host_never_seen_is_kept(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="ip-10-52-55-196.eu-west-1.compute.internal (10.52.55.196)")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="unresolved", reason="unresolved_not_found")
        assert_kept(backend, a)


def test_unresolved_host_gets_an_address_hint_and_stays_kept(backend, sim):
    """A pod whose host name is not its name (spec.hostname): the address
    finds it for people to read, but never names the holder."""
    backend.create_lock_table()
    pod(sim, "web-5d8f-abcde", ip="10.244.3.33")
    backend.lock(lockedby="web (10.244.3.33)")
    with arbiter(backend, sim) as a:
        rec = a.wait_for("verdict", verdict="unresolved", reason="unresolved_not_found")
        assert "address 10.244.3.33 belongs to pod shop/web-5d8f-abcde" in rec["explanation"]
        assert_kept(backend, a)
    lists = [r for r in sim.requests() if "fieldSelector" in r["path"]]
    assert len(lists) == 1, lists  # once per episode, not per cycle


# -- O2 -------------------------------------------------------------------------

def test_o2_statefulset_pod_recreated_under_the_same_name(backend, sim):
    backend.create_lock_table()
    pod(sim, "web-0", ip="10.244.2.9")
    backend.lock(lockedby="web-0.web.shop.svc.cluster.local (10.244.2.9)")
    # Without a watch (refused), the next GET finds the new pod: O2. With one,
    # its DELETED event comes first and O1 releases (test_watch.py).
    sim.add_fault("forbidden", watch=True)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        sim.recreate_pod(NS, "web-0")
        rec = released(backend, a, "O2_pod_replaced")
        assert "was replaced" in rec["evidence"]


def test_o2_pod_created_after_the_grant(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="web-1 (10.244.2.10)")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="unresolved")
        time.sleep(2.2)
        pod(sim, "web-1", ip="10.244.2.10")
        released(backend, a, "O2_pod_created_after_grant")


# -- O3 -------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["Failed", "Succeeded"])
def test_o3_pod_finished(backend, sim, phase):
    backend.create_lock_table()
    pod(sim, "migrate-job-x1")
    backend.lock(lockedby="%s:migrate-job-x1" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        sim.set_phase(NS, "migrate-job-x1", phase)
        rec = released(backend, a, "O3_pod_finished")
        assert "phase " + phase in rec["evidence"]


# -- O4 -------------------------------------------------------------------------

def test_o4_annotated_container_restarted_in_running_pod(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-1", ip="10.244.1.20", containers=("app", "istio-proxy"),
        annotations={"lock-arbiter.io/holder-container": "app"})
    backend.lock(lockedby="orders-1 (10.244.1.20)")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held", reason="held_container_running")
        time.sleep(2.2)
        sim.restart(NS, "orders-1", container="app")
        rec = released(backend, a, "O4_container_restarted")
        assert "container app of shop/orders-1 restarted" in rec["evidence"]


def test_o4_holder_container_in_crashloopbackoff(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-2", containers=("app",))
    backend.lock(lockedby="%s:orders-2" % NS)
    with arbiter(backend, sim, "--holder-container", "app") as a:
        a.wait_for("verdict", verdict="held")
        sim.restart(NS, "orders-2", container="app", crashloop=True)
        rec = released(backend, a, "O4_container_not_running")
        assert "CrashLoopBackOff" in rec["evidence"]


def test_sidecar_alive_since_before_the_grant_keeps_the_lock(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-3", containers=("app", "istio-proxy"))
    backend.lock(lockedby="%s:orders-3" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        time.sleep(2.2)
        mark = a.mark()
        sim.restart(NS, "orders-3", container="app")
        rec = a.wait_for("verdict", reason="held_other_container_running", timeout=10,
                         start=mark)
        assert "container istio-proxy" in rec["explanation"]
        assert_kept(backend, a)


def test_o4_unknown_holder_every_container_restarted(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-4", containers=("app",))
    backend.lock(lockedby="%s:orders-4" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        time.sleep(2.2)
        sim.restart(NS, "orders-4", container="app")
        released(backend, a, "O4_no_live_container")


def test_live_slow_migration_is_never_released(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-5", ip="10.244.1.21", containers=("app",))
    backend.lock(lockedby="orders-5#blue (10.244.1.21)")
    with arbiter(backend, sim, "--holder-container", "app") as a:
        a.wait_for("verdict", verdict="held", reason="held_container_running")
        assert_kept(backend, a, seconds=3)


def test_deleting_pod_with_running_containers_keeps_the_lock(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-6", containers=("app",))
    backend.lock(lockedby="%s:orders-6" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        sim.mark_deleting(NS, "orders-6")
        assert_kept(backend, a, seconds=2)


# -- O5 and unresolvable LOCKEDBY ------------------------------------------------

def test_o5_opt_in_releases_unresolved_after_the_threshold(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="unknown (unknown)")
    with arbiter(backend, sim, "--release-unresolved-after", "1s") as a:
        a.wait_for("verdict", verdict="unresolved")
        released(backend, a, "O5_unresolved_timeout")


def test_path_traversal_lockedby_makes_no_request(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="default:../../secrets/x")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="unresolved", reason="unresolved_lockedby")
        assert_kept(backend, a, seconds=1)
    paths = [r["path"] for r in sim.requests()]
    assert not any("secrets" in p or ".." in p for p in paths), paths
    assert not any("/pods/" in p for p in paths), paths


# -- guards -------------------------------------------------------------------

def test_dry_run_logs_would_release_and_keeps_the_lock(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="%s:gone-pod" % NS)
    with arbiter(backend, sim, "--dry-run") as a:
        rec = a.wait_for("would release (dry run)")
        assert rec["rule"] == "O1_pod_deleted"
        assert_kept(backend, a, seconds=1)
    assert sim.events() == []


def test_compare_and_set_loses_cleanly_when_the_lock_moves_on(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="%s:old-holder" % NS)
    # The holder's lookup takes 1.5 s; meanwhile a new holder takes the lock.
    sim.add_fault("latency", ms=1500, path="old-holder", times=1)
    with arbiter(backend, sim, "--poll-interval", "5s") as a:
        a.wait_for("lock held")
        time.sleep(0.3)
        backend.unlock()
        pod(sim, "new-holder")
        backend.lock(lockedby="%s:new-holder" % NS)
        a.wait_for("release skipped: the lock moved on", timeout=10)
        assert backend.read_lock()[1] == "%s:new-holder" % NS
        assert a.count("lock released") == 0


def test_two_arbiters_one_releases_the_other_reports(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-7")
    backend.lock(lockedby="%s:orders-7" % NS)
    # The leader polls slowly, so the follower sees the orphan before it is gone.
    with arbiter(backend, sim, "--poll-interval", "2s", name="first") as a:
        a.wait_for("leadership acquired")
        with arbiter(backend, sim, name="second") as b:
            b.wait_for("verdict", verdict="held")
            sim.delete_pod(NS, "orders-7")
            b.wait_for("orphaned; another arbiter is the leader")
            a.wait_for("lock released", timeout=10)
            time.sleep(0.3)
            assert b.count("lock released") == 0
    assert not backend.locked()


def test_wrong_cluster_no_release(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="%s:gone-pod" % NS)
    env = {"POD_NAME": "lock-arbiter-0", "POD_NAMESPACE": "ops"}
    with arbiter(backend, sim, env=env) as a:
        a.wait_for("cluster identity check failed: no releases")
        a.wait_for("orphaned; not released: cluster identity not confirmed")
        assert_kept(backend, a, seconds=1)


def test_right_cluster_identity_then_release(backend, sim):
    backend.create_lock_table()
    try:
        sim.create_namespace("ops")
    except SimError:
        pass  # already there
    me = sim.create_pod("lock-arbiter-0", "ops", containers=["lock-arbiter"])
    backend.lock(lockedby="%s:gone-pod" % NS)
    uid = me["metadata"]["uid"]
    env = {"POD_NAME": "lock-arbiter-0", "POD_NAMESPACE": "ops", "POD_UID": uid}
    with arbiter(backend, sim, env=env) as a:
        a.wait_for("cluster identity confirmed")
        released(backend, a, "O1_pod_deleted")
    backend.lock(lockedby="%s:gone-pod" % NS)
    env["POD_UID"] = "another-uid"
    with arbiter(backend, sim, env=env) as a:
        a.wait_for("cluster identity check failed: no releases")
        assert_kept(backend, a, seconds=1)


def test_event_posted_for_a_release(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-8")
    backend.lock(lockedby="%s:orders-8" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "orders-8")
        released(backend, a, "O1_pod_deleted")
    events = sim.events(NS)
    items = events["items"] if isinstance(events, dict) else events
    assert len(items) == 1, items
    ev = items[0]
    assert ev["reason"] == "LiquibaseLockReleased" and ev["type"] == "Warning"
    assert ev["involvedObject"]["name"] == "orders-8"
    assert ev["involvedObject"]["namespace"] == NS
    assert "O1_pod_deleted" in ev["message"] and backend.where() in ev["message"]


# -- faults of section 9: a dead holder behind a failing API is never released ----

FAULTS = [
    ("status", dict(code=500)),
    ("status", dict(code=503)),
    ("status", dict(code=429, retry_after=1)),
    ("forbidden", {}),
    ("unauthorized", {}),
    ("hang", {}),
    ("latency", dict(ms=8000)),
    ("drip", dict(interval_ms=500)),
    ("oversized", {}),
    ("malformed", dict(variant="truncated")),
    ("malformed", dict(variant="wrong_types")),
    ("malformed", dict(variant="not_json")),
    ("reset", dict(mode="rst")),
    ("reset", dict(mode="close")),
]


# Every fault against PostgreSQL; on MariaDB one answer that says nothing
# (503), one that never comes (hang) and one body that cannot be read: the
# fault is the API's, and what it leads to (held_kubernetes_unknown, then a
# release once the API is healthy) passes through the backend the same way.
MARIADB_FAULTS = ("status-503", "hang-x", "malformed-truncated")


def fault_id(fault, spec):
    return "%s-%s" % (fault, "-".join("%s" % v for v in spec.values()) or "x")


@pytest.mark.parametrize("backend,fault,spec", [
    pytest.param(kind, f, s, id="%s-%s" % (kind, fault_id(f, s)))
    for kind in ("postgresql", "mariadb") for f, s in FAULTS
    if kind == "postgresql" or fault_id(f, s) in MARIADB_FAULTS], indirect=["backend"])
def test_api_fault_keeps_the_lock_of_a_dead_holder(backend, sim, fault, spec):
    """The holder dies while the API misbehaves: deleted (a 404 the fault spoils),
    or, for faults that corrupt a pod body, finished (phase Failed)."""
    body_fault = fault in ("malformed", "oversized")
    backend.create_lock_table()
    pod(sim, "orders-9")
    backend.lock(lockedby="%s:orders-9" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        time.sleep(1.1)  # past --min-lock-age, so O3 could apply at once
        # The fault spoils the GETs; watches are refused, so the poll's GET
        # decides (watch faults: test_watch.py and the watch library's tests).
        no_watches(sim)
        sim.add_fault(fault, path="/pods/orders-9", **spec)
        if body_fault:
            sim.set_phase(NS, "orders-9", "Failed")
        else:
            sim.delete_pod(NS, "orders-9")
        a.wait_for("verdict", reason="held_kubernetes_unknown", timeout=15)
        assert_kept(backend, a, seconds=1)
        # With the API healthy again the same lock is released: the fault alone kept it.
        sim.clear_faults()
        sim.release_hangs()
        released(backend, a, "O3_pod_finished" if body_fault else "O1_pod_deleted", timeout=20)


@API_ONLY
def test_api_outage_is_retried_with_backoff(backend, sim):
    """DESIGN.md section 9: an API answering 503 is asked again with backoff,
    not at every poll; the lock stays; metrics say the API is down."""
    backend.create_lock_table()
    pod(sim, "orders-14")
    backend.lock(lockedby="%s:orders-14" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        no_watches(sim)
        sim.add_fault("status", code=503, path="/pods/orders-14")
        sim.clear_requests()
        time.sleep(4)
        sent = [r for r in sim.requests() if "/pods/orders-14" in r["path"]]
        # Polls every 100 ms would ask 40 times; backoff (0.5, 1, 2 s...) asks a few.
        assert 2 <= len(sent) <= 6, len(sent)
        rec = a.wait_for("verdict", reason="held_kubernetes_unknown")
        assert backend.locked()
        assert "lock_arbiter_kubernetes_up 0" in metrics_of(a)
        sim.clear_faults()
        sim.delete_pod(NS, "orders-14")
        released(backend, a, "O1_pod_deleted", timeout=20)
        assert "lock_arbiter_kubernetes_up 1" in metrics_of(a)


@API_ONLY
def test_unauthorized_is_retried_once_then_backed_off(backend, sim):
    """DESIGN.md section 9: a 401 re-reads the token and retries once; a 401
    that persists is then treated as an outage (found by the soak: the
    arbiter used to ask twice per poll for as long as the API said 401)."""
    backend.create_lock_table()
    pod(sim, "orders-15")
    backend.lock(lockedby="%s:orders-15" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        no_watches(sim)
        sim.add_fault("unauthorized", path="/pods/orders-15")
        sim.clear_requests()
        time.sleep(4)
        sent = [r for r in sim.requests() if "/pods/orders-15" in r["path"]]
        # Every poll (100 ms) twice would be 80; backoff (0.5, 1, 2 s...) asks a few,
        # each time with one retry after re-reading the token.
        assert 2 <= len(sent) <= 12, len(sent)
        a.wait_for("verdict", reason="held_kubernetes_unknown")
        assert backend.locked()
        assert "lock_arbiter_kubernetes_up 0" in metrics_of(a)
        sim.clear_faults()
        sim.delete_pod(NS, "orders-15")
        released(backend, a, "O1_pod_deleted", timeout=20)


@API_ONLY
def test_token_rotation_is_followed(backend, sim):
    backend.create_lock_table()
    pod(sim, "orders-10")
    backend.lock(lockedby="%s:orders-10" % NS)
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        # The watch opens after the first GET: let it be open before rotating.
        assert sim.wait_watches(1, timeout=10)
        sim.rotate_token("sim-token-rotated-%d" % time.time_ns())
        sim.clear_requests()
        # The open watch was authorised with the old token: its resume is not.
        sim.close_watches("end")
        sim.wait_requests(lambda r: r["status"] == 401, timeout=10)
        sim.delete_pod(NS, "orders-10")
        released(backend, a, "O1_pod_deleted")
        log = sim.requests()
        assert any(r["status"] == 401 for r in log), log
        # ...and the next one carried the new token (a watch's status is logged
        # only when its stream ends, so the token is what is checked).
        first_401 = min(i for i, r in enumerate(log) if r["status"] == 401)
        assert any(r["auth"] and r["auth_detail"] == "current" for r in log[first_401:]), log
    text = a.log_text()
    assert sim.token not in text and "sim-token" not in text


# -- LOCKGRANTED and --lockgranted-timezone --------------------------------------

def metrics_of(a):
    import urllib.request
    port = a.wait_for("http listening")["port"]
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as r:
        return r.read().decode()


def utc_known(backend):
    """MariaDB knows a named zone from its time zone tables, which a fresh
    server lacks (a server without them says every zone is unknown:
    test_unknown_timezone_is_not_trusted)."""
    if backend.kind == "mariadb":
        backend.load_time_zones("UTC")


def test_contradicted_timezone_is_logged_counted_and_dropped(backend, sim):
    """--lockgranted-timezone UTC, but the JVM wrote New York time (5 h behind):
    a fresh episode shows the contradiction; LOCKGRANTED is no longer trusted."""
    utc_known(backend)
    backend.create_lock_table()
    pod(sim, "orders-11")
    with arbiter(backend, sim, "--lockgranted-timezone", "UTC") as a:
        a.wait_for("lock table found")
        time.sleep(0.3)  # a poll that saw the row free: the next episode is fresh
        ny = backend.now_in_zone("America/New_York")
        backend.lock(lockedby="%s:orders-11" % NS, lockgranted=ny)
        rec = a.wait_for("LOCKGRANTED disagrees with --lockgranted-timezone: no longer trusted")
        assert rec["lockgranted"] == ny
        a.wait_for("verdict", verdict="held")
        # The status is published at the end of the cycle that logged it.
        want = ('lock_arbiter_lockgranted_timezone_mismatches_total{database="%s"} 1'
                % backend.label)
        deadline = time.monotonic() + 5
        while want not in metrics_of(a):
            assert time.monotonic() < deadline, want
            time.sleep(0.1)
        time.sleep(0.5)
        assert a.count("LOCKGRANTED disagrees with --lockgranted-timezone: no longer trusted") == 1
        assert_kept(backend, a, seconds=0.5)


def test_right_timezone_is_trusted(backend, sim):
    utc_known(backend)
    backend.create_lock_table()
    pod(sim, "orders-12")
    backend.lock(lockedby="%s:orders-12" % NS,
                 lockgranted=backend.now_in_zone("UTC", minus_seconds=90))
    from arbiter_proc import run
    out = run(["check", "--json", "--database", backend.dsn(), "--min-lock-age", "0",
               "--lockgranted-timezone", "UTC", "--kube-api", sim.url,
               "--kube-token-file", sim.token_file, "--kube-ca-file", sim.ca,
               "--holder-namespace", NS])
    import json
    lock = json.loads(out.stdout)["locks"][0]
    assert lock["lock_granted_zone"] == "UTC"
    assert lock["held_for_is_lower_bound"] is False
    assert 89 <= lock["held_for_seconds"] < 120


def test_unknown_timezone_is_not_trusted(backend, sim):
    backend.create_lock_table()
    with arbiter(backend, sim, "--lockgranted-timezone", "Mars/Olympus") as a:
        a.wait_for("unknown time zone: LOCKGRANTED will not be trusted")
        assert a.proc.poll() is None


# -- once and check -------------------------------------------------------------

def one_shot(backend, sim, command, *extra, databases=None):
    from arbiter_proc import run
    args = [command, "--clock-skew", "1s", "--min-lock-age", "1s", "--poll-interval", "200ms",
            "--kube-api", sim.url, "--kube-token-file", sim.token_file,
            "--kube-ca-file", sim.ca, "--holder-namespace", NS]
    for d in databases or [backend.dsn()]:
        args += ["--database", d]
    return run(args + list(extra), timeout=60)


def test_check_exits_3_on_an_orphan_and_releases_nothing(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="%s:gone-pod" % NS)
    out = one_shot(backend, sim, "check")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "verdict:    orphaned: pod shop/gone-pod is gone" in out.stdout
    assert backend.locked()
    pod(sim, "alive-pod")
    backend.unlock()
    backend.lock(lockedby="%s:alive-pod" % NS)
    out = one_shot(backend, sim, "check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[held_" in out.stdout


def test_once_releases_the_orphan_and_exits_0(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="%s:gone-pod" % NS)
    out = one_shot(backend, sim, "once")
    assert out.returncode == 0, out.stderr
    assert 'msg="lock released"' in out.stderr and "rule=O1_pod_deleted" in out.stderr
    assert not backend.locked()


def test_once_waits_for_min_lock_age_so_container_rules_apply(backend, sim):
    """The holder container is in CrashLoopBackOff. A single pass sees the lock
    for the first time, too young for rule O4 (kubelet status lag), so once
    polls until --min-lock-age has passed, then releases."""
    backend.create_lock_table()
    pod(sim, "orders-13", containers=("app",))
    sim.restart(NS, "orders-13", container="app", crashloop=True)
    backend.lock(lockedby="%s:orders-13" % NS)
    t0 = time.monotonic()
    out = one_shot(backend, sim, "once", "--holder-container", "app")
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert "reason=held_too_young" in out.stderr
    assert "rule=O4_container_not_running" in out.stderr
    assert not backend.locked()
    assert took >= 1.0


def test_once_exits_1_when_a_database_cannot_be_reached(backend, sim):
    backend.create_lock_table()
    backend.lock(lockedby="%s:gone-pod" % NS)
    out = one_shot(backend, sim, "once",
                   databases=[backend.dsn(), backend.dsn(port=1)])
    assert out.returncode == 1, out.stderr
    # The reachable database was still served.
    assert not backend.locked()
