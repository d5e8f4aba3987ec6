//! Scheduling policy (OSv's): run the thread with the least exponentially
//! decayed runtime; preempt the running thread once its decayed runtime
//! exceeds the best waiting one's by more than a granularity.
//!
//! A thread's decayed runtime at time `t` is
//! `R(t) = ∫ run(s) · w · e^{-(t-s)/τ} ds` — time it ran, weighted by its
//! priority weight `w` (1.0 normally; larger runs less), fading with time
//! constant τ. Decaying every thread on every tick would cost O(n); instead,
//! as OSv does, each CPU keeps an epoch `t0` and every thread on it stores
//! `R(t) · S(t)` with `S(t) = e^{(t-t0)/τ}` ([`Runtime`]). That stored value
//! changes only while the thread runs, so waiting and sleeping threads never
//! need touching and the run queue stays sorted by the stored values. When
//! `S` grows past 2^20 (after ~2.8 s) the CPU moves its epoch forward and
//! rescales its threads ([`CpuClock::renormalize`]); a thread migrating to
//! another CPU converts through the real decayed value.
//!
//! **Fixed point, no floats.** The kernel is soft-float, and `exp`/`log` in
//! software cost thousands of instructions per context switch. Here `S` is
//! a Q32 fixed-point number computed as `2^y` with `y = (t-t0)/(τ·ln 2)`:
//! the integer part of `y` is a shift, the top 8 fraction bits index a
//! 256-entry table of `2^(i/256)`, and the remaining `r < 1/256` goes
//! through `2^r ≈ 1 + r·ln2 + (r·ln2)²/2` (error below 4·10⁻⁹). A stored
//! runtime is an integer in "nanoseconds × S" units; weights are Q10
//! ([`WEIGHT_ONE`] = 1.0). Host tests check every function against the
//! floating-point formulas.

/// Time constant of the decay: runtime older than ~τ matters less and less.
pub const TAU_NS: u64 = 200_000_000;
/// Preemption hysteresis: the running thread keeps the CPU until it is this
/// far (in decayed-runtime nanoseconds) ahead of the best waiting thread.
pub const GRANULARITY_NS: u64 = 2_000_000;
/// A priority weight of 1.0 (Q10): a thread of weight `2 * WEIGHT_ONE`
/// gets half the CPU share of a `WEIGHT_ONE` one.
pub const WEIGHT_ONE: u32 = 1 << WEIGHT_SHIFT;
const WEIGHT_SHIFT: u32 = 10;

/// Q32 fixed point.
const FRAC: u32 = 32;
const ONE: u64 = 1 << FRAC;
/// `2^64 / (τ·ln 2)`: `(x · K) >> 32` is `x / (τ·ln 2)` in Q32.
const K_EXP: u128 = 133_065_130_978;
/// `ln 2` in Q32.
const LN2_Q32: u64 = 2_977_044_472;
/// `τ · ln 2` in Q32 (nanoseconds).
const TAU_LN2_Q32: u128 = 595_408_894_363_914_368;
/// What [`CpuClock::time_until_preempt`] adds for its log approximation.
const LOG_SLACK_NS: u64 = 400;
/// Renormalize once `S` passes `2^RENORM_BITS`.
const RENORM_BITS: u64 = 20;
/// Past this many doublings (`S > 2^40`) a stored value is as good as gone.
const NEGLIGIBLE_BITS: u64 = 40;
/// `(t - t0)` at which `S = 2^RENORM_BITS`: `RENORM_BITS · τ · ln 2`.
const RENORM_AFTER_NS: u64 = ((RENORM_BITS as u128 * TAU_LN2_Q32) >> FRAC) as u64;

