#!/usr/bin/env bash
# latticectl.sh — latticectl (docs/latticectl.md) against real latticed
# replicas and their own PostgreSQL: every command family and every REST
# operation of api/openapi.yaml, the output formats (aligned tables, -o json
# parsed by jq, wide, name), -f files, the documented exit codes (0 to 6),
# flag > environment > config file > default, --help everywhere, the bash
# completion, a server list whose first replica is dead, events --watch, and a
# 410 events_compacted from a replica rebuilt from its snapshot. Prints TAP.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/integration/lib.sh"

CTL=${LATTICECTL:-$top_builddir/ctl/latticectl}
[ -x "$CTL" ] || bail "latticectl not built at $CTL"
export LC_ALL=C

plan 150

lib_init
lattice_start ctl
RAFT_PORT=$(cat "$T_DIR/ctl/raft_port")
# Nothing of the user's: no config file, no environment. (HOME comes back
# before done_testing: the contract check keeps its npm cache there.)
REAL_HOME=$HOME
export HOME=$T_DIR/home
mkdir -p "$HOME"
unset LATTICE_SERVER LATTICE_TOKEN LATTICE_TIMEOUT LATTICECTL_CONFIG XDG_CONFIG_HOME
DEAD=http://127.0.0.1:$(free_port) # nothing listens there
DEAD2=http://127.0.0.1:$(free_port)

# ---- helpers ------------------------------------------------------------------------

# lc ARGS...: latticectl --server $API -v ARGS; sets RC, OUT (stdout), ERR
# (stderr without the -v lines). Every request line goes to $T_DIR/trace, for
# the check that every REST operation was sent.
lc() { lcs "$API" "$@"; }
lcs() { # SERVERS ARGS...
	local s=$1
	shift
	"$CTL" --server "$s" -v "$@" >"$T_DIR/out" 2>"$T_DIR/err.raw" </dev/null
	RC=$?
	grep -E '^> [A-Z]+ http' "$T_DIR/err.raw" >>"$T_DIR/trace"
	grep -vE '^[<>*] ' "$T_DIR/err.raw" >"$T_DIR/err"
	OUT=$(cat "$T_DIR/out")
	ERR=$(cat "$T_DIR/err")
}
# bare ARGS...: latticectl with no --server of ours (precedence tests).
bare() {
	"$CTL" "$@" >"$T_DIR/out" 2>"$T_DIR/err" </dev/null
	RC=$?
	OUT=$(cat "$T_DIR/out")
	ERR=$(cat "$T_DIR/err")
}
jqo() { printf '%s' "$OUT" | jq -r "$1" 2>/dev/null; }

# aligned TEXT: every row's cells start where the header's columns do, with at
# least three spaces before each, and no line ends in a space. 0 when so.
aligned() {
	printf '%s\n' "$1" | awk '
		NR == 1 {
			for (i = 1; i <= length($0); i++)
				if (substr($0, i, 1) != " " && (i == 1 || substr($0, i - 1, 1) == " ")) start[++n] = i
			if (n < 2) bad = 1
		}
		{
			if ($0 ~ / $/) bad = 1
			for (k = 2; k <= n; k++)
				if (substr($0, start[k] - 3, 3) != "   " || substr($0, start[k], 1) == " ") bad = 1
		}
		END { exit bad }'
}
rows() { printf '%s\n' "$1" | sed 1d | grep -c .; } # data rows of a table

# ---- help, usage, version ----------------------------------------------------------------

bare --help
ok "$([ "$RC" = 0 ] && [ "$(printf '%s\n' "$OUT" | grep -cE '^  [0-6]  ')" = 7 ] && [ -z "$ERR" ]; echo $?)" \
	"latticectl --help: exit 0, on stdout, with the exit codes 0 to 6"
bare
is "$RC $([ -z "$OUT" ]; echo $?) $(printf '%s' "$ERR" | grep -c '^Usage:')" "2 0 1" "no command: usage on stderr, nothing on stdout, exit 2"
bare bogus
ok "$([ "$RC" = 2 ] && [ -z "$OUT" ] && printf '%s' "$ERR" | grep -q "unknown command 'bogus'"; echo $?)" \
	"an unknown command: exit 2, said on stderr"
bare nodes frobnicate
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q "unknown command 'frobnicate' for 'latticectl nodes'"; echo $?)" \
	"an unknown subcommand: exit 2, naming the group"
bare nodes list --bogus
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q "unknown flag --bogus"; echo $?)" "an unknown flag: exit 2"
bare nodes list -o yaml
is "$RC" 2 "-o yaml: exit 2 (table, wide, json or name)"
bare nodes get
is "$RC" 2 "nodes get without an id: exit 2"
bare version
ok "$([ "$RC" = 0 ] && [[ $OUT =~ ^latticectl\ [0-9]+\.[0-9]+ ]]; echo $?)" "version: '$OUT'"
bare --version
is "$RC $OUT" "0 $(bare version; echo "$OUT")" "--version says the same"

