"""Runs the real lock-arbiter binary for integration tests.

Arbiter starts `lock-arbiter` as a subprocess with the given arguments,
collects its stderr log lines (logfmt or JSON) on a thread, and lets a test
wait for a line that matches. The binary comes from LOCK_ARBITER_BIN (set by
meson) or build/daemon/lock-arbiter.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LOCK_ARBITER_BIN") or os.path.join(ROOT, "build", "daemon", "lock-arbiter")

# A Kubernetes API URL where nothing listens: every lookup is UNKNOWN.
DEAD_API = "http://127.0.0.1:9"


def clean_env(extra=None):
    """The environment without anything lock-arbiter or libpq would read."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCK_ARBITER_", "PG", "POD_", "KUBERNETES_"))
           and k not in ("DATABASE_URL", "CONTAINER_NAME")}
    env.update(extra or {})
    return env


def run(args, env=None, timeout=60):
    """Runs the binary to completion; returns CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def parse_logfmt(line):
    """key=value pairs of one logfmt line; quoted values unescaped."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        key, val = m.group(1), m.group(2)
        if val.startswith('"'):
            val = bytes(val[1:-1], "utf-8").decode("unicode_escape")
        out[key] = val
    return out


class Arbiter:
    def __init__(self, args, env=None, name="arbiter"):
        self.args = list(args)
        self.env = env
        self.name = name
        self.lines = []
        self.records = []
        self._cond = threading.Condition()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([BIN] + self.args, env=clean_env(self.env),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _drain(self, f):
        for _ in f:
            pass

    def _read(self, f):
        for line in f:
            line = line.rstrip("\n")
            rec = json.loads(line) if line.startswith("{") else parse_logfmt(line)
            with self._cond:
                self.lines.append(line)
                self.records.append(rec)
                self._cond.notify_all()

    def wait_for(self, msg, timeout=15, start=0, **fields):
        """Waits for a log record with this msg (and fields); returns it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.records):
                    r = self.records[i]
                    i += 1
                    if r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items()):
                        return r
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.records)):
                    raise AssertionError(
                        "%s: no log %r %r within %ss; exit=%s; log:\n%s" % (
                            self.name, msg, fields, timeout, self.proc.poll(),
                            "\n".join(self.lines[-40:])))
                self._cond.wait(min(left, 0.2))

    def count(self, msg, **fields):
        with self._cond:
            return sum(1 for r in self.records if r.get("msg") == msg
                       and all(r.get(k) == v for k, v in fields.items()))

    def mark(self):
        with self._cond:
            return len(self.records)

    def log_text(self):
        with self._cond:
            return "\n".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not exit within %ss of %s" % (self.name, timeout, sig))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __repr__(self):
        return "Arbiter(%s)" % " ".join(shlex.quote(a) for a in self.args)
