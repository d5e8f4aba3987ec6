//! Host tests of the boot-protocol parsers with recorded and synthetic
//! inputs, including corrupt ones: every bad input must give a `BootError`,
//! never a panic.

use super::testmem::FakeMem;
use super::*;
use skiff_arch_api::{BootArgs, RawBoot};

const MIB: u64 = 1 << 20;

fn args(raw: RawBoot) -> BootArgs {
    BootArgs {
        raw,
        kernel_phys: 0x20_0000..0x40_0000,
        entry_level: 1,
        entry_counter: 77,
    }
}

fn region(start: u64, end: u64, kind: MemoryKind) -> MemoryRegion {
    MemoryRegion { start, end, kind }
}

fn usable(start: u64, end: u64) -> MemoryRegion {
    region(start, end, MemoryKind::Usable)
}

fn reserved(start: u64, end: u64) -> MemoryRegion {
    region(start, end, MemoryKind::Reserved)
}

// ---------------------------------------------------------------- memory map

#[test]
fn memory_map_sorts_merges_and_aligns_usable_inward() {
    let mut b = MemoryMapBuilder::new();
    b.add(0x10_0000, 0x10_0000, MemoryKind::Usable).unwrap();
    b.add(0x100, 0x9_fb00, MemoryKind::Usable).unwrap(); // 0x100..0x9fc00
    b.add(0x20_0000, 0x10_0000, MemoryKind::Usable).unwrap(); // adjacent: merges
    b.add(0x9_fc00, 0x400, MemoryKind::Reserved).unwrap();
    b.add(0x40_0000, 0, MemoryKind::Usable).unwrap(); // empty: ignored
    let m = b.finish().unwrap();
    assert_eq!(
        m.as_slice(),
        &[
            usable(0x1000, 0x9_f000),
            reserved(0x9_fc00, 0xa_0000),
            usable(0x10_0000, 0x30_0000)
        ]
    );
}

#[test]
fn memory_map_overlap_resolves_to_the_more_restrictive_kind() {
    let mut b = MemoryMapBuilder::new();
    b.add(0, 16 * MIB, MemoryKind::Usable).unwrap();
    b.add(4 * MIB, MIB, MemoryKind::Reserved).unwrap();
    b.add(4 * MIB + 0x800, 0x1000, MemoryKind::AcpiNvs).unwrap();
    b.add(15 * MIB, 2 * MIB, MemoryKind::AcpiReclaimable)
        .unwrap();
    let m = b.finish().unwrap();
    assert_eq!(
        m.as_slice(),
        &[
            usable(0, 4 * MIB),
            reserved(4 * MIB, 5 * MIB),
            usable(5 * MIB, 15 * MIB),
            region(15 * MIB, 17 * MIB, MemoryKind::AcpiReclaimable)
        ]
    );
    for w in m.windows(2) {
        assert!(w[0].end <= w[1].start, "sorted and non-overlapping: {m:?}");
    }
}

#[test]
fn memory_map_clips_at_the_top_of_the_address_space() {
    let mut b = MemoryMapBuilder::new();
    b.add(0x1000, 0x1000, MemoryKind::Usable).unwrap();
    b.add(u64::MAX - 0xfff, 0x10_0000, MemoryKind::Reserved)
        .unwrap();
    let m = b.finish().unwrap();
    assert_eq!(m[1], reserved(u64::MAX - 0xfff, u64::MAX));
}

#[test]
fn memory_map_without_a_usable_page_is_an_error() {
    let mut b = MemoryMapBuilder::new();
    b.add(0x100, 0x800, MemoryKind::Usable).unwrap(); // less than a page
    b.add(0x10_0000, MIB, MemoryKind::Reserved).unwrap();
    assert_eq!(b.finish().unwrap_err(), BootError::NoMemory);
}

#[test]
fn memory_map_refuses_more_entries_than_it_holds() {
    let mut b = MemoryMapBuilder::new();
    for i in 0..MAX_RAW_REGIONS as u64 {
        b.add(i * 0x2000, 0x1000, MemoryKind::Usable).unwrap();
    }
    assert!(matches!(
        b.add(1 << 40, 0x1000, MemoryKind::Usable),
        Err(BootError::TooMany(_))
    ));
    // 256 separate usable ranges do not fit the 128-entry result.
    assert!(matches!(b.finish(), Err(BootError::TooMany(_))));
}

