#!/usr/bin/env bash
# ready.sh — what a client can rely on around starts and PostgreSQL restarts:
# ?consistent=true right after a start (entries without rows count as projected),
# consistent reads confirmed through the log with shared barriers, no failed read
# once /readyz is 200 after PostgreSQL restarts, /readyz's indexes, and one
# latticed per data dir (issue 6 items 5 and 6).
. "$(dirname "$0")/lib.sh"
plan 40
# PostgreSQL on TCP as well: a connection over TCP learns that the server went
# away only when it reads, which is where stale reader connections bit.
PG_PORT=$(free_port)
PG_LISTEN=127.0.0.1
lib_init

node() { printf '{"id":"%s","region":"r","cpu_capacity":1000,"memory_mb":1000}' "$1"; }
commit_index() { req GET /v1/cluster; jqr .commit_index; }

# ---- consistent reads around starts ----------------------------------------------------------
lattice_start c1
req GET '/v1/nodes?consistent=true'
is "$STATUS" 200 "a consistent read on a fresh replica, before any write: 200"
idx=$(header X-Lattice-Index)
ci=$(commit_index)
ok "$([ "$idx" -ge 2 ] && echo 0 || echo 1)" "... reflecting at least the start-up entries (X-Lattice-Index $idx)"
req GET /readyz
is "$(jqr '.projected_index == .applied_index')" true "/readyz: entries without rows count as projected"

for i in 1 2 3; do req POST /v1/nodes "$(node "n$i")"; done
w=$(header X-Lattice-Index)
req GET '/v1/nodes?consistent=true'
is "$STATUS $(jqr '.items | length')" "200 3" "a consistent read sees every write before it"
ok "$([ "$(header X-Lattice-Index)" -ge "$w" ] && echo 0 || echo 1)" "... at an index at or past the last write's"

before=$(commit_index)
req GET '/v1/nodes/n1?consistent=true'
is "$STATUS" 200 "a consistent GET of one node"
after=$(commit_index)
ok "$([ "$after" -gt "$before" ] && echo 0 || echo 1)" \
	"it confirmed leadership through the log: a barrier was appended ($before -> $after)"
ok "$([ "$(header X-Lattice-Index)" -gt "$before" ] && echo 0 || echo 1)" "... and the read reflects that barrier"

# Reads waiting at the same moment share a barrier. The 60 clients start
# together (each waits for a gate file), so a slow machine spawning them one by
# one does not turn them into 60 reads in a row.
before=$(commit_index)
for i in $(seq 1 60); do
	(while [ ! -e "$T_DIR/cr.gate" ]; do sleep 0.01; done
	 curl -s -o "$T_DIR/cr.$i" -w '%{http_code}\n' "$API/v1/nodes?consistent=true" >>"$T_DIR/cr.codes") &
done
sleep 0.5
: >"$T_DIR/cr.gate"
wait_jobs
after=$(commit_index)
is "$(sort "$T_DIR/cr.codes" | uniq -c | awk '{print $1" "$2}')" "60 200" "60 concurrent consistent reads: all 200"
ok "$([ $((after - before)) -ge 1 ] && [ $((after - before)) -lt 60 ] && echo 0 || echo 1)" \
	"... sharing barriers: $((after - before)) entries for 60 reads"
is "$(cat "$T_DIR"/cr.[0-9]* | jq -s 'map(.items | length) | unique | join(",")' -r)" 3 "... each sees all 3 nodes"

req GET '/v1/nodes?consistent=true&min_index=999999'
is "$STATUS $(jqr .error.code)" "503 projection_lagging" "consistent=true with a min_index in the future: bounded 503"

lattice_stop
is "$LATTICED_EXIT" 0 "SIGTERM: exit 0"
lattice_start c1
req GET '/v1/nodes?consistent=true'
is "$STATUS $(jqr '.items | length')" "200 3" "right after a restart, before any write: a consistent read is 200"
req GET /readyz
is "$STATUS $(jqr '.projected_index == .applied_index')" "200 true" "... and /readyz shows nothing left to project"

# ---- /readyz's indexes under writes ----------------------------------------------------------
(
	for i in $(seq 1 300); do
		curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$(node "w$i")" "$API/v1/nodes"
	done
) &
writer=$!
bad=0 seen=0
while kill -0 "$writer" 2>/dev/null; do
	b=$(curl -s "$API/readyz")
	seen=$((seen + 1))
	[ "$(printf '%s' "$b" | jq '.projected_index <= .applied_index')" = true ] || bad=$((bad + 1))
