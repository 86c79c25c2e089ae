#!/usr/bin/env bash
# local.sh — scripts/local-lattice.sh: a second `up` refuses and leaves the running
# lattice alone; `stop` returns only once everything it stopped has exited, waiting
# for a slow latticed and killing one that never exits; a kill -9 of `up` leaves no
# stale lock. Runs the script on its own run dir and free ports with the built
# latticed (LATTICE_RUN_DIR, LATTICE_PORT, LATTICE_RAFT_PORT, LATTICED): nothing
# is installed or built and the checkout's run/ is not touched.
. "$(dirname "$0")/lib.sh"
plan 27

SCRIPT=$top_srcdir/scripts/local-lattice.sh
T_DIR=$(mktemp -d /tmp/lattice-test.XXXXXX) || bail "mktemp failed"
chmod 755 "$T_DIR" # PostgreSQL runs as the postgres user when we are root
RUN=$T_DIR/run
PORT=$(free_port) || bail "no free port"
RAFT_PORT=$(free_port) || bail "no free port"
UP_PID=
STOPPED_PIDS=() # every pid the script started, for the final check

LX_ENV=(LATTICE_RUN_DIR="$RUN" LATTICE_PORT="$PORT" LATTICE_RAFT_PORT="$RAFT_PORT" LATTICED="$LATTICED"
	LATTICE_DEMO=0 PGBIN="$PGBIN")
# lx ARGS: runs the script with this test's overrides (in the foreground: the
# timeout only guards a hang).
lx() { timeout 300 env "${LX_ENV[@]}" bash "$SCRIPT" "$@"; }

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

# start_up NAME: starts `up` in the background; waits until it says it is up.
start_up() {
	# env execs bash: $! is the script's own pid ($$ in it).
	env "${LX_ENV[@]}" bash "$SCRIPT" up >"$T_DIR/$1.out" 2>&1 &
	UP_PID=$!
	local i
	for i in $(seq 1 600); do
		grep -q "lattice is up" "$T_DIR/$1.out" && return 0
		alive "$UP_PID" || break
		sleep 0.1
	done
	sed 's/^/# /' "$T_DIR/$1.out"
	return 1
}

# record: the pids of the running lattice: CORE (script, latticed, postmaster),
# and PIDS (those and the postmaster's children, some of which come and go).
record() {
	LPID=$(cat "$RUN/latticed.pid" 2>/dev/null)
	PGPID=$(head -1 "$RUN/pg/data/postmaster.pid" 2>/dev/null)
	CORE=("$UP_PID" $LPID $PGPID)
	PIDS=("${CORE[@]}" $([ -n "$PGPID" ] && children_of "$PGPID"))
	STOPPED_PIDS+=("${PIDS[@]}")
}

# none_alive PID...: prints the ones still running
none_alive() {
	local p left=
	for p in "$@"; do alive "$p" && left="$left $p"; done
	echo "${left# }"
}

local_cleanup() {
	local p
	# Stop whatever the script started and is still up; the test fails anyway.
	for p in $(cat "$RUN/latticed.pid" 2>/dev/null) "${STOPPED_PIDS[@]}"; do
		alive "$p" && kill -9 "$p" 2>/dev/null
	done
	[ -f "$RUN/pg/data/postmaster.pid" ] &&
		as_pg "$PGBIN/pg_ctl" -D "$RUN/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1
	lib_cleanup
}
trap local_cleanup EXIT

# 1. One lattice runs; a second `up` refuses and leaves it alone.
start_up first || bail "the first local lattice did not come up"
record
ok $([ -n "$LPID" ] && [ -n "$PGPID" ] && alive "$LPID" && alive "$PGPID" && echo 0 || echo 1) \
	"first up: latticed ($LPID) and PostgreSQL ($PGPID) run from the test's run dir"
first_pids=("${CORE[@]}")
lx up >"$T_DIR/second.out" 2>&1
is "$?" 1 "a second up exits 1"
grep -qF "a local lattice is already running (pid $UP_PID); stop it with scripts/local-lattice.sh stop" "$T_DIR/second.out"
ok $? "it says one is running (pid $UP_PID) and how to stop it"
sed 's/^/# second: /' "$T_DIR/second.out"
is "$(none_alive "${first_pids[@]}")" "${first_pids[*]}" "every process of the first lattice still runs"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" 200 "the first lattice still serves (readyz 200)"
is "$(curl -s "http://127.0.0.1:$PORT/v1/nodes" | jq -r '.items | type')" array "and answers reads"
is "$(cat "$RUN/latticed.pid")" "$LPID" "its pid file is untouched"

