//! The virtual file system: the [`Inode`] trait every file system
//! implements, the mount table and path walk ([`Vfs`]), and the file
//! systems themselves ([`ramfs`], populated from a [`cpio`] initramfs).
//!
//! Path walking follows Linux: `.` and `..` (which never climbs above the
//! root, and crosses mount points), symlinks anywhere in the path (up to
//! 40 of them, then ELOOP), ENOTDIR / ENOENT / ENAMETOOLONG where Linux
//! returns them. Permission checks are kept simple: the application runs as
//! root.

pub mod cpio;
pub mod devfs;
pub mod eventfd;
pub mod imagefs;
pub mod pipe;
pub mod procfs;
pub mod ramfs;
mod root;
pub mod synth;
pub mod timerfd;
pub mod waitq;

pub use root::{mount_image_root, mount_root, MountError};
pub use waitq::{wait_any, WaitQueue, Wake};

use crate::errno::{Errno, KResult};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// `poll(2)` event bits, Linux's values (also epoll's `EPOLL*` low bits).
pub mod pollbits {
    pub const POLLIN: u32 = 0x001;
    pub const POLLPRI: u32 = 0x002;
    pub const POLLOUT: u32 = 0x004;
    pub const POLLERR: u32 = 0x008;
    pub const POLLHUP: u32 = 0x010;
    pub const POLLNVAL: u32 = 0x020;
    pub const POLLRDNORM: u32 = 0x040;
    pub const POLLRDBAND: u32 = 0x080;
    pub const POLLWRNORM: u32 = 0x100;
    pub const POLLWRBAND: u32 = 0x200;
    pub const POLLRDHUP: u32 = 0x2000;
}

pub const NAME_MAX: usize = 255;
pub const PATH_MAX: usize = 4096;
pub const MAX_SYMLINKS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of `st_mode`.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => 0o100000,
            FileType::Directory => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::CharDevice => 0o020000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// File-system id and inode number: together they identify a file.
    pub dev: u64,
    pub ino: u64,
    pub kind: FileType,
    /// Permission bits only (the type is `kind`).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    /// Access, modification and status-change times, in ns since the epoch.
    pub atime_ns: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
}

impl Metadata {
    /// Metadata with every time zero and one link: the common case of
    /// synthetic files (devices, /proc, /sys).
    pub fn synthetic(dev: u64, ino: u64, kind: FileType, perm: u32, size: u64) -> Metadata {
        Metadata {
            dev,
            ino,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            size,
            rdev: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        }
    }
}

/// File-system type numbers `statfs` reports in `f_type` (Linux's magics).
pub mod magic {
    pub const RAMFS: u64 = 0x8584_58f6;
    pub const TMPFS: u64 = 0x0102_1994;
    pub const PROC: u64 = 0x9fa0;
    pub const SYSFS: u64 = 0x6265_6572;
    pub const PIPEFS: u64 = 0x5049_5045;
    pub const ANON_INODE: u64 = 0x0904_1934;
}

/// Device number of the anonymous inodes behind eventfd, timerfd and epoll
/// descriptors.
pub const ANON_DEV: u64 = 0x0d;

static NEXT_ANON_INO: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// Metadata of an anonymous inode (mode 0600, no file type bits on Linux;
/// shown here as a character device, the nearest [`FileType`]).
pub fn anon_metadata(ino: u64) -> Metadata {
    Metadata::synthetic(ANON_DEV, ino, FileType::CharDevice, 0o600, 0)
}

/// A fresh inode number for an anonymous inode.
pub fn anon_ino() -> u64 {
    NEXT_ANON_INO.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

/// Which timestamps `set_times` changes (None: leave as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Times {
    pub atime_ns: Option<u64>,
    pub mtime_ns: Option<u64>,
}

static CLOCK: spin::Once<fn() -> u64> = spin::Once::new();

/// Installs the wall clock (ns since the epoch) file systems stamp
/// modifications with. Until it is set, times are 0.
pub fn set_clock(now_ns: fn() -> u64) {
    CLOCK.call_once(|| now_ns);
}

