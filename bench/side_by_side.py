#!/usr/bin/python3
"""Side by side on MariaDB: the fix users write today (a time threshold),
Liquibase alone, and lock-arbiter, each facing (a) a live migration longer
than the threshold and (b) a migrating pod killed midway, with a second
Liquibase waiting for the lock. One markdown table, one JSON document.

    bash bench/side_by_side.sh            (builds the binary, then runs this)
    /usr/bin/python3 bench/side_by_side.py [--no-write] [--only a,b]
                                           [--policies alone,threshold,arbiter,
                                                       arbiter_terminate]

Everything is real except Kubernetes: MariaDB 10.11
(tests/integration/mariadbserver.py), Liquibase 4.28 with its bundled MariaDB
JDBC driver, two pods as network namespaces (tests/e2e/harness.py; as root),
and the simulated Kubernetes API (tests/k8s_sim) that only lock-arbiter asks.
Timings are scaled down; bench/README.md ("Side by side on MariaDB") says how
and what each figure means. Nothing asserts; a figure that was not measured
says so and why.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
for sub in ("integration", "k8s_sim", "e2e"):
    sys.path.insert(0, os.path.join(ROOT, "tests", sub))

import pymysql  # noqa: E402  (Debian: python3-pymysql)

from arbiter_proc import BIN, DEAD_API, run as arbiter_run  # noqa: E402
from harness import (LB_ACQUIRED, LB_RELEASED, LB_SLOW_STARTED, LB_WAITING,  # noqa: E402
                     NAMESPACE, Liquibase, PodNetwork, Unavailable,
                     netns_unavailable_reason)
from mariadb_harness import E2EMariaDBServer, LB_LOCK_FAILED, MariaDBWorld  # noqa: E402
from mariadbserver import APP_USER, ARBITER_USER, LOCK_TABLE, quote_literal  # noqa: E402
from simctl import Sim  # noqa: E402

# The scaled-down settings (README: "Side by side on MariaDB").
THRESHOLD_S = 20     # N: the policy releases a lock granted more than N s ago
PERIOD_S = 5         # P: ... checking every P s, as a CronJob every few minutes
MIGRATION_S = 35     # the slow changeset (DO SLEEP) of every run: longer than N
# (b): the holder is killed KILL_AFTER_S into its slow statement (DO SLEEP, as
# the server lists it), or a multiple of SLEEP_CHECK_S later, once the waiter
# waits. MariaDB's SLEEP() ends when its client is gone, looking every 5 s:
# just after a look, the dead pod's statement runs about 4.5 s on.
KILL_AFTER_S = 5.5
SLEEP_CHECK_S = 5.0
WAIT_MINUTES = 1     # Liquibase's changelogLockWaitTimeInMinutes: whole minutes only
POLL_RATE_S = 1      # Liquibase's changelogLockPollRate (its default is 10 s)
CUTOFF_S = 150       # a run is cut off after this long
HOLDER = "orders-7d9f8c6b5-x2x7q"
WAITER = "orders-7d9f8c6b5-b8k2m"

THRESHOLD_SQL = ("UPDATE DATABASECHANGELOGLOCK SET LOCKED=0, LOCKGRANTED=NULL, LOCKEDBY=NULL"
                 " WHERE ID=1 AND LOCKGRANTED < NOW() - INTERVAL %d SECOND" % THRESHOLD_S)
NOT_BUILT = "not yet measured: the MariaDB backend is not built"
SCENARIOS = {
    "a": "(a) live migration of %d s, longer than the threshold" % MIGRATION_S,
    "b": "(b) migrating pod killed %.1f s into its migration" % KILL_AFTER_S,
}
T0 = time.monotonic()


def progress(msg):
    print("[side-by-side %s +%5.1fs] %s" % (time.strftime("%H:%M:%S"), time.monotonic() - T0,
                                           msg), flush=True)


class NotMeasured(Exception):
    """A policy that cannot run here; str() says why (printed in its column)."""


# -- policies -----------------------------------------------------------------------
# A policy is started on a world before the holder takes the lock and stopped
# when the run is over; `releases` lists the releases it made itself
# (monotonic time, what it logged), if it can tell.

class LiquibaseAlone:
    key, title = "alone", "Liquibase alone"

    def __init__(self, world):
        self.releases = []

    def stop(self):
        pass


class TimeThreshold:
    """The CronJob users write: every PERIOD_S, THRESHOLD_SQL through a new
    client connection (the mariadb client, as a CronJob's container would)."""
    key = "threshold"
    title = "time threshold (N=%d s, every %d s)" % (THRESHOLD_S, PERIOD_S)

    def __init__(self, world):
        self.world = world
        self.releases = []
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(PERIOD_S):
            try:
                out = self.world.maria.sql(THRESHOLD_SQL + "; SELECT ROW_COUNT()", self.world.db,
                                           user=APP_USER, timeout=PERIOD_S)
            except Exception as e:  # the table may not exist yet
                out = "error: %s" % str(e).splitlines()[0]
            self.runs += 1
            if out.strip() == "1":
                self.releases.append((time.monotonic(), "released (1 row)"))

    def stop(self):
        self._stop.set()
        self._thread.join(PERIOD_S + 5)


def arbiter_support(maria, db):
    """None when lock-arbiter reads a MariaDB lock table, else why not. Tries
    it: `lock-arbiter check` on the database's mariadb:// URL."""
    if not os.access(BIN, os.X_OK):
        return "not measured: no lock-arbiter binary at %s" % BIN
    try:
        out = arbiter_run(["check", "--database", maria.dsn(db), "--kube-api", DEAD_API],
                          timeout=60)
    except subprocess.TimeoutExpired:
        return "lock-arbiter check on a mariadb:// URL did not end within 60 s"
    text = out.stdout + out.stderr
    if out.returncode in (0, 3) and LOCK_TABLE.lower() in text.lower():
        return None
    first = (out.stderr.strip() or out.stdout.strip() or "exit %d" % out.returncode)
    return "%s (lock-arbiter check on a mariadb:// URL: %s)" % (NOT_BUILT,
                                                                first.splitlines()[0][:160])


class LockArbiter:
    """lock-arbiter run on the world's database: the e2e harness's arbiter
    (E2E.arbiter: --poll-interval 200ms, --clock-skew 1s, --min-lock-age 1s,
    --holder-container app, the server's mariadb:// URL as the arbiter's
    least-privileged account: PROCESS, and SELECT, UPDATE on the lock table)
    against the simulated API, where run_once deletes the holder's pod when
    it kills it. The session guard is on (its default): a lock whose holder
    is gone is kept while a session from the holder's address still runs a
    statement. main() runs it only when arbiter_support() found the backend."""
    key, title = "arbiter", "lock-arbiter (default: the session guard waits)"
    extra = ()

    def __init__(self, world):
        self.world = world
        self.grant()
        try:
            self.proc = world.arbiter(*self.extra)
            self.proc.wait_for("lock table found", timeout=30)
        except Exception as e:
            self.revoke()
            raise NotMeasured("lock-arbiter did not start: %s" % str(e).splitlines()[0]) from e
        self.releases = []  # (monotonic time the log line was read, message)
        self.terminated = []  # (time, pid, query) of "holder session terminated"
        self.verdicts = []  # (time, reason) of each verdict logged
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stamp, daemon=True)
        self._thread.start()

    def grant(self):
        pass

    def revoke(self):
        pass

    def _stamp(self):
        """Stamps the log records as they come (every 20 ms): the daemon's
        own lines carry wall-clock time, the run's figures monotonic time."""
        while True:
            recs = self.proc.records[self._seen:]
            self._seen += len(recs)
            now = time.monotonic()
            for r in recs:
                msg = r.get("msg")
                if msg == "lock released":
                    self.releases.append((now, "lock released: %s" % r.get("rule")))
                elif msg == "holder session terminated":
                    self.terminated.append((now, r.get("pid"), r.get("query")))
                elif msg == "verdict":
                    self.verdicts.append((now, r.get("reason")))
            if self._stop.wait(0.02):
                break

    def stop(self):
        if self._stop.is_set():
            return
        if self.proc.proc is not None and self.proc.proc.poll() is None:
            self.proc.stop()
        self._stop.set()
        self._thread.join(2)
        self.revoke()


