#!/usr/bin/env bash
# run.sh — `make bench`: lattice's figures beside its peers, measured in one run.
#   1. placement decisions/s on 10,000 nodes for 100,000 actors (bench_sched);
#      taking and restoring a snapshot of such a model (bench_snap)
#   2. PostgreSQL single-row upsert TPS: ../shared/bench/pg.sh (the peer), DUR=$PG_DUR
#   3. acknowledged POST /v1/actors per second through HTTP -> Raft -> model ->
#      PostgreSQL at concurrency 1, 16 and 64 (bench_api, $DUR s each), beside
#      pg.sh's upsert run at c=16 on the same PostgreSQL server (over loopback TCP
#      as pg.sh runs it, and over the Unix socket), before and after
#   4. resident memory of a fresh latticed holding 10,000 nodes and 100,000 actors;
#      at that size, how long a Raft snapshot pauses the loop thread (the fork)
#      and how long restoring it holds the loop (a restart, and an install whose
#      PostgreSQL must be rebuilt), beside raft's election timeout (500 ms)
#   5. write tail latency: wrk -c16 POSTing actors to a latticed with 1,000 nodes,
#      Raft snapshots falling inside the run (--snapshot-threshold $TAIL_SNAP),
#      beside the same run with snapshots off (p99 and throughput)
#   6. a three-replica group (issue 7): acknowledged POST /v1/actors per second
#      with p50/p99 at c=1, 16, 64 (wrk, to the leader; c=16 also to a follower,
#      which passes writes on), beside a three-member etcd cluster (fsync on) under
#      the same wrk load (../shared/bench/etcd3.sh's setup and put script), and
#      the time from kill -9 of the leader to the first acknowledged write
#      through another replica (median of FAILOVERS repeats, default 5)
#   7. the edge protocol (issue 8, bench/edge.sh): nats-server -js, one latticed
#      with --nats, 100 lattice-agent processes, 1,000 actors; kill -9 of 10
#      agents at once to the last replacement start acked (p50/p99 of 5 repeats,
#      beside heartbeat timeout + 1 s); start/stop commands acked per second and
#      their created->acked latency, beside ../shared/bench/jetstream.sh's raw
#      JetStream publish in the same run
#   8. reads at dashboard scale (issue 10, bench/reads.sh): GET /v1/nodes/{id} and
#      100-node pages at c=64 on the leader and a follower of three replicas
#      holding 10,000 nodes and 100,000 actors, beside nginx's static file
#      (../shared/bench/http.sh) in the same run; writes alone and under reads
# Servers run on loopback only and are stopped on exit. Prints a summary table.
# Env: DUR (default 10), PG_DUR (default 5), SKIP_PG=1 skips pg.sh, NODES, ACTORS,
#      MEM_SNAP (phase 4's --snapshot-threshold; default a quarter of the fill, so
#      the last snapshot falls at its end),
#      TAIL_SNAP (default 16384), TAIL_DIR (where phase 5's data dirs go; default
#      the run's temp dir; /dev/shm takes the disk's own latency out of it),
#      SKIP_GROUP=1 skips phase 6, ONLY_GROUP=1 runs phase 6 alone, FAILOVERS (default 5),
#      SKIP_EDGE=1 skips phase 7, ONLY_EDGE=1 runs phase 7 alone, SKIP_READS=1 skips
#      phase 8, ONLY_READS=1 runs phase 8 alone (READ_NODES, READ_ACTORS), SKIP_JS=1 skips
#      jetstream.sh in it; EDGE_* (bench/edge.sh: agents, actors, kills, repeats);
#      KEEP_OUT=1 keeps the run's temp dir (logs, data dirs) for a look afterwards.
set -uo pipefail
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
DUR=${DUR:-10}
PG_DUR=${PG_DUR:-5}
NODES=${NODES:-10000}
ACTORS=${ACTORS:-100000}
TAIL_SNAP=${TAIL_SNAP:-16384}
SHARED=${SHARED:-$top_srcdir/../shared}
. "$top_srcdir/tests/lib/servers.sh"
. "$top_srcdir/bench/edge.sh"
. "$top_srcdir/bench/reads.sh"
# Phases 1-5 run unless one phase is asked for alone.
MAIN=1
[ "${ONLY_GROUP:-0}" = 1 ] || [ "${ONLY_EDGE:-0}" = 1 ] || [ "${ONLY_READS:-0}" = 1 ] && MAIN=0