/// The time file systems stamp changes with (0 before [`set_clock`]).
pub fn now_ns() -> u64 {
    CLOCK.get().map_or(0, |f| f())
}

/// What to create in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewNode {
    File,
    Directory,
    Symlink(String),
}

/// A file-system object. Methods a kind does not support return the errno
/// Linux returns for them.
pub trait Inode: Send + Sync {
    fn metadata(&self) -> Metadata;

    fn lookup(&self, _name: &str) -> KResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }

    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> KResult<usize> {
        Err(self.not_a_file())
    }

    fn write_at(&self, _offset: u64, _buf: &[u8]) -> KResult<usize> {
        Err(self.not_a_file())
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(self.not_a_file())
    }

    fn readlink(&self) -> KResult<String> {
        Err(Errno::EINVAL)
    }

    /// Directory entries except `.` and `..`: (name, ino, type).
    fn entries(&self) -> KResult<Vec<(String, u64, FileType)>> {
        Err(Errno::ENOTDIR)
    }

    fn create(&self, _name: &str, _what: NewNode, _perm: u32) -> KResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }

    fn unlink(&self, _name: &str) -> KResult<()> {
        Err(Errno::ENOTDIR)
    }

    fn rmdir(&self, _name: &str) -> KResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// Adds a hard link to `target` (same file system) under `name`.
    fn link(&self, _name: &str, _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(Errno::ENOTDIR)
    }

    /// Moves `name` to `new_dir`/`new_name` (same file system only: EXDEV).
    fn rename(&self, _name: &str, _new_dir: &Arc<dyn Inode>, _new_name: &str) -> KResult<()> {
        Err(Errno::ENOTDIR)
    }

    fn set_perm(&self, _perm: u32) -> KResult<()> {
        Err(Errno::EPERM)
    }

    /// `chown`: `None` leaves the id unchanged.
    fn set_owner(&self, _uid: Option<u32>, _gid: Option<u32>) -> KResult<()> {
        Err(Errno::EPERM)
    }

    fn set_times(&self, _times: Times) -> KResult<()> {
        Err(Errno::EPERM)
    }

    /// Appends `buf` at the end of the file as one step (O_APPEND);
    /// returns the new end. File systems with concurrent writers override
    /// this to make it atomic.
    fn append(&self, buf: &[u8]) -> KResult<u64> {
        let end = self.metadata().size;
        let n = self.write_at(end, buf)?;
        Ok(end + n as u64)
    }

    /// Whether the file has positions (`lseek`, `pread`): false for pipes
    /// and terminals, which answer ESPIPE.
    fn seekable(&self) -> bool {
        true
    }

    /// Reads from a stream (a non-seekable file). `nonblock`: EAGAIN
    /// rather than waiting for data.
    fn read_stream(&self, buf: &mut [u8], _nonblock: bool) -> KResult<usize> {
        self.read_at(0, buf)
    }

    /// Writes to a stream; `nonblock` as for [`Inode::read_stream`].
    fn write_stream(&self, buf: &[u8], _nonblock: bool) -> KResult<usize> {
        self.write_at(0, buf)
    }

    /// Bytes a read would return now without waiting (`FIONREAD` on
    /// streams); None for files that do not know.
    fn readable_bytes(&self) -> Option<usize> {
        None
    }

    /// Readiness now, as [`pollbits`] (POLLIN, POLLOUT, POLLHUP, ...), for
    /// poll/select/epoll. Runs with interrupts off inside
    /// `sync::wait_any`'s condition: atomics and short spin locks only,
    /// never a sleeping lock. Default: always readable and writable, like
    /// Linux's regular files.
    fn poll_ready(&self) -> u32 {
        use pollbits::*;
        POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM
    }

    /// Calls `f` with every wait queue this object wakes when what
    /// [`Inode::poll_ready`] reports may have changed. Objects whose
    /// readiness never changes (regular files) register none.
    ///
    /// The queues live as long as the object (`'a`), so poll and epoll
    /// can collect them from many objects and wait on all at once:
    /// implement it as `fn poll_queues<'a>(&'a self, f: &mut dyn
    /// FnMut(&'a WaitQueue)) { f(&self.queue) }` (the lifetime must be
    /// spelled out; an elided one does not match the trait).
    fn poll_queues<'a>(&'a self, _f: &mut dyn FnMut(&'a WaitQueue)) {}

    /// Bumped on every event that Linux would report to an edge-triggered
    /// epoll waiter (data arrived, room appeared, a peer closed), so
    /// `EPOLLET` can tell a new event from a stale level. Objects without
    /// events return 0.
    fn poll_events_seq(&self) -> u64 {
        0
    }

    /// Whether epoll may watch it: Linux refuses (EPERM) files whose
    /// driver has no poll method — regular files and directories on
    /// ramfs/tmpfs, `/dev/null` and friends. Default: everything but
    /// regular files, directories and symlinks.
    fn supports_poll(&self) -> bool {
        !matches!(
            self.metadata().kind,
            FileType::Regular | FileType::Directory | FileType::Symlink
        )
    }

    /// A terminal (answers `TCGETS`; others get ENOTTY).
    fn is_tty(&self) -> bool {
        false
    }

    /// The `statfs` type of the file system this inode is on.
    fn fs_magic(&self) -> u64 {
        magic::RAMFS
    }

    /// For same-file-system checks in `link`/`rename`.
    fn as_any(&self) -> &dyn core::any::Any;

    #[doc(hidden)]
    fn not_a_file(&self) -> Errno {
        match self.metadata().kind {
            FileType::Directory => Errno::EISDIR,
            _ => Errno::EINVAL,
        }
    }
}

