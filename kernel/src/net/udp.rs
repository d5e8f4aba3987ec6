//! UDP sockets with Linux semantics over smoltcp's: one smoltcp socket per
//! interface the binding covers (a wildcard covers all), an ephemeral port
//! bound on first send or connect, `connect` filtering what is received
//! to the peer, datagrams of the other address family dropped (an AF_INET
//! socket on the wildcard; `IPV6_V6ONLY`).

use super::notify::Notify;
use super::ports::{BindAddr, Binding, PortError};
use super::stack::Stack;
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, UdpMetadata};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

/// Datagrams and payload bytes a socket buffers each way.
const RX_PACKETS: usize = 256;
const RX_BYTES: usize = 256 * 1024;
const TX_PACKETS: usize = 64;
const TX_BYTES: usize = 128 * 1024;
/// The largest UDP payload over IPv4 (65535 - 20 - 8).
pub const MAX_PAYLOAD: usize = 65507;

type Sock = (usize, SocketHandle);

/// One Linux UDP socket.
pub struct Entry {
    pub notify: Arc<Notify>,
    pub v6: bool,
    pub v6only: bool,
    pub bound: Option<(BindAddr, u16)>,
    socks: Vec<Sock>,
    pub remote: Option<IpEndpoint>,
    pub rd_shut: bool,
    pub wr_shut: bool,
    last_rx: usize,
}

impl Entry {
    fn any(&self) -> BindAddr {
        BindAddr::Any {
            v4: !self.v6 || !self.v6only,
            v6: self.v6,
        }
    }

    /// Whether a datagram from `from` belongs to this socket.
    fn wants(&self, from: &IpEndpoint) -> bool {
        let family_ok = match from.addr {
            IpAddress::Ipv4(_) => !self.v6 || !self.v6only,
            IpAddress::Ipv6(_) => self.v6,
        };
        family_ok && self.remote.is_none_or(|r| r == *from)
    }
}

fn entry(st: &mut Stack, id: u64) -> KResult<&mut Entry> {
    st.udp.get_mut(&id).ok_or(Errno::EBADF)
}

fn sk(st: &mut Stack, (i, h): Sock) -> &mut udp::Socket<'static> {
    st.ifaces[i].sockets().get_mut::<udp::Socket>(h)
}

/// A new unbound socket.
pub fn create(st: &mut Stack, v6: bool) -> (u64, Arc<Notify>) {
    let id = st.new_id();
    let e = Entry {
        notify: Arc::new(Notify::new()),
        v6,
        v6only: false,
        bound: None,
        socks: Vec::new(),
        remote: None,
        rd_shut: false,
        wr_shut: false,
        last_rx: 0,
    };
    let n = e.notify.clone();
    st.udp.insert(id, e);
    refresh_one(st, id, false);
    (id, n)
}

