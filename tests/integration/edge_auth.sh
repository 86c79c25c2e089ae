#!/usr/bin/env bash
# edge_auth.sh — --nats-creds against a nats-server in operator (JWT) mode with
# JetStream, as a production NATS is run (docs/operations.md "NATS
# authentication"):
#   - latticed and lattice-agent, each with its own user's .creds, connect; the
#     leader creates its streams and consumers in the account; the agent's node
#     registers and is healthy; an actor is placed there and its start command
#     acked: the whole edge path works under authentication;
#   - no creds, a user the server does not know (another operator's account), a
#     .creds whose seed is not its JWT's: latticed cannot connect; it serves its
#     API, says in its log that NATS refused the credentials, and
#     lattice_nats_connected stays 0; an agent with bad creds says the same;
#   - a --nats-creds file that does not exist: latticed and lattice-agent exit 2
#     at start, naming it, before they touch anything; --nats-creds without
#     --nats is refused too.
# The operator, accounts, users and their JWTs are made by tests/tools/natsjwt
# (there is no nsc on Debian).
. "$(dirname "$0")/lib.sh"

NATSJWT=${NATSJWT:-$top_builddir/tests/tools/natsjwt}
[ -x "$NATSJWT" ] || skip_all "tests/tools/natsjwt not built (configure found no libcrypto: install libssl-dev)"
JSCTL=${JSCTL:-$top_builddir/tests/tools/jsctl}
[ -x "$JSCTL" ] || bail "jsctl not built at $JSCTL"

plan 31
lib_init
. "$(dirname "$0")/edge_lib.sh"

# ---- the operator, its accounts and users --------------------------------------------
K=$T_DIR/keys
mkdir -p "$K"
seed() { "$NATSJWT" key "$1" || bail "natsjwt key $1 failed"; }
pub() { "$NATSJWT" pub "$1" || bail "natsjwt pub failed"; }
OP_SEED=$(seed operator) SYS_SEED=$(seed account) ACC_SEED=$(seed account)
SYS=$(pub "$SYS_SEED") ACC=$(pub "$ACC_SEED")
# creds FILE ACCOUNT_SEED NAME [SEED]: a user of the account; its .creds carries
# SEED instead of the user's own when given (a forged file).
creds() {
	local useed upub jwt
	useed=$(seed user) upub=$(pub "$useed")
	jwt=$("$NATSJWT" user "$2" "$upub" "$3") || bail "natsjwt user failed"
	"$NATSJWT" creds "$jwt" "${4:-$useed}" >"$1" || bail "natsjwt creds failed"
}
creds "$K/latticed.creds" "$ACC_SEED" latticed
creds "$K/agent.creds" "$ACC_SEED" agent-edge-1
creds "$K/test.creds" "$ACC_SEED" test
creds "$K/forged.creds" "$ACC_SEED" forged "$(seed user)"
# A user of an account of another operator: well formed, signed, not trusted.
OTHER_OP=$(seed operator) OTHER_ACC=$(seed account)
creds "$K/stranger.creds" "$OTHER_ACC" stranger

{
	echo "operator: $("$NATSJWT" operator "$OP_SEED" lattice-test)"
	echo "system_account: $SYS"
	echo "resolver: MEMORY"
	echo "resolver_preload: {"
	echo "  $SYS: $("$NATSJWT" account "$OP_SEED" "$SYS" SYS)"
	echo "  $ACC: $("$NATSJWT" account "$OP_SEED" "$ACC" LATTICE jetstream)"
	echo "}"
} >"$K/server.conf" || bail "cannot write the server's configuration"
NATS_ARGS="-c $K/server.conf" nats_start || bail "cannot start nats-server in operator mode"
grep -q 'Trusted Operators' "$NATS_DIR/nats.log"
ok $? "nats-server runs in operator mode with JetStream ($(grep -c 'Starting JetStream' "$NATS_DIR/nats.log") JetStream start)"
"$JSCTL" "$NATS_URL" pending default none >"$T_DIR/anon.out" 2>&1
grep -qi 'authorization violation' "$T_DIR/anon.out"
ok $? "it refuses a client without credentials (authorization violation)"

# ---- 1. everything works with valid creds -------------------------------------------
lattice_start a --nats "$NATS_URL" --nats-creds "$K/latticed.creds" --heartbeat-timeout-ms 2000 \
	--heartbeat-interval-ms 200
is "$(until_eq 1 metric lattice_nats_connected)" 1 "latticed with --nats-creds connects (lattice_nats_connected 1)"
is "$(until_eq 1 metric lattice_nats_streams_ready)" 1 "... and sets its streams and consumers up (lattice_nats_streams_ready 1)"
grep -q 'nats: streams LATTICE_default_CMD, LATTICE_default_ACK, LATTICE_default_SNAP' "$T_DIR/a/latticed.log"
ok $? "... as its log says"