/// `2^(i/256)` in Q32, i = 0..=256.
static EXP2_TABLE: [u64; 257] = [
    0x100000000,
    0x100b1afa6,
    0x10163daa0,
    0x102168144,
    0x102c9a3e7,
    0x1037d42e1,
    0x104315e87,
    0x104e5f72f,
    0x1059b0d31,
    0x10650a0e4,
    0x10706b29e,
    0x107bd42b7,
    0x108745187,
    0x1092bdf66,
    0x109e3ecac,
    0x10a9c79b2,
    0x10b5586d0,
    0x10c0f145e,
    0x10cc922b7,
    0x10d83b234,
    0x10e3ec32d,
    0x10efa55fe,
    0x10fb66b00,
    0x11073028d,
    0x111301d01,
    0x111edbab6,
    0x112abdc07,
    0x1136a814f,
    0x11429aaeb,
    0x114e95935,
    0x115a98c8a,
    0x1166a4547,
    0x1172b83c8,
    0x117ed4869,
    0x118af9389,
    0x119726583,
    0x11a35beb7,
    0x11af99f81,
    0x11bbe0840,
    0x11c82f953,
    0x11d487317,
    0x11e0e75eb,
    0x11ed50230,
    0x11f9c1844,
    0x12063b886,
    0x1212be358,
    0x121f49918,
    0x122bdda28,
    0x12387a6e7,
    0x12451ffb8,
    0x1251ce4fb,
    0x125e85712,
    0x126b4565e,
    0x12780e342,
    0x1284dfe1f,
    0x1291ba759,
    0x129e9df52,
    0x12ab8a66d,
    0x12b87fd0e,
    0x12c57e397,
    0x12d285a6e,
    0x12df961f6,
    0x12ecafa94,
    0x12f9d24ac,
    0x1306fe0a3,
    0x131432edf,
    0x132170fc5,
    0x132eb83bb,
    0x133c08b26,
    0x13496266e,
    0x1356c55f9,
    0x136431a2e,
    0x1371a7374,
    0x137f26232,
    0x138cae6d0,
    0x139a401b7,
    0x13a7db34e,
    0x13b57fbff,
    0x13c32dc31,
    0x13d0e544f,
    0x13dea64c1,
    0x13ec70df2,
    0x13fa4504b,
    0x140822c36,
    0x14160a21f,
    0x1423fb271,
    0x1431f5d95,
    0x143ffa3f8,
    0x144e08606,
    0x145c2042a,
    0x146a41ed2,
    0x14786d669,
    0x1486a2b5c,
    0x1494e1e19,
    0x14a32af0d,
    0x14b17dea7,
    0x14bfdad53,
    0x14ce41b81,
    0x14dcb29a0,
    0x14eb2d81e,
    0x14f9b276a,
    0x1508417f4,
    0x1516daa2d,
    0x15257de84,
    0x15342b56a,
    0x1542e2f4f,
    0x1551a4ca6,
    0x156070ddf,
    0x156f4736b,
    0x157e27dbe,
    0x158d12d49,
    0x159c08280,
    0x15ab07dd5,
    0x15ba11fbb,
    0x15c9268a6,
    0x15d84590a,
    0x15e76f15b,
    0x15f6a320e,
    0x1605e1b97,
    0x16152ae6d,
    0x16247eb04,
    0x1633dd1d2,
    0x16434634d,
    0x1652b9fec,
    0x166238825,
    0x1671c1c71,
    0x168155d45,
    0x1690f4b1a,
    0x16a09e668,
    0x16b052fa7,
    0x16c012751,
    0x16cfdcddd,
    0x16dfb23c6,
    0x16ef92986,
    0x16ff7df95,
    0x170f7466f,
    0x171f75e8f,
    0x172f8286f,
    0x173f9a48a,
    0x174fbd35d,
    0x175feb564,
    0x177024b1b,
    0x1780694fe,
    0x1790b938b,
    0x17a11473f,
    0x17b17b097,
    0x17c1ed013,
    0x17d26a630,
    0x17e2f336d,
    0x17f387849,
    0x180427544,
    0x1814d2add,
    0x182589995,
    0x18364c1ec,
    0x18471a462,
    0x1857f417a,
    0x1868d99b4,
    0x1879cad93,
    0x188ac7d99,
    0x189bd0a48,
    0x18ace5423,
    0x18be05bad,
    0x18cf3216b,
    0x18e06a5e1,
    0x18f1ae991,
    0x1902fed03,
    0x19145b0b9,
    0x1925c353b,
    0x193737b0d,
    0x1948b82b6,
    0x195a44cbd,
    0x196bdd9a7,
    0x197d829fe,
    0x198f33e48,
    0x19a0f170d,
    0x19b2bb4d5,
    0x19c49182a,
    0x19d674195,
    0x19e86319e,
    0x19fa5e8d0,
    0x1a0c667b6,
    0x1a1e7aed9,
    0x1a309bec5,
    0x1a42c9804,
    0x1a5503b24,
    0x1a674a8af,
    0x1a799e133,
    0x1a8bfe53c,
    0x1a9e6b558,
    0x1ab0e5213,
    0x1ac36bbfd,
    0x1ad5ff3a4,
    0x1ae89f996,
    0x1afb4ce62,
    0x1b0e07299,
    0x1b20ce6ca,
    0x1b33a2b85,
    0x1b468415b,
    0x1b59728de,
    0x1b6c6e29f,
    0x1b7f76f30,
    0x1b928cf22,
    0x1ba5b030a,
    0x1bb8e0b7a,
    0x1bcc1e905,
    0x1bdf69c3f,
    0x1bf2c25bd,
    0x1c0628614,
    0x1c199bdd8,
    0x1c2d1cda0,
    0x1c40ab600,
    0x1c5447790,
    0x1c67f12e5,
    0x1c7ba8899,
    0x1c8f6d940,
    0x1ca340575,
    0x1cb720dcf,
    0x1ccb0f2e7,
    0x1cdf0b556,
    0x1cf3155b6,
    0x1d072d4a0,
    0x1d1b532b1,
    0x1d2f87081,
    0x1d43c8ead,
    0x1d5818dd0,
    0x1d6c76e86,
    0x1d80e316d,
    0x1d955d720,
    0x1da9e603e,
    0x1dbe7cd64,
    0x1dd321f30,
    0x1de7d5642,
    0x1dfc97338,
    0x1e11676b2,
    0x1e264614f,
    0x1e3b333b1,
    0x1e502ee79,
    0x1e6539246,
    0x1e7a51fbc,
    0x1e8f7977d,
    0x1ea4afa2a,
    0x1eb9f4868,
    0x1ecf482d9,
    0x1ee4aaa22,
    0x1efa1bee6,
    0x1f0f9c1cb,
    0x1f252b377,
    0x1f3ac948e,
    0x1f50765b7,
    0x1f6632799,
    0x1f7bfdada,
    0x1f91d8022,
    0x1fa7c181a,
    0x1fbdba369,
    0x1fd3c22b9,
    0x1fe9d96b3,
    0x200000000,
];

