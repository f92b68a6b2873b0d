"""Fixtures of the end-to-end tests: real Liquibase (or a skip that names the
cause), the pod network (or, without root, this machine as the only pod, said
in the summary), one PostgreSQL and one simulated Kubernetes API per module,
and a fresh database with its pods, runs and arbiters per test (harness.E2E).

LOCK_ARBITER_E2E_PODS=host forces the fallback without namespaces;
LOCK_ARBITER_E2E_RESULTS=DIR also writes each scenario's timings to DIR/NAME.json.
"""
import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (NAMESPACE, E2E, E2EPgServer, Liquibase, PodNetwork,  # noqa: E402
                     Unavailable, netns_unavailable_reason)
from simctl import Sim  # noqa: E402

_counter = itertools.count()
_notes = []
_timings = []


@pytest.fixture(scope="session")
def liquibase():
    try:
        return Liquibase.locate()
    except Unavailable as e:
        _notes.append("real Liquibase unavailable, every e2e test skipped: %s" % e)
        pytest.skip("real Liquibase unavailable: %s" % e)


@pytest.fixture(scope="module")
def pod_network(liquibase, tmp_path_factory):
    """(PodNetwork or None, why not)."""
    reason = netns_unavailable_reason()
    net = None
    if reason is None:
        try:
            net = PodNetwork(str(tmp_path_factory.mktemp("pods"))).setup()
        except Unavailable as e:
            reason = str(e)
    if net is None:
        _notes.append("namespace variant SKIPPED (%s): Liquibase ran on this machine, "
                      "the pod is the host name" % reason)
        yield None, reason
        return
    _notes.append("pods: network namespaces on bridge %s, %s (gateway %s)"
                  % (net.bridge, net.subnet, net.gateway))
    try:
        yield net, None
    finally:
        net.cleanup()


@pytest.fixture(scope="module")
def pg(pod_network):
    net, _ = pod_network
    with E2EPgServer(extra_listen=net.gateway if net is not None else None) as server:
        yield server


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with Sim(tmp_path_factory.mktemp("sim"), namespaces=[NAMESPACE]) as s:
        yield s


@pytest.fixture
def e2e(request, liquibase, pod_network, pg, sim, tmp_path):
    net, reason = pod_network
    sim.clear_faults()
    sim.clear_events()
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    db = "e2e_%d" % next(_counter)
    pg.create_database(db)
    world = E2E(lb=liquibase, pg=pg, sim=sim, net=net, db=db, workdir=str(tmp_path),
                name=request.node.name, results_dir=os.environ.get("LOCK_ARBITER_E2E_RESULTS"))
    world.netns_reason = reason
    try:
        yield world
    finally:
        world.cleanup()
        if world.timings:
            _timings.append(world.timings)


def pytest_terminal_summary(terminalreporter):
    if not _notes and not _timings:
        return
    terminalreporter.section("lock-arbiter e2e with real Liquibase")
    for note in dict.fromkeys(_notes):
        terminalreporter.write_line(note)
    for t in _timings:
        terminalreporter.write_line("%s: %s" % (t["scenario"], ", ".join(
            "%s=%s" % (k, v) for k, v in t.items() if k.endswith("_s") or k in (
                "lockedby", "rule", "pods"))))
