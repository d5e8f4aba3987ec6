//! The legacy virtio PCI interface (virtio 0.9.5; "legacy interface" of
//! virtio 1.x, 4.1.4.8): every register in I/O BAR0, the queue size fixed
//! by the device, 32 feature bits, queues given as one page-aligned block
//! by page frame number. VirtualBox's virtio-net and QEMU devices with
//! `disable-modern=on` offer only this; `virtio-drivers` has no transport
//! for it, so [`LegacyPci`] implements its `Transport` over a HAL
//! [`IoBar`] (x86 ports, or arm64's PCI I/O window mapped as MMIO).
//!
//! Nothing the device returns is trusted: a queue size that is 0 or not a
//! power of two reads as "no queue", configuration accesses past the BAR
//! fail, and a queue of a size other than the device's is refused (the
//! transport is marked failed, status FAILED) rather than set up with a
//! layout the device would misread.

use super::DeviceError;
use crate::pci::{Bdf, ConfigSpace};
use alloc::boxed::Box;
use skiff_hal::IoBar;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Register offsets in BAR0 (virtio 1.x 4.1.4.8).
pub mod reg {
    pub const HOST_FEATURES: usize = 0x00;
    pub const GUEST_FEATURES: usize = 0x04;
    pub const QUEUE_PFN: usize = 0x08;
    /// Read-only: the device fixes each queue's size.
    pub const QUEUE_NUM: usize = 0x0c;
    pub const QUEUE_SEL: usize = 0x0e;
    pub const QUEUE_NOTIFY: usize = 0x10;
    pub const STATUS: usize = 0x12;
    /// Reading acknowledges (and clears) the interrupt.
    pub const ISR: usize = 0x13;
    /// Only while MSI-X is enabled.
    pub const MSIX_CONFIG_VECTOR: usize = 0x14;
    pub const MSIX_QUEUE_VECTOR: usize = 0x16;
    /// Device configuration: here without MSI-X...
    pub const CONFIG: usize = 0x14;
    /// ...and here while MSI-X is enabled.
    pub const CONFIG_MSIX: usize = 0x18;
}

/// The legacy interface's page size: queue addresses are page numbers.
pub const PAGE: u64 = 4096;
/// The queue alignment of the legacy layout (2.6.2).
const QUEUE_ALIGN: u64 = 4096;
/// "No vector" in the MSI-X vector registers.
pub const NO_VECTOR: u16 = 0xffff;
/// The largest queue size the spec allows.
const MAX_QUEUE: u16 = 32768;

/// PCI device ids of transitional (and legacy-only) virtio functions: the
/// device type is then the subsystem id.
pub const TRANSITIONAL_IDS: core::ops::RangeInclusive<u16> = 0x1000..=0x103f;

/// The device type of a transitional function, from its PCI subsystem id
/// (`subsystem`, the upper half of configuration dword 0x2c).
pub fn transitional_type(device_id: u16, subsystem: u16) -> Option<DeviceType> {
    if !TRANSITIONAL_IDS.contains(&device_id) {
        return None;
    }
    DeviceType::try_from(subsystem).ok()
}

/// Where the function's MSI-X capability is, to tell whether MSI-X is
/// enabled right now: that moves the device configuration from 0x14 to
/// 0x18 (the device decides by the same bit).
#[derive(Clone, Copy)]
pub struct MsixCap {
    pub cfg: &'static dyn ConfigSpace,
    pub bdf: Bdf,
    /// Offset of the capability in configuration space.
    pub offset: u8,
}

impl MsixCap {
    pub fn enabled(&self) -> bool {
        self.cfg.read32(self.bdf, u16::from(self.offset)) & (1 << 31) != 0
    }
}

/// A legacy virtio PCI transport over the function's BAR0.
pub struct LegacyPci {
    regs: Box<dyn IoBar>,
    device_type: DeviceType,
    msix: Option<MsixCap>,
    /// A queue set up wrongly (size mismatch, bad layout): the device was
    /// given status FAILED and is not driven again.
    failed: bool,
}

impl core::fmt::Debug for LegacyPci {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LegacyPci")
            .field("device_type", &self.device_type)
            .field("len", &self.regs.len())
            .field("failed", &self.failed)
            .finish()
    }
}

