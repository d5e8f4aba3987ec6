//! The Linux x86 boot protocol: `struct boot_params` (the "zero page"), as
//! documented in Linux `Documentation/arch/x86/zero-page.rst` and
//! `boot.rst`. Offsets used (all little endian):
//!
//! | offset | field |
//! |---|---|
//! | 0x070 | `acpi_rsdp_addr` (u64) |
//! | 0x0c0 / 0x0c4 / 0x0c8 | `ext_ramdisk_image`, `ext_ramdisk_size`, `ext_cmd_line_ptr` (high 32 bits) |
//! | 0x1e8 | `e820_entries` (u8) |
//! | 0x1f1 | `struct setup_header` begins |
//! | 0x202 | header magic "HdrS"; 0x206 protocol version (u16) |
//! | 0x218 / 0x21c | `ramdisk_image`, `ramdisk_size` |
//! | 0x228 | `cmd_line_ptr`; 0x238 `cmdline_size` (protocol 2.06+) |
//! | 0x2d0 | `e820_table`: 128 × `{addr u64, size u64, type u32}` (20 bytes) |
//!
//! E820 maps longer than 128 entries arrive as `SETUP_E820_EXT` setup_data;
//! Skiff does not read setup_data yet and uses the first 128.

use super::{
    le_u16, le_u32, le_u64, read_cmdline, BootError, BootInfo, BootProtocol, MemoryKind,
    MemoryMapBuilder, PhysMemory, MAX_CMDLINE,
};

const ZERO_PAGE_LEN: usize = 4096;
const HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const E820_MAX: usize = 128;
const E820_ENTRY_LEN: usize = 20;

pub fn parse(mem: &dyn PhysMemory, boot_params: u64) -> Result<BootInfo, BootError> {
    let bp = mem
        .read(boot_params, ZERO_PAGE_LEN)
        .ok_or(BootError::Unreadable(
            "the Linux boot_params page is not readable",
        ))?;
    if le_u32(bp, 0x202) != HDR_MAGIC {
        return Err(BootError::BadBootParams);
    }
    let version = le_u16(bp, 0x206);
    let mut info = BootInfo::empty(BootProtocol::LinuxBootParams);

    let entries = usize::from(bp[0x1e8]);
    if entries > E820_MAX {
        return Err(BootError::TooMany(
            "boot_params e820_entries is larger than the table",
        ));
    }
    let mut map = MemoryMapBuilder::new();
    for i in 0..entries {
        let e = 0x2d0 + i * E820_ENTRY_LEN;
        map.add(
            le_u64(bp, e),
            le_u64(bp, e + 8),
            MemoryKind::from_e820(le_u32(bp, e + 16)),
        )?;
    }
    info.memory = map.finish()?;

    let cmdline = u64::from(le_u32(bp, 0x228)) | u64::from(le_u32(bp, 0x0c8)) << 32;
    if cmdline != 0 {
        // Before 2.06 the limit was 255 bytes; from 2.06 the header says.
        let limit = if version >= 0x0206 {
            le_u32(bp, 0x238) as usize
        } else {
            255
        };
        (info.cmdline, info.cmdline_truncated) =
            read_cmdline(mem, cmdline, limit.min(MAX_CMDLINE))?;
    }

    let ramdisk = u64::from(le_u32(bp, 0x218)) | u64::from(le_u32(bp, 0x0c0)) << 32;
    let ramdisk_size = u64::from(le_u32(bp, 0x21c)) | u64::from(le_u32(bp, 0x0c4)) << 32;
    if ramdisk != 0 {
        info.add_module(ramdisk, ramdisk_size, true)?;
    }

    let rsdp = le_u64(bp, 0x070);
    info.rsdp = (rsdp != 0).then_some(rsdp);
    Ok(info)
}
