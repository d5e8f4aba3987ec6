//! `timerfd` objects: a one-shot or periodic timer behind a descriptor.
//! Reading 8 bytes returns how many times it expired since the last read
//! (or since `timerfd_settime`) and resets that count; it waits (or is
//! EAGAIN) while the count is 0. Readable while the count is above 0.
//!
//! Expirations are computed from the clock, not counted by callbacks: a
//! timer armed with first expiry `base` and period `interval` has expired
//! `1 + (now - base) / interval` times by `now` (once for a one-shot), and
//! a read takes everything not taken before ([`Schedule`]). So the count
//! is exact whatever the timer interrupt's latency, and readiness checks
//! need no callback to have run. A kernel [`crate::sync::Timer`] (target
//! only) just wakes waiters at each expiry; every expiry is one
//! edge-triggered event.
//!
//! Clocks: CLOCK_MONOTONIC and CLOCK_BOOTTIME run on the kernel's
//! monotonic clock; CLOCK_REALTIME deadlines are converted to it when the
//! timer is set (the wall clock is never stepped, so no
//! `TFD_TIMER_CANCEL_ON_SET` event ever happens).

use super::pollbits::*;
use super::waitq::{monotonic_ns, realtime_ns, without_interrupts};
use super::{wait_any, Inode, Metadata, WaitQueue, Wake};
use crate::errno::{Errno, KResult};
use alloc::sync::Arc;
use spin::Mutex;

/// The clock a timer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Realtime,
    Monotonic,
}

/// A timer's setting, as `struct itimerspec` in ns: the time to the first
/// expiry (0: disarmed) and the period (0: one-shot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Setting {
    pub value_ns: u64,
    pub interval_ns: u64,
}

/// An armed timer on the monotonic clock, and what reads took of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The first expiry.
    pub base_ns: u64,
    /// 0: one-shot.
    pub interval_ns: u64,
    /// Expirations already returned by reads.
    pub taken: u64,
}

impl Schedule {
    /// Expirations since it was armed, by `now`.
    pub fn expirations(&self, now: u64) -> u64 {
        if now < self.base_ns {
            return 0;
        }
        // A one-shot timer (period 0) expires once.
        (now - self.base_ns)
            .checked_div(self.interval_ns)
            .map_or(1, |periods| periods + 1)
    }

    /// Expirations a read would return now.
    pub fn unread(&self, now: u64) -> u64 {
        self.expirations(now).saturating_sub(self.taken)
    }

    /// The next expiry after `now`; None for a one-shot that expired.
    pub fn next_expiry(&self, now: u64) -> Option<u64> {
        let n = self.expirations(now);
        if n == 0 {
            Some(self.base_ns)
        } else if self.interval_ns == 0 {
            None
        } else {
            Some(
                self.base_ns
                    .saturating_add(n.saturating_mul(self.interval_ns)),
            )
        }
    }

    /// What `timerfd_gettime` reports at `now`.
    pub fn setting(&self, now: u64) -> Setting {
        Setting {
            value_ns: self.next_expiry(now).map_or(0, |t| t.saturating_sub(now)),
            interval_ns: self.interval_ns,
        }
    }
}

/// The schedule `timerfd_settime` sets: `new` relative to `now_mono`, or
/// with `absolute` a time on `clock` (read as `now_clock` at `now_mono`).
/// None: disarmed (`value_ns` 0).
pub fn schedule(new: Setting, absolute: bool, now_mono: u64, now_clock: u64) -> Option<Schedule> {
    if new.value_ns == 0 {
        return None;
    }
    let base_ns = if absolute {
        // A time in the past expires at once (and counts its periods).
        now_mono
            .saturating_add(new.value_ns)
            .saturating_sub(now_clock)
    } else {
        now_mono.saturating_add(new.value_ns)
    };
    Some(Schedule {
        base_ns,
        interval_ns: new.interval_ns,
        taken: 0,
    })
}

