//! The physical frame allocator: a binary buddy system over the firmware's
//! usable RAM.
//!
//! Free blocks of `2^order` frames sit on one intrusive list per order per
//! zone (a zone is one contiguous usable range). The list links live in a
//! per-frame metadata array (like Linux's `struct page`, 12 bytes a frame)
//! rather than inside the free memory itself, so this module never touches
//! physical memory, is safe Rust, and is tested on the host.
//!
//! Blocks are aligned to their size in *physical* frame numbers, so an
//! order-9 block is a naturally aligned 2 MiB page and an order-18 block a
//! 1 GiB page. Freeing checks the block was allocated with that order
//! (double frees and wrong sizes are errors, not corruption) and merges
//! with free buddies up to `MAX_ORDER`.

use alloc::vec::Vec;
use core::ops::Range;

pub const FRAME_SIZE: u64 = 4096;
/// Largest block: 2^18 frames = 1 GiB.
pub const MAX_ORDER: usize = 18;
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// First frame of a free block of `order`, linked on its list.
    FreeHead,
    /// First frame of an allocated block of `order`.
    AllocatedHead,
    /// Inside a block whose head is elsewhere, or not RAM we manage.
    Inner,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    next: u32,
    prev: u32,
    order: u8,
    state: State,
}

struct Zone {
    base_pfn: u64,
    meta: Vec<Meta>,
    heads: [u32; MAX_ORDER + 1],
}

/// Why an allocation or a free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// No free block of the requested order (or larger) remains.
    OutOfFrames { order: usize },
    /// Order above `MAX_ORDER`.
    BadOrder(usize),
    /// The address is not a block this allocator handed out with that order
    /// (double free, wrong size, misaligned, or foreign memory).
    NotAllocated { addr: u64, order: usize },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::OutOfFrames { order } => write!(f, "out of frames (order {order})"),
            FrameError::BadOrder(o) => write!(f, "order {o} above the maximum {MAX_ORDER}"),
            FrameError::NotAllocated { addr, order } => {
                write!(f, "{addr:#x} is not an allocated order-{order} block")
            }
        }
    }
}

/// Counters for `/proc/meminfo`-style reporting and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameStats {
    pub total_frames: u64,
    pub free_frames: u64,
    /// Free blocks per order.
    pub free_blocks: [u32; MAX_ORDER + 1],
}

pub struct FrameAllocator {
    zones: Vec<Zone>,
    total: u64,
    free: u64,
}

impl Zone {
    fn idx(&self, pfn: u64) -> Option<usize> {
        let i = pfn.checked_sub(self.base_pfn)?;
        (i < self.meta.len() as u64).then_some(i as usize)
    }

    fn push(&mut self, i: usize, order: usize) {
        let head = self.heads[order];
        self.meta[i] = Meta {
            next: head,
            prev: NIL,
            order: order as u8,
            state: State::FreeHead,
        };
        if head != NIL {
            self.meta[head as usize].prev = i as u32;
        }
        self.heads[order] = i as u32;
    }

    fn unlink(&mut self, i: usize) {
        let Meta {
            next, prev, order, ..
        } = self.meta[i];
        if prev == NIL {
            self.heads[order as usize] = next;
        } else {
            self.meta[prev as usize].next = next;
        }
        if next != NIL {
            self.meta[next as usize].prev = prev;
        }
        self.meta[i].state = State::Inner;
    }

    fn pop(&mut self, order: usize) -> Option<usize> {
        let head = self.heads[order];
        if head == NIL {
            return None;
        }
        self.unlink(head as usize);
        Some(head as usize)
    }

    /// Frees `[i, i + 2^order)` (already known to be free) and merges.
    fn release(&mut self, mut i: usize, mut order: usize) {
        while order < MAX_ORDER {
            let pfn = self.base_pfn + i as u64;
            let buddy_pfn = pfn ^ (1 << order);
            let Some(b) = self.idx(buddy_pfn) else { break };
            // The whole buddy block must lie inside this zone.
            if b + (1 << order) > self.meta.len() {
                break;
            }
            let m = self.meta[b];
            if m.state != State::FreeHead || m.order as usize != order {
                break;
            }
            self.unlink(b);
            i = i.min(b);
            order += 1;
        }
        self.push(i, order);
    }
}

