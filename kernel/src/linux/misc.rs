//! Process, identity, time, randomness, limits and signal-bookkeeping
//! system calls, with Linux's argument checks and errno values.
//!
//! Clocks: `CLOCK_MONOTONIC` (and `_RAW`, `_COARSE`, `BOOTTIME`) count from
//! boot. `CLOCK_REALTIME` is the platform's boot-time wall clock plus
//! monotonic time when the platform has one; Skiff's platforms do not read
//! an RTC yet, so today it is the Unix epoch plus the time since boot
//! (`1970-01-01T00:00:00Z` at boot). The CPU-time clocks report the
//! process's elapsed time (an upper bound of its CPU time).
//!
//! Signals: dispositions and masks are recorded and read back exactly
//! here; delivery is [`super::signal`]'s. `nanosleep`/`clock_nanosleep`
//! are interruptible by signals (EINTR with the time left, as Linux).

use super::process::{Task, ThreadState, NSIG, RLIM_NLIMITS};
use super::{Ctx, Cx};
use crate::errno::{Errno, KResult};
use crate::syscall::Args;

pub(super) fn task(ctx: &dyn Ctx) -> KResult<&Task> {
    ctx.task().ok_or(Errno::ENOSYS)
}

pub(super) fn thread(ctx: &dyn Ctx) -> KResult<&ThreadState> {
    ctx.thread().ok_or(Errno::ENOSYS)
}

fn put_u64s(ctx: &mut Cx, addr: usize, words: &[u64]) -> KResult<()> {
    let mut buf = [0u8; 64];
    let n = words.len() * 8;
    for (i, w) in words.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    ctx.copy_out(addr, &buf[..n])
}

fn get_u64s<const N: usize>(ctx: &mut Cx, addr: usize) -> KResult<[u64; N]> {
    let mut buf = [0u8; 64];
    ctx.copy_in(addr, &mut buf[..N * 8])?;
    let mut out = [0u64; N];
    for (i, w) in out.iter_mut().enumerate() {
        *w = u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    Ok(out)
}

// ---- exit and identity ----

pub fn sys_exit_group(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let services = task(ctx)?.services();
    // The table traces after the handler returns, which this one does
    // not: say it now, as strace does (`= ?`).
    if ctx.tracing() {
        ctx.trace_line(&alloc::format!("exit_group({}) = ?", a[0] as i32));
    }
    // Linux keeps the low 8 bits of the status.
    services.exit_group(a[0] as u8);
    Ok(0)
}

pub fn sys_getpid(ctx: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(task(ctx)?.pid() as usize)
}

pub fn sys_gettid(ctx: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(thread(ctx)?.tid() as usize)
}

pub fn sys_getppid(_: &mut Cx, _: &Args) -> KResult<usize> {
    Ok(0)
}

/// uid, euid, gid, egid: the app runs as root.
pub fn sys_set_tid_address(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let t = thread(ctx)?;
    t.set_clear_child_tid(a[0]);
    Ok(t.tid() as usize)
}

/// `struct robust_list_head` is three words.
const ROBUST_LIST_HEAD_LEN: usize = 24;

pub fn sys_set_robust_list(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    if a[1] != ROBUST_LIST_HEAD_LEN {
        return Err(Errno::EINVAL);
    }
    thread(ctx)?.set_robust_list(a[0], a[1]);
    Ok(0)
}

pub fn sys_get_robust_list(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let t = thread(ctx)?;
    if a[0] != 0 && a[0] != t.tid() as usize {
        return Err(Errno::ESRCH);
    }
    let (head, _) = t.robust_list();
    put_u64s(ctx, a[1], &[head as u64])?;
    // Linux always reports sizeof(struct robust_list_head).
    put_u64s(ctx, a[2], &[ROBUST_LIST_HEAD_LEN as u64])?;
    Ok(0)
}

// ---- uname, prctl, arch_prctl ----

/// The release Skiff reports: a Linux version glibc and runtimes accept.
pub const RELEASE: &str = "6.1.0-skiff";
pub const VERSION: &str = "#1 SMP Skiff";

pub fn machine() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    }
}

pub fn sys_uname(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let mut u = [0u8; 6 * 65];
    for (i, field) in ["Linux", "skiff", RELEASE, VERSION, machine(), "(none)"]
        .iter()
        .enumerate()
    {
        u[i * 65..i * 65 + field.len()].copy_from_slice(field.as_bytes());
    }
    ctx.copy_out(a[0], &u)?;
    Ok(0)
}

