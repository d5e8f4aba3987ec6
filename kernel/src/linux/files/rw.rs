//! Reading and writing: `read write readv writev pread64 pwrite64 preadv
//! pwritev lseek getdents64 sendfile copy_file_range truncate ftruncate
//! fallocate fsync fdatasync sync syncfs fadvise64 readahead`.
//!
//! Data moves through a kernel buffer of at most [`CHUNK`] bytes at a
//! time. A regular file is read or written chunk by chunk until the
//! request is done or the file comes up short; a stream (pipe, terminal)
//! gets one transfer, as Linux returns a short count there. When user
//! memory faults after some bytes moved, the call returns the count so
//! far (a read rewinds the offset past the bytes it could not deliver);
//! with nothing moved it is EFAULT.

use super::Cx;
use super::{abi, fd_arg, file, read_iovecs, read_u64, resolve_at, CHUNK, MAX_RW};
use crate::errno::{Errno, KResult};
use crate::fs::FileType;
use crate::linux::fd::{oflag, OpenFile};
use crate::linux::Ctx;
use crate::syscall::Args;
use alloc::vec;
use alloc::vec::Vec;

/// Where a transfer reads or writes: the file position, or `pread`'s.
#[derive(Clone, Copy)]
enum At {
    Cursor,
    Pos(u64),
}

fn file_read(f: &OpenFile, at: At, buf: &mut [u8]) -> KResult<usize> {
    match at {
        At::Cursor => f.read(buf),
        At::Pos(p) => f.read_at(p, buf),
    }
}

fn file_write(f: &OpenFile, at: At, buf: &[u8]) -> KResult<usize> {
    match at {
        At::Cursor => f.write(buf),
        At::Pos(p) => f.write_at(p, buf),
    }
}

/// Reads up to `len` bytes into user memory at `addr`.
/// Bounce buffers for reads and writes (see [`bounce`](crate::linux::bounce)).
static RW_POOL: crate::linux::bounce::Pool = crate::linux::bounce::Pool::new(CHUNK, 4);

fn read_to_user(
    ctx: &mut dyn Ctx,
    f: &OpenFile,
    addr: usize,
    len: usize,
    at: At,
) -> KResult<usize> {
    let len = len.min(MAX_RW);
    let stream = !f.inode().seekable();
    let mut done = 0;
    let mut buf = RW_POOL.take(len.min(CHUNK));
    loop {
        let want = (len - done).min(CHUNK);
        let pos = match at {
            At::Pos(p) => At::Pos(p + done as u64),
            At::Cursor => At::Cursor,
        };
        let n = match file_read(f, pos, &mut buf[..want]) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => return Ok(done),
        };
        if ctx.copy_out(addr + done, &buf[..n]).is_err() {
            if matches!(at, At::Cursor) && !stream {
                f.set_offset(f.offset() - n as u64);
            }
            return if done > 0 {
                Ok(done)
            } else {
                Err(Errno::EFAULT)
            };
        }
        done += n;
        if stream || n < want || done == len {
            return Ok(done);
        }
    }
}

/// Writes `len` bytes from user memory at `addr`.
fn write_from_user(
    ctx: &mut dyn Ctx,
    f: &OpenFile,
    addr: usize,
    len: usize,
    at: At,
) -> KResult<usize> {
    let len = len.min(MAX_RW);
    let mut done = 0;
    let mut buf = RW_POOL.take(len.min(CHUNK));
    loop {
        let want = (len - done).min(CHUNK);
        if ctx.copy_in(addr + done, &mut buf[..want]).is_err() {
            return if done > 0 {
                Ok(done)
            } else {
                Err(Errno::EFAULT)
            };
        }
        let pos = match at {
            At::Pos(p) => At::Pos(p + done as u64),
            At::Cursor => At::Cursor,
        };
        let n = match file_write(f, pos, &buf[..want]) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => return Ok(done),
        };
        done += n;
        if n < want || done == len {
            return Ok(done);
        }
    }
}

fn pos_arg(a: usize) -> KResult<u64> {
    let p = a as i64;
    if p < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(p as u64)
}

/// `read(fd, buf, count)`.
pub fn sys_read(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    read_to_user(ctx, &f, a[1], a[2], At::Cursor)
}

/// `write(fd, buf, count)`.
pub fn sys_write(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let r = write_from_user(ctx, &f, a[1], a[2], At::Cursor);
    crate::linux::signal::sigpipe_on_epipe(ctx, r)
}

