//! The hardware-access layer drivers are written against.
//!
//! Drivers get device registers as an [`Mmio`] window (bounds-checked,
//! volatile) or through [`PortIo`], never as raw pointers, and never call the
//! kernel. The kernel/platform side constructs these from addresses the arch
//! crate mapped. DMA memory ([`DmaAllocator`], [`DmaRegion`]) and interrupt
//! registration ([`IrqRegistrar`], [`IrqHandler`]) are traits the kernel
//! implements (`kernel/src/devices/`) and hands to drivers as trait objects.
//! Depends on nothing.
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

    /// The window's virtual base, for a driver library that takes raw
    /// pointers (`virtio-drivers`); the [`Mmio`] value is then consumed.
    pub fn base(&self) -> usize {
        self.base
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

    pub fn read16(&self, offset: usize) -> Result<u16, OutOfWindow> {
        let addr = self.check(offset, 2)?;
        // SAFETY: as in `read32`.
        Ok(unsafe { raw::read16(addr) })
    }

    pub fn write16(&self, offset: usize, value: u16) -> Result<(), OutOfWindow> {
        let addr = self.check(offset, 2)?;
        // SAFETY: as in `read32`.
        unsafe { raw::write16(addr, value) };
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
    pub unsafe fn read16(addr: usize) -> u16 {
        let v: u32;
        // SAFETY: as in `read32`.
        unsafe {
            core::arch::asm!("ldrh {0:w}, [{1}]", out(reg) v, in(reg) addr, options(nostack, readonly, preserves_flags))
        };
        v as u16
    }
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn write16(addr: usize, v: u16) {
        // SAFETY: as in `read32`.
        unsafe {
            core::arch::asm!("strh {0:w}, [{1}]", in(reg) u32::from(v), in(reg) addr, options(nostack, preserves_flags))
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
    pub unsafe fn read16(addr: usize) -> u16 {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(addr as *const u16) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    pub unsafe fn write16(addr: usize, v: u16) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u16, v) }
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

/// x86 port I/O of every width, provided by the arch side, for devices
/// behind a PCI I/O BAR (see [`PortBar`]).
pub trait PortAccess: Send + Sync {
    fn in8(&self, port: u16) -> u8;
    fn in16(&self, port: u16) -> u16;
    fn in32(&self, port: u16) -> u32;
    fn out8(&self, port: u16, value: u8);
    fn out16(&self, port: u16, value: u16);
    fn out32(&self, port: u16, value: u32);
}

/// The registers of a PCI I/O BAR, by byte offset from the BAR's start:
/// x86 port I/O ([`PortBar`]), or on arm64 the host bridge's I/O window
/// mapped as MMIO (an [`Mmio`] over the BAR's part of the window). Every
/// access is bounds- and alignment-checked like [`Mmio`]'s.
pub trait IoBar: Send + Sync {
    /// Bytes of registers (the BAR's size).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn read8(&self, offset: usize) -> Result<u8, OutOfWindow>;
    fn read16(&self, offset: usize) -> Result<u16, OutOfWindow>;
    fn read32(&self, offset: usize) -> Result<u32, OutOfWindow>;
    fn write8(&self, offset: usize, value: u8) -> Result<(), OutOfWindow>;
    fn write16(&self, offset: usize, value: u16) -> Result<(), OutOfWindow>;
    fn write32(&self, offset: usize, value: u32) -> Result<(), OutOfWindow>;
}

impl IoBar for Mmio {
    fn len(&self) -> usize {
        Mmio::len(self)
    }
    fn read8(&self, offset: usize) -> Result<u8, OutOfWindow> {
        Mmio::read8(self, offset)
    }
    fn read16(&self, offset: usize) -> Result<u16, OutOfWindow> {
        Mmio::read16(self, offset)
    }
    fn read32(&self, offset: usize) -> Result<u32, OutOfWindow> {
        Mmio::read32(self, offset)
    }
    fn write8(&self, offset: usize, value: u8) -> Result<(), OutOfWindow> {
        Mmio::write8(self, offset, value)
    }
    fn write16(&self, offset: usize, value: u16) -> Result<(), OutOfWindow> {
        Mmio::write16(self, offset, value)
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), OutOfWindow> {
        Mmio::write32(self, offset, value)
    }
}

/// An I/O BAR in the x86 port space: ports `base..base+len`.
pub struct PortBar<P: PortAccess> {
    io: P,
    base: u16,
    len: u16,
}

impl<P: PortAccess> PortBar<P> {
    /// `None` if `base..base+len` runs past the 64 KiB port space.
    pub fn new(io: P, base: u16, len: u16) -> Option<Self> {
        base.checked_add(len.checked_sub(1)?)?;
        Some(Self { io, base, len })
    }

    fn port(&self, offset: usize, size: usize) -> Result<u16, OutOfWindow> {
        let end = offset.checked_add(size).ok_or(OutOfWindow { offset })?;
        if end > usize::from(self.len) || !offset.is_multiple_of(size) {
            return Err(OutOfWindow { offset });
        }
        // In range: `new` checked base + len - 1 fits in u16.
        Ok(self.base + offset as u16)
    }
}

impl<P: PortAccess> IoBar for PortBar<P> {
    fn len(&self) -> usize {
        usize::from(self.len)
    }
    fn read8(&self, offset: usize) -> Result<u8, OutOfWindow> {
        Ok(self.io.in8(self.port(offset, 1)?))
    }
    fn read16(&self, offset: usize) -> Result<u16, OutOfWindow> {
        Ok(self.io.in16(self.port(offset, 2)?))
    }
    fn read32(&self, offset: usize) -> Result<u32, OutOfWindow> {
        Ok(self.io.in32(self.port(offset, 4)?))
    }
    fn write8(&self, offset: usize, value: u8) -> Result<(), OutOfWindow> {
        self.io.out8(self.port(offset, 1)?, value);
        Ok(())
    }
    fn write16(&self, offset: usize, value: u16) -> Result<(), OutOfWindow> {
        self.io.out16(self.port(offset, 2)?, value);
        Ok(())
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), OutOfWindow> {
        self.io.out32(self.port(offset, 4)?, value);
        Ok(())
    }
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

// ---- DMA memory ----

/// Size of a DMA page: allocations are whole pages, page-aligned.
pub const DMA_PAGE_SIZE: usize = 4096;

/// Why DMA memory could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// No physically contiguous run of that many pages is free.
    OutOfMemory { pages: usize },
    /// Zero pages, or a count too large to express.
    BadSize { pages: usize },
}

/// Physically contiguous memory shared with a device.
///
/// `device_addr` is what the device is told (a physical or bus/IOMMU
/// address); `virt` is where the CPU sees the same bytes. Both cover
/// `pages * DMA_PAGE_SIZE` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaBlock {
    pub device_addr: u64,
    pub virt: usize,
    pub pages: usize,
}

/// The kernel's provider of DMA memory. Implementations return zeroed,
/// page-aligned, physically contiguous memory that nothing else uses until
/// it is given back with [`DmaAllocator::free`].
pub trait DmaAllocator: Send + Sync {
    /// Allocates `pages` zeroed contiguous pages.
    fn alloc(&self, pages: usize) -> Result<DmaBlock, DmaError>;
    /// Gives back a block from [`DmaAllocator::alloc`], unchanged.
    fn free(&self, block: DmaBlock);
    /// The CPU address of device memory (a BAR or an MMIO window) at
    /// physical `phys..phys+len`, mapped uncached; `None` if it cannot be
    /// mapped or lies where no device may be.
    fn map_mmio(&self, phys: u64, len: usize) -> Option<usize>;
    /// The CPU address of a device address from [`DmaAllocator::alloc`]
    /// (only valid inside a live block).
    fn device_to_virt(&self, device_addr: u64) -> usize;
}

/// An owned DMA block: zeroed on allocation, freed when dropped.
pub struct DmaRegion<'a> {
    block: DmaBlock,
    owner: &'a dyn DmaAllocator,
}

impl<'a> DmaRegion<'a> {
    /// Allocates `pages` zeroed contiguous pages from `owner`.
    pub fn new(owner: &'a dyn DmaAllocator, pages: usize) -> Result<Self, DmaError> {
        if pages == 0 || pages.checked_mul(DMA_PAGE_SIZE).is_none() {
            return Err(DmaError::BadSize { pages });
        }
        let block = owner.alloc(pages)?;
        Ok(Self { block, owner })
    }

    /// The address to give the device.
    pub fn device_addr(&self) -> u64 {
        self.block.device_addr
    }

    pub fn len(&self) -> usize {
        self.block.pages * DMA_PAGE_SIZE
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The memory as bytes. A device may write it concurrently (that is
    /// what DMA is), so callers read what they need once and validate it.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the allocator handed us `len()` bytes at `virt`,
        // exclusively ours until `free` in `drop`.
        unsafe { core::slice::from_raw_parts(self.block.virt as *const u8, self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the CPU side unique.
        unsafe { core::slice::from_raw_parts_mut(self.block.virt as *mut u8, self.len()) }
    }
}

impl Drop for DmaRegion<'_> {
    fn drop(&mut self) {
        self.owner.free(self.block);
    }
}

// ---- Interrupts ----

/// What a registered handler is told to do. It runs in interrupt context
/// with interrupts off: it acknowledges the device and wakes the thread
/// that owns it, nothing more.
pub trait IrqHandler: Send + Sync {
    /// The line fired. Returns true if the device had something pending
    /// (a shared line asks every handler).
    fn handle(&self) -> bool;
}

/// How an interrupt reaches the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqSource {
    /// A platform line: an x86 GSI (IOAPIC) or a GIC INTID (SPI).
    Line(u32),
    /// A message-signalled interrupt the kernel allocated: `address`/`data`
    /// go into the device's MSI-X table entry.
    Msi { line: u32, address: u64, data: u32 },
}

/// Why an interrupt could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// The line number is outside what the controller has.
    NoSuchLine(u32),
    /// No MSI vectors (or this arch has no MSI support yet).
    NoMsi,
    /// The table of handlers is full.
    Full,
}

/// The kernel's interrupt registration.
pub trait IrqRegistrar: Send + Sync {
    /// Calls `handler` whenever `line` fires, and unmasks the line.
    fn register_line(&self, line: u32, handler: &'static dyn IrqHandler) -> Result<(), IrqError>;
    /// Allocates a message-signalled interrupt for `handler`; returns the
    /// `IrqSource::Msi` to program into the device.
    fn register_msi(&self, handler: &'static dyn IrqHandler) -> Result<IrqSource, IrqError>;
}

/// How a driver waits for a request it submitted: the kernel blocks the
/// calling thread until the device's interrupt (or a periodic re-check)
/// finds `done()` true. Drivers without one spin on `done()` instead.
pub trait CompletionWait: Send + Sync {
    /// Returns once `done()` holds. `done` may run with interrupts off: it
    /// must only read memory (a used ring), never block.
    fn wait(&self, done: &mut dyn FnMut() -> bool);
}

/// Spins until `done()` holds: the polling fallback.
pub fn spin_until(done: &mut dyn FnMut() -> bool) {
    while !done() {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A heap-backed allocator that records frees.
    struct Fake {
        freed: std::sync::Mutex<Vec<u64>>,
    }

    impl DmaAllocator for Fake {
        fn alloc(&self, pages: usize) -> Result<DmaBlock, DmaError> {
            let layout =
                std::alloc::Layout::from_size_align(pages * DMA_PAGE_SIZE, DMA_PAGE_SIZE).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(layout) };
            Ok(DmaBlock {
                device_addr: p as u64,
                virt: p as usize,
                pages,
            })
        }
        fn free(&self, block: DmaBlock) {
            self.freed.lock().unwrap().push(block.device_addr);
            let layout =
                std::alloc::Layout::from_size_align(block.pages * DMA_PAGE_SIZE, DMA_PAGE_SIZE)
                    .unwrap();
            // SAFETY: allocated above with the same layout.
            unsafe { std::alloc::dealloc(block.virt as *mut u8, layout) };
        }
        fn map_mmio(&self, _: u64, _: usize) -> Option<usize> {
            None
        }
        fn device_to_virt(&self, a: u64) -> usize {
            a as usize
        }
    }

    #[test]
    fn region_is_zeroed_and_freed_on_drop() {
        let fake = Fake {
            freed: std::sync::Mutex::new(Vec::new()),
        };
        let addr;
        {
            let mut r = DmaRegion::new(&fake, 2).unwrap();
            assert_eq!(r.len(), 8192);
            assert!(r.as_slice().iter().all(|&b| b == 0));
            r.as_mut_slice()[8191] = 1;
            addr = r.device_addr();
        }
        assert_eq!(*fake.freed.lock().unwrap(), [addr]);
        assert_eq!(
            DmaRegion::new(&fake, 0).err(),
            Some(DmaError::BadSize { pages: 0 })
        );
    }

    /// Records port accesses as (port, width, value).
    struct Ports(std::sync::Mutex<Vec<(u16, u8, u32)>>);

    impl PortAccess for Ports {
        fn in8(&self, p: u16) -> u8 {
            self.0.lock().unwrap().push((p, 1, 0));
            0x5a
        }
        fn in16(&self, p: u16) -> u16 {
            self.0.lock().unwrap().push((p, 2, 0));
            0x1234
        }
        fn in32(&self, p: u16) -> u32 {
            self.0.lock().unwrap().push((p, 4, 0));
            0xdead_beef
        }
        fn out8(&self, p: u16, v: u8) {
            self.0.lock().unwrap().push((p, 1, v.into()));
        }
        fn out16(&self, p: u16, v: u16) {
            self.0.lock().unwrap().push((p, 2, v.into()));
        }
        fn out32(&self, p: u16, v: u32) {
            self.0.lock().unwrap().push((p, 4, v));
        }
    }

    #[test]
    fn port_bar_checks_bounds_and_alignment() {
        let bar = PortBar::new(Ports(std::sync::Mutex::new(Vec::new())), 0xc000, 0x20).unwrap();
        assert_eq!(bar.read32(0x1c), Ok(0xdead_beef));
        assert_eq!(bar.read16(0xe), Ok(0x1234));
        assert_eq!(bar.write8(0x13, 7), Ok(()));
        assert_eq!(bar.read32(0x1e), Err(OutOfWindow { offset: 0x1e }));
        assert_eq!(bar.read32(0x20), Err(OutOfWindow { offset: 0x20 }));
        assert_eq!(bar.read8(0x20), Err(OutOfWindow { offset: 0x20 }));
        assert_eq!(bar.write16(0x11, 1), Err(OutOfWindow { offset: 0x11 }));
        assert_eq!(
            bar.read8(usize::MAX),
            Err(OutOfWindow { offset: usize::MAX })
        );
        assert_eq!(
            *bar.io.0.lock().unwrap(),
            [(0xc01c, 4, 0), (0xc00e, 2, 0), (0xc013, 1, 7)]
        );
        assert!(PortBar::new(Ports(std::sync::Mutex::new(Vec::new())), 0xfff0, 0x20).is_none());
        assert!(PortBar::new(Ports(std::sync::Mutex::new(Vec::new())), 0xffe0, 0x20).is_some());
        assert!(PortBar::new(Ports(std::sync::Mutex::new(Vec::new())), 0, 0).is_none());
    }
}
