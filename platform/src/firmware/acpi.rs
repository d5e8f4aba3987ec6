//! ACPI tables via the `acpi` crate (no `alloc` feature: we walk MADT and
//! MCFG entries ourselves, bounds-checked, instead of using `PlatformInfo`,
//! which needs nightly's `allocator_api`). Fills MADT → CPUs and interrupt
//! controllers, FADT → power-off/reset/PM timer/hypervisor vendor, MCFG →
//! ECAM, SPCR → console, HPET → base.
//!
//! The crate reads tables through raw pointers, so before handing it the
//! RSDP we check that the root table and every table it lists lie in memory
//! [`PhysMemory`] can read; the crate never sees an address we have not
//! checked. Everything we parse by hand is read from byte slices with
//! explicit bounds.
//!
//! `\_S5` (the S5 sleep type) lives in the DSDT's AML; rather than run an AML
//! interpreter we scan the DSDT bytes for the `_S5_` name followed by a
//! package and read its first two integer elements (see [`find_s5`]). That
//! covers the encodings firmware uses in practice (QEMU, SeaBIOS, OVMF,
//! Hyper-V, VMware); a `_S5` built by a method is not found, and power-off
//! then falls back to the next mechanism.

use super::{AcpiReset, AcpiSleep, Cpu, Ecam, Firmware, InterruptModel, Uart, UartKind};
use crate::bootinfo::PhysMemory;
use ::acpi::address::{AccessSize, AddressSpace, GenericAddress};
use ::acpi::fadt::Fadt;
use ::acpi::madt::Madt;
use ::acpi::mcfg::Mcfg;
use ::acpi::spcr::{Spcr, SpcrInterfaceType};
use ::acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping};
use arrayvec::{ArrayString, ArrayVec};
use core::ptr::NonNull;

/// Size of an ACPI table header (signature .. creator revision).
const SDT_HEADER: usize = 36;
/// Offset of the FADT "hypervisor vendor identity" (ACPI 6.0+), 8 bytes.
const FADT_HYPERVISOR_VENDOR: usize = 268;
/// Offset of the FADT `CENTURY` byte: CMOS index of the RTC century register.
const FADT_CENTURY: usize = 108;
/// Offset of the FADT `IAPC_BOOT_ARCH` flags (16 bits).
const FADT_IAPC_BOOT_ARCH: usize = 109;
/// `IAPC_BOOT_ARCH` bit 5 (ACPI 5.0A+): "CMOS RTC Not Present".
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
/// DSDT + SSDTs recorded for [`super::aml`].
pub const MAX_AML_TABLES: usize = 16;
/// Largest table we accept; real ones are far smaller.
const MAX_TABLE: usize = 16 << 20;

/// Why the ACPI tables could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiReadError {
    /// A table (named) lies outside readable memory or has a bad length.
    Unreadable(&'static str),
    /// The RSDP or root table failed the `acpi` crate's checks.
    BadRoot,
    /// A required table is missing or failed validation.
    BadTable(&'static str),
}

/// `acpi::AcpiHandler` over [`PhysMemory`]: a "mapping" is the byte view
/// the platform already has.
#[derive(Clone, Copy)]
struct Handler<'a>(&'a dyn PhysMemory);

impl AcpiHandler for Handler<'_> {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        // `read` pre-checks every table the crate can reach; failing here
        // means firmware memory changed under us.
        let bytes = self
            .0
            .read(pa as u64, size)
            .expect("acpi: crate asked for a region that was checked readable");
        let ptr = NonNull::new(bytes.as_ptr() as *mut T).expect("acpi: null mapping");
        // SAFETY: `bytes` is `size` readable bytes at `pa` that stay readable
        // (firmware tables in the direct map / a recorded image).
        unsafe { PhysicalMapping::new(pa, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The whole table at `pa` (header length), if readable and sane.
fn table_bytes<'m>(
    mem: &'m dyn PhysMemory,
    pa: u64,
    what: &'static str,
) -> Result<&'m [u8], AcpiReadError> {
    let header = mem
        .read(pa, SDT_HEADER)
        .ok_or(AcpiReadError::Unreadable(what))?;
    let len = u32_at(header, 4).ok_or(AcpiReadError::Unreadable(what))? as usize;
    if !(SDT_HEADER..=MAX_TABLE).contains(&len) {
        return Err(AcpiReadError::Unreadable(what));
    }
    mem.read(pa, len).ok_or(AcpiReadError::Unreadable(what))
}

