//! The socket layer on the host: AF_UNIX state machines (through the
//! [`Socket`] trait, std threads for blocking), TCP and UDP over the
//! loopback interface, and the syscall handlers' address plumbing
//! through a fake process.

use super::addr::*;
use super::unix;
use super::*;
use crate::fs::pollbits::*;
use crate::fs::tests::test_tree;
use crate::linux::fd::FsState;
use alloc::string::String;
use alloc::vec;

fn fs() -> FsState {
    FsState::new(test_tree())
}

fn env(fs: &FsState) -> Env<'_> {
    Env {
        fs,
        cred: Ucred {
            pid: 1,
            uid: 0,
            gid: 0,
        },
    }
}

fn nb() -> Io {
    Io::nonblocking()
}

fn send(s: &Arc<dyn Socket>, d: &[u8]) -> KResult<usize> {
    s.send(None, d, None, Vec::new(), Io::blocking())
}

fn recv(s: &Arc<dyn Socket>, n: usize, io: Io) -> KResult<Vec<u8>> {
    let mut b = vec![0u8; n];
    let r = s.recv(&mut b, io)?;
    b.truncate(r.len);
    Ok(b)
}

#[test]
fn unix_stream_pair_half_close_eof_and_epipe() {
    let (a, b) = unix::pair(SOCK_STREAM, 0, Ucred::NONE).unwrap();
    assert_eq!(a.notify().poll_bits() & (POLLOUT | POLLIN), POLLOUT);
    assert_eq!(send(&a, b"hello"), Ok(5));
    assert_ne!(b.notify().poll_bits() & POLLIN, 0);
    assert_eq!(b.readable_bytes(), Some(5));
    let mut io = nb();
    io.flags = msg::MSG_PEEK;
    assert_eq!(recv(&b, 2, io).unwrap(), b"he");
    assert_eq!(recv(&b, 64, nb()).unwrap(), b"hello");
    assert_eq!(recv(&b, 64, nb()).err(), Some(Errno::EAGAIN));
    // Half-close: b reads EOF, can still write back.
    a.shutdown(SHUT_WR).unwrap();
    assert_eq!(recv(&b, 64, nb()).unwrap(), b"");
    assert_ne!(b.notify().poll_bits() & POLLRDHUP, 0);
    assert_eq!(send(&a, b"x").err(), Some(Errno::EPIPE));
    assert_eq!(send(&b, b"back"), Ok(4));
    assert_eq!(recv(&a, 64, nb()).unwrap(), b"back");
    drop(a);
    assert_eq!(send(&b, b"x").err(), Some(Errno::EPIPE));
    assert_ne!(b.notify().poll_bits() & POLLHUP, 0);
}

#[test]
fn unix_stream_blocking_writer_fills_and_drains() {
    let (a, b) = unix::pair(SOCK_STREAM, 0, Ucred::NONE).unwrap();
    let big = vec![7u8; unix::STREAM_CAP + 1000];
    assert_eq!(
        a.send(None, &big, None, Vec::new(), nb()),
        Ok(unix::STREAM_CAP)
    );
    assert_eq!(
        a.send(None, b"x", None, Vec::new(), nb()),
        Err(Errno::EAGAIN)
    );
    let t = std::thread::spawn(move || send(&a, &[1u8; 100_000]));
    let mut total = 0;
    while total < unix::STREAM_CAP + 100_000 {
        total += recv(&b, 65536, Io::blocking()).unwrap().len();
    }
    assert_eq!(t.join().unwrap(), Ok(100_000));
}

