"""Harness for the end-to-end tests with real Liquibase (the benchmark reuses it).

- Liquibase.locate(): Liquibase 4.28 from the npm package liquibase@4.28.1 in the
  cache (installed there by install_liquibase.sh when missing) and a Java runtime;
  raises Unavailable (with the cause) when either cannot be had.
- PodNetwork: pods as Linux namespaces, as root. A bridge la-br<PID> with
  10.244.N.1/24 (N = 1 unless that subnet is in use on this machine), and per pod
  a network namespace with eth0 = one end of a veth pair (10.244.N.17, .18, ...),
  the other end on the bridge. A Liquibase process "in" a pod runs through
  `ip netns exec NETNS unshare --uts --mount`, with hostname = the pod name and a
  kubelet-style /etc/hosts (`POD-IP POD-NAME`) bind-mounted over /etc/hosts, so
  Java resolves its own name as it does in a pod. Everything is named after the
  harness's pid (parallel runs do not collide), removed on cleanup, by a watchdog
  process when the harness is killed, and by the next run if even that failed.
- HostPod: the fallback without root: the pod is this machine, its name the host
  name, its address the one Liquibase writes (learned from the lock row).
- LiquibaseRun: one `liquibase update` of changelog/changelog.xml, in a pod: the
  JVM started as the launcher script starts it (java $JAVA_OPTS -jar
  internal/lib/liquibase-core.jar), so signals and exit are the JVM's own.
- E2EPgServer: PgServer that also listens on the bridge address and lets the
  pods in (pg_hba: 10.244.0.0/16, trust).
- E2E: one test's world: the database, the simulated API, pods, Liquibase runs,
  arbiters, timings (printed and written as JSON).
- start_holder, kill_holder, kept_while, released, until, metrics: the steps of a scenario
  (test_liquibase.py, test_liquibase_mariadb.py, scripts/demo.py), on any E2E.

Traffic stays on this machine: the pods have no default route, only the bridge.
"""
import datetime
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "integration"))
sys.path.insert(0, os.path.join(TESTS, "k8s_sim"))

from arbiter_proc import Arbiter  # noqa: E402
from pgserver import PgServer, pid_alive, start_watchdog  # noqa: E402

LIQUIBASE_NPM_VERSION = "4.28.1"
INSTALL_SCRIPT = os.path.join(HERE, "install_liquibase.sh")
CHANGELOG_DIR = os.path.join(HERE, "changelog")
CHANGELOG_FILE = "changelog.xml"
NAMESPACE = "shop"
POD_SUBNETS = ipaddress.ip_network("10.244.0.0/16")
FIRST_POD_HOST = 17  # 10.244.N.17 is the first pod of a test, as in the README's example
NET_LOCK = "/run/lock/lock-arbiter-e2e-net.lock"


class Unavailable(Exception):
    """Something the end-to-end tests need is missing; str() says what."""


def _run(argv, check=True, timeout=30, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL, check=False, **kw)
    if check and out.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), out.returncode,
                                                    (out.stderr or out.stdout).strip()))
    return out


# -- Liquibase and Java ---------------------------------------------------------

def cache_dirs():
    """Where install_liquibase.sh may have put Liquibase, most likely first."""
    if os.environ.get("LOCK_ARBITER_CACHE"):
        return [os.environ["LOCK_ARBITER_CACHE"]]
    user = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "lock-arbiter")
    return ["/var/cache/lock-arbiter", user] if os.geteuid() == 0 else [
        user, "/var/cache/lock-arbiter"]


def _home_in(cache):
    return os.path.join(cache, "liquibase-" + LIQUIBASE_NPM_VERSION, "node_modules",
                        "liquibase", "dist", "liquibase")


def _complete(home):
    return (os.access(os.path.join(home, "liquibase"), os.X_OK)
            and os.path.isfile(os.path.join(home, "internal", "lib", "liquibase-core.jar"))
            and os.path.isfile(os.path.join(home, "internal", "lib", "postgresql.jar")))


