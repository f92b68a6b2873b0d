"""simctl: start and steer k8s_sim from tests.

    from simctl import Sim
    with Sim(tmp_path) as sim:
        sim.create_pod("db-0", "db", containers=["app"], podIP="10.0.0.1")
        sim.restart("db", "db-0", "app")
        sim.add_fault("status", code=500, path=r"/pods/db-0$", times=1)
        ...  # point the code under test at sim.url, sim.ca, sim.token_file
        assert all(r["auth"] for r in sim.requests())

The simulator runs as a subprocess (/usr/bin/python3 k8s_sim.py); Sim talks
to its plain-HTTP control port. Besides the control calls, Sim can make API
requests itself (request(), watch(), raw_chunks()), write a kubeconfig, and
lays out a service-account directory the way the kubelet does
(token, ca.crt, namespace behind an atomically swapped ..data symlink), so
rotate_token() is exactly what a pod sees when its projected token renews.
"""

import datetime
import http.client
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from k8s_sim import make_pki, default_fixtures_dir  # noqa: E402

__all__ = ["Sim", "SimError", "Response", "WatchStream", "make_pki", "default_fixtures_dir"]

K8S_SIM = os.path.join(HERE, "k8s_sim.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
_DEFAULT = object()


class SimError(Exception):
    def __init__(self, status, body):
        super().__init__("control call failed: %s %s" % (status, body))
        self.status = status
        self.body = body


class Response:
    """An API response: status, reason, headers, raw body bytes."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


class Sim:
    def __init__(self, workdir=None, *, token="sim-token-1", plain=False,
                 accept_old_tokens=False, anonymous=False, host="127.0.0.1", template=None,
                 fixtures=None, seed=None, watch_chunking=None, no_token=False,
                 namespace="ops", extra_args=(), python=PYTHON, startup_timeout=20,
                 namespaces=()):
        self._own_workdir = workdir is None
        self.workdir = str(workdir) if workdir is not None else tempfile.mkdtemp(
            prefix="k8s-sim-")
        self.initial_token = token
        self.plain = plain
        self.accept_old_tokens = accept_old_tokens
        self.anonymous = anonymous
        self.host = host
        self.template = template
        self.fixtures = fixtures
        self.seed = seed
        self.watch_chunking = watch_chunking
        self.no_token = no_token
        self.namespace = namespace
        self.extra_args = list(extra_args)
        self.python = python
        self.startup_timeout = startup_timeout
        self.namespaces = list(namespaces)  # created once the server is up
        self.proc = None
        self.url = self.control = self.ca = None
        self.token = None
        self.sa_dir = os.path.join(self.workdir, "serviceaccount")
        self.token_file = os.path.join(self.sa_dir, "token")
        self.pki_dir = os.path.join(self.workdir, "pki")

    # lifecycle ---------------------------------------------------------------
    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        ca = None
        if not self.plain:
            ca = make_pki(self.pki_dir)["ca"]
        self.token = self.initial_token
        self._write_sa({"token": self.token, "namespace": self.namespace,
                        **({"ca.crt": open(ca).read()} if ca else {})})
        cmd = [self.python, K8S_SIM, "--port", "0", "--host", self.host]
        if not self.no_token:
            cmd += ["--token-file", self.token_file]
        if self.plain:
            cmd.append("--plain")
        else:
            cmd += ["--pki", self.pki_dir]
        if self.accept_old_tokens:
            cmd.append("--accept-old-tokens")
        if self.anonymous:
            cmd.append("--anonymous")
        if self.template:
            cmd += ["--template", self.template]
        if self.fixtures:
            cmd += ["--fixtures", self.fixtures]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        if self.watch_chunking:
            cmd += ["--watch-chunking", self.watch_chunking]
        cmd += self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("k8s_sim did not become ready (exit %s, output %r)"
                                   % (self.proc.returncode, line))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 4096)
                if not ch:
                    continue
                line += ch
        info = json.loads(line)
        self.url, self.control, self.ca = info["url"], info["control"], info["ca"]
        self.pid = info["pid"]
        for ns in self.namespaces:
            self.create_namespace(ns)
        return self

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL after `timeout` seconds. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        rc = self.proc.returncode
        self.proc = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # service account directory, kubelet style ---------------------------------
    def _write_sa(self, files):
        """Writes files into a fresh ..TIMESTAMP dir and swaps ..data atomically."""
        os.makedirs(self.sa_dir, exist_ok=True)
        data_link = os.path.join(self.sa_dir, "..data")
        old = os.readlink(data_link) if os.path.islink(data_link) else None
        if old:
            merged = {}
            for name in os.listdir(os.path.join(self.sa_dir, old)):
                with open(os.path.join(self.sa_dir, old, name)) as f:
                    merged[name] = f.read()
            merged.update(files)
            files = merged
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        ts_dir = os.path.join(self.sa_dir, stamp)
        while os.path.exists(ts_dir):
            ts_dir += "0"
        os.mkdir(ts_dir)
        for name, content in files.items():
            with open(os.path.join(ts_dir, name), "w") as f:
                f.write(content)
        tmp_link = os.path.join(self.sa_dir, "..data_tmp")
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(os.path.basename(ts_dir), tmp_link)
        os.rename(tmp_link, data_link)
        for name in files:
            link = os.path.join(self.sa_dir, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join("..data", name), link)
        if old:
            shutil.rmtree(os.path.join(self.sa_dir, old), ignore_errors=True)

    def rotate_token(self, new_token, atomic=True):
        """Replaces the token as the kubelet does (atomic=False rewrites the file in place)."""
        if atomic:
            self._write_sa({"token": new_token})
        else:
            with open(os.path.realpath(self.token_file), "w") as f:
                f.write(new_token)
        self.token = new_token

    # kubeconfig ----------------------------------------------------------------
    def kubeconfig(self, path=None, token=_DEFAULT):
        path = path or os.path.join(self.workdir, "kubeconfig")
        cluster = {"server": self.url}
        if self.ca:
            cluster["certificate-authority"] = self.ca
        user = {}
        tok = self.token if token is _DEFAULT else token
        if tok:
            user["token"] = tok
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "sim",
               "clusters": [{"name": "sim", "cluster": cluster}],
               "users": [{"name": "sim", "user": user}],
               "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim",
                                                        "namespace": self.namespace}}]}
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    # API requests ----------------------------------------------------------------
    def ssl_context(self, ca=_DEFAULT):
        ctx = ssl.create_default_context(cafile=self.ca if ca is _DEFAULT else ca)
        return ctx

    def _hostport(self, url):
        rest = url.split("://", 1)[1]
        if rest.startswith("["):
            host, port = rest[1:].split("]:", 1)
        else:
            host, port = rest.rsplit(":", 1)
        return host, int(port)

    def connection(self, timeout=10, context=None):
        host, port = self._hostport(self.url)
        if self.plain:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        return http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=context or self.ssl_context())

    def request(self, method, path, body=None, token=_DEFAULT, headers=None, timeout=10,
                conn=None):
        """One API request. token=None sends no Authorization header."""
        hdrs = {"Accept": "application/json", "User-Agent": "simctl/1.0"}
        tok = self.token if token is _DEFAULT else token
        if tok is not None:
            hdrs["Authorization"] = "Bearer " + tok
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        own = conn is None
        conn = conn or self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.headers, data)
        finally:
            if own:
                conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def watch(self, path, timeout=10, token=_DEFAULT):
        """Opens a watch; returns a WatchStream (iterate for (type, object))."""
        return WatchStream(self, path, timeout, token)

    def raw_chunks(self, path, count, timeout=10, token=_DEFAULT):
        """Reads a chunked response at the framing level.

        Returns (status line, headers text, [chunk payloads]) after `count`
        complete JSON lines have arrived (or the stream ended)."""
        host, port = self._hostport(self.url)
        sock = socket.create_connection((host, port), timeout=timeout)
        if not self.plain:
            sock = self.ssl_context().wrap_socket(sock, server_hostname=host)
        tok = self.token if token is _DEFAULT else token
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n" % (
            path, host, port)
        if tok:
            req += "Authorization: Bearer %s\r\n" % tok
        sock.sendall((req + "\r\n").encode())
        buf = b""

        def fill():
            nonlocal buf
            data = sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            buf += data

        try:
            while b"\r\n\r\n" not in buf:
                fill()
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            chunks, text = [], b""
            while text.count(b"\n") < count:
                while b"\r\n" not in buf:
                    fill()
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2:
                    fill()
                if size == 0:
                    break
                chunks.append(buf[:size])
                text += buf[:size]
                buf = buf[size + 2:]
            return lines[0], "\r\n".join(lines[1:]), chunks
        finally:
            sock.close()

    # control interface ---------------------------------------------------------------
    def _ctl(self, method, path, body=None, ok=(200, 201)):
        host, port = self._hostport(self.control)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, "/_sim" + path, body=data,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        obj = json.loads(raw) if raw else None
        if resp.status not in ok:
            raise SimError(resp.status, obj)
        return obj

    def health(self):
        return self._ctl("GET", "/health")

    # pods
    def create_pod(self, name, namespace="default", **desc):
        """desc: containers, initContainers, podIP, podIPs, phase, annotations, labels,
        holderContainer, template, creationTimestamp, startedAt, nodeName, hostIP,
        restartPolicy, uid, ownerReferences, keepTimes, patch (see README.md)."""
        desc.update(name=name, namespace=namespace)
        return self._ctl("POST", "/pods", desc)

    def pod(self, namespace, name):
        return self._ctl("GET", "/pods/%s/%s" % (namespace, name))

    def pods(self):
        return self._ctl("GET", "/pods")["items"]

    def _op(self, namespace, name, op, body):
        return self._ctl("POST", "/pods/%s/%s/%s" % (namespace, name, op),
                         {k: v for k, v in body.items() if v is not None})

    def restart(self, namespace, name, container=None, crashloop=False, **kw):
        """restartCount+1, lastState.terminated (137/Error), new containerID, running now
        (or waiting CrashLoopBackOff). kw: exitCode, reason, startedAt, finishedAt, ready."""
        return self._op(namespace, name, "restart",
                        dict(kw, container=container, crashloop=crashloop))

    def start_container(self, namespace, name, container=None, **kw):
        return self._op(namespace, name, "start", dict(kw, container=container))

    def stop_container(self, namespace, name, container=None, exit_code=0, **kw):
        return self._op(namespace, name, "stop",
                        dict(kw, container=container, exitCode=exit_code))

    def set_ready(self, namespace, name, container=None, ready=True):
        return self._op(namespace, name, "ready", {"container": container, "ready": ready})

    def set_phase(self, namespace, name, phase, **kw):
        return self._op(namespace, name, "phase", dict(kw, phase=phase))

    def mark_deleting(self, namespace, name, grace=30, **kw):
        return self._op(namespace, name, "deleting", dict(kw, gracePeriodSeconds=grace))

    def delete_pod(self, namespace, name):
        return self._ctl("DELETE", "/pods/%s/%s" % (namespace, name))

    def recreate_pod(self, namespace, name, **overrides):
        return self._ctl("POST", "/pods/%s/%s/recreate" % (namespace, name), overrides)

    def patch_pod(self, namespace, name, patch):
        """RFC 7386 merge patch on the whole pod (metadata, spec, status)."""
        return self._ctl("POST", "/pods/%s/%s/patch" % (namespace, name), patch)

    def patch_container(self, namespace, name, container, patch=None, spec=None,
                        recompute=True):
        """Merge patch on one container's status (and optionally its spec entry)."""
        body = {"container": container, "patch": patch or {}, "recompute": recompute}
        if spec is not None:
            body["spec"] = spec
        return self._ctl("POST", "/pods/%s/%s/container" % (namespace, name), body)

    # namespaces and events
    def create_namespace(self, name):
        return self._ctl("POST", "/namespaces", {"name": name})

    def delete_namespace(self, name):
        return self._ctl("DELETE", "/namespaces/%s" % name)

    def events(self, namespace=None):
        q = "?namespace=%s" % namespace if namespace else ""
        return self._ctl("GET", "/events" + q)["items"]

    def clear_events(self):
        return self._ctl("DELETE", "/events")

    # faults
    def add_fault(self, type, **spec):
        """type: latency(ms) hang drip(interval_ms, headers) oversized(size)
        malformed(variant) reset(mode, after_bytes) status(code, retry_after, message,
        body, content_type) forbidden(user) unauthorized expired(message). Matching:
        path (regex on path?query), method, namespace, verb, resource, watch, times."""
        spec["type"] = type
        return self._ctl("POST", "/faults", spec)

    def faults(self):
        return self._ctl("GET", "/faults")

    def remove_fault(self, fault_id):
        return self._ctl("DELETE", "/faults/%d" % (
            fault_id["id"] if isinstance(fault_id, dict) else fault_id))

    def clear_faults(self):
        return self._ctl("DELETE", "/faults")

    def release_hangs(self):
        return self._ctl("POST", "/faults/release")["released"]

    def wait_hanging(self, n=1, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.faults()["hanging"] >= n:
                return True
            time.sleep(0.02)
        raise TimeoutError("fewer than %d requests hanging" % n)

    # request log
    def requests(self):
        return self._ctl("GET", "/requests")["requests"]

    def clear_requests(self):
        return self._ctl("DELETE", "/requests")["cleared"]

    def wait_requests(self, predicate=lambda r: True, count=1, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests() if predicate(r)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError("only %d matching requests" % len(found))
            time.sleep(0.02)

    # watches
    def watches(self):
        return self._ctl("GET", "/watches")["open"]

    def wait_watches(self, n=1, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.watches() >= n:
                return True
            time.sleep(0.02)
        raise TimeoutError("fewer than %d watches open" % n)

    def expire_watches(self, message=None):
        return self._ctl("POST", "/watches/expire", {"message": message} if message else {})

    def bookmark_watches(self):
        return self._ctl("POST", "/watches/bookmark", {})

    def close_watches(self, mode="end"):
        return self._ctl("POST", "/watches/close", {"mode": mode})

    def compact(self):
        return self._ctl("POST", "/watches/compact", {})

    # settings
    def set_auth(self, accept_old_tokens=None, anonymous=None):
        body = {}
        if accept_old_tokens is not None:
            body["accept_old_tokens"] = accept_old_tokens
        if anonymous is not None:
            body["anonymous"] = anonymous
        return self._ctl("POST", "/auth", body)

    def configure(self, **kw):
        """watch_chunking (split|line|byte), chunk_pause_ms, user, server_version."""
        return self._ctl("POST", "/config", kw)


class WatchStream:
    """A watch read through http.client (which undoes the chunked framing)."""

    def __init__(self, sim, path, timeout, token):
        self.conn = sim.connection(timeout)
        hdrs = {"Accept": "application/json", "User-Agent": "simctl/1.0"}
        tok = sim.token if token is _DEFAULT else token
        if tok:
            hdrs["Authorization"] = "Bearer " + tok
        self.conn.request("GET", path, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers

    def next(self):
        """The next (type, object), or None at the end of the stream."""
        line = self.resp.readline()
        if not line:
            return None
        ev = json.loads(line)
        return ev["type"], ev["object"]

    def __iter__(self):
        while True:
            ev = self.next()
            if ev is None:
                return
            yield ev

    def close(self):
        self.resp.close()
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
