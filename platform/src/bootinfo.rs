//! The one `BootInfo`: every boot protocol normalised into one structure.
//!
//! Parsers read physical memory through [`PhysMemory`] (on the target the
//! arch's direct map, in host tests a recorded image), so they are
//! host-tested with recorded inputs. Every pointer and length that comes from
//! the loader is bounds-checked; bad input is a [`BootError`], never a panic.
//!
//! * [`from_boot_args`] dispatches on the raw protocol: PVH `hvm_start_info`
//!   (`pvh`), the Linux `boot_params` zero page (`linux`) or a flattened
//!   device tree (`dtb`).
//! * [`MemoryMapBuilder`] normalises whatever the protocol listed: sorted,
//!   overlaps resolved (the more restrictive kind wins), adjacent ranges of
//!   one kind merged, usable ranges shrunk inward to whole pages.
//! * [`find_rsdp_in_bios_area`] is the x86 fallback when the loader gave no
//!   RSDP address (PVH `rsdp_paddr == 0`).

mod dtb;
mod linux;
mod pvh;
#[cfg(test)]
mod tests;

pub use dtb::{validate_dtb, DtbError, MAX_DTB_SIZE};

use arrayvec::{ArrayString, ArrayVec};
use core::ops::Range;

pub const MAX_MEMORY_REGIONS: usize = 128;
pub const MAX_MODULES: usize = 8;
pub const MAX_CMDLINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    Pvh,
    LinuxBootParams,
    DeviceTree,
}

impl BootProtocol {
    pub fn name(self) -> &'static str {
        match self {
            BootProtocol::Pvh => "pvh",
            BootProtocol::LinuxBootParams => "linux",
            BootProtocol::DeviceTree => "dtb",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// RAM the kernel may allocate (minus what BootInfo lists as in use).
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub end: u64,
    pub kind: MemoryKind,
}

/// Everything the kernel needs from the boot protocol. Nothing after early
/// boot reads the raw protocol structures.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub protocol: BootProtocol,
    /// Firmware memory map, sorted by start, non-overlapping.
    pub memory: ArrayVec<MemoryRegion, MAX_MEMORY_REGIONS>,
    /// Kernel command line, copied out of boot memory.
    pub cmdline: ArrayString<MAX_CMDLINE>,
    /// ACPI RSDP physical address, if the protocol gave one.
    pub rsdp: Option<u64>,
    /// Flattened device tree, physical range.
    pub dtb: Option<Range<u64>>,
    /// The initial RAM disk (PVH first module, DT `linux,initrd-*`).
    pub initrd: Option<Range<u64>>,
    /// Every boot module, physical ranges (the initrd is also listed here).
    pub modules: ArrayVec<Range<u64>, MAX_MODULES>,
    /// Physical memory the kernel image occupies.
    pub kernel: Range<u64>,
    pub entry_level: u8,
    pub entry_counter: u64,
    /// The command line was longer than [`MAX_CMDLINE`] bytes (or had no
    /// terminator within it) and was cut at a character boundary.
    pub cmdline_truncated: bool,
}

impl BootInfo {
    /// Total usable RAM in bytes, as the firmware reported it.
    pub fn usable_bytes(&self) -> u64 {
        self.memory
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
            .map(|r| r.end - r.start)
            .sum()
    }

    /// Physical ranges that are in use at boot and must not be handed out by
    /// the frame allocator: the kernel, modules, the DTB.
    pub fn reserved_ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        core::iter::once(self.kernel.clone())
            .chain(self.modules.iter().cloned())
            .chain(self.dtb.iter().cloned())
    }
}

/// Read access to physical memory for the boot-protocol parsers. On the
/// target it is the arch's direct map; in host tests a recorded image.
pub trait PhysMemory {
    /// `len` bytes at physical `pa`, or None if not readable.
    fn read(&self, pa: u64, len: usize) -> Option<&[u8]>;
}

