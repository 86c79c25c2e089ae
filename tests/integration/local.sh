#!/usr/bin/env bash
# local.sh — scripts/local-lattice.sh: `up` runs three replicas, each with its own
# database on one PostgreSQL, all ready under one leader, the demo in all three
# databases alike, writes to a follower passed on to the leader; nats-server with
# JetStream on loopback and six agents whose nodes are healthy in their regions,
# the demo's actors running on them; a killed agent's node turns unhealthy and
# its actors fail over, `agent start` brings it back and its old copies are
# fenced (failover_fencing stops acked); a second `up`
# refuses and leaves the running lattice alone; `stop` returns only once every
# process it stopped has exited, waiting for a slow latticed and killing one that
# never exits; a restart resumes the group and its data; a kill -9 of `up` leaves
# no stale lock; a killed leader is replaced and `start N` brings it back;
# Ctrl-C stops everything; a single-replica run dir (LATTICE_REPLICAS=1, or the
# script's single-replica version) grows into a group of three; stop and Ctrl-C
# leave no nats-server or agent behind, a restart keeps the JetStream store.
# Runs the script on its own run dirs and free ports with the built latticed and
# lattice-agent (LATTICE_RUN_DIR, LATTICE_PORT, LATTICE_RAFT_PORT,
# LATTICE_NATS_PORT, LATTICED): nothing is installed or built and the checkout's
# run/ is not touched.
. "$(dirname "$0")/lib.sh"
plan 99
[ -x "$NATS_SERVER" ] || skip_all "nats-server not found ($NATS_SERVER)"
[ -x "$top_builddir/sim/lattice-agent" ] || bail "build sim/lattice-agent first (make does)"

SCRIPT=$top_srcdir/scripts/local-lattice.sh
chmod 755 "$T_DIR" # PostgreSQL runs as the postgres user when we are root
RUN=$T_DIR/run

