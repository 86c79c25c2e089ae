#!/usr/bin/env bash
# alerts.sh — the Prometheus alerting rules we ship (deploy/prometheus/
# lattice-alerts.yml, docs/operations.md "Alerts"): promtool checks them and
# runs their unit tests (lattice-alerts.test.yml: each alert fires when it
# should, not before, with its labels and text); every metric they use is one
# a running latticed (with NATS) exposes.
. "$(dirname "$0")/lib.sh"
plan 4
command -v promtool >/dev/null || bail "promtool is not installed (Debian package prometheus; scripts/deps.sh installs it)"
RULES=$top_srcdir/deploy/prometheus/lattice-alerts.yml
lib_init

promtool check rules "$RULES" >"$T_DIR/check.out" 2>&1
rc=$?
[ $rc -ne 0 ] && sed 's/^/# /' "$T_DIR/check.out"
ok $rc "promtool check rules: $(grep -o '[0-9]* rules found' "$T_DIR/check.out")"
(cd "$top_srcdir/deploy/prometheus" && promtool test rules lattice-alerts.test.yml) >"$T_DIR/test.out" 2>&1
rc=$?
[ $rc -ne 0 ] && sed 's/^/# /' "$T_DIR/test.out"
ok $rc "promtool test rules: every alert fires when it should and not before"

nats_start || bail "cannot start nats-server"
lattice_start a --nats "$NATS_URL"
. "$(dirname "$0")/edge_lib.sh"
is "$(until_eq 1 metric lattice_nats_connected)" 1 "a latticed connected to NATS"
curl -s "$API/metrics" >"$T_DIR/metrics.txt"
missing=""
for m in $(grep -o 'lattice_[a-z_]*' "$RULES" | sort -u); do
	grep -q "^$m[{ ]" "$T_DIR/metrics.txt" || missing="$missing $m"
done
is "$missing" "" "every metric the rules use is exposed by latticed ($(grep -o 'lattice_[a-z_]*' "$RULES" | sort -u | wc -l) metrics)"
done_testing
