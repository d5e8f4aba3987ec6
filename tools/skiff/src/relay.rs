//! A host-side TCP relay in front of QEMU's port forward, so a client that
//! opens many connections at once (redis-benchmark's 50) reaches the guest.
//!
//! QEMU's user-network forward listens with a backlog of 1. A burst of
//! connects overflows the host kernel's accept queue: most SYNs are
//! dropped and retried in step with each other (1, 3, 7, ... s), and
//! connections whose handshake the kernel finished but QEMU never accepted
//! are reset later (docs/network.md). The guest never sees them.
//!
//! The relay listens with the kernel's usual backlog and opens its
//! upstream connections one at a time, each confirmed before the next, so
//! QEMU accepts every one. Then it copies bytes both ways, passing on
//! half-closes. Two ways to confirm ([`Confirm`]):
//! - a probe exchange (bytes sent, exact bytes expected back): the tests,
//!   which know the protocol;
//! - QEMU's listening socket's accept queue, read from `/proc/net/tcp`
//!   (for a listener its rx_queue column is the accept-queue length),
//!   back to 0: `skiff run -p` ([`relay_forwards`]), which does not know
//!   the protocol.

use crate::cli::{Forward, Proto};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How a fresh upstream connection is confirmed: `send`, then read back
/// exactly `expect`.
#[derive(Clone, Copy)]
pub struct Probe {
    pub send: &'static [u8],
    pub expect: &'static [u8],
}

/// How the relay knows QEMU accepted an upstream connection.
#[derive(Clone, Copy)]
pub enum Confirm {
    Probe(Probe),
    /// Wait until the upstream listener's accept queue is empty again.
    AcceptQueue,
}

/// How long one upstream connect plus probe may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A running relay; dropping it stops accepting (open pairs finish when
/// their ends close).
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) and relays to `upstream`.
    pub fn start(upstream: SocketAddr, probe: Probe) -> Result<Relay, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("relay: bind 127.0.0.1: {e}"))?;
        Self::on(listener, upstream, Confirm::Probe(probe))
    }

    /// Relays what `listener` accepts to `upstream`.
    pub fn on(
        listener: TcpListener,
        upstream: SocketAddr,
        confirm: Confirm,
    ) -> Result<Relay, String> {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("relay: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (s, o) = (stop.clone(), opened.clone());
        let acceptor = std::thread::spawn(move || accept_loop(listener, upstream, confirm, &s, &o));
        Ok(Relay {
            addr,
            stop,
            opened,
            acceptor: Some(acceptor),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Upstream connections opened and confirmed so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// `skiff run -p`: binds each TCP forward's host port on 127.0.0.1 here,
/// moves QEMU's side of it to a free internal port, and relays the one to
/// the other (UDP forwards stay QEMU's). Returns the relays, which must
/// live as long as QEMU runs.
pub fn relay_forwards(forwards: &mut [Forward]) -> Result<Vec<Relay>, String> {
    let mut relays = Vec::new();
    for f in forwards.iter_mut().filter(|f| f.proto == Proto::Tcp) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, f.host))
            .map_err(|e| format!("-p {}:{}: 127.0.0.1:{}: {e}", f.host, f.guest, f.host))?;
        let inner = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("-p: no free port on 127.0.0.1: {e}"))?
            .port();
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, inner));
        relays.push(Relay::on(listener, upstream, Confirm::AcceptQueue)?);
        f.host = inner;
    }
    Ok(relays)
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    confirm: Confirm,
    stop: &AtomicBool,
    opened: &AtomicUsize,
) {
    while !stop.load(Ordering::Relaxed) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                eprintln!("skiff: relay: accept: {e}");
                return;
            }
        };
        // One at a time: the next client waits in our (large) backlog
        // until this upstream connection is confirmed.
        match open(upstream, confirm) {
            Ok(up) => {
                opened.fetch_add(1, Ordering::Relaxed);
                splice(client, up);
            }
            Err(e) => {
                eprintln!("skiff: relay: upstream {upstream}: {e}");
                let _ = client.shutdown(Shutdown::Both);
            }
        }
    }
}

fn open(upstream: SocketAddr, confirm: Confirm) -> Result<TcpStream, String> {
    let mut up =
        TcpStream::connect_timeout(&upstream, OPEN_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    up.set_nodelay(true).ok();
    let probe = match confirm {
        Confirm::Probe(p) => p,
        Confirm::AcceptQueue => {
            wait_accepted(upstream)?;
            return Ok(up);
        }
    };
    up.set_read_timeout(Some(OPEN_TIMEOUT)).ok();
    up.write_all(probe.send)
        .map_err(|e| format!("probe write: {e}"))?;
    let mut got = vec![0u8; probe.expect.len()];
    up.read_exact(&mut got)
        .map_err(|e| format!("probe read: {e}"))?;
    if got != probe.expect {
        return Err(format!(
            "probe answered {:?}, expected {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(probe.expect)
        ));
    }
    up.set_read_timeout(None).ok();
    Ok(up)
}

/// Waits until the listener at `upstream` has nothing left in its accept
/// queue (QEMU took the connection just made). Where `/proc/net/tcp` says
/// nothing about it, a short pause stands in.
fn wait_accepted(upstream: SocketAddr) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        match accept_queue(&table, upstream) {
            Some(0) => return Ok(()),
            Some(_) if start.elapsed() < OPEN_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Some(n) => return Err(format!("QEMU left {n} connections unaccepted")),
            None => {
                std::thread::sleep(Duration::from_millis(20));
                return Ok(());
            }
        }
    }
}