# --help on every command and group, found by walking the help itself.
commands_of() { "$CTL" "$@" --help | awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on { print $1 }'; }
ALL_CMDS=()
for g in $(commands_of); do
	subs=$(commands_of "$g")
	if [ -z "$subs" ]; then ALL_CMDS+=("$g"); else
		ALL_CMDS+=("$g")
		for s in $subs; do ALL_CMDS+=("$g $s"); done
	fi
done
bad=
for c in "${ALL_CMDS[@]}"; do
	# shellcheck disable=SC2086
	"$CTL" $c --help >"$T_DIR/h.out" 2>"$T_DIR/h.err" || bad+=" [$c: exit $?]"
	grep -q "^  latticectl $c" "$T_DIR/h.out" || bad+=" [$c: no usage line]"
	[ -s "$T_DIR/h.err" ] && bad+=" [$c: stderr]"
done
ok "$([ ${#ALL_CMDS[@]} -ge 50 ] && [ -z "$bad" ]; echo $?)" \
	"--help on every command and group (${#ALL_CMDS[@]}): usage on stdout, exit 0${bad:+:$bad}"
"$CTL" nodes cordon -h >"$T_DIR/a" && "$CTL" help nodes cordon >"$T_DIR/b" && cmp -s "$T_DIR/a" "$T_DIR/b"
ok $? "-h and 'latticectl help nodes cordon' print the same help"

# Every command is in the man page and in docs/latticectl.md.
bad=
for c in "${ALL_CMDS[@]}"; do
	sed 's/\\-/-/g; s/\\f[BIRP]//g' "$top_srcdir/ctl/latticectl.1" | grep -q -- "$c" || bad+=" [man: $c]"
	grep -q -- "$c" "$top_srcdir/docs/latticectl.md" || bad+=" [docs: $c]"
done
ok "$([ -z "$bad" ]; echo $?)" "every command is in latticectl.1 and docs/latticectl.md${bad:+:$bad}"
if command -v groff >/dev/null; then
	groff -man -ww -z "$top_srcdir/ctl/latticectl.1" >"$T_DIR/groff.out" 2>&1
	ok "$([ ! -s "$T_DIR/groff.out" ]; echo $?)" "groff finds nothing to warn about in latticectl.1 $(head -3 "$T_DIR/groff.out")"
else
	skip_point "groff is not installed" "groff finds nothing to warn about in latticectl.1"
fi

# ---- configuration: flag > environment > config file > default ------------------------------------

bare config view -o json
is "$RC $(jqo '.servers | join(",")') $(jqo .servers_from) $(jqo .token_set)" "0 http://127.0.0.1:8080 default false" \
	"nothing given: http://127.0.0.1:8080 (latticed's default --listen), no token"
mkdir -p "$HOME/.config/lattice"
printf '# test\nserver = %s\ntoken = tok-5\ntimeout = 9s\n' "$API" >"$HOME/.config/lattice/config"
chmod 600 "$HOME/.config/lattice/config"
bare nodes list
ok "$([ "$RC" = 0 ] && { [ -z "$ERR" ] || [ "$ERR" = "No nodes found." ]; }; echo $?)" \
	"~/.config/lattice/config's server is used (exit $RC)"
bare config view -o json
is "$(jqo .servers_from | cut -c1-11) $(jqo .token_from | cut -c1-11) $(jqo .timeout_ms)" "config file config file 9000" \
	"... and its token and timeout, each said to come from it"
LATTICE_SERVER=$DEAD bare nodes list
ok "$([ "$RC" = 5 ] && printf '%s' "$ERR" | grep -q "${DEAD#http://}"; echo $?)" \
	"LATTICE_SERVER beats the file (a dead one: exit 5, naming it)"
LATTICE_SERVER=$DEAD bare --server "$API" nodes list
is "$RC" 0 "--server beats LATTICE_SERVER"
"$CTL" -v nodes list 2>&1 >/dev/null | grep -q 'Authorization: Bearer <5 characters, hidden>'
ok $? "the file's token is sent (-v shows a 5-character one, hidden)"
LATTICE_TOKEN=tok-env "$CTL" -v nodes list 2>&1 >/dev/null | grep -q 'Authorization: Bearer <7 characters, hidden>'
ok $? "LATTICE_TOKEN beats the file's token"
LATTICE_TOKEN=tok-env "$CTL" -v --token tok-flag-9 nodes list 2>&1 >/dev/null | grep -q 'Authorization: Bearer <10 characters, hidden>'
ok $? "--token beats LATTICE_TOKEN"
"$CTL" -v --token tok-flag-9 nodes list 2>&1 >/dev/null | grep -q 'tok-flag-9'
ok "$([ $? != 0 ]; echo $?)" "-v never prints the token itself"
printf 'server = %s\n' "$DEAD" >"$T_DIR/other.conf"
LATTICECTL_CONFIG=$T_DIR/other.conf bare nodes list
rc1=$RC
LATTICECTL_CONFIG=$T_DIR/other.conf bare --config "$HOME/.config/lattice/config" nodes list
is "$rc1 $RC" "5 0" "LATTICECTL_CONFIG names the file (dead server: 5); --config beats it (0)"
bare --config "$T_DIR/missing.conf" nodes list
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q missing.conf; echo $?)" "a --config file that does not exist: exit 2"
printf 'server = %s\nsevrer = x\n' "$API" >"$T_DIR/typo.conf"
bare --config "$T_DIR/typo.conf" nodes list
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q "typo.conf:2: unknown key 'sevrer'"; echo $?)" \
	"a config file with an unknown key: exit 2, naming file and line"
