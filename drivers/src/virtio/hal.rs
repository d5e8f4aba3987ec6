//! `virtio-drivers`' [`Hal`] over the kernel's [`DmaAllocator`]: the one
//! place the crate's unsafe contract is met.
//!
//! Buffers the crate shares with a device (`share`/`unshare`) are bounced
//! through DMA pages: the caller's buffer may sit anywhere (a thread stack,
//! the heap), the bounce page is physically contiguous and the device never
//! sees kernel memory it was not given.
#![allow(unsafe_code)]

use core::ptr::NonNull;
use skiff_hal::{DmaAllocator, DmaBlock, DMA_PAGE_SIZE};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

static DMA: spin::Once<&'static dyn DmaAllocator> = spin::Once::new();

/// Hands the kernel's DMA allocator to the virtio drivers (once, at boot).
pub fn set_dma(dma: &'static dyn DmaAllocator) {
    DMA.call_once(|| dma);
}

/// Whether [`set_dma`] ran.
pub fn dma_ready() -> bool {
    DMA.get().is_some()
}

fn dma() -> &'static dyn DmaAllocator {
    // Devices are only probed after `set_dma` (kernel/src/devices).
    *DMA.get()
        .expect("virtio: DMA allocator not set before probing")
}

/// The [`Hal`] type the virtio devices are instantiated with.
pub struct VirtioHal;

fn pages_for(len: usize) -> usize {
    len.div_ceil(DMA_PAGE_SIZE).max(1)
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned
// memory from the kernel's frame allocator (the `DmaAllocator` contract);
// `mmio_phys_to_virt` returns the kernel's uncached mapping of the device
// range; `share` hands out a private bounce block of at least the buffer's
// length, freed again in `unshare`.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match dma().alloc(pages) {
            Ok(b) => match NonNull::new(b.virt as *mut u8) {
                Some(p) => (b.device_addr, p),
                None => (0, NonNull::dangling()),
            },
            // The crate treats physical address 0 as failure (`Error::DmaError`).
            Err(_) => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        dma().free(DmaBlock {
            device_addr: paddr,
            virt: vaddr.as_ptr() as usize,
            pages,
        });
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // A BAR the kernel cannot map is a bug in the bus layer, which only
        // hands the crate BARs it placed inside a host-bridge window.
        let va = dma()
            .map_mmio(paddr, size)
            .expect("virtio: BAR outside every mappable window");
        NonNull::new(va as *mut u8).expect("virtio: MMIO mapped at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        let Ok(block) = dma().alloc(pages_for(len)) else {
            return 0;
        };
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller guarantees `buffer` is valid and not
            // accessed by anyone else during this call; the bounce block is
            // ours and at least `len` bytes long.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buffer.as_ptr() as *const u8,
                    block.virt as *mut u8,
                    len,
                )
            };
        }
        block.device_addr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        if paddr == 0 {
            return;
        }
        let len = buffer.len();
        let virt = dma().device_to_virt(paddr);
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` came from `share` for this same buffer, so the
            // bounce block at `virt` holds `len` bytes; the caller
            // guarantees exclusive access to `buffer`.
            unsafe {
                core::ptr::copy_nonoverlapping(virt as *const u8, buffer.as_ptr() as *mut u8, len)
            };
        }
        dma().free(DmaBlock {
            device_addr: paddr,
            virt,
            pages: pages_for(len),
        });
    }
}
