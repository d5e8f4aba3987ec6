//! The vDSO: a small ELF shared object mapped into the application (found
//! through `AT_SYSINFO_EHDR`) whose `clock_gettime`, `gettimeofday`,
//! `time` and `clock_getres` tell the time in user mode from the clock
//! page ([`clock`], mapped read-only as `[vvar]` just below it), so the
//! commonest time calls never enter the kernel. glibc and musl find its
//! functions by name and version through its dynamic table, exactly as on
//! Linux: x86_64 `__vdso_clock_gettime` (and the other `__vdso_*` with
//! their unprefixed weak aliases) at `LINUX_2.6`, aarch64
//! `__kernel_clock_gettime`, `__kernel_gettimeofday`,
//! `__kernel_clock_getres` at `LINUX_2.6.39`.
//!
//! The image is written in assembler (`vdso/x86_64.s`, `vdso/aarch64.s`):
//! ELF header, program and section headers, hash, symbol, version and
//! dynamic tables and the code, as data in one section of the kernel's
//! read-only data, every address a label difference — position-independent
//! and relocation-free by construction (docs/decisions.md says why).
//! Clocks the page cannot serve, and every call while the page says
//! [`clock::MODE_SYSCALL`], fall back to the system call from inside the
//! vDSO, so results are always the syscall's.

pub mod clock;

use super::memory::Memory;
use crate::errno::KResult;
use crate::loader::elf::Machine;
use crate::mm::vma::{Backing, Placement, Prot, Vma, PAGE};
use alloc::string::String;

// The image: data only as far as the kernel is concerned (it is copied
// into the app's memory, never run at EL1/ring 0), assembled here so the
// kernel build needs no C toolchain.
#[allow(unsafe_code)]
mod assembled {
    #[cfg(target_arch = "x86_64")]
    core::arch::global_asm!(include_str!("vdso/x86_64.s"));
    #[cfg(target_arch = "aarch64")]
    core::arch::global_asm!(include_str!("vdso/aarch64.s"));
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
extern "C" {
    // Labels around the image in `vdso/<arch>.s` (hidden, this crate).
    static skiff_vdso_image_start: u8;
    static skiff_vdso_image_end: u8;
}

/// The machine the compiled-in image is for.
#[cfg(target_arch = "x86_64")]
pub const MACHINE: Machine = Machine::X86_64;
#[cfg(target_arch = "aarch64")]
pub const MACHINE: Machine = Machine::Aarch64;

/// The vDSO image (an ELF shared object) for [`MACHINE`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[allow(unsafe_code)]
pub fn image() -> &'static [u8] {
    // SAFETY: the two labels bracket one run of bytes the assembler laid
    // out in a read-only section of this crate (`vdso/<arch>.s`): the
    // start precedes the end, nothing writes there, and the bytes live as
    // long as the kernel.
    unsafe {
        let start = core::ptr::addr_of!(skiff_vdso_image_start);
        let end = core::ptr::addr_of!(skiff_vdso_image_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

/// Pages of random gap (below the vDSO, in the mmap area) drawn at each
/// install: 1 MiB of jitter on top of exec's randomised mmap base.
const JITTER_PAGES: u64 = 256;

/// The clock page as it is now (the kernel's, on the target).
#[cfg(target_os = "none")]
fn clock_bytes() -> [u8; clock::offset::END] {
    crate::time::clock_page().to_bytes()
}

/// Host builds have no kernel clock: a page that sends every call to the
/// system call.
#[cfg(not(target_os = "none"))]
fn clock_bytes() -> [u8; clock::offset::END] {
    clock::ClockPage::new().to_bytes()
}

/// Maps `[vvar]` (the clock page, read-only) and `[vdso]` (the image,
/// read+exec) next to each other into `mem` at a randomised address in the
/// mmap area, and returns the image's address for `AT_SYSINFO_EHDR`.
/// `Ok(None)` when this kernel has no vDSO for `machine` (host tests of the
/// other arch).
///
/// The `[vvar]` page holds the clock page as it is at exec. The kernel's
/// copy changes only when the wall clock is set, which happens once at
/// boot, before any app; a later `clock_settime` would need the mapping to
/// be the kernel's page itself (docs/decisions.md, the vDSO section).
pub fn install(
    mem: &Memory,
    machine: Machine,
    rnd: &mut dyn FnMut() -> u64,
) -> KResult<Option<u64>> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if machine == MACHINE {
        return install_image(mem, image(), &clock_bytes(), rnd).map(Some);
    }
    let _ = (mem, machine, rnd);
    Ok(None)
}

/// [`install`] of a given image and clock page: the vvar page at the
/// returned address minus one page.
pub fn install_image(
    mem: &Memory,
    image: &[u8],
    clock: &[u8],
    rnd: &mut dyn FnMut() -> u64,
) -> KResult<u64> {
    let text_len = (image.len() as u64).next_multiple_of(PAGE);
    let len = PAGE + text_len;
    let jitter = (rnd() % JITTER_PAGES) * PAGE;
    let area = |prot, name: Option<&str>| Vma {
        range: 0..0,
        prot,
        shared: false,
        backing: Backing::Anonymous,
        name: name.map(String::from),
    };
    // Find room below the mmap base (placement is top-down) for the pair
    // plus the jitter, then place the pair at the bottom of it: the
    // jitter stays a free gap above.
    let hold = mem.map_filled(
        Placement::Hint(0),
        len + jitter,
        area(Prot::NONE, None),
        0,
        &[],
    )?;
    mem.munmap(hold, len + jitter)?;
    let vvar = hold;
    let ro = Prot {
        read: true,
        write: false,
        exec: false,
    };
    let rx = Prot {
        read: true,
        write: false,
        exec: true,
    };
    mem.map_filled(
        Placement::FixedNoReplace(vvar),
        PAGE,
        area(ro, Some("[vvar]")),
        0,
        clock,
    )?;
    let text = vvar + PAGE;
    if let Err(e) = mem.map_filled(
        Placement::FixedNoReplace(text),
        text_len,
        area(rx, Some("[vdso]")),
        0,
        image,
    ) {
        let _ = mem.munmap(vvar, PAGE);
        return Err(e);
    }
    log::debug!("vdso: installed vvar={vvar:#x} vdso={text:#x} len={len:#x}");
    Ok(text)
}

#[cfg(test)]
mod tests;
