//! The calls that make descriptors for kernel objects with no file
//! behind them: `eventfd`/`eventfd2` ([`crate::fs::eventfd`]) and
//! `timerfd_create`/`timerfd_settime`/`timerfd_gettime`
//! ([`crate::fs::timerfd`]). (`epoll_create*` is in [`super::epoll`].)

use super::poll::{encode_timespec, timespec_ns};
use super::{file, Cx};
use crate::errno::{Errno, KResult};
use crate::fs::eventfd::EventFd;
use crate::fs::timerfd::{Clock, Setting, TimerFd};
use crate::fs::Inode;
use crate::linux::fd::{oflag::*, OpenFile};
use crate::syscall::Args;
use alloc::string::String;
use alloc::sync::Arc;

pub const EFD_SEMAPHORE: u32 = 1;
pub const EFD_CLOEXEC: u32 = O_CLOEXEC;
pub const EFD_NONBLOCK: u32 = O_NONBLOCK;
pub const TFD_CLOEXEC: u32 = O_CLOEXEC;
pub const TFD_NONBLOCK: u32 = O_NONBLOCK;
pub const TFD_TIMER_ABSTIME: u32 = 1;
pub const TFD_TIMER_CANCEL_ON_SET: u32 = 2;

pub const CLOCK_REALTIME: usize = 0;
pub const CLOCK_MONOTONIC: usize = 1;
pub const CLOCK_BOOTTIME: usize = 7;
pub const CLOCK_REALTIME_ALARM: usize = 8;
pub const CLOCK_BOOTTIME_ALARM: usize = 9;

/// Installs `inode` as an anonymous-inode descriptor named `name` (as
/// `/proc/self/fd` shows it), read-write, with `O_NONBLOCK` and
/// `O_CLOEXEC` from `flags`.
fn install(ctx: &mut Cx, inode: Arc<dyn Inode>, name: &str, flags: u32) -> KResult<usize> {
    let file = OpenFile::new(inode, String::from(name), O_RDWR | (flags & O_NONBLOCK));
    ctx.files().insert(file, flags & O_CLOEXEC != 0)
}

fn eventfd(ctx: &mut Cx, initval: usize, flags: u32) -> KResult<usize> {
    if flags & !(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let efd = EventFd::new(initval as u32, flags & EFD_SEMAPHORE != 0);
    install(ctx, efd, "anon_inode:[eventfd]", flags)
}

/// `eventfd(initval)`: no flags.
pub fn sys_eventfd(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    eventfd(ctx, a[0], 0)
}

/// `eventfd2(initval, flags)`: `EFD_SEMAPHORE`, `EFD_NONBLOCK`,
/// `EFD_CLOEXEC`; anything else is EINVAL.
pub fn sys_eventfd2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    eventfd(ctx, a[0], a[1] as u32)
}

/// `timerfd_create(clockid, flags)`: CLOCK_REALTIME, CLOCK_MONOTONIC,
/// CLOCK_BOOTTIME and their alarm forms (no suspend here, so BOOTTIME is
/// MONOTONIC); other clocks and flags are EINVAL.
pub fn sys_timerfd_create(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let clock = match a[0] as i32 as isize as usize {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => Clock::Realtime,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => Clock::Monotonic,
        _ => return Err(Errno::EINVAL),
    };
    let flags = a[1] as u32;
    if flags & !(TFD_CLOEXEC | TFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    install(ctx, TimerFd::new(clock), "anon_inode:[timerfd]", flags)
}

/// Decodes a `struct itimerspec` (interval, then value); EINVAL for an
/// invalid timespec.
pub fn decode_itimerspec(b: &[u8; 32]) -> KResult<Setting> {
    let mut interval = [0u8; 16];
    let mut value = [0u8; 16];
    interval.copy_from_slice(&b[..16]);
    value.copy_from_slice(&b[16..]);
    Ok(Setting {
        interval_ns: timespec_ns(&interval)?,
        value_ns: timespec_ns(&value)?,
    })
}

pub fn encode_itimerspec(s: Setting) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&encode_timespec(s.interval_ns));
    b[16..].copy_from_slice(&encode_timespec(s.value_ns));
    b
}

/// The timerfd behind descriptor argument `fd`: EBADF, or EINVAL if it
/// is another kind of file.
fn timerfd(ctx: &Cx, fd: usize) -> KResult<Arc<OpenFile>> {
    let f = file(ctx, fd)?;
    if !f.inode().as_any().is::<TimerFd>() {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

/// `timerfd_settime(fd, flags, new, old)`.
pub fn sys_timerfd_settime(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let mut raw = [0u8; 32];
    ctx.copy_in(a[2], &mut raw)?;
    let flags = a[1] as u32;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let new = decode_itimerspec(&raw)?;
    let f = timerfd(ctx, a[0])?;
    let Some(t) = f.inode().as_any().downcast_ref::<TimerFd>() else {
        return Err(Errno::EINVAL);
    };
    let old = t.settime(new, flags & TFD_TIMER_ABSTIME != 0);
    if a[3] != 0 {
        ctx.copy_out(a[3], &encode_itimerspec(old))?;
    }
    Ok(0)
}

/// `timerfd_gettime(fd, cur)`.
pub fn sys_timerfd_gettime(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = timerfd(ctx, a[0])?;
    let Some(t) = f.inode().as_any().downcast_ref::<TimerFd>() else {
        return Err(Errno::EINVAL);
    };
    let cur = t.gettime();
    ctx.copy_out(a[1], &encode_itimerspec(cur))?;
    Ok(0)
}
