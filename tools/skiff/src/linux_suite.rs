//! The Linux conformance phase of `cargo skiff test` (tests/linux): every
//! C program of `tests/linux/suite.toml` is built in every variant the host
//! can build (glibc static / static-pie / dynamic for x86_64 and aarch64,
//! musl static / static-pie / dynamic for x86_64), run twice on Linux for
//! the reference (the host; `qemu-aarch64 -L SYSROOT` for arm64; the two
//! runs must agree, so a nondeterministic program cannot pass), then run on
//! Skiff exactly as `cargo skiff run` would. Stdout and exit status must
//! match exactly. One report line per case: PASS, FAIL (with the first
//! difference), SKIP (a compiler or qemu-user missing), XFAIL / XPASS for
//! cases the suite lists as known failing.

use crate::accel::{self, HostFacts};
use crate::app::{self, Packed};
use crate::boards::{self, Arch, Board};
use crate::cli::TestArgs;
use crate::console;
use crate::kernel::{self, Kernel};
use crate::matrix::{self, Verdict};
use crate::qemu::{self, AfterStatus, Ending, RunSpec};
use crate::sysroot::Root;
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A reference run on Linux may take this long.
const REFERENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// A Skiff boot + run may take this long (TCG, debug kernel).
const GUEST_TIMEOUT: Duration = Duration::from_secs(180);
/// CPUs given to the guest (threads tests want real parallelism).
const GUEST_SMP: u32 = 2;

/// `tests/linux/suite.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub program: Vec<Program>,
    /// Rust std programs (`tests/linux/rust/src/bin/NAME.rs`), built with
    /// the [`Variant::RUST`] variants.
    #[serde(default)]
    pub rust: Vec<Program>,
    /// Unmodified Debian programs (`ci/fetch-debian-progs.sh`).
    #[serde(default)]
    pub debian: Vec<DebProgram>,
}

/// One unmodified Debian program of the suite, run from the arch's root
/// `build/debian/<arch>/root` (the packed image's --sysroot and the root of
/// the reference run). In `program`, `args`, `env` and `add`, `{tests}` is
/// the scripts directory (`tests/linux/debian`, `/skiff-tests` in the
/// image), `{root}` the extracted root on the host and `{arch}` the arch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebProgram {
    pub name: String,
    /// The program's path in the root (`/usr/bin/sqlite3`).
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    /// `HOST:GUEST` as `cargo skiff run --add` takes it.
    #[serde(default)]
    pub add: Vec<String>,
    /// `ARCH/debian` globs, as for [`Program::known_failing`].
    #[serde(default)]
    pub known_failing: Vec<String>,
    /// A shell pipeline (`sh -c`, on the host) that the stdout of both the
    /// reference and Skiff's run goes through before they are compared,
    /// for output that differs between the host tree and the image (owners,
    /// dates, link counts). Placeholders expand per side: `{tests}` is the
    /// host's scripts directory for the reference, `/skiff-tests` for Skiff.
    #[serde(default)]
    pub stdout_filter: Option<String>,
}

/// Passes `out`'s stdout through `sh -c FILTER`; the filter must exit 0.
pub fn filter_stdout(filter: &str, out: Observed) -> Result<Observed, String> {
    use std::io::Write;
    let mut child = Command::new("/bin/sh")
        .args(["-c", filter])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("stdout_filter: cannot start /bin/sh: {e}"))?;
    let mut input = out.stdout.join("\n");
    if !input.is_empty() {
        input.push('\n');
    }
    let mut stdin = child.stdin.take().ok_or("stdout_filter: no stdin pipe")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("stdout_filter: {e}"))?;
    // A filter that stops reading early (`head`) is fine: EPIPE is ignored.
    let _ = writer.join();
    if !output.status.success() {
        return Err(format!(
            "stdout_filter {filter:?} failed ({}): {}",
            output.status,
            first_lines(&output.stderr, 3)
        ));
    }
    Ok(Observed {
        stdout: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        status: out.status,
    })
}

/// Where the scripts of the Debian cases are in the image.
const GUEST_TESTS: &str = "/skiff-tests";

/// The directory `ci/fetch-debian-progs.sh ARCH` unpacks into.
pub fn debian_root(root: &Path, arch: Arch) -> PathBuf {
    root.join("build/debian").join(arch.name()).join("root")
}

/// Replaces the `{tests}`, `{root}` and `{arch}` placeholders.
fn expand(s: &str, tests: &str, root: &str, arch: Arch) -> String {
    s.replace("{tests}", tests)
        .replace("{root}", root)
        .replace("{arch}", arch.name())
}

/// One program of the suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub name: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    /// `ARCH/VARIANT` globs (`*` matches any run of characters).
    #[serde(default)]
    pub known_failing: Vec<String>,
    /// Only the variants matching these `ARCH/VARIANT` globs run (all when
    /// empty): for programs too slow under TCG to run in every variant.
    #[serde(default)]
    pub variants: Vec<String>,
    /// Seconds the Skiff run may take (default [`GUEST_TIMEOUT`]).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// `ARCH/VARIANT` globs that also run with the files on a disk (as
    /// `cargo skiff run --disk`; case name `.../NAME/disk`), plus a boot
    /// from the same image with one byte flipped, which must be refused.
    #[serde(default)]
    pub disk: Vec<String>,
}

/// How a test program is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    GlibcStatic,
    GlibcStaticPie,
    GlibcDynamic,
    MuslStatic,
    MuslStaticPie,
    MuslDynamic,
    /// A Rust std program for `<arch>-unknown-linux-gnu` (glibc, dynamic).
    RustGnu,
    /// A Rust std program for `<arch>-unknown-linux-musl` (static; static-pie
    /// where the target makes one, x86_64).
    RustMusl,
}

/// Where Debian's arm64 musl (`musl-dev:arm64`, unpacked into the Debian
/// root by `ci/fetch-debian-progs.sh aarch64`) has its crt files and libc.a.
const ARM64_MUSL_LIB: &str = "usr/lib/aarch64-linux-musl";
/// ... and its headers.
const ARM64_MUSL_INCLUDE: &str = "usr/include/aarch64-linux-musl";

