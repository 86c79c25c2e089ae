#!/usr/bin/env bash
# GET /v1/policies/{id}/violations (SPEC "policy"): a new version applies to
# future placements and links, and what already runs against it is listed:
# memory over the cap, contracts denied or not allowed (declared or linked),
# only on the nodes the policy covers; sorted, limited, counted in total.
. "$(dirname "$0")/lib.sh"
plan 12
get_node() { curl -s "$API/v1/actors/$1" | jq -r '.placements[0].node_id'; }

lib_init
lattice_start a
req POST /v1/providers '{"id":"kv","contract_id":"wasmcloud:keyvalue","image":"oci://x/kv:1"}'
req POST /v1/nodes '{"id":"eu-1","region":"eu","cpu_capacity":4000,"memory_mb":8192,"labels":{"tier":"edge"}}'
req POST /v1/actors '{"id":"big","module":"m","cpu_required":100,"memory_required_mb":512}'
req POST /v1/actors '{"id":"kvuser","module":"m","cpu_required":100,"memory_required_mb":64,"replicas":2}'
req POST /v1/nodes '{"id":"us-1","region":"us","cpu_capacity":4000,"memory_mb":8192}'
req POST /v1/actors '{"id":"far","module":"m","cpu_required":100,"memory_required_mb":512,"preferred_region":"us"}'
req POST /v1/links '{"id":"l-far","actor_id":"far","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
req POST /v1/links '{"id":"l-kv","actor_id":"kvuser","provider_id":"kv","contract_id":"wasmcloud:keyvalue"}'
is "$STATUS $(get_node far)" "201 us-1" "links to wasmcloud:keyvalue while no policy forbids it; far runs in us"
req POST /v1/policies '{"policy_id":"eu-rules","selector":{"regions":["eu"]}}'
is "$STATUS" 201 "a policy for eu that forbids nothing yet"

req GET /v1/policies/eu-rules/violations
is "$(jqr '[.policy_id, .version, .total, (.items | length)] | map(tostring) | join(" ")')" "eu-rules 1 0 0" \
	"version 1 forbids nothing: no violation"

req PUT /v1/policies/eu-rules '{"selector":{"regions":["eu"]},"max_actor_memory_mb":256,"denied_contracts":["wasmcloud:keyvalue"]}'
is "$STATUS" 200 "version 2: a 256 MiB cap and keyvalue denied"
req GET /v1/policies/eu-rules/violations
is "$STATUS $(jqr '.version') $(jqr '.total')" "200 2 3" "3 violations of version 2"
is "$(jqr '[.items[] | .kind + ":" + .actor_id + "/" + (.instance | tostring) + "@" + .node_id] | join(" ")')" \
	"memory:big/0@eu-1 contract_denied:kvuser/0@eu-1 contract_denied:kvuser/1@eu-1" \
	"big over the cap, both kvuser instances holding keyvalue; nothing in us (not covered)"
is "$(jqr '.items[1] | [.contract_id, .link_id] | join(" ")')" "wasmcloud:keyvalue l-kv" "the contract and the link that gives it"
is "$(jqr '.items[0].contract_id, .items[0].link_id' | tr '\n' ' ')" "null null " "memory: no contract, no link"
ok "$([[ $(jqr '.items[0].message') == *512*256* ]]; echo $?)" "a message that says why ($(jqr '.items[0].message'))"

req GET '/v1/policies/eu-rules/violations?limit=1'
is "$(jqr '[.total, (.items | length), .items[0].actor_id] | map(tostring) | join(" ")')" "3 1 big" "limit=1: the first, total still 3"

req PUT /v1/policies/eu-rules '{"selector":{"regions":["eu"]},"allowed_contracts":["wasmcloud:httpserver"]}'
req GET /v1/policies/eu-rules/violations
is "$(jqr '[.total, .items[0].kind] | map(tostring) | join(" ")')" "2 contract_not_allowed" \
	"version 3 allows only httpserver: keyvalue is not allowed, the cap is gone"

req GET /v1/policies/nope/violations
is "$(err)" "404 not_found" "an unknown policy: 404"

done_testing
