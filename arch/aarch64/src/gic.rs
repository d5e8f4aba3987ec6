//! The Arm Generic Interrupt Controller, versions 2 and 3.
//!
//! * GICv2: distributor (GICD) and CPU interface (GICC) in MMIO.
//! * GICv3: distributor in MMIO with affinity routing, this CPU's
//!   redistributor (GICR, found by affinity and woken up), and the CPU
//!   interface through the ICC_* system registers.
//!
//! All interrupts are Group 1 (non-secure) IRQs, priority 0xa0, SPIs routed
//! to the boot CPU. SGIs 0-15 are the IPIs (enabled on every CPU); PPIs
//! and SGIs are banked per CPU, so [`Gic::init_this_cpu`] runs on each CPU
//! and records what sending to it needs (the GICv2 interface bit, the
//! GICv3 redistributor) in its `percpu` block. Register offsets follow the
//! GIC architecture specification (IHI 0048B for v2, IHI 0069 for v3).

use crate::{percpu, sysreg};
use core::arch::asm;
use core::sync::atomic::Ordering;

/// Device registers at a mapped VA with a bound on the offsets used.
#[derive(Clone, Copy)]
pub(crate) struct Regs {
    base: usize,
    len: usize,
}

impl Regs {
    /// # Safety
    /// `base..base+len` must map GIC registers (Device memory) for good.
    pub(crate) unsafe fn new(base: usize, len: usize) -> Self {
        Self { base, len }
    }

    fn addr(&self, off: usize, size: usize) -> usize {
        assert!(
            off.is_multiple_of(size) && off + size <= self.len,
            "gic: register offset {off:#x} out of range"
        );
        self.base + off
    }

    // Accesses are single `ldr`/`str` instructions with a plain base
    // register: a hypervisor emulating the GIC (Xen's vGIC, KVM's) decodes
    // them from the syndrome, which it cannot do for the writeback forms the
    // compiler may pick for `read_volatile`/`write_volatile` in a loop.

    fn read32(&self, off: usize) -> u32 {
        let v: u32;
        // SAFETY: in the mapped window (checked by `addr`), aligned.
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) self.addr(off, 4), v = out(reg) v, options(nostack))
        };
        v
    }

    fn write32(&self, off: usize, v: u32) {
        // SAFETY: as `read32`.
        unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) self.addr(off, 4), v = in(reg) v, options(nostack))
        };
    }

    fn read64(&self, off: usize) -> u64 {
        let v: u64;
        // SAFETY: as `read32`.
        unsafe {
            asm!("ldr {v}, [{a}]", a = in(reg) self.addr(off, 8), v = out(reg) v, options(nostack))
        };
        v
    }

    fn write64(&self, off: usize, v: u64) {
        // SAFETY: as `read32`.
        unsafe {
            asm!("str {v}, [{a}]", a = in(reg) self.addr(off, 8), v = in(reg) v, options(nostack))
        };
    }

    fn write8(&self, off: usize, v: u8) {
        // SAFETY: as `read32`; priority/target registers are byte-accessible.
        unsafe {
            asm!("strb {v:w}, [{a}]", a = in(reg) self.addr(off, 1), v = in(reg) v as u32, options(nostack))
        };
    }

    fn read8(&self, off: usize) -> u8 {
        let v: u32;
        // SAFETY: as `write8`.
        unsafe {
            asm!("ldrb {v:w}, [{a}]", a = in(reg) self.addr(off, 1), v = out(reg) v, options(nostack))
        };
        v as u8
    }
}

// Distributor.
const GICD_CTLR: usize = 0x000;
const GICD_TYPER: usize = 0x004;
const GICD_IGROUPR: usize = 0x080;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_ICPENDR: usize = 0x280;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_SGIR: usize = 0xf00;
const GICD_IROUTER: usize = 0x6000;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// v3, non-secure view (or DS=1): ARE | EnableGrp1.
const GICD_CTLR_V3_ENABLE: u32 = (1 << 4) | (1 << 1);

// GICv2 CPU interface.
const GICC_CTLR: usize = 0x00;
const GICC_PMR: usize = 0x04;
const GICC_BPR: usize = 0x08;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;

// GICv3 redistributor: RD_base frame, then SGI_base 64 KiB above.
const GICR_CTLR: usize = 0x0000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_SGI: usize = 0x1_0000;
const GICR_IGROUPR0: usize = GICR_SGI + 0x080;
const GICR_ISENABLER0: usize = GICR_SGI + 0x100;
const GICR_ICENABLER0: usize = GICR_SGI + 0x180;
const GICR_ICPENDR0: usize = GICR_SGI + 0x280;
const GICR_IPRIORITYR: usize = GICR_SGI + 0x400;
const GICR_CTLR_RWP: u32 = 1 << 3;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_FRAME_SIZE: usize = 0x2_0000;

