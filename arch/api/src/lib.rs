//! The arch contract: the types that cross the line between an arch crate
//! (`skiff-arch-x86_64`, `skiff-arch-aarch64`) and the kernel above it.
//!
//! This crate holds data types and one trait only, no code that touches
//! hardware. It depends on nothing. Every arch crate re-exports it and
//! implements the same small surface, documented in `docs/arch-contract.md`:
//!
//! * `entry!(path)` — the kernel names its Rust entry point; the arch's
//!   assembly entry calls it once on the boot CPU with a [`BootArgs`], after
//!   the arch has set up a stack, its own page tables (W^X kernel image, a
//!   direct map of the first 4 GiB of physical memory on x86_64 and of the
//!   kernel's RAM block on aarch64), and its trap vectors.
//! * `mm` — `PAGE_SIZE`, `phys_to_virt`, `virt_to_phys`, `map_direct`,
//!   `map_mmio`, `map_page`, `unmap_page`, `translate`.
//! * `cpu` — interrupts on/off, `wait_for_interrupt`, `halt_forever`.
//! * `trap` — `set_handler(&'static dyn TrapHandler)` and `catch_fault`.
//! * `irq`, `timer`, `power`, `backtrace` — see the contract document.
//!
//! Nothing in an arch crate calls the kernel by name: the kernel hands it a
//! [`TrapHandler`] and its entry function.
#![no_std]

use core::ops::Range;

/// How the firmware or loader handed over control. Addresses are physical.
///
/// Only early boot looks at this: the platform crate turns it into the one
/// `BootInfo` everything after early boot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawBoot {
    /// x86_64 PVH (Xen ELF note `XEN_ELFNOTE_PHYS32_ENTRY`): `%ebx` held the
    /// physical address of `struct hvm_start_info`.
    Pvh { start_info: u64 },
    /// x86_64 Linux 64-bit boot protocol: `%rsi` held `struct boot_params`.
    LinuxBootParams { boot_params: u64 },
    /// aarch64 Linux `Image` protocol: `x0` held the flattened device tree.
    DeviceTree { dtb: u64 },
}

/// What the arch entry code hands the kernel's entry function.
#[derive(Debug, Clone)]
pub struct BootArgs {
    pub raw: RawBoot,
    /// Physical memory the kernel image occupies (from the first loaded byte
    /// to the end of `.bss`, boot stacks and boot page tables included).
    pub kernel_phys: Range<u64>,
    /// Privilege level the firmware entered at (aarch64: 1 or 2; x86_64: 0).
    pub entry_level: u8,
    /// Free-running counter value at the very first instruction we control
    /// (TSC on x86_64, CNTVCT_EL0 on aarch64), for boot-phase timestamps.
    pub entry_counter: u64,
}

/// Permissions of a 4 KiB mapping. W^X is enforced by `map_page`: asking for
/// `write` and `execute` together is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageFlags {
    pub write: bool,
    pub execute: bool,
    /// Accessible from user mode (ring 3 / EL0).
    pub user: bool,
}

impl PageFlags {
    pub const KERNEL_RO: Self = Self {
        write: false,
        execute: false,
        user: false,
    };
    pub const KERNEL_RW: Self = Self {
        write: true,
        execute: false,
        user: false,
    };
    pub const KERNEL_RX: Self = Self {
        write: false,
        execute: true,
        user: false,
    };
}

/// Why a mapping request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// A page-table page was needed and the allocator had none.
    OutOfMemory,
    /// The virtual address is already mapped (or covered by a large page).
    AlreadyMapped,
    /// Not page aligned, not canonical, or in a region the arch reserves.
    BadAddress,
    /// Writable and executable at once.
    WriteExecute,
    /// The arch's boot-time page-table pool is exhausted.
    PoolExhausted,
}

/// What kind of access faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
    /// Not a memory access (divide error, undefined instruction, ...).
    None,
}

