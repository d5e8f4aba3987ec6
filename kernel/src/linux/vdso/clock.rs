//! The clock page ("vvar"): what the kernel publishes so that the vDSO can
//! tell the time in user mode, and the one conversion from counter ticks to
//! nanoseconds that both the kernel (`time::now_ns`) and the vDSO use, so a
//! vDSO read and a syscall read are the same clock to the nanosecond.
//!
//! Layout (little-endian, byte offsets; the vDSO's assembler reads these
//! offsets, [`offset`]):
//!
//! | off | field | meaning |
//! |---|---|---|
//! | 0  | `seq`       | sequence count: odd while the kernel writes |
//! | 8  | `mode`      | [`MODE_SYSCALL`]: the vDSO makes the syscall; [`MODE_COUNTER`]: it reads the counter |
//! | 16 | `base`      | counter value at monotonic 0 (boot) |
//! | 24 | `mult`      | ns = ((counter - base) * mult) >> 32, a 128-bit product |
//! | 32 | `rt_offset` | CLOCK_REALTIME = CLOCK_MONOTONIC + rt_offset (mod 2^64) |
//!
//! The shift is fixed at 32 ([`SHIFT`]): the vDSO shifts by an immediate
//! (`shrd rax, rdx, 32`, `extr x, hi, lo, #32`), and the multiplier,
//! `1e9 · 2^32 / hz` rounded, is within 0.5 of exact: a rate error under
//! 0.12 ppb for counters up to 1 GHz and 0.5 ppb (40 µs a day) at 4 GHz,
//! far below a crystal's error; and the kernel uses the same formula, so
//! the two never disagree. [`ticks_for`] inverts it rounding up, so a deadline
//! converted to the counter is never seen early.
//!
//! Writers follow the seqcount protocol ([`ClockPage::publish`]); readers
//! take `seq` with acquire ordering, read the fields, and retry when `seq`
//! was odd or changed ([`ClockPage::read`], and the vDSO's read loop).
//! The coarse clocks are the fine clock (Skiff is tickless, so a
//! tick-updated coarse time would be stale by up to the idle period; the
//! syscall does the same), hence there is no separate coarse field.

use core::sync::atomic::{fence, AtomicU64, Ordering};

/// Byte offsets of the fields, shared with the vDSO's assembler.
pub mod offset {
    pub const SEQ: usize = 0;
    pub const MODE: usize = 8;
    pub const BASE: usize = 16;
    pub const MULT: usize = 24;
    pub const RT_OFFSET: usize = 32;
    /// Bytes of the page that hold fields.
    pub const END: usize = 40;
}

/// The vDSO falls back to the system call (no usable counter).
pub const MODE_SYSCALL: u64 = 0;
/// The vDSO reads the counter (`rdtsc` / `CNTVCT_EL0`) itself.
pub const MODE_COUNTER: u64 = 1;

/// The fixed right shift of the conversion.
pub const SHIFT: u32 = 32;

/// The clock parameters one consistent read yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params {
    pub mode: u64,
    pub base: u64,
    pub mult: u64,
    pub rt_offset: u64,
}

impl Params {
    /// Monotonic ns at counter value `counter` (0 before `base`).
    pub fn monotonic_ns(&self, counter: u64) -> u64 {
        scale(counter.saturating_sub(self.base), self.mult)
    }

    /// Realtime ns at counter value `counter`.
    pub fn realtime_ns(&self, counter: u64) -> u64 {
        self.monotonic_ns(counter).wrapping_add(self.rt_offset)
    }
}

/// `(ticks * mult) >> 32` with a 128-bit product, truncated to 64 bits
/// (as the vDSO's `mul`+`shrd` / `mul`+`umulh`+`extr` compute it).
pub fn scale(ticks: u64, mult: u64) -> u64 {
    ((u128::from(ticks) * u128::from(mult)) >> SHIFT) as u64
}

