#!/usr/bin/python3
"""Randomized, model-based chaos simulation of lock-arbiter (issue 9, part 2).

The real binary (two instances at once), a real PostgreSQL 15 (several
databases, schema-per-tenant lock tables added and dropped, restarts) and the
simulated Kubernetes API (k8s_sim: pods created, restarted, crash-looping,
finished, deleted, recreated under the same name, API faults, token rotation).

A generator plays simulated Liquibase runs ("episodes": one lock held by one
simulated holder process, from take to release) in parallel across lock
tables. It knows the ground truth: the holder is the container instance that
took the lock, and the generator itself ends that process (pod deleted or
replaced, container restarted or crash-looping, pod phase Succeeded/Failed,
init container stopped). A pod whose deletion is in progress is alive.

An AFTER UPDATE trigger on every lock table writes each change, with
clock_timestamp() and the session's application_name, to public.chaos_audit,
so every release the arbiters make is known exactly, on the same clock as the
generator's (local wall time: same machine). The oracle checks:

  - no arbiter release while the holder may still be alive (zero tolerance);
  - every orphan whose death the API shows, and that the arbiter has what it
    needs to judge (a resolvable holder; no sidecar alive since before the
    grant with an unknown holder container; a death not within the grant's
    second), is released within --bound seconds of the moment the death is
    visible (the death, or the end of an API fault, database outage or arbiter
    restart that overlapped it, plus the clients' documented backoff);
  - no arbiter ever exits except when the simulation stops it on purpose
    (SIGTERM, which must then exit 0).

The session guard (DESIGN.md section 6). Every holder pod has a loopback
address (127.x.y.z) as its podIP, and in some episodes the holder has a
database session from that address (holder_session.py: a client bound to it,
so PostgreSQL records it as client_addr). A holder that dies in a statement
(active) or with a transaction open (idle in transaction) leaves a session
that outlives it, ended by the holder's side after a random time or never
(until the episode's end); an idle one can commit nothing. After some
deaths the address gets a new owner (a new pod with the same IP, the
holder's restarted container) that opens a session of its own. Per run
(--terminate-orphaned-sessions on|off, else from the seed) the arbiters end
orphaned sessions or not. A session's start comes from pg_stat_activity (read
by the session itself), its end from its own side, a server stop, or a FATAL
57P01 outside a stop (pg_terminate_backend, which only an arbiter calls);
which sessions were open at a release, from pg_stat_activity as the
releasing transaction saw it (the audit trigger). The oracle adds:

  - no arbiter release while a blocking (not idle) session of the dead
    holder, begun before its death, is open: a FALSE release, like one while
    the holder lives. Counted apart as UNGUARDED (a failure only with
    --strict-guard): the releasing arbiter process was never shown the live
    pod by the API (its request log, told apart by Host) and LOCKEDBY has no
    address of it, so that process cannot know where the sessions come from;
  - no termination of any session but a dead holder's begun before its
    death (a FALSE termination: the new owner's, a live holder's);
  - while such a session is open the orphan is kept, and the bound runs from
    the session's end; with --terminate-orphaned-sessions a session the
    arbiter can place before every current owner of the address (DESIGN.md)
    is ended and the lock released within the bound; a new owner's session
    begun after the death as the API records it (plus the skew) keeps nothing.

MariaDB (--backend mariadb, or mixed: every other database on MariaDB, one
pair of arbiters watching both). A real MariaDB 10.11 (mariadbserver.py)
behind one --database URL: a MySQL database plays the role of a schema, and
the arbiter's --schema list applies to every --database, so the home
database's lock table and every tenant's, each in a database of its own,
are watched through that one URL; tenants come and go (database churn)
under names from a pool the arbiters are given as --schema at start (mixed:
PostgreSQL's schemas too, from the same pool, with public). Lock tables are
DATABASECHANGELOGLOCK as real Liquibase created them, LOCKED BIT(1),
TINYINT(1) or TINYINT. An AFTER UPDATE trigger on each writes every change
to chaos_meta.audit with SYSDATE(6) and the releasing account (the arbiters
connect as lock-arbiter-A and -B: PROCESS, SELECT and UPDATE on the lock
tables, CONNECTION ADMIN with --terminate-orphaned-sessions), and at a
release the pods' sessions in information_schema.PROCESSLIST with their
COMMAND and TIME. Pods' sessions (maria_session.py) are PyMySQL bound to
the pod's address: SELECT SLEEP (active), an uncommitted UPDATE (idle_tx,
COMMAND Sleep), or idle; KILL CONNECTION closes one without a word, so an
end outside a server stop that its client did not ask for is a
termination. The server restarts (fast or immediate) as PostgreSQL does;
an outage disrupts only the lock tables on that server. What the oracle
adds for MySQL, whose process list has no session start: COMMAND Sleep is
idle (an open transaction between statements too: counted apart); the
guard bounds a start by polls (connection-id samples) and TIME, so a new
owner's session begun within a poll or so of the death, or while an
arbiter was not polling, cannot be placed after it and may keep the lock,
and a dead holder's session may be ended only once a poll or TIME bounds
its start before the line: both are classified and counted, never failures.

Seeded: every episode's plan comes from random.Random("SEED:slot:k") and the
global chaos from random.Random("SEED:chaos"). Every action is written with
its time to history.jsonl; --replay FILE executes the same actions at the same
offsets (timing nondeterminism of the processes aside) and checks again.

    chaos.py --episodes 5000 --seed 42
    chaos.py --backend mariadb --episodes 600 --seed 7
    chaos.py --replay /tmp/lock-arbiter-chaos-42-XXXX/history.jsonl
"""

import argparse
import calendar
import heapq
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s_sim"))
sys.path.insert(0, HERE)

from pgserver import PgServer, quote_ident, quote_literal  # noqa: E402
from mariadbserver import quote_ident as my_ident, quote_literal as my_literal  # noqa: E402
from holder_session import MODES, HolderSession, SessionError  # noqa: E402
from simctl import Sim, SimError  # noqa: E402
import arbiter_proc  # noqa: E402

HOLDER_NS = ("a", "b")
OTHER_NS = "c"  # a namespace the arbiters are not told about
TABLE = "databasechangeloglock"
APP_HOLDER = "chaos-liquibase"
APP_OPERATOR = "chaos-operator"
APP_SESSION = "chaos-holder-session"

# Arbiter settings: polls every 100 ms; the simulator writes container and pod
# times in whole seconds, so a death later than the grant's second plus the
# skew is what the API can show. Orphans the bound applies to die at least
# MIN_PROVABLE_DEATH after the grant.
POLL = "100ms"
SKEW = "200ms"
MIN_AGE = "300ms"
MIN_PROVABLE_DEATH = 2.3
SKEW_S = 0.2

# The session guard. A holder's session must begin long enough before the
# death that the API's whole-second record of it (plus the skew) still places
# the session before it: a second and a bit. The guard's plan of an episode
# comes from its own stream, random.Random("SEED:slot:k:guard"), so that the
# plans of the other episodes stay what they were for a seed.
SESSION_LEAD = 1.3
P_SESSION = (0.35, 0.7)  # the holder has a session from its pod's address (lives, dies)
P_LINGER = 0.7  # a dying holder's session outlives the death (if it is not idle)
P_NEVER = 0.3  # ... and stays open until the episode's end
P_REUSE = 0.6  # a lingering orphan's address gets a new owner with a session
P_QUICK_REUSE = 0.35  # on MariaDB, that owner connects within about a second of the death
# A new owner's session keeps nothing once it began this long (plus the
# skew) after the moment an arbiter can have seen a deleted pod gone: its
# record of the death of a bare 404.
REUSE_MARGIN = 1.0
INF = float("inf")

# The database servers' restarts, by the backend they stop and start.
STOP_OPS = {"pg_stop": "postgresql", "my_stop": "mariadb"}
START_OPS = {"pg_start": "postgresql", "my_start": "mariadb"}

# MySQL/MariaDB have no session start time: the guard bounds it by the
# process list's TIME (whole seconds of the current command) and by the
# highest connection id each poll of the arbiter's connection sees
# (my-act.c). A session is placed after a moment only when a poll ran
# between the two; before it, by the first poll after the session's start
# (or TIME). The oracle expects a placement only with this much room for
# the poll (the 100 ms interval, and a loaded machine), and only while the
# arbiters polled without a break (no restart of theirs, no outage).
MY_SAMPLE_MARGIN = 0.6

# Allowances after a disruption ends, from the clients' documented backoff:
# the Kubernetes client backs off up to 10 s after outage answers, and a hung
# request costs its 5 s timeout; the database reconnect backs off up to 15 s.
API_BACKOFF_MAX = 10.0
API_REQUEST_TIMEOUT = 5.0
DB_BACKOFF_MAX = 15.0

FAULTS = [
    ("status", {"code": 500}),
    ("status", {"code": 503}),
    ("status", {"code": 429, "retry_after": 1}),
    ("forbidden", {}),
    ("unauthorized", {}),
    ("hang", {}),
    ("latency", {"ms": 1500}),
    ("malformed", {"variant": "truncated"}),
    ("malformed", {"variant": "wrong_types"}),
    ("malformed", {"variant": "not_json"}),
    ("oversized", {}),
    ("reset", {"mode": "rst"}),
    ("reset", {"mode": "close"}),
    ("expired", {}),
]


def now():
    return time.time()


def log_time(rec):
    """A log record's ts (RFC 3339, UTC) in Unix seconds; 0 when absent."""
    ts = rec.get("ts") or ""
    try:
        whole = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    frac = ts[19:].rstrip("Z")
    return whole + (float(frac) if frac.startswith(".") and frac[1:].isdigit() else 0.0)


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


# -- the world: the database servers, the simulated API, the arbiters --------------

# A release also records the pods' sessions open at that instant, in the
# releasing transaction (pg_stat_activity is read once per transaction): the
# ground truth of whether the dead holder's session was still there.
AUDIT_SQL = r"""
CREATE TABLE IF NOT EXISTS public.chaos_audit (
  id bigserial PRIMARY KEY, ts double precision, app text, sch text, tbl text,
  old_by text, old_granted text, old_locked boolean, new_locked boolean, new_by text,
  sessions text);
CREATE OR REPLACE FUNCTION public.chaos_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.chaos_audit (ts, app, sch, tbl, old_by, old_granted, old_locked,
                                  new_locked, new_by, sessions)
  VALUES (extract(epoch FROM clock_timestamp()), current_setting('application_name'),
          TG_TABLE_SCHEMA, TG_TABLE_NAME, OLD.lockedby,
          to_char(OLD.lockgranted, 'YYYY-MM-DD HH24:MI:SS.US'), OLD.locked, NEW.locked,
          NEW.lockedby,
          CASE WHEN OLD.locked AND NOT NEW.locked THEN
            (SELECT coalesce(json_agg(json_build_object(
                      'pid', a.pid, 'addr', host(a.client_addr), 'state', a.state,
                      'start', extract(epoch FROM a.backend_start)::float8)), '[]')::text
             FROM pg_stat_activity a
             WHERE a.client_addr << inet '127.0.0.0/8' AND a.client_addr <> inet '127.0.0.1'
               AND a.pid <> pg_backend_pid())
          END);
  RETURN NULL;
END $$;
"""


def lock_table_sql(schema):
    qs = quote_ident(schema)
    qt = qs + "." + quote_ident(TABLE)
    return ("CREATE SCHEMA IF NOT EXISTS %s;"
            " CREATE TABLE %s (id INTEGER NOT NULL, locked BOOLEAN NOT NULL,"
            " lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255),"
            " CONSTRAINT %s PRIMARY KEY (id));"
            " INSERT INTO %s VALUES (1, FALSE, NULL, NULL);"
            " CREATE TRIGGER chaos_audit AFTER UPDATE ON %s FOR EACH ROW"
            " EXECUTE FUNCTION public.chaos_audit_fn();"
            % (qs, qt, quote_ident(TABLE + "_pkey"), qt, qt))


class ServerBackend:
    """What every backend does alike with its throwaway server (self.server:
    pgserver.PgServer, mariadbserver.MariaDBServer)."""

    def label(self, db):
        """The database as the arbiter names it (host:port/db)."""
        return "%s:%d/%s" % (self.server.host, self.server.port, db)

    def stop(self, mode):
        self.server.stop(mode)

    def start_again(self):
        self.server.start()

    def cleanup(self):
        self.server.cleanup()


class PgBackend(ServerBackend):
    """PostgreSQL 15: one server, a database per --database URL, a lock table
    per schema, the audit in each database's public.chaos_audit."""

    name = "postgresql"
    stop_op, start_op = "pg_stop", "pg_start"

    def __init__(self, world):
        self.w = world
        # synchronous_commit on: an immediate stop (a crash) must not lose a
        # holder's committed unlock, which would bring back a lock the oracle
        # saw end (found by a 5 000-episode run: two "false releases" that
        # were the arbiter rightly releasing a resurrected orphan).
        self.server = PgServer(settings={"synchronous_commit": "on"})

    def start(self):
        self.server.start()
        # Pods' sessions come from 127.x.y.z (initdb trusts only 127.0.0.1).
        with open(os.path.join(self.server.datadir, "pg_hba.conf"), "a",
                  encoding="utf-8") as f:
            f.write("\nhost all all 127.0.0.0/8 trust\n")
        self.server.psql("SELECT pg_reload_conf()")

    def setup_db(self, db):
        self.server.create_database(db)
        self.psql(db, AUDIT_SQL, app=APP_OPERATOR)

    def dsn(self, db, arbiter):
        # The audit tells the two arbiters apart by application_name.
        return self.server.dsn(db) + "?application_name=lock-arbiter-" + arbiter

    def home_schema(self, db):
        return "public"

    def psql(self, db, sql, app=APP_HOLDER, timeout=15):
        env = self.server._client_env()
        env["PGAPPNAME"] = app
        out = subprocess.run(
            [self.server._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.server.host, "-p", str(self.server.port), "-U", self.server.user,
             "-d", db, "-c", sql], env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False)
        if out.returncode != 0:
            raise RuntimeError("psql %s: %s" % (db, out.stderr.strip()[:300]))
        return out.stdout

    def create_table(self, db, schema, form=None):
        return self.psql(db, lock_table_sql(schema), app=APP_OPERATOR)

    def drop_table(self, db, schema):
        return self.psql(db, "DROP SCHEMA IF EXISTS %s CASCADE" % quote_ident(schema),
                         app=APP_OPERATOR)

    def take(self, db, schema, lockedby):
        qt = quote_ident(schema) + "." + quote_ident(TABLE)
        out = self.psql(db, "UPDATE %s SET locked = TRUE, lockedby = %s,"
                        " lockgranted = LOCALTIMESTAMP WHERE id = 1 AND NOT locked"
                        " RETURNING to_char(lockgranted, 'YYYY-MM-DD HH24:MI:SS.US')"
                        % (qt, quote_literal(lockedby))).strip()
        if not out:
            raise RuntimeError("lock not free")
        return out

    def unlock(self, db, schema, lockedby, granted, operator):
        qt = quote_ident(schema) + "." + quote_ident(TABLE)
        cond = " AND lockgranted = %s::timestamp" % quote_literal(granted) if granted else ""
        return self.psql(db, "UPDATE %s SET locked = FALSE, lockgranted = NULL,"
                         " lockedby = NULL WHERE id = 1 AND locked AND lockedby = %s%s"
                         " RETURNING 1" % (qt, quote_literal(lockedby), cond),
                         app=APP_OPERATOR if operator else APP_HOLDER).strip() == "1"

    def read_audit(self, db, pos):
        """The audit rows after id pos, oldest first (sessions decoded)."""
        out = self.psql(db, "SELECT coalesce(json_agg(a ORDER BY id), '[]') FROM"
                        " (SELECT * FROM public.chaos_audit WHERE id > %d"
                        " ORDER BY id LIMIT 2000) a" % pos, app=APP_OPERATOR, timeout=10)
        rows = json.loads(out)
        for row in rows:
            row["sessions"] = json.loads(row["sessions"]) if row.get("sessions") else None
        return rows

    def session(self, db, schema, ip):
        return HolderSession(self.server.host, self.server.port, db, ip, app=APP_SESSION)