out=$(mktemp -d /tmp/lattice-bench.XXXXXX)
LPID=
TAIL_DIRS=()
declare -A peer rate tailfig grp # figures by name; declared whatever phases run
cleanup() {
	[ -n "$LPID" ] && kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
	declare -F group_cleanup >/dev/null && group_cleanup
	reads_cleanup
	edge_cleanup
	servers_cleanup
	[ ${#TAIL_DIRS[@]} -gt 0 ] && rm -rf "${TAIL_DIRS[@]}"
	if [ "${KEEP_OUT:-0}" = 1 ]; then echo "kept: $out" >&2; else rm -rf "$out"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

say() { printf '%s\n' "$*"; }
[ -n "${SAN_CFLAGS:-}" ] && say "WARNING: this build uses sanitizers ($SAN_CFLAGS); figures are not representative"
say "lattice bench — $(date -u +%Y-%m-%dT%H:%MZ) — $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# wrk's request in phases 5 and 6 (written before both: phase 5 once ran wrk
# without it, i.e. GET /v1/actors).
cat >"$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"module":"registry.local/bench:1","cpu_required":1,"memory_required_mb":1}'
wrk.headers["Content-Type"] = "application/json"
LUA

if [ "$MAIN" = 1 ]; then
# 1. placement
say ""
say "== placement (bench_sched, $NODES nodes, $ACTORS actors)"
"$top_builddir/bench/bench_sched" "$NODES" "$ACTORS" | tee "$out/sched.txt"
place_rate=$(sed -n 's/^placement: .* = \([0-9]*\) decisions\/s.*/\1/p' "$out/sched.txt")
say ""
say "== snapshots of that model alone (bench_snap, $NODES nodes, $ACTORS actors)"
"$top_builddir/bench/bench_snap" "$NODES" "$ACTORS" | grep -v '^RESULT'

# 2. the peer: PostgreSQL upsert TPS from pg.sh
pg_on8= pg_on32= pg_off8= pg_off32=
if [ "${SKIP_PG:-0}" != 1 ] && [ -x "$SHARED/bench/pg.sh" ]; then
	say ""
	say "== peer: $SHARED/bench/pg.sh (DUR=$PG_DUR)"
	RESULTS="$out/pg" DUR=$PG_DUR bash "$SHARED/bench/pg.sh" lattice >"$out/pg.log" 2>&1 || say "pg.sh failed: see its log"
	tsv="$out/pg/pg-lattice.tsv"
	get() { awk -F'\t' -v s="$1" '$2=="pg upsert-300B" && $4==s && $5=="tps"{print $6}' "$tsv" 2>/dev/null; }
	pg_on8=$(get "sync_commit=on, c=8, -T $PG_DUR, s=10"); pg_on32=$(get "sync_commit=on, c=32, -T $PG_DUR, s=10")
	pg_off8=$(get "sync_commit=off, c=8, -T $PG_DUR, s=10"); pg_off32=$(get "sync_commit=off, c=32, -T $PG_DUR, s=10")
	say "pg upsert-300B tps: sync_commit=on c=8 $pg_on8, c=32 $pg_on32; sync_commit=off c=8 $pg_off8, c=32 $pg_off32"
else
	say "(pg.sh skipped)"
fi

fi
# 3. the write path
say ""
[ "$MAIN" = 1 ] && say "== write path: POST /v1/actors acknowledged (201) per second"
pg_start >/dev/null || { say "cannot start PostgreSQL"; exit 1; }
# Stock durability for the projection's server, as pg.sh uses (fsync on). It also
# listens on loopback TCP for the peer measurement below (latticed uses the socket).
as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
PG_PORT=$(free_port)
as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w \
	-o "-k $PG_DIR -p $PG_PORT -c listen_addresses=127.0.0.1" start >/dev/null
ci=$(pg_createdb bench)
# The peer at c=16 exactly: pg.sh's upsert workload (its own script, which it
# leaves in /tmp/bench-build) on this same stock server, (a) as pg.sh runs it —
# over loopback TCP, 2 pgbench threads, a per-transaction log — and (b) over the
# Unix socket latticed itself uses; each before and after the write-path runs, so
# that a drift of this shared machine's speed during the run shows.
if [ "$MAIN" = 1 ]; then
have_peer=0
if [ -f /tmp/bench-build/upsert.sql ] && [ -x "$PGBIN/pgbench" ]; then
	doc=$(sed -n "s/.*VALUES (:id, 1, '\(.*\)') ON CONFLICT.*/\1/p" /tmp/bench-build/upsert.sql)
	pg_createdb peer >/dev/null
	pg_psql peer "CREATE TABLE apply_state (id bigint PRIMARY KEY, rev bigint NOT NULL, doc jsonb NOT NULL)" >/dev/null
	pg_psql peer "INSERT INTO apply_state SELECT g, 1, '$doc'::jsonb FROM generate_series(1, 100000) g" >/dev/null
	pg_psql peer "VACUUM ANALYZE apply_state" >/dev/null
	pg_psql peer "CHECKPOINT" >/dev/null
	cp /tmp/bench-build/upsert.sql "$out/upsert.sql"
	chmod a+r "$out/upsert.sql"
	mkdir -p "$out/txlog"
	have_peer=1
fi
# peer_c16 tcp|unix: pgbench TPS of pg.sh's upsert at c=16 (sync_commit on).
peer_c16() {
	local host=$PG_DIR log=()
	[ "$1" = tcp ] && host=127.0.0.1 log=(-l --log-prefix="$out/txlog/c16")
	"$PGBIN/pgbench" -h "$host" -p "$PG_PORT" -U postgres -n -c 16 -j 2 -T "$PG_DUR" "${log[@]}" \
		-f "$out/upsert.sql" peer >"$out/pgbench16-$1.txt" 2>&1
	rm -f "$out/txlog/"*
	sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out/pgbench16-$1.txt" | cut -d. -f1
}
if [ "$have_peer" = 1 ]; then
	peer[tcp1]=$(peer_c16 tcp); peer[unix1]=$(peer_c16 unix)
	say "pg.sh's upsert at c=16 on this server, before: ${peer[tcp1]:-?} tps over TCP as pg.sh runs it, ${peer[unix1]:-?} tps over the Unix socket"
fi
# start_latticed NAME CONNINFO: a fresh latticed (data dir $out/NAME) on free ports;
# sets LPID and port.
start_latticed() {
	port=$(free_port)
	local rport name=$1 ci=$2; rport=$(free_port)
	shift 2
	"$top_builddir/latticed" --listen "127.0.0.1:$port" --raft-address "127.0.0.1:$rport" --bootstrap \
		--data-dir "$out/$name" --pg "$ci" --schema-dir "$top_srcdir/schema" --heartbeat-timeout-ms 0 \
		--log-level warn "$@" >"$out/$name.log" 2>&1 &
	LPID=$!
	for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
}
start_latticed data "$ci"
"$top_builddir/bench/bench_api" nodes "127.0.0.1:$port" "$NODES" 16 | tee "$out/nodes.txt"
for c in 1 16 64; do
	"$top_builddir/bench/bench_api" rate "127.0.0.1:$port" "$DUR" "$c" | tee "$out/rate$c.txt"
	rate[$c]=$(sed -n 's/.*per_sec=\([0-9]*\).*/\1/p' "$out/rate$c.txt")
done
objects() { curl -s "http://127.0.0.1:$port/metrics" | awk -v k="lattice_objects{kind=\"$1\"}" '$1 == k {print $2}'; }
mean() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0 && b > 0) printf "%d", (a + b) / 2 }'; }
pg_tcp= pg_unix=
if [ "$have_peer" = 1 ]; then
	peer[tcp2]=$(peer_c16 tcp); peer[unix2]=$(peer_c16 unix)
	say "pg.sh's upsert at c=16 on this server, after: ${peer[tcp2]:-?} tps over TCP, ${peer[unix2]:-?} tps over the Unix socket"
	pg_tcp=$(mean "${peer[tcp1]:-0}" "${peer[tcp2]:-0}"); pg_unix=$(mean "${peer[unix1]:-0}" "${peer[unix2]:-0}")
	pg_psql postgres "DROP DATABASE peer" >/dev/null
fi

fi
if [ "$MAIN" = 1 ]; then
# 4. memory with NODES nodes and ACTORS actors: a fresh latticed filled with
# exactly that many (the write-path runs above leave a number that depends on
# their speed).
say ""
say "== memory: latticed holding $NODES nodes and $ACTORS actors"
kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
MEM_SNAP=${MEM_SNAP:-$(((NODES + ACTORS) / 4))}
mem_ci=$(pg_createdb mem)
start_latticed mem "$mem_ci" --log-level info --snapshot-threshold "$MEM_SNAP"
"$top_builddir/bench/bench_api" nodes "127.0.0.1:$port" "$NODES" 16 >"$out/mem-nodes.txt"
"$top_builddir/bench/bench_api" actors "127.0.0.1:$port" "$ACTORS" 16 | tee "$out/fill.txt"
# The snapshots taken during the fill (every MEM_SNAP entries, the last at its
# end) are written before memory is read: a snapshot's buffer is mapped while
# raft writes it.
for _ in $(seq 1 600); do
	[ "$(grep -c 'raft snapshot taken' "$out/mem.log")" -ge $(((NODES + ACTORS) / MEM_SNAP)) ] && break
	sleep 0.1
done
actors=$(objects actor)
nodes=$(objects node)
rss_kb=$(awk '/^VmRSS/{print $2}' /proc/$LPID/status)
hwm_kb=$(awk '/^VmHWM/{print $2}' /proc/$LPID/status)
say "latticed: $nodes nodes, $actors actors, RSS $((rss_kb / 1024)) MiB (peak $((hwm_kb / 1024)) MiB)"
say "snapshots during the fill (--snapshot-threshold $MEM_SNAP):"
grep 'raft snapshot taken' "$out/mem.log" | sed 's/^/  /'
snap_line=$(grep 'raft snapshot taken' "$out/mem.log" | tail -1)
snap_pause=$(sed -n 's/.*the loop paused \([0-9.]*\) ms.*/\1/p' <<<"$snap_line")
snap_bytes=$(sed -n 's/.*: \([0-9]*\) bytes.*/\1/p' <<<"$snap_line")
# Restoring that snapshot: a restart (PostgreSQL up to date: decoding only), then
# the same data dir against an empty database (decoding and rendering the rebuild:
# what a replica installing a snapshot from the leader does).
kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
mv "$out/mem.log" "$out/mem-fill.log"
restore_ms() {
	start_latticed mem "$1" --log-level info
	sed -n 's/.*raft snapshot restored at index [0-9]* ([0-9]* bytes, [0-9]* unpacked; \([0-9.]*\) ms on the loop thread).*/\1/p' "$out/mem.log"
	grep 'raft snapshot restored' "$out/mem.log" | sed 's/^/  /' >&2
	echo "  latticed after the $2: RSS $(($(awk '/^VmRSS/{print $2}' /proc/$LPID/status) / 1024)) MiB (peak $(($(awk '/^VmHWM/{print $2}' /proc/$LPID/status) / 1024)) MiB)" >&2
	kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
	mv "$out/mem.log" "$out/mem-restore-$2.log"
}
restore_plain=$(restore_ms "$mem_ci" restart)
restore_rebuild=$(restore_ms "$(pg_createdb mem_rebuild)" rebuild)
LPID=
say "the last snapshot, $((${snap_bytes:-0} / 1048576)) MiB: the loop paused ${snap_pause:-?} ms to take it; restoring it held the loop ${restore_plain:-?} ms (restart), ${restore_rebuild:-?} ms (PostgreSQL rebuilt); raft's election timeout is 500 ms"

# 5. tail latency with snapshots inside the run (issue 6 item 8): wrk, as the
# issue measured it, over a fresh latticed with 1,000 nodes. Each POST creates an
# actor with a server-chosen id.
kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
LPID=
# wrk_ms LABEL FILE: a latency percentile line of wrk's in ms.
wrk_ms() {
	awk -v p="$1" '$1 == p {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
		m = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; printf "%.2f", m}' "$2"
}
snapshots_total() { curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "lattice_raft_snapshots_total" {print $2}'; }
# tail_run NAME THRESHOLD: c=16 with bench_api (each request timed on its own)
# then with wrk (which also counts the requests a steady client would have sent
# during a stall: coordinated omission), each $DUR s on a fresh latticed.

tail_run() {
	local name=$1 thr=$2 s0 s1 s2
	start_latticed "$name" "$(pg_createdb "$name")" --snapshot-threshold "$thr" --log-level info \
		--data-dir "${TAIL_DIR:-$out}/lattice-bench-$name-$$"
	TAIL_DIRS+=("${TAIL_DIR:-$out}/lattice-bench-$name-$$")
	"$top_builddir/bench/bench_api" nodes "127.0.0.1:$port" 1000 16 >/dev/null
	s0=$(snapshots_total)
	"$top_builddir/bench/bench_api" rate "127.0.0.1:$port" "$DUR" 16 >"$out/tail-$name.txt"
	s1=$(snapshots_total)
	wrk -t2 -c16 -d"${DUR}s" --latency -s "$out/post.lua" "http://127.0.0.1:$port/v1/actors" >"$out/wrk-$name.txt" 2>&1
	s2=$(snapshots_total)
	tailfig[$name.p99]=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' "$out/tail-$name.txt")
	tailfig[$name.rate]=$(sed -n 's/.*per_sec=\([0-9]*\).*/\1/p' "$out/tail-$name.txt")
	tailfig[$name.snaps]=$((s1 - s0))
	tailfig[$name.wp99]=$(wrk_ms 99% "$out/wrk-$name.txt")
	tailfig[$name.wrps]=$(awk '/^Requests\/sec:/{printf "%d", $2}' "$out/wrk-$name.txt")
	tailfig[$name.wsnaps]=$((s2 - s1))
	say "$name bench_api: $(sed 's/^RESULT //' "$out/tail-$name.txt"), ${tailfig[$name.snaps]} snapshots during the run"
	say "$name wrk: ${tailfig[$name.wrps]} req/s, p50 $(wrk_ms 50% "$out/wrk-$name.txt") ms, p99 ${tailfig[$name.wp99]} ms, ${tailfig[$name.wsnaps]} snapshots during the run"
	grep 'raft snapshot taken' "$out/$name.log" | sed 's/^/  /'
	kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
	LPID=
}
say ""
say "== write tail latency: POST /v1/actors at c=16 for ${DUR} s (bench_api, then wrk -t2 -c16), 1,000 nodes, data dir in ${TAIL_DIR:-$out}"
if command -v wrk >/dev/null; then
	tail_run tail_snap "$TAIL_SNAP"
	tail_run tail_nosnap 100000000
else
	say "wrk is not installed (scripts/deps.sh installs it): skipped"
fi

fi

# 6. three replicas beside three etcd members, under the same wrk load.

GPIDS=()
EPIDS=()
group_cleanup() {
	local p
	for p in "${GPIDS[@]}" "${EPIDS[@]}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
	for p in "${GPIDS[@]}" "${EPIDS[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
	GPIDS=() EPIDS=()
}
# wrk_sum FILE: rps p50_ms p99_ms errors of summary.lua's WRKSUM line.
wrk_sum() {
	awk '/^WRKSUM/{for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
		printf "%d %.2f %.2f %d", v["rps"], v["p50_us"] / 1000, v["p99_us"] / 1000, v["errors"]}' "$1"
}
group_phase() {
	local i c
	if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y etcd-server etcd-client \
			>"$out/etcd-apt.txt" 2>&1 || { say "cannot install etcd-server: skipped"; return; }
	fi
	say ""
	say "== a group of three: POST /v1/actors beside etcd puts (3 members, fsync on), wrk -c1/16/64 for ${DUR} s each"
	local ed="$out/etcd" cl="" eps="" cports=() pports=()
	mkdir -p "$ed"
	for i in 0 1 2; do cports[$i]=$(free_port); pports[$i]=$(free_port); done
	for i in 0 1 2; do cl+="${cl:+,}m$i=http://127.0.0.1:${pports[$i]}"; eps+="${eps:+,}http://127.0.0.1:${cports[$i]}"; done
	for i in 0 1 2; do
		etcd --name "m$i" --data-dir "$ed/m$i" --listen-client-urls "http://127.0.0.1:${cports[$i]}" \
			--advertise-client-urls "http://127.0.0.1:${cports[$i]}" --listen-peer-urls "http://127.0.0.1:${pports[$i]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${pports[$i]}" --initial-cluster "$cl" \
			--initial-cluster-state new --initial-cluster-token lattice-bench >"$ed/m$i.log" 2>&1 &
		EPIDS+=($!)
	done
	for _ in $(seq 1 100); do timeout 5 etcdctl --endpoints="$eps" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
	local eleader
	eleader=$(timeout 10 etcdctl --endpoints="$eps" endpoint status | awk -F', ' '$5=="true"{print $1}')
	cat "$SHARED/bench/lua/etcd_put.lua" "$SHARED/bench/lua/summary.lua" >"$out/etcd_put.lua"
	wrk -t2 -c16 -d3s -s "$out/etcd_put.lua" "$eleader/v3/kv/put" >/dev/null 2>&1 # warm-up
	for c in 1 16 64; do
		wrk -t"$([ "$c" = 1 ] && echo 1 || echo 2)" -c"$c" -d"${DUR}s" --latency -s "$out/etcd_put.lua" \
			"$eleader/v3/kv/put" >"$out/etcd-c$c.txt" 2>&1
		grp[etcd.$c]=$(wrk_sum "$out/etcd-c$c.txt")
		say "etcd put c=$c: ${grp[etcd.$c]} (req/s p50_ms p99_ms errors)"
	done
	group_cleanup

	local members="" hp=() rp=()
	for i in 1 2 3; do hp[$i]=$(free_port); rp[$i]=$(free_port); members+="${members:+,}$i=127.0.0.1:${rp[$i]}"; done
	for i in 1 2 3; do pg_createdb "g$i" >"$out/g$i.ci"; done
	gstart() {
		"$top_builddir/latticed" --id "$1" --bootstrap --members "$members" --listen "127.0.0.1:${hp[$1]}" \
			--data-dir "$out/g$1" --pg "$(cat "$out/g$1.ci")" --schema-dir "$top_srcdir/schema" \
			--heartbeat-timeout-ms 0 --log-level warn >>"$out/g$1.log" 2>&1 &
		GPIDS[$1]=$!
	}
	for i in 1 2 3; do gstart "$i"; done
	gleader() { curl -s --max-time 2 "http://127.0.0.1:${hp[$1]}/v1/cluster" | jq -r '.leader.id // empty' 2>/dev/null; }
	local L=
	for _ in $(seq 1 300); do
		L=$(gleader 1)
		[ -n "$L" ] && curl -sf "http://127.0.0.1:${hp[$L]}/readyz" >/dev/null && break
		sleep 0.1
	done
	for i in 1 2 3; do for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:${hp[$i]}/readyz" >/dev/null && break; sleep 0.1; done; done
	local F=$((L % 3 + 1))
	"$top_builddir/bench/bench_api" nodes "127.0.0.1:${hp[$L]}" 1000 16 >/dev/null
	cat "$out/post.lua" "$SHARED/bench/lua/summary.lua" >"$out/post_sum.lua"
	wrk -t2 -c16 -d3s -s "$out/post_sum.lua" "http://127.0.0.1:${hp[$L]}/v1/actors" >/dev/null 2>&1 # warm-up
	for c in 1 16 64; do
		wrk -t"$([ "$c" = 1 ] && echo 1 || echo 2)" -c"$c" -d"${DUR}s" --latency -s "$out/post_sum.lua" \
			"http://127.0.0.1:${hp[$L]}/v1/actors" >"$out/group-c$c.txt" 2>&1
		grp[lat.$c]=$(wrk_sum "$out/group-c$c.txt")
		say "lattice (3 replicas) POST /v1/actors to the leader, c=$c: ${grp[lat.$c]}"
	done
	wrk -t2 -c16 -d"${DUR}s" --latency -s "$out/post_sum.lua" "http://127.0.0.1:${hp[$F]}/v1/actors" \
		>"$out/group-follower.txt" 2>&1
	grp[lat.f16]=$(wrk_sum "$out/group-follower.txt")
	say "lattice (3 replicas) POST /v1/actors to a follower (passed on), c=16: ${grp[lat.f16]}"

	# Failover: kill -9 the leader; time until a write through another replica is acknowledged.
	local times=() k t0 t1 st
	for k in $(seq 1 "${FAILOVERS:-5}"); do
		L=$(gleader 1); [ -n "$L" ] || L=$(gleader 2)
		F=$((L % 3 + 1))
		t0=$(date +%s%3N)
		kill -9 "${GPIDS[$L]}"; wait "${GPIDS[$L]}" 2>/dev/null
		while :; do
			st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
				--data-binary '{"module":"registry.local/bench:1","cpu_required":1,"memory_required_mb":1}' \
				"http://127.0.0.1:${hp[$F]}/v1/actors")
			[ "$st" = 201 ] && break
			[ $(($(date +%s%3N) - t0)) -gt 30000 ] && break
		done
		t1=$(date +%s%3N)
		times+=($((t1 - t0)))
		say "failover $k: leader $L killed, first acknowledged write through replica $F after $((t1 - t0)) ms (HTTP $st)"
		gstart "$L"
		for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:${hp[$L]}/readyz" >/dev/null && break; sleep 0.1; done
		sleep 1
	done
	grp[failover]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	grp[failovers]="${times[*]}"
	group_cleanup
}
if [ "${SKIP_GROUP:-0}" != 1 ] && [ "${ONLY_EDGE:-0}" != 1 ] && [ "${ONLY_READS:-0}" != 1 ] && command -v wrk >/dev/null && command -v jq >/dev/null; then
	group_phase
