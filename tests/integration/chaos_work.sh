#!/usr/bin/env bash
# chaos_work.sh — the chaos run's workload and observer (sim/work.c,
# sim/observe.c, through tests/tools/workctl) against three real replicas
# (group_lib.sh, no agents: six nodes registered with POST /v1/nodes so actors
# are placed), for 10 s, with the leader killed (-9) after 4 s:
#  - every invoke has exactly one completion, after it, with the same op;
#  - every kind of operation was sent, and creates, scales, reads and policy
#    writes were acknowledged;
#  - each completion is classified as docs/chaos.md says (2xx ok, 4xx fail,
#    503 no_leader/not_leader/shutting_down fail, other answers info, no answer
#    info with our own reason);
#  - every acknowledged create is in the survivors' databases unless a delete
#    that may have been applied came after it; the survivors' databases agree;
#  - requests sent to the killed replica after the kill are answered info or
#    fail (refused), none hangs past the request timeout;
#  - the observer writes the leader (the one killed) before the kill and
#    another one after it, and the watched nodes' status.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
WORKCTL=$top_builddir/tests/tools/workctl
[ -x "$WORKCTL" ] || bail "workctl not built at $WORKCTL"
plan 16
lib_init
group_init 3
for i in 1 2 3; do group_start "$i"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
L=$(group_leader) || bail "no leader"

for n in 0 1 2 3 4 5; do
	region=eu-west
	[ $((n % 2)) = 1 ] && region=us-east
	greq "$L" POST /v1/nodes "{\"id\":\"n-$n\",\"region\":\"$region\",\"cpu_capacity\":4000,\"memory_mb\":8192}"
	[ "$STATUS" = 201 ] || bail "cannot register node n-$n: $(err)"
done

H=$T_DIR/history.jsonl
URLS="$(group_api 1),$(group_api 2),$(group_api 3)"
PIDS="${GPID[1]},${GPID[2]},${GPID[3]}"
# 10 s of 20 ops/s over 4 clients; timeout guards a hang only.
timeout 300 "$WORKCTL" --urls "$URLS" --pids "$PIDS" --hist "$H" --seconds 10 --kill-leader-at 4 \
	--seed 7 --regions eu-west,us-east --watch n-0,n-1 --timeout-ms 10000 \
	--workload '{"clients":4,"ops_per_s":20,"actors":12,"policies":2,"max_replicas":3}' \
	>"$T_DIR/stats.json" 2>"$T_DIR/workctl.err"
rc=$?
ok $rc "workctl ran the workload and the observer, killed the leader and ended (status $rc: $(cat "$T_DIR/workctl.err"))"
K=$(jq -r '.killed' "$T_DIR/stats.json" 2>/dev/null)
[ -n "$K" ] && [ "$K" != 0 ] && [ "$K" != null ] || bail "no replica was killed: $(cat "$T_DIR/stats.json")"
group_kill "$K" # reaps it (it is dead already)
diag "killed replica $K; counts: $(cat "$T_DIR/stats.json")"

# jq over the whole history as an array ($h), with a program and arguments.
hq() { jq -s -r "$@" "$H"; }
# Each op: its invoke and its completions.
OPS='(map(select(.type == "invoke")) | map({key: (.op | tostring), value: .}) | from_entries) as $inv
     | (map(select(.type == "ok" or .type == "fail" or .type == "info"))) as $done'

is "$(hq "$OPS | [\$done[] | .op] | group_by(.) | map(select(length > 1)) | length")" 0 "no op has two completions"
is "$(hq "$OPS | [\$inv | keys[] | tonumber] - [\$done[] | .op] | length")" 0 "every invoke has a completion"
is "$(hq "$OPS | [\$done[] | select(\$inv[.op | tostring] == null or \$inv[.op | tostring].t > .t)] | length")" 0 \
	"every completion follows an invoke of its op"
is "$(hq '[.[] | select(.type == "invoke")] | length')" "$(jq -r .invoked "$T_DIR/stats.json")" \
	"work_stats counts the invokes of the history"
is "$(hq '[.[] | select(.type == "invoke") | .f] | unique | join(",")')" "create,delete,migrate,policy,read,scale" \
	"every kind of operation was sent"
