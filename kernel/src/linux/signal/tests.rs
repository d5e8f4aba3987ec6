//! Host tests: frame offsets against Linux's headers (numbers checked with
//! `offsetof` on x86_64 glibc and arm64 kernel uapi headers), mask
//! arithmetic, default actions, the calls on a fake process.

use super::*;
use crate::linux::process::fake::FakeCtx;

#[test]
fn x86_64_frame_offsets_match_linux() {
    // struct rt_sigframe { char *pretcode; struct ucontext uc; siginfo info; }
    assert_eq!(x86::UC, 8);
    // ucontext: uc_flags 0, uc_link 8, uc_stack 16, uc_mcontext 40.
    assert_eq!(x86::UC_STACK - x86::UC, 16);
    assert_eq!(x86::UC_MCONTEXT - x86::UC, 40);
    // sigcontext: rip at 128, eflags 136, cs 144, err 152, trapno 160,
    // oldmask 168, cr2 176, fpstate 184; 256 bytes.
    assert_eq!(x86::SC_CSGSFSSS - x86::UC_MCONTEXT, 144);
    assert_eq!(x86::SC_ERR - x86::UC_MCONTEXT, 152);
    assert_eq!(x86::SC_TRAPNO - x86::UC_MCONTEXT, 160);
    assert_eq!(x86::SC_OLDMASK - x86::UC_MCONTEXT, 168);
    assert_eq!(x86::SC_CR2 - x86::UC_MCONTEXT, 176);
    assert_eq!(x86::SC_FPSTATE - x86::UC_MCONTEXT, 184);
    // Kernel ucontext: uc_sigmask at 296, 304 bytes; siginfo after it.
    assert_eq!(x86::UC_SIGMASK - x86::UC, 296);
    assert_eq!(x86::INFO, 312);
    assert_eq!(x86::SIZE, 440);
}

#[test]
fn aarch64_frame_offsets_match_linux() {
    assert_eq!(a64::UC, 128);
    // ucontext: uc_flags 0, uc_link 8, uc_stack 16, uc_sigmask 40,
    // uc_mcontext 176 (16-aligned after the 128-byte sigset pad).
    assert_eq!(a64::UC_STACK - a64::UC, 16);
    assert_eq!(a64::UC_SIGMASK - a64::UC, 40);
    assert_eq!(a64::UC_MCONTEXT - a64::UC, 176);
    // sigcontext: fault_address 0, regs 8, sp 256, pc 264, pstate 272,
    // __reserved 288 (4096 bytes).
    assert_eq!(a64::SC_REGS - a64::UC_MCONTEXT, 8);
    assert_eq!(a64::SC_REGS + 31 * 8 - a64::UC_MCONTEXT, 256);
    assert_eq!(a64::SC_RESERVED - a64::UC_MCONTEXT, 288);
    assert_eq!(a64::UCONTEXT_SIZE, 4560);
    assert_eq!(a64::SIZE % 16, 0);
}

#[test]
fn siginfo_fields() {
    let i = Info {
        signo: 10,
        code: SI_USER,
        pid: 1,
        uid: 0,
        addr: 0,
    };
    let b = i.bytes();
    assert_eq!(&b[0..4], &10i32.to_le_bytes());
    assert_eq!(&b[8..12], &0i32.to_le_bytes());
    assert_eq!(&b[16..20], &1u32.to_le_bytes());
    let f = Info {
        signo: 11,
        code: 1,
        pid: 0,
        uid: 0,
        addr: 0xdead_beef,
    };
    assert_eq!(&f.bytes()[16..24], &0xdead_beefu64.to_le_bytes());
}

#[test]
fn masks_and_choice() {
    let act = Action {
        handler: 0x1000,
        flags: 0,
        restorer: 0,
        mask: bit(SIGUSR2),
    };
    assert_eq!(handler_mask(0, &act, SIGUSR1), bit(SIGUSR1) | bit(SIGUSR2));
    let nodefer = Action {
        flags: SA_NODEFER,
        ..act
    };
    assert_eq!(handler_mask(0, &nodefer, SIGUSR1), bit(SIGUSR2));
    assert_eq!(handler_mask(u64::MAX, &act, SIGUSR1) & UNBLOCKABLE, 0);
    // Faults first, then the lowest number; blocked ones wait; KILL never.
    assert_eq!(
        next(bit(SIGUSR1) | bit(SIGSEGV) | bit(SIGINT), 0),
        Some(SIGSEGV)
    );
    assert_eq!(next(bit(SIGUSR1) | bit(SIGINT), 0), Some(SIGINT));
    assert_eq!(next(bit(SIGUSR1), bit(SIGUSR1)), None);
    assert_eq!(next(bit(SIGKILL), u64::MAX), Some(SIGKILL));
    assert_eq!(next(0, 0), None);
}