class LockArbiterTerminate(LockArbiter):
    """The same with --terminate-orphaned-sessions: the dead holder's session
    is ended (KILL CONNECTION), then the lock released. Ending another
    account's session needs CONNECTION ADMIN (MariaDB 10.5+), granted to the
    arbiter's account for this run only."""
    key = "arbiter_terminate"
    title = "lock-arbiter --terminate-orphaned-sessions (CONNECTION ADMIN)"
    extra = ("--terminate-orphaned-sessions",)

    def grant(self):
        self.world.maria.sql("GRANT CONNECTION ADMIN ON *.* TO %s@'%%'"
                             % quote_literal(ARBITER_USER))

    def revoke(self):
        self.world.maria.sql_result("REVOKE CONNECTION ADMIN ON *.* FROM %s@'%%'"
                                    % quote_literal(ARBITER_USER))


POLICIES = [LiquibaseAlone, TimeThreshold, LockArbiter, LockArbiterTerminate]
ARBITERS = ("arbiter", "arbiter_terminate")


# -- one run ----------------------------------------------------------------------------

class RowWatcher:
    """The lock row every 50 ms over one autocommit connection (root, unix
    socket): a list of (monotonic time, locked, lockedby) at each change;
    with holder_ip, also how many sessions from that address run a
    statement (PROCESSLIST, COMMAND not Sleep): (time, count) at each change."""

    def __init__(self, maria, db, holder_ip=None):
        self.conn = pymysql.connect(unix_socket=maria.socket, user="root", database=db,
                                    autocommit=True)
        self.holder_ip = holder_ip
        self.changes = []
        self.holder_statements = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        last = last_n = None
        while not self._stop.wait(0.05):
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT `LOCKED` <> 0, LOCKEDBY FROM %s WHERE ID = 1" % LOCK_TABLE)
                    row = cur.fetchone()
            except pymysql.MySQLError:
                row = None  # no table yet
            t = time.monotonic()
            state = (bool(row[0]), row[1]) if row else None
            if state != last:
                self.changes.append((t, state))
                last = state
            if self.holder_ip is None:
                continue
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE HOST"
                                " LIKE %s AND COMMAND <> 'Sleep'", (self.holder_ip + ":%",))
                    n = cur.fetchone()[0]
            except pymysql.MySQLError:
                continue
            if n != last_n:
                self.holder_statements.append((t, n))
                last_n = n

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.conn.close()


