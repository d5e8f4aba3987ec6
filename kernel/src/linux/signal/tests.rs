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
    let image = fxsave_image();
    let fp = FpFrame::X86 {
        image: &image,
        xsave: false,
        features: 0,
    };
    let f = build_frame(
        Arch::X86_64,
        &r,
        &info,
        &act,
        0x55,
        &alt,
        &FaultInfo::default(),
        &fp,
    )
    .unwrap();
    // Below the red zone, and entered as if by a call: (rsp + 8) % 16 == 0.
    assert!(f.addr + f.bytes.len() as u64 <= 0x7fff_0000_1238 - 128);
    // FXSAVE only: the 512-byte image, 64-aligned, right above the frame.
    let fpstate = get(&f.bytes, x86::SC_FPSTATE);
    assert_eq!(fpstate % 64, 0);
    assert!(fpstate >= f.addr + x86::SIZE as u64);
    assert_eq!(f.addr + f.bytes.len() as u64, fpstate + 512);
    let at = (fpstate - f.addr) as usize;
    assert_eq!(&f.bytes[at..at + 464], &image[..464]);
    assert_eq!(
        get(&f.bytes, x86::UC_FLAGS),
        6,
        "SIGCONTEXT_SS | STRICT_RESTORE_SS"
    );
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
    let v: [u128; 32] = core::array::from_fn(|i| ((i as u128) << 64) | (0xabc0 + i as u128));
    let fp = FpFrame::A64 {
        v: &v,
        fpcr: 0x40_0000,
        fpsr: 0x10,
        esr: None,
    };
    let f = build_frame(Arch::Aarch64, &r, &info, &act, bit(2), &alt, &fi, &fp).unwrap();
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
    // fpsimd_context first in __reserved, then the null record.
    let res = &f.bytes[a64::SC_RESERVED..a64::SC_RESERVED + a64::RESERVED_SIZE];
    assert_eq!(w32(res, 0), 0x4650_8001);
    assert_eq!(w32(res, 4), 528);
    assert_eq!((w32(res, 8), w32(res, 12)), (0x10, 0x40_0000));
    assert_eq!(&res[16 + 16 * 3..16 + 16 * 4], &v[3].to_le_bytes());
    assert_eq!(get(res, 528), 0, "null record");
    let back = a64_parse_reserved(res).unwrap();
    assert_eq!((back.v, back.fpcr, back.fpsr), (v, 0x40_0000, 0x10));
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

/// Serialises the tests that use the process's (global) shared set, and
/// empties it when the test ends.
fn shared_set() -> SharedSet {
    static LOCK: spin::Mutex<()> = spin::Mutex::new(());
    loop {
        if let Some(g) = LOCK.try_lock() {
            locked(|s| s.shared = 0);
            return SharedSet(g);
        }
        std::thread::yield_now();
    }
}

