//! The hardware-access layer drivers are written against.
//!
//! Drivers get device registers as an [`Mmio`] window (bounds-checked,
//! volatile) or through [`PortIo`], never as raw pointers, and never call the
//! kernel. The kernel/platform side constructs these from addresses the arch
//! crate mapped. DMA memory and IRQ registration join here with the virtio
//! work. Depends on nothing.
#![no_std]

/// A window of device registers, mapped uncached by the arch crate.
///
/// Every access is bounds- and alignment-checked against the window, so a
/// driver bug (or a device handing back a bogus offset) cannot touch memory
/// outside the device.
#[derive(Debug)]
pub struct Mmio {
    base: usize,
    len: usize,
}

/// Register access outside the window, or misaligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfWindow {
    pub offset: usize,
}

impl Mmio {
    /// # Safety
    /// `base..base+len` must be a virtual mapping of device registers that
    /// stays mapped for the life of this value, and nothing else may treat
    /// that memory as ordinary Rust memory.
    pub const unsafe fn new(base: usize, len: usize) -> Self {
        Self { base, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, size: usize) -> Result<usize, OutOfWindow> {
        let end = offset.checked_add(size).ok_or(OutOfWindow { offset })?;
        if end > self.len || !offset.is_multiple_of(size) {
            return Err(OutOfWindow { offset });
        }
        Ok(self.base + offset)
    }

    pub fn read32(&self, offset: usize) -> Result<u32, OutOfWindow> {
        let addr = self.check(offset, 4)?;
        // SAFETY: `check` kept the access inside the device window that
        // `new`'s caller vouched for, and aligned.
        Ok(unsafe { raw::read32(addr) })
    }

    pub fn write32(&self, offset: usize, value: u32) -> Result<(), OutOfWindow> {
        let addr = self.check(offset, 4)?;
        // SAFETY: as in `read32`.
        unsafe { raw::write32(addr, value) };
        Ok(())
    }

    pub fn read8(&self, offset: usize) -> Result<u8, OutOfWindow> {
        let addr = self.check(offset, 1)?;
        // SAFETY: as in `read32`.
        Ok(unsafe { raw::read8(addr) })
    }

    pub fn write8(&self, offset: usize, value: u8) -> Result<(), OutOfWindow> {
        let addr = self.check(offset, 1)?;
        // SAFETY: as in `read32`.
        unsafe { raw::write8(addr, value) };
        Ok(())
    }
}

/// The single instructions behind [`Mmio`]. On aarch64 these are plain
/// `ldr`/`str` with a base register only: a hypervisor emulating an MMIO
/// access from the data-abort syndrome cannot handle writeback or paired
/// forms, which `read_volatile` is free to produce. Elsewhere volatile
/// accesses are exactly one instruction already.
mod raw {
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn read32(addr: usize) -> u32 {
        let v: u32;
        // SAFETY: the caller guarantees `addr` is a mapped, aligned register.
        unsafe {
            core::arch::asm!("ldr {0:w}, [{1}]", out(reg) v, in(reg) addr, options(nostack, readonly, preserves_flags))
        };
        v
    }
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn write32(addr: usize, v: u32) {
        // SAFETY: as in `read32`.
        unsafe {
            core::arch::asm!("str {0:w}, [{1}]", in(reg) v, in(reg) addr, options(nostack, preserves_flags))
        };
    }
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn read8(addr: usize) -> u8 {
        let v: u32;
        // SAFETY: as in `read32`.
        unsafe {
            core::arch::asm!("ldrb {0:w}, [{1}]", out(reg) v, in(reg) addr, options(nostack, readonly, preserves_flags))
        };
        v as u8
    }
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn write8(addr: usize, v: u8) {
        // SAFETY: as in `read32`.
        unsafe {
            core::arch::asm!("strb {0:w}, [{1}]", in(reg) u32::from(v), in(reg) addr, options(nostack, preserves_flags))
        };
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub unsafe fn read32(addr: usize) -> u32 {
        // SAFETY: the caller guarantees `addr` is a mapped, aligned register.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    pub unsafe fn write32(addr: usize, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    pub unsafe fn read8(addr: usize) -> u8 {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(addr as *const u8) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    pub unsafe fn write8(addr: usize, v: u8) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u8, v) }
    }
}

/// x86 port I/O, provided by the arch side. Drivers for ISA-style devices
/// (the 16550 UART) are generic over it.
pub trait PortIo: Send + Sync {
    fn inb(&self, port: u16) -> u8;
    fn outb(&self, port: u16, value: u8);
}

/// Byte-register access to a device that may sit behind ports or MMIO.
pub trait ByteRegisters: Send + Sync {
    fn read(&self, reg: usize) -> u8;
    fn write(&self, reg: usize, value: u8);
}

/// A byte-register block in the x86 port space.
pub struct PortRegisters<P: PortIo> {
    pub io: P,
    pub base: u16,
}

impl<P: PortIo> ByteRegisters for PortRegisters<P> {
    fn read(&self, reg: usize) -> u8 {
        self.io.inb(self.base.wrapping_add(reg as u16))
    }
    fn write(&self, reg: usize, value: u8) {
        self.io.outb(self.base.wrapping_add(reg as u16), value)
    }
}

/// A byte-register block in MMIO with registers `stride` bytes apart
/// (SPCR/DT `reg-shift`). Out-of-window accesses read as 0xff and write nothing.
pub struct MmioRegisters {
    pub mmio: Mmio,
    pub stride: usize,
}

impl ByteRegisters for MmioRegisters {
    fn read(&self, reg: usize) -> u8 {
        let off = reg * self.stride;
        if self.stride == 4 {
            self.mmio.read32(off).map(|v| v as u8).unwrap_or(0xff)
        } else {
            self.mmio.read8(off).unwrap_or(0xff)
        }
    }
    fn write(&self, reg: usize, value: u8) {
        let off = reg * self.stride;
        let _ = if self.stride == 4 {
            self.mmio.write32(off, value as u32)
        } else {
            self.mmio.write8(off, value)
        };
    }
}
