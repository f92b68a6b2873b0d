"""Real Liquibase 4.28 against a real MariaDB 10.11: the MariaDB side of the
end-to-end harness (harness.py holds the shared parts: Liquibase.locate(),
the pods, LiquibaseRun and the log messages). The benchmark
(bench/side_by_side.py) reuses it.

- E2EMariaDBServer: MariaDBServer (tests/integration/mariadbserver.py) that
  also listens on the pods' bridge address. Its accounts are `…@'%'`, so the
  pods (10.244.N.x) connect as they would in a cluster.
- MariaDBLiquibaseRun: one `liquibase update` of changelog-mariadb/changelog.xml
  (`DO SLEEP(${sleep_seconds})`, then a createTable) through Liquibase's
  bundled MariaDB JDBC driver (3.3.3), as the app account, in a pod; killable
  mid-migration like LiquibaseRun. Or of changelog-mariadb-big/changelog.xml
  (CHANGELOG_DIR_MARIADB_BIG): the same pause, then a long ALTER TABLE and a
  long UPDATE of BIG_TABLE (make_big_table fills it).
- MariaDBWorld: harness.E2E on MariaDB (one database, the simulated API, pods,
  runs, arbiters), plus the server's sessions (information_schema.PROCESSLIST)
  from the pods' addresses, as the session guard reads them, and the grant
  that --terminate-orphaned-sessions needs (grant_connection_admin).

Liquibase's waiting is configurable only in whole units: changelogLockPollRate
in seconds (default 10), changelogLockWaitTimeInMinutes in minutes (default 5;
so 1 minute is the shortest wait that is not "give up at once").
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import (CHANGELOG_FILE, E2E, LiquibaseRun, Unavailable,  # noqa: E402,F401
                     canonical_address)
from mariadbserver import (APP_PASSWORD, APP_USER, ARBITER_USER, LOCK_TABLE,  # noqa: E402
                           MariaDBServer, quote_literal)

CHANGELOG_DIR_MARIADB = os.path.join(HERE, "changelog-mariadb")
CHANGELOG_DIR_MARIADB_BIG = os.path.join(HERE, "changelog-mariadb-big")
BIG_TABLE = "big"  # what changelog-mariadb-big alters (ADD COLUMN BIG_COLUMN) and updates
BIG_COLUMN = "note"
LB_LOCK_FAILED = "Could not acquire change log lock"


class E2EMariaDBServer(MariaDBServer):
    """MariaDBServer that also listens on the bridge address, for the pods."""

    def __init__(self, extra_listen=None, **kw):
        super().__init__(extra_listen=[extra_listen] if extra_listen else [], **kw)


class MariaDBLiquibaseRun(LiquibaseRun):
    """One `liquibase update` of the MariaDB changelog in a pod, as the app
    account; output in logfile. Everything else is LiquibaseRun's."""

    def __init__(self, lb, pod, jdbc_url, logfile, sleep_seconds=0, java_opts=(),
                 lock_poll_rate=1, lock_wait_minutes=2, name="liquibase",
                 username=APP_USER, password=APP_PASSWORD, changelog_dir=CHANGELOG_DIR_MARIADB):
        super().__init__(lb, pod, jdbc_url, logfile, sleep_seconds=sleep_seconds,
                         java_opts=java_opts, lock_poll_rate=lock_poll_rate,
                         lock_wait_minutes=lock_wait_minutes, name=name)
        self.argv = [lb.java] + self.java_opts + [
            "-jar", lb.core_jar, "--show-banner=false", "--log-level=info",
            "--search-path=" + changelog_dir, "--changelog-file=" + CHANGELOG_FILE,
            "--url=" + jdbc_url, "--username=" + username, "--password=" + password,
            "--changelog-lock-poll-rate=%d" % lock_poll_rate,
            "--changelog-lock-wait-time-in-minutes=%d" % lock_wait_minutes,
            "update", "-Dsleep_seconds=%s" % sleep_seconds]


