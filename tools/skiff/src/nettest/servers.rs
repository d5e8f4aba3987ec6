//! The network phase's `servers` cases: Debian's unmodified redis-server,
//! memcached and nginx (unpacked into `build/debian/<arch>/root` by
//! `ci/fetch-debian-progs.sh`), each booted as the app of its own Skiff
//! guest on a restricted user network with one `-p` forward on 127.0.0.1,
//! and driven from the host with small protocol clients written here:
//! - redis: SET/GET of small and large values (RESP), then
//!   `redis-benchmark -q -t set,get` when the host has it (figures printed);
//! - memcached: 10 000 keys set and read back (text protocol, pipelined);
//! - nginx: GET of a 1 MiB file (SHA-256 checked) and of a 1 KiB file.
//!
//! Each server then boots once more from a `--disk` image instead of an
//! initramfs.
//! A guest is stopped with the QEMU monitor's `quit` once its checks ran
//! (the servers never exit by themselves).

use crate::accel::{self, HostFacts};
use crate::app;
use crate::boards::{Arch, Board};
use crate::cli::{Forward, NetArg, Proto, TestArgs};
use crate::kernel;
use crate::matrix::{self, Verdict};
use crate::netopts;
use crate::qemu::{self, AfterStatus, RunSpec};
use crate::relay::{Probe, Relay};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// From QEMU's start until the server answers its probe.
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// One boot in all (a guard: the monitor's `quit` ends it normally).
const BOOT_TIMEOUT: Duration = Duration::from_secs(480);
/// Socket reads and writes of the host clients.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// `redis-benchmark` is killed after this long.
const BENCH_TIMEOUT: Duration = Duration::from_secs(120);
/// redis-benchmark's own default number of connections.
const BENCH_CLIENTS: usize = 50;
/// Keys memcached stores and returns.
const MEMCACHED_KEYS: usize = 10_000;
/// Requests per pipelined batch of the memcached client.
const BATCH: usize = 100;

/// One server: its command line in the guest, guest port and files.
struct Server {
    name: &'static str,
    argv: Vec<String>,
    port: u16,
    adds: Vec<String>,
}

/// The files the servers need (nginx's configuration and web root), in
/// `dir`; returns the servers and the 1 MiB file's bytes.
fn servers(dir: &Path) -> Result<(Vec<Server>, Vec<u8>), String> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).map_err(|e| format!("{}: {e}", www.display()))?;
    let write = |p: PathBuf, data: &[u8]| -> Result<String, String> {
        std::fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p.display().to_string())
    };
    let conf = write(
        dir.join("nginx.conf"),
        b"daemon off;\nmaster_process off;\nworker_processes 1;\n\
error_log stderr notice;\npid /tmp/nginx.pid;\n\
events { worker_connections 64; }\n\
http {\n  access_log off;\n  default_type application/octet-stream;\n\
  client_body_temp_path /tmp/nginx-body;\n  proxy_temp_path /tmp/nginx-proxy;\n\
  fastcgi_temp_path /tmp/nginx-fastcgi;\n  uwsgi_temp_path /tmp/nginx-uwsgi;\n\
  scgi_temp_path /tmp/nginx-scgi;\n  server { listen 80; root /srv/www; }\n}\n",
    )?;
    let big = pseudo_random(1 << 20, 0x5eed);
    let m1 = write(www.join("1m.bin"), &big)?;
    let k1 = write(www.join("1k.txt"), &page_1k())?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let list = vec![
        Server {
            name: "redis",
            // aarch64 redis refuses to start when its fork-based check for
            // the ARM64 copy-on-write bug cannot run (no fork here).
            argv: s(&[
                "/usr/bin/redis-server",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--ignore-warnings",
                "ARM64-COW-BUG",
            ]),
            port: 6379,
            adds: vec![],
        },
        Server {
            name: "memcached",
            argv: s(&[
                "/usr/bin/memcached",
                "-u",
                "root",
                "-p",
                "11211",
                "-U",
                "0",
                "-t",
                "2",
                "-m",
                "64",
            ]),
            port: 11211,
            adds: vec![],
        },
        Server {
            name: "nginx",
            argv: s(&[
                "/usr/sbin/nginx",
                "-c",
                "/etc/skiff/nginx.conf",
                "-p",
                "/tmp",
                "-e",
                "stderr",
            ]),
            port: 80,
            adds: vec![
                format!("{conf}:/etc/skiff/nginx.conf"),
                format!("{m1}:/srv/www/1m.bin"),
                format!("{k1}:/srv/www/1k.txt"),
            ],
        },
    ];
    Ok((list, big))
}