#[test]
fn unix_listen_connect_accept_by_path_and_abstract() {
    let fs = fs();
    let e = env(&fs);
    let srv = unix::create(SOCK_STREAM, 0).unwrap();
    let path = SockAddr::Unix(UnixAddr::Path(String::from("/tmp/sock")));
    srv.bind(&e, path.clone()).unwrap();
    let again = unix::create(SOCK_STREAM, 0).unwrap();
    assert_eq!(again.bind(&e, path.clone()), Err(Errno::EADDRINUSE));
    let cli = unix::create(SOCK_STREAM, 0).unwrap();
    assert_eq!(
        cli.connect(&e, path.clone(), nb()),
        Err(Errno::ECONNREFUSED)
    );
    srv.listen(0).unwrap();
    assert!(srv.is_listening());
    assert_eq!(srv.accept(nb()).err(), Some(Errno::EAGAIN));
    cli.connect(&e, path.clone(), nb()).unwrap();
    assert_eq!(cli.connect(&e, path.clone(), nb()), Err(Errno::EISCONN));
    // Backlog 0 admits one pending connection (Linux's `> backlog`).
    let c2 = unix::create(SOCK_STREAM, 0).unwrap();
    assert_eq!(c2.connect(&e, path.clone(), nb()), Err(Errno::EAGAIN));
    assert_ne!(srv.notify().poll_bits() & POLLIN, 0);
    let conn = srv.accept(nb()).unwrap();
    assert_eq!(conn.local_addr(), Ok(path.clone()));
    assert_eq!(cli.peer_addr(), Ok(path.clone()));
    assert_eq!(conn.peer_addr(), Ok(SockAddr::Unix(UnixAddr::Unnamed)));
    assert_eq!(conn.peer_cred().pid, 1);
    send(&cli, b"ping").unwrap();
    assert_eq!(recv(&conn, 16, nb()).unwrap(), b"ping");
    // Abstract names: no file, EADDRINUSE while bound, free after close.
    let abs = SockAddr::Unix(UnixAddr::Abstract(b"skiff-test".to_vec()));
    let a1 = unix::create(SOCK_STREAM, 0).unwrap();
    a1.bind(&e, abs.clone()).unwrap();
    let a2 = unix::create(SOCK_STREAM, 0).unwrap();
    assert_eq!(a2.bind(&e, abs.clone()), Err(Errno::EADDRINUSE));
    drop(a1);
    a2.bind(&e, abs.clone()).unwrap();
    // Unconnected stream: ENOTCONN on send, EINVAL on listen unbound.
    let lone = unix::create(SOCK_STREAM, 0).unwrap();
    assert_eq!(send(&lone, b"x"), Err(Errno::ENOTCONN));
    assert_eq!(lone.listen(1), Err(Errno::EINVAL));
}

#[test]
fn unix_dgram_named_and_pair() {
    let fs = fs();
    let e = env(&fs);
    let (a, b) = unix::pair(SOCK_DGRAM, 0, Ucred::NONE).unwrap();
    send(&a, b"one").unwrap();
    send(&a, b"three").unwrap();
    let mut buf = [0u8; 2];
    let r = b.recv(&mut buf, nb()).unwrap();
    assert_eq!((r.len, r.full_len, r.flags), (2, 3, msg::MSG_TRUNC));
    assert_eq!(recv(&b, 16, nb()).unwrap(), b"three");
    assert_eq!(recv(&b, 16, nb()).err(), Some(Errno::EAGAIN));
    let srv = unix::create(SOCK_DGRAM, 0).unwrap();
    let name = SockAddr::Unix(UnixAddr::Abstract(b"dg".to_vec()));
    srv.bind(&e, name.clone()).unwrap();
    let cli = unix::create(SOCK_DGRAM, 0).unwrap();
    assert_eq!(send(&cli, b"x"), Err(Errno::ENOTCONN));
    cli.send(Some(&e), b"hi", Some(name.clone()), Vec::new(), nb())
        .unwrap();
    let r = {
        let mut b = [0u8; 8];
        srv.recv(&mut b, nb()).unwrap()
    };
    assert_eq!(r.from, Some(SockAddr::Unix(UnixAddr::Unnamed)));
    assert_eq!(srv.listen(1), Err(Errno::EOPNOTSUPP));
}

#[test]
fn unix_seqpacket_keeps_boundaries() {
    let (a, b) = unix::pair(SOCK_SEQPACKET, 0, Ucred::NONE).unwrap();
    send(&a, b"abc").unwrap();
    send(&a, b"defgh").unwrap();
    let mut buf = [0u8; 2];
    let r = b.recv(&mut buf, nb()).unwrap();
    assert_eq!((r.len, r.flags), (2, msg::MSG_TRUNC));
    assert_eq!(recv(&b, 16, nb()).unwrap(), b"defgh");
}

fn v4(port: u16) -> SockAddr {
    SockAddr::V4 {
        ip: [127, 0, 0, 1],
        port,
    }
}

fn v6(port: u16) -> SockAddr {
    let mut ip = [0u8; 16];
    ip[15] = 1;
    SockAddr::V6 {
        ip,
        port,
        flowinfo: 0,
        scope_id: 0,
    }
}

/// Runs the network thread's job on the host: timers (delayed ACKs).
fn net_pump() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        while !s.load(core::sync::atomic::Ordering::Relaxed) {
            crate::net::stack::poll_now();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    stop
}

fn port_of(s: &Arc<dyn Socket>) -> u16 {
    match s.local_addr().unwrap() {
        SockAddr::V4 { port, .. } | SockAddr::V6 { port, .. } => port,
        _ => 0,
    }
}

