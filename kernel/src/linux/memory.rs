//! The application's memory: the address-space map ([`crate::mm::vma`])
//! kept together with the page tables behind a [`Pages`] interface, the
//! page-fault decision (demand paging or a signal), and the memory system
//! calls (`brk mmap munmap mprotect mremap madvise`).
//!
//! Anonymous memory is zero-filled on first touch. File-backed private
//! mappings (ELF segments, `mmap` of a file) are filled when mapped: the
//! file's bytes are copied into fresh frames, so later writes to the file
//! are not seen (a difference from Linux only for files written while
//! mapped). Protection follows W^X: a mapping may be writable or
//! executable, never both (`EACCES`, logged once).
//!
//! Everything here is arch-neutral: the target's [`Pages`] maps frames with
//! `arch::mm`, host tests use a fake.

use super::{Ctx, Cx};
use crate::errno::{Errno, KResult};
use crate::mm::vma::{AddressSpace, Backing, Placement, Prot, Vma, PAGE};
use crate::syscall::Args;
use alloc::boxed::Box;
use alloc::string::String;
use core::ops::Range;
use skiff_arch_api::Access;

/// The page tables of the app, as the memory code needs them. Range
/// operations cost O(pages actually present in the range), so reserving
/// or unmapping terabytes of untouched address space is cheap.
pub trait Pages: Send {
    /// Allocates a frame, zeroes it, lets `fill` write its contents, and
    /// maps it at `va` with `prot` (never W+X; a `Prot::NONE` page keeps
    /// its frame but is inaccessible). ENOMEM when no frame is left.
    fn map(&mut self, va: u64, prot: Prot, fill: &mut dyn FnMut(&mut [u8])) -> KResult<()>;
    /// Unmaps every present page in `r` and frees its frame.
    fn unmap_range(&mut self, r: Range<u64>);
    /// Changes the protection of every present page in `r`.
    fn protect_range(&mut self, r: Range<u64>, prot: Prot);
    fn is_mapped(&self, va: u64) -> bool;
    /// Moves the present pages of `from` to the same offsets above `to`
    /// (where nothing is mapped), with `prot`.
    fn move_range(&mut self, from: Range<u64>, to: u64, prot: Prot) -> KResult<()>;
    /// Number of present pages in `r`.
    fn resident(&self, r: Range<u64>) -> u64;
    /// Number of present pages in all (O(1): redis reads its RSS ten
    /// times a second, and a walk of every page was most of its idle time).
    fn resident_total(&self) -> u64;
}

/// Why a user access cannot be satisfied: the signal it raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segv {
    /// No mapping at the address (`SEGV_MAPERR`).
    NotMapped,
    /// Mapped without the permission the access needs (`SEGV_ACCERR`).
    Permission,
    /// No memory left to back the page (Linux would OOM-kill).
    OutOfMemory,
}

impl Segv {
    pub fn reason(self) -> &'static str {
        match self {
            Segv::NotMapped => "address not mapped",
            Segv::Permission => "permission denied",
            Segv::OutOfMemory => "out of memory",
        }
    }
}

struct Inner {
    space: AddressSpace,
    pages: Box<dyn Pages>,
}

/// The lock around the address space. On the target it is the sleeping
/// `sync::Mutex`: the app's threads fault and `mmap` concurrently, and a
/// holder may be preempted (or allocate frames, or wait for another CPU)
/// with the lock held, so waiters must sleep rather than spin. Every user
/// of `Memory` runs in thread context with interrupts enabled (syscalls,
/// the user fault hook, exec at start-up), where sleeping is allowed;
/// never take it from an interrupt handler or with interrupts off. Lock
/// order: the futex table, then this (a futex wait reads its word under
/// the table lock, which may demand-page). Host tests use a spin lock.
#[cfg(target_os = "none")]
type MemLock<T> = crate::sync::Mutex<T>;
#[cfg(not(target_os = "none"))]
type MemLock<T> = spin::Mutex<T>;

