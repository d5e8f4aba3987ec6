//! In-kernel tests of the aarch64 user-mode edge (`arch::user`), with raw
//! EL0 code and the tests' own hooks (no ELF loader, no syscall table):
//! `svc` reaches `Hooks::syscall` with x8 and x0-x5 and the result comes
//! back in x0; user faults (unmapped page, kernel address, undefined
//! instruction, write to a read-only page, call into a data page) reach
//! `Hooks::fault` with `user: true`; EL0 reads the virtual counter and
//! CTR_EL0 without traps; the fault-safe copies range-check and catch
//! faults; the TLS register is per thread; EL0 busy loops are preempted by
//! the timer.
//!
//! The user programs are a few instructions each, encoded below as words
//! (each encoder's pattern checked against `llvm-mc -show-encoding`). They
//! are written into frames before the code page is mapped executable
//! (`map_page` does the D-/I-cache maintenance for user code pages).
//! Every test maps its own user pages in its own 1 MiB slot of the user
//! half and unmaps them (and frees the frames) when done, on failure too;
//! page-table pages stay (the arch never frees tables).

use crate::sched as k;
use crate::sync::Mutex;
use crate::{arch, mm};
use alloc::vec::Vec;
use arch::user::{self, Hooks, UserRegs};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use skiff_arch_api::{Access, Fault, PageFlags};
use skiff_ktest::{check, check_eq, check_some, ktest};

// ---- A tiny AArch64 encoder (64-bit forms only) ----

/// `movz xd, #imm`
const fn movz(rd: u32, imm: u16) -> u32 {
    0xd280_0000 | (imm as u32) << 5 | rd
}
/// `mov xd, xm` (`orr xd, xzr, xm`)
const fn mov(rd: u32, rm: u32) -> u32 {
    0xaa00_03e0 | rm << 16 | rd
}
/// `add xd, xn, #imm12`
const fn add_imm(rd: u32, rn: u32, imm: u32) -> u32 {
    0x9100_0000 | imm << 10 | rn << 5 | rd
}
/// `subs xd, xn, #imm12`
const fn subs_imm(rd: u32, rn: u32, imm: u32) -> u32 {
    0xf100_0000 | imm << 10 | rn << 5 | rd
}
/// `cmp xn, xm`
const fn cmp(rn: u32, rm: u32) -> u32 {
    0xeb00_001f | rm << 16 | rn << 5
}
/// `ldr xt, [xn]`
const fn ldr(rt: u32, rn: u32) -> u32 {
    0xf940_0000 | rn << 5 | rt
}
/// `str xt, [xn]`
const fn str(rt: u32, rn: u32) -> u32 {
    0xf900_0000 | rn << 5 | rt
}
/// `b.ne` to `delta` instructions from here.
const fn b_ne(delta: i32) -> u32 {
    0x5400_0001 | ((delta as u32) & 0x7_ffff) << 5
}
/// `cbz xt` to `delta` instructions from here.
const fn cbz(rt: u32, delta: i32) -> u32 {
    0xb400_0000 | ((delta as u32) & 0x7_ffff) << 5 | rt
}
/// `b .` (spin forever; never reached when the test passes).
const B_SELF: u32 = 0x1400_0000;
const SVC0: u32 = 0xd400_0001;
/// `blr xn`
const fn blr(rn: u32) -> u32 {
    0xd63f_0000 | rn << 5
}
/// `udf #0`: permanently undefined.
const UDF: u32 = 0x0000_0000;
/// `mrs xt, tpidr_el0` / `msr tpidr_el0, xt`
const fn mrs_tpidr(rt: u32) -> u32 {
    0xd53b_d040 | rt
}
const fn msr_tpidr(rt: u32) -> u32 {
    0xd51b_d040 | rt
}
/// `mrs xt, cntvct_el0` / `mrs xt, ctr_el0`: EL0 may read both (CNTKCTL_EL1
/// EL0VCTEN, SCTLR_EL1.UCT), as on Linux.
const fn mrs_cntvct(rt: u32) -> u32 {
    0xd53b_e040 | rt
}
const fn mrs_ctr(rt: u32) -> u32 {
    0xd53b_0020 | rt
}
/// `fmov dd, xn` / `fmov xd, dn` (an FP/SIMD register as a GPR copy).
const fn fmov_to_d(rd: u32, rn: u32) -> u32 {
    0x9e67_0000 | rn << 5 | rd
}
const fn fmov_from_d(rd: u32, rn: u32) -> u32 {
    0x9e66_0000 | rn << 5 | rd
}

