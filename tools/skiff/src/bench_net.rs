//! `cargo skiff bench net`: network servers on Skiff and on a Linux guest
//! (Debian's unmodified kernel, [`linux_guest`]) under the same QEMU
//! machine, driven with the same load from the host through port forwards
//! on 127.0.0.1 ([`load`]), side by side with the ratio Skiff/Linux.
//!
//! Servers: Debian's redis-server, memcached and nginx (unpacked into
//! `build/debian/<arch>/root` by `ci/fetch-debian-progs.sh`), and
//! `bench/netserve.c` (echo and byte sink) for the raw TCP rows. Each is
//! packed with its interpreter and libraries the way `skiff run` packs a
//! program ([`app::pack`]): on Skiff one boot per server, the server as the
//! app; on Linux one boot for all of them, the same packed archives
//! concatenated under `bench/netinit.c` as `/init`, which loads the
//! virtio-net modules, configures eth0 and starts the servers.
//!
//! Two passes: plain (TCG here), for requests/s and latency; then under
//! `-icount shift=0` with the `bench/insncount.c` TCG plugin, which counts
//! the guest instructions a row's requests cost (all vCPUs, idle-loop
//! ticks included; the idle rate is printed beside them).
//! `SKIFF_BENCH_PROFILE=ROW` profiles one row on Skiff instead
//! ([`profile`]: instructions per kernel function).

pub mod load;
pub mod profile;

use crate::accel::{self, Accel, HostFacts};
use crate::app;
use crate::boards::{self, Arch, Board, BootProtocol};
use crate::cli::BenchArgs;
use crate::cpio;
use crate::error::{Error, Result};
use crate::kernel;
use crate::linux_guest::{self, LinuxKernel};
use crate::qemu::{self, AfterStatus, RunSpec};
use load::{Plan, Workload};
use profile::Profile;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The guest's static address on QEMU's user network (both guests).
pub const GUEST_ADDR: &str = "10.0.2.15";
/// QEMU's user-network gateway.
pub const GATEWAY: &str = "10.0.2.2";
/// The Linux guest's control port (`bench/netinit.c`).
const CONTROL_PORT: u16 = 7999;
/// The x86_64 board when none is given (see [`run`]).
pub const DEFAULT_X86_BOARD: &str = "qemu-x86_64";
/// How long a guest may take from QEMU's start until its servers answer.
const READY_TIMEOUT: Duration = Duration::from_secs(420);
/// How long one boot may take in all.
const BOOT_TIMEOUT: Duration = Duration::from_secs(1500);

/// How a row is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    Requests(Workload),
    /// MiB sent to the sink, per connection.
    Bulk,
}

/// One table row: a name and how it is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: &'static str,
    pub measure: Measure,
}

/// A server and the rows measured on it.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: &'static str,
    /// The program: a path in the Debian root, or a host path (netserve).
    pub argv: Vec<String>,
    /// Guest ports it listens on, in the order its rows use them.
    pub ports: Vec<u16>,
    /// Files it needs, `HOST:GUEST` (config, web root).
    pub adds: Vec<String>,
    /// (row, index into `ports`).
    pub rows: Vec<(Row, usize)>,
}

/// Load sizes, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub conns: usize,
    pub requests: usize,
    pub bulk_mib: usize,
    pub limit: Duration,
}

impl Sizes {
    pub fn from_args(a: &BenchArgs) -> Sizes {
        Sizes {
            conns: a.conns.unwrap_or(4) as usize,
            requests: a.requests.unwrap_or(2000) as usize,
            bulk_mib: a.bulk_mib.unwrap_or(8) as usize,
            limit: Duration::from_secs(90),
        }
    }

    /// The icount pass needs counts, not steady rates: a quarter.
    fn for_icount(self) -> Sizes {
        Sizes {
            requests: (self.requests / 4).max(100),
            bulk_mib: (self.bulk_mib / 4).max(1),
            ..self
        }
    }

    /// Requests for a row (the 1 MiB page gets one per 64 of the others).
    fn requests_for(&self, w: &Workload) -> usize {
        match w {
            Workload::Http { len, .. } if *len >= 1 << 20 => (self.requests / 64).max(self.conns),
            _ => self.requests,
        }
    }
}

/// The figures of one row on one guest in one pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Requests {
        per_sec: f64,
        p50: Duration,
        p99: Duration,
        requests: usize,
        /// Guest instructions in the row's run (icount pass).
        instructions: Option<u64>,
        /// Of those, what the guest's idle rate accounts for over the
        /// row's wall time (timer ticks, housekeeping).
        background: Option<u64>,
    },
    Bulk {
        mib_per_sec: f64,
        bytes: u64,
        instructions: Option<u64>,
        background: Option<u64>,
    },
    /// Not measured, and why.
    Failed(String),
}

/// Everything one guest produced in one pass: per row, and notes.
#[derive(Debug, Clone, Default)]
pub struct Column {
    pub cells: Vec<(&'static str, Cell)>,
    /// Instructions per second while idle, per boot (icount pass).
    pub idle: Vec<(String, u64)>,
    pub notes: Vec<String>,
}

impl Column {
    fn cell(&self, row: &str) -> Option<&Cell> {
        self.cells.iter().find(|(n, _)| *n == row).map(|(_, c)| c)
    }

