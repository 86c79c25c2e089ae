#!/usr/bin/env bash
# edge_failover.sh — latticed with real lattice-agents over a real nats-server
# (JetStream on) and a real PostgreSQL (issue 8, items 3-5 and 9):
#   - agents start -> their nodes are healthy with their profiles;
#   - an actor is created -> actor_start goes out -> the agent runs it and acks
#     -> the placement is running;
#   - an agent is killed -> its node goes unhealthy -> one failover moves its
#     actors (highest priority first) -> they run elsewhere, acked;
#   - the agent comes back -> healthy again, its old copies stopped (fencing);
#   - no room anywhere -> "failover failed: no healthy target", retried when a
#     new agent brings capacity;
#   - the failover dry run; acks that are spoofed or unknown are dropped and
#     counted; a nats-server restart mid-stream loses no command.
. "$(dirname "$0")/lib.sh"

plan 44
lib_init
nats_start || bail "cannot start nats-server"
. "$(dirname "$0")/edge_lib.sh"
EDGE_AGENT_FLAGS=(--label tier=edge)

lattice_start a --nats "$NATS_URL" --heartbeat-timeout-ms 2000 --command-timeout-ms 1000

placements() { get "/v1/actors/$1" '[.placements[] | "\(.node_id):\(.state)"] | join(",")'; }

# 1. Agents start: their nodes register healthy, with their profiles.
for id in e1 e2 e3; do agent_start "$id" eu 1000; done
nodes_up() { get '/v1/nodes?status=healthy' '[.items[].id] | join(",")'; }
is "$(until_eq e1,e2,e3 nodes_up)" e1,e2,e3 "three agents: three healthy nodes"
is "$(get /v1/nodes/e2 '"\(.region) \(.labels.tier) \(.cpu_capacity) \(.memory_mb)"')" "eu edge 1000 4096" \
	"a node has its agent's region, labels and capacity"
AGENT_VERSION=$("$AGENT" --help | sed -n 's/.*--agent-version.*(default: \(.*\))$/\1/p')
like_version() { get /v1/nodes/e2 .agent_version; }
is "$(until_eq "$AGENT_VERSION" like_version)" "$AGENT_VERSION" "... and the agent's version ($AGENT_VERSION)"
# "Each published once" below needs the agents bound before the commands come
# (a command that waits longer than --command-timeout-ms is published again).
bound() { grep -l "bound to consumer" "$T_DIR"/agent-e[123].log 2>/dev/null | wc -l; }
until_eq 3 bound >/dev/null

# 2. Actors: start commands, acked by the agents -> running.
for i in 1 2 3 4 5 6; do
	req POST /v1/actors "{\"id\":\"a$i\",\"module\":\"oci://demo/a$i:1\",\"cpu_required\":200,\"memory_required_mb\":64,\"priority\":$((i * 10))}"
	[ "$STATUS" = 201 ] || diag "POST a$i: $STATUS $BODY"
done
all_running() { get '/v1/actors?limit=100' '[.items[].placements[].state] | map(select(. == "running")) | length'; }
is "$(until_eq 6 all_running)" 6 "six actors: every placement is running (acked by its agent)"
is "$(get '/v1/commands?status=acked' '[.items[] | select(.command_type == "actor_start")] | length')" 6 \
	"six actor_start commands, all acked"
is "$(get /v1/commands '[.items[] | .attempts] | max')" 1 "each published once"
node_of() { get "/v1/actors/$1" '.placements[0].node_id'; }
grep -q "applied command .* (actor_start a1" "$T_DIR"/agent-*.log
ok $? "an agent's log shows it applied the start"

# 3. The dry run: where would the actors of a node go?
victim=$(node_of a6)
req POST "/v1/nodes/$victim/failover-plan"
is "$STATUS" 200 "POST /v1/nodes/{id}/failover-plan is 200"
is "$(jqr '[.moves[].priority] == ([.moves[].priority] | sort | reverse)')" true "the plan takes the highest priority first"
is "$(jqr '.moves | length')" "$(get "/v1/actors?node=$victim" '.items | length')" "every actor of the node has a home in the plan"
req POST /v1/nodes/nope/failover-plan
is "$STATUS" 404 "the dry run of an unknown node is 404"