/// Why boot information could not be read. Each says what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// The PVH start_info magic was not 0x336ec578.
    BadPvhMagic,
    /// The device tree header is not valid (magic, size, version).
    BadDeviceTree,
    /// A structure pointed outside readable memory.
    Unreadable(&'static str),
    /// No usable RAM in the memory map.
    NoMemory,
    /// The Linux boot_params header is not valid.
    BadBootParams,
    /// More entries than Skiff keeps (memory map, modules) or an absurd count
    /// from the loader; names what overflowed.
    TooMany(&'static str),
    /// A range whose end overflows the physical address space, or an empty
    /// range where one is required; names the field.
    BadRange(&'static str),
    /// The loader used a form of the protocol Skiff does not read; says which.
    Unsupported(&'static str),
}

impl BootError {
    pub fn message(&self) -> &'static str {
        match self {
            BootError::BadPvhMagic => "PVH start_info has a bad magic",
            BootError::BadDeviceTree => "the device tree header is invalid",
            BootError::Unreadable(what) => what,
            BootError::NoMemory => "the firmware memory map lists no usable RAM",
            BootError::BadBootParams => "Linux boot_params header is invalid",
            BootError::TooMany(what) => what,
            BootError::BadRange(what) => what,
            BootError::Unsupported(what) => what,
        }
    }
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl MemoryKind {
    /// When two firmware ranges overlap, the kind with the higher rank wins:
    /// anything is safer than calling a disputed page usable RAM.
    fn rank(self) -> u8 {
        match self {
            MemoryKind::Usable => 0,
            MemoryKind::AcpiReclaimable => 1,
            MemoryKind::AcpiNvs => 2,
            MemoryKind::Reserved => 3,
            MemoryKind::Unusable => 4,
        }
    }

    /// The E820 type numbers shared by PVH `hvm_memmap_table_entry` and
    /// Linux `boot_e820_entry`: 1 RAM, 2 reserved, 3 ACPI reclaimable,
    /// 4 ACPI NVS, 5 unusable; 6 (disabled), 7 (persistent memory) and
    /// unknown types are kept as reserved so nothing allocates from them.
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            1 => MemoryKind::Usable,
            3 => MemoryKind::AcpiReclaimable,
            4 => MemoryKind::AcpiNvs,
            5 => MemoryKind::Unusable,
            _ => MemoryKind::Reserved,
        }
    }
}

/// How many raw ranges a protocol may list before normalisation. The Linux
/// zero page holds at most 128 E820 entries; a DT adds reservations.
pub const MAX_RAW_REGIONS: usize = 256;

const PAGE: u64 = 4096;

/// Collects the memory ranges a boot protocol lists, in any order and with
/// overlaps, and turns them into the normalised [`BootInfo::memory`] list.
#[derive(Debug, Default)]
pub struct MemoryMapBuilder {
    raw: ArrayVec<MemoryRegion, MAX_RAW_REGIONS>,
}

impl MemoryMapBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `size` bytes at `start`. Empty ranges are ignored; a range that
    /// runs past the top of the 64-bit address space is clipped there.
    pub fn add(&mut self, start: u64, size: u64, kind: MemoryKind) -> Result<(), BootError> {
        if size == 0 {
            return Ok(());
        }
        let end = start.saturating_add(size);
        self.raw
            .try_push(MemoryRegion { start, end, kind })
            .map_err(|_| BootError::TooMany("the firmware memory map has too many entries"))
    }

    /// Sorted, non-overlapping, merged; usable ranges page-aligned inward.
    /// Where ranges overlap the more restrictive kind wins (see
    /// `MemoryKind::rank`). Fails if the result does not fit or holds no
    /// usable page.
    pub fn finish(self) -> Result<ArrayVec<MemoryRegion, MAX_MEMORY_REGIONS>, BootError> {
        // Every start and end is a boundary; between two neighbouring
        // boundaries the kind is constant. n <= 256, so the quadratic sweep
        // costs at most a few hundred thousand comparisons, once per boot.
        let mut points: ArrayVec<u64, { 2 * MAX_RAW_REGIONS }> = ArrayVec::new();
        for r in &self.raw {
            points.push(r.start);
            points.push(r.end);
        }
        points.sort_unstable();
        let too_many = BootError::TooMany("the normalised memory map has too many ranges");
        let mut out: ArrayVec<MemoryRegion, MAX_MEMORY_REGIONS> = ArrayVec::new();
        for w in points.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            if lo == hi {
                continue;
            }
            let kind = self
                .raw
                .iter()
                .filter(|r| r.start <= lo && hi <= r.end)
                .map(|r| r.kind)
                .max_by_key(|k| k.rank());
            let Some(kind) = kind else { continue };
            match out.last_mut() {
                Some(last) if last.end == lo && last.kind == kind => last.end = hi,
                _ => out
                    .try_push(MemoryRegion {
                        start: lo,
                        end: hi,
                        kind,
                    })
                    .map_err(|_| too_many)?,
            }
        }
        // Usable RAM in whole pages only: shrink inward, drop what vanishes.
        out.retain(|r| {
            if r.kind != MemoryKind::Usable {
                return true;
            }
            let start = r.start.checked_add(PAGE - 1).map(|s| s & !(PAGE - 1));
            let end = r.end & !(PAGE - 1);
            match start {
                Some(start) if start < end => {
                    (r.start, r.end) = (start, end);
                    true
                }
                _ => false,
            }
        });
        if !out.iter().any(|r| r.kind == MemoryKind::Usable) {
            return Err(BootError::NoMemory);
        }
        Ok(out)
    }
}

