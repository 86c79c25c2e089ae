#!/usr/bin/env bash
# badinput.sh — bad input of every kind against a real latticed + PostgreSQL.
# Each bad request must get the fitting 4xx with {"error": {"code", "message"}},
# and change nothing: every group compares the whole visible state (every list,
# the fixtures, the event log) before and after. At the end the replica must still
# be up and healthy — a crash on input is the worst bug. Prints TAP.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/integration/lib.sh"

plan 350

lib_init
lattice_start bad

# ---- helpers ------------------------------------------------------------------------------

# creq METHOD PATH [CURL ARGS...]: like req, with extra curl arguments (files, headers).
creq() {
	local method=$1 path=$2
	shift 2
	HDRS="$T_DIR/last.headers"
	rm -f "$T_DIR/last.body" "$HDRS"
	STATUS=$(curl -s -S -X "$method" -D "$HDRS" -o "$T_DIR/last.body" -w '%{http_code}' --max-time 60 \
		"$@" "$API$path" 2>"$T_DIR/last.curlerr") || STATUS=000
	BODY=$(cat "$T_DIR/last.body" 2>/dev/null)
}

# The last response as "STATUS code <type of message>"; a valid error is
# "4xx some_code string", and anything that is not JSON shows up as "4xx  ".
shape() { printf '%s %s %s' "$STATUS" "$(jqr '.error.code')" "$(jqr '.error.message | type')"; }

# bad NAME STATUS CODE METHOD PATH [BODY [CTYPE]]
bad() {
	local name=$1 want="$2 $3 string"
	shift 3
	req "$@"
	is "$(shape)" "$want" "$name"
}

# badc NAME STATUS CODE METHOD PATH [CURL ARGS...]
badc() {
	local name=$1 want="$2 $3 string"
	shift 3
	creq "$@"
	is "$(shape)" "$want" "$name"
}

# badf NAME STATUS CODE METHOD PATH FILE: the body is the file's bytes.
badf() {
	local name=$1 want="$2 $3 string" method=$4 path=$5 file=$6
	creq "$method" "$path" -H 'Content-Type: application/json' --data-binary "@$file"
	is "$(shape)" "$want" "$name"
}

# Everything a client can see, in one line. Each read's status is part of it, so
# a failed read (which would show no items) can never match a good one.
snap() {
	local out="" p
	for p in nodes actors providers links policies; do
		req GET "/v1/$p?limit=1000"
		out="$out $p=$STATUS:$(jqr '[.items[] | (.id // .policy_id)] | join(",")')"
	done
	req GET /v1/nodes/n1
	out="$out n1=$STATUS:$(jqr '[.cpu_used, .memory_used_mb, .actor_count, .cordoned, .draining, .generation] | map(tostring) | join(",")')"
	req GET /v1/actors/a1
	out="$out a1=$STATUS:$(jqr '[.replicas, .cpu_required, .memory_required_mb, .generation, (.placements | map(.node_id) | join("+"))] | map(tostring) | join(",")')"
	req GET /v1/policies/pol1
	out="$out pol1=$STATUS:v$(jqr .version)"
	req GET '/v1/events?since=0&limit=1000'
	out="$out ev=$STATUS:$(jqr .next)"
	printf '%s' "$out"
}
GROUP= SNAP=
group() {
	GROUP=$1
	SNAP=$(snap)
	# A snapshot with a failed read proves nothing: make endgroup fail.
	printf '%s' "$SNAP" | grep -oE '=[0-9]{3}:' | grep -qv '=200:' && SNAP="a read failed before the group:$SNAP"
	diag "--- $GROUP"
}
endgroup() { is "$(snap)" "$SNAP" "$GROUP: nothing changed"; }

rep() { head -c "$2" /dev/zero | tr '\0' "$1"; } # rep CHAR N

# ---- fixtures ------------------------------------------------------------------------------

req POST /v1/nodes '{"id":"n1","region":"r1","labels":{"tier":"gold"},"cpu_capacity":4000,"memory_mb":4096}'
is "$STATUS" 201 "fixture: node n1"
req POST /v1/nodes '{"id":"victim","region":"r9","cpu_capacity":1000,"memory_mb":1000}'
is "$STATUS" 201 "fixture: empty node victim"
req POST /v1/actors '{"id":"a1","module":"oci://x/a1:1","cpu_required":100,"memory_required_mb":100,"preferred_region":"r1"}'
is "$STATUS $(jqr '.placements[0].node_id')" "201 n1" "fixture: actor a1 on n1"
req POST /v1/providers '{"id":"p1","contract_id":"wasmcloud:keyvalue","image":"oci://x/p1:1","nodes":["n1"]}'
is "$STATUS" 201 "fixture: provider p1"
req POST /v1/links '{"id":"l1","actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue"}'
is "$STATUS" 201 "fixture: link l1"
req POST /v1/policies '{"policy_id":"pol1","denied_contracts":["wasmcloud:blobstore"],"selector":{"regions":["r1"]}}'
is "$STATUS" 201 "fixture: policy pol1"

# Valid bodies the bad rows are variations of (the controls at the end prove them valid).
NODE='{"id":"nx","region":"r1","cpu_capacity":1000,"memory_mb":1000}'
ACTOR='{"id":"ax","module":"oci://x/a:1","cpu_required":10,"memory_required_mb":10}'

# ---- malformed JSON ---------------------------------------------------------------------------