impl Variant {
    /// The variants of the C programs (`[[program]]`).
    pub const C: [Variant; 6] = [
        Variant::GlibcStatic,
        Variant::GlibcStaticPie,
        Variant::GlibcDynamic,
        Variant::MuslStatic,
        Variant::MuslStaticPie,
        Variant::MuslDynamic,
    ];
    /// The variants of the Rust programs (`[[rust]]`).
    pub const RUST: [Variant; 2] = [Variant::RustGnu, Variant::RustMusl];

    pub fn name(self) -> &'static str {
        match self {
            Variant::GlibcStatic => "glibc-static",
            Variant::GlibcStaticPie => "glibc-static-pie",
            Variant::GlibcDynamic => "glibc-dynamic",
            Variant::MuslStatic => "musl-static",
            Variant::MuslStaticPie => "musl-static-pie",
            Variant::MuslDynamic => "musl-dynamic",
            Variant::RustGnu => "rust-gnu",
            Variant::RustMusl => "rust-musl",
        }
    }

    fn musl(self) -> bool {
        matches!(
            self,
            Variant::MuslStatic | Variant::MuslStaticPie | Variant::MuslDynamic
        )
    }

    pub fn is_rust(self) -> bool {
        matches!(self, Variant::RustGnu | Variant::RustMusl)
    }

    /// The Rust target triple of a Rust variant.
    pub fn rust_target(self, arch: Arch) -> Option<String> {
        let libc = match self {
            Variant::RustGnu => "gnu",
            Variant::RustMusl => "musl",
            _ => return None,
        };
        Some(format!("{}-unknown-linux-{libc}", arch.name()))
    }

    /// The C compiler (the linker, for Rust) and the Debian package that
    /// has it; `None` when the variant does not exist for `arch`: Debian's
    /// musl-tools is x86_64 only, so arm64 musl is only static-pie, built
    /// with the glibc cross compiler against the unpacked `musl-dev:arm64`.
    pub fn compiler(self, arch: Arch) -> Option<(&'static str, &'static str)> {
        let gcc = match arch {
            a if Arch::host() == Some(a) => ("gcc", "gcc"),
            Arch::X86_64 => ("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu"),
            Arch::Aarch64 => ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        };
        match (arch, self) {
            (_, Variant::RustGnu | Variant::RustMusl) => Some(gcc),
            (Arch::X86_64, v) if v.musl() => Some(("musl-gcc", "musl-tools")),
            (Arch::Aarch64, Variant::MuslStaticPie) => Some(gcc),
            (Arch::Aarch64, v) if v.musl() => None,
            _ => Some(gcc),
        }
    }

    /// Compiler flags for this variant: before the source and after it.
    /// `deb_root` is the arch's Debian root (arm64 musl lives there).
    fn flags(self, arch: Arch, cc: &str, deb_root: &Path) -> (Vec<String>, Vec<String>) {
        let s = |x: &str| x.to_string();
        let gcc_file = |name: &str| {
            Command::new(cc)
                .arg(format!("-print-file-name={name}"))
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| name.to_string())
        };
        match (self, arch) {
            (Variant::GlibcStatic | Variant::MuslStatic, _) => (vec![], vec![s("-static")]),
            (Variant::GlibcStaticPie, _) => (vec![], vec![s("-static-pie")]),
            (Variant::MuslStaticPie, Arch::X86_64) => {
                // Debian's musl-gcc specs always name the dynamic loader and
                // Scrt1.o; a static PIE needs rcrt1.o and no PT_INTERP.
                let lib = "/usr/lib/x86_64-linux-musl";
                let post = vec![
                    s("-fPIE"),
                    s("-static"),
                    s("-nostartfiles"),
                    format!("{lib}/rcrt1.o"),
                    format!("{lib}/crti.o"),
                    gcc_file("crtbeginS.o"),
                    gcc_file("crtendS.o"),
                    format!("{lib}/crtn.o"),
                    s("-Wl,-pie,--no-dynamic-linker,-z,text"),
                ];
                (vec![], post)
            }
            (Variant::MuslStaticPie, Arch::Aarch64) => {
                // The glibc cross compiler with musl's headers, crt files
                // and libc.a instead of its own (what musl-gcc's specs do).
                let lib = deb_root.join(ARM64_MUSL_LIB);
                let f = |name: &str| lib.join(name).display().to_string();
                let pre = vec![
                    s("-nostdinc"),
                    s("-isystem"),
                    deb_root.join(ARM64_MUSL_INCLUDE).display().to_string(),
                    s("-isystem"),
                    gcc_file("include"),
                    s("-fPIE"),
                    s("-nostdlib"),
                    s("-static"),
                    s("-Wl,-pie,--no-dynamic-linker,-z,text"),
                    f("rcrt1.o"),
                    f("crti.o"),
                    gcc_file("crtbeginS.o"),
                ];
                let post = vec![
                    f("libc.a"),
                    gcc_file("libgcc.a"),
                    gcc_file("crtendS.o"),
                    f("crtn.o"),
                ];
                (pre, post)
            }
            _ => (vec![], vec![]),
        }
    }

    /// Why this variant cannot be built here (a tool or library missing,
    /// with the command that installs it), or `None`.
    fn missing(self, arch: Arch, root: &Path) -> Option<String> {
        let Some((cc, package)) = self.compiler(arch) else {
            return Some("variant not available for this arch".into());
        };
        if qemu::find_in_path(cc).is_none() {
            return Some(format!(
                "`{cc}` not installed (apt-get install {package}; ci/setup.sh does it)"
            ));
        }
        if self == Variant::MuslStaticPie && arch == Arch::Aarch64 {
            let lib = debian_root(root, arch).join(ARM64_MUSL_LIB);
            if !lib.join("libc.a").is_file() {
                return Some(format!(
                    "{} missing (ci/fetch-debian-progs.sh aarch64 unpacks musl-dev:arm64)",
                    lib.display()
                ));
            }
        }
        if let Some(target) = self.rust_target(arch) {
            if !rust_target_installed(root, &target) {
                return Some(format!(
                    "Rust target {target} not installed (rustup target add {target}; ci/setup.sh does it)"
                ));
            }
        }
        None
    }
}

