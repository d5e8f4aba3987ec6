//! File, directory, pipe and descriptor system calls over the VFS, with
//! Linux's semantics and errno values. Handlers are arch-neutral; the few
//! layouts that differ (`struct stat`, some `O_*` bits) are chosen by the
//! target arch in [`abi`] and [`crate::linux::fd::oflag`].
//!
//! The calls, by module: [`rw`] reads, writes, offsets and directory
//! listing; [`path`] everything that takes a path; [`fdops`] descriptor
//! plumbing (`close`, `dup*`, `fcntl`, `ioctl`, `pipe*`); [`xattr`] the
//! extended-attribute calls (no attributes are stored); [`poll`] and
//! [`epoll`] readiness of many descriptors; [`anon`] eventfd and timerfd.
//!
//! Simplified (documented at each handler): the app runs as root, so
//! permission checks only refuse what root cannot do; advisory record
//! locks (`F_SETLK` and friends) are accepted and never conflict (one
//! process per VM); a write to a pipe without readers fails with EPIPE
//! (SIGPIPE is the signal code's). Blocking waits (pipes, eventfd,
//! timerfd, poll, select, epoll) end when a signal arrives.

pub mod abi;
pub mod anon;
pub mod epoll;
pub mod fdops;
pub mod path;
pub mod poll;
pub mod rw;
pub mod signalfd;
pub mod xattr;

#[cfg(test)]
mod tests;

use crate::errno::{Errno, KResult};
use crate::fs::Inode;
use crate::linux::fd::OpenFile;
use crate::linux::Ctx;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use anon::*;
use epoll::*;
use fdops::*;
use path::*;
use poll::*;
use rw::*;
use signalfd::*;
use xattr::*;

