//! The Linux system-call table of the app: the process, memory, time and
//! misc calls declared here, the file calls from [`super::files`], the
//! signal calls from [`super::signal`], `execve` from [`super::exec`],
//! the socket calls from [`super::socket`], put
//! together once per arch (`syscall::Table::from_parts`). Calls not listed
//! anywhere return `-ENOSYS` and are logged once by name.
//!
//! Order of the parts: the file calls, then [`ENTRIES`], whose
//! `readlink`/`readlinkat` answer `/proc/self/exe` and hand every other
//! path to the file calls' entry ([`delegate`]).

use super::{creds, exec, files, futex, itimer, memory, misc, signal, socket, thread, Ctx, Cx};
use crate::errno::{Errno, KResult};
use crate::syscall::{Arch, Args, Table};

crate::syscall_table! {
    pub static ENTRIES: [dyn Ctx] = {
        exit(Int) => thread::sys_exit;
        clone(Hex, Hex, Hex, Hex, Hex) => thread::sys_clone;
        clone3(Hex, Size) => thread::sys_clone3;
        exit_group(Int) => misc::sys_exit_group;
        getpid() => misc::sys_getpid;
        gettid() => misc::sys_gettid;
        getppid() => misc::sys_getppid;
        getuid() => creds::sys_getuid;
        geteuid() => creds::sys_geteuid;
        getgid() => creds::sys_getgid;
        getegid() => creds::sys_getegid;
        setuid(Int) => creds::sys_setuid;
        setgid(Int) => creds::sys_setgid;
        setreuid(Int, Int) => creds::sys_setreuid;
        setregid(Int, Int) => creds::sys_setregid;
        setresuid(Int, Int, Int) => creds::sys_setresuid;
        setresgid(Int, Int, Int) => creds::sys_setresgid;
        getresuid(Hex, Hex, Hex) => creds::sys_getresuid;
        getresgid(Hex, Hex, Hex) => creds::sys_getresgid;
        setfsuid(Int) => creds::sys_setfsuid;
        setfsgid(Int) => creds::sys_setfsgid;
        getgroups(Int, Hex) => creds::sys_getgroups;
        setgroups(Size, Hex) => creds::sys_setgroups;
        getpgrp() => creds::sys_getpgrp;
        getpgid(Int) => creds::sys_getpgid;
        setpgid(Int, Int) => creds::sys_setpgid;
        getsid(Int) => creds::sys_getsid;
        setsid() => creds::sys_setsid;
        getrusage(Int, Hex) => misc::sys_getrusage;
        times(Hex) => misc::sys_times;
        sched_get_priority_max(Int) => misc::sys_sched_get_priority_max;
        sched_get_priority_min(Int) => misc::sys_sched_get_priority_min;
        membarrier(Int, Hex, Int) => misc::sys_membarrier;
        mlock(Hex, Size) => memory::sys_mlock;
        munlock(Hex, Size) => memory::sys_mlock;
        mlock2(Hex, Size, Hex) => memory::sys_mlock2;
        mlockall(Hex) => memory::sys_mlockall;
        munlockall() => memory::sys_munlockall;
        msync(Hex, Size, Hex) => memory::sys_msync;
        set_tid_address(Hex) => misc::sys_set_tid_address;
        set_robust_list(Hex, Size) => misc::sys_set_robust_list;
        get_robust_list(Int, Hex, Hex) => misc::sys_get_robust_list;
        uname(Hex) => misc::sys_uname;
        prctl(Int, Hex, Hex, Hex, Hex) => misc::sys_prctl;
        getitimer(Int, Hex) => itimer::sys_getitimer;
        setitimer(Int, Hex, Hex) => itimer::sys_setitimer;
        alarm(Int) => itimer::sys_alarm;
        arch_prctl(Hex, Hex) => misc::sys_arch_prctl;
        prlimit64(Int, Int, Hex, Hex) => misc::sys_prlimit64;
        getrlimit(Int, Hex) => misc::sys_getrlimit;
        setrlimit(Int, Hex) => misc::sys_setrlimit;
        sched_yield() => misc::sys_sched_yield;
        sched_getaffinity(Int, Size, Hex) => misc::sys_sched_getaffinity;
        sched_setaffinity(Int, Size, Hex) => misc::sys_sched_setaffinity;
        getcpu(Hex, Hex, Hex) => misc::sys_getcpu;
        sysinfo(Hex) => misc::sys_sysinfo;
        clock_gettime(Int, Hex) => misc::sys_clock_gettime;
        clock_getres(Int, Hex) => misc::sys_clock_getres;
        gettimeofday(Hex, Hex) => misc::sys_gettimeofday;
        time(Hex) => misc::sys_time;
        nanosleep(Hex, Hex) => misc::sys_nanosleep;
        clock_nanosleep(Int, Int, Hex, Hex) => misc::sys_clock_nanosleep;
        getrandom(BufIn(1), Size, Hex) => misc::sys_getrandom;
        rt_sigaction(Int, Hex, Hex, Size) => misc::sys_rt_sigaction;
        rt_sigprocmask(Int, Hex, Hex, Size) => misc::sys_rt_sigprocmask;
        futex(Hex, Int, Int, Hex, Hex, Hex) => futex::sys_futex;
        readlink(Str, Hex, Size) => misc::sys_readlink;
        readlinkat(DirFd, Str, Hex, Size) => misc::sys_readlinkat;
        brk(Hex) => memory::sys_brk;
        mmap(Hex, Size, Hex, Hex, Int, Hex) => memory::sys_mmap;
        munmap(Hex, Size) => memory::sys_munmap;
        mprotect(Hex, Size, Hex) => memory::sys_mprotect;
        mremap(Hex, Size, Size, Hex, Hex) => memory::sys_mremap;
        madvise(Hex, Size, Int) => memory::sys_madvise;
    }
}

/// This kernel's syscall numbering.
pub const ARCH: Arch = if cfg!(target_arch = "aarch64") {
    Arch::Aarch64
} else {
    Arch::X86_64
};

/// Builds the table for `arch` from every part.
pub fn build(arch: Arch) -> Table<dyn Ctx> {
    Table::from_parts(
        arch,
        &[
            files::ENTRIES,
            ENTRIES,
            signal::ENTRIES,
            exec::ENTRIES,
            socket::ENTRIES,
        ],
    )
}

static TABLE: spin::Once<Table<dyn Ctx>> = spin::Once::new();

/// The table for this kernel's arch, built on first use.
pub fn table() -> &'static Table<dyn Ctx> {
    TABLE.call_once(|| build(ARCH))
}

/// Runs the file calls' entry named `name` (for paths this module does
/// not answer itself); ENOENT when the file calls have none yet.
pub fn delegate(ctx: &mut Cx, name: &str, args: &Args) -> KResult<usize> {
    match files::ENTRIES.iter().find(|e| e.name == name) {
        Some(e) => (e.handler)(ctx, args),
        None => Err(Errno::ENOENT),
    }
}
