"""What only the MySQL/MariaDB backend has, end to end: the real binary, a
real MariaDB 10.11 (mariadbserver.py, one per module) and the simulated
API. The rules and actions common to both backends run against it in
test_arbiter.py, test_watch.py, test_guard.py and test_check.py; here:

- LOCKED as each type Liquibase has created it (BIT(1), TINYINT(1), TINYINT),
  read as held and released by the compare-and-set (DESIGN.md section 3);
- discovery: databases (the URL's and --schema's) and tables that come and go;
- LOCKEDBY compared as binary in the compare-and-set, under a collation
  that ignores case: a real race, not a constructed statement;
- a row lock or a global read lock held elsewhere delays a release by the
  arbiter's own second, not the server's timeouts;
- the URL: a bad one is a configuration error (exit 2) that never shows
  the password, and the password shows nowhere else either;
- leadership by GET_LOCK, whose names are server-wide: one leader per
  database, also for a database given with --schema; a restart;
- a MariaDB that hangs delays nothing else (test_frozen.py's assertions)."""
import json
import re
import signal
import time
import urllib.parse
import urllib.request

import pytest

from arbiter_proc import run
from backends import MariaDatabase, PgDatabase
from conftest import NO_MYSQL, SIM_NS as NS, mysql_built, reset_sim, sim_arbiter
from freeze_proxy import FreezeProxy
from mariadbserver import (APP_PASSWORD, APP_USER, ARBITER_USER, LOCK_FORMS, quote_ident,
                           quote_literal)
from test_frozen import direct, orphan_released_while_b_hangs, sigterm_while_b_hangs, via

pytestmark = pytest.mark.skipif(not mysql_built(), reason=NO_MYSQL)


@pytest.fixture(autouse=True)
def clean_sim(sim):
    reset_sim(sim)


@pytest.fixture
def md(maria, mdb):
    """A new MariaDB database (backends.MariaDatabase)."""
    return MariaDatabase(maria, mdb)


def arbiter(database, sim, *extra, dsn=None, name="arbiter"):
    return sim_arbiter([dsn or database.dsn()], sim, *extra, name=name)


def get(a, path):
    port = a.wait_for("http listening")["port"]
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=5) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:  # /readyz answers 503 when not ready
        return e.read().decode()


# -- LOCKED as each Liquibase version created it -----------------------------------

@pytest.mark.parametrize("form", LOCK_FORMS)
def test_each_locked_form_is_held_then_released_by_the_compare_and_set(maria, md, sim, form):
    md.create_lock_table(form=form)
    column = maria.column_type(md.name)
    sim.create_pod("orders-60", NS, containers=["app"])
    with arbiter(md, sim) as a:
        a.wait_for("lock table found", table="DATABASECHANGELOGLOCK")
        time.sleep(0.3)  # polls that read the row free (LOCKED 0)
        assert a.count("lock held") == 0
        assert md.lock(lockedby="%s:orders-60" % NS)
        a.wait_for("lock held", lockedby="%s:orders-60" % NS)
        a.wait_for("verdict", verdict="held")
        sim.delete_pod(NS, "orders-60")
        rec = a.wait_for("lock released", timeout=10)
        assert rec["rule"] == "O1_pod_deleted", rec
        # Released as Liquibase releases: LOCKED 0 in the column's own type.
        assert md.read_lock() == (False, None, None)
        assert maria.column_type(md.name) == column
        a.wait_for("lock freed")
    # Liquibase takes it again: its `WHERE LOCKED = 0` matches what was written.
    assert md.lock(lockedby="%s:orders-61" % NS)


# -- discovery ------------------------------------------------------------------------

