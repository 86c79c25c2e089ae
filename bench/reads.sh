# reads.sh — phase 8 of `make bench` (sourced by bench/run.sh): reads at
# dashboard scale (issue 10, item 7). A group of three replicas holding
# READ_NODES nodes and READ_ACTORS actors; wrk at c=64 for DUR s on
#   GET /v1/nodes/{id}         (a random node of the fill each request)
#   GET /v1/nodes?limit=100    (a page at a random cursor, as a dashboard pages)
#   GET /v1/actors/{id}        (a random actor)
#   GET /v1/actors?limit=100   (a page at a random cursor)
#   GET /healthz               (latticed's own ceiling)
# on the leader and on a follower, beside nginx serving a static JSON file
# (../shared/bench/http.sh) in the same run; then POST /v1/actors at c=16 for
# DUR s under a dashboard load (node and actor reads at a fixed ~1,000 req/s
# on each follower) and under /healthz at that rate (its control), under
# saturating reads (c=32 on each follower) and under
# saturating /healthz (a CPU-only control), each against writes alone in
# alternating turns (READ_DASH_TURNS, default 16, for the dashboard load and
# its control; READ_TURNS, default 10, for the saturating ones; DUR/2 s each).
# Targets: a single-object GET >= 50% of nginx's static rate, a list page >=
# 10%, p99 <= 10 ms, writes slowed by at most 10% under the dashboard load
# (judged on the turn pairs without a Raft snapshot: snapshots come every
# 32,768 entries whatever the reads, and one costs its turn 20-50%).
# Env: READ_NODES (default 10000), READ_ACTORS (100000), DUR, READ_LATTICED_ARGS
# (more latticed options, e.g. "--http-threads 2" or "--loop-nice 0"),
# READ_WRITES_ONLY=1 (only the writes).

reads_cleanup() {
	local p
	for p in "${RPIDS[@]}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
	for p in "${RPIDS[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
	RPIDS=()
}
RPIDS=()
declare -A rd # figures by name

# rd_wrk NAME URL C LUA: wrk for DUR s; rd[NAME] = "rps p50_ms p99_ms errors"
rd_wrk() {
	wrk -t2 -c"$3" -d"${DUR}s" --latency -s "$4" "$2" >"$out/reads-$1.txt" 2>&1
	rd[$1]=$(wrk_sum "$out/reads-$1.txt")
	say "$(printf '%-34s' "$1:") ${rd[$1]} (req/s p50_ms p99_ms errors)"
}

# writes_under NAME C LUA1 URL1 LUA2 URL2: POST /v1/actors at c=16 on the
# leader (rd[writes.NAME]) while wrk reads URL1 and URL2 at c=C (one thread
# each, DUR + 2 s, at nice BG_NICE (0); their figures in reads-bg1.txt and
# reads-bg2.txt).
writes_under() {
	nice -n "${BG_NICE:-0}" wrk -t1 -c"$2" -d"$((DUR + 2))s" -s "$3" "$4" >"$out/reads-bg1.txt" 2>&1 &
	local b1=$!
	nice -n "${BG_NICE:-0}" wrk -t1 -c"$2" -d"$((DUR + 2))s" -s "$5" "$6" >"$out/reads-bg2.txt" 2>&1 &
	local b2=$!
	sleep 1
	rd_wrk "writes.$1" "http://127.0.0.1:${hp[$L]}/v1/actors" 16 "$out/post_sum.lua"
	wait "$b1" "$b2"
}

