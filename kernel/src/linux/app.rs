//! The app on the target: the one process of this VM, started from the
//! kernel command line. Maps its memory with `arch::mm` ([`ArchPages`]),
//! gives the handlers the kernel's clocks, scheduler and random pool
//! ([`KernelServices`]), and registers the user-mode hooks: system calls go
//! through the one table, user faults are demand paging or the crash report.
//!
//! Threads: each app thread is a kernel thread (`sched::spawn`) that sets
//! its TLS register and enters user mode; [`THREADS`] maps the running
//! kernel thread to its Linux state, so a syscall finds its caller. The
//! futexes of the process are [`FUTEXES`] (see `futex`).

use super::crash;
use super::exec::{self, ExecError, Image, Program};
use super::fd::{FdTable, FsState};
use super::futex::{self, table::Futexes};
use super::memory::{check_wx, Pages};
use super::process::{Services, Task, ThreadState, PID};
use super::{table, thread, uaccess, Ctx, MmapFile};
use crate::errno::{Errno, KResult};
use crate::fs::{FileType, Inode, Vfs};
use crate::loader::elf::Machine;
use crate::mm::vma::{Prot, PAGE};
use crate::{arch, mm, println};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use arch::user::{Hooks, UserRegs};
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use skiff_arch_api::{Fault, PageFlags};

// ---- page tables ----

/// The app's pages in the kernel's one set of page tables (user half).
/// `resident` records every present page and its frame, so range
/// operations visit only pages that exist; `PROT_NONE` pages keep their
/// frame there but are off the tables, so a later `mprotect` brings the
/// same contents back.
#[derive(Default)]
pub struct ArchPages {
    /// Page address → (frame, on the page tables).
    resident: BTreeMap<u64, (u64, bool)>,
}

fn flags(prot: Prot) -> PageFlags {
    PageFlags {
        write: prot.write,
        execute: prot.exec,
        user: true,
    }
}

fn table_frame() -> Option<u64> {
    mm::alloc_filled_frame(&mut |_| {}).ok()
}

impl ArchPages {
    /// Puts frame `pa` at `va` with `prot` (off the tables for NONE).
    fn place(&mut self, va: u64, pa: u64, prot: Prot) -> KResult<()> {
        if prot != Prot::NONE {
            if let Err(e) = arch::mm::map_page(va as usize, pa, flags(prot), &mut table_frame) {
                let _ = mm::free_frames(pa, 0);
                println!("mm: cannot map user page va={va:#x} error={e:?}");
                return Err(Errno::ENOMEM);
            }
        }
        self.resident.insert(va, (pa, prot != Prot::NONE));
        Ok(())
    }

    /// Takes the page at `va` off the tables; its frame.
    fn take(&mut self, va: u64) -> Option<u64> {
        let (pa, on_tables) = self.resident.remove(&va)?;
        if on_tables {
            arch::mm::unmap_page(va as usize);
        }
        Some(pa)
    }

    fn keys(&self, r: Range<u64>) -> Vec<u64> {
        self.resident.range(r).map(|(&va, _)| va).collect()
    }
}

impl Pages for ArchPages {
    fn map(&mut self, va: u64, prot: Prot, fill: &mut dyn FnMut(&mut [u8])) -> KResult<()> {
        check_wx(prot)?;
        let pa = mm::alloc_filled_frame(fill).map_err(|_| Errno::ENOMEM)?;
        self.place(va, pa, prot)
    }

    fn unmap_range(&mut self, r: Range<u64>) {
        let freed: Vec<u64> = self
            .keys(r.clone())
            .into_iter()
            .filter_map(|va| self.take(va))
            .collect();
        if freed.is_empty() {
            return;
        }
        // Other CPUs may still cache these translations: flush them
        // everywhere before the frames can be reused.
        arch::smp::tlb_shootdown(r.start as usize..r.end as usize);
        for pa in freed {
            let _ = mm::free_frames(pa, 0);
        }
    }

    fn protect_range(&mut self, r: Range<u64>, prot: Prot) {
        for va in self.keys(r.clone()) {
            let Some(&(pa, on_tables)) = self.resident.get(&va) else {
                continue;
            };
            match (on_tables, prot == Prot::NONE) {
                (true, false) => {
                    let _ = arch::mm::protect_page(va as usize, flags(prot));
                }
                (true, true) => {
                    arch::mm::unmap_page(va as usize);
                    self.resident.insert(va, (pa, false));
                }
                (false, false) => {
                    self.resident.remove(&va);
                    let _ = self.place(va, pa, prot);
                }
                (false, true) => {}
            }
        }
        // Reduced permissions must not linger in other CPUs' TLBs.
        arch::smp::tlb_shootdown(r.start as usize..r.end as usize);
    }

