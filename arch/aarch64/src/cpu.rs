//! Small CPU operations: the IRQ mask, waiting, the CPU number and the
//! free-running virtual counter.

use aarch64_cpu::registers::{
    Readable, Writeable, CNTKCTL_EL1, CNTVCT_EL0, CPACR_EL1, DAIF, ID_AA64MMFR1_EL1, SCTLR_EL1,
    TPIDR_EL1,
};
use core::arch::asm;

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

/// This CPU's number (TPIDR_EL1; the boot CPU is 0).
pub fn id() -> u32 {
    TPIDR_EL1.get() as u32
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

/// Boot-CPU state `boot` sets before calling the kernel: CPU number 0,
/// FP/SIMD trapped at EL1 and EL0 (the kernel is soft-float; the app's FP
/// state comes with the scheduler), EL0 may read the virtual counter (as on
/// Linux), PAN on when the CPU has it.
pub(crate) fn init_boot_cpu() {
    TPIDR_EL1.set(0);
    CPACR_EL1.write(CPACR_EL1::FPEN::TrapEl0El1);
    CNTKCTL_EL1.write(CNTKCTL_EL1::EL0VCTEN::SET);
    if has_pan() {
        // SPAN = 0: PSTATE.PAN is set on every exception taken to EL1.
        SCTLR_EL1.set(SCTLR_EL1.get() & !crate::sysreg::SCTLR_SPAN);
        // SAFETY: `msr pan, #1` (encoded directly: the baseline target does
        // not enable FEAT_PAN in the assembler). Only blocks kernel access to
        // EL0-accessible pages, of which there are none yet.
        unsafe { asm!(".inst 0xd500419f", "isb", options(nostack)) };
    }
}
