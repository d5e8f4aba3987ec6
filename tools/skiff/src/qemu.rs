//! Building QEMU's command line from a board and running it: always under a
//! deadline, console streamed line by line, the guest's exit status read
//! from its final `skiff: exit status=N` line and cross-checked with QEMU's
//! own exit code where the board has an exit device.

use crate::accel::Accel;
use crate::boards::{Arch, Board, BootProtocol, ExitDevice};
use crate::console::{self, KtestSummary, PlatformLine, PlatformLineError};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Host-side statuses (documented in docs/exit-status.md). Guest statuses
/// are whatever the guest said, 255 for a kernel panic.
pub const STATUS_TIMEOUT: u8 = 124;
pub const STATUS_HOST_ERROR: u8 = 125;
pub const STATUS_NO_STATUS_LINE: u8 = 126;

/// How long QEMU may take to leave after the guest's status line.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Files a Xen boot needs besides the Skiff `Image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenFiles {
    pub hypervisor: PathBuf,
    pub dtb: PathBuf,
}

/// Everything one QEMU invocation is built from.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub board: &'a Board,
    pub accel: Accel,
    pub smp: u32,
    pub mem_mib: u32,
    /// The ELF (x86_64 PVH) or the flat `Image` (aarch64).
    pub kernel: PathBuf,
    pub cmdline: String,
    pub xen: Option<XenFiles>,
    /// `-icount shift=0,sleep=off`: one guest nanosecond per instruction,
    /// idle time skipped (TCG only; ignored under KVM).
    pub icount: bool,
}

/// Whether the kernel should be told `debug_exit=1` for this board.
pub fn wants_debug_exit(board: &Board) -> bool {
    board.exit_device != ExitDevice::None
}

/// The kernel command line: board defaults, `ktest=1`, `debug_exit=1` when
/// the board has an exit device, then ` -- ` and the app's argv. Arguments
/// with spaces are double-quoted (the kernel's parser removes the quotes).
pub fn kernel_cmdline(board: &Board, ktest: bool, app: &[String]) -> Result<String> {
    let mut words: Vec<String> = board
        .cmdline
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if ktest {
        words.push("ktest=1".into());
    }
    if wants_debug_exit(board) {
        words.push("debug_exit=1".into());
    }
    if !app.is_empty() {
        words.push("--".into());
        for arg in app {
            if arg.contains('"') {
                return Err(Error::UnquotableArg(arg.clone()));
            }
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                words.push(format!("\"{arg}\""));
            } else {
                words.push(arg.clone());
            }
        }
    }
    Ok(words.join(" "))
}

/// The kernel command line for running a program: board defaults,
/// `debug_exit=1` when the board has an exit device, then the program's
/// words ([`crate::app::Launch::cmdline_words`], already quoted).
pub fn app_cmdline(board: &Board, words: &[String]) -> String {
    let mut all: Vec<String> = board
        .cmdline
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if wants_debug_exit(board) {
        all.push("debug_exit=1".into());
    }
    all.extend(words.iter().cloned());
    all.join(" ")
}

/// Adds the initramfs: QEMU hands it over as the PVH start_info's first
/// module (x86_64) or as the DT's `/chosen/linux,initrd-{start,end}`
/// (aarch64 `virt`); the kernel finds it in `BootInfo::initrd`.
pub fn add_initrd(args: &mut Vec<String>, initrd: &Path) {
    args.push("-initrd".into());
    args.push(initrd.display().to_string());
}

/// QEMU's argv (without the program name) for `spec`.
pub fn qemu_args(spec: &RunSpec) -> Vec<String> {
    let b = spec.board;
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-M", &b.machine]);
    push(&["-accel", spec.accel.name()]);
    let icount = spec.icount && spec.accel == Accel::Tcg;
    if icount {
        push(&["-icount", "shift=0,sleep=off"]);
    }
    let mut cpu = match spec.accel {
        Accel::Kvm => b.kvm_cpu.clone(),
        Accel::Tcg => b.cpu.clone(),
    };
    if icount && b.arch == Arch::X86_64 {
        // QEMU's x86 icount aborts ("Bad icount read") when the x2APIC timer
        // is read through rdmsr, which TCG does not treat as I/O; the
        // xAPIC's MMIO registers are fine.
        cpu.push_str(",-x2apic");
    }
    push(&["-cpu", &cpu]);
    push(&[
        "-smp",
        &spec.smp.to_string(),
        "-m",
        &format!("{}M", spec.mem_mib),
    ]);
    push(&[
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]);
    match b.exit_device {
        ExitDevice::IsaDebugExit => push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]),
        ExitDevice::Semihosting => push(&["-semihosting-config", "enable=on,target=native"]),
        ExitDevice::None => {}
    }
    a.extend(b.args.iter().cloned());
    let kernel = spec.kernel.display().to_string();
    match (b.boot, &spec.xen) {
        (BootProtocol::XenDom0less, Some(xen)) => {
            let addr = b.xen.as_ref().map_or(0, |x| x.kernel_addr);
            a.extend([
                "-kernel".into(),
                xen.hypervisor.display().to_string(),
                "-dtb".into(),
                xen.dtb.display().to_string(),
                "-device".into(),
                format!("loader,file={kernel},addr={addr:#x},force-raw=on"),
            ]);
        }
        _ => a.extend([
            "-kernel".into(),
            kernel,
            "-append".into(),
            spec.cmdline.clone(),
        ]),
    }
    a
}