const PR_SET_NAME: usize = 15;
const PR_GET_NAME: usize = 16;

pub fn sys_prctl(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    match a[0] {
        PR_SET_NAME => {
            let mut raw = [0u8; 16];
            // Linux copies at most 16 bytes and terminates at 15.
            for (i, b) in raw.iter_mut().enumerate() {
                let mut c = [0u8];
                ctx.copy_in(a[1] + i, &mut c)?;
                *b = c[0];
                if c[0] == 0 {
                    break;
                }
            }
            task(ctx)?.set_name(&raw);
            Ok(0)
        }
        PR_GET_NAME => {
            let name = task(ctx)?.name();
            ctx.copy_out(a[1], &name)?;
            Ok(0)
        }
        // libcap (loaded by redis through libsystemd) probes the bounding
        // set to find the highest capability: root holds them all.
        PR_CAPBSET_READ if a[1] <= CAP_LAST_CAP => Ok(1),
        _ => Err(Errno::EINVAL),
    }
}

const PR_CAPBSET_READ: usize = 23;
/// Linux 6.1's highest capability (`CAP_CHECKPOINT_RESTORE`).
const CAP_LAST_CAP: usize = 40;

const ARCH_SET_FS: usize = 0x1002;
const ARCH_GET_FS: usize = 0x1003;
const ARCH_SET_GS: usize = 0x1001;
const ARCH_GET_GS: usize = 0x1004;