crate::syscall_table! {
    pub static ENTRIES: [dyn Ctx] = {
        read(Int, BufIn(2), Size) => sys_read;
        write(Int, BufOut(2), Size) => sys_write;
        readv(Int, Hex, Int) => sys_readv;
        writev(Int, Hex, Int) => sys_writev;
        pread64(Int, BufIn(2), Size, Int) => sys_pread64;
        pwrite64(Int, BufOut(2), Size, Int) => sys_pwrite64;
        preadv(Int, Hex, Int, Int) => sys_preadv;
        pwritev(Int, Hex, Int, Int) => sys_pwritev;
        lseek(Int, Int, Int) => sys_lseek;
        getdents64(Int, Hex, Size) => sys_getdents64;
        sendfile(Int, Int, Hex, Size) => sys_sendfile;
        copy_file_range(Int, Hex, Int, Hex, Size, Hex) => sys_copy_file_range;
        truncate(Str, Int) => sys_truncate;
        ftruncate(Int, Int) => sys_ftruncate;
        fsync(Int) => sys_fsync;
        fdatasync(Int) => sys_fsync;
        sync() => sys_sync;
        syncfs(Int) => sys_syncfs;
        fadvise64(Int, Int, Int, Int) => sys_fadvise64;
        readahead(Int, Int, Size) => sys_readahead;
        fallocate(Int, Int, Int, Int) => sys_fallocate;

        open(Str, OpenFlags, Mode) => sys_open;
        openat(DirFd, Str, OpenFlags, Mode) => sys_openat;
        creat(Str, Mode) => sys_creat;
        stat(Str, Hex) => sys_stat;
        lstat(Str, Hex) => sys_lstat;
        fstat(Int, Hex) => sys_fstat;
        newfstatat(DirFd, Str, Hex, Hex) => sys_newfstatat;
        statx(DirFd, Str, Hex, Hex, Hex) => sys_statx;
        statfs(Str, Hex) => sys_statfs;
        fstatfs(Int, Hex) => sys_fstatfs;
        access(Str, Int) => sys_access;
        faccessat(DirFd, Str, Int) => sys_faccessat;
        faccessat2(DirFd, Str, Int, Hex) => sys_faccessat2;
        readlink(Str, BufIn(2), Size) => sys_readlink;
        readlinkat(DirFd, Str, BufIn(3), Size) => sys_readlinkat;
        getcwd(BufIn(1), Size) => sys_getcwd;
        chdir(Str) => sys_chdir;
        fchdir(Int) => sys_fchdir;
        mkdir(Str, Mode) => sys_mkdir;
        mkdirat(DirFd, Str, Mode) => sys_mkdirat;
        rmdir(Str) => sys_rmdir;
        unlink(Str) => sys_unlink;
        unlinkat(DirFd, Str, Hex) => sys_unlinkat;
        rename(Str, Str) => sys_rename;
        renameat(DirFd, Str, DirFd, Str) => sys_renameat;
        renameat2(DirFd, Str, DirFd, Str, Hex) => sys_renameat2;
        symlink(Str, Str) => sys_symlink;
        symlinkat(Str, DirFd, Str) => sys_symlinkat;
        link(Str, Str) => sys_link;
        linkat(DirFd, Str, DirFd, Str, Hex) => sys_linkat;
        umask(Mode) => sys_umask;
        chmod(Str, Mode) => sys_chmod;
        fchmod(Int, Mode) => sys_fchmod;
        fchmodat(DirFd, Str, Mode) => sys_fchmodat;
        chown(Str, Int, Int) => sys_chown;
        lchown(Str, Int, Int) => sys_lchown;
        fchown(Int, Int, Int) => sys_fchown;
        fchownat(DirFd, Str, Int, Int, Hex) => sys_fchownat;
        utimensat(DirFd, Str, Hex, Hex) => sys_utimensat;
        utimes(Str, Hex) => sys_utimes;

        close(Int) => sys_close;
        close_range(Int, Int, Hex) => sys_close_range;
        flock(Int, Int) => sys_flock;
        dup(Int) => sys_dup;
        dup2(Int, Int) => sys_dup2;
        dup3(Int, Int, OpenFlags) => sys_dup3;
        fcntl(Int, Int, Hex) => sys_fcntl;
        ioctl(Int, Hex, Hex) => sys_ioctl;
        pipe(Hex) => sys_pipe;
        pipe2(Hex, OpenFlags) => sys_pipe2;

        poll(Hex, Int, Int) => sys_poll;
        ppoll(Hex, Int, Hex, Hex, Size) => sys_ppoll;
        select(Int, Hex, Hex, Hex, Hex) => sys_select;
        pselect6(Int, Hex, Hex, Hex, Hex, Hex) => sys_pselect6;
        epoll_create(Int) => sys_epoll_create;
        epoll_create1(Hex) => sys_epoll_create1;
        epoll_ctl(Int, Int, Int, Hex) => sys_epoll_ctl;
        epoll_wait(Int, Hex, Int, Int) => sys_epoll_wait;
        epoll_pwait(Int, Hex, Int, Int, Hex, Size) => sys_epoll_pwait;
        epoll_pwait2(Int, Hex, Int, Hex, Hex, Size) => sys_epoll_pwait2;
        eventfd(Int) => sys_eventfd;
        eventfd2(Int, Hex) => sys_eventfd2;
        timerfd_create(Int, Hex) => sys_timerfd_create;
        timerfd_settime(Int, Hex, Hex, Hex) => sys_timerfd_settime;
        timerfd_gettime(Int, Hex) => sys_timerfd_gettime;
        signalfd(Int, Hex, Size) => sys_signalfd;
        signalfd4(Int, Hex, Size, Hex) => sys_signalfd4;

        getxattr(Str, Str, Hex, Size) => sys_getxattr;
        lgetxattr(Str, Str, Hex, Size) => sys_lgetxattr;
        fgetxattr(Int, Str, Hex, Size) => sys_fgetxattr;
        listxattr(Str, Hex, Size) => sys_listxattr;
        llistxattr(Str, Hex, Size) => sys_llistxattr;
        flistxattr(Int, Hex, Size) => sys_flistxattr;
        setxattr(Str, Str, Hex, Size, Hex) => sys_setxattr;
        lsetxattr(Str, Str, Hex, Size, Hex) => sys_lsetxattr;
        fsetxattr(Int, Str, Hex, Size, Hex) => sys_fsetxattr;
        removexattr(Str, Str) => sys_removexattr;
        lremovexattr(Str, Str) => sys_lremovexattr;
        fremovexattr(Int, Str) => sys_fremovexattr;
    }
}

/// The context type handlers take: `dyn Ctx` with the `'static` bound
/// the table's `Handler<dyn Ctx>` names.
pub type Cx = dyn Ctx;

/// `AT_FDCWD`: paths relative to the working directory.
pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
pub const AT_REMOVEDIR: u32 = 0x200;
pub const AT_EACCESS: u32 = 0x200;
pub const AT_SYMLINK_FOLLOW: u32 = 0x400;
pub const AT_NO_AUTOMOUNT: u32 = 0x800;
pub const AT_EMPTY_PATH: u32 = 0x1000;
pub const AT_STATX_SYNC_TYPE: u32 = 0x6000;

