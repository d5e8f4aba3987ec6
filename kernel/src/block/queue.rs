//! The request queue: callers queue requests, which are served strictly in
//! the order queued, one at a time.
//!
//! There is no service thread: the caller that gets the device lock (a
//! sleeping mutex in the kernel, behind [`Exclusive`]) serves every queued
//! request in order — its own and any others queued meanwhile — and hands
//! each its result; a caller whose request was served by another finds the
//! result when it gets the lock (or before). Since a request is queued
//! before its caller takes the lock, one pass of the lock always serves it.
//! Requests are checked before they are queued: bad ones never reach the
//! device.

use super::{check_range, BlockDevice, BlockError, Geometry, MAX_IO_SECTORS};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Exclusive access to the device: the kernel's sleeping `sync::Mutex`
/// (or `std::sync::Mutex` in host tests).
pub trait Exclusive<T>: Send + Sync {
    fn with_device<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

#[cfg(target_os = "none")]
impl<T: Send> Exclusive<T> for crate::sync::Mutex<T> {
    fn with_device<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }
}

#[cfg(test)]
impl<T: Send> Exclusive<T> for std::sync::Mutex<T> {
    fn with_device<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().unwrap())
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `count` sectors from `sector`.
    Read {
        sector: u64,
        count: u64,
    },
    Write {
        sector: u64,
        data: Vec<u8>,
    },
    Flush,
}

type Outcome = Result<Vec<u8>, BlockError>;

struct Request {
    op: Op,
    done: spin::Mutex<Option<Outcome>>,
}

/// Counters, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Requests served by the device.
    pub served: u64,
    /// ... of which by a caller other than the one that queued them.
    pub served_for_others: u64,
    /// Requests refused before reaching the device.
    pub refused: u64,
    /// Device I/Os issued (long requests are split).
    pub ios: u64,
}

pub struct RequestQueue<D: BlockDevice, L: Exclusive<D>> {
    geometry: Geometry,
    pending: spin::Mutex<VecDeque<Arc<Request>>>,
    dev: L,
    served: AtomicU64,
    for_others: AtomicU64,
    refused: AtomicU64,
    ios: AtomicU64,
    _dev: core::marker::PhantomData<fn(D)>,
}

impl<D: BlockDevice, L: Exclusive<D>> RequestQueue<D, L> {
    /// A queue in front of `dev`, whose geometry is `geometry` (read once:
    /// devices do not change size).
    pub fn new(geometry: Geometry, dev: L) -> Self {
        RequestQueue {
            geometry,
            pending: spin::Mutex::new(VecDeque::new()),
            dev,
            served: AtomicU64::new(0),
            for_others: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            ios: AtomicU64::new(0),
            _dev: core::marker::PhantomData,
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn stats(&self) -> Stats {
        Stats {
            served: self.served.load(Ordering::Relaxed),
            served_for_others: self.for_others.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            ios: self.ios.load(Ordering::Relaxed),
        }
    }

    /// Reads `buf.len()` bytes (whole sectors) from `sector`.
    pub fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let count = self.check(sector, buf.len())?;
        let data = self.submit(Op::Read { sector, count })?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    /// Writes `buf` (whole sectors) at `sector`.
    pub fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.check(sector, buf.len())?;
        if self.geometry.read_only {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BlockError::ReadOnly);
        }
        self.submit(Op::Write {
            sector,
            data: buf.to_vec(),
        })
        .map(|_| ())
    }

    pub fn flush(&self) -> Result<(), BlockError> {
        self.submit(Op::Flush).map(|_| ())
    }

