#!/usr/bin/env bash
# group_resend.sh — a write a follower passed on to the leader must reach the
# leader once. The leader's API is reached through cutproxy (its --api-url, so
# the followers send writes to it there), which closes the follower's kept-alive
# connection right after relaying one request: the leader got it and acts on it,
# the follower gets no answer. Sending it again would apply it twice; the write is
# an actor without an id (the server picks one), so twice is two actors. The
# client must get 503 unavailable (it may or may not have been applied), and
# there must be one actor. (group_faults.sh's last part is the same with the
# leader killed, where the second send may or may not find it still listening.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 7
CUTPROXY=$top_builddir/tests/integration/cutproxy
[ -x "$CUTPROXY" ] || bail "cutproxy not built at $CUTPROXY"
lib_init
group_init 3
PROXY_PORT=$(free_port)
"$CUTPROXY" "$PROXY_PORT" "$(cat "$T_DIR/r1/http_port")" '"module":"once"' >"$T_DIR/proxy.out" 2>"$T_DIR/proxy.log" &
PROXY_PID=$!
trap 'kill "$PROXY_PID" 2>/dev/null; lib_cleanup' EXIT
for _ in $(seq 1 100); do grep -q ready "$T_DIR/proxy.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$T_DIR/proxy.out" || bail "cutproxy did not start: $(cat "$T_DIR/proxy.log")"
group_start 1 --bootstrap --members "$MEMBERS" --api-url "http://127.0.0.1:$PROXY_PORT"
for i in 2 3; do group_start "$i"; done
for i in 1 2 3; do group_wait_ready "$i" || bail "replica $i did not start"; done
L=$(group_leader) || bail "no leader"
[ "$L" = 1 ] || greq "$L" POST /v1/cluster/transfer '{"to":1}'
is "$(group_leader)" 1 "replica 1, whose API the others reach through the proxy, leads"
greq 1 GET /v1/cluster
is "$(jqr .leader.api_url)" "http://127.0.0.1:$PROXY_PORT" "... at its --api-url"

greq 2 POST /v1/nodes '{"id":"n1","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
is "$STATUS" 201 "a write to replica 2 is passed on to the leader (through the proxy, on a connection kept open)"
greq 2 POST /v1/actors '{"module":"once","cpu_required":10,"memory_required_mb":1}'
grep -q "went through" "$T_DIR/proxy.log"
ok $? "an actor without an id, sent to replica 2: the proxy relayed it to the leader and closed replica 2's connection"
ok "$([ "$(err)" = "503 unavailable" ]; echo $?)" "the client gets 503 unavailable (the outcome is unknown to replica 2), not a second copy: got $(err) $(jqr .id)"
group_settle 1 2 3
n=$(for i in 1 2 3; do group_psql "$i" "SELECT count(*) FROM actors WHERE module = 'once'"; done | sort -u | tr '\n' ' ')
ok "$([ "$n" = "1 " ]; echo $?)" "the actor the client sent once is in every database once ($(group_psql 1 "SELECT id FROM actors WHERE module = 'once'" | tr '\n' ' '))"
group_same_db 1 2 3
ok $? "the databases of the three replicas are identical"

done_testing