/// Checks the RSDP, the root table and every table it lists are readable,
/// so the `acpi` crate only touches checked memory. Returns the OEM id;
/// records the SSDTs' (address, length) in `ssdts`.
fn precheck(
    rsdp: u64,
    mem: &dyn PhysMemory,
    ssdts: &mut ArrayVec<(u64, u32), MAX_AML_TABLES>,
) -> Result<ArrayString<8>, AcpiReadError> {
    let r = mem
        .read(rsdp, 20)
        .ok_or(AcpiReadError::Unreadable("RSDP"))?;
    if &r[0..8] != b"RSD PTR " {
        return Err(AcpiReadError::BadRoot);
    }
    let mut oem = ArrayString::new();
    for &c in &r[9..15] {
        if c.is_ascii() && !c.is_ascii_control() {
            oem.push(c as char);
        }
    }
    let revision = r[15];
    let (root, entry_size) = if revision >= 2 {
        let r = mem
            .read(rsdp, 36)
            .ok_or(AcpiReadError::Unreadable("RSDP"))?;
        (u64_at(r, 24).unwrap_or(0), 8)
    } else {
        (u64::from(u32_at(r, 16).unwrap_or(0)), 4)
    };
    let root = table_bytes(mem, root, "XSDT/RSDT")?;
    let entries = &root[SDT_HEADER..];
    for e in entries.chunks_exact(entry_size) {
        let pa = if entry_size == 8 {
            u64_at(e, 0).unwrap_or(0)
        } else {
            u64::from(u32_at(e, 0).unwrap_or(0))
        };
        let t = table_bytes(mem, pa, "a table listed in the XSDT/RSDT")?;
        if &t[0..4] == b"SSDT" {
            let _ = ssdts.try_push((pa, t.len() as u32));
        }
    }
    Ok(oem)
}

/// Reads the ACPI tables rooted at the RSDP at `rsdp` into `fw`.
pub fn read(rsdp: u64, mem: &dyn PhysMemory, fw: &mut Firmware) -> Result<(), AcpiReadError> {
    let mut ssdts = ArrayVec::new();
    let oem = precheck(rsdp, mem, &mut ssdts)?;
    // SAFETY: `precheck` verified that the RSDP, the root table and every
    // table it lists are readable through `mem`, which is all the crate
    // dereferences besides the DSDT (checked before `dsdt()` below).
    let tables = unsafe { AcpiTables::from_rsdp(Handler(mem), rsdp as usize) }
        .map_err(|_| AcpiReadError::BadRoot)?;
    fw.acpi = true;
    fw.acpi_oem_id = Some(oem);

    if let Ok(madt) = tables.find_table::<Madt>() {
        let bytes = table_bytes(mem, madt.physical_start() as u64, "MADT")?;
        parse_madt(bytes, fw);
    }
    if let Ok(fadt) = tables.find_table::<Fadt>() {
        let bytes = table_bytes(mem, fadt.physical_start() as u64, "FADT")?;
        read_fadt(&fadt, bytes, fw);
        let dsdt = fadt
            .dsdt_address()
            .ok()
            .and_then(|pa| table_bytes(mem, pa as u64, "DSDT").ok());
        // The AML for INTx routing (firmware::aml), read only when needed.
        if let (Some(d), Ok(pa)) = (dsdt, fadt.dsdt_address()) {
            fw.aml_tables.clear();
            let _ = fw.aml_tables.try_push((pa as u64, d.len() as u32));
            for t in &ssdts {
                let _ = fw.aml_tables.try_push(*t);
            }
        }
        if let (Some(dsdt), Some(sleep)) = (dsdt, fw.acpi_sleep.as_mut()) {
            let slp_typ = find_s5(&dsdt[SDT_HEADER..]).map(|(a, _b)| a);
            match (slp_typ, sleep) {
                (Some(t), AcpiSleep::Pm1aControl { slp_typ, .. }) => *slp_typ = t,
                (Some(t), AcpiSleep::SleepControlReg { slp_typ, .. }) => *slp_typ = t,
                (None, _) => fw.acpi_sleep = None,
            }
        } else {
            fw.acpi_sleep = None;
        }
    }
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        let bytes = table_bytes(mem, mcfg.physical_start() as u64, "MCFG")?;
        parse_mcfg(bytes, fw);
    }
    if let Ok(spcr) = tables.find_table::<Spcr>() {
        fw.console = spcr_uart(&spcr);
    }
    if let Ok(hpet) = HpetInfo::new(&tables) {
        fw.hpet = Some(hpet.base_address as u64).filter(|&b| b != 0);
    }
    Ok(())
}

