//! Exception vectors (`VBAR_EL1`), fault decoding and `catch_fault`.
//!
//! Every vector saves the full register frame ([`TrapFrame`]: x0-x30,
//! SP_EL0, ELR_EL1, SPSR_EL1) on the current stack, plus a frame record
//! (x29, ELR) so a backtrace walks through the exception into the
//! interrupted code, then calls `trap_dispatch` (from EL1) or `user`'s
//! entry (from EL0, where the frame record ends the chain instead).
//!
//! * Synchronous exceptions are decoded from ESR_EL1/FAR_EL1 into a
//!   [`Fault`]. A kernel-mode fault inside `catch_fault` resumes at the
//!   catch point (setjmp-style: callee-saved registers and SP restored, no
//!   unwinding); any other fault goes to the kernel's [`TrapHandler`].
//! * IRQs are acknowledged at the GIC (`irq`) and handed on as `Interrupt`s.
//! * An FP/SIMD access trap (ESR class 0x07) is a thread's first FP use:
//!   `fpu` enables FP and the instruction is retried.
//! * Stack overflow: the EL1 synchronous vector first checks, with
//!   `AT S1E1W`, that the frame fits on the current stack. If it does not
//!   (a thread ran into the unmapped guard page below its stack), the
//!   vector continues on the CPU's overflow stack (`percpu`) and the
//!   kernel's handler gets the fault, its address in the guard page; the
//!   thread is never resumed. (IRQs need no check: an IRQ frame that does
//!   not fit faults, and that fault takes this path.)
//! * Exceptions from EL0 (AArch64) have their own entry, in `user`: system
//!   calls and user faults go to the kernel's user-mode hooks, never to the
//!   [`TrapHandler`]; IRQs from EL0 share `interrupt` with EL1.
//! * FIQ, SError, exceptions from AArch32 EL0 and exceptions taken with
//!   SP_EL0 at EL1 (never used) are fatal.
//!
//! `catch_fault`'s recovery point is per CPU (`percpu`) and is switched
//! with the thread by `context::switch`.

use crate::{early_console::EarlyWriter, fpu, irq, percpu};
use aarch64_cpu::registers::{Readable, ESR_EL1, FAR_EL1};
use core::arch::global_asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicPtr, Ordering};
use skiff_arch_api::{Access, Fault, FaultAction, TrapHandler};
use spin::Once;

/// The registers saved by the vectors, in memory order.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp_el0: u64,
    pub elr: u64,
    pub spsr: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 272);

