"""One database abstraction for the integration tests, so that a test runs
against PostgreSQL and MariaDB alike (issue 12: every rule's integration
test runs against both backends).

The `backend` fixture (conftest.py) gives a Database: a new database on the
module's server of one kind (pgserver.py's PgServer, mariadbserver.py's
MariaDBServer), and what the tests do with it: its URL for --database, its
label as the arbiter names it, the lock table as Liquibase creates it,
taking and releasing the lock as Liquibase does, reading it back, and a
session from a pod's address that runs a long statement (the session guard).
The servers' own helpers do the work; this only chooses among them.

Where the backends differ, the Database says so:
- the lock table: PostgreSQL's `databasechangeloglock` in schema `public`;
  MariaDB's `DATABASECHANGELOGLOCK` (the case Liquibase 4.28 created it in)
  in the database itself, which plays the role of a schema (DESIGN.md
  section 3): `where()` is what the arbiter prints, `schema.table`;
- LOCKGRANTED: PostgreSQL keeps microseconds, MariaDB's DATETIME whole seconds;
- sessions: a psql through a proxy bound to the pod's address (PostgreSQL
  then records that client_addr), or PyMySQL bound to it (MariaDB's
  PROCESSLIST shows `ADDR:PORT`); `pid()` is the backend pid or the
  connection id, as the arbiter names the session;
- privileges: seeing other accounts' sessions takes pg_read_all_stats or
  PROCESS (`session_grant`), ending them superuser or pg_signal_backend, or
  CONNECTION ADMIN (MariaDB 10.5+) or SUPER (`allow_terminate()`)."""
import contextlib
import datetime
import os
import socket
import subprocess
import threading
import time
import zoneinfo

from conftest import LoopbackListener
from mariadbserver import (ARBITER_USER, LOCK_TABLE as MARIA_LOCK_TABLE,
                           quote_ident as maria_ident, quote_literal as maria_literal)

PG_LOCK_TABLE = "databasechangeloglock"


class Database:
    """One database of a test server. Subclasses set the class attributes
    and implement the operations; `schema` and `table` default to where
    Liquibase puts its lock table on that backend."""

    kind = None           # "postgresql" or "mariadb": the parameter's id
    table = None          # the lock table's name as Liquibase creates it
    sleep_fn = None       # what a session's long statement calls, as the arbiter quotes it
    session_grant = None  # what lets an account see other accounts' sessions
    ungranted = None      # the URL user that cannot see them (blind_dsn)

    def __init__(self, server, name):
        self.server = server
        self.name = name

    @classmethod
    def create(cls, server, name):
        server.create_database(name)
        return cls(server, name)

    def another(self, suffix="_b"):
        """A second new database on the same server."""
        return type(self).create(self.server, self.name + suffix)

    @property
    def schema(self):
        raise NotImplementedError

    @property
    def port(self):
        return self.server.port

    @property
    def label(self):
        """The database as the arbiter names it in logs and metrics."""
        return "%s:%d/%s" % (self.server.host, self.server.port, self.name)

    def label_via(self, port):
        """The label of dsn(port=port): the same database through a proxy."""
        return "%s:%d/%s" % (self.server.host, port, self.name)

    def where(self, schema=None, table=None):
        """`schema.table` as the arbiter prints a lock table."""
        return "%s.%s" % (schema or self.schema, table or self.table)

    def locked(self, **where):
        row = self.read_lock(**where)
        return row is not None and row[0] is True

    def sleep_sql(self, seconds):
        return "SELECT %s(%d)" % (self.sleep_fn, seconds)


# -- PostgreSQL -----------------------------------------------------------------