group "malformed JSON"
bad "truncated object" 400 invalid_json POST /v1/nodes '{"id":'
is "$(jqr .error.message | cut -c1-22)" "invalid JSON at line 1" "... the message says where"
bad "lone brace" 400 invalid_json POST /v1/nodes '{'
bad "trailing comma" 400 invalid_json POST /v1/actors '{"id":"ax","module":"oci://x/a:1","cpu_required":10,"memory_required_mb":10,}'
bad "single quotes" 400 invalid_json POST /v1/providers "{'id':'px','contract_id':'wasmcloud:keyvalue','image':'i'}"
bad "missing colon" 400 invalid_json POST /v1/links '{"id" "lx"}'
bad "unclosed object" 400 invalid_json POST /v1/policies '{"policy_id":"polx"'
bad "broken array (PUT policy)" 400 invalid_json PUT /v1/policies/pol1 '{"denied_contracts":[}'
bad "unquoted key (PATCH actor)" 400 invalid_json PATCH /v1/actors/a1 '{replicas:2}'
bad "bare word (plan)" 400 invalid_json POST /v1/schedule/plan 'nul'
bad "leading zero number" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":01}'
bad "NaN" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":NaN}'
bad "Infinity" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":Infinity}'
bad "hex number" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":0x10}'
bad "garbage on a bodyless route" 400 invalid_json POST /v1/nodes/n1/cordon 'junk'
endgroup

group "not an object"
bad "array" 400 invalid_json POST /v1/nodes '[]'
is "$(jqr .error.message)" "request body must be a JSON object" "... with a message saying so"
bad "array of the object" 400 invalid_json POST /v1/nodes "[$NODE]"
bad "string" 400 invalid_json POST /v1/nodes '"nx"'
bad "number" 400 invalid_json POST /v1/nodes '42'
bad "null" 400 invalid_json POST /v1/nodes 'null'
bad "true" 400 invalid_json POST /v1/actors 'true'
bad "array (plan)" 400 invalid_json POST /v1/schedule/plan '[]'
bad "array (PATCH)" 400 invalid_json PATCH /v1/actors/a1 '[{"replicas":2}]'
bad "array (PUT policy)" 400 invalid_json PUT /v1/policies/pol1 '[]'
bad "array (cordon)" 400 invalid_json POST /v1/nodes/n1/cordon '[]'
endgroup

group "duplicate keys"
bad "duplicate id" 400 invalid_json POST /v1/nodes '{"id":"nx","id":"ny","region":"r1"}'
bad "duplicate label" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","labels":{"a":"1","a":"2"}}'
bad "duplicate cpu_required" 400 invalid_json POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"cpu_required":1,"memory_required_mb":10}'
bad "duplicate in selector" 400 invalid_json POST /v1/policies '{"policy_id":"polx","selector":{"regions":["r1"],"regions":["r2"]}}'
bad "duplicate in link values" 400 invalid_json POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","values":{"k":"1","k":"2"}}'
bad "duplicate replicas (PATCH)" 400 invalid_json PATCH /v1/actors/a1 '{"replicas":2,"replicas":3}'
endgroup

group "trailing garbage"
bad "word after the object" 400 invalid_json POST /v1/nodes "$NODE x"
bad "two objects" 400 invalid_json POST /v1/nodes "$NODE$NODE"
bad "closing bracket after" 400 invalid_json POST /v1/nodes "$NODE]"
bad "comma after" 400 invalid_json POST /v1/actors "$ACTOR,"
bad "garbage after (plan)" 400 invalid_json POST /v1/schedule/plan "$ACTOR garbage"
printf '%s\0' "$NODE" >"$T_DIR/nul-after.json"
badf "NUL byte after the object" 400 invalid_json POST /v1/nodes "$T_DIR/nul-after.json"
endgroup

# ---- types, missing and unknown fields -------------------------------------------------------------

group "wrong types"
bad "node id number" 400 invalid_field POST /v1/nodes '{"id":1,"region":"r1"}'
is "$(jqr .error.message)" "field 'id' must be a string" "... the message names the field"
bad "node region array" 400 invalid_field POST /v1/nodes '{"id":"nx","region":["r1"]}'
bad "labels array" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","labels":["a"]}'
bad "label value number" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","labels":{"k":1}}'
bad "label value null" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","labels":{"k":null}}'
bad "cpu_capacity string" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":"4000"}'
bad "cpu_capacity bool" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":true}'
bad "cpu_capacity fraction" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":1.5}'
bad "cpu_capacity null" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":null}'
bad "cpu_capacity 1.0" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":1.0}'
bad "actor module number" 400 invalid_field POST /v1/actors '{"id":"ax","module":5,"cpu_required":10,"memory_required_mb":10}'
bad "replicas string" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"replicas":"3"}'
bad "strategy number" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"strategy":1}'
bad "strategy unknown" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"strategy":"random"}'
bad "contracts string" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"contracts":"wasmcloud:keyvalue"}'
bad "contracts of numbers" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"contracts":[1]}'
bad "constraints string" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"constraints":"a=b"}'
bad "preferred_region number" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"preferred_region":7}'
bad "provider nodes string" 400 invalid_field POST /v1/providers '{"id":"px","contract_id":"wasmcloud:keyvalue","image":"i","nodes":"n1"}'
bad "provider nodes of numbers" 400 invalid_field POST /v1/providers '{"id":"px","contract_id":"wasmcloud:keyvalue","image":"i","nodes":[1]}'
bad "link values array" 400 invalid_field POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","values":[]}'
bad "link timeout_ms string" 400 invalid_field POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","timeout_ms":"5"}'
bad "policy selector array" 400 invalid_field POST /v1/policies '{"policy_id":"polx","selector":[]}'
bad "policy selector.regions string" 400 invalid_field POST /v1/policies '{"policy_id":"polx","selector":{"regions":"r1"}}'
bad "policy allowed_contracts object" 400 invalid_field POST /v1/policies '{"policy_id":"polx","allowed_contracts":{}}'
bad "policy max_actor_memory_mb string" 400 invalid_field PUT /v1/policies/pol1 '{"max_actor_memory_mb":"1"}'
bad "PATCH replicas string" 400 invalid_field PATCH /v1/actors/a1 '{"replicas":"2"}'
bad "plan cpu_required string" 400 invalid_field POST /v1/schedule/plan '{"module":"m","cpu_required":"1","memory_required_mb":1}'
endgroup

