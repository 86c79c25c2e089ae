#!/usr/bin/env bash
# group.sh — a group of three latticed replicas, each projecting into its own
# database (group_lib.sh), with no failures:
#  - GET /v1/cluster on the leader lists every member, reachable, with its api_url;
#  - a write sent to a follower is answered with the leader's X-Lattice-Index
#    (between those of writes sent to the leader before and after it), and a read
#    with ?min_index= that index sees it on every replica, waiting for a replica
#    whose PostgreSQL is held back (pg_hold);
#  - ?consistent=true on a follower sees a write another replica acknowledged just
#    before, waiting for its PostgreSQL to show it;
#  - the databases are identical;
#  - restarting every replica with the same --bootstrap --members command line
#    resumes the group (the bootstrap flags are ignored), and a different
#    --members on restart is ignored too: the data dir's group is resumed as is;
#  - POST /v1/cluster/transfer {"to": id} makes that member the leader; to the
#    leader itself it is answered (TODO: the leader crashes);
#  - members are removed down to one voter; removing the only voter is 409.
# First, bad group options stop latticed with status 2 and a message.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 50

refused() { # NAME EXPECTED_TEXT ARGS...: latticed exits 2 and says why
	local name=$1 want=$2 out rc
	shift 2
	out=$("$LATTICED" --data-dir "$T_DIR/never" "$@" 2>&1)
	rc=$?
	if [ $rc -eq 2 ] && grep -qF -- "$want" <<<"$out" && [ ! -e "$T_DIR/never" ]; then ok 0 "$name"
	else ok 1 "$name"; diag "status $rc, output: $out"; fi
}
refused "--members with a repeated id" "--members: server id 2 is listed twice" \
	--id 1 --bootstrap --members 1=127.0.0.1:9001,2=127.0.0.1:9002,2=127.0.0.1:9003
refused "--members with a repeated address" "--members: address 127.0.0.1:9002 is listed for servers 2 and 3" \
	--id 1 --bootstrap --members 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9002
refused "--members without this replica's --id" "--members does not list this replica's --id 3" \
	--id 3 --bootstrap --members 1=127.0.0.1:9001,2=127.0.0.1:9002
refused "--members with a host name" "--members: 'localhost:9002' (server 2) is not an IPv4 address IP:PORT" \
	--id 1 --bootstrap --members 1=127.0.0.1:9001,2=localhost:9002
refused "--members with an IPv6 address" "--members: '[::1]:9002' (server 2) is not an IPv4 address IP:PORT" \
	--id 1 --bootstrap --members "1=127.0.0.1:9001,2=[::1]:9002"
refused "--members with an entry that is not ID=IP:PORT" "--members: '127.0.0.1:9002' is not ID=IP:PORT" \
	--id 1 --bootstrap --members 1=127.0.0.1:9001,127.0.0.1:9002
refused "--raft-address other than this replica's entry in --members" \
	"--raft-address 127.0.0.1:9005 differs from this replica's entry in --members (127.0.0.1:9001)" \
	--id 1 --bootstrap --members 1=127.0.0.1:9001,2=127.0.0.1:9002 --raft-address 127.0.0.1:9005
refused "--join with --bootstrap" "--join and --bootstrap exclude each other" \
	--id 4 --bootstrap --join http://127.0.0.1:8080

lib_init
group_init 3
for i in 1 2 3; do group_start "$i" --bootstrap --members "$MEMBERS" --read-wait-max-ms 30000 --write-timeout-ms 3000; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
L=$(group_leader) || bail "no leader"
FOLLOWERS=()
for i in 1 2 3; do [ "$i" = "$L" ] || FOLLOWERS+=("$i"); done
F=${FOLLOWERS[0]} F2=${FOLLOWERS[1]}
diag "leader $L, followers $F $F2"

node() { printf '{"id":"%s","region":"r1","cpu_capacity":1000,"memory_mb":1000}' "$1"; }
restart_opts=(--read-wait-max-ms 30000 --write-timeout-ms 3000)

# ---- GET /v1/cluster on the leader ----------------------------------------------------------

# The leader polls its members every second: wait (guard 60 s) until it has
# heard from both followers.
members_view() { greq "$1" GET /v1/cluster; jqr '[.members[] | "\(.id) \(.role) \(.reachable) \(.api_url)"] | join(",")'; }
want_view="1 voter true $(group_api 1),2 voter true $(group_api 2),3 voter true $(group_api 3)"
for _ in $(seq 1 300); do
	[ "$(members_view "$L")" = "$want_view" ] && break
	sleep 0.2
done
is "$(members_view "$L")" "$want_view" "GET /v1/cluster on the leader: every member a voter, reachable, with its api_url"
greq "$L" GET /v1/cluster
is "$(jqr '[.members[] | (.applied_index | type)] | join(" ")')" "number number number" \
	"... with every member's applied index"
