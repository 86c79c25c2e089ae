#!/usr/bin/env bash
# edge_hb.sh — heartbeats over a real nats-server (JetStream on) and what the
# leader makes of them (docs/protocol.md, SPEC "Failure detection"):
#   - latticed serves its API while NATS is away, connects when it comes, and
#     then creates the streams and consumers the protocol names;
#   - a heartbeat registers an unknown node with its profile; every node, also
#     one registered through the API, gets its agent_<id> consumer;
#   - silence -> unhealthy, back -> healthy; errors -> degraded / unhealthy;
#     a flapping node is held unhealthy before it is trusted again;
#   - a restarted leader waits one heartbeat timeout before it declares anyone dead;
#   - malformed, oversized, spoofed and stale heartbeats are dropped and counted;
#   - a stream whose settings contradict the protocol is an error, left as it is;
#   - a nats-server restart: latticed reconnects and hears heartbeats again.
# The agents here are this script, publishing over NATS's text protocol
# (servers.sh nats_pub), so it can send what no real agent would.
. "$(dirname "$0")/lib.sh"

plan 57
lib_init
NATS_PORT=$(free_port) || bail "no free port"
. "$(dirname "$0")/edge_lib.sh" # until_eq, metric (no agents here: this script plays them)

TIMEOUT_MS=2000
START=(--heartbeat-timeout-ms "$TIMEOUT_MS" --heartbeat-interval-ms 200)

# hb NODE SEQ [ERRORS] [INSTANCE] [REGION] [ACTORS]: a heartbeat body
hb() {
	printf '{"node_id":"%s","region":"%s","labels":{"zone":"a"},"cpu_capacity":4000,"memory_mb":8192,"cpu_measured":300,"memory_measured_mb":900,"actors":%s,"error_count":%s,"policy_version":0,"agent_version":"test-agent 1","agent_instance":"%s","seq":%s,"sent_at":"2026-12-02T10:00:00.000Z"}' \
		"$1" "${5:-eu}" "${6:-[]}" "${3:-0}" "${4:-inst1}" "$2"
}
SEQ=0 # the last one sent; see beat
beat() { # NODE [ERRORS] [INSTANCE] [ACTORS]: one heartbeat with the next seq (kept in a file: until_eq runs it in subshells)
	SEQ=$(($(cat "$T_DIR/seq" 2>/dev/null || echo 0) + 1))
	echo "$SEQ" >"$T_DIR/seq"
	nats_pub "lattice.default.hb.$1" "$(hb "$1" "$SEQ" "${2:-0}" "${3:-inst1}" eu "${4:-[]}")"
}
node_field() { # NODE FIELD
	req GET "/v1/nodes/$1"
	[ "$STATUS" = 200 ] && jqr ".$2" || echo "(status $STATUS)"
}
# beating NODE SECONDS: heartbeats every 200 ms for SECONDS, then checks status
beat_for() {
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt "$end" ]; do beat "$1" "${3:-0}"; sleep 0.2; done
}
events_for() { # NODE: node.status events of NODE, as from>to,...
	req GET '/v1/events?since=0&limit=1000'
	jqr "[.items[] | select(.kind == \"node.status\" and .object_id == \"$1\") | \"\(.data.from)>\(.data.to)\"] | join(\",\")"
}

# 1. NATS away at start: the API works, nothing is connected.
lattice_start a --nats "nats://127.0.0.1:$NATS_PORT" "${START[@]}"
req POST /v1/nodes '{"id":"api-node","region":"eu","cpu_capacity":1000,"memory_mb":1024}'
is "$STATUS" 201 "NATS down: the API still registers a node"
is "$(metric lattice_nats_connected)" 0 "lattice_nats_connected is 0 while NATS is away"
grep -q "not reachable yet; retrying in the background" "$T_DIR/a/latticed.log"
ok $? "the log says NATS is retried in the background"
# A leader cut off from NATS hears nobody: that says nothing about the nodes.
sleep $((TIMEOUT_MS * 3 / 2000 + 1))
is "$(node_field api-node status)" healthy "while NATS is away no node is declared dead (waited 1.5 timeouts)"

