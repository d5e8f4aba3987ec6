//! Small CPU operations: the IRQ mask, waiting, the CPU number and the
//! free-running virtual counter.

use aarch64_cpu::registers::{
    Readable, Writeable, CNTKCTL_EL1, CNTVCT_EL0, DAIF, ID_AA64MMFR1_EL1, SCTLR_EL1, TPIDRRO_EL0,
    TPIDR_EL0,
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

/// The busy-wait hint: `yield` (Linux's `cpu_relax` on arm64). Unlike
/// `isb` (what `core::hint::spin_loop` emits) it tells an emulator that this
/// vCPU is spinning: QEMU's round-robin TCG (icount) switches to another
/// vCPU on it, so a CPU polling for a cross-CPU wakeup lets the waker run.
pub fn relax() {
    // SAFETY: a hint with no architectural effect.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
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
/// as a scratch register; EL0 always sees 0 there, as on Linux), TPIDR_EL0
/// (user TLS) zero.
pub(crate) fn init_this_cpu() {
    crate::fpu::init_this_cpu();
    CNTKCTL_EL1.write(CNTKCTL_EL1::EL0VCTEN::SET);
    TPIDRRO_EL0.set(0);
    // Reset value UNKNOWN; threads start with user TLS 0 (`context`).
    TPIDR_EL0.set(0);
    if has_pan() {
        // SPAN = 0: PSTATE.PAN is set on every exception taken to EL1.
        SCTLR_EL1.set(SCTLR_EL1.get() & !crate::sysreg::SCTLR_SPAN);
        // SAFETY: `msr pan, #1` (encoded directly: the baseline target does
        // not enable FEAT_PAN in the assembler). Only blocks kernel access to
        // EL0-accessible pages, of which there are none yet.
        unsafe { asm!(".inst 0xd500419f", "isb", options(nostack)) };
    }
}

/// Reads an ID register by its generic name (`s3_0_c0_cN_M`): the ID space
/// reads as zero where a CPU lacks a register, so this is safe on v8.0.
macro_rules! read_id_reg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reads an ID register; no side effects.
        unsafe {
            asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// The 4-bit ID register field at `shift`.
fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

/// Linux's `AT_HWCAP` and `AT_HWCAP2` for this CPU (bit layout of Linux's
/// `arch/arm64/include/uapi/asm/hwcap.h`), from ID_AA64ISAR0/ISAR1/PFR0/
/// MMFR2, for the auxiliary vector.
///
/// Only features an EL0 program can use here are reported: not `CPUID`
/// (EL0 `mrs` of ID registers traps and is not emulated), `EVTSTRM` (no
/// timer event stream), SVE/SME (not enabled in CPACR_EL1), pointer
/// authentication, BTI or MTE (their EL1 controls are off), DIT or SSBS
/// (PSTATE bits `user` does not carry across kernel entries).
pub fn hwcap() -> (u64, u64) {
    let isar0 = read_id_reg!("s3_0_c0_c6_0");
    let isar1 = read_id_reg!("s3_0_c0_c6_1");
    let pfr0 = read_id_reg!("s3_0_c0_c4_0");
    let mmfr2 = read_id_reg!("s3_0_c0_c7_2");
    let mut h = 0u64;
    let mut h2 = 0u64;
    let set = |word: &mut u64, bit: u32, on: bool| {
        if on {
            *word |= 1 << bit;
        }
    };
    // PFR0.FP / AdvSIMD: 0 = present, 1 = with half precision, 0xf = absent.
    let fp = field(pfr0, 16);
    let simd = field(pfr0, 20);
    set(&mut h, 0, fp != 0xf); // FP
    set(&mut h, 1, simd != 0xf); // ASIMD
    set(&mut h, 3, field(isar0, 4) >= 1); // AES
    set(&mut h, 4, field(isar0, 4) >= 2); // PMULL
    set(&mut h, 5, field(isar0, 8) >= 1); // SHA1
    set(&mut h, 6, field(isar0, 12) >= 1); // SHA2
    set(&mut h, 7, field(isar0, 16) >= 1); // CRC32
    set(&mut h, 8, field(isar0, 20) >= 2); // ATOMICS (LSE)
    set(&mut h, 9, fp == 1); // FPHP
    set(&mut h, 10, simd == 1); // ASIMDHP
    set(&mut h, 12, field(isar0, 28) >= 1); // ASIMDRDM
    set(&mut h, 13, field(isar1, 12) >= 1); // JSCVT
    set(&mut h, 14, field(isar1, 16) >= 1); // FCMA
    set(&mut h, 15, field(isar1, 20) >= 1); // LRCPC
    set(&mut h, 16, field(isar1, 0) >= 1); // DCPOP
    set(&mut h, 17, field(isar0, 32) >= 1); // SHA3
    set(&mut h, 18, field(isar0, 36) >= 1); // SM3
    set(&mut h, 19, field(isar0, 40) >= 1); // SM4
    set(&mut h, 20, field(isar0, 44) >= 1); // ASIMDDP
    set(&mut h, 21, field(isar0, 12) >= 2); // SHA512
    set(&mut h, 23, field(isar0, 48) >= 1); // ASIMDFHM
    set(&mut h, 25, field(mmfr2, 32) >= 1); // USCAT
    set(&mut h, 26, field(isar1, 20) >= 2); // ILRCPC
    set(&mut h, 27, field(isar0, 52) >= 1); // FLAGM
    set(&mut h, 29, field(isar1, 36) >= 1); // SB
    set(&mut h2, 0, field(isar1, 0) >= 2); // DCPODP
    set(&mut h2, 7, field(isar0, 52) >= 2); // FLAGM2
    set(&mut h2, 8, field(isar1, 32) >= 1); // FRINT
    set(&mut h2, 13, field(isar1, 52) >= 1); // I8MM
    set(&mut h2, 14, field(isar1, 44) >= 1); // BF16
    set(&mut h2, 15, field(isar1, 48) >= 1); // DGH
    set(&mut h2, 16, field(isar0, 60) >= 1); // RNG
    (h, h2)
}
