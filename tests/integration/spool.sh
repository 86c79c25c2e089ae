#!/usr/bin/env bash
# spool.sh — a replica whose PostgreSQL is away does not queue without bound
# (issue 7): with --projection-queue-mb 1, the entries past 1 MiB go to
# DATA_DIR/projection.spool, /metrics shows the queue and the spool, writes still
# commit (503 projection_lagging, as before), and once PostgreSQL is back every
# committed entry arrives, in order, and the spool file is gone.
. "$(dirname "$0")/lib.sh"
plan 16
lib_init

N=100 # writes of some 20 KB of projection each (spooled; more in memory): twice the bound
metric() { curl -s "$API/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
spool_file() { echo "$T_DIR/r1/data/projection.spool"; }
file_size() { stat -c %s "$1" 2>/dev/null || echo none; }

lattice_start r1 --projection-queue-mb 1 --write-timeout-ms 300
req POST /v1/nodes '{"id":"n1","region":"eu","cpu_capacity":100000000,"memory_mb":100000000}'
is "$STATUS" 201 "a node to place on"
is "$(metric lattice_projection_spool_bytes) $(file_size "$(spool_file)")" "0 none" "no spool while PostgreSQL keeps up"

pg_stop
for _ in $(seq 1 100); do [ "$(metric lattice_postgres_up)" = 0 ] && break; sleep 0.1; done
is "$(metric lattice_postgres_up)" 0 "PostgreSQL stopped; the writer noticed"
rss_before=$(awk '/^VmRSS/ { print $2 }' "/proc/$LATTICED_PID/status")

# actor BIG-i with 300 replicas: its placements alone are some 30 KB of projection.
write_big() {
	curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 -X POST -H 'Content-Type: application/json' \
		--data-binary "{\"id\":\"big-$1\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,\"replicas\":300}" \
		"$API/v1/actors"
}
export -f write_big
export API
seq 1 $N | xargs -P 4 -I{} bash -c 'write_big {}' >"$T_DIR/codes"
is "$(sort "$T_DIR/codes" | uniq -c | awk '{ print $2 "x" $1 }' | paste -sd' ')" "503x$N" \
	"all $N writes answered 503 projection_lagging (committed, not yet in PostgreSQL)"
req GET /v1/cluster
applied=$(jqr .applied_index)
ok "$([ "$applied" -gt "$(jqr .projected_index)" ]; echo $?)" "the writes are committed and applied (applied_index $applied, projected_index $(jqr .projected_index))"

queue=$(metric lattice_projection_queue_bytes)
spool=$(metric lattice_projection_spool_bytes)
ok "$([ "$queue" -gt 0 ] && [ "$queue" -le 1048576 ]; echo $?)" "the queue in memory stays under the 1 MiB bound ($queue bytes)"
ok "$([ "$spool" -gt 1048576 ]; echo $?)" "the rest is in the spool ($spool bytes)"
is "$(file_size "$(spool_file)")" "$spool" "lattice_projection_spool_bytes is the spool file's size"
ok "$([ "$(metric lattice_projection_spooled_total)" -gt $((N / 2)) ]; echo $?)" \
	"most entries were spooled ($(metric lattice_projection_spooled_total) of $N)"
rss_after=$(awk '/^VmRSS/ { print $2 }' "/proc/$LATTICED_PID/status")
diag "RSS ${rss_before} kB before the writes, ${rss_after} kB after (the model holds the actors too)"
req GET /readyz
is "$(err)" "503 not_ready" "not ready while PostgreSQL is away"

pg_ctl_start || bail "PostgreSQL did not come back"
for _ in $(seq 1 300); do
	req GET /v1/cluster
	[ "$(jqr .projected_index)" -ge "$applied" ] 2>/dev/null && break
	sleep 0.1
done
ok "$([ "$(jqr .projected_index)" -ge "$applied" ]; echo $?)" "PostgreSQL caught up with every committed entry"
is "$(pg_psql r1 "SELECT count(*) FROM actors WHERE id LIKE 'big-%'") $(pg_psql r1 "SELECT count(*) FROM placements WHERE actor_id LIKE 'big-%'")" \
	"$N $((N * 300))" "every actor and placement arrived"
is "$(pg_psql r1 "SELECT count(*) = max(seq) FROM events") $(pg_psql r1 "SELECT count(*) FROM (SELECT raft_index, lag(raft_index) OVER (ORDER BY seq) AS prev FROM events) t WHERE raft_index <= prev")" \
	"t 0" "events numbered without gaps, in log order"
for _ in $(seq 1 100); do [ "$(file_size "$(spool_file)")" = none ] && break; sleep 0.1; done
is "$(file_size "$(spool_file)") $(metric lattice_projection_spool_bytes)" "none 0" "the spool file is gone"
for _ in $(seq 1 100); do req GET /readyz; [ "$STATUS" = 200 ] && break; sleep 0.1; done
is "$STATUS" 200 "ready again"
grep -q "spooling batches from entry" "$T_DIR/r1/latticed.log"
ok $? "the log says when spooling began"

done_testing
