//! `cargo skiff test`: host tests, then the boot matrix, then the Linux
//! conformance suite ([`crate::linux_suite`]). Every board in `boards/`
//! boots with `ktest=1` on each of its `test.smp` counts; each boot is
//! judged from its console (platform line field by field, ktest summary,
//! exit status). One line per case, then `N passed, M failed`.

use crate::accel::{self, Accel, AccelRequest, HostFacts};
use crate::boards::{Arch, Board, BootProtocol};
use crate::cli::TestArgs;
use crate::console::PlatformLine;
use crate::error::{Error, Result};
use crate::kernel::{self, Kernel};
use crate::qemu::{self, AfterStatus, Ending, Outcome, RunSpec};
use crate::xen;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Workspace crates that build only for the kernel targets; every other
/// member (a new crate included) runs its `cargo test` on the host.
pub const TARGET_ONLY_CRATES: &[&str] = &["skiff-arch-x86_64", "skiff-arch-aarch64"];

/// Allowed distance between the memory the guest reports and what it was given.
const MEM_TOLERANCE: f64 = 0.05;

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(Vec<String>),
    Skip(String),
}

/// One boot of the matrix.
#[derive(Debug, Clone)]
struct Case<'a> {
    board: &'a Board,
    smp: u32,
    accel: AccelRequest,
}

impl Case<'_> {
    fn name(&self) -> String {
        format!("{} smp={}", self.board.name, self.smp)
    }
}

/// The accelerators a board is tested under: with `--accel auto`, TCG
/// always and KVM too where auto would pick it (real KVM, same arch), so a
/// KVM host tests both; otherwise the one asked for.
fn case_accels(request: AccelRequest, facts: HostFacts, board: &Board) -> Vec<AccelRequest> {
    match request {
        AccelRequest::Auto => match accel::decide(AccelRequest::Auto, facts, board) {
            Ok(d) if d.accel == Accel::Kvm => vec![AccelRequest::Tcg, AccelRequest::Kvm],
            _ => vec![AccelRequest::Tcg],
        },
        other => vec![other],
    }
}

/// Judges one boot's console against the board's expectations. Pure, so
/// the assertions themselves are host-tested.
pub fn evaluate(
    board: &Board,
    smp: u32,
    accel: Accel,
    qemu_mem_mib: u32,
    outcome: &Outcome,
) -> Vec<String> {
    let mut failures = Vec::new();
    match &outcome.ending {
        Ending::Status {
            status: 0,
            mismatch: None,
            ..
        } => {}
        Ending::Status {
            status,
            mismatch: Some(m),
            ..
        } => failures.push(format!("status {status}; {m}")),
        Ending::Status { status, .. } => failures.push(format!("exit status {status}, expected 0")),
        other => failures.push(other.explain().unwrap_or_default()),
    }
    match &outcome.platform {
        None => failures.push("no `platform:` line".into()),
        Some((Err(e), _)) => failures.push(e.to_string()),
        Some((Ok(p), _)) => failures.extend(check_platform(board, smp, accel, qemu_mem_mib, p)),
    }
    match outcome.ktest {
        None => failures.push("no `ktest: N passed, M failed` line".into()),
        Some(k) if k.failed > 0 => failures.push(format!("ktest: {k}")),
        Some(k) if k.passed == 0 => failures.push("ktest: no test ran".into()),
        Some(_) => {}
    }
    failures
}

/// The platform line's fields against the board.
pub fn check_platform(
    board: &Board,
    smp: u32,
    accel: Accel,
    qemu_mem_mib: u32,
    p: &PlatformLine,
) -> Vec<String> {
    let mut f = Vec::new();
    if p.arch != board.arch.name() {
        f.push(format!("platform arch={}, expected {}", p.arch, board.arch));
    }
    let want_hv = board.expected_hypervisor(accel == Accel::Kvm);
    if p.hypervisor != want_hv {
        f.push(format!(
            "platform hypervisor={}, expected {want_hv}",
            p.hypervisor
        ));
    }
    if p.cpus != smp {
        f.push(format!("platform cpus={}, expected {smp}", p.cpus));
    }
    let given = f64::from(board.guest_memory_mib(qemu_mem_mib));
    let seen = p.mem_mib as f64;
    if (seen - given).abs() > given * MEM_TOLERANCE {
        f.push(format!(
            "platform mem={}MiB, expected {given}MiB +/- {}%",
            p.mem_mib,
            MEM_TOLERANCE * 100.0
        ));
    }
    f
}

