//! The kernel's side of the driver HAL's DMA memory: physically contiguous
//! zeroed frames from the buddy allocator, seen by the CPU through the
//! direct map, and device register windows mapped uncached.
//!
//! Device addresses are physical addresses (no IOMMU). A register window is
//! only mapped if the bus layer registered it first ([`allow_mmio`]): a BAR
//! the device moved outside its validated place, or an address a driver
//! library made up, is refused rather than mapped.

use crate::{arch, mm};
use skiff_drivers::hal::{DmaAllocator, DmaBlock, DmaError, DMA_PAGE_SIZE};
use spin::Mutex;

/// The one allocator the drivers get.
pub struct KernelDma;

pub static KERNEL_DMA: KernelDma = KernelDma;

/// Register windows the bus layer validated: (phys, len).
static ALLOWED: Mutex<arrayvec::ArrayVec<(u64, u64), 64>> =
    Mutex::new(arrayvec::ArrayVec::new_const());

/// Registers `phys..phys+len` as device registers drivers may map.
pub fn allow_mmio(phys: u64, len: u64) -> bool {
    arch::cpu::without_interrupts(|| ALLOWED.lock().try_push((phys, len)).is_ok())
}

fn allowed(phys: u64, len: u64) -> bool {
    let Some(end) = phys.checked_add(len) else {
        return false;
    };
    arch::cpu::without_interrupts(|| {
        ALLOWED
            .lock()
            .iter()
            .any(|&(p, l)| phys >= p && end <= p.saturating_add(l))
    })
}

/// Buddy order for `pages` pages.
pub fn order_for(pages: usize) -> usize {
    pages.next_power_of_two().trailing_zeros() as usize
}

impl DmaAllocator for KernelDma {
    fn alloc(&self, pages: usize) -> Result<DmaBlock, DmaError> {
        if pages == 0 || pages > 1 << 10 {
            return Err(DmaError::BadSize { pages });
        }
        let order = order_for(pages);
        let pa = mm::alloc_frames(order).map_err(|_| DmaError::OutOfMemory { pages })?;
        let virt = arch::mm::phys_to_virt(pa);
        let len = (1usize << order) * DMA_PAGE_SIZE;
        // SAFETY: `pa` is a fresh block of 2^order frames from the buddy
        // allocator, so nothing else refers to it, and all usable RAM is in
        // the direct map (mm::init), so `virt..virt+len` is mapped writable.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_bytes(virt as *mut u8, 0, len)
        };
        Ok(DmaBlock {
            device_addr: pa,
            virt,
            pages,
        })
    }

    fn free(&self, block: DmaBlock) {
        if let Err(e) = mm::free_frames(block.device_addr, order_for(block.pages)) {
            log::warn!(
                "devices: dma free failed addr={:#x} pages={} error={e:?}",
                block.device_addr,
                block.pages
            );
        }
    }

    fn map_mmio(&self, phys: u64, len: usize) -> Option<usize> {
        if !allowed(phys, len as u64) {
            log::warn!(
                "devices: refused to map mmio={phys:#x} len={len:#x}: not a validated window"
            );
            return None;
        }
        arch::mm::map_mmio(phys, len).ok()
    }

    fn device_to_virt(&self, device_addr: u64) -> usize {
        arch::mm::phys_to_virt(device_addr)
    }
}

/// Maps a validated register window as a HAL [`skiff_drivers::hal::Mmio`].
pub fn mmio(phys: u64, len: usize) -> Option<skiff_drivers::hal::Mmio> {
    let va = KERNEL_DMA.map_mmio(phys, len)?;
    // SAFETY: `map_mmio` just mapped `len` bytes of device registers
    // uncached; the arch never removes MMIO mappings, and device memory is
    // never treated as ordinary Rust memory.
    #[allow(unsafe_code)]
    Some(unsafe { skiff_drivers::hal::Mmio::new(va, len) })
}
