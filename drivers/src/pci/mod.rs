//! PCI: configuration-space decoding, the bus walk, BAR sizing and
//! assignment, the capability list and MSI-X programming.
//!
//! Arch-neutral and host-tested: configuration space is reached through the
//! [`ConfigSpace`] trait, which the kernel implements over ECAM (ACPI MCFG,
//! DT `pci-host-ecam-generic`) or the x86 0xCF8/0xCFC ports. Everything read
//! from a device is treated as untrusted: the capability walk is bounded and
//! loop-protected, BAR sizes must be powers of two, and an assigned BAR must
//! lie inside a host-bridge window.

pub mod msix;

use alloc::vec::Vec;
use core::fmt;

/// A bus/device/function address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// 32-bit access to one segment's configuration space. Offsets are
/// 4-byte aligned and below 4096 (256 for the port mechanism, which then
/// reads all-ones past 0xff).
pub trait ConfigSpace: Send + Sync {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);
}

/// Register offsets of the type 0/1 header.
pub mod reg {
    pub const ID: u16 = 0x00;
    pub const COMMAND_STATUS: u16 = 0x04;
    pub const CLASS_REV: u16 = 0x08;
    pub const HEADER: u16 = 0x0c;
    pub const BAR0: u16 = 0x10;
    pub const CAP_PTR: u16 = 0x34;
    pub const INTERRUPT: u16 = 0x3c;
}

/// Command register bits.
pub mod command {
    pub const IO: u16 = 1 << 0;
    pub const MEMORY: u16 = 1 << 1;
    pub const BUS_MASTER: u16 = 1 << 2;
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Status bit: a capability list is present.
const STATUS_CAP_LIST: u32 = 1 << (16 + 4);

/// The identifying part of a function's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub revision: u8,
    /// 0 endpoint, 1 PCI-to-PCI bridge, 2 CardBus.
    pub header_type: u8,
    pub multifunction: bool,
}

impl Header {
    /// Decodes dwords 0, 2 and 3 of the header; `None` for an absent
    /// function (vendor 0xffff, or 0 which no real device uses).
    pub fn decode(id: u32, class_rev: u32, header: u32) -> Option<Header> {
        let vendor = id as u16;
        if vendor == 0xffff || vendor == 0 {
            return None;
        }
        Some(Header {
            vendor,
            device: (id >> 16) as u16,
            class: (class_rev >> 24) as u8,
            subclass: (class_rev >> 16) as u8,
            prog_if: (class_rev >> 8) as u8,
            revision: class_rev as u8,
            header_type: ((header >> 16) & 0x7f) as u8,
            multifunction: header & (1 << 23) != 0,
        })
    }
}

/// What kind of space a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    Mem64,
}

/// One decoded base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// BAR number 0-5 (a 64-bit BAR also uses `index + 1`).
    pub index: u8,
    pub kind: BarKind,
    pub prefetchable: bool,
    /// Bus address the BAR holds (0: unassigned).
    pub address: u64,
    pub size: u64,
}

/// Why a BAR could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarError {
    /// The size mask is not of the form 1..10..0 (a device lying).
    BadSizeMask { index: u8 },
    /// A 64-bit BAR in slot 5, with no upper half.
    TruncatedMem64 { index: u8 },
    /// Reserved memory type 0b01 or 0b11.
    ReservedType { index: u8 },
}

/// A BAR's size mask is not a power-of-two mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSizeMask;

/// Size from the value read back after writing all-ones (`readback`,
/// already combined to 64 bits for Mem64) with the flag bits cleared by
/// `flag_mask`. Returns 0 for an unimplemented BAR. The mask must be a
/// contiguous run of ones from some bit up, else the device is lying.
pub fn bar_size(readback: u64, flag_mask: u64, width_mask: u64) -> Result<u64, BadSizeMask> {
    let mask = readback & !flag_mask & width_mask;
    if mask == 0 {
        return Ok(0);
    }
    let size = (!mask & width_mask).wrapping_add(1) & width_mask;
    // Ones from the lowest set bit up to the top of the width (a 64-bit
    // mask of all ones above bit 3 wraps `size` to 0 only for a 2^64 BAR).
    let expected = width_mask & !(size.wrapping_sub(1));
    if size == 0 || !size.is_power_of_two() || mask != expected {
        return Err(BadSizeMask);
    }
    Ok(size)
}

/// Sizes the BARs of an endpoint (`bars` = 6) or bridge (2): memory and I/O
/// decoding are turned off while all-ones are written, and each BAR is
/// restored. Unimplemented BARs are omitted.
pub fn read_bars(cfg: &dyn ConfigSpace, bdf: Bdf, bars: u8) -> Result<Vec<Bar>, BarError> {
    let cmd = cfg.read32(bdf, reg::COMMAND_STATUS);
    let decode = u32::from(command::IO | command::MEMORY);
    cfg.write32(bdf, reg::COMMAND_STATUS, cmd & 0xffff & !decode);
    let result = size_bars(cfg, bdf, bars);
    cfg.write32(bdf, reg::COMMAND_STATUS, cmd & 0xffff);
    result
}