chmod 644 "$HOME/.config/lattice/config"
bare nodes list
ok "$(printf '%s' "$ERR" | grep -q 'holds a token and is readable by others'; echo $?)" "a token in a world-readable file: a warning"
rm -f "$HOME/.config/lattice/config"
bare --token 'two words' --server "$API" nodes list
is "$RC" 2 "a token with a space: exit 2"
bare --server https://127.0.0.1:1 nodes list
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q "https is not supported"; echo $?)" "an https:// server: exit 2, saying why"

# ---- exit code 5: nobody there; a list whose first replicas are dead ------------------------------

lcs "$DEAD" nodes list
ok "$([ "$RC" = 5 ] && [ -z "$OUT" ] && printf '%s' "$ERR" | grep -q "no replica could take"; echo $?)" \
	"a closed port: exit 5, nothing on stdout, the reason on stderr"
lcs "$DEAD" nodes create nx --region r
is "$RC" 5 "a write to a closed port: exit 5 (nothing was sent)"
lcs "$DEAD,$API,$DEAD2" nodes create via-list --region eu-west --cpu-capacity 1000 --memory-mb 1024
ok "$([ "$RC" = 0 ] && grep -c "POST $DEAD/v1/nodes" "$T_DIR/err.raw" >/dev/null && grep -q "POST $API/v1/nodes" "$T_DIR/err.raw"; echo $?)" \
	"three servers, the first dead: the write goes to the next one (exit $RC)"
LATTICE_SERVER="$DEAD $DEAD2,$API" bare nodes get via-list -o name
is "$RC $OUT" "0 node/via-list" "LATTICE_SERVER with three, the live one last: the read is answered"

# ---- cluster, health, metrics, chaos ------------------------------------------------------------

lc cluster status
ok "$([ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "^Leader: .* API $API\$"; echo $?)" "cluster status names the leader and its API URL"
lc cluster
is "$RC $(printf '%s' "$OUT" | grep -c '^Term:')" "0 1" "'cluster' alone is 'cluster status'"
lc cluster status -o json
is "$(jqo .leader.api_url) $(jqo .self.state)" "$API leader" "cluster status -o json: the server's JSON"
lc cluster members
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s' "$OUT" | grep -qE "^1 +127\.0\.0\.1:$RAFT_PORT +voter +yes +$API "; echo $?)" \
	"cluster members: an aligned table with the voter, leader, API URL"
lc cluster members -o json
is "$(jqo '.items | length') $(jqo '.items[0].role')" "1 voter" "cluster members -o json: {items: [...]}"
lc cluster read-index
ok "$([ "$RC" = 0 ] && [[ $OUT =~ ^[0-9]+$ ]] && [ "$OUT" -ge 1 ]; echo $?)" "cluster read-index: the commit index ($OUT)"
lc cluster transfer
ok "$([ "$RC" = 4 ] && printf '%s' "$ERR" | grep -q '(conflict)$'; echo $?)" "cluster transfer with no other voter: exit 4 (conflict)"
lc cluster remove-member 1
is "$RC" 4 "cluster remove-member of the only voter: exit 4"
lc cluster add-member 1 --raft-address "127.0.0.1:$RAFT_PORT" --api-url "$API"
ok "$([ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q 'member/1 was a member already'; echo $?)" \
	"cluster add-member of a member: exit 0, its URL recorded"
lc cluster add-member one --raft-address x --api-url y
is "$RC" 2 "cluster add-member with a bad id: exit 2"
lc health
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s' "$OUT" | grep -qE "^$API +yes +yes +yes "; echo $?)" "health: live, ready, leader"
lcs "$DEAD,$API" health
ok "$([ "$RC" = 5 ] && printf '%s' "$OUT" | grep -qE "^$DEAD +no +no "; echo $?)" "health with a dead server in the list: exit 5, it shows not live"
lc metrics
ok "$([ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -qE '^lattice_raft_applied_index [0-9]+$'; echo $?)" "metrics: the Prometheus text"
lc summary
if grep -q '^  /v1/summary:' "$top_srcdir/api/openapi.yaml"; then
	ok "$([ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -qE '^Nodes: +1 \(1 healthy, 0 degraded, 0 unhealthy; ' &&
		aligned "$(printf '%s\n' "$OUT" | sed -n '/^REGION /,$p')" &&
		printf '%s\n' "$OUT" | grep -qE '^eu-west +1 +1 +0 +0 +0 +0 +0m/1000m +0Mi/1Gi +0$'; echo $?)" \
		"summary: nodes by status, and a table of the regions"
else
	ok "$([ "$RC" = 1 ] && printf '%s' "$ERR" | grep -q 'does not serve GET /v1/summary'; echo $?)" \
		"summary: this latticed does not serve GET /v1/summary, and says so (exit 1)"
fi
lc chaos report
ok "$([ "$RC" = 3 ] && printf '%s' "$ERR" | grep -q '(not_found)'; echo $?)" "chaos report without --chaos-reports: exit 3"
"$CTL" --server "$API" -v chaos timeline >"$T_DIR/svg" 2>"$T_DIR/err.raw"
rc=$?
grep -E '^> [A-Z]+ http' "$T_DIR/err.raw" >>"$T_DIR/trace"
is "$rc" 3 "chaos timeline without --chaos-reports: exit 3"

# ---- nodes ------------------------------------------------------------------------------------

