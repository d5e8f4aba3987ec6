//! The stack: the interfaces (one `smoltcp::iface::Interface` and its own
//! socket set per device, loopback first), the TCP and UDP socket tables
//! with their Linux-level state, the port tables, and the poll loop that
//! moves packets and then republishes every socket's readiness.
//!
//! Locking: the whole stack is one lock ([`with`]); a sleeping mutex on the
//! target (a poll may run for a while), a spin lock in host tests.
//! Readiness is copied out of the stack into each socket's
//! [`Notify`](super::Notify) under that lock, so poll/epoll never take it;
//! the wakeups happen after it is dropped.
//!
//! Who polls: the thread that changed something polls inline (a send, a
//! receive that opened the window, a connect), so loopback traffic moves
//! without a thread switch; the network thread ([`start_thread`]) polls
//! when a timer smoltcp asked for comes due (retransmission, delayed ACK,
//! TIME-WAIT) or when a device says packets arrived ([`kick`]).

use super::loopback::Loopback;
use super::notify::Notify;
use super::ports::Ports;
use super::{tcp, udp};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use smoltcp::iface::{Config, Interface, PollResult, SocketSet};
use smoltcp::phy::Device;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// A device's extra: whether received packets are already waiting (the
/// loopback knows; a NIC says so by interrupt and [`kick`]).
pub trait RxPending {
    fn rx_pending(&self) -> bool {
        false
    }
}

impl RxPending for Loopback {
    fn rx_pending(&self) -> bool {
        self.pending() > 0
    }
}

/// One interface, whatever its device: what the stack needs of it.
pub trait NetIface: Send {
    fn name(&self) -> &str;
    fn is_loopback(&self) -> bool;
    fn interface(&mut self) -> &mut Interface;
    fn sockets(&mut self) -> &mut SocketSet<'static>;
    /// Moves packets both ways; true if a socket's state may have changed.
    fn poll(&mut self, now: Instant) -> bool;
    /// When smoltcp next needs a poll (None: only on traffic).
    fn poll_at(&mut self, now: Instant) -> Option<Instant>;
    fn rx_pending(&self) -> bool;
    /// Whether `ip` is one of this interface's addresses (the loopback
    /// owns all of 127.0.0.0/8).
    fn owns(&self, ip: &IpAddress) -> bool;
    /// Whether packets for `ip` leave through this interface.
    fn reaches(&self, ip: &IpAddress) -> bool;
}

/// An interface over device `D`.
pub struct Iface<D: Device + RxPending + Send> {
    name: &'static str,
    loopback: bool,
    pub(super) iface: Interface,
    pub(super) dev: D,
    pub(super) sockets: SocketSet<'static>,
}

impl<D: Device + RxPending + Send> Iface<D> {
    /// An interface named `name` over `dev` with addresses `addrs`.
    pub fn new(
        name: &'static str,
        mut dev: D,
        hw: HardwareAddress,
        addrs: &[IpCidr],
        loopback: bool,
    ) -> Self {
        let mut cfg = Config::new(hw);
        cfg.random_seed = seed();
        let mut iface = Interface::new(cfg, &mut dev, now());
        iface.update_ip_addrs(|a| {
            for c in addrs {
                if a.push(*c).is_err() {
                    log::warn!("net: iface={name} too many addresses, dropped={c}");
                }
            }
        });
        Iface {
            name,
            loopback,
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
        }
    }
}

fn is_loopback_ip(ip: &IpAddress) -> bool {
    match ip {
        IpAddress::Ipv4(a) => a.octets()[0] == 127,
        IpAddress::Ipv6(a) => a.is_loopback(),
    }
}

impl<D: Device + RxPending + Send> NetIface for Iface<D> {
    fn name(&self) -> &str {
        self.name
    }
    fn is_loopback(&self) -> bool {
        self.loopback
    }
    fn interface(&mut self) -> &mut Interface {
        &mut self.iface
    }
    fn sockets(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }
    fn poll(&mut self, now: Instant) -> bool {
        self.iface.poll(now, &mut self.dev, &mut self.sockets) == PollResult::SocketStateChanged
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(now, &self.sockets)
    }
    fn rx_pending(&self) -> bool {
        self.dev.rx_pending()
    }
    fn owns(&self, ip: &IpAddress) -> bool {
        (self.loopback && is_loopback_ip(ip)) || self.iface.has_ip_addr(*ip)
    }
    fn reaches(&self, ip: &IpAddress) -> bool {
        if self.loopback {
            return is_loopback_ip(ip) || self.iface.has_ip_addr(*ip);
        }
        self.iface.ip_addrs().iter().any(|c| c.contains_addr(ip))
            || match ip {
                IpAddress::Ipv4(_) => self.iface.ipv4_addr().is_some(),
                IpAddress::Ipv6(_) => self.iface.ipv6_addr().is_some(),
            }
    }
}

