# edge.sh — phase 7 of bench/run.sh (sourced; issue 8 item 10): the edge
# protocol end to end with real agents.
#   set-up: nats-server -js and one latticed (a single replica) with --nats on
#     the phase-3 PostgreSQL server; EDGE_AGENTS lattice-agent processes (sim
#     driver, one process each) in EDGE_REGIONS regions; EDGE_ACTORS actors
#     created through the API (bench_api, c=16), waited for until every
#     placement is running (acked by its agent)
#   failover: kill -9 of EDGE_KILL agents at once (T0); the time from T0 to the
#     last replacement start acked (the failovers' finished_at), EDGE_REPEATS
#     times; the killed agents are restarted (same state dirs) and the lattice
#     settles between repeats (all nodes healthy, every command acked, the
#     fencing stops included)
#   commands: EDGE_TP_ACTORS actors scaled from 1 to EDGE_TP_REPLICAS replicas
#     (start commands) and back to 1 (stop commands) through PATCH; commands
#     acked per second (first created_at to last acked_at) and each command's
#     created_at -> acked_at, beside ../shared/bench/jetstream.sh's raw publish
#     rates measured in the same run (SKIP_JS=1 skips it)
# Sets edge[...] for the summary. Uses run.sh's say, out, top_builddir,
# top_srcdir, SHARED and servers.sh (nats_start, pg_createdb, free_port).
EDGE_AGENTS=${EDGE_AGENTS:-100}
EDGE_ACTORS=${EDGE_ACTORS:-1000}
EDGE_KILL=${EDGE_KILL:-10}
EDGE_REPEATS=${EDGE_REPEATS:-5}
EDGE_REGIONS=${EDGE_REGIONS:-4}
EDGE_HB_TIMEOUT_MS=${EDGE_HB_TIMEOUT_MS:-3000}
EDGE_TP_ACTORS=${EDGE_TP_ACTORS:-100}
EDGE_TP_REPLICAS=${EDGE_TP_REPLICAS:-50}
# Each agent reports 4,000 millicores and 4 GiB: bench_api's actors ask 10-59
# millicores and 1-16 MiB, so the fleet is far from full and the 10% of it a
# failover moves always finds room.
EDGE_CPU=${EDGE_CPU:-4000}
EDGE_MEM=${EDGE_MEM:-4096}

declare -A edge
EDGE_LPID=
EDGE_APIDS=()

edge_cleanup() {
	local p
	for p in "${EDGE_APIDS[@]}" $EDGE_LPID; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
	for p in "${EDGE_APIDS[@]}" $EDGE_LPID; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
	EDGE_APIDS=() EDGE_LPID=
}

