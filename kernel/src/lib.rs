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

// The loom model run (`RUSTFLAGS=--cfg loom`, part of `cargo skiff test`)
// builds only the lock-free wakeup queue, on loom's atomics and Arc: the rest
// of the kernel is not modelled and would not type-check against loom's Arc.
#[cfg(loom)]
#[path = "sched/wakeq.rs"]
pub mod wakeq;

#[cfg(not(loom))]
pub mod block;
#[cfg(not(loom))]
pub mod boottime;
#[cfg(not(loom))]
pub mod cmdline;
#[cfg(not(loom))]
pub mod errno;
#[cfg(not(loom))]
pub mod fs;
#[cfg(not(loom))]
pub mod linux;
#[cfg(not(loom))]
pub mod loader;
#[cfg(not(loom))]
pub mod mm;
#[cfg(not(loom))]
pub mod net;
#[cfg(not(loom))]
pub mod random;
#[cfg(not(loom))]
pub mod sched;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(not(loom))]
pub mod syscall;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod devices;
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
/// Exit status when the program named after `--` is not in the image (as
/// a shell's 127, "command not found"). A program that is there but cannot
/// be executed (not an ELF, wrong arch) exits 126, as in a shell.
pub const EXIT_NO_LOADER: u8 = 127;
/// Exit status after a kernel panic.
pub const EXIT_KERNEL_PANIC: u8 = 255;

/// What the platform layer found, for anything that reports on it later.
#[cfg(target_os = "none")]
pub static PLATFORM: spin::Once<skiff_platform::Platform> = spin::Once::new();
