//! The host-side load generator of `bench net`: N connections (one std
//! thread each) to a server on 127.0.0.1 issue requests back to back — one
//! outstanding request per connection, no pipelining — for a fixed count
//! or until a time limit, recording each request's latency (from the first
//! byte written to the last byte of the reply read). Every reply is checked
//! (status, length, echoed bytes); a wrong one ends the run with an error
//! rather than counting.
//!
//! Protocols: redis RESP `SET`/`GET`, memcached text `set`/`get`, HTTP/1.1
//! `GET` with keep-alive (the body length is verified), a 64-byte TCP echo
//! round trip, and bulk throughput (send N MiB, the sink answers with the
//! byte count it received).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of every stored value (redis, memcached).
pub const VALUE_LEN: usize = 64;
/// Distinct keys each connection cycles through.
const KEYS_PER_CONN: usize = 100;
/// Bytes of the echo round trip.
pub const ECHO_LEN: usize = 64;
/// How long one socket read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// What one request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    RedisSet,
    RedisGet,
    MemcachedSet,
    MemcachedGet,
    /// `GET path`, expecting `len` body bytes.
    Http {
        path: String,
        len: usize,
    },
    /// 64 bytes out, the same 64 back.
    EchoRoundTrip,
}

/// How much load to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub conns: usize,
    /// Requests in all, spread over the connections.
    pub requests: usize,
    /// Stop early (with fewer requests) after this long.
    pub limit: Duration,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub requests: usize,
    pub elapsed: Duration,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Stats {
    pub fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile (0..=100) latency, nearest rank.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.latencies, p)
    }
}

/// Nearest-rank percentile of sorted `xs`.
pub fn percentile(xs: &[Duration], p: f64) -> Option<Duration> {
    if xs.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    Some(xs[rank.clamp(1, xs.len()) - 1])
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn value(conn: usize, key: usize) -> Vec<u8> {
    let mut v = format!("c{conn}k{key}:").into_bytes();
    v.resize(VALUE_LEN, b'v');
    v
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed".into()));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// One connection's request encoder and reply checker.
struct Client {
    out: TcpStream,
    inp: BufReader<TcpStream>,
    conn: usize,
}

impl Client {
    fn new(addr: SocketAddr, conn: usize) -> std::io::Result<Client> {
        let s = connect(addr)?;
        Ok(Client {
            inp: BufReader::with_capacity(256 * 1024, s.try_clone()?),
            out: s,
            conn,
        })
    }

    /// Sends request `i` of `w` and reads and checks its reply.
    fn request(&mut self, w: &Workload, i: usize) -> std::io::Result<()> {
        let key = i % KEYS_PER_CONN;
        let name = format!("bench:{}:{key}", self.conn);
        match w {
            Workload::RedisSet => {
                let v = value(self.conn, key);
                let mut req = format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{name}\r\n${}\r\n",
                    name.len(),
                    v.len()
                )
                .into_bytes();
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
                self.out.write_all(&req)?;
                let line = read_line(&mut self.inp)?;
                if line != "+OK" {
                    return Err(bad(format!("redis SET replied {line:?}")));
                }
            }
            Workload::RedisGet => {
                let req = format!("*2\r\n$3\r\nGET\r\n${}\r\n{name}\r\n", name.len());
                self.out.write_all(req.as_bytes())?;
                let line = read_line(&mut self.inp)?;
                let len: usize = line
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad(format!("redis GET replied {line:?} (key not set?)")))?;
                let mut body = vec![0; len + 2];
                self.inp.read_exact(&mut body)?;
                if body[..len] != value(self.conn, key)[..] {
                    return Err(bad("redis GET returned another value".into()));
                }
            }
            Workload::MemcachedSet => {
                let v = value(self.conn, key);
                let mut req = format!("set {name} 0 0 {}\r\n", v.len()).into_bytes();
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
                self.out.write_all(&req)?;
                let line = read_line(&mut self.inp)?;
                if line != "STORED" {
                    return Err(bad(format!("memcached set replied {line:?}")));
                }
            }
            Workload::MemcachedGet => {
                self.out.write_all(format!("get {name}\r\n").as_bytes())?;
                let line = read_line(&mut self.inp)?;
                let len = parse_mc_value(&line, &name)?;
                let mut body = vec![0; len + 2];
                self.inp.read_exact(&mut body)?;
                if body[..len] != value(self.conn, key)[..] {
                    return Err(bad("memcached get returned another value".into()));
                }
                let end = read_line(&mut self.inp)?;
                if end != "END" {
                    return Err(bad(format!("memcached get: {end:?} instead of END")));
                }
            }
            Workload::Http { path, len } => {
                let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
                self.out.write_all(req.as_bytes())?;
                let got = read_http_body(&mut self.inp)?;
                if got != *len {
                    return Err(bad(format!("GET {path}: {got} body bytes, expected {len}")));
                }
            }
            Workload::EchoRoundTrip => {
                let mut msg = [0u8; ECHO_LEN];
                for (j, b) in msg.iter_mut().enumerate() {
                    *b = (i + j) as u8;
                }
                self.out.write_all(&msg)?;
                let mut back = [0u8; ECHO_LEN];
                self.inp.read_exact(&mut back)?;
                if back != msg {
                    return Err(bad("echo returned other bytes".into()));
                }
            }
        }
        Ok(())
    }
}

