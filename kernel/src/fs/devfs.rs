//! devfs: `/dev` with the devices programs expect — `null`, `zero`,
//! `full`, `random`, `urandom`, `tty` and `console` (the kernel console),
//! and the `fd`, `stdin`, `stdout`, `stderr` links into `/proc/self/fd`.
//! Device numbers are Linux's, so `stat` output matches.

use super::{FileType, Inode, Metadata};
use crate::errno::{Errno, KResult};
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Where `/dev/console` and `/dev/tty` output goes, and input comes from.
pub trait Console: Send + Sync {
    fn write(&self, bytes: &[u8]);
    /// Bytes available now (non-blocking); 0 if none.
    fn read(&self, buf: &mut [u8]) -> usize;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Null,
    Zero,
    Full,
    Random,
    Console,
}

struct Device {
    kind: Kind,
    ino: u64,
    rdev: (u32, u32),
    console: Option<Arc<dyn Console>>,
}

const DEV: u64 = 0x05;

fn rdev(major: u32, minor: u32) -> u64 {
    // Linux's new_encode_dev.
    u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

impl Inode for Device {
    fn metadata(&self) -> Metadata {
        Metadata {
            dev: DEV,
            ino: self.ino,
            kind: FileType::CharDevice,
            perm: if self.kind == Kind::Console {
                0o620
            } else {
                0o666
            },
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            rdev: rdev(self.rdev.0, self.rdev.1),
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        }
    }

    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> KResult<usize> {
        match self.kind {
            Kind::Null => Ok(0),
            Kind::Zero | Kind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Kind::Random => {
                if crate::random::POOL.fill(buf) {
                    Ok(buf.len())
                } else {
                    Err(Errno::EAGAIN)
                }
            }
            Kind::Console => Ok(self.console.as_ref().map_or(0, |c| c.read(buf))),
        }
    }

    fn write_at(&self, _offset: u64, buf: &[u8]) -> KResult<usize> {
        match self.kind {
            Kind::Null | Kind::Zero | Kind::Random => Ok(buf.len()),
            Kind::Full => Err(Errno::ENOSPC),
            Kind::Console => {
                if let Some(c) = &self.console {
                    c.write(buf);
                }
                Ok(buf.len())
            }
        }
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn seekable(&self) -> bool {
        self.kind != Kind::Console
    }

    fn is_tty(&self) -> bool {
        self.kind == Kind::Console
    }

    fn readable_bytes(&self) -> Option<usize> {
        (self.kind == Kind::Console).then_some(0)
    }

    /// Every device here answers reads and writes at once, so each is
    /// always readable and writable — the console too: its read never
    /// waits for input (it returns what is buffered, or 0), so POLLIN is
    /// the truth about it, not a promise of data.
    fn poll_ready(&self) -> u32 {
        use super::pollbits::*;
        POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM
    }

    /// As Linux: `null`, `zero` and `full` have no poll method (epoll
    /// refuses them with EPERM); `random` and the terminal have one.
    fn supports_poll(&self) -> bool {
        matches!(self.kind, Kind::Random | Kind::Console)
    }

    fn fs_magic(&self) -> u64 {
        super::magic::TMPFS
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

struct Link {
    ino: u64,
    target: String,
}

impl Inode for Link {
    fn metadata(&self) -> Metadata {
        Metadata {
            dev: DEV,
            ino: self.ino,
            kind: FileType::Symlink,
            perm: 0o777,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: self.target.len() as u64,
            rdev: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        }
    }

    fn readlink(&self) -> KResult<String> {
        Ok(self.target.clone())
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// The `/dev` directory (fixed contents).
pub struct DevFs {
    entries: BTreeMap<&'static str, Arc<dyn Inode>>,
}

impl DevFs {
    pub fn new(console: Option<Arc<dyn Console>>) -> Arc<DevFs> {
        let mut entries: BTreeMap<&'static str, Arc<dyn Inode>> = BTreeMap::new();
        let devices: [(&str, Kind, (u32, u32)); 7] = [
            ("null", Kind::Null, (1, 3)),
            ("zero", Kind::Zero, (1, 5)),
            ("full", Kind::Full, (1, 7)),
            ("random", Kind::Random, (1, 8)),
            ("urandom", Kind::Random, (1, 9)),
            ("tty", Kind::Console, (5, 0)),
            ("console", Kind::Console, (5, 1)),
        ];
        let mut ino = 2;
        for (name, kind, rdev) in devices {
            entries.insert(
                name,
                Arc::new(Device {
                    kind,
                    ino,
                    rdev,
                    console: console.clone(),
                }),
            );
            ino += 1;
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            entries.insert(
                name,
                Arc::new(Link {
                    ino,
                    target: target.to_string(),
                }),
            );
            ino += 1;
        }
        Arc::new(DevFs { entries })
    }
}

impl Inode for DevFs {
    fn metadata(&self) -> Metadata {
        Metadata {
            dev: DEV,
            ino: 1,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            size: 0,
            rdev: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
        }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Inode>> {
        // `/dev` is mounted, so `..` is answered by the mount table; a
        // file system root answers itself.
        if name == ".." || name == "." {
            return Err(Errno::ENOENT);
        }
        self.entries.get(name).cloned().ok_or(Errno::ENOENT)
    }

    fn entries(&self) -> KResult<Vec<(String, u64, FileType)>> {
        Ok(self
            .entries
            .iter()
            .map(|(n, i)| {
                let m = i.metadata();
                (n.to_string(), m.ino, m.kind)
            })
            .collect())
    }

    fn create(&self, _: &str, _: super::NewNode, _: u32) -> KResult<Arc<dyn Inode>> {
        Err(Errno::EPERM)
    }

    fn unlink(&self, name: &str) -> KResult<()> {
        self.lookup(name).and(Err(Errno::EPERM))
    }

    fn rmdir(&self, name: &str) -> KResult<()> {
        self.lookup(name).and(Err(Errno::ENOTDIR))
    }

    fn fs_magic(&self) -> u64 {
        super::magic::TMPFS
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::ramfs::RamFs;
    use crate::fs::{NewNode, Vfs};
    use spin::Mutex;

    struct Captured(Mutex<Vec<u8>>);
    impl Console for Captured {
        fn write(&self, b: &[u8]) {
            self.0.lock().extend_from_slice(b);
        }
        fn read(&self, _: &mut [u8]) -> usize {
            0
        }
    }

    #[test]
    fn devices_behave_like_linux() {
        let out = Arc::new(Captured(Mutex::new(Vec::new())));
        let root = RamFs::new_root();
        root.create("dev", NewNode::Directory, 0o755).unwrap();
        let mut v = Vfs::new(root.clone());
        v.mount("/dev", DevFs::new(Some(out.clone()))).unwrap();
        let r: Arc<dyn Inode> = root;
        let dev = |p: &str| v.resolve(&r, p, true).unwrap();
        let mut buf = [9u8; 16];
        assert_eq!(dev("/dev/null").read_at(0, &mut buf).unwrap(), 0);
        assert_eq!(dev("/dev/null").write_at(0, b"gone").unwrap(), 4);
        assert_eq!(dev("/dev/zero").read_at(0, &mut buf).unwrap(), 16);
        assert_eq!(buf, [0; 16]);
        assert_eq!(dev("/dev/full").write_at(0, b"x"), Err(Errno::ENOSPC));
        dev("/dev/console").write_at(0, b"hello\n").unwrap();
        assert_eq!(&*out.0.lock(), b"hello\n");
        assert_eq!(dev("/dev/null").metadata().rdev, rdev(1, 3));
        assert_eq!(dev("/dev/null").metadata().rdev, 0x103);
        assert_eq!(
            v.resolve(&r, "/dev/stdout", false)
                .unwrap()
                .readlink()
                .unwrap(),
            "/proc/self/fd/1"
        );
        // `..` from /dev leaves the mount.
        assert!(v.resolve(&r, "/dev/../dev/zero", true).is_ok());
        assert_eq!(
            dev("/dev").create("x", NewNode::File, 0).err(),
            Some(Errno::EPERM)
        );
        let names: Vec<String> = dev("/dev")
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert!(names.contains(&"urandom".to_string()) && names.len() == 11);
    }

    #[test]
    fn urandom_reads_from_the_pool() {
        crate::random::POOL.add_entropy(&[3; 32]);
        let d = DevFs::new(None);
        let u = d.lookup("urandom").unwrap();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        u.read_at(0, &mut a).unwrap();
        u.read_at(0, &mut b).unwrap();
        assert_ne!(a, b);
    }
}
