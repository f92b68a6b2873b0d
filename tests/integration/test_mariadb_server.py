"""The MariaDB harness (mariadbserver.py) proved against the real server: it
starts, the arbiter's account has exactly what the MariaDB backend needs, the
lock tables are those real Liquibase created (tests/fixtures/mariadb), and the
session guard's view (information_schema.PROCESSLIST) works as the backend
will use it. Fixtures maria (one server per module) and mdb: conftest.py."""
import re
import signal
import time

import pytest

from mariadbserver import (APP_USER, ARBITER_USER, LOCK_FORMS, LOCK_TABLE, lock_table_fixture,
                           quote_ident, quote_literal)


def as_arbiter(maria, sql, db, **kw):
    return maria.sql(sql, db, user=ARBITER_USER, **kw)


def test_server_starts_on_loopback_port_and_own_socket(maria):
    assert maria.version.startswith("10.11."), maria.version
    assert maria.sql("SELECT @@port, @@socket, @@skip_name_resolve").split() == [
        str(maria.port), maria.socket, "1"]
    assert maria.socket.startswith(maria.topdir)
    # TCP as the arbiter's account.
    assert as_arbiter(maria, "SELECT CURRENT_USER()", None).strip() == ARBITER_USER + "@%"


def test_arbiter_account_has_only_what_it_needs(maria, mdb):
    maria.create_lock_table(mdb)
    maria.sql("CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255)); CREATE TABLE orders (id INT)",
              mdb, user=APP_USER)
    grants = as_arbiter(maria, "SHOW GRANTS", None)
    assert re.search(r"GRANT PROCESS ON \*\.\* TO `lock_arbiter`@`%`", grants), grants
    assert ("GRANT SELECT, UPDATE ON `%s`.`%s` TO `lock_arbiter`@`%%`" % (mdb, LOCK_TABLE)
            in grants), grants
    assert len(grants.strip().splitlines()) == 2, grants

    # It finds the lock table, and only it, through information_schema.
    assert as_arbiter(maria, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
                      " WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema')",
                      None).split() == [
        mdb, LOCK_TABLE]
    # It reads and updates the row ...
    assert maria.lock(mdb, lockedby="web-0 (10.244.1.17)")
    assert maria.read_lock(mdb, user=ARBITER_USER)[:2] == (True, "web-0 (10.244.1.17)")
    as_arbiter(maria, "UPDATE %s SET `LOCKED` = 0, LOCKGRANTED = NULL, LOCKEDBY = NULL"
               " WHERE ID = 1 AND `LOCKED` <> 0" % LOCK_TABLE, mdb)
    assert maria.read_lock(mdb) == (False, None, None)
    # ... takes a server-wide named lock (GET_LOCK needs no privilege) ...
    assert as_arbiter(maria, "SELECT GET_LOCK(%s, 0)"
                      % quote_literal("lock-arbiter:" + mdb), mdb).strip() == "1"
    # ... and nothing else.
    for sql in ("SELECT * FROM DATABASECHANGELOG", "SELECT * FROM orders",
                "DELETE FROM %s" % LOCK_TABLE, "INSERT INTO %s (ID, `LOCKED`) VALUES (2, 0)"
                % LOCK_TABLE, "CREATE TABLE x (i INT)", "DROP TABLE %s" % LOCK_TABLE):
        rc, _, err = maria.sql_result(sql, mdb, user=ARBITER_USER)
        assert rc != 0 and re.search(r"ERROR 1(142|044)", err), (sql, rc, err)


def test_arbiter_cannot_end_other_sessions(maria, mdb):
    app = maria.client("SELECT SLEEP(20)", dbname=mdb)
    try:
        ident = wait_session(maria, "SELECT SLEEP(20)")["ID"]
        rc, _, err = maria.sql_result("KILL %d" % ident, user=ARBITER_USER)
        assert rc != 0 and "ERROR 1095" in err, err  # "You are not owner of thread"
    finally:
        app.kill()
        maria.sql("KILL %d" % ident)


