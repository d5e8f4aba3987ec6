//! MSI-X: the capability's table location, bounds-checked against the
//! BAR it names, entry programming through the HAL's [`Mmio`], and the x86
//! local-APIC message format.

use super::{Bar, Bdf, ConfigSpace};
use skiff_hal::{Mmio, OutOfWindow};

/// Bytes per MSI-X table entry: address low, address high, data, control.
pub const ENTRY_SIZE: u64 = 16;
const CONTROL_ENABLE: u32 = 1 << 31;
const CONTROL_FUNCTION_MASK: u32 = 1 << 30;
const ENTRY_MASKED: u32 = 1;

/// Where a function's MSI-X table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixTable {
    /// Offset of the capability in configuration space.
    pub cap: u8,
    /// Number of entries (1-2048).
    pub entries: u16,
    /// BAR holding the table.
    pub bar: u8,
    /// Offset of the table inside that BAR.
    pub offset: u64,
}

/// Why the MSI-X capability cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsixError {
    /// The table's BAR is not among the function's memory BARs.
    NoSuchBar(u8),
    /// The table does not fit inside its BAR.
    OutsideBar {
        bar: u8,
        offset: u64,
        entries: u16,
    },
    /// An entry index past the table.
    NoSuchEntry(u16),
    Mmio(OutOfWindow),
}

impl MsixTable {
    /// Decodes the capability at `cap` (message control in the header's
    /// upper half, table BIR/offset in the next dword) and checks the table
    /// lies inside one of `bars`.
    pub fn read(cfg: &dyn ConfigSpace, bdf: Bdf, cap: u8, bars: &[Bar]) -> Result<Self, MsixError> {
        let control = cfg.read32(bdf, u16::from(cap)) >> 16;
        let table = cfg.read32(bdf, u16::from(cap) + 4);
        Self::decode(cap, control as u16, table, bars)
    }

    /// The pure part of [`MsixTable::read`].
    pub fn decode(cap: u8, control: u16, table: u32, bars: &[Bar]) -> Result<Self, MsixError> {
        let entries = (control & 0x7ff) + 1;
        let bir = (table & 0x7) as u8;
        let offset = u64::from(table & !0x7);
        let bar = bars
            .iter()
            .find(|b| b.index == bir && b.kind != super::BarKind::Io)
            .ok_or(MsixError::NoSuchBar(bir))?;
        let end = offset + u64::from(entries) * ENTRY_SIZE;
        if end > bar.size {
            return Err(MsixError::OutsideBar {
                bar: bir,
                offset,
                entries,
            });
        }
        Ok(MsixTable {
            cap,
            entries,
            bar: bir,
            offset,
        })
    }

    /// Bytes of the table, to map from the BAR at `offset`.
    pub fn len(&self) -> usize {
        usize::from(self.entries) * ENTRY_SIZE as usize
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Programs entry `index` (unmasked) in the table mapped at `table`.
    pub fn set_entry(
        &self,
        table: &Mmio,
        index: u16,
        address: u64,
        data: u32,
    ) -> Result<(), MsixError> {
        if index >= self.entries {
            return Err(MsixError::NoSuchEntry(index));
        }
        let at = usize::from(index) * ENTRY_SIZE as usize;
        let w = |off: usize, v: u32| table.write32(at + off, v).map_err(MsixError::Mmio);
        w(12, ENTRY_MASKED)?;
        w(0, address as u32)?;
        w(4, (address >> 32) as u32)?;
        w(8, data)?;
        w(12, 0)
    }

    /// Turns MSI-X on (function mask off); INTx stops.
    pub fn enable(&self, cfg: &dyn ConfigSpace, bdf: Bdf) {
        let v = cfg.read32(bdf, u16::from(self.cap));
        cfg.write32(
            bdf,
            u16::from(self.cap),
            (v | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK,
        );
    }

    /// Turns MSI-X off again (the function goes back to INTx).
    pub fn disable(&self, cfg: &dyn ConfigSpace, bdf: Bdf) {
        let v = cfg.read32(bdf, u16::from(self.cap));
        cfg.write32(bdf, u16::from(self.cap), v & !CONTROL_ENABLE);
    }
}

/// The x86 MSI message for fixed delivery of `vector`, edge-triggered, to
/// the local APIC `apic_id` (physical destination; 8-bit ids in the
/// address, which is all xAPIC and QEMU without an IOMMU can do).
pub fn x86_message(apic_id: u32, vector: u8) -> Option<(u64, u32)> {
    let id = u8::try_from(apic_id).ok()?;
    Some((0xfee0_0000 | (u64::from(id) << 12), u32::from(vector)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::BarKind;

    fn bar(index: u8, size: u64) -> Bar {
        Bar {
            index,
            kind: BarKind::Mem64,
            prefetchable: false,
            address: 0xfe00_0000,
            size,
        }
    }

    #[test]
    fn table_inside_its_bar() {
        // QEMU virtio-net: 3 vectors (control 2), table in BAR1 at 0.
        let t = MsixTable::decode(0x98, 2, 0x0000_0001, &[bar(1, 0x1000)]).unwrap();
        assert_eq!((t.entries, t.bar, t.offset, t.len()), (3, 1, 0, 48));
        assert_eq!(
            MsixTable::decode(0x98, 0x7ff, 0x0000_0001, &[bar(1, 0x1000)]),
            Err(MsixError::OutsideBar {
                bar: 1,
                offset: 0,
                entries: 2048
            })
        );
        assert_eq!(
            MsixTable::decode(0x98, 0, 0x0000_0ff9, &[bar(1, 0x1000)]),
            Err(MsixError::OutsideBar {
                bar: 1,
                offset: 0xff8,
                entries: 1
            })
        );
        assert_eq!(
            MsixTable::decode(0x98, 0, 0x0000_0003, &[bar(1, 0x1000)]),
            Err(MsixError::NoSuchBar(3))
        );
    }

    #[test]
    fn x86_message_format() {
        assert_eq!(x86_message(0, 0x70), Some((0xfee0_0000, 0x70)));
        assert_eq!(x86_message(3, 0x71), Some((0xfee0_3000, 0x71)));
        assert_eq!(x86_message(300, 0x71), None);
    }
}
