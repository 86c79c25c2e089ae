#!/usr/bin/env bash
# local-lattice.sh — brings up a local lattice on this machine and keeps it up
# until Ctrl-C (or `scripts/local-lattice.sh stop` from another shell):
#   - installs what is missing (Debian packages) and builds latticed and
#     lattice-agent into build/
#   - a throwaway PostgreSQL under run/pg (Unix socket only: nothing on the network)
#   - nats-server with JetStream on 127.0.0.1:4222 (loopback only), its store in
#     run/nats, its log run/nats.log: the edge protocol's transport
#   - six lattice-agents (sim driver) in three regions, two each (eu-west, us-east,
#     ap-south): live edge nodes that heartbeat, run actors and ack commands;
#     state in run/agents/ID, logs run/agents/ID.log. They start before the
#     replicas, so a leader hears them before it would declare them dead.
#   - three latticed replicas bootstrapped as one Raft group, each with its own
#     data dir (run/replicaN), database (latticeN on that PostgreSQL) and log
#     (run/replicaN.log); APIs on 127.0.0.1:8080-8082, Raft on 127.0.0.1:9001-9003;
#     --nats: failure detection is on (a node silent for 3 s is unhealthy and its
#     actors fail over to healthy nodes)
#   - a small demo, written through replica 1 (a follower passes writes on to the
#     leader) once the agents' nodes are healthy: a policy, a provider, actors
#     placed on the agents' nodes, a link; it waits until the agents run them
# It prints the three API URLs, which replica leads, NATS, the agents and how to
# try a failover of the leader and of an edge node.
# Everything it started is stopped on exit; run/ is kept so a restart resumes with
# the same command lines (--bootstrap is ignored once a data dir holds the group;
# the agents resume from their state dirs, NATS from its store).
# `scripts/local-lattice.sh reset` starts from nothing.
#
#   scripts/local-lattice.sh [up]      start (the default)
#   scripts/local-lattice.sh stop      stop the one running on this run dir (from another shell)
#   scripts/local-lattice.sh reset     stop it and remove run/
#   scripts/local-lattice.sh start N   start replica N again while `up` runs (after
#                                      you killed it to watch a failover)
#   scripts/local-lattice.sh agent start ID
#                                      start agent ID again while `up` runs (after you
#                                      killed it to watch its node's actors fail over)
#
# One local lattice per run directory: a second `up` while one runs refuses and
# leaves the running one alone (a flock on run/lock, held for the life of `up`,
# so a kill -9 cannot leave it stale). An exit stops only what that run started.
# `stop` returns once every process it stops has exited.
#
# run/group records the group's members (the --members list). A run/ holding a
# smaller group — one replica, from LATTICE_REPLICAS=1 or from the single-replica
# version of this script (run/replica1 and database `lattice`, which becomes
# lattice1; with the LATTICE_RAFT_PORT it ran with) — is resumed and grown: its replicas keep their state and the new ones
# join the group (--join) and copy it. A run/ whose group has more replicas than
# asked, or other Raft ports, is refused: it could not elect a leader. Use the same
# settings as before, or reset. Nodes that an earlier version's demo registered
# through the API have no agent: they turn unhealthy and their actors fail over
# onto the agents' nodes.
#
# Environment (all optional):
#   LATTICE_REPLICAS      how many replicas, 1-9 (default 3; 1 suits a low-memory machine)
#   LATTICE_PORT          API port of replica 1 on 127.0.0.1; replica N has LATTICE_PORT+N-1 (default 8080)
#   LATTICE_RAFT_PORT     Raft port of replica 1 on 127.0.0.1; replica N has +N-1 (default 9001)
#   LATTICE_NATS_PORT     nats-server's port on 127.0.0.1 (default 4222); `up` refuses when it is taken
#   LATTICE_AGENTS        how many lattice-agents, 1-30 (default 6), in eu-west, us-east and
#                         ap-south in turn: agent K is edge-REGION-N
#   LATTICE_RUN_DIR       state, logs and lock (default run/ in this checkout)
#   LATTICED              a built latticed to run; when set, nothing is installed or built
#   LATTICE_AGENT         a built lattice-agent (default build/sim/lattice-agent, or
#                         sim/lattice-agent next to LATTICED when that is set)
#   LATTICE_NATS_SERVER   the nats-server to run (default: the one on PATH, else /usr/sbin/nats-server)
#   LATTICE_DEMO          0: do not load the demo into an empty lattice (default 1)
#   LATTICE_STOP_TIMEOUT  whole seconds `stop` waits for each process before it kills it
#                         (default 60; latticed itself gives up flushing after 10 s)
#   LATTICE_START_TIMEOUT whole seconds `up` waits for the replicas to be ready (default 120)
#   LATTICE_PG_FSYNC      0: PostgreSQL runs with fsync=off (and initdb --no-sync when run/pg
#                         is new): much faster on a slow disk, but a power cut can corrupt
#                         run/pg, and then only reset helps (default 1)
#   PGBIN                 PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
run=${LATTICE_RUN_DIR:-$top/run}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
n=${LATTICE_REPLICAS:-3}
port=${LATTICE_PORT:-8080}
raft_port=${LATTICE_RAFT_PORT:-9001}
nats_port=${LATTICE_NATS_PORT:-4222}
agents=${LATTICE_AGENTS:-6}
stop_timeout=${LATTICE_STOP_TIMEOUT:-60}
start_timeout=${LATTICE_START_TIMEOUT:-120}
pg_fsync=${LATTICE_PG_FSYNC:-1}
case $pg_fsync in 0 | 1) ;; *) echo "LATTICE_PG_FSYNC must be 0 or 1" >&2; exit 2 ;; esac
whole() { case $2 in '' | *[!0-9]*) echo "$1 must be whole seconds" >&2; exit 2 ;; esac; }
whole LATTICE_STOP_TIMEOUT "$stop_timeout"
whole LATTICE_START_TIMEOUT "$start_timeout"
case $n in [1-9]) ;; *) echo "LATTICE_REPLICAS must be 1 to 9" >&2; exit 2 ;; esac
case $agents in [1-9] | [12][0-9] | 30) ;; *) echo "LATTICE_AGENTS must be 1 to 30" >&2; exit 2 ;; esac
case $nats_port in '' | *[!0-9]*) echo "LATTICE_NATS_PORT must be a port number" >&2; exit 2 ;; esac
if [ "$nats_port" -lt 1 ] || [ "$nats_port" -gt 65535 ]; then
	echo "LATTICE_NATS_PORT=$nats_port must lie in 1-65535" >&2
	exit 2
