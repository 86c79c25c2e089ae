#!/usr/bin/env bash
# local-lattice.sh — brings up a local lattice on this machine and keeps it up
# until Ctrl-C (or `scripts/local-lattice.sh stop` from another shell):
#   - installs what is missing (Debian packages) and builds latticed into build/
#   - a throwaway PostgreSQL under run/ (Unix socket only: nothing on the network)
#   - latticed, bootstrapped as a single-voter Raft group, API on 127.0.0.1
#   - a small demo: nodes in three regions, a policy, a provider, actors, a link
# Everything it started is stopped on exit; run/ is kept so a restart resumes
# (use `scripts/local-lattice.sh reset` to start from nothing).
#
# One local lattice per run directory: a second `up` while one runs refuses and
# leaves the running one alone (a flock on run/lock, held for the life of `up`,
# so a kill -9 cannot leave it stale). An exit stops only what that run started.
# `stop` returns once every process it stops has exited.
#
# Environment (all optional):
#   LATTICE_PORT          API port on 127.0.0.1 (default 8080)
#   LATTICE_RAFT_PORT     Raft port on 127.0.0.1 (default 9001)
#   LATTICE_RUN_DIR       state, logs and lock (default run/ in this checkout)
#   LATTICED              a built latticed to run; when set, nothing is installed or built
#   LATTICE_DEMO          0: do not load the demo into an empty lattice (default 1)
#   LATTICE_STOP_TIMEOUT  whole seconds `stop` waits for each process before it kills it
#                         (default 60; latticed itself gives up flushing after 10 s)
#   PGBIN                 PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
run=${LATTICE_RUN_DIR:-$top/run}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
port=${LATTICE_PORT:-8080}
raft_port=${LATTICE_RAFT_PORT:-9001}
stop_timeout=${LATTICE_STOP_TIMEOUT:-60}
case $stop_timeout in '' | *[!0-9]*) echo "LATTICE_STOP_TIMEOUT must be whole seconds" >&2; exit 2 ;; esac
api="http://127.0.0.1:$port"
me="scripts/local-lattice.sh"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# alive PID: the process exists and has not exited (a zombie has exited; only its
# parent's wait is missing). Works for processes of other users too.
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# wait_gone PID WHAT SECONDS [WHY]: waits until PID has exited; says so once if it
# takes a while. Returns 1 when it is still alive after SECONDS.
wait_gone() {
	local pid=$1 what=$2 secs=$3 why=${4:+ ($4)} i told=
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || return 0
		if [ -z "$told" ] && [ "$i" -ge 30 ]; then
			echo "waiting for $what (pid $pid) to exit$why..." >&2
			told=1
		fi
		sleep 0.1
	done
	! alive "$pid"
}

# The latticed of this run dir (pid file, alive, and still that program), or "".
latticed_pid() {
	local pid
	pid=$(cat "$run/latticed.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
		grep -qF -- "--data-dir $run/replica1" && echo "$pid"
	return 0
}

# The postmaster of this run dir, or "".
pg_pid() {
	local pid
	pid=$(head -1 "$run/pg/data/postmaster.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && alive "$pid" && echo "$pid"
	return 0
}

# The pid of the `up` holding the lock, or "" when none holds it.
holder_pid() {
	[ -f "$run/lock" ] || return 0
	flock -n "$run/lock" true 2>/dev/null && return 0
	local pid
	pid=$(cat "$run/lock" 2>/dev/null)
	echo "${pid:-unknown}"
}

# SIGTERM once (a second one would cut latticed's flush short), then wait; SIGKILL
# only as a last resort, after saying so.
stop_latticed() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || true
	wait_gone "$pid" latticed "$stop_timeout" "it flushes to PostgreSQL first" && return 0
	echo "latticed (pid $pid) did not exit within ${stop_timeout} s of SIGTERM; killing it (SIGKILL):" \
		"what it had not written to PostgreSQL is replayed from its Raft log at the next start" >&2
	kill -KILL "$pid" 2>/dev/null || true
	wait_gone "$pid" latticed 10 || { echo "latticed (pid $pid) survived SIGKILL" >&2; return 1; }
}

stop_pg() {
	local pid=$1
	as_pg "$PGBIN/pg_ctl" -D "$run/pg/data" -m fast -w -t "$stop_timeout" stop >/dev/null 2>&1 || true
	wait_gone "$pid" PostgreSQL "$stop_timeout" && return 0
	echo "PostgreSQL (pid $pid) did not stop within ${stop_timeout} s; stopping it in immediate mode" >&2
	as_pg "$PGBIN/pg_ctl" -D "$run/pg/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
	wait_gone "$pid" PostgreSQL 10 && return 0
	echo "PostgreSQL (pid $pid) still runs; killing it (SIGKILL)" >&2
	kill -KILL "$pid" 2>/dev/null || true
	wait_gone "$pid" PostgreSQL 10 || { echo "PostgreSQL (pid $pid) survived SIGKILL" >&2; return 1; }
}

# `stop`: latticed first (it flushes into PostgreSQL), then the `up` that started
# it (which exits once its latticed is gone), then PostgreSQL.
stop_cmd() {
	local rc=0 lpid pgpid holder
	holder=$(holder_pid)
	lpid=$(latticed_pid)
	pgpid=$(pg_pid)
	if [ -z "$holder$lpid$pgpid" ]; then
		echo "no local lattice is running in $run"
		return 0
	fi
	[ -n "$lpid" ] && { stop_latticed "$lpid" || rc=1; }
	if [ -n "$holder" ] && [ "$holder" != unknown ]; then
		kill -TERM "$holder" 2>/dev/null || true
		if ! wait_gone "$holder" "$me" "$stop_timeout"; then
			echo "$me (pid $holder) did not exit within ${stop_timeout} s; killing it (SIGKILL)" >&2
			kill -KILL "$holder" 2>/dev/null || true
			wait_gone "$holder" "$me" 10 || rc=1
		fi
	fi
	# Whatever is still up (the `up` was killed, or was still starting).
	lpid=$(latticed_pid)
	[ -n "$lpid" ] && { stop_latticed "$lpid" || rc=1; }
	pgpid=$(pg_pid)
	[ -n "$pgpid" ] && { stop_pg "$pgpid" || rc=1; }
	rm -f "$run/latticed.pid"
	if [ "$rc" = 0 ]; then echo "local lattice stopped"; else echo "local lattice: not everything stopped" >&2; fi
	return "$rc"
}

case "${1:-up}" in
stop) stop_cmd; exit $? ;;
reset)
	stop_cmd || exit 1
	rm -rf "$run"
	echo "$run removed"
	exit 0
	;;
