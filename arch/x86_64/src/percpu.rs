//! Per-CPU data: the GS base points at this CPU's [`CpuLocal`] block while
//! the CPU runs kernel code. The block's first word is the kernel's own
//! per-CPU value ([`set_base`]/[`base`], one `mov %gs:0`); the rest is what
//! the user-mode entry paths need before they have a stack: a scratch slot
//! for the user RSP at `syscall`, the current thread's kernel stack top
//! (also in TSS.rsp0) and the FS base shadow.
//!
//! In user mode the GS base is the app's and the block's address waits in
//! IA32_KERNEL_GS_BASE; every entry from and exit to ring 3 does `swapgs`
//! (`user.rs`, `trap.rs`).

use core::cell::UnsafeCell;

/// IA32_FS_BASE (the user TLS register when CR4.FSGSBASE is off).
pub(crate) const IA32_FS_BASE: u32 = 0xc000_0100;
const IA32_GS_BASE: u32 = 0xc000_0101;
/// The GS base `swapgs` exchanges with the live one.
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// Offsets into [`CpuLocal`], for the assembly (`%gs:OFFSET`).
pub(crate) const OFF_KERNEL_BASE: usize = 0;
pub(crate) const OFF_USER_RSP: usize = 8;
pub(crate) const OFF_KSTACK_TOP: usize = 16;
pub(crate) const OFF_TSS_RSP0: usize = 24;
pub(crate) const OFF_FS_BASE: usize = 32;
pub(crate) const OFF_SCRATCH: usize = 40;

/// One CPU's block. Only reached through the GS base (assembly and the
/// accessors here), never by reference, so it is plain `u64`s.
#[repr(C, align(64))]
#[allow(dead_code)] // `user_rsp` and `scratch` are only used by the assembly.
pub(crate) struct CpuLocal {
    /// The kernel's value ([`set_base`]).
    kernel_base: u64,
    /// User RSP between `syscall` and the switch to the kernel stack.
    user_rsp: u64,
    /// Top of the current thread's kernel stack (0: none; `enter` refuses).
    kstack_top: u64,
    /// Address of this CPU's TSS.rsp0 (updated with `kstack_top`).
    tss_rsp0: u64,
    /// FS base of the current thread when CR4.FSGSBASE is off (written
    /// only through `user::set_tls` and `context::switch`).
    fs_base: u64,
    /// Entry-stub scratch register slot.
    scratch: u64,
}

struct Blocks(UnsafeCell<[CpuLocal; crate::gdt::MAX_CPUS]>);
// SAFETY: each block is written by its own CPU only (through the GS base),
// after `install` set it up before any other use.
unsafe impl Sync for Blocks {}

static BLOCKS: Blocks = Blocks(UnsafeCell::new(
    [const {
        CpuLocal {
            kernel_base: 0,
            user_rsp: 0,
            kstack_top: 0,
            tss_rsp0: 0,
            fs_base: 0,
            scratch: 0,
        }
    }; crate::gdt::MAX_CPUS],
));

/// Points this CPU's GS base at block `slot` (called once per CPU from
/// `gdt::load`, before anything reads per-CPU data). `tss_rsp0` is the
/// address of this CPU's TSS.rsp0 field.
pub(crate) fn install(slot: usize, tss_rsp0: u64) {
    // SAFETY: `slot` < MAX_CPUS is this CPU's own slot, not yet (or no
    // longer) used through the GS base; plain field writes.
    let block = unsafe { &mut (*BLOCKS.0.get())[slot] };
    block.tss_rsp0 = tss_rsp0;
    block.kstack_top = 0;
    block.fs_base = 0;
    let addr = block as *mut CpuLocal as u64;
    // SAFETY: the block lives forever; FS base 0 is this CPU's initial
    // user TLS; KERNEL_GS_BASE is only read by `swapgs` on a user entry.
    unsafe {
        use x86_64::registers::model_specific::Msr;
        Msr::new(IA32_GS_BASE).write(addr);
        Msr::new(IA32_KERNEL_GS_BASE).write(0);
        Msr::new(IA32_FS_BASE).write(0);
    }
}

/// Sets this CPU's base pointer.
pub fn set_base(ptr: usize) {
    // SAFETY: GS points at this CPU's block (`install`); the slot is a u64.
    unsafe {
        core::arch::asm!("mov gs:[{off}], {v}", v = in(reg) ptr, off = const OFF_KERNEL_BASE,
            options(nostack, preserves_flags))
    };
}

/// This CPU's base pointer (0 until `set_base`).
pub fn base() -> usize {
    let v: usize;
    // SAFETY: as in `set_base`; a read of this CPU's block.
    unsafe {
        core::arch::asm!("mov {v}, gs:[{off}]", v = out(reg) v, off = const OFF_KERNEL_BASE,
            options(nostack, preserves_flags, readonly))
    };
    v
}

/// The current thread's kernel stack top (0 if it has none).
pub(crate) fn kstack_top() -> usize {
    let v: usize;
    // SAFETY: a read of this CPU's block through GS.
    unsafe {
        core::arch::asm!("mov {v}, gs:[{off}]", v = out(reg) v, off = const OFF_KSTACK_TOP,
            options(nostack, preserves_flags, readonly))
    };
    v
}

/// The FS base shadow (meaningful when CR4.FSGSBASE is off).
pub(crate) fn fs_shadow() -> usize {
    let v: usize;
    // SAFETY: a read of this CPU's block through GS.
    unsafe {
        core::arch::asm!("mov {v}, gs:[{off}]", v = out(reg) v, off = const OFF_FS_BASE,
            options(nostack, preserves_flags, readonly))
    };
    v
}

/// Records the FS base in the shadow; the caller writes the MSR.
pub(crate) fn set_fs_shadow(v: usize) {
    // SAFETY: a write of this CPU's block through GS.
    unsafe {
        core::arch::asm!("mov gs:[{off}], {v}", v = in(reg) v, off = const OFF_FS_BASE,
            options(nostack, preserves_flags))
    };
}
