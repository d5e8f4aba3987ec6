//! The kernel's page tables (4-level paging).
//!
//! Layout (see docs/arch-contract.md):
//! * `0 .. 1 << 47` — the app's pages ([`map_page`] with `PageFlags::user`):
//!   U set at every table level on the way, never GLOBAL; SMEP/SMAP (when
//!   the CPU has them) keep the kernel out except through `user::copy_*`.
//! * `0xffff_8000_0000_0000 + pa` — direct map, RW+NX, 2 MiB pages; the first
//!   4 GiB at boot, more RAM through [`map_direct`].
//! * `0xffff_c000_0000_0000 ..` — MMIO window ([`map_mmio`]), 4 KiB, PCD|PWT.
//! * `0xffff_d000_0000_0000 ..` — [`KERNEL_VM_BASE`]: the kernel's own
//!   [`map_page`] areas (thread stacks, ktests).
//! * `0xffff_ffff_8000_0000 + pa` — the kernel image, 4 KiB pages, W^X from
//!   the linker-script symbols; stack guard pages left unmapped.
//!
//! Tables the arch itself needs come from a static pool in `.bss`; tables
//! for [`map_page`] come from the caller's frame allocator. All changes are
//! serialised by one spin lock taken with interrupts off.

use crate::boot::{sym_addr, KERNEL_VMA};
use crate::cpu::{self, feature};
use core::cell::UnsafeCell;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use skiff_arch_api::{KernelSections, MapError, PageFlags};
use spin::Mutex;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

pub const PAGE_SIZE: usize = 4096;
const LARGE_PAGE: u64 = 2 << 20;

/// Base of the direct map of physical memory.
pub const DIRECT_MAP_BASE: usize = 0xffff_8000_0000_0000;
/// The direct map may cover up to 64 TiB (PML4 slots 256..384).
const DIRECT_MAP_LIMIT: u64 = 64 << 40;
/// Mapped at boot: the first 4 GiB.
const DIRECT_MAP_BOOT: u64 = 4 << 30;
/// The MMIO window: one PML4 slot.
pub const MMIO_BASE: usize = 0xffff_c000_0000_0000;
const MMIO_SIZE: usize = 512 << 30;
/// Kernel virtual-memory areas the kernel manages with `map_page` (thread
/// stacks, ktests): PML4 slot 416 onwards.
pub const KERNEL_VM_BASE: usize = 0xffff_d000_0000_0000;
/// The kernel image region: the top 2 GiB.
const IMAGE_BASE: usize = KERNEL_VMA as usize;

/// Page-table pages for the arch's own mappings (image, direct map, MMIO).
const POOL_PAGES: usize = 192;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[PageTable; POOL_PAGES]>);
// SAFETY: pages are handed out once each (`POOL_NEXT` is atomic) and then
// only touched under `LOCK`.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([const { PageTable::new() }; POOL_PAGES]));
static POOL_NEXT: AtomicUsize = AtomicUsize::new(0);
/// Physical address of the kernel's PML4.
static ROOT: AtomicU64 = AtomicU64::new(0);
/// Set once CR3 holds the kernel's tables (tables are then reached through
/// the direct map; before, through the boot tables' high 1 GiB).
static DIRECT_ACTIVE: AtomicBool = AtomicBool::new(false);
static LOCK: Mutex<()> = Mutex::new(());
/// NX bit when the CPU has it (EFER.NXE was set by the entry code).
static NX: AtomicU64 = AtomicU64::new(0);
/// Next free virtual address in the MMIO window.
static MMIO_NEXT: AtomicUsize = AtomicUsize::new(MMIO_BASE);

/// VA ranges of the kernel image's sections (from the linker script).
pub fn kernel_sections() -> KernelSections {
    KernelSections {
        text: sym_addr!(__text_start)..sym_addr!(__text_end),
        rodata: sym_addr!(__rodata_start)..sym_addr!(__rodata_end),
        data: sym_addr!(__data_start)..sym_addr!(__kernel_end),
    }
}

/// Physical address of a kernel-image virtual address (no table walk).
pub(crate) fn image_virt_to_phys(va: usize) -> u64 {
    va as u64 - KERNEL_VMA
}

pub fn phys_to_virt(pa: u64) -> usize {
    DIRECT_MAP_BASE + pa as usize
}