/// `n` deterministic bytes (xorshift64 from `seed`).
fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// 1 KiB of text, 64 lines of 16 bytes.
fn page_1k() -> Vec<u8> {
    (0..64)
        .flat_map(|i: u32| format!("skiff line {i:04}\n").into_bytes())
        .collect()
}

/// Runs the cases on `boards` (one per arch).
pub fn run(root: &Path, boards: &[&Board], args: &TestArgs) -> Vec<Verdict> {
    let mut out = Vec::new();
    let work = matrix::target_dir(root).join("nettest-servers");
    let (list, big) = match servers(&work) {
        Ok(x) => x,
        Err(e) => {
            println!("FAIL net servers: {e}");
            return vec![Verdict::Fail(vec![e])];
        }
    };
    for board in boards {
        let arch = board.arch;
        // `--filter S`: the cases whose `ARCH/NAME` contains S.
        let wanted = |name: &str| {
            args.filter
                .as_deref()
                .is_none_or(|f| format!("{arch}/{name}").contains(f))
        };
        let list: Vec<&Server> = list
            .iter()
            .filter(|s| wanted(s.name) || wanted(&format!("{}-disk", s.name)))
            .collect();
        let debian = root.join("build/debian").join(arch.name()).join("root");
        let missing: Vec<&Server> = list
            .iter()
            .copied()
            .filter(|s| !debian.join(s.argv[0].trim_start_matches('/')).exists())
            .collect();
        for s in &missing {
            report(
                arch,
                s.name,
                Verdict::Skip(format!(
                    "{} is absent: run ci/fetch-debian-progs.sh {arch}",
                    debian.join(s.argv[0].trim_start_matches('/')).display()
                )),
                &mut out,
            );
        }
        if missing.len() == list.len() {
            continue;
        }
        eprintln!("skiff: test: net: building the kernel for {arch}");
        let boot = match prepare(root, board, args) {
            Ok(b) => b,
            Err(e) => {
                for s in list
                    .iter()
                    .filter(|s| !missing.iter().any(|m| m.name == s.name))
                {
                    report(arch, s.name, Verdict::Fail(vec![e.clone()]), &mut out);
                }
                continue;
            }
        };
        for s in list.iter().copied() {
            if missing.iter().any(|m| m.name == s.name) || !wanted(s.name) {
                continue;
            }
            let v = run_server(&boot, &debian, &work, s, &big, false);
            report(arch, s.name, v, &mut out);
        }
        // Each server again from an image file system on a virtio disk.
        for s in list.iter().copied() {
            let name = format!("{}-disk", s.name);
            if missing.iter().any(|m| m.name == s.name) || !wanted(&name) {
                continue;
            }
            let v = run_server(&boot, &debian, &work, s, &big, true);
            report(arch, &name, v, &mut out);
        }
    }
    out
}

fn report(arch: Arch, name: &str, v: Verdict, out: &mut Vec<Verdict>) {
    match &v {
        Verdict::Pass => println!("PASS net {arch}/{name}"),
        Verdict::Skip(why) => println!("SKIP net {arch}/{name}: {why}"),
        Verdict::Fail(why) => {
            println!("FAIL net {arch}/{name}");
            for l in why {
                println!("    {l}");
            }
        }
    }
    out.push(v);
}

/// What every boot of one board shares.
struct Boot<'a> {
    root: PathBuf,
    board: &'a Board,
    qemu_bin: PathBuf,
    kernel: PathBuf,
    accel: accel::Accel,
}

