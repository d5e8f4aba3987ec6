//! RCU-style reads for read-mostly tables (DESIGN decision 5).
//!
//! An [`Rcu<T>`] holds the current version of a value behind an atomic
//! pointer. [`Rcu::read`] is lock-free: it disables preemption on its CPU
//! (a per-CPU counter, no atomic read-modify-write shared with other CPUs)
//! and loads the pointer; the guard keeps the version alive by keeping its
//! CPU out of a quiescent state. [`Rcu::update`] publishes a new version and
//! frees the old one only after a grace period
//! ([`sched::synchronize_rcu`]): every other CPU has taken a scheduling
//! decision outside any read section since, so no reader can still hold it.
//!
//! Rules for readers: keep sections short, and never block, yield or sleep
//! inside one (the scheduler panics if you do). Readers may run on any CPU,
//! in threads or interrupt handlers. Writers serialise among themselves (a
//! sleeping mutex) and may sleep.

use super::Mutex;
use crate::sched;
use alloc::sync::Arc;
use core::ops::Deref;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A read-mostly value with lock-free reads and grace-period-deferred frees.
pub struct Rcu<T> {
    /// From `Arc::into_raw`: the `Rcu` owns one strong count of it.
    current: AtomicPtr<T>,
    writer: Mutex<()>,
}

// The value is shared between threads as an `Arc<T>` would be.
#[allow(unsafe_code)]
// SAFETY: `Rcu<T>` owns an `Arc<T>` (as a raw pointer) and hands out `&T`
// to readers on any thread: exactly the bounds `Arc<T>: Send + Sync` needs.
unsafe impl<T: Send + Sync> Send for Rcu<T> {}
#[allow(unsafe_code)]
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Rcu<T> {}

/// A pinned version of an [`Rcu`] value; preemption is off on its CPU while
/// it lives.
pub struct RcuReadGuard<'a, T> {
    value: &'a T,
    cpu: u32,
}

impl<T> Rcu<T> {
    pub fn new(value: Arc<T>) -> Self {
        Rcu {
            current: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            writer: Mutex::new(()),
        }
    }

    /// The current version, pinned until the guard is dropped.
    pub fn read(&self) -> RcuReadGuard<'_, T> {
        let cpu = sched::preempt_disable();
        let p = self.current.load(Ordering::SeqCst);
        #[allow(unsafe_code)]
        // SAFETY: `p` came from `Arc::into_raw` and its strong count is only
        // given up by `update` after `synchronize_rcu`, which cannot return
        // while this CPU is in a read section (preemption off: its quiescent
        // counter does not move until the guard drops), nor by `drop`, which
        // needs `&mut self` (no guard can borrow `self` then).
        let value = unsafe { &*p };
        RcuReadGuard { value, cpu }
    }

    /// A counted reference to the current version, usable after the read
    /// section (and across sleeps).
    pub fn get(&self) -> Arc<T> {
        let g = self.read();
        #[allow(unsafe_code)]
        // SAFETY: the pointer is the `Arc::into_raw` of the current version,
        // alive while the guard pins it (see `read`); we add one count.
        unsafe {
            let p: *const T = g.value;
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Publishes `value`, waits for a grace period and returns the old
    /// version, which no reader can see any more (dropping it frees it
    /// unless someone holds an `Arc` from [`get`](Self::get)). Sleeps.
    pub fn update(&self, value: Arc<T>) -> Arc<T> {
        let _w = self.writer.lock();
        let old = self
            .current
            .swap(Arc::into_raw(value).cast_mut(), Ordering::SeqCst);
        sched::synchronize_rcu();
        #[allow(unsafe_code)]
        // SAFETY: `old` came from `Arc::into_raw` and this `Rcu` owned its
        // count; after the grace period no read section still uses it.
        unsafe {
            Arc::from_raw(old)
        }
    }
}

impl<T> Drop for Rcu<T> {
    fn drop(&mut self) {
        let p = *self.current.get_mut();
        #[allow(unsafe_code)]
        // SAFETY: `&mut self`: no guard borrows `self`; the `Rcu` owns this
        // strong count.
        drop(unsafe { Arc::from_raw(p) });
    }
}

impl<T> Deref for RcuReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> Drop for RcuReadGuard<'_, T> {
    fn drop(&mut self) {
        sched::preempt_enable(self.cpu);
    }
}
