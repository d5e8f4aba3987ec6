//! In-kernel tests of the x86_64 user-mode edge (`arch::user`), with raw
//! ring-3 code and the tests' own hooks (no Linux personality involved):
//! `syscall`/`sysretq` and the `iretq` fallback, user page faults and
//! execute faults reaching `hooks.fault`, a non-canonical return RIP, `int3`,
//! the fault-safe copies (range checks, unmapped pages, SMAP and SMEP),
//! per-thread FS base and FP state across switches, and timer preemption of
//! a thread spinning in user mode.
//!
//! The user programs are assembled into `.rodata` below and copied into a
//! user page with `copy_to_user`; they are position independent.
#![allow(unsafe_code)]

use crate::sched::kthread as k;
use crate::sync::Mutex;
use crate::{arch, mm, time};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use arch::user::{self, Hooks, UserRegs};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use skiff_arch_api::{Access, Fault, PageFlags};
use skiff_ktest::{check, check_eq, check_some, ktest, skip};

// The programs. `prog_start` is a bare `ret` (the SMEP probe's target).
// main:  rdi = an unmapped user address, rsi = a kernel text address.
// tls:   rdi = the value expected at fs:[0], rsi = iterations.
// spin:  rdi = address of a flag word; spins until it is nonzero.
// loop:  rdi = count; makes that many empty syscalls (1008), then exits.
// Syscall numbers above 1000 are the tests' own (see `test_syscall`).
core::arch::global_asm!(
    r#"
    .section .rodata.skiff_user_prog, "a"
    .balign 16
    .global skiff_user_prog_start
skiff_user_prog_start:
    ret

    .balign 16
    .global skiff_user_prog_main
skiff_user_prog_main:
    mov r13, rdi
    mov r14, rsi
    stmxcsr dword ptr [rsp - 16]
    mov edi, dword ptr [rsp - 16]
    fnstcw word ptr [rsp - 8]
    movzx esi, word ptr [rsp - 8]
    mov eax, 1004
    syscall
    mov ebx, 0x600d
    mov r15d, 0x700d
    mov edi, 11
    mov esi, 22
    mov edx, 33
    mov r10d, 44
    mov r8d, 55
    mov r9d, 66
    mov eax, 39
    syscall
    mov rdi, rax
    mov rsi, rbx
    mov rdx, r15
    mov r10, r13
    mov eax, 1004
    syscall
    lea r9, [rip + .Lmain_after_read]
    mov rax, qword ptr [r13]
.Lmain_after_read:
    lea r9, [rip + .Lmain_after_exec]
    call r14
.Lmain_after_exec:
    mov eax, 1003
    syscall
    mov rdi, rcx
    mov rsi, r13
    mov eax, 1004
    syscall
    mov eax, 1002
    syscall
    mov eax, 1005
    syscall
    lea r9, [rip + .Lmain_after_int3]
    int3
.Lmain_after_int3:
    mov edi, 7
    mov eax, 60
    syscall
    ud2

    .balign 16
    .global skiff_user_prog_tls
skiff_user_prog_tls:
    mov r12, rdi
    mov r13, rsi
.Ltls_loop:
    movq xmm3, r12
    mov rdi, r12
    mov eax, 1001
    syscall
    mov rdi, qword ptr fs:[0]
    movq rsi, xmm3
    mov rdx, r12
    mov eax, 1006
    syscall
    dec r13
    jnz .Ltls_loop
    xor edi, edi
    mov eax, 60
    syscall
    ud2

    .balign 16
    .global skiff_user_prog_spin
skiff_user_prog_spin:
    pause
    cmp qword ptr [rdi], 0
    je skiff_user_prog_spin
    xor edi, edi
    mov eax, 60
    syscall
    ud2
    .balign 16
    .global skiff_user_prog_loop
skiff_user_prog_loop:
    mov r12, rdi
.Lloop_next:
    mov eax, 1008
    syscall
    dec r12
    jnz .Lloop_next
    xor edi, edi
    mov eax, 60
    syscall
    ud2
    .global skiff_user_prog_end
skiff_user_prog_end:
    "#
);

macro_rules! sym {
    ($name:ident) => {{
        extern "C" {
            static $name: u8;
        }
        core::ptr::addr_of!($name) as usize
    }};
}

