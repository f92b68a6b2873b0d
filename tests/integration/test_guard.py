"""The session guard (DESIGN.md section 6) end to end: the real binary, a
real database and the simulated API, against both backends (`backend`). A
dead holder's database session is made by a client whose connection comes
from the holder pod's address (127.0.0.x): PostgreSQL records it as
client_addr (a psql through a proxy that binds its outgoing socket),
MariaDB as PROCESSLIST's HOST `ADDR:PORT` (a client that binds); see
backends.py. On MariaDB the arbiter's account has PROCESS, which shows it
every account's sessions, and no right to KILL another account's
connection: the tests that terminate grant it CONNECTION ADMIN (MariaDB
10.5+; SUPER would do) for their duration (allow_terminate)."""
import time
import urllib.request

import pytest

from conftest import SIM_NS as NS, sim_arbiter


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.clear_faults()
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    yield


def arbiter(backend, sim, *extra, dsn=None):
    return sim_arbiter([dsn or backend.dsn()], sim, *extra)


def hold(backend, sim, name, ip):
    backend.create_lock_table()
    sim.create_pod(name, NS, containers=["app"], podIP=ip)
    backend.lock(lockedby="%s:%s" % (NS, name))


def metrics(a):
    port = a.wait_for("http listening")["port"]
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port) as r:
        return r.read().decode()


def test_open_session_of_a_dead_holder_keeps_the_lock(backend, sim):
    hold(backend, sim, "migrate-51", "127.0.0.51")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")  # seen alive: its address is learned
        s = backend.session("127.0.0.51", 60)
        try:
            sim.delete_pod(NS, "migrate-51")
            rec = a.wait_for("verdict", reason="held_session_alive")
            assert "pid %d from 127.0.0.51" % s.pid() in rec["explanation"], rec
            assert backend.sleep_fn in rec["explanation"], rec
            time.sleep(1)
            assert backend.locked() and a.count("lock released") == 0
        finally:
            s.end()
        assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"


def test_idle_session_of_a_dead_holder_does_not_keep_the_lock(backend, sim):
    """Between statements (PostgreSQL idle, MariaDB Sleep) a session whose
    client is gone can commit nothing more: most often the connection pool
    of another container of the pod, which a vanished node would leave open
    until TCP keepalive. It does not keep the lock, and is not ended."""
    hold(backend, sim, "migrate-58", "127.0.0.58")
    with backend.allow_terminate(), arbiter(backend, sim, "--terminate-orphaned-sessions") as a:
        a.wait_for("verdict", verdict="held")
        s = backend.session("127.0.0.58", idle=True)
        try:
            time.sleep(1.5)  # begun well before the death
            sim.delete_pod(NS, "migrate-58")
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
            assert a.count("verdict", reason="held_session_alive") == 0
            assert a.count("holder session terminated") == 0
            assert s.pid() is not None and s.proc.poll() is None
        finally:
            s.end()


def test_session_begun_after_the_death_belongs_to_the_new_owner(backend, sim):
    """Address reuse: a session from the holder's old address that began after
    its death (plus skew) neither holds the lock nor gets terminated."""
    hold(backend, sim, "migrate-52", "127.0.0.52")
    with backend.allow_terminate(), arbiter(backend, sim, "--terminate-orphaned-sessions") as a:
        a.wait_for("verdict", verdict="held")
        old = backend.session("127.0.0.52", 60)
        sim.delete_pod(NS, "migrate-52")
        a.wait_for("verdict", reason="held_session_alive")
        # Past the death plus --clock-skew, and a whole second more: the API
        # writes creation times in whole seconds.
        time.sleep(2.5)
        sim.create_pod("web-9", NS, containers=["app"], podIP="127.0.0.52")
        new = backend.session("127.0.0.52", 60)
        new_pid = new.pid()
        try:
            # The old session is ended (it began before the new owner existed).
            rec = a.wait_for("holder session terminated", timeout=10)
            assert rec["pid"] != str(new_pid), rec
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
            assert not backend.locked()
            assert old.proc.wait(10) != 0  # the client saw its session terminated
            # The new owner's session is untouched.
            assert new.alive(new_pid) and new.proc.poll() is None
            assert a.count("holder session terminated") == 1
        finally:
            old.end()
            new.end()


