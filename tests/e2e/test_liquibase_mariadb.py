"""Real Liquibase 4.28 (npm liquibase@4.28.1, its bundled MariaDB JDBC driver)
against a real MariaDB 10.11, each run "in a pod" as in test_liquibase.py
(network namespaces as root, else this machine). What the MariaDB backend
will face, checked on the real thing:

- 4.28 creates `DATABASECHANGELOGLOCK` in upper case with `LOCKED tinyint(1)`
  (DATETIME LOCKGRANTED), and LOCKEDBY is `POD (IP)`;
- a table created in another LOCKED form (BIT(1), TINYINT; the captured DDL of
  tests/fixtures/mariadb) keeps its type, and 4.28 takes and releases the
  lock in it;
- kill -9 or SIGTERM mid-migration leaves the lock held, and the killed
  client's session goes on running its statement (`DO SLEEP`) on the server,
  visible in information_schema.PROCESSLIST with HOST = the pod's IP:port (in
  a namespace pod): what the session guard looks for.
"""
import re
import signal
import time

import pytest

from harness import LB_ACQUIRED, LB_RELEASED, LB_SLOW_STARTED  # noqa: E402
from mariadb_harness import E2EMariaDBServer, MariaDBWorld  # noqa: E402

HOLDER = "orders-7d9f8c6b5-x2x7q"
_seq = iter(range(10 ** 6))


@pytest.fixture(scope="module")
def maria(pod_network):
    net, _ = pod_network
    with E2EMariaDBServer(extra_listen=net.gateway if net is not None else None) as server:
        yield server


@pytest.fixture
def world(request, liquibase, pod_network, maria, sim, tmp_path):
    net, _ = pod_network
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    db = "lb_%d" % next(_seq)
    maria.create_database(db)
    w = MariaDBWorld(lb=liquibase, maria=maria, sim=sim, net=net, db=db, workdir=str(tmp_path),
                     name=request.node.name)
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
