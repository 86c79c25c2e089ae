#!/usr/bin/env bash
# restart.sh — nothing acknowledged is lost and nothing is applied twice across
# kill -9 of latticed, a restart or a crash (kill -9) of PostgreSQL that loses
# commits, a clean SIGTERM, and a restart from a Raft snapshot; a database that
# lost its contents is rebuilt.
. "$(dirname "$0")/lib.sh"
plan 37
lib_init

psql_r1() { pg_psql r1 "$1"; }

# writer NAME COUNT: POSTs actors NAME-1..COUNT one by one, logging acked ids;
# gives up after 3 failures in a row (the replica is gone, or not taking writes).
writer() {
	local name=$1 count=$2 i code fails=0
	for i in $(seq 1 "$count"); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' \
			--data-binary "{\"id\":\"$name-$i\",\"module\":\"m\",\"cpu_required\":10,\"memory_required_mb\":1}" \
			"$API/v1/actors" 2>/dev/null)
		if [ "$code" = 201 ]; then
			echo "$name-$i" >>"$T_DIR/acked"
			fails=0
		else
			fails=$((fails + 1))
			[ $fails -lt 3 ] || break
		fi
	done
}

# consistent NAME: PostgreSQL's rows agree with each other: placements match
# actors, node accounting matches placements, events are dense and unique.
check_consistent() {
	local what=$1
	is "$(psql_r1 "SELECT count(*) FROM actors a WHERE (SELECT count(*) FROM placements p WHERE p.actor_id=a.id) <> a.replicas")" 0 \
		"$what: every actor has exactly its replicas placed"
	# Usage is derived from the placements (schema 003); every actor here asks for
	# 10 millicores, so each node shows its base + 10 per placement on it.
	is "$(psql_r1 "SELECT count(*) FROM api_nodes v JOIN nodes n USING (id) WHERE v.cpu_used <> n.base_cpu_used + 10 * (SELECT count(*) FROM placements p WHERE p.node_id = n.id) OR (v.doc->>'cpu_used')::bigint <> v.cpu_used")" 0 \
		"$what: node cpu accounting equals base + placed requests"
	is "$(psql_r1 "SELECT count(*) = max(seq) AND count(DISTINCT seq) = count(*) FROM events")" t \
		"$what: events are numbered 1..N without gaps or repeats"
	is "$(psql_r1 "SELECT count(*) FROM events WHERE kind='actor.created'")" "$(psql_r1 "SELECT count(*) FROM actors")" \
		"$what: one actor.created event per actor (no double apply)"
}

# all_acked_present: every id the API acknowledged is in PostgreSQL.
check_acked() {
	local what=$1 missing
	sort -u "$T_DIR/acked" >"$T_DIR/acked.sorted"
	psql_r1 "SELECT id FROM actors" | sort -u >"$T_DIR/pg.sorted"
	missing=$(comm -23 "$T_DIR/acked.sorted" "$T_DIR/pg.sorted" | wc -l)
	is "$missing" 0 "$what: all $(wc -l <"$T_DIR/acked.sorted") acknowledged actors are in PostgreSQL"
}

: >"$T_DIR/acked"
lattice_start r1 --snapshot-threshold 64 --snapshot-trailing 16
for i in $(seq 1 8); do
	req POST /v1/nodes "{\"id\":\"n$i\",\"region\":\"r$((i % 2))\",\"cpu_capacity\":1000000,\"memory_mb\":1000000,\"cpu_used\":$((i * 10))}"
done
is "$STATUS" 201 "nodes registered"

# 1. kill -9 of latticed in the middle of concurrent writes.
writer a 400 & w1=$!
writer b 400 & w2=$!
# Past the snapshot threshold (64) before the kill, however slow the machine:
# the restart then starts from a snapshot and replays the log after it.
for _ in $(seq 1 600); do
	[ "$(wc -l <"$T_DIR/acked")" -ge 100 ] && break
	sleep 0.05
