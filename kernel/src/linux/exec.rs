//! `execve` of an ELF program into a fresh address space: the layout
//! (randomised: load bias of ET_DYN programs, the interpreter, the mmap
//! base, the stack top, the heap start), the segments mapped with their
//! permissions (W^X), the interpreter (`PT_INTERP`) mapped beside it, the
//! main stack with a guard gap below it, and the System V initial stack
//! (argv, envp, auxv) written at its top.
//!
//! Arch-neutral and host-tested: the target hands in the page tables
//! ([`super::memory::Pages`]), the file bytes and the random numbers.
//! The system calls themselves are in [`call`], the argument copying and
//! `#!` parsing in [`args`].

use super::memory::{Memory, Pages};
use super::process::STACK_SIZE;
use crate::errno::Errno;
use crate::loader::elf::{ElfError, ElfKind, LoadPlan, Machine};
use crate::loader::stack::{self, StackError, StackSpec};
use crate::mm::vma::{AddressSpace, Backing, Placement, Prot, Vma, PAGE};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use core::fmt;

pub mod args;
pub mod call;

pub use call::set_hwcap;

crate::syscall_table! {
    pub static ENTRIES: [dyn super::Ctx] = {
        execve(Str, Hex, Hex) => call::sys_execve;
        execveat(DirFd, Str, Hex, Hex, Hex) => call::sys_execveat;
    }
}

/// Pages of randomness for the mmap base and ET_DYN bias (Linux's
/// default `mmap_rnd_bits` on both arches: 28).
const RND_BITS: u32 = 28;
/// Pages of randomness for the stack top (Linux: 22 bits on x86_64).
const STACK_RND_BITS: u32 = 22;
/// Heap start is randomised within 32 MiB above the image, as on Linux.
const BRK_RND_PAGES: u64 = (32 << 20) / PAGE;
/// Unmapped gap between the stack's lowest page and anything `mmap`
/// places below it: the guard (Linux's `stack_guard_gap` is 256 pages).
pub const STACK_GUARD_GAP: u64 = 256 * PAGE;

/// Why a program could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The program (or its interpreter) is not an ELF we run.
    Elf { path: String, error: ElfError },
    /// argv/envp too large or with NUL bytes.
    Stack(StackError),
    /// Mapping failed (out of memory, or an address the layout refused).
    Map(Errno),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Elf { path, error } => write!(f, "{path}: {error}"),
            ExecError::Stack(StackError::TooBig) => write!(f, "argument list too long"),
            ExecError::Stack(StackError::EmbeddedNul) => {
                write!(f, "argument or environment string holds a NUL byte")
            }
            ExecError::Map(e) => write!(f, "cannot map the program: {e}"),
        }
    }
}

impl From<Errno> for ExecError {
    fn from(e: Errno) -> Self {
        ExecError::Map(e)
    }
}

/// One ELF file to map: its path (for `/proc/self/maps`), identity and
/// bytes, already planned.
pub struct Image<'a> {
    pub path: &'a str,
    pub dev: u64,
    pub ino: u64,
    pub bytes: &'a [u8],
    pub plan: LoadPlan,
}

impl<'a> Image<'a> {
    pub fn parse(
        path: &'a str,
        dev: u64,
        ino: u64,
        bytes: &'a [u8],
        machine: Machine,
    ) -> Result<Self, ExecError> {
        let plan = LoadPlan::parse(bytes, machine).map_err(|error| ExecError::Elf {
            path: String::from(path),
            error,
        })?;
        Ok(Image {
            path,
            dev,
            ino,
            bytes,
            plan,
        })
    }
}

/// Where things go in the new address space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Added to the program's link addresses (0 for ET_EXEC).
    pub bias: u64,
    /// Exclusive top of the main stack (page aligned).
    pub stack_top: u64,
    /// `mmap` places mappings top-down below this.
    pub mmap_base: u64,
    pub brk_start: u64,
}

