#!/usr/bin/env bash
# api.sh — every REST endpoint of latticed, through curl, against a real replica
# and its own throwaway PostgreSQL (SPEC.md "REST API", "Placement", "Security
# policies"). Prints TAP.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/integration/lib.sh"

plan 261

lib_init
# A short bounded wait, so the ?min_index= far in the future test is quick.
lattice_start api --read-wait-max-ms 300

J=application/json

# ---- helpers -------------------------------------------------------------------------

# creq METHOD PATH [CURL ARGS...]: like req, with extra curl arguments.
creq() {
	local method=$1 path=$2
	shift 2
	HDRS="$T_DIR/last.headers"
	rm -f "$T_DIR/last.body" "$HDRS"
	STATUS=$(curl -s -S -X "$method" -D "$HDRS" -o "$T_DIR/last.body" -w '%{http_code}' --max-time 60 \
		"$@" "$API$path" 2>"$T_DIR/last.curlerr") || STATUS=000
	BODY=$(cat "$T_DIR/last.body" 2>/dev/null)
}

# err (status and error code), list_ids (the ids of a list) and read_failed come
# from lib.sh.

# The seq of the newest event (0 when none); read_failed's text when the read failed.
ev_last() {
	req GET '/v1/events?since=0&limit=1000'
	[ "$STATUS" = 200 ] || { read_failed; return 1; }
	jqr '.next'
}

# One field of a node, read fresh; read_failed's text when the read failed.
node_field() {
	req GET "/v1/nodes/$1"
	[ "$STATUS" = 200 ] || { read_failed; return 1; }
	jqr "$2"
}

# Sum of cpu_used/memory_used_mb/actor_count over all nodes; read_failed's text
# when the list failed.
usage_sum() {
	req GET '/v1/nodes?limit=1000'
	[ "$STATUS" = 200 ] || { read_failed; return 1; }
	jqr '[.items[].cpu_used] | add | tostring' | tr -d '\n'
	printf '/'
	jqr '[.items[].memory_used_mb] | add | tostring' | tr -d '\n'
	printf '/'
	jqr '[.items[].actor_count] | add | tostring'
}

is_num() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ---- health, readiness, metrics, cluster ------------------------------------------------

req GET /healthz
is "$STATUS $(jqr .status)" "200 ok" "GET /healthz is 200 {status: ok}"
req GET /readyz
is "$STATUS" 200 "GET /readyz is 200"
is "$(jqr '[.status, .leader, (.applied_index|type), (.projected_index|type)] | map(tostring) | join(" ")')" \
	"ready true number number" "/readyz JSON: status ready, leader true, applied and projected indexes"
ok "$([ "$(jqr .applied_index)" -ge 1 ] 2>/dev/null; echo $?)" "/readyz applied_index >= 1"
req GET /metrics
is "$STATUS" 200 "GET /metrics is 200"
case "$(header Content-Type)" in text/plain*) r=0 ;; *) r=1 ;; esac
ok $r "/metrics Content-Type is text/plain ($(header Content-Type))"
printf '%s\n' "$BODY" | grep -Eq '^lattice_raft_applied_index [0-9]+$'
ok $? "/metrics has lattice_raft_applied_index"
printf '%s\n' "$BODY" | grep -Eq '^lattice_http_requests_total\{method="GET",route="/healthz",code="200"\} [1-9][0-9]*$'
ok $? "/metrics has lattice_http_requests_total counting the health checks"
printf '%s\n' "$BODY" | grep -q '^# TYPE lattice_http_requests_total counter$'
ok $? "/metrics declares lattice_http_requests_total as a counter"
req GET /v1/cluster
is "$STATUS" 200 "GET /v1/cluster is 200"
is "$(jqr '[.leader.id, (.term|type), (.commit_index|type), (.applied_index|type), (.members|length), .members[0].role, .members[0].id] | map(tostring) | join(" ")')" \
	"1 number number number 1 voter 1" "/v1/cluster: leader.id, term, commit_index, applied_index, one voter"
ok "$([ "$(jqr .term)" -ge 1 ] && [ "$(jqr .commit_index)" -ge 1 ] && [ "$(jqr .applied_index)" -le "$(jqr .commit_index)" ]; echo $?)" \
	"/v1/cluster: term >= 1, commit_index >= 1, applied_index <= commit_index"
is "$(jqr '.leader.address == .members[0].address')" true "/v1/cluster: the leader is the only member"

# ---- nodes -----------------------------------------------------------------------------

NODE_FIELDS='[.id, .region, .labels.tier, .cpu_capacity, .memory_mb, .cpu_used, .memory_used_mb, .actor_count, .base.cpu_used, .base.memory_used_mb, .base.actor_count, .status, .cordoned, .draining] | map(tostring) | join(" ")'

req POST /v1/nodes '{"id":"edge-ap-east-1","region":"ap-east-1","labels":{"tier":"gold","zone":"a"},"cpu_capacity":4000,"memory_mb":2048,"cpu_used":1200,"memory_used_mb":800,"actor_count":5}'
is "$STATUS" 201 "POST /v1/nodes is 201"
is "$(header Location)" /v1/nodes/edge-ap-east-1 "POST /v1/nodes has Location /v1/nodes/{id}"
IDX1=$(header X-Lattice-Index)
ok "$(is_num "$IDX1" && [ "$IDX1" -ge 1 ]; echo $?)" "POST /v1/nodes has a numeric X-Lattice-Index ($IDX1)"
is "$(jqr "$NODE_FIELDS")" "edge-ap-east-1 ap-east-1 gold 4000 2048 1200 800 5 1200 800 5 healthy false false" \
	"201 body shows the node: capacity, base load and accounted load"
req GET /v1/nodes/edge-ap-east-1
is "$STATUS $(jqr "$NODE_FIELDS")" "200 edge-ap-east-1 ap-east-1 gold 4000 2048 1200 800 5 1200 800 5 healthy false false" \
	"an immediate GET /v1/nodes/{id} returns it"
is "$(jqr '.policy_version')" 0 "a new node shows policy_version 0"

req POST /v1/nodes '{"id":"edge-ap-southeast-1","region":"ap-southeast-1","labels":{"tier":"silver"},"cpu_capacity":2000,"memory_mb":1024,"cpu_used":500,"memory_used_mb":300,"actor_count":2}'
IDX2=$(header X-Lattice-Index)
is "$STATUS" 201 "POST edge-ap-southeast-1 is 201"
ok "$(is_num "$IDX2" && [ "$IDX2" -gt "$IDX1" ]; echo $?)" "X-Lattice-Index grows with each write ($IDX1 -> $IDX2)"
req POST /v1/nodes '{"id":"edge-us-west-1","region":"us-west-1","labels":{"tier":"gold"},"cpu_capacity":4000,"memory_mb":2048,"cpu_used":3800,"memory_used_mb":1900,"actor_count":15}'
is "$STATUS" 201 "POST edge-us-west-1 is 201"

E0=$(ev_last)
req POST /v1/nodes '{"id":"edge-ap-east-1","region":"eu-central-1","cpu_capacity":8000,"memory_mb":8192}'
is "$(err)" "409 already_exists" "POST /v1/nodes with an existing id is 409 already_exists"
is "$(node_field edge-ap-east-1 '[.region, .cpu_capacity] | map(tostring) | join(" ")')" "ap-east-1 4000" \
	"the 409 left the existing node as it was"
is "$(ev_last)" "$E0" "the 409 wrote no event"

