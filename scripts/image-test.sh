#!/usr/bin/env bash
# The container image, built and run (issue 10, part 5): builds the
# Containerfile with podman and runs the image as a Deployment would (its
# non-root user, a read-only root filesystem, no capabilities) against a real
# PostgreSQL and the simulated Kubernetes API, both on loopback: /healthz,
# /readyz, /metrics and one orphaned lock released (tests/image/test_image.py).
# Prints the image size and ends with "image: N passed, N failed".
#
#   scripts/image-test.sh
#
# Nothing is pulled: the debian:12 and debian:12-slim bases are made here
# from Debian's packages (debootstrap --variant=minbase, then podman import),
# once; their root filesystems are kept in $LOCK_ARBITER_IMAGE_CACHE
# (/var/cache/lock-arbiter), so a later run only imports them, or finds them
# already in podman's storage. LOCK_ARBITER_REBASE=1 makes them anew (the
# build's apt-get update fetches current packages either way).
#
# Needs root (podman's rootful storage, debootstrap). Without it the run is
# skipped, and fails under CI=true.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

image=localhost/lock-arbiter:image-test
cache=${LOCK_ARBITER_IMAGE_CACHE:-/var/cache/lock-arbiter}
suite=bookworm
mirror=http://deb.debian.org/debian
for arg in "$@"; do
	case $arg in
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "usage: scripts/image-test.sh" >&2; exit 2 ;;
	esac
done

passed=0
failed=0
started=$SECONDS
say() { printf 'image-test: %s\n' "$*"; }
finish() {
	say "took $((SECONDS - started)) s"
	echo "image: $passed passed, $failed failed"
	((failed == 0)) && exit 0
	exit 1
}
fail_step() {
	say "FAILED: $*"
	failed=$((failed + 1))
	finish
}

if (($(id -u) != 0)); then
	say "SKIP: needs root (rootful podman storage, debootstrap, runc); run it as root"
	if [[ ${CI:-} == true ]]; then
		say "CI=true: a skipped image test is a failure"
		echo "image: 0 passed, 1 failed"
		exit 1
	fi
	echo "image: 0 passed, 0 failed, 1 skipped"
	exit 0
fi

