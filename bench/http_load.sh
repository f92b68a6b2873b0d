#!/usr/bin/env bash
# The status server under load (issue 13): builds the release binary and the
# cycle probe as bench/run.sh does, then runs bench/http_load.py, which drives
# /metrics and /locks at 1 000 lock tables with wrk and measures the poll
# cycle meanwhile. See bench/README.md.
#
#   bash bench/http_load.sh [--duration S] [--connections N] [--no-write]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BENCH_BUILD_DIR:-build-bench}

need=()
command -v wrk >/dev/null || need+=(wrk)
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || need+=(python3-psycopg2)
if ((${#need[@]} > 0)); then
	echo "http_load: installing ${need[*]}"
	if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null
fi

if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" -Dbuildtype=release -Dtests=disabled -Dintegration=disabled >/dev/null
fi
ninja -C "$build" daemon/lock-arbiter >/dev/null
mkdir -p "$build/bench"
${CC:-cc} -O2 -Wall -Wextra -shared -fPIC -o "$build/bench/cycle_probe.so" \
	bench/cycle_probe.c -ldl

export LOCK_ARBITER_BIN=$PWD/$build/daemon/lock-arbiter
export BENCH_BUILD_DIR=$PWD/$build
export BENCH_CYCLE_PROBE_SO=$PWD/$build/bench/cycle_probe.so
exec /usr/bin/python3 bench/http_load.py "$@"
