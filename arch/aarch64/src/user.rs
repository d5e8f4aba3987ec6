//! User mode: the application's threads run at EL0 in the kernel's one
//! address space (DESIGN.md decision 2). This module is the edge between
//! them and the kernel: the saved user registers, the first entry to EL0,
//! system-call and user-fault entry (through the hooks the kernel
//! registers), the per-thread TLS register, and fault-safe copies to and
//! from user memory. Contract: docs/arch-contract.md, "User mode".
//!
//! * **Stacks.** The kernel always runs on SP_EL1 (`boot` enters EL1h).
//!   [`enter`] `eret`s from the thread's kernel stack, so SP_EL1 keeps that
//!   stack pointer while the thread is at EL0, and every exception from EL0
//!   pushes its [`UserRegs`] there. A context switch inside a hook or an
//!   interrupt saves and restores SP like any other, so SP_EL1 is per thread
//!   without any per-thread bookkeeping.
//! * **Entries.** The "lower EL, AArch64" vectors (`trap`) save a full
//!   [`UserRegs`] (x0-x30, SP_EL0, ELR_EL1, SPSR_EL1: the same layout as the
//!   kernel's trap frame) and call `user_dispatch`: `svc` (ESR class 0x15)
//!   goes to `Hooks::syscall`, every other synchronous exception is decoded
//!   into a [`Fault`] with `user: true` for `Hooks::fault` (never
//!   `TrapHandler::fault`), IRQs take the kernel's usual interrupt path
//!   (which may switch threads), and each then passes `Hooks::return_to_user`
//!   with IRQs unmasked. The first FP/SIMD use traps once (`fpu`) and returns
//!   straight to EL0. FIQ and SError from EL0 are fatal, as on Linux.
//! * **Return.** PSTATE is rebuilt from the saved SPSR on every return: only
//!   the NZCV flags are taken from it, the mode is always EL0t with DAIF
//!   clear, so no value the kernel (or a signal frame) puts in
//!   `UserRegs::pstate` can return to EL1 or mask interrupts at EL0.
//! * **TLS.** `TPIDR_EL0`, switched by `context::switch`; `TPIDRRO_EL0` is
//!   always 0 at EL0 (the EL1 vectors use it as scratch and clear it).
//! * **Copies.** With PAN on, the kernel cannot touch user pages with normal
//!   loads and stores; the copies use the unprivileged `LDTR`/`STTR` family
//!   instead (checked with EL0 permissions, so a kernel page faults even if
//!   a range check were wrong) under `trap::catch_fault`.

use crate::api::{Access, Fault};
use crate::early_console::EarlyWriter;
use crate::{cpu, fpu, trap};
use aarch64_cpu::registers::{Readable, Writeable, ESR_EL1, FAR_EL1, TPIDR_EL0};
use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::sync::atomic::{AtomicPtr, Ordering};

/// One past the highest user address (the TTBR0 half with 48-bit VAs).
pub const USER_END: usize = 1 << 48;

/// The user-mode registers, saved on the thread's kernel stack at every
/// entry from EL0 and restored on the way back. The layout is Linux's
/// `struct user_pt_regs` (and the vectors' trap frame).
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct UserRegs {
    /// x0..x30 (x29 the frame pointer, x30 the link register).
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp: u64,
    /// ELR_EL1: where EL0 resumes.
    pub pc: u64,
    /// SPSR_EL1: only NZCV (bits 31:28) survive the return to EL0.
    pub pstate: u64,
    /// x0 at an `svc` (Linux's `orig_x0`): restarting needs the first
    /// argument, which the result overwrote.
    orig_x0: u64,
    /// `IN_SYSCALL` from an `svc` until the kernel settles its result,
    /// else 0 (the entry code zeroes it).
    syscall: u64,
}

/// `UserRegs::syscall` while a system call's result is unsettled.
const IN_SYSCALL: u64 = 1;
/// Bytes of the `svc #0` instruction.
const SVC_INSN_LEN: u64 = 4;

// The trap frame (`user_pt_regs`) plus the two words above: the 288 bytes
// the vectors reserve, so nothing is left for a frame record (the entry
// ends the kernel's frame-pointer chain with x29 = 0 instead).
const _: () = assert!(core::mem::size_of::<UserRegs>() == 288);
const _: () =
    assert!(core::mem::size_of::<UserRegs>() == core::mem::size_of::<trap::TrapFrame>() + 16);
