"""Real Liquibase 4.28 (npm liquibase@4.28.1, its bundled MariaDB JDBC driver)
against a real MariaDB 10.11, each run "in a pod" as in test_liquibase.py
(network namespaces as root, else this machine). What the MariaDB backend
faces, checked on the real thing:

- 4.28 creates `DATABASECHANGELOGLOCK` in upper case with `LOCKED tinyint(1)`
  (DATETIME LOCKGRANTED), and LOCKEDBY is `POD (IP)`;
- a table created in another LOCKED form (BIT(1), TINYINT; the captured DDL of
  tests/fixtures/mariadb) keeps its type, and 4.28 takes and releases the
  lock in it;
- kill -9 or SIGTERM mid-migration leaves the lock held, and the killed
  client's session goes on running its statement (`DO SLEEP`) on the server,
  visible in information_schema.PROCESSLIST with HOST = the pod's IP:port (in
  a namespace pod): what the session guard looks for. (SLEEP itself looks
  every 5 s whether its client is still connected, and ends when it is not;
  an ALTER TABLE or an UPDATE never looks.)

Then the real arbiter on it (`--database mariadb://…`, db/my-*.c), with the
scenarios of test_liquibase.py's session guard: a holder killed mid-migration
(kill -9, or SIGTERM), its pod deleted in the simulated API (O1), a second
Liquibase waiting:
g. the guard alone: the lock is kept (held_session_alive, naming the
   connection) while the dead pod's `DO SLEEP` runs on the server (up to 5 s:
   see above), released when it ends, and the waiter completes;
t. --terminate-orphaned-sessions (the arbiter granted CONNECTION ADMIN): the
   dead pod's connection is killed (KILL CONNECTION), the lock released, the
   waiter completes;
u. the long changeset is DDL, an ALTER TABLE copying a big table
   (changelog-mariadb-big). DDL is not transactional on MariaDB: with the guard
   alone the dead pod's ALTER runs to completion while the lock is kept, and
   since Liquibase never recorded the changeset, the waiter runs it again and
   fails ("Duplicate column name"); terminated mid-way, the ALTER is rolled
   back (InnoDB drops the copy), and the waiter's own ALTER applies it once;
v. the long changeset is DML, an UPDATE of every row, terminated half-way:
   its rollback keeps the session in the process list (COMMAND Killed, STATE
   Rollback) for seconds; the lock is kept until it is gone, and the session
   is killed once.
"""
import os
import re
import signal
import time

import pytest

from harness import (LB_ACQUIRED, LB_RELEASED, LB_SLOW_STARTED, LB_WAITING, LONG,  # noqa: E402
                     NAMESPACE, kept_while, kill_holder, metrics, released, start_holder)
from mariadb_harness import (BIG_COLUMN, BIG_TABLE, CHANGELOG_DIR_MARIADB_BIG,  # noqa: E402
                             E2EMariaDBServer, MariaDBWorld)

HOLDER = "orders-7d9f8c6b5-x2x7q"
WAITER = "orders-7d9f8c6b5-b8k2m"
# DO SLEEP of a holder killed some seconds in, whose session the guard waits for
# (until the server's next 5-s check of the client).
GUARDED = 20
# Rows of the big table (and its index): an ALTER copying them, or an UPDATE of
# each, takes 5 to 7 s on 2 cores.
BIG_ROWS = 1000000
# changelog-mariadb-big's pause before its ALTER: the waiter starts meanwhile.
PAUSE = 12
_seq = iter(range(10 ** 6))


@pytest.fixture(scope="module")
def maria(pod_network):
    net, _ = pod_network
    with E2EMariaDBServer(extra_listen=net.gateway if net is not None else None) as server:
        yield server


@pytest.fixture
def world(request, liquibase, pod_network, maria, sim, tmp_path):
    net, reason = pod_network
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    db = "lb_%d" % next(_seq)
    maria.create_database(db)
    w = MariaDBWorld(lb=liquibase, maria=maria, sim=sim, net=net, db=db, workdir=str(tmp_path),
                     name=request.node.name,
                     results_dir=os.environ.get("LOCK_ARBITER_E2E_RESULTS"))
    w.netns_reason = reason
    try:
        yield w
    finally:
        w.cleanup()