/// `2^y` for `y` in Q32, as Q32; saturates at `2^(63-32)`.
fn exp2_q32(y: u64) -> u64 {
    let k = y >> FRAC;
    if k >= u64::from(63 - FRAC) {
        return u64::MAX;
    }
    let f = y & (ONE - 1);
    let base = EXP2_TABLE[(f >> 24) as usize];
    // r < 2^-8 (Q32); 2^r = e^{r ln2} ≈ 1 + u + u²/2 with u = r·ln2.
    let u = ((f & 0x00ff_ffff) * LN2_Q32) >> FRAC;
    let poly = ONE + u + ((u * u) >> (FRAC + 1));
    let m = ((u128::from(base) * u128::from(poly)) >> FRAC) as u64;
    m << k
}

/// `x / (τ·ln 2)` in Q32 for a span of `x` nanoseconds.
fn exponent_q32(x_ns: u64) -> u64 {
    let y = (u128::from(x_ns) * K_EXP) >> FRAC;
    u64::try_from(y).unwrap_or(u64::MAX)
}

/// `log2(q)` for `q >= 1` in Q32, as Q32 (table inverse plus linear
/// interpolation: error below 10⁻⁵).
fn log2_q32(q: u64) -> u64 {
    debug_assert!(q >= ONE);
    let k = u64::from(63 - q.leading_zeros()) - u64::from(FRAC);
    let m = q >> k; // in [1, 2) as Q32
    let i = EXP2_TABLE
        .partition_point(|&t| t <= m)
        .saturating_sub(1)
        .min(255);
    let (lo, hi) = (EXP2_TABLE[i], EXP2_TABLE[i + 1]);
    let lin = ((m - lo) << 24) / (hi - lo);
    (k << FRAC) | ((i as u64) << 24) | lin.min((1 << 24) - 1)
}