fi
for v in port raft_port; do
	case ${!v} in '' | *[!0-9]*) echo "LATTICE_${v^^} must be a port number" >&2; exit 2 ;; esac
	if [ "${!v}" -lt 1 ] || [ "$((${!v} + n - 1))" -gt 65535 ]; then
		echo "LATTICE_${v^^}=${!v}: the ports of $n replicas must lie in 1-65535" >&2
		exit 2
	fi
done
me="scripts/local-lattice.sh"

api_of() { echo "http://127.0.0.1:$((port + $1 - 1))"; }
raft_of() { echo "127.0.0.1:$((raft_port + $1 - 1))"; }
# The member list of a group of $1 replicas on these ports.
members_of() {
	local i m=
	for ((i = 1; i <= $1; i++)); do m+="${m:+,}$i=$(raft_of "$i")"; done
	echo "$m"
}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_pg() { "$PGBIN/psql" -X -q -h "$run/pg" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

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

# replica_pid I: the latticed of replica I of this run dir (pid file, alive, and
# still that program), or "".
replica_pid() {
	local pid f=$run/replica$1.pid
	# The single-replica version of this script wrote latticed.pid.
	[ "$1" = 1 ] && [ ! -f "$f" ] && [ -f "$run/latticed.pid" ] && f=$run/latticed.pid
	pid=$(cat "$f" 2>/dev/null) || return 0
	[ -n "$pid" ] && alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
		grep -qF -- "--data-dir $run/replica$1 " && echo "$pid"
	return 0
}

# running_replicas: "I PID" for every latticed of this run dir that runs.
running_replicas() {
	local i pid
	for ((i = 1; i <= 9; i++)); do
		pid=$(replica_pid "$i")
		[ -n "$pid" ] && echo "$i $pid"
	done
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

# The agents: agent K (1-based) runs node edge-REGION-N in the K-th of three
# regions in turn, N its rank there; the first of each region is the bigger.
regions=(eu-west us-east ap-south)
agent_region() { echo "${regions[$((($1 - 1) % 3))]}"; }
agent_id() { echo "edge-$(agent_region "$1")-$((($1 - 1) / 3 + 1))"; }

# cmdline_has PID TEXT: PID's command line, its words joined by spaces, holds TEXT.
cmdline_has() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }

# agent_pid ID: the lattice-agent of node ID of this run dir (pid file, alive, and
# still that program on that state dir), or "".
agent_pid() {
	local pid
	pid=$(cat "$run/agents/$1.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && alive "$pid" && cmdline_has "$pid" "--state-dir $run/agents/$1 " && echo "$pid"
	return 0
}

# running_agents: "ID PID" for every agent of this run dir that runs.
running_agents() {
	local f id pid
	for f in "$run"/agents/*.pid; do
		[ -f "$f" ] || continue
		id=${f##*/} id=${id%.pid}
		pid=$(agent_pid "$id")
		[ -n "$pid" ] && echo "$id $pid"
	done
	return 0
}

# The nats-server of this run dir (its store: run/nats), or "".
nats_pid() {
	local pid
	pid=$(cat "$run/nats.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && alive "$pid" && cmdline_has "$pid" "-sd $run/nats " && echo "$pid"
	return 0
}

# stop_procs WHAT "NAME PID"...: SIGTERM to each (agents and nats-server exit
# at once on it), all at once; then waits for each; SIGKILL after
# LATTICE_STOP_TIMEOUT, saying so.
stop_procs() {
	local what=$1 e name pid rc=0
	shift
	for e in "$@"; do kill -TERM "${e#* }" 2>/dev/null || true; done
	for e in "$@"; do
		name=${e%% *} pid=${e#* }
		wait_gone "$pid" "$what $name" "$stop_timeout" && continue
		echo "$what $name (pid $pid) did not exit within ${stop_timeout} s of SIGTERM; killing it (SIGKILL)" >&2
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" "$what $name" 10 || { echo "$what $name (pid $pid) survived SIGKILL" >&2; rc=1; }
	done
	return "$rc"
}

# stop_edge: the agents, then nats-server (after the replicas: a leader that
# stopped hearing the agents would fail their nodes over).
stop_edge() {
	local rc=0 list ags np
	ags=$(running_agents)
	if [ -n "$ags" ]; then
		mapfile -t list <<<"$ags"
		stop_procs agent "${list[@]}" || rc=1
	fi
	np=$(nats_pid)
	[ -n "$np" ] && { stop_procs nats-server "127.0.0.1:$nats_port $np" || rc=1; }
	rm -f "$run"/agents/*.pid "$run/nats.pid"
	return "$rc"
}

# stop_replicas "I PID"...: SIGTERM to each, once (latticed closes its signal
# handlers on the first one, so a second would kill it in the middle of its
# flush), all at once; then wait for each; SIGKILL only as a last resort, after
# saying so.
stop_replicas() {
	local e i pid rc=0
	for e in "$@"; do kill -TERM "${e#* }" 2>/dev/null || true; done
	for e in "$@"; do
		i=${e%% *} pid=${e#* }
		wait_gone "$pid" "latticed replica $i" "$stop_timeout" "it flushes to PostgreSQL first" && continue
		echo "latticed replica $i (pid $pid) did not exit within ${stop_timeout} s of SIGTERM; killing it (SIGKILL):" \
			"what it had not written to PostgreSQL is replayed from its Raft log at the next start" >&2
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" "latticed replica $i" 10 || { echo "latticed replica $i (pid $pid) survived SIGKILL" >&2; rc=1; }
	done
	return "$rc"
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

# `stop`: the replicas first (they flush into PostgreSQL), then the `up` that
# started them (which exits once they are gone, stopping the rest), then what is
# left: agents, nats-server, PostgreSQL. run/stopping
# tells `up` that the replicas' exits are a stop, not something to report.
stop_cmd() {
	local rc=0 reps list pgpid holder
	holder=$(holder_pid)
	reps=$(running_replicas)
	pgpid=$(pg_pid)
	if [ -z "$holder$reps$pgpid$(running_agents)$(nats_pid)" ]; then
		echo "no local lattice is running in $run"
		return 0
	fi
	: >"$run/stopping"
	if [ -n "$reps" ]; then
		mapfile -t list <<<"$reps"
		stop_replicas "${list[@]}" || rc=1
	fi
	if [ -n "$holder" ] && [ "$holder" != unknown ]; then
		kill -TERM "$holder" 2>/dev/null || true
		if ! wait_gone "$holder" "$me" "$stop_timeout" "it stops the agents, nats-server and PostgreSQL"; then
			echo "$me (pid $holder) did not exit within ${stop_timeout} s; killing it (SIGKILL)" >&2
			kill -KILL "$holder" 2>/dev/null || true
			wait_gone "$holder" "$me" 10 || rc=1
		fi
	fi
	# Whatever is still up (the `up` was killed, or was still starting).
	reps=$(running_replicas)
	if [ -n "$reps" ]; then
		mapfile -t list <<<"$reps"
		stop_replicas "${list[@]}" || rc=1
	fi
	stop_edge || rc=1
	pgpid=$(pg_pid)
	[ -n "$pgpid" ] && { stop_pg "$pgpid" || rc=1; }
	rm -f "$run"/replica[1-9].pid "$run/latticed.pid" "$run/stopping"
	if [ "$rc" = 0 ]; then echo "local lattice stopped"; else echo "local lattice: not everything stopped" >&2; fi
	return "$rc"
}

# launch I ARGS...: starts replica I's latticed with ARGS, in a session of its own
# (Ctrl-C reaches `up` alone, which then sends each replica one SIGTERM), without
# the lock's descriptor; records its pid and its command line (for `start`).
LAUNCHED=
launch() {
	local i=$1; shift
	printf '%s\0' "$@" >"$run/replica$i.cmd"
	# setsid execs (no fork: a background job is no process group leader), so $!
	# is latticed's pid.
	setsid "$@" >>"$run/replica$i.log" 2>&1 </dev/null 9>&- &
	LAUNCHED=$!
	echo "$LAUNCHED" >"$run/replica$i.pid"
}

# launch_agent ID ARGS...: starts agent ID's lattice-agent with ARGS as launch
# does a replica; its pid in run/agents/ID.pid, its command line in ID.cmd.
launch_agent() {
	local id=$1; shift
	printf '%s\0' "$@" >"$run/agents/$id.cmd"
	setsid "$@" >>"$run/agents/$id.log" 2>&1 </dev/null 9>&- &
	LAUNCHED=$!
	echo "$LAUNCHED" >"$run/agents/$id.pid"
}

# agent_args K: agent K's command line, one word a line. --state-dir is not
# last: agent_pid looks for it followed by a space.
agent_args() {
	local cpu=2000 mem=2048
	[ "$1" -le 3 ] && cpu=4000 mem=4096
	echo "$AGENT"
	printf '%s\n' --nats "nats://127.0.0.1:$nats_port" --node-id "$(agent_id "$1")" --region "$(agent_region "$1")" \
		--label tier=edge --cpu-capacity "$cpu" --memory-mb "$mem" --state-dir "$run/agents/$(agent_id "$1")" \
		--driver sim
}

# replica_args I GROUP-FLAGS...: replica I's command line, one word a line.
replica_args() {
	echo "$LATTICED"
	printf '%s\n' --id "$1" "${@:2}" --listen "127.0.0.1:$((port + $1 - 1))" \
		--data-dir "$run/replica$1" --pg "host=$run/pg user=postgres dbname=lattice$1" \
		--schema-dir "$top/schema" --ui-dir "$top/ui" --nats "nats://127.0.0.1:$nats_port"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true; }
leader_of() { curl -s --max-time 5 "$(api_of "$1")/v1/cluster" 2>/dev/null | jq -r '.leader.id // empty' 2>/dev/null || true; }

# wait_ready I...: until each replica's /readyz answers 200 (PostgreSQL reached,
# a leader known); gives up (1) when one exits, or after LATTICE_START_TIMEOUT.
wait_ready() {
	local i t pid
	for i in "$@"; do
		for ((t = 0; ; t++)); do
			[ "$(http_code "$(api_of "$i")/readyz")" = 200 ] && break
			pid=$(cat "$run/replica$i.pid" 2>/dev/null || true)
			if [ -z "$pid" ] || ! alive "$pid"; then
				echo "replica $i exited while starting; the end of $run/replica$i.log:" >&2
				tail -20 "$run/replica$i.log" >&2
				return 1
			fi
			if [ "$t" -ge "$((start_timeout * 10))" ]; then
				echo "replica $i is not ready after ${start_timeout} s; $(api_of "$i")/readyz says:" \
					"$(curl -s --max-time 5 "$(api_of "$i")/readyz" || true)" >&2
				tail -20 "$run/replica$i.log" >&2
				return 1
			fi
			sleep 0.1
		done
	done
}

# agreed_leader I...: the leader every one of these replicas names, once they
# agree (an election may be under way); "" after LATTICE_START_TIMEOUT.
agreed_leader() {
	local t i l first
	for ((t = 0; t < start_timeout * 5; t++)); do
		first=
		for i in "$@"; do
			l=$(leader_of "$i")
			if [ -z "$l" ] || [ "${first:-$l}" != "$l" ]; then first= && break; fi
			first=$l
		done
		[ -n "$first" ] && { echo "$first"; return 0; }
		sleep 0.2
	done
}

# live_api: the API URL of a replica of this run dir that runs and is ready, or "".
live_api() {
	local i
	for ((i = 1; i <= 9; i++)); do
		[ -n "$(replica_pid "$i")" ] && [ "$(http_code "$(api_of "$i")/readyz")" = 200 ] && { api_of "$i"; return 0; }
	done
	return 0
}

# wait_healthy ID...: until each of these nodes is healthy (a consistent read,
# so the leader's view); 1 after LATTICE_START_TIMEOUT, saying which are not.
wait_healthy() {
	local t url json bad want
	want=$(printf '%s\n' "$@" | jq -R . | jq -sc .)
	for ((t = 0; ; t++)); do
		url=$(live_api)
		json=
		[ -n "$url" ] && json=$(curl -s --max-time 10 "$url/v1/nodes?limit=1000&consistent=true" 2>/dev/null || true)
		bad=$(jq -r --argjson want "$want" '($want - [.items[] | select(.status == "healthy") | .id]) | join(" ")' \
			<<<"$json" 2>/dev/null || echo "$*")
		[ -z "$bad" ] && return 0
		if [ "$t" -ge "$((start_timeout * 5))" ]; then
			echo "these agents' nodes are not healthy after ${start_timeout} s: $(jq -r --argjson want "$want" \
				'[.items[] | select(.id as $i | $want | index($i)) | select(.status != "healthy") | "\(.id) \(.status)"] | join(", ")' \
				<<<"$json" 2>/dev/null || echo "$bad") (see $run/agents/ID.log and $run/replica*.log)" >&2
			return 1
		fi
		sleep 0.2
	done
}

# fencing ID: "TOTAL OPEN": the failover_fencing stops written for node ID, and
# how many of them its agent has not acked yet ("" when no replica answers).
fencing() {
	local url
	url=$(live_api)
	[ -n "$url" ] || return 0
	curl -s --max-time 10 "$url/v1/commands?node=$1&limit=1000&consistent=true" 2>/dev/null |
		jq -r '[.items[] | select(.command_type == "actor_stop" and .payload.reason == "failover_fencing")] |
			"\(length) \([.[] | select(.status != "acked")] | length)"' 2>/dev/null || true
}

case "${1:-up}" in
stop) stop_cmd; exit $? ;;
reset)
	stop_cmd || exit 1
	rm -rf "$run"
	echo "$run removed"
	exit 0
	;;
start)
	i=${2:-}
	case $i in [1-9]) ;; *) echo "usage: $0 start N (the replica to start again)" >&2; exit 2 ;; esac
	holder=$(holder_pid)
	[ -n "$holder" ] || { echo "no local lattice is running in $run; start one with $me" >&2; exit 1; }
	[ -f "$run/replica$i.cmd" ] || { echo "replica $i is not part of the local lattice in $run" >&2; exit 1; }
	pid=$(replica_pid "$i")
	[ -z "$pid" ] || { echo "replica $i already runs (pid $pid)" >&2; exit 1; }
	mapfile -d '' args <"$run/replica$i.cmd"
	# The ports `up` was given (this shell's LATTICE_PORT may differ).
	for j in "${!args[@]}"; do [ "${args[$j]}" = --listen ] && port=$((${args[$((j + 1))]##*:} - i + 1)); done
	launch "$i" "${args[@]}"
	wait_ready "$i" || exit 1
	echo "replica $i runs again (pid $LAUNCHED, $(api_of "$i")); replica $(agreed_leader "$i") leads"
	exit 0
	;;
agent)
	id=${3:-}
	if [ "${2:-}" != start ] || [ -z "$id" ] || [ "$#" != 3 ]; then
		echo "usage: $0 agent start ID (the agent to start again; see $run/agents/*.cmd)" >&2
		exit 2
	fi
	holder=$(holder_pid)
	[ -n "$holder" ] || { echo "no local lattice is running in $run; start one with $me" >&2; exit 1; }
	case $id in */* | .*) id= ;; esac
	if [ -z "$id" ] || [ ! -f "$run/agents/$id.cmd" ]; then
		echo "agent $3 is not part of the local lattice in $run" >&2
		exit 1
	fi
	pid=$(agent_pid "$id")
	[ -z "$pid" ] || { echo "agent $id already runs (pid $pid)" >&2; exit 1; }
	# The API port `up` was given (this shell's LATTICE_PORT may differ).
	if [ -f "$run/replica1.cmd" ]; then
		mapfile -d '' args <"$run/replica1.cmd"
		for j in "${!args[@]}"; do [ "${args[$j]}" = --listen ] && port=${args[$((j + 1))]##*:}; done
	fi
	mapfile -d '' args <"$run/agents/$id.cmd"
	launch_agent "$id" "${args[@]}"
	echo "agent $id started (pid $LAUNCHED); waiting for its node to be healthy again (a node that keeps failing is held unhealthy longer each time)..."
	# A node back from the dead is held unhealthy for a heartbeat timeout or
	# longer (longer when it flaps), so a flaky one is not trusted at once.
	wait_healthy "$id" || exit 1
	for ((t = 0; ; t++)); do
		read -r total open <<<"$(fencing "$id")"
		[ "${open:-1}" = 0 ] && break
		if [ "$t" -ge "$((start_timeout * 5))" ]; then
			echo "agent $id has not acked ${open:-its} failover_fencing stops after ${start_timeout} s; see $run/agents/$id.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	url=$(live_api)
	if [ "$total" = 0 ]; then
		echo "agent $id runs again (pid $LAUNCHED); its node is healthy; it was not failed over, so nothing was fenced"
	else
		echo "agent $id runs again (pid $LAUNCHED); its node is healthy; it acked $total failover_fencing stop(s):" \
			"the copies it ran before the failover are stopped"
	fi
	echo "  its commands: curl -s '$url/v1/commands?node=$id' | jq '.items[] | {command_type, actor_id, status, reason: .payload.reason}'"
	exit 0
	;;
up) ;;
*) echo "usage: $0 [up|stop|reset|start N|agent start ID]" >&2; exit 2 ;;
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
if reps=$(running_replicas) && [ -n "$reps" ]; then
	read -r i pid <<<"$reps"
	echo "a local lattice is already running (replica $i: latticed pid $pid, left by an earlier run); stop it with $me stop" >&2
	exit 1
fi
if pgpid=$(pg_pid) && [ -n "$pgpid" ]; then
	echo "a local lattice is already running (PostgreSQL pid $pgpid, left by an earlier run); stop it with $me stop" >&2
	exit 1
fi
if np=$(nats_pid) && [ -n "$np" ]; then
	echo "a local lattice is already running (nats-server pid $np, left by an earlier run); stop it with $me stop" >&2
	exit 1
fi
if ags=$(running_agents) && [ -n "$ags" ]; then
	read -r id pid <<<"$ags"
	echo "a local lattice is already running (agent $id: lattice-agent pid $pid, left by an earlier run); stop it with $me stop" >&2
	exit 1
fi
# Anything answering there would take the agents' heartbeats and the commands.
if (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then
	echo "127.0.0.1:$nats_port is taken (another nats-server, or another local lattice?): the local lattice's" \
		"nats-server needs it. Free it, or choose another port: LATTICE_NATS_PORT=4223 $me" >&2
	exit 1
fi
rm -f "$run/stopping" # left by a `stop` that was killed

# The group this run dir holds ("" none yet), and the one asked for.
want=$(members_of "$n")
have=$(cat "$run/group" 2>/dev/null || true)
legacy=
if [ -z "$have" ] && [ -d "$run/replica1" ]; then
	# The single-replica version of this script: replica 1 alone, bootstrapped
	# with --raft-address 127.0.0.1:LATTICE_RAFT_PORT, database `lattice`.
	legacy=1
	have=$(members_of 1)
fi
if [ -n "$have" ] && [ "$have" != "$want" ] && [[ $want != "$have,"* ]]; then
	m=$(tr ',' '\n' <<<"$have" | wc -l)
	first=${have%%,*}
	echo "$run holds a group of $m replica(s) talking Raft from ${first#*=} on (see $run/group):" \
		"LATTICE_REPLICAS=$n with LATTICE_RAFT_PORT=$raft_port could not elect a leader in it." >&2
	echo "Resume it with LATTICE_REPLICAS=$m LATTICE_RAFT_PORT=${first##*:} (or more replicas), or start from nothing: $me reset" >&2
	exit 1
fi
[ -z "$have" ] && have=$want
m=$(tr ',' '\n' <<<"$have" | wc -l) # replicas already in the group; m+1..n join it

# From here on, whatever runs from this run dir was started by this run.
on_exit() {
	trap '' INT TERM # finish stopping what we started
	local reps list pgpid
	reps=$(running_replicas)
	if [ -n "$reps" ]; then
		mapfile -t list <<<"$reps"
		stop_replicas "${list[@]}" || true
	fi
	stop_edge || true
	pgpid=$(pg_pid)
	[ -n "$pgpid" ] && { stop_pg "$pgpid" || true; }
	rm -f "$run"/replica[1-9].pid "$run/latticed.pid"
	echo "local lattice stopped; state kept in $run"
}
trap on_exit EXIT
trap 'exit 0' INT TERM

if [ -n "${LATTICED:-}" ]; then
	[ -x "$LATTICED" ] || { echo "LATTICED=$LATTICED is not an executable" >&2; exit 1; }
	AGENT=${LATTICE_AGENT:-$(dirname "$LATTICED")/sim/lattice-agent}
else
	bash "$top/scripts/deps.sh" # nats-server among them
	LATTICED=$top/build/latticed
	AGENT=${LATTICE_AGENT:-$top/build/sim/lattice-agent}
	# stale BIN DIR...: BIN is missing, or older than a file under DIR...
	stale() { [ ! -x "$1" ] || [ -n "$(find "${@:2}" -newer "$1" 2>/dev/null | head -1)" ]; }
	if stale "$LATTICED" "$top/controller" "$top/schema" "$top/ctl" ||
		{ [ -z "${LATTICE_AGENT:-}" ] && stale "$AGENT" "$top/controller" "$top/sim"; }; then
		echo "building latticed and lattice-agent..."
		(cd "$top" && { [ -f configure ] || autoreconf -fi >/dev/null 2>&1; })
		mkdir -p "$top/build"
		(cd "$top/build" && { [ -f Makefile ] || "$top/configure" -q; } && make -j"$(nproc)" >/dev/null)
	fi
fi
[ -x "$AGENT" ] || { echo "no lattice-agent at $AGENT: build it (make), or set LATTICE_AGENT" >&2; exit 1; }
NATS_SERVER=${LATTICE_NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS_SERVER" ] || {
	echo "no nats-server at $NATS_SERVER: install the nats-server package (apt-get install nats-server)," \
		"or set LATTICE_NATS_SERVER" >&2
	exit 1
}

if [ ! -d "$run/pg/data" ]; then
	mkdir -p "$run/pg"
	chmod 755 "$run" "$run/pg"
	[ "$(id -u)" = 0 ] && chown postgres "$run/pg"
	nosync=
	[ "$pg_fsync" = 0 ] && nosync=--no-sync
	as_pg "$PGBIN/initdb" -D "$run/pg/data" -U postgres -A trust -E UTF8 --locale=C $nosync >/dev/null 9>&-
fi
# A root-owned checkout may be unreachable for postgres: keep its socket in run/pg.
pg_opts="-k $run/pg -c listen_addresses=''"
[ "$pg_fsync" = 0 ] && pg_opts+=" -c fsync=off"
as_pg "$PGBIN/pg_ctl" -D "$run/pg/data" -l "$run/pg/pg.log" -w -o "$pg_opts" start >/dev/null 9>&-
db_exists() { psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1; }
if [ -n "$legacy" ]; then
	echo "$run holds a single-replica lattice from an earlier version of this script: resuming it as replica 1"
	if db_exists lattice && ! db_exists lattice1; then
		psql_pg -c "ALTER DATABASE lattice RENAME TO lattice1" >/dev/null
	fi
	[ -f "$run/latticed.log" ] && [ ! -e "$run/replica1.log" ] && mv "$run/latticed.log" "$run/replica1.log"
	rm -f "$run/latticed.pid"
fi
for ((i = 1; i <= n; i++)); do
	db_exists "lattice$i" || psql_pg -c "CREATE DATABASE lattice$i" >/dev/null
done
# Before any replica runs: a group once bootstrapped is recorded.
echo "$have" >"$run/group"

# nats-server with JetStream, on loopback only; its store in run/nats (a restart
# keeps the streams, their messages and the agents' consumers). Ready once its
# log, from where this start began, says so.
mkdir -p "$run/nats" "$run/agents"
from=$(stat -c %s "$run/nats.log" 2>/dev/null || echo 0)
setsid "$NATS_SERVER" -a 127.0.0.1 -js -sd "$run/nats" -p "$nats_port" >>"$run/nats.log" 2>&1 </dev/null 9>&- &
echo "$!" >"$run/nats.pid"
for ((t = 0; ; t++)); do
	tail -c +"$((from + 1))" "$run/nats.log" 2>/dev/null | grep -q "Server is ready" && break
	if [ -z "$(nats_pid)" ] || [ "$t" -ge "$((start_timeout * 10))" ]; then
		echo "nats-server did not start on 127.0.0.1:$nats_port; the end of $run/nats.log:" >&2
		tail -c +"$((from + 1))" "$run/nats.log" | tail -20 >&2
		exit 1
	fi
	sleep 0.1
done

# The agents, before the replicas: a leader declares a node it has not heard
# from dead one heartbeat timeout after it took over, so they must be
# heartbeating by then. Until the leader has created their consumers they only
# heartbeat (and retry binding every second).
agent_ids=()
for ((k = 1; k <= agents; k++)); do
	mapfile -t args < <(agent_args "$k")
	agent_ids+=("$(agent_id "$k")")
	launch_agent "$(agent_id "$k")" "${args[@]}"
done

# The group's replicas, all with the same --members list, so that they bootstrap
# one group; later starts resume it (the list is then ignored).
for ((i = 1; i <= m; i++)); do
	mapfile -t args < <(replica_args "$i" --bootstrap --members "$have")
	launch "$i" "${args[@]}"
done
ids=$(seq 1 "$m")
# shellcheck disable=SC2086 # ids: words on purpose
wait_ready $ids || exit 1

if [ "$m" -lt "$n" ]; then
	# Grow the group: the new replicas ask the leader to add them (--join, retried
	# until they are members), which copies the group's state to them and makes
	# them voters. Once they are, the new list is the group's.
	# shellcheck disable=SC2086
	lead=$(agreed_leader $ids)
	[ -n "$lead" ] || { echo "replicas $ids do not agree on a leader; see $run/replica*.log" >&2; exit 1; }
	echo "adding replicas $((m + 1))-$n to the group of $m (through replica $lead, its leader)..."
	for ((i = m + 1; i <= n; i++)); do
		mapfile -t args < <(replica_args "$i" --join "$(api_of "$lead")" --raft-address "$(raft_of "$i")")
		launch "$i" "${args[@]}"
	done
	# shellcheck disable=SC2046
	wait_ready $(seq $((m + 1)) "$n") || exit 1
	for ((t = 0; ; t++)); do
		voters=$(curl -s --max-time 5 "$(api_of "$lead")/v1/cluster" 2>/dev/null |
			jq -r '[.members[]? | select(.role == "voter") | .id] | sort | map(tostring) | join(" ")' 2>/dev/null || true)
		[ "$voters" = "$(seq -s ' ' 1 "$n")" ] && break
		if [ "$t" -ge "$((start_timeout * 5))" ]; then
			echo "the group's voters are [$voters] after ${start_timeout} s, not 1-$n; see $run/replica*.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "$want" >"$run/group"
	for ((i = m + 1; i <= n; i++)); do # what `start` runs from now on
		mapfile -t args < <(replica_args "$i" --bootstrap --members "$want")
		printf '%s\0' "${args[@]}" >"$run/replica$i.cmd"
	done
fi

ids=$(seq 1 "$n")
# shellcheck disable=SC2086
lead=$(agreed_leader $ids)
[ -n "$lead" ] || { echo "the replicas do not agree on a leader; see $run/replica*.log" >&2; exit 1; }

api=$(api_of 1)
post() {
	local code
	code=$(curl -s -o "$run/demo.out" -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' \
		--data-binary "$2" "$api$1" 2>/dev/null || true)
	case $code in 2??) ;; *) echo "demo: POST $1 answered ${code:-nothing}: $(cat "$run/demo.out" 2>/dev/null)" >&2 ;; esac
}
# The agents' nodes, registered by their first heartbeats: the demo places
# actors on them, so it waits until the leader counts them healthy.
echo "waiting for the agents' nodes to be healthy..."
wait_healthy "${agent_ids[@]}" || exit 1
# The demo goes into a lattice without actors. A consistent read: replica 1 may
# be a follower whose PostgreSQL lags behind.
if [ "${LATTICE_DEMO:-1}" != 0 ] &&
	[ "$(curl -s --max-time 30 "$api/v1/actors?limit=1&consistent=true" | jq '.items | length' 2>/dev/null)" = 0 ]; then
	echo "loading the demo through replica 1..."
	k=$((agents < 3 ? agents : 3)) # an ap-south agent, when there is one
	near=$(agent_region "$k")
	post /v1/policies '{"policy_id":"edge-default","allowed_contracts":["wasmcloud:keyvalue","wasmcloud:httpserver","wasmcloud:messaging"],"max_actor_memory_mb":512,"network_restrictions":["internal-only"],"selector":{"labels":{"tier":"edge"}}}'
	# The seed's pattern 4 example: a latency-bound sensor task near its region.
	post /v1/actors '{"id":"task-sensor-001","module":"registry.local/edge-processor:0.1.0","cpu_required":500,"memory_required_mb":256,"preferred_region":"'"$near"'","priority":5,"max_latency_ms":50}'
	post /v1/providers '{"id":"kv-redis","contract_id":"wasmcloud:keyvalue","image":"wasmcloud.azurecr.io/kvredis:0.27.0","nodes":["'"$(agent_id "$k")"'"]}'
	post /v1/actors '{"id":"edge-processor","module":"registry.local/edge-processor:0.1.0","cpu_required":250,"memory_required_mb":64,"replicas":3,"contracts":["wasmcloud:keyvalue"]}'
	post /v1/links '{"actor_id":"edge-processor","provider_id":"kv-redis","contract_id":"wasmcloud:keyvalue","values":{"BUCKET":"edge-data"}}'
	rm -f "$run/demo.out"
	# Running: the agents acked the actor_start commands of every placement.
	for ((t = 0; ; t++)); do
		notyet=$(curl -s --max-time 10 "$api/v1/actors?limit=1000&consistent=true" 2>/dev/null |
			jq -r '[.items[] | select(.id == "task-sensor-001" or .id == "edge-processor") | .placements[] |
				select(.state != "running")] | length' 2>/dev/null || echo unknown)
		[ "$notyet" = 0 ] && break
		if [ "$t" -ge "$((start_timeout * 5))" ]; then
			echo "demo: $notyet of its actors' placements are not running after ${start_timeout} s;" \
				"see $run/agents/*.log and curl -s '$api/v1/commands' | jq" >&2
			break
		fi
		sleep 0.2
	done
fi

other=$((lead % n + 1)) # a replica that is not the leader (itself when alone)
# The agents' nodes and what they run: {ID: {region, runs}}; and the agent to
# stop to watch an edge failover: one that runs something, task-sensor-001's first.
nodes_j=$(curl -s --max-time 10 "$api/v1/nodes?limit=1000&consistent=true" 2>/dev/null || true)
actors_j=$(curl -s --max-time 10 "$api/v1/actors?limit=1000&consistent=true" 2>/dev/null || true)
edge=$(jq -c -n --argjson n "${nodes_j:-null}" --argjson a "${actors_j:-null}" '
	[($n.items // [])[] | .id as $id | {key: $id, value: {region,
		runs: ([($a.items // [])[] | .id as $aid | .placements[]? | select(.node_id == $id) | "\($aid)/\(.instance) \(.state)"]
			| if length == 0 then "runs nothing" else "runs " + join(", ") end)}}] | from_entries' 2>/dev/null ||
	echo '{}')
victim=$(jq -r -n --argjson a "${actors_j:-null}" --argjson ids "$(printf '%s\n' "${agent_ids[@]}" | jq -R . | jq -sc .)" '
	[($a.items // []) | (map(select(.id == "task-sensor-001")) + .)[] | .placements[]? | .node_id |
		select(. as $n | $ids | index($n))] | first // empty' 2>/dev/null || true)
[ -n "$victim" ] || victim=${agent_ids[0]}
{
	echo
	if [ "$n" = 1 ]; then echo "lattice is up (a single replica):"; else echo "lattice is up ($n replicas, replica $lead leads):"; fi
	for ((i = 1; i <= n; i++)); do
		role=follower
		[ "$i" = "$lead" ] && role=leader
		printf '  replica %s  %-24s %-9s pid %-8s log %s\n' "$i" "$(api_of "$i")" "$role" \
			"$(cat "$run/replica$i.pid")" "$run/replica$i.log"
	done
	echo "  dashboard    $api/ui/    (every replica serves it)"
	echo "  try          curl $api/v1/nodes | jq    (any replica; writes go on to the leader)"
	echo "  latticectl   $(dirname "$LATTICED")/ctl/latticectl --server $(for ((i = 1; i <= n; i++)); do printf '%s%s' "$([ "$i" = 1 ] || echo ,)" "$(api_of "$i")"; done) nodes"
	echo "  cluster      curl $(api_of "$other")/v1/cluster | jq"
	echo "  metrics      $api/metrics"
	echo "  PostgreSQL   psql -h $run/pg -U postgres lattice1    (replica N's database: latticeN)"
	printf '  NATS         %-24s JetStream pid %-8s log %s (store %s)\n' "nats://127.0.0.1:$nats_port" \
		"$(cat "$run/nats.pid")" "$run/nats.log" "$run/nats"
	echo "Agents (lattice-agent, sim driver; state and log in $run/agents/ID, ID.log), and what they run:"
	for id in "${agent_ids[@]}"; do
		printf '  %-18s %-9s pid %-8s %s\n' "$id" "$(jq -r --arg id "$id" '.[$id].region // "?"' <<<"$edge")" \
			"$(cat "$run/agents/$id.pid")" "$(jq -r --arg id "$id" '.[$id].runs // "?"' <<<"$edge")"
	done
	if [ "$n" -gt 1 ]; then
		echo "Failover: kill the leader (kill -9 $(cat "$run/replica$lead.pid")) and watch replica $other name a new one"
		echo "  within a second or two: curl -s $(api_of "$other")/v1/cluster | jq .leader"
		echo "  then bring it back (it catches up as a follower): $me start $lead"
	fi
	echo "Edge failover: stop agent $victim (kill $(cat "$run/agents/$victim.pid")); after 3 s of silence its node is" \
		"unhealthy and its actors start on healthy nodes:"
	echo "  curl -s $api/v1/failovers | jq"
	echo "  curl -s '$api/v1/actors' | jq '.items[] | {id, placements}'"
	echo "  then bring it back (its old copies get failover_fencing stops): $me agent start $victim"
	echo "  curl -s '$api/v1/commands?node=$victim' | jq '.items[] | {command_type, actor_id, status, reason: .payload.reason}'"
	echo "Ctrl-C (or: $me stop) stops everything; state stays in $run."
}

# how_exited PID: HOW=" (exit status N)" or " (killed by SIGX)" when PID was a
# child of this shell, else "". Not in $(...): only this shell can wait for it.
how_exited() {
	local st=0
	HOW=
	wait "$1" 2>/dev/null || st=$?
	[ "$st" = 127 ] && return 0 # not our child (started by `start`)
	if [ "$st" -gt 128 ]; then HOW=" (killed by SIG$(kill -l $((st - 128))))"; else HOW=" (exit status $st)"; fi
}

# Until every replica has exited (Ctrl-C or `stop` end it sooner): say when one
# exits, or an agent, or nats-server, and how to start it again.
declare -A seen=() seen_agent=()
for ((i = 1; i <= n; i++)); do seen[$i]=$(cat "$run/replica$i.pid"); done
for id in "${agent_ids[@]}"; do seen_agent[$id]=$(cat "$run/agents/$id.pid"); done
seen_nats=$(cat "$run/nats.pid")
while :; do
	any=
	for ((i = 1; i <= n; i++)); do
		cur=$(replica_pid "$i")
		if [ -n "${seen[$i]}" ] && [ -z "$cur" ] && [ ! -e "$run/stopping" ]; then
			how_exited "${seen[$i]}"
			echo "replica $i (pid ${seen[$i]}) exited$HOW; start it again with: $me start $i"
		fi
		seen[$i]=$cur
		[ -n "$cur" ] && any=1
	done
	for id in "${agent_ids[@]}"; do
		cur=$(agent_pid "$id")
		if [ -n "${seen_agent[$id]}" ] && [ -z "$cur" ] && [ ! -e "$run/stopping" ]; then
			how_exited "${seen_agent[$id]}"
			echo "agent $id (pid ${seen_agent[$id]}) exited$HOW; its node turns unhealthy" \
				"and its actors fail over; start it again with: $me agent start $id"
		fi
		seen_agent[$id]=$cur
	done
	cur=$(nats_pid)
	if [ -n "$seen_nats" ] && [ -z "$cur" ] && [ ! -e "$run/stopping" ]; then
		how_exited "$seen_nats"
		echo "nats-server (pid $seen_nats) exited$HOW: agents and replicas cannot talk;" \
			"no node is declared dead meanwhile. See $run/nats.log; to start it again: $me stop, then $me"
	fi
	seen_nats=$cur
	if [ -z "$any" ]; then
		[ -e "$run/stopping" ] || echo "every replica has exited"
		exit 0
	fi
	sleep 1 9>&- & # not holding the lock after `up` has exited
	wait $! || true
done