# A small pool for replicas, round robin, cordon and drain.
for n in lab-a lab-b lab-c; do
	req POST /v1/nodes "{\"id\":\"$n\",\"region\":\"lab\",\"labels\":{\"pool\":\"lab\",\"host\":\"$n\"},\"cpu_capacity\":1000,\"memory_mb\":1000}"
	is "$STATUS" 201 "POST $n is 201"
done
req POST /v1/nodes '{"id":"spare-1","region":"spare","cpu_capacity":1000,"memory_mb":1000}'
is "$STATUS" 201 "POST spare-1 is 201"

# ---- node lists, filters and pagination --------------------------------------------------

ALL="edge-ap-east-1 edge-ap-southeast-1 edge-us-west-1 lab-a lab-b lab-c spare-1"
req GET /v1/nodes
is "$STATUS $(jqr '[.items[].id] | join(" ")') $(jqr .next)" "200 $ALL null" \
	"GET /v1/nodes lists every node in id order, next null"
is "$(list_ids '/v1/nodes?region=ap-east-1')" edge-ap-east-1 "?region= filters"
is "$(list_ids '/v1/nodes?status=healthy')" "$ALL" "?status=healthy lists all"
is "$(list_ids '/v1/nodes?status=unhealthy')" "" "?status=unhealthy lists none"
is "$(list_ids '/v1/nodes?label=tier=gold')" "edge-ap-east-1 edge-us-west-1" "?label=tier=gold filters"
is "$(list_ids '/v1/nodes?label=pool=lab&region=lab')" "lab-a lab-b lab-c" "?label= and ?region= combine"
is "$(list_ids '/v1/nodes?label=tier=bronze')" "" "?label= with no match lists none"

seen="" pages=0 after="" dup=0
while :; do
	if [ -z "$after" ]; then req GET '/v1/nodes?limit=2'; else req GET "/v1/nodes?limit=2&after=$after"; fi
	[ "$STATUS" = 200 ] || break
	pages=$((pages + 1))
	n=$(jqr '.items | length')
	[ "$n" -le 2 ] || dup=1
	for id in $(jqr '.items[].id'); do
		case " $seen " in *" $id "*) dup=1 ;; esac
		seen="${seen:+$seen }$id"
	done
	after=$(jqr '.next')
	[ "$after" = null ] && break
	[ $pages -gt 10 ] && break
done
is "$seen" "$ALL" "?limit=2&after=<next> walks every node once, in order"
is "$pages/$dup" "4/0" "7 nodes at limit=2 are 4 pages, none over the limit, no duplicates"

# ---- plan (dry run): the seed example ------------------------------------------------------

SEED='{"id":"task-sensor-001","name":"sensor","module":"oci://registry.local/sensor:1.0","cpu_required":500,"memory_required_mb":256,"preferred_region":"ap-east-1"}'
E0=$(ev_last)
U0=$(usage_sum)
req POST /v1/schedule/plan "$SEED"
is "$STATUS" 200 "POST /v1/schedule/plan is 200"
case "$(header Content-Type)" in application/json*) r=0 ;; *) r=1 ;; esac
ok $r "plan answers application/json ($(header Content-Type))"
is "$(jqr '.placements | join(" ")')" edge-ap-east-1 "plan places the seed actor on edge-ap-east-1"
# The summary answer: the choice, the best candidates and counts; no per-node list.
is "$(jqr '[has("nodes"), has("next")] | map(tostring) | join(" ")')" "false false" \
	"plan lists no nodes unless asked (nodes=true)"
is "$(jqr '.chosen | map([.node_id, .region, .score, .round_robin, .other_region] | map(tostring) | join(" ")) | join(",")')" \
	"edge-ap-east-1 ap-east-1 74 false false" "plan: chosen edge-ap-east-1 with its score 74"
is "$(jqr .summary)" "6/7 nodes fit: 1 insufficient cpu" "plan summary: 6/7 nodes fit: 1 insufficient cpu"
is "$(jqr '[.nodes_total, .nodes_fit] | map(tostring) | join(" ")') $(jqr '.rejected | map([.code, .reason, .nodes] | map(tostring) | join("|")) | join(",")')" \
	"7 6 insufficient_cpu|insufficient cpu|1" "plan: nodes_total 7, nodes_fit 6, rejected counts by reason"
is "$(jqr '.candidates | map(.node_id + ":" + (.score | tostring) + ":" + .reason) | join(" ")')" \
	"edge-ap-east-1:74:chosen lab-a:0:not in preferred region lab-b:0:not in preferred region lab-c:0:not in preferred region spare-1:0:not in preferred region" \
	"plan: the 5 best candidates, preferred region first, then by score"
# The per-node list, on request.
req POST '/v1/schedule/plan?nodes=true' "$SEED"
is "$STATUS $(jqr '.nodes | length') $(jqr .next)" "200 7 null" "plan?nodes=true explains every node (next null)"
reason() { jqr ".nodes[] | select(.node_id == \"$1\") | [.candidate, .chosen, .score, .reason] | map(tostring) | join(\"|\")"; }
is "$(reason edge-ap-east-1)" "true|true|74|chosen" "edge-ap-east-1: chosen, score 30+39+5 = 74"
is "$(reason edge-ap-southeast-1)" "true|false|56|not in preferred region" \
	"edge-ap-southeast-1: lower score 56 but not in the preferred region"
is "$(reason edge-us-west-1)" "false|false|202|insufficient cpu: 200 free, 500 required" \
	"edge-us-west-1: insufficient cpu: 200 free, 500 required"
# ... paginated like the lists.
seen="" pages=0 after="" over=0 nexts=""
while :; do
	if [ -z "$after" ]; then req POST '/v1/schedule/plan?nodes=true&limit=3' "$SEED"; else req POST "/v1/schedule/plan?nodes=true&limit=3&after=$after" "$SEED"; fi
	[ "$STATUS" = 200 ] || break
	pages=$((pages + 1))
	[ "$(jqr '.nodes | length')" -le 3 ] || over=1
	seen="${seen:+$seen }$(jqr '[.nodes[].node_id] | join(" ")')"
	after=$(jqr '.next')
	nexts="${nexts:+$nexts }$after"
	[ "$after" = null ] && break
	[ $pages -gt 10 ] && break
done
is "$seen" "$ALL" "plan?nodes=true&limit=3&after=<next> walks every node once, in order"
is "$pages/$over $nexts" "3/0 edge-us-west-1 lab-c null" "7 nodes at limit=3: 3 pages, next is the last id shown, null at the end"
req POST '/v1/schedule/plan?nodes=true&after=lab-c' "$SEED"
is "$STATUS $(jqr '[.nodes[].node_id] | join(" ")') $(jqr .next)" "200 spare-1 null" "plan?nodes=true&after=lab-c: the nodes after lab-c"
# Bad parameters: 400 invalid_query, and no plan.
req POST '/v1/schedule/plan?nodes=yes' "$SEED"
is "$(err) $(jqr has\(\"placements\"\))" "400 invalid_query false" "plan?nodes=yes is 400 invalid_query"
req POST '/v1/schedule/plan?limit=3' "$SEED"
is "$(err)" "400 invalid_query" "plan?limit=3 without nodes=true is 400 invalid_query"
req POST '/v1/schedule/plan?nodes=false&after=lab-a' "$SEED"
is "$(err)" "400 invalid_query" "plan?nodes=false&after= is 400 invalid_query"
for q in limit=0 limit=1001 limit=x limit=-1 after=.. 'after=a%20b'; do
	req POST "/v1/schedule/plan?nodes=true&$q" "$SEED"
	is "$(err)" "400 invalid_query" "plan?nodes=true&$q is 400 invalid_query"
