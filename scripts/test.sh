#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit and integration, against a real PostgreSQL that the tests start),
# and ends with a line "N passed, N failed".
#
#   scripts/test.sh [BUILD_DIR] [meson test arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
shift || true
bash scripts/setup.sh "$build" || exit 1

meson test -C "$build" --print-errorlogs "$@"
status=$?
/usr/bin/python3 scripts/summary.py "$build/meson-logs/testlog.json"
exit $status
