//! Descriptor plumbing: `close close_range dup dup2 dup3 fcntl flock ioctl
//! pipe pipe2`.

use super::Cx;
use super::{abi, fd_arg, file, read_i32};
use crate::errno::{Errno, KResult};
use crate::fs::{pipe, FileType};
use crate::linux::fd::{oflag::*, OpenFile};
use crate::linux::Ctx;
use crate::syscall::Args;
use alloc::format;

/// `close(fd)`: EBADF if not open. The description is dropped here,
/// outside the table lock (a pipe end's last close wakes the other end).
pub fn sys_close(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = ctx.files().remove(fd_arg(a[0])?)?;
    drop(f);
    Ok(0)
}

/// `dup(fd)`: the lowest free descriptor, sharing offset and flags;
/// close-on-exec clear. EMFILE at the limit.
pub fn sys_dup(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    ctx.files().insert(f, false)
}

fn dup_to(ctx: &mut dyn Ctx, old: usize, new: usize, cloexec: bool) -> KResult<usize> {
    let f = file(ctx, old)?;
    let new = fd_arg(new)?;
    let replaced = ctx.files().install_at(new, f, cloexec)?;
    drop(replaced);
    Ok(new)
}

/// `dup2(old, new)`: `new` is closed first if open; `old == new` returns
/// `new` if `old` is open. EBADF for a bad `old` or `new` beyond the limit.
pub fn sys_dup2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[0] as i32 == a[1] as i32 {
        file(ctx, a[0])?;
        return Ok(a[1] as i32 as usize);
    }
    dup_to(ctx, a[0], a[1], false)
}

/// `dup3(old, new, flags)`: EINVAL for `old == new` or flags other than
/// O_CLOEXEC.
pub fn sys_dup3(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let flags = a[2] as u32;
    if flags & !O_CLOEXEC != 0 || a[0] as i32 == a[1] as i32 {
        return Err(Errno::EINVAL);
    }
    dup_to(ctx, a[0], a[1], flags & O_CLOEXEC != 0)
}

const F_DUPFD: usize = 0;
const F_GETFD: usize = 1;
const F_SETFD: usize = 2;
const F_GETFL: usize = 3;
const F_SETFL: usize = 4;
const F_GETLK: usize = 5;
const F_SETLK: usize = 6;
const F_SETLKW: usize = 7;
const F_SETOWN: usize = 8;
const F_GETOWN: usize = 9;
const F_OFD_GETLK: usize = 36;
const F_OFD_SETLK: usize = 37;
const F_OFD_SETLKW: usize = 38;
const F_DUPFD_CLOEXEC: usize = 1030;
const F_GETPIPE_SZ: usize = 1032;
pub const FD_CLOEXEC: usize = 1;

const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;