def test_lock_tables_come_and_go_within_a_poll(maria, md, sim):
    """The catalogue's signature rides on every poll: a lock table created,
    renamed or dropped, in the URL's database or in a --schema database
    that did not exist at the start, is followed within a poll, without
    the database ever said down; an orphan in the last one is released.
    The arbiter's account is granted the databases, not tables that do not
    exist yet (without any privilege in the URL's database, it cannot even
    connect: "Access denied ... to database")."""
    other = md.name + "_t"
    for d in (md.name, other):
        maria.sql("GRANT SELECT, UPDATE ON %s.* TO %s@'%%'"
                  % (quote_ident(d), quote_literal(ARBITER_USER)))

    def app(sql, db):
        maria.sql(sql, db, user=APP_USER)

    with arbiter(md, sim, "--schema", other) as a:
        a.wait_for("no lock table found")
        md.create_lock_table()
        a.wait_for("lock table found", schema=md.name, timeout=2)
        maria.create_database(other)
        md.create_lock_table(schema=other, table="databasechangeloglock")
        a.wait_for("lock table found", schema=other, table="databasechangeloglock", timeout=2)
        app("RENAME TABLE databasechangeloglock TO dcl_old", other)
        a.wait_for("lock table gone", schema=other, timeout=2)
        app("DROP TABLE DATABASECHANGELOGLOCK", md.name)
        a.wait_for("lock table gone", schema=md.name, timeout=2)
        md.create_lock_table(schema=other, form="bit1")
        md.lock(schema=other, lockedby="%s:gone-69" % NS)
        assert a.wait_for("lock released", schema=other, table="DATABASECHANGELOGLOCK",
                          timeout=5)["rule"] == "O1_pod_deleted"
        assert not md.locked(schema=other)
        app("DROP DATABASE %s" % quote_ident(other), None)
        a.wait_for("lock table gone", schema=other, timeout=2)
        time.sleep(0.3)
        assert a.proc.poll() is None
        assert a.count("database down") == 0, a.log_text()


# -- LOCKEDBY compared as binary ---------------------------------------------------

def test_lockedby_differing_only_in_case_is_not_released_before_it_is_read(maria, md, sim):
    """The arbiter reads `shop:orders-62` and judges it held. Then the row
    becomes `shop:Orders-62` with the same LOCKGRANTED (a DATETIME of whole
    seconds, so a new holder within the second writes the same), and the pod
    dies: its DELETED event judges the lock as last read, orphaned (O1). The
    table's collation (utf8mb4_general_ci) calls the two LOCKEDBY equal, so
    a plain comparison would release a row the arbiter never read; the
    compare-and-set compares them as binary and finds that the lock moved
    on. The next poll reads the row as it is: a LOCKEDBY that names no pod
    (pod names are lower case), kept."""
    md.create_lock_table()
    sim.create_pod("orders-62", NS, containers=["app"])
    md.lock(lockedby="%s:orders-62" % NS)
    granted = md.read_lock()[2]
    # A long poll interval: the event, not a poll, decides in between.
    with arbiter(md, sim, "--poll-interval", "5s") as a:
        a.wait_for("verdict", verdict="held")
        assert sim.wait_watches(1, timeout=5)
        mark = a.mark()
        md.set_lockedby("%s:Orders-62" % NS)
        assert md.read_lock() == (True, "%s:Orders-62" % NS, granted)
        assert md.sql("SELECT COUNT(*) FROM %s WHERE LOCKEDBY = %s" % (
            quote_ident(md.table), quote_literal("%s:orders-62" % NS))).strip() == "1"
        sim.delete_pod(NS, "orders-62")
        skipped = a.wait_for("release skipped: the lock moved on", timeout=4, start=mark)
        assert md.read_lock() == (True, "%s:Orders-62" % NS, granted)
        # Only after it: the row as it is now, read by the next poll.
        seen = a.wait_for("lock held", timeout=8, start=mark, lockedby="%s:Orders-62" % NS)
        assert a.records.index(skipped) < a.records.index(seen)
        a.wait_for("verdict", start=mark, reason="unresolved_lockedby")
        time.sleep(0.5)
        assert md.locked() and a.count("lock released") == 0
        assert re.search(r"^lock_arbiter_release_conflicts_total\{[^}]*\} 1$",
                         get(a, "/metrics"), re.M)


# -- a row lock held elsewhere -------------------------------------------------------

