#!/usr/bin/env bash
# A NATS JetStream cluster of three servers (docs/operations.md "Production
# layout"): latticed given all three URLs and --nats-replicas 3 creates its
# streams with three replicas; commands reach an agent and acks come back;
# then the server latticed is connected to is killed (-9) and the next
# actor's commands still go through the other two, the agent's node stays
# healthy, and the streams keep a leader.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/edge_lib.sh"
plan 11

JSCTL=$top_builddir/tests/tools/jsctl
[ -x "$JSCTL" ] || bail "jsctl not built at $JSCTL"
[ -x "$NATS_SERVER" ] || bail "nats-server not found ($NATS_SERVER)"
lib_init

# Three nats-servers with JetStream, routed to each other on loopback.
declare -a NPORT CPORT NPID
for i in 0 1 2; do NPORT[i]=$(free_port); CPORT[i]=$(free_port); done
routes() { local r= j; for j in 0 1 2; do [ "$j" = "$1" ] || r+="${r:+,}nats://127.0.0.1:${CPORT[j]}"; done; echo "$r"; }
nats_node_start() {
	mkdir -p "$T_DIR/nats$1"
	"$NATS_SERVER" -a 127.0.0.1 -p "${NPORT[$1]}" -n "n$1" -js -sd "$T_DIR/nats$1/js" --cluster_name lattice \
		--cluster "nats://127.0.0.1:${CPORT[$1]}" --routes "$(routes "$1")" -l "$T_DIR/nats$1/nats.log" &
	NPID[$1]=$!
}
nats_nodes_stop() { local p; for p in "${NPID[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait "${NPID[@]}" 2>/dev/null; }
trap 'agents_stop; lib_cleanup; nats_nodes_stop' EXIT
for i in 0 1 2; do nats_node_start "$i"; done
URLS="nats://127.0.0.1:${NPORT[0]},nats://127.0.0.1:${NPORT[1]},nats://127.0.0.1:${NPORT[2]}"
# JetStream elects its meta leader once all three see each other.
js_ready() { "$JSCTL" "nats://127.0.0.1:${NPORT[$1]}" ensure probe >/dev/null 2>&1 && echo ready; }
is "$(until_eq ready js_ready 2)" ready "a JetStream cluster of three servers is up"

NATS_URL=$URLS
lattice_start a --nats "$URLS" --nats-replicas 3 --heartbeat-timeout-ms 3000
agent_start e1 eu 2000
# "replicas R led": the stream's configured replicas, and a leader elected.
stream_of() { "$JSCTL" "nats://127.0.0.1:${NPORT[$2]}" stream "$1" 2>/dev/null |
	awk '{print "replicas", $2, ($4 != "-" ? "led" : "leaderless")}'; }
is "$(until_eq "replicas 3 led" stream_of LATTICE_default_CMD 1)" "replicas 3 led" \
	"the command stream has 3 replicas and a leader"
is "$(until_eq "replicas 3 led" stream_of LATTICE_default_ACK 1) / $(until_eq "replicas 3 led" stream_of LATTICE_default_SNAP 2)" \
	"replicas 3 led / replicas 3 led" "so have the ack and snapshot streams"
is "$(until_eq healthy get /v1/nodes/e1 .status)" healthy "the agent's node is healthy"

req POST /v1/actors '{"id":"a1","module":"m","cpu_required":100,"memory_required_mb":64}'
is "$(until_eq running get /v1/actors/a1 '.placements[0].state')" running "an actor starts: the command went out, the ack came back"

# The server latticed is connected to (nats.c picks one of the list at random).
victim=
for i in 0 1 2; do
	ss -tnp 2>/dev/null | grep "pid=$LATTICED_PID," | grep -q "127.0.0.1:${NPORT[$i]} " && victim=$i && break
done
ok "$([ -n "$victim" ]; echo $?)" "latticed's NATS connection is to server n${victim:-?}"
victim=${victim:-0}
kill -9 "${NPID[$victim]}"; wait "${NPID[$victim]}" 2>/dev/null; NPID[victim]=
other=$(((victim + 1) % 3))
is "$(until_eq "replicas 3 led" stream_of LATTICE_default_CMD "$other")" "replicas 3 led" \
	"server n$victim killed (-9): the command stream has a leader among the other two"

req POST /v1/actors '{"id":"a2","module":"m","cpu_required":100,"memory_required_mb":64}'
is "$STATUS" 201 "a write after the loss"
is "$(until_eq running get /v1/actors/a2 '.placements[0].state')" running "its start command reached the agent and was acked"
is "$(get /v1/nodes/e1 .status)" healthy "the node stayed healthy (heartbeats flow through the other servers)"
is "$(get '/v1/commands?status=failed' '.items | length')" 0 "no command failed"

done_testing
