#!/usr/bin/env bash
# chaos_cluster.sh — sim/cluster.c (issue 9, item 3: the lattice a chaos run
# builds and its process faults and partitions), driven through
# tests/tools/clusterctl:
#   - the scenario's "cluster" object is parsed strictly;
#   - three replicas in their own network namespaces, each with its own
#     PostgreSQL, one nats-server: all ready, one leader, a write to replica 1
#     reads back (?consistent=true) from replica 3;
#   - the leader cut from both others: it still answers from the root namespace
#     but takes no write; the two others elect a leader and take a write; healed,
#     the old leader follows and has that write;
#   - kill -9 of a follower, a write, start: it catches up;
#   - kill -9 of a follower's PostgreSQL: that replica is not ready; started
#     again: ready, and its database has the write made meanwhile;
#   - nats-server stopped: every replica loses NATS; started: every one is back;
#   - down: no namespace, link, firewall rule or process of ours left;
#   - kill -9 of clusterctl: its leftovers are swept by the next one;
#   - netns false: everything on 127.0.0.1, partitions refused.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"

export LATTICED=${LATTICED:-$top_builddir/latticed}
export SCHEMA_DIR=${SCHEMA_DIR:-$top_srcdir/schema}
export PGBIN NATS_SERVER
CTL=$top_builddir/tests/tools/clusterctl

[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, veths, iptables)"
for t in ip iptables jq curl; do command -v "$t" >/dev/null || skip_all "$t is not installed (scripts/deps.sh)"; done
[ -x "$PGBIN/initdb" ] || skip_all "PostgreSQL server binaries not found in $PGBIN"
[ -x "$NATS_SERVER" ] || skip_all "nats-server not found ($NATS_SERVER)"
[ -x "$LATTICED" ] || bail "latticed not built at $LATTICED"
[ -x "$CTL" ] || bail "clusterctl not built at $CTL"
if ! ip netns add "lcprobe$$" 2>/dev/null; then skip_all "cannot create network namespaces here"; fi
ip netns del "lcprobe$$"

T_DIR=$(mktemp -d /tmp/lattice-test.XXXXXX) || bail "mktemp failed"
chmod 755 "$T_DIR" # PostgreSQL runs as user postgres below it
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T_DIR/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T_DIR/sanitizer"

plan 32

CC_PID=
cleanup() {
	if [ -n "$CC_PID" ] && kill -0 "$CC_PID" 2>/dev/null; then
		echo down >&"${CC[1]}" 2>/dev/null
		exec {CC[1]}>&- 2>/dev/null
		for _ in $(seq 1 300); do kill -0 "$CC_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$CC_PID" 2>/dev/null
	fi
	[ -n "${BG_PID:-}" ] && kill -9 "$BG_PID" 2>/dev/null
	"$CTL" sweep
	rm -rf "$T_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
trap '' PIPE # a clusterctl that died: a failed write, not the end of this file

# ---- parsing -----------------------------------------------------------------
is "$("$CTL" parse '{}')" "ok replicas=3 netns=true heartbeat_timeout_ms=3000 command_timeout_ms=2000 args=" \
	"cluster: the defaults of docs/chaos.md"
is "$("$CTL" parse '{"replicas":2,"netns":false,"heartbeat_timeout_ms":0,"command_timeout_ms":500,"latticed_args":["--log-level","debug"]}')" \
	"ok replicas=2 netns=false heartbeat_timeout_ms=0 command_timeout_ms=500 args=--log-level,debug" "cluster: every key"
out=$("$CTL" parse '{"replica":3}'; "$CTL" parse '{"replicas":6}'; "$CTL" parse '{"netns":"yes"}'; "$CTL" parse '{"latticed_args":"--x"}')
is "$out" "error: cluster: unknown key 'replica' (known: replicas, netns, heartbeat_timeout_ms, command_timeout_ms, latticed_args)
error: cluster.replicas: want an integer 1-5
error: cluster.netns: want true or false
error: cluster.latticed_args: want an array of at most 64 strings" "cluster: an unknown key, a value out of range, a wrong type: named"

# ---- a lattice of three --------------------------------------------------------
declare -A API=() PGC=() IPS=()
NATS_URL=
OWNER=

# cc_up NAME JSON: clusterctl up in a coprocess; reads its addresses until
# "ready" (0) or "error: ..." (1, printed).
cc_up() {
	mkdir -p "$T_DIR/$1"
	coproc CC { exec "$CTL" up "$T_DIR/$1" "$2" 2>>"$T_DIR/clusterctl.err"; }
	CC_PID=$!
	local k a b
	while read -r -t 150 k a b <&"${CC[0]}"; do
		case $k in
		api) API[$a]=$b ;;
		ip) IPS[$a]=$b ;;
		pg) PGC[$a]=$b ;;
		nats) NATS_URL=$a ;;
		pid) OWNER=$a ;;
		ready) return 0 ;;
		error:) diag "clusterctl up: $a $b"; return 1 ;;
		esac
	done
	diag "clusterctl up: no answer"
	return 1
}

