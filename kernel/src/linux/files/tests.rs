//! The file calls on the host, through a fake process whose user memory
//! is a vector: Linux's results and errno values for each call.

use super::abi::{self, StatLayout};
use super::fdops::*;
use super::path::*;
use super::rw::*;
use super::*;
use crate::fs::tests::test_tree;
use crate::fs::FileType;
use crate::linux::fd::{oflag::*, FdTable, FsState};
use crate::syscall::{Arch, Args, Process, Table};
use alloc::string::ToString;
use alloc::vec;

const BASE: usize = 0x10_0000;
const MEM: usize = 1 << 20;
const FDCWD: usize = AT_FDCWD as isize as usize;

struct Fake {
    mem: Vec<u8>,
    next: usize,
    files: FdTable,
    fs: FsState,
}

impl Process for Fake {
    fn read_user(&self, addr: usize, buf: &mut [u8]) -> Option<usize> {
        let off = addr.checked_sub(BASE)?;
        let n = buf.len().min(self.mem.len().checked_sub(off)?);
        buf[..n].copy_from_slice(&self.mem[off..off + n]);
        Some(n)
    }
    fn trace_line(&self, _: &str) {}
    fn tracing(&self) -> bool {
        false
    }
    fn report_unimplemented(&self, _: &str) {}
}

impl Fake {
    fn range(&self, addr: usize, len: usize) -> Result<core::ops::Range<usize>, Errno> {
        let off = addr.checked_sub(BASE).ok_or(Errno::EFAULT)?;
        let end = off.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > self.mem.len() {
            return Err(Errno::EFAULT);
        }
        Ok(off..end)
    }
}

impl Ctx for Fake {
    fn copy_in(&mut self, addr: usize, buf: &mut [u8]) -> Result<(), Errno> {
        let r = self.range(addr, buf.len())?;
        buf.copy_from_slice(&self.mem[r]);
        Ok(())
    }
    fn copy_out(&mut self, addr: usize, data: &[u8]) -> Result<(), Errno> {
        let r = self.range(addr, data.len())?;
        self.mem[r].copy_from_slice(data);
        Ok(())
    }
    fn read_cstr(&mut self, addr: usize) -> Result<String, Errno> {
        let mut out = Vec::new();
        for i in 0..crate::linux::PATH_MAX {
            let mut b = [0u8];
            self.copy_in(addr + i, &mut b)?;
            if b[0] == 0 {
                return String::from_utf8(out).map_err(|_| Errno::EINVAL);
            }
            out.push(b[0]);
        }
        Err(Errno::ENAMETOOLONG)
    }
    fn files(&self) -> &FdTable {
        &self.files
    }
    fn fs(&self) -> &FsState {
        &self.fs
    }
}

fn fake() -> Fake {
    let vfs = test_tree();
    Fake {
        mem: vec![0; MEM],
        next: BASE,
        files: FdTable::with_stdio(&vfs).unwrap(),
        fs: FsState::new(vfs),
    }
}

/// An address outside the fake's memory.
const BAD: usize = 0x10;

type H = fn(&mut Cx, &Args) -> KResult<usize>;

impl Fake {
    fn alloc(&mut self, n: usize) -> usize {
        let a = self.next;
        self.next += n.next_multiple_of(16).max(16);
        a
    }
    fn s(&mut self, s: &str) -> usize {
        let a = self.alloc(s.len() + 1);
        let off = a - BASE;
        self.mem[off..off + s.len()].copy_from_slice(s.as_bytes());
        self.mem[off + s.len()] = 0;
        a
    }
    fn bytes(&mut self, b: &[u8]) -> usize {
        let a = self.alloc(b.len());
        self.mem[a - BASE..a - BASE + b.len()].copy_from_slice(b);
        a
    }
    fn get(&self, addr: usize, n: usize) -> Vec<u8> {
        self.mem[addr - BASE..addr - BASE + n].to_vec()
    }
    fn call(&mut self, h: H, args: &[usize]) -> KResult<usize> {
        let mut a = [0usize; 6];
        a[..args.len()].copy_from_slice(args);
        h(self, &a)
    }
    fn open(&mut self, path: &str, flags: u32, mode: u32) -> KResult<usize> {
        let p = self.s(path);
        self.call(sys_openat, &[FDCWD, p, flags as usize, mode as usize])
    }
    fn write_str(&mut self, fd: usize, data: &[u8]) -> KResult<usize> {
        let b = self.bytes(data);
        self.call(sys_write, &[fd, b, data.len()])
    }
    fn read_n(&mut self, fd: usize, n: usize) -> KResult<Vec<u8>> {
        let b = self.alloc(n);
        let got = self.call(sys_read, &[fd, b, n])?;
        Ok(self.get(b, got))
    }
    fn stat(&mut self, path: &str) -> KResult<crate::fs::Metadata> {
        let p = self.s(path);
        let buf = self.alloc(256);
        self.call(
            sys_newfstatat,
            &[FDCWD, p, buf, AT_SYMLINK_NOFOLLOW as usize],
        )?;
        Ok(decode_stat(&self.get(buf, 144)))
    }
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Decodes x86_64's `struct stat` (the host's native layout) enough for
/// the tests: mode into kind/perm, size, ino, nlink.
fn decode_stat(b: &[u8]) -> crate::fs::Metadata {
    let mode = u32_at(b, 24);
    let kind = match mode & 0o170000 {
        0o040000 => FileType::Directory,
        0o120000 => FileType::Symlink,
        0o020000 => FileType::CharDevice,
        0o010000 => FileType::Fifo,
        _ => FileType::Regular,
    };
    let mut m = crate::fs::Metadata::synthetic(
        u64_at(b, 0),
        u64_at(b, 8),
        kind,
        mode & 0o7777,
        u64_at(b, 48),
    );
    m.nlink = u64_at(b, 16) as u32;
    m.uid = u32_at(b, 28);
    m.gid = u32_at(b, 32);
    m.mtime_ns = u64_at(b, 88) * 1_000_000_000 + u64_at(b, 96);
    m
}

#[test]
fn table_names_are_linux_names_on_both_arches() {
    for e in ENTRIES.iter() {
        assert!(
            crate::syscall::numbers::LINUX_SYSCALLS
                .iter()
                .any(|(n, _, _)| *n == e.name),
            "{} is not a Linux syscall",
            e.name
        );
    }
    let x86 = Table::new(Arch::X86_64, ENTRIES);
    let arm = Table::new(Arch::Aarch64, ENTRIES);
    assert!(x86.is_implemented(2) && x86.is_implemented(257)); // open, openat
    assert!(arm.is_implemented(56)); // openat
    assert_eq!(arm.name_of(56), Some("openat"));
    // Legacy x86-only names have no number on aarch64: nothing else moves.
    let implemented = |t: &Table<Cx>| (0..600).filter(|&n| t.is_implemented(n)).count();
    assert_eq!(implemented(&x86), ENTRIES.len());
    let legacy = [
        "open",
        "creat",
        "stat",
        "lstat",
        "access",
        "pipe",
        "dup2",
        "mkdir",
        "rmdir",
        "unlink",
        "rename",
        "symlink",
        "link",
        "readlink",
        "chmod",
        "chown",
        "lchown",
        "utimes",
        "poll",
        "select",
        "epoll_create",
        "epoll_wait",
        "eventfd",
        "signalfd",
    ];
    assert_eq!(implemented(&arm), ENTRIES.len() - legacy.len());
}

#[test]
fn dispatch_through_the_table() {
    let mut p = fake();
    let t = Table::new(Arch::Aarch64, ENTRIES);
    let path = p.s("/etc/hostname");
    let fd = t.dispatch(&mut p, 56, &[FDCWD, path, 0, 0, 0, 0]);
    assert_eq!(fd, 3);
    let buf = p.alloc(64);
    assert_eq!(t.dispatch(&mut p, 63, &[3, buf, 64, 0, 0, 0]), 6);
    assert_eq!(p.get(buf, 6), b"skiff\n");
    assert_eq!(
        t.dispatch(&mut p, 57, &[9, 0, 0, 0, 0, 0]),
        Errno::EBADF.as_ret()
    );
}

