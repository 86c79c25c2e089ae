#!/usr/bin/env bash
# group_faults.sh — three replicas under a stream of writes spread over all of
# them (group_writer_start: client-chosen ids, every answer recorded), through
# failures:
#  1. kill -9 of the leader: the other two elect a leader and go on taking writes;
#     it restarts with the same command line and catches up;
#  2. kill -9 of a follower: the same;
#  3. two replicas stopped: the third refuses writes with 503 no_leader within
#     --leader-wait-ms, not the write timeout; both restart and the group goes on;
#  4. the same with the leader left alone: 503 unavailable for what it took
#     while it still thought it led, then 503 no_leader;
#  5. the leader dies after committing a write a follower passed on, before
#     answering (group_resend.sh: it must not be passed on again).
# After each failure, and again once the replica is back: every write the API
# acknowledged (201) is in every live replica's database, every other write
# (503, no answer) is in all of them or in none, and the databases are identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 37
lib_init
group_init 3
OPTS=(--bootstrap --members "$MEMBERS" --write-timeout-ms 30000 --leader-wait-ms 2000)
for i in 1 2 3; do group_start "$i" "${OPTS[@]}"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
group_leader >/dev/null || bail "no leader"


group_writer_start 1 2 3
group_wait_acks 0 5 1 2 3
ok $? "a stream of writes spread over the three replicas is acknowledged by each"

# ---- 1. kill -9 the leader -------------------------------------------------------------

L=$(group_leader)
group_kill "$L"
read -r A B <<<"$(group_others "$L")"
from=$(group_writes_count)
group_wait_acks "$from" 10 "$A" "$B"
ok $? "leader $L killed (-9): replicas $A and $B go on acknowledging writes"
L2=$(group_leader)
ok "$([ -n "$L2" ] && [ "$L2" != "$L" ]; echo $?)" "... under a new leader ($L2)"
group_check "leader killed" "$A" "$B"
group_writer_start 1 2 3
group_start "$L" "${OPTS[@]}"
group_wait_ready "$L"
ok $? "the killed leader restarts with the same command line"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... and the three acknowledge writes again"
group_check "old leader back" 1 2 3

# ---- 2. kill -9 a follower ------------------------------------------------------------------

group_writer_start 1 2 3
L=$(group_leader)
read -r F A <<<"$(group_others "$L")"
group_kill "$F"
from=$(group_writes_count)
group_wait_acks "$from" 10 "$L" "$A"
ok $? "follower $F killed (-9): replicas $L and $A go on acknowledging writes"
is "$(group_leader)" "$L" "... under the same leader ($L)"
group_check "follower killed" "$L" "$A"
group_writer_start 1 2 3
group_start "$F" "${OPTS[@]}"
group_wait_ready "$F"
ok $? "the killed follower restarts"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... and the three acknowledge writes again"
group_check "follower back" 1 2 3

# ---- 3. two replicas stopped ----------------------------------------------------------------

# The one left is a follower here (4. leaves the leader alone).
group_writer_start 1 2 3
L=$(group_leader)
read -r LONE S <<<"$(group_others "$L")"
group_term "$L" "$S" # both at once: replica $LONE is left a follower
# Every line after the next one is a write sent once both had stopped (the next
# one may have been on its way before).
from=$(($(group_writes_count) + 1))
for _ in $(seq 1 600); do # guard: until the stream tried the lone replica 3 times
	[ "$(group_writes_since "$from" | awk -v r="$LONE" '$2 == r' | wc -l)" -ge 3 ] && break
	sleep 0.2
done
group_writer_stop
lone_answers=$(group_writes_since "$from" | awk -v r="$LONE" '$2 == r')
t0=$(now_ms)
greq "$LONE" POST /v1/nodes '{"id":"lone","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
ms=$(($(now_ms) - t0))
is "$(err)" "503 no_leader" "replicas $L and $S stopped: a write to replica $LONE is refused, 503 no_leader"
diag "answered in $ms ms (--leader-wait-ms 2000, --write-timeout-ms 30000)"
echo "lone $LONE $STATUS - $(jqr .error.code)" >>"$T_DIR/writes" # checked with the others
is "$(header Retry-After)" 1 "... with Retry-After: 1"
ok "$([[ "$(jqr .error.message)" == *"within 2000 ms"* ]]; echo $?)" \
	"... after --leader-wait-ms, not the write timeout: $(jqr .error.message)"
is "$(awk '!($3 == 503 && $5 == "no_leader")' <<<"$lone_answers")" "" \
	"the stream's writes to replica $LONE meanwhile were all refused, 503 no_leader ($(group_writes_summary <<<"$lone_answers"))"