const PRIORITY: u8 = 0xa0;
/// SGIs (the IPIs): INTIDs 0-15.
const SGI_MASK: u32 = 0xffff;
/// INTIDs 1020-1023 are special (spurious, no EOI).
pub(crate) const SPURIOUS_FIRST: u32 = 1020;

/// Why the GIC could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicError {
    /// GICv3 system-register interface disabled (ICC_SRE_EL1.SRE reads 0):
    /// a hypervisor or EL2 firmware did not open it.
    SystemRegistersDisabled,
    /// No redistributor in the region matches this CPU's affinity.
    NoRedistributor,
    /// A register did not settle (RWP or ChildrenAsleep stuck).
    Timeout,
}

pub(crate) enum Gic {
    V2 {
        gicd: Regs,
        gicc: Regs,
    },
    V3 {
        gicd: Regs,
        /// The whole redistributor region; each CPU finds its own frames.
        gicr_region: Regs,
        region_len: usize,
    },
}

fn wait_clear(read: impl Fn() -> u32, mask: u32) -> Result<(), GicError> {
    for _ in 0..10_000_000 {
        if read() & mask == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(GicError::Timeout)
}

fn isb() {
    // SAFETY: barrier only.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Number of interrupt lines the distributor implements (≤ 1020).
fn lines(gicd: &Regs) -> u32 {
    (32 * ((gicd.read32(GICD_TYPER) & 0x1f) + 1)).min(SPURIOUS_FIRST)
}

/// Common SPI setup: disabled, not pending, Group 1, default priority.
fn init_spis(gicd: &Regs, lines: u32) {
    for n in (32..lines).step_by(32) {
        let word = (n / 32) as usize * 4;
        gicd.write32(GICD_ICENABLER + word, !0);
        gicd.write32(GICD_ICPENDR + word, !0);
        gicd.write32(GICD_IGROUPR + word, !0);
    }
    for n in 32..lines {
        gicd.write8(GICD_IPRIORITYR + n as usize, PRIORITY);
    }
}

/// GICv2 distributor set-up (once, boot CPU), then the boot CPU's part.
pub(crate) fn init_v2(gicd: Regs, gicc: Regs) -> Gic {
    gicd.write32(GICD_CTLR, 0);
    let lines = lines(&gicd);
    let mask = v2_this_cpu_mask(&gicd);
    for n in (32..lines).step_by(32) {
        let word = (n / 32) as usize * 4;
        gicd.write32(GICD_ICENABLER + word, !0);
        gicd.write32(GICD_ICPENDR + word, !0);
    }
    for n in 32..lines {
        gicd.write8(GICD_IPRIORITYR + n as usize, PRIORITY);
        gicd.write8(GICD_ITARGETSR + n as usize, mask);
    }
    gicd.write32(GICD_CTLR, 1);
    let gic = Gic::V2 { gicd, gicc };
    // Cannot fail on v2.
    let _ = gic.init_this_cpu();
    gic
}

/// This CPU's target bit: the banked ITARGETSR bytes of SGIs/PPIs read
/// back as this CPU's interface mask.
fn v2_this_cpu_mask(gicd: &Regs) -> u8 {
    (0..32)
        .map(|i| gicd.read8(GICD_ITARGETSR + i))
        .find(|&m| m != 0)
        .unwrap_or(1)
}

fn init_cpu_v2(gicd: &Regs, gicc: &Regs) {
    percpu::this()
        .gic_v2_mask
        .store(v2_this_cpu_mask(gicd), Ordering::Release);
    // Banked SGI/PPI state of this CPU: all off and idle, then the SGIs on.
    gicd.write32(GICD_ICENABLER, !0);
    gicd.write32(GICD_ICPENDR, !0);
    for n in 0..32 {
        gicd.write8(GICD_IPRIORITYR + n, PRIORITY);
    }
    gicd.write32(GICD_ISENABLER, SGI_MASK);
    gicc.write32(GICC_PMR, 0xff);
    gicc.write32(GICC_BPR, 0);
    gicc.write32(GICC_CTLR, 1);
}

/// The redistributor frame (offset in `gicr`) whose affinity is this CPU's.
fn find_redistributor(gicr: &Regs, len: usize) -> Option<usize> {
    let aff = sysreg::mpidr_affinity();
    // GICR_TYPER[63:32] = Aff3.Aff2.Aff1.Aff0.
    let want = ((aff >> 32) & 0xff) << 24 | (aff & 0x00ff_ffff);
    let mut off = 0;
    while off + GICR_FRAME_SIZE <= len {
        let typer = gicr.read64(off + GICR_TYPER);
        if typer >> 32 == want {
            return Some(off);
        }
        if typer & GICR_TYPER_LAST != 0 {
            return None;
        }
        off += if typer & GICR_TYPER_VLPIS != 0 {
            2 * GICR_FRAME_SIZE
        } else {
            GICR_FRAME_SIZE
        };
    }
    None
}

fn icc_sre_el1() -> u64 {
    let v: u64;
    // SAFETY: reads ICC_SRE_EL1.
    unsafe { asm!("mrs {}, ICC_SRE_EL1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// GICv3 distributor set-up (once, boot CPU), then the boot CPU's part.
pub(crate) fn init_v3(gicd: Regs, gicr_region: Regs, region_len: usize) -> Result<Gic, GicError> {
    enable_system_registers()?;
    gicd.write32(GICD_CTLR, 0);
    wait_clear(|| gicd.read32(GICD_CTLR), GICD_CTLR_RWP)?;
    let lines = lines(&gicd);
    init_spis(&gicd, lines);
    let aff = sysreg::mpidr_affinity();
    for n in 32..lines {
        gicd.write64(GICD_IROUTER + 8 * n as usize, aff);
    }
    gicd.write32(GICD_CTLR, GICD_CTLR_V3_ENABLE);
    wait_clear(|| gicd.read32(GICD_CTLR), GICD_CTLR_RWP)?;
    let gic = Gic::V3 {
        gicd,
        gicr_region,
        region_len,
    };
    gic.init_this_cpu()?;
    Ok(gic)
}

/// The CPU interface through system registers (ICC_SRE_EL1.SRE).
fn enable_system_registers() -> Result<(), GicError> {
    // SAFETY: sets ICC_SRE_EL1.SRE; has no effect if EL2 keeps it off.
    unsafe { asm!("msr ICC_SRE_EL1, {}", in(reg) icc_sre_el1() | 1, options(nostack)) };
    isb();
    if icc_sre_el1() & 1 == 0 {
        return Err(GicError::SystemRegistersDisabled);
    }
    Ok(())
}

fn init_cpu_v3(gicr_region: &Regs, region_len: usize) -> Result<(), GicError> {
    enable_system_registers()?;
    let off = find_redistributor(gicr_region, region_len).ok_or(GicError::NoRedistributor)?;
    // SAFETY: the frame pair at `off` lies inside the mapped region
    // (`find_redistributor` checked `off + frame size <= len`).
    let gicr = unsafe { Regs::new(gicr_region.base + off, GICR_FRAME_SIZE) };
    let waker = gicr.read32(GICR_WAKER);
    gicr.write32(GICR_WAKER, waker & !GICR_WAKER_PROCESSOR_SLEEP);
    wait_clear(|| gicr.read32(GICR_WAKER), GICR_WAKER_CHILDREN_ASLEEP)?;
    gicr.write32(GICR_ICENABLER0, !0);
    gicr.write32(GICR_ICPENDR0, !0);
    gicr.write32(GICR_IGROUPR0, !0);
    for n in 0..32 {
        gicr.write8(GICR_IPRIORITYR + n, PRIORITY);
    }
    wait_clear(|| gicr.read32(GICR_CTLR), GICR_CTLR_RWP)?;
    gicr.write32(GICR_ISENABLER0, SGI_MASK);
    percpu::this().gicr.store(gicr.base, Ordering::Release);

    // SAFETY: CPU interface set-up: all priorities pass, no preemption
    // grouping, EOI both drops priority and deactivates, Group 1 on.
    unsafe {
        asm!(
            "msr ICC_PMR_EL1, {pmr}",
            "msr ICC_BPR1_EL1, xzr",
            "msr ICC_CTLR_EL1, xzr",
            "msr ICC_IGRPEN1_EL1, {one}",
            "isb",
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            options(nostack)
        )
    };
    Ok(())
}

/// This CPU's redistributor (SGI/PPI registers), once `init_cpu_v3` ran.
fn this_cpu_gicr() -> Option<Regs> {
    let base = percpu::this().gicr.load(Ordering::Acquire);
    // SAFETY: `base` was stored by `init_cpu_v3` from a frame pair inside
    // the mapped redistributor region.
    (base != 0).then(|| unsafe { Regs::new(base, GICR_FRAME_SIZE) })
}

impl Gic {
    /// Per-CPU part: this CPU's interface (and v3 redistributor), SGI/PPI
    /// state reset with the SGIs enabled. Only the first call on a CPU does
    /// anything (a later one must not mask PPIs unmasked since).
    pub(crate) fn init_this_cpu(&self) -> Result<(), GicError> {
        let me = percpu::this();
        if me.gicr.load(Ordering::Acquire) != 0 || me.gic_v2_mask.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        match self {
            Gic::V2 { gicd, gicc } => {
                init_cpu_v2(gicd, gicc);
                Ok(())
            }
            Gic::V3 {
                gicr_region,
                region_len,
                ..
            } => init_cpu_v3(gicr_region, *region_len),
        }
    }

    /// Raises SGI `sgi` (0-15) on the CPU with MPIDR affinity `hw_id`
    /// (Aff3 << 32 | Aff2 << 16 | Aff1 << 8 | Aff0). Earlier stores are
    /// made visible to the target first. On v2, a CPU that has not run
    /// `init_this_cpu` yet has no known interface and gets nothing.
    pub(crate) fn send_sgi(&self, hw_id: u64, sgi: u8) {
        let sgi = u64::from(sgi & 0xf);
        // SAFETY: barrier only: the target must see what we stored before
        // the IPI that tells it to look.
        unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
        match self {
            Gic::V2 { gicd, .. } => {
                let Some(cpu) = percpu::by_hw_id(hw_id) else {
                    return;
                };
                let mask = cpu.gic_v2_mask.load(Ordering::Acquire);
                if mask != 0 {
                    // TargetListFilter 0: the CPUs in CPUTargetList.
                    gicd.write32(GICD_SGIR, (u32::from(mask) << 16) | sgi as u32);
                }
            }
            Gic::V3 { .. } => {
                // ICC_SGI1R_EL1: Aff3 [55:48], RS [47:44] (which 16 Aff0
                // values), Aff2 [39:32], INTID [27:24], Aff1 [23:16],
                // TargetList [15:0] (one bit per Aff0 in the RS range).
                let aff0 = hw_id & 0xff;
                let v = (((hw_id >> 32) & 0xff) << 48)
                    | ((aff0 >> 4) << 44)
                    | (((hw_id >> 16) & 0xff) << 32)
                    | (sgi << 24)
                    | (((hw_id >> 8) & 0xff) << 16)
                    | (1 << (aff0 & 0xf));
                // SAFETY: ICC_SGI1R_EL1 write generates one Group 1 SGI.
                unsafe { asm!("msr ICC_SGI1R_EL1, {}", "isb", in(reg) v, options(nostack)) };
            }
        }
    }

    pub(crate) fn version(&self) -> u8 {
        match self {
            Gic::V2 { .. } => 2,
            Gic::V3 { .. } => 3,
        }
    }

    /// Acknowledges the highest-priority pending interrupt: (INTID, the raw
    /// value `eoi` needs).
    pub(crate) fn acknowledge(&self) -> (u32, u64) {
        match self {
            Gic::V2 { gicc, .. } => {
                let iar = gicc.read32(GICC_IAR);
                (iar & 0x3ff, iar as u64)
            }
            Gic::V3 { .. } => {
                let iar: u64;
                // SAFETY: reading ICC_IAR1_EL1 acknowledges the interrupt.
                unsafe { asm!("mrs {}, ICC_IAR1_EL1", out(reg) iar, options(nostack)) };
                ((iar & 0xff_ffff) as u32, iar)
            }
        }
    }

    /// Ends the interrupt `acknowledge` returned (priority drop + deactivate).
    pub(crate) fn eoi(&self, raw: u64) {
        match self {
            Gic::V2 { gicc, .. } => gicc.write32(GICC_EOIR, raw as u32),
            // SAFETY: writes the acknowledged INTID to ICC_EOIR1_EL1.
            Gic::V3 { .. } => unsafe {
                asm!("msr ICC_EOIR1_EL1, {}", "isb", in(reg) raw, options(nostack))
            },
        }
    }

    pub(crate) fn set_enabled(&self, intid: u32, enabled: bool) {
        if intid >= SPURIOUS_FIRST {
            return;
        }
        let bit = 1u32 << (intid % 32);
        let word = (intid / 32) as usize * 4;
        let (regs, set, clear) = match self {
            Gic::V3 { .. } if intid < 32 => match this_cpu_gicr() {
                Some(gicr) => (gicr, GICR_ISENABLER0, GICR_ICENABLER0),
                None => return,
            },
            Gic::V2 { gicd, .. } | Gic::V3 { gicd, .. } => {
                (*gicd, GICD_ISENABLER + word, GICD_ICENABLER + word)
            }
        };
        regs.write32(if enabled { set } else { clear }, bit);
    }
}