class SourceProxy(LoopbackListener):
    """Forwards local connections to a server on 127.0.0.1:port from source
    address src (127.0.0.x): psql cannot bind, so the proxy does."""

    def __init__(self, port, src):
        self.target_port, self.src = port, src
        super().__init__(backlog=16)

    def on_accept(self, c):
        up = socket.socket()
        up.bind((self.src, 0))
        up.connect(("127.0.0.1", self.target_port))
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
    """A client session from source address src running sql until it ends,
    or, sql None, connected and idle. proc is the client process; pid() the
    server's name for the session (a backend pid, a connection id), None
    once it is gone or has changed state. Other sessions from src (an
    earlier one still open) are not this one."""

    def __init__(self, database, src, sql):
        self.database, self.src, self.sql = database, src, sql
        self.idle = sql is None
        before = set(self._active())
        self.proc = self._start()
        self.ident = None
        deadline = time.monotonic() + 10
        while self.ident is None:
            assert time.monotonic() < deadline, "no session from %s" % src
            assert self.proc.poll() is None, "the client of %s exited: %s" % (
                src, self.proc.communicate())
            time.sleep(0.05)
            new = [i for i in self._active() if i not in before]
            if new:
                self.ident = max(new)

    def pid(self):
        return self.ident if self.ident in self._active() else None

    def end(self):
        """The client is gone and the server has noticed (it would when the
        statement next writes to the socket): the session ends."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._end_server_side()
        deadline = time.monotonic() + 10
        while self.alive(self.ident) and time.monotonic() < deadline:
            time.sleep(0.05)


class PgSession(Session):
    def _start(self):
        pg = self.database.server
        self.proxy = SourceProxy(pg.port, self.src)
        # Idle: psql connects, then waits for commands on its stdin, kept open.
        return subprocess.Popen(
            [pg._bin("psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self.proxy.port),
             "-U", pg.user, "-d", self.database.name]
            + ([] if self.idle else ["-c", self.sql]),
            env=pg._client_env(), stdin=subprocess.PIPE if self.idle else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def _active(self):
        return [int(x) for x in self.database.server.psql(
            "SELECT pid FROM pg_stat_activity WHERE client_addr = '%s' AND state = '%s'"
            % (self.src, "idle" if self.idle else "active")).split()]

    def alive(self, pid):
        return self.database.server.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %d" % pid).strip() == "1"

    def _end_server_side(self):
        self.database.server.psql("SELECT pg_terminate_backend(%d)" % self.ident)
        self.proxy.close()


class PgDatabase(Database):
    kind = "postgresql"
    table = PG_LOCK_TABLE
    sleep_fn = "pg_sleep"
    session_grant = "pg_read_all_stats"
    ungranted = "watcher"

    @property
    def schema(self):
        return "public"

    def dsn(self, port=None):
        return self.server.dsn(self.name, port=port)

    def _where(self, schema, table):
        return dict(schema=schema or self.schema, table=table or self.table)

    def create_lock_table(self, schema=None, table=None, form=None):
        if form is not None:
            raise ValueError("PostgreSQL has one lock table form")
        self.server.create_lock_table(self.name, **self._where(schema, table))

    def lock(self, lockedby="localhost (127.0.0.1)", lockgranted="now", schema=None, table=None):
        return self.server.lock(self.name, lockedby=lockedby, lockgranted=lockgranted,
                                **self._where(schema, table))

    def unlock(self, schema=None, table=None):
        self.server.unlock(self.name, **self._where(schema, table))

    def read_lock(self, schema=None, table=None):
        return self.server.read_lock(self.name, **self._where(schema, table))

    def sql(self, sql):
        return self.server.psql(sql, self.name)

    def now_in_zone(self, zone, minus_seconds=0):
        """The server's now as a LOCKGRANTED a JVM in zone writes."""
        return self.server.psql(
            "SELECT to_char(now() AT TIME ZONE '%s' - interval '%d seconds', "
            "'YYYY-MM-DD HH24:MI:SS.US')" % (zone, minus_seconds)).strip()

    def session(self, src, seconds=60, idle=False):
        """A session from src running a sleep of seconds, or idle."""
        _trust_loopback(self.server)
        return PgSession(self, src, None if idle else self.sleep_sql(seconds))

    def blind_dsn(self):
        """A URL for a role that may read and release the lock but cannot see
        other roles' sessions (no pg_read_all_stats)."""
        self.server.psql("DO $$ BEGIN CREATE ROLE %s LOGIN; EXCEPTION WHEN duplicate_object"
                         " THEN NULL; END $$" % self.ungranted)
        self.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO %s" % self.ungranted)
        return "postgresql://%s@127.0.0.1:%d/%s" % (self.ungranted, self.port, self.name)

    def no_terminate_dsn(self):
        """A URL for a role that sees every session (pg_read_all_stats) but
        may not end the sessions of postgres, a superuser."""
        self.server.psql("DO $$ BEGIN CREATE ROLE observer LOGIN; EXCEPTION WHEN"
                         " duplicate_object THEN NULL; END $$; GRANT pg_read_all_stats TO observer")
        self.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO observer")
        return "postgresql://observer@127.0.0.1:%d/%s" % (self.port, self.name)

    @contextlib.contextmanager
    def allow_terminate(self):
        """The arbiter's role may end other sessions: postgres, a superuser, may."""
        yield


def _trust_loopback(pg):
    """Trust every loopback address, not only 127.0.0.1 (initdb's default),
    once per server: the sessions come from 127.0.0.x."""
    if getattr(pg, "_loopback_trusted", False):
        return
    with open(os.path.join(pg.datadir, "pg_hba.conf"), "a", encoding="utf-8") as f:
        f.write("\nhost all all 127.0.0.0/8 trust\n")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(0.3)
    pg._loopback_trusted = True


# -- MariaDB --------------------------------------------------------------------

class MariaSession(Session):
    def _start(self):
        return self.database.server.client(self.sql or "", dbname=self.database.name,
                                           bind=self.src)

    def _active(self):
        return [int(x) for x in self.database.server.sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE HOST LIKE %s AND COMMAND = %s"
            % (maria_literal(self.src + ":%"), "'Sleep'" if self.idle else "'Query'")).split()]

    def alive(self, pid):
        return self.database.server.sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %d" % pid
        ).strip() == "1"

    def _end_server_side(self):
        self.database.server.sql_result("KILL CONNECTION %d" % self.ident)