lc nodes create edge-1 --region eu-west --cpu-capacity 4000 --memory-mb 8192 --label gpu=false --label zone=a
is "$RC $OUT" "0 node/edge-1 created" "nodes create with flags"
req GET /v1/nodes/edge-1
is "$(jqr '[.region, .cpu_capacity, .memory_mb, .labels.gpu, .labels.zone] | map(tostring) | join(" ")')" \
	"eu-west 4000 8192 false a" "... the node has every field the flags gave"
printf '{"id": "edge-2", "region": "us-east", "cpu_capacity": 2000, "memory_mb": 4096, "cpu_used": 200}\n' >"$T_DIR/edge-2.json"
lc nodes create -f "$T_DIR/edge-2.json"
is "$RC $OUT" "0 node/edge-2 created" "nodes create -f FILE"
printf '{"id": "edge-3", "region": "eu-west", "cpu_capacity": 1000, "memory_mb": 1024}' |
	"$CTL" --server "$API" nodes create -f - --region ap-south >"$T_DIR/out" 2>&1
rc=$?
req GET /v1/nodes/edge-3
is "$rc $(jqr .region) $(jqr .cpu_capacity)" "0 ap-south 1000" "nodes create -f - (standard input); a flag overrides the file's field"
lc nodes create edge-1 --region eu-west
ok "$([ "$RC" = 4 ] && printf '%s' "$ERR" | grep -q "^error: .* (already_exists)$"; echo $?)" \
	"an id that exists: exit 4, 'error: <message> (already_exists)'"
printf '{"id": "x1", "region": "r", "colour": "blue"}' >"$T_DIR/unknown.json"
lc nodes create -f "$T_DIR/unknown.json"
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q '(unknown_field)'; echo $?)" "a file with an unknown field: the server's 400, exit 2"
printf '{"id": "x1",\n "region": }' >"$T_DIR/broken.json"
lc nodes create -f "$T_DIR/broken.json"
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q 'broken.json:2:'; echo $?)" "a file that is not JSON: exit 2, naming file and line"
printf '[1, 2]' >"$T_DIR/array.json"
lc nodes create -f "$T_DIR/array.json"
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q 'want a JSON object'; echo $?)" "a file holding an array: exit 2"
lc nodes create -f "$T_DIR/nonexistent.json"
is "$RC" 2 "a file that does not exist: exit 2"
lc nodes create bad --region r --cpu-capacity lots
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q "cpu-capacity: 'lots' is not an integer"; echo $?)" "--cpu-capacity lots: exit 2"
lc nodes create bad --region r --label novalue
is "$RC" 2 "--label without '=': exit 2"
for i in 1 2 3 4 5; do
	"$CTL" --server "$API" nodes create "pg-$i" --region pg --cpu-capacity 1000 --memory-mb 1024 >/dev/null || bail "create pg-$i"
done

lc nodes list
NODES_TABLE=$OUT
ok "$([ "$RC" = 0 ] && aligned "$OUT" && [ "$(rows "$OUT")" = 9 ]; echo $?)" "nodes list: an aligned table of the 9 nodes"
is "$(printf '%s\n' "$OUT" | head -1 | tr -s ' ')" "ID REGION STATUS CPU MEMORY ACTORS POLICY AGE" "... its columns"
ok "$(printf '%s\n' "$OUT" | grep -qE '^edge-2 +us-east +healthy +200m/2000m +0Mi/4Gi +0 +0 +[0-9]+s$'; echo $?)" \
	"... a row: used/capacity in millicores and Mi/Gi, the age"
lc nodes list -o json
ok "$([ "$RC" = 0 ] && printf '%s' "$OUT" | jq -e '(.items | length) == 9 and .next == null' >/dev/null; echo $?)" \
	"nodes list -o json: strict JSON, {items: [9], next: null}"
lc nodes list -o wide
ok "$(aligned "$OUT" && printf '%s\n' "$OUT" | head -1 | grep -q ' LABELS ' && printf '%s\n' "$OUT" | grep -q 'gpu=false,zone=a'; echo $?)" \
	"-o wide: more columns (LABELS...), still aligned"
lc nodes list -o name
is "$(printf '%s\n' "$OUT" | head -2 | tr '\n' ' ')" "node/edge-1 node/edge-2 " "-o name: kind/id lines"
lc nodes list --no-headers
ok "$([ "$(printf '%s\n' "$OUT" | grep -c .)" = 9 ] && ! printf '%s' "$OUT" | grep -q '^ID '; echo $?)" "--no-headers: the rows alone"
lc nodes --region eu-west -o name
is "$(printf '%s' "$OUT" | tr '\n' ' ')" "node/edge-1 node/via-list" "nodes --region eu-west (the default list, filtered)"
lc nodes list --label zone=a -o name
is "$OUT" "node/edge-1" "--label zone=a"
lc nodes list --status unhealthy
is "$RC|$OUT|$ERR" "0||No nodes found." "an empty list: exit 0, 'No nodes found.' on stderr"
: >"$T_DIR/trace.pages"
lc nodes list --chunk-size 2 -o name
grep -c "GET $API/v1/nodes?limit=2" "$T_DIR/err.raw" >"$T_DIR/pages"
is "$(printf '%s\n' "$OUT" | grep -c .) $(cat "$T_DIR/pages") $(grep -c 'after=pg-1' "$T_DIR/err.raw")" "9 5 1" \
	"pages of 2 are followed to the end: 9 nodes in 5 requests, each after the last id"
