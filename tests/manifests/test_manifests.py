"""Offline checks of manifests/ and the Containerfile: no cluster, no engine.

- kubectl kustomize renders every overlay and manifests/holder-namespace;
- every rendered object validates against the Kubernetes and
  prometheus-operator schemas (npm: kubernetes-models,
  @kubernetes-models/validate, @kubernetes-models/prometheus-operator,
  installed into ${LOCK_ARBITER_CACHE:-/var/cache/lock-arbiter}/npm-models and
  driven by validate_models.mjs), unknown fields included;
- the PrometheusRule passes `promtool check rules`, its alerts fire on
  synthetic series (`promtool test rules`), and its metrics are the daemon's;
- every flag and variable the manifests give exists in `lock-arbiter --help`,
  the required ones are there, and the binary accepts the configuration;
- the Roles grant exactly the API calls the k8s-client library makes;
- the arbiter's containers are hardened, sized and probed as their form wants;
- the Containerfile installs exactly the packages of the libraries the binary
  links, and builds from what meson needs.

kubectl is the pinned 1.31 that scripts/install_kube_tools.sh puts in the
cache (installed on first use), never whichever is on PATH. Tools missing
from the machine (node and npm, promtool, or kubectl when it cannot be
installed) skip the checks that need them, with the reason; with CI=true
they fail instead.
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import kube_tools  # noqa: E402
MANIFESTS = ROOT / "manifests"
CONTAINERFILE = ROOT / "Containerfile"
CLIENT_DIR = ROOT / "k8s-client"
WATCH_C = ROOT / "k8s-client" / "watch.c"
BIN = os.environ.get("LOCK_ARBITER_BIN") or str(ROOT / "build" / "daemon" / "lock-arbiter")

OVERLAYS = ["deployment", "sidecar", "sidecar-native", "once"]
KUSTOMIZATIONS = {name: MANIFESTS / "overlays" / name for name in OVERLAYS}
KUSTOMIZATIONS["holder-namespace"] = MANIFESTS / "holder-namespace"

# The schema packages, pinned.
NPM_MODELS = {
    "kubernetes-models": "5.1.0",
    "@kubernetes-models/validate": "5.0.2",
    "@kubernetes-models/prometheus-operator": "6.0.0",
}

# Where each overlay puts the arbiter: (kind of the object, "containers" or
# "initContainers", container name, command, probes).
FORMS = {
    "deployment": [("Deployment", "containers", "lock-arbiter", "run", {"liveness", "readiness"})],
    # In the application's pod: no readiness probe, which would take the
    # application out of its Service when the arbiter cannot reach the
    # database or the API.
    "sidecar": [("Deployment", "containers", "lock-arbiter", "run", {"liveness"})],
    "sidecar-native": [("Deployment", "initContainers", "lock-arbiter", "run", {"liveness"})],
    # A pass that exits: nothing to probe (an init container may have no probe).
    "once": [("Deployment", "initContainers", "lock-arbiter-once", "once", set()),
             ("CronJob", "containers", "lock-arbiter", "once", set())],
}

SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, **kw)


def skip(reason):
    """Skips with the reason; in CI (CI=true) nothing may be skipped: fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def need(tool, why):
    path = shutil.which(tool)
    if path is None:
        skip(f"{tool} is not installed: {why} not checked")
    return path


def kube_tool(name, why):
    """The pinned kubectl or helm (installed into the cache on first use)."""
    try:
        return getattr(kube_tools.locate(), name)
    except kube_tools.Unavailable as e:
        skip(f"{e}: {why} not checked")


# ---- rendering ----------------------------------------------------------

_rendered = {}


def register(name, objs):
    """Makes NAME stand for OBJS (rendered elsewhere, e.g. by helm template),
    so that the checks below, which read objects by name, check them too."""
    _rendered[name] = [o for o in objs if o]


def render(name):
    """The objects `kubectl kustomize` makes of one kustomization (or that
    register() gave the name)."""
    if name not in _rendered:
        kubectl = kube_tool("kubectl", "the kustomize rendering (and all that reads it)")
        r = run([kubectl, "kustomize", str(KUSTOMIZATIONS[name])])
        assert r.returncode == 0, f"kubectl kustomize {name} failed:\n{r.stderr}"
        _rendered[name] = [o for o in yaml.safe_load_all(r.stdout) if o]
    return _rendered[name]


def objects(name, kind=None):
    return [o for o in render(name) if kind is None or o["kind"] == kind]


def one(name, kind):
    found = objects(name, kind)
    assert len(found) == 1, f"{name}: {len(found)} objects of kind {kind}"
    return found[0]


def pod_spec(obj):
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def is_arbiter_image(image):
    return image.rsplit(":", 1)[0].split("/")[-1] == "lock-arbiter"


