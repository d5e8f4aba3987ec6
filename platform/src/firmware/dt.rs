//! The flattened device tree via the `fdt` crate: CPUs, GIC, timer PPI, PSCI
//! conduit, `stdout-path` UART, ECAM with the PCI host's `ranges` and
//! `interrupt-map`, `virtio,mmio` transports, `/hypervisor`, root
//! `compatible`, the PL031 real-time clock.
//!
//! The blob is checked whole by [`crate::bootinfo::validate_dtb`] before the
//! `fdt` crate sees it, and property values are decoded here with bounds
//! checks (cells and string lists) rather than with the crate's typed
//! helpers, several of which panic on missing nodes (`/chosen`, `/cpus`) or
//! odd cell counts: the tree comes from firmware or a hypervisor and a bad
//! one must not panic us.

use super::{
    Cpu, Ecam, Firmware, InterruptModel, IntxRoute, PciHost, PciSpace, PciWindow, PsciConduit,
    Uart, UartKind, VirtioMmio, MAX_CPUS,
};
use crate::bootinfo::{validate_dtb, DtbError};
use arrayvec::ArrayString;
use fdt::node::FdtNode;
use fdt::Fdt;

/// Why the device tree could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtError {
    /// The blob failed validation (header, layout or structure).
    Invalid(DtbError),
    /// The `fdt` crate refused the validated blob.
    BadHeader,
}

/// What [`read`] found: the common [`Firmware`] description plus the
/// device-tree-only facts the aarch64 probe needs.
#[derive(Debug, Clone, Default)]
pub struct DeviceTree {
    pub firmware: Firmware,
    /// The console UART is an SBSA generic UART (`arm,sbsa-uart`, e.g. Xen's
    /// vpl011): no control register, baud rate not programmable.
    pub console_sbsa: bool,
    /// Root `model` string, if any (e.g. "linux,dummy-virt").
    pub model: Option<ArrayString<64>>,
    /// Number of `virtio,mmio` transports (Firecracker's only devices).
    pub virtio_mmio: usize,
    /// `/timer` `clock-frequency`, for firmware that left CNTFRQ_EL0 at 0.
    pub timer_frequency: Option<u64>,
    /// Base address of the first enabled `arm,pl031` real-time clock.
    pub rtc_pl031: Option<u64>,
}

/// Big-endian 32-bit cells of a property value (a trailing partial cell is
/// ignored).
fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A value of `n` cells (1 or 2) starting at cell `at`.
fn cell_value(value: &[u8], at: usize, n: usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..n {
        let c = cells(value).nth(at + i)?;
        v = (v << 32) | c as u64;
    }
    (n > 0 && n <= 2).then_some(v)
}

/// The NUL-separated strings of a string-list property.
fn strings(value: &[u8]) -> impl Iterator<Item = &str> {
    value
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

fn prop<'a>(node: &FdtNode<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    node.properties().find(|p| p.name == name).map(|p| p.value)
}

fn compatible_with(node: &FdtNode<'_, '_>, want: &[&str]) -> bool {
    prop(node, "compatible").is_some_and(|v| strings(v).any(|s| want.contains(&s)))
}

fn first_string(value: &[u8]) -> Option<ArrayString<64>> {
    let s = strings(value).next()?;
    let mut out = ArrayString::new();
    for ch in s.chars() {
        if out.try_push(ch).is_err() {
            break;
        }
    }
    Some(out)
}

/// `reg` entry `i` of `node` as (address, size), using the parent's cell sizes.
fn reg(node: &FdtNode<'_, '_>, i: usize) -> Option<(u64, u64)> {
    let r = node.reg()?.nth(i)?;
    Some((
        r.starting_address as usize as u64,
        r.size.unwrap_or(0) as u64,
    ))
}