# ask COMMAND...: sends it; REPLY_LINE is the answer.
ask() {
	echo "$*" >&"${CC[1]}"
	REPLY_LINE=
	read -r -t 150 REPLY_LINE <&"${CC[0]}"
}
# ctl COMMAND...: ask; 0 when the answer is "ok".
ctl() {
	ask "$@"
	[ "$REPLY_LINE" = ok ] && return 0
	diag "$*: ${REPLY_LINE:-no answer}"
	return 1
}

leader_of() { curl -s --max-time 3 "${API[$1]}/v1/cluster" | jq -r '.leader.id // empty' 2>/dev/null; }
state_of() { curl -s --max-time 3 "${API[$1]}/v1/cluster" | jq -r '.self.state // empty' 2>/dev/null; }

# agree I...: until (60 s) replicas I... name one leader (not $NOT, when
# set); prints it.
agree() {
	local i l first
	for _ in $(seq 1 300); do
		first=
		for i in "$@"; do
			l=$(leader_of "$i")
			[ -n "$l" ] && [ "$l" != "${NOT:-}" ] && { [ -z "$first" ] || [ "$l" = "$first" ]; } || { first=; break; }
			first=$l
		done
		[ -n "$first" ] && { echo "$first"; return 0; }
		sleep 0.2
	done
	return 1
}

# write I ID: POST /v1/nodes ID to replica I, again on a 503 (an election) for
# up to 30 s; 0 on 201. WINDEX is the answer's X-Lattice-Index.
write() {
	local st
	for _ in $(seq 1 60); do
		st=$(curl -s -o "$T_DIR/body" -D "$T_DIR/hdrs" -w '%{http_code}' --max-time 20 -X POST \
			-H 'Content-Type: application/json' \
			--data-binary "{\"id\":\"$2\",\"region\":\"r\",\"cpu_capacity\":1000,\"memory_mb\":1000}" \
			"${API[$1]}/v1/nodes")
		WINDEX=$(sed -n 's/^[Xx]-[Ll]attice-[Ii]ndex: *\([0-9]*\).*/\1/p' "$T_DIR/hdrs")
		[ "$st" = 201 ] && return 0
		case $st in 503 | 000) sleep 0.5 ;; *) diag "write $2 to replica $1: $st $(cat "$T_DIR/body")"; return 1 ;; esac
	done
	diag "write $2 to replica $1: still $st after 30 s: $(cat "$T_DIR/body")"
	return 1
}

# has I ID [QUERY]: replica I answers 200 for node ID (QUERY: consistent=true...).
has() {
	local st
	st=$(curl -s -o "$T_DIR/rbody" -w '%{http_code}' --max-time 20 "${API[$1]}/v1/nodes/$2?${3:-consistent=true}")
	[ "$st" = 200 ] && [ "$(jq -r .id "$T_DIR/rbody")" = "$2" ] && return 0
	diag "GET node $2 from replica $1 (${3:-consistent=true}): $st $(head -c 300 "$T_DIR/rbody")"
	return 1
}

# until_ok SECONDS CMD...: CMD until it succeeds, every 0.2 s (a hang guard).
until_ok() {
	local n=$(($1 * 5))
	shift
	for _ in $(seq 1 "$n"); do "$@" 2>/dev/null && return 0; sleep 0.2; done
	"$@"
}

readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${API[$1]}/readyz"; }
not_ready() { [ "$(readyz "$1")" = 503 ]; }
nats_gauge() { curl -s --max-time 5 "${API[$1]}/metrics" | awk '$1 == "lattice_nats_connected" {print $2}'; }
nats_all() { local i; for i in 1 2 3; do [ "$(nats_gauge "$i")" = "$1" ] || return 1; done; }

cc_up main '{"replicas":3,"heartbeat_timeout_ms":3000}'
ok $? "three replicas, each in its own namespace with its own PostgreSQL, ready (/readyz 200)"
[ -n "$CC_PID" ] && kill -0 "$CC_PID" 2>/dev/null || bail "clusterctl up failed: $(tail -5 "$T_DIR/clusterctl.err")"
TAG=$OWNER
diag "replicas at ${IPS[1]} ${IPS[2]} ${IPS[3]}, nats at $NATS_URL"
ok "$([ "$(ip netns list | grep -c "^lattice-chaos-$OWNER[a-z]-r[123]")" = 3 ] && [ -d "/sys/class/net/lcb${OWNER}a" ] && echo 0 || echo 1)" \
	"three namespaces lattice-chaos-$OWNER*-r1..3 and the bridge lcb${OWNER}a exist"

L=$(agree 1 2 3)
ok $? "the three replicas agree on one leader (${L:-none})"
[ -n "$L" ] || bail "no leader"

write 1 c1 && has 3 c1
ok $? "a write to replica 1 reads back with ?consistent=true from replica 3"

# ---- the leader isolated -----------------------------------------------------
OTHERS=()
for i in 1 2 3; do [ "$i" = "$L" ] || OTHERS+=("$i"); done
A=${OTHERS[0]} B=${OTHERS[1]}
ctl cut "$L" "$A" && ctl cut "$L" "$B"
ok $? "cut replica $L (the leader) from $A and from $B"

NL=$(NOT=$L agree "$A" "$B")
[ -n "$NL" ] && [ "$NL" != "$L" ]
ok $? "replicas $A and $B elect a new leader (${NL:-none}) without $L"

write "$A" c2 && has "$B" c2
ok $? "the majority takes a write (to replica $A) and reads it back from replica $B"