# -- tools ----------------------------------------------------------------------
need=()
for pair in podman:podman runc:runc debootstrap:debootstrap openssl:openssl; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || need+=(postgresql)
/usr/bin/python3 -c 'import pytest' 2>/dev/null || need+=(python3-pytest)
[[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]} > 0)); then
	say "installing ${need[*]}"
	t=$SECONDS
	{ apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${need[@]}"; } >/tmp/lock-arbiter-image-apt.log 2>&1 ||
		{ tail -20 /tmp/lock-arbiter-image-apt.log; fail_step "apt-get install ${need[*]}"; }
	say "installed in $((SECONDS - t)) s"
fi

# Debian's podman on this machine: runc (crun is not there), and no default
# ulimits (it would set RLIMIT_NOFILE above what the sandbox allows).
mkdir -p "$cache" || fail_step "mkdir $cache"
export CONTAINERS_CONF=$cache/containers.conf
printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"
podman=(podman --runtime runc)

# -- base images ----------------------------------------------------------------
# The rootfs of debian:12 as the official image has it (minbase, the apt
# sources of bookworm, -updates and -security, no package lists or .debs), and
# debian:12-slim from the same tree less documentation, manuals and locales,
# with the dpkg excludes that keep later installs slim (debuerreotype's
# --slimify list).
make_rootfs() {
	local work=$1
	debootstrap --variant=minbase "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log"; return 1; }
	local r=$work/root
	rm -f "$r/etc/apt/sources.list"
	cat >"$r/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $mirror
		Suites: $suite $suite-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: ${mirror}-security
		Suites: $suite-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	# The official image's apt and dpkg settings (debuerreotype's
	# minimizing config): without docker-clean, every apt-get install in a
	# Containerfile keeps its .debs in the layer (82 MB in the runtime stage).
	cat >"$r/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
	EOF
	echo 'Apt::AutoRemove::SuggestsImportant "false";' \
		>"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
	echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
	echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
		"$r"/var/log/* "$r"/tmp/* "$r/etc/hostname"
	: >"$r/etc/resolv.conf"
	tar -C "$r" --numeric-owner -cf "$cache/debian-12.tar.tmp" . || return 1

	cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<-EOF
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/groff/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/lintian/overrides/*
		path-exclude /usr/share/locale/*
		path-exclude /usr/share/man/*
	EOF
	find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$r"/usr/share/groff/* "$r"/usr/share/info/* "$r"/usr/share/linda/* \
		"$r"/usr/share/lintian/overrides/* "$r"/usr/share/locale/* "$r"/usr/share/man/*
	tar -C "$r" --numeric-owner -cf "$cache/debian-12-slim.tar.tmp" . || return 1
	mv "$cache/debian-12.tar.tmp" "$cache/debian-12.tar" &&
		mv "$cache/debian-12-slim.tar.tmp" "$cache/debian-12-slim.tar"
}

bases() {
	local tag
	if [[ ${LOCK_ARBITER_REBASE:-} == 1 ]]; then
		rm -f "$cache/debian-12.tar" "$cache/debian-12-slim.tar"
		"${podman[@]}" rmi -f docker.io/library/debian:12 docker.io/library/debian:12-slim \
			>/dev/null 2>&1
	fi
	if "${podman[@]}" image exists docker.io/library/debian:12 &&
		"${podman[@]}" image exists docker.io/library/debian:12-slim; then
		say "base images: in podman's storage"
		return 0
	fi
	if [[ ! -s $cache/debian-12.tar || ! -s $cache/debian-12-slim.tar ]]; then
		local t=$SECONDS work
		work=$(mktemp -d /tmp/lock-arbiter-rootfs.XXXXXX) || return 1
		say "base images: debootstrap --variant=minbase $suite"
		make_rootfs "$work"
		local rc=$?
		rm -rf "$work"
		((rc == 0)) || return 1
		say "base images: root filesystems made in $((SECONDS - t)) s"
	fi
	# Tagged under the name that FROM debian:12 means, so the Containerfile
	# stays the one any builder uses.
	for tag in 12 12-slim; do
		"${podman[@]}" import --change 'CMD ["bash"]' "$cache/debian-$tag.tar" \
			"docker.io/library/debian:$tag" >/dev/null || return 1
	done
	say "base images: imported from $cache"
}

t=$SECONDS
bases || fail_step "making the debian:12 and debian:12-slim base images"
passed=$((passed + 1))
base_s=$((SECONDS - t))

# -- build ----------------------------------------------------------------------
# The build stage's apt-get needs the package mirror: host networking, as the
# host reaches it. --pull=never: nothing comes from a registry. The build
# stage is tagged too, so that pruning what earlier runs left keeps its
# layers: the next run then reuses its apt-get layer and only compiles.
t=$SECONDS
build_log=/tmp/lock-arbiter-image-build.log
if ! { "${podman[@]}" build --pull=never --network host --target build -t "$image-build" \
	-f Containerfile . &&
	"${podman[@]}" build --pull=never --network host -t "$image" -f Containerfile .; } \
	>"$build_log" 2>&1; then
	tail -40 "$build_log"
	fail_step "podman build (log: $build_log)"
fi
build_s=$((SECONDS - t))
passed=$((passed + 1))
"${podman[@]}" image prune -f >/dev/null 2>&1
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
base_size=$("${podman[@]}" image inspect --format '{{.Size}}' docker.io/library/debian:12-slim)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
size_line="$size bytes ($(mib "$size")); the debian:12-slim base $base_size bytes, the image's own layers $((size - base_size)) bytes ($(mib $((size - base_size))))"
say "built in ${build_s} s (bases ${base_s} s)"

# -- run ------------------------------------------------------------------------
junit=$(mktemp /tmp/lock-arbiter-image-junit.XXXXXX.xml)
LOCK_ARBITER_IMAGE=$image /usr/bin/python3 -m pytest -v -s -p no:cacheprovider \
	--junitxml="$junit" tests/image/test_image.py
counts=$(/usr/bin/python3 - "$junit" <<-'EOF'
	import sys, xml.etree.ElementTree as ET
	root = ET.parse(sys.argv[1]).getroot()
	suites = [root] if root.tag == "testsuite" else list(root)
	tests = sum(int(s.get("tests", 0)) for s in suites)
	bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
	skipped = sum(int(s.get("skipped", 0)) for s in suites)
	print(tests - bad - skipped, bad + skipped)
EOF
) || counts="0 1"
rm -f "$junit"
read -r p f <<<"$counts"
passed=$((passed + p))
failed=$((failed + f))

say "image size: $size_line"
finish
