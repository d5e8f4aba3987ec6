//! Port bindings of one transport protocol, with Linux's conflict rules:
//! two sockets may share a port only when their addresses do not overlap,
//! or both set `SO_REUSEPORT`, or both set `SO_REUSEADDR` and (TCP) the
//! one already there is not listening. A wildcard address overlaps every
//! address of its families; an AF_INET6 wildcard without `IPV6_V6ONLY`
//! covers IPv4 as well. Ephemeral ports come from Linux's default range.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use smoltcp::wire::IpAddress;

/// `net.ipv4.ip_local_port_range`'s default.
pub const EPHEMERAL: core::ops::RangeInclusive<u16> = 32768..=60999;

/// The address part of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAddr {
    /// A wildcard: which families it covers.
    Any {
        v4: bool,
        v6: bool,
    },
    Ip(IpAddress),
}

impl BindAddr {
    fn overlaps(&self, other: &BindAddr) -> bool {
        match (self, other) {
            (BindAddr::Any { v4, v6 }, BindAddr::Ip(ip))
            | (BindAddr::Ip(ip), BindAddr::Any { v4, v6 }) => match ip {
                IpAddress::Ipv4(_) => *v4,
                IpAddress::Ipv6(_) => *v6,
            },
            (BindAddr::Any { v4: a4, v6: a6 }, BindAddr::Any { v4: b4, v6: b6 }) => {
                (a4 & b4) || (a6 & b6)
            }
            (BindAddr::Ip(a), BindAddr::Ip(b)) => a == b,
        }
    }

    /// The address to give smoltcp (None: any).
    pub fn ip(&self) -> Option<IpAddress> {
        match self {
            BindAddr::Any { .. } => None,
            BindAddr::Ip(ip) => Some(*ip),
        }
    }
}

/// One socket's claim on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The socket's id in the stack.
    pub owner: u64,
    pub addr: BindAddr,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub listening: bool,
}

/// Why a bind failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortError {
    InUse,
    /// No ephemeral port is free.
    Exhausted,
}

/// The bindings of one protocol (TCP or UDP).
pub struct Ports {
    tcp: bool,
    map: BTreeMap<u16, Vec<Binding>>,
    next: u16,
}

impl Ports {
    pub fn new(tcp: bool, seed: u16) -> Ports {
        let span = EPHEMERAL.end() - EPHEMERAL.start() + 1;
        Ports {
            tcp,
            map: BTreeMap::new(),
            next: EPHEMERAL.start() + seed % span,
        }
    }

    fn conflicts(&self, new: &Binding, old: &Binding) -> bool {
        if old.owner == new.owner || !new.addr.overlaps(&old.addr) {
            return false;
        }
        if new.reuseport && old.reuseport {
            return false;
        }
        if new.reuseaddr && old.reuseaddr && !(self.tcp && (old.listening || new.listening)) {
            return false;
        }
        true
    }

    /// Whether `b` may take `port` now.
    pub fn available(&self, port: u16, b: &Binding) -> bool {
        self.map
            .get(&port)
            .is_none_or(|v| v.iter().all(|old| !self.conflicts(b, old)))
    }

    /// Binds `b` to `port` (0: an ephemeral port); returns the port.
    pub fn bind(&mut self, port: u16, b: Binding) -> Result<u16, PortError> {
        let port = if port == 0 {
            self.ephemeral()?
        } else {
            if !self.available(port, &b) {
                return Err(PortError::InUse);
            }
            port
        };
        self.map.entry(port).or_default().push(b);
        Ok(port)
    }

