//! The process: Skiff runs one per VM. [`Task`] is what its threads share
//! (memory, identity, limits, signal dispositions, the executable's path);
//! [`ThreadState`] is one thread's own Linux state (tid, signal mask,
//! `set_tid_address`, robust list). [`Services`] is what the handlers need
//! from the kernel around them (clocks, sleeping, randomness, the TLS
//! register, exit), so the handlers are host-tested with fakes.
//!
//! Identity: the app is pid 1 and its first thread tid 1, as the first
//! process of a container is; ppid 0; it runs as root (uid/gid 0).

use super::memory::Memory;
use crate::errno::{Errno, KResult};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The app's process id (and its main thread's id).
pub const PID: u32 = 1;

/// Number of signals (1..=64).
pub const NSIG: usize = 64;

/// A raw kernel `struct sigaction` (x86_64 and aarch64 share it: handler,
/// flags, restorer, mask; 32 bytes).
pub type SigAction = [u8; 32];

/// `RLIMIT_*` resources (0..16).
pub const RLIM_NLIMITS: usize = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_NOFILE: usize = 7;

/// Default stack size (and `RLIMIT_STACK`): 8 MiB, as on Linux.
pub const STACK_SIZE: u64 = 8 << 20;

fn default_limits() -> [(u64, u64); RLIM_NLIMITS] {
    let mut l = [(RLIM_INFINITY, RLIM_INFINITY); RLIM_NLIMITS];
    l[RLIMIT_STACK] = (STACK_SIZE, RLIM_INFINITY);
    l[RLIMIT_CORE] = (0, RLIM_INFINITY);
    l[RLIMIT_NOFILE] = (1024, 4096);
    l[8] = (8 << 20, 8 << 20); // RLIMIT_MEMLOCK
    l[11] = (0, 0); // RLIMIT_SIGPENDING: no queued signals yet
    l[12] = (819_200, 819_200); // RLIMIT_MSGQUEUE
    l[13] = (0, 0); // RLIMIT_NICE
    l[14] = (0, 0); // RLIMIT_RTPRIO
    l
}

/// What the handlers ask of the kernel around them.
pub trait Services: Sync {
    /// Nanoseconds since boot.
    fn monotonic_ns(&self) -> u64;
    /// Nanoseconds since the Unix epoch (see `misc` for where it comes
    /// from when the platform has no wall clock).
    fn realtime_ns(&self) -> u64;
    /// Blocks the calling thread until `monotonic_ns() >= deadline`.
    fn sleep_until(&self, deadline_ns: u64);
    fn yield_now(&self);
    /// Fills `buf` from the kernel's random pool; false if unseeded.
    fn random(&self, buf: &mut [u8]) -> bool;
    /// The calling thread's TLS register (FS base / TPIDR_EL0).
    fn tls(&self) -> usize;
    fn set_tls(&self, v: usize);
    /// Online CPUs.
    fn cpus(&self) -> u32;
    /// (total, free) bytes of RAM.
    fn memory_bytes(&self) -> (u64, u64);
    /// Ends the app with `status` (the VM's exit status). Does not return
    /// on the target; fakes record it and return.
    fn exit_group(&self, status: u8);
    /// Whether `--strace` is on.
    fn tracing(&self) -> bool;
    /// Returns once every CPU has executed a full memory barrier since the
    /// call (`membarrier`): the target waits for an RCU grace period.
    fn barrier_all_cpus(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    // `execve` (see `exec`): the two steps around the new image that only
    // the target can take. Single-threaded fakes keep the defaults.

    /// Ends every other thread of the process and returns once none of
    /// them runs any more (their user memory may then be unmapped).
    fn end_other_threads(&self) {}
    /// After the new image is mapped: the calling thread becomes the
    /// process's main thread (tid = pid) with signal mask `sigmask`, its
    /// pending signals kept, and, when the current system call returns,
    /// resumes in user mode at `pc` with stack `sp`, every other register
    /// zero and the TLS register 0.
    fn exec_restart(&self, _pc: u64, _sp: u64, _sigmask: u64) {}
}

/// What every thread of the app shares.
pub struct Task {
    memory: Memory,
    services: &'static dyn Services,
    /// The executable's absolute path (`/proc/self/exe`); `execve`
    /// replaces it.
    exe: spin::Mutex<String>,
    /// argv as `/proc/self/cmdline` shows it (NUL-terminated strings).
    cmdline: spin::Mutex<Vec<u8>>,
    /// `comm` (`PR_SET_NAME`), 15 bytes and a NUL at most.
    name: spin::Mutex<[u8; 16]>,
    limits: spin::Mutex<[(u64, u64); RLIM_NLIMITS]>,
    actions: spin::Mutex<[SigAction; NSIG]>,
    /// Nanoseconds of monotonic time when the task started.
    started_ns: AtomicU64,
    /// The next thread id `clone` hands out (the main thread is [`PID`]).
    next_tid: AtomicU32,
    /// Threads alive (started and not yet `exit`ed).
    live: AtomicU32,
}

impl Task {
    pub fn new(memory: Memory, services: &'static dyn Services, exe: &str) -> Self {
        Task {
            memory,
            services,
            exe: spin::Mutex::new(String::from(exe)),
            cmdline: spin::Mutex::new(Vec::new()),
            name: spin::Mutex::new(comm_of(exe)),
            limits: spin::Mutex::new(default_limits()),
            actions: spin::Mutex::new([[0; 32]; NSIG]),
            started_ns: AtomicU64::new(services.monotonic_ns()),
            next_tid: AtomicU32::new(PID + 1),
            live: AtomicU32::new(1),
        }
    }

