#!/usr/bin/env bash
# collect.sh — sim/collect.c reads a replica's database into final.json's
# "replicas[]" element (docs/chaos.md): a latticed writes nodes, actors and a
# policy through its API; the tool (tests/tools/collect) reads them back with
# rows sorted by primary key, timestamps as ms, projected_index from
# lattice_state; finished commands counted (commands_summary), not kept as
# rows; a digest per table (PostgreSQL hashes every row) and one over them (jq
# recomputes it); two reads of one database give one digest, and a write
# through the API or a changed column of any row, kept or not, changes it.
. "$(dirname "$0")/lib.sh"
plan 22
COLLECT=$top_builddir/tests/tools/collect
[ -x "$COLLECT" ] || bail "tests/tools/collect not built"
lib_init
lattice_start r1
CONN=$(cat "$T_DIR/r1/conninfo")

req POST /v1/nodes '{"id":"n2","region":"eu","cpu_capacity":10000,"memory_mb":10000}'
s1=$STATUS
req POST /v1/nodes '{"id":"n1","region":"eu","labels":{"tier":"a"},"cpu_capacity":10000,"memory_mb":10000}'
s2=$STATUS
fail=0
for id in w-b w-a w-c; do
	req POST /v1/actors "{\"id\":\"$id\",\"module\":\"m\",\"cpu_required\":10,\"memory_required_mb\":10,\"replicas\":2}"
	[ "$STATUS" = 201 ] || fail=1
done
req POST /v1/policies '{"policy_id":"p-0","max_actor_memory_mb":512}'
s3=$STATUS
ok "$([ "$s1$s2$s3" = 201201201 ] && [ $fail = 0 ]; echo $?)" "fixtures: 2 nodes, 3 actors (w-b, w-a, w-c), a policy"

# the projection is asynchronous: wait until it has what the API answered
idx=$(header X-Lattice-Index)
for _ in $(seq 1 100); do
	[ "$(pg_psql r1 'SELECT applied_index FROM lattice_state')" -ge "${idx:-0}" ] && break
	sleep 0.1
done

"$COLLECT" "$CONN" 1 >"$T_DIR/c1.json" 2>"$T_DIR/c1.err"
ok $? "collect reads the database"
el=$(cat "$T_DIR/c1.json")
q() { printf '%s' "$el" | jq -r "$1"; }
is "$(q '[.replica, .alive, .applied_index] | @text')" '[1,true,null]' "replica number, alive, applied_index left to the caller"
is "$(q '.projected_index')" "$(pg_psql r1 'SELECT applied_index FROM lattice_state')" "projected_index is lattice_state.applied_index"
is "$(q '[.tables.actors[].id] | join(" ")')" "w-a w-b w-c" "actors sorted by id"
is "$(q '[.tables.actors[] | "\(.replicas)/\(.generation)/\(.module)"] | join(" ")')" "2/1/m 2/1/m 2/1/m" \
	"actors carry replicas, generation and the other columns"
is "$(q '[.tables.placements[] | "\(.actor_id)/\(.instance)"] | join(" ")')" "w-a/0 w-a/1 w-b/0 w-b/1 w-c/0 w-c/1" \
	"placements sorted by (actor, instance)"
