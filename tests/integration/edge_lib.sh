# edge_lib.sh — helpers of the edge tests (sourced after lib.sh):
#
#   agent_start ID [REGION [CPU]]  a lattice-agent for node ID (sim driver; region
#                                  eu, 2000 millicores, 4096 MiB by default; more
#                                  flags in EDGE_AGENT_FLAGS), state in
#                                  $T_DIR/agents/ID, log $T_DIR/agent-ID.log
#   agent_kill ID                  kill -9 it (a crash) and reap it
#   agents_stop                    SIGTERM every agent still running (also on exit)
#   until_eq WANT CMD...           runs CMD until it prints WANT (60 s at most, a
#                                  guard against hangs); prints what it printed last
#   get PATH FILTER                GET on $API and jq -r FILTER, or "(status N)"
#   metric NAME                    a sample of $API/metrics, or "none"

AGENT=${LATTICE_AGENT:-$top_builddir/sim/lattice-agent}
[ -x "$AGENT" ] || bail "lattice-agent not built at $AGENT"
declare -A APID=()
EDGE_AGENT_FLAGS=()

agent_start() {
	mkdir -p "$T_DIR/agents"
	"$AGENT" --nats "$NATS_URL" --node-id "$1" --region "${2:-eu}" --cpu-capacity "${3:-2000}" --memory-mb 4096 \
		--state-dir "$T_DIR/agents/$1" --heartbeat-interval-ms 250 "${EDGE_AGENT_FLAGS[@]}" \
		>>"$T_DIR/agent-$1.log" 2>&1 &
	APID[$1]=$!
}

agent_kill() {
	kill -9 "${APID[$1]}" 2>/dev/null
	wait "${APID[$1]}" 2>/dev/null
	unset "APID[$1]"
}

agents_stop() {
	local id
	for id in "${!APID[@]}"; do
		kill -CONT "${APID[$id]}" 2>/dev/null
		kill "${APID[$id]}" 2>/dev/null
		wait "${APID[$id]}" 2>/dev/null
		unset "APID[$id]"
	done
}
trap 'agents_stop; lib_cleanup' EXIT

until_eq() {
	local want=$1 got= i
	shift
	for i in $(seq 1 600); do
		got=$("$@")
		[ "$got" = "$want" ] && break
		sleep 0.1
	done
	printf '%s' "$got"
}

get() {
	req GET "$1"
	[ "$STATUS" = 200 ] && jqr "$2" || echo "(status $STATUS)"
}

metric() {
	req GET /metrics
	printf '%s\n' "$BODY" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print "none" }'
}