class MariaBackend(ServerBackend):
    """MariaDB 10.11: one server behind one --database URL (its database the
    home lock table's), every other lock table in a database of its own
    named by --schema (a MySQL database plays the role of a PostgreSQL
    schema, and the arbiter's --schema list applies to every --database, so
    one URL per server watches them all without two actors per table). The
    lock tables are created as real Liquibase created them, LOCKED in one
    of the three forms (mariadbserver.LOCK_FORMS). The audit is one table,
    chaos_meta.audit, written by an AFTER UPDATE trigger on every lock
    table (the trigger runs as its definer, root, who sees every session);
    the arbiters connect as accounts of their own (lock-arbiter-A, -B: the
    audit names the releasing one by USER()), with PROCESS, SELECT and
    UPDATE on each lock table, and CONNECTION ADMIN with
    --terminate-orphaned-sessions; the pods' sessions as a migration
    account without admin privileges."""

    name = "mariadb"
    stop_op, start_op = "my_stop", "my_start"
    META = "chaos_meta"
    POD_USER, POD_PASSWORD = "pod", "pod-secret"
    ARBITER_PASSWORD = "arbiter-secret"

    def __init__(self, world):
        from mariadbserver import MariaDBServer
        self.w = world
        # Every commit durable: an immediate stop (SIGKILL) must not lose a
        # holder's committed unlock or an audit row (the harness's default
        # flushes the log once a second).
        self.server = MariaDBServer(settings={"innodb_flush_log_at_trx_commit": 1})

    def arbiter_users(self):
        return ["lock-arbiter-%s" % n for n in ("A", "B")]

    def start(self):
        s = self.server
        s.start()
        users = ", ".join("%s@'%%'" % my_literal(u) for u in self.arbiter_users())
        admin = "PROCESS, CONNECTION ADMIN" if self.w.cfg.get("terminate_sessions") else "PROCESS"
        stmts = ["CREATE DATABASE %s" % my_ident(self.META),
                 "CREATE TABLE %s.audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, ts DOUBLE,"
                 " app VARCHAR(128), sch VARCHAR(64), tbl VARCHAR(64), old_by VARCHAR(255),"
                 " old_granted VARCHAR(40), old_locked BOOL, new_locked BOOL,"
                 " new_by VARCHAR(255), sessions LONGTEXT)" % my_ident(self.META),
                 "CREATE TABLE %s.work (id BIGINT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL)"
                 % my_ident(self.META),
                 "CREATE USER %s@'%%' IDENTIFIED BY %s" % (
                     my_literal(self.POD_USER), my_literal(self.POD_PASSWORD)),
                 "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON *.* TO"
                 " %s@'%%'" % my_literal(self.POD_USER)]
        for u in self.arbiter_users():
            stmts.append("CREATE USER %s@'%%' IDENTIFIED BY %s" % (
                my_literal(u), my_literal(self.ARBITER_PASSWORD)))
        stmts.append("GRANT %s ON *.* TO %s" % (admin, users))
        s.sql("; ".join(stmts))

    def setup_db(self, db):
        self.server.sql("CREATE DATABASE %s" % my_ident(db))

    def dsn(self, db, arbiter):
        return self.server.dsn(db, user="lock-arbiter-" + arbiter,
                               password=self.ARBITER_PASSWORD)

    def home_schema(self, db):
        return db

    def sql(self, sql, db=None, operator=True, timeout=15):
        """As root (the operator; through the unix socket), or as the
        application's account (the holder; TCP from 127.0.0.1)."""
        from mariadbserver import APP_USER
        rc, out, err = self.server.sql_result(sql, db, user="root" if operator else APP_USER,
                                              timeout=timeout)
        if rc != 0:
            raise RuntimeError("mariadb %s: %s" % (db, err.strip()[:300]))
        return out

    def create_table(self, db, schema, form=None):
        """The lock table in database schema (the home database db's own
        when schema is db), as real Liquibase created it with LOCKED form;
        its audit trigger; SELECT, UPDATE for the arbiters. Starts from
        nothing, so that a retry after a failure midway (a restart) works."""
        from mariadbserver import CAPTURE_DB, LOCK_TABLE, lock_table_fixture
        qs = my_ident(schema)
        qt = qs + "." + my_ident(LOCK_TABLE)
        if schema == db:
            stmts = ["DROP TABLE IF EXISTS %s" % qt]
        else:
            stmts = ["DROP DATABASE IF EXISTS %s" % qs, "CREATE DATABASE %s" % qs]
        for s in lock_table_fixture()[form or "tinyint1"]["statements"]:
            stmts.append(s.rstrip().rstrip(";").replace(CAPTURE_DB + ".", qs + "."))
        stmts.append(
            "CREATE TRIGGER %s.chaos_audit AFTER UPDATE ON %s FOR EACH ROW"
            " INSERT INTO %s.audit (ts, app, sch, tbl, old_by, old_granted, old_locked,"
            " new_locked, new_by, sessions)"
            " VALUES (UNIX_TIMESTAMP(SYSDATE(6)), SUBSTRING_INDEX(USER(), '@', 1), %s, %s,"
            " OLD.LOCKEDBY, DATE_FORMAT(OLD.LOCKGRANTED, '%%Y-%%m-%%d %%H:%%i:%%s'),"
            " OLD.`LOCKED` <> 0, NEW.`LOCKED` <> 0, NEW.LOCKEDBY,"
            " IF(OLD.`LOCKED` <> 0 AND NEW.`LOCKED` = 0,"
            " (SELECT COALESCE(JSON_ARRAYAGG(JSON_OBJECT('id', p.ID, 'host', p.HOST,"
            " 'command', p.COMMAND, 'time', p.TIME, 'time_ms', p.TIME_MS)), '[]')"
            " FROM information_schema.PROCESSLIST p WHERE p.HOST LIKE '127.%%'"
            " AND p.HOST NOT LIKE '127.0.0.1:%%' AND p.ID <> CONNECTION_ID()), NULL))"
            % (qs, qt, my_ident(self.META), my_literal(schema), my_literal(LOCK_TABLE)))
        stmts.append("GRANT SELECT, UPDATE ON %s TO %s" % (qt, ", ".join(
            "%s@'%%'" % my_literal(u) for u in self.arbiter_users())))
        return self.sql("; ".join(stmts))

    def drop_table(self, db, schema):
        return self.sql("DROP DATABASE IF EXISTS %s" % my_ident(schema))

    def take(self, db, schema, lockedby):
        """As Liquibase 4.28 takes it (LOCKGRANTED = NOW(), through a variable
        so that the value written is known)."""
        from mariadbserver import LOCK_TABLE
        qt = my_ident(schema) + "." + my_ident(LOCK_TABLE)
        out = self.sql("SET @g = NOW(); UPDATE %s SET `LOCKED` = 1, LOCKEDBY = %s,"
                       " LOCKGRANTED = @g WHERE ID = 1 AND `LOCKED` = 0;"
                       " SELECT ROW_COUNT(), DATE_FORMAT(@g, '%%Y-%%m-%%d %%H:%%i:%%s')"
                       % (qt, my_literal(lockedby)), operator=False).split()
        if not out or out[0] != "1":
            raise RuntimeError("lock not free")
        return " ".join(out[1:])

    def unlock(self, db, schema, lockedby, granted, operator):
        from mariadbserver import LOCK_TABLE
        qt = my_ident(schema) + "." + my_ident(LOCK_TABLE)
        cond = " AND LOCKGRANTED = %s" % my_literal(granted) if granted else ""
        out = self.sql("UPDATE %s SET `LOCKED` = 0, LOCKGRANTED = NULL, LOCKEDBY = NULL"
                       " WHERE ID = 1 AND `LOCKED` <> 0 AND BINARY LOCKEDBY = %s%s;"
                       " SELECT ROW_COUNT()" % (qt, my_literal(lockedby), cond),
                       operator=operator)
        return out.strip() == "1"

    def read_audit(self, db, pos):
        """The audit rows after id pos, oldest first; the sessions in the
        PostgreSQL audit's terms: pid (the connection id), addr, port,
        state (COMMAND Sleep is idle, Query active), time (TIME)."""
        out = self.sql("SELECT JSON_OBJECT('id', id, 'ts', ts, 'app', app, 'sch', sch,"
                       " 'tbl', tbl, 'old_by', old_by, 'old_granted', old_granted,"
                       " 'old_locked', old_locked, 'new_locked', new_locked, 'new_by', new_by,"
                       " 'sessions', sessions) FROM %s.audit WHERE id > %d ORDER BY id"
                       " LIMIT 2000" % (my_ident(self.META), pos), timeout=10)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        for row in rows:
            raw = json.loads(row["sessions"]) if row.get("sessions") else None
            if raw is not None:
                sess = []
                for r in raw:
                    addr, _, port = str(r.get("host")).rpartition(":")
                    cmd = r.get("command")
                    sess.append({"pid": r.get("id"), "addr": addr,
                                 "port": int(port) if port.isdigit() else None,
                                 "state": {"Sleep": "idle", "Query": "active"}.get(cmd, cmd),
                                 "command": cmd, "time": r.get("time")})
                raw = sess
            row["sessions"] = raw
        return rows

    def session(self, db, schema, ip):
        from maria_session import MariaHolderSession
        return MariaHolderSession(self.server.host, self.server.port, schema or db, ip,
                                  self.POD_USER, self.POD_PASSWORD,
                                  "%s.work" % my_ident(self.META))


BACKENDS = {"postgresql": PgBackend, "mariadb": MariaBackend}


def db_layout(cfg):
    """[(database, backend, lock tables)] of a run. postgresql: every
    database on PostgreSQL, --slots-per-db each. mariadb: one MariaDB URL
    with the slots of every database (its home and tenant databases).
    mixed: every other database on MariaDB (chaos1, ...), the rest on
    PostgreSQL, so that one pair of arbiters watches both at once."""
    kind = cfg.get("backend", "postgresql")
    n, per = cfg["databases"], cfg["slots_per_db"]
    if kind == "postgresql":
        return [("chaos%d" % i, "postgresql", per) for i in range(n)]
    if kind == "mariadb":
        return [("chaos0", "mariadb", n * per)]
    return [("chaos%d" % i, "mariadb" if i % 2 else "postgresql", per) for i in range(n)]


def schema_pool(cfg):
    """The tenant names of a run that has MariaDB: lock tables come and go
    under these names only, as the arbiters are given them (--schema) at
    start. Enough for every tenant slot of one namespace (a PostgreSQL
    database, or the MariaDB server) and three spares, so that a dropped
    name rests before it comes back. None: any name (PostgreSQL alone, no
    --schema)."""
    if cfg.get("backend", "postgresql") == "postgresql":
        return None
    most = max(n - 1 for _, _, n in db_layout(cfg))
    return ["tenant_%d" % (i + 1) for i in range(most + 3)]


