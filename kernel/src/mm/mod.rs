//! Kernel memory: the physical frame allocator ([`frame`]) and the kernel
//! heap (`heap`, target only).
//!
//! Boot order (`init`): map all usable RAM into the direct map, start the
//! heap on a small static bootstrap arena, size the frame metadata, carve
//! the heap's main arena from the largest free range, then hand every other
//! free frame to the buddy allocator.

pub mod frame;
pub mod vma;

#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
pub use heap::heap_stats;

use core::ops::Range;

/// Bytes of heap to give the kernel at boot for `frames` frames of RAM: the
/// frame metadata plus a general arena of 1/32 of RAM, at least 8 MiB, and
/// never more than a quarter of RAM.
pub fn boot_heap_bytes(frames: u64) -> u64 {
    let ram = frames * frame::FRAME_SIZE;
    let meta = frames * 12 + 64 * 1024;
    let general = (ram / 32).max(8 << 20);
    (meta + general)
        .min(ram / 4)
        .next_multiple_of(frame::FRAME_SIZE << 9)
}

/// Takes `bytes` from the end of the largest range (2 MiB aligned when it
/// fits); returns the carved range and shrinks the list.
pub fn carve(ranges: &mut alloc::vec::Vec<Range<u64>>, bytes: u64) -> Option<Range<u64>> {
    let (idx, r) = ranges
        .iter()
        .enumerate()
        .max_by_key(|(_, r)| r.end - r.start)?;
    if r.end - r.start < bytes {
        return None;
    }
    let end = r.end;
    let aligned_start = (end - bytes) & !((2 << 20) - 1);
    let start = if aligned_start >= r.start {
        aligned_start
    } else {
        end - bytes
    };
    let carved = start..end;
    ranges[idx].end = start;
    if ranges[idx].start >= ranges[idx].end {
        ranges.remove(idx);
    }
    Some(carved)
}

#[cfg(target_os = "none")]
pub use target::*;

#[cfg(target_os = "none")]
mod target {
    use super::frame::{subtract_ranges, FrameAllocator, FrameError, FrameStats};
    use crate::{arch, println};
    use alloc::vec::Vec;
    use skiff_platform::bootinfo::MemoryKind;
    use skiff_platform::BootInfo;
    use spin::Mutex;

    /// The global frame allocator. A spin lock held with interrupts off
    /// (O(1)-ish work inside), so the scheduler may free a finished thread's
    /// stack from an interrupt without deadlocking against the code it
    /// interrupted.
    static FRAMES: Mutex<Option<FrameAllocator>> = Mutex::new(None);

    /// The physical page below 1 MiB reserved for the x86 AP start-up
    /// trampoline (0 if none could be reserved, or on aarch64).
    static LOW_PAGE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    /// Picks the trampoline page: the highest usable 4 KiB page in
    /// 0x1000..0x9f000 (real-mode reachable, below the EBDA), so page 0 and
    /// the BIOS data area stay untouched. It is removed from the frame
    /// allocator's ranges below, like any firmware reservation.
    fn pick_low_page(usable: &[core::ops::Range<u64>]) -> Option<u64> {
        usable
            .iter()
            .filter_map(|r| {
                let start = r.start.max(0x1000).next_multiple_of(4096);
                let end = r.end.min(0x9f000) & !0xfff;
                (end >= start + 4096).then_some(end - 4096)
            })
            .max()
    }

    /// The reserved trampoline page (x86 SMP start-up), if any.
    pub fn low_page() -> Option<u64> {
        match LOW_PAGE.load(core::sync::atomic::Ordering::Relaxed) {
            0 => None,
            pa => Some(pa),
        }
    }

