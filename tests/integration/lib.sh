# lib.sh — helpers for the integration tests (sourced): a throwaway PostgreSQL,
# latticed processes started on free loopback ports, and an HTTP client.
#
#   lib_init                        temp dir + a throwaway PostgreSQL
#   lattice_start NAME [FLAGS...]   start a replica with its own database/data dir
#   lattice_stop [TIMEOUT_S]        SIGTERM it and wait; sets LATTICED_EXIT
#   lattice_kill                    SIGKILL it (a crash, on purpose)
#   req METHOD PATH [BODY [CTYPE]]  HTTP request; sets STATUS, BODY, HDRS (file);
#                                   extra headers from the array REQ_HEADERS
#   jqr FILTER                      jq -r FILTER on the last BODY
#   header NAME                     a header of the last response
#   err                             "STATUS error.code" of the last response
#   list_ids PATH                   the ids of a list (read_failed's text if it failed)
#   read_failed                     what a reading helper prints when its read failed
#   pg_hold NAME [TABLE MODE] / pg_release   hold replica NAME's projection (or
#                                   TABLE's reads) back with a lock
#   wait_lagging, cluster_field F   applied > projected yet?; a field of /v1/cluster
#   req_bg TAG ... / req_bg_done TAG / req_bg_wait TAG   a request in the background
#
# Every file that sources this gets two more TAP points than it plans, run by
# done_testing: every latticed still running is stopped with SIGTERM; the first
# fails unless every SIGTERM stop of the file exited 0 and no sanitizer report
# (ASan, UBSan, LeakSanitizer) was written by any latticed the file ran (reports
# go to $T_DIR/sanitizer.PID (log_path) and are printed as diagnostics); the
# second checks every answer req received against api/openapi.yaml, and fails
# for a file that sent nothing through req.
# Everything started is stopped by the EXIT trap (SIGTERM first, so coverage
# and leak checks see the run; SIGKILL only when it does not exit).

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"

LATTICED=${LATTICED:-$top_builddir/latticed}
SCHEMA_DIR=${SCHEMA_DIR:-$top_srcdir/schema}
LATTICED_PID=
LATTICED_NAME=
LATTICED_EXIT=
API=
T_DIR=
LIB_PIDS=() # every latticed lattice_start started: "pid name"
REQ_HEADERS=()

command -v jq >/dev/null || skip_all "jq is not installed"
command -v curl >/dev/null || skip_all "curl is not installed"
[ -x "$PGBIN/initdb" ] || skip_all "PostgreSQL server binaries not found in $PGBIN"
[ -x "$LATTICED" ] || bail "latticed not built at $LATTICED"

T_DIR=$(mktemp -d /tmp/lattice-test.XXXXXX) || bail "mktemp failed"
# Sanitizer reports of every latticed this file runs, in files the final point
# reads (a report on stderr alone is easy to miss, or lost with a captured output).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T_DIR/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T_DIR/sanitizer"

if [ "$TAP_FINAL" != lib_final_check ]; then # once, even if sourced twice
	TAP_EXTRA=$((TAP_EXTRA + 2))
	TAP_FINAL=lib_final_check
fi

# These run in this shell, never in $(...): only the shell that started a
# latticed can wait for it. They return through LIB_ST.
LIB_ST=

# lib_reap PID TIMEOUT_S: waits for a child latticed to exit; LIB_ST is its exit
# status, or "timeout" when it was still running after TIMEOUT_S (then SIGKILLed).
lib_reap() {
	local pid=$1 timeout=$2 i st
	for ((i = 0; i < timeout * 10; i++)); do
		st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
		[ -z "$st" ] || [ "$st" = Z ] && break
		sleep 0.1
	done
	if [ -n "$st" ] && [ "$st" != Z ]; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		LIB_ST=timeout
		return
	fi
	wait "$pid" 2>/dev/null
	LIB_ST=$?
}

lib_forget() { # PID: no longer tracked as running
	local i
	for i in "${!LIB_PIDS[@]}"; do
		[ "${LIB_PIDS[$i]%% *}" = "$1" ] && unset 'LIB_PIDS[i]'
	done
	return 0
}