group "missing fields"
bad "node without id" 400 missing_field POST /v1/nodes '{"region":"r1"}'
is "$(jqr .error.message)" "field 'id' is required" "... the message names the field"
bad "node without region" 400 missing_field POST /v1/nodes '{"id":"nx"}'
bad "node {}" 400 missing_field POST /v1/nodes '{}'
bad "actor without module" 400 missing_field POST /v1/actors '{"id":"ax","cpu_required":10,"memory_required_mb":10}'
bad "actor without cpu_required" 400 missing_field POST /v1/actors '{"id":"ax","module":"m","memory_required_mb":10}'
bad "actor without memory_required_mb" 400 missing_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10}'
bad "provider without contract_id" 400 missing_field POST /v1/providers '{"id":"px","image":"i"}'
bad "provider without image" 400 missing_field POST /v1/providers '{"id":"px","contract_id":"wasmcloud:keyvalue"}'
bad "link without actor_id" 400 missing_field POST /v1/links '{"provider_id":"p1","contract_id":"wasmcloud:keyvalue"}'
bad "link without provider_id" 400 missing_field POST /v1/links '{"actor_id":"a1","contract_id":"wasmcloud:keyvalue"}'
bad "link without contract_id" 400 missing_field POST /v1/links '{"actor_id":"a1","provider_id":"p1"}'
bad "plan without module" 400 missing_field POST /v1/schedule/plan '{"cpu_required":1,"memory_required_mb":1}'
bad "PATCH {}" 400 missing_field PATCH /v1/actors/a1 '{}'
endgroup

group "unknown fields"
bad "node bogus" 400 unknown_field POST /v1/nodes '{"id":"nx","region":"r1","bogus":1}'
is "$(jqr .error.message)" "unknown field 'bogus'" "... the message names the field"
bad "node ID (case)" 400 unknown_field POST /v1/nodes '{"ID":"nx","region":"r1"}'
bad "node status (read-only)" 400 unknown_field POST /v1/nodes '{"id":"nx","region":"r1","status":"unhealthy"}'
bad "node cordoned (read-only)" 400 unknown_field POST /v1/nodes '{"id":"nx","region":"r1","cordoned":true}'
bad "actor replica" 400 unknown_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"replica":2}'
bad "actor placements (read-only)" 400 unknown_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"placements":[{"node_id":"n1"}]}'
bad "provider contract" 400 unknown_field POST /v1/providers '{"id":"px","contract":"wasmcloud:keyvalue","image":"i"}'
bad "link name" 400 unknown_field POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","name":"x"}'
bad "policy version" 400 unknown_field POST /v1/policies '{"policy_id":"polx","version":7}'
bad "policy selector.zones" 400 unknown_field POST /v1/policies '{"policy_id":"polx","selector":{"zones":["a"]}}'
is "$(jqr .error.message)" "unknown field 'selector.zones'" "... the message names the nested field"
bad "PUT policy version" 400 unknown_field PUT /v1/policies/pol1 '{"version":3}'
bad "PATCH name" 400 unknown_field PATCH /v1/actors/a1 '{"name":"x"}'
bad "PATCH strategy with replicas" 400 unknown_field PATCH /v1/actors/a1 '{"replicas":2,"strategy":"round_robin"}'
bad "plan bogus" 400 unknown_field POST /v1/schedule/plan '{"module":"m","cpu_required":1,"memory_required_mb":1,"bogus":1}'
bad "long unknown name" 400 unknown_field POST /v1/nodes "{\"id\":\"nx\",\"region\":\"r1\",\"$(rep k 100000)\":1}"
ok "$([ "$(jqr .error.message | wc -c)" -lt 300 ]; echo $?)" "... its message stays short ($(jqr .error.message | wc -c) bytes)"
endgroup

# ---- numbers ---------------------------------------------------------------------------------

group "negative and absurd numbers"
bad "cpu_capacity -1" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":-1}'
bad "cpu_capacity 1e30" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":1e30}'
bad "cpu_capacity 2^63" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":9223372036854775808}'
bad "cpu_capacity -2^63-1" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":-9223372036854775809}'
bad "cpu_capacity 2^63-1" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":9223372036854775807}'
bad "cpu_capacity -2^63" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":-9223372036854775808}'
bad "cpu_capacity 100000001" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":100000001}'
bad "memory_mb 2^30+1" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","memory_mb":1073741825}'
bad "memory_used_mb -1" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","memory_used_mb":-1}'
bad "actor_count -1" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","actor_count":-1}'
bad "cpu_used above cpu_capacity" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","cpu_capacity":1000,"cpu_used":1001}'
bad "memory_used_mb above memory_mb" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","memory_mb":1000,"memory_used_mb":1001}'
bad "a 600-digit number" 400 invalid_json POST /v1/nodes "{\"id\":\"nx\",\"region\":\"r1\",\"cpu_capacity\":1$(rep 0 600)}"
bad "cpu_required -1" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":-1,"memory_required_mb":10}'
bad "cpu_required 1e30" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":1e30,"memory_required_mb":10}'
bad "cpu_required 2^63" 400 invalid_json POST /v1/actors '{"id":"ax","module":"m","cpu_required":9223372036854775808,"memory_required_mb":10}'
bad "memory_required_mb -1" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":-1}'
bad "replicas 0" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"replicas":0}'
bad "replicas -1" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"replicas":-1}'
bad "replicas 10001" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"replicas":10001}'
bad "priority 256" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"priority":256}'
bad "priority -1" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"priority":-1}'
bad "max_latency_ms -1" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":10,"memory_required_mb":10,"max_latency_ms":-1}'
bad "link timeout_ms -1" 400 invalid_field POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","timeout_ms":-1}'
bad "link retry_count 1001" 400 invalid_field POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","retry_count":1001}'
bad "policy max_actor_memory_mb -1" 400 invalid_field POST /v1/policies '{"policy_id":"polx","max_actor_memory_mb":-1}'
bad "PATCH replicas 0" 400 invalid_field PATCH /v1/actors/a1 '{"replicas":0}'
bad "PATCH cpu_required -1" 400 invalid_field PATCH /v1/actors/a1 '{"cpu_required":-1}'
bad "PATCH memory_required_mb 1e30" 400 invalid_field PATCH /v1/actors/a1 '{"memory_required_mb":1e30}'
bad "plan replicas 1e30" 400 invalid_field POST /v1/schedule/plan '{"module":"m","cpu_required":1,"memory_required_mb":1,"replicas":1e30}'
endgroup

