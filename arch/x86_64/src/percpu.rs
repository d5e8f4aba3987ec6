//! The per-CPU base pointer: the GS base MSR. The kernel stores a pointer to
//! its own per-CPU structure here; the arch only stores and loads it.
//! (Read with `rdmsr`: `rdgsbase` needs CR4.FSGSBASE, which we leave off
//! until user space needs a policy for it.)

const IA32_GS_BASE: u32 = 0xc000_0101;

/// Sets this CPU's base pointer.
pub fn set_base(ptr: usize) {
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; the kernel does not
    // use GS-relative addressing, so the value has no other meaning.
    unsafe { x86_64::registers::model_specific::Msr::new(IA32_GS_BASE).write(ptr as u64) }
}

/// This CPU's base pointer (0 until `set_base`).
pub fn base() -> usize {
    // SAFETY: reading IA32_GS_BASE has no side effects.
    unsafe { x86_64::registers::model_specific::Msr::new(IA32_GS_BASE).read() as usize }
}
