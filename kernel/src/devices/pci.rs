//! PCI configuration-space access (ECAM, and the x86 0xCF8/0xCFC ports)
//! and the boot-time bus walk: find every function, size its BARs, assign
//! the ones firmware left empty from the host bridge's windows (aarch64
//! `virt` boots without firmware), enable decoding and bus mastering for
//! the devices we drive, and log one greppable line per function:
//! `pci: 00:02.0 vendor=1af4 device=1041 class=02.00.00 bars=... irq=...`.

#[cfg(target_arch = "x86_64")]
use crate::arch;
use crate::devices::dma;
use alloc::vec::Vec;
use skiff_drivers::pci::{
    self, command, Bar, BarAllocator, BarKind, Bdf, ConfigSpace, Function, Window, WindowKind,
};
use skiff_platform::firmware::{Ecam, PciHost, PciSpace};

/// Bytes of ECAM per bus.
const ECAM_BUS: usize = 1 << 20;

/// ECAM: one 4 KiB page of registers per function, buses mapped on first
/// use (1 MiB each).
pub struct EcamConfig {
    ecam: Ecam,
    buses: spin::Mutex<[Option<skiff_drivers::hal::Mmio>; 256]>,
}

impl EcamConfig {
    pub fn new(ecam: Ecam) -> Self {
        Self {
            ecam,
            buses: spin::Mutex::new([const { None }; 256]),
        }
    }

    fn with_bus<R>(&self, bus: u8, f: impl FnOnce(&skiff_drivers::hal::Mmio) -> R) -> Option<R> {
        if bus < self.ecam.bus_start || bus > self.ecam.bus_end {
            return None;
        }
        let mut buses = self.buses.lock();
        let slot = &mut buses[usize::from(bus)];
        if slot.is_none() {
            let phys = self.ecam.base + u64::from(bus - self.ecam.bus_start) * ECAM_BUS as u64;
            if !dma::allow_mmio(phys, ECAM_BUS as u64) {
                return None;
            }
            *slot = dma::mmio(phys, ECAM_BUS);
        }
        slot.as_ref().map(f)
    }
}

fn ecam_offset(bdf: Bdf, offset: u16) -> usize {
    (usize::from(bdf.device & 31) << 15)
        | (usize::from(bdf.function & 7) << 12)
        | usize::from(offset & 0xffc)
}

impl ConfigSpace for EcamConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.with_bus(bdf.bus, |m| {
            m.read32(ecam_offset(bdf, offset)).unwrap_or(!0)
        })
        .unwrap_or(!0)
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        let _ = self.with_bus(bdf.bus, |m| m.write32(ecam_offset(bdf, offset), value));
    }
}

/// Configuration mechanism 1 (x86 ports 0xCF8/0xCFC): 256 bytes per
/// function, one access at a time.
#[cfg(target_arch = "x86_64")]
pub struct PortConfig {
    lock: spin::Mutex<()>,
}

#[cfg(target_arch = "x86_64")]
impl Default for PortConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_arch = "x86_64")]
impl PortConfig {
    pub const fn new() -> Self {
        Self {
            lock: spin::Mutex::new(()),
        }
    }

    fn address(bdf: Bdf, offset: u16) -> u32 {
        0x8000_0000
            | (u32::from(bdf.bus) << 16)
            | (u32::from(bdf.device & 31) << 11)
            | (u32::from(bdf.function & 7) << 8)
            | u32::from(offset & 0xfc)
    }
}

