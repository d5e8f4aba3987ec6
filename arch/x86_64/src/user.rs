//! User mode: the application's threads run at ring 3 in the kernel's one
//! address space (DESIGN.md decision 2). This module is the edge between
//! them and the kernel: the saved user registers, the first entry to user
//! mode, `syscall` entry and exit (user faults and interrupts enter through
//! the IDT stubs in `trap.rs` and continue in [`user_trap`]), the
//! per-thread TLS register (FS base), and fault-safe copies to and from user
//! memory. Contract: docs/arch-contract.md, "User mode".
//!
//! Entry stack: every entry from ring 3 lands on the running thread's
//! kernel stack top (TSS.rsp0 and the `percpu` slot, both set by
//! `context::switch`), where a [`UserRegs`] is built. `syscall` returns with
//! `sysretq` when the saved state allows it (RCX = RIP, R11 = RFLAGS, RIP in
//! the user half), else with `iretq`; a non-canonical return RIP never
//! reaches either (it becomes a user #GP, see [`finish`]).

use crate::api::{Access, Fault};
use crate::cpu::{self, feature};
use crate::gdt::{KERNEL_CS, USER_CS, USER_DS};
use crate::percpu::{self, OFF_KSTACK_TOP, OFF_USER_RSP};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// One past the highest user address: the lower canonical half.
pub const USER_END: usize = 1 << 47;

/// The "vector" a `syscall` entry records in [`UserRegs`].
const SYSCALL_VECTOR: u64 = 0x100;
/// The "vector" after [`UserRegs::forget_syscall`]: no entry kind at all.
const NO_VECTOR: u64 = u64::MAX;
/// Bytes of the `syscall` instruction (0f 05).
const SYSCALL_INSN_LEN: u64 = 2;

/// RFLAGS bits user code may set: CF PF AF ZF SF TF DF OF AC ID (and the
/// always-one bit 1). IOPL, NT, RF, VM and VIF/VIP are never returned.
const USER_RFLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;
const RFLAGS_IF: u64 = 0x200;
const RFLAGS_FIXED: u64 = 0x2;
/// SFMASK: RFLAGS bits `syscall` clears: TF, IF, DF, AC, NT (as Linux).
const SYSCALL_MASK: u64 = 0x100 | 0x200 | 0x400 | 0x4_0000 | 0x4000;

const IA32_EFER: u32 = 0xc000_0080;
const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_FMASK: u32 = 0xc000_0084;
const EFER_SCE: u64 = 1;

/// The user-mode registers, saved on the thread's kernel stack at every
/// entry from user mode and restored on the way back. The layout is the
/// IDT stubs' frame (`trap::TrapFrame` is this type): general registers as
/// pushed, then the vector and error code, then the CPU's interrupt frame.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Exception/interrupt vector, or `SYSCALL_VECTOR` (`NO_VECTOR` once
    /// the kernel is done with a system call's result).
    pub vector: u64,
    /// Error code; for `syscall` the original RAX (Linux's `orig_ax`).
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Words in [`UserRegs`] (the assembly and `enter` rely on it).
const REGS_WORDS: usize = 22;
const _: () = assert!(core::mem::size_of::<UserRegs>() == REGS_WORDS * 8);
// 16-byte multiple: the stubs call Rust with RSP = the frame, which must
// keep the kernel stack top's 16-byte alignment.
const _: () = assert!(core::mem::size_of::<UserRegs>().is_multiple_of(16));

fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

