//! Sleeping synchronisation for kernel threads: [`WaitQueue`] (the one
//! primitive that blocks, with or without a deadline), and on top of it
//! [`Mutex`], [`Condvar`], [`Semaphore`], [`RwLock`], [`Rcu`], the
//! multi-queue, interruptible [`wait_any`], plus
//! `sleep`/`sleep_until` and [`Timer`] re-exported from the scheduler.
//!
//! Deadlines are absolute `time::now_ns()` values. A timed wait ends in
//! exactly one way: the wakeup that ends it is whichever of the waker and
//! the deadline wins the thread's `Waiting → Waking` CAS; the loser does
//! nothing (a `wake_one` that loses passes its wakeup to the next waiter).
//!
//! Lock discipline (docs/scheduler.md): a wait queue's own spin lock is held
//! only with interrupts off and never across a switch; a thread marks itself
//! waiting *under* that lock after re-checking its condition, so a waker
//! (who takes the same lock) either sees it queued or the condition true —
//! no lost wakeups. The data locks are built from `spin` locks used only
//! through `try_lock`, so every guard is an ordinary safe guard.

use crate::sched::{self, ktimer, thread::Thread};
use crate::{arch, time};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

pub use crate::sched::{sleep, sleep_until, Timer};
pub use rcu::{Rcu, RcuReadGuard};

mod ktests;
pub mod rcu;