/// The length of a memcached `VALUE <key> <flags> <bytes>` line.
fn parse_mc_value(line: &str, key: &str) -> std::io::Result<usize> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["VALUE", k, _flags, n] if *k == key => n
            .parse()
            .map_err(|_| bad(format!("memcached: bad length in {line:?}"))),
        _ => Err(bad(format!(
            "memcached get replied {line:?} (key not set?)"
        ))),
    }
}

/// Reads one HTTP/1.1 response (status 200, `Content-Length` or chunked
/// body) and returns the body's length.
pub fn read_http_body(r: &mut impl BufRead) -> std::io::Result<usize> {
    let status = read_line(r)?;
    let code = status.split_whitespace().nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        return Err(bad(format!("HTTP status line {status:?}")));
    }
    let mut length = None;
    let mut chunked = false;
    loop {
        let h = read_line(r)?;
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            length = v.parse::<usize>().ok();
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "connection" && v.eq_ignore_ascii_case("close") {
            return Err(bad(
                "the server closes the connection (no keep-alive)".into()
            ));
        }
    }
    let mut sink = vec![0u8; 64 * 1024];
    let mut skip = |r: &mut dyn BufRead, mut n: usize| -> std::io::Result<()> {
        while n > 0 {
            let k = n.min(sink.len());
            r.read_exact(&mut sink[..k])?;
            n -= k;
        }
        Ok(())
    };
    if chunked {
        let mut total = 0;
        loop {
            let line = read_line(r)?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            skip(r, size + 2)?;
            if size == 0 {
                return Ok(total);
            }
            total += size;
        }
    }
    let n = length.ok_or_else(|| bad("HTTP reply without Content-Length".into()))?;
    skip(r, n)?;
    Ok(n)
}

/// Checks once that `w` gets a good reply at `addr` (readiness probe and
/// the preload of the keys a GET reads).
pub fn probe(addr: SocketAddr, w: &Workload) -> std::io::Result<()> {
    let mut c = Client::new(addr, 0)?;
    c.out.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.request(w, 0)
}

