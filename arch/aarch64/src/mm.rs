//! The kernel's page tables (4 KiB granule, 48-bit VAs, four levels).
//!
//! Virtual layout (TTBR1 unless noted):
//!
//! | range | what |
//! |---|---|
//! | `0 .. 0x0000_ffff_ffff_ffff` | user half (TTBR0): the app's pages (`map_page` with `user: true`) |
//! | `0xffff_0000_0000_0000 + pa` | direct map of RAM: Normal WB, RW, never executable |
//! | `0xffff_8000_0000_0000 ..` | MMIO window (`map_mmio`): Device-nGnRE, RW, never executable |
//! | `0xffff_a000_0000_0000 ..` | [`KERNEL_VM_BASE`]: the kernel's own `map_page` areas (thread stacks, ktests) |
//! | `0xffff_ffff_8000_0000 + (pa - load_base)` | the image: `.text` RX, `.rodata` R, `.data`/`.bss` RW |
//!
//! The image is mapped with 4 KiB pages so each section gets exactly its
//! rights (W^X); the page below the boot stack is left unmapped as a guard.
//! The direct map and MMIO window use 1 GiB / 2 MiB blocks and 4 KiB pages
//! respectively, with tables from a static pool in `.bss` (no allocator exists
//! that early). `map_page` takes its tables from the caller's allocator.
//!
//! TTBR0 stays enabled (TCR_EL1.EPD0 = 0, T0SZ = 16, the same granule and
//! cacheability as TTBR1) and points at one L0 table set at boot and never
//! switched: the app's pages go there (one address space). User pages are
//! `AP[1]` (EL0) pages: readable, writable if asked, always PXN (the kernel
//! never executes them) and UXN unless executable. ASID 0 and global
//! entries everywhere: nothing is ever switched, so nG buys nothing. PAN
//! (when the CPU has it) stops the kernel touching user pages except
//! through `user`'s unprivileged copies. Making a user page executable
//! (`map_page`, `protect_page`) first cleans the frame's D-cache lines and
//! invalidates its I-cache lines to the point of unification through the
//! direct map, as Linux does, so code the kernel wrote is what EL0 fetches.
//!
//! Table walks by software never take a lock: tables are never freed, so a
//! concurrent walk sees either the old or the new entry. Changes are
//! serialised by one spin lock and followed by the TLB maintenance the
//! architecture asks for.

use crate::sysreg::{MAIR_IDX_DEVICE, MAIR_IDX_NORMAL};
use core::arch::{asm, global_asm};
use core::ops::Range;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch_api::{MapError, PageFlags};
use spin::Mutex;

pub const PAGE_SIZE: usize = 4096;

/// Where the image is linked (`link.ld`).
pub const KERNEL_BASE: usize = 0xffff_ffff_8000_0000;
/// Start of the direct map of physical memory.
pub const DIRECT_MAP_BASE: usize = 0xffff_0000_0000_0000;
/// The MMIO window `map_mmio` hands addresses out of.
pub const MMIO_BASE: usize = 0xffff_8000_0000_0000;
pub const MMIO_END: usize = 0xffff_a000_0000_0000;
/// Kernel virtual-memory areas the kernel manages with `map_page`.
pub const KERNEL_VM_BASE: usize = MMIO_END;
/// Largest physical address the direct map covers (48-bit PAs).
const DIRECT_MAP_SIZE: u64 = MMIO_BASE as u64 - DIRECT_MAP_BASE as u64;

const GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;

// Descriptor bits (VMSAv8-64, stage 1).
const VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0-2) or page (level 3); clear = block.
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u64 = 2;
const ATTR_INDEX_MASK: u64 = 7 << ATTR_INDEX_SHIFT;
const AP_EL0: u64 = 1 << 6;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

pub use skiff_arch_api::KernelSections;

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __boot_stack_guard: u8;
    static __boot_stack_bottom: u8;
    static __kernel_end: u8;
    fn __mm_switch_ttbr1(ttbr1: u64);
}

// Switches TTBR1 while running from the identity map (TTBR0), so no
// instruction is fetched through TTBR1 while its tables change.
global_asm!(
    r#"
    .section .text, "ax"
    .global __mm_switch_ttbr1
__mm_switch_ttbr1:
    dsb     ishst
    msr     ttbr1_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ret
"#
);

fn sym_addr(s: &u8) -> usize {
    s as *const u8 as usize
}