    /// A port nobody holds, walking the range from where the last left off.
    fn ephemeral(&mut self) -> Result<u16, PortError> {
        let span = EPHEMERAL.end() - EPHEMERAL.start() + 1;
        for _ in 0..span {
            let p = self.next;
            self.next = if p == *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                p + 1
            };
            if !self.map.contains_key(&p) {
                return Ok(p);
            }
        }
        Err(PortError::Exhausted)
    }

    /// Marks `owner`'s binding of `port` as listening, if the others
    /// there allow it (TCP: `SO_REUSEADDR` does not share a listening
    /// port).
    pub fn listen(&mut self, port: u16, owner: u64) -> Result<(), PortError> {
        let Some(v) = self.map.get(&port) else {
            return Ok(());
        };
        let Some(mine) = v.iter().find(|b| b.owner == owner).copied() else {
            return Ok(());
        };
        let as_listener = Binding {
            listening: true,
            ..mine
        };
        if v.iter().any(|old| self.conflicts(&as_listener, old)) {
            return Err(PortError::InUse);
        }
        if let Some(v) = self.map.get_mut(&port) {
            for b in v.iter_mut().filter(|b| b.owner == owner) {
                b.listening = true;
            }
        }
        Ok(())
    }

    /// Drops `owner`'s binding of `port`.
    pub fn release(&mut self, port: u16, owner: u64) {
        if let Some(v) = self.map.get_mut(&port) {
            v.retain(|b| b.owner != owner);
            if v.is_empty() {
                self.map.remove(&port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    fn b(owner: u64, addr: BindAddr, reuseaddr: bool) -> Binding {
        Binding {
            owner,
            addr,
            reuseaddr,
            reuseport: false,
            listening: false,
        }
    }

    const ANY4: BindAddr = BindAddr::Any {
        v4: true,
        v6: false,
    };
    const DUAL: BindAddr = BindAddr::Any { v4: true, v6: true };
    const V6ONLY: BindAddr = BindAddr::Any {
        v4: false,
        v6: true,
    };

    #[test]
    fn conflicts_follow_linux() {
        let lo = BindAddr::Ip(IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1)));
        let mut p = Ports::new(true, 0);
        assert_eq!(p.bind(80, b(1, ANY4, false)), Ok(80));
        assert_eq!(p.bind(80, b(2, lo, false)), Err(PortError::InUse));
        assert_eq!(
            p.bind(80, b(3, V6ONLY, false)),
            Ok(80),
            "v6-only does not cover v4"
        );
        assert_eq!(p.bind(80, b(4, DUAL, false)), Err(PortError::InUse));
        p.release(80, 1);
        p.release(80, 3);
        // Both SO_REUSEADDR: fine until one listens.
        assert_eq!(p.bind(81, b(5, lo, true)), Ok(81));
        assert_eq!(p.bind(81, b(6, lo, true)), Ok(81));
        assert_eq!(p.listen(81, 5), Err(PortError::InUse));
        p.release(81, 6);
        assert_eq!(p.listen(81, 5), Ok(()));
        assert_eq!(p.bind(81, b(7, lo, true)), Err(PortError::InUse));
        // SO_REUSEPORT on both shares even a listening port.
        let rp = |o| Binding {
            reuseport: true,
            ..b(o, ANY4, false)
        };
        assert_eq!(p.bind(82, rp(8)), Ok(82));
        assert_eq!(p.listen(82, 8), Ok(()));
        assert_eq!(p.bind(82, rp(9)), Ok(82));
        assert_eq!(p.listen(82, 9), Ok(()));
    }

    #[test]
    fn ephemeral_ports_skip_taken_ones_and_wrap() {
        let mut p = Ports::new(false, EPHEMERAL.end() - EPHEMERAL.start());
        assert_eq!(p.bind(0, b(1, ANY4, false)), Ok(*EPHEMERAL.end()));
        assert_eq!(p.bind(*EPHEMERAL.start(), b(2, ANY4, false)), Ok(32768));
        assert_eq!(p.bind(0, b(3, ANY4, false)), Ok(32769));
        // UDP: SO_REUSEADDR on both shares a port.
        assert_eq!(p.bind(53, b(4, ANY4, true)), Ok(53));
        assert_eq!(p.bind(53, b(5, ANY4, true)), Ok(53));
    }
}
