#!/usr/bin/env bash
# Side by side on MariaDB: Liquibase alone, the time-threshold CronJob and
# lock-arbiter, each facing a live migration longer than the threshold and a
# migrating pod killed midway (bench/README.md, "Side by side on MariaDB").
# Builds lock-arbiter as run.sh does (build-bench/, release), then runs
# bench/side_by_side.py, which prints one markdown table and writes
# bench/results/side-by-side-latest.json and a timestamped copy. Root: the
# pods are network namespaces. About 5 minutes, mostly waiting.
#
#   bash bench/side_by_side.sh [side_by_side.py arguments, e.g. --only b]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BENCH_BUILD_DIR:-build-bench}

need=()
/usr/bin/python3 -c 'import pymysql' 2>/dev/null || need+=(python3-pymysql)
[[ -x /usr/sbin/mariadbd ]] || command -v mariadbd >/dev/null || need+=(mariadb-server)
pkg-config --exists libmariadb 2>/dev/null || need+=(libmariadb-dev)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v npm >/dev/null || need+=(nodejs npm)
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
if ((${#need[@]} > 0)); then
	echo "side-by-side: installing ${need[*]}"
	if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null
fi
bash tests/e2e/install_liquibase.sh >/dev/null

# The lock-arbiter columns are measured only when this binary takes a
# mariadb:// URL (side_by_side.py tries it); a failed build leaves them
# saying why instead of stopping the other two.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "side-by-side: building $build (release, tests disabled)"
if { [[ -f $build/build.ninja ]] &&
	meson configure "$build" -Dbuildtype=release -Dtests=disabled -Dintegration=disabled \
		-Dmysql=enabled ||
	meson setup "$build" -Dbuildtype=release -Dtests=disabled -Dintegration=disabled \
		-Dmysql=enabled; } \
	>"$log" 2>&1 && ninja -C "$build" >>"$log" 2>&1; then
	export LOCK_ARBITER_BIN=$PWD/$build/daemon/lock-arbiter
else
	tail -5 "$log" >&2
	echo "side-by-side: the build failed: the lock-arbiter column will say so" >&2
	export LOCK_ARBITER_BIN=$PWD/$build/daemon/lock-arbiter.build-failed
fi
/usr/bin/python3 bench/side_by_side.py "$@"