done
sleep 0.3
lattice_kill
wait $w1 $w2
acked_before=$(wc -l <"$T_DIR/acked")
ok $([ "$acked_before" -gt 20 ] && echo 0 || echo 1) "writes were acknowledged before the kill ($acked_before)"
lattice_start r1 --snapshot-threshold 64 --snapshot-trailing 16
check_acked "after kill -9"
check_consistent "after kill -9"
req GET "/v1/actors/$(head -1 "$T_DIR/acked")"
is "$STATUS" 200 "an acknowledged actor is served after the restart"
grep -q "snapshot taken" "$T_DIR/r1/latticed.log"
ok $? "Raft snapshots were taken (threshold 64)"

# 2. The replica resumes writing where it stopped: same command line, no dupes.
req POST /v1/actors '{"id":"after-restart","module":"m","cpu_required":10,"memory_required_mb":1}'
is "$STATUS" 201 "writes work after the restart"
req POST /v1/actors '{"id":"after-restart","module":"m","cpu_required":10,"memory_required_mb":1}'
is "$(err)" "409 already_exists" "an id written before the restart still exists (409 already_exists)"

# 3. PostgreSQL restarts while writes go on.
writer c 300 & w1=$!
sleep 0.5
pg_stop
sleep 0.5
req GET /readyz
is "$(err)" "503 not_ready" "readyz is 503 not_ready while PostgreSQL is down"
req GET /healthz
is "$STATUS" 200 "healthz stays 200 (the process is alive)"
pg_ctl_start || bail "PostgreSQL did not come back"
wait $w1
for _ in $(seq 1 100); do req GET /readyz; [ "$STATUS" = 200 ] && break; sleep 0.1; done
is "$STATUS" 200 "readyz is 200 again once PostgreSQL is back"
req GET "/v1/events?since=0&limit=1&min_index=$(psql_r1 'SELECT applied_index FROM lattice_state')"
is "$STATUS" 200 "reads work again"
check_acked "after a PostgreSQL restart"
check_consistent "after a PostgreSQL restart"

# 4. A crash of PostgreSQL (kill -9 of all its processes) right after acknowledged
# writes. The projection commits with synchronous_commit = off, so PostgreSQL
# loses the commits whose WAL it had not written out yet. The store keeps each
# transaction until PostgreSQL reports its WAL flushed, and once PostgreSQL is
# back it writes the lost ones again (store.c, wr_resync), logging "PostgreSQL
# lost entries A..B". The WAL writer is slowed down (wal_writer_delay 10 s) and
# autovacuum is off (its commits flush the WAL), so the last commits are still
# in PostgreSQL's memory when it dies, and the repair path has to run.
pg_psql postgres "ALTER SYSTEM SET wal_writer_delay = '10s'" >/dev/null &&
	pg_psql postgres "ALTER SYSTEM SET autovacuum = off" >/dev/null &&
	pg_psql postgres "SELECT pg_reload_conf()" >/dev/null || bail "cannot configure PostgreSQL"
repaired=0 round=0
while [ "$repaired" = 0 ] && [ $round -lt 3 ]; do
	round=$((round + 1))
	before=$(grep -c "PostgreSQL lost entries" "$T_DIR/r1/latticed.log")
	: >"$T_DIR/acked.round"
	for i in $(seq 1 20); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' \
			--data-binary "{\"id\":\"d$round-$i\",\"module\":\"m\",\"cpu_required\":10,\"memory_required_mb\":1}" \
			"$API/v1/actors")
		[ "$code" = 201 ] || break # the replica is not taking writes: no use going on
		echo "d$round-$i" | tee -a "$T_DIR/acked" >>"$T_DIR/acked.round"
	done
	[ "$(wc -l <"$T_DIR/acked.round")" = 20 ] || break
	writer "w$round" 30 & w1=$! # and writes still going on when it dies
	sleep 0.3
	pg_kill
	pg_ctl_start || bail "PostgreSQL did not come back after kill -9"
	wait $w1
	for _ in $(seq 1 300); do
		req GET /readyz
		[ "$STATUS" = 200 ] && [ "$(grep -c "PostgreSQL lost entries" "$T_DIR/r1/latticed.log")" -gt "$before" ] && break
		sleep 0.1
	done
	[ "$(grep -c "PostgreSQL lost entries" "$T_DIR/r1/latticed.log")" -gt "$before" ] && repaired=1
	diag "crash round $round: $(wc -l <"$T_DIR/acked.round") writes acknowledged; $(grep "PostgreSQL lost entries" "$T_DIR/r1/latticed.log" | tail -1 | sed 's/.*PostgreSQL lost/PostgreSQL lost/')"
