//! Socket system calls (`socket socketpair bind listen accept accept4
//! connect shutdown sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg
//! getsockname getpeername setsockopt getsockopt`): the Linux ABI side of
//! AF_UNIX ([`unix`]) and AF_INET/AF_INET6 ([`inet`], on the kernel's
//! network stack in [`crate::net`]).
//!
//! A socket is an [`Inode`] of kind `Socket` ([`SocketFile`]) installed in
//! the descriptor table, so `read`, `write`, `close`, `fcntl`, `fstat` and
//! poll/epoll work on it like on any file; the calls here find the
//! [`Socket`] behind a descriptor (ENOTSOCK otherwise), decode addresses
//! ([`addr`]) and move data between user memory and the socket.
//!
//! A write or send to a socket whose peer is gone fails with EPIPE and
//! raises SIGPIPE on the caller, unless `MSG_NOSIGNAL`. Simplified, as
//! documented at each handler: `SO_LINGER` is stored and
//! reported, not acted on; out-of-band data (`MSG_OOB`) is EOPNOTSUPP.

pub mod addr;
pub mod inet;
pub mod opts;
pub mod unix;

#[cfg(test)]
mod tests;

use super::fd::{oflag, FsState, OpenFile};
use super::files::{file, read_iovecs, CHUNK, MAX_RW};
use super::{Ctx, Cx};
use crate::errno::{Errno, KResult};
use crate::fs::{FileType, Inode, Metadata, WaitQueue};
use crate::net::Notify;
use crate::syscall::Args;
use addr::{SockAddr, AF_INET, AF_INET6, AF_UNIX, STORAGE_LEN};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
pub use opts::SockOpts;

crate::syscall_table! {
    pub static ENTRIES: [dyn Ctx] = {
        socket(Int, Hex, Int) => sys_socket;
        socketpair(Int, Hex, Int, Hex) => sys_socketpair;
        bind(Int, Hex, Size) => sys_bind;
        listen(Int, Int) => sys_listen;
        accept(Int, Hex, Hex) => sys_accept;
        accept4(Int, Hex, Hex, Hex) => sys_accept4;
        connect(Int, Hex, Size) => sys_connect;
        shutdown(Int, Int) => sys_shutdown;
        sendto(Int, BufOut(2), Size, Hex, Hex, Size) => sys_sendto;
        recvfrom(Int, BufIn(2), Size, Hex, Hex, Hex) => sys_recvfrom;
        sendmsg(Int, Hex, Hex) => sys_sendmsg;
        recvmsg(Int, Hex, Hex) => sys_recvmsg;
        sendmmsg(Int, Hex, Int, Hex) => sys_sendmmsg;
        recvmmsg(Int, Hex, Int, Hex, Hex) => sys_recvmmsg;
        getsockname(Int, Hex, Hex) => sys_getsockname;
        getpeername(Int, Hex, Hex) => sys_getpeername;
        setsockopt(Int, Int, Int, Hex, Size) => sys_setsockopt;
        getsockopt(Int, Int, Int, Hex, Hex) => sys_getsockopt;
    }
}

pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
pub const SOCK_RAW: u32 = 3;
pub const SOCK_SEQPACKET: u32 = 5;
const SOCK_TYPE_MASK: u32 = 0xf;
pub const SOCK_NONBLOCK: u32 = oflag::O_NONBLOCK;
pub const SOCK_CLOEXEC: u32 = oflag::O_CLOEXEC;

pub const SHUT_RD: u32 = 0;
pub const SHUT_WR: u32 = 1;
pub const SHUT_RDWR: u32 = 2;

/// `MSG_*` flags of send and receive calls.
pub mod msg {
    pub const MSG_OOB: u32 = 0x1;
    pub const MSG_PEEK: u32 = 0x2;
    pub const MSG_DONTROUTE: u32 = 0x4;
    pub const MSG_CTRUNC: u32 = 0x8;
    pub const MSG_TRUNC: u32 = 0x20;
    pub const MSG_DONTWAIT: u32 = 0x40;
    pub const MSG_EOR: u32 = 0x80;
    pub const MSG_WAITALL: u32 = 0x100;
    pub const MSG_NOSIGNAL: u32 = 0x4000;
    pub const MSG_MORE: u32 = 0x8000;
    pub const MSG_WAITFORONE: u32 = 0x10000;
    pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;
}
use msg::*;

/// How one send or receive may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    /// `O_NONBLOCK` on the description or `MSG_DONTWAIT`.
    pub nonblock: bool,
    /// The call's `MSG_*` flags.
    pub flags: u32,
    /// `SO_RCVTIMEO`/`SO_SNDTIMEO` as an absolute deadline.
    pub deadline: Option<u64>,
}

