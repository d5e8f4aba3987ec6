//! Arm SMC Calling Convention calls (PSCI, the vendor hypervisor UID):
//! function id in w0, arguments in x1-x3, results in x0-x3. An arch-only
//! extra for the platform crate.
//!
//! Only call through the conduit the firmware names (DT `/psci` `method`):
//! an `hvc` with no hypervisor, or an `smc` with no EL3, is undefined.

use core::arch::asm;

/// SMCCC "not supported" (-1 in w0).
pub const NOT_SUPPORTED: u64 = 0xffff_ffff_ffff_ffff;

/// One SMCCC call through `hvc #0` or `smc #0`: `fid` in w0, `args` in
/// x1-x3; returns x0-x3. SMCCC 1.0 lets the callee corrupt x4-x17, so
/// they are declared clobbered.
macro_rules! smccc_call {
    ($insn:literal, $fid:expr, $args:expr) => {{
        let (x0, x1, x2, x3);
        // SAFETY: an SMCCC call; callers only use the conduit the firmware
        // named, so the instruction is defined here.
        unsafe {
            asm!(
                $insn,
                inout("x0") $fid as u64 => x0,
                inout("x1") $args[0] => x1,
                inout("x2") $args[1] => x2,
                inout("x3") $args[2] => x3,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
                options(nostack)
            );
        }
        [x0, x1, x2, x3]
    }};
}

/// SMCCC call to the hypervisor (`hvc #0`).
pub fn smccc_hvc(fid: u32, args: [u64; 3]) -> [u64; 4] {
    smccc_call!("hvc #0", fid, args)
}

/// SMCCC call to the secure monitor (`smc #0`).
pub fn smccc_smc(fid: u32, args: [u64; 3]) -> [u64; 4] {
    smccc_call!("smc #0", fid, args)
}