/// MADT entries (bounds-checked walk): local APIC / x2APIC → CPUs (enabled
/// ones; the first listed is the boot CPU, as ACPI asks firmware to order
/// them), IOAPICs, ISA overrides, the LAPIC address override.
pub fn parse_madt(b: &[u8], fw: &mut Firmware) {
    let mut lapic_phys = u64::from(u32_at(b, SDT_HEADER).unwrap_or(0xfee0_0000));
    let mut ioapics = ArrayVec::new();
    let mut isa_overrides = ArrayVec::new();
    let mut off = SDT_HEADER + 8;
    let add_cpu = |fw: &mut Firmware, hw_id: u64| {
        if fw.cpus.iter().any(|c| c.hw_id == hw_id) {
            return;
        }
        let boot = fw.cpus.is_empty();
        let _ = fw.cpus.try_push(Cpu { hw_id, boot });
    };
    while off + 2 <= b.len() {
        let (kind, len) = (b[off], usize::from(b[off + 1]));
        if len < 2 || off + len > b.len() {
            break;
        }
        let e = &b[off..off + len];
        match kind {
            0 if len >= 8 => {
                let flags = u32_at(e, 4).unwrap_or(0);
                if flags & 1 != 0 {
                    add_cpu(fw, u64::from(e[3]));
                }
            }
            1 if len >= 12 => {
                let addr = u64::from(u32_at(e, 4).unwrap_or(0));
                let gsi_base = u32_at(e, 8).unwrap_or(0);
                let _ = ioapics.try_push((e[2], addr, gsi_base));
            }
            2 if len >= 10 => {
                let gsi = u32_at(e, 4).unwrap_or(0);
                let flags = u16_at(e, 8).unwrap_or(0);
                // MPS INTI flags: polarity bits 0-1 (3 = active low),
                // trigger bits 2-3 (3 = level); 0 = bus default (ISA: high, edge).
                let active_low = flags & 0b11 == 0b11;
                let level = (flags >> 2) & 0b11 == 0b11;
                if e[2] == 0 && e[3] < 16 {
                    let _ = isa_overrides.try_push((e[3], gsi, active_low, level));
                }
            }
            5 if len >= 12 => {
                lapic_phys = u64_at(e, 4).unwrap_or(lapic_phys);
            }
            9 if len >= 16 => {
                let flags = u32_at(e, 8).unwrap_or(0);
                if flags & 1 != 0 {
                    add_cpu(fw, u64::from(u32_at(e, 4).unwrap_or(0)));
                }
            }
            _ => {}
        }
        off += len;
    }
    fw.interrupts = Some(InterruptModel::X86 {
        lapic_phys,
        ioapics,
        isa_overrides,
    });
}