// ---------------------------------------------------------------------- PVH

const SI: u64 = 0x1000;
const MEMMAP: u64 = 0x2000;
const CMDLINE: u64 = 0x3000;
const MODLIST: u64 = 0x4000;

/// A memory map shaped like the one QEMU's PVH option ROM passes on q35 with
/// `-m 128` (SeaBIOS's E820: low RAM, EBDA, BIOS, high RAM, ACPI tail, MMCONFIG,
/// chipset and flash holes). Synthetic, not captured from a boot.
const QEMU_Q35_E820: &[(u64, u64, u32)] = &[
    (0x0, 0x9fc00, 1),
    (0x9fc00, 0x400, 2),
    (0xf0000, 0x10000, 2),
    (0x100000, 0x7ee0000, 1),
    (0x7fe0000, 0x20000, 2),
    (0xb0000000, 0x10000000, 2),
    (0xfed1c000, 0x4000, 2),
    (0xfeffc000, 0x4000, 2),
    (0xfffc0000, 0x40000, 2),
];

struct Pvh {
    magic: u32,
    version: u32,
    nr_modules: u32,
    modlist: u64,
    cmdline: u64,
    rsdp: u64,
    memmap: u64,
    entries: u32,
}

impl Default for Pvh {
    fn default() -> Self {
        Pvh {
            magic: pvh::MAGIC,
            version: 1,
            nr_modules: 1,
            modlist: MODLIST,
            cmdline: CMDLINE,
            rsdp: 0,
            memmap: MEMMAP,
            entries: QEMU_Q35_E820.len() as u32,
        }
    }
}

/// Low memory 0..64 KiB holding a start_info, the E820 table, a command
/// line and one module (the initrd at 0x600_0000, 0x1234 bytes).
fn pvh_mem(p: &Pvh, cmdline: &[u8]) -> FakeMem {
    let mut low = vec![0u8; 0x10000];
    let mut put = |at: u64, b: &[u8]| low[at as usize..at as usize + b.len()].copy_from_slice(b);
    let mut si = Vec::new();
    si.extend(p.magic.to_le_bytes());
    si.extend(p.version.to_le_bytes());
    si.extend(0u32.to_le_bytes());
    si.extend(p.nr_modules.to_le_bytes());
    si.extend(p.modlist.to_le_bytes());
    si.extend(p.cmdline.to_le_bytes());
    si.extend(p.rsdp.to_le_bytes());
    si.extend(p.memmap.to_le_bytes());
    si.extend(p.entries.to_le_bytes());
    si.extend(0u32.to_le_bytes());
    assert_eq!(si.len(), 56);
    put(SI, &si);
    let mut mm = Vec::new();
    for &(addr, size, kind) in QEMU_Q35_E820 {
        mm.extend(addr.to_le_bytes());
        mm.extend(size.to_le_bytes());
        mm.extend(kind.to_le_bytes());
        mm.extend(0u32.to_le_bytes());
    }
    put(MEMMAP, &mm);
    put(CMDLINE, cmdline);
    let mut m = Vec::new();
    m.extend(0x600_0000u64.to_le_bytes());
    m.extend(0x1234u64.to_le_bytes());
    m.extend(0u64.to_le_bytes());
    m.extend(0u64.to_le_bytes());
    put(MODLIST, &m);
    FakeMem::new().with(0, low)
}

fn pvh_boot(mem: &FakeMem) -> Result<BootInfo, BootError> {
    from_boot_args(&args(RawBoot::Pvh { start_info: SI }), mem)
}