impl LegacyPci {
    /// Takes the function with PCI `device_id` and `subsystem` id whose
    /// BAR0 (an I/O BAR, decoding enabled) is `regs`. `msix`: its MSI-X
    /// capability, if it has one.
    pub fn new(
        regs: Box<dyn IoBar>,
        device_id: u16,
        subsystem: u16,
        msix: Option<MsixCap>,
    ) -> Result<Self, DeviceError> {
        let Some(device_type) = transitional_type(device_id, subsystem) else {
            log::warn!(
                "virtio: legacy device={device_id:04x} subsystem={subsystem:04x} is no legacy virtio type"
            );
            return Err(DeviceError::Transport);
        };
        // The common header, plus the MSI-X vectors when there is MSI-X.
        let need = if msix.is_some() {
            reg::CONFIG_MSIX
        } else {
            reg::CONFIG
        };
        if regs.len() < need {
            log::warn!(
                "virtio: legacy bar0 len={:#x} below the header len={need:#x}",
                regs.len()
            );
            return Err(DeviceError::Transport);
        }
        Ok(Self {
            regs,
            device_type,
            msix,
            failed: false,
        })
    }

    /// Whether a queue was refused (the device has status FAILED).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether MSI-X is enabled now (device configuration at 0x18).
    pub fn msix_enabled(&self) -> bool {
        self.msix.is_some_and(|m| m.enabled())
    }

    /// Where the device configuration starts now.
    pub fn config_offset(&self) -> usize {
        if self.msix_enabled() {
            reg::CONFIG_MSIX
        } else {
            reg::CONFIG
        }
    }

    /// The size the device fixes for `queue`: `None` if the queue does
    /// not exist, or the device reports a size that is not a power of two
    /// in 1..=32768 (never trusted).
    pub fn queue_size(&self, queue: u16) -> Option<u16> {
        self.regs.write16(reg::QUEUE_SEL, queue).ok()?;
        let n = self.regs.read16(reg::QUEUE_NUM).ok()?;
        if n == 0 {
            return None;
        }
        if !n.is_power_of_two() || n > MAX_QUEUE {
            log::warn!("virtio: legacy queue={queue} bad size={n}; ignored");
            return None;
        }
        Some(n)
    }

    /// The number of queues (the first without a size ends them), at most 64.
    pub fn queue_count(&self) -> u16 {
        (0..64)
            .take_while(|&q| self.queue_size(q).is_some())
            .count() as u16
    }

    /// Gives up on the device: status FAILED, and no later status change
    /// takes it back.
    fn fail(&mut self) {
        self.failed = true;
        let _ = self
            .regs
            .write8(reg::STATUS, DeviceStatus::FAILED.bits() as u8);
    }

    /// The register block (for interrupt routing and acknowledgement).
    pub fn regs(&self) -> &dyn IoBar {
        &*self.regs
    }

    /// Bounds check of a device-configuration access: the BAR offset.
    fn config_at(&self, offset: usize, len: usize) -> Result<usize, Error> {
        let at = self
            .config_offset()
            .checked_add(offset)
            .ok_or(Error::ConfigSpaceTooSmall)?;
        let end = at.checked_add(len).ok_or(Error::ConfigSpaceTooSmall)?;
        if end > self.regs.len() {
            return Err(Error::ConfigSpaceTooSmall);
        }
        Ok(at)
    }
}

/// Points the configuration-change vector nowhere and every queue at MSI-X
/// table entry `vector` (each read back: a device out of vectors answers
/// NO_VECTOR). MSI-X must be enabled first (the registers exist only then).
/// Returns the number of queues routed.
pub fn route_queues_to_msix(regs: &dyn IoBar, vector: u16) -> Result<u16, RouteError> {
    let w = |off: usize, v: u16| regs.write16(off, v).map_err(|_| RouteError::Window);
    let r = |off: usize| regs.read16(off).map_err(|_| RouteError::Window);
    w(reg::MSIX_CONFIG_VECTOR, NO_VECTOR)?;
    let mut routed = 0;
    for q in 0..64u16 {
        w(reg::QUEUE_SEL, q)?;
        if r(reg::QUEUE_NUM)? == 0 {
            break;
        }
        w(reg::MSIX_QUEUE_VECTOR, vector)?;
        if r(reg::MSIX_QUEUE_VECTOR)? != vector {
            return Err(RouteError::Refused { queue: q });
        }
        routed += 1;
    }
    Ok(routed)
}

/// Acknowledges an interrupt: reading the ISR byte clears it. True if the
/// device had raised it (queue or configuration bit).
pub fn ack_isr(regs: &dyn IoBar) -> bool {
    regs.read8(reg::ISR).unwrap_or(0) & 0x3 != 0
}

pub use super::irq::RouteError;

impl Transport for LegacyPci {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    /// Legacy devices have 32 feature bits.
    fn read_device_features(&mut self) -> u64 {
        u64::from(self.regs.read32(reg::HOST_FEATURES).unwrap_or(0))
    }

