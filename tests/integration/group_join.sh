#!/usr/bin/env bash
# group_join.sh — a fourth replica joins a group of three under a stream of
# writes, after so many writes that the log it needs is gone (every replica runs
# with --snapshot-threshold 16 --snapshot-trailing 0), while one of the three is
# down: it is sent a snapshot, becomes a voter and takes writes. Leadership is
# handed to it; the replica that was down comes back, learns the configuration it
# missed and follows it. Then the fourth, leading, is removed while the stream
# goes on.
# After each step: every write the API acknowledged is in every member's
# database, every other write in all of them or in none, and the databases are
# identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 30
lib_init
group_init 3
SNAP=(--snapshot-threshold 16 --snapshot-trailing 0)
for i in 1 2 3; do group_start "$i" --bootstrap --members "$MEMBERS" "${SNAP[@]}"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
group_leader >/dev/null || bail "no leader"

# check NAME I...: the writes so far against the databases of I..., the stream
# stopped meanwhile. A replica whose database was built from a snapshot (the
# fourth; one that was down while the log moved past it) lacks the events folded
# into that snapshot (docs/architecture.md), so the events are compared apart:
# no replica has an event the others disagree with, and the whole databases'
# identity is a TODO point.
check() {
	local name=$1 i ref="" n max=-1
	shift
	group_writer_stop
	group_settle "$@"
	group_check_writes "$@"
	ok $? "$name: every acknowledged write is in the databases of replicas $*, every other one in all or none ($(group_writes_count) writes: $(group_writes_summary <"$T_DIR/writes"))"
	GROUP_TABLES=${GROUP_ALL_TABLES% events} group_same_db "$@"
	ok $? "$name: the databases of replicas $* are identical but for the events table"
	for i in "$@"; do
		group_psql "$i" "SELECT * FROM events" | sort >"$T_DIR/events.$i"
		n=$(wc -l <"$T_DIR/events.$i")
		[ "$n" -gt "$max" ] && max=$n ref=$i
	done
	local bad=
	for i in "$@"; do
		if [ -n "$(comm -23 "$T_DIR/events.$i" "$T_DIR/events.$ref")" ]; then
			bad=1
			diag "replica $i has events replica $ref has not:"
			comm -23 "$T_DIR/events.$i" "$T_DIR/events.$ref" | head -5 | sed 's/^/#   /'
		fi
	done
	ok "$([ -z "$bad" ]; echo $?)" "$name: every replica's events are replica $ref's ($max), some without those folded into a snapshot"
	# A database built from a snapshot lacks the events folded into it (it may
	# keep older ones from before, so the hole can be in the middle): reading
	# across a hole is 410 events_compacted, never a silent gap. Every other table
	# is the same.
	local holes= bad=
	for i in "$@"; do
		local h
		h=$(group_psql "$i" "SELECT min(seq) FROM events e WHERE seq < (SELECT max(seq) FROM events) AND NOT EXISTS (SELECT 1 FROM events f WHERE f.seq = e.seq + 1)")
		[ -n "$h" ] || continue
		holes+=" $i:after-$h"
		greq "$i" GET "/v1/events?since=$h"
		[ "$(err)" = "410 events_compacted" ] || bad+=" $i($(err))"
	done
	ok "$([ -z "$bad" ]; echo $?)" "$name: reading events across a replica's hole is 410 events_compacted${holes:+ (holes:$holes)}${bad:+; not on$bad}"
	GROUP_TABLES="${GROUP_ALL_TABLES% events}" group_same_db "$@" >/dev/null
	ok $? "$name: the databases of replicas $* are identical, table by table (events as above)"
}
snapshots() { curl -s --max-time 5 "$(group_api "$1")/metrics" | awk '$1 == "lattice_raft_snapshots_total" {print $2}'; }
members_view() { greq "$1" GET /v1/cluster; jqr '[.members[] | "\(.id) \(.role) \(.reachable) \(.api_url)"] | join(",")'; }

# wait_view I WANT: until replica I's members_view is WANT (guard 60 s: the
# leader polls its members every second); prints the last view.
wait_view() {
	local t v
	for _ in $(seq 1 300); do
		v=$(members_view "$1")
		[ "$v" = "$2" ] && break
		sleep 0.2
	done
	echo "$v"
}