done
wait "$writer"
is "$bad" 0 "/readyz never shows projected_index above applied_index ($seen samples under writes)"

# ---- PostgreSQL restarts: no read fails once /readyz is 200 -----------------------------------
# reads N: N parallel reads of a node and a list (every API thread gets some);
# prints how many were not 200.
reads() {
	local n=$1 i
	: >"$T_DIR/reads.codes"
	for i in $(seq 1 "$n"); do
		curl -s -o /dev/null -w '%{http_code}\n' "$API/v1/nodes/n1" >>"$T_DIR/reads.codes" &
		curl -s -o /dev/null -w '%{http_code}\n' "$API/v1/nodes?limit=2" >>"$T_DIR/reads.codes" &
	done
	wait_jobs
	grep -vc '^200$' "$T_DIR/reads.codes"
}
# restarts WHAT: the checks around PostgreSQL restarts for the running replica.
restarts() {
	local what=$1
	is "$(reads 40)" 0 "$what: every API thread has read once (their connections are open)"
	pg_stop
	req GET /readyz
	is "$STATUS $(jqr .error.code)" "503 not_ready" "$what: PostgreSQL down: /readyz is 503"
	ok "$(jqr .error.message | grep -q PostgreSQL; echo $?)" "$what: ... naming PostgreSQL"
	pg_ctl_start || bail "PostgreSQL did not restart"
	wait_ready
	is "$(reads 60)" 0 "$what: PostgreSQL restarted: once /readyz is 200, no read fails (120 reads)"
	req POST /v1/nodes "$(node "after-restart-$what")"
	is "$STATUS" 201 "$what: ... and writes go on"
	pg_kill
	pg_ctl_start || bail "PostgreSQL did not restart after kill -9"
	wait_ready
	is "$(reads 60)" 0 "$what: PostgreSQL killed and restarted: once /readyz is 200, no read fails"
	# A quick restart the writer may not even notice (it probes every second).
	pg_restart || bail "PostgreSQL did not restart"
	wait_ready
	is "$(reads 60)" 0 "$what: a quick PostgreSQL restart: no read fails once /readyz is 200"
}
restarts unix
req GET '/v1/nodes?consistent=true&limit=1000'
is "$STATUS $(jqr '[.items[].id] | index("after-restart-unix") != null')" "200 true" "... consistent reads too"
lattice_stop

# The same replica over TCP.
echo "host=127.0.0.1 port=$PG_PORT user=postgres dbname=c1" >"$T_DIR/c1/conninfo"
lattice_start c1
req GET /v1/nodes/n1
is "$STATUS" 200 "over TCP: reads"
restarts tcp

# ---- one latticed per data dir ------------------------------------------------------------------
p2=$(free_port) r2=$(free_port)
"$LATTICED" --listen "127.0.0.1:$p2" --raft-address "127.0.0.1:$r2" --id 1 --bootstrap \
	--data-dir "$T_DIR/c1/data" --pg "$(cat "$T_DIR/c1/conninfo")" --schema-dir "$SCHEMA_DIR" \
	>"$T_DIR/second.log" 2>&1 &
second=$!
code=0
for _ in $(seq 1 100); do kill -0 "$second" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$second" 2>/dev/null; then kill -9 "$second"; code=running; else wait "$second"; code=$?; fi
is "$code" 1 "a second latticed on the same data dir exits with status 1"
ok "$(grep -q "is in use by another latticed (pid $LATTICED_PID)" "$T_DIR/second.log"; echo $?)" \
	"... saying the data dir is in use, by which pid"
req GET /v1/nodes/n1
is "$STATUS" 200 "the first one still serves"
req POST /v1/nodes "$(node after-second)"
is "$STATUS" 201 "... and takes writes"
is "$(pg_psql c1 "SELECT count(*) FROM nodes WHERE id = 'after-second'")" 1 "... into its database (not reset by the second)"
lattice_stop
is "$LATTICED_EXIT" 0 "SIGTERM: exit 0"
lattice_start c1
req GET /v1/nodes/after-second
is "$STATUS" 200 "the lock died with the process: latticed starts again on that data dir"
lattice_stop
is "$LATTICED_EXIT" 0 "SIGTERM: exit 0"
done_testing
