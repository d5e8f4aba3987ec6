//! Secondary CPUs: PSCI `CPU_ON`, the per-CPU start-up, IPIs and the
//! hardware CPU id.
//!
//! `start_cpu` reserves a `percpu` slot, fills a [`SecondaryBoot`] block
//! (the boot CPU's MMU configuration, the stack, the entry) and asks the
//! firmware (PSCI over the conduit the platform named) to start the CPU at
//! the physical `__secondary_entry` in `boot.rs` with the block's physical
//! address as context id. That assembly drops EL2 → EL1 like the boot CPU,
//! turns the MMU on with the same TCR/MAIR/SCTLR through the boot identity
//! map and the kernel's TTBR1, switches TTBR0 to the kernel's empty user
//! table, sets SP, `VBAR_EL1` and `TPIDR_EL1`, and calls [`secondary_main`],
//! which sets up this CPU's control registers, GIC interface (GICv3:
//! redistributor wake-up) and virtual timer, then calls `entry(arg)`.
//!
//! CPU ids are MPIDR affinities in the DT `cpu@N` `reg` layout
//! (Aff3 << 32 | Aff2 << 16 | Aff1 << 8 | Aff0), which is also PSCI's
//! `target_cpu` format.
//!
//! TLB shootdown needs no IPI here: `tlbi ...is` broadcasts to every CPU in
//! the inner-shareable domain and `dsb ish` waits for all of them, so
//! [`tlb_shootdown`] is the same surface as x86's, done by the hardware.
//! [`stop_others`] sends the [`IPI_STOP`] SGI; the kernel calls
//! [`handle_ipi`] for every IPI it receives, which halts the CPU once a
//! stop was requested.

use crate::{boot, cpu, early_console::EarlyWriter, irq, mm, percpu, power, sysreg, timer};
use aarch64_cpu::registers::{Readable, MAIR_EL1, SCTLR_EL1, TCR_EL1};
use core::arch::asm;
use core::fmt::Write;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const PSCI_CPU_ON_64: u32 = 0xc400_0003;

/// Why a CPU could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpError {
    /// The platform named no PSCI conduit.
    NoPsci,
    /// All `percpu::MAX_CPUS` slots are in use.
    TooManyCpus,
    /// The stack top is null or not 16-byte aligned.
    BadStack,
    /// PSCI: the CPU is already on (or its start is pending).
    AlreadyOn,
    /// PSCI: no such CPU (`INVALID_PARAMETERS`).
    InvalidCpu,
    /// Any other PSCI error code (negative, as returned in w0).
    Firmware(i32),
}

/// What `__secondary_entry` reads, at fixed offsets, with the MMU off.
#[repr(C, align(64))]
struct SecondaryBoot {
    identity_ttbr0: u64, // 0
    ttbr1: u64,          // 8
    ttbr0: u64,          // 16
    tcr: u64,            // 24
    mair: u64,           // 32
    sctlr: u64,          // 40
    stack_top: u64,      // 48
    percpu: u64,         // 56
    entry: u64,          // 64
    arg: u64,            // 72
}

const _: () = assert!(core::mem::offset_of!(SecondaryBoot, mair) == 32);
const _: () = assert!(core::mem::offset_of!(SecondaryBoot, arg) == 72);

const EMPTY_BOOT: SecondaryBoot = SecondaryBoot {
    identity_ttbr0: 0,
    ttbr1: 0,
    ttbr0: 0,
    tcr: 0,
    mair: 0,
    sctlr: 0,
    stack_top: 0,
    percpu: 0,
    entry: 0,
    arg: 0,
};

/// One block per `percpu` slot, each written once by `start_cpu`.
static mut SECONDARY_BOOT: [SecondaryBoot; percpu::MAX_CPUS] =
    [const { EMPTY_BOOT }; percpu::MAX_CPUS];

