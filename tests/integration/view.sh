#!/usr/bin/env bash
# Nodes and actors are read from the applied model's view (controller/view.c,
# vactor.c; docs/api.md "Where reads come from"): every answer must equal what
# the replica's PostgreSQL shows (api_nodes, api_actors) once it has caught up —
# each object, whole pages, and pages under every filter — after creates,
# scaling, resource changes, migrations, cordons, drains and deletes, after a
# restart (the replay rebuilds it), and on a replica that joined by a Raft
# snapshot (a restore rebuilds it). And the view's X-Lattice-Index keeps
# read-your-writes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/group_lib.sh"
plan 20

lib_init
lattice_start a --snapshot-threshold 64 --snapshot-trailing 8

pg_doc() { # NAME SQL: rows of one JSON column, sorted compact
	"$PGBIN/psql" -X -At "$(cat "$T_DIR/$1/conninfo")" -c "$2" | jq -cS . | sort
}
# same NAME: every node and actor as GET answers them equals PostgreSQL's, once
# PostgreSQL shows the index the view answered at.
same() {
	local name=$1 api=${2:-$API} bad= id
	local idx
	idx=$(curl -s -D - -o /dev/null "$api/v1/nodes?limit=1" | awk 'tolower($1) == "x-lattice-index:" {print $2+0}')
	curl -s -o /dev/null "$api/v1/events?limit=1&min_index=$idx" # waits for PostgreSQL to show it
	for kind in nodes actors; do
		pg_doc "$name" "SELECT doc FROM api_$kind" >"$T_DIR/pg.$kind"
		: >"$T_DIR/view.$kind"
		for id in $(jq -r .id "$T_DIR/pg.$kind"); do
			curl -s "$api/v1/$kind/$id" | jq -cS . >>"$T_DIR/view.$kind"
		done
		sort -o "$T_DIR/view.$kind" "$T_DIR/view.$kind"
		cmp -s "$T_DIR/pg.$kind" "$T_DIR/view.$kind" || bad+=" $kind($(diff "$T_DIR/pg.$kind" "$T_DIR/view.$kind" | head -3 | cut -c1-300 | tr '\n' ' '))"
		# and the list, in pages of 7
		: >"$T_DIR/list.$kind"
		local after= page
		while :; do
			page=$(curl -s "$api/v1/$kind?limit=7${after:+&after=$after}")
			printf '%s' "$page" | jq -c '.items[]' | jq -cS . >>"$T_DIR/list.$kind"
			after=$(printf '%s' "$page" | jq -r '.next // empty')
			[ -n "$after" ] || break
		done
		sort -o "$T_DIR/list.$kind" "$T_DIR/list.$kind"
		cmp -s "$T_DIR/pg.$kind" "$T_DIR/list.$kind" || bad+=" list-$kind"
	done
	[ -z "$bad" ] && echo same || echo "differ:$bad"
}
# filtered NAME QUERY SQL-WHERE KIND: a filtered page equals PostgreSQL's rows
filtered() {
	local got want
	got=$(curl -s "$API/v1/$4?limit=1000&$2" | jq -c '[.items[].id]')
	want=$("$PGBIN/psql" -X -At "$(cat "$T_DIR/$1/conninfo")" -c "SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM api_$4 WHERE $3" | jq -c .)
	[ "$got" = "$want" ] && echo same || echo "differ: $got vs $want"
}

for i in 1 2 3 4 5 6; do
	r=$([ $i -le 3 ] && echo eu || echo us)
	req POST /v1/nodes "{\"id\":\"n$i\",\"region\":\"$r\",\"cpu_capacity\":4000,\"memory_mb\":8192,\"labels\":{\"tier\":\"t$((i % 2))\"},\"cpu_used\":$((i * 10))}"
done
for i in $(seq 1 12); do
	req POST /v1/actors "{\"id\":\"a$i\",\"module\":\"m\",\"cpu_required\":$((i * 10)),\"memory_required_mb\":64,\"replicas\":$((i % 3 + 1))}"