    pub fn init(boot: &BootInfo) {
        super::heap::init_bootstrap();
        let usable: Vec<_> = boot
            .memory
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
            .map(|r| r.start..r.end)
            .collect();
        for r in &usable {
            if let Err(e) = arch::mm::map_direct(r.clone()) {
                println!(
                    "mm: cannot direct-map {:#x}..{:#x}: {e:?}; leaving it unused",
                    r.start, r.end
                );
            }
        }
        let usable: Vec<_> = usable
            .into_iter()
            .filter(|r| arch::mm::virt_to_phys(arch::mm::phys_to_virt(r.start)).is_some())
            .collect();
        // Physical page 0 is never handed out: a zero physical address
        // must stay recognisable as "none" wherever it appears.
        let low = if cfg!(target_arch = "x86_64") {
            pick_low_page(&usable)
        } else {
            None
        };
        if let Some(pa) = low {
            LOW_PAGE.store(pa, core::sync::atomic::Ordering::Relaxed);
        }
        let reserved: Vec<_> = boot
            .reserved_ranges()
            .chain(core::iter::once(0..super::frame::FRAME_SIZE))
            .chain(low.map(|pa| pa..pa + super::frame::FRAME_SIZE))
            .collect();
        let mut free = subtract_ranges(&usable, &reserved);
        let frames: u64 = free.iter().map(|r| (r.end - r.start) / 4096).sum();
        let heap_bytes = super::boot_heap_bytes(frames);
        let Some(heap) = super::carve(&mut free, heap_bytes) else {
            panic!("mm: not enough contiguous RAM for a {heap_bytes}-byte kernel heap");
        };
        super::heap::add_arena(heap.clone());
        let allocator = FrameAllocator::new(&free);
        let stats = allocator.stats();
        *FRAMES.lock() = Some(allocator);
        println!(
            "mm: frames={} free={}MiB heap={}MiB at={:#x}",
            stats.total_frames,
            (stats.free_frames * 4096) >> 20,
            (heap.end - heap.start) >> 20,
            heap.start
        );
    }

    /// Allocates `2^order` contiguous frames (physical address).
    pub fn alloc_frames(order: usize) -> Result<u64, FrameError> {
        arch::cpu::without_interrupts(|| {
            FRAMES
                .lock()
                .as_mut()
                .ok_or(FrameError::OutOfFrames { order })?
                .alloc(order)
        })
    }

    pub fn free_frames(addr: u64, order: usize) -> Result<(), FrameError> {
        arch::cpu::without_interrupts(|| {
            FRAMES
                .lock()
                .as_mut()
                .ok_or(FrameError::NotAllocated { addr, order })?
                .free(addr, order)
        })
    }

    /// Allocates one frame for user memory, zeroes it and lets `fill`
    /// write its contents through the direct map; returns its address.
    pub fn alloc_filled_frame(fill: &mut dyn FnMut(&mut [u8])) -> Result<u64, FrameError> {
        let pa = alloc_frames(0)?;
        let va = arch::mm::phys_to_virt(pa);
        // SAFETY: `pa` is a frame just taken from the allocator, so nothing
        // else refers to it; all usable RAM is in the direct map (`init`),
        // so `va .. va + 4096` is mapped, writable and exclusively ours
        // for the life of this borrow.
        #[allow(unsafe_code)]
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(va as *mut u8, super::frame::FRAME_SIZE as usize)
        };
        bytes.fill(0);
        fill(bytes);
        Ok(pa)
    }

    pub fn frame_stats() -> FrameStats {
        arch::cpu::without_interrupts(|| {
            FRAMES
                .lock()
                .as_ref()
                .map(|a| a.stats())
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_size_scales_and_is_bounded() {
        let small = boot_heap_bytes(64 << 20 >> 12); // 64 MiB of RAM
        assert!((8 << 20..=16 << 20).contains(&small), "{small}");
        let big = boot_heap_bytes(16 << 30 >> 12); // 16 GiB
        assert!(big > (16u64 << 30 >> 12) * 12, "holds the metadata");
        assert!(big <= 4 << 30);
        assert_eq!(big % (2 << 20), 0);
    }

    #[test]
    fn carve_takes_from_the_largest_range_aligned() {
        let mut r = alloc::vec![0x1000..0x9f000, 0x10_0000..0x1000_0000];
        let c = carve(&mut r, 16 << 20).unwrap();
        assert_eq!(c, 0x0f00_0000..0x1000_0000);
        assert_eq!(r, [0x1000..0x9f000, 0x10_0000..0x0f00_0000]);
        assert!(carve(&mut r, 1 << 30).is_none());
    }
}