class MariaDBWorld(E2E):
    """harness.E2E on MariaDB: one database, the simulated API, pods, Liquibase
    runs and arbiters (E2E.arbiter passes the server's mariadb:// URL);
    cleanup() ends them. `pg` is the MariaDBServer: E2E reads the lock row
    through its read_lock(db)."""

    def __init__(self, *, lb, maria, sim, net, db, workdir, name="mariadb", results_dir=None):
        super().__init__(lb=lb, pg=maria, sim=sim, net=net, db=db, workdir=workdir,
                         name=name, results_dir=results_dir)
        self.maria = maria
        self._revoke = []

    def jdbc_url(self, pod):
        return self.maria.jdbc_url(self.db, host=pod.db_host)

    def liquibase(self, pod, sleep_seconds=0, java_opts=(), name=None, lock_wait_minutes=2,
                  lock_poll_rate=1, changelog_dir=CHANGELOG_DIR_MARIADB):
        """Starts `liquibase update` of the MariaDB changelog (or changelog_dir's) in pod."""
        name = name or "liquibase-%d" % (len(self.runs) + 1)
        run = MariaDBLiquibaseRun(self.lb, pod, self.jdbc_url(pod),
                                  os.path.join(self.workdir, name + ".log"),
                                  sleep_seconds=sleep_seconds, java_opts=java_opts,
                                  lock_poll_rate=lock_poll_rate,
                                  lock_wait_minutes=lock_wait_minutes, name=name,
                                  changelog_dir=changelog_dir)
        self.runs.append(run)
        return run.start()

    def applied(self):
        """The ids of the changesets Liquibase recorded, in order."""
        return self.maria.sql("SELECT ID FROM DATABASECHANGELOG ORDER BY ORDEREXECUTED",
                              self.db).split()

    def tables(self):
        return self.maria.sql("SHOW TABLES", self.db).split()

    def sessions(self, host_prefix=None, user=APP_USER):
        """Sessions of `user` in this database (PROCESSLIST as root), as dicts;
        host_prefix: only those whose HOST starts with it (an IP then ':')."""
        rows = self.maria.query_json(
            "JSON_OBJECT('ID', ID, 'USER', USER, 'HOST', HOST, 'COMMAND', COMMAND,"
            " 'TIME', TIME, 'INFO', INFO) FROM information_schema.PROCESSLIST"
            " WHERE USER = %s AND DB = %s" % (quote_literal(user), quote_literal(self.db)))
        if host_prefix:
            rows = [r for r in rows if r["HOST"].startswith(host_prefix)]
        return rows

    def end_sessions(self, rows):
        for r in rows:
            self.maria.sql_result("KILL %d" % r["ID"])

    def statements(self, pod, timeout=0):
        """The sessions from pod's address that run a statement (COMMAND not
        Sleep), with STATE, TIME and PROGRESS (MariaDB's, of an ALTER); [] on
        this host, where the server sees 127.0.0.1 for every client. With
        timeout, waits that long for at least one."""
        if pod.kind != "netns":
            return []
        deadline = time.monotonic() + timeout
        while True:
            rows = self.maria.query_json(
                "JSON_OBJECT('ID', ID, 'HOST', HOST, 'COMMAND', COMMAND, 'STATE', STATE,"
                " 'TIME', TIME, 'INFO', INFO, 'PROGRESS', PROGRESS)"
                " FROM information_schema.PROCESSLIST WHERE USER = %s AND DB = %s"
                " AND HOST LIKE %s AND COMMAND <> 'Sleep'"
                % (quote_literal(APP_USER), quote_literal(self.db),
                   quote_literal(pod.ip + ":%")))
            if rows or time.monotonic() >= deadline:
                return rows
            time.sleep(0.05)

    def grant_connection_admin(self):
        """What --terminate-orphaned-sessions needs on MariaDB 10.5+ (KILL
        CONNECTION of another account's session); taken back at cleanup()."""
        self.maria.sql("GRANT CONNECTION ADMIN ON *.* TO %s@'%%'" % quote_literal(ARBITER_USER))
        self._revoke.append("REVOKE CONNECTION ADMIN ON *.* FROM %s@'%%'"
                            % quote_literal(ARBITER_USER))

    def make_big_table(self, rows):
        """BIG_TABLE with `rows` rows: what changelog-mariadb-big alters and updates."""
        self.maria.sql("CREATE TABLE %s (id BIGINT PRIMARY KEY, payload VARCHAR(64) NOT NULL,"
                       " KEY (payload)) ENGINE=InnoDB; INSERT INTO %s SELECT seq, REPEAT('x', 60)"
                       " FROM seq_1_to_%d" % (BIG_TABLE, BIG_TABLE, rows), self.db)

    def newest_connection_ends(self, seconds=0.5):
        """A connection of another client (an application's pool, a probe)
        that opens after every other, stays `seconds`, then ends: the highest
        connection id in the process list goes down again."""
        client = self.maria.client("DO SLEEP(%s)" % seconds, user="root")
        out, err = client.communicate(timeout=30)
        assert client.returncode == 0, err

    def columns(self, table):
        return self.maria.sql("SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                              " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
                              " ORDER BY ORDINAL_POSITION"
                              % (quote_literal(self.db), quote_literal(table))).split()

    def cleanup(self):
        super().cleanup()
        for sql in self._revoke:
            self.maria.sql_result(sql)
        self._revoke = []


__all__ = ["BIG_COLUMN", "BIG_TABLE", "CHANGELOG_DIR_MARIADB", "CHANGELOG_DIR_MARIADB_BIG",
           "E2EMariaDBServer", "LB_LOCK_FAILED", "LOCK_TABLE",
           "MariaDBLiquibaseRun", "MariaDBWorld", "Unavailable", "canonical_address"]
