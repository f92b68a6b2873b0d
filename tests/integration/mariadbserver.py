"""A throwaway MariaDB server for the tests (standard library only).

MariaDBServer runs mariadb-install-db and mariadbd (Debian 12: MariaDB 10.11,
package mariadb-server) in a temporary directory: TCP on 127.0.0.1 (and any
extra addresses, e.g. the e2e pods' bridge) on a free port, its own unix
socket in the same directory, no option files read (--no-defaults), durability
traded for speed (innodb_flush_log_at_trx_commit=0, no doublewrite), and the
character set of Debian's stock configuration (utf8mb4, utf8mb4_general_ci:
comparisons are case-insensitive, as on most real servers). Host names are
not resolved (--skip-name-resolve), so information_schema.PROCESSLIST shows
HOST as `IP:PORT`. As root the server runs as the `mysql` system user
(mariadbd --user=mysql), which owns the directory; otherwise as the caller.

Accounts:
- `root`@`localhost` (unix socket) and `root`@`127.0.0.1`, no password: admin.
- ARBITER_USER (`lock_arbiter`@`%`, password ARBITER_PASSWORD): what the
  arbiter needs and nothing more: PROCESS (the session guard sees every
  account's sessions in information_schema.PROCESSLIST), and SELECT, UPDATE on
  each lock table it is given (grant_arbiter; create_lock_table does it).
  GET_LOCK needs no privilege. It has no KILL of others' sessions.
- APP_USER (`app`@`%`, password APP_PASSWORD): the application's migration
  account, all privileges on every database (Liquibase creates its tables).

Lock tables are created from tests/fixtures/mariadb/lock-tables.json: the
statements real Liquibase issued for its three LOCKED column types (see
LOCK_FORMS and tests/fixtures/README.md for their provenance).

The server goes away with the test: stop() or the context manager, an
atexit hook, and the same watchdog as PgServer for a harness killed with
SIGKILL.

    with MariaDBServer() as m:
        m.create_database("app")
        m.create_lock_table("app", form="tinyint1")
        m.lock("app", lockedby="web-0 (10.0.0.7)")
        m.read_lock("app")  # (True, 'web-0 (10.0.0.7)', '2026-...')
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from pgserver import ThrowawayServer, read_pid_file, stop_and_remove

__all__ = ["MariaDBServer", "MariaDBServerError", "quote_ident", "quote_literal",
           "LOCK_FORMS", "lock_table_fixture", "ARBITER_USER", "ARBITER_PASSWORD",
           "APP_USER", "APP_PASSWORD"]

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("LOCK_ARBITER_FIXTURES") or os.path.join(
    os.path.dirname(HERE), "fixtures")
LOCK_TABLES_FIXTURE = os.path.join(FIXTURES, "mariadb", "lock-tables.json")

LOCK_TABLE = "DATABASECHANGELOGLOCK"
# The three LOCKED column types Liquibase has created on MariaDB/MySQL, by
# the fixture's key: BIT(1) up to 4.23, TINYINT(1) in 4.24 and on MariaDB
# from 4.26, TINYINT in 4.25.x on MariaDB and from 4.25.1 on MySQL.
LOCK_FORMS = ("bit1", "tinyint1", "tinyint")
# The database name Liquibase qualified its statements with in the capture;
# create_lock_table puts the target database in its place.
CAPTURE_DB = "lbcapture"

ARBITER_USER = "lock_arbiter"
ARBITER_PASSWORD = "arbiter-secret"
APP_USER = "app"
APP_PASSWORD = "app-secret"

_PASSWORDS = {ARBITER_USER: ARBITER_PASSWORD, APP_USER: APP_PASSWORD}

# A client from a chosen source address (argv: host port user password db bind sql).
# An empty sql: the session stays open and idle (COMMAND Sleep) until killed.
_BOUND_CLIENT = """
import sys, time, pymysql
host, port, user, password, db, bind, sql = sys.argv[1:8]
c = pymysql.connect(host=host, port=int(port), user=user, password=password,
                    database=db or None, bind_address=bind, autocommit=True)
if not sql:
    time.sleep(3600)
with c.cursor() as cur:
    cur.execute(sql)
    for row in cur.fetchall():
        print(*row, sep="\\t")
