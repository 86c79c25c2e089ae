#!/usr/bin/env bash
# contract.sh — the REST contract check every integration test ends with
# (tests/lib/contract_check.js, run by tests/integration/lib.sh on what req
# recorded) catches what it must: planted exchanges with an undocumented
# status, a body that breaks its schema, an error code the spec does not list,
# a missing required header, a Content-Type the response does not document
# and an unknown path are each named; documented
# ones (a percent-encoded path, the server's 404 and 405 error objects) pass.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/protocol.sh"
command -v jq >/dev/null || skip_all "jq is not installed"
protocol_setup || skip_all "$PROTOCOL_WHY"
T=$(mktemp -d /tmp/lattice-contract.XXXXXX) || bail "mktemp failed"
trap 'rm -rf "$T"' EXIT
plan 9

# ex METHOD PATH STATUS HEAD BODY: one exchange as lib.sh's req records it
ex() { jq -cn --arg m "$1" --arg p "$2" --argjson s "$3" --arg h "$4" --arg b "$5" \
	'{method: $m, path: $p, status: $s, head: $h, body: $b}'; }
H=$'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Lattice-Index: 7\r\n'
E=$'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n'
NODE='{"id":"n1","region":"eu","labels":{},"cpu_capacity":100,"memory_mb":100}'
check() { PROTOCOL_NODE_MODULES=$PROTOCOL_MODULES node "$top_srcdir/tests/lib/contract_check.js" \
	"$top_srcdir/api/openapi.yaml" "$1"; }

{
	ex GET /healthz 200 "$H" '{"status":"ok"}'
	ex GET '/v1/%6Eodes?limit=2' 200 "$H" '{"items":[],"next":null}'
	ex GET /v1/nope 404 "$E" '{"error":{"code":"not_found","message":"no such route"}}'
	ex PUT /v1/nodes 405 "$E" '{"error":{"code":"method_not_allowed","message":"GET, POST"}}'
} >"$T/good.jsonl"
out=$(check "$T/good.jsonl")
ok $? "documented exchanges pass ($(printf '%s' "$out" | tail -1 | sed 's/^# //'))"

bad() { # NAME EXPECTED-TEXT EXCHANGE
	printf '%s\n' "$3" >"$T/bad.jsonl"
	out=$(check "$T/bad.jsonl")
	st=$?
	ok "$([ $st = 1 ] && printf '%s' "$out" | grep -q -- "$2"; echo $?)" "caught: $1 ($(printf '%s' "$out" | head -1 | cut -c1-150))"
}
bad "a status the operation does not document" "status 418 not documented" "$(ex GET /v1/nodes 418 "$H" '{}')"
bad "a body that breaks its schema" "body" "$(ex GET /v1/nodes 200 "$H" '{"items":"no","next":null}')"
bad "an error code the spec does not list" "allowed values" \
	"$(ex POST /v1/nodes 503 "$H" '{"error":{"code":"bogus","message":"x"}}')"
bad "an unknown path answered 200" "path not in api/openapi.yaml" "$(ex GET /v1/teapot 200 "$H" '{}')"
bad "a body that is not JSON" "not JSON" "$(ex GET /v1/nodes 200 "$H" 'oops')"
bad "a 404 of an unknown path without the error object" "body" "$(ex GET /v1/nope 404 "$E" '{"message":"x"}')"
bad "a required header missing (Location of a 201)" "required header Location missing" \
	"$(ex POST /v1/nodes 201 "$H" "$NODE")"
bad "a Content-Type the response does not document" "Content-Type 'text/html' not documented" \
	"$(ex GET /v1/nodes 200 $'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Lattice-Index: 7\r\n' '{"items":[],"next":null}')"
done_testing
