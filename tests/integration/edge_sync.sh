#!/usr/bin/env bash
# edge_sync.sh — state snapshots, live migration, security policy sync and
# reconciliation, with real lattice-agents over a real nats-server (JetStream)
# and a real PostgreSQL (issue 8, items 2, 4-7, 9):
#   - agents' periodic snapshots are kept (latest per actor, in PostgreSQL's
#     snapshots table) and a failover restarts an actor from its latest one;
#   - POST /v1/actors/{id}/migrate: checkpoint on the source, start from it on
#     the target, stop the source; each step an event; never on zero nodes,
#     never on two after; bad requests refused;
#   - a new policy version reaches every node it covers (security_policy), the
#     nodes' applied versions are in GET /v1/nodes, a node behind is listed by
#     GET /v1/policies/{id} and counted in /metrics, then catches up;
#   - reconciliation: an agent restarted with an empty disk gets its actors
#     started again; an actor an agent runs that the lattice never placed there
#     is stopped.
. "$(dirname "$0")/lib.sh"
. "$top_srcdir/tests/lib/protocol.sh"

plan 49
lib_init
nats_start || bail "cannot start nats-server"
# Every message of the run, to check against docs/protocol.md at the end.
natscap_start "$T_DIR/cap" 'lattice.default.>' || bail "natscap did not start"
JSCTL=${JSCTL:-$top_builddir/tests/tools/jsctl}
[ -x "$JSCTL" ] || bail "jsctl not built at $JSCTL"
. "$(dirname "$0")/edge_lib.sh"
EDGE_AGENT_FLAGS=(--snapshot-interval-ms 300)

lattice_start a --nats "$NATS_URL" --heartbeat-timeout-ms 2000 --command-timeout-ms 1000

placements() { get "/v1/actors/$1" '[.placements[] | "\(.node_id):\(.state)"] | join(",")'; }

agent_start e1 eu
agent_start e2 eu
agent_start u1 us
nodes_up() { get '/v1/nodes?status=healthy' '[.items[].id] | join(",")'; }
is "$(until_eq e1,e2,u1 nodes_up)" e1,e2,u1 "three agents, three healthy nodes"

# 1. Snapshots: the agents' periodic ones are kept, the latest per actor.

req POST /v1/actors '{"id":"counter","module":"oci://demo/counter:1","cpu_required":100,"memory_required_mb":32,"preferred_region":"eu"}'
is "$STATUS" 201 "an actor with state (the sim driver's counter)"
is "$(until_eq running get /v1/actors/counter '.placements[0].state')" running "... running"
snap_version() { get /v1/actors/counter '.placements[0].state_version'; }
v_before=$(until_eq 3 bash -c "v=\$(curl -s $API/v1/actors/counter | jq -r '.placements[0].state_version'); [ \"\$v\" -ge 3 ] && echo 3 || echo \$v")
is "$v_before" 3 "its snapshots arrive: the placement's state_version rises"
rows=$(pg_psql a "SELECT count(*), max(state_version) > 0, bool_and(length(state_data) > 0) FROM snapshots WHERE actor_id = 'counter'")
is "$rows" "1|t|t" "PostgreSQL holds its latest snapshot only, with its state"

# 2. Failover restarts it from its latest snapshot.
src=$(get /v1/actors/counter '.placements[0].node_id')
kept=$(get /v1/actors/counter '.placements[0].state_version')
agent_kill "$src"
moved() { p=$(get /v1/actors/counter '.placements[0] | "\(.node_id):\(.state)"'); case $p in "$src":*) echo no ;; *:running) echo yes ;; *) echo no ;; esac; }
is "$(until_eq yes moved)" yes "the agent dies: the actor runs elsewhere"
start=$(get '/v1/commands?status=acked' "[.items[] | select(.command_type == \"actor_start\" and .actor_id == \"counter\" and .target_node != \"$src\")] | last | .applied_version")
is "$([ "$start" -ge "$kept" ] && echo yes || echo "no: $start < $kept")" yes \
	"the replacement started from the latest snapshot (state_version $start >= $kept)"
