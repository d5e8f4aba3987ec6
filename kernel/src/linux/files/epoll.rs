//! epoll: an interest list of (descriptor, open file) pairs behind a
//! descriptor of its own, with Linux's level- and edge-triggered rules.
//!
//! - `epoll_ctl`: ADD (EEXIST if present), MOD and DEL (ENOENT if not);
//!   EBADF for bad descriptors, EPERM for files that cannot be polled
//!   (regular files, directories, `/dev/null`), EINVAL for the epoll
//!   itself, a non-epoll `epfd`, a bad op or a misused `EPOLLEXCLUSIVE`
//!   (accepted on ADD, and then behaves like a plain entry: one process
//!   per VM, no thundering herd to avoid across processes), ELOOP for a
//!   nesting cycle or one too deep. EPOLLERR and EPOLLHUP are always
//!   watched. `data` comes back verbatim.
//! - Level-triggered entries are reported while ready. Edge-triggered
//!   ones (`EPOLLET`) once per event: each entry remembers the object's
//!   event count (`Inode::poll_events_seq`) it last reported, and ADD/MOD
//!   make one report due if ready, as Linux's insert does. `EPOLLONESHOT`
//!   disables an entry after one report until MOD.
//! - An entry goes away when its open file does (the last descriptor
//!   referring to it is closed), as Linux's; it holds only a weak
//!   reference. `epoll_wait` holds its members open while it sleeps and
//!   lets go whenever any descriptor is closed (see `fd::closed_seq`).
//! - An epoll descriptor is itself pollable (readable while some entry
//!   would be reported) and may be nested; a waiter that watches an epoll
//!   re-checks it every few ms, since an epoll cannot hand out its
//!   members' queues.
//! - A signal ends `epoll_wait` with EINTR (never restarted, as Linux).
//!
//! Order of reported events: by descriptor number (Linux reports in the
//! order events happened).
//!
//! Locking: the interest list is a spin lock taken with interrupts off
//! (readiness checks run with interrupts off). Open files whose last
//! reference such a check lets go of are dropped later, in thread context
//! ([`reap`]).

use super::poll::{deadline_after, ms_timeout, read_sigmask, read_timespec, wait_ready, with_mask};
use super::{fd_arg, Cx};
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use crate::fs::waitq::{monotonic_ns, without_interrupts};
use crate::fs::{Inode, Metadata, WaitQueue, Wake};
use crate::linux::fd::{self, oflag::*, OpenFile};
use crate::linux::Ctx;
use crate::syscall::Args;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// `epoll_event.events` flag bits beyond the poll bits.
pub mod flags {
    pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
    pub const EPOLLWAKEUP: u32 = 1 << 29;
    pub const EPOLLONESHOT: u32 = 1 << 30;
    pub const EPOLLET: u32 = 1 << 31;
}
use flags::*;

pub const EPOLL_CTL_ADD: usize = 1;
pub const EPOLL_CTL_DEL: usize = 2;
pub const EPOLL_CTL_MOD: usize = 3;
/// `EPOLL_CLOEXEC` is `O_CLOEXEC`.
pub const EPOLL_CLOEXEC: u32 = O_CLOEXEC;
/// Linux's `EP_MAX_NESTS`: epolls nested deeper than this are ELOOP.
pub const MAX_NESTS: usize = 4;

/// Bits `EPOLLEXCLUSIVE` may be combined with.
const EXCLUSIVE_OK: u32 =
    POLLIN | POLLOUT | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;

/// Size of `struct epoll_event`: packed (12 bytes) on x86_64, 16 on
/// aarch64.
pub const EVENT_SIZE: usize = if cfg!(target_arch = "aarch64") {
    16
} else {
    12
};

/// Decodes a `struct epoll_event` of `size` bytes: (events, data).
pub fn decode_event(raw: &[u8], size: usize) -> (u32, u64) {
    let ev = u32::from_le_bytes(raw[..4].try_into().unwrap_or_default());
    let at = size - 8;
    let data = u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
    (ev, data)
}

