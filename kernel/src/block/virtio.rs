//! The virtio-blk devices of the device registry as [`BlockDevice`]s, and
//! opening the root image named by `root=` ([`mount_root_image`]).

use super::{
    device_name, BlockDevice, BlockError, Disk, Geometry, RequestQueue, RootDevice, SECTOR,
};
use crate::devices;
use crate::fs::imagefs::{DynSource, ImageFs};
use crate::fs::{devfs::Console, procfs::ProcSources, Vfs};
use crate::sync::Mutex;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use skiff_drivers::virtio::DeviceError;

/// Block device `index` of the registry (`devices::with_blk`).
pub struct VirtioBlk {
    index: usize,
    geometry: Geometry,
}

fn error(e: DeviceError) -> BlockError {
    match e {
        DeviceError::ReadOnly => BlockError::ReadOnly,
        DeviceError::Broken => BlockError::Broken,
        _ => BlockError::Io,
    }
}

impl BlockDevice for VirtioBlk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        devices::with_blk(self.index, |b| b.dev.read(sector, buf))
            .ok_or(BlockError::Broken)?
            .map_err(error)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        devices::with_blk(self.index, |b| b.dev.write(sector, buf))
            .ok_or(BlockError::Broken)?
            .map_err(error)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        devices::with_blk(self.index, |b| b.dev.flush())
            .ok_or(BlockError::Broken)?
            .map_err(error)
    }
}

/// A cached, queued virtio disk.
pub type KernelDisk = Disk<VirtioBlk, Mutex<VirtioBlk>>;

/// Number of block devices found.
pub fn count() -> usize {
    (0..)
        .take_while(|&i| devices::with_blk(i, |_| ()).is_some())
        .count()
}

/// Block device `index`, queued and cached. Each call makes a new queue:
/// open a disk once and share the result.
pub fn open(index: usize) -> Option<KernelDisk> {
    let (sectors, read_only) = devices::with_blk(index, |b| (b.dev.capacity(), b.dev.readonly()))?;
    let geometry = Geometry {
        sector_size: SECTOR,
        sectors,
        read_only,
    };
    let dev = VirtioBlk { index, geometry };
    Some(Disk::new(RequestQueue::new(geometry, Mutex::new(dev))))
}

/// Why the root image could not be mounted.
#[derive(Debug)]
pub enum RootError {
    /// `root=` names no device this kernel knows.
    BadSpec(String),
    /// `root=/dev/vdX` but there are fewer disks.
    NoDevice {
        name: String,
        found: usize,
    },
    /// `root=image` and no disk starts with the SKIFFIMG magic.
    NoImage {
        found: usize,
    },
    /// The image on the disk was refused.
    Image {
        name: String,
        error: skiff_imagefs::Error,
    },
    Mount(crate::fs::MountError),
}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootError::BadSpec(s) => write!(
                f,
                "root={s}: expected root=/dev/vdX (X = a, b, ...) or root=image"
            ),
            RootError::NoDevice { name, found } => {
                write!(
                    f,
                    "root=/dev/{name}: no such disk ({found} block devices found)"
                )
            }
            RootError::NoImage { found } => write!(
                f,
                "root=image: no block device holds a SKIFFIMG image ({found} checked)"
            ),
            RootError::Image { name, error } => write!(f, "root=/dev/{name}: {error}"),
            RootError::Mount(e) => write!(f, "{e}"),
        }
    }
}

/// Whether disk `index` starts with the image magic.
fn holds_image(index: usize) -> bool {
    let mut first = [0u8; SECTOR];
    devices::with_blk(index, |b| b.dev.read(0, &mut first)).is_some_and(|r| r.is_ok())
        && first[..8] == skiff_imagefs::MAGIC
}

/// Mounts the image on the disk `spec` (the `root=` value) as `/`, with
/// the usual file systems on top (`fs::mount_image_root`).
pub fn mount_root_image(
    spec: &str,
    console: Option<Arc<dyn Console>>,
    proc: ProcSources,
) -> Result<Arc<Vfs>, RootError> {
    let found = count();
    let index = match RootDevice::parse(spec) {
        None => return Err(RootError::BadSpec(String::from(spec))),
        Some(RootDevice::Index(i)) if i < found => i,
        Some(RootDevice::Index(i)) => {
            return Err(RootError::NoDevice {
                name: device_name(i),
                found,
            })
        }
        Some(RootDevice::FindImage) => (0..found)
            .find(|&i| holds_image(i))
            .ok_or(RootError::NoImage { found })?,
    };
    let name = device_name(index);
    let disk = open(index).ok_or(RootError::NoDevice {
        name: name.clone(),
        found,
    })?;
    let size = disk.size();
    let ro = disk.geometry().read_only;
    // st_dev as Linux numbers virtio disks (major 254).
    let dev = (254 << 8) | index as u64;
    let fs = ImageFs::mount(DynSource(Box::new(disk)), dev).map_err(|error| RootError::Image {
        name: name.clone(),
        error,
    })?;
    let inodes = fs.inode_count();
    let path = alloc::format!("/dev/{name}");
    let vfs = crate::fs::mount_image_root(fs, &path, console, proc).map_err(RootError::Mount)?;
    log::info!(
        "fs: root=imagefs dev={path} inodes={inodes} size={size} readonly_disk={ro} mounts=/dev,/proc,/sys,/tmp,/run"
    );
    Ok(vfs)
}
