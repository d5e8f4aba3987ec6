//! One CPU's scheduler state and decisions (OSv's design), arch-free.
//!
//! Each CPU owns its run queue outright: only that CPU touches it, with
//! interrupts off, so it needs no lock. Other CPUs reach it only through its
//! lock-free `incoming` queue: a remote wakeup CASes the thread to `Waking`
//! and pushes it there; the balancer of a busier CPU pushes a stolen thread
//! there too. The owner drains `incoming` whenever it schedules.
//!
//! [`CpuSched::schedule`] returns a [`Decision`] — keep running or switch,
//! and when to program the one-shot timer (tickless: only when another
//! thread is waiting for the CPU). The caller (target code) performs the
//! context switch; host tests drive the same code with a simulated clock.

use super::policy::{self, CpuClock, Runtime};
use super::runqueue::RunQueue;
use super::thread::{State, Thread};
use super::wakeq::WakeQueue;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Shortest and longest slice the timer is programmed for.
pub const MIN_SLICE_NS: u64 = 500_000;
pub const MAX_SLICE_NS: u64 = 50_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Timer expiry or a wakeup arrived: maybe switch.
    Preempt,
    /// The current thread gives way to any runnable thread.
    Yield,
    /// The current thread set itself `Waiting` and wants to sleep.
    Block,
    /// The current thread finished.
    Exit,
}

pub struct Decision {
    /// The thread to run from now on (None: keep the current one).
    pub switch_to: Option<Arc<Thread>>,
    /// Absolute time to fire the one-shot timer, if any thread is waiting.
    pub timer_at: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CpuStats {
    pub idle_ns: u64,
    pub switches: u64,
    pub preemptions: u64,
}

/// What other CPUs may see and touch of a CPU: its incoming queue and the
/// load and idleness it publishes after every decision.
pub struct CpuShared {
    pub id: u32,
    /// Wakeups and migrations from any CPU land here.
    pub incoming: WakeQueue<Thread>,
    load: AtomicUsize,
    idle: AtomicBool,
}

impl CpuShared {
    pub fn new(id: u32) -> Self {
        CpuShared {
            id,
            incoming: WakeQueue::new(),
            load: AtomicUsize::new(0),
            idle: AtomicBool::new(true),
        }
    }

    pub fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    /// True while the CPU runs its idle thread (a waker then sends an IPI).
    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }
}

pub struct CpuSched {
    pub id: u32,
    clock: CpuClock,
    runq: RunQueue,
    pub shared: Arc<CpuShared>,
    current: Arc<Thread>,
    idle: Arc<Thread>,
    running_since: u64,
    pub stats: CpuStats,
}

impl CpuSched {
    /// A CPU running its idle thread at `now`.
    pub fn new(shared: Arc<CpuShared>, idle: Arc<Thread>, now: u64) -> Self {
        idle.set_state(State::Running);
        CpuSched {
            id: shared.id,
            clock: CpuClock::new(now),
            runq: RunQueue::new(),
            shared,
            current: idle.clone(),
            idle,
            running_since: now,
            stats: CpuStats::default(),
        }
    }

    pub fn current(&self) -> &Arc<Thread> {
        &self.current
    }

    pub fn is_idle(&self) -> bool {
        Arc::ptr_eq(&self.current, &self.idle)
    }

    /// Runnable threads queued here, not counting the running one.
    pub fn queued(&self) -> usize {
        self.runq.len()
    }

    /// Load for balancing: queued plus the running thread (idle counts 0).
    pub fn load(&self) -> usize {
        self.runq.len() + usize::from(!self.is_idle())
    }

    /// Adds a new thread (state Runnable) to this CPU. It starts with the
    /// least runtime queued here, so it runs soon but cannot monopolise.
    pub fn spawn(&mut self, t: Arc<Thread>) {
        t.set_home(self.id);
        let start = self.start_runtime();
        {
            let mut s = t.sched.lock();
            s.runtime = start;
            s.epoch_ns = self.clock.epoch();
        }
        t.set_state(State::Runnable);
        self.runq.insert(t, start);
        self.publish();
    }