# 4. Kill the agent: the node goes unhealthy, one failover moves its actors.
moved=$(get "/v1/actors?node=$victim" '[.items[].id] | join(" ")')
agent_kill "$victim"
is "$(until_eq unhealthy get "/v1/nodes/$victim" .status)" unhealthy "the killed agent's node is unhealthy"
fo_status() { get "/v1/failovers?node=$victim" '[.items[].status] | join(",")'; }
is "$(until_eq completed fo_status)" completed "one failover of that node, completed"
req GET "/v1/failovers?node=$victim"
is "$(jqr '.items[0] | [.assignments[].state] | unique | join(",")')" running "every assignment acked running"
is "$(jqr '.items[0].downtime_ms >= 0 and .items[0].detected_at != null and .items[0].finished_at != null')" true \
	"the failover has its detection time, finish time and downtime"
fid=$(jqr '.items[0].id')
is "$(get "/v1/failovers/$fid" .node_id)" "$victim" "GET /v1/failovers/{id}"
elsewhere=1
for a in $moved; do
	p=$(placements "$a")
	case $p in "$victim":*) elsewhere=0 ;; *:running) ;; *) elsewhere=0 ;; esac
done
is "$elsewhere" 1 "every actor of the dead node runs elsewhere ($moved)"
# The failover bumped each moved actor's generation: PostgreSQL has it too (a
# no-op PATCH answers the model's generation).
same_gen=1
for a in $moved; do
	req GET "/v1/actors/$a"
	g=$(jqr .generation)
	req PATCH "/v1/actors/$a" "{\"replicas\": $(jqr .replicas)}"
	[ "$STATUS $(jqr .generation)" = "200 $g" ] || same_gen=0
done
is "$same_gen" 1 "after the failover, reads and a no-op PATCH agree on each moved actor's generation"
is "$(get "/v1/commands?node=$victim" '[.items[] | select(.payload.reason == "failover_fencing" and .status != "acked")] | length')" \
	"$(echo "$moved" | wc -w)" "a failover_fencing actor_stop waits for the dead node per moved actor"
req GET '/v1/events?since=0&limit=1000'
is "$(jqr '[.items[] | select(.kind == "failover.started" or .kind == "failover.completed") | .kind] | join(",")')" \
	"failover.started,failover.completed" "failover events"
fo_ms=$(jqr '[.items[] | select(.kind == "failover.completed")][0].data.downtime_ms')
is "$(metric 'lattice_failovers_total{status="completed"}') $(metric lattice_failover_duration_seconds_count)" "1 1" \
	"/metrics: one failover completed, its duration in the histogram"
ok "$(awk -v s="$(metric lattice_failover_duration_seconds_sum)" -v ms="$fo_ms" 'BEGIN { exit !(s * 1000 >= ms - 1 && s * 1000 <= ms + 1) }'; echo $?)" \
	"lattice_failover_duration_seconds_sum ($(metric lattice_failover_duration_seconds_sum) s) is the event's downtime_ms ($fo_ms)"
ok "$([ "$(metric lattice_heartbeat_interval_seconds_count)" -ge 5 ] && awk -v a="$(metric lattice_heartbeat_age_max_seconds)" 'BEGIN { exit !(a >= 0) }'; echo $?)" \
	"heartbeat intervals ($(metric lattice_heartbeat_interval_seconds_count)) and the oldest heartbeat's age ($(metric lattice_heartbeat_age_max_seconds) s) in /metrics"

