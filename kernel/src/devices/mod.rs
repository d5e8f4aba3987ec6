//! Devices: bus discovery (PCI, virtio-mmio), the kernel's implementation
//! of the driver HAL (DMA memory in [`dma`], interrupt registration in
//! [`irq`]) and the registry of the devices found.
//!
//! [`init`] runs once in the main thread, after the scheduler is up:
//!
//! 1. PCI: every ECAM window (ACPI MCFG, DT `pci-host-ecam-generic`), or
//!    the x86 configuration ports when there is PCI but no MCFG. Unassigned
//!    BARs are placed in the DT host's windows. Each function is logged
//!    (`pci: 00:02.0 vendor=1af4 ...`).
//! 2. virtio-mmio: the DT's `virtio,mmio` nodes, else the command line's
//!    `virtio_mmio.device=` (x86 microvm).
//! 3. virtio devices on both transports: rng (which reseeds the entropy
//!    pool: `random: seeded source=virtio-rng`), blk (`virtio: blk ...
//!    capacity=N`), net (`virtio: net ... mac=.. link=..`).
//!
//! Devices are then reached through [`with_blk`], [`take_net`] and
//! [`rng_fill`]. See docs/devices.md.

pub mod dma;
pub mod irq;
pub mod irqs;
pub mod pci;
mod tests;

use crate::sync::Mutex;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use skiff_drivers::net::{MacAddr, NetDevice};
#[cfg(target_arch = "x86_64")]
use skiff_drivers::pci::Bdf;
use skiff_drivers::pci::{command, ConfigSpace};
use skiff_drivers::virtio::{self, AnyTransport, Blk, MmioProbe, Net, Rng};
use skiff_platform::firmware::PciHost;

/// A block device and where it was found (`pci:00:03.0`, `mmio:0xa003e00`).
pub struct BlkEntry {
    pub name: String,
    pub dev: Blk,
}