/// Resolves `stdout-path` ("/pl011@9000000", "serial0:115200n8", ...).
fn stdout_node<'b, 'a>(fdt: &'b Fdt<'a>) -> Option<FdtNode<'b, 'a>> {
    let chosen = fdt.find_node("/chosen")?;
    let path = prop(&chosen, "stdout-path").or_else(|| prop(&chosen, "linux,stdout-path"))?;
    let path = strings(path).next()?;
    let path = path.split(':').next()?;
    if path.starts_with('/') {
        fdt.find_node(path)
    } else {
        fdt.aliases()?.resolve_node(path)
    }
}

/// Whether a node is usable (`status` absent, "okay" or "ok").
fn enabled(node: &FdtNode<'_, '_>) -> bool {
    prop(node, "status").is_none_or(|v| matches!(strings(v).next(), Some("okay" | "ok")))
}

/// UARTs the console may fall back to when `/chosen` names none.
const UART_COMPATIBLE: &[&str] = &["arm,sbsa-uart", "arm,pl011", "ns16550a", "ns16550"];

/// The console: the `stdout-path` node, else the first enabled PL011, SBSA
/// or 16550 UART (Xen's dom0less guest tree lists its vpl011 without naming
/// it in `/chosen`; Firecracker's tree has a 16550 and no `stdout-path`).
fn read_console(fdt: &Fdt<'_>, out: &mut DeviceTree) {
    let node = stdout_node(fdt).or_else(|| {
        fdt.all_nodes()
            .find(|n| compatible_with(n, UART_COMPATIBLE) && enabled(n))
    });
    let Some(node) = node else { return };
    let Some((base, _)) = reg(&node, 0) else {
        return;
    };
    if compatible_with(&node, &["arm,sbsa-uart"]) {
        out.console_sbsa = true;
        out.firmware.console = Some(Uart {
            kind: UartKind::Pl011,
            base,
            stride: 4,
        });
    } else if compatible_with(&node, &["arm,pl011"]) {
        out.firmware.console = Some(Uart {
            kind: UartKind::Pl011,
            base,
            stride: 4,
        });
    } else if compatible_with(&node, &["ns16550a", "ns16550", "snps,dw-apb-uart"]) {
        let shift = prop(&node, "reg-shift")
            .and_then(|v| cells(v).next())
            .unwrap_or(0);
        let stride = if shift <= 2 { 1u8 << shift } else { 1 };
        out.firmware.console = Some(Uart {
            kind: UartKind::Ns16550Mmio,
            base,
            stride,
        });
    }
}

fn read_cpus(fdt: &Fdt<'_>, boot_hwid: u64, fw: &mut Firmware) {
    let Some(cpus) = fdt.find_node("/cpus") else {
        return;
    };
    let addr_cells = prop(&cpus, "#address-cells")
        .and_then(|v| cells(v).next())
        .unwrap_or(1);
    for cpu in cpus.children() {
        let is_cpu = cpu.name.split('@').next() == Some("cpu")
            || prop(&cpu, "device_type").is_some_and(|v| strings(v).next() == Some("cpu"));
        if !is_cpu {
            continue;
        }
        if !enabled(&cpu) {
            continue;
        }
        let Some(hw_id) = prop(&cpu, "reg").and_then(|v| cell_value(v, 0, addr_cells as usize))
        else {
            continue;
        };
        if fw.cpus.len() < MAX_CPUS {
            fw.cpus.push(Cpu {
                hw_id,
                boot: hw_id == boot_hwid,
            });
        }
    }
}

/// The GIC and its `#interrupt-cells`.
fn read_gic(fdt: &Fdt<'_>, fw: &mut Firmware) -> Option<u32> {
    let (node, version) = fdt.all_nodes().find_map(|n| {
        if compatible_with(&n, &["arm,gic-v3"]) {
            Some((n, 3))
        } else if compatible_with(
            &n,
            &[
                "arm,gic-400",
                "arm,cortex-a15-gic",
                "arm,cortex-a9-gic",
                "arm,cortex-a7-gic",
            ],
        ) {
            Some((n, 2))
        } else {
            None
        }
    })?;
    let (gicd_phys, _) = reg(&node, 0)?;
    let (gicc_or_gicr_phys, gicc_or_gicr_len) = reg(&node, 1)?;
    fw.interrupts = Some(InterruptModel::Gic {
        version,
        gicd_phys,
        gicc_or_gicr_phys,
        gicc_or_gicr_len,
    });
    prop(&node, "#interrupt-cells").and_then(|v| cells(v).next())
}