    /// What a new thread starts with: the least runtime queued here, else
    /// the running thread's, else zero.
    fn start_runtime(&self) -> Runtime {
        match self.runq.iter().next() {
            Some(least) => least.sched.lock().runtime,
            None if self.is_idle() => Runtime::default(),
            None => self.current.sched.lock().runtime,
        }
    }

    fn publish(&self) {
        self.shared.load.store(self.load(), Ordering::Relaxed);
        self.shared.idle.store(self.is_idle(), Ordering::Release);
    }

    fn account(&mut self, now: u64) {
        let ran = now.saturating_sub(self.running_since);
        if self.is_idle() {
            self.stats.idle_ns += ran;
        } else {
            let mut s = self.current.sched.lock();
            let priority = s.priority;
            self.clock
                .charge(&mut s.runtime, self.running_since, now, priority);
            self.current.stats.cpu_ns.fetch_add(ran, Ordering::Relaxed);
        }
        self.running_since = now;
    }

    fn drain_incoming(&mut self, now: u64) {
        for t in self.shared.incoming.drain() {
            if !t.transition(State::Waking, State::Runnable) {
                continue; // terminated meanwhile, or a stale entry
            }
            let start = self.start_runtime();
            {
                let mut s = t.sched.lock();
                if core::mem::take(&mut s.fresh) {
                    s.runtime = start;
                } else if let Some(carried) = s.carried_ns.take() {
                    s.runtime = self.clock.from_decayed(carried, now);
                } else {
                    // It may have slept through a renormalization.
                    let stored = s.epoch_ns;
                    self.clock.adopt(&mut s.runtime, stored);
                }
                s.epoch_ns = self.clock.epoch();
            }
            if Arc::ptr_eq(&t, &self.current) {
                // Woken before it managed to block: it simply keeps running.
                t.set_state(State::Running);
                continue;
            }
            let rt = t.sched.lock().runtime;
            self.runq.insert(t, rt);
        }
    }

    fn renormalize_if_due(&mut self, now: u64) {
        if !self.clock.renormalize_due(now) {
            return;
        }
        let r = self.clock.renormalize(now);
        let epoch = self.clock.epoch();
        {
            let mut s = self.current.sched.lock();
            r.apply(&mut s.runtime);
            s.epoch_ns = epoch;
        }
        self.runq.rekey(|t| {
            let mut s = t.sched.lock();
            r.apply(&mut s.runtime);
            s.epoch_ns = epoch;
            s.runtime
        });
    }