fi

# 7. the edge protocol with real agents (bench/edge.sh).
if [ "${SKIP_EDGE:-0}" != 1 ] && [ "${ONLY_GROUP:-0}" != 1 ] && [ "${ONLY_READS:-0}" != 1 ]; then
	if [ -x "$top_builddir/sim/lattice-agent" ] && command -v jq >/dev/null; then
		edge_phase
	else
		say "(edge phase skipped: needs sim/lattice-agent and jq)"
	fi
fi

# 8. reads at dashboard scale (bench/reads.sh).
if [ "${SKIP_READS:-0}" != 1 ] && [ "${ONLY_GROUP:-0}" != 1 ] && [ "${ONLY_EDGE:-0}" != 1 ]; then
	if command -v wrk >/dev/null && command -v jq >/dev/null; then
		cat "$out/post.lua" "$SHARED/bench/lua/summary.lua" >"$out/post_sum.lua"
		reads_phase
	else
		say "(reads phase skipped: needs wrk and jq)"
	fi
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
say ""
say "== summary"
say "| figure | lattice | peer | ratio | target |"
say "|---|---|---|---|---|"
if [ "$MAIN" = 1 ]; then
say "| placement decisions/s ($NODES nodes, $ACTORS actors) | $place_rate | — | — | >= 200000 |"
for c in 1 16 64; do
	say "| POST /v1/actors acked/s, c=$c | ${rate[$c]} | pg upsert c=8 ${pg_on8:-?} / c=32 ${pg_on32:-?} (sync on) | $(ratio "${rate[$c]}" "${pg_on8:-0}") / $(ratio "${rate[$c]}" "${pg_on32:-0}") | $([ "$c" = 16 ] && echo '>= 50% at c=16' || echo '—') |"