#[cfg(target_arch = "x86_64")]
impl ConfigSpace for PortConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        if offset >= 0x100 {
            return !0;
        }
        arch::cpu::without_interrupts(|| {
            let _g = self.lock.lock();
            // SAFETY: 0xCF8/0xCFC are the PCI configuration ports; the
            // address/data pair is used under the lock so accesses do not
            // interleave.
            #[allow(unsafe_code)]
            unsafe {
                arch::port::outl(0xcf8, Self::address(bdf, offset));
                arch::port::inl(0xcfc)
            }
        })
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if offset >= 0x100 {
            return;
        }
        arch::cpu::without_interrupts(|| {
            let _g = self.lock.lock();
            // SAFETY: as in `read32`.
            #[allow(unsafe_code)]
            unsafe {
                arch::port::outl(0xcf8, Self::address(bdf, offset));
                arch::port::outl(0xcfc, value);
            }
        })
    }
}

/// One function after the walk, with its BARs where they now are.
#[derive(Debug, Clone)]
pub struct Found {
    pub function: Function,
    pub bars: Vec<Bar>,
    /// The INTx line: the GIC INTID from the DT interrupt-map; x86: the
    /// IOAPIC GSI from ACPI `_PRT`, looked up only for functions without
    /// MSI-X (see [`intx`]).
    pub intx: Option<u32>,
    /// The capability list is sane (bounded, loop-free) and the BARs are
    /// inside the host windows: only such functions are handed to drivers.
    pub usable: bool,
    pub msix: bool,
    /// The capability list (empty when it could not be trusted).
    pub caps: Vec<pci::Capability>,
}

