#!/usr/bin/env bash
# run.sh — mutation testing (`make mutation`): applies each mutation of
# tests/mutation/mutations.txt to a scratch copy of the tree, one at a time,
# builds it, and runs the tests that should catch it until one fails. Prints
# "caught by <test>" or "SURVIVED" per mutation and a summary; exits non-zero when
# a mutation survived, no longer applies (the code moved: retarget it), or does
# not build. The working tree is never touched. See docs/testing.md.
#
# Env:
#   top_srcdir          the tree to copy (default: two levels up from here)
#   MUTATIONS           ids to run (default: all), space-separated
#   MUTATION_LIST       the list (default: tests/mutation/mutations.txt)
#   MUTATION_CONFIGURE  configure arguments of the scratch build (default:
#                       --enable-sanitize, so leaks and UB count as caught)
#   MUTATION_BASELINE=0 skip the first run of every test on the unchanged copy
#                       (it proves the tests pass without a mutation)
#   MUTATION_TIMEOUT    seconds one test may run (default 900)
#   MUTATION_KEEP=1     keep the scratch directory (printed at the end)
set -uo pipefail
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
top_srcdir=$(cd "$top_srcdir" && pwd)
LIST=${MUTATION_LIST:-$top_srcdir/tests/mutation/mutations.txt}
TIMEOUT=${MUTATION_TIMEOUT:-900}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

die() { echo "mutation: $*" >&2; exit 2; }
command -v perl >/dev/null || die "perl is needed"
[ -f "$LIST" ] || die "no list at $LIST"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lattice-mutation.XXXXXX") || die "mktemp failed"
cleanup() {
	if [ "${MUTATION_KEEP:-0}" = 1 ]; then echo "scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
SRC=$WORK/src BUILD=$WORK/build LOGS=$WORK/logs
mkdir -p "$SRC" "$BUILD" "$LOGS" "$WORK/m"

# ---- the list ------------------------------------------------------------------------

IDS=()
declare -A M_FILE M_TESTS M_WHY
parse() {
	local line n=0 id= state=out
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		case $state in
		out)
			case $line in
			'' | '#'*) ;;
			'@@ '*)
				id=${line#@@ }
				[[ "$id" =~ ^[a-z0-9-]+$ ]] || die "$LIST:$n: bad id '$id'"
				[ -z "${M_FILE[$id]+x}" ] || die "$LIST:$n: id '$id' given twice"
				IDS+=("$id")
				M_FILE[$id]= M_TESTS[$id]= M_WHY[$id]=
				state=head
				;;
			*) die "$LIST:$n: expected '@@ ID', got: $line" ;;
			esac
			;;
		head)
			case $line in
			'file: '*) M_FILE[$id]=${line#file: } ;;
			'tests: '*) M_TESTS[$id]=${line#tests: } ;;
			'why: '*) M_WHY[$id]=${line#why: } ;;
			'<<<') state=find; : >"$WORK/m/$id.find" ;;
			*) die "$LIST:$n: expected file:, tests:, why: or <<< in '$id', got: $line" ;;
			esac
			;;
		find)
			if [ "$line" = === ]; then state=repl; : >"$WORK/m/$id.repl"
			else printf '%s\n' "$line" >>"$WORK/m/$id.find"; fi
			;;
		repl)
			if [ "$line" = '>>>' ]; then
				[ -n "${M_FILE[$id]}" ] && [ -n "${M_TESTS[$id]}" ] && [ -n "${M_WHY[$id]}" ] ||
					die "$LIST: '$id' needs file:, tests: and why:"
				[ -s "$WORK/m/$id.find" ] || die "$LIST: '$id' has nothing to replace"
				state=out
			else
				printf '%s\n' "$line" >>"$WORK/m/$id.repl"
			fi
			;;
		esac
	done <"$LIST"
	[ "$state" = out ] || die "$LIST: the last block ('$id') is not closed with >>>"
}
parse
[ ${#IDS[@]} -gt 0 ] || die "$LIST holds no mutation"
if [ -n "${MUTATIONS:-}" ]; then
	for id in $MUTATIONS; do [ -n "${M_FILE[$id]+x}" ] || die "no mutation '$id' in $LIST"; done
	read -r -a IDS <<<"$MUTATIONS"
fi

# substitute MODE ID: in $SRC; MODE check only counts. Exit 3: the text is not
# there; 4: it is there more than once.
substitute() {
	perl -e '
		local $/;
		my ($find, $repl, $file, $mode) = @ARGV;
		open(my $f, "<", $find) or die "$find: $!"; my $x = <$f>;
		open(my $r, "<", $repl) or die "$repl: $!"; my $y = <$r>; $y = "" unless defined $y;
		open(my $s, "<", $file) or die "$file: $!"; my $t = <$s>; close $s;
		my $i = index($t, $x);
		exit 3 if $i < 0;
		exit 4 if index($t, $x, $i + 1) >= 0;
		exit 0 if $mode eq "check";
		substr($t, $i, length $x) = $y;
		open(my $o, ">", $file) or die "$file: $!"; print $o $t; close $o or die "$file: $!";
	' "$WORK/m/$2.find" "$WORK/m/$2.repl" "$SRC/${M_FILE[$2]}" "$1"
}

# ---- the scratch tree -------------------------------------------------------------------

echo "copying $top_srcdir to $SRC"
if git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top_srcdir" && git ls-files -z -co --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -C "$SRC" -xf - || die "copying the tree failed"
else
	cp -a "$top_srcdir/." "$SRC/" || die "copying the tree failed"
fi

# Every mutation must apply before anything is built: a list that rotted fails
# at once, naming each mutation to retarget.
bad=0
for id in "${IDS[@]}"; do
	[ -f "$SRC/${M_FILE[$id]}" ] || { echo "[$id] ${M_FILE[$id]}: no such file"; bad=1; continue; }
	substitute check "$id"
	case $? in
	0) ;;
	3) echo "[$id] DOES NOT APPLY: its lines are no longer in ${M_FILE[$id]} (the code moved: retarget it in $LIST)"; bad=1 ;;
	4) echo "[$id] DOES NOT APPLY: its lines occur more than once in ${M_FILE[$id]} (give more context)"; bad=1 ;;
	*) echo "[$id] cannot be checked"; bad=1 ;;
	esac