/// A thread's decayed runtime, stored relative to its CPU's epoch
/// (nanoseconds × `S`, an integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Runtime(u64);

impl Runtime {
    /// Run-queue order: least runtime first.
    pub fn key(self) -> u64 {
        self.0
    }

    pub fn min(self, other: Runtime) -> Runtime {
        core::cmp::min(self, other)
    }
}

/// One CPU's view of time for the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuClock {
    epoch_ns: u64,
}

impl CpuClock {
    pub fn new(now_ns: u64) -> Self {
        CpuClock { epoch_ns: now_ns }
    }

    /// `S(t) = e^{(t - t0)/τ}` in Q32 (0 when negligible, before the epoch).
    fn scale(&self, t_ns: u64) -> u64 {
        if t_ns >= self.epoch_ns {
            exp2_q32(exponent_q32(t_ns - self.epoch_ns))
        } else {
            let y = exponent_q32(self.epoch_ns - t_ns);
            if y >> FRAC >= NEGLIGIBLE_BITS {
                return 0;
            }
            ((1u128 << (2 * FRAC)) / u128::from(exp2_q32(y))) as u64
        }
    }

    /// Accounts `[from, to)` of running at `weight` (Q10).
    pub fn charge(&self, rt: &mut Runtime, from_ns: u64, to_ns: u64, weight: u32) {
        if to_ns <= from_ns {
            return;
        }
        let ds = u128::from(self.scale(to_ns) - self.scale(from_ns));
        let add = (u128::from(TAU_NS) * u128::from(weight) * ds) >> (FRAC + WEIGHT_SHIFT);
        rt.0 = rt.0.saturating_add(u64::try_from(add).unwrap_or(u64::MAX));
    }

    /// The real decayed runtime at `now`, in nanoseconds.
    pub fn decayed(&self, rt: Runtime, now_ns: u64) -> u64 {
        let s = self.scale(now_ns).max(1);
        u64::try_from((u128::from(rt.0) << FRAC) / u128::from(s)).unwrap_or(u64::MAX)
    }

    /// The stored form of a real decayed runtime (a thread arriving here).
    pub fn from_decayed(&self, decayed_ns: u64, now_ns: u64) -> Runtime {
        let v = (u128::from(decayed_ns) * u128::from(self.scale(now_ns))) >> FRAC;
        Runtime(u64::try_from(v).unwrap_or(u64::MAX))
    }

    /// True once `S(now)` passed `2^20`: a plain comparison, no arithmetic.
    pub fn renormalize_due(&self, now_ns: u64) -> bool {
        now_ns.saturating_sub(self.epoch_ns) > RENORM_AFTER_NS
    }

    /// The epoch stored runtimes are currently relative to.
    pub fn epoch(&self) -> u64 {
        self.epoch_ns
    }

    /// Brings a runtime stored relative to an older epoch `stored_epoch_ns`
    /// (a thread that slept through a renormalization) to the current one.
    pub fn adopt(&self, rt: &mut Runtime, stored_epoch_ns: u64) {
        if stored_epoch_ns != self.epoch_ns {
            let v = (u128::from(rt.0) * u128::from(self.scale(stored_epoch_ns))) >> FRAC;
            rt.0 = u64::try_from(v).unwrap_or(u64::MAX);
        }
    }

    /// Moves the epoch to `now`; every thread of this CPU must then be
    /// passed through [`Rescale::apply`] (order is preserved). Threads not
    /// queued here (sleeping) catch up with [`adopt`](Self::adopt) on wakeup.
    pub fn renormalize(&mut self, now_ns: u64) -> Rescale {
        let y = exponent_q32(now_ns.saturating_sub(self.epoch_ns));
        self.epoch_ns = now_ns;
        if y >> FRAC >= NEGLIGIBLE_BITS {
            Rescale(None)
        } else {
            Rescale(Some(exp2_q32(y)))
        }
    }

    /// Should `current` (just charged up to `now`) give way to `candidate`?
    pub fn should_preempt(&self, current: Runtime, candidate: Runtime, now_ns: u64) -> bool {
        let g = (u128::from(GRANULARITY_NS) * u128::from(self.scale(now_ns))) >> FRAC;
        u128::from(current.0) > u128::from(candidate.0) + g
    }

