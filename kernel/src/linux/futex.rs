//! `futex(2)`: the wait/wake primitive under every glibc lock, condition
//! variable, barrier and `pthread_join`.
//!
//! [`Queues`] is the arch-free table: waiters keyed by user address, each
//! with its bitset, woken FIFO; wake, bitset wake and requeue with Linux's
//! counts (host-tested). [`sys_futex`] decodes the operation, the flags
//! and the timeout, and asks the context to wait, wake or requeue
//! (`Ctx::futex_*`); on the target those run [`Futexes`] (below, a sleeping
//! lock around `Queues` plus one wakeup flag per waiter).
//!
//! Waits are interruptible (`sync::wait_any`): a signal for the waiting
//! thread ends them with `ERESTARTSYS` (no timeout: restarted under
//! `SA_RESTART`) or `ERESTARTNOHAND` (timed: EINTR when a handler runs),
//! which the signal code turns into a restart or EINTR.
//!
//! Lost wakeups: a waiter reads the futex word and enqueues itself under
//! the table lock, and every wake or requeue takes the same lock, so a
//! waker that changed the word and then woke either finds the waiter
//! queued or the waiter saw the new value (EAGAIN). The lock is a
//! sleeping `sync::Mutex` because reading the word may demand-page it.
//!
//! Private and shared futexes are the same here: one process per VM, one
//! address space, so the key is the user address alone.

use super::Cx;
use crate::errno::{Errno, KResult};
use crate::syscall::Args;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

pub const FUTEX_WAIT: usize = 0;
pub const FUTEX_WAKE: usize = 1;
pub const FUTEX_REQUEUE: usize = 3;
pub const FUTEX_CMP_REQUEUE: usize = 4;
pub const FUTEX_WAIT_BITSET: usize = 9;
pub const FUTEX_WAKE_BITSET: usize = 10;
pub const FUTEX_PRIVATE_FLAG: usize = 128;
pub const FUTEX_CLOCK_REALTIME: usize = 256;
/// The bitset `FUTEX_WAIT`/`FUTEX_WAKE` use: matches every waiter.
pub const BITSET_MATCH_ANY: u32 = u32::MAX;

struct Waiter<W> {
    id: u64,
    bitset: u32,
    w: W,
}

/// Waiters by futex address, FIFO per address. `W` is what wakes one (a
/// sleeping thread on the target, a marker in tests).
pub struct Queues<W> {
    by_addr: BTreeMap<usize, VecDeque<Waiter<W>>>,
    /// Waiter id → its current address (requeue moves waiters).
    addr_of: BTreeMap<u64, usize>,
    next_id: u64,
}

impl<W> Default for Queues<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W> Queues<W> {
    pub const fn new() -> Self {
        Queues {
            by_addr: BTreeMap::new(),
            addr_of: BTreeMap::new(),
            next_id: 1,
        }
    }

    /// Queues `w` on `addr`; the id [`remove`](Self::remove) takes.
    pub fn push(&mut self, addr: usize, bitset: u32, w: W) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_addr
            .entry(addr)
            .or_default()
            .push_back(Waiter { id, bitset, w });
        self.addr_of.insert(id, addr);
        id
    }

    /// Takes waiter `id` off its queue (a timeout); false if a wake
    /// already took it.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(addr) = self.addr_of.remove(&id) else {
            return false;
        };
        if let Some(q) = self.by_addr.get_mut(&addr) {
            q.retain(|w| w.id != id);
            if q.is_empty() {
                self.by_addr.remove(&addr);
            }
        }
        true
    }

    /// Takes up to `n` waiters on `addr` whose bitset shares a bit with
    /// `bitset`, oldest first; they are the caller's to wake.
    pub fn wake(&mut self, addr: usize, n: usize, bitset: u32) -> Vec<W> {
        let mut out = Vec::new();
        let Some(q) = self.by_addr.get_mut(&addr) else {
            return out;
        };
        let mut i = 0;
        while i < q.len() && out.len() < n {
            if q[i].bitset & bitset != 0 {
                let w = q.remove(i).expect("index in range");
                self.addr_of.remove(&w.id);
                out.push(w.w);
            } else {
                i += 1;
            }
        }
        if q.is_empty() {
            self.by_addr.remove(&addr);
        }
        out
    }

    /// Wakes up to `nwake` waiters on `from` and moves up to `nmove` of
    /// the rest to `to` (keeping their order, behind `to`'s own). Returns
    /// the woken and how many moved.
    pub fn requeue(
        &mut self,
        from: usize,
        to: usize,
        nwake: usize,
        nmove: usize,
    ) -> (Vec<W>, usize) {
        let woken = self.wake(from, nwake, BITSET_MATCH_ANY);
        if from == to || nmove == 0 {
            return (woken, 0);
        }
        let Some(mut q) = self.by_addr.remove(&from) else {
            return (woken, 0);
        };
        let moved = nmove.min(q.len());
        let rest = q.split_off(moved);
        for w in &q {
            self.addr_of.insert(w.id, to);
        }
        self.by_addr.entry(to).or_default().extend(q);
        if !rest.is_empty() {
            self.by_addr.insert(from, rest);
        }
        (woken, moved)
    }

    /// Waiters queued on `addr`.
    pub fn waiting(&self, addr: usize) -> usize {
        self.by_addr.get(&addr).map_or(0, VecDeque::len)
    }
}

