//! Signal delivery: pending signals per thread, the Linux `rt_sigframe` of
//! each arch (built on the user stack when a handler runs, read back by
//! `rt_sigreturn`), default actions, and the calls that send, wait for and
//! inspect signals (`kill`, `tkill`, `tgkill`, `rt_sigpending`,
//! `rt_sigsuspend`, `sigaltstack`, `rt_sigreturn`). Dispositions
//! (`rt_sigaction`) and the mask (`rt_sigprocmask`) are recorded by
//! [`super::misc`] in [`Task`] and [`ThreadState`]; this module reads them.
//!
//! Delivery happens on the way back to user mode ([`deliver`], from the
//! return-to-user hook) and for synchronous faults ([`on_fault`]).
//! `rt_sigreturn` only marks the thread; the restore happens in
//! [`deliver`], which has the registers (handlers get only arguments).
//!
//! The frame builder works on arch-neutral register words in the order of
//! each arch's Linux `sigcontext`, so the layouts are host-tested; the
//! target glue at the end converts `arch::user::UserRegs` to and from them.
//!
//! Not done yet: FP/SIMD state is not saved in the frame (x86_64
//! `fpstate` is 0; aarch64 has no `fpsimd_context` record, only the
//! terminating null record), so a handler that returns to interrupted FP
//! code must not clobber live FP registers; stop signals are ignored; a
//! blocking call is not interrupted by a signal (no `EINTR`/`SA_RESTART`
//! handling outside `rt_sigsuspend`).

use super::process::{SigAction, Task, ThreadState, NSIG};
use super::{Ctx, Cx};
use crate::errno::{Errno, KResult};
use crate::syscall::{Arch, Args};
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

pub const SIGHUP: usize = 1;
pub const SIGINT: usize = 2;
pub const SIGQUIT: usize = 3;
pub const SIGILL: usize = 4;
pub const SIGTRAP: usize = 5;
pub const SIGABRT: usize = 6;
pub const SIGBUS: usize = 7;
pub const SIGFPE: usize = 8;
pub const SIGKILL: usize = 9;
pub const SIGUSR1: usize = 10;
pub const SIGSEGV: usize = 11;
pub const SIGUSR2: usize = 12;
pub const SIGPIPE: usize = 13;
pub const SIGALRM: usize = 14;
pub const SIGTERM: usize = 15;
pub const SIGCHLD: usize = 17;
pub const SIGCONT: usize = 18;
pub const SIGSTOP: usize = 19;
pub const SIGTSTP: usize = 20;
pub const SIGTTIN: usize = 21;
pub const SIGTTOU: usize = 22;
pub const SIGURG: usize = 23;
pub const SIGWINCH: usize = 28;
pub const SIGSYS: usize = 31;

pub const SA_SIGINFO: u64 = 4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_TKILL: i32 = -6;
pub const SI_KERNEL: i32 = 0x80;

const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
const SS_AUTODISARM: u32 = 1 << 31;

/// The mask bit of `sig` (1..=64).
pub const fn bit(sig: usize) -> u64 {
    1 << (sig - 1)
}

/// Signals no mask can block.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);
/// Faults, delivered before other pending signals (as Linux does).
const SYNCHRONOUS: u64 =
    bit(SIGSEGV) | bit(SIGBUS) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGFPE) | bit(SIGSYS);

/// The name of `sig` for log lines.
pub fn name(sig: usize) -> &'static str {
    const NAMES: [&str; 32] = [
        "SIG0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get(sig).copied().unwrap_or("SIGRT")
}

/// What a signal does when its handler is `SIG_DFL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process with status 128 + signal.
    Terminate,
    Ignore,
}

/// Linux's default for `sig`. Stop signals are ignored (nothing could
/// continue the one app) and `SIGCONT` has nothing to continue.
pub fn default_action(sig: usize) -> DefaultAction {
    match sig {
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Ignore,
        _ => DefaultAction::Terminate,
    }
}

