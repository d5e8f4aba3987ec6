//! procfs (`/proc`) and the few sysfs files (`/sys`) programs read.
//!
//! The facts come from the process and the platform through
//! [`ProcSources`], a table of plain functions the start code fills in, so
//! this module formats text only and is tested on the host. Formats follow
//! Linux byte for byte where programs parse them (`maps`, `meminfo`,
//! `cpuinfo`'s `processor` lines, `stat`'s `cpu` lines, the sysfs CPU lists).
//!
//! Contents: `/proc/self` → `<pid>`, and in `/proc/<pid>`: `exe`, `cwd`,
//! `root` (links), `fd/` (a link per descriptor), `maps`, `status`, `comm`,
//! `cmdline`, `mounts`; `/proc/mounts` → `self/mounts`; `/proc/cpuinfo`,
//! `/proc/meminfo`, `/proc/stat`, `/proc/uptime`, `/proc/version`,
//! `/proc/sys/kernel/{hostname,osrelease,ostype,pid_max}`. sysfs:
//! `/sys/devices/system/cpu/{online,possible,present}`.
//!
//! Simplified: CPU time is not accounted per state, so `/proc/stat` counts
//! all time since boot as idle and `/proc/uptime`'s idle field is the
//! uptime times the CPU count.

use super::synth::{Child, Dir, File, FsId, Link};
use super::{magic, Inode};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

/// Facts about the one process (the VM's application).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcStatus {
    /// The command name (`comm`, at most 15 bytes).
    pub name: String,
    pub pid: u32,
    pub ppid: u32,
    pub threads: u32,
    pub umask: u32,
    /// Virtual size and resident size, in KiB.
    pub vm_size_kb: u64,
    pub vm_rss_kb: u64,
}

/// The machine's CPUs for `/proc/cpuinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuInfo {
    pub count: usize,
    /// x86_64: the brand string (`model name`); aarch64: unused.
    pub model: String,
    /// x86_64 `flags` / aarch64 `Features`, space-separated.
    pub features: String,
}

/// Memory figures for `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
}

/// Where procfs gets its facts: each a plain function, called on every
/// read of the file that shows it.
#[derive(Clone, Copy)]
pub struct ProcSources {
    pub status: fn() -> ProcStatus,
    /// Absolute path of the running executable.
    pub exe: fn() -> String,
    /// Absolute path of the working directory.
    pub cwd: fn() -> String,
    /// argv, each NUL-terminated, as `/proc/self/cmdline` shows it.
    pub cmdline: fn() -> Vec<u8>,
    /// The text of `/proc/self/maps` (`mm::vma::AddressSpace::maps`).
    pub maps: fn() -> String,
    /// Open descriptors and the path each refers to
    /// (`linux::fd::FdTable::paths`).
    pub fds: fn() -> Vec<(u32, String)>,
    pub cpus: fn() -> CpuInfo,
    pub memory: fn() -> MemInfo,
    /// Nanoseconds since boot.
    pub uptime_ns: fn() -> u64,
    /// Wall-clock seconds since the epoch at boot.
    pub boot_time_s: fn() -> u64,
    pub hostname: fn() -> String,
    /// `uname -r`.
    pub osrelease: fn() -> String,
}

const PROC_DEV: u64 = 0x16;
const SYS_DEV: u64 = 0x17;
/// Descriptor links get inode numbers from here up (fixed nodes are below).
const FD_INO_BASE: u64 = 0x1_0000;

struct Inos(u64);

