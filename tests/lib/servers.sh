# servers.sh — throwaway PostgreSQL and nats-server for tests (sourced).
#
# pg_start: initdb + start a PostgreSQL that listens only on a Unix socket in a
#   fresh temp dir; sets PG_DIR, PG_CONNINFO (for database "postgres") and PG_PID.
#   PG_LISTEN=127.0.0.1 (with PG_PORT a free port) makes it listen on TCP too.
# pg_createdb NAME: creates a database; prints its conninfo.
# pg_stop / pg_restart / pg_kill: stop it cleanly, restart it, or SIGKILL it.
# nats_start: a nats-server with JetStream on 127.0.0.1 (a free port; its store in
#   a fresh temp dir); sets NATS_URL, NATS_PID, NATS_DIR. NATS_PORT is kept, so
#   nats_restart comes back on the same URL with the same store.
# nats_stop / nats_restart / nats_kill: stop it (SIGTERM), restart it, SIGKILL it.
# servers_cleanup: stops whatever was started (call from an EXIT trap).
# pg_use NAME: more than one server. Every function here acts on the current
#   server (PG_DIR, PG_PID, PG_CONNINFO); pg_use makes server NAME current
#   ("main" is the first), and pg_start starts it when it is not running yet. So
#   a test can stop, restart or kill one database's server and not the others'.
# As root, PostgreSQL refuses to run, so it runs as the postgres user.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_PID=
PG_PORT=5432 # each server has its own socket dir: they can share the port number
PG_CONNINFO=
PG_NAME=main
declare -gA PG_SRV_DIR=() PG_SRV_PID=() # other servers than the current one