/// Where a case's full console log is written.
fn log_dir(root: &Path) -> PathBuf {
    target_dir(root).join("skiff-test")
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`), where
/// the tool keeps logs, initramfs files and built test programs.
pub fn target_dir(root: &Path) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    if target.is_relative() {
        root.join(target)
    } else {
        target
    }
}

/// Runs the host tests; true when they passed.
fn host_tests(root: &Path) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root).args(["test", "--workspace"]);
    for c in TARGET_ONLY_CRATES {
        cmd.args(["--exclude", c]);
    }
    eprintln!(
        "skiff: test: {cargo} test --workspace --exclude {}",
        TARGET_ONLY_CRATES.join(" --exclude ")
    );
    cmd.status().map(|s| s.success()).unwrap_or_else(|e| {
        eprintln!("skiff: test: cannot run {cargo}: {e}");
        false
    })
}

/// Runs the loom models of the kernel's lock-free code (`--cfg loom`),
/// in a target subdirectory of its own so the different flags do not
/// invalidate the main build; true when they passed.
fn loom_tests(root: &Path) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = log_dir(root).with_file_name("loom");
    eprintln!(
        "skiff: test: RUSTFLAGS=--cfg loom {cargo} test -p skiff-kernel --release --lib loom"
    );
    Command::new(&cargo)
        .current_dir(root)
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", &target)
        .args(["test", "-p", "skiff-kernel", "--release", "--lib", "loom"])
        .status()
        .map(|s| s.success())
        .unwrap_or_else(|e| {
            eprintln!("skiff: test: cannot run {cargo}: {e}");
            false
        })
}

struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Skip(_) => self.skipped += 1,
        }
    }
}

/// `cargo skiff test`. Returns the process exit status (0: all passed).
pub fn run(root: &Path, boards: &[Board], args: &TestArgs) -> Result<u8> {
    let started = Instant::now();
    let mut tally = Tally {
        passed: 0,
        failed: 0,
        skipped: 0,
    };
    if args.host {
        let v = if host_tests(root) {
            Verdict::Pass
        } else {
            Verdict::Fail(vec!["cargo test failed".into()])
        };
        println!("{} host: cargo test", word(&v));
        tally.add(&v);
        let v = if loom_tests(root) {
            Verdict::Pass
        } else {
            Verdict::Fail(vec!["loom models failed".into()])
        };
        println!("{} host: loom models", word(&v));
        tally.add(&v);
    }
    if args.boot {
        let selected: Vec<&Board> = if args.boards.is_empty() {
            boards.iter().collect()
        } else {
            args.boards
                .iter()
                .map(|n| {
                    boards
                        .iter()
                        .find(|b| &b.name == n)
                        .ok_or_else(|| Error::UnknownBoard(n.clone()))
                })
                .collect::<Result<_>>()?
        };
        boot_matrix(root, &selected, args, &mut tally);
    }
    if args.linux {
        for v in crate::linux_suite::run(root, boards, args) {
            tally.add(&v);
        }
    }
    if args.net {
        for v in crate::nettest::run(root, boards, args) {
            tally.add(&v);
        }
    }
    println!(
        "skiff: test: finished in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if tally.skipped > 0 {
        println!(
            "{} passed, {} failed, {} skipped",
            tally.passed, tally.failed, tally.skipped
        );
    } else {
        println!("{} passed, {} failed", tally.passed, tally.failed);
    }
    Ok(u8::from(tally.failed > 0))
}

fn word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail(_) => "FAIL",
        Verdict::Skip(_) => "SKIP",
    }
}

fn boot_matrix(root: &Path, boards: &[&Board], args: &TestArgs, tally: &mut Tally) {
    // One kernel build per arch, shared by its boards.
    let mut kernels: BTreeMap<&'static str, Result<Kernel>> = BTreeMap::new();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        if boards.iter().any(|b| b.arch == arch) {
            eprintln!("skiff: test: building the kernel for {arch}");
            kernels.insert(arch.name(), kernel::build(root, arch, args.release, false));
        }
    }
    let facts = HostFacts::probe();
    let cases: Vec<Case> = boards
        .iter()
        .flat_map(|b| {
            let accels = case_accels(args.accel, facts, b);
            b.test.smp.iter().flat_map(move |&smp| {
                accels.clone().into_iter().map(move |accel| Case {
                    board: b,
                    smp,
                    accel,
                })
            })
        })
        .collect();
    let logs = log_dir(root);
    if let Err(e) = std::fs::create_dir_all(&logs) {
        eprintln!("skiff: test: cannot create {}: {e}", logs.display());
    }
    let next = AtomicUsize::new(0);
    // Held while a case prints, so report lines never interleave.
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(cases.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let kernel = &kernels[case.board.arch.name()];
                let (verdict, line, tail) = run_case(root, case, kernel, facts, &logs);
                let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
                println!("{line}");
                for l in &tail {
                    println!("    | {l}");
                }
                results.push(verdict);
            });
        }
    });
    for v in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        tally.add(&v);
    }
}

/// Boots one case; returns the verdict, its report line and, on failure,
/// the tail of the console.
fn run_case(
    root: &Path,
    case: &Case,
    kernel: &Result<Kernel>,
    facts: HostFacts,
    logs: &Path,
) -> (Verdict, String, Vec<String>) {
    let board = case.board;
    let fail_early = |reason: String| {
        let v = Verdict::Fail(vec![reason.clone()]);
        (v, format!("FAIL {}: {reason}", case.name()), Vec::new())
    };
    let kernel = match kernel {
        Ok(k) => k,
        Err(e) => return fail_early(format!("kernel build: {e}")),
    };
    let decision = match accel::decide(case.accel, facts, board) {
        Ok(d) => d,
        Err(e) => return fail_early(e.to_string()),
    };
    let qemu_bin = match qemu::require_qemu(board) {
        Ok(q) => q,
        Err(e) => return fail_early(e.to_string()),
    };
    let cmdline = match qemu::kernel_cmdline(board, true, &[]) {
        Ok(c) => c,
        Err(e) => return fail_early(e.to_string()),
    };
    let mem = board.memory_mib;
    let boot_file = kernel.boot_file(board).to_path_buf();
    let xen = if board.boot == BootProtocol::XenDom0less {
        match xen::prepare(root, board, &qemu_bin, &boot_file, case.smp, mem, &cmdline) {
            Ok(x) => Some(x),
            Err(Error::XenUnavailable(why)) => {
                let line = format!("SKIP {}: {why}", case.name());
                return (Verdict::Skip(why), line, Vec::new());
            }
            Err(e) => return fail_early(e.to_string()),
        }
    } else {
        None
    };
    let spec = RunSpec {
        board,
        accel: decision.accel,
        smp: case.smp,
        mem_mib: mem,
        kernel: boot_file,
        cmdline,
        xen,
        icount: board.test.icount,
    };
    let argv = qemu::qemu_args(&spec);
    let after = AfterStatus::for_board(board);
    let outcome = qemu::run(
        &qemu_bin,
        &argv,
        board.exit_device,
        Duration::from_secs(board.test.timeout_secs),
        after,
        &mut |_| {},
    );
    if let Some(x) = &spec.xen {
        xen::cleanup(x);
    }
    let log_path = logs.join(format!(
        "{}-smp{}-{}.log",
        board.name,
        case.smp,
        decision.accel.name()
    ));
    let mut log = format!("$ {} {}\n", qemu_bin.display(), shell_words(&argv));
    for l in &outcome.log {
        log.push_str(l);
        log.push('\n');
    }
    let _ = std::fs::write(&log_path, log);
    let failures = evaluate(board, case.smp, decision.accel, mem, &outcome);
    let to_platform = outcome
        .platform
        .as_ref()
        .map_or("-".to_string(), |(_, t)| format!("{:.2}s", t.as_secs_f64()));
    let icount = if spec.icount && decision.accel == Accel::Tcg {
        "+icount"
    } else {
        ""
    };
    let head = format!(
        "{} accel={}{icount} platform={to_platform} total={:.2}s",
        case.name(),
        decision.accel.name(),
        outcome.elapsed.as_secs_f64()
    );
    if failures.is_empty() {
        (Verdict::Pass, format!("PASS {head}"), Vec::new())
    } else {
        let line = format!(
            "FAIL {head}: {} (log: {})",
            failures.join("; "),
            log_path.display()
        );
        let tail = outcome.log.iter().rev().take(25).rev().cloned().collect();
        (Verdict::Fail(failures), line, tail)
    }
}

/// An argv as a shell would need it typed (for logs and `skiff run`'s echo).
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=,./:@+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::load_dir;
    use crate::console::KtestSummary;

    fn board(name: &str) -> Board {
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards"))
            .unwrap()
            .into_iter()
            .find(|b| b.name == name)
            .unwrap()
    }

    fn outcome(platform: &str, ktest: Option<(u32, u32)>, ending: Ending) -> Outcome {
        Outcome {
            ending,
            platform: PlatformLine::parse(platform).map(|p| (p, Duration::from_millis(100))),
            ktest: ktest.map(|(passed, failed)| KtestSummary { passed, failed }),
            log: Vec::new(),
            elapsed: Duration::from_secs(1),
        }
    }

    const OK: Ending = Ending::Status {
        status: 0,
        qemu_code: Some(1),
        mismatch: None,
    };
    const Q35: &str =
        "platform: arch=x86_64 hypervisor=tcg firmware=acpi clock=tsc cpus=4 mem=510MiB";

    #[test]
    fn good_boot_passes() {
        let b = board("qemu-x86_64");
        assert_eq!(
            evaluate(&b, 4, Accel::Tcg, 512, &outcome(Q35, Some((9, 0)), OK)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_wrong_field_fails() {
        let b = board("qemu-x86_64");
        let cases = [
            (Q35.replace("arch=x86_64", "arch=aarch64"), "arch"),
            (
                Q35.replace("hypervisor=tcg", "hypervisor=kvm"),
                "hypervisor",
            ),
            (Q35.replace("cpus=4", "cpus=1"), "cpus"),
            (Q35.replace("mem=510MiB", "mem=480MiB"), "mem"),
            (Q35.replace("mem=510MiB", "mem=540MiB"), "mem"),
            (Q35.replace(" clock=tsc", ""), "clock"),
        ];
        for (line, what) in cases {
            let f = evaluate(&b, 4, Accel::Tcg, 512, &outcome(&line, Some((9, 0)), OK));
            assert_eq!(f.len(), 1, "{line}: {f:?}");
            assert!(f[0].contains(what), "{f:?}");
        }
        // Under KVM the same board expects hypervisor=kvm.
        let f = evaluate(&b, 4, Accel::Kvm, 512, &outcome(Q35, Some((9, 0)), OK));
        assert!(f[0].contains("expected kvm"), "{f:?}");
    }

    #[test]
    fn ktest_and_status_failures() {
        let b = board("qemu-x86_64");
        let f = evaluate(&b, 4, Accel::Tcg, 512, &outcome(Q35, Some((9, 1)), OK));
        assert_eq!(f, ["ktest: 9 passed, 1 failed"]);
        let f = evaluate(&b, 4, Accel::Tcg, 512, &outcome(Q35, Some((0, 0)), OK));
        assert_eq!(f, ["ktest: no test ran"]);
        let f = evaluate(&b, 4, Accel::Tcg, 512, &outcome(Q35, None, OK));
        assert!(f[0].contains("no `ktest"));
        let f = evaluate(
            &b,
            4,
            Accel::Tcg,
            512,
            &outcome("", None, Ending::Timeout { secs: 60 }),
        );
        assert_eq!(f.len(), 3);
        assert!(f[0].starts_with("timeout"));
        let panic = Ending::Status {
            status: 255,
            qemu_code: Some(255),
            mismatch: None,
        };
        let f = evaluate(&b, 4, Accel::Tcg, 512, &outcome(Q35, Some((1, 0)), panic));
        assert_eq!(f, ["exit status 255, expected 0"]);
    }

    #[test]
    fn xen_memory_is_the_domus() {
        let b = board("xen-aarch64");
        let line =
            "platform: arch=aarch64 hypervisor=xen firmware=dt clock=cntvct cpus=1 mem=256MiB";
        let ok = Ending::Status {
            status: 0,
            qemu_code: None,
            mismatch: None,
        };
        assert!(evaluate(&b, 1, Accel::Tcg, 1024, &outcome(line, Some((3, 0)), ok)).is_empty());
    }

    #[test]
    fn kvm_hosts_test_both_accelerators() {
        let b = board("qemu-x86_64");
        let real = HostFacts {
            host_arch: Some(crate::boards::Arch::X86_64),
            kvm_usable: true,
            kvm_pvm: false,
        };
        assert_eq!(
            case_accels(AccelRequest::Auto, real, &b),
            [AccelRequest::Tcg, AccelRequest::Kvm]
        );
        let pvm = HostFacts {
            kvm_pvm: true,
            ..real
        };
        assert_eq!(
            case_accels(AccelRequest::Auto, pvm, &b),
            [AccelRequest::Tcg]
        );
        assert_eq!(case_accels(AccelRequest::Kvm, pvm, &b), [AccelRequest::Kvm]);
        let arm = board("qemu-aarch64");
        assert_eq!(
            case_accels(AccelRequest::Auto, real, &arm),
            [AccelRequest::Tcg]
        );
    }

    #[test]
    fn shell_quoting() {
        let a: Vec<String> = ["-M", "q35", "type=1,manufacturer=VMware,, Inc.", "it's"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            shell_words(&a),
            "-M q35 'type=1,manufacturer=VMware,, Inc.' 'it'\\''s'"
        );
    }
}
