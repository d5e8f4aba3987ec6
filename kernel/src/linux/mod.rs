//! The Linux personality: what a Linux program sees of Skiff. Processes
//! (one per VM: the app, its threads), `execve` of ELF programs, the system
//! calls behind the one table in [`crate::syscall`], user memory access,
//! file descriptors over the VFS, signals.
//!
//! Every handler takes `&mut dyn Ctx`: the real process on the target, a
//! fake in host tests, so the handlers' logic is tested with `cargo test`.
//! May use: `fs`, `mm`, `sched`, `sync`, `loader`, `syscall`; the arch only
//! through `process` (target builds).

pub mod fd;

use crate::errno::Errno;
use alloc::string::String;

/// The longest path a syscall accepts, NUL included (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// What a system-call handler may ask of the calling process and thread.
pub trait Ctx: crate::syscall::Process {
    /// Copies `buf.len()` bytes from user address `addr`; `EFAULT` when any
    /// of it is not mapped readable for the app.
    fn copy_in(&mut self, addr: usize, buf: &mut [u8]) -> Result<(), Errno>;
    /// Copies `data` to user address `addr`; `EFAULT` when not writable.
    fn copy_out(&mut self, addr: usize, data: &[u8]) -> Result<(), Errno>;
    /// A NUL-terminated string (a path) from user memory: `EFAULT`, or
    /// `ENAMETOOLONG` past [`PATH_MAX`].
    fn read_cstr(&mut self, addr: usize) -> Result<String, Errno>;
    /// The descriptor table (shared by threads made with `CLONE_FILES`).
    fn files(&self) -> &fd::FdTable;
    /// Root, working directory and umask (shared under `CLONE_FS`).
    fn fs(&self) -> &fd::FsState;
}
pub mod files;

// In-kernel tests of each arch's user-mode edge (raw user code, own hooks).
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod user_ktests_aarch64;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod user_ktests_x86_64;