def arbiter_containers(name):
    """(object, pod spec, list name, index, container) of every arbiter container."""
    out = []
    for obj in render(name):
        spec = pod_spec(obj)
        if spec is None:
            continue
        for field in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(field) or []):
                if is_arbiter_image(c.get("image", "")):
                    out.append((obj, spec, field, i, c))
    return out


def env_names(name, c):
    """Every variable a container gets: env, and the ConfigMaps of envFrom."""
    names = [e["name"] for e in c.get("env", [])]
    for src in c.get("envFrom", []):
        assert "prefix" not in src, "envFrom with a prefix"
        assert "secretRef" not in src, "envFrom secretRef: its keys cannot be checked offline"
        cm = [o for o in objects(name, "ConfigMap")
              if o["metadata"]["name"] == src["configMapRef"]["name"]]
        assert len(cm) == 1, f"envFrom names a ConfigMap the overlay does not make: {src}"
        names += list((cm[0].get("data") or {}).keys())
    return names


def config_map_env(name, c):
    out = {}
    for src in c.get("envFrom", []):
        for o in objects(name, "ConfigMap"):
            if o["metadata"]["name"] == src["configMapRef"]["name"]:
                out.update(o.get("data") or {})
    return out


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_kustomize_renders(name):
    objs = render(name)
    assert objs, f"{name} renders nothing"
    for o in objs:
        assert o.get("apiVersion") and o.get("kind") and o["metadata"].get("name"), o
    if name in FORMS:
        # Everything lands in the overlay's namespace; nothing cluster-wide.
        namespaces = {o["metadata"].get("namespace") for o in objs}
        assert len(namespaces) == 1 and None not in namespaces, namespaces
        kinds = {o["kind"] for o in objs}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Namespace"}, kinds


def test_every_overlay_is_checked():
    on_disk = {p.name for p in (MANIFESTS / "overlays").iterdir() if p.is_dir()}
    assert on_disk == set(OVERLAYS)


# ---- schemas ------------------------------------------------------------

def cache_root():
    env = os.environ.get("LOCK_ARBITER_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for d in [env] if env else ["/var/cache/lock-arbiter", os.path.join(xdg, "lock-arbiter")]:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return Path(d)
    pytest.fail(f"no writable cache directory (LOCK_ARBITER_CACHE={env!r})")


def models_installed(d):
    for pkg, version in NPM_MODELS.items():
        try:
            meta = json.loads((d / "node_modules" / pkg / "package.json").read_text())
        except (OSError, ValueError):
            return False
        if meta.get("version") != version:
            return False
    return True


@pytest.fixture(scope="session")
def models_dir():
    """The npm packages in the cache (installed once), with validate_models.mjs beside them."""
    need("node", "the schema validation")
    npm = need("npm", "the schema validation")
    d = cache_root() / "npm-models"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not models_installed(d):
            (d / "package.json").write_text(json.dumps(
                {"name": "lock-arbiter-npm-models", "private": True,
                 "description": "schemas for tests/manifests (written by the test)",
                 "dependencies": NPM_MODELS}, indent=2) + "\n")
            # The packages declare node >= 22, and work on the machine's 20.
            cmd = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                   "--engine-strict=false"]
            for _ in range(2):
                r = run(cmd, cwd=d, timeout=240)
                if r.returncode == 0 and models_installed(d):
                    break
            else:
                pytest.fail(f"npm install in {d} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        # Beside node_modules, so that node resolves the packages from it.
        tmp = d / f".validate_models.{os.getpid()}.mjs"
        shutil.copyfile(HERE / "validate_models.mjs", tmp)
        os.replace(tmp, d / "validate_models.mjs")
    return d


def validate_with_models(models_dir, items):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(items, f)
    try:
        return run(["node", str(models_dir / "validate_models.mjs"), f.name])
    finally:
        os.unlink(f.name)


def test_objects_match_the_schemas(models_dir):
    items = [{"source": name, "object": o} for name in KUSTOMIZATIONS for o in render(name)]
    r = validate_with_models(models_dir, items)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(items)} of {len(items)} objects valid" in r.stdout, r.stdout


