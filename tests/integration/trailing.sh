#!/usr/bin/env bash
# trailing.sh — --snapshot-trailing 0 loses no acknowledged write. canonical raft
# 0.15 takes a snapshot put with 0 trailing entries for an installed snapshot: it
# moves the log's next index back to the snapshot's index + 1 while entries past
# it are already written or on their way, and after a restart the newest of them
# were gone (compacted.sh lost its last write about once in 30 loaded runs).
# latticed hands raft at least 1. Here: writes from 6 clients while snapshots
# fall every 16 entries, then a restart with the database dropped, so that the
# replica's state comes from its snapshot and log alone; three rounds.
. "$(dirname "$0")/lib.sh"
plan 9
lib_init

FLAGS=(--snapshot-threshold 16 --snapshot-trailing 0)
# write ROUND: 6 workers POST 60 nodes each; acknowledged ids go to $T_DIR/acked.
write() {
	local w
	for w in 1 2 3 4 5 6; do
		(
			local i code
			for i in $(seq 1 60); do
				code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X POST -H 'Content-Type: application/json' \
					--data-binary "{\"id\":\"r$1-w$w-$i\",\"region\":\"eu\",\"cpu_capacity\":1000,\"memory_mb\":1000}" \
					"$API/v1/nodes")
				[ "$code" = 201 ] && echo "r$1-w$w-$i" >>"$T_DIR/acked.w$w"
			done
		) &
	done
	wait_jobs
	cat "$T_DIR"/acked.w* | sort >"$T_DIR/acked"
}

lattice_start r1 "${FLAGS[@]}"
for round in 1 2 3; do
	write "$round"
	lattice_stop
	pg_psql postgres "DROP DATABASE r1" >/dev/null && pg_psql postgres "CREATE DATABASE r1" >/dev/null
	lattice_start r1 "${FLAGS[@]}"
	want=$(wc -l <"$T_DIR/acked")
	for _ in $(seq 1 300); do
		[ "$(pg_psql r1 'SELECT count(*) FROM nodes')" -ge "$want" ] && break
		sleep 0.1
	done
	pg_psql r1 "SELECT id FROM nodes ORDER BY id" | sort >"$T_DIR/have"
	missing=$(comm -23 "$T_DIR/acked" "$T_DIR/have" | wc -l)
	is "$missing" 0 "round $round: every one of $want acknowledged writes is there after a restart (rebuilt from snapshot + log)"
	ok "$(grep -c 'raft snapshot taken' "$T_DIR/r1/latticed.log" | awk '{exit !($1 > 0)}'; echo $?)" \
		"... snapshots were taken meanwhile"
	req POST /v1/nodes "{\"id\":\"after-$round\",\"region\":\"eu\",\"cpu_capacity\":1000,\"memory_mb\":1000}"
	is "$STATUS" 201 "... and the replica takes writes"
	echo "after-$round" >>"$T_DIR/acked.w1"
done

done_testing