def check_lockedby(world, pod, lockedby):
    if world.mode == "netns":
        assert lockedby == pod.lockedby(), (lockedby, pod.lockedby())
    else:
        assert re.fullmatch(re.escape(pod.hostname) + r" \(.+\)", lockedby), lockedby


def test_liquibase_428_creates_the_lock_table_upper_case_tinyint1(world):
    pod = world.pod(HOLDER)
    run = world.liquibase(pod, sleep_seconds=0, name="update")
    assert run.wait_exit(120) == 0, run.log_tail()
    assert LB_ACQUIRED in run.log() and LB_RELEASED in run.log()
    assert sorted(world.tables()) == ["DATABASECHANGELOG", "DATABASECHANGELOGLOCK", "orders"]
    m = world.maria
    assert m.column_type(world.db) == "tinyint(1)"
    assert m.column_type(world.db, "LOCKGRANTED") == "datetime"
    assert m.column_type(world.db, "LOCKEDBY") == "varchar(255)"
    assert world.row() == (False, None, None)
    assert world.applied() == ["1-slow", "2-trivial"]
    # The case as created: a lower-case name is another table on Linux.
    rc, _, err = m.sql_result("SELECT 1 FROM databasechangeloglock", world.db)
    assert rc != 0 and "ERROR 1146" in err, err


