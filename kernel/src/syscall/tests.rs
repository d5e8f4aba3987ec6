//! The table on the host with a fake process: dispatch by each arch's
//! numbers, strace lines, the once-per-name ENOSYS report.

use super::*;
use crate::syscall_table;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

struct Fake {
    mem: Vec<u8>,
    base: usize,
    trace: bool,
    lines: RefCell<Vec<String>>,
    reports: RefCell<Vec<String>>,
}

impl Process for Fake {
    fn read_user(&self, addr: usize, buf: &mut [u8]) -> Option<usize> {
        let off = addr.checked_sub(self.base)?;
        let avail = self.mem.len().checked_sub(off)?;
        let n = buf.len().min(avail);
        buf[..n].copy_from_slice(&self.mem[off..off + n]);
        Some(n)
    }
    fn trace_line(&self, line: &str) {
        self.lines.borrow_mut().push(line.into());
    }
    fn tracing(&self) -> bool {
        self.trace
    }
    fn report_unimplemented(&self, line: &str) {
        self.reports.borrow_mut().push(line.into());
    }
}

fn sys_getpid(_: &mut Fake, _: &Args) -> Result<usize, Errno> {
    Ok(1)
}

fn sys_read(p: &mut Fake, a: &Args) -> Result<usize, Errno> {
    if a[0] != 3 {
        return Err(Errno::EBADF);
    }
    let off = a[1] - p.base;
    p.mem[off..off + 6].copy_from_slice(b"skiff\n");
    Ok(6)
}

fn sys_openat(_: &mut Fake, _: &Args) -> Result<usize, Errno> {
    Err(Errno::ENOENT)
}

syscall_table! {
    static TABLE: [Fake] = {
        read(Int, BufIn(2), Size) => sys_read;
        openat(DirFd, Str, OpenFlags, Mode) => sys_openat;
        getpid() => sys_getpid;
    }
}

fn fake(trace: bool) -> Fake {
    let mut mem = alloc::vec![0u8; 64];
    mem[..14].copy_from_slice(b"/etc/hostname\0");
    Fake {
        mem,
        base: 0x1000,
        trace,
        lines: RefCell::new(Vec::new()),
        reports: RefCell::new(Vec::new()),
    }
}

#[test]
fn dispatches_by_each_arch_numbering() {
    let x86 = Table::new(Arch::X86_64, TABLE);
    let arm = Table::new(Arch::Aarch64, TABLE);
    let mut p = fake(false);
    assert_eq!(
        x86.dispatch(&mut p, 39, &[0; 6]),
        1,
        "getpid is 39 on x86_64"
    );
    assert_eq!(
        arm.dispatch(&mut p, 172, &[0; 6]),
        1,
        "getpid is 172 on aarch64"
    );
    assert_eq!(
        x86.dispatch(&mut p, 0, &[4, 0x1020, 16, 0, 0, 0]),
        -9,
        "EBADF"
    );
    assert_eq!(arm.dispatch(&mut p, 63, &[3, 0x1020, 16, 0, 0, 0]), 6);
    assert!(x86.is_implemented(257) && arm.is_implemented(56));
    assert_eq!(x86.name_of(257), Some("openat"));
    assert_eq!(arm.name_of(2), Some("io_submit"));
}

#[test]
fn traces_like_strace() {
    let t = Table::new(Arch::X86_64, TABLE);
    let mut p = fake(true);
    t.dispatch(
        &mut p,
        257,
        &[-100isize as usize, 0x1000, 0o2000000, 0, 0, 0],
    );
    t.dispatch(&mut p, 0, &[3, 0x1020, 4096, 0, 0, 0]);
    let lines = p.lines.borrow();
    assert_eq!(
        lines[0],
        r#"openat(AT_FDCWD, "/etc/hostname", O_RDONLY|O_CLOEXEC) = -1 ENOENT"#
    );
    assert_eq!(lines[1], r#"read(3, "skiff\n", 4096) = 6"#);
}

#[test]
fn unimplemented_calls_are_enosys_and_reported_once_by_name() {
    let t = Table::new(Arch::X86_64, TABLE);
    let mut p = fake(false);
    assert_eq!(t.dispatch(&mut p, 57, &[0; 6]), -38, "fork");
    assert_eq!(t.dispatch(&mut p, 57, &[0; 6]), -38);
    assert_eq!(t.dispatch(&mut p, 9999, &[0; 6]), -38);
    let r = p.reports.borrow();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        r[0],
        "syscall: unimplemented name=fork nr=57 returning=-ENOSYS"
    );
    assert_eq!(r[1], "syscall: unknown nr=9999 returning=-ENOSYS");
}

#[test]
fn table_names_are_linux_names() {
    for e in TABLE {
        assert!(
            numbers::LINUX_SYSCALLS.iter().any(|(n, _, _)| *n == e.name),
            "{} is not a Linux syscall",
            e.name
        );
    }
}

#[test]
fn unreadable_pointers_show_as_addresses() {
    let t = Table::new(Arch::X86_64, TABLE);
    let mut p = fake(true);
    t.dispatch(&mut p, 257, &[5, 0xdead_0000, 0o101, 0o644, 0, 0]);
    assert_eq!(
        p.lines.borrow()[0],
        "openat(5, 0xdead0000, O_WRONLY|O_CREAT, 0644) = -1 ENOENT"
    );
}
