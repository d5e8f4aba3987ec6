//! Per-CPU data through `TPIDR_EL1`.
//!
//! `TPIDR_EL1` points at this CPU's `CpuLocal`, a small arch-owned block
//! in a static array (slot 0 is the boot CPU, secondaries get the next free
//! slot in `smp::start_cpu`). Its first word is the kernel's per-CPU
//! pointer ([`set_base`] / [`base`]: one `mrs` and one `ldr`); the rest is
//! what the arch itself needs per CPU: the logical CPU number (`cpu::id`),
//! the MPIDR affinity, the innermost `catch_fault` context, this CPU's GICv3
//! redistributor or GICv2 interface mask, and the stack the exception
//! vectors switch to when a thread's stack has overflowed.
//!
//! `base()` is only meaningful while the caller cannot migrate (interrupts
//! off, or a pinned thread): between reading `TPIDR_EL1` and using the
//! result a preempted thread may have moved to another CPU.

use aarch64_cpu::registers::{Readable, Writeable, TPIDR_EL1};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Most CPUs the arch keeps state for.
pub const MAX_CPUS: usize = 64;

/// Size of each CPU's overflow stack (the fault path of a thread whose own
/// stack ran into its guard page, up to the kernel's report and panic).
pub(crate) const OVERFLOW_STACK_SIZE: usize = 16 * 1024;

/// Arch per-CPU block. `kernel_base` must stay the first field (`base()`
/// loads it at offset 0); `overflow_stack_top` is read by the vectors at
/// [`OVERFLOW_STACK_TOP_OFFSET`].
#[repr(C)]
pub(crate) struct CpuLocal {
    kernel_base: AtomicUsize,
    pub(crate) overflow_stack_top: AtomicUsize,
    /// MPIDR affinity (DT `reg` layout); `u64::MAX` while the slot is free.
    pub(crate) hw_id: AtomicU64,
    pub(crate) id: AtomicU32,
    /// Innermost active `catch_fault` on this CPU (a `trap::CatchContext`).
    pub(crate) catch: AtomicPtr<()>,
    /// GICv3: VA of this CPU's redistributor frames (0 before init / on v2).
    pub(crate) gicr: AtomicUsize,
    /// GICv2: this CPU's interface bit for GICD_ITARGETSR/GICD_SGIR.
    pub(crate) gic_v2_mask: AtomicU8,
}

/// Offset of `overflow_stack_top` in `CpuLocal` (used by `trap`'s asm).
pub(crate) const OVERFLOW_STACK_TOP_OFFSET: usize = 8;
/// Offset of `catch` in `CpuLocal` (switched by `context`'s asm).
pub(crate) const CATCH_OFFSET: usize = core::mem::offset_of!(CpuLocal, catch);
const _: () = assert!(core::mem::offset_of!(CpuLocal, kernel_base) == 0);
const _: () =
    assert!(core::mem::offset_of!(CpuLocal, overflow_stack_top) == OVERFLOW_STACK_TOP_OFFSET);

impl CpuLocal {
    const fn new() -> Self {
        Self {
            kernel_base: AtomicUsize::new(0),
            overflow_stack_top: AtomicUsize::new(0),
            hw_id: AtomicU64::new(u64::MAX),
            id: AtomicU32::new(0),
            catch: AtomicPtr::new(core::ptr::null_mut()),
            gicr: AtomicUsize::new(0),
            gic_v2_mask: AtomicU8::new(0),
        }
    }
}

static CPUS: [CpuLocal; MAX_CPUS] = [const { CpuLocal::new() }; MAX_CPUS];

#[repr(C, align(16))]
struct OverflowStacks([[u8; OVERFLOW_STACK_SIZE]; MAX_CPUS]);

/// Written only by the exception vectors of the CPU owning each stack.
static mut OVERFLOW_STACKS: OverflowStacks = OverflowStacks([[0; OVERFLOW_STACK_SIZE]; MAX_CPUS]);

/// Slots handed out so far (slot 0 = boot CPU).
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);

/// Reserves the next slot for a CPU being started; None when all are used.
pub(crate) fn alloc_slot() -> Option<usize> {
    NEXT_SLOT
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_CPUS).then_some(n + 1)
        })
        .ok()
}

/// The slot's block, prepared for the CPU that will own it.
pub(crate) fn prepare_slot(slot: usize) -> &'static CpuLocal {
    let c = &CPUS[slot];
    c.id.store(slot as u32, Ordering::Relaxed);
    // SAFETY: only the address of the static is taken; the stack memory is
    // used by this slot's CPU alone.
    let stack = unsafe { (&raw const OVERFLOW_STACKS.0[slot]) as usize };
    c.overflow_stack_top
        .store(stack + OVERFLOW_STACK_SIZE, Ordering::Relaxed);
    c
}

/// Boot CPU: slot 0 into `TPIDR_EL1`. Called first thing in `boot_main`.
pub(crate) fn init_boot_cpu() {
    let c = prepare_slot(0);
    c.hw_id
        .store(crate::sysreg::mpidr_affinity(), Ordering::Relaxed);
    TPIDR_EL1.set(c as *const CpuLocal as u64);
}

/// This CPU's block.
pub(crate) fn this() -> &'static CpuLocal {
    // SAFETY: TPIDR_EL1 holds the address of an element of `CPUS` from
    // `init_boot_cpu` / the secondary entry on, before any Rust runs that
    // could reach here.
    unsafe { &*(TPIDR_EL1.get() as *const CpuLocal) }
}

/// The online CPU with MPIDR affinity `hw_id`, if any.
pub(crate) fn by_hw_id(hw_id: u64) -> Option<&'static CpuLocal> {
    let n = NEXT_SLOT.load(Ordering::Acquire).min(MAX_CPUS);
    CPUS[..n]
        .iter()
        .find(|c| c.hw_id.load(Ordering::Acquire) == hw_id)
}

/// Stores the kernel's per-CPU pointer for this CPU.
pub fn set_base(ptr: usize) {
    this().kernel_base.store(ptr, Ordering::Relaxed);
}

/// The kernel's per-CPU pointer for this CPU (0 before `set_base`).
pub fn base() -> usize {
    this().kernel_base.load(Ordering::Relaxed)
}
