//! The `xen-aarch64` board: Debian's Xen hypervisor (unpacked into
//! `build/xen/` by `ci/fetch-xen.sh`) booted by QEMU, with Skiff as a
//! dom0less guest described in a device tree generated here: QEMU's own
//! `virt` DTB (`-M ...,dumpdtb=`) plus `/chosen` entries for Xen's command
//! line and a `xen,domain` node naming the kernel module.

use crate::boards::{Board, XenSpec};
use crate::error::{Error, Result};
use crate::qemu::{find_in_path, XenFiles};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `ci/fetch-xen.sh` unpacks the Xen package.
pub fn cache_dir(root: &Path) -> PathBuf {
    root.join("build").join("xen")
}

/// The `/chosen` additions that make Xen start Skiff as a dom0less domU.
/// `kernel_size` is the `Image`'s size in bytes; `vcpus` the guest's CPUs.
pub fn chosen_fragment(
    spec: &XenSpec,
    kernel_size: u64,
    vcpus: u32,
    guest_cmdline: &str,
) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"
/ {{
	chosen {{
		#address-cells = <0x2>;
		#size-cells = <0x2>;
		xen,xen-bootargs = "{xen_args}";

		skiff {{
			compatible = "xen,domain";
			#address-cells = <0x2>;
			#size-cells = <0x2>;
			memory = <0x0 {mem_kib:#x}>;
			cpus = <{vcpus:#x}>;
			vpl011;
			xen,enhanced = "no-xenstore";

			module@{addr:x} {{
				compatible = "multiboot,kernel", "multiboot,module";
				reg = <{addr_hi:#x} {addr_lo:#x} {size_hi:#x} {size_lo:#x}>;
				bootargs = "{guest_args}";
			}};
		}};
	}};
}};
"#,
        xen_args = quote(&spec.xen_cmdline),
        mem_kib = u64::from(spec.guest_memory_mib) * 1024,
        addr = spec.kernel_addr,
        addr_hi = spec.kernel_addr >> 32,
        addr_lo = spec.kernel_addr & 0xffff_ffff,
        size_hi = kernel_size >> 32,
        size_lo = kernel_size & 0xffff_ffff,
        guest_args = quote(guest_cmdline),
    )
}

fn run_tool(cmd: &mut Command) -> Result<Vec<u8>> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Command {
        command: command.clone(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Checks the Xen binary is unpacked, generates the DTB for this run, and
/// returns the files QEMU needs. `XenUnavailable` says what is missing.
pub fn prepare(
    root: &Path,
    board: &Board,
    qemu: &Path,
    image: &Path,
    smp: u32,
    mem_mib: u32,
    guest_cmdline: &str,
) -> Result<XenFiles> {
    let spec = board
        .xen
        .as_ref()
        .ok_or_else(|| Error::XenUnavailable(format!("board {} has no [xen] table", board.name)))?;
    let dir = cache_dir(root);
    let hypervisor = dir.join(&spec.binary);
    if !hypervisor.is_file() {
        return Err(Error::XenUnavailable(format!(
            "{} is missing: run `ci/fetch-xen.sh` (as root: adds arm64 to dpkg, downloads and unpacks {})",
            hypervisor.display(),
            spec.package
        )));
    }
    let dtc = find_in_path("dtc").ok_or_else(|| Error::DtcMissing("dtc".into()))?;
    let kernel_size = std::fs::metadata(image).map_err(Error::io(image))?.len();
    // Per process: a `run` and a `test` may prepare different guests at once.
    let base = dir.join(format!("virt-{}-smp{smp}-{mem_mib}M", std::process::id()));
    let raw = base.with_extension("qemu.dtb");
    let dts = base.with_extension("dts");
    let dtb = base.with_extension("dtb");
    run_tool(
        Command::new(qemu)
            .arg("-M")
            .arg(format!("{},dumpdtb={}", board.machine, raw.display()))
            .args([
                "-cpu",
                &board.cpu,
                "-smp",
                &smp.to_string(),
                "-m",
                &format!("{mem_mib}M"),
            ])
            .args(["-nodefaults", "-display", "none"]),
    )?;
    let mut text = String::from_utf8_lossy(&run_tool(
        Command::new(&dtc)
            .args(["-q", "-I", "dtb", "-O", "dts"])
            .arg(&raw),
    )?)
    .into_owned();
    text.push_str(&chosen_fragment(spec, kernel_size, smp, guest_cmdline));
    std::fs::write(&dts, text).map_err(Error::io(&dts))?;
    run_tool(
        Command::new(&dtc)
            .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
            .arg(&dtb)
            .arg(&dts),
    )?;
    Ok(XenFiles { hypervisor, dtb })
}

/// Removes the files [`prepare`] generated for one run.
pub fn cleanup(files: &XenFiles) {
    for ext in ["dtb", "dts", "qemu.dtb"] {
        let _ = std::fs::remove_file(files.dtb.with_extension(ext));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> XenSpec {
        XenSpec {
            package: "xen-hypervisor-4.17-arm64".into(),
            binary: "boot/xen-4.17-arm64".into(),
            xen_cmdline: "console=dtuart dom0_mem=256M".into(),
            guest_memory_mib: 256,
            xen_addr: 0x4900_0000,
            kernel_addr: 0x4700_0000,
        }
    }

    #[test]
    fn fragment_describes_the_domain() {
        let f = chosen_fragment(&spec(), 0x12_3456, 2, "ktest=1 app=\"a b\"");
        assert!(f.contains("compatible = \"xen,domain\";"), "{f}");
        assert!(f.contains("memory = <0x0 0x40000>;"), "{f}");
        assert!(f.contains("cpus = <0x2>;"), "{f}");
        assert!(f.contains("vpl011;"), "{f}");
        assert!(f.contains("xen,enhanced = \"no-xenstore\";"), "{f}");
        assert!(f.contains("module@47000000"), "{f}");
        assert!(f.contains("reg = <0x0 0x47000000 0x0 0x123456>;"), "{f}");
        assert!(f.contains(r#"bootargs = "ktest=1 app=\"a b\"";"#), "{f}");
        assert!(
            f.contains(r#"xen,xen-bootargs = "console=dtuart dom0_mem=256M";"#),
            "{f}"
        );
    }

    #[test]
    fn fragment_compiles_with_dtc_when_installed() {
        let Some(dtc) = find_in_path("dtc") else {
            eprintln!("dtc not installed; compile check skipped");
            return;
        };
        let dir = std::env::temp_dir().join(format!("skiff-xen-dts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dts = dir.join("t.dts");
        let base = "/dts-v1/;\n/ {\n\t#address-cells = <0x2>;\n\t#size-cells = <0x2>;\n\tchosen {\n\t\tstdout-path = \"/pl011@9000000\";\n\t};\n};\n";
        std::fs::write(
            &dts,
            format!("{base}{}", chosen_fragment(&spec(), 4096, 1, "ktest=1")),
        )
        .unwrap();
        let out = Command::new(dtc)
            .args(["-q", "-I", "dts", "-O", "dts"])
            .arg(&dts)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let merged = String::from_utf8_lossy(&out.stdout);
        assert!(
            merged.contains("stdout-path") && merged.contains("xen,domain"),
            "{merged}"
        );
    }
}