def test_schema_check_catches_mistakes(models_dir):
    """The validator is not vacuous: a wrong type and a misspelt field fail."""
    dep = json.loads(json.dumps(one("deployment", "Deployment")))
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["ports"][0]["containerPort"] = "9479"
    typo = json.loads(json.dumps(one("deployment", "Deployment")))
    c = typo["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    rule = json.loads(json.dumps(one("deployment", "PrometheusRule")))
    rule["spec"]["groups"][0]["rules"][0]["fore"] = "1m"
    items = [{"source": "bad-type", "object": dep}, {"source": "typo", "object": typo},
             {"source": "crd-typo", "object": rule}]
    r = validate_with_models(models_dir, items)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "containerPort must be integer" in r.stdout, r.stdout
    assert "containers/0/readinesProbe: unknown field" in r.stdout, r.stdout
    assert "rules/0/fore: unknown field" in r.stdout, r.stdout


# ---- Prometheus ---------------------------------------------------------

def rule_groups():
    return one("deployment", "PrometheusRule")["spec"]["groups"]


def test_rules_pass_promtool_check():
    promtool = need("promtool", "the PrometheusRule")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rules.yaml")
        with open(path, "w") as f:
            yaml.safe_dump({"groups": rule_groups()}, f)
        r = run([promtool, "check", "rules", path])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS: 5 rules found" in r.stdout, r.stdout


def series(metric, values, **labels):
    base = {"job": "lock-arbiter", "namespace": "lock-arbiter", "service": "lock-arbiter"}
    base.update(labels)
    text = ",".join(f'{k}="{v}"' for k, v in sorted(base.items()))
    return {"series": f"{metric}{{{text}}}", "values": values}


LOCK = {"database": "db.example:5432/app", "schema": "public", "table": "databasechangeloglock"}
POD_A = {"pod": "lock-arbiter-a", "instance": "10.0.0.1:9479"}
POD_B = {"pod": "lock-arbiter-b", "instance": "10.0.0.2:9479"}
SCOPE = {"job": "lock-arbiter", "namespace": "lock-arbiter", "service": "lock-arbiter"}


def alert(**labels):
    return {"exp_labels": {"severity": "warning", **labels}}


# Synthetic series from two replicas (one sample a minute), and the alerts
# they must raise: one alert per lock, not one per replica.
RULE_TESTS = [
    {"input_series": [series("lock_arbiter_lock_held_seconds", "600+60x30", **LOCK, **POD_A),
                      series("lock_arbiter_lock_held_seconds", "600+60x30", **LOCK, **POD_B)],
     "alert_rule_test": [
         {"eval_time": "4m", "alertname": "LiquibaseLockHeldTooLong", "exp_alerts": []},
         {"eval_time": "10m", "alertname": "LiquibaseLockHeldTooLong",
          "exp_alerts": [alert(**LOCK, **SCOPE)]}]},
    {"input_series": [
        series("lock_arbiter_lock_verdict", "1x30", verdict="unresolved", **LOCK, **POD_A),
        series("lock_arbiter_lock_verdict", "1x30", verdict="unresolved", **LOCK, **POD_B),
        series("lock_arbiter_lock_verdict", "1x30", verdict="held",
               **{**LOCK, "schema": "tenant_a"}, **POD_A)],
     "alert_rule_test": [
         {"eval_time": "3m", "alertname": "LiquibaseLockHolderUnresolved", "exp_alerts": []},
         {"eval_time": "10m", "alertname": "LiquibaseLockHolderUnresolved",
          "exp_alerts": [alert(verdict="unresolved", **LOCK, **SCOPE)]}]},
    {"input_series": [
        series("lock_arbiter_database_up", "0x30", database=LOCK["database"], **POD_A),
        series("lock_arbiter_database_up", "1x30", database=LOCK["database"], **POD_B),
        series("lock_arbiter_kubernetes_up", "1x30", **POD_A),
        series("lock_arbiter_kubernetes_up", "1x2 0x28", **POD_B)],
     "alert_rule_test": [
         {"eval_time": "10m", "alertname": "LockArbiterDatabaseDown",
          "exp_alerts": [alert(database=LOCK["database"], **POD_A, **SCOPE)]},
         {"eval_time": "10m", "alertname": "LockArbiterKubernetesDown",
          "exp_alerts": [alert(**POD_B, **SCOPE)]}]},
    # Two releases by one leader, then two by the other, for two reasons:
    # four in the hour, though no single series counts more than two.
    {"input_series": [
        series("lock_arbiter_locks_released_total", "0 0 1 2x57", reason="O1", **LOCK, **POD_A),
        series("lock_arbiter_locks_released_total", "0x30 1 2x29", reason="O3", **LOCK, **POD_B)],
     "alert_rule_test": [
         {"eval_time": "20m", "alertname": "LiquibaseLocksReleasedOften", "exp_alerts": []},
         {"eval_time": "59m", "alertname": "LiquibaseLocksReleasedOften",
          "exp_alerts": [alert(**LOCK, **SCOPE)]}]},
]


def test_alerts_fire_on_synthetic_series():
    promtool = need("promtool", "the alerts")
    # promtool compares annotations too; `check rules` has checked their
    # templates, so the copy under test drops them.
    groups = json.loads(json.dumps(rule_groups()))
    for g in groups:
        for rule in g["rules"]:
            rule.pop("annotations", None)
    tests = [{"interval": "1m", **t} for t in RULE_TESTS]
    tested = {a["alertname"] for t in tests for a in t["alert_rule_test"]}
    assert tested == {r["alert"] for g in groups for r in g["rules"]}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "rules.yaml"), "w") as f:
            yaml.safe_dump({"groups": groups}, f)
        with open(os.path.join(d, "test.yaml"), "w") as f:
            yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                            "tests": tests}, f)
        r = run([promtool, "test", "rules", "test.yaml"], cwd=d)
        assert r.returncode == 0, r.stdout + r.stderr