impl Inos {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn text(f: impl Fn() -> String + Send + Sync + 'static) -> super::synth::Content {
    Box::new(move || f().into_bytes())
}

/// Builds `/proc`. `mounts` is the text of `/proc/self/mounts`.
pub fn new_procfs(src: ProcSources, mounts: String) -> Arc<dyn Inode> {
    let id = FsId {
        dev: PROC_DEV,
        magic: magic::PROC,
    };
    let mut ino = Inos(1);
    let file = |ino: &mut Inos, c: super::synth::Content| Child::Node(File::new(id, ino.next(), c));
    let link = |ino: &mut Inos, t: super::synth::Target| Child::Node(Link::new(id, ino.next(), t));

    let fd_dir = Dir::new(
        id,
        ino.next(),
        vec![],
        Some(Box::new(move || {
            (src.fds)()
                .into_iter()
                .map(|(fd, path)| {
                    let l: Arc<dyn Inode> = Link::new(
                        id,
                        FD_INO_BASE + u64::from(fd),
                        Box::new(move || path.clone()),
                    );
                    (fd.to_string(), l)
                })
                .collect()
        })),
    );
    let mounts_text = mounts.clone();
    let pid_dir = Dir::new(
        id,
        ino.next(),
        vec![
            ("exe", link(&mut ino, Box::new(src.exe))),
            ("cwd", link(&mut ino, Box::new(src.cwd))),
            ("root", link(&mut ino, Box::new(|| "/".to_string()))),
            ("fd", Child::Dir(fd_dir)),
            ("maps", file(&mut ino, text(src.maps))),
            (
                "status",
                file(
                    &mut ino,
                    text(move || status_text(&(src.status)(), (src.cpus)().count)),
                ),
            ),
            (
                "comm",
                file(&mut ino, text(move || format!("{}\n", (src.status)().name))),
            ),
            ("cmdline", file(&mut ino, Box::new(src.cmdline))),
            ("mounts", file(&mut ino, text(move || mounts_text.clone()))),
        ],
        None,
    );
    let sys_kernel = Dir::new(
        id,
        ino.next(),
        vec![
            (
                "hostname",
                file(&mut ino, text(move || format!("{}\n", (src.hostname)()))),
            ),
            (
                "osrelease",
                file(&mut ino, text(move || format!("{}\n", (src.osrelease)()))),
            ),
            ("ostype", file(&mut ino, text(|| "Linux\n".to_string()))),
            ("pid_max", file(&mut ino, text(|| "4194304\n".to_string()))),
        ],
        None,
    );
    let sys = Dir::new(
        id,
        ino.next(),
        vec![("kernel", Child::Dir(sys_kernel))],
        None,
    );
    let pid_for_root = pid_dir.clone();
    let root = Dir::new(
        id,
        1,
        vec![
            (
                "self",
                link(&mut ino, Box::new(move || (src.status)().pid.to_string())),
            ),
            (
                "mounts",
                link(&mut ino, Box::new(|| "self/mounts".to_string())),
            ),
            (
                "cpuinfo",
                file(&mut ino, text(move || cpuinfo_text(&(src.cpus)()))),
            ),
            (
                "meminfo",
                file(&mut ino, text(move || meminfo_text((src.memory)()))),
            ),
            (
                "stat",
                file(
                    &mut ino,
                    text(move || {
                        stat_text((src.cpus)().count, (src.uptime_ns)(), (src.boot_time_s)())
                    }),
                ),
            ),
            (
                "uptime",
                file(
                    &mut ino,
                    text(move || uptime_text((src.uptime_ns)(), (src.cpus)().count)),
                ),
            ),
            (
                "version",
                file(
                    &mut ino,
                    text(move || format!("Linux version {} (skiff) #1 SMP\n", (src.osrelease)())),
                ),
            ),
            ("sys", Child::Dir(sys)),
        ],
        Some(Box::new(move || {
            let d: Arc<dyn Inode> = pid_for_root.clone();
            vec![((src.status)().pid.to_string(), d)]
        })),
    );
    pid_dir.set_parent(&root);
    root
}

/// Builds `/sys` (the CPU lists only).
pub fn new_sysfs(cpus: fn() -> CpuInfo) -> Arc<dyn Inode> {
    let id = FsId {
        dev: SYS_DEV,
        magic: magic::SYSFS,
    };
    let mut ino = Inos(1);
    let list = move || cpu_list((cpus)().count);
    let mut files = Vec::new();
    for name in ["online", "possible", "present"] {
        files.push((
            name,
            Child::Node(File::new(id, ino.next(), text(list)) as Arc<dyn Inode>),
        ));
    }
    let cpu = Dir::new(id, ino.next(), files, None);
    let system = Dir::new(id, ino.next(), vec![("cpu", Child::Dir(cpu))], None);
    let devices = Dir::new(id, ino.next(), vec![("system", Child::Dir(system))], None);
    Dir::new(id, 1, vec![("devices", Child::Dir(devices))], None)
}

/// `0-3\n`, or `0\n` for one CPU (Linux's CPU list format).
pub fn cpu_list(n: usize) -> String {
    match n {
        0 | 1 => "0\n".to_string(),
        n => format!("0-{}\n", n - 1),
    }
}

pub fn status_text(s: &ProcStatus, cpus: usize) -> String {
    let mut o = String::new();
    let mask: u64 = if cpus >= 64 {
        u64::MAX
    } else {
        (1u64 << cpus.max(1)) - 1
    };
    let list = cpu_list(cpus);
    let _ = write!(
        o,
        "Name:\t{}\nUmask:\t{:04o}\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\n\
         PPid:\t{}\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t\n\
         VmPeak:\t{:8} kB\nVmSize:\t{:8} kB\nVmLck:\t       0 kB\nVmHWM:\t{:8} kB\nVmRSS:\t{:8} kB\n\
         Threads:\t{}\nSigQ:\t0/0\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
         SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n\
         CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n\
         Cpus_allowed:\t{:x}\nCpus_allowed_list:\t{}",
        s.name,
        s.umask,
        s.ppid,
        s.vm_size_kb,
        s.vm_size_kb,
        s.vm_rss_kb,
        s.vm_rss_kb,
        s.threads,
        mask,
        list,
        pid = s.pid,
    );
    o
}

/// `/proc/cpuinfo` in the format of the kernel's target arch.
pub fn cpuinfo_text(c: &CpuInfo) -> String {
    if cfg!(target_arch = "aarch64") {
        cpuinfo_aarch64(c)
    } else {
        cpuinfo_x86_64(c)
    }
}

pub fn cpuinfo_x86_64(c: &CpuInfo) -> String {
    let mut o = String::new();
    let n = c.count.max(1);
    for i in 0..n {
        let _ = write!(
            o,
            "processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 0\n\
             model name\t: {}\nstepping\t: 0\nphysical id\t: 0\nsiblings\t: {n}\n\
             core id\t\t: {i}\ncpu cores\t: {n}\napicid\t\t: {i}\nfpu\t\t: yes\n\
             fpu_exception\t: yes\nwp\t\t: yes\nflags\t\t: {}\nclflush size\t: 64\n\
             cache_alignment\t: 64\naddress sizes\t: 40 bits physical, 48 bits virtual\n\n",
            c.model, c.features
        );
    }
    o
}

pub fn cpuinfo_aarch64(c: &CpuInfo) -> String {
    let mut o = String::new();
    for i in 0..c.count.max(1) {
        let _ = write!(
            o,
            "processor\t: {i}\nBogoMIPS\t: 125.00\nFeatures\t: {}\nCPU implementer\t: 0x00\n\
             CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0x000\nCPU revision\t: 0\n\n",
            c.features
        );
    }
    o
}

pub fn meminfo_text(m: MemInfo) -> String {
    let kb = |b: u64| b / 1024;
    let mut o = String::new();
    for (name, v) in [
        ("MemTotal:", kb(m.total)),
        ("MemFree:", kb(m.free)),
        ("MemAvailable:", kb(m.free)),
        ("Buffers:", 0),
        ("Cached:", 0),
        ("SwapCached:", 0),
        ("Shmem:", 0),
        ("SwapTotal:", 0),
        ("SwapFree:", 0),
        ("CommitLimit:", kb(m.total)),
        ("Committed_AS:", kb(m.total - m.free.min(m.total))),
        ("HugePages_Total:", 0),
        ("Hugepagesize:", 2048),
    ] {
        if name.starts_with("HugePages_") {
            let _ = writeln!(o, "{name:<16}{v:>8}");
        } else {
            let _ = writeln!(o, "{name:<16}{v:>8} kB");
        }
    }
    o
}

/// USER_HZ, the unit of `/proc/stat` times.
const USER_HZ: u64 = 100;

pub fn stat_text(cpus: usize, uptime_ns: u64, boot_time_s: u64) -> String {
    let n = cpus.max(1) as u64;
    let idle = uptime_ns / (1_000_000_000 / USER_HZ);
    let mut o = String::new();
    let _ = writeln!(o, "cpu  0 0 0 {} 0 0 0 0 0 0", idle * n);
    for i in 0..n {
        let _ = writeln!(o, "cpu{i} 0 0 0 {idle} 0 0 0 0 0 0");
    }
    let _ = write!(
        o,
        "intr 0\nctxt 0\nbtime {boot_time_s}\nprocesses 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0\n"
    );
    o
}

/// `uptime idle` in seconds with two decimals (integer arithmetic: the
/// kernel does not use floating point).
pub fn uptime_text(uptime_ns: u64, cpus: usize) -> String {
    let cs = uptime_ns / 10_000_000;
    let idle = cs * cpus.max(1) as u64;
    format!(
        "{}.{:02} {}.{:02}\n",
        cs / 100,
        cs % 100,
        idle / 100,
        idle % 100
    )
}
