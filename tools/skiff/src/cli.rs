//! Command-line parsing for `skiff`: the subcommands and their options as
//! types, parsed by hand (a few flags do not justify a parser crate).

use crate::accel::AccelRequest;
use crate::boards::Arch;
use crate::error::{Error, Result};

pub const USAGE: &str = "\
usage: cargo skiff <command> [options]

commands:
  run    build the kernel, boot it under QEMU, exit with the guest's status;
         with `-- PROGRAM ARGS` run that Linux program (its interpreter and
         libraries are packed into an initramfs; status: the program's)
         [--board B] [--arch x86_64|aarch64] [--smp N] [--mem MiB|NG]
         [--accel auto|tcg|kvm] [--ktest] [--ktest-filter S] [--release] [--timeout SECS]
         [--kernel ELF] [--strace] [--env NAME=VALUE]... [--add HOST:GUEST]...
         [--sysroot DIR] [--net user|user,restrict|tap=IFNAME|none]
         [-p [tcp:|udp:]HOSTPORT:GUESTPORT]... [--kopt WORD]... [--disk]
         [-- PROGRAM ARGS...]
         --net user: QEMU user networking with DHCP (the board's default NIC
         is restricted: no traffic leaves QEMU); -p forwards 127.0.0.1:HOSTPORT
         to the guest; --kopt adds a kernel option (ip=ADDR/LEN gw= dns=);
         --disk boots the program from an image file system on a virtio disk
         instead of an initramfs
  test   host tests (cargo test), the boot matrix of boards/*.toml, the
         Linux conformance suite (tests/linux: each program on Linux and on
         Skiff, stdout and status compared), then the network phase (guests
         and Debian servers driven from the host through port forwards)
         [--board B]... [--only host|boot|linux|net] [--skip host|boot|linux|net]...
         [--host-only] [--boot-only] [--filter SUBSTRING] [--jobs N]
         [--release] [--accel auto|tcg|kvm]
  bench  boot an in-guest benchmark suite twice (plain, and under
         -icount shift=0 where a guest ns is one instruction) and print a table
         sched|syscall|net [--board B] [--arch x86_64|aarch64] [--smp N] [--accel ...]
         net: servers (redis, memcached, nginx, TCP echo) on Skiff and Linux
         driven from the host [--conns N] [--requests N] [--bulk-mib N]
  boards list the boards
  help   this text

docs: README.md, docs/boards.md, docs/exit-status.md, docs/debugging.md,
      tests/linux/README.md";

/// `skiff run` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub board: Option<String>,
    pub arch: Option<Arch>,
    pub smp: Option<u32>,
    pub mem_mib: Option<u32>,
    pub accel: AccelRequest,
    pub ktest: bool,
    /// `--ktest-filter S`: only ktests whose name contains S (implies --ktest).
    pub ktest_filter: Option<String>,
    pub release: bool,
    pub timeout_secs: Option<u64>,
    /// Boot this kernel ELF instead of building one.
    pub kernel: Option<std::path::PathBuf>,
    /// `--strace`: the kernel logs every system call.
    pub strace: bool,
    /// `--env NAME=VALUE`, in order.
    pub env: Vec<String>,
    /// `--add HOST:GUEST`, in order.
    pub adds: Vec<String>,
    /// `--sysroot DIR`: where libraries come from (default: `/` for the
    /// host's arch, `/usr/<triple>` for the other).
    pub sysroot: Option<std::path::PathBuf>,
    /// `--net`: which network the NIC is on (default: the board's).
    pub net: NetArg,
    /// `-p`, in order.
    pub forwards: Vec<Forward>,
    /// `--kopt WORD`: extra kernel command-line options, in order.
    pub kopts: Vec<String>,
    /// `--disk`: the program's files on a virtio disk (image file system)
    /// instead of an initramfs.
    pub disk: bool,
    pub app: Vec<String>,
}

/// `--net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetArg {
    /// What the board's QEMU arguments say (a restricted user network).
    Board,
    /// No NIC at all.
    None,
    /// QEMU user networking (slirp: DHCP, DNS, NAT); `restrict`: no
    /// traffic leaves QEMU except port forwards.
    User { restrict: bool },
    /// A host tap interface (`tap=IFNAME`), for a real bridge.
    Tap(String),
}

impl NetArg {
    pub fn parse(v: &str) -> Option<NetArg> {
        match v {
            "none" => Some(NetArg::None),
            "user" => Some(NetArg::User { restrict: false }),
            "user,restrict" => Some(NetArg::User { restrict: true }),
            _ => {
                let name = v.strip_prefix("tap=")?;
                let ok = !name.is_empty()
                    && name.len() < 16
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
                ok.then(|| NetArg::Tap(name.to_string()))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// `-p [tcp:|udp:]HOSTPORT:GUESTPORT`: host 127.0.0.1:HOSTPORT reaches the
/// guest's GUESTPORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub host: u16,
    pub guest: u16,
}

impl Forward {
    pub fn parse(v: &str) -> Option<Forward> {
        let (proto, rest) = if let Some(r) = v.strip_prefix("tcp:") {
            (Proto::Tcp, r)
        } else if let Some(r) = v.strip_prefix("udp:") {
            (Proto::Udp, r)
        } else {
            (Proto::Tcp, v)
        };
        let (h, g) = rest.split_once(':')?;
        let port = |s: &str| s.parse::<u16>().ok().filter(|&p| p != 0);
        Some(Forward {
            proto,
            host: port(h)?,
            guest: port(g)?,
        })
    }
}

/// `skiff test` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestArgs {
    pub boards: Vec<String>,
    pub host: bool,
    pub boot: bool,
    /// The Linux conformance phase (tests/linux).
    pub linux: bool,
    /// The network phase: guests driven from the host through port
    /// forwards (tools/skiff/src/nettest).
    pub net: bool,
    /// `--filter S`: only conformance cases whose name contains S.
    pub filter: Option<String>,
    pub jobs: usize,
    pub release: bool,
    pub accel: AccelRequest,
}

/// `skiff bench` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchArgs {
    pub suite: String,
    pub board: Option<String>,
    pub arch: Option<Arch>,
    pub smp: u32,
    pub accel: AccelRequest,
    /// `bench net`: connections per row (default 4).
    pub conns: Option<u32>,
    /// `bench net`: requests per row (default 2000).
    pub requests: Option<u32>,
    /// `bench net`: MiB per connection for the bulk row (default 8).
    pub bulk_mib: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Box<RunArgs>),
    Test(TestArgs),
    Bench(BenchArgs),
    Boards,
    Help,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(format!("{}\n\n{USAGE}", msg.into()))
}

/// Parses `--mem`: MiB by default, `M`/`MiB`/`G`/`GiB` suffixes allowed.
pub fn parse_mem(s: &str) -> Option<u32> {
    let lower = s.to_ascii_lowercase();
    let (num, scale) = if let Some(n) = lower
        .strip_suffix("gib")
        .or_else(|| lower.strip_suffix('g'))
    {
        (n, 1024)
    } else if let Some(n) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    num.parse::<u32>()
        .ok()?
        .checked_mul(scale)
        .filter(|&m| m > 0)
}

struct Args<I: Iterator<Item = String>> {
    it: I,
}

impl<I: Iterator<Item = String>> Args<I> {
    fn value(&mut self, flag: &str) -> Result<String> {
        self.it
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))
    }

    fn number<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| usage(format!("{flag} {v}: not a number")))
    }

    fn accel(&mut self) -> Result<AccelRequest> {
        let v = self.value("--accel")?;
        AccelRequest::parse(&v)
            .ok_or_else(|| usage(format!("--accel {v}: expected auto, tcg or kvm")))
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command> {
    let mut a = Args {
        it: args.into_iter(),
    };
    let Some(cmd) = a.it.next() else {
        return Ok(Command::Help);
    };
    match cmd.as_str() {
        "run" => parse_run(&mut a).map(|r| Command::Run(Box::new(r))),
        "test" => parse_test(&mut a).map(Command::Test),
        "bench" => parse_bench(&mut a).map(Command::Bench),
        "boards" => Ok(Command::Boards),
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => Err(usage(format!("unknown command `{other}`"))),
    }
}

fn parse_run<I: Iterator<Item = String>>(a: &mut Args<I>) -> Result<RunArgs> {
    let mut r = RunArgs {
        board: None,
        arch: None,
        smp: None,
        mem_mib: None,
        accel: AccelRequest::Auto,
        ktest: false,
        ktest_filter: None,
        release: false,
        timeout_secs: None,
        kernel: None,
        strace: false,
        env: Vec::new(),
        adds: Vec::new(),
        sysroot: None,
        net: NetArg::Board,
        forwards: Vec::new(),
        kopts: Vec::new(),
        disk: false,
        app: Vec::new(),
    };
    while let Some(arg) = a.it.next() {
        match arg.as_str() {
            "--board" => r.board = Some(a.value("--board")?),
            "--arch" => r.arch = Some(Arch::parse(&a.value("--arch")?)?),
            "--smp" => {
                let n: u32 = a.number("--smp")?;
                if n == 0 {
                    return Err(usage("--smp must be at least 1"));
                }
                r.smp = Some(n);
            }
            "--mem" => {
                let v = a.value("--mem")?;
                r.mem_mib =
                    Some(parse_mem(&v).ok_or_else(|| {
                        usage(format!("--mem {v}: expected MiB, e.g. 512 or 1G"))
                    })?);
            }
            "--accel" => r.accel = a.accel()?,
            "--ktest" => r.ktest = true,
            "--ktest-filter" => {
                r.ktest = true;
                r.ktest_filter = Some(a.value("--ktest-filter")?);
            }
            "--release" => r.release = true,
            "--timeout" => {
                let secs: u64 = a.number("--timeout")?;
                if secs == 0 {
                    return Err(usage("--timeout must be at least 1 second"));
                }
                r.timeout_secs = Some(secs);
            }
            "--kernel" => r.kernel = Some(a.value("--kernel")?.into()),
            "--strace" => r.strace = true,
            "--env" => {
                let v = a.value("--env")?;
                if v.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                    return Err(usage(format!("--env {v}: expected NAME=VALUE")));
                }
                r.env.push(v);
            }
            "--add" => {
                let v = a.value("--add")?;
                if !v
                    .rsplit_once(':')
                    .is_some_and(|(h, g)| !h.is_empty() && g.starts_with('/'))
                {
                    return Err(usage(format!(
                        "--add {v}: expected HOST:GUEST with an absolute GUEST path"
                    )));
                }
                r.adds.push(v);
            }
            "--sysroot" => r.sysroot = Some(a.value("--sysroot")?.into()),
            "--net" => {
                let v = a.value("--net")?;
                r.net = NetArg::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--net {v}: expected user, user,restrict, tap=IFNAME or none"
                    ))
                })?;
            }
            "-p" | "--publish" => {
                let v = a.value("-p")?;
                r.forwards.push(Forward::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "-p {v}: expected [tcp:|udp:]HOSTPORT:GUESTPORT with ports 1-65535"
                    ))
                })?);
            }
            "--kopt" => {
                let v = a.value("--kopt")?;
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err(usage(format!("--kopt {v:?}: expected one word")));
                }
                r.kopts.push(v);
            }
            "--disk" => r.disk = true,
            "--" => {
                r.app = a.it.by_ref().collect();
                break;
            }
            other => return Err(usage(format!("run: unknown option `{other}`"))),
        }
    }
    let app_only = r.strace || !r.env.is_empty() || !r.adds.is_empty() || r.sysroot.is_some();
    if app_only && r.app.is_empty() {
        return Err(usage(
            "--strace, --env, --add and --sysroot need a program after `--`",
        ));
    }
    if r.disk && r.app.is_empty() {
        return Err(usage("--disk needs a program after `--`"));
    }
    if !r.forwards.is_empty() && matches!(r.net, NetArg::None | NetArg::Tap(_)) {
        return Err(usage("-p needs user networking (--net user)"));
    }
    Ok(r)
}

/// A test phase named by `--only` / `--skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Host,
    Boot,
    Linux,
    Net,
}

fn phase(flag: &str, v: &str) -> Result<Phase> {
    match v {
        "host" => Ok(Phase::Host),
        "boot" => Ok(Phase::Boot),
        "linux" => Ok(Phase::Linux),
        "net" => Ok(Phase::Net),
        _ => Err(usage(format!(
            "{flag} {v}: expected host, boot, linux or net"
        ))),
    }
}

fn parse_bench<I: Iterator<Item = String>>(a: &mut Args<I>) -> Result<BenchArgs> {
    let suite =
        a.it.next()
            .ok_or_else(|| usage("bench: name a suite (sched, syscall, net)"))?;
    if crate::bench::Suite::parse(&suite).is_none() {
        return Err(usage(format!(
            "bench: unknown suite `{suite}` (known: sched, syscall, net)"
        )));
    }
    let mut b = BenchArgs {
        suite,
        board: None,
        arch: None,
        smp: 2,
        accel: AccelRequest::Auto,
        conns: None,
        requests: None,
        bulk_mib: None,
    };
    while let Some(arg) = a.it.next() {
        match arg.as_str() {
            "--board" => b.board = Some(a.value("--board")?),
            "--arch" => b.arch = Some(Arch::parse(&a.value("--arch")?)?),
            "--smp" => {
                b.smp = a.number("--smp")?;
                if b.smp == 0 {
                    return Err(usage("--smp must be at least 1"));
                }
            }
            "--accel" => b.accel = a.accel()?,
            flag @ ("--conns" | "--requests" | "--bulk-mib") => {
                let n: u32 = a.number(flag)?;
                if n == 0 {
                    return Err(usage(format!("{flag} must be at least 1")));
                }
                match flag {
                    "--conns" => b.conns = Some(n),
                    "--requests" => b.requests = Some(n),
                    _ => b.bulk_mib = Some(n),
                }
            }
            other => return Err(usage(format!("bench: unknown option `{other}`"))),
        }
    }
    Ok(b)
}

fn parse_test<I: Iterator<Item = String>>(a: &mut Args<I>) -> Result<TestArgs> {
    let mut t = TestArgs {
        boards: Vec::new(),
        host: true,
        boot: true,
        linux: true,
        net: true,
        filter: None,
        jobs: 1,
        release: false,
        accel: AccelRequest::Auto,
    };
    while let Some(arg) = a.it.next() {
        match arg.as_str() {
            "--board" => t.boards.push(a.value("--board")?),
            "--host-only" => (t.boot, t.linux, t.net) = (false, false, false),
            "--boot-only" => (t.host, t.linux, t.net) = (false, false, false),
            "--only" => {
                let p = phase("--only", &a.value("--only")?)?;
                t.host = p == Phase::Host;
                t.boot = p == Phase::Boot;
                t.linux = p == Phase::Linux;
                t.net = p == Phase::Net;
            }
            "--skip" => match phase("--skip", &a.value("--skip")?)? {
                Phase::Host => t.host = false,
                Phase::Boot => t.boot = false,
                Phase::Linux => t.linux = false,
                Phase::Net => t.net = false,
            },
            "--filter" => t.filter = Some(a.value("--filter")?),
            "--jobs" | "-j" => {
                t.jobs = a.number("--jobs")?;
                if t.jobs == 0 {
                    return Err(usage("--jobs must be at least 1"));
                }
            }
            "--release" => t.release = true,
            "--accel" => t.accel = a.accel()?,
            other => return Err(usage(format!("test: unknown option `{other}`"))),
        }
    }
    if !t.host && !t.boot && !t.linux && !t.net {
        return Err(usage(
            "no test phase left to run (--only/--skip/--host-only/--boot-only)",
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command> {
        parse(s.split_whitespace().map(str::to_string))
    }

    #[test]
    fn bench_args() {
        let Command::Bench(b) = p("bench sched --arch aarch64 --smp 4").unwrap() else {
            panic!("not bench");
        };
        assert_eq!(
            (b.suite.as_str(), b.arch, b.smp),
            ("sched", Some(Arch::Aarch64), 4)
        );
        assert!(p("bench").is_err());
        assert!(p("bench disk").is_err());
        let Command::Bench(b) = p("bench net --conns 8 --requests 500 --bulk-mib 2").unwrap()
        else {
            panic!("not bench");
        };
        assert_eq!(
            (b.suite.as_str(), b.conns, b.requests, b.bulk_mib),
            ("net", Some(8), Some(500), Some(2))
        );
        assert!(p("bench net --conns 0").is_err());
        assert!(p("bench sched --smp 0").is_err());
    }

    #[test]
    fn run_with_everything() {
        let Command::Run(r) = p("run --board qemu-aarch64 --smp 4 --mem 1G --accel tcg --ktest --release --timeout 30 -- ./app --port 1").unwrap() else {
            panic!("not run");
        };
        assert_eq!(r.board.as_deref(), Some("qemu-aarch64"));
        assert_eq!(
            (r.smp, r.mem_mib, r.timeout_secs),
            (Some(4), Some(1024), Some(30))
        );
        assert_eq!(r.accel, AccelRequest::Tcg);
        assert!(r.ktest && r.release);
        assert_eq!(r.app, ["./app", "--port", "1"]);
    }

    #[test]
    fn run_defaults_and_errors() {
        let Command::Run(r) = p("run --arch arm64").unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.arch, r.accel, r.ktest),
            (Some(Arch::Aarch64), AccelRequest::Auto, false)
        );
        assert!(p("run --smp 0").is_err());
        assert!(p("run --timeout 0").is_err());
        assert!(p("run --smp").is_err());
        assert!(p("run --accel fast").is_err());
        assert!(p("run --mem lots").is_err());
        assert!(p("run --frobnicate").is_err());
        assert!(matches!(p("run --arch sparc"), Err(Error::UnknownArch(_))));
        assert!(p("launch").is_err());
        assert_eq!(p("").unwrap(), Command::Help);
    }

    #[test]
    fn test_options() {
        let Command::Test(t) = p("test --board a --board b --jobs 2 --boot-only").unwrap() else {
            panic!()
        };
        assert_eq!(t.boards, ["a", "b"]);
        assert_eq!((t.jobs, t.host, t.boot, t.linux), (2, false, true, false));
        assert!(p("test --host-only --boot-only").is_err());
        assert!(p("test -j 0").is_err());
        let Command::Test(t) = p("test --only linux --filter x86_64/glibc").unwrap() else {
            panic!()
        };
        assert_eq!((t.host, t.boot, t.linux), (false, false, true));
        assert_eq!(t.filter.as_deref(), Some("x86_64/glibc"));
        let Command::Test(t) = p("test --skip linux --skip host").unwrap() else {
            panic!()
        };
        assert_eq!((t.host, t.boot, t.linux), (false, true, false));
        let Command::Test(t) = p("test").unwrap() else {
            panic!()
        };
        assert!(t.host && t.boot && t.linux);
        assert!(p("test --only network").is_err());
        let Command::Test(t) = p("test --only net").unwrap() else {
            panic!()
        };
        assert!(t.net && !t.host && !t.boot && !t.linux);
        assert!(p("test --skip host --skip boot --skip linux --skip net").is_err());
    }

    #[test]
    fn run_program_options() {
        let Command::Run(r) = p(
            "run --arch aarch64 --strace --env A=1 --env B= --add /h/lib:/usr/lib/x --sysroot /srv/arm -- /tmp/hello-arm64 x",
        )
        .unwrap() else {
            panic!()
        };
        assert!(r.strace);
        assert_eq!(r.env, ["A=1", "B="]);
        assert_eq!(r.adds, ["/h/lib:/usr/lib/x"]);
        assert_eq!(r.sysroot.as_deref(), Some(std::path::Path::new("/srv/arm")));
        assert_eq!(r.app, ["/tmp/hello-arm64", "x"]);
        assert!(p("run --env NOEQUALS -- x").is_err());
        assert!(p("run --env =v -- x").is_err());
        assert!(p("run --add /h:relative -- x").is_err());
        assert!(p("run --add :/g -- x").is_err());
        assert!(p("run --strace").is_err());
    }

    #[test]
    fn run_network_and_disk_options() {
        let Command::Run(r) = p(
            "run --net user -p 8080:80 -p udp:5353:53 --kopt ip=10.0.2.15/24 --disk -- /usr/bin/nginx",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.net, NetArg::User { restrict: false });
        assert_eq!(
            r.forwards,
            [
                Forward {
                    proto: Proto::Tcp,
                    host: 8080,
                    guest: 80
                },
                Forward {
                    proto: Proto::Udp,
                    host: 5353,
                    guest: 53
                }
            ]
        );
        assert_eq!(r.kopts, ["ip=10.0.2.15/24"]);
        assert!(r.disk);
        assert_eq!(
            NetArg::parse("user,restrict"),
            Some(NetArg::User { restrict: true })
        );
        assert_eq!(NetArg::parse("tap=tap0"), Some(NetArg::Tap("tap0".into())));
        assert_eq!(NetArg::parse("none"), Some(NetArg::None));
        assert_eq!(NetArg::parse("tap="), None);
        assert_eq!(NetArg::parse("tap=a;rm"), None);
        assert_eq!(NetArg::parse("bridge"), None);
        assert!(p("run --net bogus -- x").is_err());
        assert!(p("run -p 0:80 -- x").is_err());
        assert!(p("run -p 70000:80 -- x").is_err());
        assert!(p("run -p 80 -- x").is_err());
        assert!(p("run -p sctp:1:2 -- x").is_err());
        assert!(p("run --net none -p 1:2 -- x").is_err());
        assert!(p("run --kopt").is_err());
        assert!(p("run --disk").is_err());
        let Command::Run(r) = p("run -- x").unwrap() else {
            panic!()
        };
        assert_eq!(r.net, NetArg::Board);
        assert!(!r.disk && r.forwards.is_empty());
    }

    #[test]
    fn mem_units() {
        assert_eq!(parse_mem("512"), Some(512));
        assert_eq!(parse_mem("512M"), Some(512));
        assert_eq!(parse_mem("512MiB"), Some(512));
        assert_eq!(parse_mem("2G"), Some(2048));
        assert_eq!(parse_mem("0"), None);
        assert_eq!(parse_mem("x"), None);
    }
}
