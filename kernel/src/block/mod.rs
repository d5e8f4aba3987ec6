//! The block layer: what the kernel's file systems read disks through.
//!
//! * [`BlockDevice`]: a disk as a driver sees it (sector size, capacity,
//!   read-only flag; whole-sector reads, writes, flush). The virtio-blk
//!   devices the device registry found are wrapped in [`virtio`].
//! * [`queue::RequestQueue`]: callers queue requests; they are served in
//!   the order queued, one at a time, by whichever caller holds the
//!   device (a sleeping mutex): a request is checked (bounds, read-only,
//!   alignment) before it is queued, so a bad one fails with a clear
//!   [`BlockError`] and never reaches the device. Long reads are split
//!   into requests of at most [`MAX_IO_SECTORS`].
//! * [`cache::Disk`]: a queue plus a small LRU cache of 4 KiB blocks with
//!   read-ahead, readable at any byte offset; it is the
//!   `skiff_imagefs::Source` the root image file system reads through.
//!
//! Everything but [`virtio`] (and its ktests) is arch-neutral and
//! host-tested.

pub mod cache;
#[cfg(target_os = "none")]
mod ktests;
pub mod queue;
#[cfg(target_os = "none")]
pub mod virtio;

use crate::errno::Errno;
use core::fmt;

pub use cache::Disk;
pub use queue::{Exclusive, RequestQueue};

/// The sector size every device here uses (virtio-blk's unit).
pub const SECTOR: usize = 512;

/// The most sectors one request to the device carries (64 KiB: the
/// virtio HAL bounces each request through contiguous DMA pages).
pub const MAX_IO_SECTORS: u64 = 128;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub sector_size: usize,
    /// Capacity in sectors.
    pub sectors: u64,
    pub read_only: bool,
}

impl Geometry {
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(self.sector_size as u64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// Sectors `sector..sector+count` are not all inside the device.
    OutOfRange {
        sector: u64,
        count: u64,
        capacity: u64,
    },
    /// A buffer that is not a whole, non-zero number of sectors.
    Unaligned { len: usize },
    /// A write to a read-only device.
    ReadOnly,
    /// The device reported an error.
    Io,
    /// The device stopped working (protocol error; the driver reset it).
    Broken,
}

impl BlockError {
    /// The errno a system call reports for it.
    pub fn errno(self) -> Errno {
        match self {
            BlockError::Unaligned { .. } => Errno::EINVAL,
            BlockError::ReadOnly => Errno::EROFS,
            BlockError::OutOfRange { .. } | BlockError::Io | BlockError::Broken => Errno::EIO,
        }
    }
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange {
                sector,
                count,
                capacity,
            } => write!(
                f,
                "sectors {sector}..{} are outside the device ({capacity} sectors)",
                sector.saturating_add(*count)
            ),
            BlockError::Unaligned { len } => {
                write!(f, "{len} bytes is not a whole number of sectors")
            }
            BlockError::ReadOnly => write!(f, "the device is read-only"),
            BlockError::Io => write!(f, "I/O error"),
            BlockError::Broken => write!(f, "the device failed and was reset"),
        }
    }
}

/// A disk as its driver sees it. Buffers are whole sectors; the queue
/// checks every request against [`BlockDevice::geometry`] first.
pub trait BlockDevice: Send {
    fn geometry(&self) -> Geometry;
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// Checks `len` bytes at `sector` against `g`: whole sectors, inside.
pub fn check_range(g: &Geometry, sector: u64, len: usize) -> Result<u64, BlockError> {
    if len == 0 || !len.is_multiple_of(g.sector_size) {
        return Err(BlockError::Unaligned { len });
    }
    let count = (len / g.sector_size) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= g.sectors => Ok(count),
        _ => Err(BlockError::OutOfRange {
            sector,
            count,
            capacity: g.sectors,
        }),
    }
}

/// A disk in memory, for host tests (and a model of the contract).
#[cfg(test)]
pub(crate) mod mem {
    use super::*;
    use alloc::vec::Vec;

    pub struct MemDisk {
        pub data: Vec<u8>,
        pub read_only: bool,
        /// (is_write, sector, sectors) of every request that reached it.
        pub log: Vec<(bool, u64, u64)>,
    }

    impl MemDisk {
        pub fn new(data: Vec<u8>) -> Self {
            assert_eq!(data.len() % SECTOR, 0);
            MemDisk {
                data,
                read_only: false,
                log: Vec::new(),
            }
        }
    }

    impl BlockDevice for MemDisk {
        fn geometry(&self) -> Geometry {
            Geometry {
                sector_size: SECTOR,
                sectors: (self.data.len() / SECTOR) as u64,
                read_only: self.read_only,
            }
        }
        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
            // The device itself must never see a bad request.
            let n = check_range(&self.geometry(), sector, buf.len()).expect("checked by queue");
            assert!(n <= MAX_IO_SECTORS, "request of {n} sectors");
            self.log.push((false, sector, n));
            let s = sector as usize * SECTOR;
            buf.copy_from_slice(&self.data[s..s + buf.len()]);
            Ok(())
        }
        fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
            let n = check_range(&self.geometry(), sector, buf.len()).expect("checked by queue");
            assert!(!self.read_only, "write reached a read-only device");
            self.log.push((true, sector, n));
            let s = sector as usize * SECTOR;
            self.data[s..s + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), BlockError> {
            Ok(())
        }
    }
}

/// Which disk `root=` names (docs/imagefs.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootDevice {
    /// `root=/dev/vda` (or `vda`), `/dev/vdb`, ...: block device N in
    /// discovery order.
    Index(usize),
    /// `root=image`: the first block device whose first sector holds a
    /// SKIFFIMG superblock (what `cargo skiff run --disk` passes: the
    /// order of disks differs between PCI and virtio-mmio boards).
    FindImage,
}

impl RootDevice {
    pub fn parse(value: &str) -> Option<RootDevice> {
        if value == "image" {
            return Some(RootDevice::FindImage);
        }
        let name = value.strip_prefix("/dev/").unwrap_or(value);
        match name.strip_prefix("vd")?.as_bytes() {
            [c @ b'a'..=b'z'] => Some(RootDevice::Index(usize::from(c - b'a'))),
            _ => None,
        }
    }
}

/// The Linux-style name of block device `index` (`vda`, `vdb`, ...).
pub fn device_name(index: usize) -> alloc::string::String {
    match u8::try_from(index).ok().filter(|i| *i < 26) {
        Some(i) => alloc::format!("vd{}", char::from(b'a' + i)),
        None => alloc::format!("blk{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_device_names() {
        assert_eq!(RootDevice::parse("/dev/vda"), Some(RootDevice::Index(0)));
        assert_eq!(RootDevice::parse("vdc"), Some(RootDevice::Index(2)));
        assert_eq!(RootDevice::parse("image"), Some(RootDevice::FindImage));
        for bad in ["", "/dev/sda", "/dev/vd", "/dev/vdaa", "vdA", "/dev/vda1"] {
            assert_eq!(RootDevice::parse(bad), None, "{bad}");
        }
        assert_eq!(device_name(0), "vda");
        assert_eq!(device_name(25), "vdz");
        assert_eq!(device_name(26), "blk26");
    }
}