impl FrameAllocator {
    /// Builds an allocator owning the frames of `ranges` (byte addresses,
    /// rounded inward to whole frames). Ranges must not overlap.
    pub fn new(ranges: &[Range<u64>]) -> Self {
        let mut a = FrameAllocator {
            zones: Vec::new(),
            total: 0,
            free: 0,
        };
        for r in ranges {
            let start = r.start.div_ceil(FRAME_SIZE);
            let end = r.end / FRAME_SIZE;
            if end <= start || end - start > u64::from(u32::MAX - 1) {
                continue;
            }
            let n = (end - start) as usize;
            let mut zone = Zone {
                base_pfn: start,
                meta: alloc::vec![
                    Meta {
                        next: NIL,
                        prev: NIL,
                        order: 0,
                        state: State::Inner
                    };
                    n
                ],
                heads: [NIL; MAX_ORDER + 1],
            };
            // Carve the range into maximal naturally aligned blocks.
            let mut pfn = start;
            while pfn < end {
                let mut order = (pfn.trailing_zeros() as usize).min(MAX_ORDER);
                while pfn + (1 << order) > end {
                    order -= 1;
                }
                zone.push((pfn - start) as usize, order);
                pfn += 1 << order;
            }
            a.total += n as u64;
            a.free += n as u64;
            a.zones.push(zone);
        }
        a
    }

    /// Allocates `2^order` contiguous frames aligned to their size; returns
    /// the physical address of the first.
    pub fn alloc(&mut self, order: usize) -> Result<u64, FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::BadOrder(order));
        }
        for zone in &mut self.zones {
            let Some(found) = (order..=MAX_ORDER).find(|&o| zone.heads[o] != NIL) else {
                continue;
            };
            let i = zone.pop(found).expect("list head was not NIL");
            // Split down, returning upper halves to their lists.
            let mut o = found;
            while o > order {
                o -= 1;
                zone.push(i + (1 << o), o);
            }
            zone.meta[i].state = State::AllocatedHead;
            zone.meta[i].order = order as u8;
            self.free -= 1 << order;
            return Ok((zone.base_pfn + i as u64) * FRAME_SIZE);
        }
        Err(FrameError::OutOfFrames { order })
    }

    /// Returns a block from [`alloc`](Self::alloc) with the same order.
    pub fn free(&mut self, addr: u64, order: usize) -> Result<(), FrameError> {
        let err = FrameError::NotAllocated { addr, order };
        if order > MAX_ORDER || !addr.is_multiple_of(FRAME_SIZE) {
            return Err(err);
        }
        let pfn = addr / FRAME_SIZE;
        let zone = self
            .zones
            .iter_mut()
            .find(|z| z.idx(pfn).is_some())
            .ok_or(err)?;
        let i = zone.idx(pfn).ok_or(err)?;
        let m = zone.meta[i];
        if m.state != State::AllocatedHead || m.order as usize != order {
            return Err(err);
        }
        zone.meta[i].state = State::Inner;
        zone.release(i, order);
        self.free += 1 << order;
        Ok(())
    }

    pub fn stats(&self) -> FrameStats {
        let mut s = FrameStats {
            total_frames: self.total,
            free_frames: self.free,
            ..FrameStats::default()
        };
        for z in &self.zones {
            for (o, &head) in z.heads.iter().enumerate() {
                let mut i = head;
                while i != NIL {
                    s.free_blocks[o] += 1;
                    i = z.meta[i as usize].next;
                }
            }
        }
        s
    }
}

/// Usable RAM minus what is in use at boot, page-aligned inward, sorted.
/// `usable` and `reserved` may be in any order; the result never overlaps a
/// reserved range.
pub fn subtract_ranges(usable: &[Range<u64>], reserved: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for u in usable {
        let mut pieces = alloc::vec![u.clone()];
        for r in reserved {
            pieces = pieces
                .into_iter()
                .flat_map(|p| {
                    let left = p.start..p.end.min(r.start);
                    let right = p.start.max(r.end)..p.end;
                    [left, right]
                })
                .filter(|p| p.start < p.end)
                .collect();
        }
        out.extend(pieces);
    }
    let mut out: Vec<Range<u64>> = out
        .into_iter()
        .map(|r| r.start.next_multiple_of(FRAME_SIZE)..r.end / FRAME_SIZE * FRAME_SIZE)
        .filter(|r| r.start < r.end)
        .collect();
    out.sort_by_key(|r| r.start);
    out
}

