//! The arm64 `Image` entry: header, EL2 → EL1, boot page tables, the jump to
//! the high half, and the call into the kernel.
//!
//! Boot protocol (Linux `Documentation/arch/arm64/booting.rst`): the loader
//! (QEMU `-kernel`, Xen, Firecracker, a UEFI stub later) puts the flat image
//! at a 2 MiB aligned physical address (header flag bit 3: "anywhere in
//! RAM", `text_offset` 0), enters at its first byte at EL2 or EL1 with the
//! MMU off, and passes the device tree's physical address in `x0`.
//!
//! The assembly below runs at the physical load address, so it uses only
//! PC-relative addressing (`adr`/`adrp`) until it jumps to the high half. It
//!
//! 1. records CNTVCT_EL0 (boot timestamp), the DTB and CurrentEL;
//! 2. at EL2: EL1 is AArch64 (HCR_EL2.RW), counters/timers are EL1's
//!    (CNTHCTL_EL2, CNTVOFF_EL2 = 0), MIDR/MPIDR are passed through
//!    (VPIDR/VMPIDR), the GICv3 system registers are opened to EL1
//!    (ICC_SRE_EL2), SCTLR_EL1 gets a defined value, then `eret` to EL1h;
//! 3. zeroes `.bss` and builds *coarse* tables: TTBR0 identity-maps the
//!    1 GiB block(s) holding the image, TTBR1 maps the image at
//!    `0xffff_ffff_8000_0000` with 2 MiB blocks;
//! 4. turns the MMU on and jumps to `__high_entry`, which sets the boot stack
//!    and `VBAR_EL1` and calls `boot_main`.
//!
//! `boot_main` (Rust, high half) then builds the real tables in `mm` (W^X
//! 4 KiB pages for the image, the direct map, an empty TTBR0), switches to
//! them, and calls the kernel's entry (named with `entry!`).

use crate::{cpu, mm, sysreg};
use core::arch::global_asm;
use core::sync::atomic::{AtomicU8, Ordering};
use skiff_arch_api::{BootArgs, RawBoot};

/// Block descriptor attributes of the coarse boot mappings: valid block,
/// AttrIndx = Normal WB, inner shareable, access flag set, EL1 RWX.
const BOOT_BLOCK_ATTRS: u64 = 1 | (sysreg::MAIR_IDX_NORMAL << 2) | (3 << 8) | (1 << 10);

/// The five coarse boot tables: identity L0 and L1 (TTBR0), high L0, L1, L2
/// (TTBR1). Written only by the entry assembly with the MMU off; abandoned
/// once `mm` switches to the kernel's own tables.
#[repr(C, align(4096))]
struct BootTables([[u64; 512]; 5]);

#[unsafe(link_section = ".bss.pagetables")]
static mut BOOT_TABLES: BootTables = BootTables([[0; 512]; 5]);

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    // Linux arm64 Image header (64 bytes).
    b       1f                      // code0: branch past the header
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   __image_size            // image_size, .bss included
    .quad   0xa                     // flags: LE, 4 KiB pages, 2 MiB aligned base anywhere
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5 (no PE header)

1:  mrs     x20, cntvct_el0         // entry timestamp
    mov     x19, x0                 // DTB physical address
    mrs     x9, CurrentEL
    ubfx    x21, x9, #2, #2         // entry exception level
    cmp     x21, #2
    b.ne    2f
    bl      __el2_to_el1

    // ---- at EL1, MMU off ----
2:  ldr     x9, ={sctlr_off}
    msr     sctlr_el1, x9
    isb
    adrp    x22, __image_start      // physical load base (PC-relative)
    tst     x22, #0x1fffff          // the header promised a 2 MiB aligned base
    b.ne    .Lhang

    // Cache line size for the invalidations below.
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4
    mov     x10, #4
    lsl     x10, x10, x9

    // Drop stale lines over .bss, zero it, drop again (MMU off: the stores
    // went to memory; speculative fills must not hide them later).
    adrp    x0, __bss_start
    adrp    x1, __bss_end
4:  dc      ivac, x0
    add     x0, x0, x10
    cmp     x0, x1
    b.lo    4b
    dsb     sy
    adrp    x0, __bss_start
