# tap.sh — TAP helpers for the shell tests (sourced).
#   plan N; ok COND_STATUS "name"; is GOT WANT "name"; done_testing
#   skip_all REASON         the whole file cannot run here (strict: a failure)
#   skip_point REASON NAME  one point cannot run here (strict: not ok)
#   todo STATUS NAME REASON a known bug, reported and not fixed yet: a "# TODO"
#                           point, which fails nothing either way (when it passes,
#                           the bug is fixed: make it a plain ok)
#
# Strict mode (CI=true, or LATTICE_STRICT=1; scripts/test.sh sets CI=true): a test
# that cannot run because a tool is missing fails instead of skipping, so a
# machine where scripts/deps.sh ran never reports green with parts left out.
#
# Libraries may add points of their own at the end of every file: they raise
# TAP_EXTRA (counted into the plan) and name a function in TAP_FINAL, which
# done_testing runs first (tests/integration/lib.sh checks latticed's exit).
TAP_N=0
TAP_FAILED=0
TAP_PLANNED=0
TAP_EXTRA=${TAP_EXTRA:-0}
TAP_FINAL=${TAP_FINAL:-}

tap_strict() {
	case "${LATTICE_STRICT:-}" in 1 | true | yes) return 0 ;; 0 | false | no) return 1 ;; esac
	case "${CI:-}" in 1 | true | yes) return 0 ;; esac
	return 1
}

plan() { TAP_PLANNED=$(($1 + TAP_EXTRA)); echo "1..$TAP_PLANNED"; }
diag() { printf '# %s\n' "$*"; }
# ok STATUS NAME: STATUS 0 passes (use: some_command; ok $? "name")
ok() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ] 2>/dev/null; then echo "ok $TAP_N - $2"; else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
is() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" = "$2" ]; then echo "ok $TAP_N - $3"
	else echo "not ok $TAP_N - $3"; diag "  got:  '$1'"; diag "  want: '$2'"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
isnt() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" != "$2" ]; then echo "ok $TAP_N - $3"
	else echo "not ok $TAP_N - $3"; diag "  got:  '$1', which it must not be"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
bail() { echo "Bail out! $*"; exit 1; }
skip_all() {
	if tap_strict; then
		bail "$* (strict mode, CI=true: a missing dependency is a failure; run scripts/deps.sh)"
	fi
	echo "1..0 # SKIP $*"
	exit 0
}
skip_point() {
	if tap_strict; then
		ok 1 "$2 (cannot run: $1; strict mode, CI=true: a missing dependency is a failure)"
	else
		TAP_N=$((TAP_N + 1))
		echo "ok $TAP_N - $2 # SKIP $1"
	fi
}
todo() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ] 2>/dev/null; then echo "ok $TAP_N - $2 # TODO $3"; else echo "not ok $TAP_N - $2 # TODO $3"; fi
}
done_testing() {
	if [ -n "$TAP_FINAL" ]; then "$TAP_FINAL"; fi
	if [ "$TAP_N" -ne "$TAP_PLANNED" ]; then diag "planned $TAP_PLANNED tests but ran $TAP_N"; exit 1; fi
	[ "$TAP_FAILED" -eq 0 ]
}
