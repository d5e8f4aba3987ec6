//! Kernel time: the counter frequency the platform chose, monotonic
//! nanoseconds since boot, the wall clock, and the one-shot timer the arch
//! provides. Monotonic and realtime ns come from the clock page
//! ([`clock_page`], `linux::vdso::clock`): the same counter base,
//! multiplier, shift and realtime offset the vDSO reads in user mode, so
//! the syscall and the vDSO are one clock to the nanosecond. The
//! scheduler's tickless timer (sched::kthread) owns the hardware timer and
//! includes the one deadline requested here (`wait_for_timer`, the boot
//! CPU's pre-thread timer tests) when it programs it.

use crate::arch;
use crate::linux::vdso::clock::{self, ClockPage, Params};
use core::sync::atomic::{AtomicU64, Ordering};

static COUNTER_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_COUNTER: AtomicU64 = AtomicU64::new(0);
static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
static LAST_FIRE_COUNTER: AtomicU64 = AtomicU64::new(0);
/// The counter deadline `wait_for_timer` waits for (0: none).
static REQUEST: AtomicU64 = AtomicU64::new(0);

/// What the kernel and the vDSO read the time from. Written only under
/// `CLOCK_WRITER`, with the seqcount protocol.
static CLOCK: ClockPage = ClockPage::new();
static CLOCK_WRITER: spin::Mutex<()> = spin::Mutex::new(());
/// The monotonic conversion's multiplier (constant after `init`; the base
/// is `BOOT_COUNTER`), for the kernel's own reads without the seqcount.
static MONO_MULT: AtomicU64 = AtomicU64::new(0);
/// CLOCK_REALTIME - CLOCK_MONOTONIC in ns (mod 2^64); 0 without a wall
/// clock (CLOCK_REALTIME then counts from the epoch at boot).
static RT_OFFSET: AtomicU64 = AtomicU64::new(0);

pub fn init(counter_hz: u64) {
    COUNTER_HZ.store(counter_hz, Ordering::Relaxed);
    let base = arch::cpu::counter();
    BOOT_COUNTER.store(base, Ordering::Relaxed);
    let mult = clock::mult_for(counter_hz).unwrap_or(0);
    MONO_MULT.store(mult, Ordering::Relaxed);
    // The vDSO reads the counter itself when there is a frequency: the
    // counter is the kernel's one clock (the TSC, or CNTVCT_EL0 with EL0
    // access enabled on every CPU by `arch::cpu`), so the vDSO's reading is
    // the syscall's whatever the hardware (invariant or not).
    let mode = if mult != 0 {
        clock::MODE_COUNTER
    } else {
        clock::MODE_SYSCALL
    };
    let _w = CLOCK_WRITER.lock();
    CLOCK.publish(&Params {
        mode,
        base,
        mult,
        rt_offset: RT_OFFSET.load(Ordering::Relaxed),
    });
    log::info!("time: counter_hz={counter_hz} mult={mult} vdso_mode={mode}");
}

/// The clock page the vDSO maps (`[vvar]`).
pub fn clock_page() -> &'static ClockPage {
    &CLOCK
}

fn mono_params() -> Params {
    Params {
        mode: clock::MODE_COUNTER,
        base: BOOT_COUNTER.load(Ordering::Relaxed),
        mult: MONO_MULT.load(Ordering::Relaxed),
        rt_offset: RT_OFFSET.load(Ordering::Acquire),
    }
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

/// The first counter value at which `now_ns()` reads at least `ns` (the
/// inverse of the clock page's conversion, rounded up, so a deadline is
/// never seen early).
pub fn ns_to_counter(ns: u64) -> u64 {
    let base = BOOT_COUNTER.load(Ordering::Relaxed);
    match MONO_MULT.load(Ordering::Relaxed) {
        0 => base + ns_to_ticks(ns),
        mult => base.saturating_add(clock::ticks_for(ns, mult)),
    }
}

/// The pending `wait_for_timer` deadline, in ns since `init`.
pub fn requested_deadline_ns() -> Option<u64> {
    match REQUEST.load(Ordering::Acquire) {
        0 => None,
        c => Some(mono_params().monotonic_ns(c)),
    }
}

/// Nanoseconds since `init` (CLOCK_MONOTONIC): the clock page's
/// conversion of the counter.
pub fn now_ns() -> u64 {
    mono_params().monotonic_ns(arch::cpu::counter())
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

/// Sets the wall clock: it read `unix_ns` when the counter read `counter`
/// (which may precede `init`). Republishes the clock page, so the vDSO
/// and the syscall move together.
pub fn set_wall_clock(unix_ns: u64, counter: u64) {
    let _w = CLOCK_WRITER.lock();
    let mut p = CLOCK.read();
    p.rt_offset = clock::rt_offset_for(&p, unix_ns, counter);
    RT_OFFSET.store(p.rt_offset, Ordering::Release);
    CLOCK.publish(&p);
}

/// CLOCK_REALTIME in ns since the Unix epoch (UTC): the platform's
/// boot-time wall clock (CMOS RTC, PL031) advanced by the counter, or the
/// epoch at boot when there is none.
pub fn realtime_ns() -> u64 {
    mono_params().realtime_ns(arch::cpu::counter())
}