done
say "| POST /v1/actors acked/s, c=16, vs pg.sh's upsert at c=16 as pg.sh runs it (TCP; mean of before and after) | ${rate[16]} | ${pg_tcp:-?} | $(ratio "${rate[16]}" "${pg_tcp:-0}") | >= 50% |"
say "| same, vs that upsert over the Unix socket (mean of before and after) | ${rate[16]} | ${pg_unix:-?} | $(ratio "${rate[16]}" "${pg_unix:-0}") | — |"
say "| same, vs sync_commit=off peer, c=16 | ${rate[16]} | c=8 ${pg_off8:-?} / c=32 ${pg_off32:-?} | $(ratio "${rate[16]}" "${pg_off8:-0}") / $(ratio "${rate[16]}" "${pg_off32:-0}") | — |"
say "| latticed RSS, $nodes nodes + $actors actors | $((rss_kb / 1024)) MiB | — | — | <= 150 MB |"
say "| loop pause taking a snapshot of that ($((${snap_bytes:-0} / 1048576)) MiB) / restoring it (restart; with PostgreSQL rebuilt) | ${snap_pause:-?} ms / ${restore_plain:-?} ms; ${restore_rebuild:-?} ms | — | — | < 500 ms (election timeout) |"
fi
if [ -n "${tailfig[tail_snap.p99]:-}" ]; then
	say "| POST /v1/actors p99 at c=16, ${tailfig[tail_snap.snaps]} snapshots in the run (bench_api) | ${tailfig[tail_snap.p99]} ms | no snapshots: ${tailfig[tail_nosnap.p99]} ms | — | <= 10 ms |"
	say "| same, throughput | ${tailfig[tail_snap.rate]}/s | no snapshots: ${tailfig[tail_nosnap.rate]}/s | $(ratio "${tailfig[tail_snap.rate]}" "${tailfig[tail_nosnap.rate]}") | not lower |"
	say "| same with wrk -c16 (coordinated omission counted), ${tailfig[tail_snap.wsnaps]} snapshots | ${tailfig[tail_snap.wp99]} ms, ${tailfig[tail_snap.wrps]} req/s | no snapshots: ${tailfig[tail_nosnap.wp99]} ms, ${tailfig[tail_nosnap.wrps]} req/s | — | — |"
