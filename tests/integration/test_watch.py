"""Watches of holder pods (DESIGN.md section 7, "Event-driven"): the real
binary, a real database and the simulated API. The poll interval here is
long (5 s), so a release well within it can only have come from a watch
event; the --min-lock-age of 1 s has passed before each death.

The tests where an event (or its absence) leads to the database, a release
or a lock freed, run against both backends (`backend`); those about the
watch streams alone (resume, expiry, bookmarks, a trickling proxy) against
PostgreSQL: the database plays no part in them (WATCH_ONLY)."""
import re
import time
import urllib.request

import pytest

from conftest import SIM_NS as NS, sim_arbiter

POLL = 5.0

WATCH_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.clear_faults()
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    sim.clear_requests()
    yield
    sim.clear_faults()


def arbiter(backend, sim, *extra):
    return sim_arbiter([backend.dsn()], sim, "--poll-interval", "%gs" % POLL, *extra)


def pod_requests(sim, name, watch):
    return [r for r in sim.requests() if name in r["path"] and bool(r["watch"]) == watch]


def hold(backend, sim, name, **desc):
    backend.create_lock_table()
    sim.create_pod(name, NS, containers=desc.pop("containers", ["app"]), **desc)
    backend.lock(lockedby="%s:%s" % (NS, name))


def watched(a, sim):
    a.wait_for("verdict", verdict="held")
    assert sim.wait_watches(1, timeout=5)
    # Past --min-lock-age: the container rules apply from the next snapshot on.
    time.sleep(1.2)


def released_within(a, backend, rule, seconds, start=0):
    rec = a.wait_for("lock released", timeout=seconds, start=start)
    assert rec["rule"] == rule, rec
    assert not backend.locked()
    return rec


@WATCH_ONLY
def test_no_lock_no_watch_no_request(backend, sim):
    backend.create_lock_table()
    with arbiter(backend, sim) as a:
        a.wait_for("lock table found")
        time.sleep(1.5)
        assert sim.watches() == 0
        assert [r for r in sim.requests() if "/pods" in r["path"]] == []


@WATCH_ONLY
def test_live_holder_is_watched_not_polled(backend, sim):
    hold(backend, sim, "orders-31")
    with arbiter(backend, sim, "--poll-interval", "200ms") as a:
        watched(a, sim)
        sim.clear_requests()
        time.sleep(2.0)  # ten polls
        assert pod_requests(sim, "orders-31", watch=False) == []
        assert sim.watches() == 1
        assert backend.locked()
        port = a.wait_for("http listening")["port"]
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port) as r:
            assert "lock_arbiter_kubernetes_watches 1" in r.read().decode()


def test_deleted_pod_is_released_by_the_event(backend, sim):
    hold(backend, sim, "orders-32")
    with arbiter(backend, sim) as a:
        watched(a, sim)
        mark = a.mark()
        t0 = time.monotonic()
        sim.delete_pod(NS, "orders-32")
        released_within(a, backend, "O1_pod_deleted", 2, start=mark)
        assert time.monotonic() - t0 < POLL / 2
        # The lock is gone: so is its watch, at the next poll.
        deadline = time.monotonic() + POLL + 3
        while sim.watches() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sim.watches() == 0


def test_container_restart_is_judged_on_the_event(backend, sim):
    hold(backend, sim, "orders-33", holderContainer="app")
    with arbiter(backend, sim) as a:
        watched(a, sim)
        time.sleep(1.0)  # the restart's whole-second start lies after the grant + skew
        mark = a.mark()
        t0 = time.monotonic()
        sim.restart(NS, "orders-33", container="app")
        released_within(a, backend, "O4_container_restarted", 3, start=mark)
        assert time.monotonic() - t0 < POLL / 2


@WATCH_ONLY
def test_sidecar_restart_event_keeps_the_lock(backend, sim):
    hold(backend, sim, "orders-34", holderContainer="app", containers=["app", "istio-proxy"])
    with arbiter(backend, sim) as a:
        watched(a, sim)
        sim.restart(NS, "orders-34", container="istio-proxy")
        time.sleep(1.5)
        assert backend.locked() and a.count("lock released") == 0


