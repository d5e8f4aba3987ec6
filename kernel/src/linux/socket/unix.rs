//! AF_UNIX sockets: stream, datagram and sequenced-packet, with Linux's
//! semantics — `socketpair`; names in the file system (a node is created
//! at the path, EADDRINUSE if it exists) or the abstract namespace (a
//! leading NUL); `listen`/`accept`/`connect` with a backlog (connect
//! queues a ready server end, as Linux does, so it completes before
//! `accept`); half-close with `shutdown`; EOF once the peer is gone and
//! its data read; EPIPE writing to a peer that closed or shut reading;
//! `SO_PEERCRED`; `SCM_RIGHTS` descriptor passing.
//!
//! Structure: a connected stream pair shares one [`Conn`] (both
//! directions' buffers under one spin lock, held only to copy bytes);
//! datagram sockets each own a receive queue that senders push to. Every
//! state change recomputes the poll bits of the sockets it touches (Linux's
//! `unix_poll`/`unix_dgram_poll` rules) into their [`Notify`] under the
//! lock and wakes them after it is dropped.
//!
//! Simplified: path names are created as regular-file nodes (the VFS has
//! no socket node kind yet), so `stat` shows S_IFREG where Linux shows
//! S_IFSOCK; descriptors in flight are not garbage-collected (a socket
//! sent over itself and closed leaks, where Linux's GC reclaims it).

use super::addr::{SockAddr, UnixAddr, AF_UNIX};
use super::msg::*;
use super::opts::BUF_MAX;
use super::{
    Env, Io, Received, SockOpts, Socket, Ucred, SHUT_RD, SHUT_RDWR, SHUT_WR, SOCK_DGRAM,
    SOCK_SEQPACKET, SOCK_STREAM,
};
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use crate::fs::NewNode;
use crate::linux::fd::{FsState, OpenFile};
use crate::net::notify::{Notify, RX_ROOM, STATE};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use spin::Mutex;

/// Shutdown bits, as Linux keeps them per socket.
const RCV: u8 = 1;
const SEND: u8 = 2;
const MASK: u8 = RCV | SEND;

/// Bytes a stream sender may have queued at its peer (the default
/// `SO_SNDBUF`); POLLOUT while at most a quarter of it is used, as Linux's
/// `unix_writable` says.
pub const STREAM_CAP: usize = BUF_MAX as usize;
/// Datagrams a receive queue holds (`net.unix.max_dgram_qlen`).
pub const DGRAM_QLEN: usize = 512;

/// Where a bound socket is found by `connect` and `sendto`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NameKey {
    /// Abstract names are per socket type, as on Linux (a datagram
    /// socket does not find a stream socket's name: ECONNREFUSED).
    Abstract(u32, Vec<u8>),
    /// The node created at the path: (dev, ino).
    Node(u64, u64),
}

static NAMES: Mutex<BTreeMap<NameKey, Weak<UnixSocket>>> = Mutex::new(BTreeMap::new());

/// One datagram (or, in a stream, the descriptors written with a chunk).
struct Dgram {
    data: Vec<u8>,
    from: UnixAddr,
    rights: Vec<Arc<OpenFile>>,
}

/// The shared state of a connected stream or seqpacket pair. Side `i`
/// reads `buf[i]`; the other side writes it.
struct Conn {
    st: Mutex<ConnSt>,
    notify: [Arc<Notify>; 2],
    names: [UnixAddr; 2],
    creds: [Ucred; 2],
    seqpacket: bool,
}

#[derive(Default)]
struct ConnSt {
    buf: [VecDeque<u8>; 2],
    /// Stream offset of `buf[i]`'s first byte.
    head: [u64; 2],
    /// Descriptors sent with the chunk starting at that stream offset.
    rights: [VecDeque<(u64, Vec<Arc<OpenFile>>)>; 2],
    /// Seqpacket record lengths, in order.
    records: [VecDeque<usize>; 2],
    shut: [u8; 2],
}

impl ConnSt {
    fn bits(&self, i: usize) -> u32 {
        let peer = 1 - i;
        let mut b = 0;
        if self.shut[i] == MASK {
            b |= POLLHUP;
        }
        if self.shut[i] & RCV != 0 {
            b |= POLLIN | POLLRDNORM | POLLRDHUP;
        }
        if !self.buf[i].is_empty() {
            b |= POLLIN | POLLRDNORM;
        }
        if self.buf[peer].len() * 4 <= STREAM_CAP {
            b |= POLLOUT | POLLWRNORM | POLLWRBAND;
        }
        if self.shut[i] & SEND != 0 || self.shut[peer] & RCV != 0 {
            b |= STATE;
        }
        b
    }
}

