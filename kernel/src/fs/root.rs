//! Building the file-system tree at boot: [`mount_root`].

use super::devfs::{Console, DevFs};
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
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Initrd(e) => write!(f, "{e}"),
            MountError::MountPoint(p, e) => write!(f, "fs: cannot mount at={p} error={e}"),
        }
    }
}

/// The text of `/proc/self/mounts` for the tree [`mount_root`] builds.
const MOUNTS: &str = "rootfs / rootfs rw 0 0\n\
devtmpfs /dev devtmpfs rw,nosuid,mode=755 0 0\n\
proc /proc proc rw,nosuid,nodev,noexec 0 0\n\
sysfs /sys sysfs rw,nosuid,nodev,noexec 0 0\n\
tmpfs /tmp tmpfs rw,nosuid,nodev,mode=1777 0 0\n";

/// Builds the whole tree: a ramfs root filled from the cpio `newc`
/// `initrd` (if any; directories, files, symlinks, modes, owners and
/// times; file contents are read in place from `initrd`, which must stay
/// mapped and reserved, and copied only when a file is changed), `/etc`
/// created if absent, and mounted on it devfs at `/dev`
/// (its console is `console`: kernel console output and input), procfs
/// at `/proc` (facts from `proc`), sysfs at `/sys`, and an empty tmpfs at
/// `/tmp`. Call once at boot; give the result to
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
    for dir in ["dev", "proc", "sys", "tmp", "etc"] {
        root.mkdir_p(dir)
            .map_err(|e| MountError::MountPoint(dir, e))?;
    }
    let root_inode: Arc<dyn Inode> = root;
    let mut vfs = Vfs::new(root_inode);
    let mounts: [(&'static str, Arc<dyn Inode>); 4] = [
        ("/dev", DevFs::new(console)),
        ("/proc", procfs::new_procfs(proc, String::from(MOUNTS))),
        ("/sys", procfs::new_sysfs(proc.cpus)),
        ("/tmp", RamFs::new_tmpfs()),
    ];
    for (at, fs) in mounts {
        vfs.mount(at, fs)
            .map_err(|e| MountError::MountPoint(at, e))?;
    }
    log::info!("fs: root=ramfs initrd_entries={entries} mounts=/dev,/proc,/sys,/tmp");
    Ok(Arc::new(vfs))
}
