#!/usr/bin/env bash
# Installs what building and testing Skiff needs on Debian bookworm (or
# newer) and Ubuntu: QEMU (x86 + arm; bookworm-backports' 10.x when
# available, else the release's own), dtc, the C toolchains, sysroot and
# qemu-user of the Linux conformance suite, the pinned Rust toolchain with
# its kernel targets and the Linux targets of the suite's Rust programs,
# and
# the Xen hypervisor package for the xen-aarch64 board (optional: without it
# that board's test reports SKIP).
#
# Usage: ci/setup.sh            (as root, or a user with sudo)
set -euo pipefail

cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"

# bookworm-backports carries QEMU 10; plain bookworm has 7.2. Both work.
backports=""
if [ "$codename" = bookworm ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "setup: adding bookworm-backports"
        echo "deb http://deb.debian.org/debian bookworm-backports main" |
            $SUDO tee /etc/apt/sources.list.d/skiff-backports.list >/dev/null
    fi
    backports="bookworm-backports"
fi

# The Xen board needs Debian's arm64 Xen package: allow arm64 downloads.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "setup: dpkg --add-architecture arm64"
    $SUDO dpkg --add-architecture arm64
fi

echo "setup: apt-get update"
# A failing extra source (backports, arm64 lists) must not stop the install
# from what is reachable; a missing package fails below with its name.
$SUDO apt-get update -qq || echo "setup: apt-get update reported errors; continuing"

pkgs=(qemu-system-x86 qemu-system-arm)
if [ -n "$backports" ] &&
    $SUDO apt-get install -y -qq --no-install-recommends -t "$backports" "${pkgs[@]}"; then
    echo "setup: QEMU from $backports"
else
    echo "setup: QEMU from the release (backports not available)"
    $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
$SUDO apt-get install -y -qq --no-install-recommends device-tree-compiler

# Running and testing Linux programs (tests/linux, `cargo skiff run --arch
# aarch64`): C compilers for both arches and their C libraries (glibc; musl
# on x86_64 only, as Debian ships it), the arm64 glibc sysroot
# /usr/aarch64-linux-gnu that libraries are taken from, and qemu-user for
# the arm64 reference runs (`qemu-aarch64 -L /usr/aarch64-linux-gnu`).
linux_pkgs=(gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl-tools)
if apt-cache show qemu-user >/dev/null 2>&1; then
    linux_pkgs+=(qemu-user)
else
    linux_pkgs+=(qemu-user-static) # older releases; same qemu-aarch64 binary name
fi
echo "setup: ${linux_pkgs[*]}"
$SUDO apt-get install -y -qq --no-install-recommends "${linux_pkgs[@]}"
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null
qemu-system-x86_64 --version | head -1
qemu-system-aarch64 --version | head -1

# The toolchain and targets pinned in rust-toolchain.toml. rustup >= 1.28
# installs them with `rustup toolchain install`; older ones on `rustup show`.
echo "setup: rust toolchain"
rustup toolchain install 2>/dev/null || true
rustup show
# The Linux suite's Rust std programs (tests/linux/rust): glibc and musl
# targets of both arches, for the pinned toolchain (run here, in the
# checkout, so rust-toolchain.toml picks it).
rustup target add x86_64-unknown-linux-gnu x86_64-unknown-linux-musl \
    aarch64-unknown-linux-gnu aarch64-unknown-linux-musl

# The unmodified Debian programs of the conformance suite (busybox, sqlite3,
# python3.11) and of the network phase (redis, memcached, nginx), with their
# libraries, for both arches, cached in build/debian.
# Needs dpkg-deb and apt's arm64 lists (added above); curl as a fallback.
$SUDO apt-get install -y -qq --no-install-recommends dpkg curl
ci/fetch-debian-progs.sh x86_64
ci/fetch-debian-progs.sh aarch64
# The network phase drives the guest's redis with the host's
# redis-benchmark (optional: without it only the figures are missing).
$SUDO apt-get install -y -qq --no-install-recommends redis-tools ||
    echo "setup: redis-tools unavailable; net ARCH/redis will not print redis-benchmark figures"

ci/fetch-xen.sh || echo "setup: Xen package unavailable; the xen-aarch64 board will report SKIP"