EDGE_AGENT_FLAGS=(--nats-creds "$K/agent.creds")
agent_start edge-1
is "$(until_eq healthy get /v1/nodes/edge-1 .status)" healthy "lattice-agent with its own --nats-creds registers its node, healthy"
grep -q 'NATS: connected to' "$T_DIR/agent-edge-1.log"
ok $? "... the agent's log says it connected"
pending() { "$JSCTL" -c "$K/test.creds" "$NATS_URL" pending default edge-1 2>&1; }
is "$(until_eq "0 0" pending)" "0 0" "the account holds stream LATTICE_default_CMD and consumer agent_edge-1 (JetStream API)"

req POST /v1/actors '{"id":"a1","module":"oci://demo/a:1","cpu_required":100,"memory_required_mb":16}'
is "$STATUS" 201 "an actor is created"
is "$(until_eq "edge-1 running" get /v1/actors/a1 '.placements[0] | "\(.node_id) \(.state)"')" "edge-1 running" \
	"it is placed on edge-1 and running"
is "$(get '/v1/commands?node=edge-1' '[.items[] | "\(.command_type):\(.status)"] | join(",")')" "actor_start:acked" \
	"its actor_start command was acked by the agent"
is "$(metric lattice_nats_connected)" 1 "latticed is still connected"
agents_stop
lattice_stop

# ---- 2. credentials the server refuses ---------------------------------------------------
# refused NAME [CREDS]: latticed NAME (its own group) without creds or with CREDS.
refused() {
	local name=$1 what=$2
	shift 2
	lattice_start "$name" --nats "$NATS_URL" "$@"
	is "$(until_eq 1 bash -c "grep -qi 'authorization violation' $T_DIR/$name/latticed.log && echo 1")" 1 \
		"$what: latticed logs that NATS refused it (authorization violation)"
	grep -i 'authorization violation' "$T_DIR/$name/latticed.log" | grep -q -- '--nats-creds'
	ok $? "... and points at --nats-creds"
	is "$(metric lattice_nats_connected)" 0 "... lattice_nats_connected is 0"
	req GET /v1/nodes
	is "$STATUS" 200 "... GET /v1/nodes still answers 200"
	lattice_stop
}
refused nocreds "no --nats-creds"
refused forged "a .creds whose seed is not its JWT's" --nats-creds "$K/forged.creds"
refused stranger "a user of an account of another operator" --nats-creds "$K/stranger.creds"

EDGE_AGENT_FLAGS=(--nats-creds "$K/forged.creds")
agent_start edge-2
is "$(until_eq 1 bash -c "grep -i 'authorization violation' $T_DIR/agent-edge-2.log | grep -q -- '--nats-creds' && echo 1")" 1 \
	"lattice-agent with a forged .creds logs that NATS refused it, pointing at --nats-creds"
agents_stop

# ---- 3. a --nats-creds file that does not exist --------------------------------------------
mkdir -p "$T_DIR/c"
timeout 60 "$LATTICED" --listen "127.0.0.1:$(free_port)" --raft-address "127.0.0.1:$(free_port)" --id 1 --bootstrap \
	--data-dir "$T_DIR/c/data" --pg "$PG_CONNINFO" --schema-dir "$SCHEMA_DIR" \
	--nats "$NATS_URL" --nats-creds "$T_DIR/missing.creds" >"$T_DIR/c/latticed.out" 2>&1
is "$?" 2 "latticed with a --nats-creds file that does not exist exits 2 at start"
grep -q "nats-creds.*$T_DIR/missing.creds.*No such file" "$T_DIR/c/latticed.out"
ok $? "... naming the file and why ($(head -c 200 "$T_DIR/c/latticed.out"))"
[ ! -e "$T_DIR/c/data" ]
ok $? "... before it creates its data dir"
"$LATTICED" --pg x --nats-creds "$K/latticed.creds" >"$T_DIR/c/nonats.out" 2>&1
is "$?:$(cat "$T_DIR/c/nonats.out")" "2:latticed: --nats-creds is given without --nats: give the NATS URL too, or drop it" \
	"--nats-creds without --nats: exit 2, saying so"
timeout 60 "$AGENT" --nats "$NATS_URL" --nats-creds "$T_DIR/missing.creds" --node-id edge-3 \
	--state-dir "$T_DIR/agents/edge-3" >"$T_DIR/agent-edge-3.out" 2>&1
is "$?" 2 "lattice-agent with a --nats-creds file that does not exist exits 2 at start"
grep -q "nats-creds.*$T_DIR/missing.creds.*No such file" "$T_DIR/agent-edge-3.out"
ok $? "... naming the file and why ($(head -c 200 "$T_DIR/agent-edge-3.out"))"

done_testing