done
is "$(same a)" same "after creates: every node and actor, and every page, equals PostgreSQL's"
is "$(filtered a 'region=eu' "region = 'eu'" nodes) $(filtered a 'label=tier=t1' "labels @> '{\"tier\":\"t1\"}'" nodes) $(filtered a 'label=tier' "labels ? 'tier'" nodes)" \
	"same same same" "filters: region, label=value, label"
is "$(filtered a 'node=n2' "EXISTS (SELECT 1 FROM placements p WHERE p.actor_id = api_actors.id AND p.node_id = 'n2')" actors)" \
	same "actors ?node=n2"

req PATCH /v1/actors/a1 '{"replicas":3}'
req PATCH /v1/actors/a2 '{"replicas":1,"cpu_required":500}'
req POST /v1/actors/a3/migrate '{"target_node":"n6"}'
req DELETE /v1/actors/a4
req POST /v1/nodes/n1/cordon
req POST /v1/nodes/n2/drain
is "$(same a)" same "after scaling, a resource change, a migration, a delete, a cordon and a drain"
is "$(filtered a 'status=healthy' "status = 'healthy'" nodes)" same "?status=healthy"

# read-your-writes: a write's X-Lattice-Index, then the read at once
req POST /v1/actors '{"id":"ryw","module":"m","cpu_required":1,"memory_required_mb":1}'
widx=$(header X-Lattice-Index)
req GET /v1/actors/ryw
ok "$([ "$STATUS" = 200 ] && [ "$(header X-Lattice-Index)" -ge "$widx" ]; echo $?)" \
	"a created actor reads back at once (write at $widx, read at $(header X-Lattice-Index))"
req GET /v1/nodes/nope
is "$(err)" "404 not_found" "an unknown node: 404 not_found"
req GET '/v1/nodes?limit=2&after=n5'
is "$(jqr '[.items[].id, .next] | map(tostring) | join(" ")')" "n6 null" "a last page: no next"
req GET '/v1/nodes?limit=2'
is "$(jqr '[.items[].id, .next] | map(tostring) | join(" ")')" "n1 n2 n2" "a full page: next is its last id"

# many small writes, then a restart: the replay builds the view again
for i in $(seq 13 60); do req POST /v1/actors "{\"id\":\"a$i\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1}"; done
req DELETE /v1/nodes/n5
lattice_stop
lattice_start a --snapshot-threshold 64 --snapshot-trailing 8
is "$(same a)" same "after a restart (snapshots taken, the log replayed): equal"
req POST /v1/nodes/n1/uncordon
req PATCH /v1/actors/a13 '{"replicas":2}'
is "$(same a)" same "and after more writes"

# A replica that joins by a snapshot (the leader's log was compacted).
B_PORT=$(free_port); B_RAFT=$(free_port)
pg_createdb b >"$T_DIR/b.conninfo"; mkdir -p "$T_DIR/b"; cp "$T_DIR/b.conninfo" "$T_DIR/b/conninfo"
"$LATTICED" --id 2 --join "$API" --listen "127.0.0.1:$B_PORT" --raft-address "127.0.0.1:$B_RAFT" \
	--data-dir "$T_DIR/b/data" --pg "$(cat "$T_DIR/b.conninfo")" --schema-dir "$SCHEMA_DIR" \
	--heartbeat-timeout-ms 0 >>"$T_DIR/b/latticed.log" 2>&1 &
BPID=$!
LIB_PIDS+=("$BPID b")
BAPI=http://127.0.0.1:$B_PORT
for _ in $(seq 1 300); do curl -sf -o /dev/null "$BAPI/readyz" && break; sleep 0.1; done
widx=$(curl -s -D - -o /dev/null "$API/v1/nodes?limit=1" | awk 'tolower($1) == "x-lattice-index:" {print $2+0}')
curl -s -o /dev/null "$BAPI/v1/nodes?limit=1&min_index=$widx"
ok "$(grep -q 'snapshot' "$T_DIR/b/latticed.log"; echo $?)" "the joiner was caught up by a snapshot"
is "$(same b "$BAPI")" same "its view equals its PostgreSQL"
is "$(curl -s "$BAPI/v1/actors/a13" | jq -cS .)" "$(curl -s "$API/v1/actors/a13" | jq -cS .)" "and the leader's answer"
req POST /v1/actors '{"id":"late","module":"m","cpu_required":1,"memory_required_mb":1}'
widx=$(header X-Lattice-Index)
is "$(curl -s "$BAPI/v1/actors/late?min_index=$widx" | jq -r .id)" late "a write through the leader reads back on the joiner with min_index"
is "$(same b "$BAPI")" same "the joiner's view follows writes"
kill "$BPID"; wait "$BPID" 2>/dev/null; lib_forget "$BPID"

