#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, then runs the
# demo (scripts/demo.py) with real PostgreSQL and real Liquibase. Pass --exit
# to end after the story instead of keeping the status page up, and --mariadb
# for the same story on a real MariaDB 10.11.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
if [[ " $* " == *" --mariadb "* ]] && ! grep -q LOCK_ARBITER_HAVE_MYSQL build/build.ninja; then
	# A build configured before MariaDB Connector/C was installed lacks the backend.
	meson configure build -Dmysql=enabled >/dev/null
	ninja -C build >/dev/null
fi
exec /usr/bin/python3 scripts/demo.py "$@"