is "$(jqr '"\(.leader.id) \(.leader.api_url)"')" "$L $(group_api "$L")" "... and itself as the leader, with its api_url"
greq "$F" GET /v1/cluster
is "$(jqr '"\(.leader.id) \(.leader.api_url) \([.members[].id] | join(","))"')" "$L $(group_api "$L") 1,2,3" \
	"GET /v1/cluster on a follower names the leader and its api_url, and the three members"

# ---- a write sent to a follower ---------------------------------------------------------------

greq "$L" POST /v1/nodes "$(node a)"
IA=$(header X-Lattice-Index)
is "$STATUS" 201 "a write to the leader is acknowledged"
pg_hold "r$F" # the follower's PostgreSQL shows nothing new until pg_release
greq "$F" POST /v1/nodes "$(node b)"
IB=$(header X-Lattice-Index)
is "$STATUS $(jqr .id)" "201 b" "a write to a follower is acknowledged (the leader's answer), while its own PostgreSQL is held back"
greq "$L" POST /v1/nodes "$(node c)"
IC=$(header X-Lattice-Index)
ok "$([ "$IA" -lt "$IB" ] 2>/dev/null && [ "$IB" -lt "$IC" ]; echo $?)" \
	"... with the leader's X-Lattice-Index: between those of the writes to the leader before and after it ($IA < $IB < $IC)"
# Nodes and actors are read from the applied model (view.c): a provider, read
# from PostgreSQL, shows what a held-back projection does.
greq "$L" POST /v1/providers '{"id":"held-b","contract_id":"KeyValue","image":"ghcr.io/x/kv:1"}'
greq "$F" GET /v1/providers/held-b
is "$(err)" "404 not_found" "the follower's PostgreSQL does not show the next write yet: a plain read of it there (a provider) is 404"
API=$(group_api "$F") req_bg min GET "/v1/nodes/b?min_index=$IB"
sleep 1.5
ok "$(req_bg_done min; [ $? != 0 ]; echo $?)" "a read there with ?min_index=$IB waits for its PostgreSQL"
pg_release
req_bg_wait min
is "$STATUS $(jqr .id)" "200 b" "... and sees the write once it shows it"
for i in 1 2 3; do
	greq "$i" GET "/v1/nodes/b?min_index=$IB"
	is "$STATUS $(jqr .id)" "200 b" "replica $i: GET ?min_index=$IB right after the answer sees the write"
done

# ---- ?consistent=true on a follower -------------------------------------------------------------

pg_hold "r$F"
greq "$F2" POST /v1/nodes "$(node d)"
is "$STATUS" 201 "a write to the other follower is acknowledged"
greq "$F2" POST /v1/providers '{"id":"held-d","contract_id":"KeyValue","image":"ghcr.io/x/kv:1"}'
greq "$F" GET /v1/providers/held-d
is "$(err)" "404 not_found" "the first follower (PostgreSQL held back) does not show a write to a plain read (a provider)"
API=$(group_api "$F") req_bg cons GET "/v1/nodes/d?consistent=true"
API=$(group_api "$F") req_bg conslist GET "/v1/nodes?consistent=true"
sleep 1.5
ok "$(req_bg_done cons || req_bg_done conslist; [ $? != 0 ]; echo $?)" \
	"GET ?consistent=true there waits for its PostgreSQL to show what the leader had committed"
pg_release
req_bg_wait cons
is "$STATUS $(jqr .id)" "200 d" "... then sees the write acknowledged just before by another replica"
req_bg_wait conslist
is "$STATUS $(jqr '[.items[].id] | join(" ")')" "200 a b c d" "... as does a list"
greq "$F" GET "/v1/nodes/d?consistent=true"
is "$STATUS $(jqr .id)" "200 d" "a consistent read on a follower not held back is answered"

# ---- the leader's PostgreSQL does not show a write in time ----------------------------------

# Its answer, 503 projection_lagging with the write's index, is what a client
# of a follower must get too (docs/operations.md: the leader's answer as it gave it).
pg_hold "r$L"
greq "$L" POST /v1/nodes "$(node h1)"
IH1=$(header X-Lattice-Index)
is "$(err)" "503 projection_lagging" "the leader's PostgreSQL held back: a write to the leader is 503 projection_lagging after --write-timeout-ms"
greq "$F" POST /v1/nodes "$(node h2)"
IH2=$(header X-Lattice-Index)
ok "$([ "$(err)" = "503 projection_lagging" ] && [[ "$(jqr .error.message)" == *"index $IH2"* ]]; echo $?)" \
	"... a write to a follower gets the leader's answer: 503 projection_lagging with the write's index ($(err): $(jqr .error.message))"
pg_release
greq "$F" GET "/v1/nodes/h2?min_index=$IH2"
is "$STATUS $(jqr .id)" "200 h2" "once the leader's PostgreSQL catches up, the follower's write reads back at X-Lattice-Index $IH2"
greq "$L" GET "/v1/nodes/h1?min_index=$IH1"
is "$STATUS $(jqr .id)" "200 h1" "... as does the leader's at $IH1"