/// `pread64(fd, buf, count, pos)`: EINVAL for a negative position,
/// ESPIPE on pipes and terminals.
pub fn sys_pread64(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let pos = pos_arg(a[3])?;
    read_to_user(ctx, &f, a[1], a[2], At::Pos(pos))
}

pub fn sys_pwrite64(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let pos = pos_arg(a[3])?;
    write_from_user(ctx, &f, a[1], a[2], At::Pos(pos))
}

fn readv_at(ctx: &mut dyn Ctx, a: &Args, at: At) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let iov = read_iovecs(ctx, a[1], a[2])?;
    if !f.can_read() {
        return Err(Errno::EBADF);
    }
    if !f.inode().seekable() {
        // One read from a stream, scattered over the vectors.
        let total: usize = iov.iter().map(|v| v.1).sum::<usize>().min(CHUNK);
        let mut buf = vec![0u8; total];
        let n = f.read(&mut buf)?;
        let mut off = 0;
        for (base, len) in iov {
            let take = len.min(n - off);
            ctx.copy_out(base, &buf[off..off + take])?;
            off += take;
            if off == n {
                break;
            }
        }
        return Ok(n);
    }
    each_iovec(&iov, at, |base, len, at| {
        read_to_user(ctx, &f, base, len, at)
    })
}

fn writev_at(ctx: &mut dyn Ctx, a: &Args, at: At) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let iov = read_iovecs(ctx, a[1], a[2])?;
    if !f.can_write() {
        return Err(Errno::EBADF);
    }
    let total: usize = iov.iter().map(|v| v.1).sum();
    if total <= CHUNK {
        // Gathered into one write, so small pipe writes stay atomic.
        let mut buf = Vec::with_capacity(total);
        for (base, len) in iov {
            let start = buf.len();
            buf.resize(start + len, 0);
            ctx.copy_in(base, &mut buf[start..])?;
        }
        return file_write(&f, at, &buf);
    }
    each_iovec(&iov, at, |base, len, at| {
        write_from_user(ctx, &f, base, len, at)
    })
}

/// Runs `op` on each iovec in turn (the position advancing for
/// `preadv`/`pwritev`) until a short transfer; an error after some bytes
/// moved ends the call with the count so far, as Linux does.
fn each_iovec(
    iov: &[(usize, usize)],
    at: At,
    mut op: impl FnMut(usize, usize, At) -> KResult<usize>,
) -> KResult<usize> {
    let mut done = 0;
    for &(base, len) in iov {
        let at = match at {
            At::Pos(p) => At::Pos(p + done as u64),
            At::Cursor => At::Cursor,
        };
        let n = match op(base, len, at) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += n;
        if n < len {
            break;
        }
    }
    Ok(done)
}

/// `readv(fd, iov, iovcnt)`.
pub fn sys_readv(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    readv_at(ctx, a, At::Cursor)
}

pub fn sys_writev(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let r = writev_at(ctx, a, At::Cursor);
    crate::linux::signal::sigpipe_on_epipe(ctx, r)
}

/// `preadv(fd, iov, iovcnt, pos_l, pos_h)`: on 64-bit, `pos_l` is the
/// whole position.
pub fn sys_preadv(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let pos = pos_arg(a[3])?;
    readv_at(ctx, a, At::Pos(pos))
}

pub fn sys_pwritev(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let pos = pos_arg(a[3])?;
    writev_at(ctx, a, At::Pos(pos))
}

const SEEK_SET: usize = 0;
const SEEK_CUR: usize = 1;
const SEEK_END: usize = 2;
const SEEK_DATA: usize = 3;
const SEEK_HOLE: usize = 4;

/// `lseek(fd, offset, whence)`: ESPIPE on streams; EINVAL for a bad
/// `whence` or a negative result; ENXIO for SEEK_DATA/SEEK_HOLE at or
/// past the end (files have no holes here). On a directory the position
/// is the `getdents64` cookie and only SEEK_SET/SEEK_CUR apply.
pub fn sys_lseek(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    if !f.inode().seekable() {
        return Err(Errno::ESPIPE);
    }
    let off = a[1] as i64;
    let size = f.inode().metadata().size as i64;
    let cur = f.offset() as i64;
    let dir = f.is_dir();
    let new = match a[2] {
        SEEK_SET => Some(off),
        SEEK_CUR => cur.checked_add(off),
        SEEK_END if !dir => size.checked_add(off),
        SEEK_DATA | SEEK_HOLE if !dir => {
            if off < 0 {
                return Err(Errno::EINVAL);
            }
            if off >= size {
                return Err(Errno::ENXIO);
            }
            Some(if a[2] == SEEK_DATA { off } else { size })
        }
        _ => return Err(Errno::EINVAL),
    };
    let new = new.ok_or(Errno::EOVERFLOW)?;
    if new < 0 {
        return Err(Errno::EINVAL);
    }
    f.set_offset(new as u64);
    Ok(new as usize)
}

