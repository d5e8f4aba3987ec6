//! A NIC as a stack interface: [`NicDevice`] is smoltcp's Ethernet
//! `Device` over a driver's `NetDevice` (whole frames, copied), and
//! [`NicIface`] is `eth0`: the interface, its DHCPv4 client (leases
//! applied and renewed in whichever thread polls), its static
//! configuration, the IPv6 link-local address, and the polling fallback
//! for a device whose interrupt does not (yet) arrive.
//!
//! What was configured is published in [`info`] for boot, the ktest and
//! `/run/resolv.conf` (net::boot).

use super::config::NetConfig;
use super::stack::{Iface, NetIface, RxPending};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use skiff_drivers::net::{MacAddr, NetDevice, NetError};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address,
};

/// Ethernet header bytes (no VLAN tag, no FCS).
const ETH_HDR: usize = 14;
/// TCP SYNs handed to smoltcp per interface poll. A listener is used up by
/// a SYN and the Linux layer refills the pool between poll rounds
/// (`tcp::refresh`); a SYN beyond the pool would be answered with RST, so
/// later SYNs wait in the device for the next round.
const SYNS_PER_POLL: usize = 8;
/// Polling interval: 1 ms after traffic, doubling while idle up to 16 ms
/// (no working interrupt) or 128 ms (interrupts seen). Interrupts that
/// arrive only some of the time (virtio notification suppression, a
/// coalescing host) must not leave a busy connection waiting for the
/// idle interval, so traffic always brings the short one back.
const POLL_MIN_US: i64 = 1_000;
const POLL_MAX_US: i64 = 16_000;
const POLL_MAX_IRQ_US: i64 = 128_000;
/// Transmit attempts while the device's queue is full.
const TX_TRIES: usize = 1000;
/// DHCP options asked for: subnet mask, router, DNS, interface MTU, lease.
static DHCP_PARAMS: [u8; 5] = [1, 3, 6, 26, 51];

/// Smoltcp's view of a NIC.
pub struct NicDevice {
    dev: Box<dyn NetDevice>,
    /// IP MTU in use (the device's, or lower if DHCP option 26 says so).
    mtu: usize,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    /// A SYN received over this poll's budget, delivered next poll.
    held: Option<Vec<u8>>,
    syns: usize,
    /// A frame moved either way since the last look.
    activity: bool,
    broken: bool,
    tx_dropped: u64,
    /// Frames dropped for a wrong TCP/UDP checksum.
    rx_bad_csum: u64,
}

impl NicDevice {
    pub fn new(dev: Box<dyn NetDevice>) -> Self {
        let mtu = dev.mtu();
        NicDevice {
            dev,
            mtu,
            rx_buf: vec![0; ETH_HDR + 4 + 65535.min(mtu.max(1500) + 64)],
            tx_buf: Vec::new(),
            held: None,
            syns: 0,
            activity: false,
            broken: false,
            tx_dropped: 0,
            rx_bad_csum: 0,
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.dev.mac()
    }

    /// Sends a gratuitous ARP request for `ip` (an RFC 5227
    /// announcement), so the network (QEMU's user network, switches)
    /// learns this MAC before anything is sent to `ip`: without it, a
    /// statically configured guest that has not spoken yet cannot be
    /// reached through a QEMU port forward.
    pub fn announce(&mut self, ip: Ipv4Address) {
        let mac = self.dev.mac();
        let mut f = [0u8; 60];
        f[..6].fill(0xff);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request.
        f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&mac);
        f[28..32].copy_from_slice(&ip.octets());
        f[38..42].copy_from_slice(&ip.octets());
        if let Err(e) = self.dev.send(&f) {
            log::warn!("net: iface=eth0 arp announcement failed error={e:?}");
        }
    }

