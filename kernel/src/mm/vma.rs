//! The application's address-space map: which user virtual ranges are
//! mapped, with what protection and backing. Pure bookkeeping with Linux's
//! semantics for `mmap` (top-down placement below a randomised base,
//! MAP_FIXED replacing what was there, MAP_FIXED_NOREPLACE refusing),
//! `munmap`/`mprotect` splitting areas, `brk`, `mremap`, and the exact
//! `/proc/self/maps` line format. Page tables are filled on demand from
//! this map by the fault handler; nothing here touches memory.

use crate::errno::{Errno, KResult};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::ops::Range;

pub const PAGE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    pub const R: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };
    pub const RX: Prot = Prot {
        read: true,
        write: false,
        exec: true,
    };

    /// From `PROT_*` bits (READ 1, WRITE 2, EXEC 4); others are EINVAL.
    pub fn from_bits(bits: usize) -> KResult<Prot> {
        if bits & !7 != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(Prot {
            read: bits & 1 != 0,
            write: bits & 2 != 0,
            exec: bits & 4 != 0,
        })
    }
}

/// What backs an area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// Zero-filled on first touch.
    Anonymous,
    /// Pages of a file: (file id for maps, offset of the area's start).
    File { dev: u64, ino: u64, offset: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vma {
    pub range: Range<u64>,
    pub prot: Prot,
    pub shared: bool,
    pub backing: Backing,
    /// Shown in `/proc/self/maps`: a path, `[heap]`, `[stack]`, `[vdso]`.
    pub name: Option<String>,
}

impl Vma {
    fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// The part of this area inside `r` (offsets adjusted for files).
    fn slice(&self, r: Range<u64>) -> Vma {
        let start = r.start.max(self.range.start);
        let end = r.end.min(self.range.end);
        let backing = match &self.backing {
            Backing::File { dev, ino, offset } => Backing::File {
                dev: *dev,
                ino: *ino,
                offset: offset + (start - self.range.start),
            },
            b => b.clone(),
        };
        Vma {
            range: start..end,
            backing,
            ..self.clone()
        }
    }

    /// Could `next` (starting where this ends) be one area with this one?
    fn mergeable(&self, next: &Vma) -> bool {
        self.range.end == next.range.start
            && self.prot == next.prot
            && self.shared == next.shared
            && self.name == next.name
            && match (&self.backing, &next.backing) {
                (Backing::Anonymous, Backing::Anonymous) => true,
                (
                    Backing::File { dev, ino, offset },
                    Backing::File {
                        dev: d2,
                        ino: i2,
                        offset: o2,
                    },
                ) => dev == d2 && ino == i2 && offset + self.len() == *o2,
                _ => false,
            }
    }
}

/// How `mmap` may place a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere (the hint is tried first if it is free).
    Hint(u64),
    /// Exactly here, replacing what is there (MAP_FIXED).
    Fixed(u64),
    /// Exactly here, EEXIST if anything is there (MAP_FIXED_NOREPLACE).
    FixedNoReplace(u64),
}

pub struct AddressSpace {
    areas: BTreeMap<u64, Vma>,
    /// Lowest and highest (exclusive) user address.
    bounds: Range<u64>,
    /// Top-down placement starts below this (randomised at exec).
    mmap_base: u64,
    /// The program break: heap start (randomised at exec) and current end.
    brk_start: u64,
    brk: u64,
}

fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}

impl AddressSpace {
    pub fn new(bounds: Range<u64>, mmap_base: u64, brk_start: u64) -> Self {
        AddressSpace {
            areas: BTreeMap::new(),
            bounds,
            mmap_base,
            brk_start,
            brk: brk_start,
        }
    }

    pub fn areas(&self) -> impl Iterator<Item = &Vma> {
        self.areas.values()
    }

