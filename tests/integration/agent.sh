#!/bin/bash
# agent.sh — sim/lattice-agent against a real nats-server -js, with
# tests/tools/jsctl playing the controller (docs/protocol.md): heartbeats, the
# bind to a consumer created after the agent started, every command type, at
# most once per command_id across kill -9, fencing, bad input, the exec driver's
# children, and a nats-server restart. Timeouts only guard hangs.
set -u
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"

AGENT=$top_builddir/sim/lattice-agent
JSCTL=$top_builddir/tests/tools/jsctl
command -v jq >/dev/null || skip_all "jq is not installed"
[ -x "$NATS_SERVER" ] || skip_all "nats-server not found ($NATS_SERVER)"
[ -x "$AGENT" ] && [ -x "$JSCTL" ] || bail "build sim/lattice-agent and tests/tools/jsctl first (make check does)"

T_DIR=$(mktemp -d /tmp/lattice-test.XXXXXX)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T_DIR/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T_DIR/sanitizer"
AGENT_PIDS=()
cleanup() {
	local p
	for p in "${AGENT_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	servers_cleanup
	if [ -n "${KEEP_LOGS:-}" ]; then echo "# kept $T_DIR" >&2; else rm -rf "$T_DIR"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

plan 52

nats_start || bail "cannot start nats-server"
L=default

# start_agent NAME NODE ARGS...: runs an agent in the background (log: $T_DIR/NAME.log)
start_agent() {
	local name=$1 node=$2
	shift 2
	"$AGENT" --nats "${AGENT_NATS:-$NATS_URL}" --node-id "$node" --state-dir "$T_DIR/state-$node" \
		--heartbeat-interval-ms 200 "$@" 2>>"$T_DIR/$name.log" &
	AGENT_PID=$!
	AGENT_PIDS+=("$AGENT_PID")
}

# wait_for CMD...: polls CMD every 0.1 s; fails after 30 s (a hang guard).
wait_for() {
	local i
	for i in $(seq 1 300); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
in_log() { grep -q -- "$2" "$T_DIR/$1.log" 2>/dev/null; }
# settled NODE: every command message of agent_NODE acked (none pending or awaiting an ack)
settled() { [ "$("$JSCTL" "$NATS_URL" pending "$L" "$1" 2>/dev/null)" = "0 0" ]; }
# gone PID: the process has exited (a zombie nobody reaped counts as gone)
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# started_n NAME ACTOR N: the agent's log shows N or more starts of ACTOR's child
started_n() { [ "$(grep -c "exec actor $2/0: started pid" "$T_DIR/$1.log")" -ge "$3" ]; }
log_count() { cat "$T_DIR"/*.log 2>/dev/null | grep -c -- "$1"; }

# hb NODE: one heartbeat of NODE
hb() { "$JSCTL" "$NATS_URL" sub "lattice.$L.hb.$1" 1 10000 2>/dev/null; }
# hb_match NODE JQ: waits for a heartbeat of NODE for which JQ is true
hb_match() {
	local i
	for i in $(seq 1 50); do
		hb "$1" | jq -e "$2" >/dev/null 2>&1 && return 0
	done
	return 1
}
# send NODE JSON [MSGID]: publishes a command on NODE's subject
send() {
	local f=$T_DIR/cmd.$RANDOM.json
	printf '%s' "$2" >"$f"
	"$JSCTL" "$NATS_URL" publish "$L" "$1" "$f" ${3:+"$3"} >/dev/null
}
# ack: the next ack from controller_ack
ack() { "$JSCTL" "$NATS_URL" acks "$L" 1 20000; }
start_cmd() { # ID ACTOR TERM GEN MEM SNAPSHOT [NODE]
	printf '{"command_id":"%s","command_type":"actor_start","target_node":"%s","term":%s,"generation":%s,"config_version":%s,"issued_at":"2026-12-02T10:15:31.002Z","payload":{"actor_id":"%s","instance":0,"module":"oci://registry.example/%s:1","cpu_required":250,"memory_required_mb":%s,"config":{},"snapshot":%s}}' \
		"$1" "${7:-n1}" "$3" "$4" "$4" "$2" "$2" "$5" "$6"
}
other_cmd() { # ID TYPE TERM GEN PAYLOAD [NODE]
	printf '{"command_id":"%s","command_type":"%s","target_node":"%s","term":%s,"generation":%s,"config_version":0,"issued_at":"2026-12-02T10:15:31.002Z","payload":%s}' \
		"$1" "$2" "${6:-n1}" "$3" "$4" "$5"
}

# ---- heartbeats, before any consumer exists ----------------------------------
start_agent n1 n1 --region eu-west --label zone=a --label gpu=false --cpu-capacity 2500 --memory-mb 4096 \
	--snapshot-interval-ms 0
N1=$AGENT_PID
H=$(hb n1)
is "$(jq -c '[.node_id,.region,.labels,.cpu_capacity,.memory_mb,.actors,.error_count,.policy_version]' <<<"$H")" \
	'["n1","eu-west",{"zone":"a","gpu":"false"},2500,4096,[],0,0]' "heartbeat: node, region, labels, capacity, no actors, no errors, no policy"
ok "$(jq -e '(.agent_version|startswith("lattice-agent ")) and (.agent_instance|test("^[0-9a-f]{16}$")) and (.sent_at|test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")) and (.cpu_measured>=0) and (.memory_measured_mb>=0) and (.seq>=1)' <<<"$H" >/dev/null; echo $?)" \
	"heartbeat: agent_version, agent_instance (16 hex), sent_at (RFC 3339, ms, UTC), measured usage, seq"
TWO=$("$JSCTL" "$NATS_URL" sub "lattice.$L.hb.n1" 2 10000 2>/dev/null)
is "$(jq -s '.[1].seq - .[0].seq' <<<"$TWO")" 1 "seq rises by one per heartbeat"
is "$(jq -rs '[.[].agent_instance] | unique | length' <<<"$TWO")" 1 "under one agent_instance"
wait_for in_log n1 "does not exist yet"
ok $? "no consumer yet: the agent says so and keeps heartbeating"

"$JSCTL" "$NATS_URL" ensure "$L" && "$JSCTL" "$NATS_URL" consumer "$L" n1
ok $? "jsctl: streams and consumers as protocol.md's tables, then agent_n1"
wait_for in_log n1 "bound to consumer agent_n1"
ok $? "the agent binds once the consumer exists"
is "$(grep -c "does not exist yet" "$T_DIR/n1.log")" 1 "it logged the missing consumer once"

# ---- actor_start, redelivery, kill -9 ----------------------------------------
SNAP='{"state_version":12,"data":"eyJjb3VudCI6IDQyfQ=="}'
send n1 "$(start_cmd c-1 a1 3 7 128 "$SNAP")"
A=$(ack)
is "$(jq -c '[.command_id,.node_id,.status,.error,.applied_version]' <<<"$A")" '["c-1","n1","ok",null,12]' \
	"actor_start: ok ack, applied_version = the snapshot's state_version"
ok "$(jq -e '.at|test("Z$")' <<<"$A" >/dev/null; echo $?)" "the ack carries its time"
hb_match n1 '.actors == [{"actor_id":"a1","instance":0,"state":"running","state_version":12}] and .cpu_measured == 250 and .memory_measured_mb == 128'
ok $? "the heartbeat lists a1 running at state_version 12; sim usage is the sum of requests"

send n1 "$(start_cmd c-1 a1 3 7 128 "$SNAP")" c-1-again
wait_for in_log n1 "command c-1 was applied before"
ok $? "the same command under another Nats-Msg-Id is acked again"
wait_for in_log n1 "ack ack-c-1: the ack stream already had it"
ok $? "its second ack carries the same Nats-Msg-Id (ack-c-1): the ack stream keeps one"
is "$(log_count "applied command c-1 ")" 1 "and it was applied once"
wait_for settled n1
ok $? "both command messages were acked (nothing pending, nothing awaiting an ack)"

{ kill -9 "$N1"; wait "$N1"; } 2>/dev/null
# this time with a list of servers, the first of which is down: one cluster
AGENT_NATS="nats://127.0.0.1:$(free_port),$NATS_URL" start_agent n1b n1 --snapshot-interval-ms 0
N1=$AGENT_PID
wait_for in_log n1b "bound to consumer agent_n1"
ok $? "restarted after kill -9 with its state dir (--nats with a dead server first): binds again"
ok "$(grep -q "actor a1/0: started again (from state_version 12)" "$T_DIR/n1b.log"; echo $?)" \
	"it starts the actor it ran again, from its last snapshot"
send n1 "$(start_cmd c-1 a1 3 7 128 "$SNAP")" c-1-third
wait_for in_log n1b "command c-1 was applied before"
ok $? "an old command after the restart: acked again from the journal"
is "$(log_count "applied command c-1 ")" 1 "still applied once"

# ---- fencing -----------------------------------------------------------------
send n1 "$(other_cmd c-2 actor_stop 3 6 '{"actor_id":"a1","instance":0,"reason":"deleted"}')"
A=$(ack)
is "$(jq -c '[.command_id,.status,.error]' <<<"$A")" \
	'["c-2","error","stale command: term 3 generation 6 is older than applied term 3 generation 7"]' \
	"fencing: a lower (term, generation) for the same actor gets the protocol's error"
hb_match n1 '.actors|length == 1'
ok $? "and changes nothing"

# ---- actor_migrate: the snapshot, then the ack --------------------------------
"$JSCTL" -s -x .hb. -x .cmd. "$NATS_URL" sub "lattice.$L.*.n1" 2 20000 >"$T_DIR/mig.out" 2>"$T_DIR/mig.err" &
SUB=$!
wait_for grep -qs ready "$T_DIR/mig.err"
send n1 "$(other_cmd c-3 actor_migrate 3 7 '{"actor_id":"a1","instance":0,"migration_id":"m-1","target_node":"n2"}')"
wait "$SUB"
ok $? "two messages follow actor_migrate"
is "$(sed -n 1p "$T_DIR/mig.out" | cut -d' ' -f1)" "lattice.$L.snap.n1" "first the snapshot, on lattice.L.snap.<node>"
is "$(sed -n 1p "$T_DIR/mig.out" | cut -d' ' -f2- | jq -c '[.actor_id,.node_id,.state_version,.migration_id]')" \
	'["a1","n1",13,"m-1"]' "the snapshot: state_version 13, the migration_id"
ok "$(sed -n 1p "$T_DIR/mig.out" | cut -d' ' -f2- | jq -r .data | base64 -d | jq -e '.count >= 42' >/dev/null; echo $?)" \
	"its data is the counter restored from the start snapshot, still counting"
is "$(sed -n 2p "$T_DIR/mig.out" | cut -d' ' -f1)" "lattice.$L.ack.n1" "then the ack"
A=$(ack) # c-2's and c-3's acks (c-2's was read above)
is "$(jq -c '[.command_id,.status,.applied_version]' <<<"$A")" '["c-3","ok",13]' "the ack: applied_version = the snapshot's"
is "$("$JSCTL" "$NATS_URL" snaps "$L" 1 10000 | jq -c '[.actor_id,.state_version]')" '["a1",13]' \
	"the snapshot is in LATTICE_L_SNAP"
hb_match n1 '.actors == [{"actor_id":"a1","instance":0,"state":"running","state_version":13}]'
ok $? "the actor keeps running after the checkpoint"

# ---- actor_stop, security_policy ---------------------------------------------
send n1 "$(other_cmd c-4 actor_stop 3 8 '{"actor_id":"a1","instance":0,"reason":"migrated"}')"
is "$(ack | jq -c '[.command_id,.status]')" '["c-4","ok"]' "actor_stop: ok"
hb_match n1 '.actors == []'
ok $? "the heartbeat no longer lists it"
send n1 "$(other_cmd c-5 security_policy 3 3 '{"version":3,"allowed_contracts":[],"denied_contracts":["wasmcloud:keyvalue"],"max_actor_memory_mb":100,"network_restrictions":{}}')"
is "$(ack | jq -c '[.command_id,.status,.applied_version]')" '["c-5","ok",3]' "security_policy: ok, applied_version 3"
hb_match n1 '.policy_version == 3'
ok $? "the heartbeat reports policy_version 3"
send n1 "$(start_cmd c-6 big 3 1 128 null)"
is "$(ack | jq -c '[.command_id,.status,.error]')" '["c-6","error","capability denied: memory"]' \
	"an actor over the policy's memory cap: capability denied"

# ---- bad input ---------------------------------------------------------------
send n1 "$(start_cmd c-7 a9 3 1 16 null n2)"
is "$(ack | jq -c '[.command_id,.status,.error]')" '["c-7","error","wrong node"]' "another node's command: wrong node"
send n1 'this is not json' bad-1
send n1 '{"command_id":"c-8","command_type":"actor_start","target_node":"n1"}'
is "$(ack | jq -c '[.command_id,.status]')" '["c-8","error"]' "a malformed command with a readable id: error ack"
wait_for in_log n1b "terminated (not redelivered)"
ok $? "an unreadable one is terminated"
send n1 "$(start_cmd c-9 a2 3 1 16 null)"
is "$(ack | jq -c '[.command_id,.status]')" '["c-9","ok"]' "and the agent goes on"
wait_for settled n1
ok $? "nothing left pending or unacked (the bad message is not redelivered)"

# ---- nats-server restart -----------------------------------------------------
nats_restart || bail "cannot restart nats-server"
wait_for in_log n1b "NATS: reconnected"
ok $? "the agent reconnects after a nats-server restart"
hb_match n1 '.actors == [{"actor_id":"a2","instance":0,"state":"running","state_version":0}]'
ok $? "and heartbeats again"
send n1 "$(other_cmd c-10 config_update 3 2 '{"actor_id":"a2","config":{"k":"v"}}')"
is "$(ack | jq -c '[.command_id,.status]')" '["c-10","ok"]' "and takes commands again (config_update)"

# ---- the exec driver ---------------------------------------------------------
"$JSCTL" "$NATS_URL" consumer "$L" n2
start_agent n2 n2 --driver exec --exec 'sleep 600 # {module}'
N2=$AGENT_PID
wait_for in_log n2 "bound to consumer agent_n2"
send n2 "$(start_cmd e-1 ex 1 1 16 null n2)"
is "$(ack | jq -c '[.command_id,.status,.applied_version]')" '["e-1","ok",0]' "exec: actor_start ok (no state: version 0)"
child_pid() { grep "exec actor ex/0: started pid" "$T_DIR/n2.log" | tail -1 | sed 's/.*started pid \([0-9]*\).*/\1/'; }
C1=$(child_pid)
ok "$(tr '\0' ' ' <"/proc/$C1/cmdline" 2>/dev/null | grep -q '^sleep 600'; echo $?)" "its child runs the template (pid $C1)"
kill -9 "$C1"
wait_for in_log n2 "pid $C1 killed by signal 9; restarting"
ok $? "a killed child is seen"
wait_for started_n n2 ex 2
ok $? "and restarted"
C2=$(child_pid)
hb_match n2 '.error_count >= 1 and .actors == [{"actor_id":"ex","instance":0,"state":"running","state_version":0}]'
ok $? "error_count rises; the actor runs again"
send n2 "$(other_cmd e-2 actor_stop 1 2 '{"actor_id":"ex","instance":0,"reason":"deleted"}' n2)"
is "$(ack | jq -c '[.command_id,.status]')" '["e-2","ok"]' "exec: actor_stop ok"
wait_for gone "$C2"
ok $? "SIGTERM: the child is gone"
send n2 "$(start_cmd e-3 ex2 1 1 16 null n2)"
ack >/dev/null
C3=$(grep "exec actor ex2/0: started pid" "$T_DIR/n2.log" | tail -1 | sed 's/.*started pid \([0-9]*\).*/\1/')
{ kill -9 "$N2"; wait "$N2"; } 2>/dev/null
wait_for gone "$C3"
ok $? "kill -9 of the agent takes its children with it (PR_SET_PDEATHSIG)"

# ---- a clean stop ------------------------------------------------------------
kill "$N1"
wait "$N1"
is $? 0 "SIGTERM: the agent exits 0"
reports=$(ls "$T_DIR"/sanitizer.* 2>/dev/null)
[ -z "$reports" ] || for f in $reports; do diag "$(cat "$f")"; done
is "$reports" "" "no sanitizer report from any agent"
done_testing