class Tracker:
    """When each Liquibase run first logged each message, and when it exited."""
    MESSAGES = (LB_WAITING, LB_ACQUIRED, LB_SLOW_STARTED, LB_RELEASED, LB_LOCK_FAILED)

    def __init__(self, runs):
        self.runs = runs
        self.seen = {r.name: {} for r in runs}
        self.exited = {}

    def poll(self):
        now = time.monotonic()
        for r in self.runs:
            log = r.log()
            for m in self.MESSAGES:
                if m not in self.seen[r.name] and m in log:
                    self.seen[r.name][m] = now
            if r.name not in self.exited and r.proc.poll() is not None:
                self.exited[r.name] = (now, r.proc.returncode)

    def at(self, run, msg):
        return self.seen[run.name].get(msg)


def last_error(run):
    for line in reversed(run.log().splitlines()):
        line = line.strip()
        if line.startswith(("ERROR:", "Unexpected error running Liquibase:")) or (
                "Exception" in line and "Reason:" in line):
            return line[:200]
    return None


def statement_start(watcher, t_slow):
    """When the holder's slow statement began on the server: the last time its
    pod's running statements rose from none, if one runs now; without the
    pods' own addresses, the changeset's log line."""
    st = watcher.holder_statements
    if watcher.holder_ip is None:
        return t_slow
    if not st or st[-1][1] == 0:
        return float("inf")
    starts = [t for k, (t, n) in enumerate(st) if n > 0 and (k == 0 or st[k - 1][1] == 0)]
    return starts[-1]


