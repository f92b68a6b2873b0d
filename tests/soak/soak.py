#!/usr/bin/env python3
"""The soak of DESIGN.md section 9 ("days of running: memory flat, no
descriptor growth, no crash") and issue 9 part 3.

The real lock-arbiter binary, built with -Dtest_hooks=true and
-Dmysql=enabled and run under AddressSanitizer/UBSan or valgrind, watches
three databases on two real PostgreSQL 15 servers and two databases on a real
MariaDB 10.11 (one --database URL, the other through --schema), and asks
the simulated Kubernetes API (tests/k8s_sim) about the holders, with
compressed intervals: polls every 50-100 ms, the cluster identity re-checked
every 2 s and the token re-read every 1 s (LOCK_ARBITER_TEST_INTERVALS,
honoured only by test-hook builds). A seeded random workload runs meanwhile:

- Liquibase-style locks taken by live pods (NS:POD, HOST (ADDR), HOST#DESC
  (ADDR) and StatefulSet FQDN holders) and released by their owner; the
  arbiter must never release one (the owner's release is a compare-and-set
  on its own LOCKEDBY, so a stolen lock is caught);
- orphans the arbiter must release: the holder pod deleted, recreated under
  its name, Failed, its container restarted or crash-looping;
- unresolvable holders the arbiter must keep;
- lock tables and whole tenant schemas created and dropped all the time;
- on MariaDB, on a clock of its own: live, orphaned and unresolvable locks on
  lock tables in the three LOCKED forms Liquibase created (BIT(1),
  TINYINT(1), TINYINT), the tables dropped and created again in another
  form, the tenant database dropped and created again;
- the service-account token rotated, API faults injected and removed, watches
  expired, reset and compacted, each database server (MariaDB first)
  restarted, fast or crashed, during the run;
- /healthz /readyz /metrics /locks / scraped every 100 ms on a thread.

RSS (VmRSS) and open descriptors of the arbiter are sampled every few seconds.
Checks: no crash, no sanitizer or valgrind report, exit 0 within 2 s of
SIGTERM, /healthz 200 on every scrape, every orphan released with the rule
its death calls for, nothing else released, released_total in /metrics equal
to the orphans, RSS and descriptors flat (see check_flat), and the same
descriptor count at a quiet point after warm-up and at the end; on MariaDB
besides: live and orphaned locks in every LOCKED form, tables and the tenant
database churned, the server restarted, its releases counted in /metrics.

The --schema list applies to every --database: on PostgreSQL it names the
schemas watched (instead of every schema), on MariaDB the databases watched
besides the URL's. So the list is the workload's tenants, one list meaning
something on both backends: the PostgreSQL schemas public and tenant_0..5,
and the MariaDB tenant database tenant_0 (the other names have no MariaDB
database; the URL's database soak_m1 is not in the list).

    tests/soak/soak.py --bin build-soak-asan/daemon/lock-arbiter --minutes 10
    tests/soak/soak.py --bin build-soak/daemon/lock-arbiter --valgrind --minutes 4

Ends with "soak: N passed, M failed"; exit status 0 only when nothing failed.
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s_sim"))

from arbiter_proc import Arbiter, clean_env  # noqa: E402
from mariadbserver import (LOCK_FORMS, LOCK_TABLE as MARIA_TABLE,  # noqa: E402
                           MariaDBServer, MariaDBServerError,
                           quote_ident as maria_ident, quote_literal as maria_literal)
from pgserver import PgServer, PgServerError, quote_ident, quote_literal  # noqa: E402
from simctl import Sim, SimError  # noqa: E402

NS = "shop"          # holder namespace
OWN_NS = "ops"       # the arbiter's own pod
OWN_POD = "lock-arbiter-0"
TABLE = "databasechangeloglock"
# The --schema list (see the module's comment): PostgreSQL's schemas, and the
# names of MariaDB's tenant databases.
SCHEMAS = ["public"] + ["tenant_%d" % i for i in range(6)]
MARIA_DB = "soak_m1"         # the MariaDB URL's database
MARIA_TENANT = "tenant_0"    # a MariaDB database watched through --schema
assert MARIA_TENANT in SCHEMAS
MIB = 1024 * 1024

# The release rules each way of killing a holder can lead to (DESIGN.md 6).
EXPECTED_RULES = {
    "delete": {"O1_pod_deleted"},
    # A watch sees the DELETED event of a recreation before the new pod: O1;
    # the poll's GET (no watch, or its stream down) sees the new uid: O2.
    "recreate": {"O1_pod_deleted", "O2_pod_replaced"},
    "failed": {"O3_pod_finished"},
    "restart": {"O4_container_restarted", "O4_no_live_container"},
    "crashloop": {"O4_container_not_running"},
}

# Reasons that show the arbiter has seen the holder pod alive (a snapshot old
# enough to judge), the precondition for O1 of a HOST holder and for O2.
SEEN_ALIVE = {"held_container_running", "held_other_container_running"}

# API faults injected now and then on the holder lookups (section 9 table):
# each must leave dead holders' locks in place until it is removed.
FAULTS = [
    ("status", {"code": 500}),
    ("status", {"code": 503}),
    ("status", {"code": 429, "retry_after": 1}),
    ("status", {"code": 504}),
    ("reset", {"mode": "rst"}),
    ("reset", {"mode": "close"}),
    ("malformed", {"variant": "truncated"}),
    ("malformed", {"variant": "wrong_types"}),
    ("malformed", {"variant": "not_json"}),
    ("malformed", {"variant": "empty"}),
    ("oversized", {}),
    ("unauthorized", {}),
    ("forbidden", {}),
    ("latency", {"ms": 300}),
    ("hang", {"times": 1}),
    ("expired", {"watch": True}),
]
WATCH_OPS = ["expire", "close_end", "close_rst", "compact", "bookmark"]


def now():
    return time.monotonic()


class Failures:
    """Named checks; each records pass or fail with a detail."""

    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def check(self, name, ok, detail=""):
        with self.lock:
            self.results.append((name, bool(ok), detail))
        print("soak: %s %s%s" % ("PASS" if ok else "FAIL", name,
                                 (": " + detail) if detail else ""), flush=True)
        return ok

    def counts(self):
        passed = sum(1 for _, ok, _ in self.results if ok)
        return passed, len(self.results) - passed


# -- the arbiter process ---------------------------------------------------------

class SoakArbiter(Arbiter):
    """arbiter_proc.Arbiter with a binary of our choice and an optional
    wrapper (valgrind); stderr lines are kept and parsed as there."""

    def __init__(self, binary, args, env, wrapper=()):
        super().__init__(args, env=env, name="soak-arbiter")
        self.binary = binary
        self.wrapper = list(wrapper)

    def start(self):
        self.proc = subprocess.Popen(self.wrapper + [self.binary] + self.args,
                                     env=clean_env(self.env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors="replace")
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        return self

    def records_since(self, start):
        with self._cond:
            return list(self.records[start:]), len(self.records)


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# -- /metrics and /locks ----------------------------------------------------------

LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if not m:
            raise ValueError("bad metrics line: %r" % line)
        labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Scraper(threading.Thread):
    """Scrapes every endpoint every `period` seconds, for the whole soak.

    Keeps the latest /locks by (database, schema, table) for the workload, and
    adds up lock_arbiter_locks_released_total the way Prometheus' increase()
    does: a series of a dropped table disappears, one of a recreated table
    starts again from 0, so each series contributes its increases, and a
    decrease counts as a reset."""

    PATHS = ["/healthz", "/readyz", "/metrics", "/locks", "/"]

    def __init__(self, port, period, failures):
        super().__init__(daemon=True, name="scraper")
        self.port = port
        self.period = period
        self.failures = failures
        self.stop_flag = threading.Event()
        self.mu = threading.Lock()
        self.counts = collections.Counter()       # (path, status)
        self.healthz_bad = []                     # (time, status or error)
        self.errors = []
        self.rounds = 0
        self.requests = 0
        self.locks = {}
        self.locks_time = 0.0
        self.metrics_started = 0.0                # start of the last good /metrics scrape
        self.released_last = {}                   # series labels -> last value
        self.released_sum = 0.0
        self.released_by_db = collections.Counter()  # the same sum by database label
        self.last_metrics = {}
        self.readyz_503 = 0

    def get(self, path, method="GET"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def run(self):
        while not self.stop_flag.is_set():
            t0 = now()
            for path in self.PATHS:
                started = now()
                try:
                    status, body = self.get(path)
                except (OSError, http.client.HTTPException) as e:
                    status, body = "error: %s" % e, b""
                with self.mu:
                    self.requests += 1
                    self.counts[(path, status)] += 1
                if path == "/healthz" and status != 200:
                    with self.mu:
                        self.healthz_bad.append((time.strftime("%H:%M:%S"), status))
                if status != 200 and path != "/readyz":
                    continue
                try:
                    if path == "/metrics":
                        self.take_metrics(started, body.decode())
                    elif path == "/locks":
                        self.take_locks(body)
                    elif path == "/readyz" and status == 503:
                        with self.mu:
                            self.readyz_503 += 1
                except (ValueError, KeyError) as e:
                    with self.mu:
                        self.errors.append("%s: %s" % (path, e))
            # Every round also HEAD and a POST (405), as clients will.
            if self.rounds % 10 == 0:
                for method, path, want in (("HEAD", "/healthz", 200), ("POST", "/metrics", 405)):
                    try:
                        status, _ = self.get(path, method)
                    except (OSError, http.client.HTTPException) as e:
                        status = "error: %s" % e
                    with self.mu:
                        self.requests += 1
                        self.counts[(method + " " + path, status)] += 1
                        if status != want:
                            self.errors.append("%s %s: %s" % (method, path, status))
            with self.mu:
                self.rounds += 1
            left = self.period - (now() - t0)
            if left > 0:
                self.stop_flag.wait(left)

    def take_metrics(self, started, text):
        m = parse_metrics(text)
        with self.mu:
            for (name, labels), value in m.items():
                if name != "lock_arbiter_locks_released_total":
                    continue
                last = self.released_last.get(labels)
                if last is None or value < last:
                    add = value  # new, or reset: the table came back
                else:
                    add = value - last
                self.released_sum += add
                self.released_by_db[dict(labels).get("database")] += add
                self.released_last[labels] = value
            # A series that is gone (its table dropped) starts from 0 if it returns.
            present = {labels for (name, labels) in m
                       if name == "lock_arbiter_locks_released_total"}
            for labels in list(self.released_last):
                if labels not in present:
                    del self.released_last[labels]
            self.metrics_started = started
            self.last_metrics = m

    def take_locks(self, body):
        doc = json.loads(body)
        items = doc["locks"] if isinstance(doc, dict) else doc
        locks = {(l["database"], l["schema"], l["table"]): l for l in items}
        with self.mu:
            self.locks = locks
            self.locks_time = now()

    def lock_entry(self, key):
        with self.mu:
            return self.locks.get(key)

    def metrics_after(self, t):
        with self.mu:
            return self.metrics_started > t

    def stop(self):
        self.stop_flag.set()
        self.join(30)


class Sampler(threading.Thread):
    """RSS, descriptors and open watches every `period` seconds."""

    def __init__(self, pid, sim, period):
        super().__init__(daemon=True, name="sampler")
        self.pid = pid
        self.sim = sim
        self.period = period
        self.phase = "start"
        self.samples = []   # (t, phase, rss_kib, fds, watches)
        self.stop_flag = threading.Event()

    def sample(self):
        try:
            watches = self.sim.watches()
        except (OSError, SimError):
            watches = None
        try:
            rec = (now(), self.phase, proc_rss_kib(self.pid), proc_fds(self.pid), watches)
        except (OSError, RuntimeError):
            return None
        self.samples.append(rec)
        return rec

    def run(self):
        while not self.stop_flag.is_set():
            self.sample()
            self.stop_flag.wait(self.period)

    def stop(self):
        self.stop_flag.set()
        self.join(30)


# -- the workload -----------------------------------------------------------------

class Database:
    """One --database and the workload's statements on it, in its backend's
    dialect. `schemas` are where its lock tables may be: a PostgreSQL schema,
    or a MariaDB database (DESIGN.md section 3); `table` is the lock table's
    name as Liquibase creates it there."""

    kind = table = Error = None

    def __init__(self, server, name, server_name, schemas):
        self.server = server
        self.name = name
        self.server_name = server_name
        self.schemas = list(schemas)

    @property
    def label(self):
        return "%s:%d/%s" % (self.server.host, self.server.port, self.name)


class PgDatabase(Database):
    kind, table, Error = "postgresql", TABLE, PgServerError

    def sql(self, text):
        return self.server.psql(text, self.name)

    def qname(self, schema):
        return "%s.%s" % (quote_ident(schema), quote_ident(TABLE))

    def create_table(self, schema, form):
        """The lock table as Liquibase 4.28 creates it, with its schema."""
        qt = self.qname(schema)
        self.sql("CREATE SCHEMA IF NOT EXISTS %s;"
                 " CREATE TABLE %s (id INTEGER NOT NULL, locked BOOLEAN NOT NULL,"
                 " lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255),"
                 " CONSTRAINT %s PRIMARY KEY (id));"
                 " INSERT INTO %s VALUES (1, FALSE, NULL, NULL);"
                 " CREATE TABLE IF NOT EXISTS %s.databasechangelog (id VARCHAR(255),"
                 " author VARCHAR(255), filename VARCHAR(255), dateexecuted TIMESTAMP)"
                 % (quote_ident(schema), qt, quote_ident(TABLE + "_pkey"), qt,
                    quote_ident(schema)))

    def drop(self, schema, whole):
        """Drops the lock table, or its whole schema (not public): which one."""
        if whole and schema != "public":
            self.sql("DROP SCHEMA %s CASCADE" % quote_ident(schema))
            return "schema"
        self.sql("DROP TABLE %s" % self.qname(schema))
        return "table"

    def take(self, schema, lockedby):
        return self.sql("UPDATE %s SET locked = TRUE, lockedby = %s,"
                        " lockgranted = LOCALTIMESTAMP WHERE id = 1 AND NOT locked RETURNING 1"
                        % (self.qname(schema), quote_literal(lockedby))).strip() == "1"

    def give_back(self, schema, lockedby):
        return self.sql("UPDATE %s SET locked = FALSE, lockedby = NULL, lockgranted = NULL"
                        " WHERE id = 1 AND locked AND lockedby = %s RETURNING 1"
                        % (self.qname(schema), quote_literal(lockedby))).strip() == "1"

    def read(self, schemas):
        """{schema: (locked, lockedby)} of these lock tables, in one statement."""
        out = self.sql(" UNION ALL ".join(
            "SELECT %s, locked, lockedby FROM %s WHERE id = 1"
            % (quote_literal(sc), self.qname(sc)) for sc in schemas))
        rows = {}
        for line in out.splitlines():
            schema, locked, lockedby = line.split("|", 2)
            rows[schema] = (locked == "t", lockedby)
        return rows


class MariaDatabase(Database):
    """The MariaDB URL's database; its other schemas are databases of the
    same server, watched through --schema. Statements run as the migration
    account (all privileges) or root; the arbiter's account sees a lock
    table only once it is granted SELECT, UPDATE on it."""

    kind, table, Error = "mariadb", MARIA_TABLE, MariaDBServerError

    def qname(self, schema):
        return "%s.%s" % (maria_ident(schema), maria_ident(MARIA_TABLE))

    def create_table(self, schema, form):
        """The lock table with the statements real Liquibase issued for this
        LOCKED form, and the arbiter's grant; its database when it is gone."""
        if schema != self.name:
            self.server.sql("CREATE DATABASE IF NOT EXISTS %s" % maria_ident(schema))
        self.server.create_lock_table(schema, form=form)

    def drop(self, schema, whole):
        """Drops the lock table, or its whole database (not the URL's)."""
        if whole and schema != self.name:
            self.server.sql("DROP DATABASE %s" % maria_ident(schema))
            return "schema"
        self.server.sql("DROP TABLE %s" % self.qname(schema))
        return "table"

    def take(self, schema, lockedby):
        """As Liquibase takes it (mariadbserver.MariaDBServer.lock)."""
        return self.server.lock(schema, lockedby=lockedby)

    def give_back(self, schema, lockedby):
        # BINARY: the default collation compares without case.
        return self.server.sql(
            "UPDATE %s SET `LOCKED` = 0, LOCKGRANTED = NULL, LOCKEDBY = NULL"
            " WHERE ID = 1 AND `LOCKED` <> 0 AND BINARY LOCKEDBY = %s; SELECT ROW_COUNT()"
            % (self.qname(schema), maria_literal(lockedby))).strip() == "1"

    def read(self, schemas):
        out = self.server.sql(" UNION ALL ".join(
            "SELECT %s, `LOCKED` <> 0, LOCKEDBY FROM %s WHERE ID = 1"
            % (maria_literal(sc), self.qname(sc)) for sc in schemas))
        rows = {}
        for line in out.splitlines():
            schema, locked, lockedby = line.split("\t", 2)
            rows[schema] = (locked == "1", None if lockedby == "NULL" else lockedby)
        return rows