/// `fcntl(fd, cmd, arg)`: F_DUPFD(_CLOEXEC) (EINVAL for a negative or
/// too-high minimum), F_GETFD/F_SETFD (FD_CLOEXEC), F_GETFL/F_SETFL
/// (only O_APPEND, O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME change),
/// F_GETPIPE_SZ, F_GETOWN/F_SETOWN (no signal-driven I/O: owner 0).
///
/// Record locks: one process owns every file, so its own locks never
/// conflict with each other. F_SETLK/F_SETLKW (and the OFD variants)
/// check the `struct flock` (EFAULT, EINVAL for a bad type, EBADF for a
/// lock the access mode does not allow) and succeed without recording;
/// F_GETLK answers "unlocked" (`l_type = F_UNLCK`). Other commands EINVAL.
pub fn sys_fcntl(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let fd = fd_arg(a[0])?;
    let f = ctx.files().get(fd)?;
    match a[1] {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = a[2] as i32;
            if min < 0 {
                return Err(Errno::EINVAL);
            }
            ctx.files()
                .insert_from(min as usize, f, a[1] == F_DUPFD_CLOEXEC)
        }
        F_GETFD => Ok(if ctx.files().cloexec(fd)? {
            FD_CLOEXEC
        } else {
            0
        }),
        F_SETFD => ctx
            .files()
            .set_cloexec(fd, a[2] & FD_CLOEXEC != 0)
            .map(|_| 0),
        F_GETFL => Ok(f.flags() as usize),
        F_SETFL => {
            f.set_status_flags(a[2] as u32);
            Ok(0)
        }
        F_GETLK | F_OFD_GETLK => {
            let mut fl: [u8; abi::FLOCK_SIZE] = super::read_bytes(ctx, a[2])?;
            lock_type(&fl)?;
            fl[..2].copy_from_slice(&F_UNLCK.to_le_bytes());
            ctx.copy_out(a[2], &fl)?;
            Ok(0)
        }
        F_SETLK | F_SETLKW | F_OFD_SETLK | F_OFD_SETLKW => {
            let fl: [u8; abi::FLOCK_SIZE] = super::read_bytes(ctx, a[2])?;
            match lock_type(&fl)? {
                F_RDLCK if !f.can_read() => Err(Errno::EBADF),
                F_WRLCK if !f.can_write() => Err(Errno::EBADF),
                _ => Ok(0),
            }
        }
        F_GETOWN => Ok(0),
        F_SETOWN => Ok(0),
        F_GETPIPE_SZ if f.inode().metadata().kind == FileType::Fifo => Ok(pipe::CAPACITY),
        F_GETPIPE_SZ => Err(Errno::EBADF),
        _ => Err(Errno::EINVAL),
    }
}

fn lock_type(fl: &[u8; abi::FLOCK_SIZE]) -> KResult<i16> {
    let t = i16::from_le_bytes([fl[0], fl[1]]);
    match t {
        F_RDLCK | F_WRLCK | F_UNLCK => Ok(t),
        _ => Err(Errno::EINVAL),
    }
}

pub const TCGETS: usize = 0x5401;
pub const TCSETS: usize = 0x5402;
pub const TCSETSW: usize = 0x5403;
pub const TCSETSF: usize = 0x5404;
pub const TIOCGWINSZ: usize = 0x5413;
pub const TIOCSWINSZ: usize = 0x5414;
pub const FIONREAD: usize = 0x541b;
pub const FIONBIO: usize = 0x5421;
pub const FIONCLEX: usize = 0x5450;
pub const FIOCLEX: usize = 0x5451;

/// The console's terminal settings and size: one console per VM.
struct Tty {
    termios: [u8; abi::TERMIOS_SIZE],
    winsize: [u8; 8],
}

static TTY: spin::Mutex<Option<Tty>> = spin::Mutex::new(None);

fn with_tty<R>(f: impl FnOnce(&mut Tty) -> R) -> R {
    let mut g = TTY.lock();
    let tty = g.get_or_insert_with(|| Tty {
        termios: abi::default_termios(),
        winsize: abi::encode_winsize(24, 80),
    });
    f(tty)
}

