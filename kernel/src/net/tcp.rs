//! TCP sockets with Linux semantics over smoltcp's: what a Linux socket is
//! doing ([`State`]) and the smoltcp sockets behind it.
//!
//! - `listen(backlog)` keeps a small pool of smoltcp listening sockets per
//!   interface (smoltcp's listener *becomes* the connection) and refills it
//!   after each poll, so a burst of SYNs finds listeners; connections that
//!   reach ESTABLISHED move to the accept queue, at most `backlog + 1` of
//!   them (Linux's limit), the rest wait in SYN-RECEIVED.
//! - `connect` binds an ephemeral port, sends the SYN and polls at once;
//!   the outcome shows in the readiness bits (POLLOUT, or POLLERR with
//!   `SO_ERROR` = ECONNREFUSED when the peer answered RST).
//! - `close` sends FIN (RST when unread data is left, as Linux does) and
//!   leaves the smoltcp socket to finish the handshake as an orphan,
//!   removed once CLOSED or TIME-WAIT.
//!
//! Every function takes the locked [`Stack`]; blocking and the syscall
//! flags are the caller's (`linux::socket::inet`).

use super::notify::{Notify, STATE};
use super::ports::{BindAddr, Binding, PortError};
use super::stack::Stack;
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State as Tcp};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

/// Idle listening sockets kept per interface while connections arrive
/// (a burst: some listener was in SYN-RECEIVED or became a connection
/// since the last refresh), and while none do. Every smoltcp socket costs
/// each poll (smoltcp walks its socket set on every poll and `poll_at`,
/// `refresh` walks the listeners), so a quiet listener keeps few; the NIC
/// is told how many SYNs it may hand smoltcp per round ([`syn_room`]).
const LISTEN_POOL: usize = 16;
const LISTEN_IDLE: usize = 2;
/// The fewest idle listeners any listening socket has on a NIC (not the
/// loopback), published by [`refresh`]; usize::MAX when none listens.
static SYN_ROOM: AtomicUsize = AtomicUsize::new(usize::MAX);

/// SYNs a NIC may hand smoltcp before the next refresh without one
/// finding no listener (at least 1, so a SYN for a full backlog still
/// gets its answer).
pub fn syn_room() -> usize {
    SYN_ROOM.load(Ordering::Relaxed).max(1)
}
/// smoltcp buffer sizes: at least this, more if `SO_RCVBUF`/`SO_SNDBUF`
/// asked for it (up to [`BUF_MAX`]).
pub const BUF_DEFAULT: usize = 64 * 1024;
pub const BUF_MAX: usize = 4 << 20;
/// Linux's `tcp_keepalive_time`.
const KEEPALIVE: Duration = Duration::from_secs(7200);

/// (interface index, smoltcp socket).
type Sock = (usize, SocketHandle);

/// What the Linux socket is doing.
pub enum State {
    Idle,
    Listening {
        backlog: usize,
        endpoint: IpListenEndpoint,
        /// Interfaces the listener covers.
        ifaces: Vec<usize>,
        /// In LISTEN or SYN-RECEIVED.
        listeners: Vec<Sock>,
        /// ESTABLISHED, waiting for `accept`.
        ready: VecDeque<Sock>,
    },
    Connecting(Sock),
    Connected(Sock),
    /// A connect failed, or the connection is gone.
    Closed,
}

/// One Linux TCP socket.
pub struct Entry {
    pub notify: Arc<Notify>,
    /// AF_INET6 (else AF_INET).
    pub v6: bool,
    pub v6only: bool,
    pub state: State,
    /// The port binding held (address, port).
    pub bound: Option<(BindAddr, u16)>,
    pub local: Option<IpEndpoint>,
    pub remote: Option<IpEndpoint>,
    /// `SO_ERROR`.
    pub error: Option<Errno>,
    pub rd_shut: bool,
    pub wr_shut: bool,
    /// The Linux socket was closed; the connection finishes alone.
    orphan: bool,
    pub nodelay: bool,
    pub keepalive: bool,
    pub rx_size: usize,
    pub tx_size: usize,
    last: Tcp,
    last_rx: usize,
    last_tx_room: usize,
}

