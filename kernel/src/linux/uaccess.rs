//! Kernel access to the app's memory, on the arch's fault-safe copies
//! (`arch::user::copy_*`). A copy that faults on a page the app has mapped
//! but not touched yet demand-pages it and retries; any other fault is
//! `EFAULT`, never a kernel crash.

use super::memory::Memory;
use super::PATH_MAX;
use crate::arch;
use crate::errno::{Errno, KResult};
use alloc::string::String;
use alloc::vec;
use skiff_arch_api::{Access, Fault};

/// Pages in a copy of `len` bytes at `addr`: the most faults it can
/// need fixed, after which a further fault means a real EFAULT.
fn max_faults(addr: usize, len: usize) -> usize {
    let first = addr / 4096;
    let last = addr.saturating_add(len.max(1) - 1) / 4096;
    last - first + 1
}

/// Fixes a copy's fault if it is demand paging, else EFAULT.
fn fix(mem: &Memory, f: &Fault, access: Access) -> KResult<()> {
    mem.fault(f.addr as u64, access, f.protection)
        .map_err(|_| Errno::EFAULT)
}

pub fn copy_in(mem: &Memory, addr: usize, buf: &mut [u8]) -> KResult<()> {
    if buf.is_empty() {
        return Ok(());
    }
    for _ in 0..=max_faults(addr, buf.len()) {
        match arch::user::copy_from_user(buf, addr) {
            Ok(()) => return Ok(()),
            Err(f) => fix(mem, &f, Access::Read)?,
        }
    }
    Err(Errno::EFAULT)
}

pub fn copy_out(mem: &Memory, addr: usize, data: &[u8]) -> KResult<()> {
    if data.is_empty() {
        return Ok(());
    }
    for _ in 0..=max_faults(addr, data.len()) {
        match arch::user::copy_to_user(addr, data) {
            Ok(()) => return Ok(()),
            Err(f) => fix(mem, &f, Access::Write)?,
        }
    }
    Err(Errno::EFAULT)
}

/// A NUL-terminated string of at most `PATH_MAX` bytes with the NUL;
/// EFAULT, ENAMETOOLONG, or EINVAL when not UTF-8 (Skiff's paths are).
pub fn read_cstr(mem: &Memory, addr: usize) -> KResult<String> {
    let mut buf = vec![0u8; PATH_MAX];
    for _ in 0..=max_faults(addr, PATH_MAX) {
        match arch::user::copy_cstr_from_user(&mut buf, addr) {
            Ok(Some(n)) => {
                buf.truncate(n);
                return String::from_utf8(buf).map_err(|_| Errno::EINVAL);
            }
            Ok(None) => return Err(Errno::ENAMETOOLONG),
            Err(f) => fix(mem, &f, Access::Read)?,
        }
    }
    Err(Errno::EFAULT)
}
