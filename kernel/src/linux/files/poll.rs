//! `poll`, `ppoll`, `select` and `pselect6`: readiness of many
//! descriptors at once, with Linux's rules.
//!
//! - `poll`: a negative fd is skipped (revents 0), a closed one reports
//!   POLLNVAL; POLLERR and POLLHUP are always reported; more entries than
//!   `RLIMIT_NOFILE` is EINVAL. `revents` is written back for every entry.
//! - `select`: a set bit naming a closed descriptor is EBADF; `nfds` is
//!   clamped to the descriptor table's size (Linux's `max_fds`); readable
//!   means POLLIN/POLLHUP/POLLERR, writable POLLOUT/POLLERR, exceptional
//!   POLLPRI; the result sets are written back and the count of set bits
//!   returned.
//! - Timeouts: `poll` in ms (negative: none), `ppoll`/`pselect6` a
//!   `timespec`, `select` a `timeval`; the last three get the time left
//!   written back (not for a zero timeout), as Linux does.
//! - A signal ends the wait with ERESTARTNOHAND (the signal code makes it
//!   EINTR when a handler runs, else restarts the call).
//! - `ppoll`/`pselect6` install their signal mask for the wait.
//!
//! Simplified: an interrupted `poll` restarts with its whole timeout
//! (Linux restarts it with the time left); the mask of `ppoll`/`pselect6`
//! is put back before returning, so a signal that only that mask let
//! through stays pending and the call returns EINTR instead of running
//! its handler first (see [`with_mask`]).
//!
//! Waiting: the descriptors' own wait queues (`Inode::poll_queues`), all
//! at once, through `sync::wait_any`; readiness is `Inode::poll_ready`.

use super::{epoll::Epoll, Cx};
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use crate::fs::waitq::monotonic_ns;
use crate::fs::{wait_any, Inode, WaitQueue, Wake};
use crate::linux::fd::OpenFile;
use crate::linux::Ctx;
use crate::syscall::Args;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

const NS_PER_SEC: u64 = 1_000_000_000;

/// How often a wait that includes an epoll descriptor re-checks it: an
/// epoll does not own its members, so it cannot hand their queues out.
const EPOLL_RECHECK_NS: u64 = 2_000_000;

// ---- time ----

/// A `struct timespec` from user memory, as ns: EFAULT, or EINVAL unless
/// `tv_sec >= 0` and `0 <= tv_nsec < 1e9`.
pub(crate) fn read_timespec(ctx: &mut dyn Ctx, addr: usize) -> KResult<u64> {
    let mut b = [0u8; 16];
    ctx.copy_in(addr, &mut b)?;
    timespec_ns(&b)
}

/// Decodes a `struct timespec` (16 bytes) into ns.
pub fn timespec_ns(b: &[u8; 16]) -> KResult<u64> {
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let nsec = i64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    if sec < 0 || !(0..NS_PER_SEC as i64).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(nsec as u64))
}

/// Encodes ns as a `struct timespec`.
pub fn encode_timespec(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / NS_PER_SEC) as i64).to_le_bytes());
    b[8..].copy_from_slice(&((ns % NS_PER_SEC) as i64).to_le_bytes());
    b
}

/// Decodes a `struct timeval` as `select` does: microseconds of a
/// million or more carry into seconds; negative fields are EINVAL.
pub fn timeval_ns(b: &[u8; 16]) -> KResult<u64> {
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let usec = i64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    let sec = sec.checked_add(usec / 1_000_000).ok_or(Errno::EINVAL)?;
    let nsec = (usec % 1_000_000) * 1000;
    if sec < 0 || nsec < 0 {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(nsec as u64))
}

fn encode_timeval(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / NS_PER_SEC) as i64).to_le_bytes());
    b[8..].copy_from_slice(&((ns % NS_PER_SEC / 1000) as i64).to_le_bytes());
    b
}

/// When a wait of `timeout` ns from now ends (None: never). A zero
/// timeout is `Some(now)`: check once.
pub(crate) fn deadline_after(timeout: Option<u64>) -> Option<u64> {
    timeout.map(|t| monotonic_ns().saturating_add(t))
}

/// A `poll`/`epoll_wait` timeout in ms: negative waits forever.
pub(crate) fn ms_timeout(ms: usize) -> Option<u64> {
    let ms = ms as i32;
    (ms >= 0).then(|| ms as u64 * 1_000_000)
}

