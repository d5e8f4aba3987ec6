//! `cargo skiff bench SUITE`: runs a benchmark suite on Skiff and on a
//! Linux guest (Debian's kernel, [`linux_guest`]) under the same QEMU
//! settings, twice — once plainly (TCG, or KVM where it is real), once
//! under `-icount shift=0,sleep=off`, where the guest clock advances one
//! nanosecond per guest instruction so the same figures become
//! deterministic instruction counts — and prints one table per mode with
//! the two guests side by side and the ratio Linux/Skiff.
//!
//! Suites (docs/benchmarks.md):
//! - `sched`: Skiff's column is its in-kernel benchmark (`bench=sched` on
//!   the kernel command line, kernel/src/bench.rs); Linux's is
//!   `bench/sched.c`, the user-level equivalent, as the guest's `/init`.
//! - `syscall`: both columns run the same static binary `bench/syscall.c`,
//!   on Skiff as the app (`skiff run` packing), on Linux as `/init`.
//!
//! Every guest prints `bench: name=NAME ops=N ns_per_op=X` (or
//! `skipped=REASON`) lines and `bench: done`; [`parse`] reads them.

use crate::linux_guest;

use crate::accel::{self, Accel, HostFacts};
use crate::app;
use crate::boards::{self, Arch, Board, BootProtocol};
use crate::cli::BenchArgs;
use crate::error::{Error, Result};
use crate::kernel;
use crate::qemu;
use crate::sysroot;
use linux_guest::{LinuxKernel, Run};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one Skiff run may take.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The benchmark suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Sched,
    Syscall,
    /// Network servers driven from the host (`bench_net`).
    Net,
}

impl Suite {
    pub fn parse(s: &str) -> Option<Suite> {
        match s {
            "sched" => Some(Suite::Sched),
            "syscall" => Some(Suite::Syscall),
            "net" => Some(Suite::Net),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Suite::Sched => "sched",
            Suite::Syscall => "syscall",
            Suite::Net => "net",
        }
    }

    /// The program in `bench/` the Linux guest runs (and Skiff, for suites
    /// measured through the Linux ABI).
    pub fn program(self) -> &'static str {
        self.name()
    }

    /// Whether Skiff's column comes from the kernel's own benchmark
    /// (`bench=SUITE`) rather than from running [`Suite::program`] as the app.
    pub fn skiff_in_kernel(self) -> bool {
        self == Suite::Sched
    }
}

/// One benchmark's result from one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    NsPerOp(u64),
    Skipped(String),
}

/// What one guest's console said about a suite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `bench: name=...` figures in the order printed.
    pub figures: Vec<(String, Figure)>,
    /// `bench: done` was seen.
    pub done: bool,
    /// `cpus=` of the `bench: suite=` line.
    pub cpus: Option<u32>,
    /// The clock the figures were read on: Linux's `bench: clocksource=`,
    /// the `clock=` of Skiff's `platform:` line.
    pub clock: Option<String>,
    /// `bench: error=WHAT` lines (a measurement that could not be made).
    pub errors: Vec<String>,
}

/// The `bench:` lines (and Skiff's `platform:` line) of a console log.
pub fn parse(lines: &[String]) -> Report {
    let mut r = Report::default();
    for line in lines {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("platform: ") {
            if r.clock.is_none() {
                r.clock = field(rest, "clock").map(str::to_string);
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("bench: ") else {
            continue;
        };
        if rest == "done" {
            r.done = true;
        } else if let Some(v) = rest.strip_prefix("clocksource=") {
            r.clock = Some(v.to_string());
        } else if let Some(v) = rest.strip_prefix("error=") {
            r.errors.push(v.to_string());
        } else if rest.starts_with("suite=") {
            r.cpus = field(rest, "cpus").and_then(|v| v.parse().ok());
        } else if let Some(name) = field(rest, "name") {
            let fig = if let Some(v) = field(rest, "ns_per_op") {
                v.parse().ok().map(Figure::NsPerOp)
            } else {
                field(rest, "skipped").map(|v| Figure::Skipped(v.to_string()))
            };
            if let Some(f) = fig {
                r.figures.push((name.to_string(), f));
            }
        }
    }
    r
}

/// The value of `key=` among the space-separated words of `s`.
fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// One guest's column in one mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The guest ran; `failure` says why its figures are incomplete.
    Ran {
        report: Report,
        /// Host wall time from starting QEMU to the suite's first line.
        to_bench: Option<Duration>,
        failure: Option<String>,
    },
    /// The guest could not be run at all (the reason is printed).
    Missing(String),
}

impl Column {
    fn figure(&self, name: &str) -> Option<&Figure> {
        match self {
            Column::Ran { report, .. } => report
                .figures
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| f),
            Column::Missing(_) => None,
        }
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Column::Ran { report, .. } => report.figures.iter().map(|(n, _)| n.as_str()).collect(),
            Column::Missing(_) => Vec::new(),
        }
    }

    fn to_bench(&self) -> Option<Duration> {
        match self {
            Column::Ran { to_bench, .. } => *to_bench,
            Column::Missing(_) => None,
        }
    }

    /// Why this column is missing or incomplete, if it is.
    fn problem(&self) -> Option<&str> {
        match self {
            Column::Ran { failure, .. } => failure.as_deref(),
            Column::Missing(why) => Some(why),
        }
    }
}

