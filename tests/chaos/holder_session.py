"""A database session of a simulated pod, for the chaos simulation's session
guard episodes (DESIGN.md section 6, "Session guard").

A pod's session must reach PostgreSQL from the pod's address, so the client
binds its socket to that address (a 127.x.y.z loopback address: the whole
127.0.0.0/8 is local on Linux) before connecting, and PostgreSQL records it
as client_addr, as tests/integration/test_guard.py does through a proxy.
libpq cannot choose its source address, so this is a small client of the
PostgreSQL protocol 3 (trust authentication, simple queries): standard
library only.

What the session is doing when its pod dies decides whether it can still
commit, and so whether the guard must keep the lock:

    active    a statement in progress (SELECT pg_sleep(...)): state active
    idle_tx   a transaction left open (BEGIN; SELECT 1): idle in transaction
    idle      connected, nothing open: idle (the guard rightly ignores it)

Everything the oracle needs is measured, never assumed: the backend's pid,
backend_start and client_addr come from pg_stat_activity through the session
itself; a thread reads the socket and stamps, on the wall clock, every error
the server sends (a FATAL 57P01 is pg_terminate_backend or a fast shutdown)
and the end of the connection.
"""

import socket
import struct
import threading
import time

PROTOCOL_3 = 196608
CANCEL_CODE = 80877102
ACTIVE_SQL = "SELECT pg_sleep(86400)"
IDLE_TX_SQL = "BEGIN; SELECT 1"
MODES = ("active", "idle_tx", "idle")


class SessionError(Exception):
    pass