class World:
    def __init__(self, cfg, workdir):
        self.cfg = cfg
        self.workdir = workdir
        self.layout = db_layout(cfg)
        self.dbs = [db for db, _, _ in self.layout]
        self.db_kind = {db: kind for db, kind, _ in self.layout}
        self.backends = {}
        for _, kind, _ in self.layout:
            if kind not in self.backends:
                self.backends[kind] = BACKENDS[kind](self)
        self.sim = None
        self.arbiters = {}
        self.all_arbiters = []
        self.arbiter_logs = {}
        self.arb_generation = {}
        self.expected_down = set()
        self.unexpected_exits = []
        self.shutdowns = []
        self.sessions = {}  # sid -> HolderSession or MariaHolderSession, every one opened

    def backend(self, db):
        return self.backends[self.db_kind[db]]

    def label(self, db):
        """The database as the arbiter names it in its log (host:port/db)."""
        return self.backend(db).label(db) if db in self.db_kind else None

    def start(self):
        for b in self.backends.values():
            b.start()
        self.sim = Sim(os.path.join(self.workdir, "sim"), namespaces=list(HOLDER_NS) + [OTHER_NS])
        self.sim.start()
        for db in self.dbs:
            self.backend(db).setup_db(db)
        self.crash_hook = None

    def api_url(self, name):
        """Arbiter B reaches the API by the name localhost (the certificate
        names it): the API's request log (Host) then tells whose request it
        served, for the oracle's ground truth of what each one can know."""
        if name == "B":
            return self.sim.url.replace("//127.0.0.1:", "//localhost:")
        return self.sim.url

    def api_host(self, name):
        return self.api_url(name).split("//", 1)[1].rstrip("/")

    def arbiter_args(self, name):
        args = ["run", "--poll-interval", POLL, "--clock-skew", SKEW, "--min-lock-age", MIN_AGE,
                "--kube-api", self.api_url(name), "--kube-token-file", self.sim.token_file,
                "--kube-ca-file", self.sim.ca, "--listen", "127.0.0.1:0"]
        for ns in HOLDER_NS:
            args += ["--holder-namespace", ns]
        if self.cfg.get("terminate_sessions"):
            args.append("--terminate-orphaned-sessions")
        for db in self.dbs:
            args += ["--database", self.backend(db).dsn(db, name)]
        # With MariaDB the tenants are named: its --schema list is every
        # tenant database (and, mixed, PostgreSQL's schemas the same list).
        pool = schema_pool(self.cfg)
        if pool is not None:
            if "postgresql" in self.backends:
                args += ["--schema", "public"]
            for schema in pool:
                args += ["--schema", schema]
        return args

    def start_arbiter(self, name):
        gen = self.arb_generation.get(name, 0) + 1
        self.arb_generation[name] = gen
        a = arbiter_proc.Arbiter(self.arbiter_args(name), name="arbiter-%s.%d" % (name, gen))
        a.started_at = now()
        a.start()
        self.arbiters[name] = a
        self.all_arbiters.append(a)
        self.expected_down.discard(name)

    def check_arbiters(self):
        """Records any arbiter that exited without being asked, and restarts it
        so that the run goes on (the run fails at the end)."""
        for name, a in list(self.arbiters.items()):
            rc = a.proc.poll()
            if rc is not None and name not in self.expected_down:
                self.unexpected_exits.append({
                    "arbiter": a.name, "time": now(), "exit": rc,
                    "log_tail": "\n".join(a.lines[-60:])})
                self.save_log(a)
                if self.crash_hook:
                    self.crash_hook(name)
                self.start_arbiter(name)

    def stop_arbiter(self, name, timeout=10.0):
        """A deliberate SIGTERM: must exit 0 (DESIGN.md section 9: within 2 s)."""
        a = self.arbiters[name]
        self.expected_down.add(name)
        t0 = time.monotonic()
        try:
            rc = a.stop(signal.SIGTERM, timeout=timeout)
        except AssertionError:
            rc = "timeout"
        took = time.monotonic() - t0
        self.shutdowns.append({"arbiter": a.name, "exit": rc, "seconds": round(took, 3)})
        if rc != 0:
            self.unexpected_exits.append({
                "arbiter": a.name, "time": now(), "exit": rc,
                "what": "SIGTERM did not end in exit 0 within %.0f s" % timeout,
                "log_tail": "\n".join(a.lines[-60:])})
        self.save_log(a)

    def save_log(self, a):
        path = os.path.join(self.workdir, a.name + ".log")
        with open(path, "w") as f:
            f.write(a.log_text() + "\n")
        self.arbiter_logs[a.name] = path

    def stop(self):
        for name, a in self.arbiters.items():
            if a.proc.poll() is None:
                self.stop_arbiter(name)
        for a in self.all_arbiters:
            self.save_log(a)
        for sess in self.sessions.values():
            sess.abandon()
        if self.sim:
            self.sim.stop()
        for b in self.backends.values():
            b.cleanup()


# -- actions: executed in generation and in replay alike ----------------------------

class Executor:
    """Executes one primitive action against the world, records it in the
    history with the wall-clock times around it, and tells the oracle."""

    def __init__(self, world, oracle, history, t0):
        self.w = world
        self.oracle = oracle
        self.history = history
        self.t0 = t0
        self.faults_active = None

    def do(self, op, **kw):
        rec = dict(op=op, **kw)
        lo = now()
        ok, result = True, None
        try:
            result = getattr(self, "op_" + op)(**kw)
        except (SimError, RuntimeError, SessionError, subprocess.SubprocessError,
                OSError) as e:
            ok, result = False, str(e)[:300]
        hi = now()
        rec["t"] = round(lo - self.t0, 4)
        rec["ok"] = ok
        if not ok:
            rec["error"] = result
        out = dict(rec)
        out["dur"] = round(hi - lo, 4)
        self.history.write(json.dumps(out, sort_keys=True) + "\n")
        self.oracle.observe(rec, lo, hi, result)
        return ok, result

    # pods
    def op_create_pod(self, ns, name, desc):
        return self.w.sim.create_pod(name, ns, **desc)

    def op_delete_pod(self, ns, name, kills=None):
        return self.w.sim.delete_pod(ns, name)

    def op_recreate_pod(self, ns, name, overrides, kills=None):
        return self.w.sim.recreate_pod(ns, name, **overrides)

    def op_restart(self, ns, name, container, crashloop=False, kills=None):
        return self.w.sim.restart(ns, name, container, crashloop=crashloop)

    def op_stop_container(self, ns, name, container, exit_code=1, kills=None):
        return self.w.sim.stop_container(ns, name, container, exit_code=exit_code)

    def op_start_container(self, ns, name, container):
        return self.w.sim.start_container(ns, name, container)

    def op_phase(self, ns, name, phase, kills=None):
        return self.w.sim.set_phase(ns, name, phase)

    def op_deleting(self, ns, name, grace=30):
        return self.w.sim.mark_deleting(ns, name, grace=grace)

    # locks
    def op_take(self, ep, db, schema, lockedby, truth):
        return self.w.backend(db).take(db, schema, lockedby)

    def op_unlock(self, ep, db, schema, lockedby, who):
        return self.w.backend(db).unlock(db, schema, lockedby, self.oracle.granted_of(ep),
                                         operator=who != "holder")

    def op_ep_end(self, ep):
        return None

    # database sessions of pods (the session guard)
    def op_session_open(self, sid, ep, role, db, ip, mode, owner=None, schema=None):
        """A session from ip: role holder (the episode's holder), or reuse
        (the address's next owner, owner naming it). schema: on MariaDB,
        the database it connects to (the lock table's)."""
        sess = self.w.backend(db).session(db, schema, ip)
        sess.sid, sess.ep, sess.role, sess.owner = sid, ep, role, owner
        sess.backend = self.w.db_kind[db]
        sess.label = self.w.label(db)
        sess.open_lo = sess.open_hi = sess.end_lo = sess.end_hi = None
        sess.planned_end = None
        info = sess.open(mode)
        self.w.sessions[sid] = sess
        return info

    def op_session_end(self, sid, ep=None):
        sess = self.w.sessions.get(sid)
        if sess is None:
            raise RuntimeError("no open session %s" % sid)
        return sess.end()

    def op_ep_void(self, ep):
        return None

    # schemas (MariaDB: databases; form: the LOCKED column's type)
    def op_schema_create(self, db, schema, form=None):
        return self.w.backend(db).create_table(db, schema, form)

    def op_schema_drop(self, db, schema):
        return self.w.backend(db).drop_table(db, schema)

    # global chaos
    def op_fault_add(self, type, spec):
        return self.w.sim.add_fault(type, **spec)

    def op_fault_clear(self):
        self.w.sim.clear_faults()
        return self.w.sim.release_hangs()

    def op_watches(self, what):
        if what == "expire":
            return self.w.sim.expire_watches()
        if what == "compact":
            return self.w.sim.compact()
        return self.w.sim.close_watches(what)

    def op_rotate(self, token):
        self.w.sim.rotate_token(token)

    def op_pg_stop(self, mode):
        self.w.backends["postgresql"].stop(mode)

    def op_pg_start(self):
        self.w.backends["postgresql"].start_again()

    def op_my_stop(self, mode):
        self.w.backends["mariadb"].stop(mode)

    def op_my_start(self):
        self.w.backends["mariadb"].start_again()

    def op_arbiter_stop(self, name):
        self.w.stop_arbiter(name)

    def op_arbiter_start(self, name):
        self.w.start_arbiter(name)

    def op_arbiters_start(self):
        for name in ("A", "B"):
            self.w.start_arbiter(name)


# -- the oracle ------------------------------------------------------------------------

