#!/usr/bin/env bash
# Boots a Skiff arm64 Image as a Xen "dom0less" guest under QEMU TCG.
#
#   ci/xen-aarch64.sh <Image> [guest cmdline] [xen binary]
#
# Steps (each is what worked with QEMU 10.0 and Debian's Xen 4.17):
#  1. QEMU `virt,virtualization=on,gic-version=3` with `-cpu cortex-a57`
#     dumps its device tree (`dumpdtb=`).
#  2. dtc decompiles it; we append to /chosen: Xen's command line
#     (`xen,xen-bootargs`, console on the PL011) and one `xen,domain` node
#     with memory (KiB, 64-bit), one vCPU, `vpl011`,
#     `xen,enhanced = "no-xenstore"` (without it Xen gives the guest no
#     `/hypervisor` node, so it cannot tell it runs on Xen; "enabled" needs a
#     dom0 for xenstore and panics Xen), and the kernel as a
#     `multiboot,kernel` module at KERNEL_ADDR with the Image's real size and
#     the guest command line as its `bootargs`.
#  3. QEMU boots Xen with that DTB (`-kernel xen -dtb ...`) and loads the
#     Image at KERNEL_ADDR with `-device loader`. With no dom0 module Xen
#     starts only the domU; the guest's vpl011 output appears on Xen's UART
#     prefixed `(XEN) DOM1: `. Xen's guest DT lists the vpl011 as an
#     `arm,sbsa-uart` without a `stdout-path`; the kernel falls back to it.
#  4. Xen idles after the guest powers off (PSCI SYSTEM_OFF), so this script
#     stops QEMU once the guest's `skiff: exit status=N` line appears and
#     exits with N (124 on timeout).
#
# Needs: qemu-system-aarch64, dtc, the Xen binary (ci/fetch-xen.sh puts it
# in build/xen/boot/xen-4.17-arm64).
set -euo pipefail

IMAGE=${1:?usage: ci/xen-aarch64.sh <Image> [guest cmdline] [xen binary]}
CMDLINE=${2:-ktest}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
XEN=${3:-$ROOT/build/xen/boot/xen-4.17-arm64}
TIMEOUT=${TIMEOUT:-120}
MEM_MIB=${MEM_MIB:-1024}
GUEST_MIB=${GUEST_MIB:-256}
KERNEL_ADDR=${KERNEL_ADDR:-0x47000000}
XEN_ARGS=${XEN_ARGS:-"console=dtuart dtuart=/pl011@9000000 bootscrub=0"}

[ -f "$XEN" ] || { echo "xen-aarch64: no Xen binary at $XEN (run ci/fetch-xen.sh)" >&2; exit 2; }
[ -f "$IMAGE" ] || { echo "xen-aarch64: no kernel Image at $IMAGE" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MACHINE="virt,virtualization=on,gic-version=3"

qemu-system-aarch64 -M "$MACHINE,dumpdtb=$WORK/virt.dtb" -cpu cortex-a57 \
    -m "$MEM_MIB" -smp 1 -nographic -nodefaults >/dev/null 2>&1
dtc -q -I dtb -O dts -o "$WORK/virt.dts" "$WORK/virt.dtb"

SIZE=$(stat -c %s "$IMAGE")
cat >>"$WORK/virt.dts" <<EOF

/ {
	chosen {
		#address-cells = <0x2>;
		#size-cells = <0x2>;
		xen,xen-bootargs = "$XEN_ARGS";

		skiff {
			compatible = "xen,domain";
			#address-cells = <0x2>;
			#size-cells = <0x2>;
			memory = <0x0 $((GUEST_MIB * 1024))>;
			cpus = <0x1>;
			vpl011;
			xen,enhanced = "no-xenstore";

			module@${KERNEL_ADDR#0x} {
				compatible = "multiboot,kernel", "multiboot,module";
				reg = <0x0 $KERNEL_ADDR 0x0 $SIZE>;
				bootargs = "$CMDLINE";
			};
		};
	};
};
EOF
dtc -q -I dts -O dtb -o "$WORK/xen.dtb" "$WORK/virt.dts"

# Stream the console; stop QEMU (by its pid) at the guest's status line.
mkfifo "$WORK/console"
timeout "$TIMEOUT" qemu-system-aarch64 -M "$MACHINE" -cpu cortex-a57 \
    -m "$MEM_MIB" -smp 1 -nographic -nodefaults -no-reboot -serial stdio \
    -kernel "$XEN" -dtb "$WORK/xen.dtb" \
    -device loader,file="$IMAGE",addr="$KERNEL_ADDR",force-raw=on \
    >"$WORK/console" 2>&1 &
QEMU_PID=$!
status=124
while IFS= read -r line; do
    line=${line%$'\r'}
    printf '%s\n' "$line"
    case "$line" in
    *"skiff: exit status="*)
        status=${line##*skiff: exit status=}
        status=${status%%[^0-9]*}
        break
        ;;
    esac
done <"$WORK/console"
kill "$QEMU_PID" 2>/dev/null || true
wait "$QEMU_PID" 2>/dev/null || true
exit "$status"