fn size_bars(cfg: &dyn ConfigSpace, bdf: Bdf, bars: u8) -> Result<Vec<Bar>, BarError> {
    let mut out = Vec::new();
    let mut i = 0u8;
    while i < bars {
        let off = reg::BAR0 + 4 * u16::from(i);
        let orig = cfg.read32(bdf, off);
        cfg.write32(bdf, off, !0);
        let rb = cfg.read32(bdf, off);
        cfg.write32(bdf, off, orig);
        if orig & 1 == 1 {
            let size = bar_size(u64::from(rb), 0x3, 0xffff)
                .map_err(|_| BarError::BadSizeMask { index: i })?;
            if size != 0 {
                out.push(Bar {
                    index: i,
                    kind: BarKind::Io,
                    prefetchable: false,
                    address: u64::from(orig & !0x3),
                    size,
                });
            }
            i += 1;
            continue;
        }
        let prefetchable = orig & 0x8 != 0;
        match (orig >> 1) & 0x3 {
            0 => {
                let size = bar_size(u64::from(rb), 0xf, 0xffff_ffff)
                    .map_err(|_| BarError::BadSizeMask { index: i })?;
                if size != 0 {
                    out.push(Bar {
                        index: i,
                        kind: BarKind::Mem32,
                        prefetchable,
                        address: u64::from(orig & !0xf),
                        size,
                    });
                }
                i += 1;
            }
            2 => {
                if i + 1 >= bars {
                    return Err(BarError::TruncatedMem64 { index: i });
                }
                let hi_off = off + 4;
                let orig_hi = cfg.read32(bdf, hi_off);
                cfg.write32(bdf, hi_off, !0);
                let rb_hi = cfg.read32(bdf, hi_off);
                cfg.write32(bdf, hi_off, orig_hi);
                let rb64 = (u64::from(rb_hi) << 32) | u64::from(rb);
                let size = bar_size(rb64, 0xf, u64::MAX)
                    .map_err(|_| BarError::BadSizeMask { index: i })?;
                if size != 0 {
                    out.push(Bar {
                        index: i,
                        kind: BarKind::Mem64,
                        prefetchable,
                        address: (u64::from(orig_hi) << 32) | u64::from(orig & !0xf),
                        size,
                    });
                }
                i += 2;
            }
            _ => return Err(BarError::ReservedType { index: i }),
        }
    }
    Ok(out)
}

/// Writes a BAR's address (both halves of a 64-bit BAR).
pub fn write_bar(cfg: &dyn ConfigSpace, bdf: Bdf, bar: &Bar, address: u64) {
    let off = reg::BAR0 + 4 * u16::from(bar.index);
    let low = cfg.read32(bdf, off);
    let flags = if bar.kind == BarKind::Io {
        low & 0x3
    } else {
        low & 0xf
    };
    cfg.write32(bdf, off, (address as u32 & !0xf) | flags);
    if bar.kind == BarKind::Mem64 {
        cfg.write32(bdf, off + 4, (address >> 32) as u32);
    }
}

/// A host-bridge address window (DT `ranges`, or the x86 firmware's
/// layout): bus addresses `pci_base..pci_base+size` appear to the CPU at
/// `cpu_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kind: WindowKind,
    pub prefetchable: bool,
    pub cpu_base: u64,
    pub pci_base: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Io,
    Mem32,
    Mem64,
}

impl Window {
    /// The CPU address of bus range `addr..addr+len`, if wholly inside.
    pub fn to_cpu(&self, addr: u64, len: u64) -> Option<u64> {
        let off = addr.checked_sub(self.pci_base)?;
        let end = off.checked_add(len)?;
        (end <= self.size).then(|| self.cpu_base + off)
    }
}

/// Hands out BAR addresses from host-bridge windows, naturally aligned,
/// never overlapping, never outside a window.
#[derive(Debug, Clone)]
pub struct BarAllocator {
    windows: Vec<(Window, u64)>,
}

/// No window has room for the BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSpace {
    pub size: u64,
}

impl BarAllocator {
    pub fn new(windows: &[Window]) -> Self {
        Self {
            windows: windows.iter().map(|w| (*w, 0)).collect(),
        }
    }

    /// A bus address for a BAR of `kind` and `size` (a power of two):
    /// I/O BARs from I/O windows, 32-bit memory BARs from 32-bit windows,
    /// 64-bit BARs from 64-bit windows first, then 32-bit ones.
    pub fn allocate(&mut self, kind: BarKind, size: u64) -> Result<u64, NoSpace> {
        if !size.is_power_of_two() {
            return Err(NoSpace { size });
        }
        let order: &[WindowKind] = match kind {
            BarKind::Io => &[WindowKind::Io],
            BarKind::Mem32 => &[WindowKind::Mem32],
            BarKind::Mem64 => &[WindowKind::Mem64, WindowKind::Mem32],
        };
        for want in order {
            for (w, used) in self.windows.iter_mut().filter(|(w, _)| w.kind == *want) {
                let Some(next) = w.pci_base.checked_add(*used) else {
                    continue;
                };
                // Memory BARs at least page aligned so each maps alone.
                let align = if kind == BarKind::Io {
                    size
                } else {
                    size.max(4096)
                };
                let Some(start) = next.checked_next_multiple_of(align) else {
                    continue;
                };
                // Bus address 0 means "unassigned": never hand it out.
                let start = if start == 0 { align } else { start };
                let Some(end) = start.checked_add(size) else {
                    continue;
                };
                if end - w.pci_base <= w.size {
                    *used = end - w.pci_base;
                    return Ok(start);
                }
            }
        }
        Err(NoSpace { size })
    }
}