impl dyn Inode {
    pub fn is_dir(&self) -> bool {
        self.metadata().kind == FileType::Directory
    }

    fn key(&self) -> (u64, u64) {
        let m = self.metadata();
        (m.dev, m.ino)
    }
}

/// The mount table and path resolution.
pub struct Vfs {
    root: Arc<dyn Inode>,
    /// Mount point (dev, ino) → (mounted root, mount point inode).
    mounts: BTreeMap<(u64, u64), Arc<dyn Inode>>,
    /// Mounted root (dev, ino) → the directory it covers (for `..`).
    covers: BTreeMap<(u64, u64), Arc<dyn Inode>>,
}

/// The result of walking to a path's parent: the directory and last name.
pub struct Parent {
    pub dir: Arc<dyn Inode>,
    pub name: String,
}

impl Vfs {
    pub fn new(root: Arc<dyn Inode>) -> Self {
        Vfs {
            root,
            mounts: BTreeMap::new(),
            covers: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }

    /// Mounts `fs_root` over the directory at `path`.
    pub fn mount(&mut self, path: &str, fs_root: Arc<dyn Inode>) -> KResult<()> {
        let at = self.resolve(&self.root.clone(), path, true)?;
        if !at.is_dir() || !fs_root.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if self.mounts.contains_key(&at.key()) {
            return Err(Errno::EBUSY);
        }
        self.covers.insert(fs_root.key(), at.clone());
        self.mounts.insert(at.key(), fs_root);
        Ok(())
    }

    /// Looks `name` up in `dir`, entering a file system mounted there.
    /// `.` and `..` are handled as the path walk does.
    pub fn lookup_in(&self, dir: &Arc<dyn Inode>, name: &str) -> KResult<Arc<dyn Inode>> {
        match name {
            "." => Ok(dir.clone()),
            ".." => Ok(self.parent_of(dir)),
            _ => Ok(self.enter(dir.lookup(name)?)),
        }
    }

    /// Whether a file system is mounted on `dir` (or `dir` is the root of
    /// one, or of the whole tree): such directories cannot be removed or
    /// renamed (EBUSY).
    pub fn is_mount_point(&self, dir: &Arc<dyn Inode>) -> bool {
        let k = dir.key();
        self.mounts.contains_key(&k) || self.covers.contains_key(&k) || k == self.root.key()
    }

    /// The absolute path of directory `dir`, found by walking `..` up and
    /// looking each directory up by inode number in its parent (as
    /// `getcwd` does). ENOENT if `dir` is no longer reachable (removed).
    pub fn path_of(&self, dir: &Arc<dyn Inode>) -> KResult<String> {
        let mut names: Vec<String> = Vec::new();
        let mut cur = dir.clone();
        let mut steps = 0;
        while cur.key() != self.root.key() {
            steps += 1;
            if steps > PATH_MAX / 2 {
                return Err(Errno::ENOENT);
            }
            // A mounted root is named by the directory it covers.
            let here = match self.covers.get(&cur.key()) {
                Some(covered) => covered.clone(),
                None => cur.clone(),
            };
            let parent = self.parent_of(&here);
            let (dev, ino) = here.key();
            let name = parent
                .entries()?
                .into_iter()
                .filter(|(_, i, _)| *i == ino)
                .map(|(n, _, _)| n)
                .find(|n| parent.lookup(n).is_ok_and(|c| c.key() == (dev, ino)))
                .ok_or(Errno::ENOENT)?;
            names.push(name);
            cur = parent;
        }
        if names.is_empty() {
            return Ok(String::from("/"));
        }
        let mut out = String::new();
        for n in names.iter().rev() {
            out.push('/');
            out.push_str(n);
        }
        Ok(out)
    }

    fn enter(&self, node: Arc<dyn Inode>) -> Arc<dyn Inode> {
        let mut n = node;
        while let Some(m) = self.mounts.get(&n.key()) {
            n = m.clone();
        }
        n
    }

    /// Resolves `path` from `cwd` (absolute paths start at the root).
    /// `follow`: follow a symlink in the last component.
    pub fn resolve(
        &self,
        cwd: &Arc<dyn Inode>,
        path: &str,
        follow: bool,
    ) -> KResult<Arc<dyn Inode>> {
        let mut budget = MAX_SYMLINKS;
        self.walk(cwd, path, follow, &mut budget)
    }

    /// Resolves everything but the last component; the last must be a
    /// plain name (not `.`/`..`, else EEXIST-like callers get EINVAL).
    pub fn resolve_parent(&self, cwd: &Arc<dyn Inode>, path: &str) -> KResult<Parent> {
        check_path(path)?;
        let trimmed = path.trim_end_matches('/');
        let (dir_path, name) = match trimmed.rfind('/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => ("", trimmed),
        };
        if name.is_empty() {
            // "/" itself has no parent entry.
            return Err(Errno::EEXIST);
        }
        if name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let dir = if dir_path.is_empty() {
            cwd.clone()
        } else {
            self.resolve(cwd, dir_path, true)?
        };
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(Parent {
            dir,
            name: String::from(name),
        })
    }

    fn walk(
        &self,
        cwd: &Arc<dyn Inode>,
        path: &str,
        follow_last: bool,
        budget: &mut usize,
    ) -> KResult<Arc<dyn Inode>> {
        check_path(path)?;
        let mut cur = if path.starts_with('/') {
            self.root.clone()
        } else {
            cwd.clone()
        };
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let must_be_dir = path.ends_with('/');
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            if !cur.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if comp.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            match *comp {
                "." => continue,
                ".." => {
                    cur = self.parent_of(&cur);
                    continue;
                }
                _ => {}
            }
            let next = self.enter(cur.lookup(comp)?);
            if next.metadata().kind == FileType::Symlink && (!last || follow_last || must_be_dir) {
                if *budget == 0 {
                    return Err(Errno::ELOOP);
                }
                *budget -= 1;
                let target = next.readlink()?;
                cur = self.walk(&cur, &target, true, budget)?;
                continue;
            }
            cur = next;
        }
        if must_be_dir && !cur.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// `..` of a directory: never above the root; from a mounted file
    /// system's root, the parent of the directory it covers.
    fn parent_of(&self, cur: &Arc<dyn Inode>) -> Arc<dyn Inode> {
        if cur.key() == self.root.key() {
            return self.root.clone();
        }
        if let Some(covered) = self.covers.get(&cur.key()) {
            return self.parent_of(&covered.clone());
        }
        // Every directory answers `..` (a file system's root answers itself).
        cur.lookup("..").unwrap_or_else(|_| self.root.clone())
    }
}

fn check_path(path: &str) -> KResult<()> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