/// The timer's `clock-frequency` and the virtual timer's INTID: third
/// `/timer` interrupt (secure phys, non-secure phys, virtual, hyp), a PPI:
/// INTID = 16 + number.
fn read_timer(fdt: &Fdt<'_>, interrupt_cells: Option<u32>, out: &mut DeviceTree) {
    let Some(node) = fdt
        .all_nodes()
        .find(|n| compatible_with(n, &["arm,armv8-timer", "arm,armv7-timer"]))
    else {
        return;
    };
    out.timer_frequency = prop(&node, "clock-frequency")
        .and_then(|v| cells(v).next())
        .map(u64::from)
        .filter(|&hz| hz != 0);
    if interrupt_cells != Some(3) {
        return;
    }
    let Some(v) = prop(&node, "interrupts") else {
        return;
    };
    let fw = &mut out.firmware;
    let spec: arrayvec::ArrayVec<u32, 3> = cells(v).skip(6).take(3).collect();
    if let [kind, number, _flags] = spec[..] {
        // Type 1 = PPI (0 would be an SPI, which a per-CPU timer never is).
        if kind == 1 && number < 16 {
            fw.timer_irq = Some(16 + number);
        }
    }
}

fn read_psci(fdt: &Fdt<'_>, fw: &mut Firmware) {
    let node = fdt
        .all_nodes()
        .find(|n| compatible_with(n, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]));
    let Some(node) = node else { return };
    fw.psci = match prop(&node, "method").and_then(|v| strings(v).next()) {
        Some("hvc") => Some(PsciConduit::Hvc),
        Some("smc") => Some(PsciConduit::Smc),
        _ => None,
    };
}

/// Decodes a PCI host's `ranges` (child address 3 cells, parent address
/// `parent_addr_cells`, size 2 cells). Windows of unknown space code, zero
/// size or overflowing ends are skipped.
pub fn parse_pci_ranges(
    value: &[u8],
    parent_addr_cells: usize,
) -> arrayvec::ArrayVec<PciWindow, 4> {
    let mut out = arrayvec::ArrayVec::new();
    let entry = 3 + parent_addr_cells + 2;
    if !(1..=2).contains(&parent_addr_cells) {
        return out;
    }
    let n = value.len() / 4 / entry;
    for i in 0..n {
        let at = i * entry;
        let (Some(hi), Some(pci_base), Some(cpu_base), Some(size)) = (
            cell_value(value, at, 1),
            cell_value(value, at + 1, 2),
            cell_value(value, at + 3, parent_addr_cells),
            cell_value(value, at + 3 + parent_addr_cells, 2),
        ) else {
            break;
        };
        let space = match (hi >> 24) & 0x3 {
            1 => PciSpace::Io,
            2 => PciSpace::Mem32,
            3 => PciSpace::Mem64,
            _ => continue,
        };
        if size == 0 || cpu_base.checked_add(size).is_none() || pci_base.checked_add(size).is_none()
        {
            continue;
        }
        let w = PciWindow {
            space,
            prefetchable: hi & (1 << 30) != 0,
            cpu_base,
            pci_base,
            size,
        };
        if out.try_push(w).is_err() {
            break;
        }
    }
    out
}