# writes_compare NAME C LUA1 URL1 LUA2 URL2: READ_TURNS (10) turns of writes
# alone then writes_under the load, DUR/2 s each. rd[writes.NAME.alone] and
# rd[writes.NAME] are the turns' means ("rps p50_ms p99_ms errors");
# rd[writes.NAME.pct] is "MEAN HALF MEDIAN": how much slower each turn under
# the load was than the turn alone just before it, as the mean over the turns
# with its 95% confidence half-width (Student's t) and the median; rd[lc.NAME]
# and rd[snap.NAME] count leader changes and Raft snapshots meanwhile.
# On a shared 2-core machine writes alone move by 2x between turns of a few
# seconds (a snapshot on all three replicas at once -- a fork, a 1-2 MB fsync
# the log's appends queue behind -- PostgreSQL's checkpoints and autovacuum,
# the hypervisor's steal): only pairs of adjacent turns, many of them, tell a
# load's cost from that, and the half-width says how far the figure can be
# trusted.
writes_compare() {
	local DUR=$(((DUR + 1) / 2)) t alone=() under=() pct=() clean=() c0 c1 c2
	local lc=0 snap=0
	rd[turns.$1]=${TURNS:-${READ_TURNS:-10}}
	for t in $(seq 1 "${rd[turns.$1]}"); do
		c0=($(raft_counts))
		rd_wrk "writes.$1.alone.$t" "http://127.0.0.1:${hp[$L]}/v1/actors" 16 "$out/post_sum.lua"
		alone+=("${rd[writes.$1.alone.$t]}")
		c1=($(raft_counts))
		writes_under "$1.$t" "$2" "$3" "$4" "$5" "$6"
		under+=("${rd[writes.$1.$t]}")
		c2=($(raft_counts))
		lc=$((lc + c2[0] - c0[0]))
		snap=$((snap + c2[1] - c0[1]))
		local a=(${rd[writes.$1.alone.$t]}) u=(${rd[writes.$1.$t]})
		pct+=("$(awk -v a="${a[0]}" -v u="${u[0]}" 'BEGIN{ printf "%.1f", (a > 0 ? 100 * (a - u) / a : 100) }')")
		# Raft snapshots come every --snapshot-threshold entries, whatever
		# reads run: a pair with one in either turn measures the snapshot.
		[ $((c2[1] - c0[1])) -eq 0 ] && clean+=("${pct[-1]}")
		say "$(printf '%-34s' "  turn $t:") slower by ${pct[-1]}%; snapshots taken: $((c1[1] - c0[1])) alone / $((c2[1] - c1[1])) under; leader changes: $((c2[0] - c0[0]))"
	done
	rd[writes.$1.alone]=$(printf '%s\n' "${alone[@]}" | awk '{for (i = 1; i <= 4; i++) s[i] += $i; n++} END{printf "%.0f %.2f %.2f %d", s[1] / n, s[2] / n, s[3] / n, s[4]}')
	rd[writes.$1]=$(printf '%s\n' "${under[@]}" | awk '{for (i = 1; i <= 4; i++) s[i] += $i; n++} END{printf "%.0f %.2f %.2f %d", s[1] / n, s[2] / n, s[3] / n, s[4]}')
	rd[writes.$1.pct]=$(pct_stats "${pct[@]}")
	rd[writes.$1.clean]="$(pct_stats "${clean[@]}") ${#clean[@]}"
	rd[lc.$1]=$lc
	rd[snap.$1]=$snap
	local p=(${rd[writes.$1.pct]})
	local q=(${rd[writes.$1.clean]})
	say "$(printf '%-34s' "writes.$1 (means):") alone ${rd[writes.$1.alone]} / under ${rd[writes.$1]}; slower by ${p[0]}% +/- ${p[1]}% (median ${p[2]}%); snapshots: $snap; leader changes: $lc; the ${q[3]} pairs without a snapshot: ${q[0]}% +/- ${q[1]}% (median ${q[2]}%)"
}