    /// A fresh thread id for `clone` (never reused: 2^32 threads away).
    pub fn alloc_tid(&self) -> u32 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// Threads alive now (`/proc/self/status` `Threads:`).
    pub fn threads(&self) -> u32 {
        self.live.load(Ordering::Acquire)
    }

    /// A new thread is about to start.
    pub fn thread_started(&self) {
        self.live.fetch_add(1, Ordering::AcqRel);
    }

    /// A thread ended (`exit`, or a failed start); true if it was the
    /// last one, whose exit ends the process.
    pub fn thread_exited(&self) -> bool {
        self.live.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn services(&self) -> &'static dyn Services {
        self.services
    }

    /// The executable's absolute path.
    pub fn exe(&self) -> String {
        self.exe.lock().clone()
    }

    /// `/proc/self/cmdline`: each argument NUL-terminated.
    pub fn cmdline(&self) -> Vec<u8> {
        self.cmdline.lock().clone()
    }

    pub fn set_cmdline(&self, argv: &[&[u8]]) {
        let mut c = Vec::with_capacity(argv.iter().map(|a| a.len() + 1).sum());
        for a in argv {
            c.extend_from_slice(a);
            c.push(0);
        }
        *self.cmdline.lock() = c;
    }

    /// `execve` succeeded: a new executable, and `comm` the base name of
    /// `name` (truncated to 15 bytes, as Linux's `__set_task_comm`).
    pub fn set_exe(&self, exe: &str, name: &str) {
        *self.exe.lock() = String::from(exe);
        *self.name.lock() = comm_of(name);
    }

    /// `execve`: handled signals go back to `SIG_DFL` (their mask and
    /// flags cleared); ignored and default ones stay as they are.
    pub fn reset_handlers(&self) {
        const SIG_IGN: u64 = 1;
        for a in self.actions.lock().iter_mut() {
            let handler = u64::from_le_bytes(a[..8].try_into().expect("8 bytes"));
            if handler > SIG_IGN {
                *a = [0; 32];
            }
        }
    }

    pub fn pid(&self) -> u32 {
        PID
    }

    pub fn name(&self) -> [u8; 16] {
        *self.name.lock()
    }

    pub fn set_name(&self, raw: &[u8]) {
        let mut n = [0u8; 16];
        let len = raw
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(raw.len())
            .min(15);
        n[..len].copy_from_slice(&raw[..len]);
        *self.name.lock() = n;
    }

    pub fn limit(&self, resource: usize) -> KResult<(u64, u64)> {
        self.limits
            .lock()
            .get(resource)
            .copied()
            .ok_or(Errno::EINVAL)
    }

    /// `setrlimit`: soft ≤ hard; raising the hard limit is allowed (root).
    pub fn set_limit(&self, resource: usize, new: (u64, u64)) -> KResult<()> {
        if new.0 > new.1 {
            return Err(Errno::EINVAL);
        }
        let mut l = self.limits.lock();
        *l.get_mut(resource).ok_or(Errno::EINVAL)? = new;
        Ok(())
    }