/// What [`init`] found.
#[derive(Default)]
struct Registry {
    rng: Option<Rng>,
    blks: Vec<BlkEntry>,
    nets: Vec<(String, Net)>,
    /// Summary for tests: (kind, location, detail) of every virtio device.
    found: Vec<(&'static str, String, String)>,
    pci_functions: usize,
    /// Interrupt handlers registered for the devices.
    irqs: Vec<&'static irqs::DeviceIrq>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Configuration spaces live for the rest of the boot (the PCI transports
/// keep referring to them).
fn leak_config(c: impl ConfigSpace + 'static) -> &'static dyn ConfigSpace {
    Box::leak(Box::new(c))
}

/// Probes everything, fills the registry, seeds the entropy pool from a
/// virtio-rng. Never fails the boot: problems are logged.
/// `virtio_mmio`: the command line's `virtio_mmio.device=` words (see
/// `cmdline::Options::virtio_mmio`), used when the firmware names none.
pub fn init(platform: &skiff_platform::Platform, virtio_mmio: &str) {
    virtio::hal::set_dma(&dma::KERNEL_DMA);
    let mut reg = Registry::default();
    let fw = &platform.firmware_info;

    for (i, ecam) in fw.ecam.iter().enumerate() {
        let host = fw.pci_hosts.get(i);
        let cfg = leak_config(pci::EcamConfig::new(*ecam));
        probe_pci(&mut reg, cfg, ecam.bus_start..=ecam.bus_end, host);
    }
    #[cfg(target_arch = "x86_64")]
    if fw.ecam.is_empty() {
        let cfg = leak_config(pci::PortConfig::new());
        let present = cfg.read32(
            Bdf {
                bus: 0,
                device: 0,
                function: 0,
            },
            0,
        ) & 0xffff
            != 0xffff;
        if present {
            probe_pci(&mut reg, cfg, 0..=255, None);
        }
    }

    let mut slots: Vec<(u64, u64, Option<u32>)> = fw
        .virtio_mmio
        .iter()
        .map(|v| (v.base, v.size, v.irq))
        .collect();
    if slots.is_empty() {
        for s in virtio::cmdline::slots(virtio_mmio) {
            match s {
                Ok(s) => slots.push((s.base, s.size, Some(s.irq))),
                Err(e) => log::warn!("virtio: bad virtio_mmio.device= error={e:?}"),
            }
        }
    }
    for (base, size, irq) in slots {
        probe_mmio(&mut reg, base, size, irq);
    }

    println_summary(&reg);
    if let Some(rng) = reg.rng.as_mut() {
        let mut seed = [0u8; 32];
        match rng.fill(&mut seed) {
            Ok(32) => {
                crate::random::POOL.add_entropy(&seed);
                log::info!("random: seeded source=virtio-rng");
            }
            Ok(n) => log::warn!("random: virtio-rng gave short read len={n}"),
            Err(e) => log::warn!("random: virtio-rng failed error={}", e.name()),
        }
    }
    *REGISTRY.lock() = Some(reg);
}

fn println_summary(reg: &Registry) {
    crate::println!(
        "devices: pci_functions={} virtio={} blk={} net={} rng={}",
        reg.pci_functions,
        reg.found.len(),
        reg.blks.len(),
        reg.nets.len(),
        if reg.rng.is_some() { 1 } else { 0 }
    );
}

fn probe_pci(
    reg: &mut Registry,
    cfg: &'static dyn ConfigSpace,
    buses: core::ops::RangeInclusive<u8>,
    host: Option<&PciHost>,
) {
    for f in pci::walk(cfg, buses, host) {
        pci::log_found(&f);
        reg.pci_functions += 1;
        let bdf = f.function.bdf;
        let h = f.function.header;
        if h.vendor != virtio::VIRTIO_VENDOR || !(0x1000..=0x107f).contains(&h.device) {
            continue;
        }
        if !f.usable {
            log::warn!("virtio: pci={bdf} not usable (see the pci: lines); skipped");
            continue;
        }
        let mut ok = true;
        for bar in f
            .bars
            .iter()
            .filter(|b| b.kind != skiff_drivers::pci::BarKind::Io)
        {
            match pci::bar_cpu_address(bar, host) {
                Some(cpu) if cpu == bar.address => {
                    dma::allow_mmio(cpu, bar.size);
                }
                // The crate maps BARs by bus address: only identity
                // windows work (true on q35 and QEMU virt).
                _ => ok = false,
            }
        }
        if !ok {
            log::warn!("virtio: pci={bdf} bar not in an identity window; skipped");
            continue;
        }
        // Legacy-only functions (VirtualBox's virtio-net, QEMU with
        // `disable-modern=on`) have no modern common configuration.
        let modern = virtio::irq::pci_structure(cfg, bdf, &f.caps, virtio::irq::PCI_CAP_COMMON_CFG)
            .is_some();
        if !modern {
            probe_legacy(reg, cfg, &f, host);
            continue;
        }
        skiff_drivers::pci::enable(cfg, bdf, command::MEMORY | command::BUS_MASTER);
        match virtio::pci_transport(cfg, bdf) {
            Ok(t) => {
                let at = alloc::format!("pci:{bdf}");
                if attach(reg, at.clone(), t) {
                    irqs::setup_pci(reg, cfg, &f, host, at);
                }
            }
            Err(e) => {
                log::warn!("virtio: pci={bdf} error={}; disabled", e.name());
                skiff_drivers::pci::disable(cfg, bdf, command::MEMORY | command::BUS_MASTER);
            }
        }
    }
}

/// A legacy virtio PCI function: registers in I/O BAR0 (x86 ports, or
/// the arm64 host's I/O window).
fn probe_legacy(
    reg: &mut Registry,
    cfg: &'static dyn ConfigSpace,
    f: &pci::Found,
    host: Option<&PciHost>,
) {
    let bdf = f.function.bdf;
    let device = f.function.header.device;
    if !virtio::legacy::TRANSITIONAL_IDS.contains(&device) {
        log::warn!("virtio: pci={bdf} device={device:04x} has no common configuration; skipped");
        return;
    }
    let Some(regs) = f
        .bars
        .iter()
        .find(|b| b.index == 0)
        .and_then(|b| pci::io_bar(b, host))
    else {
        log::warn!("virtio: pci={bdf} legacy device without a usable I/O BAR0; skipped");
        return;
    };
    let subsystem = (cfg.read32(bdf, 0x2c) >> 16) as u16;
    let msix = f
        .caps
        .iter()
        .find(|c| c.id == skiff_drivers::pci::cap::MSIX)
        .map(|c| virtio::legacy::MsixCap {
            cfg,
            bdf,
            offset: c.offset,
        });
    let bits = command::IO | command::MEMORY | command::BUS_MASTER;
    skiff_drivers::pci::enable(cfg, bdf, bits);
    match virtio::LegacyPci::new(regs, device, subsystem, msix) {
        Ok(t) => {
            let at = alloc::format!("pci:{bdf}");
            log::info!("virtio: pci={bdf} legacy interface");
            if attach(reg, at.clone(), AnyTransport::from(t)) {
                irqs::setup_pci(reg, cfg, f, host, at);
            }
        }
        Err(e) => {
            log::warn!("virtio: pci={bdf} legacy error={}; disabled", e.name());
            skiff_drivers::pci::disable(cfg, bdf, bits);
        }
    }
}

fn probe_mmio(reg: &mut Registry, base: u64, size: u64, irq: Option<u32>) {
    let Ok(len) = usize::try_from(size) else {
        return;
    };
    if !dma::allow_mmio(base, size) {
        log::warn!("virtio: mmio={base:#x} too many windows; skipped");
        return;
    }
    let Some(regs) = dma::mmio(base, len) else {
        log::warn!("virtio: mmio={base:#x} cannot map");
        return;
    };
    match virtio::mmio_transport(regs) {
        Ok(t) => {
            let at = alloc::format!("mmio:{base:#x}");
            if attach(reg, at.clone(), t) {
                if let Some(line) = irq {
                    irqs::setup_mmio(reg, base, len, line, at);
                }
            }
        }
        Err(MmioProbe::Empty) => {}
        Err(MmioProbe::Error(e)) => log::warn!("virtio: mmio={base:#x} error={}", e.name()),
    }
}

/// Drives the device behind `t`; true if a driver took it.
fn attach(reg: &mut Registry, at: String, t: AnyTransport) -> bool {
    let ty = virtio::device_type(&t);
    let name = virtio::type_name(ty);
    use skiff_drivers::virtio::DeviceType;
    match ty {
        DeviceType::EntropySource if reg.rng.is_none() => match Rng::new(t) {
            Ok(r) => {
                crate::println!("virtio: rng at={at}");
                reg.found.push(("rng", at, String::new()));
                reg.rng = Some(r);
                true
            }
            Err(e) => {
                log::warn!("virtio: rng at={at} error={}", e.name());
                false
            }
        },
        DeviceType::Block => match Blk::new(t) {
            Ok(b) => {
                let detail = alloc::format!("capacity={}", b.capacity());
                crate::println!(
                    "virtio: blk at={at} capacity={} sectors={} readonly={}",
                    b.capacity() * virtio::SECTOR as u64,
                    b.capacity(),
                    b.readonly()
                );
                reg.found.push(("blk", at.clone(), detail));
                reg.blks.push(BlkEntry { name: at, dev: b });
                true
            }
            Err(e) => {
                log::warn!("virtio: blk at={at} error={}", e.name());
                false
            }
        },
        DeviceType::Network => match virtio::new_net(t) {
            Ok(mut n) => {
                n.set_location(&at);
                let link = match n.link() {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "unknown",
                };
                crate::println!(
                    "virtio: net at={at} mac={} mtu={} link={link} features={}",
                    MacAddr(n.mac()),
                    n.mtu(),
                    n.offload_names()
                );
                reg.found.push((
                    "net",
                    at.clone(),
                    alloc::format!("mac={}", MacAddr(n.mac())),
                ));
                reg.nets.push((at, n));
                true
            }
            Err(e) => {
                log::warn!("virtio: net at={at} error={}", e.name());
                false
            }
        },
        _ => {
            crate::println!("virtio: {name} at={at} not driven");
            false
        }
    }
}

/// (kind, location, detail) of every virtio device driven, and the number
/// of PCI functions seen.
pub fn summary() -> (Vec<(&'static str, String, String)>, usize) {
    let g = REGISTRY.lock();
    match g.as_ref() {
        Some(r) => (r.found.clone(), r.pci_functions),
        None => (Vec::new(), 0),
    }
}

/// Sends one frame on NIC `index` (still in the registry), for tests.
pub fn with_net<R>(index: usize, f: impl FnOnce(&mut dyn NetDevice) -> R) -> Option<R> {
    let mut g = REGISTRY.lock();
    let reg = g.as_mut()?;
    reg.nets.get_mut(index).map(|(_, n)| f(n))
}

/// (location, line, interrupts handled) of every device interrupt
/// registered.
pub fn irq_counts() -> Vec<(String, u32, u64)> {
    let g = REGISTRY.lock();
    g.as_ref()
        .map(|r| {
            r.irqs
                .iter()
                .map(|i| (i.at.clone(), i.line(), i.count()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` on block device `index` (in discovery order).
pub fn with_blk<R>(index: usize, f: impl FnOnce(&mut BlkEntry) -> R) -> Option<R> {
    let mut g = REGISTRY.lock();
    let reg = g.as_mut()?;
    reg.blks.get_mut(index).map(f)
}

/// A NIC handed to the network stack.
pub struct TakenNet {
    /// Where it was found (`pci:00:03.0`, `mmio:0xa003e00`).
    pub at: String,
    pub dev: Box<dyn NetDevice>,
    /// Its interrupt, when one is wired: `set_wake` it to hear of
    /// received frames and transmit completions.
    pub irq: Option<&'static irqs::DeviceIrq>,
}

/// Hands the first (remaining) NIC to the network stack.
pub fn take_net() -> Option<TakenNet> {
    let mut g = REGISTRY.lock();
    let reg = g.as_mut()?;
    if reg.nets.is_empty() {
        return None;
    }
    let (at, net) = reg.nets.remove(0);
    let irq = reg.irqs.iter().copied().find(|i| i.at == at);
    Some(TakenNet {
        at,
        dev: Box::new(net),
        irq,
    })
}

/// Entropy from the virtio-rng, if there is one: bytes written.
pub fn rng_fill(out: &mut [u8]) -> Option<usize> {
    let mut g = REGISTRY.lock();
    g.as_mut()?.rng.as_mut()?.fill(out).ok()
}
