#!/usr/bin/env bash
# chaos_smoke.sh — issue 9's smoke scenario (sim/scenarios/smoke.json) through
# `lattice-sim run`, as make check runs it: three replicas in their own network
# namespaces with their own PostgreSQL, nats-server, 50 simulated agents, the
# workload, a fault of most kinds (agents killed and crashed without their
# disk, the leader killed, slow acks, the leader isolated by a partition, a
# follower's PostgreSQL killed), a settle period, the checker and the report.
#   - exit 0 and "VIOLATIONS: none": every check of docs/chaos.md held;
#   - the history has every fault's start and end, agent lines, leader changes,
#     workload answers of every kind; final.json has three identical databases;
#   - the report's files: report.json (figures), summary.txt, a timeline.svg
#     that xmllint reads;
#   - `lattice-sim check DIR` on the recorded run agrees; nothing of the run is
#     left behind (namespaces, processes).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/servers.sh"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
SIM=$top_builddir/sim/lattice-sim
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, iptables)"
for t in ip iptables jq xmllint nats-server; do
	command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ -x "$PGBIN/initdb" ] || skip_all "PostgreSQL server binaries not found in $PGBIN"
[ -x "$SIM" ] || bail "lattice-sim not built at $SIM"

plan 15
T_DIR=$(mktemp -d /tmp/lattice-chaos.XXXXXX) || bail "mktemp failed"
chmod 755 "$T_DIR" # PostgreSQL runs as user postgres: the run dir must be reachable
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T_DIR/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T_DIR/sanitizer"
SIM_PID=
cleanup() {
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
	if [ -n "${KEEP_LOGS:-}" ]; then echo "# kept $T_DIR"; else rm -rf "$T_DIR"; fi
}
trap cleanup EXIT
RUN=$T_DIR/run

# The whole run: timeout only guards a hang (the scenario is ~70 s).
timeout -s INT 600 "$SIM" run --scenario "$top_srcdir/sim/scenarios/smoke.json" --out "$RUN" \
	--schema-dir "$top_srcdir/schema" --latticed "$top_builddir/latticed" --pg-bindir "$PGBIN" \
	--seed "${CHAOS_SEED:-7}" >"$T_DIR/sim.out" 2>"$T_DIR/sim.log" &
SIM_PID=$!
RUN_PID=$SIM_PID
wait "$SIM_PID"
rc=$?
SIM_PID=
is "$rc" 0 "lattice-sim run: exit 0 (no violation)"
# (is and ok return 0 whatever they print: the diagnostics test the figures.)
[ "$rc" = 0 ] || { tail -30 "$T_DIR/sim.log" | sed 's/^/# /'; sed 's/^/# /' "$T_DIR/sim.out"; }
grep -q 'VIOLATIONS: none' "$RUN/summary.txt"
st=$?
ok $st "summary.txt: VIOLATIONS: none"
if [ $st != 0 ]; then
	sed 's/^/# /' "$RUN/summary.txt" 2>/dev/null
	jq -c '(if type == "array" then . else (.violations // []) end)[:5][]' "$RUN/violations.json" 2>/dev/null | cut -c1-600 | sed 's/^/# violation: /'
fi

H=$RUN/history.jsonl
is "$(jq -s -c '[.[] | select(.type == "nemesis")] | group_by(.f) | map("\(.[0].f):\(map(.phase) | sort | join(","))") ' "$H")" \
	'["crash_agents:end,start","kill_agents:start","kill_replica:end,start","partition:end,start","pg:end,start","slow_acks:end,start"]' \
	"every fault of the scenario started, and ended if it ends"
is "$(jq -s '[.[] | select(.type == "invoke")] | length' "$H")" \
	"$(jq -s '[.[] | select(.type == "ok" or .type == "fail" or .type == "info")] | length' "$H")" \
	"every request of the workload has its answer"
is "$(jq -s -c '[.[] | select(.type == "invoke") | .f] | unique' "$H")" \
	'["create","delete","migrate","policy","read","scale"]' "the workload sent every kind of request"
[ "$(jq -s '[.[] | select(.type == "observe" and .f == "leader")] | length' "$H")" -ge 2 ]
ok $? "the observer saw the leader change (killed, isolated)"
is "$(jq -s -c '[.[] | select(.type == "agent" and (.f == "crash" or .f == "restart" or .f == "dead"))] | group_by(.f) | map("\(.[0].f) \(length)")' "$H")" \
	'["crash 2","dead 2","restart 2"]' "agent lines: 2 dead, 2 crashed, 2 restarted"
[ "$(jq -s '[.[] | select(.type == "agent" and .f == "applied")] | length' "$H")" -gt 20 ]
ok $? "the agents applied commands (applied lines)"
is "$(jq -c '[.replicas[] | select(.alive) | .digest] | unique | length' "$RUN/final.json")" 1 \
	"final.json: the live replicas' databases are identical"
is "$(jq -c '.replicas | length' "$RUN/final.json")" 3 "final.json: three replicas"
jq -e . "$RUN/report.json" >/dev/null
ok $? "report.json is JSON"
xmllint --noout "$RUN/timeline.svg"
ok $? "timeline.svg is well-formed XML"
"$SIM" check "$RUN" >"$T_DIR/check.out" 2>&1
is "$?:$(tail -1 "$T_DIR/check.out")" "0:0 violations" "lattice-sim check DIR agrees: 0 violations"
is "$(ip netns list | grep -c "lattice-chaos-${RUN_PID}[a-z]-"; ps -eo args | grep -c "[l]atticed .*$RUN/")" "$(printf '0\n0')" \
	"nothing of the run is left: no namespace, no latticed"
# (ok always returns 0: the reports are printed by what found them)
if ls "$T_DIR"/sanitizer.* >/dev/null 2>&1; then
	for f in "$T_DIR"/sanitizer.*; do
		diag "$f:"
		grep -m1 -B2 -A40 -E 'ERROR: |runtime error:' "$f" | head -60 | sed 's/^/#   /'
	done
	ok 1 "no sanitizer report (lattice-sim, latticed)"
else
	ok 0 "no sanitizer report (lattice-sim, latticed)"
fi
done_testing
