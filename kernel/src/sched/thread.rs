//! Thread identity, state and accounting — the arch-neutral part of a
//! thread. The register context lives with the arch; the scheduler only
//! moves `Arc<Thread>`s between run queues and wakeup queues.
//!
//! State machine (one atomic byte, so remote wakeups are a CAS):
//! `Runnable ⇄ Running → Waiting → Waking → Runnable`, and `Running →
//! Terminated`. A wakeup CASes `Waiting → Waking` and pushes the thread onto
//! its home CPU's incoming queue; only one waker can win, so a thread is
//! queued at most once per sleep.

use super::policy::Runtime;
use super::wakeq::{WakeLink, Wakeable};
use arrayvec::ArrayString;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use spin::Mutex;

pub type ThreadId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Runnable = 0,
    Running = 1,
    /// Blocked; a wakeup must CAS it to `Waking`.
    Waiting = 2,
    /// Won by a waker, sitting in an incoming queue.
    Waking = 3,
    Terminated = 4,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Runnable,
            1 => State::Running,
            2 => State::Waiting,
            3 => State::Waking,
            _ => State::Terminated,
        }
    }
}

/// Per-thread counters (OSv's `/os/threads` exposes the same).
#[derive(Debug, Default)]
pub struct Stats {
    pub cpu_ns: AtomicU64,
    pub switches: AtomicU64,
    pub preemptions: AtomicU64,
    pub migrations: AtomicU64,
}

/// Scheduler-private fields, touched only by the CPU that owns the thread
/// (with interrupts off), so the lock is never contended.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sched {
    pub runtime: Runtime,
    /// Runtime weight, Q10 (`policy::WEIGHT_ONE` = 1.0 normally; larger =
    /// lower priority).
    pub priority: u32,
    /// Decayed runtime carried across a migration (set by the source CPU).
    pub carried_ns: Option<u64>,
    /// The CPU clock epoch `runtime` is stored relative to.
    pub epoch_ns: u64,
    /// A new thread sent to another CPU: it starts there with that CPU's
    /// least queued runtime, as a local spawn would (not with zero).
    pub fresh: bool,
}

pub struct Thread {
    pub id: ThreadId,
    pub name: ArrayString<16>,
    state: AtomicU8,
    /// The CPU whose run queue owns this thread.
    home: AtomicU32,
    /// Hard pinning: the thread never leaves this CPU.
    pub pinned: Option<u32>,
    pub sched: Mutex<Sched>,
    pub stats: Stats,
    link: WakeLink<Thread>,
    /// Set by the waker that ended the current wait when it was a timeout
    /// (a timed wait's deadline), cleared when a new wait begins.
    timed_out: AtomicBool,
    /// Set while the thread is in an interruptible wait
    /// (`sync::wait_any(.., interruptible = true, ..)`).
    interruptible: AtomicBool,
    /// An interrupt (a signal for the thread) arrived; interruptible waits
    /// end with `Wake::Interrupted` until the owner clears it.
    interrupt: AtomicBool,
    /// An id the layer running the thread gives it (the Linux personality:
    /// the app thread's tid), 0 = none.
    tag: AtomicU64,
    /// What only the target needs: register context, FP state, stack, the
    /// entry closure, join state (`kthread::ThreadExt`; `()` on the host).
    pub ext: super::ThreadExt,
}

impl Wakeable for Thread {
    fn wake_link(&self) -> &WakeLink<Thread> {
        &self.link
    }
}

impl Thread {
    pub fn new(id: ThreadId, name: &str, home: u32, pinned: Option<u32>) -> Thread {
        let mut n = ArrayString::new();
        for c in name.chars() {
            if n.try_push(c).is_err() {
                break;
            }
        }
        Thread {
            id,
            name: n,
            state: AtomicU8::new(State::Runnable as u8),
            home: AtomicU32::new(pinned.unwrap_or(home)),
            pinned,
            sched: Mutex::new(Sched {
                priority: super::policy::WEIGHT_ONE,
                ..Sched::default()
            }),
            stats: Stats::default(),
            link: WakeLink::new(),
            timed_out: AtomicBool::new(false),
            interruptible: AtomicBool::new(false),
            interrupt: AtomicBool::new(false),
            tag: AtomicU64::new(0),
            ext: Default::default(),
        }
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(super) fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// `from → to` if the thread is in `from`; false otherwise.
    pub(super) fn transition(&self, from: State, to: State) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// True if the last wait ended because its deadline passed.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    pub(super) fn set_timed_out(&self, v: bool) {
        self.timed_out.store(v, Ordering::Release);
    }

    /// Whether an interrupt is pending (see [`Thread::set_interrupt`]).
    pub fn interrupt_pending(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// Raises (true) or clears (false) the thread's interrupt. Raising it
    /// does not wake the thread: `kthread::interrupt` does both. The Linux
    /// layer raises it when a signal becomes deliverable to the thread and
    /// clears it once no deliverable signal is left.
    pub fn set_interrupt(&self, on: bool) {
        self.interrupt.store(on, Ordering::SeqCst);
    }

    /// The tag set by [`Thread::set_tag`] (0 if none).
    pub fn tag(&self) -> u64 {
        self.tag.load(Ordering::Relaxed)
    }

    /// Tags the thread for the layer running it (e.g. with a Linux tid).
    pub fn set_tag(&self, tag: u64) {
        self.tag.store(tag, Ordering::Relaxed);
    }

    /// Whether the thread is inside an interruptible wait right now.
    pub fn in_interruptible_wait(&self) -> bool {
        self.interruptible.load(Ordering::SeqCst)
    }

    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub(crate) fn set_interruptible(&self, on: bool) {
        self.interruptible.store(on, Ordering::SeqCst);
    }

    pub fn home(&self) -> u32 {
        self.home.load(Ordering::Acquire)
    }

    pub(super) fn set_home(&self, cpu: u32) {
        self.home.store(cpu, Ordering::Release);
    }
}