"""

_BINARIES = ("mariadb-install-db", "mariadbd", "mariadb", "mariadb-admin")


class MariaDBServerError(RuntimeError):
    pass


def quote_ident(name):
    """A MariaDB identifier in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def quote_literal(value):
    """A string literal (backslashes escaped: NO_BACKSLASH_ESCAPES is off);
    None becomes NULL."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _find(name):
    for d in (os.environ.get("MARIADB_BINDIR"), "/usr/sbin", "/usr/bin"):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if not found:
        raise MariaDBServerError("%s not found (Debian: apt-get install mariadb-server)" % name)
    return found


def lock_table_fixture():
    """The captured lock-table statements: {form: {...}} (see the fixture)."""
    with open(LOCK_TABLES_FIXTURE, encoding="utf-8") as f:
        return json.load(f)["forms"]


class MariaDBServer(ThrowawayServer):
    """A MariaDB server of its own in a temporary directory."""

    Error = MariaDBServerError

    def __init__(self, port=None, extra_listen=(), settings=None):
        super().__init__(port)
        self.bins = {b: _find(b) for b in _BINARIES}
        self.listen = [self.host] + [a for a in extra_listen if a and a != self.host]
        self.settings = dict(settings or {})
        self.datadir = None
        self.socket = None
        self.pidfile = None
        self.version = None

    # -- processes --------------------------------------------------------

    def _user_args(self):
        return ["--user=mysql"] if self._as_root else []

    def _init(self):
        self._make_topdir("lock-arbiter-maria-", "mysql")
        self.datadir = os.path.join(self.topdir, "data")
        self.socket = os.path.join(self.topdir, "mariadb.sock")
        self.pidfile = os.path.join(self.topdir, "mariadb.pid")
        self.logfile = os.path.join(self.topdir, "mariadb.log")
        # A temporary directory of its own: servers started at once (meson
        # runs tests in parallel) otherwise share /tmp's #sql-temptable files.
        self.tmpdir = os.path.join(self.topdir, "tmp")
        os.mkdir(self.tmpdir)
        if self._as_root:
            shutil.chown(self.tmpdir, "mysql", "mysql")
        os.chmod(self.topdir, 0o755)
        self._start_watchdog()
        out = subprocess.run(
            [self.bins["mariadb-install-db"], "--no-defaults", "--datadir=" + self.datadir,
             "--tmpdir=" + self.tmpdir,
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve", "--innodb-log-file-size=16M",
             "--innodb-buffer-pool-size=32M"] + self._user_args(),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise MariaDBServerError("mariadb-install-db failed:\n" + out.stdout + out.stderr)

    def _watchdog_cleanup(self):
        stop_and_remove(read_pid_file(self.pidfile), signal.SIGKILL, self.topdir)

    def start(self, timeout=60.0):
        """Starts the server (install-db on first use) and waits until it
        accepts connections; the first start also creates the accounts."""
        return super().start(timeout)

    def _started(self, first):
        if first:
            self._accounts()
        self.version = self.sql("SELECT VERSION()").strip()

    def _launch(self, timeout):
        argv = [self.bins["mariadbd"], "--no-defaults", "--datadir=" + self.datadir,
                "--socket=" + self.socket, "--port=%d" % self.port, "--tmpdir=" + self.tmpdir,
                "--bind-address=" + ",".join(self.listen), "--skip-name-resolve",
                "--pid-file=" + self.pidfile, "--log-error=" + self.logfile,
                "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                "--skip-log-bin"] + self._user_args()
        for key, value in self.settings.items():
            argv.append("--%s=%s" % (key.replace("_", "-"), value))
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise MariaDBServerError("mariadbd exited during start-up:\n" + self.log_tail())
            ping = subprocess.run(
                [self.bins["mariadb-admin"], "--no-defaults", "--socket=" + self.socket,
                 "--user=root", "--connect-timeout=1", "ping"],
                stdin=subprocess.DEVNULL, capture_output=True, check=False)
            if ping.returncode == 0 and self._tcp_ready():
                return
            time.sleep(0.05)
        self.stop("immediate")
        raise MariaDBServerError("mariadbd did not accept connections within %.0f s:\n%s"
                                 % (timeout, self.log_tail()))

    def _tcp_ready(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _accounts(self):
        self.sql(
            # The install's root@<host name> cannot match with --skip-name-resolve.
            "DELETE FROM mysql.global_priv WHERE User = 'root'"
            " AND Host NOT IN ('localhost', '127.0.0.1', '::1');"
            " FLUSH PRIVILEGES;"
            " CREATE USER %s@'%%' IDENTIFIED BY %s;"
            " GRANT PROCESS ON *.* TO %s@'%%';"
            " CREATE USER %s@'%%' IDENTIFIED BY %s;"
            " GRANT ALL PRIVILEGES ON *.* TO %s@'%%';"
            % (quote_literal(ARBITER_USER), quote_literal(ARBITER_PASSWORD),
               quote_literal(ARBITER_USER),
               quote_literal(APP_USER), quote_literal(APP_PASSWORD), quote_literal(APP_USER)))

    def server_pid(self):
        return self._proc.pid if self.running() else None

    def stop(self, mode="fast", timeout=60.0):
        """Stops the server: fast (SIGTERM: a clean shutdown) or immediate
        (SIGKILL: a crash; clients see their connections drop)."""
        if self._proc is None:
            return
        self._end({"fast": signal.SIGTERM, "immediate": signal.SIGKILL}[mode], timeout)

    # -- clients ------------------------------------------------------------

    def dsn(self, dbname, user=ARBITER_USER, password=ARBITER_PASSWORD, host=None, port=None):
        """A mariadb:// URL for dbname (by default as the arbiter's account;
        port: another port that leads here, a proxy's)."""
        from urllib.parse import quote
        return "mariadb://%s:%s@%s:%d/%s" % (quote(user, safe=""), quote(password, safe=""),
                                             host or self.host, port or self.port,
                                             quote(dbname, safe=""))

    def jdbc_url(self, dbname, host=None):
        """The URL Liquibase's bundled MariaDB JDBC driver takes."""
        return "jdbc:mariadb://%s:%d/%s" % (host or self.host, self.port, dbname)

    def client_argv(self, user="root", password=None, dbname=None, tcp=None):
        """argv of the mariadb client for this server. root goes through the
        unix socket unless tcp=True; other accounts use TCP to 127.0.0.1."""
        argv = [self.bins["mariadb"], "--no-defaults", "--batch", "--skip-column-names",
                "--raw", "--comments", "--user=" + user]
        if password is None:
            password = _PASSWORDS.get(user)
        if password:
            argv.append("--password=" + password)
        if tcp is None:
            tcp = user != "root"
        if tcp:
            argv += ["--protocol=TCP", "--host=" + self.host, "--port=%d" % self.port]
        else:
            argv += ["--protocol=SOCKET", "--socket=" + self.socket]
        if dbname:
            argv.append("--database=" + dbname)
        return argv

    def sql(self, sql, dbname=None, user="root", password=None, check=True, timeout=60):
        """Runs SQL through the mariadb client (admin by default); returns its
        tab-separated output, raw (no escaping), without column names."""
        out = subprocess.run(self.client_argv(user, password, dbname) + ["-e", sql],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             check=False, timeout=timeout)
        if check and out.returncode != 0:
            raise MariaDBServerError("mariadb failed (%d) as %s: %s\n%s"
                                     % (out.returncode, user, sql, out.stderr.strip()))
        return out.stdout

    def sql_result(self, sql, dbname=None, user="root", password=None, timeout=60):
        """Like sql() but never raises: (returncode, stdout, stderr)."""
        out = subprocess.run(self.client_argv(user, password, dbname) + ["-e", sql],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             check=False, timeout=timeout)
        return out.returncode, out.stdout, out.stderr

    def query_json(self, expr, dbname=None, user="root", **kw):
        """The rows of `SELECT expr ...`, where expr is a JSON_ARRAY/JSON_OBJECT
        expression, decoded: a list of values."""
        out = self.sql("SELECT " + expr, dbname, user, **kw)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def client(self, sql, user=APP_USER, dbname=None, bind=None):
        """A client process running sql in the background: a session that
        stays open while its statement runs; the caller waits for it or kills
        it (on SIGKILL the kernel closes its socket; the server notices when it
        next reads from it). bind: the client's source
        address (127.0.0.x), so PROCESSLIST shows `bind:PORT` for it; that
        client is Python with PyMySQL (Debian python3-pymysql), as the
        mariadb client cannot bind; with an empty sql it connects and stays
        idle."""
        if bind is None:
            argv = self.client_argv(user, None, dbname) + ["-e", sql]
        else:
            argv = [sys.executable, "-c", _BOUND_CLIENT, self.host, str(self.port), user,
                    _PASSWORDS.get(user, ""), dbname or "", bind, sql]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def create_database(self, name):
        self.sql("CREATE DATABASE %s" % quote_ident(name))
        return self.dsn(name)

    # -- Liquibase lock tables ---------------------------------------------

    def create_lock_table(self, dbname, form="tinyint1", table=LOCK_TABLE, grant=True):
        """The lock table in dbname, created with the statements real Liquibase
        issued for this LOCKED form (LOCK_FORMS), then initialised as it does
        (one row, ID 1, LOCKED 0). grant: SELECT, UPDATE for the arbiter."""
        forms = lock_table_fixture()
        if form not in forms:
            raise ValueError("unknown lock table form %r (one of %s)" % (form, ", ".join(forms)))
        stmts = []
        for s in forms[form]["statements"]:
            s = s.replace(CAPTURE_DB + ".", quote_ident(dbname) + ".")
            if table != LOCK_TABLE:
                s = s.replace("." + LOCK_TABLE, "." + quote_ident(table))
            stmts.append(s if s.rstrip().endswith(";") else s + ";")
        self.sql(" ".join(stmts), dbname, user=APP_USER)
        if grant:
            self.grant_arbiter(dbname, table)

    def grant_arbiter(self, dbname, table=LOCK_TABLE):
        """SELECT and UPDATE on one lock table for the arbiter's account."""
        self.sql("GRANT SELECT, UPDATE ON %s.%s TO %s@'%%'"
                 % (quote_ident(dbname), quote_ident(table), quote_literal(ARBITER_USER)))

    def column_type(self, dbname, column="LOCKED", table=LOCK_TABLE):
        """COLUMN_TYPE from information_schema, e.g. 'tinyint(1)'."""
        return self.sql(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = %s AND COLUMN_NAME = %s"
            % (quote_literal(dbname), quote_literal(table), quote_literal(column))).strip()

    def lock(self, dbname, lockedby="localhost (127.0.0.1)", lockgranted="now",
             table=LOCK_TABLE, user=APP_USER):
        """Takes the lock as Liquibase 4.28 does (`SET LOCKED = 1, LOCKEDBY = …,
        LOCKGRANTED = NOW() WHERE ID = 1 AND LOCKED = 0`). lockgranted: "now",
        None (NULL) or a 'YYYY-MM-DD HH:MM:SS[.ffffff]' string. True when taken."""
        granted = "NOW()" if lockgranted == "now" else quote_literal(lockgranted)
        out = self.sql("UPDATE %s SET `LOCKED` = 1, LOCKEDBY = %s, LOCKGRANTED = %s"
                       " WHERE ID = 1 AND `LOCKED` = 0; SELECT ROW_COUNT()"
                       % (quote_ident(table), quote_literal(lockedby), granted),
                       dbname, user=user)
        return out.strip() == "1"

    def unlock(self, dbname, table=LOCK_TABLE, user=APP_USER):
        """Releases the lock as Liquibase does."""
        self.sql("UPDATE %s SET `LOCKED` = 0, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1"
                 % quote_ident(table), dbname, user=user)

    def read_lock(self, dbname, table=LOCK_TABLE, user="root"):
        """(locked, lockedby, lockgranted text) of the ID 1 row, or None.
        `LOCKED <> 0` reads every form (BIT(1), TINYINT(1), TINYINT)."""
        rows = self.query_json(
            "JSON_ARRAY(`LOCKED` <> 0, LOCKEDBY, DATE_FORMAT(LOCKGRANTED,"
            " '%%Y-%%m-%%d %%H:%%i:%%s.%%f')) FROM %s WHERE ID = 1" % quote_ident(table),
            dbname, user=user)
        if not rows:
            return None
        locked, lockedby, granted = rows[0]
        return (bool(locked), lockedby, granted)