/// A decoded kernel `struct sigaction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Action {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl Action {
    pub fn parse(raw: &SigAction) -> Self {
        let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Action {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: w(3),
        }
    }

    pub fn raw(&self) -> SigAction {
        let mut r = [0u8; 32];
        for (i, v) in [self.handler, self.flags, self.restorer, self.mask]
            .iter()
            .enumerate()
        {
            r[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        r
    }

    /// Whether the signal is discarded (`SIG_IGN`, or a default of ignore).
    pub fn ignores(&self, sig: usize) -> bool {
        match self.handler {
            SIG_IGN => true,
            SIG_DFL => default_action(sig) == DefaultAction::Ignore,
            _ => false,
        }
    }

    pub fn has_handler(&self) -> bool {
        self.handler > SIG_IGN
    }
}

/// The mask while the handler of `sig` runs: the old mask, the action's
/// `sa_mask` and, unless `SA_NODEFER`, the signal itself.
pub fn handler_mask(old: u64, act: &Action, sig: usize) -> u64 {
    let mut m = old | act.mask;
    if act.flags & SA_NODEFER == 0 {
        m |= bit(sig);
    }
    m & !UNBLOCKABLE
}

/// The next signal to deliver from `pending` under `mask`: faults first,
/// then the lowest number.
pub fn next(pending: u64, mask: u64) -> Option<usize> {
    let ready = pending & !(mask & !UNBLOCKABLE);
    let pick = if ready & SYNCHRONOUS != 0 {
        ready & SYNCHRONOUS
    } else {
        ready
    };
    (pick != 0).then(|| pick.trailing_zeros() as usize + 1)
}

/// What `siginfo_t` carries (the fields Skiff fills).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Info {
    pub signo: i32,
    pub code: i32,
    /// Sender's pid and uid (`kill`-type codes).
    pub pid: u32,
    pub uid: u32,
    /// Faulting address (fault codes).
    pub addr: u64,
}

/// Bytes of `siginfo_t` on both arches.
pub const SIGINFO_SIZE: usize = 128;

impl Info {
    /// The 128-byte `siginfo_t`: signo, errno, code at 0/4/8, the union
    /// at 16 (`si_pid`/`si_uid` or `si_addr`).
    pub fn bytes(&self) -> [u8; SIGINFO_SIZE] {
        let mut b = [0u8; SIGINFO_SIZE];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        if self.code > 0 && self.code < SI_KERNEL && is_fault(self.signo as usize) {
            b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        } else {
            b[16..20].copy_from_slice(&self.pid.to_le_bytes());
            b[20..24].copy_from_slice(&self.uid.to_le_bytes());
        }
        b
    }
}

fn is_fault(sig: usize) -> bool {
    (1..=NSIG).contains(&sig) && SYNCHRONOUS & bit(sig) != 0
}

/// An alternate signal stack (`sigaltstack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    /// `SS_DISABLE` when none, plus `SS_AUTODISARM` if asked.
    pub flags: u32,
}

impl AltStack {
    const DISABLED: AltStack = AltStack {
        sp: 0,
        size: 0,
        flags: SS_DISABLE,
    };

    pub fn enabled(&self) -> bool {
        self.flags & SS_DISABLE == 0 && self.size != 0
    }

    pub fn contains(&self, sp: u64) -> bool {
        self.enabled() && sp > self.sp && sp - self.sp <= self.size
    }

