# shellcheck shell=bash
# browser.sh — a real headless browser for the dashboard tests (sourced; needs
# tests/lib/tap.sh): Debian's chromium, driven by puppeteer-core from npm.
#
# browser_setup  finds chromium (CHROMIUM, else /usr/bin/chromium, else chromium
#   or chromium-browser on PATH; BROWSER_BIN is set) and installs puppeteer-core
#   (pinned below) once with npm into a cache outside the tree,
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lattice-browser (override: LATTICE_BROWSER_CACHE;
#   the first install downloads about 10 MB). puppeteer-core never downloads a
#   browser of its own (PUPPETEER_SKIP_DOWNLOAD too, in case). Returns 1 with the
#   reason in BROWSER_WHY when chromium, node or npm are missing or the install
#   fails; BROWSER_MODULES is the node_modules directory otherwise.
# browser_node SCRIPT ARGS...  runs a Node.js script that can require('puppeteer-core')
#   and finds chromium in $CHROMIUM.

. "$(dirname "${BASH_SOURCE[0]}")/npm.sh"

BROWSER_PUPPETEER_VERSION=24.43.1 # the last line whose engines allow Node 18 and 20 (25.x needs Node 22)
BROWSER_WHY=
BROWSER_MODULES=
BROWSER_BIN=

browser_setup() {
	[ -n "$BROWSER_MODULES" ] && return 0
	local b
	for b in "${CHROMIUM:-}" /usr/bin/chromium "$(command -v chromium 2>/dev/null)" "$(command -v chromium-browser 2>/dev/null)"; do
		[ -n "$b" ] && [ -x "$b" ] && { BROWSER_BIN=$b; break; }
	done
	if [ -z "$BROWSER_BIN" ]; then
		BROWSER_WHY="chromium is not installed (Debian package chromium; scripts/deps.sh installs it)"
		return 1
	fi
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		BROWSER_WHY="node and npm are needed to drive chromium (scripts/deps.sh installs them)"
		return 1
	fi
	local cache rc
	cache=$(npm_cache browser "${LATTICE_BROWSER_CACHE:-}")
	npm_pinned "$cache" "puppeteer-core@$BROWSER_PUPPETEER_VERSION"
	rc=$?
	if [ $rc -ne 0 ] || [ ! -f "$cache/node_modules/puppeteer-core/package.json" ]; then
		BROWSER_WHY="npm install puppeteer-core@$BROWSER_PUPPETEER_VERSION into $cache failed (exit $rc)"
		return 1
	fi
	BROWSER_MODULES=$cache/node_modules
}

browser_node() {
	NODE_PATH=$BROWSER_MODULES CHROMIUM=$BROWSER_BIN PUPPETEER_SKIP_DOWNLOAD=1 node "$@"
}