    /// The area holding `addr`, for the page-fault handler.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.areas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| v.range.contains(&addr))
    }

    fn overlaps(&self, r: &Range<u64>) -> bool {
        self.areas
            .range(..r.end)
            .next_back()
            .is_some_and(|(_, v)| v.range.end > r.start)
    }

    /// Highest free gap of `len` bytes below `below`, top-down.
    fn find_free(&self, len: u64, below: u64) -> Option<u64> {
        let mut top = below.min(self.bounds.end);
        for (_, v) in self.areas.range(..top).rev() {
            if v.range.end <= top && top - v.range.end >= len {
                return Some(top - len);
            }
            top = top.min(v.range.start);
        }
        (top >= self.bounds.start + len).then(|| top - len)
    }

    /// Maps `len` bytes (rounded up to pages) per `placement`; returns the
    /// start. `template` gives protection, sharing, backing and name.
    pub fn map(&mut self, placement: Placement, len: u64, template: Vma) -> KResult<u64> {
        let len = page_up(len).filter(|&l| l > 0).ok_or(Errno::EINVAL)?;
        let in_bounds = |s: u64| {
            s.is_multiple_of(PAGE)
                && s >= self.bounds.start
                && s.checked_add(len).is_some_and(|e| e <= self.bounds.end)
        };
        let start = match placement {
            Placement::Fixed(s) | Placement::FixedNoReplace(s) => {
                if !in_bounds(s) {
                    return Err(if s % PAGE != 0 {
                        Errno::EINVAL
                    } else {
                        Errno::ENOMEM
                    });
                }
                if self.overlaps(&(s..s + len)) {
                    if matches!(placement, Placement::FixedNoReplace(_)) {
                        return Err(Errno::EEXIST);
                    }
                    self.unmap(s, len)?;
                }
                s
            }
            Placement::Hint(h) => {
                let h = h & !(PAGE - 1);
                if h != 0 && in_bounds(h) && !self.overlaps(&(h..h + len)) {
                    h
                } else {
                    self.find_free(len, self.mmap_base)
                        .or_else(|| self.find_free(len, self.bounds.end))
                        .ok_or(Errno::ENOMEM)?
                }
            }
        };
        let vma = Vma {
            range: start..start + len,
            ..template
        };
        self.insert_merging(vma);
        Ok(start)
    }

    fn insert_merging(&mut self, mut vma: Vma) {
        if let Some((_, prev)) = self.areas.range(..vma.range.start).next_back() {
            if prev.mergeable(&vma) {
                let prev = self
                    .areas
                    .remove(&prev.range.start.clone())
                    .expect("present");
                vma = Vma {
                    range: prev.range.start..vma.range.end,
                    ..prev
                };
            }
        }
        if let Some(next) = self.areas.get(&vma.range.end) {
            if vma.mergeable(next) {
                let next = self.areas.remove(&vma.range.end).expect("present");
                vma.range.end = next.range.end;
            }
        }
        self.areas.insert(vma.range.start, vma);
    }

    /// Removes `[start, start+len)`, splitting areas at the edges. Returns
    /// the ranges that were mapped (their pages are to be freed).
    pub fn unmap(&mut self, start: u64, len: u64) -> KResult<Vec<Range<u64>>> {
        if !start.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).filter(|&l| l > 0).ok_or(Errno::EINVAL)?;
        let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
        let hit: Vec<u64> = self
            .areas
            .range(..end)
            .filter(|(_, v)| v.range.end > start)
            .map(|(&k, _)| k)
            .collect();
        let mut removed = Vec::new();
        for k in hit {
            let v = self.areas.remove(&k).expect("present");
            if v.range.start < start {
                let left = v.slice(v.range.start..start);
                self.areas.insert(left.range.start, left);
            }
            if v.range.end > end {
                let right = v.slice(end..v.range.end);
                self.areas.insert(right.range.start, right);
            }
            removed.push(v.range.start.max(start)..v.range.end.min(end));
        }
        Ok(removed)
    }

    /// `mprotect`: every page of the range must be mapped (else ENOMEM).
    pub fn protect(&mut self, start: u64, len: u64, prot: Prot) -> KResult<()> {
        if !start.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(());
        }
        // Fully covered, without holes?
        let mut at = start;
        for (_, v) in self.areas.range(..end).filter(|(_, v)| v.range.end > start) {
            if v.range.start > at {
                return Err(Errno::ENOMEM);
            }
            at = v.range.end;
        }
        if at < end {
            return Err(Errno::ENOMEM);
        }
        let pieces: Vec<Vma> = self
            .areas
            .range(..end)
            .filter(|(_, v)| v.range.end > start)
            .map(|(_, v)| v.clone())
            .collect();
        self.unmap(start, len)?;
        for p in pieces {
            let mut inner = p.slice(start..end);
            inner.prot = prot;
            self.insert_merging(inner);
        }
        Ok(())
    }

    /// `brk(addr)`: grows or shrinks the heap; returns the new break, or the
    /// old one if the request cannot be met (Linux's convention).
    pub fn set_brk(&mut self, addr: u64) -> u64 {
        if addr < self.brk_start {
            return self.brk;
        }
        let (old_end, new_end) = (
            page_up(self.brk).unwrap_or(u64::MAX),
            page_up(addr).unwrap_or(u64::MAX),
        );
        if new_end > old_end {
            let grow = old_end..new_end;
            if grow.end > self.bounds.end || self.overlaps(&grow) {
                return self.brk;
            }
            self.insert_merging(Vma {
                range: grow,
                prot: Prot::RW,
                shared: false,
                backing: Backing::Anonymous,
                name: Some(String::from("[heap]")),
            });
        } else if new_end < old_end && self.unmap(new_end, old_end - new_end).is_err() {
            return self.brk;
        }
        self.brk = addr;
        self.brk
    }

    pub fn brk(&self) -> u64 {
        self.brk
    }

    /// `mremap` of a whole area or its tail: grows in place when the pages
    /// above are free, else moves if `may_move`. Returns the new start and
    /// the old range to move pages from (None if in place).
    pub fn remap(
        &mut self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
    ) -> KResult<(u64, Option<Range<u64>>)> {
        let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).filter(|&l| l > 0).ok_or(Errno::EINVAL)?;
        if !old.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        let v = self.find(old).cloned().ok_or(Errno::EFAULT)?;
        if old + old_len > v.range.end {
            return Err(Errno::EFAULT);
        }
        if new_len <= old_len {
            if new_len < old_len {
                self.unmap(old + new_len, old_len - new_len)?;
            }
            return Ok((old, None));
        }
        let grow = old + old_len..old + new_len;
        if old + old_len == v.range.end && grow.end <= self.bounds.end && !self.overlaps(&grow) {
            let mut ext = v.slice(old..old + old_len);
            ext.range = grow.start..grow.end;
            if let Backing::File { offset, .. } = &mut ext.backing {
                *offset += old_len;
            }
            self.insert_merging(ext);
            return Ok((old, None));
        }
        if !may_move {
            return Err(Errno::ENOMEM);
        }
        let template = v.slice(old..old + old_len);
        let new = self.map(Placement::Hint(0), new_len, template)?;
        self.unmap(old, old_len)?;
        Ok((new, Some(old..old + old_len)))
    }

    /// The text of `/proc/self/maps`, byte for byte in Linux's format.
    pub fn maps(&self) -> String {
        let mut out = String::new();
        for v in self.areas.values() {
            let (dev, ino, off) = match v.backing {
                Backing::File { dev, ino, offset } => (dev, ino, offset),
                Backing::Anonymous => (0, 0, 0),
            };
            let start = out.len();
            let _ = write!(
                out,
                "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
                v.range.start,
                v.range.end,
                if v.prot.read { 'r' } else { '-' },
                if v.prot.write { 'w' } else { '-' },
                if v.prot.exec { 'x' } else { '-' },
                if v.shared { 's' } else { 'p' },
                off,
                (dev >> 8) & 0xfff,
                dev & 0xff,
                ino
            );
            if let Some(name) = &v.name {
                while out.len() - start < 73 {
                    out.push(' ');
                }
                out.push_str(name);
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
// `[a..b]` here is a list of one address range, not a range of values.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const TOP: u64 = 0x7fff_ffff_f000;

    fn space() -> AddressSpace {
        AddressSpace::new(0x1_0000..TOP, 0x7f00_0000_0000, 0x5555_5600_0000)
    }

    fn anon(prot: Prot) -> Vma {
        Vma {
            range: 0..0,
            prot,
            shared: false,
            backing: Backing::Anonymous,
            name: None,
        }
    }

    #[test]
    fn mmap_places_top_down_below_the_base_and_merges() {
        let mut s = space();
        let a = s.map(Placement::Hint(0), 8192, anon(Prot::RW)).unwrap();
        let b = s.map(Placement::Hint(0), 4096, anon(Prot::RW)).unwrap();
        assert_eq!(a, 0x7f00_0000_0000 - 8192);
        assert_eq!(b, a - 4096);
        // Adjacent identical anonymous areas merge into one.
        assert_eq!(s.areas().count(), 1);
        let c = s.map(Placement::Hint(0), 1, anon(Prot::R)).unwrap();
        assert_eq!(c, b - 4096);
        assert_eq!(s.areas().count(), 2);
        assert!(s.find(a + 100).is_some() && s.find(c - 1).is_none());
    }

    #[test]
    fn fixed_replaces_and_noreplace_refuses() {
        let mut s = space();
        let a = s
            .map(Placement::Fixed(0x40_0000), 0x3000, anon(Prot::RX))
            .unwrap();
        assert_eq!(a, 0x40_0000);
        assert_eq!(
            s.map(Placement::FixedNoReplace(0x40_1000), 0x1000, anon(Prot::RW)),
            Err(Errno::EEXIST)
        );
        s.map(Placement::Fixed(0x40_1000), 0x1000, anon(Prot::RW))
            .unwrap();
        let prots: Vec<Prot> = s.areas().map(|v| v.prot).collect();
        assert_eq!(prots, [Prot::RX, Prot::RW, Prot::RX]);
        assert_eq!(
            s.map(Placement::Fixed(0x40_0001), 1, anon(Prot::RW)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.map(Placement::Fixed(TOP), 4096, anon(Prot::RW)),
            Err(Errno::ENOMEM)
        );
        assert_eq!(
            s.map(Placement::Hint(0), 0, anon(Prot::RW)),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn munmap_splits_and_reports_what_was_mapped() {
        let mut s = space();
        s.map(Placement::Fixed(0x10_0000), 0x10_000, anon(Prot::RW))
            .unwrap();
        let removed = s.unmap(0x10_4000, 0x2000).unwrap();
        assert_eq!(removed, [0x10_4000..0x10_6000]);
        let ranges: Vec<_> = s.areas().map(|v| v.range.clone()).collect();
        assert_eq!(ranges, [0x10_0000..0x10_4000, 0x10_6000..0x11_0000]);
        // Unmapping a hole is fine; a misaligned start is not.
        assert_eq!(s.unmap(0x20_0000, 0x1000).unwrap(), []);
        assert_eq!(s.unmap(0x10_0001, 0x1000), Err(Errno::EINVAL));
    }

    #[test]
    fn mprotect_splits_needs_full_coverage_and_remerges() {
        let mut s = space();
        s.map(Placement::Fixed(0x10_0000), 0x4000, anon(Prot::RW))
            .unwrap();
        s.protect(0x10_1000, 0x1000, Prot::R).unwrap();
        let prots: Vec<Prot> = s.areas().map(|v| v.prot).collect();
        assert_eq!(prots, [Prot::RW, Prot::R, Prot::RW]);
        s.protect(0x10_1000, 0x1000, Prot::RW).unwrap();
        assert_eq!(s.areas().count(), 1, "merged back");
        assert_eq!(
            s.protect(0x10_3000, 0x2000, Prot::R),
            Err(Errno::ENOMEM),
            "hole"
        );
        assert_eq!(
            s.areas().next().unwrap().prot,
            Prot::RW,
            "unchanged on error"
        );
        assert_eq!(Prot::from_bits(8), Err(Errno::EINVAL));
    }

    #[test]
    fn file_offsets_follow_splits() {
        let mut s = space();
        let file = Vma {
            backing: Backing::File {
                dev: 0x801,
                ino: 42,
                offset: 0x1000,
            },
            name: Some("/bin/app".into()),
            ..anon(Prot::RX)
        };
        s.map(Placement::Fixed(0x40_0000), 0x3000, file).unwrap();
        s.protect(0x40_1000, 0x1000, Prot::R).unwrap();
        let offs: Vec<u64> = s
            .areas()
            .map(|v| match v.backing {
                Backing::File { offset, .. } => offset,
                _ => u64::MAX,
            })
            .collect();
        assert_eq!(offs, [0x1000, 0x2000, 0x3000]);
    }

    #[test]
    fn brk_grows_shrinks_and_refuses_collisions() {
        let mut s = space();
        let base = 0x5555_5600_0000;
        assert_eq!(s.set_brk(0), base, "query");
        assert_eq!(s.set_brk(base + 10_000), base + 10_000);
        assert_eq!(
            s.find(base + 9_000).unwrap().name.as_deref(),
            Some("[heap]")
        );
        assert_eq!(s.set_brk(base + 100), base + 100);
        assert!(s.find(base + 5000).is_none(), "shrunk");
        s.map(Placement::Fixed(base + 0x10_0000), 0x1000, anon(Prot::RW))
            .unwrap();
        assert_eq!(
            s.set_brk(base + 0x20_0000),
            base + 100,
            "collision keeps old break"
        );
        assert_eq!(s.set_brk(base - 1), base + 100, "below start");
    }

    #[test]
    fn mremap_grows_in_place_or_moves() {
        let mut s = space();
        s.map(Placement::Fixed(0x10_0000), 0x2000, anon(Prot::RW))
            .unwrap();
        assert_eq!(
            s.remap(0x10_0000, 0x2000, 0x4000, false).unwrap(),
            (0x10_0000, None)
        );
        s.map(Placement::Fixed(0x10_4000), 0x1000, anon(Prot::R))
            .unwrap();
        assert_eq!(
            s.remap(0x10_0000, 0x4000, 0x8000, false),
            Err(Errno::ENOMEM)
        );
        let (new, moved) = s.remap(0x10_0000, 0x4000, 0x8000, true).unwrap();
        assert_ne!(new, 0x10_0000);
        assert_eq!(moved, Some(0x10_0000..0x10_4000));
        assert!(s.find(0x10_0000).is_none());
        assert_eq!(s.find(new + 0x7000).unwrap().prot, Prot::RW);
        assert_eq!(
            s.remap(0x9000_0000, 0x1000, 0x2000, true),
            Err(Errno::EFAULT)
        );
        // Shrinking unmaps the tail.
        assert_eq!(s.remap(new, 0x8000, 0x1000, false).unwrap(), (new, None));
        assert!(s.find(new + 0x1000).is_none());
    }

    #[test]
    fn proc_maps_format_is_linux_exact() {
        let mut s = space();
        let file = Vma {
            backing: Backing::File {
                dev: 0xfe00,
                ino: 247030,
                offset: 0x2000,
            },
            name: Some("/usr/bin/cat".into()),
            ..anon(Prot::RX)
        };
        s.map(Placement::Fixed(0x55d4_eee1_f000), 0x5000, file)
            .unwrap();
        s.map(Placement::Fixed(0x7f5d_072c_d000), 0x3000, anon(Prot::RW))
            .unwrap();
        let stack = Vma {
            name: Some("[stack]".into()),
            ..anon(Prot::RW)
        };
        s.map(Placement::Fixed(0x7ffe_2c7d_6000), 0x21000, stack)
            .unwrap();
        assert_eq!(
            s.maps(),
            "55d4eee1f000-55d4eee24000 r-xp 00002000 fe:00 247030                     /usr/bin/cat\n\
             7f5d072cd000-7f5d072d0000 rw-p 00000000 00:00 0 \n\
             7ffe2c7d6000-7ffe2c7f7000 rw-p 00000000 00:00 0                          [stack]\n"
        );
    }
}