is "$(q '[.tables.placements[] | .node_id] | unique | join(" ")')" "n1 n2" "placements name their nodes"
is "$(q '[.tables.nodes[] | "\(.id):\(.labels.tier // "-"):\(.policy_version):\(.policy_target)"] | join(" ")')" \
	"n1:a:0:$(pg_psql r1 "SELECT policy_target FROM nodes WHERE id = 'n1'") n2:-:0:$(pg_psql r1 "SELECT policy_target FROM nodes WHERE id = 'n2'")" \
	"nodes sorted by id, with labels, policy_version, policy_target"
is "$(q '[.tables.policies[] | "\(.policy_id)/\(.version)/\(.max_actor_memory_mb)"] | join(" ")')" "p-0/1/512" "policies"
ca=$(pg_psql r1 "SELECT (extract(epoch FROM created_at) * 1000)::bigint FROM actors WHERE id = 'w-a'")
is "$(q '.tables.actors[0].created_at')" "$ca" "timestamps as integer ms since the epoch"
is "$(q '.tables | keys | join(" ")')" "actors commands failovers nodes placements policies" "the six tables"
lines() { printf '%s' "$1" | jq -j '. as $e | "actors placements nodes commands failovers policies" | split(" ")[] | "\(.):\($e.digests[.])\n"'; }
is "$(q '.digest')" "$(lines "$el" | sha256sum | cut -d' ' -f1)" \
	"digest = sha256 of the lines <table>:<its digest>, tables in order"
is "$(q '[.digests[] | test("^[0-9a-f]{64}$")] | [length, all] | @text')" "[6,true]" "a digest per table, 64 hex digits"

d1=$(q '.digest')
is "$("$COLLECT" "$CONN" 1 | jq -r .digest)" "$d1" "a second collect of the same database: the same digest"

req PATCH /v1/actors/w-b '{"replicas":1}'
idx=$(header X-Lattice-Index)
for _ in $(seq 1 100); do
	[ "$(pg_psql r1 'SELECT applied_index FROM lattice_state')" -ge "${idx:-0}" ] && break
	sleep 0.1
done
d2=$("$COLLECT" "$CONN" 1 | jq -r .digest)
ok "$([ "$STATUS" = 200 ] && [ -n "$d2" ] && [ "$d2" != "$d1" ]; echo $?)" "a scale through the API changes the digest ($STATUS)"

# any column counts: a label changed behind latticed's back
pg_psql r1 "UPDATE nodes SET labels = '{\"tier\":\"b\"}' WHERE id = 'n1'" >/dev/null
d3=$("$COLLECT" "$CONN" 1 | jq -r .digest)
ok "$([ -n "$d3" ] && [ "$d3" != "$d2" ]; echo $?)" "a changed column of one row changes the digest"

# Finished commands: counted and digested, not kept as rows.
pg_psql r1 "UPDATE commands SET status = 'acked' WHERE command_id = (SELECT min(command_id) FROM commands)" >/dev/null
el=$("$COLLECT" "$CONN" 1)
q() { printf '%s' "$el" | jq -r "$1"; }
is "$(q '[(.tables.commands | length), .commands_summary.total, .commands_summary.by_status.acked] | @text')" \
	"[$(pg_psql r1 "SELECT count(*) FROM commands WHERE status IN ('pending', 'published')"),$(pg_psql r1 'SELECT count(*) FROM commands'),1]" \
	"commands: the open ones as rows; commands_summary counts all, the acked one included"
is "$(q '[.tables.commands[] | .status] | unique | join(" ")')" "pending" "no finished command among the rows"
before=$el
pg_psql r1 "UPDATE commands SET error = 'x' WHERE status = 'acked'" >/dev/null
el=$("$COLLECT" "$CONN" 1)
is "$(jq -n --argjson a "$before" --argjson b "$el" -r '[$a.digests | keys[] | select($a.digests[.] != $b.digests[.])] | join(" ")')" \
	"commands" "a column of a finished command changes that table's digest, and only it"

# final.json: two reads of one database are two identical replicas
fin=$("$COLLECT" --final "$CONN" "$CONN")
is "$(printf '%s' "$fin" | jq -r '[.t, (.replicas | length), (.replicas[0].digest == .replicas[1].digest), .agents, .dead_nodes] | @text')" \
	'[0,2,true,{},["n9"]]' "collect_final: t, replicas, agents, dead_nodes"

out=$("$COLLECT" "host=$T_DIR/nowhere port=1 dbname=x user=postgres" 3 2>&1)
st=$?
ok "$([ $st = 1 ] && printf '%s' "$out" | grep -q 'replica 3: cannot connect to its database'; echo $?)" \
	"an unreachable database: exit 1 and a message naming the replica ($out)"
done_testing
