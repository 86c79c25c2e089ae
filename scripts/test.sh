#!/usr/bin/env bash
# test.sh — the whole test suite on a fresh machine: installs what is missing,
# builds from scratch in build/ (with AddressSanitizer and UBSan unless
# SANITIZE=0) and runs `make check`, which starts its own throwaway PostgreSQL
# servers on Unix sockets and latticed on free loopback ports, and stops them.
# Ends with "N passed, N failed, N skipped" counted over every TAP test point.
#
# Strict by default (CI=true unless set): deps.sh has installed every tool, so a
# test that would skip for a missing one fails instead (tests/lib/tap.sh), and a
# skipped point still counted here fails the run. CI=false allows skips.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh || exit 1
export CI=${CI:-true}
build=${BUILD_DIR:-$top/build}
sanitize=()
[ "${SANITIZE:-1}" = 1 ] && sanitize=(--enable-sanitize)
set -e
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
rm -rf "$build"
mkdir -p "$build"
cd "$build"
"$top/configure" -q "${sanitize[@]}"
make -j"$(nproc)" >/dev/null
set +e
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
make -j"$(nproc)" check
rc=$?
passed=0 failed=0 skipped=0
while IFS= read -r trs; do
	p=$(grep -c '^:test-result: PASS' "$trs"); f=$(grep -cE '^:test-result: (FAIL|ERROR|XPASS)' "$trs")
	s=$(grep -c '^:test-result: SKIP' "$trs")
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done < <(find "$build/tests" -name '*.trs')
if [ $rc -ne 0 ]; then
	[ -f test-suite.log ] && tail -n 80 test-suite.log
	[ $failed -eq 0 ] && failed=1 # a harness failure with no failed point still fails
fi
case $CI in
1 | true | yes)
	if [ $skipped -ne 0 ]; then
		echo "CI=true: $skipped test points were skipped; with every dependency installed none may be:"
		find "$build/tests" -name '*.log' -exec grep -h '^SKIP:' {} + 2>/dev/null | head -20
		rc=1
		failed=$((failed + skipped))
	fi
	;;
esac
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