impl Entry {
    fn new(v6: bool) -> Entry {
        Entry {
            notify: Arc::new(Notify::new()),
            v6,
            v6only: false,
            state: State::Idle,
            bound: None,
            local: None,
            remote: None,
            error: None,
            rd_shut: false,
            wr_shut: false,
            orphan: false,
            nodelay: false,
            keepalive: false,
            rx_size: BUF_DEFAULT,
            tx_size: BUF_DEFAULT,
            last: Tcp::Closed,
            last_rx: 0,
            last_tx_room: 0,
        }
    }

    fn sock(&self) -> Option<Sock> {
        match self.state {
            State::Connecting(s) | State::Connected(s) => Some(s),
            _ => None,
        }
    }

    /// The wildcard of this socket's families.
    pub fn any(&self) -> BindAddr {
        BindAddr::Any {
            v4: !self.v6 || !self.v6only,
            v6: self.v6,
        }
    }
}

fn new_socket(rx: usize, tx: usize, nodelay: bool, keepalive: bool) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; rx]),
        tcp::SocketBuffer::new(vec![0; tx]),
    );
    s.set_nagle_enabled(!nodelay);
    s.set_keep_alive(keepalive.then_some(KEEPALIVE));
    s
}

fn sk(st: &mut Stack, (i, h): Sock) -> &mut tcp::Socket<'static> {
    st.ifaces[i].sockets().get_mut::<tcp::Socket>(h)
}

fn entry(st: &mut Stack, id: u64) -> KResult<&mut Entry> {
    st.tcp.get_mut(&id).ok_or(Errno::EBADF)
}

/// A new unbound socket: its id and readiness.
pub fn create(st: &mut Stack, v6: bool) -> (u64, Arc<Notify>) {
    let id = st.new_id();
    let e = Entry::new(v6);
    let n = e.notify.clone();
    st.tcp.insert(id, e);
    refresh_one(st, id);
    (id, n)
}

fn port_error(e: PortError) -> Errno {
    match e {
        PortError::InUse => Errno::EADDRINUSE,
        PortError::Exhausted => Errno::EADDRNOTAVAIL,
    }
}

/// `bind`: `addr` None is the wildcard. EINVAL if already bound,
/// EADDRNOTAVAIL for an address no interface has, EADDRINUSE.
pub fn bind(
    st: &mut Stack,
    id: u64,
    addr: Option<IpAddress>,
    port: u16,
    reuseaddr: bool,
    reuseport: bool,
) -> KResult<()> {
    if let Some(ip) = addr {
        if st.owner_of(&ip).is_none() {
            return Err(Errno::EADDRNOTAVAIL);
        }
    }
    let e = entry(st, id)?;
    if e.bound.is_some() || !matches!(e.state, State::Idle) {
        return Err(Errno::EINVAL);
    }
    let ba = addr.map_or(e.any(), BindAddr::Ip);
    let b = Binding {
        owner: id,
        addr: ba,
        reuseaddr,
        reuseport,
        listening: false,
    };
    let port = st.tcp_ports.bind(port, b).map_err(port_error)?;
    entry(st, id)?.bound = Some((ba, port));
    Ok(())
}