fn prepare<'a>(root: &Path, board: &'a Board, args: &TestArgs) -> Result<Boot<'a>, String> {
    let qemu_bin = qemu::require_qemu(board).map_err(|e| e.to_string())?;
    let decision =
        accel::decide(args.accel, HostFacts::probe(), board).map_err(|e| e.to_string())?;
    let kernel = kernel::build(root, board.arch, args.release, true)
        .map_err(|e| format!("kernel build failed: {e}"))?;
    Ok(Boot {
        root: root.to_path_buf(),
        board,
        qemu_bin,
        kernel: kernel.boot_file(board).to_path_buf(),
        accel: decision.accel,
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released for QEMU).
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind a port on 127.0.0.1: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Boots `s` (from an initramfs, or from a disk image with `disk`), waits
/// for it to answer, runs its checks and stops the guest.
fn run_server(
    boot: &Boot,
    debian: &Path,
    work: &Path,
    s: &Server,
    big: &[u8],
    disk: bool,
) -> Verdict {
    let arch = boot.board.arch;
    let label = format!("{arch}/{}{}", s.name, if disk { "-disk" } else { "" });
    let req = app::Request {
        arch,
        sysroot: debian.to_path_buf(),
        argv: &s.argv,
        env: &[],
        adds: &s.adds,
        strace: false,
    };
    let packed = match app::pack(&req) {
        Ok(p) => p,
        Err(e) => return Verdict::Fail(vec![format!("cannot pack {}: {e}", s.argv[0])]),
    };
    let words = match packed.launch.cmdline_words() {
        Ok(w) => w,
        Err(e) => return Verdict::Fail(vec![e.to_string()]),
    };
    let (host_port, monitor) = match (free_port(), free_port()) {
        (Ok(a), Ok(b)) if a != b => (a, b),
        (Err(e), _) | (_, Err(e)) => return Verdict::Fail(vec![e]),
        _ => return Verdict::Fail(vec!["no two free ports on 127.0.0.1".into()]),
    };
    let spec = RunSpec {
        board: boot.board,
        accel: boot.accel,
        smp: 1,
        mem_mib: boot.board.memory_mib.max(512),
        kernel: boot.kernel.clone(),
        cmdline: qemu::app_cmdline(boot.board, &words),
        xen: None,
        icount: false,
    };
    let mut argv = qemu::qemu_args(&spec);
    let fwd = Forward {
        proto: Proto::Tcp,
        host: host_port,
        guest: s.port,
    };
    if let Err(e) = netopts::apply(
        boot.board,
        &NetArg::User { restrict: true },
        &[fwd],
        &mut argv,
    ) {
        return Verdict::Fail(vec![format!("--net user,restrict -p: {e}")]);
    }
    let initrd = work.join(format!("{}-{}.cpio", arch.name(), s.name));
    if let Err(e) = std::fs::write(&initrd, &packed.initrd) {
        return Verdict::Fail(vec![format!("{}: {e}", initrd.display())]);
    }
    let image = if disk {
        match crate::disk::attach(&boot.root, boot.board, &packed, &initrd, &mut argv) {
            Ok(p) => Some(p),
            Err(e) => return Verdict::Skip(format!("--disk is not available: {e}")),
        }
    } else {
        qemu::add_initrd(&mut argv, &initrd);
        None
    };
    argv.extend([
        "-chardev".into(),
        format!("socket,id=srvmon,host=127.0.0.1,port={monitor},server=on,wait=off"),
        "-mon".into(),
        "chardev=srvmon,mode=readline".into(),
    ]);
    eprintln!(
        "skiff: test: net {label}: 127.0.0.1:{host_port} -> guest port {}; {} {}",
        s.port,
        boot.qemu_bin.display(),
        matrix::shell_words(&argv)
    );
    let mut guest = Guest::start(&boot.qemu_bin, argv, boot.board, monitor);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, host_port));
    let mut why = Vec::new();
    match guest.wait_ready(addr, s.name) {
        Ok(t) => {
            println!(
                "    net {label}: answered within {:.1} s of QEMU's start (probes every 0.5 s, 2 s read timeout)",
                t.as_secs_f64()
            );
            let checked = match s.name {
                "redis" => check_redis(addr, host_port),
                "memcached" => check_memcached(addr),
                "nginx" => check_nginx(addr, big),
                other => Err(format!("no checks for {other}")),
            };
            match checked {
                Ok(figures) => {
                    for f in figures {
                        println!("    net {label}: {f}");
                    }
                }
                Err(e) => why.push(e),
            }
        }
        Err(e) => why.push(e),
    }
    let (log, stopped) = guest.stop();
    if !stopped {
        why.push(
            "QEMU did not leave after the monitor's `quit`; it was killed at the boot deadline"
                .into(),
        );
    }
    let _ = std::fs::remove_file(&initrd);
    if let Some(p) = image {
        let _ = std::fs::remove_file(p);
    }
    if why.is_empty() {
        Verdict::Pass
    } else {
        why.push("last guest console lines:".into());
        let tail = log.len().saturating_sub(15);
        why.extend(log[tail..].iter().map(|l| format!("  | {l}")));
        Verdict::Fail(why)
    }
}