lc nodes list --limit 3 -o name
is "$(printf '%s' "$OUT" | tr '\n' ' ')|$ERR" "node/edge-1 node/edge-2 node/edge-3|(more: --after edge-3)" \
	"--limit 3: three, and how to go on"
lc nodes list --limit 3 --after edge-3 -o json
is "$(jqo '[.items[].id] | join(" ")') $(jqo .next)" "pg-1 pg-2 pg-3 pg-3" "--after continues; -o json keeps next"

lc nodes get edge-1
ok "$([ "$RC" = 0 ] && aligned "$OUT" && [ "$(rows "$OUT")" = 1 ]; echo $?)" "nodes get ID: one aligned row"
lc nodes get edge-1 -o json
is "$(jqo .id) $(jqo .labels.zone)" "edge-1 a" "nodes get -o json: the node"
lc nodes get edge-9
ok "$([ "$RC" = 3 ] && printf '%s' "$ERR" | grep -q "^error: node 'edge-9' not found (not_found)$"; echo $?)" \
	"a node that does not exist: exit 3, 'error: <message> (not_found)'"
lc nodes get edge-1 edge-9 edge-2
is "$RC $(rows "$OUT")" "3 2" "several ids, one missing: the others shown, exit 3"
lc nodes cordon edge-3
req GET /v1/nodes/edge-3
is "$RC $OUT $(jqr .cordoned)" "0 node/edge-3 cordoned true" "nodes cordon"
lc nodes uncordon edge-3
req GET /v1/nodes/edge-3
is "$RC $OUT $(jqr .cordoned)" "0 node/edge-3 uncordoned false" "nodes uncordon"
lc nodes cordon edge-9
is "$RC" 3 "cordon of a node that does not exist: exit 3"
lc nodes get 'bad%id'
ok "$([ "$RC" = 2 ] && printf '%s' "$ERR" | grep -q '(invalid_id)'; echo $?)" "a malformed id is sent encoded and refused: exit 2"

# ---- actors and plan ---------------------------------------------------------------------------------

lc actors create echo --image ghcr.io/acme/echo:1.2.0 --cpu 500 --memory 128 --replicas 2 --region eu-west
req GET /v1/actors/echo
is "$RC $OUT $(jqr '.placements | length') $(jqr .module)" "0 actor/echo created 2 ghcr.io/acme/echo:1.2.0" \
	"actors create with flags (--image is --module): placed twice"
printf '{"module": "ghcr.io/acme/kv:1", "cpu_required": 100, "memory_required_mb": 64, "constraints": {"zone": "a"}}' \
	>"$T_DIR/kvapp.json"
lc actors create kvapp -f "$T_DIR/kvapp.json" -o json
is "$RC $(jqo .id) $(jqo '.placements[0].node_id')" "0 kvapp edge-1" "actors create ID -f FILE -o json: the actor, placed by its constraint"
lc actors create huge --module m --cpu 90000000 --memory 1
ok "$([ "$RC" = 4 ] && printf '%s' "$ERR" | grep -q 'actor scale failed: insufficient resources (insufficient_resources)'; echo $?)" \
	"no room: exit 4, 'actor scale failed: insufficient resources'"
lc actors list
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s\n' "$OUT" | grep -qE '^echo +ghcr.io/acme/echo:1.2.0 +0/2 +500m +128Mi +'; echo $?)" \
	"actors list: aligned, READY running/wanted, CPU, MEMORY"
lc actors list -o wide
ok "$(aligned "$OUT" && printf '%s\n' "$OUT" | head -1 | grep -q ' PLACEMENTS ' && printf '%s' "$OUT" | grep -q '0=edge-'; echo $?)" \
	"actors list -o wide: the placements"
lc actors list --node edge-1 -o name
ok "$(printf '%s\n' "$OUT" | grep -qx actor/kvapp; echo $?)" "actors --node edge-1: the actors with a replica there"
lc actors get echo -o json
is "$(jqo .replicas) $(jqo '.placements | length')" "2 2" "actors get -o json"
lc actors scale echo --replicas 3
req GET /v1/actors/echo
is "$RC $OUT $(jqr .replicas)" "0 actor/echo scaled to 3 replicas 3" "actors scale --replicas 3"
lc actors scale echo
is "$RC" 2 "actors scale without --replicas: exit 2"
lc actors patch echo --cpu 400
req GET /v1/actors/echo
is "$RC $(jqr .cpu_required)" "0 400" "actors patch --cpu"
lc actors patch echo
is "$RC" 2 "actors patch with nothing to change: exit 2"
lc actors migrate echo --to edge-2
ok "$([ "$RC" = 4 ] && printf '%s' "$ERR" | grep -q '(conflict)'; echo $?)" \
	"actors migrate of a replica no agent runs yet: the server's 409, exit 4"
lc actors migrate nope
is "$RC" 3 "actors migrate of an actor that does not exist: exit 3"

lc plan --module m --cpu 100 --memory 64 --region us-east
ok "$([ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -q '^Placements: edge-2 (score ' && printf '%s\n' "$OUT" | grep -q '^Summary: '; echo $?)" \
	"plan: the choice (edge-2, the preferred region) and the summary"
