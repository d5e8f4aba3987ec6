//! Pipes: a 64 KiB ring buffer with a read end and a write end, each an
//! [`Inode`] of kind FIFO so descriptors hold them like any file.
//!
//! Semantics are Linux's: a read returns what is buffered (at most the
//! request), waits while the buffer is empty and a writer exists, and
//! returns 0 (end of file) once every write end is closed. A write waits
//! for room; writes of at most [`PIPE_BUF`] bytes are atomic (never
//! interleaved with other writers); with no read end left it fails with
//! EPIPE (SIGPIPE is the signal code's work). `nonblock` turns every wait
//! into EAGAIN (or a short count). A signal interrupts a wait: the call
//! returns ERESTARTSYS (restarted or EINTR at delivery), or the bytes a
//! write already moved.
//!
//! Readiness (`poll`, `select`, `epoll`) is Linux's `pipe_poll`: the read
//! end is POLLIN while data is buffered and POLLHUP once every writer is
//! gone; the write end is POLLOUT while there is room and POLLERR once
//! every reader is gone. Every write (and the last writer's close) is one
//! edge-triggered event for the read end; every read that frees room (and
//! the last reader's close) one for the write end — as Linux, which wakes
//! readers on every write since 5.14.
//!
//! Locking: the buffer's spin lock is held only to copy bytes in or out;
//! it is never held while waiting or waking. Readiness reads atomics only
//! (`len` mirrors the buffer's length), as it runs with interrupts off.

use super::pollbits::*;
use super::{magic, wait_any, FileType, Inode, Metadata, WaitQueue, Wake};
use crate::errno::{Errno, KResult};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

/// Buffer size (Linux's default pipe capacity).
pub const CAPACITY: usize = 65536;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;

const PIPEFS_DEV: u64 = 0x0c;
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

struct Pipe {
    ino: u64,
    buf: Mutex<VecDeque<u8>>,
    /// `buf.len()`, updated under the lock, read without it.
    len: AtomicUsize,
    readers: AtomicUsize,
    writers: AtomicUsize,
    /// Events for the read end (writes, last writer gone).
    rd_events: AtomicU64,
    /// Events for the write end (room freed, last reader gone).
    wr_events: AtomicU64,
    /// Readers (and pollers of the read end) wait here for data or the
    /// last writer's close.
    readable: WaitQueue,
    /// Writers (and pollers of the write end) wait here for room or the
    /// last reader's close.
    writable: WaitQueue,
}

impl Pipe {
    fn metadata(&self, perm: u32) -> Metadata {
        let size = self.len.load(Ordering::Acquire) as u64;
        Metadata::synthetic(PIPEFS_DEV, self.ino, FileType::Fifo, perm, size)
    }

