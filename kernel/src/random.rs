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

/// Where the boot seed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rdrand,
    Rndr,
    TimerJitter,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Rdrand => "rdrand",
            Source::Rndr => "rndr",
            Source::TimerJitter => "timer-jitter",
        }
    }
}

/// 32 bytes of seed from timing jitter: the low bits of counter deltas
/// around memory work, folded together. Weak (under TCG especially) but
/// never the same twice; used only when the CPU has no RNG instruction.
pub fn jitter_seed(mut counter: impl FnMut() -> u64) -> [u8; 32] {
    let mut seed = [0u64; 4];
    let mut scratch = [0u64; 64];
    let mut prev = counter();
    for i in 0..1024usize {
        let slot = (prev as usize ^ i.wrapping_mul(0x9e37)) % scratch.len();
        scratch[slot] = scratch[slot].rotate_left(7) ^ prev;
        let now = counter();
        let delta = now.wrapping_sub(prev);
        prev = now;
        let w = &mut seed[i % 4];
        *w = (w.rotate_left(13) ^ delta).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let mut out = [0u8; 32];
    for (i, w) in seed.iter().enumerate() {
        let mixed = w ^ scratch[i * 16];
        out[i * 8..i * 8 + 8].copy_from_slice(&mixed.to_le_bytes());
    }
    out
}

/// Seeds [`POOL`] at boot from the CPU's RNG instruction when it has one
/// (RDRAND on x86_64, RNDR on aarch64), else from timer jitter, and logs
/// `random: seeded source=...`. Timer jitter is always mixed in as well.
#[cfg(target_os = "none")]
pub fn seed_at_boot() -> Source {
    let mut source = Source::TimerJitter;
    let mut hw = [0u8; 32];
    let mut ok = true;
    for chunk in hw.chunks_mut(8) {
        match hwrng::next() {
            Some(v) => chunk.copy_from_slice(&v.to_le_bytes()),
            None => ok = false,
        }
    }
    if ok {
        POOL.add_entropy(&hw);
        source = hwrng::SOURCE;
    }
    POOL.add_entropy(&jitter_seed(crate::arch::cpu::counter));
    log::info!("random: seeded source={}", source.name());
    source
}

/// The CPU's random-number instruction. TODO(arch): this belongs in
/// `arch::cpu` (the kernel should not carry instructions); it lives here
/// until the arch crates export one.
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[allow(unsafe_code)]
mod hwrng {
    pub const SOURCE: super::Source = super::Source::Rdrand;

    fn has_rdrand() -> bool {
        // CPUID.1:ECX bit 30.
        let r = crate::arch::cpuid(1, 0);
        r.ecx & (1 << 30) != 0
    }

    pub fn next() -> Option<u64> {
        if !has_rdrand() {
            return None;
        }
        // Intel recommends up to 10 retries on a transient failure.
        for _ in 0..10 {
            let v: u64;
            let ok: u8;
            // SAFETY: RDRAND only writes the named registers and flags;
            // CPUID said the CPU has it.
            unsafe {
                core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok,
                    options(nomem, nostack));
            }
            if ok == 1 {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[allow(unsafe_code)]
mod hwrng {
    pub const SOURCE: super::Source = super::Source::Rndr;

    fn has_rndr() -> bool {
        let isar0: u64;
        // SAFETY: reading an ID register at EL1 has no side effects.
        unsafe {
            core::arch::asm!("mrs {r}, ID_AA64ISAR0_EL1", r = out(reg) isar0,
                options(nomem, nostack, preserves_flags));
        }
        (isar0 >> 60) & 0xf >= 1
    }

    pub fn next() -> Option<u64> {
        if !has_rndr() {
            return None;
        }
        for _ in 0..10 {
            let v: u64;
            let ok: u64;
            // SAFETY: RNDR (S3_3_C2_C4_0) writes the register and NZCV only;
            // ID_AA64ISAR0_EL1.RNDR said it exists. Z clear means success.
            unsafe {
                core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) v,
                    ok = out(reg) ok, options(nomem, nostack));
            }
            if ok == 1 {
                return Some(v);
            }
        }
        None
    }
}

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
    fn jitter_seed_depends_on_the_timings() {
        let mut t = 0u64;
        let a = jitter_seed(|| {
            t += 3;
            t
        });
        let mut t = 0u64;
        let b = jitter_seed(|| {
            t += 3 + (t % 7);
            t
        });
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
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
