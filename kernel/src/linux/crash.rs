//! What happens when the app takes a fault Skiff cannot fix by paging in:
//! the signal Linux would raise (decoded from the arch's syndrome), and,
//! since signal handlers are not delivered yet, the crash report — the
//! signal and faulting address, the registers, the app's mapped objects
//! in `/proc/self/maps` form — then exit status 128 + signal, as a shell
//! reports a process killed by that signal.

use super::memory::Segv;
use crate::syscall::Arch;
use alloc::string::String;
use core::fmt::Write;
use skiff_arch_api::{Access, Fault};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Sigill = 4,
    Sigtrap = 5,
    Sigbus = 7,
    Sigfpe = 8,
    Sigsegv = 11,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Sigill => "SIGILL",
            Signal::Sigtrap => "SIGTRAP",
            Signal::Sigbus => "SIGBUS",
            Signal::Sigfpe => "SIGFPE",
            Signal::Sigsegv => "SIGSEGV",
        }
    }

    /// The exit status of a process killed by this signal.
    pub fn exit_status(self) -> u8 {
        128 + self as u8
    }
}

/// The signal for a user fault, and a short reason, from the arch's raw
/// syndrome (x86_64: vector << 32 | error code; aarch64: ESR_EL1).
pub fn classify(arch: Arch, f: &Fault) -> (Signal, &'static str) {
    match arch {
        Arch::X86_64 => match f.syndrome >> 32 {
            0 => (Signal::Sigfpe, "integer divide error"),
            1 | 3 => (Signal::Sigtrap, "breakpoint"),
            4 => (Signal::Sigsegv, "overflow"),
            5 => (Signal::Sigsegv, "bound range exceeded"),
            6 => (Signal::Sigill, "invalid opcode"),
            7 => (Signal::Sigfpe, "device not available"),
            13 => (Signal::Sigsegv, "general protection"),
            12 => (Signal::Sigbus, "stack segment"),
            14 => (Signal::Sigsegv, page_reason(f)),
            16 | 19 => (Signal::Sigfpe, "floating-point exception"),
            17 => (Signal::Sigbus, "alignment check"),
            _ => (Signal::Sigsegv, "unexpected exception"),
        },
        Arch::Aarch64 => {
            let ec = (f.syndrome >> 26) & 0x3f;
            let fsc = f.syndrome & 0x3f;
            match ec {
                0x00 | 0x0e => (Signal::Sigill, "undefined instruction"),
                0x20 | 0x21 | 0x24 | 0x25 if fsc == 0x21 => (Signal::Sigbus, "alignment fault"),
                0x20 | 0x21 | 0x24 | 0x25 => (Signal::Sigsegv, page_reason(f)),
                0x22 => (Signal::Sigbus, "pc alignment fault"),
                0x26 => (Signal::Sigbus, "sp alignment fault"),
                0x28 | 0x2c => (Signal::Sigfpe, "floating-point exception"),
                0x30..=0x35 | 0x38 | 0x3c => (Signal::Sigtrap, "breakpoint"),
                _ => (Signal::Sigill, "unexpected exception"),
            }
        }
    }
}

/// Whether `f` is a translation or permission fault on a data or
/// instruction access (what demand paging may fix), as opposed to an
/// alignment fault or a non-memory exception.
pub fn is_page_fault(arch: Arch, f: &Fault) -> bool {
    match arch {
        Arch::X86_64 => f.syndrome >> 32 == 14,
        Arch::Aarch64 => {
            let ec = (f.syndrome >> 26) & 0x3f;
            matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) && f.syndrome & 0x3f != 0x21
        }
    }
}

fn page_reason(f: &Fault) -> &'static str {
    match (f.protection, f.access) {
        (false, _) => Segv::NotMapped.reason(),
        (true, Access::Execute) => "execute permission denied",
        (true, Access::Write) => "write permission denied",
        (true, _) => Segv::Permission.reason(),
    }
}

/// The report, line by line as printed: the headline, the registers,
/// then the mapped objects.
pub fn report(signal: Signal, reason: &str, f: &Fault, regs: &str, maps: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "app: {} at addr={:#x} pc={:#x} ({reason})",
        signal.name(),
        f.addr,
        f.pc
    );
    for line in regs.lines() {
        let _ = writeln!(out, "app:   {line}");
    }
    let _ = writeln!(out, "app: mapped objects:");
    for line in maps.lines() {
        let _ = writeln!(out, "app:   {line}");
    }
    let _ = writeln!(
        out,
        "app: killed by {} (exit status {})",
        signal.name(),
        signal.exit_status()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(syndrome: u64, protection: bool, access: Access) -> Fault {
        Fault {
            name: "test",
            access,
            addr: 0,
            pc: 0x401000,
            user: true,
            syndrome,
            protection,
        }
    }

    #[test]
    fn x86_vectors_map_to_linux_signals() {
        let c = |v: u64, p| classify(Arch::X86_64, &fault(v << 32 | 4, p, Access::Read)).0;
        assert_eq!(c(14, false), Signal::Sigsegv);
        assert_eq!(c(0, false), Signal::Sigfpe);
        assert_eq!(c(6, false), Signal::Sigill);
        assert_eq!(c(13, false), Signal::Sigsegv);
        assert_eq!(c(17, false), Signal::Sigbus);
        assert_eq!(
            classify(Arch::X86_64, &fault(14 << 32, false, Access::Read)).1,
            "address not mapped"
        );
        assert_eq!(
            classify(Arch::X86_64, &fault(14 << 32 | 7, true, Access::Write)).1,
            "write permission denied"
        );
    }

    #[test]
    fn aarch64_esr_classes_map_to_linux_signals() {
        let esr = |ec: u64, iss: u64| ec << 26 | 1 << 25 | iss;
        let c = |s| classify(Arch::Aarch64, &fault(s, false, Access::Read)).0;
        assert_eq!(c(esr(0x24, 0x05)), Signal::Sigsegv, "translation fault");
        assert_eq!(c(esr(0x24, 0x21)), Signal::Sigbus, "alignment");
        assert_eq!(c(esr(0x00, 0)), Signal::Sigill);
        assert_eq!(c(esr(0x3c, 0)), Signal::Sigtrap);
        assert_eq!(c(esr(0x20, 0x0f)), Signal::Sigsegv, "instruction abort");
    }

    #[test]
    fn report_names_signal_address_registers_and_maps() {
        let f = Fault {
            addr: 0,
            pc: 0x401136,
            ..fault(14 << 32 | 4, false, Access::Read)
        };
        let r = report(
            Signal::Sigsegv,
            "address not mapped",
            &f,
            "rax=0\nrip=0x401136",
            "00400000-00401000 r--p 00000000 00:00 0 \n",
        );
        let lines: alloc::vec::Vec<&str> = r.lines().collect();
        assert_eq!(
            lines[0],
            "app: SIGSEGV at addr=0x0 pc=0x401136 (address not mapped)"
        );
        assert!(lines.contains(&"app:   rip=0x401136"));
        assert!(lines.contains(&"app:   00400000-00401000 r--p 00000000 00:00 0 "));
        assert_eq!(
            *lines.last().unwrap(),
            "app: killed by SIGSEGV (exit status 139)"
        );
        assert_eq!(Signal::Sigill.exit_status(), 132);
    }
}
