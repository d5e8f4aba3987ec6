//! ramfs: a file system in kernel memory. It is the root file system
//! (populated from the initramfs with [`RamFs::populate`]) and `/tmp`.
//!
//! Directories know their parent (a `Weak`) so `..` works without the
//! walker keeping a stack; hard links share one node and count `nlink`.
//! Locks are per node and held only for the copy in or out.

use super::cpio::{self, CpioError};
use super::{FileType, Inode, Metadata, NewNode, NAME_MAX};
use crate::errno::{Errno, KResult};
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Device numbers for ramfs instances start above the fixed ones of the
/// other file systems (devfs 0x05, pipefs 0x0c, anon 0x0d, proc 0x16,
/// sys 0x17), so no two mounted file systems share one (mount points are
/// keyed on (dev, ino)).
static NEXT_DEV: AtomicU64 = AtomicU64::new(0x20);

/// Largest regular file ramfs accepts (EFBIG above).
pub const MAX_FILE: u64 = 1 << 40;

struct Fs {
    dev: u64,
    next_ino: AtomicU64,
    /// What `statfs` reports: ramfs for the root, tmpfs for `/tmp`.
    magic: u64,
}

struct Attrs {
    perm: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    atime_ns: u64,
    mtime_ns: u64,
    ctime_ns: u64,
}

impl Attrs {
    /// The contents changed: mtime and ctime move.
    fn modified(&mut self) {
        let now = super::now_ns();
        self.mtime_ns = now;
        self.ctime_ns = now;
    }
}

/// A regular file's bytes: borrowed from the boot image until first
/// changed (the initramfs is not copied into the heap), then owned.
enum Data {
    Image(&'static [u8]),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Image(b) => b,
            Data::Owned(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.bytes().len()
    }

    /// The bytes to change, copied out of the image on the first change
    /// (ENOSPC if the heap cannot hold them).
    fn owned(&mut self) -> KResult<&mut Vec<u8>> {
        if let Data::Image(b) = *self {
            *self = Data::Owned(copy(b).map_err(|_| Errno::ENOSPC)?);
        }
        match self {
            Data::Owned(v) => Ok(v),
            Data::Image(_) => unreachable!("converted above"),
        }
    }
}

/// `b` in a new heap vector; ENOMEM rather than a panic when it does not fit.
fn copy(b: &[u8]) -> KResult<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(b.len()).map_err(|_| Errno::ENOMEM)?;
    v.extend_from_slice(b);
    Ok(v)
}

enum Body {
    File(Mutex<Data>),
    Dir(Mutex<BTreeMap<String, Arc<Node>>>),
    Symlink(String),
}

pub struct Node {
    fs: Arc<Fs>,
    ino: u64,
    me: Weak<Node>,
    parent: Mutex<Weak<Node>>,
    attrs: Mutex<Attrs>,
    body: Body,
}

/// Constructor namespace for ramfs instances.
pub struct RamFs;

impl RamFs {
    /// A new, empty file system; returns its root directory.
    pub fn new_root() -> Arc<Node> {
        Self::with_magic(super::magic::RAMFS)
    }

    /// A new, empty tmpfs (the same file system, reported as tmpfs by
    /// `statfs`, as Linux's `/tmp` usually is).
    pub fn new_tmpfs() -> Arc<Node> {
        let root = Self::with_magic(super::magic::TMPFS);
        root.attrs.lock().perm = 0o1777;
        root
    }

    fn with_magic(magic: u64) -> Arc<Node> {
        let fs = Arc::new(Fs {
            dev: NEXT_DEV.fetch_add(1, Ordering::Relaxed),
            next_ino: AtomicU64::new(2),
            magic,
        });
        let root = Node::new(
            &fs,
            1,
            Body::Dir(Mutex::new(BTreeMap::new())),
            0o755,
            Weak::new(),
        );
        // `.` and the entry in the parent (itself, for a root).
        root.attrs.lock().nlink = 2;
        root
    }

    /// Fills `root` from a cpio `newc` archive: directories are created as
    /// needed, regular files and symlinks copied in. Returns the number of
    /// entries, or the archive's first error (what was added stays; a file
    /// the heap cannot hold is `Fs(path, ENOMEM)`).
    pub fn populate(root: &Arc<Node>, archive: &[u8]) -> Result<usize, PopulateError> {
        Self::fill(root, archive, |b| copy(b).map(Data::Owned))
    }

