//! The board files (`boards/*.toml`): one data file per target, read by both
//! `cargo skiff run` and the boot matrix. Each says which QEMU emulates the
//! target and what a test on it must observe. Format: `docs/boards.md`.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Guest CPU architecture; also picks the kernel's Rust target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub fn parse(s: &str) -> Result<Arch> {
        match s {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            _ => Err(Error::UnknownArch(s.to_string())),
        }
    }

    /// The Rust target the kernel is built for.
    pub fn kernel_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none-softfloat",
        }
    }

    /// The arch of the machine this tool runs on, if it is one Skiff knows.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How QEMU hands the kernel over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootProtocol {
    /// x86_64: the ELF with its PVH note, QEMU `-kernel`.
    Pvh,
    /// aarch64: the flat arm64 `Image` (converted from the ELF), QEMU `-kernel`, DTB in x0.
    ArmImage,
    /// aarch64 under Xen: QEMU `-kernel` is Xen; Skiff is a dom0less guest
    /// (an `Image` loaded with `-device loader` and named in the DTB).
    XenDom0less,
}

/// How the guest's exit status leaves QEMU besides the console line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitDevice {
    /// x86 `isa-debug-exit` at port 0xf4: QEMU exits `(status << 1) | 1`.
    IsaDebugExit,
    /// Arm semihosting `SYS_EXIT_EXTENDED`: QEMU exits `status`.
    Semihosting,
    /// Nothing: the console line is the only record (Xen guests).
    None,
}

/// Disk/image format `skiff image` will produce for this board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// `-kernel` + initrd, no disk.
    Kernel,
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
}

/// One `boards/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    pub description: String,
    pub arch: Arch,
    pub boot: BootProtocol,
    /// QEMU system emulator binary, e.g. `qemu-system-x86_64`.
    pub qemu: String,
    /// `-M` value, options included (`q35,vmport=on`).
    pub machine: String,
    /// `-cpu` under TCG.
    pub cpu: String,
    /// `-cpu` under KVM (default `host`).
    #[serde(default = "default_kvm_cpu")]
    pub kvm_cpu: String,
    /// Whether KVM may be used at all for this board.
    #[serde(default = "yes")]
    pub kvm: bool,
    /// `-m` in MiB unless `--mem` says otherwise.
    pub memory_mib: u32,
    /// Extra QEMU arguments (devices, `-nodefaults`, SMBIOS, ...), verbatim.
    #[serde(default)]
    pub args: Vec<String>,
    /// Kernel command-line options this board always passes.
    #[serde(default)]
    pub cmdline: String,
    pub exit_device: ExitDevice,
    pub image_format: ImageFormat,
    /// The default board of its arch for `cargo skiff run`.
    #[serde(default)]
    pub default: bool,
    pub test: TestSpec,
    /// Xen boards only.
    #[serde(default)]
    pub xen: Option<XenSpec>,
}

/// What the boot matrix runs and asserts on this board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// `hypervisor=` the platform line must show under TCG.
    pub expect_hypervisor: String,
    /// `hypervisor=` under KVM (default: `kvm` where TCG expects `tcg`, else
    /// the same as under TCG: a persona stays itself).
    #[serde(default)]
    pub expect_hypervisor_kvm: Option<String>,
    /// One boot per entry, `-smp N`.
    pub smp: Vec<u32>,
    /// Seconds before the boot is killed and reported as a timeout.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Boot the tests under `-icount shift=0,sleep=off` (TCG only): guest
    /// time then follows guest instructions, not the host clock, so the
    /// timing ktests (timer accuracy, sleep lateness, fair shares) do not
    /// depend on how loaded the host is.
    #[serde(default)]
    pub icount: bool,
}

/// The dom0less guest Xen starts (`xen-aarch64`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XenSpec {
    /// Debian package holding the hypervisor binary.
    pub package: String,
    /// Path of the hypervisor inside the package (`boot/xen-4.17-arm64`).
    pub binary: String,
    /// Xen's own command line (`xen,xen-bootargs`).
    pub xen_cmdline: String,
    /// Memory of the Skiff domU in MiB (what its platform line must show).
    pub guest_memory_mib: u32,
    /// Guest-physical load address of Xen's binary and the domU kernel.
    pub xen_addr: u64,
    pub kernel_addr: u64,
}

fn default_kvm_cpu() -> String {
    "host".to_string()
}
fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    60
}

