//! Leaving the VM: semihosting `SYS_EXIT_EXTENDED` (test boards under QEMU
//! `-semihosting`, carries the exit code to QEMU's own exit status) or PSCI
//! `SYSTEM_OFF` / `SYSTEM_RESET` through the conduit the firmware named.
//!
//! The kernel prints `skiff: exit status=N` before calling `exit`, so where
//! no semihosting exists (Xen, clouds) the host reads the status from that
//! line (see `skiff_arch_api::exit`).

use crate::{cpu, smccc, trap};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// How PSCI is reached (DT `/psci` `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u32 = 0x8400_0009;

/// Semihosting operation and reason codes (Arm semihosting spec v2).
const SYS_EXIT_EXTENDED: u64 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);
/// 0 = unknown, 1 = HVC, 2 = SMC.
static CONDUIT: AtomicU8 = AtomicU8::new(0);

/// Arch extra for the platform: the PSCI conduit from the DT.
pub fn set_psci_conduit(c: PsciConduit) {
    CONDUIT.store(
        match c {
            PsciConduit::Hvc => 1,
            PsciConduit::Smc => 2,
        },
        Ordering::SeqCst,
    );
}

/// The conduit set by the platform, if any.
pub fn psci_conduit() -> Option<PsciConduit> {
    match CONDUIT.load(Ordering::SeqCst) {
        1 => Some(PsciConduit::Hvc),
        2 => Some(PsciConduit::Smc),
        _ => None,
    }
}

/// An SMCCC call through the PSCI conduit; None when no conduit is known.
pub fn smccc_call(fid: u32, args: [u64; 3]) -> Option<[u64; 4]> {
    match psci_conduit()? {
        PsciConduit::Hvc => Some(smccc::smccc_hvc(fid, args)),
        PsciConduit::Smc => Some(smccc::smccc_smc(fid, args)),
    }
}

/// An SMCCC call through `conduit` that survives a conduit with nothing
/// behind it: an `hvc`/`smc` nobody implements is an undefined instruction,
/// caught here (None). For probing optional services (the vendor
/// hypervisor UID) on machines whose firmware may not answer them.
pub fn smccc_call_guarded(conduit: PsciConduit, fid: u32, args: [u64; 3]) -> Option<[u64; 4]> {
    struct Call {
        conduit: PsciConduit,
        fid: u32,
        args: [u64; 3],
        result: [u64; 4],
    }
    fn run(call: usize) {
        // SAFETY: `call` is the address of the `Call` below, live and not
        // otherwise borrowed while `catch_fault` runs this.
        let call = unsafe { &mut *(call as *mut Call) };
        call.result = match call.conduit {
            PsciConduit::Hvc => smccc::smccc_hvc(call.fid, call.args),
            PsciConduit::Smc => smccc::smccc_smc(call.fid, call.args),
        };
    }
    let mut call = Call {
        conduit,
        fid,
        args,
        result: [0; 4],
    };
    trap::catch_fault(run, &raw mut call as usize).ok()?;
    Some(call.result)
}

/// Test boards (kernel command line `debug_exit=1`): `exit` tries
/// semihosting first.
pub fn enable_debug_exit() {
    DEBUG_EXIT.store(true, Ordering::SeqCst);
}

fn semihosting_exit(code: usize) {
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, code as u64];
    // SAFETY: the semihosting trap reads the two-word parameter block at
    // x1 (a valid stack address). QEMU with `-semihosting` exits here; without
    // semihosting `hlt` is an undefined instruction, caught by `catch_fault`.
    unsafe {
        asm!(
            "hlt #0xf000",
            inout("x0") SYS_EXIT_EXTENDED => _,
            in("x1") block.as_ptr(),
            options(nostack)
        )
    };
}

/// A PSCI call that must not be lost because the platform has not named
/// the conduit yet (an exit before `probe::init`). Then the conduits are
/// tried, each guarded against trapping: entered at EL1 a hypervisor (or
/// firmware behind it) sits above us and answers HVC; entered at EL2 there
/// is no hypervisor, so only SMC can reach firmware.
fn psci_call_any(fid: u32) {
    if smccc_call(fid, [0; 3]).is_some() {
        return;
    }
    let conduits: &[PsciConduit] = if crate::boot::entry_level() == 2 {
        &[PsciConduit::Smc]
    } else {
        &[PsciConduit::Hvc, PsciConduit::Smc]
    };
    for &c in conduits {
        let _ = smccc_call_guarded(c, fid, [0; 3]);
    }
}

/// Leaves the VM with `code`. Prints nothing.
pub fn exit(code: u8) -> ! {
    cpu::disable_interrupts();
    if DEBUG_EXIT.load(Ordering::SeqCst) {
        // Returns only if semihosting is absent (or ignored the call).
        let _ = trap::catch_fault(semihosting_exit, code as usize);
    }
    psci_call_any(PSCI_SYSTEM_OFF);
    cpu::halt_forever()
}

/// Resets the VM through PSCI; halts if that is impossible.
pub fn reset() -> ! {
    cpu::disable_interrupts();
    psci_call_any(PSCI_SYSTEM_RESET);
    cpu::halt_forever()
}