/// A booted guest: QEMU runs on a thread, its console lines arrive on
/// `lines`; `monitor` is its human monitor's port on 127.0.0.1.
struct Guest {
    thread: std::thread::JoinHandle<qemu::Outcome>,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    monitor: u16,
}

impl Guest {
    fn start(qemu_bin: &Path, argv: Vec<String>, board: &Board, monitor: u16) -> Guest {
        let (tx, lines) = mpsc::channel();
        let qemu_bin = qemu_bin.to_path_buf();
        let device = board.exit_device;
        let after = AfterStatus::for_board(board);
        let thread = std::thread::spawn(move || {
            qemu::run(&qemu_bin, &argv, device, BOOT_TIMEOUT, after, &mut |l| {
                let _ = tx.send(l.to_string());
            })
        });
        Guest {
            thread,
            lines,
            log: Vec::new(),
            monitor,
        }
    }

    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
    }

    /// Waits until `addr` answers the server's probe (QEMU's forward
    /// accepts connections before the guest listens, so a connect alone
    /// proves nothing).
    fn wait_ready(&mut self, addr: SocketAddr, name: &str) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            self.drain();
            if self.thread.is_finished() {
                return Err("the guest stopped before the server answered".into());
            }
            let last = match probe(addr, name) {
                Ok(()) => return Ok(start.elapsed()),
                Err(e) => e,
            };
            if start.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "no answer on 127.0.0.1:{} after {} s (last probe: {last})",
                    addr.port(),
                    READY_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops QEMU with the monitor's `quit`; returns the console log and
    /// whether QEMU left within 30 s.
    fn stop(mut self) -> (Vec<String>, bool) {
        if let Ok(mut m) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.monitor)) {
            let _ = m.write_all(b"quit\n");
        }
        let until = Instant::now() + Duration::from_secs(30);
        while !self.thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        let stopped = self.thread.is_finished();
        self.drain();
        match self.thread.join().ok() {
            Some(o) => (o.log, stopped),
            None => (self.log, stopped),
        }
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// One short request a ready server answers.
fn probe(addr: SocketAddr, name: &str) -> Result<(), String> {
    let s = connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let (req, want): (&[u8], &str) = match name {
        "redis" => (b"PING\r\n", "+PONG"),
        "memcached" => (b"version\r\n", "VERSION "),
        _ => (b"HEAD /1k.txt HTTP/1.0\r\n\r\n", "HTTP/1.1 200"),
    };
    w.write_all(req).map_err(|e| format!("write: {e}"))?;
    let line = read_line(&mut r)?;
    if line.starts_with(want) {
        Ok(())
    } else {
        Err(format!("answer {line:?}, expected {want:?}"))
    }
}

/// A line without its CR LF; an error at end of stream.
fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = r
        .read_until(b'\n', &mut buf)
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed".into());
    }
    while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn read_exact(r: &mut impl Read, n: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0; n];
    r.read_exact(&mut v)
        .map_err(|e| format!("read {n} bytes: {e}"))?;
    Ok(v)
}

/// A RESP array of bulk strings.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend(format!("${}\r\n", a.len()).bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A bulk-string reply (None for the nil `$-1`).
fn read_bulk(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, String> {
    let line = read_line(r)?;
    let len: i64 = line
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("expected a bulk string, got {line:?}"))?;
    if len < 0 {
        return Ok(None);
    }
    let mut v = read_exact(r, len as usize + 2)?;
    if !v.ends_with(b"\r\n") {
        return Err("bulk string not followed by CR LF".into());
    }
    v.truncate(len as usize);
    Ok(Some(v))
}