/// Runs `plan` of `w` against `addr`. Connections are opened (and, for
/// GETs, their keys stored with the matching SET) before the clock starts.
pub fn run(addr: SocketAddr, w: &Workload, plan: Plan) -> std::io::Result<Stats> {
    let conns = plan.conns.max(1);
    let preload = match w {
        Workload::RedisGet => Some(Workload::RedisSet),
        Workload::MemcachedGet => Some(Workload::MemcachedSet),
        _ => None,
    };
    let mut clients = Vec::new();
    for c in 0..conns {
        let mut client = Client::new(addr, c)?;
        if let Some(p) = &preload {
            for k in 0..KEYS_PER_CONN.min(plan.requests.div_ceil(conns)) {
                client.request(p, k)?;
            }
        }
        clients.push(client);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + plan.limit;
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            // Connection c issues requests c, c + conns, ...: `requests` in all.
            let n = plan.requests / conns + usize::from(c < plan.requests % conns);
            let w = w.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || -> std::io::Result<Vec<Duration>> {
                let mut lat = Vec::with_capacity(n);
                for i in 0..n {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let t = Instant::now();
                    if let Err(e) = client.request(&w, i) {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    lat.push(t.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => error = error.or(Some(e)),
            Err(_) => error = error.or(Some(bad("a load thread panicked".into()))),
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = error {
        return Err(e);
    }
    latencies.sort();
    Ok(Stats {
        requests: latencies.len(),
        elapsed,
        latencies,
    })
}

/// Sends `mib` MiB on each of `conns` connections to the sink and waits
/// for its byte counts; returns the bytes sent in all and the time.
pub fn bulk(addr: SocketAddr, conns: usize, mib: usize) -> std::io::Result<(u64, Duration)> {
    let mut streams = Vec::new();
    for _ in 0..conns.max(1) {
        streams.push(connect(addr)?);
    }
    let start = Instant::now();
    let threads: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || -> std::io::Result<u64> {
                let chunk = vec![0x5au8; 64 * 1024];
                let total = (mib * 1024 * 1024) as u64;
                let mut sent = 0u64;
                while sent < total {
                    let k = (total - sent).min(chunk.len() as u64) as usize;
                    s.write_all(&chunk[..k])?;
                    sent += k as u64;
                }
                s.shutdown(std::net::Shutdown::Write)?;
                let mut reply = String::new();
                s.read_to_string(&mut reply)?;
                let got: u64 = reply
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("sink replied {reply:?}")))?;
                if got != sent {
                    return Err(bad(format!("sink counted {got} bytes, {sent} sent")));
                }
                Ok(sent)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t
            .join()
            .map_err(|_| bad("a bulk thread panicked".into()))??;
    }
    Ok((total, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn percentiles_are_nearest_rank() {
        let xs: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&xs, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&xs, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&xs, 100.0), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&xs[..1], 99.0), Some(Duration::from_micros(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn http_bodies_by_length_and_chunks() {
        let mut r = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhelloHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..];
        assert_eq!(read_http_body(&mut r).unwrap(), 5);
        assert_eq!(read_http_body(&mut r).unwrap(), 5);
        assert!(r.is_empty());
        let mut r = &b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..];
        assert!(read_http_body(&mut r).is_err());
        let mut r = &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"[..];
        assert!(read_http_body(&mut r).is_err());
    }

    #[test]
    fn memcached_value_line() {
        assert_eq!(parse_mc_value("VALUE k 0 64", "k").unwrap(), 64);
        assert!(parse_mc_value("END", "k").is_err());
        assert!(parse_mc_value("VALUE other 0 64", "k").is_err());
    }

    /// A toy in-process server: echo on one port, a redis that stores and
    /// returns values, to run the real client code against.
    fn toy_redis() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let s = s.unwrap();
                std::thread::spawn(move || {
                    let mut out = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    let mut store = std::collections::HashMap::new();
                    loop {
                        let Ok(n) = read_line(&mut r) else { return };
                        let n: usize = n[1..].parse().unwrap();
                        let mut args = Vec::new();
                        for _ in 0..n {
                            let len: usize = read_line(&mut r).unwrap()[1..].parse().unwrap();
                            let mut a = vec![0; len + 2];
                            r.read_exact(&mut a).unwrap();
                            a.truncate(len);
                            args.push(a);
                        }
                        if args[0] == b"SET" {
                            store.insert(args[1].clone(), args[2].clone());
                            out.write_all(b"+OK\r\n").unwrap();
                        } else {
                            let v: &Vec<u8> = store.get(&args[1]).unwrap();
                            let mut reply = format!("${}\r\n", v.len()).into_bytes();
                            reply.extend_from_slice(v);
                            reply.extend_from_slice(b"\r\n");
                            out.write_all(&reply).unwrap();
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn runs_redis_gets_against_a_toy_server() {
        let addr = toy_redis();
        let plan = Plan {
            conns: 3,
            requests: 301,
            limit: Duration::from_secs(30),
        };
        let s = run(addr, &Workload::RedisGet, plan).unwrap();
        assert_eq!(s.requests, 301);
        assert_eq!(s.latencies.len(), 301);
        assert!(s.latencies.windows(2).all(|w| w[0] <= w[1]));
        assert!(s.per_sec() > 0.0);
        assert!(s.percentile(50.0) <= s.percentile(99.0));
    }

    #[test]
    fn a_wrong_reply_is_an_error_not_a_figure() {
        // An "echo" server that answers with other bytes.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let mut buf = [0u8; ECHO_LEN];
                while s.read_exact(&mut buf).is_ok() {
                    buf[0] ^= 1;
                    let _ = s.write_all(&buf);
                }
            }
        });
        let plan = Plan {
            conns: 1,
            requests: 5,
            limit: Duration::from_secs(30),
        };
        assert!(run(addr, &Workload::EchoRoundTrip, plan).is_err());
    }
}