@pytest.mark.parametrize("form", LOCK_FORMS)
def test_lock_table_forms_as_liquibase_created_them(maria, mdb, form):
    captured = lock_table_fixture()[form]
    maria.create_lock_table(mdb, form=form)
    show = maria.sql("SHOW CREATE TABLE %s" % LOCK_TABLE, mdb).split("\t", 1)[1].strip()
    assert show == captured["show_create_table"]
    assert maria.column_type(mdb) == captured["columns"]["LOCKED"].replace(" NOT NULL", "")
    assert maria.column_type(mdb) == {"bit1": "bit(1)", "tinyint1": "tinyint(1)",
                                      "tinyint": "tinyint(4)"}[form]
    assert maria.column_type(mdb, "LOCKGRANTED") == "datetime"
    # Free as created; `LOCKED <> 0` reads each form, as the arbiter would.
    assert maria.read_lock(mdb, user=ARBITER_USER) == (False, None, None)
    assert maria.lock(mdb, lockedby="web-0 (10.244.1.17)")
    assert not maria.lock(mdb, lockedby="web-1 (10.244.1.18)")  # held: Liquibase's CAS fails
    locked, lockedby, granted = maria.read_lock(mdb, user=ARBITER_USER)
    assert (locked, lockedby) == (True, "web-0 (10.244.1.17)")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.0{6}", granted), granted
    assert as_arbiter(maria, "SELECT COUNT(*) FROM %s WHERE `LOCKED` <> 0" % LOCK_TABLE,
                      mdb).strip() == "1"


@pytest.mark.parametrize("form", LOCK_FORMS)
def test_compare_and_set_release_compares_lockedby_as_binary(maria, mdb, form):
    """The default collation is case-insensitive: only BINARY tells
    'web-0' from 'WEB-0'. Writing 0 releases every form."""
    maria.create_lock_table(mdb, form=form)
    assert maria.lock(mdb, lockedby="web-0 (10.244.1.17)")
    cas = ("UPDATE %s SET `LOCKED` = 0, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1"
           " AND `LOCKED` <> 0 AND LOCKEDBY = %s%s; SELECT ROW_COUNT()")
    # A plain comparison matches another case: the trap.
    assert as_arbiter(maria, "SELECT COUNT(*) FROM %s WHERE LOCKEDBY = 'WEB-0 (10.244.1.17)'"
                      % LOCK_TABLE, mdb).strip() == "1"
    assert as_arbiter(maria, cas % (LOCK_TABLE, "BINARY ", quote_literal("WEB-0 (10.244.1.17)")),
                      mdb).strip() == "0"
    assert maria.read_lock(mdb)[0] is True
    assert as_arbiter(maria, cas % (LOCK_TABLE, "BINARY ", quote_literal("web-0 (10.244.1.17)")),
                      mdb).strip() == "1"
    assert maria.read_lock(mdb) == (False, None, None)
    # Liquibase takes it again afterwards (its `LOCKED = 0` test sees the 0 written).
    assert maria.lock(mdb, lockedby="web-1 (10.244.1.18)")


def processlist(maria, user=ARBITER_USER):
    rows = maria.query_json(
        "JSON_OBJECT('ID', ID, 'USER', USER, 'HOST', HOST, 'DB', DB, 'COMMAND', COMMAND,"
        " 'TIME', TIME, 'INFO', INFO) FROM information_schema.PROCESSLIST", user=user)
    return rows


def wait_session(maria, info, user="root", timeout=10, gone=False):
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in processlist(maria, user) if r["INFO"] == info]
        if (not rows) == gone:
            return rows[0] if rows else None
        assert time.monotonic() < deadline, "session %r %s" % (
            info, "still there" if gone else "not seen")
        time.sleep(0.05)


def test_arbiter_sees_other_accounts_sessions_with_ip_and_port(maria, mdb):
    sql = "SELECT SLEEP(30) /* holder */"
    app = maria.client(sql, dbname=mdb, bind="127.0.0.5")
    ident = None
    try:
        row = wait_session(maria, sql, user=ARBITER_USER)
        ident = row["ID"]
        assert row["USER"] == APP_USER and row["DB"] == mdb and row["COMMAND"] == "Query", row
        m = re.fullmatch(r"127\.0\.0\.5:(\d+)", row["HOST"])
        assert m and 0 < int(m.group(1)) < 65536, row

        # Without PROCESS an account sees its own sessions only.
        maria.sql("CREATE USER IF NOT EXISTS 'blind'@'%' IDENTIFIED BY 'blind';"
                  " GRANT SELECT ON " + quote_ident(mdb) + ".* TO 'blind'@'%'")
        out = maria.sql("SELECT USER FROM information_schema.PROCESSLIST", user="blind",
                        password="blind")
        assert set(out.split()) == {"blind"}, out

        # A killed client's session outlives it, still running its statement:
        # what the session guard is for.
        app.send_signal(signal.SIGKILL)
        app.wait(5)
        time.sleep(0.5)
        row = wait_session(maria, sql, user=ARBITER_USER)
        assert row["ID"] == ident and row["COMMAND"] == "Query", row
    finally:
        if app.poll() is None:
            app.kill()
        if ident is not None:
            maria.sql_result("KILL %d" % ident)
    wait_session(maria, sql, gone=True)