    /// The recorded action for `sig` (1..=64).
    pub fn action(&self, sig: usize) -> SigAction {
        self.actions.lock()[sig - 1]
    }

    pub fn set_action(&self, sig: usize, act: SigAction) {
        self.actions.lock()[sig - 1] = act;
    }

    pub fn started_ns(&self) -> u64 {
        self.started_ns.load(Ordering::Relaxed)
    }
}

/// `comm` of an executable path: its last component, 15 bytes at most.
fn comm_of(exe: &str) -> [u8; 16] {
    let mut name = [0u8; 16];
    let base = exe.rsplit('/').next().unwrap_or(exe).as_bytes();
    let n = base.len().min(15);
    name[..n].copy_from_slice(&base[..n]);
    name
}

/// One thread's Linux state.
pub struct ThreadState {
    tid: u32,
    /// Signals pending for this thread (bit `n - 1` for signal `n`); set
    /// by senders on any CPU, taken by the delivery point.
    pending: AtomicU64,
    inner: spin::Mutex<ThreadInner>,
}

#[derive(Default)]
struct ThreadInner {
    sigmask: u64,
    clear_child_tid: usize,
    robust_list: (usize, usize),
}

impl ThreadState {
    pub fn new(tid: u32) -> Self {
        ThreadState {
            tid,
            pending: AtomicU64::new(0),
            inner: spin::Mutex::new(ThreadInner::default()),
        }
    }

    /// The pending signal set (bit `n - 1` for signal `n`).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Marks signal `sig` (1..=64) pending; false if out of range.
    pub fn raise(&self, sig: usize) -> bool {
        if !(1..=NSIG).contains(&sig) {
            return false;
        }
        self.pending.fetch_or(1 << (sig - 1), Ordering::AcqRel);
        true
    }

    /// Clears signal `sig`; true if it was pending (the caller delivers it).
    pub fn take_pending(&self, sig: usize) -> bool {
        if !(1..=NSIG).contains(&sig) {
            return false;
        }
        let bit = 1u64 << (sig - 1);
        self.pending.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Replaces the whole pending set; the previous one.
    pub fn set_pending(&self, set: u64) -> u64 {
        self.pending.swap(set, Ordering::AcqRel)
    }

    pub fn tid(&self) -> u32 {
        self.tid
    }

    pub fn sigmask(&self) -> u64 {
        self.inner.lock().sigmask
    }

    /// SIGKILL and SIGSTOP can never be blocked.
    pub fn set_sigmask(&self, mask: u64) {
        const UNBLOCKABLE: u64 = 1 << (9 - 1) | 1 << (19 - 1);
        self.inner.lock().sigmask = mask & !UNBLOCKABLE;
    }

    pub fn set_clear_child_tid(&self, addr: usize) {
        self.inner.lock().clear_child_tid = addr;
    }

    pub fn clear_child_tid(&self) -> usize {
        self.inner.lock().clear_child_tid
    }

    pub fn set_robust_list(&self, head: usize, len: usize) {
        self.inner.lock().robust_list = (head, len);
    }

    pub fn robust_list(&self) -> (usize, usize) {
        self.inner.lock().robust_list
    }
}

#[cfg(test)]
pub mod fake {
    //! A process for host tests: fake pages, a fake clock, exit recorded.
    use super::*;
    use crate::linux::fd::{FdTable, FsState};
    use crate::linux::memory::fake::SharedPages;
    use crate::linux::Ctx;
    use crate::mm::vma::AddressSpace;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::sync::atomic::AtomicBool;

    pub struct FakeServices {
        pub now: AtomicU64,
        pub exited: spin::Mutex<Option<u8>>,
        pub tls: AtomicU64,
        pub seeded: AtomicBool,
        /// The last `exec_restart`: (pc, sp, sigmask).
        pub restarted: spin::Mutex<Option<(u64, u64, u64)>>,
    }

