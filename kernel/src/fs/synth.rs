//! Building blocks of synthetic file systems (`/proc`, `/sys`): read-only
//! directories with fixed and generated children, files whose contents
//! are generated on every read, and symlinks whose target is computed.
//!
//! Generated files report size 0 as Linux's do; readers read until EOF.
//! Each read regenerates the text and returns the slice at the offset
//! asked for (as Linux's `seq_file` does per read), so a file read in one
//! go is consistent.

use super::{FileType, Inode, Metadata};
use crate::errno::{Errno, KResult};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

/// Generates a file's contents.
pub type Content = Box<dyn Fn() -> Vec<u8> + Send + Sync>;
/// Computes a symlink's target.
pub type Target = Box<dyn Fn() -> String + Send + Sync>;
/// Lists a directory's generated children (name, node).
pub type Children = Box<dyn Fn() -> Vec<(String, Arc<dyn Inode>)> + Send + Sync>;

/// Identity shared by all nodes of one synthetic file system.
#[derive(Clone, Copy, Debug)]
pub struct FsId {
    pub dev: u64,
    pub magic: u64,
}

pub struct File {
    id: FsId,
    ino: u64,
    perm: u32,
    content: Content,
}

impl File {
    pub fn new(id: FsId, ino: u64, content: Content) -> Arc<File> {
        Arc::new(File {
            id,
            ino,
            perm: 0o444,
            content,
        })
    }
}

impl Inode for File {
    fn metadata(&self) -> Metadata {
        Metadata::synthetic(self.id.dev, self.ino, FileType::Regular, self.perm, 0)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        let text = (self.content)();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        let n = buf.len().min(text.len() - start);
        buf[..n].copy_from_slice(&text[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, _: u64, _: &[u8]) -> KResult<usize> {
        Err(Errno::EACCES)
    }

    fn truncate(&self, _: u64) -> KResult<()> {
        Err(Errno::EACCES)
    }

    fn fs_magic(&self) -> u64 {
        self.id.magic
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

pub struct Link {
    id: FsId,
    ino: u64,
    target: Target,
}

impl Link {
    pub fn new(id: FsId, ino: u64, target: Target) -> Arc<Link> {
        Arc::new(Link { id, ino, target })
    }
}

impl Inode for Link {
    fn metadata(&self) -> Metadata {
        let len = (self.target)().len() as u64;
        Metadata::synthetic(self.id.dev, self.ino, FileType::Symlink, 0o777, len)
    }

    fn readlink(&self) -> KResult<String> {
        Ok((self.target)())
    }

    fn fs_magic(&self) -> u64 {
        self.id.magic
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// A child given to [`Dir::new`]: directories learn their parent.
pub enum Child {
    Dir(Arc<Dir>),
    Node(Arc<dyn Inode>),
}

pub struct Dir {
    id: FsId,
    ino: u64,
    parent: spin::Once<Weak<Dir>>,
    fixed: BTreeMap<String, Arc<dyn Inode>>,
    generated: Option<Children>,
}

impl Dir {
    pub fn new(
        id: FsId,
        ino: u64,
        children: Vec<(&str, Child)>,
        generated: Option<Children>,
    ) -> Arc<Dir> {
        Arc::new_cyclic(|me: &Weak<Dir>| {
            let mut fixed: BTreeMap<String, Arc<dyn Inode>> = BTreeMap::new();
            for (name, child) in children {
                let node: Arc<dyn Inode> = match child {
                    Child::Dir(d) => {
                        d.parent.call_once(|| me.clone());
                        d
                    }
                    Child::Node(n) => n,
                };
                fixed.insert(String::from(name), node);
            }
            Dir {
                id,
                ino,
                parent: spin::Once::new(),
                fixed,
                generated,
            }
        })
    }

    /// Sets the parent of a directory that is a generated child.
    pub fn set_parent(&self, parent: &Arc<Dir>) {
        self.parent.call_once(|| Arc::downgrade(parent));
    }
}

impl Inode for Dir {
    fn metadata(&self) -> Metadata {
        Metadata::synthetic(self.id.dev, self.ino, FileType::Directory, 0o555, 0)
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Inode>> {
        match name {
            ".." => {
                // A root answers ENOENT: the mount table answers `..` there.
                let p = self.parent.get().and_then(Weak::upgrade);
                p.map(|p| p as Arc<dyn Inode>).ok_or(Errno::ENOENT)
            }
            "." => Err(Errno::ENOENT),
            _ => {
                if let Some(n) = self.fixed.get(name) {
                    return Ok(n.clone());
                }
                let gen = self.generated.as_ref().ok_or(Errno::ENOENT)?;
                gen()
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, node)| node)
                    .ok_or(Errno::ENOENT)
            }
        }
    }

    fn entries(&self) -> KResult<Vec<(String, u64, FileType)>> {
        let mut out: Vec<(String, u64, FileType)> = self
            .fixed
            .iter()
            .map(|(n, i)| {
                let m = i.metadata();
                (n.clone(), m.ino, m.kind)
            })
            .collect();
        if let Some(gen) = &self.generated {
            for (n, i) in gen() {
                let m = i.metadata();
                out.push((n, m.ino, m.kind));
            }
        }
        Ok(out)
    }

    fn create(&self, _: &str, _: super::NewNode, _: u32) -> KResult<Arc<dyn Inode>> {
        Err(Errno::EACCES)
    }

    fn unlink(&self, _: &str) -> KResult<()> {
        Err(Errno::EACCES)
    }

    fn rmdir(&self, _: &str) -> KResult<()> {
        Err(Errno::EACCES)
    }

    fn fs_magic(&self) -> u64 {
        self.id.magic
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}