ptable=$(printf '%s\n' "$OUT" | sed -n '/^NODE /,$p')
ok "$(aligned "$ptable" && [ "$(rows "$ptable")" = 9 ] && printf '%s\n' "$ptable" | grep -qE '^edge-2 +us-east +yes +[0-9]+ +yes +chosen$'; echo $?)" \
	"... and every node's reason: an aligned table of the 9 nodes"
lc plan --module m --cpu 90000000 --memory 64
ok "$([ "$RC" = 4 ] && printf '%s\n' "$OUT" | grep -q '^Does not fit: actor scale failed: insufficient resources' &&
	printf '%s\n' "$OUT" | grep -qE '^edge-1 +eu-west +no +.*insufficient cpu'; echo $?)" \
	"plan that does not fit: exit 4, each node's reason (insufficient cpu)"
lc plan -f "$T_DIR/kvapp.json" -o json
is "$(jqo '.placements | join(",")') $(jqo '.nodes | length') $(jqo .next)" "edge-1 9 null" "plan -f FILE -o json: the plan with every node"
lc plan -f "$T_DIR/kvapp.json" --limit 4 -o json
is "$(jqo '.nodes | length')" "4" "plan --limit 4: four nodes' reasons"

lc nodes failover-plan edge-1
ok "$([ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -q '^If node edge-1 (healthy) died now:'; echo $?)" "nodes failover-plan"
lc nodes drain edge-2
ok "$([ "$RC" = 0 ] && printf '%s\n' "$OUT" | grep -qE '^node/edge-2 drained: [0-9]+ moved, [0-9]+ unmoved$'; echo $?)" "nodes drain"
lc nodes delete edge-1
ok "$([ "$RC" = 4 ] && printf '%s' "$ERR" | grep -q '(conflict)'; echo $?)" "nodes delete of a node with placements: exit 4"
lc nodes delete pg-5
req GET /v1/nodes/pg-5
is "$RC $OUT $STATUS" "0 node/pg-5 deleted 404" "nodes delete"

# ---- providers, links, policies ----------------------------------------------------------------------

lc providers create kv-redis --contract wasmcloud:keyvalue --image ghcr.io/acme/kv-redis:0.9 --node edge-1
is "$RC $OUT" "0 provider/kv-redis created" "providers create"
lc providers list
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s\n' "$OUT" | grep -qE '^kv-redis +wasmcloud:keyvalue +ghcr.io/acme/kv-redis:0.9 +edge-1 +'; echo $?)" \
	"providers list"
