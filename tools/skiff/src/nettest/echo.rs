//! The network phase's `echo` cases (see the module above): on the default
//! board of each arch, tests/linux/netecho.c runs in the guest behind a
//! restricted user network with TCP and UDP port forwards on 127.0.0.1,
//! and the host checks
//! - `dhcp`: the kernel's DHCP line (10.0.2.15/24, the 86400 s lease;
//!   QEMU's restricted DHCP server names no router or DNS server),
//!   `/etc/resolv.conf` as the guest reads it, the guest's own address,
//!   a TCP echo and UDP datagrams, then 1000 concurrent connections
//!   (`SKIFF_NET_CONNS=N` for another count) each echoing a checksummed
//!   payload, all within a bounded time;
//! - `static`: `ip=10.0.2.15/24 gw=10.0.2.2 dns=10.0.2.3` from the command
//!   line (no DHCP) and a TCP echo;
//! - `dhcp-nat`: DHCP on QEMU's unrestricted user network, whose server
//!   also names the router (10.0.2.2) and DNS server (10.0.2.3), which
//!   must reach the kernel's line and `/etc/resolv.conf`; a TCP echo.
//!
//! UDP: datagrams reach the guest's server and are counted there; their
//! echo cannot come back under `restrict=on` (see [`send_udp`]).
//!
//! The guest is booted by this tool's own `run` command (a child process),
//! so packing, the kernel build and the QEMU arguments are `skiff run`'s.

use crate::boards::{Arch, Board};
use crate::cli::TestArgs;
use crate::linux_suite::Variant;
use crate::matrix::Verdict;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The guest port both servers bind.
const GUEST_PORT: u16 = 7;
/// Concurrent connections of the `dhcp` case's load step
/// (`SKIFF_NET_CONNS=N` for another count, see [`conns`]).
const CONNS: usize = 1000;
/// Host threads exchanging their payloads once all are open.
const THREADS: usize = 100;
/// Datagrams sent to the guest's UDP server.
const UDP_SENT: u32 = 3;
/// Bytes each of those connections sends and expects back.
const PAYLOAD: usize = 1024;
/// Boot (kernel build included) until the server listens.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// The load step as a whole.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(root: &Path, boards: &[&Board], args: &TestArgs) -> Vec<Verdict> {
    let mut out = Vec::new();
    // The load step holds CONNS sockets in this process.
    crate::netopts::raise_nofile_limit();
    for board in boards {
        let arch = board.arch;
        let wanted = |name: &str| {
            args.filter
                .as_deref()
                .is_none_or(|f| format!("echo-{name}").contains(f))
        };
        if !wanted("dhcp") && !wanted("static") && !wanted("dhcp-nat") {
            continue;
        }
        let prog = match build(root, arch) {
            Ok(p) => p,
            Err(e) => {
                for name in ["dhcp", "static", "dhcp-nat"] {
                    println!("FAIL net {arch}/echo-{name}: {e}");
                    out.push(Verdict::Fail(vec![e.clone()]));
                }
                continue;
            }
        };
        for (name, kopts) in [
            ("dhcp", &[][..]),
            (
                "static",
                &["ip=10.0.2.15/24", "gw=10.0.2.2", "dns=10.0.2.3"][..],
            ),
            ("dhcp-nat", &[][..]),
        ] {
            if !wanted(name) {
                continue;
            }
            let started = Instant::now();
            let r = case(board, args, &prog, name, kopts);
            let secs = started.elapsed().as_secs_f64();
            match r {
                Ok(note) => {
                    println!("PASS net {arch}/echo-{name} ({secs:.1}s) {note}");
                    out.push(Verdict::Pass);
                }
                Err(e) => {
                    println!("FAIL net {arch}/echo-{name} ({secs:.1}s): {e}");
                    out.push(Verdict::Fail(vec![e]));
                }
            }
        }
    }
    out
}

