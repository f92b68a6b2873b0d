"""A database session of a simulated pod on MariaDB, for the chaos
simulation's session guard episodes (DESIGN.md section 6): the counterpart
of holder_session.py's PostgreSQL session, with the same interface.

The client is PyMySQL (Debian python3-pymysql) bound to the pod's address
(127.x.y.z), so MariaDB's information_schema.PROCESSLIST shows HOST as
`ADDR:PORT` (the server runs with --skip-name-resolve). PyMySQL connects,
authenticates and enters the mode; from then on the socket is read by a
thread of our own that stamps, on the wall clock, every error packet the
server sends and the end of the connection.

    active    a statement in progress (SELECT SLEEP(86400)): COMMAND Query
    idle_tx   a transaction left open with an uncommitted UPDATE (of a row
              of its own in chaos_meta.work): COMMAND Sleep, so the guard
              counts it as idle (my-act.c: "COMMAND Sleep is idle")
    idle      connected, nothing open: COMMAND Sleep

What the server does that the oracle must know (MariaDB 10.11.19, checked
with this client): KILL CONNECTION closes the socket without an error
packet, in every mode, and the server rolls an open transaction back; a
server stop closes it too (an active statement may first get error 1053).
So an end of the connection that the client did not ask for, outside a
server stop, is a KILL, which nothing but an arbiter issues here
(SILENT_KILL).

The session's start is measured by the client: backend_start is the wall
clock just before it connects, backend_start_hi just after the handshake;
query_start_hi is just after an active session sent its statement (the
process list's TIME counts from the statement's start). The connection id
(pid, as the arbiter names the session) and the address and port come from
the server.
"""

import struct
import threading
import time

import pymysql

from holder_session import PodSession, SessionError

MODES = ("active", "idle_tx", "idle")
ACTIVE_SQL = "SELECT SLEEP(86400)"
# Modes the server shows as COMMAND Sleep once entered: the guard's idle.
IDLE_MODES = ("idle", "idle_tx")
ER_CONNECTION_KILLED = 1927


def _packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


class MariaHolderSession(PodSession):
    """One session from address src to database db (as the pod account
    user); open() connects and enters mode, end() is the client ending it
    (the statement cancelled with KILL QUERY from another connection, as a
    JDBC Statement.cancel() does, then COM_QUIT: the server rolls an open
    transaction back)."""

    # For the oracle: the server's error codes that mean this session was
    # ended by someone else's KILL, and whether a KILL may also end it
    # without any error (MariaDB: it does).
    KILL_CODES = (str(ER_CONNECTION_KILLED),)
    SILENT_KILL = True
    IDLE_MODES = IDLE_MODES

    def __init__(self, host, port, db, src, user, password, work_table):
        self.host, self.port, self.db, self.src = host, port, db, src
        self.user, self.password = user, password
        self.work_table = work_table
        self.conn = None
        self.sock = None
        self.mode = None
        self.pid = None  # the connection id
        self.backend_start = self.backend_start_hi = self.query_start_hi = None
        self.client_addr = None
        self.client_port = None
        self.errors = []  # (wall time, "ERROR", code, message), from the reader
        self.fatal = None  # the first error while not ending: (wall time, code, message)
        self.eof_at = None
        self.ending = False
        self._got = threading.Event()  # bytes arrived after the KILL QUERY
        self._reader = None

    def _kill_query(self, timeout):
        """KILL QUERY of our statement from another connection (from
        127.0.0.1, the account's own session: no privilege needed)."""
        c = pymysql.connect(host=self.host, port=self.port, user=self.user,
                            password=self.password, connect_timeout=timeout,
                            read_timeout=timeout, write_timeout=timeout, autocommit=True)
        try:
            with c.cursor() as cur:
                cur.execute("KILL QUERY %d" % self.pid)
        finally:
            c.close()

    def open(self, mode, timeout=5.0):
        """Connects from src and enters mode; returns what the server says
        of the session (pid, backend_start, client_addr)."""
        if mode not in MODES:
            raise ValueError(mode)
        self.backend_start = time.time()
        try:
            self.conn = pymysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password,
                database=self.db, bind_address=self.src, connect_timeout=timeout,
                read_timeout=timeout, write_timeout=timeout, autocommit=True)
            self.backend_start_hi = time.time()
            with self.conn.cursor() as cur:
                cur.execute("SELECT ID, HOST FROM information_schema.PROCESSLIST"
                            " WHERE ID = CONNECTION_ID()")
                row = cur.fetchone()
                if row is None:
                    raise SessionError("own session not in PROCESSLIST")
                self.pid = int(row[0])
                addr, _, port = str(row[1]).rpartition(":")
                self.client_addr, self.client_port = addr, int(port)
                if self.client_addr != self.src:
                    raise SessionError("session seen from %s, not %s" % (row[1], self.src))
                if mode == "idle_tx":
                    cur.execute("INSERT INTO %s (n) VALUES (0)" % self.work_table)
                    row_id = cur.lastrowid
                    cur.execute("START TRANSACTION")
                    cur.execute("UPDATE %s SET n = n + 1 WHERE id = %d"
                                % (self.work_table, row_id))
            self.sock = self.conn._sock
            self.sock.settimeout(None)
            if mode == "active":
                # Sent, not awaited: the statement runs until killed or cancelled.
                self.sock.sendall(_packet(0, b"\x03" + ACTIVE_SQL.encode()))
                self.query_start_hi = time.time()
        except (OSError, pymysql.err.Error, SessionError, ValueError) as e:
            if self.conn is not None:
                try:
                    self.conn._force_close()
                except Exception:  # noqa: BLE001 (closing what failed)
                    pass
            raise SessionError("session from %s to %s: %s" % (self.src, self.db, e)) from None
        self.mode = mode
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        return {"pid": self.pid, "backend_start": self.backend_start,
                "client_addr": self.client_addr, "client_port": self.client_port}

    def _read_loop(self):
        """Stamps what the server sends from now on: errors, and the end."""
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                t = time.time()
                if not chunk:
                    break
                self._got.set()
                buf += chunk
                while len(buf) >= 4:
                    n = int.from_bytes(buf[:3], "little")
                    if len(buf) < 4 + n:
                        break
                    payload, buf = buf[4:4 + n], buf[4 + n:]
                    if payload[:1] == b"\xff" and len(payload) >= 3:
                        code = str(int.from_bytes(payload[1:3], "little"))
                        msg = payload[9:].decode("utf-8", "replace") if payload[3:4] == b"#" \
                            else payload[3:].decode("utf-8", "replace")
                        self.errors.append((t, "ERROR", code, msg))
                        if self.fatal is None and not self.ending:
                            self.fatal = (t, code, msg)
        except OSError:
            pass
        if self.eof_at is None:
            self.eof_at = time.time()

    def end(self, timeout=5.0):
        """The client ends its work and closes; returns once the server has
        closed the connection."""
        if self.sock is None or self.closed():
            return False
        self.ending = True
        deadline = time.monotonic() + timeout
        if self.mode == "active":
            try:
                self._kill_query(timeout)
            except (OSError, pymysql.err.Error):
                pass
            self._got.wait(max(0.0, deadline - time.monotonic()))
        return self._goodbye(_packet(0, b"\x01"), deadline)  # COM_QUIT