/// Wakes the timer's waiters at each expiry (a kernel timer; on the host,
/// waits poll the clock instead).
#[cfg(target_os = "none")]
struct Alarm(crate::sync::Timer);

#[cfg(target_os = "none")]
impl Alarm {
    fn new(shared: &Arc<Shared>) -> Alarm {
        let s = shared.clone();
        Alarm(crate::sync::Timer::new(move || {
            s.queue.wake_all();
        }))
    }
    fn arm(&self, s: Option<Schedule>) {
        match s {
            None => {
                self.0.cancel();
            }
            Some(s) if s.interval_ns == 0 => self.0.start_oneshot(s.base_ns),
            Some(s) => self.0.start_periodic(s.base_ns, s.interval_ns),
        }
    }
}

#[cfg(not(target_os = "none"))]
struct Alarm;

#[cfg(not(target_os = "none"))]
impl Alarm {
    fn new(_: &Arc<Shared>) -> Alarm {
        Alarm
    }
    fn arm(&self, _: Option<Schedule>) {}
}

struct State {
    schedule: Option<Schedule>,
    /// Bumped by every `settime` (for edge-triggered events).
    generation: u64,
}

struct Shared {
    /// Spin lock, taken with interrupts off only (readiness checks run
    /// with interrupts off).
    state: Mutex<State>,
    queue: WaitQueue,
}

/// A timerfd object.
pub struct TimerFd {
    ino: u64,
    clock: Clock,
    shared: Arc<Shared>,
    alarm: Alarm,
}

impl TimerFd {
    pub fn new(clock: Clock) -> Arc<TimerFd> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                schedule: None,
                generation: 0,
            }),
            queue: WaitQueue::new(),
        });
        Arc::new(TimerFd {
            ino: super::anon_ino(),
            clock,
            alarm: Alarm::new(&shared),
            shared,
        })
    }

    fn locked<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        without_interrupts(|| f(&mut self.shared.state.lock()))
    }

    fn clock_now(&self) -> u64 {
        match self.clock {
            Clock::Realtime => realtime_ns(),
            Clock::Monotonic => monotonic_ns(),
        }
    }

    /// `timerfd_settime`: arms (or with a zero value disarms) the timer,
    /// resets the expiration count; returns the old setting.
    pub fn settime(&self, new: Setting, absolute: bool) -> Setting {
        let now = monotonic_ns();
        let sched = schedule(new, absolute, now, self.clock_now());
        let old = self.locked(|s| {
            let old = s.schedule.map(|o| o.setting(now)).unwrap_or_default();
            s.schedule = sched;
            s.generation += 1;
            old
        });
        self.alarm.arm(sched);
        // A timer set in the past is readable now.
        self.shared.queue.wake_all();
        old
    }

    /// `timerfd_gettime`: the time to the next expiry and the period.
    pub fn gettime(&self) -> Setting {
        let now = monotonic_ns();
        self.locked(|s| s.schedule.map(|o| o.setting(now)).unwrap_or_default())
    }

    fn unread(&self) -> u64 {
        let now = monotonic_ns();
        self.locked(|s| s.schedule.map_or(0, |o| o.unread(now)))
    }

    fn take(&self) -> u64 {
        let now = monotonic_ns();
        self.locked(|s| match s.schedule.as_mut() {
            Some(o) => {
                let n = o.unread(now);
                o.taken += n;
                n
            }
            None => 0,
        })
    }
}

impl Inode for TimerFd {
    fn metadata(&self) -> Metadata {
        super::anon_metadata(self.ino)
    }

