//! AF_INET and AF_INET6 sockets (TCP and UDP) on the kernel's network
//! stack ([`crate::net`]): the Linux calls' semantics on top of
//! `net::tcp`/`net::udp` — blocking and non-blocking waits, EINPROGRESS and
//! `SO_ERROR` for connects, address conversion (an AF_INET6 socket sees
//! IPv4 peers as v4-mapped `::ffff:a.b.c.d`; the unspecified address
//! connects to the loopback, as Linux does), and the TCP and IP options.

use super::addr::{SockAddr, AF_INET, AF_INET6};
use super::msg::*;
use super::opts::{int_arg, SOL_SOCKET, SO_KEEPALIVE};
use super::{
    Env, Io, Received, SockOpts, Socket, SHUT_RD, SHUT_RDWR, SHUT_WR, SOCK_DGRAM, SOCK_STREAM,
};
use crate::errno::{Errno, KResult};
use crate::fs::pollbits::*;
use crate::linux::fd::OpenFile;
use crate::net::notify::STATE;
use crate::net::stack::with;
use crate::net::{stack, tcp, udp, Notify};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_IPV6: i32 = 41;
pub const TCP_NODELAY: i32 = 1;
pub const TCP_MAXSEG: i32 = 2;
pub const TCP_KEEPIDLE: i32 = 4;
pub const TCP_KEEPINTVL: i32 = 5;
pub const TCP_KEEPCNT: i32 = 6;
pub const IP_TOS: i32 = 1;
pub const IP_TTL: i32 = 2;
pub const IPV6_V6ONLY: i32 = 26;

/// Linux's defaults: `tcp_rmem[1]`, `tcp_wmem[1]`, and the core default
/// UDP uses.
const TCP_RCVBUF: u32 = 131_072;
const TCP_SNDBUF: u32 = 16_384;
const UDP_BUF: u32 = 212_992;
/// `SOCK_MAX`: types at or above it are EINVAL.
const SOCK_MAX: u32 = 11;

/// A TCP or UDP socket.
pub struct InetSocket {
    domain: u16,
    ty: u32,
    id: u64,
    notify: Arc<Notify>,
    opts: SockOpts,
    nodelay: AtomicU32,
    v6only: AtomicU32,
    keepidle: AtomicU32,
    keepintvl: AtomicU32,
    keepcnt: AtomicU32,
    tos: AtomicU32,
    ttl: AtomicU32,
    /// A non-blocking connect answered EINPROGRESS and nobody has asked
    /// for its outcome through `connect` yet.
    connecting: AtomicBool,
}