/// Where the tests map their user pages (nothing else uses user space
/// while ktests run). Each `UserPages` takes a fresh 1 MiB region: unmaps
/// flush only the local TLB (no cross-CPU shootdown yet), so a test must
/// never reuse a VA a user thread on another CPU may still have cached.
const BASE: usize = 0x0000_5555_0000_0000;
const REGION: usize = 0x10_0000;
static NEXT_REGION: AtomicUsize = AtomicUsize::new(0);
/// In a region: code at +0, data at +0x10000 (the spin flag at +0, TLS
/// blocks at +0x100 and +0x900), stacks from +0x20000 (one page each, with
/// unmapped pages between), +0x40000 never mapped.
const DATA_OFFSET: usize = 0x10_000;
const STACKS_OFFSET: usize = 0x20_000;
const UNMAPPED_OFFSET: usize = 0x40_000;
const STACK_COUNT: usize = 3;
/// The return RIP the non-canonical test installs.
const BAD_RIP: usize = 0x8000_0000_0000_1000;
/// The two TLS test threads' fs:[0] values (also their names in `TURN`).
const TLS_A: usize = 0x1111_2222_3333_4444;
const TLS_B: usize = 0x5555_6666_7777_8888;
/// The RCX value the `iretq` test installs.
const ODD_RCX: usize = 0x5a5a_0000_1234;
const PAGE: usize = 4096;

/// Everything the hooks saw, reset by `install`.
static SYSCALLS: Mutex<Vec<(usize, [usize; 6])>> = Mutex::new(Vec::new());
static FAULTS: Mutex<Vec<Fault>> = Mutex::new(Vec::new());
/// `UserRegs::dump` at the first fault.
static DUMP: Mutex<String> = Mutex::new(String::new());
static RETURNS: AtomicUsize = AtomicUsize::new(0);
static EMPTY_CALLS: AtomicUsize = AtomicUsize::new(0);
static SAVED_PC: AtomicUsize = AtomicUsize::new(0);
static TLS_SAME: AtomicUsize = AtomicUsize::new(0);
static TLS_CHANGED: AtomicUsize = AtomicUsize::new(0);
static FS_GOOD: AtomicUsize = AtomicUsize::new(0);
static FS_BAD: AtomicUsize = AtomicUsize::new(0);
/// TLS test: whose turn it is (the thread's fs:[0] value), the last
/// reporter and how often the reporter changed.
static TURN: AtomicUsize = AtomicUsize::new(0);
static LAST_REPORTER: AtomicUsize = AtomicUsize::new(0);
static HANDOFFS: AtomicUsize = AtomicUsize::new(0);
/// Serialises the tests (they share the hooks and the statics).
static RUNNING: AtomicBool = AtomicBool::new(false);