    fn is_mapped(&self, va: u64) -> bool {
        self.resident.contains_key(&va)
    }

    fn move_range(&mut self, from: Range<u64>, to: u64, prot: Prot) -> KResult<()> {
        let keys = self.keys(from.clone());
        for &va in &keys {
            if let Some(pa) = self.take(va) {
                self.place(to + (va - from.start), pa, prot)?;
            }
        }
        if !keys.is_empty() {
            arch::smp::tlb_shootdown(from.start as usize..from.end as usize);
        }
        Ok(())
    }

    fn resident(&self, r: Range<u64>) -> u64 {
        self.resident.range(r).count() as u64
    }

    fn resident_total(&self) -> u64 {
        self.resident.len() as u64
    }
}

// ---- kernel services ----

static STRACE: AtomicBool = AtomicBool::new(false);

pub struct KernelServices;

pub static SERVICES: KernelServices = KernelServices;

impl Services for KernelServices {
    fn monotonic_ns(&self) -> u64 {
        crate::time::now_ns()
    }
    /// The platform's boot-time wall clock advanced by the counter (the
    /// epoch plus time since boot when the machine has no RTC).
    fn realtime_ns(&self) -> u64 {
        crate::time::realtime_ns()
    }
    /// Interruptible only for an `execve` in another thread, which must
    /// end this one at once; a signal's interrupt does not cut the sleep
    /// short (the rest is slept as before: `nanosleep` has no EINTR yet).
    fn sleep_until(&self, deadline_ns: u64) {
        let me = crate::sched::current().id;
        let woke = crate::sync::wait_any(&[], Some(deadline_ns), true, || doomed(me));
        if woke == crate::sync::Wake::Interrupted {
            crate::sched::sleep_until(deadline_ns);
        }
    }
    fn yield_now(&self) {
        crate::sched::yield_now();
    }
    fn random(&self, buf: &mut [u8]) -> bool {
        crate::random::POOL.fill(buf)
    }
    fn tls(&self) -> usize {
        arch::user::tls()
    }
    fn set_tls(&self, v: usize) {
        arch::user::set_tls(v)
    }
    fn cpus(&self) -> u32 {
        crate::sched::online_cpus()
    }
    fn memory_bytes(&self) -> (u64, u64) {
        let s = mm::frame_stats();
        (s.total_frames * PAGE, s.free_frames * PAGE)
    }
    fn exit_group(&self, status: u8) {
        // What the app sent over TCP reaches the peer before power-off.
        crate::net::stack::drain_before_exit(1_000_000_000);
        crate::start::exit(status)
    }
    fn tracing(&self) -> bool {
        STRACE.load(Ordering::Relaxed)
    }
    fn barrier_all_cpus(&self) {
        crate::sched::synchronize_rcu();
    }
    fn end_other_threads(&self) {
        end_other_threads();
    }
    fn exec_restart(&self, pc: u64, sp: u64, sigmask: u64) {
        exec_restart(pc, sp, sigmask);
    }
}

// ---- the process ----

/// The VM's one process.
pub struct App {
    pub task: Task,
    pub main: Arc<ThreadState>,
    pub files: FdTable,
    pub fs: FsState,
}

static APP: spin::Once<App> = spin::Once::new();

/// The running app, once started.
pub fn app() -> Option<&'static App> {
    APP.get()
}

/// The process's futexes (one process per VM).
static FUTEXES: Futexes = Futexes::new();

/// One app thread: the kernel thread that runs it and its Linux state.
struct Registered {
    kthread: Arc<crate::sched::thread::Thread>,
    linux: Arc<ThreadState>,
}

/// Kernel thread id → the app thread it runs. Taken with interrupts off
/// (a short map operation), so a thread preempted while holding it never
/// makes another spin on its CPU.
static THREADS: spin::Mutex<BTreeMap<u64, Registered>> = spin::Mutex::new(BTreeMap::new());

fn register_current(t: Arc<ThreadState>) {
    let me = crate::sched::current();
    let entry = Registered {
        kthread: me.clone(),
        linux: t,
    };
    arch::cpu::without_interrupts(|| THREADS.lock().insert(me.id, entry));
}

fn unregister_current() {
    let id = crate::sched::current().id;
    arch::cpu::without_interrupts(|| THREADS.lock().remove(&id));
}

