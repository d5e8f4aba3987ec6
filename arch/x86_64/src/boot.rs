//! Boot entry: the PVH note and 32-bit entry, the 64-bit Linux boot protocol
//! entry, the switch to long mode on static boot page tables, the jump to the
//! high half, and the Rust start that brings up the CPU before calling the
//! kernel's entry.
//!
//! The boot page tables (below, in `.data`) identity-map the first 1 GiB with
//! 2 MiB pages and map the same 1 GiB again at `KERNEL_VMA`. They only live
//! until `mm::init` switches to the kernel's own tables.

use crate::{cpu, gdt, mm, serial, trap};
use core::arch::global_asm;
use skiff_arch_api::{BootArgs, RawBoot};

/// Where the image is linked (`link.ld`): VA = `KERNEL_VMA` + PA.
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

// Stack sizes (in the assembly below): the boot CPU's stack, which the
// kernel's first thread runs on, is 256 KiB (the contract's minimum is 64 KiB;
// unoptimised builds of the boot path need ~90 KiB); the #DF and NMI IST
// stacks are 16 KiB each.

/// How the entry code says which protocol it came through.
const RAW_PVH: u64 = 0;
const RAW_LINUX: u64 = 1;

global_asm!(
    r#"
    .set KVMA, 0xffffffff80000000

    /* ---- Xen PVH note: XEN_ELFNOTE_PHYS32_ENTRY (18), 8-byte payload ----
     * QEMU reads the payload as a 64-bit value (the note segment is 4-byte
     * aligned, the name "Xen\0" is 4 bytes), Xen and Firecracker as 32-bit. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz */
    .long 8                 /* descsz */
    .long 18                /* type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad _start_pvh - KVMA

    .section .text.boot, "ax"

    /* ---- PVH entry: 32-bit protected mode, paging off, %ebx = start_info ---- */
    .code32
    .global _start_pvh
_start_pvh:
    cli
    cld
    mov %ebx, %esi
    rdtsc
    mov %eax, (boot_entry_tsc - KVMA)
    mov %edx, (boot_entry_tsc - KVMA + 4)
    mov %esi, (boot_raw_ptr - KVMA)
    movl $0, (boot_raw_ptr - KVMA + 4)
    movl $0, (boot_raw_kind - KVMA)

    /* Zero .bss (the loader should have, but nothing says it must). */
    mov $(__bss_start - KVMA), %edi
    mov $(__bss_end - KVMA), %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    /* NX is needed by the kernel's page tables; enable it when present. */
    mov $0x80000000, %eax
    cpuid
    xor %edi, %edi
    cmp $0x80000001, %eax
    jb 1f
    mov $0x80000001, %eax
    cpuid
    bt $20, %edx
    jnc 1f
    mov $(1 << 11), %edi
1:
    lgdt (boot_gdtr32 - KVMA)

    mov %cr4, %eax
    or $(1 << 5), %eax              /* PAE */
    mov %eax, %cr4

    mov $(boot_pml4 - KVMA), %eax
    mov %eax, %cr3

    mov $0xc0000080, %ecx           /* IA32_EFER */
    rdmsr
    or $(1 << 8), %eax              /* LME */
    or %edi, %eax                   /* NXE when supported */
    wrmsr

    mov %cr0, %eax
    or $0x80010001, %eax            /* PG | WP | PE */
    mov %eax, %cr0

    ljmp $0x08, $(start64_low - KVMA)

    /* ---- Linux 64-bit boot protocol entry: long mode, identity-mapped,
     * %rsi = struct boot_params. Runs at its physical address. ---- */
    .code64
    .global _start_linux64
_start_linux64:
    cli
    cld
    mov %rsi, %r8
    rdtsc
    shl $32, %rdx
    or %rax, %rdx
    mov %rdx, boot_entry_tsc(%rip)
    mov %r8, boot_raw_ptr(%rip)
    movl $1, boot_raw_kind(%rip)

    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb

    /* The 64-bit protocol entry runs with NX usable only if the CPU has it. */
    mov $0x80000001, %eax
    cpuid
    xor %edi, %edi
    bt $20, %edx
    jnc 2f
    mov $(1 << 11), %edi
2:
    mov $0xc0000080, %ecx
    rdmsr
    or %edi, %eax
    wrmsr

    /* The protocol promises no stack; use ours (at its physical address,
     * identity-mapped) for the far return below. */
    lea boot_stack_top(%rip), %rsp

    lea boot_gdtr64(%rip), %rax
    lea boot_gdt(%rip), %rcx
    mov %rcx, 2(%rax)
    lgdt (%rax)
    lea boot_pml4(%rip), %rax
    mov %rax, %cr3
    lea start64_low(%rip), %rax
    push $0x08
    push %rax
    lretq

    /* ---- Common 64-bit path, still at the physical address ---- */
start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $start64_high, %rax
    jmp *%rax

start64_high:
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov boot_raw_kind(%rip), %edi
    mov boot_raw_ptr(%rip), %rsi
    mov boot_entry_tsc(%rip), %rdx
    call skiff_x86_start
3:
    cli
    hlt
    jmp 3b

    /* ---- Boot data (initialised, so it is valid before .bss is zeroed) ---- */
    .section .data.boot, "aw"
    .balign 8
boot_entry_tsc: .quad 0
boot_raw_ptr:   .quad 0
boot_raw_kind:  .quad 0

    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
boot_gdt_end:
boot_gdtr32:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt - KVMA
    .balign 8
boot_gdtr64:
    .word boot_gdt_end - boot_gdt - 1
    .quad 0

    .section .data.boot_tables, "aw"
    .balign 4096
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt_low - KVMA + 3
    .fill 510, 8, 0
    .quad boot_pdpt_high - KVMA + 3
boot_pdpt_low:
    .quad boot_pd - KVMA + 3
    .fill 511, 8, 0
boot_pdpt_high:
    .fill 510, 8, 0
    .quad boot_pd - KVMA + 3
    .quad 0
boot_pd:
    .set boot_pd_i, 0
    .rept 512
    .quad (boot_pd_i << 21) | 0x83
    .set boot_pd_i, boot_pd_i + 1
    .endr

    /* ---- Stacks, each with an unmapped guard page below it ---- */
    .section .bss.skiff_stacks, "aw", @nobits
    .balign 4096
    .global __boot_stack_guard
__boot_stack_guard:
    .skip 4096
    .global __boot_stack_bottom
__boot_stack_bottom:
    .skip 262144
    .global boot_stack_top
boot_stack_top:
    .global __df_stack_guard
__df_stack_guard:
    .skip 4096
    .global __df_stack_bottom
__df_stack_bottom:
    .skip 16384
    .global __df_stack_top
__df_stack_top:
    .global __nmi_stack_guard
__nmi_stack_guard:
    .skip 4096
    .global __nmi_stack_bottom
__nmi_stack_bottom:
    .skip 16384
    .global __nmi_stack_top
__nmi_stack_top:
    "#,
    options(att_syntax)
);

