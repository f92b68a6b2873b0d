"""The container image run as the Deployment runs it (issue 10, part 5).

scripts/image-test.sh builds the image and runs this module with
LOCK_ARBITER_IMAGE set. One container for the whole module, started the way
manifests/overlays/deployment starts it: its image's non-root user, a
read-only root filesystem with no writable tmpfs, every capability dropped,
no privilege escalation, the Deployment's 64 MiB memory limit, the
configuration from the environment (DATABASE_URL, LOCK_ARBITER_*, the
Downward API's POD_*), and in-cluster Kubernetes access: the simulated API
as KUBERNETES_SERVICE_HOST/PORT and its service-account directory (token,
ca.crt, namespace, kubelet layout) mounted read-only where a pod has it.
PostgreSQL and the API listen on 127.0.0.1 and the container shares the
host's network, so every packet stays on loopback.

The tests run in file order: the container is stopped by the last one.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s_sim"))

from pgserver import PgServer  # noqa: E402
from simctl import Sim  # noqa: E402

IMAGE = os.environ.get("LOCK_ARBITER_IMAGE", "localhost/lock-arbiter:image-test")
PODMAN = ["podman", "--runtime", "runc"]
# Debian's podman here needs default_ulimits = [] (image-test.sh writes it).
if os.path.exists("/var/cache/lock-arbiter/containers.conf"):
    os.environ.setdefault("CONTAINERS_CONF", "/var/cache/lock-arbiter/containers.conf")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
OWN_NS = "ops"  # the arbiter's own namespace: the service account's
NS = "shop"  # where the application pods (the lock holders) live
ARBITER_POD = "lock-arbiter-6b8d5c7f4-q9x2m"
HOLDER = "payments-api-5f7c9d-abcde"
DB = "app"


def podman(*args, timeout=60, check=True):
    out = subprocess.run(PODMAN + list(args), capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if check and out.returncode != 0:
        raise AssertionError("podman %s: exit %d\n%s%s" % (" ".join(args), out.returncode,
                                                         out.stdout, out.stderr))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def meson_version():
    with open(os.path.join(ROOT, "meson.build"), encoding="utf-8") as f:
        for line in f:
            if line.strip().startswith("version"):
                return line.split("'")[1]
    raise AssertionError("no version in meson.build")


class Box:
    """The running container and what it talks to."""

    def __init__(self, pg, sim, name, port, user, started):
        self.pg, self.sim, self.name, self.port, self.user = pg, sim, name, port, user
        self.started = started

    def get(self, path, timeout=5):
        """(status, headers, body text) of GET path; status 0 when nothing answered."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=timeout) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, None, ""

    def wait_status(self, path, status=200, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            got = self.get(path)
            if got[0] == status:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("%s: %r, not %d, after %ss; log:\n%s"
                                     % (path, got[:1] + got[2:], status, timeout, self.log()))
            time.sleep(0.1)

    def log(self):
        out = podman("logs", self.name, check=False)
        return out.stdout + out.stderr

    def records(self):
        recs = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
        return recs

    def wait_record(self, timeout=15, **fields):
        deadline = time.monotonic() + timeout
        while True:
            for r in self.records():
                if all(r.get(k) == v for k, v in fields.items()):
                    return r
            if time.monotonic() > deadline:
                raise AssertionError("no log record %r within %ss; log:\n%s"
                                     % (fields, timeout, self.log()))
            time.sleep(0.1)

    def inspect(self, fmt):
        return podman("inspect", "--format", fmt, self.name).stdout.strip()


@pytest.fixture(scope="module")
def box(request, tmp_path_factory):
    user = podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user and user.split(":")[0] not in ("", "0", "root"), \
        "the image must name a non-root user, not %r" % user
    name = "lock-arbiter-image-test-%d" % os.getpid()
    podman("rm", "-f", name, check=False)
    with PgServer() as pg, Sim(tmp_path_factory.mktemp("sim"), namespace=OWN_NS,
                               namespaces=[NS]) as sim:
        pg.create_database(DB)
        pg.create_lock_table(DB)
        own = sim.create_pod(ARBITER_POD, OWN_NS, containers=["lock-arbiter"])
        sim.create_pod(HOLDER, NS, containers=["app"])
        api_port = int(sim.url.rsplit(":", 1)[1])
        port = free_port()
        env = {
            "DATABASE_URL": pg.dsn(DB),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(api_port),
            "POD_NAME": ARBITER_POD,
            "POD_NAMESPACE": OWN_NS,
            "POD_UID": own["metadata"]["uid"],
            "CONTAINER_NAME": "lock-arbiter",
            "LOCK_ARBITER_LISTEN": "127.0.0.1:%d" % port,
            "LOCK_ARBITER_HOLDER_NAMESPACE": NS,
            "LOCK_ARBITER_POLL_INTERVAL": "100ms",
            "LOCK_ARBITER_CLOCK_SKEW": "1s",
            "LOCK_ARBITER_MIN_LOCK_AGE": "1s",
            "LOCK_ARBITER_LOG_FORMAT": "json",
        }
        args = ["run", "--detach", "--name", name, "--network", "host",
                "--read-only", "--read-only-tmpfs=false", "--user", user,
                "--cap-drop", "all", "--security-opt", "no-new-privileges",
                "--memory", "64m",
                "--volume", "%s:%s:ro" % (sim.sa_dir, SA_DIR)]
        for k, v in env.items():
            args += ["--env", "%s=%s" % (k, v)]
        started = time.monotonic()
        podman(*args, IMAGE)
        b = Box(pg, sim, name, port, user, started)
        try:
            yield b
        finally:
            if request.session.testsfailed:
                print("container log:\n" + b.log())
            podman("rm", "-f", "-t", "0", name, check=False)


def test_runs_as_the_images_non_root_user_on_a_read_only_root(box):
    assert box.inspect("{{.State.Running}}") == "true", box.log()
    assert box.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    pid = int(box.inspect("{{.State.Pid}}"))
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    uid = box.user.split(":")[0]
    assert status["Uid"].split() == [uid] * 4, status["Uid"]
    # No capability, not even in the bounding set (the Deployment drops ALL).
    for caps in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status[caps], 16) == 0, (caps, status[caps])
    assert status["NoNewPrivs"].strip() == "1"
    # Even root in the container cannot write to its root filesystem.
    out = podman("exec", "--user", "0", box.name, "/bin/sh", "-c",
                 "echo x > /probe; echo x > /tmp/probe", check=False)
    assert out.returncode != 0
    assert out.stderr.count("Read-only file system") == 2, out.stderr