impl Conn {
    /// Stores both sides' bits (under the lock); the caller wakes after.
    fn publish(&self, st: &ConnSt, event: [bool; 2]) -> [bool; 2] {
        [
            self.notify[0].store(st.bits(0), event[0]),
            self.notify[1].store(st.bits(1), event[1]),
        ]
    }

    fn wake(&self, due: [bool; 2]) {
        for (n, d) in self.notify.iter().zip(due) {
            if d {
                n.wake();
            }
        }
    }

    fn shutdown(&self, side: usize, how: u8) {
        let due = {
            let mut st = self.st.lock();
            let peer = 1 - side;
            if how & SEND != 0 {
                st.shut[side] |= SEND;
                st.shut[peer] |= RCV;
            }
            if how & RCV != 0 {
                st.shut[side] |= RCV;
                st.shut[peer] |= SEND;
            }
            self.publish(&st, [true, true])
        };
        self.wake(due);
    }

    fn send(&self, side: usize, data: &[u8], rights: Vec<Arc<OpenFile>>, io: Io) -> KResult<usize> {
        let peer = 1 - side;
        if self.seqpacket && data.len() > STREAM_CAP {
            return Err(Errno::EMSGSIZE);
        }
        let mut rights = Some(rights);
        let mut done = 0;
        loop {
            let (n, due) = {
                let mut st = self.st.lock();
                if st.shut[side] & SEND != 0 || st.shut[peer] & RCV != 0 {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EPIPE)
                    };
                }
                let room = STREAM_CAP - st.buf[peer].len().min(STREAM_CAP);
                let rest = &data[done..];
                let n = if self.seqpacket {
                    if room >= rest.len() {
                        rest.len()
                    } else {
                        0
                    }
                } else {
                    room.min(rest.len())
                };
                if n == 0 && !(self.seqpacket && rest.is_empty()) {
                    (0, [false; 2])
                } else {
                    if let Some(r) = rights.take().filter(|r| !r.is_empty()) {
                        let at = st.head[peer] + st.buf[peer].len() as u64;
                        st.rights[peer].push_back((at, r));
                    }
                    st.buf[peer].extend(&rest[..n]);
                    if self.seqpacket {
                        st.records[peer].push_back(n);
                    }
                    (n, self.publish(&st, [false, true]))
                }
            };
            self.wake(due);
            done += n;
            if done == data.len() && (n > 0 || self.seqpacket) {
                return Ok(done);
            }
            if n == 0 {
                if let Err(e) = io.wait(&self.notify[side], POLLOUT | STATE) {
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            }
        }
    }

    fn recv(&self, side: usize, out: &mut [u8], io: Io) -> KResult<Received> {
        let peek = io.flags & MSG_PEEK != 0;
        loop {
            let (r, due) = {
                let mut st = self.st.lock();
                if st.buf[side].is_empty() {
                    if st.shut[side] & RCV != 0 {
                        return Ok(Received::default());
                    }
                    (None, [false; 2])
                } else {
                    let r = Self::take(&mut st, side, out, peek, self.seqpacket);
                    (Some(r), self.publish(&st, [false, !peek]))
                }
            };
            self.wake(due);
            if let Some(r) = r {
                return Ok(r);
            }
            if out.is_empty() {
                return Ok(Received::default());
            }
            io.wait(&self.notify[side], POLLIN)?;
        }
    }

    /// Takes (or peeks) what one read returns from `buf[side]`: up to
    /// the next descriptor boundary, or one record.
    fn take(st: &mut ConnSt, side: usize, out: &mut [u8], peek: bool, seqpacket: bool) -> Received {
        let head = st.head[side];
        let mut limit = st.buf[side].len();
        let mut rights = Vec::new();
        if let Some(&(at, _)) = st.rights[side].front() {
            if at == head {
                if !peek {
                    rights = st.rights[side].pop_front().map(|r| r.1).unwrap_or_default();
                }
                if let Some(&(next, _)) = st.rights[side].get(usize::from(peek)) {
                    limit = limit.min((next - head) as usize);
                }
            } else {
                limit = limit.min((at - head) as usize);
            }
        }
        let record = if seqpacket {
            st.records[side].front().copied()
        } else {
            None
        };
        if let Some(len) = record {
            limit = len;
        }
        let n = limit.min(out.len());
        for (d, s) in out.iter_mut().zip(st.buf[side].iter()) {
            *d = *s;
        }
        let mut flags = 0;
        let consumed = match record {
            Some(len) => {
                if n < len {
                    flags |= MSG_TRUNC;
                }
                len
            }
            None => n,
        };
        if !peek {
            st.buf[side].drain(..consumed);
            st.head[side] += consumed as u64;
            if record.is_some() {
                st.records[side].pop_front();
            }
        }
        Received {
            len: n,
            full_len: record.unwrap_or(n),
            from: None,
            flags,
            rights,
        }
    }
}