/// `ioctl(fd, cmd, arg)`: on any descriptor FIONBIO, FIOCLEX, FIONCLEX;
/// FIONREAD on regular files (bytes past the position) and pipes; on
/// the console TCGETS/TCSETS(W/F) (settings are kept and read back; the
/// console does not act on them) and TIOCGWINSZ/TIOCSWINSZ (24x80 until
/// set). Anything else is ENOTTY, as Linux answers for files that are
/// not terminals.
pub fn sys_ioctl(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let fd = fd_arg(a[0])?;
    let f = ctx.files().get(fd)?;
    let tty = f.inode().is_tty();
    match a[1] {
        FIONBIO => {
            let on = read_i32(ctx, a[2])? != 0;
            let fl = f.flags() & SETFL_MASK;
            f.set_status_flags(if on {
                fl | O_NONBLOCK
            } else {
                fl & !O_NONBLOCK
            });
            Ok(0)
        }
        FIOCLEX => ctx.files().set_cloexec(fd, true).map(|_| 0),
        FIONCLEX => ctx.files().set_cloexec(fd, false).map(|_| 0),
        FIONREAD => {
            let n = fionread(&f)?;
            ctx.copy_out(a[2], &(n.min(i32::MAX as u64) as i32).to_le_bytes())?;
            Ok(0)
        }
        TCGETS if tty => {
            let t = with_tty(|t| t.termios);
            ctx.copy_out(a[2], &t)?;
            Ok(0)
        }
        TCSETS | TCSETSW | TCSETSF if tty => {
            let t: [u8; abi::TERMIOS_SIZE] = super::read_bytes(ctx, a[2])?;
            with_tty(|tty| tty.termios = t);
            Ok(0)
        }
        TIOCGWINSZ if tty => {
            let w = with_tty(|t| t.winsize);
            ctx.copy_out(a[2], &w)?;
            Ok(0)
        }
        TIOCSWINSZ if tty => {
            let w: [u8; 8] = super::read_bytes(ctx, a[2])?;
            with_tty(|t| t.winsize = w);
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

fn fionread(f: &OpenFile) -> KResult<u64> {
    let m = f.inode().metadata();
    if m.kind == FileType::Regular {
        return Ok(m.size.saturating_sub(f.offset()));
    }
    f.inode()
        .readable_bytes()
        .map(|n| n as u64)
        .ok_or(Errno::ENOTTY)
}

/// `pipe2(fds, flags)`: flags O_CLOEXEC, O_NONBLOCK, O_DIRECT (accepted;
/// the pipe stays a byte stream), others EINVAL. EMFILE if two
/// descriptors are not free; EFAULT (and nothing left open) if `fds` is
/// not writable.
pub fn pipe_with(ctx: &mut dyn Ctx, addr: usize, flags: u32) -> KResult<usize> {
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = pipe::new_pipe();
    let name = format!("pipe:[{}]", r.metadata().ino);
    let status = flags & (O_NONBLOCK | O_DIRECT);
    let cloexec = flags & O_CLOEXEC != 0;
    let rf = OpenFile::new(r, name.clone(), O_RDONLY | status);
    let wf = OpenFile::new(w, name, O_WRONLY | status);
    let files = ctx.files();
    let rfd = files.insert(rf, cloexec)?;
    let wfd = match files.insert(wf, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = files.remove(rfd);
            return Err(e);
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(rfd as i32).to_le_bytes());
    out[4..].copy_from_slice(&(wfd as i32).to_le_bytes());
    if let Err(e) = ctx.copy_out(addr, &out) {
        let _ = ctx.files().remove(rfd);
        let _ = ctx.files().remove(wfd);
        return Err(e);
    }
    Ok(0)
}

pub fn sys_pipe(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    pipe_with(ctx, a[0], 0)
}

pub fn sys_pipe2(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    pipe_with(ctx, a[0], a[1] as u32)
}

const CLOSE_RANGE_UNSHARE: usize = 2;
const CLOSE_RANGE_CLOEXEC: usize = 4;

/// `close_range(first, last, flags)`: EINVAL for `first > last` or
/// unknown flags; CLOSE_RANGE_CLOEXEC marks instead of closing;
/// CLOSE_RANGE_UNSHARE is accepted (the table is the process's own:
/// one process per VM).
pub fn sys_close_range(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (first, last, flags) = (a[0] as u32 as usize, a[1] as u32 as usize, a[2]);
    if first > last || flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let closed = ctx
        .files()
        .close_range(first, last, flags & CLOSE_RANGE_CLOEXEC != 0);
    drop(closed);
    Ok(0)
}

const LOCK_SH: usize = 1;
const LOCK_EX: usize = 2;
const LOCK_NB: usize = 4;
const LOCK_UN: usize = 8;

/// `flock(fd, op)`: EBADF, EINVAL for an unknown operation; otherwise
/// granted at once — the VM's one process never conflicts with itself
/// (simplified: two descriptions of one file in the same process would
/// conflict on Linux).
pub fn sys_flock(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    file(ctx, a[0])?;
    match a[1] & !LOCK_NB {
        LOCK_SH | LOCK_EX | LOCK_UN => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}
