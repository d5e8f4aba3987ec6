//! Kernel time: the counter frequency the platform chose, monotonic
//! nanoseconds since boot, and the one-shot timer the arch provides. The
//! scheduler's tickless timer (sched::kthread) owns the hardware timer and
//! includes the one deadline requested here (`wait_for_timer`, the boot
//! CPU's pre-thread timer tests) when it programs it.

use crate::arch;
use core::sync::atomic::{AtomicU64, Ordering};

static COUNTER_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_COUNTER: AtomicU64 = AtomicU64::new(0);
static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
static LAST_FIRE_COUNTER: AtomicU64 = AtomicU64::new(0);
/// The counter deadline `wait_for_timer` waits for (0: none).
static REQUEST: AtomicU64 = AtomicU64::new(0);

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

/// The counter value at `ns` nanoseconds since `init`.
pub fn ns_to_counter(ns: u64) -> u64 {
    BOOT_COUNTER.load(Ordering::Relaxed) + ns_to_ticks(ns)
}

/// The pending `wait_for_timer` deadline, in ns since `init`.
pub fn requested_deadline_ns() -> Option<u64> {
    match REQUEST.load(Ordering::Acquire) {
        0 => None,
        c => Some(ticks_to_ns(
            c.saturating_sub(BOOT_COUNTER.load(Ordering::Relaxed)),
        )),
    }
}

/// Nanoseconds since `init`.
pub fn now_ns() -> u64 {
    ticks_to_ns(arch::cpu::counter().wrapping_sub(BOOT_COUNTER.load(Ordering::Relaxed)))
}

/// Called by the trap handler when the one-shot timer fires.
/// Counts it as "fired" only once the requested deadline has passed (the
/// scheduler also uses the timer, for its own deadlines).
pub(crate) fn on_timer_interrupt() {
    let now = arch::cpu::counter();
    let req = REQUEST.load(Ordering::Acquire);
    if req != 0 && now >= req {
        REQUEST.store(0, Ordering::Release);
        LAST_FIRE_COUNTER.store(now, Ordering::Relaxed);
        TIMER_FIRED.fetch_add(1, Ordering::Release);
    }
}

/// Number of requested timer deadlines that fired since boot.
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
    REQUEST.store((start + ns_to_ticks(ns)).max(1), Ordering::Release);
    program_request();
    let limit = start + ns_to_ticks(limit_ns);
    loop {
        // Check and halt with interrupts off: `wait_for_interrupt` enables
        // them atomically with the halt (`sti; hlt`, `wfi` with the
        // interrupt pending), so an interrupt arriving between the check
        // and the halt still ends the halt instead of being lost (under
        // icount a lost one hangs the guest: nothing else advances time).
        let fired = arch::cpu::without_interrupts(|| {
            if timer_interrupts() != before {
                return Some(true);
            }
            if arch::cpu::counter() > limit {
                return Some(false);
            }
            arch::cpu::wait_for_interrupt();
            None
        });
        match fired {
            Some(true) => return Some(last_timer_counter()),
            Some(false) => {
                REQUEST.store(0, Ordering::Release);
                program_request();
                return None;
            }
            None => {}
        }
    }
}

/// Hands the request to whoever owns the timer.
fn program_request() {
    if crate::sched::started() {
        crate::sched::rearm_timer();
        return;
    }
    match REQUEST.load(Ordering::Acquire) {
        0 => arch::timer::cancel(),
        c => arch::timer::set_oneshot(c),
    }
}

/// Unix time in ns when the counter read `WALL_COUNTER`; 0: no wall clock
/// (CLOCK_REALTIME then counts from the epoch at boot).
static WALL_NS: AtomicU64 = AtomicU64::new(0);
static WALL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Sets the wall clock: it read `unix_ns` when the counter read `counter`.
/// Called once at boot, before other CPUs start (a later clock_settime
/// would need a seqlock around the pair).
pub fn set_wall_clock(unix_ns: u64, counter: u64) {
    WALL_COUNTER.store(counter, Ordering::Relaxed);
    WALL_NS.store(unix_ns, Ordering::Release);
}

/// CLOCK_REALTIME in ns since the Unix epoch (UTC), from the platform's
/// boot-time wall clock (CMOS RTC, PL031) advanced by the counter.
pub fn realtime_ns() -> u64 {
    let base = WALL_NS.load(Ordering::Acquire);
    if base == 0 {
        return now_ns();
    }
    let since = arch::cpu::counter().wrapping_sub(WALL_COUNTER.load(Ordering::Relaxed));
    base.saturating_add(ticks_to_ns(since))
}
