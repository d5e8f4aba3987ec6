//! Scheduling policy (OSv's): run the thread with the least exponentially
//! decayed runtime; preempt the running thread once its decayed runtime
//! exceeds the best waiting one's by more than a granularity.
//!
//! A thread's decayed runtime at time `t` is
//! `R(t) = ∫ run(s) · p · e^{-(t-s)/τ} ds` — time it ran, weighted by its
//! priority factor `p` (1.0 normally; larger runs less), fading with time
//! constant τ. Decaying every thread on every tick would cost O(n); instead,
//! as OSv does, each CPU keeps an epoch `t0` and every thread on it stores
//! `R(t) · e^{(t-t0)/τ}` ([`Runtime`]). That stored value changes only while
//! the thread runs, so waiting and sleeping threads never need touching and
//! the run queue stays sorted by the stored values. When `e^{(t-t0)/τ}` grows
//! large the CPU moves its epoch forward and rescales its threads
//! ([`CpuClock::renormalize`]); a thread migrating to another CPU converts
//! through the real decayed value.
//!
//! Pure arithmetic, host-tested; floats are fine here (a handful of soft-float
//! operations per context switch).

/// Time constant of the decay: runtime older than ~τ matters less and less.
pub const TAU_NS: f64 = 200_000_000.0;
/// Preemption hysteresis: the running thread keeps the CPU until it is this
/// far (in decayed-runtime nanoseconds) ahead of the best waiting thread.
pub const GRANULARITY_NS: f64 = 2_000_000.0;
/// Move the epoch forward once the scale factor passes 2^40 (after ~5.5 s).
const RENORMALIZE_ABOVE: f64 = (1u64 << 40) as f64;

/// A thread's decayed runtime, stored relative to its CPU's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Runtime(f64);

impl Runtime {
    /// Run-queue order: least runtime first (a total order; NaN never occurs
    /// but would sort last rather than corrupt the queue).
    pub fn key(self) -> u64 {
        // Non-negative finite f64s order like their bit patterns.
        if self.0.is_finite() && self.0 >= 0.0 {
            self.0.to_bits()
        } else {
            u64::MAX
        }
    }

    pub fn min(self, other: Runtime) -> Runtime {
        if other.0 < self.0 {
            other
        } else {
            self
        }
    }
}

/// One CPU's view of time for the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuClock {
    epoch_ns: u64,
}

fn exp(x: f64) -> f64 {
    libm::exp(x)
}

impl CpuClock {
    pub fn new(now_ns: u64) -> Self {
        CpuClock { epoch_ns: now_ns }
    }

    /// `e^{(t - t0)/τ}`.
    fn scale(&self, t_ns: u64) -> f64 {
        exp((t_ns as f64 - self.epoch_ns as f64) / TAU_NS)
    }

    /// Accounts `[from, to)` of running at priority factor `priority`.
    pub fn charge(&self, rt: &mut Runtime, from_ns: u64, to_ns: u64, priority: f64) {
        if to_ns <= from_ns {
            return;
        }
        rt.0 += TAU_NS * priority * (self.scale(to_ns) - self.scale(from_ns));
    }

    /// The real decayed runtime at `now`, in nanoseconds.
    pub fn decayed(&self, rt: Runtime, now_ns: u64) -> f64 {
        rt.0 / self.scale(now_ns)
    }

    /// The stored form of a real decayed runtime (a thread arriving here).
    pub fn from_decayed(&self, decayed_ns: f64, now_ns: u64) -> Runtime {
        Runtime(decayed_ns.max(0.0) * self.scale(now_ns))
    }

    pub fn renormalize_due(&self, now_ns: u64) -> bool {
        self.scale(now_ns) > RENORMALIZE_ABOVE
    }

    /// The epoch stored runtimes are currently relative to.
    pub fn epoch(&self) -> u64 {
        self.epoch_ns
    }

    /// Brings a runtime stored relative to an older epoch `stored_epoch_ns`
    /// (a thread that slept through a renormalization) to the current one.
    pub fn adopt(&self, rt: &mut Runtime, stored_epoch_ns: u64) {
        if stored_epoch_ns != self.epoch_ns {
            rt.0 *= exp((stored_epoch_ns as f64 - self.epoch_ns as f64) / TAU_NS);
        }
    }

