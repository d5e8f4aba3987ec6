//! Reading the guest console: the machine-readable lines the kernel prints
//! (`platform:`, `ktest:`, `skiff: exit status=`, `backtrace:`) parsed into
//! types the runner and the boot matrix assert on.
//!
//! Lines may arrive through a hypervisor's console that prefixes them (Xen
//! prints a dom0less guest's vpl011 output as `(XEN) DOM1: ...`, `(XEN) d1:
//! ...` or `(d1) ...`, by version); [`guest_text`] strips such prefixes first.

use std::fmt;

/// The kernel's last line before power-off, shared with the kernel.
pub use skiff_arch_api::exit::STATUS_LINE_PREFIX;

/// The one `platform:` boot line, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformLine {
    pub arch: String,
    pub hypervisor: String,
    pub firmware: String,
    pub clock: String,
    pub cpus: u32,
    pub mem_mib: u64,
}

/// Why a `platform:` line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformLineError {
    #[error("platform line lacks `{0}=`")]
    Missing(&'static str),
    #[error("platform line has {key}={value:?}, not a number")]
    BadNumber { key: &'static str, value: String },
    #[error("platform line has a word without `=`: {0:?}")]
    NotKeyValue(String),
}

/// `ktest: N passed, M failed[, ...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KtestSummary {
    pub passed: u32,
    pub failed: u32,
}

/// Removes the prefixes a hypervisor console puts before a guest's line and
/// trailing whitespace / carriage returns. Returns the guest's own text.
pub fn guest_text(line: &str) -> &str {
    let mut s = line.trim_end();
    loop {
        let before = s;
        if let Some(rest) = s.strip_prefix("(XEN) ") {
            s = rest;
        }
        // `(d1) ` — Xen's guest console prefix.
        if let Some(rest) = s.strip_prefix("(d") {
            if let Some((num, rest)) = rest.split_once(") ") {
                if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                    s = rest;
                }
            }
        }
        // `DOM1: ` / `d1: ` — Xen's in-hypervisor vpl011 backend.
        for tag in ["DOM", "d"] {
            if let Some(rest) = s.strip_prefix(tag) {
                if let Some((num, rest)) = rest.split_once(": ") {
                    if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                        s = rest;
                    }
                }
            }
        }
        if s == before {
            return s;
        }
    }
}

impl PlatformLine {
    /// Parses a console line; `None` if it is not the summary line (which
    /// starts `platform: arch=`; other `platform:` log lines such as
    /// `platform: detect ...` are not it), `Some(Err)` if it is but malformed.
    pub fn parse(line: &str) -> Option<Result<PlatformLine, PlatformLineError>> {
        let rest = guest_text(line).strip_prefix("platform: ")?;
        rest.starts_with("arch=").then(|| Self::parse_fields(rest))
    }

    fn parse_fields(rest: &str) -> Result<PlatformLine, PlatformLineError> {
        let mut fields = Vec::new();
        for word in rest.split_whitespace() {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| PlatformLineError::NotKeyValue(word.to_string()))?;
            fields.push((k, v));
        }
        let get = |key: &'static str| {
            fields
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .ok_or(PlatformLineError::Missing(key))
        };
        let number = |key: &'static str, value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| PlatformLineError::BadNumber {
                    key,
                    value: value.to_string(),
                })
        };
        let cpus = number("cpus", get("cpus")?)?;
        let mem = get("mem")?;
        let mem_mib = number("mem", mem.strip_suffix("MiB").unwrap_or(mem))?;
        Ok(PlatformLine {
            arch: get("arch")?.to_string(),
            hypervisor: get("hypervisor")?.to_string(),
            firmware: get("firmware")?.to_string(),
            clock: get("clock")?.to_string(),
            cpus: u32::try_from(cpus).map_err(|_| PlatformLineError::BadNumber {
                key: "cpus",
                value: cpus.to_string(),
            })?,
            mem_mib,
        })
    }
}

impl KtestSummary {
    /// Parses `ktest: N passed, M failed` (more `, K word` may follow).
    pub fn parse(line: &str) -> Option<KtestSummary> {
        let rest = guest_text(line).strip_prefix("ktest: ")?;
        let mut parts = rest.split(", ");
        let passed = parts.next()?.strip_suffix(" passed")?.parse().ok()?;
        let failed = parts.next()?.strip_suffix(" failed")?.parse().ok()?;
        Some(KtestSummary { passed, failed })
    }
}

impl fmt::Display for KtestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// The status in a `skiff: exit status=N` line.
pub fn parse_exit_status(line: &str) -> Option<u8> {
    guest_text(line)
        .strip_prefix(STATUS_LINE_PREFIX)?
        .trim()
        .parse()
        .ok()
}