#[test]
fn default_actions() {
    for s in [SIGCHLD, SIGURG, SIGWINCH, SIGCONT] {
        assert_eq!(default_action(s), DefaultAction::Ignore, "{s}");
    }
    for s in [
        SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGSEGV, SIGKILL, SIGABRT, 40,
    ] {
        assert_eq!(default_action(s), DefaultAction::Terminate, "{s}");
    }
    assert_eq!(
        killed_line(SIGUSR1),
        "app: killed by SIGUSR1 (exit status 138)"
    );
    let ign = Action {
        handler: 1,
        ..Action::default()
    };
    assert!(ign.ignores(SIGTERM));
    assert!(Action::default().ignores(SIGCHLD));
    assert!(!Action::default().ignores(SIGTERM));
}

fn regs(arch: Arch) -> Vec<u64> {
    (0..greg_count(arch) as u64).map(|i| 0x100 + i).collect()
}

#[test]
fn x86_64_frame_roundtrip_and_handler_registers() {
    let mut r = regs(Arch::X86_64);
    r[15] = 0x7fff_0000_1238; // rsp
    r[16] = 0x40_1000; // rip
    r[17] = 0x202 | 0x400; // eflags with DF
    let act = Action {
        handler: 0x40_2000,
        flags: SA_SIGINFO | SA_RESTORER,
        restorer: 0x40_3000,
        mask: 0,
    };
    let info = Info {
        signo: 10,
        code: SI_TKILL,
        pid: 1,
        ..Info::default()
    };
    let alt = AltStack::DISABLED;
    let f = build_frame(
        Arch::X86_64,
        &r,
        &info,
        &act,
        0x55,
        &alt,
        &FaultInfo::default(),
    )
    .unwrap();
    // Below the red zone, and entered as if by a call: (rsp + 8) % 16 == 0.
    assert!(f.addr + x86::SIZE as u64 <= 0x7fff_0000_1238 - 128);
    assert_eq!((f.addr + 8) % 16, 0);
    assert_eq!(get(&f.bytes, 0), 0x40_3000);
    assert_eq!(f.regs[16], 0x40_2000);
    assert_eq!(f.regs[15], f.addr);
    assert_eq!(f.regs[8], 10); // rdi
    assert_eq!(f.regs[9], f.addr + 312); // rsi = &info
    assert_eq!(f.regs[12], f.addr + 8); // rdx = &uc
    assert_eq!(f.regs[17] & 0x400, 0);
    // sigreturn after `ret` popped pretcode: sp = frame + 8.
    let at = frame_at_sigreturn(Arch::X86_64, f.addr + 8).unwrap();
    assert_eq!(at, f.addr);
    let (back, mask) = parse_frame(Arch::X86_64, &f.bytes).unwrap();
    assert_eq!(back, r);
    assert_eq!(mask, 0x55);
}

#[test]
fn aarch64_frame_roundtrip_altstack_and_record() {
    let mut r = regs(Arch::Aarch64);
    r[31] = 0x7fff_0000_1000;
    let act = Action {
        handler: 0x40_2000,
        flags: SA_SIGINFO | SA_ONSTACK | SA_RESTORER,
        restorer: 0x40_3000,
        mask: 0,
    };
    let alt = AltStack {
        sp: 0x5000_0000,
        size: 0x10000,
        flags: 0,
    };
    let info = Info {
        signo: 11,
        code: 1,
        addr: 0x10,
        ..Info::default()
    };
    let fi = FaultInfo {
        addr: 0x10,
        ..FaultInfo::default()
    };
    let f = build_frame(Arch::Aarch64, &r, &info, &act, bit(2), &alt, &fi).unwrap();
    assert!(alt.contains(f.addr + 1));
    assert_eq!(f.addr % 16, 0);
    assert_eq!(f.regs[0], 11);
    assert_eq!(f.regs[1], f.addr);
    assert_eq!(f.regs[2], f.addr + 128);
    assert_eq!(f.regs[30], 0x40_3000);
    assert_eq!(f.regs[31], f.addr);
    assert_eq!(f.regs[32], 0x40_2000);
    assert_eq!(f.regs[29], f.addr + a64::RECORD as u64);
    assert_eq!(get(&f.bytes, a64::RECORD), r[29]);
    assert_eq!(get(&f.bytes, a64::SC_FAULT_ADDRESS), 0x10);
    // The null record terminates __reserved.
    assert_eq!(get(&f.bytes, a64::SC_RESERVED), 0);
    // uc_stack says where the alternate stack is.
    assert_eq!(get(&f.bytes, a64::UC_STACK), 0x5000_0000);
    assert_eq!(frame_at_sigreturn(Arch::Aarch64, f.addr), Some(f.addr));
    assert_eq!(frame_at_sigreturn(Arch::Aarch64, f.addr + 8), None);
    let (back, mask) = parse_frame(Arch::Aarch64, &f.bytes).unwrap();
    assert_eq!(back, r);
    assert_eq!(mask, bit(2));
}

