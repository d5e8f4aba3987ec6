//! The Linux personality: what a Linux program sees of Skiff. Processes
//! (one per VM: the app, its threads), `execve` of ELF programs, the system
//! calls behind the one table in [`crate::syscall`], user memory access,
//! file descriptors over the VFS, signals.
//!
//! Every handler takes `&mut dyn Ctx`: the real process on the target, a
//! fake in host tests, so the handlers' logic is tested with `cargo test`.
//! May use: `fs`, `mm`, `sched`, `sync`, `loader`, `syscall`; the arch only
//! through `app` and `uaccess` (target builds).

#[cfg(target_os = "none")]
pub mod app;
pub mod bounce;
pub mod crash;
pub mod creds;
pub mod exec;
pub mod fd;
pub mod futex;
pub mod itimer;
pub mod memory;
pub mod misc;
pub mod process;
pub mod signal;
pub mod socket;
pub mod table;
pub mod thread;
#[cfg(target_os = "none")]
pub mod uaccess;
pub mod vdso;

use crate::errno::Errno;
use alloc::string::String;
use alloc::sync::Arc;

/// The longest path a syscall accepts, NUL included (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// The context type handlers take: `dyn Ctx` with the `'static` bound
/// the table's `Handler<dyn Ctx>` names.
pub type Cx = dyn Ctx;

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

    // Added for the process, memory and misc calls (linux/{process,
    // memory,misc}.rs). Defaults let contexts that only serve file calls
    // (the file syscalls' host fakes) leave them out: the process calls
    // then answer ENOSYS. The real thread context provides them all.

    /// The process: memory, identity, limits, signal dispositions.
    fn task(&self) -> Option<&process::Task> {
        None
    }
    /// The calling thread's own Linux state.
    fn thread(&self) -> Option<&process::ThreadState> {
        None
    }
    /// The file behind descriptor `fd`, for `mmap`: EBADF if not open,
    /// EACCES if not open for reading, ENODEV if it cannot be mapped.
    fn mmap_file(&self, _fd: i32) -> Result<MmapFile, Errno> {
        Err(Errno::ENODEV)
    }

    // Threads and futexes (linux/{thread,futex}.rs): the blocking and the
    // thread start are the target's; the decoding is shared.

    /// `FUTEX_WAIT(_BITSET)`: sleeps while the word at `addr` is `val`
    /// until a matching wake or `deadline` (absolute monotonic ns).
    fn futex_wait(
        &mut self,
        _addr: usize,
        _val: u32,
        _bitset: u32,
        _deadline: futex::Deadline,
    ) -> Result<usize, Errno> {
        Err(Errno::ENOSYS)
    }
    /// `FUTEX_WAKE(_BITSET)`: wakes up to `n`; how many woke.
    fn futex_wake(&mut self, _addr: usize, _n: usize, _bitset: u32) -> Result<usize, Errno> {
        Err(Errno::ENOSYS)
    }
    /// `FUTEX_(CMP_)REQUEUE`.
    fn futex_requeue(
        &mut self,
        _from: usize,
        _to: usize,
        _nwake: usize,
        _nmove: usize,
        _cmp: Option<u32>,
    ) -> Result<usize, Errno> {
        Err(Errno::ENOSYS)
    }
    /// Starts `thread` as a copy of the calling thread (registers as at
    /// this syscall), returning 0 in it, on `start.stack` (0: the
    /// caller's) with TLS `start.tls` (None: the caller's).
    fn spawn_thread(
        &mut self,
        _thread: Arc<process::ThreadState>,
        _start: thread::Start,
    ) -> Result<(), Errno> {
        Err(Errno::ENOSYS)
    }
    /// Ends the calling thread (not the process). Does not return on the
    /// target.
    fn exit_thread(&mut self) -> Result<usize, Errno> {
        Err(Errno::ENOSYS)
    }
}

/// What `mmap` needs of an open file.
pub struct MmapFile {
    pub inode: Arc<dyn crate::fs::Inode>,
    /// Opened for writing too (shared writable mappings need it).
    pub writable: bool,
    /// The path shown in `/proc/self/maps`.
    pub path: String,
}
pub mod files;

// In-kernel tests of each arch's user-mode edge (raw user code, own hooks).
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod user_ktests_aarch64;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod user_ktests_x86_64;