/// Whether the pinned toolchain has the standard library for `target`.
fn rust_target_installed(root: &Path, target: &str) -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(root.join(RUST_DIR))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            Path::new(String::from_utf8_lossy(&o.stdout).trim())
                .join("lib/rustlib")
                .join(target)
                .join("lib")
                .is_dir()
        })
        .unwrap_or(false)
}

/// The cargo project of the Rust programs (its own workspace).
const RUST_DIR: &str = "tests/linux/rust";

/// One case: a program, a variant, an arch.
#[derive(Debug, Clone)]
struct Case<'a> {
    program: &'a Program,
    arch: Arch,
    variant: Variant,
    /// The files on a disk image rather than in an initramfs.
    disk: bool,
}

impl Case<'_> {
    fn name(&self) -> String {
        format!(
            "{}/{}/{}{}",
            self.arch,
            self.variant.name(),
            self.program.name,
            if self.disk { "/disk" } else { "" }
        )
    }

    fn known_failing(&self) -> bool {
        let key = format!("{}/{}", self.arch, self.variant.name());
        self.program.known_failing.iter().any(|g| glob(g, &key))
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }
    }
}

/// What one program run printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub stdout: Vec<String>,
    pub status: u8,
}

/// Compares the reference with Skiff's run; the first differences, or none.
pub fn compare(want: &Observed, got: &Observed) -> Vec<String> {
    let mut diffs = Vec::new();
    if want.status != got.status {
        diffs.push(format!(
            "exit status {} on Skiff, {} on Linux",
            got.status, want.status
        ));
    }
    let n = want.stdout.len().max(got.stdout.len());
    for i in 0..n {
        let (w, g) = (want.stdout.get(i), got.stdout.get(i));
        if w != g {
            diffs.push(format!(
                "stdout line {}: Linux {} / Skiff {}",
                i + 1,
                w.map_or("(none)".into(), |s| format!("{s:?}")),
                g.map_or("(none)".into(), |s| format!("{s:?}"))
            ));
            break;
        }
    }
    diffs
}

/// The exit status a shell would report (128 + signal when killed).
fn shell_status(s: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).min(255) as u8,
        _ => 255,
    }
}

/// Runs `cmd` with stdout captured, under `timeout`.
fn run_captured(cmd: &mut Command, timeout: Duration) -> Result<Observed, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let bytes = reader.join().unwrap_or_default();
    Ok(Observed {
        stdout: String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect(),
        status: shell_status(status),
    })
}

/// Builds `case` into `out_dir` unless an up-to-date binary is there.
fn build(env: &Env, case: &Case) -> Result<PathBuf, String> {
    if case.variant.is_rust() {
        return build_rust(env, case);
    }
    let root = env.root;
    let (cc, _) = case.variant.compiler(case.arch).ok_or("no compiler")?;
    let src_dir = root.join("tests/linux");
    let src = src_dir.join(format!("{}.c", case.program.name));
    let dir = env
        .build_dir
        .join(format!("{}-{}", case.arch, case.variant.name()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join(&case.program.name);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    // The program and every shared header beside it (common.h, inet.h).
    let headers = std::fs::read_dir(&src_dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "h"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let newest_src = std::iter::once(&src)
        .chain(headers.iter())
        .filter_map(|p| mtime(p))
        .max();
    if let (Some(o), Some(s)) = (mtime(&out), newest_src) {
        if o > s {
            return Ok(out);
        }
    }
    let (pre, post) = case
        .variant
        .flags(case.arch, cc, &debian_root(root, case.arch));
    let mut cmd = Command::new(cc);
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .args(pre)
        .arg(&src)
        .args(post)
        .arg("-pthread");
    let output = cmd.output().map_err(|e| format!("{cc}: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&out);
        return Err(format!("{cc} failed: {}", first_lines(&output.stderr, 3)));
    }
    Ok(out)
}

/// The first `n` lines of a tool's stderr, on one line.
fn first_lines(bytes: &[u8], n: usize) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .take(n)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Builds every Rust program for the case's target (once per target and
/// run: cargo is incremental) in release, into
/// `$CARGO_TARGET_DIR/skiff-linux/rust`; the case's binary.
fn build_rust(env: &Env, case: &Case) -> Result<PathBuf, String> {
    let target = case
        .variant
        .rust_target(case.arch)
        .ok_or("not a Rust variant")?;
    let target_dir = env.build_dir.with_file_name("rust");
    let mut built = env.rust_builds.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains_key(&target) {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "--release", "--quiet", "--target", &target])
            .current_dir(env.root.join(RUST_DIR))
            .env("CARGO_TARGET_DIR", &target_dir)
            .stdin(Stdio::null());
        if let Some((linker, _)) = case.variant.compiler(case.arch) {
            if Arch::host() != Some(case.arch) {
                let var = format!(
                    "CARGO_TARGET_{}_LINKER",
                    target.to_uppercase().replace('-', "_")
                );
                cmd.env(var, linker);
            }
        }
        let result = match cmd.output() {
            Err(e) => Err(format!("cargo: {e}")),
            Ok(o) if !o.status.success() => Err(format!(
                "cargo build --target {target} failed: {}",
                first_lines(&o.stderr, 4)
            )),
            Ok(_) => Ok(target_dir.join(&target).join("release")),
        };
        built.insert(target.clone(), result);
    }
    let dir = built[&target].clone()?;
    let binary = dir.join(&case.program.name);
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not built: is there {RUST_DIR}/src/bin/{}.rs?",
            binary.display(),
            case.program.name
        ))
    }
}

/// QEMU's user-mode emulator for `arch` (`qemu-user`, or the `-static`
/// name of `qemu-user-static`).
fn qemu_user(arch: Arch) -> Option<PathBuf> {
    let name = format!("qemu-{}", arch.name());
    qemu::find_in_path(&name).or_else(|| qemu::find_in_path(&format!("{name}-static")))
}

