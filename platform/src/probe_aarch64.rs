//! Where am I, on aarch64: reads the device tree, opens its `stdout-path`
//! UART, names the PSCI conduit to the arch, gathers the detection signals
//! (DT `/hypervisor`, root `compatible`, SMCCC vendor hypervisor UID), picks
//! the generic timer's virtual counter as the clock, brings up the GIC and
//! reads the wall clock from the DT's PL031 RTC.

use crate::bootinfo::{BootInfo, PhysMemory};
use crate::detect::{self, Signals};
use crate::firmware::dt::{self, DeviceTree};
use crate::firmware::{InterruptModel, PsciConduit, UartKind};
use crate::Platform;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};
use skiff_arch_aarch64 as arch;
use skiff_arch_api::InterruptControllers;
use skiff_drivers::rtc::{self, pl031::Pl031};
use skiff_drivers::serial::pl011::{Mmio, Pl011, Pl011Kind, REGISTER_SPAN};
use skiff_drivers::serial::uart16550::{MmioRegisters, Uart16550};
use skiff_drivers::serial::Uart;

/// SMCCC `ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID` (fast call, 32-bit,
/// vendor-specific hypervisor service, function 0xff01).
const SMCCC_VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;
/// SMCCC NOT_SUPPORTED as the 32-bit value in w0.
const SMCCC_NOT_SUPPORTED: u32 = 0xffff_ffff;

/// Physical memory through the arch's direct map.
pub struct PhysMem;

impl PhysMemory for PhysMem {
    fn read(&self, pa: u64, len: usize) -> Option<&[u8]> {
        arch::mm::phys_slice(pa, len)
    }
}

/// A value set once and then only read (this crate has no `spin`
/// dependency; see the report to the platform owner).
struct Once<T> {
    /// 0 empty, 1 being written, 2 ready.
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, before `state` becomes 2 (Release), and
// only read after `state` is seen as 2 (Acquire); never mutated after.
unsafe impl<T: Send + Sync> Sync for Once<T> {}

impl<T> Once<T> {
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == 2 {
            // SAFETY: state 2 means the value was fully written (see `Sync`).
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    fn call_once(&self, f: impl FnOnce() -> T) -> &T {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: winning the 0 → 1 exchange gives exclusive access to
            // the empty slot; nobody reads it before state 2.
            unsafe { (*self.value.get()).write(f()) };
            self.state.store(2, Ordering::Release);
        }
        loop {
            if let Some(v) = self.get() {
                return v;
            }
            core::hint::spin_loop();
        }
    }
}

/// The device tree, read once (the console needs it before `init`).
static DEVICE_TREE: Once<Option<DeviceTree>> = Once::new();
static CONSOLE: Once<Pl011> = Once::new();
/// An MMIO 16550 console (Firecracker's aarch64 serial port is one).
static CONSOLE_16550: Once<Uart16550<MmioRegisters>> = Once::new();

fn device_tree(boot: &BootInfo) -> Option<&'static DeviceTree> {
    DEVICE_TREE
        .call_once(|| {
            let range = boot.dtb.clone()?;
            let len = usize::try_from(range.end.checked_sub(range.start)?).ok()?;
            let bytes = arch::mm::phys_slice(range.start, len)?;
            dt::read(bytes, arch::sysreg::mpidr_affinity()).ok()
        })
        .as_ref()
}

/// The DT `stdout-path` UART (PL011, SBSA UART or an MMIO 16550), mapped
/// and ready. A PL011 also becomes the arch's early console, so panics print
/// from here on.
pub fn console(boot: &BootInfo) -> Option<&'static dyn Uart> {
    if let Some(uart) = CONSOLE.get() {
        return Some(uart);
    }
    if let Some(uart) = CONSOLE_16550.get() {
        return Some(uart);
    }
    let dt = device_tree(boot)?;
    let uart = dt.firmware.console?;
    let va = arch::mm::map_mmio(uart.base, REGISTER_SPAN).ok()?;
    // SAFETY: `map_mmio` just mapped `REGISTER_SPAN` bytes of the UART's
    // registers as Device memory; MMIO mappings are never removed.
    let regs = unsafe { Mmio::new(va, REGISTER_SPAN) };
    match uart.kind {
        UartKind::Pl011 => {
            let kind = if dt.console_sbsa {
                Pl011Kind::Sbsa
            } else {
                Pl011Kind::Pl011
            };
            let pl011 = Pl011::new(regs, kind).ok()?;
            let pl011 = CONSOLE.call_once(|| pl011);
            // SAFETY: the same mapping, PL011-compatible and permanent.
            unsafe { arch::console_set_early_uart(va) };
            Some(pl011)
        }
        UartKind::Ns16550Mmio => {
            // The firmware (or VMM) set the line up; it is used as found.
            let regs = MmioRegisters {
                mmio: regs,
                stride: uart.stride.max(1) as usize,
            };
            Some(CONSOLE_16550.call_once(|| Uart16550::new(regs)))
        }
        UartKind::Ns16550Port => None,
    }
}

