#!/usr/bin/env bash
# raftport.sh — a stranger on the raft port cannot depose the leader: latticed's
# transport (controller/raftnet.c) refuses connections whose claimed server id
# is not a member, whose source IP is not the member's, or that claim its own
# id; refusals are logged (rate-limited) and counted in /metrics.
#
# tests/integration/raft_stranger speaks raft's wire protocol: handshake, then a
# RequestVote for term 5000 with the disrupt-leader flag, over and over.
. "$(dirname "$0")/lib.sh"
STRANGER=${STRANGER:-$top_builddir/tests/integration/raft_stranger}
[ -x "$STRANGER" ] || bail "raft_stranger not built at $STRANGER"
plan 26
lib_init
lattice_start r1
RAFT_PORT=$(cat "$T_DIR/r1/raft_port")

metric() { # NAME_WITH_LABELS: its value now
	curl -s "$API/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
cluster() { # prints "TERM STATE"
	req GET /v1/cluster
	printf '%s %s\n' "$(jqr .term)" "$(jqr .self.state)"
}
refusals() { grep -c "raft port: refused a connection" "$T_DIR/r1/latticed.log"; }

read -r term0 state0 < <(cluster)
is "$state0" leader "the replica leads before the attack"
ok $([ "$term0" -ge 1 ] && [ "$term0" -lt 5000 ] && echo 0 || echo 1) "its term is $term0"

# attack NAME SECONDS TERM STRANGER_ARGS...: runs the stranger (RequestVotes for
# TERM) while writing nodes and polling /v1/cluster; sets SENT/CLOSED, WRITES,
# WRITES_BAD, and SEEN_BAD (every [term state] seen that is not [term0 leader]).
# Each attack asks for another term, so each one shows on an unprotected build.
attack() {
	local name=$1 seconds=$2 term=$3 i=0 out
	shift 3
	"$STRANGER" 127.0.0.1 "$RAFT_PORT" "$@" --term "$term" --seconds "$seconds" >"$T_DIR/stranger.out" 2>&1 &
	local spid=$!
	WRITES=0 WRITES_BAD=0 SEEN_BAD=
	while kill -0 "$spid" 2>/dev/null; do
		i=$((i + 1))
		req POST /v1/nodes "{\"id\":\"$name-$i\",\"region\":\"r1\",\"cpu_capacity\":4000,\"memory_mb\":4096}"
		WRITES=$((WRITES + 1))
		[ "$STATUS" = 201 ] || { WRITES_BAD=$((WRITES_BAD + 1)); diag "write $name-$i: $STATUS $BODY"; }
		read -r t s < <(cluster)
		[ "$t $s" = "$term0 leader" ] || SEEN_BAD="$SEEN_BAD [$t $s]"
		sleep 0.05
	done
	wait "$spid"
	out=$(cat "$T_DIR/stranger.out")
	diag "$name: $out; $WRITES writes"
	SENT=$(printf '%s' "$out" | sed -n 's/.*sent=\([0-9]*\).*/\1/p')
	CLOSED=$(printf '%s' "$out" | sed -n 's/.*closed=\([0-9]*\).*/\1/p')
	: "${SENT:=0}" "${CLOSED:=0}"
}

# 1. A server id that is not a member (99).
started=$(date +%s)
attack stranger 4 5000 99
ok $([ "$SENT" -ge 5 ] && echo 0 || echo 1) "the stranger sent its RequestVote on $SENT connections"
is "$CLOSED" "$SENT" "latticed closed every one of them"
ok $([ "$WRITES" -ge 3 ] && [ "$WRITES_BAD" -eq 0 ] && echo 0 || echo 1) \
	"every write during the attack succeeded ($((WRITES - WRITES_BAD)) of $WRITES)"
is "$SEEN_BAD" "" "the replica stayed leader in term $term0 throughout"
read -r t s < <(cluster)
is "$t" "$term0" "the term is unchanged after the attack (not 5000)"
is "$s" leader "it is still the leader"
is "$(metric 'lattice_raft_refused_connections_total{reason="not_member"}')" "$SENT" \
	"lattice_raft_refused_connections_total{reason=\"not_member\"} counts every refusal"
grep -q "raft port: refused a connection from 127.0.0.1 claiming server id 99: not a server of the configuration" \
	"$T_DIR/r1/latticed.log"
ok $? "the log names the source address, the claimed id and the reason"
n=$(refusals)
ok $([ "$n" -ge 1 ] && [ "$n" -le 5 ] && echo 0 || echo 1) \
	"refusals are rate-limited in the log ($n lines for $SENT refusals)"

# 2. The member's id (1), but from another address (127.0.0.2; the member is 127.0.0.1).
attack wrongaddr 2 6000 1 --bind 127.0.0.2
ok $([ "$SENT" -ge 1 ] && echo 0 || echo 1) "id 1 from 127.0.0.2 sent its RequestVote on $SENT connections"
is "$CLOSED" "$SENT" "latticed closed every one of them"
ok $([ "$WRITES_BAD" -eq 0 ] && echo 0 || echo 1) "every write during it succeeded ($WRITES)"
is "$SEEN_BAD" "" "the replica stayed leader in term $term0 throughout"
is "$(metric 'lattice_raft_refused_connections_total{reason="wrong_address"}')" "$SENT" \
	"they are counted as wrong_address"

# 3. This replica's own id from its own address: raft never connects to itself.
attack self 2 7000 1
ok $([ "$SENT" -ge 1 ] && echo 0 || echo 1) "id 1 from 127.0.0.1 sent its RequestVote on $SENT connections"
is "$CLOSED" "$SENT" "latticed closed every one of them"
is "$SEEN_BAD" "" "the replica stayed leader in term $term0 throughout"
is "$(metric 'lattice_raft_refused_connections_total{reason="self"}')" "$SENT" "they are counted as self"

# 4. After the rate limit's window (10 s), the next refusal says how many were not logged.
now=$(date +%s)
[ $((now - started)) -lt 11 ] && sleep $((11 - (now - started)))
"$STRANGER" 127.0.0.1 "$RAFT_PORT" 99 --seconds 0.1 >/dev/null 2>&1
grep -q "raft port: [0-9]* more refused connections were not logged" "$T_DIR/r1/latticed.log"
ok $? "the next window's first refusal logs how many were not logged"
ok $([ "$(refusals)" -le 11 ] && echo 0 || echo 1) "at most 5 refusal lines per window ($(refusals) in all)"

if command -v promtool >/dev/null; then
	curl -s "$API/metrics" | promtool check metrics >"$T_DIR/promtool.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && sed 's/^/# /' "$T_DIR/promtool.out"
	ok $rc "promtool accepts /metrics with the refusal counters"
else
	ok 1 "promtool not installed (Debian package prometheus)"
fi
req GET /v1/cluster
is "$(jqr .term)" "$term0" "GET /v1/cluster still shows term $term0"
req POST /v1/nodes '{"id":"after","region":"r1","cpu_capacity":4000,"memory_mb":4096}'
is "$STATUS" 201 "writes go on after the attacks"

lattice_stop
is "$LATTICED_EXIT" 0 "latticed stops cleanly (refused streams all closed)"
done_testing