/// Picks the layout from `rnd` (a source of random u64s).
pub fn layout(machine: Machine, plan: &LoadPlan, rnd: &mut dyn FnMut() -> u64) -> Layout {
    let limit = machine.user_limit();
    let pages = |r: u64, bits: u32| (r & ((1 << bits) - 1)) * PAGE;
    let stack_top = limit - pages(rnd(), STACK_RND_BITS);
    let stack_bottom = stack_top - STACK_SIZE;
    let mmap_base = stack_bottom - STACK_GUARD_GAP - pages(rnd(), RND_BITS);
    let bias = match plan.kind {
        ElfKind::Exec => 0,
        ElfKind::Dyn => {
            // Linux's ELF_ET_DYN_BASE: two thirds up the user space.
            let base = (limit / 3 * 2 + pages(rnd(), RND_BITS)).next_multiple_of(plan.align);
            base - plan.span.start
        }
    };
    let image_end = bias + plan.span.end;
    let brk_start = image_end + (rnd() % BRK_RND_PAGES) * PAGE;
    Layout {
        bias,
        stack_top,
        mmap_base,
        brk_start,
    }
}

fn prot_of(p: crate::loader::elf::Perms) -> Prot {
    Prot {
        read: p.read,
        write: p.write,
        exec: p.execute,
    }
}

/// Maps every PT_LOAD of `img` at `bias`.
fn map_image(mem: &Memory, img: &Image, bias: u64) -> Result<(), ExecError> {
    for seg in &img.plan.segments {
        let prot = prot_of(seg.perms);
        let start = (bias + seg.vaddr) & !(PAGE - 1);
        let file_end = bias + seg.vaddr + seg.filesz;
        let mem_end = (bias + seg.vaddr + seg.memsz).next_multiple_of(PAGE);
        let file_pages_end = file_end.next_multiple_of(PAGE);
        if seg.filesz > 0 {
            // The whole file page, as Linux maps it: bytes before p_vaddr
            // in the first page come along; the tail after p_filesz is 0.
            let off = seg.offset - (bias + seg.vaddr - start);
            let data = &img.bytes[off as usize..(seg.offset + seg.filesz) as usize];
            let tmpl = Vma {
                range: 0..0,
                prot,
                shared: false,
                backing: Backing::File {
                    dev: img.dev,
                    ino: img.ino,
                    offset: off,
                },
                name: Some(String::from(img.path)),
            };
            mem.map_filled(
                Placement::Fixed(start),
                file_pages_end - start,
                tmpl,
                0,
                data,
            )?;
        }
        let bss_start = if seg.filesz > 0 {
            file_pages_end
        } else {
            start
        };
        if mem_end > bss_start {
            let tmpl = Vma {
                range: 0..0,
                prot,
                shared: false,
                backing: Backing::Anonymous,
                name: None,
            };
            mem.map_filled(
                Placement::Fixed(bss_start),
                mem_end - bss_start,
                tmpl,
                0,
                &[],
            )?;
        }
    }
    Ok(())
}

/// The baseline `AT_HWCAP`/`AT_HWCAP2` and `AT_PLATFORM`, when the arch
/// reports nothing better. x86_64: the CPUID.1:EDX bits every x86-64 CPU
/// has (glibc reads CPUID itself); aarch64: FP and ASIMD, mandatory in
/// ARMv8-A (glibc then picks generic string routines).
fn hwcap(machine: Machine) -> (u64, u64, &'static [u8]) {
    match machine {
        Machine::X86_64 => {
            let edx = 1 | 1 << 4 | 1 << 8 | 1 << 15 | 1 << 23 | 1 << 24 | 1 << 25 | 1 << 26;
            (edx, 0, b"x86_64")
        }
        Machine::Aarch64 => (0b11, 0, b"aarch64"),
    }
}

/// Where the new program starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pc: u64,
    pub sp: u64,
    pub layout: Layout,
    /// Where the interpreter went (AT_BASE), if there is one.
    pub interp_base: Option<u64>,
}

/// What to run, and with what.
pub struct Program<'a> {
    pub exe: Image<'a>,
    pub interp: Option<Image<'a>>,
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    /// The executable's path as given (AT_EXECFN).
    pub execfn: &'a str,
    pub machine: Machine,
    /// `AT_HWCAP`/`AT_HWCAP2` from the CPU, if the arch reports them.
    pub hwcap: Option<(u64, u64)>,
}

/// Builds the address space of `prog` on `pages`: maps the program, the
/// interpreter and the stack, writes the initial stack. Returns the
/// memory and the entry state.
pub fn load(
    prog: &Program,
    pages: Box<dyn Pages>,
    rnd: &mut dyn FnMut() -> u64,
) -> Result<(Memory, Started), ExecError> {
    let limit = prog.machine.user_limit();
    let mem = Memory::new(AddressSpace::new(PAGE * 16..limit, limit, limit), pages);
    let started = load_into(prog, &mem, rnd)?;
    Ok((mem, started))
}

