//! Interrupt controllers: the local APIC (x2APIC through MSRs when the CPU
//! has it, else xAPIC MMIO through `map_mmio`), the IOAPICs, and the legacy
//! 8259 PIC, which is remapped out of the exception range and masked.
//!
//! Device lines are GSIs; GSI `g` arrives on vector `DEVICE_VECTOR_BASE + g`.
//! ISA IRQs 0-15 are edge/active-high unless the MADT overrides them; other
//! GSIs are PCI-style level/active-low.

use crate::cpu::{self, feature};
use crate::{mm, port};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use skiff_arch_api::InterruptControllers;
use spin::Mutex;

/// Vector of GSI 0.
pub const DEVICE_VECTOR_BASE: u8 = 0x30;
/// GSIs that fit below the timer vector.
const MAX_GSI: u32 = (crate::timer::VECTOR - DEVICE_VECTOR_BASE) as u32;
pub(crate) const SPURIOUS_VECTOR: u8 = 0xff;

/// Why `irq::init` could not bring up the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// The controller description is not x86 (a GIC).
    WrongModel,
    /// An APIC could not be mapped.
    Map(skiff_arch_api::MapError),
}

// ---- Local APIC ----

const LAPIC_ID: u32 = 0x20;
const LAPIC_TPR: u32 = 0x80;
const LAPIC_EOI: u32 = 0xb0;
const LAPIC_SVR: u32 = 0xf0;
const LAPIC_ESR: u32 = 0x280;
pub(crate) const LAPIC_LVT_TIMER: u32 = 0x320;
const LAPIC_LVT_LINT0: u32 = 0x350;
const LAPIC_LVT_LINT1: u32 = 0x360;
const LAPIC_LVT_ERROR: u32 = 0x370;
pub(crate) const LAPIC_TIMER_INITIAL: u32 = 0x380;
pub(crate) const LAPIC_TIMER_CURRENT: u32 = 0x390;
pub(crate) const LAPIC_TIMER_DIVIDE: u32 = 0x3e0;
pub(crate) const LVT_MASKED: u32 = 1 << 16;

const IA32_APIC_BASE: u32 = 0x1b;
const X2APIC_MSR_BASE: u32 = 0x800;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// xAPIC MMIO virtual base; 0 until mapped.
static LAPIC_VA: AtomicUsize = AtomicUsize::new(0);
static BSP_APIC_ID: AtomicU32 = AtomicU32::new(0);

pub(crate) fn lapic_read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC registers are MSRs 0x800 + reg/16; reading them has
        // no side effects (the ones read here: ID, timer count, ESR).
        unsafe {
            x86_64::registers::model_specific::Msr::new(X2APIC_MSR_BASE + (reg >> 4)).read() as u32
        }
    } else {
        let va = LAPIC_VA.load(Ordering::Relaxed);
        if va == 0 {
            return 0;
        }
        // SAFETY: `va` maps the 4 KiB xAPIC page uncached and `reg` is one of
        // the register offsets above (< 4 KiB, 16-byte aligned).
        unsafe { core::ptr::read_volatile((va + reg as usize) as *const u32) }
    }
}

pub(crate) fn lapic_write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `lapic_read`; the callers write documented values.
        unsafe {
            x86_64::registers::model_specific::Msr::new(X2APIC_MSR_BASE + (reg >> 4))
                .write(u64::from(value))
        }
    } else {
        let va = LAPIC_VA.load(Ordering::Relaxed);
        if va == 0 {
            return;
        }
        // SAFETY: as in `lapic_read`.
        unsafe { core::ptr::write_volatile((va + reg as usize) as *mut u32, value) }
    }
}

pub(crate) fn lapic_eoi() {
    lapic_write(LAPIC_EOI, 0);
}

/// "x2apic" or "xapic", once `init` ran.
pub fn lapic_mode() -> &'static str {
    if X2APIC.load(Ordering::Relaxed) {
        "x2apic"
    } else {
        "xapic"
    }
}

/// Whether the local APIC is up (x2APIC, or xAPIC mapped).
pub(crate) fn lapic_ready() -> bool {
    X2APIC.load(Ordering::Relaxed) || LAPIC_VA.load(Ordering::Relaxed) != 0
}

fn lapic_init(lapic_phys: u64) -> Result<(), IrqError> {
    if cpu::has(feature::X2APIC) {
        X2APIC.store(true, Ordering::Relaxed);
    }
    if !X2APIC.load(Ordering::Relaxed) {
        let va = mm::map_mmio(lapic_phys, 4096).map_err(IrqError::Map)?;
        LAPIC_VA.store(va, Ordering::Relaxed);
    }
    lapic_enable_this_cpu();
    BSP_APIC_ID.store(lapic_id(), Ordering::Relaxed);
    Ok(())
}

