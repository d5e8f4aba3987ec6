//! FP/SIMD state (V0-V31, FPCR, FPSR) of threads.
//!
//! The kernel is soft-float: kernel code never touches these registers, so
//! only threads that execute FP/SIMD instructions on purpose (the app, or
//! inline asm) own any state. The policy is *trap on first use, then
//! eager*:
//!
//! * `CPACR_EL1.FPEN` traps FP/SIMD at EL0 and EL1 while the running thread
//!   has never used it. Its first FP instruction traps (ESR class 0x07, at
//!   EL1 through `trap`, at EL0 through `user`); the vector enables FP,
//!   zeroes the registers and FPCR/FPSR (no state leaks from the previous
//!   user; the app starts with FPCR = FPSR = 0 as on Linux) and retries the
//!   instruction (`first_use`). The kernel never touches these registers
//!   while handling a system call, so a user thread's values stay live in
//!   the CPU across kernel entries and are saved only by [`save`].
//! * [`save`] stores the registers only when FP is enabled, i.e. the
//!   outgoing thread has used FP, and marks its state live.
//! * [`restore`] loads a live state and enables FP, or disables FP (trap
//!   again) for a thread that never used it.
//!
//! So threads that never use FP (every kernel thread) pay a `CPACR_EL1`
//! read and at most one write per switch, and FP users pay the 528-byte
//! save and load. A fully lazy scheme (keep the last user's registers in
//! the CPU and save only when another user traps) would save more for
//! FP-heavy pairs but needs an owner per CPU that survives migration; not
//! worth it while the kernel switches between kernel threads.

use aarch64_cpu::registers::{ReadWriteable, Readable, CPACR_EL1};
use core::arch::{asm, global_asm};

/// One thread's FP/SIMD registers. `Default` = never used.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpState {
    v: [u128; 32],
    fpcr: u64,
    fpsr: u64,
    live: bool,
}

const _: () = assert!(core::mem::offset_of!(FpState, fpcr) == 512);

impl FpState {
    pub const fn new() -> Self {
        Self {
            v: [0; 32],
            fpcr: 0,
            fpsr: 0,
            live: false,
        }
    }

    /// True once the thread owning this state has used FP/SIMD.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// V0-V31 (zero for a state never used).
    pub fn vregs(&self) -> &[u128; 32] {
        &self.v
    }

    pub fn fpcr(&self) -> u64 {
        self.fpcr
    }

    pub fn fpsr(&self) -> u64 {
        self.fpsr
    }

    /// Replaces the registers (e.g. from a signal frame) and marks the
    /// state used, so `restore` loads it. Any FPCR/FPSR value is safe to
    /// load (reserved bits are ignored by the CPU).
    pub fn set(&mut self, v: &[u128; 32], fpcr: u64, fpsr: u64) {
        self.v = *v;
        self.fpcr = fpcr;
        self.fpsr = fpsr;
        self.live = true;
    }
}

impl Default for FpState {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for FpState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FpState").field("live", &self.live).finish()
    }
}

// The kernel target has no FP: enable it for the assembler only, here.
global_asm!(
    r#"
    .section .text, "ax"
    .arch_extension fp
    .arch_extension simd
    .global __fpu_save
__fpu_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x9, fpcr
    mrs     x10, fpsr
    add     x11, x0, #512
    stp     x9, x10, [x11]
    ret

    .global __fpu_restore
__fpu_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x11, x0, #512
    ldp     x9, x10, [x11]
    msr     fpcr, x9
    msr     fpsr, x10
    ret

    .global __fpu_zero
__fpu_zero:
    movi    v0.2d, #0
    movi    v1.2d, #0
    movi    v2.2d, #0
    movi    v3.2d, #0
    movi    v4.2d, #0
    movi    v5.2d, #0
    movi    v6.2d, #0
    movi    v7.2d, #0
    movi    v8.2d, #0
    movi    v9.2d, #0
    movi    v10.2d, #0
    movi    v11.2d, #0
    movi    v12.2d, #0
    movi    v13.2d, #0
    movi    v14.2d, #0
    movi    v15.2d, #0
    movi    v16.2d, #0
    movi    v17.2d, #0
    movi    v18.2d, #0
    movi    v19.2d, #0
    movi    v20.2d, #0
    movi    v21.2d, #0
    movi    v22.2d, #0
    movi    v23.2d, #0
    movi    v24.2d, #0
    movi    v25.2d, #0
    movi    v26.2d, #0
    movi    v27.2d, #0
    movi    v28.2d, #0
    movi    v29.2d, #0
    movi    v30.2d, #0
    movi    v31.2d, #0
    msr     fpcr, xzr
    msr     fpsr, xzr
    ret
"#
);

unsafe extern "C" {
    fn __fpu_save(s: *mut FpState);
    fn __fpu_restore(s: *const FpState);
    fn __fpu_zero();
}

fn enabled() -> bool {
    CPACR_EL1.matches_all(CPACR_EL1::FPEN::TrapNothing)
}