    fn next_frame(&mut self) -> Option<Vec<u8>> {
        if let Some(f) = self.held.take() {
            return Some(f);
        }
        if self.broken {
            return None;
        }
        loop {
            match self.dev.receive(&mut self.rx_buf) {
                Ok(Some(n)) => return Some(self.rx_buf[..n].to_vec()),
                Ok(None) => return None,
                Err(NetError::BufferTooSmall { needed }) => {
                    log::warn!("net: iface=eth0 rx frame dropped len={needed} (too long)");
                }
                Err(NetError::Broken) => {
                    log::error!("net: iface=eth0 device broken; no more traffic");
                    self.broken = true;
                    return None;
                }
                Err(e) => {
                    log::warn!("net: iface=eth0 rx error={e:?}");
                    return None;
                }
            }
        }
    }
}

/// Whether an Ethernet frame carries a TCP segment with SYN and not ACK
/// (a connection request), over IPv4 or IPv6 without extension headers.
pub fn is_tcp_syn(frame: &[u8]) -> bool {
    let Some(ethertype) = frame.get(12..14) else {
        return false;
    };
    let tcp = match ethertype {
        [0x08, 0x00] => {
            let Some(&vihl) = frame.get(ETH_HDR) else {
                return false;
            };
            if frame.get(ETH_HDR + 9) != Some(&6) {
                return false;
            }
            ETH_HDR + usize::from(vihl & 0x0f) * 4
        }
        [0x86, 0xdd] => {
            if frame.get(ETH_HDR + 6) != Some(&6) {
                return false;
            }
            ETH_HDR + 40
        }
        _ => return false,
    };
    frame
        .get(tcp + 13)
        .is_some_and(|&flags| flags & 0x12 == 0x02)
}

/// The EUI-64 link-local address (fe80::/64) of `mac` (RFC 4291 app. A).
pub fn link_local(mac: [u8; 6]) -> Ipv6Address {
    let m = mac;
    Ipv6Address::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

impl RxPending for NicDevice {
    fn rx_pending(&self) -> bool {
        self.held.is_some()
    }
}

impl Device for NicDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HDR;
        // No checksum offload is negotiated. smoltcp computes every
        // checksum and checks the IP and ICMP ones; TCP and UDP checksums
        // of received frames are checked in `receive` (`csum::rx_ok`,
        // eight bytes at a time, several times fewer instructions).
        let mut checksum = ChecksumCapabilities::default();
        checksum.tcp = Checksum::Tx;
        checksum.udp = Checksum::Tx;
        caps.checksum = checksum;
        caps
    }

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        // A frame received may need an answer: with the transmit queue
        // full, leave it in the device until completions free a slot (the
        // NIC's interrupt or the polling fallback brings the next poll).
        if !self.broken && !self.dev.can_send() {
            return None;
        }
        let frame = loop {
            let f = self.next_frame()?;
            if super::csum::rx_ok(&f) {
                break f;
            }
            self.rx_bad_csum += 1;
            if self.rx_bad_csum.is_power_of_two() {
                log::warn!(
                    "net: iface=eth0 rx dropped bad checksum count={}",
                    self.rx_bad_csum
                );
            }
        };
        if is_tcp_syn(&frame) {
            if self.syns >= SYNS_PER_POLL.min(super::tcp::syn_room()) {
                self.held = Some(frame);
                return None;
            }
            self.syns += 1;
        }
        self.activity = true;
        Some((RxToken { frame }, TxToken { dev: self }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        // None holds the packet in smoltcp until a slot is free, rather
        // than dropping it and waiting for TCP's retransmission timer.
        if self.broken || !self.dev.can_send() {
            return None;
        }
        Some(TxToken { dev: self })
    }
}

pub struct RxToken {
    frame: Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.frame)
    }
}

pub struct TxToken<'a> {
    dev: &'a mut NicDevice,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let d = self.dev;
        d.tx_buf.clear();
        d.tx_buf.resize(len, 0);
        let r = f(&mut d.tx_buf);
        d.activity = true;
        let mut tries = 0;
        loop {
            match d.dev.send(&d.tx_buf) {
                Ok(()) => break,
                Err(NetError::Busy) if tries < TX_TRIES => {
                    tries += 1;
                    core::hint::spin_loop();
                }
                Err(e) => {
                    // Dropped: TCP retransmits, as after a full NIC queue.
                    d.tx_dropped += 1;
                    if d.tx_dropped.is_power_of_two() {
                        log::warn!(
                            "net: iface=eth0 tx dropped count={} error={e:?}",
                            d.tx_dropped
                        );
                    }
                    if e == NetError::Broken {
                        d.broken = true;
                    }
                    break;
                }
            }
        }
        r
    }
}

