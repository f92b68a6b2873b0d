"""A throwaway PostgreSQL server for the tests (standard library only).

PgServer runs initdb and postgres from the PostgreSQL 15 binaries in a
temporary directory: TCP on 127.0.0.1 on a free port, the unix socket in the
same directory, trust authentication, fsync off, a superuser named
``postgres``. initdb refuses to run as root, so as root the directory is
given to the ``postgres`` system user and the server programs run through
``runuser -u postgres --``.

The server goes away with the test: ``stop()`` or the context manager, an
atexit hook, and, for a harness killed with SIGKILL (meson's last resort
after a timeout), a small watchdog process that notices the harness is gone,
stops the server and removes the directory.

    with PgServer() as pg:
        pg.create_database("app")
        pg.create_lock_table("app", "tenant_a")
        pg.lock("app", "tenant_a", lockedby="web-0 (10.0.0.7)")
"""

import atexit
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

__all__ = ["PgServer", "PgServerError", "quote_ident", "quote_literal"]

_FALLBACK_BINDIR = "/usr/lib/postgresql/15/bin"


class PgServerError(RuntimeError):
    pass


def quote_ident(name):
    """A PostgreSQL identifier, always quoted (lower-case names read the same)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    """A string literal; None becomes NULL. standard_conforming_strings is on."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _bindir():
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             timeout=10, check=False)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    candidates.append(_FALLBACK_BINDIR)
    for d in candidates:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in ("initdb", "postgres", "psql")):
            return d
    raise PgServerError("no PostgreSQL server binaries in " + ", ".join(candidates))


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _world_traversable(path):
    """True when every directory up to path lets other users through (o+x)."""
    path = os.path.abspath(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid_file(path):
    """The pid on the first line of a server's pid file, or None."""
    try:
        with open(path, encoding="ascii") as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def _postmaster_pid(datadir):
    return read_pid_file(os.path.join(datadir, "postmaster.pid"))


def run_watchdog(read_fd, cleanup):
    """Child process: waits for the harness to go away (EOF on read_fd), then
    calls cleanup(). Shared with the e2e harness, which cleans up its pods."""
    try:
        os.setsid()  # out of the test's process group, which meson kills
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # do not hold the test's output pipes open
        # Nor another server's watchdog pipe, which would then never see EOF.
        os.closerange(3, read_fd)
        os.closerange(read_fd + 1, 1 << 16)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while os.read(read_fd, 64):
            pass
        cleanup()
    finally:
        os._exit(0)


def start_watchdog(cleanup):
    """Forks a watchdog that calls cleanup() once this process is gone;
    returns the write end of its pipe: closing it ends the watchdog idle."""
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(w)
        run_watchdog(r, cleanup)
    os.close(r)
    return w


def stop_and_remove(pid, sig, topdir):
    """Signals a server (pid, None when unknown), waits up to 5 s for it to
    go, and removes its directory: a watchdog's cleanup."""
    if pid is not None and pid_alive(pid):
        os.kill(pid, sig)
        for _ in range(100):
            if not pid_alive(pid):
                break
            time.sleep(0.05)
    shutil.rmtree(topdir, ignore_errors=True)


class ThrowawayServer:
    """What PgServer and MariaDBServer (mariadbserver.py) share: a server
    process of its own in a temporary directory (topdir), started on a free
    loopback port, and gone with the test (stop() or the context manager, an
    atexit hook, and a watchdog process for a harness killed with SIGKILL).

    A subclass sets `Error` and provides _init() (creates topdir and the data
    in it, and calls _start_watchdog()), _launch(timeout) (starts the server
    on self.port and waits until it accepts connections, else raises Error),
    _watchdog_cleanup() (stops the server and removes topdir, from another
    process), stop(mode) and, optionally, _started(first)."""

    Error = RuntimeError

    def __init__(self, port=None):
        self.port = port
        self.host = "127.0.0.1"
        self.topdir = None
        self.logfile = None
        self._proc = None
        self._watch_fd = None
        self._as_root = os.geteuid() == 0
        atexit.register(self.cleanup)

    def _make_topdir(self, prefix, owner):
        """Creates topdir; as root it belongs to the system user `owner`,
        who runs the server then and must reach the directory."""
        base = None
        if self._as_root and not _world_traversable(tempfile.gettempdir()):
            base = "/tmp"
        self.topdir = tempfile.mkdtemp(prefix=prefix, dir=base)
        if self._as_root:
            pw = pwd.getpwnam(owner)
            os.chown(self.topdir, pw.pw_uid, pw.pw_gid)
        return self.topdir

    def _start_watchdog(self):
        self._watch_fd = start_watchdog(self._watchdog_cleanup)

    def start(self, timeout=30.0):
        """Starts the server (initialising its data on first use) and waits
        until it accepts connections."""
        if self.running():
            return self
        first = self.topdir is None
        if first:
            self._init()
        attempts = 1 if self.port is not None else 3
        for attempt in range(attempts):
            if self.port is None or attempt > 0:
                self.port = _free_port()
            try:
                self._launch(timeout)
                break
            except self.Error:
                # Another process may have taken the port between probe and bind.
                if attempt + 1 == attempts:
                    raise
        self._started(first)
        return self

    def _started(self, first):
        pass

    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def _end(self, sig, timeout, pid=None):
        """Sends sig to pid (default: the process started) and waits for the
        process started to exit; SIGKILL after timeout."""
        try:
            os.kill(pid or self._proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def kill(self):
        """Immediate stop: clients see the connection drop."""
        self.stop("immediate")

    def restart(self, mode="fast"):
        """Stops and starts again with the same port and data."""
        self.stop(mode)
        self.start()
        return self

    def cleanup(self):
        """Stops the server and removes its directory."""
        try:
            self.stop("immediate")
        finally:
            if self.topdir is not None:
                shutil.rmtree(self.topdir, ignore_errors=True)
                self.topdir = None
            if self._watch_fd is not None:
                os.close(self._watch_fd)  # the watchdog finds nothing left to do
                self._watch_fd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def log_tail(self, lines=30):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                # Statements the server quotes can be hundreds of kB long.
                return "".join(l if len(l) <= 300 else l[:300] + " ...\n"
                               for l in f.readlines()[-lines:])
        except OSError:
            return ""


class PgServer(ThrowawayServer):
    """A PostgreSQL server of its own in a temporary directory."""

    Error = PgServerError

    def __init__(self, port=None, bindir=None, settings=None):
        super().__init__(port)
        self.bindir = bindir or _bindir()
        self.settings = dict(settings or {})
        self.user = "postgres"
        self.datadir = None

    # -- processes --------------------------------------------------------

    def _cmd(self, argv):
        if self._as_root:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _client_env(self):
        # Only our own connection settings reach psql and pg_isready.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(self.env())
        return env

    def _init(self):
        self._make_topdir("lock-arbiter-pg-", "postgres")
        self.datadir = os.path.join(self.topdir, "data")
        self.logfile = os.path.join(self.topdir, "postgres.log")
        self._start_watchdog()
        out = subprocess.run(
            self._cmd([self._bin("initdb"), "-D", self.datadir, "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise PgServerError("initdb failed:\n" + out.stdout + out.stderr)

    def _watchdog_cleanup(self):
        stop_and_remove(_postmaster_pid(self.datadir), signal.SIGQUIT, self.topdir)

    def _launch(self, timeout):
        argv = [self._bin("postgres"), "-D", self.datadir, "-p", str(self.port),
                "-k", self.topdir, "-c", "listen_addresses=" + self.host,
                "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "logging_collector=off"]
        for key, value in self.settings.items():
            argv += ["-c", "%s=%s" % (key, value)]
        with open(self.logfile, "ab") as log:
            self._proc = subprocess.Popen(self._cmd(argv), stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise PgServerError("postgres exited during start-up:\n" + self.log_tail())
            ready = subprocess.run(
                [self._bin("pg_isready"), "-q", "-h", self.host, "-p", str(self.port),
                 "-U", self.user, "-d", "postgres", "-t", "1"],
                env=self._client_env(), stdin=subprocess.DEVNULL, check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        self.stop("immediate")
        raise PgServerError("postgres did not accept connections within %.0f s:\n%s"
                            % (timeout, self.log_tail()))

    def stop(self, mode="fast", timeout=30.0):
        """Stops the server: mode smart, fast (default) or immediate (a crash)."""
        if self._proc is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        # Signal the postmaster itself: as root, _proc is runuser, which would
        # turn any signal into SIGTERM (a smart shutdown) and SIGKILL 2 s later.
        pid = _postmaster_pid(self.datadir)
        if pid is None or not self.running():
            pid = self._proc.pid
        self._end(sig, timeout, pid)

    # -- clients ------------------------------------------------------------

    def dsn(self, dbname="postgres", port=None):
        """A postgresql:// URL for dbname, as the daemon's --database takes it
        (port: another port that leads here, a proxy's)."""
        from urllib.parse import quote
        return "postgresql://%s@%s:%d/%s" % (self.user, self.host, port or self.port,
                                             quote(dbname, safe=""))

    def env(self):
        """libpq environment for this server."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}

    def psql(self, sql, dbname="postgres", check=True):
        """Runs SQL through psql; returns its unaligned, tuples-only output."""
        out = subprocess.run(
            [self._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql],
            env=self._client_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            check=False)
        if check and out.returncode != 0:
            raise PgServerError("psql failed (%d): %s\n%s" % (out.returncode, sql, out.stderr))
        return out.stdout

    sql = psql

    def create_database(self, name):
        self.psql("CREATE DATABASE " + quote_ident(name))
        return self.dsn(name)

    # -- Liquibase lock tables ---------------------------------------------

    def create_lock_table(self, dbname, schema="public", table="databasechangeloglock"):
        """The lock table exactly as Liquibase 4.28 creates it on PostgreSQL."""
        qt = quote_ident(schema) + "." + quote_ident(table)
        self.psql(
            "CREATE SCHEMA IF NOT EXISTS %s;"
            " CREATE TABLE %s (id INTEGER NOT NULL, locked BOOLEAN NOT NULL,"
            " lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255),"
            " CONSTRAINT %s PRIMARY KEY (id));"
            " INSERT INTO %s (id, locked, lockgranted, lockedby) VALUES (1, FALSE, NULL, NULL)"
            % (quote_ident(schema), qt, quote_ident(table + "_pkey"), qt), dbname)

    def lock(self, dbname, schema="public", table="databasechangeloglock",
             lockedby="localhost (127.0.0.1)", lockgranted="now"):
        """Takes the lock as Liquibase does. lockgranted: "now" (the server's
        local time), None (NULL) or a 'YYYY-MM-DD HH:MM:SS[.ffffff]' string."""
        granted = "LOCALTIMESTAMP" if lockgranted == "now" else (
            "NULL" if lockgranted is None else quote_literal(lockgranted) + "::timestamp")
        return self.psql(
            "UPDATE %s.%s SET locked = TRUE, lockedby = %s, lockgranted = %s"
            " WHERE id = 1 AND locked = FALSE RETURNING 1"
            % (quote_ident(schema), quote_ident(table), quote_literal(lockedby), granted),
            dbname).strip() == "1"

    def unlock(self, dbname, schema="public", table="databasechangeloglock"):
        """Releases the lock as Liquibase does."""
        self.psql("UPDATE %s.%s SET locked = FALSE, lockgranted = NULL, lockedby = NULL"
                  " WHERE id = 1" % (quote_ident(schema), quote_ident(table)), dbname)

    def read_lock(self, dbname, schema="public", table="databasechangeloglock"):
        """(locked, lockedby, lockgranted text) of the id = 1 row, or None."""
        out = self.psql(
            "SELECT json_build_array(locked, lockedby,"
            " to_char(lockgranted, 'YYYY-MM-DD HH24:MI:SS.US'))"
            " FROM %s.%s WHERE id = 1" % (quote_ident(schema), quote_ident(table)), dbname)
        if not out.strip():
            return None
        return tuple(json.loads(out))