lc providers list --contract wasmcloud:keyvalue -o json
is "$(jqo '[.items[].id] | join(",")')" "kv-redis" "providers --contract (a ':' in a query value)"
lc providers get kv-redis -o name
is "$OUT" "provider/kv-redis" "providers get"
lc links create --actor kvapp --provider kv-redis --contract wasmcloud:keyvalue --value bucket=sessions -o name
LINK=${OUT#link/}
req GET "/v1/links/$LINK"
is "$RC $(jqr .values.bucket) $(jqr .actor_id)" "0 sessions kvapp" "links create (the server names it: $LINK)"
lc links list --actor kvapp -o wide
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s\n' "$OUT" | grep -qE "^$LINK +kvapp +kv-redis +wasmcloud:keyvalue +default +.* bucket=sessions +5s +3 every 1s$"; echo $?)" \
	"links list --actor -o wide: values, timeout, retries"
lc links get "$LINK" -o json
is "$(jqo .provider_id)" "kv-redis" "links get"
lc providers delete kv-redis
is "$RC" 4 "providers delete of a provider a link uses: exit 4"
lc policies create deny-blob --deny wasmcloud:blobstore
is "$RC $OUT" "0 policy/deny-blob created" "policies create"
lc providers create blob --contract wasmcloud:blobstore --image img:1
lc links create --actor kvapp --provider blob --contract wasmcloud:blobstore
ok "$([ "$RC" = 1 ] && printf '%s' "$ERR" | grep -q 'capability denied: wasmcloud:blobstore (capability_denied)'; echo $?)" \
	"a link a policy denies: the server's 403, exit 1, 'capability denied: ...'"
lc links create --actor kvapp --provider kv-redis --contract wasmcloud:httpserver
is "$RC" 1 "a link whose provider serves another contract: the server's 422, exit 1"
lc policies create eu-baseline --allow wasmcloud:keyvalue --max-memory 512 --region eu-west
is "$RC" 0 "policies create with a selector"
lc policies update eu-baseline --allow wasmcloud:keyvalue --allow wasmcloud:httpserver --selector-label zone=a
is "$RC $OUT" "0 policy/eu-baseline updated to version 2" "policies update: a new version"
req GET /v1/policies/eu-baseline
is "$(jqr '.allowed_contracts | join(",")') $(jqr '.selector.labels.zone') $(jqr .max_actor_memory_mb)" \
	"wasmcloud:httpserver,wasmcloud:keyvalue a 0" "... the body replaced whole (the memory cap not given: 0)"
lc policies versions eu-baseline
ok "$([ "$RC" = 0 ] && aligned "$OUT" && [ "$(rows "$OUT")" = 2 ] && printf '%s\n' "$OUT" | grep -qE '^1 +wasmcloud:keyvalue +<none> +512Mi +region=eu-west +'; echo $?)" \
	"policies versions: both, oldest first"
lc policies list
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s\n' "$OUT" | grep -qE '^eu-baseline +2 +'; echo $?)" "policies list"
lc policies get eu-baseline -o json
is "$(jqo .version)" "2" "policies get -o json"
lc policies violations eu-baseline
if awk '/^  \/v1\/policies\/\{id\}\/violations:/ { f = 1 } END { exit !f }' "$top_srcdir/api/openapi.yaml"; then
	is "$RC" 0 "policies violations (the server serves it)"
else
	ok "$([ "$RC" = 1 ] && printf '%s' "$ERR" | grep -q 'does not serve GET /v1/policies/{id}/violations'; echo $?)" \
		"policies violations: this latticed does not serve it yet, and says so (exit 1)"
fi
lc policies violations nope
is "$RC" 3 "policies violations of a policy that does not exist: exit 3"

# ---- commands, failovers --------------------------------------------------------------------------------

lc commands list
CMD=$(printf '%s\n' "$OUT" | awk 'NR == 2 { print $1 }')
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s\n' "$OUT" | grep -qE ' actor_start +edge-[0-9] +echo#0 +pending +0 '; echo $?)" \
	"commands list: the actor_start commands, pending (no agent)"
lc commands list --node edge-1 --status pending -o json
ok "$(printf '%s' "$OUT" | jq -e '(.items | length) > 0 and all(.items[]; .target_node == "edge-1" and .status == "pending")' >/dev/null; echo $?)" \
	"commands --node --status filter"
lc commands get "$CMD" -o json
is "$RC $(jqo .command_id)" "0 $CMD" "commands get"
lc failovers list
is "$RC|$ERR" "0|No failovers found." "failovers list: none"
lc failovers list --node edge-1 --status failed -o json
is "$(jqo '.items | length')" "0" "failovers list -o json: {items: []}"
lc failovers get f1
is "$RC" 3 "failovers get of one that does not exist: exit 3"
lc actors delete echo nope
req GET /v1/actors/echo
is "$RC $STATUS $(printf '%s' "$OUT" | head -1)" "3 404 actor/echo deleted" \
	"actors delete of two, one missing: the other deleted, exit 3"
lc links delete "$LINK"
lc providers delete kv-redis blob
is "$RC" 0 "links delete, then providers delete"

# ---- events ------------------------------------------------------------------------------------------

lc events
ok "$([ "$RC" = 0 ] && aligned "$OUT" && printf '%s\n' "$OUT" | grep -qE '^1 +20[0-9-]+T[0-9:.]+Z +node.registered +node/via-list +api$'; echo $?)" \
	"events: an aligned table from seq 1"
NEV=$(rows "$OUT")
lc events --since 3 --limit 2 -o json
is "$(jqo '[.items[].seq] | join(",")') $(jqo .next)" "4,5 5" "events --since 3 --limit 2 -o json"
lc events --chunk-size 7 -o name
is "$(printf '%s\n' "$OUT" | grep -c .) $(grep -c 'GET .*/v1/events?since=' "$T_DIR/err.raw")" "$NEV $(((NEV + 6) / 7 + 1))" \
	"events in pages of 7: every event, following next to the end"

# --watch: an event made after it started is printed; table, then JSON lines.
"$CTL" --server "$API" -v events --watch --wait 5 >"$T_DIR/w1.out" 2>"$T_DIR/w1.err" &
W1=$!
for _ in $(seq 1 100); do grep -q 'wait=5' "$T_DIR/w1.err" && break; sleep 0.1; done
lc nodes create watched-1 --region w
for _ in $(seq 1 100); do grep -q 'watched-1' "$T_DIR/w1.out" && break; sleep 0.1; done
kill "$W1" 2>/dev/null
wait "$W1" 2>/dev/null
ok "$(head -1 "$T_DIR/w1.out" | grep -q '^SEQ  *TIME  *KIND  *OBJECT  *WHO$' &&
	grep -qE '^[0-9]+ +20.*Z +node.registered +node/watched-1 +api$' "$T_DIR/w1.out" &&
	[ "$(grep -c node.registered "$T_DIR/w1.out")" = 1 ]; echo $?)" \
	"events --watch: prints the event made after it started, not the older ones"
grep -E '^> [A-Z]+ http' "$T_DIR/w1.err" >>"$T_DIR/trace"
timeout 60 "$CTL" --server "$API" -v events -w --limit 1 -o json >"$T_DIR/w2.out" 2>"$T_DIR/w2.err" &
W2=$!
for _ in $(seq 1 100); do grep -q 'wait=30' "$T_DIR/w2.err" && break; sleep 0.1; done
lc nodes cordon watched-1
wait "$W2"
rc=$?
is "$rc $(jq -r '.kind + " " + .object_id' "$T_DIR/w2.out")" "0 node.cordoned watched-1" \
	"events -w --limit 1 -o json: the next event as a JSON line, then exit 0"

# ---- exit code 6 (and 5) with a replica that does not answer -----------------------------------------