# 5. The agent comes back: healthy again, its old copies stopped.
agent_start "$victim" eu 1000
is "$(until_eq healthy get "/v1/nodes/$victim" .status)" healthy "the agent is back: its node is healthy again"
fencing_acked() { get "/v1/commands?node=$victim" '[.items[] | select(.payload.reason == "failover_fencing" and .status == "acked")] | length'; }
is "$(until_eq "$(echo "$moved" | wc -w)" fencing_acked)" "$(echo "$moved" | wc -w)" "the fencing stops are delivered and acked"
is "$(grep -c "applied command .* (actor_stop" "$T_DIR/agent-$victim.log")" "$(echo "$moved" | wc -w)" \
	"the returning agent applied each stop once"
is "$(get /v1/failovers '.items | length')" 1 "no second failover for the node that came back"

# 6. No room: 'failover failed: no healthy target', retried when capacity appears.
for id in e1 e2 e3; do req POST "/v1/nodes/$id/cordon"; done
agent_start e5 eu 1000
is "$(until_eq healthy get /v1/nodes/e5 .status)" healthy "a fifth agent"
req POST /v1/actors '{"id":"big","module":"oci://demo/big:1","cpu_required":700,"memory_required_mb":64,"priority":200}'
is "$STATUS" 201 "a big actor placed on the only uncordoned node"
is "$(until_eq "e5:running" placements big)" "e5:running" "... and running there"
agent_kill e5
is "$(until_eq unhealthy get /v1/nodes/e5 .status)" unhealthy "its node dies"
no_home() { get '/v1/failovers?node=e5' '[.items[] | .error] | map(select(. != null)) | first // ""'; }
is "$(until_eq "failover failed: no healthy target" no_home)" "failover failed: no healthy target" \
	"nowhere to go: the failover says 'failover failed: no healthy target'"
is "$(until_eq "e5:failed" placements big)" "e5:failed" "... and the placement is failed"
agent_start e4 eu 2000
is "$(until_eq "e4:running" placements big)" "e4:running" "a new agent brings capacity: the actor is failed over to it and runs"
for id in e1 e2 e3; do req POST "/v1/nodes/$id/uncordon"; done

# 7. Acks that lie are dropped and counted.
nats_pub lattice.default.ack.e2 '{"command_id":"c1-0","node_id":"e2","status":"ok","error":null,"applied_version":0,"at":"2026-12-02T10:00:00Z"}'
nats_pub lattice.default.ack.e2 "{\"command_id\":\"$(get '/v1/commands?node=e3&status=acked' '.items[0].command_id')\",\"node_id\":\"e2\",\"status\":\"ok\",\"error\":null,\"applied_version\":0,\"at\":\"2026-12-02T10:00:00Z\"}"
nats_pub lattice.default.ack.e2 '{"command_id":"x","node_id":"e3","status":"ok","at":"2026-12-02T10:00:00Z"}'
nats_pub lattice.default.ack.e2 'not json'
is "$(until_eq 1 metric 'lattice_nats_dropped_total{subject="ack",reason="unknown"}')" 1 "an ack of an unknown command is dropped and counted"
is "$(until_eq 2 metric 'lattice_nats_dropped_total{subject="ack",reason="spoofed"}')" 2 \
	"an ack for another node's command, and one whose subject and body disagree, are dropped as spoofed"
is "$(until_eq 1 metric 'lattice_nats_dropped_total{subject="ack",reason="malformed"}')" 1 "a malformed ack is dropped"
req GET /healthz
is "$STATUS" 200 "latticed is fine"

# 8. nats-server restarts while commands are on their way: none is lost.
for i in 1 2 3 4 5 6 7 8; do
	req POST /v1/actors "{\"id\":\"r$i\",\"module\":\"oci://demo/r:1\",\"cpu_required\":10,\"memory_required_mb\":8}"
	[ "$i" = 3 ] && nats_restart
done
r_running() { get '/v1/actors?limit=100' '[.items[] | select(.id | startswith("r")) | .placements[].state] | map(select(. == "running")) | length'; }
is "$(until_eq 8 r_running)" 8 "eight actors created across a nats-server restart all run"
is "$(get '/v1/commands?status=failed' '.items | length')" 0 "no command failed"
is "$(get '/v1/commands?status=pending' '[.items[] | select(.command_type == "actor_start")] | length')" 0 \
	"no start left pending"

# 8b. Acks in flight while the leader reconnects and sets up again are read at
# once: none is delivered to a subscription dropped meanwhile (it would come
# back only after controller_ack's 10 s ack wait, as a redelivery).
ack_redelivered() { nats_req '$JS.API.CONSUMER.INFO.LATTICE_default_ACK.controller_ack' '' | jq -r '.num_redelivered'; }
r0=$(ack_redelivered)
for round in 1 2 3; do
	qpids=()
	for i in $(seq 1 20); do
		curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
			--data-binary "{\"id\":\"q$round-$i\",\"module\":\"oci://demo/q:1\",\"cpu_required\":1,\"memory_required_mb\":1}" \
			"$API/v1/actors" &
		qpids+=($!)
	done
	sleep 0.05
	nats_restart
	wait "${qpids[@]}"
done
q_running() { get '/v1/actors?limit=200' '[.items[] | select(.id | startswith("q")) | .placements[].state] | map(select(. == "running")) | length'; }
is "$(until_eq 60 q_running)" 60 "sixty actors created across three nats-server restarts all run"
is "$(ack_redelivered)" "$r0" "controller_ack redelivered nothing: every ack was read when delivered"

# 9. Everything the agents applied, each once.
dups=$(cat "$T_DIR"/agent-*.log | grep -o 'applied command [^ ]*' | sort | uniq -d | wc -l)
is "$dups" 0 "no agent applied a command twice"

agents_stop
done_testing