/// The calling app thread's Linux state (the main thread's if the caller
/// is not an app thread, e.g. a ktest).
fn current_thread(app: &App) -> Arc<ThreadState> {
    thread_of(app, crate::sched::current().id)
}

/// The Linux state of kernel thread `id` (the main thread's if unknown).
fn thread_of(app: &App, id: u64) -> Arc<ThreadState> {
    arch::cpu::without_interrupts(|| THREADS.lock().get(&id).map(|r| r.linux.clone()))
        .unwrap_or_else(|| app.main.clone())
}

/// One thread of the app, as the syscall handlers see it: the process,
/// the thread's Linux state and its registers as at the syscall (for
/// `clone`).
pub struct AppThread {
    app: &'static App,
    thread: Arc<ThreadState>,
    regs: UserRegs,
}

impl AppThread {
    fn read_u32(&self, addr: usize) -> KResult<u32> {
        let mut w = [0u8; 4];
        uaccess::copy_in(self.app.task.memory(), addr, &mut w)?;
        Ok(u32::from_le_bytes(w))
    }
}

impl crate::syscall::Process for AppThread {
    fn read_user(&self, addr: usize, buf: &mut [u8]) -> Option<usize> {
        uaccess::copy_in(self.app.task.memory(), addr, buf)
            .ok()
            .map(|()| buf.len())
    }
    fn trace_line(&self, line: &str) {
        println!("strace: {line}");
    }
    fn tracing(&self) -> bool {
        STRACE.load(Ordering::Relaxed)
    }
    fn report_unimplemented(&self, line: &str) {
        println!("{line}");
    }
}

impl Ctx for AppThread {
    fn copy_in(&mut self, addr: usize, buf: &mut [u8]) -> Result<(), Errno> {
        uaccess::copy_in(self.app.task.memory(), addr, buf)
    }
    fn copy_out(&mut self, addr: usize, data: &[u8]) -> Result<(), Errno> {
        uaccess::copy_out(self.app.task.memory(), addr, data)
    }
    fn read_cstr(&mut self, addr: usize) -> Result<String, Errno> {
        uaccess::read_cstr(self.app.task.memory(), addr)
    }
    fn files(&self) -> &FdTable {
        &self.app.files
    }
    fn fs(&self) -> &FsState {
        &self.app.fs
    }
    fn task(&self) -> Option<&Task> {
        Some(&self.app.task)
    }
    fn thread(&self) -> Option<&ThreadState> {
        Some(&self.thread)
    }
    fn futex_wait(
        &mut self,
        addr: usize,
        val: u32,
        bitset: u32,
        deadline: futex::Deadline,
    ) -> Result<usize, Errno> {
        FUTEXES.wait(addr, val, bitset, deadline, |a| self.read_u32(a))
    }
    fn futex_wake(&mut self, addr: usize, n: usize, bitset: u32) -> Result<usize, Errno> {
        Ok(FUTEXES.wake(addr, n, bitset))
    }
    fn futex_requeue(
        &mut self,
        from: usize,
        to: usize,
        nwake: usize,
        nmove: usize,
        cmp: Option<u32>,
    ) -> Result<usize, Errno> {
        FUTEXES.requeue(from, to, nwake, nmove, cmp, |a| self.read_u32(a))
    }
    fn spawn_thread(&mut self, t: Arc<ThreadState>, start: thread::Start) -> Result<(), Errno> {
        let mut regs = self.regs.clone();
        regs.set_ret(0);
        if start.stack != 0 {
            regs.set_sp(start.stack);
        }
        let tls = start.tls.unwrap_or_else(arch::user::tls);
        let tid = t.tid();
        let name = alloc::format!("app-{tid}");
        crate::sched::spawn(
            &name,
            move || {
                register_current(t);
                // Started just as an execve began: never run old code.
                exit_if_doomed();
                arch::user::set_tls(tls);
                arch::user::enter(&regs)
            },
            None,
        )
        .map_err(|e| {
            println!("linux: cannot start thread tid={tid} error={e:?}");
            Errno::EAGAIN
        })?;
        Ok(())
    }
    fn exit_thread(&mut self) -> Result<usize, Errno> {
        super::signal::forget(self.thread.tid());
        unregister_current();
        crate::sched::exit_current()
    }
    fn mmap_file(&self, fd: i32) -> Result<MmapFile, Errno> {
        let file = self
            .app
            .files
            .get(usize::try_from(fd).map_err(|_| Errno::EBADF)?)?;
        if !file.can_read() {
            return Err(Errno::EACCES);
        }
        if file.inode().metadata().kind != FileType::Regular {
            return Err(Errno::ENODEV);
        }
        Ok(MmapFile {
            inode: file.inode().clone(),
            writable: file.can_write(),
            path: String::from(file.path()),
        })
    }
}