/// The reference: the program on Linux, run twice; the runs must agree.
fn reference(case: &Case, binary: &Path, packed: &Packed) -> Result<Observed, String> {
    let launch = &packed.launch;
    let once = || {
        let mut cmd = match case.arch {
            a if Arch::host() == Some(a) => {
                let mut c = Command::new(binary);
                std::os::unix::process::CommandExt::arg0(&mut c, &launch.path);
                c
            }
            other => {
                let mut c = Command::new(qemu_user(other).unwrap_or_default());
                c.arg("-L")
                    .arg(Root::default_dir(other))
                    .arg("-0")
                    .arg(&launch.path)
                    .arg(binary);
                c
            }
        };
        cmd.args(&launch.args).env_clear().current_dir("/");
        for e in &launch.env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        run_captured(&mut cmd, REFERENCE_TIMEOUT)
    };
    let first = once()?;
    let second = once()?;
    if first != second {
        let d = compare(&first, &second);
        return Err(format!("not deterministic on Linux: {}", d.join("; ")));
    }
    if let Some(l) = first.stdout.iter().find(|l| console::is_kernel_line(l)) {
        return Err(format!(
            "prints {l:?}, which looks like a kernel log line (`word: `); print key=value"
        ));
    }
    Ok(first)
}

struct Env<'a> {
    root: &'a Path,
    boards: Vec<(&'a Board, Result<Kernel, String>)>,
    facts: HostFacts,
    build_dir: PathBuf,
    log_dir: PathBuf,
    /// Rust builds done in this run, by target: the release directory.
    rust_builds: Mutex<std::collections::HashMap<String, Result<PathBuf, String>>>,
}

/// Runs one case; the verdict and the report line (plus detail lines).
fn run_case(env: &Env, case: &Case) -> (Verdict, String, Vec<String>) {
    let name = case.name();
    let started = Instant::now();
    let skip = |why: String| {
        (
            Verdict::Skip(why.clone()),
            format!("SKIP linux {name}: {why}"),
            Vec::new(),
        )
    };
    let fail = |why: String, detail: Vec<String>| {
        (
            Verdict::Fail(vec![why.clone()]),
            format!("FAIL linux {name}: {why}"),
            detail,
        )
    };
    let Some((board, kernel)) = env.boards.iter().find(|(b, _)| b.arch == case.arch) else {
        return skip(format!("no board selected for {}", case.arch));
    };
    if let Some(why) = case.variant.missing(case.arch, env.root) {
        return skip(why);
    }
    if Arch::host() != Some(case.arch) && qemu_user(case.arch).is_none() {
        return skip(format!(
            "`qemu-{}` not installed for the reference run (apt-get install qemu-user)",
            case.arch
        ));
    }
    let binary = match build(env, case) {
        Ok(b) => b,
        Err(e) => return fail(format!("build: {e}"), Vec::new()),
    };
    let argv: Vec<String> = std::iter::once(binary.display().to_string())
        .chain(case.program.args.iter().cloned())
        .collect();
    let req = app::Request {
        arch: case.arch,
        sysroot: Root::default_dir(case.arch),
        argv: &argv,
        env: &case.program.env,
        adds: &[],
        strace: false,
    };
    let mut packed = match app::pack(&req) {
        Ok(p) => p,
        Err(e) => return fail(format!("pack: {e}"), Vec::new()),
    };
    // argv[0] is the image path on both sides, and the environment is in
    // name order (the order std::process::Command gives the reference).
    packed.launch.argv0 = packed.launch.path.clone();
    packed.launch.env.sort_by(|a, b| {
        a.split_once('=')
            .map(|x| x.0)
            .cmp(&b.split_once('=').map(|x| x.0))
    });
    let want = match reference(case, &binary, &packed) {
        Ok(w) => w,
        Err(e) => return fail(format!("reference on Linux: {e}"), Vec::new()),
    };
    let kernel = match kernel {
        Ok(k) => k,
        Err(e) => return fail(format!("kernel build: {e}"), Vec::new()),
    };
    let slug = case.name().replace('/', "-");
    let timeout = case
        .program
        .timeout
        .map_or(GUEST_TIMEOUT, Duration::from_secs);
    let got = guest(env, board, kernel, &slug, &packed, timeout, case.disk);
    if case.disk {
        if let Err(why) = corrupt_disk_is_refused(env, board, kernel, &slug, &packed) {
            return fail(format!("corrupt image: {why}"), Vec::new());
        }
    }
    judge(&name, case.known_failing(), &want, got, started)
}

/// Boots `packed` from its disk image with one byte of the inode table
/// flipped: the kernel must refuse the root with the documented kernel
/// failure status and say why.
fn corrupt_disk_is_refused(
    env: &Env,
    board: &Board,
    kernel: &Kernel,
    slug: &str,
    packed: &Packed,
) -> Result<(), String> {
    let decision = accel::decide(crate::accel::AccelRequest::Tcg, env.facts, board)
        .map_err(|e| e.to_string())?;
    let qemu_bin = qemu::require_qemu(board).map_err(|e| e.to_string())?;
    let words = packed.launch.cmdline_words().map_err(|e| e.to_string())?;
    let mut bytes = crate::disk::image_from_cpio(&packed.initrd).map_err(|e| e.to_string())?;
    // The inode table starts at 4096; byte 4 of inode 2 is its mode.
    bytes[4096 + 64 + 4] ^= 0x01;
    let image = env.log_dir.join(format!("{slug}-corrupt.img"));
    std::fs::write(&image, bytes).map_err(|e| format!("{}: {e}", image.display()))?;
    let spec = RunSpec {
        board,
        accel: decision.accel,
        smp: 1,
        mem_mib: board.memory_mib,
        kernel: kernel.boot_file(board).to_path_buf(),
        cmdline: qemu::app_cmdline(board, &words),
        xen: None,
        icount: false,
    };
    let mut argv = qemu::qemu_args(&spec);
    crate::disk::add_disk(board, &image, &mut argv).map_err(|e| e.to_string())?;
    let outcome = qemu::run(
        &qemu_bin,
        &argv,
        board.exit_device,
        GUEST_TIMEOUT,
        AfterStatus::for_board(board),
        &mut |_| {},
    );
    let _ = std::fs::remove_file(&image);
    let said = outcome.log.iter().any(|l| {
        l.contains("cannot mount the root file system")
            && l.contains("corrupt image: inode table checksum")
    });
    match &outcome.ending {
        Ending::Status { status: 254, .. } if said => Ok(()),
        Ending::Status { status: 254, .. } => {
            Err("exit 254 but no `corrupt image: inode table checksum` message".into())
        }
        other => Err(format!("expected exit status 254, got {other:?}")),
    }
}