global_asm!(
    r#"
.macro SKIFF_VECTOR_BODY kind, target=__trap_common
    sub     sp, sp, #288
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mov     x1, #\kind
    b       \target
.endm

.macro SKIFF_VECTOR kind, target=__trap_common
    .balign 0x80
    SKIFF_VECTOR_BODY \kind, \target
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global __exception_vectors
__exception_vectors:
    SKIFF_VECTOR 0
    SKIFF_VECTOR 1
    SKIFF_VECTOR 2
    SKIFF_VECTOR 3
    // 4: synchronous, EL1 on SP_EL1 (a thread's stack). Check that the
    // frame fits before pushing it: a thread that ran into its guard page
    // would otherwise fault again on every push, forever. TPIDRRO_EL0 is
    // the scratch register (zero whenever EL0 runs); AT writes only PAR_EL1.
    .balign 0x80
    msr     tpidrro_el0, x0
    sub     x0, sp, #{frame}
    at      s1e1w, x0
    isb
    mrs     x0, par_el1
    tbnz    x0, #0, __trap_stack_overflow
    mrs     x0, tpidrro_el0
    msr     tpidrro_el0, xzr
    SKIFF_VECTOR_BODY 4
    SKIFF_VECTOR 5
    SKIFF_VECTOR 6
    SKIFF_VECTOR 7
    // 8-11: from EL0 (AArch64), on the thread's kernel stack: `user`.
    SKIFF_VECTOR 8, __user_entry
    SKIFF_VECTOR 9, __user_entry
    SKIFF_VECTOR 10, __user_entry
    SKIFF_VECTOR 11, __user_entry
    SKIFF_VECTOR 12
    SKIFF_VECTOR 13
    SKIFF_VECTOR 14
    SKIFF_VECTOR 15

    // The frame did not fit on the thread's stack: continue on this CPU's
    // overflow stack (percpu), with the overflowed SP stored just above
    // the frame, as vector {overflow}. x0 is in TPIDRRO_EL0; swapping SP
    // and x0 without a free register: sp += top; x0 = sp - top; sp -= x0.
__trap_stack_overflow:
    mrs     x0, tpidr_el1
    ldr     x0, [x0, #{overflow_top}]
    add     sp, sp, x0
    sub     x0, sp, x0
    sub     sp, sp, x0
    sub     sp, sp, #16
    str     x0, [sp]
    mrs     x0, tpidrro_el0
    msr     tpidrro_el0, xzr
    SKIFF_VECTOR_BODY {overflow}

__trap_common:
    mrs     x2, sp_el0
    stp     x30, x2, [sp, #240]
    mrs     x3, elr_el1
    mrs     x4, spsr_el1
    stp     x3, x4, [sp, #256]
    stp     x29, x3, [sp, #272]     // frame record: caller fp, interrupted pc
    add     x29, sp, #272
    mov     x0, sp
    bl      {dispatch}
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

    // __catch_call(ctx: x0, call: x1) -> 0, or 1 through __catch_landing.
    .section .text, "ax"
    .global __catch_call
__catch_call:
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mov     x9, sp
    str     x9, [x0, #96]
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    mov     x0, x1
    bl      {trampoline}
    ldp     x29, x30, [sp], #16
    mov     x0, #0
    ret

    // Entered by `eret` from a caught fault with x0 = the catch context.
    .global __catch_landing
__catch_landing:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldr     x9, [x0, #96]
    mov     sp, x9
    mov     x0, #1
    ret
"#,
    dispatch = sym trap_dispatch,
    trampoline = sym catch_trampoline,
    frame = const FRAME_SIZE,
    overflow = const VECTOR_STACK_OVERFLOW,
    overflow_top = const percpu::OVERFLOW_STACK_TOP_OFFSET,
);

/// Bytes the vectors push: the [`TrapFrame`] and a frame record.
const FRAME_SIZE: usize = 288;
/// Pseudo vector number of a synchronous exception whose frame did not fit
/// on the thread's stack (handled on the CPU's overflow stack).
const VECTOR_STACK_OVERFLOW: u64 = 16;

unsafe extern "C" {
    pub(crate) static __exception_vectors: u8;
    fn __catch_call(ctx: *mut (), call: *const ()) -> u64;
    fn __catch_landing();
}

static HANDLER: Once<&'static dyn TrapHandler> = Once::new();

/// Registers the kernel's trap handler (once; later calls are ignored).
pub fn set_handler(h: &'static dyn TrapHandler) {
    HANDLER.call_once(|| h);
}

/// A `catch_fault` recovery point: callee-saved registers x19-x30 and SP
/// (offsets fixed by `__catch_call`), and the fault that ended the call.
#[repr(C)]
struct CatchContext {
    regs: [u64; 12],
    sp: u64,
    fault: Option<Fault>,
}

/// The innermost active `catch_fault` on this CPU (in its `percpu` block).
fn catch_slot() -> &'static AtomicPtr<()> {
    &percpu::this().catch
}

/// The function `catch_fault` runs, passed through the assembly as an
/// opaque pointer.
struct CatchCall {
    f: fn(usize),
    arg: usize,
}

extern "C" fn catch_trampoline(call: *const ()) {
    // SAFETY: `call` is the `CatchCall` on `catch_fault`'s frame, live for
    // the whole call.
    let call = unsafe { &*(call as *const CatchCall) };
    (call.f)(call.arg)
}

/// Runs `f(arg)`; a kernel-mode synchronous fault inside it returns
/// `Err(fault)` instead of reaching the trap handler. No unwinding happens:
/// `f` must not hold locks or own resources when it may fault.
pub fn catch_fault(f: fn(usize), arg: usize) -> Result<(), Fault> {
    let mut ctx = CatchContext {
        regs: [0; 12],
        sp: 0,
        fault: None,
    };
    let prev = catch_slot().swap((&raw mut ctx).cast(), Ordering::SeqCst);
    // SAFETY: `__catch_call` saves the callee-saved registers and SP into
    // `ctx` and calls `f(arg)`; if `f` faults, `trap_dispatch` resumes at
    // `__catch_landing`, which restores exactly that state and returns 1 as
    // if `__catch_call` had returned, so Rust sees an ordinary call. `ctx`
    // lives on this frame, which outlives the call.
    let call = CatchCall { f, arg };
    let faulted = unsafe { __catch_call(&raw mut ctx as *mut (), &raw const call as *const ()) };
    catch_slot().store(prev, Ordering::SeqCst);
    match (faulted, ctx.fault) {
        (0, _) => Ok(()),
        (_, Some(fault)) => Err(fault),
        (_, None) => unreachable!("catch_fault resumed without a fault"),
    }
}

const EC_UNKNOWN: u64 = 0x00;
const EC_FP_ACCESS: u64 = 0x07;
const EC_ILLEGAL_STATE: u64 = 0x0e;
const EC_SVC64: u64 = 0x15;
const EC_SYSREG: u64 = 0x18;
const EC_IABT_LOWER: u64 = 0x20;
const EC_IABT_SAME: u64 = 0x21;
const EC_PC_ALIGN: u64 = 0x22;
const EC_DABT_LOWER: u64 = 0x24;
const EC_DABT_SAME: u64 = 0x25;
const EC_SP_ALIGN: u64 = 0x26;
const EC_FP_EXC64: u64 = 0x2c;
const EC_BKPT_LOWER: u64 = 0x30;
const EC_BKPT_SAME: u64 = 0x31;
const EC_STEP_LOWER: u64 = 0x32;
const EC_STEP_SAME: u64 = 0x33;
const EC_WATCH_LOWER: u64 = 0x34;
const EC_WATCH_SAME: u64 = 0x35;
const EC_BRK: u64 = 0x3c;
/// Data/instruction abort status code of an alignment fault.
const FSC_ALIGNMENT: u64 = 0x21;

/// Decodes a synchronous exception (ESR_EL1, FAR_EL1) into a [`Fault`].
pub fn decode_fault(esr: u64, far: u64, pc: u64, user: bool) -> Fault {
    let ec = (esr >> 26) & 0x3f;
    let iss = esr & 0x01ff_ffff;
    let fsc = iss & 0x3f;
    // FnV (bit 10): FAR is not valid for this abort.
    let far_valid = iss & (1 << 10) == 0;
    let (name, access, addr, protection) = match ec {
        EC_DABT_LOWER | EC_DABT_SAME => {
            let access = if iss & (1 << 6) != 0 {
                Access::Write
            } else {
                Access::Read
            };
            let addr = if far_valid { far } else { 0 };
            if fsc == FSC_ALIGNMENT {
                ("alignment fault", access, addr, false)
            } else {
                ("data abort", access, addr, fsc >> 2 == 0b0011)
            }
        }
        EC_IABT_LOWER | EC_IABT_SAME => {
            let addr = if far_valid { far } else { 0 };
            (
                "instruction abort",
                Access::Execute,
                addr,
                fsc >> 2 == 0b0011,
            )
        }
        EC_UNKNOWN => ("undefined instruction", Access::None, 0, false),
        EC_FP_ACCESS => ("fp/simd access", Access::None, 0, false),
        EC_ILLEGAL_STATE => ("illegal execution state", Access::None, 0, false),
        EC_SVC64 => ("svc", Access::None, 0, false),
        EC_PC_ALIGN => ("pc alignment", Access::Execute, far, false),
        EC_SP_ALIGN => ("sp alignment", Access::None, 0, false),
        EC_SYSREG => ("system register access", Access::None, 0, false),
        EC_FP_EXC64 => ("fp exception", Access::None, 0, false),
        EC_BRK | EC_BKPT_LOWER | EC_BKPT_SAME => ("breakpoint", Access::None, 0, false),
        EC_STEP_LOWER | EC_STEP_SAME => ("software step", Access::None, 0, false),
        EC_WATCH_LOWER | EC_WATCH_SAME => ("watchpoint", Access::None, far, false),
        _ => ("synchronous exception", Access::None, 0, false),
    };
    Fault {
        name,
        access,
        addr: addr as usize,
        pc: pc as usize,
        user,
        syndrome: esr,
        protection,
    }
}

/// Called by `__trap_common` with the saved frame and the vector number
/// (0-3 EL1 with SP_EL0, 4-7 EL1 with SP_EL1, 12-15 EL0 AArch32; within
/// each group: sync, IRQ, FIQ, SError). Exceptions from EL0 in AArch64
/// (8-11) go to `user` instead and never reach this function.
extern "C" fn trap_dispatch(frame: &mut TrapFrame, vector: u64) {
    match (vector, vector & 3) {
        (VECTOR_STACK_OVERFLOW, _) => stack_overflow(frame),
        (4..=7, 0) => sync_exception(frame),
        (4..=7, 1) => interrupt(),
        _ => {
            let esr = ESR_EL1.get();
            fatal(frame, "unexpected exception", vector, esr)
        }
    }
}

/// A synchronous exception taken on a thread stack with no room for the
/// frame. The kernel's handler sees the fault (its address in the guard
/// page) and reports it; the thread cannot be resumed.
fn stack_overflow(frame: &mut TrapFrame) {
    // SAFETY: `__trap_stack_overflow` stored the overflowed SP in the word
    // just above the frame, on this CPU's overflow stack.
    let sp = unsafe {
        *(frame as *const TrapFrame as *const u8)
            .add(FRAME_SIZE)
            .cast::<u64>()
    };
    let fault = decode_fault(ESR_EL1.get(), FAR_EL1.get(), frame.elr, false);
    let _ = writeln!(
        EarlyWriter,
        "trap: stack overflow sp={sp:#x} fault={} addr={:#x} pc={:#x}",
        fault.name, fault.addr, fault.pc
    );
    if let Some(h) = HANDLER.get() {
        // Retry is impossible: the stack has no room for the frame.
        let _ = h.fault(&fault);
    }
    fault_panic(frame, &fault)
}

/// A synchronous exception at EL1 (kernel mode).
fn sync_exception(frame: &mut TrapFrame) {
    let esr = ESR_EL1.get();
    if (esr >> 26) & 0x3f == EC_FP_ACCESS {
        // The running thread's first FP/SIMD instruction (see `fpu`).
        fpu::first_use();
        return;
    }
    let fault = decode_fault(esr, FAR_EL1.get(), frame.elr, false);
    let ctx: *mut CatchContext = catch_slot()
        .swap(core::ptr::null_mut(), Ordering::SeqCst)
        .cast();
    if !ctx.is_null() {
        // SAFETY: `ctx` is the live `CatchContext` of the innermost
        // `catch_fault` on this CPU (its frame is below us on the stack).
        unsafe { (*ctx).fault = Some(fault) };
        frame.x[0] = ctx as u64;
        frame.elr = __catch_landing as *const () as u64;
        return;
    }
    match HANDLER.get() {
        Some(h) => match h.fault(&fault) {
            FaultAction::Retry => {}
            FaultAction::Panic => fault_panic(frame, &fault),
        },
        None => fault_panic(frame, &fault),
    }
}

/// An IRQ, from EL1 or (through `user`) from EL0: acknowledge, hand it to
/// the kernel (which may switch threads), IRQs masked throughout.
pub(crate) fn interrupt() {
    // A fault inside an interrupt handler must not resume an unrelated
    // `catch_fault` of the interrupted code.
    // The kernel may switch threads inside `h.interrupt` (and resume this
    // one on another CPU): read the slot again when restoring.
    let saved = catch_slot().swap(core::ptr::null_mut(), Ordering::SeqCst);
    if let Some(irq) = irq::acknowledge() {
        if let Some(h) = HANDLER.get() {
            h.interrupt(irq);
        }
    }
    catch_slot().store(saved, Ordering::SeqCst);
}

fn dump(frame: &TrapFrame) {
    let mut w = EarlyWriter;
    for (i, pair) in frame.x.chunks(2).enumerate() {
        let _ = match pair {
            [a, b] => writeln!(w, "  x{:<2}={a:#018x} x{:<2}={b:#018x}", 2 * i, 2 * i + 1),
            [a] => writeln!(w, "  x{:<2}={a:#018x}", 2 * i),
            _ => Ok(()),
        };
    }
    let _ = writeln!(
        w,
        "  elr={:#018x} spsr={:#010x} sp_el0={:#018x}",
        frame.elr, frame.spsr, frame.sp_el0
    );
}

fn fault_panic(frame: &TrapFrame, fault: &Fault) -> ! {
    let _ = writeln!(
        EarlyWriter,
        "trap: fault={} access={:?} addr={:#x} pc={:#x} esr={:#x} user={}",
        fault.name, fault.access, fault.addr, fault.pc, fault.syndrome, fault.user
    );
    dump(frame);
    panic!(
        "unhandled {} at pc={:#x} addr={:#x} esr={:#x}",
        fault.name, fault.pc, fault.addr, fault.syndrome
    )
}

fn fatal(frame: &TrapFrame, what: &str, vector: u64, esr: u64) -> ! {
    let _ = writeln!(EarlyWriter, "trap: {what} vector={vector} esr={esr:#x}");
    dump(frame);
    panic!("{what} (vector {vector}, esr={esr:#x})")
}
