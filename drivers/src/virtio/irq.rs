//! virtio interrupts: finding the PCI ISR and common-configuration
//! structures, acknowledging an interrupt (the only thing a handler does
//! to the device), and pointing every queue at one MSI-X vector (legacy
//! devices: see `legacy::route_queues_to_msix`).

use crate::pci::{self, Bdf, Capability, ConfigSpace};
use alloc::boxed::Box;
use skiff_hal::{IoBar, Mmio};

/// `virtio_pci_cap.cfg_type` values.
pub const PCI_CAP_COMMON_CFG: u8 = 1;
pub const PCI_CAP_ISR_CFG: u8 = 3;

/// Common configuration register offsets (virtio 1.x, 4.1.4.3).
const COMMON_MSIX_CONFIG: usize = 0x10;
const COMMON_NUM_QUEUES: usize = 0x12;
const COMMON_QUEUE_SELECT: usize = 0x16;
const COMMON_QUEUE_MSIX_VECTOR: usize = 0x1a;
/// "No vector" in the MSI-X vector fields.
pub const NO_VECTOR: u16 = 0xffff;

/// virtio-mmio InterruptStatus / InterruptACK.
const MMIO_INTERRUPT_STATUS: usize = 0x60;
const MMIO_INTERRUPT_ACK: usize = 0x64;

/// Where one virtio PCI structure lives: BAR number, offset, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Structure {
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// The first vendor capability of `cfg_type` (from a capability list the
/// bus layer already walked safely).
pub fn pci_structure(
    cfg: &dyn ConfigSpace,
    bdf: Bdf,
    caps: &[Capability],
    cfg_type: u8,
) -> Option<Structure> {
    caps.iter()
        .filter(|c| c.id == pci::cap::VENDOR)
        .find_map(|c| {
            let at = u16::from(c.offset);
            let hdr = cfg.read32(bdf, at);
            let cap_len = (hdr >> 16) as u8;
            let ty = (hdr >> 24) as u8;
            if ty != cfg_type || cap_len < 16 {
                return None;
            }
            let bar = (cfg.read32(bdf, at + 4) & 0xff) as u8;
            (bar < 6).then(|| Structure {
                bar,
                offset: cfg.read32(bdf, at + 8),
                length: cfg.read32(bdf, at + 12),
            })
        })
}

/// How a handler acknowledges its device.
pub enum Ack {
    /// virtio-mmio: read InterruptStatus, write it to InterruptACK.
    Mmio(Mmio),
    /// PCI with INTx: reading the ISR byte acknowledges.
    PciIsr(Mmio),
    /// Legacy PCI with INTx: the ISR byte at BAR0 + 0x13 (read
    /// acknowledges), in whatever space BAR0 is.
    LegacyIsr(Box<dyn IoBar>),
    /// MSI-X: edge messages, nothing to acknowledge at the device.
    Msix,
}

impl Ack {
    /// Acknowledges; true if the device had raised the interrupt.
    pub fn ack(&self) -> bool {
        match self {
            Ack::Mmio(m) => {
                let status = m.read32(MMIO_INTERRUPT_STATUS).unwrap_or(0) & 0x3;
                if status != 0 {
                    let _ = m.write32(MMIO_INTERRUPT_ACK, status);
                }
                status != 0
            }
            Ack::PciIsr(m) => m.read8(0).unwrap_or(0) & 0x3 != 0,
            Ack::LegacyIsr(regs) => super::legacy::ack_isr(&**regs),
            Ack::Msix => true,
        }
    }
}

/// Why the queues could not be routed to MSI-X.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The common configuration window is too small or unmapped.
    Window,
    /// The device refused the vector (read back NO_VECTOR).
    Refused { queue: u16 },
}

/// Points every queue at MSI-X table entry `vector` (configuration-change
/// interrupts stay off). Returns the number of queues routed.
pub fn route_queues_to_msix(common: &Mmio, vector: u16) -> Result<u16, RouteError> {
    let w = |off: usize, v: u16| common.write16(off, v).map_err(|_| RouteError::Window);
    let r = |off: usize| common.read16(off).map_err(|_| RouteError::Window);
    w(COMMON_MSIX_CONFIG, NO_VECTOR)?;
    let queues = r(COMMON_NUM_QUEUES)?.min(64);
    for q in 0..queues {
        w(COMMON_QUEUE_SELECT, q)?;
        w(COMMON_QUEUE_MSIX_VECTOR, vector)?;
        if r(COMMON_QUEUE_MSIX_VECTOR)? != vector {
            return Err(RouteError::Refused { queue: q });
        }
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::fake::FakeConfig;

    #[test]
    fn finds_vendor_structures() {
        let cfg = FakeConfig::default();
        let d = Bdf {
            bus: 0,
            device: 1,
            function: 0,
        };
        cfg.add(d, 0x1af4, 0x1041, 0x02_00_00, [(0, 0); 6]);
        // Common cfg in BAR4 at 0, ISR in BAR4 at 0x1000; one cap too short.
        cfg.set(d, 0x40, 0x030c_5009);
        cfg.set(d, 0x50, 0x0110_6009);
        cfg.set(d, 0x54, 4);
        cfg.set(d, 0x58, 0);
        cfg.set(d, 0x5c, 0x38);
        cfg.set(d, 0x60, 0x0310_0009);
        cfg.set(d, 0x64, 4);
        cfg.set(d, 0x68, 0x1000);
        cfg.set(d, 0x6c, 0x1000);
        let caps = [
            Capability {
                id: 9,
                offset: 0x40,
            },
            Capability {
                id: 9,
                offset: 0x50,
            },
            Capability {
                id: 9,
                offset: 0x60,
            },
        ];
        assert_eq!(
            pci_structure(&cfg, d, &caps, PCI_CAP_COMMON_CFG),
            Some(Structure {
                bar: 4,
                offset: 0,
                length: 0x38
            })
        );
        assert_eq!(
            pci_structure(&cfg, d, &caps, PCI_CAP_ISR_CFG),
            Some(Structure {
                bar: 4,
                offset: 0x1000,
                length: 0x1000
            })
        );
        assert_eq!(pci_structure(&cfg, d, &caps, 2), None);
    }
}