    fn fail_all(&mut self, servers: &[&Server], why: &str) {
        for s in servers {
            for (r, _) in &s.rows {
                self.cells.push((r.name, Cell::Failed(why.to_string())));
            }
        }
    }
}

/// The servers and rows, with their files under `work`.
pub fn servers(root: &Path, arch: Arch, netserve: &Path, work: &Path) -> Result<Vec<Server>> {
    let conf = work.join("conf");
    std::fs::create_dir_all(conf.join("www")).map_err(Error::io(&conf))?;
    let write = |name: &str, data: &[u8]| -> Result<String> {
        let p = conf.join(name);
        std::fs::write(&p, data).map_err(Error::io(&p))?;
        Ok(p.display().to_string())
    };
    let redis_conf = write(
        "redis.conf",
        // ignore-warnings: on arm64 redis forks at start to test the
        // kernel for a copy-on-write bug (Linux < 5.x), and exits if the
        // test cannot run; Skiff has no fork yet.
        b"port 6379\nbind 0.0.0.0\nprotected-mode no\nsave \"\"\nappendonly no\ndaemonize no\nlogfile \"\"\ndir /tmp\nignore-warnings ARM64-COW-BUG\n",
    )?;
    let nginx_conf = write(
        "nginx.conf",
        b"daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr notice;\npid /tmp/nginx.pid;\n\
events { worker_connections 64; }\n\
http {\n  access_log off;\n  default_type application/octet-stream;\n  keepalive_requests 1000000;\n  keepalive_timeout 600;\n\
  client_body_temp_path /tmp/nginx-body;\n  proxy_temp_path /tmp/nginx-proxy;\n  fastcgi_temp_path /tmp/nginx-fastcgi;\n\
  uwsgi_temp_path /tmp/nginx-uwsgi;\n  scgi_temp_path /tmp/nginx-scgi;\n\
  server { listen 8080; root /srv/www; }\n}\n",
    )?;
    let page = |n: usize| -> Vec<u8> { (0..n).map(|i| b'a' + (i % 26) as u8).collect() };
    let k1 = write("www/1k", &page(1024))?;
    let m1 = write("www/1m", &page(1 << 20))?;
    let debian = root.join("build/debian").join(arch.name()).join("root");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let rq = |name, w| {
        (
            Row {
                name,
                measure: Measure::Requests(w),
            },
            0,
        )
    };
    let _ = debian;
    Ok(vec![
        Server {
            name: "redis",
            argv: s(&["/usr/bin/redis-server", "/etc/skiff-bench/redis.conf"]),
            ports: vec![6379],
            adds: vec![format!("{redis_conf}:/etc/skiff-bench/redis.conf")],
            rows: vec![
                rq("redis_set", Workload::RedisSet),
                rq("redis_get", Workload::RedisGet),
            ],
        },
        Server {
            name: "memcached",
            argv: s(&[
                "/usr/bin/memcached",
                "-u",
                "root",
                "-l",
                "0.0.0.0",
                "-p",
                "11211",
                "-U",
                "0",
                "-t",
                "1",
                "-c",
                "64",
            ]),
            ports: vec![11211],
            adds: vec![],
            rows: vec![
                rq("memcached_set", Workload::MemcachedSet),
                rq("memcached_get", Workload::MemcachedGet),
            ],
        },
        Server {
            name: "nginx",
            argv: s(&[
                "/usr/sbin/nginx",
                "-c",
                "/etc/skiff-bench/nginx.conf",
                "-p",
                "/tmp",
                "-e",
                "stderr",
            ]),
            ports: vec![8080],
            adds: vec![
                format!("{nginx_conf}:/etc/skiff-bench/nginx.conf"),
                format!("{k1}:/srv/www/1k"),
                format!("{m1}:/srv/www/1m"),
            ],
            rows: vec![
                rq(
                    "nginx_1k",
                    Workload::Http {
                        path: "/1k".into(),
                        len: 1024,
                    },
                ),
                rq(
                    "nginx_1m",
                    Workload::Http {
                        path: "/1m".into(),
                        len: 1 << 20,
                    },
                ),
            ],
        },
        Server {
            name: "netserve",
            argv: vec![netserve.display().to_string(), "7".into(), "9".into()],
            ports: vec![7, 9],
            adds: vec![],
            rows: vec![
                rq("tcp_rr", Workload::EchoRoundTrip),
                (
                    Row {
                        name: "tcp_bulk",
                        measure: Measure::Bulk,
                    },
                    1,
                ),
            ],
        },
    ])
}

/// A free TCP port on 127.0.0.1 (bound, then released for QEMU).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::Usage(format!("cannot bind a port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Usage(e.to_string()))
}

/// Adds `hostfwd=tcp:127.0.0.1:HOST-:GUEST` for each pair to the board's
/// `-netdev user,...` argument (the board restricts it: nothing leaves
/// QEMU but these forwards).
pub fn add_forwards(
    argv: &mut [String],
    forwards: &[(u16, u16)],
) -> std::result::Result<(), String> {
    let i = argv
        .windows(2)
        .position(|w| w[0] == "-netdev" && w[1].starts_with("user,"))
        .ok_or("the board has no `-netdev user,...` NIC")?;
    for (h, g) in forwards {
        write!(argv[i + 1], ",hostfwd=tcp:127.0.0.1:{h}-:{g}").expect("string write");
    }
    Ok(())
}

/// Adds a human monitor on 127.0.0.1:`port` (the host ends a guest that
/// does not power off by itself with `quit`).
fn add_monitor(argv: &mut Vec<String>, port: u16) {
    argv.extend([
        "-chardev".into(),
        format!("socket,id=benchmon,host=127.0.0.1,port={port},server=on,wait=off"),
        "-mon".into(),
        "chardev=benchmon,mode=readline".into(),
    ]);
}