#[test]
fn open_read_write_close() {
    let mut p = fake();
    let fd = p.open("/etc/hostname", O_RDONLY, 0).unwrap();
    assert_eq!(fd, 3, "lowest free descriptor");
    assert_eq!(p.read_n(fd, 3).unwrap(), b"ski");
    assert_eq!(p.read_n(fd, 100).unwrap(), b"ff\n");
    assert_eq!(p.read_n(fd, 100).unwrap(), b"", "EOF");
    assert_eq!(p.write_str(fd, b"x"), Err(Errno::EBADF), "read-only");
    assert_eq!(p.call(sys_close, &[fd]), Ok(0));
    assert_eq!(p.call(sys_close, &[fd]), Err(Errno::EBADF));
    assert_eq!(p.read_n(fd, 1), Err(Errno::EBADF));
    assert_eq!(p.call(sys_close, &[(-1i32) as usize]), Err(Errno::EBADF));
    // Errors of the walk.
    assert_eq!(p.open("/nope", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(p.open("/etc/hostname/x", O_RDONLY, 0), Err(Errno::ENOTDIR));
    assert_eq!(p.open("", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(p.call(sys_openat, &[FDCWD, BAD, 0, 0]), Err(Errno::EFAULT));
    // Write-only fd cannot read; O_WRONLY|O_RDWR is invalid.
    let w = p.open("/tmp/w", O_WRONLY | O_CREAT, 0o644).unwrap();
    assert_eq!(p.read_n(w, 1), Err(Errno::EBADF));
    assert_eq!(p.open("/tmp/w", 3, 0), Err(Errno::EINVAL));
    // read into unmapped memory: EFAULT, and the offset does not move.
    let r = p.open("/etc/hostname", O_RDONLY, 0).unwrap();
    assert_eq!(p.call(sys_read, &[r, BAD, 4]), Err(Errno::EFAULT));
    assert_eq!(p.read_n(r, 5).unwrap(), b"skiff");
    assert_eq!(p.call(sys_write, &[w, BAD, 4]), Err(Errno::EFAULT));
}

#[test]
fn open_flags_creat_excl_trunc_append_directory() {
    let mut p = fake();
    let fd = p.open("/tmp/f", O_RDWR | O_CREAT | O_EXCL, 0o666).unwrap();
    assert_eq!(p.stat("/tmp/f").unwrap().perm, 0o644, "umask 022 applied");
    assert_eq!(
        p.open("/tmp/f", O_RDWR | O_CREAT | O_EXCL, 0o666),
        Err(Errno::EEXIST)
    );
    assert_eq!(p.write_str(fd, b"hello world").unwrap(), 11);
    // O_TRUNC empties.
    let t = p.open("/tmp/f", O_WRONLY | O_TRUNC, 0).unwrap();
    assert_eq!(p.stat("/tmp/f").unwrap().size, 0);
    p.write_str(t, b"abc").unwrap();
    // O_APPEND writes at the end whatever the offset.
    let a = p.open("/tmp/f", O_WRONLY | O_APPEND, 0).unwrap();
    p.write_str(a, b"XY").unwrap();
    p.write_str(t, b"d").unwrap(); // t's own offset: 3
    p.write_str(a, b"Z").unwrap();
    let r = p.open("/tmp/f", O_RDONLY, 0).unwrap();
    assert_eq!(p.read_n(r, 100).unwrap(), b"abcdYZ");
    // O_DIRECTORY.
    assert_eq!(
        p.open("/tmp/f", O_RDONLY | O_DIRECTORY, 0),
        Err(Errno::ENOTDIR)
    );
    assert!(p.open("/tmp", O_RDONLY | O_DIRECTORY, 0).is_ok());
    assert_eq!(p.open("/tmp", O_RDWR, 0), Err(Errno::EISDIR));
    assert_eq!(
        p.open("/tmp", O_RDONLY | O_CREAT, 0o644),
        Err(Errno::EISDIR)
    );
    assert_eq!(
        p.open("/tmp/new/", O_RDWR | O_CREAT, 0o644),
        Err(Errno::EISDIR)
    );
    assert_eq!(
        p.open("/tmp/d", O_CREAT | O_DIRECTORY, 0o644),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.open("/nodir/f", O_CREAT | O_WRONLY, 0o644),
        Err(Errno::ENOENT)
    );
    // O_NOFOLLOW on a symlink.
    assert_eq!(p.open("/lib", O_RDONLY | O_NOFOLLOW, 0), Err(Errno::ELOOP));
    assert!(p.open("/lib", O_PATH | O_NOFOLLOW, 0).is_ok());
    // F_GETFL: creation flags dropped, O_LARGEFILE added (as Linux).
    assert_eq!(
        p.call(sys_fcntl, &[a, 3, 0]).unwrap() as u32,
        O_WRONLY | O_APPEND | O_LARGEFILE
    );
    // /dev/full.
    let full = p.open("/dev/full", O_WRONLY, 0).unwrap();
    assert_eq!(p.write_str(full, b"x"), Err(Errno::ENOSPC));
}

#[test]
fn creat_through_dirfd_and_relative_paths() {
    let mut p = fake();
    let d = p.open("/tmp", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let name = p.s("rel");
    let fd = p
        .call(sys_openat, &[d, name, (O_CREAT | O_WRONLY) as usize, 0o600])
        .unwrap();
    assert!(p.stat("/tmp/rel").is_ok());
    // A relative path with a non-directory dirfd: ENOTDIR; bad dirfd: EBADF.
    assert_eq!(p.call(sys_openat, &[fd, name, 0, 0]), Err(Errno::ENOTDIR));
    assert_eq!(p.call(sys_openat, &[77, name, 0, 0]), Err(Errno::EBADF));
    // An absolute path ignores dirfd.
    let abs = p.s("/etc/hostname");
    assert!(p.call(sys_openat, &[77, abs, 0, 0]).is_ok());
    // /proc/self/fd shows the joined path.
    assert_eq!(
        p.files
            .paths()
            .into_iter()
            .find(|(f, _)| *f as usize == fd)
            .unwrap()
            .1,
        "/tmp/rel"
    );
    let c = p.s("/tmp/c");
    let cfd = p.call(sys_creat, &[c, 0o640]).unwrap();
    assert_eq!(
        p.call(sys_fcntl, &[cfd, 3, 0]).unwrap() as u32 & O_ACCMODE,
        O_WRONLY
    );
}

#[test]
fn dup_shares_the_offset_and_cloexec_is_per_descriptor() {
    let mut p = fake();
    let fd = p.open("/etc/hostname", O_RDONLY | O_CLOEXEC, 0).unwrap();
    assert_eq!(p.call(sys_fcntl, &[fd, 1, 0]), Ok(FD_CLOEXEC));
    let d = p.call(sys_dup, &[fd]).unwrap();
    assert_eq!(d, fd + 1);
    assert_eq!(
        p.call(sys_fcntl, &[d, 1, 0]),
        Ok(0),
        "dup clears FD_CLOEXEC"
    );
    assert_eq!(p.read_n(fd, 2).unwrap(), b"sk");
    assert_eq!(p.read_n(d, 2).unwrap(), b"if", "offset shared");
    // dup2 onto an open descriptor closes it; same fd returns it.
    let d2 = p.call(sys_dup2, &[fd, 0]).unwrap();
    assert_eq!(d2, 0);
    assert_eq!(p.read_n(0, 10).unwrap(), b"f\n");
    assert_eq!(p.call(sys_dup2, &[fd, fd]), Ok(fd));
    assert_eq!(p.call(sys_dup2, &[99, 5]), Err(Errno::EBADF));
    assert_eq!(p.call(sys_dup2, &[fd, 1 << 20]), Err(Errno::EBADF));
    assert_eq!(p.call(sys_dup3, &[fd, fd, 0]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_dup3, &[fd, 9, 1]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_dup3, &[fd, 9, O_CLOEXEC as usize]), Ok(9));
    assert_eq!(p.call(sys_fcntl, &[9, 1, 0]), Ok(FD_CLOEXEC));
    // F_DUPFD: lowest at or above the minimum.
    assert_eq!(p.call(sys_fcntl, &[fd, 0, 7]), Ok(7));
    assert_eq!(p.call(sys_fcntl, &[fd, 0, 7]), Ok(8));
    assert_eq!(p.call(sys_fcntl, &[fd, 1030, 20]), Ok(20));
    assert_eq!(p.call(sys_fcntl, &[20, 1, 0]), Ok(FD_CLOEXEC));
    assert_eq!(
        p.call(sys_fcntl, &[fd, 0, (-1i32) as usize]),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.call(sys_fcntl, &[fd, 0, 1 << 20]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_fcntl, &[fd, 2, 0]), Ok(0));
    assert_eq!(p.call(sys_fcntl, &[fd, 1, 0]), Ok(0));
    assert_eq!(p.call(sys_fcntl, &[fd, 9999, 0]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_fcntl, &[55, 1, 0]), Err(Errno::EBADF));
    // exec closes the close-on-exec ones only.
    p.files.close_on_exec();
    assert_eq!(p.call(sys_fcntl, &[9, 1, 0]), Err(Errno::EBADF));
    assert_eq!(p.call(sys_fcntl, &[20, 1, 0]), Err(Errno::EBADF));
    assert_eq!(p.call(sys_fcntl, &[7, 1, 0]), Ok(0));
}

#[test]
fn emfile_at_the_descriptor_limit() {
    let mut p = fake();
    p.files.set_limit(5).unwrap();
    assert_eq!(p.open("/etc/hostname", 0, 0), Ok(3));
    assert_eq!(p.open("/etc/hostname", 0, 0), Ok(4));
    assert_eq!(p.open("/etc/hostname", 0, 0), Err(Errno::EMFILE));
    assert_eq!(p.call(sys_dup, &[0]), Err(Errno::EMFILE));
    let fds = p.alloc(8);
    assert_eq!(p.call(sys_pipe2, &[fds, 0]), Err(Errno::EMFILE));
    p.call(sys_close, &[3]).unwrap();
    assert_eq!(
        p.call(sys_pipe2, &[fds, 0]),
        Err(Errno::EMFILE),
        "needs two"
    );
    assert_eq!(p.files.count(), 4, "the half-made pipe was undone");
    assert_eq!(p.files.set_limit(usize::MAX), Err(Errno::EPERM));
}

#[test]
fn fcntl_status_flags_and_locks() {
    let mut p = fake();
    let fd = p.open("/tmp/l", O_RDONLY | O_CREAT, 0o644).unwrap();
    p.call(
        sys_fcntl,
        &[fd, 4, (O_NONBLOCK | O_APPEND | O_WRONLY) as usize],
    )
    .unwrap();
    let fl = p.call(sys_fcntl, &[fd, 3, 0]).unwrap() as u32;
    assert_eq!(
        fl & O_ACCMODE,
        O_RDONLY,
        "access mode is not changed by F_SETFL"
    );
    assert_eq!(fl & (O_NONBLOCK | O_APPEND), O_NONBLOCK | O_APPEND);
    // F_GETLK reports unlocked; F_SETLK checks type and access mode.
    let mut flock = [0u8; abi::FLOCK_SIZE];
    flock[..2].copy_from_slice(&1i16.to_le_bytes()); // F_WRLCK
    let l = p.bytes(&flock);
    assert_eq!(p.call(sys_fcntl, &[fd, 5, l]), Ok(0));
    assert_eq!(p.get(l, 2), 2i16.to_le_bytes(), "F_UNLCK");
    p.mem[l - BASE..l - BASE + 2].copy_from_slice(&1i16.to_le_bytes());
    assert_eq!(
        p.call(sys_fcntl, &[fd, 6, l]),
        Err(Errno::EBADF),
        "write lock on O_RDONLY"
    );
    p.mem[l - BASE..l - BASE + 2].copy_from_slice(&0i16.to_le_bytes());
    assert_eq!(p.call(sys_fcntl, &[fd, 7, l]), Ok(0));
    p.mem[l - BASE..l - BASE + 2].copy_from_slice(&9i16.to_le_bytes());
    assert_eq!(p.call(sys_fcntl, &[fd, 6, l]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_fcntl, &[fd, 6, BAD]), Err(Errno::EFAULT));
}

#[test]
fn lseek_end_cur_negative_and_pipes() {
    let mut p = fake();
    let fd = p.open("/tmp/s", O_RDWR | O_CREAT, 0o644).unwrap();
    p.write_str(fd, b"0123456789").unwrap();
    assert_eq!(p.call(sys_lseek, &[fd, 0, 0]), Ok(0));
    assert_eq!(p.call(sys_lseek, &[fd, (-3i64) as usize, 2]), Ok(7));
    assert_eq!(p.read_n(fd, 10).unwrap(), b"789");
    assert_eq!(p.call(sys_lseek, &[fd, (-5i64) as usize, 1]), Ok(5));
    assert_eq!(
        p.call(sys_lseek, &[fd, (-6i64) as usize, 1]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.call(sys_lseek, &[fd, (-1i64) as usize, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.call(sys_lseek, &[fd, 0, 7]), Err(Errno::EINVAL));
    // Past the end is allowed; a write there leaves a zero-filled gap.
    assert_eq!(p.call(sys_lseek, &[fd, 12, 0]), Ok(12));
    assert_eq!(p.write_str(fd, b""), Ok(0));
    assert_eq!(
        p.stat("/tmp/s").unwrap().size,
        10,
        "an empty write does not extend"
    );
    p.write_str(fd, b"!").unwrap();
    assert_eq!(p.stat("/tmp/s").unwrap().size, 13);
    assert_eq!(p.call(sys_lseek, &[fd, 4, 3]), Ok(4), "SEEK_DATA");
    assert_eq!(p.call(sys_lseek, &[fd, 4, 4]), Ok(13), "SEEK_HOLE");
    assert_eq!(p.call(sys_lseek, &[fd, 13, 3]), Err(Errno::ENXIO));
    let fds = p.alloc(8);
    p.call(sys_pipe, &[fds]).unwrap();
    let r = u32_at(&p.get(fds, 8), 0) as usize;
    assert_eq!(p.call(sys_lseek, &[r, 0, 0]), Err(Errno::ESPIPE));
    let b = p.alloc(4);
    assert_eq!(p.call(sys_pread64, &[r, b, 4, 0]), Err(Errno::ESPIPE));
    assert_eq!(
        p.call(sys_lseek, &[1, 0, 1]),
        Err(Errno::ESPIPE),
        "the console"
    );
}

#[test]
fn pread_pwrite_readv_writev() {
    let mut p = fake();
    let fd = p.open("/tmp/v", O_RDWR | O_CREAT, 0o644).unwrap();
    // writev gathers.
    let a = p.bytes(b"hello ");
    let b = p.bytes(b"world");
    let mut iov = Vec::new();
    for (base, len) in [(a, 6usize), (b, 5)] {
        iov.extend_from_slice(&(base as u64).to_le_bytes());
        iov.extend_from_slice(&(len as u64).to_le_bytes());
    }
    let iov_addr = p.bytes(&iov);
    assert_eq!(p.call(sys_writev, &[fd, iov_addr, 2]), Ok(11));
    // pread leaves the offset alone.
    let buf = p.alloc(16);
    assert_eq!(p.call(sys_pread64, &[fd, buf, 5, 6]), Ok(5));
    assert_eq!(p.get(buf, 5), b"world");
    assert_eq!(p.call(sys_lseek, &[fd, 0, 1]), Ok(11));
    assert_eq!(
        p.call(sys_pread64, &[fd, buf, 5, (-1i64) as usize]),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.call(sys_pwrite64, &[fd, a, 5, 0]), Ok(5));
    // readv scatters, stopping at EOF.
    let x = p.alloc(4);
    let y = p.alloc(100);
    let mut iov = Vec::new();
    for (base, len) in [(x, 4usize), (y, 100)] {
        iov.extend_from_slice(&(base as u64).to_le_bytes());
        iov.extend_from_slice(&(len as u64).to_le_bytes());
    }
    let iov2 = p.bytes(&iov);
    assert_eq!(p.call(sys_preadv, &[fd, iov2, 2, 0]), Ok(11));
    assert_eq!(p.get(x, 4), b"hell");
    assert_eq!(p.get(y, 7), b"o world");
    p.call(sys_lseek, &[fd, 6, 0]).unwrap();
    assert_eq!(p.call(sys_readv, &[fd, iov2, 2]), Ok(5));
    assert_eq!(p.get(x, 4), b"worl");
    assert_eq!(p.call(sys_pwritev, &[fd, iov_addr, 1, 100]), Ok(6));
    assert_eq!(p.stat("/tmp/v").unwrap().size, 106);
    assert_eq!(p.call(sys_readv, &[fd, iov2, 1025]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_readv, &[fd, BAD, 1]), Err(Errno::EFAULT));
    assert_eq!(p.call(sys_readv, &[fd, iov2, 0]), Ok(0));
}

#[test]
fn pipes_eof_epipe_nonblock_and_flags() {
    let mut p = fake();
    let fds = p.alloc(8);
    p.call(sys_pipe2, &[fds, (O_CLOEXEC | O_NONBLOCK) as usize])
        .unwrap();
    let got = p.get(fds, 8);
    let (r, w) = (u32_at(&got, 0) as usize, u32_at(&got, 4) as usize);
    assert_eq!((r, w), (3, 4));
    assert_eq!(p.call(sys_fcntl, &[r, 1, 0]), Ok(FD_CLOEXEC));
    assert_eq!(
        p.call(sys_fcntl, &[w, 3, 0]).unwrap() as u32,
        O_WRONLY | O_NONBLOCK
    );
    assert_eq!(p.read_n(r, 4), Err(Errno::EAGAIN));
    assert_eq!(p.write_str(w, b"ping").unwrap(), 4);
    assert_eq!(p.write_str(r, b"x"), Err(Errno::EBADF));
    let n = p.alloc(4);
    assert_eq!(p.call(sys_ioctl, &[r, FIONREAD, n]), Ok(0));
    assert_eq!(u32_at(&p.get(n, 4), 0), 4);
    assert_eq!(p.read_n(r, 10).unwrap(), b"ping");
    // The last write end closes: EOF, even blocking.
    let w2 = p.call(sys_dup, &[w]).unwrap();
    p.call(sys_close, &[w]).unwrap();
    assert_eq!(p.read_n(r, 1), Err(Errno::EAGAIN), "a writer remains");
    p.call(sys_close, &[w2]).unwrap();
    assert_eq!(p.read_n(r, 10).unwrap(), b"");
    // No reader: EPIPE.
    p.call(sys_pipe, &[fds]).unwrap();
    let got = p.get(fds, 8);
    let (r, w) = (u32_at(&got, 0) as usize, u32_at(&got, 4) as usize);
    p.call(sys_close, &[r]).unwrap();
    assert_eq!(p.write_str(w, b"x"), Err(Errno::EPIPE));
    assert_eq!(p.stat("/proc/self/fd/0").unwrap().kind, FileType::Symlink);
    assert_eq!(
        p.call(sys_pipe2, &[fds, O_TRUNC as usize]),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.call(sys_pipe, &[BAD]), Err(Errno::EFAULT));
    assert_eq!(
        p.call(sys_fcntl, &[w, 1032, 0]),
        Ok(crate::fs::pipe::CAPACITY)
    );
    assert_eq!(p.call(sys_fsync, &[w]), Err(Errno::EINVAL));
}

#[test]
fn stat_layouts_match_each_arch() {
    let mut m = crate::fs::Metadata::synthetic(0x801, 1234, FileType::Regular, 0o644, 5000);
    m.nlink = 2;
    m.uid = 1000;
    m.gid = 100;
    m.rdev = 0x103;
    m.atime_ns = 1_000_000_007;
    m.mtime_ns = 2_000_000_008;
    m.ctime_ns = 3_000_000_009;
    let x = abi::encode_stat(&m, StatLayout::X86_64);
    assert_eq!(x.len(), 144);
    assert_eq!(u64_at(&x, 0), 0x801);
    assert_eq!(u64_at(&x, 8), 1234);
    assert_eq!(u64_at(&x, 16), 2, "st_nlink is 64-bit at 16 on x86_64");
    assert_eq!(u32_at(&x, 24), 0o100644);
    assert_eq!((u32_at(&x, 28), u32_at(&x, 32)), (1000, 100));
    assert_eq!(u64_at(&x, 40), 0x103);
    assert_eq!(u64_at(&x, 48), 5000);
    assert_eq!(u64_at(&x, 56), 4096);
    assert_eq!(u64_at(&x, 64), 16, "two pages of 512-byte blocks");
    assert_eq!((u64_at(&x, 72), u64_at(&x, 80)), (1, 7));
    assert_eq!((u64_at(&x, 88), u64_at(&x, 96)), (2, 8));
    assert_eq!((u64_at(&x, 104), u64_at(&x, 112)), (3, 9));
    let g = abi::encode_stat(&m, StatLayout::Generic);
    assert_eq!(g.len(), 128);
    assert_eq!(u32_at(&g, 16), 0o100644, "st_mode at 16 on aarch64");
    assert_eq!(u32_at(&g, 20), 2, "st_nlink is 32-bit at 20");
    assert_eq!((u32_at(&g, 24), u32_at(&g, 28)), (1000, 100));
    assert_eq!(u64_at(&g, 32), 0x103);
    assert_eq!(u64_at(&g, 48), 5000);
    assert_eq!(u32_at(&g, 56), 4096, "st_blksize is int");
    assert_eq!(u64_at(&g, 64), 16);
    assert_eq!((u64_at(&g, 88), u64_at(&g, 96)), (2, 8));
    assert_eq!(
        StatLayout::NATIVE,
        StatLayout::X86_64,
        "host tests run on x86_64"
    );
    // statx.
    let s = abi::encode_statx(&m);
    assert_eq!(s.len(), 256);
    assert_eq!(u32_at(&s, 0), 0x7ff);
    assert_eq!(u32_at(&s, 16), 2);
    assert_eq!(u16::from_le_bytes([s[28], s[29]]), 0o100644);
    assert_eq!(u64_at(&s, 32), 1234);
    assert_eq!(u64_at(&s, 40), 5000);
    assert_eq!((u64_at(&s, 112), u32_at(&s, 120)), (2, 8), "stx_mtime");
    assert_eq!((u32_at(&s, 128), u32_at(&s, 132)), (1, 3), "rdev 1:3");
    assert_eq!((u32_at(&s, 136), u32_at(&s, 140)), (8, 1), "dev 8:1");
}

#[test]
fn stat_calls_and_errors() {
    let mut p = fake();
    let st = p.stat("/etc/hostname").unwrap();
    assert_eq!((st.kind, st.size, st.perm), (FileType::Regular, 6, 0o644));
    assert_eq!(p.stat("/lib").unwrap().kind, FileType::Symlink);
    let path = p.s("/lib");
    let buf = p.alloc(256);
    p.call(sys_stat, &[path, buf]).unwrap();
    assert_eq!(decode_stat(&p.get(buf, 144)).kind, FileType::Directory);
    p.call(sys_lstat, &[path, buf]).unwrap();
    assert_eq!(decode_stat(&p.get(buf, 144)).kind, FileType::Symlink);
    assert_eq!(p.call(sys_fstat, &[1, buf]), Ok(0));
    let m = decode_stat(&p.get(buf, 144));
    assert_eq!((m.kind, m.perm), (FileType::CharDevice, 0o620));
    assert_eq!(p.call(sys_fstat, &[1, BAD]), Err(Errno::EFAULT));
    assert_eq!(p.call(sys_fstat, &[40, buf]), Err(Errno::EBADF));
    assert_eq!(p.stat("/nope").err(), Some(Errno::ENOENT));
    assert_eq!(p.stat("/etc/hostname/").err(), Some(Errno::ENOTDIR));
    // AT_EMPTY_PATH on a descriptor; bad flags.
    let fd = p.open("/etc/hostname", 0, 0).unwrap();
    let empty = p.s("");
    p.call(sys_newfstatat, &[fd, empty, buf, AT_EMPTY_PATH as usize])
        .unwrap();
    assert_eq!(decode_stat(&p.get(buf, 144)).size, 6);
    assert_eq!(
        p.call(sys_newfstatat, &[fd, empty, buf, 0]),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        p.call(sys_newfstatat, &[fd, empty, buf, 0x1]),
        Err(Errno::EINVAL)
    );
    // statx.
    let sx = p.alloc(256);
    let hp = p.s("/etc/hostname");
    assert_eq!(p.call(sys_statx, &[FDCWD, hp, 0, 0x7ff, sx]), Ok(0));
    assert_eq!(u64_at(&p.get(sx, 256), 40), 6);
    assert_eq!(
        p.call(sys_statx, &[FDCWD, hp, 0, 0x8000_0000, sx]),
        Err(Errno::EINVAL)
    );
    // statfs.
    let tmp = p.s("/tmp");
    let sf = p.alloc(120);
    p.call(sys_statfs, &[tmp, sf]).unwrap();
    assert_eq!(u64_at(&p.get(sf, 120), 0), crate::fs::magic::TMPFS);
    p.call(sys_fstatfs, &[fd, sf]).unwrap();
    assert_eq!(u64_at(&p.get(sf, 120), 0), crate::fs::magic::RAMFS);
    let proc_ = p.s("/proc/self/maps");
    p.call(sys_statfs, &[proc_, sf]).unwrap();
    assert_eq!(u64_at(&p.get(sf, 120), 0), crate::fs::magic::PROC);
}

/// Parses `linux_dirent64` records: (ino, off, type, name).
fn dirents(b: &[u8]) -> Vec<(u64, u64, u8, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let reclen = u16::from_le_bytes([b[i + 16], b[i + 17]]) as usize;
        assert_eq!(reclen % 8, 0, "records are 8-byte aligned");
        let name = &b[i + 19..i + reclen];
        let end = name.iter().position(|&c| c == 0).unwrap();
        out.push((
            u64_at(b, i),
            u64_at(b, i + 8),
            b[i + 18],
            String::from_utf8(name[..end].to_vec()).unwrap(),
        ));
        i += reclen;
    }
    out
}

#[test]
fn getdents64_layout_and_resumption() {
    let mut p = fake();
    for n in ["a", "bb", "ccc"] {
        let fd = p
            .open(&format!("/tmp/{n}"), O_CREAT | O_WRONLY, 0o644)
            .unwrap();
        p.call(sys_close, &[fd]).unwrap();
    }
    let path = p.s("/tmp/sub");
    p.call(sys_mkdir, &[path, 0o755]).unwrap();
    let d = p.open("/tmp", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let buf = p.alloc(4096);
    let n = p.call(sys_getdents64, &[d, buf, 4096]).unwrap();
    let all = dirents(&p.get(buf, n));
    let names: Vec<&str> = all.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(names, [".", "..", "a", "bb", "ccc", "sub"]);
    assert_eq!(all[2].2, 8, "DT_REG");
    assert_eq!(all[5].2, 4, "DT_DIR");
    assert_eq!(n, 24 * 6, "each record is 24 bytes with a name under 5");
    assert_eq!(all[0].0, p.stat("/tmp").unwrap().ino);
    assert_eq!(
        all[1].0,
        p.stat("/").unwrap().ino,
        ".. of a mount is the covered parent"
    );
    assert_eq!(all[3].1, 4, "d_off is the next entry's cookie");
    assert_eq!(p.call(sys_getdents64, &[d, buf, 4096]), Ok(0), "end");
    // Small buffers resume where they stopped; too small is EINVAL.
    p.call(sys_lseek, &[d, 0, 0]).unwrap();
    assert_eq!(p.call(sys_getdents64, &[d, buf, 10]), Err(Errno::EINVAL));
    let mut seen = Vec::new();
    loop {
        let n = p.call(sys_getdents64, &[d, buf, 50]).unwrap();
        if n == 0 {
            break;
        }
        let batch = dirents(&p.get(buf, n));
        assert!(batch.len() <= 2);
        seen.extend(batch.into_iter().map(|e| e.3));
    }
    assert_eq!(seen, names);
    // Resume from a d_off given to lseek (telldir/seekdir).
    p.call(sys_lseek, &[d, 4, 0]).unwrap();
    let n = p.call(sys_getdents64, &[d, buf, 4096]).unwrap();
    assert_eq!(dirents(&p.get(buf, n))[0].3, "ccc");
    let f = p.open("/etc/hostname", 0, 0).unwrap();
    assert_eq!(p.call(sys_getdents64, &[f, buf, 4096]), Err(Errno::ENOTDIR));
    assert_eq!(p.call(sys_getdents64, &[99, buf, 4096]), Err(Errno::EBADF));
    p.call(sys_lseek, &[d, 0, 0]).unwrap();
    assert_eq!(p.call(sys_getdents64, &[d, BAD, 4096]), Err(Errno::EFAULT));
    // read on a directory.
    assert_eq!(p.read_n(d, 4), Err(Errno::EISDIR));
}

#[test]
fn directories_create_remove_and_errors() {
    let mut p = fake();
    let d = p.s("/tmp/d");
    assert_eq!(p.call(sys_mkdir, &[d, 0o777]), Ok(0));
    assert_eq!(p.stat("/tmp/d").unwrap().perm, 0o755);
    assert_eq!(p.call(sys_mkdir, &[d, 0o777]), Err(Errno::EEXIST));
    let slash = p.s("/");
    assert_eq!(p.call(sys_mkdir, &[slash, 0o777]), Err(Errno::EEXIST));
    let dot = p.s("/tmp/.");
    assert_eq!(p.call(sys_mkdir, &[dot, 0o777]), Err(Errno::EEXIST));
    let deep = p.s("/tmp/x/y");
    assert_eq!(p.call(sys_mkdir, &[deep, 0o777]), Err(Errno::ENOENT));
    let under_file = p.s("/etc/hostname/y");
    assert_eq!(p.call(sys_mkdir, &[under_file, 0o777]), Err(Errno::ENOTDIR));
    // mkdirat relative to a directory descriptor.
    let dfd = p.open("/tmp/d", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let e = p.s("e");
    assert_eq!(p.call(sys_mkdirat, &[dfd, e, 0o700]), Ok(0));
    // rmdir rules.
    assert_eq!(p.call(sys_rmdir, &[d]), Err(Errno::ENOTEMPTY));
    let de = p.s("/tmp/d/e/");
    assert_eq!(p.call(sys_rmdir, &[de]), Ok(0), "trailing slash");
    assert_eq!(p.call(sys_rmdir, &[de]), Err(Errno::ENOENT));
    assert_eq!(p.call(sys_rmdir, &[dot]), Err(Errno::EINVAL));
    let dotdot = p.s("/tmp/d/..");
    assert_eq!(p.call(sys_rmdir, &[dotdot]), Err(Errno::ENOTEMPTY));
    let host = p.s("/etc/hostname");
    assert_eq!(p.call(sys_rmdir, &[host]), Err(Errno::ENOTDIR));
    let tmp = p.s("/tmp");
    assert_eq!(p.call(sys_rmdir, &[tmp]), Err(Errno::EBUSY), "mount point");
    assert_eq!(p.call(sys_rmdir, &[slash]), Err(Errno::EBUSY));
    // unlink rules.
    assert_eq!(p.call(sys_unlink, &[d]), Err(Errno::EISDIR));
    let f = p.open("/tmp/d/f", O_CREAT | O_WRONLY, 0o644).unwrap();
    let fp = p.s("/tmp/d/f");
    let fslash = p.s("/tmp/d/f/");
    assert_eq!(p.call(sys_unlink, &[fslash]), Err(Errno::ENOTDIR));
    assert_eq!(p.call(sys_unlink, &[fp]), Ok(0));
    assert_eq!(p.call(sys_unlink, &[fp]), Err(Errno::ENOENT));
    // The open file lives on after unlink.
    assert_eq!(p.write_str(f, b"still here").unwrap(), 10);
    // unlinkat with AT_REMOVEDIR.
    let rel = p.s("d");
    let tfd = p.open("/tmp", O_RDONLY | O_DIRECTORY, 0).unwrap();
    assert_eq!(p.call(sys_unlinkat, &[tfd, rel, 0]), Err(Errno::EISDIR));
    assert_eq!(p.call(sys_unlinkat, &[tfd, rel, 0x1]), Err(Errno::EINVAL));
    assert_eq!(
        p.call(sys_unlinkat, &[tfd, rel, AT_REMOVEDIR as usize]),
        Ok(0)
    );
    assert_eq!(p.stat("/tmp/d").err(), Some(Errno::ENOENT));
    // Removing from procfs is refused.
    let maps = p.s("/proc/self/maps");
    assert_eq!(p.call(sys_unlink, &[maps]), Err(Errno::EACCES));
}

#[test]
fn cwd_chdir_fchdir_getcwd() {
    let mut p = fake();
    let buf = p.alloc(256);
    assert_eq!(p.call(sys_getcwd, &[buf, 256]), Ok(2));
    assert_eq!(p.get(buf, 2), b"/\0");
    let lib = p.s("/lib");
    p.call(sys_chdir, &[lib]).unwrap();
    assert_eq!(p.call(sys_getcwd, &[buf, 256]), Ok(9));
    assert_eq!(p.get(buf, 9), b"/usr/lib\0", "symlinks resolved");
    assert_eq!(p.call(sys_getcwd, &[buf, 8]), Err(Errno::ERANGE));
    assert_eq!(p.call(sys_getcwd, &[BAD, 256]), Err(Errno::EFAULT));
    // Relative paths start at the cwd.
    let up = p.s("../../etc/hostname");
    let fd = p.call(sys_openat, &[FDCWD, up, 0, 0]).unwrap();
    assert_eq!(p.read_n(fd, 5).unwrap(), b"skiff");
    assert_eq!(
        p.files
            .paths()
            .into_iter()
            .find(|(f, _)| *f as usize == fd)
            .unwrap()
            .1,
        "/etc/hostname"
    );
    let host = p.s("/etc/hostname");
    assert_eq!(p.call(sys_chdir, &[host]), Err(Errno::ENOTDIR));
    let nope = p.s("/nope");
    assert_eq!(p.call(sys_chdir, &[nope]), Err(Errno::ENOENT));
    let t = p.open("/tmp", O_RDONLY | O_DIRECTORY, 0).unwrap();
    p.call(sys_fchdir, &[t]).unwrap();
    assert_eq!(p.call(sys_getcwd, &[buf, 256]), Ok(5));
    assert_eq!(p.get(buf, 5), b"/tmp\0");
    assert_eq!(p.call(sys_fchdir, &[fd]), Err(Errno::ENOTDIR));
    assert_eq!(p.call(sys_fchdir, &[77]), Err(Errno::EBADF));
    // Relative creation lands in /tmp.
    let name = p.s("here");
    p.call(sys_mkdir, &[name, 0o755]).unwrap();
    assert!(p.stat("/tmp/here").is_ok());
}

#[test]
fn rename_link_symlink_readlink() {
    let mut p = fake();
    let fd = p.open("/tmp/a", O_CREAT | O_WRONLY, 0o644).unwrap();
    p.write_str(fd, b"data").unwrap();
    let a = p.s("/tmp/a");
    let b = p.s("/tmp/b");
    assert_eq!(p.call(sys_rename, &[a, b]), Ok(0));
    assert_eq!(p.stat("/tmp/a").err(), Some(Errno::ENOENT));
    assert_eq!(p.call(sys_rename, &[a, b]), Err(Errno::ENOENT));
    // NOREPLACE; EXCHANGE is not supported (EINVAL).
    let c = p.s("/tmp/c");
    p.open("/tmp/c", O_CREAT | O_WRONLY, 0o644).unwrap();
    assert_eq!(
        p.call(sys_renameat2, &[FDCWD, b, FDCWD, c, 1]),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        p.call(sys_renameat2, &[FDCWD, b, FDCWD, c, 2]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.call(sys_renameat2, &[FDCWD, b, FDCWD, c, 3]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.call(sys_renameat, &[FDCWD, b, FDCWD, c]),
        Ok(0),
        "replaces"
    );
    assert_eq!(p.stat("/tmp/c").unwrap().size, 4);
    // Across file systems: EXDEV. Onto a directory: EISDIR.
    let etc_x = p.s("/etc/x");
    assert_eq!(p.call(sys_rename, &[c, etc_x]), Err(Errno::EXDEV));
    let tmp = p.s("/tmp");
    let d = p.s("/tmp/dir");
    p.call(sys_mkdir, &[d, 0o755]).unwrap();
    assert_eq!(p.call(sys_rename, &[c, d]), Err(Errno::EISDIR));
    assert_eq!(p.call(sys_rename, &[d, c]), Err(Errno::ENOTDIR));
    assert_eq!(p.call(sys_rename, &[tmp, etc_x]), Err(Errno::EBUSY));
    let dot = p.s("/tmp/.");
    assert_eq!(p.call(sys_rename, &[dot, etc_x]), Err(Errno::EBUSY));
    // Hard links share the inode and count.
    let l = p.s("/tmp/l");
    assert_eq!(p.call(sys_link, &[c, l]), Ok(0));
    assert_eq!(p.stat("/tmp/l").unwrap().nlink, 2);
    assert_eq!(p.stat("/tmp/l").unwrap().ino, p.stat("/tmp/c").unwrap().ino);
    assert_eq!(p.call(sys_link, &[c, l]), Err(Errno::EEXIST));
    assert_eq!(p.call(sys_link, &[d, etc_x]), Err(Errno::EPERM));
    let host = p.s("/etc/hostname");
    let h2 = p.s("/tmp/h");
    assert_eq!(p.call(sys_link, &[host, h2]), Err(Errno::EXDEV));
    assert_eq!(
        p.call(sys_linkat, &[FDCWD, c, FDCWD, h2, 0x1]),
        Err(Errno::EINVAL)
    );
    // Symlinks.
    let s = p.s("/tmp/s");
    let target = p.s("c");
    assert_eq!(p.call(sys_symlink, &[target, s]), Ok(0));
    assert_eq!(p.call(sys_symlink, &[target, s]), Err(Errno::EEXIST));
    let empty = p.s("");
    let s2 = p.s("/tmp/s2");
    assert_eq!(p.call(sys_symlink, &[empty, s2]), Err(Errno::ENOENT));
    let buf = p.alloc(64);
    assert_eq!(p.call(sys_readlink, &[s, buf, 64]), Ok(1));
    assert_eq!(p.get(buf, 1), b"c");
    assert_eq!(p.call(sys_readlink, &[c, buf, 64]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_readlink, &[s, buf, 0]), Err(Errno::EINVAL));
    let proc_exe = p.s("/proc/self/exe");
    assert_eq!(
        p.call(sys_readlinkat, &[FDCWD, proc_exe, buf, 4]),
        Ok(4),
        "cut, no NUL"
    );
    assert_eq!(p.get(buf, 4), b"/bin");
    // linkat with AT_SYMLINK_FOLLOW links the target, without it the link.
    let f1 = p.s("/tmp/f1");
    let f2 = p.s("/tmp/f2");
    p.call(
        sys_linkat,
        &[FDCWD, s, FDCWD, f1, AT_SYMLINK_FOLLOW as usize],
    )
    .unwrap();
    p.call(sys_linkat, &[FDCWD, s, FDCWD, f2, 0]).unwrap();
    assert_eq!(p.stat("/tmp/f1").unwrap().kind, FileType::Regular);
    assert_eq!(p.stat("/tmp/f2").unwrap().kind, FileType::Symlink);
    // symlinkat relative to a directory descriptor.
    let tfd = p.open("/tmp", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let rel = p.s("s3");
    p.call(sys_symlinkat, &[target, tfd, rel]).unwrap();
    assert_eq!(p.stat("/tmp/s3").unwrap().kind, FileType::Symlink);
}

#[test]
fn access_chmod_chown_utimensat_umask() {
    let mut p = fake();
    let app = p.s("/bin/app");
    let host = p.s("/etc/hostname");
    assert_eq!(p.call(sys_access, &[app, 1]), Ok(0));
    assert_eq!(p.call(sys_access, &[host, 1]), Err(Errno::EACCES));
    assert_eq!(
        p.call(sys_access, &[host, 6]),
        Ok(0),
        "root reads and writes"
    );
    assert_eq!(p.call(sys_access, &[host, 8]), Err(Errno::EINVAL));
    let nope = p.s("/nope");
    assert_eq!(p.call(sys_access, &[nope, 0]), Err(Errno::ENOENT));
    assert_eq!(p.call(sys_faccessat, &[FDCWD, app, 1]), Ok(0));
    assert_eq!(
        p.call(sys_faccessat2, &[FDCWD, host, 0, AT_EACCESS as usize]),
        Ok(0)
    );
    assert_eq!(
        p.call(sys_faccessat2, &[FDCWD, host, 0, 0x1]),
        Err(Errno::EINVAL)
    );
    // chmod family.
    p.call(sys_chmod, &[host, 0o4755]).unwrap();
    assert_eq!(p.stat("/etc/hostname").unwrap().perm, 0o4755);
    assert_eq!(p.call(sys_access, &[host, 1]), Ok(0));
    let fd = p.open("/etc/hostname", 0, 0).unwrap();
    p.call(sys_fchmod, &[fd, 0o600]).unwrap();
    assert_eq!(p.stat("/etc/hostname").unwrap().perm, 0o600);
    p.call(sys_fchmodat, &[FDCWD, host, 0o640]).unwrap();
    assert_eq!(p.stat("/etc/hostname").unwrap().perm, 0o640);
    assert_eq!(p.call(sys_fchmod, &[66, 0o600]), Err(Errno::EBADF));
    // chown: -1 keeps an id; lchown changes the link itself.
    p.call(sys_chown, &[host, 1000, u32::MAX as usize]).unwrap();
    let st = p.stat("/etc/hostname").unwrap();
    assert_eq!((st.uid, st.gid), (1000, 0));
    p.call(sys_fchown, &[fd, u32::MAX as usize, 50]).unwrap();
    let st = p.stat("/etc/hostname").unwrap();
    assert_eq!((st.uid, st.gid), (1000, 50));
    let lib = p.s("/lib");
    p.call(sys_lchown, &[lib, 7, 7]).unwrap();
    assert_eq!(p.stat("/lib").unwrap().uid, 7);
    assert_eq!(p.stat("/usr/lib").unwrap().uid, 0);
    p.call(sys_fchownat, &[FDCWD, lib, 8, 8, 0]).unwrap();
    assert_eq!(p.stat("/usr/lib").unwrap().uid, 8);
    assert_eq!(
        p.call(sys_fchownat, &[FDCWD, lib, 8, 8, 0x1]),
        Err(Errno::EINVAL)
    );
    // utimensat: explicit times, UTIME_OMIT, bad nanoseconds.
    let mut ts = Vec::new();
    for (s, ns) in [(5i64, 6i64), (7, 8)] {
        ts.extend_from_slice(&s.to_le_bytes());
        ts.extend_from_slice(&ns.to_le_bytes());
    }
    let t = p.bytes(&ts);
    p.call(sys_utimensat, &[FDCWD, host, t, 0]).unwrap();
    assert_eq!(p.stat("/etc/hostname").unwrap().mtime_ns, 7_000_000_008);
    let mut omit = ts.clone();
    omit[24..32].copy_from_slice(&((1i64 << 30) - 2).to_le_bytes());
    omit[0..8].copy_from_slice(&99i64.to_le_bytes());
    let t2 = p.bytes(&omit);
    p.call(sys_utimensat, &[fd, 0, t2, 0]).unwrap();
    assert_eq!(
        p.stat("/etc/hostname").unwrap().mtime_ns,
        7_000_000_008,
        "omitted"
    );
    let mut bad = ts.clone();
    bad[8..16].copy_from_slice(&1_000_000_000i64.to_le_bytes());
    let t3 = p.bytes(&bad);
    assert_eq!(
        p.call(sys_utimensat, &[FDCWD, host, t3, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.call(sys_utimensat, &[FDCWD, 0, t, 0]), Err(Errno::EFAULT));
    assert_eq!(
        p.call(sys_utimensat, &[FDCWD, host, BAD, 0]),
        Err(Errno::EFAULT)
    );
    // umask.
    assert_eq!(p.call(sys_umask, &[0o077]), Ok(0o022));
    assert_eq!(p.call(sys_umask, &[0o022]), Ok(0o077));
}

#[test]
fn truncate_fsync_sendfile_copy_file_range() {
    let mut p = fake();
    let fd = p.open("/tmp/t", O_RDWR | O_CREAT, 0o644).unwrap();
    p.write_str(fd, b"0123456789").unwrap();
    assert_eq!(p.call(sys_ftruncate, &[fd, 4]), Ok(0));
    assert_eq!(p.stat("/tmp/t").unwrap().size, 4);
    assert_eq!(
        p.call(sys_ftruncate, &[fd, (-1i64) as usize]),
        Err(Errno::EINVAL)
    );
    let ro = p.open("/tmp/t", O_RDONLY, 0).unwrap();
    assert_eq!(p.call(sys_ftruncate, &[ro, 0]), Err(Errno::EINVAL));
    let tp = p.s("/tmp/t");
    assert_eq!(p.call(sys_truncate, &[tp, 8]), Ok(0));
    let r = p.alloc(16);
    assert_eq!(p.call(sys_pread64, &[ro, r, 16, 0]), Ok(8));
    assert_eq!(p.get(r, 8), b"0123\0\0\0\0");
    let tmp = p.s("/tmp");
    assert_eq!(p.call(sys_truncate, &[tmp, 0]), Err(Errno::EISDIR));
    assert_eq!(p.call(sys_fsync, &[fd]), Ok(0));
    assert_eq!(p.call(sys_fdatasync_alias(), &[99]), Err(Errno::EBADF));
    // sendfile from the file to a pipe, with and without an offset.
    let src = p.open("/etc/hostname", O_RDONLY, 0).unwrap();
    let fds = p.alloc(8);
    p.call(sys_pipe, &[fds]).unwrap();
    let got = p.get(fds, 8);
    let (pr, pw) = (u32_at(&got, 0) as usize, u32_at(&got, 4) as usize);
    assert_eq!(p.call(sys_sendfile, &[pw, src, 0, 3]), Ok(3));
    let off = p.bytes(&1u64.to_le_bytes());
    assert_eq!(p.call(sys_sendfile, &[pw, src, off, 100]), Ok(5));
    assert_eq!(u64_at(&p.get(off, 8), 0), 6, "*offset advanced");
    assert_eq!(p.read_n(pr, 100).unwrap(), b"skikiff\n");
    assert_eq!(p.read_n(src, 100).unwrap(), b"ff\n", "own offset: 3");
    assert_eq!(p.call(sys_sendfile, &[src, pw, 0, 1]), Err(Errno::EBADF));
    // copy_file_range between files.
    let dst = p.open("/tmp/copy", O_RDWR | O_CREAT, 0o644).unwrap();
    let in_off = p.bytes(&2u64.to_le_bytes());
    assert_eq!(
        p.call(sys_copy_file_range, &[src, in_off, dst, 0, 100, 0]),
        Ok(4)
    );
    assert_eq!(u64_at(&p.get(in_off, 8), 0), 6);
    assert_eq!(p.call(sys_lseek, &[dst, 0, 1]), Ok(4));
    assert_eq!(p.call(sys_pread64, &[dst, r, 16, 0]), Ok(4));
    assert_eq!(p.get(r, 4), b"iff\n");
    assert_eq!(
        p.call(sys_copy_file_range, &[src, 0, dst, 0, 1, 1]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.call(sys_copy_file_range, &[src, 0, pw, 0, 1, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.call(sys_copy_file_range, &[dst, 0, src, 0, 1, 0]),
        Err(Errno::EBADF)
    );
    let same = p.bytes(&0u64.to_le_bytes());
    let same2 = p.bytes(&1u64.to_le_bytes());
    assert_eq!(
        p.call(sys_copy_file_range, &[dst, same, dst, same2, 2, 0]),
        Err(Errno::EINVAL),
        "overlap"
    );
}

fn sys_fdatasync_alias() -> H {
    ENTRIES
        .iter()
        .find(|e| e.name == "fdatasync")
        .unwrap()
        .handler
}

#[test]
fn ioctl_tty_and_others() {
    let mut p = fake();
    let t = p.alloc(64);
    assert_eq!(p.call(sys_ioctl, &[1, TCGETS, t]), Ok(0));
    assert_eq!(p.get(t, 36).to_vec(), abi::default_termios().to_vec());
    assert_eq!(u32_at(&p.get(t, 36), 12) & 0o2, 0o2, "ICANON");
    assert_eq!(p.call(sys_ioctl, &[1, TIOCGWINSZ, t]), Ok(0));
    assert_eq!(p.get(t, 4), [24, 0, 80, 0]);
    assert_eq!(p.call(sys_ioctl, &[1, TCGETS, BAD]), Err(Errno::EFAULT));
    let f = p.open("/etc/hostname", 0, 0).unwrap();
    assert_eq!(p.call(sys_ioctl, &[f, TCGETS, t]), Err(Errno::ENOTTY));
    assert_eq!(p.call(sys_ioctl, &[f, TIOCGWINSZ, t]), Err(Errno::ENOTTY));
    assert_eq!(p.call(sys_ioctl, &[f, 0x1234, t]), Err(Errno::ENOTTY));
    assert_eq!(p.call(sys_ioctl, &[44, TCGETS, t]), Err(Errno::EBADF));
    // FIONREAD on a file: bytes past the position.
    p.read_n(f, 2).unwrap();
    assert_eq!(p.call(sys_ioctl, &[f, FIONREAD, t]), Ok(0));
    assert_eq!(u32_at(&p.get(t, 4), 0), 4);
    // FIONBIO sets and clears O_NONBLOCK; FIOCLEX sets FD_CLOEXEC.
    let one = p.bytes(&1i32.to_le_bytes());
    let zero = p.bytes(&0i32.to_le_bytes());
    p.call(sys_ioctl, &[f, FIONBIO, one]).unwrap();
    assert_ne!(
        p.call(sys_fcntl, &[f, 3, 0]).unwrap() as u32 & O_NONBLOCK,
        0
    );
    p.call(sys_ioctl, &[f, FIONBIO, zero]).unwrap();
    assert_eq!(
        p.call(sys_fcntl, &[f, 3, 0]).unwrap() as u32 & O_NONBLOCK,
        0
    );
    p.call(sys_ioctl, &[f, FIOCLEX, 0]).unwrap();
    assert_eq!(p.call(sys_fcntl, &[f, 1, 0]), Ok(FD_CLOEXEC));
    p.call(sys_ioctl, &[f, FIONCLEX, 0]).unwrap();
    assert_eq!(p.call(sys_fcntl, &[f, 1, 0]), Ok(0));
}

#[test]
fn devices_and_procfs_through_the_calls() {
    let mut p = fake();
    let z = p.open("/dev/zero", O_RDONLY, 0).unwrap();
    let buf = p.bytes(&[7u8; 8]);
    assert_eq!(p.call(sys_read, &[z, buf, 8]), Ok(8));
    assert_eq!(p.get(buf, 8), [0u8; 8]);
    let n = p.open("/dev/null", O_RDWR, 0).unwrap();
    assert_eq!(p.read_n(n, 8).unwrap(), b"");
    assert_eq!(p.write_str(n, b"gone").unwrap(), 4);
    crate::random::POOL.add_entropy(&[1; 32]);
    let u = p.open("/dev/urandom", O_RDONLY, 0).unwrap();
    let (a, b) = (p.read_n(u, 16).unwrap(), p.read_n(u, 16).unwrap());
    assert_eq!(a.len(), 16);
    assert_ne!(a, b);
    // stdout is the console, writes succeed without a console attached.
    assert_eq!(p.write_str(1, b"hello\n").unwrap(), 6);
    let m = p.open("/proc/self/maps", O_RDONLY, 0).unwrap();
    let text = p.read_n(m, 4096).unwrap();
    assert!(text.starts_with(b"00400000-00402000 r-xp "));
    let big = p.open("/proc/self/status", O_RDONLY, 0).unwrap();
    let st = p.read_n(big, 4096).unwrap();
    assert!(String::from_utf8(st).unwrap().contains("Pid:\t42\n"));
    // /dev/stdout resolves through /proc/self/fd/1 (the fake's source).
    let stdin = p.s("/dev/stdin");
    let buf = p.alloc(256);
    assert_eq!(p.call(sys_stat, &[stdin, buf]), Ok(0));
    assert_eq!(decode_stat(&p.get(buf, 144)).kind, FileType::CharDevice);
    let _ = p.files.paths().to_vec();
    assert_eq!(p.files.paths()[0].1, "/dev/console".to_string());
}

#[test]
fn join_normalises_lexically() {
    assert_eq!(join("/tmp", "a/./b/../c"), "/tmp/a/c");
    assert_eq!(join("/tmp", "/etc/../x"), "/x");
    assert_eq!(join("/", ".."), "/");
    assert_eq!(join("/a/b", ""), "/a/b");
}

#[test]
fn xattrs_are_empty_and_unsupported() {
    let mut p = fake();
    let host = p.s("/etc/hostname");
    let name = p.s("user.x");
    let empty = p.s("");
    let nope = p.s("/nope");
    let buf = p.alloc(64);
    assert_eq!(p.call(sys_listxattr, &[host, buf, 64]), Ok(0));
    assert_eq!(p.call(sys_llistxattr, &[nope, buf, 64]), Err(Errno::ENOENT));
    assert_eq!(
        p.call(sys_getxattr, &[host, name, buf, 64]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        p.call(sys_lgetxattr, &[nope, name, buf, 64]),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        p.call(sys_getxattr, &[host, empty, buf, 64]),
        Err(Errno::ERANGE)
    );
    assert_eq!(
        p.call(sys_getxattr, &[host, BAD, buf, 64]),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        p.call(sys_fgetxattr, &[1, name, buf, 64]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(p.call(sys_flistxattr, &[70, buf, 64]), Err(Errno::EBADF));
    assert_eq!(
        p.call(sys_setxattr, &[host, name, buf, 1, 0]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(p.call(sys_fremovexattr, &[0, name]), Err(Errno::EOPNOTSUPP));
}

#[test]
fn directory_link_counts() {
    let mut p = fake();
    assert_eq!(
        p.stat("/tmp").unwrap().nlink,
        2,
        "an empty file system root"
    );
    let d = p.s("/tmp/d");
    p.call(sys_mkdir, &[d, 0o755]).unwrap();
    assert_eq!(p.stat("/tmp").unwrap().nlink, 3);
    assert_eq!(p.stat("/tmp/d").unwrap().nlink, 2);
}

#[test]
fn close_range_flock_fallocate_fadvise() {
    let mut p = fake();
    for _ in 0..4 {
        p.open("/etc/hostname", 0, 0).unwrap(); // 3..=6
    }
    assert_eq!(p.call(sys_close_range, &[5, 4, 0]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_close_range, &[3, 4, 1]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_close_range, &[3, 4, 4]), Ok(0));
    assert_eq!(p.call(sys_fcntl, &[4, 1, 0]), Ok(FD_CLOEXEC));
    assert_eq!(p.call(sys_close_range, &[5, u32::MAX as usize, 0]), Ok(0));
    assert_eq!(p.call(sys_fcntl, &[5, 1, 0]), Err(Errno::EBADF));
    assert_eq!(p.call(sys_fcntl, &[6, 1, 0]), Err(Errno::EBADF));
    assert_eq!(p.call(sys_fcntl, &[4, 1, 0]), Ok(FD_CLOEXEC), "kept");
    // flock.
    assert_eq!(p.call(sys_flock, &[3, 2 | 4]), Ok(0));
    assert_eq!(p.call(sys_flock, &[3, 8]), Ok(0));
    assert_eq!(p.call(sys_flock, &[3, 3]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_flock, &[9, 1]), Err(Errno::EBADF));
    // fallocate extends, KEEP_SIZE does not, holes are not supported.
    let fd = p.open("/tmp/fa", O_RDWR | O_CREAT, 0o644).unwrap();
    assert_eq!(p.call(sys_fallocate, &[fd, 0, 0, 100]), Ok(0));
    assert_eq!(p.stat("/tmp/fa").unwrap().size, 100);
    assert_eq!(p.call(sys_fallocate, &[fd, 1, 0, 1000]), Ok(0));
    assert_eq!(p.stat("/tmp/fa").unwrap().size, 100);
    assert_eq!(
        p.call(sys_fallocate, &[fd, 2 | 1, 0, 10]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(p.call(sys_fallocate, &[fd, 0, 0, 0]), Err(Errno::EINVAL));
    assert_eq!(
        p.call(sys_fallocate, &[3, 0, 0, 10]),
        Err(Errno::EBADF),
        "read-only"
    );
    // fadvise64 and readahead.
    assert_eq!(p.call(sys_fadvise64, &[fd, 0, 0, 2]), Ok(0));
    assert_eq!(p.call(sys_fadvise64, &[fd, 0, 0, 9]), Err(Errno::EINVAL));
    let fds = p.alloc(8);
    p.call(sys_pipe, &[fds]).unwrap();
    let r = u32_at(&p.get(fds, 8), 0) as usize;
    assert_eq!(p.call(sys_fadvise64, &[r, 0, 0, 0]), Err(Errno::ESPIPE));
    assert_eq!(p.call(sys_readahead, &[r, 0, 10]), Err(Errno::EINVAL));
    assert_eq!(p.call(sys_readahead, &[3, 0, 10]), Ok(0));
    assert_eq!(p.call(sys_sync, &[]), Ok(0));
    assert_eq!(p.call(sys_syncfs, &[50]), Err(Errno::EBADF));
    // utimes with microseconds.
    let mut tv = Vec::new();
    for (s, us) in [(1i64, 2i64), (3, 4)] {
        tv.extend_from_slice(&s.to_le_bytes());
        tv.extend_from_slice(&us.to_le_bytes());
    }
    let t = p.bytes(&tv);
    let path = p.s("/tmp/fa");
    assert_eq!(p.call(sys_utimes, &[path, t]), Ok(0));
    assert_eq!(p.stat("/tmp/fa").unwrap().mtime_ns, 3_000_004_000);
    tv[8..16].copy_from_slice(&1_000_000i64.to_le_bytes());
    let bad = p.bytes(&tv);
    assert_eq!(p.call(sys_utimes, &[path, bad]), Err(Errno::EINVAL));
}

// ---- poll, select, epoll, eventfd, timerfd ----

mod readiness {
    use super::*;
    use crate::fs::pollbits::*;
    use crate::linux::files::anon::*;
    use crate::linux::files::epoll::{flags::*, *};
    use crate::linux::files::poll::*;

    fn pipe(p: &mut Fake, flags: u32) -> (usize, usize) {
        let a = p.alloc(8);
        p.call(sys_pipe2, &[a, flags as usize]).unwrap();
        let b = p.get(a, 8);
        (u32_at(&b, 0) as usize, u32_at(&b, 4) as usize)
    }

    fn pollfds(p: &mut Fake, fds: &[(i32, u32)]) -> usize {
        let mut raw = Vec::new();
        for &(fd, ev) in fds {
            raw.extend_from_slice(&fd.to_le_bytes());
            raw.extend_from_slice(&(ev as u16).to_le_bytes());
            raw.extend_from_slice(&0u16.to_le_bytes());
        }
        p.bytes(&raw)
    }

    fn revents(p: &Fake, a: usize, n: usize) -> Vec<u32> {
        let b = p.get(a, n * 8);
        (0..n)
            .map(|i| u32::from(u16::from_le_bytes([b[i * 8 + 6], b[i * 8 + 7]])))
            .collect()
    }

    #[test]
    fn poll_on_a_pipe_follows_linux() {
        let mut p = fake();
        let (r, w) = pipe(&mut p, 0);
        let a = pollfds(
            &mut p,
            &[
                (r as i32, POLLIN),
                (w as i32, POLLOUT),
                (-1, POLLIN),
                (99, POLLIN),
            ],
        );
        assert_eq!(p.call(sys_poll, &[a, 4, 0]), Ok(2));
        assert_eq!(revents(&p, a, 4), [0, POLLOUT, 0, POLLNVAL]);
        p.write_str(w, b"hi").unwrap();
        assert_eq!(p.call(sys_poll, &[a, 3, 0]), Ok(2));
        assert_eq!(revents(&p, a, 3), [POLLIN, POLLOUT, 0]);
        p.call(sys_close, &[w]).unwrap();
        let a = pollfds(&mut p, &[(r as i32, POLLIN)]);
        assert_eq!(p.call(sys_poll, &[a, 1, 0]), Ok(1));
        assert_eq!(revents(&p, a, 1), [POLLIN | POLLHUP]);
        // POLLHUP is reported even when not asked for.
        p.read_n(r, 2).unwrap();
        let a = pollfds(&mut p, &[(r as i32, 0)]);
        assert_eq!(p.call(sys_poll, &[a, 1, 0]), Ok(1));
        assert_eq!(revents(&p, a, 1), [POLLHUP]);
        assert_eq!(p.call(sys_poll, &[BAD, 1, 0]), Err(Errno::EFAULT));
        assert_eq!(p.call(sys_poll, &[a, 1_000_000, 0]), Err(Errno::EINVAL));
    }

    #[test]
    fn poll_times_out_and_ppoll_checks_its_arguments() {
        let mut p = fake();
        let (r, _w) = pipe(&mut p, 0);
        let a = pollfds(&mut p, &[(r as i32, POLLIN)]);
        let t0 = crate::fs::waitq::monotonic_ns();
        assert_eq!(p.call(sys_poll, &[a, 1, 30]), Ok(0));
        assert!(crate::fs::waitq::monotonic_ns() - t0 >= 30_000_000);
        let ts = p.bytes(&encode_timespec(20_000_000));
        assert_eq!(p.call(sys_ppoll, &[a, 1, ts, 0, 0]), Ok(0));
        assert_eq!(p.get(ts, 16), encode_timespec(0), "time left written back");
        let bad = p.bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0xca, 0x9a, 0x3b, 0, 0, 0, 0]);
        assert_eq!(p.call(sys_ppoll, &[a, 1, bad, 0, 0]), Err(Errno::EINVAL));
        let mask = p.bytes(&[0; 8]);
        let zero = p.bytes(&encode_timespec(0));
        assert_eq!(
            p.call(sys_ppoll, &[a, 1, zero, mask, 4]),
            Err(Errno::EINVAL)
        );
        assert_eq!(p.call(sys_ppoll, &[a, 1, zero, mask, 8]), Ok(0));
    }

    #[test]
    fn a_writer_thread_wakes_poll() {
        let mut p = fake();
        let (r, _w) = pipe(&mut p, 0);
        let wf = p.files.get(_w).unwrap();
        let a = pollfds(&mut p, &[(r as i32, POLLIN)]);
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            wf.write(b"x").unwrap();
        });
        assert_eq!(p.call(sys_poll, &[a, 1, usize::MAX]), Ok(1));
        t.join().unwrap();
    }

    #[test]
    fn fd_set_helpers() {
        assert_eq!(fdset_bytes(0), 0);
        assert_eq!(fdset_bytes(1), 8);
        assert_eq!(fdset_bytes(65), 16);
        assert_eq!(select_max_fds(3), 64);
        assert_eq!(select_max_fds(65), 128);
        assert_eq!(select_max_fds(129), 256);
        assert_eq!(select_max_fds(257), 512);
        let mut sets = FdSets::default();
        sets.sets[0] = vec![0b1010, 0, 0, 0, 0, 0, 0, 0];
        sets.sets[1] = vec![0b0100, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(sets.wanted(64), [1, 2, 3]);
        let (out, n) = sets.results(&[1, 2, 3], |fd| if fd == 3 { POLLIN } else { POLLOUT });
        assert_eq!(n, 2);
        assert_eq!(out.sets[0][0], 0b1000);
        assert_eq!(out.sets[1][0], 0b0100);
        assert!(out.sets[2].is_empty());
    }

    #[test]
    fn select_reports_sets_and_rejects_closed_descriptors() {
        let mut p = fake();
        let (r, w) = pipe(&mut p, 0);
        let set = |fds: &[usize]| {
            let mut b = [0u8; 8];
            for &fd in fds {
                b[fd / 8] |= 1 << (fd % 8);
            }
            b
        };
        let rd = p.bytes(&set(&[r]));
        let wr = p.bytes(&set(&[w]));
        let tv = p.bytes(&[0; 16]);
        assert_eq!(p.call(sys_select, &[w + 1, rd, wr, 0, tv]), Ok(1));
        assert_eq!(p.get(rd, 8), [0; 8]);
        assert_eq!(p.get(wr, 8), set(&[w]));
        p.write_str(w, b"z").unwrap();
        let rd = p.bytes(&set(&[r]));
        assert_eq!(p.call(sys_select, &[w + 1, rd, 0, 0, tv]), Ok(1));
        assert_eq!(p.get(rd, 8), set(&[r]));
        let closed = p.bytes(&set(&[40]));
        assert_eq!(
            p.call(sys_select, &[41, closed, 0, 0, tv]),
            Err(Errno::EBADF)
        );
        assert_eq!(
            p.call(sys_select, &[usize::MAX, 0, 0, 0, tv]),
            Err(Errno::EINVAL)
        );
        // Bits past the table's size are ignored (nfds is clamped).
        let far = p.bytes(&[0u8; 128]);
        p.mem[far - BASE + 127] = 0x80;
        assert_eq!(p.call(sys_select, &[1024, far, 0, 0, tv]), Ok(0));
        // A timeval's microseconds carry; the time left is written back.
        let tv = p.bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x4e, 0, 0, 0, 0, 0, 0]);
        let rd = p.bytes(&set(&[0]));
        let empty_r = pipe(&mut p, 0).0;
        let rd2 = p.bytes(&set(&[empty_r]));
        let _ = rd;
        assert_eq!(p.call(sys_select, &[empty_r + 1, rd2, 0, 0, tv]), Ok(0));
        assert_eq!(p.get(tv, 16), [0; 16]);
    }

    fn ev(p: &mut Fake, events: u32, data: u64) -> usize {
        p.bytes(&encode_event(events, data, EVENT_SIZE))
    }

    fn wait(p: &mut Fake, ep: usize, max: usize, timeout: i32) -> Vec<(u32, u64)> {
        let out = p.alloc(EVENT_SIZE * max);
        let n = p
            .call(sys_epoll_wait, &[ep, out, max, timeout as isize as usize])
            .unwrap();
        let raw = p.get(out, n * EVENT_SIZE);
        raw.chunks(EVENT_SIZE)
            .map(|c| decode_event(c, EVENT_SIZE))
            .collect()
    }

    fn ctl(
        p: &mut Fake,
        ep: usize,
        op: usize,
        fd: usize,
        events: u32,
        data: u64,
    ) -> KResult<usize> {
        let e = ev(p, events, data);
        p.call(sys_epoll_ctl, &[ep, op, fd, e])
    }

    #[test]
    fn interest_bookkeeping() {
        let mut lt = Interest::new(POLLIN, 7, 0);
        assert_eq!(lt.events, POLLIN | POLLERR | POLLHUP);
        assert_eq!(lt.take(POLLIN | POLLRDNORM | POLLOUT, 0), POLLIN);
        assert_eq!(lt.take(POLLIN, 0), POLLIN, "level: again while ready");
        let mut et = Interest::new(POLLIN | EPOLLET, 0, 5);
        assert_eq!(et.take(0, 5), 0, "fresh but not ready");
        assert_eq!(et.take(POLLIN, 5), 0, "no new event since");
        assert_eq!(et.take(POLLIN, 6), POLLIN);
        assert_eq!(et.take(POLLIN, 6), 0);
        assert_eq!(et.peek(POLLIN, 7), POLLIN);
        assert_eq!(et.peek(POLLIN, 7), POLLIN, "peek changes nothing");
        let mut one = Interest::new(POLLIN | EPOLLONESHOT, 0, 0);
        assert_eq!(one.take(POLLIN, 0), POLLIN);
        assert_eq!(one.take(POLLIN, 1), 0);
        assert!(one.disabled);
        assert_eq!(encode_event(1, 2, 12).len(), 12);
        assert_eq!(
            decode_event(&encode_event(5, u64::MAX - 1, 16), 16),
            (5, u64::MAX - 1)
        );
    }

    #[test]
    fn epoll_level_edge_and_oneshot_on_a_pipe() {
        let mut p = fake();
        let ep = p.call(sys_epoll_create1, &[0]).unwrap();
        let (r, w) = pipe(&mut p, O_NONBLOCK);
        let (r2, w2) = pipe(&mut p, O_NONBLOCK);
        let (r3, w3) = pipe(&mut p, O_NONBLOCK);
        ctl(&mut p, ep, EPOLL_CTL_ADD, r, POLLIN, 0x1111_2222_3333_4444).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_ADD, r2, POLLIN | EPOLLET, 2).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_ADD, r3, POLLIN | EPOLLONESHOT, 3).unwrap();
        assert!(wait(&mut p, ep, 8, 0).is_empty());
        for fd in [w, w2, w3] {
            p.write_str(fd, b"ab").unwrap();
        }
        let got = wait(&mut p, ep, 8, 0);
        assert_eq!(got.len(), 3);
        assert!(got.contains(&(POLLIN, 0x1111_2222_3333_4444)));
        assert!(got.contains(&(POLLIN, 2)) && got.contains(&(POLLIN, 3)));
        // Still ready: only the level-triggered entry comes back.
        assert_eq!(wait(&mut p, ep, 8, 0), [(POLLIN, 0x1111_2222_3333_4444)]);
        // A new write is a new edge; the one-shot entry stays quiet.
        p.write_str(w2, b"c").unwrap();
        p.write_str(w3, b"c").unwrap();
        let got = wait(&mut p, ep, 8, 0);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(POLLIN, 2)));
        // MOD re-arms the one-shot entry (and may change data).
        ctl(&mut p, ep, EPOLL_CTL_MOD, r3, POLLIN | EPOLLONESHOT, 33).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_DEL, r, 0, 0).unwrap();
        assert_eq!(wait(&mut p, ep, 8, 0), [(POLLIN, 33)]);
        // Writer closed: HUP, without asking.
        p.call(sys_close, &[w2]).unwrap();
        assert_eq!(wait(&mut p, ep, 8, 0), [(POLLIN | POLLHUP, 2)]);
        // maxevents 1: entries take turns.
        ctl(&mut p, ep, EPOLL_CTL_ADD, r, POLLIN, 1).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_MOD, r3, POLLIN, 3).unwrap();
        let a = wait(&mut p, ep, 1, 0);
        let b = wait(&mut p, ep, 1, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn epoll_ctl_errors() {
        let mut p = fake();
        let ep = p.call(sys_epoll_create, &[1]).unwrap();
        assert_eq!(p.call(sys_epoll_create, &[0]), Err(Errno::EINVAL));
        assert_eq!(p.call(sys_epoll_create1, &[1]), Err(Errno::EINVAL));
        let (r, _w) = pipe(&mut p, 0);
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_MOD, r, POLLIN, 0),
            Err(Errno::ENOENT)
        );
        assert_eq!(ctl(&mut p, ep, EPOLL_CTL_DEL, r, 0, 0), Err(Errno::ENOENT));
        ctl(&mut p, ep, EPOLL_CTL_ADD, r, POLLIN, 0).unwrap();
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_ADD, r, POLLIN, 0),
            Err(Errno::EEXIST)
        );
        assert_eq!(ctl(&mut p, ep, 9, r, POLLIN, 0), Err(Errno::EINVAL));
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_ADD, ep, POLLIN, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            ctl(&mut p, r, EPOLL_CTL_ADD, r, POLLIN, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_ADD, 77, POLLIN, 0),
            Err(Errno::EBADF)
        );
        assert_eq!(
            ctl(&mut p, 77, EPOLL_CTL_ADD, r, POLLIN, 0),
            Err(Errno::EBADF)
        );
        let file = p.open("/etc/hostname", O_RDONLY, 0).unwrap();
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_ADD, file, POLLIN, 0),
            Err(Errno::EPERM)
        );
        let e = p.bytes(&[0; 16]);
        assert_eq!(
            p.call(sys_epoll_ctl, &[ep, EPOLL_CTL_ADD, r, BAD]),
            Err(Errno::EFAULT)
        );
        let _ = e;
        // EPOLLEXCLUSIVE: ADD only, with in/out/err/hup/et bits only.
        let (r2, _w2) = pipe(&mut p, 0);
        assert_eq!(
            ctl(
                &mut p,
                ep,
                EPOLL_CTL_ADD,
                r2,
                POLLIN | POLLPRI | EPOLLEXCLUSIVE,
                0
            ),
            Err(Errno::EINVAL)
        );
        ctl(&mut p, ep, EPOLL_CTL_ADD, r2, POLLIN | EPOLLEXCLUSIVE, 0).unwrap();
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_MOD, r2, POLLIN, 0),
            Err(Errno::EINVAL)
        );
        // Nesting: a cycle is ELOOP.
        let ep2 = p.call(sys_epoll_create1, &[0]).unwrap();
        ctl(&mut p, ep2, EPOLL_CTL_ADD, ep, POLLIN, 0).unwrap();
        assert_eq!(
            ctl(&mut p, ep, EPOLL_CTL_ADD, ep2, POLLIN, 0),
            Err(Errno::ELOOP)
        );
        // epoll_wait arguments.
        let out = p.alloc(64);
        assert_eq!(p.call(sys_epoll_wait, &[ep, out, 0, 0]), Err(Errno::EINVAL));
        assert_eq!(p.call(sys_epoll_wait, &[r, out, 1, 0]), Err(Errno::EINVAL));
        assert_eq!(p.call(sys_epoll_wait, &[77, out, 1, 0]), Err(Errno::EBADF));
    }

    #[test]
    fn closing_the_last_descriptor_removes_the_entry() {
        let mut p = fake();
        let ep = p.call(sys_epoll_create1, &[0]).unwrap();
        let (r, w) = pipe(&mut p, 0);
        p.write_str(w, b"x").unwrap();
        let dup = p.call(sys_dup, &[r]).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_ADD, r, POLLIN, 5).unwrap();
        p.call(sys_close, &[r]).unwrap();
        // The open file lives on through `dup`: still reported, under the
        // data it was added with.
        assert_eq!(wait(&mut p, ep, 4, 0), [(POLLIN, 5)]);
        p.call(sys_close, &[dup]).unwrap();
        assert!(wait(&mut p, ep, 4, 0).is_empty());
        // The descriptor number is free for a new entry.
        let (r2, _w2) = pipe(&mut p, 0);
        assert_eq!(r2, r);
        ctl(&mut p, ep, EPOLL_CTL_ADD, r2, POLLOUT, 6).unwrap();
        let epf = p.files.get(ep).unwrap();
        let inner = epf.inode().as_any().downcast_ref::<Epoll>().unwrap();
        assert_eq!(inner.len(), 1);
    }

    #[test]
    fn an_epoll_is_pollable_and_a_thread_wakes_its_waiter() {
        let mut p = fake();
        let ep = p.call(sys_epoll_create1, &[0]).unwrap();
        let (r, w) = pipe(&mut p, 0);
        ctl(&mut p, ep, EPOLL_CTL_ADD, r, POLLIN | EPOLLET, 9).unwrap();
        let a = pollfds(&mut p, &[(ep as i32, POLLIN)]);
        assert_eq!(p.call(sys_poll, &[a, 1, 0]), Ok(0));
        let wf = p.files.get(w).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            wf.write(b"x").unwrap();
        });
        assert_eq!(wait(&mut p, ep, 4, -1), [(POLLIN, 9)]);
        t.join().unwrap();
        p.write_str(w, b"y").unwrap();
        assert_eq!(p.call(sys_poll, &[a, 1, 0]), Ok(1));
        assert_eq!(revents(&p, a, 1), [POLLIN]);
        // An epoll inside an epoll.
        let outer = p.call(sys_epoll_create1, &[0]).unwrap();
        ctl(&mut p, outer, EPOLL_CTL_ADD, ep, POLLIN, 42).unwrap();
        assert_eq!(wait(&mut p, outer, 4, 0), [(POLLIN, 42)]);
    }

    #[test]
    fn eventfd_calls() {
        let mut p = fake();
        assert_eq!(p.call(sys_eventfd2, &[0, 0x10]), Err(Errno::EINVAL));
        let e = p
            .call(sys_eventfd2, &[3, (EFD_SEMAPHORE | EFD_NONBLOCK) as usize])
            .unwrap();
        assert_eq!(p.files.get(e).unwrap().path(), "anon_inode:[eventfd]");
        for _ in 0..3 {
            assert_eq!(p.read_n(e, 8).unwrap(), 1u64.to_ne_bytes());
        }
        assert_eq!(p.read_n(e, 8), Err(Errno::EAGAIN));
        assert_eq!(p.read_n(e, 4), Err(Errno::EINVAL));
        assert_eq!(p.write_str(e, &5u64.to_ne_bytes()), Ok(8));
        assert_eq!(p.write_str(e, &[1, 2]), Err(Errno::EINVAL));
        let e2 = p.call(sys_eventfd, &[0]).unwrap();
        p.write_str(e2, &2u64.to_ne_bytes()).unwrap();
        p.write_str(e2, &3u64.to_ne_bytes()).unwrap();
        assert_eq!(p.read_n(e2, 8).unwrap(), 5u64.to_ne_bytes());
        let ep = p.call(sys_epoll_create1, &[0]).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_ADD, e2, POLLIN | POLLOUT | EPOLLET, 1).unwrap();
        assert_eq!(wait(&mut p, ep, 2, 0), [(POLLOUT, 1)]);
        assert!(wait(&mut p, ep, 2, 0).is_empty());
        p.write_str(e2, &1u64.to_ne_bytes()).unwrap();
        assert_eq!(wait(&mut p, ep, 2, 0), [(POLLIN | POLLOUT, 1)]);
    }

    #[test]
    fn timerfd_calls() {
        let mut p = fake();
        assert_eq!(p.call(sys_timerfd_create, &[5, 0]), Err(Errno::EINVAL));
        assert_eq!(p.call(sys_timerfd_create, &[1, 1]), Err(Errno::EINVAL));
        let t = p
            .call(sys_timerfd_create, &[1, TFD_NONBLOCK as usize])
            .unwrap();
        let ms = 1_000_000;
        let spec = |interval: u64, value: u64| {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(&encode_timespec(interval));
            b[16..].copy_from_slice(&encode_timespec(value));
            b
        };
        let new = p.bytes(&spec(10 * ms, 10 * ms));
        let old = p.alloc(32);
        assert_eq!(p.call(sys_timerfd_settime, &[t, 0, new, old]), Ok(0));
        assert_eq!(p.get(old, 32), [0; 32]);
        assert_eq!(
            p.call(sys_timerfd_settime, &[t, 4, new, 0]),
            Err(Errno::EINVAL)
        );
        let (r, _w) = pipe(&mut p, 0);
        assert_eq!(
            p.call(sys_timerfd_settime, &[r, 0, new, 0]),
            Err(Errno::EINVAL)
        );
        assert_eq!(p.read_n(t, 8), Err(Errno::EAGAIN));
        let cur = p.alloc(32);
        p.call(sys_timerfd_gettime, &[t, cur]).unwrap();
        let got = decode_itimerspec(&p.get(cur, 32).try_into().unwrap()).unwrap();
        assert_eq!(got.interval_ns, 10 * ms);
        assert!(got.value_ns > 0 && got.value_ns <= 10 * ms);
        let ep = p.call(sys_epoll_create1, &[0]).unwrap();
        ctl(&mut p, ep, EPOLL_CTL_ADD, t, POLLIN, 8).unwrap();
        assert_eq!(wait(&mut p, ep, 1, 1000), [(POLLIN, 8)]);
        std::thread::sleep(std::time::Duration::from_millis(25));
        let n = u64::from_ne_bytes(p.read_n(t, 8).unwrap().try_into().unwrap());
        assert!(n >= 3, "interval expirations counted: {n}");
        // Disarm.
        let zero = p.bytes(&[0; 32]);
        p.call(sys_timerfd_settime, &[t, 0, zero, old]).unwrap();
        let was = decode_itimerspec(&p.get(old, 32).try_into().unwrap()).unwrap();
        assert_eq!(was.interval_ns, 10 * ms);
        assert_eq!(p.read_n(t, 8), Err(Errno::EAGAIN));
        // Invalid timespec.
        let bad = p.bytes(&spec(0, 0));
        p.mem[bad - BASE + 16 + 8] = 0xff;
        p.mem[bad - BASE + 16 + 15] = 0x7f;
        assert_eq!(
            p.call(sys_timerfd_settime, &[t, 0, bad, 0]),
            Err(Errno::EINVAL)
        );
    }
}
