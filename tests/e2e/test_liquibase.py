"""End to end with real Liquibase 4.28: the lock is taken, held and left behind
by real `liquibase update` runs (changelog/changelog.xml, a pg_sleep changeset
then a trivial one), each run "in a pod" (harness.PodNetwork: its own network
namespace, host name and kubelet /etc/hosts), the simulated Kubernetes API shows
those pods, and the real lock-arbiter binary decides.

Liquibase polls the lock every second here (--changelog-lock-poll-rate=1; its
default is 10 s) and waits up to 2 minutes. The arbiter polls every 200 ms with
--clock-skew 1s and --min-lock-age 1s. The simulator writes container times in
whole seconds, so a restart meant to be "after the grant" comes at least 2.5 s
after the arbiter first saw the lock (the kill comes then too).

The session guard (in a namespace pod, where PostgreSQL sees the pod's IP):
the killed holder's backend keeps running its pg_sleep, so the lock is kept
(held_session_alive) until that backend ends, by itself when the statement is
done (a), or ended by --terminate-orphaned-sessions (b, d).

Scenarios: a. kill -9 mid-migration + container restarted (O4): kept while the
dead holder's backend runs, released when it ends, a waiting Liquibase
completes; b. kill -9 (and SIGTERM) + pod deleted (O1), the backend ended by
--terminate-orphaned-sessions; c. a live slow migration
is never released; d. LOCKEDBY in the NAMESPACE:POD format of the
Kubernetes-Liquibase-Lock-Release extension, pod deleted (O1); e. a JVM in
America/New_York (LOCKGRANTED hours off), across an arbiter restart;
f. liquibase.hostDescription (POD#DESC (IP)).
"""
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (LB_ACQUIRED, LB_RELEASED, LB_WAITING, NAMESPACE,  # noqa: E402
                     kept_while, kill_holder, released, start_holder, until)
from pgserver import quote_literal  # noqa: E402

HOLDER = "orders-7d9f8c6b5-x2x7q"
WAITER = "orders-7d9f8c6b5-b8k2m"
# pg_sleep of a holder killed a few seconds in whose backend the guard waits for:
# it ends on its own when the statement is done and the server notices.
GUARDED = 12
AFTER_SEEN = 2.5  # a restart this long after the first sight is after grant_before + skew


def sleeping_backends(e2e):
    """Backends still running the killed holder's pg_sleep: the server does not
    notice a vanished client while a statement runs."""
    return int(e2e.pg.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'active' AND query LIKE 'SELECT pg_sleep%'", e2e.db))


def end_dead_backends(e2e):
    """Ends the killed holder's still-sleeping backend, as PostgreSQL would by
    itself with client_connection_check_interval set: scenarios about other
    things then need not wait for the session guard."""
    e2e.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'active'"
                " AND query LIKE 'SELECT pg_sleep%'", e2e.db)


