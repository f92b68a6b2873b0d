"""`lock-arbiter check` against a real PostgreSQL: discovery across schemas,
free and held locks, hostile LOCKEDBY, passwords, exit codes."""
import json

from arbiter_proc import DEAD_API, run

HOSTILE = 'evil\n level=error msg="forged" \x1b[31m\\ "quoted"'


def check(pg, db, *extra, env=None):
    return run(["check", "--database", pg.dsn(db), "--min-lock-age", "0"] + list(extra),
               env=env)


def test_lock_tables_in_several_schemas_and_custom_name(pg, db):
    pg.create_lock_table(db, "public")
    pg.create_lock_table(db, "tenant_a")
    pg.create_lock_table(db, "tenant_b")
    pg.create_lock_table(db, "other", "liquibase_lock")
    pg.sql('CREATE TABLE public.databasechangelog (id text)', db)  # not a lock table
    pg.lock(db, "tenant_a", lockedby="orders-7d9f8c6b5-x2x7q (10.244.1.17)")

    out = check(pg, db, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    tables = [(x["schema"], x["table"], x["state"]) for x in doc["locks"]]
    assert tables == [("public", "databasechangeloglock", "free"),
                      ("tenant_a", "databasechangeloglock", "held"),
                      ("tenant_b", "databasechangeloglock", "free")]
    held = doc["locks"][1]
    assert held["locked_by"] == "orders-7d9f8c6b5-x2x7q (10.244.1.17)"
    assert held["holder"]["kind"] == "host"
    assert held["holder"]["address"] == "10.244.1.17"
    assert held["holder"]["candidates"] == [{"namespace": None,
                                             "pod": "orders-7d9f8c6b5-x2x7q"}]
    assert held["database"] == "127.0.0.1:%d/%s" % (pg.port, db)
    assert doc["databases"][0]["up"] is True

    out = check(pg, db, "--json", "--table", "LIQUIBASE_LOCK")
    doc = json.loads(out.stdout)
    assert [(x["schema"], x["table"]) for x in doc["locks"]] == [("other", "liquibase_lock")]

    out = check(pg, db, "--json", "--schema", "tenant_b", "--schema", "public")
    doc = json.loads(out.stdout)
    assert [x["schema"] for x in doc["locks"]] == ["public", "tenant_b"]


def test_text_output_shows_holder_and_times(pg, db):
    pg.create_lock_table(db)
    pg.lock(db, lockedby="payments:payments-api-5f7c9d-abcde", lockgranted="2026-11-24 10:05:02.123")
    out = check(pg, db, "--kube-api", DEAD_API)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "127.0.0.1:%d/%s: 1 lock table" % (pg.port, db) in text
    assert "public.databasechangeloglock: held" in text
    assert 'locked by:  "payments:payments-api-5f7c9d-abcde"' in text
    assert "granted:    2026-11-24 10:05:02.123000 (writer's time zone unknown: not trusted)" in text
    assert "held for:   at least" in text
    assert "holder:     pod payments/payments-api-5f7c9d-abcde" in text
    # The namespace is not a holder namespace (default is "default"): never looked up.
    assert "unresolved" in text

    out = check(pg, db, "--kube-api", DEAD_API, "--holder-namespace", "payments")
    assert "verdict:    held: Kubernetes API gave no answer for pod payments/payments-api-5f7c9d-abcde" in out.stdout


def test_free_lock(pg, db):
    pg.create_lock_table(db)
    out = check(pg, db)
    assert out.returncode == 0
    assert "public.databasechangeloglock: free" in out.stdout
    assert "locked by" not in out.stdout


def test_hostile_lockedby_is_escaped(pg, db):
    pg.create_lock_table(db)
    pg.lock(db, lockedby=HOSTILE)
    out = check(pg, db)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # One line for LOCKEDBY: the newline and the escape byte are escaped, not printed.
    by = [l for l in lines if l.startswith("    locked by:")]
    assert by == ['    locked by:  "evil\\n level=error msg=\\"forged\\" \\x1b[31m\\\\ \\"quoted\\""']
    assert "\x1b" not in out.stdout
    assert not any(l.startswith(" level=error") for l in lines)
    assert "unresolvable" in out.stdout

    doc = json.loads(check(pg, db, "--json").stdout)
    assert doc["locks"][0]["locked_by"] == HOSTILE
    assert doc["locks"][0]["holder"]["kind"] == "unresolvable"
    assert doc["locks"][0]["verdict"] == "unresolved"


def test_path_traversal_lockedby_is_unresolvable(pg, db):
    pg.create_lock_table(db)
    pg.lock(db, lockedby="default:../../secrets/x")
    doc = json.loads(check(pg, db, "--json").stdout)
    assert doc["locks"][0]["holder"]["kind"] == "unresolvable"
    assert doc["locks"][0]["reason"] == "unresolved_lockedby"


def test_password_never_shown(pg, db):
    pg.create_lock_table(db)
    pg.lock(db, lockedby="web-0 (10.0.0.1)")
    url = "postgresql://postgres:s3cr3t-pw@127.0.0.1:%d/%s" % (pg.port, db)
    for args in (["check", "--database", url], ["check", "--json", "--database", url]):
        out = run(args)
        assert out.returncode == 0, out.stderr
        assert "s3cr3t-pw" not in out.stdout + out.stderr
    # Also when the server cannot be reached and errors are printed.
    bad = "postgresql://postgres:s3cr3t-pw@127.0.0.1:1/%s" % db
    out = run(["check", "--database", bad])
    assert out.returncode == 1
    assert "s3cr3t-pw" not in out.stdout + out.stderr
    assert "127.0.0.1:1/%s: unreachable" % db in out.stdout


def test_unreachable_database_exits_1(pg, db):
    pg.create_lock_table(db)
    out = run(["check", "--database", pg.dsn(db), "--database",
               "host=127.0.0.1 port=1 dbname=x user=y"])
    assert out.returncode == 1
    assert "127.0.0.1:1/x: unreachable" in out.stdout
    assert "public.databasechangeloglock: free" in out.stdout


def test_configuration_errors_exit_2_and_list_everything():
    out = run(["check", "--poll-interval", "fast", "--leader-election", "raft",
               "--log-level", "loud"])
    assert out.returncode == 2
    for needle in ("--poll-interval", "--leader-election", "--log-level", "no database",
                   "4 configuration problems"):
        assert needle in out.stderr
    out = run(["--database", "not a conninfo ===", "check"])
    assert out.returncode == 2
    assert "--database #1" in out.stderr


def test_run_needs_a_kubernetes_api(pg, db):
    out = run(["run", "--database", pg.dsn(db)])
    assert out.returncode == 2
    assert "no Kubernetes API" in out.stderr


def test_help_and_version():
    out = run(["--help"])
    assert out.returncode == 0 and "--lockgranted-timezone" in out.stdout
    out = run(["--version"])
    assert out.returncode == 0 and out.stdout.startswith("lock-arbiter ")


def test_database_url_and_pg_variables(pg, db):
    pg.create_lock_table(db)
    out = run(["check", "--json"], env={"DATABASE_URL": pg.dsn(db)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["locks"][0]["state"] == "free"
    env = dict(pg.env(), PGDATABASE=db)
    out = run(["check", "--json"], env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["databases"][0]["database"] == "127.0.0.1:%d/%s" % (pg.port, db)
