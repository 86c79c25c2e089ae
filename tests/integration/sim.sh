#!/usr/bin/env bash
# sim.sh — lattice-sim's runtime (issue 9, item 1): many simulated agents in one
# process over one NATS connection, against latticed, a real nats-server
# (JetStream) and a real PostgreSQL:
#   - a scenario of 200 agents in 2 regions -> 200 healthy nodes with their
#     regions, labels and capacities; every agent's consumer exists;
#   - 50 actors -> every placement running (acked by the simulated agents);
#   - kill -9 lattice-sim while 10 more actors start, restart it on the same
#     state dir -> the agents start their actors again from their journals, the
#     nodes are healthy again, the 60 actors run, no command was applied twice;
#   - SIGTERM -> exit 0; a bad scenario (unknown key, duplicate ids) -> exit 2.
. "$(dirname "$0")/lib.sh"

plan 21
lib_init
nats_start || bail "cannot start nats-server"
. "$(dirname "$0")/edge_lib.sh"
SIM=${LATTICE_SIM:-$top_builddir/sim/lattice-sim}
JSCTL=$top_builddir/tests/tools/jsctl
[ -x "$SIM" ] || bail "lattice-sim not built at $SIM"
[ -x "$JSCTL" ] || bail "jsctl not built at $JSCTL"

lattice_start a --nats "$NATS_URL" --heartbeat-interval-ms 500 --heartbeat-timeout-ms 3000 --command-timeout-ms 2000

cat >"$T_DIR/scenario.json" <<'JSON'
{"lattice": "default", "heartbeat_ms": 500, "snapshot_ms": 2000,
 "agents": [
   {"count": 120, "prefix": "eu", "region": "eu-west", "labels": {"tier": "edge"}, "cpu_capacity": 2000, "memory_mb": 2048},
   {"count": 80, "prefix": "us", "region": "us-east", "labels": {"tier": "core", "gpu": "no"}, "cpu_capacity": 4000, "memory_mb": 8192}
 ]}
JSON