/// The address of a linker-script or assembly symbol.
macro_rules! sym_addr {
    ($name:ident) => {{
        extern "C" {
            static $name: u8;
        }
        // Taking the address of an extern static is safe; it is never read.
        core::ptr::addr_of!($name) as usize
    }};
}
pub(crate) use sym_addr;

extern "Rust" {
    /// The kernel's entry function, defined by `entry!` in the kernel binary.
    fn __skiff_kernel_entry(args: BootArgs) -> !;
}

/// Called by the assembly entry on the boot stack, in the high half, with
/// interrupts off and the boot page tables active.
#[no_mangle]
extern "C" fn skiff_x86_start(kind: u64, raw: u64, entry_tsc: u64) -> ! {
    serial::init_com1();
    cpu::detect_features();
    gdt::init();
    trap::init();
    mm::init();
    crate::fpu::init_this_cpu();
    crate::irq::disable_legacy_pic();

    let raw = match kind {
        RAW_PVH => RawBoot::Pvh { start_info: raw },
        RAW_LINUX => RawBoot::LinuxBootParams { boot_params: raw },
        _ => crate::early_panic("boot: unknown entry kind"),
    };
    let kernel_phys = mm::image_virt_to_phys(sym_addr!(__kernel_start))
        ..mm::image_virt_to_phys(sym_addr!(__kernel_end));
    let args = BootArgs {
        raw,
        kernel_phys,
        entry_level: 0,
        entry_counter: entry_tsc,
    };
    // SAFETY: `entry!` in the kernel binary defines this symbol with exactly
    // this signature; it is called once, here.
    unsafe { __skiff_kernel_entry(args) }
}

/// Names the kernel's Rust entry point: `entry!(path::to::kernel_main)`, with
/// `fn kernel_main(args: BootArgs) -> !`. Use once, in the kernel binary.
#[macro_export]
macro_rules! entry {
    ($path:path) => {
        #[no_mangle]
        #[allow(unsafe_code)]
        fn __skiff_kernel_entry(args: $crate::api::BootArgs) -> ! {
            let f: fn($crate::api::BootArgs) -> ! = $path;
            f(args)
        }
    };
}