class Oracle:
    """Ground truth per episode, every lock change from the audit, and the
    disruption windows; judges at the end (and on the fly for false releases)."""

    def __init__(self, world, bound):
        self.w = world
        self.bound = bound
        self.eps = {}
        self.by_key = {}
        self.audit_pos = {}
        self.windows = []  # (kind, start, end_with_allowance, db or None)
        self.open = {}  # kind -> start
        self.pod_life = {}  # (ns, name) -> [[created, deleted or None]]
        self.false_releases = []
        self.foreign_releases = []
        self.verdicts = {}
        self.terminate = bool(world.cfg.get("terminate_sessions"))
        self.stops = {}  # backend -> [(lo, hi)] of every server stop: it ends every session
        self.ip_pods = {}  # podIP -> [(ns, name, created lo)]
        self.sim_gets = None  # pod path -> [(time, Host)] the API served it (at the end)
        self.session_open_failed = []  # errors of sessions that could not be opened
        self.slow_api = []  # (start, end) of API faults that answer slowly (latency, hang)
        world.crash_hook = self.on_crash

    def on_crash(self, name):
        """An arbiter that died lost what it saw; until both are back (and
        the backoff allowance), the bound cannot be held against it."""
        t = now()
        self.windows.append(("crash", t - 1.0, t + 3.0, None))

    # ground truth from the actions
    def observe(self, rec, lo, hi, result):
        op = rec["op"]
        ok = rec["ok"]
        if op == "take":
            ep = self.eps.setdefault(rec["ep"], {"id": rec["ep"]})
            ep.update(rec["truth"], db=rec["db"], schema=rec["schema"],
                      lockedby=rec["lockedby"], take_lo=lo, take_hi=hi,
                      backend=self.w.db_kind[rec["db"]])
            if ok:
                ep["granted"] = result
                self.by_key[(rec["db"], rec["schema"], rec["lockedby"], result)] = ep["id"]
            else:
                ep["void"] = True
        elif op in ("ep_end", "ep_void"):
            ep = self.eps.setdefault(rec["ep"], {"id": rec["ep"]})
            ep["end"] = hi
        elif op == "unlock":
            ep = self.eps.get(rec["ep"])
            if ep is not None and ok and result:
                ep.setdefault("unlocked_by", rec["who"])
                if rec["who"] == "operator":
                    ep.setdefault("operator_unlock_lo", lo)
        elif op == "session_open" and ok:
            sess = self.w.sessions[rec["sid"]]
            sess.open_lo, sess.open_hi = lo, hi
        elif op == "session_open" and ("db:" + self.w.db_kind[rec["db"]]) not in self.open:
            self.session_open_failed.append(rec.get("error"))
        elif op == "session_end" and ok:
            sess = self.w.sessions[rec["sid"]]
            if sess.end_lo is None:
                sess.end_lo, sess.end_hi = lo, hi
        elif op in STOP_OPS:
            self.stops.setdefault(STOP_OPS[op], []).append((lo, hi))
        elif op == "deleting" and ok:
            # The API now records a death 30 s ahead (deletionTimestamp =
            # now + grace): the arbiter places sessions against that.
            for ep in self.eps.values():
                if (ep.get("ns"), ep.get("pod")) == (rec["ns"], rec["name"]) and \
                        "take_lo" in ep and "end" not in ep:
                    ep.setdefault("deleting_lo", lo)
        if op in ("create_pod", "recreate_pod") and ok:
            ip = (rec.get("desc") or rec.get("overrides") or {}).get("podIP")
            if ip:
                self.ip_pods.setdefault(ip, []).append((rec["ns"], rec["name"], lo))
        if rec.get("kills") is not None and ok:
            ep = self.eps.get(rec["kills"])
            if ep is not None and "death_lo" not in ep:
                ep["death_lo"], ep["death_hi"], ep["death_op"] = lo, hi, op
        if op in ("create_pod", "recreate_pod") and ok:
            life = self.pod_life.setdefault((rec["ns"], rec["name"]), [])
            if op == "recreate_pod" and life and life[-1][1] is None:
                life[-1][1] = lo
            life.append([lo, None])
        if op == "delete_pod" and ok:
            life = self.pod_life.get((rec["ns"], rec["name"]))
            if life and life[-1][1] is None:
                life[-1][1] = hi
        # Disruption windows, with the clients' backoff allowance added at the end.
        if op == "fault_add" and ok:
            self.open.setdefault("api", (lo, rec["type"]))
        elif op == "fault_clear" and "api" in self.open:
            start, ftype = self.open.pop("api")
            extra = min(API_BACKOFF_MAX, 2 * (hi - start) + 1)
            if ftype in ("hang", "latency"):
                extra += API_REQUEST_TIMEOUT
                self.slow_api.append((start, hi + API_REQUEST_TIMEOUT))
            self.windows.append(("api", start, hi + extra, None))
        elif op in STOP_OPS:
            self.open.setdefault("db:" + STOP_OPS[op], lo)
        elif op in START_OPS and ("db:" + START_OPS[op]) in self.open:
            # A server's outage disrupts only the lock tables on it: each
            # database is a task of its own in the arbiter's one loop.
            start = self.open.pop("db:" + START_OPS[op])
            self.windows.append(("db", start, hi + min(DB_BACKOFF_MAX, 2 * (hi - start) + 1),
                                 START_OPS[op]))
        elif op == "arbiter_stop":
            self.open["arb-" + rec["name"]] = lo
        elif op == "arbiter_start" and ("arb-" + rec["name"]) in self.open:
            start = self.open.pop("arb-" + rec["name"])
            self.windows.append(("arbiter", start, hi + 2.0, None))
        elif op == "rotate":
            self.windows.append(("token", lo, hi + 2.0, None))

    def granted_of(self, epid):
        ep = self.eps.get(epid)
        return ep.get("granted") if ep else None

    # the audit
    def poll_audit(self):
        for db in self.w.dbs:
            pos = self.audit_pos.get(db, 0)
            try:
                rows = self.w.backend(db).read_audit(db, pos)
            except (RuntimeError, subprocess.SubprocessError, ValueError):
                continue  # the database is restarting: read it next time
            for row in rows:
                self.audit_pos[db] = max(self.audit_pos.get(db, 0), row["id"])
                self.on_audit(db, row)

    def on_audit(self, db, row):
        if not (row["old_locked"] and not row["new_locked"]):
            return
        epid = self.by_key.get((db, row["sch"], row["old_by"], row["old_granted"]))
        app = row["app"] or ""
        if epid is None:
            if app.startswith("lock-arbiter"):
                self.foreign_releases.append(dict(row, db=db))
            return
        ep = self.eps[epid]
        if app.startswith("lock-arbiter"):
            ep["released_at"] = row["ts"]
            ep["release_sessions"] = row.get("sessions")
            ep["released_by"] = app
            ep["release_db"] = db
            dlo = ep.get("death_lo")
            if dlo is None or row["ts"] < dlo:
                ep["false_release"] = True
                self.false_releases.append(epid)
        else:
            ep.setdefault("freed_at", row["ts"])

    def release_record(self, ep):
        """The releasing arbiter's own log line for this release (the one
        nearest in time: the same LOCKEDBY can come back in later episodes)."""
        label = self.w.label(ep["db"])
        app = ep.get("released_by", "")
        best = None
        for a in reversed(self.w.all_arbiters):
            if not app.endswith("-" + a.name.split("-")[1].split(".")[0]):
                continue
            for line, r in zip(reversed(a.lines), reversed(a.records)):
                if (r.get("msg") == "lock released" and r.get("database") == label
                        and r.get("schema") == ep["schema"]
                        and r.get("lockedby") == ep["lockedby"]):
                    off = abs(log_time(r) - ep.get("released_at", 0.0))
                    if best is None or off < best[0]:
                        best = (off, "%s: %s" % (a.name, line))
        return best[1] if best else None

    def last_verdict(self, db, schema):
        label = self.w.label(db)
        best = None
        for a in reversed(self.w.all_arbiters):
            for r in reversed(a.records[-400:]):
                if r.get("database") == label and r.get("schema") == schema and (
                        r.get("msg") in ("verdict", "lock released")):
                    best = "%s %s: %s" % (a.name, r.get("reason") or r.get("rule"),
                                          r.get("explanation") or r.get("evidence"))
                    break
            if best:
                break
        return best

    # the session guard
    def ep_sessions(self, ep, role=None):
        return [x for x in list(self.w.sessions.values())
                if x.ep == ep["id"] and x.open_lo is not None and (role is None or x.role == role)]

    def in_stop(self, backend, t):
        return any(lo - 0.05 <= t <= hi + 0.5 for lo, hi in self.stops.get(backend, []))

    def session_end(self, sess):
        """(lo, hi, cause) of the end of sess, or None while it is open. cause:
        client (its own side ended it), restart (the server stopped),
        terminated (outside a server stop, a FATAL 57P01 on PostgreSQL:
        pg_terminate_backend; on MariaDB the connection closed with no
        error, or error 1927: KILL CONNECTION; nothing but an arbiter does
        either), lost (anything else)."""
        ends = []
        if sess.end_lo is not None:
            ends.append((sess.end_lo, sess.end_hi, "client"))
        for lo, hi in self.stops.get(sess.backend, []):
            if lo >= sess.open_lo:
                ends.append((lo, hi, "restart"))
                break
        kill_codes = getattr(sess, "KILL_CODES", ("57P01",))
        if sess.fatal is not None:
            t, code = sess.fatal[0], sess.fatal[1]
            ends.append((t, t, "restart" if self.in_stop(sess.backend, t)
                         else "terminated" if code in kill_codes else "lost"))
        elif sess.eof_at is not None and not sess.ending:
            ends.append((sess.eof_at, sess.eof_at,
                         "restart" if self.in_stop(sess.backend, sess.eof_at)
                         else "terminated" if getattr(sess, "SILENT_KILL", False) else "lost"))
        return min(ends) if ends else None

    @staticmethod
    def server_idle(sess):
        """Whether the server shows sess as idle (the guard's idle): on
        PostgreSQL state idle; on MariaDB COMMAND Sleep, which an open
        transaction between statements is too."""
        return sess.mode in getattr(sess, "IDLE_MODES", ("idle",))

    def outlives(self, ep, sess):
        """A session of the dead holder, begun before its death, still open at it."""
        if sess.role != "holder" or "death_lo" not in ep or sess.backend_start >= ep["death_lo"]:
            return False
        e = self.session_end(sess)
        return e is None or e[0] > ep["death_lo"]

    def lingers(self, ep, sess):
        """... and able to commit: not idle as the server shows it (the
        guard's rule, DESIGN.md section 6; MySQL's COMMAND Sleep is idle)."""
        return not self.server_idle(sess) and self.outlives(ep, sess)

    def ep_windows(self, ep):
        """The disruptions that concern ep: all but another server's outage."""
        return [w for w in self.windows + self.open_windows()
                if w[3] is None or w[3] == ep.get("backend")]

    def polled_throughout(self, ep, lo, hi):
        """MySQL/MariaDB: whether every arbiter polled ep's server without a
        break from lo to hi (no arbiter restart or crash, no outage of that
        server), so that its connection-id samples cover the interval."""
        return not any(start < hi and end > lo
                       for kind, start, end, db in self.ep_windows(ep)
                       if kind in ("arbiter", "crash", "db"))

    def knows_address(self, ep):
        """Whether the arbiters can have learned the holder's address: LOCKEDBY
        carries it (HOST (ADDR)), or nothing disturbed them between the grant
        and the death, while the API showed the live pod with its podIP."""
        if ep.get("form") in ("host", "host_desc", "host_fqdn"):
            return True
        lo, hi = ep["take_lo"], ep["death_hi"]
        return not any(start < hi and end > lo and kind != "token"
                       for kind, start, end, db in self.ep_windows(ep))

    def load_requests(self, requests):
        """The simulated API's request log: when it served each pod (a GET
        answered 200, no fault but latency), the ground truth of what the
        arbiters can have learned of a pod."""
        self.sim_gets = {}
        for r in requests:
            if (r.get("method") == "GET" and r.get("status") == 200 and not r.get("watch")
                    and r.get("fault") in (None, "latency")):
                self.sim_gets.setdefault(r["path"].split("?")[0], []).append(
                    (r["time"], r.get("host")))

    def releasing_process(self, ep):
        """The arbiter process that made ep's release (its audit row names
        the arbiter; the process is the one running then)."""
        name = (ep.get("released_by") or "").rsplit("-", 1)[-1]
        best = None
        for a in self.w.all_arbiters:
            if a.name.startswith("arbiter-%s." % name) and a.started_at <= ep["released_at"]:
                best = a
        return name, best

    def served_alive(self, ep, name=None, since=None):
        """Whether the API showed the live holder pod, with its podIP, between
        the grant (or since) and the death: to arbiter name, or to anyone
        (None: its request log is unknown)."""
        if self.sim_gets is None:
            return None
        path = "/api/v1/namespaces/%s/pods/%s" % (ep["ns"], ep["pod"])
        lo = ep["take_lo"] if since is None else max(ep["take_lo"], since)
        host = None if name is None else self.w.api_host(name)
        return any(lo <= t <= ep["death_lo"] and (host is None or h == host)
                   for t, h in self.sim_gets.get(path, []))

    def releaser_saw_pod(self, ep):
        """Whether the process that released ep was shown the live holder pod
        between the grant and the death (the API's log, by Host)."""
        name, proc = self.releasing_process(ep)
        if proc is None:
            return None
        return self.served_alive(ep, name, proc.started_at)

    def placeable(self, ep, sess, exact=False):
        """Whether an arbiter with --terminate-orphaned-sessions can end sess
        (DESIGN.md section 6): it began before every pod that has the address
        now (creation minus the skew), or before the death as the API records
        it (whole seconds) minus the skew when no pod has it. A finished pod,
        or a pod whose container restarted, still has its address. On MySQL
        the guard knows only when a session began by (my_started_by); exact:
        by its real start, as PostgreSQL knows it."""
        if ep.get("death_op") not in ("delete_pod", "recreate_pod"):
            return False
        line = math.floor(ep["death_lo"]) - SKEW_S - 0.05
        for ns, name, created in self.ip_pods.get(sess.src, []):
            if created > ep["take_lo"] and ns in HOLDER_NS:
                line = min(line, math.floor(created) - SKEW_S - 0.05)
        if not self.knows_address(ep):
            return False
        if sess.backend != "mariadb" or exact:
            return sess.backend_start < line
        return self.my_started_by(ep, sess) < line

    def my_started_by(self, ep, sess):
        """MySQL/MariaDB: the latest moment the guard can say sess began by
        (its started_us): the first poll after its start, when the arbiters
        polled without a break from then to the judgement; else what TIME
        gives an active session, whole seconds since its statement began."""
        until = ep.get("released_at") or ep.get("end") or now()
        if self.polled_throughout(ep, sess.backend_start - 0.2, until):
            return sess.backend_start_hi + MY_SAMPLE_MARGIN
        if sess.mode == "active" and sess.query_start_hi is not None:
            return sess.query_start_hi + 1.0
        return INF

    def reuse_after_death(self, ep, sess):
        """Whether a new owner's session began after the death as the API
        records it plus the skew. The API's record is a whole-second time at
        or before the death (a creation, a termination), but for a bare 404
        it is when an arbiter first saw the pod gone (at the latest when the
        death became visible, REUSE_MARGIN aside), and a pod marked for
        deletion has it 30 s ahead (deletionTimestamp)."""
        if "death_lo" not in ep:
            return False
        if ep.get("death_op") == "delete_pod":
            line = None if "deleting_lo" in ep else self.visible_from(ep) + SKEW_S + REUSE_MARGIN
        else:
            line = ep["death_hi"] + SKEW_S + 0.3
        return line is not None and sess.backend_start > line

    def my_unplaceable(self, ep, sess):
        """MySQL/MariaDB: a new owner's session that began after the recorded
        death but that the guard cannot place after it, its start being
        bounded by polls alone: no poll of every arbiter is known to have
        run between the death (plus the skew) and its start. It may keep
        the lock, as one begun before the death."""
        if sess.backend != "mariadb" or not self.reuse_after_death(ep, sess):
            return False
        if ep.get("death_op") == "delete_pod":
            line = self.visible_from(ep) + SKEW_S + REUSE_MARGIN
        else:
            line = ep["death_hi"] + SKEW_S + 0.3
        return not (sess.backend_start > line + MY_SAMPLE_MARGIN
                    and self.polled_throughout(ep, line - 0.2, sess.backend_start))

    def my_unplaceable_holder(self, ep, sess):
        """MySQL/MariaDB with --terminate-orphaned-sessions: a lingering session
        of the dead holder that began early enough to be ended, but whose
        start the guard cannot bound that early (a poll after it, or TIME's
        whole seconds, comes too late). It keeps the lock until it ends."""
        return (self.terminate and sess.backend == "mariadb" and self.lingers(ep, sess)
                and self.placeable(ep, sess, exact=True) and not self.placeable(ep, sess))

    def reuse_judged(self, ep, sess):
        """Whether a new owner's session must keep nothing: it began after the
        recorded death, and (MySQL/MariaDB) the guard can place it there."""
        return self.reuse_after_death(ep, sess) and not self.my_unplaceable(ep, sess)

    def guard_hold(self, ep):
        """Until when sessions may keep ep's orphaned lock: (the end (hi) of the
        last such session, INF while one is open; why; whether an open one has
        a planned end still ahead), or (None, None, False) when none may.
        The dead holder's lingering sessions may, except one that an arbiter
        with --terminate-orphaned-sessions can place; a new owner's session
        only when it cannot be placed after the recorded death."""
        until, why, pending = None, None, False
        for sess in self.ep_sessions(ep):
            if sess.role == "holder":
                if not self.lingers(ep, sess) or (self.terminate and self.placeable(ep, sess)):
                    continue
                w = ("the dead holder's session is open, not placeable before the death on "
                     "MySQL" if self.my_unplaceable_holder(ep, sess) else
                     "the dead holder's session is open")
            else:
                if self.server_idle(sess) or self.reuse_judged(ep, sess):
                    continue
                w = ("a new owner's session began after the recorded death, not placeable "
                     "after it on MySQL" if self.my_unplaceable(ep, sess) else
                     "a new owner's session began before the death as recorded")
            e = self.session_end(sess)
            t = INF if e is None else e[1]
            if e is None and sess.planned_end is not None:
                pending = True
            if until is None or t > until:
                until, why = t, w
        return until, why, pending

    def open_at_release(self, ep, sess, idle_too=False):
        """Whether sess was open and not idle (idle_too: or idle) when ep's
        lock was released, as pg_stat_activity (MariaDB: PROCESSLIST, whose
        COMMAND Sleep is idle) showed it to the releasing transaction (the
        audit); by the session's own clock only when the audit has no
        record. A MariaDB session is known by its connection id and its
        client's address and port (the ids start over with the server)."""
        snap = ep.get("release_sessions")
        if snap is None:
            e = self.session_end(sess)
            return sess.open_lo <= ep["released_at"] and (e is None or e[0] > ep["released_at"])
        port = getattr(sess, "client_port", None)
        return any(r.get("pid") == sess.pid
                   and (r.get("addr") == sess.client_addr and r.get("port") == port
                        if port is not None else r.get("start") is not None
                        and abs(r["start"] - sess.backend_start) < 0.002)
                   and (idle_too or r.get("state") != "idle") for r in snap)

    def session_desc(self, sess):
        e = self.session_end(sess)
        return ("%s session %s pid %s from %s (%s), began %.3f, %s" % (
            sess.role, sess.sid, sess.pid, sess.src, sess.mode, sess.backend_start,
            "open" if e is None else "ended %.3f (%s)" % (e[0], e[2])))

    def write_sessions(self, path):
        """Every session and how the oracle placed it, one JSON line each."""
        with open(path, "w") as f:
            for x in list(self.w.sessions.values()):
                if x.open_lo is None:
                    continue
                ep = self.eps.get(x.ep, {})
                e = self.session_end(x)
                row = {"sid": x.sid, "role": x.role, "owner": x.owner, "mode": x.mode,
                       "pid": x.pid, "addr": x.client_addr, "began": x.backend_start,
                       "open_lo": x.open_lo, "end": e, "errors": x.errors,
                       "death_lo": ep.get("death_lo"), "death_op": ep.get("death_op"),
                       "released_at": ep.get("released_at"), "cls": ep.get("cls")}
                if "death_lo" in ep:
                    row.update(outlives=self.outlives(ep, x), lingers=self.lingers(ep, x),
                               placeable=self.placeable(ep, x) if x.role == "holder" else None,
                               judged=self.reuse_judged(ep, x) if x.role == "reuse" else None)
                if x.backend == "mariadb":
                    row.update(backend=x.backend, port=x.client_port,
                               began_hi=x.backend_start_hi, query_hi=x.query_start_hi)
                    if "death_lo" in ep and x.role == "reuse":
                        row["my_unplaceable"] = self.my_unplaceable(ep, x)
                f.write(json.dumps(row, sort_keys=True) + "\n")

    # the bound
    def visible_from(self, ep, start=None):
        """The death (or start, when later), or the end (with backoff
        allowance) of every disruption under way at that moment."""
        v = ep["death_hi"] if start is None else max(ep["death_hi"], start)
        changed = True
        while changed:
            changed = False
            for kind, start, end, db in self.ep_windows(ep):
                if start <= v < end:
                    v, changed = end, True
        return v

    def release_deadline(self, ep, start=None):
        """visible_from + bound, pushed past any disruption that begins before
        that deadline (its end with allowance, plus the bound again)."""
        v = self.visible_from(ep, start)
        if v == INF:
            return INF
        d = v + self.bound
        changed = True
        while changed:
            changed = False
            for kind, start, end, db in self.ep_windows(ep):
                if v <= start < d and end + self.bound > d:
                    d, changed = end + self.bound, True
        return d

    def undisturbed(self, ep, until):
        lo = ep["death_lo"]
        return not any(start < until and end > lo
                       for kind, start, end, db in self.ep_windows(ep))

    def open_windows(self):
        out = []
        for kind, val in self.open.items():
            start = val[0] if isinstance(val, tuple) else val
            out.append((kind.split(":")[0], start, now() + 1e6,
                        kind.split(":")[1] if kind.startswith("db:") else None))
        return out

    def disrupted(self, ep):
        """Disruptions that can legitimately keep a provable orphan for good:
        the database or an arbiter away between the grant and the death can
        lose first_seen (container rules) or never see a HOST holder alive;
        slow API answers can put first_seen after the death (container
        rules)."""
        lo, hi = ep["take_lo"], ep["death_hi"]
        # A HOST holder with a same-named pod in the other holder namespace,
        # replaced under a new IP: unless the releasing arbiter saw the
        # original pod, ADDR confirms neither pod afterwards and the chooser
        # must keep the lock (unresolved_ambiguous). An API outage (with the
        # client's backoff after it, up to 10 s) or an arbiter restart between
        # the grant and the death can hide the original (5 000-episode run,
        # seed 8302: three such "missed" releases).
        hidden_host = (ep.get("death") == "recreate" and ep.get("decoy")
                       and str(ep.get("form", "")).startswith("host"))
        for kind, start, end, db in self.ep_windows(ep):
            if kind == "api" and hidden_host:
                end += 10.5
            if start > hi or end < lo:
                continue
            if kind in ("db", "crash") and (ep["rule"] in ("container", "host_gone")
                                            or ep.get("death") == "recreate"):
                return kind
            if kind in ("api", "arbiter", "token") and (ep["rule"] == "host_gone"
                                                        or hidden_host):
                return kind
        # A database's task waits for its held locks' API answers one after
        # another: slow answers (latency, a hang) can hold its next poll back
        # for seconds, and an arbiter that first sees the lock that late
        # places the grant there too (first_seen), so a container restarted
        # within that second (the API records whole seconds) may be the one
        # that took the lock (the MariaDB run, seed 600601: 12 lock tables
        # behind one URL, 1.5 s a request; the leader's first poll of the
        # lock came 4 s after the grant, just after the restart; PostgreSQL
        # too, 3 s late with 4 tables a database).
        slow = self.slow_api + [(v[0], now() + 1e6) for k, v in self.open.items()
                                if k == "api" and v[1] in ("hang", "latency")]
        if (ep["rule"] == "container" and any(a < hi and b > lo for a, b in slow)
                and self.first_seen_late(ep)):
            return "slow api"
        return None

    def first_seen_late(self, ep):
        """Whether an arbiter process logged ep's lock as held for the first
        time only when the API's whole-second record of the death (plus the
        skew) no longer lies after it."""
        label = self.w.label(ep["db"])
        for a in self.w.all_arbiters:
            for r in list(a.records):
                if (r.get("msg") == "lock held" and r.get("database") == label
                        and r.get("schema") == ep["schema"]
                        and r.get("lockedby") == ep["lockedby"]
                        and log_time(r) >= ep["take_lo"] - 0.5):
                    if log_time(r) >= math.floor(ep["death_lo"]) - SKEW_S - 0.1:
                        return True
                    break
        return False

    def ambiguous(self, ep):
        """A HOST (ADDR) holder whose ADDR is not its pod IP, while a pod of the
        same name lived in the other holder namespace: the chooser must keep."""
        if ep.get("form") != "host_otheraddr":
            return False
        lo, hi = ep["take_lo"], ep.get("end") or now()
        for ns in HOLDER_NS:
            if ns == ep["ns"]:
                continue
            for c, d in self.pod_life.get((ns, ep["pod"]), []):
                if c <= hi and (d is None or d >= lo):
                    return True
        return False

    def expects_release(self, ep):
        """None when the bound applies, else why the orphan may be kept."""
        if ep.get("void") or "death_lo" not in ep or ep.get("unlocked_by") == "holder":
            return "not an orphan"
        if ep.get("cls") != "B":
            return ep.get("why_c") or "class C"
        if ep["death_lo"] - ep["take_hi"] < MIN_PROVABLE_DEATH - 0.1:
            return "death too close to the grant"
        if self.ambiguous(ep):
            return "ambiguous candidates"
        d = self.disrupted(ep)
        if d:
            return "disrupted by %s" % d
        return None

    def deadline(self, ep):
        """Generation: when to stop waiting for the arbiter (None: keep waiting)."""
        if self.expects_release(ep) is not None:
            return ep["death_hi"] + 3.0
        if self.open:
            return None
        hold, _, pending = self.guard_hold(ep)
        if hold == INF:
            # A session keeps it: until its planned end, or the episode's.
            return None if pending else ep.get("patience_until", ep["death_hi"] + 3.0)
        return self.release_deadline(ep, hold) + 0.5

    # final judgement
    def judge(self):
        res = {"episodes": 0, "void": 0, "finished_by_holder": 0, "orphans": 0,
               "bound_class": 0, "released": 0, "released_bound_class": 0,
               "released_other": 0, "kept_legit": 0, "missed": [], "false": [],
               "delays": [], "delays_undisturbed": [], "delays_visible": [],
               "kept_reasons": {}, "rules": {}, "delays_after_session": [], "by_backend": {}}
        for ep in self.eps.values():
            if "take_lo" not in ep:
                continue
            if ep.get("void"):
                res["void"] += 1
                continue
            res["episodes"] += 1
            bb = res["by_backend"].setdefault(ep.get("backend"), {
                "episodes": 0, "orphans": 0, "released": 0, "false": 0, "missed": 0,
                "kept_legit": 0})
            bb["episodes"] += 1
            if ep.get("false_release"):
                res["false"].append(ep)
                bb["false"] += 1
            if "released_at" in ep:
                res["released"] += 1
                bb["released"] += 1
            if "death_lo" not in ep:
                res["finished_by_holder"] += 1
                continue
            res["orphans"] += 1
            bb["orphans"] += 1
            why = self.expects_release(ep)
            hold = hold_why = None
            if why is None:
                # A session that may keep the lock: the bound runs from its end;
                # one open until the operator gave up kept it legitimately.
                hold, hold_why, _ = self.guard_hold(ep)
                unlock = ep.get("operator_unlock_lo")
                if "released_at" not in ep and hold is not None and (
                        hold == INF or (unlock is not None and hold > unlock)):
                    why = "kept while a session was open (%s)" % hold_why
            if why is None:
                res["bound_class"] += 1
                start = None if hold is None or hold == INF else hold
                vis = self.visible_from(ep, start)
                deadline = self.release_deadline(ep, start) if hold != INF else INF
                rel = ep.get("released_at")
                if rel is not None and rel <= deadline:
                    res["released_bound_class"] += 1
                    linger = [self.session_end(x) for x in self.ep_sessions(ep, "holder")
                              if self.lingers(ep, x)]
                    ended = [e[1] for e in linger if e is not None]
                    if linger:
                        # Released after the holder's session ended (or was ended);
                        # one before it is a false or unguarded release, not a delay.
                        if len(ended) == len(linger) and rel >= max(ended) - 0.05:
                            res["delays_after_session"].append(max(0.0, rel - max(ended)))
                    else:
                        delay = max(0.0, rel - ep["death_hi"])
                        res["delays"].append(delay)
                        res["delays_visible"].append(max(0.0, rel - vis))
                        if self.undisturbed(ep, rel):
                            res["delays_undisturbed"].append(delay)
                    res["rules"][ep["death_op"]] = res["rules"].get(ep["death_op"], 0) + 1
                else:
                    ep["visible_from"] = vis
                    ep["deadline"] = deadline
                    if hold is not None:
                        ep["hold"] = "%s until %.3f" % (hold_why, hold)
                    res["missed"].append(ep)
                    bb["missed"] += 1
            else:
                if "released_at" in ep:
                    res["released_other"] += 1
                else:
                    res["kept_legit"] += 1
                    bb["kept_legit"] += 1
                    res["kept_reasons"][why] = res["kept_reasons"].get(why, 0) + 1
        res["guard"] = self.judge_guard()
        for ep in res["guard"]["false_releases"]:
            res["by_backend"][ep.get("backend")]["false"] += 1
        return res

    def judge_guard(self):
        """The session guard's figures, its false releases (the dead holder's
        blocking session open at the release) and false terminations (any
        session but a dead holder's begun before its death)."""
        g = {"holder_sessions": 0, "outlived": {m: 0 for m in MODES}, "lingering": 0,
             "kept_while_open": 0, "released_after_end": 0, "open_at_end": 0,
             "terminated": 0, "termination_expected": 0, "idle_released_open": 0,
             "alive_logged": 0, "reuse": {}, "reuse_judged": 0, "reuse_released_open": 0,
             "reuse_terminated": 0, "false_releases": [], "false_terminations": [],
             "unexplained": [], "logged_terminations": 0, "unguarded": [],
             "sleep_tx_outlived": 0, "sleep_tx_released_open": 0, "reuse_unplaceable": 0,
             "reuse_unplaceable_kept": 0, "reuse_unplaceable_released_open": 0,
             "holder_unplaceable": 0, "holder_unplaceable_terminated": 0}
        # A session is named by its database and pid (MariaDB: connection
        # id, which starts over with the server): "label pid".
        logged = set()
        for a in self.w.all_arbiters:
            g["logged_terminations"] += a.count("holder session terminated")
            logged |= {"%s %s" % (r.get("database"), r.get("pid")) for r in list(a.records)
                       if r.get("msg") == "holder session terminated"}
        observed = set()
        for sess in list(self.w.sessions.values()):
            if sess.open_lo is None:
                continue
            e = self.session_end(sess)
            ep = self.eps.get(sess.ep, {})
            if sess.role == "holder":
                g["holder_sessions"] += 1
            else:
                g["reuse"][sess.owner] = g["reuse"].get(sess.owner, 0) + 1
            if e is not None and e[2] == "lost":
                g["unexplained"].append(sess)
            if e is not None and e[2] == "terminated":
                observed.add("%s %s" % (sess.label, sess.pid))
                if (sess.role == "holder" and "death_lo" in ep and e[0] > ep["death_lo"]
                        and sess.backend_start < ep["death_lo"]):
                    g["terminated"] += 1
                else:
                    g["false_terminations"].append(sess)
            if sess.role == "reuse" and "death_lo" in ep:
                rel = ep.get("released_at")
                if self.reuse_judged(ep, sess) and not self.server_idle(sess):
                    g["reuse_judged"] += 1
                    if rel is not None and self.open_at_release(ep, sess):
                        g["reuse_released_open"] += 1
                if self.my_unplaceable(ep, sess) and not self.server_idle(sess):
                    # Kept legitimately (MySQL bounds its start by polls only),
                    # or released while it was open all the same.
                    g["reuse_unplaceable"] += 1
                    if rel is not None and self.open_at_release(ep, sess):
                        g["reuse_unplaceable_released_open"] += 1
                    else:
                        g["reuse_unplaceable_kept"] += 1
                if e is not None and e[2] == "terminated":
                    g["reuse_terminated"] += 1
        g["logged_pids"] = len(logged)
        g["logged_not_observed"] = sorted(logged - observed)
        g["observed_not_logged"] = sorted(observed - logged)
        alive = {}  # (database, schema) -> explanations of held_session_alive verdicts
        for a in self.w.all_arbiters:
            for r in list(a.records):
                if r.get("msg") == "verdict" and r.get("reason") == "held_session_alive":
                    alive.setdefault((r.get("database"), r.get("schema")), []).append(
                        r.get("explanation") or "")
        for ep in self.eps.values():
            if "take_lo" not in ep or ep.get("void") or "death_lo" not in ep:
                continue
            rel = ep.get("released_at")
            mine = [x for x in self.ep_sessions(ep, "holder") if self.outlives(ep, x)]
            for x in mine:
                g["outlived"][x.mode] += 1
                if x.mode == "idle" and rel is not None and self.open_at_release(ep, x, True):
                    g["idle_released_open"] += 1
                if x.mode != "idle" and self.server_idle(x):
                    # MariaDB: a transaction open between statements is
                    # COMMAND Sleep, idle to the guard (and to the oracle).
                    g["sleep_tx_outlived"] += 1
                    if rel is not None and self.open_at_release(ep, x, True):
                        g["sleep_tx_released_open"] += 1
            linger = [x for x in mine if self.lingers(ep, x)]
            if not linger:
                continue
            g["lingering"] += 1
            ends = [self.session_end(x) for x in linger]
            open_at_rel = [x for x in linger if rel is not None and self.open_at_release(ep, x)]
            if open_at_rel:
                ep["guard_false"] = open_at_rel
                # The guard looks for the addresses the arbiter saw the pod
                # with, and ADDR: when LOCKEDBY has no address of the pod and
                # the API never showed the live pod to the releasing process
                # between the grant and the death, that process cannot know
                # where its sessions come from (DESIGN.md section 6 names no
                # other source). Counted apart, reported with the same detail.
                if (ep.get("form") not in ("host", "host_desc", "host_fqdn")
                        and self.releaser_saw_pod(ep) is False):
                    g["unguarded"].append(ep)
                else:
                    g["false_releases"].append(ep)
            else:
                g["kept_while_open"] += 1
                if rel is not None:
                    g["released_after_end"] += 1
            unlock = ep.get("operator_unlock_lo")
            if unlock is not None and any(e is None or e[0] > unlock for e in ends):
                g["open_at_end"] += 1
            if self.terminate and any(self.placeable(ep, x) for x in linger):
                g["termination_expected"] += 1
            for x in linger:
                if self.my_unplaceable_holder(ep, x):
                    g["holder_unplaceable"] += 1
                    e = self.session_end(x)
                    if e is not None and e[2] == "terminated":
                        g["holder_unplaceable_terminated"] += 1
            pids = ["pid %s " % x.pid for x in linger]
            label = self.w.label(ep["db"])
            if any(p in text for text in alive.get((label, ep["schema"]), []) for p in pids):
                g["alive_logged"] += 1
        return g