impl UserRegs {
    /// First-entry state: `pc`, `sp`, every other register zero, IF set.
    pub fn new(pc: usize, sp: usize) -> Self {
        UserRegs {
            rip: pc as u64,
            rsp: sp as u64,
            rflags: RFLAGS_IF | RFLAGS_FIXED,
            cs: u64::from(USER_CS),
            ss: u64::from(USER_DS),
            ..UserRegs::default()
        }
    }
    pub fn pc(&self) -> usize {
        self.rip as usize
    }
    pub fn set_pc(&mut self, pc: usize) {
        self.rip = pc as u64;
    }
    pub fn sp(&self) -> usize {
        self.rsp as usize
    }
    pub fn set_sp(&mut self, sp: usize) {
        self.rsp = sp as u64;
    }
    /// RAX.
    pub fn syscall_nr(&self) -> usize {
        self.rax as usize
    }
    /// RDI RSI RDX R10 R8 R9.
    pub fn syscall_args(&self) -> [usize; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9].map(|r| r as usize)
    }
    /// RAX.
    pub fn set_ret(&mut self, v: usize) {
        self.rax = v as u64;
    }
    /// RAX.
    pub fn ret(&self) -> usize {
        self.rax as usize
    }
    /// True on the way back from a `syscall` whose result (RAX) the
    /// kernel has not settled yet: [`restart_syscall`](Self::restart_syscall)
    /// or [`forget_syscall`](Self::forget_syscall) end it.
    pub fn in_syscall(&self) -> bool {
        self.vector == SYSCALL_VECTOR
    }
    /// Makes the return re-execute the `syscall` instruction (2 bytes
    /// back) with the original number in RAX; the argument registers were
    /// never changed. No-op unless [`in_syscall`](Self::in_syscall).
    pub fn restart_syscall(&mut self) {
        if self.in_syscall() {
            self.rax = self.error;
            self.rip = self.rip.wrapping_sub(SYSCALL_INSN_LEN);
            self.vector = NO_VECTOR;
        }
    }
    /// The system call's result is final (or the registers were replaced,
    /// e.g. by `rt_sigreturn`): [`in_syscall`](Self::in_syscall) is false
    /// from now on.
    pub fn forget_syscall(&mut self) {
        if self.in_syscall() {
            self.vector = NO_VECTOR;
        }
    }
    /// Argument `i` of a SysV function call: RDI RSI RDX RCX R8 R9.
    /// Out-of-range `i` is ignored.
    pub fn set_arg(&mut self, i: usize, v: usize) {
        let v = v as u64;
        match i {
            0 => self.rdi = v,
            1 => self.rsi = v,
            2 => self.rdx = v,
            3 => self.rcx = v,
            4 => self.r8 = v,
            5 => self.r9 = v,
            _ => {}
        }
    }
    /// Every general register, RIP, RSP, RFLAGS and the FS base, by name.
    /// The FS base is the calling thread's (dumps are made by the thread
    /// whose registers these are).
    pub fn dump(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        write!(
            out,
            "rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
             rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}\n\
             r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n\
             r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n\
             rip={:#018x} rflags={:#010x} fs_base={:#018x}\n",
            self.rax,
            self.rbx,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.rbp,
            self.rsp,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rip,
            self.rflags,
            tls(),
        )
    }

    /// Forces the state `iretq`/`sysretq` may load: user selectors, RFLAGS
    /// limited to user bits with IF set.
    fn sanitize(&mut self) {
        self.cs = u64::from(USER_CS);
        self.ss = u64::from(USER_DS);
        self.rflags = (self.rflags & USER_RFLAGS) | RFLAGS_IF | RFLAGS_FIXED;
    }
}

/// The kernel's entry points from user mode.
pub struct Hooks {
    pub syscall: fn(&mut UserRegs),
    pub fault: fn(&mut UserRegs, &Fault),
    pub return_to_user: fn(&mut UserRegs),
}

static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the kernel's hooks; a later call replaces them (threads
/// already in user mode use the new ones from their next entry).
pub fn set_hooks(h: &'static Hooks) {
    HOOKS.store(h as *const Hooks as *mut Hooks, Ordering::Release);
}

fn hooks() -> &'static Hooks {
    let p = HOOKS.load(Ordering::Acquire);
    // SAFETY: non-null values come from `set_hooks`, which takes a
    // `&'static Hooks`.
    unsafe { p.as_ref() }.expect("user: entry from user mode without hooks")
}

/// CR4.FSGSBASE is on (set by `mm::init` when CPUID has it). Read by the
/// assembly in `context.rs` as a byte.
#[no_mangle]
pub(crate) static SKIFF_X86_FSGSBASE: AtomicBool = AtomicBool::new(false);

fn fsgsbase() -> bool {
    SKIFF_X86_FSGSBASE.load(Ordering::Relaxed)
}

