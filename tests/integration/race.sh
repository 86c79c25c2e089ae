#!/usr/bin/env bash
# race.sh — creates racing for the last capacity (SPEC.md "Placement"). The loop
# plans a write before the writes ahead of it are applied, so a burst of creates
# is planned against the same free capacity and some plans are stale by the time
# they are applied. The apply re-checks the capacity and the write is planned again
# on the new state: it lands on another node that still fits (201), or gets 409
# insufficient_resources when none does, never 409 conflict; and the nodes account
# exactly what was placed. Each round sends its burst over parallel connections
# at once; rounds repeat (up to 5) until the replica's debug log shows that stale
# plans really were made again, so the round that is checked exercised that path.
. "$(dirname "$0")/lib.sh"
plan 6
lib_init
LOG_LEVEL=debug lattice_start race1

# burst ROUND: 9 creates of 300 millicores at once at two empty 1000-millicore
# nodes only they may use: 6 fit (3 on each node), 3 do not. Prints one line per
# create: "STATUS/code" (code "created" for a 201), the status as curl saw it.
burst() {
	local r=$1 i args=() code file
	for i in $(seq 1 9); do
		[ $i -gt 1 ] && args+=(--next)
		args+=(-s -X POST -H 'Content-Type: application/json' --max-time 60 -o "$T_DIR/race.$r.$i"
			-w '%{http_code} %{filename_effective}\n' --data-binary
			"{\"id\":\"r$r-$i\",\"module\":\"m\",\"cpu_required\":300,\"memory_required_mb\":1,\"constraints\":{\"grp\":\"g$r\"}}"
			"$API/v1/actors")
	done
	curl --no-progress-meter --parallel --parallel-immediate --parallel-max 9 "${args[@]}" |
		while read -r code file; do
			echo "$code/$(jq -r '.error.code // "created"' "$file" 2>/dev/null)"
		done
}

round=0 replans=0
while [ $round -lt 5 ] && [ "$replans" = 0 ]; do
	round=$((round + 1))
	for n in a b; do
		req POST /v1/nodes "{\"id\":\"g$round-$n\",\"region\":\"race\",\"labels\":{\"grp\":\"g$round\"},\"cpu_capacity\":1000,\"memory_mb\":1000}"
		[ "$STATUS" = 201 ] || bail "cannot create node g$round-$n: $(err)"
	done
	before=$(grep -c 're-planning' "$T_DIR/race1/latticed.log")
	burst $round >"$T_DIR/race.codes"
	replans=$(($(grep -c 're-planning' "$T_DIR/race1/latticed.log") - before))
	diag "round $round: $(sort "$T_DIR/race.codes" | uniq -c | tr -s ' ' | tr '\n' ','); $replans stale plans made again"
done
ok "$([ "$replans" -gt 0 ]; echo $?)" "a burst of creates made stale plans that were planned again (round $round: $replans)"
is "$(cut -d/ -f1 "$T_DIR/race.codes" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "201:6 409:3 " \
	"9 creates of 300 millicores on two 1000-millicore nodes: 6 created, 3 refused"
is "$(sort "$T_DIR/race.codes" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "201/created:6 409/insufficient_resources:3 " \
	"a stale plan is made again: the refused creates are 409 insufficient_resources, never 409 conflict"
for n in a b; do
	req GET "/v1/nodes/g$round-$n"
	is "$STATUS $(jqr '[.cpu_used, .actor_count] | map(tostring) | join(" ")')" "200 900 3" \
		"node g$round-$n holds 3 of them and accounts exactly 900 millicores"
done
req GET "/v1/actors?limit=1000"
is "$(jqr "[.items[] | select(.id | startswith(\"r$round-\")) | .placements[0].node_id] | sort | join(\" \")")" \
	"g$round-a g$round-a g$round-a g$round-b g$round-b g$round-b" "the 6 created actors are 3 on each node"

done_testing
