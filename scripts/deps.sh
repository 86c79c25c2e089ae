#!/usr/bin/env bash
# deps.sh — installs what lattice needs on a Debian bookworm machine (as root),
# skipping what is already there. Sourced or run by test.sh and local-lattice.sh.
set -euo pipefail
PKGS=(build-essential autoconf automake libtool pkg-config
      libpq-dev libmicrohttpd-dev libnats-dev libjansson-dev libraft-dev libuv1-dev libzstd-dev
      postgresql-15 postgresql-client-15 nats-server curl jq prometheus wrk clang
      libssl-dev # libcrypto: only tests/tools/natsjwt (edge_auth.sh), see docs/testing.md
      libxml2-utils # xmllint: test_report, chaos_smoke.sh (timeline.svg)
      groff-base systemd # groff, systemd-analyze: packaging.sh (man pages, units)
      chromium fonts-dejavu-core # the headless browser of ui.sh and ui_scale.sh (puppeteer-core drives it)
      iproute2 iptables) # network namespaces and partitions of a chaos run (sim/cluster.c, chaos_cluster.sh)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the API and protocol checks (Redocly in openapi.sh, Ajv in
# protocol.sh). Any install will do: NodeSource's nodejs (which bundles npm) or
# Debian's nodejs + npm.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