done
is "$(wc -l <"$T_DIR/acked.round")" 20 "the writes before the crash were all acknowledged"
ok "$([ "$repaired" = 1 ]; echo $?)" "the crash lost acknowledged commits, and the store wrote them again (round $round)"
for _ in $(seq 1 100); do req GET /readyz; [ "$STATUS" = 200 ] && break; sleep 0.1; done
is "$STATUS" 200 "ready again after PostgreSQL was killed"
req GET "/v1/actors/$(tail -1 "$T_DIR/acked.round")"
is "$STATUS $(jqr .id)" "200 $(tail -1 "$T_DIR/acked.round")" "the last write acknowledged before the crash is served"
is "$(psql_r1 "SELECT count(*) FROM actors WHERE id IN ($(sed "s/.*/'&'/" "$T_DIR/acked.round" | paste -sd,))") $(psql_r1 "SELECT count(*) FROM events WHERE kind = 'actor.created' AND object_id IN ($(sed "s/.*/'&'/" "$T_DIR/acked.round" | paste -sd,))")" \
	"20 20" "every write acknowledged before the crash is in PostgreSQL exactly once (one row, one event each)"
check_acked "after kill -9 of PostgreSQL"
check_consistent "after kill -9 of PostgreSQL"
pg_psql postgres "ALTER SYSTEM RESET ALL" >/dev/null && pg_psql postgres "SELECT pg_reload_conf()" >/dev/null

# 5. SIGTERM during writes: in-flight writes are answered, the projection flushed.
writer e 400 & w1=$!
sleep 0.7
lattice_stop
is "$LATTICED_EXIT" 0 "SIGTERM: latticed exits 0"
wait $w1
grep -q "stopped" "$T_DIR/r1/latticed.log"
ok $? "SIGTERM: clean shutdown logged"
check_acked "after SIGTERM, before restart (projection flushed)"

# 6. A replica whose database lost everything rebuilds it from the Raft log/snapshot.
pg_psql postgres "DROP DATABASE r1" >/dev/null && pg_psql postgres "CREATE DATABASE r1" >/dev/null
lattice_start r1 --snapshot-threshold 64 --snapshot-trailing 16
for _ in $(seq 1 100); do
	[ "$(psql_r1 'SELECT count(*) FROM actors')" -ge "$(sort -u "$T_DIR/acked" | wc -l)" ] && break
	sleep 0.1
done
check_acked "after the database was emptied"
is "$(psql_r1 "SELECT count(*) FROM placements p LEFT JOIN nodes n ON n.id=p.node_id WHERE n.id IS NULL")" 0 \
	"rebuilt database: every placement's node exists"

# 7. The data dir belongs to its replica id.
lattice_stop
"$LATTICED" --id 2 --listen 127.0.0.1:0 --raft-address "127.0.0.1:$(free_port)" --data-dir "$T_DIR/r1/data" \
	--pg "$(cat "$T_DIR/r1/conninfo")" --schema-dir "$SCHEMA_DIR" >"$T_DIR/wrongid.log" 2>&1
is "$?" 1 "a data dir of replica 1 is refused with --id 2"
grep -q "belongs to replica id 1" "$T_DIR/wrongid.log"
ok $? "the refusal says which id the data dir belongs to"

done_testing