# Alone, it may not have heard of the last commits; what it shows must be whole.
P=$(group_field "$LONE" .projected_index)
awk -v p="$P" '$3 == 201 && $4 <= p {print $1}' "$T_DIR/writes" | sort >"$T_DIR/lone.want"
group_psql "$LONE" "SELECT id FROM nodes" | sort >"$T_DIR/lone.have"
is "$(comm -23 "$T_DIR/lone.want" "$T_DIR/lone.have" | head -10 | tr '\n' ' ')" "" \
	"replica $LONE's database has every acknowledged write up to its projected index ($P; $(wc -l <"$T_DIR/lone.want") writes)"
group_start "$L" "${OPTS[@]}"
group_start "$S" "${OPTS[@]}"
group_wait_ready "$L" && group_wait_ready "$S"
ok $? "both restart"
group_writer_start 1 2 3
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... and the three acknowledge writes again"
group_check "two stopped and back" 1 2 3

# ---- 4. the two followers stopped ---------------------------------------------------------

# The leader left alone loses its leadership within an election timeout: what it
# took meanwhile is 503 unavailable (it may still be committed later, once the
# others are back), then 503 no_leader.
group_writer_start 1 2 3
LONE=$(group_leader)
read -r A B <<<"$(group_others "$LONE")"
group_term "$A" "$B"
from=$(($(group_writes_count) + 1))
for _ in $(seq 1 600); do # guard: until the stream tried the lone replica 3 times
	[ "$(group_writes_since "$from" | awk -v r="$LONE" '$2 == r' | wc -l)" -ge 3 ] && break
	sleep 0.2
done
group_writer_stop
lone_answers=$(group_writes_since "$from" | awk -v r="$LONE" '$2 == r')
is "$(awk '$3 != 503 || ($5 != "no_leader" && $5 != "unavailable")' <<<"$lone_answers")" "" \
	"replicas $A and $B stopped: the stream's writes to the leader ($LONE) left alone are refused, 503 unavailable or no_leader ($(group_writes_summary <<<"$lone_answers"))"
greq "$LONE" POST /v1/nodes '{"id":"lone2","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
is "$(err)" "503 no_leader" "... then 503 no_leader, before the write timeout: $(jqr .error.message)"
echo "lone2 $LONE $STATUS - $(jqr .error.code)" >>"$T_DIR/writes"
group_start "$A" "${OPTS[@]}"
group_start "$B" "${OPTS[@]}"
group_wait_ready "$A" && group_wait_ready "$B"
ok $? "both restart"
group_writer_start 1 2 3
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... and the three acknowledge writes again"
group_check "two followers stopped and back" 1 2 3

# ---- 5. the leader dies between committing a write and answering it -----------------------

# A write sent to a follower is passed on to the leader; the leader commits it
# (the follower's database shows it) but its own PostgreSQL is held back
# (pg_hold), so it has not answered when it is killed. The write is an actor
# without an id, so the server picks one. The right answer is 503 unavailable
# (may or may not have been applied) and one actor. Today the follower sends it
# again when its kept-alive connection fails before any answer, and then it is
# 201 and two actors when the new leader takes it, or 503 unavailable when the
# dying leader's port still took the second connection: group_resend.sh shows
# the bug deterministically; here, what must hold either way.
L=$(group_leader)
F=$((L % 3 + 1))
greq "$F" POST /v1/nodes '{"id":"warm","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
is "$STATUS" 201 "a write to follower $F, passed on to the leader ($L) on a connection kept open"
pg_hold "r$L"
API=$(group_api "$F") req_bg once POST /v1/actors '{"module":"once","cpu_required":10,"memory_required_mb":1}'
for _ in $(seq 1 300); do # guard 60 s: until the follower's database shows it
	[ "$(group_psql "$F" "SELECT count(*) FROM actors WHERE module = 'once'")" = 1 ] && break
	sleep 0.2
done
is "$(group_psql "$F" "SELECT count(*) FROM actors WHERE module = 'once'")" 1 \
	"an actor without an id sent to the follower is committed, the leader's PostgreSQL held back"
req_bg_done once
ok "$([ $? != 0 ]; echo $?)" "... the leader has not answered it"
group_kill "$L"
pg_release
req_bg_wait once
answer="$(err) $(jqr .id)"
group_start "$L" "${OPTS[@]}"
group_wait_ready "$L" || bail "replica $L did not restart"
group_settle 1 2 3
ids=$(group_psql 1 "SELECT id FROM actors WHERE module = 'once'" | tr '\n' ' ')
diag "the leader killed before answering: the client got $answer; actors: $ids"
case "$answer" in
"503 unavailable"*) ok 0 "the leader killed (-9) before answering: the client gets 503 unavailable" ;;
"201 "*) ok "$([[ " $ids" == *" ${answer#201 } "* ]]; echo $?)" \
	"the leader killed (-9) before answering: the client's 201 names an actor every replica has (sent again: group_resend.sh)" ;;
*) ok 1 "the leader killed (-9) before answering: the client gets 503 unavailable (got $answer)" ;;
esac
group_same_db 1 2 3
ok $? "the databases of replicas 1 2 3 are identical"

done_testing