#[test]
fn pvh_qemu_q35_start_info() {
    let mem = pvh_mem(&Pvh::default(), b"console=ttyS0 ktest -- /app arg\0");
    let b = pvh_boot(&mem).unwrap();
    assert_eq!(b.protocol, BootProtocol::Pvh);
    assert_eq!(b.cmdline.as_str(), "console=ttyS0 ktest -- /app arg");
    assert!(!b.cmdline_truncated);
    assert_eq!(b.rsdp, None, "rsdp_paddr 0 means: not given");
    assert_eq!(b.initrd, Some(0x600_0000..0x600_1234));
    assert_eq!(
        (b.modules.len(), b.modules.first()),
        (1, Some(&(0x600_0000..0x600_1234)))
    );
    assert_eq!(b.kernel, 0x20_0000..0x40_0000);
    assert_eq!((b.entry_level, b.entry_counter), (1, 77));
    assert_eq!(
        b.memory.as_slice(),
        &[
            usable(0, 0x9f000),
            reserved(0x9fc00, 0xa0000),
            reserved(0xf0000, 0x100000),
            usable(0x100000, 0x7fe0000),
            reserved(0x7fe0000, 0x8000000),
            reserved(0xb0000000, 0xc0000000),
            reserved(0xfed1c000, 0xfed20000),
            reserved(0xfeffc000, 0xff000000),
            reserved(0xfffc0000, 0x1_0000_0000),
        ]
    );
    assert_eq!(b.usable_bytes(), 0x9f000 + 0x7ee0000);
}

/// Low memory as QEMU's PVH loader left it, recorded at the kernel's first
/// instruction (see testdata/README.md); start_info at 0x21e0.
fn recorded_pvh(name: &str) -> Result<BootInfo, BootError> {
    let mem = FakeMem::new().with(0, fixture(name));
    from_boot_args(&args(RawBoot::Pvh { start_info: 0x21e0 }), &mem)
}

#[test]
fn pvh_recorded_qemu_q35() {
    let b = recorded_pvh("qemu-q35-pvh-low.bin").unwrap();
    assert_eq!(b.cmdline.as_str(), "console=ttyS0 ktest -- /app x");
    assert_eq!(b.rsdp, Some(0xf5250));
    assert_eq!(b.initrd, Some(0x7fd_7000..0x7fd_7708));
    assert_eq!(
        b.memory.as_slice(),
        &[
            usable(0, 0x9f000),
            reserved(0x9fc00, 0xa0000),
            reserved(0xf0000, 0x100000),
            usable(0x100000, 0x7fe0000),
            reserved(0x7fe0000, 0x8000000),
            reserved(0xb000_0000, 0xc000_0000),
            reserved(0xfed1_c000, 0xfed2_0000),
            reserved(0xfffc_0000, 0x1_0000_0000),
            reserved(0xfd_0000_0000, 0x100_0000_0000),
        ]
    );
    // -m 128: all but the low 4 KiB-aligned holes and the ACPI tail.
    assert_eq!(b.usable_bytes(), 0x9f000 + 0x7ee0000);
}

#[test]
fn pvh_recorded_qemu_microvm() {
    let b = recorded_pvh("qemu-microvm-pvh-low.bin").unwrap();
    assert_eq!(b.cmdline.as_str(), "console=ttyS0 ktest");
    assert_eq!(b.rsdp, Some(0xf41d0));
    assert_eq!(b.initrd, Some(0x7ff_f000..0x7ff_f708));
    assert_eq!(
        b.memory.as_slice(),
        &[
            usable(0, 0x9f000),
            reserved(0x9fc00, 0xa0000),
            reserved(0xf0000, 0x100000),
            usable(0x100000, 0x7fff000),
            reserved(0x7fff000, 0x8000000),
            reserved(0xfffc_0000, 0x1_0000_0000),
        ]
    );
}

#[test]
fn pvh_rsdp_and_no_modules() {
    let p = Pvh {
        rsdp: 0xf5a40,
        nr_modules: 0,
        cmdline: 0,
        ..Pvh::default()
    };
    let b = pvh_boot(&pvh_mem(&p, b"")).unwrap();
    assert_eq!(b.rsdp, Some(0xf5a40));
    assert_eq!(b.initrd, None);
    assert!(b.modules.is_empty());
    assert_eq!(b.cmdline.as_str(), "");
}