/// The app's address space and page tables, internally synchronised
/// ([`MemLock`]).
pub struct Memory {
    inner: MemLock<Inner>,
}

/// W^X: the protection allowed for app pages.
pub fn check_wx(prot: Prot) -> KResult<()> {
    if prot.write && prot.exec {
        static REPORTED: core::sync::atomic::AtomicBool =
            core::sync::atomic::AtomicBool::new(false);
        if !REPORTED.swap(true, core::sync::atomic::Ordering::Relaxed) {
            log::warn!("mm: refused writable+executable mapping (W^X) errno=EACCES");
        }
        return Err(Errno::EACCES);
    }
    Ok(())
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

fn pages_of(r: Range<u64>) -> impl Iterator<Item = u64> {
    (page_down(r.start)..r.end).step_by(PAGE as usize)
}

impl Memory {
    pub fn new(space: AddressSpace, pages: Box<dyn Pages>) -> Self {
        Memory {
            inner: MemLock::new(Inner { space, pages }),
        }
    }

    /// Runs `f` with the map and the page tables locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut AddressSpace, &mut dyn Pages) -> R) -> R {
        let mut g = self.inner.lock();
        let Inner { space, pages } = &mut *g;
        f(space, pages.as_mut())
    }

    /// `execve`: unmaps everything (every mapping, the heap, thread
    /// stacks; frames are freed only after the TLB shootdown the
    /// [`Pages`] does) and starts over with the empty `space`.
    pub fn reset(&self, space: AddressSpace) {
        self.with(|old, pages| {
            let lo = old.areas().map(|v| v.range.start).min();
            let hi = old.areas().map(|v| v.range.end).max();
            if let (Some(lo), Some(hi)) = (lo, hi) {
                release(pages, &(lo..hi));
            }
            *old = space;
        });
    }

    /// `/proc/self/maps`.
    pub fn maps(&self) -> String {
        self.inner.lock().space.maps()
    }

    /// A user access to `addr` faulted (`protection`: the page was present).
    /// Ok: the page is now mapped, retry. Err: the signal to raise.
    pub fn fault(&self, addr: u64, access: Access, protection: bool) -> Result<(), Segv> {
        self.with(|space, pages| {
            let vma = space.find(addr).ok_or(Segv::NotMapped)?;
            let p = vma.prot;
            let allowed = match access {
                Access::Write => p.write,
                Access::Execute => p.exec,
                Access::Read | Access::None => p.read || p.write || p.exec,
            };
            let va = page_down(addr);
            if !allowed {
                return Err(Segv::Permission);
            }
            // Allowed and already there: another thread paged it in
            // between this fault and the lock (or this CPU's TLB held a
            // stale entry, which the fault dropped). Retry.
            if pages.is_mapped(va) {
                return Ok(());
            }
            if protection {
                return Err(Segv::Permission);
            }
            // File pages are filled at map time; a missing one was dropped
            // by MADV_DONTNEED and comes back zeroed (see module docs).
            pages.map(va, p, &mut |_| {}).map_err(|_| Segv::OutOfMemory)
        })
    }

    /// Maps `len` bytes per `placement` and fills the pages from `data`
    /// (`data[i]` goes to `start + skip + i`; the rest stays zero). Used by
    /// exec for segments and the stack, and by file `mmap`.
    pub fn map_filled(
        &self,
        placement: Placement,
        len: u64,
        template: Vma,
        skip: u64,
        data: &[u8],
    ) -> KResult<u64> {
        let prot = template.prot;
        check_wx(prot)?;
        self.with(|space, pages| {
            let start = space.map(placement, len, template)?;
            release(pages, &(start..start + len.next_multiple_of(PAGE)));
            let first = start + skip;
            let end = first + data.len() as u64;
            if data.is_empty() || prot == Prot::NONE {
                return Ok(start);
            }
            for va in pages_of(first..end) {
                let r = pages.map(va, prot, &mut |frame| {
                    let lo = va.max(first);
                    let hi = (va + PAGE).min(end);
                    frame[(lo - va) as usize..(hi - va) as usize]
                        .copy_from_slice(&data[(lo - first) as usize..(hi - first) as usize]);
                });
                if let Err(e) = r {
                    let _ = space.unmap(start, len);
                    release(pages, &(start..start + len.next_multiple_of(PAGE)));
                    return Err(e);
                }
            }
            Ok(start)
        })
    }

    /// Bytes of address space mapped (`VmSize`).
    pub fn mapped_bytes(&self) -> u64 {
        self.inner
            .lock()
            .space
            .areas()
            .map(|v| v.range.end - v.range.start)
            .sum()
    }

    /// Bytes backed by frames now (`VmRSS`). Pages exist only inside
    /// areas, so this is every present page.
    pub fn resident_bytes(&self) -> u64 {
        self.with(|_, pages| pages.resident_total() * PAGE)
    }

    /// The current program break.
    pub fn brk(&self) -> u64 {
        self.inner.lock().space.brk()
    }

    /// `brk(addr)`: Linux's convention, the (possibly unchanged) break.
    pub fn set_brk(&self, addr: u64) -> u64 {
        self.with(|space, pages| {
            let old_end = space.brk().next_multiple_of(PAGE);
            let new = space.set_brk(addr);
            let new_end = new.next_multiple_of(PAGE);
            if new_end < old_end {
                release(pages, &(new_end..old_end));
            }
            new
        })
    }

    pub fn munmap(&self, start: u64, len: u64) -> KResult<()> {
        self.with(|space, pages| {
            for r in space.unmap(start, len)? {
                release(pages, &r);
            }
            Ok(())
        })
    }

    pub fn mprotect(&self, start: u64, len: u64, prot: Prot) -> KResult<()> {
        check_wx(prot)?;
        self.with(|space, pages| {
            space.protect(start, len, prot)?;
            let end = start + len.next_multiple_of(PAGE);
            pages.protect_range(start..end, prot);
            Ok(())
        })
    }

    pub fn mremap(&self, old: u64, old_len: u64, new_len: u64, may_move: bool) -> KResult<u64> {
        self.with(|space, pages| {
            let old_end = old.saturating_add(old_len.next_multiple_of(PAGE));
            let (new, moved) = space.remap(old, old_len, new_len, may_move)?;
            match moved {
                Some(from) => {
                    let prot = space.find(new).map_or(Prot::NONE, |v| v.prot);
                    pages.move_range(from, new, prot)?;
                }
                None => {
                    let kept = old + new_len.next_multiple_of(PAGE);
                    if kept < old_end {
                        release(pages, &(kept..old_end));
                    }
                }
            }
            Ok(new)
        })
    }

    /// `madvise(MADV_DONTNEED)`: the pages are dropped; anonymous memory
    /// reads back as zeroes. ENOMEM if part of the range is unmapped.
    pub fn dontneed(&self, start: u64, len: u64) -> KResult<()> {
        self.with(|space, pages| {
            let end = start
                .checked_add(len.next_multiple_of(PAGE))
                .ok_or(Errno::EINVAL)?;
            covered(space, start..end)?;
            release(pages, &(start..end));
            Ok(())
        })
    }

    /// Whether every page of `r` is in some mapping (madvise, msync).
    pub fn check_covered(&self, r: Range<u64>) -> KResult<()> {
        self.with(|space, _| covered(space, r))
    }
}