def test_alert_metrics_are_the_daemons():
    """Every metric an alert uses is one the daemon's source exports."""
    used = set()
    for g in rule_groups():
        for rule in g["rules"]:
            used |= set(re.findall(r"\block_arbiter_[a-z_]+", rule["expr"]))
    assert len(used) == 5, used
    sources = "".join(p.read_text() for p in (ROOT / "daemon").glob("*.c"))
    if '"lock_arbiter_"' not in sources:
        skip("the daemon's source has no metrics yet")
    for u in used:
        assert f'"{u[len("lock_arbiter_"):]}"' in sources, f"{u} is not a metric of the daemon"
    assert '"unresolved"' in sources


# ---- configuration ------------------------------------------------------

_help = None


def daemon_help():
    """Flags, LOCK_ARBITER_* variables and the other variables --help names."""
    global _help
    if _help is None:
        r = run([BIN, "--help"], timeout=30)
        assert r.returncode == 0, r.stderr
        text = r.stdout
        flags = set(re.findall(r"--[a-z][a-z-]*[a-z]", text))
        envs = set(re.findall(r"\bLOCK_ARBITER_[A-Z_]+\b", text))
        also = text[text.index("Also read:"):].split("\n\n")[0]
        others = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", also))
        listen = re.search(r"LOCK_ARBITER_LISTEN; default \S+:(\d+)", text)
        assert len(flags) >= 20 and len(envs) >= 19, (flags, envs)
        assert {"DATABASE_URL", "POD_NAME", "POD_NAMESPACE", "POD_UID",
                "CONTAINER_NAME"} <= others, others
        assert "PG*" in also and listen, text
        _help = {"flags": flags, "envs": envs, "others": others,
                 "listen_port": int(listen.group(1)), "text": text}
    return _help


def known_variable(name):
    h = daemon_help()
    # PG*: libpq's own variables (PGHOST, PGPASSWORD, PGSSLMODE, ...).
    return name in h["envs"] or name in h["others"] or re.fullmatch(r"PG[A-Z]+", name)


@pytest.mark.parametrize("name", OVERLAYS)
def test_variables_and_flags_exist(name):
    h = daemon_help()
    containers = arbiter_containers(name)
    assert containers
    for _, _, _, _, c in containers:
        unknown = [v for v in env_names(name, c) if not known_variable(v)]
        assert not unknown, f"{name}/{c['name']}: variables the daemon does not read: {unknown}"
        assert "command" not in c, "the image's ENTRYPOINT is the binary"
        args = c.get("args", [])
        assert args and args[0] in ("run", "once", "check"), args
        for a in args[1:]:
            if a.startswith("-"):
                assert a.split("=", 1)[0] in h["flags"], f"{name}/{c['name']}: unknown flag {a}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_required_configuration(name):
    for obj, _, _, _, c in arbiter_containers(name):
        env = {e["name"]: e for e in c.get("env", [])}
        where = f"{name}/{c['name']}"
        # A database, from a Secret: the URL holds the password.
        db = [env[v] for v in ("DATABASE_URL", "LOCK_ARBITER_DATABASE") if v in env]
        assert db, f"{where}: no DATABASE_URL or LOCK_ARBITER_DATABASE"
        for e in db:
            assert "secretKeyRef" in e.get("valueFrom", {}), f"{where}: {e['name']} not from a Secret"
        secrets = {"DATABASE_URL", "LOCK_ARBITER_DATABASE", "PGPASSWORD"}
        assert not secrets & set(config_map_env(name, c)), f"{where}: a secret in a ConfigMap"
        # The Downward API, for the cluster identity check and the own-container rule.
        for var, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"),
                          ("POD_UID", "metadata.uid")):
            assert env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") \
                == path, f"{where}: {var} is not the Downward API's {path}"
        assert env.get("CONTAINER_NAME", {}).get("value") == c["name"], \
            f"{where}: CONTAINER_NAME is not the container's name"
        merged = {**config_map_env(name, c), **{k: e.get("value") for k, e in env.items()}}
        if obj["kind"] == "Deployment" and obj["spec"].get("replicas", 1) > 1:
            # Replicas are safe only through the advisory lock.
            assert merged.get("LOCK_ARBITER_LEADER_ELECTION", "advisory") == "advisory"