fn check_redis(addr: SocketAddr, port: u16) -> Result<Vec<String>, String> {
    let s = connect(addr)?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let values: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"skiff:small".to_vec(), b"hello from the host".to_vec()),
        (b"skiff:binary".to_vec(), (0..=255u8).collect()),
        (b"skiff:large".to_vec(), pseudo_random(200 * 1024, 7)),
    ];
    for (k, v) in &values {
        w.write_all(&resp(&[b"SET", k, v]))
            .map_err(|e| format!("write: {e}"))?;
        let line = read_line(&mut r)?;
        if line != "+OK" {
            return Err(format!("SET {}: {line:?}", String::from_utf8_lossy(k)));
        }
    }
    for (k, v) in &values {
        w.write_all(&resp(&[b"GET", k]))
            .map_err(|e| format!("write: {e}"))?;
        match read_bulk(&mut r)? {
            Some(got) if &got == v => {}
            Some(got) => {
                return Err(format!(
                    "GET {}: {} bytes differ from the {} stored",
                    String::from_utf8_lossy(k),
                    got.len(),
                    v.len()
                ))
            }
            None => return Err(format!("GET {}: nil", String::from_utf8_lossy(k))),
        }
    }
    w.write_all(&resp(&[b"GET", b"skiff:absent"]))
        .map_err(|e| format!("write: {e}"))?;
    if read_bulk(&mut r)?.is_some() {
        return Err("GET of a key never set returned a value".into());
    }
    w.write_all(&resp(&[b"INCRBY", b"skiff:counter", b"41"]))
        .map_err(|e| format!("write: {e}"))?;
    w.write_all(&resp(&[b"INCR", b"skiff:counter"]))
        .map_err(|e| format!("write: {e}"))?;
    let (a, b) = (read_line(&mut r)?, read_line(&mut r)?);
    if (a.as_str(), b.as_str()) != (":41", ":42") {
        return Err(format!("INCRBY 41, INCR: {a:?}, {b:?} (expected :41, :42)"));
    }
    let mut figures = vec![format!(
        "SET/GET of {} values (up to {} KiB) and INCR verified",
        values.len(),
        values.iter().map(|(_, v)| v.len()).max().unwrap_or(0) / 1024
    )];
    figures.extend(redis_benchmark(port)?);
    Ok(figures)
}

/// `redis-benchmark -q -n 20000 -t set,get` (its default 50 connections)
/// against the guest, when the host has it; its result lines. It goes
/// through a [`Relay`]: QEMU's forward cannot take 50 connects at once.
fn redis_benchmark(port: u16) -> Result<Vec<String>, String> {
    let Some(bin) = qemu::find_in_path("redis-benchmark") else {
        return Ok(vec![
            "redis-benchmark: not installed on the host (apt-get install redis-tools); skipped"
                .into(),
        ]);
    };
    let relay = Relay::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Probe {
            send: b"PING\r\n",
            expect: b"+PONG\r\n",
        },
    )?;
    let mut child = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &relay.addr().port().to_string()])
        .args([
            "-q",
            "-n",
            "20000",
            "-c",
            &BENCH_CLIENTS.to_string(),
            "-t",
            "set,get",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = out {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(mut e) = err {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if start.elapsed() > BENCH_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = reader.join().unwrap_or_default();
    // `-q` redraws progress with CRs; the results are the last pieces.
    let lines: Vec<String> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| l.contains("requests per second"))
        .map(|l| format!("redis-benchmark: {l}"))
        .collect();
    let opened = relay.opened();
    match status {
        Some(st) if st.success() && lines.len() == 2 && opened >= BENCH_CLIENTS => {
            let mut lines = lines;
            lines.push(format!(
                "redis-benchmark: {opened} connections reached the guest through the relay"
            ));
            Ok(lines)
        }
        Some(st) if st.success() => Err(format!(
            "redis-benchmark exited {st} with {opened} of {BENCH_CLIENTS} connections relayed; output {text:?}"
        )),
        Some(st) => Err(format!("redis-benchmark exited {st}; output {text:?}")),
        None => Err(format!(
            "redis-benchmark did not finish within {} s",
            BENCH_TIMEOUT.as_secs()
        )),
    }
}

fn memcached_value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.extend(
        pseudo_random(16 + i % 200, i as u64 + 1)
            .iter()
            .map(|b| b'a' + b % 26),
    );
    v
}

fn check_memcached(addr: SocketAddr) -> Result<Vec<String>, String> {
    let s = connect(addr)?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let start = Instant::now();
    for batch in (0..MEMCACHED_KEYS).collect::<Vec<_>>().chunks(BATCH) {
        let mut req = Vec::new();
        for &i in batch {
            let v = memcached_value(i);
            req.extend(format!("set skiff:{i} {} 0 {}\r\n", i % 65536, v.len()).bytes());
            req.extend(&v);
            req.extend(b"\r\n");
        }
        w.write_all(&req).map_err(|e| format!("write: {e}"))?;
        for &i in batch {
            let line = read_line(&mut r)?;
            if line != "STORED" {
                return Err(format!("set skiff:{i}: {line:?}"));
            }
        }
    }
    let set_time = start.elapsed();
    let start = Instant::now();
    for batch in (0..MEMCACHED_KEYS).collect::<Vec<_>>().chunks(BATCH) {
        let mut req = b"get".to_vec();
        for &i in batch {
            req.extend(format!(" skiff:{i}").bytes());
        }
        req.extend(b"\r\n");
        w.write_all(&req).map_err(|e| format!("write: {e}"))?;
        for &i in batch {
            let want = memcached_value(i);
            let line = read_line(&mut r)?;
            let head = format!("VALUE skiff:{i} {} {}", i % 65536, want.len());
            if line != head {
                return Err(format!("get skiff:{i}: {line:?}, expected {head:?}"));
            }
            let data = read_exact(&mut r, want.len() + 2)?;
            if data[..want.len()] != want[..] || &data[want.len()..] != b"\r\n" {
                return Err(format!("get skiff:{i}: the value differs from the one set"));
            }
        }
        let end = read_line(&mut r)?;
        if end != "END" {
            return Err(format!("get: {end:?} instead of END"));
        }
    }
    let get_time = start.elapsed();
    w.write_all(b"get skiff:absent\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let end = read_line(&mut r)?;
    if end != "END" {
        return Err(format!("get of a key never set: {end:?}"));
    }
    let rate = |d: Duration| MEMCACHED_KEYS as f64 / d.as_secs_f64().max(1e-6);
    Ok(vec![format!(
        "{MEMCACHED_KEYS} keys set ({:.0}/s) and read back verified ({:.0}/s), batches of {BATCH}",
        rate(set_time),
        rate(get_time)
    )])
}

/// GET `path` over HTTP/1.1 (`Connection: close`): status line and body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(String, Vec<u8>), String> {
    let s = connect(addr)?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    write!(
        w,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let status = read_line(&mut r)?;
    let mut len: Option<usize> = None;
    loop {
        let h = read_line(&mut r)?;
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok();
            }
        }
    }
    let len = len.ok_or_else(|| format!("GET {path}: no Content-Length ({status})"))?;
    let body = read_exact(&mut r, len)?;
    Ok((status, body))
}