/// The interfaces and every socket's protocol state.
pub struct Stack {
    pub(super) ifaces: Vec<Box<dyn NetIface>>,
    pub(super) tcp: BTreeMap<u64, tcp::Entry>,
    pub(super) udp: BTreeMap<u64, udp::Entry>,
    pub(super) tcp_ports: Ports,
    pub(super) udp_ports: Ports,
    next_id: u64,
    /// Sockets whose readiness changed, woken after the lock is dropped.
    pub(super) to_wake: Vec<Arc<Notify>>,
}

/// Most poll rounds one call makes before leaving the rest to the thread.
const MAX_ROUNDS: usize = 64;

impl Stack {
    /// A stack with the loopback interface `lo` (127.0.0.1/8 and ::1).
    pub fn new() -> Stack {
        let s = seed();
        let lo = Iface::new(
            "lo",
            Loopback::new(),
            HardwareAddress::Ip,
            &[
                IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8),
                IpCidr::new(IpAddress::v6(0, 0, 0, 0, 0, 0, 0, 1), 128),
            ],
            true,
        );
        Stack {
            ifaces: alloc::vec![Box::new(lo) as Box<dyn NetIface>],
            tcp: BTreeMap::new(),
            udp: BTreeMap::new(),
            tcp_ports: Ports::new(true, s as u16),
            udp_ports: Ports::new(false, (s >> 16) as u16),
            next_id: 1,
            to_wake: Vec::new(),
        }
    }

    /// Adds an interface (a NIC's, brought up by its driver); returns its
    /// index.
    pub fn add_interface(&mut self, iface: Box<dyn NetIface>) -> usize {
        log::info!("net: iface={} up index={}", iface.name(), self.ifaces.len());
        self.ifaces.push(iface);
        self.ifaces.len() - 1
    }

    pub(super) fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The interface that owns `ip` (for binds).
    pub(super) fn owner_of(&self, ip: &IpAddress) -> Option<usize> {
        self.ifaces.iter().position(|i| i.owns(ip))
    }

    /// The interface packets to `ip` leave through: one that owns it (a
    /// local address goes over the loopback), else the first that reaches.
    pub(super) fn route(&self, ip: &IpAddress) -> Option<usize> {
        if self.owner_of(ip).is_some() {
            return self.ifaces.iter().position(|i| i.is_loopback());
        }
        self.ifaces.iter().position(|i| i.reaches(ip))
    }

    /// Stores `bits` in `n`; queues the wakeup if it is due.
    pub(super) fn publish(&mut self, n: &Arc<Notify>, bits: u32, event: bool) {
        if n.store(bits, event) {
            self.to_wake.push(n.clone());
        }
    }

    /// Moves packets until the interfaces settle (bounded), then
    /// republishes readiness. The caller holds the stack ([`with`]).
    ///
    /// The refresh (O(sockets)) runs after the first round, which also
    /// covers what the caller changed and smoltcp's timers, and after
    /// every later round in which smoltcp reports a socket may have
    /// changed; a round that moved nothing leaves nothing to refresh.
    pub fn poll(&mut self) {
        let t = now();
        for round in 0..MAX_ROUNDS {
            let mut changed = false;
            let mut pending = false;
            for i in self.ifaces.iter_mut() {
                changed |= i.poll(t);
                pending |= i.rx_pending();
            }
            // Between rounds, so a listener used up by a SYN is
            // replaced before the next SYN is looked at.
            if changed || round == 0 {
                tcp::refresh(self);
                udp::refresh(self);
            }
            if !changed && !pending {
                return;
            }
        }
        // Still busy: the network thread carries on.
        kick();
    }

    /// The earliest time an interface wants polling again.
    pub fn poll_at(&mut self) -> Option<Instant> {
        let t = now();
        self.ifaces.iter_mut().filter_map(|i| i.poll_at(t)).min()
    }
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "none")]
type Lock<T> = crate::sync::Mutex<T>;
#[cfg(not(target_os = "none"))]
type Lock<T> = spin::Mutex<T>;

static STACK: spin::Once<Lock<Stack>> = spin::Once::new();

fn stack() -> &'static Lock<Stack> {
    STACK.call_once(|| {
        log::info!("net: iface=lo up addrs=127.0.0.1/8,::1/128");
        Lock::new(Stack::new())
    })
}