/// Encodes a `struct epoll_event` of `size` bytes.
pub fn encode_event(events: u32, data: u64, size: usize) -> Vec<u8> {
    let mut b = alloc::vec![0u8; size];
    b[..4].copy_from_slice(&events.to_le_bytes());
    b[size - 8..].copy_from_slice(&data.to_le_bytes());
    b
}

/// One entry's bookkeeping: what it watches and what it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Asked events and flags, EPOLLERR and EPOLLHUP added.
    pub events: u32,
    pub data: u64,
    /// Edge-triggered: the event count last reported or passed over.
    pub seen_seq: u64,
    /// A report is due if ready, whatever the event count (after ADD/MOD).
    pub fresh: bool,
    /// `EPOLLONESHOT` fired: silent until MOD.
    pub disabled: bool,
}

impl Interest {
    pub fn new(events: u32, data: u64, seq: u64) -> Interest {
        Interest {
            events: events | POLLERR | POLLHUP,
            data,
            seen_seq: seq,
            fresh: true,
            disabled: false,
        }
    }

    fn edge(&self) -> bool {
        self.events & EPOLLET != 0
    }

    /// What a report would say now, for readiness `ready` and event count
    /// `seq`, changing nothing (0: nothing to report).
    pub fn peek(&self, ready: u32, seq: u64) -> u32 {
        if self.disabled || (self.edge() && !self.fresh && seq == self.seen_seq) {
            return 0;
        }
        ready & self.events & !(EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE)
    }

    /// `epoll_wait`'s check: [`peek`](Self::peek), then an edge-triggered
    /// entry has used up its event (reported or not, as Linux drops a
    /// not-ready entry from its ready list) and a one-shot entry that
    /// reported is disabled.
    pub fn take(&mut self, ready: u32, seq: u64) -> u32 {
        let r = self.peek(ready, seq);
        if self.edge() {
            self.seen_seq = seq;
            self.fresh = false;
        }
        if r != 0 && self.events & EPOLLONESHOT != 0 {
            self.disabled = true;
        }
        r
    }
}

// ---- deferred drops ----

/// Open files whose last reference a readiness check (interrupts off)
/// let go of: dropped by [`reap`] in thread context, since closing a file
/// may block (sockets) or wake others.
static DEFERRED: spin::Mutex<Vec<OpenFile>> = spin::Mutex::new(Vec::new());

fn release(f: Arc<OpenFile>) {
    if let Some(last) = Arc::into_inner(f) {
        without_interrupts(|| DEFERRED.lock().push(last));
    }
}

/// Drops what readiness checks let go of. Thread context; every poll and
/// epoll call ends with it.
pub fn reap() {
    let dead = without_interrupts(|| core::mem::take(&mut *DEFERRED.lock()));
    drop(dead);
}

// ---- the epoll object ----

struct Entry {
    file: Weak<OpenFile>,
    interest: Interest,
}

/// Entries by (descriptor, open file address), as Linux keys them.
type Key = (i32, usize);

struct List {
    entries: BTreeMap<Key, Entry>,
    /// Where the next `epoll_wait` starts: after the last entry reported,
    /// so level-triggered entries take turns when `maxevents` is short
    /// (Linux moves a reported entry to the back of its ready list).
    next: Option<Key>,
}

/// An epoll instance.
pub struct Epoll {
    ino: u64,
    /// Spin lock, taken with interrupts off only.
    list: spin::Mutex<List>,
    /// Bumped by every `epoll_ctl`: waiters re-collect their members.
    changes: AtomicU64,
    /// Woken by `epoll_ctl` (an ADD or MOD may make something due).
    queue: WaitQueue,
}

fn key(fd: i32, f: &Arc<OpenFile>) -> Key {
    (fd, Arc::as_ptr(f) as usize)
}

impl Epoll {
    pub fn new() -> Arc<Epoll> {
        Arc::new(Epoll {
            ino: crate::fs::anon_ino(),
            list: spin::Mutex::new(List {
                entries: BTreeMap::new(),
                next: None,
            }),
            changes: AtomicU64::new(0),
            queue: WaitQueue::new(),
        })
    }

