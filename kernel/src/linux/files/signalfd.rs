//! `signalfd`/`signalfd4`: a descriptor that reads pending signals of a
//! set as 128-byte `signalfd_siginfo` records instead of running handlers
//! (the caller blocks them first). A read dequeues from the reading
//! thread's pending signals, then the process's, lowest number first
//! ([`signal::dequeue_from`]); POLLIN while one of the set is pending for
//! the polling thread. Readers and pollers wait on the signal code's
//! [`signal::QUEUED`] queue, woken whenever a signal becomes pending, and
//! every queued signal is a new edge for EPOLLET. Passing an existing
//! signalfd updates its set. SIGKILL and SIGSTOP are never in a set.

use super::{file, Cx};
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use crate::fs::{wait_any, Inode, Metadata, WaitQueue, Wake};
use crate::linux::fd::{oflag::*, OpenFile};
use crate::linux::signal::{self, Info, UNBLOCKABLE};
use crate::syscall::Args;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

pub const SFD_CLOEXEC: u32 = O_CLOEXEC;
pub const SFD_NONBLOCK: u32 = O_NONBLOCK;

/// Bytes of one `struct signalfd_siginfo`.
pub const SIGINFO_LEN: usize = 128;

/// The `signalfd_siginfo` record of `info`: signo, errno, code, pid, uid
/// at 0/4/8/12/16, the fault address at 72.
pub fn record(info: &Info) -> [u8; SIGINFO_LEN] {
    let mut b = [0u8; SIGINFO_LEN];
    b[0..4].copy_from_slice(&(info.signo as u32).to_le_bytes());
    b[8..12].copy_from_slice(&info.code.to_le_bytes());
    b[12..16].copy_from_slice(&info.pid.to_le_bytes());
    b[16..20].copy_from_slice(&info.uid.to_le_bytes());
    b[72..80].copy_from_slice(&info.addr.to_le_bytes());
    b
}

/// A signalfd object: the set it reads, and the thread that made it (the
/// reader when the caller's thread is unknown, as on the host).
pub struct SignalFd {
    ino: u64,
    mask: AtomicU64,
    owner: u32,
}

impl SignalFd {
    pub fn new(mask: u64, owner: u32) -> Arc<SignalFd> {
        Arc::new(SignalFd {
            ino: crate::fs::anon_ino(),
            mask: AtomicU64::new(mask & !UNBLOCKABLE),
            owner,
        })
    }

    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::Acquire)
    }

    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask & !UNBLOCKABLE, Ordering::Release);
        // Pollers re-check against the new set.
        signal::QUEUED.wake_all();
    }

    fn reader(&self) -> u32 {
        signal::current_tid().unwrap_or(self.owner)
    }

    fn ready_for(&self, tid: u32) -> bool {
        signal::pending(tid) & self.mask() != 0
    }
}

impl Inode for SignalFd {
    fn metadata(&self) -> Metadata {
        crate::fs::anon_metadata(self.ino)
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

    /// As many records as fit and are pending; waits for the first one
    /// unless `nonblock` (EAGAIN). Under 128 bytes is EINVAL.
    fn read_stream(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        if buf.len() < SIGINFO_LEN {
            return Err(Errno::EINVAL);
        }
        let tid = self.reader();
        loop {
            let mut n = 0;
            while n + SIGINFO_LEN <= buf.len() {
                let Some(info) = signal::dequeue_from(tid, self.mask()) else {
                    break;
                };
                buf[n..n + SIGINFO_LEN].copy_from_slice(&record(&info));
                n += SIGINFO_LEN;
            }
            if n > 0 {
                return Ok(n);
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            let queues = [&signal::QUEUED];
            if wait_any(&queues, None, true, || self.ready_for(tid)) == Wake::Interrupted {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    fn write_stream(&self, _: &[u8], _: bool) -> KResult<usize> {
        Err(Errno::EINVAL)
    }

    fn readable_bytes(&self) -> Option<usize> {
        None
    }

    fn poll_ready(&self) -> u32 {
        if self.ready_for(self.reader()) {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(&signal::QUEUED);
    }

    fn poll_events_seq(&self) -> u64 {
        signal::queued_seq()
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

fn signalfd(ctx: &mut Cx, fd: usize, mask_addr: usize, size: usize, flags: u32) -> KResult<usize> {
    if flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 || size != 8 {
        return Err(Errno::EINVAL);
    }
    let mut w = [0u8; 8];
    ctx.copy_in(mask_addr, &mut w)?;
    let mask = u64::from_le_bytes(w);
    if fd as i32 != -1 {
        let f = file(ctx, fd)?;
        let Some(sfd) = f.inode().as_any().downcast_ref::<SignalFd>() else {
            return Err(Errno::EINVAL);
        };
        sfd.set_mask(mask);
        return Ok(fd as i32 as usize);
    }
    let owner = ctx.thread().map_or(0, |t| t.tid());
    let inode = SignalFd::new(mask, owner);
    let file = OpenFile::new(
        inode,
        String::from("anon_inode:[signalfd]"),
        O_RDWR | (flags & O_NONBLOCK),
    );
    ctx.files().insert(file, flags & O_CLOEXEC != 0)
}

/// `signalfd(fd, mask, sizemask)`: `signalfd4` without flags.
pub fn sys_signalfd(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    signalfd(ctx, a[0], a[1], a[2], 0)
}

/// `signalfd4(fd, mask, sizemask, flags)`: fd -1 makes a new signalfd
/// (`SFD_NONBLOCK`, `SFD_CLOEXEC`), a signalfd's fd gets the new set (any
/// other descriptor is EINVAL); `sizemask` must be 8.
pub fn sys_signalfd4(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    signalfd(ctx, a[0], a[1], a[2], a[3] as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout() {
        let r = record(&Info {
            signo: 10,
            code: -6,
            pid: 7,
            uid: 0,
            addr: 0,
        });
        assert_eq!(&r[0..4], &10u32.to_le_bytes());
        assert_eq!(&r[8..12], &(-6i32).to_le_bytes());
        assert_eq!(&r[12..16], &7u32.to_le_bytes());
    }

    #[test]
    fn set_never_holds_kill_or_stop() {
        let s = SignalFd::new(u64::MAX, 1);
        assert_eq!(s.mask() & UNBLOCKABLE, 0);
        let mut b = [0u8; 64];
        assert_eq!(s.read_stream(&mut b, true), Err(Errno::EINVAL));
    }
}
