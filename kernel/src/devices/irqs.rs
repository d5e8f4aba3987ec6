//! Wiring virtio devices' interrupts: MSI-X on x86 PCI (every queue on one
//! vector routed to the boot CPU's local APIC; legacy devices through
//! their vector registers in I/O BAR0), else INTx: on x86 the IOAPIC GSI
//! of ACPI `_PRT` (see `pci::intx`), on arm64 PCI the DT interrupt-map
//! (legacy devices acknowledge at BAR0 + 0x13, read clears), and the
//! platform line of a virtio-mmio transport. The handler acknowledges the
//! device, counts, wakes the threads sleeping in [`DeviceIrq`]'s
//! completion wait (virtio-blk requests) and calls the owner's `set_wake`
//! hook (the NIC). See docs/devices.md.

use super::{dma, irq::KERNEL_IRQS, pci::Found, Registry};
use crate::sync::WaitQueue;
use alloc::boxed::Box;
use alloc::string::String;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use skiff_drivers::hal::{CompletionWait, IrqHandler, IrqRegistrar};
use skiff_drivers::pci::{Bdf, ConfigSpace};
use skiff_drivers::virtio::irq::{self as virq, Ack};
use skiff_drivers::virtio::legacy;
use skiff_platform::firmware::PciHost;

/// One device's interrupt: how to acknowledge it and how often it fired.
pub struct DeviceIrq {
    pub at: String,
    /// The device line (GSI, INTID, or the MSI's line); set once it is
    /// known (an MSI's after registration).
    line: AtomicU32,
    ack: Ack,
    count: AtomicU64,
    /// Who to tell after an acknowledged interrupt (the owning driver's
    /// thread wakeup); runs in interrupt context, must not block.
    wake: spin::Once<fn()>,
    /// Threads waiting for a request of this device to complete.
    waiters: WaitQueue,
}

impl DeviceIrq {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn line(&self) -> u32 {
        self.line.load(Ordering::Relaxed)
    }

    /// How the interrupt is wired: "msix", "intx" (a PCI pin: x86 through
    /// ACPI `_PRT`, arm64 through the DT interrupt-map) or "line" (a
    /// virtio-mmio platform line).
    pub fn mode(&self) -> &'static str {
        match self.ack {
            Ack::Msix => "msix",
            Ack::PciIsr(_) | Ack::LegacyIsr(_) => "intx",
            Ack::Mmio(_) => "line",
        }
    }

    /// Sets the function the handler calls after acknowledging the device
    /// (once; later calls are ignored). It runs in interrupt context: it
    /// may only wake threads or set flags.
    pub fn set_wake(&self, f: fn()) {
        self.wake.call_once(|| f);
    }
}

impl IrqHandler for DeviceIrq {
    fn handle(&self) -> bool {
        let mine = self.ack.ack();
        if mine {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.waiters.wake_all();
            if let Some(wake) = self.wake.get() {
                wake();
            }
        }
        mine
    }
}

/// How long a completion wait sleeps before re-checking the used ring on
/// its own: a safety net should an interrupt be lost, not the normal path.
const RECHECK_NS: u64 = 50_000_000;

impl CompletionWait for DeviceIrq {
    /// Sleeps until the interrupt handler wakes this device's queue and
    /// `done()` holds. Without a scheduler to sleep in (interrupts off,
    /// early boot) it spins.
    fn wait(&self, done: &mut dyn FnMut() -> bool) {
        if !crate::arch::cpu::interrupts_enabled() {
            skiff_drivers::hal::spin_until(done);
            return;
        }
        while self.waiters.wait_timeout(RECHECK_NS, &mut *done) {}
    }
}

fn leak(at: String, line: u32, ack: Ack) -> &'static DeviceIrq {
    Box::leak(Box::new(DeviceIrq {
        at,
        line: AtomicU32::new(line),
        ack,
        count: AtomicU64::new(0),
        wake: spin::Once::new(),
        waiters: WaitQueue::new(),
    }))
}

/// Records a device's wired interrupt; a disk at the same place then
/// completes its requests by interrupt.
fn wired(reg: &mut Registry, h: &'static DeviceIrq) {
    if let Some(b) = reg.blks.iter_mut().find(|b| b.name == h.at) {
        b.dev.set_waiter(h);
        log::info!("virtio: blk at={} completion=interrupt", h.at);
    }
    reg.irqs.push(h);
}

/// A virtio-mmio transport's line (x86 GSI from the command line, GIC
/// INTID from the DT).
pub(super) fn setup_mmio(reg: &mut Registry, base: u64, len: usize, line: u32, at: String) {
    let Some(regs) = dma::mmio(base, len) else {
        return;
    };
    let h = leak(at, line, Ack::Mmio(regs));
    match KERNEL_IRQS.register_line(line, h) {
        Ok(()) => {
            log::info!("virtio: irq at={} line={line}", h.at);
            wired(reg, h);
        }
        Err(e) => log::warn!("virtio: irq at={} line={line} error={e:?}", h.at),
    }
}