/// Writes the time left before `deadline` back to a user timespec or
/// timeval, as Linux's `poll_select_finish`: not for a zero timeout; a
/// failed write turns a restart into EINTR (the time could not be saved).
fn finish(
    ctx: &mut dyn Ctx,
    addr: usize,
    timeout: Option<u64>,
    deadline: Option<u64>,
    timeval: bool,
    ret: KResult<usize>,
) -> KResult<usize> {
    let (Some(t), Some(d)) = (timeout, deadline) else {
        return ret;
    };
    if addr == 0 || t == 0 {
        return ret;
    }
    let left = d.saturating_sub(monotonic_ns());
    let bytes = if timeval {
        encode_timeval(left)
    } else {
        encode_timespec(left)
    };
    match (ctx.copy_out(addr, &bytes), ret) {
        (Err(_), Err(Errno::ERESTARTNOHAND)) => Err(Errno::EINTR),
        (_, r) => r,
    }
}

// ---- signal mask for the wait ----

/// Runs `f` (a wait) under signal mask `mask` when one is given
/// (`ppoll`, `pselect6`, `epoll_pwait`), then puts the old mask back. A
/// signal the new mask lets through that is already pending ends the wait
/// at once, as on Linux.
///
/// Linux keeps the temporary mask until the interrupting signal's handler
/// has run; this puts the old mask back at once, so an interrupted wait
/// returns EINTR rather than asking for a restart (a restart under the old
/// mask would find the same pending signal and loop).
pub(crate) fn with_mask(
    ctx: &mut dyn Ctx,
    mask: Option<u64>,
    f: impl FnOnce(&mut dyn Ctx) -> KResult<usize>,
) -> KResult<usize> {
    let old = match (mask, ctx.thread()) {
        (Some(m), Some(t)) => {
            let old = t.sigmask();
            t.set_sigmask(m);
            old
        }
        _ => return f(ctx),
    };
    let pending = ctx
        .thread()
        .is_some_and(|t| crate::linux::signal::pending(t.tid()) & !t.sigmask() != 0);
    let ret = if pending { Err(Errno::EINTR) } else { f(ctx) };
    if let Some(t) = ctx.thread() {
        t.set_sigmask(old);
    }
    match ret {
        Err(Errno::ERESTARTNOHAND) => Err(Errno::EINTR),
        r => r,
    }
}

/// Reads a `sigset_t` argument: None for a null pointer, EINVAL unless
/// `size` is 8.
pub(crate) fn read_sigmask(ctx: &mut dyn Ctx, addr: usize, size: usize) -> KResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    super::read_u64(ctx, addr).map(Some)
}

// ---- waiting ----

/// Waits until `ready()` holds, on the wait queues of `inodes` and
/// `extra`, until `deadline`, or a signal (`Wake::Interrupted`). `ready`
/// runs with interrupts off (readiness checks only). May also return
/// `Ready` early when an epoll is watched (see [`EPOLL_RECHECK_NS`]):
/// callers re-check and loop.
pub(crate) fn wait_ready<'a>(
    inodes: &[&'a dyn Inode],
    extra: &[&'a WaitQueue],
    deadline: Option<u64>,
    ready: impl FnMut() -> bool,
) -> Wake {
    let mut queues: Vec<&'a WaitQueue> = Vec::with_capacity(inodes.len() + extra.len());
    let mut add = |q: &'a WaitQueue| {
        if !queues.iter().any(|x| core::ptr::eq(*x, q)) {
            queues.push(q);
        }
    };
    for &q in extra {
        add(q);
    }
    let mut recheck = false;
    for &i in inodes {
        i.poll_queues(&mut add);
        recheck |= i.as_any().is::<Epoll>();
    }
    let until = if recheck {
        let tick = monotonic_ns().saturating_add(EPOLL_RECHECK_NS);
        Some(deadline.map_or(tick, |d| d.min(tick)))
    } else {
        deadline
    };
    let woke = wait_any(&queues, until, true, ready);
    if woke == Wake::TimedOut && deadline.is_none_or(|d| monotonic_ns() < d) {
        return Wake::Ready;
    }
    woke
}

// ---- poll ----

/// One `struct pollfd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFd {
    pub fd: i32,
    pub events: u16,
    pub revents: u16,
}

/// Decodes `struct pollfd` entries (8 bytes each).
pub fn decode_pollfds(raw: &[u8]) -> Vec<PollFd> {
    raw.chunks_exact(8)
        .map(|c| PollFd {
            fd: i32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            events: u16::from_le_bytes([c[4], c[5]]),
            revents: 0,
        })
        .collect()
}

/// What `poll` reports for an entry whose file is ready for `ready`:
/// the asked events plus POLLERR and POLLHUP.
pub fn revents(events: u16, ready: u32) -> u16 {
    (ready & (u32::from(events) | POLLERR | POLLHUP)) as u16
}