// ---- user-mode hooks ----

static HOOKS: Hooks = Hooks {
    syscall: on_syscall,
    fault: on_fault,
    return_to_user: on_return_to_user,
};

fn on_syscall(regs: &mut UserRegs) {
    let Some(app) = APP.get() else {
        regs.set_ret(Errno::ENOSYS.as_ret() as usize);
        return;
    };
    exit_if_doomed();
    let mut ctx = AppThread {
        app,
        thread: current_thread(app),
        regs: regs.clone(),
    };
    let ret = table::table().dispatch(&mut ctx, regs.syscall_nr(), &regs.syscall_args());
    drop(ctx);
    // A successful execve: the new program starts here instead.
    if let Some(new) = take_restart() {
        *regs = new;
        return;
    }
    regs.set_ret(ret as usize);
}

fn on_fault(regs: &mut UserRegs, fault: &Fault) {
    exit_if_doomed();
    let (signal, mut reason) = crash::classify(table::ARCH, fault);
    if let Some(app) = APP.get() {
        if crash::is_page_fault(table::ARCH, fault) {
            match app
                .task
                .memory()
                .fault(fault.addr as u64, fault.access, fault.protection)
            {
                Ok(()) => return,
                Err(segv) => reason = segv.reason(),
            }
        }
    }
    // The app's handler for the signal, if it has one; else the report.
    if let Some(app) = APP.get() {
        if super::signal::on_fault_to(&app.task, &current_thread(app), regs, fault) {
            return;
        }
    }
    let mut dump = String::new();
    let _ = regs.dump(&mut dump);
    let maps = APP
        .get()
        .map(|a| a.task.memory().maps())
        .unwrap_or_default();
    crate::print!("{}", crash::report(signal, reason, fault, &dump, &maps));
    crate::start::exit(signal.exit_status());
}

/// Signal delivery point: the returning thread's pending signals, and the
/// frame restore after its `rt_sigreturn`.
fn on_return_to_user(regs: &mut UserRegs) {
    exit_if_doomed();
    if let Some(app) = APP.get() {
        let me = crate::sched::current();
        super::signal::deliver_to(&app.task, &thread_of(app, me.id), &me, regs);
    }
}

// ---- execve ----

/// No execve in progress ([`EXEC_SURVIVOR`]).
const NO_EXEC: u64 = u64::MAX;

/// The kernel thread id of the thread running an `execve` past its point
/// of no return: every other app thread ends at its next kernel entry.
static EXEC_SURVIVOR: AtomicU64 = AtomicU64::new(NO_EXEC);

/// The kernel thread that is the app's main thread: what [`start`]'s
/// waiter joins. `execve` from another thread makes that one the leader.
static LEADER: spin::Mutex<Option<Arc<crate::sched::thread::Thread>>> = spin::Mutex::new(None);

/// The registers an `execve` left for its thread (kernel id → regs),
/// taken by [`on_syscall`] in place of the return value.
static RESTART: spin::Mutex<Option<(u64, UserRegs)>> = spin::Mutex::new(None);
/// Whether [`RESTART`] may hold registers (set before it is filled).
static RESTART_SET: AtomicBool = AtomicBool::new(false);

fn set_leader(t: Arc<crate::sched::thread::Thread>) {
    arch::cpu::without_interrupts(|| *LEADER.lock() = Some(t));
}

fn leader() -> Option<Arc<crate::sched::thread::Thread>> {
    arch::cpu::without_interrupts(|| LEADER.lock().clone())
}

fn take_restart() -> Option<UserRegs> {
    // Every syscall asks: one relaxed load unless an execve just succeeded.
    if !RESTART_SET.load(Ordering::Acquire) {
        return None;
    }
    let id = crate::sched::current().id;
    arch::cpu::without_interrupts(|| {
        let mut slot = RESTART.lock();
        match slot.take() {
            Some((who, regs)) if who == id => {
                RESTART_SET.store(false, Ordering::Release);
                Some(regs)
            }
            other => {
                *slot = other;
                None
            }
        }
    })
}

/// Whether kernel thread `id` must end because another thread is past
/// the point of no return of an `execve`.
fn doomed(id: u64) -> bool {
    let survivor = EXEC_SURVIVOR.load(Ordering::Acquire);
    survivor != NO_EXEC && survivor != id
}