/// `listen`: binds an ephemeral port if unbound; a second call only
/// changes the backlog.
pub fn listen(
    st: &mut Stack,
    id: u64,
    backlog: usize,
    reuseaddr: bool,
    reuseport: bool,
) -> KResult<()> {
    let e = entry(st, id)?;
    match &mut e.state {
        State::Listening { backlog: b, .. } => {
            *b = backlog;
            return Ok(());
        }
        State::Idle => {}
        _ => return Err(Errno::EINVAL),
    }
    if e.bound.is_none() {
        bind(st, id, None, 0, reuseaddr, reuseport)?;
    }
    let e = entry(st, id)?;
    let Some((ba, port)) = e.bound else {
        return Err(Errno::EINVAL);
    };
    st.tcp_ports.listen(port, id).map_err(port_error)?;
    let ifaces: Vec<usize> = match ba.ip() {
        Some(ip) => st.owner_of(&ip).into_iter().collect(),
        None => (0..st.ifaces.len()).collect(),
    };
    let e = entry(st, id)?;
    e.local = Some(IpEndpoint::new(
        ba.ip().unwrap_or(if e.v6 {
            IpAddress::v6(0, 0, 0, 0, 0, 0, 0, 0)
        } else {
            IpAddress::v4(0, 0, 0, 0)
        }),
        port,
    ));
    e.state = State::Listening {
        backlog,
        endpoint: IpListenEndpoint {
            addr: ba.ip(),
            port,
        },
        ifaces,
        listeners: Vec::new(),
        ready: VecDeque::new(),
    };
    refresh_one(st, id);
    Ok(())
}

/// `accept`: the next established connection (None: none yet).
/// Connections of the other family (an AF_INET listener on the wildcard
/// sees IPv6 peers too in smoltcp; `IPV6_V6ONLY` refuses IPv4) are reset.
pub fn accept(st: &mut Stack, id: u64) -> KResult<Option<(u64, Arc<Notify>)>> {
    loop {
        let e = entry(st, id)?;
        let (v6, v6only, nodelay, keepalive) = (e.v6, e.v6only, e.nodelay, e.keepalive);
        let State::Listening { ready, .. } = &mut e.state else {
            return Err(Errno::EINVAL);
        };
        let Some(s) = ready.pop_front() else {
            return Ok(None);
        };
        let (local, remote) = {
            let so = sk(st, s);
            (so.local_endpoint(), so.remote_endpoint())
        };
        let wrong = match remote.map(|r| r.addr) {
            Some(IpAddress::Ipv6(_)) => !v6,
            Some(IpAddress::Ipv4(_)) => v6 && v6only,
            None => true,
        };
        // smoltcp's wildcard listen sockets match both families: an IPv4
        // peer caught by an `IPV6_V6ONLY` listener goes to the AF_INET
        // listener of the same port when there is one (memcached, nginx
        // listen on both).
        if wrong && v6 && matches!(remote.map(|r| r.addr), Some(IpAddress::Ipv4(_))) {
            let at = local.map(|l| (l.addr, l.port));
            let other = st.tcp.iter().find_map(|(&oid, o)| match &o.state {
                State::Listening { endpoint, .. }
                    if oid != id
                        && (!o.v6 || !o.v6only)
                        && at.is_some_and(|(a, p)| {
                            endpoint.port == p && endpoint.addr.is_none_or(|x| x == a)
                        }) =>
                {
                    Some(oid)
                }
                _ => None,
            });
            if let Some(oid) = other {
                if let Some(State::Listening { ready, .. }) =
                    st.tcp.get_mut(&oid).map(|o| &mut o.state)
                {
                    ready.push_back(s);
                }
                refresh_one(st, oid);
                refresh_one(st, id);
                continue;
            }
        }
        let nid = st.new_id();
        let mut ne = Entry::new(v6);
        ne.state = State::Connected(s);
        ne.local = local;
        ne.remote = remote;
        ne.nodelay = nodelay;
        ne.keepalive = keepalive;
        ne.last = Tcp::Established;
        let n = ne.notify.clone();
        {
            let so = sk(st, s);
            so.set_nagle_enabled(!nodelay);
            so.set_keep_alive(keepalive.then_some(KEEPALIVE));
        }
        st.tcp.insert(nid, ne);
        if wrong {
            sk(st, s).abort();
            close(st, nid);
            continue;
        }
        refresh_one(st, nid);
        refresh_one(st, id);
        return Ok(Some((nid, n)));
    }
}