done
req POST '/v1/schedule/plan?verbose=true' "$SEED"
is "$(err)" "400 invalid_query" "plan?verbose=true (not a parameter of the plan) is 400 invalid_query"
req POST /v1/schedule/plan "$SEED" text/plain
is "$(err)" "415 unsupported_media_type" "plan with Content-Type text/plain is 415 unsupported_media_type"
is "$(ev_last) $(usage_sum)" "$E0 $U0" "a plan changes nothing (no event, no usage)"
req GET /v1/actors/task-sensor-001
is "$(err)" "404 not_found" "a plan creates no actor"

# ---- actors ----------------------------------------------------------------------------

GEN_EAST=$(node_field edge-ap-east-1 '[.generation, .updated_at] | map(tostring) | join(" ")')
req POST /v1/actors "$SEED"
is "$STATUS" 201 "POST /v1/actors (seed) is 201"
is "$(header Location)" /v1/actors/task-sensor-001 "POST /v1/actors has Location"
ok "$(is_num "$(header X-Lattice-Index)"; echo $?)" "POST /v1/actors has a numeric X-Lattice-Index"
is "$(jqr '[.id, .name, .module, .cpu_required, .memory_required_mb, .preferred_region, .replicas, .strategy, (.placements|length), .placements[0].node_id, .placements[0].state] | map(tostring) | join(" ")')" \
	"task-sensor-001 sensor oci://registry.local/sensor:1.0 500 256 ap-east-1 1 resources 1 edge-ap-east-1 pending" \
	"201 body shows the actor with its placement on edge-ap-east-1"
req GET /v1/actors/task-sensor-001
is "$STATUS $(jqr '.placements[0].node_id')" "200 edge-ap-east-1" "an immediate GET /v1/actors/{id} returns it"
is "$(node_field edge-ap-east-1 '[.generation, .updated_at] | map(tostring) | join(" ")')" "$GEN_EAST" \
	"placing an actor leaves the node's generation and updated_at (its own record) as they were"
is "$(node_field edge-ap-east-1 '[.cpu_used, .memory_used_mb, .actor_count, .base.cpu_used, .base.memory_used_mb, .base.actor_count] | map(tostring) | join(" ")')" \
	"1700 1056 6 1200 800 5" "edge-ap-east-1 is now 1200+500 = 1700 cpu, 800+256 MiB, 5+1 actors (base unchanged)"
is "$(node_field edge-ap-southeast-1 .cpu_used) $(node_field edge-us-west-1 .cpu_used)" "500 3800" \
	"the other nodes' usage is unchanged"
req POST /v1/actors "$SEED"
is "$(err)" "409 already_exists" "POST /v1/actors with an existing id is 409 already_exists"

# Too big for any node: 409, and nothing written.
A0=$(list_ids /v1/actors)
U0=$(usage_sum)
E0=$(ev_last)
req POST /v1/actors '{"id":"too-big","module":"oci://x/big:1","cpu_required":5000,"memory_required_mb":64}'
is "$(err)" "409 insufficient_resources" "an actor no node can hold is 409 insufficient_resources"
is "$(jqr .error.message)" "actor scale failed: insufficient resources" "... with the seed's message"
req GET /v1/actors/too-big
is "$(err)" "404 not_found" "the refused actor does not exist"
is "$(list_ids /v1/actors)|$(usage_sum)|$(ev_last)" "$A0|$U0|$E0" "actor list, node usage and events unchanged"
# Nothing half-written: 3 replicas of 600 fit the lab pool, the 4th does not.
req POST /v1/actors '{"id":"too-many","module":"oci://x/big:1","cpu_required":600,"memory_required_mb":10,"replicas":4,"constraints":{"pool":"lab"}}'
is "$(err)" "409 insufficient_resources" "4 replicas of 600 on three 1000-millicore nodes is 409"
is "$(list_ids /v1/actors)|$(usage_sum)|$(ev_last)" "$A0|$U0|$E0" "no replica of it was placed (nothing half-written)"

# Server-generated id.
req POST /v1/actors '{"module":"oci://x/anon:1","cpu_required":10,"memory_required_mb":10}'
is "$STATUS" 201 "POST /v1/actors without an id is 201"
GEN=$(jqr .id)
ok "$([[ "$GEN" =~ ^act-[0-9a-f]+$ ]]; echo $?)" "the server generated an id matching ^act- ($GEN)"
is "$(header Location) $(jqr .name)" "/v1/actors/$GEN $GEN" "Location names the generated id; name defaults to it"
req GET "/v1/actors/$GEN"
is "$STATUS" 200 "GET of the generated id is 200"
req DELETE "/v1/actors/$GEN"
is "$STATUS" 204 "DELETE of the generated actor is 204"

# Replicas on distinct nodes.
req POST /v1/actors '{"id":"rep","module":"oci://x/rep:1","cpu_required":100,"memory_required_mb":100,"replicas":3,"constraints":{"pool":"lab"}}'
is "$STATUS" 201 "POST replicas 3 is 201"
is "$(jqr '[.placements[].node_id] | sort | join(" ")') $(jqr '[.placements[].instance] | join(",")')" \
	"lab-a lab-b lab-c 0,1,2" "3 replicas on 3 distinct nodes, instances 0..2"
REP0=$(jqr '.placements[0].node_id')
is "$(node_field lab-a .cpu_used) $(node_field lab-b .cpu_used) $(node_field lab-c .cpu_used)" "100 100 100" \
	"each lab node accounts 100 millicores"
is "$(list_ids '/v1/actors?node=lab-b')" rep "GET /v1/actors?node=lab-b lists rep"
is "$(list_ids '/v1/actors?node=edge-ap-east-1')" task-sensor-001 "GET /v1/actors?node=edge-ap-east-1 lists the seed actor"
is "$(list_ids '/v1/actors?node=spare-1')" "" "GET /v1/actors?node=spare-1 lists nothing"

# PATCH replicas down and up, and resources.
req PATCH /v1/actors/rep '{"replicas":1}'
is "$STATUS $(jqr '.replicas') $(jqr '.placements | length') $(jqr '.placements[0].node_id')" "200 1 1 $REP0" \
	"PATCH replicas 1 is 200 and keeps instance 0 on $REP0"
is "$(node_field lab-a .cpu_used) $(node_field lab-b .cpu_used) $(node_field lab-c .cpu_used)" \
	"$([ "$REP0" = lab-a ] && echo 100 || echo 0) $([ "$REP0" = lab-b ] && echo 100 || echo 0) $([ "$REP0" = lab-c ] && echo 100 || echo 0)" \
	"the removed replicas' resources are released"
req PATCH /v1/actors/rep '{"replicas":3}'
is "$STATUS $(jqr '[.placements[].node_id] | sort | join(" ")')" "200 lab-a lab-b lab-c" \
	"PATCH replicas 3 is 200 and places the new replicas on the other nodes"
req PATCH /v1/actors/rep '{"cpu_required":200,"memory_required_mb":150}'
is "$STATUS $(jqr '.cpu_required') $(jqr '.memory_required_mb') $(jqr '.placements | length')" "200 200 150 3" \
	"PATCH resources is 200 with the new request"
is "$(node_field lab-a '[.cpu_used,.memory_used_mb]|map(tostring)|join(" ")') $(node_field lab-b '[.cpu_used,.memory_used_mb]|map(tostring)|join(" ")') $(node_field lab-c '[.cpu_used,.memory_used_mb]|map(tostring)|join(" ")')" \
	"200 150 200 150 200 150" "the nodes account the new request: 200 millicores and 150 MiB each"