@pytest.mark.parametrize("form,column", [("bit1", "bit(1)"), ("tinyint", "tinyint(4)")])
def test_liquibase_428_uses_a_table_of_another_form_as_it_is(world, form, column):
    world.maria.create_lock_table(world.db, form=form)
    pod = world.pod(HOLDER)
    run = world.liquibase(pod, sleep_seconds=3, name="update-" + form)
    run.wait_log(LB_SLOW_STARTED, 120)
    locked, lockedby, granted = world.row()
    assert locked is True and granted
    check_lockedby(world, pod, lockedby)
    assert run.wait_exit(120) == 0, run.log_tail()
    assert world.maria.column_type(world.db) == column
    assert world.row() == (False, None, None)
    assert world.applied() == ["1-slow", "2-trivial"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killed_mid_migration_leaves_the_lock_and_a_running_session(world, sig):
    pod = world.pod(HOLDER)
    run = world.liquibase(pod, sleep_seconds=60, name="holder")
    run.wait_log(LB_SLOW_STARTED, 120)
    lockedby = world.wait_locked(run)
    check_lockedby(world, pod, lockedby)
    # The session running the slow statement, from the pod's address.
    prefix = pod.ip + ":" if world.mode == "netns" else None
    deadline = time.monotonic() + 10
    while True:
        running = [s for s in world.sessions(prefix) if s["INFO"] == "DO SLEEP(60)"]
        if running or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(running) == 1, world.sessions()
    session = running[0]
    if world.mode == "netns":
        assert re.fullmatch(re.escape(pod.ip) + r":\d+", session["HOST"]), session

    killed = run.kill(sig)
    rc = run.wait_exit(30)
    assert rc != 0 or sig == signal.SIGTERM, rc
    assert LB_RELEASED not in run.log(), run.log_tail()
    time.sleep(1.0)
    # The lock stays, and the dead client's statement still runs on the server.
    assert world.row()[:2] == (True, lockedby)
    after = [s for s in world.sessions(prefix) if s["ID"] == session["ID"]]
    assert after and after[0]["COMMAND"] == "Query" and after[0]["INFO"] == "DO SLEEP(60)", (
        world.sessions())
    print("\n[e2e-mariadb %s] exit %s %.1f s after the signal; lock kept by %r; session %s"
          " from %s still running %r" % (signal.Signals(sig).name, rc,
                                         run.ended - killed, lockedby, session["ID"],
                                         session["HOST"], after[0]["INFO"]))
    world.end_sessions(after)


# -- the arbiter on MariaDB ------------------------------------------------------

def dead_pods_statement(world, pod, info):
    """The one session from pod's address running `info` (None on this host,
    where the server sees 127.0.0.1 for every client: nothing to guard)."""
    if pod.kind != "netns":
        return None
    rows = [r for r in world.statements(pod, timeout=10) if r["INFO"] == info]
    assert len(rows) == 1, world.statements(pod)
    return rows[0]


def still_running(world, pod, session):
    return any(r["ID"] == session["ID"] for r in world.statements(pod))


def holder_and_waiter(world, a, sleep_seconds, waiter_sleep=0, **run_kw):
    """The holder migrating its slow changeset, watched by the arbiter, and a
    second Liquibase waiting for the lock: (holder run, LOCKEDBY, waiter run)."""
    h, lockedby, _ = start_holder(world, world.pod(HOLDER), a, sleep_seconds=sleep_seconds,
                                  **run_kw)
    a.wait_for("verdict", verdict="held", reason="held_container_running")
    w = world.liquibase(world.pod(WAITER), sleep_seconds=waiter_sleep, name="waiter", **run_kw)
    w.wait_log(LB_WAITING, timeout=60)
    assert world.row()[1] == lockedby and h.running()
    return h, lockedby, w


def kill_and_delete(world, h, lockedby, info, sig=signal.SIGKILL):
    """Kills the holder mid-migration, checks that its statement still runs on
    the server, and deletes its pod: (kill time, session or None, delete time)."""
    pod = world.pod(HOLDER)
    t_kill = kill_holder(world, h, lockedby, sig)
    session = dead_pods_statement(world, pod, info)
    world.sim.delete_pod(NAMESPACE, pod.name)
    return t_kill, session, time.monotonic()


def guard_holds(world, a, mark, session):
    """The guard names the dead pod's connection: held_session_alive."""
    rec = a.wait_for("verdict", reason="held_session_alive", start=mark, timeout=15)
    assert "pid %s from %s" % (session["ID"], world.pod(HOLDER).ip) in rec["explanation"], rec
    assert session["INFO"][:40] in rec["explanation"], rec
    return rec


def terminated(world, a, mark, session):
    """The arbiter killed the dead pod's connection: (record, when)."""
    rec = a.wait_for("holder session terminated", start=mark, timeout=15)
    t = time.monotonic()
    assert rec["pid"] == str(session["ID"]), (rec, session)
    assert rec["client_addr"] == world.pod(HOLDER).ip and rec["query"] == session["INFO"], rec
    return rec, t


def terminated_once(world, a, rec):
    """One termination, logged and counted (holder_sessions_terminated_total 1)."""
    assert a.count("holder session terminated") == 1, a.log_text()
    assert a.count("holder session not terminated") == 0, a.log_text()
    assert ('lock_arbiter_holder_sessions_terminated_total{database="%s"} 1'
            % rec["database"]) in metrics(a)


def test_g_guard_keeps_the_lock_while_the_dead_pods_statement_runs(world):
    world.create_lock_table()
    a = world.arbiter()
    a.wait_for("lock table found")
    h, lockedby, w = holder_and_waiter(world, a, GUARDED)
    info = "DO SLEEP(%d)" % GUARDED

    mark = a.mark()
    t_kill, session, t_delete = kill_and_delete(world, h, lockedby, info)
    guarded_s = None
    if session is not None:
        guard_holds(world, a, mark, session)
        guarded_s = kept_while(world, lambda: still_running(world, world.pod(HOLDER), session),
                               lockedby, "the dead pod's statement ran") - t_kill
    rec, t_release = released(a, lockedby, "O1_pod_deleted", start=mark, timeout=30)
    t_acquired = w.wait_log(LB_ACQUIRED, timeout=30)
    assert w.wait_exit(60) == 0, w.log_tail()

    assert world.applied() == ["1-slow", "2-trivial"]
    assert world.row() == (False, None, None)
    assert a.count("lock released") == 1  # the waiter's own lock was never touched
    assert a.count("holder session terminated") == 0
    world.record("mariadb_g_guard", kill_to_session_gone_s=guarded_s,
                 kill_to_release_s=t_release - t_kill,
                 delete_to_release_s=t_release - t_delete,
                 kill_to_waiter_acquired_s=t_acquired - t_kill,
                 kill_to_completion_s=w.ended - t_kill, statement=info,
                 session=session and session["HOST"], lockedby=lockedby, rule=rec["rule"])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_t_terminate_orphaned_sessions_kills_the_dead_pods_connection(world, sig):
    world.grant_connection_admin()
    world.create_lock_table()
    a = world.arbiter("--terminate-orphaned-sessions")
    a.wait_for("lock table found")
    h, lockedby, w = holder_and_waiter(world, a, LONG)
    info = "DO SLEEP(%d)" % LONG

    mark = a.mark()
    t_kill, session, t_delete = kill_and_delete(world, h, lockedby, info, sig)
    t_term = None
    if session is not None:
        term, t_term = terminated(world, a, mark, session)
    rec, t_release = released(a, lockedby, "O1_pod_deleted", start=mark)
    if session is not None:
        # Ended LONG s early: the statement did not run to its end.
        assert not still_running(world, world.pod(HOLDER), session)
        assert t_release - t_kill < LONG / 2
    t_acquired = w.wait_log(LB_ACQUIRED, timeout=30)
    assert w.wait_exit(60) == 0, w.log_tail()

    assert world.applied() == ["1-slow", "2-trivial"]
    assert world.row() == (False, None, None)
    assert a.count("lock released") == 1
    if session is not None:
        terminated_once(world, a, term)
    world.record("mariadb_t_terminated_" + signal.Signals(sig).name.lower(),
                 signal_to_exit_s=h.ended - t_kill, liquibase_exit=h.proc.returncode,
                 delete_to_terminated_s=t_term and t_term - t_delete,
                 delete_to_release_s=t_release - t_delete,
                 kill_to_release_s=t_release - t_kill,
                 kill_to_waiter_acquired_s=t_acquired - t_kill,
                 kill_to_completion_s=w.ended - t_kill, statement=info,
                 session=session and session["HOST"], lockedby=lockedby, rule=rec["rule"])


def big_table_holder(world, a, statement, ready):
    """The holder migrating changelog-mariadb-big and a waiter; returns once the
    holder's `statement` (the start of its text) runs and ready(session) says
    it is well under way: (holder run, LOCKEDBY, waiter run, session)."""
    world.make_big_table(BIG_ROWS)
    # The same pause for both runs: Liquibase checks the recorded 1-slow's checksum.
    h, lockedby, w = holder_and_waiter(world, a, PAUSE, waiter_sleep=PAUSE,
                                       changelog_dir=CHANGELOG_DIR_MARIADB_BIG)
    pod = world.pod(HOLDER)
    deadline = time.monotonic() + PAUSE + 60
    while True:
        running = [r for r in world.statements(pod) if (r["INFO"] or "").startswith(statement)]
        if running and ready(running[0]):
            return h, lockedby, w, running[0]
        assert h.running() and time.monotonic() < deadline, (world.statements(pod),
                                                             h.log_tail())
        time.sleep(0.05)


def other_connection_ends(world):
    """Just before the death, the newest connection on the server, another
    client's, ends, and the arbiter polls before and after: the holder's
    statement began a second ago, but its connection long before the death
    (at the pause), and the arbiter's polls saw it then, so its session can
    still be placed before the death and killed (before d234cda, the highest
    id going down wiped the arbiter's samples: no termination, and the ALTER
    ran to its end)."""
    world.newest_connection_ends(0.5)
    time.sleep(0.25)  # a poll (200 ms) after the end


def big_rows_updated(world):
    return int(world.maria.sql("SELECT COUNT(*) FROM %s WHERE payload = REPEAT('y', 60)"
                               % BIG_TABLE, world.db))


@pytest.mark.parametrize("terminate", [False, True], ids=["guard", "terminate"])
def test_u_killed_alter_table(world, terminate):
    if world.mode != "netns":
        pytest.skip("the big-table scenarios need the pods' own addresses (%s)"
                    % world.netns_reason)
    world.create_lock_table()
    if terminate:
        world.grant_connection_admin()
    a = world.arbiter(*(["--terminate-orphaned-sessions"] if terminate else []))
    a.wait_for("lock table found")
    # Killed once the ALTER is copying rows: mid-way.
    h, lockedby, w, alter = big_table_holder(world, a, "ALTER TABLE " + BIG_TABLE,
                                             lambda r: float(r["PROGRESS"] or 0) > 0)

    if terminate:
        other_connection_ends(world)
    mark = a.mark()
    t_kill, session, t_delete = kill_and_delete(world, h, lockedby, alter["INFO"])
    progress = float(session["PROGRESS"] or 0)
    guard_holds(world, a, mark, session)
    if terminate:
        term, _ = terminated(world, a, mark, session)
    t_gone = kept_while(world, lambda: still_running(world, world.pod(HOLDER), session),
                        lockedby, "the dead pod's ALTER ran")
    rec, t_release = released(a, lockedby, "O1_pod_deleted", start=mark, timeout=60)
    # What the dead pod's ALTER left, before the waiter's run (its poll is 1 s).
    columns = world.columns(BIG_TABLE)
    rc = w.wait_exit(120)

    if terminate:
        # Killed mid-way, the copy was dropped; the waiter's ALTER applied it once.
        assert BIG_COLUMN not in columns, columns
        assert rc == 0, w.log_tail()
        assert world.applied() == ["1-slow", "2-alter", "3-update"]
        assert world.columns(BIG_TABLE).count(BIG_COLUMN) == 1
        terminated_once(world, a, term)
    else:
        # DDL is not transactional: the dead pod's ALTER ran to its end, but
        # Liquibase never recorded it, so the waiter runs it again, and fails.
        assert BIG_COLUMN in columns, columns
        assert rc != 0 and "Duplicate column name '%s'" % BIG_COLUMN in w.log(), w.log_tail()
        assert world.applied() == ["1-slow"]
        assert a.count("holder session terminated") == 0
    assert int(world.maria.sql("SELECT COUNT(*) FROM %s" % BIG_TABLE, world.db)) == BIG_ROWS
    assert world.row() == (False, None, None)
    assert a.count("lock released") == 1
    world.record("mariadb_u_alter_" + ("terminated" if terminate else "guard"),
                 alter_progress_at_kill_pct=progress, kill_to_session_gone_s=t_gone - t_kill,
                 kill_to_release_s=t_release - t_kill,
                 delete_to_release_s=t_release - t_delete,
                 column_added_by_dead_pod=BIG_COLUMN in columns, waiter_exit=rc,
                 statement=alter["INFO"], session=session["HOST"], lockedby=lockedby,
                 rule=rec["rule"])


def test_v_killed_update_terminated_rolls_back_then_released(world):
    """A data migration (an UPDATE of every row, in Liquibase's transaction)
    killed a third of the way: KILL CONNECTION rolls it back, and the session stays in
    the process list (COMMAND Killed, STATE Rollback) for as long as that
    takes; the lock is kept meanwhile, and the session is killed once."""
    if world.mode != "netns":
        pytest.skip("the big-table scenarios need the pods' own addresses (%s)"
                    % world.netns_reason)
    world.create_lock_table()
    world.grant_connection_admin()
    a = world.arbiter("--terminate-orphaned-sessions")
    a.wait_for("lock table found")
    # Killed a third of the way (the UPDATE takes about 6 s).
    h, lockedby, w, update = big_table_holder(world, a, "UPDATE " + BIG_TABLE,
                                              lambda r: r["TIME"] >= 2)

    mark = a.mark()
    t_kill, session, t_delete = kill_and_delete(world, h, lockedby, update["INFO"])
    term, t_term = terminated(world, a, mark, session)
    states = set()

    def rolling_back():
        rows = [r for r in world.statements(world.pod(HOLDER)) if r["ID"] == session["ID"]]
        states.update("%s/%s" % (r["COMMAND"], r["STATE"]) for r in rows)
        return bool(rows)

    t_gone = kept_while(world, rolling_back, lockedby, "the dead pod's UPDATE rolled back")
    rec, t_release = released(a, lockedby, "O1_pod_deleted", start=mark, timeout=60)
    updated_at_release = big_rows_updated(world)
    rc = w.wait_exit(120)

    assert updated_at_release == 0  # rolled back
    assert rc == 0, w.log_tail()
    assert world.applied() == ["1-slow", "2-alter", "3-update"]
    assert big_rows_updated(world) == BIG_ROWS
    assert world.row() == (False, None, None)
    world.record("mariadb_v_update_terminated", update_ran_at_kill_s=session["TIME"],
                 session_states_after_kill=sorted(states),
                 terminated_to_session_gone_s=t_gone - t_term,
                 kill_to_release_s=t_release - t_kill,
                 delete_to_release_s=t_release - t_delete,
                 terminations_logged=a.count("holder session terminated"),
                 statement=update["INFO"], session=session["HOST"], lockedby=lockedby,
                 rule=rec["rule"])
    # Every poll of the rollback sees the killed session again: it is killed,
    # and counted, once (before d234cda, once a poll: 14 to 18 times here).
    terminated_once(world, a, term)