5:  stp     xzr, xzr, [x0], #16
    cmp     x0, x1
    b.lo    5b

    // Coarse tables.
    adrp    x0, {tables}            // identity L0
    add     x1, x0, #0x1000         // identity L1
    add     x2, x0, #0x2000         // high L0
    add     x3, x0, #0x3000         // high L1
    add     x4, x0, #0x4000         // high L2
    mov     x7, #{block_attrs}

    lsr     x5, x22, #39            // identity: L0[pa >> 39] -> L1
    orr     x6, x1, #3
    str     x6, [x0, x5, lsl #3]
    ubfx    x5, x22, #30, #9        // L1[GiB of pa] = block, and the next GiB
    and     x6, x22, #0xffffffffc0000000
    orr     x6, x6, x7
    str     x6, [x1, x5, lsl #3]
    cmp     x5, #511
    b.eq    6f
    add     x5, x5, #1
    mov     x11, #0x40000000
    add     x6, x6, x11
    str     x6, [x1, x5, lsl #3]

6:  orr     x6, x3, #3              // high: L0[511] -> L1, L1[510] -> L2
    str     x6, [x2, #(511 * 8)]
    orr     x6, x4, #3
    str     x6, [x3, #(510 * 8)]
    adrp    x8, __kernel_end        // image size in 2 MiB blocks
    sub     x8, x8, x22
    mov     x9, #0x1fffff
    add     x8, x8, x9
    lsr     x8, x8, #21
    mov     x5, #0
    orr     x6, x22, x7
7:  str     x6, [x4, x5, lsl #3]    // L2[i] = (base + i * 2 MiB) | attrs
    add     x6, x6, #0x200000
    add     x5, x5, #1
    cmp     x5, x8
    b.lo    7b

    adrp    x0, __bss_start         // the tables live in .bss: drop stale lines
    adrp    x1, __bss_end
8:  dc      ivac, x0
    add     x0, x0, x10
    cmp     x0, x1
    b.lo    8b
    dsb     sy

    // MMU on.
    ldr     x9, ={mair}
    msr     mair_el1, x9
    ldr     x9, ={tcr}
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #0xf          // PARange, capped at 48 bits (0b101)
    mov     x11, #5
    cmp     x10, x11
    csel    x10, x10, x11, ls
    bfi     x9, x10, #{ips_shift}, #3
    msr     tcr_el1, x9
    adrp    x0, {tables}
    msr     ttbr0_el1, x0
    add     x2, x0, #0x2000
    msr     ttbr1_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x9, ={sctlr_on}
    msr     sctlr_el1, x9
    isb
    ic      iallu
    dsb     nsh
    isb
    ldr     x9, =__high_entry
    br      x9

    // Called at EL2, MMU off: configures EL1 and returns to x30 at EL1h
    // (IRQs masked). Clobbers x9. Shared by the boot and secondary entries.
__el2_to_el1:
    ldr     x9, ={hcr}
    msr     hcr_el2, x9
    isb
    ldr     x9, ={cnthctl}
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    mrs     x9, mpidr_el1
    msr     vmpidr_el2, x9
    mov     x9, #0x33ff             // CPTR_EL2: RES1 bits, nothing trapped to EL2
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4         // GIC system register interface present?
    cbz     x9, 3f
    mrs     x9, ICC_SRE_EL2
    orr     x9, x9, #0x1            // SRE
    orr     x9, x9, #0x8            // Enable: EL1 may use ICC_SRE_EL1
    msr     ICC_SRE_EL2, x9
    isb
3:  ldr     x9, ={sctlr_off}
    msr     sctlr_el1, x9
    ldr     x9, ={spsr}
    msr     spsr_el2, x9
    msr     elr_el2, x30
    eret

    // Secondary CPUs: PSCI CPU_ON enters here at EL2 or EL1, MMU off, with
    // x0 = the physical address of the CPU's `smp::SecondaryBoot` block.
    // MMU on with the boot CPU's TCR/MAIR/SCTLR, the coarse identity map
    // in TTBR0 (to survive the switch) and the kernel's TTBR1, then on to
    // the high half.
    .global __secondary_entry
__secondary_entry:
    mov     x19, x0
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.ne    1f
    bl      __el2_to_el1
1:  ldr     x9, ={sctlr_off}
    msr     sctlr_el1, x9
    isb
    ldp     x1, x2, [x19, #0]       // identity TTBR0, kernel TTBR1
    ldp     x3, x4, [x19, #24]      // TCR, MAIR
    msr     mair_el1, x4
    msr     tcr_el1, x3
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x9, [x19, #40]          // SCTLR
    msr     sctlr_el1, x9
    isb
    ic      iallu
    dsb     nsh
    isb
    ldr     x9, =__secondary_high
    br      x9

.Lhang:
    wfe
    b       .Lhang
    .ltorg

    .section .text.boot, "ax"
__high_entry:
    ldr     x9, =__boot_stack_top
    mov     sp, x9
    ldr     x9, =__exception_vectors
    msr     vbar_el1, x9
    isb
    mov     x29, xzr                // end of the frame-pointer chain
    mov     x30, xzr
    mov     x0, x19                 // dtb
    mov     x1, x22                 // load base
    mov     x2, x21                 // entry EL
    mov     x3, x20                 // entry counter
    bl      {boot_main}
9:  wfe
    b       9b

    // Secondary CPUs in the high half; x19 = SecondaryBoot (physical,
    // still reachable through the identity map until TTBR0 changes).
__secondary_high:
    ldp     x20, x21, [x19, #48]    // stack top, percpu block
    ldp     x22, x23, [x19, #64]    // entry, arg
    ldr     x1, [x19, #16]          // the kernel's TTBR0 (empty user table)
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mov     sp, x20
    ldr     x9, =__exception_vectors
    msr     vbar_el1, x9
    msr     tpidr_el1, x21
    isb
    mov     x29, xzr                // end of the frame-pointer chain
    mov     x30, xzr
    mov     x0, x22
    mov     x1, x23
    bl      {secondary_main}
10: wfe
    b       10b
    .ltorg
"#,
    hcr = const sysreg::HCR_EL2_VALUE,
    cnthctl = const sysreg::CNTHCTL_EL2_VALUE,
    sctlr_off = const sysreg::SCTLR_MMU_OFF,
    sctlr_on = const sysreg::SCTLR_MMU_ON,
    spsr = const sysreg::SPSR_EL2_TO_EL1,
    mair = const sysreg::MAIR_VALUE,
    tcr = const sysreg::TCR_VALUE,
    ips_shift = const sysreg::TCR_IPS_SHIFT,
    block_attrs = const BOOT_BLOCK_ATTRS,
    tables = sym BOOT_TABLES,
    boot_main = sym boot_main,
    secondary_main = sym crate::smp::secondary_main,
);

/// The exception level the loader entered at (1 or 2), for `power`.
static ENTRY_EL: AtomicU8 = AtomicU8::new(0);

pub(crate) fn entry_level() -> u8 {
    ENTRY_EL.load(Ordering::Relaxed)
}

unsafe extern "C" {
    /// Physical entry of secondary CPUs (PSCI CPU_ON), above.
    pub(crate) fn __secondary_entry();
}

/// Physical address of the coarse boot tables' identity L0 (TTBR0). They
/// stay in `.bss` untouched after boot; secondaries use them to turn the
/// MMU on.
pub(crate) fn identity_root_phys() -> u64 {
    mm::image_phys(&raw const BOOT_TABLES as usize)
}

unsafe extern "Rust" {
    /// Defined by the kernel binary through `entry!`.
    fn __skiff_kernel_entry(args: BootArgs) -> !;
}

/// `mm::init` mapped the GiB the DTB starts in; a DTB crossing into the
/// next one gets the rest mapped here (size from its header, capped at the
/// 2 MiB Linux allows). Failures leave the DTB for the parser to refuse.
fn map_whole_dtb(dtb: u64) {
    const MAX_DTB: u64 = 2 << 20;
    let Some(header) = mm::phys_slice(dtb, 8) else {
        return;
    };
    if header[0..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return;
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as u64;
    let _ = mm::map_direct(dtb..dtb.saturating_add(size.min(MAX_DTB)));
}

/// Rust side of the boot, on the boot stack in the high half, MMU on with the
/// coarse tables, interrupts masked.
extern "C" fn boot_main(dtb: u64, load_base: u64, entry_el: u64, entry_counter: u64) -> ! {
    crate::percpu::init_boot_cpu();
    ENTRY_EL.store(entry_el as u8, Ordering::Relaxed);
    let image = mm::init(load_base, dtb);
    map_whole_dtb(dtb);
    cpu::init_this_cpu();
    let args = BootArgs {
        raw: RawBoot::DeviceTree { dtb },
        kernel_phys: image,
        entry_level: entry_el as u8,
        entry_counter,
    };
    // SAFETY: `__skiff_kernel_entry` is the function `entry!` defined in the
    // kernel binary with exactly this signature; everything it relies on
    // (stack, tables, vectors) is set up.
    unsafe { __skiff_kernel_entry(args) }
}
