"""`lock-arbiter check` against a real database: discovery across schemas
(PostgreSQL) or databases (MariaDB), free and held locks, hostile LOCKEDBY,
passwords, exit codes. What reads a lock runs against both backends
(`backend`); MariaDB's URLs and passwords: test_mariadb.py."""
import json

import pytest

from arbiter_proc import DEAD_API, run
from backends import PgDatabase
from conftest import NO_MYSQL, mysql_built

HOSTILE = 'evil\n level=error msg="forged" \x1b[31m\\ "quoted"'


def check(backend, *extra, env=None):
    return run(["check", "--database", backend.dsn(), "--min-lock-age", "0"] + list(extra),
               env=env)


def test_lock_tables_in_several_schemas_and_custom_name(pg, db):
    """PostgreSQL only: schemas within one database. MariaDB's equivalent,
    other databases given with --schema, is the next test."""
    pg.create_lock_table(db, "public")
    pg.create_lock_table(db, "tenant_a")
    pg.create_lock_table(db, "tenant_b")
    pg.create_lock_table(db, "other", "liquibase_lock")
    pg.sql('CREATE TABLE public.databasechangelog (id text)', db)  # not a lock table
    pg.lock(db, "tenant_a", lockedby="orders-7d9f8c6b5-x2x7q (10.244.1.17)")

    out = check(PgDatabase(pg, db), "--json")
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

    out = check(PgDatabase(pg, db), "--json", "--table", "LIQUIBASE_LOCK")
    doc = json.loads(out.stdout)
    assert [(x["schema"], x["table"]) for x in doc["locks"]] == [("other", "liquibase_lock")]

    out = check(PgDatabase(pg, db), "--json", "--schema", "tenant_b", "--schema", "public")
    doc = json.loads(out.stdout)
    assert [x["schema"] for x in doc["locks"]] == ["public", "tenant_b"]


@pytest.mark.skipif(not mysql_built(), reason=NO_MYSQL)
def test_lock_tables_in_other_databases_given_with_schema(maria, mdb):
    """MariaDB: a database plays the role of a schema. The URL's database and
    every --schema are looked at, and only they; a table's name is matched
    without case and shown in the case it was created in (Liquibase's upper
    case DATABASECHANGELOGLOCK beside a lower-case one), in each database's
    own case."""
    other, Mixed, unlisted = mdb + "_other", mdb + "_Tenant", mdb + "_unlisted"
    for d in (other, Mixed, unlisted):
        maria.create_database(d)
    maria.create_lock_table(mdb)
    maria.create_lock_table(other, table="databasechangeloglock")
    maria.create_lock_table(Mixed, table="DatabaseChangeLogLock", form="bit1")
    maria.create_lock_table(unlisted)
    maria.lock(other, lockedby="orders-7d9f8c6b5-x2x7q (10.244.1.17)",
               table="databasechangeloglock")
    maria.lock(unlisted, lockedby="web-0 (10.244.1.18)")

    def tables(*extra):
        out = run(["check", "--json", "--database", maria.dsn(mdb), "--min-lock-age", "0"]
                  + list(extra))
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["databases"][0]["database"] == "127.0.0.1:%d/%s" % (maria.port, mdb)
        return [(x["schema"], x["table"], x["state"], x.get("locked_by")) for x in doc["locks"]]

    assert tables() == [(mdb, "DATABASECHANGELOGLOCK", "free", None)]
    assert tables("--schema", other, "--schema", Mixed) == [
        (mdb, "DATABASECHANGELOGLOCK", "free", None),
        (Mixed, "DatabaseChangeLogLock", "free", None),
        (other, "databasechangeloglock", "held", "orders-7d9f8c6b5-x2x7q (10.244.1.17)")]
    # A database name is exact: another case names another database (on Linux).
    assert tables("--schema", Mixed.lower()) == [(mdb, "DATABASECHANGELOGLOCK", "free", None)]
    assert tables("--schema", other, "--table", "DatabaseChangeLogLock") == [
        (mdb, "DATABASECHANGELOGLOCK", "free", None),
        (other, "databasechangeloglock", "held", "orders-7d9f8c6b5-x2x7q (10.244.1.17)")]
    # The text output names them as they are.
    out = run(["check", "--database", maria.dsn(mdb), "--schema", other, "--min-lock-age", "0"])
    assert "%s.DATABASECHANGELOGLOCK: free" % mdb in out.stdout, out.stdout
    assert "%s.databasechangeloglock: held" % other in out.stdout, out.stdout