# ---- ids and strings ---------------------------------------------------------------------------

ID128=$(rep a 128)
ID129=$(rep a 129)
group "ids in the body"
bad "node id of 129 characters" 400 invalid_field POST /v1/nodes "{\"id\":\"$ID129\",\"region\":\"r1\"}"
bad "node id of 65 characters (not a NATS subject token)" 400 invalid_field POST /v1/nodes "{\"id\":\"$(rep a 65)\",\"region\":\"r1\"}"
bad "node id with a dot (it would split a NATS subject)" 400 invalid_field POST /v1/nodes '{"id":"edge.1","region":"r1"}'
is "$(jqr .error.message)" "field 'id' must be 1 to 64 characters of A-Z a-z 0-9 _ - (a node id is a NATS subject token: no '.')" "the message says why a dotted node id is refused"
bad "actor id of 129 characters" 400 invalid_field POST /v1/actors "{\"id\":\"$ID129\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}"
bad "provider id of 129 characters" 400 invalid_field POST /v1/providers "{\"id\":\"$ID129\",\"contract_id\":\"wasmcloud:keyvalue\",\"image\":\"i\"}"
bad "link id of 129 characters" 400 invalid_field POST /v1/links "{\"id\":\"$ID129\",\"actor_id\":\"a1\",\"provider_id\":\"p1\",\"contract_id\":\"wasmcloud:keyvalue\"}"
bad "policy id of 129 characters" 400 invalid_field POST /v1/policies "{\"policy_id\":\"$ID129\"}"
bad "plan id of 129 characters" 400 invalid_field POST /v1/schedule/plan "{\"id\":\"$ID129\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}"
req POST /v1/schedule/plan "{\"id\":\"$ID128\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}"
is "$STATUS" 200 "a plan id of 128 characters is fine (the limit is exact)"
bad "id with a space" 400 invalid_field POST /v1/nodes '{"id":"a b","region":"r1"}'
bad "id with a slash" 400 invalid_field POST /v1/nodes '{"id":"a/b","region":"r1"}'
bad "id .." 400 invalid_field POST /v1/nodes '{"id":"..","region":"r1"}'
bad "id ." 400 invalid_field POST /v1/actors '{"id":".","module":"m","cpu_required":1,"memory_required_mb":1}'
bad "empty id" 400 invalid_field POST /v1/nodes '{"id":"","region":"r1"}'
bad "id with é" 400 invalid_field POST /v1/nodes '{"id":"caf\u00e9","region":"r1"}'
bad "id with a newline" 400 invalid_field POST /v1/nodes '{"id":"a\nb","region":"r1"}'
bad "id with %" 400 invalid_field POST /v1/nodes '{"id":"a%20b","region":"r1"}'
bad "id with ;" 400 invalid_field POST /v1/providers '{"id":"a;drop","contract_id":"wasmcloud:keyvalue","image":"i"}'
bad "id with a quote" 400 invalid_field POST /v1/policies "{\"policy_id\":\"a'b\"}"
bad "link actor_id ../x" 400 invalid_field POST /v1/links '{"actor_id":"../x","provider_id":"p1","contract_id":"wasmcloud:keyvalue"}'
bad "provider nodes entry with a space" 400 invalid_field POST /v1/providers '{"id":"px","contract_id":"wasmcloud:keyvalue","image":"i","nodes":["a b"]}'
bad "region of 65 characters" 400 invalid_field POST /v1/nodes "{\"id\":\"nx\",\"region\":\"$(rep r 65)\"}"
bad "region with a space" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"us west"}'
bad "contract in upper case" 400 invalid_field POST /v1/providers '{"id":"px","contract_id":"WASMCLOUD:KEYVALUE","image":"i"}'
bad "contract without a colon" 400 invalid_field POST /v1/providers '{"id":"px","contract_id":"keyvalue","image":"i"}'
bad "module with a space" 400 invalid_field POST /v1/actors '{"id":"ax","module":"oci://x/a 1","cpu_required":1,"memory_required_mb":1}'
bad "label key with a space" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","labels":{"a b":"v"}}'
bad "empty label key" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","labels":{"":"v"}}'
bad "duplicate contracts" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":1,"memory_required_mb":1,"contracts":["wasmcloud:keyvalue","wasmcloud:keyvalue"]}'
bad "contract both allowed and denied" 400 invalid_field POST /v1/policies '{"policy_id":"polx","allowed_contracts":["wasmcloud:keyvalue"],"denied_contracts":["wasmcloud:keyvalue"]}'
bad "policy_id in the body differs from the URL" 400 invalid_field PUT /v1/policies/pol1 '{"policy_id":"other"}'
endgroup

