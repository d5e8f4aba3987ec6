//! [`Disk`]: a request queue with a small LRU cache of 4 KiB blocks, read
//! at any byte offset. A miss reads ahead up to [`READ_AHEAD`] blocks in
//! one request (files in an image are contiguous). Writes go straight to
//! the device and drop the cached blocks they cover.

use super::queue::{Exclusive, RequestQueue, Stats};
use super::{BlockDevice, BlockError, Geometry};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;

/// The cache's unit (the image file system's block).
pub const BLOCK: usize = 4096;
/// Blocks kept (1 MiB).
pub const CACHE_BLOCKS: usize = 256;
/// Blocks a miss reads at once.
pub const READ_AHEAD: u64 = 8;

struct Lru {
    /// Block number → (data, last use).
    blocks: BTreeMap<u64, (Box<[u8; BLOCK]>, u64)>,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl Lru {
    fn get(&mut self, n: u64, out: &mut [u8], within: usize) -> bool {
        self.clock += 1;
        let now = self.clock;
        match self.blocks.get_mut(&n) {
            Some((data, used)) => {
                *used = now;
                out.copy_from_slice(&data[within..within + out.len()]);
                self.hits += 1;
                true
            }
            None => false,
        }
    }

    fn put(&mut self, n: u64, data: Box<[u8; BLOCK]>) {
        if self.blocks.len() >= CACHE_BLOCKS && !self.blocks.contains_key(&n) {
            let oldest = self.blocks.iter().min_by_key(|(_, (_, used))| *used);
            if let Some((&k, _)) = oldest {
                self.blocks.remove(&k);
            }
        }
        self.clock += 1;
        self.blocks.insert(n, (data, self.clock));
    }
}

/// A cached disk.
pub struct Disk<D: BlockDevice, L: Exclusive<D>> {
    queue: RequestQueue<D, L>,
    cache: spin::Mutex<Lru>,
}

impl<D: BlockDevice, L: Exclusive<D>> Disk<D, L> {
    pub fn new(queue: RequestQueue<D, L>) -> Self {
        Disk {
            queue,
            cache: spin::Mutex::new(Lru {
                blocks: BTreeMap::new(),
                clock: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.queue.geometry()
    }

    pub fn queue(&self) -> &RequestQueue<D, L> {
        &self.queue
    }

    /// (queue counters, cache hits, cache misses).
    pub fn stats(&self) -> (Stats, u64, u64) {
        let c = self.cache.lock();
        (self.queue.stats(), c.hits, c.misses)
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.geometry().bytes()
    }

    fn sectors_per_block(&self) -> u64 {
        (BLOCK / self.geometry().sector_size) as u64
    }

    /// Reads bytes `offset..offset + buf.len()`, all inside the disk.
    pub fn read_bytes(&self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let g = self.geometry();
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > g.bytes()) {
            let ss = g.sector_size as u64;
            return Err(BlockError::OutOfRange {
                sector: offset / ss,
                count: (buf.len() as u64).div_ceil(ss),
                capacity: g.sectors,
            });
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (n, within) = (pos / BLOCK as u64, (pos % BLOCK as u64) as usize);
            let take = (BLOCK - within).min(buf.len() - done);
            let out = &mut buf[done..done + take];
            if !self.cache.lock().get(n, out, within) {
                self.fill(n)?;
                let mut c = self.cache.lock();
                if !c.get(n, out, within) {
                    // Evicted already by other readers: read it alone.
                    drop(c);
                    let data = self.read_blocks(n, 1)?;
                    out.copy_from_slice(&data[within..within + take]);
                }
            }
            done += take;
        }
        Ok(())
    }

    /// Reads `count` blocks from block `n` (the last one may be partial at
    /// the end of the disk: zero-filled).
    fn read_blocks(&self, n: u64, count: u64) -> Result<alloc::vec::Vec<u8>, BlockError> {
        let spb = self.sectors_per_block();
        let first = n * spb;
        let sectors = (count * spb).min(self.geometry().sectors - first);
        let mut data = vec![0u8; sectors as usize * self.geometry().sector_size];
        self.queue.read(first, &mut data)?;
        data.resize(count as usize * BLOCK, 0);
        Ok(data)
    }

    /// Reads block `n` and up to [`READ_AHEAD`]` - 1` uncached blocks after
    /// it into the cache.
    fn fill(&self, n: u64) -> Result<(), BlockError> {
        let spb = self.sectors_per_block();
        let last = self.geometry().sectors.div_ceil(spb);
        let mut count = 1;
        {
            let mut c = self.cache.lock();
            c.misses += 1;
            while count < READ_AHEAD && n + count < last && !c.blocks.contains_key(&(n + count)) {
                count += 1;
            }
        }
        let data = self.read_blocks(n, count)?;
        let mut c = self.cache.lock();
        for (i, chunk) in data.chunks_exact(BLOCK).enumerate() {
            let mut b = Box::new([0u8; BLOCK]);
            b.copy_from_slice(chunk);
            c.put(n + i as u64, b);
        }
        Ok(())
    }

    /// Writes whole sectors through to the device; the blocks they cover
    /// leave the cache.
    pub fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let r = self.queue.write(sector, buf);
        let spb = self.sectors_per_block();
        let sectors = (buf.len() / self.geometry().sector_size) as u64;
        let mut c = self.cache.lock();
        for n in sector / spb..=(sector + sectors.max(1) - 1) / spb {
            c.blocks.remove(&n);
        }
        r
    }

    pub fn flush(&self) -> Result<(), BlockError> {
        self.queue.flush()
    }
}

impl<D: BlockDevice, L: Exclusive<D>> skiff_imagefs::Source for Disk<D, L> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), skiff_imagefs::Unreadable> {
        self.read_bytes(offset, buf).map_err(|e| {
            log::warn!("block: read offset={offset} len={} error={e}", buf.len());
            skiff_imagefs::Unreadable
        })
    }
    fn size(&self) -> u64 {
        Disk::size(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mem::MemDisk;
    use super::super::SECTOR;
    use super::*;
    use alloc::vec::Vec;
    use std::sync::Mutex;

    fn disk(bytes: usize) -> Disk<MemDisk, Mutex<MemDisk>> {
        let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
        let d = MemDisk::new(data);
        Disk::new(RequestQueue::new(d.geometry(), Mutex::new(d)))
    }

    fn expect(offset: usize, len: usize) -> Vec<u8> {
        (offset..offset + len)
            .map(|i| (i * 7 % 251) as u8)
            .collect()
    }

    #[test]
    fn byte_reads_at_any_offset_with_read_ahead() {
        // 10 blocks and a half: the last block is partial.
        let d = disk(10 * BLOCK + 5 * SECTOR);
        let mut buf = vec![0u8; 9000];
        d.read_bytes(100, &mut buf).unwrap();
        assert_eq!(buf, expect(100, 9000));
        // One miss read blocks 0..8 at once; block 2 is then a hit.
        let (q, hits, misses) = d.stats();
        assert_eq!((q.served, misses), (1, 1));
        let mut b = [0u8; 10];
        d.read_bytes(2 * BLOCK as u64 + 3, &mut b).unwrap();
        assert_eq!(b.to_vec(), expect(2 * BLOCK + 3, 10));
        assert_eq!(d.stats().1, hits + 1);
        // The partial last block, up to the very last byte.
        let size = d.size() as usize;
        let mut tail = vec![0u8; 3000];
        d.read_bytes((size - 3000) as u64, &mut tail).unwrap();
        assert_eq!(tail, expect(size - 3000, 3000));
        // Past the end: refused.
        assert!(matches!(
            d.read_bytes(size as u64 - 1, &mut [0u8; 2]),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(d.read_bytes(u64::MAX, &mut [0u8; 2]).is_err());
    }

    #[test]
    fn writes_invalidate_and_the_cache_stays_bounded() {
        let d = disk((CACHE_BLOCKS + 40) * BLOCK);
        let mut b = [0u8; 4];
        d.read_bytes(0, &mut b).unwrap();
        d.write(1, &[9u8; SECTOR]).unwrap();
        let mut s = [0u8; 4];
        d.read_bytes(SECTOR as u64, &mut s).unwrap();
        assert_eq!(s, [9; 4], "a write is seen by the next read");
        let mut all = vec![0u8; (CACHE_BLOCKS + 40) * BLOCK];
        d.read_bytes(0, &mut all).unwrap();
        assert_eq!(all[..SECTOR], expect(0, SECTOR)[..]);
        assert_eq!(all[SECTOR..2 * SECTOR], [9u8; SECTOR][..]);
        assert_eq!(
            all[2 * SECTOR..],
            expect(2 * SECTOR, all.len() - 2 * SECTOR)[..]
        );
        assert!(d.cache.lock().blocks.len() <= CACHE_BLOCKS);
    }

    #[test]
    fn an_image_reads_through_the_disk() {
        use skiff_imagefs::{Builder, Image, ROOT_INO};
        let mut b = Builder::new();
        b.file("/f", (0..20_000u32).map(|i| i as u8).collect(), 0o644)
            .unwrap();
        let mut img = b.finish();
        img.resize(img.len().next_multiple_of(SECTOR) + 8 * SECTOR, 0);
        let d = MemDisk::new(img);
        let disk = Disk::new(RequestQueue::new(d.geometry(), Mutex::new(d)));
        let image = Image::open(disk).unwrap();
        let f = image.lookup(ROOT_INO, "f").unwrap();
        let mut buf = vec![0u8; 20_000];
        assert_eq!(image.read(f, 0, &mut buf).unwrap(), 20_000);
        assert!(buf.iter().enumerate().all(|(i, &x)| x == i as u8));
    }
}