group_settle 1 2 3
group_same_db 1 2 3
ok $? "the three databases are identical"

# ---- restarts: the bootstrap flags are ignored -------------------------------------------------

for i in 1 2 3; do group_term "$i"; done
for i in 1 2 3; do group_start "$i" --bootstrap --members "$MEMBERS" "${restart_opts[@]}"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not restart"; done
L=$(group_leader)
ok $? "restarted with the same --bootstrap --members command line, the group elects a leader ($L)"
n=0
for i in 1 2 3; do grep -q "already holds a group: resuming it" "$T_DIR/r$i/latticed.log" && n=$((n + 1)); done
is "$n" 3 "... each replica says it resumes its data dir's group"
greq "$L" GET "/v1/nodes?consistent=true"
is "$STATUS $(jqr '[.items[].id] | join(" ")')" "200 a b c d h1 h2" "... which has every write of before"
greq "$F" POST /v1/nodes "$(node e)"
is "$STATUS" 201 "... and takes writes"

# A replica restarted with a different --members (a fourth member added, the
# others' addresses swapped): the data dir's group is resumed as it is.
addr() { echo "127.0.0.1:$(cat "$T_DIR/r$1/raft_port")"; }
odd="3=$(addr 3),1=$(addr 2),2=$(addr 1),4=127.0.0.1:$(free_port)"
X=3 # its own entry must stay as it was (--raft-address)
group_term "$X"
group_start "$X" --bootstrap --members "$odd" "${restart_opts[@]}"
group_wait_ready "$X" || bail "replica $X did not restart"
conf() { greq "$1" GET /v1/cluster; jqr '[.members[] | "\(.id)=\(.address)"] | join(",")'; }
is "$(conf "$X")" "$MEMBERS" "restarted with a different --members ($odd), its configuration is the group's as it was"
L=$(group_leader)
is "$(conf "$L")" "$MEMBERS" "... as the leader's is ($L)"
greq "$X" POST /v1/nodes "$(node f)"
is "$STATUS" 201 "... and it takes writes"
group_settle 1 2 3
group_same_db 1 2 3
ok $? "the three databases are identical"

# ---- transfer -----------------------------------------------------------------------------------

L=$(group_leader)
T=$((L % 3 + 1))
greq "$L" POST /v1/cluster/transfer "{\"to\":$T}"
is "$STATUS $(jqr .leader.id)" "200 $T" "POST /v1/cluster/transfer {\"to\":$T} on the leader ($L) hands leadership to $T"
is "$(group_leader)" "$T" "... every replica names $T the leader"
O=$((T % 3 + 1)) # neither $L nor $T
greq "$O" POST /v1/cluster/transfer "{\"to\":$L}"
is "$STATUS $(jqr .leader.id)" "200 $L" "sent to a follower ($O), it is carried out by the leader: $L leads again"
is "$(group_leader)" "$L" "... every replica names $L the leader"
greq "$L" POST /v1/cluster/transfer '{"to":7}'
is "$(err)" "404 not_found" "a transfer to a server that is not a member is 404"
greq "$O" POST /v1/cluster/transfer "{\"to\":$L}"
answer=$(err)
sleep 1 # a crash shows at once: the answer is the leader's last act
group_alive "$L"
alive=$?
ok "$([ "$alive" = 0 ] && [ "${answer%% *}" = 200 ]; echo $?)" \
	"a transfer to the leader itself (sent to $O) is answered ($answer: it leads already) and the leader keeps running"
if [ "$alive" != 0 ]; then
	group_reap_crash "$L"
	group_start "$L" --bootstrap --members "$MEMBERS" "${restart_opts[@]}"
	group_wait_ready "$L" || bail "replica $L did not restart"
fi
L=$(group_leader) || bail "no leader"

# ---- removing members down to the only voter ------------------------------------------------

others=()
for i in 1 2 3; do [ "$i" = "$L" ] || others+=("$i"); done
greq "$L" DELETE "/v1/cluster/members/${others[0]}"
is "$STATUS $(jqr '[.members[].id] | join(",")')" "200 $(printf '%s\n' "$L" "${others[1]}" | sort -n | paste -sd,)" \
	"DELETE /v1/cluster/members/${others[0]}: two members left"
greq "$L" DELETE "/v1/cluster/members/${others[1]}"
is "$STATUS $(jqr '[.members[].id] | join(",")')" "200 $L" "DELETE /v1/cluster/members/${others[1]}: the leader is the only member"
greq "$L" DELETE "/v1/cluster/members/$L"
is "$(err)" "409 conflict" "removing the only voter is refused: 409 conflict"
greq "$L" POST /v1/nodes "$(node g)"
is "$STATUS" 201 "the one-member group takes writes"
for i in "${others[@]}"; do group_term "$i"; done

done_testing