    fn read_at(&self, _: u64, _: &mut [u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }

    fn write_at(&self, _: u64, _: &[u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read_stream(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            let n = self.take();
            if n > 0 {
                buf[..8].copy_from_slice(&n.to_ne_bytes());
                return Ok(8);
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            // The next expiry is the deadline too: the wait ends on time
            // even if the wakeup were late.
            let next = {
                let now = monotonic_ns();
                self.locked(|s| s.schedule.and_then(|o| o.next_expiry(now)))
            };
            if wait_any(&[&self.shared.queue], next, true, || self.unread() > 0)
                == Wake::Interrupted
            {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    /// Linux's timerfd is not writable.
    fn write_stream(&self, _: &[u8], _: bool) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn poll_ready(&self) -> u32 {
        if self.unread() > 0 {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(&self.shared.queue);
    }

    /// One event per expiry (and per `settime`).
    fn poll_events_seq(&self) -> u64 {
        let now = monotonic_ns();
        self.locked(|s| {
            (s.generation << 40).wrapping_add(s.schedule.map_or(0, |o| o.expirations(now)))
        })
    }

    fn supports_poll(&self) -> bool {
        true
    }

    fn fs_magic(&self) -> u64 {
        super::magic::ANON_INODE
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn expirations_follow_the_grid() {
        let s = schedule(
            Setting {
                value_ns: 10 * MS,
                interval_ns: 5 * MS,
            },
            false,
            100 * MS,
            0,
        )
        .unwrap();
        assert_eq!(s.base_ns, 110 * MS);
        assert_eq!(s.expirations(109 * MS), 0);
        assert_eq!(s.expirations(110 * MS), 1);
        assert_eq!(s.expirations(124 * MS), 3);
        assert_eq!(s.next_expiry(124 * MS), Some(125 * MS));
        assert_eq!(
            s.setting(124 * MS),
            Setting {
                value_ns: MS,
                interval_ns: 5 * MS
            }
        );
        let taken = Schedule { taken: 3, ..s };
        assert_eq!(taken.unread(124 * MS), 0);
        assert_eq!(taken.unread(125 * MS), 1);
    }

    #[test]
    fn one_shot_and_absolute_times() {
        let one = Setting {
            value_ns: 3 * MS,
            interval_ns: 0,
        };
        assert_eq!(schedule(Setting::default(), false, 5, 5), None);
        let s = schedule(one, false, 0, 0).unwrap();
        assert_eq!(s.expirations(100 * MS), 1);
        assert_eq!(s.next_expiry(100 * MS), None);
        assert_eq!(s.setting(100 * MS), Setting::default());
        // Realtime 1000 ms at monotonic 10 ms: absolute 1003 ms is 13 ms.
        let abs = Setting {
            value_ns: 1003 * MS,
            interval_ns: 0,
        };
        assert_eq!(
            schedule(abs, true, 10 * MS, 1000 * MS).unwrap().base_ns,
            13 * MS
        );
        // In the past: due at once.
        let past = Setting {
            value_ns: 1,
            interval_ns: MS,
        };
        let p = schedule(past, true, 10 * MS, 1000 * MS).unwrap();
        assert_eq!(p.base_ns, 0);
        assert_eq!(p.expirations(10 * MS), 11);
    }

    #[test]
    fn read_counts_interval_expirations() {
        let t = TimerFd::new(Clock::Monotonic);
        let mut b = [0u8; 8];
        assert_eq!(t.read_stream(&mut b, true), Err(Errno::EAGAIN));
        assert_eq!(t.poll_ready(), 0);
        t.settime(
            Setting {
                value_ns: MS,
                interval_ns: MS,
            },
            false,
        );
        assert_eq!(t.gettime().interval_ns, MS);
        assert_eq!(t.read_stream(&mut b, false), Ok(8));
        assert!(u64::from_ne_bytes(b) >= 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(t.poll_ready(), POLLIN | POLLRDNORM);
        assert_eq!(t.read_stream(&mut b, true), Ok(8));
        assert!(u64::from_ne_bytes(b) >= 4);
        let old = t.settime(Setting::default(), false);
        assert_eq!(old.interval_ns, MS);
        assert_eq!(t.gettime(), Setting::default());
        assert_eq!(t.read_stream(&mut b, true), Err(Errno::EAGAIN));
    }
}