kill -STOP "$LATTICED_PID"
lc --timeout 1s actors scale kvapp --replicas 2
rc_patch=$RC err_patch=$ERR
lc --timeout 1s nodes cordon pg-4 --idempotency-key ctl-test-key-1
rc_post=$RC err_post=$ERR
lc --timeout 1s nodes list
rc_get=$RC
kill -CONT "$LATTICED_PID"
ok "$([ "$rc_patch" = 6 ] && printf '%s' "$err_patch" | grep -q 'may or may not have been applied'; echo $?)" \
	"a PATCH sent to a replica that never answers: exit 6, 'may or may not have been applied'"
ok "$([ "$rc_post" = 6 ] && printf '%s' "$err_post" | grep -q 'retry with --idempotency-key ctl-test-key-1'; echo $?)" \
	"a POST no replica answered: exit 6, naming the key to retry with"
is "$rc_get" 5 "a read no replica answered: exit 5 (nothing was done)"
lc nodes cordon pg-4 --idempotency-key ctl-test-key-1
req GET /v1/nodes/pg-4
cordoned=$(jqr .cordoned)
req GET '/v1/events?since=0&limit=1000'
is "$RC $cordoned $(jqr '[.items[] | select(.kind == "node.cordoned" and .object_id == "pg-4")] | length')" "0 true 1" \
	"the POST sent again with the same key is answered, and applied once (one node.cordoned event)"

# ---- every REST operation of api/openapi.yaml was sent by some command --------------------------------
spec_routes() {
	awk '/^paths:[ \t]*$/ { p = 1; next } /^[^ \t#]/ { p = 0 } !p { next }
		/^  [^ #]/ { r = $1; sub(/:$/, "", r); gsub(/["\047]/, "", r); next }
		/^    (get|put|post|delete|patch):/ { m = $1; sub(/:$/, "", m); print toupper(m), r }' "$top_srcdir/api/openapi.yaml"
}
sed -E 's|^> ([A-Z]+) http://[^/]+([^?]*).*|\1 \2|' "$T_DIR/trace" | sort -u >"$T_DIR/sent"
missing=
n=0
while read -r m r; do
	case $r in /ui | /ui/*) continue ;; esac # the dashboard's page and files: a browser's, not an API operation
	n=$((n + 1))
	re="^$m $(printf '%s' "$r" | sed 's/{[^}]*}/[^\/]+/g')\$"
	grep -qE "$re" "$T_DIR/sent" || missing+=" [$m $r]"
done < <(spec_routes)
ok "$([ "$n" -ge 30 ] && [ -z "$missing" ]; echo $?)" \
	"latticectl sent every operation of api/openapi.yaml ($n)${missing:+; never sent:$missing}"

# ---- completion ------------------------------------------------------------------------------------------

"$CTL" completion bash >"$T_DIR/c.bash"
bash -n "$T_DIR/c.bash"
ok $? "completion bash: valid bash (bash -n)"
"$CTL" completion zsh >"$T_DIR/c.zsh"
ok "$(grep -q bashcompinit "$T_DIR/c.zsh" && bash -n "$T_DIR/c.zsh"; echo $?)" "completion zsh: through bashcompinit"
bare completion fish
is "$RC" 2 "completion fish: exit 2"
# complete WORDS...: COMPREPLY for the last word, as bash would ask.
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _latticectl; echo "${COMPREPLY[*]}"' \
		_ "$T_DIR/c.bash" "$@"
}
is "$(complete_words "$CTL" no)" "nodes" "completes a command (no -> nodes)"
is "$(complete_words "$CTL" nodes "")" "list get create cordon uncordon drain delete failover-plan" "completes subcommands"
ok "$(complete_words "$CTL" nodes list --re | grep -qx -- '--region'; echo $?)" "completes a command's flags"
is "$(complete_words "$CTL" -o "")" "table wide json name" "completes -o's values"
is "$(complete_words "$CTL" commands list --status a)" "acked" "completes a flag's known values"
is "$(complete_words "$CTL" --server "$API" nodes cordon edge-)" "edge-1 edge-2 edge-3" \
	"completes node ids from the lattice, with the line's --server"
is "$(complete_words "$CTL" --server "$API" actors migrate kvapp --to watch)" "watched-1" "completes --to NODE"

# ---- 410 events_compacted: a replica whose database was rebuilt from its snapshot ------------------------
SAVED_API=$API
lattice_start compact --snapshot-threshold 16 --snapshot-trailing 0
for i in $(seq 1 30); do
	"$CTL" --server "$API" nodes create "c$i" --region c >/dev/null || bail "create c$i"
done
lattice_stop
pg_psql postgres "DROP DATABASE compact" >/dev/null && pg_psql postgres "CREATE DATABASE compact" >/dev/null
lattice_start compact --snapshot-threshold 16 --snapshot-trailing 0
for _ in $(seq 1 100); do [ "$(pg_psql compact 'SELECT count(*) FROM nodes')" = 30 ] && break; sleep 0.1; done
first=$(pg_psql compact 'SELECT min(seq) FROM events')
lc events -o json
ok "$([ "$RC" = 0 ] && [ "$first" -gt 1 ] && [ "$(jqo '.items[0].seq')" = "$first" ] && [ "$(jqo '.items[-1].seq')" = 30 ] &&
	printf '%s' "$ERR" | grep -q "does not hold events 1 to $((first - 1)) .*continuing from $first"; echo $?)" \
	"410 events_compacted: said on stderr, the listing goes on from the first event held ($first)"
lattice_stop
API=$SAVED_API

export HOME=$REAL_HOME
done_testing