/// The CPU address of a virtio structure inside its (memory) BAR.
fn structure_mmio(
    f: &Found,
    host: Option<&PciHost>,
    s: virq::Structure,
) -> Option<skiff_drivers::hal::Mmio> {
    let bar = f.bars.iter().find(|b| b.index == s.bar)?;
    let end = u64::from(s.offset).checked_add(u64::from(s.length))?;
    if end > bar.size || s.length == 0 {
        return None;
    }
    let cpu = super::pci::bar_cpu_address(bar, host)?;
    dma::mmio(cpu + u64::from(s.offset), s.length as usize)
}

/// PCI: MSI-X where the arch has MSIs (x86), else INTx via the DT map.
/// Modern devices route queues through the common configuration and
/// acknowledge INTx at the ISR structure; legacy ones use the vector
/// registers and ISR byte in I/O BAR0.
pub(super) fn setup_pci(
    reg: &mut Registry,
    cfg: &'static dyn ConfigSpace,
    f: &Found,
    host: Option<&PciHost>,
    at: String,
) {
    let bdf: Bdf = f.function.bdf;
    let modern = virq::pci_structure(cfg, bdf, &f.caps, virq::PCI_CAP_COMMON_CFG);
    let legacy_regs = || {
        f.bars
            .iter()
            .find(|b| b.index == 0)
            .and_then(|b| super::pci::io_bar(b, host))
    };
    if f.msix {
        let route: Option<Route> = match modern {
            Some(s) => structure_mmio(f, host, s).map(|common| -> Route {
                Box::new(move || virq::route_queues_to_msix(&common, 0))
            }),
            None => legacy_regs()
                .map(|regs| -> Route { Box::new(move || legacy::route_queues_to_msix(&*regs, 0)) }),
        };
        if let Some(h) = route.and_then(|r| setup_msix(cfg, f, host, &at, r)) {
            wired(reg, h);
            return;
        }
    }
    let Some(line) = f.intx else {
        log::info!("virtio: irq at={at} none (no MSI-X support here, no INTx route)");
        return;
    };
    let ack = match modern {
        Some(_) => virq::pci_structure(cfg, bdf, &f.caps, virq::PCI_CAP_ISR_CFG)
            .and_then(|s| structure_mmio(f, host, s))
            .map(Ack::PciIsr),
        None => legacy_regs().map(Ack::LegacyIsr),
    };
    let Some(ack) = ack else {
        log::warn!("virtio: irq at={at} no ISR structure");
        return;
    };
    let h = leak(at, line, ack);
    match KERNEL_IRQS.register_line(line, h) {
        Ok(()) => {
            #[cfg(target_arch = "x86_64")]
            log::info!("virtio: irq at={} intx gsi={line}", h.at);
            #[cfg(not(target_arch = "x86_64"))]
            log::info!("virtio: irq at={} intx={line}", h.at);
            wired(reg, h);
        }
        Err(e) => log::warn!("virtio: irq at={} intx={line} error={e:?}", h.at),
    }
}

/// Points the device's queues at MSI-X table entry 0 (once MSI-X is on).
type Route = Box<dyn FnOnce() -> Result<u16, virq::RouteError>>;

fn setup_msix(
    cfg: &'static dyn ConfigSpace,
    f: &Found,
    host: Option<&PciHost>,
    at: &str,
    route: Route,
) -> Option<&'static DeviceIrq> {
    use skiff_drivers::hal::IrqSource;
    use skiff_drivers::pci::msix::MsixTable;
    let bdf = f.function.bdf;
    let cap = f
        .caps
        .iter()
        .find(|c| c.id == skiff_drivers::pci::cap::MSIX)?;
    let table = match MsixTable::read(cfg, bdf, cap.offset, &f.bars) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("virtio: irq at={at} msix table error={e:?}");
            return None;
        }
    };
    let table_mmio = {
        let bar = f.bars.iter().find(|b| b.index == table.bar)?;
        let cpu = super::pci::bar_cpu_address(bar, host)?;
        dma::mmio(cpu + table.offset, table.len())?
    };
    // Leaked before registration: the registrar keeps a 'static handler.
    let h = leak(String::from(at), 0, Ack::Msix);
    let (line, address, data) = match KERNEL_IRQS.register_msi(h) {
        Ok(IrqSource::Msi {
            line,
            address,
            data,
        }) => (line, address, data),
        Ok(IrqSource::Line(_)) | Err(_) => return None,
    };
    if let Err(e) = table.set_entry(&table_mmio, 0, address, data) {
        log::warn!("virtio: irq at={at} msix entry error={e:?}");
        return None;
    }
    table.enable(cfg, bdf);
    h.line.store(line, Ordering::Relaxed);
    match route() {
        Ok(queues) => {
            log::info!("virtio: irq at={at} msix line={line} queues={queues}");
            Some(h)
        }
        Err(e) => {
            log::warn!("virtio: irq at={at} msix routing error={e:?}");
            // Back to INTx (and, legacy, the device configuration at 0x14).
            table.disable(cfg, bdf);
            None
        }
    }
}
