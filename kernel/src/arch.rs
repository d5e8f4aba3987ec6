//! The one place the kernel names an arch crate: everything else says `arch::`.
#[cfg(target_arch = "aarch64")]
pub use skiff_arch_aarch64::*;
#[cfg(target_arch = "x86_64")]
pub use skiff_arch_x86_64::*;
