#!/usr/bin/env bash
# GET /v1/events as server-sent events (docs/api.md "Live events"): the stream's
# framing and headers, where it starts (live, since, Last-Event-ID), keep-alive
# comments, a client that catches up or takes a burst through a small buffer,
# a client that stops reading (cut off with a final overflow event, resumable),
# the stream limit, one database read for many streams, and a clean shutdown
# with streams open.
. "$(dirname "$0")/lib.sh"
plan 34

SLOWREAD=$top_builddir/tests/integration/slowread
[ -x "$SLOWREAD" ] || bail "slowread not built at $SLOWREAD"

lib_init
# idle timeout 15 s: keep-alive (and the cut-off of a client that reads
# nothing) after 5 s; a 4 KiB buffer per stream.
lattice_start a --http-idle-timeout-s 15 --event-stream-buffer 4096 --max-event-streams 24
PORT=${API##*:}

node() { # ID: register a node (one event)
	req POST /v1/nodes "{\"id\":\"$1\",\"region\":\"eu\",\"cpu_capacity\":1000,\"memory_mb\":1000}"
	[ "$STATUS" = 201 ] || echo "# node $1: $STATUS $BODY" >&2
}
nodes() { # FROM TO: nodes nFROM..nTO, 8 at a time
	seq "$1" "$2" | xargs -P 8 -I{} curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
		-d '{"id":"n{}","region":"eu","cpu_capacity":1000,"memory_mb":1000}' "$API/v1/nodes"
}
# stream NAME [CURL ARGS...]: an event stream in the background, into $T_DIR/NAME
# (headers in NAME.h); its pid in SPID[NAME].
declare -A SPID
stream() {
	local name=$1; shift
	curl -sN --max-time 120 -D "$T_DIR/$name.h" -H 'Accept: text/event-stream' "$@" >"$T_DIR/$name" 2>/dev/null &
	SPID[$name]=$!
}
stream_stop() { kill "${SPID[$1]}" 2>/dev/null; wait "${SPID[$1]}" 2>/dev/null; }
ids() { grep '^id: ' "$T_DIR/$1" | sed 's/^id: //' | tr '\n' ' ' | sed 's/ $//'; }
# until_ids NAME N: waits (up to 30 s) for N events in stream NAME
until_ids() {
	local i
	local n
	for ((i = 0; i < 300; i++)); do
		n=$(grep -c '^id: ' "$T_DIR/$1" 2>/dev/null)
		[ "${n:-0}" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
metric() { curl -s "$API/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# streams_open N: waits (up to 10 s) until N streams are open; prints how many
# are. A closed client is noticed at the stream's next write (a keep-alive at
# the latest).
streams_open() {
	local i n
	for ((i = 0; i < 100; i++)); do
		n=$(metric lattice_event_streams)
		[ "$n" = "$1" ] && break
		sleep 0.1
	done
	echo "$n"
}
# consecutive FILE FIRST LAST: the ids are exactly FIRST..LAST, and each data
# line is JSON whose seq is its id.
consecutive() {
	local got want
	got=$(ids "$1")
	want=$(seq "$2" "$3" | tr '\n' ' ' | sed 's/ $//')
	[ "$got" = "$want" ] || { echo "# ids of $1: '${got:0:200}...' want $2..$3" >&2; return 1; }
	awk '/^id: /{id=$2} /^data: /{sub(/^data: /,""); print id "\t" $0}' "$T_DIR/$1" |
		while IFS=$'\t' read -r id data; do
			[ "$(printf '%s' "$data" | jq -r .seq)" = "$id" ] || { echo "# $1: id $id, data $data" >&2; exit 1; }
		done
}

node n0
node n00
# 1-3: headers and framing
stream s0 "$API/v1/events?since=0"
until_ids s0 2
ok $? "a stream from since=0 sends the events held"
is "$(grep -i '^content-type:' "$T_DIR/s0.h" | tr -d '\r')" "Content-Type: text/event-stream" \
	"Content-Type: text/event-stream"
ok "$(grep -qi '^cache-control: no-cache' "$T_DIR/s0.h" && grep -qi '^x-lattice-index: [0-9]' "$T_DIR/s0.h"; echo $?)" \
	"Cache-Control: no-cache and X-Lattice-Index"
# 4-5: it starts with the reconnect delay; each event is id + one JSON data line
is "$(head -1 "$T_DIR/s0")" "retry: 2000" "the stream opens with retry: 2000"
ok "$(consecutive s0 1 2; echo $?)" "ids 1, 2 in order; each data line is JSON with its seq"

# 6-8: a live stream (no since) gets only what comes after it opened
stream live "$API/v1/events"
sleep 1
node n1
until_ids s0 3 && until_ids live 1
ok $? "a new event reaches both streams"
is "$(ids live)" "3" "a stream without since starts at the newest: only event 3"
is "$(grep '^data: ' "$T_DIR/live" | sed 's/^data: //' | jq -r '.kind + " " + .object_id')" "node.registered n1" \
	"its data is the event (kind, object)"

# 9-11: Last-Event-ID (what EventSource sends on reconnect) wins over since
stream lei -H 'Last-Event-ID: 1' "$API/v1/events?since=2"
until_ids lei 2
ok $? "Last-Event-ID: 1 with since=2"
is "$(ids lei)" "2 3" "starts after Last-Event-ID, not since"
REQ_HEADERS=('Accept: text/event-stream' 'Last-Event-ID: x1')
req GET /v1/events
REQ_HEADERS=()
is "$(err)" "400 invalid_header" "a Last-Event-ID that is not a number: 400 invalid_header"

# 12: keep-alive comments while nothing happens
sleep 6
ok "$(grep -q '^: keep-alive$' "$T_DIR/live"; echo $?)" "a quiet stream gets ': keep-alive' comments"

# 13-15: catching up through a 4 KiB buffer: all 400 events, in order, none
# dropped (the stream waits for the client instead of cutting it off)
nodes 2 401
stream big "$API/v1/events?since=0"
until_ids big 403
ok $? "a client catching up 403 events through a 4 KiB buffer gets them all"
ok "$(consecutive big 1 403; echo $?)" "in order, without a gap"
until_ids live 401
ok "$(consecutive live 3 403; echo $?)" "a live stream took the burst of 400 whole too"

# 16-21: a client that stops reading is cut off with a final overflow event:
# it reads nothing for 8 s (its buffer is full within a second, the cut comes
# 5 s later, the idle timeout would close it at 15 s), then reads it all
cut0=$(metric lattice_event_streams_cut_total)
"$SLOWREAD" "$PORT" /v1/events?since=0 8000 30000 'Accept: text/event-stream' >"$T_DIR/slow" &
SLOW=$!
sleep 1
nodes 402 801
wait "$SLOW"
ok "$([ $? = 0 ] && echo 0 || echo 1)" "the server ended the stream of the client that did not read"
last=$(grep '^id: ' "$T_DIR/slow" | tail -1 | sed 's/^id: //')
ok "$([ -n "$last" ] && [ "$last" -lt 803 ] && echo 0 || echo 1)" "it got some events, not all (last id $last)"
is "$(grep '^event: ' "$T_DIR/slow")" "event: overflow" "then one final event: overflow"
final=$(grep -A1 '^event: overflow' "$T_DIR/slow" | sed -n 's/^data: //p')
is "$(printf '%s' "$final" | jq -r '.error.code + " " + (.last_seq | tostring)')" "slow_consumer $last" \
	"its data: error slow_consumer, last_seq = the last id it got"
is "$(grep -v '^$' "$T_DIR/slow" | tail -1)" "data: $final" "nothing follows the overflow event"
is "$(metric lattice_event_streams_cut_total)" "$((cut0 + 1))" "lattice_event_streams_cut_total counts it"
# 22: and it can go on from there
stream again -H "Last-Event-ID: $last" "$API/v1/events"
until_ids again $((803 - last))
ok "$(consecutive again $((last + 1)) 803; echo $?)" "reconnecting with Last-Event-ID: $last gives $((last + 1))..803"
stream_stop again
stream_stop big
stream_stop lei

# 23-24: one database read serves every stream at the same place
for i in $(seq 1 10); do stream "many$i" "$API/v1/events"; done
streams_open 12 >/dev/null
# A new stream's first read (at its start) may still be under way: count from
# when the counter has stood still for half a second.
r0=$(metric lattice_event_stream_reads_total)
for ((i = 0; i < 40; i++)); do
	sleep 0.5
	r=$(metric lattice_event_stream_reads_total)
	[ "$r" = "$r0" ] && break
	r0=$r
done
node m1
for i in $(seq 1 10); do until_ids "many$i" 1 || break; done
r1=$(metric lattice_event_stream_reads_total)
ok "$(for i in $(seq 1 10); do [ "$(ids "many$i")" = 804 ] || exit 1; done; echo $?)" "10 live streams each got event 804"
# One read per stream would be 10; the event's entry and any entry committed
# right after it (each moves the projection on) cost one read each for all.
ok "$([ $((r1 - r0)) -le 5 ] && echo 0 || echo 1)" "with $((r1 - r0)) database read(s), not one per stream"

# 25-27: the stream limit (24 here; 12 open now: live, s0, and 10)
# (Open until the limit is reached: a client stopped above may still hold its
# place for up to a second, until its socket is looked at.)
for i in $(seq 1 14); do
	[ "$(metric lattice_event_streams)" -ge 24 ] && break
	stream "fill$i" "$API/v1/events"
	sleep 0.3
done
is "$(streams_open 24)" 24 "lattice_event_streams: 24 open"
REQ_HEADERS=('Accept: text/event-stream')
req GET /v1/events
is "$(err) $(header Retry-After)" "503 too_many_event_streams 5" "the 25th: 503 too_many_event_streams, Retry-After"
for i in $(seq 1 10); do stream_stop "many$i"; done
REQ_HEADERS=()
req GET '/v1/events?since=0&limit=1'
is "$STATUS $(jqr '.items | length')" "200 1" "long polls and pages are not streams: still answered"

# 28-29: closed streams free their place
before=$(streams_open 14)
stream after "$API/v1/events"
sleep 1
node m2
until_ids after 1
ok $? "after 10 closed, a new stream opens and gets event 805"
is "$(streams_open $((before + 1)))" "$((before + 1))" "lattice_event_streams counts it ($before before)"

# 30-31: SIGTERM with streams open: each ends, latticed exits 0 (lib's final point)
t0=$(date +%s%N)
lattice_stop 20
t1=$(date +%s%N)
is "$LATTICED_EXIT" 0 "latticed exits 0 with streams open"
ok "$(wait "${SPID[after]}"; [ $? = 0 ] && [ $(((t1 - t0) / 1000000)) -lt 10000 ] && echo 0 || echo 1)" \
	"the streams ended cleanly (curl exit 0), the stop took $(((t1 - t0) / 1000000)) ms"

# 32-34: a client gone while its stream was parked (nothing to send) would be
# noticed only at the next write (the keep-alive: 15 s here); latticed looks at
# parked sockets every second, and at once when a stream is refused, so the
# gone one's place frees up long before that.
lattice_start b --max-event-streams 2
stream p1 "$API/v1/events"
stream p2 "$API/v1/events"
is "$(streams_open 2)" 2 "a second replica with --max-event-streams 2: both taken"
stream_stop p1 # gone; its stream stays parked
REQ_HEADERS=('Accept: text/event-stream')
req GET /v1/events
REQ_HEADERS=()
is "$(err)" "503 too_many_event_streams" "the next is refused"
t0=$(date +%s%N)
n=$(for _ in $(seq 1 100); do [ "$(metric lattice_event_streams)" = 1 ] && break; sleep 0.1; done; metric lattice_event_streams)
t1=$(date +%s%N)
is "$n" 1 "the gone client's place is free after $(((t1 - t0) / 1000000)) ms (the keep-alive would take 15 s)"
stream_stop p2

done_testing