def run_once(ctx, scenario, policy_factory):
    """One scenario under one policy, on a fresh database; returns the figures."""
    maria, net, sim = ctx["maria"], ctx["net"], ctx["sim"]
    for p in sim.pods():
        sim.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"])
    db = "sbs_%s_%s" % (scenario, policy_factory.key)
    maria.create_database(db)
    workdir = tempfile.mkdtemp(prefix="side-by-side-%s-" % db, dir=ctx["workdir"])
    world = MariaDBWorld(lb=ctx["lb"], maria=maria, sim=sim, net=net, db=db, workdir=workdir,
                         name=db)
    watcher = policy = None
    try:
        # The lock table as Liquibase 4.28 creates it (an earlier deployment
        # migrated), with SELECT, UPDATE on it for the arbiter's account.
        world.create_lock_table()
        holder_pod, waiter_pod = world.pod(HOLDER), world.pod(WAITER)
        watcher = RowWatcher(maria, db, holder_ip=holder_pod.ip if world.mode == "netns"
                             else None)
        policy = policy_factory(world)
        holder = world.liquibase(holder_pod, sleep_seconds=MIGRATION_S, name="holder",
                                 lock_wait_minutes=WAIT_MINUTES, lock_poll_rate=POLL_RATE_S)
        holder.wait_log(LB_SLOW_STARTED, 120)
        t_slow = time.monotonic()
        waiter = world.liquibase(waiter_pod, sleep_seconds=MIGRATION_S, name="waiter",
                                 lock_wait_minutes=WAIT_MINUTES, lock_poll_rate=POLL_RATE_S)
        track = Tracker([holder, waiter])
        t_kill = None
        deadline = t_slow + CUTOFF_S
        while time.monotonic() < deadline:
            track.poll()
            now = time.monotonic()
            # (b): KILL_AFTER_S into the slow statement, or SLEEP_CHECK_S
            # later, once the waiter waits (a loaded machine can take longer
            # to start its JVM): the same phase against the server's check.
            since = now - statement_start(watcher, t_slow) - KILL_AFTER_S
            if scenario == "b" and t_kill is None and since >= 0 and \
                    since % SLEEP_CHECK_S < 0.15 and track.at(waiter, LB_WAITING) is not None:
                t_kill = holder.kill(signal.SIGKILL)
                holder.wait_exit(30)
                sim.delete_pod(NAMESPACE, holder_pod.name)  # as Kubernetes would
            waiter_done = "waiter" in track.exited or (
                scenario == "b" and track.at(waiter, LB_ACQUIRED) is not None)
            if waiter_done and "holder" in track.exited:
                break
            time.sleep(0.05)
        track.poll()
        cut_off = time.monotonic() >= deadline
        for r in (holder, waiter):
            if r.running():
                r.kill()
                r.wait_exit(30)
        time.sleep(0.2)
        row_end = world.row()
        policy.stop()
        watcher.stop()
        return figures(scenario, world, holder, waiter, track, watcher, policy, t_slow, t_kill,
                       cut_off, row_end)
    finally:
        for x in (policy, watcher):
            try:
                if x is not None:
                    x.stop()
            except Exception:
                pass
        world.cleanup()
        for s in world.sessions():  # the killed holder's DO SLEEP
            maria.sql_result("KILL %d" % s["ID"])


