//! A time-stepped simulation of several CPUs running the real scheduler
//! code (`CpuSched`, `wake`, the balancer) with simulated threads, so the
//! issue's scheduling properties are checked on the host: fair shares,
//! every CPU used, cross-CPU wakeups neither lost nor duplicated, idle CPUs
//! with no timer armed.

use super::cpu::{spawn_remote, wake, CpuSched, CpuShared, Reason};
use super::thread::{State, Thread};
use alloc::sync::Arc;
use std::collections::HashMap;
use std::vec::Vec;

const STEP: u64 = 50_000; // 50 µs
const BALANCE_EVERY: u64 = 10_000_000; // 10 ms

/// What a simulated thread does when it gets the CPU for a step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// Computes forever.
    Busy,
    /// Ping-pong partner: when it runs, it hands the ball to `peer` (waking
    /// it) and blocks until the ball comes back.
    PingPong { peer: u64 },
}

struct Sim {
    now: u64,
    cpus: Vec<CpuSched>,
    shared: Vec<Arc<CpuShared>>,
    timers: Vec<Option<u64>>,
    behaviour: HashMap<u64, Behaviour>,
    threads: HashMap<u64, Arc<Thread>>,
    /// Ping-pong: who holds the ball, and how many hand-offs happened.
    ball: u64,
    handoffs: u64,
    wake_failures: u64,
    next_id: u64,
}

impl Sim {
    fn new(ncpus: u32) -> Sim {
        let shared: Vec<_> = (0..ncpus).map(|i| Arc::new(CpuShared::new(i))).collect();
        let cpus = shared
            .iter()
            .map(|s| {
                let idle = Arc::new(Thread::new(
                    1000 + u64::from(s.id),
                    "idle",
                    s.id,
                    Some(s.id),
                ));
                CpuSched::new(s.clone(), idle, 0)
            })
            .collect();
        Sim {
            now: 0,
            cpus,
            shared,
            timers: vec![None; ncpus as usize],
            behaviour: HashMap::new(),
            threads: HashMap::new(),
            ball: 0,
            handoffs: 0,
            wake_failures: 0,
            next_id: 1,
        }
    }

    fn spawn(&mut self, cpu: usize, b: Behaviour, pinned: Option<u32>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let t = Arc::new(Thread::new(id, "sim", cpu as u32, pinned));
        self.behaviour.insert(id, b);
        self.threads.insert(id, t.clone());
        self.cpus[cpu].spawn(t);
        id
    }

    fn apply(&mut self, cpu: usize, reason: Reason) {
        let d = self.cpus[cpu].schedule(self.now, reason);
        self.timers[cpu] = d.timer_at;
    }

    fn step(&mut self) {
        self.now += STEP;
        for c in 0..self.cpus.len() {
            let cur = self.cpus[c].current().clone();
            let mut blocked = false;
            if !self.cpus[c].is_idle() {
                if let Some(Behaviour::PingPong { peer }) = self.behaviour.get(&cur.id).copied() {
                    if self.ball == cur.id {
                        self.ball = peer;
                        self.handoffs += 1;
                        let p = self.threads[&peer].clone();
                        if wake(&p, &self.shared).is_none() && p.state() != State::Running {
                            // A waiting peer must always be wakeable.
                            self.wake_failures += u64::from(p.state() == State::Waiting);
                        }
                    }
                    // Block until the ball comes back (checking after
                    // setting Waiting, as real waiters must).
                    cur_set_waiting(&cur);
                    if self.ball == cur.id {
                        let _ = super::thread_test_hooks::try_unwait(&cur);
                    }
                    blocked = true;
                }
            }
            let due = self.timers[c].is_some_and(|t| t <= self.now);
            let pending = !self.shared[c].incoming.is_empty();
            if blocked {
                self.apply(c, Reason::Block);
            } else if due || pending {
                self.apply(c, Reason::Preempt);
            }
        }
        if self.now.is_multiple_of(BALANCE_EVERY) {
            self.balance();
        }
    }

    fn balance(&mut self) {
        for c in 0..self.cpus.len() {
            let (target, load) = self
                .shared
                .iter()
                .map(|s| (s.id, s.load()))
                .min_by_key(|&(_, l)| l)
                .unwrap();
            if let Some(t) = self.cpus[c].balance_to(target, load, self.now) {
                self.shared[target as usize].incoming.push(t);
            }
        }
    }

    fn run_for(&mut self, ns: u64) {
        let end = self.now + ns;
        while self.now < end {
            self.step();
        }
    }
}

fn cur_set_waiting(t: &Thread) {
    super::thread_test_hooks::set_waiting(t);
}

