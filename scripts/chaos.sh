#!/usr/bin/env bash
# The randomized chaos simulation (tests/chaos/chaos.py) at any size:
# builds the daemon if needed, then runs N episodes from seed S against the
# real binary, a real PostgreSQL (--backend mariadb: a real MariaDB; mixed:
# both at once) and the simulated Kubernetes API, and prints the summary
# (episodes, releases, false releases, missed releases, release delay
# distribution, the session guard's figures, arbiter exits, seed). A failure
# prints the seed, the history file and the command that replays it.
#
#   scripts/chaos.sh [--episodes N] [--seed S] [--replay FILE] [chaos.py options]
#   scripts/chaos.sh --episodes 800 --seed 7 --terminate-orphaned-sessions on
#   scripts/chaos.sh --backend mariadb --episodes 600 --seed 7
#   BUILD_DIR=build-chaos scripts/chaos.sh --episodes 5000 --seed 42
set -uo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
if [ ! -d "$build" ]; then
    meson setup "$build" >/dev/null || exit 1
fi
ninja -C "$build" daemon/lock-arbiter >/dev/null || { ninja -C "$build" daemon/lock-arbiter; exit 1; }
export LOCK_ARBITER_BIN=${LOCK_ARBITER_BIN:-$PWD/$build/daemon/lock-arbiter}
export LOCK_ARBITER_FIXTURES=${LOCK_ARBITER_FIXTURES:-$PWD/tests/fixtures}
exec /usr/bin/python3 tests/chaos/chaos.py "$@"