pg_use() {
	PG_SRV_DIR[$PG_NAME]=$PG_DIR
	PG_SRV_PID[$PG_NAME]=$PG_PID
	PG_NAME=$1
	PG_DIR=${PG_SRV_DIR[$1]:-}
	PG_PID=${PG_SRV_PID[$1]:-}
	PG_CONNINFO=
	[ -n "$PG_DIR" ] && PG_CONNINFO="host=$PG_DIR port=$PG_PORT user=postgres dbname=postgres"
	return 0
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
	[ -x "$PGBIN/initdb" ] || { echo "# initdb not found in $PGBIN" >&2; return 1; }
	PG_DIR=$(mktemp -d /tmp/lattice-pg.XXXXXX) || return 1
	chmod 755 "$PG_DIR"
	[ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
	as_pg "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
	pg_ctl_start
}

pg_ctl_start() {
	as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w -t 60 \
		-o "-k $PG_DIR -p $PG_PORT -c listen_addresses='${PG_LISTEN:-}' -c fsync=off -c max_connections=200" \
		start >/dev/null 2>&1 || { cat "$PG_DIR/pg.log" >&2; return 1; }
	PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
	PG_CONNINFO="host=$PG_DIR port=$PG_PORT user=postgres dbname=postgres"
}

pg_createdb() {
	"$PGBIN/psql" -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres \
		-c "CREATE DATABASE \"$1\"" >/dev/null || return 1
	echo "host=$PG_DIR port=$PG_PORT user=postgres dbname=$1"
}

# pg_psql DB SQL: runs SQL, prints unaligned tuples only
pg_psql() {
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}

pg_stop() {
	[ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
		as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1
	return 0
}

pg_restart() {
	pg_stop && pg_ctl_start
}

# pg_children PID: the processes whose parent is PID (from /proc, as procps may
# be missing).
pg_children() {
	local f pid comm state ppid rest
	for f in /proc/[0-9]*/stat; do
		read -r pid comm state ppid rest 2>/dev/null <"$f" || continue
		[ "$ppid" = "$1" ] && printf '%s ' "$pid"
	done
}

# pg_kill: a crash: SIGKILL to the postmaster and every process it started, all
# at once (each child is its own session, so no group signal reaches them), so
# nothing gets to write out what it holds (WAL buffers that an asynchronous
# commit left in shared memory are lost). Waits until all are gone.
pg_kill() {
	[ -n "${PG_PID:-}" ] || return 0
	local pids p
	pids="$PG_PID $(pg_children "$PG_PID")"
	kill -9 $pids 2>/dev/null
	for _ in $(seq 1 300); do
		local alive=
		for p in $pids; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	rm -f "$PG_DIR/data/postmaster.pid" "$PG_DIR/.s.PGSQL.$PG_PORT" "$PG_DIR/.s.PGSQL.$PG_PORT.lock"
	return 0
}

NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
NATS_DIR=
NATS_PID=
NATS_PORT=
NATS_URL=

nats_start() {
	[ -x "$NATS_SERVER" ] || { echo "# nats-server not found ($NATS_SERVER)" >&2; return 1; }
	[ -n "$NATS_DIR" ] || NATS_DIR=$(mktemp -d /tmp/lattice-nats.XXXXXX) || return 1
	[ -n "$NATS_PORT" ] || NATS_PORT=$(free_port) || return 1
	"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$NATS_DIR/js" \
		-l "$NATS_DIR/nats.log" ${NATS_ARGS:-} &
	NATS_PID=$!
	local i
	for i in $(seq 1 200); do
		grep -q 'Server is ready' "$NATS_DIR/nats.log" 2>/dev/null && break
		kill -0 "$NATS_PID" 2>/dev/null || { cat "$NATS_DIR/nats.log" >&2; NATS_PID=; return 1; }
		sleep 0.05
	done
	grep -q 'Server is ready' "$NATS_DIR/nats.log" || { cat "$NATS_DIR/nats.log" >&2; return 1; }
	NATS_URL=nats://127.0.0.1:$NATS_PORT
}

nats_stop() {
	[ -n "$NATS_PID" ] || return 0
	kill "$NATS_PID" 2>/dev/null
	local i
	for i in $(seq 1 200); do kill -0 "$NATS_PID" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$NATS_PID" 2>/dev/null
	wait "$NATS_PID" 2>/dev/null
	NATS_PID=
	mv -f "$NATS_DIR/nats.log" "$NATS_DIR/nats.log.$(date +%s%N)" 2>/dev/null
	return 0
}

nats_kill() {
	[ -n "$NATS_PID" ] || return 0
	kill -9 "$NATS_PID" 2>/dev/null
	wait "$NATS_PID" 2>/dev/null
	NATS_PID=
	mv -f "$NATS_DIR/nats.log" "$NATS_DIR/nats.log.$(date +%s%N)" 2>/dev/null
	return 0
}

nats_restart() {
	nats_stop && nats_start
}

servers_cleanup() {
	local name
	if [ -n "$NATS_PID" ]; then nats_kill; fi
	[ -n "$NATS_DIR" ] && rm -rf "$NATS_DIR"
	NATS_DIR=
	pg_use "$PG_NAME" # records the current one with the others
	for name in "${!PG_SRV_DIR[@]}"; do
		pg_use "$name"
		if [ -n "$PG_DIR" ]; then
			as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1
			rm -rf "$PG_DIR"
			PG_DIR=
		fi
	done
	pg_use main
}

# free_port: prints a TCP port on 127.0.0.1 nobody listens on now, below the
# kernel's ephemeral range (32768-60999) so no client socket can take it.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$(( (RANDOM % 12000) + 20000 ))
		(exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# nats_pub SUBJECT PAYLOAD...: publishes each PAYLOAD on SUBJECT (core NATS, no
# headers) over the server's text protocol, and returns once the server has
# processed them (PING answered by PONG). Tests use it to play agents that send
# what they like: malformed, oversized, spoofed messages.
nats_pub() {
	local subject=$1 line p
	shift
	exec 7<>"/dev/tcp/127.0.0.1/$NATS_PORT" || return 1
	read -r -t 5 line <&7 # INFO
	{
		printf 'CONNECT {"verbose":false,"pedantic":false}\r\n'
		for p in "$@"; do
			printf 'PUB %s %d\r\n%s\r\n' "$subject" "$(printf '%s' "$p" | wc -c)" "$p"
		done
		printf 'PING\r\n'
	} >&7
	while read -r -t 10 line <&7; do
		case $line in PONG*) break ;; -ERR*) echo "# nats: $line" >&2; exec 7>&-; return 1 ;; esac
	done
	exec 7>&-
}

# nats_req SUBJECT PAYLOAD: a request (core NATS, reply to an inbox); prints the
# reply's payload (one line: JetStream's API answers are compact JSON). Returns
# 1 when no reply came within 10 s.
nats_req() {
	local subject=$1 payload=$2 line
	exec 7<>"/dev/tcp/127.0.0.1/$NATS_PORT" || return 1
	read -r -t 5 line <&7 # INFO
	printf 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.lattice_test 1\r\nPUB %s _INBOX.lattice_test %d\r\n%s\r\n' \
		"$subject" "$(printf '%s' "$payload" | wc -c)" "$payload" >&7
	while read -r -t 10 line <&7; do
		case $line in
		MSG*) read -r -t 10 line <&7; printf '%s\n' "${line%$'\r'}"; exec 7>&-; return 0 ;;
		PING*) printf 'PONG\r\n' >&7 ;;
		-ERR*) echo "# nats: $line" >&2; break ;;
		esac
	done
	exec 7>&-
	return 1
}
