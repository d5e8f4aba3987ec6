//! Boot-phase timestamps: `boottime=1` prints how long each phase took,
//! measured on the CPU's free-running counter from the first instruction
//! the kernel controlled.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use spin::Mutex;

const MAX_PHASES: usize = 16;

static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static PHASES: Mutex<[(&str, u64); MAX_PHASES]> = Mutex::new([("", 0); MAX_PHASES]);

pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Records that phase `name` ended at counter value `at`.
pub fn mark(name: &'static str, at: u64) {
    let i = COUNT.fetch_add(1, Ordering::Relaxed);
    if i < MAX_PHASES {
        PHASES.lock()[i] = (name, at);
    }
}

/// `(phase, microseconds since the first mark)` for every recorded phase.
pub fn phases(counter_hz: u64) -> impl Iterator<Item = (&'static str, u64)> {
    let phases = *PHASES.lock();
    let n = COUNT.load(Ordering::Relaxed).min(MAX_PHASES);
    let first = phases[0].1;
    (0..n).map(move |i| {
        let (name, at) = phases[i];
        (name, ticks_to_us(at.saturating_sub(first), counter_hz))
    })
}

pub fn ticks_to_us(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000 / u128::from(hz)) as u64
}

/// Prints `boottime: entry=0us memory=..us platform=..us` when enabled.
#[cfg(target_os = "none")]
pub fn report(counter_hz: u64) {
    use alloc::string::String;
    use core::fmt::Write;
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let mut line = String::from("boottime:");
    for (name, us) in phases(counter_hz) {
        let _ = write!(line, " {name}={us}us");
    }
    crate::println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_ticks_without_overflow() {
        assert_eq!(ticks_to_us(1_000_000_000, 1_000_000_000), 1_000_000);
        assert_eq!(ticks_to_us(u64::MAX, 1_000_000_000), 18_446_744_073_709_551);
        assert_eq!(ticks_to_us(5, 0), 0);
    }
}