fn test_syscall(regs: &mut UserRegs) {
    let nr = regs.syscall_nr();
    let args = regs.syscall_args();
    if nr == 1008 {
        EMPTY_CALLS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if nr != 1001 && nr != 1006 {
        SYSCALLS.lock().push((nr, args));
    }
    match nr {
        39 => regs.set_ret(0x1234),
        60 => k::exit_current(),
        // Wait for this thread's turn (the other thread runs meanwhile on
        // the same CPU); FS base must come back as it was.
        1001 => {
            let before = user::tls();
            let end = time::now_ns() + 5_000_000_000;
            while TURN.load(Ordering::SeqCst) != args[0] && time::now_ns() < end {
                k::sleep(10_000);
            }
            let counter = if user::tls() == before {
                &TLS_SAME
            } else {
                &TLS_CHANGED
            };
            counter.fetch_add(1, Ordering::SeqCst);
            regs.set_ret(0);
        }
        // Return with a non-canonical RIP (kept for the fault hook).
        1002 => {
            SAVED_PC.store(regs.pc(), Ordering::SeqCst);
            regs.set_pc(BAD_RIP);
        }
        // Change RCX: sysretq cannot return this, iretq must.
        1003 => regs.set_arg(3, ODD_RCX),
        // fs:[0], xmm3 and r12 must agree.
        1006 => {
            let good = args[0] == args[1] && args[1] == args[2];
            (if good { &FS_GOOD } else { &FS_BAD }).fetch_add(1, Ordering::SeqCst);
            if LAST_REPORTER.swap(args[2], Ordering::SeqCst) != args[2] {
                HANDOFFS.fetch_add(1, Ordering::SeqCst);
            }
            let other = if args[2] == TLS_A { TLS_B } else { TLS_A };
            TURN.store(other, Ordering::SeqCst);
        }
        _ => regs.set_ret(0),
    }
}

/// Records the fault and resumes at R9 (the programs' continuation), or at
/// the saved PC for the non-canonical return.
fn test_fault(regs: &mut UserRegs, fault: &Fault) {
    let mut faults = FAULTS.lock();
    if faults.is_empty() {
        let mut dump = DUMP.lock();
        dump.clear();
        let _ = regs.dump(&mut *dump);
    }
    faults.push(*fault);
    drop(faults);
    if fault.pc == BAD_RIP {
        regs.set_pc(SAVED_PC.load(Ordering::SeqCst));
    } else {
        regs.set_pc(regs.syscall_args()[5]);
    }
}

fn test_return(_regs: &mut UserRegs) {
    RETURNS.fetch_add(1, Ordering::SeqCst);
}

static TEST_HOOKS: Hooks = Hooks {
    syscall: test_syscall,
    fault: test_fault,
    return_to_user: test_return,
};

/// The user pages of one test, unmapped and freed on drop.
struct UserPages {
    code: usize,
    data: usize,
    unmapped: usize,
    mapped: Vec<(usize, u64)>,
}

impl UserPages {
    fn stack_top(&self, i: usize) -> usize {
        self.code + STACKS_OFFSET + (2 * i + 1) * PAGE
    }

    /// The address of program `name` (a `skiff_user_prog_*` symbol).
    fn prog(&self, name: usize) -> usize {
        self.code + (name - sym!(skiff_user_prog_start))
    }

    fn map(&mut self, va: usize, flags: PageFlags) -> Option<()> {
        let frame = mm::alloc_frames(0).ok()?;
        let mut alloc_table = || mm::alloc_frames(0).ok();
        if arch::mm::map_page(va, frame, flags, &mut alloc_table).is_err() {
            let _ = mm::free_frames(frame, 0);
            return None;
        }
        self.mapped.push((va, frame));
        Some(())
    }

    /// Code (the programs), data (zeroed) and stacks.
    fn new() -> Option<UserPages> {
        let base = BASE + NEXT_REGION.fetch_add(1, Ordering::SeqCst) * REGION;
        let mut pages = UserPages {
            code: base,
            data: base + DATA_OFFSET,
            unmapped: base + UNMAPPED_OFFSET,
            mapped: Vec::new(),
        };
        let (code, data) = (pages.code, pages.data);
        let user_rw = PageFlags {
            write: true,
            execute: false,
            user: true,
        };
        pages.map(code, user_rw)?;
        let start = sym!(skiff_user_prog_start);
        let len = sym!(skiff_user_prog_end) - start;
        assert!(len <= PAGE, "user test programs exceed a page");
        // SAFETY: `start..start+len` is the assembled block above, in
        // .rodata, immutable and mapped for the kernel's lifetime.
        let prog = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
        user::copy_to_user(code, prog).ok()?;
        let user_rx = PageFlags {
            write: false,
            execute: true,
            user: true,
        };
        arch::mm::protect_page(code, user_rx).ok()?;
        pages.map(data, user_rw)?;
        user::copy_to_user(data, &[0; PAGE]).ok()?;
        for i in 0..STACK_COUNT {
            pages.map(pages.stack_top(i) - PAGE, user_rw)?;
        }
        Some(pages)
    }
}

impl Drop for UserPages {
    fn drop(&mut self) {
        for &(va, frame) in &self.mapped {
            if arch::mm::unmap_page(va) == Some(frame) {
                let _ = mm::free_frames(frame, 0);
            }
        }
    }
}

/// Takes the tests' lock, installs their hooks and clears the records.
struct Session;

impl Session {
    fn start() -> Option<Session> {
        if RUNNING.swap(true, Ordering::SeqCst) {
            return None;
        }
        user::set_hooks(&TEST_HOOKS);
        SYSCALLS.lock().clear();
        FAULTS.lock().clear();
        RETURNS.store(0, Ordering::SeqCst);
        for c in [
            &TLS_SAME,
            &TLS_CHANGED,
            &FS_GOOD,
            &FS_BAD,
            &TURN,
            &LAST_REPORTER,
            &EMPTY_CALLS,
            &HANDOFFS,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        Some(Session)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Starts a kernel thread that enters user mode with `regs` and `tls`.
fn spawn_user(
    name: &str,
    regs: UserRegs,
    tls: usize,
    pin: Option<u32>,
) -> Option<Arc<crate::sched::thread::Thread>> {
    k::spawn(
        name,
        move || {
            user::set_tls(tls);
            user::enter(&regs);
        },
        pin,
    )
    .ok()
}

/// Waits up to `ns` for `t` to finish.
fn join_within(t: &crate::sched::thread::Thread, ns: u64) -> bool {
    let end = time::now_ns() + ns;
    while !t.is_done() && time::now_ns() < end {
        k::sleep(1_000_000);
    }
    t.is_done()
}

#[inline(never)]
fn kernel_text_target() -> u32 {
    core::hint::black_box(3)
}

ktest! {
    /// One user thread: a syscall with six arguments and its result back
    /// in RAX (sysretq), callee registers preserved, an unmapped-page read
    /// and an execute of kernel text reaching `hooks.fault` as user faults,
    /// an RCX change returned through iretq, a non-canonical return RIP
    /// turned into a user #GP, `int3`, and exit.
    fn user_syscalls_and_faults() {
        let Some(_session) = Session::start() else { skip!("another user test is running") };
        let p = check_some!(UserPages::new());
        let kernel_fn = kernel_text_target as fn() -> u32 as usize;
        let mut regs = UserRegs::new(p.prog(sym!(skiff_user_prog_main)), p.stack_top(0));
        regs.set_arg(0, p.unmapped);
        regs.set_arg(1, kernel_fn);
        let t = check_some!(spawn_user("user-main", regs, 0, None));
        check!(join_within(&t, 5_000_000_000));

        let calls = SYSCALLS.lock().clone();
        let nrs: Vec<usize> = calls.iter().map(|c| c.0).collect();
        check!(nrs == [1004, 39, 1004, 1003, 1004, 1002, 1005, 60]);
        // A new thread's FP state: Linux's MXCSR and x87 control word.
        check_eq!(calls[0].1[0], 0x1f80);
        check_eq!(calls[0].1[1], 0x37f);
        check!(calls[1].1 == [11, 22, 33, 44, 55, 66]);
        // getpid's result arrived in RAX; RBX, R15, R13 survived.
        check!(calls[2].1[..4] == [0x1234, 0x600d, 0x700d, p.unmapped]);
        // The RCX the kernel chose came back (iretq), other state intact.
        check_eq!(calls[4].1[0], ODD_RCX);
        check_eq!(calls[4].1[1], p.unmapped);
        check_eq!(calls[7].1[0], 7);

        let faults = FAULTS.lock().clone();
        check_eq!(faults.len(), 4);
        let read = faults[0];
        check!(read.name == "page fault" && read.user && !read.protection);
        check_eq!(read.addr, p.unmapped);
        check!(read.access == Access::Read);
        check!((p.code..p.code + PAGE).contains(&read.pc));
        let exec = faults[1];
        check!(exec.name == "page fault" && exec.user && exec.protection);
        check!(exec.access == Access::Execute);
        check_eq!(exec.addr, kernel_fn);
        check_eq!(exec.pc, kernel_fn);
        let gp = faults[2];
        check!(gp.name == "general protection" && gp.user);
        check_eq!(gp.pc, BAD_RIP);
        let bp = faults[3];
        check!(bp.name == "breakpoint" && bp.user);
        // The register dump names everything (taken at the first fault).
        let dump = DUMP.lock().clone();
        for name in ["rax=", "r15=", "rip=", "rsp=", "rflags=", "fs_base="] {
            check!(dump.contains(name));
        }
        check!(dump.contains(&alloc::format!("r13={:#018x}", p.unmapped)));
        // Every return went through return_to_user: seven syscalls (exit does
        // not return), three faults (the #GP is part of syscall 1002's
        // return), the non-canonical RIP's second pass, and any interrupts.
        let returns = RETURNS.load(Ordering::SeqCst);
        check!(returns >= 11);
        Ok(())
    }
}

ktest! {
    /// The copies: mapped pages round-trip; kernel addresses, ranges
    /// wrapping or crossing USER_END and unmapped pages give Err without
    /// calling a hook; C strings stop at the NUL or the buffer's end.
    fn user_copies_check_ranges_and_catch_faults() {
        let Some(_session) = Session::start() else { skip!("another user test is running") };
        let p = check_some!(UserPages::new());
        let data = *b"skiff user copy\0tail";
        check!(user::copy_to_user(p.data + 100, &data).is_ok());
        let mut back = [0u8; 20];
        check!(user::copy_from_user(&mut back, p.data + 100).is_ok());
        check!(back == data);
        // A copy across the page end into the unmapped page after it.
        let mut big = [0u8; 64];
        let err = check_some!(user::copy_from_user(&mut big, p.data + PAGE - 32).err());
        check_eq!(err.addr, p.data + PAGE);
        check!(!err.user);

        let kernel = &back as *const [u8; 20] as usize;
        check!(user::copy_from_user(&mut back, kernel).is_err());
        check!(user::copy_to_user(kernel, &data).is_err());
        check!(user::copy_from_user(&mut back, usize::MAX - 4).is_err());
        check!(user::copy_from_user(&mut back, user::USER_END - 8).is_err());
        let err = check_some!(user::copy_from_user(&mut back, p.unmapped).err());
        check_eq!(err.addr, p.unmapped);
        check!(err.access == Access::Read);
        let err = check_some!(user::copy_to_user(p.unmapped + 8, &data).err());
        check_eq!(err.addr, p.unmapped + 8);
        check!(err.access == Access::Write);
        // Read-only (code) page: writing faults with a protection fault.
        let err = check_some!(user::copy_to_user(p.code, &data).err());
        check!(err.protection);
        // Empty ranges: fine in user space (even unmapped), not at a
        // kernel address (Linux's access_ok says the same).
        check!(user::copy_from_user(&mut [], p.unmapped).is_ok());
        check!(user::copy_from_user(&mut [], kernel).is_err());

        let mut s = [0u8; 64];
        check!(user::copy_cstr_from_user(&mut s, p.data + 100) == Ok(Some(15)));
        check!(&s[..16] == b"skiff user copy\0");
        check!(user::copy_cstr_from_user(&mut s[..5], p.data + 100) == Ok(None));
        check!(user::copy_cstr_from_user(&mut s, p.unmapped).is_err());
        check!(user::copy_cstr_from_user(&mut s, kernel).is_err());
        check!(FAULTS.lock().is_empty());
        check_eq!(RETURNS.load(Ordering::SeqCst), 0);
        Ok(())
    }
}

fn probe_read(addr: usize) {
    // SAFETY: run under catch_fault; `addr` is a mapped user page, so the
    // read either works (no SMAP) or faults (SMAP).
    unsafe {
        (addr as *const u8).read_volatile();
    }
}

fn probe_call(addr: usize) {
    // SAFETY: run under catch_fault. `addr` holds a bare `ret`, so if the
    // execute fault (SMEP) does not happen the call returns.
    let f: extern "C" fn() = unsafe { core::mem::transmute(addr) };
    f()
}

ktest! {
    /// SMAP: the kernel reading a user page directly faults (the copies
    /// are the only way in). SMEP: the kernel cannot execute a user page.
    /// Each is checked when CPUID says the CPU has it.
    fn user_pages_are_off_limits_to_the_kernel() {
        let Some(_session) = Session::start() else { skip!("another user test is running") };
        let p = check_some!(UserPages::new());
        // Test-only use of the platform extra: which protections to expect.
        let l7 = arch::cpuid(7, 0).ebx;
        let (smep, smap) = (l7 & (1 << 7) != 0, l7 & (1 << 20) != 0);
        if !smep && !smap {
            skip!("cpu has neither SMEP nor SMAP");
        }
        if smap {
            let fault = check_some!(arch::trap::catch_fault(probe_read, p.data).err());
            check!(fault.protection && !fault.user);
            check_eq!(fault.addr, p.data);
        }
        if smep {
            let fault = check_some!(arch::trap::catch_fault(probe_call, p.code).err());
            check!(fault.access == Access::Execute && fault.protection);
            check_eq!(fault.addr, p.code);
        }
        Ok(())
    }
}

ktest! {
    /// Two user threads on one CPU with different FS bases take turns
    /// (blocking in a syscall until the other has run) 50 times each: each always reads its own fs:[0], its XMM3 and
    /// the FS base the kernel sees survive every switch.
    fn user_tls_and_fp_survive_switches() {
        let Some(_session) = Session::start() else { skip!("another user test is running") };
        let p = check_some!(UserPages::new());
        let (a, b) = (TLS_A as u64, TLS_B as u64);
        TURN.store(TLS_A, Ordering::SeqCst);
        check!(user::copy_to_user(p.data + 0x100, &a.to_le_bytes()).is_ok());
        check!(user::copy_to_user(p.data + 0x900, &b.to_le_bytes()).is_ok());
        let entry = p.prog(sym!(skiff_user_prog_tls));
        let mut ra = UserRegs::new(entry, p.stack_top(0));
        ra.set_arg(0, a as usize);
        ra.set_arg(1, 50);
        let mut rb = UserRegs::new(entry, p.stack_top(1));
        rb.set_arg(0, b as usize);
        rb.set_arg(1, 50);
        let ta = check_some!(spawn_user("user-tls-a", ra, p.data + 0x100, Some(0)));
        let tb = check_some!(spawn_user("user-tls-b", rb, p.data + 0x900, Some(0)));
        let done_a = join_within(&ta, 10_000_000_000);
        let done_b = join_within(&tb, 10_000_000_000);
        check!(done_a && done_b);
        check_eq!(FS_GOOD.load(Ordering::SeqCst), 100);
        check_eq!(FS_BAD.load(Ordering::SeqCst), 0);
        check_eq!(TLS_SAME.load(Ordering::SeqCst), 100);
        check_eq!(TLS_CHANGED.load(Ordering::SeqCst), 0);
        // The threads really alternated (pinned to one CPU, taking turns),
        // so the checks above saw switches between different FS bases.
        check_eq!(HANDOFFS.load(Ordering::SeqCst), 100);
        // The FS base is per thread: this thread's is still its own.
        let mine = user::tls();
        user::set_tls(0x7000_0000_1000);
        check_eq!(user::tls(), 0x7000_0000_1000);
        k::sleep(1_000_000);
        check_eq!(user::tls(), 0x7000_0000_1000);
        user::set_tls(mine);
        check_eq!(user::tls(), mine);
        Ok(())
    }
}

ktest! {
    /// A thread spinning in user mode is preempted by the timer: a kernel
    /// thread pinned to the same CPU runs and releases it (through
    /// `copy_to_user`), and the spinner then exits by `syscall`.
    fn user_busy_loop_is_preempted() {
        let Some(_session) = Session::start() else { skip!("another user test is running") };
        let p = check_some!(UserPages::new());
        let mut regs = UserRegs::new(p.prog(sym!(skiff_user_prog_spin)), p.stack_top(2));
        regs.set_arg(0, p.data);
        let t0 = time::now_ns();
        let spinner = check_some!(spawn_user("user-spin", regs, 0, Some(0)));
        let flag = p.data;
        let setter = check_some!(k::spawn("user-spin-release", move || {
            let _ = user::copy_to_user(flag, &1u64.to_le_bytes());
        }, Some(0)).ok());
        let released = join_within(&setter, 5_000_000_000);
        let exited = join_within(&spinner, 5_000_000_000);
        if !exited {
            // Never leave a thread running on pages we are about to unmap.
            crate::println!("ktest: user spinner still running; leaking its pages");
            core::mem::forget(p);
        }
        check!(released && exited);
        check!(time::now_ns() - t0 < 2_000_000_000);
        check!(spinner.stats.preemptions.load(Ordering::Relaxed) >= 1);
        let calls = SYSCALLS.lock().clone();
        check!(calls.len() == 1 && calls[0].0 == 60);
        Ok(())
    }
}

ktest! {
    /// 20 000 empty syscalls from one user thread all arrive and return;
    /// prints the round trip (syscall, hooks, sysretq) for comparison.
    fn user_syscall_round_trip() {
        const CALLS: usize = 20_000;
        let Some(_session) = Session::start() else {
            skip!("another user test is running")
        };
        let p = check_some!(UserPages::new());
        let mut regs = UserRegs::new(p.prog(sym!(skiff_user_prog_loop)), p.stack_top(0));
        regs.set_arg(0, CALLS);
        let t0 = time::now_ns();
        let t = check_some!(spawn_user("user-loop", regs, 0, None));
        check!(join_within(&t, 20_000_000_000));
        let ns = time::now_ns() - t0;
        check_eq!(EMPTY_CALLS.load(Ordering::SeqCst), CALLS);
        check!(RETURNS.load(Ordering::SeqCst) >= CALLS);
        crate::println!(
            "user: syscall round trip calls={CALLS} ns_per_call={}",
            ns / CALLS as u64
        );
        Ok(())
    }
}