/// Threads waiting for something, woken in FIFO order.
#[derive(Default)]
pub struct WaitQueue {
    waiters: spin::Mutex<VecDeque<Arc<Thread>>>,
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue {
            waiters: spin::Mutex::new(VecDeque::new()),
        }
    }

    /// Blocks until `cond()` holds. `cond` runs with interrupts off and the
    /// queue locked: keep it short and non-blocking (an atomic load, a
    /// `try_lock`). Returns with interrupts as they were.
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        loop {
            let done = arch::cpu::without_interrupts(|| {
                let mut q = self.waiters.lock();
                if cond() {
                    return true;
                }
                let me = sched::prepare_to_wait();
                q.push_back(me);
                drop(q);
                sched::block();
                false
            });
            if done {
                sched::preempt_point();
                return;
            }
        }
    }

    /// Blocks until `cond()` holds or the clock reaches `deadline_ns`
    /// (`time::now_ns` scale). Returns true if it timed out — `cond` was
    /// still false at (or after) the deadline — and false once `cond` held.
    /// `cond` runs as for [`wait_until`](Self::wait_until).
    ///
    /// Races: a waker that sets the condition and then wakes this queue
    /// before the deadline wins, so a `wake_one` that returned true for this
    /// thread always ends in `false` here. If the deadline wins the CAS the
    /// waker's `wake_one` moves on to the next waiter; this thread removes
    /// itself from the queue and re-checks `cond` once more (so a condition
    /// that became true meanwhile still reports `false`, never a lost
    /// wakeup). A timeout is never reported before `deadline_ns`.
    pub fn wait_until_deadline(&self, deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
        loop {
            let outcome = arch::cpu::without_interrupts(|| {
                let mut q = self.waiters.lock();
                if cond() {
                    return Some(false);
                }
                if time::now_ns() >= deadline_ns {
                    return Some(true);
                }
                let me = sched::prepare_to_wait();
                q.push_back(me.clone());
                let timeout = ktimer::add_wait_timeout(deadline_ns, &me);
                drop(q);
                sched::block();
                // No timeout wakeup for this wait can arrive after this.
                ktimer::cancel_wait_timeout(timeout, &me);
                if me.timed_out() {
                    // Still queued unless a waker popped us and lost the CAS.
                    let mut q = self.waiters.lock();
                    if let Some(i) = q.iter().position(|t| Arc::ptr_eq(t, &me)) {
                        q.remove(i);
                    }
                }
                None
            });
            if let Some(timed_out) = outcome {
                sched::preempt_point();
                return timed_out;
            }
        }
    }

    /// [`wait_until_deadline`](Self::wait_until_deadline) `timeout_ns` from now.
    pub fn wait_timeout(&self, timeout_ns: u64, cond: impl FnMut() -> bool) -> bool {
        self.wait_until_deadline(time::now_ns().saturating_add(timeout_ns), cond)
    }

    /// Wakes the longest waiter still waiting; false if there was none.
    pub fn wake_one(&self) -> bool {
        let woke = arch::cpu::without_interrupts(|| {
            let mut q = self.waiters.lock();
            while let Some(t) = q.pop_front() {
                if sched::wake(&t) {
                    return true;
                }
            }
            false
        });
        sched::preempt_point();
        woke
    }

    /// Wakes every waiter; returns how many were woken.
    pub fn wake_all(&self) -> usize {
        let n = arch::cpu::without_interrupts(|| {
            let mut q = self.waiters.lock();
            let mut n = 0;
            while let Some(t) = q.pop_front() {
                n += usize::from(sched::wake(&t));
            }
            n
        });
        sched::preempt_point();
        n
    }

    /// Drops `t` from the queue if it is still there. Interrupts off.
    fn forget(&self, t: &Arc<Thread>) {
        let mut q = self.waiters.lock();
        if let Some(i) = q.iter().position(|x| Arc::ptr_eq(x, t)) {
            q.remove(i);
        }
    }

    /// Threads queued (some may have been woken by other means meanwhile).
    pub fn len(&self) -> usize {
        arch::cpu::without_interrupts(|| self.waiters.lock().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a [`wait_any`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// `cond()` held.
    Ready,
    /// The deadline passed with `cond()` still false.
    TimedOut,
    /// The thread's interrupt was raised (`sched::interrupt`: a signal
    /// arrived) with `cond()` still false. The interrupt stays raised.
    Interrupted,
}

/// Waits on several queues at once (poll, select, epoll_wait, interruptible
/// single waits) until `cond()` holds, the clock passes `deadline_ns`
/// (`None`: no deadline) or — if `interruptible` — the thread's interrupt
/// is raised. A wakeup from any of the queues makes it re-check `cond`.
///
/// `cond` runs with interrupts off and **must not block**: atomics and
/// short spin locks only (readiness checks like `Inode::poll_ready`).
/// Unlike [`WaitQueue::wait_until`] it is checked *after* the thread queued
/// itself everywhere, so a waker that changes the state and then wakes a
/// queue either is seen by that check or wakes this thread — no lost
/// wakeups without holding every queue's lock at once.
///
/// `cond` is checked first, so a ready condition wins over a raised
/// interrupt and over an expired deadline.
pub fn wait_any(
    queues: &[&WaitQueue],
    deadline_ns: Option<u64>,
    interruptible: bool,
    mut cond: impl FnMut() -> bool,
) -> Wake {
    loop {
        let outcome = arch::cpu::without_interrupts(|| {
            if cond() {
                return Some(Wake::Ready);
            }
            let me = sched::prepare_to_wait();
            if interruptible {
                me.set_interruptible(true);
            }
            let early = |me: &Arc<Thread>, cond: &mut dyn FnMut() -> bool| {
                if cond() {
                    Some(Wake::Ready)
                } else if interruptible && me.interrupt_pending() {
                    Some(Wake::Interrupted)
                } else if deadline_ns.is_some_and(|d| time::now_ns() >= d) {
                    Some(Wake::TimedOut)
                } else {
                    None
                }
            };
            for q in queues {
                q.waiters.lock().push_back(me.clone());
            }
            let result = match early(&me, &mut cond) {
                Some(r) => {
                    sched::cancel_wait(&me);
                    Some(r)
                }
                None => {
                    let timeout = deadline_ns.map(|d| ktimer::add_wait_timeout(d, &me));
                    sched::block();
                    if let Some(t) = timeout {
                        // No timeout wakeup for this wait can arrive after this.
                        ktimer::cancel_wait_timeout(t, &me);
                    }
                    // Woken by a queue, the deadline or an interrupt: decide
                    // here, so a wakeup that raced a deadline is not lost.
                    early(&me, &mut cond)
                }
            };
            me.set_interruptible(false);
            for q in queues {
                q.forget(&me);
            }
            result
        });
        if let Some(r) = outcome {
            sched::preempt_point();
            return r;
        }
    }
}

/// How many times a contended `lock` retries before sleeping.
const SPIN_TRIES: u32 = 100;

/// A sleeping mutex: one CAS when uncontended, a short bounded spin, then
/// the wait queue. Not reentrant.
pub struct Mutex<T> {
    data: spin::Mutex<T>,
    /// Threads between "decided to sleep" and "got the lock".
    sleepers: AtomicU32,
    queue: WaitQueue,
}

pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    inner: Option<spin::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            data: spin::Mutex::new(value),
            sleepers: AtomicU32::new(0),
            queue: WaitQueue::new(),
        }
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.data.try_lock().map(|g| MutexGuard {
            mutex: self,
            inner: Some(g),
        })
    }

    /// Like [`lock`](Self::lock) but gives up at `deadline_ns`.
    pub fn try_lock_until(&self, deadline_ns: u64) -> Option<MutexGuard<'_, T>> {
        for _ in 0..SPIN_TRIES {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            core::hint::spin_loop();
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut got = None;
        self.queue.wait_until_deadline(deadline_ns, || {
            got = self.data.try_lock();
            got.is_some()
        });
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        got.map(|g| MutexGuard {
            mutex: self,
            inner: Some(g),
        })
    }

    /// Like [`lock`](Self::lock) but gives up after `timeout_ns`.
    pub fn try_lock_for(&self, timeout_ns: u64) -> Option<MutexGuard<'_, T>> {
        self.try_lock_until(time::now_ns().saturating_add(timeout_ns))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        for _ in 0..SPIN_TRIES {
            if let Some(g) = self.try_lock() {
                return g;
            }
            core::hint::spin_loop();
        }
        // Announce ourselves before the last try (a full fence on the RMW),
        // so an unlocker that misses our try sees the count and wakes us.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut got = None;
        self.queue.wait_until(|| {
            got = self.data.try_lock();
            got.is_some()
        });
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        MutexGuard {
            mutex: self,
            inner: got,
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.inner.as_ref().expect("mutex guard holds the lock")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("mutex guard holds the lock")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.inner.take());
        // Pairs with the SeqCst increment in `lock`: either the sleeper's
        // retry sees the lock free, or we see it counted.
        fence(Ordering::SeqCst);
        if self.mutex.sleepers.load(Ordering::SeqCst) > 0 {
            self.mutex.queue.wake_one();
        }
    }
}

