//! Reusable kernel bounce buffers for copies between user memory and
//! files or sockets.
//!
//! A fresh buffer is zeroed at the size the app asks for (often 16–64 KiB)
//! on every `read`/`recv`, in proportion to that size rather than to what
//! arrived: the profile of `tcp_rr` showed that `memset` as its largest
//! single cost. A [`Pool`] keeps a few buffers of one size for reuse.
//! Callers copy out only the bytes a read wrote, so a reused buffer's old
//! contents never reach the app. Depends on nothing but `alloc` and `spin`.

use crate::fs::waitq::without_interrupts;
use alloc::vec;
use alloc::vec::Vec;

/// Buffers at most this small are not pooled (zeroing them is cheap).
const SMALL: usize = 4096;

/// A few buffers of `size` bytes kept for reuse.
pub struct Pool {
    size: usize,
    keep: usize,
    free: spin::Mutex<Vec<Vec<u8>>>,
}

impl Pool {
    pub const fn new(size: usize, keep: usize) -> Pool {
        Pool {
            size,
            keep,
            free: spin::Mutex::new(Vec::new()),
        }
    }

    /// A buffer of `len` bytes: a pooled one when `len` is above a page and
    /// at most the pool's size, else a fresh zeroed one.
    pub fn take(&'static self, len: usize) -> Bounce {
        let buf = if len > SMALL && len <= self.size {
            // Interrupts off: nothing can preempt the holder of this lock.
            without_interrupts(|| self.free.lock().pop()).unwrap_or_else(|| vec![0u8; self.size])
        } else {
            vec![0u8; len]
        };
        Bounce {
            buf,
            len,
            pool: self,
        }
    }
}

/// A buffer from a [`Pool`] (or a fresh one); a pooled one goes back on
/// drop.
pub struct Bounce {
    buf: Vec<u8>,
    len: usize,
    pool: &'static Pool,
}

impl core::ops::Deref for Bounce {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::ops::DerefMut for Bounce {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        if self.buf.len() == self.pool.size && self.len > SMALL {
            let buf = core::mem::take(&mut self.buf);
            without_interrupts(|| {
                let mut free = self.pool.free.lock();
                if free.len() < self.pool.keep {
                    free.push(buf);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static POOL: Pool = Pool::new(64 * 1024, 2);

    #[test]
    fn large_buffers_are_reused_small_ones_are_not() {
        let mut a = POOL.take(10_000);
        assert_eq!(a.len(), 10_000);
        a[0] = 7;
        let p = a.as_ptr();
        drop(a);
        // The same allocation comes back (contents not cleared: callers
        // copy out only what a read wrote).
        let b = POOL.take(20_000);
        assert_eq!((b.as_ptr(), b.len(), b[0]), (p, 20_000, 7));
        let small = POOL.take(100);
        assert_eq!(small.len(), 100);
        assert!(small.iter().all(|&x| x == 0));
        // Beyond the pool's size: fresh, zeroed, exact.
        let big = POOL.take(100_000);
        assert_eq!(big.len(), 100_000);
        drop((b, small, big));
        // At most `keep` are kept.
        let held: Vec<Bounce> = (0..4).map(|_| POOL.take(8192)).collect();
        drop(held);
        assert!(POOL.free.lock().len() <= 2);
    }
}
