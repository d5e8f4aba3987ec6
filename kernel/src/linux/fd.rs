//! File descriptors: the per-process descriptor table ([`FdTable`]), the
//! open file descriptions the descriptors point to ([`OpenFile`]), and the
//! file-system state `open`, `chdir` and `umask` use ([`FsState`]).
//!
//! What the process (and `start.rs`) calls:
//! - at boot, after `fs::mount_root`: `FsState::new(vfs)` (cwd `/`,
//!   umask 022) and `FdTable::with_stdio(&vfs)` (descriptors 0, 1 and 2
//!   open on `/dev/console`, read-write, as Linux gives init);
//! - `clone` without `CLONE_FILES` / `CLONE_FS`: `FdTable::duplicate`,
//!   `FsState::duplicate` (with them: share the `Arc`);
//! - `execve`: `FdTable::close_on_exec`;
//! - `setrlimit(RLIMIT_NOFILE)`: `FdTable::set_limit` / `limit`;
//! - procfs's `fds` source: `FdTable::paths`.
//!
//! Locking: the table is one `spin::Mutex` around a slot vector; every
//! critical section is short (a slot scan bounded by the descriptor limit,
//! an `Arc` clone). Open files are never dropped under the lock — closing
//! the last descriptor of a pipe end wakes the other end — callers get the
//! removed `Arc` back and drop it after. An [`OpenFile`]'s offset and
//! status flags are atomics; its inode does its own locking.
//!
//! Simplified: the offset is loaded before and stored after each I/O
//! (Linux also serialises concurrent `read`s on one description with a
//! lock); `O_APPEND` writes are atomic through [`Inode::append`].

use crate::errno::{Errno, KResult};
use crate::fs::{FileType, Inode, Vfs, WaitQueue};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

/// `open` flags. Most are the same on x86_64 and aarch64; the four that
/// differ are chosen by the target arch (host builds use x86_64's).
pub mod oflag {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_RDONLY: u32 = 0;
    pub const O_WRONLY: u32 = 1;
    pub const O_RDWR: u32 = 2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_NOCTTY: u32 = 0o400;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_NONBLOCK: u32 = 0o4000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const O_ASYNC: u32 = 0o20000;
    pub const O_NOATIME: u32 = 0o1000000;
    pub const O_CLOEXEC: u32 = 0o2000000;
    pub const O_SYNC: u32 = 0o4010000;
    pub const O_PATH: u32 = 0o10000000;
    pub const O_TMPFILE_BIT: u32 = 0o20000000;

    /// The arch-dependent flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ArchFlags {
        pub directory: u32,
        pub nofollow: u32,
        pub direct: u32,
        pub largefile: u32,
    }

    pub const X86_64: ArchFlags = ArchFlags {
        directory: 0o200000,
        nofollow: 0o400000,
        direct: 0o40000,
        largefile: 0o100000,
    };

    pub const AARCH64: ArchFlags = ArchFlags {
        directory: 0o40000,
        nofollow: 0o100000,
        direct: 0o200000,
        largefile: 0o400000,
    };

    #[cfg(target_arch = "aarch64")]
    pub const ARCH: ArchFlags = AARCH64;
    #[cfg(not(target_arch = "aarch64"))]
    pub const ARCH: ArchFlags = X86_64;

    pub const O_DIRECTORY: u32 = ARCH.directory;
    pub const O_NOFOLLOW: u32 = ARCH.nofollow;
    pub const O_DIRECT: u32 = ARCH.direct;
    pub const O_LARGEFILE: u32 = ARCH.largefile;

    /// Flags `F_SETFL` may change (Linux's `SETFL_MASK`).
    pub const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;
}

use oflag::*;

/// Bumped, and [`closed_queue`] woken, whenever a descriptor is closed
/// or replaced. `epoll_wait` holds its members' open files while it
/// sleeps; this tells it to let go, so the close takes effect (a pipe's
/// other end sees the hang-up) as on Linux, whose epoll holds none.
static CLOSED_SEQ: AtomicU64 = AtomicU64::new(0);
static CLOSED: WaitQueue = WaitQueue::new();

/// See [`CLOSED_SEQ`].
pub fn closed_seq() -> u64 {
    CLOSED_SEQ.load(Ordering::Acquire)
}

/// Woken when [`closed_seq`] moves.
pub fn closed_queue() -> &'static WaitQueue {
    &CLOSED
}