impl Board {
    /// Parses one board file's text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Board> {
        let board: Board = toml::from_str(text).map_err(|e| Error::BadBoard {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        board.validate(path)?;
        Ok(board)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| {
            Err(Error::BadBoard {
                path: path.to_path_buf(),
                message,
            })
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if !stem.is_empty() && stem != self.name {
            return bad(format!(
                "name `{}` differs from the file name `{stem}`",
                self.name
            ));
        }
        if self.test.smp.is_empty() || self.test.smp.contains(&0) {
            return bad("test.smp must list CPU counts of at least 1".into());
        }
        if self.memory_mib < 16 {
            return bad(format!("memory_mib = {} is too small", self.memory_mib));
        }
        let arch_ok = match self.boot {
            BootProtocol::Pvh => self.arch == Arch::X86_64,
            BootProtocol::ArmImage | BootProtocol::XenDom0less => self.arch == Arch::Aarch64,
        };
        if !arch_ok {
            return bad(format!(
                "boot protocol {:?} does not exist on {}",
                self.boot, self.arch
            ));
        }
        let exit_ok = match self.exit_device {
            ExitDevice::IsaDebugExit => self.arch == Arch::X86_64,
            ExitDevice::Semihosting => self.arch == Arch::Aarch64,
            ExitDevice::None => true,
        };
        if !exit_ok {
            return bad(format!(
                "exit device {:?} does not exist on {}",
                self.exit_device, self.arch
            ));
        }
        if (self.boot == BootProtocol::XenDom0less) != self.xen.is_some() {
            return bad("a [xen] table is required exactly when boot = \"xen-dom0less\"".into());
        }
        if let Some(arg) = self.args.iter().find(|a| is_runner_owned(a)) {
            return bad(format!(
                "args may not contain `{arg}`: the runner sets it (see docs/boards.md)"
            ));
        }
        Ok(())
    }

    /// The `hypervisor=` value a boot under `accel` must report.
    pub fn expected_hypervisor(&self, kvm: bool) -> &str {
        if !kvm {
            return &self.test.expect_hypervisor;
        }
        match &self.test.expect_hypervisor_kvm {
            Some(h) => h,
            None if self.test.expect_hypervisor == "tcg" => "kvm",
            None => &self.test.expect_hypervisor,
        }
    }

    /// The memory the guest kernel is given, in MiB: `-m` for a plain
    /// board, the domU's size for Xen.
    pub fn guest_memory_mib(&self, qemu_mem_mib: u32) -> u32 {
        match &self.xen {
            Some(x) => x.guest_memory_mib,
            None => qemu_mem_mib,
        }
    }
}

/// Arguments the runner always sets itself; a board may not repeat them.
fn is_runner_owned(arg: &str) -> bool {
    matches!(
        arg,
        "-kernel"
            | "-append"
            | "-smp"
            | "-m"
            | "-M"
            | "-machine"
            | "-cpu"
            | "-accel"
            | "-serial"
            | "-initrd"
            | "-dtb"
            | "-enable-kvm"
    )
}

/// Every board in a directory, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Board>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut boards = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
        boards.push(Board::parse(&text, &path)?);
    }
    boards.sort_by(|a, b| a.name.cmp(&b.name));
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let defaults = boards
            .iter()
            .filter(|b| b.arch == arch && b.default)
            .count();
        if defaults > 1 {
            return Err(Error::BadBoard {
                path: dir.to_path_buf(),
                message: format!("{defaults} boards of arch {arch} say `default = true`; one may"),
            });
        }
    }
    Ok(boards)
}