#[cfg(test)]
// `&[a..b]` is a list of one physical range here, not a mistaken range of values.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn carves_into_aligned_blocks_and_counts() {
        // 1 MiB + 12 KiB starting at 4 KiB: not aligned at either end.
        let a = FrameAllocator::new(&[0x1000..0x1000 + MIB + 0x3000]);
        let s = a.stats();
        assert_eq!(s.total_frames, 256 + 3);
        assert_eq!(s.free_frames, s.total_frames);
        let counted: u64 = s
            .free_blocks
            .iter()
            .enumerate()
            .map(|(o, &n)| u64::from(n) << o)
            .sum();
        assert_eq!(counted, s.total_frames);
    }

    #[test]
    fn blocks_are_naturally_aligned() {
        let mut a = FrameAllocator::new(&[0x5000..64 * MIB]);
        for order in [0, 3, 9, 4, 9, 0] {
            let pa = a.alloc(order).unwrap();
            assert_eq!(pa % (FRAME_SIZE << order), 0, "order {order} at {pa:#x}");
        }
    }

    #[test]
    fn free_coalesces_back_to_the_original_shape() {
        let mut a = FrameAllocator::new(&[0..8 * MIB]);
        let before = a.stats();
        let mut got: Vec<(u64, usize)> = Vec::new();
        for i in 0..200 {
            let order = i % 4;
            got.push((a.alloc(order).unwrap(), order));
        }
        assert!(a.stats().free_frames < before.free_frames);
        // Free in a scrambled order.
        got.sort_by_key(|&(pa, _)| (pa.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 7);
        for (pa, order) in got {
            a.free(pa, order).unwrap();
        }
        assert_eq!(a.stats(), before);
        // 8 MiB at 0 is exactly one order-11 block.
        assert_eq!(before.free_blocks[11], 1);
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut a = FrameAllocator::new(&[0..16 * FRAME_SIZE]);
        for _ in 0..16 {
            a.alloc(0).unwrap();
        }
        assert_eq!(a.alloc(0), Err(FrameError::OutOfFrames { order: 0 }));
        assert_eq!(
            a.alloc(MAX_ORDER + 1),
            Err(FrameError::BadOrder(MAX_ORDER + 1))
        );
    }

    #[test]
    fn allocations_never_overlap() {
        let mut a = FrameAllocator::new(&[0x3000..3 * MIB, 5 * MIB..6 * MIB]);
        let mut blocks = Vec::new();
        let mut order = 0;
        while let Ok(pa) = a.alloc(order % 5) {
            blocks.push(pa..pa + (FRAME_SIZE << (order % 5)));
            order += 1;
        }
        // Whatever remains must be smaller than the order that failed.
        blocks.sort_by_key(|r| r.start);
        for w in blocks.windows(2) {
            assert!(w[0].end <= w[1].start, "{:?} overlaps {:?}", w[0], w[1]);
        }
        for b in &blocks {
            assert!((0x3000..3 * MIB).contains(&b.start) || (5 * MIB..6 * MIB).contains(&b.start));
        }
    }

    #[test]
    fn double_free_and_wrong_order_are_refused() {
        let mut a = FrameAllocator::new(&[0..MIB]);
        let pa = a.alloc(2).unwrap();
        assert!(a.free(pa, 1).is_err());
        assert!(a.free(pa + FRAME_SIZE, 2).is_err());
        a.free(pa, 2).unwrap();
        assert_eq!(
            a.free(pa, 2),
            Err(FrameError::NotAllocated { addr: pa, order: 2 })
        );
        assert!(a.free(64 * MIB, 0).is_err(), "foreign memory");
    }

    #[test]
    fn buddies_do_not_merge_across_zone_edges() {
        // Two zones that are buddies of each other in pfn space stay apart.
        let mut a = FrameAllocator::new(&[0..4 * FRAME_SIZE, 4 * FRAME_SIZE..8 * FRAME_SIZE]);
        assert_eq!(a.stats().free_blocks[2], 2);
        assert_eq!(a.stats().free_blocks[3], 0);
        let x = a.alloc(2).unwrap();
        a.free(x, 2).unwrap();
        assert_eq!(a.stats().free_blocks[3], 0);
    }

    #[test]
    fn subtract_reserved_and_align() {
        let usable = [0x1000..0x9f000, 0x10_0000..0x800_0000];
        let reserved = [0x20_0000..0x40_0800, 0x7f0_0000..0x900_0000];
        let r = subtract_ranges(&usable, &reserved);
        assert_eq!(
            r,
            [0x1000..0x9f000, 0x10_0000..0x20_0000, 0x40_1000..0x7f0_0000]
        );
    }
}
