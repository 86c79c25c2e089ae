#!/usr/bin/env bash
# edge_commands.sh — the command outbox without agents to ack (issue 8, item 5):
#   - NATS away: commands stay pending, the API answers; NATS back: they are
#     published (Nats-Msg-Id = command id) and the placements are starting;
#   - never acked: published again after --command-timeout-ms (doubling), then
#     failed after --command-max-attempts, with the placement failed and a
#     command.failed event;
#   - a restarted leader resumes: a pending command is published by it;
#   - GET /v1/commands filters by node and status; bad filters are 400.
. "$(dirname "$0")/lib.sh"

plan 21
lib_init
NATS_PORT=$(free_port) || bail "no free port"
JSCTL=${JSCTL:-$top_builddir/tests/tools/jsctl}
[ -x "$JSCTL" ] || bail "jsctl not built at $JSCTL"

. "$(dirname "$0")/edge_lib.sh"

# Detection off: nodes registered through the API stay healthy, no agent acks.
START=(--nats "nats://127.0.0.1:$NATS_PORT" --heartbeat-timeout-ms 0 --command-timeout-ms 400
	--command-max-attempts 3)
lattice_start a "${START[@]}"
req POST /v1/nodes '{"id":"n1","region":"eu","cpu_capacity":1000,"memory_mb":1024}'
req POST /v1/actors '{"id":"a1","module":"oci://demo/a:1","cpu_required":100,"memory_required_mb":16}'
is "$STATUS" 201 "NATS away: the actor is created"
is "$(get '/v1/commands?node=n1' '[.items[] | "\(.command_type):\(.status):\(.attempts)"] | join(",")')" "actor_start:pending:0" \
	"its actor_start is pending, not yet published"
is "$(get /v1/actors/a1 '.placements[0].state')" pending "the placement is pending"
is "$(metric lattice_commands_open)" 1 "lattice_commands_open counts it"

# NATS comes: published.
nats_start || bail "cannot start nats-server"
status() { get '/v1/commands?node=n1' '.items[0].status'; }
pub() { get '/v1/commands?node=n1' '.items[0] | "\(.status) \(.published_at != null)"'; }
is "$(until_eq "published true" pub)" "published true" "NATS is up: the command is published"
is "$(get /v1/actors/a1 '.placements[0].state')" starting "the placement is starting"
cid=$(get '/v1/commands?node=n1' '.items[0].command_id')
"$JSCTL" "$NATS_URL" consumer default n1 >/dev/null 2>&1
msg=$(nats_req '$JS.API.STREAM.MSG.GET.LATTICE_default_CMD' '{"last_by_subj":"lattice.default.cmd.n1"}')
hdrs=$(printf '%s' "$msg" | jq -r '.message.hdrs // empty' | base64 -d 2>/dev/null | tr -d '\r')
printf '%s' "$hdrs" | grep -q "^Nats-Msg-Id: $cid\$"
ok $? "it was published with Nats-Msg-Id: $cid"
body=$(printf '%s' "$msg" | jq -r '.message.data' | base64 -d)
is "$(printf '%s' "$body" | jq -r '"\(.command_id) \(.command_type) \(.target_node) \(.payload.actor_id)"')" \
	"$cid actor_start n1 a1" "the message is the command (id, type, target, payload)"

# Never acked: published again, then failed.
failed() { get "/v1/commands/$cid" '"\(.status) \(.attempts)"'; }
is "$(until_eq "failed 3" failed)" "failed 3" "never acked: failed after 3 attempts"
is "$(get "/v1/commands/$cid" .error)" "not acked after 3 attempts" "... saying why"
is "$(get /v1/actors/a1 '.placements[0].state')" failed "the placement is failed"
is "$(metric lattice_commands_open)" 0 "a failed command is no longer open"
req GET '/v1/events?since=0&limit=100'
is "$(jqr '[.items[] | select(.kind == "command.failed")] | length')" 1 "a command.failed event"
is "$(metric 'lattice_commands_finished_total{status="failed"}') $(metric 'lattice_commands_finished_total{status="acked"}')" "1 0" \
	"lattice_commands_finished_total counts it by status"

# A restarted leader resumes what is pending.
nats_stop
req POST /v1/actors '{"id":"a2","module":"oci://demo/a:1","cpu_required":100,"memory_required_mb":16}'
a2cmd=$(get '/v1/commands?node=n1&status=pending' '.items[0].command_id')
lattice_stop
nats_start || bail "cannot restart nats-server"
lattice_start a "${START[@]}"
a2pub() { get "/v1/commands/$a2cmd" .status; }
is "$(until_eq published a2pub)" published "a command pending when the leader stopped is published by the next one"

# Filters.
is "$(get '/v1/commands?status=failed' '[.items[].command_id] | join(",")')" "$cid" "?status=failed"
req GET '/v1/commands?status=lost'
is "$STATUS $(jqr .error.code)" "400 invalid_query" "an unknown status is 400"
req GET /v1/commands/nope
is "$STATUS" 404 "an unknown command is 404"

# Round trips of the acked commands (published -> acked, by the log's clock).
acked=$(get '/v1/commands?status=acked&limit=1000' '.items | length')
is "$(metric lattice_command_round_trip_seconds_count)" "$acked" \
	"lattice_command_round_trip_seconds counts each acked command once ($acked)"

# The edge's metrics, as promtool wants them (metrics.sh checks a replica without NATS).
ok "$([ "$(metric lattice_commands_published_total)" -ge 1 ] 2>/dev/null; echo $?)" \
	"lattice_commands_published_total counts this process's publications ($(metric lattice_commands_published_total))"
req GET /metrics
printf '%s\n' "$BODY" >"$T_DIR/metrics.txt"
if command -v promtool >/dev/null; then
	promtool check metrics <"$T_DIR/metrics.txt" >"$T_DIR/promtool.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && sed 's/^/# /' "$T_DIR/promtool.out"
	ok $rc "promtool check metrics accepts the exposition with the NATS metrics"
else
	skip_point "promtool is not installed (Debian package prometheus)" "promtool accepts the NATS metrics"
fi

done_testing
