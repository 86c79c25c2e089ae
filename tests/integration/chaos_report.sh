#!/usr/bin/env bash
# chaos_report.sh — latticed --chaos-reports DIR serves the newest chaos run's
# report for the dashboard (docs/chaos.md "The report on the API"):
#   - without the option: 404 not_found saying how to get one;
#   - with it but no run yet: 404 naming the dir;
#   - two runs (tests/data/chaos/report-run, its report written by `lattice-sim
#     report`): the one written last is served, report.json with run_dir, the
#     picture as image/svg+xml, byte for byte;
#   - a report.json that is not JSON: 500 internal, and latticed keeps serving;
#   - a query parameter: 400 invalid_query.
. "$(dirname "$0")/lib.sh"
SIM=$top_builddir/sim/lattice-sim
[ -x "$SIM" ] || bail "lattice-sim not built at $SIM"
plan 11
lib_init

lattice_start plain
req GET /v1/chaos/report
is "$(err) $(jqr .error.message | grep -c -- --chaos-reports)" "404 not_found 1" \
	"no --chaos-reports: 404 not_found, the message names the option"
lattice_stop

R=$T_DIR/reports
mkdir -p "$R"
lattice_start rep --chaos-reports "$R"
req GET /v1/chaos/report
is "$(err)" "404 not_found" "no run yet: 404 not_found"

for run in older newer; do
	mkdir -p "$R/$run"
	cp "$top_srcdir"/tests/data/chaos/report-run/*.json* "$R/$run/"
	"$SIM" report "$R/$run" >/dev/null 2>&1 || bail "lattice-sim report $run failed"
	sleep 1.1 # distinct modification times
done
req GET /v1/chaos/report
is "$STATUS $(jqr .run_dir)" "200 newer" "two runs: the newest is served, with run_dir"
is "$(jqr '.verdict') $(jqr '.failover.max_ms')" \
	"$(jq -r '.verdict' "$R/newer/report.json") $(jq -r '.failover.max_ms' "$R/newer/report.json")" \
	"... its report.json's figures"
touch "$R/older/report.json"
req GET /v1/chaos/report
is "$(jqr .run_dir)" "older" "a report written later wins (modification time)"
curl -s -D "$T_DIR/svg.h" -o "$T_DIR/svg" "$API/v1/chaos/report/timeline.svg"
is "$(awk 'NR==1{print $2}' "$T_DIR/svg.h") $(grep -i '^content-type:' "$T_DIR/svg.h" | tr -d '\r' | awk '{print $2}')" \
	"200 image/svg+xml" "timeline.svg: 200 image/svg+xml"
cmp -s "$T_DIR/svg" "$R/older/timeline.svg"
ok $? "... the run's picture, byte for byte"
rm "$R/older/timeline.svg"
req GET /v1/chaos/report/timeline.svg
is "$(err)" "404 not_found" "the newest run has no picture: 404"
echo '{"not json' >"$R/older/report.json"
req GET /v1/chaos/report
is "$(err)" "500 internal" "a report.json that is not JSON: 500 internal"
req GET /healthz
is "$STATUS" 200 "... and latticed keeps serving"
req GET '/v1/chaos/report?x=1'
is "$(err)" "400 invalid_query" "a query parameter: 400 invalid_query"
done_testing
