//! Thread context switch: the callee-saved registers, RFLAGS and the stack
//! pointer, plus the two pieces of per-thread state user mode needs: the
//! FS base (user TLS) and the thread's kernel stack top, which becomes
//! TSS.rsp0 and the `syscall` stack of the CPU the thread runs on. FP/SIMD
//! state is separate ([`crate::fpu`]); the kernel is soft-float.
//!
//! `switch` pushes RBP, RBX, R12-R15 and RFLAGS on the old stack, stores
//! RSP, saves the FS base (`rdfsbase`, or the per-CPU shadow when
//! CR4.FSGSBASE is off, since then only `user::set_tls` changes it), loads
//! the new thread's FS base (the MSR only when it differs), kernel stack top
//! and RSP, and pops the same frame. A fresh context ([`Context::new`]) is a hand-built
//! frame whose return address is `skiff_x86_thread_start`, which calls
//! `entry(arg)` with interrupts enabled (RFLAGS.IF set in the frame).

use core::arch::global_asm;

/// A saved CPU context (opaque to the kernel). `Default` is "not started":
/// it may only be switched *from* (its slot receives the state).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Context {
    /// Saved stack pointer (offset 0 in the assembly).
    rsp: usize,
    /// Top of the thread's kernel stack, 0 if unknown (offset 8).
    kstack_top: usize,
    /// User FS base (offset 16).
    fs_base: usize,
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
    cmpb $0, {fsgsbase}(%rip)
    je 1f
    rdfsbase %rax
    mov %rax, 16(%rdi)
    mov 16(%rsi), %rax
    wrfsbase %rax
    jmp 2f
1:  mov %gs:{fs_shadow}, %rax
    mov %rax, 16(%rdi)
    mov 16(%rsi), %rax
    cmp %rax, %gs:{fs_shadow}
    je 2f
    mov %rax, %gs:{fs_shadow}
    mov %rax, %rdx
    shr $32, %rdx
    mov ${fs_msr}, %ecx
    wrmsr
2:  mov 8(%rsi), %rax
    mov %rax, %gs:{kstack}
    mov %gs:{tss_rsp0}, %rcx
    mov %rax, (%rcx)
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
    fsgsbase = sym crate::user::SKIFF_X86_FSGSBASE,
    fs_shadow = const crate::percpu::OFF_FS_BASE,
    kstack = const crate::percpu::OFF_KSTACK_TOP,
    tss_rsp0 = const crate::percpu::OFF_TSS_RSP0,
    fs_msr = const crate::percpu::IA32_FS_BASE,
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
        Context {
            rsp,
            kstack_top: stack_top,
            fs_base: 0,
        }
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
