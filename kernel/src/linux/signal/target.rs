//! The target glue of signal delivery: `UserRegs` ⇄ sigcontext words, the
//! FP/SIMD state between the CPU and the frame (`arch::fpu`), system-call
//! restart (`UserRegs::{in_syscall, restart_syscall}`), the interrupt flag
//! of each app thread's kernel thread, user memory through `uaccess`.

use super::*;
use crate::arch::user::UserRegs;
use crate::linux::{table::ARCH, uaccess};
use alloc::boxed::Box;
use alloc::sync::Arc;

#[cfg(target_arch = "x86_64")]
fn words(r: &UserRegs) -> Vec<u64> {
    vec![
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.rflags,
    ]
}

#[cfg(target_arch = "x86_64")]
fn set_words(r: &mut UserRegs, w: &[u64]) {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.rflags,
    ] = w[..18].try_into().unwrap_or([0; 18]);
    r.forget_syscall();
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
    r.forget_syscall();
}

// ---- FP/SIMD state ----

/// Runs `f` with the interrupted code's FP state as a frame wants it. The
/// thread's user FP registers are live in the CPU while it runs kernel code
/// (the kernel is soft-float; a switch saves and restores them unchanged).
#[cfg(target_arch = "x86_64")]
fn with_fp<R>(_esr: Option<u64>, f: impl FnOnce(&FpFrame) -> R) -> R {
    let mut s = Box::new(crate::arch::fpu::FpState::default());
    crate::arch::fpu::save(&mut s);
    let l = crate::arch::fpu::layout();
    f(&FpFrame::X86 {
        image: s.image(),
        xsave: l.xsave,
        features: l.features,
    })
}

#[cfg(target_arch = "aarch64")]
fn with_fp<R>(esr: Option<u64>, f: impl FnOnce(&FpFrame) -> R) -> R {
    // Never used FP: `save` leaves the zeroed state, which is what the
    // registers hold at the thread's first FP instruction.
    let mut s = Box::new(crate::arch::fpu::FpState::new());
    crate::arch::cpu::without_interrupts(|| crate::arch::fpu::save(&mut s));
    f(&FpFrame::A64 {
        v: s.vregs(),
        fpcr: s.fpcr(),
        fpsr: s.fpsr(),
        esr,
    })
}

/// The handler's FP state: x86_64 starts it from the initial state (Linux's
/// `fpu__clear_user_states`: FCW 0x37f, MXCSR 0x1f80, registers zero);
/// arm64 Linux leaves the FP/SIMD registers as they are, and so do we.
fn fp_for_handler() {
    #[cfg(target_arch = "x86_64")]
    crate::arch::fpu::restore(&Box::new(crate::arch::fpu::FpState::default()));
}

/// `rt_sigreturn`'s FP part: reads the state the frame `b` (at the user
/// stack) points to or holds, checks it and makes it the thread's.
#[cfg(target_arch = "x86_64")]
fn restore_fp(task: &Task, b: &[u8]) -> Result<(), BadFrame> {
    use crate::arch::fpu::{layout, restore, FpState};
    let at = get(b, x86::SC_FPSTATE) as usize;
    let mut s = Box::new(FpState::default());
    if at == 0 {
        // No FP state in the frame: Linux resets it.
        restore(&s);
        return Ok(());
    }
    let l = layout();
    let mut legacy = vec![0u8; fpx::LEGACY_SIZE];
    uaccess::copy_in(task.memory(), at, &mut legacy).map_err(|_| BadFrame::Fault)?;
    let user = match x86_fp_extent(&legacy, l.xsave, l.size) {
        Some(n) => {
            let mut all = vec![0u8; n + fpx::MAGIC2_SIZE];
            uaccess::copy_in(task.memory(), at, &mut all).map_err(|_| BadFrame::Fault)?;
            all
        }
        None => legacy,
    };
    let img = x86_fp_image(&user, l.xsave, l.size);
    s.set_image(&img).map_err(|_| BadFrame::FpImage)?;
    restore(&s);
    Ok(())
}

#[cfg(target_arch = "aarch64")]
fn restore_fp(_task: &Task, b: &[u8]) -> Result<(), BadFrame> {
    let r = &b[a64::SC_RESERVED..a64::SC_RESERVED + a64::RESERVED_SIZE];
    let fp = a64_parse_reserved(r)?;
    let mut s = Box::new(crate::arch::fpu::FpState::new());
    s.set(&fp.v, fp.fpcr, fp.fpsr);
    crate::arch::cpu::without_interrupts(|| crate::arch::fpu::restore(&s));
    Ok(())
}

// ---- the thread's interrupt ----

/// Records the kernel thread running app thread `tid` (once per thread:
/// the scheduler's tag says whether it was done), so senders can
/// interrupt its waits. The main thread's Linux state is recorded here
/// too (other threads' at `clone`).
fn register_current(tid: u32, me: &Arc<crate::sched::thread::Thread>) {
    if me.tag() != u64::from(tid) {
        me.set_tag(u64::from(tid));
        let main = crate::linux::app::app()
            .map(|a| a.main.clone())
            .filter(|m| m.tid() == tid);
        let k = me.clone();
        with(tid, move |t| {
            t.kthread = Some(k);
            if t.state.is_none() {
                t.state = main;
            }
        });
    }
}