# -- the generator --------------------------------------------------------------------

NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class Slot:
    def __init__(self, idx, db, schema, backend, home):
        self.idx = idx
        self.db = db
        self.schema = schema
        self.backend = backend
        self.home = home  # the schema that never churns (public; MariaDB: the URL's database)
        self.k = 0
        self.last_name = None

    def where(self):
        """The session_open arguments that place a session: its database
        (MariaDB: the URL's, and the lock table's database it connects to)."""
        if self.backend == "mariadb":
            return {"db": self.db, "schema": self.schema}
        return {"db": self.db}


class Generator:
    """Plays episodes on every slot (one lock table each) and the global chaos."""

    def __init__(self, cfg, world, ex, oracle):
        self.cfg = cfg
        self.w = world
        self.ex = ex
        self.oracle = oracle
        self.seed = cfg["seed"]
        self.slots = []
        self.in_use = set()  # (ns, name) of pods owned by a running episode
        self.ip_counter = 0
        self.schema_counter = 0
        self.started = 0
        self.tasks = []  # heap of (time, seq, generator)
        self.seq = 0
        self.chaos_rng = random.Random("%s:chaos" % self.seed)
        self.pool = schema_pool(cfg)
        self.free = {}  # namespace -> tenant names not in use, least recently used first
        self.tables_made = 0

    def setup(self):
        i = 0
        for db, kind, n in self.w.layout:
            home = self.w.backend(db).home_schema(db)
            for s in range(n):
                slot = Slot(i, db, home, kind, home)
                if s > 0:
                    slot.schema = self.new_schema_name(slot)
                ok, err = self.ex.do("schema_create", **self.table_kw(slot))
                if not ok:
                    raise RuntimeError(err)
                self.slots.append(slot)
                i += 1

    def namespace(self, slot):
        """Where tenant names must differ: a PostgreSQL database, or a MariaDB
        server (its databases are the tenants)."""
        return (slot.backend,) if slot.backend == "mariadb" else (slot.backend, slot.db)

    def new_schema_name(self, slot, old=None):
        """A tenant's name: with PostgreSQL alone any new one; else the
        least recently used of the names the arbiters were given (old, the
        one dropped, goes to the back)."""
        if self.pool is None:
            self.schema_counter += 1
            return "tenant_%d" % self.schema_counter
        free = self.free.setdefault(self.namespace(slot), list(self.pool))
        if old is not None:
            free.append(old)
        return free.pop(0)

    def table_kw(self, slot):
        """schema_create's arguments; on MariaDB the LOCKED form too, one
        of the three Liquibase created, from a stream of its own."""
        kw = {"db": slot.db, "schema": slot.schema}
        if slot.backend == "mariadb":
            from mariadbserver import LOCK_FORMS
            self.tables_made += 1
            kw["form"] = random.Random("%s:form:%d" % (self.seed, self.tables_made)).choice(
                LOCK_FORMS)
        return kw

    def new_ip(self):
        """A pod IP on the loopback network (127.10.0.1 on), so that the pod's
        database sessions can come from it (never 127.0.0.1, where the
        arbiters and the operator connect from)."""
        self.ip_counter += 1
        n = self.ip_counter
        return "127.%d.%d.%d" % (10 + (n // 62500) % 240, (n // 250) % 250, n % 250 + 1)

    def spawn(self, gen, delay=0.0):
        self.seq += 1
        heapq.heappush(self.tasks, (time.monotonic() + delay, self.seq, gen))

    def run(self, deadline_s):
        for slot in self.slots:
            self.spawn(self.slot_loop(slot), delay=slot.idx * 0.05)
        self.spawn(self.chaos_loop(), delay=2.0)
        last_audit = 0.0
        hard_end = time.monotonic() + deadline_s
        while self.tasks:
            t, _, gen = self.tasks[0]
            mono = time.monotonic()
            if mono - last_audit > 0.25:
                self.oracle.poll_audit()
                self.w.check_arbiters()
                last_audit = time.monotonic()
                continue
            if mono >= hard_end:
                print("chaos: time budget exhausted with %d tasks left" % len(self.tasks),
                      flush=True)
                break
            if t > mono:
                time.sleep(min(t - mono, 0.05))
                continue
            heapq.heappop(self.tasks)
            try:
                delay = next(gen)
            except StopIteration:
                continue
            if delay is not None:
                self.spawn(gen, delay)

    def done(self):
        return self.started >= self.cfg["episodes"]

    # one lock table: episodes one after another
    def slot_loop(self, slot):
        while not self.done():
            self.started += 1
            slot.k += 1
            rng = random.Random("%s:%d:%d" % (self.seed, slot.idx, slot.k))
            grng = random.Random("%s:%d:%d:guard" % (self.seed, slot.idx, slot.k))
            yield from self.episode(slot, rng, "%d.%d" % (slot.idx, slot.k), grng)
            # Schema churn: a tenant's lock table dropped and another created.
            # On MariaDB a tenant's database dropped and another created.
            if slot.schema != slot.home and rng.random() < self.cfg["schema_churn"]:
                yield from self.retry("schema_drop", db=slot.db, schema=slot.schema)
                slot.schema = self.new_schema_name(slot, slot.schema)
                yield from self.retry("schema_create", **self.table_kw(slot))
                # A new service's first migration: the lock right after the table.
                yield rng.choice([0.0, 0.05, 0.3, 1.0])
            else:
                yield rng.uniform(0.05, 0.6)

    def pick_pod(self, rng, slot, ns):
        for _ in range(20):
            if slot.last_name and rng.random() < 0.3:
                name = slot.last_name
            else:
                fam = rng.choice(["web", "sts", "orders", "payments", "migrate"])
                if fam in ("web", "sts"):
                    name = "%s-%d" % (fam, rng.randrange(4))
                elif fam == "migrate":
                    name = "migrate-%d-%s" % (rng.randrange(5), "".join(
                        rng.choice(NAME_CHARS) for _ in range(5)))
                else:
                    name = "%s-7d9f8c6b5-%s" % (fam, "".join(
                        rng.choice(NAME_CHARS[:4]) for _ in range(5)))
            if (ns, name) not in self.in_use:
                return name
        return None

    @staticmethod
    def guard_plan(g, orphan, death, hold, decoy):
        """The session guard's part of an episode, from its own stream g: does
        the holder have a session from its pod's address, opened before the
        take (Liquibase connects, then locks) or later (but SESSION_LEAD before
        the death), doing what (holder_session.MODES); does it outlive the
        death, for how long (or until the episode's end); does the address
        get a new owner with a session after the death, and when."""
        p = {"session": g.random() < P_SESSION[orphan]}
        if not p["session"]:
            return p
        p["open_after"] = None
        if hold >= SESSION_LEAD + 0.4 and g.random() < 0.3:
            p["open_after"] = g.uniform(0.1, hold - SESSION_LEAD)
        p["mode"] = g.choices(MODES, [50, 35, 15])[0]
        p["linger"] = orphan and g.random() < P_LINGER
        p["never"] = p["linger"] and g.random() < P_NEVER
        p["linger_for"] = g.uniform(0.3, 2.5)
        p["patience"] = g.uniform(1.5, 3.5)
        # The address is free after a deletion, a replacement, or a finished
        # pod; after a container restart the pod keeps it, and its next
        # container is the one that connects.
        reuse_ok = death in ("delete", "recreate", "phase_failed", "phase_succeeded", "restart",
                             "stop_init") and not (death == "recreate" and decoy)
        p["reuse"] = p["linger"] and reuse_ok and g.random() < P_REUSE
        if p["reuse"]:
            p["reuse_gap"] = g.uniform(1.5, 2.5)
            if not p["never"] and g.random() < 0.75:
                p["linger_for"] = p["reuse_gap"] + g.uniform(0.5, 2.0)  # still open then
            p["reuse_mode"] = g.choices(["active", "idle_tx"], [55, 45])[0]
            p["reuse_never"] = g.random() < 0.4
            p["reuse_for"] = g.uniform(1.5, 4.0)
            p["reuse_ns"] = g.choices([HOLDER_NS[0], HOLDER_NS[1], OTHER_NS], [45, 45, 10])[0]
        return p

    def end_sessions(self, sids):
        """The episode is over: its sessions still open end (the holder's side)."""
        for sid in sids:
            sess = self.w.sessions.get(sid)
            if sess is not None and not sess.closed():
                self.ex.do("session_end", sid=sid, ep=sess.ep)

    def open_reuse(self, slot, ep, gp, death, ip, owned, rsid):
        """The holder's address gets its next owner, which opens a session."""
        owner = {"recreate": "recreated pod", "restart": "restarted container",
                 "stop_init": "next container"}.get(death)
        if owner is None:
            rns, rname = gp["reuse_ns"], "reuse-%d-%d" % (slot.idx, slot.k)
            if (rns, rname) in self.in_use:
                return False
            self.in_use.add((rns, rname))
            ok, _ = self.ex.do("create_pod", ns=rns, name=rname,
                               desc={"podIP": ip, "containers": ["app"]})
            if not ok:
                self.in_use.discard((rns, rname))
                return False
            owned.append((rns, rname))
            owner = "new pod" if rns in HOLDER_NS else "new pod, unwatched namespace"
        ok, _ = self.ex.do("session_open", sid=rsid, ep=ep["id"], role="reuse", **slot.where(),
                           ip=ip, mode=gp["reuse_mode"], owner=owner)
        if ok and not gp["reuse_never"]:
            self.w.sessions[rsid].planned_end = now() + gp["reuse_for"]
        return ok

    def episode(self, slot, rng, epid, grng):
        # -- the holder's pod
        ns = OTHER_NS if rng.random() < 0.04 else rng.choice(HOLDER_NS)
        name = self.pick_pod(rng, slot, ns)
        if name is None:
            yield 0.2
            return
        slot.last_name = name
        owned = [(ns, name)]
        self.in_use.add((ns, name))
        layout = rng.choices(["single", "sidecar", "native_sidecar", "init_holder", "job"],
                             [35, 20, 15, 15, 15])[0]
        holder = {"init_holder": "migrate", "job": "migrate"}.get(layout, "app")
        known = rng.random() < 0.5
        ip = self.new_ip()
        desc = {"podIP": ip}
        if layout == "single":
            desc["containers"] = ["app"]
        elif layout == "sidecar":
            desc["containers"] = ["app", "istio-proxy"]
        elif layout == "native_sidecar":
            desc["containers"] = ["app"]
            desc["initContainers"] = [{"name": "istio-proxy", "restartPolicy": "Always"}]
        elif layout == "init_holder":
            desc["initContainers"] = [{"name": "migrate", "state": "running"}]
            desc["containers"] = [{"name": "app", "state": "waiting"}]
            desc["phase"] = "Pending"
        else:
            desc["containers"] = ["migrate"]
            desc["restartPolicy"] = "Never"
            desc["labels"] = {"job-name": name.rsplit("-", 1)[0]}
        if known:
            desc["holderContainer"] = holder
        ok, _ = self.ex.do("create_pod", ns=ns, name=name, desc=desc)
        if not ok:
            self.in_use.discard((ns, name))
            return
        # -- a pod of the same name in the other holder namespace
        decoy = None
        other = [n for n in HOLDER_NS if n != ns][0] if ns in HOLDER_NS else rng.choice(HOLDER_NS)
        if rng.random() < 0.35 and (other, name) not in self.in_use:
            self.in_use.add((other, name))
            ok, _ = self.ex.do("create_pod", ns=other, name=name,
                               desc={"podIP": self.new_ip(), "containers": ["app"]})
            if ok:
                decoy = other
                owned.append((other, name))
            else:
                self.in_use.discard((other, name))
        # -- LOCKEDBY
        forms = ["nspod", "host", "host_desc", "host_otheraddr"]
        weights = [40, 25, 10, 15]
        if name.startswith(("web-", "sts-")):
            forms.append("host_fqdn")
            weights.append(15)
        form = rng.choices(forms, weights)[0]
        if ns == OTHER_NS:
            # The operator's contract: HOST (ADDR) holders live in the holder
            # namespaces (a HOST name is looked up only there), so a holder
            # outside them is written NS:POD, which names its namespace.
            form = "nspod"
        if form == "nspod":
            lockedby = "%s:%s" % (ns, name)
        elif form == "host":
            lockedby = "%s (%s)" % (name, ip)
        elif form == "host_desc":
            lockedby = "%s#%s (%s)" % (name, rng.choice(["blue", "migration", "v2"]), ip)
        elif form == "host_fqdn":
            lockedby = "%s.%s.%s.svc.cluster.local (%s)" % (name, name.split("-")[0], ns, ip)
        else:
            lockedby = "%s (10.99.%d.%d)" % (name, rng.randrange(250), rng.randrange(1, 250))
        jvm = rng.uniform(0.2, 1.2)  # the JVM starts before Liquibase takes the lock

        # -- the plan: the holder finishes, or dies holding the lock
        orphan = rng.random() < 0.6
        fast = orphan and rng.random() < 0.12
        hold = rng.uniform(0.3, 1.0) if fast else rng.uniform(MIN_PROVABLE_DEATH, 5.5)
        sidecar = layout in ("sidecar", "native_sidecar")
        deaths = ["delete", "recreate", "phase_failed"]
        if layout == "job":
            deaths += ["phase_succeeded", "phase_failed"]
        elif layout == "init_holder":
            deaths += ["stop_init", "stop_init"]
        else:
            deaths += ["restart", "crashloop", "restart"]
        death = rng.choice(deaths)
        rule = ("container" if death in ("restart", "crashloop", "stop_init")
                else "host_gone" if death == "delete" and form != "nspod" else "pod")
        cls, why_c = "B", None
        if ns == OTHER_NS:
            cls, why_c = "C", "holder namespace not watched"
        elif rule == "container" and sidecar and not known:
            cls, why_c = "C", "sidecar alive since before the grant, holder container unknown"
        elif fast:
            cls, why_c = "C", "death within the grant's second"
        elif form == "host_otheraddr" and decoy:
            cls, why_c = "C", "ambiguous candidates"
        truth = {"ns": ns, "pod": name, "container": holder, "layout": layout, "known": known,
                 "form": form, "decoy": decoy, "orphan": orphan, "cls": cls if orphan else None,
                 "why_c": why_c, "death": death if orphan else None, "rule": rule}
        # The holder's own database session (the session guard).
        gp = self.guard_plan(grng, orphan, death, hold, decoy)
        if slot.backend == "mariadb" and gp.get("reuse"):
            # MySQL bounds a session's start by polls only: a new owner that
            # connects within a poll or two of the death cannot be placed
            # after it. Some of them do (a stream of its own: the plans of
            # PostgreSQL's episodes stay what they were for a seed).
            mrng = random.Random("%s:%d:%d:mysql" % (self.seed, slot.idx, slot.k))
            if mrng.random() < P_QUICK_REUSE:
                gp["reuse_gap"] = mrng.uniform(0.1, 1.2)
        sid, rsid = "%s/holder" % epid, "%s/reuse" % epid
        if gp["session"] and gp["open_after"] is None:
            # Connected at the start; SESSION_LEAD before the death at least
            # (a holder that dies within a second of the grant started early).
            self.ex.do("session_open", sid=sid, ep=epid, role="holder", **slot.where(), ip=ip,
                       mode=gp["mode"])
            jvm = max(jvm, SESSION_LEAD + 0.1 - hold)
        yield jvm
        ok, _ = self.ex.do("take", ep=epid, db=slot.db, schema=slot.schema, lockedby=lockedby,
                           truth=truth)
        if not ok:
            self.ex.do("ep_void", ep=epid)
            self.end_sessions([sid])
            yield from self.cleanup(owned)
            return

        # Perturbations while the holder lives: none of them may release the lock.
        t_end = hold
        perturb = []
        if decoy and rng.random() < 0.6:
            perturb.append((rng.uniform(0.3, t_end), rng.choice(
                ["decoy_delete", "decoy_restart", "decoy_recreate", "decoy_crashloop"])))
        if sidecar and rng.random() < 0.5:
            perturb.append((rng.uniform(0.3, t_end), "sidecar_restart"))
        if rng.random() < 0.2 and layout != "init_holder":
            perturb.append((max(0.0, t_end - rng.uniform(0.2, 1.5)), "deleting"))
        if gp["session"] and gp["open_after"] is not None:
            perturb.append((gp["open_after"], "session_open"))
        perturb.sort()
        elapsed = 0.0
        for at, what in perturb:
            if at > elapsed:
                yield at - elapsed
                elapsed = at
            if what == "decoy_delete":
                self.ex.do("delete_pod", ns=decoy, name=name)
            elif what == "decoy_recreate":
                self.ex.do("recreate_pod", ns=decoy, name=name,
                           overrides={"podIP": self.new_ip()})
            elif what in ("decoy_restart", "decoy_crashloop"):
                self.ex.do("restart", ns=decoy, name=name, container="app",
                           crashloop=what == "decoy_crashloop")
            elif what == "sidecar_restart":
                self.ex.do("restart", ns=ns, name=name, container="istio-proxy")
            elif what == "deleting":
                self.ex.do("deleting", ns=ns, name=name, grace=30)
            elif what == "session_open":
                self.ex.do("session_open", sid=sid, ep=epid, role="holder", **slot.where(),
                           ip=ip, mode=gp["mode"])
        if t_end > elapsed:
            yield t_end - elapsed

        if not orphan:
            yield from self.retry("unlock", ep=epid, db=slot.db, schema=slot.schema,
                                  lockedby=lockedby, who="holder")
            self.end_sessions([sid])  # Liquibase closes its connection
            yield rng.uniform(0.0, 0.5)
            # The pod goes on (a Job completes, a rollout deletes it).
            if layout == "job":
                self.ex.do("phase", ns=ns, name=name, phase="Succeeded")
            self.ex.do("ep_end", ep=epid)
            yield from self.cleanup(owned)
            return

        # -- the death of the holder process. A session that does not outlive
        # it was waiting for its client, which the kill closes.
        if gp["session"] and not gp["linger"]:
            self.end_sessions([sid])
        if death == "delete":
            self.ex.do("delete_pod", ns=ns, name=name, kills=epid)
        elif death == "recreate":
            # With a new owner planned, the recreated pod gets the address back.
            self.ex.do("recreate_pod", ns=ns, name=name, overrides={
                "podIP": ip if gp.get("reuse") else self.new_ip()}, kills=epid)
        elif death == "phase_failed":
            self.ex.do("phase", ns=ns, name=name, phase="Failed", kills=epid)
        elif death == "phase_succeeded":
            self.ex.do("phase", ns=ns, name=name, phase="Succeeded", kills=epid)
        elif death in ("restart", "crashloop"):
            self.ex.do("restart", ns=ns, name=name, container=holder,
                       crashloop=death == "crashloop", kills=epid)
        elif death == "stop_init":
            self.ex.do("stop_container", ns=ns, name=name, container="migrate",
                       exit_code=rng.choice([0, 1]), kills=epid)
            yield rng.uniform(0.1, 0.6)
            self.ex.do("start_container", ns=ns, name=name, container="app")
        # Wait for the arbiter, or give up at the deadline and unlock by hand.
        ep = self.oracle.eps[epid]
        if "death_lo" not in ep:
            # The kill did not happen (a simulator error): the holder lives on and
            # finishes normally.
            yield from self.retry("unlock", ep=epid, db=slot.db, schema=slot.schema,
                                  lockedby=lockedby, who="holder")
            self.end_sessions([sid])
            self.ex.do("ep_end", ep=epid)
            yield from self.cleanup(owned)
            return
        # The lingering session's end, and the address's next owner.
        t_death = ep["death_hi"]
        sess = self.w.sessions.get(sid)
        if sess is not None and gp["linger"] and not gp["never"]:
            sess.planned_end = t_death + gp["linger_for"]
        reuse_at = t_death + gp["reuse_gap"] if gp.get("reuse") else None
        ep["patience_until"] = t_death + gp.get("patience", 3.0) + gp.get("reuse_gap", 0.0) + (
            gp["linger_for"] if gp.get("linger") and not gp.get("never") else 0.0)
        while "released_at" not in ep:
            t = now()
            for x in (sess, self.w.sessions.get(rsid)):
                if (x is not None and x.planned_end is not None and t >= x.planned_end
                        and not x.closed()):
                    self.ex.do("session_end", sid=x.sid, ep=x.ep)
            if reuse_at is not None and t >= reuse_at:
                reuse_at = None
                self.open_reuse(slot, ep, gp, death, ip, owned, rsid)
            dl = self.oracle.deadline(ep)
            if dl is not None and now() >= dl:
                # One last look: the release may be in the audit already.
                self.oracle.poll_audit()
                if "released_at" not in ep:
                    ep["last_verdict"] = self.oracle.last_verdict(slot.db, slot.schema)
                    yield from self.retry("unlock", ep=epid, db=slot.db, schema=slot.schema,
                                          lockedby=lockedby, who="operator")
                break
            yield 0.1
        self.ex.do("ep_end", ep=epid)
        self.end_sessions([sid, rsid])
        yield from self.cleanup(owned)

    def retry(self, op, limit=60.0, **kw):
        """Repeats an action the database outage made fail (a Liquibase run
        retries its unlock; an operator tries again)."""
        t_end = now() + limit
        while True:
            ok, result = self.ex.do(op, **kw)
            if ok or now() > t_end:
                return
            yield 0.3

    def cleanup(self, owned):
        for ns, name in owned:
            self.ex.do("delete_pod", ns=ns, name=name)
            self.in_use.discard((ns, name))
        if False:
            yield

    # the global chaos: faults, watch trouble, token rotation, restarts
    def chaos_loop(self):
        rng = self.chaos_rng
        c = self.cfg
        nxt = {"fault": rng.expovariate(1.0 / c["fault_every"]),
               "watch": rng.expovariate(1.0 / 20),
               "rotate": rng.expovariate(1.0 / c["rotate_every"]),
               "pg": rng.expovariate(1.0 / c["pg_restart_every"]),
               "arbiter": rng.expovariate(1.0 / c["arbiter_restart_every"])}
        clock = 0.0
        n_rot = 0
        who = 0
        while not self.done():
            kind = min(nxt, key=nxt.get)
            if nxt[kind] > clock:
                yield nxt[kind] - clock
                clock = nxt[kind]
            if self.done():
                break
            if kind == "fault":
                ftype, spec = rng.choice(FAULTS)
                spec = dict(spec)
                scope = rng.choice(["pods", "pods", "ns"])
                spec["resource"] = "pods"
                if scope == "ns":
                    spec["namespace"] = rng.choice(HOLDER_NS)
                if ftype == "expired":
                    spec["watch"] = True
                dur = rng.uniform(0.5, 5.0)
                self.ex.do("fault_add", type=ftype, spec=spec)
                yield dur
                clock += dur
                self.ex.do("fault_clear")
                nxt[kind] = clock + rng.expovariate(1.0 / c["fault_every"])
            elif kind == "watch":
                self.ex.do("watches", what=rng.choice(["expire", "rst", "end", "compact"]))
                nxt[kind] = clock + rng.expovariate(1.0 / 20)
            elif kind == "rotate":
                n_rot += 1
                self.ex.do("rotate", token="sim-token-%s-%d" % (self.seed, n_rot))
                nxt[kind] = clock + rng.expovariate(1.0 / c["rotate_every"])
            elif kind == "pg":
                # A database server restarts (with several, one of them).
                servers = list(self.w.backends.values())
                b = servers[0] if len(servers) == 1 else rng.choice(servers)
                self.ex.do(b.stop_op, mode=rng.choice(["fast", "immediate"]))
                dur = rng.uniform(0.3, 3.0)
                yield dur
                clock += dur
                self.ex.do(b.start_op)
                nxt[kind] = clock + rng.expovariate(1.0 / c["pg_restart_every"])
            elif kind == "arbiter":
                name = "AB"[who % 2]
                who += 1
                self.ex.do("arbiter_stop", name=name)
                dur = rng.uniform(0.2, 2.0)
                yield dur
                clock += dur
                self.ex.do("arbiter_start", name=name)
                nxt[kind] = clock + rng.expovariate(1.0 / c["arbiter_restart_every"])


# -- replay ----------------------------------------------------------------------------

def replay(ex, oracle, world, records, deadline_s):
    """Executes the recorded actions at their recorded offsets."""
    t0 = ex.t0
    hard_end = time.monotonic() + deadline_s
    last = 0.0
    for rec in records:
        kw = {k: v for k, v in rec.items() if k not in ("op", "t", "ok", "error", "dur")}
        while True:
            wait = t0 + rec["t"] - now()
            if time.monotonic() - last > 0.25:
                oracle.poll_audit()
                world.check_arbiters()
                last = time.monotonic()
            if wait <= 0:
                break
            time.sleep(min(wait, 0.05))
        if time.monotonic() > hard_end:
            print("chaos: time budget exhausted during replay", flush=True)
            break
        ex.do(rec["op"], **kw)


# -- main ------------------------------------------------------------------------------

def fmt(v):
    return "-" if v is None else "%.3fs" % v


def episode_history(path, epid, ep):
    """The history lines of one episode: its own, and the global ones around it."""
    lines = []
    t_lo = ep.get("take_lo", 0) - 2
    t_hi = (ep.get("end") or now()) + 1
    with open(path) as f:
        header = json.loads(f.readline())
        t0 = header["t0"]
        for line in f:
            r = json.loads(line)
            mine = (r.get("ep") == epid or r.get("kills") == epid
                    or r.get("name") == "reuse-" + str(epid).replace(".", "-"))
            glob = r["op"] in ("fault_add", "fault_clear", "watches", "rotate", "pg_stop",
                               "pg_start", "my_stop", "my_start", "arbiter_stop",
                               "arbiter_start")
            pod = r.get("name") == ep.get("pod") and r["op"] in (
                "create_pod", "delete_pod", "recreate_pod", "restart", "phase", "deleting",
                "stop_container", "start_container")
            if mine or ((glob or pod) and t_lo <= t0 + r["t"] <= t_hi):
                lines.append(line.rstrip("\n"))
    return lines


def arbiter_excerpt(world, ep, n=25):
    label = world.label(ep.get("db"))
    out = []
    t_lo = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ep.get("take_lo", 0) - 1))
    t_hi = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((ep.get("end") or now()) + 2))
    for a in world.all_arbiters:
        sel = [l for l, r in zip(a.lines, a.records)
               if ((r.get("database") == label and r.get("schema") == ep.get("schema"))
                   or r.get("level") in ("error", "fatal"))
               and t_lo <= r.get("ts", "")[:19] <= t_hi]
        if not sel:
            continue
        out.append("--- %s (last %d lines for %s/%s)" % (a.name, n, ep.get("db"),
                                                          ep.get("schema")))
        out += sel[-n:]
    return out