#[test]
fn pvh_bad_inputs_are_errors() {
    let cmd = b"x\0";
    let err = |p: Pvh| pvh_boot(&pvh_mem(&p, cmd)).unwrap_err();
    assert_eq!(
        err(Pvh {
            magic: 0x1234_5678,
            ..Pvh::default()
        }),
        BootError::BadPvhMagic
    );
    assert!(matches!(
        err(Pvh {
            version: 0,
            ..Pvh::default()
        }),
        BootError::Unsupported(_)
    ));
    assert!(matches!(
        err(Pvh {
            entries: 1_000_000,
            ..Pvh::default()
        }),
        BootError::TooMany(_)
    ));
    assert!(matches!(
        err(Pvh {
            entries: u32::MAX,
            ..Pvh::default()
        }),
        BootError::TooMany(_)
    ));
    // 200 entries fit the limit but run past readable memory (0..64 KiB).
    assert!(matches!(
        err(Pvh {
            memmap: 0xf000,
            entries: 200,
            ..Pvh::default()
        }),
        BootError::Unreadable(_)
    ));
    assert_eq!(
        err(Pvh {
            entries: 0,
            ..Pvh::default()
        }),
        BootError::NoMemory
    );
    assert_eq!(
        err(Pvh {
            memmap: 0,
            ..Pvh::default()
        }),
        BootError::NoMemory
    );
    assert!(matches!(
        err(Pvh {
            memmap: 1 << 40,
            ..Pvh::default()
        }),
        BootError::Unreadable(_)
    ));
    assert!(matches!(
        err(Pvh {
            nr_modules: 100_000,
            ..Pvh::default()
        }),
        BootError::TooMany(_)
    ));
    assert!(matches!(
        err(Pvh {
            modlist: 0,
            ..Pvh::default()
        }),
        BootError::Unreadable(_)
    ));
    assert!(matches!(
        err(Pvh {
            modlist: 0xfff0,
            ..Pvh::default()
        }),
        BootError::Unreadable(_)
    ));
    assert!(matches!(
        err(Pvh {
            cmdline: 1 << 33,
            ..Pvh::default()
        }),
        BootError::Unreadable(_)
    ));
    // More modules than BootInfo keeps (module list of zeros after the first
    // has size 0 and is skipped, so build real ones).
    let mut mem = pvh_mem(
        &Pvh {
            nr_modules: 9,
            ..Pvh::default()
        },
        cmd,
    );
    for i in 0..9u64 {
        let mut m = Vec::new();
        m.extend((0x100_0000 + i * 0x1000).to_le_bytes());
        m.extend(0x100u64.to_le_bytes());
        m.extend([0u8; 16]);
        mem.write(MODLIST + i * 32, &m);
    }
    assert!(matches!(pvh_boot(&mem), Err(BootError::TooMany(_))));
    // A module whose end overflows.
    let mut mem = pvh_mem(&Pvh::default(), cmd);
    mem.write(MODLIST, &(u64::MAX - 10).to_le_bytes());
    assert!(matches!(pvh_boot(&mem), Err(BootError::BadRange(_))));
}

#[test]
fn pvh_start_info_outside_memory_or_truncated() {
    let mem = FakeMem::new();
    assert!(matches!(pvh_boot(&mem), Err(BootError::Unreadable(_))));
    // Only the 40-byte version-0 header is readable, but it claims version 1.
    let full = pvh_mem(&Pvh::default(), b"\0");
    let head = full.read(SI, 40).unwrap().to_vec();
    let mem = FakeMem::new().with(SI, head);
    assert!(matches!(pvh_boot(&mem), Err(BootError::Unreadable(_))));
}

#[test]
fn cmdline_running_off_readable_memory_is_an_error() {
    // No NUL before the end of readable memory.
    let mut mem = pvh_mem(
        &Pvh {
            cmdline: 0xfffa,
            ..Pvh::default()
        },
        b"",
    );
    mem.write(0xfffa, b"abcdef");
    assert!(matches!(pvh_boot(&mem), Err(BootError::Unreadable(_))));
    // Terminated in the last readable byte: fine.
    mem.write(0xfffa, b"abcde\0");
    let b = pvh_boot(&mem).unwrap();
    assert_eq!(b.cmdline.as_str(), "abcde");
    assert!(!b.cmdline_truncated);
}

