//! The arch's own polled console for the entry path and for panics: a PL011
//! transmitter at a virtual address the platform names once it has mapped
//! the firmware's console (`console_set_early_uart`). Until then output is
//! dropped: there is no safe UART address to guess on aarch64.

use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

/// VA of the PL011 register block, 0 = none yet.
static EARLY_UART: AtomicUsize = AtomicUsize::new(0);

const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Tells the arch where the (already mapped, Device memory) PL011 or SBSA
/// UART registers are, so `early_print` works from now on.
///
/// # Safety
/// `va` must map at least 4 KiB of PL011-compatible registers for the rest
/// of the kernel's life.
pub unsafe fn console_set_early_uart(va: usize) {
    EARLY_UART.store(va, Ordering::SeqCst);
}

fn put_byte(base: usize, b: u8) {
    // Bounded wait: a wedged UART must not hang a panic forever.
    for _ in 0..1_000_000 {
        let fr: u32;
        // SAFETY: `base` was vouched for by `console_set_early_uart`; FR is a
        // 32-bit register inside the block. A plain `ldr` keeps the access
        // decodable by a hypervisor emulating the UART (Xen's vpl011).
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) base + UARTFR, v = out(reg) fr, options(nostack))
        };
        if fr & FR_TXFF == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: as above; DR accepts 32-bit writes, the low byte is sent.
    unsafe {
        asm!("str {v:w}, [{a}]", a = in(reg) base + UARTDR, v = in(reg) b as u32, options(nostack))
    };
}

/// Prints `s` on the early UART, if one was named; `\n` becomes `\r\n`.
pub fn early_print(s: &str) {
    let base = EARLY_UART.load(Ordering::SeqCst);
    if base == 0 {
        return;
    }
    for b in s.bytes() {
        if b == b'\n' {
            put_byte(base, b'\r');
        }
        put_byte(base, b);
    }
}

/// `fmt::Write` over [`early_print`], for the trap handler's register dump.
pub(crate) struct EarlyWriter;

impl fmt::Write for EarlyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        early_print(s);
        Ok(())
    }
}
