//! `eventfd` objects: a 64-bit counter behind a descriptor, with Linux's
//! rules. A write of 8 bytes adds its value (u64::MAX is EINVAL) and waits
//! while the sum would exceed `u64::MAX - 1`; a read of 8 bytes (or more)
//! returns the counter and resets it to 0, or with `EFD_SEMAPHORE` returns 1
//! and decrements it, waiting while it is 0. Buffers under 8 bytes are
//! EINVAL. Readable (POLLIN) while the counter is above 0, writable
//! (POLLOUT) while one more could be added; every read and write is an
//! edge-triggered event, as Linux wakes the one queue on both.
//!
//! The counter is one atomic, so readiness checks are lock-free.

use super::pollbits::*;
use super::{wait_any, Inode, Metadata, WaitQueue, Wake};
use crate::errno::{Errno, KResult};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

/// The largest value the counter holds (Linux's `ULLONG_MAX - 1`).
pub const MAX: u64 = u64::MAX - 1;

/// What a read takes from counter `count`: `(returned, left)`, or None
/// while it is 0 (the read waits or is EAGAIN).
pub fn take(count: u64, semaphore: bool) -> Option<(u64, u64)> {
    match count {
        0 => None,
        c if semaphore => Some((1, c - 1)),
        c => Some((c, 0)),
    }
}

/// The counter after a write of `value`: EINVAL for `u64::MAX`,
/// `Ok(None)` while the sum would exceed [`MAX`] (the write waits).
pub fn add(count: u64, value: u64) -> KResult<Option<u64>> {
    if value == u64::MAX {
        return Err(Errno::EINVAL);
    }
    Ok(count.checked_add(value).filter(|&s| s <= MAX))
}

/// Readiness of counter `count`, as `eventfd_poll`.
pub fn ready(count: u64) -> u32 {
    let mut m = 0;
    if count > 0 {
        m |= POLLIN | POLLRDNORM;
    }
    if count == u64::MAX {
        m |= POLLERR;
    }
    if count < MAX {
        m |= POLLOUT | POLLWRNORM;
    }
    m
}

/// An eventfd object.
pub struct EventFd {
    ino: u64,
    count: AtomicU64,
    semaphore: bool,
    events: AtomicU64,
    queue: WaitQueue,
}

impl EventFd {
    pub fn new(initial: u32, semaphore: bool) -> Arc<EventFd> {
        Arc::new(EventFd {
            ino: super::anon_ino(),
            count: AtomicU64::new(u64::from(initial)),
            semaphore,
            events: AtomicU64::new(0),
            queue: WaitQueue::new(),
        })
    }

    /// The counter now.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.events.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
    }

    fn try_read(&self) -> Option<u64> {
        let mut out = 0;
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                take(c, self.semaphore).map(|(v, left)| {
                    out = v;
                    left
                })
            })
            .ok()
            .map(|_| out)
    }

    fn try_write(&self, value: u64) -> KResult<bool> {
        add(0, value)?;
        Ok(self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                add(c, value).ok().flatten()
            })
            .is_ok())
    }
}

impl Inode for EventFd {
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
            if let Some(v) = self.try_read() {
                buf[..8].copy_from_slice(&v.to_ne_bytes());
                self.changed();
                return Ok(8);
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            if wait_any(&[&self.queue], None, true, || self.count() > 0) == Wake::Interrupted {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    fn write_stream(&self, buf: &[u8], nonblock: bool) -> KResult<usize> {
        let Some(raw) = buf.get(..8) else {
            return Err(Errno::EINVAL);
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(raw);
        let value = u64::from_ne_bytes(b);
        loop {
            if self.try_write(value)? {
                self.changed();
                return Ok(8);
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            let room = || add(self.count(), value).is_ok_and(|s| s.is_some());
            if wait_any(&[&self.queue], None, true, room) == Wake::Interrupted {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    fn readable_bytes(&self) -> Option<usize> {
        None
    }

    fn poll_ready(&self) -> u32 {
        ready(self.count())
    }

    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(&self.queue);
    }

    fn poll_events_seq(&self) -> u64 {
        self.events.load(Ordering::Acquire)
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

    #[test]
    fn counter_rules() {
        assert_eq!(take(0, false), None);
        assert_eq!(take(5, false), Some((5, 0)));
        assert_eq!(take(5, true), Some((1, 4)));
        assert_eq!(add(0, u64::MAX), Err(Errno::EINVAL));
        assert_eq!(add(1, MAX - 1), Ok(Some(MAX)));
        assert_eq!(add(1, MAX), Ok(None), "over the max waits");
        assert_eq!(add(0, 0), Ok(Some(0)));
        assert_eq!(ready(0), POLLOUT | POLLWRNORM);
        assert_eq!(ready(3), POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
        assert_eq!(ready(MAX), POLLIN | POLLRDNORM);
    }

    #[test]
    fn reads_and_writes_through_the_inode() {
        let e = EventFd::new(2, true);
        let mut b = [0u8; 8];
        assert_eq!(e.read_stream(&mut b[..4], true), Err(Errno::EINVAL));
        assert_eq!(e.read_stream(&mut b, true), Ok(8));
        assert_eq!(u64::from_ne_bytes(b), 1);
        assert_eq!(e.read_stream(&mut b, true), Ok(8));
        assert_eq!(e.read_stream(&mut b, true), Err(Errno::EAGAIN));
        let seq = e.poll_events_seq();
        assert_eq!(e.write_stream(&7u64.to_ne_bytes(), true), Ok(8));
        assert_eq!(e.poll_events_seq(), seq + 1);
        assert_eq!(
            e.write_stream(&u64::MAX.to_ne_bytes(), true),
            Err(Errno::EINVAL)
        );
        assert_eq!(e.write_stream(&MAX.to_ne_bytes(), true), Err(Errno::EAGAIN));
        assert_eq!(e.count(), 7);
    }

    #[test]
    fn blocked_reader_wakes_for_a_writer_thread() {
        let e = EventFd::new(0, false);
        let w = e.clone();
        let t = std::thread::spawn(move || w.write_stream(&9u64.to_ne_bytes(), false));
        let mut b = [0u8; 8];
        assert_eq!(e.read_stream(&mut b, false), Ok(8));
        assert_eq!(u64::from_ne_bytes(b), 9);
        assert_eq!(t.join().unwrap(), Ok(8));
    }
}