/// `connect` to `remote`: Ok(true) when connected already (loopback
/// usually is), Ok(false) while the handshake runs or after it failed
/// (see [`connect_result`]).
pub fn connect(st: &mut Stack, id: u64, remote: IpEndpoint) -> KResult<bool> {
    let e = entry(st, id)?;
    match e.state {
        State::Connecting(_) => return Err(Errno::EALREADY),
        State::Connected(_) => return Err(Errno::EISCONN),
        State::Listening { .. } => return Err(Errno::EISCONN),
        State::Idle | State::Closed => {}
    }
    if remote.port == 0 {
        return Err(Errno::ECONNREFUSED);
    }
    let ifx = st.route(&remote.addr).ok_or(Errno::ENETUNREACH)?;
    let e = entry(st, id)?;
    e.error = None;
    if e.bound.is_none() {
        let b = Binding {
            owner: id,
            addr: e.any(),
            reuseaddr: false,
            reuseport: false,
            listening: false,
        };
        let port = st.tcp_ports.bind(0, b).map_err(port_error)?;
        let any = entry(st, id)?.any();
        entry(st, id)?.bound = Some((any, port));
    }
    let e = entry(st, id)?;
    let Some((ba, port)) = e.bound else {
        return Err(Errno::EINVAL);
    };
    let (rx, tx, nodelay, keepalive) = (e.rx_size, e.tx_size, e.nodelay, e.keepalive);
    let local_ip = match ba.ip() {
        Some(ip) => ip,
        None => st.ifaces[ifx]
            .interface()
            .get_source_address(&remote.addr)
            .ok_or(Errno::EADDRNOTAVAIL)?,
    };
    let local = IpEndpoint::new(local_ip, port);
    let mut so = new_socket(rx, tx, nodelay, keepalive);
    let iface = &mut st.ifaces[ifx];
    so.connect(iface.interface().context(), remote, local)
        .map_err(|_| Errno::EADDRNOTAVAIL)?;
    let h = iface.sockets().add(so);
    let e = entry(st, id)?;
    e.state = State::Connecting((ifx, h));
    e.local = Some(local);
    e.remote = Some(remote);
    e.last = Tcp::SynSent;
    st.poll();
    // A refusal stays in SO_ERROR for `connect_result` (or the app).
    Ok(matches!(entry(st, id)?.state, State::Connected(_)))
}

/// Where a connect stands: Some(Ok) connected, Some(Err) failed (the
/// error is consumed, as `connect` reporting it clears `SO_ERROR`), None
/// still running.
pub fn connect_result(st: &mut Stack, id: u64) -> KResult<Option<KResult<()>>> {
    let e = entry(st, id)?;
    Ok(match e.state {
        State::Connecting(_) => None,
        State::Connected(_) => Some(Ok(())),
        _ => Some(Err(e.error.take().unwrap_or(Errno::ECONNREFUSED))),
    })
}

/// Queues what fits of `data`: the count (0: the buffer is full or the
/// connection not up yet; wait for POLLOUT).
pub fn send(st: &mut Stack, id: u64, data: &[u8]) -> KResult<usize> {
    let e = entry(st, id)?;
    let s = match e.state {
        State::Connecting(_) => return Ok(0),
        State::Connected(s) => s,
        State::Closed => return Err(e.error.take().unwrap_or(Errno::EPIPE)),
        _ => return Err(Errno::EPIPE),
    };
    if e.wr_shut {
        return Err(Errno::EPIPE);
    }
    if let Some(err) = e.error.take() {
        return Err(err);
    }
    let so = sk(st, s);
    if !so.may_send() {
        return Err(Errno::EPIPE);
    }
    let n = so.send_slice(data).map_err(|_| Errno::EPIPE)?;
    if n > 0 {
        st.poll();
    }
    Ok(n)
}

