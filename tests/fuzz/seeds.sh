#!/usr/bin/env bash
# seeds.sh — each libFuzzer target (tests/fuzz/fuzz_*, built by `make check`
# with clang) runs once over every input of its seed corpus
# (tests/fuzz/corpus/<target>/): the targets keep compiling, and every seed —
# and every input a fuzzing run once found a bug with — stays harmless.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"

targets=(fuzz_entry fuzz_snapshot fuzz_spec)
for t in "${targets[@]}"; do
	[ -x "$top_builddir/tests/fuzz/$t" ] ||
		skip_all "tests/fuzz/$t is not built (configure found no clang; scripts/deps.sh installs it)"
done
plan $((2 * ${#targets[@]}))
out=$(mktemp -d /tmp/lattice-fuzz-seeds.XXXXXX)
trap 'rm -rf "$out"' EXIT
for t in "${targets[@]}"; do
	dir="$top_srcdir/tests/fuzz/corpus/$t"
	seeds=("$dir"/*)
	n=0
	[ -e "${seeds[0]}" ] && n=${#seeds[@]}
	ok "$([ "$n" -ge 10 ] && echo 0 || echo 1)" "$t: $n seeds in tests/fuzz/corpus/$t"
	# Files, not a directory: libFuzzer runs each once and does not fuzz.
	if "$top_builddir/tests/fuzz/$t" "${seeds[@]}" >"$out/$t.log" 2>&1; then
		ok 0 "$t runs every seed without a finding"
	else
		ok 1 "$t runs every seed without a finding"
		sed 's/^/# /' "$out/$t.log" | tail -40
	fi
done
done_testing