type GuestResult = Result<(Observed, PathBuf, Vec<String>), (String, Vec<String>)>;

/// The verdict of a case from the reference and Skiff's run: PASS, FAIL,
/// or XFAIL / XPASS (a failure) when the case is listed as known failing.
fn judge(
    name: &str,
    known_failing: bool,
    want: &Observed,
    got: GuestResult,
    started: Instant,
) -> (Verdict, String, Vec<String>) {
    let fail = |why: String, detail: Vec<String>| {
        (
            Verdict::Fail(vec![why.clone()]),
            format!("FAIL linux {name}: {why}"),
            detail,
        )
    };
    let got = match got {
        Ok(g) => g,
        Err((why, tail)) => {
            return if known_failing {
                (
                    Verdict::Skip(why.clone()),
                    format!("XFAIL linux {name}: {why}"),
                    Vec::new(),
                )
            } else {
                fail(why, tail)
            }
        }
    };
    let diffs = compare(want, &got.0);
    let secs = started.elapsed().as_secs_f64();
    match (diffs.is_empty(), known_failing) {
        (true, false) => (Verdict::Pass, format!("PASS linux {name} ({secs:.1}s)"), Vec::new()),
        (true, true) => fail(
            "XPASS: listed as known failing in tests/linux/suite.toml but passes; remove it from known_failing".into(),
            Vec::new(),
        ),
        (false, true) => (
            Verdict::Skip(diffs.join("; ")),
            format!("XFAIL linux {name}: {} (log: {})", diffs.join("; "), got.1.display()),
            Vec::new(),
        ),
        (false, false) => fail(
            format!("{} (log: {})", diffs.join("; "), got.1.display()),
            got.2,
        ),
    }
}

/// One Debian case: a program of the suite's `[[debian]]` on an arch.
#[derive(Debug, Clone)]
struct DebCase<'a> {
    program: &'a DebProgram,
    arch: Arch,
}

impl DebCase<'_> {
    fn name(&self) -> String {
        format!("{}/debian/{}", self.arch, self.program.name)
    }

    fn known_failing(&self) -> bool {
        let key = format!("{}/debian", self.arch);
        self.program.known_failing.iter().any(|g| glob(g, &key))
    }
}

/// Debian's multiarch triple of `arch` (`/usr/lib/<triple>`).
fn multiarch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
    }
}

/// The reference of a Debian case, run twice on Linux from the extracted
/// root: natively through the root's own dynamic loader and libraries
/// (the host's are never used), or `qemu-ARCH -L ROOT`.
fn deb_reference(
    case: &DebCase,
    deb_root: &Path,
    tests: &Path,
    packed: &Packed,
) -> Result<Observed, String> {
    let host = |s: &str| {
        expand(
            s,
            &tests.display().to_string(),
            &deb_root.display().to_string(),
            case.arch,
        )
    };
    let binary = deb_root.join(case.program.program.trim_start_matches('/'));
    let args: Vec<String> = case.program.args.iter().map(|a| host(a)).collect();
    // The guest's environment, with the suite's entries expanded for the host.
    let mut vars: Vec<(String, String)> = packed
        .launch
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for e in &case.program.env {
        if let Some((k, v)) = host(e).split_once('=') {
            vars.retain(|(old, _)| old != k);
            vars.push((k.to_string(), v.to_string()));
        }
    }
    let once = || {
        let mut cmd = match (&packed.interp, case.arch) {
            (_, a) if Arch::host() != Some(a) => {
                let mut c = Command::new(qemu_user(a).unwrap_or_default());
                c.arg("-L").arg(deb_root).arg(&binary);
                c
            }
            (Some(interp), a) => {
                let lib = |d: &str| deb_root.join(d).join(multiarch(a)).display().to_string();
                let mut c = Command::new(deb_root.join(interp.trim_start_matches('/')));
                c.arg("--library-path")
                    .arg(format!("{}:{}", lib("lib"), lib("usr/lib")))
                    .arg(&binary);
                c
            }
            (None, _) => Command::new(&binary),
        };
        cmd.args(&args).env_clear().current_dir("/");
        cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        run_captured(&mut cmd, REFERENCE_TIMEOUT)
    };
    let first = once()?;
    let second = once()?;
    if first != second {
        let d = compare(&first, &second);
        return Err(format!("not deterministic on Linux: {}", d.join("; ")));
    }
    if let Some(l) = first.stdout.iter().find(|l| console::is_kernel_line(l)) {
        return Err(format!(
            "prints {l:?}, which looks like a kernel log line (`word: `); print key=value"
        ));
    }
    Ok(first)
}