def releases_under(changes, lockedby, since, alive_until, own_release):
    """Times at which the lock row stopped being held by `lockedby` while that
    run was alive (before alive_until, None: to the end) and not by its own
    release (logged at own_release; 1 s of slack for the log)."""
    out = []
    held = False
    for t, state in changes:
        mine = bool(state and state[0] and state[1] == lockedby)
        if held and not mine and t > since:
            alive = alive_until is None or t < alive_until
            own = own_release is not None and t >= own_release - 1.0
            if alive and not own:
                out.append(t)
        held = mine
    return out


def who_released(t, policy, others):
    """Who freed the row at t: the policy (one of its releases within 0.5 s),
    or another run: its release (logged within 1 s), at the end of its update
    when it had held the lock, or as it gave up when it never had (Liquibase
    4.24 to 4.29.1 release the row on a lock timeout)."""
    if any(pt is not None and abs(pt - t) < 0.5 for pt, _ in policy.releases):
        return "the policy"
    for label, released, held in others:
        if released is not None and abs(released - t) < 1.0:
            if held:
                return "%s's release at its end (by ID, whoever holds the row)" % label
            return "%s as it gave up (4.28 releases the row on a lock timeout)" % label
    return "unknown"


def figures(scenario, world, holder, waiter, track, watcher, policy, t_slow, t_kill, cut_off,
            row_end):
    changes = watcher.changes
    lockedby = {}
    for _, st in changes:
        if st and st[0] and st[1] not in lockedby.values():
            lockedby["holder" if not lockedby else "waiter"] = st[1]
    granted_at = next((t for t, st in changes if st and st[0]), None)
    end = {r.name: track.exited.get(r.name, (None, None)) for r in (holder, waiter)}
    released = {r.name: track.at(r, LB_RELEASED) for r in (holder, waiter)}
    waiting_since = track.at(waiter, LB_WAITING)
    acquired = track.at(waiter, LB_ACQUIRED)
    timed_out = acquired is None and track.at(waiter, LB_LOCK_FAILED) is not None

    def rel(t, base):
        return None if t is None or base is None else round(t - base, 2)

    def attribution(t, who):
        others = [("the first Liquibase", released["holder"], True),
                  ("the second Liquibase", released["waiter"], acquired is not None)]
        others = [o for o in others if not o[0].endswith(who)]
        return {"after_grant_s": rel(t, granted_at), "after_kill_s": rel(t, t_kill),
                "by": who_released(t, policy, others)}

    # The holder's lock released by someone else while it ran (a) or after
    # it was killed (b: the holder is gone, its lock is orphaned).
    holder_alive_until = end["holder"][0] if scenario == "a" else None
    holder_lost = releases_under(changes, lockedby.get("holder"), t_slow - 1,
                                 holder_alive_until, released["holder"])
    waiter_lost = releases_under(changes, lockedby.get("waiter"), t_slow, end["waiter"][0],
                                 released["waiter"]) if "waiter" in lockedby else []
    applied = []
    try:
        applied = world.applied()
    except Exception:
        pass
    # (b): when the dead holder's statement (DO SLEEP) stopped running on the
    # server: the last time the count of its pod's running sessions fell to 0.
    statement_end = statement_start = None
    if t_kill is not None:
        ends = [t for t, n in watcher.holder_statements if n == 0 and t > t_kill]
        statement_end = ends[0] if ends else None
        starts = [t for t, n in watcher.holder_statements if n > 0 and t < t_kill]
        statement_start = starts[-1] if starts else None
    verdicts = {}
    for _, reason in getattr(policy, "verdicts", []):
        verdicts[reason] = verdicts.get(reason, 0) + 1
    return {
        "scenario": scenario,
        "policy": policy.key,
        "pods": world.mode,
        "lockedby": lockedby,
        "holder_lock_released": [attribution(t, "first") for t in holder_lost[:1]],
        "waiter_lock_released_under_it": [attribution(t, "second") for t in waiter_lost[:1]],
        "policy_releases_after_grant_s": [rel(t, granted_at) for t, _ in policy.releases
                                          if t is not None],
        "policy_release_messages": [m for _, m in policy.releases],
        "threshold_checks": getattr(policy, "runs", None),
        "waiter_ran_beside_holder": (acquired is not None and (
            end["holder"][0] is None or acquired < end["holder"][0])) if scenario == "a"
        else None,
        "waiter_waited_s": rel(acquired if acquired is not None else end["waiter"][0],
                               waiting_since),
        "waiter_got_lock": acquired is not None,
        "waiter_timed_out": timed_out,
        "waiter_after_kill_s": rel(acquired, t_kill) if scenario == "b" else None,
        "waiter_exit": end["waiter"][1],
        "waiter_error": last_error(waiter),
        "holder_exit": end["holder"][1],
        "holder_error": last_error(holder) if scenario == "a" else None,
        "holder_killed_after_slow_start_s": rel(t_kill, t_slow),
        "holder_killed_after_statement_start_s": rel(t_kill, statement_start),
        "changesets_recorded": applied,
        "holder_statement_ended_after_kill_s": rel(statement_end, t_kill),
        "holder_statement_ran_s": rel(statement_end, statement_start),
        "holder_statement_running_at_end": bool(watcher.holder_statements
                                                and watcher.holder_statements[-1][1] > 0)
        if watcher.holder_ip else None,
        "arbiter_verdicts": verdicts if hasattr(policy, "verdicts") else None,
        "arbiter_sessions_terminated": [
            {"after_kill_s": rel(t, t_kill), "pid": pid, "query": q}
            for t, pid, q in getattr(policy, "terminated", [])] if hasattr(policy, "terminated")
        else None,
        "lock_at_end": None if row_end is None else ("held" if row_end[0] else "free"),
        "cut_off_after_s": CUTOFF_S if cut_off else None,
        "row_changes_after_slow_start_s": [(rel(t, t_slow), st) for t, st in changes],
        "holder_statements_after_slow_start_s": [(rel(t, t_slow), n)
                                                 for t, n in watcher.holder_statements],
    }


