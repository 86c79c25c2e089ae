#!/usr/bin/env bash
# shutdown.sh — SIGTERM keeps the documented bound: latticed exits within 10 s of
# the signal even when PostgreSQL is down and writes are in flight, says the
# projection was not flushed, and loses nothing it acknowledged: the next start,
# with PostgreSQL back, replays what was missing.
. "$(dirname "$0")/lib.sh"
plan 11
lib_init

BOUND=10 # seconds, docs/configuration.md "Signals"
SLACK=3  # process exit, sanitizer reports, a loaded machine

: >"$T_DIR/acked"
: >"$T_DIR/codes"
# writer NAME: POSTs actors NAME-1, NAME-2, ... until $T_DIR/stop exists; logs the
# acknowledged ids and every answer's status.
writer() {
	local name=$1 i=0 code
	while [ ! -f "$T_DIR/stop" ]; do
		i=$((i + 1))
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X POST -H 'Content-Type: application/json' \
			--data-binary "{\"id\":\"$name-$i\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}" \
			"$API/v1/actors" 2>/dev/null)
		echo "$code" >>"$T_DIR/codes"
		[ "$code" = 201 ] && echo "$name-$i" >>"$T_DIR/acked"
	done
}

# In-flight writes wait for PostgreSQL up to the write timeout: longer than the
# shutdown bound, so they are still waiting when SIGTERM comes.
lattice_start s1 --write-timeout-ms 60000
req POST /v1/nodes '{"id":"n1","region":"r1","cpu_capacity":1000000,"memory_mb":1000000}'
is "$STATUS" 201 "a node is registered"

pids=()
for w in a b c d; do
	writer "$w" &
	pids+=($!)
done
for _ in $(seq 1 100); do [ "$(wc -l <"$T_DIR/acked")" -ge 20 ] && break; sleep 0.1; done
pg_stop
sleep 2 # the writers' next requests commit to Raft and wait for PostgreSQL
touch "$T_DIR/stop"
acked=$(wc -l <"$T_DIR/acked")
ok $([ "$acked" -ge 20 ] && echo 0 || echo 1) "writes were acknowledged before PostgreSQL stopped ($acked)"
committed=$(curl -s "$API/v1/cluster" | jq -r .commit_index)

t0=$(date +%s%N)
kill -TERM "$LATTICED_PID"
wait "$LATTICED_PID"
rc=$?
t1=$(date +%s%N)
LATTICED_PID=
ms=$(((t1 - t0) / 1000000))
wait "${pids[@]}"
is "$rc" 0 "SIGTERM with PostgreSQL down: exit status 0"
ok $([ "$ms" -le $(((BOUND + SLACK) * 1000)) ] && echo 0 || echo 1) \
	"SIGTERM with PostgreSQL down and writes in flight: exited in $ms ms (bound ${BOUND} s + ${SLACK} s slack)"
grep -q "PostgreSQL projection not fully flushed" "$T_DIR/s1/latticed.log"
ok $? "the log says the projection was not flushed"
grep -q "stopped" "$T_DIR/s1/latticed.log"
ok $? "the log says latticed stopped"
inflight=$(grep -c '^503$' "$T_DIR/codes")
ok $([ "$inflight" -ge 1 ] && echo 0 || echo 1) \
	"writes in flight were answered 503 ($inflight), not left hanging; Raft had committed up to $committed"

# PostgreSQL back: the next start replays what the projection missed.
pg_ctl_start || bail "PostgreSQL did not come back"
lattice_start s1 --write-timeout-ms 60000
req GET "/v1/events?since=0&limit=1&min_index=$committed"
is "$STATUS" 200 "the projection reaches index $committed, committed before the SIGTERM"
sort -u "$T_DIR/acked" >"$T_DIR/acked.sorted"
pg_psql s1 "SELECT id FROM actors" | sort -u >"$T_DIR/pg.sorted"
is "$(comm -23 "$T_DIR/acked.sorted" "$T_DIR/pg.sorted" | wc -l)" 0 \
	"after the restart, all $(wc -l <"$T_DIR/acked.sorted") acknowledged actors are in PostgreSQL"
req GET "/v1/actors/$(tail -1 "$T_DIR/acked")"
is "$STATUS" 200 "the last acknowledged actor is served"
lattice_stop
is "$LATTICED_EXIT" 0 "a SIGTERM with PostgreSQL up exits 0"
done_testing