class Lock:
    """One lock the workload took: who holds it and what becomes of it."""

    def __init__(self, table, pod, lockedby, role, kind, style):
        self.table = table
        self.pod = pod            # pod name in NS, or None (unresolvable holder)
        self.lockedby = lockedby
        self.role = role          # live | orphan | unresolved
        self.kind = kind          # orphan: delete recreate failed restart crashloop
        self.style = style
        self.taken = now()
        self.release_at = None    # live/unresolved: when the owner lets go
        self.seen_held = None     # when /locks first showed it held by a live pod
        self.needs_sighting = True
        self.killed = None
        self.released = None
        self.extra = None         # live variants: an action during the hold


class Table:
    def __init__(self, db, schema):
        self.db = db
        self.schema = schema
        self.exists = False
        self.form = None          # MariaDB: the LOCKED form it was created in
        self.lock = None
        self.last_release = None  # when the workload saw the arbiter release here
        self.created = None       # when the workload created it
        self.seen = None          # when /locks first listed it after that
        self.recreate_at = None   # MariaDB: when it comes back after a drop
        self.next_take = None     # MariaDB: when the next lock is taken
        self.born = None          # MariaDB: when it was last created
        self.drops = 0            # MariaDB: how often the churn dropped it

    @property
    def key(self):
        return (self.db.label, self.schema, self.db.table)

    @property
    def maria(self):
        return self.db.kind == "mariadb"