/// The descriptor behind each entry: None for negative fds (skipped),
/// `Err` for closed ones (POLLNVAL).
type Targets = Vec<Option<Result<Arc<OpenFile>, ()>>>;

fn lookup(ctx: &dyn Ctx, fds: &[PollFd]) -> Targets {
    fds.iter()
        .map(|p| (p.fd >= 0).then(|| ctx.files().get(p.fd as usize).map_err(|_| ())))
        .collect()
}

/// Fills `revents`; returns how many are non-zero.
fn scan_poll(fds: &mut [PollFd], targets: &Targets) -> usize {
    let mut n = 0;
    for (p, t) in fds.iter_mut().zip(targets) {
        p.revents = match t {
            None => 0,
            Some(Err(())) => POLLNVAL as u16,
            Some(Ok(f)) => revents(p.events, f.inode().poll_ready()),
        };
        n += usize::from(p.revents != 0);
    }
    n
}

fn do_poll(ctx: &mut dyn Ctx, ufds: usize, nfds: usize, deadline: Option<u64>) -> KResult<usize> {
    // Linux takes `nfds` as an unsigned int.
    let nfds = nfds as u32 as usize;
    if nfds > ctx.files().limit() {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds * 8];
    if nfds > 0 {
        ctx.copy_in(ufds, &mut raw)?;
    }
    let mut fds = decode_pollfds(&raw);
    let targets = lookup(ctx, &fds);
    let result = loop {
        let n = scan_poll(&mut fds, &targets);
        if n > 0 || deadline.is_some_and(|d| monotonic_ns() >= d) {
            break Ok(n);
        }
        let inodes: Vec<&dyn Inode> = targets
            .iter()
            .filter_map(|t| match t {
                Some(Ok(f)) => Some(&**f.inode()),
                _ => None,
            })
            .collect();
        let events: Vec<u32> = fds
            .iter()
            .map(|p| u32::from(p.events) | POLLERR | POLLHUP)
            .collect();
        let ready = || {
            targets.iter().zip(&events).any(|(t, &ev)| match t {
                Some(Ok(f)) => f.inode().poll_ready() & ev != 0,
                _ => false,
            })
        };
        if wait_ready(&inodes, &[], deadline, ready) == Wake::Interrupted {
            break Err(Errno::ERESTARTNOHAND);
        }
    };
    drop(targets);
    super::epoll::reap();
    for (i, p) in fds.iter().enumerate() {
        ctx.copy_out(ufds + i * 8 + 6, &p.revents.to_le_bytes())?;
    }
    result
}

/// `poll(fds, nfds, timeout_ms)`.
pub fn sys_poll(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let deadline = deadline_after(ms_timeout(a[2]));
    do_poll(ctx, a[0], a[1], deadline)
}

/// `ppoll(fds, nfds, tsp, sigmask, sigsetsize)`.
pub fn sys_ppoll(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let timeout = match a[2] {
        0 => None,
        addr => Some(read_timespec(ctx, addr)?),
    };
    let deadline = deadline_after(timeout);
    let mask = read_sigmask(ctx, a[3], a[4])?;
    let ret = with_mask(ctx, mask, |ctx| do_poll(ctx, a[0], a[1], deadline));
    finish(ctx, a[2], timeout, deadline, false, ret)
}

// ---- select ----

/// Linux's `max_fds` for a table whose highest slot ever used is
/// `len - 1`: 64 entries, then 128 times a power of two.
pub fn select_max_fds(len: usize) -> usize {
    if len <= 64 {
        64
    } else {
        ((len - 1) / 128 + 1).next_power_of_two() * 128
    }
}

/// Bytes of an `fd_set` covering `n` descriptors (whole 64-bit words).
pub fn fdset_bytes(n: usize) -> usize {
    n.div_ceil(64) * 8
}

fn bit(set: &[u8], fd: usize) -> bool {
    set.get(fd / 8).is_some_and(|b| b & (1 << (fd % 8)) != 0)
}

fn set_bit(set: &mut [u8], fd: usize) {
    if let Some(b) = set.get_mut(fd / 8) {
        *b |= 1 << (fd % 8);
    }
}

const POLLIN_SET: u32 = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR;
const POLLOUT_SET: u32 = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR;
const POLLEX_SET: u32 = POLLPRI;

/// The three sets of `select`: in, out, except (empty if not passed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FdSets {
    pub sets: [Vec<u8>; 3],
}

impl FdSets {
    /// Descriptors below `n` with a bit in any set.
    pub fn wanted(&self, n: usize) -> Vec<usize> {
        (0..n)
            .filter(|&fd| self.sets.iter().any(|s| bit(s, fd)))
            .collect()
    }

