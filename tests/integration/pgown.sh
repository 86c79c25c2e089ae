#!/usr/bin/env bash
# pgown.sh — each replica projects into a database of its own (issue 7): a
# database recorded for another lattice group or another replica id is refused
# with a message saying whose it is, and left untouched; --pg-reset allows wiping
# it; a database written from an earlier data dir of the same replica is rebuilt
# from the log; and while a latticed projects into a database, a second one on the
# same database refuses to start (the writer's advisory lock).
. "$(dirname "$0")/lib.sh"
plan 26
lib_init

psql_r1() { pg_psql r1 "$1"; }
owner() { psql_r1 "SELECT applied_index || ' ' || instance_id || ' ' || coalesce(group_id, '-') || ' ' || coalesce(replica_id::text, '-') FROM lattice_state"; }
rows() { psql_r1 "SELECT (SELECT count(*) FROM nodes) || ' ' || (SELECT count(*) FROM events)"; }

# other TAG FLAGS...: starts another latticed on r1's database, with the data dir
# $T_DIR/TAG/data, and waits until it exits (OTHER_EXIT: its status) or serves
# (it is then stopped with SIGTERM; OTHER_EXIT=served). Its log: $T_DIR/TAG.log.
OTHER_EXIT=
other() {
	local tag=$1 http pid i st
	shift
	http=$(free_port)
	"$LATTICED" --listen "127.0.0.1:$http" --data-dir "$T_DIR/$tag/data" --pg "$(cat "$T_DIR/r1/conninfo")" \
		--schema-dir "$SCHEMA_DIR" --heartbeat-timeout-ms 0 "$@" >"$T_DIR/$tag.log" 2>&1 &
	pid=$!
	OTHER_EXIT=timeout
	for i in $(seq 1 300); do
		st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
		if [ -z "$st" ] || [ "$st" = Z ]; then
			wait "$pid"
			OTHER_EXIT=$?
			return
		fi
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/readyz")" = 200 ]; then
			kill -TERM "$pid"
			wait "$pid"
			OTHER_EXIT=served
			return
		fi
		sleep 0.1
	done
	kill -9 "$pid"
	wait "$pid"
}

lattice_start r1
R1_RAFT=127.0.0.1:$(cat "$T_DIR/r1/raft_port")
for i in 1 2 3; do
	req POST /v1/nodes "{\"id\":\"n$i\",\"region\":\"eu\",\"cpu_capacity\":1000,\"memory_mb\":1000}"
done
is "$STATUS" 201 "r1 registered three nodes"
group=$(jq -r .group_id "$T_DIR/r1/data/replica.json")
instance=$(jq -r .instance_id "$T_DIR/r1/data/replica.json")
is "${#group}" 32 "replica.json records a group id (32 hex digits)"
lattice_stop
before=$(owner)
is "$before" "$(psql_r1 'SELECT applied_index FROM lattice_state') $instance $group 1" \
	"lattice_state records r1's instance id, group id and replica id"

# 1. Another group (another raft address, so another group id) is refused.
other g2 --id 1 --raft-address "127.0.0.1:$(free_port)" --bootstrap
is "$OTHER_EXIT" 1 "a replica of another group is refused (exit 1)"
grep -q "belongs to replica 1 of another lattice group (group $group" "$T_DIR/g2.log" &&
	grep -q -- "--pg-reset" "$T_DIR/g2.log"
ok $? "the refusal says whose the database is and how to proceed"
is "$(owner) $(rows)" "$before 3 3" "the database of another group is left untouched"

# 2. Another replica id of the same group (same lattice, same raft address).
other rep2 --id 2 --raft-address "$R1_RAFT" --bootstrap
is "$OTHER_EXIT" 1 "replica 2 of the same group is refused (exit 1)"
grep -q "belongs to replica 1 of this lattice group" "$T_DIR/rep2.log" && grep -q "not to replica 2" "$T_DIR/rep2.log"
ok $? "the refusal names replica 1 and replica 2"
is "$(owner) $(rows)" "$before 3 3" "... and the database is untouched"

