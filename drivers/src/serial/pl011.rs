//! Arm PL011 UART and its subset, the SBSA generic UART (Xen's `vpl011`,
//! server firmware consoles). Polled: transmit waits for room in the FIFO
//! (FR.TXFF clear), receive reads while the FIFO is not empty (FR.RXFE
//! clear). Interrupts stay masked.
//!
//! The line settings (baud rate, framing) are the firmware's: an SBSA UART
//! has no registers for them, and on a full PL011 the firmware or
//! hypervisor already chose them for its console.

use super::Uart;
/// Re-exported so the platform probe can build the register window.
pub use skiff_hal::Mmio;

const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const UARTCR: usize = 0x30;
const UARTIMSC: usize = 0x38;
const UARTICR: usize = 0x44;

const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;

/// Bytes of register space the driver touches.
pub const REGISTER_SPAN: usize = 0x1000;

/// How long `put_byte` waits for FIFO room before dropping the byte, in
/// polls of FR (a wedged or absent UART must not hang the kernel).
const TX_POLL_LIMIT: u32 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pl011Kind {
    /// A full PL011 (DT `arm,pl011`): has UARTCR.
    Pl011,
    /// SBSA generic UART (DT `arm,sbsa-uart`): DR/FR/IMSC/ICR only.
    Sbsa,
}

/// Why a PL011 could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pl011Error {
    /// The register window is smaller than the PL011's registers.
    WindowTooSmall,
}

pub struct Pl011 {
    regs: Mmio,
}

impl Pl011 {
    /// Takes over the UART at `regs`: masks its interrupts and, on a full
    /// PL011, makes sure the transmitter and receiver are enabled.
    pub fn new(regs: Mmio, kind: Pl011Kind) -> Result<Self, Pl011Error> {
        if regs.len() < UARTICR + 4 {
            return Err(Pl011Error::WindowTooSmall);
        }
        let uart = Self { regs };
        uart.write(UARTIMSC, 0);
        uart.write(UARTICR, 0x7ff);
        if kind == Pl011Kind::Pl011 {
            let cr = uart.read(UARTCR);
            let want = CR_UARTEN | CR_TXE | CR_RXE;
            if cr & want != want {
                uart.write(UARTCR, cr | want);
            }
        }
        Ok(uart)
    }

    fn read(&self, off: usize) -> u32 {
        // The window was checked in `new` to hold every register used.
        self.regs.read32(off).unwrap_or(0)
    }

    fn write(&self, off: usize, v: u32) {
        let _ = self.regs.write32(off, v);
    }
}

impl Uart for Pl011 {
    fn put_byte(&self, byte: u8) {
        for _ in 0..TX_POLL_LIMIT {
            if self.read(UARTFR) & FR_TXFF == 0 {
                self.write(UARTDR, byte as u32);
                return;
            }
            core::hint::spin_loop();
        }
    }

    fn get_byte(&self) -> Option<u8> {
        if self.read(UARTFR) & FR_RXFE != 0 {
            return None;
        }
        Some(self.read(UARTDR) as u8)
    }
}