    /// Moves the epoch to `now`; every thread of this CPU must then be
    /// passed through [`Rescale::apply`] (order is preserved). Threads not
    /// queued here (sleeping) catch up with [`adopt`](Self::adopt) on wakeup.
    pub fn renormalize(&mut self, now_ns: u64) -> Rescale {
        let factor = self.scale(now_ns);
        self.epoch_ns = now_ns;
        Rescale(factor)
    }

    /// Should `current` (just charged up to `now`) give way to `candidate`?
    pub fn should_preempt(&self, current: Runtime, candidate: Runtime, now_ns: u64) -> bool {
        current.0 > candidate.0 + GRANULARITY_NS * self.scale(now_ns)
    }

    /// Nanoseconds `current` may still run at `priority` before
    /// [`should_preempt`](Self::should_preempt) turns true against
    /// `candidate` (which does not run meanwhile). None if never: a thread
    /// whose runtime can't catch up within the decay (priority·τ ≤ granularity).
    pub fn time_until_preempt(
        &self,
        current: Runtime,
        candidate: Runtime,
        now_ns: u64,
        priority: f64,
    ) -> Option<u64> {
        // Solve c + τp(F - F0) = b + gF for F = scale(now + Δ).
        let f0 = self.scale(now_ns);
        let tp = TAU_NS * priority;
        let denom = tp - GRANULARITY_NS;
        if denom <= 0.0 {
            return None;
        }
        let f = (candidate.0 - current.0 + tp * f0) / denom;
        if f <= f0 {
            return Some(0);
        }
        let delta = TAU_NS * libm::log(f / f0);
        Some(libm::ceil(delta) as u64)
    }
}

/// The factor a renormalization divides stored runtimes by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale(f64);

impl Rescale {
    pub fn apply(self, rt: &mut Runtime) {
        rt.0 /= self.0;
    }
}

