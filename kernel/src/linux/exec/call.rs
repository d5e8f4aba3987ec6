//! `execve` and `execveat`: the system calls that replace the program.
//!
//! Two phases, as on Linux. [`prepare`] does everything that can fail
//! while the old program still runs: copy the path, `argv` and `envp` in
//! (`E2BIG`, `EFAULT`), resolve the path (cwd or `dirfd`, `AT_EMPTY_PATH`,
//! `AT_SYMLINK_NOFOLLOW`, symlinks such as `/proc/self/exe`), follow `#!`
//! lines (up to 5 interpreters deep), and read and validate the ELF and
//! its `PT_INTERP` — each failure is the errno Linux returns. Then
//! [`commit`], past the point of no return: the other threads end, the
//! address space is torn down and the program loaded exactly as at boot
//! (fresh ASLR, new auxv), close-on-exec descriptors close, handled
//! signals go back to `SIG_DFL`, and the calling thread resumes as the
//! main thread at the new entry. A failure there (out of memory) ends
//! the app as Linux does (SIGSEGV), with a log line; never a panic.

use super::args::{self, Shebang};
use super::{load_into, ExecError, Image, Program};
use crate::errno::{Errno, KResult};
use crate::fs::{FileType, Inode, Vfs};
use crate::linux::files::{self, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use crate::linux::misc::{task, thread};
use crate::linux::process::{Services, RLIMIT_STACK};
use crate::linux::{signal, Cx};
use crate::loader::elf::Machine;
use crate::syscall::Args;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Interpreters a `#!` chain may go through (Linux's `exec_binprm` stops
/// after 5 with ELOOP).
const MAX_INTERP_DEPTH: usize = 5;
/// Symlinks followed while naming the executable for `/proc/self/exe`.
const MAX_SYMLINKS: usize = 40;

/// `execve(path, argv, envp)`.
pub fn sys_execve(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    execveat(ctx, AT_FDCWD as usize, a[0], a[1], a[2], 0)
}

/// `execveat(dirfd, path, argv, envp, flags)`.
pub fn sys_execveat(ctx: &mut Cx, a: &Args) -> KResult<usize> {
    execveat(ctx, a[0], a[1], a[2], a[3], a[4] as u32)
}

fn execveat(
    ctx: &mut Cx,
    dirfd: usize,
    path: usize,
    argv: usize,
    envp: usize,
    flags: u32,
) -> KResult<usize> {
    let prepared = prepare(ctx, dirfd, path, argv, envp, flags)?;
    commit(ctx, prepared)
}

/// This kernel's ELF machine.
pub fn machine() -> Machine {
    if cfg!(target_arch = "aarch64") {
        Machine::Aarch64
    } else {
        Machine::X86_64
    }
}

/// One file read for exec.
struct Loaded {
    /// Absolute path without symlinks (`/proc/self/exe`, maps).
    path: String,
    dev: u64,
    ino: u64,
    bytes: Vec<u8>,
}

/// Everything the new program needs, read and checked.
pub struct Prepared {
    exe: Loaded,
    interp: Option<Loaded>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    /// The name as given (`AT_EXECFN`; `/dev/fd/N/...` under a `dirfd`).
    execfn: String,
    /// What `comm` is named after (its last component counts).
    comm: String,
}

/// Linux's checks before a file may run: a regular file (directories and
/// devices are EACCES) with an execute bit (root needs any one).
fn check_executable(node: &Arc<dyn Inode>) -> KResult<()> {
    let m = node.metadata();
    if m.kind != FileType::Regular || m.perm & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(())
}

fn read_file(node: &Arc<dyn Inode>, path: String) -> KResult<Loaded> {
    let m = node.metadata();
    // Bounded by what the file system says; a file cannot be larger than
    // the memory that holds it.
    let mut bytes = alloc::vec![0u8; usize::try_from(m.size).map_err(|_| Errno::ENOMEM)?];
    let mut got = 0;
    while got < bytes.len() {
        match node.read_at(got as u64, &mut bytes[got..])? {
            0 => break,
            n => got += n,
        }
    }
    bytes.truncate(got);
    Ok(Loaded {
        path,
        dev: m.dev,
        ino: m.ino,
        bytes,
    })
}

/// `path` (absolute) with every symlink resolved and `.`/`..` removed, as
/// `realpath` would: what `/proc/self/exe` shows. ELOOP after
/// [`MAX_SYMLINKS`] links.
pub fn canonical(vfs: &Vfs, path: &str) -> KResult<String> {
    let root = vfs.root();
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.rsplit('/').map(String::from).collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => done.push(c),
        }
        let here = join_abs(&done);
        let node = vfs.resolve(&root, &here, false)?;
        if node.metadata().kind == FileType::Symlink {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            let target = node.readlink()?;
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(target.rsplit('/').map(String::from));
        }
    }
    Ok(join_abs(&done))
}