/// Enables and programs the calling CPU's local APIC, in the mode the boot
/// CPU chose (every CPU of a machine has the same APIC features).
fn lapic_enable_this_cpu() {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; we set the global
    // enable (bit 11) and, in x2APIC mode, bit 10, keeping the base address.
    unsafe {
        let mut msr = x86_64::registers::model_specific::Msr::new(IA32_APIC_BASE);
        let mut base = msr.read() | (1 << 11);
        if X2APIC.load(Ordering::Relaxed) {
            base |= 1 << 10;
        }
        msr.write(base);
    }
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, 4 << 8); // NMI delivery
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_ESR, 0);
    lapic_write(LAPIC_SVR, (1 << 8) | u32::from(SPURIOUS_VECTOR));
    lapic_eoi();
}

/// Brings up the calling (secondary) CPU's local APIC; `init` must have run
/// on the boot CPU. Its timer starts masked (`timer::set_oneshot` arms it).
pub fn init_this_cpu() {
    lapic_enable_this_cpu();
}

/// The calling CPU's local APIC id (x2APIC: 32 bits; xAPIC: 8 bits).
pub(crate) fn lapic_id() -> u32 {
    let id = lapic_read(LAPIC_ID);
    if X2APIC.load(Ordering::Relaxed) {
        id
    } else {
        id >> 24
    }
}

pub(crate) fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

const LAPIC_ICR_LOW: u32 = 0x300;
const LAPIC_ICR_HIGH: u32 = 0x310;
const ICR_PENDING: u32 = 1 << 12;

/// Writes the interrupt command register: `low` (vector, delivery mode,
/// level) to APIC id `dest`. Waits for an xAPIC's previous IPI to leave.
pub(crate) fn send_icr(dest: u32, low: u32) {
    cpu::without_interrupts(|| {
        if X2APIC.load(Ordering::Relaxed) {
            // SAFETY: the x2APIC ICR is MSR 0x830, destination in bits 63:32.
            unsafe {
                x86_64::registers::model_specific::Msr::new(X2APIC_MSR_BASE + 0x30)
                    .write((u64::from(dest) << 32) | u64::from(low))
            }
        } else {
            while lapic_read(LAPIC_ICR_LOW) & ICR_PENDING != 0 {
                core::hint::spin_loop();
            }
            lapic_write(LAPIC_ICR_HIGH, dest << 24);
            lapic_write(LAPIC_ICR_LOW, low);
        }
    })
}

// ---- IOAPIC ----

const MAX_IOAPICS: usize = 8;

#[derive(Clone, Copy)]
struct IoApic {
    va: usize,
    gsi_base: u32,
    lines: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `va` maps the IOAPIC's register window (IOREGSEL at 0,
        // IOWIN at 0x10) uncached; selecting then reading is the protocol.
        unsafe {
            core::ptr::write_volatile(self.va as *mut u32, reg);
            core::ptr::read_volatile((self.va + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.va as *mut u32, reg);
            core::ptr::write_volatile((self.va + 0x10) as *mut u32, value);
        }
    }
}

struct IrqState {
    ioapics: [Option<IoApic>; MAX_IOAPICS],
    /// Per GSI: level-triggered (masked on delivery until `eoi`).
    level: [bool; MAX_GSI as usize],
}

static STATE: Mutex<IrqState> = Mutex::new(IrqState {
    ioapics: [None; MAX_IOAPICS],
    level: [false; MAX_GSI as usize],
});
/// ISA IRQ → GSI, from the MADT overrides (identity by default).
static ISA_GSI: [AtomicU32; 16] = [const { AtomicU32::new(u32::MAX) }; 16];

const RTE_MASKED: u32 = 1 << 16;
const RTE_LEVEL: u32 = 1 << 15;
const RTE_ACTIVE_LOW: u32 = 1 << 13;

fn find(state: &IrqState, gsi: u32) -> Option<(IoApic, u32)> {
    state.ioapics.iter().flatten().find_map(|io| {
        (gsi >= io.gsi_base && gsi < io.gsi_base + io.lines).then_some((*io, gsi - io.gsi_base))
    })
}

fn set_mask(gsi: u32, masked: bool) {
    // Lines past the vector range were left masked with no vector.
    if !masked && gsi >= MAX_GSI {
        return;
    }
    cpu::without_interrupts(|| {
        let state = STATE.lock();
        if let Some((io, pin)) = find(&state, gsi) {
            let reg = 0x10 + 2 * pin;
            let low = io.read(reg);
            io.write(
                reg,
                if masked {
                    low | RTE_MASKED
                } else {
                    low & !RTE_MASKED
                },
            );
        }
    })
}