/// Takes (or peeks) received bytes: Some(0) at end of stream, None when
/// nothing is there yet.
pub fn recv(st: &mut Stack, id: u64, buf: &mut [u8], peek: bool) -> KResult<Option<usize>> {
    let e = entry(st, id)?;
    let s = match e.state {
        State::Connecting(_) => return Ok(None),
        State::Connected(s) => s,
        State::Closed => {
            return match e.error.take() {
                Some(err) => Err(err),
                None => Ok(Some(0)),
            }
        }
        _ => return Err(Errno::ENOTCONN),
    };
    if e.rd_shut {
        return Ok(Some(0));
    }
    let so = sk(st, s);
    if so.can_recv() {
        let n = if peek {
            so.peek_slice(buf)
        } else {
            so.recv_slice(buf)
        }
        .map_err(|_| Errno::ENOTCONN)?;
        if !peek {
            // The window opened: let the peer know.
            st.poll();
        }
        return Ok(Some(n));
    }
    if !so.may_recv() {
        let e = entry(st, id)?;
        return match e.error.take() {
            Some(err) => Err(err),
            None => Ok(Some(0)),
        };
    }
    Ok(None)
}

/// Bytes waiting to be read (`FIONREAD`).
pub fn readable(st: &mut Stack, id: u64) -> usize {
    match st.tcp.get(&id).and_then(Entry::sock) {
        Some(s) => sk(st, s).recv_queue(),
        None => 0,
    }
}

/// `shutdown`: `rd`/`wr` halves.
pub fn shutdown(st: &mut Stack, id: u64, rd: bool, wr: bool) -> KResult<()> {
    let e = entry(st, id)?;
    let s = match e.state {
        State::Connected(s) | State::Connecting(s) => s,
        State::Listening { .. } if rd => {
            // Linux stops a listener on SHUT_RD: it no longer accepts.
            return Ok(());
        }
        _ => return Err(Errno::ENOTCONN),
    };
    if rd {
        e.rd_shut = true;
    }
    if wr && !e.wr_shut {
        e.wr_shut = true;
        sk(st, s).close();
    }
    st.poll();
    refresh_one(st, id);
    Ok(())
}

/// The Linux socket is closed: release the port, end the connection
/// (FIN, or RST with unread data), let it finish as an orphan.
pub fn close(st: &mut Stack, id: u64) {
    let Some(e) = st.tcp.get_mut(&id) else {
        return;
    };
    e.orphan = true;
    if let Some((_, port)) = e.bound.take() {
        st.tcp_ports.release(port, id);
    }
    let Some(e) = st.tcp.get_mut(&id) else {
        return;
    };
    match core::mem::replace(&mut e.state, State::Closed) {
        State::Listening {
            listeners, ready, ..
        } => {
            for s in listeners.into_iter().chain(ready) {
                sk(st, s).abort();
                // Aborted sockets still owe the peer an RST: keep them as
                // orphans until a poll has sent it.
                let nid = st.new_id();
                let mut oe = Entry::new(false);
                oe.state = State::Connected(s);
                oe.orphan = true;
                st.tcp.insert(nid, oe);
            }
            st.tcp.remove(&id);
        }
        State::Connected(s) | State::Connecting(s) => {
            if let Some(e) = st.tcp.get_mut(&id) {
                e.state = State::Connected(s);
            }
            let so = sk(st, s);
            if so.recv_queue() > 0 {
                so.abort();
            } else {
                so.close();
            }
        }
        State::Idle | State::Closed => {
            st.tcp.remove(&id);
        }
    }
    st.poll();
}

/// Sets `TCP_NODELAY`.
pub fn set_nodelay(st: &mut Stack, id: u64, on: bool) -> KResult<()> {
    let e = entry(st, id)?;
    e.nodelay = on;
    if let Some(s) = e.sock() {
        sk(st, s).set_nagle_enabled(!on);
        if on {
            st.poll();
        }
    }
    Ok(())
}

/// Sets `SO_KEEPALIVE`.
pub fn set_keepalive(st: &mut Stack, id: u64, on: bool) -> KResult<()> {
    let e = entry(st, id)?;
    e.keepalive = on;
    if let Some(s) = e.sock() {
        sk(st, s).set_keep_alive(on.then_some(KEEPALIVE));
    }
    Ok(())
}