fn note_closed() {
    CLOSED_SEQ.fetch_add(1, Ordering::AcqRel);
    CLOSED.wake_all();
}

/// An open file description: what `open` creates and `dup` shares.
pub struct OpenFile {
    inode: Arc<dyn Inode>,
    /// The path it was opened by (for `/proc/self/fd`).
    path: String,
    /// The flags `F_GETFL` returns (access mode and status flags).
    flags: AtomicU32,
    offset: AtomicU64,
}

impl OpenFile {
    /// `flags`: the access mode and status flags as `F_GETFL` will show
    /// them (callers drop the creation flags, as Linux does).
    pub fn new(inode: Arc<dyn Inode>, path: String, flags: u32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            inode,
            path,
            flags: AtomicU32::new(flags),
            offset: AtomicU64::new(0),
        })
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// `F_SETFL`: only [`oflag::SETFL_MASK`] bits change.
    pub fn set_status_flags(&self, flags: u32) {
        let _ = self
            .flags
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & !SETFL_MASK) | (flags & SETFL_MASK))
            });
    }

    fn is_path_only(&self) -> bool {
        self.flags() & O_PATH != 0
    }

    pub fn can_read(&self) -> bool {
        !self.is_path_only() && matches!(self.flags() & O_ACCMODE, O_RDONLY | O_RDWR)
    }

    pub fn can_write(&self) -> bool {
        !self.is_path_only() && matches!(self.flags() & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    pub fn nonblocking(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }

    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Relaxed)
    }

    pub fn set_offset(&self, off: u64) {
        self.offset.store(off, Ordering::Relaxed);
    }

    /// `read` at the file position (streams: no position). EBADF if not
    /// open for reading, EISDIR on directories.
    pub fn read(&self, buf: &mut [u8]) -> KResult<usize> {
        if !self.can_read() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return self.inode.read_stream(buf, self.nonblocking());
        }
        let pos = self.offset();
        let n = self.inode.read_at(pos, buf)?;
        self.set_offset(pos + n as u64);
        Ok(n)
    }

    /// `write` at the file position, or at the end with `O_APPEND`.
    pub fn write(&self, buf: &[u8]) -> KResult<usize> {
        if !self.can_write() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return self.inode.write_stream(buf, self.nonblocking());
        }
        if self.flags() & O_APPEND != 0 {
            let end = self.inode.append(buf)?;
            self.set_offset(end);
            return Ok(buf.len());
        }
        let pos = self.offset();
        let n = self.inode.write_at(pos, buf)?;
        self.set_offset(pos + n as u64);
        Ok(n)
    }

    /// `pread`: at `pos`, the file position unchanged. ESPIPE on streams.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> KResult<usize> {
        if !self.can_read() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return Err(Errno::ESPIPE);
        }
        self.inode.read_at(pos, buf)
    }

    /// `pwrite`: at `pos` (Linux appends even here under `O_APPEND`).
    pub fn write_at(&self, pos: u64, buf: &[u8]) -> KResult<usize> {
        if !self.can_write() {
            return Err(Errno::EBADF);
        }
        if !self.inode.seekable() {
            return Err(Errno::ESPIPE);
        }
        if self.flags() & O_APPEND != 0 {
            self.inode.append(buf)?;
            return Ok(buf.len());
        }
        self.inode.write_at(pos, buf)
    }

    pub fn is_dir(&self) -> bool {
        self.inode.metadata().kind == FileType::Directory
    }
}

/// The soft `RLIMIT_NOFILE` a process starts with (Linux's default).
pub const DEFAULT_NOFILE: usize = 1024;
/// The most descriptors a process may raise its limit to (`nr_open`).
pub const MAX_NOFILE: usize = 1 << 20;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    cloexec: bool,
}

struct Slots {
    fds: Vec<Option<Slot>>,
    limit: usize,
}

impl Slots {
    fn lowest_free(&self, from: usize) -> KResult<usize> {
        let fd = (from..self.fds.len())
            .find(|&i| self.fds[i].is_none())
            .unwrap_or(self.fds.len().max(from));
        if fd >= self.limit {
            return Err(Errno::EMFILE);
        }
        Ok(fd)
    }

    fn put(&mut self, fd: usize, slot: Slot) -> Option<Slot> {
        if fd >= self.fds.len() {
            self.fds.resize(fd + 1, None);
        }
        self.fds[fd].replace(slot)
    }
}