/// The image's section boundaries from the linker script.
pub fn kernel_sections() -> KernelSections {
    // SAFETY: linker-script symbols; only their addresses are taken.
    unsafe {
        KernelSections {
            text: sym_addr(&__image_start)..sym_addr(&__text_end),
            rodata: sym_addr(&__rodata_start)..sym_addr(&__rodata_end),
            data: sym_addr(&__data_start)..sym_addr(&__kernel_end),
        }
    }
}

/// Physical load base, set once by `init`.
static LOAD_BASE: AtomicU64 = AtomicU64::new(0);
/// Physical addresses of the TTBR1 and TTBR0 root tables.
static TTBR1_ROOT: AtomicU64 = AtomicU64::new(0);
static TTBR0_ROOT: AtomicU64 = AtomicU64::new(0);

const POOL_TABLES: usize = 64;

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Page tables for the boot mappings (image, direct map, MMIO window).
#[repr(C, align(4096))]
struct Pool([Table; POOL_TABLES]);

#[unsafe(link_section = ".bss.pagetables")]
static mut POOL: Pool = Pool([const { Table([0; 512]) }; POOL_TABLES]);

const MAX_MMIO_MAPPINGS: usize = 32;

/// A `map_mmio` mapping: physical page base, length in pages, virtual base.
#[derive(Clone, Copy)]
struct MmioMapping {
    pa: u64,
    pages: usize,
    va: usize,
}

/// Mutable state behind the page-table lock.
struct State {
    pool_next: usize,
    mmio_next: usize,
    mmio: [Option<MmioMapping>; MAX_MMIO_MAPPINGS],
}

static STATE: Mutex<State> = Mutex::new(State {
    pool_next: 0,
    mmio_next: MMIO_BASE,
    mmio: [None; MAX_MMIO_MAPPINGS],
});

fn image_range() -> Range<usize> {
    // SAFETY: linker symbols; addresses only.
    unsafe { sym_addr(&__image_start)..sym_addr(&__kernel_end) }
}

/// Physical address of a kernel image virtual address.
/// Physical address of `va` inside the kernel image (after `init`).
pub(crate) fn image_phys(va: usize) -> u64 {
    image_pa(va)
}

/// Physical addresses of the TTBR0 and TTBR1 roots `init` switched to.
pub(crate) fn roots() -> (u64, u64) {
    (
        TTBR0_ROOT.load(Ordering::Relaxed),
        TTBR1_ROOT.load(Ordering::Relaxed),
    )
}

fn image_pa(va: usize) -> u64 {
    (va - KERNEL_BASE) as u64 + LOAD_BASE.load(Ordering::Relaxed)
}

/// A pointer to entry `idx` of the table at physical `table_pa`. Tables in the
/// image (the pool) are reached through the image mapping, others through the
/// direct map (callers of `map_page` hand out direct-mapped frames).
fn entry_ptr(table_pa: u64, idx: usize) -> *mut u64 {
    let base = LOAD_BASE.load(Ordering::Relaxed);
    let image = image_range();
    let size = (image.end - image.start) as u64;
    let va = if table_pa >= base && table_pa - base < size {
        KERNEL_BASE + (table_pa - base) as usize
    } else {
        DIRECT_MAP_BASE + table_pa as usize
    };
    (va as *mut u64).wrapping_add(idx)
}

fn read_entry(p: *mut u64) -> u64 {
    // SAFETY: `p` comes from `entry_ptr` for a table reachable from a root
    // (or about to be linked): a mapped, aligned, 4 KiB page-table page.
    unsafe { read_volatile(p) }
}

fn write_entry(p: *mut u64, value: u64) {
    // SAFETY: as in `read_entry`; callers hold the page-table lock.
    unsafe { write_volatile(p, value) }
}

fn index(va: usize, level: usize) -> usize {
    (va >> (39 - 9 * level)) & 511
}

/// Root table (physical) for `va`, or None if `va` is not canonical.
fn root_for(va: usize) -> Option<u64> {
    match va >> 48 {
        0xffff => Some(TTBR1_ROOT.load(Ordering::Relaxed)),
        0 => Some(TTBR0_ROOT.load(Ordering::Relaxed)),
        _ => None,
    }
    .filter(|&r| r != 0)
}

