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
//!
//! IPIs the arch uses itself ([`IPI_TLB`], [`IPI_STOP`]) arrive like any
//! other as `Interrupt::Ipi`; the kernel calls [`handle_ipi`] for every IPI
//! it receives, which does the arch's part. TLB shootdown: one request at a
//! time (a lock whose waiters keep serving requests aimed at them, so two
//! CPUs shooting down at once cannot deadlock), a pending flag per target
//! CPU, `invlpg` per page or a full flush (CR4.PGE toggle, which drops
//! global entries too) past [`TLB_FULL_FLUSH_PAGES`].

use crate::{cpu, gdt, irq, mm};
use core::arch::global_asm;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
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

// ---- CPUs started, TLB shootdown, stop ----

/// IPI number of a TLB shootdown request (the kernel's own IPIs use low
/// numbers).
pub const IPI_TLB: u8 = 13;
/// IPI number of "halt now" ([`stop_others`]).
pub const IPI_STOP: u8 = 14;
/// Ranges longer than this many pages are flushed whole.
pub const TLB_FULL_FLUSH_PAGES: usize = 32;

/// APIC id of each started CPU, by CPU number (`cpu::id`); `CPUS_KNOWN`
/// entries are valid.
static CPU_HW: [AtomicU64; gdt::MAX_CPUS] = [const { AtomicU64::new(0) }; gdt::MAX_CPUS];
static CPUS_KNOWN: AtomicUsize = AtomicUsize::new(0);
static TLB_LOCK: AtomicBool = AtomicBool::new(false);
static TLB_START: AtomicUsize = AtomicUsize::new(0);
static TLB_END: AtomicUsize = AtomicUsize::new(0);
static TLB_PENDING: [AtomicBool; gdt::MAX_CPUS] = [const { AtomicBool::new(false) }; gdt::MAX_CPUS];
static STOP: AtomicBool = AtomicBool::new(false);
static STOPPED: AtomicU32 = AtomicU32::new(0);

/// Records the boot CPU (number 0) the first time a CPU is started.
fn note_boot_cpu() {
    if CPUS_KNOWN.load(Ordering::Acquire) == 0 {
        CPU_HW[0].store(this_cpu_hw_id(), Ordering::Relaxed);
        CPUS_KNOWN.store(1, Ordering::Release);
    }
}

fn note_started(slot: usize, hw_id: u64) {
    CPU_HW[slot].store(hw_id, Ordering::Relaxed);
    CPUS_KNOWN.fetch_max(slot + 1, Ordering::AcqRel);
}

/// Flushes `range` from this CPU's TLB.
fn flush_local(range: &Range<usize>) {
    let pages = range.end.saturating_sub(range.start).div_ceil(4096);
    if pages > TLB_FULL_FLUSH_PAGES {
        let cr4 = x86_64::registers::control::Cr4::read_raw();
        // SAFETY: clearing and restoring CR4.PGE flushes every TLB entry,
        // global ones included, and changes nothing else.
        unsafe {
            x86_64::registers::control::Cr4::write_raw(cr4 & !(1 << 7));
            x86_64::registers::control::Cr4::write_raw(cr4);
        }
        return;
    }
    let mut va = range.start & !0xfff;
    while va < range.end {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va as u64));
        va += 4096;
    }
}

/// Serves a shootdown request aimed at this CPU, if any. Interrupts off.
fn serve_tlb() {
    let me = cpu::id() as usize;
    if me < gdt::MAX_CPUS && TLB_PENDING[me].load(Ordering::Acquire) {
        let range = TLB_START.load(Ordering::Acquire)..TLB_END.load(Ordering::Acquire);
        flush_local(&range);
        TLB_PENDING[me].store(false, Ordering::Release);
    }
}

/// Invalidates `range` (kernel virtual addresses) in the TLB of every CPU
/// and returns once all have done it: locally, then by IPI to every other
/// started CPU, waiting for each to acknowledge. Call it after changing
/// or removing mappings in `range`, with no spin lock held that another
/// CPU may spin on with interrupts off (it waits for their IPI handlers).
/// Panics if a CPU does not answer within a second.
pub fn tlb_shootdown(range: Range<usize>) {
    cpu::without_interrupts(|| {
        flush_local(&range);
        let n = CPUS_KNOWN.load(Ordering::Acquire);
        if n <= 1 {
            return;
        }
        while TLB_LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // The holder may be waiting for us: serve it while we wait.
            serve_tlb();
            core::hint::spin_loop();
        }
        TLB_START.store(range.start, Ordering::Release);
        TLB_END.store(range.end, Ordering::Release);
        let me = cpu::id() as usize;
        for i in (0..n).filter(|&i| i != me) {
            TLB_PENDING[i].store(true, Ordering::Release);
            send_ipi(CPU_HW[i].load(Ordering::Relaxed), IPI_TLB);
        }
        let hz = crate::timer::tsc_hz().max(1_000_000_000);
        let t0 = cpu::counter();
        for i in (0..n).filter(|&i| i != me) {
            while TLB_PENDING[i].load(Ordering::Acquire) {
                if cpu::counter().wrapping_sub(t0) > hz {
                    TLB_LOCK.store(false, Ordering::Release);
                    panic!("smp: cpu={i} did not acknowledge a TLB shootdown");
                }
                core::hint::spin_loop();
            }
        }
        TLB_LOCK.store(false, Ordering::Release);
    });
}

/// Halts every other started CPU (the panic path): each takes the
/// `IPI_STOP` IPI and halts with interrupts off. Waits up to ~100 ms for
/// them; returns how many confirmed (a CPU spinning with interrupts off
/// does not). Never returns an error: panicking goes on regardless.
pub fn stop_others() -> u32 {
    STOP.store(true, Ordering::SeqCst);
    let n = CPUS_KNOWN.load(Ordering::Acquire);
    let me = cpu::id() as usize;
    for i in (0..n).filter(|&i| i != me) {
        send_ipi(CPU_HW[i].load(Ordering::Relaxed), IPI_STOP);
    }
    let want = n.saturating_sub(1) as u32;
    let hz = crate::timer::tsc_hz().max(1_000_000_000);
    let t0 = cpu::counter();
    while STOPPED.load(Ordering::Acquire) < want && cpu::counter().wrapping_sub(t0) < hz / 10 {
        core::hint::spin_loop();
    }
    STOPPED.load(Ordering::Acquire)
}

/// The arch's part of every IPI (the kernel calls it first thing for each
/// `Interrupt::Ipi`): serves a pending TLB shootdown and, after
/// [`stop_others`], halts this CPU for good. Interrupts off.
pub fn handle_ipi() {
    if STOP.load(Ordering::Acquire) {
        STOPPED.fetch_add(1, Ordering::AcqRel);
        cpu::halt_forever();
    }
    serve_tlb();
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
    note_boot_cpu();
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
    note_started(slot, hw_id);
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