/// The name of the boot-time row (host wall clock, both guests).
pub const BOOT_ROW: &str = "boot_to_bench_ms(host)";

fn cell(f: Option<&Figure>) -> String {
    match f {
        Some(Figure::NsPerOp(v)) => v.to_string(),
        Some(Figure::Skipped(why)) => format!("skipped({why})"),
        None => "-".into(),
    }
}

/// `linux / skiff` to two decimals, when both are measured and Skiff's is
/// not zero.
pub fn ratio(skiff: Option<&Figure>, linux: Option<&Figure>) -> String {
    match (skiff, linux) {
        (Some(Figure::NsPerOp(s)), Some(Figure::NsPerOp(l))) if *s > 0 => {
            format!("{:.2}", *l as f64 / *s as f64)
        }
        _ => "-".into(),
    }
}

/// One mode's table: a header line, one row per figure either guest
/// printed (Skiff's order first), the boot-time row, and the ratio
/// Linux/Skiff (above 1: Skiff is faster).
pub fn table(skiff: &Column, linux: &Column) -> String {
    let mut names: Vec<&str> = skiff.names();
    for n in linux.names() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut rows: Vec<[String; 4]> = names
        .iter()
        .map(|n| {
            let (s, l) = (skiff.figure(n), linux.figure(n));
            [n.to_string(), cell(s), cell(l), ratio(s, l)]
        })
        .collect();
    let ms = |c: &Column| {
        c.to_bench()
            .map(|d| Figure::NsPerOp(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    };
    let (s, l) = (ms(skiff), ms(linux));
    rows.push([
        BOOT_ROW.to_string(),
        cell(s.as_ref()),
        cell(l.as_ref()),
        ratio(s.as_ref(), l.as_ref()),
    ]);
    let header = [
        "benchmark".to_string(),
        "Skiff".to_string(),
        "Linux".to_string(),
        "Linux/Skiff".to_string(),
    ];
    columns4(&header, &rows)
}

/// A header and rows of four cells as text: the first column left-aligned,
/// the others right-aligned, each as wide as its widest cell.
pub(crate) fn columns4(header: &[String; 4], rows: &[[String; 4]]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2), width(3)];
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter()) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        );
    }
    out
}

/// Turns a finished boot into a column: figures plus, when the suite did
/// not finish cleanly, the reason.
fn column(run: &Run) -> Column {
    let report = parse(&run.outcome.log);
    let status = run.outcome.ending.exit_status();
    let failure = if !report.errors.is_empty() {
        Some(format!("could not measure: {}", report.errors.join(", ")))
    } else if !report.done || status != 0 {
        let last = run
            .outcome
            .log
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        let why = run
            .outcome
            .ending
            .explain()
            .unwrap_or_else(|| format!("status {status}"));
        Some(format!(
            "the suite did not finish ({why}); last line: {last}"
        ))
    } else {
        None
    };
    Column::Ran {
        report,
        to_bench: run.to_bench,
        failure,
    }
}

/// Everything Skiff's side needs to boot, or why it cannot.
enum SkiffSide {
    /// The kernel and its command line (and the app's initramfs, if any).
    Ready {
        boot_file: PathBuf,
        cmdline: String,
        initrd: Option<PathBuf>,
    },
    Missing(String),
}

/// Everything the Linux side needs to boot, or why it cannot.
enum LinuxSide {
    Ready {
        kernel: LinuxKernel,
        initrd: PathBuf,
    },
    Missing(String),
}

