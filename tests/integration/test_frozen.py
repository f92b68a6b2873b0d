"""One hung database delays nothing else (DESIGN.md sections 7 and 9): the
real binary watches two databases of one PostgreSQL server, A directly and
B through a FreezeProxy. Frozen, B keeps its TCP connections open and
answers nothing, as a hung server does: the arbiter's round trip to B waits
for its own deadline (5 s) and then B is logged down.

The assertions are about order, not time: A's orphan is released before B
is logged down, that is while B's round trip is still outstanding. Only the
shutdown has a clock, DESIGN.md's: exit 0 within 2 s of SIGTERM.

The same with B a frozen MariaDB: test_mariadb.py, through the helpers
here (orphan_released_while_b_hangs, sigterm_while_b_hangs)."""
import collections
import time
import urllib.request

import pytest

from backends import PgDatabase
from conftest import SIM_NS as NS, sim_arbiter
from freeze_proxy import FreezeProxy

# database: a backends.Database; dsn and label: how the arbiter reaches it.
Db = collections.namedtuple("Db", "database dsn label")


def direct(database):
    return Db(database, database.dsn(), database.label)


def via(proxy, database):
    """database reached through proxy."""
    return Db(database, database.dsn(port=proxy.port), database.label_via(proxy.port))


@pytest.fixture
def proxy(pg):
    with FreezeProxy(pg.port) as p:
        yield p


@pytest.fixture
def dbs(pg, db, proxy):
    """(A, B): A reached directly, B through the proxy; a lock table in each."""
    a = PgDatabase(pg, db)
    b = a.another("_b")
    for d in (a, b):
        d.create_lock_table()
    return direct(a), via(proxy, b)


def arbiter(sim, a, b):
    # A, then B: a loop that polls them in turn has read A before it waits for B.
    return sim_arbiter([a.dsn, b.dsn], sim)


def index_of(a, rec, start=0):
    return next(i for i in range(start, len(a.records)) if a.records[i] is rec)


def database_up(a, label):
    port = a.wait_for("http listening")["port"]
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    for value in ("0", "1"):
        if 'lock_arbiter_database_up{database="%s"} %s\n' % (label, value) in text:
            return int(value)
    raise AssertionError("no database_up for %s in /metrics" % label)


def wait_database_up(a, label, want, timeout=10):
    deadline = time.monotonic() + timeout
    while database_up(a, label) != want:
        assert time.monotonic() < deadline, "database_up{%s} is not %d" % (label, want)
        time.sleep(0.1)


def test_orphan_is_released_while_the_other_database_hangs(sim, dbs, proxy):
    orphan_released_while_b_hangs(sim, *dbs, proxy)


def orphan_released_while_b_hangs(sim, A, B, proxy):
    """A's orphan is released while B, frozen, hangs: before B is logged down."""
    sim.create_pod("orders-50", NS, containers=["app"])
    A.database.lock(lockedby="%s:orders-50" % NS)
    with arbiter(sim, A, B) as a:
        a.wait_for("database up", database=B.label)
        a.wait_for("verdict", database=A.label, verdict="held")
        assert sim.wait_watches(1, timeout=5)
        mark = a.mark()
        proxy.freeze()
        # B's next poll is on the wire and will get no answer.
        assert proxy.wait_held(timeout=10), "no round trip to B after the freeze"
        sim.delete_pod(NS, "orders-50")
        # Long enough for a loop that waits out B's deadline to release too:
        # then the order below fails, not this wait.
        rel = a.wait_for("lock released", timeout=30, start=mark, database=A.label)
        assert rel["rule"] == "O1_pod_deleted", rel
        assert not A.database.locked()
        before = a.records[mark:index_of(a, rel, mark)]
        downs = [r for r in before if r.get("msg") == "database down"
                 and r.get("database") == B.label]
        assert not downs, (
            "A's orphan was released only after the arbiter gave up on B's round trip "
            "(%r): the hung database held the release up\n%s" % (downs[0], a.log_text()))
        # And B's round trip was outstanding then: it ends at its own deadline.
        down = a.wait_for("database down", timeout=30, start=mark, database=B.label)
        assert "timed out" in down["error"], down
        assert a.stop() == 0


@pytest.mark.parametrize("stuck_in", ["query", "connect"])
def test_sigterm_while_a_database_hangs_exits_0_within_2s(sim, dbs, proxy, stuck_in):
    sigterm_while_b_hangs(sim, *dbs, proxy, stuck_in)


def sigterm_while_b_hangs(sim, A, B, proxy, stuck_in):
    """SIGTERM while B, frozen, has a statement or a connection outstanding:
    exit 0 within 2 s."""
    if stuck_in == "connect":
        proxy.freeze()  # B's connection is accepted and never greeted
    with arbiter(sim, A, B) as a:
        a.wait_for("database up", database=A.label)
        if stuck_in == "query":
            a.wait_for("database up", database=B.label)
            proxy.freeze()
        assert proxy.wait_held(timeout=10), "no request to B after the freeze"
        t0 = time.monotonic()
        rc = a.stop(timeout=10)
        took = time.monotonic() - t0
        assert rc == 0, a.log_text()
        assert took < 2.0, "exit took %.2f s\n%s" % (took, a.log_text())
        a.wait_for("stopping")


def test_thawed_database_comes_back_and_its_orphan_is_released(sim, dbs, proxy):
    A, B = dbs
    with arbiter(sim, A, B) as a:
        a.wait_for("database up", database=B.label)
        mark = a.mark()
        proxy.freeze()
        assert proxy.wait_held(timeout=10), "no round trip to B after the freeze"
        a.wait_for("database down", timeout=30, start=mark, database=B.label)
        wait_database_up(a, B.label, 0)
        # Meanwhile B's lock is taken by a pod that is gone: an orphan.
        B.database.lock(lockedby="%s:orders-52" % NS)
        mark = a.mark()
        proxy.thaw()
        # The reconnect backoff has grown while B was frozen: up to 15 s.
        a.wait_for("database up", timeout=30, start=mark, database=B.label)
        rel = a.wait_for("lock released", timeout=10, start=mark, database=B.label)
        assert rel["rule"] == "O1_pod_deleted", rel
        assert not B.database.locked()
        wait_database_up(a, B.label, 1)
        assert database_up(a, A.label) == 1
        assert a.stop() == 0