agent_start "$src" eu
is "$(until_eq e1,e2,u1 nodes_up)" e1,e2,u1 "the agent is back"

# 3. Migration: checkpoint on the source, start from it on the target, stop the source.
from=$(get /v1/actors/counter '.placements[0].node_id')
to=e1
[ "$from" = e1 ] && to=e2
req POST /v1/actors/counter/migrate "{\"target_node\":\"$to\"}"
is "$STATUS" 202 "POST /v1/actors/{id}/migrate is 202"
is "$(jqr '.placements[0].state')" migrating "... and the placement shows migrating"
is "$(until_eq "$to:running" placements counter)" "$to:running" "the actor ends up running on the target"
steps() { get '/v1/events?since=0&limit=1000' '[.items[] | select(.object_id == "counter" and (.kind | startswith("actor.migrat"))) | .data.step // .kind] | join(",")'; }
is "$(until_eq "checkpointing,starting,stopping,actor.migrated" steps)" \
	"checkpointing,starting,stopping,actor.migrated" "each step is an event: checkpointing, starting, stopping, migrated"
# Commands of the migration: created at or after its actor_migrate.
mig_at=$(get /v1/commands '[.items[] | select(.command_type == "actor_migrate" and .actor_id == "counter")][0].created_at')
ckpt=$(get /v1/commands '[.items[] | select(.command_type == "actor_migrate" and .actor_id == "counter")][0].applied_version')
tstart=$(get /v1/commands "[.items[] | select(.command_type == \"actor_start\" and .actor_id == \"counter\" and .target_node == \"$to\" and .created_at >= \"$mig_at\")][0].applied_version")
is "$([ "${tstart:-0}" -ge "${ckpt:-1}" ] && echo yes || echo "no: $tstart < $ckpt")" yes \
	"the target started from the source's checkpoint or a later snapshot ($tstart >= $ckpt)"
