#!/usr/bin/env bash
# How latticed serves the dashboard (docs/ui.md): the files of --ui-dir at
# /ui/ with their types and a Content-Security-Policy, nothing outside them,
# a clear 404 when the dashboard is not installed; and GET /v1/summary, the
# counts the dashboard shows instead of listing everything.
. "$(dirname "$0")/lib.sh"
plan 23

lib_init
UI=$T_DIR/ui
mkdir -p "$UI"
printf '<!doctype html>\n<title>lattice</title>\n<script src="app.js"></script>\n' >"$UI/index.html"
printf 'body { margin: 0 }\n' >"$UI/style.css"
printf 'console.log("lattice");\n' >"$UI/app.js"
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR' >"$UI/logo.png" # NUL bytes: sent whole
printf 'secret\n' >"$T_DIR/outside.txt"
printf 'MZ' >"$UI/tool.exe"
lattice_start a --ui-dir "$UI"

# 1-6: the files
req GET /ui
is "$STATUS $(header Location)" "301 /ui/" "GET /ui redirects to /ui/"
req GET /ui/
is "$STATUS $(header Content-Type)" "200 text/html; charset=utf-8" "GET /ui/ is index.html, as HTML"
is "$BODY" "$(cat "$UI/index.html")" "byte for byte"
csp=$(header Content-Security-Policy)
ok "$([[ $csp == *"default-src 'self'"* && $csp == *"script-src 'self'"* && $csp == *"connect-src 'self'"* ]]; echo $?)" \
	"a Content-Security-Policy that allows this replica only ($csp)"
is "$(header Cache-Control) $(header X-Content-Type-Options)" "no-cache nosniff" "Cache-Control: no-cache, nosniff"
req GET /ui/style.css
is "$STATUS $(header Content-Type)" "200 text/css; charset=utf-8" "a stylesheet as text/css"
req GET /ui/app.js
is "$STATUS $(header Content-Type)" "200 text/javascript; charset=utf-8" "a script as text/javascript"
curl -s -o "$T_DIR/logo.got" "$API/ui/logo.png"
ok "$(cmp -s "$T_DIR/logo.got" "$UI/logo.png"; echo $?)" "a PNG with NUL bytes comes whole"

# 9-13: nothing else
req GET /ui/missing.js
is "$(err)" "404 not_found" "a file that is not there: 404 not_found"
req GET /ui/tool.exe
is "$(err)" "404 not_found" "a type the dashboard does not use: 404, even when the file exists"
req GET /ui/..%2Foutside.txt
is "$(err)" "400 invalid_id" "../ (encoded) cannot leave the directory: 400 invalid_id"
req GET /ui/sub/app.js
is "$(err)" "404 not_found" "no subdirectories"
req GET '/ui/?x=1'
is "$(err)" "400 invalid_query" "query parameters are refused"

# 14: not installed
lattice_stop
lattice_start a --ui-dir "$T_DIR/nowhere"
req GET /ui/
ok "$([ "$STATUS" = 404 ] && [[ $(jqr .error.message) == *"$T_DIR/nowhere"* ]]; echo $?)" \
	"no dashboard in --ui-dir: 404 naming the directory ($(jqr .error.message))"

# 15-22: the summary
req GET /v1/summary
is "$(jqr '[.nodes.total, .actors.total, .actors.instances, (.nodes.regions | length)] | join(" ")')" "0 0 0 0" \
	"an empty lattice: all zero, no region"
for i in 1 2 3; do
	req POST /v1/nodes "{\"id\":\"eu-$i\",\"region\":\"eu\",\"cpu_capacity\":1000,\"memory_mb\":2048}"
done
for i in 1 2; do
	req POST /v1/nodes "{\"id\":\"us-$i\",\"region\":\"us\",\"cpu_capacity\":500,\"memory_mb\":1024,\"cpu_used\":100}"
done
req POST /v1/nodes/us-2/cordon
req POST /v1/actors '{"id":"web","name":"web","module":"oci://web:1","cpu_required":200,"memory_required_mb":256,"replicas":2,"preferred_region":"eu"}'
is "$STATUS" 201 "an actor with 2 instances in eu"
req GET /v1/summary
is "$STATUS" 200 "GET /v1/summary"
is "$(jqr '[.nodes.total, .nodes.by_status.healthy, .nodes.cordoned, .nodes.draining, .nodes.policy_behind] | join(" ")')" \
	"5 5 1 0 0" "nodes: 5, healthy 5, cordoned 1"
is "$(jqr '.nodes.regions | map(.region + ":" + (.total | tostring)) | join(" ")')" "eu:3 us:2" "regions in order with their nodes"
is "$(jqr '.nodes.regions[0] | [.cpu_capacity, .cpu_used, .memory_mb, .memory_used_mb, .actor_count] | join(" ")')" \
	"3000 400 6144 512 2" "eu: capacity and what the 2 instances use"
is "$(jqr '.nodes.regions[1] | [.cpu_capacity, .cpu_used, .cordoned] | join(" ")')" "1000 200 1" \
	"us: the registered base load counts, 1 cordoned"
is "$(jqr '[.actors.total, .actors.instances, (.actors.by_state | add)] | join(" ")')" "1 2 2" "actors 1, instances 2"
is "$(jqr '.index') $(header X-Lattice-Index)" "$(jqr '.index') $(jqr '.index')" "index = X-Lattice-Index"

done_testing
