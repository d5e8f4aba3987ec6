//! Threads of the app: `clone`/`clone3` for threads (the flags glibc's
//! `pthread_create` passes), `exit` of one thread: its robust futex list
//! (`set_robust_list`: locks it still holds get `FUTEX_OWNER_DIED` and a
//! waiter is woken — what makes `EOWNERDEAD` work), then
//! `clear_child_tid` (write 0, wake one futex waiter — what
//! `pthread_join` sleeps on).
//!
//! Only threads exist: a `clone` without `CLONE_VM | CLONE_THREAD` (fork,
//! vfork, a new process) answers ENOSYS and is logged, as is a thread
//! clone asking for something not shared (no `CLONE_FS`/`CLONE_FILES`)
//! or a flag Skiff does not support (namespaces, pidfd, ptrace).
//! The thread start itself (a kernel thread entering user mode with the
//! caller's registers) is the target's, behind `Ctx::spawn_thread`.

use super::misc::{task, thread};
use super::process::ThreadState;
use super::{futex, Cx};
use crate::errno::{Errno, KResult};
use crate::syscall::Args;
use alloc::sync::Arc;

pub const CSIGNAL: u64 = 0xff;
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_THREAD: u64 = 0x1_0000;
pub const CLONE_SYSVSEM: u64 = 0x4_0000;
pub const CLONE_SETTLS: u64 = 0x8_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x10_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
pub const CLONE_DETACHED: u64 = 0x40_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x100_0000;

/// Every flag a thread clone may carry here.
const SUPPORTED: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID;

/// Where and how a new thread starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Its user stack pointer; 0 keeps the caller's.
    pub stack: usize,
    /// Its TLS register; None keeps the caller's.
    pub tls: Option<usize>,
}

