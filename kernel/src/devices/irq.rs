//! The kernel's side of the HAL's interrupt registration: a table of
//! handlers per device line, MSI vector allocation on x86, and
//! [`dispatch`], which the trap handler calls for `Interrupt::Device`.
//!
//! A handler only acknowledges its device and wakes the owning thread; the
//! line is re-enabled after the handlers ran (level lines are masked by
//! the arch on delivery, see arch `irq::eoi`/`irq::unmask`).

use crate::arch;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use skiff_drivers::hal::{IrqError, IrqHandler, IrqRegistrar, IrqSource};
use spin::Mutex;

/// Lines the table can hold (x86: GSIs and MSI vectors below the timer
/// vector; aarch64: GIC INTIDs up to 1019).
const MAX_LINE: usize = 1024;
/// Handlers sharing one line.
const PER_LINE: usize = 4;

type Slot = [Option<&'static dyn IrqHandler>; PER_LINE];

static TABLE: Mutex<alloc::vec::Vec<(u32, Slot)>> = Mutex::new(alloc::vec::Vec::new());
static DISPATCHED: AtomicU64 = AtomicU64::new(0);
static UNCLAIMED: AtomicU64 = AtomicU64::new(0);
/// Whether an interrupt on a line without handlers was logged already.
static UNKNOWN_LOGGED: AtomicBool = AtomicBool::new(false);

/// The registrar drivers are given.
pub struct KernelIrqs;

pub static KERNEL_IRQS: KernelIrqs = KernelIrqs;

fn add(line: u32, handler: &'static dyn IrqHandler) -> Result<(), IrqError> {
    if line as usize >= MAX_LINE {
        return Err(IrqError::NoSuchLine(line));
    }
    arch::cpu::without_interrupts(|| {
        let mut t = TABLE.lock();
        let idx = match t.iter().position(|(l, _)| *l == line) {
            Some(i) => i,
            None => {
                t.push((line, [None; PER_LINE]));
                t.len() - 1
            }
        };
        let slot = t[idx]
            .1
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(IrqError::Full)?;
        *slot = Some(handler);
        Ok(())
    })
}

/// x86: MSI lines live above the IOAPIC's GSIs, below the timer vector.
#[cfg(target_arch = "x86_64")]
mod msi {
    use core::sync::atomic::{AtomicU32, Ordering};
    /// First "line" (vector - DEVICE_VECTOR_BASE) handed to MSIs.
    pub const FIRST: u32 = 64;
    /// One past the last: vector 0xdf, just below the timer's 0xe0.
    pub const END: u32 = 0xe0 - super::arch::irq::DEVICE_VECTOR_BASE as u32;
    pub static NEXT: AtomicU32 = AtomicU32::new(FIRST);

    pub fn allocate() -> Option<u32> {
        let line = NEXT.fetch_add(1, Ordering::Relaxed);
        (line < END).then_some(line)
    }
}

impl IrqRegistrar for KernelIrqs {
    fn register_line(&self, line: u32, handler: &'static dyn IrqHandler) -> Result<(), IrqError> {
        add(line, handler)?;
        arch::irq::unmask(line);
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    fn register_msi(&self, handler: &'static dyn IrqHandler) -> Result<IrqSource, IrqError> {
        let line = msi::allocate().ok_or(IrqError::NoMsi)?;
        let vector = arch::irq::DEVICE_VECTOR_BASE + line as u8;
        // Routed to the boot CPU, like the IOAPIC lines.
        let apic = arch::smp::this_cpu_hw_id() as u32;
        let (address, data) =
            skiff_drivers::pci::msix::x86_message(apic, vector).ok_or(IrqError::NoMsi)?;
        add(line, handler)?;
        Ok(IrqSource::Msi {
            line,
            address,
            data,
        })
    }

    /// GICv3 ITS is not driven yet: arm64 PCI devices use INTx through the
    /// DT interrupt-map.
    #[cfg(target_arch = "aarch64")]
    fn register_msi(&self, _handler: &'static dyn IrqHandler) -> Result<IrqSource, IrqError> {
        Err(IrqError::NoMsi)
    }
}

/// Runs the handlers of device line `line` and re-enables it. Called by
/// the trap handler with interrupts off.
pub fn dispatch(line: u32) {
    DISPATCHED.fetch_add(1, Ordering::Relaxed);
    let handlers: Slot = {
        let t = TABLE.lock();
        t.iter()
            .find(|(l, _)| *l == line)
            .map(|(_, s)| *s)
            .unwrap_or([None; PER_LINE])
    };
    let mut claimed = false;
    for h in handlers.iter().flatten() {
        claimed |= h.handle();
    }
    if !claimed {
        UNCLAIMED.fetch_add(1, Ordering::Relaxed);
        if handlers.iter().all(Option::is_none) && !UNKNOWN_LOGGED.swap(true, Ordering::Relaxed) {
            // A line nobody registered: the arch leaves it masked (level
            // lines) and it is counted; logged once, not per interrupt.
            log::warn!("irq: line={line} fired with no handler; ignored, level lines stay masked (logged once)");
        }
    }
    if handlers.iter().any(Option::is_some) {
        arch::irq::eoi(line);
        #[cfg(target_arch = "aarch64")]
        arch::irq::unmask(line);
    }
}

/// (dispatched, unclaimed) interrupt counts, for tests and diagnostics.
pub fn counts() -> (u64, u64) {
    (
        DISPATCHED.load(Ordering::Relaxed),
        UNCLAIMED.load(Ordering::Relaxed),
    )
}
