#!/usr/bin/env bash
# snapshot.sh — runs test_snapshot (a snapshot installed through fsm, its
# projection rebuilt) against a throwaway PostgreSQL.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"

[ -x "$PGBIN/initdb" ] || skip_all "PostgreSQL server binaries not found in $PGBIN"
trap servers_cleanup EXIT
trap 'exit 1' INT TERM HUP

pg_start || bail "cannot start PostgreSQL"
LATTICE_TEST_PG=$(pg_createdb lattice_log) || bail "createdb failed"
LATTICE_TEST_PG2=$(pg_createdb lattice_snap) || bail "createdb failed"
export LATTICE_TEST_PG LATTICE_TEST_PG2
export LATTICE_SCHEMA_DIR="$top_srcdir/schema"
"$top_builddir/tests/integration/test_snapshot"
exit $?
