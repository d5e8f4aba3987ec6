#!/usr/bin/env bash
# Downloads Debian's arm64 Xen hypervisor package and unpacks it into
# build/xen/ (where `cargo skiff` looks for it; see boards/xen-aarch64.toml).
# Needs apt with the arm64 architecture added (ci/setup.sh does that).
set -euo pipefail

cd "$(dirname "$0")/.."
pkg="$(sed -n 's/^package *= *"\(.*\)"/\1/p' boards/xen-aarch64.toml)"
binary="$(sed -n 's/^binary *= *"\(.*\)"/\1/p' boards/xen-aarch64.toml)"
dest="build/xen"

if [ -f "$dest/$binary" ]; then
    echo "fetch-xen: $dest/$binary already present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq || true
fi
if ! apt-cache show "$pkg:arm64" >/dev/null 2>&1; then
    $SUDO apt-get update -qq || true
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# apt-get download writes into the current directory; as root it warns that
# the download is unsandboxed, which is expected here.
(cd "$tmp" && apt-get download -q "$pkg:arm64" 2>&1 | grep -v "unsandboxed" || true)
deb="$(ls "$tmp"/*.deb 2>/dev/null | head -1)"
if [ -z "$deb" ]; then
    echo "fetch-xen: could not download $pkg:arm64" >&2
    exit 1
fi
mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest"
ls -l "$dest/$binary"
