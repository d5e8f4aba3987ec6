//! The x86_64 probe: gathers what this machine is from the real hardware
//! and firmware, and brings up what the kernel needs from it.
//!
//! * [`PhysMem`] — physical memory for the parsers, through the arch's
//!   direct map.
//! * [`console`] — the 16550 the firmware names (SPCR) or COM1.
//! * [`init`] — ACPI (or CPUID/defaults without it), SMBIOS, the hypervisor
//!   signals and [`detect::decide`], the interrupt controllers, the clock
//!   (TSC frequency from CPUID 0x15 → CPUID 0x40000010 → kvmclock → HPET /
//!   ACPI PM timer calibration → CPUID 0x16 → PIT channel 2), ACPI power-off
//!   and reset, the CPU count. Each decision is logged as one greppable
//!   `platform: ...` line through `log`.

use crate::bootinfo::{self, BootInfo, PhysMemory};
use crate::detect::{self, CpuidLeaf, Signals};
use crate::firmware::{self, AcpiSleep, Firmware, InterruptModel, UartKind};
use crate::Platform;
use core::cell::UnsafeCell;
use skiff_arch_api::InterruptControllers;
use skiff_arch_x86_64 as arch;
use skiff_drivers::rtc::{self, cmos::Cmos};
use skiff_drivers::serial::uart16550::{PortIo, PortRegisters, Uart16550};
use skiff_drivers::serial::Uart;

/// Physical memory through the arch's direct map.
pub struct PhysMem;

impl PhysMemory for PhysMem {
    fn read(&self, pa: u64, len: usize) -> Option<&[u8]> {
        arch::mm::phys_slice(pa, len)
    }
}

// ---- Console ----

/// Port I/O for the COM port statics below. Only ever constructed here, for
/// the standard COM port register blocks, so it cannot reach other ports.
struct ComPorts;

impl PortIo for ComPorts {
    fn inb(&self, port: u16) -> u8 {
        // SAFETY: only used through `PortRegisters` at a COM base (+0..7):
        // 16550 registers, whose reads have only UART side effects.
        unsafe { arch::port::inb(port) }
    }
    fn outb(&self, port: u16, value: u8) {
        // SAFETY: as in `inb`: writes to 16550 registers.
        unsafe { arch::port::outb(port, value) }
    }
}

type ComUart = Uart16550<PortRegisters<ComPorts>>;

const fn com(base: u16) -> ComUart {
    Uart16550::new(PortRegisters { io: ComPorts, base })
}

static COM: [(u16, ComUart); 4] = [
    (0x3f8, com(0x3f8)),
    (0x2f8, com(0x2f8)),
    (0x3e8, com(0x3e8)),
    (0x2e8, com(0x2e8)),
];

/// The console: the port 16550 ACPI's SPCR names, else COM1, initialised to
/// 115200 8N1. `None` if no UART answers.
pub fn console(boot: &BootInfo) -> Option<&'static dyn Uart> {
    let mut base = 0x3f8;
    if let Some(rsdp) = rsdp(boot) {
        let mut fw = Firmware::default();
        if firmware::acpi::read(rsdp, &PhysMem, &mut fw).is_ok() {
            match fw.console {
                Some(u) if u.kind == UartKind::Ns16550Port => {
                    base = u16::try_from(u.base).unwrap_or(0x3f8);
                }
                // An MMIO 16550 or PL011 in SPCR: not driven yet; COM1 is
                // what QEMU and the clouds' x86 machines also wire up.
                _ => {}
            }
        }
    }
    let (_, uart) = COM.iter().find(|(b, _)| *b == base).unwrap_or(&COM[0]);
    uart.init_default().ok()?;
    Some(uart)
}

fn rsdp(boot: &BootInfo) -> Option<u64> {
    boot.rsdp
        .filter(|&r| r != 0)
        .or_else(|| bootinfo::find_rsdp_in_bios_area(&PhysMem))
}

// ---- CPUID signals ----