E0=$(ev_last)
req PATCH /v1/actors/rep '{"cpu_required":5000}'
is "$(err)" "409 insufficient_resources" "PATCH to a request no node has room for is 409"
req GET /v1/actors/rep
is "cpu_required=$(jqr '.cpu_required') lab-a=$(node_field lab-a .cpu_used) ev=$(ev_last)" "cpu_required=200 lab-a=200 ev=$E0" \
	"the refused PATCH changed nothing"
req PATCH /v1/actors/nope '{"replicas":2}'
is "$(err)" "404 not_found" "PATCH of an unknown actor is 404"

# A PATCH that changes nothing is a no-op: 200 with the actor as it is, the same
# generation, no event and no Raft log entry.
req GET /v1/actors/rep
OBJ0=$(printf '%s' "$BODY" | jq -cS .)
G0=$(jqr .generation)
E0=$(ev_last)
C0=$(curl -s "$API/v1/cluster" | jq -r .commit_index)
req PATCH /v1/actors/rep '{"replicas":3,"cpu_required":200,"memory_required_mb":150}'
is "$STATUS $(jqr .generation)" "200 $G0" "a PATCH that changes nothing is 200 with the same generation ($G0)"
is "$(printf '%s' "$BODY" | jq -cS .)" "$OBJ0" "it answers the actor exactly as GET shows it"
NOOP_IDX=$(header X-Lattice-Index)
req PATCH /v1/actors/rep '{"replicas":3}'
is "$STATUS $(jqr .generation) $(jqr '.placements | length')" "200 $G0 3" "a PATCH of replicas to its current count is a no-op too"
is "$(ev_last)" "$E0" "the no-op PATCHes wrote no event"
is "$(curl -s "$API/v1/cluster" | jq -r .commit_index)" "$C0" "the no-op PATCHes appended nothing to the Raft log"
req GET "/v1/actors/rep?min_index=$NOOP_IDX"
is "$STATUS $(jqr .generation) $(printf '%s' "$BODY" | jq -cS .)" "200 $G0 $OBJ0" \
	"a read at the no-op's X-Lattice-Index ($NOOP_IDX) shows what it answered"

# Round robin rotates over the candidates in node-id order.
rr=""
for i in 1 2 3 4; do
	req POST /v1/actors "{\"id\":\"rr-$i\",\"module\":\"oci://x/rr:1\",\"cpu_required\":1,\"memory_required_mb\":1,\"strategy\":\"round_robin\",\"constraints\":{\"pool\":\"lab\"}}"
	rr="$rr $STATUS:$(jqr '.placements[0].node_id')"
done
is "$rr" " 201:lab-a 201:lab-b 201:lab-c 201:lab-a" "round_robin actors rotate lab-a, lab-b, lab-c, lab-a"
req GET /v1/actors/rr-2
is "$(jqr .strategy)" round_robin "the actor shows strategy round_robin"

# Cordon: no new placements there.
req POST /v1/nodes/lab-a/cordon
is "$STATUS $(jqr .id) $(jqr .cordoned) $(jqr .draining)" "200 lab-a true false" "POST cordon is 200, cordoned true"
req POST /v1/actors '{"id":"after-cordon","module":"oci://x/ac:1","cpu_required":10,"memory_required_mb":10,"replicas":2,"constraints":{"pool":"lab"}}'
is "$STATUS $(jqr '[.placements[].node_id] | sort | join(" ")')" "201 lab-b lab-c" "new actors are not placed on a cordoned node"
req POST '/v1/schedule/plan?nodes=true' '{"module":"oci://x/p:1","cpu_required":1,"memory_required_mb":1,"constraints":{"pool":"lab"}}'
is "$(reason lab-a)" "false|false|$(jqr '.nodes[]|select(.node_id=="lab-a")|.score')|cordoned" "plan shows lab-a as cordoned"
req GET /v1/nodes/lab-a
is "$(jqr .cordoned)" true "GET shows the node cordoned"
req POST /v1/nodes/lab-a/uncordon
is "$STATUS $(jqr .cordoned) $(jqr .draining)" "200 false false" "POST uncordon is 200, cordoned false"
req POST /v1/nodes/nope/cordon
is "$(err)" "404 not_found" "cordon of an unknown node is 404"

# Drain: moves what can move, reports what cannot.
req POST /v1/actors '{"id":"pinned","module":"oci://x/pin:1","cpu_required":10,"memory_required_mb":10,"constraints":{"host":"lab-b"}}'
is "$STATUS $(jqr '.placements[0].node_id')" "201 lab-b" "an actor pinned to lab-b by label is placed there"
ONB=$(list_ids '/v1/actors?node=lab-b')
req POST /v1/nodes/lab-b/drain
is "$STATUS" 200 "POST drain is 200"
is "$(jqr '[.node.id, .node.cordoned, .node.draining] | map(tostring) | join(" ")')" "lab-b true true" \
	"drain response has the node, cordoned and draining"
is "$(jqr '.unmoved | map("\(.actor_id)/\(.instance)") | join(" ")')" "pinned/0" "unmoved lists the pinned actor"
MOVED=$(jqr '[.moved[].actor_id] | sort | join(" ")')
is "$MOVED" "$(printf '%s\n' $ONB | grep -vx pinned | sort | tr '\n' ' ' | sed 's/ $//')" \
	"moved lists every other actor that was on lab-b ($MOVED)"
is "$(jqr '[.moved[] | select(.to_node == "lab-b")] | length')" 0 "nothing is moved onto the drained node"
MV_ACTOR=$(jqr '.moved[] | select(.actor_id == "rr-2") | .actor_id')
MV_INST=$(jqr '.moved[] | select(.actor_id == "rr-2") | .instance')
MV_TO=$(jqr '.moved[] | select(.actor_id == "rr-2") | .to_node')
req GET /v1/actors/rr-2
is "$MV_ACTOR $(jqr ".placements[${MV_INST:-0}].node_id")" "rr-2 $MV_TO" "GET rr-2 shows it on its new node ($MV_TO)"
# The move bumped the actor's generation: PostgreSQL's row has it too (found by
# lattice-sim's split-regions run: a PATCH that changed nothing answered the
# model's generation, one above what every read showed).
GEN_READ=$(jqr .generation)
req PATCH /v1/actors/rr-2 "{\"replicas\": $(jqr .replicas)}"
is "$STATUS $(jqr .generation)" "200 $GEN_READ" "a no-op PATCH after the drain answers the generation reads show"
is "$(list_ids '/v1/actors?node=lab-b')" pinned "only the pinned actor is left on lab-b"
is "$(node_field lab-b '[.cpu_used, .memory_used_mb, .actor_count] | map(tostring) | join(" ")')" "10 10 1" \
	"lab-b accounts only the pinned actor"
req GET /v1/actors/rep
is "$(jqr '[.placements[] | select(.node_id == "lab-b")] | length') $(jqr '.placements | length')" "0 3" \
	"rep keeps 3 replicas, none on lab-b"

# Drain keeps an actor's replicas apart: two replicas on the drained node go to two
# different nodes while two candidates exist (SPEC: replicas skip nodes that already
# hold one while any other candidate exists).
req POST /v1/nodes '{"id":"dr-1","region":"dr","labels":{"grp":"dr"},"cpu_capacity":1000,"memory_mb":1000}'
req POST /v1/nodes '{"id":"dr-2","region":"dr","labels":{"grp":"dr"},"cpu_capacity":100000,"memory_mb":100000}'
req POST /v1/nodes '{"id":"dr-3","region":"dr","labels":{"grp":"dr"},"cpu_capacity":1000,"memory_mb":1000,"cpu_used":500,"memory_used_mb":500}'
req POST /v1/nodes/dr-2/cordon
req POST /v1/nodes/dr-3/cordon
req POST /v1/actors '{"id":"twin","module":"oci://x/twin:1","cpu_required":10,"memory_required_mb":10,"replicas":2,"constraints":{"grp":"dr"}}'
is "$STATUS $(jqr '[.placements[].node_id] | join(" ")')" "201 dr-1 dr-1" \
	"with one candidate, both replicas share it (dr-1)"