/// Ends the calling app thread if another thread is replacing the
/// program (Linux's `de_thread` kills them the same way: no exit code,
/// no `clear_child_tid` wake: the memory goes away).
fn exit_if_doomed() {
    // Every kernel entry asks: one load while no execve is under way.
    if EXEC_SURVIVOR.load(Ordering::Acquire) == NO_EXEC || !doomed(crate::sched::current().id) {
        return;
    }
    let Some(app) = APP.get() else {
        return;
    };
    let me = current_thread(app);
    super::signal::forget(me.tid());
    unregister_current();
    app.task.thread_exited();
    crate::sched::exit_current()
}

/// `Services::end_other_threads` on the target: marks the caller as the
/// survivor, pokes every other app thread out of interruptible waits, and
/// waits until each has left (unregistered, counted out) and is done.
fn end_other_threads() {
    let Some(app) = APP.get() else {
        return;
    };
    let me = crate::sched::current();
    // Two threads exec at once: the first one past this point wins and
    // the other ends like every other thread (Linux: de_thread's kill).
    if EXEC_SURVIVOR
        .compare_exchange(NO_EXEC, me.id, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        exit_if_doomed();
    }
    set_leader(me.clone());
    let start_ns = crate::time::now_ns();
    let mut reported = false;
    let mut seen: Vec<Arc<crate::sched::thread::Thread>> = Vec::new();
    loop {
        let others: Vec<Arc<crate::sched::thread::Thread>> = arch::cpu::without_interrupts(|| {
            THREADS
                .lock()
                .iter()
                .filter(|(&id, _)| id != me.id)
                .map(|(_, r)| r.kthread.clone())
                .collect()
        });
        if others.is_empty() && app.task.threads() <= 1 {
            break;
        }
        for t in others {
            crate::sched::interrupt(&t);
            if !seen.iter().any(|s| s.id == t.id) {
                seen.push(t);
            }
        }
        if !reported && crate::time::now_ns() - start_ns > 1_000_000_000 {
            // A thread in an uninterruptible wait (or spinning in user
            // mode on a CPU that takes no interrupt) holds exec up.
            println!(
                "exec: waiting for threads to end threads={}",
                app.task.threads()
            );
            reported = true;
        }
        crate::sched::sleep(1_000_000);
    }
    // Off CPU for good before their memory goes.
    for t in &seen {
        crate::sched::join(t);
    }
    // Threads cloned from now on belong to the new program.
    EXEC_SURVIVOR.store(NO_EXEC, Ordering::Release);
}

/// `Services::exec_restart` on the target: the caller becomes the main
/// thread (tid = pid, the app's `main` state, reset) and [`on_syscall`]
/// returns to `pc`/`sp` with zeroed registers. From another thread, its
/// own pending signals move to the main thread (the process's stay).
///
/// Not done here (the signal module's part): the caller's alternate
/// signal stack is not cleared when it already is the main thread.
fn exec_restart(pc: u64, sp: u64, sigmask: u64) {
    let Some(app) = APP.get() else {
        return;
    };
    let main = app.main.clone();
    let old = current_thread(app);
    main.set_sigmask(sigmask);
    main.set_robust_list(0, 0);
    main.set_clear_child_tid(0);
    if old.tid() != main.tid() {
        use super::signal;
        // A tid no thread has: its pending set is the process's alone.
        const NOBODY: u32 = u32::MAX;
        let shared = signal::pending(NOBODY);
        signal::forget(NOBODY);
        let own = signal::pending(old.tid()) & !shared;
        // The old tid's alternate stack and frame state go with it.
        signal::forget(old.tid());
        unregister_current();
        register_current(main.clone());
        for sig in 1..=super::process::NSIG {
            if own & (1 << (sig - 1)) != 0 {
                let info = signal::Info {
                    signo: sig as i32,
                    ..Default::default()
                };
                signal::queue(&app.task, &main, info);
            }
        }
    }
    arch::user::set_tls(0);
    let id = crate::sched::current().id;
    let regs = UserRegs::new(pc as usize, sp as usize);
    RESTART_SET.store(true, Ordering::Release);
    arch::cpu::without_interrupts(|| *RESTART.lock() = Some((id, regs)));
}

// ---- starting ----

/// Exit status when the program exists but cannot run (a shell's 126).
pub const EXIT_CANNOT_EXECUTE: u8 = 126;