fn nx() -> F {
    F::from_bits_truncate(NX.load(Ordering::Relaxed))
}

/// A page-table page by physical address.
fn table(pa: u64) -> *mut PageTable {
    if DIRECT_ACTIVE.load(Ordering::Relaxed) {
        phys_to_virt(pa) as *mut PageTable
    } else {
        // The boot tables map the first 1 GiB at KERNEL_VMA; every table
        // built before the switch comes from the pool inside the image.
        (pa + KERNEL_VMA) as *mut PageTable
    }
}

fn pool_alloc() -> Option<u64> {
    let i = POOL_NEXT.fetch_add(1, Ordering::Relaxed);
    if i >= POOL_PAGES {
        POOL_NEXT.store(POOL_PAGES, Ordering::Relaxed);
        return None;
    }
    // SAFETY: index `i` was handed out exactly once; only its address is
    // taken here.
    let va = unsafe { (POOL.0.get() as *mut PageTable).add(i) } as usize;
    Some(image_virt_to_phys(va))
}

fn index(va: usize, level: u8) -> usize {
    (va >> (12 + 9 * (u32::from(level) - 1))) & 511
}

fn is_canonical(va: usize) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Returns the entry for `va` at `leaf_level` (1 = 4 KiB, 2 = 2 MiB),
/// creating missing tables with `alloc`. Caller holds `LOCK`.
fn entry_create(
    va: usize,
    leaf_level: u8,
    user: bool,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<&'static mut PageTableEntry, MapError> {
    let mut table_pa = ROOT.load(Ordering::Relaxed);
    for level in (leaf_level + 1..=4).rev() {
        // SAFETY: `table_pa` is a page-table page of the kernel's tables,
        // reachable through `table`; the caller holds LOCK.
        let t = unsafe { &mut *table(table_pa) };
        let e = &mut t[index(va, level)];
        if e.is_unused() {
            let pa = alloc().ok_or(MapError::OutOfMemory)?;
            // SAFETY: `alloc` handed us a fresh frame for a table; clear it.
            unsafe { (*table(pa)).zero() };
            let mut flags = F::PRESENT | F::WRITABLE;
            if user {
                flags |= F::USER_ACCESSIBLE;
            }
            e.set_addr(PhysAddr::new(pa), flags);
        } else if e.flags().contains(F::HUGE_PAGE) {
            return Err(MapError::AlreadyMapped);
        } else if user && !e.flags().contains(F::USER_ACCESSIBLE) {
            e.set_flags(e.flags() | F::USER_ACCESSIBLE);
        }
        table_pa = e.addr().as_u64();
    }
    // SAFETY: as above.
    let t = unsafe { &mut *table(table_pa) };
    Ok(&mut t[index(va, leaf_level)])
}

/// A present leaf: where its entry is, a copy of it, its level, and the
/// permissions every level grants (write, user, execute).
struct Leaf {
    entry: *mut PageTableEntry,
    value: PageTableEntry,
    level: u8,
    write: bool,
    user: bool,
    execute: bool,
}

/// Pointer to entry `i` of the table at `table_pa`. `PageTable` is
/// `repr(C)` around `[PageTableEntry; 512]`, and `i` < 512.
fn entry_ptr(table_pa: u64, i: usize) -> *mut PageTableEntry {
    debug_assert!(i < 512);
    // SAFETY: in bounds of the 4 KiB table (see above); only the address is
    // computed here.
    unsafe { (table(table_pa) as *mut PageTableEntry).add(i) }
}

/// Walks the tables for `va` without taking `LOCK`: entries are read with
/// single volatile loads, so lock-free readers (`translate`, backtraces in
/// a panic) never form references to tables another CPU may be changing.
fn lookup(va: usize) -> Option<Leaf> {
    if !is_canonical(va) {
        return None;
    }
    let mut table_pa = ROOT.load(Ordering::Relaxed);
    let (mut write, mut user, mut execute) = (true, true, true);
    for level in (1..=4).rev() {
        let entry = entry_ptr(table_pa, index(va, level));
        // SAFETY: `entry` points into a live page-table page of the
        // kernel's tables; an aligned u64 load is atomic on x86_64.
        let value = unsafe { core::ptr::read_volatile(entry) };
        let f = value.flags();
        if !f.contains(F::PRESENT) {
            return None;
        }
        write &= f.contains(F::WRITABLE);
        user &= f.contains(F::USER_ACCESSIBLE);
        execute &= !f.contains(F::NO_EXECUTE);
        if level == 1 || (level <= 3 && f.contains(F::HUGE_PAGE)) {
            return Some(Leaf {
                entry,
                value,
                level,
                write,
                user,
                execute,
            });
        }
        table_pa = value.addr().as_u64();
    }
    None
}

