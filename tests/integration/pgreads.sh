#!/usr/bin/env bash
# pgreads.sh — the REST API's PostgreSQL reads run on threads of their own
# (--pg-read-threads), never on an API worker: with every read thread stuck
# behind a lock, /healthz, /metrics and the reads the applied model answers
# (nodes, actors) still answer at once, /readyz says why it is not ready, and
# the stuck reads all answer once the lock goes; --pg-read-timeout-ms cancels a
# read PostgreSQL does not answer (503 database_unavailable); a replica stops
# cleanly with reads queued.
. "$(dirname "$0")/lib.sh"
plan 16
lib_init

metric() { # NAME: its value in /metrics ("" when absent)
	curl -s --max-time 15 "$API/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
wait_metric() { # NAME VALUE: until /metrics shows it (30 s guard)
	local i
	for i in $(seq 1 300); do
		[ "$(metric "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

lattice_start r1 --http-threads 2 --pg-read-threads 2 --pg-read-timeout-ms 0
req POST /v1/nodes '{"id":"n1","region":"eu","cpu_capacity":1000,"memory_mb":1024}'
s1=$STATUS
req POST /v1/actors '{"id":"w","module":"m","cpu_required":10,"memory_required_mb":10}'
s2=$STATUS
req GET /v1/commands
ok "$([ "$s1$s2$STATUS" = 201201200 ] && [ "$(jqr '.items | length')" -ge 1 ]; echo $?)" \
	"fixtures: a node, an actor and its start command ($s1 $s2 $STATUS)"

# Six command lists wait on the lock: two on the read threads, four queued.
pg_hold r1 commands "ACCESS EXCLUSIVE"
for i in 1 2 3 4 5 6; do req_bg "c$i" GET /v1/commands; done
wait_metric lattice_api_pg_reads_running 2 && wait_metric lattice_api_pg_reads_waiting 4
ok $? "two reads run and four wait for a read thread (/metrics: running $(metric lattice_api_pg_reads_running), waiting $(metric lattice_api_pg_reads_waiting))"

# Both API workers are free: a worker that ran the query would hang here.
t0=$(now_ms)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$API/healthz")
is "$code" 200 "/healthz answers while every read thread waits ($(($(now_ms) - t0)) ms)"
req GET /v1/nodes/n1
a=$STATUS
req GET '/v1/actors?limit=10'
is "$a $STATUS $(jqr '.items[0].id')" "200 200 w" "node and actor reads (the applied model) answer too"
sleep 1.2
req GET /readyz
ok "$([ "$(err)" = "503 not_ready" ] && jqr .error.message | grep -q "PostgreSQL reads are backed up: 4 waiting"; echo $?)" \
	"/readyz: 503 not_ready, and why: $(jqr .error.message)"
n=0
for i in 1 2 3 4 5 6; do req_bg_done "c$i" && n=$((n + 1)); done
is "$n" 0 "none of the six has been answered while the lock is held"

pg_release
bad=
for i in 1 2 3 4 5 6; do
	req_bg_wait "c$i"
	[ "$STATUS" = 200 ] && [ "$(jqr '.items[0].actor_id')" = w ] || bad="$bad c$i:$STATUS"
done
is "${bad:-none}" none "once the lock goes, all six answer 200 with the command"
req GET /readyz
is "$STATUS" 200 "/readyz is ready again"
ok "$([ "$(metric lattice_api_pg_reads_waiting)" = 0 ] && [ "$(metric lattice_api_pg_reads_total)" -ge 7 ]; echo $?)" \
	"no read waits, $(metric lattice_api_pg_reads_total) reads done"

# A summary, an event page and a policy's versions go the same way.
req GET /v1/summary
s1=$STATUS
req GET '/v1/events?limit=5'
s2=$STATUS
req GET /v1/policies/none/versions
is "$s1 $s2 $(err)" "200 200 404 not_found" "summary, events and policy versions answer from the read threads"

# --pg-read-timeout-ms: a read the lock holds is cancelled.
lattice_stop
is "$LATTICED_EXIT" 0 "stopped cleanly"
lattice_start r1 --pg-read-threads 2 --pg-read-timeout-ms 500
cpus=$(nproc)
[ "$cpus" -ge 2 ] || cpus=2
grep -q "($cpus worker threads, 2 PostgreSQL read threads)" "$T_DIR/r1/latticed.log"
ok $? "--http-threads by default: one per online CPU, at least 2 ($cpus here)"
pg_hold r1 commands "ACCESS EXCLUSIVE"
t0=$(now_ms)
req GET /v1/commands
el=$(($(now_ms) - t0))
ok "$([ "$(err)" = "503 database_unavailable" ] && jqr .error.message | grep -q "statement timeout"; echo $?)" \
	"a read held past --pg-read-timeout-ms 500: $(err) after $el ms ($(jqr .error.message))"
req GET /v1/nodes/n1
is "$STATUS" 200 "the model's reads are not affected"

# Stopping with reads running and queued: they are answered, the exit is clean.
for i in 1 2 3 4 5; do req_bg "s$i" GET /v1/commands; done
wait_metric lattice_api_pg_reads_running 2
lattice_stop 60
is "$LATTICED_EXIT" 0 "SIGTERM with reads queued behind the lock: exit 0"
bad=
for i in 1 2 3 4 5; do
	req_bg_wait "s$i"
	case $STATUS in 503 | 000) ;; *) bad="$bad s$i:$STATUS" ;; esac
done
is "${bad:-none}" none "each was answered 503 (or its connection closed), none hangs"
pg_release

done_testing
