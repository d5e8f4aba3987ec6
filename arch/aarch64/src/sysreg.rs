//! System register values the boot code programs, and readers the platform
//! crate uses (MIDR, MPIDR, CurrentEL).
//!
//! The boot constants are built from `aarch64-cpu` field definitions at
//! compile time and handed to the entry assembly as `const` operands, so the
//! register layout is named once, here, and not as magic numbers in assembly.

use aarch64_cpu::registers::{
    CurrentEL, Readable, CNTHCTL_EL2, HCR_EL2, MAIR_EL1, MIDR_EL1, MPIDR_EL1, SCTLR_EL1, SPSR_EL2,
    TCR_EL1,
};

/// MAIR_EL1 slot of each memory type the page tables use (`AttrIndx`).
pub const MAIR_IDX_NORMAL: u64 = 0;
pub const MAIR_IDX_DEVICE: u64 = 1;
pub const MAIR_IDX_NORMAL_NC: u64 = 2;

/// Attr0 = Normal write-back read/write-allocate, Attr1 = Device-nGnRE,
/// Attr2 = Normal non-cacheable.
pub const MAIR_VALUE: u64 = MAIR_EL1::Attr0_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
    .value
    | MAIR_EL1::Attr0_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Device::nonGathering_nonReordering_EarlyWriteAck.value
    | MAIR_EL1::Attr2_Normal_Outer::NonCacheable.value
    | MAIR_EL1::Attr2_Normal_Inner::NonCacheable.value;

/// TCR_EL1 for 48-bit VAs in both halves, 4 KiB granules, inner-shareable
/// write-back table walks. IPS is filled in at boot from
/// ID_AA64MMFR0_EL1.PARange (capped at 48 bits). TTBR0 walks stay enabled
/// (EPD0 = 0): TTBR0 holds the one user table (`mm`), set at boot and never
/// switched; ASIDs come from TTBR0 (A1 = 0) and are always 0; no top-byte
/// ignore for user addresses (TBI0 = 0).
pub const TCR_VALUE: u64 = TCR_EL1::T0SZ.val(16).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::T1SZ.val(16).value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::SH1::Inner.value
    | TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value;

/// Bit position of TCR_EL1.IPS (the boot code inserts the PA size there).
pub const TCR_IPS_SHIFT: u64 = 32;

/// SCTLR_EL1 bits that are RES1 in ARMv8.0 (bits 29, 28, 23, 22, 20, 11).
/// Bit 23 is SPAN on CPUs with PAN; leaving it 1 keeps PSTATE.PAN as is on
/// exceptions until `boot` knows PAN exists and clears it.
pub const SCTLR_RES1: u64 = (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);

/// SCTLR_EL1 before the MMU is on: little-endian, everything off.
pub const SCTLR_MMU_OFF: u64 = SCTLR_RES1;

/// SCTLR_EL1 with the MMU and caches on, SP alignment checks on, and EL0
/// allowed what Linux allows it (so unmodified programs run): WFI/WFE, CTR_EL0
/// reads, `dc zva`, and cache maintenance by VA.
pub const SCTLR_MMU_ON: u64 = SCTLR_RES1
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::I::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value
    | SCTLR_EL1::NTWE::DontTrap.value
    | SCTLR_EL1::NTWI::DontTrap.value
    | SCTLR_EL1::UCT::DontTrap.value
    | SCTLR_EL1::DZE::DontTrap.value
    | SCTLR_EL1::UCI::DontTrap.value;

/// SCTLR_EL1.SPAN: clear to have PSTATE.PAN set on every exception to EL1.
pub const SCTLR_SPAN: u64 = 1 << 23;

/// HCR_EL2 when dropping to EL1: EL1 is AArch64; no stage 2, no traps.
pub const HCR_EL2_VALUE: u64 = HCR_EL2::RW::EL1IsAarch64.value;

/// CNTHCTL_EL2: EL1 may use the physical counter and timer.
pub const CNTHCTL_EL2_VALUE: u64 =
    CNTHCTL_EL2::EL1PCTEN::SET.value | CNTHCTL_EL2::EL1PCEN::SET.value;

/// SPSR_EL2 for the `eret` into EL1: EL1h with D, A, I, F masked.
pub const SPSR_EL2_TO_EL1: u64 = SPSR_EL2::D::Masked.value
    | SPSR_EL2::A::Masked.value
    | SPSR_EL2::I::Masked.value
    | SPSR_EL2::F::Masked.value
    | SPSR_EL2::M::EL1h.value;

/// MIDR_EL1: implementer, part number, revision of this CPU.
pub fn midr() -> u64 {
    MIDR_EL1.get()
}

/// MPIDR_EL1: this CPU's affinity (Aff3..Aff0).
pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

/// MPIDR affinity bits in the layout the DT `cpu@N` `reg` uses
/// (Aff3 << 32 | Aff2 << 16 | Aff1 << 8 | Aff0).
pub fn mpidr_affinity() -> u64 {
    let m = mpidr();
    (m & 0x00ff_ffff) | ((m >> 32) & 0xff) << 32
}

/// The exception level the kernel runs at now (always 1 after boot).
pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}
