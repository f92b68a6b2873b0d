#!/usr/bin/env python3
"""The demo: lock-arbiter against a real PostgreSQL and real Liquibase.

A migration runs in a pod, is killed mid-migration (kill -9, as the OOM killer
or a failing liveness probe does), and leaves Liquibase's lock behind; a second
migration is already waiting for it. The pod is then evicted: the Kubernetes API
is SIMULATED (tests/k8s_sim) and reports it gone, as a real one would. The dead
pod's PostgreSQL backend is still running its changeset (the server notices a
vanished client only when it next writes to it), so lock-arbiter first keeps
the lock (the session guard), then, with --terminate-orphaned-sessions, ends
that backend (its transaction rolls back), releases the lock with a
compare-and-set, and the waiting migration completes. The status page and
/metrics stay up until Ctrl-C (--exit ends at once, for scripts).

As root, each Liquibase runs in its own network, UTS and mount namespaces, so
LOCKEDBY is exactly what a pod writes; otherwise this machine is the pod.

--mariadb tells the same story on a real MariaDB 10.11 (MariaDB.intro below).
"""
import argparse
import os
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s_sim"))
os.environ.setdefault("LOCK_ARBITER_BIN", os.path.join(ROOT, "build", "daemon", "lock-arbiter"))
os.environ.setdefault("LOCK_ARBITER_FIXTURES", os.path.join(ROOT, "tests", "fixtures"))

from arbiter_proc import Arbiter  # noqa: E402
from harness import (LB_ACQUIRED, LB_SLOW_STARTED, LB_WAITING, NAMESPACE, E2E,  # noqa: E402
                     E2EPgServer, Liquibase, PodNetwork, Unavailable, until,
                     netns_unavailable_reason)
from mariadb_harness import E2EMariaDBServer, MariaDBWorld  # noqa: E402
from simctl import Sim  # noqa: E402

HOLDER = "orders-7d9f8c6b5-x2x7q"
WAITER = "orders-7d9f8c6b5-b8k2m"
T0 = time.monotonic()
INTRO = __doc__.split("\n\n")[1]


def say(text):
    print("[%6.2fs] %s" % (time.monotonic() - T0, text), flush=True)


class PostgreSQL:
    """The demo's database: what differs between the backends."""
    intro = INTRO
    slow = "SELECT pg_sleep(60)"
    blind = ("(without network namespaces PostgreSQL sees this machine's address, not the "
             "pod's: the session guard has nothing to hold)")

    server_class = E2EPgServer

    def start(self, net):
        self.server = self.server_class(extra_listen=net.gateway if net else None)
        self.server.start()
        say(self.started())
        return self.server

    def started(self):
        return ("PostgreSQL 15 started on 127.0.0.1:%d (a real server, temporary directory)"
                % self.server.port)

    def world(self, **kw):
        return E2E(pg=self.server, **kw)

    def before_kill(self, slow_started):
        pass

    def terminated(self, t):
        return ("--terminate-orphaned-sessions: backend pid %s from %s ended (%s); its "
                "transaction rolls back" % (t["pid"], t["client_addr"], t["query"][:60]))

    def ended_alone(self):
        return None  # pg_sleep runs on until it is ended


