//! Scheduling classes for `sched_setscheduler` / `setpriority`: the fair
//! class (decayed runtime, weighted by nice) and the real-time FIFO and
//! round-robin classes, which always run before fair threads, highest
//! priority first. Arch-free and host-tested.
//!
//! Status: the rules are here and tested; the run queue and `CpuSched` do
//! not consult them yet (every thread is fair with weight 1.0). Wiring them
//! in means ordering the run queue by `(rank, runtime)`, FIFO among equal
//! real-time ranks, and a round-robin slice timer.

use super::policy::WEIGHT_ONE;

/// Linux's `SCHED_OTHER`, `SCHED_FIFO`, `SCHED_RR` policy numbers.
pub const SCHED_OTHER: i32 = 0;
pub const SCHED_FIFO: i32 = 1;
pub const SCHED_RR: i32 = 2;
/// Real-time priorities are 1..=99 (higher runs first).
pub const RT_PRIO_MAX: u8 = 99;
/// Round-robin time slice (Linux's default `sched_rr_timeslice_ms`).
pub const RR_SLICE_NS: u64 = 100_000_000;

/// A thread's scheduling class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Decayed-runtime fairness; nice -20..=19 sets the runtime weight.
    Fair { nice: i8 },
    /// Runs until it blocks, yields or a higher priority arrives.
    Fifo { prio: u8 },
    /// Like FIFO, but gives way to equal priorities every `RR_SLICE_NS`.
    RoundRobin { prio: u8 },
}

impl Default for Class {
    fn default() -> Self {
        Class::Fair { nice: 0 }
    }
}

/// Why a policy/priority pair was refused (`EINVAL` to the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassError {
    UnknownPolicy,
    BadPriority,
}