def _msg(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _error_fields(payload):
    out = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


class PodSession:
    """What a pod's session does alike on every backend: a socket (sock)
    read by a thread (_reader) that stamps the server's end (eof_at), and
    the client's own end (ending)."""

    sock = _reader = eof_at = None
    ending = False

    def closed(self):
        return self.eof_at is not None

    def _goodbye(self, message, deadline):
        """Sends the protocol's last message, then waits until the server has
        closed the connection (or deadline) and closes it."""
        try:
            self.sock.sendall(message)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._reader.join(max(0.0, deadline - time.monotonic()))
        self.sock.close()
        if self.eof_at is None:
            self.eof_at = time.time()
        return True

    def abandon(self):
        """Closes the socket without a word (the harness shutting down). A
        session the server already closed keeps that end as it was."""
        if self.sock is not None:
            if self.eof_at is None:
                self.ending = True
            try:
                self.sock.close()
            except OSError:
                pass


class HolderSession(PodSession):
    """One session from address src to database db; open() connects and
    enters mode, end() is the client ending it (the statement cancelled, the
    transaction rolled back, the connection closed)."""

    def __init__(self, host, port, db, src, user="postgres", app="chaos-holder-session"):
        self.host, self.port, self.db, self.src = host, port, db, src
        self.user, self.app = user, app
        self.sock = None
        self.mode = None
        self.pid = self.secret = None
        self.backend_start = None  # pg_stat_activity.backend_start, Unix seconds
        self.client_addr = None
        self.errors = []  # (wall time, severity, SQLSTATE, message), from the reader
        self.fatal = None  # the first FATAL: (wall time, SQLSTATE, message)
        self.eof_at = None  # when the server closed the connection (or we did)
        self.ending = False  # end() under way: errors from here on are ours
        self._buf = b""
        self._ready = threading.Event()  # a ReadyForQuery after the cancel
        self._reader = None

    # -- the wire ------------------------------------------------------------------

    def _recv_exact(self, n, deadline):
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SessionError("timeout reading from the server")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SessionError("server closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_msg(self, deadline):
        head = self._recv_exact(5, deadline)
        kind, length = head[:1], struct.unpack("!I", head[1:])[0]
        if length < 4 or length > 1 << 24:
            raise SessionError("malformed message length %d" % length)
        return kind, self._recv_exact(length - 4, deadline)

    def _until_ready(self, deadline):
        """Reads to ReadyForQuery: (rows, transaction status); an error raises."""
        rows, err = [], None
        while True:
            kind, body = self._read_msg(deadline)
            if kind == b"D":
                n = struct.unpack("!H", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif kind == b"E":
                err = _error_fields(body)
            elif kind == b"K":
                self.pid, self.secret = struct.unpack("!ii", body)
            elif kind == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code != 0:
                    raise SessionError("the server asks for authentication %d: pg_hba.conf must "
                                       "trust 127.0.0.0/8" % code)
            elif kind == b"Z":
                if err is not None:
                    raise SessionError("%s %s" % (err.get("C"), err.get("M")))
                return rows, body[:1]
        # not reached

    # -- the session -------------------------------------------------------------------

    def open(self, mode, timeout=5.0):
        """Connects from src and enters mode; returns what the database says of
        the session (pid, backend_start, client_addr)."""
        if mode not in MODES:
            raise ValueError(mode)
        deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.bind((self.src, 0))
            self.sock.settimeout(timeout)
            self.sock.connect((self.host, self.port))
            params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in (
                ("user", self.user), ("database", self.db), ("application_name", self.app)))
            self.sock.sendall(struct.pack("!II", len(params) + 9, PROTOCOL_3) + params + b"\0")
            self._until_ready(deadline)
            self.sock.sendall(_msg(b"Q", b"SELECT pg_backend_pid(), "
                                   b"extract(epoch FROM backend_start)::float8, "
                                   b"host(client_addr) FROM pg_stat_activity "
                                   b"WHERE pid = pg_backend_pid()\0"))
            rows, _ = self._until_ready(deadline)
            if len(rows) != 1:
                raise SessionError("own session not in pg_stat_activity")
            self.backend_start = float(rows[0][1])
            self.client_addr = rows[0][2]
            if self.client_addr != self.src:
                raise SessionError("session seen from %s, not %s" % (self.client_addr, self.src))
            if mode == "idle_tx":
                self.sock.sendall(_msg(b"Q", IDLE_TX_SQL.encode() + b"\0"))
                _, status = self._until_ready(deadline)
                if status != b"T":
                    raise SessionError("no transaction open (status %r)" % status)
            elif mode == "active":
                # Sent, not awaited: the statement runs until cancelled or ended.
                self.sock.sendall(_msg(b"Q", ACTIVE_SQL.encode() + b"\0"))
        except (OSError, SessionError, struct.error, ValueError) as e:
            self.sock.close()
            raise SessionError("session from %s to %s: %s" % (self.src, self.db, e)) from None
        self.mode = mode
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        return {"pid": self.pid, "backend_start": self.backend_start,
                "client_addr": self.client_addr}

    def _read_loop(self):
        """Stamps what the server sends from now on: errors, and the end."""
        try:
            while True:
                kind, body = self._read_msg(time.monotonic() + 10 ** 7)
                t = time.time()
                if kind == b"E":
                    f = _error_fields(body)
                    sev = f.get("V") or f.get("S")
                    self.errors.append((t, sev, f.get("C"), f.get("M")))
                    if sev in ("FATAL", "PANIC") and self.fatal is None:
                        self.fatal = (t, f.get("C"), f.get("M"))
                elif kind == b"Z":
                    self._ready.set()
        except (OSError, SessionError, struct.error):
            pass
        if self.eof_at is None:
            self.eof_at = time.time()

    def end(self, timeout=5.0):
        """The client ends its work: an active statement is cancelled (a
        CancelRequest with the backend's key, as libpq sends it), then the
        connection is closed with Terminate; an open transaction is rolled
        back by the server. Returns once the server has closed it."""
        if self.sock is None or self.closed():
            return False
        self.ending = True
        deadline = time.monotonic() + timeout
        if self.mode == "active":
            c = socket.create_connection((self.host, self.port), timeout=timeout)
            try:
                c.sendall(struct.pack("!IIii", 16, CANCEL_CODE, self.pid, self.secret))
                c.recv(1)  # the server closes it once the signal is sent
            except OSError:
                pass
            finally:
                c.close()
            self._ready.wait(max(0.0, deadline - time.monotonic()))
        return self._goodbye(_msg(b"X"), deadline)
