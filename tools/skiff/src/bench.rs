//! `cargo skiff bench SUITE`: boots the kernel's in-guest benchmark suite
//! (`bench=SUITE` on the kernel command line) twice on one board — once
//! plainly (TCG, or KVM where it is real), once under
//! `-icount shift=0,sleep=off`, where the guest clock advances one
//! nanosecond per guest instruction so the same figures become
//! deterministic instruction counts — and prints them side by side.
//!
//! The guest prints `bench: name=NAME ops=N ns_per_op=X` (or
//! `skipped=REASON`) lines and `bench: done`; [`parse`] reads them.

use crate::accel::{self, Accel, HostFacts};
use crate::boards::{self, BootProtocol};
use crate::cli::BenchArgs;
use crate::error::{Error, Result};
use crate::kernel;
use crate::qemu::{self, AfterStatus, RunSpec};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(900);

/// One benchmark's result from one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    NsPerOp(u64),
    Skipped(String),
}

/// The `bench:` lines of a console log, in order, and whether the suite
/// finished (`bench: done`).
pub fn parse(lines: &[String]) -> (Vec<(String, Figure)>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for line in lines {
        let Some(rest) = line.trim().strip_prefix("bench: ") else {
            continue;
        };
        if rest == "done" {
            done = true;
            continue;
        }
        let mut name = None;
        let mut fig = None;
        for kv in rest.split_whitespace() {
            match kv.split_once('=') {
                Some(("name", v)) => name = Some(v.to_string()),
                Some(("ns_per_op", v)) => fig = v.parse().ok().map(Figure::NsPerOp),
                Some(("skipped", v)) => fig = Some(Figure::Skipped(v.to_string())),
                _ => {}
            }
        }
        if let (Some(n), Some(f)) = (name, fig) {
            out.push((n, f));
        }
    }
    (out, done)
}

struct Boot {
    label: String,
    figures: Vec<(String, Figure)>,
    /// Why the boot produced no figures, if it did not.
    failure: Option<String>,
}

fn show(f: Option<&Figure>) -> String {
    match f {
        Some(Figure::NsPerOp(v)) => v.to_string(),
        Some(Figure::Skipped(why)) => format!("skipped ({why})"),
        None => "-".into(),
    }
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<u8> {
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
    let kernel = kernel::build(root, board.arch, true, true)?;
    let mut cmdline = qemu::kernel_cmdline(board, false, &[])?;
    cmdline.push_str(&format!(" bench={}", args.suite));
    eprintln!(
        "skiff: bench {}: board={} smp={} kernel=release",
        args.suite, board.name, args.smp
    );
    let mut boots = Vec::new();
    for icount in [false, true] {
        let accel = if icount { Accel::Tcg } else { decision.accel };
        let spec = RunSpec {
            board,
            accel,
            smp: args.smp,
            mem_mib: board.memory_mib,
            kernel: kernel.boot_file(board).to_path_buf(),
            cmdline: cmdline.clone(),
            xen: None,
            icount,
        };
        let argv = qemu::qemu_args(&spec);
        let label = if icount {
            "icount shift=0 (instructions/op)".to_string()
        } else {
            format!("{} (ns/op)", accel.name())
        };
        eprintln!("skiff: bench: {} {}", qemu_bin.display(), argv.join(" "));
        let outcome = qemu::run(
            &qemu_bin,
            &argv,
            board.exit_device,
            TIMEOUT,
            AfterStatus::for_board(board),
            &mut |_| {},
        );
        let (figures, done) = parse(&outcome.log);
        let failure = (!done || outcome.ending.exit_status() != 0).then(|| {
            let last = outcome
                .log
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_default();
            format!(
                "boot ended with status {} before the suite finished; last line: {last}",
                outcome.ending.exit_status()
            )
        });
        boots.push(Boot {
            label,
            figures,
            failure,
        });
    }

    let names: Vec<String> = boots
        .iter()
        .flat_map(|b| b.figures.iter().map(|(n, _)| n.clone()))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    println!(
        "{:<24} {:>22} {:>34}",
        "benchmark", boots[0].label, boots[1].label
    );
    for n in &names {
        let col = |b: &Boot| show(b.figures.iter().find(|(m, _)| m == n).map(|(_, f)| f));
        println!("{:<24} {:>22} {:>34}", n, col(&boots[0]), col(&boots[1]));
    }
    let mut status = 0;
    for b in &boots {
        if let Some(why) = &b.failure {
            println!("note: {}: {why}", b.label);
            status = 1;
        }
    }
    // The plain boot must succeed; an icount failure is reported (QEMU's
    // x86 icount refuses some timer reads) but is not this kernel's error.
    if boots[0].failure.is_none() {
        status = 0;
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_figures_skips_and_done() {
        let log: Vec<String> = [
            "skiff: booting",
            "bench: suite=sched cpus=1",
            "bench: name=switch_1cpu ops=4000 ns_per_op=12667",
            "bench: name=switch_2cpu skipped=needs-2-cpus",
            "bench: name=broken ns_per_op=x",
            "bench: done",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (figs, done) = parse(&log);
        assert!(done);
        assert_eq!(
            figs,
            [
                ("switch_1cpu".to_string(), Figure::NsPerOp(12667)),
                (
                    "switch_2cpu".to_string(),
                    Figure::Skipped("needs-2-cpus".into())
                ),
            ]
        );
        assert!(!parse(&log[..3]).1, "no done line");
    }
}