/// Walks to the entry for `va` at `level`, creating missing tables with
/// `alloc` (zeroed pages, physical addresses). A block on the way means the
/// address is already covered: `AlreadyMapped`.
fn walk_create(
    root: u64,
    va: usize,
    level: usize,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<*mut u64, MapError> {
    let mut table = root;
    for l in 0..level {
        let e = entry_ptr(table, index(va, l));
        let d = read_entry(e);
        if d & VALID == 0 {
            let new = alloc().ok_or(MapError::OutOfMemory)?;
            if new & (PAGE_SIZE as u64 - 1) != 0 || new & !ADDR_MASK != 0 {
                return Err(MapError::BadAddress);
            }
            // Make the zeroed table visible to the walker before linking it.
            // SAFETY: barrier only.
            unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
            write_entry(e, new | VALID | TABLE_OR_PAGE);
            table = new;
        } else if d & TABLE_OR_PAGE == 0 {
            return Err(MapError::AlreadyMapped);
        } else {
            table = d & ADDR_MASK;
        }
    }
    Ok(entry_ptr(table, index(va, level)))
}

/// A software walk: the leaf entry for `va`, its level, or None if unmapped.
fn walk(va: usize) -> Option<(u64, usize)> {
    let mut table = root_for(va)?;
    for level in 0..4 {
        let d = read_entry(entry_ptr(table, index(va, level)));
        if d & VALID == 0 {
            return None;
        }
        if level == 3 || d & TABLE_OR_PAGE == 0 {
            // Blocks exist at levels 1 and 2 only; a level-0 "block" is invalid.
            if level == 0 || (level == 3 && d & TABLE_OR_PAGE == 0) {
                return None;
            }
            return Some((d, level));
        }
        table = d & ADDR_MASK;
    }
    None
}

fn level_size(level: usize) -> u64 {
    1u64 << (39 - 9 * level)
}

/// Permission and attribute bits of a Normal-memory leaf.
fn leaf_bits(flags: PageFlags) -> u64 {
    let mut d = VALID | ACCESS_FLAG | SH_INNER | (MAIR_IDX_NORMAL << ATTR_INDEX_SHIFT);
    if !flags.write {
        d |= AP_READ_ONLY;
    }
    if flags.user {
        // The kernel never executes user pages.
        d |= AP_EL0 | PXN;
        if !flags.execute {
            d |= UXN;
        }
    } else {
        d |= UXN;
        if !flags.execute {
            d |= PXN;
        }
    }
    d
}

fn flags_of(d: u64) -> PageFlags {
    let user = d & AP_EL0 != 0;
    PageFlags {
        write: d & AP_READ_ONLY == 0,
        execute: if user { d & UXN == 0 } else { d & PXN == 0 },
        user,
    }
}

/// Device-nGnRE, kernel RW, never executable.
const DEVICE_BITS: u64 =
    VALID | TABLE_OR_PAGE | ACCESS_FLAG | (MAIR_IDX_DEVICE << ATTR_INDEX_SHIFT) | PXN | UXN;

fn flush_page(va: usize) {
    // SAFETY: TLB maintenance for one VA, all ASIDs, inner shareable.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vaae1is, {x}",
            "dsb ish",
            "isb",
            x = in(reg) ((va >> 12) as u64) & 0x0000_0fff_ffff_ffff,
            options(nostack, preserves_flags)
        )
    };
}

fn publish() {
    // SAFETY: barriers only: new entries (invalid → valid) need no TLBI.
    unsafe { asm!("dsb ishst", "isb", options(nostack, preserves_flags)) };
}

fn pool_alloc(state: &mut State) -> Option<u64> {
    if state.pool_next >= POOL_TABLES {
        return None;
    }
    // SAFETY: only the address of the pool entry is taken; the pool is
    // zeroed .bss and each table is handed out once.
    let va = unsafe { &raw mut POOL.0[state.pool_next] } as usize;
    state.pool_next += 1;
    Some(image_pa(va))
}