/// The bus walk on one segment. `host` (DT) gives the windows to place
/// unassigned BARs in and the INTx routing; on x86 firmware assigned
/// everything and the BARs are taken as found.
pub fn walk(
    cfg: &dyn ConfigSpace,
    buses: core::ops::RangeInclusive<u8>,
    host: Option<&PciHost>,
) -> Vec<Found> {
    let windows: Vec<Window> = host
        .map(|h| {
            h.windows
                .iter()
                .map(|w| Window {
                    kind: match w.space {
                        PciSpace::Io => WindowKind::Io,
                        PciSpace::Mem32 => WindowKind::Mem32,
                        PciSpace::Mem64 => WindowKind::Mem64,
                    },
                    prefetchable: w.prefetchable,
                    cpu_base: w.cpu_base,
                    pci_base: w.pci_base,
                    size: w.size,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut alloc = BarAllocator::new(&windows);
    // Only the root bus is walked unless firmware numbered bridges (see
    // `skiff_drivers::pci::enumerate`): scan the first bus, then any bus a
    // bridge names as its secondary.
    let first = *buses.start();
    let mut todo = alloc::vec![first];
    let mut seen = [false; 256];
    // Per secondary bus: the bridge above it (bus, device, function), for
    // the INTx pin swizzle up to the root bus.
    let mut parent: [Option<(u8, u8, u8)>; 256] = [None; 256];
    let mut out = Vec::new();
    while let Some(bus) = todo.pop() {
        if seen[usize::from(bus)] || !buses.contains(&bus) {
            continue;
        }
        seen[usize::from(bus)] = true;
        for function in pci::enumerate(cfg, bus..=bus) {
            let bdf = function.bdf;
            if function.header.header_type == 1 {
                let secondary = ((cfg.read32(bdf, 0x18) >> 8) & 0xff) as u8;
                if secondary > bus {
                    if parent[usize::from(secondary)].is_none() {
                        parent[usize::from(secondary)] = Some((bus, bdf.device, bdf.function));
                    }
                    todo.push(secondary);
                }
            }
            let root = |pin| root_pin(&parent, first, bdf, pin);
            out.push(examine(cfg, function, &windows, &mut alloc, host, root));
        }
    }
    out
}

/// A function whose interrupt a driver here wires (the virtio ones, see
/// `devices::irqs::setup_pci`).
fn driven_here(f: &Function) -> bool {
    f.header.vendor == skiff_drivers::virtio::VIRTIO_VENDOR
        && (0x1000..=0x107f).contains(&f.header.device)
}

/// Where INTx pin `pin` (1..=4) of `bdf` enters the root bus `first`:
/// (device, function, pin) after the bridges' swizzle; `None` if the chain
/// of bridges is not known.
fn root_pin(
    parent: &[Option<(u8, u8, u8)>; 256],
    first: u8,
    bdf: Bdf,
    pin: u8,
) -> Option<(u8, u8, u8)> {
    let (mut bus, mut dev, mut func, mut pin) = (bdf.bus, bdf.device, bdf.function, pin);
    for _ in 0..256 {
        if bus == first {
            return Some((dev, func, pin));
        }
        let (pbus, pdev, pfunc) = parent[usize::from(bus)]?;
        pin = skiff_platform::firmware::aml::swizzle(pin, dev);
        (bus, dev, func) = (pbus, pdev, pfunc);
    }
    None
}

fn examine(
    cfg: &dyn ConfigSpace,
    function: Function,
    windows: &[Window],
    alloc: &mut BarAllocator,
    host: Option<&PciHost>,
    root: impl Fn(u8) -> Option<(u8, u8, u8)>,
) -> Found {
    let bdf = function.bdf;
    let nbars = match function.header.header_type {
        0 => 6,
        1 => 2,
        _ => 0,
    };
    let mut usable = true;
    let mut bars = match pci::read_bars(cfg, bdf, nbars) {
        Ok(b) => b,
        Err(e) => {
            log::warn!("pci: {bdf} bad bar error={e:?}; disabled");
            pci::disable(
                cfg,
                bdf,
                command::MEMORY | command::IO | command::BUS_MASTER,
            );
            usable = false;
            Vec::new()
        }
    };
    if !windows.is_empty() {
        for bar in bars.iter_mut() {
            let inside = windows.iter().any(|w| {
                let kind_ok = match bar.kind {
                    BarKind::Io => w.kind == WindowKind::Io,
                    _ => w.kind != WindowKind::Io,
                };
                kind_ok && w.to_cpu(bar.address, bar.size).is_some()
            });
            if bar.address != 0 && inside {
                continue;
            }
            if bar.address != 0 {
                log::warn!(
                    "pci: {bdf} bar={} addr={:#x} outside the host windows; reassigning",
                    bar.index,
                    bar.address
                );
            }
            match alloc.allocate(bar.kind, bar.size) {
                Ok(addr) => {
                    pci::write_bar(cfg, bdf, bar, addr);
                    bar.address = addr;
                }
                Err(e) => {
                    log::warn!(
                        "pci: {bdf} bar={} size={:#x} no space={e:?}",
                        bar.index,
                        bar.size
                    );
                    usable = false;
                }
            }
        }
    }
    let caps = match pci::capabilities(cfg, bdf) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("pci: {bdf} capability list error={e:?}; disabled");
            pci::disable(
                cfg,
                bdf,
                command::MEMORY | command::IO | command::BUS_MASTER,
            );
            usable = false;
            Vec::new()
        }
    };
    let msix = caps.iter().any(|c| c.id == pci::cap::MSIX);
    let intx = if function.interrupt_pin == 0 {
        None
    } else if let Some(h) = host {
        h.intx_route(bdf.bus, bdf.device, bdf.function, function.interrupt_pin)
    } else if msix || !usable || !driven_here(&function) {
        // x86 functions with MSI-X interrupt through it, and functions no
        // driver here wires (e.g. ICH9's SATA and SMBus): no AML is read.
        None
    } else {
        // x86 without MSI-X: the interrupt-line register only holds the
        // legacy PIC number firmware chose; the IOAPIC GSI is in ACPI
        // `_PRT`, read (once, on first need) by `intx::route`.
        #[cfg(target_arch = "x86_64")]
        {
            root(function.interrupt_pin).and_then(|(d, f, p)| intx::route(bdf, d, f, p))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = root;
            None
        }
    };
    Found {
        function,
        bars,
        intx,
        usable,
        msix,
        caps,
    }
}

/// x86 INTx routing through ACPI `_PRT` (`skiff_platform::firmware::aml`),
/// loaded lazily: the DSDT/SSDTs are parsed the first time a function
/// without MSI-X needs its pin routed, never on an all-MSI-X boot. A
/// failure is logged once and leaves INTx unavailable (drivers poll).
#[cfg(target_arch = "x86_64")]
mod intx {
    use super::{arch, Bdf};
    use skiff_platform::firmware::aml::{AmlFailure, IntxRouter};

    enum State {
        Untried,
        Ready(IntxRouter<'static>),
        Failed,
    }

    static ROUTER: spin::Mutex<State> = spin::Mutex::new(State::Untried);

    /// The firmware's AML tables, re-checked (signature, length) in
    /// place: they are read long after boot.
    fn tables() -> Result<alloc::vec::Vec<&'static [u8]>, &'static str> {
        let fw = &crate::PLATFORM.get().ok_or("no platform")?.firmware_info;
        if fw.aml_tables.is_empty() {
            return Err("no DSDT recorded");
        }
        let mut out = alloc::vec::Vec::new();
        for (i, &(pa, len)) in fw.aml_tables.iter().enumerate() {
            let t = arch::mm::phys_slice(pa, len as usize).ok_or("table not mapped")?;
            let sig: &[u8] = if i == 0 { b"DSDT" } else { b"SSDT" };
            let same_len = t
                .get(4..8)
                .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]));
            if t.get(0..4) != Some(sig) || same_len != Some(len) {
                return Err("a table changed since boot");
            }
            out.push(t);
        }
        Ok(out)
    }

    fn load() -> State {
        let tables = match tables() {
            Ok(t) => t,
            Err(e) => {
                log::warn!(
                    "pci: intx routing unavailable error=\"{e}\"; devices without MSI-X poll"
                );
                return State::Failed;
            }
        };
        let bytes: usize = tables.iter().map(|t| t.len()).sum();
        match IntxRouter::new(&tables) {
            Ok(r) => {
                log::info!(
                    "pci: acpi aml tables={} bytes={bytes} prt_entries={}",
                    tables.len(),
                    r.entries.len()
                );
                State::Ready(r)
            }
            Err(e) => {
                log::warn!(
                    "pci: intx routing unavailable aml_error={e:?}; devices without MSI-X poll"
                );
                State::Failed
            }
        }
    }

    /// The GSI of `bdf`'s INTx pin, which enters the root bus at
    /// (`device`, `function`, `pin`); programs its trigger and polarity
    /// (the line stays masked until a handler registers).
    pub fn route(bdf: Bdf, device: u8, function: u8, pin: u8) -> Option<u32> {
        let mut st = ROUTER.lock();
        if matches!(*st, State::Untried) {
            *st = load();
        }
        let State::Ready(r) = &mut *st else {
            return None;
        };
        match r.route(device, function, pin) {
            Ok(route) => match arch::irq::configure(route.gsi, route.level, route.active_low) {
                Ok(()) => {
                    log::info!(
                        "pci: {bdf} intx pin={pin} gsi={} trigger={} polarity={}",
                        route.gsi,
                        if route.level { "level" } else { "edge" },
                        if route.active_low { "low" } else { "high" }
                    );
                    Some(route.gsi)
                }
                Err(e) => {
                    log::warn!("pci: {bdf} intx gsi={} error={e:?}", route.gsi);
                    None
                }
            },
            Err(AmlFailure::NoEntry) => {
                log::warn!("pci: {bdf} intx pin={pin} not in _PRT");
                None
            }
            Err(e) => {
                log::warn!("pci: {bdf} intx pin={pin} aml_error={e:?}");
                None
            }
        }
    }
}