fn fadt_sleep(fadt: &Fadt) -> Option<AcpiSleep> {
    let flags = fadt.flags;
    if flags.system_is_hw_reduced_acpi() {
        let reg = fadt.sleep_control_register().ok().flatten()?;
        return Some(AcpiSleep::SleepControlReg {
            address: reg.address,
            is_port: matches!(reg.address_space, AddressSpace::SystemIo),
            slp_typ: 0,
        });
    }
    let pm1a = fadt.pm1a_control_block().ok()?;
    match pm1a.address_space {
        AddressSpace::SystemIo if pm1a.address != 0 => Some(AcpiSleep::Pm1aControl {
            port: u16::try_from(pm1a.address).ok()?,
            slp_typ: 0,
        }),
        _ => None,
    }
}

fn read_fadt(fadt: &Fadt, bytes: &[u8], fw: &mut Firmware) {
    fw.acpi_sleep = fadt_sleep(fadt);
    let flags = fadt.flags;
    if flags.supports_system_reset_via_fadt() {
        if let Ok(reg) = fadt.reset_register() {
            let is_port = matches!(reg.address_space, AddressSpace::SystemIo);
            let is_mem = matches!(reg.address_space, AddressSpace::SystemMemory);
            if (is_port || is_mem) && reg.address != 0 {
                fw.acpi_reset = Some(AcpiReset {
                    address: reg.address,
                    is_port,
                    value: fadt.reset_value,
                });
            }
        }
    }
    if let Ok(Some(pm)) = fadt.pm_timer_block() {
        if matches!(pm.address_space, AddressSpace::SystemIo) {
            if let Ok(port) = u16::try_from(pm.address) {
                if port != 0 {
                    fw.pm_timer = Some((port, flags.pm_timer_is_32_bit()));
                }
            }
        }
    }
    fw.fadt_hypervisor_vendor = u64_at(bytes, FADT_HYPERVISOR_VENDOR).filter(|&v| v != 0);
    fw.rtc_century = bytes.get(FADT_CENTURY).copied().filter(|&c| c != 0);
    fw.cmos_rtc_absent =
        u16_at(bytes, FADT_IAPC_BOOT_ARCH).is_some_and(|f| f & IAPC_CMOS_RTC_NOT_PRESENT != 0);
}

/// MCFG: 16-byte allocation entries after an 8-byte reserved field.
pub fn parse_mcfg(b: &[u8], fw: &mut Firmware) {
    let entries = b.get(SDT_HEADER + 8..).unwrap_or(&[]);
    for e in entries.chunks_exact(16) {
        let base = u64_at(e, 0).unwrap_or(0);
        if base == 0 {
            continue;
        }
        let _ = fw.ecam.try_push(Ecam {
            base,
            segment: u16_at(e, 8).unwrap_or(0),
            bus_start: e[10],
            bus_end: e[11],
        });
    }
}

fn spcr_uart(spcr: &Spcr) -> Option<Uart> {
    let reg: GenericAddress = spcr.base_address()?.ok()?;
    if reg.address == 0 {
        return None;
    }
    let stride = match reg.access_size {
        AccessSize::DWordAccess => 4,
        _ if reg.bit_width == 32 => 4,
        _ => 1,
    };
    let kind = match (spcr.interface_type(), reg.address_space) {
        (SpcrInterfaceType::Full16550 | SpcrInterfaceType::Full16450, AddressSpace::SystemIo) => {
            UartKind::Ns16550Port
        }
        (
            SpcrInterfaceType::Full16550 | SpcrInterfaceType::Full16450,
            AddressSpace::SystemMemory,
        ) => UartKind::Ns16550Mmio,
        (
            SpcrInterfaceType::ArmPL011
            | SpcrInterfaceType::ArmSBSAGeneric
            | SpcrInterfaceType::ArmSBSAGeneric32bit,
            AddressSpace::SystemMemory,
        ) => UartKind::Pl011,
        _ => return None,
    };
    Some(Uart {
        kind,
        base: reg.address,
        stride,
    })
}

