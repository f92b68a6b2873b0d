"""Fixtures shared by the integration tests: one real PostgreSQL (pg) or
MariaDB (maria) per test module, and a fresh database per test (db, mdb);
backend, a fresh database of each backend in turn (backends.py)."""
import itertools
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "k8s_sim"))

from mariadbserver import MariaDBServer  # noqa: E402
from pgserver import PgServer  # noqa: E402
from simctl import Sim  # noqa: E402

# The namespace the simulated holder pods live in.
SIM_NS = "shop"

_counter = itertools.count()


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


@pytest.fixture
def db(pg):
    """A new database; returns its name."""
    name = "t%d" % next(_counter)
    pg.create_database(name)
    return name


@pytest.fixture(scope="module")
def maria():
    """A real MariaDB 10.11 per test module (mariadbserver.py)."""
    with MariaDBServer() as server:
        yield server


@pytest.fixture
def mdb(maria):
    """A new MariaDB database; returns its name."""
    name = "m%d" % next(_counter)
    maria.create_database(name)
    return name


def mysql_built():
    """False when meson built the binary without the MySQL/MariaDB backend
    (-Dmysql=auto without MariaDB Connector/C): the tests against MariaDB
    are then skipped. Run by hand, the binary is taken to have it."""
    return os.environ.get("LOCK_ARBITER_MYSQL", "1") != "0"


NO_MYSQL = "lock-arbiter was built without the MySQL/MariaDB backend (-Dmysql)"


@pytest.fixture(params=["postgresql", "mariadb"])
def backend(request):
    """A new database on the module's PostgreSQL, then on its MariaDB: a
    backends.Database, for a test that runs against both. A server starts
    the first time a test of the module asks for it."""
    from backends import open_database
    kind = request.param
    if kind == "mariadb" and not mysql_built():
        pytest.skip(NO_MYSQL)
    server = request.getfixturevalue({"postgresql": "pg", "mariadb": "maria"}[kind])
    return open_database(kind, server, "%s%d" % (kind[0], next(_counter)))


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The simulated Kubernetes API, one per test module, with SIM_NS."""
    with Sim(tmp_path_factory.mktemp("sim"), namespaces=[SIM_NS]) as s:
        yield s


def reset_sim(sim):
    """The simulated API as a test expects to find it: no faults, pods,
    requests or events left by an earlier test of the module."""
    sim.clear_faults()
    sim.release_hangs()
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    sim.clear_requests()
    sim.clear_events()


def sim_arbiter(dsns, sim, *extra, poll="100ms", name="arbiter"):
    """The real binary against databases dsns and the simulated API, with the
    quick settings the integration tests share (skew and min-lock-age 1 s)."""
    from arbiter_proc import Arbiter
    args = ["run", "--poll-interval", poll, "--clock-skew", "1s", "--min-lock-age", "1s",
            "--kube-api", sim.url, "--kube-token-file", sim.token_file,
            "--kube-ca-file", sim.ca, "--holder-namespace", SIM_NS,
            "--listen", "127.0.0.1:0"]
    for d in dsns:
        args += ["--database", d]
    return Arbiter(args + list(extra), name=name)


class LoopbackListener:
    """A TCP listener on 127.0.0.1 (a free port) whose accepted connections go
    to on_accept(conn) on a thread; close() stops it."""

    def __init__(self, backlog=64):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.on_accept(c)

    def on_accept(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()
