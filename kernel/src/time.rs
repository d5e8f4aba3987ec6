//! Kernel time: the counter frequency the platform chose, monotonic
//! nanoseconds since boot, and the one-shot timer the arch provides. The
//! scheduler's tickless timer queue builds on this; for now it counts timer
//! interrupts and lets a waiter block until a deadline.

use crate::arch;
use core::sync::atomic::{AtomicU64, Ordering};

static COUNTER_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_COUNTER: AtomicU64 = AtomicU64::new(0);
static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
static LAST_FIRE_COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn init(counter_hz: u64) {
    COUNTER_HZ.store(counter_hz, Ordering::Relaxed);
    BOOT_COUNTER.store(arch::cpu::counter(), Ordering::Relaxed);
}

pub fn counter_hz() -> u64 {
    COUNTER_HZ.load(Ordering::Relaxed)
}

pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(counter_hz()) / 1_000_000_000) as u64
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    let hz = counter_hz();
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Nanoseconds since `init`.
pub fn now_ns() -> u64 {
    ticks_to_ns(arch::cpu::counter().wrapping_sub(BOOT_COUNTER.load(Ordering::Relaxed)))
}

/// Called by the trap handler when the one-shot timer fires.
pub(crate) fn on_timer_interrupt() {
    LAST_FIRE_COUNTER.store(arch::cpu::counter(), Ordering::Relaxed);
    TIMER_FIRED.fetch_add(1, Ordering::Release);
}

/// Number of timer interrupts taken since boot.
pub fn timer_interrupts() -> u64 {
    TIMER_FIRED.load(Ordering::Acquire)
}

/// Counter value when the timer last fired.
pub fn last_timer_counter() -> u64 {
    LAST_FIRE_COUNTER.load(Ordering::Relaxed)
}

/// Arms the one-shot timer `ns` from now and halts until it fires (or
/// `limit_ns` passes on the counter, as a guard against a lost interrupt).
/// Returns the counter value at the interrupt, or None on the guard.
/// Boot-CPU, pre-scheduler use only (ktests); threads will sleep instead.
pub fn wait_for_timer(ns: u64, limit_ns: u64) -> Option<u64> {
    let before = timer_interrupts();
    let start = arch::cpu::counter();
    arch::timer::set_oneshot(start + ns_to_ticks(ns));
    let limit = start + ns_to_ticks(limit_ns);
    while timer_interrupts() == before {
        if arch::cpu::counter() > limit {
            arch::timer::cancel();
            return None;
        }
        arch::cpu::wait_for_interrupt();
    }
    Some(last_timer_counter())
}