/// Where the IPv4 configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Dhcp,
    Static,
    /// Nothing yet (DHCP pending) or `ip=off`.
    None,
}

/// eth0's configuration as last applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetInfo {
    pub mac: [u8; 6],
    pub addr: Option<Ipv4Cidr>,
    pub router: Option<Ipv4Address>,
    pub dns: Vec<IpAddress>,
    pub mtu: usize,
    pub source: Source,
    /// DHCP lease (option 51), seconds.
    pub lease_secs: Option<u32>,
    pub addrs6: Vec<IpCidr>,
}

impl fmt::Display for NetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net: eth0 mac={}", MacAddr(self.mac))?;
        match self.addr {
            Some(a) => write!(f, " addr={a}")?,
            None => write!(f, " addr=none")?,
        }
        match self.router {
            Some(r) => write!(f, " router={r}")?,
            None => write!(f, " router=none")?,
        }
        write!(f, " dns=")?;
        if self.dns.is_empty() {
            write!(f, "none")?;
        }
        for (i, d) in self.dns.iter().enumerate() {
            write!(f, "{}{d}", if i > 0 { "," } else { "" })?;
        }
        write!(f, " mtu={}", self.mtu)?;
        let src = match self.source {
            Source::Dhcp => "dhcp",
            Source::Static => "static",
            Source::None => "none",
        };
        write!(f, " source={src}")?;
        if let Some(l) = self.lease_secs {
            write!(f, " lease={l}s")?;
        }
        write!(f, " addr6=")?;
        for (i, a) in self.addrs6.iter().enumerate() {
            write!(f, "{}{a}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

impl NetInfo {
    /// `/run/resolv.conf`'s text.
    pub fn resolv_conf(&self) -> alloc::string::String {
        NetConfig {
            dns: self.dns.clone(),
            ..NetConfig::default()
        }
        .resolv_conf()
    }
}

static INFO: spin::Mutex<Option<NetInfo>> = spin::Mutex::new(None);
/// Bumped at every change of [`INFO`] (resolv.conf rewrites follow it).
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// An IPv4 address is configured (DHCP bound or static).
static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// eth0's configuration, if eth0 exists.
pub fn info() -> Option<NetInfo> {
    INFO.lock().clone()
}

/// Changes of [`info`] so far.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Whether eth0 has an IPv4 address.
pub fn configured() -> bool {
    CONFIGURED.load(Ordering::Acquire)
}

fn publish(info: &NetInfo) {
    *INFO.lock() = Some(info.clone());
    CONFIGURED.store(info.addr.is_some(), Ordering::Release);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    super::notify_config_changed();
}

/// How the interrupt is doing, for the polling fallback.
pub trait IrqCount: Send + Sync {
    fn count(&self) -> u64;
}

/// `eth0`: the interface, its DHCP client and the polling fallback.
pub struct NicIface {
    inner: Iface<NicDevice>,
    dhcp: Option<SocketHandle>,
    device_mtu: usize,
    info: NetInfo,
    irq: Option<&'static dyn IrqCount>,
    irq_works: bool,
    interval_us: i64,
    /// `gw=` and `dns=` from the command line: used when a lease names
    /// no router or no DNS server (QEMU's user network under
    /// `restrict=on` sends neither).
    fallback_router: Option<Ipv4Address>,
    fallback_dns: Vec<IpAddress>,
}

/// A DHCP event's content, copied out of the socket.
enum Lease {
    Bound {
        addr: Ipv4Cidr,
        router: Option<Ipv4Address>,
        dns: Vec<IpAddress>,
        mtu: Option<u16>,
        lease: Option<u32>,
    },
    Lost,
}

impl NicIface {
    /// eth0 over `dev` configured as `cfg` says (static addresses now,
    /// DHCP from the first poll). `irq`: the device's interrupt, if wired.
    pub fn new(
        dev: Box<dyn NetDevice>,
        cfg: &NetConfig,
        irq: Option<&'static dyn IrqCount>,
    ) -> Self {
        let nic = NicDevice::new(dev);
        let mac = nic.mac();
        let device_mtu = nic.mtu;
        let mut addrs: Vec<IpCidr> = vec![IpCidr::new(IpAddress::Ipv6(link_local(mac)), 64)];
        let dhcp = cfg.wants_dhcp();
        for a in &cfg.addrs {
            // With DHCP the lease's IPv4 address replaces static ones.
            if !(dhcp && matches!(a, IpCidr::Ipv4(_))) {
                addrs.push(*a);
            }
        }
        let mut inner = Iface::new(
            "eth0",
            nic,
            HardwareAddress::Ethernet(EthernetAddress(mac)),
            &addrs,
            false,
        );
        let mut info = NetInfo {
            mac,
            addr: None,
            router: None,
            dns: cfg.dns.clone(),
            mtu: device_mtu,
            source: Source::None,
            lease_secs: None,
            addrs6: addrs
                .iter()
                .filter(|a| matches!(a, IpCidr::Ipv6(_)))
                .copied()
                .collect(),
        };
        if let Some(g) = cfg.gateway_v6() {
            if inner.iface.routes_mut().add_default_ipv6_route(g).is_err() {
                log::warn!("net: iface=eth0 route table full, gw={g} dropped");
            }
        }
        let dhcp = if dhcp {
            let mut s = dhcpv4::Socket::new();
            s.set_parameter_request_list(&DHCP_PARAMS);
            // The raw ACK, for the options smoltcp does not decode (MTU,
            // lease). One NIC per boot: the buffer lives as long.
            s.set_receive_packet_buffer(Box::leak(vec![0u8; 1500].into_boxed_slice()));
            Some(inner.sockets.add(s))
        } else {
            if !cfg.off {
                info.addr = cfg.addrs.iter().find_map(|a| match a {
                    IpCidr::Ipv4(c) => Some(*c),
                    _ => None,
                });
                info.router = cfg.gateway_v4();
                if let Some(a) = info.addr {
                    inner.dev.announce(a.address());
                }
                if let Some(r) = info.router {
                    if inner.iface.routes_mut().add_default_ipv4_route(r).is_err() {
                        log::warn!("net: iface=eth0 route table full, gw={r} dropped");
                    }
                }
                info.source = Source::Static;
            }
            None
        };
        publish(&info);
        NicIface {
            inner,
            dhcp,
            device_mtu,
            info,
            irq,
            irq_works: false,
            interval_us: POLL_MIN_US,
            fallback_router: cfg.gateway_v4(),
            fallback_dns: cfg.dns.clone(),
        }
    }

    /// The configuration as applied now.
    pub fn info(&self) -> &NetInfo {
        &self.info
    }

    fn dhcp_event(&mut self) -> Option<Lease> {
        let h = self.dhcp?;
        let ev = self.inner.sockets.get_mut::<dhcpv4::Socket>(h).poll()?;
        Some(match ev {
            dhcpv4::Event::Configured(c) => {
                let (mut mtu, mut lease) = (None, None);
                if let Some(p) = &c.packet {
                    for o in p.options() {
                        match (o.kind, o.data) {
                            (26, &[a, b]) => mtu = Some(u16::from_be_bytes([a, b])),
                            (51, &[a, b, c, d]) => lease = Some(u32::from_be_bytes([a, b, c, d])),
                            _ => {}
                        }
                    }
                }
                Lease::Bound {
                    addr: c.address,
                    router: c.router,
                    dns: c.dns_servers.iter().map(|&a| IpAddress::Ipv4(a)).collect(),
                    mtu,
                    lease,
                }
            }
            dhcpv4::Event::Deconfigured => Lease::Lost,
        })
    }

    fn apply(&mut self, l: Lease) {
        let iface = &mut self.inner.iface;
        iface.update_ip_addrs(|a| a.retain(|c| !matches!(c, IpCidr::Ipv4(_))));
        iface.routes_mut().remove_default_ipv4_route();
        match l {
            Lease::Bound {
                addr,
                router,
                dns,
                mtu,
                lease,
            } => {
                let router = router.or(self.fallback_router);
                let dns = if dns.is_empty() {
                    self.fallback_dns.clone()
                } else {
                    dns
                };
                iface.update_ip_addrs(|a| {
                    let _ = a.push(IpCidr::Ipv4(addr));
                });
                if let Some(r) = router {
                    let _ = iface.routes_mut().add_default_ipv4_route(r);
                }
                // Option 26 may lower the MTU (never raise it past the
                // device's); 576 is the least an IPv4 host must take.
                let m = mtu
                    .map(usize::from)
                    .filter(|&m| m >= 576)
                    .map_or(self.device_mtu, |m| m.min(self.device_mtu));
                self.inner.dev.mtu = m;
                self.inner.dev.announce(addr.address());
                self.info.addr = Some(addr);
                self.info.router = router;
                self.info.dns = dns;
                self.info.mtu = m;
                self.info.lease_secs = lease;
                self.info.source = Source::Dhcp;
                log::info!("{}", self.info);
            }
            Lease::Lost => {
                // smoltcp reports this once at start too; only a lease
                // held is worth a warning.
                if self.info.addr.is_none() {
                    return;
                }
                log::warn!("net: iface=eth0 dhcp lease lost; no IPv4 address until a new one");
                self.info.addr = None;
                self.info.router = None;
                self.info.lease_secs = None;
                self.info.source = Source::None;
                self.inner.dev.mtu = self.device_mtu;
            }
        }
        publish(&self.info);
    }
}

impl NetIface for NicIface {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn is_loopback(&self) -> bool {
        false
    }
    fn interface(&mut self) -> &mut Interface {
        self.inner.interface()
    }
    fn sockets(&mut self) -> &mut SocketSet<'static> {
        self.inner.sockets()
    }
    fn poll(&mut self, now: Instant) -> bool {
        self.inner.dev.syns = 0;
        let mut changed = self.inner.poll(now);
        if let Some(l) = self.dhcp_event() {
            self.apply(l);
            changed = true;
        }
        let max = if self.irq_works {
            POLL_MAX_IRQ_US
        } else {
            POLL_MAX_US
        };
        if core::mem::take(&mut self.inner.dev.activity) {
            self.interval_us = POLL_MIN_US;
        } else {
            self.interval_us = (self.interval_us * 2).min(max);
        }
        if !self.irq_works && self.irq.is_some_and(|i| i.count() > 0) {
            log::info!("net: iface=eth0 interrupts delivered; idle polling backs off further");
            self.irq_works = true;
        }
        changed
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let fallback = now + smoltcp::time::Duration::from_micros(self.interval_us as u64);
        Some(
            self.inner
                .poll_at(now)
                .map_or(fallback, |t| t.min(fallback)),
        )
    }
    fn rx_pending(&self) -> bool {
        self.inner.rx_pending()
    }
    fn owns(&self, ip: &IpAddress) -> bool {
        self.inner.owns(ip)
    }
    fn reaches(&self, ip: &IpAddress) -> bool {
        self.inner.reaches(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use alloc::sync::Arc;

    /// A NIC whose received frames are queued by the test and whose sent
    /// frames are kept.
    struct Fake {
        rx: Arc<spin::Mutex<VecDeque<Vec<u8>>>>,
        tx: Arc<spin::Mutex<Vec<Vec<u8>>>>,
    }

    impl NetDevice for Fake {
        fn mac(&self) -> [u8; 6] {
            [0x52, 0x54, 0, 0x12, 0x34, 0x56]
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn link_up(&self) -> bool {
            true
        }
        fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
            self.tx.lock().push(frame.to_vec());
            Ok(())
        }
        fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
            let Some(f) = self.rx.lock().pop_front() else {
                return Ok(None);
            };
            buf[..f.len()].copy_from_slice(&f);
            Ok(Some(f.len()))
        }
    }

    fn tcp_frame(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HDR + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ETH_HDR] = 0x45;
        f[ETH_HDR + 9] = 6;
        f[ETH_HDR + 20 + 13] = flags;
        f
    }

    #[test]
    fn syn_detection() {
        assert!(is_tcp_syn(&tcp_frame(0x02)));
        assert!(!is_tcp_syn(&tcp_frame(0x12)), "SYN-ACK");
        assert!(!is_tcp_syn(&tcp_frame(0x10)), "ACK");
        let mut udp = tcp_frame(0x02);
        udp[ETH_HDR + 9] = 17;
        assert!(!is_tcp_syn(&udp));
        let mut v6 = vec![0u8; ETH_HDR + 40 + 20];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[ETH_HDR + 6] = 6;
        v6[ETH_HDR + 40 + 13] = 0x02;
        assert!(is_tcp_syn(&v6));
        assert!(!is_tcp_syn(&v6[..ETH_HDR + 40 + 10]), "truncated");
    }

    #[test]
    fn eui64_link_local() {
        assert_eq!(
            link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            Ipv6Address::new(0xfe80, 0, 0, 0, 0x5054, 0x00ff, 0xfe12, 0x3456)
        );
    }

    #[test]
    fn syns_beyond_the_budget_wait_for_the_next_poll() {
        let rx = Arc::new(spin::Mutex::new(VecDeque::new()));
        let tx = Arc::new(spin::Mutex::new(Vec::new()));
        let mut d = NicDevice::new(Box::new(Fake {
            rx: rx.clone(),
            tx: tx.clone(),
        }));
        for _ in 0..SYNS_PER_POLL + 1 {
            rx.lock().push_back(tcp_frame(0x02));
        }
        rx.lock().push_back(tcp_frame(0x10));
        let t = Instant::from_millis(0);
        let mut got = 0;
        while let Some((r, _)) = d.receive(t) {
            phy::RxToken::consume(r, |_| ());
            got += 1;
        }
        assert_eq!(got, SYNS_PER_POLL);
        assert!(d.rx_pending());
        d.syns = 0;
        while let Some((r, _)) = d.receive(t) {
            phy::RxToken::consume(r, |_| ());
            got += 1;
        }
        // Then the held SYN and the ACK behind it.
        assert_eq!(got, SYNS_PER_POLL + 2);
        assert!(!d.rx_pending());
        let tok = d.transmit(t).unwrap();
        phy::TxToken::consume(tok, 60, |b| b.fill(7));
        assert_eq!(tx.lock().as_slice(), &[vec![7u8; 60]]);
        d.announce(Ipv4Address::new(10, 0, 2, 15));
        let arp = tx.lock()[1].clone();
        assert_eq!(arp[12..14], [0x08, 0x06]);
        assert_eq!(arp[21], 1, "a request");
        assert_eq!(arp[28..32], [10, 0, 2, 15]);
        assert_eq!(arp[38..42], [10, 0, 2, 15], "sender = target: gratuitous");
    }

    #[test]
    fn static_config_and_info_line() {
        let rx = Arc::new(spin::Mutex::new(VecDeque::new()));
        let tx = Arc::new(spin::Mutex::new(Vec::new()));
        let cfg = NetConfig::parse("ip=10.0.2.15/24 gw=10.0.2.2 dns=10.0.2.3").unwrap();
        let mut n = NicIface::new(Box::new(Fake { rx, tx }), &cfg, None);
        assert_eq!(n.info().source, Source::Static);
        let line = alloc::format!("{}", n.info());
        assert_eq!(
            line,
            "net: eth0 mac=52:54:00:12:34:56 addr=10.0.2.15/24 router=10.0.2.2 dns=10.0.2.3 mtu=1500 source=static addr6=fe80::5054:ff:fe12:3456/64"
        );
        assert_eq!(n.info().resolv_conf(), "nameserver 10.0.2.3\n");
        assert!(n.owns(&IpAddress::v4(10, 0, 2, 15)));
        assert!(n.reaches(&IpAddress::v4(8, 8, 8, 8)));
        assert!(n
            .interface()
            .routes_mut()
            .get_default_ipv4_route()
            .is_some());
    }
}
