//! The SKIFFIMG image file system (crate `skiff_imagefs`, format in
//! docs/imagefs.md) as VFS inodes: read-only files, directories and
//! symlinks with the image's stat fields. Every change answers EROFS.
//!
//! At mount every directory is read once (its entries checked and kept):
//! that gives each directory its parent (`..`; entries hold no `.`/`..`),
//! proves the tree is a tree (no directory in two places), and makes
//! lookups memory-only. File data is read on demand through the image's
//! per-block checksums: a corrupt block is EIO, never wrong bytes.

use super::{FileType, Inode, Metadata, NewNode, Times};
use crate::errno::{Errno, KResult};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use skiff_imagefs::{Error, Image, InodeInfo, Kind, Source, Unreadable, ROOT_INO};

/// `statfs` type of an image file system ("SKIF").
pub const IMAGEFS_MAGIC: u64 = 0x534b_4946;

/// Any image source, boxed (the kernel's cached disk, bytes in tests).
pub struct DynSource(pub alloc::boxed::Box<dyn Source + Send + Sync>);

impl Source for DynSource {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        self.0.read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
}

/// A mounted image.
pub struct ImageFs {
    img: Image<DynSource>,
    dev: u64,
    /// Per inode (index ino - 1): its directory's parent, 0 for
    /// non-directories.
    parents: Vec<u32>,
    /// Per inode: a directory's entries (sorted by name), empty otherwise.
    dirs: Vec<Vec<(String, u32)>>,
}

impl ImageFs {
    /// Opens (validates) the image in `src` and reads its directory tree.
    /// `dev` is the `st_dev` its files report.
    pub fn mount(src: DynSource, dev: u64) -> Result<Arc<ImageFs>, Error> {
        let img = Image::open(src)?;
        let count = img.inode_count() as usize;
        let mut parents = vec![0u32; count];
        let mut dirs: Vec<Vec<(String, u32)>> = vec![Vec::new(); count];
        parents[ROOT_INO as usize - 1] = ROOT_INO;
        let mut todo = VecDeque::from([ROOT_INO]);
        while let Some(dir) = todo.pop_front() {
            let entries = img.entries(dir)?;
            let mut list = Vec::with_capacity(entries.len());
            for e in entries {
                if img.inode(e.ino)?.kind == Kind::Directory {
                    let slot = &mut parents[e.ino as usize - 1];
                    if *slot != 0 {
                        return Err(Error::Corrupt("directory linked twice"));
                    }
                    *slot = dir;
                    todo.push_back(e.ino);
                }
                list.push((e.name, e.ino));
            }
            if list.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(Error::Corrupt("directory entries not sorted"));
            }
            dirs[dir as usize - 1] = list;
        }
        Ok(Arc::new(ImageFs {
            img,
            dev,
            parents,
            dirs,
        }))
    }

    pub fn inode_count(&self) -> u32 {
        self.img.inode_count()
    }

    /// The root directory.
    pub fn root(self: &Arc<Self>) -> Arc<dyn Inode> {
        self.node(ROOT_INO)
            .expect("the root inode was checked at mount")
    }

    fn node(self: &Arc<Self>, ino: u32) -> KResult<Arc<dyn Inode>> {
        let info = self.img.inode(ino).map_err(|_| Errno::EIO)?;
        Ok(Arc::new(ImageNode {
            fs: self.clone(),
            info,
        }))
    }
}

/// One inode of a mounted image.
pub struct ImageNode {
    fs: Arc<ImageFs>,
    info: InodeInfo,
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::Regular,
        Kind::Directory => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
    }
}

impl ImageNode {
    fn is_dir(&self) -> bool {
        self.info.kind == Kind::Directory
    }

    /// EROFS for a change to a directory, ENOTDIR for one to a file.
    fn dir_change(&self) -> Errno {
        if self.is_dir() {
            Errno::EROFS
        } else {
            Errno::ENOTDIR
        }
    }