    fn check(&self, sector: u64, len: usize) -> Result<u64, BlockError> {
        check_range(&self.geometry, sector, len).inspect_err(|_| {
            self.refused.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Queues a (checked) request and returns once it has been served.
    pub fn submit(&self, op: Op) -> Outcome {
        let req = Arc::new(Request {
            op,
            done: spin::Mutex::new(None),
        });
        self.pending.lock().push_back(req.clone());
        loop {
            if let Some(out) = req.done.lock().take() {
                return out;
            }
            self.dev.with_device(|d| {
                while let Some(next) = self.pending.lock().pop_front() {
                    let out = self.serve(d, &next.op);
                    if !Arc::ptr_eq(&next, &req) {
                        self.for_others.fetch_add(1, Ordering::Relaxed);
                    }
                    self.served.fetch_add(1, Ordering::Relaxed);
                    *next.done.lock() = Some(out);
                }
            });
        }
    }

    fn serve(&self, d: &mut D, op: &Op) -> Outcome {
        let ss = self.geometry.sector_size;
        match op {
            Op::Read { sector, count } => {
                let mut out = vec![0u8; *count as usize * ss];
                for (i, chunk) in out.chunks_mut(MAX_IO_SECTORS as usize * ss).enumerate() {
                    self.ios.fetch_add(1, Ordering::Relaxed);
                    d.read(sector + i as u64 * MAX_IO_SECTORS, chunk)?;
                }
                Ok(out)
            }
            Op::Write { sector, data } => {
                for (i, chunk) in data.chunks(MAX_IO_SECTORS as usize * ss).enumerate() {
                    self.ios.fetch_add(1, Ordering::Relaxed);
                    d.write(sector + i as u64 * MAX_IO_SECTORS, chunk)?;
                }
                Ok(Vec::new())
            }
            Op::Flush => {
                self.ios.fetch_add(1, Ordering::Relaxed);
                d.flush().map(|_| Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mem::MemDisk;
    use super::super::SECTOR;
    use super::*;
    use std::sync::Mutex;

    fn queue(sectors: usize, ro: bool) -> Arc<RequestQueue<MemDisk, Mutex<MemDisk>>> {
        let data: Vec<u8> = (0..sectors * SECTOR).map(|i| (i / SECTOR) as u8).collect();
        let mut d = MemDisk::new(data);
        d.read_only = ro;
        Arc::new(RequestQueue::new(d.geometry(), Mutex::new(d)))
    }

    fn log(q: &RequestQueue<MemDisk, Mutex<MemDisk>>) -> Vec<(bool, u64, u64)> {
        q.dev.with_device(|d| d.log.clone())
    }

    #[test]
    fn reads_and_writes_whole_sectors_and_splits_long_reads() {
        let q = queue(400, false);
        let mut buf = vec![0u8; 300 * SECTOR];
        q.read(50, &mut buf).unwrap();
        assert!(buf
            .chunks(SECTOR)
            .enumerate()
            .all(|(i, s)| s.iter().all(|&b| b == (50 + i) as u8)));
        // 300 sectors: 128 + 128 + 44, in order.
        assert_eq!(
            log(&q),
            [(false, 50, 128), (false, 178, 128), (false, 306, 44)]
        );
        q.write(399, &[0xab; SECTOR]).unwrap();
        let mut one = [0u8; SECTOR];
        q.read(399, &mut one).unwrap();
        assert_eq!(one, [0xab; SECTOR]);
        q.flush().unwrap();
        assert_eq!(q.stats().served, 4);
        assert_eq!(q.stats().ios, 6);
    }

    #[test]
    fn bad_requests_fail_before_the_device() {
        let q = queue(16, false);
        let mut one = [0u8; SECTOR];
        assert_eq!(
            q.read(16, &mut one),
            Err(BlockError::OutOfRange {
                sector: 16,
                count: 1,
                capacity: 16
            })
        );
        let mut two = [0u8; 2 * SECTOR];
        assert!(matches!(
            q.read(15, &mut two),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            q.read(u64::MAX, &mut one),
            Err(BlockError::OutOfRange { .. })
        ));
        assert_eq!(
            q.read(0, &mut one[..100]),
            Err(BlockError::Unaligned { len: 100 })
        );
        assert_eq!(q.write(0, &[]), Err(BlockError::Unaligned { len: 0 }));
        assert_eq!(
            q.read(16, &mut one).unwrap_err().errno(),
            crate::errno::Errno::EIO
        );
        assert!(log(&q).is_empty(), "nothing reached the device");
        assert_eq!(q.stats().refused, 6);
        let ro = queue(16, true);
        assert_eq!(ro.write(0, &one), Err(BlockError::ReadOnly));
        assert!(log(&ro).is_empty());
        ro.read(0, &mut one).unwrap();
    }

    #[test]
    fn concurrent_callers_all_get_their_own_data() {
        let q = queue(64, false);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for round in 0..200u64 {
                        let sector = u64::from(t) * 8 + round % 8;
                        let v = t.wrapping_mul(31).wrapping_add(round as u8);
                        q.write(sector, &[v; SECTOR]).unwrap();
                        let mut back = [0u8; SECTOR];
                        q.read(sector, &mut back).unwrap();
                        assert_eq!(back, [v; SECTOR], "thread {t} round {round}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = q.stats();
        assert_eq!(s.served, 8 * 200 * 2);
        assert_eq!(s.ios, s.served);
        assert!(q.pending.lock().is_empty());
    }
}