fn cpuid_signals(s: &mut Signals) {
    s.cpuid_hypervisor_bit = arch::cpuid(1, 0).ecx & (1 << 31) != 0;
    for base in (0x4000_0000u32..=0x4000_ff00).step_by(0x100) {
        let r = arch::cpuid(base, 0);
        // A real range names its own highest leaf inside itself; bare metal
        // echoes the highest basic leaf instead.
        if r.eax < base || r.eax > base + 0xff {
            continue;
        }
        let mut signature = [0u8; 12];
        signature[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        signature[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        signature[8..12].copy_from_slice(&r.edx.to_le_bytes());
        if signature.iter().all(|&b| b == 0) {
            continue;
        }
        let extra = if &signature == b"Microsoft Hv" && r.eax >= base + 3 {
            arch::cpuid(base + 3, 0).eax
        } else {
            0
        };
        if s.cpuid_leaves
            .try_push(CpuidLeaf {
                base,
                max_leaf: r.eax,
                signature,
                extra,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Whether a PCI host bridge answers at 00:00.0 (configuration mechanism 1).
fn pci_present() -> bool {
    // SAFETY: 0xCF8/0xCFC are the PCI configuration address/data ports;
    // selecting 00:00.0 offset 0 and reading the vendor id has no side
    // effects. Without PCI the read floats to all-ones.
    let id = unsafe {
        arch::port::outl(0xcf8, 0x8000_0000);
        arch::port::inl(0xcfc)
    };
    id & 0xffff != 0xffff
}

const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
const FW_CFG_SIGNATURE: u16 = 0x00;
const FW_CFG_NB_CPUS: u16 = 0x05;

/// Reads `N` bytes of QEMU fw_cfg item `key` (legacy I/O interface).
fn fw_cfg_read<const N: usize>(key: u16) -> [u8; N] {
    let mut out = [0u8; N];
    // SAFETY: selecting a fw_cfg item and reading its bytes only moves
    // fw_cfg's read cursor; without fw_cfg the ports float to all-ones.
    unsafe {
        arch::port::outw(FW_CFG_SELECTOR, key);
        for b in &mut out {
            *b = arch::port::inb(FW_CFG_DATA);
        }
    }
    out
}

/// Whether QEMU's fw_cfg device answers (its signature reads "QEMU"):
/// present on every QEMU x86 machine, microvm included, never on Firecracker.
fn qemu_fw_cfg_present() -> bool {
    &fw_cfg_read::<4>(FW_CFG_SIGNATURE) == b"QEMU"
}

// ---- Clock ----

/// TSC frequency from CPUID 0x15 (crystal × ratio), when complete.
fn tsc_from_cpuid_15h() -> Option<u64> {
    if arch::cpuid(0, 0).eax < 0x15 {
        return None;
    }
    let l = arch::cpuid(0x15, 0);
    (l.eax != 0 && l.ebx != 0 && l.ecx != 0)
        .then(|| u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax))
}

/// CPUID 0x16 EAX: the processor base frequency in MHz (coarse).
fn tsc_from_cpuid_16h() -> Option<u64> {
    if arch::cpuid(0, 0).eax < 0x16 {
        return None;
    }
    let mhz = arch::cpuid(0x16, 0).eax & 0xffff;
    (mhz != 0).then(|| u64::from(mhz) * 1_000_000)
}

/// The hypervisor timing leaf at base + 0x10 (EAX = TSC kHz): VMware's
/// convention, also offered by VirtualBox and by KVM/QEMU with
/// `vmware-cpuid-freq`. Other vendors use base + 0x10 for something else, so
/// only these signatures are trusted.
fn tsc_from_hypervisor_leaf(s: &Signals) -> Option<u64> {
    let leaf = s.cpuid_leaves.first()?;
    let trusted: [&[u8; 12]; 3] = [b"VMwareVMware", b"VBoxVBoxVBox", b"KVMKVMKVM\0\0\0"];
    if !trusted.contains(&&leaf.signature) || leaf.max_leaf < leaf.base + 0x10 {
        return None;
    }
    let khz = arch::cpuid(leaf.base + 0x10, 0).eax;
    (khz != 0).then(|| u64::from(khz) * 1000)
}

/// Xen's time leaf (base + 3, sub-leaf 0): ECX = the guest TSC in kHz.
fn tsc_from_xen_leaf(xen_base: u32, s: &Signals) -> Option<u64> {
    let leaf = s.cpuid_leaves.iter().find(|l| l.base == xen_base)?;
    if leaf.max_leaf < xen_base + 3 {
        return None;
    }
    let khz = arch::cpuid(xen_base + 3, 0).ecx;
    (khz != 0).then(|| u64::from(khz) * 1000)
}

/// `struct pvclock_vcpu_time_info`, written by the hypervisor.
#[repr(C, align(64))]
struct PvclockPage(UnsafeCell<[u32; 8]>);
// SAFETY: only the boot CPU touches it, during `init`.
unsafe impl Sync for PvclockPage {}
static PVCLOCK: PvclockPage = PvclockPage(UnsafeCell::new([0; 8]));

const KVM_FEATURE_CLOCKSOURCE: u32 = 1 << 0;
const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
const MSR_KVM_SYSTEM_TIME: u32 = 0x12;
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;

/// The TSC frequency kvmclock implies (`tsc_to_system_mul`, `tsc_shift`).
/// Only with KVM's CPUID leaf present; the clock is switched off again after
/// reading (the kernel keeps using the TSC at that frequency).
fn tsc_from_kvmclock(kvm_base: u32) -> Option<u64> {
    let features = arch::cpuid(kvm_base + 1, 0).eax;
    let msr = if features & KVM_FEATURE_CLOCKSOURCE2 != 0 {
        MSR_KVM_SYSTEM_TIME_NEW
    } else if features & KVM_FEATURE_CLOCKSOURCE != 0 {
        MSR_KVM_SYSTEM_TIME
    } else {
        return None;
    };
    let va = PVCLOCK.0.get() as usize;
    let pa = arch::mm::virt_to_phys(va)?;
    let words = PVCLOCK.0.get() as *const u32;
    // SAFETY: the MSR exists (KVM advertised it); we hand KVM the physical
    // address of our 64-byte-aligned static (bit 0 = enable), read it, then
    // disable it so KVM stops writing there.
    let (mul, shift) = unsafe {
        arch::write_msr(msr, pa | 1);
        let mut tries = 0;
        let result = loop {
            let v0 = core::ptr::read_volatile(words);
            let mul = core::ptr::read_volatile(words.add(6));
            let shift = (core::ptr::read_volatile(words.add(7)) & 0xff) as u8 as i8;
            let v1 = core::ptr::read_volatile(words);
            tries += 1;
            if (v0 == v1 && v0 & 1 == 0 && mul != 0) || tries > 1000 {
                break (mul, shift);
            }
        };
        arch::write_msr(msr, 0);
        result
    };
    if mul == 0 || !(-32..=32).contains(&shift) {
        return None;
    }
    // ns = (ticks << shift) * mul >> 32  ⇒  hz = 1e9 * 2^32 / (mul * 2^shift)
    let num = 1_000_000_000u128 << 32;
    let den = u128::from(mul);
    let hz = if shift >= 0 {
        num / (den << shift)
    } else {
        (num << -shift) / den
    };
    u64::try_from(hz).ok().filter(|&hz| hz > 1_000_000)
}

/// Measures the TSC against a reference counter `read` (masked to `mask`)
/// ticking at `ref_hz`, over ~10 ms. `None` if the reference does not move.
fn calibrate(read: &dyn Fn() -> u64, mask: u64, ref_hz: u64) -> Option<u64> {
    // Every reference here ticks at 1 MHz or more, so a missing device (reads
    // float to a constant) shows within a few thousand reads...
    const EDGE_READS: u32 = 100_000;
    // ...and a moving one reaches 10 ms long before this many reads.
    const MAX_READS: u32 = 50_000_000;
    let target = (ref_hz / 100).max(1);
    // Start on a reference edge.
    let first = read() & mask;
    let mut reads = 0;
    let r0 = loop {
        let r = read() & mask;
        if r != first {
            break r;
        }
        reads += 1;
        if reads > EDGE_READS {
            return None;
        }
    };
    let t0 = arch::cpu::counter();
    let elapsed = loop {
        let e = (read().wrapping_sub(r0)) & mask;
        if e >= target {
            break e;
        }
        reads += 1;
        if reads > MAX_READS {
            return None;
        }
    };
    let t1 = arch::cpu::counter();
    let hz = u128::from(t1.wrapping_sub(t0)) * u128::from(ref_hz) / u128::from(elapsed);
    u64::try_from(hz).ok().filter(|&hz| hz > 1_000_000)
}

fn tsc_from_hpet(base: u64) -> Option<u64> {
    const GCAP_ID: usize = 0x0;
    const GEN_CONF: usize = 0x10;
    const MAIN_COUNTER: usize = 0xf0;
    let va = arch::mm::map_mmio(base, 0x400).ok()?;
    let reg = |off: usize| -> *mut u64 { (va + off) as *mut u64 };
    // SAFETY: `va` maps the HPET's 1 KiB register block uncached; the
    // offsets are the HPET's capability, configuration and counter registers.
    let period_fs = unsafe { core::ptr::read_volatile(reg(GCAP_ID)) } >> 32;
    // The spec caps the period at 100 ns; 0 or larger is not an HPET.
    if period_fs == 0 || period_fs > 100_000_000 {
        return None;
    }
    // SAFETY: as above; setting ENABLE_CNF starts the main counter.
    unsafe {
        let conf = core::ptr::read_volatile(reg(GEN_CONF));
        core::ptr::write_volatile(reg(GEN_CONF), conf | 1);
    }
    let ref_hz = 1_000_000_000_000_000 / period_fs;
    // Read the low 32 bits only: 32-bit HPETs exist.
    calibrate(
        // SAFETY: as above, a read of the main counter.
        &|| unsafe { core::ptr::read_volatile(reg(MAIN_COUNTER) as *const u32) } as u64,
        0xffff_ffff,
        ref_hz,
    )
}

fn tsc_from_pm_timer(port: u16, is_32bit: bool) -> Option<u64> {
    const PM_TIMER_HZ: u64 = 3_579_545;
    let mask = if is_32bit { 0xffff_ffff } else { 0x00ff_ffff };
    // SAFETY: the FADT names this port as the ACPI PM timer; reads only.
    calibrate(
        &|| u64::from(unsafe { arch::port::inl(port) }),
        mask,
        PM_TIMER_HZ,
    )
}

/// The last resort: the PIT. Channel 0 is put in mode 2 (rate generator,
/// reload 65536) and its count read back with latch commands, so this needs
/// neither the speaker gate port 0x61 (absent on `microvm`) nor an
/// interrupt (IRQ 0 stays masked).
fn tsc_from_pit() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    // SAFETY: ports 0x43 (PIT mode) and 0x40 (channel 0 data) program only
    // the PIT's channel 0, whose interrupt is masked at the PIC and IOAPIC.
    unsafe {
        arch::port::outb(0x43, 0x34);
        arch::port::outb(0x40, 0);
        arch::port::outb(0x40, 0);
    }
    let read = || {
        // SAFETY: latch channel 0 (command 0x00), then read low/high bytes.
        let (lo, hi) = unsafe {
            arch::port::outb(0x43, 0x00);
            (arch::port::inb(0x40), arch::port::inb(0x40))
        };
        // The count runs down; turn it into an up-counter modulo 2^16.
        0x1_0000 - u64::from(u16::from_le_bytes([lo, hi]))
    };
    let hz = calibrate(&read, 0xffff, PIT_HZ);
    // SAFETY: as above; mode 0 with a full count counts down once and
    // stops, so the PIT does not keep ticking after calibration.
    unsafe {
        arch::port::outb(0x43, 0x30);
        arch::port::outb(0x40, 0xff);
        arch::port::outb(0x40, 0xff);
    }
    hz
}

fn choose_clock(s: &Signals, d: &detect::Detection, fw: &Firmware) -> (&'static str, u64) {
    if let Some(hz) = tsc_from_cpuid_15h() {
        return ("tsc(cpuid-15h)", hz);
    }
    if let Some(hz) = tsc_from_hypervisor_leaf(s) {
        return ("tsc(cpuid-40000010h)", hz);
    }
    if let Some(hz) = d.xen_leaf.and_then(|base| tsc_from_xen_leaf(base, s)) {
        return ("tsc(xen-cpuid)", hz);
    }
    if let Some(hz) = d.kvm_leaf.and_then(tsc_from_kvmclock) {
        return ("kvmclock", hz);
    }
    if let Some(hz) = fw.hpet.and_then(tsc_from_hpet) {
        return ("tsc(hpet)", hz);
    }
    if let Some(hz) = fw
        .pm_timer
        .and_then(|(port, wide)| tsc_from_pm_timer(port, wide))
    {
        return ("tsc(pmtimer)", hz);
    }
    if let Some(hz) = tsc_from_cpuid_16h() {
        return ("tsc(cpuid-16h)", hz);
    }
    if let Some(hz) = tsc_from_pit() {
        return ("tsc(pit)", hz);
    }
    // Nothing measured: assume 1 GHz so time still advances, and say so.
    ("tsc(assumed-1ghz)", 1_000_000_000)
}

// ---- CPUs ----

/// The CPU count when there is no MADT: QEMU's fw_cfg says how many CPUs it
/// started; otherwise CPUID's topology (0x1F, else 0xB, else leaf 1) gives
/// the logical CPUs of *this package*, which undercounts multi-socket VMs.
fn cpus_without_madt() -> (u32, &'static str) {
    if qemu_fw_cfg_present() {
        let n = u16::from_le_bytes(fw_cfg_read::<2>(FW_CFG_NB_CPUS));
        if n != 0 {
            return (u32::from(n), "fw-cfg");
        }
    }
    let max = arch::cpuid(0, 0).eax;
    for (leaf, name) in [(0x1f, "cpuid-1fh"), (0xb, "cpuid-bh")] {
        if max < leaf {
            continue;
        }
        let mut count = 0;
        for sub in 0..8 {
            let r = arch::cpuid(leaf, sub);
            if (r.ecx >> 8) & 0xff == 0 {
                break;
            }
            count = r.ebx & 0xffff;
        }
        if count != 0 {
            return (count, name);
        }
    }
    let l1 = arch::cpuid(1, 0);
    if l1.edx & (1 << 28) != 0 {
        let n = (l1.ebx >> 16) & 0xff;
        if n != 0 {
            return (n, "cpuid-1h");
        }
    }
    (1, "default")
}

// ---- SMBIOS ----

/// SMBIOS type 1 strings, from the entry point in the BIOS area (SeaBIOS,
/// qboot and clouds' BIOS boots put it there; PVH's start_info names none).
fn read_smbios() -> Option<crate::smbios::SystemInfo> {
    match crate::smbios::find_and_parse(&PhysMem)? {
        Ok(info) => Some(info),
        Err(e) => {
            log::warn!("smbios: unreadable error={}", e.message());
            None
        }
    }
}

// ---- Power ----

fn configure_power(fw: &Firmware) {
    match fw.acpi_sleep {
        Some(sleep @ AcpiSleep::Pm1aControl { port, slp_typ }) => {
            arch::power::set_acpi_sleep(sleep);
            log::info!("power: off=acpi-pm1a port={port:#x} slp_typ={slp_typ}");
        }
        Some(
            sleep @ AcpiSleep::SleepControlReg {
                address, slp_typ, ..
            },
        ) => {
            arch::power::set_acpi_sleep(sleep);
            log::info!("power: off=acpi-sleep-reg address={address:#x} slp_typ={slp_typ}");
        }
        None => log::info!("power: off=halt (no ACPI S5)"),
    }
    if let Some(r) = fw.acpi_reset {
        arch::power::set_acpi_reset(r);
    }
}

// ---- Interrupt controllers ----

const DEFAULT_LAPIC: u64 = 0xfee0_0000;
const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

fn init_irq(fw: &Firmware) {
    let default_ioapic = [(0u8, DEFAULT_IOAPIC, 0u32)];
    let (ctrl, source) = match &fw.interrupts {
        Some(InterruptModel::X86 {
            lapic_phys,
            ioapics,
            isa_overrides,
        }) => (
            InterruptControllers::X86 {
                lapic_phys: *lapic_phys,
                ioapics,
                isa_overrides,
            },
            "madt",
        ),
        // No MADT (microvm with acpi=off): the PC's fixed addresses.
        _ => (
            InterruptControllers::X86 {
                lapic_phys: DEFAULT_LAPIC,
                ioapics: &default_ioapic,
                isa_overrides: &[],
            },
            "default",
        ),
    };
    let InterruptControllers::X86 {
        lapic_phys,
        ioapics,
        ..
    } = ctrl
    else {
        unreachable!("built as X86 above");
    };
    match arch::irq::init(&ctrl) {
        Ok(()) => log::info!(
            "irq: source={source} lapic={} lapic_phys={lapic_phys:#x} ioapics={}",
            arch::irq::lapic_mode(),
            ioapics.len()
        ),
        Err(e) => log::warn!("irq: init failed source={source} error={e:?}"),
    }
}

// ---- Wall clock ----

/// Port I/O for the CMOS RTC: only its index and data ports.
struct CmosPorts;

impl PortIo for CmosPorts {
    fn inb(&self, port: u16) -> u8 {
        if port != rtc::cmos::DATA_PORT {
            return 0xff;
        }
        // SAFETY: reading the CMOS data port returns the indexed RTC/NVRAM
        // byte; it has no other side effect.
        unsafe { arch::port::inb(port) }
    }
    fn outb(&self, port: u16, value: u8) {
        if port != rtc::cmos::INDEX_PORT {
            return;
        }
        // SAFETY: writing the CMOS index port selects the register the next
        // data-port access reaches (the driver keeps bit 7, NMI mask, clear).
        unsafe { arch::port::outb(port, value) }
    }
}

/// Why there is no wall clock (the `reason=` of `wall_clock=none`).
#[derive(Debug)]
enum NoWallClock {
    /// The FADT's IAPC_BOOT_ARCH says "CMOS RTC not present".
    FadtSaysNoCmos,
    Cmos(rtc::RtcError),
}

impl core::fmt::Display for NoWallClock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoWallClock::FadtSaysNoCmos => f.write_str("fadt-says-no-cmos"),
            NoWallClock::Cmos(e) => write!(f, "cmos-{e:?}"),
        }
    }
}

/// Reads the CMOS RTC once and logs the `platform: wall_clock=` line.
fn read_wall_clock(fw: &Firmware) -> Option<crate::WallClock> {
    let read = || -> Result<crate::WallClock, NoWallClock> {
        if fw.cmos_rtc_absent {
            return Err(NoWallClock::FadtSaysNoCmos);
        }
        let secs = Cmos::new(CmosPorts, fw.rtc_century)
            .read_unix_seconds()
            .map_err(NoWallClock::Cmos)?;
        Ok(crate::WallClock {
            source: "cmos",
            unix_seconds: secs,
            counter: arch::cpu::counter(),
        })
    };
    match read() {
        Ok(w) => {
            log::info!(
                "platform: wall_clock={} unix={} utc={} century_reg={}",
                w.source,
                w.unix_seconds,
                rtc::Iso8601(w.unix_seconds),
                fw.rtc_century.is_some()
            );
            Some(w)
        }
        Err(e) => {
            log::warn!("platform: wall_clock=none reason={e}");
            None
        }
    }
}

/// Works out where we are and brings up interrupts, the clock and power-off.
pub fn init(boot: &BootInfo) -> Platform {
    let mut fw = Firmware::default();
    if let Some(rsdp) = rsdp(boot) {
        if let Err(e) = firmware::acpi::read(rsdp, &PhysMem, &mut fw) {
            log::warn!("acpi: unreadable rsdp={rsdp:#x} error={e:?}");
        }
    }
    fw.smbios = read_smbios();

    let mut signals = Signals::default();
    cpuid_signals(&mut signals);
    signals.vmware_backdoor = arch::vmware_backdoor_getversion().is_some();
    if let Some(smbios) = &fw.smbios {
        signals.smbios_manufacturer = Some(smbios.manufacturer);
        signals.smbios_product = Some(smbios.product);
    }
    signals.acpi_oem_id = fw.acpi_oem_id;
    signals.fadt_hypervisor_vendor = fw.fadt_hypervisor_vendor;
    // Firecracker's x86 machine: no PCI, no SMBIOS, no QEMU fw_cfg (and no
    // ACPI before Firecracker 1.8, whose ACPI says "FIRECK" itself).
    signals.firecracker_shape =
        !fw.acpi && fw.smbios.is_none() && !pci_present() && !qemu_fw_cfg_present();
    let detection = detect::decide(&signals);
    log::info!("{detection}");

    init_irq(&fw);
    let (clock, hz) = choose_clock(&signals, &detection, &fw);
    arch::timer::set_counter_frequency(hz);
    log::info!(
        "clock: source={clock} tsc_hz={hz} timer={}",
        arch::timer::name()
    );
    configure_power(&fw);

    let cpus = if fw.cpus.is_empty() {
        let (n, source) = cpus_without_madt();
        log::info!("cpus: count={n} source={source}");
        if source == "fw-cfg" {
            // No MADT to list APIC ids: QEMU numbers them 0..n-1 for the
            // topologies it builds from a plain `-smp n`, so list those (the
            // scheduler starts them; one that does not answer is reported).
            let boot_id = u64::from(arch::cpuid(1, 0).ebx >> 24);
            for id in 0..u64::from(n).min(firmware::MAX_CPUS as u64) {
                let _ = fw.cpus.try_push(firmware::Cpu {
                    hw_id: id,
                    boot: id == boot_id,
                });
            }
            log::info!(
                "cpus: apic_ids=0..{} source=assumed-qemu-numbering",
                n.saturating_sub(1)
            );
        }
        n
    } else {
        log::info!("cpus: count={} source=madt", fw.cpus.len());
        fw.cpus.len() as u32
    };
    let firmware = if fw.acpi { "acpi" } else { "none" };
    let wall_clock_at_boot = read_wall_clock(&fw);
    Platform {
        arch: "x86_64",
        hypervisor: detection.hypervisor,
        firmware,
        clock,
        counter_hz: hz,
        cpus,
        mem_bytes: boot.usable_bytes(),
        firmware_info: fw,
        wall_clock_at_boot,
    }
}
