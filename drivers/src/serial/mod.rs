//! Serial consoles: the 16550 family (x86 COM ports, MMIO 16550s from SPCR or
//! the DT) and the Arm PL011.

pub mod pl011;
pub mod uart16550;

/// A polled byte-oriented console.
pub trait Uart: Send + Sync {
    fn put_byte(&self, byte: u8);
    /// A byte if one is waiting.
    fn get_byte(&self) -> Option<u8>;

    fn write_str(&self, s: &str) {
        for b in s.bytes() {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
    }
}