/// One capability in a function's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    /// Offset of the capability header in configuration space.
    pub offset: u8,
}

/// Why the capability list could not be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapError {
    /// A pointer into the header (< 0x40) or not dword aligned.
    BadPointer { at: u8 },
    /// A capability pointed back into the list.
    Loop { at: u8 },
}

/// Capability ids used here.
pub mod cap {
    pub const MSI: u8 = 0x05;
    pub const VENDOR: u8 = 0x09;
    pub const PCIE: u8 = 0x10;
    pub const MSIX: u8 = 0x11;
}

/// Walks the capability list: every pointer must be dword aligned and in
/// 0x40..0x100, and no capability may be visited twice (at most 48 fit).
pub fn capabilities(cfg: &dyn ConfigSpace, bdf: Bdf) -> Result<Vec<Capability>, CapError> {
    let mut out = Vec::new();
    if cfg.read32(bdf, reg::COMMAND_STATUS) & STATUS_CAP_LIST == 0 {
        return Ok(out);
    }
    let mut seen = [false; 64];
    let mut ptr = (cfg.read32(bdf, reg::CAP_PTR) & 0xff) as u8;
    while ptr != 0 {
        // The low two bits are reserved (the spec says mask them); a
        // pointer into the header is nonsense.
        let at = ptr & !0x3;
        if at < 0x40 {
            return Err(CapError::BadPointer { at: ptr });
        }
        let slot = usize::from(at / 4);
        if seen[slot] {
            return Err(CapError::Loop { at });
        }
        seen[slot] = true;
        let hdr = cfg.read32(bdf, u16::from(at));
        out.push(Capability {
            id: hdr as u8,
            offset: at,
        });
        ptr = (hdr >> 8) as u8;
    }
    Ok(out)
}

/// One function found by [`enumerate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub bdf: Bdf,
    pub header: Header,
    /// Interrupt pin 1-4 (INTA-INTD), 0 for none.
    pub interrupt_pin: u8,
}

/// Finds every function on buses `buses`, following the multi-function
/// bit. Bridges are reported but not programmed: the QEMU machines (q35,
/// virt) put their devices on the root bus, and firmware that builds
/// hierarchies also numbers them.
pub fn enumerate(cfg: &dyn ConfigSpace, buses: core::ops::RangeInclusive<u8>) -> Vec<Function> {
    let mut out = Vec::new();
    for bus in buses {
        for device in 0..32u8 {
            for function in 0..8u8 {
                let bdf = Bdf {
                    bus,
                    device,
                    function,
                };
                let hdr = Header::decode(
                    cfg.read32(bdf, reg::ID),
                    cfg.read32(bdf, reg::CLASS_REV),
                    cfg.read32(bdf, reg::HEADER),
                );
                let Some(header) = hdr else {
                    if function == 0 {
                        break;
                    }
                    continue;
                };
                let interrupt_pin = ((cfg.read32(bdf, reg::INTERRUPT) >> 8) & 0xff) as u8;
                out.push(Function {
                    bdf,
                    header,
                    interrupt_pin: if interrupt_pin <= 4 { interrupt_pin } else { 0 },
                });
                if function == 0 && !header.multifunction {
                    break;
                }
            }
        }
    }
    out
}

/// Sets command bits (`command::MEMORY | command::BUS_MASTER`, ...).
pub fn enable(cfg: &dyn ConfigSpace, bdf: Bdf, bits: u16) {
    let cmd = cfg.read32(bdf, reg::COMMAND_STATUS) & 0xffff;
    cfg.write32(bdf, reg::COMMAND_STATUS, cmd | u32::from(bits));
}

/// Clears command bits (used to disable a device that misbehaved).
pub fn disable(cfg: &dyn ConfigSpace, bdf: Bdf, bits: u16) {
    let cmd = cfg.read32(bdf, reg::COMMAND_STATUS) & 0xffff;
    cfg.write32(bdf, reg::COMMAND_STATUS, cmd & !u32::from(bits));
}

/// The `bars=` part of the boot-log line: `0:mem64@0x8000000000+0x4000,...`.
pub struct BarList<'a>(pub &'a [Bar]);

impl fmt::Display for BarList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let kind = match b.kind {
                BarKind::Io => "io",
                BarKind::Mem32 => "mem32",
                BarKind::Mem64 => "mem64",
            };
            write!(f, "{}:{kind}@{:#x}+{:#x}", b.index, b.address, b.size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub mod fake;

#[cfg(test)]
mod tests;