BLOCKERS = {
    # A transaction left open on the lock row (a DBA's UPDATE, a SELECT ...
    # FOR UPDATE): InnoDB's row lock, innodb_lock_wait_timeout (50 s).
    "row-lock": "BEGIN; SELECT ID FROM %s WHERE ID = 1 FOR UPDATE; %s; COMMIT",
    # A backup's FLUSH TABLES WITH READ LOCK: every write waits for the
    # global read lock, lock_wait_timeout (a year).
    "global-read-lock": "FLUSH TABLES WITH READ LOCK; %.0s%s; UNLOCK TABLES",
}


@pytest.mark.parametrize("blocker", BLOCKERS)
def test_a_lock_held_elsewhere_delays_the_release_by_a_second_at_most(maria, md, sim, blocker):
    """Something else holds what the compare-and-set must wait for. The
    server would let it wait far longer than the arbiter's own deadline;
    the arbiter's session waits a second: the release fails (logged once)
    and is tried again, on the same connection (its named lock, and so its
    leadership, kept), and happens once the other session lets go."""
    md.create_lock_table()
    sim.create_pod("orders-66", NS, containers=["app"])
    md.lock(lockedby="%s:orders-66" % NS)
    wait = "SELECT SLEEP(60) /* %s */" % blocker
    with arbiter(md, sim) as a:
        a.wait_for("verdict", verdict="held")
        mark = a.mark()
        other = maria.client(BLOCKERS[blocker] % (quote_ident(md.table), wait), dbname=md.name)
        try:
            deadline = time.monotonic() + 10
            while not maria.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = %s"
                                % quote_literal(wait)).strip():
                assert time.monotonic() < deadline and other.poll() is None, other.poll()
                time.sleep(0.05)
            ident = int(maria.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = %s"
                                  % quote_literal(wait)))
            t0 = time.monotonic()
            sim.delete_pod(NS, "orders-66")
            rec = a.wait_for("release failed", timeout=10, start=mark)
            assert "Lock wait timeout" in rec["error"], rec
            assert time.monotonic() - t0 < 3, rec
            time.sleep(1.5)
            assert md.locked() and a.count("lock released") == 0
        finally:
            other.kill()
            other.wait()
        maria.sql("KILL CONNECTION %d" % ident)  # its transaction or read lock ends
        assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
        assert not md.locked()
        assert a.count("release failed") == 1
        after = a.records[mark:]
        assert not [r for r in after if r.get("msg") in (
            "leadership lost", "orphaned; another arbiter is the leader")], a.log_text()


# -- the URL and its password --------------------------------------------------------

PASSWORD = "s3cr3t-Pw"

BAD_URLS = [
    ("unknown-option", "mariadb://app:%s@127.0.0.1:3306/db?sslmode=require",
     'unknown option "sslmode"'),
    ("password-as-option", "mysql://app@127.0.0.1:3306/db?password=%s",
     'unknown option "password"'),
    ("option-without-value", "mariadb://app:%s@127.0.0.1/db?ssl-ca", "without a value"),
    ("bad-ssl-mode", "mariadb://app:%s@127.0.0.1/db?ssl-mode=sometimes", "ssl-mode must be"),
    ("port-too-large", "mariadb://app:%s@127.0.0.1:65536/db", "port must be a number"),
    ("port-not-a-number", "mysql://app:%s@127.0.0.1:33o6/db", "port must be a number"),
    ("port-zero", "mysql://app:%s@127.0.0.1:0/db", "port must be a number"),
    ("port-empty", "mariadb://app:%s@127.0.0.1:/db", "bad port"),
    ("no-database", "mariadb://app:%s@127.0.0.1:3306", "no database"),
    ("empty-database", "mariadb://app:%s@127.0.0.1:3306/", "no database"),
    ("database-with-slash", "mariadb://app:%s@127.0.0.1:3306/a/b", "no database"),
    ("no-host", "mariadb://app:%s@:3306/db", "no host"),
    ("bad-escape", "mariadb://app:%s%%zz@127.0.0.1/db", "bad percent escape"),
]


