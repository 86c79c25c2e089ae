#!/usr/bin/env bash
# flood.sh — connection floods against a real latticed: idle connections, request
# headers and bodies trickled in a byte at a time, and the connection limit filled
# by several addresses. The floods come from 127.0.0.2 (and .3-.5); while they
# hold, a client on 127.0.0.1 must be answered, and the flooding connections must
# be closed at the per-address limit (at once) or at their deadline (not before;
# "before" allows 100 ms for the client and server clocks starting apart).
# The flood client is tests/integration/flood (C, built by make check). Prints TAP.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/integration/lib.sh"

FLOOD=${FLOOD:-$top_builddir/tests/integration/flood}
[ -x "$FLOOD" ] || bail "flood client not built at $FLOOD (make check builds it)"

plan 30

lib_init

# flood ARGS...: floods the replica with tests/integration/flood; F is its result line.
F=
flood() {
	F=$("$FLOOD" --to "127.0.0.1:${API##*:}" "$@") || bail "flood client failed: $*"
	diag "$F"
}
# val KEY: a value of the last flood's result line
val() { printf '%s\n' "$F" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# within N: ok when the last flood's late_max_ms is at most N
within() { [ "$(val late_max_ms)" -ge 0 ] && [ "$(val late_max_ms)" -le "$1" ]; }

# ---- idle connections: one address cannot take every slot -----------------------------
# 1,100 idle connections are more than the whole connection limit (1024): before
# the per-address limit they locked every other client out until the idle timeout.
lattice_start fl --http-per-address-limit 16 --http-header-timeout-ms 60000
flood --from 127.0.0.2 --count 1100 --mode idle --settle-ms 1000 --probe /healthz --probe-wait-ms 5000
is "$(val opened)" 1100 "idle flood: 1100 connections from 127.0.0.2 were established"
is "$(val open_at_probe)" 16 "idle flood: latticed kept 16 of them (--http-per-address-limit) and closed the rest"
is "$(val closed_early)" 1084 "idle flood: the connections over the limit were closed at once"
is "$(val probe_status)" 200 "idle flood: a client on 127.0.0.1 was answered within 5 s while the flood held"
req GET /readyz
is "$STATUS $(jqr .status)" "200 ready" "after the idle flood: ready"

# ---- slow request headers and bodies: the deadlines ------------------------------------
lattice_stop
is "$LATTICED_EXIT" 0 "after the idle flood: latticed stops cleanly (SIGTERM, exit 0)"
lattice_start fl --http-per-address-limit 16 --http-header-timeout-ms 4000 --http-body-timeout-ms 3000
# Each connection sends one byte of its (1 KiB) request headers every 500 ms,
# which an idle timeout never sees as idle.
flood --from 127.0.0.2 --count 1100 --mode slow-header --interval-ms 500 --settle-ms 1000 \
	--probe /healthz --probe-wait-ms 5000 --hold-ms 60000 --late-ms 3900
is "$(val open_at_probe)" 16 "slow headers: latticed kept 16 connections from 127.0.0.2"
is "$(val probe_status)" 200 "slow headers: a client on 127.0.0.1 was answered within 5 s while they trickled"
is "$(val open)" 0 "slow headers: latticed closed every trickling connection"
is "$(val complete)" 0 "slow headers: none of them got its request in"
is "$(val closed_late)" 16 "slow headers: the 16 it kept were closed at the 4 s header deadline, not before"
within 19000
ok $? "slow headers: ... and within 15 s after it (latest: $(val late_max_ms) ms after connecting)"
grep -q "did not deliver their request in time" "$T_DIR/fl/latticed.log"
ok $? "slow headers: the log says connections were closed for being too slow"

# The headers of a node registration at once, its body a byte every 500 ms.
flood --from 127.0.0.2 --count 4 --mode slow-body --interval-ms 500 --hold-ms 60000 --late-ms 2900
is "$(val open) $(val complete)" "0 0" "slow body: latticed closed all 4 before their bodies were in"
is "$(val closed_late)" 4 "slow body: each at the 3 s body deadline, not before"
within 18000
ok $? "slow body: ... and within 15 s after it (latest: $(val late_max_ms) ms)"
req GET /v1/nodes/slow-body
is "$STATUS $(jqr .error.code)" "404 not_found" "slow body: the half-sent node was not registered"

# A keep-alive connection that has had its answer gets a new header deadline.
flood --from 127.0.0.2 --count 2 --mode keepalive --hold-ms 60000 --late-ms 3900
is "$(val complete) $(val answered)" "2 2" "keep-alive: both requests were answered"
is "$(val open) $(val closed_late)" "0 2" "keep-alive: the idle connections were closed at the header deadline"

# Quick clients are untouched: many requests on one keep-alive connection.
args=()
for i in $(seq 1 20); do args+=(-o /dev/null "$API/healthz"); done
got=$(curl -s --max-time 60 -w '%{http_code} %{num_connects}\n' "${args[@]}" |
	awk '$1 == 200 { n++ } { c += $2 } END { print n + 0, c + 0 }')
is "$got" "20 1" "keep-alive: 20 quick requests on one connection all answered"

# ---- the connection limit filled from several addresses ---------------------------------
# Past --http-connection-limit new connections wait in the listen queue; slots held by
# clients that send nothing come free at the header deadline, and the waiting client
# is served then.
lattice_stop
is "$LATTICED_EXIT" 0 "after the slow floods: latticed stops cleanly (SIGTERM, exit 0)"
lattice_start fl --http-threads 2 --http-connection-limit 8 --http-per-address-limit 4 \
	--http-header-timeout-ms 6000
flood --from 127.0.0.3,127.0.0.4,127.0.0.5 --count 12 --mode idle --settle-ms 500 \
	--probe /healthz --probe-wait-ms 30000 --late-ms 5900
is "$(val opened)" 12 "limit from 3 addresses: 12 connections established (8 taken, 4 queued)"
is "$(val open_at_probe)" 12 "limit from 3 addresses: all 12 held when the client on 127.0.0.1 came"
is "$(val probe_status)" 200 "limit from 3 addresses: that client was answered once the deadline freed slots"
is "$(val closed_early)" 0 "limit from 3 addresses: nothing was closed before the header deadline"
lattice_stop
is "$LATTICED_EXIT" 0 "after the connection-limit flood: latticed stops cleanly (SIGTERM, exit 0)"

# ---- options -------------------------------------------------------------------------
out=$("$LATTICED" --http-threads 4 --http-connection-limit 2 2>&1)
rc=$?
[ "$rc" -eq 2 ] && printf '%s' "$out" | grep -q -- "--http-connection-limit (2) must be at least --http-threads (4)"
ok $? "a connection limit below the thread count is refused with a message naming both options"
"$LATTICED" --http-header-timeout-ms 50 >/dev/null 2>&1
is "$?" 2 "--http-header-timeout-ms below 100 is refused"
"$LATTICED" --help | grep -q -- "--http-per-address-limit N"
ok $? "--help lists --http-per-address-limit"

lattice_start fl
lattice_stop
is "$LATTICED_EXIT" 0 "with the default limits latticed starts, and stops cleanly"
done_testing