fi
if [ -n "${grp[lat.16]:-}" ]; then
	for c in 1 16 64; do
		read -r lr lp50 lp99 lerr <<<"${grp[lat.$c]}"
		read -r er ep50 ep99 eerr <<<"${grp[etcd.$c]:-0 0 0 0}"
		say "| 3 replicas: POST /v1/actors acked/s (p50/p99 ms), c=$c, to the leader | $lr ($lp50/$lp99), $lerr errors | etcd put (3 members): $er ($ep50/$ep99), $eerr errors | $(ratio "$lr" "$er") | $([ "$c" = 16 ] && echo '>= 100%, p99 <= etcd p99' || echo '—') |"
	done
	read -r lr lp50 lp99 lerr <<<"${grp[lat.f16]}"
	say "| 3 replicas: same, c=16, to a follower (passed on to the leader) | $lr ($lp50/$lp99), $lerr errors | — | — | — |"
	say "| 3 replicas: kill -9 of the leader to the first acknowledged write, median of ${FAILOVERS:-5} (${grp[failovers]} ms) | ${grp[failover]} ms | — | — | <= 1500 ms |"
fi
met() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN{ exit !(a <= b) }' && echo met || echo missed; }
if [ -n "${edge[fo_p50]:-}" ]; then
	fo_target=$((EDGE_HB_TIMEOUT_MS + 1000))
	say "| edge: kill -9 of $EDGE_KILL of $EDGE_AGENTS agents to the last replacement acked, p50 / p99 / max of $EDGE_REPEATS (${edge[fo_times]} ms) | ${edge[fo_p50]} / ${edge[fo_p99]} / ${edge[fo_max]} ms | — | — | <= $fo_target ms (heartbeat timeout + 1 s): p99 $(met "${edge[fo_p99]}" "$fo_target") |"
