#!/usr/bin/env bash
# protocol.sh — the edge protocol's JSON Schemas (api/nats/*.schema.json) and the
# message checker of tests/lib/protocol.sh (TAP):
#   1. the schemas compile under Ajv's strict mode (draft 2020-12), and every
#      ```json example of docs/protocol.md validates against the schema of the
#      section it sits in; the examples, given subjects and headers, also pass
#      the cross checks (protocol_validate);
#   2. planted bad messages are rejected, one rule each, and the diagnostics name
#      the rule; the limits hold exactly (64 labels pass, 65 fail, ...);
#   3. a live round trip through a real nats-server: tests/tools/natscap captures
#      what is published (core NATS and JetStream, with Nats-Msg-Id headers) byte
#      for byte, protocol_validate accepts the good capture and rejects the bad.
# No latticed, no PostgreSQL. Node.js and npm are needed (Ajv is installed once
# into a cache, see tests/lib/protocol.sh); without them the file is skipped (a
# failure in strict mode, CI=true).
#
# Run by hand: top_builddir=BUILD bash tests/integration/protocol.sh
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"
. "$top_srcdir/tests/lib/protocol.sh"

export LC_ALL=C
DOC=$top_srcdir/docs/protocol.md

command -v jq >/dev/null || skip_all "jq is not installed"
[ -x "$NATSCAP" ] || bail "natscap not built at $NATSCAP"
protocol_setup || skip_all "$PROTOCOL_WHY"

