#!/usr/bin/env bash
# compacted.sh — events older than this replica's history are never a silent gap
# (issue 7): a database rebuilt from a Raft snapshot holds no event before it, and
# GET /v1/events?since=N below that answers 410 events_compacted with the first
# seq it holds (in the message and in error.first_seq), as etcd answers a
# compacted revision; from there on the log reads as before.
. "$(dirname "$0")/lib.sh"
plan 14
lib_init

FLAGS=(--snapshot-threshold 16 --snapshot-trailing 0)
lattice_start r1 "${FLAGS[@]}"
for i in $(seq 1 40); do
	req POST /v1/nodes "{\"id\":\"n$i\",\"region\":\"eu\",\"cpu_capacity\":1000,\"memory_mb\":1000}"
done
is "$STATUS" 201 "40 nodes registered (40 events)"
req GET '/v1/events?since=0&limit=1000'
is "$STATUS $(jqr '.items[0].seq') $(jqr '.items | length')" "200 1 40" "the whole history: events 1 to 40"
lattice_stop
grep -q "snapshot taken" "$T_DIR/r1/latticed.log"
ok $? "Raft snapshots were taken"

# The database is lost; the replica rebuilds it from its snapshot and what follows.
pg_psql postgres "DROP DATABASE r1" >/dev/null && pg_psql postgres "CREATE DATABASE r1" >/dev/null
lattice_start r1 "${FLAGS[@]}"
for _ in $(seq 1 100); do [ "$(pg_psql r1 'SELECT count(*) FROM nodes')" = 40 ] && break; sleep 0.1; done
is "$(pg_psql r1 'SELECT count(*) FROM nodes')" 40 "the database was rebuilt: all 40 nodes"
first=$(pg_psql r1 'SELECT min(seq) FROM events')
ok "$([ "$first" -gt 1 ] && [ "$first" -le 40 ]; echo $?)" "it holds no event before the snapshot (the first is $first)"

req GET '/v1/events?since=0'
is "$(err)" "410 events_compacted" "since=0: 410 events_compacted, not a silent gap"
is "$(jqr .error.first_seq)" "$first" "error.first_seq is the first event held"
printf '%s' "$(jqr .error.message)" | grep -q "the first it holds after since=0 is $first: continue with since=$((first - 1))"
ok $? "the message names it and says how to go on: $(jqr .error.message)"
req GET "/v1/events?since=$((first - 2))&wait=5"
is "$(err) $(jqr .error.first_seq)" "410 events_compacted $first" "since=first-2 (a long poll): 410 at once"
req GET "/v1/events?since=$((first - 1))&limit=1000"
is "$STATUS $(jqr '.items[0].seq') $(jqr .next)" "200 $first 40" "since=first-1: the events held, up to 40"
req GET '/v1/events?limit=1000'
is "$STATUS $(jqr '.items[0].seq') $(jqr .next)" "200 $first 40" "without since: from the oldest held"

req POST /v1/nodes '{"id":"n41","region":"eu","cpu_capacity":1000,"memory_mb":1000}'
is "$STATUS" 201 "a new write after the rebuild"
req GET '/v1/events?since=40'
is "$STATUS $(jqr '.items[0].seq') $(jqr '.items[0].object_id')" "200 41 n41" "the log goes on from 41"
req GET '/v1/events?since=39'
is "$STATUS $(jqr '.items | length')" "200 2" "since=39 (held): events 40 and 41"

done_testing