/// Decodes a PCI host's `interrupt-map` (child unit address 3 cells, child
/// interrupt 1 cell, parent phandle, parent unit address and parent
/// specifier sized by `parent_cells(phandle)` = (#address-cells,
/// #interrupt-cells)). Only GIC parents with a 3-cell SPI specifier yield
/// routes; the walk stops at the first entry it cannot size.
pub fn parse_interrupt_map(
    value: &[u8],
    mask: (u32, u32),
    parent_cells: impl Fn(u32) -> Option<(usize, usize)>,
) -> arrayvec::ArrayVec<IntxRoute, 64> {
    let mut out = arrayvec::ArrayVec::new();
    let total = value.len() / 4;
    let mut at = 0usize;
    while at + 5 <= total {
        let (Some(hi), Some(pin), Some(phandle)) = (
            cell_value(value, at, 1),
            cell_value(value, at + 3, 1),
            cell_value(value, at + 4, 1),
        ) else {
            break;
        };
        let Some((addr_cells, int_cells)) = parent_cells(phandle as u32) else {
            break;
        };
        if addr_cells > 3 || int_cells == 0 || int_cells > 4 {
            break;
        }
        let spec = at + 5 + addr_cells;
        let next = spec + int_cells;
        if next > total {
            break;
        }
        if int_cells == 3 {
            let kind = cell_value(value, spec, 1);
            let number = cell_value(value, spec + 1, 1);
            // GIC SPI (type 0): INTID 32 + n, below the 1020 special range.
            if let (Some(0), Some(n)) = (kind, number) {
                if n < 988 {
                    let route = IntxRoute {
                        child_hi: hi as u32 & mask.0,
                        pin: pin as u32 & mask.1,
                        intid: 32 + n as u32,
                    };
                    if out.try_push(route).is_err() {
                        break;
                    }
                }
            }
        }
        at = next;
    }
    out
}

fn read_pci_host(fdt: &Fdt<'_>, node: &FdtNode<'_, '_>) -> PciHost {
    let mut host = PciHost::default();
    let root_addr_cells = fdt
        .find_node("/")
        .and_then(|r| prop(&r, "#address-cells"))
        .and_then(|v| cells(v).next())
        .unwrap_or(2) as usize;
    if let Some(v) = prop(node, "ranges") {
        host.windows = parse_pci_ranges(v, root_addr_cells);
    }
    let mask: arrayvec::ArrayVec<u32, 4> = prop(node, "interrupt-map-mask")
        .map(|v| cells(v).take(4).collect())
        .unwrap_or_default();
    host.intx_mask = match mask[..] {
        [hi, _, _, pin] => (hi, pin),
        _ => (!0, !0),
    };
    if let Some(v) = prop(node, "interrupt-map") {
        let parent_cells = |phandle: u32| {
            let p = fdt.find_phandle(phandle)?;
            let a = prop(&p, "#address-cells")
                .and_then(|v| cells(v).next())
                .unwrap_or(0);
            let i = prop(&p, "#interrupt-cells").and_then(|v| cells(v).next())?;
            Some((a as usize, i as usize))
        };
        host.intx = parse_interrupt_map(v, host.intx_mask, parent_cells);
    }
    host
}

/// `virtio,mmio` nodes: base, size and the SPI they interrupt on.
fn read_virtio_mmio(fdt: &Fdt<'_>, interrupt_cells: Option<u32>, fw: &mut Firmware) {
    for node in fdt
        .all_nodes()
        .filter(|n| compatible_with(n, &["virtio,mmio"]) && enabled(n))
    {
        let Some((base, size)) = reg(&node, 0) else {
            continue;
        };
        let irq = if interrupt_cells == Some(3) {
            prop(&node, "interrupts").and_then(|v| {
                match (cell_value(v, 0, 1), cell_value(v, 1, 1)) {
                    (Some(0), Some(n)) if n < 988 => Some(32 + n as u32),
                    _ => None,
                }
            })
        } else {
            None
        };
        if fw
            .virtio_mmio
            .try_push(VirtioMmio { base, size, irq })
            .is_err()
        {
            break;
        }
    }
}