fi
if [ -n "${edge[up.rate]:-}" ]; then
	for d in up down; do
		t=$([ "$d" = up ] && echo actor_start || echo actor_stop)
		r=$(ratio "${edge[$d.rate]}" "${edge[js_async]:-0}")
		m=missed
		[ -n "${edge[js_async]:-}" ] && awk -v a="${edge[$d.rate]}" -v b="${edge[js_async]}" 'BEGIN{ exit !(a >= 0.3 * b) }' && m=met
		[ -z "${edge[js_async]:-}" ] && m="n/a (no peer)"
		say "| edge: $t commands acked/s (${edge[$d.n]} from scaling $EDGE_TP_ACTORS actors $d; created->acked p50 / p99 ${edge[$d.p50]} / ${edge[$d.p99]} ms) | ${edge[$d.rate]} | raw JetStream publish: async ${edge[js_async]:-?}, one at a time ${edge[js_sync]:-?} msgs/s | $r / $(ratio "${edge[$d.rate]}" "${edge[js_sync]:-0}") | >= 30% of raw publish (async): $m |"
	done
	if [ -n "${edge[bl.pub]:-}" ]; then
		say "| edge: backlog of ${edge[bl.n]} commands (created while nats-server was down): published into JetStream /s | ${edge[bl.pub]} | raw JetStream publish: async ${edge[js_async]:-?} msgs/s | $(ratio "${edge[bl.pub]}" "${edge[js_async]:-0}") | — |"
		say "| edge: the same backlog, acks stored /s by the agents (first -> last ack stored; all in the log ${edge[bl.all]} ms after nats-server started) | ${edge[bl.ack]} | async ${edge[js_async]:-?}, one at a time ${edge[js_sync]:-?} msgs/s | $(ratio "${edge[bl.ack]}" "${edge[js_async]:-0}") / $(ratio "${edge[bl.ack]}" "${edge[js_sync]:-0}") | >= 30% of raw publish |"
	fi
	say "| edge: $EDGE_AGENTS agents idle with $EDGE_ACTORS actors: CPU (% of a core) / RSS together | ${edge[idle_agents]}% / ${edge[rss_agents]} MiB | latticed ${edge[idle_lat]}% / ${edge[rss_lat]} MiB; nats-server ${edge[idle_nats]}% / ${edge[rss_nats]} MiB | — | — |"
fi
reads_summary