    fn io_error(&self, e: Error) -> Errno {
        log::warn!("imagefs: read failed ino={} error={e}", self.info.ino);
        Errno::EIO
    }
}

impl Inode for ImageNode {
    fn metadata(&self) -> Metadata {
        let i = &self.info;
        Metadata {
            dev: self.fs.dev,
            ino: u64::from(i.ino),
            kind: file_type(i.kind),
            perm: i.mode & 0o7777,
            nlink: i.nlink,
            uid: i.uid,
            gid: i.gid,
            // Directories report whole blocks, as ext4 and ramfs do.
            size: match i.kind {
                Kind::Directory => i.size.next_multiple_of(4096).max(4096),
                _ => i.size,
            },
            rdev: 0,
            atime_ns: i.mtime_ns,
            mtime_ns: i.mtime_ns,
            ctime_ns: i.mtime_ns,
        }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Inode>> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let ino = match name {
            "." => self.info.ino,
            ".." => self.fs.parents[self.info.ino as usize - 1],
            _ => {
                let list = &self.fs.dirs[self.info.ino as usize - 1];
                let i = list
                    .binary_search_by(|(n, _)| n.as_str().cmp(name))
                    .map_err(|_| Errno::ENOENT)?;
                list[i].1
            }
        };
        self.fs.node(ino)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> KResult<usize> {
        match self.info.kind {
            Kind::File => self
                .fs
                .img
                .read(self.info.ino, offset, buf)
                .map_err(|e| self.io_error(e)),
            Kind::Directory => Err(Errno::EISDIR),
            Kind::Symlink => Err(Errno::EINVAL),
        }
    }

    fn write_at(&self, _offset: u64, _buf: &[u8]) -> KResult<usize> {
        Err(if self.is_dir() {
            Errno::EISDIR
        } else {
            Errno::EROFS
        })
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(if self.is_dir() {
            Errno::EISDIR
        } else {
            Errno::EROFS
        })
    }

    fn readlink(&self) -> KResult<String> {
        if self.info.kind != Kind::Symlink {
            return Err(Errno::EINVAL);
        }
        self.fs
            .img
            .readlink(self.info.ino)
            .map_err(|e| self.io_error(e))
    }

    fn entries(&self) -> KResult<Vec<(String, u64, FileType)>> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.fs.dirs[self.info.ino as usize - 1]
            .iter()
            .map(|(name, ino)| {
                let kind = self.fs.img.inode(*ino).map_err(|_| Errno::EIO)?.kind;
                Ok((name.clone(), u64::from(*ino), file_type(kind)))
            })
            .collect()
    }