    /// Like [`RamFs::populate`], but file contents stay in `archive` (the
    /// boot image, which must stay mapped and reserved for the kernel's
    /// life) until a file is first changed: booting copies no file data.
    pub fn populate_image(
        root: &Arc<Node>,
        archive: &'static [u8],
    ) -> Result<usize, PopulateError> {
        Self::fill(root, archive, |b| Ok(Data::Image(b)))
    }

    fn fill<'a>(
        root: &Arc<Node>,
        archive: &'a [u8],
        keep: impl Fn(&'a [u8]) -> KResult<Data>,
    ) -> Result<usize, PopulateError> {
        let mut n = 0;
        for entry in cpio::Reader::new(archive) {
            let e = entry.map_err(PopulateError::Archive)?;
            if e.name.is_empty() || e.name == "." {
                continue;
            }
            let (dir_path, name) = match e.name.rfind('/') {
                Some(i) => (&e.name[..i], &e.name[i + 1..]),
                None => ("", e.name),
            };
            let dir = root
                .mkdir_p(dir_path)
                .map_err(|err| PopulateError::Fs(e.name.to_string(), err))?;
            let perm = e.mode & 0o7777;
            let made = match e.mode & cpio::S_IFMT {
                cpio::S_IFDIR => match dir.lookup_node(name) {
                    Ok(existing) if existing.kind() == FileType::Directory => {
                        existing.attrs.lock().perm = perm;
                        Ok(())
                    }
                    _ => dir.create_node(name, NewNode::Directory, perm).map(|_| ()),
                },
                cpio::S_IFREG => keep(e.data).and_then(|contents| {
                    let f = dir.create_node(name, NewNode::File, perm)?;
                    if let Body::File(data) = &f.body {
                        *data.lock() = contents;
                    }
                    Ok(())
                }),
                cpio::S_IFLNK => {
                    let target = core::str::from_utf8(e.data).map_err(|_| Errno::EINVAL);
                    target.and_then(|t| {
                        dir.create_node(name, NewNode::Symlink(t.to_string()), 0o777)
                            .map(|_| ())
                    })
                }
                // Device nodes, fifos and sockets are not taken from images:
                // devfs provides the devices.
                _ => Ok(()),
            };
            made.map_err(|err| PopulateError::Fs(e.name.to_string(), err))?;
            if let Ok(node) = dir.lookup_node(name) {
                let mut a = node.attrs.lock();
                a.uid = e.uid;
                a.gid = e.gid;
                let t = u64::from(e.mtime) * 1_000_000_000;
                (a.atime_ns, a.mtime_ns, a.ctime_ns) = (t, t, t);
            }
            n += 1;
        }
        Ok(n)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PopulateError {
    Archive(CpioError),
    /// Creating this path failed.
    Fs(String, Errno),
}

impl core::fmt::Display for PopulateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PopulateError::Archive(e) => write!(f, "initramfs: {e}"),
            PopulateError::Fs(path, e) => write!(f, "initramfs: cannot create {path}: {e}"),
        }
    }
}

impl Node {
    fn new(fs: &Arc<Fs>, ino: u64, body: Body, perm: u32, parent: Weak<Node>) -> Arc<Node> {
        Arc::new_cyclic(|me| Node {
            fs: fs.clone(),
            ino,
            me: me.clone(),
            parent: Mutex::new(parent),
            attrs: Mutex::new(Attrs {
                perm,
                uid: 0,
                gid: 0,
                nlink: 1,
                atime_ns: super::now_ns(),
                mtime_ns: super::now_ns(),
                ctime_ns: super::now_ns(),
            }),
            body,
        })
    }

    fn kind(&self) -> FileType {
        match self.body {
            Body::File(_) => FileType::Regular,
            Body::Dir(_) => FileType::Directory,
            Body::Symlink(_) => FileType::Symlink,
        }
    }

