//! In-VM tests of the sleeping locks with real threads on every CPU.

use super::{Condvar, Mutex, Rcu, RwLock, Semaphore, Timer, WaitQueue};
use crate::{println, sched, time};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// One timer granularity: how late a deadline may be acted on (the same
/// bound the sleep test uses).
const GRANULARITY_NS: u64 = 2_000_000;

ktest! {
    /// A 10 ms periodic timer fires 20 times, each time on its grid
    /// (`start + k·10 ms`): never early, the median fire within one
    /// granularity and none a whole period late, so no drift accumulates
    /// (a timer re-armed from "now" would be later at every fire). Single
    /// fires may be a few ms late when the host deschedules a plain-TCG
    /// vCPU; under icount the worst is within one granularity too.
    fn periodic_timer_fires_on_its_grid_without_drift() {
        const PERIOD: u64 = 10_000_000;
        const FIRES: usize = 20;
        struct Rec {
            at: [AtomicU64; FIRES],
            n: AtomicUsize,
            done: WaitQueue,
        }
        let rec = Arc::new(Rec {
            at: [const { AtomicU64::new(0) }; FIRES],
            n: AtomicUsize::new(0),
            done: WaitQueue::new(),
        });
        let r = rec.clone();
        let timer = Timer::new(move || {
            let i = r.n.fetch_add(1, Ordering::SeqCst);
            if i < FIRES {
                r.at[i].store(time::now_ns(), Ordering::SeqCst);
            }
            if i + 1 == FIRES {
                r.done.wake_all();
            }
        });
        let start = time::now_ns();
        timer.start_periodic(start + PERIOD, PERIOD);
        check!(timer.is_armed());
        let timed_out = rec.done.wait_timeout(2_000_000_000, || rec.n.load(Ordering::SeqCst) >= FIRES);
        check!(!timed_out);
        check!(timer.cancel());
        let n = rec.n.load(Ordering::SeqCst);
        let mut late = Vec::with_capacity(FIRES);
        for k in 0..FIRES {
            let ideal = start + (k as u64 + 1) * PERIOD;
            let at = rec.at[k].load(Ordering::SeqCst);
            check!(at >= ideal);
            late.push(at - ideal);
        }
        let last = late[FIRES - 1];
        late.sort_unstable();
        let (median, worst) = (late[FIRES / 2], late[FIRES - 1]);
        println!(
            "sync: periodic timer fires={n} median_late_us={} worst_late_us={} last_late_us={} overruns={}",
            median / 1000,
            worst / 1000,
            last / 1000,
            timer.overruns()
        );
        check!(median <= GRANULARITY_NS);
        check!(worst < PERIOD);
        // Cancelled: it stays quiet.
        sched::sleep(3 * PERIOD);
        check_eq!(rec.n.load(Ordering::SeqCst), n);
        check!(!timer.is_armed());
        Ok(())
    }
}

ktest! {
    /// A one-shot fires once; a cancelled one never fires.
    fn oneshot_timer_fires_once_and_cancel_sticks() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let t = Timer::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        t.start_oneshot(time::now_ns() + 2_000_000);
        sched::sleep(6_000_000);
        check_eq!(hits.load(Ordering::SeqCst), 1);
        check_eq!(t.fired(), 1);
        check!(!t.is_armed());
        t.start_oneshot(time::now_ns() + 2_000_000);
        check!(t.cancel());
        sched::sleep(6_000_000);
        check_eq!(hits.load(Ordering::SeqCst), 1);
        Ok(())
    }
}

ktest! {
    /// A timed wait nobody wakes times out, never before its deadline and
    /// (median of five) within one granularity after it.
    fn timed_wait_times_out_on_time() {
        let q = WaitQueue::new();
        let mut late = Vec::new();
        for _ in 0..5 {
            let deadline = time::now_ns() + 10_000_000;
            check!(q.wait_until_deadline(deadline, || false));
            let now = time::now_ns();
            check!(now >= deadline);
            late.push(now - deadline);
        }
        check!(q.is_empty());
        late.sort_unstable();
        println!("sync: timed wait lateness median_us={} max_us={}", late[2] / 1000, late[4] / 1000);
        check!(late[2] <= GRANULARITY_NS);
        // A deadline already passed: no wait at all.
        check!(q.wait_until_deadline(0, || false));
        Ok(())
    }
}