/// The CPU address of a memory BAR: identity on x86; through the window on
/// a DT host.
pub fn bar_cpu_address(bar: &Bar, host: Option<&PciHost>) -> Option<u64> {
    match host {
        None => Some(bar.address),
        Some(h) => h.windows.iter().find_map(|w| {
            if w.space == PciSpace::Io {
                return None;
            }
            let off = bar.address.checked_sub(w.pci_base)?;
            (off.checked_add(bar.size)? <= w.size).then(|| w.cpu_base + off)
        }),
    }
}

/// The CPU address of an I/O BAR on a DT host: the bus range through the
/// host's I/O window (arm64 maps PCI I/O space as MMIO there).
pub fn io_bar_cpu_address(bar: &Bar, host: &PciHost) -> Option<u64> {
    if bar.kind != BarKind::Io {
        return None;
    }
    host.windows.iter().find_map(|w| {
        if w.space != PciSpace::Io {
            return None;
        }
        let off = bar.address.checked_sub(w.pci_base)?;
        (off.checked_add(bar.size)? <= w.size).then(|| w.cpu_base + off)
    })
}

/// x86 port I/O for the driver HAL's [`PortBar`](skiff_drivers::hal::PortBar).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct KernelPorts;

// SAFETY (all six): `PortBar` only reaches ports inside an I/O BAR the bus
// walk found assigned, which belong to the device; port I/O touches no
// memory.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
impl skiff_drivers::hal::PortAccess for KernelPorts {
    fn in8(&self, port: u16) -> u8 {
        unsafe { arch::port::inb(port) }
    }
    fn in16(&self, port: u16) -> u16 {
        unsafe { arch::port::inw(port) }
    }
    fn in32(&self, port: u16) -> u32 {
        unsafe { arch::port::inl(port) }
    }
    fn out8(&self, port: u16, value: u8) {
        unsafe { arch::port::outb(port, value) }
    }
    fn out16(&self, port: u16, value: u16) {
        unsafe { arch::port::outw(port, value) }
    }
    fn out32(&self, port: u16, value: u32) {
        unsafe { arch::port::outl(port, value) }
    }
}