/// `getdents64(fd, dirp, count)`: `.` and `..` first, then the entries.
/// The file position is the index of the next entry (each record's
/// `d_off`), so a listing resumes where the last call stopped. EINVAL if
/// the first record does not fit; ENOTDIR on non-directories.
pub fn sys_getdents64(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    if !f.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let count = a[2].min(MAX_RW);
    let dir = f.inode().clone();
    let me = dir.metadata();
    let parent = ctx.fs().vfs().lookup_in(&dir, "..")?;
    let mut all = vec![
        (
            alloc::string::String::from("."),
            me.ino,
            FileType::Directory,
        ),
        (
            alloc::string::String::from(".."),
            parent.metadata().ino,
            FileType::Directory,
        ),
    ];
    all.extend(dir.entries()?);
    let mut out = Vec::new();
    let mut idx = f.offset() as usize;
    while let Some((name, ino, kind)) = all.get(idx) {
        if out.len() + abi::dirent_len(name.len()) > count {
            if out.is_empty() {
                return Err(Errno::EINVAL);
            }
            break;
        }
        abi::push_dirent(&mut out, *ino, idx as u64 + 1, *kind, name);
        idx += 1;
    }
    ctx.copy_out(a[1], &out)?;
    f.set_offset(idx as u64);
    Ok(out.len())
}