/// The accept-queue length of the IPv4 listener bound to `at`, from the
/// text of `/proc/net/tcp` (`local_address` is the address as a
/// native-endian hex u32 and the port as hex; `st` 0A is LISTEN; for a
/// listener `rx_queue` is the accept-queue length).
fn accept_queue(table: &str, at: SocketAddr) -> Option<u32> {
    let SocketAddr::V4(at) = at else {
        return None;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(at.ip().octets()),
        at.port()
    );
    table.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        let (_sl, local, _remote, st, queues) = (
            cols.next()?,
            cols.next()?,
            cols.next()?,
            cols.next()?,
            cols.next()?,
        );
        if st != "0A" || !local.eq_ignore_ascii_case(&want) {
            return None;
        }
        let (_tx, rx) = queues.split_once(':')?;
        u32::from_str_radix(rx, 16).ok()
    })
}

/// Copies both ways on two threads; each direction passes on the
/// half-close when its source ends.
fn splice(client: TcpStream, up: TcpStream) {
    client.set_nodelay(true).ok();
    let pairs = [
        (client.try_clone(), up.try_clone()),
        (up.try_clone(), client.try_clone()),
    ];
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            let _ = client.shutdown(Shutdown::Both);
            let _ = up.shutdown(Shutdown::Both);
            return;
        };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1 that accepts one connection per
    /// `pace` (a slow acceptor, like QEMU's forward under load).
    fn echo_server(pace: Duration) -> SocketAddr {
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let at = server.local_addr().unwrap();
        std::thread::spawn(move || loop {
            std::thread::sleep(pace);
            let Ok((mut s, _)) = server.accept() else {
                break;
            };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        });
        at
    }

    /// Opens `n` clients to `relay` at once, then each sends a message,
    /// half-closes and must read exactly that message back.
    fn burst(relay: &Relay, n: usize) {
        let clients: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect(relay.addr()).unwrap())
            .collect();
        let workers: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                std::thread::spawn(move || {
                    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let msg = format!("client {i} says hello");
                    c.write_all(msg.as_bytes()).unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut back = String::new();
                    c.read_to_string(&mut back).unwrap();
                    assert_eq!(back, msg);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(relay.opened(), n);
    }

    /// An echo server behind the relay: 50 clients opened at once each
    /// get their own upstream, confirmed by the probe, and an exact echo.
    #[test]
    fn relays_a_burst_of_clients() {
        let up = echo_server(Duration::ZERO);
        let relay = Relay::start(
            up,
            Probe {
                send: b"ping",
                expect: b"ping",
            },
        )
        .unwrap();
        burst(&relay, 50);
    }

    /// `/proc/net/tcp` lines: only the LISTEN entry of the right address
    /// and port counts.
    #[test]
    fn reads_the_accept_queue() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {lo:08X}:1F90 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1 1\n\
             1: {lo:08X}:1F90 {lo:08X}:9C40 01 00000000:00000007 00:00000000 00000000     0        0 2 1\n\
             2: 00000000:1F91 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 3 1\n"
        );
        let at = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert_eq!(accept_queue(&table, at(8080)), Some(2));
        assert_eq!(accept_queue(&table, at(8081)), None);
        assert_eq!(accept_queue(&table, at(8082)), None);
    }

    /// On this host's own `/proc/net/tcp`: a listener nobody accepts from
    /// shows its queue growing with each connect.
    #[test]
    fn sees_a_real_accept_queue() {
        if std::fs::metadata("/proc/net/tcp").is_err() {
            return; // not Linux
        }
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let at = l.local_addr().unwrap();
        assert_eq!(
            accept_queue(&std::fs::read_to_string("/proc/net/tcp").unwrap(), at),
            Some(0)
        );
        let _a = TcpStream::connect(at).unwrap();
        let _b = TcpStream::connect(at).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            accept_queue(&std::fs::read_to_string("/proc/net/tcp").unwrap(), at),
            Some(2)
        );
        let _ = l.accept().unwrap();
        assert_eq!(
            accept_queue(&std::fs::read_to_string("/proc/net/tcp").unwrap(), at),
            Some(1)
        );
    }

    /// Without a probe: an echo server that accepts one connection every
    /// 5 ms still gets all 30 of a burst, each relayed exactly.
    #[test]
    fn relays_by_accept_queue() {
        let up = echo_server(Duration::from_millis(5));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let relay = Relay::on(listener, up, Confirm::AcceptQueue).unwrap();
        burst(&relay, 30);
    }

    /// An upstream that answers the probe wrongly is refused: the client
    /// sees its connection closed with no data.
    #[test]
    fn wrong_probe_answer_closes_the_client() {
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let up = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in server.incoming() {
                let Ok(mut s) = s else { break };
                let _ = s.write_all(b"nope");
            }
        });
        let relay = Relay::start(
            up,
            Probe {
                send: b"ping",
                expect: b"pong",
            },
        )
        .unwrap();
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut back = Vec::new();
        let _ = c.read_to_end(&mut back);
        assert!(back.is_empty());
        assert_eq!(relay.opened(), 0);
    }
}