    fn dir(&self) -> KResult<&Mutex<BTreeMap<String, Arc<Node>>>> {
        match &self.body {
            Body::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn lookup_node(&self, name: &str) -> KResult<Arc<Node>> {
        let d = self.dir()?;
        if name == ".." {
            return Ok(self
                .parent
                .lock()
                .upgrade()
                .unwrap_or_else(|| self.me.upgrade().expect("live node")));
        }
        if name == "." {
            return Ok(self.me.upgrade().expect("live node"));
        }
        d.lock().get(name).cloned().ok_or(Errno::ENOENT)
    }

    fn create_node(&self, name: &str, what: NewNode, perm: u32) -> KResult<Arc<Node>> {
        check_name(name)?;
        let d = self.dir()?;
        let mut entries = d.lock();
        if entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let body = match what {
            NewNode::File => Body::File(Mutex::new(Data::Owned(Vec::new()))),
            NewNode::Directory => Body::Dir(Mutex::new(BTreeMap::new())),
            NewNode::Symlink(t) => Body::Symlink(t),
        };
        let ino = self.fs.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = Node::new(&self.fs, ino, body, perm & 0o7777, self.me.clone());
        if node.kind() == FileType::Directory {
            node.attrs.lock().nlink = 2;
            self.attrs.lock().nlink += 1;
        }
        self.attrs.lock().modified();
        entries.insert(name.to_string(), node.clone());
        Ok(node)
    }

    /// `mkdir -p` relative to this directory.
    pub fn mkdir_p(self: &Arc<Self>, path: &str) -> KResult<Arc<Node>> {
        let mut cur = self.clone();
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            cur = match cur.lookup_node(comp) {
                Ok(n) if n.kind() == FileType::Directory => n,
                Ok(_) => return Err(Errno::ENOTDIR),
                Err(Errno::ENOENT) => cur.create_node(comp, NewNode::Directory, 0o755)?,
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    fn same_fs(&self, other: &dyn Inode) -> Option<Arc<Node>> {
        let n = other.as_any().downcast_ref::<Node>()?;
        Arc::ptr_eq(&n.fs, &self.fs)
            .then(|| n.me.upgrade())
            .flatten()
    }
}

fn check_name(name: &str) -> KResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Inode for Node {
    fn metadata(&self) -> Metadata {
        let a = self.attrs.lock();
        let size = match &self.body {
            Body::File(d) => d.lock().len() as u64,
            Body::Dir(_) => 4096,
            Body::Symlink(t) => t.len() as u64,
        };
        Metadata {
            dev: self.fs.dev,
            ino: self.ino,
            kind: self.kind(),
            perm: a.perm,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            size,
            rdev: 0,
            atime_ns: a.atime_ns,
            mtime_ns: a.mtime_ns,
            ctime_ns: a.ctime_ns,
        }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Inode>> {
        self.lookup_node(name).map(|n| n as Arc<dyn Inode>)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let Body::File(data) = &self.body else {
            return Err(self.not_a_file());
        };
        let guard = data.lock();
        let data = guard.bytes();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> KResult<usize> {
        let Body::File(data) = &self.body else {
            return Err(self.not_a_file());
        };
        if buf.is_empty() {
            // Writing nothing never extends the file.
            return Ok(0);
        }
        let end = offset.checked_add(buf.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let mut guard = data.lock();
        let data = guard.owned()?;
        let (start, end) = (offset as usize, end as usize);
        let have = data.len();
        if have < end {
            data.try_reserve(end - have).map_err(|_| Errno::ENOSPC)?;
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        drop(guard);
        self.attrs.lock().modified();
        Ok(buf.len())
    }

    fn append(&self, buf: &[u8]) -> KResult<u64> {
        let Body::File(data) = &self.body else {
            return Err(self.not_a_file());
        };
        // Under the data lock, so concurrent appends never interleave.
        let mut guard = data.lock();
        let data = guard.owned()?;
        let end = (data.len() as u64)
            .checked_add(buf.len() as u64)
            .ok_or(Errno::EFBIG)?;
        if end > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        data.try_reserve(buf.len()).map_err(|_| Errno::ENOSPC)?;
        data.extend_from_slice(buf);
        drop(guard);
        self.attrs.lock().modified();
        Ok(end)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        let Body::File(data) = &self.body else {
            return Err(self.not_a_file());
        };
        if len > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let mut guard = data.lock();
        let len = len as usize;
        if let Data::Image(b) = *guard {
            if len <= b.len() {
                // Shrinking an image file needs no copy.
                *guard = Data::Image(&b[..len]);
                drop(guard);
                self.attrs.lock().modified();
                return Ok(());
            }
        }
        let data = guard.owned()?;
        let have = data.len();
        if len > have {
            data.try_reserve(len - have).map_err(|_| Errno::ENOSPC)?;
        }
        data.resize(len, 0);
        drop(guard);
        self.attrs.lock().modified();
        Ok(())
    }

    fn readlink(&self) -> KResult<String> {
        match &self.body {
            Body::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn entries(&self) -> KResult<Vec<(String, u64, FileType)>> {
        Ok(self
            .dir()?
            .lock()
            .iter()
            .map(|(name, n)| (name.clone(), n.ino, n.kind()))
            .collect())
    }

    fn create(&self, name: &str, what: NewNode, perm: u32) -> KResult<Arc<dyn Inode>> {
        self.create_node(name, what, perm)
            .map(|n| n as Arc<dyn Inode>)
    }

    fn unlink(&self, name: &str) -> KResult<()> {
        let mut entries = self.dir()?.lock();
        let node = entries.get(name).cloned().ok_or(Errno::ENOENT)?;
        if node.kind() == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        node.attrs.lock().nlink -= 1;
        entries.remove(name);
        self.attrs.lock().modified();
        Ok(())
    }

    fn rmdir(&self, name: &str) -> KResult<()> {
        if name == "." {
            return Err(Errno::EINVAL);
        }
        if name == ".." {
            return Err(Errno::ENOTEMPTY);
        }
        let mut entries = self.dir()?.lock();
        let node = entries.get(name).cloned().ok_or(Errno::ENOENT)?;
        if !node.dir()?.lock().is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        entries.remove(name);
        self.attrs.lock().nlink -= 1;
        Ok(())
    }

    fn link(&self, name: &str, target: &Arc<dyn Inode>) -> KResult<()> {
        check_name(name)?;
        let node = self.same_fs(target.as_ref()).ok_or(Errno::EXDEV)?;
        if node.kind() == FileType::Directory {
            return Err(Errno::EPERM);
        }
        let mut entries = self.dir()?.lock();
        if entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        node.attrs.lock().nlink += 1;
        entries.insert(name.to_string(), node);
        Ok(())
    }

    fn rename(&self, name: &str, new_dir: &Arc<dyn Inode>, new_name: &str) -> KResult<()> {
        check_name(new_name)?;
        let dst = self.same_fs(new_dir.as_ref()).ok_or(Errno::EXDEV)?;
        let node = self.lookup_node(name)?;
        if node.kind() == FileType::Directory {
            // A directory may not move into itself or below itself.
            let mut p = Some(dst.clone());
            while let Some(d) = p {
                if Arc::ptr_eq(&d, &node) {
                    return Err(Errno::EINVAL);
                }
                p = d.parent.lock().upgrade();
            }
        }
        if let Ok(existing) = dst.lookup_node(new_name) {
            if Arc::ptr_eq(&existing, &node) {
                return Ok(());
            }
            match (node.kind(), existing.kind()) {
                (FileType::Directory, FileType::Directory)
                    if !existing.dir()?.lock().is_empty() =>
                {
                    return Err(Errno::ENOTEMPTY);
                }
                (FileType::Directory, FileType::Directory) => {}
                (FileType::Directory, _) => return Err(Errno::ENOTDIR),
                (_, FileType::Directory) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        // Lock order: by node address, so two renames cannot deadlock.
        let same = core::ptr::eq(self, Arc::as_ptr(&dst));
        if same {
            let mut e = self.dir()?.lock();
            let n = e.remove(name).ok_or(Errno::ENOENT)?;
            e.insert(new_name.to_string(), n);
        } else {
            let (a, b) = (self as *const Node as usize, Arc::as_ptr(&dst) as usize);
            let (mut src, mut dstl) = if a < b {
                let s = self.dir()?.lock();
                (s, dst.dir()?.lock())
            } else {
                let d = dst.dir()?.lock();
                (self.dir()?.lock(), d)
            };
            let n = src.remove(name).ok_or(Errno::ENOENT)?;
            let is_dir = n.kind() == FileType::Directory;
            if let Some(old) = dstl.insert(new_name.to_string(), n.clone()) {
                if old.kind() == FileType::Directory {
                    dst.attrs.lock().nlink -= 1;
                }
            }
            if is_dir {
                *n.parent.lock() = dst.me.clone();
                self.attrs.lock().nlink -= 1;
                dst.attrs.lock().nlink += 1;
            }
        }
        Ok(())
    }

    fn set_perm(&self, perm: u32) -> KResult<()> {
        let mut a = self.attrs.lock();
        a.perm = perm & 0o7777;
        a.ctime_ns = super::now_ns();
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        let mut a = self.attrs.lock();
        if let Some(u) = uid {
            a.uid = u;
        }
        if let Some(g) = gid {
            a.gid = g;
        }
        a.ctime_ns = super::now_ns();
        Ok(())
    }

    fn set_times(&self, t: super::Times) -> KResult<()> {
        let mut a = self.attrs.lock();
        if let Some(at) = t.atime_ns {
            a.atime_ns = at;
        }
        if let Some(mt) = t.mtime_ns {
            a.mtime_ns = mt;
        }
        a.ctime_ns = super::now_ns();
        Ok(())
    }

    fn fs_magic(&self) -> u64 {
        self.fs.magic
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}
