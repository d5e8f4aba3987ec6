//! Calls that take a path: `open openat creat stat lstat fstat newfstatat
//! statx statfs fstatfs access faccessat faccessat2 readlink readlinkat
//! getcwd chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename renameat
//! renameat2 symlink symlinkat link linkat umask chmod fchmod fchmodat
//! chown lchown fchown fchownat utimensat utimes`.
//!
//! Paths are walked by [`crate::fs::Vfs`] (symlinks, `..`, mounts). The
//! app is root: permission bits never refuse it, except that `X_OK` needs
//! an execute bit somewhere, as for root on Linux.

use super::abi::{self, StatLayout};
use super::Cx;
use super::{
    base_dir, file, join, read_bytes, resolve_at, resolve_flags, AT_EACCESS, AT_EMPTY_PATH,
    AT_FDCWD, AT_NO_AUTOMOUNT, AT_REMOVEDIR, AT_STATX_SYNC_TYPE, AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
};
use crate::errno::{Errno, KResult};
use crate::fs::{FileType, Inode, NewNode, Parent, Times};
use crate::linux::fd::{oflag::*, OpenFile};
use crate::linux::Ctx;
use crate::syscall::Args;
use alloc::sync::Arc;

const CWD: usize = AT_FDCWD as usize;

fn parent_at(ctx: &dyn Ctx, dirfd: usize, path: &str) -> KResult<Parent> {
    let (base, _) = base_dir(ctx, dirfd, path)?;
    ctx.fs().vfs().resolve_parent(&base, path)
}

/// The last component of `path` (after trailing slashes).
fn last_name(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    t.rsplit('/').next().unwrap_or(t)
}

// ---- open ----

/// `openat(dirfd, path, flags, mode)`, Linux's checks in Linux's order:
/// EINVAL for O_CREAT|O_DIRECTORY and an access mode of 3, EOPNOTSUPP for
/// O_TMPFILE (not supported), EEXIST for O_CREAT|O_EXCL on anything that
/// exists, EISDIR for O_CREAT on a directory or a path ending in `/` and
/// for writing a directory, ENOTDIR for O_DIRECTORY on a non-directory,
/// ELOOP for O_NOFOLLOW on a symlink (unless O_PATH). O_TRUNC empties a
/// regular file. Mode bits are masked with the umask.
///
/// Simplified: O_CREAT through a dangling symlink is ENOENT (Linux
/// creates the link's target); opening a read-only synthetic file
/// (`/proc`) for writing succeeds and its writes fail with EACCES
/// (Linux refuses at open).
pub fn open_at(
    ctx: &mut dyn Ctx,
    dirfd: usize,
    path_addr: usize,
    flags: u32,
    mode: u32,
) -> KResult<usize> {
    if flags & O_TMPFILE_BIT != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let acc = flags & O_ACCMODE;
    if acc == O_ACCMODE || (flags & O_CREAT != 0 && flags & O_DIRECTORY != 0) {
        return Err(Errno::EINVAL);
    }
    let path = ctx.read_cstr(path_addr)?;
    let (base, base_path) = base_dir(ctx, dirfd, &path)?;
    let vfs = ctx.fs().vfs().clone();
    let path_only = flags & O_PATH != 0;
    let nofollow = flags & O_NOFOLLOW != 0;
    let node: Arc<dyn Inode> = if flags & O_CREAT != 0 && !path_only {
        if path.ends_with('/') {
            return Err(Errno::EISDIR);
        }
        let p = vfs.resolve_parent(&base, &path).map_err(|e| match e {
            // "." / ".." / "/" name a directory that exists.
            Errno::EINVAL | Errno::EEXIST => Errno::EISDIR,
            e => e,
        })?;
        match vfs.lookup_in(&p.dir, &p.name) {
            Ok(_) if flags & O_EXCL != 0 => return Err(Errno::EEXIST),
            Ok(n) if n.metadata().kind == FileType::Symlink => {
                if nofollow {
                    return Err(Errno::ELOOP);
                }
                vfs.resolve(&base, &path, true)?
            }
            Ok(n) => n,
            Err(Errno::ENOENT) => {
                let perm = mode & 0o7777 & !ctx.fs().umask();
                p.dir.create(&p.name, NewNode::File, perm)?
            }
            Err(e) => return Err(e),
        }
    } else {
        let n = vfs.resolve(&base, &path, !nofollow)?;
        if nofollow && !path_only && n.metadata().kind == FileType::Symlink {
            return Err(Errno::ELOOP);
        }
        n
    };
    let kind = node.metadata().kind;
    if flags & O_DIRECTORY != 0 && kind != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    if !path_only && kind == FileType::Directory && (acc != O_RDONLY || flags & O_CREAT != 0) {
        return Err(Errno::EISDIR);
    }
    if !path_only && flags & O_TRUNC != 0 && kind == FileType::Regular {
        node.truncate(0)?;
    }
    let shown = if path_only {
        flags & (O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW)
    } else {
        (flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC)) | O_LARGEFILE
    };
    let f = OpenFile::new(node, join(&base_path, &path), shown);
    ctx.files().insert(f, flags & O_CLOEXEC != 0)
}

