//! Signal delivery: pending signals per thread and per process, the Linux
//! `rt_sigframe` of each arch with its FP/SIMD state (built on the user
//! stack when a handler runs, read back and checked by `rt_sigreturn`),
//! system-call restart, default actions, and the calls that send, wait for
//! and inspect signals (`kill`, `tkill`, `tgkill`, `rt_sigpending`,
//! `rt_sigsuspend`, `sigaltstack`, `rt_sigreturn`). Dispositions
//! (`rt_sigaction`) and the mask (`rt_sigprocmask`) are recorded by
//! [`super::misc`] in [`Task`] and [`ThreadState`]; this module reads them.
//!
//! * **Sending.** `tkill`/`tgkill` reach any thread of the app (registered
//!   at `clone`); `kill` makes the signal pending on the process, and any
//!   thread not blocking it takes it, the main thread first, then round
//!   robin (Linux's `complete_signal`). A signal that would only be
//!   ignored is dropped at once. The chosen thread's interrupt is raised
//!   (`sched::interrupt`), which ends an interruptible wait
//!   (`sync::wait_any(.., true, ..)`): futex waits, sleeps,
//!   `rt_sigsuspend`, pipe and poll waits answer `ERESTARTSYS` /
//!   `ERESTARTNOHAND`.
//! * **Delivery** happens on the way back to user mode ([`deliver_to`],
//!   from the return-to-user hook) and for synchronous faults
//!   ([`on_fault_to`]). First the interrupted call's result is settled
//!   ([`restart_decision`]: restart with the original arguments or
//!   EINTR), then a frame is built or the app ends (128 + signal). The
//!   interrupt stays raised only while a deliverable signal is left.
//!   `rt_sigreturn` only marks the thread; the restore happens in
//!   [`deliver_to`], which has the registers (handlers get only
//!   arguments).
//!
//! The frame builder works on arch-neutral register words in the order of
//! each arch's Linux `sigcontext` and on the FP state in the arch's format
//! ([`FpFrame`]), so the layouts are host-tested; the target glue
//! (`signal/target.rs`) converts `arch::user::UserRegs` and `arch::fpu`
//! state to and from them.
//!
//! Not done: stop signals are ignored (nothing could continue the one
//! app), no queued real-time signals (one pending instance per signal),
//! no `SA_RESTART` for restart-block calls (nanosleep, timed futex waits
//! restart with their whole original timeout when no handler runs), no
//! SVE/SME state.

use super::process::{SigAction, Task, ThreadState, NSIG};
use super::{Ctx, Cx};
use crate::errno::{Errno, KResult};
use crate::syscall::{Arch, Args};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
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

