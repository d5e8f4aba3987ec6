//! In-VM tests of the block layer on the board's scratch disk (block
//! device 0, 8 MiB of zeroes with a throw-away overlay).

use super::{virtio, BlockError, SECTOR};
use crate::sched;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use skiff_ktest::{check, check_eq, check_some, ktest, skip};

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

ktest! {
    /// Through the request queue: a 300-sector write and read (split into
    /// device requests of at most 128 sectors) round-trip; requests past
    /// the end or not a whole sector fail before the device and are
    /// counted as refused, not served.
    fn block_queue_read_write_out_of_range() {
        let Some(disk) = virtio::open(0) else {
            skip!("no block device");
        };
        let q = disk.queue();
        let g = q.geometry();
        check_eq!(g.sector_size, SECTOR);
        check!(g.sectors >= 2048);
        if g.read_only {
            skip!("the first disk is read-only");
        }
        let data = pattern(5, 300 * SECTOR);
        check!(q.write(1000, &data).is_ok());
        check!(q.flush().is_ok());
        let mut back = vec![0u8; 300 * SECTOR];
        check!(q.read(1000, &mut back).is_ok());
        check!(back == data);
        let before = q.stats();
        check_eq!(before.ios, 3 + 1 + 3);
        let mut one = [0u8; SECTOR];
        check!(matches!(q.read(g.sectors, &mut one), Err(BlockError::OutOfRange { .. })));
        let mut two = [0u8; 2 * SECTOR];
        check!(matches!(q.read(g.sectors - 1, &mut two), Err(BlockError::OutOfRange { .. })));
        check!(matches!(q.write(u64::MAX, &one), Err(BlockError::OutOfRange { .. })));
        check!(q.read(0, &mut one[..10]) == Err(BlockError::Unaligned { len: 10 }));
        let after = q.stats();
        check_eq!(after.served, before.served);
        check_eq!(after.refused, before.refused + 4);
        // The last sector itself is fine.
        check!(q.read(g.sectors - 1, &mut one).is_ok());
        Ok(())
    }
}

ktest! {
    /// Four threads on every CPU write and read back their own sectors
    /// through one queue at once: each sees exactly its own data, and
    /// every request was served once.
    fn block_queue_serves_concurrent_callers() {
        let Some(disk) = virtio::open(0) else {
            skip!("no block device");
        };
        if disk.geometry().read_only {
            skip!("the first disk is read-only");
        }
        const THREADS: usize = 4;
        const ROUNDS: usize = 20;
        let disk = Arc::new(disk);
        let cpus = sched::online_cpus();
        let mut ts = Vec::new();
        let failures = Arc::new(core::sync::atomic::AtomicUsize::new(0));
        for t in 0..THREADS {
            let (disk, failures) = (disk.clone(), failures.clone());
            ts.push(check_some!(sched::spawn("blkq", move || {
                for r in 0..ROUNDS {
                    let sector = 4000 + (t * ROUNDS + r) as u64 * 4;
                    let data = pattern((t * 31 + r) as u8, 4 * SECTOR);
                    let mut back = vec![0u8; 4 * SECTOR];
                    let q = disk.queue();
                    if q.write(sector, &data).is_err()
                        || q.read(sector, &mut back).is_err()
                        || back != data
                    {
                        failures.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    }
                }
            }, Some(t as u32 % cpus)).ok()));
        }
        for t in &ts {
            sched::join(t);
        }
        check_eq!(failures.load(core::sync::atomic::Ordering::Relaxed), 0);
        check_eq!(disk.queue().stats().served, (THREADS * ROUNDS * 2) as u64);
        Ok(())
    }
}

ktest! {
    /// The cached disk reads any byte range exactly as the queue reads the
    /// sectors, including ranges across 4 KiB blocks, and refuses a range
    /// past the end.
    fn block_cache_reads_match_the_device() {
        let Some(disk) = virtio::open(0) else {
            skip!("no block device");
        };
        if disk.geometry().read_only {
            skip!("the first disk is read-only");
        }
        let data = pattern(77, 40 * SECTOR);
        check!(disk.write(6000, &data).is_ok());
        let base = 6000 * SECTOR as u64;
        let mut got = vec![0u8; 9000];
        check!(disk.read_bytes(base + 1234, &mut got).is_ok());
        check!(got[..] == data[1234..1234 + 9000]);
        // A second read is served from the cache.
        let (q0, hits0, _) = disk.stats();
        let mut again = vec![0u8; 100];
        check!(disk.read_bytes(base + 4000, &mut again).is_ok());
        check!(again[..] == data[4000..4100]);
        let (q1, hits1, _) = disk.stats();
        check_eq!(q1.served, q0.served);
        check!(hits1 > hits0);
        let size = disk.size();
        check!(disk.read_bytes(size - 4, &mut [0u8; 8]).is_err());
        check!(disk.read_bytes(size - 8, &mut [0u8; 8]).is_ok());
        Ok(())
    }
}