# 2. NATS comes: streams and consumers.
nats_start || bail "cannot start nats-server"
is "$(until_eq 1 metric lattice_nats_connected)" 1 "latticed connects once NATS is up"
is "$(until_eq 1 metric lattice_nats_streams_ready)" 1 "the leader's streams and consumers are set up"
for s in CMD ACK SNAP; do
	info=$(nats_req "\$JS.API.STREAM.INFO.LATTICE_default_$s" "")
	kind=$(printf '%s' "$s" | tr 'A-Z' 'a-z')
	is "$(printf '%s' "$info" | jq -c '[.config.subjects, .config.storage, .config.retention, .config.duplicate_window >= 120000000000]')" \
		"[[\"lattice.default.$kind.>\"],\"file\",\"limits\",true]" "stream LATTICE_default_$s: subjects, file storage, limits, 2-minute duplicate window"
done
consumer() { # STREAM NAME: "durable filter ack_policy" or the error
	nats_req "\$JS.API.CONSUMER.INFO.LATTICE_default_$1.$2" "" |
		jq -r 'if .error then "error \(.error.code)" else "\(.config.durable_name) \(.config.filter_subject) \(.config.ack_policy) \(.config.deliver_policy)" end'
}
is "$(until_eq "agent_api-node lattice.default.cmd.api-node explicit all" consumer CMD agent_api-node)" \
	"agent_api-node lattice.default.cmd.api-node explicit all" "a node registered through the API has its durable pull consumer"
is "$(consumer ACK controller_ack)" "controller_ack lattice.default.ack.> explicit all" "the controller's ack consumer"
is "$(consumer SNAP controller_snap)" "controller_snap lattice.default.snap.> explicit all" "the controller's snapshot consumer"

# 3. A heartbeat registers its node, with its profile.
beat edge-1
is "$(until_eq 200 bash -c "curl -s -o /dev/null -w '%{http_code}' $API/v1/nodes/edge-1")" 200 "the first heartbeat registers node edge-1"
req GET /v1/nodes/edge-1
is "$(jqr '[.region, .labels.zone, .cpu_capacity, .memory_mb, .status] | join(" ")')" "eu a 4000 8192 healthy" \
	"... with the heartbeat's region, labels and capacity, healthy"
reported() { req GET /v1/nodes/edge-1; jqr '[.cpu_measured, .memory_measured_mb, .agent_version, .last_heartbeat != null] | map(tostring) | join(" ")'; }
is "$(until_eq "300 900 test-agent 1 true" reported)" "300 900 test-agent 1 true" \
	"measured usage, agent version and last_heartbeat reach the node"
is "$(until_eq "agent_edge-1 lattice.default.cmd.edge-1 explicit all" consumer CMD agent_edge-1)" \
	"agent_edge-1 lattice.default.cmd.edge-1 explicit all" "... and its consumer agent_edge-1 is created"
req GET '/v1/events?since=0&limit=1000'
is "$(jqr '[.items[] | select(.object_id == "edge-1") | .kind][0]')" "node.registered" "a node.registered event"

# 4. Silence -> unhealthy; back -> healthy (the first time: no hold).
is "$(until_eq unhealthy node_field edge-1 status)" unhealthy "silent for the heartbeat timeout: unhealthy"
beat edge-1
is "$(until_eq healthy node_field edge-1 status)" healthy "heard again: healthy"
is "$(events_for edge-1)" "healthy>unhealthy,unhealthy>healthy" "each change is one node.status event"

# 5. Errors: degraded, then unhealthy at --max-error-count (5); then damping.
# Longer than the hold since the last silence: the hold must run from when the
# errors clear (it once ran from the last silence and so was over already).
beat_for edge-1 5
beat edge-1 2
is "$(until_eq degraded node_field edge-1 status)" degraded "error_count 2: degraded"
is "$(node_field edge-1 error_count)" 2 "... with the error count recorded"
beat edge-1 5
is "$(until_eq unhealthy node_field edge-1 status)" unhealthy "error_count 5: unhealthy"
# Second time unhealthy within 10 minutes: held 2 x timeout (4 s) after the
# errors clear, heartbeats going on meanwhile.
beat edge-1 0
sleep 1
is "$(node_field edge-1 status)" unhealthy "a flapping node stays unhealthy right after it recovers (damped)"
beat_for edge-1 4
beat_status() { beat edge-1 >/dev/null; node_field edge-1 status; }
is "$(until_eq healthy beat_status)" healthy "... and is healthy again after the hold"