/// The registers of I/O BAR `bar`: x86 ports (firmware assigned them;
/// no DT host), or on a DT host (arm64) the part of the host's I/O window
/// the kernel placed it in, mapped as MMIO. `None` (logged) when it is not
/// an assigned I/O BAR reachable here.
pub fn io_bar(
    bar: &Bar,
    host: Option<&PciHost>,
) -> Option<alloc::boxed::Box<dyn skiff_drivers::hal::IoBar>> {
    if bar.kind != BarKind::Io || bar.address == 0 {
        return None;
    }
    if let Some(h) = host {
        let Some(cpu) = io_bar_cpu_address(bar, h) else {
            log::warn!(
                "pci: io bar={} addr={:#x} outside the host's I/O window",
                bar.index,
                bar.address
            );
            return None;
        };
        if !dma::allow_mmio(cpu, bar.size) {
            return None;
        }
        let m = dma::mmio(cpu, usize::try_from(bar.size).ok()?)?;
        return Some(alloc::boxed::Box::new(m));
    }
    #[cfg(target_arch = "x86_64")]
    {
        let base = u16::try_from(bar.address).ok()?;
        let len = u16::try_from(bar.size).ok()?;
        skiff_drivers::hal::PortBar::new(KernelPorts, base, len)
            .map(|p| alloc::boxed::Box::new(p) as alloc::boxed::Box<dyn skiff_drivers::hal::IoBar>)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        log::warn!("pci: io bar={} with no host window to reach it", bar.index);
        None
    }
}

/// The boot-log line for a function.
pub fn log_found(f: &Found) {
    let h = &f.function.header;
    let irq = match f.intx {
        Some(l) => alloc::format!("{l}"),
        None => alloc::string::String::from("none"),
    };
    crate::println!(
        "pci: {} vendor={:04x} device={:04x} class={:02x}.{:02x}.{:02x} bars={} irq={} msix={}",
        f.function.bdf,
        h.vendor,
        h.device,
        h.class,
        h.subclass,
        h.prog_if,
        pci::BarList(&f.bars),
        irq,
        if f.msix { "yes" } else { "no" }
    );
}