group_writer_start 1 2 3
group_wait_acks 0 15 1 2 3
ok $? "a stream of writes spread over the three replicas is acknowledged by each"
L=$(group_leader)
ok "$([ "$(snapshots "$L")" -ge 1 ] 2>/dev/null; echo $?)" "the leader ($L) has taken snapshots ($(snapshots "$L")): the log's start is gone"

# ---- a fourth replica joins while one is down ----------------------------------------------

read -r D F <<<"$(group_others "$L")" # D is down while the fourth joins; F is asked to add it
group_term "$D"
group_dir_new 4
group_start 4 --join "$(group_api "$F")" "${SNAP[@]}"
group_wait_ready 4
ok $? "replica $D stopped, a fourth replica started with --join $(group_api "$F") (a follower) becomes ready"
# Ready means it knows the leader, which can come before the snapshot is in.
for _ in $(seq 1 600); do
	grep -q "raft snapshot restored at index" "$T_DIR/r4/latticed.log" && break
	sleep 0.1
done
grep -q "raft snapshot restored at index" "$T_DIR/r4/latticed.log"
ok $? "... it was sent a snapshot: $(grep -o 'raft snapshot restored at index [0-9]*' "$T_DIR/r4/latticed.log" | head -1)"
want=
for i in 1 2 3 4; do want+="${want:+,}$i voter $([ "$i" = "$D" ] && echo false || echo true) $(group_api "$i")"; done
is "$(wait_view "$L" "$want")" "$want" \
	"GET /v1/cluster on the leader: the fourth is a voter, reachable, with its api_url ($D: not reachable)"
check "joined" "$L" "$F" 4

# ---- it leads; the replica that was down comes back -----------------------------------------

greq "$F" POST /v1/cluster/transfer '{"to":4}'
is "$STATUS $(jqr .leader.id)" "200 4" "POST /v1/cluster/transfer {\"to\":4} (sent to $F): the fourth leads"
group_start "$D" --bootstrap --members "$MEMBERS" "${SNAP[@]}"
group_wait_ready "$D"
ok $? "replica $D restarts: it missed the fourth's joining"
is "$(group_leader)" 4 "... every replica, $D included, names 4 the leader"
grep -q "learned the group's configuration" "$T_DIR/r$D/latticed.log"
ok $? "... $D learned the configuration from a member's API: $(grep -o "learned the group's configuration.*" "$T_DIR/r$D/latticed.log" | head -1)"
group_writer_start 1 2 3 4
group_wait_acks "$(group_writes_count)" 5 1 2 3 4
ok $? "the stream, now spread over the four replicas, is acknowledged by each"
check "four replicas" 1 2 3 4

# ---- the fourth, the leader, is removed -------------------------------------------------------

group_writer_start 1 2 3 4
group_wait_acks "$(group_writes_count)" 3 1 2 3 4
greq "$F" DELETE /v1/cluster/members/4
is "$STATUS $(jqr '[.members[].id] | join(",")')" "200 1,2,3" \
	"DELETE /v1/cluster/members/4 (the leader) sent to $F: three members left"
for _ in $(seq 1 300); do # until they no longer name the removed replica
	L=$(group_leader 1 2 3)
	[ -n "$L" ] && [ "$L" != 4 ] && break
	sleep 0.2
done
ok "$([ -n "$L" ] && [ "$L" != 4 ]; echo $?)" "... the three elect a leader among them (${L:-none})"
from=$(group_writes_count)
group_wait_acks "$from" 5 1 2 3
ok $? "... and go on acknowledging writes"
# Replica 4 applied its own removal (it led). Started with --join, it must not
# ask to join again: give its join retry (every second) time to show.
sleep 3
L=$(group_leader 1 2 3)
greq "$L" GET /v1/cluster
ok "$([ "$(jqr '[.members[].id] | join(",")')" = 1,2,3 ]; echo $?)" \
	"GET /v1/cluster on the leader ($L) lists the three members left: the removed replica does not join again ($(grep -c 'joined the group' "$T_DIR/r4/latticed.log") x 'joined the group' in its log)"
check "removed" 1 2 3
group_term 4
is "$LIB_ST" 0 "the removed replica stops with SIGTERM, exit 0"

done_testing