# 5b. A node unhealthy while it heartbeats (errors here; flap damping holds
# one the same way) is still reconciled: an instance it runs that the lattice
# never placed there (a stray, e.g. started before a failover moved it) is
# stopped, not left until the node is trusted again.
GHOST='[{"actor_id":"ghost","instance":0,"state":"running","state_version":0}]'
beat edge-1 5 inst1 "$GHOST"
is "$(until_eq unhealthy node_field edge-1 status)" unhealthy "edge-1 errs (error_count 5): unhealthy, heartbeats going on"
ghost_stop() {
	beat edge-1 5 inst1 "$GHOST" >/dev/null
	get '/v1/commands?node=edge-1' '[.items[] | select(.command_type == "actor_stop" and .actor_id == "ghost") | .payload.reason] | join(",")'
}
is "$(until_eq reconcile ghost_stop)" reconcile "a stray it reports is stopped by reconciliation although the node is unhealthy"
beat_for edge-1 1
beat_status() { beat edge-1 >/dev/null; node_field edge-1 status; }
is "$(until_eq healthy beat_status)" healthy "edge-1 recovers"

# 6. Bad messages: dropped, counted, never fatal.
nats_pub lattice.default.hb.edge-1 '{"node_id": "edge-1", "region":'
nats_pub lattice.default.hb.edge-1 "$(hb edge-2 999)"
nats_pub lattice.default.hb.edge-1 "$(head -c 300000 /dev/zero | tr '\0' ' ')"
nats_pub lattice.default.hb.edge-1 "$(hb edge-1 1)" # seq 1 of inst1: long past
nats_pub lattice.default.hb.edge-1 "$(hb edge-1 0 0 inst1)" # seq 0
is "$(until_eq 2 metric 'lattice_nats_dropped_total{subject="hb",reason="malformed"}')" 2 "malformed heartbeats counted"
is "$(metric 'lattice_nats_dropped_total{subject="hb",reason="spoofed"}')" 1 "a spoofed heartbeat (subject edge-1, body edge-2) counted"
is "$(metric 'lattice_nats_dropped_total{subject="hb",reason="oversized"}')" 1 "an oversized heartbeat (300 KB) counted"
is "$(until_eq 1 metric 'lattice_nats_dropped_total{subject="hb",reason="stale"}')" 1 "a stale heartbeat (an old seq) counted"
req GET /v1/nodes/edge-2
is "$STATUS" 404 "the spoofed body registered nothing"
grep -q 'dropped (spoofed)' "$T_DIR/a/latticed.log" || grep -q 'dropped' "$T_DIR/a/latticed.log"
ok $? "drops are logged"
nats_pub 'lattice.default.hb.bad.token' "$(hb bad 1)"
req GET /healthz
is "$STATUS" 200 "latticed is alive after the bad messages"
# A new agent instance (a restarted agent) starts its seq again.
echo 0 >"$T_DIR/seq"
beat edge-1 0 inst2
is "$(until_eq 1 bash -c "grep -c 'agent restarted (instance inst2' $T_DIR/a/latticed.log")" 1 "a restarted agent (new instance, seq 1) is heard"
nats_pub lattice.default.hb.edge-1 "$(hb edge-1 500 0 inst1)"
is "$(until_eq 2 metric 'lattice_nats_dropped_total{subject="hb",reason="stale"}')" 2 "the replaced instance's late heartbeat is stale"

# 7. api-node, registered through the API and never heard, went unhealthy one
# timeout after NATS came. A new leader has no last-seen times: it waits one
# timeout before declaring anyone dead, so edge-1, beating on across a restart
# of the leader, never goes unhealthy.
is "$(node_field api-node status)" unhealthy "a node never heard is unhealthy once NATS has been up a timeout"
is "$(events_for api-node)" "healthy>unhealthy" "... one transition"
( for i in $(seq 1 80); do nats_pub lattice.default.hb.edge-1 "$(hb edge-1 $((1000 + i)) 0 inst2)"; sleep 0.2; done ) &
BEATER=$!
is "$(until_eq healthy node_field edge-1 status)" healthy "edge-1 beats on"
before=$(events_for edge-1)
lattice_stop
lattice_start a --nats "nats://127.0.0.1:$NATS_PORT" "${START[@]}"
grep -q "edge: leading; .* nodes get $TIMEOUT_MS ms to be heard" "$T_DIR/a/latticed.log"
ok $? "the new leader logs its wait"
sleep $((TIMEOUT_MS * 2 / 1000 + 1))
is "$(events_for edge-1)" "$before" "a node that kept beating has no new transition across the leader's restart"
is "$(node_field edge-1 status)" healthy "... and is healthy"
kill "$BEATER" 2>/dev/null
wait "$BEATER" 2>/dev/null