/// Linux's default for `sig`; core-dump signals terminate (no core
/// files). Stop signals, `SIGSTOP` included, are ignored (nothing could
/// continue the one app) and `SIGCONT` has nothing to continue.
pub fn default_action(sig: usize) -> DefaultAction {
    match sig {
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Ignore,
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

impl Info {
    /// No signal (a `const` default for the tables).
    pub const EMPTY: Info = Info {
        signo: 0,
        code: 0,
        pid: 0,
        uid: 0,
        addr: 0,
    };
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
    /// `uc_flags`: UC_FP_XSTATE (the fpstate is XSAVE with the magic
    /// trailer), UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS.
    pub const UC_FLAGS: usize = UC;
    pub const UC_FP_XSTATE: u64 = 1;
    pub const UC_SIGCONTEXT_SS: u64 = 2;
    pub const UC_STRICT_RESTORE_SS: u64 = 4;
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

pub mod fpx {
    //! The x86_64 signal frame's FP area (`uc_mcontext.fpstate`): an
    //! FXSAVE image, or with XSAVE the standard-format XSAVE image whose
    //! legacy `sw_reserved` bytes hold `struct _fpx_sw_bytes` and which is
    //! followed by `FP_XSTATE_MAGIC2` (arch/x86/kernel/fpu/signal.c).
    pub const MAGIC1: u32 = 0x4650_5853;
    pub const MAGIC2: u32 = 0x4650_5845;
    pub const MAGIC2_SIZE: usize = 4;
    /// `fxregs_state.sw_reserved`: magic1, extended_size, xfeatures,
    /// xstate_size, 7 words of padding.
    pub const SW_BYTES: usize = 464;
    pub const LEGACY_SIZE: usize = 512;
    /// XSTATE_BV in the XSAVE header right after the legacy region.
    pub const XSTATE_BV: usize = 512;
    pub const HEADER_SIZE: usize = 64;
    /// x87 | SSE: always set in a frame's XSTATE_BV (as Linux does).
    pub const FP_SSE: u64 = 3;
    /// The FP area is 64-byte aligned on the stack.
    pub const ALIGN: u64 = 64;
}

/// The FP/SIMD state of the interrupted code, in the arch's format.
#[derive(Debug, Clone, Copy)]
pub enum FpFrame<'a> {
    /// x86_64: the CPU's save image (`xsave`: standard XSAVE format for
    /// XCR0 = `features`; else FXSAVE, 512 bytes).
    X86 {
        image: &'a [u8],
        xsave: bool,
        features: u64,
    },
    /// aarch64: V0-V31, FPCR, FPSR, and for faults the ESR to report.
    A64 {
        v: &'a [u128; 32],
        fpcr: u64,
        fpsr: u64,
        esr: Option<u64>,
    },
}

/// The x86_64 frame's FP area for `image` (see [`fpx`]).
pub fn x86_fp_area(image: &[u8], xsave: bool, features: u64) -> Vec<u8> {
    let mut b = image.to_vec();
    if b.len() < fpx::LEGACY_SIZE {
        b.resize(fpx::LEGACY_SIZE, 0);
    }
    b[fpx::SW_BYTES..fpx::LEGACY_SIZE].fill(0);
    if !xsave {
        return b;
    }
    let size = b.len();
    let w32 = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    w32(&mut b, fpx::SW_BYTES, fpx::MAGIC1);
    w32(&mut b, fpx::SW_BYTES + 4, (size + fpx::MAGIC2_SIZE) as u32);
    b[fpx::SW_BYTES + 8..fpx::SW_BYTES + 16].copy_from_slice(&features.to_le_bytes());
    w32(&mut b, fpx::SW_BYTES + 16, size as u32);
    if size >= fpx::XSTATE_BV + 8 {
        let bv = get(&b, fpx::XSTATE_BV) | fpx::FP_SSE;
        put(&mut b, fpx::XSTATE_BV, bv);
    }
    b.extend_from_slice(&fpx::MAGIC2.to_le_bytes());
    b
}

/// How `rt_sigreturn` reads an x86_64 FP area, from its legacy region
/// (Linux's `check_xstate_in_sigframe`): `Some(n)` = an XSAVE image of
/// `n` bytes whose MAGIC2 trailer must be checked at `n`; `None` = the
/// legacy region alone ("fx only": bad or missing software bytes).
pub fn x86_fp_extent(legacy: &[u8], xsave: bool, size: usize) -> Option<usize> {
    if !xsave || legacy.len() < fpx::LEGACY_SIZE {
        return None;
    }
    let w32 = |at: usize| {
        u32::from_le_bytes([legacy[at], legacy[at + 1], legacy[at + 2], legacy[at + 3]])
    };
    let (magic1, extended, xstate) = (
        w32(fpx::SW_BYTES),
        w32(fpx::SW_BYTES + 4) as usize,
        w32(fpx::SW_BYTES + 16) as usize,
    );
    let min = fpx::LEGACY_SIZE + fpx::HEADER_SIZE;
    (magic1 == fpx::MAGIC1 && xstate >= min && xstate <= size && xstate <= extended)
        .then_some(xstate)
}

/// The CPU image (`size` bytes) `rt_sigreturn` loads from the user's FP
/// area `user` (as many bytes as [`x86_fp_extent`] said, plus the
/// trailer). Components the frame's `xfeatures` leave out, and everything
/// but x87/SSE in "fx only" mode, go back to their initial state. The arch
/// still checks MXCSR and the header before loading.
pub fn x86_fp_image(user: &[u8], xsave: bool, size: usize) -> Vec<u8> {
    let mut img = vec![0u8; size.max(fpx::LEGACY_SIZE)];
    let n = user.len().min(fpx::LEGACY_SIZE);
    img[..n].copy_from_slice(&user[..n]);
    if !xsave {
        img.truncate(fpx::LEGACY_SIZE);
        return img;
    }
    let full = x86_fp_extent(user, xsave, size).filter(|&x| {
        user.len() >= x + fpx::MAGIC2_SIZE
            && u32::from_le_bytes([user[x], user[x + 1], user[x + 2], user[x + 3]]) == fpx::MAGIC2
    });
    match full {
        Some(x) => {
            img[..x].copy_from_slice(&user[..x]);
            let features = get(user, fpx::SW_BYTES + 8);
            let bv = get(&img, fpx::XSTATE_BV) & features;
            put(&mut img, fpx::XSTATE_BV, bv);
        }
        None => put(&mut img, fpx::XSTATE_BV, fpx::FP_SSE),
    }
    img
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
    /// `struct fpsimd_context`: header {magic, size}, fpsr, fpcr, then
    /// `__uint128_t vregs[32]` at 16; 528 bytes.
    pub const FPSIMD_MAGIC: u32 = 0x4650_8001;
    pub const FPSIMD_SIZE: usize = 528;
    pub const FPSIMD_FPSR: usize = 8;
    pub const FPSIMD_FPCR: usize = 12;
    pub const FPSIMD_VREGS: usize = 16;
    /// `struct esr_context`: header, then the ESR; 16 bytes.
    pub const ESR_MAGIC: u32 = 0x4553_5201;
    pub const ESR_SIZE: usize = 16;
}

/// Why `rt_sigreturn` refused a frame (the thread gets SIGSEGV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// The frame or its FP area could not be read.
    Fault,
    /// A record of `__reserved` is malformed, unknown or missing.
    Records,
    /// The FP image would fault if loaded (x86_64 MXCSR or XSAVE header).
    FpImage,
}

/// aarch64 FP/SIMD registers from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fpsimd {
    pub v: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

fn w32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks the records of an aarch64 `__reserved` area as Linux's
/// `parse_user_sigframe` does: 16-byte aligned headers, sizes within the
/// area, exactly one `fpsimd_context` of its exact size, `esr_context`
/// ignored, anything else refused, a null record at the end.
pub fn a64_parse_reserved(r: &[u8]) -> Result<Fpsimd, BadFrame> {
    let limit = r.len();
    let mut off = 0usize;
    let mut fp = None;
    loop {
        if limit - off < 8 || !off.is_multiple_of(16) {
            return Err(BadFrame::Records);
        }
        let (magic, size) = (w32(r, off), w32(r, off + 4) as usize);
        if limit - off < size {
            return Err(BadFrame::Records);
        }
        match magic {
            0 if size == 0 => break,
            a64::FPSIMD_MAGIC if fp.is_none() && size == a64::FPSIMD_SIZE => {
                let rec = &r[off..off + size];
                let mut v = [0u128; 32];
                for (i, reg) in v.iter_mut().enumerate() {
                    let at = a64::FPSIMD_VREGS + i * 16;
                    let mut q = [0u8; 16];
                    q.copy_from_slice(&rec[at..at + 16]);
                    *reg = u128::from_le_bytes(q);
                }
                fp = Some(Fpsimd {
                    v,
                    fpsr: u64::from(w32(rec, a64::FPSIMD_FPSR)),
                    fpcr: u64::from(w32(rec, a64::FPSIMD_FPCR)),
                });
            }
            a64::ESR_MAGIC if size >= 8 => {}
            _ => return Err(BadFrame::Records),
        }
        off += size;
    }
    fp.ok_or(BadFrame::Records)
}

/// The `__reserved` records for `fp`: `fpsimd_context`, `esr_context` for
/// faults, the null record.
fn a64_records(b: &mut [u8], v: &[u128; 32], fpcr: u64, fpsr: u64, esr: Option<u64>) {
    let at = a64::SC_RESERVED;
    b[at..at + 4].copy_from_slice(&a64::FPSIMD_MAGIC.to_le_bytes());
    b[at + 4..at + 8].copy_from_slice(&(a64::FPSIMD_SIZE as u32).to_le_bytes());
    b[at + 8..at + 12].copy_from_slice(&(fpsr as u32).to_le_bytes());
    b[at + 12..at + 16].copy_from_slice(&(fpcr as u32).to_le_bytes());
    for (i, reg) in v.iter().enumerate() {
        let o = at + a64::FPSIMD_VREGS + i * 16;
        b[o..o + 16].copy_from_slice(&reg.to_le_bytes());
    }
    let mut next = at + a64::FPSIMD_SIZE;
    if let Some(esr) = esr {
        b[next..next + 4].copy_from_slice(&a64::ESR_MAGIC.to_le_bytes());
        b[next + 4..next + 8].copy_from_slice(&(a64::ESR_SIZE as u32).to_le_bytes());
        put(b, next + 8, esr);
        next += a64::ESR_SIZE;
    }
    // The null record {0, 0}: the buffer is zeroed.
    debug_assert!(get(b, next) == 0);
}

/// Where the frame goes and what it holds, for one delivery.
#[derive(Debug, Clone)]
pub struct Frame {
    /// User address of the frame (the handler's stack pointer).
    pub addr: u64,
    /// What goes at `addr`: the frame and (x86_64) the FP area above it.
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
/// `regs` (words as [`greg_count`]) and FP state `fp` (of `arch`'s kind),
/// with `old_mask` to restore on return. `None` when no address for it
/// fits (sp wraps) or `fp` is of the other arch.
#[allow(clippy::too_many_arguments)]
pub fn build_frame(
    arch: Arch,
    regs: &[u64],
    info: &Info,
    act: &Action,
    old_mask: u64,
    alt: &AltStack,
    fault: &FaultInfo,
    fp: &FpFrame,
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
            let FpFrame::X86 {
                image,
                xsave,
                features,
            } = *fp
            else {
                return None;
            };
            let area = x86_fp_area(image, xsave, features);
            let fp_at = below.checked_sub(area.len() as u64)? & !(fpx::ALIGN - 1);
            let addr = (fp_at.checked_sub(x86::SIZE as u64)? & !15).checked_sub(8)?;
            let fp_off = (fp_at - addr) as usize;
            let mut b = vec![0u8; fp_off + area.len()];
            b[fp_off..].copy_from_slice(&area);
            let uc_flags = if xsave { x86::UC_FP_XSTATE } else { 0 }
                | x86::UC_SIGCONTEXT_SS
                | x86::UC_STRICT_RESTORE_SS;
            put(&mut b, x86::UC_FLAGS, uc_flags);
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
            put(&mut b, x86::SC_FPSTATE, fp_at);
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
            let FpFrame::A64 { v, fpcr, fpsr, esr } = *fp else {
                return None;
            };
            a64_records(&mut b, v, fpcr, fpsr, esr);
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

// ---- restarting system calls ----

/// What becomes of a system call's result on the way back to user mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// The result stands.
    Keep,
    /// The call is issued again with its original arguments.
    Again,
    /// The call returns EINTR.
    Eintr,
}

/// Linux's rule for a raw result `ret` when a handler with `flags` is
/// about to run (`Some`) or none runs (`None`): `ERESTARTSYS` restarts
/// unless a handler without `SA_RESTART` runs, `ERESTARTNOHAND` only when
/// no handler runs; both become EINTR otherwise.
pub fn restart_decision(ret: isize, handler: Option<u64>) -> Restart {
    let sys = Errno::ERESTARTSYS.as_ret();
    if ret != sys && ret != Errno::ERESTARTNOHAND.as_ret() {
        return Restart::Keep;
    }
    match handler {
        None => Restart::Again,
        Some(flags) if ret == sys && flags & SA_RESTART != 0 => Restart::Again,
        Some(_) => Restart::Eintr,
    }
}

// ---- signal state ----

/// What this module keeps per thread (by tid) beyond the mask.
#[derive(Clone)]
pub struct SigThread {
    /// Signals sent to this thread (`tkill`, `tgkill`, faults).
    pub pending: u64,
    pub info: [Info; NSIG],
    pub alt: AltStack,
    /// `rt_sigreturn` was called: restore from the frame before returning.
    pub sigreturn: bool,
    /// The mask to restore after the delivery that ends `rt_sigsuspend`.
    pub suspend_mask: Option<u64>,
    /// The thread's Linux state once [`register`]ed: senders read its mask.
    pub state: Option<Arc<ThreadState>>,
    /// The kernel thread running it, once it returned to user mode: what
    /// `sched::interrupt` pokes out of an interruptible wait.
    #[cfg(target_os = "none")]
    kthread: Option<Arc<crate::sched::thread::Thread>>,
}

impl Default for SigThread {
    fn default() -> Self {
        SigThread {
            pending: 0,
            info: [Info::EMPTY; NSIG],
            alt: AltStack::DISABLED,
            sigreturn: false,
            suspend_mask: None,
            state: None,
            #[cfg(target_os = "none")]
            kthread: None,
        }
    }
}

/// Everything signal delivery shares: the threads, and the signals sent
/// to the process (`kill`), pending until a thread that does not block
/// them takes one (Linux's `shared_pending`). One process per VM.
struct Signals {
    threads: BTreeMap<u32, SigThread>,
    shared: u64,
    shared_info: [Info; NSIG],
    /// The thread the last process signal was aimed at (round robin).
    last_target: u32,
}

/// A spin lock around short map operations, taken with interrupts off on
/// the target (the lock rule of docs/scheduler.md): a thread preempted
/// while holding it would make others spin.
static STATE: spin::Mutex<Signals> = spin::Mutex::new(Signals {
    threads: BTreeMap::new(),
    shared: 0,
    shared_info: [Info::EMPTY; NSIG],
    last_target: 0,
});

/// Set once any signal was queued or `rt_sigreturn` called: until then the
/// return-to-user path only registers the thread (no lock per syscall for
/// the many programs that never signal).
static IN_USE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn mark_in_use() {
    IN_USE.store(true, core::sync::atomic::Ordering::Release);
}

/// Whether delivery has anything to look at.
pub fn in_use() -> bool {
    IN_USE.load(core::sync::atomic::Ordering::Acquire)
}

fn locked<R>(f: impl FnOnce(&mut Signals) -> R) -> R {
    #[cfg(target_os = "none")]
    return crate::arch::cpu::without_interrupts(|| f(&mut STATE.lock()));
    #[cfg(not(target_os = "none"))]
    f(&mut STATE.lock())
}

fn with<R>(tid: u32, f: impl FnOnce(&mut SigThread) -> R) -> R {
    locked(|s| f(s.threads.entry(tid).or_default()))
}

/// Records a thread of the app (from `clone`, before it runs), so signals
/// can be aimed at it and its mask seen.
pub fn register(state: Arc<ThreadState>) {
    let tid = state.tid();
    with(tid, |t| t.state = Some(state));
}

/// Forgets a thread that exited.
pub fn forget(tid: u32) {
    locked(|s| s.threads.remove(&tid));
}

/// Whether `tid` is a live thread of the app as far as signals know.
pub fn exists(tid: u32) -> bool {
    locked(|s| s.threads.get(&tid).is_some_and(|t| t.state.is_some()))
}

/// Discards `sig` at once when it would only be ignored (Linux does so
/// unless the receiver blocks it: it may get a handler before unblocking).
fn discarded(task: &Task, sig: usize, blocked: bool) -> bool {
    !blocked && Action::parse(&task.action(sig)).ignores(sig)
}

/// Makes `info.signo` pending on thread `thread` (thread-directed), unless
/// it would only be ignored; interrupts the thread's wait if it does not
/// block the signal.
pub fn queue(task: &Task, thread: &ThreadState, info: Info) {
    queue_thread(task, thread.tid(), thread.sigmask(), info);
}

fn queue_thread(task: &Task, tid: u32, mask: u64, info: Info) {
    let sig = info.signo as usize;
    if !(1..=NSIG).contains(&sig) {
        return;
    }
    let blocked = mask & bit(sig) & !UNBLOCKABLE != 0;
    if discarded(task, sig, blocked) {
        return;
    }
    with(tid, |t| {
        if t.pending & bit(sig) == 0 {
            t.info[sig - 1] = info;
        }
        t.pending |= bit(sig);
    });
    mark_in_use();
    note_queued();
    if !blocked {
        interrupt(tid);
    }
}

/// Makes `info.signo` pending on the process (`kill`): any thread not
/// blocking it may take it. Interrupts one such thread, chosen as Linux's
/// `complete_signal` does: the main thread if it does not block the
/// signal, else the next one after the last chosen, in tid order.
pub fn queue_process(task: &Task, info: Info) {
    let sig = info.signo as usize;
    if !(1..=NSIG).contains(&sig) {
        return;
    }
    let leader = task.pid();
    let blocks = |t: &SigThread| {
        t.state
            .as_ref()
            .is_some_and(|s| s.sigmask() & bit(sig) & !UNBLOCKABLE != 0)
    };
    let leader_blocks = locked(|s| s.threads.get(&leader).is_some_and(blocks));
    if discarded(task, sig, leader_blocks) {
        return;
    }
    let target = locked(|s| {
        if s.shared & bit(sig) == 0 {
            s.shared_info[sig - 1] = info;
        }
        s.shared |= bit(sig);
        let wants = |t: &SigThread| t.state.is_some() && !blocks(t);
        if s.threads.get(&leader).is_some_and(wants) {
            return Some(leader);
        }
        let after = s.last_target;
        let pick = s
            .threads
            .range(after.saturating_add(1)..)
            .chain(s.threads.range(..=after))
            .find(|(_, t)| wants(t))
            .map(|(&tid, _)| tid);
        if let Some(t) = pick {
            s.last_target = t;
        }
        pick
    });
    mark_in_use();
    note_queued();
    if let Some(tid) = target {
        interrupt(tid);
    }
}

/// Woken whenever a signal becomes pending: what signalfd readers and
/// pollers wait on ([`super::files::signalfd`]).
pub static QUEUED: crate::fs::WaitQueue = crate::fs::WaitQueue::new();
static QUEUED_SEQ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn note_queued() {
    QUEUED_SEQ.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    QUEUED.wake_all();
}

/// How many signals were queued so far (an edge for epoll's EPOLLET).
pub fn queued_seq() -> u64 {
    QUEUED_SEQ.load(core::sync::atomic::Ordering::Acquire)
}

/// Takes the lowest pending signal of `set` for `tid`, its own first, then
/// the process's (what a signalfd read dequeues), with its info.
pub fn dequeue_from(tid: u32, set: u64) -> Option<Info> {
    let set = set & !UNBLOCKABLE;
    locked(|s| {
        if let Some(t) = s.threads.get_mut(&tid) {
            let mine = t.pending & set;
            if mine != 0 {
                let sig = mine.trailing_zeros() as usize + 1;
                t.pending &= !bit(sig);
                return Some(t.info[sig - 1]);
            }
        }
        let shared = s.shared & set;
        (shared != 0).then(|| {
            let sig = shared.trailing_zeros() as usize + 1;
            s.shared &= !bit(sig);
            s.shared_info[sig - 1]
        })
    })
}

/// The app thread running on this CPU (its tid), once it entered user
/// mode; None on the host and for kernel threads.
pub fn current_tid() -> Option<u32> {
    #[cfg(target_os = "none")]
    return u32::try_from(crate::sched::current().tag())
        .ok()
        .filter(|&t| t != 0);
    #[cfg(not(target_os = "none"))]
    None
}

/// Raises SIGPIPE on the calling thread, as Linux does when a write to a
/// pipe or socket fails with EPIPE (not for `MSG_NOSIGNAL` sends).
pub fn raise_sigpipe(task: &Task, thread: &ThreadState) {
    let info = Info {
        signo: SIGPIPE as i32,
        code: SI_USER,
        pid: task.pid(),
        uid: 0,
        addr: 0,
    };
    queue(task, thread, info);
}

/// `result`, after raising SIGPIPE for an EPIPE (the write calls' rule).
pub fn sigpipe_on_epipe(ctx: &(dyn Ctx + '_), result: KResult<usize>) -> KResult<usize> {
    if result == Err(Errno::EPIPE) {
        if let (Some(task), Some(thread)) = (ctx.task(), ctx.thread()) {
            raise_sigpipe(task, thread);
        }
    }
    result
}

/// Pokes thread `tid` out of an interruptible wait (target; nothing to do
/// on the host, where nothing waits).
fn interrupt(tid: u32) {
    #[cfg(target_os = "none")]
    if let Some(k) = with(tid, |t| t.kthread.clone()) {
        crate::sched::interrupt(&k);
    }
    #[cfg(not(target_os = "none"))]
    let _ = tid;
}

/// Bits pending on `tid`: its own and the process's.
pub fn pending(tid: u32) -> u64 {
    locked(|s| s.threads.get(&tid).map_or(0, |t| t.pending) | s.shared)
}

/// Whether a signal not in `mask` is pending on `tid` (or the process).
pub fn deliverable(tid: u32, mask: u64) -> bool {
    next(pending(tid), mask).is_some()
}

/// What to do for one pending signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    None,
    Terminate(usize),
    Handle(usize, Info, Action, u64),
}

/// Takes the next deliverable signal of `thread` (its own first, then
/// the process's, as Linux's `dequeue_signal`) and decides: ignore (drops
/// it, looks further), terminate, or run the handler (the action is reset
/// for `SA_RESETHAND`). The last field is the mask to save.
pub fn take(task: &Task, thread: &ThreadState) -> Disposition {
    let tid = thread.tid();
    loop {
        let mask = thread.sigmask();
        let Some((sig, info)) = locked(|s| {
            let t = s.threads.entry(tid).or_default();
            if let Some(sig) = next(t.pending, mask) {
                t.pending &= !bit(sig);
                return Some((sig, t.info[sig - 1]));
            }
            let sig = next(s.shared, mask)?;
            s.shared &= !bit(sig);
            Some((sig, s.shared_info[sig - 1]))
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

fn sender_info(ctx: &Cx, sig: usize, code: i32) -> KResult<Info> {
    Ok(Info {
        signo: sig as i32,
        code,
        pid: task(ctx)?.pid(),
        uid: 0,
        addr: 0,
    })
}

/// `kill(pid, sig)`: the app itself (its pid, 0 = its group, -1 = all it
/// may signal), process-directed; any other pid is ESRCH.
pub fn sys_kill(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let pid = a[0] as u32 as i32;
    let sig = signal_arg(a[1])?;
    let me = task(ctx)?.pid() as i32;
    if pid != me && pid != 0 && pid != -1 && pid != -me {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        let info = sender_info(ctx, sig, SI_USER)?;
        queue_process(task(ctx)?, info);
    }
    Ok(0)
}

/// Sends `sig` to thread `tid` of the app: the caller, or any registered
/// thread (ESRCH for others).
fn send_to_thread(ctx: &mut Cx, tid: u32, sig: usize) -> KResult<usize> {
    let me = thread(ctx)?;
    let mask = if tid == me.tid() {
        me.sigmask()
    } else {
        let state = with(tid, |t| t.state.clone());
        match state {
            Some(s) => s.sigmask(),
            None => {
                forget_if_empty(tid);
                return Err(Errno::ESRCH);
            }
        }
    };
    if sig != 0 {
        let info = sender_info(ctx, sig, SI_TKILL)?;
        queue_thread(task(ctx)?, tid, mask, info);
    }
    Ok(0)
}

/// Drops the entry a lookup of an unknown tid created.
fn forget_if_empty(tid: u32) {
    locked(|s| {
        if s.threads
            .get(&tid)
            .is_some_and(|t| t.state.is_none() && t.pending == 0)
        {
            s.threads.remove(&tid);
        }
    });
}

/// `tkill(tid, sig)`.
pub fn sys_tkill(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let tid = a[0] as u32 as i32;
    let sig = signal_arg(a[1])?;
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    send_to_thread(ctx, tid as u32, sig)
}

/// `tgkill(tgid, tid, sig)`.
pub fn sys_tgkill(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (tgid, tid) = (a[0] as u32 as i32, a[1] as u32 as i32);
    let sig = signal_arg(a[2])?;
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tgid as u32 != task(ctx)?.pid() {
        return Err(Errno::ESRCH);
    }
    send_to_thread(ctx, tid as u32, sig)
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

/// `rt_sigsuspend(mask)`: waits with `mask` until a signal is deliverable
/// (an interruptible wait, no polling), then `ERESTARTNOHAND`: a handler
/// runs and the call returns EINTR, with the old mask saved in its frame
/// (see [`take`]); if none runs after all (the signal got ignored), the
/// old mask comes back and the call is issued again, as on Linux.
pub fn sys_rt_sigsuspend(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[1] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut w = [0u8; 8];
    ctx.copy_in(a[0], &mut w)?;
    let th = thread(ctx)?;
    let tid = th.tid();
    // A restarted call keeps the mask from before the first one.
    let old = with(tid, |t| t.suspend_mask.take()).unwrap_or_else(|| th.sigmask());
    th.set_sigmask(u64::from_le_bytes(w));
    with(tid, |t| t.suspend_mask = Some(old));
    wait_for_signal(th);
    Err(Errno::ERESTARTNOHAND)
}

/// Blocks until a signal is deliverable to `th` (target); returns at once
/// on the host.
fn wait_for_signal(th: &ThreadState) {
    #[cfg(target_os = "none")]
    {
        let tid = th.tid();
        refresh_interrupt(tid, th.sigmask());
        let _ = crate::sync::wait_any(&[], None, true, || deliverable(tid, th.sigmask()));
    }
    #[cfg(not(target_os = "none"))]
    let _ = th;
}

/// Sleeps until `deadline_ns` (monotonic) unless a signal for the thread
/// interrupts it first: false when interrupted (the caller returns
/// `ERESTART*`). The host fakes only sleep.
pub fn sleep_until(task: &Task, deadline_ns: u64) -> bool {
    #[cfg(target_os = "none")]
    {
        let _ = task;
        crate::sync::wait_any(&[], Some(deadline_ns), true, || false)
            != crate::sync::Wake::Interrupted
    }
    #[cfg(not(target_os = "none"))]
    {
        task.services().sleep_until(deadline_ns);
        true
    }
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
use target::refresh_interrupt;

#[cfg(target_os = "none")]
mod target;

#[cfg(test)]
mod tests;
