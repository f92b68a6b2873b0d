#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit and integration, against a real PostgreSQL that the tests start),
# and ends with a line "N passed, N failed, N skipped" that counts test
# cases (cmocka and pytest cases inside meson's tests included) and lists
# every skip with its reason. With CI=true a skip fails the run.
#
#   scripts/test.sh [BUILD_DIR] [meson test arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
shift || true
bash scripts/setup.sh "$build" || exit 1

# -rs: pytest prints the reason of every skip, which the summary repeats.
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -rs"
meson test -C "$build" --print-errorlogs "$@"
status=$?
/usr/bin/python3 scripts/summary.py "$build/meson-logs/testlog.json" || status=1
exit $status