    impl Services for FakeServices {
        fn monotonic_ns(&self) -> u64 {
            self.now.load(Ordering::Relaxed)
        }
        fn realtime_ns(&self) -> u64 {
            self.now.load(Ordering::Relaxed) + 1_700_000_000_000_000_000
        }
        fn sleep_until(&self, deadline_ns: u64) {
            self.now.fetch_max(deadline_ns, Ordering::Relaxed);
        }
        fn yield_now(&self) {}
        fn random(&self, buf: &mut [u8]) -> bool {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = i as u8 ^ 0x5a;
            }
            self.seeded.load(Ordering::Relaxed)
        }
        fn tls(&self) -> usize {
            self.tls.load(Ordering::Relaxed) as usize
        }
        fn set_tls(&self, v: usize) {
            self.tls.store(v as u64, Ordering::Relaxed)
        }
        fn cpus(&self) -> u32 {
            2
        }
        fn memory_bytes(&self) -> (u64, u64) {
            (512 << 20, 256 << 20)
        }
        fn exit_group(&self, status: u8) {
            *self.exited.lock() = Some(status);
        }
        fn tracing(&self) -> bool {
            false
        }
        fn exec_restart(&self, pc: u64, sp: u64, sigmask: u64) {
            *self.restarted.lock() = Some((pc, sp, sigmask));
        }
    }

    pub const TOP: u64 = 0x7fff_ffff_f000;

    /// A fake thread of a fake process; its user memory is `pages`.
    pub struct FakeCtx {
        pub task: Task,
        pub thread: ThreadState,
        pub pages: SharedPages,
        pub services: &'static FakeServices,
        pub trace: spin::Mutex<Vec<String>>,
        /// The futex calls made, decoded (see `futex` tests).
        pub futex_calls: spin::Mutex<Vec<String>>,
    }

    impl Default for FakeCtx {
        fn default() -> Self {
            Self::new()
        }
    }