fn read_ecam(fdt: &Fdt<'_>, fw: &mut Firmware) {
    for node in fdt
        .all_nodes()
        .filter(|n| compatible_with(n, &["pci-host-ecam-generic"]))
    {
        let Some((base, _)) = reg(&node, 0) else {
            continue;
        };
        let (bus_start, bus_end) = match prop(&node, "bus-range") {
            Some(v) => {
                let mut c = cells(v);
                match (c.next(), c.next()) {
                    (Some(s), Some(e)) if s <= e && e <= 255 => (s as u8, e as u8),
                    _ => continue,
                }
            }
            None => (0, 255),
        };
        let segment = prop(&node, "linux,pci-domain")
            .and_then(|v| cells(v).next())
            .and_then(|d| u16::try_from(d).ok())
            .unwrap_or(0);
        if fw
            .ecam
            .try_push(Ecam {
                base,
                segment,
                bus_start,
                bus_end,
            })
            .is_err()
        {
            break;
        }
        let _ = fw.pci_hosts.try_push(read_pci_host(fdt, &node));
    }
}

/// Reads the device tree in `dtb`. `boot_hwid` is the booting CPU's MPIDR
/// affinity (marks [`Cpu::boot`]). Missing parts are left `None`/empty.
pub fn read(dtb: &[u8], boot_hwid: u64) -> Result<DeviceTree, DtError> {
    let dtb = validate_dtb(dtb).map_err(DtError::Invalid)?;
    let fdt = Fdt::new(dtb).map_err(|_| DtError::BadHeader)?;
    let mut out = DeviceTree::default();
    out.firmware.dt = true;
    read_cpus(&fdt, boot_hwid, &mut out.firmware);
    let interrupt_cells = read_gic(&fdt, &mut out.firmware);
    read_timer(&fdt, interrupt_cells, &mut out);
    read_psci(&fdt, &mut out.firmware);
    read_console(&fdt, &mut out);
    read_ecam(&fdt, &mut out.firmware);
    out.virtio_mmio = fdt
        .all_nodes()
        .filter(|n| compatible_with(n, &["virtio,mmio"]))
        .count();
    read_virtio_mmio(&fdt, interrupt_cells, &mut out.firmware);
    out.rtc_pl031 = fdt
        .all_nodes()
        .find(|n| compatible_with(n, &["arm,pl031"]) && enabled(n))
        .and_then(|n| reg(&n, 0))
        .map(|(base, _)| base);
    if let Some(root) = fdt.find_node("/") {
        out.firmware.dt_model = prop(&root, "compatible").and_then(first_string);
        out.model = prop(&root, "model").and_then(first_string);
    }
    if let Some(hyp) = fdt.find_node("/hypervisor") {
        out.firmware.dt_hypervisor = prop(&hyp, "compatible").and_then(first_string);
    }
    Ok(out)
}

/// The DTB's total size from its header (bytes 4..8), to know how much to
/// map before parsing. None if the magic is wrong.
pub fn total_size(header: &[u8]) -> Option<usize> {
    let magic = u32::from_be_bytes(header.get(0..4)?.try_into().ok()?);
    if magic != 0xd00d_feed {
        return None;
    }
    Some(u32::from_be_bytes(header.get(4..8)?.try_into().ok()?) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_strings_are_bounds_checked() {
        assert_eq!(cells(&[0, 0, 0, 1, 0, 0]).collect::<Vec<_>>(), vec![1]);
        assert_eq!(
            cell_value(&[0, 0, 0, 1, 0, 0, 0, 2], 0, 2),
            Some((1 << 32) | 2)
        );
        assert_eq!(cell_value(&[0, 0, 0, 1], 0, 2), None);
        assert_eq!(cell_value(&[0, 0, 0, 1], 0, 3), None);
        let s: Vec<_> = strings(b"xen,xen-4.17\0xen,xen\0").collect();
        assert_eq!(s, vec!["xen,xen-4.17", "xen,xen"]);
    }

    #[test]
    fn total_size_checks_magic() {
        assert_eq!(
            total_size(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0]),
            Some(0x1000)
        );
        assert_eq!(total_size(&[0, 0, 0, 0, 0, 0, 0x10, 0]), None);
        assert_eq!(total_size(&[0xd0, 0x0d]), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(read(&[0u8; 64], 0), Err(DtError::Invalid(_))));
    }
}