impl Io {
    pub fn blocking() -> Io {
        Io {
            nonblock: false,
            flags: 0,
            deadline: None,
        }
    }

    pub fn nonblocking() -> Io {
        Io {
            nonblock: true,
            ..Io::blocking()
        }
    }

    /// Blocks on `n` until one of `mask` is ready: EAGAIN at once when
    /// non-blocking.
    pub fn wait(&self, n: &Notify, mask: u32) -> KResult<()> {
        if self.nonblock {
            return Err(Errno::EAGAIN);
        }
        n.wait(mask, self.deadline)
    }
}

/// What a receive produced.
#[derive(Default)]
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// The message's real length (datagrams: more than `len` if cut).
    pub full_len: usize,
    /// The sender (datagram sockets; None: the caller knows the peer).
    pub from: Option<SockAddr>,
    /// `MSG_TRUNC` and friends for `msg_flags`.
    pub flags: u32,
    /// Descriptors passed with `SCM_RIGHTS`.
    pub rights: Vec<Arc<OpenFile>>,
}

/// `struct ucred`, as `SO_PEERCRED` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ucred {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Ucred {
    /// What Linux reports for a socket with no peer.
    pub const NONE: Ucred = Ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
}

/// What binding and connecting may need of the calling process: its file
/// system (AF_UNIX paths) and identity (`SO_PEERCRED`).
pub struct Env<'a> {
    pub fs: &'a FsState,
    pub cred: Ucred,
}

/// One socket of any family: what the calls above need of it. Methods
/// return Linux's errno for what the socket's kind cannot do.
pub trait Socket: Send + Sync {
    fn domain(&self) -> u16;
    fn sock_type(&self) -> u32;
    /// `SO_PROTOCOL`.
    fn protocol(&self) -> u32;
    fn opts(&self) -> &SockOpts;
    fn notify(&self) -> &Notify;

    fn bind(&self, env: &Env, addr: SockAddr) -> KResult<()>;
    fn listen(&self, backlog: u32) -> KResult<()>;
    fn accept(&self, io: Io) -> KResult<Arc<dyn Socket>>;
    fn connect(&self, env: &Env, addr: SockAddr, io: Io) -> KResult<()>;
    /// Sends `data` (all of it on a blocking stream unless interrupted).
    fn send(
        &self,
        env: Option<&Env>,
        data: &[u8],
        to: Option<SockAddr>,
        rights: Vec<Arc<OpenFile>>,
        io: Io,
    ) -> KResult<usize>;
    fn recv(&self, buf: &mut [u8], io: Io) -> KResult<Received>;
    fn shutdown(&self, how: u32) -> KResult<()>;
    fn local_addr(&self) -> KResult<SockAddr>;
    fn peer_addr(&self) -> KResult<SockAddr>;

    /// `SO_ERROR`: the pending error, cleared by reading it.
    fn take_error(&self) -> Option<Errno> {
        None
    }
    /// `SO_PEERCRED`.
    fn peer_cred(&self) -> Ucred {
        Ucred::NONE
    }
    /// `SO_ACCEPTCONN`.
    fn is_listening(&self) -> bool {
        false
    }
    /// Options of levels other than `SOL_SOCKET` (and the few
    /// `SOL_SOCKET` ones a family acts on): None if not this family's.
    fn get_option(&self, _level: i32, _name: i32) -> Option<KResult<Vec<u8>>> {
        None
    }
    fn set_option(&self, _level: i32, _name: i32, _val: &[u8]) -> Option<KResult<()>> {
        None
    }
    /// `FIONREAD`.
    fn readable_bytes(&self) -> Option<usize> {
        None
    }
}

const SOCKFS_DEV: u64 = 0x08;
const SOCKFS_MAGIC: u64 = 0x534f_434b;
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// A socket as a file: what the descriptor table holds.
pub struct SocketFile {
    sock: Arc<dyn Socket>,
    ino: u64,
}