fn check_nginx(addr: SocketAddr, big: &[u8]) -> Result<Vec<String>, String> {
    let start = Instant::now();
    let (status, body) = http_get(addr, "/1m.bin")?;
    let t = start.elapsed();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("GET /1m.bin: {status}"));
    }
    let (want, got) = (hex(&sha256(big)), hex(&sha256(&body)));
    if body.len() != big.len() || want != got {
        return Err(format!(
            "GET /1m.bin: {} bytes, SHA-256 {got}; expected {} bytes, {want}",
            body.len(),
            big.len()
        ));
    }
    let (status, small) = http_get(addr, "/1k.txt")?;
    if !status.starts_with("HTTP/1.1 200") || small != page_1k() {
        return Err(format!(
            "GET /1k.txt: {status}, {} bytes differing from the file",
            small.len()
        ));
    }
    let (status, _) = http_get(addr, "/absent")?;
    if !status.starts_with("HTTP/1.1 404") {
        return Err(format!("GET /absent: {status} instead of 404"));
    }
    Ok(vec![format!(
        "GET /1m.bin: SHA-256 {got} verified, {:.2} MiB/s; /1k.txt verified; /absent 404",
        1.0 / t.as_secs_f64().max(1e-6)
    )])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 (FIPS 180-4), for the body nginx serves.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend(((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_examples() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn resp_encodes_bulk_strings_and_reads_them_back() {
        let req = resp(&[b"SET", b"k", b"a\r\nb"]);
        assert_eq!(req, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
        let mut r = BufReader::new(&b"$4\r\na\r\nb\r\n$-1\r\n"[..]);
        assert_eq!(read_bulk(&mut r).unwrap().as_deref(), Some(&b"a\r\nb"[..]));
        assert_eq!(read_bulk(&mut r).unwrap(), None);
        assert!(read_bulk(&mut r).is_err());
    }

    #[test]
    fn files_are_deterministic_and_distinct() {
        assert_eq!(pseudo_random(64, 1), pseudo_random(64, 1));
        assert_ne!(pseudo_random(64, 1), pseudo_random(64, 2));
        assert_eq!(page_1k().len(), 1024);
        assert_ne!(memcached_value(1), memcached_value(2));
    }
}