const SYS_GETPID: u16 = 172;
const SYS_EXIT: u16 = 93;
const SYS_EXIT_GROUP: u16 = 94;
/// A number no Linux call uses: counted by the hook, not logged (timing).
const SYS_TEST_NOP: u16 = 0xfff;

/// What the tests' `getpid` returns in x0.
const GETPID_RESULT: usize = 0x5eed;
/// What the fault hook leaves in x1 before skipping the faulting instruction.
const FAULT_MARK: u64 = 0xfa17;

// ---- Hooks that record what user code did ----

/// One entry from EL0, tagged with the thread's x7 (set by each test).
#[derive(Debug, Clone, Copy)]
enum Event {
    Syscall {
        tag: u64,
        nr: usize,
        args: [usize; 6],
    },
    Fault {
        tag: u64,
        fault: Fault,
    },
}

static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());
/// Set when a hook ran with interrupts masked (the contract says enabled).
static HOOK_IRQS_OFF: AtomicBool = AtomicBool::new(false);
static RETURNS_TO_USER: AtomicU64 = AtomicU64::new(0);
static NOP_CALLS: AtomicU64 = AtomicU64::new(0);

fn note_irq_state() {
    if !arch::cpu::interrupts_enabled() {
        HOOK_IRQS_OFF.store(true, Ordering::SeqCst);
    }
}

fn on_syscall(regs: &mut UserRegs) {
    note_irq_state();
    if regs.syscall_nr() == SYS_TEST_NOP as usize {
        NOP_CALLS.fetch_add(1, Ordering::Relaxed);
        regs.set_ret(0);
        return;
    }
    let (tag, nr, args) = (regs.x[7], regs.syscall_nr(), regs.syscall_args());
    EVENTS.lock().push(Event::Syscall { tag, nr, args });
    match nr as u16 {
        SYS_GETPID => regs.set_ret(GETPID_RESULT),
        SYS_EXIT | SYS_EXIT_GROUP => k::exit_current(),
        _ => regs.set_ret(-38isize as usize), // ENOSYS
    }
}

fn on_fault(regs: &mut UserRegs, fault: &Fault) {
    note_irq_state();
    EVENTS.lock().push(Event::Fault {
        tag: regs.x[7],
        fault: *fault,
    });
    // Skip the faulting instruction (or return from a call into a page
    // that cannot be executed) and leave a mark, so the program goes on.
    if fault.access == Access::Execute {
        regs.set_pc(regs.x[30] as usize);
    } else {
        regs.set_pc(regs.pc() + 4);
    }
    regs.x[1] = FAULT_MARK;
}

fn on_return(_regs: &mut UserRegs) {
    note_irq_state();
    RETURNS_TO_USER.fetch_add(1, Ordering::SeqCst);
}

static TEST_HOOKS: Hooks = Hooks {
    syscall: on_syscall,
    fault: on_fault,
    return_to_user: on_return,
};

/// The events of one tag, in order.
fn events_of(tag: u64) -> Vec<Event> {
    EVENTS
        .lock()
        .iter()
        .filter(|e| match e {
            Event::Syscall { tag: t, .. } | Event::Fault { tag: t, .. } => *t == tag,
        })
        .copied()
        .collect()
}

fn syscall_of(e: &Event) -> Option<(usize, [usize; 6])> {
    match e {
        Event::Syscall { nr, args, .. } => Some((*nr, *args)),
        Event::Fault { .. } => None,
    }
}

fn fault_of(e: &Event) -> Option<Fault> {
    match e {
        Event::Fault { fault, .. } => Some(*fault),
        Event::Syscall { .. } => None,
    }
}

// ---- User pages ----

/// Each test's own slot of the user half.
const SLOT_BASE: usize = 0x0000_7e00_0000_0000;
const SLOT_SIZE: usize = 1 << 20;
const PAGE: usize = arch::mm::PAGE_SIZE;

fn slot(n: usize) -> usize {
    SLOT_BASE + n * SLOT_SIZE
}

const USER_RX: PageFlags = PageFlags {
    write: false,
    execute: true,
    user: true,
};
const USER_RW: PageFlags = PageFlags {
    write: true,
    execute: false,
    user: true,
};
const USER_RO: PageFlags = PageFlags {
    write: false,
    execute: false,
    user: true,
};