#[test]
fn cmdline_longer_than_max_is_cut_at_a_char_boundary() {
    let mut long = vec![b'a'; MAX_CMDLINE - 1];
    long.extend("é tail".as_bytes()); // 'é' straddles the limit
    long.push(0);
    let mut mem = pvh_mem(
        &Pvh {
            cmdline: 0x10_0000,
            ..Pvh::default()
        },
        b"",
    );
    mem.regions.push((0x10_0000, long));
    let b = pvh_boot(&mem).unwrap();
    assert!(b.cmdline_truncated);
    assert_eq!(b.cmdline.len(), MAX_CMDLINE);
    assert!(
        b.cmdline.as_str().ends_with("aaa?"),
        "half a char becomes '?'"
    );
    // Exactly MAX_CMDLINE bytes then NUL is whole, not truncated.
    let mut exact = vec![b'b'; MAX_CMDLINE];
    exact.push(0);
    let mut mem = pvh_mem(
        &Pvh {
            cmdline: 0x10_0000,
            ..Pvh::default()
        },
        b"",
    );
    mem.regions.push((0x10_0000, exact));
    let b = pvh_boot(&mem).unwrap();
    assert!(!b.cmdline_truncated);
    assert_eq!(b.cmdline.len(), MAX_CMDLINE);
}

#[test]
fn cmdline_invalid_utf8_is_replaced() {
    let mem = pvh_mem(&Pvh::default(), b"a\xffb\xc3\0");
    let b = pvh_boot(&mem).unwrap();
    assert_eq!(b.cmdline.as_str(), "a?b?");
}

// ------------------------------------------------------------ Linux zero page

const BP: u64 = 0x7000;

fn linux_mem(entries: u8, e820: &[(u64, u64, u32)], version: u16) -> FakeMem {
    let mut zp = vec![0u8; 4096];
    let mut put = |at: usize, b: &[u8]| zp[at..at + b.len()].copy_from_slice(b);
    put(0x070, &0xf5a40u64.to_le_bytes());
    put(0x1e8, &[entries]);
    put(0x202, b"HdrS");
    put(0x206, &version.to_le_bytes());
    put(0x218, &0x8000_0000u32.to_le_bytes()); // ramdisk low 32 bits
    put(0x0c0, &0x1u32.to_le_bytes()); // ramdisk high 32 bits: 0x1_8000_0000
    put(0x21c, &0x20_0000u32.to_le_bytes());
    put(0x228, &0x9000u32.to_le_bytes());
    put(0x238, &8u32.to_le_bytes()); // cmdline_size
    for (i, &(a, s, t)) in e820.iter().enumerate() {
        let e = 0x2d0 + i * 20;
        put(e, &a.to_le_bytes());
        put(e + 8, &s.to_le_bytes());
        put(e + 16, &t.to_le_bytes());
    }
    let mut low = vec![0u8; 0x10000];
    low[BP as usize..BP as usize + 4096].copy_from_slice(&zp);
    low[0x9000..0x9000 + 14].copy_from_slice(b"quiet -- app x");
    FakeMem::new().with(0, low)
}

fn linux_boot(mem: &FakeMem) -> Result<BootInfo, BootError> {
    from_boot_args(&args(RawBoot::LinuxBootParams { boot_params: BP }), mem)
}

#[test]
fn linux_boot_params() {
    let e820 = &QEMU_Q35_E820[..4];
    let b = linux_boot(&linux_mem(4, e820, 0x020f)).unwrap();
    assert_eq!(b.protocol, BootProtocol::LinuxBootParams);
    assert_eq!(b.rsdp, Some(0xf5a40));
    assert_eq!(b.initrd, Some(0x1_8000_0000..0x1_8020_0000));
    // cmdline_size = 8 bounds the text (no NUL within it).
    assert_eq!(b.cmdline.as_str(), "quiet --");
    assert!(b.cmdline_truncated);
    assert_eq!(
        b.memory.as_slice(),
        &[
            usable(0, 0x9f000),
            reserved(0x9fc00, 0xa0000),
            reserved(0xf0000, 0x100000),
            usable(0x100000, 0x7fe0000)
        ]
    );
    // Before protocol 2.06 the limit is 255 bytes and cmdline_size unused.
    let b = linux_boot(&linux_mem(4, e820, 0x0205)).unwrap();
    assert_eq!(b.cmdline.as_str(), "quiet -- app x");
}

