//! Interval timers: `setitimer`/`getitimer` and `alarm`.
//!
//! ITIMER_REAL is the process's one real-time timer: SIGALRM at each
//! expiry. It is a monotonic [`TimerFd`] (the same grid arithmetic as
//! `timerfd_settime`: periods never drift, missed ones are skipped), read
//! by a kernel thread started at the first arming, which queues SIGALRM
//! to the process once per read. Standard signals do not queue, so
//! expirations while SIGALRM is still pending merge into one, as on Linux.
//!
//! ITIMER_VIRTUAL and ITIMER_PROF count the process's CPU time, which is
//! not sampled per process here: disarming them succeeds, arming them
//! fails loudly with ENOSYS.
//!
//! Depends on fs::timerfd, the signal layer and (on the target) the
//! scheduler's thread spawn.

use super::Cx;
use crate::errno::{Errno, KResult};
use crate::fs::timerfd::{Clock, Setting, TimerFd};
use crate::syscall::Args;
use alloc::sync::Arc;

pub const ITIMER_REAL: usize = 0;
pub const ITIMER_VIRTUAL: usize = 1;
pub const ITIMER_PROF: usize = 2;

const NS_PER_US: u64 = 1_000;
const NS_PER_S: u64 = 1_000_000_000;
const US_PER_S: i64 = 1_000_000;

/// `sizeof(struct itimerval)`: two `struct timeval`s (interval, value).
const ITIMERVAL: usize = 32;

static REAL: spin::Once<Arc<TimerFd>> = spin::Once::new();

fn real() -> &'static Arc<TimerFd> {
    REAL.call_once(|| TimerFd::new(Clock::Monotonic))
}

/// A `struct timeval` as ns; EINVAL for a negative field or a
/// `tv_usec` of a second or more (Linux's check).
fn timeval_ns(b: &[u8]) -> KResult<u64> {
    let sec = i64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let usec = i64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    if sec < 0 || !(0..US_PER_S).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NS_PER_S)
        .saturating_add(usec as u64 * NS_PER_US))
}

fn timeval(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / NS_PER_S) as i64).to_le_bytes());
    b[8..].copy_from_slice(&(((ns % NS_PER_S) / NS_PER_US) as i64).to_le_bytes());
    b
}

/// A `struct itimerval` (interval, then value) as a setting.
pub fn parse(b: &[u8; ITIMERVAL]) -> KResult<Setting> {
    Ok(Setting {
        interval_ns: timeval_ns(&b[..16])?,
        value_ns: timeval_ns(&b[16..])?,
    })
}

/// A setting as a `struct itimerval`. An armed timer never reads as
/// disarmed: less than a microsecond left shows as one (Linux does too).
pub fn encode(s: Setting, armed: bool) -> [u8; ITIMERVAL] {
    let value = if armed { s.value_ns.max(NS_PER_US) } else { 0 };
    let mut b = [0u8; ITIMERVAL];
    b[..16].copy_from_slice(&timeval(s.interval_ns));
    b[16..].copy_from_slice(&timeval(value));
    b
}

/// What `alarm` returns for the old setting: whole seconds left, rounded
/// to nearest, and never 0 for an armed timer (Linux's rule).
pub fn alarm_seconds(old: Setting) -> usize {
    let (secs, usec) = (
        old.value_ns / NS_PER_S,
        (old.value_ns % NS_PER_S) / NS_PER_US,
    );
    let round_up = (secs == 0 && old.value_ns > 0) || usec >= 500_000;
    (secs + u64::from(round_up)) as usize
}

/// Arms (or disarms) ITIMER_REAL; the old setting.
fn set_real(new: Setting) -> Setting {
    if new.value_ns != 0 {
        start_poster();
    }
    real().settime(new, false)
}

fn get_real() -> Setting {
    REAL.get().map(|t| t.gettime()).unwrap_or_default()
}

/// The thread that turns expiries into SIGALRM (target only; host tests
/// check the settings).
fn start_poster() {
    #[cfg(target_os = "none")]
    {
        static POSTER: spin::Once<()> = spin::Once::new();
        POSTER.call_once(|| {
            if let Err(e) = crate::sched::spawn("itimer-real", post_alarms, None) {
                log::warn!("linux: itimer thread not started error={e:?}; SIGALRM will not come");
            }
        });
    }
}