/// `-icount shift=0` with the clock following real time while idle
/// (`sleep=on`): with `sleep=off` the guest's timers would race ahead while
/// it waits for the host, and TCP's timers with them. The instruction
/// count comes from the plugin either way.
fn icount_sleep_on(argv: &mut [String]) {
    for a in argv.iter_mut() {
        if a == "shift=0,sleep=off" {
            *a = "shift=0".into();
        }
    }
}

fn add_plugin(argv: &mut Vec<String>, plugin: &Path, out: &Path) {
    argv.extend([
        "-plugin".into(),
        format!("{},out={}", plugin.display(), out.display()),
    ]);
}

fn read_count(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One booted guest being driven: QEMU runs on a thread, its console
/// lines arrive on `lines`.
struct Guest {
    label: String,
    thread: std::thread::JoinHandle<qemu::Outcome>,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    monitor: u16,
    counter: Option<PathBuf>,
}

impl Guest {
    fn start(qemu_bin: &Path, argv: Vec<String>, board: &Board, label: String) -> Guest {
        let (tx, lines) = mpsc::channel();
        let qemu_bin = qemu_bin.to_path_buf();
        let device = board.exit_device;
        let after = AfterStatus::for_board(board);
        let monitor = argv
            .iter()
            .find_map(|a| a.strip_prefix("socket,id=benchmon,host=127.0.0.1,port="))
            .and_then(|r| r.split(',').next()?.parse().ok())
            .unwrap_or(0);
        let counter = argv
            .iter()
            .find_map(|a| a.split_once(",out=").map(|(_, p)| PathBuf::from(p)));
        eprintln!(
            "skiff: bench net: {label}: {} {}",
            qemu_bin.display(),
            argv.join(" ")
        );
        let thread = std::thread::spawn(move || {
            qemu::run(&qemu_bin, &argv, device, BOOT_TIMEOUT, after, &mut |l| {
                let _ = tx.send(l.to_string());
            })
        });
        Guest {
            label,
            thread,
            lines,
            log: Vec::new(),
            monitor,
            counter,
        }
    }

    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            let t = l.trim();
            if t.starts_with("bench:") || t.contains("rror") || t.contains("panic") {
                eprintln!("  [{}] {t}", self.label);
            }
            self.log.push(l);
        }
    }

    fn last_line(&self) -> String {
        self.log
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until every probe gets a good reply; Err when QEMU ends or
    /// time runs out.
    fn wait_ready(
        &mut self,
        probes: &[(SocketAddr, Workload)],
    ) -> std::result::Result<Duration, String> {
        let start = Instant::now();
        let mut pending: Vec<&(SocketAddr, Workload)> = probes.iter().collect();
        loop {
            self.drain();
            if self.thread.is_finished() {
                return Err(format!(
                    "the guest stopped before its servers answered; last line: {}",
                    self.last_line()
                ));
            }
            pending.retain(|(a, w)| load::probe(*a, w).is_err());
            if pending.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "no answer on guest port(s) after {} s; last line: {}",
                    READY_TIMEOUT.as_secs(),
                    self.last_line()
                ));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn instructions(&self) -> Option<u64> {
        // The plugin rewrites its file every 10 ms.
        std::thread::sleep(Duration::from_millis(30));
        self.counter.as_deref().and_then(read_count)
    }

    /// Stops the guest: `control` first (Linux powers off by itself),
    /// then the monitor's `quit`.
    fn stop(self, control: Option<SocketAddr>) -> Vec<String> {
        let mut clean = false;
        if let Some(addr) = control {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.write_all(b"stop\n");
                let mut r = String::new();
                let _ = s.read_to_string(&mut r);
                let until = Instant::now() + Duration::from_secs(30);
                while !self.thread.is_finished() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100));
                }
                clean = self.thread.is_finished();
            }
        }
        if !clean {
            if let Ok(mut m) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.monitor)) {
                let _ = m.write_all(b"quit\n");
            }
        }
        let Guest { thread, log, .. } = self;
        match thread.join() {
            Ok(outcome) => outcome.log,
            Err(_) => log,
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Measures every row of `servers` on a booted guest.
fn measure(
    guest: &Guest,
    servers: &[&Server],
    addrs: &[Vec<SocketAddr>],
    sizes: Sizes,
    idle_rate: Option<u64>,
    prof: Option<(&Profile, &Path)>,
    col: &mut Column,
) {
    for (s, ports) in servers.iter().zip(addrs) {
        for (row, port) in &s.rows {
            let addr = ports[*port];
            let prof = prof.filter(|(p, _)| p.target == row.name);
            let prof_before =
                prof.map(|(_, base)| profile::snapshot(base, &snap_path(base, "before")));
            let before = guest.instructions();
            let t0 = Instant::now();
            let background = || idle_rate.map(|r| (r as f64 * t0.elapsed().as_secs_f64()) as u64);
            let cell = match &row.measure {
                Measure::Requests(w) => {
                    let plan = Plan {
                        conns: sizes.conns,
                        requests: sizes.requests_for(w),
                        limit: sizes.limit,
                    };
                    match load::run(addr, w, plan) {
                        Ok(st) => {
                            let instructions =
                                before.and_then(|b| Some(guest.instructions()?.saturating_sub(b)));
                            Cell::Requests {
                                per_sec: st.per_sec(),
                                p50: st.percentile(50.0).unwrap_or_default(),
                                p99: st.percentile(99.0).unwrap_or_default(),
                                requests: st.requests,
                                instructions,
                                background: background(),
                            }
                        }
                        Err(e) => Cell::Failed(format!("{}: {e}", row.name)),
                    }
                }
                Measure::Bulk => match load::bulk(addr, sizes.conns, sizes.bulk_mib) {
                    Ok((bytes, t)) => {
                        let instructions =
                            before.and_then(|b| Some(guest.instructions()?.saturating_sub(b)));
                        Cell::Bulk {
                            mib_per_sec: bytes as f64
                                / (1 << 20) as f64
                                / t.as_secs_f64().max(1e-9),
                            bytes,
                            instructions,
                            background: background(),
                        }
                    }
                    Err(e) => Cell::Failed(format!("{}: {e}", row.name)),
                },
            };
            eprintln!("  [{}] {}: {}", guest.label, row.name, short(&cell));
            if let (Some((p, base)), Some(before)) = (prof, prof_before) {
                let (units, unit) = match &cell {
                    Cell::Requests { requests, .. } => (*requests as u64, "request"),
                    Cell::Bulk { bytes, .. } => (bytes / 1024, "KiB"),
                    Cell::Failed(_) => (1, "run"),
                };
                let after = profile::snapshot(base, &snap_path(base, "after"));
                match (before, after) {
                    (Ok(b), Ok(a)) => {
                        let (funcs, total) = profile::by_function(&p.symbols, &b, &a);
                        let title = format!("{} {}", guest.label, row.name);
                        print!(
                            "{}",
                            profile::report(&title, &funcs, total, units, unit, p.top)
                        );
                    }
                    (Err(e), _) | (_, Err(e)) => col.notes.push(format!("profile: {e}")),
                }
            }
            col.cells.push((row.name, cell));
        }
    }
}

/// Where the profiling plugin writes the snapshot `what` of `base`.
fn snap_path(base: &Path, what: &str) -> PathBuf {
    PathBuf::from(format!("{}.{what}", base.display()))
}

fn short(c: &Cell) -> String {
    match c {
        Cell::Requests {
            per_sec,
            p50,
            p99,
            requests,
            instructions,
            ..
        } => format!(
            "{requests} requests, {per_sec:.0}/s, p50 {:.0} us, p99 {:.0} us{}",
            us(*p50),
            us(*p99),
            instructions.map_or(String::new(), |i| format!(
                ", {} instr/request",
                i / (*requests as u64).max(1)
            ))
        ),
        Cell::Bulk {
            mib_per_sec,
            instructions,
            bytes,
            ..
        } => format!(
            "{mib_per_sec:.1} MiB/s{}",
            instructions.map_or(String::new(), |i| format!(
                ", {} instr/KiB",
                i / (bytes / 1024).max(1)
            ))
        ),
        Cell::Failed(why) => format!("failed: {why}"),
    }
}

/// One boot of `servers` with `argv` (forwards, monitor, plugin still to
/// add): boots, waits, measures, stops.
#[allow(clippy::too_many_arguments)]
fn boot_and_measure(
    qemu_bin: &Path,
    board: &Board,
    mut argv: Vec<String>,
    servers: &[&Server],
    control: bool,
    plugin: Option<&Path>,
    sizes: Sizes,
    label: &str,
    work: &Path,
    prof: Option<&Profile>,
    col: &mut Column,
) {
    let mut forwards = Vec::new();
    let mut addrs = Vec::new();
    let mut probes = Vec::new();
    let ports = (|| -> Result<_> {
        for s in servers {
            let mut a = Vec::new();
            for &g in &s.ports {
                let h = free_port()?;
                forwards.push((h, g));
                a.push(SocketAddr::from((Ipv4Addr::LOCALHOST, h)));
            }
            addrs.push(a);
        }
        let ctl = if control {
            let h = free_port()?;
            forwards.push((h, CONTROL_PORT));
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, h)))
        } else {
            None
        };
        Ok((ctl, free_port()?))
    })();
    let (control_addr, monitor) = match ports {
        Ok(p) => p,
        Err(e) => return col.fail_all(servers, &e.to_string()),
    };
    if let Err(e) = add_forwards(&mut argv, &forwards) {
        return col.fail_all(servers, &e);
    }
    add_monitor(&mut argv, monitor);
    let counter = work.join(format!(
        "insns-{}-{}.txt",
        label.replace(' ', "-"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&counter);
    if let Some(p) = plugin {
        icount_sleep_on(&mut argv);
        add_plugin(&mut argv, p, &counter);
    }
    let prof_base = work.join(format!("tbprof-{}", std::process::id()));
    if let Some(p) = prof {
        add_plugin(&mut argv, &p.plugin, &prof_base);
    }
    for (s, a) in servers.iter().zip(&addrs) {
        // The first row's request (a GET after its SET) says it serves.
        let (row, port) = &s.rows[0];
        let w = match &row.measure {
            Measure::Requests(Workload::RedisGet) => Workload::RedisSet,
            Measure::Requests(Workload::MemcachedGet) => Workload::MemcachedSet,
            Measure::Requests(w) => w.clone(),
            Measure::Bulk => Workload::EchoRoundTrip,
        };
        probes.push((a[*port], w));
    }
    let mut guest = Guest::start(qemu_bin, argv, board, label.to_string());
    match guest.wait_ready(&probes) {
        Ok(t) => {
            col.notes.push(format!(
                "{label}: servers answered {:.1} s after QEMU started",
                t.as_secs_f64()
            ));
            let mut idle_rate = None;
            if plugin.is_some() {
                if let Some(a) = guest.instructions() {
                    let t = Instant::now();
                    std::thread::sleep(Duration::from_secs(3));
                    if let Some(b) = guest.instructions() {
                        let rate = (b.saturating_sub(a) as f64 / t.elapsed().as_secs_f64()) as u64;
                        col.idle.push((label.to_string(), rate));
                        idle_rate = Some(rate);
                    }
                }
            }
            match prof {
                Some(p) if p.idle_server().is_some() => profile_idle(p, &prof_base, label, col),
                _ => measure(
                    &guest,
                    servers,
                    &addrs,
                    sizes,
                    idle_rate,
                    prof.map(|p| (p, prof_base.as_path())),
                    col,
                ),
            }
        }
        Err(why) => col.fail_all(servers, &why),
    }
    let log = guest.stop(control_addr);
    let _ = std::fs::remove_file(&counter);
    for what in ["before", "after"] {
        let _ = std::fs::remove_file(snap_path(&prof_base, what));
    }
    // The console, for when a figure needs explaining.
    let file = work.join(format!("{}.log", label.replace(' ', "-")));
    if std::fs::write(&file, log.join("\n")).is_ok() {
        col.notes
            .push(format!("{label}: console in {}", file.display()));
    }
}

/// The profile of an idle server: 5 s left alone, per second.
fn profile_idle(p: &Profile, base: &Path, label: &str, col: &mut Column) {
    let before = profile::snapshot(base, &snap_path(base, "before"));
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let after = profile::snapshot(base, &snap_path(base, "after"));
    match (before, after) {
        (Ok(b), Ok(a)) => {
            let (funcs, total) = profile::by_function(&p.symbols, &b, &a);
            let secs = t.elapsed().as_secs().max(1);
            let title = format!("{label} idle {secs} s");
            print!(
                "{}",
                profile::report(&title, &funcs, total, secs, "second", p.top)
            );
        }
        (Err(e), _) | (_, Err(e)) => col.notes.push(format!("profile: {e}")),
    }
}

/// Skiff's side: the kernel and, per server, its packed initramfs.
struct SkiffSide {
    elf: PathBuf,
    boot_file: PathBuf,
    board: Board,
    /// Per server: (initrd, kernel command line) or why it cannot boot.
    apps: Vec<std::result::Result<(PathBuf, String), String>>,
}

fn request<'a>(arch: Arch, root: &Path, s: &'a Server) -> app::Request<'a> {
    let debian = root.join("build/debian").join(arch.name()).join("root");
    app::Request {
        arch,
        sysroot: debian,
        argv: &s.argv,
        env: &[],
        adds: &s.adds,
        strace: false,
    }
}