/// Brings up this CPU's local APIC and every IOAPIC (all lines masked,
/// routed to the boot CPU on vector `DEVICE_VECTOR_BASE + GSI`).
pub fn init(ctrl: &InterruptControllers) -> Result<(), IrqError> {
    let InterruptControllers::X86 {
        lapic_phys,
        ioapics,
        isa_overrides,
    } = *ctrl
    else {
        return Err(IrqError::WrongModel);
    };
    lapic_init(lapic_phys)?;
    let dest = BSP_APIC_ID.load(Ordering::Relaxed);

    // (GSI → active_low, level) for the ISA overrides.
    let mut isa_mode: [Option<(u32, bool, bool)>; 16] = [None; 16];
    for &(irq, gsi, active_low, level) in isa_overrides {
        if let Some(slot) = isa_mode.get_mut(usize::from(irq)) {
            *slot = Some((gsi, active_low, level));
        }
    }
    for (irq, slot) in ISA_GSI.iter().enumerate() {
        let gsi = isa_mode[irq].map_or(irq as u32, |m| m.0);
        slot.store(gsi, Ordering::Relaxed);
    }

    cpu::without_interrupts(|| {
        let mut state = STATE.lock();
        for (i, &(_id, phys, gsi_base)) in ioapics.iter().take(MAX_IOAPICS).enumerate() {
            let va = mm::map_mmio(phys, 0x20).map_err(IrqError::Map)?;
            let mut io = IoApic {
                va,
                gsi_base,
                lines: 0,
            };
            io.lines = ((io.read(1) >> 16) & 0xff) + 1;
            for pin in 0..io.lines {
                let gsi = gsi_base + pin;
                // ISA defaults, then overrides; everything else is PCI.
                let (active_low, level) = match (0..16u8)
                    .find(|&irq| ISA_GSI[usize::from(irq)].load(Ordering::Relaxed) == gsi)
                {
                    Some(irq) => isa_mode[usize::from(irq)].map_or((false, false), |m| (m.1, m.2)),
                    None if gsi < 16 => (false, false),
                    None => (true, true),
                };
                let mut low = RTE_MASKED;
                if gsi < MAX_GSI {
                    low |= u32::from(DEVICE_VECTOR_BASE) + gsi;
                    state.level[gsi as usize] = level;
                }
                if active_low {
                    low |= RTE_ACTIVE_LOW;
                }
                if level {
                    low |= RTE_LEVEL;
                }
                io.write(0x10 + 2 * pin + 1, dest << 24);
                io.write(0x10 + 2 * pin, low);
            }
            state.ioapics[i] = Some(io);
        }
        Ok(())
    })
}

/// The GSI an ISA IRQ (0-15) is wired to, after MADT overrides.
pub fn isa_to_gsi(irq: u8) -> Option<u32> {
    let gsi = ISA_GSI.get(usize::from(irq))?.load(Ordering::Relaxed);
    (gsi != u32::MAX).then_some(gsi)
}

/// Why [`configure`] refused a GSI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsiError {
    /// No IOAPIC input has this GSI, or it has no vector below the timer's.
    NoSuchGsi(u32),
}

/// Sets GSI `gsi`'s trigger mode and polarity (from ACPI: a PCI INTx link's
/// `_CRS`, or level/active-low for a `_PRT` GSI), leaving it masked as it
/// was. A level line is then masked on delivery until [`eoi`].
pub fn configure(gsi: u32, level: bool, active_low: bool) -> Result<(), GsiError> {
    if gsi >= MAX_GSI {
        return Err(GsiError::NoSuchGsi(gsi));
    }
    cpu::without_interrupts(|| {
        let mut state = STATE.lock();
        let (io, pin) = find(&state, gsi).ok_or(GsiError::NoSuchGsi(gsi))?;
        let reg = 0x10 + 2 * pin;
        let mut low = io.read(reg) & !(RTE_LEVEL | RTE_ACTIVE_LOW);
        if level {
            low |= RTE_LEVEL;
        }
        if active_low {
            low |= RTE_ACTIVE_LOW;
        }
        io.write(reg, low);
        state.level[gsi as usize] = level;
        Ok(())
    })
}

/// Lets GSI `line` interrupt (it arrives as `Interrupt::Device(line)`).
pub fn unmask(line: u32) {
    set_mask(line, false);
}

/// Stops GSI `line` from interrupting.
pub fn mask(line: u32) {
    set_mask(line, true);
}

/// Whether `gsi` was programmed level-triggered.
fn is_level(gsi: u32) -> bool {
    cpu::without_interrupts(|| {
        STATE
            .lock()
            .level
            .get(gsi as usize)
            .copied()
            .unwrap_or(false)
    })
}

/// Ends a level-triggered line's interrupt: the dispatcher masked it on
/// delivery (and sent the local APIC EOI); this re-enables it. Edge lines
/// need nothing.
pub fn eoi(line: u32) {
    if is_level(line) {
        set_mask(line, false);
    }
}

/// Called by the dispatcher for a device vector: masks level lines (so the
/// handler can defer work to a thread) and acknowledges the local APIC.
pub(crate) fn device_delivered(gsi: u32) {
    if is_level(gsi) {
        set_mask(gsi, true);
    }
    lapic_eoi();
}

/// Remaps the 8259 PICs to vectors 0x20-0x2f and masks every line.
pub(crate) fn disable_legacy_pic() {
    // SAFETY: the standard ICW1-4 sequence on the 8259 command/data ports,
    // then full masks; touches only the PICs.
    unsafe {
        port::outb(0x20, 0x11);
        port::outb(0xa0, 0x11);
        port::outb(0x21, 0x20);
        port::outb(0xa1, 0x28);
        port::outb(0x21, 0x04);
        port::outb(0xa1, 0x02);
        port::outb(0x21, 0x01);
        port::outb(0xa1, 0x01);
        port::outb(0x21, 0xff);
        port::outb(0xa1, 0xff);
    }
}