/// Turns what the arch's entry code received into the one [`BootInfo`].
pub fn from_boot_args(
    args: &skiff_arch_api::BootArgs,
    mem: &dyn PhysMemory,
) -> Result<BootInfo, BootError> {
    let mut info = match args.raw {
        skiff_arch_api::RawBoot::Pvh { start_info } => pvh::parse(mem, start_info)?,
        skiff_arch_api::RawBoot::LinuxBootParams { boot_params } => linux::parse(mem, boot_params)?,
        skiff_arch_api::RawBoot::DeviceTree { dtb } => dtb::parse(mem, dtb)?,
    };
    info.kernel = args.kernel_phys.clone();
    info.entry_level = args.entry_level;
    info.entry_counter = args.entry_counter;
    Ok(info)
}

impl BootInfo {
    /// An empty `BootInfo` for `protocol`, filled in by the parsers.
    fn empty(protocol: BootProtocol) -> Self {
        BootInfo {
            protocol,
            memory: ArrayVec::new(),
            cmdline: ArrayString::new(),
            rsdp: None,
            dtb: None,
            initrd: None,
            modules: ArrayVec::new(),
            kernel: 0..0,
            entry_level: 0,
            entry_counter: 0,
            cmdline_truncated: false,
        }
    }

    /// Records a boot module (`size` bytes at `start`); the first one the
    /// protocol names as the initrd also becomes [`BootInfo::initrd`].
    fn add_module(&mut self, start: u64, size: u64, is_initrd: bool) -> Result<(), BootError> {
        if size == 0 {
            return Ok(());
        }
        let end = start.checked_add(size).ok_or(BootError::BadRange(
            "a boot module ends past the address space",
        ))?;
        self.modules
            .try_push(start..end)
            .map_err(|_| BootError::TooMany("more boot modules than Skiff keeps"))?;
        if is_initrd && self.initrd.is_none() {
            self.initrd = Some(start..end);
        }
        Ok(())
    }
}

/// Little-endian fields of a loader structure already read into memory.
/// Callers read the whole structure first, so an out-of-range offset is a
/// bug in this file; it still returns 0 rather than panicking.
pub(crate) fn le_u16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Reads a NUL-terminated command line at `pa`, at most `limit` bytes of
/// text (the protocol's own bound, if it has one, capped at [`MAX_CMDLINE`]). Reads page by page, so a string
/// that ends just before unreadable memory is still read. Returns the text
/// and whether it was cut short; bytes that are not UTF-8 become `?`.
pub(crate) fn read_cmdline(
    mem: &dyn PhysMemory,
    pa: u64,
    limit: usize,
) -> Result<(ArrayString<MAX_CMDLINE>, bool), BootError> {
    let limit = limit.min(MAX_CMDLINE);
    let mut bytes: ArrayVec<u8, MAX_CMDLINE> = ArrayVec::new();
    let mut terminated = false;
    let mut at = pa;
    while bytes.len() < limit {
        let to_page_end = (PAGE - (at % PAGE)) as usize;
        let want = to_page_end.min(limit - bytes.len());
        let Some(chunk) = mem.read(at, want) else {
            return Err(BootError::Unreadable(
                "the kernel command line is not readable",
            ));
        };
        if let Some(nul) = chunk.iter().position(|&b| b == 0) {
            bytes.extend(chunk[..nul].iter().copied());
            terminated = true;
            break;
        }
        bytes.extend(chunk.iter().copied());
        at = at.checked_add(want as u64).ok_or(BootError::BadRange(
            "the kernel command line runs past the address space",
        ))?;
    }
    if !terminated {
        // Exactly `limit` bytes of text followed by the terminator is whole.
        terminated = mem.read(at, 1).is_some_and(|b| b[0] == 0);
    }
    let (text, cut) = cmdline_from_bytes(&bytes);
    Ok((text, cut || !terminated))
}