def find_java():
    """(path to java, major version, version text); raises Unavailable."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise Unavailable("no Java runtime: %s (Debian: apt-get install openjdk-17-jre-headless)"
                          % ("JAVA_HOME=%s has no bin/java" % java_home if java_home
                             else "`java` is not on PATH"))
    try:
        out = _run([java, "-version"], check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise Unavailable("Java runtime %s does not run: %s" % (java, e)) from e
    text = (out.stderr or out.stdout).strip()
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if out.returncode != 0 or not m:
        raise Unavailable("Java runtime %s does not run: %s" % (java, text[:200]))
    major = int(m.group(2)) if m.group(1) == "1" else int(m.group(1))
    if major < 11:
        raise Unavailable("Java %d at %s is too old for these tests (11 or later; 17 is tested)"
                          % (major, java))
    return java, major, text.splitlines()[0]


class Liquibase:
    """An installed Liquibase (its LIQUIBASE_HOME) and the Java that runs it."""

    def __init__(self, home, java, java_major, java_text):
        self.home = home
        self.launcher = os.path.join(home, "liquibase")
        self.core_jar = os.path.join(home, "internal", "lib", "liquibase-core.jar")
        self.java = java
        self.java_major = java_major
        self.java_text = java_text

    @classmethod
    def locate(cls, install=True):
        """Finds Liquibase (LOCK_ARBITER_LIQUIBASE_HOME, else the cache), installing
        it with install_liquibase.sh when missing. Raises Unavailable."""
        java, major, text = find_java()
        home = os.environ.get("LOCK_ARBITER_LIQUIBASE_HOME")
        if home:
            if not _complete(home):
                raise Unavailable("LOCK_ARBITER_LIQUIBASE_HOME=%s holds no Liquibase "
                                  "(liquibase, internal/lib/liquibase-core.jar, "
                                  "internal/lib/postgresql.jar)" % home)
            return cls(home, java, major, text)
        for cache in cache_dirs():
            if _complete(_home_in(cache)):
                return cls(_home_in(cache), java, major, text)
        if not install:
            raise Unavailable("Liquibase %s is not installed (run %s)"
                              % (LIQUIBASE_NPM_VERSION, INSTALL_SCRIPT))
        try:
            out = _run(["bash", INSTALL_SCRIPT], check=False, timeout=900)
        except (OSError, subprocess.SubprocessError) as e:
            raise Unavailable("installing Liquibase failed: %s" % e) from e
        home = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if out.returncode != 0 or not _complete(home):
            cause = {3: "npm is not installed",
                     4: "the download of npm package liquibase@%s failed" % LIQUIBASE_NPM_VERSION
                     }.get(out.returncode, "install_liquibase.sh exited %d" % out.returncode)
            tail = " | ".join(out.stderr.strip().splitlines()[-3:])
            raise Unavailable("Liquibase %s unavailable: %s (%s)"
                              % (LIQUIBASE_NPM_VERSION, cause, tail))
        return cls(home, java, major, text)

    def env(self, java_opts=()):
        """The environment of a Liquibase process: nothing inherited that
        Liquibase, the JVM or libpq would read, plus JAVA_OPTS."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LIQUIBASE_", "PG", "LOCK_ARBITER_"))
               and k not in ("JAVA_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
                             "JDK_JAVA_OPTIONS", "MALLOC_PERTURB_")}
        env["JAVA_HOME"] = os.path.dirname(os.path.dirname(os.path.realpath(self.java)))
        env["JAVA_OPTS"] = " ".join(java_opts)
        env["LIQUIBASE_HOME"] = self.home
        return env


# -- pods -----------------------------------------------------------------------

def kubelet_hosts(name, ip):
    """/etc/hosts as the kubelet writes it for a pod without hostAliases."""
    return ("# Kubernetes-managed hosts file.\n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\n"
            "fe00::1\tip6-allnodes\n"
            "fe00::2\tip6-allrouters\n"
            "%s\t%s\n" % (ip, name))


# Runs inside the pod's fresh UTS and mount namespaces, then becomes the command.
_POD_INIT = ('echo "$1" > /proc/sys/kernel/hostname && mount --bind "$2" /etc/hosts'
             ' && shift 2 && exec "$@"')


