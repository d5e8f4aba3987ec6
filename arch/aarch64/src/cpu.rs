//! Small CPU operations: the IRQ mask, waiting, the CPU number and the
//! free-running virtual counter.

use aarch64_cpu::registers::{
    Readable, Writeable, CNTKCTL_EL1, CNTVCT_EL0, DAIF, ID_AA64MMFR1_EL1, SCTLR_EL1, TPIDRRO_EL0,
};
use core::arch::asm;
use core::sync::atomic::Ordering;

/// True when IRQs are unmasked (PSTATE.I clear).
pub fn interrupts_enabled() -> bool {
    !DAIF.is_set(DAIF::I)
}

pub fn enable_interrupts() {
    // SAFETY: unmasks IRQs; no memory clobber is removed, so this is also a
    // compiler barrier (state set up before is visible to handlers).
    unsafe { asm!("msr daifclr, #2", options(nostack)) };
}

pub fn disable_interrupts() {
    // SAFETY: masks IRQs; compiler barrier as above.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

/// Runs `f` with IRQs masked, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    disable_interrupts();
    let r = f();
    if was {
        enable_interrupts();
    }
    r
}

/// Sleeps until an interrupt is pending, then takes it: `wfi` wakes on a
/// pending IRQ even while masked, so no wake-up is lost between a check and
/// the sleep. Interrupts are enabled on return.
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` only waits; unmasking lets the pending IRQ be taken.
    unsafe { asm!("wfi", "msr daifclr, #2", "isb", options(nostack)) };
}

/// Masks interrupts and sleeps forever.
pub fn halt_forever() -> ! {
    disable_interrupts();
    loop {
        // SAFETY: waiting has no side effects.
        unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
    }
}

/// This CPU's number: 0 on the boot CPU, then 1, 2, ... in the order
/// `smp::start_cpu` started them (the arch's `percpu` slot).
pub fn id() -> u32 {
    crate::percpu::this().id.load(Ordering::Relaxed)
}

/// CNTVCT_EL0, ordered after earlier instructions.
pub fn counter() -> u64 {
    // SAFETY: `isb` keeps the counter read from being hoisted.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
    CNTVCT_EL0.get()
}

/// PSTATE.PAN is supported (ID_AA64MMFR1_EL1.PAN != 0).
pub fn has_pan() -> bool {
    ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::PAN) != 0
}

/// Per-CPU state set before the kernel runs on a CPU (boot CPU from
/// `boot`, secondaries from `smp`): FP/SIMD trapped at EL1 and EL0 until a
/// thread first uses it (see `fpu`), EL0 may read the virtual counter (as on
/// Linux), PAN on when the CPU has it, TPIDRRO_EL0 zero (the vectors use it
/// as a scratch register; EL0 always sees 0 there, as on Linux).
pub(crate) fn init_this_cpu() {
    crate::fpu::init_this_cpu();
    CNTKCTL_EL1.write(CNTKCTL_EL1::EL0VCTEN::SET);
    TPIDRRO_EL0.set(0);
    if has_pan() {
        // SPAN = 0: PSTATE.PAN is set on every exception taken to EL1.
        SCTLR_EL1.set(SCTLR_EL1.get() & !crate::sysreg::SCTLR_SPAN);
        // SAFETY: `msr pan, #1` (encoded directly: the baseline target does
        // not enable FEAT_PAN in the assembler). Only blocks kernel access to
        // EL0-accessible pages, of which there are none yet.
        unsafe { asm!(".inst 0xd500419f", "isb", options(nostack)) };
    }
}