    /// The 24-byte `stack_t` as seen from `sp`.
    fn bytes(&self, sp: u64) -> [u8; 24] {
        let mut b = [0u8; 24];
        let flags = if self.contains(sp) {
            SS_ONSTACK
        } else {
            self.flags & (SS_DISABLE | SS_AUTODISARM)
        };
        b[0..8].copy_from_slice(&self.sp.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

// ---- frame layouts ----

/// Register words of each arch's Linux `sigcontext`, in its order.
/// x86_64: r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx rdx rax rcx rsp
/// rip eflags; aarch64: x0..x30 sp pc pstate.
pub fn greg_count(arch: Arch) -> usize {
    match arch {
        Arch::X86_64 => 18,
        Arch::Aarch64 => 34,
    }
}

pub mod x86 {
    //! `struct rt_sigframe` of x86_64 Linux (arch/x86/include/asm/sigframe.h).
    pub const PRETCODE: usize = 0;
    pub const UC: usize = 8;
    pub const UC_STACK: usize = UC + 16;
    pub const UC_MCONTEXT: usize = UC + 40;
    /// `sigcontext` words after the 18 registers.
    pub const SC_CSGSFSSS: usize = UC_MCONTEXT + 18 * 8;
    pub const SC_ERR: usize = UC_MCONTEXT + 19 * 8;
    pub const SC_TRAPNO: usize = UC_MCONTEXT + 20 * 8;
    pub const SC_OLDMASK: usize = UC_MCONTEXT + 21 * 8;
    pub const SC_CR2: usize = UC_MCONTEXT + 22 * 8;
    pub const SC_FPSTATE: usize = UC_MCONTEXT + 23 * 8;
    pub const SIGCONTEXT_SIZE: usize = 256;
    pub const UC_SIGMASK: usize = UC_MCONTEXT + SIGCONTEXT_SIZE;
    pub const UCONTEXT_SIZE: usize = 40 + SIGCONTEXT_SIZE + 8;
    pub const INFO: usize = UC + UCONTEXT_SIZE;
    pub const SIZE: usize = INFO + super::SIGINFO_SIZE;
    /// Below the interrupted stack pointer the frame may not touch.
    pub const RED_ZONE: u64 = 128;
    /// RFLAGS bits cleared for the handler: TF, DF, RF.
    pub const HANDLER_CLEARS: u64 = 0x100 | 0x400 | 0x1_0000;
}

pub mod a64 {
    //! `struct rt_sigframe` of arm64 Linux (arch/arm64/kernel/signal.c,
    //! uapi asm/sigcontext.h): siginfo, then the ucontext whose
    //! `uc_mcontext` is 16-byte aligned, then a frame record {fp, lr}.
    pub const INFO: usize = 0;
    pub const UC: usize = super::SIGINFO_SIZE;
    pub const UC_STACK: usize = UC + 16;
    pub const UC_SIGMASK: usize = UC + 40;
    /// After `uc_sigmask` glibc's 1024-bit sigset_t pad: 120 bytes.
    pub const UC_MCONTEXT: usize = UC + 176;
    pub const SC_FAULT_ADDRESS: usize = UC_MCONTEXT;
    pub const SC_REGS: usize = UC_MCONTEXT + 8;
    pub const SC_RESERVED: usize = UC_MCONTEXT + 288;
    pub const RESERVED_SIZE: usize = 4096;
    pub const UCONTEXT_SIZE: usize = 176 + 288 + RESERVED_SIZE;
    pub const RECORD: usize = UC + UCONTEXT_SIZE;
    pub const SIZE: usize = RECORD + 16;
}

/// Where the frame goes and what it holds, for one delivery.
#[derive(Debug, Clone)]
pub struct Frame {
    /// User address of the frame (the handler's stack pointer).
    pub addr: u64,
    pub bytes: Vec<u8>,
    /// The handler's registers (same word order as the input).
    pub regs: Vec<u64>,
}

/// Fault details for the x86_64 `sigcontext` (trapno, err, cr2) and the
/// aarch64 `fault_address`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultInfo {
    pub trapno: u64,
    pub err: u64,
    pub addr: u64,
}

fn put(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

/// Builds the frame for handler `act` of signal `info.signo` interrupting
/// `regs` (words as [`greg_count`]), with `old_mask` to restore on return.
/// `None` when no address for it fits (sp wraps).
pub fn build_frame(
    arch: Arch,
    regs: &[u64],
    info: &Info,
    act: &Action,
    old_mask: u64,
    alt: &AltStack,
    fault: &FaultInfo,
) -> Option<Frame> {
    let (sp_i, pc_i) = match arch {
        Arch::X86_64 => (15, 16),
        Arch::Aarch64 => (31, 32),
    };
    let sp = regs[sp_i];
    let use_alt = act.flags & SA_ONSTACK != 0 && alt.enabled() && !alt.contains(sp);
    let top = if use_alt { alt.sp + alt.size } else { sp };
    let sig = info.signo as u64;
    let mut out = regs.to_vec();
    match arch {
        Arch::X86_64 => {
            let below = if use_alt {
                top
            } else {
                top.checked_sub(x86::RED_ZONE)?
            };
            let addr = (below.checked_sub(x86::SIZE as u64)? & !15).checked_sub(8)?;
            let mut b = vec![0u8; x86::SIZE];
            put(&mut b, x86::PRETCODE, act.restorer);
            b[x86::UC_STACK..x86::UC_STACK + 24].copy_from_slice(&alt.bytes(sp));
            for (i, r) in regs.iter().enumerate() {
                put(&mut b, x86::UC_MCONTEXT + i * 8, *r);
            }
            // cs = 0x33 (__USER_CS), ss = 0x2b (__USER_DS), as Linux shows.
            put(&mut b, x86::SC_CSGSFSSS, 0x33 | 0x2b << 48);
            put(&mut b, x86::SC_ERR, fault.err);
            put(&mut b, x86::SC_TRAPNO, fault.trapno);
            put(&mut b, x86::SC_OLDMASK, old_mask);
            put(&mut b, x86::SC_CR2, fault.addr);
            put(&mut b, x86::SC_FPSTATE, 0);
            put(&mut b, x86::UC_SIGMASK, old_mask);
            b[x86::INFO..x86::INFO + SIGINFO_SIZE].copy_from_slice(&info.bytes());
            // rdi rsi rdx rax rsp rip rflags
            out[8] = sig;
            out[9] = addr + x86::INFO as u64;
            out[12] = addr + x86::UC as u64;
            out[13] = 0;
            out[15] = addr;
            out[pc_i] = act.handler;
            out[17] &= !x86::HANDLER_CLEARS;
            Some(Frame {
                addr,
                bytes: b,
                regs: out,
            })
        }
        Arch::Aarch64 => {
            let addr = top.checked_sub(a64::SIZE as u64)? & !15;
            let mut b = vec![0u8; a64::SIZE];
            b[a64::INFO..a64::INFO + SIGINFO_SIZE].copy_from_slice(&info.bytes());
            b[a64::UC_STACK..a64::UC_STACK + 24].copy_from_slice(&alt.bytes(sp));
            put(&mut b, a64::UC_SIGMASK, old_mask);
            put(&mut b, a64::SC_FAULT_ADDRESS, fault.addr);
            for (i, r) in regs.iter().enumerate() {
                put(&mut b, a64::SC_REGS + i * 8, *r);
            }
            // __reserved: only the terminating null record {magic 0, size 0}.
            put(&mut b, a64::RECORD, regs[29]);
            put(&mut b, a64::RECORD + 8, regs[30]);
            out[0] = sig;
            out[1] = addr + a64::INFO as u64;
            out[2] = addr + a64::UC as u64;
            out[29] = addr + a64::RECORD as u64;
            out[30] = act.restorer;
            out[31] = addr;
            out[pc_i] = act.handler;
            Some(Frame {
                addr,
                bytes: b,
                regs: out,
            })
        }
    }
}

/// Where `rt_sigreturn` finds the frame, from the stack pointer at the
/// call: x86_64's handler returned through `pretcode` (popped), arm64's
/// restorer runs with the handler's stack pointer.
pub fn frame_at_sigreturn(arch: Arch, sp: u64) -> Option<u64> {
    match arch {
        Arch::X86_64 => sp.checked_sub(8),
        Arch::Aarch64 => (sp & 15 == 0).then_some(sp),
    }
}

pub fn frame_size(arch: Arch) -> usize {
    match arch {
        Arch::X86_64 => x86::SIZE,
        Arch::Aarch64 => a64::SIZE,
    }
}

/// The registers and mask a frame (as the handler left it) restores. The
/// arch's return path sanitises flags/pstate and selectors.
pub fn parse_frame(arch: Arch, b: &[u8]) -> Option<(Vec<u64>, u64)> {
    if b.len() < frame_size(arch) {
        return None;
    }
    let (regs_at, mask_at) = match arch {
        Arch::X86_64 => (x86::UC_MCONTEXT, x86::UC_SIGMASK),
        Arch::Aarch64 => (a64::SC_REGS, a64::UC_SIGMASK),
    };
    let regs = (0..greg_count(arch))
        .map(|i| get(b, regs_at + i * 8))
        .collect();
    Some((regs, get(b, mask_at) & !UNBLOCKABLE))
}

// ---- per-thread signal state ----

/// What this module keeps per thread (by tid) beyond the mask.
#[derive(Debug, Clone)]
pub struct SigThread {
    pub pending: u64,
    pub info: [Info; NSIG],
    pub alt: AltStack,
    /// `rt_sigreturn` was called: restore from the frame before returning.
    pub sigreturn: bool,
    /// The mask to restore after the delivery that ends `rt_sigsuspend`.
    pub suspend_mask: Option<u64>,
}

impl Default for SigThread {
    fn default() -> Self {
        SigThread {
            pending: 0,
            info: [Info::default(); NSIG],
            alt: AltStack::DISABLED,
            sigreturn: false,
            suspend_mask: None,
        }
    }
}

/// Per-thread signal state. A spin lock around O(1) field updates, taken
/// with interrupts off on the target (the lock rule of docs/scheduler.md):
/// a thread preempted while holding it would make others spin.
static THREADS: spin::Mutex<BTreeMap<u32, SigThread>> = spin::Mutex::new(BTreeMap::new());

/// Set once any signal was queued or `rt_sigreturn` called: until then the
/// return-to-user path skips the table entirely (no lock per syscall for
/// the many programs that never signal).
static IN_USE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn mark_in_use() {
    IN_USE.store(true, core::sync::atomic::Ordering::Release);
}

/// Whether delivery has anything to look at.
pub fn in_use() -> bool {
    IN_USE.load(core::sync::atomic::Ordering::Acquire)
}

fn locked<R>(f: impl FnOnce(&mut BTreeMap<u32, SigThread>) -> R) -> R {
    #[cfg(target_os = "none")]
    return crate::arch::cpu::without_interrupts(|| f(&mut THREADS.lock()));
    #[cfg(not(target_os = "none"))]
    f(&mut THREADS.lock())
}

fn with<R>(tid: u32, f: impl FnOnce(&mut SigThread) -> R) -> R {
    locked(|m| f(m.entry(tid).or_default()))
}

/// Forgets a thread that exited.
pub fn forget(tid: u32) {
    locked(|m| m.remove(&tid));
}

/// Makes `info.signo` pending on thread `tid`, unless its action ignores
/// it and it is not blocked (then it is discarded, as Linux does).
pub fn queue(task: &Task, thread: &ThreadState, info: Info) {
    let sig = info.signo as usize;
    if !(1..=NSIG).contains(&sig) {
        return;
    }
    let act = Action::parse(&task.action(sig));
    if act.ignores(sig) && thread.sigmask() & bit(sig) == 0 {
        return;
    }
    with(thread.tid(), |t| {
        if t.pending & bit(sig) == 0 {
            t.info[sig - 1] = info;
        }
        t.pending |= bit(sig);
    });
    mark_in_use();
}

/// Bits pending on `tid`.
pub fn pending(tid: u32) -> u64 {
    with(tid, |t| t.pending)
}

/// What to do for one pending signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    None,
    Terminate(usize),
    Handle(usize, Info, Action, u64),
}

/// Takes the next deliverable signal of `thread` and decides: ignore
/// (drops it, looks further), terminate, or run the handler (the action
/// is reset for `SA_RESETHAND`). The last field is the mask to save.
pub fn take(task: &Task, thread: &ThreadState) -> Disposition {
    let tid = thread.tid();
    loop {
        let mask = thread.sigmask();
        let Some((sig, info)) = with(tid, |t| {
            let sig = next(t.pending, mask)?;
            t.pending &= !bit(sig);
            Some((sig, t.info[sig - 1]))
        }) else {
            return Disposition::None;
        };
        let act = Action::parse(&task.action(sig));
        if act.ignores(sig) {
            continue;
        }
        if !act.has_handler() {
            return Disposition::Terminate(sig);
        }
        if act.flags & SA_RESETHAND != 0 {
            task.set_action(sig, Action::default().raw());
        }
        let saved = with(tid, |t| t.suspend_mask.take()).unwrap_or(mask);
        return Disposition::Handle(sig, info, act, saved);
    }
}

/// The line printed when a signal ends the app.
pub fn killed_line(sig: usize) -> alloc::string::String {
    alloc::format!(
        "app: killed by {} (exit status {})",
        name(sig),
        128 + sig as u32 % 128
    )
}

// ---- system calls ----

crate::syscall_table! {
    pub static ENTRIES: [dyn Ctx] = {
        kill(Int, Int) => sys_kill;
        tkill(Int, Int) => sys_tkill;
        tgkill(Int, Int, Int) => sys_tgkill;
        rt_sigpending(Hex, Size) => sys_rt_sigpending;
        rt_sigsuspend(Hex, Size) => sys_rt_sigsuspend;
        sigaltstack(Hex, Hex) => sys_sigaltstack;
        rt_sigreturn() => sys_rt_sigreturn;
    }
}

fn task(ctx: &Cx) -> KResult<&Task> {
    ctx.task().ok_or(Errno::ENOSYS)
}

fn thread(ctx: &Cx) -> KResult<&ThreadState> {
    ctx.thread().ok_or(Errno::ENOSYS)
}

fn signal_arg(v: usize) -> KResult<usize> {
    let sig = v as u32 as usize;
    if sig > NSIG {
        Err(Errno::EINVAL)
    } else {
        Ok(sig)
    }
}

fn send(ctx: &Cx, sig: usize, code: i32) -> KResult<usize> {
    if sig != 0 {
        let t = task(ctx)?;
        let info = Info {
            signo: sig as i32,
            code,
            pid: t.pid(),
            uid: 0,
            addr: 0,
        };
        queue(t, thread(ctx)?, info);
    }
    Ok(0)
}

/// `kill(pid, sig)`: the app itself (its pid, 0 = its group, -1 = all it
/// may signal); any other pid is ESRCH.
pub fn sys_kill(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let pid = a[0] as u32 as i32;
    let sig = signal_arg(a[1])?;
    let me = task(ctx)?.pid() as i32;
    if pid != me && pid != 0 && pid != -1 && pid != -me {
        return Err(Errno::ESRCH);
    }
    send(ctx, sig, SI_USER)
}

/// `tkill(tid, sig)`: the calling thread only, for now.
pub fn sys_tkill(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let tid = a[0] as u32 as i32;
    let sig = signal_arg(a[1])?;
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tid as u32 != thread(ctx)?.tid() {
        return Err(Errno::ESRCH);
    }
    send(ctx, sig, SI_TKILL)
}

/// `tgkill(tgid, tid, sig)`.
pub fn sys_tgkill(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (tgid, tid) = (a[0] as u32 as i32, a[1] as u32 as i32);
    let sig = signal_arg(a[2])?;
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tgid as u32 != task(ctx)?.pid() || tid as u32 != thread(ctx)?.tid() {
        return Err(Errno::ESRCH);
    }
    send(ctx, sig, SI_TKILL)
}

const SIGSET_SIZE: usize = 8;

/// `rt_sigpending`: the blocked signals that are pending.
pub fn sys_rt_sigpending(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[1] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let th = thread(ctx)?;
    let set = pending(th.tid()) & th.sigmask();
    ctx.copy_out(a[0], &set.to_le_bytes())?;
    Ok(0)
}

/// `rt_sigsuspend(mask)`: waits with `mask` until a signal is deliverable;
/// always EINTR. The old mask comes back when that signal's handler
/// returns (it is saved in the frame, see [`take`]).
pub fn sys_rt_sigsuspend(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[1] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut w = [0u8; 8];
    ctx.copy_in(a[0], &mut w)?;
    let (task, th) = (task(ctx)?, thread(ctx)?);
    let old = th.sigmask();
    th.set_sigmask(u64::from_le_bytes(w));
    let services = task.services();
    loop {
        // Anything that would only be ignored is dropped by `take` later;
        // a pending ignored signal does not end the wait on Linux either,
        // but they are never queued unblocked (see `queue`).
        if next(pending(th.tid()), th.sigmask()).is_some() {
            break;
        }
        services.sleep_until(services.monotonic_ns() + 1_000_000);
    }
    with(th.tid(), |t| t.suspend_mask = Some(old));
    Err(Errno::EINTR)
}

/// `sigaltstack(ss, old_ss)`. EPERM while running on it.
pub fn sys_sigaltstack(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    sigaltstack(ctx, a[0], a[1], None)
}

/// `sigaltstack` with the caller's stack pointer when known (the target
/// glue does not pass it yet, so "on the stack" is not detected there).
pub fn sigaltstack(ctx: &mut Cx, ss: usize, old: usize, sp: Option<u64>) -> KResult<usize> {
    const MINSIGSTKSZ: u64 = if cfg!(target_arch = "aarch64") {
        5120
    } else {
        2048
    };
    let tid = thread(ctx)?.tid();
    let cur = with(tid, |t| t.alt);
    let on = sp.is_some_and(|sp| cur.contains(sp));
    if old != 0 {
        ctx.copy_out(old, &cur.bytes(sp.unwrap_or(0)))?;
    }
    if ss != 0 {
        let mut b = [0u8; 24];
        ctx.copy_in(ss, &mut b)?;
        if on {
            return Err(Errno::EPERM);
        }
        let flags = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let new = if flags & SS_DISABLE != 0 {
            AltStack::DISABLED
        } else {
            if flags & !(SS_ONSTACK | SS_AUTODISARM) != 0 {
                return Err(Errno::EINVAL);
            }
            let size = get(&b, 16);
            if size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            AltStack {
                sp: get(&b, 0),
                size,
                flags: flags & SS_AUTODISARM,
            }
        };
        with(tid, |t| t.alt = new);
    }
    Ok(0)
}

/// `rt_sigreturn`: marks the thread; [`deliver`] restores the frame on
/// the way out (the return value is overwritten by the restored RAX/x0).
pub fn sys_rt_sigreturn(ctx: &mut Cx, _: &Args) -> KResult<usize> {
    let tid = thread(ctx)?.tid();
    with(tid, |t| t.sigreturn = true);
    mark_in_use();
    Ok(0)
}

/// Takes the `rt_sigreturn` mark of `tid`.
pub fn take_sigreturn(tid: u32) -> bool {
    with(tid, |t| core::mem::take(&mut t.sigreturn))
}

/// The alternate stack of `tid` (for the frame builder).
pub fn altstack(tid: u32) -> AltStack {
    with(tid, |t| t.alt)
}

/// The `Info` and x86 `sigcontext` fault words of a user fault.
pub fn fault_info(arch: Arch, f: &skiff_arch_api::Fault) -> (usize, Info, FaultInfo) {
    use super::crash::{classify, Signal};
    let (sig, _) = classify(arch, f);
    let (code, addr) = match sig {
        Signal::Sigsegv => (if f.protection { 2 } else { 1 }, f.addr as u64),
        Signal::Sigbus => (1, f.addr as u64),
        Signal::Sigill | Signal::Sigfpe | Signal::Sigtrap => (1, f.pc as u64),
    };
    let (trapno, err) = match arch {
        Arch::X86_64 => (f.syndrome >> 32, f.syndrome & 0xffff_ffff),
        Arch::Aarch64 => (0, f.syndrome),
    };
    let info = Info {
        signo: sig as i32,
        code,
        pid: 0,
        uid: 0,
        addr,
    };
    (
        sig as usize,
        info,
        FaultInfo {
            trapno,
            err,
            addr: f.addr as u64,
        },
    )
}

#[cfg(target_os = "none")]
pub use target::{deliver, deliver_to, on_fault, on_fault_to};

#[cfg(target_os = "none")]
mod target {
    //! The target glue: `UserRegs` ⇄ sigcontext words, user memory through
    //! `uaccess`, the app's main thread as the receiver.
    use super::*;
    use crate::arch::user::UserRegs;
    use crate::linux::{table::ARCH, uaccess};

    #[cfg(target_arch = "x86_64")]
    fn words(r: &UserRegs) -> Vec<u64> {
        vec![
            r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx,
            r.rdx, r.rax, r.rcx, r.rsp, r.rip, r.rflags,
        ]
    }

    #[cfg(target_arch = "x86_64")]
    fn set_words(r: &mut UserRegs, w: &[u64]) {
        [
            r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx,
            r.rdx, r.rax, r.rcx, r.rsp, r.rip, r.rflags,
        ] = w[..18].try_into().unwrap_or([0; 18]);
    }

    #[cfg(target_arch = "aarch64")]
    fn words(r: &UserRegs) -> Vec<u64> {
        let mut w = r.x.to_vec();
        w.extend_from_slice(&[r.sp, r.pc, r.pstate]);
        w
    }

    #[cfg(target_arch = "aarch64")]
    fn set_words(r: &mut UserRegs, w: &[u64]) {
        r.x.copy_from_slice(&w[..31]);
        r.sp = w[31];
        r.pc = w[32];
        r.pstate = w[33];
    }

    /// The return address of a handler: `sa_restorer` with `SA_RESTORER`
    /// (glibc's x86_64 always sets it), else, on aarch64 where Linux uses
    /// its vDSO's `__kernel_rt_sigreturn`, a page `[sigpage]` mapped
    /// read+execute on first use holding `mov x8, #139; svc #0`.
    fn restorer(task: &Task, act: &Action) -> Option<u64> {
        if act.flags & SA_RESTORER != 0 || cfg!(target_arch = "x86_64") {
            return Some(act.restorer);
        }
        static PAGE: spin::Once<Option<u64>> = spin::Once::new();
        *PAGE.call_once(|| {
            use crate::mm::vma::{Backing, Placement, Prot, Vma};
            let code = [0xd280_1168u32.to_le_bytes(), 0xd400_0001u32.to_le_bytes()].concat();
            let tmpl = Vma {
                range: 0..0,
                prot: Prot::RX,
                shared: false,
                backing: Backing::Anonymous,
                name: Some(alloc::string::String::from("[sigpage]")),
            };
            task.memory()
                .map_filled(Placement::Hint(0), 4096, tmpl, 0, &code)
                .ok()
        })
    }

    fn die(task: &Task, sig: usize) {
        crate::println!("{}", killed_line(sig));
        task.services().exit_group(128 + sig as u8 % 128);
    }

    /// Builds the frame and points `regs` at the handler; false if the
    /// frame cannot be written (the caller kills with SIGSEGV).
    fn run_handler(
        task: &Task,
        thread: &ThreadState,
        regs: &mut UserRegs,
        info: &Info,
        act: &Action,
        saved_mask: u64,
        fault: &FaultInfo,
    ) -> bool {
        let sig = info.signo as usize;
        let alt = altstack(thread.tid());
        let Some(restorer) = restorer(task, act) else {
            return false;
        };
        let act = &Action { restorer, ..*act };
        let Some(f) = build_frame(ARCH, &words(regs), info, act, saved_mask, &alt, fault) else {
            return false;
        };
        if uaccess::copy_out(task.memory(), f.addr as usize, &f.bytes).is_err() {
            return false;
        }
        if act.flags & SA_ONSTACK != 0 && alt.flags & SS_AUTODISARM != 0 && alt.enabled() {
            with(thread.tid(), |t| t.alt = AltStack::DISABLED);
        }
        thread.set_sigmask(handler_mask(saved_mask, act, sig));
        set_words(regs, &f.regs);
        true
    }

    /// The return-to-user hook's part: finishes a pending `rt_sigreturn`,
    /// then delivers the next deliverable signal of the main thread.
    pub fn deliver(regs: &mut UserRegs) {
        let Some(app) = crate::linux::app::app() else {
            return;
        };
        deliver_to(&app.task, &app.main, regs);
    }

    /// [`deliver`] for a given thread.
    pub fn deliver_to(task: &Task, thread: &ThreadState, regs: &mut UserRegs) {
        if !in_use() {
            return;
        }
        if take_sigreturn(thread.tid()) {
            let size = frame_size(ARCH);
            let mut b = vec![0u8; size];
            let ok = frame_at_sigreturn(ARCH, regs.sp() as u64)
                .filter(|&a| uaccess::copy_in(task.memory(), a as usize, &mut b).is_ok())
                .and_then(|_| parse_frame(ARCH, &b));
            match ok {
                Some((w, mask)) => {
                    set_words(regs, &w);
                    thread.set_sigmask(mask);
                }
                None => {
                    crate::println!("app: bad signal frame at sigreturn sp={:#x}", regs.sp());
                    die(task, SIGSEGV);
                    return;
                }
            }
        }
        match take(task, thread) {
            Disposition::None => {}
            Disposition::Terminate(sig) => die(task, sig),
            Disposition::Handle(sig, info, act, saved) => {
                if !run_handler(
                    task,
                    thread,
                    regs,
                    &info,
                    &act,
                    saved,
                    &FaultInfo::default(),
                ) {
                    crate::println!(
                        "app: cannot write the signal frame for {} sp={:#x}",
                        name(sig),
                        regs.sp()
                    );
                    die(task, SIGSEGV);
                }
            }
        }
    }

    /// A user fault paging could not fix: runs the app's handler for its
    /// signal (true: return to user mode, the handler runs), or false when
    /// the signal is blocked, ignored or has no handler (the caller prints
    /// the crash report and ends the app, as Linux forces the default).
    pub fn on_fault(regs: &mut UserRegs, fault: &skiff_arch_api::Fault) -> bool {
        let Some(app) = crate::linux::app::app() else {
            return false;
        };
        on_fault_to(&app.task, &app.main, regs, fault)
    }

    /// [`on_fault`] for a given thread.
    pub fn on_fault_to(
        task: &Task,
        thread: &ThreadState,
        regs: &mut UserRegs,
        fault: &skiff_arch_api::Fault,
    ) -> bool {
        let (sig, info, fi) = fault_info(ARCH, fault);
        let act = Action::parse(&task.action(sig));
        if !act.has_handler() || thread.sigmask() & bit(sig) != 0 {
            return false;
        }
        if act.flags & SA_RESETHAND != 0 {
            task.set_action(sig, Action::default().raw());
        }
        let saved = thread.sigmask();
        run_handler(task, thread, regs, &info, &act, saved, &fi)
    }
}

#[cfg(test)]
mod tests;
