//! Choosing the accelerator: KVM when it is real and fits the guest, TCG
//! otherwise, always with the reason printed (`skiff: accel=tcg (reason)`).
//!
//! The decision is pure logic over [`HostFacts`] so it is host-tested; only
//! [`HostFacts::probe`] looks at the machine.

use crate::boards::{Arch, Board};
use std::fmt;
use std::path::Path;

/// What the user asked for with `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelRequest {
    Auto,
    Tcg,
    Kvm,
}

impl AccelRequest {
    pub fn parse(s: &str) -> Option<AccelRequest> {
        match s {
            "auto" => Some(AccelRequest::Auto),
            "tcg" => Some(AccelRequest::Tcg),
            "kvm" => Some(AccelRequest::Kvm),
            _ => None,
        }
    }
}

/// The accelerator a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// The facts about the host the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    pub host_arch: Option<Arch>,
    /// `/dev/kvm` opens read-write.
    pub kvm_usable: bool,
    /// `/sys/module/kvm_pvm` exists: KVM is the software PVM module, which
    /// emulates guest kernel code at about a million instructions a second.
    pub kvm_pvm: bool,
}

impl HostFacts {
    pub fn probe() -> HostFacts {
        let kvm_usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        HostFacts {
            host_arch: Arch::host(),
            kvm_usable,
            kvm_pvm: Path::new("/sys/module/kvm_pvm").exists(),
        }
    }
}

/// Why an accelerator was chosen; printed after `accel=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Requested,
    KvmAvailable,
    NoKvmDevice,
    KvmIsPvm,
    ForeignArch,
    BoardNeedsTcg,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Requested => "requested with --accel",
            Reason::KvmAvailable => "/dev/kvm is usable and the guest arch matches the host",
            Reason::NoKvmDevice => "/dev/kvm is missing or not accessible",
            Reason::KvmIsPvm => {
                "/dev/kvm is the software kvm_pvm module (/sys/module/kvm_pvm), slower than TCG for kernels"
            }
            Reason::ForeignArch => "the guest arch differs from the host arch",
            Reason::BoardNeedsTcg => "the board says kvm = false",
        })
    }
}

/// Why `--accel kvm` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccelError {
    #[error("--accel kvm: /dev/kvm is missing or not accessible (is the kvm module loaded, are you in group kvm?)")]
    NoKvmDevice,
    #[error("--accel kvm: a {guest} guest cannot use KVM on a {host} host")]
    ForeignArch {
        guest: &'static str,
        host: &'static str,
    },
    #[error("--accel kvm: board {0} runs only under TCG (kvm = false)")]
    BoardNeedsTcg(String),
}

/// The accelerator a run uses and why; a warning to print when the user
/// forced something unwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub accel: Accel,
    pub reason: Reason,
    pub warn_pvm: bool,
}

