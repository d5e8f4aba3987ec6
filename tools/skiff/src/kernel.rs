//! Building the kernel for a board: `cargo build -p skiff-kernel` for the
//! arch's target (the path comes from cargo's own artifact messages, so
//! `CARGO_TARGET_DIR` and `build.target-dir` are honoured), and for aarch64
//! the flat arm64 `Image` QEMU and Xen load.

use crate::boards::{Arch, Board, BootProtocol};
use crate::error::{Error, Result};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The built kernel: the ELF (symbols, x86_64 PVH boot) and, on aarch64,
/// the flat `Image` QEMU and Xen load.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub elf: PathBuf,
    pub image: Option<PathBuf>,
}

impl Kernel {
    /// The file QEMU is given for `board`.
    pub fn boot_file(&self, board: &Board) -> &Path {
        match (board.boot, &self.image) {
            (BootProtocol::ArmImage | BootProtocol::XenDom0less, Some(image)) => image,
            _ => &self.elf,
        }
    }
}

/// The checkout root (where `boards/` and the workspace `Cargo.toml` are).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

fn rustc_sysroot(root: &Path) -> Result<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(root)
        .output()
        .map_err(|e| Error::Command {
            command: format!("{rustc} --print sysroot"),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{rustc} --print sysroot"),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Fails with the `rustup target add` command when the target's standard
/// library is not installed.
pub fn require_target(root: &Path, arch: Arch) -> Result<()> {
    let target = arch.kernel_target();
    let lib = rustc_sysroot(root)?
        .join("lib/rustlib")
        .join(target)
        .join("lib");
    if lib.is_dir() {
        Ok(())
    } else {
        Err(Error::TargetMissing {
            target: target.to_string(),
        })
    }
}

/// Builds the kernel for `arch` and returns the files to boot.
pub fn build(root: &Path, arch: Arch, release: bool, quiet: bool) -> Result<Kernel> {
    require_target(root, arch)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root).args([
        "build",
        "-p",
        "skiff-kernel",
        "--bin",
        "skiff-kernel",
        "--target",
        arch.kernel_target(),
        "--message-format=json-render-diagnostics",
    ]);
    if release {
        cmd.arg("--release");
    }
    if quiet {
        cmd.arg("--quiet");
    }
    let command = format!(
        "{cargo} build -p skiff-kernel --target {}{}",
        arch.kernel_target(),
        if release { " --release" } else { "" }
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    let mut elf = None;
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
            if let Some(path) = executable_from_message(&line) {
                elf = Some(path);
            }
        }
    }
    let status = child.wait().map_err(|e| Error::Command {
        command: command.clone(),
        message: e.to_string(),
    })?;
    if !status.success() {
        return Err(Error::BuildFailed {
            command,
            status: status.to_string(),
        });
    }
    let elf = elf.ok_or(Error::NoKernelArtifact)?;
    prebuilt(root, arch, elf)
}

/// A kernel ELF built elsewhere (`run --kernel`), with its `Image` made
/// next to it on aarch64.
pub fn prebuilt(root: &Path, arch: Arch, elf: PathBuf) -> Result<Kernel> {
    std::fs::metadata(&elf).map_err(Error::io(&elf))?;
    let image = match arch {
        Arch::X86_64 => None,
        Arch::Aarch64 => {
            let image = elf.with_extension("Image");
            flat_image(root, &elf, &image)?;
            Some(image)
        }
    };
    Ok(Kernel { elf, image })
}

/// The `executable` of the `skiff-kernel` binary in a cargo JSON message.
fn executable_from_message(line: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    if v.get("target")?.get("name")?.as_str()? != "skiff-kernel" {
        return None;
    }
    Some(PathBuf::from(v.get("executable")?.as_str()?))
}

