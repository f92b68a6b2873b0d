"""Offline checks of the Helm chart (charts/lock-arbiter) and the Grafana dashboard.

- `helm lint --strict` passes, with the default values and with every feature on;
- `helm template` renders the default values, every feature of the Deployment
  form, and the CronJob form; the rendered objects then go through the same
  checks as the kustomize overlays (test_manifests.py's functions, reused):
  the schemas with validate_models.mjs (unknown fields included), Roles that
  grant exactly the calls k8s-client makes (in the release's namespace and
  each holder namespace) bound to the arbiter's ServiceAccount, the hardened,
  sized and probed containers, every variable and flag known to --help, the
  database from a Secret, and the binary accepting the configuration;
- values that cannot work fail at template time, with the reason;
- the chart's copies of the PrometheusRule and the dashboard are the files of
  manifests/overlays/deployment; every value in values.yaml is commented and
  listed in manifests/README.md;
- the dashboard is well-formed Grafana JSON, every PromQL expression in it
  passes promtool, and both its ConfigMaps (kustomize and chart) carry it
  with the Grafana sidecar's label. test_dashboard.py evaluates the
  expressions against a real Prometheus.

helm and kubectl are the pinned ones of scripts/install_kube_tools.sh. A tool
that is missing skips a check with the reason; with CI=true it fails instead.
"""
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_manifests as tm  # noqa: E402
from test_manifests import models_dir  # noqa: E402,F401  (the session fixture)

CHART = tm.ROOT / "charts" / "lock-arbiter"
DASHBOARD = tm.MANIFESTS / "overlays" / "deployment" / "dashboard.json"
RELEASE_NS = "lock-arbiter"
HOLDERS = ["team-a", "team-b"]