def test_healthz(box):
    status, _, body = box.wait_status("/healthz", 200, timeout=20)
    print("healthz 200 %.1f s after podman run: %s"
          % (time.monotonic() - box.started, body.strip()))


def test_readyz_with_the_database_and_the_cluster_identity(box):
    status, _, body = box.wait_status("/readyz", 200, timeout=20)
    print("readyz 200 %.1f s after podman run: %s"
          % (time.monotonic() - box.started, body.strip()))
    rec = box.wait_record(msg="cluster identity confirmed")
    assert ARBITER_POD in rec["detail"], rec
    # In-cluster mode really used the mounted token: every API request had it.
    reqs = box.sim.requests()
    assert reqs and all(r["auth"] for r in reqs), reqs


def test_metrics(box):
    status, headers, body = box.wait_status("/metrics", 200)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    # Whole lines: each # HELP line also starts with the name and a 1.
    lines = body.splitlines()
    assert 'lock_arbiter_build_info{version="%s"} 1' % meson_version() in lines, body[:2000]
    assert "lock_arbiter_kubernetes_up 1" in lines, body
    assert "lock_arbiter_cluster_identity_ok 1" in lines, body


def test_releases_an_orphaned_lock(box):
    pg, sim = box.pg, box.sim
    assert pg.lock(DB, lockedby="%s:%s" % (NS, HOLDER))
    box.wait_record(msg="verdict", verdict="held")
    sim.delete_pod(NS, HOLDER)
    deleted = time.monotonic()
    rec = box.wait_record(msg="lock released")
    assert rec["rule"] == "O1_pod_deleted", rec
    assert "pod %s/%s is gone" % (NS, HOLDER) in rec["evidence"], rec
    row = pg.read_lock(DB)
    assert row is not None and row[0] is False and row[1] is None, row
    print("released %.2f s after the pod's deletion" % (time.monotonic() - deleted))
    _, _, body = box.wait_status("/metrics", 200)
    assert any(line.startswith("lock_arbiter_locks_released_total{")
               and 'reason="O1_pod_deleted"' in line and line.endswith(" 1")
               for line in body.splitlines()), body
    deadline = time.monotonic() + 10
    while not any(e.get("reason") == "LiquibaseLockReleased" for e in sim.events(NS)):
        assert time.monotonic() < deadline, sim.events()
        time.sleep(0.1)


def test_podman_stop_ends_it_quickly_with_exit_0(box):
    t = time.monotonic()
    podman("stop", "--time", "10", box.name, timeout=30)
    took = time.monotonic() - t
    print("podman stop took %.2f s" % took)
    assert box.inspect("{{.State.ExitCode}}") == "0", box.log()
    assert took < 5, "podman stop took %.1f s (10 s is its SIGKILL)" % took
    assert not [r for r in box.records() if r.get("level") == "error"], box.log()