/// The Debian package that provides a QEMU binary.
pub fn debian_package(qemu: &str) -> &'static str {
    match qemu {
        "qemu-system-x86_64" | "qemu-system-i386" => "qemu-system-x86",
        "qemu-system-aarch64" | "qemu-system-arm" => "qemu-system-arm",
        _ => "qemu-system",
    }
}

/// Finds `name` in PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Checks the board's QEMU is installed, naming the package if not.
pub fn require_qemu(board: &Board) -> Result<PathBuf> {
    find_in_path(&board.qemu).ok_or_else(|| Error::QemuMissing {
        binary: board.qemu.clone(),
        package: debian_package(&board.qemu).to_string(),
    })
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The guest printed its status line.
    Status {
        status: u8,
        /// QEMU's exit code when it ended by itself (None if we stopped it).
        qemu_code: Option<i32>,
        /// The exit device's code disagrees with the console line.
        mismatch: Option<String>,
    },
    /// The deadline passed; QEMU was killed.
    Timeout { secs: u64 },
    /// QEMU ended (or was stopped) without the guest's status line.
    NoStatusLine { qemu_code: Option<i32> },
    /// QEMU could not be started.
    SpawnFailed(String),
}

impl Ending {
    /// The status `skiff run` exits with.
    pub fn exit_status(&self) -> u8 {
        match self {
            Ending::Status { status, .. } => *status,
            Ending::Timeout { .. } => STATUS_TIMEOUT,
            Ending::NoStatusLine { .. } => STATUS_NO_STATUS_LINE,
            Ending::SpawnFailed(_) => STATUS_HOST_ERROR,
        }
    }

    /// One line for humans, or None for a clean guest status.
    pub fn explain(&self) -> Option<String> {
        match self {
            Ending::Status { mismatch: Some(m), .. } => Some(format!("warning: {m}")),
            Ending::Status { .. } => None,
            Ending::Timeout { secs } => Some(format!(
                "timeout: the guest did not finish within {secs} s; QEMU was killed (status {STATUS_TIMEOUT})"
            )),
            Ending::NoStatusLine { qemu_code } => Some(format!(
                "the guest stopped without printing `{}N` (QEMU exit code {}); status {STATUS_NO_STATUS_LINE}",
                console::STATUS_LINE_PREFIX,
                qemu_code.map_or("none (killed)".to_string(), |c| c.to_string())
            )),
            Ending::SpawnFailed(e) => Some(format!("cannot start QEMU: {e}")),
        }
    }
}

/// Cross-checks the console status with QEMU's exit code for `device`.
pub fn check_exit_code(device: ExitDevice, status: u8, qemu_code: Option<i32>) -> Option<String> {
    let code = qemu_code?;
    let expected = match device {
        // QEMU exits with `(status << 1) | 1`; the OS keeps the low 8 bits.
        ExitDevice::IsaDebugExit => ((i32::from(status) << 1) | 1) & 0xff,
        ExitDevice::Semihosting => i32::from(status),
        ExitDevice::None => return None,
    };
    (code != expected).then(|| {
        format!(
            "the guest printed status {status} but QEMU exited {code} (the {device:?} exit device should give {expected})"
        )
    })
}

/// Everything observed in one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ending: Ending,
    /// The first `platform:` line and when it arrived after QEMU started.
    pub platform: Option<(Result<PlatformLine, PlatformLineError>, Duration)>,
    pub ktest: Option<KtestSummary>,
    /// Every console line (stdout and QEMU's stderr, in arrival order).
    pub log: Vec<String>,
    pub elapsed: Duration,
}