/// Runs one Debian case; the verdict and the report line (plus details).
fn run_deb_case(env: &Env, case: &DebCase) -> (Verdict, String, Vec<String>) {
    let name = case.name();
    let started = Instant::now();
    let skip = |why: String| {
        (
            Verdict::Skip(why.clone()),
            format!("SKIP linux {name}: {why}"),
            Vec::new(),
        )
    };
    let fail = |why: String| {
        (
            Verdict::Fail(vec![why.clone()]),
            format!("FAIL linux {name}: {why}"),
            Vec::new(),
        )
    };
    let Some((board, kernel)) = env.boards.iter().find(|(b, _)| b.arch == case.arch) else {
        return skip(format!("no board selected for {}", case.arch));
    };
    let deb_root = debian_root(env.root, case.arch);
    let binary = deb_root.join(case.program.program.trim_start_matches('/'));
    if !binary.exists() {
        return skip(format!(
            "{} missing (ci/fetch-debian-progs.sh {} fetches it)",
            binary.display(),
            case.arch
        ));
    }
    if Arch::host() != Some(case.arch) && qemu_user(case.arch).is_none() {
        return skip(format!(
            "`qemu-{}` not installed for the reference run (apt-get install qemu-user)",
            case.arch
        ));
    }
    let tests = env.root.join("tests/linux/debian");
    let guest_side = |s: &str| expand(s, GUEST_TESTS, "", case.arch);
    let host_side = |s: &str| {
        expand(
            s,
            &tests.display().to_string(),
            &deb_root.display().to_string(),
            case.arch,
        )
    };
    let argv: Vec<String> = std::iter::once(binary.display().to_string())
        .chain(case.program.args.iter().map(|a| guest_side(a)))
        .collect();
    let guest_env: Vec<String> = case.program.env.iter().map(|e| guest_side(e)).collect();
    let adds: Vec<String> = std::iter::once(format!("{}:{GUEST_TESTS}", tests.display()))
        .chain(case.program.add.iter().map(|a| host_side(a)))
        .collect();
    let req = app::Request {
        arch: case.arch,
        sysroot: deb_root.clone(),
        argv: &argv,
        env: &guest_env,
        adds: &adds,
        strace: false,
    };
    let mut packed = match app::pack(&req) {
        Ok(p) => p,
        Err(e) => return fail(format!("pack: {e}")),
    };
    packed.launch.argv0 = packed.launch.path.clone();
    let want = match deb_reference(case, &deb_root, &tests, &packed) {
        Ok(w) => w,
        Err(e) => return fail(format!("reference on Linux: {e}")),
    };
    let want = match &case.program.stdout_filter {
        Some(f) => match filter_stdout(&host_side(f), want) {
            Ok(w) => w,
            Err(e) => return fail(format!("reference on Linux: {e}")),
        },
        None => want,
    };
    let kernel = match kernel {
        Ok(k) => k,
        Err(e) => return fail(format!("kernel build: {e}")),
    };
    let slug = name.replace('/', "-");
    let mut got = guest(env, board, kernel, &slug, &packed, GUEST_TIMEOUT, false);
    if let (Some(f), Ok((observed, _, tail))) = (&case.program.stdout_filter, &mut got) {
        match filter_stdout(&guest_side(f), observed.clone()) {
            Ok(o) => *observed = o,
            Err(e) => got = Err((e, std::mem::take(tail))),
        }
    }
    judge(&name, case.known_failing(), &want, got, started)
}

/// Boots Skiff with the packed program; its output, the log path and the
/// console's tail; or why there is no output to compare.
#[allow(clippy::type_complexity)]
fn guest(
    env: &Env,
    board: &Board,
    kernel: &Kernel,
    slug: &str,
    packed: &Packed,
    timeout: Duration,
    disk: bool,
) -> Result<(Observed, PathBuf, Vec<String>), (String, Vec<String>)> {
    let err = |s: String| (s, Vec::new());
    let decision = accel::decide(crate::accel::AccelRequest::Tcg, env.facts, board)
        .map_err(|e| err(e.to_string()))?;
    let qemu_bin = qemu::require_qemu(board).map_err(|e| err(e.to_string()))?;
    let words = packed
        .launch
        .cmdline_words()
        .map_err(|e| err(e.to_string()))?;
    let initrd = env.log_dir.join(format!("{slug}.cpio"));
    std::fs::write(&initrd, &packed.initrd)
        .map_err(|e| err(format!("{}: {e}", initrd.display())))?;
    let spec = RunSpec {
        board,
        accel: decision.accel,
        smp: GUEST_SMP,
        mem_mib: board.memory_mib,
        kernel: kernel.boot_file(board).to_path_buf(),
        cmdline: qemu::app_cmdline(board, &words),
        xen: None,
        icount: false,
    };
    let mut argv = qemu::qemu_args(&spec);
    let image = env.log_dir.join(format!("{slug}.img"));
    if disk {
        let bytes = crate::disk::image_from_cpio(&packed.initrd).map_err(|e| err(e.to_string()))?;
        std::fs::write(&image, bytes).map_err(|e| err(format!("{}: {e}", image.display())))?;
        crate::disk::add_disk(board, &image, &mut argv).map_err(|e| err(e.to_string()))?;
    } else {
        qemu::add_initrd(&mut argv, &initrd);
    }
    let outcome = qemu::run(
        &qemu_bin,
        &argv,
        board.exit_device,
        timeout,
        AfterStatus::for_board(board),
        &mut |_| {},
    );
    let _ = std::fs::remove_file(&initrd);
    let _ = std::fs::remove_file(&image);
    let log_path = env.log_dir.join(format!("{slug}.log"));
    let mut log = format!("$ {} {}\n", qemu_bin.display(), matrix::shell_words(&argv));
    for l in &outcome.log {
        log.push_str(l);
        log.push('\n');
    }
    let _ = std::fs::write(&log_path, log);
    let tail: Vec<String> = outcome.log.iter().rev().take(15).rev().cloned().collect();
    match &outcome.ending {
        Ending::Status { status, .. } => Ok((
            Observed {
                stdout: console::program_output(&outcome.log),
                status: *status,
            },
            log_path,
            tail,
        )),
        other => Err((
            format!(
                "{} (log: {})",
                other.explain().unwrap_or_default(),
                log_path.display()
            ),
            tail,
        )),
    }
}

/// A case of either kind.
enum Job<'a> {
    Built(Case<'a>),
    Debian(DebCase<'a>),
}

impl Job<'_> {
    fn arch(&self) -> Arch {
        match self {
            Job::Built(c) => c.arch,
            Job::Debian(c) => c.arch,
        }
    }
}

/// The boards the phase runs on: the `--board` ones (first per arch) or
/// each arch's default board.
pub fn phase_boards<'a>(all: &'a [Board], args: &TestArgs) -> Vec<&'a Board> {
    let mut out: Vec<&Board> = Vec::new();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let pick = if args.boards.is_empty() {
            boards::select(all, None, Some(arch)).ok()
        } else {
            all.iter()
                .find(|b| b.arch == arch && args.boards.contains(&b.name))
        };
        if let Some(b) = pick {
            out.push(b);
        }
    }
    out
}

