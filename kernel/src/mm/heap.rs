//! The kernel heap: `talc` as the global allocator over arenas of
//! direct-mapped RAM. A 256 KiB static arena serves the first allocations
//! of boot; `mm::init` then adds the main arena carved from RAM.
#![allow(unsafe_code)] // claiming raw memory for the allocator is inherently unsafe

use crate::arch;
use core::ops::Range;
use talc::{source::Manual, TalcLock};

#[global_allocator]
static HEAP: TalcLock<spin::Mutex<()>, Manual> = TalcLock::new(Manual);

const BOOTSTRAP_BYTES: usize = 256 * 1024;

/// Only ever reached through a raw pointer handed to the allocator.
#[repr(align(4096))]
struct Arena(#[allow(dead_code)] [u8; BOOTSTRAP_BYTES]);
static mut BOOTSTRAP: Arena = Arena([0; BOOTSTRAP_BYTES]);

static ARENA_BYTES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

pub(super) fn init_bootstrap() {
    // SAFETY: called once, on the boot CPU before any allocation; the static
    // arena is used by nothing else (it is only reachable through this raw
    // pointer, handed to the allocator for the life of the kernel).
    unsafe {
        HEAP.lock()
            .claim(&raw mut BOOTSTRAP as *mut u8, BOOTSTRAP_BYTES)
            .expect("heap: bootstrap arena too small to claim");
    }
    ARENA_BYTES.fetch_add(BOOTSTRAP_BYTES, core::sync::atomic::Ordering::Relaxed);
}

/// Gives the heap the physical RAM `range` (already in the direct map and
/// removed from the frame allocator).
pub(super) fn add_arena(range: Range<u64>) {
    let len = (range.end - range.start) as usize;
    let base = arch::mm::phys_to_virt(range.start) as *mut u8;
    // SAFETY: `range` is usable RAM that `mm::init` mapped into the direct
    // map and withheld from the frame allocator, so nothing else owns it.
    unsafe {
        HEAP.lock()
            .claim(base, len)
            .expect("heap: arena too small to claim");
    }
    ARENA_BYTES.fetch_add(len, core::sync::atomic::Ordering::Relaxed);
}

/// Bytes the heap has been given in all.
pub fn heap_stats() -> usize {
    ARENA_BYTES.load(core::sync::atomic::Ordering::Relaxed)
}