# lib_term PID NAME TIMEOUT_S: SIGTERM and reap (LIB_ST); records
# "NAME PID STATUS" in $T_DIR/stops for the final point.
lib_term() {
	kill -TERM "$1" 2>/dev/null
	lib_reap "$1" "$3"
	[ -d "$T_DIR" ] && echo "$2 $1 $LIB_ST" >>"$T_DIR/stops"
	lib_forget "$1"
}

# Sanitizer reports: report files, and the marker lines in any log.
lib_sanitizer_reports() {
	local f
	for f in "$T_DIR"/sanitizer.*; do [ -f "$f" ] && echo "$f"; done
	grep -rlE --include='*.log' 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer' \
		"$T_DIR" 2>/dev/null
}

# The automatic last point of every file (see the top).
lib_final_check() {
	local p pid name st bad=
	[ -n "$LATTICED_PID" ] && ! printf '%s\n' "${LIB_PIDS[@]}" | grep -q "^$LATTICED_PID " &&
		LIB_PIDS+=("$LATTICED_PID ${LATTICED_NAME:-latticed}")
	for p in "${LIB_PIDS[@]}"; do
		pid=${p%% *} name=${p#* }
		# Gone already (reaped by the test itself): nothing to stop. One that has
		# exited without being reaped (killed by hand, or stopped on purpose) is
		# the test's business: reaped and named, not judged (a crash still leaves
		# its sanitizer report).
		[ -d "/proc/$pid" ] || { lib_forget "$pid"; continue; }
		if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
			wait "$pid" 2>/dev/null
			diag "latticed $name (pid $pid) had already exited (status $?) when the test ended"
			lib_forget "$pid"
			[ "$pid" = "$LATTICED_PID" ] && LATTICED_PID=
			continue
		fi
		lib_term "$pid" "$name" 60
		[ "$pid" = "$LATTICED_PID" ] && LATTICED_EXIT=$LIB_ST LATTICED_PID=
	done
	local runs=0
	if [ -f "$T_DIR/stops" ]; then
		runs=$(wc -l <"$T_DIR/stops")
		while read -r name pid st; do
			[ "$st" = 0 ] && continue
			bad=1
			diag "latticed $name (pid $pid) did not exit 0 on SIGTERM: $([ "$st" = timeout ] && echo "still running after 60 s, killed" || echo "exit status $st")"
			[ -f "$T_DIR/$name/latticed.log" ] && tail -5 "$T_DIR/$name/latticed.log" | sed 's/^/#   /'
		done <"$T_DIR/stops"
	fi
	local reports
	reports=$(lib_sanitizer_reports)
	if [ -n "$reports" ]; then
		bad=1
		for p in $reports; do
			diag "sanitizer report in $p:"
			# A report without an error line (a sanitizer WARNING) is shown whole.
			{ grep -m1 -B2 -A30 -E 'ERROR: |runtime error:' "$p" || head -30 "$p"; } | head -40 | sed 's/^/#   /'
		done
	fi
	ok "$([ -z "$bad" ]; echo $?)" "latticed stopped with SIGTERM and exited 0 ($runs stops), no sanitizer report"
	lib_contract_check
}

# Every REST response the file received through req, checked against
# api/openapi.yaml (tests/lib/contract_check.js: documented status, required
# headers, JSON body schema), so the spec and the server cannot drift.
lib_contract_check() {
	local ex=$T_DIR/exchanges.jsonl n rc
	if [ ! -s "$ex" ]; then
		# A point that could not fail would pass for every file that forgot.
		ok 1 "every REST response matches api/openapi.yaml: this file sent none through req (send at least one, so its answers are checked)"
		return
	fi
	n=$(wc -l <"$ex")
	declare -F protocol_setup >/dev/null || . "$top_srcdir/tests/lib/protocol.sh"
	if ! protocol_setup; then
		skip_point "$PROTOCOL_WHY" "every REST response ($n) matches api/openapi.yaml"
		return
	fi
	PROTOCOL_NODE_MODULES=$PROTOCOL_MODULES node "$top_srcdir/tests/lib/contract_check.js" \
		"$top_srcdir/api/openapi.yaml" "$ex" >"$T_DIR/contract.out" 2>&1
	rc=$?
	grep -v '^# contract:' "$T_DIR/contract.out" | head -40
	ok $rc "every REST response ($n) matches api/openapi.yaml (status, required headers, body schema)"
}

lib_cleanup() {
	local p
	[ -n "${PG_HOLD_PID:-}" ] && kill "$PG_HOLD_PID" 2>/dev/null
	[ -n "$LATTICED_PID" ] && LIB_PIDS+=("$LATTICED_PID ${LATTICED_NAME:-latticed}")
	for p in "${LIB_PIDS[@]}"; do
		kill -0 "${p%% *}" 2>/dev/null && lib_term "${p%% *}" "${p#* }" 30
	done
	LIB_PIDS=()
	LATTICED_PID=
	if [ -n "${KEEP_LOGS:-}" ] && [ -n "$T_DIR" ]; then
		echo "# logs kept in $T_DIR" >&2
	else
		[ -n "$T_DIR" ] && rm -rf "$T_DIR"
	fi
	servers_cleanup
}
trap lib_cleanup EXIT
trap 'exit 1' INT TERM HUP

lib_init() {
	[ -d "$T_DIR" ] || T_DIR=$(mktemp -d /tmp/lattice-test.XXXXXX) || bail "mktemp failed"
	pg_start || bail "cannot start PostgreSQL"
}

# lattice_start NAME [FLAGS...]: (re)starts replica NAME; reuses its db/data dir.
# Picking a free port and binding it are two steps other tests can get between:
# when latticed could not bind, it is started again on other ports (3 tries).
lattice_start() {
	local name=$1 try
	for try in 1 2 3; do
		lattice_start_once "$@" && return 0
		grep -qE "cannot listen|address already in use|raft_start" "$T_DIR/$name/latticed.log" || break
		echo "# $name: ports taken, retrying on others" >&2
		free_port >"$T_DIR/$name/http_port"
		free_port >"$T_DIR/$name/raft_port"
		: >"$T_DIR/$name/latticed.log"
	done
	tail -20 "$T_DIR/$name/latticed.log" | sed 's/^/# /'
	bail "latticed did not become ready"
}

lattice_start_once() {
	local name=$1; shift
	if [ ! -d "$T_DIR/$name" ]; then
		mkdir -p "$T_DIR/$name"
		pg_createdb "$name" >"$T_DIR/$name/conninfo" || bail "createdb $name failed"
		free_port >"$T_DIR/$name/http_port"
		free_port >"$T_DIR/$name/raft_port"
	fi
	local http raft
	http=$(cat "$T_DIR/$name/http_port")
	raft=$(cat "$T_DIR/$name/raft_port")
	API="http://127.0.0.1:$http"
	"$LATTICED" --listen "127.0.0.1:$http" --raft-address "127.0.0.1:$raft" --id 1 --bootstrap \
		--data-dir "$T_DIR/$name/data" --pg "$(cat "$T_DIR/$name/conninfo")" \
		--schema-dir "$SCHEMA_DIR" --heartbeat-timeout-ms 0 --log-level "${LOG_LEVEL:-info}" "$@" \
		>>"$T_DIR/$name/latticed.log" 2>&1 &
	LATTICED_PID=$!
	LATTICED_NAME=$name
	LIB_PIDS+=("$LATTICED_PID $name")
	local i
	for i in $(seq 1 300); do
		if curl -s -o /dev/null -w '%{http_code}' "$API/readyz" 2>/dev/null | grep -q 200; then
			return 0
		fi
		if ! kill -0 "$LATTICED_PID" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$LATTICED_PID/stat" 2>/dev/null)" = Z ]; then
			wait "$LATTICED_PID" 2>/dev/null
			lib_forget "$LATTICED_PID"
			LATTICED_PID=
			return 1
		fi
		sleep 0.1
	done
	return 1
}