fn prepare_skiff(
    root: &Path,
    board: &Board,
    servers: &[Server],
    work: &Path,
) -> std::result::Result<SkiffSide, String> {
    let kernel = kernel::build(root, board.arch, true, true)
        .map_err(|e| format!("kernel build failed: {e}"))?;
    // The same static configuration the Linux guest's /init applies.
    let board = Board {
        cmdline: format!("{} ip={GUEST_ADDR}/24 gw={GATEWAY}", board.cmdline),
        ..board.clone()
    };
    let apps = servers
        .iter()
        .map(|s| {
            let packed = app::pack(&request(board.arch, root, s))
                .map_err(|e| format!("cannot pack {}: {e}", s.argv[0]))?;
            let words = packed.launch.cmdline_words().map_err(|e| e.to_string())?;
            let initrd = work.join(format!("skiff-{}.cpio", s.name));
            std::fs::write(&initrd, &packed.initrd)
                .map_err(|e| format!("{}: {e}", initrd.display()))?;
            Ok((initrd, qemu::app_cmdline(&board, &words)))
        })
        .collect();
    Ok(SkiffSide {
        elf: kernel.elf.clone(),
        boot_file: kernel.boot_file(&board).to_path_buf(),
        board,
        apps,
    })
}

/// The Linux guest's initramfs: every server packed as for Skiff (the
/// archives concatenated: Linux unpacks one after the other), then
/// `/init` (bench/netinit.c), the modules and the server list. Servers
/// that cannot be packed are left out and returned with the reason.
fn linux_initramfs(
    root: &Path,
    arch: Arch,
    kernel: &LinuxKernel,
    servers: &[Server],
    work: &Path,
) -> std::result::Result<(PathBuf, Vec<(usize, String)>), String> {
    let init = linux_guest::build_program(root, arch, "netinit")
        .map_err(|e| format!("cannot build bench/netinit.c: {e}"))?;
    let init = std::fs::read(&init).map_err(|e| format!("{}: {e}", init.display()))?;
    let modules = linux_guest::net_modules(root, arch, kernel)
        .map_err(|e| format!("no virtio-net modules: {e}"))?;
    let mut image = Vec::new();
    let mut list = String::new();
    let mut missing = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        match app::pack(&request(arch, root, s)) {
            Ok(p) => {
                image.extend_from_slice(&p.initrd);
                list.push_str(&p.launch.path);
                for a in &p.launch.args {
                    list.push(' ');
                    list.push_str(a);
                }
                list.push('\n');
            }
            Err(e) => missing.push((i, format!("cannot pack {}: {e}", s.argv[0]))),
        }
    }
    // Only new directories: Linux replaces an existing path of another
    // type (Debian's /lib -> usr/lib link) with a directory entry's.
    let mut a = cpio::Archive::new();
    for d in [
        "/dev",
        "/sys",
        "/proc",
        "/tmp",
        "/skiff-bench",
        "/skiff-bench/modules",
    ] {
        a.dir(d, 0o755);
    }
    for (name, bytes) in &modules {
        a.file(&format!("/skiff-bench/modules/{name}"), 0o644, bytes);
    }
    a.file("/skiff-bench/servers", 0o644, list.as_bytes());
    a.file("/init", 0o755, &init);
    image.extend_from_slice(&a.finish());
    let path = work.join("linux-net.cpio");
    std::fs::write(&path, &image).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, missing))
}