#[test]
fn linux_bad_inputs_are_errors() {
    let e820 = &QEMU_Q35_E820[..4];
    let mut mem = linux_mem(4, e820, 0x020f);
    mem.write(BP + 0x202, b"HdrX");
    assert_eq!(linux_boot(&mem).unwrap_err(), BootError::BadBootParams);
    let mem = linux_mem(200, e820, 0x020f);
    assert!(matches!(linux_boot(&mem), Err(BootError::TooMany(_))));
    let mem = linux_mem(0, e820, 0x020f);
    assert_eq!(linux_boot(&mem).unwrap_err(), BootError::NoMemory);
    // boot_params at the end of memory: the page is not wholly readable.
    let mem = linux_mem(4, e820, 0x020f);
    let r = from_boot_args(
        &args(RawBoot::LinuxBootParams {
            boot_params: 0xf800,
        }),
        &mem,
    );
    assert!(matches!(r, Err(BootError::Unreadable(_))));
}

// --------------------------------------------------------------- device tree

const DTB_PA: u64 = 0x4000_0000;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dt_boot(dtb: &[u8]) -> Result<BootInfo, BootError> {
    let mem = FakeMem::new().with(DTB_PA, dtb.to_vec());
    from_boot_args(&args(RawBoot::DeviceTree { dtb: DTB_PA }), &mem)
}

#[test]
fn dt_qemu_virt_gicv3() {
    let dtb = fixture("qemu-virt-gicv3.dtb");
    let b = dt_boot(&dtb).unwrap();
    assert_eq!(b.protocol, BootProtocol::DeviceTree);
    assert_eq!(b.memory.as_slice(), &[usable(0x4000_0000, 0x5000_0000)]);
    assert_eq!(b.usable_bytes(), 256 * MIB);
    assert_eq!(b.dtb, Some(DTB_PA..DTB_PA + dtb.len() as u64));
    assert_eq!(b.cmdline.as_str(), "");
    assert_eq!(b.initrd, None);
    assert_eq!(b.rsdp, None);
}

#[test]
fn dt_qemu_virt_gicv2() {
    let b = dt_boot(&fixture("qemu-virt-gicv2.dtb")).unwrap();
    assert_eq!(b.memory.as_slice(), &[usable(0x4000_0000, 0x5000_0000)]);
}

#[test]
fn dt_qemu_virt_with_append_and_initrd() {
    let b = dt_boot(&fixture("qemu-virt-gicv3-initrd.dtb")).unwrap();
    assert_eq!(
        b.cmdline.as_str(),
        "console=ttyAMA0 debug_exit=1 ktest -- /bin/app --flag"
    );
    // QEMU writes 64-bit initrd cells; the recorded initrd was 1800 bytes.
    assert_eq!(b.initrd, Some(0x4800_0000..0x4800_0708));
    assert_eq!(
        (b.modules.len(), b.modules.first()),
        (1, Some(&(0x4800_0000..0x4800_0708)))
    );
}

#[test]
fn dt_qemu_virt_numa_two_memory_nodes() {
    let b = dt_boot(&fixture("qemu-virt-gicv3-numa.dtb")).unwrap();
    // memory@40000000 and memory@50000000 are adjacent and merge.
    assert_eq!(b.memory.as_slice(), &[usable(0x4000_0000, 0x6000_0000)]);
}

#[test]
fn dt_reserved_memory_memreserve_and_32bit_cells() {
    let b = dt_boot(&fixture("reserved-memory.dtb")).unwrap();
    assert_eq!(
        b.memory.as_slice(),
        &[
            usable(0x8000_0000, 0x8000_1000),
            reserved(0x8000_1000, 0x8000_3000), // /memreserve/
            usable(0x8000_3000, 0x8010_0000),
            reserved(0x8010_0000, 0x8020_0000), // reserved-memory/secmon
            usable(0x8020_0000, 0x8100_0000),
            usable(0x8200_0000, 0x8280_0000),
            usable(0x9000_0000, 0x9040_0000),
        ]
    );
    assert_eq!(b.cmdline.as_str(), "console=ttyS0 -- app");
    assert_eq!(b.initrd, Some(0x8210_0000..0x8218_0000));
}