#[test]
fn sigreturn_never_restores_unblockable_mask() {
    let mut b = vec![0u8; x86::SIZE];
    put(&mut b, x86::UC_SIGMASK, u64::MAX);
    assert_eq!(parse_frame(Arch::X86_64, &b).unwrap().1, !UNBLOCKABLE);
    assert!(parse_frame(Arch::X86_64, &b[..100]).is_none());
}

fn args(v: &[usize]) -> Args {
    let mut a = [0usize; 6];
    a[..v.len()].copy_from_slice(v);
    a
}

#[test]
fn kill_queues_handles_ignores_and_terminates() {
    // Tests share the per-tid table: use a tid no other test uses.
    let mut ctx = FakeCtx::new();
    ctx.thread = ThreadState::new(7001);
    let c: &mut Cx = &mut ctx;
    assert_eq!(sys_kill(c, &args(&[2, SIGUSR1])), Err(Errno::ESRCH));
    assert_eq!(sys_kill(c, &args(&[1, 65])), Err(Errno::EINVAL));
    assert_eq!(sys_tkill(c, &args(&[7002, SIGUSR1])), Err(Errno::ESRCH));
    assert_eq!(sys_tgkill(c, &args(&[1, 7001, 0])), Ok(0));
    // Default SIGCHLD is discarded at once.
    assert_eq!(sys_kill(c, &args(&[1, SIGCHLD])), Ok(0));
    assert_eq!(pending(7001), 0);
    // A blocked handled signal waits and shows in rt_sigpending.
    let h = Action {
        handler: 0x1234,
        flags: SA_RESETHAND,
        ..Action::default()
    };
    c.task().unwrap().set_action(SIGUSR1, h.raw());
    c.thread().unwrap().set_sigmask(bit(SIGUSR1));
    assert_eq!(sys_kill(c, &args(&[1, SIGUSR1])), Ok(0));
    let (task, th) = (c.task().unwrap(), c.thread().unwrap());
    assert_eq!(take(task, th), Disposition::None);
    th.set_sigmask(0);
    match take(task, th) {
        Disposition::Handle(sig, info, act, saved) => {
            assert_eq!(sig, SIGUSR1);
            assert_eq!((info.code, info.pid), (SI_USER, 1));
            assert_eq!(act.handler, 0x1234);
            assert_eq!(saved, 0);
        }
        d => panic!("{d:?}"),
    }
    // SA_RESETHAND: the next one takes the default and terminates.
    assert_eq!(Action::parse(&task.action(SIGUSR1)).handler, 0);
    assert_eq!(sys_tkill(c, &args(&[7001, SIGUSR1])), Ok(0));
    let (task, th) = (c.task().unwrap(), c.thread().unwrap());
    assert_eq!(take(task, th), Disposition::Terminate(SIGUSR1));
    forget(7001);
}

#[test]
fn sigaltstack_and_sigpending_calls() {
    let mut ctx = FakeCtx::new();
    ctx.thread = ThreadState::new(7101);
    let buf = ctx.scratch(4096) as usize;
    let c: &mut Cx = &mut ctx;
    // Query: disabled.
    assert_eq!(sys_sigaltstack(c, &args(&[0, buf])), Ok(0));
    let mut b = [0u8; 24];
    c.copy_in(buf, &mut b).unwrap();
    assert_eq!(u32::from_le_bytes([b[8], b[9], b[10], b[11]]), SS_DISABLE);
    // Too small, then a real one.
    let mut ss = [0u8; 24];
    ss[0..8].copy_from_slice(&0x5000_0000u64.to_le_bytes());
    ss[16..24].copy_from_slice(&1024u64.to_le_bytes());
    c.copy_out(buf, &ss).unwrap();
    assert_eq!(sys_sigaltstack(c, &args(&[buf, 0])), Err(Errno::ENOMEM));
    ss[16..24].copy_from_slice(&0x10000u64.to_le_bytes());
    c.copy_out(buf, &ss).unwrap();
    assert_eq!(sys_sigaltstack(c, &args(&[buf, 0])), Ok(0));
    assert_eq!(altstack(7101).sp, 0x5000_0000);
    // EPERM while on it.
    assert_eq!(sigaltstack(c, buf, 0, Some(0x5000_8000)), Err(Errno::EPERM));
    // rt_sigpending: blocked and pending.
    assert_eq!(sys_rt_sigpending(c, &args(&[buf, 4])), Err(Errno::EINVAL));
    c.thread().unwrap().set_sigmask(bit(SIGTERM));
    assert_eq!(sys_kill(c, &args(&[0, SIGTERM])), Ok(0));
    assert_eq!(sys_rt_sigpending(c, &args(&[buf, 8])), Ok(0));
    let mut w = [0u8; 8];
    c.copy_in(buf, &mut w).unwrap();
    assert_eq!(u64::from_le_bytes(w), bit(SIGTERM));
    // rt_sigreturn only marks.
    assert_eq!(sys_rt_sigreturn(c, &args(&[])), Ok(0));
    assert!(take_sigreturn(7101));
    assert!(!take_sigreturn(7101));
    forget(7101);
}