# 8. nats-server restarts: latticed reconnects and hears heartbeats again.
nats_restart || bail "nats restart failed"
is "$(until_eq 1 bash -c "v=\$(curl -s $API/metrics | awk '\$1==\"lattice_nats_reconnects_total\"{print \$2}'); [ \"\${v:-0}\" -ge 1 ] && echo 1")" 1 \
	"latticed reconnects after a nats-server restart"
echo 2000 >"$T_DIR/seq"
beat_for edge-1 3 0 inst2
before=$(metric lattice_nats_heartbeats_total)
beat edge-1 0 inst2
is "$(until_eq 1 bash -c "v=\$(curl -s $API/metrics | awk '\$1==\"lattice_nats_heartbeats_total\"{print \$2}'); [ \"\$v\" -gt $before ] && echo 1")" 1 \
	"heartbeats arrive again after the restart"
is "$(until_eq healthy node_field edge-1 status)" healthy "edge-1 is healthy"

# 9. A stream with contradicting settings is an error, and stays as it is.
lattice_stop
nats_stop
NATS_DIR= NATS_PORT=$(free_port)
nats_start || bail "cannot start a second nats-server"
nats_req '$JS.API.STREAM.CREATE.LATTICE_default_ACK' '{"name":"LATTICE_default_ACK","subjects":["lattice.default.ack.>"],"storage":"memory"}' >/dev/null
lattice_start a --nats "$NATS_URL" "${START[@]}"
is "$(until_eq 1 bash -c "v=\$(curl -s $API/metrics | awk '\$1==\"lattice_nats_errors_total{kind=\\\"stream_config\\\"}\"{print \$2}'); [ \"\${v:-0}\" -ge 1 ] && echo 1")" 1 \
	"a stream with memory storage is counted as a configuration error"
grep -q 'stream LATTICE_default_ACK: storage is memory, lattice needs file' "$T_DIR/a/latticed.log"
ok $? "the log names the stream, the setting and what lattice needs"
is "$(metric lattice_nats_streams_ready)" 0 "the streams are not ready"
is "$(nats_req '$JS.API.STREAM.INFO.LATTICE_default_ACK' '' | jq -r .config.storage)" memory "the stream was left as it is"
req GET /v1/nodes/edge-1
is "$STATUS" 200 "the API keeps serving"

# 9b. A set-up that fails for a passing reason (here another stream holds the
# command subjects) is retried soon, backing off, not once per 10 s.
lattice_stop
nats_req '$JS.API.STREAM.DELETE.LATTICE_default_ACK' '' >/dev/null
nats_req '$JS.API.STREAM.CREATE.BLOCKER' '{"name":"BLOCKER","subjects":["lattice.default.cmd.>"],"storage":"memory"}' >/dev/null
lattice_start a --nats "$NATS_URL" "${START[@]}"
is "$(until_eq 3 bash -c "n=\$(grep -c 'nats: set-up failed; retrying in' '$T_DIR/a/latticed.log'); [ \$n -ge 3 ] && echo 3")" 3 \
	"a passing set-up failure is retried"
is "$(grep -o 'set-up failed; retrying in [0-9]* ms' "$T_DIR/a/latticed.log" | head -3 | awk '{print $5}' | paste -sd,)" \
	"250,500,1000" "first after 250 ms, then backing off (doubling)"
nats_req '$JS.API.STREAM.DELETE.BLOCKER' '' >/dev/null
is "$(until_eq 1 metric lattice_nats_streams_ready)" 1 "once the obstacle is gone, the streams are set up"
is "$(nats_req '$JS.API.STREAM.INFO.LATTICE_default_ACK' '' | jq -r .config.storage)" file "... as protocol.md says"

# 10. Options.
"$LATTICED" --lattice 'a.b' --pg x >"$T_DIR/opt.out" 2>&1
is "$?" 2 "--lattice that is not a subject token: exit 2"
grep -q "not a NATS subject token" "$T_DIR/opt.out"
ok $? "... saying why"

done_testing