class MariaDatabase(Database):
    kind = "mariadb"
    table = MARIA_LOCK_TABLE
    sleep_fn = "SLEEP"
    session_grant = "PROCESS"
    ungranted = "blind"
    # The LOCKED column type Liquibase 4.28 gives the table on MariaDB 10.11.
    default_form = "tinyint1"

    @property
    def schema(self):
        return self.name

    def dsn(self, port=None, user=ARBITER_USER, password=None):
        kw = {} if password is None else {"password": password}
        return self.server.dsn(self.name, user=user, port=port, **kw)

    def _args(self, schema, table):
        return schema or self.name, dict(table=table or self.table)

    def create_lock_table(self, schema=None, table=None, form=None):
        """In database schema (default: this one), created by the app's
        account as Liquibase does, and granted to the arbiter's."""
        db, kw = self._args(schema, table)
        self.server.create_lock_table(db, form=form or self.default_form, **kw)

    def lock(self, lockedby="localhost (127.0.0.1)", lockgranted="now", schema=None, table=None):
        db, kw = self._args(schema, table)
        return self.server.lock(db, lockedby=lockedby, lockgranted=lockgranted, **kw)

    def unlock(self, schema=None, table=None):
        db, kw = self._args(schema, table)
        self.server.unlock(db, **kw)

    def read_lock(self, schema=None, table=None):
        db, kw = self._args(schema, table)
        return self.server.read_lock(db, **kw)

    def set_lockedby(self, lockedby, schema=None, table=None):
        """Rewrites LOCKEDBY of the held row, LOCKGRANTED untouched."""
        db, kw = self._args(schema, table)
        self.server.sql("UPDATE %s SET LOCKEDBY = %s WHERE ID = 1"
                        % (maria_ident(kw["table"]), maria_literal(lockedby)), db)

    def sql(self, sql):
        return self.server.sql(sql, self.name)

    def now_in_zone(self, zone, minus_seconds=0):
        """The server's now as a LOCKGRANTED a JVM in zone writes (whole
        seconds: the column is a DATETIME). Computed here, from the same
        clock: the server's named zones need its time zone tables."""
        now = datetime.datetime.fromtimestamp(
            float(self.server.sql("SELECT UNIX_TIMESTAMP(NOW(6))").strip()),
            zoneinfo.ZoneInfo(zone)) - datetime.timedelta(seconds=minus_seconds)
        return now.strftime("%Y-%m-%d %H:%M:%S")

    def load_time_zones(self, *zones):
        """Loads the server's time zone tables for these zones (CONVERT_TZ,
        which the arbiter uses for --lockgranted-timezone, knows no named
        zone without them), once per server and zone."""
        done = getattr(self.server, "_zones_loaded", set())
        self.server._zones_loaded = done
        for zone in zones:
            if zone in done:
                continue
            out = subprocess.run(["mariadb-tzinfo-to-sql", "/usr/share/zoneinfo/" + zone, zone],
                                 capture_output=True, text=True, check=True)
            self.server.sql(out.stdout, "mysql")
            done.add(zone)

    def session(self, src, seconds=60, idle=False):
        """A session from src running a sleep of seconds, or idle."""
        return MariaSession(self, src, None if idle else self.sleep_sql(seconds))

    def blind_dsn(self):
        """A URL for an account that may read and release the lock but
        cannot see other accounts' sessions (no PROCESS)."""
        u = maria_literal(self.ungranted)
        self.server.sql("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s;"
                        " GRANT SELECT, UPDATE ON %s.%s TO %s@'%%'"
                        % (u, u, maria_ident(self.name), maria_ident(self.table), u))
        return self.dsn(user=self.ungranted, password=self.ungranted)

    def no_terminate_dsn(self):
        """The arbiter's account as the harness made it: PROCESS shows it every
        session, and it has no right to KILL another account's."""
        return self.dsn()

    @contextlib.contextmanager
    def allow_terminate(self):
        """The arbiter's account may KILL another account's connection:
        CONNECTION ADMIN (MariaDB 10.5+; SUPER would do too), which the
        harness does not give it. Taken back afterwards: the server serves
        the whole module."""
        grant = "CONNECTION ADMIN ON *.* %s " + maria_literal(ARBITER_USER) + "@'%%'"
        self.server.sql("GRANT " + grant % "TO")
        try:
            yield
        finally:
            self.server.sql("REVOKE " + grant % "FROM")


def open_database(kind, server, name):
    """A new database `name` on server, of backend kind ("postgresql" or "mariadb")."""
    return {"postgresql": PgDatabase, "mariadb": MariaDatabase}[kind].create(server, name)