req POST /v1/nodes/dr-2/uncordon
req POST /v1/nodes/dr-3/uncordon
req POST /v1/schedule/plan '{"module":"oci://x/twin:1","cpu_required":10,"memory_required_mb":10,"replicas":2,"constraints":{"grp":"dr"}}'
is "$(jqr '.placements | sort | join(" ")')" "dr-1 dr-2" "a plan for 2 replicas uses two distinct nodes"
req POST /v1/nodes/dr-1/drain
is "$STATUS $(jqr '.moved | length') $(jqr '.unmoved | length')" "200 2 0" "draining dr-1 moves both replicas"
req GET /v1/actors/twin
is "$(jqr '[.placements[].node_id] | sort | join(" ")')" "dr-2 dr-3" \
	"the drained replicas land on two different nodes, not both on dr-2"
req GET /v1/nodes/dr-1
is "$(jqr '[.cpu_used, .actor_count] | map(tostring) | join(" ")')" "0 0" "dr-1 is empty after the drain"
req DELETE /v1/actors/twin
for n in dr-1 dr-2 dr-3; do req DELETE /v1/nodes/$n; done
is "$STATUS" 204 "the drain test's nodes are deleted"

# Concurrent creates racing for the last capacity: the apply re-check lets exactly
# as many through as fit; a plan made stale by another create is made again, so
# the rest get 409 insufficient_resources, never 409 conflict (race.sh looks at
# the re-planning closer).
req POST /v1/nodes '{"id":"race-1","region":"race","labels":{"grp":"race"},"cpu_capacity":1000,"memory_mb":1000}'
for i in $(seq 1 10); do
	curl -s -o "$T_DIR/race.$i.body" -w '%{http_code}' --max-time 60 -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"id\":\"race-a$i\",\"module\":\"oci://x/r:1\",\"cpu_required\":300,\"memory_required_mb\":1,\"constraints\":{\"grp\":\"race\"}}" \
		"$API/v1/actors" >"$T_DIR/race.$i" &
	race_pids="${race_pids:-} $!"
done
wait $race_pids
for i in $(seq 1 10); do
	echo "$(cat "$T_DIR/race.$i")/$(jq -r '.error.code // "created"' "$T_DIR/race.$i.body" 2>/dev/null)"
done >"$T_DIR/race.all"
is "$(sort "$T_DIR/race.all" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "201/created:3 409/insufficient_resources:7 " \
	"10 concurrent 300-millicore creates on a 1000-millicore node: 3 created, 7 refused as insufficient_resources"
is "$(node_field race-1 '[.cpu_used, .actor_count] | map(tostring) | join(" ")') $(list_ids '/v1/actors?node=race-1' | wc -w)" \
	"900 3 3" "the node accounts exactly the 3 created actors"
for i in $(seq 1 10); do req DELETE /v1/actors/race-a$i; done
req DELETE /v1/nodes/race-1
is "$STATUS" 204 "the race test's node is deleted once its actors are"

# Deleting nodes.
E0=$(ev_last)
req DELETE /v1/nodes/lab-b
is "$(err)" "409 conflict" "DELETE of a node with placements is 409 conflict"
req GET /v1/nodes/lab-b
is "$STATUS $(ev_last)" "200 $E0" "the node is still there, no event"
req DELETE /v1/actors/pinned
is "$STATUS" 204 "DELETE /v1/actors/pinned is 204"
is "$(node_field lab-b '[.cpu_used, .memory_used_mb, .actor_count] | map(tostring) | join(" ")')" "0 0 0" \
	"deleting an actor releases its node's resources at once"
req GET /v1/actors/pinned
is "$(err)" "404 not_found" "GET of the deleted actor is 404"
req DELETE /v1/actors/pinned
is "$(err)" "404 not_found" "DELETE of it again is 404"
req DELETE /v1/nodes/lab-b
is "$STATUS" 204 "DELETE of the drained, empty node is 204"
req GET /v1/nodes/lab-b
is "$(err)" "404 not_found" "GET of the deleted node is 404"
req DELETE /v1/nodes/spare-1
is "$STATUS" 204 "DELETE of an empty node is 204"
req GET /v1/nodes/spare-1
is "$(err)" "404 not_found" "GET of it is 404"
req DELETE /v1/nodes/spare-1
is "$(err)" "404 not_found" "DELETE of an unknown node is 404"

ACB=$(node_field lab-c .cpu_used)
req DELETE /v1/actors/after-cordon
is "$STATUS" 204 "DELETE /v1/actors/after-cordon is 204"
req GET /v1/nodes/lab-c
is "$(jqr .cpu_used)" "$((ACB - 10))" "its 10 millicores on lab-c are released at once"

# ---- providers ----------------------------------------------------------------------------

req POST /v1/providers '{"id":"kv","contract_id":"wasmcloud:keyvalue","image":"oci://x/kv:1","nodes":["edge-ap-east-1","edge-ap-southeast-1"]}'
is "$STATUS $(header Location)" "201 /v1/providers/kv" "POST /v1/providers is 201 with Location"
is "$(jqr '[.id, .contract_id, .image, (.nodes|join(","))] | join(" ")')" \
	"kv wasmcloud:keyvalue oci://x/kv:1 edge-ap-east-1,edge-ap-southeast-1" "201 body shows the provider"
req GET /v1/providers/kv
is "$STATUS $(jqr .contract_id)" "200 wasmcloud:keyvalue" "GET /v1/providers/{id} returns it"
req POST /v1/providers '{"id":"kv","contract_id":"wasmcloud:keyvalue","image":"oci://x/kv:2"}'
is "$(err)" "409 already_exists" "POST of an existing provider id is 409"
E0=$(ev_last)
req POST /v1/providers '{"id":"ghost","contract_id":"wasmcloud:keyvalue","image":"oci://x/kv:1","nodes":["no-such-node"]}'
is "$(err)" "404 not_found" "a provider on an unknown node is 404"
req GET /v1/providers/ghost
is "$(err) $(ev_last)" "404 not_found $E0" "... and nothing was created"
req POST /v1/providers '{"contract_id":"wasmcloud:httpserver","image":"oci://x/http:1"}'
PGEN=$(jqr .id)
is "$STATUS $([[ "$PGEN" =~ ^prv- ]] && echo gen)" "201 gen" "a provider without id gets a generated one ($PGEN)"
req POST /v1/providers '{"id":"http","contract_id":"wasmcloud:httpserver","image":"oci://x/http:1","nodes":["lab-a"]}'
is "$STATUS" 201 "POST provider http is 201"
is "$(list_ids /v1/providers)" "http kv $PGEN" "GET /v1/providers lists them in id order"
req DELETE "/v1/providers/$PGEN"
is "$STATUS" 204 "DELETE /v1/providers/{id} is 204"
req GET "/v1/providers/$PGEN"
is "$(err)" "404 not_found" "GET of the deleted provider is 404"
req DELETE /v1/providers/nope
is "$(err)" "404 not_found" "DELETE of an unknown provider is 404"

# ---- links --------------------------------------------------------------------------------

