//! Readiness of one socket as poll/epoll and blocked callers see it: the
//! `poll(2)` bits cached in an atomic (so `Inode::poll_ready` is one load
//! and never takes a lock, as `sync::wait_any`'s condition must not), an
//! event counter for edge-triggered epoll, and the wait queue woken on
//! every change. Whoever changes a socket's state (a syscall, the network
//! thread) recomputes its bits under the socket's own lock and calls
//! [`Notify::update`].
//!
//! Bits above [`crate::fs::pollbits`]'s range are private to the socket
//! (e.g. "a datagram receive queue has room") and are masked out of
//! [`Notify::poll_bits`].

use crate::errno::{Errno, KResult};
use crate::fs::WaitQueue;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bits visible to poll (the low 16).
const PUBLIC: u32 = 0xffff;
/// Private bit: a datagram socket's receive queue has room for a sender.
pub const RX_ROOM: u32 = 1 << 16;
/// Private bit: a state change a blocked caller waits for (a TCP connect
/// finished one way or the other, an accept queue changed).
pub const STATE: u32 = 1 << 17;

/// One socket's readiness and wait queue.
#[derive(Default)]
pub struct Notify {
    queue: WaitQueue,
    bits: AtomicU32,
    seq: AtomicU64,
}

impl Notify {
    pub const fn new() -> Self {
        Notify {
            queue: WaitQueue::new(),
            bits: AtomicU32::new(0),
            seq: AtomicU64::new(0),
        }
    }

    /// Stores the new readiness `bits`. `event`: something happened that
    /// an edge-triggered waiter must hear about even if the bits are the
    /// same (more data arrived). Wakes the queue when anything changed.
    pub fn update(&self, bits: u32, event: bool) {
        if self.store(bits, event) {
            self.wake();
        }
    }

    /// [`update`](Self::update) without the wakeup, for callers that
    /// store under their own lock and wake after dropping it: returns
    /// whether [`wake`](Self::wake) is due.
    pub fn store(&self, bits: u32, event: bool) -> bool {
        let old = self.bits.swap(bits, Ordering::SeqCst);
        if old != bits || event {
            self.seq.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Wakes every waiter (they re-check their condition).
    pub fn wake(&self) {
        self.queue.wake_all();
    }

    /// The cached bits, private ones included.
    pub fn bits(&self) -> u32 {
        self.bits.load(Ordering::SeqCst)
    }

    /// What `Inode::poll_ready` reports.
    pub fn poll_bits(&self) -> u32 {
        self.bits() & PUBLIC
    }

    pub fn events_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// Blocks until any of `mask` is set (or `deadline_ns` passes: EAGAIN,
    /// as Linux's `SO_RCVTIMEO` does), interruptibly: a signal ends the
    /// wait with ERESTARTSYS. The caller re-checks the real state after.
    pub fn wait(&self, mask: u32, deadline_ns: Option<u64>) -> KResult<()> {
        wait_on(&self.queue, deadline_ns, || self.bits() & mask != 0)
    }
}

#[cfg(target_os = "none")]
fn wait_on(q: &WaitQueue, deadline_ns: Option<u64>, cond: impl FnMut() -> bool) -> KResult<()> {
    use crate::sync::{wait_any, Wake};
    match wait_any(&[q], deadline_ns, true, cond) {
        Wake::Ready => Ok(()),
        Wake::TimedOut => Err(Errno::EAGAIN),
        Wake::Interrupted => Err(Errno::ERESTARTSYS),
    }
}

/// Host builds (unit tests with std threads): spin until the condition
/// holds; deadlines are on the host clock.
#[cfg(not(target_os = "none"))]
fn wait_on(
    _q: &WaitQueue,
    deadline_ns: Option<u64>,
    mut cond: impl FnMut() -> bool,
) -> KResult<()> {
    loop {
        if cond() {
            return Ok(());
        }
        if deadline_ns.is_some_and(|d| super::now_ns() >= d) {
            return Err(Errno::EAGAIN);
        }
        core::hint::spin_loop();
        #[cfg(test)]
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_counts_events_and_masks_private_bits() {
        let n = Notify::new();
        n.update(0x1 | RX_ROOM, false);
        assert_eq!(n.poll_bits(), 0x1);
        assert_eq!(n.events_seq(), 1);
        n.update(0x1 | RX_ROOM, false);
        assert_eq!(n.events_seq(), 1, "no change, no event");
        n.update(0x1 | RX_ROOM, true);
        assert_eq!(n.events_seq(), 2, "new data is an event");
        assert_eq!(n.wait(0x1, None), Ok(()));
        assert_eq!(n.wait(0x4, Some(0)), Err(Errno::EAGAIN));
    }
}
