"""`lock-arbiter run` against a real PostgreSQL: one log line per change,
advisory-lock leadership between processes, surviving a PostgreSQL
restart, and a prompt clean exit on SIGTERM. The Kubernetes API here is an
address where nothing listens, so every holder stays HELD."""
import json
import signal
import time

from arbiter_proc import DEAD_API, Arbiter


def daemon(pg, db, *extra, name="arbiter"):
    return Arbiter(["run", "--database", pg.dsn(db), "--poll-interval", "100ms",
                    "--kube-api", DEAD_API, "--listen", "127.0.0.1:0"] + list(extra), name=name)


def test_logs_one_line_per_change(pg, db):
    pg.create_lock_table(db)
    with daemon(pg, db) as a:
        a.wait_for("database up")
        a.wait_for("lock table found", schema="public", table="databasechangeloglock")
        pg.lock(db, lockedby="web-0 (10.0.0.1)")
        held = a.wait_for("lock held", lockedby="web-0 (10.0.0.1)")
        assert held["database"] == "127.0.0.1:%d/%s" % (pg.port, db)
        assert held["holder"].startswith("host web-0")
        a.wait_for("verdict", reason="held_kubernetes_unknown")
        time.sleep(0.5)  # several polls: no new lines for the same state
        assert a.count("lock held") == 1
        assert a.count("verdict") == 1
        pg.unlock(db)
        a.wait_for("lock freed", lockedby="web-0 (10.0.0.1)")
        assert a.stop() == 0
    # The lock was never released by the arbiter.
    assert a.count("lock released") == 0


def test_json_log_format(pg, db):
    pg.create_lock_table(db)
    pg.lock(db, lockedby='x"\ny')
    with daemon(pg, db, "--log-format", "json") as a:
        rec = a.wait_for("lock held")
        assert rec["lockedby"] == 'x"\ny'
        assert all(line.startswith("{") for line in a.lines)
        for line in a.lines:
            json.loads(line)


def test_sigterm_exits_0_within_2s(pg, db):
    pg.create_lock_table(db)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with Arbiter(["run", "--database", pg.dsn(db), "--poll-interval", "30s",
                      "--kube-api", DEAD_API, "--listen", "127.0.0.1:0"]) as a:
            a.wait_for("database up")
            t0 = time.monotonic()
            assert a.stop(sig, timeout=5) == 0
            assert time.monotonic() - t0 < 2.0
            a.wait_for("stopping")


def test_advisory_leadership_moves_when_the_leader_dies(pg, db):
    pg.create_lock_table(db)
    first = daemon(pg, db, name="first").start()
    try:
        first.wait_for("leadership acquired")
        second = daemon(pg, db, name="second").start()
        try:
            second.wait_for("database up")
            time.sleep(0.5)
            assert second.count("leadership acquired") == 0
            first.proc.kill()  # SIGKILL: no goodbye, the session just ends
            first.proc.wait()
            second.wait_for("leadership acquired", timeout=10)
        finally:
            second.stop()
    finally:
        first.stop()


def test_leader_election_none_makes_every_arbiter_act(pg, db):
    pg.create_lock_table(db)
    with daemon(pg, db, "--leader-election", "none", name="a") as a, \
            daemon(pg, db, "--leader-election", "none", name="b") as b:
        a.wait_for("database up")
        b.wait_for("database up")
        time.sleep(0.3)
        # Neither takes the advisory lock: no leadership lines at all.
        assert a.count("leadership acquired") == 0 and b.count("leadership acquired") == 0
        out = pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", db)
        assert out.strip() == "0"


def test_survives_a_postgresql_restart(pg, db):
    pg.create_lock_table(db)
    with daemon(pg, db) as a:
        a.wait_for("database up")
        mark = a.mark()
        pg.stop()
        a.wait_for("database down", start=mark)
        time.sleep(1.0)
        pg.start()
        a.wait_for("database up", start=mark, timeout=30)
        a.wait_for("leadership acquired", start=mark, timeout=10)
        pg.lock(db, lockedby="web-1 (10.0.0.2)")
        a.wait_for("lock held", start=mark, lockedby="web-1 (10.0.0.2)")
        assert a.proc.poll() is None
