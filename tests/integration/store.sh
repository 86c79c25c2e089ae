#!/usr/bin/env bash
# store.sh — runs test_store (store, proj, query) against a throwaway PostgreSQL.
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/servers.sh"

[ -x "$PGBIN/initdb" ] || skip_all "PostgreSQL server binaries not found in $PGBIN"
trap servers_cleanup EXIT
trap 'exit 1' INT TERM HUP

pg_start || bail "cannot start PostgreSQL"
LATTICE_TEST_PG=$(pg_createdb lattice_store) || bail "createdb failed"
export LATTICE_TEST_PG
export LATTICE_SCHEMA_DIR="$top_srcdir/schema"
export LATTICE_PG_DIR="$PG_DIR" PGBIN
"$top_builddir/tests/integration/test_store"
exit $?