/// The conformance phase; pushes one verdict per case.
pub fn run(root: &Path, all: &[Board], args: &TestArgs) -> Vec<Verdict> {
    let suite_path = root.join("tests/linux/suite.toml");
    let suite: Suite = match std::fs::read_to_string(&suite_path)
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL linux: {}: {e}", suite_path.display());
            return vec![Verdict::Fail(vec![e])];
        }
    };
    let selected = phase_boards(all, args);
    let cases: Vec<Case> = suite
        .program
        .iter()
        .map(|p| (p, &Variant::C[..]))
        .chain(suite.rust.iter().map(|p| (p, &Variant::RUST[..])))
        .flat_map(|(p, variants)| {
            [Arch::X86_64, Arch::Aarch64]
                .into_iter()
                .flat_map(move |arch| {
                    variants
                        .iter()
                        .copied()
                        .filter(move |v| v.compiler(arch).is_some())
                        .filter(move |v| {
                            let key = format!("{arch}/{}", v.name());
                            p.variants.is_empty() || p.variants.iter().any(|g| glob(g, &key))
                        })
                        .flat_map(move |variant| {
                            let key = format!("{arch}/{}", variant.name());
                            let disk = p.disk.iter().any(|g| glob(g, &key));
                            [false, true].into_iter().filter(move |&d| !d || disk).map(
                                move |disk| Case {
                                    program: p,
                                    arch,
                                    variant,
                                    disk,
                                },
                            )
                        })
                })
        })
        .filter(|c| selected.iter().any(|b| b.arch == c.arch))
        .filter(|c| {
            args.filter
                .as_ref()
                .is_none_or(|f| c.name().contains(f.as_str()))
        })
        .collect();
    let deb_cases: Vec<DebCase> = suite
        .debian
        .iter()
        .flat_map(|p| {
            [Arch::X86_64, Arch::Aarch64]
                .into_iter()
                .map(move |arch| DebCase { program: p, arch })
        })
        .filter(|c| selected.iter().any(|b| b.arch == c.arch))
        .filter(|c| {
            args.filter
                .as_ref()
                .is_none_or(|f| c.name().contains(f.as_str()))
        })
        .collect();
    // The Debian programs run longest: they start first.
    let jobs: Vec<Job> = deb_cases
        .into_iter()
        .map(Job::Debian)
        .chain(cases.into_iter().map(Job::Built))
        .collect();
    // A kernel only for the arches that have cases.
    let boards: Vec<(&Board, Result<Kernel, String>)> = selected
        .iter()
        .filter(|b| jobs.iter().any(|c| c.arch() == b.arch))
        .map(|b| {
            eprintln!("skiff: test: linux: building the kernel for {}", b.arch);
            (
                *b,
                kernel::build(root, b.arch, args.release, true).map_err(|e| e.to_string()),
            )
        })
        .collect();
    let target = matrix::target_dir(root);
    let env = Env {
        root,
        boards,
        facts: HostFacts::probe(),
        build_dir: target.join("skiff-linux/bin"),
        log_dir: target.join("skiff-linux/logs"),
        rust_builds: Mutex::new(Default::default()),
    };
    let _ = std::fs::create_dir_all(&env.log_dir);
    eprintln!(
        "skiff: test: linux: {} cases on {} (build dir {}, logs {})",
        jobs.len(),
        selected
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        env.build_dir.display(),
        env.log_dir.display()
    );
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(jobs.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let (verdict, line, detail) = match job {
                    Job::Built(case) => run_case(&env, case),
                    Job::Debian(case) => run_deb_case(&env, case),
                };
                let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
                println!("{line}");
                for l in &detail {
                    println!("    | {l}");
                }
                results.push(verdict);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("aarch64/*", "aarch64/glibc-static"));
        assert!(glob("*", "x86_64/musl-dynamic"));
        assert!(glob("*/musl-*", "x86_64/musl-static-pie"));
        assert!(!glob("aarch64/*", "x86_64/glibc-static"));
        assert!(glob("x86_64/glibc-static", "x86_64/glibc-static"));
        assert!(!glob("x86_64/glibc-static", "x86_64/glibc-static-pie"));
    }

    #[test]
    fn comparison_reports_first_difference_and_status() {
        let want = Observed {
            stdout: vec!["a=1".into(), "b=2".into()],
            status: 3,
        };
        assert!(compare(&want, &want.clone()).is_empty());
        let got = Observed {
            stdout: vec!["a=1".into()],
            status: 127,
        };
        let d = compare(&want, &got);
        assert_eq!(
            d,
            [
                "exit status 127 on Skiff, 3 on Linux",
                "stdout line 2: Linux \"b=2\" / Skiff (none)"
            ]
        );
        let extra = Observed {
            stdout: vec!["a=1".into(), "b=2".into(), "c".into()],
            status: 3,
        };
        assert_eq!(compare(&want, &extra).len(), 1);
    }

    #[test]
    fn shell_statuses() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(shell_status(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(shell_status(std::process::ExitStatus::from_raw(11)), 139);
    }

    #[test]
    fn suite_file_parses_and_names_existing_sources() {
        let root = crate::kernel::workspace_root();
        let text = std::fs::read_to_string(root.join("tests/linux/suite.toml")).unwrap();
        let suite: Suite = toml::from_str(&text).unwrap();
        assert!(suite.program.len() >= 9);
        for p in &suite.program {
            assert!(
                root.join(format!("tests/linux/{}.c", p.name)).is_file(),
                "{}",
                p.name
            );
            // A `variants` glob that matches nothing would drop cases silently.
            for g in &p.variants {
                let hits = [Arch::X86_64, Arch::Aarch64]
                    .into_iter()
                    .flat_map(|a| {
                        Variant::C
                            .iter()
                            .filter(move |v| v.compiler(a).is_some())
                            .map(move |v| format!("{a}/{}", v.name()))
                    })
                    .filter(|k| glob(g, k))
                    .count();
                assert!(hits > 0, "{}: variants glob {g} matches nothing", p.name);
            }
        }
        assert!(suite.rust.len() >= 5);
        for p in &suite.rust {
            assert!(
                root.join(RUST_DIR)
                    .join(format!("src/bin/{}.rs", p.name))
                    .is_file(),
                "{}",
                p.name
            );
        }
        for d in &suite.debian {
            assert!(d.program.starts_with('/'), "{}", d.name);
            for a in &d.args {
                if let Some(rest) = a.strip_prefix("{tests}/") {
                    assert!(root.join("tests/linux/debian").join(rest).exists(), "{a}");
                }
            }
        }
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(
            expand("{tests}/a.sh:{root}/x:{arch}", "/t", "/r", Arch::Aarch64),
            "/t/a.sh:/r/x:aarch64"
        );
        assert_eq!(expand("{root}/usr", "/t", "", Arch::X86_64), "/usr");
        let p = DebProgram {
            name: "x".into(),
            program: "/bin/x".into(),
            args: vec![],
            env: vec![],
            add: vec![],
            known_failing: vec!["aarch64/*".into()],
            stdout_filter: None,
        };
        let arm = DebCase {
            program: &p,
            arch: Arch::Aarch64,
        };
        let x86 = DebCase {
            program: &p,
            arch: Arch::X86_64,
        };
        assert_eq!(arm.name(), "aarch64/debian/x");
        assert!(arm.known_failing() && !x86.known_failing());
    }

    #[test]
    fn variants_per_arch() {
        let names = |arch: Arch, vs: &[Variant]| -> Vec<&str> {
            vs.iter()
                .filter(|v| v.compiler(arch).is_some())
                .map(|v| v.name())
                .collect()
        };
        assert_eq!(names(Arch::X86_64, &Variant::C).len(), 6);
        assert_eq!(
            names(Arch::Aarch64, &Variant::C),
            [
                "glibc-static",
                "glibc-static-pie",
                "glibc-dynamic",
                "musl-static-pie"
            ]
        );
        for arch in [Arch::X86_64, Arch::Aarch64] {
            assert_eq!(names(arch, &Variant::RUST), ["rust-gnu", "rust-musl"]);
        }
        assert_eq!(
            Variant::RustMusl.rust_target(Arch::Aarch64).as_deref(),
            Some("aarch64-unknown-linux-musl")
        );
        assert_eq!(
            Variant::RustGnu.rust_target(Arch::X86_64).as_deref(),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(Variant::GlibcStatic.rust_target(Arch::X86_64), None);
        assert!(Variant::RUST.iter().all(|v| v.is_rust()));
        assert!(!Variant::C.iter().any(|v| v.is_rust()));
    }

    #[test]
    fn arm64_musl_static_pie_links_musl_around_the_source() {
        let root = Path::new("/deb");
        let (pre, post) = Variant::MuslStaticPie.flags(Arch::Aarch64, "/nonexistent-cc", root);
        // musl's headers only, its rcrt1/crti first and libc.a, crtn last.
        assert_eq!(
            pre[..3],
            [
                "-nostdinc",
                "-isystem",
                "/deb/usr/include/aarch64-linux-musl"
            ]
        );
        assert!(pre.contains(&"-nostdlib".to_string()));
        assert!(pre.contains(&"/deb/usr/lib/aarch64-linux-musl/rcrt1.o".to_string()));
        assert_eq!(post[0], "/deb/usr/lib/aarch64-linux-musl/libc.a");
        assert_eq!(
            post.last().unwrap(),
            "/deb/usr/lib/aarch64-linux-musl/crtn.o"
        );
        let (pre, post) = Variant::MuslStaticPie.flags(Arch::X86_64, "/nonexistent-cc", root);
        assert!(pre.is_empty() && post.contains(&"/usr/lib/x86_64-linux-musl/rcrt1.o".to_string()));
        assert_eq!(
            Variant::GlibcStatic.flags(Arch::Aarch64, "cc", root),
            (vec![], vec!["-static".to_string()])
        );
    }

    #[test]
    fn stdout_filter_applies_to_lines_and_keeps_status() {
        let out = Observed {
            stdout: vec![
                "total 8".into(),
                "-rw-r--r-- 1 root root 35 Nov 23 17:34 fruit.txt".into(),
                "drwxr-xr-x 2 user user 4096 Jan 1 2020 sub".into(),
            ],
            status: 3,
        };
        let f = filter_stdout(
            "awk '$1 != \"total\" { print $1, ($1 ~ /^d/ ? \"dir\" : $5), $NF }'",
            out.clone(),
        )
        .unwrap();
        assert_eq!(f.stdout, ["-rw-r--r-- 35 fruit.txt", "drwxr-xr-x dir sub"]);
        assert_eq!(f.status, 3);
        assert_eq!(filter_stdout("cat", out.clone()).unwrap(), out);
        let empty = Observed {
            stdout: vec![],
            status: 0,
        };
        assert_eq!(filter_stdout("cat", empty.clone()).unwrap(), empty);
        assert!(filter_stdout("exit 2", out.clone()).is_err());
        assert!(filter_stdout("head -c 1 >/dev/null", out).is_ok());
    }

    #[test]
    fn suite_parses_rust_programs_and_filters() {
        let text = r#"
            [[program]]
            name = "hello"
            [[rust]]
            name = "std_env"
            args = ["exit=4"]
            known_failing = ["aarch64/rust-musl"]
            [[debian]]
            name = "ls"
            program = "/usr/bin/busybox"
            args = ["ls", "-la", "{tests}/d"]
            stdout_filter = "sed 's|{tests}/||'"
        "#;
        let suite: Suite = toml::from_str(text).unwrap();
        assert_eq!(suite.rust[0].name, "std_env");
        let case = Case {
            program: &suite.rust[0],
            arch: Arch::Aarch64,
            variant: Variant::RustMusl,
            disk: false,
        };
        assert_eq!(case.name(), "aarch64/rust-musl/std_env");
        assert!(case.known_failing());
        let f = suite.debian[0].stdout_filter.as_deref().unwrap();
        assert_eq!(
            expand(f, GUEST_TESTS, "", Arch::X86_64),
            "sed 's|/skiff-tests/||'"
        );
        assert!(toml::from_str::<Suite>("[[debian]]\nname=\"x\"\nprogram=\"/x\"\nstdout_fliter=\"cat\"\n[[program]]\nname=\"h\"").is_err());
    }

    #[test]
    fn reference_run_captures_status_and_lines() {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "echo a=1; echo b=2; exit 7"]);
        let o = run_captured(&mut c, Duration::from_secs(10)).unwrap();
        assert_eq!(o.stdout, ["a=1", "b=2"]);
        assert_eq!(o.status, 7);
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "sleep 5"]);
        assert!(run_captured(&mut c, Duration::from_millis(200)).is_err());
    }
}