fn prepare_skiff(
    root: &Path,
    board: &Board,
    suite: Suite,
    program: &std::result::Result<PathBuf, String>,
    work: &Path,
) -> SkiffSide {
    let kernel = match kernel::build(root, board.arch, true, true) {
        Ok(k) => k,
        Err(e) => return SkiffSide::Missing(format!("kernel build failed: {e}")),
    };
    let boot_file = kernel.boot_file(board).to_path_buf();
    if suite.skiff_in_kernel() {
        let cmdline = match qemu::kernel_cmdline(board, false, &[]) {
            Ok(c) => format!("{c} bench={}", suite.name()),
            Err(e) => return SkiffSide::Missing(e.to_string()),
        };
        return SkiffSide::Ready {
            boot_file,
            cmdline,
            initrd: None,
        };
    }
    let program = match program {
        Ok(p) => p,
        Err(why) => return SkiffSide::Missing(why.clone()),
    };
    // The same binary, packed the way `skiff run -- PROGRAM` packs it.
    let argv = [program.display().to_string()];
    let req = app::Request {
        arch: board.arch,
        sysroot: sysroot::Root::default_dir(board.arch),
        argv: &argv,
        env: &[],
        adds: &[],
        strace: false,
    };
    let packed = match app::pack(&req) {
        Ok(p) => p,
        Err(e) => return SkiffSide::Missing(format!("cannot pack {}: {e}", argv[0])),
    };
    let words = match packed.launch.cmdline_words() {
        Ok(w) => w,
        Err(e) => return SkiffSide::Missing(e.to_string()),
    };
    let initrd = work.join(format!("skiff-{}.cpio", suite.name()));
    if let Err(e) = std::fs::write(&initrd, &packed.initrd) {
        return SkiffSide::Missing(format!("{}: {e}", initrd.display()));
    }
    SkiffSide::Ready {
        boot_file,
        cmdline: qemu::app_cmdline(board, &words),
        initrd: Some(initrd),
    }
}

