# lib.sh — helpers for the integration tests (sourced): a throwaway PostgreSQL,
# latticed processes started on free loopback ports, and an HTTP client.
#
#   lattice_start NAME [FLAGS...]   start a replica with its own database/data dir
#   lattice_stop / lattice_kill     SIGTERM (clean) or SIGKILL it
#   req METHOD PATH [BODY]          HTTP request; sets STATUS, BODY, HDRS (file)
#   jqr FILTER                      jq -r FILTER on the last BODY
# Everything started is stopped by the EXIT trap.

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"

LATTICED=${LATTICED:-$top_builddir/latticed}
SCHEMA_DIR=${SCHEMA_DIR:-$top_srcdir/schema}
LATTICED_PID=
API=
T_DIR=

command -v jq >/dev/null || skip_all "jq is not installed"
command -v curl >/dev/null || skip_all "curl is not installed"
[ -x "$PGBIN/initdb" ] || skip_all "PostgreSQL server binaries not found in $PGBIN"
[ -x "$LATTICED" ] || bail "latticed not built at $LATTICED"

lib_cleanup() {
	if [ -n "$LATTICED_PID" ] && kill -0 "$LATTICED_PID" 2>/dev/null; then
		kill -9 "$LATTICED_PID" 2>/dev/null
		wait "$LATTICED_PID" 2>/dev/null
	fi
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
	T_DIR=$(mktemp -d /tmp/lattice-test.XXXXXX) || bail "mktemp failed"
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
	local i
	for i in $(seq 1 300); do
		if curl -s -o /dev/null -w '%{http_code}' "$API/readyz" 2>/dev/null | grep -q 200; then
			return 0
		fi
		if ! kill -0 "$LATTICED_PID" 2>/dev/null; then
			wait "$LATTICED_PID" 2>/dev/null
			LATTICED_PID=
			return 1
		fi
		sleep 0.1
	done
	return 1
}

lattice_stop() {
	[ -n "$LATTICED_PID" ] || return 0
	kill -TERM "$LATTICED_PID" 2>/dev/null
	wait "$LATTICED_PID"
	LATTICED_EXIT=$?
	LATTICED_PID=
}

lattice_kill() {
	[ -n "$LATTICED_PID" ] || return 0
	kill -9 "$LATTICED_PID" 2>/dev/null
	wait "$LATTICED_PID" 2>/dev/null
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
	STATUS=$(curl "${args[@]}" "$API$path" 2>"$T_DIR/last.curlerr") || STATUS=000
	BODY=$(cat "$T_DIR/last.body")
}
jqr() { printf '%s' "$BODY" | jq -r "$1" 2>/dev/null; }
header() { grep -i "^$1:" "$HDRS" | head -1 | sed 's/^[^:]*: *//; s/\r$//'; }
