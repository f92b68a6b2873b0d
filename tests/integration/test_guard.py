"""The session guard (DESIGN.md section 6) end to end: the real binary, a
real PostgreSQL and the simulated API. A dead holder's database session is
made by a client whose connection comes from the holder pod's address: a
small proxy that binds its outgoing socket to 127.0.0.x before connecting,
so that PostgreSQL records that client_addr."""
import os
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import SIM_NS as NS, LoopbackListener, locked, sim_arbiter


@pytest.fixture(scope="module", autouse=True)
def loopback_clients(pg):
    """Trust every loopback address, not only 127.0.0.1 (initdb's default)."""
    with open(os.path.join(pg.datadir, "pg_hba.conf"), "a", encoding="utf-8") as f:
        f.write("\nhost all all 127.0.0.0/8 trust\n")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(0.3)


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.clear_faults()
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    yield


class SourceProxy(LoopbackListener):
    """Forwards local connections to PostgreSQL from source address src."""

    def __init__(self, pg_port, src):
        self.pg_port, self.src = pg_port, src
        super().__init__(backlog=16)

    def on_accept(self, c):
        up = socket.socket()
        up.bind((self.src, 0))
        up.connect(("127.0.0.1", self.pg_port))
        for a, b in ((c, up), (up, c)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

class Session:
    """A psql session from a source address, running sql until it ends."""

    def __init__(self, pg, db, src, sql, user="postgres"):
        self.proxy = SourceProxy(pg.port, src)
        self.proc = subprocess.Popen(
            [pg._bin("psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self.proxy.port),
             "-U", user, "-d", db, "-c", sql],
            env=pg._client_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.pg, self.src = pg, src
        deadline = time.monotonic() + 10
        while self.pid() is None:
            assert time.monotonic() < deadline, "no session from %s" % src
            time.sleep(0.05)

    def pid(self):
        """The backend of this session: the newest active one from its address."""
        out = self.pg.psql("SELECT pid FROM pg_stat_activity WHERE client_addr = '%s' "
                           "AND state = 'active' ORDER BY backend_start DESC" % self.src).split()
        return int(out[0]) if out else None

    def end(self):
        """The client is gone and the server has noticed (it would when the
        statement next writes to the socket): the backend ends."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE client_addr = '%s'" % self.src)
        self.proxy.close()
        deadline = time.monotonic() + 10
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)


def arbiter(pg, db, sim, *extra, dsn=None):
    return sim_arbiter([dsn or pg.dsn(db)], sim, *extra)


def hold(pg, db, sim, name, ip):
    pg.create_lock_table(db)
    sim.create_pod(name, NS, containers=["app"], podIP=ip)
    pg.lock(db, lockedby="%s:%s" % (NS, name))


def test_open_session_of_a_dead_holder_keeps_the_lock(pg, db, sim):
    hold(pg, db, sim, "migrate-51", "127.0.0.51")
    with arbiter(pg, db, sim) as a:
        a.wait_for("verdict", verdict="held")  # seen alive: its address is learned
        s = Session(pg, db, "127.0.0.51", "SELECT pg_sleep(60)")
        try:
            sim.delete_pod(NS, "migrate-51")
            rec = a.wait_for("verdict", reason="held_session_alive")
            assert "pid %d from 127.0.0.51" % s.pid() in rec["explanation"], rec
            assert "pg_sleep" in rec["explanation"]
            time.sleep(1)
            assert locked(pg, db) and a.count("lock released") == 0
        finally:
            s.end()
        assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"


def test_session_begun_after_the_death_belongs_to_the_new_owner(pg, db, sim):
    """Address reuse: a session from the holder's old address that began after
    its death (plus skew) neither holds the lock nor gets terminated."""
    hold(pg, db, sim, "migrate-52", "127.0.0.52")
    with arbiter(pg, db, sim, "--terminate-orphaned-sessions") as a:
        a.wait_for("verdict", verdict="held")
        old = Session(pg, db, "127.0.0.52", "SELECT pg_sleep(60)")
        sim.delete_pod(NS, "migrate-52")
        a.wait_for("verdict", reason="held_session_alive")
        # Past the death plus --clock-skew, and a whole second more: the API
        # writes creation times in whole seconds.
        time.sleep(2.5)
        sim.create_pod("web-9", NS, containers=["app"], podIP="127.0.0.52")
        new = Session(pg, db, "127.0.0.52", "SELECT pg_sleep(60)")
        new_pid = new.pid()
        try:
            # The old session is ended (it began before the new owner existed).
            a.wait_for("holder session terminated", timeout=10)
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
            assert not locked(pg, db)
            assert old.proc.wait(10) != 0  # psql saw its backend terminated
            # The new owner's session is untouched.
            out = pg.psql("SELECT count(*) FROM pg_stat_activity WHERE pid = %d" % new_pid)
            assert out.strip() == "1"
            assert a.count("holder session terminated") == 1
        finally:
            old.end()
            new.end()


def test_terminate_orphaned_sessions_ends_the_migration_then_releases(pg, db, sim):
    hold(pg, db, sim, "migrate-53", "127.0.0.53")
    with arbiter(pg, db, sim, "--terminate-orphaned-sessions") as a:
        a.wait_for("verdict", verdict="held")
        s = Session(pg, db, "127.0.0.53", "SELECT pg_sleep(60)")
        try:
            pid = s.pid()
            time.sleep(1.5)  # the migration ran a while before its pod died
            sim.delete_pod(NS, "migrate-53")
            rec = a.wait_for("holder session terminated", timeout=10)
            assert rec["pid"] == str(pid) and rec["client_addr"] == "127.0.0.53"
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
            port = a.wait_for("http listening")["port"]
            with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port) as r:
                m = r.read().decode()
            assert ('lock_arbiter_holder_sessions_terminated_total{database="127.0.0.1:%d/%s"} 1'
                    % (pg.port, db)) in m
        finally:
            s.end()


def test_without_the_option_sessions_are_never_terminated(pg, db, sim):
    hold(pg, db, sim, "migrate-54", "127.0.0.54")
    with arbiter(pg, db, sim) as a:
        a.wait_for("verdict", verdict="held")
        s = Session(pg, db, "127.0.0.54", "SELECT pg_sleep(60)")
        try:
            sim.delete_pod(NS, "migrate-54")
            a.wait_for("verdict", reason="held_session_alive")
            time.sleep(1.5)
            assert s.proc.poll() is None and s.pid() is not None
            assert a.count("holder session terminated") == 0 and locked(pg, db)
        finally:
            s.end()


def test_session_guard_off_releases_at_once(pg, db, sim):
    hold(pg, db, sim, "migrate-55", "127.0.0.55")
    with arbiter(pg, db, sim, "--session-guard", "off") as a:
        a.wait_for("verdict", verdict="held")
        s = Session(pg, db, "127.0.0.55", "SELECT pg_sleep(60)")
        try:
            sim.delete_pod(NS, "migrate-55")
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
        finally:
            s.end()


@pytest.fixture(scope="module")
def plain_role(pg):
    """A role that cannot see other roles' sessions (no pg_read_all_stats)."""
    pg.psql("CREATE ROLE watcher LOGIN")
    return "watcher"


@pytest.mark.parametrize("mode", ["on", "require"])
def test_blind_role_is_said_once_and_require_keeps_the_lock(pg, db, sim, plain_role, mode):
    hold(pg, db, sim, "migrate-56", "127.0.0.56")
    pg.psql("GRANT ALL ON ALL TABLES IN SCHEMA public TO watcher", dbname=db)
    dsn = "postgresql://watcher@127.0.0.1:%d/%s" % (pg.port, db)
    with arbiter(pg, db, sim, "--session-guard", mode, dsn=dsn) as a:
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "migrate-56")
        a.wait_for("session guard cannot see other roles' sessions: grant pg_read_all_stats")
        port = a.wait_for("http listening")["port"]
        if mode == "require":
            rec = a.wait_for("verdict", reason="held_session_unknown")
            assert "pg_read_all_stats" in rec["explanation"]
            time.sleep(1)
            assert locked(pg, db)
        else:
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
        want = 'lock_arbiter_session_guard_blind{database="127.0.0.1:%d/%s"} 1' % (pg.port, db)
        deadline = time.monotonic() + 5  # the status is published after each cycle
        while True:
            with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port) as r:
                if want in r.read().decode():
                    break
            assert time.monotonic() < deadline, want
            time.sleep(0.1)
        with urllib.request.urlopen("http://127.0.0.1:%s/readyz" % port) as r:
            assert "cannot see other roles' sessions" in r.read().decode()
        assert a.count("session guard cannot see other roles' sessions: grant "
                       "pg_read_all_stats") == 1
