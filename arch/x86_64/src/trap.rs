//! Exceptions and interrupts: the IDT, one assembly stub per vector that
//! saves a full [`TrapFrame`], the Rust dispatcher that decodes exceptions
//! into [`Fault`]s and interrupts into [`Interrupt`]s for the kernel's
//! [`TrapHandler`], and `catch_fault` (setjmp-style recovery). Entries from
//! ring 3 take their own path (`trap_from_user` below, then
//! `user::user_trap`): user faults go to the kernel's user hooks, never to
//! `TrapHandler::fault`.
//!
//! Vector map: 0-31 exceptions, 0x20-0x2f the (masked, remapped) legacy PIC,
//! `irq::DEVICE_VECTOR_BASE`.. IOAPIC GSIs, `timer::VECTOR` the local timer,
//! 0xf0-0xfe IPIs, 0xff the APIC spurious vector.

use crate::{gdt, irq, serial::EarlyWriter, timer};
use core::arch::global_asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicPtr, Ordering};
use skiff_arch_api::{Access, Fault, FaultAction, Interrupt, TrapHandler};
use spin::Once;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

/// Registers saved by the entry stubs, lowest address first: the same
/// layout as a user entry's [`crate::user::UserRegs`] (one type).
pub type TrapFrame = crate::user::UserRegs;

// Stub `n` sits at `skiff_trap_stubs + 16 * n`: it pushes a zero error code
// when the CPU does not, pushes the vector and joins `trap_common`, which
// saves the general registers, links a frame-pointer record for the
// interrupted pc (so backtraces run through traps), and calls the dispatcher.
//
// From ring 3 (RPL 3 in the saved CS) `trap_common` first does `swapgs` and
// moves the 7-word frame (vector, error, RIP, CS, RFLAGS, RSP, SS) to the
// thread's kernel stack top, where the CPU already put it unless the vector
// uses an IST stack (#PF, NMI, #DF): user faults may block and switch
// threads, which a per-CPU IST stack cannot survive. It then saves a full
// `UserRegs` there and leaves through `skiff_x86_user_return` (`user.rs`).
global_asm!(
    r#"
    .section .text.skiff_trap, "ax"
    .balign 16
    .global skiff_trap_stubs
skiff_trap_stubs:
    .set trap_i, 0
    .rept 256
    .balign 16
    .if (trap_i == 8) || ((trap_i >= 10) && (trap_i <= 14)) || (trap_i == 17) || (trap_i == 21) || (trap_i == 29) || (trap_i == 30)
    .else
    pushq $0
    .endif
    pushq $trap_i
    jmp trap_common
    .set trap_i, trap_i + 1
    .endr

    .balign 16
trap_common:
    testb $3, 24(%rsp)
    jnz trap_from_user
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
    cld
    mov %rsp, %rdi
    pushq 136(%rsp)
    push %rbp
    mov %rsp, %rbp
    call skiff_x86_trap
    add $16, %rsp
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
    iretq

trap_from_user:
    swapgs
    mov %rax, %gs:{scratch}
    mov %rsp, %rax
    mov %gs:{kstack}, %rsp
    /* Top-down, so the copy onto itself (non-IST vectors) is harmless. */
    pushq 48(%rax)
    pushq 40(%rax)
    pushq 32(%rax)
    pushq 24(%rax)
    pushq 16(%rax)
    pushq 8(%rax)
    pushq 0(%rax)
    mov %gs:{scratch}, %rax
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
    cld
    mov %rsp, %rdi
    xor %ebp, %ebp
    call {user_trap}
    jmp skiff_x86_user_return

    /* skiff_x86_catch_call(f: extern "C" fn(usize), arg, resume_rsp: *mut u64) -> u64
     * Returns 0 when f returned, 1 when the dispatcher resumed at
     * skiff_x86_catch_resume after a fault (rsp restored from *resume_rsp). */
    .global skiff_x86_catch_call
skiff_x86_catch_call:
    push %rbp
    mov %rsp, %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    sub $8, %rsp
    mov %rsp, (%rdx)
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    xor %eax, %eax
    jmp 1f
    .global skiff_x86_catch_resume
skiff_x86_catch_resume:
    mov $1, %eax
1:
    add $8, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    "#,
    scratch = const crate::percpu::OFF_SCRATCH,
    kstack = const crate::percpu::OFF_KSTACK_TOP,
    user_trap = sym skiff_x86_user_trap,
    options(att_syntax)
);

/// The Rust side of a ring-3 entry through the IDT (see `trap_from_user`).
extern "C" fn skiff_x86_user_trap(regs: &mut TrapFrame) {
    crate::user::user_trap(regs)
}

extern "C" {
    fn skiff_x86_catch_call(f: extern "C" fn(usize), arg: usize, resume_rsp: *mut u64) -> u64;
}

/// Calls the Rust function `catch_fault` was given, from the assembly.
extern "C" fn call_probe(ctx: usize) {
    // SAFETY: `ctx` is the address of the `(f, arg)` pair on
    // `catch_fault`'s stack, live for the whole call.
    let (f, arg) = unsafe { *(ctx as *const (fn(usize), usize)) };
    f(arg)
}