ktest! {
    /// A timed wait woken well before its deadline reports woken, and the
    /// timed helpers (semaphore, mutex, condvar) time out and succeed.
    fn timed_wait_woken_early_reports_woken() {
        let q = Arc::new(WaitQueue::new());
        let flag = Arc::new(AtomicBool::new(false));
        let other = (sched::online_cpus() > 1) as u32;
        let (q2, f2) = (q.clone(), flag.clone());
        let waker = check_some!(sched::spawn("waker", move || {
            sched::sleep(5_000_000);
            f2.store(true, Ordering::SeqCst);
            q2.wake_one();
        }, Some(other)).ok());
        let t0 = time::now_ns();
        let timed_out = q.wait_timeout(1_000_000_000, || flag.load(Ordering::SeqCst));
        check!(!timed_out);
        check!(time::now_ns() - t0 < 500_000_000);
        sched::join(&waker);

        let sem = Semaphore::new(0);
        check!(!sem.acquire_timeout(2_000_000));
        sem.release();
        check!(sem.acquire_timeout(2_000_000));
        check_eq!(sem.available(), 0);

        let m = Arc::new(Mutex::new(0u32));
        let held = m.lock();
        let (m2, got) = (m.clone(), Arc::new(AtomicUsize::new(0)));
        let g2 = got.clone();
        let t = check_some!(sched::spawn("trylock", move || {
            if m2.try_lock_for(3_000_000).is_none() {
                g2.fetch_add(1, Ordering::SeqCst); // timed out while held
            }
            sched::sleep(10_000_000);
            if m2.try_lock_for(100_000_000).is_some() {
                g2.fetch_add(10, Ordering::SeqCst); // got it once free
            }
        }, Some(other)).ok());
        sched::sleep(8_000_000);
        drop(held);
        sched::join(&t);
        check_eq!(got.load(Ordering::SeqCst), 11);

        let cv = Condvar::new();
        let g = m.lock();
        let t0 = time::now_ns();
        let (g, timed_out) = cv.wait_timeout(g, 3_000_000);
        check!(timed_out);
        check!(time::now_ns() - t0 >= 3_000_000);
        drop(g);
        Ok(())
    }
}

ktest! {
    /// A waker and a timed waiter on different CPUs (when there are two)
    /// race 1000 times, the wakeup landing before, around and after the
    /// deadline. Each round ends exactly one way: a `wake_one` that
    /// returned true always means the waiter reports woken; a timeout is
    /// never reported early (no stale timeout from an earlier round); no
    /// round hangs.
    fn wake_races_timeout_without_loss_or_duplicates() {
        const ROUNDS: u64 = 1000;
        const TIMEOUT: u64 = 300_000;
        struct Race {
            q: WaitQueue,
            flag: AtomicU64,
            armed: AtomicU64,
            woke_true: AtomicU64,
            wake_result: [AtomicU64; 2],
            done: AtomicU64,
            bad: AtomicU64,
            outcomes: [AtomicU64; 3],
        }
        let r = Arc::new(Race {
            q: WaitQueue::new(),
            flag: AtomicU64::new(0),
            armed: AtomicU64::new(0),
            woke_true: AtomicU64::new(0),
            wake_result: [AtomicU64::new(0), AtomicU64::new(0)],
            done: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            outcomes: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        });
        let cpus = sched::online_cpus();
        let r1 = r.clone();
        let waiter = check_some!(sched::spawn("race-wait", move || {
            for i in 1..=ROUNDS {
                let deadline = time::now_ns() + TIMEOUT;
                r1.armed.store(i, Ordering::SeqCst);
                let timed_out = r1.q.wait_until_deadline(deadline, || r1.flag.load(Ordering::SeqCst) >= i);
                let now = time::now_ns();
                if timed_out && now < deadline {
                    r1.bad.fetch_add(1, Ordering::SeqCst); // early (stale) timeout
                }
                // Wait for the waker to finish this round.
                while r1.done.load(Ordering::SeqCst) < i {
                    sched::yield_now();
                }
                let woke = r1.wake_result[(i % 2) as usize].load(Ordering::SeqCst) == i;
                if woke && timed_out {
                    r1.bad.fetch_add(1000, Ordering::SeqCst); // wakeup lost
                }
                let o = match (woke, timed_out) { (true, _) => 0, (false, false) => 1, (false, true) => 2 };
                r1.outcomes[o].fetch_add(1, Ordering::SeqCst);
            }
        }, Some(0)).ok());
        let r2 = r.clone();
        let waker = check_some!(sched::spawn("race-wake", move || {
            for i in 1..=ROUNDS {
                while r2.armed.load(Ordering::SeqCst) < i {
                    sched::yield_now();
                }
                // Land anywhere from well before to well after the deadline.
                let delay = (i * 7919) % (2 * TIMEOUT);
                let t0 = time::now_ns();
                while time::now_ns() - t0 < delay {
                    if cpus == 1 {
                        sched::yield_now();
                    }
                    core::hint::spin_loop();
                }
                r2.flag.store(i, Ordering::SeqCst);
                if r2.q.wake_one() {
                    r2.woke_true.fetch_add(1, Ordering::SeqCst);
                    r2.wake_result[(i % 2) as usize].store(i, Ordering::SeqCst);
                }
                r2.done.store(i, Ordering::SeqCst);
            }
        }, Some(cpus.min(2) - 1)).ok());
        sched::join(&waiter);
        sched::join(&waker);
        let o: Vec<u64> = r.outcomes.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        println!("sync: wake/timeout race rounds={ROUNDS} woken={} cond_true={} timed_out={} bad={}",
            o[0], o[1], o[2], r.bad.load(Ordering::SeqCst));
        check_eq!(r.bad.load(Ordering::SeqCst), 0);
        check_eq!(o.iter().sum::<u64>(), ROUNDS);
        check_eq!(o[0], r.woke_true.load(Ordering::SeqCst));
        check!(r.q.is_empty());
        Ok(())
    }
}