/// How long a wait may last: absolute monotonic nanoseconds, or forever.
pub type Deadline = Option<u64>;

/// Decodes and runs one `futex` call.
pub fn sys_futex(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (uaddr, op, val, timeout, uaddr2, val3) =
        (a[0], a[1], a[2] as u32, a[3], a[4], a[5] as u32);
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return Err(Errno::ENOSYS);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT {
                BITSET_MATCH_ANY
            } else {
                val3
            };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let deadline = if timeout == 0 {
                None
            } else {
                let ns = super::misc::read_timespec(ctx, timeout)?;
                let s = super::misc::task(ctx)?.services();
                Some(if cmd == FUTEX_WAIT {
                    // Relative, on the monotonic clock.
                    s.monotonic_ns().saturating_add(ns)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    // Absolute wall-clock time, converted to monotonic.
                    s.monotonic_ns()
                        .saturating_add(ns.saturating_sub(s.realtime_ns()))
                } else {
                    ns
                })
            };
            ctx.futex_wait(uaddr, val, bitset, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE {
                BITSET_MATCH_ANY
            } else {
                val3
            };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            ctx.futex_wake(uaddr, val as usize, bitset)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            // val2 (the requeue limit) travels in the timeout argument.
            let (nwake, nmove) = (val as i32, timeout as u32 as i32);
            if nwake < 0 || nmove < 0 || !uaddr2.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let cmp = (cmd == FUTEX_CMP_REQUEUE).then_some(val3);
            ctx.futex_requeue(uaddr, uaddr2, nwake as usize, nmove as usize, cmp)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// The target's futex table: [`Queues`] under a sleeping lock, each waiter
/// a flag and a wait queue of its own.
#[cfg(target_os = "none")]
pub mod table {
    use super::{Deadline, Queues};
    use crate::errno::{Errno, KResult};
    use crate::sync::{wait_any, Mutex, WaitQueue, Wake};
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicBool, Ordering};

    /// One sleeping thread: set `woken` then wake `wq`.
    #[derive(Default)]
    pub struct Sleeper {
        woken: AtomicBool,
        wq: WaitQueue,
    }

    impl Sleeper {
        fn wake(&self) {
            self.woken.store(true, Ordering::Release);
            self.wq.wake_one();
        }
    }

    /// The process's futexes.
    pub struct Futexes {
        q: Mutex<Queues<Arc<Sleeper>>>,
    }

    impl Default for Futexes {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Futexes {
        pub const fn new() -> Self {
            Futexes {
                q: Mutex::new(Queues::new()),
            }
        }

        /// `FUTEX_WAIT(_BITSET)`: `read` reads the word (under the table
        /// lock, so no wake can slip between the check and the enqueue).
        pub fn wait(
            &self,
            addr: usize,
            val: u32,
            bitset: u32,
            deadline: Deadline,
            read: impl FnOnce(usize) -> KResult<u32>,
        ) -> KResult<usize> {
            let me = Arc::new(Sleeper::default());
            let id = {
                let mut q = self.q.lock();
                if read(addr)? != val {
                    return Err(Errno::EAGAIN);
                }
                q.push(addr, bitset, me.clone())
            };
            let woken = || me.woken.load(Ordering::Acquire);
            let why = match wait_any(&[&me.wq], deadline, true, woken) {
                Wake::Ready => return Ok(0),
                Wake::TimedOut => Errno::ETIMEDOUT,
                // Linux: a wait without timeout restarts under SA_RESTART;
                // a timed one returns EINTR whenever a handler runs.
                Wake::Interrupted if deadline.is_none() => Errno::ERESTARTSYS,
                Wake::Interrupted => Errno::ERESTARTNOHAND,
            };
            // Gone, unless a wake took us off meanwhile (then it counts).
            if self.q.lock().remove(id) {
                Err(why)
            } else {
                Ok(0)
            }
        }

        /// `FUTEX_WAKE(_BITSET)`: how many were woken.
        pub fn wake(&self, addr: usize, n: usize, bitset: u32) -> usize {
            let woken = self.q.lock().wake(addr, n, bitset);
            for s in &woken {
                s.wake();
            }
            woken.len()
        }

        /// `FUTEX_(CMP_)REQUEUE`: woken plus moved (CMP: EAGAIN when the
        /// word at `from` is not `cmp`).
        pub fn requeue(
            &self,
            from: usize,
            to: usize,
            nwake: usize,
            nmove: usize,
            cmp: Option<u32>,
            read: impl FnOnce(usize) -> KResult<u32>,
        ) -> KResult<usize> {
            let (woken, moved) = {
                let mut q = self.q.lock();
                if let Some(c) = cmp {
                    if read(from)? != c {
                        return Err(Errno::EAGAIN);
                    }
                }
                q.requeue(from, to, nwake, nmove)
            };
            for s in &woken {
                s.wake();
            }
            Ok(woken.len() + if cmp.is_some() { moved } else { 0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_counts_and_fifo() {
        let mut q = Queues::new();
        for i in 0..5 {
            q.push(0x1000, BITSET_MATCH_ANY, i);
        }
        q.push(0x2000, BITSET_MATCH_ANY, 99);
        assert_eq!(q.wake(0x1000, 2, BITSET_MATCH_ANY), [0, 1]);
        assert_eq!(q.waiting(0x1000), 3);
        assert_eq!(q.wake(0x1000, usize::MAX, BITSET_MATCH_ANY), [2, 3, 4]);
        assert_eq!(q.waiting(0x1000), 0);
        assert!(q.wake(0x1000, 1, BITSET_MATCH_ANY).is_empty());
        assert_eq!(q.waiting(0x2000), 1);
        assert!(q.wake(0x3000, 1, BITSET_MATCH_ANY).is_empty());
    }

    #[test]
    fn bitsets_select_waiters() {
        let mut q = Queues::new();
        q.push(0x1000, 0b01, 'a');
        q.push(0x1000, 0b10, 'b');
        q.push(0x1000, 0b11, 'c');
        assert_eq!(q.wake(0x1000, 5, 0b10), ['b', 'c']);
        assert_eq!(q.wake(0x1000, 5, 0b10), []);
        assert_eq!(q.wake(0x1000, 5, 0b01), ['a']);
    }

    #[test]
    fn remove_after_wake_reports_taken() {
        let mut q = Queues::new();
        let a = q.push(0x1000, BITSET_MATCH_ANY, 'a');
        let b = q.push(0x1000, BITSET_MATCH_ANY, 'b');
        assert_eq!(q.wake(0x1000, 1, BITSET_MATCH_ANY), ['a']);
        assert!(!q.remove(a), "a wake already took it");
        assert!(q.remove(b), "still queued: the timeout wins");
        assert!(!q.remove(b));
        assert_eq!(q.waiting(0x1000), 0);
    }

    #[test]
    fn requeue_wakes_then_moves_in_order() {
        let mut q = Queues::new();
        q.push(0x2000, BITSET_MATCH_ANY, 10);
        let ids: Vec<u64> = (0..5)
            .map(|i| q.push(0x1000, BITSET_MATCH_ANY, i))
            .collect();
        let (woken, moved) = q.requeue(0x1000, 0x2000, 1, 2);
        assert_eq!((woken, moved), (alloc::vec![0], 2));
        assert_eq!(q.waiting(0x1000), 2);
        assert_eq!(q.waiting(0x2000), 3);
        // Moved waiters are found at their new address by a timeout.
        assert!(q.remove(ids[1]));
        assert_eq!(q.waiting(0x2000), 2);
        assert_eq!(q.wake(0x2000, 9, BITSET_MATCH_ANY), [10, 2]);
        assert_eq!(q.wake(0x1000, 9, BITSET_MATCH_ANY), [3, 4]);
    }

    #[test]
    fn requeue_to_self_or_nothing_moves_none() {
        let mut q = Queues::new();
        for i in 0..3 {
            q.push(0x1000, BITSET_MATCH_ANY, i);
        }
        assert_eq!(q.requeue(0x1000, 0x1000, 0, 3), (Vec::new(), 0));
        assert_eq!(q.requeue(0x1000, 0x2000, 0, 0), (Vec::new(), 0));
        assert_eq!(q.requeue(0x1000, 0x2000, 0, 10), (Vec::new(), 3));
        assert_eq!(q.waiting(0x2000), 3);
    }

    /// A context whose futex calls record what they were asked.
    mod decode {
        use super::super::*;
        use crate::linux::process::fake::FakeCtx;

        #[test]
        fn bad_arguments() {
            let mut c = FakeCtx::new();
            let a = |op: usize, addr: usize, val3: usize| [addr, op, 0, 0, 0, val3];
            assert_eq!(
                sys_futex(&mut c, &a(FUTEX_WAIT, 0x1002, 0)),
                Err(Errno::EINVAL)
            );
            assert_eq!(
                sys_futex(&mut c, &a(FUTEX_WAIT_BITSET, 0x1000, 0)),
                Err(Errno::EINVAL)
            );
            assert_eq!(
                sys_futex(&mut c, &a(FUTEX_WAKE_BITSET, 0x1000, 0)),
                Err(Errno::EINVAL)
            );
            assert_eq!(
                sys_futex(&mut c, &a(FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 0x1000, 0)),
                Err(Errno::ENOSYS)
            );
            assert_eq!(sys_futex(&mut c, &a(13, 0x1000, 0)), Err(Errno::ENOSYS));
        }

        #[test]
        fn ops_reach_the_context_with_decoded_arguments() {
            use crate::linux::process::Services;
            use crate::linux::Ctx;
            let mut c = FakeCtx::new();
            let t = c.scratch(4096) as usize;
            let w = t + 64;
            c.copy_out(t, &[1u64.to_le_bytes(), 0u64.to_le_bytes()].concat())
                .unwrap(); // 1 s
            c.copy_out(w, &7u32.to_le_bytes()).unwrap();
            // Relative WAIT: now + 1 s; absolute BITSET: as given.
            let now = c.services.monotonic_ns();
            let r = sys_futex(&mut c, &[w, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 7, t, 0, 0]);
            assert_eq!(r, Err(Errno::ETIMEDOUT));
            let r = sys_futex(&mut c, &[w, FUTEX_WAIT_BITSET, 7, t, 0, 0b100]);
            assert_eq!(r, Err(Errno::ETIMEDOUT));
            let r = sys_futex(&mut c, &[w, FUTEX_WAIT_BITSET, 8, 0, 0, 0b100]);
            assert_eq!(r, Err(Errno::EAGAIN));
            let r = sys_futex(&mut c, &[w, FUTEX_WAKE_BITSET, 3, 0, 0, 0b100]);
            assert_eq!(r, Ok(0));
            let r = sys_futex(&mut c, &[w, FUTEX_CMP_REQUEUE, 1, 5, 0x2000, 9]);
            assert_eq!(r, Ok(0));
            let r = sys_futex(&mut c, &[w, FUTEX_REQUEUE, 1, 5, 0x2000, 9]);
            assert_eq!(r, Ok(0));
            let r = sys_futex(&mut c, &[w, FUTEX_REQUEUE, 1, 5, 0x2002, 9]);
            assert_eq!(r, Err(Errno::EINVAL));
            let calls = c.futex_calls.lock().clone();
            assert_eq!(
                calls,
                [
                    alloc::format!("wait {w:#x} 7 ffffffff {:?}", Some(now + 1_000_000_000)),
                    alloc::format!("wait {w:#x} 7 4 {:?}", Some(1_000_000_000u64)),
                    alloc::format!("wait {w:#x} 8 4 None"),
                    alloc::format!("wake {w:#x} 3 4"),
                    alloc::format!("requeue {w:#x} 0x2000 1 5 Some(9)"),
                    alloc::format!("requeue {w:#x} 0x2000 1 5 None"),
                ]
            );
        }
    }
}
