//! `skiff`, the Skiff host tool (`cargo skiff ...`): builds the kernel for a
//! board, boots it under QEMU with the console streamed and backtraces
//! symbolised, exits with the guest's status; runs Linux programs (packed
//! with their libraries into an initramfs, see [`app`]); and runs the test
//! suite (host tests, the boot matrix from `boards/`, the Linux conformance
//! suite of `tests/linux`).

mod accel;
mod app;
mod bench;
mod bench_net;
mod boards;
mod cli;
mod console;
mod cpio;
mod disk;
mod elfinfo;
mod error;
mod kernel;
mod linux_guest;
mod linux_suite;
mod matrix;
mod netopts;
mod nettest;
mod qemu;
mod relay;
mod symbols;
mod sysroot;
mod xen;

use crate::accel::HostFacts;
use crate::boards::{Board, BootProtocol};
use crate::cli::{Command, RunArgs};
use crate::error::Result;
use crate::qemu::{AfterStatus, RunSpec};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Default `run` timeout when none is given and no tests are asked for.
const RUN_TIMEOUT_SECS: u64 = 600;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(args).and_then(dispatch) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("skiff: error: {e}");
            ExitCode::from(qemu::STATUS_HOST_ERROR)
        }
    }
}

fn dispatch(cmd: Command) -> Result<u8> {
    let root = kernel::workspace_root();
    match cmd {
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(0)
        }
        Command::Boards => {
            for b in boards::load_dir(&root.join("boards"))? {
                let default = if b.default { " (default)" } else { "" };
                println!(
                    "{:<22} {:<8} {}{default}",
                    b.name,
                    b.arch.name(),
                    b.description
                );
            }
            Ok(0)
        }
        Command::Run(r) => run(&root, &r),
        Command::Bench(b) => bench::run(&root, &b),
        Command::Test(t) => {
            let boards = boards::load_dir(&root.join("boards"))?;
            matrix::run(&root, &boards, &t)
        }
    }
}

/// Packs the program named after `--` for `board` and writes the
/// initramfs; `Ok(Err(status))` when the program cannot run (reported).
fn pack_program(
    root: &Path,
    board: &Board,
    r: &RunArgs,
) -> Result<std::result::Result<(app::Packed, PathBuf), u8>> {
    if board.boot == BootProtocol::XenDom0less {
        eprintln!(
            "skiff: error: board {} boots Skiff as a Xen dom0less guest, which has no initramfs yet; use a qemu-* board",
            board.name
        );
        return Ok(Err(qemu::STATUS_HOST_ERROR));
    }
    let req = app::Request {
        arch: board.arch,
        sysroot: r
            .sysroot
            .clone()
            .unwrap_or_else(|| sysroot::Root::default_dir(board.arch)),
        argv: &r.app,
        env: &r.env,
        adds: &r.adds,
        strace: r.strace,
    };
    let packed = match app::pack(&req) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skiff: error: {e}");
            return Ok(Err(qemu::STATUS_HOST_ERROR));
        }
    };
    let dir = matrix::target_dir(root).join("skiff-run");
    std::fs::create_dir_all(&dir).map_err(error::Error::io(&dir))?;
    let path = dir.join(format!("initrd-{}.cpio", std::process::id()));
    std::fs::write(&path, &packed.initrd).map_err(error::Error::io(&path))?;
    Ok(Ok((packed, path)))
}