class Workload:
    def __init__(self, opts, servers, dbs, sim, failures):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.servers = servers
        self.dbs = dbs
        self.sim = sim
        self.scraper = self.arbiter = self.sampler = None  # set once the arbiter runs
        self.f = failures
        self.tables = {(d.label, s): Table(d, s) for d in dbs for s in d.schemas}
        self.maria_tables = [t for t in self.tables.values() if t.maria]
        self.maria = collections.Counter()  # MariaDB's share, and its locks by form
        self.pod_seq = 0
        self.token_seq = 1
        self.stats = collections.Counter()
        self.orphans = []          # every Lock with role orphan
        self.done_locks = []       # every live/unresolved lock the owner released
        self.stolen = []           # live/unresolved locks found released by someone else
        self.stale_pods = []       # (delete_at, pod): pods to delete after their lock ended
        self.fault = None          # (id, until)
        self.restart_idx = 0
        self.restart_plan = []
        self.next_token = now() + self.o.token_every
        self.next_fault = now() + self.o.fault_every
        self.next_restart = float("inf")  # plan_restarts, once the warm-up is over
        self.next_maria_churn = now() + self.o.maria_churn_every
        self.next_watch_op = now() + self.o.fault_every / 2
        self.next_release_check = 0.0
        self.next_request_count = now() + 20
        self.identity_gets = 0
        self.api_auth = collections.Counter()
        self.in_flight_at_restart = 0
        self.maria_in_flight_at_restart = 0
        self.discovery = []        # seconds from CREATE TABLE to /locks listing it
        self.discovery_late = []   # tables not listed within --discovery-limit
        self.restarts = []

    # -- lock tables ----------------------------------------------------------------
    def maria_form(self):
        """The LOCKED form for a new MariaDB lock table: one that still lacks a
        live or an orphaned lock, else the least used, so that a short run
        covers all three."""
        def score(form):
            missing = sum(1 for role in ("live", "orphan") if not self.maria[(form, role)])
            used = sum(self.maria[(form, role)] for role in ("live", "orphan", "unresolved"))
            return (-missing, used + sum(1 for t in self.maria_tables
                                         if t.exists and t.form == form), self.rng.random())
        return min(LOCK_FORMS, key=score)

    def create_table(self, t):
        form = self.maria_form() if t.maria else None
        t.db.create_table(t.schema, form)
        t.exists, t.form = True, form
        t.last_release = None
        t.created, t.seen = now(), None
        t.recreate_at = t.next_take = None
        t.born = now()
        self.stats["tables_created"] += 1
        if t.maria:
            self.maria["tables_created"] += 1
            self.maria["created_" + form] += 1

    def droppable(self, t):
        """A table may go when no orphan waits on it and a /metrics scrape has
        seen its last release (its released_total series goes with it)."""
        if not t.exists or (t.lock is not None and t.lock.role == "orphan"):
            return False
        return t.last_release is None or self.scraper.metrics_after(t.last_release + 1.0)

    def drop_table(self, t, schema_too):
        what = t.db.drop(t.schema, schema_too)  # "schema" (a MariaDB database) or "table"
        self.stats[what + "s_dropped"] += 1
        if t.maria:
            self.maria[what + "s_dropped"] += 1
            t.recreate_at = now() + self.rng.uniform(0.5, 3.0)
        if t.lock is not None:  # a live holder's table went away under it
            self.retire_pod(t.lock.pod)
            self.stats["live_locks_dropped_with_table"] += 1
            t.lock = None
        t.exists = False

    # -- pods ---------------------------------------------------------------------
    def new_pod(self, containers, annotations=None):
        self.pod_seq += 1
        name = "app-%d-%s" % (self.pod_seq, "".join(
            self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)))
        desc = {"containers": list(containers)}
        if annotations:
            desc["annotations"] = annotations
        pod = self.sim.create_pod(name, NS, **desc)
        self.stats["pods_created"] += 1
        return name, pod["status"].get("podIP")

    def retire_pod(self, name, delay=0.0):
        if name is not None:
            self.stale_pods.append((now() + delay, name))

    def delete_stale_pods(self, everything=False):
        keep = []
        for at, name in self.stale_pods:
            if everything or at <= now():
                try:
                    self.sim.delete_pod(NS, name)
                except SimError:
                    pass  # deleted as the orphan's death already
            else:
                keep.append((at, name))
        self.stale_pods = keep

    # -- locks --------------------------------------------------------------------
    def take_lock(self, t):
        r = self.rng.random()
        role = "live" if r < 0.45 else "orphan" if r < 0.9 else "unresolved"
        if t.maria:
            # A LOCKED form without a live or an orphaned lock yet gets one first.
            role = next((want for want in ("orphan", "live")
                         if not self.maria[(t.form, want)]), role)
        if role == "unresolved":
            lockedby = self.rng.choice([
                "unknown (unknown)", "default:../../secrets/x",
                "ip-10-52-55-%d.eu-west-1.compute.internal (10.52.55.%d)" % ((self.pod_seq % 250,) * 2),
                "vm#desc1 (fd00:0:0:0:0:0:0:2%%eth0)", "localhost (127.0.0.1)"])
            pod, kind, style = None, None, "unresolvable"
            self.pod_seq += 1
        else:
            kind = None if role == "live" else self.rng.choice(
                ["delete", "delete", "recreate", "failed", "restart", "crashloop"])
            containers, annotations = ["app"], None
            extra = None
            if kind in ("restart", "crashloop") or (role == "live" and self.rng.random() < 0.4):
                if self.rng.random() < 0.5 or kind == "crashloop":
                    containers = ["app", "istio-proxy"]
                    annotations = {"lock-arbiter.io/holder-container": "app"}
                if role == "live":
                    # A restart the lock must survive: the sidecar of an annotated
                    # pod, or the app while an unannotated pod's sidecar lives on.
                    if annotations:
                        extra = "istio-proxy"
                    else:
                        containers = ["app", "istio-proxy"]
                        extra = "app"
            pod, ip = self.new_pod(containers, annotations)
            style = self.rng.choice(["pod", "pod", "host", "hostdesc", "fqdn"]) if ip else "pod"
            lockedby = {"pod": "%s:%s" % (NS, pod),
                        "host": "%s (%s)" % (pod, ip),
                        "hostdesc": "%s#liquibase (%s)" % (pod, ip),
                        "fqdn": "%s.db.%s.svc.cluster.local (%s)" % (pod, NS, ip)}[style]
        lk = Lock(t, pod, lockedby, role, kind, style)
        if role == "live":
            lk.extra = extra
        if not t.db.take(t.schema, lockedby):
            self.f.check("lock table %s in %s free when the workload takes it"
                         % (t.schema, t.db.label), False, "it was not")
            self.retire_pod(pod)
            return
        t.lock = lk
        self.stats["locks_" + role] += 1
        if t.maria:
            self.maria[(t.form, role)] += 1
        if role != "orphan":
            lk.release_at = now() + self.rng.uniform(1.0, 6.0) + (3.0 if lk.extra else 0.0)
        else:
            self.orphans.append(lk)
            # A NS:POD holder can die before the arbiter ever sees it.
            lk.needs_sighting = not (kind == "delete" and style == "pod"
                                     and self.rng.random() < 0.3)

    def owner_release(self, lk):
        """The owner lets go as Liquibase does, but only of its own lock."""
        t = lk.table
        if not t.db.give_back(t.schema, lk.lockedby):
            self.stolen.append(lk)
        self.done_locks.append(lk)
        t.lock = None
        self.retire_pod(lk.pod)

    def sighted(self, lk):
        e = self.scraper.lock_entry(lk.table.key)
        return (e is not None and e.get("state") == "held" and e.get("locked_by") == lk.lockedby
                and e.get("reason") in SEEN_ALIVE)

    def kill(self, lk):
        """The holder dies, as the orphan's kind says."""
        pod = lk.pod
        if lk.kind == "delete":
            self.sim.delete_pod(NS, pod)
        elif lk.kind == "recreate":
            self.sim.recreate_pod(NS, pod)  # the new pod goes once the lock is released
        elif lk.kind == "failed":
            self.sim.set_phase(NS, pod, "Failed")
        elif lk.kind == "restart":
            self.sim.restart(NS, pod, container="app")
        elif lk.kind == "crashloop":
            self.sim.restart(NS, pod, container="app", crashloop=True)
        lk.killed = now()
        self.stats["killed_" + lk.kind] += 1

    def step_discovery(self):
        """DESIGN.md section 4: a new lock table is seen by the next poll."""
        for t in self.tables.values():
            if not t.exists or t.seen is not None or t.created is None:
                continue
            if self.scraper.lock_entry(t.key) is not None:
                t.seen = now()
                self.discovery.append(t.seen - t.created)
            elif now() - t.created > self.o.discovery_limit:
                self.discovery_late.append((t.db.label, t.schema))
                t.seen = now()  # reported once

    def step_locks(self, draining):
        for t in self.tables.values():
            lk = t.lock
            if lk is None:
                continue
            if lk.role != "orphan":
                if lk.extra and lk.seen_held is None and self.sighted(lk):
                    lk.seen_held = now()
                if (lk.extra and lk.seen_held is not None and now() > lk.seen_held + 2.5):
                    self.sim.restart(NS, lk.pod, container=lk.extra)
                    self.stats["live_restart_" + lk.extra] += 1
                    lk.extra = None
                    lk.release_at = max(lk.release_at, now() + 1.5)
                # The restart waits for a sighting, but not forever (an API fault).
                if draining or now() >= lk.release_at + (30 if lk.extra else 0):
                    self.owner_release(lk)
                continue
            if lk.killed is not None:
                continue
            if lk.needs_sighting:
                if lk.seen_held is None:
                    if self.sighted(lk):
                        lk.seen_held = now()
                    elif now() - lk.taken > self.o.sighting_timeout:
                        self.f.check("orphan-to-be %r in %s/%s judged held by a live pod within"
                                     " %ds" % (lk.lockedby, t.db.label, t.schema,
                                               self.o.sighting_timeout), False,
                                     "last /locks entry: %s" % self.scraper.lock_entry(t.key))
                        lk.needs_sighting = False  # kill anyway; it must still go
                    continue
                # Container times are whole seconds: a restart must start well
                # after first_seen + --clock-skew to prove the holder new.
                wait = 2.5 if lk.kind == "restart" else self.rng.uniform(0, 1.0)
                if now() < lk.seen_held + wait:
                    continue
            self.kill(lk)

    def check_releases(self):
        """Reads the tables of killed orphans; a freed row is the arbiter's release."""
        by_db = collections.defaultdict(list)
        for t in self.tables.values():
            if t.lock is not None and t.lock.role == "orphan" and t.lock.killed is not None:
                by_db[t.db.label].append(t)
        for label, ts in by_db.items():
            db = ts[0].db
            try:
                rows = db.read([t.schema for t in ts])
            except db.Error:
                continue  # restarting; next time
            for t in ts:
                row = rows.get(t.schema)
                if row is None:
                    continue
                if row[0] and row[1] == t.lock.lockedby:
                    continue
                lk = t.lock
                lk.released = now()
                t.last_release = lk.released
                t.lock = None
                self.stats["orphans_released"] += 1
                if t.maria:
                    self.maria["orphans_released"] += 1
                if lk.kind != "delete":
                    self.retire_pod(lk.pod)

    # -- the rest of the world ----------------------------------------------------------
    def pending_orphans(self, server=None):
        return [lk for lk in self.orphans if lk.released is None and lk.killed is not None
                and (server is None or lk.table.db.server is server)]

    def plan_restarts(self, work_seconds):
        """Spreads the server restarts over the workload phase: one every
        --restart-every seconds, but at least three (each server once,
        MariaDB first), one at a random point of each of as many equal slots
        of the phase, none in its last 5 s."""
        n = max(3, int(work_seconds / self.o.restart_every))
        slot = max(1.0, work_seconds - 5) / n
        t0 = now()
        self.restart_plan = [t0 + (i + self.rng.uniform(0.1, 0.9)) * slot for i in range(n)]
        self.next_restart = self.restart_plan.pop(0)

    def restart_server(self):
        name, server = self.servers[self.restart_idx % len(self.servers)]
        self.restart_idx += 1
        # An UPDATE cut off by the restart may commit unseen by the arbiter:
        # let releases in flight on this server finish first.
        deadline = now() + 15
        while self.pending_orphans(server) and now() < deadline:
            self.check_releases()
            time.sleep(0.2)
        self.in_flight_at_restart += len(self.pending_orphans(server))
        if isinstance(server, MariaDBServer):
            self.maria_in_flight_at_restart += len(self.pending_orphans(server))
        # fast: a clean shutdown; immediate: a crash (SIGKILL on both backends).
        mode = self.rng.choice(["fast", "fast", "immediate"])
        t0 = now()
        server.restart(mode)
        self.restarts.append((name, mode, round(now() - t0, 2)))
        self.stats["db_restarts"] += 1

    def rotate_token(self):
        self.token_seq += 1
        self.sim.rotate_token("soak-token-%d-%08x" % (self.token_seq, self.rng.getrandbits(32)))
        self.stats["token_rotations"] += 1

    def clear_fault(self):
        if self.fault is not None:
            try:
                self.sim.remove_fault(self.fault[0])
            except SimError:
                pass
            self.sim.release_hangs()
            self.fault = None

    def inject_fault(self):
        ftype, spec = self.rng.choice(FAULTS)
        spec = dict(spec)
        target = self.rng.random()
        if target < 0.75:
            spec["path"] = "/namespaces/%s/pods" % NS
        elif target < 0.9:
            spec["path"] = "/namespaces/%s/pods/%s" % (OWN_NS, OWN_POD)
        else:
            spec["path"] = "/namespaces/%s/events" % NS
        fault = self.sim.add_fault(ftype, **spec)
        self.fault = (fault["id"], now() + self.rng.uniform(1.0, 4.0))
        self.stats["faults_" + ftype] += 1

    def watch_op(self):
        op = self.rng.choice(WATCH_OPS)
        if op == "expire":
            self.sim.expire_watches()
        elif op == "close_end":
            self.sim.close_watches("end")
        elif op == "close_rst":
            self.sim.close_watches("rst")
        elif op == "compact":
            self.sim.compact()
        else:
            self.sim.bookmark_watches()
        self.stats["watch_" + op] += 1

    def count_requests(self):
        """Tallies the API request log (then empties it, so it stays small)."""
        reqs = self.sim.requests()
        self.sim.clear_requests()
        self.sim.clear_events()
        for r in reqs:
            if r["method"] == "GET" and r["path"].startswith(
                    "/api/v1/namespaces/%s/pods/%s" % (OWN_NS, OWN_POD)):
                self.identity_gets += 1
            self.api_auth[(r["auth_detail"], r["status"])] += 1

    # -- phases ---------------------------------------------------------------------
    def tick(self, draining=False):
        """One step of everything that runs on its own clock."""
        self.step_locks(draining)
        self.step_discovery()
        if now() >= self.next_release_check:
            self.check_releases()
            self.next_release_check = now() + 0.25
        if self.fault is not None and (draining or now() >= self.fault[1]):
            self.clear_fault()
        self.delete_stale_pods()
        if now() >= self.next_request_count:
            self.count_requests()
            self.next_request_count = now() + 20
        if draining:
            return
        if now() >= self.next_token:
            self.rotate_token()
            self.next_token = now() + self.rng.uniform(0.5, 1.5) * self.o.token_every
        if self.fault is None and now() >= self.next_fault:
            self.inject_fault()
            self.next_fault = now() + self.rng.uniform(0.5, 1.5) * self.o.fault_every
        if now() >= self.next_watch_op:
            self.watch_op()
            self.next_watch_op = now() + self.rng.uniform(0.5, 1.5) * self.o.fault_every
        if now() >= self.next_restart:
            self.restart_server()
            self.next_restart = self.restart_plan.pop(0) if self.restart_plan else float("inf")
        self.step_maria()
        self.random_action()

    def step_maria(self):
        """MariaDB's two lock tables on a clock of their own (among twenty-odd
        PostgreSQL ones they would see few locks): the next lock soon after
        the last one ended; every --maria-churn-every seconds one table
        dropped, in turn, the URL database's or the tenant's (its whole
        database the first time, then one time in two), and created again a
        few seconds later in the LOCKED form that needs locks most."""
        for t in self.maria_tables:
            if not t.exists:
                if now() >= t.recreate_at:
                    self.create_table(t)
            elif t.lock is None:
                if t.next_take is None:
                    t.next_take = now() + self.rng.uniform(0.2, 1.5)
                elif now() >= t.next_take:
                    t.next_take = None
                    self.take_lock(t)
        if now() < self.next_maria_churn:
            return
        # A table whose form has had its live and orphaned locks, or one that
        # has waited long enough for them; not one an orphan waits on.
        cands = [t for t in self.maria_tables if self.droppable(t) and (
            all(self.maria[(t.form, role)] for role in ("live", "orphan"))
            or now() - t.born > 3 * self.o.maria_churn_every)]
        if not cands:
            return  # the next tick tries again
        t = min(cands, key=lambda t: (t.drops, self.rng.random()))
        t.drops += 1
        whole = t.schema != t.db.name and (
            not self.maria["schemas_dropped"] or self.rng.random() < 0.5)
        self.drop_table(t, whole)
        self.next_maria_churn = now() + self.rng.uniform(0.5, 1.5) * self.o.maria_churn_every

    def random_action(self):
        """The PostgreSQL tables' workload: a lock, a table, a drop."""
        r = self.rng.random()
        tables = [t for t in self.tables.values() if not t.maria]
        if r < 0.45:
            free = [t for t in tables if t.exists and t.lock is None]
            if free and sum(1 for t in tables if t.lock is not None) < self.o.max_held:
                self.take_lock(self.rng.choice(free))
        elif r < 0.55:
            absent = [t for t in tables if not t.exists]
            if absent:
                self.create_table(self.rng.choice(absent))
        elif r < 0.60:
            cands = [t for t in tables if self.droppable(t)]
            # Keep a few tables around so that locks keep coming.
            pg_dbs = sum(1 for d in self.dbs if d.kind == "postgresql")
            if cands and sum(1 for t in tables if t.exists) > pg_dbs * 2:
                t = self.rng.choice(cands)
                self.drop_table(t, schema_too=self.rng.random() < 0.5)

    def run_until(self, deadline, draining=False):
        while now() < deadline:
            if self.arbiter.proc.poll() is not None:
                return False
            self.tick(draining)
            time.sleep(self.rng.uniform(0.02, 0.12))
        return True

    def quiesce(self, what, timeout):
        """No lock held, no fault: every orphan released, no watch left open.
        Returns (ok, min fds over a 3 s window, min RSS over it)."""
        deadline = now() + timeout
        self.clear_fault()
        while now() < deadline:
            if self.arbiter.proc.poll() is not None:
                return False, None, None
            self.tick(draining=True)
            if all(t.lock is None for t in self.tables.values()):
                break
            time.sleep(0.1)
        left = [(lk.table.db.label, lk.table.schema, lk.lockedby, lk.kind)
                for lk in self.orphans if lk.released is None]
        ok = self.f.check("%s: every orphan released" % what, not left,
                          "%d left: %s" % (len(left), left[:5]) if left else
                          "%d orphans so far" % len(self.orphans))
        self.delete_stale_pods(everything=True)
        # No lock held: no open watch (DESIGN.md section 7).
        t0 = now()
        while now() - t0 < 10 and self.sim.watches() > 0:
            time.sleep(0.1)
        ok &= self.f.check("%s: no watch open without a held lock" % what,
                           self.sim.watches() == 0, "%d open" % self.sim.watches())
        # The scrape of the last release, before any table can go.
        t0 = now()
        while not self.scraper.metrics_after(max([t.last_release or 0 for t in
                                                  self.tables.values()] + [0]) + 1.0):
            if now() - t0 > 30:
                break
            time.sleep(0.1)
        fds, rss = [], []
        t0 = now()
        while now() - t0 < 3:
            s = self.sampler.sample()
            if s:
                rss.append(s[2])
                fds.append(s[3])
            time.sleep(0.25)
        return ok, (min(fds) if fds else None), (min(rss) if rss else None)