const _: () = assert!(core::mem::offset_of!(UserRegs, sp) == 248);
const _: () = assert!(core::mem::offset_of!(UserRegs, pc) == 256);
const _: () = assert!(core::mem::offset_of!(UserRegs, orig_x0) == 272);

/// SPSR bits taken from `UserRegs::pstate` on return: N, Z, C, V. The rest
/// (M = EL0t, DAIF = 0, no single-step, no illegal state) is fixed.
const PSTATE_USER_MASK: u64 = 0xf000_0000;

impl UserRegs {
    /// First-entry state: `pc` and `sp`, every other register zero, EL0t
    /// with interrupts unmasked.
    pub fn new(pc: usize, sp: usize) -> Self {
        Self {
            x: [0; 31],
            sp: sp as u64,
            pc: pc as u64,
            pstate: 0,
            orig_x0: 0,
            syscall: 0,
        }
    }
    pub fn pc(&self) -> usize {
        self.pc as usize
    }
    pub fn set_pc(&mut self, pc: usize) {
        self.pc = pc as u64;
    }
    pub fn sp(&self) -> usize {
        self.sp as usize
    }
    pub fn set_sp(&mut self, sp: usize) {
        self.sp = sp as u64;
    }
    /// The system-call number (x8).
    pub fn syscall_nr(&self) -> usize {
        self.x[8] as usize
    }
    /// The system-call arguments (x0..x5).
    pub fn syscall_args(&self) -> [usize; 6] {
        core::array::from_fn(|i| self.x[i] as usize)
    }
    /// The return value register (x0).
    pub fn set_ret(&mut self, v: usize) {
        self.x[0] = v as u64;
    }
    /// The return value register (x0).
    pub fn ret(&self) -> usize {
        self.x[0] as usize
    }
    /// True on the way back from an `svc` whose result (x0) the kernel
    /// has not settled yet: [`restart_syscall`](Self::restart_syscall) or
    /// [`forget_syscall`](Self::forget_syscall) end it.
    pub fn in_syscall(&self) -> bool {
        self.syscall == IN_SYSCALL
    }
    /// Makes the return re-execute the `svc` (4 bytes back) with the
    /// original x0; x1..x5 and x8 were never changed. No-op unless
    /// [`in_syscall`](Self::in_syscall).
    pub fn restart_syscall(&mut self) {
        if self.in_syscall() {
            self.x[0] = self.orig_x0;
            self.pc = self.pc.wrapping_sub(SVC_INSN_LEN);
            self.syscall = 0;
        }
    }
    /// The system call's result is final (or the registers were replaced,
    /// e.g. by `rt_sigreturn`).
    pub fn forget_syscall(&mut self) {
        self.syscall = 0;
    }
    /// Function-call argument register `i` (x0..x5); other `i` are ignored.
    pub fn set_arg(&mut self, i: usize, v: usize) {
        if i < 6 {
            self.x[i] = v as u64;
        }
    }
    /// All registers by name, two or three per line, for crash reports.
    pub fn dump(&self, out: &mut dyn Write) -> core::fmt::Result {
        for row in (0..30).step_by(3) {
            for i in row..row + 3 {
                let sep = if i == row + 2 { "\n" } else { " " };
                write!(out, "x{i:<2} {:#018x}{sep}", self.x[i])?;
            }
        }
        writeln!(out, "x30 {:#018x} sp  {:#018x}", self.x[30], self.sp)?;
        writeln!(out, "pc  {:#018x} pstate {:#010x}", self.pc, self.pstate)
    }
}

/// The kernel's entry points from user mode (see the contract).
pub struct Hooks {
    pub syscall: fn(&mut UserRegs),
    pub fault: fn(&mut UserRegs, &Fault),
    pub return_to_user: fn(&mut UserRegs),
}

static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the kernel's hooks. A later call replaces them (the user-mode
/// ktests install their own; the Linux personality installs the real ones);
/// entries already inside a hook finish with the old set.
pub fn set_hooks(h: &'static Hooks) {
    HOOKS.store(h as *const Hooks as *mut Hooks, Ordering::Release);
}

fn hooks() -> Option<&'static Hooks> {
    let p = HOOKS.load(Ordering::Acquire);
    // SAFETY: only `set_hooks` stores here, always from a `&'static Hooks`.
    (!p.is_null()).then(|| unsafe { &*p })
}

