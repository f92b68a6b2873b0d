#!/usr/bin/env bash
# Fuzzes every target of tests/fuzz with libFuzzer under ASan and UBSan,
# each for a fixed time, on a scratch copy of its corpus (the committed
# corpus stays small: new inputs go to build-fuzz/fuzz-work). Prints one
# line per target (executions, time, result) and exits non-zero when any
# target crashed, leaked, hit undefined behaviour, timed out or ran out of
# memory; the input that did it is kept in build-fuzz/fuzz-artifacts.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 30, all)
#
# Reproduce a finding with build-fuzz/tests/fuzz/fuzz_NAME ARTIFACT (a file:
# given a directory, libFuzzer fuzzes and writes into it); shrink
# it with -minimize_crash=1 -runs=100000; add it to tests/fuzz/corpus/NAME
# with a named regression test.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
	exit 2
fi
if (($# > 0)); then
	targets=("$@")
else
	targets=()
	for f in tests/fuzz/fuzz_*.c; do
		f=${f##*/fuzz_}
		targets+=("${f%.c}")
	done
fi

if ! command -v clang >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		clang libclang-rt-dev >/dev/null || { echo "fuzz: cannot install clang" >&2; exit 1; }
fi
build=build-fuzz
if [[ ! -f $build/build.ninja ]]; then
	# fuzzer-no-link instruments every library for coverage too (daemon,
	# db, k8s-client): without it libFuzzer sees only the target file.
	CC=clang meson setup "$build" -Dfuzzing=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link >"$build.setup.log" 2>&1 ||
		{ cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz_}" >"$build/fuzz-build.log" 2>&1 ||
	{ cat "$build/fuzz-build.log"; exit 1; }

# Seeds beyond the corpus: the real objects the targets read, when present.
extra_seeds() {
	local dir
	case $1 in
	pod | status) dir=tests/fixtures/kubernetes ;;
	lockedby | metrics) dir=tests/fixtures/liquibase ;;
	*) return ;;
	esac
	[[ -d $dir ]] && echo "$dir"
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=0
for t in "${targets[@]}"; do
	work=$build/fuzz-work/$t
	artifacts=$build/fuzz-artifacts/$t/
	log=$build/fuzz-work/$t.log
	rm -rf "$work" "$artifacts"
	mkdir -p "$work" "$artifacts"
	cp tests/fuzz/corpus/"$t"/* "$work"/
	seeds=$(extra_seeds "$t")
	# The scratch copy comes first: libFuzzer adds what it finds there.
	start=$SECONDS
	"$build/tests/fuzz/fuzz_$t" "$work" ${seeds:+"$seeds"} -max_total_time="$seconds" \
		-timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
		-artifact_prefix="$artifacts" >"$log" 2>&1
	rc=$?
	took=$((SECONDS - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	found=$(ls "$artifacts")
	if ((rc == 0)) && [[ -z $found ]]; then
		result=ok
	else
		result="FAILED (exit $rc): $(grep -m1 -E '^==[0-9]+==ERROR|runtime error|^SUMMARY' "$log")"
		result+=" ${found:+artifact $artifacts$found}, log $log"
		failed=1
	fi
	printf 'fuzz_%-9s %10s execs in %ss (%s/s), corpus %s -> %s: %s\n' "$t" "${execs:-?}" \
		"$took" "${rate:-?}" "$(ls tests/fuzz/corpus/"$t" | wc -l)" "$(ls "$work" | wc -l)" \
		"$result"
done
exit $failed