group "ids in the URL"
bad "GET /v1/nodes/a%20b" 400 invalid_id GET /v1/nodes/a%20b
badc "GET /v1/nodes/.. (path as is)" 400 invalid_id GET /v1/nodes/.. --path-as-is
badc "GET /v1/nodes/. (path as is)" 400 invalid_id GET /v1/nodes/. --path-as-is
bad "GET /v1/nodes/%2e%2e" 400 invalid_id GET /v1/nodes/%2e%2e
bad "GET /v1/nodes/<129 characters>" 400 invalid_id GET "/v1/nodes/$ID129"
req GET "/v1/nodes/$ID128"
is "$(shape)" "404 not_found string" "GET /v1/nodes/<128 characters> is a valid id, not found"
bad "GET /v1/nodes/%ff" 400 invalid_id GET /v1/nodes/%ff
bad "GET /v1/actors/caf%C3%A9" 400 invalid_id GET /v1/actors/caf%C3%A9
bad "GET /v1/links/%7Ex" 400 invalid_id GET /v1/links/%7Ex
bad "GET /v1/providers/a%3Bb" 400 invalid_id GET /v1/providers/a%3Bb
bad "GET /v1/policies/a%27b/versions" 400 invalid_id GET /v1/policies/a%27b/versions
bad "DELETE /v1/nodes/a%20b" 400 invalid_id DELETE /v1/nodes/a%20b
bad "DELETE /v1/nodes/<129 characters>" 400 invalid_id DELETE "/v1/nodes/$ID129"
bad "POST /v1/nodes/a%20b/cordon" 400 invalid_id POST /v1/nodes/a%20b/cordon
bad "POST /v1/nodes/%2e%2e/drain" 400 invalid_id POST /v1/nodes/%2e%2e/drain
bad "PATCH /v1/actors/a%2Cb" 400 invalid_id PATCH /v1/actors/a%2Cb '{"replicas":2}'
bad "PUT /v1/policies/a%22b" 400 invalid_id PUT /v1/policies/a%22b '{}'
bad "DELETE /v1/links/l1%0A" 400 invalid_id DELETE /v1/links/l1%0A
# %00 decodes to a NUL: the id must be refused, not cut at the NUL.
bad "GET /v1/nodes/n1%00x" 400 invalid_id GET /v1/nodes/n1%00x
bad "POST /v1/nodes/victim%00x/cordon" 400 invalid_id POST /v1/nodes/victim%00x/cordon
bad "DELETE /v1/nodes/victim%00junk" 400 invalid_id DELETE /v1/nodes/victim%00junk
# %2F is a '/' inside the id, not a path separator.
bad "GET /v1/nodes/a%2Fb" 400 invalid_id GET /v1/nodes/a%2Fb
bad "POST /v1/nodes/victim%2fx/cordon" 400 invalid_id POST /v1/nodes/victim%2fx/cordon
bad "DELETE /v1/nodes/victim%2F" 400 invalid_id DELETE /v1/nodes/victim%2F
req GET /v1/nodes/victim
is "$STATUS $(jqr .cordoned)" "200 false" "node 'victim' is still there, not cordoned"
endgroup

# ---- body size ------------------------------------------------------------------------------------