fn prepare_linux(
    root: &Path,
    arch: Arch,
    program: &std::result::Result<PathBuf, String>,
    work: &Path,
    suite: Suite,
) -> LinuxSide {
    let kernel = match linux_guest::kernel(root, arch) {
        Ok(k) => k,
        Err(e) => return LinuxSide::Missing(format!("no Debian kernel: {e}")),
    };
    let program = match program {
        Ok(p) => p,
        Err(why) => return LinuxSide::Missing(why.clone()),
    };
    let bytes = match std::fs::read(program) {
        Ok(b) => b,
        Err(e) => return LinuxSide::Missing(format!("{}: {e}", program.display())),
    };
    let initrd = work.join(format!("linux-{}.cpio", suite.name()));
    if let Err(e) = std::fs::write(&initrd, linux_guest::initramfs(&bytes)) {
        return LinuxSide::Missing(format!("{}: {e}", initrd.display()));
    }
    LinuxSide::Ready { kernel, initrd }
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<u8> {
    let suite = Suite::parse(&args.suite).ok_or_else(|| {
        Error::Usage(format!(
            "bench: unknown suite `{}` (known: sched, syscall, net)",
            args.suite
        ))
    })?;
    if suite == Suite::Net {
        return crate::bench_net::run(root, args);
    }
    let all = boards::load_dir(&root.join("boards"))?;
    let board = boards::select(&all, args.board.as_deref(), args.arch)?;
    if board.boot == BootProtocol::XenDom0less {
        return Err(Error::Usage(format!(
            "bench: board {} boots under Xen; pick a board that boots the kernel directly",
            board.name
        )));
    }
    let decision = accel::decide(args.accel, HostFacts::probe(), board)?;
    let qemu_bin = qemu::require_qemu(board)?;
    let work = root.join("build/bench").join(board.arch.name());
    std::fs::create_dir_all(&work).map_err(Error::io(&work))?;

    let program = linux_guest::build_program(root, board.arch, suite.program())
        .map_err(|e| format!("cannot build bench/{}.c: {e}", suite.program()));
    let skiff = prepare_skiff(root, board, suite, &program, &work);
    let linux = prepare_linux(root, board.arch, &program, &work, suite);
    eprintln!(
        "skiff: bench {}: board={} smp={} accel={}",
        suite.name(),
        board.name,
        args.smp,
        decision.accel.name()
    );

    let mut status = 0;
    let mut notes: Vec<String> = Vec::new();
    if let LinuxSide::Ready { kernel, .. } = &linux {
        notes.push(format!("Linux kernel: {}", kernel.version));
    }
    for icount in [false, true] {
        let accel = if icount { Accel::Tcg } else { decision.accel };
        let mode = if icount {
            "icount shift=0".to_string()
        } else {
            accel.name().to_string()
        };
        let unit = if icount {
            "instructions/op (idle time skipped)"
        } else {
            "ns/op"
        };
        let skiff_col = match &skiff {
            SkiffSide::Ready {
                boot_file,
                cmdline,
                initrd,
            } => {
                let spec = qemu::RunSpec {
                    board,
                    accel,
                    smp: args.smp,
                    mem_mib: board.memory_mib,
                    kernel: boot_file.clone(),
                    cmdline: cmdline.clone(),
                    xen: None,
                    icount,
                };
                let mut argv = qemu::qemu_args(&spec);
                if let Some(i) = initrd {
                    qemu::add_initrd(&mut argv, i);
                }
                eprintln!(
                    "skiff: bench: skiff: {} {}",
                    qemu_bin.display(),
                    argv.join(" ")
                );
                column(&linux_guest::run_timed(&qemu_bin, &argv, board, TIMEOUT))
            }
            SkiffSide::Missing(why) => Column::Missing(why.clone()),
        };
        let linux_col = match &linux {
            LinuxSide::Ready { kernel, initrd } => {
                let spec = linux_guest::Spec {
                    board,
                    accel,
                    smp: args.smp,
                    icount,
                    kernel,
                    initrd,
                };
                column(&linux_guest::boot(&qemu_bin, &spec))
            }
            LinuxSide::Missing(why) => Column::Missing(why.clone()),
        };
        println!(
            "\n{} on {} ({}), -smp {}, {mode}: {unit}",
            suite.name(),
            board.name,
            board.arch,
            args.smp
        );
        print!("{}", table(&skiff_col, &linux_col));
        for (who, col) in [("Skiff", &skiff_col), ("Linux", &linux_col)] {
            if let Column::Ran { report, .. } = col {
                println!(
                    "  {who}: clock={} cpus={}",
                    report.clock.as_deref().unwrap_or("unknown"),
                    report.cpus.map_or("?".to_string(), |c| c.to_string())
                );
            }
            if let Some(why) = col.problem() {
                let missing = matches!(col, Column::Missing(_));
                println!(
                    "  {who} {}: {why}",
                    if missing { "missing" } else { "failed" }
                );
                // A Linux guest that could not be prepared (offline, no
                // cross compiler) is reported, not failed: Skiff's figures
                // still stand. Skiff missing (its kernel did not build, the
                // program could not be packed) or either guest breaking in
                // plain mode fails the command. icount failures are noted
                // only (QEMU's icount refuses some device accesses).
                let skiff_missing = missing && who == "Skiff";
                if !icount && (skiff_missing || !missing) {
                    status = 1;
                }
            }
        }
    }
    for n in notes {
        println!("{n}");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_figures_skips_clock_and_done() {
        let log = lines(&[
            "skiff: booting",
            "platform: arch=x86_64 hypervisor=tcg firmware=none clock=tsc(pit) cpus=2 mem=511MiB",
            "bench: suite=sched cpus=2",
            "bench: name=switch_1cpu ops=4000 ns_per_op=12667",
            "bench: name=switch_2cpu skipped=needs-2-cpus",
            "bench: name=broken ns_per_op=x",
            "bench: done",
        ]);
        let r = parse(&log);
        assert!(r.done);
        assert_eq!(r.cpus, Some(2));
        assert_eq!(r.clock.as_deref(), Some("tsc(pit)"));
        assert_eq!(
            r.figures,
            [
                ("switch_1cpu".to_string(), Figure::NsPerOp(12667)),
                (
                    "switch_2cpu".to_string(),
                    Figure::Skipped("needs-2-cpus".into())
                ),
            ]
        );
        assert!(!parse(&log[..4]).done, "no done line");
    }

    #[test]
    fn parses_the_linux_programs_lines() {
        // What bench/sched.c prints as a Linux guest's /init, kernel noise
        // included.
        let log = lines(&[
            "[    1.940414] PCI: Fatal: No config space access function found",
            "bench: clocksource=tsc",
            "bench: suite=sched cpus=2",
            "bench: name=mutex_uncontended ops=100000 ns_per_op=162",
            "bench: error=switch_2cpu",
            "skiff: exit status=1",
        ]);
        let r = parse(&log);
        assert_eq!(r.clock.as_deref(), Some("tsc"));
        assert_eq!(r.errors, ["switch_2cpu"]);
        assert!(!r.done);
        assert_eq!(
            r.figures,
            [("mutex_uncontended".to_string(), Figure::NsPerOp(162))]
        );
    }

    #[test]
    fn field_matches_whole_keys_only() {
        assert_eq!(field("name=a ops=1", "name"), Some("a"));
        assert_eq!(field("xname=a", "name"), None);
        assert_eq!(field("name", "name"), None);
    }

    #[test]
    fn suites() {
        assert_eq!(Suite::parse("sched"), Some(Suite::Sched));
        assert_eq!(Suite::parse("syscall"), Some(Suite::Syscall));
        assert_eq!(Suite::parse("net"), Some(Suite::Net));
        assert_eq!(Suite::parse("disk"), None);
        assert!(Suite::Sched.skiff_in_kernel());
        assert!(!Suite::Syscall.skiff_in_kernel());
    }

    #[test]
    fn ratio_is_linux_over_skiff() {
        let f = |v| Some(Figure::NsPerOp(v));
        assert_eq!(ratio(f(200).as_ref(), f(300).as_ref()), "1.50");
        assert_eq!(ratio(f(0).as_ref(), f(300).as_ref()), "-");
        assert_eq!(ratio(None, f(300).as_ref()), "-");
        let skip = Some(Figure::Skipped("x".into()));
        assert_eq!(ratio(f(1).as_ref(), skip.as_ref()), "-");
    }

    fn ran(figs: &[(&str, Figure)], ms: u64) -> Column {
        Column::Ran {
            report: Report {
                figures: figs
                    .iter()
                    .map(|(n, f)| (n.to_string(), f.clone()))
                    .collect(),
                done: true,
                ..Report::default()
            },
            to_bench: Some(Duration::from_millis(ms)),
            failure: None,
        }
    }

    #[test]
    fn table_lines_up_both_guests_and_ratios() {
        let skiff = ran(
            &[
                ("switch_1cpu", Figure::NsPerOp(400)),
                ("switch_2cpu", Figure::Skipped("needs-2-cpus".into())),
            ],
            300,
        );
        let linux = ran(
            &[
                ("switch_1cpu", Figure::NsPerOp(1000)),
                ("linux_only", Figure::NsPerOp(7)),
            ],
            9000,
        );
        let t = table(&skiff, &linux);
        let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0], ["benchmark", "Skiff", "Linux", "Linux/Skiff"]);
        assert_eq!(rows[1], ["switch_1cpu", "400", "1000", "2.50"]);
        assert_eq!(rows[2], ["switch_2cpu", "skipped(needs-2-cpus)", "-", "-"]);
        assert_eq!(rows[3], ["linux_only", "-", "7", "-"]);
        assert_eq!(rows[4], [BOOT_ROW, "300", "9000", "30.00"]);
        // Columns are aligned: every line has the same length.
        let lens: Vec<usize> = t.lines().map(str::len).collect();
        assert!(lens.windows(2).all(|w| w[0] == w[1]), "{t}");
    }

    #[test]
    fn missing_linux_column_is_dashes_not_numbers() {
        let skiff = ran(&[("getpid", Figure::NsPerOp(50))], 100);
        let linux = Column::Missing("offline".into());
        let t = table(&skiff, &linux);
        let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row, ["getpid", "50", "-", "-"]);
        assert_eq!(linux.problem(), Some("offline"));
    }

    /// Runs a whole suite for real on both guests (minutes under TCG), for
    /// the suites the command line does not offer yet:
    /// `SKIFF_BENCH_SUITE=syscall [SKIFF_BENCH_ARCH=aarch64] cargo test -p
    /// skiff -- --ignored --nocapture runs_a_suite_on_both_guests`.
    #[test]
    #[ignore = "boots QEMU for minutes"]
    fn runs_a_suite_on_both_guests() {
        let env = |k: &str| std::env::var(k).ok();
        let args = BenchArgs {
            suite: env("SKIFF_BENCH_SUITE").unwrap_or_else(|| "syscall".into()),
            board: env("SKIFF_BENCH_BOARD"),
            arch: env("SKIFF_BENCH_ARCH").map(|a| Arch::parse(&a).unwrap()),
            smp: 2,
            accel: crate::accel::AccelRequest::Tcg,
            conns: None,
            requests: None,
            bulk_mib: None,
        };
        assert_eq!(run(&kernel::workspace_root(), &args).unwrap(), 0);
    }
}
