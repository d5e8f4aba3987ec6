//! The 16550 UART family (x86 COM ports, MMIO 16550s named by SPCR or the
//! device tree), polled: 115200 8N1 with FIFOs, transmit waits on LSR.THRE,
//! receive checks LSR.DR. Generic over [`ByteRegisters`], so the same driver
//! runs behind port I/O or MMIO.

use super::Uart;
pub use skiff_hal::{ByteRegisters, Mmio, MmioRegisters, PortIo, PortRegisters};

// Register indices (DLAB = 0 unless noted).
const RBR_THR: usize = 0; // receive buffer / transmit holding; DLL with DLAB
const IER: usize = 1; // interrupt enable; DLM with DLAB
const FCR: usize = 2; // FIFO control (write)
const LCR: usize = 3; // line control
const MCR: usize = 4; // modem control
const LSR: usize = 5; // line status
const SCR: usize = 7; // scratch

const LCR_DLAB: u8 = 1 << 7;
const LCR_8N1: u8 = 0b11;
const FCR_ENABLE_CLEAR_14: u8 = 0xc7;
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
const LSR_DR: u8 = 1 << 0;
const LSR_THRE: u8 = 1 << 5;

/// The 1.8432 MHz reference divided by 16: divisor 1 gives 115200 baud.
const BASE_BAUD: u32 = 115_200;

/// How many LSR polls `put_byte` makes before giving up on a byte: a UART
/// that never drains (or is absent) must not hang the console forever.
const TX_SPIN_LIMIT: u32 = 1_000_000;

/// Why a 16550 could not be initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// The scratch register did not hold a written value: no UART there.
    NotPresent,
    /// The requested baud rate cannot be produced from the 115200 base.
    BadBaudRate,
}

/// A polled 16550 behind byte registers `R`.
pub struct Uart16550<R: ByteRegisters> {
    regs: R,
}

impl<R: ByteRegisters> Uart16550<R> {
    /// Wraps the registers without touching the device (for a UART firmware
    /// already set up, or before `init`).
    pub const fn new(regs: R) -> Self {
        Self { regs }
    }

    /// Checks the UART is there (scratch register) and programs it for
    /// `baud` 8N1, FIFOs on, interrupts off.
    pub fn init(&self, baud: u32) -> Result<(), InitError> {
        self.regs.write(SCR, 0x5a);
        if self.regs.read(SCR) != 0x5a {
            return Err(InitError::NotPresent);
        }
        if baud == 0 || !BASE_BAUD.is_multiple_of(baud) {
            return Err(InitError::BadBaudRate);
        }
        let divisor = BASE_BAUD / baud;
        let Ok(divisor) = u16::try_from(divisor) else {
            return Err(InitError::BadBaudRate);
        };
        self.regs.write(IER, 0);
        self.regs.write(LCR, LCR_DLAB);
        self.regs.write(RBR_THR, divisor as u8);
        self.regs.write(IER, (divisor >> 8) as u8);
        self.regs.write(LCR, LCR_8N1);
        self.regs.write(FCR, FCR_ENABLE_CLEAR_14);
        self.regs.write(MCR, MCR_DTR_RTS_OUT2);
        Ok(())
    }

    /// Programs 115200 8N1, the console default.
    pub fn init_default(&self) -> Result<(), InitError> {
        self.init(BASE_BAUD)
    }
}

impl<R: ByteRegisters> Uart for Uart16550<R> {
    fn put_byte(&self, byte: u8) {
        for _ in 0..TX_SPIN_LIMIT {
            if self.regs.read(LSR) & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        self.regs.write(RBR_THR, byte);
    }

    fn get_byte(&self) -> Option<u8> {
        (self.regs.read(LSR) & LSR_DR != 0).then(|| self.regs.read(RBR_THR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A register file that behaves like an idle 16550 and logs writes.
    struct Fake {
        regs: Mutex<[u8; 8]>,
        written: Mutex<Vec<(usize, u8)>>,
        rx: Mutex<Vec<u8>>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                regs: Mutex::new([0; 8]),
                written: Mutex::new(Vec::new()),
                rx: Mutex::new(Vec::new()),
            }
        }
    }

    impl ByteRegisters for &Fake {
        fn read(&self, reg: usize) -> u8 {
            match reg {
                LSR => {
                    let dr = if self.rx.lock().unwrap().is_empty() {
                        0
                    } else {
                        LSR_DR
                    };
                    LSR_THRE | dr
                }
                RBR_THR => self.rx.lock().unwrap().pop().unwrap_or(0),
                r => self.regs.lock().unwrap()[r],
            }
        }
        fn write(&self, reg: usize, value: u8) {
            self.regs.lock().unwrap()[reg] = value;
            self.written.lock().unwrap().push((reg, value));
        }
    }

    #[test]
    fn init_programs_115200_8n1_with_fifo() {
        let fake = Fake::new();
        let uart = Uart16550::new(&fake);
        uart.init_default().unwrap();
        let w = fake.written.lock().unwrap().clone();
        let dlab = w
            .iter()
            .position(|&(r, v)| r == LCR && v == LCR_DLAB)
            .unwrap();
        assert_eq!(w[dlab + 1], (RBR_THR, 1));
        assert_eq!(w[dlab + 2], (IER, 0));
        assert!(w.contains(&(LCR, LCR_8N1)));
        assert!(w.contains(&(FCR, FCR_ENABLE_CLEAR_14)));
    }

    #[test]
    fn init_rejects_missing_uart_and_odd_baud() {
        struct Absent;
        impl ByteRegisters for Absent {
            fn read(&self, _: usize) -> u8 {
                0xff
            }
            fn write(&self, _: usize, _: u8) {}
        }
        assert_eq!(
            Uart16550::new(Absent).init_default(),
            Err(InitError::NotPresent)
        );
        let fake = Fake::new();
        assert_eq!(Uart16550::new(&fake).init(7), Err(InitError::BadBaudRate));
    }

    #[test]
    fn write_str_sends_crlf_and_rx_reads_when_ready() {
        let fake = Fake::new();
        let uart = Uart16550::new(&fake);
        uart.write_str("a\n");
        let sent: Vec<u8> = fake
            .written
            .lock()
            .unwrap()
            .iter()
            .filter(|&&(r, _)| r == RBR_THR)
            .map(|&(_, v)| v)
            .collect();
        assert_eq!(sent, b"a\r\n");
        assert_eq!(uart.get_byte(), None);
        fake.rx.lock().unwrap().push(b'x');
        assert_eq!(uart.get_byte(), Some(b'x'));
    }
}