impl SocketFile {
    pub fn new(sock: Arc<dyn Socket>) -> Arc<SocketFile> {
        Arc::new(SocketFile {
            sock,
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn socket(&self) -> &Arc<dyn Socket> {
        &self.sock
    }

    /// The open file description for a new descriptor.
    pub fn open(sock: Arc<dyn Socket>, nonblock: bool) -> Arc<OpenFile> {
        let f = SocketFile::new(sock);
        let name = format!("socket:[{}]", f.ino);
        let flags = oflag::O_RDWR | if nonblock { oflag::O_NONBLOCK } else { 0 };
        OpenFile::new(f, name, flags)
    }
}

fn deadline(timeout_ns: u64) -> Option<u64> {
    (timeout_ns != 0).then(|| crate::net::now_ns().saturating_add(timeout_ns))
}

impl Inode for SocketFile {
    fn metadata(&self) -> Metadata {
        Metadata::synthetic(SOCKFS_DEV, self.ino, FileType::Socket, 0o777, 0)
    }
    fn read_at(&self, _: u64, _: &mut [u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }
    fn write_at(&self, _: u64, _: &[u8]) -> KResult<usize> {
        Err(Errno::ESPIPE)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn read_stream(&self, buf: &mut [u8], nonblock: bool) -> KResult<usize> {
        let io = Io {
            nonblock,
            flags: 0,
            deadline: deadline(self.sock.opts().rcvtimeo_ns()),
        };
        self.sock.recv(buf, io).map(|r| r.len)
    }
    fn write_stream(&self, buf: &[u8], nonblock: bool) -> KResult<usize> {
        let io = Io {
            nonblock,
            flags: 0,
            deadline: deadline(self.sock.opts().sndtimeo_ns()),
        };
        self.sock.send(None, buf, None, Vec::new(), io)
    }
    fn readable_bytes(&self) -> Option<usize> {
        self.sock.readable_bytes()
    }
    fn poll_ready(&self) -> u32 {
        self.sock.notify().poll_bits()
    }
    fn poll_queues<'a>(&'a self, f: &mut dyn FnMut(&'a WaitQueue)) {
        f(self.sock.notify().queue())
    }
    fn poll_events_seq(&self) -> u64 {
        self.sock.notify().events_seq()
    }
    fn fs_magic(&self) -> u64 {
        SOCKFS_MAGIC
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// The socket behind descriptor argument `a`: EBADF, or ENOTSOCK for
/// other files.
fn sock(ctx: &dyn Ctx, a: usize) -> KResult<(Arc<OpenFile>, Arc<dyn Socket>)> {
    let f = file(ctx, a)?;
    let s = f
        .inode()
        .as_any()
        .downcast_ref::<SocketFile>()
        .map(|sf| sf.sock.clone())
        .ok_or(Errno::ENOTSOCK)?;
    Ok((f, s))
}

fn env(ctx: &dyn Ctx) -> Env<'_> {
    Env {
        fs: ctx.fs(),
        cred: Ucred {
            pid: ctx.task().map_or(1, |t| t.pid()),
            uid: 0,
            gid: 0,
        },
    }
}

/// Creates an unconnected socket (the checks `socket(2)` makes).
pub fn create(domain: u16, ty: u32, protocol: u32) -> KResult<Arc<dyn Socket>> {
    match domain {
        AF_UNIX => unix::create(ty, protocol),
        AF_INET | AF_INET6 => inet::create(domain, ty, protocol),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// Splits `type`'s low bits from SOCK_NONBLOCK/SOCK_CLOEXEC: EINVAL for
/// anything else.
fn split_type(raw: usize) -> KResult<(u32, bool, bool)> {
    let raw = raw as u32;
    if raw & !(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok((
        raw & SOCK_TYPE_MASK,
        raw & SOCK_NONBLOCK != 0,
        raw & SOCK_CLOEXEC != 0,
    ))
}

/// `socket(domain, type, protocol)`: EAFNOSUPPORT for unknown families,
/// EINVAL for unknown flag bits, ESOCKTNOSUPPORT/EPROTONOSUPPORT for
/// types and protocols the family lacks, EMFILE at the limit.
pub fn sys_socket(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (ty, nonblock, cloexec) = split_type(a[1])?;
    let s = create(a[0] as u16, ty, a[2] as u32)?;
    ctx.files().insert(SocketFile::open(s, nonblock), cloexec)
}

/// `socketpair(domain, type, protocol, sv)`: AF_UNIX only (EOPNOTSUPP
/// for the inet families, as Linux answers).
pub fn sys_socketpair(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (ty, nonblock, cloexec) = split_type(a[1])?;
    let (x, y) = match a[0] as u16 {
        AF_UNIX => unix::pair(ty, a[2] as u32, env(ctx).cred)?,
        AF_INET | AF_INET6 => {
            create(a[0] as u16, ty, a[2] as u32)?;
            return Err(Errno::EOPNOTSUPP);
        }
        _ => return Err(Errno::EAFNOSUPPORT),
    };
    let files = ctx.files();
    let fx = files.insert(SocketFile::open(x, nonblock), cloexec)?;
    let fy = match files.insert(SocketFile::open(y, nonblock), cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = files.remove(fx);
            return Err(e);
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(fx as i32).to_le_bytes());
    out[4..].copy_from_slice(&(fy as i32).to_le_bytes());
    if let Err(e) = ctx.copy_out(a[3], &out) {
        let _ = ctx.files().remove(fx);
        let _ = ctx.files().remove(fy);
        return Err(e);
    }
    Ok(0)
}

/// Reads a `sockaddr` of `len` bytes for `s`'s family.
fn read_addr(ctx: &mut dyn Ctx, s: &dyn Socket, addr: usize, len: usize) -> KResult<SockAddr> {
    if len as i32 > STORAGE_LEN as i32 || (len as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; len];
    ctx.copy_in(addr, &mut raw)?;
    addr::decode(s.domain(), &raw)
}

/// Writes `sa` to `addr`/`*lenp` as Linux does: at most `*lenp` bytes
/// (EINVAL if negative), `*lenp` set to the full length. A null `addr`
/// writes nothing.
fn write_addr(ctx: &mut dyn Ctx, addr: usize, lenp: usize, sa: &SockAddr) -> KResult<()> {
    if addr == 0 {
        return Ok(());
    }
    let mut l = [0u8; 4];
    ctx.copy_in(lenp, &mut l)?;
    let room = i32::from_le_bytes(l);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let enc = sa.encode();
    let n = enc.len().min(room as usize);
    ctx.copy_out(addr, &enc[..n])?;
    ctx.copy_out(lenp, &(enc.len() as u32).to_le_bytes())
}

/// `bind(fd, addr, len)`: EINVAL if already bound; EADDRINUSE when the
/// name is taken (an AF_UNIX path that exists, an inet port bound without
/// `SO_REUSEADDR`/`SO_REUSEPORT` on both); EADDRNOTAVAIL for an address
/// this machine does not have.
pub fn sys_bind(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let sa = read_addr(ctx, &*s, a[1], a[2])?;
    s.bind(&env(ctx), sa)?;
    Ok(0)
}

/// `listen(fd, backlog)`: stream sockets only (EOPNOTSUPP otherwise); an
/// unbound inet socket gets an ephemeral port. The backlog is clamped to
/// 1..=4096 (`somaxconn`).
pub fn sys_listen(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let backlog = (a[1] as i32).clamp(0, 4096) as u32;
    s.listen(backlog)?;
    Ok(0)
}

fn accept_with(ctx: &mut dyn Ctx, a: &Args, flags: u32) -> KResult<usize> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (f, s) = sock(ctx, a[0])?;
    let io = Io {
        nonblock: f.nonblocking(),
        flags: 0,
        deadline: deadline(s.opts().rcvtimeo_ns()),
    };
    let new = s.accept(io)?;
    let peer = new
        .peer_addr()
        .unwrap_or_else(|_| SockAddr::any(s.domain()));
    let nf = SocketFile::open(new, flags & SOCK_NONBLOCK != 0);
    let fd = ctx.files().insert(nf, flags & SOCK_CLOEXEC != 0)?;
    if let Err(e) = write_addr(ctx, a[1], a[2], &peer) {
        let _ = ctx.files().remove(fd);
        return Err(e);
    }
    Ok(fd)
}

/// `accept(fd, addr, lenp)`: EINVAL if not listening; EAGAIN when
/// non-blocking with no connection pending. The new descriptor is
/// blocking and inherits nothing (as on Linux).
pub fn sys_accept(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    accept_with(ctx, a, 0)
}

/// `accept4(fd, addr, lenp, flags)`: SOCK_NONBLOCK and SOCK_CLOEXEC.
pub fn sys_accept4(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    accept_with(ctx, a, a[3] as u32)
}

/// `connect(fd, addr, len)`: a non-blocking stream connect that cannot
/// finish at once returns EINPROGRESS and reports the outcome through
/// `SO_ERROR`; EISCONN when connected, EALREADY while one is in
/// progress, ECONNREFUSED when nobody listens.
pub fn sys_connect(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (f, s) = sock(ctx, a[0])?;
    let sa = read_addr(ctx, &*s, a[1], a[2])?;
    let io = Io {
        nonblock: f.nonblocking(),
        flags: 0,
        deadline: deadline(s.opts().sndtimeo_ns()),
    };
    s.connect(&env(ctx), sa, io)?;
    Ok(0)
}

/// `shutdown(fd, how)`: EINVAL for a bad `how`, ENOTCONN when not
/// connected.
pub fn sys_shutdown(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let how = a[1] as u32;
    if how > SHUT_RDWR {
        return Err(Errno::EINVAL);
    }
    s.shutdown(how)?;
    Ok(0)
}

fn io_for(f: &OpenFile, s: &dyn Socket, flags: u32, send: bool) -> Io {
    let t = if send {
        s.opts().sndtimeo_ns()
    } else {
        s.opts().rcvtimeo_ns()
    };
    Io {
        nonblock: f.nonblocking() || flags & MSG_DONTWAIT != 0,
        flags,
        deadline: deadline(t),
    }
}

fn is_stream(s: &dyn Socket) -> bool {
    s.sock_type() == SOCK_STREAM
}

/// Sends the user bytes of `iov` (a list of (address, length)).
/// [`send_iov_quiet`], raising SIGPIPE on EPIPE unless `MSG_NOSIGNAL`.
fn send_iov(
    ctx: &mut dyn Ctx,
    f: &OpenFile,
    s: &dyn Socket,
    iov: &[(usize, usize)],
    to: Option<SockAddr>,
    rights: Vec<Arc<OpenFile>>,
    flags: u32,
) -> KResult<usize> {
    let r = send_iov_quiet(ctx, f, s, iov, to, rights, flags);
    if flags & MSG_NOSIGNAL != 0 {
        return r;
    }
    super::signal::sigpipe_on_epipe(ctx, r)
}

fn send_iov_quiet(
    ctx: &mut dyn Ctx,
    f: &OpenFile,
    s: &dyn Socket,
    iov: &[(usize, usize)],
    to: Option<SockAddr>,
    rights: Vec<Arc<OpenFile>>,
    flags: u32,
) -> KResult<usize> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let io = io_for(f, s, flags, true);
    let total: usize = iov.iter().map(|v| v.1).sum::<usize>().min(MAX_RW);
    if !is_stream(s) || total <= CHUNK {
        // One message: gather it whole.
        let mut data = vec![0u8; total];
        let mut at = 0;
        for &(base, len) in iov {
            let n = len.min(total - at);
            ctx.copy_in(base, &mut data[at..at + n])?;
            at += n;
        }
        return s.send(Some(&env(ctx)), &data, to, rights, io);
    }
    // A stream: chunk by chunk, a short count if it stops part way.
    let mut done = 0;
    let mut rights = Some(rights);
    let mut buf = vec![0u8; CHUNK];
    let mut iter = iov.iter().copied();
    let mut cur = iter.next();
    while done < total {
        let mut filled = 0;
        while filled < CHUNK {
            let Some((base, len)) = cur else { break };
            let n = len.min(CHUNK - filled);
            if n == 0 {
                cur = iter.next();
                continue;
            }
            if let Err(e) = ctx.copy_in(base, &mut buf[filled..filled + n]) {
                if done + filled == 0 {
                    return Err(e);
                }
                break;
            }
            filled += n;
            cur = if n == len {
                iter.next()
            } else {
                Some((base + n, len - n))
            };
        }
        if filled == 0 {
            break;
        }
        match s.send(
            Some(&env(ctx)),
            &buf[..filled],
            to.clone(),
            rights.take().unwrap_or_default(),
            io,
        ) {
            Ok(n) => {
                done += n;
                if n < filled {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Receives into the user buffers of `iov`; with `MSG_WAITALL` on a
/// stream, until they are full, end of file or an error.
fn recv_iov(
    ctx: &mut dyn Ctx,
    f: &OpenFile,
    s: &dyn Socket,
    iov: &[(usize, usize)],
    flags: u32,
) -> KResult<Received> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let io = io_for(f, s, flags, false);
    let total: usize = iov.iter().map(|v| v.1).sum::<usize>().min(MAX_RW);
    let cap = if is_stream(s) { CHUNK * 4 } else { 256 * 1024 };
    let mut buf = RECV_POOL.take(total.min(cap));
    let waitall = is_stream(s) && flags & MSG_WAITALL != 0 && flags & MSG_PEEK == 0;
    let mut out = Received::default();
    let mut done = 0;
    loop {
        let want = (total - done).min(buf.len());
        let r = match s.recv(&mut buf[..want], io) {
            Ok(r) => r,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        scatter(ctx, iov, done, &buf[..r.len])?;
        done += r.len;
        out.from = r.from;
        out.flags |= r.flags;
        out.full_len = r.full_len;
        out.rights.extend(r.rights);
        if !waitall || r.len == 0 || done == total || !is_stream(s) {
            break;
        }
    }
    out.len = done;
    if is_stream(s) {
        out.full_len = done;
    }
    Ok(out)
}

/// Receive bounce buffers (see [`bounce`](super::bounce)).
static RECV_POOL: super::bounce::Pool = super::bounce::Pool::new(256 * 1024, 4);

/// Copies `data` into the iovecs starting `skip` bytes in.
fn scatter(ctx: &mut dyn Ctx, iov: &[(usize, usize)], skip: usize, data: &[u8]) -> KResult<()> {
    let mut skip = skip;
    let mut at = 0;
    for &(base, len) in iov {
        if at == data.len() {
            break;
        }
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = (len - skip).min(data.len() - at);
        ctx.copy_out(base + skip, &data[at..at + n])?;
        at += n;
        skip = 0;
    }
    Ok(())
}

fn dest(ctx: &mut dyn Ctx, s: &dyn Socket, addr: usize, len: usize) -> KResult<Option<SockAddr>> {
    if addr == 0 {
        return Ok(None);
    }
    read_addr(ctx, s, addr, len).map(Some)
}

/// `sendto(fd, buf, len, flags, addr, addrlen)`: `MSG_DONTWAIT`,
/// `MSG_NOSIGNAL` (EPIPE without SIGPIPE; else SIGPIPE too), `MSG_MORE`
/// and `MSG_EOR` accepted; EPIPE after the peer or this end shut writing,
/// ENOTCONN/EDESTADDRREQ without a destination.
pub fn sys_sendto(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (f, s) = sock(ctx, a[0])?;
    let to = dest(ctx, &*s, a[4], a[5])?;
    send_iov(ctx, &f, &*s, &[(a[1], a[2])], to, Vec::new(), a[3] as u32)
}

/// `recvfrom(fd, buf, len, flags, addr, lenp)`: `MSG_PEEK`,
/// `MSG_DONTWAIT`, `MSG_WAITALL`, `MSG_TRUNC` (datagrams: the real
/// length is returned).
pub fn sys_recvfrom(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (f, s) = sock(ctx, a[0])?;
    let flags = a[3] as u32;
    let r = recv_iov(ctx, &f, &*s, &[(a[1], a[2])], flags)?;
    if a[4] != 0 {
        match source(&*s, &r) {
            Some(sa) => write_addr(ctx, a[4], a[5], &sa)?,
            None => ctx.copy_out(a[5], &0u32.to_le_bytes())?,
        }
    }
    Ok(received_len(&r, flags, &*s))
}

/// The sender a receive reports: a datagram's source, an AF_UNIX
/// stream's peer; None (length 0, as Linux) for TCP and for unnamed
/// AF_UNIX senders.
fn source(s: &dyn Socket, r: &Received) -> Option<SockAddr> {
    let sa = match r.from.clone() {
        Some(x) => x,
        None if !is_stream(s) || s.domain() == AF_UNIX => s.peer_addr().ok()?,
        None => return None,
    };
    (sa != SockAddr::Unix(addr::UnixAddr::Unnamed)).then_some(sa)
}

fn received_len(r: &Received, flags: u32, s: &dyn Socket) -> usize {
    if flags & MSG_TRUNC != 0 && !is_stream(s) {
        r.full_len
    } else {
        r.len
    }
}

/// `struct msghdr` (the same on both arches).
const MSGHDR_LEN: usize = 56;
/// `struct mmsghdr`: a msghdr and the `msg_len` result, padded.
const MMSGHDR_LEN: usize = 64;

struct MsgHdr {
    name: usize,
    namelen: u32,
    iov: usize,
    iovlen: usize,
    control: usize,
    controllen: usize,
}

fn read_msghdr(ctx: &mut dyn Ctx, addr: usize) -> KResult<MsgHdr> {
    let mut raw = [0u8; MSGHDR_LEN];
    ctx.copy_in(addr, &mut raw)?;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    Ok(MsgHdr {
        name: u64_at(0),
        namelen: u64_at(8) as u32,
        iov: u64_at(16),
        iovlen: u64_at(24),
        control: u64_at(32),
        controllen: u64_at(40),
    })
}

pub const SOL_SOCKET: i32 = 1;
pub const SCM_RIGHTS: i32 = 1;
/// Most descriptors one `SCM_RIGHTS` message may carry (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
const CMSG_HDR: usize = 16;

/// The descriptors of the `SCM_RIGHTS` messages in `control` (other
/// control messages are ignored, as the families here have no other
/// use for them). EINVAL for a malformed header, EBADF for a bad fd.
fn read_rights(ctx: &mut dyn Ctx, control: usize, len: usize) -> KResult<Vec<Arc<OpenFile>>> {
    let mut out = Vec::new();
    if control == 0 || len == 0 {
        return Ok(out);
    }
    if len > 64 * 1024 {
        return Err(Errno::ENOBUFS);
    }
    let mut raw = vec![0u8; len];
    ctx.copy_in(control, &mut raw)?;
    let mut at = 0;
    while at + CMSG_HDR <= raw.len() {
        let clen = u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default()) as usize;
        let level = i32::from_le_bytes(raw[at + 8..at + 12].try_into().unwrap_or_default());
        let ty = i32::from_le_bytes(raw[at + 12..at + 16].try_into().unwrap_or_default());
        if clen < CMSG_HDR || at + clen > raw.len() {
            return Err(Errno::EINVAL);
        }
        if level == SOL_SOCKET && ty == SCM_RIGHTS {
            let fds = &raw[at + CMSG_HDR..at + clen];
            if fds.len() / 4 + out.len() > SCM_MAX_FD {
                return Err(Errno::EINVAL);
            }
            for c in fds.chunks_exact(4) {
                let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                out.push(file(ctx, fd as usize)?);
            }
        }
        at += clen.next_multiple_of(8);
    }
    Ok(out)
}

/// Installs received descriptors and writes their `SCM_RIGHTS` message:
/// returns the control length used and whether it was cut (`MSG_CTRUNC`;
/// descriptors that do not fit are closed, as Linux does).
fn write_rights(
    ctx: &mut dyn Ctx,
    control: usize,
    room: usize,
    rights: Vec<Arc<OpenFile>>,
    cloexec: bool,
) -> KResult<(usize, bool)> {
    if rights.is_empty() {
        return Ok((0, false));
    }
    if control == 0 || room < CMSG_HDR + 4 {
        return Ok((0, true));
    }
    let fit = ((room - CMSG_HDR) / 4).min(rights.len());
    let cut = fit < rights.len();
    let mut fds = Vec::with_capacity(fit);
    for f in rights.into_iter().take(fit) {
        match ctx.files().insert(f, cloexec) {
            Ok(fd) => fds.push(fd as i32),
            Err(_) => break,
        }
    }
    let clen = CMSG_HDR + 4 * fds.len();
    let mut raw = Vec::with_capacity(clen);
    raw.extend_from_slice(&(clen as u64).to_le_bytes());
    raw.extend_from_slice(&SOL_SOCKET.to_le_bytes());
    raw.extend_from_slice(&SCM_RIGHTS.to_le_bytes());
    for fd in &fds {
        raw.extend_from_slice(&fd.to_le_bytes());
    }
    ctx.copy_out(control, &raw)?;
    Ok((clen.next_multiple_of(8).min(room), cut || fds.len() < fit))
}

fn sendmsg_one(ctx: &mut dyn Ctx, fd: usize, hdr_addr: usize, flags: u32) -> KResult<usize> {
    let (f, s) = sock(ctx, fd)?;
    let h = read_msghdr(ctx, hdr_addr)?;
    let to = dest(ctx, &*s, h.name, h.namelen as usize)?;
    let iov = read_iovecs(ctx, h.iov, h.iovlen)?;
    let rights = read_rights(ctx, h.control, h.controllen)?;
    if !rights.is_empty() && s.domain() != AF_UNIX {
        return Err(Errno::EINVAL);
    }
    send_iov(ctx, &f, &*s, &iov, to, rights, flags)
}

fn recvmsg_one(ctx: &mut dyn Ctx, fd: usize, hdr_addr: usize, flags: u32) -> KResult<usize> {
    let (f, s) = sock(ctx, fd)?;
    let h = read_msghdr(ctx, hdr_addr)?;
    let iov = read_iovecs(ctx, h.iov, h.iovlen)?;
    let r = recv_iov(ctx, &f, &*s, &iov, flags)?;
    let mut out_flags = r.flags;
    if h.name != 0 {
        let len = match source(&*s, &r) {
            Some(sa) => {
                let enc = sa.encode();
                let n = enc.len().min(h.namelen as usize);
                ctx.copy_out(h.name, &enc[..n])?;
                enc.len()
            }
            None => 0,
        };
        ctx.copy_out(hdr_addr + 8, &(len as u32).to_le_bytes())?;
    }
    let (clen, cut) = write_rights(
        ctx,
        h.control,
        h.controllen,
        r.rights.clone(),
        flags & MSG_CMSG_CLOEXEC != 0,
    )?;
    if cut {
        out_flags |= MSG_CTRUNC;
    }
    ctx.copy_out(hdr_addr + 40, &(clen as u64).to_le_bytes())?;
    ctx.copy_out(hdr_addr + 48, &out_flags.to_le_bytes())?;
    Ok(received_len(&r, flags, &*s))
}

/// `sendmsg(fd, msg, flags)`: iovecs gathered, `msg_name` for unconnected
/// datagram sockets, `SCM_RIGHTS` on AF_UNIX sockets.
pub fn sys_sendmsg(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    sendmsg_one(ctx, a[0], a[1], a[2] as u32)
}

/// `recvmsg(fd, msg, flags)`: scatters into the iovecs; fills `msg_name`,
/// `msg_namelen`, `msg_controllen` (`SCM_RIGHTS` descriptors installed,
/// `MSG_CMSG_CLOEXEC` honoured) and `msg_flags` (`MSG_TRUNC`,
/// `MSG_CTRUNC`).
pub fn sys_recvmsg(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    recvmsg_one(ctx, a[0], a[1], a[2] as u32)
}

/// Most messages one `sendmmsg`/`recvmmsg` handles (`UIO_MAXIOV`).
const MMSG_MAX: usize = 1024;

/// `sendmmsg(fd, vec, vlen, flags)`: sends until one fails; returns how
/// many were sent (the error if none was).
pub fn sys_sendmmsg(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let n = (a[2] as u32 as usize).min(MMSG_MAX);
    let flags = a[3] as u32;
    let mut sent = 0;
    while sent < n {
        let hdr = a[1] + sent * MMSGHDR_LEN;
        match sendmsg_one(ctx, a[0], hdr, flags) {
            Ok(len) => {
                ctx.copy_out(hdr + MSGHDR_LEN, &(len as u32).to_le_bytes())?;
                sent += 1;
            }
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

/// `recvmmsg(fd, vec, vlen, flags, timeout)`: `MSG_WAITFORONE` turns on
/// `MSG_DONTWAIT` after the first message. Simplified: the timeout is
/// checked between messages only (as Linux does, too).
pub fn sys_recvmmsg(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let n = (a[2] as u32 as usize).min(MMSG_MAX);
    let mut flags = a[3] as u32;
    let end = if a[4] != 0 {
        let ts: [u8; 16] = super::files::read_bytes(ctx, a[4])?;
        let sec = i64::from_le_bytes(ts[..8].try_into().unwrap_or_default());
        let nsec = i64::from_le_bytes(ts[8..].try_into().unwrap_or_default());
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Errno::EINVAL);
        }
        Some(
            crate::net::now_ns()
                .saturating_add((sec as u64).saturating_mul(1_000_000_000) + nsec as u64),
        )
    } else {
        None
    };
    let mut got = 0;
    while got < n {
        let hdr = a[1] + got * MMSGHDR_LEN;
        match recvmsg_one(ctx, a[0], hdr, flags) {
            Ok(len) => {
                ctx.copy_out(hdr + MSGHDR_LEN, &(len as u32).to_le_bytes())?;
                got += 1;
            }
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
        if flags & MSG_WAITFORONE != 0 {
            flags |= MSG_DONTWAIT;
        }
        if end.is_some_and(|e| crate::net::now_ns() >= e) {
            break;
        }
    }
    Ok(got)
}

/// `getsockname(fd, addr, lenp)`: an unbound inet socket shows the
/// unspecified address with port 0, an unbound AF_UNIX socket only its
/// family.
pub fn sys_getsockname(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let sa = s.local_addr()?;
    write_addr(ctx, a[1], a[2], &sa)?;
    Ok(0)
}

/// `getpeername(fd, addr, lenp)`: ENOTCONN when not connected.
pub fn sys_getpeername(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let sa = s.peer_addr()?;
    write_addr(ctx, a[1], a[2], &sa)?;
    Ok(0)
}

/// `setsockopt(fd, level, name, val, len)`: see [`opts`] for the options
/// known; others ENOPROTOOPT; EINVAL for a value shorter than an int.
pub fn sys_setsockopt(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let len = a[4] as i32;
    if !(0..=1024).contains(&len) {
        return Err(Errno::EINVAL);
    }
    let mut val = vec![0u8; len as usize];
    ctx.copy_in(a[3], &mut val)?;
    opts::set(&*s, a[1] as i32, a[2] as i32, &val)?;
    Ok(0)
}

/// `getsockopt(fd, level, name, val, lenp)`: the value cut to `*lenp`
/// bytes (EINVAL if negative), `*lenp` set to the length written.
pub fn sys_getsockopt(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (_, s) = sock(ctx, a[0])?;
    let mut l = [0u8; 4];
    ctx.copy_in(a[4], &mut l)?;
    let room = i32::from_le_bytes(l);
    if room < 0 {
        return Err(Errno::EINVAL);
    }
    let val = opts::get(&*s, a[1] as i32, a[2] as i32)?;
    let n = val.len().min(room as usize);
    ctx.copy_out(a[3], &val[..n])?;
    ctx.copy_out(a[4], &(n as u32).to_le_bytes())?;
    Ok(0)
}