/// Why the app did not start.
#[derive(Debug)]
pub enum StartError {
    /// No such file (exit status 127, like a shell).
    NotFound(String),
    /// Found but not runnable: a directory, unreadable, a bad ELF (126).
    NotExecutable(String, String),
    /// The kernel could not set it up (no memory, no thread).
    Kernel(String),
}

impl StartError {
    /// The shell's convention: 127 not found, 126 cannot execute.
    pub fn exit_status(&self) -> u8 {
        match self {
            StartError::NotFound(_) => crate::EXIT_NO_LOADER,
            StartError::NotExecutable(..) => EXIT_CANNOT_EXECUTE,
            StartError::Kernel(_) => crate::EXIT_KERNEL_FAILURE,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NotFound(p) => write!(f, "skiff: cannot run {p}: not found"),
            StartError::NotExecutable(p, why) => write!(f, "skiff: cannot run {p}: {why}"),
            StartError::Kernel(why) => write!(f, "skiff: cannot start the app: {why}"),
        }
    }
}

/// Finds `prog` like a shell: a name with a `/` as is (relative to `/`),
/// a bare name along `PATH`.
fn find(vfs: &Vfs, prog: &str, envp: &[String]) -> Result<(String, Arc<dyn Inode>), StartError> {
    let root = vfs.root();
    let candidates: Vec<String> = if prog.contains('/') {
        alloc::vec![String::from(prog)]
    } else {
        let path = envp
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .map(|d| match d.trim_end_matches('/') {
                "" if d.is_empty() => alloc::format!("./{prog}"),
                dir => alloc::format!("{dir}/{prog}"),
            })
            .collect()
    };
    for c in &candidates {
        if let Ok(inode) = vfs.resolve(&root, c, true) {
            let abs = if c.starts_with('/') {
                c.clone()
            } else {
                alloc::format!("/{}", c.trim_start_matches("./"))
            };
            return Ok((abs, inode));
        }
    }
    Err(StartError::NotFound(String::from(prog)))
}

fn read_all(inode: &Arc<dyn Inode>, path: &str) -> Result<Vec<u8>, StartError> {
    let meta = inode.metadata();
    if meta.kind != FileType::Regular {
        return Err(StartError::NotExecutable(
            String::from(path),
            String::from("not a regular file"),
        ));
    }
    let mut data = alloc::vec![0u8; meta.size as usize];
    let mut got = 0;
    while got < data.len() {
        match inode.read_at(got as u64, &mut data[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Err(StartError::NotExecutable(
                    String::from(path),
                    alloc::format!("read error {e}"),
                ))
            }
        }
    }
    data.truncate(got);
    Ok(data)
}

fn machine() -> Machine {
    if cfg!(target_arch = "aarch64") {
        Machine::Aarch64
    } else {
        Machine::X86_64
    }
}

/// The CPU's `AT_HWCAP`/`AT_HWCAP2` where the arch reports them
/// (aarch64); elsewhere exec uses the architecture baseline.
#[cfg(target_arch = "aarch64")]
fn hwcap() -> Option<(u64, u64)> {
    Some(arch::cpu::hwcap())
}

#[cfg(not(target_arch = "aarch64"))]
fn hwcap() -> Option<(u64, u64)> {
    None
}