/// The ratio Skiff/Linux of two figures, to two decimals.
pub fn ratio(skiff: Option<f64>, linux: Option<f64>) -> String {
    match (skiff, linux) {
        (Some(s), Some(l)) if l > 0.0 => format!("{:.2}", s / l),
        _ => "-".into(),
    }
}

/// A table's figure kinds for a row: (suffix, value of a cell).
type Metric = (&'static str, fn(&Cell) -> Option<f64>);

fn plain_metrics(bulk: bool) -> Vec<Metric> {
    if bulk {
        return vec![("MiB/s", |c| match c {
            Cell::Bulk { mib_per_sec, .. } => Some(*mib_per_sec),
            _ => None,
        })];
    }
    vec![
        ("req/s", |c| match c {
            Cell::Requests { per_sec, .. } => Some(*per_sec),
            _ => None,
        }),
        ("p50_us", |c| match c {
            Cell::Requests { p50, .. } => Some(us(*p50)),
            _ => None,
        }),
        ("p99_us", |c| match c {
            Cell::Requests { p99, .. } => Some(us(*p99)),
            _ => None,
        }),
    ]
}

/// Instructions per unit, raw or less the idle background.
fn per_unit(
    instructions: Option<u64>,
    background: Option<u64>,
    units: f64,
    net: bool,
) -> Option<f64> {
    let i = instructions? as f64;
    let i = if net {
        (i - background? as f64).max(0.0)
    } else {
        i
    };
    Some(i / units.max(1.0))
}

fn icount_metrics(bulk: bool) -> Vec<Metric> {
    if bulk {
        return vec![
            ("instr/KiB", |c| match c {
                Cell::Bulk {
                    bytes,
                    instructions,
                    background,
                    ..
                } => per_unit(*instructions, *background, *bytes as f64 / 1024.0, false),
                _ => None,
            }),
            ("instr/KiB-idle", |c| match c {
                Cell::Bulk {
                    bytes,
                    instructions,
                    background,
                    ..
                } => per_unit(*instructions, *background, *bytes as f64 / 1024.0, true),
                _ => None,
            }),
        ];
    }
    vec![
        ("instr/req", |c| match c {
            Cell::Requests {
                requests,
                instructions,
                background,
                ..
            } => per_unit(*instructions, *background, *requests as f64, false),
            _ => None,
        }),
        ("instr/req-idle", |c| match c {
            Cell::Requests {
                requests,
                instructions,
                background,
                ..
            } => per_unit(*instructions, *background, *requests as f64, true),
            _ => None,
        }),
    ]
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The table: one line per row and metric, Skiff, Linux, Skiff/Linux. A
/// cell that was not measured shows `n/a[K]`, K numbering the reasons
/// printed under the table.
pub fn table(rows: &[Row], skiff: &Column, linux: &Column, icount: bool) -> String {
    let mut reasons: Vec<String> = Vec::new();
    let mut lines: Vec<[String; 4]> = Vec::new();
    let mut cell_text = |col: &Column, who: &str, row: &str, v: Option<f64>| -> String {
        match (v, col.cell(row)) {
            (Some(v), _) => fmt_value(v),
            (None, Some(Cell::Failed(why))) => {
                let r = format!("{who}: {why}");
                let k = reasons.iter().position(|x| *x == r).unwrap_or_else(|| {
                    reasons.push(r);
                    reasons.len() - 1
                });
                format!("n/a[{}]", k + 1)
            }
            _ => "-".into(),
        }
    };
    for row in rows {
        let bulk = row.measure == Measure::Bulk;
        let metrics = if icount {
            icount_metrics(bulk)
        } else {
            plain_metrics(bulk)
        };
        for (suffix, f) in metrics {
            let s = skiff.cell(row.name).and_then(f);
            let l = linux.cell(row.name).and_then(f);
            lines.push([
                format!("{} {suffix}", row.name),
                cell_text(skiff, "Skiff", row.name, s),
                cell_text(linux, "Linux", row.name, l),
                ratio(s, l),
            ]);
        }
    }
    let header = ["row", "Skiff", "Linux", "Skiff/Linux"].map(String::from);
    let mut out = crate::bench::columns4(&header, &lines);
    for (k, r) in reasons.iter().enumerate() {
        let _ = writeln!(out, "  [{}] {r}", k + 1);
    }
    out
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<u8> {
    let all = boards::load_dir(&root.join("boards"))?;
    let mut board = boards::select(&all, args.board.as_deref(), args.arch)?;
    if args.board.is_none() && board.arch == Arch::X86_64 {
        // Debian's x86 kernel finds virtio-mmio devices through ACPI only
        // (no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES): on microvm without ACPI
        // it has no NIC. Both guests get the q35 PC with virtio-net-pci.
        board = boards::select(&all, Some(DEFAULT_X86_BOARD), None)?;
    }
    if board.boot == BootProtocol::XenDom0less {
        return Err(Error::Usage(format!(
            "bench net: board {} boots under Xen; pick a board that boots the kernel directly",
            board.name
        )));
    }
    let decision = accel::decide(args.accel, HostFacts::probe(), board)?;
    let qemu_bin = qemu::require_qemu(board)?;
    let arch = board.arch;
    let work = root.join("build/bench").join(arch.name()).join("net");
    std::fs::create_dir_all(&work).map_err(Error::io(&work))?;
    let sizes = Sizes::from_args(args);

    let netserve = linux_guest::build_program(root, arch, "netserve")?;
    let mut servers = servers(root, arch, &netserve, &work)?;
    let wanted = Profile::requested();
    if let Some((target, _)) = &wanted {
        // Profiling: only the server of that row (or the idle one).
        let all: Vec<String> = servers
            .iter()
            .flat_map(|s| s.rows.iter().map(|(r, _)| r.name.to_string()))
            .collect();
        servers.retain(|s| match target.strip_prefix("idle:") {
            Some(name) => s.name == name,
            None => s.rows.iter().any(|(r, _)| r.name == target),
        });
        if servers.is_empty() {
            return Err(Error::Usage(format!(
                "SKIFF_BENCH_PROFILE={target}: not a row ({}) nor idle:SERVER (redis, memcached, nginx, netserve)",
                all.join(", ")
            )));
        }
    }
    let rows: Vec<Row> = servers
        .iter()
        .flat_map(|s| s.rows.iter().map(|(r, _)| r.clone()))
        .collect();
    let plugin = linux_guest::build_host_plugin(root, "insncount")
        .map_err(|e| format!("cannot build the instruction-counting plugin: {e}"));
    let skiff = prepare_skiff(root, board, &servers, &work);
    let prof = match (&wanted, &skiff) {
        (Some((target, top)), Ok(side)) => Some(Profile {
            target: target.clone(),
            plugin: linux_guest::build_host_plugin(root, "tbprof")?,
            symbols: crate::symbols::Symbols::load(&side.elf, root)?,
            top: *top,
        }),
        _ => None,
    };
    let linux = if wanted.is_some() {
        Err("not run when profiling (SKIFF_BENCH_PROFILE)".to_string())
    } else {
        linux_guest::kernel(root, arch)
            .map_err(|e| format!("no Debian kernel: {e}"))
            .and_then(|k| {
                let (initrd, missing) = linux_initramfs(root, arch, &k, &servers, &work)?;
                Ok((k, initrd, missing))
            })
    };
    eprintln!(
        "skiff: bench net: board={} smp={} accel={} conns={} requests={} bulk={} MiB",
        board.name,
        args.smp,
        decision.accel.name(),
        sizes.conns,
        sizes.requests,
        sizes.bulk_mib
    );

    let mut status = 0;
    let passes: &[bool] = if wanted.is_some() {
        &[true]
    } else {
        &[false, true]
    };
    for &icount in passes {
        let accel = if icount { Accel::Tcg } else { decision.accel };
        let sizes = if icount { sizes.for_icount() } else { sizes };
        let plugin_path = match (&plugin, icount) {
            (Ok(p), true) => Some(p.as_path()),
            _ => None,
        };
        let mode = if icount {
            "icount shift=0".to_string()
        } else {
            accel.name().to_string()
        };
        let mut skiff_col = Column::default();
        let mut linux_col = Column::default();
        if let (true, Err(why)) = (icount, &plugin) {
            skiff_col.fail_all(&servers.iter().collect::<Vec<_>>(), why);
            linux_col.fail_all(&servers.iter().collect::<Vec<_>>(), why);
        } else {
            match &skiff {
                Ok(side) => {
                    for (s, app) in servers.iter().zip(&side.apps) {
                        match app {
                            Ok((initrd, cmdline)) => {
                                let spec = RunSpec {
                                    board: &side.board,
                                    accel,
                                    smp: args.smp,
                                    mem_mib: side.board.memory_mib,
                                    kernel: side.boot_file.clone(),
                                    cmdline: cmdline.clone(),
                                    xen: None,
                                    icount,
                                };
                                let mut argv = qemu::qemu_args(&spec);
                                qemu::add_initrd(&mut argv, initrd);
                                boot_and_measure(
                                    &qemu_bin,
                                    &side.board,
                                    argv,
                                    &[s],
                                    false,
                                    plugin_path,
                                    sizes,
                                    &format!("skiff {} {mode}", s.name),
                                    &work,
                                    prof.as_ref(),
                                    &mut skiff_col,
                                );
                            }
                            Err(why) => skiff_col.fail_all(&[s], why),
                        }
                    }
                }
                Err(why) => skiff_col.fail_all(&servers.iter().collect::<Vec<_>>(), why),
            }
            match &linux {
                Ok((kernel, initrd, missing)) => {
                    let present: Vec<&Server> = servers
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !missing.iter().any(|(m, _)| m == i))
                        .map(|(_, s)| s)
                        .collect();
                    for (i, why) in missing {
                        linux_col.fail_all(&[&servers[*i]], why);
                    }
                    let spec = linux_guest::Spec {
                        board,
                        accel,
                        smp: args.smp,
                        icount,
                        kernel,
                        initrd,
                    };
                    let argv = linux_guest::qemu_args(&spec);
                    boot_and_measure(
                        &qemu_bin,
                        board,
                        argv,
                        &present,
                        true,
                        plugin_path,
                        sizes,
                        &format!("linux {mode}"),
                        &work,
                        None,
                        &mut linux_col,
                    );
                }
                Err(why) => linux_col.fail_all(&servers.iter().collect::<Vec<_>>(), why),
            }
        }
        let what = if icount {
            "guest instructions per request (all vCPUs, counted by bench/insncount.c; smaller is better)"
        } else {
            "req/s and MiB/s: larger is better; p50/p99 latency in us: smaller is better"
        };
        println!(
            "\nnet on {} ({arch}), -smp {}, {mode} ({} emulated for both guests): {} connections, {} requests per row ({} for nginx_1m), bulk {} MiB per connection\n{what}",
            board.name,
            args.smp,
            if accel == Accel::Tcg { "TCG: CPUs" } else { "hardware-accelerated CPUs, devices" },
            sizes.conns,
            sizes.requests,
            sizes.requests_for(&Workload::Http { path: String::new(), len: 1 << 20 }),
            sizes.bulk_mib
        );
        print!("{}", table(&rows, &skiff_col, &linux_col, icount));
        for (who, col) in [("Skiff", &skiff_col), ("Linux", &linux_col)] {
            for (label, rate) in &col.idle {
                println!("  {who} idle: {rate} instructions/s ({label})");
            }
            for n in &col.notes {
                println!("  {who} {n}");
            }
        }
        // A Linux row that fails in plain mode fails the command: its
        // column is the reference. Skiff's failures are reported only
        // until its NIC and servers run.
        if !icount
            && linux_col
                .cells
                .iter()
                .any(|(_, c)| matches!(c, Cell::Failed(_)))
        {
            status = 1;
        }
    }
    if let Ok((k, _, _)) = &linux {
        println!("Linux kernel: {}", k.version);
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_go_on_the_boards_user_netdev() {
        let mut a: Vec<String> = [
            "-M",
            "microvm",
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "x",
        ]
        .map(String::from)
        .to_vec();
        add_forwards(&mut a, &[(4000, 6379), (4001, 7)]).unwrap();
        assert_eq!(
            a[3],
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:4000-:6379,hostfwd=tcp:127.0.0.1:4001-:7"
        );
        let mut none: Vec<String> = vec!["-M".into(), "virt".into()];
        assert!(add_forwards(&mut none, &[(1, 2)]).is_err());
    }

    #[test]
    fn icount_keeps_the_clock_real_while_idle() {
        let mut a: Vec<String> = ["-icount", "shift=0,sleep=off"].map(String::from).to_vec();
        icount_sleep_on(&mut a);
        assert_eq!(a[1], "shift=0");
    }

    #[test]
    fn ratio_is_skiff_over_linux() {
        assert_eq!(ratio(Some(300.0), Some(200.0)), "1.50");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "-");
        assert_eq!(ratio(None, Some(2.0)), "-");
    }

    fn req(per_sec: f64, p50: u64, instructions: Option<u64>) -> Cell {
        Cell::Requests {
            per_sec,
            p50: Duration::from_micros(p50),
            p99: Duration::from_micros(p50 * 2),
            requests: 100,
            instructions,
            background: instructions.map(|i| i / 3),
        }
    }

    #[test]
    fn table_marks_missing_cells_with_their_reason() {
        let rows = vec![
            Row {
                name: "redis_get",
                measure: Measure::Requests(Workload::RedisGet),
            },
            Row {
                name: "tcp_bulk",
                measure: Measure::Bulk,
            },
        ];
        let skiff = Column {
            cells: vec![
                ("redis_get", Cell::Failed("no NIC".into())),
                ("tcp_bulk", Cell::Failed("no NIC".into())),
            ],
            ..Column::default()
        };
        let linux = Column {
            cells: vec![
                ("redis_get", req(2000.0, 500, Some(150_000))),
                (
                    "tcp_bulk",
                    Cell::Bulk {
                        mib_per_sec: 12.5,
                        bytes: 1 << 20,
                        instructions: Some(1 << 20),
                        background: None,
                    },
                ),
            ],
            ..Column::default()
        };
        let t = table(&rows, &skiff, &linux, false);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["row", "Skiff", "Linux", "Skiff/Linux"]);
        assert_eq!(lines[1], ["redis_get", "req/s", "n/a[1]", "2000", "-"]);
        assert_eq!(lines[2], ["redis_get", "p50_us", "n/a[1]", "500", "-"]);
        assert_eq!(lines[3], ["redis_get", "p99_us", "n/a[1]", "1000", "-"]);
        assert_eq!(lines[4], ["tcp_bulk", "MiB/s", "n/a[1]", "12.5", "-"]);
        assert_eq!(lines[5], ["[1]", "Skiff:", "no", "NIC"]);
        assert_eq!(lines.len(), 6, "{t}");

        let both = Column {
            cells: vec![("redis_get", req(1000.0, 250, Some(300_000)))],
            ..Column::default()
        };
        let t = table(&rows[..1], &both, &linux, true);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[1], ["redis_get", "instr/req", "3000", "1500", "2.00"]);
        assert_eq!(
            lines[2],
            ["redis_get", "instr/req-idle", "2000", "1000", "2.00"]
        );
        let t = table(&rows[..1], &both, &linux, false);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[1], ["redis_get", "req/s", "1000", "2000", "0.50"]);
    }

    #[test]
    fn icount_pass_uses_a_quarter_and_1m_pages_fewer() {
        let s = Sizes {
            conns: 4,
            requests: 2000,
            bulk_mib: 8,
            limit: Duration::from_secs(1),
        };
        let i = s.for_icount();
        assert_eq!((i.requests, i.bulk_mib), (500, 2));
        let big = Workload::Http {
            path: "/1m".into(),
            len: 1 << 20,
        };
        assert_eq!(s.requests_for(&big), 31);
        assert_eq!(s.requests_for(&Workload::RedisGet), 2000);
    }
}