/// Builds the kernel's tables and switches to them. Called once by `boot`
/// with the coarse boot tables active. Returns the image's physical range.
pub(crate) fn init(load_base: u64, dtb: u64) -> Range<u64> {
    LOAD_BASE.store(load_base, Ordering::Relaxed);
    let mut state = STATE.lock();
    let root1 = pool_alloc(&mut state).expect("page-table pool empty at boot");
    let root0 = pool_alloc(&mut state).expect("page-table pool empty at boot");

    // SAFETY: linker symbols; addresses only.
    let (guard, stack_bottom) = unsafe {
        (
            sym_addr(&__boot_stack_guard),
            sym_addr(&__boot_stack_bottom),
        )
    };
    let s = kernel_sections();
    let image = image_range();
    let mut va = image.start;
    while va < image.end {
        let flags = if s.text.contains(&va) {
            Some(PageFlags::KERNEL_RX)
        } else if va < s.rodata.end {
            Some(PageFlags::KERNEL_RO)
        } else if (guard..stack_bottom).contains(&va) {
            None
        } else {
            Some(PageFlags::KERNEL_RW)
        };
        if let Some(flags) = flags {
            let e = walk_create(root1, va, 3, &mut || pool_alloc(&mut state))
                .expect("page-table pool too small for the kernel image");
            write_entry(e, image_pa(va) | leaf_bits(flags) | TABLE_OR_PAGE);
        }
        va += PAGE_SIZE;
    }

    // Direct map: the 1 GiB blocks holding the image and the DTB.
    let image_len = (image.end - image.start) as u64;
    for pa in [load_base, load_base + image_len - 1, dtb] {
        if pa == 0 {
            continue; // no DTB was passed
        }
        map_direct_gib(&mut state, root1, pa & !(GIB - 1))
            .expect("page-table pool too small for the direct map");
    }

    TTBR1_ROOT.store(root1, Ordering::Relaxed);
    TTBR0_ROOT.store(root0, Ordering::Relaxed);
    // SAFETY: `__mm_switch_ttbr1` is position independent and identity
    // mapped by the boot tables (TTBR0), so it runs at its physical address
    // while TTBR1 changes; the new TTBR1 maps everything the high half uses
    // from here on (code RX, stack and data RW). It clobbers only x0 and
    // returns through x30 to the high half.
    unsafe {
        let phys = image_pa(__mm_switch_ttbr1 as *const () as usize);
        asm!("dsb ishst", "blr {f}", f = in(reg) phys, in("x0") root1, out("x30") _);
        // The identity map is no longer needed: TTBR0 becomes the empty user table.
        asm!(
            "msr ttbr0_el1, {r}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            r = in(reg) root0,
            options(nostack, preserves_flags)
        );
    }
    load_base..load_base + image_len
}

fn map_direct_gib(state: &mut State, root1: u64, pa: u64) -> Result<(), MapError> {
    if pa >= DIRECT_MAP_SIZE {
        return Err(MapError::BadAddress);
    }
    let va = DIRECT_MAP_BASE + pa as usize;
    let e = match walk_create(root1, va, 1, &mut || pool_alloc(state)) {
        Ok(e) => e,
        Err(MapError::AlreadyMapped) => return Ok(()),
        Err(MapError::OutOfMemory) => return Err(MapError::PoolExhausted),
        Err(e) => return Err(e),
    };
    if read_entry(e) & VALID == 0 {
        write_entry(e, pa | leaf_bits(PageFlags::KERNEL_RW));
    }
    Ok(())
}

/// Direct-map VA of physical `pa` (no checks).
pub fn phys_to_virt(pa: u64) -> usize {
    DIRECT_MAP_BASE + pa as usize
}

/// Physical address behind `va`, by walking the tables.
pub fn virt_to_phys(va: usize) -> Option<u64> {
    translate(va).map(|(pa, _)| pa)
}

/// Maps RAM `pa` into the direct map (Normal WB, RW, never executable):
/// 1 GiB blocks where the range covers a whole aligned GiB, else 2 MiB
/// blocks (the range is rounded out to 2 MiB). Tables from the static pool.
/// Idempotent: already-covered parts are left alone.
pub fn map_direct(pa: Range<u64>) -> Result<(), MapError> {
    if pa.start >= pa.end {
        return Ok(());
    }
    if pa.end > DIRECT_MAP_SIZE {
        return Err(MapError::BadAddress);
    }
    let mut state = STATE.lock();
    let root1 = TTBR1_ROOT.load(Ordering::Relaxed);
    let mut cur = pa.start & !(TWO_MIB - 1);
    let end = pa.end.div_ceil(TWO_MIB) * TWO_MIB;
    while cur < end {
        if cur.is_multiple_of(GIB) && end - cur >= GIB {
            map_direct_gib(&mut state, root1, cur)?;
            cur += GIB;
            continue;
        }
        let va = DIRECT_MAP_BASE + cur as usize;
        match walk_create(root1, va, 2, &mut || pool_alloc(&mut state)) {
            Ok(e) => {
                if read_entry(e) & VALID == 0 {
                    write_entry(e, cur | leaf_bits(PageFlags::KERNEL_RW));
                }
            }
            Err(MapError::AlreadyMapped) => {}
            Err(MapError::OutOfMemory) => return Err(MapError::PoolExhausted),
            Err(e) => return Err(e),
        }
        cur += TWO_MIB;
    }
    publish();
    Ok(())
}

