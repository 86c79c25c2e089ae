# tap.sh — TAP helpers for the shell tests (sourced).
#   plan N; ok COND_STATUS "name"; is GOT WANT "name"; done_testing
TAP_N=0
TAP_FAILED=0
TAP_PLANNED=0
plan() { TAP_PLANNED=$1; echo "1..$1"; }
diag() { printf '# %s\n' "$*"; }
# ok STATUS NAME: STATUS 0 passes (use: some_command; ok $? "name")
ok() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ]; then echo "ok $TAP_N - $2"; else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
is() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" = "$2" ]; then echo "ok $TAP_N - $3"
	else echo "not ok $TAP_N - $3"; diag "  got:  '$1'"; diag "  want: '$2'"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
bail() { echo "Bail out! $*"; exit 1; }
done_testing() {
	if [ "$TAP_N" -ne "$TAP_PLANNED" ]; then diag "planned $TAP_PLANNED tests but ran $TAP_N"; exit 1; fi
	[ "$TAP_FAILED" -eq 0 ]
}