SIM_PID=
sim_start() {
	"$SIM" --nats "$NATS_URL" --scenario "$T_DIR/scenario.json" --state-dir "$T_DIR/sim" --threads 2 \
		>>"$T_DIR/sim.log" 2>&1 &
	SIM_PID=$!
}
sim_cleanup() {
	[ -n "$SIM_PID" ] && { kill "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null; }
	agents_stop
	lib_cleanup
}
trap sim_cleanup EXIT

# Every node, following the pages (100 a page) into $T_DIR/nodes.jsonl.
nodes_all() {
	local after= n=0
	: >"$T_DIR/nodes.jsonl"
	while [ $n -lt 50 ]; do
		req GET "/v1/nodes?limit=100${after:+&after=$after}"
		[ "$STATUS" = 200 ] || { echo "(status $STATUS)"; return 1; }
		printf '%s' "$BODY" | jq -c '.items[]' >>"$T_DIR/nodes.jsonl"
		after=$(jqr .next)
		[ "$after" = null ] && return 0
		n=$((n + 1))
	done
}
healthy() { nodes_all && jq -s '[.[] | select(.status == "healthy")] | length' "$T_DIR/nodes.jsonl"; }
all_running() {
	req GET '/v1/actors?limit=100'
	[ "$STATUS" = 200 ] && jqr '[.items[].placements[] | select(.state == "running")] | length' || echo "(status $STATUS)"
}
# "num_pending num_ack_pending" of every agent's consumer, counted.
consumers() {
	"$JSCTL" "$NATS_URL" pending default $(jq -r .id "$T_DIR/nodes.jsonl") 2>&1 |
		sort | uniq -c | awk '{ printf "%s%s:%s %s", sep, $1, $2, $3; sep = "," }'
}

# 1. 200 agents in one process: 200 healthy nodes with their profiles.
sim_start
is "$(until_eq 200 healthy)" 200 "200 simulated agents: 200 healthy nodes"
is "$(jq -s -c 'map("\(.region) \(.labels | to_entries | map("\(.key)=\(.value)") | sort | join(";")) \(.cpu_capacity) \(.memory_mb)") | group_by(.) | map("\(.[0]) x\(length)") | sort' "$T_DIR/nodes.jsonl")" \
	'["eu-west tier=edge 2000 2048 x120","us-east gpu=no;tier=core 4000 8192 x80"]' \
	"each node has its group's region, labels and capacity"
is "$(jq -s -c '[.[].id] | [.[0], .[119], .[120], .[199]]' "$T_DIR/nodes.jsonl")" \
	'["eu-0000","eu-0119","us-0000","us-0079"]' "node ids <prefix>-NNNN"

# 2. 50 actors: placed, started and acked by the simulated agents.
for i in $(seq 1 50); do
	req POST /v1/actors "{\"id\":\"s$i\",\"module\":\"oci://demo/s$i:1\",\"cpu_required\":100,\"memory_required_mb\":64}"
	[ "$STATUS" = 201 ] || diag "POST s$i: $STATUS $BODY"
done
is "$(until_eq 50 all_running)" 50 "50 actors: every placement running"
acked() { get '/v1/commands?status=acked&limit=1000' '[.items[] | select(.command_type == "actor_start")] | length'; }
is "$(until_eq 50 acked)" 50 "50 actor_start commands acked"
is "$(consumers)" "200:0 0" "every agent's consumer exists, nothing pending or unacked"
grep -q "bound to consumer agent_us-0079" "$T_DIR/sim.log"
ok $? "the log says when an agent is bound"
n_applied1=$(grep -c 'applied command ' "$T_DIR/sim.log")
is "$n_applied1" 50 "50 commands applied by the agents"

# 3. kill -9 in the middle of 10 more starts, and restart on the same state dirs:
# commands applied but not acked come back and are acked again from the journals.
(
	for i in $(seq 51 60); do
		curl -s -o /dev/null -w "s$i %{http_code}\n" -X POST -H 'Content-Type: application/json' --max-time 60 \
			--data-binary "{\"id\":\"s$i\",\"module\":\"oci://demo/s$i:1\",\"cpu_required\":100,\"memory_required_mb\":64}" \
			"$API/v1/actors"
	done >"$T_DIR/posts"
) &
posts=$!
some_new() { grep -q 'applied command .* (actor_start s\(5[1-9]\|60\),' "$T_DIR/sim.log" && echo yes; }
until_eq yes some_new >/dev/null # one or more: how many got in first is up to the machine
exec 3>&2 2>/dev/null # (bash's "Killed" notice of lattice-sim is no news)
kill -9 "$SIM_PID"
wait "$SIM_PID"
wait "$posts"
exec 2>&3 3>&-
is "$(grep -c ' 201$' "$T_DIR/posts")" 10 "10 more actors created while lattice-sim was killed"
n_started=$(grep -c 'applied command .* (actor_start ' "$T_DIR/sim.log")
diag "killed after $n_started starts applied"
echo "---- restart ----" >>"$T_DIR/sim.log"
sim_start
restarted() { awk '/---- restart ----/ { r = 1 } r && /started again/ { n++ } END { print n + 0 }' "$T_DIR/sim.log"; }
is "$(until_eq "$n_started" restarted)" "$n_started" \
	"restarted: the agents start again every actor they had applied ($n_started) from their journals"
is "$(until_eq 200 healthy)" 200 "the 200 nodes are healthy again"
is "$(until_eq 60 all_running)" 60 "the 60 actors run"
all_acked() { get '/v1/commands?limit=1000' '[.items[] | select(.status != "acked")] | length'; }
is "$(until_eq 0 all_acked)" 0 "no command pending or failed"
is "$(grep -o 'applied command [^ ]*' "$T_DIR/sim.log" | sort | uniq -d | wc -l)" 0 "no command applied twice"
diag "$(grep -c 'was applied before' "$T_DIR/sim.log") redelivered commands acked again from the journals"
is "$(grep -c 'applied command ' "$T_DIR/sim.log")" 60 "60 commands applied in all"
is "$(until_eq "200:0 0" consumers)" "200:0 0" "every consumer drained after the restart"

# 4. SIGTERM: exit 0, with a last progress line. Every agent has bound to its
# consumer again first (one without commands binds when its first pull request
# expires: under load that can come after everything above).
bound_again() {
	awk '/---- restart ----/ { r = 1 } r' "$T_DIR/sim.log" | grep -o '[^ ]*: bound to consumer' | sort -u | wc -l
}
is "$(until_eq 200 bound_again)" 200 "every agent bound to its consumer again after the restart"
kill "$SIM_PID"
wait "$SIM_PID"
is "$?" 0 "SIGTERM: lattice-sim exits 0"
SIM_PID=
grep -q 'stopping (signal): agents 200, bound 200' "$T_DIR/sim.log"
ok $? "its last line: 200 agents, 200 bound ($(grep -o 'stopping (signal): agents [0-9]*, bound [0-9]*' "$T_DIR/sim.log" | tail -1))"

# 5. Bad scenarios: exit 2 with the reason.
bad_scenario() {
	printf '%s' "$1" >"$T_DIR/bad.json"
	"$SIM" --nats "$NATS_URL" --scenario "$T_DIR/bad.json" --state-dir "$T_DIR/bad" 2>&1
	echo "exit $?"
}
is "$(bad_scenario '{"agents":[{"count":1,"prefix":"x"}],"nemesis":1}')" \
	"lattice-sim: scenario $T_DIR/bad.json: scenario: unknown key 'nemesis' (known: lattice, heartbeat_ms, snapshot_ms, agents, duration_s, settle_s, cluster, workload, nemeses)
exit 2" "an unknown key: exit 2, named"
is "$(bad_scenario '{"agents":[{"count":2,"prefix":"x"},{"count":1,"prefix":"x"}]}')" \
	"lattice-sim: scenario $T_DIR/bad.json: agents: node id 'x-0000' is made by more than one group (prefixes must differ)
exit 2" "duplicate node ids: exit 2, named"

done_testing