req POST /v1/links '{"id":"lnk-seed","actor_id":"task-sensor-001","provider_id":"kv","contract_id":"wasmcloud:keyvalue","values":{"bucket":"sensors"}}'
is "$STATUS $(header Location)" "201 /v1/links/lnk-seed" "POST /v1/links is 201 with Location"
is "$(jqr '[.id, .actor_id, .provider_id, .contract_id, .link_name, .values.bucket, .timeout_ms, .retry_count, .retry_delay_ms] | map(tostring) | join(" ")')" \
	"lnk-seed task-sensor-001 kv wasmcloud:keyvalue default sensors 5000 3 1000" "201 body shows the link with its defaults"
req GET /v1/links/lnk-seed
is "$STATUS $(jqr .actor_id)" "200 task-sensor-001" "GET /v1/links/{id} returns it"
is "$(list_ids '/v1/links?actor_id=task-sensor-001')" lnk-seed "GET /v1/links?actor_id= lists it"
is "$(list_ids '/v1/links?actor_id=rep')" "" "GET /v1/links?actor_id=rep lists nothing"
E0=$(ev_last)
req POST /v1/links '{"actor_id":"task-sensor-001","provider_id":"kv","contract_id":"wasmcloud:httpserver"}'
is "$(err)" "422 invalid_request" "a link whose contract the provider does not serve is 422"
req POST /v1/links '{"id":"lnk-dup","actor_id":"task-sensor-001","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$(err)" "409 already_exists" "a second link with the same actor, contract and name is 409"
req POST /v1/links '{"id":"lnk-seed","actor_id":"rep","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$(err)" "409 already_exists" "a link id that exists is 409"
req POST /v1/links '{"actor_id":"nope","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$(err)" "404 not_found" "a link to an unknown actor is 404"
req POST /v1/links '{"actor_id":"rep","provider_id":"nope","contract_id":"wasmcloud:keyvalue"}'
is "$(err)" "404 not_found" "a link to an unknown provider is 404"
is "$(list_ids /v1/links) $(ev_last)" "lnk-seed $E0" "the refused links created nothing"
req DELETE /v1/providers/kv
is "$(err)" "409 conflict" "DELETE of a provider with a link is 409 conflict"
req GET /v1/providers/kv
is "$STATUS" 200 "the provider is still there"
req DELETE /v1/links/lnk-seed
is "$STATUS" 204 "DELETE /v1/links/{id} is 204"
req GET /v1/links/lnk-seed
is "$(err)" "404 not_found" "GET of the deleted link is 404"
req DELETE /v1/links/lnk-seed
is "$(err)" "404 not_found" "DELETE of it again is 404"

# An actor's links go with it.
req POST /v1/links '{"id":"lnk-rr1","actor_id":"rr-1","provider_id":"http","contract_id":"wasmcloud:httpserver"}'
is "$STATUS" 201 "POST a link for rr-1 is 201"
req DELETE /v1/actors/rr-1
is "$STATUS" 204 "DELETE rr-1 is 204"
req GET /v1/links/lnk-rr1
is "$(err)" "404 not_found" "the deleted actor's link is gone"

# ---- policies ------------------------------------------------------------------------------

req POST /v1/policies '{"policy_id":"lab-policy","denied_contracts":["wasmcloud:blobstore"],"max_actor_memory_mb":512,"selector":{"regions":["lab"]}}'
is "$STATUS $(header Location) $(jqr .version)" "201 /v1/policies/lab-policy 1" "POST /v1/policies is 201, version 1"
is "$(jqr '[.policy_id, (.denied_contracts|join(",")), .max_actor_memory_mb, (.selector.regions|join(","))] | map(tostring) | join(" ")')" \
	"lab-policy wasmcloud:blobstore 512 lab" "201 body shows the policy"
req GET /v1/policies/lab-policy
is "$STATUS $(jqr .version)" "200 1" "GET /v1/policies/{id} returns version 1"
req PUT /v1/policies/lab-policy '{"denied_contracts":["wasmcloud:blobstore","wasmcloud:messaging"],"max_actor_memory_mb":256,"selector":{"regions":["lab"]}}'
is "$STATUS $(jqr .version) $(jqr '.denied_contracts | join(",")')" "200 2 wasmcloud:blobstore,wasmcloud:messaging" \
	"PUT /v1/policies/{id} is 200, version 2"
req GET /v1/policies/lab-policy
is "$STATUS $(jqr .version) $(jqr .max_actor_memory_mb)" "200 2 256" "GET /v1/policies/{id} shows the current version"
req GET /v1/policies/lab-policy/versions
is "$STATUS $(jqr '[.items[].version] | map(tostring) | join(",")') $(jqr '[.items[].max_actor_memory_mb] | map(tostring) | join(",")')" \
	"200 1,2 512,256" "GET /v1/policies/{id}/versions lists both versions"
req GET /v1/policies/nope/versions
is "$(err)" "404 not_found" "versions of an unknown policy is 404"
E0=$(ev_last)
req PUT /v1/policies/nope '{"denied_contracts":["wasmcloud:blobstore"]}'
is "$(err)" "404 not_found" "PUT of an unknown policy is 404"
req GET /v1/policies/nope
is "$(err)" "404 not_found" "... and does not create it"
req POST /v1/policies '{"policy_id":"lab-policy"}'
is "$(err)" "409 already_exists" "POST of an existing policy is 409"
req GET /v1/policies/lab-policy
is "$(jqr .version) $(ev_last)" "2 $E0" "the refused writes left the policy at version 2, no event"
req POST /v1/policies '{"allowed_contracts":["wasmcloud:httpserver"]}'
POLGEN=$(jqr .policy_id)
is "$STATUS $([[ "$POLGEN" =~ ^pol- ]] && echo gen)" "201 gen" "a policy without policy_id gets a generated one"
req GET "/v1/policies/$POLGEN"
is "$STATUS $(jqr '.selector.regions | length') $(jqr '.selector.labels | length')" "200 0 0" \
	"... with an empty selector (covers every node)"
# That generated policy allows only httpserver everywhere: make it harmless again
# by giving it a selector that covers no node.
req PUT "/v1/policies/$POLGEN" '{"allowed_contracts":["wasmcloud:httpserver"],"selector":{"labels":{"nobody":"here"}}}'
is "$STATUS $(jqr .version)" "200 2" "PUT narrows it to no node"

# The new version applies to future placements.
req POST '/v1/schedule/plan?nodes=true' '{"module":"oci://x/m:1","cpu_required":1,"memory_required_mb":1,"contracts":["wasmcloud:messaging"],"constraints":{"pool":"lab"}}'
is "$STATUS $(jqr '.error.code') $(jqr '.placements | length')" "200 insufficient_resources 0" \
	"plan: no lab node may run an actor needing wasmcloud:messaging (version 2)"
is "$(reason lab-a | cut -d'|' -f4)" "capability denied: wasmcloud:messaging" "plan reason on lab-a: capability denied"
is "$(jqr .summary)" "0/5 nodes fit: 3 label pool=lab required, 2 capability denied: wasmcloud:messaging" \
	"plan summary counts the 2 lab nodes whose policy denies wasmcloud:messaging"
is "$(jqr '.rejected | map(.code + ":" + (.nodes | tostring)) | join(" ")')" "label_mismatch:3 capability_denied:2" \
	"plan rejected: label_mismatch 3, capability_denied 2"
req POST '/v1/schedule/plan?nodes=true' '{"module":"oci://x/m:1","cpu_required":1,"memory_required_mb":300,"constraints":{"pool":"lab"}}'
is "$(reason lab-c | cut -d'|' -f4)" "memory 300 MiB above policy cap 256 MiB" "plan reason: the policy's memory cap"