/// A table version for the RCU test: dropping it poisons its canary.
struct Version {
    canary: AtomicU64,
    gen: u64,
    cells: [u64; 8],
}

const LIVE: u64 = 0x5afe_7ab1e;
const DEAD: u64 = 0xdead_7ab1e;

impl Version {
    fn new(gen: u64) -> Arc<Version> {
        Arc::new(Version {
            canary: AtomicU64::new(LIVE),
            gen,
            cells: core::array::from_fn(|k| gen * 31 + k as u64),
        })
    }

    fn intact(&self) -> bool {
        self.canary.load(Ordering::SeqCst) == LIVE
            && self
                .cells
                .iter()
                .enumerate()
                .all(|(k, &c)| c == self.gen * 31 + k as u64)
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        self.canary.store(DEAD, Ordering::SeqCst);
    }
}

ktest! {
    /// Readers on every CPU never see a freed (poisoned) or torn version,
    /// and never go back in generation, while a writer replaces the table
    /// 1000 times; every update's grace period ends.
    fn rcu_readers_never_see_freed_versions() {
        const UPDATES: u64 = 1000;
        let table = Arc::new(Rcu::new(Version::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for c in 0..sched::online_cpus() {
            let (table, stop, bad, reads) = (table.clone(), stop.clone(), bad.clone(), reads.clone());
            readers.push(check_some!(sched::spawn("rcu-read", move || {
                let mut last = 0;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    {
                        let v = table.read();
                        if !v.intact() || v.gen < last {
                            bad.fetch_add(1, Ordering::SeqCst);
                        }
                        last = v.gen;
                        // Hold the version a while, then look again.
                        for _ in 0..50 {
                            core::hint::spin_loop();
                        }
                        if !v.intact() {
                            bad.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    n += 1;
                    if n.is_multiple_of(16) {
                        sched::yield_now();
                    }
                }
                reads.fetch_add(n, Ordering::SeqCst);
            }, Some(c)).ok()));
        }
        let t0 = time::now_ns();
        for g in 1..=UPDATES {
            let old = table.update(Version::new(g));
            check!(old.intact());
            check_eq!(old.gen, g - 1);
            drop(old); // freed here: no reader may hold it any more
            // Let a reader on this CPU in (the only ones at -smp 1).
            sched::yield_now();
        }
        let took = time::now_ns() - t0;
        stop.store(true, Ordering::SeqCst);
        for t in &readers {
            sched::join(t);
        }
        println!("sync: rcu updates={UPDATES} reads={} us_per_update={} bad={}",
            reads.load(Ordering::SeqCst), took / UPDATES / 1000, bad.load(Ordering::SeqCst));
        check_eq!(bad.load(Ordering::SeqCst), 0);
        check_eq!(table.read().gen, UPDATES);
        check!(reads.load(Ordering::SeqCst) > 0);
        // The value outlives the read section through `get`.
        let kept = table.get();
        check_eq!(kept.gen, UPDATES);
        Ok(())
    }
}