got=$(hq "$OPS | [\$done[] | select(.type == \"ok\") | \$inv[.op | tostring].f] | unique | join(\",\")")
ok "$(grep -qE 'create.*policy.*read.*scale' <<<"$got"; echo $?)" "creates, scales, reads and policy writes were acknowledged ($got)"

# The classification table of docs/chaos.md, checked answer by answer.
bad=$(hq "$OPS | [\$done[] | . as \$c | \$inv[.op | tostring].f as \$f
	| (if .status == null then \"info\"
	   elif .status >= 200 and .status < 300 then \"ok\"
	   elif \$f == \"read\" then (if .status == 404 then \"ok\" else \"fail\" end)
	   elif .status >= 400 and .status < 500 then \"fail\"
	   elif .status == 503 and (.error as \$e | any(\"no_leader\", \"not_leader\", \"shutting_down\", \"not_ready\"; . == \$e)) then \"fail\"
	   else \"info\" end) as \$want
	| select(\$want != .type or (.status == null and (.error as \$e | any(\"timeout\", \"refused\", \"reset\", \"bad_answer\"; . == \$e) | not)))] | .[:3]")
is "$bad" "[]" "each answer is recorded as ok, fail or info per the classification table"
is "$(hq "$OPS | [\$done[] | select(.type == \"ok\" and \$inv[.op | tostring].f == \"create\" and (.value.generation | type) != \"number\")] | length")" 0 \
	"acknowledged creates record the generation"
is "$(hq "$OPS | [\$done[] | select(.type == \"ok\" and \$inv[.op | tostring].f == \"read\" and .value != null and (.value.placements | type) != \"array\")] | length")" 0 \
	"acknowledged reads record the placements (or null: no such actor)"

read -r A B <<<"$(group_others "$K")"
group_settle "$A" "$B"
group_psql "$A" "SELECT id FROM actors ORDER BY 1" >"$T_DIR/actors.$A" 2>&1
# An acknowledged create must be there, unless a delete of it that was not
# refused was still open (or sent) after the create was sent.
missing=$(hq --rawfile have "$T_DIR/actors.$A" "$OPS | (\$have | split(\"\n\")) as \$ids
	| [\$done[] | select(.type == \"ok\") | \$inv[.op | tostring] as \$c | select(\$c.f == \"create\")
	   | select(any(\$ids[]; . == \$c.key) | not)
	   | select(([\$done[] | select(.type != \"fail\") | . as \$d | \$inv[.op | tostring]
	                | select(.f == \"delete\" and .key == \$c.key and \$d.t >= \$c.t)] | length) == 0)
	   | \$c.key] | unique | join(\" \")")
is "$missing" "" "every acknowledged create is in replica $A's database, or a later delete may have removed it"
group_same_db "$A" "$B"
ok $? "the databases of replicas $A and $B are identical"

tk=$(hq '[.[] | select(.type == "nemesis" and .f == "kill_replica")][0].t')
to_dead=$(hq "$OPS | [\$done[] | \$inv[.op | tostring] as \$i | select(\$i.replica == $K and \$i.t > $tk) | .type] | group_by(.) | map({(.[0]): length}) | add // {}")
diag "requests sent to replica $K after the kill at t=$tk: $to_dead"
ok "$(jq -e '(.ok // 0) == 0 and ((.info // 0) + (.fail // 0)) > 0' <<<"$to_dead" >/dev/null; echo $?)" \
	"requests sent to the killed replica after the kill are info or fail, none ok"
is "$(hq "$OPS | [\$done[] | select(.t - \$inv[.op | tostring].t > 30000)] | length")" 0 \
	"no request hung past the request timeout"

before=$(hq "[.[] | select(.type == \"observe\" and .f == \"leader\" and .t < $tk)] | last | .replica")
after=$(hq "[.[] | select(.type == \"observe\" and .f == \"leader\" and .t > $tk)] | last | .replica")
ok "$([ "$before" = "$K" ] && [ -n "$after" ] && [ "$after" != null ] && [ "$after" != "$K" ]; echo $?)" \
	"the observer saw leader $K before the kill and another after it (before: $before, after: $after)"
is "$(hq '[.[] | select(.type == "observe" and .f == "node_status") | .node] | unique | join(",")')" "n-0,n-1" \
	"the observer writes the status of the watched nodes"

done_testing