# Link denial: a policy covering the actor's node denies wasmcloud:keyvalue.
req POST /v1/policies '{"policy_id":"deny-kv-ap-east","denied_contracts":["wasmcloud:keyvalue"],"selector":{"regions":["ap-east-1"]}}'
is "$STATUS" 201 "POST a policy denying wasmcloud:keyvalue in ap-east-1 is 201"
L0=$(list_ids /v1/links)
E0=$(ev_last)
req POST /v1/links '{"id":"lnk-denied","actor_id":"task-sensor-001","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$(err)" "403 capability_denied" "a link whose contract a covering policy denies is 403 capability_denied"
is "$(jqr .error.message)" "capability denied: wasmcloud:keyvalue" "... with message 'capability denied: wasmcloud:keyvalue'"
req GET /v1/links/lnk-denied
is "$(err) $(list_ids /v1/links) $(ev_last)" "404 not_found $L0 $E0" "the denied link was not created"

# Link denial by omission: allowed_contracts without wasmcloud:keyvalue.
req POST /v1/actors '{"id":"se-actor","module":"oci://x/se:1","cpu_required":100,"memory_required_mb":100,"preferred_region":"ap-southeast-1"}'
is "$STATUS $(jqr '.placements[0].node_id')" "201 edge-ap-southeast-1" "an actor placed in ap-southeast-1"
req POST /v1/policies '{"policy_id":"silver-http-only","allowed_contracts":["wasmcloud:httpserver"],"selector":{"labels":{"tier":"silver"}}}'
is "$STATUS" 201 "POST a policy allowing only wasmcloud:httpserver on tier=silver is 201"
E0=$(ev_last)
req POST /v1/links '{"id":"lnk-denied2","actor_id":"se-actor","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$(err) $(jqr .error.message)" "403 capability_denied capability denied: wasmcloud:keyvalue" \
	"a contract missing from a covering policy's allowed_contracts is denied"
req GET /v1/links/lnk-denied2
is "$(err) $(ev_last)" "404 not_found $E0" "... and nothing was created"
req POST /v1/links '{"id":"lnk-http","actor_id":"se-actor","provider_id":"http","contract_id":"wasmcloud:httpserver"}'
is "$STATUS" 201 "a contract the policy allows is linked (201)"

# Placement denial: an actor needing wasmcloud:keyvalue avoids both covered nodes.
req POST '/v1/schedule/plan?nodes=true' '{"module":"oci://x/kvu:1","cpu_required":100,"memory_required_mb":50,"preferred_region":"ap-east-1","contracts":["wasmcloud:keyvalue"]}'
is "$(reason edge-ap-east-1)" "false|false|$(jqr '.nodes[]|select(.node_id=="edge-ap-east-1")|.score')|capability denied: wasmcloud:keyvalue" \
	"plan: edge-ap-east-1 is not a candidate: capability denied: wasmcloud:keyvalue"
is "$(reason edge-ap-southeast-1 | cut -d'|' -f1,4)" "false|capability denied: wasmcloud:keyvalue" \
	"plan: edge-ap-southeast-1 is not a candidate either (not in allowed_contracts)"
req POST /v1/actors '{"id":"kv-user","module":"oci://x/kvu:1","cpu_required":100,"memory_required_mb":50,"preferred_region":"ap-east-1","contracts":["wasmcloud:keyvalue"]}'
KVN=$(jqr '.placements[0].node_id')
is "$STATUS $(case $KVN in edge-ap-east-1|edge-ap-southeast-1|null|'') echo "$KVN" ;; *) echo elsewhere ;; esac)" "201 elsewhere" \
	"the actor is placed, but not on a node whose policy denies its contract ($KVN)"

# Placement checks an actor's linked contracts against the current policy version.
req POST /v1/actors '{"id":"kv-linked","module":"oci://x/kvl:1","cpu_required":10,"memory_required_mb":10,"constraints":{"host":"lab-c"}}'
is "$STATUS $(jqr '.placements[0].node_id')" "201 lab-c" "an actor on lab-c"
req POST /v1/links '{"id":"lnk-kvl","actor_id":"kv-linked","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$STATUS" 201 "linked to wasmcloud:keyvalue (allowed in lab)"
req PUT /v1/policies/lab-policy '{"denied_contracts":["wasmcloud:blobstore","wasmcloud:messaging","wasmcloud:keyvalue"],"max_actor_memory_mb":256,"selector":{"regions":["lab"]}}'
is "$STATUS $(jqr .version)" "200 3" "PUT lab-policy version 3 denies wasmcloud:keyvalue"
req GET /v1/actors/kv-linked
is "$(jqr '[.placements[].node_id] | join(" ")')" lab-c "the running actor is not moved by the new version"
E0=$(ev_last)
req PATCH /v1/actors/kv-linked '{"replicas":2}'
is "$(err)" "409 insufficient_resources" "a new replica of it has no node: its linked contract is denied there"
req GET /v1/actors/kv-linked
is "$(jqr '.placements | length') $(ev_last)" "1 $E0" "... and nothing changed"
req GET '/v1/links?provider_id=kv'
is "$(jqr '[.items[].id] | join(" ")')" lnk-kvl "GET /v1/links?provider_id= filters"
req GET '/v1/links?contract_id=wasmcloud:httpserver'
is "$(jqr '[.items[].id] | join(" ")')" lnk-http "GET /v1/links?contract_id= filters"

req GET /v1/policies
is "$(jqr '[.items[].policy_id] | join(" ")')" "deny-kv-ap-east lab-policy $POLGEN silver-http-only" "GET /v1/policies lists them in id order"

req GET '/v1/policies?limit=2'
P1=$(jqr '[.items[].policy_id] | join(" ")') PN=$(jqr .next)
req GET "/v1/policies?limit=2&after=$PN"
is "$P1 | $PN | $(jqr '[.items[].policy_id] | join(" ")') $(jqr .next)" \
	"deny-kv-ap-east lab-policy | lab-policy | $POLGEN silver-http-only null" "policies page by policy_id"

# ---- events ----------------------------------------------------------------------------------

req GET '/v1/events?since=0&limit=1000'
is "$STATUS" 200 "GET /v1/events?since=0 is 200"
NEV=$(jqr '.items | length')
is "$(jqr '[.items[].seq] == [range(1; (.items | length) + 1)]')" true "events are numbered 1..$NEV in order, no gaps"
is "$(jqr '.next')" "$NEV" "next is the last seq"
is "$(jqr '[.items[] | select((.kind|type) != "string" or (.at|type) != "string" or (.index|type) != "number")] | length')" 0 \
	"every event has a kind, a time and a Raft index"