fn covered(space: &AddressSpace, r: Range<u64>) -> KResult<()> {
    let mut at = r.start;
    while at < r.end {
        let v = space.find(at).ok_or(Errno::ENOMEM)?;
        at = v.range.end;
    }
    Ok(())
}

fn release(pages: &mut dyn Pages, r: &Range<u64>) {
    pages.unmap_range(r.clone());
}

// ---- system calls ----

const PROT_GROWSDOWN: usize = 0x0100_0000;
const PROT_GROWSUP: usize = 0x0200_0000;

const MAP_SHARED: usize = 0x01;
const MAP_PRIVATE: usize = 0x02;
const MAP_SHARED_VALIDATE: usize = 0x03;
const MAP_TYPE: usize = 0x0f;
const MAP_FIXED: usize = 0x10;
const MAP_ANONYMOUS: usize = 0x20;
const MAP_HUGETLB: usize = 0x4_0000;
const MAP_FIXED_NOREPLACE: usize = 0x10_0000;
/// Flags Linux accepts and Skiff may ignore (placement, locking, hints).
const MAP_KNOWN: usize = MAP_TYPE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | 0x100 // MAP_GROWSDOWN
    | 0x800 // MAP_DENYWRITE
    | 0x1000 // MAP_EXECUTABLE
    | 0x2000 // MAP_LOCKED
    | 0x4000 // MAP_NORESERVE
    | 0x8000 // MAP_POPULATE
    | 0x1_0000 // MAP_NONBLOCK
    | 0x2_0000 // MAP_STACK
    | MAP_HUGETLB
    | 0x8_0000 // MAP_SYNC
    | MAP_FIXED_NOREPLACE
    | 0xfc00_0000; // MAP_HUGE_SHIFT size bits