class MariaDB(PostgreSQL):
    intro = ("The same story on a real MariaDB 10.11 (`--database mariadb://...`). A "
             "migration runs in a pod, is killed mid-migration (kill -9) and leaves "
             "Liquibase's lock behind, a second migration waiting for it. The pod is evicted "
             "(the Kubernetes API is SIMULATED). The dead pod's connection is still running "
             "its changeset on the server (DO SLEEP(60); an ALTER TABLE would too), so "
             "lock-arbiter first keeps the lock, seen in information_schema.PROCESSLIST, "
             "then, with --terminate-orphaned-sessions, kills that connection (KILL "
             "CONNECTION: InnoDB rolls its transaction back), releases the lock with a "
             "compare-and-set, and the waiting migration completes.")
    slow = "DO SLEEP(60)"
    blind = ("(without network namespaces MariaDB sees 127.0.0.1 for every client, not the "
             "pod's address: the session guard has nothing to hold)")

    server_class = E2EMariaDBServer

    def start(self, net):
        super().start(net)
        # What --terminate-orphaned-sessions needs, besides the lock table's
        # SELECT, UPDATE (create_lock_table) and PROCESS (every account's sessions).
        self.server.sql("GRANT CONNECTION ADMIN ON *.* TO 'lock_arbiter'@'%'")
        say("its account lock_arbiter may: SELECT, UPDATE the lock table; PROCESS (the "
            "session guard); CONNECTION ADMIN (--terminate-orphaned-sessions)")
        return self.server

    def started(self):
        return ("MariaDB %s started on 127.0.0.1:%d (a real server, temporary directory, "
                "skip-name-resolve)" % (self.server.version.split("-")[0], self.server.port))

    def world(self, **kw):
        return MariaDBWorld(maria=self.server, **kw)

    def before_kill(self, slow_started):
        # MariaDB's SLEEP looks every 5 s whether its client is still there: the
        # kill comes just after such a look, so that the statement outlives it.
        until(slow_started + 5 * (int((time.monotonic() - slow_started) / 5) + 1) + 0.5)

    def terminated(self, t):
        return ("--terminate-orphaned-sessions: connection %s from %s killed (KILL CONNECTION; "
                "it ran %s); InnoDB rolls its transaction back"
                % (t["pid"], t["client_addr"], t["query"][:60]))

    def ended_alone(self):
        return ("MariaDB ended the dead client's DO SLEEP itself (SLEEP looks every 5 s "
                "whether its client is there; an ALTER TABLE or an UPDATE would not)")


