//! Grace-period bookkeeping for RCU: a grace period started at some moment
//! is over once every CPU that was online then has passed a quiescent state
//! (its per-CPU counter moved). Arch-free and host-tested; the target keeps
//! the counters (`kthread::synchronize_rcu`).

use alloc::vec::Vec;

/// The counters of the CPUs a grace period waits for, as they were when it
/// started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracePeriod {
    snapshot: Vec<(u32, u64)>,
}

impl GracePeriod {
    /// Starts a grace period over `(cpu, counter)` pairs (the calling CPU
    /// left out: it is quiescent by calling).
    pub fn start(counters: impl IntoIterator<Item = (u32, u64)>) -> Self {
        GracePeriod {
            snapshot: counters.into_iter().collect(),
        }
    }

    /// CPUs that have not passed a quiescent state yet, given each CPU's
    /// current counter.
    pub fn pending(&self, counter: impl Fn(u32) -> u64) -> impl Iterator<Item = u32> + '_ {
        let now: Vec<_> = self
            .snapshot
            .iter()
            .filter(|&&(cpu, seen)| counter(cpu) == seen)
            .map(|&(cpu, _)| cpu)
            .collect();
        now.into_iter()
    }

    /// True once no CPU is pending.
    pub fn is_complete(&self, counter: impl Fn(u32) -> u64) -> bool {
        self.pending(counter).next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_only_when_every_cpu_moved() {
        let mut c = [5u64, 9, 2];
        let gp = GracePeriod::start([(1, c[1]), (2, c[2])]);
        assert_eq!(gp.pending(|i| c[i as usize]).collect::<Vec<_>>(), [1, 2]);
        c[1] += 1;
        assert_eq!(gp.pending(|i| c[i as usize]).collect::<Vec<_>>(), [2]);
        // CPU 0 (the caller) is not waited for, however busy it is.
        c[0] += 100;
        assert!(!gp.is_complete(|i| c[i as usize]));
        c[2] += 3;
        assert!(gp.is_complete(|i| c[i as usize]));
    }

    #[test]
    fn a_lone_cpu_needs_no_grace_period() {
        let gp = GracePeriod::start([]);
        assert!(gp.is_complete(|_| 0));
    }

    #[test]
    fn counter_wrapping_still_counts_as_moved() {
        let mut c = u64::MAX;
        let gp = GracePeriod::start([(3, c)]);
        assert!(!gp.is_complete(|_| c));
        c = c.wrapping_add(1);
        assert!(gp.is_complete(|_| c));
    }
}
