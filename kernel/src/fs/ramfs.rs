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

static NEXT_DEV: AtomicU64 = AtomicU64::new(1);

/// Largest regular file ramfs accepts (EFBIG above).
pub const MAX_FILE: u64 = 1 << 40;

struct Fs {
    dev: u64,
    next_ino: AtomicU64,
}

struct Attrs {
    perm: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime_ns: u64,
}

enum Body {
    File(Mutex<Vec<u8>>),
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
        let fs = Arc::new(Fs {
            dev: NEXT_DEV.fetch_add(1, Ordering::Relaxed),
            next_ino: AtomicU64::new(2),
        });
        Node::new(
            &fs,
            1,
            Body::Dir(Mutex::new(BTreeMap::new())),
            0o755,
            Weak::new(),
        )
    }

    /// Fills `root` from a cpio `newc` archive: directories are created as
    /// needed, regular files and symlinks copied in. Returns the number of
    /// entries, or the archive's first error (what was added stays).
    pub fn populate(root: &Arc<Node>, archive: &[u8]) -> Result<usize, PopulateError> {
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
                cpio::S_IFREG => dir.create_node(name, NewNode::File, perm).map(|f| {
                    if let Body::File(data) = &f.body {
                        *data.lock() = e.data.to_vec();
                    }
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
                mtime_ns: 0,
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
            NewNode::File => Body::File(Mutex::new(Vec::new())),
            NewNode::Directory => Body::Dir(Mutex::new(BTreeMap::new())),
            NewNode::Symlink(t) => Body::Symlink(t),
        };
        let ino = self.fs.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = Node::new(&self.fs, ino, body, perm & 0o7777, self.me.clone());
        if node.kind() == FileType::Directory {
            node.attrs.lock().nlink = 2;
            self.attrs.lock().nlink += 1;
        }
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
            mtime_ns: a.mtime_ns,
        }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Inode>> {
        self.lookup_node(name).map(|n| n as Arc<dyn Inode>)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let Body::File(data) = &self.body else {
            return Err(self.not_a_file());
        };
        let data = data.lock();
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
        let end = offset.checked_add(buf.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let mut data = data.lock();
        let (start, end) = (offset as usize, end as usize);
        let have = data.len();
        if have < end {
            data.try_reserve(end - have).map_err(|_| Errno::ENOSPC)?;
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(buf.len())
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        let Body::File(data) = &self.body else {
            return Err(self.not_a_file());
        };
        if len > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let mut data = data.lock();
        let len = len as usize;
        let have = data.len();
        if len > have {
            data.try_reserve(len - have).map_err(|_| Errno::ENOSPC)?;
        }
        data.resize(len, 0);
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
        self.attrs.lock().perm = perm & 0o7777;
        Ok(())
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}
