#!/usr/bin/env bash
# local.sh — scripts/local-lattice.sh: `up` runs three replicas, each with its own
# database on one PostgreSQL, all ready under one leader, the demo in all three
# databases alike, writes to a follower passed on to the leader; a second `up`
# refuses and leaves the running lattice alone; `stop` returns only once every
# process it stopped has exited, waiting for a slow latticed and killing one that
# never exits; a restart resumes the group and its data; a kill -9 of `up` leaves
# no stale lock; a killed leader is replaced and `start N` brings it back;
# Ctrl-C stops everything; a single-replica run dir (LATTICE_REPLICAS=1, or the
# script's single-replica version) grows into a group of three. Runs the script
# on its own run dirs and free ports with the built latticed (LATTICE_RUN_DIR,
# LATTICE_PORT, LATTICE_RAFT_PORT, LATTICED): nothing is installed or built and
# the checkout's run/ is not touched.
. "$(dirname "$0")/lib.sh"
plan 70

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
UP_PID=
STOPPED_PIDS=() # every pid the script started, for the final check

# No fsync: this PostgreSQL lives for the test alone, and syncing a fresh cluster
# takes seconds on a busy disk.
LX_ENV=(LATTICE_RUN_DIR="$RUN" LATTICE_PORT="$PORT" LATTICE_RAFT_PORT="$RAFT_PORT" LATTICED="$LATTICED"
	PGBIN="$PGBIN" LATTICE_PG_FSYNC=0)
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
# LPIDS[I-1]), CORE (script, latticeds, postmaster), and PIDS (those and the
# postmaster's children, some of which come and go).
record() {
	local i
	LPIDS=()
	for i in 1 2 3; do
		[ -f "$RUN/replica$i.pid" ] && LPIDS+=("$(cat "$RUN/replica$i.pid")")
	done
	PGPID=$(head -1 "$RUN/pg/data/postmaster.pid" 2>/dev/null)
	CORE=("$UP_PID" "${LPIDS[@]}" $PGPID)
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

# dump DB: replica database DB, every table the projection writes, as text
dump() {
	local t
	for t in nodes actors placements providers links policies snapshots commands failovers events; do
		echo "== $t"
		"$PGBIN/psql" -X -q -A -t -h "$RUN/pg" -U postgres -d "$1" -c "SELECT * FROM $t ORDER BY 1" 2>&1
	done
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
	for p in $(cat "$T_DIR"/run/replica*.pid "$T_DIR"/run2/replica*.pid 2>/dev/null) "${STOPPED_PIDS[@]}"; do
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
req_api 1 GET /v1/nodes
is "$(jqr '[.items[].id] | join(" ")')" \
	"cloud-ap-east-1 edge-ap-east-1 edge-ap-southeast-1 edge-us-west-1 via-follower" "the demo's nodes are there"
dump lattice1 >"$T_DIR/dump1"
dump lattice2 >"$T_DIR/dump2"
dump lattice3 >"$T_DIR/dump3"
same=0
for i in 2 3; do
	cmp -s "$T_DIR/dump1" "$T_DIR/dump$i" || { same=1; diff "$T_DIR/dump1" "$T_DIR/dump$i" | head -20 | sed 's/^/#   /'; }
done
ok $([ "$same" = 0 ] && grep -q "edge-processor" "$T_DIR/dump1" && echo 0 || echo 1) \
	"the three databases hold the same rows, demo included ($(grep -vc '^==' "$T_DIR/dump1") rows)"
NODES_BEFORE=$(jqr '[.items[].id] | join(" ")')

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
is "$left" "" "when stop returns, every process it stopped has exited (script, three latticeds, PostgreSQL)"
ok $([ "$took" -ge 11 ] && echo 0 || echo 1) "stop waited for the slow latticed (${took} s)"
grep -q "waiting for latticed replica $FOLLOWER (pid $SLOW)" "$T_DIR/stop1.out"
ok $? "stop says which replica it is waiting for"
grep -q "local lattice stopped" "$T_DIR/stop1.out"
ok $? "stop says it stopped the lattice"
wait "$UP_PID"
is "$?" 0 "the first up exited 0"
is "$(clean_stops)" "" "every replica logged a clean stop (SIGTERM, not SIGKILL)"
grep -q "exited" "$T_DIR/first.out"
is "$?" 1 "up did not report the stopped replicas as exits"

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
want=" cloud-ap-east-1,edge-ap-east-1,edge-ap-southeast-1,edge-us-west-1,old-node"
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