/// Copies up to `len` bytes from `src` to `dst` through a kernel buffer.
/// Stops at the source's end or a short write.
fn splice(src: &OpenFile, src_at: At, dst: &OpenFile, dst_at: At, len: usize) -> KResult<usize> {
    let len = len.min(MAX_RW);
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(CHUNK);
        let advance = |at: At| match at {
            At::Pos(p) => At::Pos(p + done as u64),
            At::Cursor => At::Cursor,
        };
        let n = match file_read(src, advance(src_at), &mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let w = match file_write(dst, advance(dst_at), &buf[..n]) {
            Ok(w) => w,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += w;
        if w < n || n < want || !src.inode().seekable() {
            break;
        }
    }
    Ok(done)
}

/// `sendfile(out_fd, in_fd, offset, count)`: from `*offset` (updated,
/// the input position untouched) or the input position. EBADF unless
/// `in_fd` is readable and `out_fd` writable; EINVAL when `out_fd` has
/// O_APPEND.
pub fn sys_sendfile(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let out = file(ctx, a[0])?;
    let inp = file(ctx, a[1])?;
    if !inp.can_read() || !out.can_write() {
        return Err(Errno::EBADF);
    }
    if out.flags() & oflag::O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    if a[2] == 0 {
        return splice(&inp, At::Cursor, &out, At::Cursor, a[3]);
    }
    let pos = read_u64(ctx, a[2])? as i64;
    if pos < 0 {
        return Err(Errno::EINVAL);
    }
    let n = splice(&inp, At::Pos(pos as u64), &out, At::Cursor, a[3])?;
    ctx.copy_out(a[2], &(pos as u64 + n as u64).to_le_bytes())?;
    Ok(n)
}

/// `copy_file_range(fd_in, off_in, fd_out, off_out, len, flags)`: between
/// regular files (EINVAL otherwise, EISDIR for directories); `flags` must
/// be 0; EBADF for a wrong access mode or O_APPEND output; EINVAL for
/// overlapping ranges of one file.
pub fn sys_copy_file_range(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[5] != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = file(ctx, a[0])?;
    let out = file(ctx, a[2])?;
    if !inp.can_read() || !out.can_write() || out.flags() & oflag::O_APPEND != 0 {
        return Err(Errno::EBADF);
    }
    for f in [&inp, &out] {
        match f.inode().metadata().kind {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
    }
    let read_pos = |ctx: &mut dyn Ctx, addr: usize, f: &OpenFile| -> KResult<u64> {
        if addr == 0 {
            return Ok(f.offset());
        }
        let p = read_u64(ctx, addr)? as i64;
        if p < 0 {
            return Err(Errno::EINVAL);
        }
        Ok(p as u64)
    };
    let pin = read_pos(ctx, a[1], &inp)?;
    let pout = read_pos(ctx, a[3], &out)?;
    let len = a[4].min(MAX_RW);
    let same = inp.inode().metadata().ino == out.inode().metadata().ino
        && inp.inode().metadata().dev == out.inode().metadata().dev;
    if same && pin < pout + len as u64 && pout < pin + len as u64 {
        return Err(Errno::EINVAL);
    }
    let n = splice(&inp, At::Pos(pin), &out, At::Pos(pout), len)?;
    let end_in = pin + n as u64;
    let end_out = pout + n as u64;
    if a[1] == 0 {
        inp.set_offset(end_in);
    } else {
        ctx.copy_out(a[1], &end_in.to_le_bytes())?;
    }
    if a[3] == 0 {
        out.set_offset(end_out);
    } else {
        ctx.copy_out(a[3], &end_out.to_le_bytes())?;
    }
    Ok(n)
}

/// `truncate(path, length)`: EISDIR on directories, EINVAL for a
/// negative length or a non-regular file.
pub fn sys_truncate(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let path = ctx.read_cstr(a[0])?;
    let len = a[1] as i64;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let node = resolve_at(ctx, super::AT_FDCWD as usize, &path, true)?;
    match node.metadata().kind {
        FileType::Regular => node.truncate(len as u64).map(|_| 0),
        FileType::Directory => Err(Errno::EISDIR),
        _ => Err(Errno::EINVAL),
    }
}

/// `ftruncate(fd, length)`: EINVAL unless a regular file open for writing.
pub fn sys_ftruncate(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let len = a[1] as i64;
    if len < 0 || !f.can_write() || f.inode().metadata().kind != FileType::Regular {
        return Err(Errno::EINVAL);
    }
    f.inode().truncate(len as u64).map(|_| 0)
}

/// `fsync(fd)`, `fdatasync(fd)`: memory file systems are always in sync;
/// EINVAL on pipes (as Linux), EBADF on bad descriptors.
pub fn sys_fsync(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = ctx.files().get(fd_arg(a[0])?)?;
    if f.inode().metadata().kind == FileType::Fifo {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `sync()`: memory file systems have nothing to write back.
pub fn sys_sync(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(0)
}

/// `syncfs(fd)`: EBADF for a bad descriptor, else nothing to do.
pub fn sys_syncfs(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    file(ctx, a[0]).map(|_| 0)
}

/// `fadvise64(fd, offset, len, advice)`: advice is accepted and has no
/// effect (files live in memory); EBADF, ESPIPE on pipes, EINVAL for an
/// unknown advice or a negative length.
pub fn sys_fadvise64(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    if f.inode().metadata().kind == FileType::Fifo {
        return Err(Errno::ESPIPE);
    }
    if a[3] > 5 || (a[2] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `readahead(fd, offset, count)`: EBADF unless open for reading, EINVAL
/// for non-regular files; nothing to read ahead.
pub fn sys_readahead(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    if !f.can_read() {
        return Err(Errno::EBADF);
    }
    if f.inode().metadata().kind != FileType::Regular {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

const FALLOC_FL_KEEP_SIZE: usize = 1;

/// `fallocate(fd, mode, offset, len)`: mode 0 extends the file to
/// `offset + len` if shorter, FALLOC_FL_KEEP_SIZE is a no-op (memory is
/// allocated on write); other modes (punching holes, collapsing)
/// EOPNOTSUPP. EBADF unless writable, EINVAL for a negative offset or a
/// length <= 0, ESPIPE on pipes, EISDIR on directories, ENODEV on devices.
pub fn sys_fallocate(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let f = file(ctx, a[0])?;
    let (mode, off, len) = (a[1], a[2] as i64, a[3] as i64);
    if !f.can_write() {
        return Err(Errno::EBADF);
    }
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    match f.inode().metadata().kind {
        FileType::Regular => {}
        FileType::Fifo => return Err(Errno::ESPIPE),
        FileType::Directory => return Err(Errno::EISDIR),
        _ => return Err(Errno::ENODEV),
    }
    if mode & !FALLOC_FL_KEEP_SIZE != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let end = off.checked_add(len).ok_or(Errno::EFBIG)? as u64;
    if mode == 0 && end > f.inode().metadata().size {
        f.inode().truncate(end)?;
    }
    Ok(0)
}
