//! Secondary CPUs: INIT-SIPI-SIPI bring-up through a real-mode trampoline
//! copied to a low page, IPIs, and the CPU's APIC id.
//!
//! The trampoline page: the kernel reserves one page below 1 MiB from the
//! memory map before building its frame allocator and hands it over with
//! [`set_trampoline_page`] (x86 only). `start_cpu` copies the trampoline
//! there, patches its parameters and sends INIT, SIPI, SIPI to the APIC id.
//! The AP goes from real mode straight to long mode on the (still intact,
//! never modified) boot page tables, which identity-map the low 1 GiB and
//! map the image high; it then jumps to the image, loads the kernel's own
//! page tables and the new stack, and runs `ap_start` in Rust: CR4/CR0 as on
//! the boot CPU, its own GDT+TSS, the shared IDT, the FPU, the local APIC.
//! It then signals
//! the boot CPU and calls `entry(arg)` with interrupts off. Its local APIC
//! is already up then (`irq::init_this_cpu`; calling it again is harmless).
//!
//! One AP is started at a time (a lock), so the parameters in the page are
//! never overwritten while an AP still reads them.

use crate::{cpu, gdt, irq, mm};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

/// Why a CPU could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpError {
    /// `set_trampoline_page` was not called (no low page was reserved).
    NoTrampoline,
    /// More CPUs than the arch has per-CPU slots for (`gdt::MAX_CPUS`).
    TooManyCpus,
    /// The CPU never reported in after INIT-SIPI-SIPI.
    Timeout,
    /// The id is out of range for the APIC mode in use.
    BadId,
}

global_asm!(
    r#"
    .section .rodata.skiff_ap_trampoline, "a"
    .balign 16
    .global skiff_ap_trampoline
    .global skiff_ap_trampoline_end
    .global skiff_tr_gdt, skiff_tr_gdtr, skiff_tr_far, skiff_tr_long
    .global skiff_tr_cr4, skiff_tr_cr3, skiff_tr_efer
    .global skiff_tr_kcr3, skiff_tr_stack, skiff_tr_entry, skiff_tr_arg
    .code16
skiff_ap_trampoline:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (skiff_tr_gdtr - skiff_ap_trampoline)
    movl (skiff_tr_cr4 - skiff_ap_trampoline), %eax
    mov %eax, %cr4
    movl (skiff_tr_cr3 - skiff_ap_trampoline), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    orl (skiff_tr_efer - skiff_ap_trampoline), %eax
    wrmsr
    movl $0x80010001, %eax
    mov %eax, %cr0
    ljmpl *(skiff_tr_far - skiff_ap_trampoline)
    .code64
skiff_tr_long:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov skiff_tr_kcr3(%rip), %r15
    mov skiff_tr_stack(%rip), %r12
    mov skiff_tr_entry(%rip), %r13
    mov skiff_tr_arg(%rip), %r14
    movabs $skiff_x86_ap_high, %rax
    jmp *%rax
    .balign 8
skiff_tr_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
skiff_tr_gdtr:
    .word 23
    .long 0
skiff_tr_far:
    .long 0
    .word 0x08
    .balign 8
skiff_tr_cr4: .long 0
skiff_tr_cr3: .long 0
skiff_tr_efer: .long 0
    .balign 8
skiff_tr_kcr3: .quad 0
skiff_tr_stack: .quad 0
skiff_tr_entry: .quad 0
skiff_tr_arg: .quad 0
skiff_ap_trampoline_end:

    .section .text.skiff_ap, "ax"
    .global skiff_x86_ap_high
skiff_x86_ap_high:
    mov %r15, %cr3
    mov %r12, %rsp
    xor %ebp, %ebp
    mov %r13, %rdi
    mov %r14, %rsi
    call skiff_x86_ap_start
    ud2
    "#,
    options(att_syntax)
);

static TRAMPOLINE_PAGE: AtomicU64 = AtomicU64::new(0);
static START_LOCK: Mutex<()> = Mutex::new(());
static AP_UP: AtomicBool = AtomicBool::new(false);
/// Per-CPU slot of the AP being started (0 is the boot CPU).
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);
static STARTING_SLOT: AtomicUsize = AtomicUsize::new(0);
/// The boot CPU's CR4, copied onto every AP.
static BSP_CR4: AtomicU64 = AtomicU64::new(0);

/// Hands the arch the physical page (below 1 MiB, not in 0xa0000..0x100000)
/// the kernel reserved for the trampoline. Returns false if it is unusable.
pub fn set_trampoline_page(pa: u64) -> bool {
    let ok = pa != 0 && pa.is_multiple_of(4096) && pa < 0xa0000;
    if ok {
        TRAMPOLINE_PAGE.store(pa, Ordering::Relaxed);
    }
    ok
}

/// This CPU's local APIC id.
pub fn this_cpu_hw_id() -> u64 {
    u64::from(irq::lapic_id())
}

/// Sends IPI number `ipi` (0..=14) to the CPU with APIC id `hw_id`; it
/// arrives there as `Interrupt::Ipi(ipi)`.
pub fn send_ipi(hw_id: u64, ipi: u8) {
    let vector = 0xf0 + u32::from(ipi.min(14));
    irq::send_icr(hw_id as u32, vector);
}

