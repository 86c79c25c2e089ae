#!/usr/bin/env bash
# edge_limits.sh — what bounds the leader's intake from the edge (docs/protocol.md):
#   - periodic snapshots of an actor sent faster than once a second: the ones
#     sooner than 1 s after the last kept are dropped and counted
#     (lattice_nats_dropped_total{subject="snap",reason="stale"}), one a second
#     is kept; a migration's checkpoint (the migration_id of the actor's open
#     migration) is kept however soon it comes, and the target starts from it;
#     a periodic snapshot carrying some other migration_id is throttled;
#   - heartbeats flooded far beyond what the leader can take in (200,000 as fast
#     as NATS carries them, tests/tools/hbflood): latticed stays up and serves
#     the API, every heartbeat is either taken or dropped and counted
#     (lattice_nats_dropped_total{subject="hb",reason="overloaded"}), memory
#     stays bounded, and real heartbeats get through afterwards.
. "$(dirname "$0")/lib.sh"

plan 27
lib_init
nats_start || bail "cannot start nats-server"
. "$(dirname "$0")/edge_lib.sh"
EDGE_AGENT_FLAGS=(--snapshot-interval-ms 0) # the real agents send snapshots only on actor_migrate

HBFLOOD=$top_builddir/tests/tools/hbflood
NATSCAP=$top_builddir/tests/tools/natscap
[ -x "$HBFLOOD" ] && [ -x "$NATSCAP" ] || bail "tests/tools/hbflood or natscap not built"

RSS_MAX=$((200 * 1024))
if ldd "$LATTICED" 2>/dev/null | grep -q libasan; then
	# ASan keeps freed memory aside (256 MiB by default) and shadows all of
	# it: a smaller quarantine and more room, so the bound still means something.
	export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=32"
	RSS_MAX=$((400 * 1024))