    /// Bits 32 and up (VERSION_1 and later) do not exist here: dropped.
    fn write_driver_features(&mut self, driver_features: u64) {
        let _ = self
            .regs
            .write32(reg::GUEST_FEATURES, driver_features as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.queue_size(queue).map(u32::from).unwrap_or(0)
    }

    fn notify(&mut self, queue: u16) {
        if !self.failed {
            let _ = self.regs.write16(reg::QUEUE_NOTIFY, queue);
        }
    }

    fn get_status(&self) -> DeviceStatus {
        let s = self.regs.read8(reg::STATUS).unwrap_or(0);
        DeviceStatus::from_bits_truncate(u32::from(s))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        // A failed transport stays failed until reset (status 0), which
        // the driver's drop does; a later DRIVER_OK must not revive it.
        if self.failed && !status.is_empty() {
            return;
        }
        let _ = self.regs.write8(reg::STATUS, status.bits() as u8);
    }

    /// Fixed at 4096 in the legacy PCI interface.
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        if u64::from(guest_page_size) != PAGE {
            log::warn!("virtio: legacy pci page size={guest_page_size} is not 4096; failed");
            self.fail();
        }
    }

    fn requires_legacy_layout(&self) -> bool {
        true
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        let Some(fixed) = self.queue_size(queue) else {
            log::warn!("virtio: legacy queue={queue} does not exist; device failed");
            self.fail();
            return;
        };
        if size != u32::from(fixed) {
            log::warn!(
                "virtio: legacy queue={queue} size={size} but the device fixes size={fixed}; device failed"
            );
            self.fail();
            return;
        }
        // The one layout the device computes from the PFN and its size.
        let size = u64::from(size);
        let avail_end = descriptors + 16 * size + 6 + 2 * size;
        let used = avail_end.next_multiple_of(QUEUE_ALIGN);
        let pfn = descriptors / PAGE;
        if !descriptors.is_multiple_of(PAGE)
            || driver_area != descriptors + 16 * size
            || device_area != used
            || pfn == 0
            || pfn > u64::from(u32::MAX)
        {
            log::warn!(
                "virtio: legacy queue={queue} layout desc={descriptors:#x} avail={driver_area:#x} used={device_area:#x} not legacy; device failed"
            );
            self.fail();
            return;
        }
        let _ = self.regs.write32(reg::QUEUE_PFN, pfn as u32);
    }

    fn queue_unset(&mut self, queue: u16) {
        if self.regs.write16(reg::QUEUE_SEL, queue).is_ok() {
            let _ = self.regs.write32(reg::QUEUE_PFN, 0);
        }
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.regs.write16(reg::QUEUE_SEL, queue).is_ok()
            && self.regs.read32(reg::QUEUE_PFN).unwrap_or(0) != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let isr = self.regs.read8(reg::ISR).unwrap_or(0);
        InterruptStatus::from_bits_truncate(u32::from(isr))
    }

    /// Legacy devices have no generation counter.
    fn read_config_generation(&self) -> u32 {
        0
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, Error> {
        let len = core::mem::size_of::<T>();
        let at = self.config_at(offset, len)?;
        let mut v = T::new_zeroed();
        let bytes = v.as_mut_bytes();
        let bad = |_| Error::ConfigSpaceTooSmall;
        match len {
            2 if at.is_multiple_of(2) => {
                bytes.copy_from_slice(&self.regs.read16(at).map_err(bad)?.to_le_bytes())
            }
            4 if at.is_multiple_of(4) => {
                bytes.copy_from_slice(&self.regs.read32(at).map_err(bad)?.to_le_bytes())
            }
            _ => {
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = self.regs.read8(at + i).map_err(bad)?;
                }
            }
        }
        Ok(v)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), Error> {
        let bytes = value.as_bytes();
        let at = self.config_at(offset, bytes.len())?;
        let bad = |_| Error::ConfigSpaceTooSmall;
        match *bytes {
            [a, b] if at.is_multiple_of(2) => self
                .regs
                .write16(at, u16::from_le_bytes([a, b]))
                .map_err(bad),
            [a, b, c, d] if at.is_multiple_of(4) => self
                .regs
                .write32(at, u32::from_le_bytes([a, b, c, d]))
                .map_err(bad),
            _ => {
                for (i, b) in bytes.iter().enumerate() {
                    self.regs.write8(at + i, *b).map_err(bad)?;
                }
                Ok(())
            }
        }
    }
}

impl Drop for LegacyPci {
    fn drop(&mut self) {
        // Reset, so the device stops using queue memory that is going back.
        let _ = self.regs.write8(reg::STATUS, 0);
    }
}

#[cfg(test)]
mod tests;
