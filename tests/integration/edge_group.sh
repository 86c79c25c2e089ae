#!/usr/bin/env bash
# edge_group.sh — the edge with a group of three replicas (issue 8, item 9):
#   - a new leader takes over the edge: it waits one heartbeat timeout before
#     declaring anyone dead (no node of a live agent turns unhealthy), and its
#     commands reach the agents;
#   - the leader is killed in the middle of a failover: the failover completes,
#     once; every actor of the dead node runs elsewhere, on one node;
#   - the three databases end identical (commands, failovers and all).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"

plan 14
lib_init
nats_start || bail "cannot start nats-server"
. "$(dirname "$0")/edge_lib.sh"

group_init 3
OPTS=(--bootstrap --members "$MEMBERS" --nats "$NATS_URL" --heartbeat-timeout-ms 2000 --command-timeout-ms 1000
	--leader-wait-ms 5000)
for id in e1 e2 e3 e4; do agent_start "$id"; done
for i in 1 2 3; do group_start "$i" "${OPTS[@]}"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
group_leader >/dev/null || bail "no leader"

gget() { # REPLICA PATH FILTER (a consistent read)
	greq "$1" GET "$2"
	[ "$STATUS" = 200 ] && jqr "$3" || echo "(status $STATUS)"
}
any_up() { local i; for i in 1 2 3; do group_alive "$i" && { echo "$i"; return; }; done; }
nodes_up() { gget "$(any_up)" '/v1/nodes?status=healthy&consistent=true' '[.items[].id] | join(",")'; }
running() { gget "$(any_up)" '/v1/actors?limit=100&consistent=true' '[.items[].placements[].state] | map(select(. == "running")) | length'; }

is "$(until_eq e1,e2,e3,e4 nodes_up)" e1,e2,e3,e4 "four agents register through the group's leader"
for i in 1 2 3 4 5 6 7 8; do
	greq $(((i % 3) + 1)) POST /v1/actors "{\"id\":\"a$i\",\"module\":\"oci://demo/a:1\",\"cpu_required\":100,\"memory_required_mb\":16,\"priority\":$i}"
done
is "$(until_eq 8 running)" 8 "eight actors created through all three replicas run on the agents"

# 1. The leader dies: the next one waits a heartbeat timeout before declaring
# anyone dead, so no live agent's node turns unhealthy.
L=$(group_leader)
group_kill "$L"
new=$(until_eq ok bash -c "for i in 1 2 3; do [ \$i = $L ] && continue; s=\$(curl -s --max-time 2 http://127.0.0.1:\$(cat $T_DIR/r\$i/http_port)/v1/cluster | jq -r '.leader.id // empty'); [ -n \"\$s\" ] && [ \"\$s\" != $L ] && { echo ok; exit; }; done")
is "$new" ok "a new leader is elected"
sleep 4 # two heartbeat timeouts
is "$(gget "$(any_up)" '/v1/events?since=0&limit=1000&consistent=true' '[.items[] | select(.kind == "node.status")] | length')" 0 \
	"no node of a live agent went unhealthy across the change of leader"
greq "$(any_up)" POST /v1/actors '{"id":"after","module":"oci://demo/a:1","cpu_required":100,"memory_required_mb":16}'
is "$STATUS" 201 "a write after the change"
is "$(until_eq 9 running)" 9 "... and its actor_start reaches an agent from the new leader"
group_start "$L" "${OPTS[@]}"
group_wait_ready "$L" || bail "replica $L did not come back"

# 2. The leader dies in the middle of a failover.
victim=$(gget "$(any_up)" '/v1/actors/a8?consistent=true' '.placements[0].node_id')
moved=$(gget "$(any_up)" "/v1/actors?node=$victim&consistent=true" '[.items[].id] | join(" ")')
agent_kill "$victim"
L=$(group_leader)
follower=$(group_others "$L" | awk '{print $1}')
down() { gget "$follower" "/v1/nodes/$victim" .status; }
is "$(until_eq unhealthy down)" unhealthy "the victim's node turns unhealthy"
group_kill "$L" # right away: the failover is planned, in flight or just committed
fo() { gget "$(any_up)" "/v1/failovers?node=$victim&consistent=true" '[.items[].status] | join(",")'; }
is "$(until_eq completed fo)" completed "the failover completes, once, after the leader died in its middle"
elsewhere=yes
for a in $moved; do
	p=$(gget "$(any_up)" "/v1/actors/$a?consistent=true" '[.placements[] | "\(.node_id):\(.state)"] | join(",")')
	case $p in "$victim":* | *,* | "") elsewhere="no: $a $p" ;; *:running) ;; *) elsewhere="no: $a $p" ;; esac
done
is "$elsewhere" yes "every actor of the dead node ($moved) runs on one other node"
dup=0
for a in $moved; do
	n=$(cat "$T_DIR"/agent-*.log | grep -c "applied command .* (actor_start $a,")
	[ "$n" -le 2 ] || dup=$((dup + 1)) # its first start, and the failover's one
done
is "$dup" 0 "no actor was started more than once by the failover"
is "$(gget "$(any_up)" '/v1/commands?status=failed&consistent=true' '.items | length')" 0 "no command failed"

# 3. The replicas' databases end identical.
group_start "$L" "${OPTS[@]}"
group_wait_ready "$L" || bail "replica $L did not come back"
agent_start "$victim"
is "$(until_eq e1,e2,e3,e4 nodes_up)" e1,e2,e3,e4 "the agent is back"
fencing() { gget "$(any_up)" "/v1/commands?node=$victim&consistent=true" '[.items[] | select(.payload.reason == "failover_fencing" and .status != "acked")] | length'; }
is "$(until_eq 0 fencing)" 0 "its fencing stops are acked"
# Heartbeats keep writing (reports); for a moment of quiet, stop the agents and
# NATS: a leader cut off from NATS declares nobody dead, so nothing is written.
agents_stop
nats_stop
sleep 1
group_settle 1 2 3
group_same_db 1 2 3
ok $? "the three databases are identical (commands, failovers, snapshots and all)"

done_testing