/// The poll bits of a socket, Linux's `tcp_poll` rules.
fn bits(e: &Entry, so: Option<&tcp::Socket>) -> u32 {
    let err = if e.error.is_some() { POLLERR } else { 0 };
    match (&e.state, so) {
        (State::Idle, _) => POLLOUT | POLLWRNORM | POLLHUP,
        (State::Listening { ready, .. }, _) => {
            if ready.is_empty() {
                0
            } else {
                POLLIN | POLLRDNORM
            }
        }
        (State::Connecting(_), _) => err,
        (State::Closed, _) => {
            POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLWRNORM | POLLHUP | err | STATE
        }
        (State::Connected(_), None) => POLLHUP | err | STATE,
        (State::Connected(_), Some(so)) => {
            let st = so.state();
            let peer_fin = matches!(
                st,
                Tcp::CloseWait | Tcp::LastAck | Tcp::Closing | Tcp::TimeWait | Tcp::Closed
            );
            let rcv_shut = e.rd_shut || peer_fin;
            let snd_shut = e.wr_shut || st == Tcp::Closed;
            let mut b = err | STATE;
            if (rcv_shut && snd_shut) || st == Tcp::Closed {
                b |= POLLHUP;
            }
            if rcv_shut {
                b |= POLLIN | POLLRDNORM | POLLRDHUP;
            }
            if so.can_recv() {
                b |= POLLIN | POLLRDNORM;
            }
            if snd_shut || so.can_send() {
                b |= POLLOUT | POLLWRNORM;
            }
            b
        }
    }
}

/// Republishes one socket's readiness.
fn refresh_one(st: &mut Stack, id: u64) {
    if let Some((b, n)) = bits_of(st, id) {
        st.publish(&n, b, false);
    }
}

/// The bits of socket `id` and its notifier.
fn bits_of(st: &mut Stack, id: u64) -> Option<(u32, Arc<Notify>)> {
    let Stack { ifaces, tcp, .. } = st;
    let e = tcp.get(&id)?;
    let so = e
        .sock()
        .map(|(i, h)| &*ifaces[i].sockets().get_mut::<tcp::Socket>(h));
    Some((bits(e, so), e.notify.clone()))
}

/// After a poll: moves finished handshakes to accept queues, refills
/// listener pools, notices connects that completed or failed and resets,
/// reaps orphans, and republishes every socket's readiness.
///
/// Connected sockets the app still holds (the common case) are refreshed
/// in one pass over the table; the others (listeners, connects, orphans)
/// may add or remove sockets and go through [`refresh_entry`].
pub fn refresh(st: &mut Stack) {
    let mut others: Vec<u64> = Vec::new();
    {
        let Stack {
            ifaces,
            tcp,
            to_wake,
            ..
        } = st;
        for (&id, e) in tcp.iter_mut() {
            let State::Connected((i, h)) = e.state else {
                others.push(id);
                continue;
            };
            if e.orphan {
                others.push(id);
                continue;
            }
            let so = &*ifaces[i].sockets().get_mut::<tcp::Socket>(h);
            let event = track(e, so);
            if e.notify.store(bits(e, Some(so)), event) {
                to_wake.push(e.notify.clone());
            }
        }
    }
    let mut room = usize::MAX;
    for id in others {
        if let Some(idle) = refresh_entry(st, id) {
            room = room.min(idle);
        }
    }
    SYN_ROOM.store(room, Ordering::Relaxed);
}