/// The fewest ticks whose [`scale`] is at least `ns` (u64::MAX if none).
pub fn ticks_for(ns: u64, mult: u64) -> u64 {
    if mult == 0 {
        return u64::MAX;
    }
    let t = (u128::from(ns) << SHIFT).div_ceil(u128::from(mult));
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// The multiplier converting ticks of a `hz` counter to ns:
/// `1e9 · 2^32 / hz`, rounded to nearest. None for `hz == 0` or a
/// multiplier that does not fit (hz under 1 Hz is not a counter).
pub fn mult_for(hz: u64) -> Option<u64> {
    if hz == 0 {
        return None;
    }
    let hz = u128::from(hz);
    let m = ((1_000_000_000u128 << SHIFT) + hz / 2) / hz;
    u64::try_from(m).ok().filter(|&m| m != 0)
}

/// The page itself: page-aligned so it can be mapped as it is.
#[repr(C, align(4096))]
pub struct ClockPage {
    seq: AtomicU64,
    mode: AtomicU64,
    base: AtomicU64,
    mult: AtomicU64,
    rt_offset: AtomicU64,
}

impl Default for ClockPage {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockPage {
    pub const fn new() -> Self {
        ClockPage {
            seq: AtomicU64::new(0),
            mode: AtomicU64::new(MODE_SYSCALL),
            base: AtomicU64::new(0),
            mult: AtomicU64::new(0),
            rt_offset: AtomicU64::new(0),
        }
    }

    /// Writes `p` with the seqcount protocol. Writers must be serialised
    /// by the caller (one lock around every `publish`).
    pub fn publish(&self, p: &Params) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // The odd count is visible before any field changes.
        fence(Ordering::Release);
        self.mode.store(p.mode, Ordering::Relaxed);
        self.base.store(p.base, Ordering::Relaxed);
        self.mult.store(p.mult, Ordering::Relaxed);
        self.rt_offset.store(p.rt_offset, Ordering::Relaxed);
        // Every field is visible before the even count.
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// One consistent read (retries while a write is in progress).
    pub fn read(&self) -> Params {
        loop {
            let s = self.seq.load(Ordering::Acquire);
            if s & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let p = Params {
                mode: self.mode.load(Ordering::Relaxed),
                base: self.base.load(Ordering::Relaxed),
                mult: self.mult.load(Ordering::Relaxed),
                rt_offset: self.rt_offset.load(Ordering::Relaxed),
            };
            // The field loads complete before `seq` is read again.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s {
                return p;
            }
        }
    }

    /// The page as the app sees it (a consistent snapshot, the sequence
    /// count even).
    pub fn to_bytes(&self) -> [u8; offset::END] {
        let p = self.read();
        let mut b = [0u8; offset::END];
        let mut put = |at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(offset::SEQ, 0);
        put(offset::MODE, p.mode);
        put(offset::BASE, p.base);
        put(offset::MULT, p.mult);
        put(offset::RT_OFFSET, p.rt_offset);
        b
    }
}

/// The realtime offset making CLOCK_REALTIME read `unix_ns` when the
/// counter read `counter` (which may lie before `p.base`).
pub fn rt_offset_for(p: &Params, unix_ns: u64, counter: u64) -> u64 {
    if counter >= p.base {
        unix_ns.wrapping_sub(scale(counter - p.base, p.mult))
    } else {
        unix_ns.wrapping_add(scale(p.base - counter, p.mult))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_ns(ticks: u64, hz: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
    }

    #[test]
    fn conversion_is_within_a_ppb_and_inverts() {
        // 1 GHz (TSC under icount), 62.5 MHz (QEMU's generic timer),
        // 24 MHz, 2.45 and 2.994 GHz TSCs, 4 GHz, 1 Hz.
        for hz in [
            1_000_000_000,
            62_500_000,
            24_000_000,
            2_453_451_924,
            2_994_373_000,
            4_000_000_000,
            1,
        ] {
            let m = mult_for(hz).unwrap();
            // Up to a year in.
            for secs in [0u64, 1, 3600, 86_400, 31_536_000] {
                let ticks = secs * hz + hz / 3;
                let want = exact_ns(ticks, hz);
                let got = scale(ticks, m);
                // 0.5 ppb, plus the floors.
                assert!(
                    want.abs_diff(got) <= 2 + want / 2_000_000_000,
                    "hz={hz} secs={secs} want={want} got={got}"
                );
                // Deadlines: the inverse is never early, and minimal.
                let t = ticks_for(want, m);
                assert!(scale(t, m) >= want);
                assert!(t == 0 || scale(t - 1, m) < want);
            }
        }
        assert_eq!(mult_for(0), None);
        assert_eq!(mult_for(1_000_000_000), Some(1 << 32));
        assert_eq!(mult_for(62_500_000), Some(16 << 32));
        assert_eq!(ticks_for(5, 0), u64::MAX);
    }

    #[test]
    fn conversion_is_monotonic() {
        let m = mult_for(2_994_373_000).unwrap();
        let mut last = 0;
        for t in (0..3_000_000u64).step_by(7) {
            let ns = scale(t, m);
            assert!(ns >= last);
            last = ns;
        }
    }

    #[test]
    fn realtime_offset_round_trips() {
        let mult = mult_for(62_500_000).unwrap();
        let p = Params {
            mode: MODE_COUNTER,
            base: 1_000_000,
            mult,
            rt_offset: 0,
        };
        let unix = 1_790_000_000_000_000_000;
        // Read after the base: exact there, and 625 ticks (16 ns each) later.
        let q = Params {
            rt_offset: rt_offset_for(&p, unix, 5_000_000),
            ..p
        };
        assert_eq!(q.realtime_ns(5_000_000), unix);
        assert_eq!(q.realtime_ns(5_000_625), unix + 10_000);
        // Read before the base (the platform reads the RTC before
        // `time::init`): at the base, 1000 ticks later.
        let q = Params {
            rt_offset: rt_offset_for(&p, unix, p.base - 1000),
            ..p
        };
        assert_eq!(q.realtime_ns(p.base), unix + 16_000);
    }

    #[test]
    fn publish_then_read_and_bytes() {
        let page = ClockPage::new();
        assert_eq!(page.read().mode, MODE_SYSCALL);
        let p = Params {
            mode: MODE_COUNTER,
            base: 7,
            mult: 1 << 32,
            rt_offset: 42,
        };
        page.publish(&p);
        assert_eq!(page.read(), p);
        let b = page.to_bytes();
        let at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(at(offset::SEQ) & 1, 0);
        assert_eq!(at(offset::MODE), MODE_COUNTER);
        assert_eq!(at(offset::BASE), 7);
        assert_eq!(at(offset::MULT), 1 << 32);
        assert_eq!(at(offset::RT_OFFSET), 42);
        assert_eq!(core::mem::size_of::<ClockPage>(), 4096);
    }

    #[test]
    fn readers_never_see_a_torn_write() {
        extern crate std;
        use std::sync::Arc;
        let page = Arc::new(ClockPage::new());
        let w = page.clone();
        let writer = std::thread::spawn(move || {
            for i in 1..20_000u64 {
                w.publish(&Params {
                    mode: MODE_COUNTER,
                    base: i,
                    mult: i,
                    rt_offset: i,
                });
            }
        });
        for _ in 0..20_000 {
            let p = page.read();
            assert!(p.base == p.mult && p.mult == p.rt_offset, "torn: {p:?}");
        }
        writer.join().unwrap();
    }
}