const STUB_SIZE: u64 = 16;

static IDT: Once<InterruptDescriptorTable> = Once::new();
static HANDLER: Once<&'static dyn TrapHandler> = Once::new();

pub(crate) fn init() {
    let idt = IDT.call_once(|| {
        let base = crate::boot::sym_addr!(skiff_trap_stubs) as u64;
        let stub = |v: u64| VirtAddr::new(base + v * STUB_SIZE);
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY (every `set_handler_addr` below): each address is the stub
        // for that vector, which saves state and ends in `iretq` as the IDT
        // requires; IST indices name stacks set up in `gdt::init`.
        unsafe {
            idt.divide_error.set_handler_addr(stub(0));
            idt.debug.set_handler_addr(stub(1));
            idt.non_maskable_interrupt
                .set_handler_addr(stub(2))
                .set_stack_index(gdt::IST_NMI);
            // `int3` is allowed from ring 3 (a user #BP, as on Linux).
            idt.breakpoint
                .set_handler_addr(stub(3))
                .set_privilege_level(x86_64::PrivilegeLevel::Ring3);
            idt.overflow.set_handler_addr(stub(4));
            idt.bound_range_exceeded.set_handler_addr(stub(5));
            idt.invalid_opcode.set_handler_addr(stub(6));
            idt.device_not_available.set_handler_addr(stub(7));
            idt.double_fault
                .set_handler_addr(stub(8))
                .set_stack_index(gdt::IST_DOUBLE_FAULT);
            idt.invalid_tss.set_handler_addr(stub(10));
            idt.segment_not_present.set_handler_addr(stub(11));
            idt.stack_segment_fault.set_handler_addr(stub(12));
            idt.general_protection_fault.set_handler_addr(stub(13));
            idt.page_fault
                .set_handler_addr(stub(14))
                .set_stack_index(gdt::IST_PAGE_FAULT);
            idt.x87_floating_point.set_handler_addr(stub(16));
            idt.alignment_check.set_handler_addr(stub(17));
            idt.machine_check.set_handler_addr(stub(18));
            idt.simd_floating_point.set_handler_addr(stub(19));
            idt.virtualization.set_handler_addr(stub(20));
            idt.cp_protection_exception.set_handler_addr(stub(21));
            idt.hv_injection_exception.set_handler_addr(stub(28));
            idt.vmm_communication_exception.set_handler_addr(stub(29));
            idt.security_exception.set_handler_addr(stub(30));
            for v in 32u8..=255 {
                idt[v].set_handler_addr(stub(u64::from(v)));
            }
        }
        idt
    });
    idt.load();
}

/// Loads the (shared) IDT on a secondary CPU.
pub(crate) fn load_idt() {
    if let Some(idt) = IDT.get() {
        idt.load();
    }
}

/// Registers the kernel's handlers. The first registration wins.
pub fn set_handler(h: &'static dyn TrapHandler) {
    HANDLER.call_once(|| h);
}

/// Where `catch_fault` asked the dispatcher to resume, and what it caught.
struct CatchSlot {
    /// Stack pointer inside `skiff_x86_catch_call` to resume on.
    resume_rsp: u64,
    fault: Option<Fault>,
}

/// Per CPU (indexed by APIC id mod 256): the innermost active `catch_fault`.
static CATCH: [AtomicPtr<CatchSlot>; 256] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 256];

fn catch_slot() -> &'static AtomicPtr<CatchSlot> {
    &CATCH[(irq::lapic_id() & 0xff) as usize]
}

/// Runs `f(arg)`; a kernel-mode fault inside it makes this return `Err` with
/// the decoded fault instead of reaching the handler. Nests; not for double
/// faults or NMIs. Whatever `f` was doing when it faulted is abandoned
/// (no unwinding): keep `f` to a probe that owns no resources. Runs with
/// interrupts off, so the thread cannot be switched or migrated meanwhile.
pub fn catch_fault(f: fn(usize), arg: usize) -> Result<(), Fault> {
    crate::cpu::without_interrupts(|| catch_fault_here(f, arg))
}

fn catch_fault_here(f: fn(usize), arg: usize) -> Result<(), Fault> {
    let mut slot = CatchSlot {
        resume_rsp: 0,
        fault: None,
    };
    // One raw pointer for the dispatcher and the assembly alike.
    let slot_ptr: *mut CatchSlot = &mut slot;
    let outer = catch_slot().swap(slot_ptr, Ordering::SeqCst);
    let probe: (fn(usize), usize) = (f, arg);
    // SAFETY: the assembly saves the callee-saved registers and the stack
    // pointer to resume on into the slot, calls `f(arg)` through
    // `call_probe`, and returns 1 when the dispatcher resumed it after a
    // fault; the slot and `probe` live on this frame for the whole call.
    let faulted = unsafe {
        skiff_x86_catch_call(
            call_probe,
            &probe as *const _ as usize,
            &raw mut (*slot_ptr).resume_rsp,
        )
    };
    catch_slot().store(outer, Ordering::SeqCst);
    // SAFETY: the dispatcher is done with the slot (CATCH no longer names it).
    let fault = unsafe { (*slot_ptr).fault };
    match (faulted, fault) {
        (0, _) => Ok(()),
        (_, Some(fault)) => Err(fault),
        (_, None) => unreachable!("catch_fault resumed without a fault"),
    }
}

fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "nmi",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid tss",
        11 => "segment not present",
        12 => "stack segment fault",
        13 => "general protection",
        14 => "page fault",
        16 => "x87 floating point",
        17 => "alignment check",
        18 => "machine check",
        19 => "simd floating point",
        20 => "virtualization",
        21 => "control protection",
        28 => "hypervisor injection",
        29 => "vmm communication",
        30 => "security",
        _ => "reserved exception",
    }
}

pub(crate) fn decode(frame: &TrapFrame) -> Fault {
    let vector = frame.vector;
    let (access, addr, protection) = if vector == 14 {
        let err = frame.error;
        let access = if err & (1 << 4) != 0 {
            Access::Execute
        } else if err & (1 << 1) != 0 {
            Access::Write
        } else {
            Access::Read
        };
        let cr2 = x86_64::registers::control::Cr2::read_raw() as usize;
        (access, cr2, err & 1 != 0)
    } else {
        (Access::None, 0, false)
    };
    Fault {
        name: exception_name(vector),
        access,
        addr,
        pc: frame.rip as usize,
        user: frame.cs & 3 == 3,
        syndrome: (vector << 32) | (frame.error & 0xffff_ffff),
        protection,
    }
}

/// Prints every saved register on COM1.
fn dump(fault: &Fault, frame: &TrapFrame) {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let cr3 = x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64();
    let _ = write!(
        EarlyWriter,
        "trap: {} vector={} error={:#x} pc={:#x} addr={:#x} access={:?} user={} protection={}\n\
         rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
         rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}\n\
         r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n\
         r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n\
         rip={:#018x} cs={:#x} ss={:#x} rflags={:#x} cr2={:#x} cr3={:#x}\n",
        fault.name,
        frame.vector,
        frame.error,
        fault.pc,
        fault.addr,
        fault.access,
        fault.user,
        fault.protection,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.rsp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rip,
        frame.cs,
        frame.ss,
        frame.rflags,
        cr2,
        cr3,
    );
}

fn exception(frame: &mut TrapFrame) {
    let fault = decode(frame);
    let vector = frame.vector;
    let recoverable = vector != 2 && vector != 8 && vector != 18;

    if recoverable && !fault.user {
        let slot = catch_slot().load(Ordering::SeqCst);
        if !slot.is_null() {
            // SAFETY: a non-null CATCH points at the `CatchSlot` of a
            // `catch_fault` frame still live on this CPU's stack (it resets
            // the pointer before returning).
            let slot = unsafe { &mut *slot };
            if slot.fault.is_none() {
                slot.fault = Some(fault);
                frame.rip = crate::boot::sym_addr!(skiff_x86_catch_resume) as u64;
                frame.rsp = slot.resume_rsp;
                return;
            }
        }
    }
    if vector == 2 {
        crate::early_print("trap: nmi received\n");
        return;
    }
    if recoverable {
        if let Some(h) = HANDLER.get() {
            if h.fault(&fault) == FaultAction::Retry {
                return;
            }
        }
    }
    dump(&fault, frame);
    panic!(
        "unhandled {} at pc={:#x} addr={:#x}",
        fault.name, fault.pc, fault.addr
    );
}

/// A double fault or machine check taken in user mode: dump and panic.
pub(crate) fn fatal_user(frame: &TrapFrame) -> ! {
    let fault = decode(frame);
    dump(&fault, frame);
    panic!(
        "unhandled {} in user mode at pc={:#x}",
        fault.name, fault.pc
    );
}

/// The Rust side of every stub for kernel-mode entries, called on the
/// interrupted stack (or an IST stack) with interrupts off.
#[no_mangle]
extern "C" fn skiff_x86_trap(frame: &mut TrapFrame) {
    match frame.vector {
        0..=31 => exception(frame),
        v => interrupt(v),
    }
}

/// Decodes interrupt vector `vector` (32..=255), acknowledges it and hands
/// it to the kernel's handler. Interrupts off.
pub(crate) fn interrupt(vector: u64) {
    let irq = match vector {
        // The legacy PIC is remapped here and fully masked; anything that
        // still arrives is its spurious IRQ 7/15 and needs no EOI.
        0x20..=0x2f => return,
        v if v == u64::from(timer::VECTOR) => {
            irq::lapic_eoi();
            if !timer::expired() {
                return;
            }
            Interrupt::Timer
        }
        0xff => Interrupt::Spurious,
        0xf0..=0xfe => {
            irq::lapic_eoi();
            Interrupt::Ipi((vector - 0xf0) as u8)
        }
        v => {
            let gsi = (v - u64::from(irq::DEVICE_VECTOR_BASE)) as u32;
            irq::device_delivered(gsi);
            Interrupt::Device(gsi)
        }
    };
    if let Some(h) = HANDLER.get() {
        h.interrupt(irq);
    }
}