/// The SMCCC vendor hypervisor UID. Asked only when the DT names HVC as the
/// PSCI conduit (as Linux does: with SMC there is no hypervisor below us to
/// answer). A hypervisor that does not implement the call may inject an
/// undefined-instruction exception (Xen 4.17 does); the arch catches it and
/// that reads as "no answer".
fn smccc_hyp_uid(conduit: Option<PsciConduit>) -> Option<[u32; 4]> {
    if conduit != Some(PsciConduit::Hvc) {
        return None;
    }
    let r = arch::power::smccc_call_guarded(
        arch::power::PsciConduit::Hvc,
        SMCCC_VENDOR_HYP_CALL_UID,
        [0; 3],
    )?;
    let uid = [r[0] as u32, r[1] as u32, r[2] as u32, r[3] as u32];
    (uid[0] != SMCCC_NOT_SUPPORTED).then_some(uid)
}

/// Why there is no wall clock (the `reason=` of `wall_clock=none`).
#[derive(Debug)]
enum NoWallClock {
    /// No enabled `arm,pl031` node (e.g. a Xen guest).
    NoPl031InDt,
    Map(skiff_arch_api::MapError),
    Pl031(rtc::RtcError),
}

impl core::fmt::Display for NoWallClock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoWallClock::NoPl031InDt => f.write_str("no-pl031-in-dt"),
            NoWallClock::Map(e) => write!(f, "map-{e:?}"),
            NoWallClock::Pl031(e) => write!(f, "pl031-{e:?}"),
        }
    }
}

/// Reads the PL031 at `pl031` (from the DT) once and logs the
/// `platform: wall_clock=` line.
fn read_wall_clock(pl031: Option<u64>) -> Option<crate::WallClock> {
    let read = || -> Result<crate::WallClock, NoWallClock> {
        let base = pl031.ok_or(NoWallClock::NoPl031InDt)?;
        let span = rtc::pl031::REGISTER_SPAN;
        let va = arch::mm::map_mmio(base, span).map_err(NoWallClock::Map)?;
        // SAFETY: `map_mmio` just mapped `span` bytes of the PL031's
        // registers as Device memory; MMIO mappings are never removed.
        let regs = unsafe { Mmio::new(va, span) };
        let rtc = Pl031::new(regs).map_err(NoWallClock::Pl031)?;
        let secs = rtc.read_unix_seconds().map_err(NoWallClock::Pl031)?;
        Ok(crate::WallClock {
            source: "pl031",
            unix_seconds: secs,
            counter: arch::cpu::counter(),
        })
    };
    match read() {
        Ok(w) => {
            log::info!(
                "platform: wall_clock={} unix={} utc={}",
                w.source,
                w.unix_seconds,
                rtc::Iso8601(w.unix_seconds)
            );
            Some(w)
        }
        Err(e) => {
            log::warn!("platform: wall_clock=none reason={e}");
            None
        }
    }
}

/// Reads the firmware, decides the hypervisor, sets up the clock and the
/// interrupt controller, and returns what the platform line prints.
pub fn init(boot: &BootInfo) -> Platform {
    let dt = device_tree(boot).cloned().unwrap_or_default();
    let fw = dt.firmware;

    if let Some(c) = fw.psci {
        arch::power::set_psci_conduit(match c {
            PsciConduit::Hvc => arch::power::PsciConduit::Hvc,
            PsciConduit::Smc => arch::power::PsciConduit::Smc,
        });
    }

    let signals = Signals {
        dt_hypervisor: fw.dt_hypervisor,
        dt_model: fw.dt_model,
        smccc_hyp_uid: smccc_hyp_uid(fw.psci),
        // Firecracker's machine: virtio-mmio devices only, no PCI.
        firecracker_shape: dt.virtio_mmio > 0 && fw.ecam.is_empty(),
        ..Signals::default()
    };
    let detection = detect::decide(&signals);
    log::info!("{detection}");

    let counter_hz = arch::timer::counter_frequency()
        .or(dt.timer_frequency)
        .unwrap_or(0);
    arch::timer::set_counter_frequency(counter_hz);

    if let Some(InterruptModel::Gic {
        version,
        gicd_phys,
        gicc_or_gicr_phys,
        gicc_or_gicr_len,
    }) = fw.interrupts
    {
        let ctrl = InterruptControllers::Gic {
            version,
            gicd_phys,
            gicc_or_gicr_phys,
            gicc_or_gicr_len,
        };
        match arch::irq::init(&ctrl) {
            Ok(()) => log::info!("irq: gic=v{version} gicd={gicd_phys:#x}"),
            Err(e) => log::warn!("irq: init failed gic=v{version} error={e:?}"),
        }
        arch::timer::set_irq(
            fw.timer_irq
                .unwrap_or(arch::timer::DEFAULT_VIRTUAL_TIMER_INTID),
        );
    }

    let wall_clock_at_boot = read_wall_clock(dt.rtc_pl031);
    Platform {
        arch: "aarch64",
        hypervisor: detection.hypervisor,
        firmware: "dt",
        clock: "cntvct",
        counter_hz,
        cpus: (fw.cpus.len() as u32).max(1),
        mem_bytes: boot.usable_bytes(),
        firmware_info: fw,
        wall_clock_at_boot,
    }
}