/// What a socket is doing.
enum Role {
    /// Not connected (streams before `connect`, every datagram socket).
    Idle,
    Listening {
        backlog: usize,
        pending: VecDeque<Arc<UnixSocket>>,
        cred: Ucred,
    },
    Connected {
        conn: Arc<Conn>,
        side: usize,
    },
}

struct St {
    name: UnixAddr,
    key: Option<NameKey>,
    role: Role,
    /// Datagram sockets: the receive queue and its byte count.
    rx: VecDeque<Dgram>,
    rx_bytes: usize,
    /// Datagram sockets: the `connect`ed peer.
    peer: Option<(Weak<UnixSocket>, UnixAddr)>,
    shut: u8,
}

/// An AF_UNIX socket.
pub struct UnixSocket {
    ty: u32,
    me: Weak<UnixSocket>,
    opts: SockOpts,
    notify: Arc<Notify>,
    st: Mutex<St>,
}

/// `socket(AF_UNIX, ty, protocol)`.
pub fn create(ty: u32, protocol: u32) -> KResult<Arc<dyn Socket>> {
    Ok(new_socket(check(ty, protocol)?))
}

fn check(ty: u32, protocol: u32) -> KResult<u32> {
    if protocol != 0 && protocol != u32::from(AF_UNIX) {
        return Err(Errno::EPROTONOSUPPORT);
    }
    match ty {
        SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET => Ok(ty),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

fn new_socket(ty: u32) -> Arc<UnixSocket> {
    let s = Arc::new_cyclic(|me| UnixSocket {
        ty,
        me: me.clone(),
        opts: SockOpts::new(BUF_MAX, BUF_MAX),
        notify: Arc::new(Notify::new()),
        st: Mutex::new(St {
            name: UnixAddr::Unnamed,
            key: None,
            role: Role::Idle,
            rx: VecDeque::new(),
            rx_bytes: 0,
            peer: None,
            shut: 0,
        }),
    });
    let bits = s.idle_bits(&s.st.lock());
    s.notify.update(bits, false);
    s
}

/// Connects `a` (side 0) and `b` (side 1) through a new [`Conn`].
fn join(a: &UnixSocket, b: &UnixSocket, names: [UnixAddr; 2], creds: [Ucred; 2]) {
    let conn = Arc::new(Conn {
        st: Mutex::new(ConnSt::default()),
        notify: [a.notify.clone(), b.notify.clone()],
        names,
        creds,
        seqpacket: a.ty == SOCK_SEQPACKET,
    });
    for (i, s) in [a, b].into_iter().enumerate() {
        s.st.lock().role = Role::Connected {
            conn: conn.clone(),
            side: i,
        };
    }
    let due = conn.publish(&conn.st.lock(), [false; 2]);
    conn.wake(due);
}

/// `socketpair(AF_UNIX, ty, protocol)`: two connected unnamed sockets.
pub fn pair(ty: u32, protocol: u32, cred: Ucred) -> KResult<(Arc<dyn Socket>, Arc<dyn Socket>)> {
    let ty = check(ty, protocol)?;
    if ty == SOCK_DGRAM {
        let a = new_socket(ty);
        let b = new_socket(ty);
        a.st.lock().peer = Some((Arc::downgrade(&b), UnixAddr::Unnamed));
        b.st.lock().peer = Some((Arc::downgrade(&a), UnixAddr::Unnamed));
        return Ok((a, b));
    }
    let a = new_socket(ty);
    let b = new_socket(ty);
    join(&a, &b, [UnixAddr::Unnamed, UnixAddr::Unnamed], [cred, cred]);
    Ok((a, b))
}

fn lookup(key: &NameKey) -> Option<Arc<UnixSocket>> {
    NAMES.lock().get(key).and_then(Weak::upgrade)
}

/// The registry key of `addr`: for a path, the node there (ENOENT if
/// none; ECONNREFUSED later if no socket is bound to it).
fn key_of(fs: &FsState, ty: u32, addr: &UnixAddr) -> KResult<NameKey> {
    match addr {
        UnixAddr::Unnamed => Err(Errno::EINVAL),
        UnixAddr::Abstract(n) => Ok(NameKey::Abstract(ty, n.clone())),
        UnixAddr::Path(p) => {
            let (cwd, _) = fs.cwd();
            let node = fs.vfs().resolve(&cwd, p, true)?;
            let m = node.metadata();
            Ok(NameKey::Node(m.dev, m.ino))
        }
    }
}

/// Finds the socket of type `ty` bound to `addr`: ECONNREFUSED if none,
/// EPROTOTYPE for a path bound by a socket of another type.
fn find(fs: &FsState, ty: u32, addr: &UnixAddr) -> KResult<Arc<UnixSocket>> {
    let s = lookup(&key_of(fs, ty, addr)?).ok_or(Errno::ECONNREFUSED)?;
    if s.ty != ty {
        return Err(Errno::EPROTOTYPE);
    }
    Ok(s)
}

static AUTOBIND: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);

impl UnixSocket {
    fn idle_bits(&self, st: &St) -> u32 {
        match &st.role {
            Role::Connected { .. } => 0,
            Role::Listening {
                pending, backlog, ..
            } => {
                let mut b = 0;
                if !pending.is_empty() {
                    b |= POLLIN | POLLRDNORM;
                }
                if pending.len() <= *backlog {
                    b |= RX_ROOM;
                }
                b
            }
            Role::Idle => {
                let mut b = 0;
                if st.shut == MASK {
                    b |= POLLHUP;
                }
                if st.shut & RCV != 0 {
                    b |= POLLIN | POLLRDNORM | POLLRDHUP;
                }
                if !st.rx.is_empty() {
                    b |= POLLIN | POLLRDNORM;
                }
                if self.ty == SOCK_DGRAM {
                    b |= POLLOUT | POLLWRNORM | POLLWRBAND;
                    if st.rx.len() < DGRAM_QLEN && st.rx_bytes < STREAM_CAP {
                        b |= RX_ROOM;
                    }
                } else {
                    // An unconnected stream: Linux reports it hung up
                    // (state TCP_CLOSE) and writable.
                    b |= POLLHUP | POLLOUT | POLLWRNORM | POLLWRBAND;
                }
                b
            }
        }
    }

    /// Recomputes this socket's own bits (not connected ones) under `st`.
    fn publish(&self, st: &St, event: bool) -> bool {
        if matches!(st.role, Role::Connected { .. }) {
            return false;
        }
        self.notify.store(self.idle_bits(st), event)
    }

    fn conn(&self) -> Option<(Arc<Conn>, usize)> {
        match &self.st.lock().role {
            Role::Connected { conn, side } => Some((conn.clone(), *side)),
            _ => None,
        }
    }

    fn register(&self, st: &mut St, key: NameKey, name: UnixAddr) -> KResult<()> {
        let mut names = NAMES.lock();
        if names.get(&key).is_some_and(|w| w.strong_count() > 0) {
            return Err(Errno::EADDRINUSE);
        }
        names.insert(key.clone(), self.me.clone());
        st.key = Some(key);
        st.name = name;
        Ok(())
    }

    /// Linux's autobind: an abstract name of five hex digits, for a
    /// socket that binds with an empty name (or a datagram sender with
    /// SO_PASSCRED; not done here).
    fn autobind(&self, st: &mut St) -> KResult<()> {
        for _ in 0..0x100000 {
            let n = AUTOBIND.fetch_add(1, core::sync::atomic::Ordering::Relaxed) & 0xfffff;
            let name = alloc::format!("{n:05x}").into_bytes();
            let key = NameKey::Abstract(self.ty, name.clone());
            if self.register(st, key, UnixAddr::Abstract(name)).is_ok() {
                return Ok(());
            }
        }
        Err(Errno::ENOSPC)
    }

    fn dgram_send(
        &self,
        data: &[u8],
        to: Option<SockAddr>,
        rights: Vec<Arc<OpenFile>>,
        io: Io,
        fs: Option<&FsState>,
    ) -> KResult<usize> {
        if data.len() > STREAM_CAP {
            return Err(Errno::EMSGSIZE);
        }
        let (target, from) = {
            let st = self.st.lock();
            if st.shut & SEND != 0 {
                return Err(Errno::EPIPE);
            }
            let target = match &to {
                Some(SockAddr::Unix(a)) => {
                    let fs = fs.ok_or(Errno::ENOTCONN)?;
                    find(fs, self.ty, a)?
                }
                Some(_) => return Err(Errno::EINVAL),
                None => match &st.peer {
                    Some((w, _)) => w.upgrade().ok_or(Errno::ECONNREFUSED)?,
                    None => return Err(Errno::ENOTCONN),
                },
            };
            (target, st.name.clone())
        };
        let mut rights = Some(rights);
        loop {
            let due = {
                let mut t = target.st.lock();
                if let Some((p, _)) = &t.peer {
                    if !core::ptr::eq(p.as_ptr(), self.me.as_ptr()) && to.is_some() {
                        return Err(Errno::EPERM);
                    }
                }
                if t.shut & RCV != 0 {
                    return Err(Errno::EPIPE);
                }
                if t.rx.len() < DGRAM_QLEN && t.rx_bytes + data.len() <= STREAM_CAP {
                    t.rx.push_back(Dgram {
                        data: data.to_vec(),
                        from: from.clone(),
                        rights: rights.take().unwrap_or_default(),
                    });
                    t.rx_bytes += data.len();
                    Some(target.publish(&t, true))
                } else {
                    None
                }
            };
            match due {
                Some(due) => {
                    if due {
                        target.notify.wake();
                    }
                    return Ok(data.len());
                }
                None => io.wait(&target.notify, RX_ROOM)?,
            }
        }
    }

    fn dgram_recv(&self, out: &mut [u8], io: Io) -> KResult<Received> {
        let peek = io.flags & MSG_PEEK != 0;
        loop {
            let got = {
                let mut st = self.st.lock();
                match st.rx.front() {
                    Some(d) => {
                        let n = d.data.len().min(out.len());
                        out[..n].copy_from_slice(&d.data[..n]);
                        let mut r = Received {
                            len: n,
                            full_len: d.data.len(),
                            from: Some(SockAddr::Unix(d.from.clone())),
                            flags: if n < d.data.len() { MSG_TRUNC } else { 0 },
                            rights: Vec::new(),
                        };
                        let mut due = false;
                        if !peek {
                            if let Some(d) = st.rx.pop_front() {
                                st.rx_bytes -= d.data.len();
                                r.rights = d.rights;
                            }
                            due = self.publish(&st, false);
                        }
                        Some((r, due))
                    }
                    None if st.shut & RCV != 0 => Some((Received::default(), false)),
                    None => None,
                }
            };
            if let Some((r, due)) = got {
                if due {
                    self.notify.wake();
                }
                return Ok(r);
            }
            io.wait(&self.notify, POLLIN)?;
        }
    }

    /// `connect` for streams: queue a new server end at the listener.
    fn stream_connect(&self, env: &Env, addr: &UnixAddr, io: Io) -> KResult<()> {
        let my_name = {
            let st = self.st.lock();
            match st.role {
                Role::Connected { .. } => return Err(Errno::EISCONN),
                Role::Listening { .. } => return Err(Errno::EINVAL),
                Role::Idle => st.name.clone(),
            }
        };
        let target = find(env.fs, self.ty, addr)?;
        loop {
            let queued = {
                let mut t = target.st.lock();
                let name = t.name.clone();
                let Role::Listening {
                    backlog,
                    pending,
                    cred,
                } = &mut t.role
                else {
                    return Err(Errno::ECONNREFUSED);
                };
                if pending.len() > *backlog {
                    None
                } else {
                    // Linux connects a new server end right away; accept
                    // only hands it out.
                    let server = new_socket(self.ty);
                    join(self, &server, [my_name.clone(), name], [env.cred, *cred]);
                    pending.push_back(server);
                    Some(target.publish(&t, true))
                }
            };
            match queued {
                Some(due) => {
                    if due {
                        target.notify.wake();
                    }
                    return Ok(());
                }
                None => io.wait(&target.notify, RX_ROOM)?,
            }
        }
    }
}

impl Socket for UnixSocket {
    fn domain(&self) -> u16 {
        AF_UNIX
    }
    fn sock_type(&self) -> u32 {
        self.ty
    }
    fn protocol(&self) -> u32 {
        0
    }
    fn opts(&self) -> &SockOpts {
        &self.opts
    }
    fn notify(&self) -> &Notify {
        &self.notify
    }

    /// A path creates a node there (EADDRINUSE if the path exists); an
    /// abstract name must be free; an empty name autobinds. EINVAL if
    /// already bound.
    fn bind(&self, env: &Env, addr: SockAddr) -> KResult<()> {
        let SockAddr::Unix(addr) = addr else {
            return Err(Errno::EINVAL);
        };
        let mut st = self.st.lock();
        if st.name != UnixAddr::Unnamed {
            return Err(Errno::EINVAL);
        }
        match &addr {
            UnixAddr::Unnamed => self.autobind(&mut st),
            UnixAddr::Abstract(n) => {
                self.register(&mut st, NameKey::Abstract(self.ty, n.clone()), addr.clone())
            }
            UnixAddr::Path(p) => {
                let (cwd, _) = env.fs.cwd();
                let parent = env.fs.vfs().resolve_parent(&cwd, p)?;
                let perm = 0o777 & !env.fs.umask();
                let node = parent
                    .dir
                    .create(&parent.name, NewNode::File, perm)
                    .map_err(|e| {
                        if e == Errno::EEXIST {
                            Errno::EADDRINUSE
                        } else {
                            e
                        }
                    })?;
                let m = node.metadata();
                self.register(&mut st, NameKey::Node(m.dev, m.ino), addr.clone())
            }
        }
    }

    /// Streams and seqpacket only (EOPNOTSUPP for datagrams); EINVAL
    /// when connected or unbound (Linux does not autobind here). A second
    /// `listen` changes the backlog.
    fn listen(&self, backlog: u32) -> KResult<()> {
        if self.ty == SOCK_DGRAM {
            return Err(Errno::EOPNOTSUPP);
        }
        let due = {
            let mut st = self.st.lock();
            if st.name == UnixAddr::Unnamed {
                return Err(Errno::EINVAL);
            }
            match &mut st.role {
                Role::Connected { .. } => return Err(Errno::EINVAL),
                Role::Listening { backlog: b, .. } => *b = backlog as usize,
                Role::Idle => {
                    st.role = Role::Listening {
                        backlog: backlog as usize,
                        pending: VecDeque::new(),
                        cred: Ucred {
                            pid: crate::linux::process::PID,
                            uid: 0,
                            gid: 0,
                        },
                    };
                }
            }
            self.publish(&st, true)
        };
        if due {
            self.notify.wake();
        }
        Ok(())
    }

    fn accept(&self, io: Io) -> KResult<Arc<dyn Socket>> {
        loop {
            let got = {
                let mut st = self.st.lock();
                let Role::Listening { pending, .. } = &mut st.role else {
                    return Err(Errno::EINVAL);
                };
                pending.pop_front().map(|s| {
                    let due = self.publish(&st, false);
                    (s, due)
                })
            };
            if let Some((s, due)) = got {
                if due {
                    self.notify.wake();
                }
                return Ok(s);
            }
            io.wait(&self.notify, POLLIN)?;
        }
    }

    /// Streams queue at a listener (ECONNREFUSED if nothing listens there,
    /// EAGAIN when non-blocking and its backlog is full); datagram sockets
    /// set their default peer (AF_UNSPEC dissolves it).
    fn connect(&self, env: &Env, addr: SockAddr, io: Io) -> KResult<()> {
        let addr = match addr {
            SockAddr::Unix(UnixAddr::Unnamed) => return Err(Errno::EINVAL),
            SockAddr::Unix(a) => a,
            SockAddr::Unspec if self.ty == SOCK_DGRAM => {
                self.st.lock().peer = None;
                return Ok(());
            }
            _ => return Err(Errno::EINVAL),
        };
        if self.ty != SOCK_DGRAM {
            return self.stream_connect(env, &addr, io);
        }
        let target = find(env.fs, self.ty, &addr)?;
        self.st.lock().peer = Some((Arc::downgrade(&target), addr));
        Ok(())
    }

    fn send(
        &self,
        env: Option<&Env>,
        data: &[u8],
        to: Option<SockAddr>,
        rights: Vec<Arc<OpenFile>>,
        io: Io,
    ) -> KResult<usize> {
        if self.ty == SOCK_DGRAM {
            return self.dgram_send(data, to, rights, io, env.map(|e| e.fs));
        }
        match self.conn() {
            // Linux: an address on a connected stream is EISCONN.
            Some(_) if to.is_some() => Err(Errno::EISCONN),
            Some((conn, side)) => conn.send(side, data, rights, io),
            None if to.is_some() => Err(Errno::EOPNOTSUPP),
            None => Err(Errno::ENOTCONN),
        }
    }

    fn recv(&self, buf: &mut [u8], io: Io) -> KResult<Received> {
        if self.ty == SOCK_DGRAM {
            return self.dgram_recv(buf, io);
        }
        match self.conn() {
            Some((conn, side)) => conn.recv(side, buf, io),
            None => Err(Errno::EINVAL),
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        let bits = match how {
            SHUT_RD => RCV,
            SHUT_WR => SEND,
            SHUT_RDWR => MASK,
            _ => return Err(Errno::EINVAL),
        };
        if let Some((conn, side)) = self.conn() {
            conn.shutdown(side, bits);
            return Ok(());
        }
        let (due, peer) = {
            let mut st = self.st.lock();
            st.shut |= bits;
            (
                self.publish(&st, true),
                st.peer.as_ref().and_then(|p| p.0.upgrade()),
            )
        };
        if due {
            self.notify.wake();
        }
        // A connected datagram peer sees the mirror image, as on Linux.
        if let Some(p) = peer {
            let mirror = ((bits & RCV) << 1) | ((bits & SEND) >> 1);
            let due = {
                let mut st = p.st.lock();
                st.shut |= mirror;
                p.publish(&st, true)
            };
            if due {
                p.notify.wake();
            }
        }
        Ok(())
    }

    fn local_addr(&self) -> KResult<SockAddr> {
        let st = self.st.lock();
        if let Role::Connected { conn, side } = &st.role {
            return Ok(SockAddr::Unix(conn.names[*side].clone()));
        }
        Ok(SockAddr::Unix(st.name.clone()))
    }

    fn peer_addr(&self) -> KResult<SockAddr> {
        let st = self.st.lock();
        match &st.role {
            Role::Connected { conn, side } => Ok(SockAddr::Unix(conn.names[1 - side].clone())),
            _ => match &st.peer {
                Some((w, a)) if w.strong_count() > 0 => Ok(SockAddr::Unix(a.clone())),
                _ => Err(Errno::ENOTCONN),
            },
        }
    }

    fn peer_cred(&self) -> Ucred {
        match &self.st.lock().role {
            Role::Connected { conn, side } => conn.creds[1 - side],
            Role::Listening { cred, .. } => *cred,
            Role::Idle => Ucred::NONE,
        }
    }

    fn is_listening(&self) -> bool {
        matches!(self.st.lock().role, Role::Listening { .. })
    }

    fn readable_bytes(&self) -> Option<usize> {
        if let Some((conn, side)) = self.conn() {
            let st = conn.st.lock();
            return Some(match st.records[side].front() {
                Some(&len) => len,
                None => st.buf[side].len(),
            });
        }
        let st = self.st.lock();
        Some(st.rx.front().map_or(0, |d| d.data.len()))
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let st = self.st.get_mut();
        if let Some(key) = st.key.take() {
            let mut names = NAMES.lock();
            if names.get(&key).is_some_and(|w| w.strong_count() == 0) {
                names.remove(&key);
            }
        }
        match core::mem::replace(&mut st.role, Role::Idle) {
            Role::Connected { conn, side } => conn.shutdown(side, MASK),
            Role::Listening { pending, .. } => drop(pending),
            Role::Idle => {}
        }
        // A connected datagram peer's writes now fail (ECONNREFUSED).
        st.rx.clear();
    }
}