class NetnsPod:
    """A pod: its own network namespace (eth0 = IP), host name and /etc/hosts."""
    kind = "netns"

    def __init__(self, name, ip, netns, host_veth, hosts_file, gateway):
        self.name = name
        self.ip = ip
        self.netns = netns
        self.host_veth = host_veth
        self.hosts_file = hosts_file
        self.db_host = gateway  # PostgreSQL as the pod reaches it

    def wrap(self, argv):
        return (["ip", "netns", "exec", self.netns, "unshare", "--uts", "--mount",
                 "--propagation", "private", "sh", "-c", _POD_INIT, "pod-init", self.name,
                 self.hosts_file] + list(argv))

    def lockedby(self, description=None):
        """LOCKEDBY as Liquibase writes it in this pod."""
        return "%s%s (%s)" % (self.name, "#" + description if description else "", self.ip)

    def __repr__(self):
        return "NetnsPod(%s %s in %s)" % (self.name, self.ip, self.netns)


def host_pod_name():
    """The pod name of this machine (first label of the host name); raises
    Unavailable when Liquibase could not be resolved to a pod here."""
    host = socket.gethostname()
    label = host.split(".")[0]
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", label):
        raise Unavailable("host name %r is not a valid pod name (DNS-1123 label)" % host)
    try:
        socket.getaddrinfo(host, None)
    except OSError as e:
        raise Unavailable("host name %r does not resolve (%s): Liquibase would write "
                          "'unknown (unknown)'" % (host, e)) from e
    return host, label


class HostPod:
    """Without root: the pod is this machine. Liquibase writes HOST (ADDR) with
    HOST = the host name; ADDR is learned from the first lock row."""
    kind = "host"

    def __init__(self):
        self.hostname, self.name = host_pod_name()
        self.ip = None  # learned from the first lock row
        self.address = None  # as Liquibase writes it
        self.db_host = "127.0.0.1"

    def wrap(self, argv):
        return list(argv)

    def lockedby(self, description=None):
        if self.ip is None:
            return None
        return "%s%s (%s)" % (self.hostname, "#" + description if description else "",
                              self.address)

    def __repr__(self):
        return "HostPod(%s)" % self.name


