//! Thread contexts and the switch between them.
//!
//! A [`Context`] holds what the AAPCS64 says a callee keeps: x19-x28, the
//! frame pointer x29, the link register x30, SP, plus the interrupt mask
//! (DAIF) at the switch. Everything else is either caller-saved (the Rust
//! caller of [`switch`] spilled what it needs) or FP/SIMD state, which the
//! kernel handles separately with `fpu` (the kernel itself is soft-float).
//!
//! A switch is a plain function call that returns on another stack: save
//! the callee-saved registers of `from`, load those of `to`, `ret` to the
//! loaded x30. The CPU's innermost `trap::catch_fault` context is switched
//! with them: it belongs to the thread that called `catch_fault`, so a
//! thread blocking inside one cannot have its recovery point taken by the
//! next thread's fault. So is the user TLS register TPIDR_EL0 (`user::tls`;
//! the kernel itself never uses it): one `mrs`/`msr` pair per switch, no
//! check whether the thread ever ran in user mode. (SP_EL1 at EL0 needs no
//! slot: it is the SP saved here, see `user`.) A new context's x30 is
//! `__context_start`, which calls `entry(arg)` with IRQs unmasked and
//! TPIDR_EL0 zero.

use crate::percpu;
use aarch64_cpu::registers::{Readable, DAIF};
use core::arch::global_asm;

/// Saved registers of a thread that is not running. `Default` is "not yet
/// started": switching to it is undefined; build runnable ones with
/// [`Context::new`] (or let [`switch`] fill one in).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Context {
    /// x19..x28, x29 (fp), x30 (lr).
    regs: [u64; 12],
    sp: u64,
    daif: u64,
    /// This thread's innermost `catch_fault` context (0: none).
    catch: u64,
    /// This thread's user TLS register, TPIDR_EL0 (`user::tls`).
    tls: u64,
}

// Offsets used by the assembly below.
const _: () = assert!(core::mem::offset_of!(Context, sp) == 96);
const _: () = assert!(core::mem::offset_of!(Context, daif) == 104);
const _: () = assert!(core::mem::offset_of!(Context, catch) == 112);
const _: () = assert!(core::mem::offset_of!(Context, tls) == 120);

global_asm!(
    r#"
    .section .text, "ax"
    // __context_switch(from: x0, to: x1)
    .global __context_switch
__context_switch:
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mov     x9, sp
    mrs     x10, daif
    stp     x9, x10, [x0, #96]
    mrs     x11, tpidr_el1
    ldr     x12, [x11, #{catch}]
    mrs     x13, tpidr_el0
    stp     x12, x13, [x0, #112]
    ldp     x12, x13, [x1, #112]
    str     x12, [x11, #{catch}]
    msr     tpidr_el0, x13
    ldp     x19, x20, [x1, #0]
    ldp     x21, x22, [x1, #16]
    ldp     x23, x24, [x1, #32]
    ldp     x25, x26, [x1, #48]
    ldp     x27, x28, [x1, #64]
    ldp     x29, x30, [x1, #80]
    ldp     x9, x10, [x1, #96]
    mov     sp, x9
    msr     daif, x10
    ret

    // First switch into a `Context::new`: x19 = entry, x20 = arg.
    .global __context_start
__context_start:
    mov     x0, x20
    mov     x29, xzr                // end of the frame-pointer chain
    mov     x30, xzr
    br      x19
"#,
    catch = const percpu::CATCH_OFFSET,
);

unsafe extern "C" {
    fn __context_switch(from: *mut Context, to: *const Context);
    fn __context_start();
}

/// DAIF.I: IRQs masked.
const DAIF_I: u64 = 1 << 7;

impl Context {
    /// A context that, when switched to, calls `entry(arg)` on `stack_top`
    /// (16-byte aligned; the low bits are cleared if not) with IRQs unmasked
    /// and the other DAIF bits as the kernel runs now. `entry` must not
    /// return.
    pub fn new(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> Self {
        let mut regs = [0u64; 12];
        regs[0] = entry as usize as u64;
        regs[1] = arg as u64;
        regs[11] = __context_start as *const () as u64;
        Self {
            regs,
            sp: (stack_top & !0xf) as u64,
            daif: DAIF.get() & !DAIF_I,
            catch: 0,
            tls: 0,
        }
    }
}

/// Saves the running context into `*from` and continues `*to`; returns
/// when something switches back to `from`. DAIF is part of the context:
/// the caller masks IRQs, and `to` resumes with its own saved mask
/// (unmasked for a fresh `Context::new`).
///
/// # Safety
/// IRQs masked. `from` is writable and `to` is a context saved by `switch`
/// or built by `Context::new`, whose stack is valid and not running on any
/// CPU. Both stay valid until switched back. The store to `*from` is not a
/// release to other CPUs: the caller must not let another CPU switch to
/// `from` until this call has left it (e.g. an "on CPU" flag cleared by the
/// next context after the switch, with release ordering).
pub unsafe fn switch(from: *mut Context, to: *const Context) {
    // SAFETY: per the function's contract; `__context_switch` follows the
    // C ABI as a call that clobbers every caller-saved register.
    unsafe { __context_switch(from, to) }
}
