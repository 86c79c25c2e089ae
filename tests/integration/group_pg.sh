#!/usr/bin/env bash
# group_pg.sh — three replicas, each with a PostgreSQL server of its own
# (group_pg_own), under a stream of writes spread over all of them; one
# replica's PostgreSQL at a time goes away while the others' stay up:
#  1. the leader's PostgreSQL is restarted (stopped cleanly, started at once);
#  2. the leader's PostgreSQL is killed (-9: postmaster and every backend at
#     once, so what an asynchronous commit left in its buffers is lost): the
#     leader hands leadership to another replica, the group goes on taking
#     writes on all three replicas; then it is started again;
#  3. a follower's PostgreSQL is killed: the others go on acknowledging writes
#     meanwhile; it is started again.
# After each: every write the API acknowledged is in every replica's database,
# every other write is in all of them or in none, and the databases are identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 18
lib_init
group_init 3
for i in 1 2 3; do group_pg_own "$i"; done
OPTS=(--bootstrap --members "$MEMBERS" --write-timeout-ms 30000)
for i in 1 2 3; do group_start "$i" "${OPTS[@]}"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
group_leader >/dev/null || bail "no leader"

group_writer_start 1 2 3
group_wait_acks 0 5 1 2 3
ok $? "a stream of writes spread over the three replicas is acknowledged by each"

# ---- 1. the leader's PostgreSQL restarted ------------------------------------------------

L=$(group_leader)
group_pg "$L" pg_restart
ok $? "the leader's ($L) PostgreSQL stopped and started again"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... the three acknowledge writes again"
group_check "leader's PostgreSQL restarted" 1 2 3

# ---- 2. the leader's PostgreSQL killed ------------------------------------------------------

group_writer_start 1 2 3
L=$(group_leader)
group_pg "$L" pg_kill
# The leader steps aside after 2 s without its PostgreSQL (docs/operations.md).
for _ in $(seq 1 300); do
	N=$(group_leader_of "$L")
	[ -n "$N" ] && [ "$N" != "$L" ] && break
	sleep 0.2
done
ok "$([ -n "$N" ] && [ "$N" != "$L" ] && [ "$(group_leader)" = "$N" ]; echo $?)" \
	"the leader's ($L) PostgreSQL killed (-9): it hands leadership to another replica (${N:-none})"
grep -q "leader unhealthy (.*): handing leadership to server $N" "$T_DIR/r$L/latticed.log"
ok $? "... and says so: $(grep -o 'leader unhealthy (.*): handing leadership to server [0-9]*' "$T_DIR/r$L/latticed.log" | tail -1)"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "while its PostgreSQL is down, the three acknowledge writes (replica $L's are sent on to the new leader)"
group_pg "$L" pg_ctl_start
ok $? "its PostgreSQL is started again"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... the three acknowledge writes"
group_check "leader's PostgreSQL killed" 1 2 3

# ---- 3. a follower's PostgreSQL killed ---------------------------------------------------

group_writer_start 1 2 3
L=$(group_leader)
F=$((L % 3 + 1))
A=$((F % 3 + 1))
group_pg "$F" pg_kill
from=$(group_writes_count)
group_wait_acks "$from" 5 "$L" "$A"
ok $? "follower $F's PostgreSQL killed (-9): replicas $L and $A go on acknowledging writes"
group_pg "$F" pg_ctl_start
ok $? "... it is started again"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... the three acknowledge writes again"
group_check "follower's PostgreSQL killed" 1 2 3

# Through req, so these answers are also checked against api/openapi.yaml.
L=$(group_leader)
agree=
for i in 1 2 3; do
	greq "$i" GET /v1/cluster
	agree+="$STATUS:$(jqr .leader.id) "
done
is "$agree" "200:$L 200:$L 200:$L " "afterwards each replica's GET /v1/cluster names the same leader ($L)"

done_testing
