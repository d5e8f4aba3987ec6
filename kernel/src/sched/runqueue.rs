//! A CPU's run queue: runnable threads ordered by stored decayed runtime,
//! least first. A vector kept sorted in *descending* order, so the next
//! thread pops off the end in O(1) and insertion is a binary search plus a
//! short move — run queues hold a handful of threads, and capacity is
//! reserved up front so the scheduler does not allocate while switching.

use super::policy::Runtime;
use super::thread::{Thread, ThreadId};
use alloc::sync::Arc;
use alloc::vec::Vec;

pub struct RunQueue {
    /// (key, id, thread), descending by (key, id).
    entries: Vec<(u64, ThreadId, Arc<Thread>)>,
}

impl Default for RunQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueue {
    pub fn new() -> Self {
        RunQueue {
            entries: Vec::with_capacity(64),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues `t` with its current runtime (ties broken by thread id, so the
    /// order is deterministic).
    pub fn insert(&mut self, t: Arc<Thread>, runtime: Runtime) {
        let key = (runtime.key(), t.id);
        let at = self.entries.partition_point(|(k, id, _)| (*k, *id) > key);
        self.entries.insert(at, (key.0, key.1, t));
    }

    /// The least-runtime thread's stored runtime, without removing it.
    pub fn peek_key(&self) -> Option<u64> {
        self.entries.last().map(|(k, _, _)| *k)
    }

    pub fn pop(&mut self) -> Option<Arc<Thread>> {
        self.entries.pop().map(|(_, _, t)| t)
    }

    /// Removes the thread with the *largest* runtime that may migrate (not
    /// pinned): the one that loses least by moving, as OSv's balancer picks.
    pub fn steal(&mut self) -> Option<Arc<Thread>> {
        let i = self
            .entries
            .iter()
            .position(|(_, _, t)| t.pinned.is_none())?;
        Some(self.entries.remove(i).2)
    }

    /// Rescales every key after the CPU renormalized (order is preserved).
    pub fn rekey(&mut self, mut f: impl FnMut(&Thread) -> Runtime) {
        for (k, _, t) in &mut self.entries {
            *k = f(t).key();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Thread>> {
        self.entries.iter().rev().map(|(_, _, t)| t)
    }
}