# 2. stop waits for a latticed that takes longer than 10 s to exit (stopped here
#    for 12 s, as one flushing a long backlog would be).
kill -STOP "$LPID"
(sleep 12; kill -CONT "$LPID" 2>/dev/null) &
cont=$!
start=$(date +%s)
lx stop >"$T_DIR/stop1.out" 2>&1
rc=$?
left=$(none_alive "${PIDS[@]}")
took=$(($(date +%s) - start))
wait "$cont"
sed 's/^/# stop: /' "$T_DIR/stop1.out"
is "$rc" 0 "stop exits 0"
is "$left" "" "when stop returns, every process it stopped has exited (script, latticed, PostgreSQL)"
ok $([ "$took" -ge 11 ] && echo 0 || echo 1) "stop waited for the slow latticed (${took} s)"
grep -q "waiting for latticed" "$T_DIR/stop1.out"
ok $? "stop says what it is waiting for"
grep -q "local lattice stopped" "$T_DIR/stop1.out"
ok $? "stop says it stopped the lattice"
wait "$UP_PID"
is "$?" 0 "the first up exited 0"
tail -1 "$RUN/latticed.log" | grep -q "info  stopped$"
ok $? "latticed logged a clean stop (SIGTERM, not SIGKILL)"

# 3. kill -9 of `up` leaves no stale lock: the next up sees the orphans and refuses,
#    stop stops them, and then up works again.
start_up second || bail "the lattice did not come up again after stop"
record
orphans=("${CORE[@]:1}")
orphans_all=("${PIDS[@]:1}")
kill -9 "$UP_PID"
wait "$UP_PID" 2>/dev/null
lx up >"$T_DIR/third.out" 2>&1
is "$?" 1 "up after a kill -9 of the previous up refuses (its latticed still runs)"
grep -qF "a local lattice is already running (latticed pid $LPID, left by an earlier run); stop it with scripts/local-lattice.sh stop" "$T_DIR/third.out"
ok $? "it names the orphaned latticed"
sed 's/^/# third: /' "$T_DIR/third.out"
is "$(none_alive "${orphans[@]}")" "${orphans[*]}" "the orphaned latticed and PostgreSQL were left alone"
lx stop >"$T_DIR/stop2.out" 2>&1
is "$?" 0 "stop stops the orphans"
is "$(none_alive "${orphans_all[@]}")" "" "when stop returns, the orphans have exited"
lx stop >"$T_DIR/stop3.out" 2>&1
is "$?" 0 "stop with nothing running exits 0"
grep -q "no local lattice is running" "$T_DIR/stop3.out"
ok $? "and says nothing runs"

# 4. A latticed that never exits: stop says so, kills it, and still returns only
#    once it is gone.
start_up fourth || bail "the lattice did not come up after the orphans were stopped"
ok 0 "up works again after a kill -9 of an earlier up (the lock is not stale)"
record
kill -STOP "$LPID"
LX_ENV+=(LATTICE_STOP_TIMEOUT=3)
lx stop >"$T_DIR/stop4.out" 2>&1
rc=$?
left=$(none_alive "${PIDS[@]}")
sed 's/^/# stop: /' "$T_DIR/stop4.out"
is "$rc" 0 "stop exits 0 after killing a hung latticed"
grep -q "did not exit within 3 s of SIGTERM; killing it (SIGKILL)" "$T_DIR/stop4.out"
ok $? "stop says it kills the hung latticed, and why"
is "$left" "" "when stop returns, everything has exited"
wait "$UP_PID" 2>/dev/null

# 5. Nothing left behind, and the checkout's run/ untouched by this test.
is "$(none_alive "${STOPPED_PIDS[@]}")" "" "no process the script started is left"
left=
for f in /proc/[0-9]*/cmdline; do
	c=$(tr '\0' ' ' <"$f" 2>/dev/null) && [[ $c == *"$RUN"* ]] && left="$left ${f%/cmdline}: $c"
done
is "$left" "" "no process refers to the test's run dir"
done_testing
