# shellcheck shell=bash
# protocol.sh — checks NATS traffic against the edge protocol (sourced; needs
# tests/lib/tap.sh). docs/protocol.md is the contract, api/nats/*.schema.json its
# JSON Schemas (draft 2020-12).
#
# Capturing real traffic in a test (latticed, lattice-agent, ...):
#
#   . "$top_srcdir/tests/lib/servers.sh"; . "$top_srcdir/tests/lib/protocol.sh"
#   nats_start                                  # sets NATS_URL
#   natscap_start "$T_DIR/cap" 'lattice.default.>' || bail "natscap did not start"
#   ... run latticed / agents against $NATS_URL, make them talk ...
#   natscap_stop                                # SIGTERM; every message is on disk
#   if protocol_setup; then
#       protocol_validate "$T_DIR/cap"; ok $? "NATS traffic follows docs/protocol.md"
#   else
#       skip_point "$PROTOCOL_WHY" "NATS traffic follows docs/protocol.md"
#   fi
#
# natscap_start DIR [SUBJECT]  starts tests/tools/natscap subscribed (core NATS) to
#   SUBJECT (default lattice.default.>) on $NATS_URL, writing each message to
#   DIR/<n>.<subject>.json and its headers to DIR/<n>.<subject>.hdr; returns once
#   the subscription is in place on the server (NATSCAP_PID). JetStream subjects
#   are ordinary subjects, so commands, acks and snapshots are captured as they
#   are published (a re-published duplicate is captured twice, which is fine).
# natscap_stop  SIGTERM; natscap flushes its connection before it exits, so every
#   message the server routed to it before the signal is written (stop it after
#   the publishers you care about have flushed or had their JetStream acks).
#   Returns natscap's exit status. Both act on one natscap at a time.
# protocol_setup  installs ajv + ajv-formats (pinned below) once with npm into a
#   cache outside the tree, ${XDG_CACHE_HOME:-$HOME/.cache}/lattice-protocol
#   (override: LATTICE_PROTOCOL_CACHE; the first install downloads about 1 MB).
#   Returns 1 with the reason in PROTOCOL_WHY when node or npm are missing or the
#   install fails: use skip_point, which fails in strict mode (CI=true).
# protocol_validate DIR  validates every DIR/*.json against the schema its subject
#   names (hb→heartbeat, cmd→command, ack→ack, snap→snapshot, evt→event) and the
#   rules no schema can express: the subject is lattice.<L>.<kind>.<token>; the
#   subject's node equals node_id (hb, ack, snap) or target_node (cmd); a command's
#   Nats-Msg-Id header is its command_id, an ack's ack-<command_id>, a snapshot's
#   snap-<actor_id>-<state_version>; config_version is the generation
#   (actor_start, config_update) or payload.version (security_policy); snapshot
#   state (snap's data, actor_start's snapshot.data) decodes to at most 256 KiB;
#   an event's subject ends in its kind with '.' turned into '_'; the body size
#   limits (hb 256 KiB, cmd 512 KiB, ack 16 KiB, snap under 400 KiB). Prints a
#   TAP diagnostic "# FILE: RULE: detail" per failure; returns non-zero if any
#   rule failed, if DIR holds no message, or if it could not check.
# protocol_schema NAME FILE...  validates files against one schema (heartbeat,
#   command, ack, snapshot, event) only.

. "$(dirname "${BASH_SOURCE[0]}")/npm.sh"

PROTOCOL_AJV_VERSION=8.20.0
PROTOCOL_AJV_FORMATS_VERSION=3.0.1
PROTOCOL_JS_YAML_VERSION=4.1.0 # api/openapi.yaml for the REST contract check (tests/lib/contract_check.js)
PROTOCOL_SCHEMAS=${PROTOCOL_SCHEMAS:-$top_srcdir/api/nats}
PROTOCOL_CHECK=$top_srcdir/tests/lib/protocol_check.js
NATSCAP=${NATSCAP:-${top_builddir:-$top_srcdir}/tests/tools/natscap}
PROTOCOL_WHY=
PROTOCOL_MODULES=
NATSCAP_PID=
NATSCAP_DIR=

protocol_setup() {
	[ -n "$PROTOCOL_MODULES" ] && return 0
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		PROTOCOL_WHY="node and npm are needed to validate messages (scripts/deps.sh installs them)"
		return 1
	fi
	local cache rc
	cache=$(npm_cache protocol "${LATTICE_PROTOCOL_CACHE:-}")
	npm_pinned "$cache" "ajv@$PROTOCOL_AJV_VERSION" "ajv-formats@$PROTOCOL_AJV_FORMATS_VERSION" \
		"js-yaml@$PROTOCOL_JS_YAML_VERSION"
	rc=$?
	if [ $rc -ne 0 ] || [ ! -f "$cache/node_modules/ajv/dist/2020.js" ] ||
		[ ! -f "$cache/node_modules/ajv-formats/package.json" ] || [ ! -f "$cache/node_modules/js-yaml/package.json" ]; then
		PROTOCOL_WHY="npm install ajv@$PROTOCOL_AJV_VERSION ajv-formats@$PROTOCOL_AJV_FORMATS_VERSION into $cache failed (exit $rc)"
		return 1
	fi
	PROTOCOL_MODULES=$cache/node_modules
}

protocol_node() {
	PROTOCOL_NODE_MODULES=$PROTOCOL_MODULES node "$PROTOCOL_CHECK" "$PROTOCOL_SCHEMAS" "$@"
}

protocol_validate() {
	local dir=$1 files
	[ -d "$dir" ] || { diag "protocol_validate: $dir is not a directory"; return 1; }
	protocol_setup || { diag "protocol_validate: $PROTOCOL_WHY"; return 1; }
	mapfile -t files < <(find "$dir" -maxdepth 1 -name '*.json' | LC_ALL=C sort)
	[ ${#files[@]} -gt 0 ] || { diag "protocol_validate: $dir holds no message"; return 1; }
	printf '%s\n' "${files[@]}" | protocol_node capture -
}

protocol_schema() {
	protocol_setup || { diag "protocol_schema: $PROTOCOL_WHY"; return 1; }
	protocol_node schema "$@"
}

natscap_start() {
	local dir=$1 subject=${2:-lattice.default.>}
	[ -x "$NATSCAP" ] || { diag "natscap not built at $NATSCAP"; return 1; }
	[ -n "${NATS_URL:-}" ] || { diag "natscap_start: NATS_URL is not set (nats_start)"; return 1; }
	mkdir -p "$dir" || return 1
	NATSCAP_DIR=$dir
	"$NATSCAP" "$NATS_URL" "$subject" "$dir" >"$dir.out" 2>"$dir.err" &
	NATSCAP_PID=$!
	for _ in $(seq 1 600); do # a hang guard, not a timing assertion
		grep -qx ready "$dir.out" 2>/dev/null && return 0
		kill -0 "$NATSCAP_PID" 2>/dev/null || break
		sleep 0.05
	done
	sed 's/^/# natscap: /' "$dir.err"
	kill "$NATSCAP_PID" 2>/dev/null
	wait "$NATSCAP_PID" 2>/dev/null
	NATSCAP_PID=
	return 1
}

natscap_stop() {
	[ -n "$NATSCAP_PID" ] || return 0
	local rc
	kill -TERM "$NATSCAP_PID" 2>/dev/null
	wait "$NATSCAP_PID"
	rc=$?
	NATSCAP_PID=
	[ $rc -eq 0 ] || sed 's/^/# natscap: /' "$NATSCAP_DIR.err"
	return $rc
}
