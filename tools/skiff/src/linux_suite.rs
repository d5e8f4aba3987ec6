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
}

/// How a test program is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    GlibcStatic,
    GlibcStaticPie,
    GlibcDynamic,
    MuslStatic,
    MuslStaticPie,
    MuslDynamic,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::GlibcStatic,
        Variant::GlibcStaticPie,
        Variant::GlibcDynamic,
        Variant::MuslStatic,
        Variant::MuslStaticPie,
        Variant::MuslDynamic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::GlibcStatic => "glibc-static",
            Variant::GlibcStaticPie => "glibc-static-pie",
            Variant::GlibcDynamic => "glibc-dynamic",
            Variant::MuslStatic => "musl-static",
            Variant::MuslStaticPie => "musl-static-pie",
            Variant::MuslDynamic => "musl-dynamic",
        }
    }

    fn musl(self) -> bool {
        matches!(
            self,
            Variant::MuslStatic | Variant::MuslStaticPie | Variant::MuslDynamic
        )
    }

    /// The compiler and the Debian package that has it; `None` when the
    /// variant does not exist for `arch` (Debian's musl-tools is x86_64 only).
    pub fn compiler(self, arch: Arch) -> Option<(&'static str, &'static str)> {
        match (arch, self.musl()) {
            (Arch::X86_64, false) if Arch::host() == Some(Arch::X86_64) => Some(("gcc", "gcc")),
            (Arch::X86_64, false) => Some(("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu")),
            (Arch::X86_64, true) => Some(("musl-gcc", "musl-tools")),
            (Arch::Aarch64, false) if Arch::host() == Some(Arch::Aarch64) => Some(("gcc", "gcc")),
            (Arch::Aarch64, false) => Some(("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")),
            (Arch::Aarch64, true) => None,
        }
    }

    /// Compiler flags for this variant (after the sources).
    fn flags(self, cc: &str) -> Vec<String> {
        let s = |x: &str| x.to_string();
        match self {
            Variant::GlibcStatic | Variant::MuslStatic => vec![s("-static")],
            Variant::GlibcStaticPie => vec![s("-static-pie")],
            Variant::GlibcDynamic | Variant::MuslDynamic => vec![],
            Variant::MuslStaticPie => {
                // Debian's musl-gcc specs always name the dynamic loader and
                // Scrt1.o; a static PIE needs rcrt1.o and no PT_INTERP.
                let lib = "/usr/lib/x86_64-linux-musl";
                let crt = |name: &str| {
                    Command::new(cc)
                        .arg(format!("-print-file-name={name}"))
                        .output()
                        .ok()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_else(|| name.to_string())
                };
                vec![
                    s("-fPIE"),
                    s("-static"),
                    s("-nostartfiles"),
                    format!("{lib}/rcrt1.o"),
                    format!("{lib}/crti.o"),
                    crt("crtbeginS.o"),
                    crt("crtendS.o"),
                    format!("{lib}/crtn.o"),
                    s("-Wl,-pie,--no-dynamic-linker,-z,text"),
                ]
            }
        }
    }
}

/// One case: a program, a variant, an arch.
#[derive(Debug, Clone)]
struct Case<'a> {
    program: &'a Program,
    arch: Arch,
    variant: Variant,
}

impl Case<'_> {
    fn name(&self) -> String {
        format!(
            "{}/{}/{}",
            self.arch,
            self.variant.name(),
            self.program.name
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
fn build(root: &Path, case: &Case, out_dir: &Path) -> Result<PathBuf, String> {
    let (cc, _) = case.variant.compiler(case.arch).ok_or("no compiler")?;
    let src_dir = root.join("tests/linux");
    let src = src_dir.join(format!("{}.c", case.program.name));
    let dir = out_dir.join(format!("{}-{}", case.arch, case.variant.name()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join(&case.program.name);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_src = [src.clone(), src_dir.join("common.h")]
        .iter()
        .filter_map(|p| mtime(p))
        .max();
    if let (Some(o), Some(s)) = (mtime(&out), newest_src) {
        if o > s {
            return Ok(out);
        }
    }
    let mut cmd = Command::new(cc);
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .args(case.variant.flags(cc))
        .arg("-pthread");
    let output = cmd.output().map_err(|e| format!("{cc}: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&out);
        return Err(format!(
            "{cc} failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    Ok(out)
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
    let Some((cc, package)) = case.variant.compiler(case.arch) else {
        return skip("variant not available for this arch".into());
    };
    if qemu::find_in_path(cc).is_none() {
        return skip(format!(
            "`{cc}` not installed (apt-get install {package}; ci/setup.sh does it)"
        ));
    }
    if Arch::host() != Some(case.arch) && qemu_user(case.arch).is_none() {
        return skip(format!(
            "`qemu-{}` not installed for the reference run (apt-get install qemu-user)",
            case.arch
        ));
    }
    let binary = match build(env.root, case, &env.build_dir) {
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
    let got = guest(env, board, kernel, &slug, &packed);
    judge(&name, case.known_failing(), &want, got, started)
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
    let kernel = match kernel {
        Ok(k) => k,
        Err(e) => return fail(format!("kernel build: {e}")),
    };
    let slug = name.replace('/', "-");
    let got = guest(env, board, kernel, &slug, &packed);
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
    qemu::add_initrd(&mut argv, &initrd);
    let outcome = qemu::run(
        &qemu_bin,
        &argv,
        board.exit_device,
        GUEST_TIMEOUT,
        AfterStatus::for_board(board),
        &mut |_| {},
    );
    let _ = std::fs::remove_file(&initrd);
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
fn phase_boards<'a>(all: &'a [Board], args: &TestArgs) -> Vec<&'a Board> {
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
        .flat_map(|p| {
            [Arch::X86_64, Arch::Aarch64]
                .into_iter()
                .flat_map(move |arch| {
                    Variant::ALL
                        .into_iter()
                        .filter(move |v| v.compiler(arch).is_some())
                        .map(move |variant| Case {
                            program: p,
                            arch,
                            variant,
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
        }
        for d in &suite.debian {
            assert!(d.program.starts_with('/'), "{}", d.name);
            for a in &d.args {
                if let Some(rest) = a.strip_prefix("{tests}/") {
                    assert!(root.join("tests/linux/debian").join(rest).is_file(), "{a}");
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
        let x86: Vec<_> = Variant::ALL
            .iter()
            .filter(|v| v.compiler(Arch::X86_64).is_some())
            .collect();
        let arm: Vec<_> = Variant::ALL
            .iter()
            .filter(|v| v.compiler(Arch::Aarch64).is_some())
            .collect();
        assert_eq!((x86.len(), arm.len()), (6, 3));
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