def test_text_output_shows_holder_and_times(backend):
    backend.create_lock_table()
    backend.lock(lockedby="payments:payments-api-5f7c9d-abcde",
                 lockgranted="2026-11-24 10:05:02.123")
    out = check(backend, "--kube-api", DEAD_API)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "%s: 1 lock table" % backend.label in text
    assert "%s: held" % backend.where() in text
    assert 'locked by:  "payments:payments-api-5f7c9d-abcde"' in text
    # MariaDB's DATETIME (as Liquibase creates it) keeps whole seconds.
    granted = {"postgresql": "2026-11-24 10:05:02.123000",
               "mariadb": "2026-11-24 10:05:02"}[backend.kind]
    assert "granted:    %s (writer's time zone unknown: not trusted)" % granted in text
    assert "held for:   at least" in text
    assert "holder:     pod payments/payments-api-5f7c9d-abcde" in text
    # The namespace is not a holder namespace (default is "default"): never looked up.
    assert "unresolved" in text

    out = check(backend, "--kube-api", DEAD_API, "--holder-namespace", "payments")
    assert "verdict:    held: Kubernetes API gave no answer for pod payments/payments-api-5f7c9d-abcde" in out.stdout


def test_free_lock(backend):
    backend.create_lock_table()
    out = check(backend)
    assert out.returncode == 0
    assert "%s: free" % backend.where() in out.stdout
    assert "locked by" not in out.stdout


def test_hostile_lockedby_is_escaped(backend):
    backend.create_lock_table()
    backend.lock(lockedby=HOSTILE)
    out = check(backend)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # One line for LOCKEDBY: the newline and the escape byte are escaped, not printed.
    by = [l for l in lines if l.startswith("    locked by:")]
    assert by == ['    locked by:  "evil\\n level=error msg=\\"forged\\" \\x1b[31m\\\\ \\"quoted\\""']
    assert "\x1b" not in out.stdout
    assert not any(l.startswith(" level=error") for l in lines)
    assert "unresolvable" in out.stdout

    doc = json.loads(check(backend, "--json").stdout)
    assert doc["locks"][0]["locked_by"] == HOSTILE
    assert doc["locks"][0]["holder"]["kind"] == "unresolvable"
    assert doc["locks"][0]["verdict"] == "unresolved"


def test_path_traversal_lockedby_is_unresolvable(backend):
    backend.create_lock_table()
    backend.lock(lockedby="default:../../secrets/x")
    doc = json.loads(check(backend, "--json").stdout)
    assert doc["locks"][0]["holder"]["kind"] == "unresolvable"
    assert doc["locks"][0]["reason"] == "unresolved_lockedby"


def test_password_never_shown(pg, db):
    """PostgreSQL's URL (the server trusts every connection and ignores the
    password); MariaDB's, which it checks: test_mariadb.py."""
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


def test_unreachable_database_exits_1(backend):
    backend.create_lock_table()
    bad = {"postgresql": "host=127.0.0.1 port=1 dbname=x user=y",
           "mariadb": "mariadb://y:z@127.0.0.1:1/x"}[backend.kind]
    out = run(["check", "--database", backend.dsn(), "--database", bad])
    assert out.returncode == 1
    assert "127.0.0.1:1/x: unreachable" in out.stdout
    assert "%s: free" % backend.where() in out.stdout


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


def test_database_url(backend):
    backend.create_lock_table()
    backend.lock(lockedby="web-0 (10.0.0.1)")
    out = run(["check", "--json"], env={"DATABASE_URL": backend.dsn()})
    assert out.returncode == 0, out.stderr
    lock = json.loads(out.stdout)["locks"][0]
    assert (lock["database"], lock["state"], lock["locked_by"]) == (
        backend.label, "held", "web-0 (10.0.0.1)")


def test_pg_variables(pg, db):
    """libpq's PG* variables: PostgreSQL only."""
    pg.create_lock_table(db)
    env = dict(pg.env(), PGDATABASE=db)
    out = run(["check", "--json"], env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["databases"][0]["database"] == "127.0.0.1:%d/%s" % (pg.port, db)
