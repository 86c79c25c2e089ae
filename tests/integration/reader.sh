#!/usr/bin/env bash
# reader.sh — the migrations make lattice_reader, a role for dashboards
# (schema/007_reader.sql, docs/database.md "A read-only role"): a login role in
# it reads the api_* views and the state tables, and cannot write any of them,
# read link values or snapshot data, or call the projection's functions; a
# second database of the same PostgreSQL cluster (another replica) migrates
# with the role already there and grants it its own objects; latticed's user
# without CREATEROLE still starts (the role is then left for an operator).
. "$(dirname "$0")/lib.sh"
plan 16
lib_init
lattice_start r2 # (req talks to the last one started: r1)
lattice_start r1

req POST /v1/nodes '{"id":"n1","region":"eu","cpu_capacity":1000,"memory_mb":1024}'
s1=$STATUS
req POST /v1/actors '{"id":"w","module":"m","cpu_required":10,"memory_required_mb":10}'
s2=$STATUS
ok "$([ "$s1$s2" = 201201 ]; echo $?)" "fixtures: a node and an actor ($s1 $s2)"
idx=$(header X-Lattice-Index)
for _ in $(seq 1 100); do
	[ "$(pg_psql r1 'SELECT applied_index FROM lattice_state')" -ge "${idx:-0}" ] && break
	sleep 0.1
done

is "$(pg_psql r1 "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'lattice_reader'")" f \
	"the migrations made lattice_reader, a role that cannot log in itself"
pg_psql r1 "CREATE ROLE t_dash LOGIN IN ROLE lattice_reader" >/dev/null
ok $? "a dashboard's login role in lattice_reader"
dash() { # DB SQL: as t_dash; prints the result, or the error
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U t_dash -d "$1" -c "$2" 2>&1
}
is "$(dash r1 "SELECT doc->>'id' FROM api_nodes")" n1 "it reads api_nodes"
is "$(dash r1 "SELECT id || ':' || (SELECT count(*) FROM placements WHERE actor_id = a.id) FROM actors a")" w:1 \
	"... and the state tables"
is "$(dash r1 "SELECT count(*) FROM api_actors, api_commands, api_failovers, api_events, api_policies, api_providers, api_policy_versions" >/dev/null && echo ok)" ok \
	"... every api_* view but api_links"
for sql in "INSERT INTO nodes (id, region) VALUES ('x', 'eu')" "UPDATE actors SET replicas = 5" "DELETE FROM events" \
	"UPDATE lattice_state SET applied_index = 0"; do
	out=$(dash r1 "$sql")
	case $out in *"permission denied"*) ;; *) echo "# $sql: $out"; bad=1 ;; esac
done
ok "${bad:-0}" "it cannot insert, update or delete (permission denied on each)"
case $(dash r1 "SELECT lattice_reset()") in *"permission denied"*) r=0 ;; *) r=1 ;; esac
ok $r "the projection's functions fail for it (permission denied)"
case $(dash r1 'SELECT "values" FROM links') in *"permission denied"*) r=0 ;; *) r=1 ;; esac
ok $r "link values are not readable"
case $(dash r1 "SELECT doc FROM api_links") in *"permission denied"*) r=0 ;; *) r=1 ;; esac
ok $r "... nor api_links (its doc holds them)"
case $(dash r1 "SELECT state_data FROM snapshots") in *"permission denied"*) r=0 ;; *) r=1 ;; esac
ok $r "snapshot data is not readable; its other columns are: $(dash r1 'SELECT count(actor_id) FROM snapshots')"
# docs/database.md's Grafana queries run as it (Grafana's macros filled in).
awk '/^### Grafana/{g=1} g && /^```sql/{s=1; next} s && /^```/{exit} s' "$top_srcdir/docs/database.md" |
	sed -e "s/\$__timeGroupAlias(\([a-z_]*\), '1m')/date_trunc('minute', \1) AS time/" \
		-e "s/\$__timeFilter(\([a-z_]*\))/\1 > now() - interval '1 day'/" >"$T_DIR/grafana.sql"
nq=$(grep -c ';$' "$T_DIR/grafana.sql")
out=$("$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U t_dash -d r1 -f "$T_DIR/grafana.sql" 2>&1)
st=$?
ok "$([ $st = 0 ] && [ "$nq" -ge 6 ]; echo $?)" "docs/database.md's $nq Grafana queries run as a lattice_reader login ($(printf '%s' "$out" | tail -1))"
# r2's database migrated with the role already in the cluster: its own grants.
is "$(dash r2 "SELECT count(*) FROM api_nodes")" "$(pg_psql r2 'SELECT count(*) FROM api_nodes')" \
	"a second replica's database grants it too"

# latticed's user without CREATEROLE, the role not there yet: 007 says so
# (a warning in latticed's log) and latticed starts all the same.
for db in r1 r2; do pg_psql "$db" "DROP OWNED BY lattice_reader" >/dev/null; done
pg_psql postgres "DROP ROLE t_dash" >/dev/null && pg_psql postgres "DROP ROLE lattice_reader" >/dev/null &&
	pg_psql postgres "CREATE ROLE lt_user LOGIN" >/dev/null && pg_psql postgres "CREATE DATABASE r3 OWNER lt_user" >/dev/null
ok $? "the role dropped; a database owned by lt_user, a user without CREATEROLE"
mkdir -p "$T_DIR/r3"
echo "host=$PG_DIR port=$PG_PORT user=lt_user dbname=r3" >"$T_DIR/r3/conninfo"
free_port >"$T_DIR/r3/http_port"
free_port >"$T_DIR/r3/raft_port"
lattice_start r3
is "$(pg_psql r3 "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'lattice_reader') || ' ' || (SELECT count(*) FROM schema_migrations)")" \
	"0 $(ls "$top_srcdir"/schema/*.sql | wc -l)" "latticed as lt_user starts: every migration applied, lattice_reader left for an operator"
grep -q "lattice_reader not created: lt_user lacks CREATEROLE" "$T_DIR/r3/latticed.log"
ok $? "... and its log says so"
done_testing