/// Largest single read or write (Linux's `MAX_RW_COUNT`).
pub const MAX_RW: usize = 0x7fff_f000;
/// Kernel buffer size for copies between user memory and files.
pub const CHUNK: usize = 64 * 1024;

/// A descriptor argument: EBADF when negative.
pub(crate) fn fd_arg(a: usize) -> KResult<usize> {
    let fd = a as i32;
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    Ok(fd as usize)
}

/// The open file behind descriptor argument `a`.
pub(crate) fn file(ctx: &dyn Ctx, a: usize) -> KResult<Arc<OpenFile>> {
    ctx.files().get(fd_arg(a)?)
}

pub(crate) fn read_bytes<const N: usize>(ctx: &mut dyn Ctx, addr: usize) -> KResult<[u8; N]> {
    let mut b = [0u8; N];
    ctx.copy_in(addr, &mut b)?;
    Ok(b)
}

pub(crate) fn read_u64(ctx: &mut dyn Ctx, addr: usize) -> KResult<u64> {
    read_bytes::<8>(ctx, addr).map(u64::from_le_bytes)
}

pub(crate) fn read_i32(ctx: &mut dyn Ctx, addr: usize) -> KResult<i32> {
    read_bytes::<4>(ctx, addr).map(i32::from_le_bytes)
}

/// `struct iovec` array: (base, len) pairs. EINVAL for a count above
/// `IOV_MAX` (1024) or a total above `MAX_RW`.
pub(crate) fn read_iovecs(
    ctx: &mut dyn Ctx,
    addr: usize,
    count: usize,
) -> KResult<Vec<(usize, usize)>> {
    const IOV_MAX: usize = 1024;
    let count = count as i32;
    if !(0..=IOV_MAX as i32).contains(&count) {
        return Err(Errno::EINVAL);
    }
    let mut raw = alloc::vec![0u8; count as usize * 16];
    ctx.copy_in(addr, &mut raw)?;
    let mut total: usize = 0;
    let mut out = Vec::with_capacity(count as usize);
    for v in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(v[..8].try_into().unwrap_or_default()) as usize;
        let len = u64::from_le_bytes(v[8..].try_into().unwrap_or_default()) as usize;
        if (len as isize) < 0 {
            return Err(Errno::EINVAL);
        }
        total = total.saturating_add(len);
        out.push((base, len));
    }
    if total > isize::MAX as usize {
        return Err(Errno::EINVAL);
    }
    Ok(out)
}

/// The directory a path is relative to and that directory's absolute
/// path: the root for absolute paths, the working directory for
/// `AT_FDCWD`, else descriptor `dirfd` (EBADF; ENOTDIR if not a
/// directory). An empty path is ENOENT before anything else.
pub(crate) fn base_dir(
    ctx: &dyn Ctx,
    dirfd: usize,
    path: &str,
) -> KResult<(Arc<dyn Inode>, String)> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.starts_with('/') {
        return Ok((ctx.fs().root(), String::from("/")));
    }
    if dirfd as i32 == AT_FDCWD {
        return Ok(ctx.fs().cwd());
    }
    let f = file(ctx, dirfd)?;
    if !f.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok((f.inode().clone(), String::from(f.path())))
}

/// Resolves `path` relative to `dirfd`.
pub(crate) fn resolve_at(
    ctx: &dyn Ctx,
    dirfd: usize,
    path: &str,
    follow: bool,
) -> KResult<Arc<dyn Inode>> {
    let (base, _) = base_dir(ctx, dirfd, path)?;
    ctx.fs().vfs().resolve(&base, path, follow)
}

/// Resolves for the `*at` calls taking `AT_EMPTY_PATH` and
/// `AT_SYMLINK_NOFOLLOW`: an empty path with `AT_EMPTY_PATH` names
/// `dirfd` itself (or the working directory for `AT_FDCWD`).
pub(crate) fn resolve_flags(
    ctx: &mut dyn Ctx,
    dirfd: usize,
    path_addr: usize,
    flags: u32,
) -> KResult<Arc<dyn Inode>> {
    let path = ctx.read_cstr(path_addr)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        if dirfd as i32 == AT_FDCWD {
            return Ok(ctx.fs().cwd().0);
        }
        return Ok(file(ctx, dirfd)?.inode().clone());
    }
    resolve_at(ctx, dirfd, &path, flags & AT_SYMLINK_NOFOLLOW == 0)
}

/// `base` joined with `path`, `.` and `..` removed lexically: the name
/// `/proc/self/fd` shows for an open file.
pub(crate) fn join(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let start = if path.starts_with('/') { "" } else { base };
    for c in start.split('/').chain(path.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::new();
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}
