#!/usr/bin/env bash
# The lock-arbiter benchmark: builds the release binary in build-bench/, then
# runs bench/bench.py, which prints a table and writes bench/results/latest.json
# and a timestamped copy. See bench/README.md.
#
#   bash bench/run.sh [bench.py arguments, e.g. --quick]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BENCH_BUILD_DIR:-build-bench}

need=()
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || need+=(python3-psycopg2)
# The scale-mariadb section: the MySQL/MariaDB backend, a real MariaDB, PyMySQL.
/usr/bin/python3 -c 'import pymysql' 2>/dev/null || need+=(python3-pymysql)
[[ -x /usr/sbin/mariadbd ]] || command -v mariadbd >/dev/null || need+=(mariadb-server)
pkg-config --exists libmariadb 2>/dev/null || need+=(libmariadb-dev)
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
if ((${#need[@]} > 0)); then
	echo "bench: installing ${need[*]}"
	if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null
fi

echo "bench: building $build (release, tests disabled)"
if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" -Dbuildtype=release -Dtests=disabled -Dintegration=disabled \
		-Dmysql=enabled >/dev/null
else
	# --reconfigure: a build directory made before an option existed knows it afterwards.
	meson setup --reconfigure "$build" -Dbuildtype=release -Dtests=disabled \
		-Dintegration=disabled -Dmysql=enabled >/dev/null
fi
ninja -C "$build" >/dev/null

# The cycle probe: an LD_PRELOAD shim that timestamps the main loop's sleeps.
mkdir -p "$build/bench"
${CC:-cc} -O2 -Wall -Wextra -shared -fPIC -o "$build/bench/cycle_probe.so" \
	bench/cycle_probe.c -ldl

export LOCK_ARBITER_BIN=$PWD/$build/daemon/lock-arbiter
export BENCH_BUILD_DIR=$PWD/$build
export BENCH_CYCLE_PROBE_SO=$PWD/$build/bench/cycle_probe.so
start=$(date +%s)
status=0
/usr/bin/python3 bench/bench.py "$@" || status=$?
echo "bench: wall time $(($(date +%s) - start)) s (bench.py), exit $status"
exit $status