    /// Whether readiness `r` of `fd` sets a bit in some result set.
    pub fn hits(&self, fd: usize, r: u32) -> bool {
        [POLLIN_SET, POLLOUT_SET, POLLEX_SET]
            .into_iter()
            .enumerate()
            .any(|(k, mask)| bit(&self.sets[k], fd) && r & mask != 0)
    }

    /// The result sets for descriptor readiness `ready(fd)`; returns them
    /// and the number of bits set.
    pub fn results(&self, fds: &[usize], mut ready: impl FnMut(usize) -> u32) -> (FdSets, usize) {
        let mut out = FdSets {
            sets: self.sets.clone().map(|s| vec![0u8; s.len()]),
        };
        let mut n = 0;
        for &fd in fds {
            let r = ready(fd);
            for (k, mask) in [POLLIN_SET, POLLOUT_SET, POLLEX_SET]
                .into_iter()
                .enumerate()
            {
                if bit(&self.sets[k], fd) && r & mask != 0 {
                    set_bit(&mut out.sets[k], fd);
                    n += 1;
                }
            }
        }
        (out, n)
    }
}

fn do_select(ctx: &mut dyn Ctx, a: &Args, deadline: Option<u64>) -> KResult<usize> {
    let n = a[0] as i32;
    if n < 0 {
        return Err(Errno::EINVAL);
    }
    let n = (n as usize).min(select_max_fds(ctx.files().slots_len()));
    let bytes = fdset_bytes(n);
    let mut sets = FdSets::default();
    for (k, &addr) in a[1..4].iter().enumerate() {
        if addr != 0 && bytes > 0 {
            let mut s = vec![0u8; bytes];
            ctx.copy_in(addr, &mut s)?;
            sets.sets[k] = s;
        }
    }
    let fds = sets.wanted(n);
    let files: Vec<Arc<OpenFile>> = fds
        .iter()
        .map(|&fd| ctx.files().get(fd))
        .collect::<KResult<_>>()?;
    let ready_of = |fd: usize| {
        fds.iter()
            .position(|&x| x == fd)
            .map_or(0, |i| files[i].inode().poll_ready())
    };
    let (out, count) = loop {
        let (out, count) = sets.results(&fds, ready_of);
        if count > 0 || deadline.is_some_and(|d| monotonic_ns() >= d) {
            break (out, count);
        }
        let inodes: Vec<&dyn Inode> = files.iter().map(|f| &**f.inode()).collect();
        // Runs with interrupts off: no allocation, just the checks.
        let ready = || {
            fds.iter()
                .zip(&files)
                .any(|(&fd, f)| sets.hits(fd, f.inode().poll_ready()))
        };
        if wait_ready(&inodes, &[], deadline, ready) == Wake::Interrupted {
            drop(files);
            super::epoll::reap();
            return Err(Errno::ERESTARTNOHAND);
        }
    };
    drop(files);
    super::epoll::reap();
    for (k, &addr) in a[1..4].iter().enumerate() {
        if addr != 0 && bytes > 0 {
            ctx.copy_out(addr, &out.sets[k])?;
        }
    }
    Ok(count)
}

/// `select(nfds, readfds, writefds, exceptfds, timeout)`.
pub fn sys_select(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let timeout = match a[4] {
        0 => None,
        addr => {
            let mut b = [0u8; 16];
            ctx.copy_in(addr, &mut b)?;
            Some(timeval_ns(&b)?)
        }
    };
    let deadline = deadline_after(timeout);
    let ret = do_select(ctx, a, deadline);
    finish(ctx, a[4], timeout, deadline, true, ret)
}

/// `pselect6(nfds, readfds, writefds, exceptfds, timeout, sigmask)`:
/// `sigmask` points to `{ const sigset_t *ss; size_t ss_len; }`.
pub fn sys_pselect6(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let timeout = match a[4] {
        0 => None,
        addr => Some(read_timespec(ctx, addr)?),
    };
    let deadline = deadline_after(timeout);
    let mask = match a[5] {
        0 => None,
        addr => {
            let mut b = [0u8; 16];
            ctx.copy_in(addr, &mut b)?;
            let ss = u64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as usize;
            let len = u64::from_le_bytes(b[8..].try_into().unwrap_or_default()) as usize;
            read_sigmask(ctx, ss, len)?
        }
    };
    let ret = with_mask(ctx, mask, |ctx| do_select(ctx, a, deadline));
    finish(ctx, a[4], timeout, deadline, false, ret)
}