const MREMAP_MAYMOVE: usize = 1;
const MREMAP_FIXED: usize = 2;
const MREMAP_DONTUNMAP: usize = 4;

fn memory(ctx: &dyn Ctx) -> KResult<&Memory> {
    ctx.task().map(|t| t.memory()).ok_or(Errno::ENOSYS)
}

/// Where the app may map (bounds checked by the address-space map too).
fn user_addr(a: usize) -> u64 {
    a as u64
}

pub fn sys_brk(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    Ok(memory(ctx)?.set_brk(user_addr(a[0])) as usize)
}

pub fn sys_mmap(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (addr, len, prot, flags, fd, off) = (a[0] as u64, a[1] as u64, a[2], a[3], a[4], a[5]);
    let prot = Prot::from_bits(prot & !(PROT_GROWSDOWN | PROT_GROWSUP))?;
    if len == 0 || !(off as u64).is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let shared = match flags & MAP_TYPE {
        MAP_SHARED | MAP_SHARED_VALIDATE => true,
        MAP_PRIVATE => false,
        _ => return Err(Errno::EINVAL),
    };
    if flags & MAP_TYPE == MAP_SHARED_VALIDATE && flags & !MAP_KNOWN != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if flags & MAP_HUGETLB != 0 {
        // No hugetlbfs: Linux without reserved huge pages says ENOMEM.
        return Err(Errno::ENOMEM);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::ENOMEM)?;
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace(addr)
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed(addr)
    } else {
        Placement::Hint(addr)
    };
    let mem = memory(ctx)?;
    if flags & MAP_ANONYMOUS != 0 {
        let template = Vma {
            range: 0..0,
            prot,
            shared,
            backing: Backing::Anonymous,
            name: None,
        };
        return mem
            .map_filled(placement, len, template, 0, &[])
            .map(|s| s as usize);
    }
    let fd = fd as i32;
    let file = ctx.mmap_file(fd)?;
    if shared && prot.write && !file.writable {
        return Err(Errno::EACCES);
    }
    if shared && prot.write {
        // Shared writable file mappings need write-back: not yet.
        return Err(Errno::ENODEV);
    }
    let meta = file.inode.metadata();
    let avail = meta.size.saturating_sub(off as u64).min(len) as usize;
    let mut data = alloc::vec![0u8; avail];
    let mut got = 0;
    while got < avail {
        let n = file
            .inode
            .read_at(off as u64 + got as u64, &mut data[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    data.truncate(got);
    let template = Vma {
        range: 0..0,
        prot,
        shared,
        backing: Backing::File {
            dev: meta.dev,
            ino: meta.ino,
            offset: off as u64,
        },
        name: Some(file.path),
    };
    let mem = memory(ctx)?;
    mem.map_filled(placement, len, template, 0, &data)
        .map(|s| s as usize)
}

pub fn sys_munmap(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[1] == 0 {
        return Err(Errno::EINVAL);
    }
    memory(ctx)?.munmap(a[0] as u64, a[1] as u64)?;
    Ok(0)
}

pub fn sys_mprotect(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let prot = Prot::from_bits(a[2] & !(PROT_GROWSDOWN | PROT_GROWSUP))?;
    memory(ctx)?.mprotect(a[0] as u64, a[1] as u64, prot)?;
    Ok(0)
}

pub fn sys_mremap(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (old, old_len, new_len, flags) = (a[0] as u64, a[1] as u64, a[2] as u64, a[3]);
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 || old_len == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
        // Not implemented yet: say so rather than do something else.
        return Err(Errno::EINVAL);
    }
    let mem = memory(ctx)?;
    Ok(mem.mremap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0)? as usize)
}