/// User pages mapped by a test; unmapped and freed on drop.
struct UserPages(Vec<(usize, u64)>);

impl UserPages {
    fn new() -> Self {
        Self(Vec::new())
    }

    /// Maps a fresh frame at `va` holding `contents` (zero-padded).
    fn map(&mut self, va: usize, flags: PageFlags, contents: &[u8]) -> bool {
        let Ok(pa) = mm::alloc_filled_frame(&mut |page| {
            let n = contents.len().min(page.len());
            page[..n].copy_from_slice(&contents[..n]);
        }) else {
            return false;
        };
        let mut tables = || mm::alloc_filled_frame(&mut |_| {}).ok();
        if arch::mm::map_page(va, pa, flags, &mut tables).is_err() {
            let _ = mm::free_frames(pa, 0);
            return false;
        }
        self.0.push((va, pa));
        true
    }
}

impl Drop for UserPages {
    fn drop(&mut self) {
        for &(va, pa) in &self.0 {
            if arch::mm::unmap_page(va) == Some(pa) {
                let _ = mm::free_frames(pa, 0);
            }
        }
    }
}

fn code(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Runs `regs` at EL0 on a new thread pinned to this CPU (with user TLS
/// `tls`), and waits for it to exit through the exit hook.
fn run_user(name: &str, regs: UserRegs, tls: usize) -> Option<()> {
    let t = k::spawn(
        name,
        move || {
            user::set_tls(tls);
            user::enter(&regs)
        },
        Some(k::cpu_index()),
    )
    .ok()?;
    k::join(&t);
    Some(())
}

static KERNEL_WORD: u64 = 0x6b65_726e;

ktest! {
    /// `svc #0` reaches the syscall hook with x8 and x0-x5, its result
    /// arrives in x0, and the other registers survive the round trip.
    fn user_syscall_round_trip() {
        user::set_hooks(&TEST_HOOKS);
        let base = slot(0);
        let prog = code(&[
            movz(0, 11), movz(1, 22), movz(2, 33), movz(3, 44), movz(4, 55), movz(5, 66),
            movz(19, 0xbeef),
            movz(8, SYS_GETPID),
            SVC0,
            // exit(getpid(), x19, x8, cntvct, ctr): x0 is the result, x19
            // and x8 survived; the counter and cache type read at EL0.
            mov(1, 19),
            mov(2, 8),
            mrs_cntvct(3),
            mrs_ctr(4),
            movz(8, SYS_EXIT),
            SVC0,
            B_SELF,
        ]);
        let mut pages = UserPages::new();
        check!(pages.map(base, USER_RX, &prog));
        check!(pages.map(base + 0x1000, USER_RW, &[]));
        let (flags_code, flags_stack) = (
            check_some!(arch::mm::translate(base)).1,
            check_some!(arch::mm::translate(base + 0x1000)).1,
        );
        check!(flags_code == USER_RX && flags_stack == USER_RW);
        let returns = RETURNS_TO_USER.load(Ordering::SeqCst);
        let tag = 0x7a61;
        let mut regs = UserRegs::new(base, base + 0x2000);
        regs.x[7] = tag;
        check!(run_user("user-svc", regs, 0).is_some());
        let ev = events_of(tag);
        check_eq!(ev.len(), 2);
        let (nr, args) = check_some!(syscall_of(&ev[0]));
        check_eq!(nr, SYS_GETPID as usize);
        check!(args == [11, 22, 33, 44, 55, 66]);
        let (nr, args) = check_some!(syscall_of(&ev[1]));
        check_eq!(nr, SYS_EXIT as usize);
        check!(args[..3] == [GETPID_RESULT, 0xbeef, SYS_GETPID as usize]);
        check!(args[3] != 0 && args[4] != 0);
        check_eq!(args[5], 66);
        check!(RETURNS_TO_USER.load(Ordering::SeqCst) > returns);
        check!(!HOOK_IRQS_OFF.load(Ordering::SeqCst));
        Ok(())
    }
}

ktest! {
    /// Faults at EL0 reach the fault hook (never the kernel's trap handler)
    /// decoded, with `user: true`; returning with pc moved on resumes there.
    fn user_faults_reach_the_fault_hook() {
        user::set_hooks(&TEST_HOOKS);
        let base = slot(1);
        let unmapped = base + 0x8000 + 0x128;
        let kernel = &KERNEL_WORD as *const u64 as usize;
        // x0 = unmapped user address, x3 = kernel address, x4 = code page.
        let prog = code(&[
            ldr(1, 0),  // data abort, translation: hook leaves FAULT_MARK in x1
            mov(20, 1),
            ldr(2, 3),  // EL0 read of a kernel address
            UDF,        // undefined instruction
            str(1, 4),  // write to the read-only code page
            blr(5),     // call into a non-executable data page
            mov(0, 20),
            movz(8, SYS_EXIT),
            SVC0,
            B_SELF,
        ]);
        let mut pages = UserPages::new();
        check!(pages.map(base, USER_RX, &prog));
        check!(pages.map(base + 0x1000, USER_RW, &code(&[B_SELF])));
        let tag = 0xfa;
        let mut regs = UserRegs::new(base, base + 0x2000);
        regs.x[0] = unmapped as u64;
        regs.x[3] = kernel as u64;
        regs.x[4] = base as u64;
        regs.x[5] = (base + 0x1000) as u64;
        regs.x[7] = tag;
        check!(run_user("user-fault", regs, 0).is_some());
        let ev = events_of(tag);
        check_eq!(ev.len(), 6);
        let f = check_some!(fault_of(&ev[0]));
        check!(f.user && f.access == Access::Read && !f.protection);
        check_eq!(f.addr, unmapped);
        check_eq!(f.pc, base);
        let f = check_some!(fault_of(&ev[1]));
        check!(f.user && f.access == Access::Read);
        check_eq!(f.addr, kernel);
        check_eq!(f.pc, base + 8);
        let f = check_some!(fault_of(&ev[2]));
        check!(f.user && f.access == Access::None && f.name == "undefined instruction");
        check_eq!(f.pc, base + 12);
        let f = check_some!(fault_of(&ev[3]));
        check!(f.user && f.access == Access::Write && f.protection);
        check_eq!(f.addr, base);
        let f = check_some!(fault_of(&ev[4]));
        check!(f.user && f.access == Access::Execute && f.protection);
        check_eq!(f.addr, base + 0x1000);
        check_eq!(f.pc, base + 0x1000);
        let (nr, args) = check_some!(syscall_of(&ev[5]));
        check_eq!(nr, SYS_EXIT as usize);
        check_eq!(args[0], FAULT_MARK as usize);
        check!(!HOOK_IRQS_OFF.load(Ordering::SeqCst));
        Ok(())
    }
}

ktest! {
    /// copy_to_user / copy_from_user / copy_cstr_from_user: range checks
    /// (kernel addresses, overflow, USER_END), caught faults on unmapped
    /// and read-only pages, and that PAN keeps plain kernel loads out.
    fn user_copies_check_and_catch() {
        let base = slot(2);
        let mut pages = UserPages::new();
        check!(pages.map(base, USER_RW, &[]));
        let mut ro = alloc::vec![0u8; PAGE];
        ro[..9].copy_from_slice(b"read only");
        ro[PAGE - 4..].copy_from_slice(b"zzzz");
        check!(pages.map(base + 0x1000, USER_RO, &ro));
        // base + 0x2000 stays unmapped.

        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        check!(user::copy_to_user(base + 5, &data).is_ok());
        let mut back = alloc::vec![0u8; 300];
        check!(user::copy_from_user(&mut back, base + 5).is_ok());
        check!(back == data);
        let mut word = [0u8; 8];
        check!(user::copy_from_user(&mut word, base + 0x1000).is_ok());
        check!(&word == b"read onl");

        // Kernel addresses and ranges past USER_END: refused up front.
        let kernel = &KERNEL_WORD as *const u64 as usize;
        check!(user::copy_from_user(&mut word, kernel).is_err());
        check!(user::copy_to_user(kernel, &word).is_err());
        check!(user::copy_from_user(&mut word, user::USER_END - 4).is_err());
        check!(user::copy_from_user(&mut word, usize::MAX - 3).is_err());
        check_eq!(KERNEL_WORD, 0x6b65_726e);

        // Unmapped user memory: a caught translation fault at the first
        // missing byte, also when the copy starts on a mapped page.
        let f = check_some!(user::copy_from_user(&mut word, base + 0x2000).err());
        check!(!f.protection && f.access == Access::Read);
        check_eq!(f.addr, base + 0x2000);
        let mut two = alloc::vec![0u8; 16];
        let f = check_some!(user::copy_from_user(&mut two, base + 0x2000 - 8).err());
        check_eq!(f.addr, base + 0x2000);
        // Read-only page: a caught permission fault, contents unchanged.
        let f = check_some!(user::copy_to_user(base + 0x1000, b"x").err());
        check!(f.protection && f.access == Access::Write);
        check!(user::copy_from_user(&mut word, base + 0x1000).is_ok());
        check!(&word == b"read onl");

        // Strings.
        check!(user::copy_to_user(base + 0x100, b"hello\0world").is_ok());
        let mut buf = [0u8; 64];
        check!(user::copy_cstr_from_user(&mut buf, base + 0x100) == Ok(Some(5)));
        check!(&buf[..5] == b"hello");
        let mut small = [0u8; 3];
        check!(user::copy_cstr_from_user(&mut small, base + 0x100) == Ok(None));
        // Across a page boundary; into an unmapped page (a caught fault).
        check!(user::copy_to_user(base + 0xffc, b"abcd").is_ok());
        check!(user::copy_cstr_from_user(&mut buf, base + 0xffc) == Ok(Some(13)));
        let f = check_some!(user::copy_cstr_from_user(&mut buf, base + 0x1ffc).err());
        check_eq!(f.addr, base + 0x2000);
        check!(user::copy_cstr_from_user(&mut buf, kernel).is_err());
        check!(user::copy_cstr_from_user(&mut buf, user::USER_END - 2).is_err());

        // PAN: a plain kernel load from a user page faults.
        if arch::cpu::has_pan() {
            let f = check_some!(arch::trap::catch_fault(probe_read, base).err());
            check!(f.protection && !f.user);
        }
        Ok(())
    }
}

/// A plain kernel load (not the copy API), which PAN must stop.
#[allow(unsafe_code)]
fn probe_read(addr: usize) {
    // SAFETY: run under catch_fault; with PAN on, the load from a user page
    // faults (the expected outcome) and nothing is written.
    unsafe {
        (addr as *const u8).read_volatile();
    }
}

ktest! {
    /// set_tls/tls round-trip across a switch; two EL0 threads with
    /// different TPIDR_EL0 (one set by the kernel, one by `msr` at EL0) and
    /// an FP register each spin on this CPU and are preempted by the timer
    /// (this test thread, on the same CPU, keeps running) and each sees
    /// only its own TLS and FP value throughout.
    fn user_tls_fp_and_preemption() {
        user::set_hooks(&TEST_HOOKS);
        let old = user::tls();
        user::set_tls(0x1111_2222_3333);
        k::sleep(1_000_000);
        k::yield_now();
        check_eq!(user::tls(), 0x1111_2222_3333);
        user::set_tls(old);

        let base = slot(3);
        let data = base + 0x1000;
        // x0 = TLS value, x10 != 0: set TPIDR_EL0 here with msr; x4 = stop
        // flag, x6 = this thread's counter, x7 = tag.
        const LOOP: i32 = 4;
        const BAD: i32 = 18;
        let prog = code(&[
            cbz(10, 2),              // 0
            msr_tpidr(0),            // 1
            fmov_to_d(1, 0),         // 2: d1 = x0 (first FP use traps once)
            movz(5, 0),              // 3
            mrs_tpidr(1),            // 4: loop
            cmp(1, 0),               // 5
            b_ne(BAD - 6),           // 6
            fmov_from_d(9, 1),       // 7
            cmp(9, 0),               // 8
            b_ne(BAD - 9),           // 9
            add_imm(5, 5, 1),        // 10
            str(5, 6),               // 11
            ldr(3, 4),               // 12: stop flag
            cbz(3, LOOP - 13),       // 13
            mov(1, 5),               // 14: exit(tls, count)
            movz(8, SYS_EXIT),       // 15
            SVC0,                    // 16
            B_SELF,                  // 17
            movz(8, SYS_EXIT_GROUP), // 18: bad: exit_group(tls, seen)
            SVC0,                    // 19
            B_SELF,                  // 20
        ]);
        let mut pages = UserPages::new();
        check!(pages.map(base, USER_RX, &prog));
        check!(pages.map(data, USER_RW, &[]));

        let tls = [0x7151_0000_aaaa_u64, 0x7151_0000_bbbb];
        let tags = [0x71a, 0x71b];
        let mut threads = Vec::new();
        for i in 0..2 {
            let mut regs = UserRegs::new(base, base + 0x3000);
            regs.x[0] = tls[i];
            regs.x[4] = data as u64;
            regs.x[6] = (data + 8 * (i + 1)) as u64;
            regs.x[7] = tags[i];
            regs.x[10] = i as u64; // thread 1 sets its TLS at EL0
            let kernel_tls = if i == 0 { tls[0] as usize } else { 0 };
            let t = check_some!(k::spawn("user-spin", move || {
                user::set_tls(kernel_tls);
                user::enter(&regs)
            }, Some(k::cpu_index())).ok());
            threads.push(t);
        }
        let count = |i: usize| -> Option<u64> {
            let mut w = [0u8; 8];
            user::copy_from_user(&mut w, data + 8 * (i + 1)).ok()?;
            Some(u64::from_le_bytes(w))
        };
        // This thread shares the CPU with both spinners: it only gets to
        // run again because the timer preempts EL0.
        let returns = RETURNS_TO_USER.load(Ordering::SeqCst);
        let mut progressed = [false; 2];
        let mut last = [0u64; 2];
        for _ in 0..100 {
            k::sleep(10_000_000);
            for i in 0..2 {
                let c = check_some!(count(i));
                if last[i] != 0 && c > last[i] {
                    progressed[i] = true;
                }
                last[i] = c;
            }
            if progressed == [true, true] {
                break;
            }
        }
        // No syscalls yet: the returns to user mode were after interrupts.
        let irq_returns = RETURNS_TO_USER.load(Ordering::SeqCst) - returns;
        check!(user::copy_to_user(data, &1u64.to_le_bytes()).is_ok());
        for t in &threads {
            k::join(t);
        }
        check!(progressed == [true, true]);
        check!(irq_returns > 0);
        for i in 0..2 {
            let ev = events_of(tags[i]);
            check_eq!(ev.len(), 1);
            let (nr, args) = check_some!(syscall_of(&ev[0]));
            check_eq!(nr, SYS_EXIT as usize);
            check_eq!(args[0] as u64, tls[i]);
            check!(args[1] as u64 >= last[i]);
        }
        Ok(())
    }
}

ktest! {
    /// `cpu::hwcap` (for AT_HWCAP/AT_HWCAP2) reports FP and ASIMD, which
    /// every AArch64 Linux CPU has, and never CPUID (EL0 ID-register reads
    /// are not emulated here).
    fn user_hwcap_has_fp_and_simd_not_cpuid() {
        let (hwcap, hwcap2) = arch::cpu::hwcap();
        crate::println!("user: hwcap={hwcap:#x} hwcap2={hwcap2:#x}");
        check_eq!(hwcap & 0b11, 0b11);
        check_eq!(hwcap & (1 << 11), 0);
        Ok(())
    }
}

ktest! {
    /// 10 000 `svc`s to a hook that returns at once: all arrive, and the
    /// log line gives the round-trip cost (EL0 -> hook -> EL0) on this board.
    fn user_svc_round_trip_cost() {
        user::set_hooks(&TEST_HOOKS);
        const CALLS: u16 = 10_000;
        let base = slot(4);
        let prog = code(&[
            movz(20, CALLS),
            movz(8, SYS_TEST_NOP), // 1: loop
            SVC0,
            subs_imm(20, 20, 1),
            b_ne(-3),
            movz(8, SYS_EXIT),
            SVC0,
            B_SELF,
        ]);
        let mut pages = UserPages::new();
        check!(pages.map(base, USER_RX, &prog));
        let before = NOP_CALLS.load(Ordering::SeqCst);
        let tag = 0x5c;
        let mut regs = UserRegs::new(base, base + 0x2000);
        regs.x[7] = tag;
        let t0 = crate::time::now_ns();
        check!(run_user("user-svc-cost", regs, 0).is_some());
        let ns = crate::time::now_ns() - t0;
        check_eq!(NOP_CALLS.load(Ordering::SeqCst) - before, CALLS as u64);
        check_eq!(events_of(tag).len(), 1);
        crate::println!(
            "user: svc round trip calls={CALLS} ns_per_call={}",
            ns / CALLS as u64
        );
        Ok(())
    }
}
