"""A TCP proxy that can freeze: a database that hangs with its connections open.

FreezeProxy listens on 127.0.0.1 (a free port) and forwards every connection
to a real server (PostgreSQL) until freeze(). From then on nothing passes in
either direction, and every connection stays open: bytes a client sends are
read and held (so its writes complete, as they would into a hung server's
socket buffers), nothing comes back, and a close by either side is held as
well. New connections are still accepted and then get no answer: the server
is connected to only at thaw(). thaw() delivers what was held, in order,
then carries out the closes that were held, and forwarding goes on.

A client with bytes held has a round trip outstanding, and so has one
accepted while frozen (it waits for the server: a PostgreSQL client for the
answer to its startup packet, a MySQL client for the server's greeting, sent
first): wait_held() waits for one, held_open() counts them. Standard
library only; one thread.

    with FreezeProxy(pg.port) as proxy:
        dsn = "postgresql://postgres@127.0.0.1:%d/app" % proxy.port
        ...
        proxy.freeze()
        proxy.wait_held(timeout=10)   # the client's request is stuck now
        ...
        proxy.thaw()

Used by tests/integration/test_frozen.py and bench/bench.py (section frozen).
"""
import selectors
import socket
import threading
import time

__all__ = ["FreezeProxy"]

# Bytes held per direction and connection before the proxy stops reading
# (then the sender's own socket buffers fill, as with a hung server).
HOLD_CAP = 1 << 20


class _Pair:
    def __init__(self, n, client):
        self.n = n
        self.client = client
        self.server = None       # connected at accept, or at thaw when frozen then
        self.c2s = bytearray()   # read from the client, not yet written to the server
        self.s2c = bytearray()
        self.client_eof = False  # the client closed its side
        self.server_eof = False
        self.held_since = None   # monotonic time the first held client byte arrived
        self.dead = False


class FreezeProxy:
    """Forwards 127.0.0.1:self.port to (host, port); freeze() and thaw()."""

    def __init__(self, port, host="127.0.0.1"):
        self.target = (host, port)
        self._lsock = socket.socket()
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(128)
        self._lsock.setblocking(False)
        self.port = self._lsock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._cond = threading.Condition()
        self._frozen = False
        self._closing = False
        self._pairs = []
        self._accepted = 0
        self.events = []  # (monotonic time, what, connection number): for diagnostics
        self._thread = None

    # -- control (any thread) ------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="freeze-proxy", daemon=True)
        self._thread.start()
        return self

    def freeze(self):
        """Stops forwarding in both directions; every connection stays open."""
        self._set(True)

    def thaw(self):
        """Delivers what was held and forwards again."""
        self._set(False)

    @property
    def frozen(self):
        return self._frozen

    def wait_held(self, n=1, timeout=10.0):
        """Waits until at least n open client connections have bytes held
        (each a round trip outstanding, or a connection waiting for the
        server's greeting); True if so within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._held_open_locked() < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def held_open(self):
        """Open client connections with bytes held: round trips outstanding."""
        with self._cond:
            return self._held_open_locked()

    def stats(self):
        with self._cond:
            live = [p for p in self._pairs if not p.dead]
            return {"frozen": self._frozen, "accepted": self._accepted, "open": len(live),
                    "held_open": self._held_open_locked(),
                    "held_to_server_bytes": sum(len(p.c2s) for p in live),
                    "held_to_client_bytes": sum(len(p.s2c) for p in live)}

    def close(self):
        """Closes the listener and every connection."""
        self._closing = True
        self._kick()
        if self._thread is not None:
            self._thread.join(5)
        for s in (self._lsock, self._wake_r, self._wake_w):
            s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _set(self, frozen):
        with self._cond:
            self._frozen = frozen
            self.events.append((time.monotonic(), "freeze" if frozen else "thaw", None))
            self._cond.notify_all()
        self._kick()

    def _kick(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _held_open_locked(self):
        return sum(1 for p in self._pairs
                   if not p.dead and not p.client_eof and p.held_since is not None)

    def _event(self, what, p):
        with self._cond:
            self.events.append((time.monotonic(), what, p.n))
            self._cond.notify_all()

    # -- the loop (its own thread) ------------------------------------------------

    def _run(self):
        sel = selectors.DefaultSelector()
        try:
            while not self._closing:
                frozen = self._frozen
                for p in list(self._pairs):
                    if not frozen:
                        self._unfreeze(p)
                    self._finish(p, frozen)
                with self._cond:
                    self._pairs = [p for p in self._pairs if not p.dead]
                self._register(sel, frozen)
                for key, ev in sel.select(timeout=1.0):
                    self._ready(key.data, key.fileobj, ev, frozen)
        finally:
            sel.close()
            for p in self._pairs:
                self._close_pair(p)

    def _register(self, sel, frozen):
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
        sel.register(self._lsock, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        for p in self._pairs:
            for sock, inbuf, eof, outbuf in ((p.client, p.c2s, p.client_eof, p.s2c),
                                             (p.server, p.s2c, p.server_eof, p.c2s)):
                if sock is None:
                    continue
                ev = 0
                if not eof and len(inbuf) < HOLD_CAP:
                    ev |= selectors.EVENT_READ
                if outbuf and not frozen:
                    ev |= selectors.EVENT_WRITE
                if ev:
                    sel.register(sock, ev, p)

    def _ready(self, data, sock, ev, frozen):
        if data == "wake":
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
            return
        if data == "accept":
            self._accept(frozen)
            return
        p = data
        if p.dead:
            return
        from_client = sock is p.client
        try:
            if ev & selectors.EVENT_READ:
                chunk = sock.recv(65536)
                if not chunk:
                    if from_client:
                        p.client_eof = True
                        self._event("client closed", p)
                    else:
                        p.server_eof = True
                        self._event("server closed", p)
                elif from_client:
                    p.c2s += chunk
                    if frozen and p.held_since is None:
                        p.held_since = time.monotonic()
                        self._event("client bytes held", p)
                else:
                    p.s2c += chunk
            if ev & selectors.EVENT_WRITE and not frozen:
                buf = p.s2c if from_client else p.c2s
                del buf[:sock.send(buf)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close_pair(p)

    def _accept(self, frozen):
        while True:
            try:
                c, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            c.setblocking(False)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                self._accepted += 1
                p = _Pair(self._accepted, c)
                self._pairs.append(p)
            self._event("accepted", p)
            if not frozen:
                self._connect(p)
            else:
                # Waiting for the server as much as a client with bytes held:
                # a MySQL client says nothing before the server's greeting.
                with self._cond:
                    p.held_since = time.monotonic()
                    self._cond.notify_all()

    def _connect(self, p):
        try:
            s = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._close_pair(p)
            return
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p.server = s

    def _unfreeze(self, p):
        """After a thaw: what was held is no longer held, only unsent."""
        with self._cond:
            p.held_since = None
        if p.server is None and not p.dead and not p.client_eof:
            self._connect(p)

    def _finish(self, p, frozen):
        """Carries out a close once what it follows has been delivered."""
        if p.dead or frozen:
            return
        if p.client_eof and (not p.c2s or p.server is None):
            self._close_pair(p)
        elif p.server_eof and not p.s2c:
            self._close_pair(p)

    def _close_pair(self, p):
        if p.dead:
            return
        p.dead = True
        for s in (p.client, p.server):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self._event("closed", p)