fi
lattice_start a --nats "$NATS_URL" --heartbeat-timeout-ms 2000
node_status() { get "/v1/nodes/$1" .status; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$LATTICED_PID/status"; }
num() { [ "$1" = none ] && echo 0 || echo "$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- A. periodic snapshots are throttled, a migration's checkpoint is not ----------------
# This script plays node s: its heartbeats (listing actor ctr), the acks of its
# commands and its snapshots; a real agent t is the migration's target.
hb_s() { # SEQ
	printf '{"node_id":"s","region":"eu","labels":{},"cpu_capacity":4000,"memory_mb":8192,"cpu_measured":0,"memory_measured_mb":0,"actors":[{"actor_id":"ctr","instance":0,"state":"running","state_version":0}],"error_count":0,"policy_version":0,"agent_version":"test-agent 1","agent_instance":"s1","seq":%s,"sent_at":"2026-12-02T10:00:00.000Z"}' "$1"
}
( for i in $(seq 1 1500); do nats_pub lattice.default.hb.s "$(hb_s "$i")"; sleep 0.2; done ) &
BEATER=$!
snap() { # NODE VERSION [MIGRATION_ID]: a snapshot body of actor ctr, a sim actor's state
	local data mig=null
	data=$(printf '{"count":%s}' "$2" | base64 -w0)
	[ -n "${3:-}" ] && mig="\"$3\""
	printf '{"actor_id":"ctr","node_id":"%s","state_version":%s,"data":"%s","taken_at":"2026-12-02T10:00:00.000Z","migration_id":%s}' \
		"$1" "$2" "$data" "$mig"
}
ack() { # NODE COMMAND_ID APPLIED_VERSION: acks a command as node NODE's agent would
	printf '{"command_id":"%s","node_id":"%s","status":"ok","error":null,"applied_version":%s,"at":"2026-12-02T10:00:00.000Z"}' \
		"$2" "$1" "$3" >"$T_DIR/ack.json"
	"$NATSCAP" --jspub "$NATS_URL" "lattice.default.ack.$1" "$T_DIR/ack.json" "ack-$2" >/dev/null
}
cmd_id() { # TYPE NODE: the latest command of actor ctr of TYPE to NODE
	get "/v1/commands?node=$2" "[.items[] | select(.actor_id == \"ctr\" and .command_type == \"$1\")][0].command_id"
}
# Every snapshot published so far handled (kept and acked, or dropped and acked).
snaps_done() {
	nats_req '$JS.API.CONSUMER.INFO.LATTICE_default_SNAP.controller_snap' '' |
		jq -r 'if .num_pending == 0 and .num_ack_pending == 0 then "done" else "busy" end'
}
stale() { num "$(metric 'lattice_nats_dropped_total{subject="snap",reason="stale"}')"; }
held() { get /v1/actors/ctr '"\(.placements[0].node_id) \(.placements[0].state_version)"'; }

is "$(until_eq healthy node_status s)" healthy "node s, played by this script, is healthy"
req POST /v1/actors '{"id":"ctr","module":"oci://demo/ctr:1","cpu_required":100,"memory_required_mb":16}'
is "$STATUS" 201 "actor ctr created (on s, the only node)"
has_start() { [ "$(cmd_id actor_start s)" != null ] && echo yes; }
is "$(until_eq yes has_start)" yes "its actor_start to s is written"
ack s "$(cmd_id actor_start s)" 0
is "$(until_eq running get /v1/actors/ctr '.placements[0].state')" running "s acks its actor_start: running on s"
agent_start t eu
is "$(until_eq healthy node_status t)" healthy "a real agent t, the migration's target, is healthy"

nats_pub lattice.default.snap.s "$(snap s 1)"
is "$(until_eq "s 1" held)" "s 1" "a first periodic snapshot (state_version 1) is kept"
# 19 more at once: only one a second may be kept, the rest are dropped.
stale0=$(stale)
t0=$(now_ms)
bodies=()
for v in $(seq 2 20); do bodies+=("$(snap s "$v")"); done
nats_pub lattice.default.snap.s "${bodies[@]}"
is "$(until_eq done snaps_done)" done "19 more periodic snapshots at once are all handled"
secs=$((($(now_ms) - t0 + 999) / 1000))
dropped=$(($(stale) - stale0))
diag "$dropped of 19 dropped in ${secs} s; held now: $(held)"
ok "$([ $((19 - dropped)) -le "$secs" ] && [ "$dropped" -gt 0 ]; echo $?)" \
	"those sooner than 1 s after the last kept are dropped and counted as stale: $dropped of 19 in ${secs} s"
grep -q 'snap message on lattice.default.snap.s dropped (stale): a periodic snapshot sooner than 1 s after the last' \
	"$T_DIR/a/latticed.log"
ok $? "... and logged: a periodic snapshot sooner than 1 s after the last"
sleep 1.1 # the last kept one is over a second old now
nats_pub lattice.default.snap.s "$(snap s 21)"
is "$(until_eq "s 21" held)" "s 21" "a periodic snapshot a second after the last kept one is kept"

# A migration to t: its checkpoint comes right after a kept snapshot (and
# after a periodic one that is dropped) and is kept all the same.
req POST /v1/actors/ctr/migrate '{"target_node":"t"}'
is "$STATUS" 202 "migration of ctr from s to t accepted"
mig=$(get '/v1/events?since=0&limit=1000' '[.items[] | select(.kind == "actor.migrating" and .object_id == "ctr")][0].data.migration_id')
stale0=$(stale)
nats_pub lattice.default.snap.s "$(snap s 22)" "$(snap s 23 "$mig")"
is "$(until_eq done snaps_done)" done "a periodic snapshot and the migration's checkpoint, at once, handled"
is "$(held)" "s 23" "the checkpoint (state_version 23, migration $mig) is kept though it came within 1 s of the last kept"
diag "the periodic snapshot 22 just before it: $(($(stale) - stale0)) dropped"
ack s "$(cmd_id actor_migrate s)" 23
is "$(until_eq "t 23" held)" "t 23" "s acks its checkpoint: the actor runs on t, started from state_version 23"
ack s "$(cmd_id actor_stop s)" 0

# A periodic snapshot that names a migration the actor is not in is periodic.
sleep 1.1
nats_pub lattice.default.snap.t "$(snap t 24)"
is "$(until_eq "t 24" held)" "t 24" "a periodic snapshot from t, a second later: kept"
stale0=$(stale)
nats_pub lattice.default.snap.t "$(snap t 25 m-not-open)"
is "$(until_eq done snaps_done)" done "a periodic snapshot naming a migration that is not open, at once: handled"
is "$(held) $(($(stale) - stale0))" "t 24 1" "... it is throttled as periodic: dropped and counted, 24 held"
kill "$BEATER" 2>/dev/null
wait "$BEATER" 2>/dev/null

# ---- B. the heartbeat queue is bounded ------------------------------------------------
agent_start e1 eu
is "$(until_eq healthy node_status e1)" healthy "a real agent's node e1 is healthy"
# The flooding node registers itself first (one heartbeat of another instance).
"$HBFLOOD" "$NATS_URL" default flood-1 1 warmup >/dev/null
is "$(until_eq healthy node_status flood-1)" healthy "node flood-1 registered by its first heartbeat"
# The agents are paused during the flood so the count below is exact: every
# heartbeat published is either taken or dropped and counted.
for id in "${!APID[@]}"; do kill -STOP "${APID[$id]}"; done
N=200000
sleep 1.1 # drops are logged one line a second at most: the flood's first one gets its own
log0=$(wc -l <"$T_DIR/a/latticed.log")
taken0=$(num "$(metric lattice_nats_heartbeats_total)")
over0=$(num "$(metric 'lattice_nats_dropped_total{subject="hb",reason="overloaded"}')")
"$HBFLOOD" "$NATS_URL" default flood-1 "$N" >"$T_DIR/hbflood.out" 2>&1
is "$(cat "$T_DIR/hbflood.out")" "sent $N" "$N heartbeats of flood-1 published as fast as NATS takes them"
accounted() {
	local t o
	t=$(num "$(metric lattice_nats_heartbeats_total)")
	o=$(num "$(metric 'lattice_nats_dropped_total{subject="hb",reason="overloaded"}')")
	echo $((t - taken0 + o - over0))
}
is "$(until_eq "$N" accounted)" "$N" "every one of them is taken or dropped and counted"
taken=$(($(num "$(metric lattice_nats_heartbeats_total)") - taken0))
over=$(($(num "$(metric 'lattice_nats_dropped_total{subject="hb",reason="overloaded"}')") - over0))
diag "taken $taken, dropped (overloaded) $over"
ok "$([ "$over" -gt 0 ]; echo $?)" "the overflow is dropped and counted as overloaded ($over of $N)"
grep -q "hb message on lattice.default.hb.flood-1 dropped (overloaded)" "$T_DIR/a/latticed.log"
ok $? "... and logged: hb message on lattice.default.hb.flood-1 dropped (overloaded)"
n=$(($(wc -l <"$T_DIR/a/latticed.log") - log0))
ok "$([ "$n" -lt 200 ]; echo $?)" "... and the flood is not a flood of log lines ($n lines meanwhile)"
rss=$(rss_kb)
ok "$([ "$rss" -lt "$RSS_MAX" ]; echo $?)" "latticed's memory stays bounded: VmRSS $((rss / 1024)) MiB < $((RSS_MAX / 1024)) MiB"
req GET /v1/nodes
is "$STATUS" 200 "latticed serves the API after the flood"
for id in "${!APID[@]}"; do kill -CONT "${APID[$id]}"; done
is "$(until_eq healthy node_status e1)" healthy "e1's real heartbeats get through after the flood: healthy"

agents_stop
done_testing
