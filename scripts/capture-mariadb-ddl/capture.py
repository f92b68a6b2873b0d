#!/usr/bin/python3
"""Captures the DATABASECHANGELOGLOCK that real Liquibase creates on MariaDB,
in each of its three LOCKED column types, into
tests/fixtures/mariadb/lock-tables.json (read by
tests/integration/mariadbserver.py). Run by hand when the fixture needs
renewing; tests never run it and never download anything.

    /usr/bin/python3 scripts/capture-mariadb-ddl/capture.py [--out FILE]

Needs npm (it installs the npm packages liquibase@4.4.0, @4.27.0 into the
cache, beside the 4.28.1 that tests/e2e/install_liquibase.sh installs), Java
17 and mariadb-server. For each form it starts from an empty database named
lbcapture on a throwaway MariaDB (MariaDBServer), asks Liquibase for the SQL
(`update-sql` / `updateSQL`, which prints without executing), keeps the
statements that create and initialise the lock table, then lets Liquibase
create the table for real (`update`) and records SHOW CREATE TABLE and the
column types as the server reports them.

- bit1: npm liquibase@4.4.0 (Liquibase 4.4.0) with the MariaDB JDBC driver
  2.5.3 its npm package ships (dist/drivers). The npm registry has no 4.5 to
  4.26 other than these; 4.4.0 is the newest there with BIT(1), which
  Liquibase kept for MySQL and MariaDB up to 4.23.
- tinyint1: npm liquibase@4.28.1 (its jar says 4.28.0) with its bundled
  MariaDB driver 3.3.3, and npm liquibase@4.27.0, both MariaDBDatabase.
- tinyint: Liquibase 4.28 (the same jar) through its MySQLDatabase dialect:
  MysqlDialectLockTable.java runs Liquibase's own SQL generators and standard
  lock service on the MariaDB connection. This is the TINYINT that Liquibase
  4.25.1 and later create for MySQL, and that 4.25.x created on MariaDB
  before 4.26 gave MariaDB TINYINT(1) back.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from harness import Liquibase, cache_dirs, find_java  # noqa: E402
from mariadbserver import (APP_PASSWORD, APP_USER, CAPTURE_DB, LOCK_TABLE,  # noqa: E402
                           MariaDBServer)

CHANGELOG_DIR = os.path.join(ROOT, "tests", "e2e", "changelog-mariadb")
OUT = os.path.join(ROOT, "tests", "fixtures", "mariadb", "lock-tables.json")
STATEMENT = re.compile(r"^(CREATE TABLE|DELETE FROM|INSERT INTO) %s\.%s\b.*;$"
                       % (CAPTURE_DB, LOCK_TABLE))


def npm_liquibase(version):
    """LIQUIBASE dist directory of npm liquibase@version, installed into the cache."""
    cache = cache_dirs()[0]
    dest = os.path.join(cache, "liquibase-capture-" + version)
    dist = os.path.join(dest, "node_modules", "liquibase", "dist")
    if not os.path.isdir(dist):
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        subprocess.run(["npm", "install", "--prefix", tmp, "liquibase@" + version,
                        "--no-audit", "--no-fund", "--loglevel=error"], check=True,
                       stdout=sys.stderr)
        os.rename(tmp, dest)
    return dist


def run(argv, env, cwd=CHANGELOG_DIR):
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=300, check=False)
    if out.returncode != 0:
        raise SystemExit("failed (%d): %s\n%s%s" % (out.returncode, " ".join(argv),
                                                    out.stdout[-3000:], out.stderr[-3000:]))
    return out.stdout + out.stderr


def statements(text):
    return [line.strip() for line in text.splitlines() if STATEMENT.match(line.strip())]


def liquibase_version(text):
    m = re.search(r"Liquibase Version: (\S+)", text) or re.search(
        r"Starting Liquibase at .*\(version (\S+)", text)
    return m.group(1) if m else None


def server_view(m):
    """What the server holds after the real run."""
    show = m.sql("SHOW CREATE TABLE %s.%s" % (CAPTURE_DB, LOCK_TABLE)).split("\t", 1)[1].strip()
    cols = {}
    for line in m.sql("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS"
                      " WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s' ORDER BY ORDINAL_POSITION"
                      % (CAPTURE_DB, LOCK_TABLE)).splitlines():
        name, ctype, nullable = line.split("\t")
        cols[name] = ctype + ("" if nullable == "YES" else " NOT NULL")
    tables = m.sql("SHOW TABLES", CAPTURE_DB).split()
    row = m.read_lock(CAPTURE_DB)
    return {"show_create_table": show, "columns": cols, "tables_after": tables,
            "row_after": list(row) if row else None}


def fresh(m):
    m.sql("DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (CAPTURE_DB, CAPTURE_DB))


def capture_cli(m, lb_env, argv_base, sql_cmd, update_cmd, jdbc_extra=""):
    url = "--url=" + m.jdbc_url(CAPTURE_DB) + jdbc_extra
    creds = ["--username=" + APP_USER, "--password=" + APP_PASSWORD]
    fresh(m)
    sql_out = run(argv_base + [url] + creds + [sql_cmd], lb_env)
    stmts = statements(sql_out)
    if m.sql("SHOW TABLES", CAPTURE_DB).strip():
        raise SystemExit("%s created tables: it was to print only" % sql_cmd)
    upd_out = run(argv_base + [url] + creds + [update_cmd], lb_env)
    view = server_view(m)
    return liquibase_version(sql_out), stmts, view, upd_out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    java, _, java_text = find_java()
    lb428 = Liquibase.locate()
    forms = {}
    checks = {}
    with MariaDBServer() as m:
        # bit1: Liquibase 4.4.0 (its own launcher: lib/ and liquibase.jar).
        dist = npm_liquibase("4.4.0")
        home = os.path.join(dist, "liquibase")
        driver = os.path.join(dist, "drivers", "mariadb-java-client-2.5.3.jar")
        env = lb428.env()
        env["LIQUIBASE_HOME"] = home
        base = [os.path.join(home, "liquibase"), "--classpath=" + driver, "--log-level=info",
                "--changelog-file=changelog.xml"]
        version, stmts, view, _ = capture_cli(m, env, base, "updateSQL", "update")
        forms["bit1"] = {
            "liquibase": version, "source": "npm liquibase@4.4.0",
            "jdbc_driver": "mariadb-java-client 2.5.3 (dist/drivers of that npm package)",
            "dialect": "MariaDBDatabase",
            "commands": ["liquibase --classpath=DRIVER --changelog-file=changelog.xml "
                         "--url=jdbc:mariadb://127.0.0.1:PORT/lbcapture updateSQL", "... update"],
            "statements": stmts, **view}

        # tinyint1: Liquibase 4.28 (npm 4.28.1), then 4.27.0 as a cross-check.
        for npm_version, key in (("4.28.1", "tinyint1"), ("4.27.0", None)):
            if npm_version == "4.28.1":
                home = lb428.home
            else:
                home = os.path.join(npm_liquibase(npm_version), "liquibase")
            env = lb428.env()
            env["LIQUIBASE_HOME"] = home
            base = [java, "-jar", os.path.join(home, "internal", "lib", "liquibase-core.jar"),
                    "--show-banner=false", "--log-level=info", "--search-path=" + CHANGELOG_DIR,
                    "--changelog-file=changelog.xml"]
            version, stmts, view, _ = capture_cli(m, env, base, "update-sql", "update")
            entry = {"liquibase": version, "source": "npm liquibase@" + npm_version,
                     "jdbc_driver": "mariadb-java-client bundled in internal/lib",
                     "dialect": "MariaDBDatabase",
                     "commands": ["java -jar internal/lib/liquibase-core.jar "
                                  "--changelog-file=changelog.xml "
                                  "--url=jdbc:mariadb://127.0.0.1:PORT/lbcapture update-sql",
                                  "... update"],
                     "statements": stmts, **view}
            if key:
                forms[key] = entry
            else:
                checks["tinyint1_by_" + npm_version] = {
                    "liquibase": version,
                    "same_statements_as_tinyint1": stmts == forms["tinyint1"]["statements"],
                    "same_columns_as_tinyint1": view["columns"] == forms["tinyint1"]["columns"]}

        # tinyint: Liquibase 4.28's MySQLDatabase dialect on the same server.
        fresh(m)
        env = lb428.env()
        out = run([java, "-cp", os.path.join(lb428.home, "internal", "lib", "*"),
                   os.path.join(HERE, "MysqlDialectLockTable.java"), m.jdbc_url(CAPTURE_DB),
                   APP_USER, APP_PASSWORD], env, cwd=HERE)
        stmts = [line[len("SQL: "):] for line in out.splitlines() if line.startswith("SQL: ")]
        forms["tinyint"] = {
            "liquibase": forms["tinyint1"]["liquibase"], "source": "npm liquibase@4.28.1",
            "jdbc_driver": "mariadb-java-client bundled in internal/lib",
            "dialect": "MySQLDatabase",
            "commands": ["java -cp 'internal/lib/*' scripts/capture-mariadb-ddl/"
                         "MysqlDialectLockTable.java jdbc:mariadb://127.0.0.1:PORT/lbcapture"
                         " USER PASSWORD"],
            "statements": stmts, **server_view(m)}
        server = m.version

    doc = {
        "about": "DATABASECHANGELOGLOCK as real Liquibase created it on MariaDB, one entry per"
                 " LOCKED column type; written by scripts/capture-mariadb-ddl/capture.py."
                 " statements: what Liquibase issued to create and initialise the table,"
                 " qualified with the database lbcapture. The other fields: what the server"
                 " showed after Liquibase ran.",
        "captured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "server": server, "java": java_text,
        "not_captured": {
            "4.23.x, 4.24.0, 4.25.1, 4.26.0": "not in the npm registry (npm view liquibase"
            " versions: 4.4.0, then 4.27.0), and no other registry reachable here has them;"
            " the forms they created are covered by 4.4.0 (BIT(1)), 4.27/4.28 on MariaDB"
            " (TINYINT(1)) and 4.28's MySQL dialect (TINYINT), which run the same"
            " generator with the type each version chose"},
        "cross_checks": checks,
        "forms": forms,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    for k, v in forms.items():
        print("%-9s Liquibase %-7s %-16s LOCKED %s" % (k, v["liquibase"], v["dialect"],
                                                       v["columns"]["LOCKED"]))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
