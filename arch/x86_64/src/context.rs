//! Thread context switch: the callee-saved registers, RFLAGS and the stack
//! pointer. FP/SIMD state is separate ([`crate::fpu`]); the kernel is
//! soft-float, so nothing else needs saving here.
//!
//! A saved context is just a stack pointer: `switch` pushes RBP, RBX,
//! R12-R15 and RFLAGS on the old stack, stores RSP, loads the new RSP and
//! pops the same frame. A fresh context ([`Context::new`]) is a hand-built
//! frame whose return address is `skiff_x86_thread_start`, which calls
//! `entry(arg)` with interrupts enabled (RFLAGS.IF set in the frame).

use core::arch::global_asm;

/// A saved CPU context (opaque to the kernel). `Default` is "not started":
/// it may only be switched *from* (its slot receives the state).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Context {
    rsp: usize,
}

/// RFLAGS of a new thread: IF (bit 9) plus the always-one bit 1.
const NEW_RFLAGS: usize = 0x202;
/// Words in the saved frame: rflags, r15, r14, r13, r12, rbx, rbp, return.
const FRAME_WORDS: usize = 8;

global_asm!(
    r#"
    .section .text.skiff_switch, "ax"
    .global skiff_x86_switch
    /* skiff_x86_switch(from: *mut Context (rdi), to: *const Context (rsi)) */
skiff_x86_switch:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    pushfq
    mov %rsp, (%rdi)
    mov (%rsi), %rsp
    popfq
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

    /* First code of a new context: r13 = entry, r12 = arg. The null return
     * address ends frame-pointer backtraces; entry must not return. */
    .global skiff_x86_thread_start
skiff_x86_thread_start:
    xor %ebp, %ebp
    mov %r12, %rdi
    push $0
    jmp *%r13
    "#,
    options(att_syntax)
);

extern "C" {
    fn skiff_x86_switch(from: *mut Context, to: *const Context);
}

impl Context {
    /// A context that runs `entry(arg)` on the stack ending at `stack_top`
    /// (16-byte aligned, mapped, at least a page) with interrupts enabled.
    pub fn new(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> Self {
        assert!(
            stack_top.is_multiple_of(16),
            "context: stack_top not 16-byte aligned"
        );
        let start = crate::boot::sym_addr!(skiff_x86_thread_start);
        let frame: [usize; FRAME_WORDS] = [
            NEW_RFLAGS,
            0,              // r15
            0,              // r14
            entry as usize, // r13
            arg,            // r12
            0,              // rbx
            0,              // rbp
            start,          // return address of `switch`
        ];
        let rsp = stack_top - FRAME_WORDS * 8;
        // SAFETY: the caller hands us a mapped, writable stack it owns
        // (checked by nothing but the contract); the frame fits in its top
        // 64 bytes.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut usize, FRAME_WORDS) };
        Context { rsp }
    }
}

/// Saves the current CPU state into `*from` and resumes `*to`; returns when
/// something switches back to `from`.
///
/// # Safety
/// Interrupts must be off. `from` must be valid for writes and `to` must
/// hold a context saved by `switch` or built by `Context::new` whose stack
/// is still alive and not running on any CPU. RFLAGS (so the interrupt
/// flag) comes from the target's saved state.
pub unsafe fn switch(from: *mut Context, to: *const Context) {
    // SAFETY: forwarded to the caller; the assembly follows the SysV ABI
    // (it preserves every callee-saved register across the call).
    unsafe { skiff_x86_switch(from, to) }
}