pub fn sys_openat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    open_at(ctx, a[0], a[1], a[2] as u32, a[3] as u32)
}

pub fn sys_open(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    open_at(ctx, CWD, a[0], a[1] as u32, a[2] as u32)
}

/// `creat(path, mode)`: `open(path, O_CREAT|O_WRONLY|O_TRUNC, mode)`.
pub fn sys_creat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    open_at(ctx, CWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1] as u32)
}

// ---- stat ----

fn put_stat(ctx: &mut dyn Ctx, node: &Arc<dyn Inode>, addr: usize) -> KResult<usize> {
    let b = abi::encode_stat(&node.metadata(), StatLayout::NATIVE);
    ctx.copy_out(addr, &b)?;
    Ok(0)
}

pub fn sys_stat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], 0)?;
    put_stat(ctx, &node, a[1])
}

pub fn sys_lstat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], AT_SYMLINK_NOFOLLOW)?;
    put_stat(ctx, &node, a[1])
}

pub fn sys_fstat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    put_stat(ctx, f.inode(), a[1])
}

/// `newfstatat(dirfd, path, statbuf, flags)`: flags AT_SYMLINK_NOFOLLOW,
/// AT_EMPTY_PATH, AT_NO_AUTOMOUNT; others EINVAL.
pub fn sys_newfstatat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let flags = a[3] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let node = resolve_flags(ctx, a[0], a[1], flags)?;
    put_stat(ctx, &node, a[2])
}

/// `statx(dirfd, path, flags, mask, buf)`: every basic field is filled
/// whatever the mask asks (Linux may too); no birth time.
pub fn sys_statx(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    const STATX_RESERVED: u32 = 0x8000_0000;
    let flags = a[2] as u32;
    let valid = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE;
    if flags & !valid != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || a[3] as u32 & STATX_RESERVED != 0
    {
        return Err(Errno::EINVAL);
    }
    let node = resolve_flags(ctx, a[0], a[1], flags)?;
    ctx.copy_out(a[4], &abi::encode_statx(&node.metadata()))?;
    Ok(0)
}

fn put_statfs(ctx: &mut dyn Ctx, node: &Arc<dyn Inode>, addr: usize) -> KResult<usize> {
    let b = abi::encode_statfs(node.fs_magic(), node.metadata().dev);
    ctx.copy_out(addr, &b)?;
    Ok(0)
}

pub fn sys_statfs(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], 0)?;
    put_statfs(ctx, &node, a[1])
}

pub fn sys_fstatfs(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    put_statfs(ctx, f.inode(), a[1])
}

// ---- access ----

fn access_at(
    ctx: &mut dyn Ctx,
    dirfd: usize,
    path: usize,
    mode: usize,
    flags: u32,
) -> KResult<usize> {
    const X_OK: usize = 1;
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let node = resolve_flags(ctx, dirfd, path, flags & !AT_EACCESS)?;
    let m = node.metadata();
    if mode & X_OK != 0 && m.kind != FileType::Directory && m.perm & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

/// `access(path, mode)`: EINVAL for unknown mode bits; as root only
/// `X_OK` on a file without any execute bit fails (EACCES).
pub fn sys_access(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    access_at(ctx, CWD, a[0], a[1], 0)
}

pub fn sys_faccessat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    access_at(ctx, a[0], a[1], a[2], 0)
}

pub fn sys_faccessat2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    access_at(ctx, a[0], a[1], a[2], a[3] as u32)
}

// ---- symlinks, cwd ----

fn readlink_at(
    ctx: &mut dyn Ctx,
    dirfd: usize,
    path: usize,
    buf: usize,
    size: usize,
) -> KResult<usize> {
    if size as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    let node = resolve_flags(ctx, dirfd, path, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)?;
    let target = node.readlink()?;
    let n = target.len().min(size as i32 as usize);
    ctx.copy_out(buf, &target.as_bytes()[..n])?;
    Ok(n)
}