const MADV_DONTNEED: usize = 4;
const MADV_FREE: usize = 8;

pub fn sys_madvise(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (start, len, advice) = (a[0] as u64, a[1] as u64, a[2]);
    if !start.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let mem = memory(ctx)?;
    match advice {
        MADV_DONTNEED | MADV_FREE => mem.dontneed(start, len)?,
        // NORMAL RANDOM SEQUENTIAL WILLNEED, DONTFORK DOFORK MERGEABLE
        // UNMERGEABLE HUGEPAGE NOHUGEPAGE DONTDUMP DODUMP WIPEONFORK
        // KEEPONFORK COLD PAGEOUT: hints with no effect here.
        0..=3 | 10..=21 => {
            let end = start
                .checked_add(len.next_multiple_of(PAGE))
                .ok_or(Errno::EINVAL)?;
            mem.check_covered(start..end)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// The page range `[start, start+len)` rounded out to pages, checked to be
/// mapped (ENOMEM otherwise, like Linux's mlock/msync).
fn mapped_range(ctx: &dyn Ctx, start: u64, len: u64) -> KResult<()> {
    let first = start - start % PAGE;
    let end = start
        .checked_add(len)
        .ok_or(Errno::ENOMEM)?
        .next_multiple_of(PAGE);
    if end > first {
        memory(ctx)?.check_covered(first..end)?;
    }
    Ok(())
}

/// `mlock`/`munlock`/`mlock2`: the range must be mapped. Memory is never
/// paged out here, so locking changes nothing once a page is present;
/// pages not yet touched are still faulted in on first use (no
/// pre-faulting).
pub fn sys_mlock(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    mapped_range(ctx, a[0] as u64, a[1] as u64)?;
    Ok(0)
}

pub fn sys_mlock2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    const MLOCK_ONFAULT: usize = 1;
    if a[2] & !MLOCK_ONFAULT != 0 {
        return Err(Errno::EINVAL);
    }
    sys_mlock(ctx, a)
}

/// `mlockall(flags)`: MCL_CURRENT 1, MCL_FUTURE 2, MCL_ONFAULT 4 (which
/// needs one of the others).
pub fn sys_mlockall(_: &mut Cx, a: &Args) -> KResult<usize> {
    let f = a[0];
    if f == 0 || f & !7 != 0 || f == 4 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

pub fn sys_munlockall(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(0)
}

/// `msync(addr, len, flags)`: MS_ASYNC 1, MS_INVALIDATE 2, MS_SYNC 4 (not
/// ASYNC and SYNC together); `addr` page-aligned; the range mapped
/// (ENOMEM). File mappings here are private copies, so there is nothing
/// to write back.
pub fn sys_msync(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (start, len, flags) = (a[0] as u64, a[1] as u64, a[2]);
    if !start.is_multiple_of(PAGE) || flags & !7 != 0 || flags & 5 == 5 {
        return Err(Errno::EINVAL);
    }
    mapped_range(ctx, start, len)?;
    Ok(0)
}

#[cfg(test)]
pub mod fake {
    //! A page table in a map, for host tests.
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    #[derive(Default)]
    pub struct FakePages {
        pub pages: BTreeMap<u64, (Prot, Vec<u8>)>,
    }

    impl Pages for FakePages {
        fn map(&mut self, va: u64, prot: Prot, fill: &mut dyn FnMut(&mut [u8])) -> KResult<()> {
            assert!(!(prot.write && prot.exec), "W^X");
            assert!(!self.pages.contains_key(&va), "double map at {va:#x}");
            let mut f = alloc::vec![0u8; PAGE as usize];
            fill(&mut f);
            self.pages.insert(va, (prot, f));
            Ok(())
        }
        fn unmap_range(&mut self, r: Range<u64>) {
            let gone: Vec<u64> = self.pages.range(r).map(|(&va, _)| va).collect();
            for va in gone {
                self.pages.remove(&va);
            }
        }
        fn protect_range(&mut self, r: Range<u64>, prot: Prot) {
            for (_, p) in self.pages.range_mut(r) {
                p.0 = prot;
            }
        }
        fn is_mapped(&self, va: u64) -> bool {
            self.pages.contains_key(&va)
        }
        fn move_range(&mut self, from: Range<u64>, to: u64, prot: Prot) -> KResult<()> {
            let moved: Vec<u64> = self.pages.range(from.clone()).map(|(&va, _)| va).collect();
            for va in moved {
                let (_, f) = self.pages.remove(&va).expect("present");
                self.pages.insert(to + (va - from.start), (prot, f));
            }
            Ok(())
        }
        fn resident(&self, r: Range<u64>) -> u64 {
            self.pages.range(r).count() as u64
        }
        fn resident_total(&self) -> u64 {
            self.pages.len() as u64
        }
    }

    /// A `Pages` whose contents the test can still read after handing it
    /// to a [`Memory`].
    #[derive(Clone, Default)]
    pub struct SharedPages(pub alloc::sync::Arc<spin::Mutex<FakePages>>);

    impl Pages for SharedPages {
        fn map(&mut self, va: u64, prot: Prot, fill: &mut dyn FnMut(&mut [u8])) -> KResult<()> {
            self.0.lock().map(va, prot, fill)
        }
        fn unmap_range(&mut self, r: Range<u64>) {
            self.0.lock().unmap_range(r)
        }
        fn protect_range(&mut self, r: Range<u64>, prot: Prot) {
            self.0.lock().protect_range(r, prot)
        }
        fn is_mapped(&self, va: u64) -> bool {
            self.0.lock().is_mapped(va)
        }
        fn move_range(&mut self, from: Range<u64>, to: u64, prot: Prot) -> KResult<()> {
            self.0.lock().move_range(from, to, prot)
        }
        fn resident(&self, r: Range<u64>) -> u64 {
            self.0.lock().resident(r)
        }
        fn resident_total(&self) -> u64 {
            self.0.lock().resident_total()
        }
    }

    impl SharedPages {
        /// Reads user memory like the app would (any mapped page).
        pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let g = self.0.lock();
            for (i, b) in buf.iter_mut().enumerate() {
                let a = addr + i as u64;
                match g.pages.get(&page_down(a)) {
                    Some((_, f)) => *b = f[(a % PAGE) as usize],
                    None => return false,
                }
            }
            true
        }

        pub fn write(&self, addr: u64, data: &[u8]) -> bool {
            let mut g = self.0.lock();
            for (i, b) in data.iter().enumerate() {
                let a = addr + i as u64;
                match g.pages.get_mut(&page_down(a)) {
                    Some((p, f)) if p.write => f[(a % PAGE) as usize] = *b,
                    _ => return false,
                }
            }
            true
        }
    }
}