/// A condition variable for [`Mutex`]. Wakeups may be spurious: wait in a
/// loop on the real condition.
#[derive(Default)]
pub struct Condvar {
    seq: AtomicU64,
    queue: WaitQueue,
}

impl Condvar {
    pub const fn new() -> Self {
        Condvar {
            seq: AtomicU64::new(0),
            queue: WaitQueue::new(),
        }
    }

    /// Unlocks, waits for a notification, relocks.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = guard.mutex;
        let seen = self.seq.load(Ordering::SeqCst);
        drop(guard);
        self.queue
            .wait_until(|| self.seq.load(Ordering::SeqCst) != seen);
        mutex.lock()
    }

    /// [`wait`](Self::wait) that gives up at `deadline_ns`; the flag is
    /// true if it timed out without a notification. Relocks either way.
    pub fn wait_until_deadline<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline_ns: u64,
    ) -> (MutexGuard<'a, T>, bool) {
        let mutex = guard.mutex;
        let seen = self.seq.load(Ordering::SeqCst);
        drop(guard);
        let timed_out = self
            .queue
            .wait_until_deadline(deadline_ns, || self.seq.load(Ordering::SeqCst) != seen);
        (mutex.lock(), timed_out)
    }

    /// [`wait`](Self::wait) for at most `timeout_ns`; true if it timed out.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout_ns: u64,
    ) -> (MutexGuard<'a, T>, bool) {
        self.wait_until_deadline(guard, time::now_ns().saturating_add(timeout_ns))
    }

    /// Waits until `cond(&mut T)` holds.
    pub fn wait_while<'a, T>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut cond: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while cond(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.queue.wake_one();
    }

    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.queue.wake_all();
    }
}

/// A counting semaphore.
pub struct Semaphore {
    count: spin::Mutex<usize>,
    queue: WaitQueue,
}

impl Semaphore {
    pub const fn new(count: usize) -> Self {
        Semaphore {
            count: spin::Mutex::new(count),
            queue: WaitQueue::new(),
        }
    }

    fn try_take(&self) -> bool {
        arch::cpu::without_interrupts(|| {
            let mut c = self.count.lock();
            if *c > 0 {
                *c -= 1;
                true
            } else {
                false
            }
        })
    }

    pub fn try_acquire(&self) -> bool {
        self.try_take()
    }

    pub fn acquire(&self) {
        self.queue.wait_until(|| self.try_take());
    }

    /// Takes one unit, waiting until `deadline_ns` at most; true if taken.
    pub fn acquire_until(&self, deadline_ns: u64) -> bool {
        !self
            .queue
            .wait_until_deadline(deadline_ns, || self.try_take())
    }

    /// Takes one unit, waiting `timeout_ns` at most; true if taken.
    pub fn acquire_timeout(&self, timeout_ns: u64) -> bool {
        self.acquire_until(time::now_ns().saturating_add(timeout_ns))
    }

    pub fn release(&self) {
        arch::cpu::without_interrupts(|| *self.count.lock() += 1);
        self.queue.wake_one();
    }

    pub fn available(&self) -> usize {
        arch::cpu::without_interrupts(|| *self.count.lock())
    }
}

/// A sleeping reader-writer lock (writers are not preferred; a release
/// wakes every waiter and they race).
pub struct RwLock<T> {
    data: spin::RwLock<T>,
    queue: WaitQueue,
}

pub struct ReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    inner: Option<spin::RwLockReadGuard<'a, T>>,
}

pub struct WriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    inner: Option<spin::RwLockWriteGuard<'a, T>>,
}

impl<T> RwLock<T> {
    pub const fn new(value: T) -> Self {
        RwLock {
            data: spin::RwLock::new(value),
            queue: WaitQueue::new(),
        }
    }

    pub fn read(&self) -> ReadGuard<'_, T> {
        let mut got = None;
        self.queue.wait_until(|| {
            got = self.data.try_read();
            got.is_some()
        });
        ReadGuard {
            lock: self,
            inner: got,
        }
    }

    pub fn write(&self) -> WriteGuard<'_, T> {
        let mut got = None;
        self.queue.wait_until(|| {
            got = self.data.try_write();
            got.is_some()
        });
        WriteGuard {
            lock: self,
            inner: got,
        }
    }
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.inner.as_ref().expect("read guard holds the lock")
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.inner.take());
        self.lock.queue.wake_all();
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.inner.as_ref().expect("write guard holds the lock")
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("write guard holds the lock")
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.inner.take());
        self.lock.queue.wake_all();
    }
}