want_kinds="actor.created actor.deleted actor.updated link.created link.deleted node.cordoned node.deleted node.drained node.registered node.uncordoned policy.created policy.updated provider.created provider.deleted"
is "$(jqr "[.items[].kind] | unique | map(select(. as \$k | \"$want_kinds\" | split(\" \") | index(\$k))) | join(\" \")")" \
	"$want_kinds" "the log has every kind of change made above"
is "$(jqr '[.items[] | select(.kind == "actor.created" and .object_id == "task-sensor-001") | .data.placements[0]] | join(",")')" \
	edge-ap-east-1 "the actor.created event records the placement"
is "$(jqr '[.items[].index] | . == sort')" true "event Raft indexes never go down"
LAST=$(jqr .next)
req GET "/v1/events?since=$LAST"
is "$STATUS $(jqr '.items | length') $(jqr .next)" "200 0 $LAST" "?since=<last> returns nothing new, next unchanged"
req GET '/v1/events?since=0&limit=3'
is "$(jqr '[.items[].seq] | map(tostring) | join(",")') $(jqr .next)" "1,2,3 3" "?limit=3 pages events, next = 3"
req GET '/v1/events?since=3&limit=2'
is "$(jqr '[.items[].seq] | map(tostring) | join(",")') $(jqr .next)" "4,5 5" "?since=3 continues at 4"
req POST /v1/nodes/lab-a/cordon
req GET "/v1/events?since=$LAST"
is "$(jqr '[.items[] | "\(.seq) \(.kind) \(.object_id)"] | join(",")') $(jqr .next)" "$((LAST + 1)) node.cordoned lab-a $((LAST + 1))" \
	"a new write appears after <last>"
req POST /v1/nodes/lab-a/uncordon

# Long poll: ?wait=S holds an empty answer until something is written (or S passes).
LAST=$(ev_last)
t0=$(date +%s%N)
req GET "/v1/events?since=$LAST&wait=1"
ms=$((($(date +%s%N) - t0) / 1000000))
is "$STATUS $(jqr '.items | length') $(jqr .next)" "200 0 $LAST" "?wait=1 with nothing new answers empty"
ok "$([ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]; echo $?)" "... after holding the request about 1 s (${ms} ms)"
t0=$(date +%s%N)
curl -s --max-time 30 "$API/v1/events?since=$LAST&wait=10" >"$T_DIR/longpoll.json" &
lp=$!
sleep 0.5
req POST /v1/nodes/lab-c/cordon
req POST /v1/nodes/lab-c/uncordon
wait $lp
ms=$((($(date +%s%N) - t0) / 1000000))
is "$(jq -r '[.items[0].seq, .items[0].kind, .items[0].object_id] | map(tostring) | join(" ")' "$T_DIR/longpoll.json")" \
	"$((LAST + 1)) node.cordoned lab-c" "a write during ?wait=10 answers the long poll with the new event"
ok "$([ "$ms" -lt 5000 ]; echo $?)" "... at once, not after 10 s (${ms} ms)"
req GET '/v1/events?since=0&wait=61'
is "$(err)" "400 invalid_query" "?wait=61 is 400 invalid_query"

# ---- read-your-writes ---------------------------------------------------------------------------

req POST /v1/nodes '{"id":"ryw-1","region":"ryw","cpu_capacity":100,"memory_mb":100}'
WIDX=$(header X-Lattice-Index)
is "$STATUS $(jqr .id)" "201 ryw-1" "the 201 body already shows the new node"
req GET "/v1/nodes/ryw-1?min_index=$WIDX"
is "$STATUS $(jqr .id)" "200 ryw-1" "GET ?min_index=<X-Lattice-Index of the write> is 200"
RIDX=$(header X-Lattice-Index)
ok "$(is_num "$RIDX" && [ "$RIDX" -ge "$WIDX" ]; echo $?)" "the read's X-Lattice-Index ($RIDX) >= the write's ($WIDX)"
req GET "/v1/nodes?region=ryw&min_index=$WIDX"
is "$STATUS $(jqr '[.items[].id] | join(" ")')" "200 ryw-1" "a list with ?min_index= shows the write"
t0=$(date +%s%N)
req GET '/v1/nodes/ryw-1?min_index=999999999'
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
is "$(err)" "503 projection_lagging" "?min_index= far in the future is 503 after the bounded wait"
ok "$([ "$ms" -ge 250 ] && [ "$ms" -lt 5000 ]; echo $?)" "... which waited about --read-wait-max-ms 300 (${ms} ms)"
req GET '/v1/nodes/ryw-1?consistent=true'
is "$STATUS $(jqr .id)" "200 ryw-1" "?consistent=true is 200"
req GET '/v1/actors?consistent=true&min_index=1'
is "$STATUS" 200 "?consistent=true with ?min_index= on a list is 200"
req GET '/v1/events?since=0&limit=1&min_index=1'
is "$STATUS" 200 "/v1/events takes ?min_index="

# ---- routing errors -----------------------------------------------------------------------------

req GET /v1/nope
is "$(err)" "404 not_found" "an unknown route is 404 not_found"
is "$(jqr '.error.message | type')" string "... with a JSON error message"
req GET /nope
is "$(err)" "404 not_found" "an unknown top-level route is 404 not_found"
req PUT /v1/nodes '{}'
is "$(err)" "405 method_not_allowed" "PUT /v1/nodes is 405 method_not_allowed"
ALLOW=$(header Allow)
ok "$(case ", $ALLOW," in *", GET,"*) case ", $ALLOW," in *", POST,"*) echo 0 ;; *) echo 1 ;; esac ;; *) echo 1 ;; esac)" \
	"... with Allow: GET and POST ($ALLOW)"
req DELETE /v1/actors
is "$(err)" "405 method_not_allowed" "DELETE /v1/actors (no id) is 405"
req POST /v1/nodes/ryw-1 '{}'
is "$(err) $(header Allow)" "405 method_not_allowed GET, DELETE" "POST /v1/nodes/{id} is 405 with Allow: GET, DELETE"
req GET '/v1/nodes?bogus=1'
is "$(err)" "400 invalid_query" "an unknown query parameter is 400 invalid_query"
req GET '/v1/nodes/ryw-1?limit=5'
is "$(err)" "400 invalid_query" "a list parameter on a single-object GET is 400 invalid_query"
req GET '/v1/actors?region=lab'
is "$(err)" "400 invalid_query" "a nodes-only filter on /v1/actors is 400 invalid_query"

# ---- a write's answer is what PostgreSQL then shows -----------------------------------------
# The loop renders written objects from the model (render.c); reads come from the
# api_* views. Both must give the same document, field for field.
same_as_get() { # NAME METHOD PATH BODY GETPATH
	req "$2" "$3" "$4"
	local posted; posted=$(printf '%s' "$BODY" | jq -S . 2>/dev/null)
	req GET "$5"
	is "$(printf '%s' "$BODY" | jq -S . 2>/dev/null)" "$posted" "$1: the write's answer equals the GET that follows"
}
same_as_get "node" POST /v1/nodes '{"id":"rd-n1","region":"rd","labels":{"k":"v","z":""},"cpu_capacity":8000,"memory_mb":8192,"cpu_used":10,"memory_used_mb":20,"actor_count":1}' /v1/nodes/rd-n1
same_as_get "actor" POST /v1/actors '{"id":"rd-a1","name":"Render","module":"reg/m:1","cpu_required":10,"memory_required_mb":5,"preferred_region":"rd","constraints":{"k":"v"},"priority":7,"max_latency_ms":30,"replicas":1,"strategy":"resources","contracts":["wasmcloud:keyvalue"]}' /v1/actors/rd-a1
same_as_get "provider" POST /v1/providers '{"id":"rd-p1","contract_id":"wasmcloud:keyvalue","image":"reg/kv:1","nodes":["rd-n1"]}' /v1/providers/rd-p1
same_as_get "link" POST /v1/links '{"id":"rd-l1","actor_id":"rd-a1","provider_id":"rd-p1","contract_id":"wasmcloud:keyvalue","values":{"B":"x"},"timeout_ms":7,"retry_count":2,"retry_delay_ms":9}' /v1/links/rd-l1
same_as_get "policy" POST /v1/policies '{"policy_id":"rd-pol","allowed_contracts":["wasmcloud:keyvalue"],"denied_contracts":["wasmcloud:httpserver"],"max_actor_memory_mb":64,"network_restrictions":["internal-only"],"selector":{"regions":["rd"],"labels":{"k":"v"}}}' /v1/policies/rd-pol
same_as_get "cordoned node" POST /v1/nodes/rd-n1/cordon '' /v1/nodes/rd-n1

req GET /healthz
is "$STATUS" 200 "the replica is still healthy"

done_testing