/// x86_64 only (the name does not exist on aarch64, where TPIDR_EL0 is
/// written by the app itself).
pub fn sys_arch_prctl(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let services = task(ctx)?.services();
    match a[0] {
        ARCH_SET_FS => {
            // Must be canonical user space (Linux: EPERM otherwise).
            if a[1] >= 1 << 47 {
                return Err(Errno::EPERM);
            }
            services.set_tls(a[1]);
            Ok(0)
        }
        ARCH_GET_FS => {
            put_u64s(ctx, a[1], &[services.tls() as u64])?;
            Ok(0)
        }
        // GS belongs to the kernel's per-CPU base in Skiff.
        ARCH_SET_GS | ARCH_GET_GS => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

// ---- limits, resources, scheduling ----

fn rlimit_resource(r: usize) -> KResult<usize> {
    (r < RLIM_NLIMITS).then_some(r).ok_or(Errno::EINVAL)
}

pub fn sys_prlimit64(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (pid, res, new, old) = (a[0] as i32, a[1], a[2], a[3]);
    let t = task(ctx)?;
    if pid != 0 && pid as u32 != t.pid() {
        return Err(Errno::ESRCH);
    }
    let res = rlimit_resource(res)?;
    let prev = t.limit(res)?;
    if new != 0 {
        let [cur, max] = get_u64s::<2>(ctx, new)?;
        task(ctx)?.set_limit(res, (cur, max))?;
    }
    if old != 0 {
        put_u64s(ctx, old, &[prev.0, prev.1])?;
    }
    Ok(0)
}

pub fn sys_getrlimit(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (cur, max) = task(ctx)?.limit(rlimit_resource(a[0])?)?;
    put_u64s(ctx, a[1], &[cur, max])?;
    Ok(0)
}

pub fn sys_setrlimit(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let res = rlimit_resource(a[0])?;
    let [cur, max] = get_u64s::<2>(ctx, a[1])?;
    task(ctx)?.set_limit(res, (cur, max))?;
    Ok(0)
}

pub fn sys_sched_yield(ctx: &mut Cx, _: &Args) -> KResult<usize> {
    task(ctx)?.services().yield_now();
    Ok(0)
}

pub fn sys_sched_getaffinity(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (pid, len, mask) = (a[0] as i32, a[1], a[2]);
    let t = task(ctx)?;
    if pid != 0 && pid as u32 != t.pid() && pid as u32 != thread(ctx)?.tid() {
        return Err(Errno::ESRCH);
    }
    let cpus = t.services().cpus().clamp(1, 1024) as usize;
    // Linux copies whole longs covering nr_cpu_ids and returns that size.
    let need = cpus.div_ceil(64) * 8;
    if len < need || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut bytes = alloc::vec![0u8; need];
    for cpu in 0..cpus {
        bytes[cpu / 8] |= 1 << (cpu % 8);
    }
    ctx.copy_out(mask, &bytes)?;
    Ok(need)
}

/// `sched_setaffinity`: threads run on any online CPU; a mask naming
/// at least one of them is accepted (and not enforced), EINVAL otherwise.
pub fn sys_sched_setaffinity(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (pid, len, mask) = (a[0] as i32, a[1], a[2]);
    let t = task(ctx)?;
    if pid != 0 && pid as u32 != t.pid() && pid as u32 != thread(ctx)?.tid() {
        return Err(Errno::ESRCH);
    }
    let cpus = t.services().cpus().clamp(1, 1024) as usize;
    let mut bytes = alloc::vec![0u8; len.min(cpus.div_ceil(8))];
    ctx.copy_in(mask, &mut bytes)?;
    let any = (0..cpus).any(|c| bytes.get(c / 8).is_some_and(|b| b & (1 << (c % 8)) != 0));
    if !any {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

pub fn sys_getcpu(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    // Which CPU is a snapshot anyway; node 0.
    for p in [a[0], a[1]] {
        if p != 0 {
            ctx.copy_out(p, &0u32.to_le_bytes())?;
        }
    }
    Ok(0)
}

pub fn sys_sysinfo(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let s = task(ctx)?.services();
    let (total, free) = s.memory_bytes();
    let mut b = [0u8; 112];
    b[0..8].copy_from_slice(&(s.monotonic_ns() / 1_000_000_000).to_le_bytes());
    b[32..40].copy_from_slice(&total.to_le_bytes());
    b[40..48].copy_from_slice(&free.to_le_bytes());
    b[80..82].copy_from_slice(&1u16.to_le_bytes()); // procs
    b[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    ctx.copy_out(a[0], &b)?;
    Ok(0)
}

// ---- time ----

const NS: u64 = 1_000_000_000;

/// Reads clock `id` (Linux clock ids; EINVAL for unknown ones, including
/// per-process/thread CPU clocks of other pids).
pub fn clock_ns(task: &Task, id: i32) -> KResult<u64> {
    let s = task.services();
    match id {
        0 | 5 | 8 | 11 => Ok(s.realtime_ns()), // REALTIME, _COARSE, _ALARM, TAI
        1 | 4 | 6 | 7 | 9 => Ok(s.monotonic_ns()), // MONOTONIC, _RAW, _COARSE, BOOTTIME(_ALARM)
        2 | 3 => Ok(s.monotonic_ns().saturating_sub(task.started_ns())),
        _ => Err(Errno::EINVAL),
    }
}

pub(super) fn read_timespec(ctx: &mut Cx, addr: usize) -> KResult<u64> {
    let [sec, nsec] = get_u64s::<2>(ctx, addr)?;
    let (sec, nsec) = (sec as i64, nsec as i64);
    if sec < 0 || !(0..NS as i64).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(NS).saturating_add(nsec as u64))
}

pub fn sys_clock_gettime(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let ns = clock_ns(task(ctx)?, a[0] as i32)?;
    put_u64s(ctx, a[1], &[ns / NS, ns % NS])?;
    Ok(0)
}

pub fn sys_clock_getres(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    clock_ns(task(ctx)?, a[0] as i32)?;
    if a[1] != 0 {
        put_u64s(ctx, a[1], &[0, 1])?;
    }
    Ok(0)
}

pub fn sys_gettimeofday(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let ns = task(ctx)?.services().realtime_ns();
    if a[0] != 0 {
        put_u64s(ctx, a[0], &[ns / NS, ns % NS / 1000])?;
    }
    if a[1] != 0 {
        // struct timezone: UTC, no DST.
        put_u64s(ctx, a[1], &[0])?;
    }
    Ok(0)
}

pub fn sys_time(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let secs = task(ctx)?.services().realtime_ns() / NS;
    if a[0] != 0 {
        put_u64s(ctx, a[0], &[secs])?;
    }
    Ok(secs as usize)
}

pub fn sys_nanosleep(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let ns = read_timespec(ctx, a[0])?;
    let s = task(ctx)?.services();
    sleep(ctx, s.monotonic_ns().saturating_add(ns), a[1])
}

/// Sleeps until `deadline` (monotonic ns), interruptibly: a signal ends
/// it with `ERESTARTNOHAND` (EINTR once a handler runs, as Linux's
/// restart-block calls), after writing the time left to `rem` if not 0.
/// A restart without a handler (the signal ended up ignored) sleeps the
/// whole request again: Linux would sleep only the rest.
fn sleep(ctx: &mut Cx, deadline: u64, rem: usize) -> KResult<usize> {
    let left = {
        let t = task(ctx)?;
        if super::signal::sleep_until(t, deadline) {
            return Ok(0);
        }
        deadline.saturating_sub(t.services().monotonic_ns())
    };
    if rem != 0 {
        put_u64s(ctx, rem, &[left / NS, left % NS])?;
    }
    Err(Errno::ERESTARTNOHAND)
}

const TIMER_ABSTIME: usize = 1;

pub fn sys_clock_nanosleep(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (id, flags, req) = (a[0] as i32, a[1], a[2]);
    if matches!(id, 3) {
        return Err(Errno::EINVAL); // THREAD_CPUTIME: Linux refuses too
    }
    let t = task(ctx)?;
    let now = clock_ns(t, id).map_err(|_| Errno::EINVAL)?;
    let ns = read_timespec(ctx, req)?;
    let s = task(ctx)?.services();
    let abs = flags & TIMER_ABSTIME != 0;
    let wait = if abs { ns.saturating_sub(now) } else { ns };
    // Linux writes the remaining time only for relative sleeps.
    let rem = if abs { 0 } else { a[3] };
    sleep(ctx, s.monotonic_ns().saturating_add(wait), rem)
}

// ---- randomness ----

const GRND_NONBLOCK: usize = 1;
const GRND_RANDOM: usize = 2;
const GRND_INSECURE: usize = 4;
/// Linux returns at most this much per call.
const GETRANDOM_MAX: usize = (32 << 20) - 1;

pub fn sys_getrandom(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (buf, len, flags) = (a[0], a[1].min(GETRANDOM_MAX), a[2]);
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE
    {
        return Err(Errno::EINVAL);
    }
    let s = task(ctx)?.services();
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        if !s.random(&mut chunk[..n]) {
            // Never seeded: Linux would block until it is.
            return if done > 0 {
                Ok(done)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        ctx.copy_out(buf + done, &chunk[..n])?;
        done += n;
    }
    Ok(done)
}

// ---- signal dispositions and masks ----

const SIGKILL: usize = 9;
const SIGSTOP: usize = 19;
const SIGSET_SIZE: usize = 8;

pub fn sys_rt_sigaction(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (sig, act, old, size) = (a[0], a[1], a[2], a[3]);
    if size != SIGSET_SIZE || !(1..=NSIG).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    if act != 0 && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let prev = task(ctx)?.action(sig);
    if act != 0 {
        let mut new = [0u8; 32];
        ctx.copy_in(act, &mut new)?;
        task(ctx)?.set_action(sig, new);
    }
    if old != 0 {
        ctx.copy_out(old, &prev)?;
    }
    Ok(0)
}

const SIG_BLOCK: usize = 0;
const SIG_UNBLOCK: usize = 1;
const SIG_SETMASK: usize = 2;

pub fn sys_rt_sigprocmask(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let (how, set, old, size) = (a[0], a[1], a[2], a[3]);
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let prev = thread(ctx)?.sigmask();
    if set != 0 {
        let [s] = get_u64s::<1>(ctx, set)?;
        let new = match how {
            SIG_BLOCK => prev | s,
            SIG_UNBLOCK => prev & !s,
            SIG_SETMASK => s,
            _ => return Err(Errno::EINVAL),
        };
        thread(ctx)?.set_sigmask(new);
    }
    if old != 0 {
        put_u64s(ctx, old, &[prev])?;
    }
    Ok(0)
}

// ---- /proc/self/exe ----

pub fn sys_readlink(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let path = ctx.read_cstr(a[0])?;
    readlink_common(ctx, &path, a[1], a[2], |ctx| {
        super::table::delegate(ctx, "readlink", a)
    })
}

pub fn sys_readlinkat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let path = ctx.read_cstr(a[1])?;
    readlink_common(ctx, &path, a[2], a[3], |ctx| {
        super::table::delegate(ctx, "readlinkat", a)
    })
}

fn readlink_common(
    ctx: &mut Cx,
    path: &str,
    buf: usize,
    len: usize,
    other: impl FnOnce(&mut Cx) -> KResult<usize>,
) -> KResult<usize> {
    if path != "/proc/self/exe" && path != alloc::format!("/proc/{}/exe", super::process::PID) {
        return other(ctx);
    }
    if len as isize <= 0 {
        return Err(Errno::EINVAL);
    }
    let exe = task(ctx)?.exe();
    let n = exe.len().min(len);
    ctx.copy_out(buf, &exe.as_bytes()[..n])?;
    Ok(n)
}

#[cfg(test)]
mod tests;

// ---- resource usage, scheduling parameters, membarrier ----

/// The app's CPU time as `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` reports
/// it (time since the app started: per-thread CPU accounting is not
/// exposed to this layer yet), split as (user, system) = (all, 0).
fn cpu_times_ns(t: &Task) -> (u64, u64) {
    (
        t.services().monotonic_ns().saturating_sub(t.started_ns()),
        0,
    )
}

const RUSAGE_SELF: i32 = 0;
const RUSAGE_CHILDREN: i32 = -1;
const RUSAGE_THREAD: i32 = 1;

/// `getrusage`: `struct rusage` is two timevals then 14 longs (144
/// bytes); children never exist, so their usage is all zero.
pub fn sys_getrusage(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let t = task(ctx)?;
    let (total, free) = t.services().memory_bytes();
    let (user, system) = match a[0] as i32 {
        RUSAGE_SELF | RUSAGE_THREAD => cpu_times_ns(t),
        RUSAGE_CHILDREN => (0, 0),
        _ => return Err(Errno::EINVAL),
    };
    let mut b = [0u8; 144];
    let tv = |ns: u64| [ns / NS, (ns % NS) / 1000];
    for (i, w) in tv(user).into_iter().chain(tv(system)).enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    if a[0] as i32 != RUSAGE_CHILDREN {
        // ru_maxrss (KiB): the memory in use by the app, as sysinfo sees it.
        let kib = total.saturating_sub(free) / 1024;
        b[32..40].copy_from_slice(&kib.to_le_bytes());
    }
    ctx.copy_out(a[1], &b)?;
    Ok(0)
}

/// Clock ticks per second of `times` (`AT_CLKTCK`, `sysconf(_SC_CLK_TCK)`).
const CLK_TCK: u64 = 100;

/// `times`: the app's CPU times in clock ticks (children: zero); returns
/// ticks since boot, like Linux's `jiffies`-based value.
pub fn sys_times(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    let t = task(ctx)?;
    let (user, system) = cpu_times_ns(t);
    let now = t.services().monotonic_ns();
    let ticks = |ns: u64| ns / (NS / CLK_TCK);
    if a[0] != 0 {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&ticks(user).to_le_bytes());
        b[8..16].copy_from_slice(&ticks(system).to_le_bytes());
        ctx.copy_out(a[0], &b)?;
    }
    Ok(ticks(now) as usize)
}

/// The static-priority range of a policy: SCHED_FIFO (1) and SCHED_RR (2)
/// are 1..=99, SCHED_OTHER (0), SCHED_BATCH (3), SCHED_IDLE (5) and
/// SCHED_DEADLINE (6) 0..=0; anything else EINVAL.
fn priority_range(policy: usize) -> KResult<(usize, usize)> {
    match policy {
        1 | 2 => Ok((1, 99)),
        0 | 3 | 5 | 6 => Ok((0, 0)),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sys_sched_get_priority_max(_: &mut Cx, a: &Args) -> KResult<usize> {
    priority_range(a[0]).map(|r| r.1)
}

pub fn sys_sched_get_priority_min(_: &mut Cx, a: &Args) -> KResult<usize> {
    priority_range(a[0]).map(|r| r.0)
}

const MEMBARRIER_CMD_QUERY: usize = 0;
const MEMBARRIER_CMD_GLOBAL: usize = 1;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: usize = 2;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: usize = 4;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: usize = 8;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: usize = 16;
const MEMBARRIER_SUPPORTED: usize = MEMBARRIER_CMD_GLOBAL
    | MEMBARRIER_CMD_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;

static MEMBARRIER_PRIVATE_REGISTERED: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// `membarrier(cmd, flags, cpu_id)`: every barrier command waits until
/// each CPU has passed through the scheduler (a full barrier there), the
/// kernel's RCU grace period ([`Services::barrier_all_cpus`]). The
/// private expedited command needs its registration first (EPERM), as on
/// Linux; flags must be 0.
pub fn sys_membarrier(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    use core::sync::atomic::Ordering;
    let (cmd, flags) = (a[0], a[1]);
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let s = task(ctx)?.services();
    match cmd {
        MEMBARRIER_CMD_QUERY => Ok(MEMBARRIER_SUPPORTED),
        MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED => {
            MEMBARRIER_PRIVATE_REGISTERED.store(true, Ordering::Release);
            Ok(0)
        }
        MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED => Ok(0),
        MEMBARRIER_CMD_PRIVATE_EXPEDITED => {
            if !MEMBARRIER_PRIVATE_REGISTERED.load(Ordering::Acquire) {
                return Err(Errno::EPERM);
            }
            s.barrier_all_cpus();
            Ok(0)
        }
        MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_GLOBAL_EXPEDITED => {
            s.barrier_all_cpus();
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
