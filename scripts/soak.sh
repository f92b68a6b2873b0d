#!/usr/bin/env bash
# The soak (issue 9 part 3, DESIGN.md section 9 "days of running"): the
# daemon under AddressSanitizer/UBSan, or under valgrind, for M minutes with
# compressed intervals, against two real PostgreSQL servers, a real MariaDB
# and the simulated Kubernetes API, with a seeded random workload
# (tests/soak/soak.py). Builds its own test-hook build with the MySQL/MariaDB
# backend first: build-soak-asan, or build-soak for valgrind.
# Prints the figures and ends with "soak: N passed, N failed".
#
#   scripts/soak.sh [--minutes M] [--valgrind] [--seed N] [--workdir DIR]
#
# Default: 10 minutes under ASan/UBSan. CI runs --minutes 3, and 1 --valgrind.
# --workdir keeps the arbiter's log, samples.csv and valgrind's report.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
valgrind=0
extra=()
while (($# > 0)); do
	case $1 in
	--minutes | --seed | --workdir)
		(($# >= 2)) || { echo "soak.sh: $1 needs a value" >&2; exit 2; }
		if [[ $1 == --minutes ]]; then minutes=$2; else extra+=("$1" "$2"); fi
		shift 2
		;;
	--valgrind) valgrind=1; shift ;;
	-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: scripts/soak.sh [--minutes M] [--valgrind] [--seed N] [--workdir DIR]" >&2
	   exit 2 ;;
	esac
done

# setup.sh configures with -Dwerror=true -Dtest_hooks=true -Dmysql=enabled:
# the compressed intervals (LOCK_ARBITER_TEST_INTERVALS) exist only in such a
# build, and the soak's MariaDB needs the MySQL backend. A build directory
# configured before that option existed, or without it, is configured again.
mysql_enabled() {
	[[ -f $1/build.ninja ]] || return 0 # setup.sh configures it
	meson introspect --buildoptions "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
sys.exit(not any(o["name"] == "mysql" and o["value"] == "enabled" for o in json.load(sys.stdin)))'
}
if ((valgrind)); then
	build=build-soak
	extra+=(--valgrind)
else
	build=build-soak-asan
fi
if ! mysql_enabled "$build"; then
	echo "soak: configuring $build again with -Dmysql=enabled"
	log=$(mktemp)
	meson setup --reconfigure "$build" -Dmysql=enabled >"$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }
	rm -f "$log"
fi
if ((valgrind)); then
	bash scripts/setup.sh "$build"
else
	bash scripts/setup.sh "$build" -Db_sanitize=address,undefined -Db_lundef=false
fi
exec /usr/bin/python3 tests/soak/soak.py --bin "$build/daemon/lock-arbiter" \
	--minutes "$minutes" "${extra[@]}"
