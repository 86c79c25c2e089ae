#!/usr/bin/env bash
# ui.sh — the dashboard at /ui (docs/ui.md) in a real headless browser: Debian's
# chromium driven by puppeteer-core (tests/lib/ui_check.js), against a real
# lattice: PostgreSQL, nats-server with JetStream, latticed --nats, three
# lattice-agent processes (e1 and e2 in eu, e3 in us), and a chaos run report.
#   - latticed serves every file of ui/ byte for byte, with its type, no-cache;
#   - the page loads with no console error and no failed request, and asks
#     nothing of any other origin; leader, members, nodes, regions, bars;
#   - an actor created through the API appears without a reload (and its
#     event in the live feed); kill -9 of its agent turns the node unhealthy on
#     the page and a failover appears; a node's detail lists its actors;
#   - 123 nodes page 50 at a time; the region filter; no request asks for more
#     than 100 items; the chaos report panel shows only when a report exists;
#   - latticed stopped and started again: the page says so, reconnects by itself
#     and goes on showing new objects and events.
# UI_SCREENSHOTS=DIR saves docs' screenshots (ui-overview.png, ui-node-down.png)
# there: UI_SCREENSHOTS=$PWD/docs refreshes the committed ones.
. "$(dirname "$0")/lib.sh"
. "$top_srcdir/tests/lib/browser.sh"
SIM=$top_builddir/sim/lattice-sim
[ -x "$SIM" ] || bail "lattice-sim not built at $SIM"
# Without a browser this test cannot run: a skip here, a failure under CI=true.
browser_setup || skip_all "$BROWSER_WHY"

UI_POINTS=22 # tests/lib/ui_check.js's POINTS
plan $((UI_POINTS + 2))
lib_init
nats_start || bail "cannot start nats-server"
. "$(dirname "$0")/edge_lib.sh"

R=$T_DIR/reports
mkdir -p "$R"
start_a() {
	lattice_start a --nats "$NATS_URL" --heartbeat-timeout-ms 2000 --command-timeout-ms 1000 \
		--chaos-reports "$R" --ui-dir "$top_srcdir/ui"
}
start_a

# 1. The files, as latticed serves them.
served=1
for f in "$top_srcdir"/ui/*; do
	name=${f##*/}
	case $name in
	*.html) want="text/html" ;; *.css) want="text/css" ;; *.js) want="text/javascript" ;; *.svg) want="image/svg+xml" ;;
	*) want="?" ;;
	esac
	curl -s -D "$T_DIR/ui.h" -o "$T_DIR/ui.body" "$API/ui/$name"
	got=$(tr -d '\r' <"$T_DIR/ui.h" | awk 'NR==1{s=$2} tolower($1)=="content-type:"{t=$2} tolower($1)=="cache-control:"{c=$2} END{print s, t, c}')
	if [ "${got%;}" != "200 $want no-cache" ] && [ "$got" != "200 $want; no-cache" ] || ! cmp -s "$f" "$T_DIR/ui.body"; then
		diag "/ui/$name: $got (want 200 $want no-cache, the file byte for byte)"
		served=0
	fi
done
[ "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$API/ui")" = "301 $API/ui/" ] || { diag "GET /ui does not redirect to /ui/"; served=0; }
cmp -s "$top_srcdir/ui/index.html" <(curl -s "$API/ui/")
is "$served $?" "1 0" "latticed serves every file of ui/ with its type and no-cache; /ui -> /ui/ is index.html"

# 2. Three agents, their nodes healthy, bound to their command consumers (so
# the actor below starts, and fails over, through real acks).
agent_start e1 eu
agent_start e2 eu
agent_start e3 us
nodes_up() { get '/v1/nodes?status=healthy' '[.items[].id] | join(",")'; }
up=$(until_eq e1,e2,e3 nodes_up)
bound() { grep -l "bound to consumer" "$T_DIR"/agent-e[123].log 2>/dev/null | wc -l; }
is "$up $(until_eq 3 bound)" "e1,e2,e3 3" "three agents: healthy nodes, bound to their consumers"

# 3. The browser. ui_check.js prints its points and asks for actions; this
# shell does them (it owns the processes; req records each exchange for the
# contract check).
ui_do() { # ACTION ARGS: sets ANSWER
	local a i
	read -r -a a <<<"$1"
	ANSWER=ok
	case ${a[0]} in
	chaos_report)
		mkdir -p "$R/run1"
		cp "$top_srcdir"/tests/data/chaos/report-run/*.json* "$R/run1/"
		"$SIM" report "$R/run1" >"$T_DIR/sim-report.out" 2>&1 || ANSWER="lattice-sim report failed"
		;;
	create_actor)
		req POST /v1/actors "{\"id\":\"${a[1]}\",\"module\":\"oci://demo/${a[1]}:1\",\"cpu_required\":300,\"memory_required_mb\":256,\"priority\":50}"
		ANSWER="$STATUS $(jqr '.placements[0].node_id')"
		;;
	kill_agent)
		agent_kill "${a[1]}"
		;;
	stop_latticed) # SIGTERM; the restart reuses its port and data dir
		lattice_stop
		[ "$LATTICED_EXIT" = 0 ] || ANSWER="latticed exited $LATTICED_EXIT"
		;;
	start_latticed)
		start_a
		;;
	register_nodes)
		for ((i = 1; i <= a[1]; i++)); do
			req POST /v1/nodes "$(printf '{"id":"pool-%03d","region":"pool","cpu_capacity":1000,"memory_mb":2048}' "$i")"
			[ "$STATUS" = 201 ] || ANSWER="pool-$i: $STATUS $BODY"
		done
		;;
	*) ANSWER="unknown action ${a[0]}" ;;
	esac
}

coproc UI { browser_node "$top_srcdir/tests/lib/ui_check.js" "$API" 2>"$T_DIR/ui_check.err"; }
ui_out=${UI[0]} ui_in=${UI[1]} ui_pid=$UI_PID
got=0
# -t: a guard against a hung browser, far beyond what a run takes.
while IFS= read -r -t 900 line <&"$ui_out"; do
	case $line in
	"points "*) [ "${line#points }" = "$UI_POINTS" ] || diag "ui_check.js has ${line#points } points, ui.sh plans $UI_POINTS" ;;
	"point "*)
		line=${line#point }
		got=$((got + 1))
		[ $got -le "$UI_POINTS" ] && ok "${line%% *}" "${line#* }"
		;;
	"do "*)
		ui_do "${line#do }"
		printf '%s\n' "$ANSWER" >&"$ui_in"
		;;
	*) printf '%s\n' "$line" ;;
	esac
done
kill "$ui_pid" 2>/dev/null
wait "$ui_pid"
rc=$?
if [ $rc -ne 0 ] || [ $got -ne "$UI_POINTS" ]; then
	diag "ui_check.js exited $rc after $got points; its stderr:"
	tail -20 "$T_DIR/ui_check.err" | sed 's/^/#   /'
fi
for ((; got < UI_POINTS; got++)); do ok 1 "ui_check.js point $((got + 1)) (not reached)"; done

agents_stop
done_testing