/// The descriptor table. Shared (`Arc`) by threads made with
/// `CLONE_FILES`; see the module doc for its lock.
pub struct FdTable {
    slots: Mutex<Slots>,
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FdTable {
    /// An empty table with the default limit.
    pub fn new() -> Self {
        FdTable {
            slots: Mutex::new(Slots {
                fds: Vec::new(),
                limit: DEFAULT_NOFILE,
            }),
        }
    }

    /// A table with 0, 1 and 2 open read-write on `/dev/console`.
    pub fn with_stdio(vfs: &Vfs) -> KResult<Self> {
        let console = vfs.resolve(&vfs.root(), "/dev/console", true)?;
        let t = Self::new();
        t.install_stdio(console, "/dev/console");
        Ok(t)
    }

    /// Opens `console` (reachable at `path`) as descriptors 0, 1 and 2,
    /// one shared description, replacing whatever was there.
    pub fn install_stdio(&self, console: Arc<dyn Inode>, path: &str) {
        let file = OpenFile::new(console, String::from(path), O_RDWR | O_LARGEFILE);
        let mut old = Vec::new();
        {
            let mut s = self.slots.lock();
            for fd in 0..3 {
                let slot = Slot {
                    file: file.clone(),
                    cloexec: false,
                };
                old.push(s.put(fd, slot));
            }
        }
        drop(old);
    }

    /// Installs `file` at the lowest free descriptor; EMFILE at the limit.
    pub fn insert(&self, file: Arc<OpenFile>, cloexec: bool) -> KResult<usize> {
        self.insert_from(0, file, cloexec)
    }

    /// Installs at the lowest free descriptor `>= min` (`F_DUPFD`):
    /// EINVAL if `min` is at or above the limit, EMFILE if none is free.
    pub fn insert_from(&self, min: usize, file: Arc<OpenFile>, cloexec: bool) -> KResult<usize> {
        let mut s = self.slots.lock();
        if min >= s.limit {
            return Err(Errno::EINVAL);
        }
        let fd = s.lowest_free(min)?;
        s.put(fd, Slot { file, cloexec });
        Ok(fd)
    }

    /// Installs at exactly `fd` (`dup2`/`dup3`), returning what was there
    /// for the caller to drop. EBADF if `fd` is at or above the limit.
    pub fn install_at(
        &self,
        fd: usize,
        file: Arc<OpenFile>,
        cloexec: bool,
    ) -> KResult<Option<Arc<OpenFile>>> {
        let old = {
            let mut s = self.slots.lock();
            if fd >= s.limit {
                return Err(Errno::EBADF);
            }
            s.put(fd, Slot { file, cloexec }).map(|o| o.file)
        };
        if old.is_some() {
            note_closed();
        }
        Ok(old)
    }

    /// The open file behind `fd`; EBADF if none.
    pub fn get(&self, fd: usize) -> KResult<Arc<OpenFile>> {
        let s = self.slots.lock();
        match s.fds.get(fd) {
            Some(Some(slot)) => Ok(slot.file.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    /// Closes `fd`, returning its description for the caller to drop
    /// (outside any lock of the caller's, too).
    pub fn remove(&self, fd: usize) -> KResult<Arc<OpenFile>> {
        let slot = self.slots.lock().fds.get_mut(fd).and_then(Option::take);
        let file = slot.map(|sl| sl.file).ok_or(Errno::EBADF)?;
        note_closed();
        Ok(file)
    }

    pub fn cloexec(&self, fd: usize) -> KResult<bool> {
        let s = self.slots.lock();
        match s.fds.get(fd) {
            Some(Some(slot)) => Ok(slot.cloexec),
            _ => Err(Errno::EBADF),
        }
    }

    pub fn set_cloexec(&self, fd: usize, on: bool) -> KResult<()> {
        let mut s = self.slots.lock();
        match s.fds.get_mut(fd) {
            Some(Some(slot)) => {
                slot.cloexec = on;
                Ok(())
            }
            _ => Err(Errno::EBADF),
        }
    }

    /// `execve`: closes every descriptor marked close-on-exec.
    pub fn close_on_exec(&self) {
        let mut closed = Vec::new();
        {
            let mut s = self.slots.lock();
            for slot in s.fds.iter_mut() {
                if slot.as_ref().is_some_and(|sl| sl.cloexec) {
                    closed.push(slot.take());
                }
            }
        }
        drop(closed);
        note_closed();
    }

    /// `close_range`: closes (or, with `cloexec_only`, marks close-on-exec)
    /// every open descriptor in `first..=last`; returns the closed
    /// descriptions for the caller to drop.
    pub fn close_range(&self, first: usize, last: usize, cloexec_only: bool) -> Vec<Arc<OpenFile>> {
        let mut closed = Vec::new();
        let mut s = self.slots.lock();
        let end = last.saturating_add(1).min(s.fds.len());
        for slot in s.fds.iter_mut().take(end).skip(first) {
            if cloexec_only {
                if let Some(sl) = slot.as_mut() {
                    sl.cloexec = true;
                }
            } else if let Some(sl) = slot.take() {
                closed.push(sl.file);
            }
        }
        drop(s);
        if !closed.is_empty() {
            note_closed();
        }
        closed
    }

    /// A copy for a thread made without `CLONE_FILES`: same descriptions,
    /// separate table.
    pub fn duplicate(&self) -> FdTable {
        let s = self.slots.lock();
        FdTable {
            slots: Mutex::new(Slots {
                fds: s.fds.clone(),
                limit: s.limit,
            }),
        }
    }

    /// The descriptor limit (`RLIMIT_NOFILE`'s soft value).
    pub fn limit(&self) -> usize {
        self.slots.lock().limit
    }

    /// Sets the limit (EPERM above [`MAX_NOFILE`]). Open descriptors at or
    /// above a lowered limit stay open, as on Linux.
    pub fn set_limit(&self, limit: usize) -> KResult<()> {
        if limit > MAX_NOFILE {
            return Err(Errno::EPERM);
        }
        self.slots.lock().limit = limit;
        Ok(())
    }

    /// Open descriptors and their paths (`/proc/self/fd`).
    pub fn paths(&self) -> Vec<(u32, String)> {
        let files: Vec<(u32, Arc<OpenFile>)> = {
            let s = self.slots.lock();
            s.fds
                .iter()
                .enumerate()
                .filter_map(|(i, sl)| sl.as_ref().map(|sl| (i as u32, sl.file.clone())))
                .collect()
        };
        files
            .into_iter()
            .map(|(fd, f)| (fd, String::from(f.path())))
            .collect()
    }

    /// One past the highest descriptor slot ever used (the table never
    /// shrinks, like Linux's): `select` clamps `nfds` by it.
    pub fn slots_len(&self) -> usize {
        self.slots.lock().fds.len()
    }

    /// How many descriptors are open.
    pub fn count(&self) -> usize {
        self.slots.lock().fds.iter().filter(|s| s.is_some()).count()
    }
}

struct Cwd {
    inode: Arc<dyn Inode>,
    path: String,
}

/// Root, working directory and umask. Shared under `CLONE_FS`. The cwd
/// is one short `spin::Mutex` section (an `Arc` and a `String` clone).
pub struct FsState {
    vfs: Arc<Vfs>,
    cwd: Mutex<Cwd>,
    umask: AtomicU32,
}

impl FsState {
    /// Working directory `/`, umask 022 (Linux's default for init).
    pub fn new(vfs: Arc<Vfs>) -> Self {
        let root = vfs.root();
        FsState {
            vfs,
            cwd: Mutex::new(Cwd {
                inode: root,
                path: String::from("/"),
            }),
            umask: AtomicU32::new(0o022),
        }
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    pub fn root(&self) -> Arc<dyn Inode> {
        self.vfs.root()
    }

    /// The working directory and its absolute path.
    pub fn cwd(&self) -> (Arc<dyn Inode>, String) {
        let c = self.cwd.lock();
        (c.inode.clone(), c.path.clone())
    }

    pub fn set_cwd(&self, inode: Arc<dyn Inode>, path: String) {
        let old = core::mem::replace(&mut *self.cwd.lock(), Cwd { inode, path });
        drop(old);
    }

    pub fn umask(&self) -> u32 {
        self.umask.load(Ordering::Relaxed)
    }

    /// Sets the umask (low 9 bits), returning the old one.
    pub fn swap_umask(&self, mask: u32) -> u32 {
        self.umask.swap(mask & 0o777, Ordering::Relaxed)
    }

    /// A copy for a thread made without `CLONE_FS`.
    pub fn duplicate(&self) -> FsState {
        let (inode, path) = self.cwd();
        FsState {
            vfs: self.vfs.clone(),
            cwd: Mutex::new(Cwd { inode, path }),
            umask: AtomicU32::new(self.umask()),
        }
    }
}