@pytest.mark.parametrize("name", OVERLAYS)
def test_daemon_accepts_the_configuration(name):
    """The binary reads each container's env and args without a configuration error.

    The command becomes `check` (the others need a cluster), the Downward API
    and the Secret get stand-ins, and the database is a closed port on
    loopback: exit 1 (database unreachable) means the configuration passed;
    2 would mean it did not.
    """
    for obj, _, _, _, c in arbiter_containers(name):
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
        env.update(config_map_env(name, c))
        stand_in = {"metadata.name": "pod-0", "metadata.uid": "0a1b2c3d-0000-4000-8000-000000000000",
                    "metadata.namespace": obj["metadata"]["namespace"]}
        for e in c.get("env", []):
            src = e.get("valueFrom", {})
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "fieldRef" in src:
                env[e["name"]] = stand_in[src["fieldRef"]["fieldPath"]]
            elif "secretKeyRef" in src:
                env[e["name"]] = "postgresql://arbiter@127.0.0.1:1/app?connect_timeout=2"
            else:
                pytest.fail(f"{name}/{c['name']}: {e['name']} has a source this test does not know")
        args = ["check"] + c["args"][1:]
        r = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert "configuration problem" not in r.stderr, r.stderr
        assert r.returncode == 1 and "unreachable" in r.stdout + r.stderr, \
            (r.returncode, r.stdout, r.stderr)


# ---- RBAC ---------------------------------------------------------------

def client_calls():
    """The API calls of the k8s-client library: (method, path template, metrics verb).

    Each call is `k8s_request(k, "VERB", url, BODY, ...)` (or lookup.c's
    `fetch(k, "VERB", url, BODY, ...)`, which passes its verb on) after the
    URL is made with `k8s_join(k->base, "/api/v1/namespaces/", ns, "/pods/",
    name, ...)` in the same file; a body means POST (transport.c's exchange()
    sets CURLOPT_POSTFIELDS), none GET.
    """
    calls = []
    for f in sorted(CLIENT_DIR.glob("*.c")):
        calls += file_calls(f.read_text())
    # The pod watches (watch.c) build their URL with one format string.
    watch_src = WATCH_C.read_text()
    urls = re.findall(r'"%s(/api/v1/[^"]*)"', watch_src)
    assert len(urls) == 1, urls
    path = re.sub(r"%s", "{ns}", urls[0], count=1)
    calls.append(("GET", path, "watch"))
    return calls


def file_calls(src):
    """The k8s_request calls of one source file."""
    assert "CURLOPT_CUSTOMREQUEST" not in src and "CURLOPT_UPLOAD" not in src, \
        "the client uses methods other than GET and POST: extend this test"
    calls = []
    for m in re.finditer(r'(?:k8s_request|fetch)\(k, "(\w+)", url, (\w+),', src):
        joins = list(re.finditer(r"k8s_join\(k->base,(.*?)\(char \*\)NULL\)", src[:m.start()], re.S))
        assert joins, "a request without a URL built before it"
        parts = joins[-1].group(1).split(",")
        path = "".join(p.strip()[1:-1] if p.strip().startswith('"') else "{" + p.strip() + "}"
                       for p in parts if p.strip())
        calls.append(("GET" if m.group(2) == "NULL" else "POST", path, m.group(1)))
    assert len(calls) == len(re.findall(r'(?:k8s_request|fetch)\(k, (?!verb,)', src)), \
        "a request this test could not read"
    return calls


def rbac_verb(method, path):
    """The RBAC rule one call needs: (apiGroup, resource, verb)."""
    path, _, query = path.partition("?")
    m = re.fullmatch(r"/api/v1/namespaces/\{\w+\}/([a-z]+)(/\{\w+\})?", path)
    assert m, f"a path this test does not know: {path}"
    resource, named = m.group(1), m.group(2) is not None
    if "watch" in query:
        verb = "watch"
    elif method == "GET":
        verb = "get" if named else "list"
    elif method == "POST" and not named:
        verb = "create"
    else:
        pytest.fail(f"a call this test does not know: {method} {path}")
    return ("", resource, verb)