fn random_u64() -> u64 {
    crate::random::POOL
        .next_u64()
        .unwrap_or_else(|| arch::cpu::counter().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

/// Loads `argv[0]` from `vfs` and starts it on a new kernel thread in
/// user mode, with `argv[0]` replaced by `argv0` when given (the name as
/// typed). Returns the thread (it ends the VM when the app exits).
pub fn start(
    vfs: Arc<Vfs>,
    mut argv: Vec<String>,
    argv0: Option<String>,
    envp: Vec<String>,
    strace: bool,
) -> Result<Arc<crate::sched::thread::Thread>, StartError> {
    STRACE.store(strace, Ordering::Relaxed);
    let prog = argv.first().cloned().unwrap_or_default();
    let (path, inode) = find(&vfs, &prog, &envp)?;
    if let (Some(first), Some(name)) = (argv.first_mut(), argv0) {
        *first = name;
    }
    let bytes = read_all(&inode, &path)?;
    let meta = inode.metadata();
    let bad = |e: ExecError| {
        let why = match e {
            // The program's own ELF error: the path is already in front.
            ExecError::Elf { path: p, error } if p == path => alloc::format!("{error}"),
            e => alloc::format!("{e}"),
        };
        StartError::NotExecutable(path.clone(), why)
    };
    let exe = Image::parse(&path, meta.dev, meta.ino, &bytes, machine()).map_err(bad)?;
    let interp_bytes;
    let interp_path;
    let interp = match exe.plan.interp.clone() {
        None => None,
        Some(ip) => {
            let node = vfs.resolve(&vfs.root(), &ip, true).map_err(|_| {
                StartError::NotExecutable(
                    path.clone(),
                    alloc::format!("its interpreter {ip} is not in the image"),
                )
            })?;
            interp_bytes = read_all(&node, &ip)?;
            interp_path = ip;
            let m = node.metadata();
            Some(Image::parse(&interp_path, m.dev, m.ino, &interp_bytes, machine()).map_err(bad)?)
        }
    };
    let argv_b: Vec<&[u8]> = argv.iter().map(|s| s.as_bytes()).collect();
    let envp_b: Vec<&[u8]> = envp.iter().map(|s| s.as_bytes()).collect();
    let program = Program {
        exe,
        interp,
        argv: &argv_b,
        envp: &envp_b,
        execfn: &prog,
        machine: machine(),
        hwcap: hwcap(),
    };
    let mut rnd = random_u64;
    let (memory, started) = exec::load(&program, Box::new(ArchPages::default()), &mut rnd)
        .map_err(|e| match e {
            ExecError::Map(_) => StartError::Kernel(alloc::format!("{e}")),
            e => bad(e),
        })?;
    let files = FdTable::with_stdio(&vfs)
        .map_err(|e| StartError::Kernel(alloc::format!("no /dev/console: {e}")))?;
    let fs = FsState::new(vfs);
    let main = Arc::new(ThreadState::new(PID));
    let first = main.clone();
    let task = Task::new(memory, &SERVICES, &path);
    task.set_cmdline(&argv_b);
    exec::set_hwcap(hwcap());
    APP.call_once(|| App {
        task,
        main,
        files,
        fs,
    });
    println!(
        "app: exec path={path} entry={:#x} sp={:#x} bias={:#x} interp={} strace={}",
        started.pc,
        started.sp,
        started.layout.bias,
        started
            .interp_base
            .map_or(String::from("none"), |b| alloc::format!("{b:#x}")),
        u8::from(strace),
    );
    arch::user::set_hooks(&HOOKS);
    let (pc, sp) = (started.pc as usize, started.sp as usize);
    let app_thread = crate::sched::spawn(
        "app",
        move || {
            register_current(first);
            arch::user::enter(&UserRegs::new(pc, sp))
        },
        None,
    )
    .map_err(|e| StartError::Kernel(alloc::format!("cannot spawn the app thread: {e:?}")))?;
    set_leader(app_thread);
    // What the caller joins: ends when the main thread does, following
    // the main thread across an execve from another thread.
    crate::sched::spawn(
        "app-wait",
        || loop {
            let Some(joined) = leader() else {
                return;
            };
            crate::sched::join(&joined);
            if leader().is_some_and(|l| l.id == joined.id) {
                return;
            }
        },
        None,
    )
    .map_err(|e| StartError::Kernel(alloc::format!("cannot spawn the app waiter: {e:?}")))
}

/// Sources for procfs, read from the running app.
pub fn proc_sources() -> crate::fs::procfs::ProcSources {
    use crate::fs::procfs::{CpuInfo, MemInfo, ProcSources, ProcStatus};
    ProcSources {
        status: || match app() {
            Some(a) => {
                let name = a.task.name();
                let len = name.iter().position(|&b| b == 0).unwrap_or(16);
                ProcStatus {
                    name: String::from_utf8_lossy(&name[..len]).into_owned(),
                    pid: PID,
                    ppid: 0,
                    threads: a.task.threads(),
                    umask: a.fs.umask(),
                    vm_size_kb: a.task.memory().mapped_bytes() / 1024,
                    vm_rss_kb: a.task.memory().resident_bytes() / 1024,
                }
            }
            None => ProcStatus {
                name: String::from("skiff"),
                pid: PID,
                ppid: 0,
                threads: 1,
                umask: 0o022,
                vm_size_kb: 0,
                vm_rss_kb: 0,
            },
        },
        exe: || app().map(|a| a.task.exe()).unwrap_or_default(),
        cwd: || {
            app()
                .map(|a| a.fs.cwd().1)
                .unwrap_or_else(|| String::from("/"))
        },
        cmdline: || app().map(|a| a.task.cmdline()).unwrap_or_default(),
        maps: || app().map(|a| a.task.memory().maps()).unwrap_or_default(),
        fds: || app().map(|a| a.files.paths()).unwrap_or_default(),
        cpus: || CpuInfo {
            count: crate::sched::online_cpus() as usize,
            model: String::new(),
            features: String::new(),
        },
        memory: || {
            let s = mm::frame_stats();
            MemInfo {
                total: s.total_frames * PAGE,
                free: s.free_frames * PAGE,
            }
        },
        uptime_ns: crate::time::now_ns,
        boot_time_s: || 0,
        hostname: || String::from("skiff"),
        osrelease: || String::from(super::misc::RELEASE),
    }
}

/// The kernel console as devfs's `/dev/console` (output only: console
/// input is not wired yet, reads return end of file).
pub struct ConsoleDevice;

impl crate::fs::devfs::Console for ConsoleDevice {
    fn write(&self, bytes: &[u8]) {
        crate::print!("{}", String::from_utf8_lossy(bytes));
    }
    fn read(&self, _buf: &mut [u8]) -> usize {
        0
    }
}

// In-VM tests: the app's memory on the real page tables, read and written
// through the arch's fault-safe copies (demand paging on the copy path).
mod ktests {
    use super::*;
    use crate::linux::memory::Memory;
    use crate::mm::vma::{AddressSpace, Backing, Placement, Vma};
    use skiff_ktest::{check, check_eq, ktest};

    /// Far from anything else user mode uses in a ktest run.
    const BASE: u64 = 0x3a5a_0000_0000;

    fn anon(prot: Prot) -> Vma {
        Vma {
            range: 0..0,
            prot,
            shared: false,
            backing: Backing::Anonymous,
            name: None,
        }
    }

    ktest! {
        /// Fill, demand-page through a copy, protect (R, NONE and back),
        /// move with mremap, unmap: contents and EFAULTs as Linux has them.
        fn linux_memory_on_the_real_page_tables() {
            let space = AddressSpace::new(BASE..BASE + (1 << 32), BASE + (1 << 31), BASE);
            let mem = Memory::new(space, Box::new(ArchPages::default()));
            let a = BASE + 0x1000_0000;
            let got = mem.map_filled(Placement::Fixed(a), 4 * PAGE, anon(Prot::RW), 8, b"hello");
            check!(got == Ok(a));
            let mut buf = [0u8; 5];
            check!(uaccess::copy_in(&mem, a as usize + 8, &mut buf).is_ok());
            check!(&buf == b"hello");
            check_eq!(mem.resident_bytes(), PAGE);
            // Page 2 is not present: the copy faults, pages it in, retries.
            check!(uaccess::copy_out(&mem, (a + 2 * PAGE - 2) as usize, b"span").is_ok());
            check_eq!(mem.resident_bytes(), 3 * PAGE);
            check!(uaccess::copy_in(&mem, (a + 2 * PAGE - 2) as usize, &mut buf[..4]).is_ok());
            check!(&buf[..4] == b"span");
            // Read-only: writes fail, reads work; NONE and back keeps data.
            check!(mem.mprotect(a, 4 * PAGE, Prot::R) == Ok(()));
            check!(uaccess::copy_out(&mem, a as usize, b"x") == Err(Errno::EFAULT));
            check!(mem.mprotect(a, 4 * PAGE, Prot::NONE) == Ok(()));
            check!(uaccess::copy_in(&mem, a as usize + 8, &mut buf) == Err(Errno::EFAULT));
            check!(mem.mprotect(a, 4 * PAGE, Prot::RW) == Ok(()));
            check!(uaccess::copy_in(&mem, a as usize + 8, &mut buf).is_ok());
            check!(&buf == b"hello");
            // A neighbour forces mremap to move; the frames go along.
            check!(mem.map_filled(Placement::Fixed(a + 4 * PAGE), PAGE, anon(Prot::R), 0, &[]).is_ok());
            let moved = mem.mremap(a, 4 * PAGE, 8 * PAGE, true);
            check!(moved.is_ok());
            let b = moved.unwrap_or(a);
            check!(b != a);
            check!(uaccess::copy_in(&mem, b as usize + 8, &mut buf).is_ok());
            check!(&buf == b"hello");
            check!(uaccess::copy_in(&mem, a as usize + 8, &mut buf) == Err(Errno::EFAULT));
            check!(mem.munmap(BASE, 1 << 32) == Ok(()));
            check_eq!(mem.resident_bytes(), 0);
            check!(uaccess::copy_in(&mem, b as usize + 8, &mut buf) == Err(Errno::EFAULT));
            check!(arch::mm::translate(b as usize).is_none());
            Ok(())
        }
    }
}