# -- checks ----------------------------------------------------------------------

def check_flat(f, samples, rss_tol_kib, rss_tol_frac, fd_tol):
    """RSS and descriptors flat over the workload phase.

    After warm-up (the first quarter), the median of the last quarter must
    not exceed the median of the second quarter by more than the tolerance.
    Descriptors are compared after subtracting the open watches (one
    connection per held lock's holder watch, which the workload varies on
    purpose): what remains is the databases, the API connection, the
    listening socket and files, and transient ones (a database reconnecting
    after its restart, the API connection after a reset, the scrape in
    progress), hence a small tolerance; growth beyond it is a leak."""
    work = [s for s in samples if s[1] == "work"]
    n = len(work)
    if not f.check("enough samples for the flatness checks (>= 12)", n >= 12, "%d" % n):
        return
    q2 = work[n // 4: n // 2]
    q4 = work[3 * n // 4:]
    rss2 = statistics.median(s[2] for s in q2)
    rss4 = statistics.median(s[2] for s in q4)
    tol = max(rss_tol_kib, rss_tol_frac * rss2)
    f.check("RSS flat (median of the last quarter <= median of the second + %.0f KiB)" % tol,
            rss4 - rss2 <= tol, "%.0f KiB -> %.0f KiB (%+.0f KiB)" % (rss2, rss4, rss4 - rss2))
    resid = [s for s in work if s[4] is not None]
    r2 = statistics.median(s[3] - s[4] for s in resid[len(resid) // 4: len(resid) // 2])
    r4 = statistics.median(s[3] - s[4] for s in resid[3 * len(resid) // 4:])
    f.check("descriptors flat (fds minus open watches: median of the last quarter <= "
            "second + %d)" % fd_tol, r4 - r2 <= fd_tol, "%g -> %g" % (r2, r4))
    # For the record: RSS growth rate by least squares over the last three quarters.
    pts = work[n // 4:]
    t0 = pts[0][0]
    xs = [(s[0] - t0) / 60 for s in pts]
    ys = [s[2] for s in pts]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
    return slope


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
                   "AddressSanitizer:DEADLYSIGNAL")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the lock-arbiter binary (test-hook build)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--poll-interval", default=None, help="default 50ms, 100ms under valgrind")
    ap.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir)")
    ap.add_argument("--max-held", type=int, default=12)
    ap.add_argument("--token-every", type=float, default=15.0)
    ap.add_argument("--fault-every", type=float, default=12.0)
    ap.add_argument("--restart-every", type=float, default=75.0,
                    help="seconds between server restarts (at least three in a run)")
    ap.add_argument("--maria-churn-every", type=float, default=10.0,
                    help="seconds between drops of a MariaDB lock table or database")
    ap.add_argument("--sighting-timeout", type=int, default=90)
    ap.add_argument("--discovery-limit", type=float, default=None,
                    help="seconds for a new lock table to be listed (8, valgrind 15)")
    ap.add_argument("--rss-tolerance-kib", type=float, default=2048)
    ap.add_argument("--rss-tolerance-frac", type=float, default=0.05)
    ap.add_argument("--fd-tolerance", type=int, default=2)
    o = ap.parse_args()
    if o.seed is None:
        o.seed = int.from_bytes(os.urandom(4), "big")
    if o.poll_interval is None:
        o.poll_interval = "100ms" if o.valgrind else "50ms"
    if o.discovery_limit is None:
        # Next poll, plus one cycle stalled by a hung API request (5 s timeout).
        o.discovery_limit = 15.0 if o.valgrind else 8.0
    duration = o.minutes * 60
    workdir = o.workdir or tempfile.mkdtemp(prefix="lock-arbiter-soak-")
    os.makedirs(workdir, exist_ok=True)
    print("soak: seed %d, %.1f min, %s, poll %s, logs in %s" % (
        o.seed, o.minutes, "valgrind" if o.valgrind else "sanitizers", o.poll_interval, workdir),
        flush=True)
    f = Failures()

    # Asynchronous commits could lose a lock the workload took, or a release
    # the arbiter logged, across an immediate restart: these servers commit
    # synchronously (MariaDB's test default flushes its log once a second).
    # MariaDB comes first: it is the first server restarted.
    servers = [("mariadb", MariaDBServer(settings={"innodb_flush_log_at_trx_commit": 1})),
               ("pg-a", PgServer(settings={"synchronous_commit": "on"})),
               ("pg-b", PgServer(settings={"synchronous_commit": "on"}))]
    for _, s in servers:
        s.start()
    dbs = []
    for (sname, server), names in zip(servers[1:], (["soak_a1", "soak_a2"], ["soak_b1"])):
        for n in names:
            server.create_database(n)
            dbs.append(PgDatabase(server, n, sname, SCHEMAS))
    maria = servers[0][1]
    maria.create_database(MARIA_DB)  # the tenant database comes with its lock table
    dbs.append(MariaDatabase(maria, MARIA_DB, "mariadb", [MARIA_DB, MARIA_TENANT]))
    sim = Sim(os.path.join(workdir, "sim"), namespaces=[NS, OWN_NS], seed=o.seed).start()
    me = sim.create_pod(OWN_POD, OWN_NS, containers=["lock-arbiter"])

    # Some lock tables from the start, as in a database Liquibase has used.
    w = Workload(o, servers, dbs, sim, f)
    for d in dbs:
        for s in d.schemas if d.kind == "mariadb" else ("public", "tenant_0", "tenant_1"):
            w.create_table(w.tables[(d.label, s)])
            w.tables[(d.label, s)].created = None  # there before the arbiter: not timed

    env = {"POD_NAME": OWN_POD, "POD_NAMESPACE": OWN_NS, "POD_UID": me["metadata"]["uid"],
           "LOCK_ARBITER_TEST_INTERVALS": "identity=2s,token=1s"}
    wrapper = []
    if o.valgrind:
        wrapper = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "--track-fds=yes", "--num-callers=30",
                   "--log-file=" + os.path.join(workdir, "valgrind.%p.log")]
    else:
        # quarantine_size_mb: freed blocks ASan holds back to catch a
        # use-after-free. At 256 MB (the default) the quarantine takes many
        # minutes of churn to fill and RSS climbs all that while, which is
        # ASan's memory, not ours; 16 MB is full within the warm-up and still
        # covers every block freed in the last few cycles.
        env["ASAN_OPTIONS"] = ("detect_leaks=1:abort_on_error=1:halt_on_error=1:"
                               "quarantine_size_mb=16")
        env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    args = ["run", "--poll-interval", o.poll_interval, "--clock-skew", "1s",
            "--min-lock-age", "1s", "--kube-api", sim.url, "--kube-token-file", sim.token_file,
            "--kube-ca-file", sim.ca, "--holder-namespace", NS, "--listen", "127.0.0.1:0"]
    for d in dbs:
        args += ["--database", server_dsn(d)]
    for s in SCHEMAS:
        args += ["--schema", s]
    arb = SoakArbiter(os.path.abspath(o.bin), args, env, wrapper).start()
    summary = collections.OrderedDict()
    try:
        soak(o, f, w, arb, sim, dbs, workdir, duration, summary)
    except Exception:  # noqa: BLE001 - a broken driver is a failed soak, with its story
        import traceback
        f.check("the soak driver ran to the end", False, traceback.format_exc())
    finally:
        if arb.proc.poll() is None:
            arb.proc.kill()
            arb.proc.wait()
        time.sleep(0.3)  # the reader thread takes the last lines
        with open(os.path.join(workdir, "arbiter.log"), "w") as out:
            out.write(arb.log_text() + "\n")
        sim.stop()
        for name, s in servers:
            # The servers' own logs, for a crash or a refused statement.
            if s.logfile and os.path.exists(s.logfile):
                shutil.copy(s.logfile, os.path.join(workdir, name + ".log"))
            s.cleanup()
    print("soak: figures")
    for k, v in summary.items():
        print("  %-26s %s" % (k + ":", v))
    passed, failed = f.counts()
    print("soak: %d passed, %d failed" % (passed, failed), flush=True)
    if failed == 0 and o.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def logged(arb, msg, timeout, **fields):
    try:
        return arb.wait_for(msg, timeout=timeout, **fields)
    except AssertionError:
        return None


def soak(o, f, w, arb, sim, dbs, workdir, duration, summary):
    """The run itself, from a started arbiter to its exit; fills summary."""
    scraper = sampler = None
    try:
        rec = logged(arb, "http listening", 120)
        if not f.check("the arbiter started", rec is not None,
                       "port %s" % rec["port"] if rec else arb.log_text()[-3000:]):
            return
        f.check("test-only intervals in effect (a -Dtest_hooks=true build)", logged(
            arb, "test-only intervals in effect (LOCK_ARBITER_TEST_INTERVALS)", 30) is not None)
        f.check("cluster identity confirmed", logged(arb, "cluster identity confirmed", 60))
        # /healthz is 503 until the first cycle completes (DESIGN.md section 8):
        # the "200 throughout" check starts from the first 200.
        probe = Scraper(int(rec["port"]), 0.1, f)
        deadline = now() + 60
        while now() < deadline:
            try:
                if probe.get("/healthz")[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        scraper = Scraper(int(rec["port"]), 0.1, f)
        scraper.start()
        sampler = Sampler(arb.proc.pid, sim, max(1.0, min(5.0, duration / 100)))
        sampler.start()
        w.scraper, w.arbiter, w.sampler = scraper, arb, sampler
        t_start = now()
        # Warm-up: an eighth of the run, then a quiet point for the baseline.
        sampler.phase = "warmup"
        alive = w.run_until(t_start + max(15.0, duration / 8))
        sampler.phase = "quiet"
        ok0, fds0, rss0 = w.quiesce("after warm-up", timeout=120) if alive else (False, None,
                                                                                 None)
        sampler.phase = "work"
        w.plan_restarts(t_start + duration - now())
        alive = alive and w.run_until(t_start + duration)
        sampler.phase = "drain"
        ok1, fds1, rss1 = w.quiesce("at the end", timeout=150) if alive else (False, None, None)
        elapsed = now() - t_start
        w.count_requests()
        sampler.stop()
        scraper.stop()
        f.check("the arbiter ran throughout", arb.proc.poll() is None,
                "exit status %s" % arb.proc.poll())

        # Releases: every orphan, with its rule; nothing else.
        recs, _ = arb.records_since(0)
        released = [r for r in recs if r.get("msg") == "lock released"]
        by_key = collections.defaultdict(list)
        for r in released:
            by_key[(r.get("database"), r.get("schema"), r.get("lockedby"))].append(r)
        wrong_rule, unmatched = [], 0
        orphan_keys = set()
        for lk in w.orphans:
            key = (lk.table.db.label, lk.table.schema, lk.lockedby)
            orphan_keys.add(key)
            rs = by_key.get(key, [])
            if len(rs) != 1:
                unmatched += 1
            elif rs[0].get("rule") not in EXPECTED_RULES[lk.kind]:
                wrong_rule.append((lk.kind, rs[0].get("rule"), lk.lockedby))
        extra = [r for k, rs in by_key.items() if k not in orphan_keys for r in rs]
        n_orphans = len(w.orphans)
        f.check("the workload orphaned locks (the soak did real work)", n_orphans > 0,
                "%d orphans" % n_orphans)
        f.check("every orphan released exactly once, as logged", unmatched == 0,
                "%d of %d without exactly one 'lock released'" % (unmatched, n_orphans))
        f.check("every release by the rule the holder's death calls for", not wrong_rule,
                "%d wrong, e.g. %s" % (len(wrong_rule), wrong_rule[:3]) if wrong_rule else "")
        f.check("nothing released but the orphans", not extra,
                "%d others, e.g. %s" % (len(extra), extra[:3]) if extra else "")
        f.check("no live or unresolved lock lost to anyone but its owner", not w.stolen,
                "%d of %d, e.g. %s" % (len(w.stolen), len(w.done_locks),
                                       [(l.lockedby, l.role) for l in w.stolen[:3]]))
        metric = scraper.released_sum
        lo = n_orphans - w.in_flight_at_restart
        f.check("/metrics locks_released_total > 0 and equal to the orphans",
                metric > 0 and lo <= metric <= n_orphans,
                "%d counted, %d orphaned (%d in flight at a restart)" % (
                    metric, n_orphans, w.in_flight_at_restart))
        maria = maria_checks(f, w, dbs, scraper, released)
        f.check("every new lock table listed within %gs (DESIGN.md section 4)"
                % o.discovery_limit, not w.discovery_late,
                "%d late, e.g. %s" % (len(w.discovery_late), w.discovery_late[:3])
                if w.discovery_late else "%d tables" % len(w.discovery))
        f.check("/healthz 200 on every scrape", not scraper.healthz_bad,
                "%d bad, e.g. %s" % (len(scraper.healthz_bad), scraper.healthz_bad[:5])
                if scraper.healthz_bad else "%d scrapes" % scraper.counts[("/healthz", 200)])
        f.check("every endpoint answered and parsed", not scraper.errors and all(
            st in (200, 503) if p == "/readyz" else st == 200
            for (p, st) in scraper.counts if not p.startswith(("HEAD", "POST"))),
            "; ".join(scraper.errors[:5]) + " " + str(
                {k: v for k, v in scraper.counts.items() if k[1] not in (200, 503)}))
        f.check("/readyz 200 at the end", scraper.get("/readyz")[0] == 200)
        ident_min = int(0.5 * elapsed / 2.0)
        f.check("identity re-checked every ~2 s", w.identity_gets >= ident_min,
                "%d GETs of the arbiter's own pod in %.0f s" % (w.identity_gets, elapsed))
        # Fewer is no leak: the API client keeps its one idle connection to the
        # API server only until libcurl ages it out.
        f.check("no more descriptors at the end than after warm-up (quiet points)",
                fds0 is not None and fds1 is not None and fds1 <= fds0,
                "%s -> %s" % (fds0, fds1))
        slope = check_flat(f, sampler.samples, o.rss_tolerance_kib, o.rss_tolerance_frac,
                           o.fd_tolerance)

        # SIGTERM: finish the cycle, close, exit 0 within 2 s.
        mark = arb.mark()
        t_term = now()
        arb.proc.send_signal(signal.SIGTERM)
        limit = 60 if o.valgrind else 2.0
        try:
            rc = arb.proc.wait(limit)
        except subprocess.TimeoutExpired:
            arb.proc.kill()
            rc = arb.proc.wait()
            rc = "killed after %gs" % limit
        took = now() - t_term
        time.sleep(0.5)  # the reader thread takes the last lines
        try:
            stopping = arb.wait_for("stopping", timeout=1, start=mark)
        except AssertionError:
            stopping = None
        f.check("exit 0 within %gs of SIGTERM" % limit, rc == 0 and took <= limit,
                "status %s after %.2f s" % (rc, took))
        if o.valgrind:
            # The 2 s are the program's; valgrind's leak scan follows its exit.
            f.check("'stopping' logged after SIGTERM", stopping is not None)
        text = arb.log_text()
        marks = [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKS)]
        f.check("no sanitizer report", not marks, "\n".join(marks[:20]))
        vg_summary = ""
        if o.valgrind:
            logs = [os.path.join(workdir, n) for n in os.listdir(workdir)
                    if n.startswith("valgrind.")]
            vtext = "".join(open(p, errors="replace").read() for p in logs)
            m = re.search(r"ERROR SUMMARY: (\d+) errors", vtext)
            f.check("valgrind: no errors, no definite leak", m is not None and m.group(1) == "0",
                    m.group(0) if m else "no ERROR SUMMARY in " + ", ".join(logs))
            fdm = re.search(r"FILE DESCRIPTORS: (\d+) open(?: \((\d+) std\))? at exit", vtext)
            vg_summary = fdm.group(0) if fdm else "no FILE DESCRIPTORS line"
            if fdm:
                # Each is "Open file descriptor N: WHAT" (or "Open AF_INET socket N: ...");
                # valgrind's own --log-file is listed too and does not count.
                left = [l.split("== ", 1)[-1] for l in vtext.splitlines()
                        if re.search(r"== Open .*\d+: ", l)
                        and not re.search(r"/valgrind\.\d+\.log$", l)]
                f.check("valgrind: no descriptor open at exit but stdin/out/err", not left,
                        "%s; %s" % (vg_summary, left))
            for key in ("definitely lost", "indirectly lost", "possibly lost", "still reachable"):
                lm = re.search(key + r": ([\d,]+) bytes in ([\d,]+) blocks", vtext)
                if lm:
                    vg_summary += "; %s %s bytes" % (key, lm.group(1))

        work = [s for s in sampler.samples if s[1] in ("warmup", "work")]
        rss = [s[2] for s in work]
        fds = [s[3] for s in work]
        polls = {dict(k[1]).get("database"): int(v) for k, v in scraper.last_metrics.items()
                 if k[0] == "lock_arbiter_poll_duration_seconds_count"}
        summary.update([
            ("seed", o.seed),
            ("duration", "%.0f s (%.1f min), %d samples every %.1f s" % (
                elapsed, elapsed / 60, len(sampler.samples), sampler.period)),
            ("polls", "%s successful polls per database (poll %s; %d would be every %s)" % (
                polls, o.poll_interval, elapsed / parse_duration(o.poll_interval),
                o.poll_interval)),
            ("release conflicts/errors", "%s / %s" % (
                metric_sum(scraper.last_metrics, "lock_arbiter_release_conflicts_total"),
                metric_sum(scraper.last_metrics, "lock_arbiter_release_errors_total"))),
            ("databases", "%d PostgreSQL on 2 servers, %d MariaDB (and %d through --schema);"
                          " restarts: %s" % (
                              sum(1 for d in dbs if d.kind == "postgresql"),
                              sum(1 for d in dbs if d.kind == "mariadb"),
                              sum(len(d.schemas) - 1 for d in dbs if d.kind == "mariadb"),
                              w.restarts)),
            ("locks", "%d live, %d orphaned, %d unresolvable" % (
                w.stats["locks_live"], w.stats["locks_orphan"], w.stats["locks_unresolved"])),
            ("orphans killed", {k[7:]: v for k, v in w.stats.items() if k.startswith("killed_")}),
            ("releases", "%d in the log, %d in /metrics, %d seen in the databases; rules %s" % (
                len(released), metric, w.stats["orphans_released"],
                dict(collections.Counter(r.get("rule") for r in released)))),
            ("release delay after death", delay_summary(w.orphans)),
            ("tables", "%d created, %d dropped, %d schemas (MariaDB: databases) dropped;"
                       " listed in /locks after median %.2f s, max %.2f s, %d late" % (
                           w.stats["tables_created"], w.stats["tables_dropped"],
                           w.stats["schemas_dropped"],
                           statistics.median(w.discovery) if w.discovery else -1,
                           max(w.discovery) if w.discovery else -1, len(w.discovery_late))),
        ] + maria + [
            ("api", "%d pods, %d token rotations, faults %s, watch ops %s, identity GETs %d,"
                    " answers by auth %s" % (
                        w.stats["pods_created"], w.stats["token_rotations"],
                        {k[7:]: v for k, v in w.stats.items() if k.startswith("faults_")},
                        {k[6:]: v for k, v in w.stats.items() if k.startswith("watch_")},
                        w.identity_gets, dict(w.api_auth))),
            ("scrapes", "%d requests in %d rounds; %s" % (
                scraper.requests, scraper.rounds, dict(scraper.counts))),
            ("RSS KiB", "first %d, last %d, max %d; quiet points %s -> %s; slope %+.0f KiB/min"
             % (rss[0], rss[-1], max(rss), rss0, rss1, slope or 0.0) if rss else "none"),
            ("fds", "first %d, last %d, max %d; quiet points %s -> %s" % (
                fds[0], fds[-1], max(fds), fds0, fds1) if fds else "none"),
            ("exit", "status %s %.2f s after SIGTERM" % (rc, took)),
        ])
        if o.valgrind:
            summary["valgrind"] = vg_summary
        with open(os.path.join(workdir, "samples.csv"), "w") as out:
            out.write("t,phase,rss_kib,fds,watches\n")
            for s in sampler.samples:
                out.write("%.1f,%s,%d,%d,%s\n" % (s[0] - t_start, s[1], s[2], s[3], s[4]))
    finally:
        if scraper is not None:
            scraper.stop_flag.set()
        if sampler is not None:
            sampler.stop_flag.set()


def maria_checks(f, w, dbs, scraper, released):
    """MariaDB's share of the run (DESIGN.md section 3): live and orphaned
    locks in every LOCKED form, its lock tables and tenant database dropped
    and created again, its server restarted, its releases in the log and in
    /metrics equal to its orphans. Returns its lines of the figures."""
    m = w.maria
    labels = {d.label for d in dbs if d.kind == "mariadb"}
    forms = collections.OrderedDict(
        (form, "%d live, %d orphaned, %d unresolvable" % tuple(
            m[(form, role)] for role in ("live", "orphan", "unresolved")))
        for form in LOCK_FORMS)
    f.check("MariaDB: live and orphaned locks in every LOCKED form (%s)" % ", ".join(LOCK_FORMS),
            all(m[(form, "live")] and m[(form, "orphan")] for form in LOCK_FORMS),
            "; ".join("%s: %s" % kv for kv in forms.items()))
    f.check("MariaDB: lock tables dropped and created again, the tenant database too",
            m["tables_dropped"] and m["schemas_dropped"],
            "%d tables dropped, %d databases dropped, %d tables created" % (
                m["tables_dropped"], m["schemas_dropped"], m["tables_created"]))
    restarts = [r for r in w.restarts if r[0] == "mariadb"]
    f.check("MariaDB: the server restarted", restarts, str(w.restarts))
    orphans = [lk for lk in w.orphans if lk.table.maria]
    logged = [r for r in released if r.get("database") in labels]
    metric = sum(v for k, v in scraper.released_by_db.items() if k in labels)
    lo = len(orphans) - w.maria_in_flight_at_restart
    f.check("MariaDB: its releases in /metrics > 0 and equal to its orphans",
            metric > 0 and lo <= metric <= len(orphans),
            "%d counted, %d orphaned (%d in flight at a restart)" % (
                metric, len(orphans), w.maria_in_flight_at_restart))
    polls = {dict(k[1]).get("database"): int(v) for k, v in scraper.last_metrics.items()
             if k[0] == "lock_arbiter_poll_duration_seconds_count"
             and dict(k[1]).get("database") in labels}
    databases = [d for d in dbs if d.kind == "mariadb"]
    return [
        ("mariadb", "%s; databases %s (the URL's), %s (--schema); %s successful polls;"
                    " restarts %s" % (
                        databases[0].server.version,
                        ", ".join(d.name for d in databases),
                        ", ".join(s for d in databases for s in d.schemas if s != d.name),
                        sum(polls.values()), restarts)),
        ("mariadb locks", "%d live, %d orphaned, %d unresolvable; by LOCKED form: %s" % (
            sum(m[(fm, "live")] for fm in LOCK_FORMS), len(orphans),
            sum(m[(fm, "unresolved")] for fm in LOCK_FORMS),
            "; ".join("%s %s" % kv for kv in forms.items()))),
        ("mariadb releases", "%d in the log, %d in /metrics, %d seen in the database;"
                             " rules %s" % (
                                 len(logged), metric, m["orphans_released"],
                                 dict(collections.Counter(r.get("rule") for r in logged)))),
        ("mariadb tables", "%d created (%s), %d dropped, %d databases dropped" % (
            m["tables_created"], ", ".join("%s %d" % (fm, m["created_" + fm])
                                           for fm in LOCK_FORMS),
            m["tables_dropped"], m["schemas_dropped"])),
    ]


def metric_sum(m, name):
    return int(sum(v for (n, _), v in m.items() if n == name))


def server_dsn(d):
    return d.server.dsn(d.name)


def parse_duration(s):
    m = re.match(r"^(\d+(?:\.\d+)?)(ms|s)$", s)
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def delay_summary(orphans):
    ds = sorted(lk.released - lk.killed for lk in orphans
                if lk.released is not None and lk.killed is not None)
    if not ds:
        return "none"
    return "median %.2f s, p95 %.2f s, max %.2f s (as the workload saw it)" % (
        statistics.median(ds), ds[int(0.95 * (len(ds) - 1))], ds[-1])


if __name__ == "__main__":
    sys.exit(main())