/// `readlink(path, buf, size)`: EINVAL for size <= 0 or a non-symlink;
/// the target is cut to `size` bytes, not NUL-terminated.
pub fn sys_readlink(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    readlink_at(ctx, CWD, a[0], a[1], a[2])
}

pub fn sys_readlinkat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    readlink_at(ctx, a[0], a[1], a[2], a[3])
}

/// `getcwd(buf, size)`: the raw call returns the length with the NUL;
/// ERANGE if it does not fit. The path is the one `chdir` computed (a
/// later rename of an ancestor is not reflected).
pub fn sys_getcwd(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, path) = ctx.fs().cwd();
    let mut bytes = path.into_bytes();
    bytes.push(0);
    if bytes.len() > a[1] {
        return Err(Errno::ERANGE);
    }
    ctx.copy_out(a[0], &bytes)?;
    Ok(bytes.len())
}

fn change_dir(ctx: &mut dyn Ctx, dir: Arc<dyn Inode>) -> KResult<usize> {
    if dir.metadata().kind != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let path = ctx.fs().vfs().path_of(&dir)?;
    ctx.fs().set_cwd(dir, path);
    Ok(0)
}

/// `chdir(path)`: ENOTDIR for non-directories; the new cwd's path is its
/// real path (symlinks resolved), as Linux's `getcwd` shows.
pub fn sys_chdir(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], 0)?;
    change_dir(ctx, node)
}

pub fn sys_fchdir(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    change_dir(ctx, f.inode().clone())
}

// ---- create and remove ----

fn mkdir_at(ctx: &mut dyn Ctx, dirfd: usize, path: usize, mode: usize) -> KResult<usize> {
    let path = ctx.read_cstr(path)?;
    if matches!(last_name(&path), "." | "..") {
        // Linux checks the name exists first: "." always does.
        resolve_at(ctx, dirfd, &path, true)?;
        return Err(Errno::EEXIST);
    }
    let p = parent_at(ctx, dirfd, &path)?;
    let perm = mode as u32 & 0o1777 & !ctx.fs().umask();
    p.dir.create(&p.name, NewNode::Directory, perm)?;
    Ok(0)
}

/// `mkdir(path, mode)`: EEXIST if anything has the name (`/`, `.`).
pub fn sys_mkdir(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    mkdir_at(ctx, CWD, a[0], a[1])
}

pub fn sys_mkdirat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    mkdir_at(ctx, a[0], a[1], a[2])
}

fn rmdir_at(ctx: &mut dyn Ctx, dirfd: usize, path: &str) -> KResult<usize> {
    match last_name(path) {
        "." => return Err(Errno::EINVAL),
        ".." => return Err(Errno::ENOTEMPTY),
        _ => {}
    }
    let p = parent_at(ctx, dirfd, path).map_err(|e| match e {
        Errno::EEXIST => Errno::EBUSY, // "/"
        e => e,
    })?;
    let vfs = ctx.fs().vfs().clone();
    let node = vfs.lookup_in(&p.dir, &p.name)?;
    if node.metadata().kind != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    if vfs.is_mount_point(&node) {
        return Err(Errno::EBUSY);
    }
    p.dir.rmdir(&p.name)?;
    Ok(0)
}

/// `rmdir(path)`: EINVAL for `.`, ENOTEMPTY for `..` and full
/// directories, ENOTDIR for non-directories, EBUSY for mount points.
pub fn sys_rmdir(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let path = ctx.read_cstr(a[0])?;
    rmdir_at(ctx, CWD, &path)
}

fn unlink_at(ctx: &mut dyn Ctx, dirfd: usize, path: &str) -> KResult<usize> {
    let p = parent_at(ctx, dirfd, path).map_err(|e| match e {
        Errno::EEXIST | Errno::EINVAL => Errno::EISDIR,
        e => e,
    })?;
    let vfs = ctx.fs().vfs().clone();
    let node = vfs.lookup_in(&p.dir, &p.name)?;
    if node.metadata().kind == FileType::Directory {
        return Err(Errno::EISDIR);
    }
    if path.ends_with('/') {
        return Err(Errno::ENOTDIR);
    }
    p.dir.unlink(&p.name)?;
    Ok(0)
}

/// `unlink(path)`: EISDIR for directories, ENOTDIR for `file/`.
pub fn sys_unlink(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let path = ctx.read_cstr(a[0])?;
    unlink_at(ctx, CWD, &path)
}

