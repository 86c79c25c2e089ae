#!/usr/bin/env bash
# edge_ratelimit.sh — mass silence (SPEC "Failover"): when most nodes of a
# region go silent at once the leader is more likely cut off than they are
# dead, so failovers there are rate-limited (>= 55% of a region of >= 3 nodes
# unhealthy: one failover per 10 s), while a single dead node elsewhere fails
# over at once. The same over the whole lattice (>= 55% of >= 3 nodes
# unhealthy: one failover per 30 s), with one node per region so no region's
# limit applies: with 3 of 7 nodes already dead, three more die at once and
# their failovers come 30 s apart (this part takes over a minute).
. "$(dirname "$0")/lib.sh"

plan 15
lib_init
nats_start || bail "cannot start nats-server"
. "$(dirname "$0")/edge_lib.sh"

lattice_start a --nats "$NATS_URL" --heartbeat-timeout-ms 2000
for id in e1 e2 e3; do agent_start "$id" eu 1000; done
for id in u1 u2 u3; do agent_start "$id" us 1000; done
nodes_up() { get '/v1/nodes?status=healthy' '[.items[].id] | join(",")'; }
is "$(until_eq e1,e2,e3,u1,u2,u3 nodes_up)" e1,e2,e3,u1,u2,u3 "six agents in two regions"
# One actor per node, pinned to its region.
for id in e1 e2 e3 u1 u2 u3; do
	req POST /v1/actors "{\"id\":\"a-$id\",\"module\":\"oci://demo/a:1\",\"cpu_required\":300,\"memory_required_mb\":16,\"preferred_region\":\"${id%?}\",\"constraints\":{}}"
done
running() { get '/v1/actors?limit=100' '[.items[].placements[].state] | map(select(. == "running")) | length'; }
is "$(until_eq 6 running)" 6 "six actors running"

# Two of eu's three nodes die at once (67% >= 55%): the first failover goes at
# once, the second waits for the region's interval.
on() { get "/v1/actors?node=$1" '[.items[].id] | join(",")'; }
down1=$(on e1)
down2=$(on e2)
agent_kill e1
agent_kill e2
fo_count() { get '/v1/failovers?limit=100' '[.items[] | select(.status == "completed")] | length'; }
is "$(until_eq 2 fo_count)" 2 "both dead nodes are failed over in the end"
req GET '/v1/failovers?limit=100'
gap=$(jqr '[.items[].started_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601] | sort | .[1] - .[0]')
is "$([ "$gap" -ge 9 ] && echo yes || echo "no: ${gap}s")" yes \
	"the second failover of a disrupted region came one region interval after the first (${gap} s apart)"
grep -q 'failovers in region eu rate-limited: 2 of 3 nodes are unhealthy' "$T_DIR/a/latticed.log"
ok $? "the log says why: failovers in region eu rate-limited: 2 of 3 nodes are unhealthy"

# A single dead node in another region is failed over at once all the same.
agent_kill u1
u1_done() { get '/v1/failovers?node=u1' '[.items[].status] | join(",")'; }
is "$(until_eq completed u1_done)" completed "a single dead node of us fails over"

# ---- the whole lattice: seven nodes in seven regions, most of them die -----------------
# Three nodes with nothing on them die first (3 of 7: not yet disrupted), then
# three that run an actor each, at once: from the first of those seen dead on,
# 4 of 7 or more are unhealthy (>= 55%), so all three failovers fall under the
# lattice's limit whatever order they are seen in. No region has 3 nodes.
agents_stop
lattice_stop
nats_stop
NATS_DIR= NATS_PORT=
nats_start || bail "cannot start a second nats-server"
lattice_start b --nats "$NATS_URL" --heartbeat-timeout-ms 2000
for id in x1 x2 x3 w1 w2 w3 s; do agent_start "$id" "r-$id" 2000; done
is "$(until_eq s,w1,w2,w3,x1,x2,x3 nodes_up)" s,w1,w2,w3,x1,x2,x3 "seven agents, each in a region of its own"
for id in w1 w2 w3; do
	req POST /v1/actors "{\"id\":\"b-$id\",\"module\":\"oci://demo/b:1\",\"cpu_required\":300,\"memory_required_mb\":16,\"preferred_region\":\"r-$id\",\"constraints\":{}}"
done
placed() { get '/v1/actors?limit=100' '[.items[] | "\(.id)@\(.placements[0].node_id):\(.placements[0].state)"] | sort | join(",")'; }
is "$(until_eq b-w1@w1:running,b-w2@w2:running,b-w3@w3:running placed)" b-w1@w1:running,b-w2@w2:running,b-w3@w3:running \
	"an actor running on each of w1, w2, w3 (its preferred region)"
agent_kill x1
agent_kill x2
agent_kill x3
unhealthy() { get '/v1/nodes?status=unhealthy' '[.items[].id] | join(",")'; }
is "$(until_eq x1,x2,x3 unhealthy)" x1,x2,x3 "x1, x2, x3 (no actors) die: 3 of 7 unhealthy, nothing to fail over"
agent_kill w1
agent_kill w2
agent_kill w3
# Two 30 s intervals: longer than until_eq's guard, so it is called again.
fo_done() { get '/v1/failovers?limit=100' '[.items[] | select(.status == "completed") | .node_id] | sort | join(",")'; }
got=$(until_eq w1,w2,w3 fo_done)
[ "$got" = w1,w2,w3 ] || got=$(until_eq w1,w2,w3 fo_done)
[ "$got" = w1,w2,w3 ] || got=$(until_eq w1,w2,w3 fo_done)
is "$got" w1,w2,w3 "w1, w2, w3 die at once: all three are failed over in the end"
is "$(get '/v1/failovers?limit=100' '[.items[].node_id] | sort | join(",")')" w1,w2,w3 "no failover of x1, x2, x3 (nothing on them)"
is "$(placed)" b-w1@s:running,b-w2@s:running,b-w3@s:running "their actors run on s, the one node left"
req GET '/v1/failovers?limit=100'
gaps=$(jqr '[.items[].started_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601] | sort | [.[1] - .[0], .[2] - .[1]] | map(tostring) | join(" ")')
is "$(for g in $gaps; do [ "$g" -ge 29 ] && echo yes || echo "no: ${g}s"; done | sort -u)" yes \
	"with >= 4 of 7 nodes unhealthy the failovers came one lattice interval (30 s) apart (gaps: $gaps s)"
grep -Eq 'failovers rate-limited: [4-6] of 7 nodes are unhealthy \(>= 55%\): this leader may be the one cut off; one failover per 30 s' \
	"$T_DIR/b/latticed.log"
ok $? "the log says why: failovers rate-limited: N of 7 nodes are unhealthy (>= 55%) ... one failover per 30 s"
is "$(grep -c 'failovers in region' "$T_DIR/b/latticed.log")" 0 "no region's limit applied (one node per region)"

agents_stop
done_testing