/// A synchronous exception, decoded into arch-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Short name, e.g. "page fault", "general protection", "data abort".
    pub name: &'static str,
    pub access: Access,
    /// Faulting data address when there is one (CR2 / FAR_EL1), else 0.
    pub addr: usize,
    /// Program counter of the faulting instruction.
    pub pc: usize,
    /// True when the fault came from user mode.
    pub user: bool,
    /// Raw arch syndrome: x86 vector << 32 | error code; aarch64 ESR_EL1.
    pub syndrome: u64,
    /// True when the page was present/mapped and the access broke a
    /// permission (as opposed to a translation fault on an unmapped page).
    pub protection: bool,
}

/// Interrupt sources the arch decodes before calling the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The per-CPU one-shot timer fired.
    Timer,
    /// An inter-processor interrupt with the given arch-neutral number.
    Ipi(u8),
    /// A device interrupt: GSI on x86_64 (IOAPIC input), INTID on aarch64.
    Device(u32),
    /// Spurious, already acknowledged; the kernel may count it.
    Spurious,
}

/// What the kernel tells the arch to do after a fault it was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The kernel fixed the cause (e.g. demand paging); retry the instruction.
    Retry,
    /// Unrecoverable: the arch prints its register dump and panics.
    Panic,
}

/// The kernel's handlers, registered once with `trap::set_handler`.
/// Called with interrupts disabled, on the interrupted thread's kernel stack
/// (or the arch's dedicated stack for double faults / NMIs).
pub trait TrapHandler: Sync {
    /// A decoded interrupt. The arch has already sent end-of-interrupt for
    /// edge-triggered sources; level-triggered device sources are masked
    /// until `irq::unmask` (so handlers can defer work to a thread).
    fn interrupt(&self, irq: Interrupt);
    /// A synchronous fault not claimed by `trap::catch_fault`.
    fn fault(&self, fault: &Fault) -> FaultAction;
}

/// Interrupt controllers the platform found, handed to `irq::init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptControllers<'a> {
    X86 {
        /// Local APIC MMIO base (ignored in x2APIC mode).
        lapic_phys: u64,
        /// (IOAPIC id, MMIO base, first GSI) of each IOAPIC.
        ioapics: &'a [(u8, u64, u32)],
        /// ISA IRQ → (GSI, active_low, level_triggered) overrides from the MADT.
        isa_overrides: &'a [(u8, u32, bool, bool)],
    },
    Gic {
        /// 2 or 3.
        version: u8,
        gicd_phys: u64,
        /// GICv2: CPU interface base. GICv3: redistributor region base.
        gicc_or_gicr_phys: u64,
        /// Size of the redistributor region (GICv3) or CPU interface (GICv2).
        gicc_or_gicr_len: u64,
    },
}

/// Power-off and exit-status conventions shared by the arches and the host
/// runner (`tools/skiff`). See docs/exit-status.md.
pub mod exit {
    /// The last line the kernel prints before powering off, e.g.
    /// `skiff: exit status=0`. The runner parses it on every arch.
    pub const STATUS_LINE_PREFIX: &str = "skiff: exit status=";
}

/// Virtual address ranges of the kernel image's sections (`mm::kernel_sections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSections {
    /// `.text`: read + execute.
    pub text: Range<usize>,
    /// `.rodata`: read only.
    pub rodata: Range<usize>,
    /// `.data`, `.bss` and the boot stacks: read + write, never executable.
    pub data: Range<usize>,
}

/// How to enter ACPI S5 (power-off), from the FADT and the DSDT's `\_S5`:
/// found by the platform crate, carried out by the x86_64 arch crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiSleep {
    /// Legacy: write `SLP_TYPa << 10 | SLP_EN` to the PM1a control port.
    Pm1aControl { port: u16, slp_typ: u8 },
    /// Hardware-reduced ACPI: write `SLP_TYP << 2 | SLP_EN` (a byte) to the
    /// sleep control register, in I/O or memory space.
    SleepControlReg {
        address: u64,
        is_port: bool,
        slp_typ: u8,
    },
}

/// The FADT reset register (`RESET_REG`) and value (`RESET_VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiReset {
    pub address: u64,
    pub is_port: bool,
    pub value: u8,
}