/// Maps device registers at `pa..pa+len` Device-nGnRE in the MMIO window and
/// returns the VA of `pa`. Page granular; an existing mapping that covers the
/// range is reused; each new mapping is followed by an unmapped guard page.
pub fn map_mmio(pa: u64, len: usize) -> Result<usize, MapError> {
    if len == 0
        || pa
            .checked_add(len as u64)
            .is_none_or(|end| end > DIRECT_MAP_SIZE)
    {
        return Err(MapError::BadAddress);
    }
    let page_pa = pa & !(PAGE_SIZE as u64 - 1);
    let offset = (pa - page_pa) as usize;
    let pages = (offset + len).div_ceil(PAGE_SIZE);
    let mut state = STATE.lock();
    for m in state.mmio.iter().flatten() {
        let m_end = m.pa + (m.pages * PAGE_SIZE) as u64;
        if pa >= m.pa && pa + len as u64 <= m_end {
            return Ok(m.va + (pa - m.pa) as usize);
        }
    }
    let slot = state
        .mmio
        .iter()
        .position(Option::is_none)
        .ok_or(MapError::PoolExhausted)?;
    let va = state.mmio_next;
    let span = (pages + 1) * PAGE_SIZE;
    if va + span > MMIO_END {
        return Err(MapError::PoolExhausted);
    }
    let root1 = TTBR1_ROOT.load(Ordering::Relaxed);
    for i in 0..pages {
        let page_va = va + i * PAGE_SIZE;
        let e = match walk_create(root1, page_va, 3, &mut || pool_alloc(&mut state)) {
            Ok(e) => e,
            Err(MapError::OutOfMemory) => return Err(MapError::PoolExhausted),
            Err(e) => return Err(e),
        };
        write_entry(e, (page_pa + (i * PAGE_SIZE) as u64) | DEVICE_BITS);
    }
    publish();
    state.mmio_next = va + span;
    state.mmio[slot] = Some(MmioMapping {
        pa: page_pa,
        pages,
        va,
    });
    Ok(va + offset)
}

/// Is `va` in a region the arch manages itself (direct map, MMIO window,
/// the image)?
fn reserved(va: usize) -> bool {
    (DIRECT_MAP_BASE..MMIO_END).contains(&va) || image_range().contains(&va)
}

fn check_page_request(va: usize, flags: PageFlags) -> Result<(), MapError> {
    if flags.write && flags.execute {
        return Err(MapError::WriteExecute);
    }
    if !va.is_multiple_of(PAGE_SIZE) || root_for(va).is_none() || reserved(va) {
        return Err(MapError::BadAddress);
    }
    if flags.user != (va >> 48 == 0) {
        // User pages live in the user half, kernel pages in the kernel half.
        return Err(MapError::BadAddress);
    }
    Ok(())
}

/// Maps the 4 KiB page `va` → `pa` with `flags`. Missing tables come from
/// `alloc` (zeroed, direct-mapped frames). W^X is enforced.
pub fn map_page(
    va: usize,
    pa: u64,
    flags: PageFlags,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), MapError> {
    check_page_request(va, flags)?;
    if !pa.is_multiple_of(PAGE_SIZE as u64) || pa & !ADDR_MASK != 0 {
        return Err(MapError::BadAddress);
    }
    let root = root_for(va).ok_or(MapError::BadAddress)?;
    let _state = STATE.lock();
    let e = walk_create(root, va, 3, alloc)?;
    if read_entry(e) & VALID != 0 {
        return Err(MapError::AlreadyMapped);
    }
    if flags.user && flags.execute {
        sync_icache_frame(pa);
    }
    write_entry(e, pa | leaf_bits(flags) | TABLE_OR_PAGE);
    publish();
    Ok(())
}