# 3. --pg-reset: the other group may take it over.
other g2 --id 1 --raft-address "127.0.0.1:$(free_port)" --bootstrap --pg-reset
is "$OTHER_EXIT" served "with --pg-reset, the other group's replica starts on it"
grep -q -- "--pg-reset: database \"r1\" belongs to replica 1 of another lattice group" "$T_DIR/g2.log"
ok $? "it logs whose database it wiped"
g2=$(jq -r .group_id "$T_DIR/g2/data/replica.json")
is "$(psql_r1 'SELECT group_id FROM lattice_state') $(rows)" "$g2 0 0" "the database now belongs to it; r1's rows are gone"

# ... and now r1 is the stranger: refused, then taken back with --pg-reset.
lattice_start_once r1
is "$?" 1 "r1 is refused the database the other group took"
grep -q "belongs to replica 1 of another lattice group (group $g2" "$T_DIR/r1/latticed.log"
ok $? "r1's log names the other group"
lattice_start r1 --pg-reset
for _ in $(seq 1 100); do [ "$(rows)" = "3 3" ] && break; sleep 0.1; done
is "$(rows)" "3 3" "r1 with --pg-reset rebuilds its rows from its log"
lattice_stop

# 4. The same replica with a new data dir (the old one wiped): rebuilt from the new
# log, not refused.
other r1new --id 1 --raft-address "$R1_RAFT" --bootstrap
is "$OTHER_EXIT" served "the same group and replica id with a new data dir starts"
grep -q "was written by an earlier data dir of this replica (instance $instance" "$T_DIR/r1new.log"
ok $? "it logs that it emptied the database of its earlier data dir"
is "$(psql_r1 'SELECT instance_id FROM lattice_state') $(rows)" "$(jq -r .instance_id "$T_DIR/r1new/data/replica.json") 0 0" \
	"the database was emptied and holds the new data dir's (empty) log"
# r1's own data dir is an earlier one now, too: it takes the database back and
# rebuilds it from its log.
lattice_start r1
for _ in $(seq 1 100); do [ "$(rows)" = "3 3" ] && break; sleep 0.1; done
is "$(psql_r1 'SELECT instance_id FROM lattice_state') $(rows)" "$instance 3 3" "r1 is back, rebuilt from its log"

# 5. A data dir from before group ids: the group id is computed and written once.
lattice_stop
jq 'del(.group_id)' "$T_DIR/r1/data/replica.json" >"$T_DIR/replica.json" && mv "$T_DIR/replica.json" "$T_DIR/r1/data/replica.json"
lattice_start r1
is "$(jq -r .group_id "$T_DIR/r1/data/replica.json")" "$group" "a replica.json without group_id gets the same group id written"

# 6. Two latticed on one database: the second refuses at start (the writer's
# advisory lock), whatever its group; the first goes on unharmed.
before=$(owner)
other twin --id 1 --raft-address "$R1_RAFT" --bootstrap
ok "$([ "$OTHER_EXIT" != served ] && [ "$OTHER_EXIT" != timeout ] && [ "$OTHER_EXIT" != 0 ]; echo $?)" \
	"a second latticed on r1's database (same group and replica, another data dir) exits non-zero ($OTHER_EXIT)"
grep -q "another latticed is projecting into database \"r1\"" "$T_DIR/twin.log"
ok $? "it says another latticed projects into the database"
other twin2 --id 1 --raft-address "127.0.0.1:$(free_port)" --bootstrap --pg-reset
grep -q "another latticed is projecting into database \"r1\"" "$T_DIR/twin2.log"
ok "$([ "$OTHER_EXIT" = 1 ]; echo $?)" "even with --pg-reset, a database another latticed projects into is refused ($OTHER_EXIT)"
is "$(owner) $(rows)" "$before 3 3" "the first latticed's database is untouched"
req POST /v1/nodes '{"id":"n4","region":"eu","cpu_capacity":1000,"memory_mb":1000}'
is "$STATUS" 201 "the first latticed still takes writes"
req GET "/v1/nodes/n4?min_index=$(header X-Lattice-Index)"
is "$STATUS" 200 "... and projects them"

done_testing
