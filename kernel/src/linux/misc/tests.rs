//! The process, memory and misc calls through the real table, on a fake
//! process (fake page tables, fake clock).

use crate::errno::Errno;
use crate::linux::process::fake::FakeCtx;
use crate::linux::table;
use crate::linux::Cx;
use crate::syscall::{numbers, Arch, Table};

fn nr(name: &str) -> usize {
    numbers::LINUX_SYSCALLS
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|&(_, x, _)| x)
        .unwrap_or_else(|| panic!("no x86_64 number for {name}")) as usize
}

struct T {
    table: Table<Cx>,
    ctx: FakeCtx,
}

impl T {
    fn new() -> T {
        T {
            table: table::build(Arch::X86_64),
            ctx: FakeCtx::new(),
        }
    }
    fn call(&mut self, name: &str, args: [usize; 6]) -> isize {
        self.table.dispatch(&mut self.ctx, nr(name), &args)
    }
    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        assert!(self.ctx.pages.read(addr, &mut b), "unreadable {addr:#x}");
        b
    }
    fn u64_at(&self, addr: u64) -> u64 {
        u64::from_le_bytes(self.read(addr, 8).try_into().unwrap())
    }
}

const E: fn(Errno) -> isize = Errno::as_ret;

#[test]
fn every_entry_is_a_linux_name_on_some_arch() {
    for e in table::ENTRIES.iter() {
        assert!(
            numbers::LINUX_SYSCALLS.iter().any(|(n, _, _)| *n == e.name),
            "{} is not a Linux syscall",
            e.name
        );
    }
    let t = table::build(Arch::Aarch64);
    // arch_prctl does not exist on aarch64; the rest of glibc's static
    // start-up sequence does.
    assert!(t.name_of(158).is_some());
    for name in [
        "brk",
        "set_tid_address",
        "set_robust_list",
        "prlimit64",
        "getrandom",
        "mprotect",
        "exit_group",
        "readlinkat",
    ] {
        let n = numbers::LINUX_SYSCALLS
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap()
            .2
            .unwrap();
        assert!(t.is_implemented(n as usize), "{name} on aarch64");
    }
}

#[test]
fn unimplemented_call_is_enosys_and_reported_once_by_name() {
    let mut t = T::new();
    assert_eq!(t.call("acct", [0; 6]), E(Errno::ENOSYS));
    assert_eq!(t.call("acct", [0; 6]), E(Errno::ENOSYS));
    let lines = t.ctx.trace.lock().clone();
    assert_eq!(
        lines,
        ["syscall: unimplemented name=acct nr=163 returning=-ENOSYS"]
    );
}