/// Picks the board for `run`: by name, else the default of `arch`, else the
/// default of the host's arch.
pub fn select<'a>(
    boards: &'a [Board],
    name: Option<&str>,
    arch: Option<Arch>,
) -> Result<&'a Board> {
    if let Some(name) = name {
        let board = boards
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| Error::UnknownBoard(name.to_string()))?;
        if let Some(arch) = arch {
            if arch != board.arch {
                return Err(Error::ArchMismatch {
                    board: board.name.clone(),
                    board_arch: board.arch.to_string(),
                    arch: arch.to_string(),
                });
            }
        }
        return Ok(board);
    }
    let arch = arch.or_else(Arch::host).unwrap_or(Arch::X86_64);
    boards
        .iter()
        .find(|b| b.arch == arch && b.default)
        .ok_or_else(|| Error::NoDefaultBoard(arch.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICROVM: &str = r#"
name = "m"
description = "test"
arch = "x86_64"
boot = "pvh"
qemu = "qemu-system-x86_64"
machine = "microvm,acpi=off"
cpu = "max"
memory_mib = 256
args = ["-nodefaults"]
exit_device = "isa-debug-exit"
image_format = "kernel"
default = true
[test]
expect_hypervisor = "tcg"
smp = [1, 4]
"#;

    fn parse(text: &str) -> Result<Board> {
        Board::parse(text, Path::new("boards/m.toml"))
    }

    #[test]
    fn parses_a_board_with_defaults() {
        let b = parse(MICROVM).unwrap();
        assert_eq!(b.arch, Arch::X86_64);
        assert_eq!(b.boot, BootProtocol::Pvh);
        assert_eq!(b.kvm_cpu, "host");
        assert!(b.kvm);
        assert_eq!(b.test.smp, vec![1, 4]);
        assert_eq!(b.test.timeout_secs, 60);
        assert_eq!(b.expected_hypervisor(false), "tcg");
        assert_eq!(b.expected_hypervisor(true), "kvm");
        assert_eq!(b.guest_memory_mib(512), 512);
    }

    #[test]
    fn persona_keeps_its_hypervisor_under_kvm() {
        let b = parse(&MICROVM.replace("\"tcg\"", "\"vmware\"")).unwrap();
        assert_eq!(b.expected_hypervisor(true), "vmware");
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let e = parse(&MICROVM.replace("cpu = \"max\"", "cpu = \"max\"\ncpus = 3")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("boards/m.toml") && msg.contains("cpus"),
            "{msg}"
        );
    }

    #[test]
    fn missing_field_is_an_error() {
        let e = parse(&MICROVM.replace("memory_mib = 256\n", "")).unwrap_err();
        assert!(e.to_string().contains("memory_mib"), "{e}");
    }

    #[test]
    fn name_must_match_file() {
        let e = Board::parse(MICROVM, Path::new("boards/other.toml")).unwrap_err();
        assert!(e.to_string().contains("differs"), "{e}");
    }

    #[test]
    fn wrong_arch_boot_protocol_rejected() {
        let e = parse(&MICROVM.replace("boot = \"pvh\"", "boot = \"arm-image\"")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn runner_owned_args_rejected() {
        let e = parse(&MICROVM.replace("[\"-nodefaults\"]", "[\"-smp\", \"2\"]")).unwrap_err();
        assert!(e.to_string().contains("-smp"), "{e}");
    }

    #[test]
    fn empty_smp_rejected() {
        let e = parse(&MICROVM.replace("smp = [1, 4]", "smp = []")).unwrap_err();
        assert!(e.to_string().contains("smp"), "{e}");
    }

    #[test]
    fn select_by_name_arch_and_default() {
        let a = parse(MICROVM).unwrap();
        let mut b = a.clone();
        b.name = "n".into();
        b.default = false;
        let boards = vec![a, b];
        assert_eq!(select(&boards, Some("n"), None).unwrap().name, "n");
        assert_eq!(select(&boards, None, Some(Arch::X86_64)).unwrap().name, "m");
        assert!(matches!(
            select(&boards, None, Some(Arch::Aarch64)),
            Err(Error::NoDefaultBoard(_))
        ));
        assert!(matches!(
            select(&boards, Some("n"), Some(Arch::Aarch64)),
            Err(Error::ArchMismatch { .. })
        ));
        assert!(matches!(
            select(&boards, Some("zz"), None),
            Err(Error::UnknownBoard(_))
        ));
    }

    #[test]
    fn repository_boards_all_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
        let boards = load_dir(&dir).unwrap();
        let names: Vec<&str> = boards.iter().map(|b| b.name.as_str()).collect();
        for want in [
            "qemu-x86_64",
            "qemu-x86_64-microvm",
            "qemu-aarch64",
            "qemu-aarch64-gicv2",
            "vmware-x86_64",
            "virtualbox-x86_64",
            "xen-aarch64",
        ] {
            assert!(
                names.contains(&want),
                "boards/{want}.toml missing: {names:?}"
            );
        }
        for arch in [Arch::X86_64, Arch::Aarch64] {
            select(&boards, None, Some(arch)).unwrap();
        }
    }
}