/// `unlinkat(dirfd, path, flags)`: `AT_REMOVEDIR` makes it `rmdir`;
/// other flags EINVAL.
pub fn sys_unlinkat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let flags = a[2] as u32;
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = ctx.read_cstr(a[1])?;
    if flags & AT_REMOVEDIR != 0 {
        rmdir_at(ctx, a[0], &path)
    } else {
        unlink_at(ctx, a[0], &path)
    }
}

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;

fn rename_at(ctx: &mut dyn Ctx, a: [usize; 4], flags: u32) -> KResult<usize> {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
        || (flags & RENAME_NOREPLACE != 0 && flags & RENAME_EXCHANGE != 0)
    {
        return Err(Errno::EINVAL);
    }
    // Exchange and whiteout need file-system support ramfs lacks.
    if flags & (RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
        return Err(Errno::EINVAL);
    }
    let old = ctx.read_cstr(a[1])?;
    let new = ctx.read_cstr(a[3])?;
    let busy = |e| match e {
        Errno::EEXIST | Errno::EINVAL => Errno::EBUSY,
        e => e,
    };
    let from = parent_at(ctx, a[0], &old).map_err(busy)?;
    let to = parent_at(ctx, a[2], &new).map_err(busy)?;
    let vfs = ctx.fs().vfs().clone();
    let node = vfs.lookup_in(&from.dir, &from.name)?;
    if vfs.is_mount_point(&node) {
        return Err(Errno::EBUSY);
    }
    let is_dir = node.metadata().kind == FileType::Directory;
    if !is_dir && (old.ends_with('/') || new.ends_with('/')) {
        return Err(Errno::ENOTDIR);
    }
    match vfs.lookup_in(&to.dir, &to.name) {
        Ok(_) if flags & RENAME_NOREPLACE != 0 => return Err(Errno::EEXIST),
        Ok(existing) if vfs.is_mount_point(&existing) => return Err(Errno::EBUSY),
        _ => {}
    }
    from.dir.rename(&from.name, &to.dir, &to.name)?;
    Ok(0)
}

/// `rename(old, new)`: Linux's rules via ramfs (ENOTEMPTY, EISDIR,
/// ENOTDIR, EINVAL for a directory into itself, EXDEV across mounts);
/// EBUSY for `.`/`..`/mount points.
pub fn sys_rename(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    rename_at(ctx, [CWD, a[0], CWD, a[1]], 0)
}

pub fn sys_renameat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    rename_at(ctx, [a[0], a[1], a[2], a[3]], 0)
}

/// `renameat2`: RENAME_NOREPLACE (EEXIST) is supported;
/// RENAME_EXCHANGE and RENAME_WHITEOUT answer EINVAL, as Linux does on a
/// file system without them.
pub fn sys_renameat2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    rename_at(ctx, [a[0], a[1], a[2], a[3]], a[4] as u32)
}

fn symlink_at(ctx: &mut dyn Ctx, target: usize, dirfd: usize, path: usize) -> KResult<usize> {
    let target = ctx.read_cstr(target)?;
    let path = ctx.read_cstr(path)?;
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let p = parent_at(ctx, dirfd, &path).map_err(|e| match e {
        Errno::EINVAL => Errno::EEXIST,
        e => e,
    })?;
    p.dir.create(&p.name, NewNode::Symlink(target), 0o777)?;
    Ok(0)
}

/// `symlink(target, path)`: ENOENT for an empty target, EEXIST if the
/// name is taken.
pub fn sys_symlink(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    symlink_at(ctx, a[0], CWD, a[1])
}

pub fn sys_symlinkat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    symlink_at(ctx, a[0], a[1], a[2])
}

fn link_at(ctx: &mut dyn Ctx, a: [usize; 4], flags: u32) -> KResult<usize> {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let follow = if flags & AT_SYMLINK_FOLLOW != 0 {
        0
    } else {
        AT_SYMLINK_NOFOLLOW
    };
    let old = resolve_flags(ctx, a[0], a[1], follow | (flags & AT_EMPTY_PATH))?;
    if old.metadata().kind == FileType::Directory {
        return Err(Errno::EPERM);
    }
    let new = ctx.read_cstr(a[3])?;
    let p = parent_at(ctx, a[2], &new).map_err(|e| match e {
        Errno::EINVAL => Errno::EEXIST,
        e => e,
    })?;
    p.dir.link(&p.name, &old)?;
    Ok(0)
}

