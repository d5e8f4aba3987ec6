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
pub mod ramfs;

use crate::errno::{Errno, KResult};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

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
    pub mtime_ns: u64,
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
mod tests;