    fn locked<R>(&self, f: impl FnOnce(&mut BTreeMap<Key, Entry>) -> R) -> R {
        without_interrupts(|| f(&mut self.list.lock().entries))
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
    }

    /// `EPOLL_CTL_ADD`.
    pub fn add(&self, fd: i32, file: &Arc<OpenFile>, events: u32, data: u64) -> KResult<()> {
        let seq = file.inode().poll_events_seq();
        self.locked(|m| {
            let k = key(fd, file);
            if m.get(&k).is_some_and(|e| e.file.strong_count() > 0) {
                return Err(Errno::EEXIST);
            }
            let entry = Entry {
                file: Arc::downgrade(file),
                interest: Interest::new(events, data, seq),
            };
            m.insert(k, entry);
            Ok(())
        })?;
        self.changed();
        Ok(())
    }

    /// `EPOLL_CTL_MOD`: EINVAL for an `EPOLLEXCLUSIVE` entry.
    pub fn modify(&self, fd: i32, file: &Arc<OpenFile>, events: u32, data: u64) -> KResult<()> {
        let seq = file.inode().poll_events_seq();
        self.locked(|m| match m.get_mut(&key(fd, file)) {
            None => Err(Errno::ENOENT),
            Some(e) if e.interest.events & EPOLLEXCLUSIVE != 0 => Err(Errno::EINVAL),
            Some(e) => {
                e.interest = Interest::new(events, data, seq);
                Ok(())
            }
        })?;
        self.changed();
        Ok(())
    }

    /// `EPOLL_CTL_DEL`.
    pub fn remove(&self, fd: i32, file: &Arc<OpenFile>) -> KResult<()> {
        let gone = self.locked(|m| m.remove(&key(fd, file)));
        let Some(entry) = gone else {
            return Err(Errno::ENOENT);
        };
        drop(entry);
        self.changed();
        Ok(())
    }

    /// Entries whose open file is still there.
    pub fn len(&self) -> usize {
        self.locked(|m| m.values().filter(|e| e.file.strong_count() > 0).count())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open files of live entries.
    fn members(&self) -> Vec<Arc<OpenFile>> {
        let mut v = Vec::new();
        self.locked(|m| {
            v.reserve(m.len());
            v.extend(m.values().filter_map(|e| e.file.upgrade()));
        });
        v
    }

    /// Checks every live entry; calls `report(events, data)` for each due
    /// one, at most `max` of them. With `consume`, entries are updated as
    /// `epoll_wait` reports them and dead ones dropped. Interrupts-off
    /// safe (runs inside wait conditions).
    fn scan(&self, consume: bool, max: usize, report: &mut dyn FnMut(u32, u64)) -> usize {
        without_interrupts(|| {
            let mut list = self.list.lock();
            let List { entries, next } = &mut *list;
            if consume {
                entries.retain(|_, e| e.file.strong_count() > 0);
            }
            let start = next.unwrap_or((i32::MIN, 0));
            let (mut n, mut last) = (0usize, None);
            let mut visit = |k: &Key, e: &mut Entry| {
                if n >= max {
                    return;
                }
                let Some(f) = e.file.upgrade() else {
                    return;
                };
                let (ready, seq) = (f.inode().poll_ready(), f.inode().poll_events_seq());
                release(f);
                let r = if consume {
                    e.interest.take(ready, seq)
                } else {
                    e.interest.peek(ready, seq)
                };
                if r != 0 {
                    report(r, e.interest.data);
                    n += 1;
                    last = Some(*k);
                }
            };
            // From `start` to the end, then from the beginning.
            for (k, e) in entries.range_mut(start..) {
                visit(k, e);
            }
            for (k, e) in entries.range_mut(..start) {
                visit(k, e);
            }
            if consume {
                if let Some((fd, addr)) = last {
                    *next = Some((fd, addr.wrapping_add(1)));
                }
            }
            n
        })
    }

    fn any_due(&self) -> bool {
        self.scan(false, 1, &mut |_, _| {}) > 0
    }

    /// `epoll_wait`: up to `max` due events, waiting until `deadline`.
    /// EINTR when a signal ends the wait.
    pub fn wait(&self, max: usize, deadline: Option<u64>) -> KResult<Vec<(u32, u64)>> {
        loop {
            let mut out = Vec::with_capacity(max.min(self.len()));
            self.scan(true, max, &mut |e, d| out.push((e, d)));
            reap();
            if !out.is_empty() || deadline.is_some_and(|d| monotonic_ns() >= d) {
                return Ok(out);
            }
            let changes = self.changes.load(Ordering::Acquire);
            let closed = fd::closed_seq();
            let files = self.members();
            let inodes: Vec<&dyn Inode> = files.iter().map(|f| &**f.inode()).collect();
            let woke = wait_ready(
                &inodes,
                &[&self.queue, fd::closed_queue()],
                deadline,
                || {
                    self.changes.load(Ordering::Acquire) != changes
                        || fd::closed_seq() != closed
                        || self.any_due()
                },
            );
            drop(inodes);
            drop(files);
            reap();
            if woke == Wake::Interrupted {
                return Err(Errno::EINTR);
            }
        }
    }

    /// Whether `target` is this epoll or (transitively) inside it, or the
    /// nesting below this one is deeper than `depth` allows.
    fn reaches(&self, target: &Epoll, depth: usize) -> bool {
        if core::ptr::eq(self, target) || depth == 0 {
            return true;
        }
        self.members().iter().any(|f| {
            f.inode()
                .as_any()
                .downcast_ref::<Epoll>()
                .is_some_and(|inner| inner.reaches(target, depth - 1))
        })
    }
}

impl Inode for Epoll {
    fn metadata(&self) -> Metadata {
        crate::fs::anon_metadata(self.ino)
    }

