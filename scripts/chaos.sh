#!/usr/bin/env bash
# chaos.sh — `make chaos`: every shipped scenario of sim/scenarios/ through
# `lattice-sim run`, one after the other (edge2000.json, with no faults, is
# 2,000 agents beside the lattice under the default workload),
# then one table of their figures (docs/chaos.md). Runs as root (network
# namespaces, iptables, PostgreSQL as user postgres).
#
#   CHAOS_OUT=DIR        where the run dirs go (default: /var/tmp/lattice-chaos-<time>)
#   CHAOS_ONLY="a b"     only these scenarios (names without .json)
#   CHAOS_SEED=N         the same seed for every run (default: each its own, printed)
# Exit status: 0 when every run had no violation, 1 otherwise.
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
SIM=$top_builddir/sim/lattice-sim
OUT=${CHAOS_OUT:-/var/tmp/lattice-chaos-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
[ "$(id -u)" = 0 ] || { echo "chaos.sh: run as root (network namespaces, iptables)" >&2; exit 2; }
scenarios=()
for f in "$top_srcdir"/sim/scenarios/*.json; do
	name=$(basename "$f" .json)
	if [ -n "${CHAOS_ONLY:-}" ] && ! [[ " $CHAOS_ONLY " == *" $name "* ]]; then continue; fi
	scenarios+=("$name")
done
declare -A rc=()
fail=0
for name in "${scenarios[@]}"; do
	echo "== $name ($(date -u +%H:%M:%S))"
	args=(run --scenario "$top_srcdir/sim/scenarios/$name.json" --out "$OUT/$name"
	      --schema-dir "$top_srcdir/schema" --latticed "$top_builddir/latticed")
	[ -n "${CHAOS_SEED:-}" ] && args+=(--seed "$CHAOS_SEED")
	"$SIM" "${args[@]}" >"$OUT/$name.log" 2>&1
	rc[$name]=$?
	[ "${rc[$name]}" = 0 ] || fail=1
	[ -f "$OUT/$name/summary.txt" ] && cat "$OUT/$name/summary.txt" || tail -20 "$OUT/$name.log"
done
echo
printf '%-16s %-6s %-10s %-22s %-22s %-9s %-8s %s\n' scenario exit violations "detection p50/p99/max" \
	"failover p50/p99/max" displaced leaders commands
for name in "${scenarios[@]}"; do
	r=$OUT/$name/report.json
	if [ -f "$r" ]; then
		jq -r --arg n "$name" --arg rc "${rc[$name]}" '
		  def f(x): if x == null then "-" else (x | tostring) end;
		  [$n, $rc, f(.violations.total),
		   "\(f(.detection.p50_ms))/\(f(.detection.p99_ms))/\(f(.detection.max_ms))",
		   "\(f(.failover.p50_ms))/\(f(.failover.p99_ms))/\(f(.failover.max_ms))",
		   f(.failover.displaced), f(.leaders.changes),
		   "\(f(.commands.sent)) sent \(f(.commands.acked)) acked \(f(.commands.retried)) retried \(f(.commands.failed)) failed \(f(.commands.superseded)) superseded"] | @tsv' "$r" |
			awk -F'\t' '{ printf "%-16s %-6s %-10s %-22s %-22s %-9s %-8s %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
	else
		printf '%-16s %-6s (no report: see %s)\n' "$name" "${rc[$name]}" "$OUT/$name.log"
	fi
done
echo "runs in $OUT"
exit $fail