def test_client_calls_are_what_the_test_expects():
    calls = client_calls()
    rules = {rbac_verb(method, path) for method, path, _ in calls}
    assert rules == {("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
                     ("", "events", "create")}, calls
    # The metrics label the client gives each call says the same.
    for method, path, verb in calls:
        assert rbac_verb(method, path)[2] == verb, (method, path, verb)


def check_role_grants_what_the_client_calls(role):
    """One Role grants exactly the (apiGroup, resource, verb) the client needs."""
    needed = {rbac_verb(method, path) for method, path, _ in client_calls()}
    granted = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    assert "*" not in (g, r, v), rule
                    granted.add((g, r, v))
    assert granted == needed, role["metadata"]


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_roles_grant_exactly_what_the_client_calls(name):
    roles = objects(name, "Role")
    assert len(roles) == 1, name
    check_role_grants_what_the_client_calls(roles[0])


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_role_is_bound_to_the_arbiter(name):
    role = one(name, "Role")
    binding = one(name, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["metadata"].get("namespace") == role["metadata"].get("namespace")
    subjects = binding["subjects"]
    assert len(subjects) == 1 and subjects[0]["kind"] == "ServiceAccount", subjects
    sa = subjects[0]
    if name == "holder-namespace":
        # Applied with -n into each holder namespace; the subject is the
        # standalone arbiter's ServiceAccount, in its namespace.
        assert role["metadata"].get("namespace") is None
        dep_sa = one("deployment", "ServiceAccount")["metadata"]
        assert (sa["name"], sa["namespace"]) == (dep_sa["name"], dep_sa["namespace"])
        return
    account = one(name, "ServiceAccount")["metadata"]
    assert (sa["name"], sa["namespace"]) == (account["name"], account["namespace"])
    for obj, spec, _, _, _ in arbiter_containers(name):
        assert spec.get("serviceAccountName") == account["name"], obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == account["namespace"]


# ---- containers ---------------------------------------------------------

def project_version():
    m = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text())
    return m.group(1)


@pytest.mark.parametrize("name", OVERLAYS)
def test_arbiter_containers_by_form(name):
    check_arbiter_containers(name, FORMS[name])


def check_arbiter_containers(name, want):
    """The arbiter's containers are where WANT (as in FORMS) says, hardened
    (SECURITY_CONTEXT), probed as their form wants, with the project's image."""
    found = arbiter_containers(name)
    assert [(o["kind"], f, c["name"]) for o, _, f, _, c in found] == \
        [(k, f, n) for k, f, n, _, _ in want]
    port = daemon_help()["listen_port"]
    for (obj, spec, field, index, c), (_, _, _, mode, probes) in zip(found, want):
        where = f"{name}/{obj['metadata']['name']}/{c['name']}"
        assert c["args"][0] == mode, where
        assert c["image"] == f"lock-arbiter:{project_version()}", where
        assert c.get("imagePullPolicy") == "IfNotPresent", where
        assert c.get("securityContext") == SECURITY_CONTEXT, where
        have = {p for p in ("liveness", "readiness", "startup") if f"{p}Probe" in c}
        assert have == probes, f"{where}: probes {have}"
        if "liveness" in probes:
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        if "readiness" in probes:
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        if mode == "run":
            assert c.get("ports") == [{"name": "metrics", "containerPort": port,
                                       "protocol": "TCP"}], where
        if field == "initContainers":
            # The arbiter runs before a Liquibase init container.
            assert index == 0, f"{where}: not the first init container"
            assert c.get("restartPolicy") == ("Always" if mode == "run" else None), where
        elif obj["kind"] == "Deployment" and name in ("sidecar", "sidecar-native"):
            # The classic sidecar comes after the application's containers,
            # which stay the default for kubectl logs and exec.
            assert index == len(spec["containers"]) - 1 and index > 0, where
        assert spec.get("automountServiceAccountToken") is True, where


def test_arbiter_containers_are_sized_alike():
    """Every form asks the same resources, so the benchmark's figures go everywhere."""
    check_arbiter_containers_sized(OVERLAYS)


def check_arbiter_containers_sized(names):
    seen = []
    for name in names:
        for _, _, _, _, c in arbiter_containers(name):
            res = c.get("resources", {})
            assert set(res) == {"requests", "limits"} and set(res["requests"]) == \
                set(res["limits"]) == {"cpu", "memory"}, res
            seen.append(res)
    assert seen and all(r == seen[0] for r in seen), seen
    assert seen[0] == {"requests": {"cpu": "10m", "memory": "16Mi"},
                       "limits": {"cpu": "100m", "memory": "64Mi"}}


def test_service_account_token_is_mounted():
    for name in OVERLAYS:
        sa = one(name, "ServiceAccount")
        assert sa.get("automountServiceAccountToken") is not False, name


# ---- the Deployment form ------------------------------------------------

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_deployment_form():
    check_deployment_form("deployment")


def check_deployment_form(name, replicas=2):
    """The Deployment and what serves it: Service, ServiceMonitor, PDB,
    NetworkPolicy and PrometheusRule, each selecting the arbiter's pods."""
    dep = one(name, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["replicas"] == replicas
    assert matches(dep["spec"]["selector"]["matchLabels"], pod_labels)
    port = daemon_help()["listen_port"]

    svc = one(name, "Service")
    assert matches(svc["spec"]["selector"], pod_labels)
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics",
                                     "protocol": "TCP"}]

    sm = one(name, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert [(e["port"], e["path"]) for e in sm["spec"]["endpoints"]] == [("metrics", "/metrics")]

    pdb = one(name, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)

    np = one(name, "NetworkPolicy")
    assert matches(np["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert sorted(np["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    # In: the metrics port only, whoever asks (Prometheus lives anywhere).
    assert np["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    # Out: PostgreSQL, the API server (Service 443, endpoints 6443), DNS; nothing else.
    egress = set()
    for rule in np["spec"]["egress"]:
        assert set(rule) == {"ports"}, rule
        egress |= {(p["port"], p["protocol"]) for p in rule["ports"]}
    assert egress == {(5432, "TCP"), (443, "TCP"), (6443, "TCP"), (53, "UDP"), (53, "TCP")}

    assert one(name, "PrometheusRule")["apiVersion"] == "monitoring.coreos.com/v1"


def test_readme_names_every_form():
    text = (MANIFESTS / "README.md").read_text()
    for name in OVERLAYS:
        assert f"kubectl apply -k manifests/overlays/{name}" in text, name
    assert "kubectl apply -k manifests/holder-namespace" in text
    assert "lock-arbiter-database" in text and "DATABASE_URL" in text


# ---- the Containerfile --------------------------------------------------

def containerfile_stages():
    """The Containerfile's stages: a list of (FROM line, [instructions]), continuations joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        else:
            stages[-1][1].append(line)
    return stages


def apt_installs(instructions):
    pkgs = []
    for ins in instructions:
        for m in re.finditer(r"apt-get install ([^&;]*)", ins):
            pkgs += [t for t in m.group(1).split() if not t.startswith("-")]
    return pkgs


def dpkg_owner(path):
    """The package that ships a file, trying both sides of the merged /usr."""
    real = os.path.realpath(path)
    tries = [path, real]
    for p in (path, real):
        if p.startswith("/usr/lib/"):
            tries.append(p[len("/usr"):])
        elif p.startswith("/lib"):
            tries.append("/usr" + p)
    for p in dict.fromkeys(tries):
        r = run(["dpkg-query", "-S", p])
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                pkg, _, owned = line.partition(": ")
                if owned == p and not line.startswith("diversion"):
                    return pkg.split(":")[0]
    pytest.fail(f"no Debian package owns {path}")


_installed = None


def installed_packages():
    """{package: [dependency alternatives]} of the installed packages (dpkg's status)."""
    global _installed
    if _installed is None:
        fmt = "${Package}\t${Status}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\t${Provides}\n"
        r = run(["dpkg-query", "-W", "-f=" + fmt])
        pkgs, provides = {}, {}
        for line in r.stdout.splitlines():
            name, status, essential, priority, deps, prov = line.split("\t")
            if not status.endswith(" installed"):
                continue
            alts = [[a.strip().split(" ")[0].split(":")[0] for a in d.split("|")]
                    for d in deps.split(",") if d.strip()]
            pkgs[name] = {"base": essential == "yes" or priority == "required", "deps": alts}
            for p in prov.split(","):
                if p.strip():
                    provides.setdefault(p.strip().split(" ")[0], name)
        _installed = (pkgs, provides)
    return _installed


def closure(names):
    """The packages and everything they depend on (the first installed alternative)."""
    pkgs, provides = installed_packages()
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in seen or n not in pkgs:
            continue
        seen.add(n)
        for alts in pkgs[n]["deps"]:
            for a in alts:
                if a in pkgs or a in provides:
                    todo.append(a if a in pkgs else provides[a])
                    break
    return seen


def slim_base():
    """What debian:12-slim has: a minbase system, that is every Essential and
    Priority: required package and what they depend on (libc6 among them)."""
    pkgs, _ = installed_packages()
    return closure([n for n, p in pkgs.items() if p["base"]])


def test_runtime_stage_installs_exactly_the_linked_libraries():
    """The runtime stage's apt-get install line against the binary.

    The mapping: `readelf -d` gives the sonames the binary itself links
    (NEEDED), `ldd` the file each resolves to, `dpkg -S` the package that
    ships that file. Packages debian:12-slim already has (libc6 and the rest
    of the Essential and required set, with their dependencies, as dpkg's
    status on this Debian 12 machine describes them) are dropped; what is
    left must be the install line, less ca-certificates, which is no library
    but the CA bundle libcurl uses for an https --kube-api without
    --kube-ca-file. The libraries those link in turn (libssl3, libldap, ...)
    come with them as Depends: every file ldd lists must be owned by a
    package in the closure of the install line and the base image.
    """
    if shutil.which("dpkg-query") is None or shutil.which("ldd") is None:
        skip("not a Debian machine: dpkg-query or ldd missing")
    readelf = need("readelf", "the binary's NEEDED libraries")
    dyn = run([readelf, "-d", BIN]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    if any(n.startswith(("libasan", "libubsan", "libtsan")) for n in needed):
        pytest.skip(f"{BIN} is a sanitizer build, not what the image ships")
    resolved = {}
    for line in run(["ldd", BIN]).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            resolved[m.group(1)] = m.group(2)
    assert set(needed) <= set(resolved), (needed, resolved)

    base = slim_base()
    assert {"libc6", "apt", "passwd"} <= base, "the base image computed wrong"
    linked = {dpkg_owner(resolved[n]) for n in needed}
    assert "libc6" in linked
    expected = linked - base

    stages = containerfile_stages()
    assert len(stages) == 2, [s[0] for s in stages]
    runtime = apt_installs(stages[1][1])
    assert len(runtime) == len(set(runtime)), runtime
    assert set(runtime) - {"ca-certificates"} == expected, (runtime, sorted(expected))
    assert "ca-certificates" in runtime

    have = closure(set(runtime) | base)
    missing = {p: dpkg_owner(p) for p in resolved.values() if dpkg_owner(p) not in have}
    assert not missing, f"libraries the image would lack: {missing}"
    # groupadd and useradd, used in the runtime stage, come with the base image.
    for tool in ("/usr/sbin/groupadd", "/usr/sbin/useradd"):
        assert dpkg_owner(tool) in base, tool


def test_build_stage_installs_what_meson_needs():
    """The build stage's packages: the toolchain and, for every dependency()
    that meson.build requires with the tests disabled, the -dev package that
    ships its pkg-config file."""
    if shutil.which("dpkg-query") is None:
        skip("not a Debian machine: dpkg-query missing")
    pkg_config = need("pkg-config", "the build stage's -dev packages")
    meson = (ROOT / "meson.build").read_text()
    deps = [name for name, rest in re.findall(r"dependency\('([^']+)'([^)]*)\)", meson)
            if "get_option('tests'" not in rest]
    assert len(deps) >= 4, deps
    dev = set()
    for d in deps:
        r = run([pkg_config, "--variable=pcfiledir", d])
        assert r.returncode == 0, f"pkg-config does not know {d}"
        dev.add(dpkg_owner(os.path.join(r.stdout.strip(), d + ".pc")))
    stages = containerfile_stages()
    assert stages[0][0] == "FROM debian:12 AS build"
    build = apt_installs(stages[0][1])
    assert set(build) == {"meson", "ninja-build", "gcc", "pkg-config"} | dev, (build, dev)

    joined = "\n".join(stages[0][1])
    assert ("meson setup build -Dtests=disabled -Dintegration=disabled -Dmysql=enabled --buildtype=release"
            in joined and "ninja -C build" in joined)
    options = (ROOT / "meson_options.txt").read_text()
    assert "option('tests'" in options and "option('integration'" in options
    # Every directory meson builds the daemon from is copied in.
    copied = set()
    for ins in stages[0][1]:
        if ins.startswith("COPY ") and "--from" not in ins:
            copied |= set(ins.split()[1:-1])
    subdirs = set(re.findall(r"subdir\('([^']+)'\)", meson)) - {"tests"}
    assert subdirs | {"meson.build", "meson_options.txt"} <= copied, (subdirs, copied)


def test_build_stage_builds_from_what_it_copies(tmp_path):
    """The build stage's COPY and RUN steps, replayed here without an engine:
    the sources it copies are enough, and the release binary links the same
    libraries as the one the runtime stage was checked against."""
    need("meson", "the build stage")
    stages = containerfile_stages()
    workdir = tmp_path / "src"
    workdir.mkdir()
    steps = []
    for ins in stages[0][1]:
        word, _, rest = ins.partition(" ")
        if word == "WORKDIR":
            assert rest == "/src", rest
        elif word == "COPY":
            *sources, dest = rest.split()
            target = workdir / dest
            for s in sources:
                path = ROOT / s
                to = target / path.name if len(sources) > 1 or dest.endswith("/") else target
                if path.is_dir():
                    shutil.copytree(path, to)
                else:
                    to.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, to)
        elif word == "RUN" and "apt-get" not in rest:
            steps.append(rest)
    assert steps, "no build step"
    for step in steps:
        r = run(["bash", "-ec", step], cwd=workdir, timeout=240)
        assert r.returncode == 0, f"{step}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    built = workdir / "build" / "daemon" / "lock-arbiter"
    r = run([str(built), "--version"], timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("lock-arbiter "), r

    def needed(path):
        dyn = run(["readelf", "-d", str(path)]).stdout
        return sorted(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn))
    if shutil.which("readelf"):
        assert needed(built) == needed(BIN)


def test_runtime_stage_matches_the_manifests():
    stages = containerfile_stages()
    assert stages[1][0] == "FROM debian:12-slim"
    ins = stages[1][1]
    port = daemon_help()["listen_port"]
    uid = SECURITY_CONTEXT["runAsUser"]
    assert f"USER {uid}:{uid}" in ins
    assert f"EXPOSE {port}" in ins
    assert 'ENTRYPOINT ["/usr/local/bin/lock-arbiter"]' in ins
    assert "COPY --from=build /src/build/daemon/lock-arbiter /usr/local/bin/lock-arbiter" in ins
    run_lines = " ".join(i for i in ins if i.startswith("RUN "))
    assert f"--uid {uid}" in run_lines and f"--gid {uid}" in run_lines
    assert "--no-install-recommends" in run_lines and "rm -rf /var/lib/apt/lists/*" in run_lines