/// Replaces a leaf entry found by `lookup`. Caller holds `LOCK`.
fn store(leaf: &Leaf, value: PageTableEntry) {
    // SAFETY: `leaf.entry` points into a live page-table page; the caller
    // holds LOCK, so no other writer races this store.
    unsafe { core::ptr::write_volatile(leaf.entry, value) };
}

fn flush(va: usize) {
    x86_64::instructions::tlb::flush(VirtAddr::new(va as u64));
}

fn leaf_flags(flags: PageFlags) -> F {
    let mut f = F::PRESENT;
    if flags.write {
        f |= F::WRITABLE;
    }
    if !flags.execute {
        f |= nx();
    }
    if flags.user {
        f |= F::USER_ACCESSIBLE;
    } else if cpu::has(feature::PGE) {
        f |= F::GLOBAL;
    }
    f
}

/// Regions only the arch maps: the direct map, the MMIO window, the image.
fn reserved(va: usize) -> bool {
    (DIRECT_MAP_BASE..DIRECT_MAP_BASE + DIRECT_MAP_LIMIT as usize).contains(&va)
        || (MMIO_BASE..MMIO_BASE + MMIO_SIZE).contains(&va)
        || va >= IMAGE_BASE
}

/// Builds the kernel's tables, switches CR3 to them (dropping the boot
/// identity map) and turns on the protection bits the CPU offers.
pub(crate) fn init() {
    if cpu::has(feature::NX) {
        NX.store(F::NO_EXECUTE.bits(), Ordering::Relaxed);
    }
    let _guard = LOCK.lock();
    let root = pool_alloc().unwrap_or_else(|| crate::early_panic("mm: pool empty"));
    ROOT.store(root, Ordering::Relaxed);

    // The image, 4 KiB at a time, W^X by section.
    let s = kernel_sections();
    let guards = [
        sym_addr!(__boot_stack_guard),
        sym_addr!(__df_stack_guard),
        sym_addr!(__nmi_stack_guard),
    ];
    let mut va = sym_addr!(__kernel_start);
    while va < s.data.end {
        let flags = if s.text.contains(&va) {
            Some(PageFlags::KERNEL_RX)
        } else if s.rodata.contains(&va) {
            Some(PageFlags::KERNEL_RO)
        } else if s.data.contains(&va) && !guards.contains(&va) {
            Some(PageFlags::KERNEL_RW)
        } else {
            None
        };
        if let Some(flags) = flags {
            let e = entry_create(va, 1, false, &mut pool_alloc)
                .unwrap_or_else(|_| crate::early_panic("mm: pool too small for the image"));
            e.set_addr(PhysAddr::new(image_virt_to_phys(va)), leaf_flags(flags));
        }
        va += PAGE_SIZE;
    }

    // The first 4 GiB of physical memory, 2 MiB pages.
    let direct = F::PRESENT | F::WRITABLE | F::HUGE_PAGE | nx() | global();
    let mut pa = 0;
    while pa < DIRECT_MAP_BOOT {
        let e = entry_create(phys_to_virt(pa), 2, false, &mut pool_alloc)
            .unwrap_or_else(|_| crate::early_panic("mm: pool too small for the direct map"));
        e.set_addr(PhysAddr::new(pa), direct);
        pa += LARGE_PAGE;
    }

    // SAFETY: the new tables map the image (code, stack, GDT/IDT/TSS) at
    // the same addresses as the boot tables, so execution continues; the
    // low identity map is intentionally gone afterwards.
    unsafe {
        let frame = PhysFrame::from_start_address(PhysAddr::new(root))
            .unwrap_or_else(|_| crate::early_panic("mm: root not aligned"));
        Cr3::write(frame, Cr3Flags::empty());
    }
    DIRECT_ACTIVE.store(true, Ordering::Relaxed);

    let mut cr4 = Cr4::read();
    if cpu::has(feature::PGE) {
        cr4 |= Cr4Flags::PAGE_GLOBAL;
    }
    if cpu::has(feature::SMEP) {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    // With SMAP on, the kernel touches user pages only inside the stac/clac
    // brackets of `user::copy_*`.
    if cpu::has(feature::SMAP) {
        cr4 |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // rd/wrfsbase for the per-thread user TLS (`context::switch`). User
    // code may use them too (as on Linux); see docs/arch-contract.md.
    if cpu::has(feature::FSGSBASE) {
        cr4 |= Cr4Flags::FSGSBASE;
    }
    // SAFETY: only enables protections (and the FS/GS base instructions);
    // every kernel mapping is supervisor. APs copy this CR4 (`smp.rs`).
    unsafe {
        Cr4::write(cr4);
        Cr0::update(|f| *f |= Cr0Flags::WRITE_PROTECT);
    }
    crate::user::SKIFF_X86_FSGSBASE.store(cpu::has(feature::FSGSBASE), Ordering::Relaxed);
}

fn global() -> F {
    if cpu::has(feature::PGE) {
        F::GLOBAL
    } else {
        F::empty()
    }
}

/// Physical address of the kernel's PML4 (for APs to load into CR3).
pub(crate) fn root_phys() -> u64 {
    ROOT.load(Ordering::Relaxed)
}

pub fn virt_to_phys(va: usize) -> Option<u64> {
    translate(va).map(|(pa, _)| pa)
}

/// Maps RAM `pa` (rounded out to 2 MiB) into the direct map, RW+NX, with
/// tables from the arch's pool. Idempotent; the first 4 GiB are always mapped.
pub fn map_direct(pa: Range<u64>) -> Result<(), MapError> {
    if pa.end > DIRECT_MAP_LIMIT || pa.start > pa.end {
        return Err(MapError::BadAddress);
    }
    let start = (pa.start & !(LARGE_PAGE - 1)).max(DIRECT_MAP_BOOT);
    let end = pa.end.div_ceil(LARGE_PAGE) * LARGE_PAGE;
    let flags = F::PRESENT | F::WRITABLE | F::HUGE_PAGE | nx() | global();
    cpu::without_interrupts(|| {
        let _guard = LOCK.lock();
        let mut chunk = start;
        while chunk < end {
            let e =
                entry_create(phys_to_virt(chunk), 2, false, &mut pool_alloc).map_err(
                    |e| match e {
                        MapError::OutOfMemory => MapError::PoolExhausted,
                        other => other,
                    },
                )?;
            if e.is_unused() {
                e.set_addr(PhysAddr::new(chunk), flags);
            }
            chunk += LARGE_PAGE;
        }
        Ok(())
    })
}

/// Earlier `map_mmio` results, so a device mapped twice gets one VA.
static MMIO_MAPS: Mutex<[(u64, usize, usize); 32]> = Mutex::new([(0, 0, 0); 32]);

/// Maps device registers at `pa..pa+len` uncached (PCD|PWT), RW+NX, in the
/// MMIO window; returns the virtual address of `pa`.
pub fn map_mmio(pa: u64, len: usize) -> Result<usize, MapError> {
    if len == 0 || pa.checked_add(len as u64).is_none() || pa >= 1 << 52 {
        return Err(MapError::BadAddress);
    }
    let offset = (pa % PAGE_SIZE as u64) as usize;
    let base = pa - offset as u64;
    let size = (offset + len).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    cpu::without_interrupts(|| {
        let mut maps = MMIO_MAPS.lock();
        if let Some(&(_, _, va)) = maps
            .iter()
            .find(|&&(p, l, va)| va != 0 && p == base && l >= size)
        {
            return Ok(va + offset);
        }
        let va = MMIO_NEXT.fetch_add(size, Ordering::Relaxed);
        if va + size > MMIO_BASE + MMIO_SIZE {
            return Err(MapError::PoolExhausted);
        }
        let flags = F::PRESENT | F::WRITABLE | F::NO_CACHE | F::WRITE_THROUGH | nx() | global();
        let _guard = LOCK.lock();
        for page in (0..size).step_by(PAGE_SIZE) {
            let e = entry_create(va + page, 1, false, &mut pool_alloc).map_err(|e| match e {
                MapError::OutOfMemory => MapError::PoolExhausted,
                other => other,
            })?;
            e.set_addr(PhysAddr::new(base + page as u64), flags);
        }
        if let Some(slot) = maps.iter_mut().find(|m| m.2 == 0) {
            *slot = (base, size, va);
        }
        Ok(va + offset)
    })
}

/// Maps one 4 KiB page. W^X: write and execute together are refused.
/// Intermediate tables come from `alloc` (zeroed frames, reachable through
/// the direct map).
pub fn map_page(
    va: usize,
    pa: u64,
    flags: PageFlags,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), MapError> {
    if flags.write && flags.execute {
        return Err(MapError::WriteExecute);
    }
    if !va.is_multiple_of(PAGE_SIZE)
        || !pa.is_multiple_of(PAGE_SIZE as u64)
        || !is_canonical(va)
        || reserved(va)
    {
        return Err(MapError::BadAddress);
    }
    if flags.user && va >= 1 << 47 {
        return Err(MapError::BadAddress);
    }
    cpu::without_interrupts(|| {
        let _guard = LOCK.lock();
        let e = entry_create(va, 1, flags.user, alloc)?;
        if !e.is_unused() {
            return Err(MapError::AlreadyMapped);
        }
        e.set_addr(PhysAddr::new(pa), leaf_flags(flags));
        flush(va);
        Ok(())
    })
}

/// Removes a 4 KiB mapping made with `map_page`; returns its frame.
pub fn unmap_page(va: usize) -> Option<u64> {
    if reserved(va) {
        return None;
    }
    cpu::without_interrupts(|| {
        let _guard = LOCK.lock();
        let leaf = lookup(va).filter(|l| l.level == 1)?;
        let pa = leaf.value.addr().as_u64();
        store(&leaf, PageTableEntry::new());
        flush(va);
        Some(pa)
    })
}

/// Changes the permissions of a 4 KiB mapping (W^X enforced).
pub fn protect_page(va: usize, flags: PageFlags) -> Result<(), MapError> {
    if flags.write && flags.execute {
        return Err(MapError::WriteExecute);
    }
    // User pages live below 1 << 47 only (their tables carry the U bit).
    if !va.is_multiple_of(PAGE_SIZE) || (flags.user && va >= 1 << 47) {
        return Err(MapError::BadAddress);
    }
    cpu::without_interrupts(|| {
        let _guard = LOCK.lock();
        let leaf = lookup(va)
            .filter(|l| l.level == 1)
            .ok_or(MapError::BadAddress)?;
        let mut value = leaf.value.clone();
        value.set_addr(leaf.value.addr(), leaf_flags(flags));
        store(&leaf, value);
        flush(va);
        Ok(())
    })
}

/// The physical address `va` maps to and the permissions it has.
pub fn translate(va: usize) -> Option<(u64, PageFlags)> {
    let leaf = lookup(va)?;
    let page_size = 1u64 << (12 + 9 * (u32::from(leaf.level) - 1));
    let pa = leaf.value.addr().as_u64() + (va as u64 & (page_size - 1));
    let flags = PageFlags {
        write: leaf.write,
        execute: leaf.execute,
        user: leaf.user,
    };
    Some((pa, flags))
}

/// Firmware/boot memory as bytes through the direct map; `None` unless every
/// byte of `pa..pa+len` is mapped there.
pub fn phys_slice(pa: u64, len: usize) -> Option<&'static [u8]> {
    let end = pa.checked_add(len as u64)?;
    if end > DIRECT_MAP_LIMIT {
        return None;
    }
    if end > DIRECT_MAP_BOOT {
        let mut chunk = pa.max(DIRECT_MAP_BOOT) & !(LARGE_PAGE - 1);
        while chunk < end {
            lookup(phys_to_virt(chunk))?;
            chunk += LARGE_PAGE;
        }
    }
    // SAFETY: every byte is mapped (checked above) in the direct map, which
    // is never unmapped. The memory is firmware/boot data the caller reads;
    // nothing in the arch writes it.
    Some(unsafe { core::slice::from_raw_parts(phys_to_virt(pa) as *const u8, len) })
}