@WATCH_ONLY
def test_expired_watch_is_relisted_and_still_decides(backend, sim):
    hold(backend, sim, "orders-35")
    with arbiter(backend, sim) as a:
        watched(a, sim)
        sim.clear_requests()
        sim.expire_watches()
        # 410: the next poll GETs the pod and watches again from its version.
        sim.wait_requests(lambda r: "orders-35" in r["path"] and not r["watch"],
                          timeout=POLL + 3)
        sim.wait_requests(lambda r: "orders-35" in r["path"] and r["watch"], timeout=5)
        assert sim.wait_watches(1, timeout=5)
        mark = a.mark()
        t0 = time.monotonic()
        sim.delete_pod(NS, "orders-35")
        released_within(a, backend, "O1_pod_deleted", 2, start=mark)
        assert time.monotonic() - t0 < POLL / 2


@WATCH_ONLY
@pytest.mark.parametrize("mode", ["end", "rst"])
def test_ended_watch_is_resumed(backend, sim, mode):
    hold(backend, sim, "orders-36")
    with arbiter(backend, sim) as a:
        watched(a, sim)
        sim.clear_requests()
        sim.close_watches(mode)
        # The resume is a new watch request, from the last version seen.
        resumed = sim.wait_requests(lambda r: "orders-36" in r["path"] and r["watch"],
                                    timeout=15)
        assert "resourceVersion=" in resumed[-1]["path"]
        assert sim.wait_watches(1, timeout=15)
        mark = a.mark()
        sim.delete_pod(NS, "orders-36")
        released_within(a, backend, "O1_pod_deleted", 2, start=mark)


@WATCH_ONLY
def test_trickling_stream_is_ended_and_the_get_decides(backend, sim):
    """A proxy that drips the watch stream a byte at a time: an event line
    incomplete for 10 s ends the stream, the snapshot is dropped, and the
    poll's GET decides (without the rule, the stale snapshot would be
    trusted until the watch's half-hour transfer timeout)."""
    hold(backend, sim, "orders-40")
    with arbiter(backend, sim) as a:
        watched(a, sim)
        sim.add_fault("drip", watch=True, interval_ms=500)
        sim.close_watches("rst")
        time.sleep(1)
        mark = a.mark()
        sim.delete_pod(NS, "orders-40")
        # Stall limit (10 s) + a poll (5 s) + the resumed stream's backoff.
        released_within(a, backend, "O1_pod_deleted", 30, start=mark)


@WATCH_ONLY
def test_bookmarks_change_nothing(backend, sim):
    hold(backend, sim, "orders-37")
    with arbiter(backend, sim, "--poll-interval", "300ms") as a:
        watched(a, sim)
        sim.clear_requests()
        for _ in range(3):
            sim.bookmark_watches()
            time.sleep(0.3)
        assert backend.locked() and a.count("lock released") == 0
        assert pod_requests(sim, "orders-37", watch=False) == []


def test_refused_watch_falls_back_to_the_polls_get(backend, sim):
    sim.add_fault("forbidden", watch=True)
    hold(backend, sim, "orders-38")
    with arbiter(backend, sim, "--poll-interval", "300ms") as a:
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "orders-38")
        released_within(a, backend, "O1_pod_deleted", 3)


def test_holder_releasing_its_lock_ends_the_watch(backend, sim):
    hold(backend, sim, "orders-39")
    with arbiter(backend, sim, "--poll-interval", "300ms") as a:
        watched(a, sim)
        backend.unlock()
        a.wait_for("lock freed")
        deadline = time.monotonic() + 3
        while sim.watches() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sim.watches() == 0


def test_pod_recreated_while_the_release_event_is_posted_is_not_judged_again(backend, sim):
    """A release ends the lock's watch before anything that waits (the
    Event): a pod recreated under the holder's name meanwhile must not
    have the lock judged again, which showed as a second verdict and a
    "release skipped: the lock moved on" with release_conflicts_total 1."""
    hold(backend, sim, "orders-40")
    with arbiter(backend, sim) as a:
        watched(a, sim)
        # The Event POST takes a second: time for the recreated pod's ADDED event.
        sim.add_fault("latency", ms=1000, method="POST", resource="events", times=1)
        mark = a.mark()
        sim.delete_pod(NS, "orders-40")
        a.wait_for("lock released", start=mark)
        sim.create_pod("orders-40", NS, containers=["app"])
        a.wait_for("lock freed", timeout=POLL + 3, start=mark)
        after = a.records[mark:]
        verdicts = [r for r in after if r.get("msg") == "verdict"]
        assert [v["reason"] for v in verdicts] == ["O1_pod_deleted"], verdicts
        assert not [r for r in after if r.get("msg", "").startswith("release skipped")]
        port = a.wait_for("http listening")["port"]
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port) as r:
            text = r.read().decode()
        assert re.search(r"^lock_arbiter_release_conflicts_total\{[^}]*\} 0$", text, re.M), text
