//! Building the file-system tree at boot: [`mount_root`] (a ramfs root
//! filled from the initramfs) or [`mount_image_root`] (a read-only
//! SKIFFIMG image from a disk, `root=` on the kernel command line; see
//! docs/imagefs.md). Both mount the same file systems on top.

use super::devfs::{Console, DevFs};
use super::imagefs::ImageFs;
use super::procfs::{self, ProcSources};
use super::ramfs::{PopulateError, RamFs};
use super::{Inode, Vfs};
use crate::errno::Errno;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountError {
    /// The initramfs could not be unpacked.
    Initrd(PopulateError),
    /// A mount point could not be made or mounted on.
    MountPoint(&'static str, Errno),
    /// The read-only root image lacks a directory to mount on.
    NoMountPoint(&'static str),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Initrd(e) => write!(f, "{e}"),
            MountError::MountPoint(p, e) => write!(f, "fs: cannot mount at={p} error={e}"),
            MountError::NoMountPoint(p) => write!(
                f,
                "fs: the root image has no directory {p} to mount on (images from `cargo skiff run --disk` have one)"
            ),
        }
    }
}

/// The text of `/proc/self/mounts` below the root's line.
const MOUNTS: &str = "devtmpfs /dev devtmpfs rw,nosuid,mode=755 0 0\n\
proc /proc proc rw,nosuid,nodev,noexec 0 0\n\
sysfs /sys sysfs rw,nosuid,nodev,noexec 0 0\n\
tmpfs /tmp tmpfs rw,nosuid,nodev,mode=1777 0 0\n";
/// The read-only image root's extra line.
const RUN_MOUNT: &str = "tmpfs /run tmpfs rw,nosuid,nodev,mode=755 0 0\n";

/// Where the file systems on top of the root go (`/run` only on an image
/// root: on a ramfs root it is a plain, writable directory).
const MOUNT_POINTS: [&str; 5] = ["/dev", "/proc", "/sys", "/tmp", "/run"];

/// Builds the whole tree: a ramfs root filled from the cpio `newc`
/// `initrd` (if any; directories, files, symlinks, modes, owners and
/// times; file contents are read in place from `initrd`, which must stay
/// mapped and reserved, and copied only when a file is changed), `/etc`
/// created if absent, and mounted on it devfs at `/dev`
/// (its console is `console`: kernel console output and input), procfs
/// at `/proc` (facts from `proc`), sysfs at `/sys`, and an empty tmpfs at
/// `/tmp` (`/run` is a directory of the root). Call once at boot; give the result to
/// `linux::fd::FsState::new` and `linux::fd::FdTable::with_stdio`.
pub fn mount_root(
    initrd: Option<&'static [u8]>,
    console: Option<Arc<dyn Console>>,
    proc: ProcSources,
) -> Result<Arc<Vfs>, MountError> {
    let root = RamFs::new_root();
    let entries = match initrd {
        Some(archive) => RamFs::populate_image(&root, archive).map_err(MountError::Initrd)?,
        None => 0,
    };
    for dir in ["dev", "proc", "sys", "tmp", "run", "etc"] {
        root.mkdir_p(dir)
            .map_err(|e| MountError::MountPoint(dir, e))?;
    }
    let mounts = alloc::format!("rootfs / rootfs rw 0 0\n{MOUNTS}");
    let vfs = mount_on(root, console, proc, mounts, false)?;
    log::info!("fs: root=ramfs initrd_entries={entries} mounts=/dev,/proc,/sys,/tmp");
    Ok(vfs)
}

/// Builds the tree on a mounted image: the image is `/` (read-only;
/// `dev` names its disk, `/dev/vda`), with the same file systems mounted
/// on it as [`mount_root`] mounts and a tmpfs (mode 0755) on `/run`. The
/// image must have the mount points.
pub fn mount_image_root(
    image: Arc<ImageFs>,
    dev: &str,
    console: Option<Arc<dyn Console>>,
    proc: ProcSources,
) -> Result<Arc<Vfs>, MountError> {
    let root = image.root();
    for at in MOUNT_POINTS {
        match root.lookup(&at[1..]) {
            Ok(d) if d.is_dir() => {}
            _ => return Err(MountError::NoMountPoint(at)),
        }
    }
    let mounts = alloc::format!("{dev} / skiffimg ro,relatime 0 0\n{MOUNTS}{RUN_MOUNT}");
    let vfs = mount_on(root, console, proc, mounts, true)?;
    Ok(vfs)
}

/// Mounts devfs, procfs, sysfs and a tmpfs on `/tmp` on `root`, and
/// another on `/run` if `run`.
fn mount_on(
    root: Arc<dyn Inode>,
    console: Option<Arc<dyn Console>>,
    proc: ProcSources,
    mounts_text: String,
    run: bool,
) -> Result<Arc<Vfs>, MountError> {
    let mut vfs = Vfs::new(root);
    let mut fss: alloc::vec::Vec<Arc<dyn Inode>> = alloc::vec![
        DevFs::new(console),
        procfs::new_procfs(proc, mounts_text),
        procfs::new_sysfs(proc.cpus),
        RamFs::new_tmpfs(),
    ];
    if run {
        let run = RamFs::new_tmpfs();
        run.set_perm(0o755)
            .map_err(|e| MountError::MountPoint("/run", e))?;
        fss.push(run);
    }
    for (at, fs) in MOUNT_POINTS.into_iter().zip(fss) {
        vfs.mount(at, fs)
            .map_err(|e| MountError::MountPoint(at, e))?;
    }
    Ok(Arc::new(vfs))
}