def _links():
    out = _run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in out.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _netns_names():
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def remove_netns(netns):
    """Kills what still runs in a network namespace, then deletes it."""
    pids = _run(["ip", "netns", "pids", netns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _run(["ip", "netns", "del", netns], check=False)


def cleanup_tag(tag):
    """Removes every namespace, veth and bridge of the harness run `tag`."""
    for ns in _netns_names():
        if re.fullmatch(r"la-e2e-%s-\d+" % re.escape(tag), ns):
            remove_netns(ns)
    for link in _links():
        if re.fullmatch(r"la-h%s-\d+" % re.escape(tag), link) or link == "la-br" + tag:
            _run(["ip", "link", "del", link], check=False)


def sweep_stale():
    """Removes what earlier runs left behind (their harness pid is gone)."""
    tags = set()
    for name in _netns_names() + _links():
        m = re.fullmatch(r"la-(?:e2e-(\d+)-\d+|h(\d+)-\d+|br(\d+))", name)
        if m:
            tags.add(next(g for g in m.groups() if g))
    for tag in tags:
        if not pid_alive(int(tag)):
            cleanup_tag(tag)


def netns_unavailable_reason():
    """None when pods can be network namespaces here, else why not."""
    if os.environ.get("LOCK_ARBITER_E2E_PODS") == "host":
        return "LOCK_ARBITER_E2E_PODS=host"
    if os.geteuid() != 0:
        return "not root (uid %d): network namespaces need root" % os.geteuid()
    for tool in ("ip", "unshare", "mount", "sh"):
        if not shutil.which(tool):
            return "%s not found (Debian: iproute2, util-linux)" % tool
    return None


class PodNetwork:
    """A bridge and pods on it; see the module docstring."""

    def __init__(self, workdir, tag=None):
        self.workdir = workdir
        self.tag = tag or str(os.getpid())
        self.bridge = "la-br" + self.tag
        self.subnet = None
        self.gateway = None
        self.pods = []
        self._seq = 0
        self._watch_fd = None

    def _used_networks(self):
        used = []
        addrs = _run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
        for m in re.finditer(r"inet (\S+)", addrs):
            used.append(ipaddress.ip_interface(m.group(1)).network)
        routes = _run(["ip", "-o", "-4", "route", "show", "table", "all"], check=False).stdout
        for line in routes.splitlines():
            dst = line.split()[0] if line.split() else ""
            if dst in ("default", "broadcast", "local", "unreachable", "blackhole", "prohibit"):
                dst = line.split()[1] if dst != "default" and len(line.split()) > 1 else ""
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0:
                used.append(net)
        return used

    def setup(self):
        """Creates the bridge; raises Unavailable (after cleaning up) on failure."""
        sweep_stale()
        lock_path = NET_LOCK if os.path.isdir(os.path.dirname(NET_LOCK)) else os.path.join(
            "/tmp", os.path.basename(NET_LOCK))
        self._start_watchdog()
        try:
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                used = self._used_networks()
                for n in range(1, 255):
                    net = ipaddress.ip_network("10.244.%d.0/24" % n)
                    if not any(net.overlaps(u) for u in used):
                        break
                else:
                    raise Unavailable("every 10.244.N.0/24 overlaps an address or route here")
                self.subnet = net
                self.gateway = str(net[1])
                _run(["ip", "link", "add", self.bridge, "type", "bridge"])
                _run(["ip", "addr", "add", "%s/24" % self.gateway, "dev", self.bridge])
                _run(["ip", "link", "set", self.bridge, "up"])
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self.cleanup()
            raise Unavailable("cannot create the pod network: %s" % e) from e
        except Unavailable:
            self.cleanup()
            raise
        return self

    def _start_watchdog(self):
        # Once the harness is gone, the watchdog removes its network.
        self._watch_fd = start_watchdog(lambda: cleanup_tag(self.tag))

    def add_pod(self, name):
        """A new pod: network namespace, veth on the bridge, kubelet /etc/hosts."""
        index = len(self.pods)
        ip = str(self.subnet[FIRST_POD_HOST + index])
        seq = self._seq
        self._seq += 1
        netns = "la-e2e-%s-%d" % (self.tag, seq)
        host_veth = "la-h%s-%d" % (self.tag, seq)
        peer = "la-p%s-%d" % (self.tag, seq)
        hosts_file = os.path.join(self.workdir, "hosts-%s-%d" % (name, seq))
        with open(hosts_file, "w") as f:
            f.write(kubelet_hosts(name, ip))
        os.chmod(hosts_file, 0o644)
        # Stale neighbour entries of an earlier pod with this address.
        _run(["ip", "neigh", "flush", "dev", self.bridge, "to", ip], check=False)
        _run(["ip", "netns", "add", netns])
        pod = NetnsPod(name, ip, netns, host_veth, hosts_file, self.gateway)
        self.pods.append(pod)
        _run(["ip", "link", "add", host_veth, "type", "veth", "peer", "name", peer])
        _run(["ip", "link", "set", peer, "netns", netns])
        _run(["ip", "-n", netns, "link", "set", peer, "name", "eth0"])
        _run(["ip", "-n", netns, "addr", "add", "%s/24" % ip, "dev", "eth0"])
        _run(["ip", "-n", netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        _run(["ip", "link", "set", host_veth, "master", self.bridge])
        _run(["ip", "link", "set", host_veth, "up"])
        return pod

    def remove_pods(self):
        for pod in self.pods:
            remove_netns(pod.netns)
            _run(["ip", "link", "del", pod.host_veth], check=False)
        self.pods = []

    def cleanup(self):
        self.remove_pods()
        cleanup_tag(self.tag)
        if self._watch_fd is not None:
            os.close(self._watch_fd)  # the watchdog finds nothing left
            self._watch_fd = None


# -- PostgreSQL -----------------------------------------------------------------

class E2EPgServer(PgServer):
    """PgServer that also listens on the bridge address, for the pods."""

    def __init__(self, extra_listen=None, **kw):
        settings = dict(kw.pop("settings", None) or {})
        if extra_listen:
            settings["listen_addresses"] = "127.0.0.1," + extra_listen
        super().__init__(settings=settings, **kw)

    def _init(self):
        super()._init()
        with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
            f.write("# lock-arbiter e2e: the pods on the test bridge\n"
                    "host all all %s trust\n" % POD_SUBNETS)


# -- Liquibase runs -------------------------------------------------------------

class LiquibaseRun:
    """One `liquibase update` in a pod; output in logfile."""

    def __init__(self, lb, pod, jdbc_url, logfile, sleep_seconds=0, java_opts=(),
                 lock_poll_rate=1, lock_wait_minutes=2, name="liquibase"):
        self.lb = lb
        self.pod = pod
        self.name = name
        self.logfile = logfile
        self.java_opts = list(java_opts)
        # What the `liquibase` launcher script runs, without the script: the JVM
        # is then the process (a signal reaches it, its exit is the run's end).
        self.argv = [lb.java] + self.java_opts + [
            "-jar", lb.core_jar, "--show-banner=false", "--log-level=info",
            "--search-path=" + CHANGELOG_DIR, "--changelog-file=" + CHANGELOG_FILE,
            "--url=" + jdbc_url, "--username=postgres",
            "--changelog-lock-poll-rate=%d" % lock_poll_rate,
            "--changelog-lock-wait-time-in-minutes=%d" % lock_wait_minutes,
            "update", "-Dsleep_seconds=%s" % sleep_seconds]
        self.proc = None
        self.started = None
        self.ended = None

    def start(self):
        with open(self.logfile, "ab") as log:
            # A session of its own: kill() signals everything the run started,
            # as a container runtime does.
            self.proc = subprocess.Popen(self.pod.wrap(self.argv), env=self.lb.env(self.java_opts),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=CHANGELOG_DIR)
        self.started = time.monotonic()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Signals every process of the run; returns the monotonic time."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        return time.monotonic()

    def wait(self, timeout=60):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ss; log:\n%s"
                                 % (self.name, timeout, self.log_tail())) from None
        if self.ended is None:
            self.ended = time.monotonic()
        return rc

    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines=25):
        return "\n".join([l for l in self.log().splitlines()
                          if l.strip() and not l.startswith("\tat ")][-lines:])

    def wait_log(self, text, timeout=60):
        """Waits until the log has `text`; returns the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.log():
                return time.monotonic()
            if not self.running():
                if text in self.log():
                    return time.monotonic()
                raise AssertionError("%s exited (%s) without logging %r; log:\n%s"
                                     % (self.name, self.proc.returncode, text, self.log_tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%s: no %r within %ss; log:\n%s"
                                     % (self.name, text, timeout, self.log_tail()))
            time.sleep(0.02)

    def wait_exit(self, timeout=60, poll=0.02):
        """Waits for the end of the run (polling, for a precise end time); returns rc."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("%s still running after %ss; log:\n%s"
                                     % (self.name, timeout, self.log_tail()))
            time.sleep(poll)
        if self.ended is None:
            self.ended = time.monotonic()
        return self.proc.returncode

    def cleanup(self):
        if self.running():
            self.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


# Messages of Liquibase 4.28 at --log-level=info.
LB_WAITING = "Waiting for changelog lock"
LB_ACQUIRED = "Successfully acquired change log lock"
LB_RELEASED = "Successfully released change log lock"
LB_SLOW_STARTED = "Running Changeset: changelog.xml::1-slow::lock-arbiter-e2e"

LONG = 45  # the slow changeset of a holder that is killed or outlives the observation (s)


# -- one test's world -------------------------------------------------------------

def canonical_address(addr):
    """An address as the API would show it: no zone, compressed IPv6."""
    return str(ipaddress.ip_address(addr.split("%", 1)[0]))


class E2E:
    """Pods, Liquibase runs and arbiters around one database; cleanup() ends them."""

    def __init__(self, *, lb, pg, sim, net, db, workdir, name, results_dir=None):
        self.lb = lb
        self.pg = pg
        self.sim = sim
        self.net = net  # PodNetwork, or None: pods are this host
        self.db = db
        self.workdir = workdir
        self.name = name
        self.results_dir = results_dir
        self.mode = "netns" if net is not None else "host"
        self.runs = []
        self.arbiters = []
        self.pods = {}
        self._host_pod = None
        self.timings = {}

    # pods ---------------------------------------------------------------------
    def pod(self, name):
        """A running pod (namespaces + the simulated API's pod with container app).
        Without namespaces every name is this host: one pod."""
        if self.net is None:
            if self._host_pod is None:
                self._host_pod = HostPod()
                self._create_sim_pod(self._host_pod.name, None)
            return self._host_pod
        if name not in self.pods:
            pod = self.net.add_pod(name)
            self.pods[name] = pod
            self._create_sim_pod(name, pod.ip)
        return self.pods[name]

    def _create_sim_pod(self, name, ip):
        return self.sim.create_pod(name, NAMESPACE, containers=["app"], podIP=ip,
                                   labels={"app": name.split("-")[0]})

    def learn(self, pod, lockedby, description=None):
        """Checks LOCKEDBY against the pod. In a namespace pod it is exactly
        `POD[#DESC] (POD-IP)`; on this host `HOST[#DESC] (ADDR)`, and ADDR
        becomes the simulated pod's IP."""
        if pod.kind == "netns":
            assert lockedby == pod.lockedby(description), (lockedby, pod.lockedby(description))
            return
        m = re.fullmatch(r"(.+?)(?:#(.*))? \((.+)\)", lockedby or "")
        assert m and m.group(1) == pod.hostname and m.group(2) == description, lockedby
        if pod.ip is None:
            pod.address = m.group(3)
            try:
                pod.ip = canonical_address(m.group(3))
            except ValueError:
                raise AssertionError("Liquibase wrote no address: %r" % lockedby) from None
            self.sim.patch_pod(NAMESPACE, pod.name,
                               {"status": {"podIP": pod.ip, "podIPs": [{"ip": pod.ip}]}})
        assert m.group(3) == pod.address, lockedby

    # processes ------------------------------------------------------------------
    def jdbc_url(self, pod):
        return "jdbc:postgresql://%s:%d/%s" % (pod.db_host, self.pg.port, self.db)

    def liquibase(self, pod, sleep_seconds=0, java_opts=(), name=None):
        name = name or "liquibase-%d" % (len(self.runs) + 1)
        run = LiquibaseRun(self.lb, pod, self.jdbc_url(pod),
                           os.path.join(self.workdir, name + ".log"),
                           sleep_seconds=sleep_seconds, java_opts=java_opts, name=name)
        self.runs.append(run)
        return run.start()

    def arbiter(self, *extra, min_lock_age="1s", name="arbiter"):
        a = Arbiter(["run", "--database", self.pg.dsn(self.db), "--poll-interval", "200ms",
                     "--clock-skew", "1s", "--min-lock-age", min_lock_age,
                     "--kube-api", self.sim.url, "--kube-token-file", self.sim.token_file,
                     "--kube-ca-file", self.sim.ca, "--holder-namespace", NAMESPACE,
                     "--holder-container", "app", "--listen", "127.0.0.1:0"] + list(extra),
                    name=name)
        self.arbiters.append(a)
        return a.start()

    # the database ------------------------------------------------------------------
    def row(self):
        """(locked, lockedby, lockgranted) of the lock row, None without one."""
        try:
            return self.pg.read_lock(self.db)
        except Exception:  # the table does not exist yet
            return None

    def wait_row(self, predicate, what, timeout=60, runs=()):
        deadline = time.monotonic() + timeout
        while True:
            row = self.row()
            if row is not None and predicate(row):
                return row
            dead = [r for r in runs if not r.running()]
            if time.monotonic() > deadline or dead:
                raise AssertionError(
                    "%s: lock row %r%s; logs:\n%s" % (
                        what, row, " and %s exited" % dead[0].name if dead else
                        " after %ss" % timeout,
                        "\n---\n".join("%s:\n%s" % (r.name, r.log_tail()) for r in self.runs)))
            time.sleep(0.05)

    def wait_locked(self, run, timeout=60):
        """Waits until `run` holds the lock; returns LOCKEDBY."""
        row = self.wait_row(lambda r: r[0] is True, "%s did not take the lock" % run.name,
                            timeout, runs=[run])
        return row[1]

    def applied(self):
        """The ids of the changesets Liquibase recorded."""
        out = self.pg.psql("SELECT id FROM databasechangelog ORDER BY orderexecuted", self.db)
        return out.split()

    def create_lock_table(self):
        """The lock table, as Liquibase 4.28 creates it: an app migrated before."""
        self.pg.create_lock_table(self.db)

    # results ------------------------------------------------------------------------
    def record(self, scenario, **values):
        """Prints timings and writes them as JSON (workdir, and LOCK_ARBITER_E2E_RESULTS)."""
        doc = {"scenario": scenario, "test": self.name, "pods": self.mode,
               "liquibase": "npm liquibase@" + LIQUIBASE_NPM_VERSION,
               "java": self.lb.java_text,
               "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec="seconds")}
        doc.update({k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()})
        self.timings = doc
        path = os.path.join(self.workdir, "timings.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        if self.results_dir:
            os.makedirs(self.results_dir, exist_ok=True)
            with open(os.path.join(self.results_dir, "%s.json" % scenario), "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        print("\n[e2e %s] %s" % (scenario, ", ".join(
            "%s=%s" % (k, doc[k]) for k in values)), flush=True)
        return path

    def cleanup(self):
        for run in self.runs:
            run.cleanup()
        for a in self.arbiters:
            a.__exit__(None, None, None)
        if self.net is not None:
            self.net.remove_pods()
        self.pods = {}


# -- the steps of a scenario ------------------------------------------------------

def until(t):
    time.sleep(max(0.0, t - time.monotonic()))


def start_holder(e2e, pod, a, sleep_seconds=LONG, java_opts=(), description=None, **run_kw):
    """Starts Liquibase in `pod`, waits until it holds the lock, the arbiter has
    seen it and the slow changeset runs. Returns (run, LOCKEDBY, first sight).
    run_kw: more arguments of e2e.liquibase (a MariaDB changelog_dir)."""
    run = e2e.liquibase(pod, sleep_seconds=sleep_seconds, java_opts=java_opts, name="holder",
                        **run_kw)
    lockedby = e2e.wait_locked(run)
    e2e.learn(pod, lockedby, description)
    seen = None
    if a is not None:
        a.wait_for("lock held", timeout=15, lockedby=lockedby)
        seen = time.monotonic()
    run.wait_log(LB_SLOW_STARTED, timeout=30)
    return run, lockedby, seen


def kill_holder(e2e, run, lockedby, sig=signal.SIGKILL):
    """kill -9 (or another signal) of the whole Liquibase process (launcher and
    JVM, as a container runtime kills a container); the lock stays behind."""
    t_kill = run.kill(sig)
    run.wait(10)
    row = e2e.row()
    assert row[0] is True and row[1] == lockedby, (
        "Liquibase released its lock on %s?" % signal.Signals(sig).name, row, run.log_tail())
    return t_kill


def kept_while(e2e, running, lockedby, what):
    """Waits while running() (the dead holder's statement runs on the server),
    the lock held by lockedby all along; returns the time it stopped."""
    while running():
        assert e2e.row()[1] == lockedby, "released while %s" % what
        time.sleep(0.05)
    return time.monotonic()


def released(a, lockedby, rule, start=0, timeout=20):
    """Waits for the arbiter's release of lockedby by `rule`: (record, when)."""
    rec = a.wait_for("lock released", timeout=timeout, start=start)
    t = time.monotonic()
    assert rec["rule"] == rule, rec
    assert rec["lockedby"] == lockedby, rec
    return rec, t


def metrics(a):
    """The arbiter's /metrics text."""
    import urllib.request
    port = a.wait_for("http listening")["port"]
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5) as r:
        return r.read().decode()