#[test]
fn tcp_loopback_connect_transfer_close() {
    let stop = net_pump();
    let fs = fs();
    let e = env(&fs);
    for (fam, addr) in [(AF_INET, v4 as fn(u16) -> SockAddr), (AF_INET6, v6)] {
        let l = create(fam, SOCK_STREAM, 0).unwrap();
        l.bind(&e, addr(0)).unwrap();
        let port = port_of(&l);
        assert!(port >= 32768);
        l.listen(4).unwrap();
        let other = create(fam, SOCK_STREAM, 0).unwrap();
        assert_eq!(other.bind(&e, addr(port)), Err(Errno::EADDRINUSE));
        let c = create(fam, SOCK_STREAM, 0).unwrap();
        c.connect(&e, addr(port), Io::blocking()).unwrap();
        let s = l.accept(Io::blocking()).unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr(port));
        // 1 MiB each way through 64 KiB windows.
        let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            let n = send(&c, &d2).unwrap();
            c.shutdown(SHUT_WR).unwrap();
            (n, c)
        });
        let mut got = Vec::new();
        loop {
            let chunk = recv(&s, 65536, Io::blocking()).unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        let (n, c) = writer.join().unwrap();
        assert_eq!(n, data.len());
        assert!(got == data, "data arrived intact");
        drop(s);
        assert_eq!(recv(&c, 16, Io::blocking()).unwrap(), b"");
        // A closed port refuses.
        drop(l);
        let r = create(fam, SOCK_STREAM, 0).unwrap();
        assert_eq!(
            r.connect(&e, addr(port), Io::blocking()),
            Err(Errno::ECONNREFUSED)
        );
    }
    stop.store(true, core::sync::atomic::Ordering::Relaxed);
}

#[test]
fn tcp_nonblocking_connect_reports_so_error() {
    let stop = net_pump();
    let fs = fs();
    let e = env(&fs);
    let c = create(AF_INET, SOCK_STREAM, 0).unwrap();
    // Port 1 has no listener: refused, seen through SO_ERROR.
    match c.connect(&e, v4(1), nb()) {
        Err(Errno::EINPROGRESS) => {
            while c.notify().poll_bits() & POLLOUT == 0 {
                std::thread::yield_now();
            }
            assert_eq!(c.take_error(), Some(Errno::ECONNREFUSED));
        }
        other => assert_eq!(other, Err(Errno::ECONNREFUSED)),
    }
    stop.store(true, core::sync::atomic::Ordering::Relaxed);
}

#[test]
fn udp_loopback_round_trip_and_connect_filter() {
    let fs = fs();
    let e = env(&fs);
    let a = create(AF_INET, SOCK_DGRAM, 0).unwrap();
    a.bind(&e, v4(0)).unwrap();
    let pa = port_of(&a);
    let b = create(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(send(&b, b"x"), Err(Errno::EDESTADDRREQ));
    b.send(None, b"datagram", Some(v4(pa)), Vec::new(), nb())
        .unwrap();
    let mut buf = [0u8; 4];
    let r = a.recv(&mut buf, Io::blocking()).unwrap();
    assert_eq!((r.len, r.full_len, r.flags), (4, 8, msg::MSG_TRUNC));
    assert_eq!(r.from, Some(v4(port_of(&b))));
    assert_eq!(a.recv(&mut buf, nb()).err(), Some(Errno::EAGAIN));
    // A connected socket only hears its peer.
    let c = create(AF_INET, SOCK_DGRAM, 0).unwrap();
    a.connect(&e, v4(port_of(&b)), nb()).unwrap();
    c.send(None, b"noise", Some(v4(pa)), Vec::new(), nb())
        .unwrap();
    b.send(None, b"peer", Some(v4(pa)), Vec::new(), nb())
        .unwrap();
    assert_eq!(recv(&a, 16, Io::blocking()).unwrap(), b"peer");
}

#[test]
fn socket_type_flags() {
    assert_eq!(
        split_type((SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC) as usize),
        Ok((SOCK_STREAM, true, true))
    );
    // qemu-user drops unknown bits, so the suite cannot check this one.
    assert_eq!(split_type(0x100_0001), Err(Errno::EINVAL));
    assert_eq!(
        create(4242, SOCK_STREAM, 0).err(),
        Some(Errno::EAFNOSUPPORT)
    );
    assert_eq!(
        create(AF_INET, SOCK_STREAM, 17).err(),
        Some(Errno::EPROTONOSUPPORT)
    );
    assert_eq!(create(AF_INET, 12, 0).err(), Some(Errno::EINVAL));
}
