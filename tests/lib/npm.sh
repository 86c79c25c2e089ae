# shellcheck shell=bash
# npm.sh — npm packages at pinned versions for the tests that run Node.js
# (sourced by protocol.sh and browser.sh): installed once into a cache outside
# the tree, one install at a time even across concurrent runs.
#
# npm_cache NAME [OVERRIDE]  prints the cache directory: OVERRIDE when set, else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lattice-NAME.
# npm_pinned DIR PKG@VERSION...  installs the packages at exactly these versions
#   into DIR unless they are there already; npm's output goes to the TAP stream
#   as comments. Returns npm's exit status (0 when nothing was to do).

npm_cache() {
	if [ -n "${2:-}" ]; then
		echo "$2"
	elif [ -n "${XDG_CACHE_HOME:-}" ] || [ -n "${HOME:-}" ]; then
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/lattice-$1"
	else
		echo "${TMPDIR:-/tmp}/lattice-$1-$(id -u)"
	fi
}

npm_pinned() {
	local dir=$1 log rc
	shift
	mkdir -p "$dir" || return 1
	log=$(mktemp "${TMPDIR:-/tmp}/lattice-npm.XXXXXX") || return 1
	(
		command -v flock >/dev/null && flock 9
		spec= missing=
		for spec in "$@"; do
			[ "$(node -p "require(process.argv[1]).version" "$dir/node_modules/${spec%@*}/package.json" 2>/dev/null)" = \
				"${spec##*@}" ] || missing=1
		done
		[ -z "$missing" ] && exit 0
		echo "installing $* into $dir"
		# puppeteer-core never fetches a browser of its own: chromium is Debian's.
		PUPPETEER_SKIP_DOWNLOAD=1 ${TIMEOUT:-timeout 600} npm install --prefix "$dir" --save-exact --no-audit \
			--no-fund --loglevel=error "$@"
	) 9>"$dir/.lock" >"$log" 2>&1
	rc=$?
	grep -v '^[[:space:]]*$' "$log" | sed 's/^/# /'
	rm -f "$log"
	return $rc
}