# pct_stats PCT...: "MEAN HALF MEDIAN" of the values, HALF the 95% confidence
# half-width of the mean (Student's t); "? ? ?" for none.
pct_stats() {
	[ $# -gt 0 ] || { echo "? ? ?"; return; }
	printf '%s\n' "$@" | sort -g | awk '
		# Student t, 97.5th percentile, by degrees of freedom (1-30; 2.0 past)
		BEGIN{ split("12.71 4.30 3.18 2.78 2.57 2.45 2.36 2.31 2.26 2.23 2.20 2.18 2.16 2.14 2.13 2.12 2.11 2.10 2.09 2.09 2.08 2.07 2.07 2.06 2.06 2.06 2.05 2.05 2.05 2.04", t, " ") }
		{ v[NR] = $1; s += $1; q += $1 * $1 }
		END{
			m = s / NR; var = NR > 1 ? (q - NR * m * m) / (NR - 1) : 0; sd = var > 0 ? sqrt(var) : 0
			h = NR > 1 ? (NR - 1 <= 30 ? t[NR - 1] : 2.0) * sd / sqrt(NR) : 0
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.0f %.0f %.0f", m, h, med
		}'
}

# raft_counts: "LEADER_CHANGES SNAPSHOTS", lattice_raft_leader_changes_total
# and lattice_raft_snapshots_total summed over the replicas.
raft_counts() {
	local i
	for i in 1 2 3; do
		curl -s --max-time 5 "http://127.0.0.1:${hp[$i]}/metrics"
	done | awk '$1 == "lattice_raft_leader_changes_total" {l += $2} $1 == "lattice_raft_snapshots_total" {s += $2}
		END{printf "%d %d\n", l, s}'
}

reads_phase() {
	local nodes=${READ_NODES:-10000} actors=${READ_ACTORS:-100000} i
	say ""
	say "== reads at dashboard scale: 3 replicas, $nodes nodes, $actors actors; wrk c=64 for ${DUR} s each"
	# The peer first, on a quiet machine: nginx's static file.
	if [ -x "$SHARED/bench/http.sh" ]; then
		RESULTS="$out/shared" DUR="$DUR" bash "$SHARED/bench/http.sh" reads >"$out/http.txt" 2>&1
		# TSV: label, name, tool, settings, metric, value
		rd[nginx]=$(awk -F'\t' '$2 == "http GET static json" && $4 ~ /c=64/ && $5 == "req/s" {print int($6)}' \
			"$out/shared/http-reads.tsv" 2>/dev/null)
		rd[nginx_p99]=$(awk -F'\t' '$2 == "http GET static json" && $4 ~ /c=64/ && $5 == "p99 ms" {print $6}' \
			"$out/shared/http-reads.tsv" 2>/dev/null)
		say "nginx static JSON, c=64 (../shared/bench/http.sh): ${rd[nginx]:-?} req/s, p99 ${rd[nginx_p99]:-?} ms"
	else
		say "($SHARED/bench/http.sh not found: no nginx figure)"
	fi
	local members="" hp=() rp=()
	for i in 1 2 3; do hp[$i]=$(free_port); rp[$i]=$(free_port); members+="${members:+,}$i=127.0.0.1:${rp[$i]}"; done
	for i in 1 2 3; do
		pg_createdb "r$i" >"$out/r$i.ci"
		"$top_builddir/latticed" --id "$i" --bootstrap --members "$members" --listen "127.0.0.1:${hp[$i]}" \
			--data-dir "$out/r$i" --pg "$(cat "$out/r$i.ci")" --schema-dir "$top_srcdir/schema" \
			--heartbeat-timeout-ms 0 --log-level warn ${READ_LATTICED_ARGS:-} >>"$out/r$i.log" 2>&1 &
		RPIDS[$i]=$!
	done
	local L=
	for _ in $(seq 1 300); do
		L=$(curl -s --max-time 2 "http://127.0.0.1:${hp[1]}/v1/cluster" | jq -r '.leader.id // empty' 2>/dev/null)
		[ -n "$L" ] && curl -sf "http://127.0.0.1:${hp[$L]}/readyz" >/dev/null && break
		sleep 0.1
	done
	local F=$((L % 3 + 1)) F2=$(((L + 1) % 3 + 1))
	"$top_builddir/bench/bench_api" nodes "127.0.0.1:${hp[$L]}" "$nodes" 16 >"$out/reads-fill-nodes.txt"
	"$top_builddir/bench/bench_api" actors "127.0.0.1:${hp[$L]}" "$actors" 16 >"$out/reads-fill.txt"
	# Every replica's PostgreSQL shows the whole fill before any read is timed.
	local want
	want=$(curl -s -D - -o /dev/null "http://127.0.0.1:${hp[$L]}/healthz" | awk 'tolower($1) == "x-lattice-index:" {print $2+0}')
	for i in 1 2 3; do
		for _ in $(seq 1 600); do
			curl -sf -o /dev/null "http://127.0.0.1:${hp[$i]}/v1/nodes?limit=1&min_index=$want" && break
			sleep 0.1
		done
	done
	say "filled: $(tail -1 "$out/reads-fill.txt")"
	# PostgreSQL's after-fill work (autovacuum of 110,000 new rows, the
	# checkpoint) done now rather than during the timed reads.
	for i in 1 2 3; do pg_psql "r$i" "VACUUM ANALYZE" >/dev/null 2>&1; done
	pg_psql postgres "CHECKPOINT" >/dev/null 2>&1
	# What the view costs: each replica's resident memory with the fill, and
	# the loop time of its last whole build.
	for i in 1 2 3; do
		rd[rss.$i]=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/${RPIDS[$i]}/status" 2>/dev/null)
	done
	say "RSS with the fill: ${rd[rss.1]} / ${rd[rss.2]} / ${rd[rss.3]} MiB (replicas 1-3; leader $L)"
	cat >"$out/get_node.lua" <<LUA
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("/v1/nodes/bench-node-%06d", math.random(0, $((nodes - 1)))))
end
LUA
	# Pages: the first, then each next one by its cursor (a dashboard paging on).
	cat >"$out/list_nodes.lua" <<LUA
math.randomseed(7)
request = function()
  local first = math.random(0, $((nodes > 100 ? nodes - 100 : 0)))
  if first == 0 then return wrk.format("GET", "/v1/nodes?limit=100") end
  return wrk.format("GET", string.format("/v1/nodes?limit=100&after=bench-node-%06d", first - 1))
end
LUA
	# Actor ids are the server's: read them once, every request picks one.
	local after= page
	: >"$out/actor-ids.txt"
	while :; do
		page=$(curl -s "http://127.0.0.1:${hp[$L]}/v1/actors?limit=1000${after:+&after=$after}")
		printf '%s' "$page" | jq -r '.items[].id' >>"$out/actor-ids.txt"
		after=$(printf '%s' "$page" | jq -r '.next // empty')
		[ -n "$after" ] || break
	done
	say "actor ids read back: $(wc -l <"$out/actor-ids.txt")"
	cat >"$out/actor_ids.lua" <<LUA
ids = {}
for line in io.lines("$out/actor-ids.txt") do ids[#ids + 1] = line end
LUA
	cat "$out/actor_ids.lua" - >"$out/get_actor.lua" <<'LUA'
math.randomseed(11)
request = function()
  return wrk.format("GET", "/v1/actors/" .. ids[math.random(1, #ids)])
end
LUA
	cat "$out/actor_ids.lua" - >"$out/list_actors.lua" <<'LUA'
math.randomseed(13)
request = function()
  local i = math.random(0, #ids > 100 and #ids - 100 or 0)
  if i == 0 then return wrk.format("GET", "/v1/actors?limit=100") end
  return wrk.format("GET", "/v1/actors?limit=100&after=" .. ids[i])
end
LUA
	# A dashboard load: each connection waits 16 ms between requests, so 16
	# connections ask ~1,000 req/s, half node reads, half actor reads.
	cat "$out/actor_ids.lua" - >"$out/dash.lua" <<LUA
math.randomseed(17)
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then return wrk.format("GET", "/v1/actors/" .. ids[math.random(1, #ids)]) end
  return wrk.format("GET", string.format("/v1/nodes/bench-node-%06d", math.random(0, $((nodes - 1)))))
end
delay = function() return 16 end
LUA
	# The dashboard's control: /healthz at the same rate (no view, no
	# PostgreSQL), what any ~1,000 requests/s cost writes on this machine.
	cat >"$out/dash_hz.lua" <<'LUA'
request = function() return wrk.format("GET", "/healthz") end
delay = function() return 16 end
LUA
	for f in get_node list_nodes get_actor list_actors dash dash_hz; do cat "$out/$f.lua" "$SHARED/bench/lua/summary.lua" >"$out/$f-sum.lua"; done
	cat "$SHARED/bench/lua/summary.lua" >"$out/plain-sum.lua"
	# A second peer: nginx serving a page of 100 nodes and one of 100 actors
	# from the middle of the fill,
	# as lattice renders them, as static files: what a page of this size costs
	# the machine (loopback, wrk parsing it) with no rendering at all.
	if command -v nginx >/dev/null; then
		# Its own directory: nginx's workers (not root) cannot enter $out (0700).
		local nd np
		nd=$(mktemp -d /tmp/lattice-bench-nginx.XXXXXX)
		chmod 755 "$nd"
		np=$(free_port)
		mkdir -p "$nd/www" "$nd/tmp"
		curl -s "http://127.0.0.1:${hp[$L]}/v1/nodes?limit=100&after=$(printf "bench-node-%06d" $((nodes / 2)))" >"$nd/www/nodes.json"
		curl -s "http://127.0.0.1:${hp[$L]}/v1/actors?limit=100&after=$(sed -n "$(($(wc -l <"$out/actor-ids.txt") / 2))p" "$out/actor-ids.txt")" >"$nd/www/actors.json"
		chmod -R a+rX "$nd"
		cat >"$nd/nginx.conf" <<NGX
worker_processes 2;
pid $nd/nginx.pid;
error_log $nd/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $nd/tmp/body; proxy_temp_path $nd/tmp/proxy; fastcgi_temp_path $nd/tmp/fcgi;
    uwsgi_temp_path $nd/tmp/uwsgi; scgi_temp_path $nd/tmp/scgi;
    types { application/json json; }
    server { listen 127.0.0.1:$np; root $nd/www; }
}
NGX
		nginx -c "$nd/nginx.conf" -p "$nd" -g 'daemon off;' >>"$nd/error.log" 2>&1 &
		local ngx=$!
		RPIDS[9]=$ngx # stopped by reads_cleanup if the run ends here
		for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$np/nodes.json" && break; sleep 0.1; done
		rd_wrk "nginx.npage" "http://127.0.0.1:$np/nodes.json" 64 "$out/plain-sum.lua"
		rd_wrk "nginx.apage" "http://127.0.0.1:$np/actors.json" 64 "$out/plain-sum.lua"
		kill -TERM "$ngx" 2>/dev/null
		wait "$ngx" 2>/dev/null
		unset 'RPIDS[9]'
		say "(static pages: $(wc -c <"$nd/www/nodes.json") bytes of nodes, $(wc -c <"$nd/www/actors.json") of actors)"
		local e1 e2
		e1=$(awk '{print $4}' <<<"${rd[nginx.npage]}") e2=$(awk '{print $4}' <<<"${rd[nginx.apage]}")
		[ "${e1:-1}" = 0 ] && [ "${e2:-1}" = 0 ] || say "WARNING: nginx answered errors ($e1, $e2): see $nd/error.log; its page figures mean nothing"
		[ "${e1:-1}" = 0 ] && [ "${e2:-1}" = 0 ] && rm -rf "$nd"
	fi
	wrk -t2 -c64 -d3s -s "$out/get_node-sum.lua" "http://127.0.0.1:${hp[$L]}" >/dev/null 2>&1 # warm-up
	local who
	[ "${READ_WRITES_ONLY:-0}" = 1 ] || for who in leader follower; do
		local h=${hp[$L]}
		[ "$who" = follower ] && h=${hp[$F]}
		rd_wrk "healthz.$who" "http://127.0.0.1:$h/healthz" 64 "$out/plain-sum.lua"
		rd_wrk "get.$who" "http://127.0.0.1:$h" 64 "$out/get_node-sum.lua"
		rd_wrk "list.$who" "http://127.0.0.1:$h" 64 "$out/list_nodes-sum.lua"
		rd_wrk "aget.$who" "http://127.0.0.1:$h" 64 "$out/get_actor-sum.lua"
		rd_wrk "alist.$who" "http://127.0.0.1:$h" 64 "$out/list_actors-sum.lua"
	done
	# Writes under reads on both followers against writes alone, in turns
	# (writes_compare), so the drift of a shared machine and of the growing
	# fill falls on both sides.
	wrk -t2 -c16 -d3s -s "$out/post_sum.lua" "http://127.0.0.1:${hp[$L]}/v1/actors" >/dev/null 2>&1 # warm-up
	# The fixed-rate loads' wrk runs at nice 19: its own CPU (the dashboards'
	# machines, in a deployment) is not the reads' cost; the rate each
	# follower got is printed after.
	BG_NICE=19 TURNS=${READ_DASH_TURNS:-16} writes_compare dash 16 "$out/dash-sum.lua" "http://127.0.0.1:${hp[$F]}" "$out/dash-sum.lua" "http://127.0.0.1:${hp[$F2]}"
	rd[dash]="$(wrk_sum "$out/reads-bg1.txt") / $(wrk_sum "$out/reads-bg2.txt")"
	say "dashboard reads during the last turn: ${rd[dash]}"
	BG_NICE=19 TURNS=${READ_DASH_TURNS:-16} writes_compare dash_hz 16 "$out/dash_hz-sum.lua" "http://127.0.0.1:${hp[$F]}" "$out/dash_hz-sum.lua" "http://127.0.0.1:${hp[$F2]}"
	say "/healthz during the last turn: $(wrk_sum "$out/reads-bg1.txt") / $(wrk_sum "$out/reads-bg2.txt")"
	# Saturating reads (c=32 on each follower): node GETs and pages, then the
	# control, /healthz, which touches neither the view nor PostgreSQL: what
	# writes lose to the reads' CPU alone on this machine.
	writes_compare reads 32 "$out/get_node-sum.lua" "http://127.0.0.1:${hp[$F]}" \
		"$out/list_nodes-sum.lua" "http://127.0.0.1:${hp[$F2]}"
	say "background reads during the last turn: $(wrk_sum "$out/reads-bg1.txt") (GET), $(wrk_sum "$out/reads-bg2.txt") (pages)"
	writes_compare healthz 32 "$out/plain-sum.lua" "http://127.0.0.1:${hp[$F]}/healthz" \
		"$out/plain-sum.lua" "http://127.0.0.1:${hp[$F2]}/healthz"
	say "background reads during the last turn: $(wrk_sum "$out/reads-bg1.txt") / $(wrk_sum "$out/reads-bg2.txt") (/healthz on each follower)"
	reads_cleanup
}

# reads_summary: the table rows of phase 8 (after the others).
reads_summary() {
	[ -n "${rd[get.leader]:-}" ] || return 0
	local n=${rd[nginx]:-0} who
	say ""
	say "reads at dashboard scale (${READ_NODES:-10000} nodes, ${READ_ACTORS:-100000} actors; nginx static c=64: ${n:-?} req/s; replicas' RSS ${rd[rss.1]:-?} / ${rd[rss.2]:-?} / ${rd[rss.3]:-?} MiB)"
	say "| read, c=64 | req/s | p99 ms | vs nginx | target | |"
	say "|---|---|---|---|---|---|"
	for who in leader follower; do
		local g=(${rd[get.$who]}) l=(${rd[list.$who]}) hz=(${rd[healthz.$who]})
		say "| GET /v1/nodes/{id}, $who | ${g[0]} | ${g[2]} | $(ratio "${g[0]}" "$n") | >= 50%, p99 <= 10 ms | $(reads_met "${g[0]}" "$n" 50 "${g[2]}") |"
		say "| GET /v1/nodes?limit=100, $who | ${l[0]} | ${l[2]} | $(ratio "${l[0]}" "$n") | >= 10%, p99 <= 10 ms | $(reads_met "${l[0]}" "$n" 10 "${l[2]}") |"
		local ag=(${rd[aget.$who]}) al=(${rd[alist.$who]})
		say "| GET /v1/actors/{id}, $who | ${ag[0]} | ${ag[2]} | $(ratio "${ag[0]}" "$n") | >= 50%, p99 <= 10 ms | $(reads_met "${ag[0]}" "$n" 50 "${ag[2]}") |"
		say "| GET /v1/actors?limit=100, $who | ${al[0]} | ${al[2]} | $(ratio "${al[0]}" "$n") | >= 10%, p99 <= 10 ms | $(reads_met "${al[0]}" "$n" 10 "${al[2]}") |"
		say "| GET /healthz, $who | ${hz[0]} | ${hz[2]} | $(ratio "${hz[0]}" "$n") | (ceiling) | |"
	done
	if [ -n "${rd[nginx.npage]:-}" ]; then
		local np=(${rd[nginx.npage]}) ap=(${rd[nginx.apage]})
		say "| nginx: the same page of 100 nodes as a static file | ${np[0]} | ${np[2]} | $(ratio "${np[0]}" "$n") | (a page's ceiling here) | |"
		say "| nginx: the same page of 100 actors as a static file | ${ap[0]} | ${ap[2]} | $(ratio "${ap[0]}" "$n") | (a page's ceiling here) | |"
	fi
	writes_row dash "under a dashboard load (~1,000 reads/s per follower)" "<= 10%"
	writes_row dash_hz "under ~1,000 /healthz/s per follower (the dashboard's control)" "(any requests' share)"
	writes_row reads "under saturating reads (c=32 per follower)" "(the CPU's share)"
	writes_row healthz "under saturating /healthz (control: no view, no PostgreSQL)" "(the CPU's share)"
}

# writes_row NAME WHAT TARGET: a table row, writes alone against writes under
# a load (writes_compare NAME); met when TARGET is "<= 10%" and the mean of
# the pairs without a Raft snapshot (at least 5 of them; else of all pairs) is
# within it (its 95% half-width beside it says whether this run could tell).
writes_row() {
	local a=(${rd[writes.$1.alone]:-}) u=(${rd[writes.$1]:-}) p=(${rd[writes.$1.pct]:-? ? ?}) verdict=
	local q=(${rd[writes.$1.clean]:-? ? ? 0}) by=
	by=${p[0]}
	[ "${q[3]}" -ge 5 ] && by=${q[0]}
	[ "$3" = "<= 10%" ] && verdict=$(awk -v s="$by" 'BEGIN{ print (s != "?" && s <= 10) ? "met" : "missed" }')
	say "| POST /v1/actors c=16 alone / $2 (${rd[turns.$1]:-?} paired turns; snapshots ${rd[snap.$1]:-?}, leader changes ${rd[lc.$1]:-?}) | ${a[0]:-?} / ${u[0]:-?} | ${a[2]:-?} / ${u[2]:-?} | slower by ${p[0]}% +/- ${p[1]}% (median ${p[2]}%); the ${q[3]} pairs without a snapshot: ${q[0]}% +/- ${q[1]}% (median ${q[2]}%) | $3 | $verdict |"
}

# reads_met RPS NGINX PCT P99: met when RPS >= PCT% of NGINX and P99 <= 10 ms.
reads_met() {
	awk -v r="$1" -v n="$2" -v p="$3" -v q="$4" 'BEGIN{ print (n > 0 && r >= n * p / 100 && q <= 10) ? "met" : "missed" }'
}