/// A command line from raw bytes (a DT `bootargs` value, or bytes read by
/// [`read_cmdline`]): up to the first NUL, at most [`MAX_CMDLINE`] bytes,
/// bytes that are not UTF-8 replaced by `?`. Returns whether it was cut.
pub(crate) fn cmdline_from_bytes(b: &[u8]) -> (ArrayString<MAX_CMDLINE>, bool) {
    let b = b.split(|&c| c == 0).next().unwrap_or(&[]);
    let cut = b.len() > MAX_CMDLINE;
    let b = &b[..b.len().min(MAX_CMDLINE)];
    let mut out = ArrayString::new();
    for chunk in b.utf8_chunks() {
        // The output holds MAX_CMDLINE bytes and every `?` replaces at least
        // one input byte, so these pushes always fit.
        let _ = out.try_push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            let _ = out.try_push('?');
        }
    }
    (out, cut)
}

/// Finds the ACPI RSDP the way a BIOS leaves it: on a 16-byte boundary in
/// the first KiB of the EBDA (segment at 0x40E) or in 0xE0000..0x100000,
/// signature "RSD PTR ", checksum over the first 20 bytes (and over the
/// whole `length` for revision 2+). For PVH boots whose start_info has no
/// `rsdp_paddr`.
pub fn find_rsdp_in_bios_area(mem: &dyn PhysMemory) -> Option<u64> {
    let ebda = mem
        .read(0x40e, 2)
        .map(|b| u64::from(le_u16(b, 0)) << 4)
        .filter(|&a| (0x80000..0xa0000).contains(&a));
    if let Some(found) = ebda.and_then(|base| scan_rsdp(mem, base, base + 1024)) {
        return Some(found);
    }
    scan_rsdp(mem, 0xe0000, 0x100000)
}

fn scan_rsdp(mem: &dyn PhysMemory, start: u64, end: u64) -> Option<u64> {
    let area = mem.read(start, (end - start) as usize)?;
    (0..area.len().saturating_sub(20))
        .step_by(16)
        .find(|&off| rsdp_valid(&area[off..]))
        .map(|off| start + off as u64)
}

/// Validates an RSDP at the start of `b` (which may run past its end).
pub(crate) fn rsdp_valid(b: &[u8]) -> bool {
    let Some(v1) = b.get(..20) else { return false };
    if &v1[..8] != b"RSD PTR " || checksum(v1) != 0 {
        return false;
    }
    if v1[15] < 2 {
        return true;
    }
    let len = le_u32(b, 20) as usize;
    // ACPI 2.0+ RSDP is 36 bytes; accept a larger length only if present.
    len >= 36 && b.get(..len).is_some_and(|all| checksum(all) == 0)
}

pub(crate) fn checksum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

/// A fake physical memory for host tests: a few (base, bytes) regions.
#[cfg(test)]
pub(crate) mod testmem {
    use super::PhysMemory;

    #[derive(Default)]
    pub struct FakeMem {
        pub regions: Vec<(u64, Vec<u8>)>,
    }

    impl FakeMem {
        pub fn new() -> Self {
            Self::default()
        }
        /// Adds a region of `bytes` at `base`.
        pub fn with(mut self, base: u64, bytes: Vec<u8>) -> Self {
            self.regions.push((base, bytes));
            self
        }
        /// Writes `bytes` at `pa` inside an existing region.
        pub fn write(&mut self, pa: u64, bytes: &[u8]) {
            let (base, data) = self
                .regions
                .iter_mut()
                .find(|(b, d)| *b <= pa && pa + bytes.len() as u64 <= *b + d.len() as u64)
                .expect("test writes inside a region");
            let off = (pa - *base) as usize;
            data[off..off + bytes.len()].copy_from_slice(bytes);
        }
    }

    impl PhysMemory for FakeMem {
        fn read(&self, pa: u64, len: usize) -> Option<&[u8]> {
            self.regions.iter().find_map(|(base, data)| {
                let off = pa.checked_sub(*base)?;
                let off = usize::try_from(off).ok()?;
                data.get(off..off.checked_add(len)?)
            })
        }
    }
}
