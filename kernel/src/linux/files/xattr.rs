//! Extended attributes: `getxattr lgetxattr fgetxattr listxattr
//! llistxattr flistxattr setxattr lsetxattr fsetxattr removexattr
//! lremovexattr fremovexattr`.
//!
//! No Skiff file system stores extended attributes: after the path or
//! descriptor is checked (ENOENT, EBADF, EFAULT as usual), lists are
//! empty and reading, setting or removing one is EOPNOTSUPP — what
//! programs (`ls`, `cp -a`, Python) take for "this file system has none".

use super::{file, resolve_flags, Cx, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use crate::errno::{Errno, KResult};
use crate::syscall::Args;

const CWD: usize = AT_FDCWD as usize;

/// Checks the attribute name: EFAULT if unreadable, ERANGE if empty or
/// longer than `XATTR_NAME_MAX` (255).
fn check_name(ctx: &mut Cx, addr: usize) -> KResult<()> {
    let name = ctx.read_cstr(addr)?;
    if name.is_empty() || name.len() > 255 {
        return Err(Errno::ERANGE);
    }
    Ok(())
}

fn by_path(ctx: &mut Cx, path: usize, name: Option<usize>, nofollow: bool) -> KResult<usize> {
    let flags = if nofollow { AT_SYMLINK_NOFOLLOW } else { 0 };
    resolve_flags(ctx, CWD, path, flags)?;
    match name {
        Some(n) => {
            check_name(ctx, n)?;
            Err(Errno::EOPNOTSUPP)
        }
        None => Ok(0),
    }
}

fn by_fd(ctx: &mut Cx, fd: usize, name: Option<usize>) -> KResult<usize> {
    file(ctx, fd)?;
    match name {
        Some(n) => {
            check_name(ctx, n)?;
            Err(Errno::EOPNOTSUPP)
        }
        None => Ok(0),
    }
}

pub fn sys_getxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], Some(a[1]), false)
}

pub fn sys_lgetxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], Some(a[1]), true)
}

pub fn sys_fgetxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_fd(ctx, a[0], Some(a[1]))
}

/// `listxattr(path, list, size)`: 0, the empty list.
pub fn sys_listxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], None, false)
}

pub fn sys_llistxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], None, true)
}

pub fn sys_flistxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_fd(ctx, a[0], None)
}

pub fn sys_setxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], Some(a[1]), false)
}

pub fn sys_lsetxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], Some(a[1]), true)
}

pub fn sys_fsetxattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_fd(ctx, a[0], Some(a[1]))
}

pub fn sys_removexattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], Some(a[1]), false)
}

pub fn sys_lremovexattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_path(ctx, a[0], Some(a[1]), true)
}

pub fn sys_fremovexattr(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    by_fd(ctx, a[0], Some(a[1]))
}