    fn read(&self, out: &mut [u8], nonblock: bool) -> KResult<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut b = self.buf.lock();
                if !b.is_empty() {
                    let n = out.len().min(b.len());
                    for (dst, src) in out.iter_mut().zip(b.drain(..n)) {
                        *dst = src;
                    }
                    self.len.store(b.len(), Ordering::Release);
                    drop(b);
                    self.wr_events.fetch_add(1, Ordering::AcqRel);
                    self.writable.wake_all();
                    return Ok(n);
                }
            }
            if self.writers.load(Ordering::Acquire) == 0 {
                return Ok(0);
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            let woke = wait_any(&[&self.readable], None, true, || {
                self.writers.load(Ordering::Acquire) == 0 || self.len.load(Ordering::Acquire) > 0
            });
            if woke == Wake::Interrupted {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    fn write(&self, data: &[u8], nonblock: bool) -> KResult<usize> {
        let mut done = 0;
        loop {
            if self.readers.load(Ordering::Acquire) == 0 {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            let rest = &data[done..];
            {
                let mut b = self.buf.lock();
                let room = CAPACITY - b.len();
                // Small writes go in whole or not at all.
                let n = if rest.len() <= PIPE_BUF && done == 0 {
                    if room >= rest.len() {
                        rest.len()
                    } else {
                        0
                    }
                } else {
                    room.min(rest.len())
                };
                b.extend(&rest[..n]);
                self.len.store(b.len(), Ordering::Release);
                drop(b);
                if n > 0 {
                    done += n;
                    self.rd_events.fetch_add(1, Ordering::AcqRel);
                    self.readable.wake_all();
                }
            }
            if done == data.len() {
                return Ok(done);
            }
            if nonblock {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            let want = if data.len() <= PIPE_BUF {
                data.len()
            } else {
                1
            };
            let woke = wait_any(&[&self.writable], None, true, || {
                self.readers.load(Ordering::Acquire) == 0
                    || CAPACITY - self.len.load(Ordering::Acquire) >= want
            });
            if woke == Wake::Interrupted {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::ERESTARTSYS)
                };
            }
        }
    }

    /// `pipe_poll` for the read end.
    fn read_ready(&self) -> u32 {
        let mut m = 0;
        if self.len.load(Ordering::Acquire) > 0 {
            m |= POLLIN | POLLRDNORM;
        }
        if self.writers.load(Ordering::Acquire) == 0 {
            m |= POLLHUP;
        }
        m
    }

    /// `pipe_poll` for the write end.
    fn write_ready(&self) -> u32 {
        let mut m = 0;
        if self.len.load(Ordering::Acquire) < CAPACITY {
            m |= POLLOUT | POLLWRNORM;
        }
        if self.readers.load(Ordering::Acquire) == 0 {
            m |= POLLERR;
        }
        m
    }
}

/// The read end.
pub struct PipeReader(Arc<Pipe>);
/// The write end.
pub struct PipeWriter(Arc<Pipe>);

/// A new pipe: (read end, write end).
pub fn new_pipe() -> (Arc<dyn Inode>, Arc<dyn Inode>) {
    let p = Arc::new(Pipe {
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        buf: Mutex::new(VecDeque::new()),
        len: AtomicUsize::new(0),
        readers: AtomicUsize::new(1),
        writers: AtomicUsize::new(1),
        rd_events: AtomicU64::new(0),
        wr_events: AtomicU64::new(0),
        readable: WaitQueue::new(),
        writable: WaitQueue::new(),
    });
    (Arc::new(PipeReader(p.clone())), Arc::new(PipeWriter(p)))
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        if self.0.readers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.wr_events.fetch_add(1, Ordering::AcqRel);
        }
        self.0.writable.wake_all();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if self.0.writers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.rd_events.fetch_add(1, Ordering::AcqRel);
        }
        self.0.readable.wake_all();
    }
}

