#!/usr/bin/env bash
# Downloads Debian's kernel package for ARCH and extracts the bootable kernel
# into build/linux/<arch>/ (where `cargo skiff bench` looks for the Linux
# guest it runs beside Skiff; see docs/benchmarks.md).
#
#   x86_64:  build/linux/x86_64/vmlinuz   the bzImage (Linux boot protocol;
#            boots on q35 and microvm, and under -icount, unlike the PVH
#            vmlinux inside it)
#   aarch64: build/linux/aarch64/Image    the arm64 Image (the package's
#            vmlinuz, gunzipped when Debian compressed it)
#   both:    build/linux/<arch>/VERSION   "PACKAGE VERSION" that was fetched
#
# Which kernel: the one Debian's `linux-image-amd64` / `linux-image-arm64`
# metapackage depends on at apt's candidate version (bookworm + security
# updates here; backports only if the host's apt pins it higher). Override
# with SKIFF_LINUX_PACKAGE=linux-image-6.1.0-NN-amd64 for a fixed kernel.
#
# Cached: does nothing when the kernel is already there (delete
# build/linux/<arch> to refetch). Fails loudly with a reason otherwise.
#
# Usage: ci/fetch-linux.sh x86_64|aarch64
set -euo pipefail

cd "$(dirname "$0")/.."

die() {
    echo "fetch-linux: error: $*" >&2
    exit 1
}

case "${1:-}" in
x86_64 | amd64) arch=x86_64 deb_arch=amd64 kernel=vmlinuz ;;
aarch64 | arm64) arch=aarch64 deb_arch=arm64 kernel=Image ;;
*) die "usage: $0 x86_64|aarch64" ;;
esac

dest="build/linux/$arch"
if [ -s "$dest/$kernel" ] && [ -s "$dest/VERSION" ]; then
    echo "fetch-linux: $dest/$kernel already present ($(cat "$dest/VERSION"))"
    exit 0
fi

for tool in apt-cache apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || die "\`$tool\` not found: this script needs Debian's apt tools"
done

# The host's own arch needs no qualifier; a foreign one needs dpkg to know it.
host_arch="$(dpkg --print-architecture)"
qual=""
if [ "$deb_arch" != "$host_arch" ]; then
    qual=":$deb_arch"
    if ! dpkg --print-foreign-architectures | grep -qx "$deb_arch"; then
        die "dpkg does not know the $deb_arch architecture: run \`dpkg --add-architecture $deb_arch && apt-get update\` (ci/setup.sh does it)"
    fi
fi

pkg="${SKIFF_LINUX_PACKAGE:-}"
if [ -z "$pkg" ]; then
    meta="linux-image-$deb_arch$qual"
    candidate="$(apt-cache policy "$meta" 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        die "apt knows no candidate for $meta (offline, or no \`apt-get update\` yet?)"
    fi
    # The Depends line of exactly that version names the versioned package.
    pkg="$(apt-cache show "$meta=$candidate" 2>/dev/null |
        sed -n 's/^Depends: *\(linux-image-[^ ,]*\).*/\1/p' | head -1)"
    [ -n "$pkg" ] || die "cannot read which kernel $meta $candidate depends on"
fi
echo "fetch-linux: $arch: package $pkg$qual"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# apt-get download writes into the current directory; as root it warns that
# the download is unsandboxed, which is expected here.
if ! (cd "$tmp" && apt-get download -q "$pkg$qual" 2>"$tmp/err.log"); then
    grep -v unsandboxed "$tmp/err.log" >&2 || true
    die "apt-get download $pkg$qual failed (offline?)"
fi
deb="$(ls "$tmp"/*.deb 2>/dev/null | head -1)"
[ -n "$deb" ] || die "apt-get download $pkg$qual produced no .deb"
version="$(dpkg-deb -f "$deb" Version)"

mkdir -p "$tmp/x"
# Only the kernel image is needed: no devices, so no modules.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*'
src="$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -1)"
[ -n "$src" ] || die "$pkg has no /boot/vmlinuz-*"

mkdir -p "$dest"
rm -f "$dest/$kernel" "$dest/VERSION"
case "$arch" in
x86_64)
    # "HdrS" at 0x202 marks a bzImage (Linux boot protocol header).
    [ "$(dd if="$src" bs=1 skip=514 count=4 status=none)" = HdrS ] ||
        die "$src is not a bzImage"
    cp "$src" "$dest/$kernel.tmp"
    ;;
aarch64)
    # Debian ships the arm64 Image gzip-compressed (QEMU's -kernel takes
    # either, but a plain Image is what the arm64 boot protocol defines).
    if [ "$(od -An -tx1 -N2 "$src" | tr -d ' ')" = 1f8b ]; then
        gunzip -c "$src" >"$dest/$kernel.tmp"
    else
        cp "$src" "$dest/$kernel.tmp"
    fi
    # The arm64 Image header has the magic "ARM\x64" at offset 56.
    [ "$(dd if="$dest/$kernel.tmp" bs=1 skip=56 count=3 status=none)" = ARM ] ||
        die "$src does not hold an arm64 Image"
    ;;
esac
mv "$dest/$kernel.tmp" "$dest/$kernel"
echo "$pkg $version" >"$dest/VERSION"
echo "fetch-linux: $dest/$kernel ($(cat "$dest/VERSION"), $(stat -c %s "$dest/$kernel") bytes)"