/// Follows a connection's smoltcp state: notices a reset (SO_ERROR) and
/// whether something the app waits for happened (an edge for EPOLLET).
fn track(e: &mut Entry, so: &tcp::Socket) -> bool {
    let now = so.state();
    let (rxq, room) = (so.recv_queue(), so.send_capacity() - so.send_queue());
    if now == Tcp::Closed
        && matches!(
            e.last,
            Tcp::Established | Tcp::FinWait1 | Tcp::FinWait2 | Tcp::CloseWait | Tcp::SynReceived
        )
        && !e.orphan
    {
        // Closed without a FIN exchange: the peer reset it (EPIPE
        // after its FIN, as Linux's tcp_reset in CLOSE_WAIT).
        e.error = Some(if e.last == Tcp::CloseWait {
            Errno::EPIPE
        } else {
            Errno::ECONNRESET
        });
    }
    let event = now != e.last || rxq > e.last_rx || room > e.last_tx_room;
    e.last = now;
    e.last_rx = rxq;
    e.last_tx_room = room;
    event
}

/// How many interfaces a listener's idle counts track inline.
const MAX_IFACES: usize = 8;

/// Refreshes one socket; for a listener, returns the fewest idle
/// listeners it has left on a NIC.
fn refresh_entry(st: &mut Stack, id: u64) -> Option<usize> {
    let e = st.tcp.get_mut(&id)?;
    let mut event = false;
    let mut syn_room = None;
    let mut state = core::mem::replace(&mut e.state, State::Closed);
    match &mut state {
        State::Listening {
            backlog,
            endpoint,
            ifaces,
            listeners,
            ready,
        } => {
            // One pass: hand-offs to the accept queue, idle counts.
            let mut idle = [0usize; MAX_IFACES];
            let mut busy = false;
            let mut i = 0;
            while i < listeners.len() {
                let s = listeners[i];
                match sk(st, s).state() {
                    Tcp::Listen => {
                        if let Some(n) = idle.get_mut(s.0) {
                            *n += 1;
                        }
                        i += 1;
                    }
                    Tcp::SynReceived => {
                        busy = true;
                        i += 1;
                    }
                    Tcp::Established | Tcp::CloseWait if ready.len() <= *backlog => {
                        ready.push_back(listeners.remove(i));
                        event = true;
                        busy = true;
                    }
                    Tcp::Established | Tcp::CloseWait => {
                        busy = true;
                        i += 1;
                    }
                    _ => {
                        st.ifaces[s.0].sockets().remove(s.1);
                        listeners.remove(i);
                    }
                }
            }
            let (rx, tx, nodelay, keepalive) = {
                let e = &st.tcp[&id];
                (e.rx_size, e.tx_size, e.nodelay, e.keepalive)
            };
            let target = if busy { LISTEN_POOL } else { LISTEN_IDLE };
            let mut fewest = usize::MAX;
            for &ifx in ifaces.iter() {
                let have = match idle.get(ifx) {
                    Some(n) => *n,
                    None => listeners
                        .iter()
                        .filter(|s| s.0 == ifx && sk(st, **s).state() == Tcp::Listen)
                        .count(),
                };
                let mut now_idle = have;
                if have > target {
                    // Quiet again: drop the surplus idle listeners (a
                    // socket in LISTEN has no peer to tell).
                    let mut extra = have - target;
                    listeners.retain(|&s| {
                        if extra > 0 && s.0 == ifx && sk(st, s).state() == Tcp::Listen {
                            st.ifaces[s.0].sockets().remove(s.1);
                            extra -= 1;
                            false
                        } else {
                            true
                        }
                    });
                    now_idle = target;
                }
                let room = (*backlog + LISTEN_POOL).saturating_sub(listeners.len() + ready.len());
                for _ in 0..target.saturating_sub(have).min(room) {
                    let mut so = new_socket(rx, tx, nodelay, keepalive);
                    if so.listen(*endpoint).is_err() {
                        break;
                    }
                    let h = st.ifaces[ifx].sockets().add(so);
                    listeners.push((ifx, h));
                    now_idle += 1;
                }
                if !st.ifaces[ifx].is_loopback() {
                    fewest = fewest.min(now_idle);
                }
            }
            syn_room = Some(fewest);
        }
        State::Connecting(s) => {
            let now = sk(st, *s).state();
            match now {
                Tcp::SynSent | Tcp::SynReceived => {}
                Tcp::Closed | Tcp::TimeWait | Tcp::Listen => {
                    let s = *s;
                    st.ifaces[s.0].sockets().remove(s.1);
                    state = State::Closed;
                    if let Some(e) = st.tcp.get_mut(&id) {
                        e.error = Some(Errno::ECONNREFUSED);
                    }
                    event = true;
                }
                _ => {
                    state = State::Connected(*s);
                    event = true;
                }
            }
        }
        State::Connected(s) => {
            let s = *s;
            let Stack { ifaces, tcp, .. } = &mut *st;
            let so = &*ifaces[s.0].sockets().get_mut::<tcp::Socket>(s.1);
            let e = tcp.get_mut(&id)?;
            event |= track(e, so);
            let (now, rxq) = (e.last, e.last_rx);
            if e.orphan && matches!(now, Tcp::Closed | Tcp::TimeWait) {
                st.ifaces[s.0].sockets().remove(s.1);
                st.tcp.remove(&id);
                return None;
            }
            if e.orphan && rxq > 0 {
                // Data for a socket the app closed: Linux resets.
                sk(st, s).abort();
            }
        }
        State::Idle | State::Closed => {}
    }
    if let Some(e) = st.tcp.get_mut(&id) {
        e.state = state;
    }
    publish_bits(st, id, event);
    syn_room
}

