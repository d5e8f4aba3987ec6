//! The scheduler (OSv's design): the fairness policy ([`policy`], fixed
//! point), scheduling classes ([`class`]), threads and their state machine
//! ([`thread`]), per-CPU run queues ([`runqueue`]), the lock-free incoming
//! wakeup queue ([`wakeq`]), each CPU's decisions ([`cpu`]), its deadline
//! list ([`timerlist`]) and RCU grace periods ([`quiescent`]). All
//! arch-free and host-tested (`sim` runs several simulated CPUs); the
//! context switch itself is the arch's. On the target, [`kthread`] runs
//! real threads on this core: stacks, the switch, per-CPU state,
//! preemption, sleeping, SMP start-up; [`ktimer`] adds kernel timers and
//! timed waits (see docs/scheduler.md).

pub mod class;
pub mod cpu;
pub mod policy;
pub mod quiescent;
pub mod runqueue;
pub mod thread;
pub mod timerlist;
pub mod wakeq;

#[cfg(target_os = "none")]
mod ktests;
#[cfg(target_os = "none")]
pub mod kthread;
#[cfg(target_os = "none")]
pub mod ktimer;
#[cfg(target_os = "none")]
pub use kthread::*;
#[cfg(target_os = "none")]
pub use ktimer::Timer;

/// Target-only per-thread state (see `kthread::ThreadExt`); nothing on the
/// host, where threads are simulated.
#[cfg(not(target_os = "none"))]
pub type ThreadExt = ();

#[cfg(test)]
mod sim;

/// State changes the simulator performs on behalf of a thread's own code
/// (the real ones live in the wait primitives).
#[cfg(test)]
mod thread_test_hooks {
    use super::thread::{State, Thread};

    pub fn set_waiting(t: &Thread) {
        t.set_state(State::Waiting);
    }

    /// The condition was already true: go back to running, unless a waker
    /// won the race (then the pending wakeup is drained by `schedule`).
    pub fn try_unwait(t: &Thread) -> bool {
        t.transition(State::Waiting, State::Running)
    }
}
