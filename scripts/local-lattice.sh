#!/usr/bin/env bash
# local-lattice.sh — brings up a local lattice on this machine and keeps it up
# until Ctrl-C (or `scripts/local-lattice.sh stop` from another shell):
#   - installs what is missing (Debian packages) and builds latticed into build/
#   - a throwaway PostgreSQL under run/ (Unix socket only: nothing on the network)
#   - latticed, bootstrapped as a single-voter Raft group, API on 127.0.0.1
#   - a small demo: nodes in three regions, a policy, a provider, actors, a link
# Everything it started is stopped on exit; run/ is kept so a restart resumes
# (use `scripts/local-lattice.sh reset` to start from nothing).
# Env: LATTICE_PORT (default 8080), LATTICE_RAFT_PORT (default 9001).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/run"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${LATTICE_PORT:-8080}
raft_port=${LATTICE_RAFT_PORT:-9001}
api="http://127.0.0.1:$port"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_all() {
	if [ -f "$run/latticed.pid" ]; then
		local pid; pid=$(cat "$run/latticed.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
		rm -f "$run/latticed.pid"
	fi
	if [ -f "$run/pg/data/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$run/pg/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}

case "${1:-up}" in
stop) stop_all; echo "local lattice stopped"; exit 0 ;;
reset) stop_all; rm -rf "$run"; echo "run/ removed"; exit 0 ;;
up) ;;
*) echo "usage: $0 [up|stop|reset]" >&2; exit 2 ;;
esac

bash "$top/scripts/deps.sh"
if [ ! -x "$top/build/latticed" ] || [ -n "$(find "$top/controller" "$top/schema" -newer "$top/build/latticed" 2>/dev/null | head -1)" ]; then
	echo "building latticed..."
	(cd "$top" && { [ -f configure ] || autoreconf -fi >/dev/null 2>&1; })
	mkdir -p "$top/build"
	(cd "$top/build" && { [ -f Makefile ] || "$top/configure" -q; } && make -j"$(nproc)" >/dev/null)
fi

mkdir -p "$run"
trap 'stop_all; echo "local lattice stopped; state kept in run/"' EXIT
trap 'exit 0' INT TERM

if [ ! -d "$run/pg/data" ]; then
	mkdir -p "$run/pg"
	chmod 755 "$run" "$run/pg"
	[ "$(id -u)" = 0 ] && chown postgres "$run/pg"
	as_pg "$PGBIN/initdb" -D "$run/pg/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
fi
# A root-owned checkout may be unreachable for postgres: keep its socket in run/pg.
as_pg "$PGBIN/pg_ctl" -D "$run/pg/data" -l "$run/pg/pg.log" -w \
	-o "-k $run/pg -c listen_addresses=''" start >/dev/null
"$PGBIN/psql" -X -q -h "$run/pg" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='lattice'" | grep -q 1 ||
	"$PGBIN/psql" -X -q -h "$run/pg" -U postgres -d postgres -c "CREATE DATABASE lattice" >/dev/null

"$top/build/latticed" --listen "127.0.0.1:$port" --raft-address "127.0.0.1:$raft_port" --id 1 --bootstrap \
	--data-dir "$run/replica1" --pg "host=$run/pg user=postgres dbname=lattice" \
	--schema-dir "$top/schema" --heartbeat-timeout-ms 0 >>"$run/latticed.log" 2>&1 &
echo $! >"$run/latticed.pid"
for _ in $(seq 1 300); do
	curl -sf "$api/readyz" >/dev/null 2>&1 && break
	kill -0 "$(cat "$run/latticed.pid")" 2>/dev/null || { tail -20 "$run/latticed.log"; exit 1; }
	sleep 0.1
done

post() { curl -s -o /dev/null -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' --data-binary "$3" "$api$2"; }
if [ "$(curl -s "$api/v1/nodes?limit=1" | jq '.items | length')" = 0 ]; then
	echo "loading the demo..."
	post POST /v1/nodes '{"id":"edge-ap-east-1","region":"ap-east-1","labels":{"tier":"edge"},"cpu_capacity":4000,"memory_mb":2048,"cpu_used":1200,"memory_used_mb":800,"actor_count":5}' >/dev/null
	post POST /v1/nodes '{"id":"edge-ap-southeast-1","region":"ap-southeast-1","labels":{"tier":"edge"},"cpu_capacity":2000,"memory_mb":1024,"cpu_used":500,"memory_used_mb":300,"actor_count":2}' >/dev/null
	post POST /v1/nodes '{"id":"edge-us-west-1","region":"us-west-1","labels":{"tier":"edge"},"cpu_capacity":4000,"memory_mb":2048,"cpu_used":3800,"memory_used_mb":1900,"actor_count":15}' >/dev/null
	# The seed's pattern 4 example: task-sensor-001 lands on edge-ap-east-1 (score 74).
	post POST /v1/actors '{"id":"task-sensor-001","module":"registry.local/edge-processor:0.1.0","cpu_required":500,"memory_required_mb":256,"preferred_region":"ap-east-1","priority":5,"max_latency_ms":50}' >/dev/null
	post POST /v1/nodes '{"id":"cloud-ap-east-1","region":"ap-east-1","labels":{"tier":"cloud"},"cpu_capacity":16000,"memory_mb":32768}' >/dev/null
	post POST /v1/policies '{"policy_id":"edge-default","allowed_contracts":["wasmcloud:keyvalue","wasmcloud:httpserver","wasmcloud:messaging"],"max_actor_memory_mb":512,"network_restrictions":["internal-only"],"selector":{"labels":{"tier":"edge"}}}' >/dev/null
	post POST /v1/providers '{"id":"kv-redis","contract_id":"wasmcloud:keyvalue","image":"wasmcloud.azurecr.io/kvredis:0.27.0","nodes":["edge-ap-east-1"]}' >/dev/null
	post POST /v1/actors '{"id":"edge-processor","module":"registry.local/edge-processor:0.1.0","cpu_required":250,"memory_required_mb":64,"replicas":3,"contracts":["wasmcloud:keyvalue"]}' >/dev/null
	post POST /v1/links '{"actor_id":"edge-processor","provider_id":"kv-redis","contract_id":"wasmcloud:keyvalue","values":{"BUCKET":"edge-data"}}' >/dev/null
fi
cat <<MSG

lattice is up (single replica):
  REST API      $api          (try: curl $api/v1/nodes | jq)
  cluster       $api/v1/cluster
  metrics       $api/metrics
  PostgreSQL    psql -h $run/pg -U postgres lattice
  logs          $run/latticed.log
Ctrl-C (or: scripts/local-lattice.sh stop) stops everything; state stays in run/.
MSG
wait "$(cat "$run/latticed.pid")" 2>/dev/null || true