/// Decides the accelerator for `board` on a host with `facts`.
pub fn decide(
    request: AccelRequest,
    facts: HostFacts,
    board: &Board,
) -> Result<Decision, AccelError> {
    let tcg = |reason| Decision {
        accel: Accel::Tcg,
        reason,
        warn_pvm: false,
    };
    let foreign = facts.host_arch != Some(board.arch);
    match request {
        AccelRequest::Tcg => Ok(tcg(Reason::Requested)),
        AccelRequest::Kvm => {
            if !board.kvm {
                Err(AccelError::BoardNeedsTcg(board.name.clone()))
            } else if foreign {
                Err(AccelError::ForeignArch {
                    guest: board.arch.name(),
                    host: facts.host_arch.map_or("unknown", Arch::name),
                })
            } else if !facts.kvm_usable {
                Err(AccelError::NoKvmDevice)
            } else {
                Ok(Decision {
                    accel: Accel::Kvm,
                    reason: Reason::Requested,
                    warn_pvm: facts.kvm_pvm,
                })
            }
        }
        AccelRequest::Auto => Ok(if !board.kvm {
            tcg(Reason::BoardNeedsTcg)
        } else if foreign {
            tcg(Reason::ForeignArch)
        } else if !facts.kvm_usable {
            tcg(Reason::NoKvmDevice)
        } else if facts.kvm_pvm {
            tcg(Reason::KvmIsPvm)
        } else {
            Decision {
                accel: Accel::Kvm,
                reason: Reason::KvmAvailable,
                warn_pvm: false,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::Board;
    use std::path::Path;

    fn board(arch: &str, kvm: bool) -> Board {
        let (boot, exit, qemu) = if arch == "x86_64" {
            ("pvh", "isa-debug-exit", "qemu-system-x86_64")
        } else {
            ("arm-image", "semihosting", "qemu-system-aarch64")
        };
        let text = format!(
            "name = \"b\"\ndescription = \"\"\narch = \"{arch}\"\nboot = \"{boot}\"\nqemu = \"{qemu}\"\n\
             machine = \"m\"\ncpu = \"max\"\nkvm = {kvm}\nmemory_mib = 128\nexit_device = \"{exit}\"\n\
             image_format = \"kernel\"\n[test]\nexpect_hypervisor = \"tcg\"\nsmp = [1]\n"
        );
        Board::parse(&text, Path::new("b.toml")).unwrap()
    }

    const REAL_KVM: HostFacts = HostFacts {
        host_arch: Some(Arch::X86_64),
        kvm_usable: true,
        kvm_pvm: false,
    };

    #[test]
    fn auto_uses_real_kvm() {
        let d = decide(AccelRequest::Auto, REAL_KVM, &board("x86_64", true)).unwrap();
        assert_eq!((d.accel, d.reason), (Accel::Kvm, Reason::KvmAvailable));
    }

    #[test]
    fn auto_refuses_kvm_pvm() {
        let facts = HostFacts {
            kvm_pvm: true,
            ..REAL_KVM
        };
        let d = decide(AccelRequest::Auto, facts, &board("x86_64", true)).unwrap();
        assert_eq!((d.accel, d.reason), (Accel::Tcg, Reason::KvmIsPvm));
    }

    #[test]
    fn auto_falls_back_without_device_foreign_arch_or_board_opt_out() {
        let facts = HostFacts {
            kvm_usable: false,
            ..REAL_KVM
        };
        let d = decide(AccelRequest::Auto, facts, &board("x86_64", true)).unwrap();
        assert_eq!(d.reason, Reason::NoKvmDevice);
        let d = decide(AccelRequest::Auto, REAL_KVM, &board("aarch64", true)).unwrap();
        assert_eq!((d.accel, d.reason), (Accel::Tcg, Reason::ForeignArch));
        let d = decide(AccelRequest::Auto, REAL_KVM, &board("x86_64", false)).unwrap();
        assert_eq!(d.reason, Reason::BoardNeedsTcg);
    }

    #[test]
    fn explicit_requests() {
        let d = decide(AccelRequest::Tcg, REAL_KVM, &board("x86_64", true)).unwrap();
        assert_eq!((d.accel, d.reason), (Accel::Tcg, Reason::Requested));
        let facts = HostFacts {
            kvm_pvm: true,
            ..REAL_KVM
        };
        let d = decide(AccelRequest::Kvm, facts, &board("x86_64", true)).unwrap();
        assert_eq!(d.accel, Accel::Kvm);
        assert!(d.warn_pvm);
        assert_eq!(
            decide(
                AccelRequest::Kvm,
                HostFacts {
                    kvm_usable: false,
                    ..REAL_KVM
                },
                &board("x86_64", true)
            ),
            Err(AccelError::NoKvmDevice)
        );
        assert!(matches!(
            decide(AccelRequest::Kvm, REAL_KVM, &board("aarch64", true)),
            Err(AccelError::ForeignArch { .. })
        ));
        assert!(matches!(
            decide(AccelRequest::Kvm, REAL_KVM, &board("x86_64", false)),
            Err(AccelError::BoardNeedsTcg(_))
        ));
    }
}