#[test]
fn dt_bad_headers_are_errors() {
    let good = fixture("qemu-virt-gicv3.dtb");
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert_eq!(dt_boot(&bad).unwrap_err(), BootError::BadDeviceTree);
    // totalsize larger than readable memory.
    assert!(matches!(
        dt_boot(&good[..good.len() - 1]),
        Err(BootError::Unreadable(_))
    ));
    // Absurd totalsize.
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    assert_eq!(dt_boot(&bad).unwrap_err(), BootError::BadDeviceTree);
    // Header only partly readable.
    assert!(matches!(
        dt_boot(&good[..20]),
        Err(BootError::Unreadable(_))
    ));
    // Version 16 (no size_dt_struct) is refused.
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&16u32.to_be_bytes());
    assert_eq!(dt_boot(&bad).unwrap_err(), BootError::BadDeviceTree);
}

#[test]
fn validate_dtb_names_what_is_wrong() {
    let good = fixture("reserved-memory.dtb");
    assert_eq!(validate_dtb(&good).unwrap().len(), good.len());
    let off_struct = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    // The root node's first property: BEGIN_NODE, "" padded to 4, PROP.
    let prop = off_struct + 8;
    assert_eq!(&good[prop..prop + 4], &3u32.to_be_bytes());
    let mut bad = good.clone();
    bad[prop + 4..prop + 8].copy_from_slice(&0x10_0000u32.to_be_bytes()); // length
    assert!(matches!(validate_dtb(&bad), Err(DtbError::BadStructure(_))));
    let mut bad = good.clone();
    bad[prop + 8..prop + 12].copy_from_slice(&0xffffu32.to_be_bytes()); // name offset
    assert!(matches!(validate_dtb(&bad), Err(DtbError::BadStructure(_))));
    let mut bad = good.clone();
    bad[prop..prop + 4].copy_from_slice(&4u32.to_be_bytes()); // NOP inside the root
    assert!(matches!(validate_dtb(&bad), Err(DtbError::BadStructure(_))));
    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&0xffff_fff0u32.to_be_bytes()); // strings offset
    assert!(matches!(validate_dtb(&bad), Err(DtbError::BadLayout(_))));
    assert_eq!(validate_dtb(&good[..30]), Err(DtbError::Truncated));
    assert_eq!(validate_dtb(&[]), Err(DtbError::Truncated));
}

#[test]
fn dt_deeply_nested_nodes_are_refused() {
    let mut dts = String::from("/dts-v1/; / { ");
    for i in 0..40 {
        dts.push_str(&format!("n{i} {{ "));
    }
    dts.push_str(&"}; ".repeat(40));
    dts.push_str("};");
    let dtb = dtc(&dts);
    assert!(matches!(validate_dtb(&dtb), Err(DtbError::BadStructure(_))));
}

/// Compiles a DTS with `dtc` (device-tree-compiler; `.ci/run` installs it).
fn dtc(src: &str) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dtc (device-tree-compiler) is needed for this test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dtc failed");
    out.stdout
}