/// Load balancing: move one thread from a CPU with `busiest` runnable
/// threads to one with `mine` when the difference is more than one (moving
/// at a difference of one would only swap the imbalance).
pub fn should_migrate(mine: usize, busiest: usize) -> bool {
    busiest > mine + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1.0)
    }

    #[test]
    fn runtime_decays_by_half_over_tau_ln2() {
        let c = CpuClock::new(0);
        let mut rt = Runtime::default();
        c.charge(&mut rt, 0, 10 * MS, 1.0);
        let at_stop = c.decayed(rt, 10 * MS);
        assert!(close(at_stop, TAU_NS * (1.0 - (-0.05f64).exp()), 1e-9));
        let half_life = (TAU_NS * core::f64::consts::LN_2) as u64;
        assert!(close(
            c.decayed(rt, 10 * MS + half_life),
            at_stop / 2.0,
            1e-6
        ));
    }

    #[test]
    fn always_running_thread_converges_to_tau() {
        let c = CpuClock::new(0);
        let mut rt = Runtime::default();
        let mut t = 0;
        while t < 2_000 * MS {
            c.charge(&mut rt, t, t + MS, 1.0);
            t += MS;
        }
        assert!(close(c.decayed(rt, t), TAU_NS, 1e-3));
    }

    #[test]
    fn a_sleeper_adopts_the_new_epoch_on_wakeup() {
        let mut c = CpuClock::new(0);
        let (mut queued, mut sleeper) = (Runtime::default(), Runtime::default());
        c.charge(&mut queued, 0, 30 * MS, 1.0);
        c.charge(&mut sleeper, 30 * MS, 40 * MS, 1.0);
        let old_epoch = c.epoch();
        let now = 6_000 * MS;
        let (dq, ds) = (c.decayed(queued, now), c.decayed(sleeper, now));
        let r = c.renormalize(now);
        r.apply(&mut queued);
        // The sleeper missed the rescale: stale until it adopts the epoch.
        assert!(!close(c.decayed(sleeper, now), ds, 1e-3));
        c.adopt(&mut sleeper, old_epoch);
        assert!(close(c.decayed(queued, now), dq, 1e-9));
        assert!(close(c.decayed(sleeper, now), ds, 1e-9));
    }

    #[test]
    fn renormalizing_keeps_values_and_order() {
        let mut c = CpuClock::new(0);
        let (mut a, mut b) = (Runtime::default(), Runtime::default());
        c.charge(&mut a, 0, 30 * MS, 1.0);
        c.charge(&mut b, 30 * MS, 40 * MS, 1.0);
        let now = 6_000 * MS;
        assert!(c.renormalize_due(now));
        let (da, db) = (c.decayed(a, now), c.decayed(b, now));
        let r = c.renormalize(now);
        r.apply(&mut a);
        r.apply(&mut b);
        assert!(!c.renormalize_due(now));
        assert!(close(c.decayed(a, now), da, 1e-9));
        assert!(close(c.decayed(b, now), db, 1e-9));
        assert!(a.key() > b.key());
    }

    #[test]
    fn migration_preserves_the_real_runtime() {
        let src = CpuClock::new(0);
        let dst = CpuClock::new(3_000 * MS);
        let mut rt = Runtime::default();
        src.charge(&mut rt, 3_000 * MS, 3_050 * MS, 1.0);
        let now = 3_060 * MS;
        let moved = dst.from_decayed(src.decayed(rt, now), now);
        assert!(close(dst.decayed(moved, now), src.decayed(rt, now), 1e-9));
    }

    #[test]
    fn preemption_point_matches_the_rule() {
        let c = CpuClock::new(0);
        let (mut cur, mut other) = (Runtime::default(), Runtime::default());
        c.charge(&mut other, 0, 20 * MS, 1.0);
        c.charge(&mut cur, 20 * MS, 25 * MS, 1.0);
        let now = 25 * MS;
        assert!(!c.should_preempt(cur, other, now));
        let d = c.time_until_preempt(cur, other, now, 1.0).unwrap();
        // cur must catch up the decayed gap (~13.6 ms at 25 ms) plus the
        // 2 ms granularity, while the other thread's runtime keeps fading.
        assert!(d > 14 * MS && d < 16 * MS, "{d}");
        let mut before = cur;
        c.charge(&mut before, now, now + d - 1000, 1.0);
        assert!(!c.should_preempt(before, other, now + d - 1000));
        c.charge(&mut cur, now, now + d, 1.0);
        assert!(c.should_preempt(cur, other, now + d));
    }

    /// Simulates one CPU: two, then three busy threads under the policy get
    /// equal shares, and a priority-2 thread gets half the rate.
    fn simulate(priorities: &[f64], total_ms: u64) -> Vec<u64> {
        let clock = CpuClock::new(0);
        let mut rts = vec![Runtime::default(); priorities.len()];
        let mut ran = vec![0u64; priorities.len()];
        let mut now = 0;
        let mut cur = 0;
        while now < total_ms * MS {
            let best_other = (0..rts.len())
                .filter(|&i| i != cur)
                .min_by_key(|&i| rts[i].key())
                .unwrap();
            let slice = clock
                .time_until_preempt(rts[cur], rts[best_other], now, priorities[cur])
                .unwrap()
                .clamp(100_000, 50 * MS);
            clock.charge(&mut rts[cur], now, now + slice, priorities[cur]);
            ran[cur] += slice;
            now += slice;
            if clock.should_preempt(rts[cur], rts[best_other], now) {
                cur = best_other;
            }
        }
        ran
    }

    #[test]
    fn busy_threads_share_fairly() {
        let ran = simulate(&[1.0, 1.0, 1.0], 3_000);
        let total: u64 = ran.iter().sum();
        for r in &ran {
            assert!(close(*r as f64, total as f64 / 3.0, 0.05), "{ran:?}");
        }
    }

    #[test]
    fn priority_factor_scales_the_share() {
        let ran = simulate(&[1.0, 2.0], 3_000);
        let ratio = ran[0] as f64 / ran[1] as f64;
        assert!(close(ratio, 2.0, 0.05), "{ran:?}");
    }

    #[test]
    fn balancer_moves_only_on_a_real_imbalance() {
        assert!(!should_migrate(1, 2));
        assert!(should_migrate(0, 2));
        assert!(!should_migrate(3, 3));
    }

    #[test]
    fn run_queue_key_orders_like_the_runtime() {
        let c = CpuClock::new(0);
        let (mut a, mut b) = (Runtime::default(), Runtime::default());
        c.charge(&mut a, 0, MS, 1.0);
        c.charge(&mut b, 0, 2 * MS, 1.0);
        assert!(Runtime::default().key() < a.key() && a.key() < b.key());
        assert_eq!(Runtime(f64::NAN).key(), u64::MAX);
    }
}
