#!/usr/bin/env bash
# ui_scale.sh — the dashboard of a big lattice: 10,000 nodes and 100,000 actors
# (UI_SCALE_NODES, UI_SCALE_ACTORS), loaded through the API with bench_api, then
# opened in Debian's chromium (tests/lib/ui_scale.js):
#   - the first render completes and shows the summary's totals;
#   - every list request asks for one page (limit <= 100) and gets <= 100 items;
#   - no console error, no failed request.
# Prints the figures (time to first render as the browser counts it, requests,
# largest response). Timeouts only guard hangs: no timing is asserted.
# The lattice runs without NATS and with failure detection off, so the nodes
# stay healthy and each actor's start command stays pending (100,000 commands
# in flight for the commands panel). UI_SCREENSHOTS=DIR saves ui-scale.png.
. "$(dirname "$0")/lib.sh"
. "$top_srcdir/tests/lib/browser.sh"
BENCH_API=$top_builddir/bench/bench_api
[ -x "$BENCH_API" ] || bail "bench_api not built at $BENCH_API (make bench/bench_api)"
browser_setup || skip_all "$BROWSER_WHY"
NODES=${UI_SCALE_NODES:-10000}
ACTORS=${UI_SCALE_ACTORS:-100000}

plan 5
lib_init
lattice_start big --ui-dir "$top_srcdir/ui"
PORT=${API##*:}

t0=$(now_ms)
"$BENCH_API" nodes "127.0.0.1:$PORT" "$NODES" 16 >"$T_DIR/fill-nodes.txt"
"$BENCH_API" actors "127.0.0.1:$PORT" "$ACTORS" 16 >"$T_DIR/fill-actors.txt"
req GET /v1/summary
is "$(jqr '"\(.nodes.total) \(.actors.total)"')" "$NODES $ACTORS" \
	"filled: $NODES nodes, $ACTORS actors ($(($(now_ms) - t0)) ms through the API)"
for f in nodes actors; do diag "bench_api $f: $(sed 's/^RESULT //' "$T_DIR/fill-$f.txt")"; done
# The summary's own cost at this size (what the page asks for on each refresh).
s0=$(now_ms)
req GET /v1/summary
diag "GET /v1/summary: $(($(now_ms) - s0)) ms, ${#BODY} bytes"

got=0
while IFS= read -r line; do
	case $line in
	"point "*)
		line=${line#point }
		got=$((got + 1))
		ok "${line%% *}" "${line#* }"
		;;
	"figure "*) diag "figure: ${line#figure }" ;;
	*) printf '%s\n' "$line" ;;
	esac
done < <(UI_SCALE_WANT="$NODES $ACTORS" browser_node "$top_srcdir/tests/lib/ui_scale.js" "$API" 2>"$T_DIR/ui_scale.err")
[ $got -eq 4 ] || { diag "ui_scale.js gave $got points of 4:"; tail -20 "$T_DIR/ui_scale.err" | sed 's/^/#   /'; }
for ((; got < 4; got++)); do ok 1 "ui_scale.js point $((got + 1)) (not reached)"; done
done_testing