    fn create(&self, name: &str, _what: NewNode, _perm: u32) -> KResult<Arc<dyn Inode>> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // An existing name is EEXIST on Linux even on a read-only mount.
        match self.lookup(name) {
            Ok(_) => Err(Errno::EEXIST),
            Err(_) => Err(Errno::EROFS),
        }
    }

    fn unlink(&self, _name: &str) -> KResult<()> {
        Err(self.dir_change())
    }

    fn rmdir(&self, _name: &str) -> KResult<()> {
        Err(self.dir_change())
    }

    fn link(&self, _name: &str, _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(self.dir_change())
    }

    fn rename(&self, _name: &str, _new_dir: &Arc<dyn Inode>, _new_name: &str) -> KResult<()> {
        Err(self.dir_change())
    }

    fn set_perm(&self, _perm: u32) -> KResult<()> {
        Err(Errno::EROFS)
    }

    fn set_owner(&self, _uid: Option<u32>, _gid: Option<u32>) -> KResult<()> {
        Err(Errno::EROFS)
    }

    fn set_times(&self, _times: Times) -> KResult<()> {
        Err(Errno::EROFS)
    }

    fn append(&self, _buf: &[u8]) -> KResult<u64> {
        Err(Errno::EROFS)
    }

    fn fs_magic(&self) -> u64 {
        IMAGEFS_MAGIC
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_imagefs::Builder;

    fn sample() -> Vec<u8> {
        let mut b = Builder::new().mtime(1_700_000_000_000_000_000);
        b.dir_all("/usr/bin", 0o755).unwrap();
        b.file(
            "/usr/bin/app",
            (0..9000u32).map(|i| i as u8).collect(),
            0o755,
        )
        .unwrap();
        b.symlink("/bin", "usr/bin").unwrap();
        b.dir("/tmp", 0o1777).unwrap();
        b.file("/etc", b"x".to_vec(), 0o600).unwrap();
        b.finish()
    }

    fn mount(img: Vec<u8>) -> Result<Arc<ImageFs>, Error> {
        ImageFs::mount(DynSource(alloc::boxed::Box::new(img)), 0xfe00)
    }

    #[test]
    fn files_dirs_symlinks_and_stat() {
        let fs = mount(sample()).unwrap();
        let root = fs.root();
        let names: Vec<String> = root.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["bin", "etc", "tmp", "usr"]);
        let usr = root.lookup("usr").unwrap();
        let bin = usr.lookup("bin").unwrap();
        assert_eq!(bin.lookup("..").unwrap().metadata().ino, usr.metadata().ino);
        assert_eq!(usr.lookup("..").unwrap().metadata().ino, 1);
        assert_eq!(root.lookup("..").unwrap().metadata().ino, 1);
        let app = bin.lookup("app").unwrap();
        let m = app.metadata();
        assert_eq!(
            (m.kind, m.perm, m.size, m.dev),
            (FileType::Regular, 0o755, 9000, 0xfe00)
        );
        assert_eq!(m.mtime_ns, 1_700_000_000_000_000_000);
        let mut buf = [0u8; 10];
        assert_eq!(app.read_at(4090, &mut buf).unwrap(), 10);
        assert_eq!(buf[0], (4090 % 256) as u8);
        assert_eq!(app.read_at(9000, &mut buf).unwrap(), 0);
        let link = root.lookup("bin").unwrap();
        assert_eq!(link.metadata().kind, FileType::Symlink);
        assert_eq!(link.readlink().unwrap(), "usr/bin");
        assert_eq!(root.lookup("tmp").unwrap().metadata().perm, 0o1777);
        assert_eq!(root.lookup("nope").err(), Some(Errno::ENOENT));
        assert_eq!(app.lookup("x").err(), Some(Errno::ENOTDIR));
        assert_eq!(root.read_at(0, &mut buf).err(), Some(Errno::EISDIR));
        assert_eq!(root.fs_magic(), IMAGEFS_MAGIC);
    }

    #[test]
    fn every_change_is_erofs() {
        let fs = mount(sample()).unwrap();
        let root = fs.root();
        let etc = root.lookup("etc").unwrap();
        assert_eq!(etc.write_at(0, b"y").err(), Some(Errno::EROFS));
        assert_eq!(etc.append(b"y").err(), Some(Errno::EROFS));
        assert_eq!(etc.truncate(0).err(), Some(Errno::EROFS));
        assert_eq!(etc.set_perm(0o644).err(), Some(Errno::EROFS));
        assert_eq!(etc.set_owner(Some(1), None).err(), Some(Errno::EROFS));
        assert_eq!(etc.set_times(Times::default()).err(), Some(Errno::EROFS));
        assert_eq!(
            root.create("new", NewNode::File, 0o644).err(),
            Some(Errno::EROFS)
        );
        assert_eq!(
            root.create("etc", NewNode::File, 0o644).err(),
            Some(Errno::EEXIST)
        );
        assert_eq!(root.unlink("etc").err(), Some(Errno::EROFS));
        assert_eq!(root.rmdir("tmp").err(), Some(Errno::EROFS));
        assert_eq!(root.rename("etc", &root, "x").err(), Some(Errno::EROFS));
        assert_eq!(root.link("y", &etc).err(), Some(Errno::EROFS));
        let mut b = [0u8; 1];
        assert_eq!(etc.read_at(0, &mut b).unwrap(), 1, "still readable");
    }

    #[test]
    fn a_corrupt_image_is_refused_or_reads_fail_with_eio() {
        let good = sample();
        assert!(mount(good[..100].to_vec()).is_err());
        let mut bad = good.clone();
        bad[4096 + 3] ^= 1;
        assert_eq!(
            mount(bad).err(),
            Some(Error::Corrupt("inode table checksum"))
        );
        // Flip a byte of the app's data (the last data block is a
        // directory or the link; find the app's bytes by content).
        let fs = mount(good.clone()).unwrap();
        let needle: Vec<u8> = (100..164u32).map(|i| i as u8).collect();
        let at = good
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
            .unwrap();
        let mut bad = good.clone();
        bad[at] ^= 0x80;
        let fs2 = mount(bad).unwrap();
        let app2 = fs2
            .root()
            .lookup("usr")
            .unwrap()
            .lookup("bin")
            .unwrap()
            .lookup("app")
            .unwrap();
        let mut buf = [0u8; 200];
        assert_eq!(app2.read_at(0, &mut buf).err(), Some(Errno::EIO));
        // The next block is still fine.
        assert_eq!(app2.read_at(4096, &mut buf).unwrap(), 200);
        drop(fs);
    }

    #[test]
    fn mounted_as_root_with_the_usual_file_systems_on_top() {
        use crate::fs::{mount_image_root, MountError};
        let mut b = Builder::new();
        for d in ["/dev", "/proc", "/sys", "/tmp", "/run", "/etc"] {
            b.dir(d, 0o755).unwrap();
        }
        b.file("/etc/hostname", b"skiff\n".to_vec(), 0o644).unwrap();
        let fs = mount(b.finish()).unwrap();
        let v = mount_image_root(fs, "/dev/vda", None, crate::fs::tests::test_sources()).unwrap();
        let root = v.root();
        assert_eq!(root.fs_magic(), IMAGEFS_MAGIC);
        let run = v.resolve(&root, "/run", true).unwrap();
        assert_eq!(run.fs_magic(), crate::fs::magic::TMPFS);
        assert_eq!(run.metadata().perm, 0o755);
        run.create("resolv.conf", NewNode::File, 0o644).unwrap();
        let tmp = v.resolve(&root, "/tmp", true).unwrap();
        assert_eq!(tmp.metadata().perm, 0o1777);
        tmp.create("f", NewNode::File, 0o600).unwrap();
        let etc = v.resolve(&root, "/etc", true).unwrap();
        assert_eq!(
            etc.create("x", NewNode::File, 0o644).err(),
            Some(Errno::EROFS)
        );
        let mounts = v.resolve(&root, "/proc/mounts", true).unwrap();
        let mut text = vec![0u8; 4096];
        let n = mounts.read_at(0, &mut text).unwrap();
        let text = String::from_utf8(text[..n].to_vec()).unwrap();
        assert!(text.starts_with("/dev/vda / skiffimg ro"), "{text}");
        assert!(text.contains("tmpfs /run tmpfs"));
        assert_eq!(
            v.resolve(&root, "/proc/..", true).unwrap().metadata().ino,
            u64::from(ROOT_INO)
        );
        // Without a mount point the image is refused, with the reason.
        let mut b = Builder::new();
        for d in ["/dev", "/proc", "/sys", "/tmp"] {
            b.dir(d, 0o755).unwrap();
        }
        let fs = mount(b.finish()).unwrap();
        let err = mount_image_root(fs, "/dev/vda", None, crate::fs::tests::test_sources()).err();
        assert_eq!(err, Some(MountError::NoMountPoint("/run")));
        assert!(err.unwrap().to_string().contains("no directory /run"));
    }
}