impl Inode for PipeReader {
    fn metadata(&self) -> Metadata {
        self.0.metadata(0o600)
    }
    fn read_at(&self, _: u64, _: &mut [u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }
    fn write_at(&self, _: u64, _: &[u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }
    fn read_stream(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        self.0.read(buf, nonblock)
    }
    fn write_stream(&self, _: &[u8], _: bool) -> KResult<usize> {
        Err(Errno::EBADF)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn readable_bytes(&self) -> Option<usize> {
        Some(self.0.len.load(Ordering::Acquire))
    }
    fn poll_ready(&self) -> u32 {
        self.0.read_ready()
    }
    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(&self.0.readable);
    }
    fn poll_events_seq(&self) -> u64 {
        self.0.rd_events.load(Ordering::Acquire)
    }
    fn fs_magic(&self) -> u64 {
        magic::PIPEFS
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

impl Inode for PipeWriter {
    fn metadata(&self) -> Metadata {
        self.0.metadata(0o600)
    }
    fn read_at(&self, _: u64, _: &mut [u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }
    fn write_at(&self, _: u64, _: &[u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }
    fn read_stream(&self, _: &mut [u8], _: bool) -> KResult<usize> {
        Err(Errno::EBADF)
    }
    fn write_stream(&self, buf: &[u8], nonblock: bool) -> KResult<usize> {
        self.0.write(buf, nonblock)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn readable_bytes(&self) -> Option<usize> {
        Some(self.0.len.load(Ordering::Acquire))
    }
    fn poll_ready(&self) -> u32 {
        self.0.write_ready()
    }
    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(&self.0.writable);
    }
    fn poll_events_seq(&self) -> u64 {
        self.0.wr_events.load(Ordering::Acquire)
    }
    fn fs_magic(&self) -> u64 {
        magic::PIPEFS
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_then_eof_after_last_writer() {
        let (r, w) = new_pipe();
        assert_eq!(w.write_stream(b"hello", true).unwrap(), 5);
        assert_eq!(r.readable_bytes(), Some(5));
        let mut buf = [0u8; 3];
        assert_eq!(r.read_stream(&mut buf, true).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(r.read_stream(&mut buf, true), Ok(2));
        assert_eq!(r.read_stream(&mut buf, true), Err(Errno::EAGAIN));
        drop(w);
        assert_eq!(r.read_stream(&mut buf, false), Ok(0));
    }

    #[test]
    fn epipe_without_readers_and_eagain_when_full() {
        let (r, w) = new_pipe();
        let big = alloc::vec![7u8; CAPACITY + 10];
        assert_eq!(w.write_stream(&big, true), Ok(CAPACITY));
        assert_eq!(w.write_stream(b"x", true), Err(Errno::EAGAIN));
        drop(r);
        assert_eq!(w.write_stream(b"x", false), Err(Errno::EPIPE));
        assert_eq!(w.metadata().kind, FileType::Fifo);
        assert!(!w.seekable());
    }

    #[test]
    fn blocking_reader_wakes_for_a_writer_thread() {
        let (r, w) = new_pipe();
        let t = std::thread::spawn(move || {
            let big = alloc::vec![1u8; CAPACITY * 2];
            // Blocks until the reader has drained the first 64 KiB.
            assert_eq!(w.write_stream(&big, false), Ok(CAPACITY * 2));
        });
        let mut total = 0;
        let mut buf = alloc::vec![0u8; 10_000];
        loop {
            let n = r.read_stream(&mut buf, false).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        t.join().unwrap();
        assert_eq!(total, CAPACITY * 2);
    }

    #[test]
    fn readiness_follows_linux_pipe_poll() {
        let (r, w) = new_pipe();
        assert_eq!(r.poll_ready(), 0);
        assert_eq!(w.poll_ready(), POLLOUT | POLLWRNORM);
        let (r0, w0) = (r.poll_events_seq(), w.poll_events_seq());
        w.write_stream(b"ab", true).unwrap();
        assert_eq!(r.poll_ready(), POLLIN | POLLRDNORM);
        assert_eq!(r.poll_events_seq(), r0 + 1);
        w.write_stream(b"c", true).unwrap();
        assert_eq!(r.poll_events_seq(), r0 + 2, "every write is an event");
        let mut b = [0u8; 8];
        r.read_stream(&mut b, true).unwrap();
        assert_eq!(w.poll_events_seq(), w0 + 1);
        let big = alloc::vec![0u8; CAPACITY];
        w.write_stream(&big, true).unwrap();
        assert_eq!(w.poll_ready(), 0, "full: not writable");
        drop(r);
        assert_eq!(w.poll_ready(), POLLERR);
        let (r, w) = new_pipe();
        w.write_stream(b"x", true).unwrap();
        drop(w);
        assert_eq!(r.poll_ready(), POLLIN | POLLRDNORM | POLLHUP);
        r.read_stream(&mut b, true).unwrap();
        assert_eq!(r.poll_ready(), POLLHUP);
        let mut n = 0;
        r.poll_queues(&mut |_| n += 1);
        assert_eq!(n, 1);
    }
}