# -- the table ---------------------------------------------------------------------------

def cell(doc, what):
    if isinstance(doc, str):
        return doc
    if what == "released":
        rels = doc["holder_lock_released"]
        if not rels:
            v = doc.get("arbiter_verdicts") or {}
            if doc["scenario"] == "a" and v:
                return "no (its verdicts: %s)" % ", ".join("`%s`" % k for k in sorted(v))
            return "no"
        r = rels[0]
        if doc["scenario"] == "a":
            return "**yes**, %.1f s after the grant, by %s" % (r["after_grant_s"], r["by"])
        out = "%.1f s after the kill (%.1f s after the grant), by %s" % (
            r["after_kill_s"], r["after_grant_s"], r["by"])
        if doc.get("arbiter_sessions_terminated"):
            out += ", after it killed the dead pod's connection"
        elif (doc.get("arbiter_verdicts") or {}).get("held_session_alive"):
            out += ", once the dead pod's statement had ended (until then: held, " \
                   "`held_session_alive`)"
        return out
    if what == "beside":
        if not doc["waiter_ran_beside_holder"]:
            return "no"
        out = ["**yes**"]
        twice = doc["changesets_recorded"].count("1-slow")
        if twice > 1:
            out.append("`1-slow` ran %d times" % twice)
        for r in doc["waiter_lock_released_under_it"]:
            out.append("the second's lock was released under it by %s" % r["by"])
        if doc["holder_error"]:
            out.append("the first failed (%s)" % short_error(doc["holder_error"]))
        if doc["waiter_error"]:
            out.append("the second failed (%s)" % short_error(doc["waiter_error"]))
        return "; ".join(out)
    if what == "wait":
        w = doc["waiter_waited_s"]
        if doc["waiter_got_lock"]:
            s = "%.1f s" % w if w is not None else "did not wait"
            if doc["scenario"] == "b":
                s += " (%.1f s after the kill)" % doc["waiter_after_kill_s"]
            elif doc["changesets_recorded"].count("1-slow") == 1 and doc["waiter_exit"] == 0:
                s += ", then nothing left to run"
            return s
        if doc["waiter_timed_out"]:
            return "gave up after %.1f s (its wait time: 1 min)" % w
        if doc["cut_off_after_s"]:
            return "> %d s (cut off), lock %s" % (doc["cut_off_after_s"], doc["lock_at_end"])
        return "exit %s after %s s" % (doc["waiter_exit"], w)
    if what == "statement":
        end = doc.get("holder_statement_ended_after_kill_s")
        if doc.get("holder_statement_running_at_end") is None:
            return "not measured (the pods have no addresses of their own)"
        if end is None:
            return "still running at the end"
        term = doc.get("arbiter_sessions_terminated") or []
        if term:
            return "ended %.1f s after the kill: the arbiter killed its connection " \
                   "(KILL CONNECTION, %.1f s after the kill)" % (end, term[0]["after_kill_s"])
        ran = doc.get("holder_statement_ran_s")
        if ran is not None and ran < MIGRATION_S - 1:
            return "ended %.1f s after the kill, %.0f s into its %d s: the server ended it " \
                   "(SLEEP checks every 5 s that its client is still there)" % (
                       end, ran, MIGRATION_S)
        return "ran to its end, %.1f s after the kill" % end
    raise ValueError(what)


