//! Kernel timers and timed waits on the tickless per-CPU timer.
//!
//! Every CPU keeps one [`TimerList`] of deadlines: sleeping threads, the
//! deadlines of timed waits, and [`Timer`]s. The hardware one-shot timer is
//! armed for the soonest of them (or the running thread's slice end); when
//! it fires, [`fire_expired`] pops every expired entry — waking the thread
//! (marked timed out) or running the timer's callback — with the list's
//! lock held, so a cancel that returned is final: the entry is gone, or its
//! wakeup or callback has completely happened.
//!
//! Callbacks run in the timer interrupt, interrupts off and the CPU's timer
//! list locked: they must do O(1) work (typically wake a thread) and must
//! not start or cancel timers themselves (that lock is not reentrant).
//! Periodic timers are re-armed on their grid (`start + k·period`), so they
//! never drift; missed periods are skipped and counted as overruns.

use super::kthread::{self, PerCpu};
use super::thread::Thread;
use super::timerlist::next_periodic;
use crate::arch;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What a deadline does when it passes.
pub enum Pending {
    /// Wake this thread (a sleep or a timed wait), marked timed out.
    Thread(Arc<Thread>),
    /// Run this timer's callback (and re-arm it if periodic).
    Timer(Arc<TimerState>),
}

const NOT_ARMED: u32 = u32::MAX;

/// The shared part of a [`Timer`], referenced from the CPU list it is
/// armed on.
pub struct TimerState {
    callback: Box<dyn Fn() + Send + Sync>,
    /// 0: one-shot.
    period_ns: AtomicU64,
    /// The CPU whose list holds it, `NOT_ARMED` if none. Changed only with
    /// that list locked.
    cpu: AtomicU32,
    fired: AtomicU64,
    overruns: AtomicU64,
}

/// A one-shot or periodic kernel timer whose callback runs in the timer
/// interrupt of the CPU that started it. Dropping it cancels it.
pub struct Timer {
    state: Arc<TimerState>,
}

impl Timer {
    /// A stopped timer that will call `callback` (O(1), interrupt context,
    /// must not start or cancel timers).
    pub fn new(callback: impl Fn() + Send + Sync + 'static) -> Timer {
        Timer {
            state: Arc::new(TimerState {
                callback: Box::new(callback),
                period_ns: AtomicU64::new(0),
                cpu: AtomicU32::new(NOT_ARMED),
                fired: AtomicU64::new(0),
                overruns: AtomicU64::new(0),
            }),
        }
    }

    /// Fires once at `deadline_ns` (`time::now_ns` scale); re-arms if armed.
    pub fn start_oneshot(&self, deadline_ns: u64) {
        self.start(deadline_ns, 0);
    }

    /// Fires at `first_ns`, then every `period_ns` (> 0) on that grid.
    pub fn start_periodic(&self, first_ns: u64, period_ns: u64) {
        self.start(first_ns, period_ns.max(1));
    }

    fn start(&self, deadline_ns: u64, period_ns: u64) {
        arch::cpu::without_interrupts(|| {
            self.cancel_locked();
            let cpu = kthread::this_cpu();
            {
                let mut l = cpu.timers.lock();
                self.state.period_ns.store(period_ns, Ordering::Relaxed);
                self.state.cpu.store(cpu.index, Ordering::Release);
                l.insert(deadline_ns, Pending::Timer(self.state.clone()));
            }
            kthread::refresh_timer(cpu);
        });
    }

    /// Stops the timer. When this returns its callback is not running and
    /// will not run until the timer is started again. True if it was armed.
    pub fn cancel(&self) -> bool {
        arch::cpu::without_interrupts(|| self.cancel_locked())
    }

    /// Interrupts off.
    fn cancel_locked(&self) -> bool {
        loop {
            let idx = self.state.cpu.load(Ordering::Acquire);
            if idx == NOT_ARMED {
                return false;
            }
            let Some(cpu) = kthread::cpus().get(idx as usize) else {
                return false;
            };
            let mut l = cpu.timers.lock();
            // It may have fired (one-shot) and been re-started elsewhere
            // between the load and the lock: check under the lock.
            if self.state.cpu.load(Ordering::Acquire) != idx {
                continue;
            }
            l.remove(|p| matches!(p, Pending::Timer(s) if Arc::ptr_eq(s, &self.state)));
            self.state.cpu.store(NOT_ARMED, Ordering::Release);
            return true;
        }
    }

    /// Times the callback ran.
    pub fn fired(&self) -> u64 {
        self.state.fired.load(Ordering::Acquire)
    }

    /// Periods a periodic timer skipped because they had passed already.
    pub fn overruns(&self) -> u64 {
        self.state.overruns.load(Ordering::Relaxed)
    }

    pub fn is_armed(&self) -> bool {
        self.state.cpu.load(Ordering::Acquire) != NOT_ARMED
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Where a timed wait's deadline was registered (to cancel it).
pub(crate) struct WaitTimeout {
    cpu: u32,
}

/// Registers `deadline_ns` for the calling thread `me`, which has just
/// marked itself waiting. Interrupts off. The timer is (re)programmed by the
/// `block` that follows.
pub(crate) fn add_wait_timeout(deadline_ns: u64, me: &Arc<Thread>) -> WaitTimeout {
    let cpu = kthread::this_cpu();
    cpu.timers
        .lock()
        .insert(deadline_ns, Pending::Thread(me.clone()));
    WaitTimeout { cpu: cpu.index }
}

/// Removes the deadline of a timed wait that ended (`me` is the caller).
/// Interrupts off. After this returns no timeout wakeup for that wait can
/// arrive any more: the entry was removed here, or the timer popped it and
/// made its (one) wakeup attempt under the same lock.
pub(crate) fn cancel_wait_timeout(t: WaitTimeout, me: &Arc<Thread>) {
    if let Some(cpu) = kthread::cpus().get(t.cpu as usize) {
        cpu.timers
            .lock()
            .remove(|p| matches!(p, Pending::Thread(x) if Arc::ptr_eq(x, me)));
    }
}

/// The timer interrupt's part: pops and acts on every deadline of `cpu`
/// that passed by `now_ns`. Interrupts off.
pub(super) fn fire_expired(cpu: &PerCpu, now_ns: u64) {
    let mut l = cpu.timers.lock();
    while let Some((deadline, p)) = l.pop_expired(now_ns) {
        match p {
            Pending::Thread(t) => {
                kthread::wake_with(&t, true);
            }
            Pending::Timer(s) => {
                s.fired.fetch_add(1, Ordering::Release);
                (s.callback)();
                let period = s.period_ns.load(Ordering::Relaxed);
                if period == 0 {
                    s.cpu.store(NOT_ARMED, Ordering::Release);
                } else {
                    let (next, missed) = next_periodic(deadline, period, now_ns);
                    s.overruns.fetch_add(missed, Ordering::Relaxed);
                    l.insert(next, Pending::Timer(s));
                }
            }
        }
    }
}