fn delay_us(us: u64) {
    let hz = crate::timer::tsc_hz().max(1_000_000_000);
    let start = cpu::counter();
    let ticks = hz / 1_000_000 * us;
    while cpu::counter().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

fn sym_off(sym: usize) -> usize {
    sym - crate::boot::sym_addr!(skiff_ap_trampoline)
}

/// Starts CPU `hw_id` at `entry(arg)` on `stack_top` (16-byte aligned,
/// mapped in the kernel's tables), interrupts off, after the arch's per-CPU
/// setup. Returns once the CPU runs Rust code, or `Timeout` after ~1 s.
pub fn start_cpu(
    hw_id: u64,
    stack_top: usize,
    entry: extern "C" fn(usize) -> !,
    arg: usize,
) -> Result<(), SmpError> {
    use crate::boot::sym_addr;
    let page = TRAMPOLINE_PAGE.load(Ordering::Relaxed);
    if page == 0 {
        return Err(SmpError::NoTrampoline);
    }
    if hw_id > u64::from(u32::MAX) || (!irq::is_x2apic() && hw_id > 0xfe) {
        return Err(SmpError::BadId);
    }
    let _g = START_LOCK.lock();
    let slot = NEXT_SLOT.load(Ordering::Relaxed);
    if slot >= gdt::MAX_CPUS {
        return Err(SmpError::TooManyCpus);
    }
    let start = sym_addr!(skiff_ap_trampoline);
    let len = sym_addr!(skiff_ap_trampoline_end) - start;
    let dst = mm::phys_to_virt(page);
    let cr4 = x86_64::registers::control::Cr4::read_raw();
    BSP_CR4.store(cr4, Ordering::Relaxed);
    let efer = (1u32 << 8)
        | if cpu::has(cpu::feature::NX) {
            1 << 11
        } else {
            0
        };
    let boot_pml4 = mm::image_virt_to_phys(sym_addr!(boot_pml4));
    let page32 = page as u32;
    let put32 = |sym: usize, v: u32| {
        // SAFETY: `dst` maps the reserved trampoline page through the direct
        // map; every offset is inside the copied trampoline (< len < 4 KiB).
        unsafe { core::ptr::write_unaligned((dst + sym_off(sym)) as *mut u32, v) }
    };
    let put64 = |sym: usize, v: u64| {
        // SAFETY: as for `put32`.
        unsafe { core::ptr::write_unaligned((dst + sym_off(sym)) as *mut u64, v) }
    };
    // SAFETY: the page is reserved for us (set_trampoline_page) and mapped
    // in the direct map; the trampoline is < 4 KiB (asserted below).
    assert!(len <= 4096, "smp: trampoline larger than a page");
    unsafe { core::ptr::copy_nonoverlapping(start as *const u8, dst as *mut u8, len) };
    put32(
        sym_addr!(skiff_tr_gdtr) + 2,
        page32 + sym_off(sym_addr!(skiff_tr_gdt)) as u32,
    );
    put32(
        sym_addr!(skiff_tr_far),
        page32 + sym_off(sym_addr!(skiff_tr_long)) as u32,
    );
    put32(sym_addr!(skiff_tr_cr4), 1 << 5); // PAE only; the rest in ap_start
    put32(sym_addr!(skiff_tr_cr3), boot_pml4 as u32);
    put32(sym_addr!(skiff_tr_efer), efer);
    put64(sym_addr!(skiff_tr_kcr3), mm::root_phys());
    put64(sym_addr!(skiff_tr_stack), stack_top as u64);
    put64(sym_addr!(skiff_tr_entry), entry as usize as u64);
    put64(sym_addr!(skiff_tr_arg), arg as u64);
    STARTING_SLOT.store(slot, Ordering::Relaxed);
    AP_UP.store(false, Ordering::SeqCst);

    let vector = (page >> 12) as u32;
    irq::send_icr(hw_id as u32, 0x4500); // INIT, level assert
    delay_us(10_000);
    for _ in 0..2 {
        irq::send_icr(hw_id as u32, 0x4600 | vector); // STARTUP
        delay_us(200);
        if AP_UP.load(Ordering::SeqCst) {
            break;
        }
    }
    let hz = crate::timer::tsc_hz().max(1_000_000_000);
    let t0 = cpu::counter();
    while !AP_UP.load(Ordering::SeqCst) {
        if cpu::counter().wrapping_sub(t0) > hz {
            return Err(SmpError::Timeout);
        }
        core::hint::spin_loop();
    }
    NEXT_SLOT.store(slot + 1, Ordering::Relaxed);
    Ok(())
}

/// The AP's first Rust code, on its own stack with the kernel's tables.
#[no_mangle]
extern "C" fn skiff_x86_ap_start(entry: extern "C" fn(usize) -> !, arg: usize) -> ! {
    let cr4 = BSP_CR4.load(Ordering::Relaxed);
    // SAFETY: the same CR4 (PAE, PGE, SMEP, SMAP, ...) and CR0.WP the boot
    // CPU runs with, on the same page tables; all kernel mappings are
    // supervisor-only.
    unsafe {
        x86_64::registers::control::Cr4::write_raw(cr4);
        x86_64::registers::control::Cr0::update(|f| {
            f.insert(x86_64::registers::control::Cr0Flags::WRITE_PROTECT)
        });
    }
    let slot = STARTING_SLOT.load(Ordering::Relaxed);
    gdt::init_ap(slot);
    crate::trap::load_idt();
    crate::fpu::init_this_cpu();
    // The local APIC first: everything per-CPU in the arch is keyed by the
    // APIC id, which reads through x2APIC MSRs only once that mode is on.
    irq::init_this_cpu();
    cpu::set_id(slot as u32);
    AP_UP.store(true, Ordering::SeqCst);
    entry(arg)
}