group "body over 1 MiB"
{
	printf '{"id":"big","region":"r1","labels":{"k":"'
	rep x 1100000
	printf '"}}'
} >"$T_DIR/big.json"
badf "1.05 MiB body with Content-Length" 413 payload_too_large POST /v1/nodes "$T_DIR/big.json"
creq POST /v1/nodes -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary "@$T_DIR/big.json"
is "$(shape)" "413 payload_too_large string" "1.05 MiB body with Transfer-Encoding: chunked"
req GET /healthz
is "$STATUS" 200 "the replica is up after the chunked upload"
creq POST /v1/actors -H 'Content-Type: application/json' -H 'Content-Length: 99999999999' --data-binary '{}'
is "$(shape)" "413 payload_too_large string" "a Content-Length of 99999999999 is refused up front"
SMALL='{"module":"oci://x/a:1","cpu_required":1,"memory_required_mb":1}'
{
	printf '%s' "$SMALL"
	rep ' ' $((1048576 - ${#SMALL}))
} >"$T_DIR/exact.json"
{
	printf '%s' "$SMALL"
	rep ' ' $((1048576 - ${#SMALL} + 1))
} >"$T_DIR/over.json"
creq POST /v1/schedule/plan -H 'Content-Type: application/json' --data-binary "@$T_DIR/exact.json"
is "$STATUS $(stat -c %s "$T_DIR/exact.json")" "200 1048576" "a body of exactly 1 MiB is accepted"
badf "a body of 1 MiB + 1 byte" 413 payload_too_large POST /v1/schedule/plan "$T_DIR/over.json"
creq POST /v1/schedule/plan -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary "$SMALL"
is "$STATUS" 200 "a small chunked body is accepted"
creq POST /v1/schedule/plan -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary "@$T_DIR/over.json"
is "$(shape)" "413 payload_too_large string" "a chunked body of 1 MiB + 1 byte is 413"
endgroup

# ---- Content-Type --------------------------------------------------------------------------------------

group "wrong Content-Type"
bad "text/plain" 415 unsupported_media_type POST /v1/nodes "$NODE" text/plain
badc "curl's default form type" 415 unsupported_media_type POST /v1/nodes -d "$NODE"
bad "application/xml" 415 unsupported_media_type POST /v1/actors "$ACTOR" application/xml
bad "application/jsonx" 415 unsupported_media_type POST /v1/nodes '{"id":"n-jsonx","region":"r1"}' application/jsonx
bad "text/plain on PATCH" 415 unsupported_media_type PATCH /v1/actors/a1 '{"replicas":2}' text/plain
bad "text/plain on PUT" 415 unsupported_media_type PUT /v1/policies/pol1 '{}' text/plain
bad "text/plain on cordon with {}" 415 unsupported_media_type POST /v1/nodes/n1/cordon '{}' text/plain
bad "text/plain on the plan" 415 unsupported_media_type POST /v1/schedule/plan "$SMALL" text/plain
endgroup

# ---- bodyless routes ---------------------------------------------------------------------------------------

group "a body where none is taken"
bad "cordon {\"x\":1}" 400 unknown_field POST /v1/nodes/n1/cordon '{"x":1}'
bad "uncordon {\"x\":1}" 400 unknown_field POST /v1/nodes/n1/uncordon '{"x":1}'
bad "drain {\"x\":1}" 400 unknown_field POST /v1/nodes/n1/drain '{"x":1}'
bad "DELETE node with a body" 400 unknown_field DELETE /v1/nodes/victim '{"x":1}'
bad "DELETE actor with a body" 400 unknown_field DELETE /v1/actors/a1 '{"force":true}'
bad "DELETE provider with a body" 400 unknown_field DELETE /v1/providers/p1 '{"x":1}'
bad "DELETE link with a body" 400 unknown_field DELETE /v1/links/l1 '{"x":1}'
bad "cordon [1]" 400 invalid_json POST /v1/nodes/n1/cordon '[1]'
endgroup

# ---- query strings ----------------------------------------------------------------------------------------

group "bad query values"
bad "limit=0" 400 invalid_query GET '/v1/nodes?limit=0'
bad "limit=abc" 400 invalid_query GET '/v1/nodes?limit=abc'
bad "limit=100000" 400 invalid_query GET '/v1/actors?limit=100000'
bad "limit=1001" 400 invalid_query GET '/v1/providers?limit=1001'
bad "limit=-1" 400 invalid_query GET '/v1/links?limit=-1'
bad "limit=1.5" 400 invalid_query GET '/v1/policies?limit=1.5'
bad "limit=+5" 400 invalid_query GET '/v1/nodes?limit=%2B5'
bad "limit= (empty)" 400 invalid_query GET '/v1/nodes?limit='
bad "after=../x" 400 invalid_query GET '/v1/nodes?after=../x'
bad "after=a%20b" 400 invalid_query GET '/v1/actors?after=a%20b'
bad "after= (empty)" 400 invalid_query GET '/v1/nodes?after='
bad "min_index=-1" 400 invalid_query GET '/v1/nodes?min_index=-1'
bad "min_index=abc" 400 invalid_query GET '/v1/nodes/n1?min_index=abc'
bad "min_index=2^64" 400 invalid_query GET '/v1/nodes?min_index=18446744073709551616'
bad "consistent=1" 400 invalid_query GET '/v1/nodes?consistent=1'
bad "status=bogus" 400 invalid_query GET '/v1/nodes?status=bogus'
bad "status=HEALTHY" 400 invalid_query GET '/v1/nodes?status=HEALTHY'
bad "label==v (empty key)" 400 invalid_query GET '/v1/nodes?label==v'
bad "label==v" 400 invalid_query GET '/v1/nodes?label==v'
bad "events since=-1" 400 invalid_query GET '/v1/events?since=-1'
bad "events since=abc" 400 invalid_query GET '/v1/events?since=abc'
bad "events limit=0" 400 invalid_query GET '/v1/events?limit=0'
bad "events wait=abc" 400 invalid_query GET '/v1/events?wait=abc'
bad "events wait=-1" 400 invalid_query GET '/v1/events?wait=-1'
bad "unknown parameter" 400 invalid_query GET '/v1/nodes?bogus=1'
bad "list parameter on a single GET" 400 invalid_query GET '/v1/nodes/n1?limit=1'
bad "unknown parameter on /v1/cluster" 400 invalid_query GET '/v1/cluster?x=1'
bad "region=%ff (invalid UTF-8)" 400 invalid_query GET '/v1/nodes?region=%ff'
bad "label=tier=%ff (invalid UTF-8)" 400 invalid_query GET '/v1/nodes?label=tier=%ff'
bad "actors node=%ff (invalid UTF-8)" 400 invalid_query GET '/v1/actors?node=%ff'
bad "links actor_id=%C3%28 (invalid UTF-8)" 400 invalid_query GET '/v1/links?actor_id=%C3%28'
endgroup

# ---- NUL and control characters ------------------------------------------------------------------------------

group "NUL and control characters"
bad "\\u0000 in an id" 400 invalid_json POST /v1/nodes '{"id":"a\u0000b","region":"r1"}'
bad "\\u0000 in a label value" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","labels":{"k":"x\u0000"}}'
bad "\\u0000 in a label key" 400 invalid_json POST /v1/nodes '{"id":"nx","region":"r1","labels":{"k\u0000":"v"}}'
bad "\\u0000 in a network restriction" 400 invalid_json POST /v1/policies '{"policy_id":"polx","network_restrictions":["a\u0000"]}'
printf '{"id":"nx","region":"r1\0x"}' >"$T_DIR/nul-in.json"
badf "a raw NUL byte in a string" 400 invalid_json POST /v1/nodes "$T_DIR/nul-in.json"
bad "a raw tab in a string" 400 invalid_json POST /v1/nodes "$(printf '{"id":"nx","region":"r1\t"}')"
bad "a raw newline in a string" 400 invalid_json POST /v1/actors "$(printf '{"id":"ax","module":"m\nx","cpu_required":1,"memory_required_mb":1}')"
bad "\\u0001 in a label value" 400 invalid_field POST /v1/nodes '{"id":"nx","region":"r1","labels":{"k":"a\u0001b"}}'
bad "\\u001f in an actor name" 400 invalid_field POST /v1/actors '{"id":"ax","name":"a\u001fb","module":"m","cpu_required":1,"memory_required_mb":1}'
bad "\\u007f in an actor name" 400 invalid_field POST /v1/actors '{"id":"ax","name":"a\u007fb","module":"m","cpu_required":1,"memory_required_mb":1}'
bad "escaped newline in a module" 400 invalid_field POST /v1/actors '{"id":"ax","module":"oci://x\n","cpu_required":1,"memory_required_mb":1}'
bad "\\u0007 in a link value" 400 invalid_field POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","values":{"k":"a\u0007"}}'
bad "\\u0002 in a network restriction" 400 invalid_field POST /v1/policies '{"policy_id":"polx","network_restrictions":["a\u0002"]}'
bad "\\u001b (ESC) in a constraint value" 400 invalid_field POST /v1/actors '{"id":"ax","module":"m","cpu_required":1,"memory_required_mb":1,"constraints":{"k":"\u001b[31m"}}'
endgroup

group "invalid UTF-8"
bad "\\xff in a label value" 400 invalid_json POST /v1/nodes "$(printf '{"id":"nx","region":"r1","labels":{"k":"\xff"}}')"
bad "overlong \\xc0\\xaf" 400 invalid_json POST /v1/nodes "$(printf '{"id":"nx","region":"\xc0\xaf"}')"
bad "encoded surrogate \\xed\\xa0\\x80" 400 invalid_json POST /v1/actors "$(printf '{"id":"ax","name":"\xed\xa0\x80","module":"m","cpu_required":1,"memory_required_mb":1}')"
bad "above U+10FFFF \\xf5\\x80\\x80\\x80" 400 invalid_json POST /v1/actors "$(printf '{"id":"ax","name":"\xf5\x80\x80\x80","module":"m","cpu_required":1,"memory_required_mb":1}')"
bad "truncated sequence \\xe6\\x97" 400 invalid_json POST /v1/actors "$(printf '{"id":"ax","name":"\xe6\x97","module":"m","cpu_required":1,"memory_required_mb":1}')"
bad "lone surrogate \\ud800" 400 invalid_json POST /v1/actors '{"id":"ax","name":"\ud800","module":"m","cpu_required":1,"memory_required_mb":1}'
bad "reversed surrogates \\udc00\\ud800" 400 invalid_json POST /v1/actors '{"id":"ax","name":"\udc00\ud800","module":"m","cpu_required":1,"memory_required_mb":1}'
bad "\\xff in a key" 400 invalid_json POST /v1/nodes "$(printf '{"id":"nx","region":"r1","\xff":1}')"
bad "\\xff outside strings" 400 invalid_json POST /v1/nodes "$(printf '{"id":"nx"\xff,"region":"r1"}')"
bad "\\xff in a link value" 400 invalid_json POST /v1/links "$(printf '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","values":{"k":"\xff"}}')"
bad "\\xff alone" 400 invalid_json POST /v1/schedule/plan "$(printf '\xff')"
endgroup

# ---- sizes of maps, lists, strings, nesting ----------------------------------------------------------------

labels() { # labels N: {"k0":"v",...}
	local i out=""
	for ((i = 0; i < $1; i++)); do out="$out${out:+,}\"k$i\":\"v\""; done
	printf '{%s}' "$out"
}
strs() { # strs N FMT: ["<FMT with i>",...]
	local i out=""
	for ((i = 0; i < $1; i++)); do out="$out${out:+,}\"$(printf "$2" "$i")\""; done
	printf '[%s]' "$out"
}
group "too many, too long, too deep"
bad "65 labels" 400 invalid_field POST /v1/nodes "{\"id\":\"nx\",\"region\":\"r1\",\"labels\":$(labels 65)}"
is "$(jqr .error.message)" "field 'labels' must have at most 64 entries" "... the message gives the limit"
{
	printf '{"id":"nx","region":"r1","labels":{'
	for ((i = 0; i < 50000; i++)); do printf '"k%d":"v",' "$i"; done
	printf '"last":"v"}}'
} >"$T_DIR/many-labels.json"
badf "50001 labels" 400 invalid_field POST /v1/nodes "$T_DIR/many-labels.json"
bad "65 constraints" 400 invalid_field POST /v1/actors "{\"id\":\"ax\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,\"constraints\":$(labels 65)}"
bad "257 contracts" 400 invalid_field POST /v1/actors "{\"id\":\"ax\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,\"contracts\":$(strs 257 'ns:c%d')}"
bad "257 provider nodes" 400 invalid_field POST /v1/providers "{\"id\":\"px\",\"contract_id\":\"wasmcloud:keyvalue\",\"image\":\"i\",\"nodes\":$(strs 257 'n%d')}"
bad "65 link values" 400 invalid_field POST /v1/links "{\"actor_id\":\"a1\",\"provider_id\":\"p1\",\"contract_id\":\"wasmcloud:keyvalue\",\"link_name\":\"x\",\"values\":$(labels 65)}"
bad "65 selector labels" 400 invalid_field POST /v1/policies "{\"policy_id\":\"polx\",\"selector\":{\"labels\":$(labels 65)}}"
bad "257 selector regions" 400 invalid_field POST /v1/policies "{\"policy_id\":\"polx\",\"selector\":{\"regions\":$(strs 257 'r%d')}}"
bad "label key of 64 characters" 400 invalid_field POST /v1/nodes "{\"id\":\"nx\",\"region\":\"r1\",\"labels\":{\"$(rep k 64)\":\"v\"}}"
bad "label value of 256 characters" 400 invalid_field POST /v1/nodes "{\"id\":\"nx\",\"region\":\"r1\",\"labels\":{\"k\":\"$(rep v 256)\"}}"
bad "actor name of 257 characters" 400 invalid_field POST /v1/actors "{\"id\":\"ax\",\"name\":\"$(rep n 257)\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}"
bad "module of 1025 characters" 400 invalid_field POST /v1/actors "{\"id\":\"ax\",\"module\":\"$(rep m 1025)\",\"cpu_required\":1,\"memory_required_mb\":1}"
bad "link value of 4097 characters" 400 invalid_field POST /v1/links "{\"actor_id\":\"a1\",\"provider_id\":\"p1\",\"contract_id\":\"wasmcloud:keyvalue\",\"link_name\":\"x\",\"values\":{\"k\":\"$(rep v 4097)\"}}"
{
	printf '{"id":"nx","region":"r1","labels":'
	rep '[' 100000
	rep ']' 100000
	printf '}'
} >"$T_DIR/deep-arrays.json"
badf "100000 nested arrays" 400 invalid_json POST /v1/nodes "$T_DIR/deep-arrays.json"
{
	printf '{"id":"nx","region":"r1","labels":'
	for ((i = 0; i < 20000; i++)); do printf '{"a":'; done
	printf '1'
	rep '}' 20001
} >"$T_DIR/deep-objects.json"
badf "20000 nested objects" 400 invalid_json POST /v1/nodes "$T_DIR/deep-objects.json"
endgroup

# ---- empty bodies ------------------------------------------------------------------------------------------

group "empty body"
bad "POST /v1/nodes ''" 400 invalid_json POST /v1/nodes ''
bad "POST /v1/actors ''" 400 invalid_json POST /v1/actors ''
bad "POST /v1/providers ''" 400 invalid_json POST /v1/providers ''
bad "POST /v1/links ''" 400 invalid_json POST /v1/links ''
bad "POST /v1/policies ''" 400 invalid_json POST /v1/policies ''
bad "POST /v1/schedule/plan ''" 400 invalid_json POST /v1/schedule/plan ''
bad "PUT /v1/policies/pol1 ''" 400 invalid_json PUT /v1/policies/pol1 ''
bad "PATCH /v1/actors/a1 ''" 400 invalid_json PATCH /v1/actors/a1 ''
bad "POST /v1/nodes with no body and no Content-Type" 400 invalid_json POST /v1/nodes
bad "POST /v1/actors with only whitespace" 400 invalid_json POST /v1/actors "$(printf ' \n\t ')"
endgroup

# ---- query floods, long request lines, big headers -----------------------------------------------------------

qrep() { # qrep PARAM N: PARAM&PARAM&... (N times)
	local i out=""
	for ((i = 0; i < $2; i++)); do out="$out${out:+&}$1"; done
	printf '%s' "$out"
}
qdistinct() { # qdistinct N: p0=1&p1=1&...
	local i out=""
	for ((i = 0; i < $1; i++)); do out="$out${out:+&}p$i=1"; done
	printf '%s' "$out"
}
# These once hung or were answered by libmicrohttpd itself: --max-time 10 turns a
# hang into a failure (000) instead of a 60 s wait.
group "query floods and oversized requests"
badc "limit given twice" 400 invalid_query GET '/v1/nodes?limit=1&limit=2' --max-time 10
is "$(jqr .error.message)" "query parameter 'limit' is given more than once" "... the message names the parameter"
badc "after given twice, apart" 400 invalid_query GET '/v1/actors?after=a&limit=5&after=b' --max-time 10
badc "consistent given twice" 400 invalid_query GET '/v1/nodes/n1?consistent=false&consistent=true' --max-time 10
badc "consistent without a value" 400 invalid_query GET '/v1/nodes?consistent' --max-time 10
badc "limit=5 900 times" 400 invalid_query GET "/v1/nodes?$(qrep limit=5 900)" --max-time 10
badc "limit=5 1000 times" 400 invalid_query GET "/v1/nodes?$(qrep limit=5 1000)" --max-time 10
badc "65 different parameters" 400 invalid_query GET "/v1/nodes?$(qdistinct 65)" --max-time 10
is "$(jqr .error.message)" "more than 64 query parameters" "... the message gives the limit"
badc "a 40 KB query" 414 uri_too_long GET "/v1/nodes?$(qrep limit=5 5000)" --max-time 10
[ -n "$(header X-Lattice-Index)" ]
ok $? "... with an X-Lattice-Index header"
badc "a 9000-character path" 414 uri_too_long GET "/v1/nodes/$(rep a 9000)" --max-time 10
badc "20 KB of headers" 431 headers_too_large GET /v1/nodes -H "X-Big: $(rep a 20000)" --max-time 10
badc "a 40 KB query on a write" 414 uri_too_long POST "/v1/nodes?$(qrep x=1 10000)" -H 'Content-Type: application/json' \
	--data-binary '{"id":"nq","region":"r1"}' --max-time 10
# Past the per-connection memory libmicrohttpd answers itself, in HTML
# (docs/api.md says so): promptly, and with the right status.
creq GET "/v1/nodes?$(qrep limit=5 9000)" --max-time 10
is "$STATUS" 414 "a 72 KB query: 414 from libmicrohttpd, at once"
creq POST /v1/nodes -H 'Content-Type: application/json' -H 'Content-Length: abc' --max-time 10
is "$STATUS" 400 "Content-Length: abc: 400 from libmicrohttpd"
endgroup
# Controls: ids and paths with encoded plain characters, and a parameter given once.
req GET '/v1/%6Eodes/%6E1?consistent=false'
is "$STATUS $(jqr .id)" "200 n1" "control: /v1/%6Eodes/%6E1 is node n1"
req GET "/v1/nodes?$(qdistinct 0)limit=1&after=a&min_index=0&consistent=false&region=r1&status=healthy&label=k"
is "$STATUS" 200 "control: every parameter of /v1/nodes, once each, is 200"

# ---- still alive, still right -------------------------------------------------------------------------------

req GET /healthz
is "$STATUS $(jqr .status)" "200 ok" "after all of it, /healthz is 200"
req GET /readyz
is "$STATUS" 200 "... and /readyz is 200"
kill -0 "$LATTICED_PID" 2>/dev/null
ok $? "latticed is still running"
req GET /v1/actors/a1
is "$STATUS $(jqr '.placements[0].node_id') $(jqr .replicas)" "200 n1 1" "the fixtures are intact"

# Controls: the valid bodies the bad rows were made from are accepted.
req POST /v1/nodes "$NODE"
is "$STATUS" 201 "control: the valid node body is 201"
req POST /v1/actors "$ACTOR"
is "$STATUS" 201 "control: the valid actor body is 201"
req POST /v1/providers '{"id":"px","contract_id":"wasmcloud:keyvalue","image":"i","nodes":["nx"]}'
is "$STATUS" 201 "control: the valid provider body is 201"
req POST /v1/links '{"actor_id":"a1","provider_id":"p1","contract_id":"wasmcloud:keyvalue","link_name":"x","values":{"k":"v"},"timeout_ms":5}'
is "$STATUS" 201 "control: the valid link body is 201"
req POST /v1/policies '{"policy_id":"polx","selector":{"regions":["nowhere"]}}'
is "$STATUS" 201 "control: the valid policy body is 201"
req PATCH /v1/actors/a1 '{"replicas":1,"cpu_required":100}' 'application/json; charset=utf-8'
is "$STATUS" 200 "control: a PATCH with 'application/json; charset=utf-8' is 200"
req POST /v1/nodes '{"id":"labels64","region":"r1","labels":'"$(labels 64)"'}'
is "$STATUS $(jqr '.labels | length')" "201 64" "control: 64 labels are accepted"
req POST /v1/nodes "{\"id\":\"$(rep a 64)\",\"region\":\"r1\",\"labels\":{\"$(rep k 63)\":\"$(rep v 255)\"}}"
is "$STATUS" 201 "control: a 64-character node id, a 63-character label key and a 255-character value are accepted"
req GET "/v1/nodes/$(rep a 64)"
is "$STATUS" 200 "control: GET of the 64-character node id is 200"
req POST /v1/actors "{\"id\":\"$ID128\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}"
is "$STATUS" 201 "control: a 128-character actor id is accepted"
req GET /healthz
is "$STATUS" 200 "the replica is healthy at the end"

done_testing