/// Per-CPU `syscall` setup (from `gdt::load`, after the GDT and GS base):
/// EFER.SCE, STAR (kernel CS 0x08, sysret base 0x10), LSTAR, SFMASK.
pub(crate) fn init_this_cpu() {
    use x86_64::registers::model_specific::Msr;
    let star = (u64::from(USER_DS & !3) - 8) << 48 | u64::from(KERNEL_CS) << 32;
    let entry = crate::boot::sym_addr!(skiff_x86_syscall_entry) as u64;
    // SAFETY: the selectors in STAR match the GDT `gdt::load` just loaded;
    // LSTAR is the entry stub below, which switches to a kernel stack
    // before touching memory; SFMASK keeps interrupts off until it has.
    unsafe {
        Msr::new(IA32_STAR).write(star);
        Msr::new(IA32_LSTAR).write(entry);
        Msr::new(IA32_FMASK).write(SYSCALL_MASK);
        let mut efer = Msr::new(IA32_EFER);
        let v = efer.read();
        efer.write(v | EFER_SCE);
    }
}

// `syscall` entry: CPL 0 with the user RSP, RCX = user RIP, R11 = user
// RFLAGS, IF/DF/TF/AC clear (SFMASK). The frame built on the thread's kernel
// stack is a `UserRegs`; `skiff_x86_user_syscall` returns nonzero when
// `sysretq` may restore it. `skiff_x86_user_return` is the `iretq` exit for
// every user entry (and `enter`): RSP = a `UserRegs`, interrupts off.
global_asm!(
    r#"
    .section .text.skiff_user, "ax"
    .balign 16
    .global skiff_x86_syscall_entry
skiff_x86_syscall_entry:
    swapgs
    mov %rsp, %gs:{user_rsp}
    mov %gs:{kstack}, %rsp
    pushq ${user_ds}
    pushq %gs:{user_rsp}
    push %r11
    pushq ${user_cs}
    push %rcx
    push %rax               /* `error`: the original RAX (syscall number) */
    pushq ${sysvec}
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    xor %ebp, %ebp
    call {syscall}
    test %rax, %rax
    jz skiff_x86_user_return
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    /* vector, error, rip, cs, rflags, rsp, ss: RCX = rip and R11 = rflags
     * were checked by the Rust side. */
    mov 40(%rsp), %rsp
    swapgs
    sysretq

    .balign 16
    .global skiff_x86_user_return
skiff_x86_user_return:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    swapgs
    iretq
    "#,
    user_rsp = const OFF_USER_RSP,
    kstack = const OFF_KSTACK_TOP,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    sysvec = const SYSCALL_VECTOR,
    syscall = sym skiff_x86_user_syscall,
    options(att_syntax)
);

/// The Rust side of `syscall`: interrupts off on entry and on return.
/// Returns 1 if `sysretq` can restore `regs` exactly, 0 for `iretq`.
extern "C" fn skiff_x86_user_syscall(regs: &mut UserRegs) -> u64 {
    cpu::enable_interrupts();
    (hooks().syscall)(regs);
    finish(regs);
    // sysretq loads RIP from RCX and RFLAGS from R11 (and would #GP in ring
    // 0 on a non-canonical RCX, so the user half only).
    u64::from(regs.rcx == regs.rip && regs.r11 == regs.rflags && (regs.rip as usize) < USER_END)
}

/// User faults and interrupts, from the IDT stubs (`trap.rs`) on the
/// thread's kernel stack, interrupts off; returns with interrupts off,
/// ready for `iretq`.
pub(crate) fn user_trap(regs: &mut UserRegs) {
    // User code may have set RFLAGS.AC, which the CPU keeps on an
    // interrupt: kernel code must not run with SMAP disabled.
    clac();
    match regs.vector {
        2 => crate::early_print("trap: nmi received (user mode)\n"),
        8 | 18 => crate::trap::fatal_user(regs),
        0..=31 => {
            let fault = crate::trap::decode(regs);
            cpu::enable_interrupts();
            (hooks().fault)(regs, &fault);
            finish(regs);
        }
        _ => {
            crate::trap::interrupt(regs.vector);
            cpu::enable_interrupts();
            finish(regs);
        }
    }
}