def port_free(port):
    import socket
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_terminated(arbiter, mark, may_end_alone):
    """The arbiter's "holder session terminated" record; None when the session
    ended by itself first (may_end_alone) and the lock was released."""
    deadline = time.monotonic() + 30
    while may_end_alone and time.monotonic() < deadline:
        if arbiter.count("holder session terminated") > 0:
            break
        if arbiter.count("lock released") > 0:
            return None
        time.sleep(0.02)
    return arbiter.wait_for("holder session terminated", start=mark, timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exit", action="store_true", help="end after the story (for scripts)")
    ap.add_argument("--port", type=int, default=9479, help="status page port (default 9479)")
    ap.add_argument("--mariadb", action="store_true",
                    help="the same story on MariaDB 10.11 instead of PostgreSQL")
    args = ap.parse_args()
    db = MariaDB() if args.mariadb else PostgreSQL()

    print(db.intro.replace("\n", " ") + "\n", flush=True)
    try:
        lb = Liquibase.locate()
    except Unavailable as e:
        print("demo: real Liquibase is not available: %s" % e, file=sys.stderr)
        return 1
    say("Liquibase 4.28 ready (%s)" % lb.java_text)

    stack = []
    try:
        workdir = os.path.join("/tmp", "lock-arbiter-demo-%d" % os.getpid())
        os.makedirs(workdir, exist_ok=True)
        net = None
        why = netns_unavailable_reason()
        if why is None:
            os.makedirs(os.path.join(workdir, "pods"), exist_ok=True)
            net = PodNetwork(os.path.join(workdir, "pods")).setup()
            stack.append(net.cleanup)
            say("pods: network namespaces on %s (%s)" % (net.bridge, net.subnet))
        else:
            say("pods: this machine stands in for the pod (%s)" % why)
        pg = db.start(net)
        stack.append(pg.stop)
        sim = Sim(os.path.join(workdir, "sim"), namespaces=[NAMESPACE]).start()
        stack.append(sim.stop)
        say("SIMULATED Kubernetes API at %s (namespace %s) — not a real cluster" %
            (sim.url, NAMESPACE))
        pg.create_database("orders")
        world = db.world(lb=lb, sim=sim, net=net, db="orders", workdir=workdir, name="demo")
        stack.append(world.cleanup)
        world.create_lock_table()

        port = args.port if port_free(args.port) else 0
        arbiter = Arbiter(["run", "--database", pg.dsn("orders"), "--poll-interval", "500ms",
                           "--clock-skew", "1s", "--min-lock-age", "2s",
                           "--kube-api", sim.url, "--kube-token-file", sim.token_file,
                           "--kube-ca-file", sim.ca, "--holder-namespace", NAMESPACE,
                           "--holder-container", "app", "--terminate-orphaned-sessions",
                           "--listen", "127.0.0.1:%d" % port],
                          name="lock-arbiter").start()
        stack.append(arbiter.stop)
        port = arbiter.wait_for("http listening")["port"]
        arbiter.wait_for("lock table found")
        say("lock-arbiter running (poll 500ms): status page http://127.0.0.1:%s/" % port)

        holder_pod = world.pod(HOLDER)
        holder = world.liquibase(holder_pod, sleep_seconds=60, name="holder")
        lockedby = world.wait_locked(holder)
        world.learn(holder_pod, lockedby)
        say("lock taken by %r: pod %s/%s, container app" % (lockedby, NAMESPACE, holder_pod.name))
        slow_started = holder.wait_log(LB_SLOW_STARTED, timeout=60)
        say("migration 1-slow running (%s)" % db.slow)
        waiter_pod = world.pod(WAITER)
        waiter = world.liquibase(waiter_pod, sleep_seconds=0, name="waiter")
        waiter.wait_log(LB_WAITING, timeout=60)
        say("a second Liquibase (pod %s) waits for the lock" % waiter_pod.name)
        v = arbiter.wait_for("verdict", reason="held_container_running", timeout=30)
        say("lock-arbiter keeps the lock: %s" % v["explanation"])
        time.sleep(2.5)
        db.before_kill(slow_started)

        mark = arbiter.mark()
        holder.kill(signal.SIGKILL)
        holder.wait(10)
        t_kill = time.monotonic()
        say("container app of %s killed (SIGKILL) mid-migration; the lock stays: %r" %
            (holder_pod.name, world.row()[1]))
        sim.delete_pod(NAMESPACE, holder_pod.name)
        say("the pod is evicted: the (simulated) API no longer knows %s" % holder_pod.name)
        if holder_pod.kind == "netns":
            v = arbiter.wait_for("verdict", reason="held_session_alive", start=mark, timeout=30)
            say("lock-arbiter keeps the lock: %s" % v["explanation"])
            t = wait_terminated(arbiter, mark, db.ended_alone() is not None)
            say(db.terminated(t) if t else db.ended_alone())
        else:
            say(db.blind)
        rec = arbiter.wait_for("lock released", start=mark, timeout=30)
        t_rel = time.monotonic()
        say("lock released %d ms after the kill, by rule %s: %s" %
            ((t_rel - t_kill) * 1000, rec["rule"], rec["evidence"]))
        waiter.wait_log(LB_ACQUIRED, timeout=60)
        say("the waiting Liquibase acquired the lock")
        if waiter.wait_exit(120) != 0:
            say("the waiting Liquibase failed:\n" + waiter.log_tail())
            return 1
        say("the waiting migration completed %.1f s after the kill; changesets applied: %s" %
            (time.monotonic() - t_kill, ", ".join(world.applied())))
        events = sim.events(NAMESPACE)
        if events:
            say("Kubernetes Event %s on pod %s: %s" % (events[-1]["reason"],
                events[-1]["involvedObject"]["name"], events[-1]["message"][:120]))
        print("\n  status page  http://127.0.0.1:%s/\n  metrics      http://127.0.0.1:%s/metrics"
              "\n  locks        http://127.0.0.1:%s/locks\n" % (port, port, port), flush=True)
        if args.exit:
            return 0
        print("Ctrl-C ends the demo.", flush=True)
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        while arbiter.proc.poll() is None:
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for undo in reversed(stack):
            try:
                undo()
            except Exception as e:  # cleanup goes on whatever one step says
                print("demo: cleanup: %s" % e, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
