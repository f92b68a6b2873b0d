#!/usr/bin/python3
"""Runs a command next to a throwaway PostgreSQL server.

    with_pg.py -- CMD ARGS...

Starts a PgServer, runs CMD with PGHOST, PGPORT, PGUSER and PGDATABASE set
for it and LOCK_ARBITER_TEST_DSN=postgresql://postgres@127.0.0.1:PORT/postgres,
stops the server and exits with CMD's status (128+N when CMD died of signal N).
SIGTERM, SIGINT and SIGHUP are passed on to CMD, and the server is stopped
either way.
"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgserver import PgServer, PgServerError  # noqa: E402


def main(argv):
    if "--" not in argv or argv.index("--") + 1 == len(argv):
        sys.stderr.write("usage: with_pg.py -- CMD [ARGS...]\n")
        return 2
    cmd = argv[argv.index("--") + 1:]
    child = None

    def forward(signum, frame):
        if child is not None and child.poll() is None:
            child.send_signal(signum)
        else:
            raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    try:
        with PgServer() as pg:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            env.update(pg.env())
            env["PGDATABASE"] = "postgres"
            env["LOCK_ARBITER_TEST_DSN"] = pg.dsn("postgres")
            try:
                child = subprocess.Popen(cmd, env=env)
            except OSError as e:
                sys.stderr.write("with_pg.py: %s: %s\n" % (cmd[0], e))
                return 127
            rc = child.wait()
            if rc != 0:
                sys.stderr.write("with_pg.py: %s exited %d; server log tail:\n%s"
                                 % (cmd[0], rc, pg.log_tail(15)))
    except PgServerError as e:
        sys.stderr.write("with_pg.py: %s\n" % e)
        return 1
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