/// `socket(AF_INET or AF_INET6, ty, protocol)`.
pub fn create(domain: u16, ty: u32, protocol: u32) -> KResult<Arc<dyn Socket>> {
    if ty == 0 || ty >= SOCK_MAX {
        return Err(Errno::EINVAL);
    }
    let ok = match ty {
        SOCK_STREAM => protocol == 0 || protocol == IPPROTO_TCP as u32,
        SOCK_DGRAM => protocol == 0 || protocol == IPPROTO_UDP as u32,
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    if !ok {
        return Err(Errno::EPROTONOSUPPORT);
    }
    stack::start_thread();
    let v6 = domain == AF_INET6;
    let (id, notify) = with(|s| {
        if ty == SOCK_STREAM {
            tcp::create(s, v6)
        } else {
            udp::create(s, v6)
        }
    });
    let opts = if ty == SOCK_STREAM {
        SockOpts::new(TCP_RCVBUF, TCP_SNDBUF)
    } else {
        SockOpts::new(UDP_BUF, UDP_BUF)
    };
    Ok(Arc::new(InetSocket::new(domain, ty, id, notify, opts)))
}

impl InetSocket {
    fn new(domain: u16, ty: u32, id: u64, notify: Arc<Notify>, opts: SockOpts) -> InetSocket {
        InetSocket {
            domain,
            ty,
            id,
            notify,
            opts,
            nodelay: AtomicU32::new(0),
            v6only: AtomicU32::new(0),
            keepidle: AtomicU32::new(7200),
            keepintvl: AtomicU32::new(75),
            keepcnt: AtomicU32::new(9),
            tos: AtomicU32::new(0),
            ttl: AtomicU32::new(64),
            connecting: AtomicBool::new(false),
        }
    }

    fn is_tcp(&self) -> bool {
        self.ty == SOCK_STREAM
    }

    /// (address, port) of `sa` for this socket's family; None: the
    /// unspecified address.
    fn endpoint(&self, sa: &SockAddr) -> KResult<(Option<IpAddress>, u16)> {
        match (*sa).clone() {
            SockAddr::V4 { ip, port } if self.domain == AF_INET => {
                let a = Ipv4Address::from(ip);
                Ok(((!a.is_unspecified()).then_some(IpAddress::Ipv4(a)), port))
            }
            SockAddr::V6 { ip, port, .. } if self.domain == AF_INET6 => {
                let a = Ipv6Address::from(ip);
                if let Some(v4) = a.to_ipv4_mapped() {
                    if self.v6only.load(Ordering::Relaxed) != 0 {
                        return Err(Errno::ENETUNREACH);
                    }
                    return Ok(((!v4.is_unspecified()).then_some(IpAddress::Ipv4(v4)), port));
                }
                Ok(((!a.is_unspecified()).then_some(IpAddress::Ipv6(a)), port))
            }
            _ => Err(Errno::EAFNOSUPPORT),
        }
    }

    /// The destination for a connect or send: the unspecified address
    /// means this machine.
    fn remote(&self, sa: &SockAddr) -> KResult<IpEndpoint> {
        let (ip, port) = self.endpoint(sa)?;
        let ip = ip.unwrap_or(if self.domain == AF_INET6 {
            IpAddress::v6(0, 0, 0, 0, 0, 0, 0, 1)
        } else {
            IpAddress::v4(127, 0, 0, 1)
        });
        Ok(IpEndpoint::new(ip, port))
    }

    /// A stack address as this socket's family shows it.
    fn sockaddr(&self, ip: Option<IpAddress>, port: u16) -> SockAddr {
        match (self.domain, ip) {
            (AF_INET, Some(IpAddress::Ipv4(a))) => SockAddr::V4 {
                ip: a.octets(),
                port,
            },
            (AF_INET, _) => SockAddr::V4 { ip: [0; 4], port },
            (_, Some(IpAddress::Ipv6(a))) => SockAddr::V6 {
                ip: a.octets(),
                port,
                flowinfo: 0,
                scope_id: 0,
            },
            (_, Some(IpAddress::Ipv4(a))) => SockAddr::V6 {
                ip: a.to_ipv6_mapped().octets(),
                port,
                flowinfo: 0,
                scope_id: 0,
            },
            (_, None) => SockAddr::V6 {
                ip: [0; 16],
                port,
                flowinfo: 0,
                scope_id: 0,
            },
        }
    }

    fn names(&self) -> KResult<crate::net::Names> {
        with(|s| {
            if self.is_tcp() {
                tcp::names(s, self.id)
            } else {
                udp::names(s, self.id)
            }
        })
    }

    fn tcp_connect(&self, remote: IpEndpoint, io: Io) -> KResult<()> {
        if self.connecting.load(Ordering::Acquire) {
            // Linux: EALREADY while it runs, then once its outcome (0 or
            // the error), then EISCONN.
            return match with(|s| tcp::connect_result(s, self.id))? {
                None => Err(Errno::EALREADY),
                Some(r) => {
                    self.connecting.store(false, Ordering::Release);
                    r
                }
            };
        }
        let (rx, tx) = (self.opts.rcvbuf() as usize, self.opts.sndbuf() as usize);
        let done = with(|s| {
            tcp::configure(s, self.id, rx, tx)?;
            tcp::connect(s, self.id, remote)
        })?;
        if io.nonblock {
            // Linux answers EINPROGRESS even when the loopback handshake
            // is already done; the outcome is in POLLOUT and SO_ERROR.
            self.connecting.store(true, Ordering::Release);
            return Err(Errno::EINPROGRESS);
        }
        if done {
            return Ok(());
        }
        loop {
            if let Some(r) = with(|s| tcp::connect_result(s, self.id))? {
                return r;
            }
            // Interrupted: the connect goes on; Linux answers EINTR.
            io.wait(&self.notify, STATE | POLLERR).map_err(|e| {
                if e == Errno::ERESTARTSYS {
                    Errno::EINTR
                } else {
                    e
                }
            })?;
        }
    }
}

impl Socket for InetSocket {
    fn domain(&self) -> u16 {
        self.domain
    }
    fn sock_type(&self) -> u32 {
        self.ty
    }
    fn protocol(&self) -> u32 {
        if self.is_tcp() {
            IPPROTO_TCP as u32
        } else {
            IPPROTO_UDP as u32
        }
    }
    fn opts(&self) -> &SockOpts {
        &self.opts
    }
    fn notify(&self) -> &Notify {
        &self.notify
    }

    fn bind(&self, _env: &Env, addr: SockAddr) -> KResult<()> {
        let (ip, port) = self.endpoint(&addr)?;
        let (ra, rp) = (self.opts.reuseaddr(), self.opts.reuseport());
        with(|s| {
            if self.is_tcp() {
                tcp::bind(s, self.id, ip, port, ra, rp)
            } else {
                udp::bind(s, self.id, ip, port, ra, rp)
            }
        })
    }

    fn listen(&self, backlog: u32) -> KResult<()> {
        if !self.is_tcp() {
            return Err(Errno::EOPNOTSUPP);
        }
        let (rx, tx) = (self.opts.rcvbuf() as usize, self.opts.sndbuf() as usize);
        let (ra, rp) = (self.opts.reuseaddr(), self.opts.reuseport());
        with(|s| {
            tcp::configure(s, self.id, rx, tx)?;
            tcp::listen(s, self.id, backlog as usize, ra, rp)
        })
    }

    /// The new socket inherits `TCP_NODELAY`, `SO_KEEPALIVE` and the
    /// buffer sizes, as on Linux.
    fn accept(&self, io: Io) -> KResult<Arc<dyn Socket>> {
        if !self.is_tcp() {
            return Err(Errno::EOPNOTSUPP);
        }
        loop {
            if let Some((id, notify)) = with(|s| tcp::accept(s, self.id))? {
                let opts = SockOpts::new(self.opts.rcvbuf(), self.opts.sndbuf());
                let n = InetSocket::new(self.domain, self.ty, id, notify, opts);
                n.nodelay
                    .store(self.nodelay.load(Ordering::Relaxed), Ordering::Relaxed);
                if self.opts.keepalive() {
                    let _ = super::opts::set(&n, SOL_SOCKET, SO_KEEPALIVE, &1i32.to_le_bytes());
                }
                return Ok(Arc::new(n));
            }
            io.wait(&self.notify, POLLIN | POLLERR)?;
        }
    }

    fn connect(&self, _env: &Env, addr: SockAddr, io: Io) -> KResult<()> {
        if self.is_tcp() {
            if addr == SockAddr::Unspec {
                return Err(Errno::EAFNOSUPPORT);
            }
            let remote = self.remote(&addr)?;
            return self.tcp_connect(remote, io);
        }
        let remote = match addr {
            SockAddr::Unspec => None,
            a => Some(self.remote(&a)?),
        };
        with(|s| udp::connect(s, self.id, remote))
    }

    fn send(
        &self,
        _env: Option<&Env>,
        data: &[u8],
        to: Option<SockAddr>,
        rights: Vec<Arc<OpenFile>>,
        io: Io,
    ) -> KResult<usize> {
        if !rights.is_empty() {
            return Err(Errno::EINVAL);
        }
        if !self.is_tcp() {
            let dest = match to {
                Some(a) => Some(self.remote(&a)?),
                None => None,
            };
            loop {
                if with(|s| udp::send(s, self.id, data, dest))? {
                    return Ok(data.len());
                }
                io.wait(&self.notify, POLLOUT)?;
            }
        }
        let mut done = 0;
        loop {
            let n = match with(|s| tcp::send(s, self.id, &data[done..])) {
                Ok(n) => n,
                Err(_) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            };
            done += n;
            if done == data.len() {
                return Ok(done);
            }
            if n == 0 {
                if let Err(e) = io.wait(&self.notify, POLLOUT | POLLERR | POLLHUP) {
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            }
        }
    }

    fn recv(&self, buf: &mut [u8], io: Io) -> KResult<Received> {
        let peek = io.flags & MSG_PEEK != 0;
        loop {
            if self.is_tcp() {
                if let Some(n) = with(|s| tcp::recv(s, self.id, buf, peek))? {
                    return Ok(Received {
                        len: n,
                        full_len: n,
                        ..Received::default()
                    });
                }
                io.wait(&self.notify, POLLIN | POLLERR | POLLHUP)?;
            } else {
                if let Some(d) = with(|s| udp::recv(s, self.id, buf, peek))? {
                    return Ok(Received {
                        len: d.len,
                        full_len: d.full_len,
                        from: Some(self.sockaddr(Some(d.from.addr), d.from.port)),
                        flags: if d.len < d.full_len { MSG_TRUNC } else { 0 },
                        rights: Vec::new(),
                    });
                }
                if self.notify.bits() & POLLRDHUP != 0 {
                    return Ok(Received::default());
                }
                io.wait(&self.notify, POLLIN)?;
            }
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        let (rd, wr) = match how {
            SHUT_RD => (true, false),
            SHUT_WR => (false, true),
            SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        with(|s| {
            if self.is_tcp() {
                tcp::shutdown(s, self.id, rd, wr)
            } else {
                udp::shutdown(s, self.id, rd, wr)
            }
        })
    }

    fn local_addr(&self) -> KResult<SockAddr> {
        let (ip, port) = self.names()?.local.unwrap_or((None, 0));
        Ok(self.sockaddr(ip, port))
    }

    fn peer_addr(&self) -> KResult<SockAddr> {
        let r = self.names()?.remote.ok_or(Errno::ENOTCONN)?;
        Ok(self.sockaddr(Some(r.addr), r.port))
    }

    fn take_error(&self) -> Option<Errno> {
        if !self.is_tcp() {
            return None;
        }
        with(|s| tcp::take_error(s, self.id))
    }

    fn is_listening(&self) -> bool {
        self.is_tcp() && with(|s| tcp::is_listening(s, self.id))
    }

    fn get_option(&self, level: i32, name: i32) -> Option<KResult<Vec<u8>>> {
        let int = |v: u32| Some(Ok((v as i32).to_le_bytes().to_vec()));
        match (level, name) {
            // Linux's ip_getsockopt answers EOPNOTSUPP for a level the
            // socket does not have (setsockopt: ENOPROTOOPT).
            (IPPROTO_TCP, _) if !self.is_tcp() => Some(Err(Errno::EOPNOTSUPP)),
            (IPPROTO_TCP, TCP_NODELAY) => int(self.nodelay.load(Ordering::Relaxed)),
            (IPPROTO_TCP, TCP_MAXSEG) => int(crate::net::loopback::MTU as u32 - 40),
            (IPPROTO_TCP, TCP_KEEPIDLE) => int(self.keepidle.load(Ordering::Relaxed)),
            (IPPROTO_TCP, TCP_KEEPINTVL) => int(self.keepintvl.load(Ordering::Relaxed)),
            (IPPROTO_TCP, TCP_KEEPCNT) => int(self.keepcnt.load(Ordering::Relaxed)),
            (IPPROTO_IPV6, _) if self.domain != AF_INET6 => Some(Err(Errno::EOPNOTSUPP)),
            (IPPROTO_IPV6, IPV6_V6ONLY) => int(self.v6only.load(Ordering::Relaxed)),
            (IPPROTO_IP, IP_TOS) => int(self.tos.load(Ordering::Relaxed)),
            (IPPROTO_IP, IP_TTL) => int(self.ttl.load(Ordering::Relaxed)),
            (IPPROTO_TCP | IPPROTO_IPV6 | IPPROTO_IP | IPPROTO_UDP, _) => {
                Some(Err(Errno::ENOPROTOOPT))
            }
            _ => None,
        }
    }

    fn set_option(&self, level: i32, name: i32, val: &[u8]) -> Option<KResult<()>> {
        let v = match int_arg(val) {
            Ok(v) => v,
            Err(e) if matches!(level, IPPROTO_TCP | IPPROTO_IPV6 | IPPROTO_IP) => {
                return Some(Err(e))
            }
            Err(_) => 0,
        };
        let store = |a: &AtomicU32, min: i32, max: i32| {
            if !(min..=max).contains(&v) {
                return Some(Err(Errno::EINVAL));
            }
            a.store(v as u32, Ordering::Relaxed);
            Some(Ok(()))
        };
        match (level, name) {
            (IPPROTO_TCP, _) if !self.is_tcp() => Some(Err(Errno::ENOPROTOOPT)),
            (IPPROTO_TCP, TCP_NODELAY) => {
                self.nodelay.store(u32::from(v != 0), Ordering::Relaxed);
                Some(with(|s| tcp::set_nodelay(s, self.id, v != 0)))
            }
            (IPPROTO_TCP, TCP_KEEPIDLE) => store(&self.keepidle, 1, 32767),
            (IPPROTO_TCP, TCP_KEEPINTVL) => store(&self.keepintvl, 1, 32767),
            (IPPROTO_TCP, TCP_KEEPCNT) => store(&self.keepcnt, 1, 127),
            (IPPROTO_IPV6, _) if self.domain != AF_INET6 => Some(Err(Errno::ENOPROTOOPT)),
            (IPPROTO_IPV6, IPV6_V6ONLY) => {
                let on = v != 0;
                let r = with(|s| {
                    if self.is_tcp() {
                        tcp::set_v6only(s, self.id, on)
                    } else {
                        udp::set_v6only(s, self.id, on)
                    }
                });
                if r.is_ok() {
                    self.v6only.store(u32::from(on), Ordering::Relaxed);
                }
                Some(r)
            }
            (IPPROTO_IP, IP_TOS) => store(&self.tos, 0, 255),
            (IPPROTO_IP, IP_TTL) => store(&self.ttl, 1, 255),
            (SOL_SOCKET, SO_KEEPALIVE) if self.is_tcp() => {
                if let Err(e) = with(|s| tcp::set_keepalive(s, self.id, v != 0)) {
                    return Some(Err(e));
                }
                // The generic code stores the flag.
                None
            }
            (IPPROTO_TCP | IPPROTO_IPV6 | IPPROTO_IP | IPPROTO_UDP, _) => {
                Some(Err(Errno::ENOPROTOOPT))
            }
            _ => None,
        }
    }

    fn readable_bytes(&self) -> Option<usize> {
        Some(with(|s| {
            if self.is_tcp() {
                tcp::readable(s, self.id)
            } else {
                udp::readable(s, self.id)
            }
        }))
    }
}

impl Drop for InetSocket {
    fn drop(&mut self) {
        let (id, tcp) = (self.id, self.is_tcp());
        with(|s| {
            if tcp {
                tcp::close(s, id);
            } else {
                udp::close(s, id);
            }
        });
    }
}