def test_terminate_orphaned_sessions_ends_the_migration_then_releases(backend, sim):
    hold(backend, sim, "migrate-53", "127.0.0.53")
    with backend.allow_terminate(), arbiter(backend, sim, "--terminate-orphaned-sessions") as a:
        a.wait_for("verdict", verdict="held")
        s = backend.session("127.0.0.53", 60)
        try:
            pid = s.pid()
            time.sleep(1.5)  # the migration ran a while before its pod died
            sim.delete_pod(NS, "migrate-53")
            rec = a.wait_for("holder session terminated", timeout=10)
            assert rec["pid"] == str(pid) and rec["client_addr"] == "127.0.0.53"
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
            assert s.proc.wait(10) != 0
            assert ('lock_arbiter_holder_sessions_terminated_total{database="%s"} 1'
                    % backend.label) in metrics(a)
        finally:
            s.end()


def test_without_the_option_sessions_are_never_terminated(backend, sim):
    hold(backend, sim, "migrate-54", "127.0.0.54")
    with arbiter(backend, sim) as a:
        a.wait_for("verdict", verdict="held")
        s = backend.session("127.0.0.54", 60)
        try:
            sim.delete_pod(NS, "migrate-54")
            a.wait_for("verdict", reason="held_session_alive")
            time.sleep(1.5)
            assert s.proc.poll() is None and s.pid() is not None
            assert a.count("holder session terminated") == 0 and backend.locked()
        finally:
            s.end()


def test_terminating_without_the_right_keeps_the_lock(backend, sim):
    """An account that sees every session but may not end another's (no
    superuser or pg_signal_backend; no CONNECTION ADMIN or SUPER): the
    termination is refused, the arbiter says so, and the session, still
    open, keeps the lock until it ends."""
    hold(backend, sim, "migrate-57", "127.0.0.57")
    with arbiter(backend, sim, "--terminate-orphaned-sessions",
                 dsn=backend.no_terminate_dsn()) as a:
        a.wait_for("verdict", verdict="held")
        s = backend.session("127.0.0.57", 60)
        try:
            pid = s.pid()
            time.sleep(1.5)  # begun well before the death: one the arbiter would end
            sim.delete_pod(NS, "migrate-57")
            rec = a.wait_for("holder session not terminated", timeout=10)
            assert rec["pid"] == str(pid), rec
            a.wait_for("verdict", reason="held_session_alive")
            time.sleep(1)
            assert s.alive(pid) and s.proc.poll() is None
            assert backend.locked() and a.count("lock released") == 0
            assert a.count("holder session terminated") == 0
        finally:
            s.end()
        assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"


def test_session_guard_off_releases_at_once(backend, sim):
    hold(backend, sim, "migrate-55", "127.0.0.55")
    with arbiter(backend, sim, "--session-guard", "off") as a:
        a.wait_for("verdict", verdict="held")
        s = backend.session("127.0.0.55", 60)
        try:
            sim.delete_pod(NS, "migrate-55")
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
        finally:
            s.end()


@pytest.mark.parametrize("mode", ["on", "require"])
def test_blind_role_is_said_once_and_require_keeps_the_lock(backend, sim, mode):
    """A role that cannot see other roles' sessions: PostgreSQL without
    pg_read_all_stats, MariaDB without PROCESS; the arbiter names the grant
    its backend needs."""
    hold(backend, sim, "migrate-56", "127.0.0.56")
    blind = "session guard cannot see other roles' sessions: grant " + backend.session_grant
    with arbiter(backend, sim, "--session-guard", mode, dsn=backend.blind_dsn()) as a:
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "migrate-56")
        a.wait_for(blind)
        port = a.wait_for("http listening")["port"]
        if mode == "require":
            rec = a.wait_for("verdict", reason="held_session_unknown")
            assert backend.session_grant in rec["explanation"]
            time.sleep(1)
            assert backend.locked()
        else:
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
        want = 'lock_arbiter_session_guard_blind{database="%s"} 1' % backend.label
        deadline = time.monotonic() + 5  # the status is published after each cycle
        while want not in metrics(a):
            assert time.monotonic() < deadline, want
            time.sleep(0.1)
        with urllib.request.urlopen("http://127.0.0.1:%s/readyz" % port) as r:
            body = r.read().decode()
        assert "cannot see other roles' sessions" in body and backend.session_grant in body
        assert a.count(blind) == 1
