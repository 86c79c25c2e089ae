#!/usr/bin/env bash
# openapi.sh — checks api/openapi.yaml (TAP):
#   1. every route in controller/api.c's route table is in openapi.yaml with the
#      same method and path, and openapi.yaml describes no route the server lacks
#      (no network, no node needed);
#   2. a real OpenAPI linter, Redocly CLI (pinned below), finds no error with the
#      rules in api/redocly.yaml (warnings are printed but pass).
# The linter is installed once with npm into a cache outside the tree,
# ${XDG_CACHE_HOME:-$HOME/.cache}/lattice-openapi (override: LATTICE_OPENAPI_CACHE);
# the first install downloads about 5 MB from the npm registry. Without node and
# npm the lint point is skipped (a failure in strict mode, CI=true: see
# tests/lib/tap.sh); everything else still runs.
#
# Run by hand: bash tests/integration/openapi.sh
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# shellcheck source=tests/lib/tap.sh
. "$top_srcdir/tests/lib/tap.sh"
# shellcheck source=tests/lib/npm.sh
. "$top_srcdir/tests/lib/npm.sh"

export LC_ALL=C
REDOCLY_VERSION=2.77.0
API_C=$top_srcdir/controller/api.c
SPEC=$top_srcdir/api/openapi.yaml
CONFIG=$top_srcdir/api/redocly.yaml

[ -f "$API_C" ] || bail "$API_C not found"
[ -f "$SPEC" ] || bail "$SPEC not found"

# "METHOD /path" for each entry of `static const struct route routes[]`.
server_routes() {
	sed -n '/^static const struct route routes\[\] *= *{/,/^};/p' "$API_C" |
		grep -o '{ *"[A-Z]*" *, *"/[^"]*"' |
		sed 's/{ *"\([A-Z]*\)" *, *"\([^"]*\)"/\1 \2/'
}

# "METHOD /path" for each operation under the top-level `paths:` of the YAML
# (paths at two spaces, methods at four, as the file is written); path
# parameters are normalised to {id}.
spec_routes() {
	awk '
		/^paths:[ \t]*$/ { inpaths = 1; next }
		/^[^ \t#]/ { inpaths = 0 }
		!inpaths { next }
		/^  [^ #]/ {
			p = $1; sub(/:$/, "", p); gsub(/["\047]/, "", p); next
		}
		/^    (get|put|post|delete|patch|head|options|trace):/ {
			m = $1; sub(/:$/, "", m); print toupper(m), p
		}
	' "$SPEC" | sed 's/{[^}]*}/{id}/g'
}

mapfile -t SERVER < <(server_routes | sort -u)
mapfile -t DOCUMENTED < <(spec_routes | sort -u)

plan $((5 + ${#SERVER[@]}))

[ ${#SERVER[@]} -gt 0 ]
ok $? "controller/api.c route table parsed (${#SERVER[@]} routes)"
[ ${#DOCUMENTED[@]} -gt 0 ]
ok $? "api/openapi.yaml paths parsed (${#DOCUMENTED[@]} operations)"
grep -Eq '^openapi: *["'\'']?3\.1\.[0-9]+' "$SPEC"
ok $? "api/openapi.yaml is OpenAPI 3.1"

for r in "${SERVER[@]}"; do
	printf '%s\n' "${DOCUMENTED[@]}" | grep -Fxq -- "$r"
	ok $? "route $r is in api/openapi.yaml"
done

extra=$(comm -13 <(printf '%s\n' "${SERVER[@]}") <(printf '%s\n' "${DOCUMENTED[@]}"))
[ -z "$extra" ]
ok $? "api/openapi.yaml describes no route the server lacks"
[ -n "$extra" ] && printf '%s\n' "$extra" | sed 's/^/#   not in controller\/api.c: /'

# ---- the linter --------------------------------------------------------------------

lint_skip() { skip_point "$*" "redocly lint api/openapi.yaml"; }

node_ok() {
	# Redocly CLI 2.x wants Node.js >= 20.19 (20.x) or >= 22.12.
	node -e '
		const [a, b] = process.versions.node.split(".").map(Number);
		process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1);'
}

run_lint() {
	local cache bin log rc
	cache=$(npm_cache openapi "${LATTICE_OPENAPI_CACHE:-}")
	bin=$cache/node_modules/.bin/redocly
	npm_pinned "$cache" "@redocly/cli@$REDOCLY_VERSION"
	rc=$?
	if [ $rc -ne 0 ] || [ ! -x "$bin" ]; then
		ok 1 "redocly lint: npm install @redocly/cli@$REDOCLY_VERSION into $cache failed (exit $rc)"
		return
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/lattice-openapi.XXXXXX")
	# Exits non-zero on errors only; warnings are listed and pass.
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
		"$bin" lint --config "$CONFIG" "$SPEC" >"$log" 2>&1
	rc=$?
	# Drop the CLI's boxed banners (e.g. Node.js end-of-life notices).
	grep -vF -e '║' -e '╔' -e '╚' "$log" | grep -v '^[[:space:]]*$' | sed 's/^/#   /'
	rm -f "$log"
	ok $rc "redocly lint api/openapi.yaml (@redocly/cli $REDOCLY_VERSION, config api/redocly.yaml)"
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	lint_skip "node and npm are needed to run the linter"
elif ! node_ok; then
	lint_skip "Node.js $(node --version) is older than Redocly CLI $REDOCLY_VERSION supports"
else
	run_lint
fi

done_testing
