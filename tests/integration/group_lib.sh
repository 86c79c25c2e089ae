# group_lib.sh — a group of latticed replicas for the integration tests
# (sourced after lib.sh). Each replica has its own database on the file's
# PostgreSQL server, its own data dir and ports.
#
#   GROUP_PREFIX (default r)      names of the replicas' dirs and databases (r1, r2...)
#   group_init N                  N replicas' dirs, databases and ports; MEMBERS
#   group_start I [FLAGS...]      start replica I (bootstrap of MEMBERS, or FLAGS)
#   group_wait_ready I            until replica I's /readyz answers 200
#   group_api I                   its base URL
#   group_kill I / group_term I...  SIGKILL (a crash) / SIGTERM and wait
#   group_reap_crash I            replica I crashed on its own (a TODO): reap it
#   group_leader [I...]           the id of the leader every running replica (or I...) agrees on
#   greq I METHOD PATH [BODY]     req against replica I
#   group_dump I                  replica I's database, table by table, as text
#   group_same_db I J...          compare dumps; prints the first difference
#   group_psql I SQL              SQL in replica I's database (unaligned tuples)
#   group_pg_own I                give replica I a PostgreSQL server of its own
#   group_pg I FUNC [ARGS...]     a servers.sh function (pg_restart, pg_kill,
#                                 pg_ctl_start...) on replica I's server
#   group_writer_start I...       a stream of writes spread over replicas I...
#   group_writer_stop             ends it; group_writes_summary says how it went
#   group_wait_acks LINE N I...   until each of I... acknowledged N writes after LINE
#   group_settle I...             until replicas I... project all the leader committed
#   group_check_writes I...       every acknowledged write is in each database,
#                                 every unacknowledged one in all or in none
#   group_check NAME I...         stop the stream, settle, check: two TAP points

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