    /// Decides what runs next at `now`. For `Block`, the caller has already
    /// set the current thread `Waiting` (and re-checked its condition).
    pub fn schedule(&mut self, now: u64, reason: Reason) -> Decision {
        // Renormalize first: a thread that ran for seconds without a
        // decision is then charged against the new epoch (no overflow).
        self.renormalize_if_due(now);
        self.account(now);
        self.drain_incoming(now);

        let cur_state = self.current.state();
        let cur_keeps_cpu = match reason {
            // A wakeup that raced the block already made it Runnable.
            Reason::Block => cur_state == State::Running || cur_state == State::Runnable,
            Reason::Exit => false,
            Reason::Preempt | Reason::Yield => true,
        };
        if reason == Reason::Exit {
            self.current.set_state(State::Terminated);
        }

        let idle = self.is_idle();
        let next = if !cur_keeps_cpu || idle {
            self.runq.pop()
        } else {
            let cur_rt = self.current.sched.lock().runtime;
            let best = self.runq.iter().next().map(|t| t.sched.lock().runtime);
            match best {
                Some(b) if reason == Reason::Yield || self.clock.should_preempt(cur_rt, b, now) => {
                    if reason == Reason::Preempt {
                        self.stats.preemptions += 1;
                        self.current
                            .stats
                            .preemptions
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let prev = self.current.clone();
                    prev.set_state(State::Runnable);
                    self.runq.insert(prev, cur_rt);
                    self.runq.pop()
                }
                _ => None,
            }
        };

        let switch_to = match next {
            Some(t) => Some(t),
            None if !cur_keeps_cpu && !idle => Some(self.idle.clone()),
            None => None,
        };
        if let Some(t) = &switch_to {
            if Arc::ptr_eq(t, &self.current) {
                // Yield with nobody else runnable: keep going.
                self.current.set_state(State::Running);
                self.publish();
                return Decision {
                    switch_to: None,
                    timer_at: self.slice_end(now),
                };
            }
            t.set_state(State::Running);
            t.stats.switches.fetch_add(1, Ordering::Relaxed);
            self.stats.switches += 1;
            self.current = t.clone();
        }
        self.publish();
        Decision {
            switch_to,
            timer_at: self.slice_end(now),
        }
    }

    /// When the current thread's slice ends: only if someone is waiting.
    fn slice_end(&self, now: u64) -> Option<u64> {
        if self.is_idle() {
            return None;
        }
        let best = self.runq.iter().next()?;
        let (cur, prio) = {
            let s = self.current.sched.lock();
            (s.runtime, s.priority)
        };
        let b = best.sched.lock().runtime;
        let d = self
            .clock
            .time_until_preempt(cur, b, now, prio)
            .unwrap_or(MAX_SLICE_NS);
        Some(now + d.clamp(MIN_SLICE_NS, MAX_SLICE_NS))
    }

    /// Load balancing, run by this CPU: if `target` has clearly less work,
    /// take the least deserving migratable thread off this run queue and
    /// return it for the caller to push onto `target`'s incoming queue.
    pub fn balance_to(&mut self, target: u32, target_load: usize, now: u64) -> Option<Arc<Thread>> {
        if target == self.id || !policy::should_migrate(target_load, self.load()) {
            return None;
        }
        let t = self.runq.steal()?;
        let carried = self.clock.decayed(t.sched.lock().runtime, now);
        t.sched.lock().carried_ns = Some(carried);
        t.set_home(target);
        t.set_state(State::Waking);
        t.stats.migrations.fetch_add(1, Ordering::Relaxed);
        self.publish();
        Some(t)
    }
}

/// Hands a new (never run) thread to another CPU: it goes onto `target`'s
/// incoming queue and starts there like a local spawn. The caller kicks
/// the target (an IPI).
pub fn spawn_remote(t: Arc<Thread>, target: &CpuShared) {
    t.set_home(target.id);
    t.sched.lock().fresh = true;
    t.set_state(State::Waking);
    target.incoming.push(t);
}

/// Wakes `t` if it is waiting: returns the CPU whose incoming queue got it
/// (the caller sends that CPU an IPI if it is idle), or None if the thread
/// was not waiting (already woken, running, or finished).
pub fn wake(t: &Arc<Thread>, cpus: &[Arc<CpuShared>]) -> Option<u32> {
    wake_with(t, cpus, false)
}

/// [`wake`], recording whether the wait ended by its deadline (`timed_out`)
/// rather than by a waker. Only the winner of the `Waiting → Waking` CAS
/// records, before the thread is queued, so the woken thread always reads
/// the outcome of the one wakeup that ended its wait.
pub fn wake_with(t: &Arc<Thread>, cpus: &[Arc<CpuShared>], timed_out: bool) -> Option<u32> {
    if !t.transition(State::Waiting, State::Waking) {
        return None;
    }
    t.set_timed_out(timed_out);
    let home = t.home();
    let cpu = cpus.iter().find(|c| c.id == home)?;
    cpu.incoming.push(t.clone());
    Some(home)
}