fn run(root: &Path, r: &RunArgs) -> Result<u8> {
    let all = boards::load_dir(&root.join("boards"))?;
    let board: &Board = boards::select(&all, r.board.as_deref(), r.arch)?;
    // `--kopt` words join the board's kernel options.
    let with_kopts;
    let board: &Board = if r.kopts.is_empty() {
        board
    } else {
        with_kopts = Board {
            cmdline: format!("{} {}", board.cmdline, r.kopts.join(" ")),
            ..board.clone()
        };
        &with_kopts
    };
    // The program is checked and packed before anything is built or booted.
    let program = if r.ktest || r.app.is_empty() {
        None
    } else {
        match pack_program(root, board, r)? {
            Ok(p) => Some(p),
            Err(status) => return Ok(status),
        }
    };
    let decision = accel::decide(r.accel, HostFacts::probe(), board)?;
    if decision.warn_pvm {
        eprintln!("skiff: warning: /dev/kvm is the software kvm_pvm module; expect this to be slower than TCG");
    }
    let qemu_bin = qemu::require_qemu(board)?;
    let kernel = match &r.kernel {
        Some(elf) => kernel::prebuilt(root, board.arch, elf.clone())?,
        None => kernel::build(root, board.arch, r.release, true)?,
    };
    let smp = r.smp.unwrap_or(1);
    let mem = r.mem_mib.unwrap_or(board.memory_mib);
    let cmdline = match &program {
        Some((packed, _)) => match packed.launch.cmdline_words() {
            Ok(words) => qemu::app_cmdline(board, &words),
            Err(e) => {
                eprintln!("skiff: error: {e}");
                return Ok(qemu::STATUS_HOST_ERROR);
            }
        },
        None => qemu::kernel_cmdline(board, r.ktest, &r.app)?,
    };
    let cmdline = match (&program, &r.ktest_filter) {
        (None, Some(f)) if r.app.is_empty() => format!("{cmdline} ktest.filter={f}"),
        _ => cmdline,
    };
    let boot_file = kernel.boot_file(board).to_path_buf();
    let xen = match board.boot {
        BootProtocol::XenDom0less => Some(xen::prepare(
            root, board, &qemu_bin, &boot_file, smp, mem, &cmdline,
        )?),
        _ => None,
    };
    let spec = RunSpec {
        board,
        accel: decision.accel,
        smp,
        mem_mib: mem,
        kernel: boot_file,
        cmdline,
        xen,
        icount: false,
    };
    let mut argv = qemu::qemu_args(&spec);
    // TCP forwards go through a relay: QEMU's own forward listens with a
    // backlog of 1 and loses connections opened in a burst.
    let mut forwards = r.forwards.clone();
    let _relays = relay::relay_forwards(&mut forwards).map_err(error::Error::Usage)?;
    netopts::apply(board, &r.net, &forwards, &mut argv)?;
    // `--disk`: the files go on a virtio disk holding an image file
    // system; otherwise in an initramfs.
    let disk_image = match &program {
        Some((packed, initrd)) if r.disk => {
            Some(disk::attach(root, board, packed, initrd, &mut argv)?)
        }
        _ => None,
    };
    if let Some((packed, initrd)) = &program {
        if disk_image.is_none() {
            qemu::add_initrd(&mut argv, initrd);
        }
        eprintln!(
            "skiff: app path={} interp={} libraries={} files={} initrd={}KiB",
            packed.launch.path,
            packed.interp.as_deref().unwrap_or("none"),
            packed.libraries.len(),
            packed.file_count,
            packed.initrd.len().div_ceil(1024)
        );
        if packed.initrd.len() as u64 > u64::from(mem) * 1024 * 1024 / 4 {
            eprintln!(
                "skiff: warning: the initramfs is over a quarter of guest memory ({mem} MiB); consider --mem"
            );
        }
    }
    eprintln!(
        "skiff: board={} arch={} smp={smp} mem={mem}MiB",
        board.name, board.arch
    );
    eprintln!(
        "skiff: accel={} ({})",
        decision.accel.name(),
        decision.reason
    );
    eprintln!(
        "skiff: {} {}",
        qemu_bin.display(),
        matrix::shell_words(&argv)
    );

    let symbols = symbols::Symbols::load(&kernel.elf, root).unwrap_or_else(|e| {
        eprintln!("skiff: warning: backtraces will not be symbolised: {e}");
        symbols::Symbols::default()
    });
    let timeout = r.timeout_secs.unwrap_or(if r.ktest {
        board.test.timeout_secs
    } else {
        RUN_TIMEOUT_SECS
    });
    let after = AfterStatus::for_board(board);
    let mut stdout = std::io::stdout();
    let outcome = qemu::run(
        &qemu_bin,
        &argv,
        board.exit_device,
        Duration::from_secs(timeout),
        after,
        &mut |line| {
            let shown = symbols.annotate(line);
            let _ = writeln!(stdout, "{}", shown.as_deref().unwrap_or(line));
            let _ = stdout.flush();
        },
    );
    if let Some(x) = &spec.xen {
        xen::cleanup(x);
    }
    if let Some((_, initrd)) = &program {
        let _ = std::fs::remove_file(initrd);
    }
    if let Some(image) = &disk_image {
        let _ = std::fs::remove_file(image);
    }
    if let Some(msg) = outcome.ending.explain() {
        eprintln!("skiff: {msg}");
    }
    Ok(outcome.ending.exit_status())
}
