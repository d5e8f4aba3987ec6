//! A CPU's pending deadlines — sleeping threads, timed waits and kernel
//! timers — sorted soonest first, plus the periodic-timer arithmetic.
//! Arch-free and host-tested; the target keeps one list per CPU behind a
//! spin lock taken with interrupts off (`kthread`, `ktimer`).

use alloc::vec::Vec;

/// Deadlines (ns) with their items, soonest first; equal deadlines fire in
/// the order they were added.
pub struct TimerList<T> {
    /// (deadline, sequence, item), ascending by (deadline, sequence).
    entries: Vec<(u64, u64, T)>,
    next_seq: u64,
}

impl<T> Default for TimerList<T> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<T> TimerList<T> {
    /// An empty list with room for `n` entries (so adding does not allocate
    /// while fewer are pending).
    pub fn with_capacity(n: usize) -> Self {
        TimerList {
            entries: Vec::with_capacity(n),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The soonest deadline.
    pub fn first(&self) -> Option<u64> {
        self.entries.first().map(|e| e.0)
    }

    pub fn insert(&mut self, deadline_ns: u64, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = self
            .entries
            .partition_point(|&(d, s, _)| (d, s) <= (deadline_ns, seq));
        self.entries.insert(at, (deadline_ns, seq, item));
    }

    /// Removes and returns the soonest entry if its deadline is `<= now`.
    pub fn pop_expired(&mut self, now_ns: u64) -> Option<(u64, T)> {
        match self.entries.first() {
            Some(&(d, _, _)) if d <= now_ns => {
                let (d, _, t) = self.entries.remove(0);
                Some((d, t))
            }
            _ => None,
        }
    }

    /// Removes the first entry `matches` accepts; None if there is none.
    pub fn remove(&mut self, mut matches: impl FnMut(&T) -> bool) -> Option<(u64, T)> {
        let i = self.entries.iter().position(|(_, _, t)| matches(t))?;
        let (d, _, t) = self.entries.remove(i);
        Some((d, t))
    }
}

/// The deadline after `prev_deadline` for a timer of period `period_ns` that
/// fired at `now_ns`, on the original grid (`prev + k·period`, so it never
/// drifts) and in the future; with the number of grid points skipped
/// because they had already passed (overruns).
pub fn next_periodic(prev_deadline_ns: u64, period_ns: u64, now_ns: u64) -> (u64, u64) {
    let period = period_ns.max(1);
    let next = prev_deadline_ns.saturating_add(period);
    if next > now_ns {
        return (next, 0);
    }
    let behind = (now_ns - next) / period + 1;
    (next.saturating_add(behind * period), behind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_fifo_among_equals() {
        let mut l = TimerList::default();
        l.insert(30, "c");
        l.insert(10, "a");
        l.insert(20, "b1");
        l.insert(20, "b2");
        assert_eq!(l.first(), Some(10));
        assert_eq!(l.pop_expired(9), None);
        assert_eq!(l.pop_expired(20), Some((10, "a")));
        assert_eq!(l.pop_expired(20), Some((20, "b1")));
        assert_eq!(l.pop_expired(20), Some((20, "b2")));
        assert_eq!(l.pop_expired(20), None);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn remove_takes_only_the_matching_entry() {
        let mut l = TimerList::default();
        for (d, v) in [(5, 1), (7, 2), (9, 3)] {
            l.insert(d, v);
        }
        assert_eq!(l.remove(|&v| v == 2), Some((7, 2)));
        assert_eq!(l.remove(|&v| v == 2), None);
        assert_eq!(l.pop_expired(100), Some((5, 1)));
        assert_eq!(l.pop_expired(100), Some((9, 3)));
        assert!(l.is_empty());
    }

    #[test]
    fn periodic_deadlines_stay_on_the_grid() {
        // Fired a little late: the next deadline is still on the grid.
        assert_eq!(next_periodic(100, 10, 103), (110, 0));
        // Exactly on the next point: that one has passed too.
        assert_eq!(next_periodic(100, 10, 110), (120, 1));
        // Far behind: skip the missed points, stay on the grid.
        assert_eq!(next_periodic(100, 10, 145), (150, 4));
        let mut d = 0;
        for _ in 0..1000 {
            d = next_periodic(d, 10_000_000, d + 1_000).0;
        }
        assert_eq!(d, 1000 * 10_000_000);
    }
}