    /// Nanoseconds `current` may still run at `weight` before
    /// [`should_preempt`](Self::should_preempt) turns true against
    /// `candidate` (which does not run meanwhile). None if never: a thread
    /// whose runtime can't catch up within the decay (weight·τ ≤ granularity).
    pub fn time_until_preempt(
        &self,
        current: Runtime,
        candidate: Runtime,
        now_ns: u64,
        weight: u32,
    ) -> Option<u64> {
        // Solve c + T(F - F0) = b + gF for F = S(now + Δ), T = τ·w:
        // F = ((b - c) + T·F0) / (T - g), in Q32; then Δ = τ·ln(F / F0).
        let f0 = u128::from(self.scale(now_ns).max(1));
        let t = (u128::from(TAU_NS) * u128::from(weight)) >> WEIGHT_SHIFT;
        let g = u128::from(GRANULARITY_NS);
        if t <= g {
            return None;
        }
        let num = (u128::from(candidate.0) << FRAC) + t * f0;
        let sub = u128::from(current.0) << FRAC;
        if num <= sub {
            return Some(0);
        }
        let f = (num - sub) / (t - g);
        if f <= f0 {
            return Some(0);
        }
        let q = u64::try_from((f << FRAC) / f0).unwrap_or(u64::MAX);
        let delta = (u128::from(log2_q32(q)) * TAU_LN2_Q32) >> (2 * FRAC);
        // The interpolated log2 is low by up to ~1.3·10⁻⁶ (≈ 180 ns of Δ):
        // round up so the timer never fires before the rule turns true.
        Some(
            u64::try_from(delta)
                .unwrap_or(u64::MAX)
                .saturating_add(LOG_SLACK_NS),
        )
    }
}

/// The factor a renormalization divides stored runtimes by (None: so large
/// that everything decayed to nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale(Option<u64>);

