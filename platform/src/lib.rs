//! Skiff's platform layer: works out where the kernel is running and what it
//! may use there.
//!
//! * [`bootinfo`] turns every boot protocol (PVH `hvm_start_info`, the Linux
//!   `boot_params`, an arm64 device tree) into the one [`BootInfo`] that the
//!   rest of the kernel reads.
//! * [`firmware`] reads ACPI (via the `acpi` crate), the device tree (via
//!   `fdt`) and SMBIOS into one [`firmware::Firmware`] description.
//! * [`smbios`] finds the SMBIOS entry point and reads the system
//!   manufacturer and product (type 1).
//! * [`detect`] decides the hypervisor from every signal (CPUID leaves,
//!   SMBIOS strings, VMware backdoor, ACPI OEM ids, DT nodes, SMCCC UID). It is
//!   pure logic over recorded [`detect::Signals`], unit-tested on the host;
//!   its module documentation says what `hypervisor=` means when signals
//!   disagree, and the probe logs the verdict as
//!   `detect: hypervisor=.. by=..`.
//! * `probe` (target only) gathers those signals from the real machine, picks
//!   the clock and brings up the interrupt controllers through the arch crate.
//!   It also reads the real-time clock once (CMOS on x86, the DT's PL031 on
//!   arm) for [`Platform::wall_clock_at_boot`], logged as
//!   `platform: wall_clock=cmos|pl031|none ..`.
//!
//! May depend on: the arch crate of the target, `skiff-drivers`, `fdt`,
//! `acpi`. Never on the kernel. It is the only place that names hypervisors.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bootinfo;
pub mod detect;
pub mod firmware;
pub mod smbios;

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[path = "probe_x86_64.rs"]
pub mod probe;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "probe_aarch64.rs"]
pub mod probe;

pub use bootinfo::BootInfo;
pub use detect::Hypervisor;

/// What the platform layer settled on; printed as the one `platform:` line.
#[derive(Debug, Clone)]
pub struct Platform {
    pub arch: &'static str,
    pub hypervisor: Hypervisor,
    /// "acpi", "dt" or "acpi+dt".
    pub firmware: &'static str,
    /// The clock source chosen, e.g. "kvmclock", "tsc(cpuid-0x15)",
    /// "tsc(calibrated:hpet)", "cntvct".
    pub clock: &'static str,
    /// Counter frequency in Hz of `arch::cpu::counter()`.
    pub counter_hz: u64,
    pub cpus: u32,
    /// Usable RAM as the firmware reported it, in bytes.
    pub mem_bytes: u64,
    pub firmware_info: firmware::Firmware,
    /// The wall clock read at boot, if the machine has a usable RTC.
    pub wall_clock_at_boot: Option<WallClock>,
}

/// One wall-clock reading taken at boot: the real-time clock said
/// `unix_seconds` (UTC, whole seconds, so up to 1 s behind) when
/// `arch::cpu::counter()` read `counter`. The kernel's CLOCK_REALTIME is
/// this plus the counter time elapsed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// "cmos" or "pl031".
    pub source: &'static str,
    pub unix_seconds: u64,
    pub counter: u64,
}

impl Platform {
    /// The one boot line: `platform: arch=.. hypervisor=.. firmware=.. clock=.. cpus=N mem=MMiB`.
    pub fn summary(&self) -> PlatformLine<'_> {
        PlatformLine(self)
    }
}

/// `Display` adaptor for [`Platform::summary`].
pub struct PlatformLine<'a>(&'a Platform);

impl core::fmt::Display for PlatformLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let p = self.0;
        write!(
            f,
            "platform: arch={} hypervisor={} firmware={} clock={} cpus={} mem={}MiB",
            p.arch,
            p.hypervisor.name(),
            p.firmware,
            p.clock,
            p.cpus,
            p.mem_bytes / (1024 * 1024)
        )
    }
}
