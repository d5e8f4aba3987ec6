//! What file objects need from the scheduler to block and to tell time:
//! the wait queue they wake when their state changes, [`wait_any`] (wait
//! on several queues, with a deadline, interruptible by a signal), the
//! clocks deadlines are measured on, and [`without_interrupts`] for the
//! short spin-locked sections readiness checks share.
//!
//! On the target these are the kernel's own ([`crate::sync`],
//! [`crate::time`], the arch). On the host (unit tests, no scheduler) they
//! are stand-ins: a wait spins until its condition holds or its deadline
//! passes (tests drive the other side from std threads), a wait is never
//! interrupted, and the clocks are std's — so the same file-system code is
//! host-testable.

#[cfg(target_os = "none")]
pub use crate::sync::{wait_any, WaitQueue, Wake};

/// Nanoseconds on the monotonic clock deadlines use (`time::now_ns`).
#[cfg(target_os = "none")]
pub fn monotonic_ns() -> u64 {
    crate::time::now_ns()
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME).
#[cfg(target_os = "none")]
pub fn realtime_ns() -> u64 {
    crate::time::realtime_ns()
}

/// Runs `f` with interrupts off: the rule for every spin lock a
/// readiness check (which runs with interrupts off) also takes.
#[cfg(target_os = "none")]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    crate::arch::cpu::without_interrupts(f)
}

/// Host stand-in for the kernel wait queue (see the module doc).
#[cfg(not(target_os = "none"))]
#[derive(Default)]
pub struct WaitQueue;

#[cfg(not(target_os = "none"))]
impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue
    }

    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        while !cond() {
            relax();
        }
    }

    pub fn wake_one(&self) -> bool {
        false
    }

    pub fn wake_all(&self) -> usize {
        0
    }
}

/// How a [`wait_any`] ended (the host stand-in of `sync::Wake`).
#[cfg(not(target_os = "none"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Ready,
    TimedOut,
    Interrupted,
}

/// Host stand-in of `sync::wait_any`: spins until `cond()` holds or the
/// deadline passes. Never interrupted (no signals on the host).
#[cfg(not(target_os = "none"))]
pub fn wait_any(
    _queues: &[&WaitQueue],
    deadline_ns: Option<u64>,
    _interruptible: bool,
    mut cond: impl FnMut() -> bool,
) -> Wake {
    loop {
        if cond() {
            return Wake::Ready;
        }
        if deadline_ns.is_some_and(|d| monotonic_ns() >= d) {
            return Wake::TimedOut;
        }
        relax();
    }
}

#[cfg(not(target_os = "none"))]
fn relax() {
    core::hint::spin_loop();
    #[cfg(test)]
    std::thread::yield_now();
}

/// Host monotonic clock: ns since the first call.
#[cfg(all(not(target_os = "none"), test))]
pub fn monotonic_ns() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Host realtime clock.
#[cfg(all(not(target_os = "none"), test))]
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Host builds outside tests (`cargo check`, clippy) only compile: no
/// clock, time stands still at 0.
#[cfg(all(not(target_os = "none"), not(test)))]
pub fn monotonic_ns() -> u64 {
    0
}

#[cfg(all(not(target_os = "none"), not(test)))]
pub fn realtime_ns() -> u64 {
    0
}

/// Host stand-in: no interrupts to turn off.
#[cfg(not(target_os = "none"))]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    f()
}