/// Writes `[va, va + len)` back to the point of coherency, for a reader
/// with the MMU (and so its caches) off.
fn clean_to_poc(va: usize, len: usize) {
    let mut a = va & !15;
    while a < va + len {
        // SAFETY: cache maintenance by VA on mapped kernel data.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += 16; // smallest possible line: correct on every CPU
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Starts the CPU with MPIDR affinity `hw_id` at `entry(arg)` on
/// `stack_top` (16-byte aligned, mapped in the kernel's tables), with the
/// kernel's page tables and vectors, its GIC interface and timer set up and
/// IRQs masked. Returns once the firmware accepted the request; the new
/// CPU runs asynchronously.
pub fn start_cpu(
    hw_id: u64,
    stack_top: usize,
    entry: extern "C" fn(usize) -> !,
    arg: usize,
) -> Result<(), SmpError> {
    if stack_top == 0 || !stack_top.is_multiple_of(16) {
        return Err(SmpError::BadStack);
    }
    if power::psci_conduit().is_none() {
        return Err(SmpError::NoPsci);
    }
    let slot = percpu::alloc_slot().ok_or(SmpError::TooManyCpus)?;
    let local = percpu::prepare_slot(slot);
    let (ttbr0, ttbr1) = mm::roots();
    let block = SecondaryBoot {
        identity_ttbr0: boot::identity_root_phys(),
        ttbr1,
        ttbr0,
        tcr: TCR_EL1.get(),
        mair: MAIR_EL1.get(),
        sctlr: SCTLR_EL1.get(),
        stack_top: stack_top as u64,
        percpu: local as *const _ as u64,
        entry: entry as usize as u64,
        arg: arg as u64,
    };
    // SAFETY: `slot` came from `alloc_slot`, so no other CPU reads or
    // writes this element; the CPU it is for does not exist yet.
    let ptr = unsafe { &raw mut SECONDARY_BOOT[slot] };
    // SAFETY: as above; a plain write to a static we own.
    unsafe { ptr.write(block) };
    clean_to_poc(ptr as usize, core::mem::size_of::<SecondaryBoot>());
    // SAFETY: only the symbol's address is taken.
    let entry_pa = mm::image_phys(boot::__secondary_entry as *const () as usize);
    let block_pa = mm::image_phys(ptr as usize);
    let r =
        power::smccc_call(PSCI_CPU_ON_64, [hw_id, entry_pa, block_pa]).ok_or(SmpError::NoPsci)?;
    match r[0] as i32 {
        0 => {
            note_started(slot, hw_id);
            Ok(())
        }
        -2 => Err(SmpError::InvalidCpu),
        -4 | -5 => Err(SmpError::AlreadyOn),
        e => Err(SmpError::Firmware(e)),
    }
}

// ---- CPUs started, TLB shootdown, stop ----

/// IPI (SGI) number of a TLB shootdown request: unused on aarch64 (the
/// broadcast `tlbi` does it), reserved so both arches number IPIs alike.
pub const IPI_TLB: u8 = 13;
/// IPI (SGI) number of "halt now" ([`stop_others`]).
pub const IPI_STOP: u8 = 14;
/// Ranges longer than this many pages are flushed whole.
pub const TLB_FULL_FLUSH_PAGES: usize = 32;

/// MPIDR affinity of each started CPU, by `percpu` slot; `CPUS_KNOWN`
/// entries are valid (slot 0, the boot CPU, is filled in by the first
/// `start_cpu`).
static CPU_HW: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
static CPUS_KNOWN: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static STOPPED: AtomicU32 = AtomicU32::new(0);

fn note_started(slot: usize, hw_id: u64) {
    if CPUS_KNOWN.load(Ordering::Acquire) == 0 {
        CPU_HW[0].store(this_cpu_hw_id(), Ordering::Relaxed);
        CPUS_KNOWN.store(1, Ordering::Release);
    }
    CPU_HW[slot].store(hw_id, Ordering::Relaxed);
    CPUS_KNOWN.fetch_max(slot + 1, Ordering::AcqRel);
}

/// Invalidates `range` (kernel virtual addresses) in the TLB of every CPU
/// and returns once all have done it (broadcast `tlbi vaae1is` per page, or
/// `tlbi vmalle1is` past [`TLB_FULL_FLUSH_PAGES`]; `dsb ish` completes it
/// everywhere). Call it after changing or removing mappings in `range`.
pub fn tlb_shootdown(range: Range<usize>) {
    let pages = range.end.saturating_sub(range.start).div_ceil(4096);
    if pages > TLB_FULL_FLUSH_PAGES {
        // SAFETY: TLB maintenance only: every entry, every CPU of the
        // inner-shareable domain.
        unsafe {
            asm!(
                "dsb ishst",
                "tlbi vmalle1is",
                "dsb ish",
                "isb",
                options(nostack, preserves_flags)
            )
        };
        return;
    }
    // SAFETY: barrier only: earlier table writes are visible to the walkers.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
    let mut va = range.start & !0xfff;
    while va < range.end {
        // SAFETY: TLB maintenance for one VA, all ASIDs, broadcast.
        unsafe {
            asm!(
                "tlbi vaae1is, {x}",
                x = in(reg) ((va >> 12) as u64) & 0x0000_0fff_ffff_ffff,
                options(nostack, preserves_flags)
            )
        };
        va += 4096;
    }
    // SAFETY: barriers only: wait for the broadcast invalidations.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Halts every other started CPU (the panic path): each takes the
/// `IPI_STOP` SGI and halts with IRQs masked. Waits up to ~100 ms for
/// them; returns how many confirmed (a CPU spinning with IRQs masked
/// does not).
pub fn stop_others() -> u32 {
    STOP.store(true, Ordering::SeqCst);
    let n = CPUS_KNOWN.load(Ordering::Acquire);
    let me = cpu::id() as usize;
    for i in (0..n).filter(|&i| i != me) {
        send_ipi(CPU_HW[i].load(Ordering::Relaxed), IPI_STOP);
    }
    let want = n.saturating_sub(1) as u32;
    let hz = timer::frequency().max(1);
    let t0 = cpu::counter();
    while STOPPED.load(Ordering::Acquire) < want && cpu::counter().wrapping_sub(t0) < hz / 10 {
        core::hint::spin_loop();
    }
    STOPPED.load(Ordering::Acquire)
}

/// The arch's part of every IPI (the kernel calls it first thing for each
/// `Interrupt::Ipi`): after [`stop_others`], halts this CPU for good.
pub fn handle_ipi() {
    if STOP.load(Ordering::Acquire) {
        STOPPED.fetch_add(1, Ordering::AcqRel);
        cpu::halt_forever();
    }
}

/// Rust side of a secondary CPU's start, on its stack in the high half with
/// the kernel's tables, vectors and percpu block; IRQs masked.
pub(crate) extern "C" fn secondary_main(entry: extern "C" fn(usize) -> !, arg: usize) -> ! {
    cpu::init_this_cpu();
    let me = percpu::this();
    me.hw_id.store(sysreg::mpidr_affinity(), Ordering::Release);
    match irq::try_init_this_cpu() {
        Ok(()) => timer::init_this_cpu(),
        Err(e) => {
            let _ = writeln!(
                EarlyWriter,
                "smp: cpu={} gic init failed: {e:?}",
                me.id.load(Ordering::Relaxed)
            );
        }
    }
    entry(arg)
}

/// Sends IPI `ipi` (0-15) to the CPU with MPIDR affinity `hw_id`; it is
/// delivered there as `Interrupt::Ipi(ipi)`. Stores before the call are
/// visible to the target's handler.
pub fn send_ipi(hw_id: u64, ipi: u8) {
    irq::send_ipi(hw_id, ipi);
}

/// This CPU's MPIDR affinity (the `hw_id` of `start_cpu` / `send_ipi`).
pub fn this_cpu_hw_id() -> u64 {
    sysreg::mpidr_affinity()
}