/// The common tail of every entry from user mode, interrupts enabled:
/// `return_to_user`, then the state made returnable. A non-canonical RIP
/// (which `iretq` would fault on in ring 0) is handed to the fault hook as
/// a user general-protection fault, as the CPU would raise it, until the
/// kernel supplies a good one (signal handler) or ends the thread.
/// Leaves interrupts off.
fn finish(regs: &mut UserRegs) {
    loop {
        (hooks().return_to_user)(regs);
        regs.sanitize();
        if is_canonical(regs.rip) {
            break;
        }
        let fault = bad_rip_fault(regs);
        (hooks().fault)(regs, &fault);
    }
    cpu::disable_interrupts();
}

fn bad_rip_fault(regs: &UserRegs) -> Fault {
    Fault {
        name: "general protection",
        access: Access::None,
        addr: 0,
        pc: regs.rip as usize,
        user: true,
        syndrome: 13 << 32,
        protection: false,
    }
}

extern "C" {
    fn skiff_x86_user_return() -> !;
}

/// Leaves for user mode with `regs` on the current thread, whose kernel
/// stack we are on: the frame is rebuilt at the stack's top (the thread's
/// entry stack from now on) and left through `iretq`. Everything this
/// thread had on its kernel stack is abandoned.
pub fn enter(regs: &UserRegs) -> ! {
    let _ = hooks();
    let mut frame = regs.clone();
    frame.sanitize();
    frame.vector = 0;
    frame.error = 0;
    while !is_canonical(frame.rip) {
        let fault = bad_rip_fault(&frame);
        (hooks().fault)(&mut frame, &fault);
        frame.sanitize();
    }
    cpu::disable_interrupts();
    let top = percpu::kstack_top();
    assert!(
        top != 0 && top.is_multiple_of(16),
        "user: enter on a thread without a kernel stack top (not made by Context::new)"
    );
    let dst = top - REGS_WORDS * 8;
    let src = &frame as *const UserRegs as usize;
    // SAFETY: `dst..top` is the top of this thread's own kernel stack,
    // mapped and owned by it; `frame` lies below it in this function's frame
    // (deeper in the same stack), so the backwards copy is safe even if the
    // ranges were to meet. Nothing returns here: RSP moves to the frame and
    // `skiff_x86_user_return` leaves with `iretq` (interrupts stay off
    // until then; the frame's RFLAGS turns them back on in user mode).
    unsafe {
        core::arch::asm!(
            "std",
            "rep movsq",
            "cld",
            "mov rsp, {dst}",
            "jmp {ret}",
            dst = in(reg) dst,
            ret = sym skiff_x86_user_return,
            in("rsi") src + (REGS_WORDS - 1) * 8,
            in("rdi") dst + (REGS_WORDS - 1) * 8,
            in("rcx") REGS_WORDS,
            options(noreturn),
        )
    }
}

