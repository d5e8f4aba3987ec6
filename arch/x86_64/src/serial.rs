//! The arch's own before-anything console: COM1 (port 0x3f8), polled.
//!
//! Used for `early_print` (entry-path failures, register dumps, the kernel's
//! fallback before it opens its console). The kernel's real console is the
//! 16550 driver in `skiff-drivers`, on the same port.

use crate::port;

const COM1: u16 = 0x3f8;
const LSR: u16 = 5;
const LSR_THRE: u8 = 1 << 5;

/// Sets COM1 to 115200 8N1 with FIFOs on and interrupts off.
pub(crate) fn init_com1() {
    // SAFETY: COM1's registers are the standard 16550 block at 0x3f8; these
    // writes configure only that UART.
    unsafe {
        port::outb(COM1 + 1, 0x00); // IER: no interrupts
        port::outb(COM1 + 3, 0x80); // LCR: DLAB
        port::outb(COM1, 0x01); // DLL: 115200 baud
        port::outb(COM1 + 1, 0x00); // DLM
        port::outb(COM1 + 3, 0x03); // LCR: 8N1
        port::outb(COM1 + 2, 0xc7); // FCR: enable, clear, 14-byte threshold
        port::outb(COM1 + 4, 0x03); // MCR: DTR | RTS
    }
}

fn put_byte(b: u8) {
    // Bounded wait: a missing UART reads 0xff (THRE set), a wedged one must
    // not hang a panic path forever.
    for _ in 0..100_000 {
        // SAFETY: reading COM1's line status register has no side effects.
        if unsafe { port::inb(COM1 + LSR) } & LSR_THRE != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: writing COM1's transmit holding register sends one byte.
    unsafe { port::outb(COM1, b) };
}

/// Prints `s` on COM1, polled, `\n` as CR LF. Safe from any context.
pub fn early_print(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            put_byte(b'\r');
        }
        put_byte(b);
    }
}

/// `core::fmt::Write` over `early_print`, for register dumps.
pub(crate) struct EarlyWriter;

impl core::fmt::Write for EarlyWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        early_print(s);
        Ok(())
    }
}
