//! The kernel heap: `talc` as the global allocator over arenas of
//! direct-mapped RAM. A 256 KiB static arena serves the first allocations
//! of boot; `mm::init` then adds the main arena carved from RAM; when that
//! runs out, [`FrameSource`] grows the heap by whole buddy blocks from the
//! frame allocator (2 MiB or what the request needs), so kernel memory
//! (socket buffers, say) is bounded by free RAM, not by the boot arena.
#![allow(unsafe_code)] // claiming raw memory for the allocator is inherently unsafe

use crate::arch;
use core::alloc::Layout;
use core::ops::Range;
use talc::base::binning::Binning;
use talc::base::Talc;
use talc::TalcLock;

/// The heap's lock: a spin lock that keeps interrupts off while held, so an
/// interrupt handler (the scheduler, which may free a finished thread) can
/// never find the heap locked by the code it interrupted on the same CPU.
pub struct IrqSpin {
    locked: core::sync::atomic::AtomicBool,
    /// Whether interrupts were on before `lock`; written only by the holder.
    irq_was_on: core::sync::atomic::AtomicBool,
}

// SAFETY: a test-and-set spin lock: `lock` returns only after this CPU
// swapped `locked` from false to true (Acquire), `unlock` releases it
// (Release), so at most one holder exists at a time.
unsafe impl talc::lock_api::RawMutex for IrqSpin {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = IrqSpin {
        locked: core::sync::atomic::AtomicBool::new(false),
        irq_was_on: core::sync::atomic::AtomicBool::new(false),
    };
    type GuardMarker = talc::lock_api::GuardNoSend;

    fn lock(&self) {
        use core::sync::atomic::Ordering;
        loop {
            let on = arch::cpu::interrupts_enabled();
            arch::cpu::disable_interrupts();
            if self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.irq_was_on.store(on, Ordering::Relaxed);
                return;
            }
            if on {
                arch::cpu::enable_interrupts();
            }
            core::hint::spin_loop();
        }
    }

    fn try_lock(&self) -> bool {
        use core::sync::atomic::Ordering;
        let on = arch::cpu::interrupts_enabled();
        arch::cpu::disable_interrupts();
        let ok = self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.irq_was_on.store(on, Ordering::Relaxed);
        } else if on {
            arch::cpu::enable_interrupts();
        }
        ok
    }

    unsafe fn unlock(&self) {
        use core::sync::atomic::Ordering;
        let on = self.irq_was_on.load(Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
        if on {
            arch::cpu::enable_interrupts();
        }
    }
}

/// Grows the heap from the frame allocator when talc runs out. Runs under
/// the heap lock with interrupts off; the frame allocator takes its own
/// spin lock and never allocates from the heap (its metadata is sized at
/// boot), so this cannot recurse or deadlock. Grown arenas are never given
/// back.
#[derive(Debug)]
pub struct FrameSource;

/// Smallest growth step: one 2 MiB buddy block (order 9).
const GROW_MIN_ORDER: usize = 9;

// SAFETY: `acquire` only claims memory it just took from the frame
// allocator (owned by nobody else, mapped in the direct map) and touches
// the allocator only through the `talc` it is given.
unsafe impl talc::source::Source for FrameSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the request at its alignment plus talc's bookkeeping.
        let need = layout
            .size()
            .checked_add(layout.align())
            .and_then(|n| n.checked_add(4096))
            .ok_or(())?;
        let mut order = GROW_MIN_ORDER;
        while (super::frame::FRAME_SIZE as usize) << order < need {
            order += 1;
            if order > super::frame::MAX_ORDER {
                return Err(());
            }
        }
        let pa = super::alloc_frames(order).map_err(|_| ())?;
        let len = (super::frame::FRAME_SIZE as usize) << order;
        let base = arch::mm::phys_to_virt(pa) as *mut u8;
        // SAFETY: the block was just taken from the frame allocator, so
        // nothing else owns it; the direct map covers all RAM.
        let claimed = unsafe { talc.claim(base, len) };
        if claimed.is_none() {
            let _ = super::free_frames(pa, order);
            return Err(());
        }
        ARENA_BYTES.fetch_add(len, core::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[global_allocator]
static HEAP: TalcLock<IrqSpin, FrameSource> = TalcLock::new(FrameSource);

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
