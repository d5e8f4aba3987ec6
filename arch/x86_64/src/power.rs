//! Leaving the VM: `isa-debug-exit` on test boards, ACPI S5 as the platform
//! configured it from the FADT/DSDT, else a halt loop; reset through the
//! FADT reset register, port 0xCF9 or the keyboard controller.

use crate::{cpu, mm, port};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

/// QEMU `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: the VM exits with
/// status `(value << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

pub use skiff_arch_api::{AcpiReset, AcpiSleep};

static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);
static SLEEP: Mutex<Option<AcpiSleep>> = Mutex::new(None);
static RESET: Mutex<Option<AcpiReset>> = Mutex::new(None);

/// Test boards: make `exit` leave through `isa-debug-exit`.
pub fn enable_debug_exit() {
    DEBUG_EXIT.store(true, Ordering::Relaxed);
}

/// Configures ACPI S5 power-off (called by the platform from the FADT).
pub fn set_acpi_sleep(s: AcpiSleep) {
    *SLEEP.lock() = Some(s);
}

/// Configures the ACPI reset register (called by the platform).
pub fn set_acpi_reset(r: AcpiReset) {
    *RESET.lock() = Some(r);
}

fn write_reg(address: u64, is_port: bool, value: u8) {
    if is_port {
        if let Ok(p) = u16::try_from(address) {
            // SAFETY: the firmware named this register for exactly this write.
            unsafe { port::outb(p, value) };
        }
    } else if let Ok(va) = mm::map_mmio(address, 1) {
        // SAFETY: `va` maps the firmware-named register uncached.
        unsafe { core::ptr::write_volatile(va as *mut u8, value) };
    }
}

/// Leaves the VM with `code` visible to the host when the machine allows it.
pub fn exit(code: u8) -> ! {
    cpu::disable_interrupts();
    if DEBUG_EXIT.load(Ordering::Relaxed) {
        // SAFETY: the kernel enabled this because the command line says the
        // board has isa-debug-exit at 0xf4.
        unsafe { port::outl(DEBUG_EXIT_PORT, u32::from(code)) };
    }
    // A lock held by the interrupted context must not stop power-off.
    let sleep = SLEEP.try_lock().and_then(|s| *s);
    match sleep {
        Some(AcpiSleep::Pm1aControl { port: p, slp_typ }) => {
            let value = (u16::from(slp_typ & 7) << 10) | (1 << 13);
            // SAFETY: the FADT names this PM1a control port; SLP_TYP|SLP_EN
            // is the S5 request.
            unsafe { port::outw(p, value) };
        }
        Some(AcpiSleep::SleepControlReg {
            address,
            is_port,
            slp_typ,
        }) => {
            write_reg(address, is_port, ((slp_typ & 7) << 2) | (1 << 5));
        }
        None => {}
    }
    cpu::halt_forever()
}

/// Resets the machine: the FADT reset register, then the PCI reset port
/// 0xCF9, the keyboard controller, and finally a triple fault (machines such
/// as `microvm` without ACPI have neither port).
pub fn reset() -> ! {
    cpu::disable_interrupts();
    if let Some(r) = RESET.try_lock().and_then(|r| *r) {
        write_reg(r.address, r.is_port, r.value);
    }
    // SAFETY: 0xCF9 is the PCI reset control register (system reset, then
    // full reset); 0x64/0xFE is the keyboard controller's CPU reset pulse.
    unsafe {
        port::outb(0xcf9, 0x02);
        port::outb(0xcf9, 0x06);
        port::outb(0x64, 0xfe);
    }
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::new(0),
    };
    // SAFETY: we are resetting on purpose: with an empty IDT the breakpoint
    // cannot be delivered, nor the double fault that follows, so the CPU
    // shuts down (triple fault) and the platform resets it.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3", options(nomem, nostack));
    }
    cpu::halt_forever()
}
