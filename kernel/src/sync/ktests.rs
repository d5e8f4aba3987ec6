//! In-VM tests of the sleeping locks with real threads on every CPU.

use super::{Condvar, Mutex, RwLock, Semaphore, WaitQueue};
use crate::sched;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use skiff_ktest::{check, check_eq, check_some, ktest};

ktest! {
    /// 8 threads over every CPU add to a plain (non-atomic) counter under
    /// the mutex, reading and writing it in two steps with a yield between:
    /// any lost update shows in the total.
    fn mutex_protects_a_counter_under_contention() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 2000;
        let m = Arc::new(Mutex::new(0usize));
        let cpus = sched::online_cpus();
        let mut ts = Vec::new();
        for i in 0..THREADS {
            let m = m.clone();
            ts.push(check_some!(sched::spawn("hammer", move || {
                for r in 0..ROUNDS {
                    let mut g = m.lock();
                    let v = *g;
                    if r % 64 == 0 {
                        sched::yield_now();
                    }
                    *g = v + 1;
                }
            }, Some(i as u32 % cpus)).ok()));
        }
        for t in &ts {
            sched::join(t);
        }
        check_eq!(*m.lock(), THREADS * ROUNDS);
        check!(m.try_lock().is_some());
        Ok(())
    }
}

ktest! {
    /// A producer and a consumer on different CPUs (when there are two)
    /// pass 100 000 items through a bounded queue with a condvar; the
    /// consumer sees every item once, in order.
    fn condvar_producer_consumer_in_order() {
        const ITEMS: usize = 100_000;
        const CAP: usize = 64;
        struct Chan {
            q: Mutex<VecDeque<usize>>,
            not_empty: Condvar,
            not_full: Condvar,
        }
        let ch = Arc::new(Chan { q: Mutex::new(VecDeque::new()), not_empty: Condvar::new(), not_full: Condvar::new() });
        let other = (sched::online_cpus() > 1) as u32;
        let c = ch.clone();
        let producer = check_some!(sched::spawn("producer", move || {
            for i in 0..ITEMS {
                let mut q = c.not_full.wait_while(c.q.lock(), |q| q.len() >= CAP);
                q.push_back(i);
                drop(q);
                c.not_empty.notify_one();
            }
        }, Some(other)).ok());
        let c = ch.clone();
        let in_order = Arc::new(AtomicUsize::new(0));
        let io = in_order.clone();
        let consumer = check_some!(sched::spawn("consumer", move || {
            for i in 0..ITEMS {
                let mut q = c.not_empty.wait_while(c.q.lock(), |q| q.is_empty());
                let v = q.pop_front();
                drop(q);
                c.not_full.notify_one();
                if v == Some(i) {
                    io.fetch_add(1, Ordering::Relaxed);
                }
            }
        }, Some(0)).ok());
        sched::join(&producer);
        sched::join(&consumer);
        check_eq!(in_order.load(Ordering::Relaxed), ITEMS);
        check!(ch.q.lock().is_empty());
        Ok(())
    }
}

ktest! {
    /// A semaphore of 2 never lets 3 threads in at once, and all 6 get in.
    fn semaphore_bounds_concurrency() {
        let sem = Arc::new(Semaphore::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let mut ts = Vec::new();
        for i in 0..6u32 {
            let (sem, inside, max, entered) = (sem.clone(), inside.clone(), max.clone(), entered.clone());
            ts.push(check_some!(sched::spawn("sem", move || {
                for _ in 0..20 {
                    sem.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    sched::sleep(100_000);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release();
                }
                entered.fetch_add(1, Ordering::SeqCst);
            }, Some(i % sched::online_cpus())).ok()));
        }
        for t in &ts {
            sched::join(t);
        }
        check_eq!(entered.load(Ordering::SeqCst), 6);
        check!(max.load(Ordering::SeqCst) <= 2);
        check_eq!(max.load(Ordering::SeqCst), 2);
        check_eq!(sem.available(), 2);
        Ok(())
    }
}

ktest! {
    /// Writers see no readers and no other writer; readers see a
    /// consistent pair (both halves written under one write lock).
    fn rwlock_excludes_writers() {
        let lock = Arc::new(RwLock::new((0u64, 0u64)));
        let torn = Arc::new(AtomicBool::new(false));
        let mut ts = Vec::new();
        for i in 0..4u32 {
            let (lock, torn) = (lock.clone(), torn.clone());
            ts.push(check_some!(sched::spawn("rw", move || {
                for r in 0..500u64 {
                    if (r + u64::from(i)) % 4 == 0 {
                        let mut w = lock.write();
                        w.0 += 1;
                        if r % 16 == 0 {
                            sched::yield_now();
                        }
                        w.1 += 1;
                    } else {
                        let g = lock.read();
                        if g.0 != g.1 {
                            torn.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }, Some(i % sched::online_cpus())).ok()));
        }
        for t in &ts {
            sched::join(t);
        }
        check!(!torn.load(Ordering::SeqCst));
        let g = lock.read();
        check_eq!(g.0, 500);
        check_eq!(g.1, 500);
        Ok(())
    }
}

ktest! {
    /// wake_one wakes exactly one waiter, wake_all the rest.
    fn wait_queue_wakes_one_then_all() {
        let q = Arc::new(WaitQueue::new());
        let go = Arc::new(AtomicUsize::new(0));
        let woke = Arc::new(AtomicUsize::new(0));
        let mut ts = Vec::new();
        for _ in 0..3 {
            let (q, go, woke) = (q.clone(), go.clone(), woke.clone());
            ts.push(check_some!(sched::spawn("waiter", move || {
                q.wait_until(|| go.load(Ordering::SeqCst) > 0);
                woke.fetch_add(1, Ordering::SeqCst);
            }, Some(0)).ok()));
        }
        // Let all three block.
        while q.len() < 3 {
            sched::sleep(1_000_000);
        }
        check_eq!(woke.load(Ordering::SeqCst), 0);
        go.store(1, Ordering::SeqCst);
        check!(q.wake_one());
        sched::sleep(5_000_000);
        check_eq!(woke.load(Ordering::SeqCst), 1);
        check_eq!(q.wake_all(), 2);
        for t in &ts {
            sched::join(t);
        }
        check_eq!(woke.load(Ordering::SeqCst), 3);
        Ok(())
    }
}