st=$(curl -s -o "$T_DIR/body" -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' \
	--data-binary '{"id":"c-lost","region":"r","cpu_capacity":1,"memory_mb":1}' "${API[$L]}/v1/nodes")
is "$st" 503 "the isolated old leader still answers from the root namespace, and takes no write"

ctl heal
ok $? "heal"
# (pre-vote: the old leader does not depose the new one; which one leads
# after is not this file's concern)
until_ok 60 eval '[ -n "$(agree 1 2 3)" ] && [ "$(state_of "$L")" = follower ]'
ok $? "healed, replica $L follows (leader $(agree 1 2 3))"
NL=$(agree 1 2 3)
has "$L" c2
ok $? "replica $L has the write made while it was cut off"

# ---- kill -9 of a follower --------------------------------------------------------
F=$L
ctl kill "$F" && ask alive "$F" && [ "$REPLY_LINE" = 0 ]
ok $? "kill -9 of replica $F (a follower): not running"
write "$NL" c3
IDX=$WINDEX
ctl start "$F" && ctl wait "$F"
ok $? "replica $F started again on its data dir: ready"
has "$F" c3 "min_index=$IDX"
ok $? "replica $F caught up: its own projection has the write made while it was down (min_index=$IDX)"

# ---- kill -9 of a follower's PostgreSQL ------------------------------------------
G=$F
ctl pg-kill "$G" && ask pg-alive "$G" && [ "$REPLY_LINE" = 0 ]
ok $? "kill -9 of replica $G's PostgreSQL (postmaster and backends)"
until_ok 30 not_ready "$G"
ok $? "replica $G is not ready without its PostgreSQL (/readyz 503)"
write "$NL" c4
ctl pg-start "$G" && ctl wait "$G"
ok $? "its PostgreSQL started again (crash recovery, the old postmaster.pid left): replica $G ready"
until_ok 30 eval '[ "$("$PGBIN/psql" -X -A -t -d "${PGC[$G]}" -c "SELECT id FROM nodes WHERE id = '"'c4'"'")" = c4 ]'
ok $? "replica $G's database, read from the root namespace (${PGC[$G]}), has the write made while it was down"

# ---- nats-server --------------------------------------------------------------
until_ok 30 nats_all 1
ok $? "every replica is connected to NATS ($NATS_URL, through the bridge)"
ctl nats-stop && until_ok 30 nats_all 0
ok $? "nats-server stopped: every replica lost NATS"
ctl nats-start && until_ok 60 nats_all 1
ok $? "nats-server started again on the same port: every replica reconnected"

# ---- down ---------------------------------------------------------------------
ask pids
PIDS=$REPLY_LINE
diag "processes: $PIDS"
is "$(echo "$PIDS" | wc -w)" 7 "7 processes run: 3 latticed, 3 postmasters, 1 nats-server"

# leftovers TAG: what is left of run TAG (namespaces, links, firewall rules,
# state file), one per line; nothing when clean.
leftovers() {
	ip netns list | grep "^lattice-chaos-$1[a-z]-" | sed 's/^/netns /'
	ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^lc[bvp]$1[a-z]" | sed 's/^/link /'
	iptables -w -S FORWARD | grep "lcb$1[a-z]"
	ls /run/lattice-chaos 2>/dev/null | grep "^$1[a-z]" | sed 's/^/state /'
}
alive_of() { local p; for p in "$@"; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && printf '%s ' "$p"; done; }

echo down >&"${CC[1]}"
read -r -t 120 REPLY_LINE <&"${CC[0]}"
wait "$CC_PID" 2>/dev/null
CC_PID=
is "$REPLY_LINE" ok "down"
is "$(leftovers "$TAG"; alive_of $PIDS)" "" "after down: no namespace, link, firewall rule, state file or process of the run left"

# ---- kill -9 of the owner -> swept ---------------------------------------------------
mkdir -p "$T_DIR/killed"
mkfifo "$T_DIR/in"
"$CTL" up "$T_DIR/killed" '{"replicas":1}' <"$T_DIR/in" >"$T_DIR/killed.out" 2>>"$T_DIR/clusterctl.err" &
BG_PID=$!
exec 8>"$T_DIR/in"
until_ok 60 grep -q '^ready\|^error' "$T_DIR/killed.out"
grep -q '^ready' "$T_DIR/killed.out" || diag "$(cat "$T_DIR/killed.out")"
echo pids >&8
until_ok 10 eval '[ "$(sed -n "/^ready/{n;p}" "$T_DIR/killed.out")" != "" ]'
KPIDS=$(sed -n '/^ready/{n;p}' "$T_DIR/killed.out")
kill -9 "$BG_PID"
wait "$BG_PID" 2>/dev/null
exec 8>&-
[ -n "$(leftovers "$BG_PID")" ] && [ -n "$(alive_of $KPIDS)" ]
ok $? "kill -9 of clusterctl leaves its namespace and processes ($KPIDS)"
"$CTL" sweep
# postgres backends end on their own once their postmaster is gone
until_ok 10 eval '[ -z "$(leftovers "$BG_PID"; alive_of $KPIDS)" ]'
ok $? "the next sweep removes them: $(leftovers "$BG_PID"; alive_of $KPIDS)"
BG_PID=

# ---- netns false ----------------------------------------------------------------
cc_up loopback '{"replicas":2,"netns":false}' && [ "${API[1]#http://127.0.0.1:}" != "${API[1]}" ] &&
	[ "$(agree 1 2)" != "" ]
ok $? "netns false: two replicas on 127.0.0.1 (${API[1]}, ${API[2]}), ready, one leader"
ask cut 1 2
refused=$REPLY_LINE
[ "${refused#error: partitions need network namespaces}" != "$refused" ] && ctl down
ok $? "netns false: a partition is refused ($refused), down"
wait "$CC_PID" 2>/dev/null
CC_PID=

reports=$(ls "$T_DIR"/sanitizer.* 2>/dev/null)
for f in $reports; do grep -m1 -A8 'ERROR: \|runtime error' "$f" | sed 's/^/#   /'; done
is "$reports" "" "no sanitizer report from clusterctl or any latticed"
done_testing
