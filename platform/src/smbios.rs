//! SMBIOS: find the entry point (SMBIOS 2.1 `_SM_`, legacy DMI `_DMI_`, 3.0
//! `_SM3_`), walk the structure table, read the System Information (type 1)
//! manufacturer and product strings. Bounds-checked throughout: the table
//! comes from firmware.
//!
//! On x86 BIOS machines (SeaBIOS on QEMU `q35`/`pc`, qboot on `microvm`,
//! also when QEMU boots a PVH kernel with `-kernel`) the entry point sits on
//! a 16-byte boundary in 0xF0000..0x100000; [`find`] scans there. UEFI
//! machines give its address in the EFI configuration table instead; hand
//! that address straight to [`parse`].

use crate::bootinfo::PhysMemory;
use arrayvec::ArrayString;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemInfo {
    pub manufacturer: ArrayString<64>,
    pub product: ArrayString<64>,
    /// SMBIOS version from the entry point (major, minor).
    pub version: (u8, u8),
}

/// Why an SMBIOS table could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmbiosError {
    /// The entry point or the table is not in readable memory.
    Unreadable,
    /// No `_SM_`, `_SM3_` or `_DMI_` anchor at the given address.
    BadAnchor,
    /// An entry-point checksum does not sum to zero.
    BadChecksum,
    /// The entry point's length or the table's length/address is absurd.
    BadEntryPoint,
    /// A structure runs past the table or has a formatted area shorter than
    /// its 4-byte header.
    BadStructure,
    /// The table has no System Information (type 1) structure.
    NoSystemInfo,
}

impl SmbiosError {
    pub fn message(self) -> &'static str {
        match self {
            SmbiosError::Unreadable => "the SMBIOS entry point or table is not readable",
            SmbiosError::BadAnchor => "no SMBIOS anchor at the entry point",
            SmbiosError::BadChecksum => "an SMBIOS entry-point checksum is wrong",
            SmbiosError::BadEntryPoint => "the SMBIOS entry point has an absurd length or table",
            SmbiosError::BadStructure => "an SMBIOS structure runs past its table",
            SmbiosError::NoSystemInfo => "the SMBIOS table has no System Information structure",
        }
    }
}

impl core::fmt::Display for SmbiosError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// The BIOS area the entry point is searched in.
pub const BIOS_AREA: core::ops::Range<u64> = 0xf0000..0x100000;
/// Largest structure table accepted (SMBIOS 3 gives only a maximum size).
pub const MAX_TABLE_LEN: usize = 1 << 20;
/// Structures walked at most; a table with more is treated as ending there.
pub const MAX_STRUCTURES: usize = 4096;

const SM3_ANCHOR: &[u8] = b"_SM3_";
const SM_ANCHOR: &[u8] = b"_SM_";
const DMI_ANCHOR: &[u8] = b"_DMI_";
const TYPE_SYSTEM_INFO: u8 = 1;
const TYPE_END: u8 = 127;

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Where the structure table is, from a checked entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    addr: u64,
    /// Exact length (2.x) or maximum length (3.0).
    len: usize,
    /// 2.x: the number of structures it declares.
    count: Option<usize>,
    version: (u8, u8),
}

/// Checks the entry point at the start of `b` (which may run on past it).
fn entry_point(b: &[u8]) -> Result<Table, SmbiosError> {
    if b.starts_with(SM3_ANCHOR) {
        // 3.0: length @6 (0x18), version @7/@8, max size u32 @0xC, address u64 @0x10.
        let len = usize::from(*b.get(6).ok_or(SmbiosError::Unreadable)?);
        if !(0x18..=0x20).contains(&len) {
            return Err(SmbiosError::BadEntryPoint);
        }
        let ep = b.get(..len).ok_or(SmbiosError::Unreadable)?;
        if sum(ep) != 0 {
            return Err(SmbiosError::BadChecksum);
        }
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&ep[0x10..0x18]);
        return Ok(Table {
            addr: u64::from_le_bytes(addr),
            len: le_u32(ep, 0xc) as usize,
            count: None,
            version: (ep[7], ep[8]),
        });
    }
    if b.starts_with(SM_ANCHOR) {
        // 2.1: length @5 (0x1F; 0x1E from SMBIOS 2.1's own erratum), version
        // @6/@7, then the `_DMI_` intermediate entry point at 0x10.
        let len = usize::from(*b.get(5).ok_or(SmbiosError::Unreadable)?);
        if !(0x1e..=0x20).contains(&len) {
            return Err(SmbiosError::BadEntryPoint);
        }
        let ep = b.get(..len.max(0x1f)).ok_or(SmbiosError::Unreadable)?;
        if sum(&ep[..len]) != 0 {
            return Err(SmbiosError::BadChecksum);
        }
        if &ep[0x10..0x15] != DMI_ANCHOR {
            return Err(SmbiosError::BadAnchor);
        }
        let mut table = legacy(&ep[0x10..0x1f])?;
        table.version = (ep[6], ep[7]);
        return Ok(table);
    }
    if b.starts_with(DMI_ANCHOR) {
        let ep = b.get(..15).ok_or(SmbiosError::Unreadable)?;
        return legacy(ep);
    }
    Err(SmbiosError::BadAnchor)
}

/// The 15-byte `_DMI_` (intermediate) entry point: checksum over all 15,
/// table length u16 @6, address u32 @8, count u16 @0xC, BCD revision @0xE.
fn legacy(ep: &[u8]) -> Result<Table, SmbiosError> {
    if sum(ep) != 0 {
        return Err(SmbiosError::BadChecksum);
    }
    let bcd = ep[14];
    Ok(Table {
        addr: u64::from(le_u32(ep, 8)),
        len: usize::from(le_u16(ep, 6)),
        count: Some(usize::from(le_u16(ep, 12))),
        version: (bcd >> 4, bcd & 0xf),
    })
}