@pytest.mark.parametrize("url,why", [pytest.param(u % PASSWORD, w, id=i)
                                     for i, u, w in BAD_URLS])
def test_bad_url_exits_2_with_a_clear_error_and_no_password(url, why):
    for command in ("check", "run", "once"):
        out = run([command, "--database", url, "--kube-api", "http://127.0.0.1:9"])
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert "--database #1: mysql URL: " in out.stderr and why in out.stderr, out.stderr
        assert PASSWORD not in out.stdout + out.stderr, out.stderr


def test_password_never_shown(maria, md, sim):
    """An account whose password has every character a URL must escape:
    it connects (the URL's decoding is right), and its password, raw or
    escaped, is in no log line, page or output, nor in the errors of a
    wrong password or an unreachable server."""
    secret = "p@ss:w/rd%?#&=Secret-42"
    escaped = urllib.parse.quote(secret, safe="")
    maria.sql("CREATE USER 'pw_user'@'%%' IDENTIFIED BY %s; GRANT PROCESS ON *.* TO"
              " 'pw_user'@'%%'" % quote_literal(secret))
    md.create_lock_table()
    maria.sql("GRANT SELECT, UPDATE ON %s.%s TO 'pw_user'@'%%'"
              % (quote_ident(md.name), quote_ident(md.table)))
    url = md.dsn(user="pw_user", password=secret)
    assert escaped in url
    shown = []
    for fmt in ("logfmt", "json"):
        sim.create_pod("orders-63", NS, containers=["app"])
        md.lock(lockedby="%s:orders-63" % NS)
        with arbiter(md, sim, "--log-format", fmt, "--log-level", "debug", dsn=url) as a:
            a.wait_for("database up")
            a.wait_for("verdict", verdict="held")
            shown += [get(a, path) for path in ("/metrics", "/locks", "/", "/readyz")]
            sim.delete_pod(NS, "orders-63")
            a.wait_for("lock released")
            shown += [get(a, path) for path in ("/metrics", "/locks", "/")]
            assert a.stop() == 0
            shown.append(a.log_text())
        assert not md.locked()
    shown.append(json.dumps(sim.events()))
    md.lock(lockedby="%s:orders-64" % NS)
    for args in (["check"], ["check", "--json"]):
        out = run(args + ["--database", url, "--min-lock-age", "0"])
        assert out.returncode == 0, out.stderr
        assert "held" in out.stdout
        shown += [out.stdout, out.stderr]
    # Errors: a wrong password, a server that is not there.
    wrong = md.dsn(user="pw_user", password=secret + "x")
    gone = md.dsn(user="pw_user", password=secret, port=1)
    for bad in (wrong, gone):
        out = run(["check", "--database", bad])
        assert out.returncode == 1, out.stdout + out.stderr
        assert "unreachable" in out.stdout, out.stdout
        shown += [out.stdout, out.stderr]
    assert "Access denied" in "".join(shown)
    text = "\n".join(shown)
    for s in (secret, escaped, "Secret-42"):
        assert s not in text, s


# -- leadership: GET_LOCK -------------------------------------------------------------

def leader_metric(a, database):
    m = re.search(r'^lock_arbiter_leader\{database="%s"\} (\d)$' % re.escape(database.label),
                  get(a, "/metrics"), re.M)
    return int(m.group(1)) if m else None