def print_report(workdir, name, title, items, most):
    """Writes items to workdir/name and prints the first most of them."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("\n\n".join(items) + "\n")
    print("\n== %d %s (all in %s) ==" % (len(items), title, path))
    for x in items[:most]:
        print("\n" + x)
    if len(items) > most:
        print("\n... and %d more" % (len(items) - most))


def truth_json(ep):
    return json.dumps({k: ep.get(k) for k in (
        "db", "schema", "lockedby", "granted", "ns", "pod", "layout", "known", "form", "decoy",
        "death")})


def mariadb_missing():
    """Why a run on MariaDB cannot be made here, or None."""
    if os.environ.get("LOCK_ARBITER_MYSQL", "1") == "0":
        return "lock-arbiter was built without the MySQL/MariaDB backend (-Dmysql)"
    if importlib.util.find_spec("pymysql") is None:
        return "no PyMySQL (Debian python3-pymysql) for the pods' sessions"
    if not (shutil.which("mariadbd") or os.access("/usr/sbin/mariadbd", os.X_OK)):
        return "no mariadbd (Debian mariadb-server)"
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", default=None, help="default: random (printed)")
    ap.add_argument("--replay", metavar="FILE", help="execute a recorded history.jsonl")
    ap.add_argument("--backend", choices=("postgresql", "mariadb", "mixed"),
                    default="postgresql", help="the database servers: PostgreSQL (default), "
                    "MariaDB (one URL, its tenants as databases named by --schema), or both "
                    "at once (every other database on MariaDB)")
    ap.add_argument("--databases", type=int, default=3)
    ap.add_argument("--slots-per-db", type=int, default=4,
                    help="lock tables per database (public + tenant schemas)")
    ap.add_argument("--bound", type=float, default=5.0,
                    help="seconds from a visible death to the release (default 5)")
    ap.add_argument("--fault-every", type=float, default=25.0)
    ap.add_argument("--rotate-every", type=float, default=40.0)
    ap.add_argument("--pg-restart-every", type=float, default=90.0,
                    help="mean seconds between database server restarts (any backend)")
    ap.add_argument("--arbiter-restart-every", type=float, default=120.0)
    ap.add_argument("--schema-churn", type=float, default=0.15)
    ap.add_argument("--terminate-orphaned-sessions", choices=("seeded", "on", "off"),
                    default="seeded", help="run the arbiters with the flag (default: chosen "
                    "from the seed)")
    ap.add_argument("--strict-guard", action="store_true",
                    help="count unguarded releases (the dead holder's session open, released by "
                    "an arbiter process the API never showed the live pod, and no address in "
                    "LOCKEDBY) as failures")
    ap.add_argument("--max-seconds", type=float, default=6 * 3600)
    ap.add_argument("--out", help="directory for history and logs (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the directory on success")
    args = ap.parse_args(argv)

    if not os.access(arbiter_proc.BIN, os.X_OK):
        print("chaos: SKIP: no lock-arbiter binary at %s (set LOCK_ARBITER_BIN)"
              % arbiter_proc.BIN)
        return 77

    records = None
    if args.replay:
        with open(args.replay) as f:
            header = json.loads(f.readline())
            records = [json.loads(l) for l in f if l.strip()]
        cfg = header["config"]
        cfg.setdefault("backend", "postgresql")  # histories from before the choice
    else:
        seed = args.seed if args.seed is not None else str(random.SystemRandom().randrange(10**9))
        cfg = {"seed": str(seed), "episodes": args.episodes, "databases": args.databases,
               "slots_per_db": args.slots_per_db, "bound": args.bound,
               "fault_every": args.fault_every, "rotate_every": args.rotate_every,
               "pg_restart_every": args.pg_restart_every,
               "arbiter_restart_every": args.arbiter_restart_every,
               "schema_churn": args.schema_churn, "backend": args.backend}
        mode = args.terminate_orphaned_sessions
        cfg["terminate_sessions"] = (mode == "on" or mode == "seeded" and
                                     random.Random("%s:guard-mode" % seed).random() < 0.5)
    seed = cfg["seed"]
    if cfg["backend"] != "postgresql":
        why = mariadb_missing()
        if why:
            print("chaos: SKIP: --backend %s: %s" % (cfg["backend"], why))
            return 77
    workdir = args.out or tempfile.mkdtemp(prefix="lock-arbiter-chaos-%s-" % seed)
    os.makedirs(workdir, exist_ok=True)
    hist_path = os.path.join(workdir, "history.jsonl")
    print("chaos: seed %s, %s, %s, %s, workdir %s" % (
        seed, "replaying %s" % args.replay if args.replay else "%d episodes" % cfg["episodes"],
        cfg["backend"],
        "--terminate-orphaned-sessions" if cfg.get("terminate_sessions")
        else "no --terminate-orphaned-sessions", workdir), flush=True)

    world = World(cfg, workdir)
    t_start = time.monotonic()
    failed_setup = None
    oracle = None
    try:
        world.start()
        oracle = Oracle(world, cfg["bound"])
        t0 = now()
        with open(hist_path, "w", buffering=1) as history:
            history.write(json.dumps({"config": cfg, "t0": t0, "bin": arbiter_proc.BIN}) + "\n")
            ex = Executor(world, oracle, history, t0)
            if records is not None:
                replay(ex, oracle, world, records, args.max_seconds)
            else:
                gen = Generator(cfg, world, ex, oracle)
                gen.setup()
                ex.do("arbiters_start")
                gen.run(args.max_seconds)
            # Let the last releases reach the audit, then a last look.
            time.sleep(1.0)
            oracle.poll_audit()
            world.check_arbiters()
            oracle.load_requests(world.sim.requests())
    except Exception:  # noqa: BLE001 (report the harness failure with the seed)
        failed_setup = traceback.format_exc()
    finally:
        world.stop()
    wall = time.monotonic() - t_start

    res = oracle.judge() if oracle else None
    if oracle:
        oracle.write_sessions(os.path.join(workdir, "sessions.jsonl"))
    failures = []
    if failed_setup:
        failures.append("harness error:\n" + failed_setup)
    print("\n== chaos summary (seed %s) ==" % seed)
    if res:
        d = res["delays"]
        print("episodes:            %d (+%d void: lock not free at take)" % (
            res["episodes"], res["void"]))
        print("finished by holder:  %d" % res["finished_by_holder"])
        print("orphans:             %d (bound applies: %d; legitimately keepable: %d)" % (
            res["orphans"], res["bound_class"], res["orphans"] - res["bound_class"]))
        print("arbiter releases:    %d (bound class %d, other orphans %d)" % (
            res["released"], res["released_bound_class"], res["released_other"]))
        g = res["guard"]
        print("false releases:      %d (holder alive %d, dead holder's session open %d)" % (
            len(res["false"]) + len(g["false_releases"]), len(res["false"]),
            len(g["false_releases"])))
        print("foreign releases:    %d" % len(oracle.foreign_releases))
        print("missed releases:     %d (bound %.1fs after the death is visible)" % (
            len(res["missed"]), cfg["bound"]))
        print("kept legitimately:   %d %s" % (res["kept_legit"], json.dumps(
            res["kept_reasons"], sort_keys=True)))
        print("release rules:       %s" % json.dumps(res["rules"], sort_keys=True))
        print("release delay from death (n=%d): p50 %s p90 %s p99 %s max %s" % (
            len(d), fmt(pct(d, 50)), fmt(pct(d, 90)), fmt(pct(d, 99)),
            fmt(max(d) if d else None)))
        u = res["delays_undisturbed"]
        print("  undisturbed (n=%d):          p50 %s p90 %s p99 %s max %s" % (
            len(u), fmt(pct(u, 50)), fmt(pct(u, 90)), fmt(pct(u, 99)),
            fmt(max(u) if u else None)))
        v = res["delays_visible"]
        print("  from visibility (n=%d):      p50 %s p90 %s p99 %s max %s" % (
            len(v), fmt(pct(v, 50)), fmt(pct(v, 90)), fmt(pct(v, 99)),
            fmt(max(v) if v else None)))
        sd = [s["seconds"] for s in world.shutdowns]
        a = res["delays_after_session"]
        print("  after the holder's session ended (n=%d): p50 %s p90 %s p99 %s max %s" % (
            len(a), fmt(pct(a, 50)), fmt(pct(a, 90)), fmt(pct(a, 99)),
            fmt(max(a) if a else None)))
        print("session guard:       %s; %d holder sessions, %d outlived the death (%s)" % (
            "--terminate-orphaned-sessions" if oracle.terminate
            else "no --terminate-orphaned-sessions", g["holder_sessions"],
            sum(g["outlived"].values()), ", ".join(
                "%s %d" % (m.replace("_tx", " in transaction"), g["outlived"][m])
                for m in MODES)))
        print("  lingering:         %d episodes with the dead holder's session open (active or "
              "idle in transaction)" % g["lingering"])
        print("  kept while open:   %d (held_session_alive logged for %d); released after it "
              "ended %d; open until the episode's end %d" % (
                  g["kept_while_open"], g["alive_logged"], g["released_after_end"],
                  g["open_at_end"]))
        print("  terminated:        %d (expected in %d episodes); the arbiters logged %d "
              "terminations of %d sessions%s" % (
                  g["terminated"], g["termination_expected"], g["logged_terminations"],
                  g["logged_pids"], "".join(
                      "; %s %s" % (what, ",".join(g[k])) for k, what in (
                          ("logged_not_observed", "logged, not seen ending so: pid"),
                          ("observed_not_logged", "seen, not logged: pid")) if g[k])))
        print("  idle, outlived:    %d released while it was open (idle: nothing to commit)" %
              g["idle_released_open"])
        print("  address reuse:     %d sessions of the next owner (%s); %d began after the "
              "recorded death, %d of them open at the release; terminated %d" % (
                  sum(g["reuse"].values()), ", ".join(
                      "%s %d" % kv for kv in sorted(g["reuse"].items())) or "none",
                  g["reuse_judged"], g["reuse_released_open"], g["reuse_terminated"]))
        print("  false releases %d, false terminations %d, unexplained session ends %d; "
              "sessions not opened %d (outside database outages)" % (
                  len(g["false_releases"]), len(g["false_terminations"]), len(g["unexplained"]),
                  len(oracle.session_open_failed)))
        if "mariadb" in world.backends:
            print("  on MariaDB:        an open transaction between statements is COMMAND Sleep, "
                  "idle to the guard: %d outlived the death, %d released while open; a new "
                  "owner's session after the recorded death that the guard cannot place after "
                  "it (its start bounded by polls): %d, kept legitimately %d, released while "
                  "open %d%s" % (g["sleep_tx_outlived"], g["sleep_tx_released_open"],
                                 g["reuse_unplaceable"], g["reuse_unplaceable_kept"],
                                 g["reuse_unplaceable_released_open"],
                                 "; the dead holder's session begun early enough to be ended, "
                                 "its start not bounded that early: %d, ended all the same %d" % (
                                     g["holder_unplaceable"], g["holder_unplaceable_terminated"])
                                 if oracle.terminate else ""))
        print("  unguarded:         %d released while the dead holder's session was open, by an "
              "arbiter the API never showed the live pod, LOCKEDBY without its address%s" % (
                  len(g["unguarded"]), "" if args.strict_guard else " (not failures; "
                  "--strict-guard)"))
        if len(world.backends) > 1 or "postgresql" not in world.backends:
            print("by backend:          %s" % "; ".join(
                "%s: %d episodes, %d orphans, %d released, %d false, %d missed, %d kept "
                "legitimately" % (b, v["episodes"], v["orphans"], v["released"], v["false"],
                                  v["missed"], v["kept_legit"])
                for b, v in sorted(res["by_backend"].items(), key=lambda kv: str(kv[0]))))
        print("arbiter exits:       %d unexpected; %d deliberate SIGTERMs (max %s to exit)" % (
            len(world.unexpected_exits), len(sd), fmt(max(sd) if sd else None)))
        print("wall time:           %.0fs" % wall)
        for ep in res["false"]:
            failures.append("FALSE RELEASE of episode %s: released at %.3f by %s, holder "
                            "death %s\n  truth: %s\n  verdict: %s\n%s\n%s" % (
                                ep["id"], ep["released_at"], ep.get("released_by"),
                                "%.3f" % ep["death_lo"] if "death_lo" in ep else "never",
                                truth_json(ep),
                                oracle.release_record(ep),
                                "\n".join(episode_history(hist_path, ep["id"], ep)),
                                "\n".join(arbiter_excerpt(world, ep))))
        unguarded = []
        for ep in g["false_releases"] + g["unguarded"]:
            (failures if ep in g["false_releases"] or args.strict_guard else unguarded).append(
                "%s of episode %s: released at %.3f by %s while the dead holder's "
                "session was open (holder death %.3f; %s)\n  %s\n  truth: %s\n"
                "  release: %s\n%s\n%s" % (
                    "FALSE RELEASE" if ep in g["false_releases"] else "UNGUARDED RELEASE",
                    ep["id"], ep["released_at"], ep.get("released_by"), ep["death_lo"],
                    ("the API never showed the live pod to the releasing arbiter process "
                     "between the grant and the death (%s), and LOCKEDBY has no address of "
                     "it: that process cannot know the address" % (
                         "it showed it to another" if oracle.served_alive(ep) else
                         "nor to any other"))
                    if ep in g["unguarded"] else "LOCKEDBY has its address"
                    if ep.get("form") in ("host", "host_desc", "host_fqdn")
                    else "the API showed the releasing arbiter process the live pod between "
                    "the grant and the death" if oracle.releaser_saw_pod(ep)
                    else "the releasing arbiter is unknown",
                    "\n  ".join(oracle.session_desc(x) + (
                        "; began within the death's second, after the API's whole-second "
                        "record of it plus the skew" if x.backend_start >= math.floor(
                            ep["death_lo"]) + SKEW_S else "") for x in ep["guard_false"]),
                    truth_json(ep), oracle.release_record(ep),
                    "\n".join(episode_history(hist_path, ep["id"], ep)),
                    "\n".join(arbiter_excerpt(world, ep))))
        for x in g["false_terminations"]:
            ep = oracle.eps.get(x.ep, {"id": x.ep})
            failures.append(
                "FALSE TERMINATION of %s (episode %s, holder death %s)\n%s\n%s" % (
                    oracle.session_desc(x), x.ep,
                    "%.3f" % ep["death_lo"] if "death_lo" in ep else "none",
                    "\n".join(episode_history(hist_path, x.ep, ep)) if "take_lo" in ep else "",
                    "\n".join(arbiter_excerpt(world, ep)) if "db" in ep else ""))
        for x in g["unexplained"]:
            failures.append("UNEXPLAINED end of %s: %s" % (oracle.session_desc(x), x.errors))
        # A guard the run never exercised is a run that tested nothing of it.
        if oracle.session_open_failed and not g["holder_sessions"]:
            failures.append("no pod session could be opened: %s" % oracle.session_open_failed[:3])
        elif records is None and res["episodes"] >= 40 and not g["lingering"]:
            failures.append("the session guard was not exercised: no dead holder's session "
                            "outlived its death in %d episodes" % res["episodes"])
        for row in oracle.foreign_releases:
            failures.append("release of a lock no episode holds: %s" % json.dumps(row))
        for ep in res["missed"]:
            failures.append("MISSED release of episode %s (%s): death at %.3f visible from "
                            "%.3f, deadline %.3f, %s\n  truth: %s%s\n  last verdict: %s\n"
                            "%s\n%s" % (
                                ep["id"], ep["death_op"], ep["death_hi"], ep["visible_from"],
                                ep["deadline"],
                                "released %.3fs after" % (ep["released_at"] - ep["visible_from"])
                                if "released_at" in ep else "never released",
                                truth_json(ep),
                                "".join("\n  " + oracle.session_desc(x)
                                        for x in oracle.ep_sessions(ep)) + (
                                    "\n  bound from: " + ep["hold"] if "hold" in ep else ""),
                                ep.get("last_verdict") or (oracle.release_record(ep)
                                                           if "released_at" in ep else None),
                                "\n".join(episode_history(hist_path, ep["id"], ep)),
                                "\n".join(arbiter_excerpt(world, ep))))
    for x in world.unexpected_exits:
        failures.append("ARBITER EXIT: %s exit %s %s\n%s" % (
            x["arbiter"], x["exit"], x.get("what", ""), x["log_tail"]))
    if res and unguarded:
        print_report(workdir, "unguarded.txt", "UNGUARDED RELEASE(S), not counted as failures",
                     unguarded, 5)
        print("\nreplay: scripts/chaos.sh --replay %s" % hist_path)
    if failures:
        print_report(workdir, "failures.txt", "FAILURE(S)", failures, 20)
        print("\nseed %s; history %s; arbiter logs %s" % (seed, hist_path, workdir))
        print("replay: scripts/chaos.sh --replay %s" % hist_path)
        return 1
    print("OK (seed %s)" % seed)
    if not args.keep and not args.out and not (res and unguarded):
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