# lattice_stop [TIMEOUT_S]: SIGTERM the current replica and wait for it (60 s,
# then SIGKILL); LATTICED_EXIT is its exit status ("timeout" when killed). Each
# stop is also checked by the file's final point.
lattice_stop() {
	[ -n "$LATTICED_PID" ] || return 0
	lib_term "$LATTICED_PID" "${LATTICED_NAME:-latticed}" "${1:-60}"
	LATTICED_EXIT=$LIB_ST
	LATTICED_PID=
}

lattice_kill() {
	[ -n "$LATTICED_PID" ] || return 0
	kill -9 "$LATTICED_PID" 2>/dev/null
	wait "$LATTICED_PID" 2>/dev/null
	lib_forget "$LATTICED_PID"
	LATTICED_PID=
}

lattice_log() { cat "$T_DIR/$1/latticed.log"; }

STATUS=
BODY=
HDRS=
# req METHOD PATH [BODY [CONTENT-TYPE]]
req() {
	local method=$1 path=$2 data=${3-} ctype=${4-application/json}
	HDRS="$T_DIR/last.headers"
	local args=(-s -S -X "$method" -D "$HDRS" -o "$T_DIR/last.body" -w '%{http_code}' --max-time 60)
	if [ $# -ge 3 ]; then
		args+=(-H "Content-Type: $ctype" --data-binary "$data")
	fi
	local h
	for h in "${REQ_HEADERS[@]}"; do args+=(-H "$h"); done
	rm -f "$T_DIR/last.body" "$HDRS"
	STATUS=$(curl "${args[@]}" "$API$path" 2>"$T_DIR/last.curlerr") || STATUS=000
	BODY=$(cat "$T_DIR/last.body" 2>/dev/null)
	# Every exchange, for the check against api/openapi.yaml (contract.sh).
	jq -cn --arg m "$method" --arg p "$path" --arg s "$STATUS" --rawfile b "${T_DIR}/last.body" \
		--rawfile h "$HDRS" '{method: $m, path: $p, status: ($s | tonumber), head: $h, body: $b}' \
		>>"$T_DIR/exchanges.jsonl" 2>/dev/null || true
}
jqr() { printf '%s' "$BODY" | jq -r "$1" 2>/dev/null; }
header() { grep -i "^$1:" "$HDRS" 2>/dev/null | head -1 | sed 's/^[^:]*: *//; s/\r$//'; }

# err: "STATUS code" of the last response, for one-line error assertions.
err() { printf '%s %s' "$STATUS" "$(jqr '.error.code')"; }

# read_failed: what a helper that reads a value prints when the read failed:
# "ERROR:STATUS:code#N", N unique to the call (the shell's BASHPID, and each $(...)
# is a shell of its own), so a failed read never equals an expected value, nor
# another failed read it is compared with.
read_failed() { printf 'ERROR:%s:%s#%s' "$STATUS" "$(jqr '.error.code // "?"')" "$BASHPID"; }

# list_ids PATH: the space-separated ids (or policy_ids) of a list; a failed list
# prints read_failed's text instead, so it can never pass for an empty one.
list_ids() {
	req GET "$1"
	if [ "$STATUS" != 200 ] || [ "$(jqr '.items | type')" != array ]; then
		read_failed
		return 1
	fi
	jqr '[.items[] | (.id // .policy_id)] | join(" ")'
}

# ---- holding the projection back ---------------------------------------------------
# pg_hold NAME [TABLE MODE]: a psql session takes LOCK TABLE lattice_state IN
# EXCLUSIVE MODE (or TABLE in MODE) in replica NAME's database and keeps it
# (returns once the lock is held). Every projection round ends by advancing
# lattice_state.applied_index, so while it is held the replica still commits
# writes in Raft but its PostgreSQL shows none of them; reads are not blocked
# (EXCLUSIVE lets SELECTs through; ACCESS EXCLUSIVE on a table holds its reads
# too). pg_release lets go. The writer gives up on a round that hears nothing
# for 30 s: hold for less.
PG_HOLD_PID=
pg_hold() {
	[ -z "$PG_HOLD_PID" ] || bail "pg_hold: already holding"
	rm -f "$T_DIR/hold.in" "$T_DIR/hold.out"
	mkfifo "$T_DIR/hold.in" || bail "mkfifo failed"
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$1" \
		<"$T_DIR/hold.in" >"$T_DIR/hold.out" 2>&1 &
	PG_HOLD_PID=$!
	exec 7>"$T_DIR/hold.in"
	echo "BEGIN; LOCK TABLE ${2:-lattice_state} IN ${3:-EXCLUSIVE} MODE; SELECT 'held';" >&7
	local i
	for i in $(seq 1 300); do
		grep -qx held "$T_DIR/hold.out" 2>/dev/null && return 0
		kill -0 "$PG_HOLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# psql: /' "$T_DIR/hold.out"
	bail "pg_hold: could not take the lock"
}
pg_release() {
	[ -n "$PG_HOLD_PID" ] || return 0
	echo "COMMIT;" >&7
	exec 7>&-
	wait "$PG_HOLD_PID"
	PG_HOLD_PID=
	rm -f "$T_DIR/hold.in"
}

# cluster_field FILTER: one field of GET /v1/cluster (commit_index, applied_index,
# projected_index, ...); read_failed's text when the read failed.
cluster_field() {
	req GET /v1/cluster
	[ "$STATUS" = 200 ] || { read_failed; return 1; }
	jqr "$1"
}

# wait_lagging [TIMEOUT_S]: waits until this replica has applied an entry its
# PostgreSQL does not show yet (applied_index > projected_index): a write taken
# while pg_hold holds the projection back has been committed. 0 when it has.
wait_lagging() {
	local i a p
	for ((i = 0; i < ${1:-30} * 10; i++)); do
		req GET /v1/cluster
		a=$(jqr .applied_index) p=$(jqr .projected_index)
		[ "$STATUS" = 200 ] && [ "$a" -gt "$p" ] 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- requests in the background ------------------------------------------------------
# req_bg TAG METHOD PATH [BODY]: req, in the background. req_bg_done TAG: has it
# been answered yet? req_bg_wait TAG: waits for it and sets STATUS, BODY and HDRS
# as req does, and REQ_BG_AT: when the answer came (ms since the epoch).
declare -A REQ_BG_PIDS=()
req_bg() {
	local tag=$1 method=$2 path=$3 f="$T_DIR/bg.$1"
	local args=(-s -S -X "$method" -D "$f.headers" -o "$f.body" -w '%{http_code}' --max-time 120)
	[ $# -ge 4 ] && args+=(-H "Content-Type: application/json" --data-binary "$4")
	rm -f "$f".*
	(
		curl "${args[@]}" "$API$path" >"$f.status" 2>"$f.err" || echo 000 >"$f.status"
		date +%s%3N >"$f.at"
	) &
	REQ_BG_PIDS[$tag]=$!
}
req_bg_done() { [ -s "$T_DIR/bg.$1.at" ]; }
req_bg_wait() {
	local f="$T_DIR/bg.$1"
	wait "${REQ_BG_PIDS[$1]}"
	STATUS=$(cat "$f.status" 2>/dev/null)
	BODY=$(cat "$f.body" 2>/dev/null)
	HDRS="$f.headers"
	REQ_BG_AT=$(cat "$f.at" 2>/dev/null)
}
now_ms() { date +%s%3N; }

# wait_ready: polls /readyz of $API until 200 (generous: only guards a hang); 1 if
# it never was.
wait_ready() {
	local i
	for i in $(seq 1 600); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$API/readyz")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}
# wait_jobs: waits for this shell's background jobs, except the latticed it runs
# (a bare `wait` would wait for those too).
wait_jobs() {
	local j
	for j in $(jobs -p); do
		[ "$j" = "$LATTICED_PID" ] || printf '%s\n' "${LIB_PIDS[@]}" | grep -q "^$j " || wait "$j"
	done
}