/// One clone request, from `clone` or `clone3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneArgs {
    pub flags: u64,
    pub stack: usize,
    pub parent_tid: usize,
    pub child_tid: usize,
    pub tls: usize,
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` on x86_64;
/// `clone(flags, stack, parent_tid, tls, child_tid)` on aarch64 (and
/// every other arch of Linux's generic ABI).
pub fn sys_clone(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (child_tid, tls) = if cfg!(target_arch = "aarch64") {
        (a[4], a[3])
    } else {
        (a[3], a[4])
    };
    clone(
        ctx,
        &CloneArgs {
            flags: a[0] as u64,
            stack: a[1],
            parent_tid: a[2],
            child_tid,
            tls,
        },
    )
}

/// `struct clone_args` up to `tls` (`CLONE_ARGS_SIZE_VER0`).
const CLONE_ARGS_VER0: usize = 64;
/// The fields Skiff reads (through `cgroup`, VER2).
const CLONE_ARGS_KNOWN: usize = 88;

/// `clone3(args, size)`.
pub fn sys_clone3(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (addr, size) = (a[0], a[1]);
    if size < CLONE_ARGS_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let mut raw = [0u8; CLONE_ARGS_KNOWN];
    let n = size.min(CLONE_ARGS_KNOWN);
    ctx.copy_in(addr, &mut raw[..n])?;
    // Fields past the ones known must be zero (Linux: E2BIG).
    if size > CLONE_ARGS_KNOWN {
        let mut extra = alloc::vec![0u8; size - CLONE_ARGS_KNOWN];
        ctx.copy_in(addr + CLONE_ARGS_KNOWN, &mut extra)?;
        if extra.iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
    }
    let f = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (flags, pidfd, child_tid, parent_tid, exit_signal) = (f(0), f(1), f(2), f(3), f(4));
    let (stack, stack_size, tls, set_tid, set_tid_size) = (f(5), f(6), f(7), f(8), f(9));
    let _ = pidfd;
    if flags & CSIGNAL != 0 || exit_signal > 64 || set_tid != 0 || set_tid_size != 0 {
        return Err(Errno::EINVAL);
    }
    // clone3 takes the stack as an area: it grows down from its end.
    let (stack, stack_size) = (stack as usize, stack_size as usize);
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let top = stack.checked_add(stack_size).ok_or(Errno::EINVAL)?;
    clone(
        ctx,
        &CloneArgs {
            flags: flags | exit_signal,
            stack: top,
            parent_tid: parent_tid as usize,
            child_tid: child_tid as usize,
            tls: tls as usize,
        },
    )
}

fn unsupported(ctx: &mut Cx, why: &str, flags: u64) -> Errno {
    ctx.report_unimplemented(&alloc::format!(
        "linux: unsupported clone what={why} flags={flags:#x} returning=-ENOSYS"
    ));
    Errno::ENOSYS
}

/// Starts a thread per `c`; its tid.
pub fn clone(ctx: &mut Cx, c: &CloneArgs) -> KResult<usize> {
    let flags = c.flags & !CSIGNAL;
    if flags & (CLONE_VM | CLONE_THREAD) != CLONE_VM | CLONE_THREAD {
        let what = if flags & CLONE_VFORK != 0 {
            "vfork"
        } else {
            "fork"
        };
        return Err(unsupported(ctx, what, c.flags));
    }
    // Linux: a thread shares the handlers, which need the memory.
    if flags & CLONE_SIGHAND == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & (CLONE_FS | CLONE_FILES) != CLONE_FS | CLONE_FILES {
        return Err(unsupported(ctx, "unshared-fs-or-files", c.flags));
    }
    if flags & !SUPPORTED != 0 {
        return Err(unsupported(ctx, "flags", c.flags));
    }
    let t = task(ctx)?;
    let tid = t.alloc_tid();
    let parent = thread(ctx)?;
    let child = Arc::new(ThreadState::new(tid));
    child.set_sigmask(parent.sigmask());
    super::signal::register(child.clone());
    if flags & CLONE_CHILD_CLEARTID != 0 {
        child.set_clear_child_tid(c.child_tid);
    }
    // Both tid words are written before the thread runs (same memory).
    let tid_bytes = tid.to_le_bytes();
    let written = (|| {
        if flags & CLONE_PARENT_SETTID != 0 {
            ctx.copy_out(c.parent_tid, &tid_bytes)?;
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            ctx.copy_out(c.child_tid, &tid_bytes)?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        super::signal::forget(tid);
        return Err(e);
    }
    let start = Start {
        stack: c.stack,
        tls: (flags & CLONE_SETTLS != 0).then_some(c.tls),
    };
    let t = task(ctx)?;
    t.thread_started();
    if let Err(e) = ctx.spawn_thread(child, start) {
        super::signal::forget(tid);
        task(ctx)?.thread_exited();
        return Err(e);
    }
    Ok(tid as usize)
}

// ---- robust futexes ----

/// `FUTEX_WAITERS`, `FUTEX_OWNER_DIED` and the tid bits of a robust futex.
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Entries walked at most (Linux's `ROBUST_LIST_LIMIT`): a looping or
/// endless list cannot hold the exit up.
pub const ROBUST_LIST_LIMIT: usize = 2048;

fn read_word(ctx: &mut Cx, addr: usize) -> KResult<u64> {
    let mut w = [0u8; 8];
    ctx.copy_in(addr, &mut w)?;
    Ok(u64::from_le_bytes(w))
}

/// Linux's `handle_futex_death` for the futex word at `uaddr` of a dying
/// thread `tid`: if it still holds the lock, mark it `FUTEX_OWNER_DIED`
/// (keeping `FUTEX_WAITERS`) and wake one waiter; a pending operation on
/// an unowned word wakes one waiter too. PI futexes are not supported.
///
/// Not atomic against user space: the check and the store are two
/// accesses (Linux uses a user cmpxchg). A locker racing the dying owner
/// sees either value and the waiter woken retries.
fn futex_death(ctx: &mut Cx, uaddr: usize, tid: u32, pending_op: bool) -> KResult<()> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut w = [0u8; 4];
    ctx.copy_in(uaddr, &mut w)?;
    let val = u32::from_le_bytes(w);
    if pending_op && val == 0 {
        ctx.futex_wake(uaddr, 1, futex::BITSET_MATCH_ANY)?;
        return Ok(());
    }
    if val & FUTEX_TID_MASK != tid {
        return Ok(());
    }
    let new = (val & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    ctx.copy_out(uaddr, &new.to_le_bytes())?;
    if val & FUTEX_WAITERS != 0 {
        ctx.futex_wake(uaddr, 1, futex::BITSET_MATCH_ANY)?;
    }
    Ok(())
}

/// Walks the robust list of a dying thread (`set_robust_list`) as Linux's
/// `exit_robust_list` does: `struct robust_list_head { next;
/// futex_offset; list_op_pending }`, entries linked through their first
/// word (bit 0: PI, skipped here), each futex word at entry +
/// `futex_offset`; at most [`ROBUST_LIST_LIMIT`] entries, stopping at the
/// first fault; the pending entry last. How many entries were walked.
pub fn exit_robust_list(ctx: &mut Cx, head: usize, tid: u32) -> usize {
    if head == 0 {
        return 0;
    }
    let (Ok(first), Ok(offset), Ok(pending)) = (
        read_word(ctx, head),
        read_word(ctx, head + 8),
        read_word(ctx, head + 16),
    ) else {
        return 0;
    };
    let offset = offset as i64 as isize;
    let futex_of = |entry: u64| (entry as usize).wrapping_add_signed(offset);
    let pending_pi = pending & 1 != 0;
    let pending = pending & !1;
    let mut entry = first;
    let mut walked = 0;
    while entry & !1 != head as u64 && walked < ROBUST_LIST_LIMIT {
        let pi = entry & 1 != 0;
        let at = entry & !1;
        let Ok(next) = read_word(ctx, at as usize) else {
            break;
        };
        if at != pending && !pi && futex_death(ctx, futex_of(at), tid, false).is_err() {
            break;
        }
        walked += 1;
        entry = next;
    }
    if pending != 0 && !pending_pi {
        let _ = futex_death(ctx, futex_of(pending), tid, true);
    }
    walked
}

/// `exit`: ends the calling thread (robust futexes released, then the
/// `clear_child_tid` word zeroed and woken); the last one's ends the
/// process.
pub fn sys_exit(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let me = thread(ctx)?;
    let (tid, (head, _)) = (me.tid(), me.robust_list());
    exit_robust_list(ctx, head, tid);
    let me = thread(ctx)?;
    let ctid = me.clear_child_tid();
    if ctid != 0 {
        // Linux ignores a fault here too.
        if ctx.copy_out(ctid, &0u32.to_le_bytes()).is_ok() {
            let _ = ctx.futex_wake(ctid, 1, futex::BITSET_MATCH_ANY);
        }
    }
    let t = task(ctx)?;
    if t.thread_exited() {
        return super::misc::sys_exit_group(ctx, a);
    }
    if ctx.tracing() {
        ctx.trace_line(&alloc::format!("exit({}) = ?", a[0] as i32));
    }
    ctx.exit_thread()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::process::fake::FakeCtx;
    use crate::linux::Ctx;

    const THREAD_FLAGS: u64 = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;

    #[test]
    fn fork_and_vfork_are_enosys_and_logged() {
        let mut c = FakeCtx::new();
        let fork = [0x11, 0, 0, 0, 0, 0]; // SIGCHLD only
        assert_eq!(sys_clone(&mut c, &fork), Err(Errno::ENOSYS));
        let vfork = [(CLONE_VM | CLONE_VFORK | 0x11) as usize, 0, 0, 0, 0, 0];
        assert_eq!(sys_clone(&mut c, &vfork), Err(Errno::ENOSYS));
        let log = c.trace.lock().clone();
        assert_eq!(log.len(), 2);
        assert!(log[0].contains("what=fork flags=0x11"), "{log:?}");
        assert!(log[1].contains("what=vfork"), "{log:?}");
        assert_eq!(c.task.threads(), 1);
    }

    #[test]
    fn thread_clone_writes_tids_before_the_start() {
        let mut c = FakeCtx::new();
        let buf = c.scratch(4096) as usize;
        // FakeCtx cannot start threads: the tids are written, the count
        // goes back down and the error comes through.
        let a = [THREAD_FLAGS as usize, 0x5000, buf, buf + 8, 0x7000, 0];
        assert_eq!(sys_clone(&mut c, &a), Err(Errno::ENOSYS));
        let mut w = [0u8; 4];
        c.copy_in(buf, &mut w).unwrap();
        assert_eq!(u32::from_le_bytes(w), 2, "parent tid word");
        assert_eq!(c.task.threads(), 1);
        // Without SIGHAND: EINVAL, nothing logged.
        let a = [(THREAD_FLAGS & !CLONE_SIGHAND) as usize, 0, 0, 0, 0, 0];
        assert_eq!(sys_clone(&mut c, &a), Err(Errno::EINVAL));
        assert!(c.trace.lock().is_empty());
    }

    #[test]
    fn clone3_checks_its_struct() {
        let mut c = FakeCtx::new();
        let buf = c.scratch(4096) as usize;
        assert_eq!(
            sys_clone3(&mut c, &[buf, 32, 0, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        // Stack without a size.
        let mut raw = [0u64; 11];
        raw[0] = THREAD_FLAGS;
        raw[3] = (buf + 512) as u64; // parent_tid
        raw[5] = 0x10_0000;
        let bytes: alloc::vec::Vec<u8> = raw.iter().flat_map(|w| w.to_le_bytes()).collect();
        c.copy_out(buf, &bytes).unwrap();
        assert_eq!(
            sys_clone3(&mut c, &[buf, 88, 0, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        // A non-zero unknown field past the known ones: E2BIG.
        raw[6] = 0x1000;
        let mut bytes: alloc::vec::Vec<u8> = raw.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        c.copy_out(buf, &bytes).unwrap();
        assert_eq!(
            sys_clone3(&mut c, &[buf, 96, 0, 0, 0, 0]),
            Err(Errno::E2BIG)
        );
        // Well formed: reaches the thread start (ENOSYS in the fake).
        assert_eq!(
            sys_clone3(&mut c, &[buf, 88, 0, 0, 0, 0]),
            Err(Errno::ENOSYS)
        );
    }

    fn put64(c: &mut FakeCtx, at: usize, v: u64) {
        c.copy_out(at, &v.to_le_bytes()).unwrap();
    }

    fn word(c: &mut FakeCtx, at: usize) -> u32 {
        let mut w = [0u8; 4];
        c.copy_in(at, &mut w).unwrap();
        u32::from_le_bytes(w)
    }

    #[test]
    fn robust_list_marks_owned_locks_and_wakes() {
        let mut c = FakeCtx::new();
        let base = c.scratch(4096) as usize;
        let tid = c.thread.tid();
        let (head, e1, e2, e3) = (base, base + 0x100, base + 0x200, base + 0x300);
        // futex_offset -8: each futex word sits 8 bytes below its entry.
        put64(&mut c, head, e1 as u64);
        put64(&mut c, head + 8, (-8i64) as u64);
        put64(&mut c, head + 16, e3 as u64);
        put64(&mut c, e1, e2 as u64);
        put64(&mut c, e2, head as u64);
        c.copy_out(e1 - 8, &(tid | FUTEX_WAITERS).to_le_bytes())
            .unwrap();
        c.copy_out(e2 - 8, &(tid + 1).to_le_bytes()).unwrap();
        c.copy_out(e3 - 8, &0u32.to_le_bytes()).unwrap();
        assert_eq!(exit_robust_list(&mut c, head, tid), 2);
        // Ours: owner died, waiters kept, one woken. Another's: untouched.
        assert_eq!(word(&mut c, e1 - 8), FUTEX_WAITERS | FUTEX_OWNER_DIED);
        assert_eq!(word(&mut c, e2 - 8), tid + 1);
        let calls = c.futex_calls.lock().clone();
        assert_eq!(
            calls,
            [
                alloc::format!("wake {:#x} 1 ffffffff", e1 - 8),
                // The pending op on an unowned word wakes one too.
                alloc::format!("wake {:#x} 1 ffffffff", e3 - 8),
            ]
        );
    }

    #[test]
    fn robust_list_walk_is_bounded_and_stops_at_faults() {
        let mut c = FakeCtx::new();
        let base = c.scratch(4096) as usize;
        let tid = c.thread.tid();
        let (head, e1) = (base, base + 0x100);
        // A cycle that never returns to the head.
        put64(&mut c, head, e1 as u64);
        put64(&mut c, head + 8, 8);
        put64(&mut c, head + 16, 0);
        put64(&mut c, e1, e1 as u64);
        c.copy_out(e1 + 8, &tid.to_le_bytes()).unwrap();
        assert_eq!(exit_robust_list(&mut c, head, tid), ROBUST_LIST_LIMIT);
        assert_eq!(word(&mut c, e1 + 8), FUTEX_OWNER_DIED);
        // A list running into unmapped memory stops there.
        put64(&mut c, e1, 0x10);
        assert_eq!(exit_robust_list(&mut c, head, tid), 1);
        // No list, or an unreadable head: nothing.
        assert_eq!(exit_robust_list(&mut c, 0, tid), 0);
        assert_eq!(exit_robust_list(&mut c, 0x10, tid), 0);
    }

    #[test]
    fn exit_clears_the_tid_word_and_last_thread_ends_the_process() {
        let mut c = FakeCtx::new();
        let buf = c.scratch(4096) as usize;
        c.copy_out(buf, &9u32.to_le_bytes()).unwrap();
        c.thread.set_clear_child_tid(buf);
        c.task.thread_started(); // another thread is alive
        assert_eq!(sys_exit(&mut c, &[3, 0, 0, 0, 0, 0]), Err(Errno::ENOSYS));
        let mut w = [0u8; 4];
        c.copy_in(buf, &mut w).unwrap();
        assert_eq!(u32::from_le_bytes(w), 0);
        assert_eq!(
            c.futex_calls.lock().last().cloned(),
            Some(alloc::format!("wake {buf:#x} 1 ffffffff"))
        );
        assert_eq!(*c.services.exited.lock(), None, "one thread left");
        let _ = sys_exit(&mut c, &[3, 0, 0, 0, 0, 0]);
        assert_eq!(*c.services.exited.lock(), Some(3), "the last one");
    }
}