#[test]
fn dt_odd_cells_and_initrd_shapes() {
    // #address-cells = 3 for memory is refused, not misread.
    let dtb = dtc("/dts-v1/; / { #address-cells = <3>; #size-cells = <1>;
        memory@0 { device_type = \"memory\"; reg = <0 0 0 0x1000000>; }; chosen { }; };");
    assert!(matches!(dt_boot(&dtb), Err(BootError::Unsupported(_))));
    // reg not a whole number of entries.
    let dtb = dtc("/dts-v1/; / { #address-cells = <2>; #size-cells = <2>;
        memory@0 { device_type = \"memory\"; reg = <0 0 0>; }; };");
    assert_eq!(dt_boot(&dtb).unwrap_err(), BootError::BadDeviceTree);
    // initrd end below start.
    let dtb = dtc("/dts-v1/; / { #address-cells = <1>; #size-cells = <1>;
        memory@0 { device_type = \"memory\"; reg = <0 0x1000000>; };
        chosen { linux,initrd-start = <0x200000>; linux,initrd-end = <0x100000>; }; };");
    assert!(matches!(dt_boot(&dtb), Err(BootError::BadRange(_))));
    // A 3-byte initrd property.
    let dtb = dtc("/dts-v1/; / { #address-cells = <1>; #size-cells = <1>;
        memory@0 { device_type = \"memory\"; reg = <0 0x1000000>; };
        chosen { linux,initrd-start = [00 10 00]; linux,initrd-end = <0x100000>; }; };");
    assert_eq!(dt_boot(&dtb).unwrap_err(), BootError::BadDeviceTree);
    // No memory node at all.
    let dtb = dtc("/dts-v1/; / { chosen { bootargs = \"x\"; }; };");
    assert_eq!(dt_boot(&dtb).unwrap_err(), BootError::NoMemory);
    // A disabled memory node is not RAM.
    let dtb = dtc("/dts-v1/; / { #address-cells = <1>; #size-cells = <1>;
        memory@0 { device_type = \"memory\"; reg = <0 0x1000000>; };
        memory@2000000 { device_type = \"memory\"; status = \"disabled\"; reg = <0x2000000 0x1000000>; }; };");
    assert_eq!(
        dt_boot(&dtb).unwrap().memory.as_slice(),
        &[usable(0, 0x100_0000)]
    );
}

/// Every single-word corruption of recorded DTBs parses or fails cleanly.
#[test]
fn dt_corrupted_words_never_panic() {
    for name in ["reserved-memory.dtb", "qemu-virt-gicv3-initrd.dtb"] {
        let good = fixture(name);
        for at in (0..good.len()).step_by(4) {
            for val in [0u32, 1, 2, 3, 4, 5, 9, 0x7f, 0xffff_fffc, 0x8000_0000] {
                let mut bad = good.clone();
                let end = (at + 4).min(bad.len());
                bad[at..end].copy_from_slice(&val.to_be_bytes()[..end - at]);
                let _ = dt_boot(&bad);
            }
        }
        for len in 0..good.len().min(512) {
            let _ = validate_dtb(&good[..len]);
        }
    }
}

// ----------------------------------------------------------------------- RSDP

fn rsdp_v2(xsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend(b"RSD PTR ");
    r.push(0); // checksum
    r.extend(b"BOCHS ");
    r.push(2); // revision
    r.extend(0x7fe_1234u32.to_le_bytes());
    r.extend(36u32.to_le_bytes());
    r.extend(xsdt.to_le_bytes());
    r.push(0); // extended checksum
    r.extend([0, 0, 0]);
    r[8] = 0u8.wrapping_sub(checksum(&r[..20]));
    r[32] = 0u8.wrapping_sub(checksum(&r));
    r
}

#[test]
fn rsdp_found_in_the_bios_area_with_checksums() {
    let mut bios = vec![0u8; 0x20000];
    // A decoy with a bad checksum comes first; an unaligned one is ignored.
    let mut decoy = rsdp_v2(0x7fe_2000);
    decoy[8] ^= 0x55;
    bios[0x1000..0x1000 + 36].copy_from_slice(&decoy);
    bios[0x2008..0x2008 + 36].copy_from_slice(&rsdp_v2(0x7fe_2000));
    bios[0x15a40..0x15a40 + 36].copy_from_slice(&rsdp_v2(0x7fe_2000));
    let mem = FakeMem::new()
        .with(0xe0000, bios)
        .with(0, vec![0u8; 0x1000]);
    assert_eq!(find_rsdp_in_bios_area(&mem), Some(0xf5a40));

    // v2 table whose extended checksum is wrong is refused.
    let mut bad = rsdp_v2(0x7fe_2000);
    bad[32] ^= 1;
    assert!(!rsdp_valid(&bad));
    assert!(rsdp_valid(&rsdp_v2(0x7fe_2000)));
    assert!(!rsdp_valid(&rsdp_v2(0)[..30]));

    // Not there at all; and no readable BIOS area.
    let mem = FakeMem::new().with(0xe0000, vec![0u8; 0x20000]);
    assert_eq!(find_rsdp_in_bios_area(&mem), None);
    assert_eq!(find_rsdp_in_bios_area(&FakeMem::new()), None);
}

#[test]
fn rsdp_found_in_the_ebda() {
    let mut low = vec![0u8; 0xa0000];
    low[0x40e..0x410].copy_from_slice(&(0x9fc0u16).to_le_bytes()); // EBDA at 0x9fc00
    low[0x9fc10..0x9fc10 + 36].copy_from_slice(&rsdp_v2(0x1000));
    let mem = FakeMem::new()
        .with(0, low)
        .with(0xe0000, vec![0u8; 0x20000]);
    assert_eq!(find_rsdp_in_bios_area(&mem), Some(0x9fc10));
}
