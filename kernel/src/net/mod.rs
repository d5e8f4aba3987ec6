//! The network stack: one `smoltcp` interface per device (the loopback,
//! and `eth0` over the first NIC: [`nic`], brought up by [`boot`]),
//! run in thread context — by the thread whose call changed something, or
//! by the network thread for timers and device interrupts — and the TCP
//! and UDP socket state the Linux layer (`linux::socket::inet`) builds on.
//! Readiness for poll/epoll is published per socket in a [`Notify`];
//! docs/network.md explains the design and how it maps to OSv's net
//! channels.

#[cfg(target_os = "none")]
pub mod boot;
pub mod config;
pub mod csum;
pub mod loopback;
pub mod nic;
pub mod notify;
pub mod ports;
pub mod stack;
pub mod tcp;
pub mod udp;

pub use notify::Notify;

use smoltcp::wire::{IpAddress, IpEndpoint};

/// A socket's names: the local one (address None: the wildcard; None:
/// not bound) and the connected peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Names {
    pub local: Option<(Option<IpAddress>, u16)>,
    pub remote: Option<IpEndpoint>,
}

/// eth0's configuration changed: wake whoever waits for it (boot) and
/// have `/run/resolv.conf` rewritten.
pub fn notify_config_changed() {
    #[cfg(target_os = "none")]
    boot::config_changed();
}

/// Monotonic nanoseconds: the kernel clock on the target, the host's in
/// tests (0 in other host builds, which never run the stack).
#[cfg(target_os = "none")]
pub fn now_ns() -> u64 {
    crate::time::now_ns()
}

#[cfg(all(not(target_os = "none"), test))]
pub fn now_ns() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(all(not(target_os = "none"), not(test)))]
pub fn now_ns() -> u64 {
    0
}