/// Whether a console line is the kernel's (or QEMU's, which the runner
/// prefixes `qemu: `) rather than the program's: the kernel's lines all
/// start with a lowercase `subsystem: ` word (STYLE.md), so anything else
/// is the program's output. Programs whose lines look like `word: ...`
/// cannot be told apart; the conformance suite refuses such references.
pub fn is_kernel_line(line: &str) -> bool {
    let text = guest_text(line);
    let Some((word, _)) = text.split_once(": ") else {
        return false;
    };
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// The program's output in a run's console log: the lines before the
/// status line that are not the kernel's ([`is_kernel_line`]), with
/// hypervisor prefixes and carriage returns removed.
pub fn program_output(log: &[String]) -> Vec<String> {
    log.iter()
        .take_while(|l| parse_exit_status(l).is_none())
        .filter(|l| !is_kernel_line(l))
        .map(|l| guest_text(l).to_string())
        .collect()
}

/// The program counter in a `backtrace: #N pc=0x...` line.
pub fn parse_backtrace_pc(line: &str) -> Option<u64> {
    let rest = guest_text(line).strip_prefix("backtrace: #")?;
    let (_, pc) = rest.split_once(" pc=0x")?;
    let hex = pc.split_whitespace().next()?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str =
        "platform: arch=x86_64 hypervisor=kvm firmware=acpi clock=kvmclock cpus=4 mem=512MiB";

    #[test]
    fn platform_line_fields() {
        let p = PlatformLine::parse(LINE).unwrap().unwrap();
        assert_eq!(
            p,
            PlatformLine {
                arch: "x86_64".into(),
                hypervisor: "kvm".into(),
                firmware: "acpi".into(),
                clock: "kvmclock".into(),
                cpus: 4,
                mem_mib: 512,
            }
        );
    }

    #[test]
    fn platform_line_through_xen_console_and_crlf() {
        let line = "(XEN) DOM1: platform: arch=aarch64 hypervisor=xen firmware=dt clock=cntvct cpus=1 mem=256MiB\r";
        let p = PlatformLine::parse(line).unwrap().unwrap();
        assert_eq!((p.hypervisor.as_str(), p.cpus, p.mem_mib), ("xen", 1, 256));
        let line =
            "(d1) platform: arch=aarch64 hypervisor=xen firmware=dt clock=c(x) cpus=2 mem=8MiB";
        assert_eq!(PlatformLine::parse(line).unwrap().unwrap().clock, "c(x)");
    }

    #[test]
    fn platform_line_errors() {
        assert_eq!(PlatformLine::parse("skiff: booting"), None);
        assert_eq!(PlatformLine::parse("xplatform: arch=x"), None);
        assert_eq!(
            PlatformLine::parse(&LINE.replace(" cpus=4", "")).unwrap(),
            Err(PlatformLineError::Missing("cpus"))
        );
        assert_eq!(
            PlatformLine::parse(&LINE.replace("cpus=4", "cpus=four")).unwrap(),
            Err(PlatformLineError::BadNumber {
                key: "cpus",
                value: "four".into()
            })
        );
        assert_eq!(
            PlatformLine::parse(&LINE.replace("mem=512MiB", "mem=lots")).unwrap(),
            Err(PlatformLineError::BadNumber {
                key: "mem",
                value: "lots".into()
            })
        );
        assert_eq!(
            PlatformLine::parse("platform: detect hypervisor=tcg by=cpuid"),
            None
        );
        assert_eq!(
            PlatformLine::parse("platform: cpus=1 source=cpuid-bh"),
            None
        );
        assert!(matches!(
            PlatformLine::parse("platform: arch=x86_64 garbage").unwrap(),
            Err(PlatformLineError::NotKeyValue(_))
        ));
    }

    #[test]
    fn ktest_summary() {
        assert_eq!(
            KtestSummary::parse("ktest: 12 passed, 0 failed"),
            Some(KtestSummary {
                passed: 12,
                failed: 0
            })
        );
        assert_eq!(
            KtestSummary::parse("(d1) ktest: 3 passed, 2 failed, 1 skipped"),
            Some(KtestSummary {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(KtestSummary::parse("ktest: frame_alloc ... ok"), None);
        assert_eq!(KtestSummary::parse("ktest: x passed, 0 failed"), None);
    }

    #[test]
    fn exit_status_line() {
        assert_eq!(parse_exit_status("skiff: exit status=0"), Some(0));
        assert_eq!(parse_exit_status("skiff: exit status=255\r"), Some(255));
        assert_eq!(
            parse_exit_status("(XEN) DOM1: skiff: exit status=3"),
            Some(3)
        );
        assert_eq!(parse_exit_status("skiff: exit status=256"), None);
        assert_eq!(parse_exit_status("echo skiff: exit status=0"), None);
        assert_eq!(parse_exit_status("skiff: exit status="), None);
    }

    #[test]
    fn backtrace_pc() {
        assert_eq!(
            parse_backtrace_pc("backtrace: #0 pc=0xffffffff80001234"),
            Some(0xffff_ffff_8000_1234)
        );
        assert_eq!(
            parse_backtrace_pc("backtrace: #12 pc=0x10 extra"),
            Some(0x10)
        );
        assert_eq!(parse_backtrace_pc("backtrace: #1 pc=zz"), None);
        assert_eq!(parse_backtrace_pc("trace: #1 pc=0x10"), None);
    }

    #[test]
    fn kernel_lines_and_program_output() {
        for k in [
            "skiff: booting protocol=pvh",
            "platform: arch=x86_64 hypervisor=tcg",
            "linux: unimplemented syscall name=foo",
            "qemu: qemu-system-x86_64: warning",
            "(XEN) DOM1: sched: cpus_online=1",
            "x86_64.fault-2: x",
        ] {
            assert!(is_kernel_line(k), "{k}");
        }
        for p in [
            "hello=world",
            "argv[0]=</app/hello>",
            "Hello: world",
            "env <PATH=/bin>",
            "",
            "no colon here",
            "key:value",
            "two words: x",
        ] {
            assert!(!is_kernel_line(p), "{p}");
        }
        let log: Vec<String> = [
            "skiff: booting",
            "hello=world\r",
            "linux: exec path=/app/hello",
            "argc=1",
            "skiff: exit status=0",
            "after=1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(program_output(&log), ["hello=world", "argc=1"]);
    }

    #[test]
    fn prefixes_that_are_not_xen_are_kept() {
        assert_eq!(guest_text("(dx) platform:"), "(dx) platform:");
        assert_eq!(guest_text("DOMAIN: x"), "DOMAIN: x");
        assert_eq!(guest_text("do: x"), "do: x");
    }
}