/// The current thread's FS base.
pub fn tls() -> usize {
    if fsgsbase() {
        let v: usize;
        // SAFETY: CR4.FSGSBASE is on; reads FS base only.
        unsafe {
            core::arch::asm!("rdfsbase {}", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    } else {
        percpu::fs_shadow()
    }
}

/// Sets the current thread's FS base. Values at or above [`USER_END`] are
/// ignored (the kernel's `arch_prctl` refuses them with EPERM, as Linux).
pub fn set_tls(v: usize) {
    if v >= USER_END {
        return;
    }
    cpu::without_interrupts(|| {
        if fsgsbase() {
            // SAFETY: CR4.FSGSBASE is on and `v` is canonical; the kernel
            // does not use FS.
            unsafe {
                core::arch::asm!("wrfsbase {}", in(reg) v, options(nomem, nostack, preserves_flags))
            };
        } else {
            // SAFETY: as above, through the MSR; the shadow is updated with
            // it under the same interrupts-off section.
            unsafe {
                x86_64::registers::model_specific::Msr::new(percpu::IA32_FS_BASE).write(v as u64)
            };
            percpu::set_fs_shadow(v);
        }
    });
}

fn smap() -> bool {
    cpu::has(feature::SMAP)
}

/// Clears RFLAGS.AC (SMAP on again); nothing without SMAP.
fn clac() {
    if smap() {
        // SAFETY: `clac` only clears RFLAGS.AC; the CPU has SMAP.
        unsafe { core::arch::asm!("clac", options(nomem, nostack)) };
    }
}

fn stac() {
    if smap() {
        // SAFETY: `stac` only sets RFLAGS.AC; the CPU has SMAP. Every caller
        // clears it again (`clac`) before leaving the copy.
        unsafe { core::arch::asm!("stac", options(nomem, nostack)) };
    }
}

/// `start..start+len` lies wholly in user space; else the fault the
/// copies report (at the first address past `USER_END`).
fn check_range(start: usize, len: usize, access: Access) -> Result<(), Fault> {
    match start.checked_add(len) {
        Some(end) if end <= USER_END => Ok(()),
        _ => Err(Fault {
            name: "bad user address",
            access,
            addr: start.max(USER_END),
            pc: 0,
            user: false,
            syndrome: 0,
            protection: false,
        }),
    }
}

/// One copy for `catch_fault`: `len` bytes from `src` to `dst`.
struct Copy {
    dst: usize,
    src: usize,
    len: usize,
}

fn copy_probe(arg: usize) {
    // SAFETY: `arg` is the address of the `Copy` owned by `user_copy` for
    // the duration of this call.
    let c = unsafe { &*(arg as *const Copy) };
    stac();
    // SAFETY: one side is a kernel buffer the caller owns for `len` bytes,
    // the other a user range below USER_END (checked) that may fault: the
    // surrounding `catch_fault` recovers and `user_copy` clears AC again.
    unsafe {
        core::arch::asm!("rep movsb", inout("rdi") c.dst => _, inout("rsi") c.src => _,
            inout("rcx") c.len => _, options(nostack, preserves_flags))
    };
    clac();
}

fn user_copy(dst: usize, src: usize, len: usize) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    let c = Copy { dst, src, len };
    let r = crate::trap::catch_fault(copy_probe, &c as *const Copy as usize);
    // A fault resumed `catch_fault` with the probe's RFLAGS (AC set).
    clac();
    r
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(dst: &mut [u8], src: usize) -> Result<(), Fault> {
    check_range(src, dst.len(), Access::Read)?;
    user_copy(dst.as_mut_ptr() as usize, src, dst.len())
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(dst: usize, src: &[u8]) -> Result<(), Fault> {
    check_range(dst, src.len(), Access::Write)?;
    user_copy(dst, src.as_ptr() as usize, src.len())
}

/// A NUL-terminated string copy for `catch_fault`.
struct CstrCopy {
    dst: *mut u8,
    src: usize,
    len: usize,
    /// Bytes copied, NUL included when found.
    found: Option<usize>,
}

fn cstr_probe(arg: usize) {
    // SAFETY: `arg` is the address of the `CstrCopy` owned by
    // `copy_cstr_from_user` for the duration of this call.
    let c = unsafe { &mut *(arg as *mut CstrCopy) };
    stac();
    for i in 0..c.len {
        // SAFETY: `src + i` is below USER_END (checked); a fault is caught
        // by the surrounding `catch_fault`. `dst` holds `len` bytes.
        let b = unsafe { core::ptr::read_volatile((c.src + i) as *const u8) };
        // SAFETY: `i < len`, the kernel buffer's length.
        unsafe { c.dst.add(i).write(b) };
        if b == 0 {
            c.found = Some(i);
            break;
        }
    }
    clac();
}

/// Copies a NUL-terminated string of at most `buf.len()` bytes (NUL
/// included) from `src`: `Ok(Some(n))` is its length without the NUL,
/// `Ok(None)` that `buf` filled up first. The range checked against
/// `USER_END` is the part that would be read: a string ending right below
/// `USER_END` is fine, reading on past it is an `Err`.
pub fn copy_cstr_from_user(buf: &mut [u8], src: usize) -> Result<Option<usize>, Fault> {
    if buf.is_empty() {
        return Ok(None);
    }
    if src >= USER_END {
        return Err(check_range(src, 1, Access::Read).unwrap_err());
    }
    let len = buf.len().min(USER_END - src);
    let mut c = CstrCopy {
        dst: buf.as_mut_ptr(),
        src,
        len,
        found: None,
    };
    let r = crate::trap::catch_fault(cstr_probe, &mut c as *mut CstrCopy as usize);
    clac();
    r?;
    match c.found {
        Some(n) => Ok(Some(n)),
        None if len < buf.len() => Err(check_range(src, buf.len(), Access::Read).unwrap_err()),
        None => Ok(None),
    }
}