/// Sets `tid`'s interrupt exactly when a signal not in `mask` is pending
/// for it. Done under the signal lock, so a sender that queues a signal
/// and then raises the interrupt (after its own locked section) is never
/// undone by a stale clear.
pub(super) fn refresh_interrupt(tid: u32, mask: u64) {
    locked(|s| {
        let Some(t) = s.threads.get(&tid) else {
            return;
        };
        if let Some(k) = &t.kthread {
            k.set_interrupt(next(t.pending | s.shared, mask).is_some());
        }
    });
}

// ---- delivery ----

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

/// Builds the frame (registers, mask, FP state) and points `regs` at the
/// handler; false if the frame cannot be written (the caller kills with
/// SIGSEGV).
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
    // arm64 Linux adds an `esr_context` record for faults.
    let esr = (matches!(ARCH, Arch::Aarch64) && fault.err != 0).then_some(fault.err);
    let alt = altstack(thread.tid());
    let Some(restorer) = restorer(task, act) else {
        return false;
    };
    let act = &Action { restorer, ..*act };
    let frame = with_fp(esr, |fp| {
        build_frame(ARCH, &words(regs), info, act, saved_mask, &alt, fault, fp)
    });
    let Some(f) = frame else {
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
    fp_for_handler();
    true
}

/// Applies [`restart_decision`] to a system call's result in `regs`, if
/// they are on the way back from one; settles it either way.
fn settle_syscall(regs: &mut UserRegs, handler: Option<u64>) {
    if !regs.in_syscall() {
        return;
    }
    match restart_decision(regs.ret() as isize, handler) {
        Restart::Again => regs.restart_syscall(),
        Restart::Eintr => regs.set_ret(Errno::EINTR.as_ret() as usize),
        Restart::Keep => {}
    }
    regs.forget_syscall();
}

/// `rt_sigreturn`'s restore: registers, mask and FP state from the frame
/// at the stack pointer. False if the frame is bad (the caller kills with
/// SIGSEGV, as Linux's `force_sig(SIGSEGV)` ends an app without a way out).
fn sigreturn(task: &Task, thread: &ThreadState, regs: &mut UserRegs) -> bool {
    let mut b = vec![0u8; frame_size(ARCH)];
    let parsed = frame_at_sigreturn(ARCH, regs.sp() as u64)
        .filter(|&a| uaccess::copy_in(task.memory(), a as usize, &mut b).is_ok())
        .and_then(|_| parse_frame(ARCH, &b));
    let Some((w, mask)) = parsed else {
        return false;
    };
    if let Err(e) = restore_fp(task, &b) {
        crate::println!("app: bad signal frame FP state error={e:?}");
        return false;
    }
    set_words(regs, &w);
    thread.set_sigmask(mask);
    true
}

/// The return-to-user hook's part: finishes a pending `rt_sigreturn`,
/// then delivers the next deliverable signal of the main thread.
pub fn deliver(regs: &mut UserRegs) {
    let Some(app) = crate::linux::app::app() else {
        return;
    };
    deliver_to(&app.task, &app.main, &crate::sched::current(), regs);
}

/// [`deliver`] for a given thread: the `rt_sigreturn` restore, then one
/// signal (handler frame or termination), with the system call's restart
/// decided first; the thread's interrupt is left raised only while a
/// deliverable signal remains.
/// `me` is the running kernel thread (the caller has it already; taking it
/// again costs a scheduler lock on every return to user mode).
pub fn deliver_to(
    task: &Task,
    thread: &ThreadState,
    me: &Arc<crate::sched::thread::Thread>,
    regs: &mut UserRegs,
) {
    let tid = thread.tid();
    register_current(tid, me);
    if !in_use() {
        settle_syscall(regs, None);
        return;
    }
    if take_sigreturn(tid) && !sigreturn(task, thread, regs) {
        crate::println!("app: bad signal frame at sigreturn sp={:#x}", regs.sp());
        die(task, SIGSEGV);
        return;
    }
    match take(task, thread) {
        Disposition::None => {
            // No handler runs: an interrupted call restarts, and an
            // `rt_sigsuspend` that found nothing to run gets its mask back.
            settle_syscall(regs, None);
            if let Some(old) = with(tid, |t| t.suspend_mask.take()) {
                thread.set_sigmask(old);
            }
        }
        Disposition::Terminate(sig) => die(task, sig),
        Disposition::Handle(sig, info, act, saved) => {
            settle_syscall(regs, Some(act.flags));
            let fault = FaultInfo::default();
            if !run_handler(task, thread, regs, &info, &act, saved, &fault) {
                crate::println!(
                    "app: cannot write the signal frame for {} sp={:#x}",
                    name(sig),
                    regs.sp()
                );
                die(task, SIGSEGV);
            }
        }
    }
    refresh_interrupt(tid, thread.sigmask());
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
    regs.forget_syscall();
    run_handler(task, thread, regs, &info, &act, saved, &fi)
}