struct SharedSet(#[allow(dead_code)] spin::MutexGuard<'static, ()>);

impl Drop for SharedSet {
    fn drop(&mut self) {
        locked(|s| s.shared = 0);
    }
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
    let _serial = shared_set();
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
    let _serial = shared_set();
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

/// An FXSAVE image as the CPU writes it: FCW, MXCSR, an XMM pattern.
fn fxsave_image() -> Vec<u8> {
    let mut b: Vec<u8> = (0..512u32).map(|i| (i * 7 + 3) as u8).collect();
    b[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    b[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    b
}

#[test]
fn x86_64_xsave_area_has_linux_software_bytes_and_trailer() {
    let size = 832; // x87 | SSE | AVX
    let mut image = fxsave_image();
    image.resize(size, 0x5a);
    // XSAVE header: XSTATE_BV = AVX only in use, the rest zero.
    image[512..576].fill(0);
    put(&mut image, 512, 4);
    let r = {
        let mut r = regs(Arch::X86_64);
        r[15] = 0x7fff_0000_1000;
        r
    };
    let act = Action {
        handler: 0x40_2000,
        flags: SA_RESTORER,
        restorer: 0x40_3000,
        mask: 0,
    };
    let info = Info {
        signo: 10,
        ..Info::default()
    };
    let fp = FpFrame::X86 {
        image: &image,
        xsave: true,
        features: 7,
    };
    let alt = AltStack::DISABLED;
    let f = build_frame(
        Arch::X86_64,
        &r,
        &info,
        &act,
        0,
        &alt,
        &FaultInfo::default(),
        &fp,
    )
    .unwrap();
    assert_eq!(get(&f.bytes, x86::UC_FLAGS), 7, "UC_FP_XSTATE too");
    let fpstate = get(&f.bytes, x86::SC_FPSTATE);
    assert_eq!(fpstate % 64, 0);
    assert!(fpstate + size as u64 + 4 <= 0x7fff_0000_1000 - 128);
    let area = &f.bytes[(fpstate - f.addr) as usize..];
    assert_eq!(area.len(), size + 4);
    // struct _fpx_sw_bytes at 464.
    assert_eq!(w32(area, 464), fpx::MAGIC1);
    assert_eq!(w32(area, 468), size as u32 + 4, "extended_size");
    assert_eq!(get(area, 472), 7, "xfeatures");
    assert_eq!(w32(area, 480), size as u32, "xstate_size");
    assert!(area[484..512].iter().all(|&b| b == 0), "padding");
    assert_eq!(get(area, 512), 7, "XSTATE_BV gets x87|SSE");
    assert_eq!(w32(area, size), fpx::MAGIC2);
    // rt_sigreturn reads it back: the full image, BV within xfeatures.
    assert_eq!(x86_fp_extent(area, true, size), Some(size));
    let img = x86_fp_image(area, true, size);
    assert_eq!(img.len(), size);
    assert_eq!(&img[..464], &image[..464]);
    assert_eq!(&img[576..], &image[576..]);
    assert_eq!(get(&img, 512), 7);
    // A frame whose xfeatures drop AVX restores AVX to its initial state.
    let mut less = area.to_vec();
    put(&mut less, 472, 3);
    assert_eq!(get(&x86_fp_image(&less, true, size), 512), 3);
}

#[test]
fn x86_64_bad_software_bytes_fall_back_to_fx_only() {
    let size = 832;
    let mut area = x86_fp_area(
        &{
            let mut i = fxsave_image();
            i.resize(size, 0);
            i[512..576].fill(0);
            i
        },
        true,
        7,
    );
    // Bad MAGIC2: legacy state only, other components initial.
    let n = area.len();
    area[n - 4..].copy_from_slice(&0u32.to_le_bytes());
    let img = x86_fp_image(&area, true, size);
    assert_eq!(get(&img, 512), fpx::FP_SSE);
    assert!(img[576..].iter().all(|&b| b == 0));
    assert_eq!(&img[..464], &fxsave_image()[..464]);
    // Bad MAGIC1, or an xstate_size beyond the CPU's: fx only at once.
    let mut bad = area.clone();
    bad[464] ^= 1;
    assert_eq!(x86_fp_extent(&bad, true, size), None);
    let mut big = area.clone();
    big[480..484].copy_from_slice(&(size as u32 + 64).to_le_bytes());
    assert_eq!(x86_fp_extent(&big, true, size), None);
    // Without XSAVE the legacy region is all there is.
    assert_eq!(x86_fp_extent(&area, false, 512), None);
    assert_eq!(x86_fp_image(&area, false, 512).len(), 512);
}

#[test]
fn aarch64_records_are_checked_like_linux() {
    let v = [7u128; 32];
    let mut b = vec![0u8; a64::SIZE];
    a64_records(&mut b, &v, 1, 2, Some(0x9200_0046));
    let res = |b: &[u8]| b[a64::SC_RESERVED..a64::SC_RESERVED + a64::RESERVED_SIZE].to_vec();
    let r = res(&b);
    // esr_context after fpsimd_context, then the null record.
    assert_eq!(w32(&r, 528), a64::ESR_MAGIC);
    assert_eq!(w32(&r, 532), 16);
    assert_eq!(get(&r, 536), 0x9200_0046);
    assert_eq!(get(&r, 544), 0);
    assert_eq!(a64_parse_reserved(&r).unwrap().v, v);
    // Wrong fpsimd size, unknown magic, no fpsimd, a misaligned size, no
    // terminator: all refused (SIGSEGV).
    let mut bad = r.clone();
    bad[4..8].copy_from_slice(&512u32.to_le_bytes());
    assert_eq!(a64_parse_reserved(&bad), Err(BadFrame::Records));
    let mut bad = r.clone();
    bad[528..532].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    assert_eq!(a64_parse_reserved(&bad), Err(BadFrame::Records));
    let mut bad = r.clone();
    bad[..8].copy_from_slice(&[0; 8]);
    assert_eq!(a64_parse_reserved(&bad), Err(BadFrame::Records));
    let mut bad = r.clone();
    bad[532..536].copy_from_slice(&12u32.to_le_bytes());
    assert_eq!(a64_parse_reserved(&bad), Err(BadFrame::Records));
    let mut bad = r.clone();
    bad[544..548].copy_from_slice(&a64::ESR_MAGIC.to_le_bytes());
    bad[548..552].copy_from_slice(&(a64::RESERVED_SIZE as u32).to_le_bytes());
    assert_eq!(a64_parse_reserved(&bad), Err(BadFrame::Records));
    // A second fpsimd_context.
    let mut bad = r;
    bad.copy_within(0..528, 528);
    bad[1056..1072].fill(0);
    assert_eq!(a64_parse_reserved(&bad), Err(BadFrame::Records));
}

#[test]
fn restart_table_matches_linux() {
    let sys = Errno::ERESTARTSYS.as_ret();
    let nohand = Errno::ERESTARTNOHAND.as_ret();
    assert_eq!(restart_decision(sys, None), Restart::Again);
    assert_eq!(restart_decision(sys, Some(SA_RESTART)), Restart::Again);
    assert_eq!(restart_decision(sys, Some(SA_SIGINFO)), Restart::Eintr);
    assert_eq!(restart_decision(nohand, None), Restart::Again);
    assert_eq!(restart_decision(nohand, Some(SA_RESTART)), Restart::Eintr);
    for ret in [0, 5, -4, -11, -513, -515] {
        assert_eq!(restart_decision(ret, None), Restart::Keep, "{ret}");
        assert_eq!(restart_decision(ret, Some(SA_RESTART)), Restart::Keep);
    }
}

#[test]
fn signals_reach_other_threads_and_the_process() {
    // A process of three threads (tids 7301 = the caller, 7302, 7303);
    // pid 1 is not among them here, so the round robin picks.
    let mut ctx = FakeCtx::new();
    ctx.thread = ThreadState::new(7301);
    let t2 = Arc::new(ThreadState::new(7302));
    let t3 = Arc::new(ThreadState::new(7303));
    register(t2.clone());
    register(t3.clone());
    let c: &mut Cx = &mut ctx;
    let h = Action {
        handler: 0x1234,
        ..Action::default()
    };
    c.task().unwrap().set_action(SIGUSR2, h.raw());
    // tkill/tgkill reach any registered tid, not unknown ones.
    assert_eq!(sys_tkill(c, &args(&[7302, SIGUSR2])), Ok(0));
    assert_eq!(pending(7302) & bit(SIGUSR2), bit(SIGUSR2));
    assert_eq!(pending(7303) & bit(SIGUSR2), 0);
    assert_eq!(sys_tgkill(c, &args(&[1, 7399, SIGUSR2])), Err(Errno::ESRCH));
    assert!(!exists(7399));
    assert!(matches!(
        take(c.task().unwrap(), &t2),
        Disposition::Handle(SIGUSR2, ..)
    ));
    // A process signal waits in the shared set for a thread that does not
    // block it: t3 blocks it, t2 takes it.
    t3.set_sigmask(bit(SIGUSR2));
    let _serial = shared_set();
    assert_eq!(sys_kill(c, &args(&[0, SIGUSR2])), Ok(0));
    let task = c.task().unwrap();
    assert_eq!(take(task, &t3), Disposition::None);
    assert!(deliverable(7302, t2.sigmask()));
    assert!(!deliverable(7303, t3.sigmask()));
    assert!(matches!(take(task, &t2), Disposition::Handle(SIGUSR2, ..)));
    assert_eq!(take(task, &t2), Disposition::None, "taken once");
    forget(7302);
    forget(7303);
    assert!(!exists(7302));
}

#[test]
fn epipe_raises_sigpipe_and_signalfd_dequeues_it() {
    let mut ctx = FakeCtx::new();
    ctx.thread = ThreadState::new(7101);
    let _serial = shared_set();
    let c: &mut Cx = &mut ctx;
    let seq = queued_seq();
    // Other results raise nothing.
    assert_eq!(sigpipe_on_epipe(c, Ok(1)), Ok(1));
    assert_eq!(sigpipe_on_epipe(c, Err(Errno::EAGAIN)), Err(Errno::EAGAIN));
    assert_eq!(pending(7101) & bit(SIGPIPE), 0);
    assert_eq!(sigpipe_on_epipe(c, Err(Errno::EPIPE)), Err(Errno::EPIPE));
    assert_ne!(pending(7101) & bit(SIGPIPE), 0);
    assert!(queued_seq() > seq, "a queued signal is a new edge");
    // What signalfd reads: only signals of its set, then nothing.
    assert_eq!(dequeue_from(7101, bit(SIGUSR1)), None);
    let info = dequeue_from(7101, bit(SIGPIPE)).unwrap();
    assert_eq!(
        (info.signo, info.code, info.pid),
        (SIGPIPE as i32, SI_USER, 1)
    );
    assert_eq!(pending(7101) & bit(SIGPIPE), 0);
    // Ignored: EPIPE only.
    let ign = Action {
        handler: SIG_IGN,
        ..Action::default()
    };
    c.task().unwrap().set_action(SIGPIPE, ign.raw());
    assert_eq!(sigpipe_on_epipe(c, Err(Errno::EPIPE)), Err(Errno::EPIPE));
    assert_eq!(pending(7101) & bit(SIGPIPE), 0);
    forget(7101);
}