/// `link(old, new)`: symlinks are not followed (linkat's
/// AT_SYMLINK_FOLLOW does); EPERM for directories, EEXIST, EXDEV.
pub fn sys_link(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    link_at(ctx, [CWD, a[0], CWD, a[1]], 0)
}

pub fn sys_linkat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    link_at(ctx, [a[0], a[1], a[2], a[3]], a[4] as u32)
}

// ---- attributes ----

/// `umask(mask)`: returns the previous mask.
pub fn sys_umask(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    Ok(ctx.fs().swap_umask(a[0] as u32) as usize)
}

pub fn sys_chmod(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], 0)?;
    node.set_perm(a[1] as u32 & 0o7777).map(|_| 0)
}

pub fn sys_fchmod(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    f.inode().set_perm(a[1] as u32 & 0o7777).map(|_| 0)
}

/// `fchmodat(dirfd, path, mode)` (the syscall has no flags argument).
pub fn sys_fchmodat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, a[0], a[1], 0)?;
    node.set_perm(a[2] as u32 & 0o7777).map(|_| 0)
}

fn id_arg(a: usize) -> Option<u32> {
    let id = a as u32;
    (id != u32::MAX).then_some(id)
}

pub fn sys_chown(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], 0)?;
    node.set_owner(id_arg(a[1]), id_arg(a[2])).map(|_| 0)
}

pub fn sys_lchown(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], AT_SYMLINK_NOFOLLOW)?;
    node.set_owner(id_arg(a[1]), id_arg(a[2])).map(|_| 0)
}

pub fn sys_fchown(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    f.inode().set_owner(id_arg(a[1]), id_arg(a[2])).map(|_| 0)
}

/// `fchownat(dirfd, path, uid, gid, flags)`; -1 leaves an id unchanged.
pub fn sys_fchownat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let flags = a[4] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let node = resolve_flags(ctx, a[0], a[1], flags)?;
    node.set_owner(id_arg(a[2]), id_arg(a[3])).map(|_| 0)
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `utimensat(dirfd, path, times, flags)`: a NULL `path` means `dirfd`
/// itself (futimens); NULL `times` sets both to now; UTIME_NOW and
/// UTIME_OMIT as Linux; EINVAL for nanoseconds out of range or unknown
/// flags.
pub fn sys_utimensat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let flags = a[3] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let now = crate::fs::now_ns();
    let times = if a[2] == 0 {
        Times {
            atime_ns: Some(now),
            mtime_ns: Some(now),
        }
    } else {
        let raw: [u8; 32] = read_bytes(ctx, a[2])?;
        let field = |i: usize| -> KResult<Option<u64>> {
            let word = |o: usize| i64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or_default());
            let (sec, nsec) = (word(i * 16), word(i * 16 + 8));
            match nsec {
                UTIME_NOW => Ok(Some(now)),
                UTIME_OMIT => Ok(None),
                0..=999_999_999 => Ok(Some(
                    (sec.max(0) as u64).saturating_mul(1_000_000_000) + nsec as u64,
                )),
                _ => Err(Errno::EINVAL),
            }
        };
        Times {
            atime_ns: field(0)?,
            mtime_ns: field(1)?,
        }
    };
    let node = if a[1] == 0 {
        if a[0] as i32 == AT_FDCWD {
            return Err(Errno::EFAULT);
        }
        file(ctx, a[0])?.inode().clone()
    } else {
        resolve_flags(ctx, a[0], a[1], flags)?
    };
    if times == Times::default() {
        return Ok(0);
    }
    node.set_times(times).map(|_| 0)
}

/// `utimes(path, times)`: `struct timeval[2]` (seconds, microseconds);
/// NULL sets both to now; EINVAL for microseconds out of range.
pub fn sys_utimes(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let node = resolve_flags(ctx, CWD, a[0], 0)?;
    let times = if a[1] == 0 {
        let now = crate::fs::now_ns();
        Times {
            atime_ns: Some(now),
            mtime_ns: Some(now),
        }
    } else {
        let raw: [u8; 32] = read_bytes(ctx, a[1])?;
        let field = |i: usize| -> KResult<Option<u64>> {
            let word = |o: usize| i64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or_default());
            let (sec, usec) = (word(i * 16), word(i * 16 + 8));
            if !(0..1_000_000).contains(&usec) {
                return Err(Errno::EINVAL);
            }
            Ok(Some(
                (sec.max(0) as u64).saturating_mul(1_000_000_000) + usec as u64 * 1000,
            ))
        };
        Times {
            atime_ns: field(0)?,
            mtime_ns: field(1)?,
        }
    };
    node.set_times(times).map(|_| 0)
}