#[cfg(test)]
mod qemu_tests {
    //! Device trees recorded from QEMU 10 (`-M virt,...,dumpdtb=`, compacted
    //! with `dtc -I dtb -O dtb`).
    use super::*;

    const GICV3_SMP4: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv3-smp4.dtb");
    const GICV2_EL2: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv2-el2.dtb");

    #[test]
    fn qemu_virt_gicv3() {
        let dt = read(GICV3_SMP4, 0).unwrap();
        let fw = &dt.firmware;
        assert!(fw.dt);
        assert_eq!(fw.cpus.len(), 4);
        assert!(fw.cpus[0].boot && !fw.cpus[1].boot);
        assert_eq!(fw.cpus[3].hw_id, 3);
        match fw.interrupts {
            Some(InterruptModel::Gic {
                version,
                gicd_phys,
                gicc_or_gicr_phys,
                gicc_or_gicr_len,
            }) => {
                assert_eq!(
                    (version, gicd_phys, gicc_or_gicr_phys),
                    (3, 0x0800_0000, 0x080a_0000)
                );
                assert!(gicc_or_gicr_len >= 4 * 0x2_0000);
            }
            ref other => panic!("no GICv3: {other:?}"),
        }
        assert_eq!(fw.timer_irq, Some(27));
        assert_eq!(fw.psci, Some(PsciConduit::Hvc));
        assert_eq!(
            fw.console,
            Some(Uart {
                kind: UartKind::Pl011,
                base: 0x0900_0000,
                stride: 4
            })
        );
        assert!(!dt.console_sbsa);
        assert_eq!(fw.dt_model.as_deref(), Some("linux,dummy-virt"));
        assert_eq!(fw.dt_hypervisor, None);
        assert_eq!(fw.ecam.len(), 1);
        assert_eq!((fw.ecam[0].bus_start, fw.ecam[0].bus_end), (0, 255));
        assert_eq!(dt.virtio_mmio, 32);
        assert_eq!(dt.rtc_pl031, Some(0x0901_0000));
        // The highmem ECAM and the three windows of QEMU's virt.
        assert_eq!(fw.ecam[0].base, 0x40_1000_0000);
        let host = &fw.pci_hosts[0];
        assert_eq!(
            host.windows.as_slice(),
            &[
                PciWindow {
                    space: PciSpace::Io,
                    prefetchable: false,
                    cpu_base: 0x3eff_0000,
                    pci_base: 0,
                    size: 0x1_0000
                },
                PciWindow {
                    space: PciSpace::Mem32,
                    prefetchable: false,
                    cpu_base: 0x1000_0000,
                    pci_base: 0x1000_0000,
                    size: 0x2eff_0000
                },
                PciWindow {
                    space: PciSpace::Mem64,
                    prefetchable: false,
                    cpu_base: 0x80_0000_0000,
                    pci_base: 0x80_0000_0000,
                    size: 0x80_0000_0000
                },
            ]
        );
        // interrupt-map: 4 slots x 4 pins, swizzled over SPIs 3-6.
        assert_eq!(host.intx_mask, (0x1800, 7));
        assert_eq!(host.intx.len(), 16);
        assert_eq!(host.intx_route(0, 0, 0, 1), Some(35));
        assert_eq!(host.intx_route(0, 1, 0, 1), Some(36));
        assert_eq!(host.intx_route(0, 2, 0, 1), Some(37));
        assert_eq!(host.intx_route(0, 3, 0, 2), Some(35));
        // Device 4 masks to device 0 (mask 0x1800 keeps two bits).
        assert_eq!(host.intx_route(0, 4, 0, 1), Some(35));
        assert_eq!(host.intx_route(0, 1, 0, 0), None);
        // virtio-mmio transports: 0xa000000 + 0x200 * i, SPI 16 + i.
        assert_eq!(fw.virtio_mmio.len(), 32);
        assert_eq!(
            fw.virtio_mmio[0],
            VirtioMmio {
                base: 0x0a00_0000,
                size: 0x200,
                irq: Some(48)
            }
        );
        assert!(fw
            .virtio_mmio
            .iter()
            .any(|v| v.base == 0x0a00_3e00 && v.irq == Some(32 + 16 + 31)));
    }

