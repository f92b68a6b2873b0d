#!/usr/bin/env bash
# The soak (issue 9 part 3, DESIGN.md section 9 "days of running"): the
# daemon under AddressSanitizer/UBSan, or under valgrind, for M minutes with
# compressed intervals, against two real PostgreSQL servers and the simulated
# Kubernetes API, with a seeded random workload (tests/soak/soak.py). Builds
# its own test-hook build first: build-soak-asan, or build-soak for valgrind.
# Prints the figures and ends with "soak: N passed, N failed".
#
#   scripts/soak.sh [--minutes M] [--valgrind] [--seed N] [--workdir DIR]
#
# Default: 10 minutes under ASan/UBSan. CI runs --minutes 2, both ways.
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
	-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: scripts/soak.sh [--minutes M] [--valgrind] [--seed N] [--workdir DIR]" >&2
	   exit 2 ;;
	esac
done

# setup.sh configures with -Dwerror=true -Dtest_hooks=true: the compressed
# intervals (LOCK_ARBITER_TEST_INTERVALS) exist only in such a build.
if ((valgrind)); then
	build=build-soak
	bash scripts/setup.sh "$build"
	extra+=(--valgrind)
else
	build=build-soak-asan
	bash scripts/setup.sh "$build" -Db_sanitize=address,undefined -Db_lundef=false
fi
exec /usr/bin/python3 tests/soak/soak.py --bin "$build/daemon/lock-arbiter" \
	--minutes "$minutes" "${extra[@]}"