impl Rescale {
    pub fn apply(self, rt: &mut Runtime) {
        rt.0 = match self.0 {
            Some(f) => ((u128::from(rt.0) << FRAC) / u128::from(f.max(1))) as u64,
            None => 0,
        };
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
    const TAU: f64 = TAU_NS as f64;
    const W1: u32 = WEIGHT_ONE;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1.0)
    }

    #[test]
    fn table_and_constants_match_their_definitions() {
        for (i, &v) in EXP2_TABLE.iter().enumerate() {
            let want = 2f64.powf(i as f64 / 256.0) * ONE as f64;
            assert!((v as f64 - want).abs() <= 1.0, "entry {i}");
        }
        let ln2 = core::f64::consts::LN_2;
        assert!(close(K_EXP as f64, 2f64.powi(64) / (TAU * ln2), 1e-10));
        assert!(close(LN2_Q32 as f64, ln2 * ONE as f64, 1e-9));
        assert!(close(TAU_LN2_Q32 as f64, TAU * ln2 * ONE as f64, 1e-12));
        assert!(close(RENORM_AFTER_NS as f64, 20.0 * TAU * ln2, 1e-9));
    }

    #[test]
    fn fixed_point_exp_matches_floating_point() {
        let c = CpuClock::new(1_000 * MS);
        let mut worst: f64 = 0.0;
        let mut t = 1_000 * MS;
        // Every ~0.7 ms over the renormalization span, plus odd offsets.
        while t < 1_000 * MS + RENORM_AFTER_NS {
            let want = ((t - 1_000 * MS) as f64 / TAU).exp();
            let got = c.scale(t) as f64 / ONE as f64;
            worst = worst.max((got - want).abs() / want);
            t += 700_001;
        }
        assert!(worst < 5e-9, "worst relative error {worst}");
        // Before the epoch: e^{-x/τ}.
        for back in [1u64, 1_000, MS, 100 * MS, 999 * MS] {
            let want = (-(back as f64) / TAU).exp();
            let got = c.scale(1_000 * MS - back) as f64 / ONE as f64;
            assert!(
                (got - want).abs() <= 3.0 / ONE as f64 + want * 1e-8,
                "{back}"
            );
        }
    }

    #[test]
    fn short_charges_are_accurate() {
        // Differences of nearly equal scales: a 1 µs run must still count
        // as 1 µs within a few ns (truncation), anywhere in the span, and
        // a thousand of them as a thousand (no drift beyond that).
        for start in [0, 7 * MS, 1_300 * MS, 2_700 * MS] {
            let c = CpuClock::new(0);
            let mut rt = Runtime::default();
            c.charge(&mut rt, start, start + 1_000, W1);
            let d = c.decayed(rt, start + 1_000);
            assert!(d.abs_diff(1_000) <= 3, "{start}: {d}");
            let mut rt = Runtime::default();
            for i in 0..1_000 {
                c.charge(&mut rt, start + i * 1_000, start + (i + 1) * 1_000, W1);
            }
            let want = TAU * (1.0 - (-(MS as f64) / TAU).exp());
            let d = c.decayed(rt, start + MS) as f64;
            assert!(close(d, want, 3e-3), "{start}: {d} vs {want}");
        }
    }

    #[test]
    fn log2_matches_floating_point() {
        for q in [1.0f64, 1.001, 1.3, 1.999, 2.0, 3.7, 1000.5, 1e6] {
            let got = log2_q32((q * ONE as f64) as u64) as f64 / ONE as f64;
            assert!((got - q.log2()).abs() < 1e-5, "{q}: {got}");
        }
    }

    #[test]
    fn runtime_decays_by_half_over_tau_ln2() {
        let c = CpuClock::new(0);
        let mut rt = Runtime::default();
        c.charge(&mut rt, 0, 10 * MS, W1);
        let at_stop = c.decayed(rt, 10 * MS) as f64;
        assert!(close(at_stop, TAU * (1.0 - (-0.05f64).exp()), 1e-6));
        let half_life = (TAU * core::f64::consts::LN_2) as u64;
        assert!(close(
            c.decayed(rt, 10 * MS + half_life) as f64,
            at_stop / 2.0,
            1e-6
        ));
    }

    #[test]
    fn always_running_thread_converges_to_tau() {
        let mut c = CpuClock::new(0);
        let mut rt = Runtime::default();
        let mut t = 0;
        while t < 5_000 * MS {
            if c.renormalize_due(t) {
                c.renormalize(t).apply(&mut rt);
            }
            c.charge(&mut rt, t, t + MS, W1);
            t += MS;
        }
        assert!(close(c.decayed(rt, t) as f64, TAU, 1e-3));
    }

    #[test]
    fn a_sleeper_adopts_the_new_epoch_on_wakeup() {
        let mut c = CpuClock::new(0);
        let (mut queued, mut sleeper) = (Runtime::default(), Runtime::default());
        c.charge(&mut queued, 0, 30 * MS, W1);
        c.charge(&mut sleeper, 30 * MS, 40 * MS, W1);
        let old_epoch = c.epoch();
        let now = 2_900 * MS;
        assert!(c.renormalize_due(now));
        let (dq, ds) = (
            c.decayed(queued, now) as f64,
            c.decayed(sleeper, now) as f64,
        );
        let r = c.renormalize(now);
        r.apply(&mut queued);
        // The sleeper missed the rescale: stale until it adopts the epoch.
        assert!(!close(c.decayed(sleeper, now) as f64, ds, 1e-3));
        c.adopt(&mut sleeper, old_epoch);
        assert!(close(c.decayed(queued, now) as f64, dq, 1e-6));
        assert!(close(c.decayed(sleeper, now) as f64, ds, 1e-6));
    }

    #[test]
    fn renormalizing_keeps_values_and_order() {
        let mut c = CpuClock::new(0);
        let (mut a, mut b) = (Runtime::default(), Runtime::default());
        c.charge(&mut a, 0, 30 * MS, W1);
        c.charge(&mut b, 30 * MS, 40 * MS, W1);
        let now = 2_900 * MS;
        assert!(c.renormalize_due(now));
        let (da, db) = (c.decayed(a, now) as f64, c.decayed(b, now) as f64);
        let r = c.renormalize(now);
        r.apply(&mut a);
        r.apply(&mut b);
        assert!(!c.renormalize_due(now));
        assert!(close(c.decayed(a, now) as f64, da, 1e-6));
        assert!(close(c.decayed(b, now) as f64, db, 1e-6));
        assert!(a.key() > b.key());
    }

    #[test]
    fn a_long_idle_cpu_renormalizes_to_nothing() {
        let mut c = CpuClock::new(0);
        let mut rt = Runtime::default();
        c.charge(&mut rt, 0, 100 * MS, W1);
        // An hour later everything has decayed away; nothing overflows.
        let now = 3_600_000 * MS;
        assert!(c.renormalize_due(now));
        c.renormalize(now).apply(&mut rt);
        assert_eq!(rt, Runtime::default());
        let mut fresh = Runtime::default();
        c.charge(&mut fresh, now, now + MS, W1);
        assert!(close(c.decayed(fresh, now + MS) as f64, MS as f64, 1e-2));
    }

    #[test]
    fn migration_preserves_the_real_runtime() {
        let src = CpuClock::new(0);
        let dst = CpuClock::new(1_500 * MS);
        let mut rt = Runtime::default();
        src.charge(&mut rt, 1_500 * MS, 1_550 * MS, W1);
        let now = 1_560 * MS;
        let moved = dst.from_decayed(src.decayed(rt, now), now);
        assert!(close(
            dst.decayed(moved, now) as f64,
            src.decayed(rt, now) as f64,
            1e-6
        ));
    }

    #[test]
    fn preemption_point_matches_the_rule() {
        let c = CpuClock::new(0);
        let (mut cur, mut other) = (Runtime::default(), Runtime::default());
        c.charge(&mut other, 0, 20 * MS, W1);
        c.charge(&mut cur, 20 * MS, 25 * MS, W1);
        let now = 25 * MS;
        assert!(!c.should_preempt(cur, other, now));
        let d = c.time_until_preempt(cur, other, now, W1).unwrap();
        // cur must catch up the decayed gap (~13.6 ms at 25 ms) plus the
        // 2 ms granularity, while the other thread's runtime keeps fading.
        assert!(d > 14 * MS && d < 16 * MS, "{d}");
        let mut before = cur;
        c.charge(&mut before, now, now + d - 1000, W1);
        assert!(!c.should_preempt(before, other, now + d - 1000));
        c.charge(&mut cur, now, now + d, W1);
        assert!(c.should_preempt(cur, other, now + d));
        // Already past the point: no time left.
        assert_eq!(c.time_until_preempt(cur, other, now + d, W1), Some(0));
        // A weight whose τ·w is below the granularity never catches up.
        assert_eq!(c.time_until_preempt(cur, other, now, 1), None);
    }

    /// Simulates one CPU: busy threads under the policy get equal shares,
    /// and a weight-2 thread gets half the rate.
    fn simulate(weights: &[u32], total_ms: u64) -> Vec<u64> {
        let mut clock = CpuClock::new(0);
        let mut rts = vec![Runtime::default(); weights.len()];
        let mut ran = vec![0u64; weights.len()];
        let mut now = 0;
        let mut cur = 0;
        while now < total_ms * MS {
            if clock.renormalize_due(now) {
                let r = clock.renormalize(now);
                rts.iter_mut().for_each(|rt| r.apply(rt));
            }
            let best_other = (0..rts.len())
                .filter(|&i| i != cur)
                .min_by_key(|&i| rts[i].key())
                .unwrap();
            let slice = clock
                .time_until_preempt(rts[cur], rts[best_other], now, weights[cur])
                .unwrap()
                .clamp(100_000, 50 * MS);
            clock.charge(&mut rts[cur], now, now + slice, weights[cur]);
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
        let ran = simulate(&[W1, W1, W1], 6_000);
        let total: u64 = ran.iter().sum();
        for r in &ran {
            assert!(close(*r as f64, total as f64 / 3.0, 0.05), "{ran:?}");
        }
    }

    #[test]
    fn priority_weight_scales_the_share() {
        let ran = simulate(&[W1, 2 * W1], 6_000);
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
        c.charge(&mut a, 0, MS, W1);
        c.charge(&mut b, 0, 2 * MS, W1);
        assert!(Runtime::default().key() < a.key() && a.key() < b.key());
    }
}
