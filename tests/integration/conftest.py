"""Fixtures shared by the integration tests: one real PostgreSQL (pg) or
MariaDB (maria) per test module, and a fresh database per test (db, mdb)."""
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


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The simulated Kubernetes API, one per test module, with SIM_NS."""
    with Sim(tmp_path_factory.mktemp("sim"), namespaces=[SIM_NS]) as s:
        yield s


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


def locked(pg, db, schema="public"):
    row = pg.read_lock(db, schema)
    return row is not None and row[0] is True


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