done
[ $bad = 0 ] || die "some mutations no longer apply; nothing was run"

read -r -a CONFIGURE <<<"${MUTATION_CONFIGURE---enable-sanitize}"
echo "building in $BUILD (configure ${CONFIGURE[*]})"
(cd "$SRC" && { [ -x configure ] || autoreconf -fi; }) >"$LOGS/autoreconf.log" 2>&1 ||
	{ tail -20 "$LOGS/autoreconf.log"; die "autoreconf failed"; }
(cd "$BUILD" && "$SRC/configure" -q "${CONFIGURE[@]}") >"$LOGS/configure.log" 2>&1 ||
	{ tail -20 "$LOGS/configure.log"; die "configure failed"; }
JOBS=$(nproc 2>/dev/null || echo 2)
build() { make -C "$BUILD" -j"$JOBS" all >"$1" 2>&1 && make -C "$BUILD" -j"$JOBS" check TESTS= >>"$1" 2>&1; }
build "$LOGS/build.log" || { tail -30 "$LOGS/build.log"; die "the unchanged tree does not build"; }

# run_test TEST LOG: 0 when the test passes.
run_test() {
	timeout "$TIMEOUT" make -C "$BUILD" check TESTS="$1" >"$2" 2>&1
}
# The test's own first failures, for the report.
why_failed() {
	local log="$BUILD/${1%.sh}.log"
	[ -f "$log" ] || { tail -3 "$2" | sed 's/^/      /'; return; }
	grep -m3 -E '^(not ok|Bail out!)' "$log" | sed 's/^/      /'
	grep -m1 -E 'did not exit 0|sanitizer report in' "$log" | sed 's/^/      /'
}

if [ "${MUTATION_BASELINE:-1}" != 0 ]; then
	ALL=()
	for id in "${IDS[@]}"; do
		for t in ${M_TESTS[$id]}; do
			case " ${ALL[*]} " in *" $t "*) ;; *) ALL+=("$t") ;; esac
		done
	done
	echo "baseline: ${#ALL[@]} tests on the unchanged tree"
	for t in "${ALL[@]}"; do
		run_test "$t" "$LOGS/baseline.$(basename "$t").log" ||
			{
				why_failed "$t" "$LOGS/baseline.$(basename "$t").log"
				MUTATION_KEEP=1
				die "$t fails without any mutation: fix that first"
			}
	done
fi

# ---- one mutation at a time ---------------------------------------------------------------

caught=0 survived=() broken=()
for id in "${IDS[@]}"; do
	file=${M_FILE[$id]}
	echo "[$id] $file: ${M_WHY[$id]}"
	cp "$SRC/$file" "$WORK/orig"
	substitute apply "$id" || { echo "    DOES NOT APPLY"; broken+=("$id"); continue; }
	start=$(date +%s)
	if ! build "$LOGS/$id.build.log"; then
		echo "    DOES NOT BUILD (see the list; $LOGS/$id.build.log):"
		grep -m5 -E 'error' "$LOGS/$id.build.log" | sed 's/^/      /'
		broken+=("$id")
	else
		by=
		for t in ${M_TESTS[$id]}; do
			if ! run_test "$t" "$LOGS/$id.$(basename "$t").log"; then
				by=$t
				break
			fi
		done
		if [ -n "$by" ]; then
			caught=$((caught + 1))
			echo "    caught by $by ($(($(date +%s) - start)) s)"
			why_failed "$by" "$LOGS/$id.$(basename "$by").log"
		else
			survived+=("$id")
			echo "    SURVIVED: ${M_TESTS[$id]} all pass ($(($(date +%s) - start)) s)"
		fi
	fi
	cp "$WORK/orig" "$SRC/$file" # a new mtime: make rebuilds it for the next one
done

echo
echo "${#IDS[@]} mutations: $caught caught, ${#survived[@]} survived, ${#broken[@]} did not apply or build"
[ ${#survived[@]} -eq 0 ] || echo "survived: ${survived[*]}"
[ ${#broken[@]} -eq 0 ] || echo "broken: ${broken[*]}"
[ ${#survived[@]} -eq 0 ] && [ ${#broken[@]} -eq 0 ]