/// Scans the BIOS area for an entry point whose checksums hold; a 3.0 one
/// anywhere in the area is preferred over 2.x (as Linux does).
pub fn find(mem: &dyn PhysMemory) -> Option<u64> {
    find_in(mem, BIOS_AREA)
}

/// [`find`] over another range (16-byte aligned steps).
pub fn find_in(mem: &dyn PhysMemory, area: core::ops::Range<u64>) -> Option<u64> {
    let len = usize::try_from(area.end.checked_sub(area.start)?).ok()?;
    let bytes = mem.read(area.start, len)?;
    let hit = |anchor: &[u8]| {
        (0..bytes.len())
            .step_by(16)
            .find(|&off| bytes[off..].starts_with(anchor) && entry_point(&bytes[off..]).is_ok())
            .map(|off| area.start + off as u64)
    };
    hit(SM3_ANCHOR)
        .or_else(|| hit(SM_ANCHOR))
        .or_else(|| hit(DMI_ANCHOR))
}

/// BIOS machines: [`find`] the entry point, then [`parse`] it. `None` when
/// the BIOS area holds no valid entry point (UEFI-only machines, Firecracker).
pub fn find_and_parse(mem: &dyn PhysMemory) -> Option<Result<SystemInfo, SmbiosError>> {
    find(mem).map(|ep| parse(mem, ep))
}

/// Reads the entry point at `entry_point_pa`, then the System Information
/// structure from the table it names.
pub fn parse(mem: &dyn PhysMemory, entry_point_pa: u64) -> Result<SystemInfo, SmbiosError> {
    // Entry points are 0x1F (2.1, some firmware 0x20), 0x18 (3.0) or 0x0F
    // (legacy DMI) bytes; read the longest that is readable.
    let ep = [0x20, 0x1f, 0x18, 0x0f]
        .into_iter()
        .find_map(|n| mem.read(entry_point_pa, n))
        .ok_or(SmbiosError::Unreadable)?;
    let table = entry_point(ep)?;
    if table.len < 4 || table.len > MAX_TABLE_LEN {
        return Err(SmbiosError::BadEntryPoint);
    }
    let bytes = match table.count {
        // 2.x states the exact length: all of it must be readable.
        Some(_) => mem.read(table.addr, table.len),
        // 3.0 states a maximum, which may run past mapped memory.
        None => readable_prefix(mem, table.addr, table.len),
    }
    .ok_or(SmbiosError::Unreadable)?;
    let mut info = system_info(bytes, table.count)?;
    info.version = table.version;
    Ok(info)
}

/// The longest prefix of `len` bytes at `pa` that is readable, shrinking
/// to page boundaries; None if not even a structure header is.
fn readable_prefix(mem: &dyn PhysMemory, pa: u64, len: usize) -> Option<&[u8]> {
    let mut n = len;
    loop {
        if let Some(b) = mem.read(pa, n) {
            return Some(b);
        }
        let boundary = pa.checked_add(n as u64 - 1)? & !0xfff;
        let shorter = usize::try_from(boundary.checked_sub(pa)?).ok()?;
        if shorter < 4 || shorter >= n {
            return None;
        }
        n = shorter;
    }
}

/// Walks the structure table for type 1.
fn system_info(table: &[u8], count: Option<usize>) -> Result<SystemInfo, SmbiosError> {
    let mut at = 0;
    let limit = count.unwrap_or(MAX_STRUCTURES).min(MAX_STRUCTURES);
    for _ in 0..limit {
        let Some(header) = table.get(at..at + 4) else {
            break; // Table ends without an end-of-table structure: allowed.
        };
        let (kind, len) = (header[0], usize::from(header[1]));
        if len < 4 {
            return Err(SmbiosError::BadStructure);
        }
        let formatted = table.get(at..at + len).ok_or(SmbiosError::BadStructure)?;
        let strings_end = string_set_end(table, at + len).ok_or(SmbiosError::BadStructure)?;
        let strings = &table[at + len..strings_end];
        if kind == TYPE_SYSTEM_INFO && len >= 6 {
            return Ok(SystemInfo {
                manufacturer: string(strings, formatted[4]),
                product: string(strings, formatted[5]),
                version: (0, 0),
            });
        }
        if kind == TYPE_END {
            break;
        }
        at = strings_end;
    }
    Err(SmbiosError::NoSystemInfo)
}

/// The end (exclusive) of the string set starting at `start`: it ends with
/// two NULs in a row (an empty set is just those two).
fn string_set_end(table: &[u8], start: usize) -> Option<usize> {
    let rest = table.get(start..)?;
    rest.windows(2)
        .position(|w| w == [0, 0])
        .map(|i| start + i + 2)
}

/// String number `index` (1-based; 0 means none) of a string set, trimmed,
/// cut to 64 bytes at a character boundary, non-UTF-8 bytes as `?`.
fn string(strings: &[u8], index: u8) -> ArrayString<64> {
    let mut out = ArrayString::new();
    if index == 0 {
        return out;
    }
    let Some(raw) = strings.split(|&b| b == 0).nth(usize::from(index) - 1) else {
        return out;
    };
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if out.try_push(c).is_err() {
                return trimmed(out);
            }
        }
        if !chunk.invalid().is_empty() && out.try_push('?').is_err() {
            return trimmed(out);
        }
    }
    trimmed(out)
}

fn trimmed(s: ArrayString<64>) -> ArrayString<64> {
    ArrayString::from(s.trim()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
