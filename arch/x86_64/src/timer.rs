//! The per-CPU one-shot timer: TSC-deadline mode when CPUID.1:ECX[24] says
//! so, else the local APIC timer in one-shot mode, calibrated against the
//! TSC once the platform has told us the TSC frequency. Deadlines are always
//! in TSC ticks (`cpu::counter`).

use crate::cpu::{self, counter, feature};
use crate::irq::{
    self, LAPIC_LVT_TIMER, LAPIC_TIMER_CURRENT, LAPIC_TIMER_DIVIDE, LAPIC_TIMER_INITIAL, LVT_MASKED,
};
use core::sync::atomic::{AtomicU64, Ordering};

/// The timer's interrupt vector.
pub const VECTOR: u8 = 0xe0;

const IA32_TSC_DEADLINE: u32 = 0x6e0;
const LVT_TSC_DEADLINE: u32 = 2 << 17;
/// LAPIC timer divide configuration value for divide-by-16.
const DIVIDE_BY_16: u32 = 0x3;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Per CPU (indexed by APIC id mod 256), the armed deadline (TSC), 0 when
/// none: the LAPIC timer is re-armed if it fires before it, so the timer is
/// never early whatever the calibration.
static DEADLINES: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

fn deadline_slot() -> &'static AtomicU64 {
    &DEADLINES[(irq::lapic_id() & 0xff) as usize]
}
/// LAPIC timer ticks per 2^32 TSC ticks (fixed point), 0 until calibrated.
static LAPIC_PER_TSC: AtomicU64 = AtomicU64::new(0);

fn deadline_mode() -> bool {
    cpu::has(feature::TSC_DEADLINE)
}

/// The TSC frequency if the CPU states it (CPUID 0x15, else 0x16's base
/// frequency), else `None`.
pub fn counter_frequency() -> Option<u64> {
    let max = crate::cpuid(0, 0).eax;
    if max >= 0x15 {
        let l = crate::cpuid(0x15, 0);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some(u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax));
        }
    }
    if max >= 0x16 {
        let mhz = crate::cpuid(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            return Some(u64::from(mhz) * 1_000_000);
        }
    }
    None
}

/// Records the TSC frequency the platform settled on; in LAPIC mode also
/// measures the LAPIC timer against the TSC (10 ms).
pub fn set_counter_frequency(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
    if !deadline_mode() && irq::lapic_ready() && hz != 0 {
        calibrate_lapic(hz);
    }
}

/// The TSC frequency last set (0 before the platform set it).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

fn calibrate_lapic(tsc_hz: u64) {
    let window = tsc_hz / 100;
    cpu::without_interrupts(|| {
        irq::lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | u32::from(VECTOR));
        irq::lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_16);
        let start = counter();
        irq::lapic_write(LAPIC_TIMER_INITIAL, u32::MAX);
        while counter().wrapping_sub(start) < window {
            core::hint::spin_loop();
        }
        let elapsed_lapic = u64::from(u32::MAX - irq::lapic_read(LAPIC_TIMER_CURRENT));
        let elapsed_tsc = counter().wrapping_sub(start).max(1);
        irq::lapic_write(LAPIC_TIMER_INITIAL, 0);
        let ratio = ((u128::from(elapsed_lapic) << 32) / u128::from(elapsed_tsc)) as u64;
        LAPIC_PER_TSC.store(ratio.max(1), Ordering::Relaxed);
    });
}

/// Fires `Interrupt::Timer` once when `counter() >= deadline`; replaces any
/// earlier deadline. A deadline in the past fires at once.
pub fn set_oneshot(deadline: u64) {
    let deadline = deadline.max(1);
    deadline_slot().store(deadline, Ordering::Relaxed);
    if deadline_mode() {
        irq::lapic_write(LAPIC_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(VECTOR));
        // SAFETY: IA32_TSC_DEADLINE exists when CPUID.1:ECX[24] is set; a
        // value of 0 disarms, so never write 0.
        unsafe { crate::write_msr(IA32_TSC_DEADLINE, deadline) };
        return;
    }
    arm_lapic(deadline);
}

fn arm_lapic(deadline: u64) {
    let ratio = LAPIC_PER_TSC.load(Ordering::Relaxed);
    let delta = deadline.saturating_sub(counter());
    // Before calibration assume one LAPIC tick per 16 TSC ticks: early, not
    // never.
    let ticks = if ratio == 0 {
        delta / 16
    } else {
        ((u128::from(delta) * u128::from(ratio)) >> 32) as u64
    };
    let ticks = ticks.clamp(1, u64::from(u32::MAX)) as u32;
    irq::lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_16);
    irq::lapic_write(LAPIC_LVT_TIMER, u32::from(VECTOR));
    irq::lapic_write(LAPIC_TIMER_INITIAL, ticks);
}

/// Disarms the timer.
pub fn cancel() {
    deadline_slot().store(0, Ordering::Relaxed);
    if deadline_mode() {
        // SAFETY: writing 0 to IA32_TSC_DEADLINE disarms it.
        unsafe { crate::write_msr(IA32_TSC_DEADLINE, 0) };
    } else {
        irq::lapic_write(LAPIC_TIMER_INITIAL, 0);
    }
}

/// Called by the dispatcher on the timer vector: true when the deadline has
/// passed (deliver `Interrupt::Timer`), false after re-arming an early LAPIC
/// expiry (or for a cancelled timer's stale interrupt).
pub(crate) fn expired() -> bool {
    let slot = deadline_slot();
    let deadline = slot.load(Ordering::Relaxed);
    if deadline == 0 {
        return false;
    }
    if deadline_mode() || counter() >= deadline {
        slot.store(0, Ordering::Relaxed);
        return true;
    }
    arm_lapic(deadline);
    false
}

pub fn name() -> &'static str {
    if deadline_mode() {
        "tsc-deadline"
    } else {
        "lapic"
    }
}