#[test]
fn glibc_static_startup_sequence() {
    let mut t = T::new();
    let brk0 = t.call("brk", [0; 6]);
    assert_eq!(brk0 as u64, 0x5555_5600_0000);
    let brk1 = t.call("brk", [brk0 as usize + 0xd00, 0, 0, 0, 0, 0]);
    assert_eq!(brk1, brk0 + 0xd00);
    // The heap is usable: demand-paged on first touch, reads zero.
    let heap = brk0 as usize;
    t.ctx
        .task
        .memory()
        .fault(heap as u64, skiff_arch_api::Access::Write, false)
        .unwrap();
    assert_eq!(t.u64_at(heap as u64 + 8), 0);
    assert_eq!(t.call("arch_prctl", [0x1002, heap + 0x380, 0, 0, 0, 0]), 0);
    assert_eq!(
        t.ctx
            .services
            .tls
            .load(core::sync::atomic::Ordering::Relaxed),
        heap as u64 + 0x380
    );
    assert_eq!(t.call("set_tid_address", [heap + 0x650, 0, 0, 0, 0, 0]), 1);
    assert_eq!(t.call("set_robust_list", [heap + 0x660, 24, 0, 0, 0, 0]), 0);
    assert_eq!(
        t.call("set_robust_list", [heap + 0x660, 23, 0, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(
        t.call("rseq", [heap, 0x20, 0, 0x53053053, 0, 0]),
        E(Errno::ENOSYS)
    );
    let lim = heap + 0x800;
    assert_eq!(t.call("prlimit64", [0, 3, 0, lim, 0, 0]), 0);
    assert_eq!(
        (t.u64_at(lim as u64), t.u64_at(lim as u64 + 8)),
        (8 << 20, u64::MAX)
    );
    // readlink("/proc/self/exe")
    let path = t.ctx.scratch(4096);
    assert!(t.ctx.pages.write(path, b"/proc/self/exe\0"));
    let buf = path + 64;
    assert_eq!(
        t.call("readlink", [path as usize, buf as usize, 4096, 0, 0, 0]),
        8
    );
    assert_eq!(t.read(buf, 8), b"/bin/app");
    assert_eq!(
        t.call("readlink", [path as usize, buf as usize, 3, 0, 0, 0]),
        3
    );
    assert_eq!(t.call("getrandom", [buf as usize, 8, 1, 0, 0, 0]), 8);
    assert_eq!(
        t.call("getrandom", [buf as usize, 8, 0x40, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    // mprotect of RELRO-like data, then write through the console stand-in
    // (or the file calls' write once they exist) and exit.
    let data = t.call("mmap", [0, 0x4000, 3, 0x22, usize::MAX, 0]) as u64;
    assert_eq!(t.call("mprotect", [data as usize, 0x4000, 1, 0, 0, 0]), 0);
    assert_eq!(
        t.call("mprotect", [data as usize, 0x4000, 7, 0, 0, 0]),
        E(Errno::EACCES),
        "W^X"
    );
    t.call("exit_group", [300, 0, 0, 0, 0, 0]);
    assert_eq!(*t.ctx.services.exited.lock(), Some(300u16 as u8));
}

#[test]
fn mmap_arguments_are_checked_like_linux() {
    let mut t = T::new();
    let anon = 0x22; // MAP_PRIVATE | MAP_ANONYMOUS
    assert_eq!(
        t.call("mmap", [0, 0, 3, anon, usize::MAX, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(
        t.call("mmap", [0, 4096, 3, 0x20, usize::MAX, 0]),
        E(Errno::EINVAL),
        "no type"
    );
    assert_eq!(
        t.call("mmap", [0, 4096, 8, anon, usize::MAX, 0]),
        E(Errno::EINVAL),
        "bad prot"
    );
    assert_eq!(
        t.call("mmap", [0, 4096, 3, anon, usize::MAX, 1]),
        E(Errno::EINVAL),
        "offset"
    );
    assert_eq!(
        t.call("mmap", [0, 4096, 3, 0x02, 5, 0]),
        E(Errno::ENODEV),
        "no files here"
    );
    let a = t.call("mmap", [0, 4096, 3, anon, usize::MAX, 0]);
    assert_eq!(
        a as u64,
        0x7f00_0000_0000 - 4096,
        "top-down below the mmap base"
    );
    // MAP_FIXED_NOREPLACE on it: EEXIST; MAP_FIXED: replaced.
    assert_eq!(
        t.call(
            "mmap",
            [a as usize, 4096, 3, anon | 0x10_0000, usize::MAX, 0]
        ),
        E(Errno::EEXIST)
    );
    assert_eq!(
        t.call("mmap", [a as usize, 4096, 1, anon | 0x10, usize::MAX, 0]),
        a
    );
    // A free hint is honoured.
    assert_eq!(
        t.call("mmap", [0x1000_0000, 8192, 3, anon, usize::MAX, 0]),
        0x1000_0000
    );
    assert_eq!(
        t.call("munmap", [0x1000_0000, 0, 0, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(
        t.call("munmap", [0x1000_0001, 4096, 0, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(t.call("munmap", [0x1000_0000, 8192, 0, 0, 0, 0]), 0);
}

#[test]
fn memory_contents_survive_mremap_and_madvise_zeroes() {
    let mut t = T::new();
    let a = t.call("mmap", [0, 0x2000, 3, 0x22, usize::MAX, 0]) as usize;
    // A mapping right above blocks growth in place.
    t.call("mmap", [a + 0x2000, 0x1000, 1, 0x32, usize::MAX, 0]);
    let w = |t: &mut T, addr: usize, v: u8| {
        t.ctx
            .task
            .memory()
            .fault(addr as u64, skiff_arch_api::Access::Write, false)
            .ok();
        assert!(t.ctx.pages.write(addr as u64, &[v]));
    };
    w(&mut t, a, 1);
    w(&mut t, a + 0x1fff, 2);
    assert_eq!(
        t.call("mremap", [a, 0x2000, 0x8000, 0, 0, 0]),
        E(Errno::ENOMEM)
    );
    let b = t.call("mremap", [a, 0x2000, 0x8000, 1, 0, 0]) as usize;
    assert_ne!(b, a);
    assert_eq!(t.read(b as u64, 1), [1]);
    assert_eq!(t.read(b as u64 + 0x1fff, 1), [2]);
    assert!(!t.ctx.pages.read(a as u64, &mut [0]), "old pages gone");
    // Shrinking frees the tail pages.
    assert_eq!(t.call("mremap", [b, 0x8000, 0x1000, 0, 0, 0]), b as isize);
    assert!(!t.ctx.pages.read(b as u64 + 0x1fff, &mut [0]));
    assert_eq!(t.call("madvise", [b, 0x1000, 4, 0, 0, 0]), 0);
    t.ctx
        .task
        .memory()
        .fault(b as u64, skiff_arch_api::Access::Read, false)
        .unwrap();
    assert_eq!(t.read(b as u64, 1), [0], "MADV_DONTNEED reads back zero");
    assert_eq!(
        t.call("madvise", [b, 0x1000, 999, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(
        t.call("madvise", [0x10_0000, 0x1000, 0, 0, 0, 0]),
        E(Errno::ENOMEM),
        "unmapped"
    );
}

#[test]
fn faults_demand_page_or_raise_segv() {
    use crate::linux::memory::Segv;
    use skiff_arch_api::Access;
    let mut t = T::new();
    let mem = t.ctx.task.memory();
    assert_eq!(
        mem.fault(0, Access::Read, false),
        Err(Segv::NotMapped),
        "NULL"
    );
    let ro = t.call("mmap", [0, 4096, 1, 0x22, usize::MAX, 0]) as u64;
    let mem = t.ctx.task.memory();
    assert_eq!(mem.fault(ro, Access::Write, false), Err(Segv::Permission));
    assert_eq!(mem.fault(ro, Access::Execute, false), Err(Segv::Permission));
    assert_eq!(mem.fault(ro + 5, Access::Read, false), Ok(()));
    // Already present and allowed: another thread paged it in (or a
    // stale TLB entry faulted): retry, never SIGSEGV.
    assert_eq!(
        mem.fault(ro, Access::Read, false),
        Ok(()),
        "already present"
    );
    assert_eq!(mem.fault(ro, Access::Read, true), Ok(()), "stale entry");
    assert_eq!(mem.fault(ro, Access::Write, true), Err(Segv::Permission));
    let none = t.call("mmap", [0, 4096, 0, 0x22, usize::MAX, 0]) as u64;
    let mem = t.ctx.task.memory();
    assert_eq!(
        mem.fault(none, Access::Read, false),
        Err(Segv::Permission),
        "PROT_NONE"
    );
    // Shrinking brk frees pages: a later touch there is SIGSEGV.
    let b0 = t.call("brk", [0; 6]) as usize;
    t.call("brk", [b0 + 0x3000, 0, 0, 0, 0, 0]);
    t.ctx
        .task
        .memory()
        .fault(b0 as u64 + 0x2000, Access::Write, false)
        .unwrap();
    t.call("brk", [b0 + 0x1000, 0, 0, 0, 0, 0]);
    assert!(!t.ctx.pages.read(b0 as u64 + 0x2000, &mut [0]));
    assert_eq!(
        t.ctx
            .task
            .memory()
            .fault(b0 as u64 + 0x2000, Access::Write, false),
        Err(Segv::NotMapped)
    );
}

#[test]
fn identity_uname_prctl_and_limits() {
    let mut t = T::new();
    assert_eq!(t.call("getpid", [0; 6]), 1);
    assert_eq!(t.call("gettid", [0; 6]), 1);
    assert_eq!(t.call("getppid", [0; 6]), 0);
    assert_eq!(t.call("geteuid", [0; 6]), 0);
    let buf = t.ctx.scratch(4096) as usize;
    assert_eq!(t.call("uname", [buf, 0, 0, 0, 0, 0]), 0);
    let u = t.read(buf as u64, 390);
    let field = |i: usize| {
        let f = &u[i * 65..(i + 1) * 65];
        String::from_utf8(f[..f.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
    };
    assert_eq!(field(0), "Linux");
    assert_eq!(field(2), "6.1.0-skiff");
    assert_eq!(field(4), crate::linux::misc::machine());
    assert_eq!(t.call("uname", [16, 0, 0, 0, 0, 0]), E(Errno::EFAULT));
    assert!(t
        .ctx
        .pages
        .write(buf as u64 + 1024, b"a-very-long-thread-name\0"));
    assert_eq!(t.call("prctl", [15, buf + 1024, 0, 0, 0, 0]), 0);
    assert_eq!(t.call("prctl", [16, buf + 2048, 0, 0, 0, 0]), 0);
    assert_eq!(t.read(buf as u64 + 2048, 16), b"a-very-long-thr\0");
    assert_eq!(t.call("prctl", [9999, 0, 0, 0, 0, 0]), E(Errno::EINVAL));
    // PR_CAPBSET_READ: every capability up to CAP_LAST_CAP (40) is held.
    assert_eq!(t.call("prctl", [23, 0, 0, 0, 0, 0]), 1);
    assert_eq!(t.call("prctl", [23, 40, 0, 0, 0, 0]), 1);
    assert_eq!(t.call("prctl", [23, 41, 0, 0, 0, 0]), E(Errno::EINVAL));
    // setitimer: ITIMER_REAL arms (the old setting comes back disarmed),
    // getitimer shows the time left; arming a CPU-time timer is ENOSYS;
    // a bad `which` or timeval is EINVAL; alarm(0) disarms and returns the
    // seconds that were left.
    let itv = |interval_s: u64, value_s: u64, value_us: u64| {
        [interval_s, 0, value_s, value_us]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    assert!(t.ctx.pages.write(buf as u64, &itv(0, 30, 0)));
    assert!(t.ctx.pages.write(buf as u64 + 64, &[0xffu8; 32]));
    assert_eq!(t.call("setitimer", [0, buf, buf + 64, 0, 0, 0]), 0);
    assert_eq!(t.read(buf as u64 + 64, 32), [0u8; 32]);
    assert_eq!(t.call("getitimer", [0, buf + 64, 0, 0, 0, 0]), 0);
    let left = t.u64_at(buf as u64 + 80) * 1_000_000 + t.u64_at(buf as u64 + 88);
    assert!(left > 29_000_000 && left <= 30_000_000, "{left} us left");
    assert!(t.ctx.pages.write(buf as u64, &itv(0, 0, 1_000_000)));
    assert_eq!(t.call("setitimer", [0, buf, 0, 0, 0, 0]), E(Errno::EINVAL));
    assert!(t.ctx.pages.write(buf as u64, &itv(0, 1, 0)));
    assert_eq!(t.call("setitimer", [1, buf, 0, 0, 0, 0]), E(Errno::ENOSYS));
    assert_eq!(t.call("setitimer", [3, buf, 0, 0, 0, 0]), E(Errno::EINVAL));
    assert!(t.ctx.pages.write(buf as u64 + 64, &[0xffu8; 32]));
    assert_eq!(t.call("getitimer", [1, buf + 64, 0, 0, 0, 0]), 0);
    assert_eq!(t.read(buf as u64 + 64, 32), [0u8; 32]);
    assert_eq!(t.call("alarm", [0, 0, 0, 0, 0, 0]), 30);
    assert_eq!(t.call("getitimer", [0, buf + 64, 0, 0, 0, 0]), 0);
    assert_eq!(t.read(buf as u64 + 64, 32), [0u8; 32]);
    // setrlimit then getrlimit; soft above hard is EINVAL.
    assert!(t.ctx.pages.write(
        buf as u64,
        &[100u64.to_le_bytes(), 200u64.to_le_bytes()].concat()
    ));
    assert_eq!(t.call("setrlimit", [7, buf, 0, 0, 0, 0]), 0);
    assert_eq!(t.call("getrlimit", [7, buf + 16, 0, 0, 0, 0]), 0);
    assert_eq!(
        (t.u64_at(buf as u64 + 16), t.u64_at(buf as u64 + 24)),
        (100, 200)
    );
    assert!(t.ctx.pages.write(
        buf as u64,
        &[300u64.to_le_bytes(), 200u64.to_le_bytes()].concat()
    ));
    assert_eq!(t.call("setrlimit", [7, buf, 0, 0, 0, 0]), E(Errno::EINVAL));
    assert_eq!(t.call("getrlimit", [99, buf, 0, 0, 0, 0]), E(Errno::EINVAL));
    assert_eq!(t.call("prlimit64", [77, 7, 0, buf, 0, 0]), E(Errno::ESRCH));
    assert_eq!(t.call("sched_getaffinity", [0, 128, buf, 0, 0, 0]), 8);
    assert_eq!(t.u64_at(buf as u64), 0b11, "two fake CPUs");
    assert_eq!(
        t.call("sched_getaffinity", [0, 4, buf, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(t.call("sysinfo", [buf, 0, 0, 0, 0, 0]), 0);
    assert_eq!(t.u64_at(buf as u64), 5, "uptime seconds");
    assert_eq!(t.u64_at(buf as u64 + 32), 512 << 20);
}

#[test]
fn clocks_and_sleeps() {
    let mut t = T::new();
    let buf = t.ctx.scratch(4096) as usize;
    assert_eq!(t.call("clock_gettime", [1, buf, 0, 0, 0, 0]), 0);
    assert_eq!((t.u64_at(buf as u64), t.u64_at(buf as u64 + 8)), (5, 0));
    assert_eq!(t.call("clock_gettime", [0, buf, 0, 0, 0, 0]), 0);
    assert_eq!(t.u64_at(buf as u64), 1_700_000_005);
    assert_eq!(
        t.call("clock_gettime", [99, buf, 0, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(t.call("clock_getres", [1, buf, 0, 0, 0, 0]), 0);
    assert_eq!(t.u64_at(buf as u64 + 8), 1);
    // nanosleep 1.5 s advances the fake clock; bad nsec is EINVAL.
    assert!(t.ctx.pages.write(
        buf as u64 + 64,
        &[1u64.to_le_bytes(), 500_000_000u64.to_le_bytes()].concat()
    ));
    assert_eq!(t.call("nanosleep", [buf + 64, 0, 0, 0, 0, 0]), 0);
    assert_eq!(
        t.ctx
            .services
            .now
            .load(core::sync::atomic::Ordering::Relaxed),
        6_500_000_000
    );
    assert!(t.ctx.pages.write(
        buf as u64 + 64,
        &[1u64.to_le_bytes(), 1_000_000_000u64.to_le_bytes()].concat()
    ));
    assert_eq!(
        t.call("nanosleep", [buf + 64, 0, 0, 0, 0, 0]),
        E(Errno::EINVAL)
    );
    // clock_nanosleep absolute in the past returns at once.
    assert!(t.ctx.pages.write(
        buf as u64 + 64,
        &[1u64.to_le_bytes(), 0u64.to_le_bytes()].concat()
    ));
    assert_eq!(t.call("clock_nanosleep", [1, 1, buf + 64, 0, 0, 0]), 0);
    assert_eq!(
        t.ctx
            .services
            .now
            .load(core::sync::atomic::Ordering::Relaxed),
        6_500_000_000
    );
    assert_eq!(t.call("gettimeofday", [buf, 0, 0, 0, 0, 0]), 0);
    assert_eq!(t.u64_at(buf as u64 + 8), 500_000, "usec");
    assert_eq!(t.call("time", [0; 6]), 1_700_000_006);
}

#[test]
fn signal_bookkeeping_and_futex() {
    let mut t = T::new();
    let buf = t.ctx.scratch(4096) as usize;
    let act: Vec<u8> = (0..32).collect();
    assert!(t.ctx.pages.write(buf as u64, &act));
    assert_eq!(t.call("rt_sigaction", [2, buf, buf + 64, 8, 0, 0]), 0);
    assert_eq!(t.read(buf as u64 + 64, 32), [0; 32], "old action: default");
    assert_eq!(t.call("rt_sigaction", [2, 0, buf + 64, 8, 0, 0]), 0);
    assert_eq!(t.read(buf as u64 + 64, 32), act);
    assert_eq!(
        t.call("rt_sigaction", [9, buf, 0, 8, 0, 0]),
        E(Errno::EINVAL),
        "SIGKILL"
    );
    assert_eq!(
        t.call("rt_sigaction", [65, 0, 0, 8, 0, 0]),
        E(Errno::EINVAL)
    );
    assert_eq!(t.call("rt_sigaction", [2, 0, 0, 4, 0, 0]), E(Errno::EINVAL));
    // Block SIGINT and SIGKILL: SIGKILL stays unblockable.
    assert!(t
        .ctx
        .pages
        .write(buf as u64 + 128, &(1u64 << 1 | 1 << 8).to_le_bytes()));
    assert_eq!(
        t.call("rt_sigprocmask", [0, buf + 128, buf + 136, 8, 0, 0]),
        0
    );
    assert_eq!(t.u64_at(buf as u64 + 136), 0);
    assert_eq!(t.call("rt_sigprocmask", [2, 0, buf + 136, 8, 0, 0]), 0);
    assert_eq!(t.u64_at(buf as u64 + 136), 1 << 1);
    assert_eq!(
        t.call("rt_sigprocmask", [7, buf + 128, 0, 8, 0, 0]),
        E(Errno::EINVAL)
    );
    // futex: value mismatch is EAGAIN; a timed wait times out; wake finds no one.
    assert!(t.ctx.pages.write(buf as u64 + 256, &5u32.to_le_bytes()));
    assert_eq!(
        t.call("futex", [buf + 256, 128, 4, 0, 0, 0]),
        E(Errno::EAGAIN)
    );
    assert!(t.ctx.pages.write(
        buf as u64 + 512,
        &[0u64.to_le_bytes(), 1000u64.to_le_bytes()].concat()
    ));
    assert_eq!(
        t.call("futex", [buf + 256, 128, 5, buf + 512, 0, 0]),
        E(Errno::ETIMEDOUT)
    );
    assert_eq!(t.call("futex", [buf + 256, 129, 1, 0, 0, 0]), 0);
    assert_eq!(
        t.call("futex", [buf + 257, 129, 1, 0, 0, 0]),
        E(Errno::EINVAL)
    );
}

#[test]
fn huge_reservations_cost_only_what_is_touched() {
    // Runtimes (Go, the JVM) reserve terabytes PROT_NONE and commit bits.
    let mut t = T::new();
    let started = std::time::Instant::now();
    let tb = 1usize << 40;
    let base = t.call("mmap", [0, tb, 0, 0x4022, usize::MAX, 0]);
    assert!(base > 0, "{base}");
    let base = base as usize;
    assert_eq!(
        t.call("mprotect", [base + (1 << 30), 0x2000, 3, 0, 0, 0]),
        0
    );
    let mem = t.ctx.task.memory();
    mem.fault(
        (base + (1 << 30)) as u64,
        skiff_arch_api::Access::Write,
        false,
    )
    .unwrap();
    assert_eq!(mem.resident_bytes(), 4096);
    assert_eq!(mem.mapped_bytes(), tb as u64);
    assert_eq!(t.call("mprotect", [base, tb, 0, 0, 0, 0]), 0);
    assert_eq!(t.call("munmap", [base, tb, 0, 0, 0, 0]), 0);
    assert_eq!(t.ctx.task.memory().resident_bytes(), 0);
    assert!(t.ctx.pages.0.lock().pages.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