fn set_enabled(on: bool) {
    CPACR_EL1.modify(if on {
        CPACR_EL1::FPEN::TrapNothing
    } else {
        CPACR_EL1::FPEN::TrapEl0El1
    });
    // SAFETY: barrier only: the CPACR write takes effect before the next
    // FP instruction (or the save/restore below).
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Saves the running thread's FP/SIMD registers into `s` if it has used
/// FP since its `restore` (else `s` is left as it is). IRQs masked. Also
/// for the kernel's own use on the running thread (signal frames): its
/// user registers stay live in the CPU while it runs kernel code.
pub fn save(s: &mut FpState) {
    if enabled() {
        // SAFETY: FP is enabled (checked above); `s` is a valid, 16-byte
        // aligned 528-byte area.
        unsafe { __fpu_save(s) };
        s.live = true;
    }
}

/// Makes `s` the CPU's FP/SIMD state for the thread about to run (or, for
/// the kernel on the running thread, its user FP state from now on): loads
/// it if live, else traps FP until the thread's first use. IRQs masked.
pub fn restore(s: &FpState) {
    if s.live {
        set_enabled(true);
        // SAFETY: FP enabled just above; `s` is a valid saved state.
        unsafe { __fpu_restore(s) };
    } else if enabled() {
        set_enabled(false);
    }
}

/// The FP trap (ESR class 0x07): the running thread's first FP/SIMD
/// instruction. Enables FP with zeroed registers; the vector retries the
/// instruction.
pub(crate) fn first_use() {
    set_enabled(true);
    // SAFETY: FP enabled just above; only the FP registers are written.
    unsafe { __fpu_zero() };
}

/// How FP state is switched, for the kernel's start-up line.
pub fn mode() -> &'static str {
    "trap-first-use"
}

/// FPCR.RMode (bits 23:22), the one FPCR field `test_fill` varies.
const FPCR_RMODE_MASK: u64 = 3 << 22;

/// The register pattern `test_fill` loads for `seed`: V0-V31 as 64 words
/// (xorshift), and an FPCR rounding mode.
fn test_pattern(seed: u64) -> ([u64; 64], u64) {
    let mut p = [0u64; 64];
    let mut x = seed | 1;
    for v in &mut p {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x;
    }
    (p, (seed << 22) & FPCR_RMODE_MASK)
}

/// Test support (scheduler ktests): loads a pattern derived from `seed`
/// into V0-V31 and FPCR.RMode, as a thread doing FP work would. Traps to
/// `first_use` if this thread has not used FP yet.
pub fn test_fill(seed: u64) {
    let (p, rmode) = test_pattern(seed);
    // SAFETY: reads 512 bytes from `p`; writes only FP registers and FPCR,
    // which no kernel code uses (soft-float target).
    unsafe {
        asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{p}, #0]", "ldp q2, q3, [{p}, #32]",
            "ldp q4, q5, [{p}, #64]", "ldp q6, q7, [{p}, #96]",
            "ldp q8, q9, [{p}, #128]", "ldp q10, q11, [{p}, #160]",
            "ldp q12, q13, [{p}, #192]", "ldp q14, q15, [{p}, #224]",
            "ldp q16, q17, [{p}, #256]", "ldp q18, q19, [{p}, #288]",
            "ldp q20, q21, [{p}, #320]", "ldp q22, q23, [{p}, #352]",
            "ldp q24, q25, [{p}, #384]", "ldp q26, q27, [{p}, #416]",
            "ldp q28, q29, [{p}, #448]", "ldp q30, q31, [{p}, #480]",
            "mrs {t}, fpcr",
            "bic {t}, {t}, #{mask}",
            "orr {t}, {t}, {r}",
            "msr fpcr, {t}",
            p = in(reg) p.as_ptr(),
            r = in(reg) rmode,
            t = out(reg) _,
            mask = const FPCR_RMODE_MASK,
            options(nostack, readonly),
        )
    };
}

/// Test support: true when V0-V31 and FPCR.RMode still hold what
/// `test_fill(seed)` loaded.
pub fn test_check(seed: u64) -> bool {
    let (want, rmode) = test_pattern(seed);
    let mut seen = [0u64; 64];
    let fpcr: u64;
    // SAFETY: writes 512 bytes into `seen`; only reads FP registers.
    unsafe {
        asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [{p}, #0]", "stp q2, q3, [{p}, #32]",
            "stp q4, q5, [{p}, #64]", "stp q6, q7, [{p}, #96]",
            "stp q8, q9, [{p}, #128]", "stp q10, q11, [{p}, #160]",
            "stp q12, q13, [{p}, #192]", "stp q14, q15, [{p}, #224]",
            "stp q16, q17, [{p}, #256]", "stp q18, q19, [{p}, #288]",
            "stp q20, q21, [{p}, #320]", "stp q22, q23, [{p}, #352]",
            "stp q24, q25, [{p}, #384]", "stp q26, q27, [{p}, #416]",
            "stp q28, q29, [{p}, #448]", "stp q30, q31, [{p}, #480]",
            "mrs {f}, fpcr",
            p = in(reg) seen.as_mut_ptr(),
            f = out(reg) fpcr,
            options(nostack),
        )
    };
    seen == want && fpcr & FPCR_RMODE_MASK == rmode
}

/// Per-CPU start state: FP trapped (the CPU's first thread has not used it).
pub(crate) fn init_this_cpu() {
    set_enabled(false);
}
