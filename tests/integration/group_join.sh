#!/usr/bin/env bash
# group_join.sh — a fourth replica joins a group of three under a stream of
# writes, after so many writes that the log it needs is gone (every replica runs
# with --snapshot-threshold 16 --snapshot-trailing 0): it is sent a snapshot,
# becomes a voter and takes writes; then it is removed while the stream goes on.
# After each step: every write the API acknowledged is in every member's
# database, every other write in all of them or in none, and the databases are
# identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 20
lib_init
group_init 3
SNAP=(--snapshot-threshold 16 --snapshot-trailing 0)
for i in 1 2 3; do group_start "$i" --bootstrap --members "$MEMBERS" "${SNAP[@]}"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
group_leader >/dev/null || bail "no leader"

acks_by() { group_writes_since "$1" | awk -v r="$2" '$3 == 201 && $2 == r' | wc -l; }
wait_acks() { # LINE N I...: until each of I... acknowledged N writes after line LINE (guard 120 s)
	local from=$1 n=$2 t i all
	shift 2
	for t in $(seq 1 600); do
		all=1
		for i in "$@"; do [ "$(acks_by "$from" "$i")" -ge "$n" ] || { all=; break; }; done
		[ -n "$all" ] && return 0
		sleep 0.2
	done
	diag "after 120 s: $(for i in "$@"; do printf 'replica %s acknowledged %s; ' "$i" "$(acks_by "$from" "$i")"; done)"
	diag "answers since: $(group_writes_since "$from" | group_writes_summary)"
	return 1
}
# check NAME I...: the writes so far against the databases of I..., the stream
# stopped meanwhile. With replica 4, which was sent a snapshot: its events table
# starts after the snapshot (the history folded into it is not in the snapshot,
# docs/architecture.md), so the events are compared from there, and the whole
# databases' identity is a TODO point.
check() {
	local name=$1
	shift
	group_writer_stop
	group_settle "$@"
	group_check_writes "$@"
	ok $? "$name: every acknowledged write is in the databases of replicas $*, every other one in all or none ($(group_writes_count) writes: $(group_writes_summary <"$T_DIR/writes"))"
	if [ "${*: -1}" != 4 ]; then
		group_same_db "$@"
		ok $? "$name: the databases of replicas $* are identical"
		return
	fi
	GROUP_TABLES=${GROUP_ALL_TABLES% events} group_same_db "$@"
	ok $? "$name: the databases of replicas $* are identical but for the events table"
	local s
	s=$(grep -o 'raft snapshot restored at index [0-9]*' "$T_DIR/r4/latticed.log" | head -1 | grep -o '[0-9]*$')
	diff <(group_psql 1 "SELECT * FROM events WHERE raft_index > ${s:-0} ORDER BY seq") \
		<(group_psql 4 "SELECT * FROM events ORDER BY seq") >"$T_DIR/events.diff"
	local rc=$?
	ok $rc "$name: replica 4's events are replica 1's after the snapshot it was sent (index $s)"
	[ $rc = 0 ] || head -5 "$T_DIR/events.diff" | sed 's/^/#   /'
	group_same_db "$@" >/dev/null
	todo $? "$name: the databases of replicas $* are identical, events included" \
		"a replica sent a snapshot lacks the events before it"
}
snapshots() { curl -s --max-time 5 "$(group_api "$1")/metrics" | awk '$1 == "lattice_raft_snapshots_total" {print $2}'; }
members_view() { greq "$1" GET /v1/cluster; jqr '[.members[] | "\(.id) \(.role) \(.reachable) \(.api_url)"] | join(",")'; }

group_writer_start 1 2 3
wait_acks 0 15 1 2 3
ok $? "a stream of writes spread over the three replicas is acknowledged by each"
L=$(group_leader)
ok "$([ "$(snapshots "$L")" -ge 1 ] 2>/dev/null; echo $?)" "the leader ($L) has taken snapshots ($(snapshots "$L")): the log's start is gone"

# ---- a fourth replica joins --------------------------------------------------------------

F=$((L % 3 + 1)) # it asks a follower, which sends the request on to the leader
group_dir_new 4
group_start 4 --join "$(group_api "$F")" "${SNAP[@]}"
group_wait_ready 4
ok $? "a fourth replica started with --join $(group_api "$F") (a follower) becomes ready"
grep -q "raft snapshot restored at index" "$T_DIR/r4/latticed.log"
ok $? "... it was sent a snapshot: $(grep -o 'raft snapshot restored at index [0-9]*' "$T_DIR/r4/latticed.log" | head -1)"
want="1 voter true $(group_api 1),2 voter true $(group_api 2),3 voter true $(group_api 3),4 voter true $(group_api 4)"
L=$(group_leader)
for t in $(seq 1 300); do # the leader polls its members every second
	[ "$(members_view "$L")" = "$want" ] && break
	sleep 0.2
done
is "$(members_view "$L")" "$want" "GET /v1/cluster on the leader: the fourth is a voter, reachable, with its api_url"
check "joined" 1 2 3 4

group_writer_start 1 2 3 4
wait_acks "$(group_writes_count)" 5 1 2 3 4
ok $? "the stream, now spread over the four replicas, is acknowledged by each"
check "four replicas" 1 2 3 4

# ---- it is removed -----------------------------------------------------------------------

group_writer_start 1 2 3 4
wait_acks "$(group_writes_count)" 3 1 2 3 4
greq "$F" DELETE /v1/cluster/members/4
is "$STATUS $(jqr '[.members[].id] | join(",")')" "200 1,2,3" \
	"DELETE /v1/cluster/members/4 sent to a follower: the leader removes it, three members left"
from=$(group_writes_count)
wait_acks "$from" 5 1 2 3
ok $? "the three go on acknowledging writes"
greq 4 POST /v1/nodes '{"id":"after-removal","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
diag "a write sent to the removed replica: $(err) $(jqr .error.message)"
echo "after-removal 4 $STATUS - $(jqr '.error.code // "-"')" >>"$T_DIR/writes" # checked with the others
L=$(group_leader 1 2 3) || bail "no leader"
want="1 voter true $(group_api 1),2 voter true $(group_api 2),3 voter true $(group_api 3)"
for t in $(seq 1 300); do
	[ "$(members_view "$L")" = "$want" ] && break
	sleep 0.2
done
is "$(members_view "$L")" "$want" "GET /v1/cluster on the leader lists the three members left"
check "removed" 1 2 3
group_term 4
is "$LIB_ST" 0 "the removed replica stops with SIGTERM, exit 0"

done_testing