#[cfg(target_os = "none")]
fn post_alarms() {
    use super::signal;
    use crate::fs::Inode;
    let timer = real();
    loop {
        let mut expirations = [0u8; 8];
        // Only an interruption ends the wait without an expiry. Nothing
        // interrupts this thread, but the flag stays set until cleared, so
        // clear it rather than spin on it; then wait again.
        if timer.read_stream(&mut expirations, false).is_err() {
            crate::sched::current().set_interrupt(false);
            continue;
        }
        if let Some(app) = super::app::app() {
            signal::queue_process(
                &app.task,
                signal::Info {
                    signo: signal::SIGALRM as i32,
                    code: signal::SI_KERNEL,
                    pid: 0,
                    uid: 0,
                    addr: 0,
                },
            );
        }
    }
}

/// `setitimer(which, new, old)`.
pub fn sys_setitimer(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let which = a[0];
    if which > ITIMER_PROF {
        return Err(Errno::EINVAL);
    }
    let mut raw = [0u8; ITIMERVAL];
    if a[1] != 0 {
        ctx.copy_in(a[1], &mut raw)?;
    }
    let new = parse(&raw)?;
    let old = match which {
        ITIMER_REAL => set_real(new),
        _ if new.value_ns == 0 => Setting::default(),
        _ => {
            ctx.report_unimplemented(&alloc::format!(
                "linux: setitimer which={} (CPU-time timer) arming is unsupported returning=-ENOSYS",
                if which == ITIMER_VIRTUAL { "ITIMER_VIRTUAL" } else { "ITIMER_PROF" }
            ));
            return Err(Errno::ENOSYS);
        }
    };
    if a[2] != 0 {
        ctx.copy_out(a[2], &encode(old, old.value_ns != 0))?;
    }
    Ok(0)
}

/// `getitimer(which, out)`.
pub fn sys_getitimer(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let now = match a[0] {
        ITIMER_REAL => get_real(),
        ITIMER_VIRTUAL | ITIMER_PROF => Setting::default(),
        _ => return Err(Errno::EINVAL),
    };
    // `gettime` shows a one-shot timer that already fired as disarmed.
    ctx.copy_out(a[1], &encode(now, now.value_ns != 0))?;
    Ok(0)
}

/// `alarm(seconds)`: ITIMER_REAL one-shot (0 disarms); the seconds that
/// were left on it.
pub fn sys_alarm(_ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let secs = a[0] as u32;
    let old = set_real(Setting {
        value_ns: u64::from(secs) * NS_PER_S,
        interval_ns: 0,
    });
    Ok(alarm_seconds(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn itv(interval: (i64, i64), value: (i64, i64)) -> [u8; ITIMERVAL] {
        let mut b = [0u8; ITIMERVAL];
        for (i, v) in [interval.0, interval.1, value.0, value.1]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn itimerval_round_trip_and_checks() {
        let s = parse(&itv((0, 250_000), (2, 5))).unwrap();
        assert_eq!(s.interval_ns, 250_000_000);
        assert_eq!(s.value_ns, 2_000_005_000);
        assert_eq!(encode(s, true), itv((0, 250_000), (2, 5)));
        assert_eq!(parse(&itv((0, 0), (0, 1_000_000))), Err(Errno::EINVAL));
        assert_eq!(parse(&itv((0, -1), (1, 0))), Err(Errno::EINVAL));
        assert_eq!(parse(&itv((-1, 0), (1, 0))), Err(Errno::EINVAL));
        // Sub-microsecond remainders of an armed timer show as 1 us.
        let tiny = Setting {
            value_ns: 10,
            interval_ns: 0,
        };
        assert_eq!(encode(tiny, true), itv((0, 0), (0, 1)));
        assert_eq!(encode(tiny, false), itv((0, 0), (0, 0)));
    }

    #[test]
    fn alarm_rounds_like_linux() {
        let s = |ns| Setting {
            value_ns: ns,
            interval_ns: 0,
        };
        assert_eq!(alarm_seconds(s(0)), 0);
        assert_eq!(alarm_seconds(s(1)), 1);
        assert_eq!(alarm_seconds(s(2 * NS_PER_S + 499_999_000)), 2);
        assert_eq!(alarm_seconds(s(2 * NS_PER_S + 500_000_000)), 3);
    }
}
