#!/usr/bin/env bash
# Installs real Liquibase for the end-to-end tests: the npm package
# liquibase@4.28.1 (Liquibase 4.28 with its PostgreSQL JDBC driver, ~120 MB)
# into a cache outside the repository, which later runs and CI reuse.
#
#   tests/e2e/install_liquibase.sh      prints LIQUIBASE_HOME (the directory
#                                       holding the `liquibase` launcher)
#
# Cache: $LOCK_ARBITER_CACHE, else /var/cache/lock-arbiter as root, else
# ${XDG_CACHE_HOME:-~/.cache}/lock-arbiter. Idempotent: an install that is
# already there is used as it is. The download goes to a temporary directory
# that is renamed into place when complete, under a lock, so an interrupted or
# concurrent run never leaves half an install behind.
#
# Exit status: 0 installed (or present); 3 npm missing; 4 download failed.
set -euo pipefail

version=4.28.1

if [[ -n ${LOCK_ARBITER_CACHE:-} ]]; then
	cache=$LOCK_ARBITER_CACHE
elif [[ $(id -u) -eq 0 ]]; then
	cache=/var/cache/lock-arbiter
else
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/lock-arbiter
fi
dir=$cache/liquibase-$version
home=$dir/node_modules/liquibase/dist/liquibase

complete() {
	[[ -x $home/liquibase && -f $home/internal/lib/liquibase-core.jar &&
		-f $home/internal/lib/postgresql.jar ]] &&
		grep -q "\"version\": \"$version\"" "$dir/node_modules/liquibase/package.json"
}

if complete; then
	echo "$home"
	exit 0
fi
if ! command -v npm >/dev/null; then
	echo "install_liquibase: npm not found (Debian: apt-get install npm)" >&2
	exit 3
fi

mkdir -p "$cache"
exec 9>"$cache/.liquibase-$version.lock"
flock 9
if complete; then # another run installed it meanwhile
	echo "$home"
	exit 0
fi

tmp=$(mktemp -d "$cache/.liquibase-$version.XXXXXX")
chmod 755 "$tmp" # mktemp makes it 0700; the cache is shared
trap 'rm -rf "$tmp"' EXIT
echo "install_liquibase: npm install liquibase@$version into $dir" >&2
# Fail fast with npm's own reason: a registry that does not answer is given
# two short retries, not npm's default minutes of back-off.
if ! npm install --prefix "$tmp" "liquibase@$version" --no-audit --no-fund \
	--loglevel=error --fetch-retries=2 --fetch-retry-mintimeout=2000 \
	--fetch-retry-maxtimeout=10000 --fetch-timeout=60000 >&2; then
	echo "install_liquibase: npm install liquibase@$version failed (npm's reason above)" >&2
	exit 4
fi
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
if ! complete; then
	echo "install_liquibase: $home is incomplete after npm install" >&2
	exit 4
fi
echo "$home"