# Every feature of the Deployment form on, and holder namespaces elsewhere.
ALL_ON = {
    "replicas": 3,
    "holderNamespaces": HOLDERS,
    "holderContainer": "app",
    "config": {"LOCK_ARBITER_LOG_FORMAT": "json", "LOCK_ARBITER_POLL_INTERVAL": "5s",
               "LOCK_ARBITER_RELEASE_UNRESOLVED_AFTER": "1h"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Databases"}},
    "podAnnotations": {"example.com/team": "platform"},
    "imagePullSecrets": [{"name": "registry"}],
}

# name: (values, the kinds it must make, where the arbiter runs (as tm.FORMS))
SCENARIOS = {
    "chart-default": ({}, {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment",
                           "Service", "NetworkPolicy", "PodDisruptionBudget"},
                      [("Deployment", "containers", "lock-arbiter", "run",
                        {"liveness", "readiness"})]),
    "chart-all": (ALL_ON, {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment",
                           "Service", "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor",
                           "PrometheusRule"},
                  [("Deployment", "containers", "lock-arbiter", "run", {"liveness", "readiness"})]),
    "chart-cronjob": ({"mode": "cronjob", "holderNamespaces": HOLDERS},
                      {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"},
                      [("CronJob", "containers", "lock-arbiter", "once", set())]),
}


def helm():
    return tm.kube_tool("helm", "the Helm chart")


def helm_template(values, release="lock-arbiter", check=True):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values, f)
    try:
        r = tm.run([helm(), "template", release, str(CHART), "--namespace", RELEASE_NS,
                    "--values", f.name])
    finally:
        os.unlink(f.name)
    if check:
        assert r.returncode == 0, f"helm template failed:\n{r.stderr}"
    return r


_done = set()


def rendered(name):
    """Renders a scenario once and registers it with test_manifests' checks."""
    if name not in _done:
        r = helm_template(SCENARIOS[name][0])
        tm.register(name, yaml.safe_load_all(r.stdout))
        _done.add(name)
    return tm.render(name)


# ---- helm ---------------------------------------------------------------

@pytest.mark.parametrize("values", [{}, ALL_ON, {"mode": "cronjob"}], ids=["default", "all", "cronjob"])
def test_helm_lint(values, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    r = tm.run([helm(), "lint", "--strict", str(CHART), "--namespace", RELEASE_NS,
                "--values", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in r.stdout, r.stdout


def test_chart_version_is_the_projects():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == tm.project_version() == chart["version"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_chart_renders(name):
    objs = rendered(name)
    _, kinds, _ = SCENARIOS[name]
    assert {o["kind"] for o in objs} == kinds | ({"ConfigMap"} if name == "chart-all" else set())
    holders = SCENARIOS[name][0].get("holderNamespaces", [])
    for o in objs:
        assert o.get("apiVersion") and o["metadata"].get("name"), o
        assert o["metadata"]["labels"]["app.kubernetes.io/name"] == "lock-arbiter", o["metadata"]
        ns = o["metadata"].get("namespace")
        if o["kind"] in ("Role", "RoleBinding"):
            assert ns in [RELEASE_NS] + holders, o["metadata"]
        else:
            assert ns == RELEASE_NS, o["metadata"]
    assert not {o["kind"] for o in objs} & {"ClusterRole", "ClusterRoleBinding", "Namespace", "Secret"}


def test_all_on_makes_the_dashboard_config_map():
    dash = [o for o in rendered("chart-all") if o["kind"] == "ConfigMap"
            and o["metadata"]["name"].endswith("-dashboard")]
    assert len(dash) == 1
    meta = dash[0]["metadata"]
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["annotations"] == {"grafana_folder": "Databases"}
    assert json.loads(dash[0]["data"]["lock-arbiter.json"]) == json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("values,reason", [
    ({"mode": "daemonset"}, 'mode must be deployment or cronjob, not "daemonset"'),
    ({"databases": {"existingSecret": ""}}, "databases.existingSecret"),
    ({"config": {"LOCK_ARBITER_DATABASE": "postgresql://u:pw@db/app"}}, "config.LOCK_ARBITER_DATABASE"),
    ({"config": {"DATABASE_URL": "postgresql://u:pw@db/app"}}, "config.DATABASE_URL"),
    ({"config": {"LOCK_ARBITER_LEADER_ELECTION": "none"}}, "LOCK_ARBITER_LEADER_ELECTION advisory"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name"),
    ({"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}, "needs service.enabled"),
], ids=["mode", "secret", "database-in-config", "url-in-config", "replicas-without-election",
        "no-account", "monitor-without-service"])
def test_values_that_cannot_work_fail(values, reason):
    r = helm_template(values, check=False)
    assert r.returncode != 0 and reason in r.stderr, (r.returncode, r.stderr)


def test_one_replica_has_no_disruption_budget():
    objs = list(yaml.safe_load_all(helm_template({"replicas": 1}).stdout))
    assert "PodDisruptionBudget" not in {o["kind"] for o in objs if o}


# ---- the checks of the kustomize overlays, on the chart ------------------

def test_objects_match_the_schemas(models_dir):  # noqa: F811
    items = [{"source": name, "object": o} for name in SCENARIOS for o in rendered(name)]
    r = tm.validate_with_models(models_dir, items)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(items)} of {len(items)} objects valid" in r.stdout, r.stdout


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_roles_grant_exactly_what_the_client_calls(name):
    roles = tm.objects(name, "Role") if rendered(name) else []
    holders = SCENARIOS[name][0].get("holderNamespaces", [])
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted([RELEASE_NS] + holders)
    for role in roles:
        tm.check_role_grants_what_the_client_calls(role)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_roles_are_bound_to_the_arbiter(name):
    rendered(name)
    account = tm.one(name, "ServiceAccount")["metadata"]
    bindings = {b["metadata"]["namespace"]: b for b in tm.objects(name, "RoleBinding")}
    for role in tm.objects(name, "Role"):
        b = bindings[role["metadata"]["namespace"]]
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": role["metadata"]["name"]}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                  "namespace": account["namespace"]}]
    assert len(bindings) == len(tm.objects(name, "Role"))
    for obj, spec, _, _, _ in tm.arbiter_containers(name):
        assert spec.get("serviceAccountName") == account["name"], obj["metadata"]["name"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_arbiter_containers(name):
    rendered(name)
    tm.check_arbiter_containers(name, SCENARIOS[name][2])
    for obj, spec, _, _, _ in tm.arbiter_containers(name):
        want = {k: v for k, v in tm.SECURITY_CONTEXT.items()
                if k in ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile")}
        assert spec["securityContext"] == want, obj["metadata"]["name"]


def test_arbiter_containers_are_sized_as_the_overlays():
    for name in SCENARIOS:
        rendered(name)
    tm.check_arbiter_containers_sized(list(SCENARIOS) + tm.OVERLAYS)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_configuration(name):
    rendered(name)
    tm.test_variables_and_flags_exist(name)
    tm.test_required_configuration(name)
    tm.test_daemon_accepts_the_configuration(name)
    for _, _, _, _, c in tm.arbiter_containers(name):
        env = tm.config_map_env(name, c)
        holders = SCENARIOS[name][0].get("holderNamespaces")
        assert env.get("LOCK_ARBITER_HOLDER_NAMESPACE") == (",".join(holders) if holders else None)
        db = [e for e in c["env"] if e["name"] == "LOCK_ARBITER_DATABASE"]
        assert db[0]["valueFrom"]["secretKeyRef"] == {"name": "lock-arbiter-database",
                                                      "key": "DATABASE_URL"}


def test_deployment_form():
    rendered("chart-all")
    tm.check_deployment_form("chart-all", replicas=ALL_ON["replicas"])
    rendered("chart-default")
    assert tm.one("chart-default", "Deployment")["spec"]["replicas"] == 2


def test_cronjob_form_matches_the_overlay():
    """The chart's CronJob is the once overlay's, but for names and labels."""
    def strip(obj):
        obj = json.loads(json.dumps(obj))
        spec = obj["spec"]
        pod = spec["jobTemplate"]["spec"]["template"]
        pod.pop("metadata", None)
        c = pod["spec"]["containers"][0]
        c.pop("envFrom")
        c["image"] = "IMAGE"
        c["env"] = sorted(e["name"] for e in c["env"])
        return spec
    rendered("chart-cronjob")
    chart = strip(tm.one("chart-cronjob", "CronJob"))
    overlay = strip(tm.one("once", "CronJob"))
    for s in (chart, overlay):
        pod = s["jobTemplate"]["spec"]["template"]["spec"]
        pod.pop("serviceAccountName")
        s["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] = [
            "DATABASE" if n in ("DATABASE_URL", "LOCK_ARBITER_DATABASE") else n
            for n in pod["containers"][0]["env"]]
    assert chart == overlay


def test_prometheus_rule_is_the_overlays():
    assert (CHART / "files" / "prometheusrule.yaml").read_text() == \
        (tm.MANIFESTS / "overlays" / "deployment" / "prometheusrule.yaml").read_text()
    rendered("chart-all")
    assert tm.one("chart-all", "PrometheusRule")["spec"] == tm.one("deployment", "PrometheusRule")["spec"]


# ---- documentation --------------------------------------------------------

def documented_values():
    """{dotted path: comment} of values.yaml: each key under a `# --` comment
    documents itself and everything below it; returns also the leaves no
    comment covers."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented, undocumented, stack = {}, [], []
    comment = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("#"):
            comment.append(s)
            continue
        if not s:
            comment = []
            continue
        m = re.match(r"^( *)([A-Za-z][A-Za-z0-9_]*):(.*)$", line)
        if not m:
            comment = []
            continue  # a list item or a continuation
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k, _ in stack] + [key])
        doc = next((c for c in comment if c.startswith("# --")), None)
        covered = doc is not None or any(d for _, _, d in stack)
        if doc is not None:
            documented[path] = " ".join(c.lstrip("#- ").strip() for c in comment)
        nxt = next((ln for ln in lines[i + 1:] if ln.strip() and not ln.strip().startswith("#")), "")
        leaf = rest != "" or len(nxt) - len(nxt.lstrip()) <= indent
        if leaf and not covered:
            undocumented.append(path)
        stack.append((indent, key, doc is not None or any(d for _, _, d in stack)))
        comment = []
    return documented, undocumented


def test_every_value_is_documented():
    documented, undocumented = documented_values()
    assert not undocumented, f"values without a `# --` comment: {undocumented}"
    assert len(documented) >= 40, sorted(documented)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in documented:
        at = values
        for k in path.split("."):
            at = at[k]
    readme = (tm.MANIFESTS / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Za-z][A-Za-z0-9_.]*)` \|", readme, re.M))
    assert table == set(documented), (sorted(set(documented) - table), sorted(table - set(documented)))


def test_readme_has_the_helm_install_line():
    readme = (tm.MANIFESTS / "README.md").read_text()
    assert "helm install lock-arbiter charts/lock-arbiter" in readme
    assert "kubectl apply -k manifests/overlays/deployment" in readme


# ---- the dashboard --------------------------------------------------------

# Grafana's variables, as the test evaluates them: every job and database.
VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s",
             "$job": ".+", "$database": ".+"}

# Metrics the daemon does not export yet (DESIGN.md section 7, watches): their
# panels say so, and test_dashboard.py requires data from them only once the
# daemon exports them.
# Metrics a panel may show before the daemon exports them (none now: the
# watch panels are held to returning data like every other).
FUTURE = set()


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dash=None):
    out = []
    for p in (dash or dashboard())["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def expressions(dash=None):
    """[(panel title, Grafana expression, expression as Prometheus sees it)]."""
    out = []
    for p in panels(dash):
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in VARIABLES.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"{p['title']}: a variable this test does not know: {expr}"
            out.append((p["title"], t["expr"], expr))
    return out


def test_dashboard_is_well_formed():
    dash = dashboard()
    assert DASHBOARD.read_text() == (CHART / "files" / "dashboard.json").read_text()
    assert dash["uid"] == "lock-arbiter" and dash["title"] and dash["schemaVersion"] >= 36
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "job", "database"], names
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), ids
    for p in panels(dash):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in ("stat", "timeseries", "table"), p["type"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("description"), f"{p['title']}: no description"
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
        future = {m for t in p["targets"] for m in re.findall(r"\block_arbiter_[a-z_]+", t["expr"])} & FUTURE
        if future:
            assert p["description"].startswith("Not exported yet"), p["title"]
    # No two panels overlap.
    cells = set()
    for p in panels(dash):
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))


def test_dashboard_covers_the_metrics():
    """The issue's list: locks held and for how long, verdicts by reason,
    releases, release delay, database and API health, watch state."""
    used = {m for _, _, e in expressions() for m in re.findall(r"\b(?:lock_arbiter|process)_[a-z_]+", e)}
    assert {"lock_arbiter_lock_held", "lock_arbiter_lock_held_seconds", "lock_arbiter_lock_verdict",
            "lock_arbiter_lock_holder_info", "lock_arbiter_locks_released_total",
            "lock_arbiter_orphan_release_delay_seconds_bucket", "lock_arbiter_database_up",
            "lock_arbiter_leader", "lock_arbiter_poll_duration_seconds_bucket",
            "lock_arbiter_kubernetes_up", "lock_arbiter_kubernetes_requests_total",
            "lock_arbiter_kubernetes_request_duration_seconds_bucket",
            "lock_arbiter_release_conflicts_total", "lock_arbiter_events_total",
            "lock_arbiter_kubernetes_watches",
            "lock_arbiter_kubernetes_watch_events_total"} <= used, used
    sources = "".join(p.read_text() for p in (tm.ROOT / "daemon").glob("*.c"))
    for m in used - FUTURE:
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        if base.startswith("lock_arbiter_"):
            assert f'"{base[len("lock_arbiter_"):]}"' in sources, f"{m} is not a metric of the daemon"


def test_dashboard_expressions_pass_promtool(tmp_path):
    promtool = tm.need("promtool", "the dashboard's PromQL")
    exprs = expressions()
    rules = [{"record": f"dashboard:expr_{i}", "expr": e} for i, (_, _, e) in enumerate(exprs)]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = tm.run([promtool, "check", "rules", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules)} rules found" in r.stdout, r.stdout
    # Not vacuous: a broken expression fails.
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [
        {"record": "dashboard:bad", "expr": "sum by (le (rate(x[1m]))"}]}]}))
    assert tm.run([promtool, "check", "rules", str(path)]).returncode != 0


def test_overlay_ships_the_dashboard():
    cms = [o for o in tm.objects("deployment", "ConfigMap")
           if o["metadata"]["name"] == "lock-arbiter-dashboard"]
    assert len(cms) == 1
    assert cms[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cms[0]["data"]["lock-arbiter.json"]) == dashboard()