T=$(mktemp -d /tmp/lattice-protocol.XXXXXX) || bail "mktemp failed"
cleanup() {
	[ -n "$NATSCAP_PID" ] && kill "$NATSCAP_PID" 2>/dev/null
	servers_cleanup
	if [ -n "${KEEP_LOGS:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# ---- the examples of docs/protocol.md ------------------------------------------------

# Each ```json block goes to $T/ex/<schema>.<k>.json, the schema named by the
# "## " heading above it; a block under any other heading to unknown.<k>.json.
mkdir -p "$T/ex"
awk -v dir="$T/ex" '
	/^## / {
		h = $0; s = "unknown"
		if (h ~ /^## Heartbeat/) s = "heartbeat"
		else if (h ~ /^## Command/) s = "command"
		else if (h ~ /^## Ack/) s = "ack"
		else if (h ~ /^## Snapshot/) s = "snapshot"
		else if (h ~ /^## Events/) s = "event"
	}
	/^```json[ \t]*$/ { k++; f = dir "/" s "." k ".json"; inblock = 1; next }
	/^```/ && inblock { inblock = 0; close(f); next }
	inblock { print > f }
' "$DOC"
mapfile -t EXAMPLES < <(find "$T/ex" -name '*.json' | sort -t. -k2n)
ex() { find "$T/ex" -name "$1.*.json" | head -1; } # the first example of a schema

# ---- planted bad messages: NAME~SUBJECT~MSGID~JQ~EXPECTED DIAGNOSTIC -----------------
# Each starts from an example (the SUBJECT's kind picks which), is changed by JQ
# (jq -c), captured under SUBJECT with MSGID ("-": no header), and must fail
# with a diagnostic containing EXPECTED.
S=lattice.default
LONG=$(printf 'x%.0s' $(seq 1025))
BAD=(
	"node id with a dot~$S.hb.edge-eu-1~-~.node_id = \"edge.eu-1\"~/node_id pattern"
	"subject whose node token is split by a dot~$S.hb.edge.eu-1~-~.~: subject: "
	"heartbeat missing seq~$S.hb.edge-eu-1~-~del(.seq)~missing 'seq'"
	"ack with an extra field~$S.ack.edge-eu-1~ack-c-1042-0~.extra = 1~additionalProperties: must NOT have additional properties 'extra'"
	"wrong command_type~$S.cmd.edge-eu-1~c-1042-0~.command_type = \"actor_restart\"~/command_type enum"
	"actor_start payload missing module~$S.cmd.edge-eu-1~c-1042-0~del(.payload.module)~/payload required: missing 'module'"
	"negative seq~$S.hb.edge-eu-1~-~.seq = -1~/seq minimum"
	"ack error of 1,025 characters~$S.ack.edge-eu-1~ack-c-1042-0~.status = \"error\" | .error = \"$LONG\"~/error maxLength"
	"snapshot data that is not base64~$S.snap.edge-eu-1~snap-thumbnailer-13~.data = \"eyJjb3VudCI6IDQzfQ=\"~/data pattern"
	"actor_start snapshot data that is not base64~$S.cmd.edge-eu-1~c-1042-0~.payload.snapshot.data = \"e30*\"~/payload/snapshot/data pattern"
	"heartbeat body naming another node than its subject~$S.hb.edge-eu-2~-~.~subject-node: body node_id 'edge-eu-1'"
	"command target_node not the subject's node~$S.cmd.edge-eu-2~c-1042-0~.~subject-node: target_node 'edge-eu-1'"
	"command whose Nats-Msg-Id differs from command_id~$S.cmd.edge-eu-1~c-1042-1~.~msg-id: Nats-Msg-Id is 'c-1042-1', must be 'c-1042-0'"
	"command without Nats-Msg-Id~$S.cmd.edge-eu-1~-~.~msg-id: want one Nats-Msg-Id header 'c-1042-0', got 0"
	"ack whose Nats-Msg-Id lacks ack-~$S.ack.edge-eu-1~c-1042-0~.~msg-id: Nats-Msg-Id is 'c-1042-0', must be 'ack-c-1042-0'"
	"snapshot whose Nats-Msg-Id names another version~$S.snap.edge-eu-1~snap-thumbnailer-12~.~must be 'snap-thumbnailer-13'"
	"ack status error without its reason~$S.ack.edge-eu-1~ack-c-1042-0~.status = \"error\"~/error type"
	"ack status ok with a reason~$S.ack.edge-eu-1~ack-c-1042-0~.error = \"boom\"~/error type"
	"time without a time zone~$S.hb.edge-eu-1~-~.sent_at = \"2026-12-02T10:15:30.125\"~/sent_at pattern"
	"time that is no date~$S.ack.edge-eu-1~ack-c-1042-0~.at = \"2026-02-30T10:15:31Z\"~/at format"
	"actor_stop with an unknown reason~$S.cmd.edge-eu-1~c-1042-0~.command_type = \"actor_stop\" | .config_version = 0 | .payload = {actor_id: \"a\", instance: 0, reason: \"bored\"}~/payload/reason enum"
	"actor_stop with a config_version~$S.cmd.edge-eu-1~c-1042-0~.command_type = \"actor_stop\" | .payload = {actor_id: \"a\", instance: 0, reason: \"deleted\"}~/config_version const"
	"actor_start payload under actor_migrate~$S.cmd.edge-eu-1~c-1042-0~.command_type = \"actor_migrate\" | .config_version = 0~/payload required: missing 'migration_id'"
	"security_policy whose config_version is not its version~$S.cmd.edge-eu-1~c-1042-0~.command_type = \"security_policy\" | .config_version = 4 | .payload = {version: 3, allowed_contracts: [], denied_contracts: [\"wasi:http\"], max_actor_memory_mb: null, network_restrictions: []}~config-version: security_policy"
	"actor_start whose config_version is not the generation~$S.cmd.edge-eu-1~c-1042-0~.config_version = 6~config-version: actor_start"
	"contract without a namespace~$S.cmd.edge-eu-1~c-1042-0~.command_type = \"security_policy\" | .config_version = 3 | .payload = {version: 3, allowed_contracts: [\"keyvalue\"], denied_contracts: [], max_actor_memory_mb: 64, network_restrictions: []}~/payload/allowed_contracts/0 pattern"
	"event on another kind's subject~$S.evt.node_created~-~.~subject-kind: subject ends in 'node_created'"
	"heartbeat actor in an unknown state~$S.hb.edge-eu-1~-~.actors[0].state = \"sleeping\"~/actors/0/state enum"
	"heartbeat larger than 256 KiB~$S.hb.edge-eu-1~-~.actors = [range(2200) | {actor_id: (\"a\" * 120 + (. | tostring)), state: \"running\", state_version: 0}]~size: "
	"snapshot data of 262,145 bytes~$S.snap.edge-eu-1~snap-thumbnailer-13~.data = (\"AAAA\" * 87381 + \"AAA=\")~data-size: /data decodes to 262145 bytes"
	"actor_start snapshot data of 262,146 bytes~$S.cmd.edge-eu-1~c-1042-0~.payload.snapshot.data = (\"AAAA\" * 87382)~data-size: /payload/snapshot/data decodes to 262146 bytes"
	"a subject of no known kind~$S.status.edge-eu-1~-~.~: subject: "
)

# ---- limits, exactly: SCHEMA~WHAT~JQ AT THE LIMIT~JQ ONE BEYOND~ITS DIAGNOSTIC ----------------
LIMITS=(
	"heartbeat~64 labels~.labels = ([range(64) | {key: \"k\(.)\", value: \"v\"}] | from_entries)~.labels = ([range(65) | {key: \"k\(.)\", value: \"v\"}] | from_entries)~/labels maxProperties"
	"heartbeat~label values of 255 characters~.labels.zone = (\"v\" * 255)~.labels.zone = (\"v\" * 256)~/labels/zone maxLength"
	"heartbeat~label keys of 63 characters~.labels = {(\"k\" * 63): \"v\"}~.labels = {(\"k\" * 64): \"v\"}~/labels propertyNames"
	"heartbeat~10,000 actors~.actors = [range(10000) | {actor_id: \"a\", state: \"running\", state_version: 0}]~.actors = [range(10001) | {actor_id: \"a\", state: \"running\", state_version: 0}]~/actors maxItems"
	"heartbeat~node ids of 64 characters~.node_id = (\"n\" * 64)~.node_id = (\"n\" * 65)~/node_id pattern"
	"heartbeat~seq from 1~.seq = 1~.seq = 0~/seq minimum"
	"heartbeat~region of 64 characters~.region = (\"r\" * 64)~.region = (\"r\" * 65)~/region pattern"
	"ack~error of 1,024 characters~.status = \"error\" | .error = (\"e\" * 1024)~.status = \"error\" | .error = (\"e\" * 1025)~/error maxLength"
	"snapshot~data of 349,528 base64 characters~.data = (\"AAAA\" * 87381 + \"AA==\")~.data = (\"AAAA\" * 87383)~/data maxLength"
	"command~actor ids of 128 characters, not ..~.payload.actor_id = (\"a\" * 128)~.payload.actor_id = \"..\"~/payload/actor_id pattern"
)

plan $((13 + ${#EXAMPLES[@]} + ${#BAD[@]} + 2 * ${#LIMITS[@]}))

protocol_node schemas
ok $? "the 5 schemas of api/nats compile (Ajv strict mode, draft 2020-12, \$id, title, description)"

for f in "${EXAMPLES[@]}"; do
	name=$(basename "$f" .json)
	name=${name%.*}
	if [ "$name" = unknown ]; then
		ok 1 "docs/protocol.md example $(basename "$f") is under a heading that names no schema"
		continue
	fi
	protocol_schema "$name" "$f"
	ok $? "docs/protocol.md's $name example validates against api/nats/$name.schema.json"
done

missing=
for s in heartbeat command ack snapshot event; do [ -n "$(ex "$s")" ] || missing="$missing $s"; done
[ -z "$missing" ]
ok $? "docs/protocol.md has an example for every schema${missing:+ (none for:$missing)}"

# mk DIR N SUBJECT MSGID(- none) < JSON: one captured message, as natscap writes it.
mk() {
	local f
	f=$1/$(printf '%06d' "$2").$3
	cat >"$f.json"
	[ "$4" = - ] || printf 'Nats-Msg-Id: %s\n' "$4" >"$f.hdr"
}
# The examples, and a command of every other type made from the command example.
good_set() {
	local d=$1 cmd
	mkdir -p "$d"
	cmd=$(ex command)
	mk "$d" 1 "$S.hb.edge-eu-1" - <"$(ex heartbeat)"
	mk "$d" 2 "$S.cmd.edge-eu-1" c-1042-0 <"$cmd"
	mk "$d" 3 "$S.ack.edge-eu-1" ack-c-1042-0 <"$(ex ack)"
	mk "$d" 4 "$S.snap.edge-eu-1" snap-thumbnailer-13 <"$(ex snapshot)"
	mk "$d" 5 "$S.evt.node_status" - <"$(ex event)"
	jq -c '.command_id = "c-1043-0" | .command_type = "actor_stop" | .config_version = 0 |
		.payload = {actor_id: "thumbnailer", instance: 0, reason: "failover_fencing"}' "$cmd" |
		mk "$d" 6 "$S.cmd.edge-eu-1" c-1043-0
	jq -c '.command_id = "c-1044-0" | .command_type = "actor_migrate" | .config_version = 0 |
		.payload = {actor_id: "thumbnailer", instance: 0, migration_id: "m-7", target_node: "edge-eu-2"}' "$cmd" |
		mk "$d" 7 "$S.cmd.edge-eu-1" c-1044-0
	jq -c '.command_id = "c-1045-0" | .command_type = "config_update" | .generation = 8 | .config_version = 8 |
		.payload = {actor_id: "thumbnailer", config: {size: "256x256"}}' "$cmd" |
		mk "$d" 8 "$S.cmd.edge-eu-1" c-1045-0
	jq -c '.command_id = "c-1046-0" | .command_type = "security_policy" | .generation = 3 | .config_version = 3 |
		.payload = {version: 3, allowed_contracts: ["wasmcloud:keyvalue", "wasmcloud:httpserver"],
			denied_contracts: ["wasi:sockets"], max_actor_memory_mb: null, network_restrictions: ["no-egress"]}' "$cmd" |
		mk "$d" 9 "$S.cmd.edge-eu-1" c-1046-0
	jq -c '.payload.snapshot = null' "$cmd" | mk "$d" 10 "$S.cmd.edge-eu-1" c-1042-0
	jq -c '.migration_id = "m-7"' "$(ex snapshot)" | mk "$d" 11 "$S.snap.edge-eu-1" snap-thumbnailer-13
	jq -c '.status = "error" | .error = "stale command: term 2 generation 9 is older than applied term 3 generation 7"' \
		"$(ex ack)" | mk "$d" 12 "$S.ack.edge-eu-1" ack-c-1042-0
}

good_set "$T/good"
out=$(protocol_validate "$T/good")
rc=$?
ok $rc "the examples as captured messages (every command type, subjects, Nats-Msg-Id) pass protocol_validate"
[ $rc -eq 0 ] || printf '%s\n' "$out"

mkdir -p "$T/empty"
out=$(protocol_validate "$T/empty")
rc=$?
[ $rc -ne 0 ] && grep -q 'holds no message' <<<"$out"
ok $? "protocol_validate fails on a directory that holds no message"

# ---- planted bad messages ---------------------------------------------------------------

base_of() {
	case $1 in
	*.hb.* | *.status.*) ex heartbeat ;;
	*.cmd.*) ex command ;;
	*.ack.*) ex ack ;;
	*.snap.*) ex snapshot ;;
	*.evt.*) ex event ;;
	esac
}

i=0
for b in "${BAD[@]}"; do
	i=$((i + 1))
	IFS='~' read -r name subj msgid filter want <<<"$b"
	d=$T/bad/$i
	mkdir -p "$d"
	if ! jq -c "$filter" "$(base_of "$subj")" | mk "$d" 1 "$subj" "$msgid"; then
		ok 1 "rejected: $name (jq failed)"
		continue
	fi
	out=$(protocol_validate "$d")
	rc=$?
	[ $rc -ne 0 ] && grep -qF -- "$want" <<<"$out"
	ok $? "rejected: $name"
	if [ $rc -eq 0 ] || ! grep -qF -- "$want" <<<"$out"; then
		diag "  want a diagnostic containing: $want"
		printf '%s\n' "$out" | cut -c1-300
	fi
done

printf 'not json {' >"$T/bad/notjson.json"
mkdir -p "$T/bad/nj" && mk "$T/bad/nj" 1 "$S.hb.edge-eu-1" - <"$T/bad/notjson.json"
! out=$(protocol_validate "$T/bad/nj") && grep -qF ': json: not JSON' <<<"$out"
ok $? "rejected: a body that is not JSON"

for l in "${LIMITS[@]}"; do
	IFS='~' read -r schema what inside beyond want <<<"$l"
	jq -c "$inside" "$(ex "$schema")" >"$T/in.json" && out=$(protocol_schema "$schema" "$T/in.json")
	rc=$?
	ok $rc "limit: $schema at the limit passes ($what)"
	[ $rc -eq 0 ] || printf '%s\n' "$out" | cut -c1-300
	jq -c "$beyond" "$(ex "$schema")" >"$T/out.json" || { ok 1 "limit: $schema one beyond fails ($what; jq failed)"; continue; }
	out=$(protocol_schema "$schema" "$T/out.json")
	rc=$?
	[ $rc -ne 0 ] && grep -qF -- "$want" <<<"$out"
	rc=$?
	ok $rc "limit: $schema one beyond fails ($what)"
	if [ $rc -ne 0 ]; then
		diag "  want a diagnostic containing: $want"
		printf '%s\n' "$out" | cut -c1-300
	fi
done

# ---- live: natscap on a real nats-server ----------------------------------------------

nats_start || bail "nats-server did not start"
for k in CMD ACK SNAP; do
	lk=${k,,}
	"$NATSCAP" --stream "$NATS_URL" "LATTICE_default_$k" "$S.$lk.>" >/dev/null || bail "cannot create stream LATTICE_default_$k"
done

# publish_dir DIR: publishes every message of DIR in order, on its subject, with
# its Nats-Msg-Id; JetStream for cmd/ack/snap (as latticed and agents do), core
# NATS for hb/evt and anything else.
publish_dir() {
	local f subj id how rc=0
	for f in $(find "$1" -name '*.json' | sort); do
		subj=$(basename "$f" .json)
		subj=${subj#*.}
		id=()
		[ -f "${f%.json}.hdr" ] && id=("$(sed -n 's/^Nats-Msg-Id: //p' "${f%.json}.hdr")")
		case $subj in *.cmd.* | *.ack.* | *.snap.*) how=--jspub ;; *) how=--pub ;; esac
		"$NATSCAP" "$how" "$NATS_URL" "$subj" "$f" "${id[@]}" >>"$T/published.out" || rc=1
	done
	return $rc
}

natscap_start "$T/cap-good"
ok $? "natscap subscribed to $S.> and said ready"
publish_dir "$T/good"
ok $? "the good set published (hb and evt on core NATS, cmd, ack and snap through JetStream)"
natscap_stop
ok $? "natscap exits 0 on SIGTERM"

# What was captured is what was published: the same subjects in the same order,
# the same bytes, the same Nats-Msg-Id headers.
same=0
(cd "$T/good" && ls) >"$T/want.ls"
(cd "$T/cap-good" && ls) >"$T/got.ls"
diff "$T/want.ls" "$T/got.ls" | sed 's/^/#   /' || same=1
for f in "$T"/good/*; do cmp -s "$f" "$T/cap-good/$(basename "$f")" || { diag "  differs: $(basename "$f")"; same=1; }; done
ok $same "natscap captured every message: subjects, order, bodies and Nats-Msg-Id headers as published"
grep -qx duplicate "$T/published.out"
ok $? "JetStream dropped the re-published command (same Nats-Msg-Id) as a duplicate, and natscap still captured it"

out=$(protocol_validate "$T/cap-good")
rc=$?
ok $rc "protocol_validate accepts the captured good traffic"
[ $rc -eq 0 ] || printf '%s\n' "$out"

# A bad capture: three bad messages among good ones.
mkdir -p "$T/badset"
mk "$T/badset" 1 "$S.hb.edge-eu-1" - <"$(ex heartbeat)"
mk "$T/badset" 2 "$S.hb.edge-eu-9" - <"$(ex heartbeat)"
jq -c '.command_id = "c-2000-0"' "$(ex command)" | mk "$T/badset" 3 "$S.cmd.edge-eu-1" c-2000-1
jq -c '.node_id = "edge-eu-1" | .extra = true' "$(ex ack)" | mk "$T/badset" 4 "$S.ack.edge-eu-1" ack-c-1042-0
mk "$T/badset" 5 "$S.evt.node_status" - <"$(ex event)"
natscap_start "$T/cap-bad" &&
	publish_dir "$T/badset" &&
	natscap_stop
ok $? "a bad set captured"
out=$(protocol_validate "$T/cap-bad")
rc=$?
bad_named=$(grep -o '^# [^ ]*\.json:' <<<"$out" | sed 's/^# //; s/:$//' | xargs -rn1 basename | sort -u | tr '\n' ' ')
[ $rc -ne 0 ] &&
	[ "$bad_named" = "000002.$S.hb.edge-eu-9.json 000003.$S.cmd.edge-eu-1.json 000004.$S.ack.edge-eu-1.json " ]
rc=$?
ok $rc "protocol_validate rejects the captured bad traffic, naming exactly the three bad messages"
[ $rc -eq 0 ] || printf '%s\n' "$out"

done_testing
