#!/usr/bin/env bash
# idempotency.sh — Idempotency-Key on POST: a retry with the same key gets the
# first answer (the same server-chosen id) instead of a second object, also when
# the retries race, after a restart (log replay and snapshot restore) and across
# a leader change; the key with another request is refused (422); bad keys 400.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 26

lib_init
lattice_start r1 --snapshot-threshold 16 --snapshot-trailing 0
req POST /v1/nodes '{"id":"n1","region":"r","cpu_capacity":100000,"memory_mb":100000}'
is "$STATUS" 201 "a node"

# keyed NAME KEY BODY: POST /v1/actors with Idempotency-Key
keyed() {
	local key=$1 body=$2
	HDRS="$T_DIR/last.headers"
	STATUS=$(curl -s -o "$T_DIR/last.body" -D "$HDRS" -w '%{http_code}' --max-time 60 -X POST \
		-H 'Content-Type: application/json' -H "Idempotency-Key: $key" --data-binary "$body" "$API/v1/actors")
	BODY=$(cat "$T_DIR/last.body")
}
A='{"module":"m","cpu_required":10,"memory_required_mb":1}'
keyed k-1 "$A"
is "$STATUS" 201 "first keyed POST creates"
first=$(jqr .id)
idx=$(header X-Lattice-Index)
keyed k-1 "$A"
is "$STATUS" 201 "the retry answers as the first did"
is "$(jqr .id)" "$first" "... with the same server-chosen id"
is "$(header Location)" "/v1/actors/$first" "... and its Location"
is "$(pg_psql r1 "SELECT count(*) FROM actors")" 1 "one actor in PostgreSQL, not two"
keyed k-1 '{"module":"m2","cpu_required":10,"memory_required_mb":1}'
is "$(err)" "422 idempotency_key_reused" "the same key with another body is refused"
keyed k-2 "$A"
is "$STATUS" 201 "another key creates another actor"
isnt "$(jqr .id)" "$first" "... with its own id"

# Racing retries: 6 at once with one key, one actor.
racers=()
for i in 1 2 3 4 5 6; do
	curl -s --max-time 60 -X POST -H 'Content-Type: application/json' -H 'Idempotency-Key: race-1' \
		--data-binary "$A" "$API/v1/actors" >"$T_DIR/race.$i" &
	racers+=($!)
done
wait "${racers[@]}" # not a bare wait: latticed is a child too
ids=$(for i in 1 2 3 4 5 6; do jq -r .id "$T_DIR/race.$i"; done | sort -u)
is "$(echo "$ids" | wc -l)" 1 "6 racing requests with one key all name one actor ($ids)"
is "$(pg_psql r1 "SELECT count(*) FROM actors WHERE id = '$ids'")" 1 "... which exists once"
is "$(pg_psql r1 "SELECT count(*) FROM actors")" 3 "three actors in all"

# Bad keys.
HDRS="$T_DIR/last.headers"
long=$(printf 'k%.0s' $(seq 1 256))
keyed "$long" "$A"
is "$(err)" "400 invalid_header" "a 256-character key is refused"
keyed "" "$A"
is "$STATUS" 201 "an empty header is no key (curl sends none)"

# A keyed create whose object was deleted since: said so, not created again.
keyed del-1 "$A"
gone=$(jqr .id)
req DELETE "/v1/actors/$gone"
is "$STATUS" 204 "the keyed actor deleted"
keyed del-1 "$A"
is "$(err)" "409 conflict" "a retry after the delete says the object is gone"
is "$(pg_psql r1 "SELECT count(*) FROM actors WHERE id = '$gone'")" 0 "... and does not create it again"

# The key survives a restart: past a snapshot (threshold 16) and the log after it.
for i in $(seq 1 20); do req POST /v1/nodes "{\"id\":\"pad$i\",\"region\":\"r\"}"; done
lattice_stop
lattice_start r1 --snapshot-threshold 16 --snapshot-trailing 0
grep -q "snapshot restored\|raft snapshot taken" "$T_DIR/r1/latticed.log"
ok $? "a snapshot was taken before the restart"
keyed k-1 "$A"
is "$(jqr .id)" "$first" "after a restart the retry still gets the first id"
is "$(pg_psql r1 "SELECT count(*) FROM actors WHERE id <> '$first' AND id <> '$ids'")" 2 "... and nothing new was created"
lattice_stop

# Across a leader change, in a group of three (g1..g3: r1 is taken above).
GROUP_PREFIX=g
group_init 3
for i in 1 2 3; do group_start "$i"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i not ready"; done
L=$(group_leader)
F=$((L % 3 + 1))
API=$(group_api "$F")
req POST /v1/nodes '{"id":"g1","region":"r","cpu_capacity":100000,"memory_mb":100000}'
keyed g-1 "$A"
is "$STATUS" 201 "a keyed POST to a follower (passed on to the leader)"
gid=$(jqr .id)
group_kill "$L"
GROUP_MAX_ID=3
for _ in $(seq 1 100); do
	keyed g-1 "$A"
	[ "$STATUS" = 201 ] && break
	sleep 0.2
done
is "$STATUS" 201 "the retry after the leader was killed is answered"
is "$(jqr .id)" "$gid" "... by the new leader, with the first id"
NL=$(group_leader)
isnt "$NL" "$L" "a new leader ($NL) answered"
is "$(pg_psql "g$F" "SELECT count(*) FROM actors")" 1 "one actor on the follower's database"
group_start "$L"
group_wait_ready "$L"
ok $? "the old leader rejoins"
done_testing
