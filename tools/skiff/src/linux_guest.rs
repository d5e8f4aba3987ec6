//! The Linux guest that `cargo skiff bench` runs beside Skiff: Debian's
//! kernel (fetched by `ci/fetch-linux.sh` into `build/linux/<arch>/`)
//! booted under the same QEMU machine, CPU, `-smp`, memory, accelerator and
//! icount flags as Skiff, with a one-file initramfs whose `/init` is a
//! static benchmark program from `bench/*.c`. The same program is what runs
//! on Skiff for the suites that measure the Linux ABI (`bench syscall`).
//!
//! What is given to the Linux kernel beyond the board (docs/benchmarks.md):
//! `console=` for the board's UART, `quiet`, `panic=-1` (a crash ends QEMU
//! through `-no-reboot`), and on x86_64 under TCG `tsc=reliable` plus
//! `tsc_early_khz=` (TCG's guest TSC ticks at the host's TSC rate, or at
//! 1 GHz under `-icount shift=0`; Linux cannot calibrate it on microvm,
//! which has no HPET or PM timer, and would fall back to jiffies).
//! `SKIFF_BENCH_INIT=1` reaches `/init` as an environment variable and
//! tells the program it is PID 1 and must power the VM off.
//!
//! `bench net` also needs the guest's NIC: [`net_modules`] extracts the
//! virtio and virtio-net modules from the same kernel package, which
//! `bench/netinit.c` loads.

use crate::accel::Accel;
use crate::boards::{Arch, Board};
use crate::cpio;
use crate::error::{Error, Result};
use crate::qemu::{self, AfterStatus, RunSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long one Linux guest run may take (the x86 bzImage alone spends
/// ~10 s decompressing itself under TCG).
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// Why no Linux guest can be booted; the bench prints Skiff's column and
/// this reason instead of Linux's.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("ci/fetch-linux.sh {arch} failed ({status}): {detail}")]
    FetchFailed {
        arch: Arch,
        status: String,
        detail: String,
    },
    #[error("cannot run ci/fetch-linux.sh: {0}")]
    FetchNotRun(std::io::Error),
    #[error("ci/fetch-linux.sh {arch} succeeded but {path} is missing")]
    NotFetched { arch: Arch, path: PathBuf },
}

/// A fetched Debian kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxKernel {
    /// The bzImage (x86_64) or the uncompressed arm64 Image.
    pub image: PathBuf,
    /// `PACKAGE VERSION` from `build/linux/<arch>/VERSION`.
    pub version: String,
}

/// The kernel file `ci/fetch-linux.sh` leaves for `arch`.
pub fn kernel_path(root: &Path, arch: Arch) -> PathBuf {
    let file = match arch {
        Arch::X86_64 => "vmlinuz",
        Arch::Aarch64 => "Image",
    };
    root.join("build/linux").join(arch.name()).join(file)
}

fn read_version(image: &Path) -> Option<String> {
    let text = std::fs::read_to_string(image.with_file_name("VERSION")).ok()?;
    let v = text.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The Debian kernel for `arch`, fetched first if it is not cached.
pub fn kernel(root: &Path, arch: Arch) -> Result<LinuxKernel, Unavailable> {
    let image = kernel_path(root, arch);
    if let (true, Some(version)) = (image.is_file(), read_version(&image)) {
        return Ok(LinuxKernel { image, version });
    }
    eprintln!("skiff: bench: fetching Debian's {arch} kernel (ci/fetch-linux.sh {arch})");
    let out = Command::new(root.join("ci/fetch-linux.sh"))
        .arg(arch.name())
        .current_dir(root)
        .output()
        .map_err(Unavailable::FetchNotRun)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let detail = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .to_string();
        return Err(Unavailable::FetchFailed {
            arch,
            status: out.status.to_string(),
            detail,
        });
    }
    match (image.is_file(), read_version(&image)) {
        (true, Some(version)) => Ok(LinuxKernel { image, version }),
        _ => Err(Unavailable::NotFetched { arch, path: image }),
    }
}

/// The C compiler that builds static programs for `arch` on this host.
pub fn compiler(arch: Arch) -> &'static str {
    match (Arch::host() == Some(arch), arch) {
        (true, _) => "gcc",
        (false, Arch::X86_64) => "x86_64-linux-gnu-gcc",
        (false, Arch::Aarch64) => "aarch64-linux-gnu-gcc",
    }
}