/// Makes the instructions in the RAM frame at `pa` visible to instruction
/// fetch at any VA: D-cache clean and I-cache invalidate to the point of
/// unification, by the frame's direct-map address (both broadcast to the
/// inner-shareable domain), skipped where CTR_EL0 says the CPU keeps them
/// coherent (IDC, DIC). Frames outside the direct map are left alone.
fn sync_icache_frame(pa: u64) {
    let va = phys_to_virt(pa);
    if pa >= DIRECT_MAP_SIZE || walk(va).is_none() {
        return;
    }
    let ctr: u64;
    // SAFETY: reads CTR_EL0.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let dline = 4usize << ((ctr >> 16) & 0xf);
    let iline = 4usize << (ctr & 0xf);
    if ctr & (1 << 28) == 0 {
        for line in (va..va + PAGE_SIZE).step_by(dline) {
            // SAFETY: cache maintenance on a mapped direct-map address.
            unsafe { asm!("dc cvau, {}", in(reg) line, options(nostack, preserves_flags)) };
        }
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
    if ctr & (1 << 29) == 0 {
        for line in (va..va + PAGE_SIZE).step_by(iline) {
            // SAFETY: as above.
            unsafe { asm!("ic ivau, {}", in(reg) line, options(nostack, preserves_flags)) };
        }
        // SAFETY: barrier only.
        unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
    }
    // SAFETY: barrier only.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// The level-3 entry of a 4 KiB mapping at `va` (not a block), if any.
fn page_entry(va: usize) -> Option<*mut u64> {
    let root = root_for(va)?;
    let mut table = root;
    for level in 0..3 {
        let d = read_entry(entry_ptr(table, index(va, level)));
        if d & VALID == 0 || d & TABLE_OR_PAGE == 0 {
            return None;
        }
        table = d & ADDR_MASK;
    }
    let e = entry_ptr(table, index(va, 3));
    (read_entry(e) & VALID != 0).then_some(e)
}

/// Removes the 4 KiB mapping at `va` (made by `map_page`) and returns its
/// frame. Block mappings and the arch's own regions are left alone. The
/// TLB entry is invalidated on every CPU (`TLBI VAAE1IS`, broadcast).
pub fn unmap_page(va: usize) -> Option<u64> {
    if !va.is_multiple_of(PAGE_SIZE) || reserved(va) {
        return None;
    }
    let _state = STATE.lock();
    let e = page_entry(va)?;
    let old = read_entry(e);
    write_entry(e, 0);
    flush_page(va);
    Some(old & ADDR_MASK)
}

/// Changes the rights of the 4 KiB mapping at `va`. W^X is enforced.
pub fn protect_page(va: usize, flags: PageFlags) -> Result<(), MapError> {
    check_page_request(va, flags)?;
    let _state = STATE.lock();
    let e = page_entry(va).ok_or(MapError::BadAddress)?;
    let old = read_entry(e);
    if flags.user && flags.execute {
        sync_icache_frame(old & ADDR_MASK);
    }
    let attrs = old & ATTR_INDEX_MASK;
    let new = (old & ADDR_MASK) | (leaf_bits(flags) & !ATTR_INDEX_MASK) | attrs | TABLE_OR_PAGE;
    write_entry(e, new);
    flush_page(va);
    Ok(())
}

/// Physical address and rights of `va`, or None if unmapped.
pub fn translate(va: usize) -> Option<(u64, PageFlags)> {
    let (d, level) = walk(va)?;
    let size = level_size(level);
    let pa = (d & ADDR_MASK & !(size - 1)) + (va as u64 & (size - 1));
    Some((pa, flags_of(d)))
}

/// `len` bytes of physical memory at `pa` through the direct map, or None if
/// any part of it is not mapped there (or the range wraps).
pub fn phys_slice(pa: u64, len: usize) -> Option<&'static [u8]> {
    let end = pa.checked_add(len as u64)?;
    if end > DIRECT_MAP_SIZE {
        return None;
    }
    let mut cur = pa;
    while cur < end {
        let va = phys_to_virt(cur);
        let (d, level) = walk(va)?;
        // Direct-map entries are Normal memory mapped by this module.
        if d & ATTR_INDEX_MASK != MAIR_IDX_NORMAL << ATTR_INDEX_SHIFT {
            return None;
        }
        let size = level_size(level);
        cur = (cur & !(size - 1)) + size;
    }
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: every byte of `pa..end` is mapped readable in the direct map
    // (checked above), mappings there are never removed, and the memory is
    // firmware/boot data the kernel only reads through this view.
    Some(unsafe { core::slice::from_raw_parts(phys_to_virt(pa) as *const u8, len) })
}