/// `llvm-objcopy` from the toolchain's `llvm-tools` component, if installed.
fn llvm_objcopy(root: &Path) -> Option<PathBuf> {
    let rustlib = rustc_sysroot(root).ok()?.join("lib/rustlib");
    std::fs::read_dir(rustlib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/llvm-objcopy"))
        .find(|p| p.is_file())
}

/// Writes the flat binary of `elf` (what `objcopy -O binary` makes): with
/// the toolchain's `llvm-objcopy` when present, else with [`flatten`].
pub fn flat_image(root: &Path, elf: &Path, out: &Path) -> Result<()> {
    if let Some(objcopy) = llvm_objcopy(root) {
        let status = Command::new(&objcopy)
            .args(["-O", "binary"])
            .arg(elf)
            .arg(out)
            .status()
            .map_err(|e| Error::Command {
                command: objcopy.display().to_string(),
                message: e.to_string(),
            })?;
        if !status.success() {
            return Err(Error::Command {
                command: format!("{} -O binary", objcopy.display()),
                message: status.to_string(),
            });
        }
        return Ok(());
    }
    let data = std::fs::read(elf).map_err(Error::io(elf))?;
    let flat = flatten(&data).map_err(|message| Error::BadElf {
        path: elf.to_path_buf(),
        message,
    })?;
    std::fs::write(out, flat).map_err(Error::io(out))
}

/// The loadable segments of a 64-bit ELF laid out by physical address from
/// the lowest one, gaps zero-filled, `.bss` not included.
pub fn flatten(data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let mut segments = Vec::new();
    for ph in header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?
    {
        if ph.p_type(endian) != elf::PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let bytes = ph
            .data(endian, data)
            .map_err(|_| "segment outside the file".to_string())?;
        segments.push((ph.p_paddr(endian), bytes));
    }
    let base = segments
        .iter()
        .map(|s| s.0)
        .min()
        .ok_or("no loadable segment")?;
    let end = segments
        .iter()
        .map(|(pa, bytes)| pa + bytes.len() as u64)
        .max()
        .unwrap_or(base);
    let len = usize::try_from(end - base).map_err(|_| "image too large")?;
    if len > 1 << 30 {
        return Err(format!(
            "segments span {len} bytes; refusing to write a flat image over 1 GiB"
        ));
    }
    let mut out = vec![0u8; len];
    for (pa, bytes) in segments {
        let at = (pa - base) as usize;
        out[at..at + bytes.len()].copy_from_slice(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_message() {
        let msg = r#"{"reason":"compiler-artifact","target":{"name":"skiff-kernel","kind":["bin"]},"executable":"/t/x86_64-unknown-none/debug/skiff-kernel"}"#;
        assert_eq!(
            executable_from_message(msg),
            Some(PathBuf::from("/t/x86_64-unknown-none/debug/skiff-kernel"))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"skiff_kernel","kind":["lib"]},"executable":null}"#;
        assert_eq!(executable_from_message(lib), None);
        assert_eq!(executable_from_message("not json"), None);
        assert_eq!(
            executable_from_message(r#"{"reason":"build-finished","success":true}"#),
            None
        );
    }

    /// A minimal ELF64 with two PT_LOAD segments at paddr 0x1000 (4 bytes)
    /// and 0x1010 (2 bytes, memsz 8: .bss not written).
    fn tiny_elf() -> Vec<u8> {
        let mut f = vec![0u8; 64 + 2 * 56];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let payload_at = f.len() as u64;
        for (i, (pa, off, filesz, memsz)) in [
            (0x1000u64, payload_at, 4u64, 4u64),
            (0x1010, payload_at + 4, 2, 8),
        ]
        .into_iter()
        .enumerate()
        {
            let p = 64 + i * 56;
            f[p..p + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            f[p + 16..p + 24].copy_from_slice(&(0xffff_0000_0000_0000 + pa).to_le_bytes());
            f[p + 24..p + 32].copy_from_slice(&pa.to_le_bytes());
            f[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            f[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        f.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        f
    }

    #[test]
    fn flatten_lays_out_by_physical_address() {
        let flat = flatten(&tiny_elf()).unwrap();
        let mut want = vec![0u8; 0x12];
        want[0..4].copy_from_slice(&[1, 2, 3, 4]);
        want[0x10..0x12].copy_from_slice(&[5, 6]);
        assert_eq!(flat, want);
    }

    #[test]
    fn flatten_rejects_garbage() {
        assert!(flatten(b"not an elf").is_err());
    }
}
