//! The kernel's random numbers: a ChaCha20 generator (the `rand_chacha`
//! crate) with fast key erasure, seeded at boot from the best hardware
//! source present (RDRAND / RNDR, later virtio-rng) and reseedable as more
//! entropy arrives. It backs `getrandom`, `/dev/random`, `/dev/urandom`,
//! `AT_RANDOM` and ASLR.
//!
//! Fast key erasure: after every request the generator rekeys itself from
//! its own output, so a later compromise of its state reveals nothing about
//! bytes already handed out. Fresh entropy is mixed into that rekey.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use spin::Mutex;

pub struct Pool {
    rng: Mutex<Option<ChaCha20Rng>>,
}

/// Requests are served in chunks so the lock is held briefly.
const CHUNK: usize = 256;

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

impl Pool {
    pub const fn new() -> Self {
        Pool {
            rng: Mutex::new(None),
        }
    }

    /// Mixes `entropy` into the key (seeds the pool the first time).
    pub fn add_entropy(&self, entropy: &[u8; 32]) {
        let mut g = self.rng.lock();
        let mut key = [0u8; 32];
        if let Some(rng) = g.as_mut() {
            rng.fill_bytes(&mut key);
        }
        for (k, e) in key.iter_mut().zip(entropy) {
            *k ^= e;
        }
        *g = Some(ChaCha20Rng::from_seed(key));
    }

    pub fn is_seeded(&self) -> bool {
        self.rng.lock().is_some()
    }

    /// Fills `out`; false (and nothing written) if never seeded.
    pub fn fill(&self, out: &mut [u8]) -> bool {
        for chunk in out.chunks_mut(CHUNK) {
            let mut g = self.rng.lock();
            let Some(rng) = g.as_mut() else {
                return false;
            };
            rng.fill_bytes(chunk);
            // Fast key erasure: the next key comes from the stream.
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            *rng = ChaCha20Rng::from_seed(key);
        }
        true
    }

    pub fn next_u64(&self) -> Option<u64> {
        let mut b = [0u8; 8];
        self.fill(&mut b).then(|| u64::from_le_bytes(b))
    }
}

/// The kernel-wide pool.
pub static POOL: Pool = Pool::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseeded_pool_refuses() {
        let p = Pool::new();
        let mut b = [7u8; 4];
        assert!(!p.fill(&mut b));
        assert_eq!(b, [7; 4]);
    }

    #[test]
    fn output_depends_on_seed_and_never_repeats() {
        let (a, b) = (Pool::new(), Pool::new());
        a.add_entropy(&[1; 32]);
        b.add_entropy(&[2; 32]);
        let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_ne!(x, y);
        let mut x2 = [0u8; 64];
        a.fill(&mut x2);
        assert_ne!(x, x2, "stream moves on");
    }

    #[test]
    fn reseeding_changes_the_stream() {
        let (a, b) = (Pool::new(), Pool::new());
        a.add_entropy(&[9; 32]);
        b.add_entropy(&[9; 32]);
        b.add_entropy(&[1; 32]);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn bytes_look_uniform() {
        let p = Pool::new();
        p.add_entropy(&[42; 32]);
        let mut buf = vec![0u8; 1 << 16];
        assert!(p.fill(&mut buf));
        let mut counts = [0u32; 256];
        for b in &buf {
            counts[*b as usize] += 1;
        }
        // 256 expected per value; a chi-square-free sanity bound.
        assert!(
            counts.iter().all(|&c| (150..400).contains(&c)),
            "{counts:?}"
        );
    }
}
