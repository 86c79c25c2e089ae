#!/usr/bin/env bash
# config.sh — latticed's options: --help documents every one, a config file sets
# them, flags override the file, and bad options stop latticed with a message.
. "$(dirname "$0")/lib.sh"
plan 23

help=$(mktemp /tmp/lattice-help.XXXXXX)
"$LATTICED" --help >"$help" 2>&1
is "$?" 0 "--help exits 0"
missing=
for opt in config listen data-dir pg id raft-address bootstrap heartbeat-interval-ms heartbeat-timeout-ms \
	max-error-count log-level http-threads pg-read-threads pg-read-timeout-ms snapshot-threshold snapshot-trailing read-wait-max-ms \
	write-timeout-ms schema-dir lattice version; do
	grep -q -- "--$opt" "$help" || missing="$missing $opt"
done
is "$missing" "" "--help documents every option"
rm -f "$help"
"$LATTICED" --version | grep -q '^latticed [0-9]'
ok $? "--version prints the version"

bad_opt() { # NAME EXPECTED_TEXT ARGS...: latticed refuses with status 2 and says why
	local name=$1 want=$2
	shift 2
	local out rc
	out=$("$LATTICED" "$@" 2>&1)
	rc=$?
	if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q -- "$want"; then ok 0 "$name"
	else ok 1 "$name"; diag "status $rc, output: $out"; fi
}
bad_opt "an unknown flag is refused" "unknown option '--nope'" --nope
bad_opt "a non-integer value is refused" "--id: 'x' is not an integer" --id x
bad_opt "an out-of-range value is refused" "--http-threads: '257' is not an integer between 0 and 256" --http-threads 257
bad_opt "a bad log level is refused" "--log-level: 'loud'" --log-level loud
bad_opt "a bad listen address is refused" "--listen: 'nowhere' is not HOST:PORT" --listen nowhere
bad_opt "a flag without its value is refused" "missing value for option" --pg
bad_opt "a nice value outside -20..19 is refused" "--loop-nice: '20' is not an integer between -20 and 19" --loop-nice 20
lib_init
cf=$(mktemp /tmp/lattice-conf.XXXXXX)
printf 'bogus = 1\n' >"$cf"
bad_opt "an unknown name in the config file is refused with file and line" "$cf:1: unknown option 'bogus'" --config "$cf"
printf '# comment\n\nlisten 127.0.0.1:1\n' >"$cf"
bad_opt "a malformed config line is refused with its line number" "$cf:3: expected" --config "$cf"
missing=$(mktemp -u /tmp/lattice-no-such-conf.XXXXXX)
bad_opt "a missing config file is refused" "cannot open config file $missing: No such file" --config "$missing"
cdir=$(mktemp -d /tmp/lattice-conf-dir.XXXXXX)
bad_opt "a directory given as the config file is refused" "cannot open config file $cdir: it is a directory" --config "$cdir"
rmdir "$cdir"

# A config file that sets everything needed to run; a flag overrides one value.
mkdir -p "$T_DIR/cf"
pg_createdb cf >"$T_DIR/cf/conninfo"
http=$(free_port); http2=$(free_port); raft=$(free_port)
cat >"$cf" <<CONF
# a replica's configuration
listen = 127.0.0.1:$http
data-dir = $T_DIR/cf/data
pg = "$(cat "$T_DIR/cf/conninfo")"
raft-address = 127.0.0.1:$raft
bootstrap = true
schema-dir = $SCHEMA_DIR
heartbeat-timeout-ms = 0
log-level = debug
CONF
"$LATTICED" --config "$cf" --listen "127.0.0.1:$http2" >"$T_DIR/cf/log" 2>&1 &
LATTICED_PID=$!
API="http://127.0.0.1:$http2"
for _ in $(seq 1 200); do curl -sf "$API/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
req GET /readyz
is "$STATUS" 200 "latticed runs from a config file, on the port the flag gave"
curl -s -o /dev/null "http://127.0.0.1:$http/healthz" 2>/dev/null
ok $([ $? -ne 0 ] && echo 0 || echo 1) "the file's listen address was overridden by the flag"
grep -q " debug " "$T_DIR/cf/log"
ok $? "the file's log-level (debug) applies"
# --loop-nice (default -5): the loop is the main thread (its tid is the pid).
nice_of() { awk '{ sub(/^.*\) /, ""); print $17 }' "/proc/$1/task/$2/stat"; }
is "$(nice_of "$LATTICED_PID" "$LATTICED_PID")" -5 "the Raft loop thread runs at nice -5 (--loop-nice's default)"
# The API's workers (libmicrohttpd names them) stay at 0; libuv's pool, started
# later by the loop for Raft's disk work, inherits its value.
workers=$(for t in /proc/"$LATTICED_PID"/task/*; do
	[ "$(cat "$t/comm" 2>/dev/null)" = MHD-worker ] && nice_of "$LATTICED_PID" "${t##*/}"
done | sort | uniq -c | awk '{printf "%s%s at %s", (NR > 1 ? ", " : ""), $1, $2}')
[[ "$workers" =~ ^[1-9][0-9]*\ at\ 0$ ]]
ok $? "the API's worker threads stay at nice 0 ($workers)"
grep -q "the Raft loop thread runs at nice -5" "$T_DIR/cf/log"
ok $? "the log says the loop thread's nice value"
lattice_stop
# Without CAP_SYS_NICE (and RLIMIT_NICE 0) the raise is refused: latticed warns
# with what would allow it, and runs with the loop at 0.
setpriv --inh-caps -sys_nice --bounding-set -sys_nice "$LATTICED" --config "$cf" --listen "127.0.0.1:$http2" \
	>"$T_DIR/cf/log2" 2>&1 &
LATTICED_PID=$!
for _ in $(seq 1 200); do curl -sf "$API/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
req GET /readyz
is "$STATUS $(nice_of "$LATTICED_PID" "$LATTICED_PID")" "200 0" "without CAP_SYS_NICE latticed runs, its loop thread at nice 0"
grep -q "the Raft loop thread stays at nice 0: --loop-nice -5 was refused (Permission denied); allow it with CAP_SYS_NICE or RLIMIT_NICE (systemd: LimitNICE=-5)" "$T_DIR/cf/log2"
ok $? "... and its log says why and what allows it" || diag "$(grep -i nice "$T_DIR/cf/log2")"
lattice_stop
is "$LATTICED_EXIT" 0 "SIGTERM stops it with status 0"
rm -f "$cf"
done_testing
