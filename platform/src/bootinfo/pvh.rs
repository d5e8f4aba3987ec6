//! PVH boot: Xen's `struct hvm_start_info`
//! (`xen/include/public/arch-x86/hvm/start_info.h`), which QEMU's `-kernel`
//! PVH loader, Firecracker and Xen PVH hand over in `%ebx`.
//!
//! Layout (all little endian; a 0 address means "not present"):
//! `magic u32 @0, version u32 @4, flags u32 @8, nr_modules u32 @12,
//! modlist_paddr u64 @16, cmdline_paddr u64 @24, rsdp_paddr u64 @32`, and
//! from version 1 `memmap_paddr u64 @40, memmap_entries u32 @48`.
//! Modules are `{paddr u64, size u64, cmdline_paddr u64, reserved u64}`;
//! memory map entries are `{addr u64, size u64, type u32, reserved u32}`
//! with E820 type numbers.

use super::{
    le_u32, le_u64, read_cmdline, BootError, BootInfo, BootProtocol, MemoryKind, MemoryMapBuilder,
    PhysMemory, MAX_CMDLINE, MAX_RAW_REGIONS,
};

pub const MAGIC: u32 = 0x336e_c578;
const HEADER_V0_LEN: usize = 40;
const HEADER_V1_LEN: usize = 56;
const MODULE_LEN: usize = 32;
const MEMMAP_ENTRY_LEN: usize = 24;
/// More modules than this in start_info is corrupt, not a big initrd set.
const MAX_PVH_MODULES: u32 = 64;

pub fn parse(mem: &dyn PhysMemory, start_info: u64) -> Result<BootInfo, BootError> {
    let head = mem
        .read(start_info, HEADER_V0_LEN)
        .ok_or(BootError::Unreadable("the PVH start_info is not readable"))?;
    if le_u32(head, 0) != MAGIC {
        return Err(BootError::BadPvhMagic);
    }
    let version = le_u32(head, 4);
    if version == 0 {
        // Version 0 carries no memory map: the guest must ask Xen
        // (XENMEM_memory_map) or read CMOS, neither of which happens here.
        return Err(BootError::Unsupported(
            "PVH start_info version 0 has no memory map (needs XENMEM_memory_map)",
        ));
    }
    let si = mem
        .read(start_info, HEADER_V1_LEN)
        .ok_or(BootError::Unreadable("the PVH start_info is not readable"))?;
    let mut info = BootInfo::empty(BootProtocol::Pvh);

    let memmap = le_u64(si, 40);
    let entries = le_u32(si, 48);
    if memmap == 0 || entries == 0 {
        return Err(BootError::NoMemory);
    }
    if entries as usize > MAX_RAW_REGIONS {
        return Err(BootError::TooMany(
            "PVH memmap_entries is larger than Skiff accepts",
        ));
    }
    let table = mem
        .read(memmap, entries as usize * MEMMAP_ENTRY_LEN)
        .ok_or(BootError::Unreadable("the PVH memory map is not readable"))?;
    let mut map = MemoryMapBuilder::new();
    for e in table.chunks_exact(MEMMAP_ENTRY_LEN) {
        map.add(
            le_u64(e, 0),
            le_u64(e, 8),
            MemoryKind::from_e820(le_u32(e, 16)),
        )?;
    }
    info.memory = map.finish()?;

    let cmdline = le_u64(si, 24);
    if cmdline != 0 {
        (info.cmdline, info.cmdline_truncated) = read_cmdline(mem, cmdline, MAX_CMDLINE)?;
    }

    let rsdp = le_u64(si, 32);
    info.rsdp = (rsdp != 0).then_some(rsdp);

    let nr_modules = le_u32(si, 12);
    let modlist = le_u64(si, 16);
    if nr_modules > MAX_PVH_MODULES {
        return Err(BootError::TooMany("PVH nr_modules is absurd"));
    }
    if nr_modules > 0 {
        if modlist == 0 {
            return Err(BootError::Unreadable(
                "PVH lists modules but no module list",
            ));
        }
        let list = mem
            .read(modlist, nr_modules as usize * MODULE_LEN)
            .ok_or(BootError::Unreadable("the PVH module list is not readable"))?;
        for (i, m) in list.chunks_exact(MODULE_LEN).enumerate() {
            // By convention (Linux, QEMU's loader) module 0 is the initrd.
            info.add_module(le_u64(m, 0), le_u64(m, 8), i == 0)?;
        }
    }
    Ok(info)
}