/// Linux's `sched_prio_to_weight` (nice -20..=19): the CPU share weight,
/// 1024 at nice 0, each step ~1.25×.
const NICE_TO_LINUX_WEIGHT: [u32; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

impl Class {
    /// The class `sched_setscheduler(policy, prio)` asks for.
    pub fn from_linux(policy: i32, prio: i32) -> Result<Class, ClassError> {
        let rt_prio = || match u8::try_from(prio) {
            Ok(p) if (1..=RT_PRIO_MAX).contains(&p) => Ok(p),
            _ => Err(ClassError::BadPriority),
        };
        match policy {
            SCHED_OTHER if prio == 0 => Ok(Class::Fair { nice: 0 }),
            SCHED_OTHER => Err(ClassError::BadPriority),
            SCHED_FIFO => Ok(Class::Fifo { prio: rt_prio()? }),
            SCHED_RR => Ok(Class::RoundRobin { prio: rt_prio()? }),
            _ => Err(ClassError::UnknownPolicy),
        }
    }

    /// The fair class at `nice`, clamped to -20..=19 as Linux does.
    pub fn fair(nice: i32) -> Class {
        Class::Fair {
            nice: nice.clamp(-20, 19) as i8,
        }
    }

    /// Ordering between classes: 0 for fair, the priority for real time.
    pub fn rank(self) -> u8 {
        match self {
            Class::Fair { .. } => 0,
            Class::Fifo { prio } | Class::RoundRobin { prio } => prio,
        }
    }

    pub fn is_realtime(self) -> bool {
        self.rank() > 0
    }

    /// The policy's runtime weight (Q10, `WEIGHT_ONE` = nice 0): inversely
    /// proportional to Linux's CPU-share weight, so shares match Linux's
    /// ratios. Real-time threads are not weighted (`WEIGHT_ONE`).
    pub fn weight(self) -> u32 {
        match self {
            Class::Fair { nice } => {
                let i = (i32::from(nice).clamp(-20, 19) + 20) as usize;
                let linux = NICE_TO_LINUX_WEIGHT[i];
                (WEIGHT_ONE * 1024).div_ceil(linux)
            }
            _ => WEIGHT_ONE,
        }
    }
}

/// Class-level preemption: `Some(true)` if `candidate` must take the CPU
/// from `current` at once, `Some(false)` if it must not, `None` if both
/// are fair (the decayed-runtime rule decides). `ran_ns` is how long
/// `current` has run since it last got the CPU (round-robin slices).
pub fn class_preempts(current: Class, candidate: Class, ran_ns: u64) -> Option<bool> {
    match (current, candidate) {
        (Class::Fair { .. }, Class::Fair { .. }) => None,
        (Class::RoundRobin { prio: a }, Class::RoundRobin { prio: b }) if a == b => {
            Some(ran_ns >= RR_SLICE_NS)
        }
        _ => Some(candidate.rank() > current.rank()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_policies_are_validated_like_linux() {
        assert_eq!(
            Class::from_linux(SCHED_OTHER, 0),
            Ok(Class::Fair { nice: 0 })
        );
        assert_eq!(
            Class::from_linux(SCHED_OTHER, 5),
            Err(ClassError::BadPriority)
        );
        assert_eq!(
            Class::from_linux(SCHED_FIFO, 1),
            Ok(Class::Fifo { prio: 1 })
        );
        assert_eq!(
            Class::from_linux(SCHED_RR, 99),
            Ok(Class::RoundRobin { prio: 99 })
        );
        assert_eq!(
            Class::from_linux(SCHED_FIFO, 0),
            Err(ClassError::BadPriority)
        );
        assert_eq!(
            Class::from_linux(SCHED_RR, 100),
            Err(ClassError::BadPriority)
        );
        assert_eq!(
            Class::from_linux(SCHED_FIFO, -1),
            Err(ClassError::BadPriority)
        );
        assert_eq!(Class::from_linux(7, 0), Err(ClassError::UnknownPolicy));
        assert_eq!(Class::fair(-40), Class::Fair { nice: -20 });
        assert_eq!(Class::fair(40), Class::Fair { nice: 19 });
    }

    #[test]
    fn nice_weights_follow_linux_ratios() {
        assert_eq!(Class::fair(0).weight(), WEIGHT_ONE);
        // One nice step is ~1.25x in share, so ~1.25x in runtime weight.
        for n in -20..19 {
            let (a, b) = (Class::fair(n).weight(), Class::fair(n + 1).weight());
            let r = f64::from(b) / f64::from(a);
            assert!(a < b && (1.1..1.4).contains(&r), "nice {n}: {a} -> {b}");
        }
        // The strongest weight still lets the policy compute a slice
        // (τ·w must exceed the granularity).
        let strongest = u64::from(Class::fair(-20).weight());
        assert!(
            super::super::policy::TAU_NS * strongest / u64::from(WEIGHT_ONE)
                > super::super::policy::GRANULARITY_NS
        );
        assert_eq!(Class::Fifo { prio: 50 }.weight(), WEIGHT_ONE);
    }

    #[test]
    fn real_time_beats_fair_and_higher_beats_lower() {
        let fair = Class::fair(0);
        let fifo10 = Class::Fifo { prio: 10 };
        let fifo20 = Class::Fifo { prio: 20 };
        let rr10 = Class::RoundRobin { prio: 10 };
        assert_eq!(class_preempts(fair, Class::fair(-5), 0), None);
        assert_eq!(class_preempts(fair, fifo10, 0), Some(true));
        assert_eq!(class_preempts(fifo10, fair, u64::MAX), Some(false));
        assert_eq!(class_preempts(fifo10, fifo20, 0), Some(true));
        assert_eq!(class_preempts(fifo20, fifo10, 0), Some(false));
        // FIFO keeps the CPU against its equals however long it runs.
        assert_eq!(
            class_preempts(fifo10, Class::Fifo { prio: 10 }, u64::MAX),
            Some(false)
        );
        assert_eq!(class_preempts(fifo10, rr10, u64::MAX), Some(false));
        assert!(fifo10.is_realtime() && !fair.is_realtime());
    }

    #[test]
    fn round_robin_rotates_equals_after_a_slice() {
        let a = Class::RoundRobin { prio: 30 };
        let b = Class::RoundRobin { prio: 30 };
        assert_eq!(class_preempts(a, b, RR_SLICE_NS - 1), Some(false));
        assert_eq!(class_preempts(a, b, RR_SLICE_NS), Some(true));
        // But never gives way to a lower priority, nor to fair threads.
        assert_eq!(
            class_preempts(a, Class::RoundRobin { prio: 29 }, u64::MAX),
            Some(false)
        );
        assert_eq!(class_preempts(a, Class::fair(-20), u64::MAX), Some(false));
    }
}