def short_error(text):
    if "Table '" in text and "already exists" in text:
        return text[text.find("Table '"):text.find("already exists") + len("already exists")]
    return text[:80]


ROWS = [("a", "the live lock released", "released"),
        ("a", "the second Liquibase ran beside the first", "beside"),
        ("a", "the second Liquibase waited for the lock", "wait"),
        ("b", "the dead pod's `DO SLEEP` on the server", "statement"),
        ("b", "the dead holder's lock released", "released"),
        ("b", "the second Liquibase waited for the lock", "wait")]


def table(results, policies):
    """One markdown table: a row per figure, a column per policy; a policy
    not measured says why once, in a note under the table."""
    notes = []
    head = "| | " + " | ".join(p.title for p in policies) + " |"
    lines = [head, "|" + " --- |" * (len(policies) + 1)]
    for sc, label, what in ROWS:
        if sc not in results:
            continue
        cells = []
        for p in policies:
            doc = results[sc].get(p.key, "not run")
            if isinstance(doc, str) and doc.startswith(NOT_BUILT):
                if doc not in notes:
                    notes.append(doc)
                cells.append("%s (%d)" % (NOT_BUILT, notes.index(doc) + 1))
            else:
                cells.append(cell(doc, what))
        lines.append("| %s: %s | %s |" % (sc, label, " | ".join(cells)))
    for n, text in enumerate(notes, 1):
        lines.append("")
        lines.append("(%d) %s" % (n, text))
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="a,b", help="scenarios: a, b or a,b")
    ap.add_argument("--policies", default="alone,threshold,arbiter,arbiter_terminate")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the Liquibase logs (their directory is printed)")
    args = ap.parse_args()
    scenarios = [s for s in args.only.split(",") if s in SCENARIOS]
    wanted = args.policies.split(",")
    policies = [p for p in POLICIES if p.key in wanted]

    try:
        lb = Liquibase.locate()
    except Unavailable as e:
        raise SystemExit("side-by-side: real Liquibase is unavailable: %s" % e)
    why_no_netns = netns_unavailable_reason()
    workdir = tempfile.mkdtemp(prefix="side-by-side-")
    net = None
    if why_no_netns is None:
        net = PodNetwork(workdir).setup()
    results = {s: {} for s in scenarios}
    doc = {"bench": "side_by_side", "time": datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        with E2EMariaDBServer(extra_listen=net.gateway if net else None) as maria, \
                Sim(os.path.join(workdir, "sim"), namespaces=[NAMESPACE]) as sim:
            ctx = {"maria": maria, "net": net, "sim": sim, "lb": lb, "workdir": workdir}
            # Does lock-arbiter take a mariadb:// URL? Try it on a lock table.
            maria.create_database("probe")
            maria.create_lock_table("probe")
            arbiter_why = arbiter_support(maria, "probe")
            if arbiter_why is None and net is None:
                arbiter_why = ("not measured: without network namespaces (%s) the holder and"
                               " the waiter are one pod, this machine" % why_no_netns)
            progress("MariaDB %s on port %d; Liquibase %s; pods: %s; lock-arbiter: %s"
                     % (maria.version, maria.port, lb.home, "netns" if net else why_no_netns,
                        arbiter_why or "takes mariadb:// URLs"))
            for sc in scenarios:
                for p in policies:
                    if p.key in ARBITERS and arbiter_why:
                        results[sc][p.key] = arbiter_why
                        continue
                    progress("%s, %s ..." % (SCENARIOS[sc], p.title))
                    try:
                        r = run_once(ctx, sc, p)
                    except NotMeasured as e:
                        results[sc][p.key] = "not measured: %s" % e
                        continue
                    results[sc][p.key] = r
                    progress("  %s" % json.dumps({k: v for k, v in r.items() if k not in (
                        "row_changes_after_slow_start_s", "waiter_error", "holder_error")}))
            doc.update({
                "mariadb": maria.version, "liquibase": "npm liquibase@4.28.1 (4.28.0)",
                "java": lb.java_text, "pods": "netns" if net else "host: %s" % why_no_netns,
                "settings": {"threshold_s": THRESHOLD_S, "period_s": PERIOD_S,
                             "threshold_sql": THRESHOLD_SQL, "migration_s": MIGRATION_S,
                             "kill_after_statement_start_s": KILL_AFTER_S,
                             "kill_phase_s": SLEEP_CHECK_S,
                             "changelog_lock_wait_time_in_minutes": WAIT_MINUTES,
                             "changelog_lock_poll_rate_s": POLL_RATE_S, "cutoff_s": CUTOFF_S,
                             "arbiter": "run --poll-interval 200ms --clock-skew 1s --min-lock-age 1s"
                                        " --holder-container app (tests/e2e/harness.py"
                                        " E2E.arbiter); arbiter_terminate: the same and"
                                        " --terminate-orphaned-sessions"},
                "lock_arbiter": arbiter_why or "measured", "binary": BIN,
                "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                            "loadavg_start": open("/proc/loadavg").read().split()[:3]},
                "git": subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                      capture_output=True, text=True).stdout.strip(),
                "results": results,
            })
    finally:
        if net is not None:
            net.cleanup()
        if args.keep_logs:
            progress("logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    md = table(results, policies)
    print()
    print("Side by side on MariaDB %s, Liquibase 4.28, threshold N=%d s checked every %d s,"
          " migration %d s, waiter's lock wait 1 min (polls every %d s):\n"
          % (doc.get("mariadb", "?"), THRESHOLD_S, PERIOD_S, MIGRATION_S, POLL_RATE_S))
    print(md)
    doc["table_markdown"] = md
    if not args.no_write:
        os.makedirs(RESULTS, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for name in ("side-by-side-%s.json" % stamp, "side-by-side-latest.json"):
            with open(os.path.join(RESULTS, name), "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        print("\nwrote bench/results/side-by-side-latest.json and side-by-side-%s.json" % stamp)


if __name__ == "__main__":
    main()
