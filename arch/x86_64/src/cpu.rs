//! CPU control: interrupts, halting, the TSC, CPUID and MSRs, and the
//! feature bits the rest of the arch layer consults.

use core::sync::atomic::{AtomicU32, Ordering};
use x86_64::instructions::interrupts;

/// EAX, EBX, ECX, EDX of one CPUID leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// `cpuid` with `leaf` in EAX and `subleaf` in ECX.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    // `cpuid` exists on every x86_64 CPU and only reads state.
    #[allow(unused_unsafe)]
    // SAFETY: see above.
    let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// Reads an MSR; `None` if the CPU (or hypervisor) refuses it with #GP.
pub fn read_msr(msr: u32) -> Option<u64> {
    struct Slot {
        msr: u32,
        value: u64,
    }
    fn read(arg: usize) {
        // SAFETY: `arg` is the address of the `Slot` owned by `read_msr` for
        // the duration of this call.
        let slot = unsafe { &mut *(arg as *mut Slot) };
        // SAFETY: reading an MSR has no side effects on the MSRs the
        // platform reads; an unimplemented one raises #GP, which the
        // surrounding `catch_fault` turns into `None`.
        slot.value = unsafe { x86_64::registers::model_specific::Msr::new(slot.msr).read() };
    }
    let mut slot = Slot { msr, value: 0 };
    crate::trap::catch_fault(read, &mut slot as *mut Slot as usize).ok()?;
    Some(slot.value)
}

/// Writes an MSR.
///
/// # Safety
/// The write must be valid for this MSR and must not break the arch layer's
/// invariants (EFER, the APIC base, the PAT ...). Platform uses it for
/// paravirtual clock MSRs.
pub unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) }
}

/// CPU features the arch layer cares about, read once at boot.
pub(crate) mod feature {
    pub const NX: u32 = 1 << 0;
    pub const SMEP: u32 = 1 << 1;
    pub const SMAP: u32 = 1 << 2;
    pub const X2APIC: u32 = 1 << 3;
    pub const TSC_DEADLINE: u32 = 1 << 4;
    pub const PGE: u32 = 1 << 5;
    pub const INVARIANT_TSC: u32 = 1 << 6;
    pub const FSGSBASE: u32 = 1 << 7;
}

static FEATURES: AtomicU32 = AtomicU32::new(0);

pub(crate) fn detect_features() {
    let mut f = 0;
    let max_basic = cpuid(0, 0).eax;
    let max_ext = cpuid(0x8000_0000, 0).eax;
    let l1 = cpuid(1, 0);
    if l1.ecx & (1 << 21) != 0 {
        f |= feature::X2APIC;
    }
    if l1.ecx & (1 << 24) != 0 {
        f |= feature::TSC_DEADLINE;
    }
    if l1.edx & (1 << 13) != 0 {
        f |= feature::PGE;
    }
    if max_basic >= 7 {
        let l7 = cpuid(7, 0);
        if l7.ebx & 1 != 0 {
            f |= feature::FSGSBASE;
        }
        if l7.ebx & (1 << 7) != 0 {
            f |= feature::SMEP;
        }
        if l7.ebx & (1 << 20) != 0 {
            f |= feature::SMAP;
        }
    }
    if max_ext >= 0x8000_0001 && cpuid(0x8000_0001, 0).edx & (1 << 20) != 0 {
        f |= feature::NX;
    }
    if max_ext >= 0x8000_0007 && cpuid(0x8000_0007, 0).edx & (1 << 8) != 0 {
        f |= feature::INVARIANT_TSC;
    }
    FEATURES.store(f, Ordering::Relaxed);
}

pub(crate) fn has(feature: u32) -> bool {
    FEATURES.load(Ordering::Relaxed) & feature != 0
}

pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

pub fn enable_interrupts() {
    interrupts::enable();
}

pub fn disable_interrupts() {
    interrupts::disable();
}

pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Halts until the next interrupt, with interrupts enabled for the wait
/// (`sti; hlt` is atomic: no wakeup is lost between them). Leaves the
/// interrupt flag as it found it.
pub fn wait_for_interrupt() {
    let was_enabled = interrupts_enabled();
    interrupts::enable_and_hlt();
    if !was_enabled {
        interrupts::disable();
    }
}

/// The busy-wait hint: `pause` (QEMU's TCG also ends the vCPU's turn on
/// it, so a spinning vCPU lets the others run).
pub fn relax() {
    core::hint::spin_loop();
}

pub fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Per APIC id (mod 256): the CPU's number (boot CPU 0, then 1, 2, ... in
/// the order `smp::start_cpu` started them).
static CPU_NUMBER: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];

pub(crate) fn set_id(number: u32) {
    CPU_NUMBER[(crate::irq::lapic_id() & 0xff) as usize].store(number, Ordering::Relaxed);
}

/// This CPU's number: 0 on the boot CPU, then 1, 2, ... in the order
/// `smp::start_cpu` started them (the arch's per-CPU GDT/TSS slot).
pub fn id() -> u32 {
    CPU_NUMBER[(crate::irq::lapic_id() & 0xff) as usize].load(Ordering::Relaxed)
}

/// The time-stamp counter.
pub fn counter() -> u64 {
    // SAFETY: `rdtsc` only reads the TSC (CR4.TSD is clear, we are ring 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}