/// `bind` (`addr` None: the wildcard; `port` 0: ephemeral).
pub fn bind(
    st: &mut Stack,
    id: u64,
    addr: Option<IpAddress>,
    port: u16,
    reuseaddr: bool,
    reuseport: bool,
) -> KResult<()> {
    let ifaces: Vec<usize> = match addr {
        Some(ip) => vec![st.owner_of(&ip).ok_or(Errno::EADDRNOTAVAIL)?],
        None => (0..st.ifaces.len()).collect(),
    };
    let e = entry(st, id)?;
    if e.bound.is_some() {
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
    let port = st.udp_ports.bind(port, b).map_err(|e| match e {
        PortError::InUse => Errno::EADDRINUSE,
        PortError::Exhausted => Errno::EAGAIN,
    })?;
    let mut socks = Vec::new();
    for ifx in ifaces {
        let mut so = udp::Socket::new(
            PacketBuffer::new(vec![PacketMetadata::EMPTY; RX_PACKETS], vec![0; RX_BYTES]),
            PacketBuffer::new(vec![PacketMetadata::EMPTY; TX_PACKETS], vec![0; TX_BYTES]),
        );
        so.bind(IpListenEndpoint { addr, port })
            .map_err(|_| Errno::EINVAL)?;
        socks.push((ifx, st.ifaces[ifx].sockets().add(so)));
    }
    let e = entry(st, id)?;
    e.bound = Some((ba, port));
    e.socks = socks;
    refresh_one(st, id, false);
    Ok(())
}

fn autobind(st: &mut Stack, id: u64) -> KResult<()> {
    if entry(st, id)?.bound.is_none() {
        bind(st, id, None, 0, false, false)?;
    }
    Ok(())
}

/// `connect`: the default destination and receive filter (None: AF_UNSPEC,
/// dissolve it).
pub fn connect(st: &mut Stack, id: u64, remote: Option<IpEndpoint>) -> KResult<()> {
    if let Some(r) = remote {
        st.route(&r.addr).ok_or(Errno::ENETUNREACH)?;
        autobind(st, id)?;
    }
    entry(st, id)?.remote = remote;
    refresh_one(st, id, false);
    Ok(())
}

/// Sends one datagram: Ok(false) when the send buffer is full (wait for
/// POLLOUT). EDESTADDRREQ without a destination, EMSGSIZE above the
/// largest payload.
pub fn send(st: &mut Stack, id: u64, data: &[u8], to: Option<IpEndpoint>) -> KResult<bool> {
    let e = entry(st, id)?;
    if e.wr_shut {
        return Err(Errno::EPIPE);
    }
    let dest = to.or(e.remote).ok_or(Errno::EDESTADDRREQ)?;
    if data.len() > MAX_PAYLOAD {
        return Err(Errno::EMSGSIZE);
    }
    autobind(st, id)?;
    let ifx = st.route(&dest.addr).ok_or(Errno::ENETUNREACH)?;
    let e = entry(st, id)?;
    let s = *e
        .socks
        .iter()
        .find(|s| s.0 == ifx)
        .ok_or(Errno::ENETUNREACH)?;
    let local = e.bound.and_then(|b| b.0.ip());
    let so = sk(st, s);
    let meta = UdpMetadata {
        local_address: local,
        ..UdpMetadata::from(dest)
    };
    match so.send_slice(data, meta) {
        Ok(()) => {}
        Err(udp::SendError::BufferFull) => return Ok(false),
        Err(udp::SendError::Unaddressable) => return Err(Errno::EINVAL),
    }
    st.poll();
    Ok(true)
}

/// What one receive got.
pub struct Datagram {
    pub len: usize,
    pub full_len: usize,
    pub from: IpEndpoint,
}

/// Takes (or peeks) the next datagram for this socket: None when there
/// is none. Datagrams the socket does not want are dropped here.
pub fn recv(st: &mut Stack, id: u64, buf: &mut [u8], peek: bool) -> KResult<Option<Datagram>> {
    let e = entry(st, id)?;
    let socks = e.socks.clone();
    for s in socks {
        loop {
            let (got, wanted) = {
                let Stack { ifaces, udp, .. } = &mut *st;
                let e = udp.get(&id).ok_or(Errno::EBADF)?;
                let so = ifaces[s.0].sockets().get_mut::<udp::Socket>(s.1);
                let Ok((data, meta)) = so.peek() else { break };
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                (
                    Datagram {
                        len: n,
                        full_len: data.len(),
                        from: meta.endpoint,
                    },
                    e.wants(&meta.endpoint),
                )
            };
            if !peek || !wanted {
                let _ = sk(st, s).recv();
            }
            if wanted {
                refresh_one(st, id, false);
                return Ok(Some(got));
            }
        }
    }
    Ok(None)
}

/// `shutdown`.
pub fn shutdown(st: &mut Stack, id: u64, rd: bool, wr: bool) -> KResult<()> {
    let e = entry(st, id)?;
    if e.remote.is_none() {
        return Err(Errno::ENOTCONN);
    }
    e.rd_shut |= rd;
    e.wr_shut |= wr;
    refresh_one(st, id, true);
    Ok(())
}

/// Bytes of the next datagram (`FIONREAD`).
pub fn readable(st: &mut Stack, id: u64) -> usize {
    let Some(e) = st.udp.get(&id) else { return 0 };
    for s in e.socks.clone() {
        if let Ok((d, _)) = sk(st, s).peek() {
            return d.len();
        }
    }
    0
}

/// The Linux socket is closed.
pub fn close(st: &mut Stack, id: u64) {
    let Some(e) = st.udp.remove(&id) else { return };
    for (i, h) in e.socks {
        st.ifaces[i].sockets().remove(h);
    }
    if let Some((_, port)) = e.bound {
        st.udp_ports.release(port, id);
    }
}

fn refresh_one(st: &mut Stack, id: u64, event: bool) {
    let Stack { ifaces, udp, .. } = &mut *st;
    let Some(e) = udp.get_mut(&id) else { return };
    let mut queued = 0;
    let mut can_send = e.socks.is_empty();
    for &(i, h) in &e.socks {
        let so = ifaces[i].sockets().get_mut::<udp::Socket>(h);
        queued += so.recv_queue();
        can_send |= so.can_send();
    }
    let mut b = 0;
    if queued > 0 {
        b |= POLLIN | POLLRDNORM;
    }
    if e.rd_shut {
        b |= POLLIN | POLLRDNORM | POLLRDHUP;
    }
    if e.rd_shut && e.wr_shut {
        b |= POLLHUP;
    }
    if can_send {
        b |= POLLOUT | POLLWRNORM;
    }
    let event = event || queued > e.last_rx;
    e.last_rx = queued;
    let n = e.notify.clone();
    st.publish(&n, b, event);
}

/// After a poll: republishes every socket's readiness.
pub fn refresh(st: &mut Stack) {
    let ids: Vec<u64> = st.udp.keys().copied().collect();
    for id in ids {
        refresh_one(st, id, false);
    }
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

/// The local name (address None: the wildcard; a connected socket shows
/// the source address its datagrams carry) and the connected peer.
pub fn names(st: &mut Stack, id: u64) -> KResult<super::Names> {
    let e = entry(st, id)?;
    let (bound, remote) = (e.bound, e.remote);
    let local = match (bound, remote) {
        (Some((ba, port)), Some(r)) if ba.ip().is_none() => {
            let src = st
                .route(&r.addr)
                .and_then(|i| st.ifaces[i].interface().get_source_address(&r.addr));
            Some((src, port))
        }
        (Some((ba, port)), _) => Some((ba.ip(), port)),
        (None, _) => None,
    };
    Ok(super::Names { local, remote })
}
