#!/usr/bin/env bash
# run.sh — `make fuzz`: runs each libFuzzer target for FUZZ_TIME seconds
# (default 600), starting from its seed corpus, and reports executions and
# findings. Not part of `make check` (tests/fuzz/seeds.sh is).
# Env: FUZZ_TIME (seconds per target), FUZZ_TARGETS (default: all three),
#      FUZZ_PARALLEL (targets run at once, default 1), FUZZ_OUT (where corpora
#      grown by the run, logs and crash inputs go; default a new /tmp dir, kept).
# A crash input is saved as $FUZZ_OUT/<target>-crash-*; to keep it as a
# regression seed, copy it into tests/fuzz/corpus/<target>/ once fixed.
set -uo pipefail
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
FUZZ_TIME=${FUZZ_TIME:-600}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
read -r -a targets <<<"${FUZZ_TARGETS:-fuzz_entry fuzz_snapshot fuzz_spec}"
out=${FUZZ_OUT:-$(mktemp -d /tmp/lattice-fuzz.XXXXXX)}
mkdir -p "$out"
echo "make fuzz: ${targets[*]}, ${FUZZ_TIME} s each, $FUZZ_PARALLEL at a time; output in $out"

# run_one TARGET: fuzzes into $out/TARGET.corpus (new inputs), reading the seeds.
run_one() {
	local t=$1
	local dict=()
	mkdir -p "$out/$t.corpus"
	# The format's field names, so mutations build objects and not only noise.
	[ -f "$top_srcdir/tests/fuzz/$t.dict" ] && dict=(-dict="$top_srcdir/tests/fuzz/$t.dict")
	"$top_builddir/tests/fuzz/$t" "${dict[@]}" -max_total_time="$FUZZ_TIME" -print_final_stats=1 \
		-artifact_prefix="$out/$t-" "$out/$t.corpus" "$top_srcdir/tests/fuzz/corpus/$t" >"$out/$t.log" 2>&1
	echo $? >"$out/$t.rc"
}

running=0
for t in "${targets[@]}"; do
	[ -x "$top_builddir/tests/fuzz/$t" ] || { echo "tests/fuzz/$t is not built"; exit 1; }
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$FUZZ_PARALLEL" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

status=0
for t in "${targets[@]}"; do
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$t.log")
	cov=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1)
	crashes=$(find "$out" -maxdepth 1 -name "$t-*" | wc -l)
	echo "$t: ${execs:-?} executions (${rate:-?}/s), ${cov:-cov: ?}, corpus $(find "$out/$t.corpus" -type f | wc -l) new inputs, exit $(cat "$out/$t.rc"), $crashes finding(s)"
	if [ "$(cat "$out/$t.rc")" != 0 ] || [ "$crashes" -gt 0 ]; then
		status=1
		grep -m1 -A12 -E '^==[0-9]+==ERROR|runtime error|^fuzz_' "$out/$t.log" | sed 's/^/    /'
		find "$out" -maxdepth 1 -name "$t-*" | sed 's/^/    input: /'
	fi
done
exit $status
