#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, then runs the
# demo (scripts/demo.py) with real PostgreSQL and real Liquibase. Pass --exit
# to end after the story instead of keeping the status page up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
exec /usr/bin/python3 scripts/demo.py "$@"
