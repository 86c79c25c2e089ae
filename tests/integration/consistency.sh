#!/usr/bin/env bash
# consistency.sh — the read-your-writes promises (docs/api.md, "Reading your
# writes"), checked while this replica's PostgreSQL is held back: pg_hold (lib.sh)
# keeps a lock every projection round needs, so writes commit in Raft but
# PostgreSQL shows none of them until the test lets go. Nothing here depends on
# speed: an answer that does not wait comes within milliseconds, and the test
# gives it more than a second to show up.
#  - a write is answered only once PostgreSQL shows it; a plain GET then sees it
#    (of a node: at once, from the applied model, even before the answer);
#  - GET ?min_index=N waits until PostgreSQL shows N, and after
#    --read-wait-max-ms answers 503 projection_lagging;
#  - GET ?consistent=true answers only once PostgreSQL shows what was committed
#    before it, the latest write included;
#  - a write PostgreSQL does not show within --write-timeout-ms is 503
#    projection_lagging with its index, and a read at that index sees it later.
. "$(dirname "$0")/lib.sh"
plan 19
lib_init
lattice_start c1 --read-wait-max-ms 60000 --write-timeout-ms 60000

req POST /v1/nodes '{"id":"base","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
BASE_IDX=$(header X-Lattice-Index)
is "$STATUS" 201 "a first node is written"

# ---- 1. answers wait for PostgreSQL ------------------------------------------------------

pg_hold c1
req_bg write POST /v1/nodes '{"id":"held-1","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
wait_lagging
ok $? "while PostgreSQL is held back, the write is committed in Raft (applied_index > projected_index)"
IDX=$(cluster_field .applied_index)
req GET /v1/nodes/held-1
ok "$([ "$STATUS" = 200 ] && [ "$(header X-Lattice-Index)" -ge "$IDX" ]; echo $?)" \
	"PostgreSQL does not show it yet, but node reads come from the applied model (view.c): a plain GET answers at once, 200 at index $(header X-Lattice-Index) >= $IDX"
req_bg min GET "/v1/nodes/held-1?min_index=$IDX"
req_bg cons GET "/v1/nodes/held-1?consistent=true"
req_bg conslist GET "/v1/nodes?consistent=true"
sleep 1.5
state() { if req_bg_done "$1"; then echo "answered ($(cat "$T_DIR/bg.$1.status"))"; else echo waiting; fi; }
is "$(state write)" waiting "the write is not answered while PostgreSQL does not show it"
is "$(state min)" waiting "GET ?min_index=$IDX waits for PostgreSQL to reach index $IDX"
is "$(state cons)" waiting "GET /v1/nodes/{id}?consistent=true waits for PostgreSQL to show the commit index"
is "$(state conslist)" waiting "GET /v1/nodes?consistent=true waits too"
released=$(now_ms)
pg_release

req_bg_wait write
WIDX=$(header X-Lattice-Index)
is "$STATUS $(jqr .id)" "201 held-1" "once PostgreSQL shows it, the write is answered: 201"
ok "$([ "$REQ_BG_AT" -ge "$released" ] && [ "$WIDX" -gt "$BASE_IDX" ] && [ "$WIDX" -le "$IDX" ]; echo $?)" \
	"... after the lock was let go, with its own index ($BASE_IDX < $WIDX <= $IDX)"
req GET /v1/nodes/held-1
is "$STATUS $(jqr .id)" "200 held-1" "a plain GET right after the answer sees the write"
req_bg_wait min
is "$STATUS $(jqr .id)" "200 held-1" "the ?min_index= read is answered with the write"
req_bg_wait cons
is "$STATUS $(jqr .id)" "200 held-1" "the ?consistent=true read is answered with the write"
req_bg_wait conslist
is "$STATUS $(jqr '[.items[].id] | join(" ")')" "200 base held-1" "the ?consistent=true list shows the write"

# ---- 2. bounded waits -------------------------------------------------------------------------

lattice_stop
lattice_start c1 --read-wait-max-ms 1000 --write-timeout-ms 2000
pg_hold c1
t0=$(now_ms)
req POST /v1/nodes '{"id":"held-2","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
ms=$(($(now_ms) - t0))
WIDX=$(header X-Lattice-Index)
is "$(err)" "503 projection_lagging" "a write PostgreSQL does not show within --write-timeout-ms is 503 projection_lagging"
ok "$([ "$ms" -ge 1900 ]; echo $?)" "... after --write-timeout-ms 2000 (${ms} ms)"
ok "$([[ "$WIDX" =~ ^[0-9]+$ ]] && [[ "$(jqr .error.message)" == *"$WIDX"* ]]; echo $?)" \
	"... with its index in X-Lattice-Index and the message ($WIDX)"
t0=$(now_ms)
req GET "/v1/nodes/held-2?min_index=$WIDX"
ms=$(($(now_ms) - t0))
is "$(err)" "503 projection_lagging" "GET ?min_index= that PostgreSQL does not reach in time is 503 projection_lagging"
ok "$([ "$ms" -ge 950 ]; echo $?)" "... after --read-wait-max-ms 1000 (${ms} ms)"
pg_release
req GET "/v1/nodes/held-2?min_index=$WIDX"
is "$STATUS $(jqr .id)" "200 held-2" "once PostgreSQL catches up, a read at the write's index sees it"

done_testing