#[test]
fn busy_threads_get_fair_shares_and_every_cpu_works() {
    for (ncpus, nthreads) in [(1u32, 3usize), (2, 6), (4, 8), (2, 5)] {
        let mut sim = Sim::new(ncpus);
        let ids: Vec<u64> = (0..nthreads)
            .map(|_| sim.spawn(0, Behaviour::Busy, None))
            .collect();
        sim.apply(0, Reason::Preempt);
        sim.run_for(2_000_000_000);
        let cpu_ns: Vec<u64> = ids
            .iter()
            .map(|id| {
                sim.threads[id]
                    .stats
                    .cpu_ns
                    .load(core::sync::atomic::Ordering::Relaxed)
            })
            .collect();
        let total: u64 = cpu_ns.iter().sum();
        // All CPUs busy almost all the time.
        let capacity = u64::from(ncpus) * 2_000_000_000;
        assert!(
            total as f64 > 0.95 * capacity as f64,
            "{ncpus}x{nthreads}: {cpu_ns:?}"
        );
        // Fair within 15% when threads divide evenly over CPUs; with an
        // uneven split each thread still gets at least its per-CPU share.
        let fair = total as f64 / nthreads as f64;
        let even = nthreads % ncpus as usize == 0;
        for &ns in &cpu_ns {
            if even {
                assert!(
                    (ns as f64 - fair).abs() < 0.15 * fair,
                    "{ncpus}x{nthreads}: {cpu_ns:?}"
                );
            } else {
                assert!(ns as f64 > 0.6 * fair, "{ncpus}x{nthreads}: {cpu_ns:?}");
            }
        }
        for c in &sim.cpus {
            assert!(
                c.stats.idle_ns < 200_000_000,
                "cpu {} idled {}",
                c.id,
                c.stats.idle_ns
            );
        }
    }
}

#[test]
fn cross_cpu_ping_pong_loses_and_duplicates_no_wakeup() {
    let mut sim = Sim::new(2);
    let a = sim.next_id;
    let b = a + 1;
    sim.spawn(0, Behaviour::PingPong { peer: b }, Some(0));
    sim.spawn(1, Behaviour::PingPong { peer: a }, Some(1));
    sim.ball = a;
    sim.apply(0, Reason::Preempt);
    sim.apply(1, Reason::Preempt);
    while sim.handoffs < 10_000 {
        let before = sim.handoffs;
        sim.run_for(10_000_000);
        assert!(
            sim.handoffs > before,
            "stalled at {} hand-offs: a wakeup was lost",
            sim.handoffs
        );
    }
    assert_eq!(sim.wake_failures, 0);
    // Each hand-off was exactly one wakeup: switches match hand-offs.
    let switches: u64 = [a, b]
        .iter()
        .map(|id| {
            sim.threads[id]
                .stats
                .switches
                .load(core::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(
        switches >= sim.handoffs && switches <= sim.handoffs + 2,
        "{switches} vs {}",
        sim.handoffs
    );
}

#[test]
fn idle_cpus_arm_no_timer() {
    let mut sim = Sim::new(2);
    sim.run_for(5_000_000);
    assert!(sim.timers.iter().all(Option::is_none));
    // One busy thread alone on a CPU needs no slice timer either.
    sim.spawn(0, Behaviour::Busy, Some(0));
    sim.apply(0, Reason::Preempt);
    sim.run_for(5_000_000);
    assert!(sim.timers[0].is_none());
    // A second runnable thread there arms the slice timer.
    sim.spawn(0, Behaviour::Busy, Some(0));
    sim.apply(0, Reason::Preempt);
    assert!(sim.timers[0].is_some());
}

#[test]
fn pinned_threads_never_migrate() {
    let mut sim = Sim::new(2);
    let ids: Vec<u64> = (0..4)
        .map(|_| sim.spawn(0, Behaviour::Busy, Some(0)))
        .collect();
    sim.apply(0, Reason::Preempt);
    sim.run_for(200_000_000);
    for id in ids {
        let t = &sim.threads[&id];
        assert_eq!(t.home(), 0);
        assert_eq!(
            t.stats
                .migrations
                .load(core::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    assert!(sim.cpus[1].is_idle());
}

#[test]
fn wakeup_racing_a_block_keeps_the_thread_running() {
    let mut sim = Sim::new(1);
    let id = sim.spawn(0, Behaviour::Busy, None);
    sim.apply(0, Reason::Preempt);
    let t = sim.threads[&id].clone();
    assert!(Arc::ptr_eq(sim.cpus[0].current(), &t));
    super::thread_test_hooks::set_waiting(&t);
    assert_eq!(wake(&t, &sim.shared), Some(0));
    assert_eq!(wake(&t, &sim.shared), None, "second wakeup merges");
    sim.apply(0, Reason::Block);
    assert!(Arc::ptr_eq(sim.cpus[0].current(), &t));
    assert_eq!(t.state(), State::Running);
}

#[test]
fn a_thread_spawned_from_another_cpu_starts_with_the_local_runtime() {
    let mut sim = Sim::new(2);
    let busy = sim.spawn(0, Behaviour::Busy, Some(0));
    sim.apply(0, Reason::Preempt);
    sim.run_for(300_000_000);
    let t = Arc::new(Thread::new(999, "fresh", 1, None));
    spawn_remote(t.clone(), &sim.shared[0]);
    sim.apply(0, Reason::Preempt);
    let busy_rt = sim.threads[&busy].sched.lock().runtime;
    assert_eq!(t.home(), 0);
    assert_eq!(t.state(), State::Runnable);
    // Not zero (which would let it monopolise the CPU for up to τ):
    // exactly where a local spawn would have put it.
    assert!(t.sched.lock().runtime.key() > 0);
    assert_eq!(t.sched.lock().runtime, busy_rt);
}