    impl FakeCtx {
        pub fn new() -> Self {
            let services: &'static FakeServices = Box::leak(Box::new(FakeServices {
                now: AtomicU64::new(5_000_000_000),
                exited: spin::Mutex::new(None),
                tls: AtomicU64::new(0),
                seeded: AtomicBool::new(true),
                restarted: spin::Mutex::new(None),
            }));
            let pages = SharedPages::default();
            let space = AddressSpace::new(0x1_0000..TOP, 0x7f00_0000_0000, 0x5555_5600_0000);
            let memory = Memory::new(space, Box::new(pages.clone()));
            FakeCtx {
                task: Task::new(memory, services, "/bin/app"),
                thread: ThreadState::new(PID),
                pages,
                services,
                trace: spin::Mutex::new(Vec::new()),
                futex_calls: spin::Mutex::new(Vec::new()),
            }
        }

        /// A scratch RW area the test writes arguments into.
        pub fn scratch(&mut self, len: u64) -> u64 {
            use crate::linux::memory::Pages;
            let mem = self.task.memory();
            let tmpl = crate::mm::vma::Vma {
                range: 0..0,
                prot: crate::mm::vma::Prot::RW,
                shared: false,
                backing: crate::mm::vma::Backing::Anonymous,
                name: None,
            };
            let start = mem
                .map_filled(
                    crate::mm::vma::Placement::Hint(0),
                    len,
                    tmpl,
                    0,
                    &alloc::vec![0u8; len as usize],
                )
                .unwrap();
            assert!(self.pages.is_mapped(start));
            start
        }
    }

    impl crate::syscall::Process for FakeCtx {
        fn read_user(&self, addr: usize, buf: &mut [u8]) -> Option<usize> {
            self.pages.read(addr as u64, buf).then_some(buf.len())
        }
        fn trace_line(&self, line: &str) {
            self.trace.lock().push(String::from(line));
        }
        fn tracing(&self) -> bool {
            false
        }
        fn report_unimplemented(&self, line: &str) {
            self.trace.lock().push(String::from(line));
        }
    }

    impl Ctx for FakeCtx {
        fn copy_in(&mut self, addr: usize, buf: &mut [u8]) -> Result<(), Errno> {
            // Demand paging like the target: fault in, then read.
            for va in (addr as u64 & !0xfff..(addr + buf.len()) as u64).step_by(4096) {
                if !self.pages.0.lock().pages.contains_key(&va) {
                    self.task
                        .memory()
                        .fault(va, skiff_arch_api::Access::Read, false)
                        .map_err(|_| Errno::EFAULT)?;
                }
            }
            self.pages
                .read(addr as u64, buf)
                .then_some(())
                .ok_or(Errno::EFAULT)
        }
        fn copy_out(&mut self, addr: usize, data: &[u8]) -> Result<(), Errno> {
            for va in (addr as u64 & !0xfff..(addr + data.len()) as u64).step_by(4096) {
                if !self.pages.0.lock().pages.contains_key(&va) {
                    self.task
                        .memory()
                        .fault(va, skiff_arch_api::Access::Write, false)
                        .map_err(|_| Errno::EFAULT)?;
                }
            }
            self.pages
                .write(addr as u64, data)
                .then_some(())
                .ok_or(Errno::EFAULT)
        }
        fn read_cstr(&mut self, addr: usize) -> Result<String, Errno> {
            let mut out = Vec::new();
            for i in 0..crate::linux::PATH_MAX {
                let mut b = [0u8];
                self.copy_in(addr + i, &mut b)?;
                if b[0] == 0 {
                    return String::from_utf8(out).map_err(|_| Errno::EINVAL);
                }
                out.push(b[0]);
            }
            Err(Errno::ENAMETOOLONG)
        }
        // The process and memory tests use no descriptors (the file
        // syscalls have their own fakes).
        fn files(&self) -> &FdTable {
            unimplemented!("FakeCtx has no descriptor table")
        }
        fn fs(&self) -> &FsState {
            unimplemented!("FakeCtx has no file-system state")
        }
        fn task(&self) -> Option<&Task> {
            Some(&self.task)
        }
        fn thread(&self) -> Option<&ThreadState> {
            Some(&self.thread)
        }
        /// One thread: nobody can wake a waiter, so a timed wait sleeps
        /// out its timeout and an untimed one returns at once (recorded).
        fn futex_wait(
            &mut self,
            addr: usize,
            val: u32,
            bitset: u32,
            deadline: Option<u64>,
        ) -> Result<usize, Errno> {
            self.futex_calls.lock().push(alloc::format!(
                "wait {addr:#x} {val} {bitset:x} {deadline:?}"
            ));
            let mut w = [0u8; 4];
            self.copy_in(addr, &mut w)?;
            if u32::from_le_bytes(w) != val {
                return Err(Errno::EAGAIN);
            }
            match deadline {
                Some(d) => {
                    self.services.sleep_until(d);
                    Err(Errno::ETIMEDOUT)
                }
                None => Ok(0),
            }
        }
        fn futex_wake(&mut self, addr: usize, n: usize, bitset: u32) -> Result<usize, Errno> {
            self.futex_calls
                .lock()
                .push(alloc::format!("wake {addr:#x} {n} {bitset:x}"));
            Ok(0)
        }
        fn futex_requeue(
            &mut self,
            from: usize,
            to: usize,
            nwake: usize,
            nmove: usize,
            cmp: Option<u32>,
        ) -> Result<usize, Errno> {
            self.futex_calls.lock().push(alloc::format!(
                "requeue {from:#x} {to:#x} {nwake} {nmove} {cmp:?}"
            ));
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeCtx;

    fn action(handler: u64, flags: u64) -> super::SigAction {
        let mut a = [0u8; 32];
        a[..8].copy_from_slice(&handler.to_le_bytes());
        a[8..16].copy_from_slice(&flags.to_le_bytes());
        a[24..].copy_from_slice(&0xffu64.to_le_bytes());
        a
    }

    #[test]
    fn exec_resets_handlers_keeps_ignored_renames() {
        let ctx = FakeCtx::new();
        let t = &ctx.task;
        t.set_action(10, action(0x40_1000, 4));
        t.set_action(12, action(1, 0));
        t.set_action(2, action(0, 0));
        t.reset_handlers();
        assert_eq!(t.action(10), [0; 32], "handled: back to SIG_DFL");
        assert_eq!(t.action(12), action(1, 0), "ignored stays ignored");
        assert_eq!(t.action(2), action(0, 0));
        t.set_name(b"renamed");
        t.set_exe("/usr/bin/busybox", "/proc/self/exe");
        assert_eq!(t.exe(), "/usr/bin/busybox");
        assert_eq!(&t.name()[..4], b"exe\0");
        t.set_exe("/a", "a-very-long-program-name");
        assert_eq!(&t.name(), b"a-very-long-pro\0");
        t.set_cmdline(&[b"a", b"", b"b c"]);
        assert_eq!(t.cmdline(), b"a\0\0b c\0");
    }
}
