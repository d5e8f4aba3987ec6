#!/usr/bin/env bash
# Downloads the unmodified Debian programs of the Linux conformance suite
# (tests/linux/suite.toml, `[[debian]]`) and the libraries they load, for
# one arch (and, for arm64, musl-dev to build the musl C variant against),
# and unpacks them into build/debian/<arch>/root. That root is
# both the --sysroot the programs are packed from and the root of the
# reference runs on Linux. Cached: a second run with the same package list
# does nothing.
#
# Usage: ci/fetch-debian-progs.sh ARCH     (x86_64|amd64 or aarch64|arm64)
#
# Packages come from `apt-get download PKG:DEBARCH` (needs the arch's apt
# lists: `dpkg --add-architecture arm64; apt-get update`, which ci/setup.sh
# does); when apt has no lists for the arch, the .deb is fetched from
# deb.debian.org's pool by the name and version apt shows for the host arch.
set -euo pipefail

cd "$(dirname "$0")/.."

case "${1:-}" in
x86_64 | amd64) arch=x86_64 debarch=amd64 ;;
aarch64 | arm64) arch=aarch64 debarch=arm64 ;;
*)
    echo "usage: $0 x86_64|aarch64" >&2
    exit 2
    ;;
esac

# The programs, and every library they (or the Python modules the suite
# imports) load, so that the root is self-contained: libc6 included.
pkgs=(
    libc6 libgcc-s1
    busybox-static
    sqlite3 libsqlite3-0 libreadline8 libtinfo6 zlib1g
    python3-minimal python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
    libexpat1 libssl3 libffi8 libbz2-1.0 liblzma5
    # The network phase's servers (tools/skiff/src/nettest/servers.rs):
    # redis-server (a link to redis-tools' redis-check-rdb), memcached,
    # nginx, and the libraries they load.
    redis-server redis-tools libjemalloc2 liblzf1 libatomic1 libstdc++6
    libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 libzstd1
    memcached libevent-2.1-7 libsasl2-2 libsasl2-modules-db libdb5.3
    nginx nginx-common libcrypt1 libpcre2-8-0
)
# The suite's aarch64/musl-static-pie C variant links against Debian's arm64
# musl (headers, crt files, libc.a) with the glibc cross compiler: Debian's
# musl-tools (musl-gcc) exists for amd64 only.
if [ "$arch" = aarch64 ]; then pkgs+=(musl musl-dev); fi

dir="build/debian/$arch"
debs="$dir/debs"
root="$dir/root"
stamp="$dir/stamp"
want="${pkgs[*]}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$root" ]; then
    echo "fetch-debian-progs: $root up to date"
    exit 0
fi

mkdir -p "$debs"
for p in "${pkgs[@]}"; do
    if compgen -G "$debs/${p}_*_${debarch}.deb" >/dev/null ||
        compgen -G "$debs/${p}_*_all.deb" >/dev/null; then
        continue
    fi
    echo "fetch-debian-progs: $p:$debarch"
    if (cd "$debs" && apt-get download -qq "$p:$debarch" 2>/dev/null); then
        continue
    fi
    # Architecture-independent packages (nginx-common) have no :ARCH name.
    if [ "$(apt-cache show "$p" 2>/dev/null | sed -n 's/^Architecture: //p' | head -1)" = all ] &&
        (cd "$debs" && apt-get download -qq "$p" 2>/dev/null); then
        continue
    fi
    # No apt lists for the arch: same name and version as the host arch's
    # package, from the pool.
    version="$(apt-cache show "$p" | sed -n 's/^Version: //p' | head -1)"
    filename="$(apt-cache show "$p" | sed -n 's/^Filename: //p' | head -1)"
    if [ -z "$version" ] || [ -z "$filename" ]; then
        echo "fetch-debian-progs: apt knows no package $p" >&2
        exit 1
    fi
    pooldir="$(dirname "$filename")"
    file="${p}_${version#*:}_${debarch}.deb"
    url="http://deb.debian.org/debian/$pooldir/$file"
    echo "fetch-debian-progs: apt has no $p:$debarch; $url"
    curl -fsSL -o "$debs/$file.part" "$url" ||
        curl -fsSL -o "$debs/$file.part" "http://deb.debian.org/debian-security/$pooldir/$file"
    mv "$debs/$file.part" "$debs/$file"
done

tmp="$root.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
for d in "$debs"/*.deb; do
    dpkg-deb -x "$d" "$tmp"
done
# Debian's usrmerge makes /bin, /lib and /lib64 links to /usr's; the
# packages still install some files under the old names.
for d in bin sbin lib lib64; do
    if [ -d "$tmp/$d" ] && [ ! -L "$tmp/$d" ]; then
        mkdir -p "$tmp/usr/$d"
        cp -a "$tmp/$d/." "$tmp/usr/$d/"
        rm -rf "${tmp:?}/$d"
    fi
    if [ -d "$tmp/usr/$d" ]; then ln -sfn "usr/$d" "$tmp/$d"; fi
done
rm -rf "$root"
mv "$tmp" "$root"
echo "$want" >"$stamp"
echo "fetch-debian-progs: $root ready ($(du -sh "$root" | cut -f1))"