# group_start I [FLAGS...]: without FLAGS, bootstraps from MEMBERS. The REST
# port was free when group_dir_new picked it, but a test running beside this
# one can take it first ("cannot listen on 127.0.0.1:PORT"): then the replica
# starts again on another (its Raft port is in MEMBERS and stays).
group_start() {
	local i=$1; shift
	local flags=("$@") d="$T_DIR/${GROUP_PREFIX:-r}$i" try port
	[ ${#flags[@]} -eq 0 ] && flags=(--bootstrap --members "$MEMBERS")
	for try in 1 2 3; do
		port=$(cat "$d/http_port")
		"$LATTICED" --id "$i" --listen "127.0.0.1:$port" \
			--raft-address "127.0.0.1:$(cat "$d/raft_port")" \
			--data-dir "$d/data" --pg "$(cat "$d/conninfo")" \
			--schema-dir "$SCHEMA_DIR" --heartbeat-timeout-ms 0 --log-level "${LOG_LEVEL:-info}" "${flags[@]}" \
			>>"$d/latticed.log" 2>&1 &
		GPID[$i]=$!
		LIB_PIDS+=("$! ${GROUP_PREFIX:-r}$i")
		# Listening on it itself (not whoever took it), or gone: at most 3 s.
		for _ in $(seq 1 30); do
			ss -Htlnp "sport = :$port" 2>/dev/null | grep -q "pid=${GPID[$i]}," && return 0
			group_alive "$i" || break
			sleep 0.1
		done
		group_alive "$i" && return 0
		tail -3 "$d/latticed.log" | grep -q "cannot listen on 127.0.0.1:$port " || return 0
		wait "${GPID[$i]}" 2>/dev/null
		lib_forget "${GPID[$i]}"
		diag "${GROUP_PREFIX:-r}$i: REST port $port taken, starting again on another"
		free_port >"$d/http_port"
	done
}

group_alive() { [ -n "${GPID[$1]:-}" ] && [ -d "/proc/${GPID[$1]}" ] && [ "$(awk '{print $3}' "/proc/${GPID[$1]}/stat" 2>/dev/null)" != Z ]; }

group_wait_ready() {
	local i=$1 t
	for _ in $(seq 1 600); do
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

# group_term I...: SIGTERM to each at once (one signal: a second one would kill a
# replica that is shutting down), then waits for each (lib_term's record).
group_term() {
	local i pid
	for i in "$@"; do kill -TERM "${GPID[$i]}" 2>/dev/null; done
	for i in "$@"; do
		pid=${GPID[$i]}
		lib_reap "$pid" 60
		echo "${GROUP_PREFIX:-r}$i $pid $LIB_ST" >>"$T_DIR/stops"
		lib_forget "$pid"
		GPID[$i]=
	done
}

# group_reap_crash I: replica I died on its own (a known crash, a TODO point):
# reaps it, shows its log's tail, and moves its sanitizer report and its log
# aside ($T_DIR/known-crash.PID, rI/latticed-crash.PID.txt: UBSan writes to the
# log) so that the file's last point judges the rest.
group_reap_crash() {
	local pid=${GPID[$1]} f
	wait "$pid" 2>/dev/null
	diag "replica $1 (pid $pid) exited with status $?; its log ends:"
	tail -3 "$T_DIR/${GROUP_PREFIX:-r}$1/latticed.log" | sed 's/^/#   /'
	for f in "$T_DIR/sanitizer.$pid"*; do
		[ -f "$f" ] || continue
		grep -m1 -A6 'ERROR: ' "$f" | sed 's/^/#   /'
		mv "$f" "$T_DIR/known-crash.${f##*/sanitizer.}"
	done
	mv "$T_DIR/${GROUP_PREFIX:-r}$1/latticed.log" "$T_DIR/${GROUP_PREFIX:-r}$1/latticed-crash.$pid.txt"
	lib_forget "$pid"
	GPID[$1]=
}

# The leader's id as replica I sees it ("" none).
group_leader_of() {
	curl -s --max-time 5 "$(group_api "$1")/v1/cluster" | jq -r '.leader.id // empty' 2>/dev/null
}

# group_leader [I...]: waits (60 s) until every replica listed (default: every
# running one) names the same leader; prints it. A replica removed from the
# group hears of no leader: leave it out.
group_leader() {
	local t i l first ids=("$@")
	[ ${#ids[@]} -gt 0 ] || for ((i = 1; i <= GROUP_MAX_ID; i++)); do group_alive "$i" && ids+=("$i"); done
	for _ in $(seq 1 300); do
		first=
		for i in "${ids[@]}"; do
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

# Replica I's database as text: every table the projection writes (or those
# GROUP_TABLES names), ordered.
GROUP_ALL_TABLES="nodes actors placements providers links policies snapshots commands failovers events"
group_dump() {
	local i=$1 t
	for t in ${GROUP_TABLES:-$GROUP_ALL_TABLES}; do
		echo "== $t"
		# sorted whole: ORDER BY 1 leaves rows with one key (placements of
		# an actor, by actor_id) in any order
		group_psql "$i" "SELECT * FROM $t ORDER BY 1" 2>&1 | LC_ALL=C sort
	done
	echo "== applied"
	group_psql "$i" "SELECT applied_index FROM lattice_state" 2>&1
}

# group_psql I SQL: through replica I's own conninfo, so on whichever server
# holds its database.
group_psql() {
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$(cat "$T_DIR/${GROUP_PREFIX:-r}$1/conninfo")" -c "$2"
}

# group_pg_own I: replica I's database moves to a PostgreSQL server of its own
# (servers.sh's pg_use "rI"), so it can be stopped, restarted or killed alone.
# Before replica I first starts.
declare -A GPG=() # replica -> its server's name (unset: "main")
group_pg_own() {
	local i=$1 save=$PG_NAME
	pg_use "${GROUP_PREFIX:-r}$i"
	pg_start || bail "cannot start replica $i's PostgreSQL"
	pg_createdb "${GROUP_PREFIX:-r}$i" >"$T_DIR/${GROUP_PREFIX:-r}$i/conninfo" || bail "createdb ${GROUP_PREFIX:-r}$i failed"
	pg_use "$save"
	GPG[$i]="${GROUP_PREFIX:-r}$i"
}

group_pg() {
	local i=$1 save=$PG_NAME rc
	shift
	pg_use "${GPG[$i]:-main}"
	"$@"
	rc=$?
	pg_use "$save"
	return $rc
}

# ---- a stream of writes ---------------------------------------------------------------
# group_writer_start I...: in the background, creates nodes w1, w2, ... one at a
# time, each sent to the next replica of I... in turn (client-chosen ids, so what
# was acknowledged can be looked for). Every answer is a line of $T_DIR/writes:
# "ID REPLICA STATUS INDEX CODE" (CODE: error.code, "-" for none). A replica that
# is down answers 000 and the stream goes on to the next one.
GROUP_WRITER=
GROUP_WRITES_N=0 # ids already used, so a new stream goes on numbering
group_writer_start() {
	[ -z "$GROUP_WRITER" ] || bail "group_writer_start: already running"
	rm -f "$T_DIR/writer.stop"
	local targets=() i parent=$$ first=$((GROUP_WRITES_N + 1))
	for i in "$@"; do targets+=("$i $(group_api "$i")"); done
	touch "$T_DIR/writes"
	(
		n=$first
		# Ends when told, or when the test is gone (a bail-out).
		while [ ! -e "$T_DIR/writer.stop" ] && kill -0 "$parent" 2>/dev/null; do
			for t in "${targets[@]}"; do
				[ -e "$T_DIR/writer.stop" ] && break
				rm -f "$T_DIR/writer.body" "$T_DIR/writer.headers"
				st=$(curl -s -o "$T_DIR/writer.body" -D "$T_DIR/writer.headers" -w '%{http_code}' \
					--max-time 60 -X POST -H 'Content-Type: application/json' \
					--data-binary "{\"id\":\"w$n\",\"region\":\"r\",\"cpu_capacity\":1000,\"memory_mb\":1000}" \
					"${t#* }/v1/nodes" 2>/dev/null) || st=000
				idx=$(sed -n 's/^[Xx]-[Ll]attice-[Ii]ndex: *\([0-9]*\).*/\1/p' "$T_DIR/writer.headers" 2>/dev/null)
				code=-
				[ "$st" = 201 ] || code=$(jq -r '.error.code // "-"' "$T_DIR/writer.body" 2>/dev/null)
				echo "w$n ${t%% *} $st ${idx:--} ${code:--}" >>"$T_DIR/writes"
				n=$((n + 1))
				[ "$st" = 201 ] || sleep 0.05 # a replica that is down: not in a tight loop
			done
		done
		echo "$n" >"$T_DIR/writer.next"
	) &
	GROUP_WRITER=$!
}

group_writer_stop() {
	[ -n "$GROUP_WRITER" ] || return 0
	touch "$T_DIR/writer.stop"
	wait "$GROUP_WRITER"
	GROUP_WRITER=
	GROUP_WRITES_N=$(($(cat "$T_DIR/writer.next") - 1))
}

# group_writes_since N: the lines of $T_DIR/writes after its first N.
group_writes_since() { tail -n +"$(($1 + 1))" "$T_DIR/writes"; }
group_writes_count() { wc -l <"$T_DIR/writes"; }
# A summary of lines ("12 x 201, 3 x 503 unavailable, ...") for diagnostics.
group_writes_summary() { awk '{k = $3 ($3 == 201 ? "" : " " $5); c[k]++} END {for (k in c) printf "%d x %s, ", c[k], k}'; }

# group_acks_by LINE I: how many writes replica I acknowledged after line LINE.
group_acks_by() { group_writes_since "$1" | awk -v r="$2" '$3 == 201 && $2 == r' | wc -l; }
# group_wait_acks LINE N I...: until each of I... acknowledged N writes of the
# stream after line LINE (a guard of 120 s against a hang); 0 when they did, else
# says how far they got.
group_wait_acks() {
	local from=$1 n=$2 i all
	shift 2
	for _ in $(seq 1 600); do
		all=1
		for i in "$@"; do [ "$(group_acks_by "$from" "$i")" -ge "$n" ] || { all=; break; }; done
		[ -n "$all" ] && return 0
		sleep 0.2
	done
	diag "after 120 s: $(for i in "$@"; do printf 'replica %s acknowledged %s; ' "$i" "$(group_acks_by "$from" "$i")"; done)"
	diag "answers since: $(group_writes_since "$from" | group_writes_summary)"
	return 1
}

# The commit index replica I reports ("" when it does not answer).
group_field() { curl -s --max-time 5 "$(group_api "$1")/v1/cluster" | jq -r "$2 // empty" 2>/dev/null; }

# group_settle I...: waits (60 s) until every replica listed has projected
# everything the leader had committed, with nothing committed meanwhile. 0 when so.
group_settle() {
	local end l c c2 i p all
	end=$(($(date +%s) + 60))
	while [ "$(date +%s)" -lt "$end" ]; do
		l=$(group_leader "$@") || break
		c=$(group_field "$l" .commit_index)
		all=1
		for i in "$@"; do
			p=$(group_field "$i" .projected_index)
			[ -n "$c" ] && [ "$p" -ge "$c" ] 2>/dev/null || { all=; break; }
		done
		c2=$(group_field "$l" .commit_index)
		[ -n "$all" ] && [ "$c" = "$c2" ] && return 0
		sleep 0.2
	done
	diag "replicas $* did not settle in 60 s (leader ${l:-none}, commit index ${c:-?})"
	return 1
}

# group_check NAME I...: the stream's writes so far against the databases of
# replicas I...: two points (every acknowledged write in each, every other one in
# all or none; the databases identical). The stream is stopped for it: start it
# again after.
group_check() {
	local name=$1
	shift
	group_writer_stop
	group_settle "$@"
	group_check_writes "$@"
	ok $? "$name: every acknowledged write is in the databases of replicas $*, every other one in all or none ($(group_writes_count) writes: $(group_writes_summary <"$T_DIR/writes"))"
	group_same_db "$@"
	ok $? "$name: the databases of replicas $* are identical"
}

# group_others I: the ids 1..3 but I.
group_others() { local i; for i in 1 2 3; do [ "$i" = "$1" ] || printf '%s ' "$i"; done; }

# group_check_writes I...: after group_settle: every write the stream had
# acknowledged (201) is in each listed replica's nodes table; each other one (an
# error, no answer) is in all of them or in none. 0 when so; else says what not.
group_check_writes() {
	local i bad=0 first=
	awk '$3 == 201 {print $1}' "$T_DIR/writes" | sort >"$T_DIR/acked"
	awk '$3 != 201 {print $1}' "$T_DIR/writes" | sort >"$T_DIR/unsure"
	for i in "$@"; do
		if ! group_psql "$i" "SELECT id FROM nodes" 2>&1 | sort >"$T_DIR/have.$i" || grep -q ERROR "$T_DIR/have.$i"; then
			diag "replica $i's database cannot be read: $(head -1 "$T_DIR/have.$i")"
			bad=1
			continue
		fi
		local missing
		missing=$(comm -23 "$T_DIR/acked" "$T_DIR/have.$i" | head -20 | tr '\n' ' ')
		if [ -n "$missing" ]; then
			diag "replica $i's database lacks acknowledged writes: $missing"
			bad=1
		fi
		comm -12 "$T_DIR/unsure" "$T_DIR/have.$i" >"$T_DIR/unsure.$i"
		if [ -z "$first" ]; then
			first=$i
		elif ! cmp -s "$T_DIR/unsure.$first" "$T_DIR/unsure.$i"; then
			diag "unacknowledged writes in replica $first's database but not $i's, or the other way round:" \
				"$(diff "$T_DIR/unsure.$first" "$T_DIR/unsure.$i" | grep '^[<>]' | head -10 | tr '\n' ' ')"
			bad=1
		fi
	done
	return $bad
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
