//! Skiff's x86_64 arch layer (`skiff_arch_x86_64`), the surface described in
//! `docs/arch-contract.md`:
//!
//! * [`boot`] — PVH and Linux 64-bit entries, long mode, the Rust start and
//!   the kernel's [`entry!`].
//! * [`mm`] — the kernel's page tables: W^X image, direct map, MMIO window.
//! * [`context`], [`fpu`], [`percpu`], [`smp`] — threads and CPUs.
//! * [`cpu`], [`trap`], [`irq`], [`timer`], [`power`], [`backtrace`],
//!   [`early_print`].
//! * x86-only extras for the platform layer (never the kernel): [`cpuid`],
//!   [`read_msr`]/[`write_msr`], [`port`] I/O, [`vmware_backdoor_getversion`].
//!
//! Depends on `skiff-arch-api`, `x86_64` and `spin` only. Never calls the
//! kernel by name: the kernel hands in its entry (`entry!`) and its
//! [`skiff_arch_api::TrapHandler`].
//!
//! Kernel targets only: on a host build (`cargo test --workspace`) the crate
//! is empty, since its entry code needs the kernel's linker script.
#![no_std]
#![cfg(target_os = "none")]

pub use skiff_arch_api as api;

pub mod backtrace;
pub mod boot;
pub mod context;
pub mod cpu;
pub mod fpu;
mod gdt;
pub mod irq;
pub mod mm;
pub mod percpu;
pub mod port;
pub mod power;
mod serial;
pub mod smp;
pub mod timer;
pub mod trap;
pub mod user;

pub use cpu::{cpuid, read_msr, write_msr, CpuidResult};
pub use serial::early_print;

/// VMware backdoor `GETVERSION` (port 0x5658, magic `VMXh`, command 10).
///
/// Returns `(version, product_type)` when the answer carries the magic. On a
/// machine without the backdoor the `in` reads all-ones (or faults, which is
/// caught), so this is safe to call anywhere. QEMU answers it too when its
/// `vmport` device is on (the default on `pc`/`q35`), so a reply alone does
/// not prove VMware.
pub fn vmware_backdoor_getversion() -> Option<(u32, u32)> {
    const MAGIC: u32 = 0x564d_5868;
    const PORT: u16 = 0x5658;
    const CMD_GETVERSION: u32 = 10;

    #[derive(Default)]
    struct Reply {
        eax: u32,
        ebx: u32,
        ecx: u32,
    }

    fn probe(out: usize) {
        let (eax, ebx, ecx): (u32, u64, u32);
        // SAFETY: the backdoor is an `in` from an I/O port; on machines
        // without it the port reads as all-ones and changes nothing. `rbx` is
        // reserved by LLVM, so it is swapped through a scratch register.
        unsafe {
            core::arch::asm!(
                "xchg {b}, rbx",
                "in eax, dx",
                "xchg {b}, rbx",
                b = inout(reg) u64::from(!MAGIC) => ebx,
                inout("eax") MAGIC => eax,
                inout("ecx") CMD_GETVERSION => ecx,
                in("edx") u32::from(PORT),
                options(nostack, preserves_flags),
            );
        }
        // SAFETY: `out` is the address of the `Reply` that
        // `vmware_backdoor_getversion` owns for the duration of this call.
        let reply = unsafe { &mut *(out as *mut Reply) };
        *reply = Reply {
            eax,
            ebx: ebx as u32,
            ecx,
        };
    }

    let mut reply = Reply::default();
    trap::catch_fault(probe, &mut reply as *mut Reply as usize).ok()?;
    (reply.ebx == MAGIC && reply.eax != u32::MAX).then_some((reply.eax, reply.ecx))
}

/// Stops the machine with a message on COM1, for failures before the kernel
/// has a panic handler worth calling (entry, unknown boot protocol).
pub(crate) fn early_panic(msg: &str) -> ! {
    early_print("skiff: x86_64 early failure: ");
    early_print(msg);
    early_print("\n");
    cpu::halt_forever()
}