/// The Debian packages that provide [`compiler`] with a static libc.
pub fn compiler_packages(arch: Arch) -> &'static str {
    match (Arch::host() == Some(arch), arch) {
        (true, _) => "gcc libc6-dev",
        (false, Arch::X86_64) => "gcc-x86-64-linux-gnu libc6-dev-amd64-cross",
        (false, Arch::Aarch64) => "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Builds `bench/<program>.c` as a static executable for `arch` into
/// `build/bench/<arch>/<program>`, unless that is newer than its sources.
pub fn build_program(root: &Path, arch: Arch, program: &str) -> Result<PathBuf> {
    let src = root.join("bench").join(format!("{program}.c"));
    let header = root.join("bench/guest.h");
    let dir = root.join("build/bench").join(arch.name());
    let out = dir.join(program);
    let newest_src = [&src, &header].iter().filter_map(|p| modified(p)).max();
    if let (Some(built), Some(newest)) = (modified(&out), newest_src) {
        if built > newest {
            return Ok(out);
        }
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let cc = compiler(arch);
    let args: Vec<String> = [
        "-O2",
        "-Wall",
        "-Wextra",
        "-static",
        "-pthread",
        "-o",
        &out.display().to_string(),
        &src.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let command = format!("{cc} {}", args.join(" "));
    let result = Command::new(cc).args(&args).output();
    match result {
        Ok(o) if o.status.success() => Ok(out),
        Ok(o) => Err(Error::Command {
            command,
            message: format!(
                "{}\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim_end()
            ),
        }),
        Err(e) => Err(Error::Command {
            command,
            message: format!(
                "{e} (install the Debian packages `{}`)",
                compiler_packages(arch)
            ),
        }),
    }
}

/// The modules the network benchmark's Linux guest loads (virtio
/// transports, virtio-net and what it depends on), as paths under the
/// kernel package's `lib/modules/VERSION/kernel/`. Debian builds them as
/// modules; one that an arch builds in is simply absent.
pub const NET_MODULES: &[&str] = &[
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio_mmio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

/// The Debian architecture name of `arch`.
fn deb_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// [`NET_MODULES`] of `kernel`'s package, extracted once into
/// `build/linux/<arch>/modules/` (re-extracted when `VERSION` changes):
/// `apt-get download` of the package `VERSION` names, `dpkg-deb`, `tar`.
/// Returns (file name, contents) of every module found; virtio_net must be.
pub fn net_modules(
    root: &Path,
    arch: Arch,
    kernel: &LinuxKernel,
) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join("build/linux").join(arch.name()).join("modules");
    let stamp = dir.join("VERSION");
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|v| v.trim() == kernel.version);
    if !fresh {
        fetch_modules(arch, kernel, &dir)?;
        std::fs::write(&stamp, format!("{}\n", kernel.version)).map_err(Error::io(&stamp))?;
    }
    let mut out = Vec::new();
    for m in NET_MODULES {
        let name = m.rsplit('/').next().unwrap_or(m);
        let path = dir.join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            out.push((name.to_string(), bytes));
        }
    }
    if !out.iter().any(|(n, _)| n == "virtio_net.ko") {
        return Err(Error::Command {
            command: format!("extract virtio_net.ko from {}", kernel.version),
            message: format!("not found in {}", dir.display()),
        });
    }
    Ok(out)
}

fn fetch_modules(arch: Arch, kernel: &LinuxKernel, dir: &Path) -> Result<()> {
    let pkg = kernel.version.split_whitespace().next().unwrap_or_default();
    let qualified = match Arch::host() == Some(arch) {
        true => pkg.to_string(),
        false => format!("{pkg}:{}", deb_arch(arch)),
    };
    eprintln!("skiff: bench: fetching the virtio-net modules of {qualified}");
    let tmp = dir.with_file_name("modules.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
    let sh = |command: String, cwd: &Path| -> Result<()> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(cwd)
            .output()
            .map_err(|e| Error::Command {
                command: command.clone(),
                message: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Command {
                command,
                message: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim_end()
                ),
            })
        }
    };
    sh(format!("apt-get download -q {qualified} 2>&1"), &tmp)?;
    let patterns: Vec<String> = NET_MODULES
        .iter()
        .map(|m| format!("'./lib/modules/*/kernel/{m}'"))
        .collect();
    // A module the arch builds in is missing from the archive: tar then
    // complains about that pattern and extracts the others.
    let _ = sh(
        format!(
            "dpkg-deb --fsys-tarfile ./*.deb | tar -x --wildcards {} 2>/dev/null",
            patterns.join(" ")
        ),
        &tmp,
    );
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    for m in NET_MODULES {
        let name = m.rsplit('/').next().unwrap_or(m);
        let found = std::fs::read_dir(tmp.join("lib/modules"))
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("kernel").join(m))
            .find(|p| p.is_file());
        if let Some(p) = found {
            let to = dir.join(name);
            std::fs::copy(&p, &to).map_err(Error::io(&to))?;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Builds `bench/<source>.c` as a host shared object (the QEMU TCG plugin
/// `bench/insncount.c`) into `build/bench/host/<source>.so`.
pub fn build_host_plugin(root: &Path, source: &str) -> Result<PathBuf> {
    let src = root.join("bench").join(format!("{source}.c"));
    let dir = root.join("build/bench/host");
    let out = dir.join(format!("{source}.so"));
    if let (Some(built), Some(newest)) = (modified(&out), modified(&src)) {
        if built > newest {
            return Ok(out);
        }
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let args: Vec<String> = [
        "-O2",
        "-Wall",
        "-Wextra",
        "-shared",
        "-fPIC",
        "-fvisibility=hidden",
        "-pthread",
        "-o",
        &out.display().to_string(),
        &src.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let command = format!("gcc {}", args.join(" "));
    match Command::new("gcc").args(&args).output() {
        Ok(o) if o.status.success() => Ok(out),
        Ok(o) => Err(Error::Command {
            command,
            message: String::from_utf8_lossy(&o.stderr).trim_end().to_string(),
        }),
        Err(e) => Err(Error::Command {
            command,
            message: e.to_string(),
        }),
    }
}

/// The initramfs: `/init` is `program`; `/dev` and `/sys` are mount points
/// the program fills (devtmpfs, sysfs) when it runs as init.
pub fn initramfs(program: &[u8]) -> Vec<u8> {
    let mut a = cpio::Archive::new();
    a.dir("/dev", 0o755);
    a.dir("/sys", 0o755);
    a.file("/init", 0o755, program);
    a.finish()
}

/// The Linux kernel command line for a benchmark boot. `tsc_khz` is the
/// guest TSC rate to declare (x86_64 under TCG), if known.
pub fn cmdline(arch: Arch, tsc_khz: Option<u64>) -> String {
    let mut w = vec![match arch {
        Arch::X86_64 => "console=ttyS0",
        Arch::Aarch64 => "console=ttyAMA0",
    }
    .to_string()];
    w.extend(["quiet", "panic=-1"].map(str::to_string));
    if let Some(khz) = tsc_khz {
        w.push("tsc=reliable".into());
        w.push(format!("tsc_early_khz={khz}"));
    }
    w.push("SKIFF_BENCH_INIT=1".into());
    w.join(" ")
}

/// The guest TSC rate QEMU presents to an x86_64 guest, in kHz: under
/// `-icount shift=0` one tick per guest instruction-nanosecond (1 GHz);
/// under plain TCG the host's own TSC (QEMU reads it for the guest's
/// `rdtsc`), measured here; under KVM the guest's kvmclock knows, so None.
pub fn guest_tsc_khz(arch: Arch, accel: Accel, icount: bool) -> Option<u64> {
    if arch != Arch::X86_64 || accel != Accel::Tcg {
        return None;
    }
    if icount {
        return Some(1_000_000);
    }
    host_tsc_khz()
}

/// The host's TSC rate, measured against the monotonic clock for 200 ms.
#[cfg(target_arch = "x86_64")]
pub fn host_tsc_khz() -> Option<u64> {
    fn rdtsc() -> u64 {
        // SAFETY: RDTSC reads a counter; it has no memory effects and is
        // available on every x86_64 CPU (CR4.TSD is clear for user code on
        // Linux).
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    let t0 = Instant::now();
    let c0 = rdtsc();
    std::thread::sleep(Duration::from_millis(200));
    let c1 = rdtsc();
    let ns = t0.elapsed().as_nanos();
    let khz = u128::from(c1.wrapping_sub(c0)) * 1_000_000 / ns.max(1);
    u64::try_from(khz).ok().filter(|&k| k > 0)
}

/// Not an x86_64 host: QEMU's x86 TSC then follows another counter; Linux
/// is left to calibrate it (and reports the clock source it chose).
#[cfg(not(target_arch = "x86_64"))]
pub fn host_tsc_khz() -> Option<u64> {
    None
}

/// One Linux guest boot's console and timing.
#[derive(Debug, Clone)]
pub struct Run {
    pub outcome: qemu::Outcome,
    /// Host time from starting QEMU to the program's `bench: suite=` line.
    pub to_bench: Option<Duration>,
}

/// What one Linux boot is made of.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub board: &'a Board,
    pub accel: Accel,
    pub smp: u32,
    pub icount: bool,
    pub kernel: &'a LinuxKernel,
    /// The cpio archive written by [`initramfs`].
    pub initrd: &'a Path,
}

/// QEMU's argv for `spec`: the board's, exactly as Skiff gets it, with the
/// Linux kernel, its command line and the initramfs.
pub fn qemu_args(spec: &Spec) -> Vec<String> {
    let tsc = guest_tsc_khz(spec.board.arch, spec.accel, spec.icount);
    let run = RunSpec {
        board: spec.board,
        accel: spec.accel,
        smp: spec.smp,
        mem_mib: spec.board.memory_mib,
        kernel: spec.kernel.image.clone(),
        cmdline: cmdline(spec.board.arch, tsc),
        xen: None,
        icount: spec.icount,
    };
    let mut argv = qemu::qemu_args(&run);
    qemu::add_initrd(&mut argv, spec.initrd);
    argv
}

/// Boots `spec` under [`TIMEOUT`] and returns what the guest printed.
pub fn boot(qemu_bin: &Path, spec: &Spec) -> Run {
    let argv = qemu_args(spec);
    eprintln!(
        "skiff: bench: linux: {} {}",
        qemu_bin.display(),
        argv.join(" ")
    );
    run_timed(qemu_bin, &argv, spec.board, TIMEOUT)
}

/// Runs QEMU with `argv` for `board`, noting when the benchmark program
/// started (its `bench: suite=` line). Serves both guests.
pub fn run_timed(qemu_bin: &Path, argv: &[String], board: &Board, timeout: Duration) -> Run {
    let start = Instant::now();
    let mut to_bench = None;
    let outcome = qemu::run(
        qemu_bin,
        argv,
        board.exit_device,
        timeout,
        AfterStatus::for_board(board),
        &mut |line| {
            if to_bench.is_none() && line.trim_start().starts_with("bench: suite=") {
                to_bench = Some(start.elapsed());
            }
        },
    );
    Run { outcome, to_bench }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::load_dir;

    fn board(name: &str) -> Board {
        load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards"))
            .unwrap()
            .into_iter()
            .find(|b| b.name == name)
            .unwrap()
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn cmdline_per_arch_and_clock() {
        assert_eq!(
            cmdline(Arch::Aarch64, None),
            "console=ttyAMA0 quiet panic=-1 SKIFF_BENCH_INIT=1"
        );
        assert_eq!(
            cmdline(Arch::X86_64, Some(1_000_000)),
            "console=ttyS0 quiet panic=-1 tsc=reliable tsc_early_khz=1000000 SKIFF_BENCH_INIT=1"
        );
    }

    #[test]
    fn tsc_rate_only_for_x86_tcg() {
        assert_eq!(guest_tsc_khz(Arch::Aarch64, Accel::Tcg, true), None);
        assert_eq!(guest_tsc_khz(Arch::X86_64, Accel::Kvm, false), None);
        assert_eq!(
            guest_tsc_khz(Arch::X86_64, Accel::Tcg, true),
            Some(1_000_000)
        );
    }

    #[test]
    fn initramfs_has_init_and_mount_points() {
        let a = initramfs(b"\x7fELF");
        for name in [&b"dev\0"[..], b"sys\0", b"init\0", b"TRAILER!!!\0"] {
            assert!(
                a.windows(name.len()).any(|w| w == name),
                "{:?} missing",
                String::from_utf8_lossy(name)
            );
        }
        assert!(a.windows(4).any(|w| w == b"\x7fELF"));
    }

    #[test]
    fn linux_gets_the_boards_qemu_flags() {
        let b = board("qemu-x86_64-microvm");
        let k = LinuxKernel {
            image: "/l/vmlinuz".into(),
            version: "linux-image-x 1".into(),
        };
        let spec = Spec {
            board: &b,
            accel: Accel::Tcg,
            smp: 2,
            icount: true,
            kernel: &k,
            initrd: Path::new("/l/init.cpio"),
        };
        let a = qemu_args(&spec);
        let skiff = qemu::qemu_args(&RunSpec {
            board: &b,
            accel: Accel::Tcg,
            smp: 2,
            mem_mib: b.memory_mib,
            kernel: "/k".into(),
            cmdline: String::new(),
            xen: None,
            icount: true,
        });
        for flag in ["-M", "-cpu", "-smp", "-m", "-accel", "-icount", "-device"] {
            assert_eq!(value_after(&a, flag), value_after(&skiff, flag), "{flag}");
        }
        assert_eq!(value_after(&a, "-kernel"), ["/l/vmlinuz"]);
        assert_eq!(value_after(&a, "-initrd"), ["/l/init.cpio"]);
        assert!(value_after(&a, "-append")[0].contains("tsc_early_khz=1000000"));
    }

    #[test]
    fn kernel_path_per_arch() {
        let r = Path::new("/r");
        assert_eq!(
            kernel_path(r, Arch::X86_64),
            Path::new("/r/build/linux/x86_64/vmlinuz")
        );
        assert_eq!(
            kernel_path(r, Arch::Aarch64),
            Path::new("/r/build/linux/aarch64/Image")
        );
    }

    /// A scratch checkout with `ci/fetch-linux.sh` replaced by `script`.
    fn fake_root(tag: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("skiff-lg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("ci")).unwrap();
        let path = root.join("ci/fetch-linux.sh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        root
    }

    #[test]
    fn offline_fetch_is_reported_with_the_scripts_reason() {
        let root = fake_root(
            "offline",
            "#!/bin/sh\necho 'fetch-linux: error: apt-get download failed (offline?)' >&2\nexit 1\n",
        );
        let e = kernel(&root, Arch::X86_64).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Unavailable::FetchFailed { .. }), "{msg}");
        assert!(msg.contains("offline?"), "{msg}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cached_net_modules_are_read_without_fetching() {
        let root = fake_root("modules", "#!/bin/sh\nexit 1\n");
        let dir = root.join("build/linux/x86_64/modules");
        std::fs::create_dir_all(&dir).unwrap();
        let k = LinuxKernel {
            image: root.join("build/linux/x86_64/vmlinuz"),
            version: "linux-image-6.1.0-57-amd64 6.1.192-3".into(),
        };
        std::fs::write(dir.join("VERSION"), format!("{}\n", k.version)).unwrap();
        std::fs::write(dir.join("virtio_ring.ko"), b"ring").unwrap();
        // virtio_net is the one module that must be there.
        assert!(net_modules(&root, Arch::X86_64, &k).is_err());
        std::fs::write(dir.join("virtio_net.ko"), b"net").unwrap();
        let m = net_modules(&root, Arch::X86_64, &k).unwrap();
        let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["virtio_ring.ko", "virtio_net.ko"]);
        assert_eq!(m[1].1, b"net");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cached_kernel_is_used_without_fetching() {
        let root = fake_root("cached", "#!/bin/sh\nexit 1\n");
        let dir = root.join("build/linux/aarch64");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Image"), b"image").unwrap();
        std::fs::write(
            dir.join("VERSION"),
            "linux-image-6.1.0-56-arm64 6.1.192-2\n",
        )
        .unwrap();
        let k = kernel(&root, Arch::Aarch64).unwrap();
        assert_eq!(k.version, "linux-image-6.1.0-56-arm64 6.1.192-2");
        assert_eq!(k.image, dir.join("Image"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
