//! The generic timer: the virtual counter (CNTVCT_EL0) as the clock and the
//! EL1 virtual timer (CNTV_CVAL_EL0 / CNTV_CTL_EL0) as the one-shot per-CPU
//! timer. Its interrupt is a PPI, INTID 27 unless the DT says otherwise
//! (`set_irq`, called by the platform).

use crate::irq;
use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0};
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The virtual timer's PPI on every GIC-based machine we know (PPI 11).
pub const DEFAULT_VIRTUAL_TIMER_INTID: u32 = 27;

static INTID: AtomicU32 = AtomicU32::new(DEFAULT_VIRTUAL_TIMER_INTID);
static FREQUENCY: AtomicU64 = AtomicU64::new(0);

/// CNTFRQ_EL0, if firmware programmed it (0 means it did not).
pub fn counter_frequency() -> Option<u64> {
    let hz = CNTFRQ_EL0.get();
    (hz != 0).then_some(hz)
}

/// The counter frequency the platform settled on.
pub fn set_counter_frequency(hz: u64) {
    FREQUENCY.store(hz, Ordering::Relaxed);
}

/// The frequency given to `set_counter_frequency` (0 before).
pub fn frequency() -> u64 {
    FREQUENCY.load(Ordering::Relaxed)
}

/// Arch extra for the platform: the virtual timer's INTID from the DT
/// (`/timer` interrupts, third entry, PPI n → INTID 16 + n). Unmasks it at
/// the GIC (call after `irq::init`).
pub fn set_irq(intid: u32) {
    INTID.store(intid, Ordering::Relaxed);
    irq::unmask(intid);
}

/// Secondary CPUs: timer stopped, its PPI unmasked at this CPU's GIC
/// interface (after `irq::init_this_cpu`). The secondary entry already
/// called it; calling it again cancels any deadline set since.
pub fn init_this_cpu() {
    cancel();
    irq::unmask(irq());
}

/// The INTID the timer interrupts on.
pub fn irq() -> u32 {
    INTID.load(Ordering::Relaxed)
}

fn isb() {
    // SAFETY: barrier only.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Fires `Interrupt::Timer` once when `cpu::counter() >= deadline`.
/// Replaces any earlier deadline.
pub fn set_oneshot(deadline: u64) {
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    isb();
}

/// Stops the one-shot timer.
pub fn cancel() {
    CNTV_CTL_EL0.set(0);
    isb();
}

/// The timer fired: mask its output so the level-triggered PPI drops until
/// the next `set_oneshot`.
pub(crate) fn on_interrupt() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::SET);
    isb();
}

pub fn name() -> &'static str {
    "cntv"
}