/// Finds `Name(_S5_, Package(){ SLP_TYPa, SLP_TYPb, ... })` in AML bytes and
/// returns (SLP_TYPa, SLP_TYPb). Integer elements may be `ZeroOp`, `OneOp`,
/// or `BytePrefix`/`WordPrefix`/`DWordPrefix` constants (low 3 bits are used).
pub fn find_s5(aml: &[u8]) -> Option<(u8, u8)> {
    let mut i = 0;
    while i + 5 <= aml.len() {
        if &aml[i..i + 4] == b"_S5_" && aml[i + 4] == 0x12 {
            let pkg = &aml[i + 5..];
            // PkgLength: bits 7-6 of the lead byte = number of extra bytes.
            let lead = *pkg.first()?;
            let mut p = 1 + usize::from(lead >> 6);
            p += 1; // NumElements
            let (a, used) = aml_integer(pkg.get(p..)?)?;
            let (b, _) = aml_integer(pkg.get(p + used..)?).unwrap_or((a, 0));
            return Some(((a & 7) as u8, (b & 7) as u8));
        }
        i += 1;
    }
    None
}

/// One AML integer constant: (value, bytes used).
fn aml_integer(b: &[u8]) -> Option<(u64, usize)> {
    match *b.first()? {
        0x00 => Some((0, 1)),
        0x01 => Some((1, 1)),
        0x0a => Some((u64::from(*b.get(1)?), 2)),
        0x0b => Some((u64::from(u16_at(b, 1)?), 3)),
        0x0c => Some((u64::from(u32_at(b, 1)?), 5)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootinfo::testmem::FakeMem;

    /// ACPI tables SeaBIOS (q35) and qboot (microvm) built, recorded on QEMU
    /// 10.0.2 (`-m 128 -smp 2`, the PVH probe of `testdata/pvh-probe.S`,
    /// monitor `pmemsave` of the RSDP's page and of the tables' pages).
    fn recorded(machine: &str) -> (FakeMem, u64) {
        match machine {
            "q35" => (
                FakeMem::new()
                    .with(
                        0xf5000,
                        include_bytes!("../../testdata/acpi-q35-f5000.bin").to_vec(),
                    )
                    .with(
                        0x07fe_0000,
                        include_bytes!("../../testdata/acpi-q35-7fe0000.bin").to_vec(),
                    ),
                0xf5250,
            ),
            _ => (
                FakeMem::new()
                    .with(
                        0xf4000,
                        include_bytes!("../../testdata/acpi-microvm-f4000.bin").to_vec(),
                    )
                    .with(
                        0x07ff_f000,
                        include_bytes!("../../testdata/acpi-microvm-7fff000.bin").to_vec(),
                    ),
                0xf41a0,
            ),
        }
    }

    #[test]
    fn q35_recorded_tables() {
        let (mem, rsdp) = recorded("q35");
        let mut fw = Firmware::default();
        read(rsdp, &mem, &mut fw).unwrap();
        assert!(fw.acpi);
        assert_eq!(fw.acpi_oem_id.as_deref(), Some("BOCHS "));
        let ids: Vec<u64> = fw.cpus.iter().map(|c| c.hw_id).collect();
        assert_eq!(ids, [0, 1]);
        let Some(InterruptModel::X86 {
            lapic_phys,
            ioapics,
            isa_overrides,
        }) = &fw.interrupts
        else {
            panic!("no MADT model");
        };
        assert_eq!(*lapic_phys, 0xfee0_0000);
        assert_eq!(ioapics.as_slice(), &[(0, 0xfec0_0000, 0)]);
        // IRQ 0 → GSI 2 edge; the PCI-routed ISA lines are level, active high.
        assert_eq!(isa_overrides[0], (0, 2, false, false));
        assert!(isa_overrides.contains(&(9, 9, false, true)));
        // ICH9 PM block at 0x600: PM1a_CNT 0x604, PM timer 0x608 (24-bit);
        // `\_S5` is Package { 0, 0, 0, 0 }; reset via 0xCF9 ← 0x0F.
        assert_eq!(
            fw.acpi_sleep,
            Some(AcpiSleep::Pm1aControl {
                port: 0x604,
                slp_typ: 0
            })
        );
        assert_eq!(
            fw.acpi_reset,
            Some(AcpiReset {
                address: 0xcf9,
                is_port: true,
                value: 0x0f
            })
        );
        assert_eq!(fw.pm_timer, Some((0x608, false)));
        assert_eq!(fw.hpet, Some(0xfed0_0000));
        assert_eq!(
            fw.ecam.as_slice(),
            &[Ecam {
                base: 0xb000_0000,
                segment: 0,
                bus_start: 0,
                bus_end: 0xff
            }]
        );
        assert_eq!(fw.console, None);
        assert_eq!(fw.fadt_hypervisor_vendor, None);
        // QEMU's RTC century register (hw/rtc/mc146818rtc.h RTC_CENTURY).
        assert_eq!(fw.rtc_century, Some(0x32));
        assert!(!fw.cmos_rtc_absent);
        // The DSDT (no SSDTs on q35) is recorded for the INTx router.
        assert_eq!(fw.aml_tables.as_slice(), &[(0x07fe_0040, 8540)]);
    }

    #[test]
    fn microvm_recorded_tables_are_hardware_reduced() {
        let (mem, rsdp) = recorded("microvm");
        let mut fw = Firmware::default();
        read(rsdp, &mem, &mut fw).unwrap();
        assert_eq!(fw.cpus.len(), 2);
        let Some(InterruptModel::X86 {
            ioapics,
            isa_overrides,
            ..
        }) = &fw.interrupts
        else {
            panic!("no MADT model");
        };
        assert_eq!(
            ioapics.as_slice(),
            &[(0, 0xfec0_0000, 0), (1, 0xfec1_0000, 24)]
        );
        assert!(isa_overrides.is_empty());
        // The GED's sleep control register (MMIO), `\_S5` = 5; no PM timer, no HPET.
        assert_eq!(
            fw.acpi_sleep,
            Some(AcpiSleep::SleepControlReg {
                address: 0xfea0_0200,
                is_port: false,
                slp_typ: 5
            })
        );
        assert_eq!(
            fw.acpi_reset.map(|r| (r.address, r.is_port)),
            Some((0xfea0_0202, false))
        );
        assert_eq!(fw.pm_timer, None);
        assert_eq!(fw.hpet, None);
        assert!(fw.ecam.is_empty());
        // No century register named; the RTC is not declared absent.
        assert_eq!(fw.rtc_century, None);
        assert!(!fw.cmos_rtc_absent);
    }

    #[test]
    fn unreadable_or_corrupt_tables_are_errors_not_faults() {
        // The RSDT points into memory that is not there.
        let (full, rsdp) = recorded("q35");
        let rsdp_page = full.regions[0].clone();
        let mem = FakeMem::new().with(rsdp_page.0, rsdp_page.1);
        let mut fw = Firmware::default();
        assert!(matches!(
            read(rsdp, &mem, &mut fw),
            Err(AcpiReadError::Unreadable(_))
        ));
        assert!(!fw.acpi);
        // A bad RSDP signature.
        let mut fw = Firmware::default();
        assert_eq!(read(rsdp + 16, &full, &mut fw), Err(AcpiReadError::BadRoot));
        // A table listed with an absurd length.
        let (mut mem, rsdp) = recorded("q35");
        mem.write(0x07fe_2290 + 4, &u32::MAX.to_le_bytes()); // the MADT's length
        let mut fw = Firmware::default();
        assert!(matches!(
            read(rsdp, &mem, &mut fw),
            Err(AcpiReadError::Unreadable(_))
        ));
    }

    #[test]
    fn s5_package_forms() {
        // QEMU: Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let qemu = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(find_s5(&qemu), Some((0, 0)));
        // Byte-prefixed constants: Package { 0x05, 0x05, Zero, Zero }
        let bytes = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x0a, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00,
            0x00,
        ];
        assert_eq!(find_s5(&bytes), Some((5, 5)));
        // `_S5_` used as a method name, not a package: not found.
        assert_eq!(find_s5(&[b'_', b'S', b'5', b'_', 0x14, 0x00]), None);
        assert_eq!(find_s5(b"_S5"), None);
    }

    fn madt(entries: &[&[u8]]) -> Vec<u8> {
        let mut b = vec![0u8; SDT_HEADER];
        b[0..4].copy_from_slice(b"APIC");
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for e in entries {
            b.extend_from_slice(e);
        }
        let len = b.len() as u32;
        b[4..8].copy_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn madt_cpus_ioapic_overrides() {
        let b = madt(&[
            &[0, 8, 0, 0, 1, 0, 0, 0],                          // LAPIC id 0 enabled
            &[0, 8, 1, 1, 1, 0, 0, 0],                          // LAPIC id 1 enabled
            &[0, 8, 2, 2, 0, 0, 0, 0],                          // LAPIC id 2 disabled
            &[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0],       // IOAPIC 0 @ 0xfec00000 GSI 0
            &[2, 10, 0, 0, 2, 0, 0, 0, 0, 0],                   // ISA 0 -> GSI 2
            &[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0],                // ISA 9 -> GSI 9 level high
            &[9, 16, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], // x2APIC id 7
        ]);
        let mut fw = Firmware::default();
        parse_madt(&b, &mut fw);
        let ids: Vec<u64> = fw.cpus.iter().map(|c| c.hw_id).collect();
        assert_eq!(ids, [0, 1, 7]);
        assert!(fw.cpus[0].boot && !fw.cpus[1].boot);
        let Some(InterruptModel::X86 {
            lapic_phys,
            ioapics,
            isa_overrides,
        }) = fw.interrupts
        else {
            panic!("no x86 model");
        };
        assert_eq!(lapic_phys, 0xfee0_0000);
        assert_eq!(ioapics.as_slice(), &[(0, 0xfec0_0000, 0)]);
        assert_eq!(
            isa_overrides.as_slice(),
            &[(0, 2, false, false), (9, 9, false, true)]
        );
    }

    #[test]
    fn madt_stops_at_a_bad_entry_length() {
        // A zero-length entry would loop forever in a naive walker.
        let b = madt(&[
            &[0, 8, 0, 0, 1, 0, 0, 0],
            &[0, 0],
            &[0, 8, 1, 1, 1, 0, 0, 0],
        ]);
        let mut fw = Firmware::default();
        parse_madt(&b, &mut fw);
        assert_eq!(fw.cpus.len(), 1);
        // An entry running past the table end is ignored.
        let mut b = madt(&[&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe]]);
        b.truncate(b.len());
        let mut fw = Firmware::default();
        parse_madt(&b, &mut fw);
        let Some(InterruptModel::X86 { ioapics, .. }) = fw.interrupts else {
            panic!()
        };
        assert!(ioapics.is_empty());
    }

    #[test]
    fn mcfg_entries() {
        let mut b = vec![0u8; SDT_HEADER + 8];
        b.extend_from_slice(&0xb000_0000u64.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0xff, 0, 0, 0, 0]);
        let mut fw = Firmware::default();
        parse_mcfg(&b, &mut fw);
        assert_eq!(
            fw.ecam.as_slice(),
            &[Ecam {
                base: 0xb000_0000,
                segment: 0,
                bus_start: 0,
                bus_end: 0xff
            }]
        );
    }
}