    fn read_at(&self, _: u64, _: &mut [u8]) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn write_at(&self, _: u64, _: &[u8]) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn read_stream(&self, _: &mut [u8], _: bool) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn write_stream(&self, _: &[u8], _: bool) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn poll_ready(&self) -> u32 {
        if self.any_due() {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(&self.queue);
    }

    /// Any member's event (or an `epoll_ctl`) is an event of the epoll.
    fn poll_events_seq(&self) -> u64 {
        let members = self.locked(|m| {
            m.values().fold(0u64, |acc, e| match e.file.upgrade() {
                Some(f) => {
                    let s = f.inode().poll_events_seq();
                    release(f);
                    acc.wrapping_add(s)
                }
                None => acc,
            })
        });
        members.wrapping_add(self.changes.load(Ordering::Acquire))
    }

    fn supports_poll(&self) -> bool {
        true
    }

    fn fs_magic(&self) -> u64 {
        crate::fs::magic::ANON_INODE
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

// ---- system calls ----

fn create(ctx: &mut Cx, cloexec: bool) -> KResult<usize> {
    let file = OpenFile::new(
        Epoll::new(),
        alloc::string::String::from("anon_inode:[eventpoll]"),
        O_RDWR,
    );
    ctx.files().insert(file, cloexec)
}

/// `epoll_create(size)`: EINVAL unless `size > 0` (otherwise unused).
pub fn sys_epoll_create(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[0] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    create(ctx, false)
}

/// `epoll_create1(flags)`: only `EPOLL_CLOEXEC`.
pub fn sys_epoll_create1(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let flags = a[0] as u32;
    if flags & !EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    create(ctx, flags & EPOLL_CLOEXEC != 0)
}

/// The epoll behind descriptor `epfd`: EBADF, or EINVAL if not an epoll.
fn epoll_of(ctx: &dyn Ctx, epfd: usize) -> KResult<Arc<OpenFile>> {
    let f = ctx.files().get(fd_arg(epfd)?)?;
    if !f.inode().as_any().is::<Epoll>() {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

fn as_epoll(f: &OpenFile) -> Option<&Epoll> {
    f.inode().as_any().downcast_ref::<Epoll>()
}

/// `epoll_ctl(epfd, op, fd, event)`, with Linux's order of checks.
pub fn sys_epoll_ctl(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (epfd, op, fd) = (a[0], a[1], a[2]);
    let has_event = op != EPOLL_CTL_DEL;
    let (events, data) = if has_event {
        let mut raw = [0u8; 16];
        ctx.copy_in(a[3], &mut raw[..EVENT_SIZE])?;
        decode_event(&raw[..EVENT_SIZE], EVENT_SIZE)
    } else {
        (0, 0)
    };
    let ep_file = ctx.files().get(fd_arg(epfd)?)?;
    let target = ctx.files().get(fd_arg(fd)?)?;
    if !target.inode().supports_poll() {
        return Err(Errno::EPERM);
    }
    let Some(ep) = as_epoll(&ep_file) else {
        return Err(Errno::EINVAL);
    };
    if Arc::ptr_eq(&ep_file, &target) {
        return Err(Errno::EINVAL);
    }
    let inner = as_epoll(&target);
    if has_event && events & EPOLLEXCLUSIVE != 0 {
        if op == EPOLL_CTL_MOD {
            return Err(Errno::EINVAL);
        }
        if op == EPOLL_CTL_ADD && (inner.is_some() || events & !EXCLUSIVE_OK != 0) {
            return Err(Errno::EINVAL);
        }
    }
    if op == EPOLL_CTL_ADD {
        if let Some(inner) = inner {
            if inner.reaches(ep, MAX_NESTS) {
                return Err(Errno::ELOOP);
            }
        }
    }
    // EPOLLWAKEUP is kept (root has CAP_BLOCK_SUSPEND) and means
    // nothing here: there is no suspend.
    let fd = fd as i32;
    let r = match op {
        EPOLL_CTL_ADD => ep.add(fd, &target, events, data),
        EPOLL_CTL_MOD => ep.modify(fd, &target, events, data),
        EPOLL_CTL_DEL => ep.remove(fd, &target),
        _ => Err(Errno::EINVAL),
    };
    drop(target);
    reap();
    r.map(|()| 0)
}

/// Largest `maxevents` (Linux's `EP_MAX_EVENTS`).
pub const MAX_EVENTS: usize = i32::MAX as usize / EVENT_SIZE;

fn do_wait(
    ctx: &mut dyn Ctx,
    epfd: usize,
    events: usize,
    max: usize,
    deadline: Option<u64>,
) -> KResult<usize> {
    let max = max as i32;
    if max <= 0 || max as usize > MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let f = epoll_of(ctx, epfd)?;
    let Some(ep) = as_epoll(&f) else {
        return Err(Errno::EINVAL);
    };
    let got = ep.wait(max as usize, deadline)?;
    drop(f);
    let mut out = Vec::with_capacity(got.len() * EVENT_SIZE);
    for (ev, data) in &got {
        out.extend_from_slice(&encode_event(*ev, *data, EVENT_SIZE));
    }
    if !out.is_empty() {
        ctx.copy_out(events, &out)?;
    }
    Ok(got.len())
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)`.
pub fn sys_epoll_wait(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let deadline = deadline_after(ms_timeout(a[3]));
    do_wait(ctx, a[0], a[1], a[2], deadline)
}

/// `epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask, sigsetsize)`.
pub fn sys_epoll_pwait(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let deadline = deadline_after(ms_timeout(a[3]));
    let mask = read_sigmask(ctx, a[4], a[5])?;
    with_mask(ctx, mask, |ctx| do_wait(ctx, a[0], a[1], a[2], deadline))
}

/// `epoll_pwait2(epfd, events, maxevents, timeout_ts, sigmask,
/// sigsetsize)`: the timeout is a `timespec` (null: none).
pub fn sys_epoll_pwait2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let timeout = match a[3] {
        0 => None,
        addr => Some(read_timespec(ctx, addr)?),
    };
    let deadline = deadline_after(timeout);
    let mask = read_sigmask(ctx, a[4], a[5])?;
    with_mask(ctx, mask, |ctx| do_wait(ctx, a[0], a[1], a[2], deadline))
}