fn join_abs(parts: &[String]) -> String {
    if parts.is_empty() {
        return String::from("/");
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    s
}

/// Resolves what `execveat` names: the file, its canonical path and the
/// name Linux gives it (`bprm->filename`: the path as given, or
/// `/dev/fd/N[/path]` for a relative path or none under a descriptor).
fn open_exec(
    ctx: &mut Cx,
    dirfd: usize,
    path: &str,
    flags: u32,
) -> KResult<(Arc<dyn Inode>, String, String)> {
    let vfs = ctx.fs().vfs().clone();
    if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd as i32 == AT_FDCWD {
            // The working directory: not a file that can run.
            return Err(Errno::EACCES);
        }
        let f = files::file(ctx, dirfd)?;
        let name = alloc::format!("/dev/fd/{}", dirfd as i32);
        return Ok((f.inode().clone(), String::from(f.path()), name));
    }
    let (base, base_path) = files::base_dir(ctx, dirfd, path)?;
    let node = vfs.resolve(&base, path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    if node.metadata().kind == FileType::Symlink {
        // AT_SYMLINK_NOFOLLOW on a link: Linux's open fails with ELOOP.
        return Err(Errno::ELOOP);
    }
    let abs = files::join(&base_path, path);
    let real = canonical(&vfs, &abs).unwrap_or(abs);
    let name = if path.starts_with('/') || dirfd as i32 == AT_FDCWD {
        String::from(path)
    } else {
        alloc::format!("/dev/fd/{}/{path}", dirfd as i32)
    };
    Ok((node, real, name))
}

/// Phase one: everything that can fail, while the old program still runs.
pub fn prepare(
    ctx: &mut Cx,
    dirfd: usize,
    path_addr: usize,
    argv: usize,
    envp: usize,
    flags: u32,
) -> KResult<Prepared> {
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = ctx.read_cstr(path_addr)?;
    let stack_limit = task(ctx)?.limit(RLIMIT_STACK)?.0;
    let strings = args::copy_strings(ctx, argv, envp, stack_limit)?;
    let mut argv = strings.argv;
    let (mut node, mut real, mut name) = open_exec(ctx, dirfd, &path, flags)?;
    let execfn = name.clone();
    // `comm`: the name as given; under a descriptor, the file's own name
    // (Linux's `bprm->fdpath` case).
    let comm = if execfn.starts_with("/dev/fd/") {
        real.clone()
    } else {
        execfn.clone()
    };
    let mut depth = 0;
    let exe = loop {
        check_executable(&node)?;
        let file = read_file(&node, real)?;
        let sb: Shebang = match args::parse_shebang(&file.bytes) {
            None => break file,
            Some(sb) => sb?,
        };
        depth += 1;
        if depth > MAX_INTERP_DEPTH {
            return Err(Errno::ELOOP);
        }
        argv = args::script_argv(&sb, name.as_bytes(), &argv);
        // Linux opens the interpreter like any path (relative to the
        // working directory), following links.
        let interp = String::from_utf8(sb.interp).map_err(|_| Errno::ENOENT)?;
        (node, real, name) = open_exec(ctx, AT_FDCWD as usize, &interp, 0)?;
    };
    let plan = Image::parse(&exe.path, exe.dev, exe.ino, &exe.bytes, machine())
        .map_err(|_| Errno::ENOEXEC)?
        .plan;
    let interp = match plan.interp {
        None => None,
        Some(ip) => {
            let (node, real, _) = open_exec(ctx, AT_FDCWD as usize, &ip, 0)?;
            check_executable(&node)?;
            let file = read_file(&node, real)?;
            Image::parse(&file.path, file.dev, file.ino, &file.bytes, machine())
                .map_err(|_| Errno::ENOEXEC)?;
            Some(file)
        }
    };
    Ok(Prepared {
        exe,
        interp,
        argv,
        envp: strings.envp,
        execfn,
        comm,
    })
}

/// The CPU's `AT_HWCAP`/`AT_HWCAP2` where the arch reports them (set by
/// the target at start; None: the architecture baseline).
static HWCAP: spin::Once<Option<(u64, u64)>> = spin::Once::new();

/// Records what [`commit`] puts in `AT_HWCAP`/`AT_HWCAP2` (the target
/// does this once, with what boot used).
pub fn set_hwcap(hw: Option<(u64, u64)>) {
    HWCAP.call_once(|| hw);
}

/// Phase two, past the point of no return: replaces the program. Returns
/// 0 to a syscall whose registers the target then replaces
/// (`Services::exec_restart`); on a load failure the app is ended with
/// SIGSEGV (fakes, whose `exit_group` returns, get `EFAULT`).
pub fn commit(ctx: &mut Cx, p: Prepared) -> KResult<usize> {
    let t = task(ctx)?;
    let me = thread(ctx)?;
    let services = t.services();
    let sigmask = me.sigmask();

    services.end_other_threads();
    let exe = Image::parse(&p.exe.path, p.exe.dev, p.exe.ino, &p.exe.bytes, machine())
        .map_err(|_| Errno::ENOEXEC)?;
    let interp = match &p.interp {
        Some(f) => Some(
            Image::parse(&f.path, f.dev, f.ino, &f.bytes, machine()).map_err(|_| Errno::ENOEXEC)?,
        ),
        None => None,
    };
    let argv: Vec<&[u8]> = p.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = p.envp.iter().map(|a| a.as_slice()).collect();
    let program = Program {
        exe,
        interp,
        argv: &argv,
        envp: &envp,
        execfn: &p.execfn,
        machine: machine(),
        hwcap: HWCAP.get().copied().flatten(),
    };
    let mut rnd = || {
        let mut b = [0u8; 8];
        if !services.random(&mut b) {
            // Unseeded (never after boot): still different per exec.
            return services.monotonic_ns().rotate_left(23) ^ 0x9e37_79b9_7f4a_7c15;
        }
        u64::from_le_bytes(b)
    };
    let started = match load_into(&program, t.memory(), &mut rnd) {
        Ok(s) => s,
        Err(e) => return Err(fail(services, &p.exe.path, &e)),
    };
    ctx.files().close_on_exec();
    t.set_exe(&p.exe.path, &p.comm);
    t.set_cmdline(&argv);
    t.reset_handlers();
    me.set_robust_list(0, 0);
    me.set_clear_child_tid(0);
    log::info!(
        "exec: path={} entry={:#x} sp={:#x} bias={:#x} argc={}",
        p.exe.path,
        started.pc,
        started.sp,
        started.layout.bias,
        argv.len()
    );
    services.exec_restart(started.pc, started.sp, sigmask);
    Ok(0)
}

/// The new image could not be built after the old one was gone: the app
/// ends as Linux ends it (SIGSEGV).
fn fail(services: &dyn Services, path: &str, e: &ExecError) -> Errno {
    log::error!("exec: cannot load path={path} error=\"{e}\" after the point of no return");
    log::error!("{}", signal::killed_line(signal::SIGSEGV));
    services.exit_group(128 + signal::SIGSEGV as u8);
    Errno::EFAULT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::cpio::{self, S_IFDIR, S_IFLNK, S_IFREG};
    use crate::fs::ramfs::RamFs;

    fn image() -> Vfs {
        let root = RamFs::new_root();
        let archive = cpio::build(&[
            ("usr/bin", S_IFDIR | 0o755, b""),
            ("usr/bin/busybox", S_IFREG | 0o755, b"\x7fELF"),
            ("bin", S_IFLNK | 0o777, b"usr/bin"),
            ("usr/bin/sh", S_IFLNK | 0o777, b"busybox"),
            ("usr/bin/abs", S_IFLNK | 0o777, b"/usr/bin/sh"),
            ("loop", S_IFLNK | 0o777, b"loop"),
        ]);
        RamFs::populate(&root, &archive).unwrap();
        Vfs::new(root)
    }

    #[test]
    fn canonical_resolves_every_link_like_realpath() {
        let v = image();
        assert_eq!(canonical(&v, "/bin/sh").unwrap(), "/usr/bin/busybox");
        assert_eq!(canonical(&v, "/bin/abs").unwrap(), "/usr/bin/busybox");
        assert_eq!(
            canonical(&v, "/usr/./bin/../bin//busybox").unwrap(),
            "/usr/bin/busybox"
        );
        // `..` after a link goes up from where the link points.
        assert_eq!(canonical(&v, "/bin/../bin/sh").unwrap(), "/usr/bin/busybox");
        assert_eq!(canonical(&v, "/loop"), Err(Errno::ELOOP));
        assert_eq!(canonical(&v, "/usr/bin/missing"), Err(Errno::ENOENT));
        assert_eq!(canonical(&v, "/"), Ok(String::from("/")));
    }

    #[test]
    fn only_regular_files_with_an_execute_bit_run() {
        let v = image();
        let root = v.root();
        let exe = v.resolve(&root, "/bin/sh", true).unwrap();
        assert_eq!(check_executable(&exe), Ok(()));
        let dir = v.resolve(&root, "/usr/bin", true).unwrap();
        assert_eq!(check_executable(&dir), Err(Errno::EACCES));
        exe.set_perm(0o644).unwrap();
        assert_eq!(check_executable(&exe), Err(Errno::EACCES));
        exe.set_perm(0o001).unwrap();
        assert_eq!(check_executable(&exe), Ok(()));
    }
}