global_asm!(
    r#"
    .section .text, "ax"
    // Entered from the EL0 vectors (`trap`) with a 288-byte frame pushed on
    // SP_EL1 (the thread's kernel stack), x0-x29 stored, x1 = vector.
    .global __user_entry
__user_entry:
    mrs     x2, sp_el0
    stp     x30, x2, [sp, #240]
    mrs     x3, elr_el1
    mrs     x4, spsr_el1
    stp     x3, x4, [sp, #256]
    stp     xzr, xzr, [sp, #272]    // orig_x0, syscall (set by dispatch)
    mov     x29, xzr                // the kernel's frame chain ends here
    mov     x0, sp
    bl      {dispatch}              // returns with IRQs masked

    // Return to EL0 from the frame at SP; SP_EL1 ends 288 bytes higher,
    // where the next entry from EL0 will push its frame.
    .global __user_exit
__user_exit:
    ldp     x3, x4, [sp, #256]
    msr     elr_el1, x3
    msr     spsr_el1, x4
    ldp     x30, x2, [sp, #240]
    msr     sp_el0, x2
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    add     sp, sp, #288
    eret
    dsb     nsh                     // no speculation past the eret
    isb
"#,
    dispatch = sym user_dispatch,
);

unsafe extern "C" {
    fn __user_exit();
}

/// The vector numbers (`trap`) of exceptions taken from EL0 in AArch64.
const VECTOR_SYNC: u64 = 8;
const VECTOR_IRQ: u64 = 9;

/// ESR_EL1 exception classes handled here rather than as faults.
const EC_FP_ACCESS: u64 = 0x07;
const EC_SVC64: u64 = 0x15;

/// Called by `__user_entry` with the saved registers and the vector number
/// (8 sync, 9 IRQ, 10 FIQ, 11 SError), IRQs masked; returns with IRQs
/// masked and `regs.pstate` made safe for the `eret`.
extern "C" fn user_dispatch(regs: &mut UserRegs, vector: u64) {
    match vector {
        VECTOR_SYNC => {
            // Read the syndrome before anything can take another exception.
            let esr = ESR_EL1.get();
            let far = FAR_EL1.get();
            match (esr >> 26) & 0x3f {
                EC_FP_ACCESS => {
                    // First FP/SIMD use: transparent to the thread.
                    fpu::first_use();
                    regs.pstate &= PSTATE_USER_MASK;
                    return;
                }
                EC_SVC64 => {
                    regs.orig_x0 = regs.x[0];
                    regs.syscall = IN_SYSCALL;
                    let h = hooks_or_die(regs, "svc");
                    cpu::enable_interrupts();
                    (h.syscall)(regs);
                }
                _ => {
                    let fault = trap::decode_fault(esr, far, regs.pc, true);
                    let h = hooks_or_die(regs, fault.name);
                    cpu::enable_interrupts();
                    (h.fault)(regs, &fault);
                }
            }
        }
        VECTOR_IRQ => {
            // The kernel's interrupt path, preemption included: this thread
            // may be switched away here and resumed later, on any CPU.
            trap::interrupt();
            cpu::enable_interrupts();
        }
        _ => {
            let what = if vector == VECTOR_IRQ + 1 {
                "fiq"
            } else {
                "serror"
            };
            user_fatal(regs, what, ESR_EL1.get())
        }
    }
    if let Some(h) = hooks() {
        (h.return_to_user)(regs);
    }
    cpu::disable_interrupts();
    regs.pstate &= PSTATE_USER_MASK;
}

fn hooks_or_die(regs: &UserRegs, what: &str) -> &'static Hooks {
    match hooks() {
        Some(h) => h,
        None => user_fatal(regs, what, ESR_EL1.get()),
    }
}

fn user_fatal(regs: &UserRegs, what: &str, esr: u64) -> ! {
    let _ = writeln!(EarlyWriter, "user: fatal {what} from el0 esr={esr:#x}");
    let _ = regs.dump(&mut EarlyWriter);
    panic!("user: {what} from EL0 (esr={esr:#x})")
}

/// Leaves for EL0 with `regs` (PSTATE as in the module doc). The current
/// stack pointer, inside the calling thread's kernel stack, becomes the
/// thread's entry stack: every later exception from EL0 pushes its frame
/// just below it. Frames of `enter`'s callers stay as they are and are never
/// returned to. Panics if no hooks were registered.
pub fn enter(regs: &UserRegs) -> ! {
    // Every way back from EL0 needs the hooks: refuse to leave without.
    hooks_or_die(regs, "enter before set_hooks");
    let mut frame = regs.clone();
    frame.pstate &= PSTATE_USER_MASK;
    frame.forget_syscall();
    cpu::disable_interrupts();
    // SAFETY: builds the 288-byte exit frame (a `UserRegs`) below the
    // current SP, which is 16-byte aligned and on this thread's kernel
    // stack, then `eret`s to EL0 through `__user_exit`, which pops exactly
    // that frame. `frame` lives in this function's frame above the new one
    // and is only read. IRQs are masked until the `eret`.
    unsafe {
        asm!(
            "sub    sp, sp, #288",
            ".irp   off, 0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 272",
            "ldp    x2, x3, [x0, #\\off]",
            "stp    x2, x3, [sp, #\\off]",
            ".endr",
            "b      {exit}",
            in("x0") &raw const frame,
            exit = sym __user_exit,
            options(noreturn),
        )
    }
}

/// The current thread's user TLS register (TPIDR_EL0).
pub fn tls() -> usize {
    TPIDR_EL0.get() as usize
}

/// Sets the current thread's user TLS register; `context::switch` keeps it
/// per thread.
pub fn set_tls(v: usize) {
    TPIDR_EL0.set(v as u64);
}

/// The fault a copy reports when its range is not all below [`USER_END`].
fn range_fault(addr: usize, access: Access) -> Fault {
    Fault {
        name: "user range",
        access,
        addr,
        pc: 0,
        user: false,
        syndrome: 0,
        protection: true,
    }
}

/// `addr..addr + len` lies below [`USER_END`] (without overflow).
fn user_range_ok(addr: usize, len: usize) -> bool {
    addr.checked_add(len).is_some_and(|end| end <= USER_END)
}

/// What the copy routines below run under `catch_fault`: `len` bytes from
/// `src` to `dst`, one side in user memory.
struct CopyJob {
    dst: usize,
    src: usize,
    len: usize,
    /// Set by the string copy: bytes copied before the NUL, if one was seen.
    found: Option<usize>,
}

/// How many bytes to move one at a time before the user address is 8-byte
/// aligned (then whole words, then the tail byte by byte).
fn head_len(user_addr: usize, len: usize) -> usize {
    (user_addr.wrapping_neg() & 7).min(len)
}

/// Reads user memory with `LDTR*` into kernel memory: bytes up to the first
/// 8-byte aligned user address, aligned words, then the tail.
fn copy_in_job(job: usize) {
    // SAFETY: `job` is the address of a live `CopyJob` on the caller's
    // frame (passed through `catch_fault`).
    let job = unsafe { &mut *(job as *mut CopyJob) };
    let (d, s, n) = (job.dst, job.src, job.len);
    let head = head_len(s, n);
    let body = (n - head) & !7;
    copy_in_bytes(d, s, head);
    copy_in_words(d + head, s + head, body / 8);
    copy_in_bytes(d + head + body, s + head + body, n - head - body);
}

fn copy_in_bytes(d: usize, s: usize, n: usize) {
    for i in 0..n {
        let v: u32;
        // SAFETY: an unprivileged load from a user address (checked with
        // EL0 permissions; a fault is caught by `catch_fault`); `d + i` is
        // inside the caller's destination slice.
        unsafe {
            asm!("ldtrb {v:w}, [{s}]", v = out(reg) v, s = in(reg) s + i,
                 options(nostack, readonly));
            ((d + i) as *mut u8).write(v as u8);
        }
    }
}

/// The kernel side of a word copy may be unaligned. The target is built
/// strict-align, so `write_unaligned` would become eight byte stores; a
/// plain `str` is fine in hardware (SCTLR_EL1.A is clear and kernel memory
/// is Normal), so it is written in assembly.
fn copy_in_words(d: usize, s: usize, words: usize) {
    for i in 0..words {
        // SAFETY: as in `copy_in_bytes`; `s` is 8-byte aligned; `d + 8i`
        // is inside the caller's destination slice (an unaligned `str` to
        // Normal memory is allowed, see above).
        unsafe {
            asm!("ldtr {v}, [{s}]", "str {v}, [{d}]", v = out(reg) _,
                 s = in(reg) s + 8 * i, d = in(reg) d + 8 * i, options(nostack));
        }
    }
}

/// Writes kernel memory to user memory with `STTR*`, split as in
/// `copy_in_job` by the user address.
fn copy_out_job(job: usize) {
    // SAFETY: as in `copy_in_job`.
    let job = unsafe { &mut *(job as *mut CopyJob) };
    let (d, s, n) = (job.dst, job.src, job.len);
    let head = head_len(d, n);
    let body = (n - head) & !7;
    copy_out_bytes(d, s, head);
    copy_out_words(d + head, s + head, body / 8);
    copy_out_bytes(d + head + body, s + head + body, n - head - body);
}

fn copy_out_bytes(d: usize, s: usize, n: usize) {
    for i in 0..n {
        // SAFETY: `s + i` is inside the caller's source slice; the store
        // is unprivileged to a user address, a fault is caught.
        unsafe {
            let v = ((s + i) as *const u8).read() as u32;
            asm!("sttrb {v:w}, [{d}]", v = in(reg) v, d = in(reg) d + i, options(nostack));
        }
    }
}

/// As `copy_in_words`, the other way: an unaligned kernel-side `ldr`.
fn copy_out_words(d: usize, s: usize, words: usize) {
    for i in 0..words {
        // SAFETY: as in `copy_out_bytes`; `d` is 8-byte aligned; `s + 8i`
        // is inside the caller's source slice.
        unsafe {
            asm!("ldr {v}, [{s}]", "sttr {v}, [{d}]", v = out(reg) _,
                 s = in(reg) s + 8 * i, d = in(reg) d + 8 * i, options(nostack));
        }
    }
}

/// Reads a NUL-terminated string byte by byte (never past the NUL, so a
/// string that ends just before an unmapped page does not fault).
fn copy_cstr_job(job: usize) {
    // SAFETY: as in `copy_in_job`.
    let job = unsafe { &mut *(job as *mut CopyJob) };
    for i in 0..job.len {
        let v: u32;
        // SAFETY: unprivileged one-byte load from a user address (fault
        // caught); the store stays inside the caller's buffer.
        unsafe {
            asm!("ldtrb {v:w}, [{s}]", v = out(reg) v, s = in(reg) job.src + i,
                 options(nostack, readonly));
            ((job.dst + i) as *mut u8).write(v as u8);
        }
        if v == 0 {
            job.found = Some(i);
            return;
        }
    }
}

/// Copies `dst.len()` bytes from user address `src`. Err if the range is
/// not below [`USER_END`] or a page faults (no hook is called).
pub fn copy_from_user(dst: &mut [u8], src: usize) -> Result<(), Fault> {
    if !user_range_ok(src, dst.len()) {
        return Err(range_fault(src, Access::Read));
    }
    let mut job = CopyJob {
        dst: dst.as_mut_ptr() as usize,
        src,
        len: dst.len(),
        found: None,
    };
    trap::catch_fault(copy_in_job, &raw mut job as usize)
}

/// Copies `src` to user address `dst`. Err as for [`copy_from_user`].
pub fn copy_to_user(dst: usize, src: &[u8]) -> Result<(), Fault> {
    if !user_range_ok(dst, src.len()) {
        return Err(range_fault(dst, Access::Write));
    }
    let mut job = CopyJob {
        dst,
        src: src.as_ptr() as usize,
        len: src.len(),
        found: None,
    };
    trap::catch_fault(copy_out_job, &raw mut job as usize)
}

/// Copies a NUL-terminated string of at most `buf.len()` bytes (NUL
/// included) from `src`: `Ok(Some(len))` without the NUL, `Ok(None)` if
/// `buf` filled up first. Reads stop at the NUL and at [`USER_END`] (a
/// string running into it is a fault).
pub fn copy_cstr_from_user(buf: &mut [u8], src: usize) -> Result<Option<usize>, Fault> {
    if src >= USER_END {
        return Err(range_fault(src, Access::Read));
    }
    let len = buf.len().min(USER_END - src);
    let mut job = CopyJob {
        dst: buf.as_mut_ptr() as usize,
        src,
        len,
        found: None,
    };
    trap::catch_fault(copy_cstr_job, &raw mut job as usize)?;
    match job.found {
        Some(n) => Ok(Some(n)),
        None if len < buf.len() => Err(range_fault(USER_END, Access::Read)),
        None => Ok(None),
    }
}