# free_ports N [AVOID]: the first of N consecutive free ports (none within 3 of AVOID).
free_ports() {
	local p i ok
	for _ in $(seq 1 200); do
		p=$(((RANDOM % 12000) + 20000)) ok=1
		[ -n "${2:-}" ] && [ "$p" -gt $(($2 - 4)) ] && [ "$p" -lt $(($2 + 4)) ] && continue
		for ((i = 0; i < $1; i++)); do
			(exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null && { ok=; break; }
		done
		[ -n "$ok" ] && { echo "$p"; return 0; }
	done
	return 1
}
PORT=$(free_ports 3) || bail "no free ports"
RAFT_PORT=$(free_ports 3 "$PORT") || bail "no free ports"
for _ in $(seq 1 50); do # clear of both ranges
	NATS_PORT=$(free_ports 1 "$PORT") || bail "no free ports"
	[ "$NATS_PORT" -gt $((RAFT_PORT + 3)) ] || [ "$NATS_PORT" -lt $((RAFT_PORT - 1)) ] && break
done
AGENTS="edge-ap-south-1 edge-ap-south-2 edge-eu-west-1 edge-eu-west-2 edge-us-east-1 edge-us-east-2" # sorted
UP_PID=
STOPPED_PIDS=() # every pid the script started, for the final check

# No fsync: this PostgreSQL lives for the test alone, and syncing a fresh cluster
# takes seconds on a busy disk.
LX_ENV=(LATTICE_RUN_DIR="$RUN" LATTICE_PORT="$PORT" LATTICE_RAFT_PORT="$RAFT_PORT" LATTICED="$LATTICED"
	PGBIN="$PGBIN" LATTICE_PG_FSYNC=0 LATTICE_NATS_PORT="$NATS_PORT" LATTICE_NATS_SERVER="$NATS_SERVER")
# lx ARGS: runs the script with this test's overrides (in the foreground: the
# timeout only guards a hang).
lx() { timeout 300 env "${LX_ENV[@]}" bash "$SCRIPT" "$@"; }

api() { echo "http://127.0.0.1:$((PORT + $1 - 1))"; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$1"; }
req_api() { # I METHOD PATH [BODY]: req against replica I
	API=$(api "$1")
	shift
	req "$@"
}
leader_of() { curl -s --max-time 10 "$(api "$1")/v1/cluster" | jq -r '.leader.id // empty' 2>/dev/null; }

# agreed_leader I...: the leader these replicas all name, once they agree (60 s).
agreed_leader() {
	local t i l first
	for t in $(seq 1 300); do
		first=
		for i in "$@"; do
			l=$(leader_of "$i")
			if [ -z "$l" ] || [ "${first:-$l}" != "$l" ]; then first= && break; fi
			first=$l
		done
		[ -n "$first" ] && { echo "$first"; return 0; }
		sleep 0.2
	done
	return 1
}

alive() { # exists and has not exited (a zombie has)
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

children_of() { # pids whose parent is $1
	local f st fields
	for f in /proc/[0-9]*/stat; do
		st=$(cat "$f" 2>/dev/null) || continue
		read -r -a fields <<<"${st##*) }" # state ppid ...
		[ "${fields[1]}" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
	done
}

# start_up NAME [ENV...]: starts `up` in the background, in a session of its own
# with SIGINT at its default (as in a terminal, where Ctrl-C reaches it: a
# background job of a script would ignore it); waits until it says it is up.
start_up() {
	local name=$1; shift
	# setsid and env exec: $! is the script's own pid ($$ in it) and its group.
	setsid env --default-signal=INT "${LX_ENV[@]}" "$@" bash "$SCRIPT" up >"$T_DIR/$name.out" 2>&1 &
	UP_PID=$!
	local i
	for i in $(seq 1 1200); do
		grep -q "lattice is up" "$T_DIR/$name.out" && return 0
		alive "$UP_PID" || break
		sleep 0.1
	done
	sed 's/^/# /' "$T_DIR/$name.out"
	return 1
}

# record: the pids of the running lattice: LPIDS (replica I's latticed is
# LPIDS[I-1]), NATSPID, APIDS (the agents'), CORE (script, latticeds,
# postmaster, nats-server, agents), and PIDS (those and the postmaster's
# children, some of which come and go).
record() {
	local i f
	LPIDS=()
	for i in 1 2 3; do
		[ -f "$RUN/replica$i.pid" ] && LPIDS+=("$(cat "$RUN/replica$i.pid")")
	done
	PGPID=$(head -1 "$RUN/pg/data/postmaster.pid" 2>/dev/null)
	NATSPID=$(cat "$RUN/nats.pid" 2>/dev/null)
	APIDS=()
	for f in "$RUN"/agents/*.pid; do [ -f "$f" ] && APIDS+=("$(cat "$f")"); done
	CORE=("$UP_PID" "${LPIDS[@]}" $PGPID $NATSPID "${APIDS[@]}")
	PIDS=("${CORE[@]}" $([ -n "$PGPID" ] && children_of "$PGPID"))
	STOPPED_PIDS+=("${PIDS[@]}")
}

# none_alive PID...: prints the ones still running
none_alive() {
	local p left=
	for p in "$@"; do alive "$p" && left="$left $p"; done
	echo "${left# }"
}

# all_ready: the replicas whose /readyz is not 200 ("" when all are)
not_ready() {
	local i bad=
	for i in 1 2 3; do [ "$(code "$(api "$i")/readyz")" = 200 ] || bad="$bad $i"; done
	echo "${bad# }"
}

# dump DB: replica database DB, every table the projection writes, as text, in
# one snapshot; its first line is the index it shows.
dump() {
	local t
	{
		echo "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
		echo "SELECT 'index ' || applied_index FROM lattice_state;"
		for t in nodes actors placements providers links policies snapshots commands failovers events; do
			echo "SELECT '== $t'; SELECT * FROM $t ORDER BY 1;"
		done
		echo "COMMIT;"
	} | "$PGBIN/psql" -X -q -A -t -h "$RUN/pg" -U postgres -d "$1" -f - 2>&1
}

# dump_all: dumps the three databases into $T_DIR/dumpN, again until they show
# one index (live heartbeats keep the log moving); 1 when they never do.
dump_all() {
	local t i
	for t in $(seq 1 100); do
		for i in 1 2 3; do dump "lattice$i" >"$T_DIR/dump$i"; done
		[ "$(head -1 "$T_DIR/dump1")" = "$(head -1 "$T_DIR/dump2")" ] &&
			[ "$(head -1 "$T_DIR/dump1")" = "$(head -1 "$T_DIR/dump3")" ] && return 0
		sleep 0.1
	done
	return 1
}

# node_status ID: its status, from the leader's view (a consistent read)
node_status() {
	curl -s --max-time 10 "$(api 1)/v1/nodes/$1?consistent=true" | jq -r '.status // empty' 2>/dev/null
}

# wait_until SECONDS CMD...: runs CMD every 0.2 s until it succeeds (a hang guard)
wait_until() {
	local i n=$(($1 * 5))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# clean_stops: the replicas whose log does not end with a clean stop
clean_stops() {
	local i bad=
	for i in 1 2 3; do tail -1 "$RUN/replica$i.log" | grep -q "info  stopped$" || bad="$bad $i"; done
	echo "${bad# }"
}

local_cleanup() {
	local p f
	# Stop whatever the script started and is still up; the test fails anyway.
	for p in $(cat "$T_DIR"/run/replica*.pid "$T_DIR"/run2/replica*.pid "$T_DIR"/run*/nats.pid \
		"$T_DIR"/run*/agents/*.pid 2>/dev/null) "${STOPPED_PIDS[@]}"; do
		alive "$p" && kill -9 "$p" 2>/dev/null
	done
	for f in "$T_DIR/run" "$T_DIR/run2"; do
		[ -f "$f/pg/data/postmaster.pid" ] &&
			as_pg "$PGBIN/pg_ctl" -D "$f/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1
	done
	lib_cleanup
}
trap local_cleanup EXIT

# 1. Three replicas, each ready, one leader; the demo, loaded through replica 1,
#    is in all three databases alike; a write to a follower is taken.
start_up first || bail "the first local lattice did not come up"
record
ok $([ "${#LPIDS[@]}" = 3 ] && [ -n "$PGPID" ] && [ "$(none_alive "${LPIDS[@]}" "$PGPID")" = "${LPIDS[*]} $PGPID" ] &&
	echo 0 || echo 1) "first up: three latticeds (${LPIDS[*]}) and PostgreSQL ($PGPID) run from the test's run dir"
ok $([ -n "$NATSPID" ] && [ "${#APIDS[@]}" = 6 ] && [ "$(none_alive "$NATSPID" "${APIDS[@]}")" = "$NATSPID ${APIDS[*]}" ] &&
	echo 0 || echo 1) "and nats-server ($NATSPID) and six agents (${APIDS[*]})"
is "$(not_ready)" "" "every replica's /readyz answers 200"
LEAD=$(agreed_leader 1 2 3)
ok $? "the three replicas name one leader (replica $LEAD)"
req_api "$LEAD" GET /v1/cluster
is "$(jqr '[.self.state, ([.members[] | select(.role == "voter")] | length), ([.members[] | select(.leader)] | length)] | join(" ")')" \
	"leader 3 1" "it leads a group of three voters, one of them leading"
grep -q "lattice is up (3 replicas, replica $LEAD leads)" "$T_DIR/first.out"
ok $? "up says which replica leads"
missing=
for i in 1 2 3; do
	grep -qE "^  replica $i  $(api "$i") +(leader|follower) +pid ${LPIDS[$((i - 1))]} " "$T_DIR/first.out" || missing="$missing $i"
done
is "$missing" "" "up prints each replica's API URL, role and pid"
grep -q "kill -9 ${LPIDS[$((LEAD - 1))]}" "$T_DIR/first.out"
ok $? "and how to kill the leader for a failover"
sed 's/^/# first: /' "$T_DIR/first.out"
dbs=
for p in "${LPIDS[@]}"; do dbs+="${dbs:+ }$(tr '\0' ' ' <"/proc/$p/cmdline" | grep -o 'dbname=lattice[0-9]*')"; done
is "$dbs" "dbname=lattice1 dbname=lattice2 dbname=lattice3" "each replica runs on its own database"
FOLLOWER=$((LEAD % 3 + 1))
req_api "$FOLLOWER" POST /v1/nodes '{"id":"via-follower","region":"eu-west","cpu_capacity":1000,"memory_mb":1024}'
is "$STATUS" 201 "a write sent to a follower (replica $FOLLOWER) is taken (201)"
IDX=$(header X-Lattice-Index)
req_api "$LEAD" GET /v1/nodes/via-follower
is "$STATUS $(jqr .region)" "200 eu-west" "the leader shows it"
shown=
for i in 1 2 3; do
	req_api "$i" GET "/v1/nodes/via-follower?min_index=$IDX"
	shown="$shown $STATUS"
done
is "$shown" " 200 200 200" "every replica's PostgreSQL shows it (min_index=$IDX)"
req_api 1 GET "/v1/nodes?consistent=true"
is "$(jqr '[.items[].id] | join(" ")')" "$AGENTS via-follower" "the agents' nodes are there (registered by their heartbeats)"
NODES_BEFORE=$(jqr '[.items[].id] | join(" ")')
dump_all
ok $? "the three databases come to show one index ($(head -1 "$T_DIR/dump1"))"
same=0
for i in 2 3; do
	cmp -s "$T_DIR/dump1" "$T_DIR/dump$i" || { same=1; diff "$T_DIR/dump1" "$T_DIR/dump$i" | head -20 | sed 's/^/#   /'; }
done
ok $([ "$same" = 0 ] && grep -q "edge-processor" "$T_DIR/dump1" && echo 0 || echo 1) \
	"the three databases hold the same rows, demo included ($(grep -vc '^==' "$T_DIR/dump1") rows)"

# 1b. NATS and the agents: nats-server with JetStream on loopback only; the
#     agents' nodes healthy in their regions; the demo's actors running on them,
#     every start acked; an agent killed as up says: its node unhealthy, its
#     actors running elsewhere (a completed failover); `agent start` brings it
#     back and it acks the failover_fencing stops of its old copies.
tr '\0' ' ' <"/proc/$NATSPID/cmdline" | grep -qF -- "-a 127.0.0.1 -js -sd $RUN/nats -p $NATS_PORT"
ok $? "nats-server runs with JetStream (-js), its store in the run dir, on 127.0.0.1:$NATS_PORT"
INFO=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -1 <&3' _ "$NATS_PORT" 2>/dev/null)
is "$(sed 's/^INFO //' <<<"$INFO" | jq -c '[.host, .port, .jetstream]' 2>/dev/null)" "[\"127.0.0.1\",$NATS_PORT,true]" \
	"its INFO: host 127.0.0.1, port $NATS_PORT, JetStream on"
# Listening sockets on that port, from /proc/net/tcp{,6}: local address (hex),
# state 0A (LISTEN).
listen=$(awk -v p="$(printf '%04X' "$NATS_PORT")" '$4 == "0A" && substr($2, length($2) - 3) == p { print substr($2, 1, length($2) - 5) }' \
	/proc/net/tcp /proc/net/tcp6 | sort -u | tr '\n' ' ')
is "$listen" "0100007F " "it listens on 127.0.0.1 alone (not on 0.0.0.0 nor on IPv6)"
grep -qE "^  NATS +nats://127.0.0.1:$NATS_PORT +JetStream pid $NATSPID " "$T_DIR/first.out"
ok $? "up prints the NATS URL and nats-server's pid"
missing=
for id in $AGENTS; do
	grep -qE "^  $id +${id:5:${#id}-7} +pid $(cat "$RUN/agents/$id.pid") " "$T_DIR/first.out" || missing="$missing $id"
done
is "$missing" "" "up prints each agent: node id, region, pid"
req_api 1 GET "/v1/nodes?consistent=true"
is "$(jqr '[.items[] | select(.id | startswith("edge-")) | "\(.id):\(.region):\(.status):\(.labels.tier)"] | join(" ")')" \
	"edge-ap-south-1:ap-south:healthy:edge edge-ap-south-2:ap-south:healthy:edge edge-eu-west-1:eu-west:healthy:edge edge-eu-west-2:eu-west:healthy:edge edge-us-east-1:us-east:healthy:edge edge-us-east-2:us-east:healthy:edge" \
	"the agents' nodes are healthy, two in each of three regions"
req_api 1 GET "/v1/actors?consistent=true"
is "$(jqr '[.items[] | "\(.id):\([.placements[] | select(.state == "running" and (.node_id | startswith("edge-")))] | length)/\(.placements | length)"] | join(" ")')" \
	"edge-processor:3/3 task-sensor-001:1/1" "the demo's actors run on the agents' nodes (every placement running)"
ACTORS_BEFORE=$BODY
req_api 1 GET "/v1/commands?consistent=true&limit=1000"
is "$(jqr '[.items[] | select(.command_type == "actor_start") | .status] | unique | join(" ")')" \
	"acked" "every actor_start was acked by its agent"
# The agent up suggests killing, and its pid as printed.
read -r V VPID < <(sed -n 's/^Edge failover: stop agent \([^ ]*\) (kill \([0-9]*\)).*/\1 \2/p' "$T_DIR/first.out")
ok $([ -n "$V" ] && [ "$VPID" = "$(cat "$RUN/agents/$V.pid")" ] && echo 0 || echo 1) \
	"up says how to watch an edge failover: kill an agent ($V, pid $VPID)"
grep -q "curl -s 'http://127.0.0.1:$PORT/v1/commands?node=$V'" "$T_DIR/first.out" &&
	grep -q "scripts/local-lattice.sh agent start $V" "$T_DIR/first.out" && grep -q "/v1/failovers" "$T_DIR/first.out"
ok $? "and how to watch it (failovers, actors) and bring the agent back"
ON_V=$(jq -r --arg v "$V" '[.items[] | .id as $a | .placements[] | select(.node_id == $v) | "\($a)/\(.instance)"] | join(" ")' <<<"$ACTORS_BEFORE")
ok $([ -n "$ON_V" ] && echo 0 || echo 1) "agent $V runs demo actors ($ON_V)"
kill "$VPID"
wait_until 60 eval '[ "$(node_status "$V")" = unhealthy ]'
ok $? "killed, its node turns unhealthy"
wait_until 60 eval '[ "$(curl -s --max-time 10 "$(api 1)/v1/failovers?node=$V&consistent=true" | jq -r ".items[0].status")" = completed ]'
ok $? "GET /v1/failovers shows a completed failover of $V"
req_api 1 GET "/v1/actors?consistent=true"
moved=$(jq -r --arg v "$V" --arg on "$ON_V" '[.items[] | .id as $a | .placements[] | "\($a)/\(.instance)" as $ai |
	select($on | split(" ") | index($ai)) | "\(.state):\(.node_id != $v)"] | unique | join(" ")' <<<"$BODY")
is "$moved" "running:true" "its actors ($ON_V) run on other nodes"
wait_until 30 grep -q "agent $V (pid $VPID) exited (exit status 0); .* start it again with: scripts/local-lattice.sh agent start $V" "$T_DIR/first.out"
ok $? "up says the agent exited and how to start it again"
lx agent start "$V" >"$T_DIR/agent.out" 2>&1
is "$?" 0 "agent start $V exits 0"
sed 's/^/# agent start: /' "$T_DIR/agent.out"
is "$(node_status "$V")" healthy "its node is healthy again"
req_api 1 GET "/v1/commands?node=$V&consistent=true&limit=1000"
FENCE=$(jqr '[.items[] | select(.command_type == "actor_stop" and .payload.reason == "failover_fencing")]')
ok $([ "$(jq length <<<"$FENCE")" -ge 1 ] && [ "$(jq -r '[.[].status] | unique | join(" ")' <<<"$FENCE")" = acked ] &&
	[ "$(jq -r '[.[] | "\(.actor_id)/\(.instance)"] | sort | join(" ")' <<<"$FENCE")" = "$(tr ' ' '\n' <<<"$ON_V" | sort | paste -sd' ')" ] &&
	echo 0 || echo 1) "its old copies ($ON_V) got failover_fencing stops, all acked"
grep -q "acked $(jq length <<<"$FENCE") failover_fencing stop(s)" "$T_DIR/agent.out"
ok $? "agent start says so"
lx agent start "$V" >"$T_DIR/agent2.out" 2>&1
is "$?" 1 "agent start of a running agent refuses"
record


# 2. A second up refuses and leaves the running one alone.
first_pids=("${CORE[@]}")
lx up >"$T_DIR/second.out" 2>&1
is "$?" 1 "a second up exits 1"
grep -qF "a local lattice is already running (pid $UP_PID); stop it with scripts/local-lattice.sh stop" "$T_DIR/second.out"
ok $? "it says one is running (pid $UP_PID) and how to stop it"
sed 's/^/# second: /' "$T_DIR/second.out"
is "$(none_alive "${first_pids[@]}")" "${first_pids[*]}" "every process of the first lattice still runs"
is "$(not_ready)" "" "the first lattice still serves (readyz 200 on every replica)"
is "$(cat "$RUN"/replica[123].pid | tr '\n' ' ')" "${LPIDS[*]} " "its pid files are untouched"

# 3. stop waits for a latticed that takes longer than 10 s to exit (stopped here
#    for 12 s, as one flushing a long backlog would be), and stops all three.
SLOW=${LPIDS[$((FOLLOWER - 1))]}
kill -STOP "$SLOW"
(sleep 12; kill -CONT "$SLOW" 2>/dev/null) &
cont=$!
start=$(date +%s)
lx stop >"$T_DIR/stop1.out" 2>&1
rc=$?
left=$(none_alive "${PIDS[@]}")
took=$(($(date +%s) - start))
wait "$cont"
sed 's/^/# stop: /' "$T_DIR/stop1.out"
is "$rc" 0 "stop exits 0"
is "$left" "" "when stop returns, every process it stopped has exited (script, three latticeds, PostgreSQL, nats-server, agents)"
is "$(cat "$RUN"/nats.pid "$RUN"/agents/*.pid 2>/dev/null)" "" "and their pid files are gone"
ok $([ "$took" -ge 11 ] && echo 0 || echo 1) "stop waited for the slow latticed (${took} s)"
grep -q "waiting for latticed replica $FOLLOWER (pid $SLOW)" "$T_DIR/stop1.out"
ok $? "stop says which replica it is waiting for"
grep -q "local lattice stopped" "$T_DIR/stop1.out"
ok $? "stop says it stopped the lattice"
wait "$UP_PID"
is "$?" 0 "the first up exited 0"
is "$(clean_stops)" "" "every replica logged a clean stop (SIGTERM, not SIGKILL)"
grep -qE "^(replica [0-9]|agent [^ ]*|nats-server) \(pid [0-9]*\) exited" <(sed "/^agent $V (pid $VPID) exited/d" "$T_DIR/first.out")
is "$?" 1 "up did not report the stopped replicas, agents or nats-server as exits"

# 3b. With its NATS port taken, up refuses, says so and starts nothing.
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" 2>"$T_DIR/squatter.log" &
SQUATTER=$!
STOPPED_PIDS+=("$SQUATTER")
wait_until 30 eval '(exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null' || diag "the squatter did not listen"
lx up >"$T_DIR/taken.out" 2>&1
rc=$?
sed 's/^/# taken: /' "$T_DIR/taken.out"
ok $([ "$rc" = 1 ] && grep -q "127.0.0.1:$NATS_PORT is taken .*choose another port: LATTICE_NATS_PORT=" "$T_DIR/taken.out" &&
	echo 0 || echo 1) "up refuses when its NATS port is taken, and says which port and how to choose another"
ok $([ ! -f "$RUN/pg/data/postmaster.pid" ] && [ -z "$(cat "$RUN"/nats.pid "$RUN"/agents/*.pid "$RUN"/replica[123].pid 2>/dev/null)" ] &&
	echo 0 || echo 1) "and starts nothing"
kill "$SQUATTER"
wait "$SQUATTER"

# 4. A restart resumes the group (same command lines; nothing bootstrapped again)
#    with the same data.
start_up resumed || bail "the lattice did not come up again after stop"
record
is "$(not_ready)" "" "after a restart every replica is ready"
LEAD=$(agreed_leader 1 2 3)
ok $? "and they name one leader (replica $LEAD)"
is "$(grep -c "bootstrapped a new group of 3 voters" "$RUN"/replica[123].log | cut -d: -f2 | tr '\n' ' ')" "1 1 1 " \
	"each replica bootstrapped the group once"
is "$(grep -c "already holds a group: resuming it" "$RUN"/replica[123].log | cut -d: -f2 | tr '\n' ' ')" "1 1 1 " \
	"and resumed it at the restart"
got=
for i in 1 2 3; do
	req_api "$i" GET "/v1/nodes?consistent=true"
	got="$got|$(jqr '[.items[].id] | join(" ")')"
done
is "$got" "|$NODES_BEFORE|$NODES_BEFORE|$NODES_BEFORE" "every replica shows the same nodes as before the restart"
grep -q "loading the demo" "$T_DIR/resumed.out"
is "$?" 1 "the demo is not loaded again"
grep -qE "Restored [1-9][0-9]* messages for stream '.* > LATTICE_default_CMD'" "$RUN/nats.log"
ok $? "nats-server restored the command stream from its store"
is "$(cat "$RUN"/replica[123].log | grep -c "created stream LATTICE_default_CMD")" 1 "no replica created the stream again"
bad=
for id in $AGENTS; do [ "$(grep -c "does not exist yet" "$RUN/agents/$id.log")" = 1 ] || bad="$bad $id"; done
is "$bad" "" "every agent found its consumer at once after the restart (it waited for it only at the first start)"
req_api 1 GET "/v1/nodes?consistent=true"
is "$(jqr '[.items[] | select(.id | startswith("edge-")) | .status] | unique | join(" ")')" healthy "the agents' nodes are healthy"

# 5. kill -9 of `up` leaves no stale lock: the next up sees the orphans and
#    refuses; stop stops them, killing one that never exits (saying so).
orphans=("${CORE[@]:1}")
orphans_all=("${PIDS[@]:1}")
kill -9 "$UP_PID"
wait "$UP_PID" 2>/dev/null
lx up >"$T_DIR/third.out" 2>&1
is "$?" 1 "up after a kill -9 of the previous up refuses (its latticeds still run)"
grep -qF "a local lattice is already running (replica 1: latticed pid ${LPIDS[0]}, left by an earlier run); stop it with scripts/local-lattice.sh stop" "$T_DIR/third.out"
ok $? "it names an orphaned latticed"
sed 's/^/# third: /' "$T_DIR/third.out"
is "$(none_alive "${orphans[@]}")" "${orphans[*]}" "the orphaned latticeds and PostgreSQL were left alone"
HUNG=${LPIDS[1]}
kill -STOP "$HUNG"
LATTICE_STOP_TIMEOUT=3 lx stop >"$T_DIR/stop2.out" 2>&1
rc=$?
left=$(none_alive "${orphans_all[@]}")
sed 's/^/# stop: /' "$T_DIR/stop2.out"
is "$rc" 0 "stop stops the orphans, one of them hung"
grep -q "latticed replica 2 (pid $HUNG) did not exit within 3 s of SIGTERM; killing it (SIGKILL)" "$T_DIR/stop2.out"
ok $? "stop says it kills the hung latticed, and why"
is "$left" "" "when stop returns, the orphans have exited"
lx stop >"$T_DIR/stop3.out" 2>&1
is "$?" 0 "stop with nothing running exits 0"
grep -q "no local lattice is running" "$T_DIR/stop3.out"
ok $? "and says nothing runs"

# 6. Failover: the leader killed, the other two elect one and take writes; up
#    says so; `start N` brings the killed replica back, caught up.
start_up fourth || bail "the lattice did not come up after the orphans were stopped"
ok 0 "up works again after a kill -9 of an earlier up (the lock is not stale)"
record
LEAD=$(agreed_leader 1 2 3)
ok $? "the replicas name one leader (replica $LEAD)"
OLD=${LPIDS[$((LEAD - 1))]}
kill -9 "$OLD"
rest=()
for i in 1 2 3; do [ "$i" = "$LEAD" ] || rest+=("$i"); done
for t in $(seq 1 60); do # until they no longer name the killed one
	NEW=$(agreed_leader "${rest[@]}")
	[ -n "$NEW" ] && [ "$NEW" != "$LEAD" ] && break
	sleep 1
done
ok $([ -n "$NEW" ] && [ "$NEW" != "$LEAD" ] && echo 0 || echo 1) \
	"with the leader (replica $LEAD) killed, the other two elect one (replica $NEW)"
req_api "${rest[0]}" POST /v1/nodes '{"id":"after-failover","region":"eu-west","cpu_capacity":1000,"memory_mb":1024}'
is "$STATUS" 201 "a write after the failover is taken"
IDX=$(header X-Lattice-Index)
for i in $(seq 1 50); do grep -q "replica $LEAD (pid $OLD) exited" "$T_DIR/fourth.out" && break; sleep 0.1; done
grep -qF "replica $LEAD (pid $OLD) exited (killed by SIGKILL); start it again with: scripts/local-lattice.sh start $LEAD" "$T_DIR/fourth.out"
ok $? "up says the leader was killed and how to start it again"
lx start "$LEAD" >"$T_DIR/start.out" 2>&1
is "$?" 0 "start $LEAD exits 0"
sed 's/^/# start: /' "$T_DIR/start.out"
is "$(not_ready)" "" "all three replicas are ready again"
req_api "$LEAD" GET "/v1/nodes/after-failover?min_index=$IDX"
is "$STATUS" 200 "the restarted replica shows the write it missed"
lx start "$LEAD" >"$T_DIR/start2.out" 2>&1
is "$?" 1 "start of a running replica refuses"
record

# 7. Ctrl-C (SIGINT to up's process group, as a terminal sends it) stops
#    everything, the restarted replica too; run/ is kept. One replica is still
#    flushing to its PostgreSQL when it is told to stop (a lock holds its
#    projection back for 2 s): it must get one signal only, a second would kill
#    it in the middle of its flush.
NOW=$(agreed_leader 1 2 3)
HELD=$((NOW % 3 + 1))
PG_DIR=$RUN/pg PG_PORT=${PGPORT:-5432} pg_hold "lattice$HELD"
req_api "$NOW" POST /v1/nodes '{"id":"at-ctrl-c","region":"eu-west","cpu_capacity":1000,"memory_mb":1024}'
posted=$STATUS
API=$(api "$HELD") wait_lagging 30
lag=$?
ok $([ "$posted" = 201 ] && [ "$lag" = 0 ] && echo 0 || echo 1) \
	"a write is taken (201), and replica $HELD has applied it but its PostgreSQL does not show it yet"
(sleep 2; echo "COMMIT;" >&7) &
release=$!
kill -INT -- -"$UP_PID"
wait "$UP_PID"
is "$?" 0 "up exits 0 on Ctrl-C"
wait "$release"
exec 7>&-
wait "$PG_HOLD_PID" 2>/dev/null
PG_HOLD_PID=
flock -n "$RUN/lock" true
ok $? "once up has exited, nothing holds the lock"
is "$(none_alive "${PIDS[@]}")" "" "after Ctrl-C every process has exited"
is "$(clean_stops)" "" "every replica logged a clean stop"
grep -q "local lattice stopped; state kept in $RUN" "$T_DIR/fourth.out"
ok $? "up says the state is kept"
ok $([ -d "$RUN/replica1" ] && [ -d "$RUN/pg/data" ] && [ -f "$RUN/group" ] && echo 0 || echo 1) "run/ is kept"

# 8. A single-replica run dir grows into a group of three: LATTICE_REPLICAS=1,
#    then the layout of the script's single-replica version (database `lattice`,
#    latticed.log, no run/group).
LX_ENV=("${LX_ENV[@]/#LATTICE_RUN_DIR=*/LATTICE_RUN_DIR=$T_DIR/run2}")
RUN=$T_DIR/run2
start_up single LATTICE_REPLICAS=1 || bail "LATTICE_REPLICAS=1 did not come up"
record
ok $([ "${#LPIDS[@]}" = 1 ] && grep -q "lattice is up (a single replica)" "$T_DIR/single.out" && echo 0 || echo 1) \
	"LATTICE_REPLICAS=1 runs a single replica"
API=$(api 1) req POST /v1/nodes '{"id":"old-node","region":"eu-west","cpu_capacity":1000,"memory_mb":1024}'
is "$STATUS" 201 "it takes writes"
lx stop >"$T_DIR/stop4.out" 2>&1
is "$?" 0 "stop"
wait "$UP_PID"
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg/data" -l "$RUN/pg/pg.log" -w -o "-k $RUN/pg -c listen_addresses='' -c fsync=off" start >/dev/null
"$PGBIN/psql" -X -q -h "$RUN/pg" -U postgres -d postgres -c "ALTER DATABASE lattice1 RENAME TO lattice"
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg/data" -m fast -w stop >/dev/null
mv "$RUN/replica1.log" "$RUN/latticed.log"
rm "$RUN/group" "$RUN/replica1.cmd"
start_up grown || bail "the single-replica run dir did not come up as three"
record
sed 's/^/# grown: /' "$T_DIR/grown.out"
grep -q "holds a single-replica lattice from an earlier version of this script: resuming it as replica 1" "$T_DIR/grown.out"
ok $? "up says it resumes the old single replica as replica 1"
is "$(not_ready)" "" "then three replicas are ready"
API=$(api 1) req GET /v1/cluster
is "$(jqr '[.members[] | select(.role == "voter") | .id] | sort | map(tostring) | join(" ")')" "1 2 3" "in a group of three voters"
got=
for i in 1 2 3; do
	req_api "$i" GET "/v1/nodes?consistent=true"
	got="$got $(jqr '[.items[].id] | join(",")')"
done
want=" ${AGENTS// /,},old-node"
is "$got" "$want$want$want" "the old replica's data (the demo and a node) reached the new ones"
is "$("$PGBIN/psql" -X -q -A -t -h "$RUN/pg" -U postgres -d postgres -c \
	"SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database WHERE datname LIKE 'lattice%'")" \
	"lattice1 lattice2 lattice3" "its database became lattice1, next to lattice2 and lattice3"
is "$(cat "$RUN/group")" "1=127.0.0.1:$RAFT_PORT,2=127.0.0.1:$((RAFT_PORT + 1)),3=127.0.0.1:$((RAFT_PORT + 2))" \
	"run/group lists the three members"
lx stop >"$T_DIR/stop5.out" 2>&1
is "$?" 0 "stop"
wait "$UP_PID"
timeout 300 env "${LX_ENV[@]}" LATTICE_REPLICAS=1 bash "$SCRIPT" up >"$T_DIR/shrink.out" 2>&1
is "$?" 1 "LATTICE_REPLICAS=1 on a group of three refuses"
grep -q "holds a group of 3 replica(s)" "$T_DIR/shrink.out" && grep -q "Resume it with LATTICE_REPLICAS=3 .*, or start from nothing: scripts/local-lattice.sh reset" "$T_DIR/shrink.out"
ok $? "and says why, how to resume it, and that reset starts from nothing"
sed 's/^/# shrink: /' "$T_DIR/shrink.out"

# 9. Nothing left behind, and the checkout's run/ untouched by this test.
is "$(none_alive "${STOPPED_PIDS[@]}")" "" "no process the script started is left"
left=
for f in /proc/[0-9]*/cmdline; do
	c=$(tr '\0' ' ' 2>/dev/null <"$f") && [[ $c == *"$T_DIR/run"* ]] && left="$left ${f%/cmdline}: $c"
done
is "$left" "" "no process refers to the test's run dirs"
done_testing