/// [`load`] into an existing memory, which is emptied first (`execve`:
/// the old program's mappings all go, then the new one is built exactly
/// as at boot, with a fresh random layout).
pub fn load_into(
    prog: &Program,
    mem: &Memory,
    rnd: &mut dyn FnMut() -> u64,
) -> Result<Started, ExecError> {
    let plan = &prog.exe.plan;
    let lay = layout(prog.machine, plan, rnd);
    mem.reset(AddressSpace::new(
        PAGE * 16..prog.machine.user_limit(),
        lay.mmap_base,
        lay.brk_start,
    ));
    map_image(mem, &prog.exe, lay.bias)?;

    let mut interp_base = None;
    let mut pc = lay.bias + plan.entry;
    if let Some(ip) = &prog.interp {
        // Reserve the interpreter's span (aligned) below the mmap base,
        // then map its segments there.
        let span = ip.plan.span.end - ip.plan.span.start;
        let align = ip.plan.align.max(PAGE);
        let hold = Vma {
            range: 0..0,
            prot: Prot::NONE,
            shared: false,
            backing: Backing::Anonymous,
            name: None,
        };
        let at = mem.map_filled(Placement::Hint(0), span + align, hold, 0, &[])?;
        mem.munmap(at, span + align)?;
        let base = at.next_multiple_of(align);
        let ibias = match ip.plan.kind {
            ElfKind::Dyn => base - ip.plan.span.start,
            ElfKind::Exec => 0,
        };
        map_image(mem, ip, ibias)?;
        interp_base = Some(ibias);
        pc = ibias + ip.plan.entry;
    }

    // The main stack: demand-paged, the guard gap below it left unmapped.
    let stack_bottom = lay.stack_top - STACK_SIZE;
    let mut random = [0u8; 16];
    for chunk in random.chunks_mut(8) {
        chunk.copy_from_slice(&rnd().to_le_bytes());
    }
    let (mut hw, mut hw2, platform) = hwcap(prog.machine);
    if let Some((a, b)) = prog.hwcap {
        (hw, hw2) = (a, b);
    }
    let phdr = plan.phdr.map_or(0, |p| p + lay.bias);
    // The vDSO and its clock page ([vvar], [vdso]), for AT_SYSINFO_EHDR.
    let vdso = super::vdso::install(mem, prog.machine, rnd)?;
    let mut auxv = vec![
        (stack::AT_PHDR, phdr),
        (stack::AT_PHENT, u64::from(plan.phent)),
        (stack::AT_PHNUM, u64::from(plan.phnum)),
        (stack::AT_PAGESZ, PAGE),
        (stack::AT_BASE, interp_base.unwrap_or(0)),
        (stack::AT_FLAGS, 0),
        (stack::AT_ENTRY, lay.bias + plan.entry),
        (stack::AT_UID, 0),
        (stack::AT_EUID, 0),
        (stack::AT_GID, 0),
        (stack::AT_EGID, 0),
        (stack::AT_SECURE, 0),
        (stack::AT_CLKTCK, 100),
        (stack::AT_HWCAP, hw),
        (stack::AT_HWCAP2, hw2),
    ];
    if let Some(base) = vdso {
        auxv.push((stack::AT_SYSINFO_EHDR, base));
    }
    let spec = StackSpec {
        argv: prog.argv,
        envp: prog.envp,
        auxv: &auxv,
        random,
        platform,
        execfn: prog.execfn.as_bytes(),
    };
    let init = stack::build(&spec, lay.stack_top).map_err(ExecError::Stack)?;
    let tmpl = Vma {
        range: 0..0,
        prot: Prot::RW,
        shared: false,
        backing: Backing::Anonymous,
        name: Some(String::from("[stack]")),
    };
    mem.map_filled(
        Placement::FixedNoReplace(stack_bottom),
        STACK_SIZE,
        tmpl,
        init.sp - stack_bottom,
        &init.bytes,
    )?;
    Ok(Started {
        pc,
        sp: init.sp,
        layout: lay,
        interp_base,
    })
}

#[cfg(test)]
mod tests;
