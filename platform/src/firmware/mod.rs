//! Firmware description: what ACPI, the device tree and SMBIOS say about this
//! machine, gathered into one [`Firmware`] value. `acpi` reads ACPI tables
//! through the `acpi` crate, `dt` reads a flattened device tree through `fdt`;
//! both fill the same structure so nothing above cares which one spoke.

pub mod acpi;
pub mod aml;
pub mod dt;

use arrayvec::{ArrayString, ArrayVec};

pub const MAX_CPUS: usize = 256;

/// One CPU the firmware lists (enabled or able to be onlined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// x86: local APIC / x2APIC id. aarch64: MPIDR affinity bits (DT `reg`).
    pub hw_id: u64,
    /// The CPU the firmware booted us on.
    pub boot: bool,
}

/// Interrupt controller description, owned (see `skiff_arch_api::InterruptControllers`).
// One value per boot, built by the probe: the x86 variant's inline arrays
// cost a few hundred bytes once, which is simpler than boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterruptModel {
    X86 {
        lapic_phys: u64,
        /// (id, MMIO base, GSI base)
        ioapics: ArrayVec<(u8, u64, u32), 8>,
        /// (ISA irq, GSI, active_low, level_triggered)
        isa_overrides: ArrayVec<(u8, u32, bool, bool), 16>,
    },
    Gic {
        version: u8,
        gicd_phys: u64,
        gicc_or_gicr_phys: u64,
        gicc_or_gicr_len: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// 16550 in x86 port space at `base`.
    Ns16550Port,
    /// 16550 in MMIO at `base`, registers `stride` bytes apart.
    Ns16550Mmio,
    /// Arm PL011 (or SBSA generic UART, its subset) in MMIO at `base`.
    Pl011,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uart {
    pub kind: UartKind,
    pub base: u64,
    pub stride: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

/// A PCI ECAM window (ACPI MCFG or DT `pci-host-ecam-generic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecam {
    pub base: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

/// The address space a PCI host-bridge window decodes (DT `ranges`
/// phys.hi bits 25:24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciSpace {
    Io,
    Mem32,
    Mem64,
}

/// One host-bridge window: bus addresses `pci_base..+size` are CPU
/// addresses `cpu_base..+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciWindow {
    pub space: PciSpace,
    pub prefetchable: bool,
    pub cpu_base: u64,
    pub pci_base: u64,
    pub size: u64,
}

/// One DT `interrupt-map` entry of a PCI host, already masked with
/// `interrupt-map-mask`: a function whose masked phys.hi is `child_hi` and
/// whose masked pin is `pin` (1-4) interrupts on GIC INTID `intid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxRoute {
    pub child_hi: u32,
    pub pin: u32,
    pub intid: u32,
}

/// A PCI host bridge described by the device tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciHost {
    pub windows: ArrayVec<PciWindow, 4>,
    /// (phys.hi mask, pin mask) from `interrupt-map-mask`.
    pub intx_mask: (u32, u32),
    pub intx: ArrayVec<IntxRoute, 64>,
}

impl PciHost {
    /// The INTID a function's INTx pin (1-4) is wired to.
    pub fn intx_route(&self, bus: u8, device: u8, function: u8, pin: u8) -> Option<u32> {
        let hi = (u32::from(bus) << 16) | (u32::from(device) << 11) | (u32::from(function) << 8);
        let hi = hi & self.intx_mask.0;
        let pin = u32::from(pin) & self.intx_mask.1;
        self.intx
            .iter()
            .find(|r| r.child_hi == hi && r.pin == pin)
            .map(|r| r.intid)
    }
}

/// A virtio-mmio transport the firmware lists (DT `virtio,mmio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmio {
    pub base: u64,
    pub size: u64,
    /// GIC INTID (SPI + 32) when the node names one.
    pub irq: Option<u32>,
}

pub use skiff_arch_api::{AcpiReset, AcpiSleep};

/// What the firmware says, in one place.
#[derive(Debug, Clone, Default)]
pub struct Firmware {
    /// ACPI tables were found and read.
    pub acpi: bool,
    /// A device tree was found and read.
    pub dt: bool,
    pub cpus: ArrayVec<Cpu, MAX_CPUS>,
    pub interrupts: Option<InterruptModel>,
    /// The console the firmware points at (SPCR, DT `stdout-path`).
    pub console: Option<Uart>,
    pub psci: Option<PsciConduit>,
    pub ecam: ArrayVec<Ecam, 4>,
    /// DT: the windows and INTx routing of each `pci-host-ecam-generic`
    /// node, same order as `ecam`.
    pub pci_hosts: ArrayVec<PciHost, 4>,
    /// DT: `virtio,mmio` transports, in tree order.
    pub virtio_mmio: ArrayVec<VirtioMmio, 32>,
    /// ACPI: RSDP/XSDT OEM id (6 chars, e.g. "BOCHS ", "VBOX  ", "VMWARE").
    pub acpi_oem_id: Option<ArrayString<8>>,
    /// ACPI FADT "hypervisor vendor identity" (ACPI 6.0+), 8 bytes as u64.
    pub fadt_hypervisor_vendor: Option<u64>,
    pub acpi_sleep: Option<AcpiSleep>,
    pub acpi_reset: Option<AcpiReset>,
    /// ACPI FADT `CENTURY`: CMOS index of the RTC century register.
    pub rtc_century: Option<u8>,
    /// ACPI FADT `IAPC_BOOT_ARCH` says there is no CMOS RTC.
    pub cmos_rtc_absent: bool,
    /// ACPI PM timer I/O port (FADT), 24- or 32-bit.
    pub pm_timer: Option<(u16, bool)>,
    /// HPET MMIO base (ACPI HPET table).
    pub hpet: Option<u64>,
    /// DT `/hypervisor` node `compatible` (e.g. "xen,xen-4.17", "xen,xen").
    pub dt_hypervisor: Option<ArrayString<64>>,
    /// DT root `compatible` (e.g. "linux,dummy-virt").
    pub dt_model: Option<ArrayString<64>>,
    /// DT timer: virtual timer PPI INTID (usually 27 on GIC).
    pub timer_irq: Option<u32>,
    /// SMBIOS system manufacturer / product name, when SMBIOS is present.
    pub smbios: Option<crate::smbios::SystemInfo>,
    /// ACPI: the DSDT then the SSDTs, as (physical address, length with
    /// header), checked readable; parsed by [`aml`] only when a PCI
    /// function needs INTx routing.
    pub aml_tables: ArrayVec<(u64, u32), { acpi::MAX_AML_TABLES }>,
}