    #[test]
    fn interrupt_map_with_bad_parent_or_truncation() {
        let be = |c: &[u32]| c.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        // One good entry, then one whose parent is unknown.
        let map = be(&[
            0x800, 0, 0, 1, 7, 0, 0, 0, 5, 4, 0x1000, 0, 0, 1, 9, 0, 5, 4,
        ]);
        let parents = |p: u32| (p == 7).then_some((2, 3));
        let r = parse_interrupt_map(&map, (0x1800, 7), parents);
        assert_eq!(
            r.as_slice(),
            &[IntxRoute {
                child_hi: 0x800,
                pin: 1,
                intid: 37
            }]
        );
        // Truncated specifier: nothing.
        let map = be(&[0x800, 0, 0, 1, 7, 0, 0, 0, 5]);
        assert!(parse_interrupt_map(&map, (0x1800, 7), parents).is_empty());
        // A PPI (type 1) is not an INTx route.
        let map = be(&[0x800, 0, 0, 1, 7, 0, 0, 1, 5, 4]);
        assert!(parse_interrupt_map(&map, (0x1800, 7), parents).is_empty());
    }

    #[test]
    fn ranges_skip_nonsense() {
        let be = |c: &[u32]| c.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        // Config space (code 0), zero size, an overflowing window, one good.
        let v = be(&[
            0x0000_0000,
            0,
            0,
            0,
            0x1000,
            0,
            0x100, //
            0x0200_0000,
            0,
            0x1000,
            0,
            0x1000,
            0,
            0, //
            0x4300_0000,
            0xffff_ffff,
            0xffff_0000,
            0xffff_ffff,
            0xffff_0000,
            0,
            0x10_0000, //
            0x4300_0000,
            0x80,
            0,
            0x80,
            0,
            0x1,
            0,
        ]);
        let w = parse_pci_ranges(&v, 2);
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0],
            PciWindow {
                space: PciSpace::Mem64,
                prefetchable: true,
                cpu_base: 0x80_0000_0000,
                pci_base: 0x80_0000_0000,
                size: 0x1_0000_0000
            }
        );
        assert!(parse_pci_ranges(&v, 3).len() <= 4);
    }

    #[test]
    fn qemu_virt_gicv2_with_el2() {
        let dt = read(GICV2_EL2, 1).unwrap();
        let fw = &dt.firmware;
        assert_eq!(fw.cpus.len(), 2);
        assert!(!fw.cpus[0].boot && fw.cpus[1].boot);
        match fw.interrupts {
            Some(InterruptModel::Gic {
                version,
                gicd_phys,
                gicc_or_gicr_phys,
                ..
            }) => {
                assert_eq!(
                    (version, gicd_phys, gicc_or_gicr_phys),
                    (2, 0x0800_0000, 0x0801_0000)
                );
            }
            ref other => panic!("no GICv2: {other:?}"),
        }
        // With EL2 emulated, QEMU's PSCI moves to SMC.
        assert_eq!(fw.psci, Some(PsciConduit::Smc));
        assert_eq!(fw.timer_irq, Some(27));
        assert_eq!(dt.rtc_pl031, Some(0x0901_0000));
    }

    #[test]
    fn truncated_tree_is_refused() {
        assert!(read(&GICV3_SMP4[..GICV3_SMP4.len() / 2], 0).is_err());
    }
}