edge_now() { date +%s%3N; }
edge_get() { curl -s --max-time 10 "http://127.0.0.1:$eport$1"; }
# edge_all PATH: every item of a paged list, one compact JSON object a line.
edge_all() {
	local after="" page sep
	sep=$([[ $1 == *\?* ]] && echo '&' || echo '?')
	while :; do
		page=$(edge_get "$1${sep}limit=1000${after:+&after=$after}") || return 1
		jq -c '.items[]' <<<"$page"
		after=$(jq -r '.next // empty' <<<"$page")
		[ -n "$after" ] || return 0
	done
}
# jq: RFC 3339 (UTC, "Z") to Unix ms.
EDGE_JQ_MS='def ms: if . == null then null else capture("^(?<s>[^.Z]+)(\\.(?<f>[0-9]+))?Z$") as $c
	| (($c.s + "Z") | fromdateiso8601) * 1000 + ((($c.f // "") + "000")[0:3] | tonumber) end;'
edge_count() { edge_get "/v1/commands?status=$1&limit=1000" | jq '.items | length'; }
# edge_settled: every node healthy, no command open, no failover running.
edge_settled() {
	[ "$(edge_all /v1/nodes | jq -s '[.[] | select(.status == "healthy")] | length')" = "$EDGE_AGENTS" ] &&
		[ "$(edge_count pending)" = 0 ] && [ "$(edge_count published)" = 0 ] &&
		[ "$(edge_get '/v1/failovers?status=in_progress&limit=1' | jq '.items | length')" = 0 ]
}
# edge_wait SECONDS: until edge_settled; returns 1 on timeout.
edge_wait() {
	local end=$(($(edge_now) + $1 * 1000))
	while [ "$(edge_now)" -lt "$end" ]; do
		edge_settled && return 0
		sleep 0.2
	done
	return 1
}
# edge_wait_open SECONDS: until lattice_commands_open is 0 (one cheap request
# per 100 ms, so the polling takes little of the CPU it measures).
edge_wait_open() {
	local end=$(($(edge_now) + $1 * 1000)) n
	while [ "$(edge_now)" -lt "$end" ]; do
		n=$(curl -s --max-time 5 "http://127.0.0.1:$eport/metrics" | awk '$1 == "lattice_commands_open" {print $2}')
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
edge_agent() {
	local i=$1 id
	id=$(printf 'edge-%03d' "$i")
	"$top_builddir/sim/lattice-agent" --nats "$NATS_URL" --node-id "$id" --region "region-$((i % EDGE_REGIONS))" \
		--cpu-capacity "$EDGE_CPU" --memory-mb "$EDGE_MEM" --state-dir "$out/agents/$id" \
		>>"$out/agents/$id.log" 2>&1 &
	EDGE_APIDS[$i]=$!
}
# edge_ticks PID...: CPU time (utime + stime, clock ticks) of these processes.
edge_ticks() {
	local p t=0 f
	for p in "$@"; do
		f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + ${f% *} + ${f#* }))
	done
	echo "$t"
}
edge_rss_kb() {
	local p t=0 r
	for p in "$@"; do
		r=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null)
		t=$((t + ${r:-0}))
	done
	echo "$t"
}
# edge_cmd_stats SINCE_MS TYPE: "count rate/s p50_ms p99_ms max_ms created_span_ms"
# of the acked commands of TYPE created at SINCE_MS or later; the rate is
# count / (last acked_at - first created_at).
edge_cmd_stats() {
	local f="$out/edge-cmds.tsv"
	edge_all /v1/commands | jq -r --argjson since "$1" --arg type "$2" "$EDGE_JQ_MS"'
		select(.command_type == $type and .status == "acked") | [(.created_at | ms), (.acked_at | ms)]
		| select(.[0] >= $since) | @tsv' >"$f"
	local n c0 c1 a1
	n=$(wc -l <"$f")
	[ "$n" -gt 0 ] || { echo "0 0 0 0 0 0"; return; }
	read -r c0 c1 a1 <<<"$(awk 'NR == 1 {c0 = $1; c1 = $1; a1 = $2}
		{if ($1 < c0) c0 = $1; if ($1 > c1) c1 = $1; if ($2 > a1) a1 = $2}
		END {printf "%.0f %.0f %.0f", c0, c1, a1}' "$f")"
	awk '{print $2 - $1}' "$f" | sort -n | awk -v n="$n" -v c0="$c0" -v c1="$c1" -v a1="$a1" '
		{l[NR] = $1}
		END {
			span = a1 - c0; if (span < 1) span = 1
			printf "%d %d %d %d %d %.0f\n", n, n * 1000 / span, l[int((n + 1) / 2)], l[int(0.99 * (n - 1)) + 1], l[n], c1 - c0
		}'
}
# edge_pct P VALUES...: nearest-rank percentile.
edge_pct() {
	local p=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v p="$p" '{a[NR] = $1} END {r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; print a[r]}'
}

# edge_js_last KIND: the last sequence of stream LATTICE_default_KIND.
edge_js_last() { nats_req "\$JS.API.STREAM.INFO.LATTICE_default_$1" '' | jq -r '.state.last_seq'; }
# edge_js_ms KIND SEQ: when nats-server stored that message (Unix ms).
edge_js_ms() {
	local t
	t=$(nats_req "\$JS.API.STREAM.MSG.GET.LATTICE_default_$1" "{\"seq\":$2}" | jq -r '.message.time')
	date -d "$t" +%s%3N
}

# Backlog: the scale-up's commands are created while nats-server is down, so
# their publication and acks run at what the leader, nats-server and the agents
# sustain, not at the rate PATCH creates them. Rates from nats-server's own
# store times: published = commands stored / (last - first stored); acked =
# acks stored / (last - first ack stored) (the agents reconnect first: their
# NATS reconnect wait is not counted); and the whole: all acked in the log.
edge_backlog() {
	local c0 a0 c1 a1 tc0 tc1 ta0 ta1 na t0 t1
	c0=$(edge_js_last CMD)
	a0=$(edge_js_last ACK)
	nats_stop
	seq 0 $((EDGE_TP_ACTORS - 1)) | xargs -P 8 -I{} curl -s -o /dev/null --max-time 30 -X PATCH \
		-H 'Content-Type: application/json' --data-binary "{\"replicas\":$EDGE_TP_REPLICAS}" "http://127.0.0.1:$eport/v1/actors/tp-{}"
	t0=$(edge_now)
	nats_start || { say "backlog: nats-server did not restart"; return; }
	edge_wait_open 300 || say "backlog: commands still open 300 s after nats-server came back"
	t1=$(edge_now)
	c1=$(edge_js_last CMD)
	a1=$(edge_js_last ACK)
	tc0=$(edge_js_ms CMD $((c0 + 1)))
	tc1=$(edge_js_ms CMD "$c1")
	ta0=$(edge_js_ms ACK $((a0 + 1)))
	ta1=$(edge_js_ms ACK "$a1")
	edge[bl.n]=$((c1 - c0))
	na=$((a1 - a0))
	edge[bl.pub]=$(awk -v n="${edge[bl.n]}" -v d=$((tc1 - tc0)) 'BEGIN{printf "%.0f", n * 1000 / (d > 0 ? d : 1)}')
	edge[bl.ack]=$(awk -v n="$na" -v d=$((ta1 - ta0)) 'BEGIN{printf "%.0f", n * 1000 / (d > 0 ? d : 1)}')
	edge[bl.all]=$((t1 - t0))
	say "backlog: ${edge[bl.n]} commands stored in $((tc1 - tc0)) ms (${edge[bl.pub]}/s published); $na acks stored from +$((ta0 - tc0)) to +$((ta1 - tc0)) ms after the first command (${edge[bl.ack]}/s acked); every ack in the log ${edge[bl.all]} ms after nats-server was started"
}

edge_phase() {
	local i k t0 t1 id
	say ""
	say "== edge: $EDGE_AGENTS lattice-agent processes (sim driver), $EDGE_ACTORS actors, kill -9 of $EDGE_KILL agents x $EDGE_REPEATS; commands beside jetstream.sh"
	# The peer first, alone on the machine: raw JetStream publish.
	if [ "${SKIP_JS:-0}" != 1 ] && [ -f "$SHARED/bench/jetstream.sh" ]; then
		RESULTS="$out/js" bash "$SHARED/bench/jetstream.sh" lattice >"$out/js.log" 2>&1 || say "jetstream.sh failed: see its log"
		local tsv="$out/js/jetstream-lattice.tsv"
		edge[js_async]=$(awk -F'\t' '$2 == "jetstream async" && $5 == "msgs/s" {print $6}' "$tsv" 2>/dev/null)
		edge[js_sync]=$(awk -F'\t' '$2 == "jetstream sync" && $5 == "msgs/s" {print $6}' "$tsv" 2>/dev/null)
		say "peer: ../shared/bench/jetstream.sh, 256 B messages: async publish (window 1000) ${edge[js_async]:-?} msgs/s, js_Publish one at a time ${edge[js_sync]:-?} msgs/s"
	fi

	nats_start || { say "cannot start nats-server: edge phase skipped"; return; }
	local eci
	eci=$(pg_createdb edge)
	eport=$(free_port)
	"$top_builddir/latticed" --listen "127.0.0.1:$eport" --raft-address "127.0.0.1:$(free_port)" --bootstrap \
		--data-dir "$out/edge" --pg "$eci" --schema-dir "$top_srcdir/schema" --nats "$NATS_URL" \
		--heartbeat-timeout-ms "$EDGE_HB_TIMEOUT_MS" --log-level info >"$out/edge.log" 2>&1 &
	EDGE_LPID=$!
	for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$eport/readyz" >/dev/null && break; sleep 0.1; done
	mkdir -p "$out/agents"
	for i in $(seq 0 $((EDGE_AGENTS - 1))); do edge_agent "$i"; done
	edge_wait 120 || { say "the $EDGE_AGENTS agents did not all turn healthy in 120 s: edge phase stopped"; edge_cleanup; return; }

	t0=$(edge_now)
	BENCH_REGIONS=$EDGE_REGIONS "$top_builddir/bench/bench_api" actors "127.0.0.1:$eport" "$EDGE_ACTORS" 16 >"$out/edge-fill.txt"
	edge_wait 120 || say "commands still open 120 s after creating the actors"
	local notrun
	notrun=$(edge_all /v1/actors | jq -s '[.[].placements[] | select(.state != "running")] | length')
	read -r "edge[fill_n]" "edge[fill_rate]" "edge[fill_p50]" "edge[fill_p99]" "edge[fill_max]" _ <<<"$(edge_cmd_stats "$t0" actor_start)"
	say "fill: $(sed 's/^RESULT //' "$out/edge-fill.txt"); ${edge[fill_n]} actor_start acked, ${edge[fill_rate]}/s end to end, created->acked p50 ${edge[fill_p50]} ms, p99 ${edge[fill_p99]} ms; placements not running: $notrun"

	# What 100 agents cost idle (heartbeats, periodic snapshots) with the actors running.
	local a0 a1 l0 l1 n0 n1
	a0=$(edge_ticks "${EDGE_APIDS[@]}"); l0=$(edge_ticks "$EDGE_LPID"); n0=$(edge_ticks "$NATS_PID")
	sleep 10
	a1=$(edge_ticks "${EDGE_APIDS[@]}"); l1=$(edge_ticks "$EDGE_LPID"); n1=$(edge_ticks "$NATS_PID")
	local hz
	hz=$(getconf CLK_TCK)
	edge[idle_agents]=$(awk -v t=$((a1 - a0)) -v hz="$hz" 'BEGIN{printf "%.1f", 100 * t / hz / 10}')
	edge[idle_lat]=$(awk -v t=$((l1 - l0)) -v hz="$hz" 'BEGIN{printf "%.1f", 100 * t / hz / 10}')
	edge[idle_nats]=$(awk -v t=$((n1 - n0)) -v hz="$hz" 'BEGIN{printf "%.1f", 100 * t / hz / 10}')
	edge[rss_agents]=$(($(edge_rss_kb "${EDGE_APIDS[@]}") / 1024))
	edge[rss_lat]=$(($(edge_rss_kb "$EDGE_LPID") / 1024))
	edge[rss_nats]=$(($(edge_rss_kb "$NATS_PID") / 1024))
	say "idle for 10 s with $EDGE_ACTORS actors: CPU (% of one core) agents together ${edge[idle_agents]}, latticed ${edge[idle_lat]}, nats-server ${edge[idle_nats]}; RSS agents together ${edge[rss_agents]} MiB ($((edge[rss_agents] * 1024 / EDGE_AGENTS)) KiB each), latticed ${edge[rss_lat]} MiB, nats-server ${edge[rss_nats]} MiB"

	# Failovers: kill EDGE_KILL agents spread over the regions (every
	# EDGE_AGENTS/EDGE_KILL-th, a different set each repeat), all at once. The
	# time is taken from the replicas themselves: once every displaced replica
	# runs on a live node, the last acked_at of the actor_start that put each one
	# there. (A failover's own finished_at does not serve: a replica moved onto a
	# node that was dead but not yet found out is moved again by that node's
	# failover, and the first failover then stays in_progress; see
	# docs/benchmarks.md.)
	local times=() stride=$((EDGE_AGENTS / EDGE_KILL)) killed pids fo ids displaced nd run f
	for k in $(seq 1 "$EDGE_REPEATS"); do
		killed=() pids=()
		for i in $(seq 0 $((EDGE_KILL - 1))); do
			killed+=($(((k - 1 + i * stride) % EDGE_AGENTS)))
		done
		ids=$(for i in "${killed[@]}"; do printf 'edge-%03d\n' "$i"; done | jq -R . | jq -sc .)
		displaced=$(edge_all /v1/actors | jq -sc --argjson ids "$ids" '[.[] | .id as $a | .placements[]
			| select(.node_id as $n | any($ids[]; . == $n)) | {a: $a, i: .instance}]')
		nd=$(jq length <<<"$displaced")
		for i in "${killed[@]}"; do pids+=("${EDGE_APIDS[$i]}"); done
		t0=$(edge_now)
		kill -9 "${pids[@]}"
		for i in "${killed[@]}"; do wait "${EDGE_APIDS[$i]}" 2>/dev/null; EDGE_APIDS[$i]=; done
		# Until every displaced replica is running on a live node.
		while :; do
			edge_all /v1/actors >"$out/edge-actors.json"
			run=$(jq -s --argjson ids "$ids" --argjson d "$displaced" '
				(map({key: .id, value: .placements}) | from_entries) as $p
				| [$d[] | . as $x | $p[$x.a][] | select(.instance == $x.i and .state == "running"
					and (.node_id as $n | any($ids[]; . == $n) | not))] | length' "$out/edge-actors.json")
			[ "$run" -ge "$nd" ] && break
			[ $(($(edge_now) - t0)) -gt 60000 ] && break
			sleep 0.2
		done
		t1=$(edge_now)
		# The last ack: the actor_start (created after T0) of each displaced
		# replica to the node it now runs on.
		edge_all /v1/commands | jq -c --argjson t0 "$t0" "$EDGE_JQ_MS"'
			select(.command_type == "actor_start" and (.created_at | ms) >= $t0)' >"$out/edge-cmds-$k.json"
		f=$(jq -rs --argjson ids "$ids" --argjson d "$displaced" --argjson t0 "$t0" --slurpfile acts "$out/edge-actors.json" "$EDGE_JQ_MS"'
			. as $cmds
			| ($acts | map({key: .id, value: .placements}) | from_entries) as $p
			| [$d[] | . as $x | ($p[$x.a][] | select(.instance == $x.i) | .node_id) as $to
				| [$cmds[] | select(.actor_id == $x.a and .instance == $x.i and .target_node == $to and .status == "acked")
				   | .acked_at | ms] | max] as $acks
			| [$cmds[] | select(.target_node as $n | any($ids[]; . == $n))] as $dead
			| [(if ($acks | length) == ($d | length) and all($acks[]; . != null) then ($acks | max) - $t0 else "none" end),
			   ($dead | length)] | @tsv' "$out/edge-cmds-$k.json")
		local last twice
		read -r last twice <<<"$f"
		# The failovers (after T0) of the killed nodes, for when detection and
		# commits happened; other nodes failed over should be none.
		fo=$(edge_all /v1/failovers | jq -s --argjson t0 "$t0" "$EDGE_JQ_MS"'[.[] | select((.started_at | ms) >= $t0)]')
		printf '%s\n' "$fo" >"$out/edge-failovers-$k.json"
		f=$(jq -r --argjson ids "$ids" --argjson t0 "$t0" "$EDGE_JQ_MS"'
			[.[] | select(.node_id as $n | any($ids[]; . == $n))] as $k
			| [([$k[].detected_at | ms] | min) - $t0, ([$k[].detected_at | ms] | max) - $t0,
			   ([$k[].started_at | ms] | max) - $t0, ($k | length), ([$k[] | select(.finished_at == null)] | length),
			   ([.[] | select(.node_id as $n | any($ids[]; . == $n) | not)] | length)] | @tsv' <<<"$fo")
		local d_first d_last s_last nfo stuck others
		read -r d_first d_last s_last nfo stuck others <<<"$f"
		if [ "$run" -ge "$nd" ] && [ "$last" != none ]; then
			times+=("$last")
		else
			times+=(999999)
			last="(not all: $run of $nd running elsewhere after 60 s)"
		fi
		say "failover $k: kill -9 of agents ${killed[*]}: $nd replicas displaced; nodes found unhealthy +$d_first..+$d_last ms, last failover committed +$s_last ms, last replacement start acked +$last ms (all seen running at +$((t1 - t0)) ms); $twice starts went to another killed node first (not yet found dead) and were moved again; $nfo failovers, $stuck of them still in_progress; failovers of other nodes: $others"
		for i in "${killed[@]}"; do edge_agent "$i"; done
		edge_wait 180 || say "failover $k: not settled 180 s after the agents came back"
		sleep 2
	done
	edge[fo_times]="${times[*]}"
	edge[fo_p50]=$(edge_pct 50 "${times[@]}")
	edge[fo_p99]=$(edge_pct 99 "${times[@]}")
	edge[fo_max]=$(edge_pct 100 "${times[@]}")
	say "kill -9 of $EDGE_KILL agents -> last replacement acked, $EDGE_REPEATS repeats (${edge[fo_times]} ms): p50 ${edge[fo_p50]} ms, p99 ${edge[fo_p99]} ms, max ${edge[fo_max]} ms; target heartbeat timeout + 1 s = $((EDGE_HB_TIMEOUT_MS + 1000)) ms"

	# Commands: scale EDGE_TP_ACTORS actors up and down. At most one replica per
	# node (EDGE_TP_REPLICAS <= agents), and back to one replica before the
	# failovers: lattice-agent reports two instances of one actor as instance 0
	# twice, which the controller drops as malformed (see docs/benchmarks.md).
	local body='{"module":"registry.local/bench:1","cpu_required":10,"memory_required_mb":1}'
	seq 0 $((EDGE_TP_ACTORS - 1)) | xargs -P 8 -I{} curl -s -o /dev/null --max-time 30 -X POST \
		-H 'Content-Type: application/json' --data-binary "${body%\}},\"id\":\"tp-{}\"}" "http://127.0.0.1:$eport/v1/actors"
	edge_wait 120 || say "commands still open 120 s after creating the tp- actors"
	local dir reps type
	for dir in up down; do
		[ "$dir" = up ] && reps=$EDGE_TP_REPLICAS type=actor_start || reps=1 type=actor_stop
		t0=$(edge_now)
		local c0 l0b n0b p0 p1 pgp
		# run.sh restarted PostgreSQL itself (phase 3): PG_PID is stale.
		pgp=$(head -1 "$PG_DIR/data/postmaster.pid")
		pgp="$pgp $(pg_children "$pgp")"
		a0=$(edge_ticks "${EDGE_APIDS[@]}"); l0b=$(edge_ticks "$EDGE_LPID"); n0b=$(edge_ticks "$NATS_PID")
		p0=$(edge_ticks $pgp); c0=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
		seq 0 $((EDGE_TP_ACTORS - 1)) | xargs -P 8 -I{} curl -s -o /dev/null --max-time 30 -X PATCH \
			-H 'Content-Type: application/json' --data-binary "{\"replicas\":$reps}" "http://127.0.0.1:$eport/v1/actors/tp-{}"
		edge_wait_open 300 || say "commands still open 300 s after scaling $dir"
		t1=$(edge_now)
		a1=$(edge_ticks "${EDGE_APIDS[@]}"); l1=$(edge_ticks "$EDGE_LPID"); n1=$(edge_ticks "$NATS_PID"); p1=$(edge_ticks $pgp)
		local cpu_s=$(( ($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat) - c0) ))
		local st
		st=$(edge_cmd_stats "$t0" "$type")
		read -r "edge[$dir.n]" "edge[$dir.rate]" "edge[$dir.p50]" "edge[$dir.p99]" "edge[$dir.max]" "edge[$dir.span]" <<<"$st"
		say "scale $dir to $reps replicas: ${edge[$dir.n]} $type acked in $((t1 - t0)) ms (settled), ${edge[$dir.rate]}/s from first created_at to last acked_at (the commands were created over ${edge[$dir.span]} ms); created->acked p50 ${edge[$dir.p50]} ms, p99 ${edge[$dir.p99]} ms, max ${edge[$dir.max]} ms; CPU s: agents $(awk -v t=$((a1 - a0)) -v hz="$hz" 'BEGIN{printf "%.2f", t / hz}'), latticed $(awk -v t=$((l1 - l0b)) -v hz="$hz" 'BEGIN{printf "%.2f", t / hz}'), nats-server $(awk -v t=$((n1 - n0b)) -v hz="$hz" 'BEGIN{printf "%.2f", t / hz}'), PostgreSQL $(awk -v t=$((p1 - p0)) -v hz="$hz" 'BEGIN{printf "%.2f", t / hz}'), whole machine (with this script's polling) $(awk -v t="$cpu_s" -v hz="$hz" 'BEGIN{printf "%.2f", t / hz}') (of $(awk -v t=$((t1 - t0)) 'BEGIN{printf "%.2f", 2 * t / 1000}') available)"
	done
	edge_backlog

	seq 0 $((EDGE_TP_ACTORS - 1)) | xargs -P 8 -I{} curl -s -o /dev/null --max-time 30 -X DELETE "http://127.0.0.1:$eport/v1/actors/tp-{}"
	edge_wait 120 || say "commands still open 120 s after deleting the tp- actors"

	edge_cleanup
	nats_stop
}
