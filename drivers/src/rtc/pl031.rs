//! Arm PrimeCell PL031 real-time clock (QEMU `virt`'s `arm,pl031`): RTCDR
//! is a free-running count of seconds, which Linux and QEMU keep as seconds
//! since the Unix epoch (UTC). Only read; the match/alarm logic is unused.

use super::RtcError;
pub use skiff_hal::Mmio;

/// Data register: current seconds.
const RTCDR: usize = 0x000;
/// PrimeCell peripheral id bytes 0 and 1: 0x31, 0x10 for a PL031.
const PERIPH_ID0: usize = 0xfe0;
const PERIPH_ID1: usize = 0xfe4;

/// Bytes of register space the driver touches (one PrimeCell page).
pub const REGISTER_SPAN: usize = 0x1000;

pub struct Pl031 {
    regs: Mmio,
}

impl Pl031 {
    /// Takes the PL031 at `regs` after checking its PrimeCell id.
    pub fn new(regs: Mmio) -> Result<Self, RtcError> {
        if regs.len() < REGISTER_SPAN {
            return Err(RtcError::WindowTooSmall);
        }
        let id0 = regs
            .read32(PERIPH_ID0)
            .map_err(|_| RtcError::WindowTooSmall)?;
        let id1 = regs
            .read32(PERIPH_ID1)
            .map_err(|_| RtcError::WindowTooSmall)?;
        if !is_pl031_id(id0, id1) {
            return Err(RtcError::NotPl031);
        }
        Ok(Self { regs })
    }

    /// The current time in seconds since the Unix epoch, checked against
    /// the sanity window.
    pub fn read_unix_seconds(&self) -> Result<u64, RtcError> {
        let secs = self
            .regs
            .read32(RTCDR)
            .map_err(|_| RtcError::WindowTooSmall)?;
        super::check_unix_seconds(u64::from(secs))
    }
}

/// Whether PeriphID0/1 identify a PL031 (part number 0x031, designer Arm).
pub fn is_pl031_id(id0: u32, id1: u32) -> bool {
    id0 & 0xff == 0x31 && id1 & 0xff == 0x10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primecell_id() {
        assert!(is_pl031_id(0x31, 0x10));
        // PL011's part number is 0x011.
        assert!(!is_pl031_id(0x11, 0x10));
        assert!(!is_pl031_id(0xffff_ffff, 0xffff_ffff));
    }
}