# Never on zero nodes, never on two after: the stop on the source came after the
# target's start was acked, and the source no longer runs it.
order=$(get /v1/commands "[.items[] | select(.actor_id == \"counter\" and .created_at >= \"$mig_at\" and ((.command_type == \"actor_start\" and .target_node == \"$to\") or (.command_type == \"actor_stop\" and .target_node == \"$from\" and .payload.reason == \"migrated\")))] | sort_by(.acked_at) | map(.command_type) | join(\",\")")
is "$order" "actor_start,actor_stop" "the source's stop was acked after the target's start"
is "$(grep -c "applied command .* (actor_stop counter" "$T_DIR/agent-$from.log")" 1 "the source stopped it once"
req POST /v1/actors/counter/migrate '{"target_node":"nope"}'
is "$STATUS" 404 "migrating to an unknown node is 404"
req POST /v1/actors/counter/migrate "{\"target_node\":\"$to\"}"
is "$STATUS $(jqr .error.code)" "409 conflict" "migrating to where it runs is 409"
req POST /v1/actors/counter/migrate '{"instance":5}'
is "$STATUS" 400 "an instance it does not have is 400"
req POST /v1/actors/counter/migrate '{"to":"e1"}'
is "$STATUS $(jqr .error.code)" "400 unknown_field" "an unknown field is 400"
req POST /v1/actors/nope/migrate '{}'
is "$STATUS" 404 "migrating an unknown actor is 404"

# 3b. A migration cancelled while its target's agent is paused: the start waiting
# in the target's consumer is fenced by a stop behind it, so the target does not
# end up running a second copy when it resumes (lattice-sim's split-regions run:
# a flapping target ran the actor beside the one a later migration placed).
now_on=$(get /v1/actors/counter '.placements[0].node_id')
t2=e1
[ "$now_on" = e1 ] && t2=e2
starting() { get "/v1/commands?node=$t2" '[.items[] | select(.command_type == "actor_start" and .actor_id == "counter")] | length'; }
starts0=$(starting)
kill -STOP "${APID[$t2]}"
req POST /v1/actors/counter/migrate "{\"target_node\":\"$t2\"}"
is "$STATUS" 202 "a migration to $t2, whose agent is paused"
is "$(until_eq $((starts0 + 1)) starting)" $((starts0 + 1)) "... its start waits for $t2"
req PATCH /v1/actors/counter '{"replicas": 2}'
is "$STATUS" 200 "a scale of the actor cancels the migration (instance 0 stays where it ran)"
cancelled() { get "/v1/commands?node=$t2" '[.items[] | select(.command_type == "actor_stop" and .actor_id == "counter" and .payload.reason == "migration_cancelled") | .status] | join(",")'; }
is "$(until_eq published cancelled)" published "the cancel queues a stop (migration_cancelled) behind the start"
kill -CONT "${APID[$t2]}"
is "$(until_eq acked cancelled)" acked "$t2 resumes: it applies the start, then that stop"
inst0() { get /v1/actors/counter '.placements[0] | "\(.node_id):\(.state)"'; }
is "$(until_eq "$now_on:running" inst0)" "$now_on:running" "instance 0 still runs where it ran"
req PATCH /v1/actors/counter '{"replicas": 1}'
is "$STATUS" 200 "back to one replica"

# 4. Policy sync: a new version reaches every node it covers.
req POST /v1/policies '{"policy_id":"eu-only","allowed_contracts":["wasmcloud:keyvalue","wasmcloud:http"],"max_actor_memory_mb":512,"selector":{"regions":["eu"]}}'
is "$STATUS" 201 "a policy for region eu"
synced() { get /v1/nodes '[.items[] | select(.region == "eu") | .policy_version == .policy_target and .policy_target > 0] | all'; }
is "$(until_eq true synced)" true "both eu nodes applied it (policy_version = policy_target)"
is "$(get /v1/nodes/u1 '"\(.policy_version) \(.policy_target)"')" "0 0" "the us node is not covered: nothing sent"
req GET '/v1/commands?node=e1'
is "$(jqr '[.items[] | select(.command_type == "security_policy")] | last | .payload | "\(.allowed_contracts | join(" ")) \(.max_actor_memory_mb)"')" \
	"wasmcloud:http wasmcloud:keyvalue 512" "the command carries the merged policy"
applied_policies() { grep -c "applied command .* (security_policy" "$T_DIR/agent-e2.log"; }
applied_before=$(applied_policies)
kill -STOP "${APID[e2]}"
puts=""
for mem in 256 320 384 448 512; do
	req PUT /v1/policies/eu-only "{\"allowed_contracts\":[\"wasmcloud:http\"],\"max_actor_memory_mb\":$mem,\"selector\":{\"regions\":[\"eu\"]}}"
	puts="$puts$STATUS "
done
is "$puts" "200 200 200 200 200 " "five new versions while e2's agent is paused"
behind() { get /v1/policies/eu-only '[.drift.nodes_behind[].node_id] | join(",")'; }
is "$(until_eq e2 behind)" e2 "GET /v1/policies/{id} lists e2 as behind"
is "$(until_eq 1 metric lattice_nodes_policy_behind)" 1 "lattice_nodes_policy_behind counts it"
# A node gets one policy at a time, the newest: older ones not sent yet are
# superseded (docs/protocol.md, "Policy sync"), none is retried behind a newer one.
e2_policy() { get '/v1/commands?node=e2&limit=1000' "[.items[] | select(.command_type == \"security_policy\" and (.status | IN($1)))] | length"; }
open_now=$(e2_policy '"pending","published"')
is "$([ "$open_now" -ge 1 ] && [ "$open_now" -le 2 ] && echo yes || echo "no: $open_now")" yes \
	"e2: $open_now policy command(s) open (at most one on its way and the newest waiting), not five"
sup=$(e2_policy '"superseded"')
is "$([ "$sup" -ge 3 ] && echo yes || echo "no: $sup")" yes "e2: the versions between were superseded ($sup)"
req GET '/v1/commands?status=superseded&limit=1000'
is "$STATUS $(jqr '(.items | length) as $n | [.items[] | select(.command_type == "security_policy" and (.error | startswith("superseded by c")))] | length == $n and $n >= 3')" "200 true" \
	"GET /v1/commands?status=superseded lists them, each naming what superseded it"
kill -CONT "${APID[e2]}"
is "$(until_eq "" behind)" "" "e2 resumes and catches up: nobody behind"
is "$(until_eq 0 e2_policy '"pending","published"')" 0 "no policy command left open for e2"
n_applied=$(( $(applied_policies) - applied_before ))
is "$([ "$n_applied" -ge 1 ] && [ "$n_applied" -le 3 ] && echo yes || echo "no: $n_applied")" yes \
	"e2's agent applied $n_applied policy commands for five versions"
on_newest() { get /v1/nodes/e2 '.policy_version == .policy_target'; }
is "$(until_eq true on_newest)" true "e2 is on the newest version (a heartbeat sent before the ack may still report the older one for a moment)"
is "$(get /v1/policies/eu-only .drift.nodes_covered)" 2 "the policy covers two nodes"

# 5. Reconciliation: an agent restarted with an empty disk gets its actors back.
on_u1() { get '/v1/actors?node=u1' '[.items[].id] | join(",")'; }
req POST /v1/actors '{"id":"us-app","module":"oci://demo/us:1","cpu_required":100,"memory_required_mb":32,"preferred_region":"us"}'
is "$(until_eq "u1:running" placements us-app)" "u1:running" "an actor runs on u1"
agent_kill u1
rm -rf "$T_DIR/agents/u1"
agent_start u1 us
restarted() { grep -c "applied command .* (actor_start us-app" "$T_DIR/agent-u1.log"; }
is "$(until_eq 2 restarted)" 2 "u1 came back with an empty disk (within the timeout): the lattice started us-app there again"
req GET '/v1/events?since=0&limit=1000'
is "$(jqr '[.items[] | select(.kind == "node.reconciled" and .object_id == "u1")] | length >= 1')" true "a node.reconciled event"
# An actor the lattice never placed there: started behind its back, then stopped.
cat >"$T_DIR/stray.json" <<EOF
{"command_id":"stray-1","command_type":"actor_start","target_node":"u1","term":1,"generation":1,"config_version":1,"issued_at":"2026-12-02T10:00:00.000Z","payload":{"actor_id":"stray","instance":0,"module":"oci://demo/stray:1","cpu_required":10,"memory_required_mb":8,"config":{},"snapshot":null}}
EOF
"$JSCTL" "$NATS_URL" publish default u1 "$T_DIR/stray.json" stray-1 >/dev/null
stray_stopped() { grep -c "applied command .* (actor_stop stray" "$T_DIR/agent-u1.log"; }
is "$(until_eq 1 stray_stopped)" 1 "an actor the lattice never placed on u1 is stopped by reconciliation"

agents_stop
natscap_stop
evts=$(ls "$T_DIR/cap" | grep -c '\.lattice\.default\.evt\..*\.json$')
is "$([ "$evts" -ge 10 ] && echo yes || echo "no: $evts")" yes "the leader publishes events on lattice.default.evt.<kind> ($evts captured)"
ls "$T_DIR/cap" | grep -q 'lattice\.default\.evt\.node_status\.json$'
ok $? "... e.g. lattice.default.evt.node_status"
if protocol_setup; then
	protocol_validate "$T_DIR/cap"
	ok $? "every message of the run ($(ls "$T_DIR/cap" | grep -c '\.json$') captured) follows docs/protocol.md and api/nats/*.schema.json"
else
	skip_point "$PROTOCOL_WHY" "every message of the run follows docs/protocol.md"
fi
done_testing
