//! Skiff's arch-neutral core: memory (frames, heap), time, the command line,
//! the in-kernel test runner, the console, and the boot sequence (`start`).
//!
//! May depend on everything below it: `platform`, `drivers`, and the arch
//! crate of the target (imported once, as `arch`). Modules that only make
//! sense on the target are gated on `target_os = "none"`; everything else is
//! host-tested with `cargo test -p skiff-kernel`. Unsafe code is denied here
//! except in the one place that hands raw RAM to the heap allocator.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod boottime;
pub mod cmdline;
pub mod loader;
pub mod mm;
pub mod sched;
#[cfg(skiff_threads)]
pub mod sync;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod start;
#[cfg(target_os = "none")]
mod tests;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod trap;

/// Exit status when the kernel itself cannot go on (bad boot data, bad
/// command line). Distinct from any status an application returns by
/// convention (see docs/exit-status.md).
pub const EXIT_KERNEL_FAILURE: u8 = 254;
/// Exit status after a kernel panic.
pub const EXIT_KERNEL_PANIC: u8 = 255;

/// What the platform layer found, for anything that reports on it later.
#[cfg(target_os = "none")]
pub static PLATFORM: spin::Once<skiff_platform::Platform> = spin::Once::new();
