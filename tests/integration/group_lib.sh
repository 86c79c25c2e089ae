# group_lib.sh — a group of latticed replicas for the integration tests
# (sourced after lib.sh). Each replica has its own database on the file's
# PostgreSQL server, its own data dir and ports.
#
#   GROUP_PREFIX (default r)      names of the replicas' dirs and databases (r1, r2...)
#   group_init N                  N replicas' dirs, databases and ports; MEMBERS
#   group_start I [FLAGS...]      start replica I (bootstrap of MEMBERS, or FLAGS)
#   group_wait_ready I            until replica I's /readyz answers 200
#   group_api I                   its base URL
#   group_kill I / group_term I   SIGKILL (a crash) / SIGTERM and wait
#   group_leader                  the id of the leader every running replica agrees on
#   greq I METHOD PATH [BODY]     req against replica I
#   group_dump I                  replica I's database, table by table, as text
#   group_same_db I J...          compare dumps; prints the first difference

GROUP_N=0
MEMBERS=
declare -A GPID=()

group_init() {
	local n=$1 i
	GROUP_N=$n
	MEMBERS=
	for ((i = 1; i <= n; i++)); do
		group_dir_new "$i"
		MEMBERS+="${MEMBERS:+,}$i=127.0.0.1:$(cat "$T_DIR/${GROUP_PREFIX:-r}$i/raft_port")"
	done
}

group_dir_new() {
	local i=$1
	mkdir -p "$T_DIR/${GROUP_PREFIX:-r}$i"
	pg_createdb "${GROUP_PREFIX:-r}$i" >"$T_DIR/${GROUP_PREFIX:-r}$i/conninfo" || bail "createdb ${GROUP_PREFIX:-r}$i failed"
	free_port >"$T_DIR/${GROUP_PREFIX:-r}$i/http_port"
	free_port >"$T_DIR/${GROUP_PREFIX:-r}$i/raft_port"
}

group_api() { echo "http://127.0.0.1:$(cat "$T_DIR/${GROUP_PREFIX:-r}$1/http_port")"; }

# group_start I [FLAGS...]: without FLAGS, bootstraps from MEMBERS.
group_start() {
	local i=$1; shift
	local flags=("$@")
	[ ${#flags[@]} -eq 0 ] && flags=(--bootstrap --members "$MEMBERS")
	"$LATTICED" --id "$i" --listen "127.0.0.1:$(cat "$T_DIR/${GROUP_PREFIX:-r}$i/http_port")" \
		--raft-address "127.0.0.1:$(cat "$T_DIR/${GROUP_PREFIX:-r}$i/raft_port")" \
		--data-dir "$T_DIR/${GROUP_PREFIX:-r}$i/data" --pg "$(cat "$T_DIR/${GROUP_PREFIX:-r}$i/conninfo")" \
		--schema-dir "$SCHEMA_DIR" --heartbeat-timeout-ms 0 --log-level "${LOG_LEVEL:-info}" "${flags[@]}" \
		>>"$T_DIR/${GROUP_PREFIX:-r}$i/latticed.log" 2>&1 &
	GPID[$i]=$!
	LIB_PIDS+=("$! ${GROUP_PREFIX:-r}$i")
}

group_alive() { [ -n "${GPID[$1]:-}" ] && [ -d "/proc/${GPID[$1]}" ] && [ "$(awk '{print $3}' "/proc/${GPID[$1]}/stat" 2>/dev/null)" != Z ]; }

group_wait_ready() {
	local i=$1 t
	for t in $(seq 1 600); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$(group_api "$i")/readyz")" = 200 ] && return 0
		group_alive "$i" || { diag "replica $i exited:"; tail -5 "$T_DIR/${GROUP_PREFIX:-r}$i/latticed.log" | sed 's/^/#   /'; return 1; }
		sleep 0.1
	done
	diag "replica $i not ready after 60 s:"
	tail -5 "$T_DIR/${GROUP_PREFIX:-r}$i/latticed.log" | sed 's/^/#   /'
	return 1
}

group_kill() {
	local pid=${GPID[$1]}
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	lib_forget "$pid"
	GPID[$1]=
}

group_term() {
	lib_term "${GPID[$1]}" "${GROUP_PREFIX:-r}$1" 60
	GPID[$1]=
}

# The leader's id as replica I sees it ("" none).
group_leader_of() {
	curl -s --max-time 5 "$(group_api "$1")/v1/cluster" | jq -r '.leader.id // empty' 2>/dev/null
}

# Waits (60 s) until every running replica names the same leader; prints it.
group_leader() {
	local t i l first
	for t in $(seq 1 300); do
		first=
		for ((i = 1; i <= GROUP_MAX_ID; i++)); do
			group_alive "$i" || continue
			l=$(group_leader_of "$i")
			[ -n "$l" ] || { first=; break; }
			[ -z "$first" ] && first=$l
			[ "$l" = "$first" ] || { first=; break; }
		done
		if [ -n "$first" ]; then
			echo "$first"
			return 0
		fi
		sleep 0.2
	done
	return 1
}
GROUP_MAX_ID=9

greq() {
	local i=$1; shift
	local save=$API
	API=$(group_api "$i")
	req "$@"
	API=$save
}

# Replica I's database as text: every table the projection writes, ordered.
group_dump() {
	local i=$1 db="${GROUP_PREFIX:-r}$1" t
	for t in nodes actors placements providers links policies snapshots commands failovers events; do
		echo "== $t"
		pg_psql "$db" "SELECT * FROM $t ORDER BY 1" 2>&1
	done
	echo "== applied"
	pg_psql "$db" "SELECT applied_index FROM lattice_state" 2>&1
}

# group_same_db I J...: 0 when every dump equals replica I's (without the
# applied index line, which may differ by rowless entries); else prints a diff.
group_same_db() {
	local a=$1 b; shift
	group_dump "$a" | sed '/^== applied/,$d' >"$T_DIR/dump.$a"
	for b in "$@"; do
		group_dump "$b" | sed '/^== applied/,$d' >"$T_DIR/dump.$b"
		if ! cmp -s "$T_DIR/dump.$a" "$T_DIR/dump.$b"; then
			diag "replica $b's database differs from replica $a's:"
			diff "$T_DIR/dump.$a" "$T_DIR/dump.$b" | head -20 | sed 's/^/#   /'
			return 1
		fi
	done
	return 0
}