/// Compiles netecho.c (static glibc) for `arch`.
fn build(root: &Path, arch: Arch) -> Result<PathBuf, String> {
    let (cc, pkg) = Variant::GlibcStatic
        .compiler(arch)
        .ok_or_else(|| format!("no C compiler for {arch}"))?;
    let dir = crate::matrix::target_dir(root).join(format!("skiff-net/{arch}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join("netecho");
    let src = root.join("tests/linux/netecho.c");
    let o = Command::new(cc)
        .args([
            "-O1", "-Wall", "-Wextra", "-Werror", "-static", "-pthread", "-o",
        ])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("{cc}: {e} (apt-get install {pkg})"))?;
    if !o.status.success() {
        return Err(format!(
            "{cc} failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ));
    }
    Ok(out)
}

/// A port free on 127.0.0.1 for both TCP and UDP (as far as can be told
/// before QEMU binds it).
fn free_port() -> Result<u16, String> {
    for _ in 0..20 {
        let t = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let port = t.local_addr().map_err(|e| e.to_string())?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port on 127.0.0.1".into())
}

/// A booted guest: the child `skiff run`, its console lines.
struct Guest {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Guest {
    fn boot(
        board: &Board,
        args: &TestArgs,
        prog: &Path,
        port: u16,
        kopts: &[&str],
        net: &str,
    ) -> Result<Guest, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.args(["run", "--board", &board.name, "--net", net])
            .args(["-p", &format!("tcp:{port}:{GUEST_PORT}")])
            .args(["-p", &format!("udp:{port}:{GUEST_PORT}")])
            .args(["--timeout", "600"]);
        if args.release {
            cmd.arg("--release");
        }
        for k in kopts {
            cmd.args(["--kopt", k]);
        }
        // Its own process group, so that Drop can end QEMU with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("--")
            .arg(prog)
            .args([GUEST_PORT.to_string(), "0".into()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("skiff run: {e}"))?;
        let (tx, rx) = mpsc::channel();
        let pipe = |r: Box<dyn Read + Send>, tx: mpsc::Sender<String>| {
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        };
        pipe(Box::new(child.stdout.take().expect("piped")), tx.clone());
        pipe(Box::new(child.stderr.take().expect("piped")), tx);
        Ok(Guest {
            child,
            lines: rx,
            log: Vec::new(),
        })
    }

    /// Waits for a console line containing `what`; the line.
    fn wait_for(&mut self, what: &str, timeout: Duration) -> Result<String, String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(what) {
                        return Ok(l);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no line {what:?} within {}s{}",
                        timeout.as_secs(),
                        self.tail()
                    ))
                }
            }
        }
    }

    /// Whether some line seen so far contains `what`.
    fn saw(&self, what: &str) -> bool {
        self.log.iter().any(|l| l.contains(what))
    }

    fn tail(&self) -> String {
        let n = self.log.len();
        format!(
            "; last lines: {}",
            self.log[n.saturating_sub(8)..].join(" | ")
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The whole group: `skiff run` and the QEMU it started (killing
            // only `skiff run` left QEMU running after a failed case).
            let group = format!("-{}", self.child.id());
            let killed = Command::new("kill")
                .args(["-KILL", "--", &group])
                .status()
                .is_ok_and(|s| s.success());
            if !killed {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

fn case(
    board: &Board,
    args: &TestArgs,
    prog: &Path,
    name: &str,
    kopts: &[&str],
) -> Result<String, String> {
    let port = free_port()?;
    // `dhcp-nat` is on QEMU's unrestricted user network (NAT), where its
    // DHCP server also names the router and the DNS server; netecho itself
    // never sends to any address but the host's forwards.
    let net = if name == "dhcp-nat" {
        "user"
    } else {
        "user,restrict"
    };
    let mut g = Guest::boot(board, args, prog, port, kopts, net)?;
    g.wait_for("netecho: listening", BOOT_TIMEOUT)?;
    // Under restrict=on QEMU's DHCP server names no router and no DNS
    // server (libslirp's bootp.c), so the lease is checked for its address
    // and duration; `dhcp-nat` and the static case check router and DNS.
    let want: &[&str] = if name == "dhcp-nat" {
        &["addr=10.0.2.15/24 router=10.0.2.2 dns=10.0.2.3 mtu=1500 source=dhcp lease=86400s"]
    } else if kopts.is_empty() {
        &["addr=10.0.2.15/24 ", " mtu=1500 source=dhcp lease=86400s"]
    } else {
        &["addr=10.0.2.15/24 router=10.0.2.2 dns=10.0.2.3 mtu=1500 source=static"]
    };
    let Some(line) = g
        .log
        .iter()
        .find(|l| l.contains("net: eth0 mac=") && want.iter().all(|w| l.contains(w)))
        .cloned()
    else {
        return Err(format!("no kernel line with {want:?}{}", g.tail()));
    };
    // The guest's /etc/resolv.conf (a link to the kernel's
    // /run/resolv.conf) names the servers of that line.
    let dns = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("dns="))
        .unwrap_or("none");
    let want_resolv: Vec<String> = if dns == "none" {
        vec!["netecho: resolv none".into()]
    } else {
        dns.split(',')
            .map(|d| format!("netecho: resolv nameserver {d}"))
            .collect()
    };
    for w in &want_resolv {
        if !g.saw(w) {
            return Err(format!(
                "the guest's /etc/resolv.conf: no {w:?} (kernel: {line}){}",
                g.tail()
            ));
        }
    }
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let big: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
    echo_tcp(addr, &big, Duration::from_secs(60))
        .map_err(|e| format!("tcp echo: {e}{}", g.tail()))?;
    let local = g.wait_for("netecho: first connection", Duration::from_secs(10))?;
    if !local.contains("local 10.0.2.15:7") {
        return Err(format!(
            "the guest's connection is not on 10.0.2.15:7: {local}"
        ));
    }
    send_udp(addr).map_err(|e| format!("udp: {e}{}", g.tail()))?;
    let mut note = String::new();
    if name == "dhcp" {
        let n = conns();
        let t = Instant::now();
        let ok = load(addr, n).map_err(|e| format!("{n} connections: {e}{}", g.tail()))?;
        note = format!(
            "{ok} concurrent connections echoed in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    // "quit" ends the server; the guest powers off with status 0.
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("quit: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.write_all(b"quit\n").map_err(|e| format!("quit: {e}"))?;
    let mut bye = [0u8; 4];
    s.read_exact(&mut bye)
        .map_err(|e| format!("quit reply: {e}"))?;
    let done = g.wait_for("netecho: done", Duration::from_secs(30))?;
    let got = done
        .split_whitespace()
        .skip_while(|w| *w != "datagrams")
        .nth(1)
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if got < UDP_SENT {
        return Err(format!(
            "the guest received {got} of {UDP_SENT} datagrams: {done}"
        ));
    }
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match g.child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(100)),
            _ => return Err(format!("the guest did not power off{}", g.tail())),
        }
    };
    if !status.success() {
        return Err(format!("skiff run exited with {status}{}", g.tail()));
    }
    Ok(note)
}

/// Sends `data` on one connection while reading the echo; checks it.
fn echo_tcp(addr: SocketAddr, data: &[u8], timeout: Duration) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let data_w = data.to_vec();
    let writer = std::thread::spawn(move || w.write_all(&data_w));
    let mut got = vec![0u8; data.len()];
    let mut r = &s;
    r.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("write: {e}"))?;
    if got != data {
        return Err("echoed bytes differ".into());
    }
    Ok(())
}

/// Datagrams to the guest. Under `restrict=on` libslirp drops every UDP
/// datagram the guest sends other than DHCP and TFTP (udp.c), so the echo
/// never comes back: what is checked is that the guest received them
/// (netecho's final count, see [`case`]); an answer that does arrive (an
/// unrestricted network) must equal what was sent.
fn send_udp(addr: SocketAddr) -> Result<u32, String> {
    let u = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    u.set_read_timeout(Some(Duration::from_millis(200))).ok();
    for i in 0..UDP_SENT {
        let msg = format!("datagram {i} {}", "x".repeat(100 * i as usize));
        u.send_to(msg.as_bytes(), addr).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 2048];
        if let Ok((n, _)) = u.recv_from(&mut buf) {
            if &buf[..n] != msg.as_bytes() {
                return Err(format!("datagram {i} came back different"));
            }
        }
    }
    Ok(UDP_SENT)
}

/// Fletcher-style checksum over `data`.
fn checksum(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Connection `id`'s payload: its id, pseudo-random bytes, and the
/// checksum of everything before it in the last four bytes.
fn payload(id: u32) -> Vec<u8> {
    let mut x = id.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut p: Vec<u8> = id.to_le_bytes().to_vec();
    while p.len() < PAYLOAD - 4 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p.push(x as u8);
    }
    let c = checksum(&p);
    p.extend_from_slice(&c.to_le_bytes());
    p
}

/// The load step's connection count: `SKIFF_NET_CONNS` when it is a
/// number from 1 to 4000, else [`CONNS`].
fn conns() -> usize {
    std::env::var("SKIFF_NET_CONNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=4000).contains(n))
        .unwrap_or(CONNS)
}

/// Bytes of each payload echoed while its connection is opened, to know
/// the guest has it.
const PING: usize = 16;

/// Opens `conns` connections one after another, each confirmed by echoing
/// the first [`PING`] bytes of its payload, and holds them all open; then
/// THREADS threads each send the rest of their share's payloads, read every
/// echo back and check it. Returns how many were checked.
///
/// Why one at a time: QEMU's port forward listens with a backlog of 1, so
/// connects racing each other overflow the host kernel's accept queue,
/// where SYN cookies let a client believe it is connected while QEMU never
/// accepted it (measured: of 1000 racing connects, 916 reached the guest;
/// the rest timed out or were reset by the host kernel). Once open, the
/// connections are all live at the same time.
fn load(addr: SocketAddr, conns: usize) -> Result<usize, String> {
    let deadline = Instant::now() + LOAD_TIMEOUT;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut socks: Vec<(u32, TcpStream)> = Vec::with_capacity(conns);
    for id in 0..conns as u32 {
        let mut s =
            TcpStream::connect_timeout(&addr, left()).map_err(|e| format!("connect #{id}: {e}"))?;
        s.set_read_timeout(Some(left())).ok();
        s.set_write_timeout(Some(left())).ok();
        let p = payload(id);
        s.write_all(&p[..PING])
            .map_err(|e| format!("write #{id}: {e}"))?;
        let mut got = [0u8; PING];
        s.read_exact(&mut got)
            .map_err(|e| format!("open #{id}: {e}"))?;
        if got[..] != p[..PING] {
            return Err(format!("connection #{id}: first echo corrupted"));
        }
        socks.push((id, s));
    }
    let per = conns.div_ceil(THREADS);
    let mut groups: Vec<Vec<(u32, TcpStream)>> = Vec::new();
    while !socks.is_empty() {
        let rest = socks.split_off(per.min(socks.len()));
        groups.push(std::mem::replace(&mut socks, rest));
    }
    let workers: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            std::thread::spawn(move || -> Result<usize, String> {
                // All open: now every one sends, then every one reads.
                for (id, s) in &mut group {
                    s.write_all(&payload(*id)[PING..])
                        .map_err(|e| format!("write #{id}: {e}"))?;
                }
                for (id, s) in &mut group {
                    let mut got = vec![0u8; PAYLOAD];
                    got[..PING].copy_from_slice(&payload(*id)[..PING]);
                    s.read_exact(&mut got[PING..])
                        .map_err(|e| format!("read #{id}: {e}"))?;
                    let body = &got[..PAYLOAD - 4];
                    let sum = u32::from_le_bytes(got[PAYLOAD - 4..].try_into().expect("4 bytes"));
                    if checksum(body) != sum || body[..4] != id.to_le_bytes() {
                        return Err(format!("connection #{id}: echo corrupted"));
                    }
                }
                Ok(group.len())
            })
        })
        .collect();
    let mut total = 0;
    let mut errors = Vec::new();
    for w in workers {
        match w.join() {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a load thread panicked".into()),
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "{} of {THREADS} threads failed, first: {}",
            errors.len(),
            errors[0]
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_id_and_checksum() {
        let p = payload(7);
        assert_eq!(p.len(), PAYLOAD);
        assert_eq!(p[..4], 7u32.to_le_bytes());
        let sum = u32::from_le_bytes(p[PAYLOAD - 4..].try_into().unwrap());
        assert_eq!(checksum(&p[..PAYLOAD - 4]), sum);
        assert_ne!(payload(8)[4..], p[4..]);
        let mut bad = p.clone();
        bad[100] ^= 1;
        assert_ne!(checksum(&bad[..PAYLOAD - 4]), sum);
    }

    #[test]
    fn free_port_is_bindable() {
        let p = free_port().unwrap();
        assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
    }
}
