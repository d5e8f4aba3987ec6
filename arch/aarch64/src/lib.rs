//! Skiff's aarch64 arch crate: everything that touches the CPU directly.
//!
//! * [`boot`] — the Linux arm64 `Image` header and entry (DTB in `x0`), the
//!   drop from EL2 to EL1, the boot page tables and the jump to the high half,
//!   then the kernel's entry function (named with [`entry!`]).
//! * [`mm`] — the kernel's page tables: the W^X image, the direct map, the MMIO
//!   window, 4 KiB mappings for the kernel above.
//! * [`trap`] — exception vectors (`VBAR_EL1`), fault decoding, `catch_fault`.
//! * [`irq`] — GICv2 and GICv3; [`timer`] — the generic timer (virtual);
//!   [`power`] — PSCI and semihosting exit; [`backtrace`] — frame pointers.
//! * [`context`] — thread contexts and the switch; [`fpu`] — FP/SIMD state
//!   (trapped until first use); [`percpu`] — `TPIDR_EL1`; [`smp`] — PSCI
//!   `CPU_ON`, secondary start-up, SGI IPIs.
//! * [`cpu`], [`smccc`], [`sysreg`] — small CPU helpers; the last two are
//!   arch-only extras for the platform crate (hypervisor UID, MIDR, ...).
//!
//! The contract this crate implements is `docs/arch-contract.md`; the shared
//! types are in [`api`]. Nothing here calls the kernel by name: the kernel
//! passes its entry with [`entry!`] and its trap handler with
//! [`trap::set_handler`].
#![no_std]
// Kernel target only: on a host build of the workspace this crate is empty.
#![cfg(all(target_arch = "aarch64", target_os = "none"))]

pub use skiff_arch_api as api;

pub mod backtrace;
pub mod boot;
pub mod context;
pub mod cpu;
pub mod fpu;
mod gic;
pub mod irq;
pub mod mm;
pub mod percpu;
pub mod power;
pub mod smccc;
pub mod smp;
pub mod sysreg;
pub mod timer;
pub mod trap;
pub mod user;

mod early_console;

pub use early_console::{console_set_early_uart, early_print};

/// Names the kernel's Rust entry point. The boot code calls it once, on the
/// boot CPU, with interrupts off, the kernel's page tables active and the
/// exception vectors installed.
///
/// ```ignore
/// skiff_arch_aarch64::entry!(kernel_main); // fn kernel_main(args: BootArgs) -> !
/// ```
#[macro_export]
macro_rules! entry {
    ($path:path) => {
        /// The symbol the arch's boot code calls (see `boot.rs`).
        #[unsafe(no_mangle)]
        extern "Rust" fn __skiff_kernel_entry(args: $crate::api::BootArgs) -> ! {
            let f: fn($crate::api::BootArgs) -> ! = $path;
            f(args)
        }
    };
}