/// Runs `f` on the stack, then wakes the sockets whose readiness it
/// changed; tells the network thread if smoltcp now wants a poll sooner
/// than it planned.
pub fn with<R>(f: impl FnOnce(&mut Stack) -> R) -> R {
    let mut g = stack().lock();
    let r = f(&mut g);
    let wake = core::mem::take(&mut g.to_wake);
    let next = g.poll_at().map(instant_ns);
    // Read under the stack lock, where the network thread publishes it:
    // either its plan already covers what this call left behind, or it
    // polls after this (and sees it), or the kick below wakes it. Read
    // after unlocking, a plan published meanwhile (say "no deadline" from
    // a poll that ran before this call) could hide a needed poll — a
    // delayed ACK never sent, both ends of a loopback transfer asleep.
    let planned = THREAD_DEADLINE.load(Ordering::Acquire);
    drop(g);
    for n in wake {
        n.wake();
    }
    if next.is_some_and(|n| n < planned) {
        kick();
    }
    r
}

/// Whether some TCP connection still has data or a FIN the peer has not
/// acknowledged.
#[cfg(target_os = "none")]
fn unsent(s: &mut Stack) -> bool {
    s.ifaces.iter_mut().any(|i| {
        i.sockets().iter().any(|(_, so)| match so {
            smoltcp::socket::Socket::Tcp(t) => {
                use smoltcp::socket::tcp::State as T;
                matches!(
                    t.state(),
                    T::Established | T::CloseWait | T::FinWait1 | T::Closing | T::LastAck
                ) && (t.send_queue() > 0 || !matches!(t.state(), T::Established | T::CloseWait))
            }
            _ => false,
        })
    })
}

/// Before the VM powers off at the app's exit: lets TCP deliver what the
/// app wrote (and its FINs), as Linux keeps sending after a process ends —
/// a server that answers and exits would otherwise lose its answer. Polls
/// until nothing is left unacknowledged or `max_ns` passed.
#[cfg(target_os = "none")]
pub fn drain_before_exit(max_ns: u64) {
    if STACK.get().is_none() {
        return;
    }
    let deadline = crate::time::now_ns().saturating_add(max_ns);
    while with(|s| {
        s.poll();
        unsent(s)
    }) {
        if crate::time::now_ns() >= deadline {
            log::warn!("net: exit with TCP data still unacknowledged");
            return;
        }
        crate::sched::sleep(2_000_000);
    }
}

/// A poll now, from any thread (host tests drive timers with it).
pub fn poll_now() {
    with(|s| s.poll());
}

fn instant_ns(i: Instant) -> u64 {
    u64::try_from(i.total_micros())
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// smoltcp's clock: the kernel's monotonic time.
pub fn now() -> Instant {
    Instant::from_micros((super::now_ns() / 1000) as i64)
}

fn seed() -> u64 {
    crate::random::POOL
        .next_u64()
        .unwrap_or_else(|| super::now_ns() ^ 0x5eed_5eed_5eed_5eed)
}

/// The deadline the network thread sleeps until (u64::MAX: none).
static THREAD_DEADLINE: AtomicU64 = AtomicU64::new(0);
static KICKED: AtomicBool = AtomicBool::new(false);
static KICK: crate::fs::WaitQueue = crate::fs::WaitQueue::new();

/// Asks the network thread to poll now (a device received packets, a
/// socket's timer moved earlier).
pub fn kick() {
    if !KICKED.swap(true, Ordering::AcqRel) {
        KICK.wake_one();
    }
}

/// Starts the network thread (once; later calls do nothing). Called on
/// first use of a socket; a NIC driver's bring-up may call it earlier.
#[cfg(target_os = "none")]
pub fn start_thread() {
    static STARTED: spin::Once<()> = spin::Once::new();
    STARTED.call_once(|| {
        if let Err(e) = crate::sched::spawn("net", thread_main, None) {
            log::error!("net: thread=net spawn failed error={e:?}");
        }
    });
}

#[cfg(not(target_os = "none"))]
pub fn start_thread() {}

#[cfg(target_os = "none")]
fn thread_main() {
    loop {
        let next = {
            let mut g = stack().lock();
            g.poll();
            let wake = core::mem::take(&mut g.to_wake);
            let next = g.poll_at().map(instant_ns);
            // Published under the lock (see `with`).
            THREAD_DEADLINE.store(next.unwrap_or(u64::MAX), Ordering::Release);
            drop(g);
            for n in wake {
                n.wake();
            }
            super::boot::update_resolv_conf();
            next
        };
        match next {
            Some(d) => {
                KICK.wait_until_deadline(d, || KICKED.swap(false, Ordering::AcqRel));
            }
            None => KICK.wait_until(|| KICKED.swap(false, Ordering::AcqRel)),
        }
    }
}