def test_two_arbiters_one_leader_and_the_other_takes_over(maria, md, sim):
    md.create_lock_table()
    sim.create_pod("orders-65", NS, containers=["app"])
    md.lock(lockedby="%s:orders-65" % NS)
    # The leader polls slowly, so the follower sees the orphan before it is gone.
    with arbiter(md, sim, "--poll-interval", "2s", name="first") as a:
        a.wait_for("leadership acquired")
        # The named lock is held by the leader's connection; its name carries the database.
        assert maria.sql("SELECT IS_USED_LOCK(%s) IS NOT NULL" % quote_literal(
            "lock-arbiter/" + md.name)).strip() == "1"
        with arbiter(md, sim, name="second") as b:
            b.wait_for("verdict", verdict="held")
            time.sleep(0.5)  # polls enough to have tried GET_LOCK
            assert b.count("leadership acquired") == 0 and leader_metric(b, md) == 0
            sim.delete_pod(NS, "orders-65")
            b.wait_for("orphaned; another arbiter is the leader")
            assert a.wait_for("lock released", timeout=10)["rule"] == "O1_pod_deleted"
            time.sleep(0.3)
            assert b.count("lock released") == 0 and not md.locked()

            # The leader is killed: the server ends its connection and with it
            # the named lock; the follower takes over at its next poll.
            a.stop(signal.SIGKILL)
            b.wait_for("leadership acquired", timeout=10)
            assert leader_metric(b, md) == 1
            mark = b.mark()
            md.lock(lockedby="%s:gone-65" % NS)
            rec = b.wait_for("lock released", timeout=10, start=mark)
            assert rec["rule"] == "O1_pod_deleted"
            assert not md.locked()


def test_one_leader_for_a_database_also_given_with_schema(maria, md, sim):
    """On MySQL --schema names another database, which the arbiter acts in
    too: an arbiter whose URL names A, with --schema B, and one whose URL
    names B must not both lead B. Both watch B's holder; at its death
    exactly one releases and the other reports that another arbiter leads
    (not a lost compare-and-set: two actors on one database)."""
    b_db = md.another("_s")
    for d in (md, b_db):
        d.create_lock_table()
    sim.create_pod("orders-70", NS, containers=["app"])
    b_db.lock(lockedby="%s:orders-70" % NS)
    with arbiter(md, sim, "--schema", b_db.name, name="a") as a, \
            arbiter(b_db, sim, name="b") as b:
        for x in (a, b):
            x.wait_for("verdict", verdict="held", schema=b_db.name)
        assert sim.wait_watches(2, timeout=5)
        sim.delete_pod(NS, "orders-70")
        deadline = time.monotonic() + 10
        while a.count("lock released") + b.count("lock released") == 0:
            assert time.monotonic() < deadline, a.log_text() + "\n" + b.log_text()
            time.sleep(0.1)
        time.sleep(1)
        winner, loser = (a, b) if a.count("lock released") else (b, a)
        assert not b_db.locked()
        assert loser.count("lock released") == 0
        assert loser.count("release skipped: the lock moved on") == 0, (
            "two arbiters acted on %s:\n%s" % (b_db.name, loser.log_text()))
        assert loser.count("orphaned; another arbiter is the leader") >= 1, loser.log_text()


def test_leader_election_none_takes_no_named_lock(maria, md, sim):
    """--leader-election none (behind a proxy that pools statements): every
    arbiter acts, and none holds a GET_LOCK."""
    md.create_lock_table()
    md.lock(lockedby="%s:gone-67" % NS)
    with arbiter(md, sim, "--leader-election", "none", "--dry-run", name="a") as a, \
            arbiter(md, sim, "--leader-election", "none", "--dry-run", name="b") as b:
        for x in (a, b):
            assert x.wait_for("would release (dry run)")["rule"] == "O1_pod_deleted"
        assert a.count("leadership acquired") == 0 and b.count("leadership acquired") == 0
        assert maria.sql("SELECT IS_USED_LOCK(%s) IS NULL" % quote_literal(
            "lock-arbiter/" + md.name)).strip() == "1"


def test_survives_a_mariadb_restart_and_releases_what_died_meanwhile(maria, md, sim):
    """The server stops while a lock is held (a clean shutdown: the harness
    trades durability for speed, so a crash could lose the lock's row), and
    the holder dies while it is down. The arbiter reconnects, takes its
    named lock again (the server forgot it), and releases."""
    md.create_lock_table()
    sim.create_pod("orders-68", NS, containers=["app"])
    md.lock(lockedby="%s:orders-68" % NS)
    with arbiter(md, sim) as a:
        a.wait_for("verdict", verdict="held")
        mark = a.mark()
        maria.stop("fast")
        a.wait_for("database down", start=mark)
        sim.delete_pod(NS, "orders-68")
        time.sleep(1.0)
        assert a.count("lock released") == 0
        maria.start()
        a.wait_for("database up", start=mark, timeout=30)
        a.wait_for("leadership acquired", start=mark, timeout=10)
        assert a.wait_for("lock released", start=mark)["rule"] == "O1_pod_deleted"
        assert not md.locked()