up) ;;
*) echo "usage: $0 [up|stop|reset]" >&2; exit 2 ;;
esac

# ---- up ------------------------------------------------------------------------
mkdir -p "$run"
exec 9>>"$run/lock"
if ! flock -n 9; then
	holder=$(cat "$run/lock" 2>/dev/null || true)
	echo "a local lattice is already running (pid ${holder:-unknown}); stop it with $me stop" >&2
	exit 1
fi
echo "$$" >"$run/lock"
# Held by this shell only: every long-lived child is started with 9>&-.

# A kill -9 of an earlier `up` releases the lock but leaves its processes running.
if lpid=$(latticed_pid) && [ -n "$lpid" ]; then
	echo "a local lattice is already running (latticed pid $lpid, left by an earlier run); stop it with $me stop" >&2
	exit 1
fi
if pgpid=$(pg_pid) && [ -n "$pgpid" ]; then
	echo "a local lattice is already running (PostgreSQL pid $pgpid, left by an earlier run); stop it with $me stop" >&2
	exit 1
fi

started_latticed=
started_pg=
on_exit() {
	trap '' INT TERM # finish stopping what we started
	if [ -n "$started_latticed" ] && alive "$started_latticed"; then stop_latticed "$started_latticed" || true; fi
	if [ -n "$started_pg" ]; then
		local pgpid
		pgpid=$(pg_pid)
		[ -n "$pgpid" ] && { stop_pg "$pgpid" || true; }
	fi
	[ -n "$started_latticed" ] && rm -f "$run/latticed.pid"
	echo "local lattice stopped; state kept in $run"
}
trap on_exit EXIT
trap 'exit 0' INT TERM

if [ -n "${LATTICED:-}" ]; then
	[ -x "$LATTICED" ] || { echo "LATTICED=$LATTICED is not an executable" >&2; exit 1; }
else
	bash "$top/scripts/deps.sh"
	LATTICED=$top/build/latticed
	if [ ! -x "$LATTICED" ] || [ -n "$(find "$top/controller" "$top/schema" -newer "$LATTICED" 2>/dev/null | head -1)" ]; then
		echo "building latticed..."
		(cd "$top" && { [ -f configure ] || autoreconf -fi >/dev/null 2>&1; })
		mkdir -p "$top/build"
		(cd "$top/build" && { [ -f Makefile ] || "$top/configure" -q; } && make -j"$(nproc)" >/dev/null)
	fi
fi

if [ ! -d "$run/pg/data" ]; then
	mkdir -p "$run/pg"
	chmod 755 "$run" "$run/pg"
	[ "$(id -u)" = 0 ] && chown postgres "$run/pg"
	as_pg "$PGBIN/initdb" -D "$run/pg/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null 9>&-
fi
# A root-owned checkout may be unreachable for postgres: keep its socket in run/pg.
started_pg=1
as_pg "$PGBIN/pg_ctl" -D "$run/pg/data" -l "$run/pg/pg.log" -w \
	-o "-k $run/pg -c listen_addresses=''" start >/dev/null 9>&-
"$PGBIN/psql" -X -q -h "$run/pg" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='lattice'" | grep -q 1 ||
	"$PGBIN/psql" -X -q -h "$run/pg" -U postgres -d postgres -c "CREATE DATABASE lattice" >/dev/null

"$LATTICED" --listen "127.0.0.1:$port" --raft-address "127.0.0.1:$raft_port" --id 1 --bootstrap \
	--data-dir "$run/replica1" --pg "host=$run/pg user=postgres dbname=lattice" \
	--schema-dir "$top/schema" --heartbeat-timeout-ms 0 >>"$run/latticed.log" 2>&1 9>&- &
started_latticed=$!
echo "$started_latticed" >"$run/latticed.pid"
for _ in $(seq 1 300); do
	curl -sf "$api/readyz" >/dev/null 2>&1 && break
	alive "$started_latticed" || { tail -20 "$run/latticed.log"; exit 1; }
	sleep 0.1
done

post() { curl -s -o /dev/null -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' --data-binary "$3" "$api$2"; }
if [ "${LATTICE_DEMO:-1}" != 0 ] && [ "$(curl -s "$api/v1/nodes?limit=1" | jq '.items | length')" = 0 ]; then
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
Ctrl-C (or: $me stop) stops everything; state stays in $run.
MSG
wait "$started_latticed" 2>/dev/null || true
