//! Interrupt controller interface of the arch contract over the GIC
//! (`gic`): `init` from the platform's description, `mask`/`unmask`, and
//! the acknowledge path the vectors use.
//!
//! Ending interrupts: the arch acknowledges and ends (EOI) every interrupt
//! before calling the kernel. The timer's output is masked (it re-arms with
//! `timer::set_oneshot`); a device line (SPI or non-timer PPI) is disabled
//! at the GIC first, so a level-triggered source cannot storm while a thread
//! handles it, and stays disabled until the kernel calls [`unmask`].

use crate::early_console::EarlyWriter;
use crate::gic::{self, Gic, GicError, Regs};
use crate::{mm, timer};
use core::fmt::Write;
use skiff_arch_api::{Interrupt, InterruptControllers, MapError};
use spin::Once;

static GIC: Once<Gic> = Once::new();

/// Size of the GIC distributor register frame (both versions).
const GICD_SIZE: usize = 0x1_0000;
/// Largest redistributor region mapped (enough for 128 CPUs with VLPIs).
const MAX_GICR_REGION: u64 = 128 * 0x4_0000;

/// Why `irq::init` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// Not a GIC description (an x86 one was passed).
    NotGic,
    UnsupportedVersion(u8),
    Map(MapError),
    Gic(GicError),
    /// `init_this_cpu` before the boot CPU's `init` succeeded.
    NotInitialized,
}

impl From<MapError> for IrqError {
    fn from(e: MapError) -> Self {
        IrqError::Map(e)
    }
}

fn try_init(ctrl: &InterruptControllers) -> Result<Gic, IrqError> {
    let InterruptControllers::Gic {
        version,
        gicd_phys,
        gicc_or_gicr_phys,
        gicc_or_gicr_len,
    } = *ctrl
    else {
        return Err(IrqError::NotGic);
    };
    let gicd_va = mm::map_mmio(gicd_phys, GICD_SIZE)?;
    // SAFETY: freshly mapped Device memory, mapped for good.
    let gicd = unsafe { Regs::new(gicd_va, GICD_SIZE) };
    match version {
        2 => {
            // The CPU interface is 8 KiB on GIC-400; QEMU describes 64 KiB.
            let len = gicc_or_gicr_len.clamp(0x2000, 0x2_0000) as usize;
            let gicc_va = mm::map_mmio(gicc_or_gicr_phys, len)?;
            // SAFETY: as above.
            let gicc = unsafe { Regs::new(gicc_va, len) };
            Ok(gic::init_v2(gicd, gicc))
        }
        3 => {
            let len = gicc_or_gicr_len.min(MAX_GICR_REGION) as usize;
            let gicr_va = mm::map_mmio(gicc_or_gicr_phys, len)?;
            // SAFETY: as above.
            let gicr = unsafe { Regs::new(gicr_va, len) };
            gic::init_v3(gicd, gicr, len).map_err(IrqError::Gic)
        }
        v => Err(IrqError::UnsupportedVersion(v)),
    }
}

/// Maps the GIC the platform found and enables this CPU's interface, with
/// every line masked. On failure nothing is delivered (the caller logs it;
/// the timer ktest then fails visibly).
pub fn init(ctrl: &InterruptControllers) -> Result<(), IrqError> {
    let gic = try_init(ctrl)?;
    GIC.call_once(|| gic);
    Ok(())
}

/// GIC version in use (2 or 3), or None before `init`.
pub fn gic_version() -> Option<u8> {
    GIC.get().map(Gic::version)
}

/// Secondary CPUs (the secondary entry calls it before the kernel's entry):
/// this CPU's GIC CPU interface, and on GICv3 its redistributor woken up,
/// with SGIs (IPIs) enabled and PPIs masked. Only the first call on a CPU
/// does anything, so the kernel may call it again. Err when the boot
/// CPU's `init` has not succeeded or this CPU has no redistributor.
pub fn try_init_this_cpu() -> Result<(), IrqError> {
    let gic = GIC.get().ok_or(IrqError::NotInitialized)?;
    gic.init_this_cpu().map_err(IrqError::Gic)
}

/// [`try_init_this_cpu`] with the same signature as on x86_64: a failure
/// is logged (`irq: cpu=N init failed: ...`); the CPU then gets no
/// interrupts.
pub fn init_this_cpu() {
    if let Err(e) = try_init_this_cpu() {
        let _ = writeln!(
            EarlyWriter,
            "irq: cpu={} init failed: {e:?}",
            crate::cpu::id()
        );
    }
}

/// Raises IPI `ipi` (an SGI, 0-15; higher numbers are ignored) on the CPU
/// with MPIDR affinity `hw_id`; it arrives there as `Interrupt::Ipi(ipi)`.
pub fn send_ipi(hw_id: u64, ipi: u8) {
    match GIC.get() {
        Some(g) if ipi < 16 => g.send_sgi(hw_id, ipi),
        _ => {}
    }
}

/// Enables delivery of INTID `line` (an SGI or PPI: on the calling CPU).
pub fn unmask(line: u32) {
    if let Some(g) = GIC.get() {
        g.set_enabled(line, true);
    }
}

/// Disables delivery of INTID `line` (an SGI or PPI: on the calling CPU).
pub fn mask(line: u32) {
    if let Some(g) = GIC.get() {
        g.set_enabled(line, false);
    }
}

/// Nothing left to do on the GIC: the arch already ended every interrupt
/// when it took it, and a device line stays masked until [`unmask`] (see the
/// module doc). Kept so both arches expose the same surface.
pub fn eoi(_line: u32) {}

/// Takes the pending interrupt (called by the IRQ vector): acknowledge,
/// quiet the source, EOI, and decode.
pub(crate) fn acknowledge() -> Option<Interrupt> {
    let g = GIC.get()?;
    let (intid, raw) = g.acknowledge();
    if intid >= gic::SPURIOUS_FIRST {
        return Some(Interrupt::Spurious);
    }
    let irq = if intid == timer::irq() {
        timer::on_interrupt();
        Interrupt::Timer
    } else if intid < 16 {
        Interrupt::Ipi(intid as u8)
    } else {
        g.set_enabled(intid, false);
        Interrupt::Device(intid)
    };
    g.eoi(raw);
    Some(irq)
}