def test_leadership_is_per_database_even_past_64_characters(maria, sim):
    """GET_LOCK names are server-wide and at most 64 characters: arbiters of
    two databases whose long names share a prefix lead each their own, and
    two of one database still exclude each other."""
    one, two = (MariaDatabase.create(maria, "l" * 56 + suffix) for suffix in ("_one", "_two"))
    for d in (one, two):
        d.create_lock_table()
    with arbiter(one, sim, name="one") as a, arbiter(two, sim, name="two") as b:
        a.wait_for("leadership acquired")
        b.wait_for("leadership acquired")
        with arbiter(one, sim, name="three") as c:
            c.wait_for("database up")
            time.sleep(0.5)
            assert c.count("leadership acquired") == 0 and leader_metric(c, one) == 0


# -- a MariaDB that hangs delays nothing else ----------------------------------------

@pytest.fixture
def frozen_pair(pg, db, md):
    """(A, B, proxy): A a PostgreSQL database reached directly, B a MariaDB
    database behind a FreezeProxy; a lock table in each."""
    a = PgDatabase(pg, db)
    for d in (a, md):
        d.create_lock_table()
    with FreezeProxy(md.port) as proxy:
        yield direct(a), via(proxy, md), proxy


def test_orphan_is_released_while_a_mariadb_hangs(sim, frozen_pair):
    orphan_released_while_b_hangs(sim, *frozen_pair)


@pytest.mark.parametrize("stuck_in", ["query", "connect"])
def test_sigterm_while_a_mariadb_hangs_exits_0_within_2s(sim, frozen_pair, stuck_in):
    sigterm_while_b_hangs(sim, *frozen_pair, stuck_in)


# -- an open transaction between statements --------------------------------------

def test_open_transaction_between_statements_keeps_the_lock(maria, md, sim):
    """Between statements a MariaDB session is COMMAND Sleep whether or not
    it has a transaction open. With one open (an UPDATE not committed) the
    dead holder's client, if it still runs somewhere, may yet commit: the
    guard reads InnoDB's transactions and keeps the lock, as PostgreSQL's
    "idle in transaction" does; the rollback lets the release go on."""
    import pymysql

    md.create_lock_table()
    maria.sql("CREATE TABLE %s.orders (id INT PRIMARY KEY, n INT)" % quote_ident(md.name))
    maria.sql("INSERT INTO %s.orders VALUES (1, 0)" % quote_ident(md.name))
    maria.sql("GRANT SELECT, UPDATE ON %s.orders TO %s@'%%'"
              % (quote_ident(md.name), quote_literal(APP_USER)))
    sim.create_pod("migrate-71", NS, containers=["app"], podIP="127.0.0.71")
    md.lock(lockedby="%s:migrate-71" % NS)
    with arbiter(md, sim) as a:
        a.wait_for("verdict", verdict="held")
        c = pymysql.connect(host=maria.host, port=maria.port, user=APP_USER,
                            password=APP_PASSWORD, database=md.name,
                            bind_address="127.0.0.71", autocommit=False)
        try:
            with c.cursor() as cur:
                cur.execute("UPDATE orders SET n = n + 1 WHERE id = 1")
            time.sleep(1.5)  # begun well before the death
            mark = a.mark()
            sim.delete_pod(NS, "migrate-71")
            rec = a.wait_for("verdict", reason="held_session_alive", start=mark)
            assert "idle in transaction" in rec["explanation"], rec
            time.sleep(1.0)
            assert md.locked()
            c.rollback()
            assert a.wait_for("lock released", start=mark, timeout=10)["rule"] == "O1_pod_deleted"
        finally:
            c.close()