def test_pod_sandbox_is_pod_like(e2e):
    """What Liquibase sees in a pod: host name, /etc/hosts, eth0, PostgreSQL."""
    if e2e.net is None:
        pytest.skip("namespace variant skipped: %s; the scenarios ran with this machine "
                    "as the pod" % e2e.netns_reason)
    host_before = socket.gethostname()
    pod = e2e.pod(HOLDER)
    probe = ("import socket; n = socket.gethostname(); print(n); "
             "print(socket.gethostbyname(n)); "
             "socket.create_connection((%r, %d), timeout=5).close(); print('db ok')"
             % (pod.db_host, e2e.pg.port))
    out = subprocess.run(pod.wrap(["sh", "-c", 'cat /etc/hosts; ip -4 -o addr show dev eth0; '
                                   'ip -4 route; exec "$0" -c "$1"', sys.executable, probe]),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "%s\t%s\n" % (pod.ip, HOLDER) in text, text
    assert " inet %s/24 " % pod.ip in text, text
    assert "default" not in text, text  # the pods reach nothing but the bridge
    assert text.endswith("%s\n%s\ndb ok\n" % (HOLDER, pod.ip)), text
    assert socket.gethostname() == host_before
    print("\n[e2e sandbox] %s" % text.strip().replace("\n", " | "))


def test_a_killed_holder_container_restarted_waiter_completes(e2e):
    e2e.create_lock_table()
    holder = e2e.pod(HOLDER)
    waiter = e2e.pod(WAITER)  # the same pod without namespaces: its restarted container
    a = e2e.arbiter()
    a.wait_for("lock table found")
    h, lockedby, seen = start_holder(e2e, holder, a, sleep_seconds=GUARDED)
    a.wait_for("verdict", verdict="held", reason="held_container_running")
    w = e2e.liquibase(waiter, sleep_seconds=0, name="waiter")
    w.wait_log(LB_WAITING, timeout=60)
    until(seen + AFTER_SEEN)
    assert e2e.row()[1] == lockedby and h.running()

    mark = a.mark()
    t_kill = kill_holder(e2e, h, lockedby)
    e2e.sim.restart(NAMESPACE, holder.name, container="app")
    t_restart = time.monotonic()
    guarded_s = None
    if holder.kind == "netns":
        # The dead holder's backend still runs its changeset: the guard keeps the lock.
        assert sleeping_backends(e2e) == 1
        rec = a.wait_for("verdict", reason="held_session_alive", start=mark, timeout=15)
        assert "from %s" % holder.ip in rec["explanation"] and "pg_sleep" in rec["explanation"]
        guarded_s = kept_while(e2e, lambda: sleeping_backends(e2e) > 0, lockedby,
                               "the holder's backend ran") - t_kill
    rec, t_release = released(a, lockedby, "O4_container_restarted", start=mark, timeout=30)
    t_acquired = w.wait_log(LB_ACQUIRED, timeout=30)
    assert w.wait_exit(60) == 0, w.log_tail()
    t_done = w.ended

    assert "Update has been successful" in w.log(), w.log_tail()
    assert e2e.applied() == ["1-slow", "2-trivial"]
    assert e2e.row() == (False, None, None)
    assert a.count("lock released") == 1  # the waiter's own lock was never touched
    e2e.record("a_container_restarted",
               kill_to_release_s=t_release - t_kill,
               restart_to_release_s=t_release - t_restart,
               kill_to_waiter_acquired_s=t_acquired - t_kill,
               kill_to_completion_s=t_done - t_kill,
               release_to_completion_s=t_done - t_release,
               kill_to_backend_gone_s=guarded_s,
               lockedby=lockedby, rule=rec["rule"], evidence=rec["evidence"],
               arbiter_poll_interval="200ms", liquibase_lock_poll_rate_s=1,
               note="sim.restart right after the kill: no kubelet restart delay included")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_b_killed_holder_pod_deleted(e2e, sig):
    """kill -9; or SIGTERM, which is what the kubelet sends first when a pod is
    deleted: Liquibase 4.28 exits within a second and leaves its lock too."""
    e2e.create_lock_table()
    holder = e2e.pod(HOLDER)
    a = e2e.arbiter("--terminate-orphaned-sessions")
    a.wait_for("lock table found")
    h, lockedby, _ = start_holder(e2e, holder, a)
    a.wait_for("verdict", verdict="held", reason="held_container_running")

    mark = a.mark()
    t_kill = kill_holder(e2e, h, lockedby, sig)
    t_exit = h.ended
    backends = sleeping_backends(e2e)
    e2e.sim.delete_pod(NAMESPACE, holder.name)
    t_delete = time.monotonic()
    if holder.kind == "netns" and backends > 0:
        # The migration would run on behind the next one: it is ended, then released.
        rec = a.wait_for("holder session terminated", start=mark, timeout=15)
        assert rec["client_addr"] == holder.ip and "pg_sleep" in rec["query"], rec
    rec, t_release = released(a, lockedby, "O1_pod_deleted", start=mark)
    if holder.kind == "netns":
        assert sleeping_backends(e2e) == 0
    assert e2e.row() == (False, None, None)
    e2e.record("b_pod_deleted_" + signal.Signals(sig).name.lower(),
               kill_to_release_s=t_release - t_kill, signal_to_exit_s=t_exit - t_kill,
               liquibase_exit=h.proc.returncode, delete_to_release_s=t_release - t_delete,
               lock_left_after_exit=True, killed_backend_still_sleeping=backends > 0,
               lockedby=lockedby, rule=rec["rule"], evidence=rec["evidence"])


def test_c_live_slow_migration_is_never_released(e2e):
    slow = 8
    e2e.create_lock_table()
    holder = e2e.pod(HOLDER)
    a = e2e.arbiter(min_lock_age="1s")
    a.wait_for("lock table found")
    h, lockedby, seen = start_holder(e2e, holder, a, sleep_seconds=slow)
    held_until = seen
    while h.running():
        row = e2e.row()
        if row[0]:
            assert row[1] == lockedby, row  # never released, never another holder
            held_until = time.monotonic()
        time.sleep(0.2)
    assert h.wait(10) == 0, h.log_tail()
    assert LB_RELEASED in h.log()
    a.wait_for("lock freed", lockedby=lockedby)
    rec = a.wait_for("verdict", verdict="held", reason="held_container_running")
    assert a.count("lock released") == 0
    assert a.count("verdict", verdict="orphaned") == 0
    assert a.count("verdict", verdict="unresolved") == 0
    assert held_until - seen >= slow - 3, "the lock was watched only %.1f s" % (
        held_until - seen)
    assert e2e.applied() == ["1-slow", "2-trivial"]
    assert e2e.row() == (False, None, None)
    e2e.record("c_live_slow", observed_held_s=held_until - seen, pg_sleep_s=slow,
               min_lock_age="1s", lockedby=lockedby, verdict=rec["explanation"])


def test_d_extension_format_namespace_pod_deleted(e2e):
    # No table beforehand: Liquibase creates it, and no arbiter watches yet.
    holder = e2e.pod(HOLDER)
    h, lockedby, _ = start_holder(e2e, holder, None)
    kill_holder(e2e, h, lockedby)
    # What the Kubernetes-Liquibase-Lock-Release extension would have written.
    ext = "%s:%s" % (NAMESPACE, holder.name)
    assert e2e.pg.psql("UPDATE databasechangeloglock SET lockedby = %s WHERE id = 1 AND locked"
                       " RETURNING 1" % quote_literal(ext), e2e.db).strip() == "1"

    a = e2e.arbiter("--terminate-orphaned-sessions")
    a.wait_for("lock held", lockedby=ext)
    held = a.wait_for("verdict", verdict="held", reason="held_container_running")
    time.sleep(1.5)  # past --min-lock-age: the pod is there, its container runs
    assert e2e.row()[1] == ext and a.count("lock released") == 0

    mark = a.mark()
    e2e.sim.delete_pod(NAMESPACE, holder.name)
    t_delete = time.monotonic()
    rec, t_release = released(a, ext, "O1_pod_deleted", start=mark)
    assert "pod %s/%s is gone" % (NAMESPACE, holder.name) in rec["evidence"], rec
    assert e2e.row() == (False, None, None)

    # The freed lock works: the next Liquibase migrates.
    nxt = e2e.liquibase(e2e.pod(WAITER), sleep_seconds=0, name="next")
    assert nxt.wait(90) == 0, nxt.log_tail()
    assert e2e.applied() == ["1-slow", "2-trivial"]
    e2e.record("d_namespace_pod_format", delete_to_release_s=t_release - t_delete,
               lockedby=ext, liquibase_lockedby=lockedby, held_verdict=held["explanation"],
               rule=rec["rule"], evidence=rec["evidence"])


def test_e_new_york_jvm_across_an_arbiter_restart(e2e):
    zone = "America/New_York"
    e2e.create_lock_table()
    holder = e2e.pod(HOLDER)
    a1 = e2e.arbiter(name="arbiter-1")
    a1.wait_for("lock table found")
    h, lockedby, _ = start_holder(e2e, holder, a1, java_opts=["-Duser.timezone=" + zone])
    # LOCKGRANTED is New York wall-clock time: hours behind UTC (5 h in winter).
    offset = float(e2e.pg.psql(
        "SELECT extract(epoch FROM lockgranted - (now() AT TIME ZONE 'UTC'))"
        " FROM databasechangeloglock WHERE id = 1", e2e.db))
    expected = ZoneInfo(zone).utcoffset(datetime.datetime.now()).total_seconds()
    assert abs(offset - expected) < 120, (offset, expected)
    a1.wait_for("verdict", verdict="held", reason="held_container_running")
    time.sleep(1.5)  # past --min-lock-age
    assert e2e.row()[1] == lockedby and a1.count("lock released") == 0
    assert a1.stop() == 0

    # A new arbiter meets a lock it never saw taken: still held.
    a2 = e2e.arbiter(name="arbiter-2")
    a2.wait_for("lock held", lockedby=lockedby)
    seen2 = time.monotonic()
    a2.wait_for("verdict", verdict="held", reason="held_container_running")
    until(seen2 + AFTER_SEEN)
    assert e2e.row()[1] == lockedby and h.running()
    assert a2.count("lock released") == 0

    mark = a2.mark()
    t_kill = kill_holder(e2e, h, lockedby)
    e2e.sim.restart(NAMESPACE, holder.name, container="app")
    end_dead_backends(e2e)
    rec, t_release = released(a2, lockedby, "O4_container_restarted", start=mark)
    assert e2e.row() == (False, None, None)
    e2e.record("e_new_york_jvm", lockgranted_offset_h=offset / 3600,
               kill_to_release_s=t_release - t_kill, lockedby=lockedby, rule=rec["rule"])


def test_f_host_description(e2e):
    e2e.create_lock_table()
    holder = e2e.pod(HOLDER)
    a = e2e.arbiter()
    a.wait_for("lock table found")
    h, lockedby, seen = start_holder(e2e, holder, a,
                                     java_opts=["-Dliquibase.hostDescription=blue"],
                                     description="blue")
    a.wait_for("verdict", verdict="held", reason="held_container_running")
    until(seen + AFTER_SEEN)

    mark = a.mark()
    t_kill = kill_holder(e2e, h, lockedby)
    e2e.sim.restart(NAMESPACE, holder.name, container="app")
    end_dead_backends(e2e)
    rec, t_release = released(a, lockedby, "O4_container_restarted", start=mark)
    assert e2e.row() == (False, None, None)
    e2e.record("f_host_description", kill_to_release_s=t_release - t_kill,
               lockedby=lockedby, rule=rec["rule"])