/// How a run is stopped once the guest's status line appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStatus {
    /// Wait (up to a grace period) for QEMU to exit through the exit device.
    WaitForQemu,
    /// Stop QEMU at once: the guest's host (Xen) idles after it powers off.
    Stop,
}

impl AfterStatus {
    /// Boards with an exit device let QEMU end itself; others are stopped.
    pub fn for_board(board: &Board) -> AfterStatus {
        match board.exit_device {
            ExitDevice::None => AfterStatus::Stop,
            ExitDevice::IsaDebugExit | ExitDevice::Semihosting => AfterStatus::WaitForQemu,
        }
    }
}

enum Event {
    Line(String),
    Eof,
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<Event>, prefix: &'static str) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = format!("{prefix}{}", text.trim_end_matches(['\n', '\r']));
                    if tx.send(Event::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::Eof);
    });
}

/// Runs `program args` under `timeout`, calling `on_line` for every console
/// line as it arrives (QEMU's stderr lines are prefixed `qemu: `).
pub fn run(
    program: &Path,
    args: &[String],
    device: ExitDevice,
    timeout: Duration,
    after_status: AfterStatus,
    on_line: &mut dyn FnMut(&str),
) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome {
        ending: Ending::NoStatusLine { qemu_code: None },
        platform: None,
        ktest: None,
        log: Vec::new(),
        elapsed: Duration::ZERO,
    };
    // QEMU inherits the open-file limit: a socket per forwarded connection.
    crate::netopts::raise_nofile_limit();
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            outcome.ending = Ending::SpawnFailed(format!("{}: {e}", program.display()));
            return outcome;
        }
    };
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        forward(out, tx.clone(), "");
    }
    if let Some(err) = child.stderr.take() {
        forward(err, tx, "qemu: ");
    }

    let deadline = start + timeout;
    let mut open_streams = 2;
    let mut status: Option<u8> = None;
    let mut stop_by: Option<Instant> = None;
    let mut stopped_by_us = false;
    let mut timed_out = false;
    while open_streams > 0 {
        let limit = stop_by.map_or(deadline, |s| s.min(deadline));
        let now = Instant::now();
        if now >= limit {
            let _ = child.kill();
            stopped_by_us = true;
            timed_out = status.is_none();
            break;
        }
        match rx.recv_timeout(limit - now) {
            Ok(Event::Line(line)) => {
                on_line(&line);
                if outcome.platform.is_none() {
                    if let Some(p) = PlatformLine::parse(&line) {
                        outcome.platform = Some((p, start.elapsed()));
                    }
                }
                if let Some(k) = KtestSummary::parse(&line) {
                    outcome.ktest = Some(k);
                }
                if let Some(s) = console::parse_exit_status(&line) {
                    status = Some(s);
                    stop_by = Some(match after_status {
                        AfterStatus::Stop => Instant::now(),
                        AfterStatus::WaitForQemu => Instant::now() + EXIT_GRACE,
                    });
                }
                outcome.log.push(line);
            }
            Ok(Event::Eof) => open_streams -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let qemu_code = match child.wait() {
        Ok(s) if !stopped_by_us => s.code(),
        _ => None,
    };
    outcome.elapsed = start.elapsed();
    outcome.ending = match status {
        Some(status) => Ending::Status {
            status,
            qemu_code,
            mismatch: if stopped_by_us
                && after_status == AfterStatus::WaitForQemu
                && device != ExitDevice::None
            {
                Some(format!(
                    "QEMU was still running {} s after the status line: the {device:?} exit device did not fire",
                    EXIT_GRACE.as_secs()
                ))
            } else {
                check_exit_code(device, status, qemu_code)
            },
        },
        None if timed_out => Ending::Timeout {
            secs: timeout.as_secs(),
        },
        None => Ending::NoStatusLine { qemu_code },
    };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::{load_dir, Board};

    fn boards() -> Vec<Board> {
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards")).unwrap()
    }

    fn board(name: &str) -> Board {
        boards().into_iter().find(|b| b.name == name).unwrap()
    }

    fn spec(b: &Board, accel: Accel) -> RunSpec<'_> {
        RunSpec {
            board: b,
            accel,
            smp: 4,
            mem_mib: 512,
            kernel: PathBuf::from("/k/skiff-kernel"),
            cmdline: "ktest=1 debug_exit=1".into(),
            xen: None,
            icount: false,
        }
    }

    #[test]
    fn icount_is_tcg_only_and_turns_x2apic_off_on_x86() {
        let b = board("qemu-x86_64");
        let mut s = spec(&b, Accel::Tcg);
        s.icount = true;
        let a = qemu_args(&s);
        assert_eq!(value_after(&a, "-icount"), ["shift=0,sleep=off"]);
        assert!(value_after(&a, "-cpu")[0].ends_with(",-x2apic"));
        s.accel = Accel::Kvm;
        assert!(value_after(&qemu_args(&s), "-icount").is_empty());
        let arm = board("qemu-aarch64");
        let mut s = spec(&arm, Accel::Tcg);
        s.icount = true;
        let a = qemu_args(&s);
        assert_eq!(value_after(&a, "-icount"), ["shift=0,sleep=off"]);
        assert!(!value_after(&a, "-cpu")[0].contains("x2apic"));
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn x86_argv_has_exit_device_kernel_and_sizes() {
        let b = board("qemu-x86_64");
        let a = qemu_args(&spec(&b, Accel::Tcg));
        assert_eq!(value_after(&a, "-smp"), ["4"]);
        assert_eq!(value_after(&a, "-m"), ["512M"]);
        assert_eq!(value_after(&a, "-accel"), ["tcg"]);
        assert_eq!(value_after(&a, "-kernel"), ["/k/skiff-kernel"]);
        assert_eq!(value_after(&a, "-append"), ["ktest=1 debug_exit=1"]);
        assert!(value_after(&a, "-device").contains(&"isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(value_after(&a, "-M")[0].starts_with("q35"));
        assert_eq!(value_after(&a, "-cpu"), [b.cpu.as_str()]);
        let k = qemu_args(&spec(&b, Accel::Kvm));
        assert_eq!(value_after(&k, "-cpu"), ["host"]);
        assert_eq!(value_after(&k, "-accel"), ["kvm"]);
    }

    #[test]
    fn aarch64_argv_uses_semihosting() {
        let b = board("qemu-aarch64-gicv2");
        let a = qemu_args(&spec(&b, Accel::Tcg));
        assert_eq!(
            value_after(&a, "-semihosting-config"),
            ["enable=on,target=native"]
        );
        assert!(value_after(&a, "-M")[0].contains("gic-version=2"));
        assert_eq!(value_after(&a, "-cpu"), ["cortex-a57"]);
    }

    #[test]
    fn vmware_persona_devices_and_smbios() {
        let b = board("vmware-x86_64");
        let a = qemu_args(&spec(&b, Accel::Tcg));
        assert!(value_after(&a, "-M")[0].contains("vmport=on"));
        let devices = value_after(&a, "-device");
        assert!(
            devices.iter().any(|d| d.starts_with("vmxnet3")),
            "{devices:?}"
        );
        assert!(
            devices.iter().any(|d| d.starts_with("pvscsi")),
            "{devices:?}"
        );
        let smbios = value_after(&a, "-smbios");
        assert!(
            smbios[0].contains("manufacturer=VMware,, Inc."),
            "{smbios:?}"
        );
    }

    #[test]
    fn xen_argv_loads_hypervisor_and_guest() {
        let b = board("xen-aarch64");
        let mut s = spec(&b, Accel::Tcg);
        s.xen = Some(XenFiles {
            hypervisor: "/x/xen".into(),
            dtb: "/x/virt.dtb".into(),
        });
        let a = qemu_args(&s);
        assert_eq!(value_after(&a, "-kernel"), ["/x/xen"]);
        assert_eq!(value_after(&a, "-dtb"), ["/x/virt.dtb"]);
        assert!(value_after(&a, "-append").is_empty());
        assert!(value_after(&a, "-device")
            .iter()
            .any(|d| d.starts_with("loader,file=/k/skiff-kernel,addr=0x")));
    }

    #[test]
    fn cmdline_composition_and_quoting() {
        let b = board("qemu-x86_64-microvm");
        let app = vec!["./redis".to_string(), "--port".into(), "a b".into()];
        let c = kernel_cmdline(&b, true, &app).unwrap();
        assert!(
            c.ends_with("ktest=1 debug_exit=1 -- ./redis --port \"a b\""),
            "{c}"
        );
        assert!(!kernel_cmdline(&b, false, &[]).unwrap().contains("ktest"));
        assert!(matches!(
            kernel_cmdline(&b, false, &["x\"y".into()]),
            Err(Error::UnquotableArg(_))
        ));
        let x = board("xen-aarch64");
        assert!(!kernel_cmdline(&x, true, &[])
            .unwrap()
            .contains("debug_exit"));
    }

    #[test]
    fn exit_code_cross_check() {
        assert_eq!(check_exit_code(ExitDevice::IsaDebugExit, 0, Some(1)), None);
        assert_eq!(
            check_exit_code(ExitDevice::IsaDebugExit, 255, Some(255)),
            None
        );
        assert_eq!(
            check_exit_code(ExitDevice::IsaDebugExit, 128, Some(1)),
            None
        );
        assert_eq!(
            check_exit_code(ExitDevice::IsaDebugExit, 1, Some(0)),
            Some("the guest printed status 1 but QEMU exited 0 (the IsaDebugExit exit device should give 3)".into())
        );
        assert!(check_exit_code(ExitDevice::IsaDebugExit, 3, Some(7)).is_none());
        assert!(check_exit_code(ExitDevice::Semihosting, 3, Some(3)).is_none());
        assert!(check_exit_code(ExitDevice::Semihosting, 3, Some(0)).is_some());
        assert!(check_exit_code(ExitDevice::None, 3, Some(0)).is_none());
        assert!(check_exit_code(ExitDevice::IsaDebugExit, 3, None).is_none());
    }

    #[test]
    fn package_names() {
        assert_eq!(debian_package("qemu-system-x86_64"), "qemu-system-x86");
        assert_eq!(debian_package("qemu-system-aarch64"), "qemu-system-arm");
    }

    fn sh(script: &str, timeout: u64, after: AfterStatus, device: ExitDevice) -> Outcome {
        let args = vec!["-c".to_string(), script.to_string()];
        run(
            Path::new("/bin/sh"),
            &args,
            device,
            Duration::from_secs(timeout),
            after,
            &mut |_| {},
        )
    }

    #[test]
    fn fake_guest_status_and_lines() {
        let o = sh(
            "echo 'platform: arch=x86_64 hypervisor=tcg firmware=acpi clock=tsc cpus=1 mem=500MiB'; \
             echo 'ktest: 5 passed, 0 failed'; echo 'skiff: exit status=0'; exit 1",
            10,
            AfterStatus::WaitForQemu,
            ExitDevice::IsaDebugExit,
        );
        assert_eq!(
            o.ending,
            Ending::Status {
                status: 0,
                qemu_code: Some(1),
                mismatch: None
            }
        );
        assert_eq!(o.platform.unwrap().0.unwrap().mem_mib, 500);
        assert_eq!(
            o.ktest,
            Some(KtestSummary {
                passed: 5,
                failed: 0
            })
        );
        assert_eq!(o.log.len(), 3);
    }

    #[test]
    fn fake_guest_exit_code_mismatch_is_reported() {
        let o = sh(
            "echo 'skiff: exit status=0'; exit 0",
            10,
            AfterStatus::WaitForQemu,
            ExitDevice::IsaDebugExit,
        );
        assert!(matches!(
            o.ending,
            Ending::Status {
                status: 0,
                mismatch: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn hung_guest_times_out() {
        let o = sh(
            "echo booting; exec sleep 30",
            1,
            AfterStatus::WaitForQemu,
            ExitDevice::None,
        );
        assert_eq!(o.ending, Ending::Timeout { secs: 1 });
        assert_eq!(o.ending.exit_status(), STATUS_TIMEOUT);
        assert!(o.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn idle_host_is_stopped_after_status_line() {
        let o = sh(
            "echo '(XEN) DOM1: skiff: exit status=7'; exec sleep 30",
            20,
            AfterStatus::Stop,
            ExitDevice::None,
        );
        assert_eq!(
            o.ending,
            Ending::Status {
                status: 7,
                qemu_code: None,
                mismatch: None
            }
        );
        assert!(o.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn guest_without_status_line() {
        let o = sh(
            "echo 'qemu: oops' >&2; exit 1",
            10,
            AfterStatus::WaitForQemu,
            ExitDevice::IsaDebugExit,
        );
        assert_eq!(o.ending, Ending::NoStatusLine { qemu_code: Some(1) });
        assert_eq!(o.ending.exit_status(), STATUS_NO_STATUS_LINE);
        assert_eq!(o.log, ["qemu: qemu: oops"]);
        let o = run(
            Path::new("/nonexistent/qemu"),
            &[],
            ExitDevice::None,
            Duration::from_secs(1),
            AfterStatus::Stop,
            &mut |_| {},
        );
        assert!(matches!(o.ending, Ending::SpawnFailed(_)));
    }
}