/// Stores socket `id`'s bits (no reference count traffic unless a
/// wakeup is due).
fn publish_bits(st: &mut Stack, id: u64, event: bool) {
    let Stack {
        ifaces,
        tcp,
        to_wake,
        ..
    } = st;
    let Some(e) = tcp.get(&id) else { return };
    let so = e
        .sock()
        .map(|(i, h)| &*ifaces[i].sockets().get_mut::<tcp::Socket>(h));
    if e.notify.store(bits(e, so), event) {
        to_wake.push(e.notify.clone());
    }
}

/// Sets the smoltcp buffer sizes the next connect or listen uses.
pub fn configure(st: &mut Stack, id: u64, rx: usize, tx: usize) -> KResult<()> {
    let e = entry(st, id)?;
    e.rx_size = rx.clamp(BUF_DEFAULT, BUF_MAX);
    e.tx_size = tx.clamp(BUF_DEFAULT, BUF_MAX);
    Ok(())
}

/// Sets `IPV6_V6ONLY`: EINVAL once bound.
pub fn set_v6only(st: &mut Stack, id: u64, on: bool) -> KResult<()> {
    let e = entry(st, id)?;
    if e.bound.is_some() {
        return Err(Errno::EINVAL);
    }
    e.v6only = on;
    Ok(())
}

/// The local name (address None: the wildcard) and, when connected, the
/// peer.
pub fn names(st: &mut Stack, id: u64) -> KResult<super::Names> {
    let e = entry(st, id)?;
    let local = match (&e.state, e.local, e.bound) {
        (State::Connected(_) | State::Connecting(_) | State::Listening { .. }, Some(l), _) => {
            Some((Some(l.addr).filter(|a| !a.is_unspecified()), l.port))
        }
        (_, _, Some((ba, port))) => Some((ba.ip(), port)),
        (State::Closed, Some(l), None) => Some((Some(l.addr), l.port)),
        _ => None,
    };
    let remote = match e.state {
        State::Connected(_) => e.remote,
        _ => None,
    };
    Ok(super::Names { local, remote })
}

/// `SO_ERROR`: the pending error, cleared.
pub fn take_error(st: &mut Stack, id: u64) -> Option<Errno> {
    let e = st.tcp.get_mut(&id)?;
    let err = e.error.take();
    refresh_one(st, id);
    err
}

/// `SO_ACCEPTCONN`.
pub fn is_listening(st: &mut Stack, id: u64) -> bool {
    st.tcp
        .get(&id)
        .is_some_and(|e| matches!(e.state, State::Listening { .. }))
}