# A ?node= page walks the actors in id order, letting go of the view's lock
# every 4,096 (controller/view.c, VIEW_WALK_CHUNK) so the loop is never held
# for the whole walk: with 9,000 more actors, a node's page equals
# PostgreSQL's, and stays equal while writes keep changing the view (a walk
# that sees the view move starts again, or PostgreSQL answers).
# On a replica of its own: a lost its majority when b was stopped.
lattice_start c
port=${API##*:}
"$top_builddir/bench/bench_api" nodes "127.0.0.1:$port" 1000 8 >"$T_DIR/fill-nodes.txt"
"$top_builddir/bench/bench_api" actors "127.0.0.1:$port" 9000 8 >"$T_DIR/fill-actors.txt"
is "$(grep -o 'acked=[0-9]* errors=[0-9]*' "$T_DIR/fill-actors.txt")" "acked=9000 errors=0" "9,000 more actors created"
node=$(curl -s "$API/v1/actors?limit=1" | jq -r '.items[0].placements[0].node_id')
curl -s -o /dev/null "$API/v1/nodes?limit=1&consistent=true"
# paged KIND LIMIT: the pages, one after the other, hold PostgreSQL's rows in
# id order (pages cross the view's runs of 128: controller/ovec.h)
paged() {
	local after= page idx
	idx=$(curl -s -D - -o /dev/null "$API/v1/nodes?limit=1" | awk 'tolower($1) == "x-lattice-index:" {print $2+0}')
	curl -s -o /dev/null "$API/v1/events?limit=1&min_index=$idx"
	: >"$T_DIR/paged"
	while :; do
		page=$(curl -s "$API/v1/$1?limit=$2${after:+&after=$after}")
		printf '%s' "$page" | jq -c '.items[]' | jq -cS . >>"$T_DIR/paged"
		after=$(printf '%s' "$page" | jq -r '.next // empty')
		[ -n "$after" ] || break
	done
	"$PGBIN/psql" -X -At "$(cat "$T_DIR/c/conninfo")" -c "SELECT doc FROM api_$1 ORDER BY id COLLATE \"C\"" | jq -cS . >"$T_DIR/pgpaged"
	cmp -s "$T_DIR/pgpaged" "$T_DIR/paged" && echo same || echo "differ: $(wc -l <"$T_DIR/paged") vs $(wc -l <"$T_DIR/pgpaged") rows; $(diff "$T_DIR/pgpaged" "$T_DIR/paged" | head -2 | cut -c1-200 | tr '\n' ' ')"
}
is "$(paged nodes 100) $(paged actors 1000) $(paged actors 33)" "same same same" \
	"1,000+ nodes in pages of 100, 9,000+ actors in pages of 1,000 and of 33: every object, in id order, equals PostgreSQL's"
is "$(filtered c "node=$node" "EXISTS (SELECT 1 FROM placements p WHERE p.actor_id = api_actors.id AND p.node_id = '$node')" actors)" \
	same "a ?node= page over 9,000+ actors (three walks' worth of the lock) equals PostgreSQL's"
want=$(curl -s "$API/v1/actors?limit=1000&node=$node" | jq -c '[.items[].id]')
(for i in $(seq 1 400); do
	curl -s -o /dev/null -X POST "$API/v1/nodes/bench-node-000999/cordon"
	curl -s -o /dev/null -X POST "$API/v1/nodes/bench-node-000999/uncordon"
done) &
wpid=$!
bad=0
for i in $(seq 1 30); do
	got=$(curl -s "$API/v1/actors?limit=1000&node=$node" | jq -c '[.items[].id]')
	[ "$got" = "$want" ] || { bad=$((bad + 1)); diag "during writes: $got"; }
done
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
is "$bad" 0 "30 such pages while the view changes under them: each the node's actors, in order"

done_testing
