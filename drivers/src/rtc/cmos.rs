//! The PC CMOS real-time clock (MC146818 and compatibles) behind ports
//! 0x70 (index) / 0x71 (data).
//!
//! Reading follows the usual recipe: wait for status register A's
//! update-in-progress flag (UIP) to clear, read the time registers, and
//! repeat until two consecutive reads agree, so a read never straddles the
//! once-a-second update. Status register B says whether the registers are
//! BCD or binary and whether the hour is 12- or 24-hour (bit 7 of the hour
//! is then PM). The century comes from the register the ACPI FADT names
//! (`CENTURY`), else 20xx is assumed. The RTC is taken to run in UTC (what
//! QEMU, Firecracker and cloud hypervisors provide by default).

use super::{DateTime, Field, RtcError};
use skiff_hal::PortIo;

/// Index port; bit 7 of the value written masks NMI, so it is left clear.
pub const INDEX_PORT: u16 = 0x70;
pub const DATA_PORT: u16 = 0x71;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;

const STATUS_A_UIP: u8 = 1 << 7;
/// Status A divider-chain bits (6:4) of 0b11x hold the chain in reset, so
/// the clock is not running. An absent device reads 0xff, which is such a
/// value.
const DIVIDER_RESET: u8 = 0b110 << 4;
/// Status B: hours are 24-hour (else 12-hour with bit 7 = PM).
pub const STATUS_B_24H: u8 = 1 << 1;
/// Status B: registers are binary (else BCD).
pub const STATUS_B_BINARY: u8 = 1 << 2;
const HOUR_PM: u8 = 1 << 7;

/// First index past the clock and status registers (0x00..=0x0d); a FADT
/// century index must be at or past it and inside the 128-byte bank.
const FIRST_NVRAM: u8 = 0x0e;
const BANK_SIZE: u8 = 0x80;

/// Polls of status A waiting for UIP to clear. An update takes under 2 ms;
/// this bounds the wait on an absent device (which reads 0xff: UIP "set").
const UIP_POLL_LIMIT: u32 = 1 << 18;
/// Read pairs tried before giving up on two agreeing reads.
const READ_ATTEMPTS: u32 = 8;

/// The raw clock registers as read, before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registers {
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    /// The century register, when the FADT named one.
    pub century: Option<u8>,
    pub status_b: u8,
}

/// A packed BCD byte as binary, or None if either nibble is above 9.
pub fn bcd_to_binary(v: u8) -> Option<u8> {
    let (hi, lo) = (v >> 4, v & 0x0f);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

impl Registers {
    /// Decodes per status register B (BCD/binary, 12/24-hour) and checks
    /// the result (see [`DateTime::unix_seconds`]).
    pub fn decode(&self) -> Result<DateTime, RtcError> {
        let binary = self.status_b & STATUS_B_BINARY != 0;
        let h24 = self.status_b & STATUS_B_24H != 0;
        let num = |register: u8, v: u8| {
            if binary {
                Ok(v)
            } else {
                bcd_to_binary(v).ok_or(RtcError::BadBcd { register, value: v })
            }
        };
        let hour = if h24 {
            num(REG_HOURS, self.hours)?
        } else {
            // 12-hour: 12 AM is midnight, 12 PM is noon.
            let h = num(REG_HOURS, self.hours & !HOUR_PM)?;
            if !(1..=12).contains(&h) {
                return Err(RtcError::BadField {
                    field: Field::Hour,
                    value: self.hours,
                });
            }
            (h % 12) + if self.hours & HOUR_PM != 0 { 12 } else { 0 }
        };
        let year = num(REG_YEAR, self.year)?;
        if year > 99 {
            return Err(RtcError::BadField {
                field: Field::Year,
                value: year,
            });
        }
        let century = match self.century {
            Some(c) => {
                let c = num(REG_YEAR, c)?;
                if c > 99 {
                    return Err(RtcError::BadField {
                        field: Field::Century,
                        value: c,
                    });
                }
                c
            }
            None => 20,
        };
        Ok(DateTime {
            year: u16::from(century) * 100 + u16::from(year),
            month: num(REG_MONTH, self.month)?,
            day: num(REG_DAY, self.day)?,
            hour,
            minute: num(REG_MINUTES, self.minutes)?,
            second: num(REG_SECONDS, self.seconds)?,
        })
    }
}

/// The CMOS RTC over some [`PortIo`] that reaches ports 0x70/0x71.
pub struct Cmos<P: PortIo> {
    io: P,
    /// CMOS index of the century register (ACPI FADT `CENTURY`), if valid.
    century: Option<u8>,
}

impl<P: PortIo> Cmos<P> {
    /// `fadt_century` is the FADT `CENTURY` byte (0: none). An index that
    /// would land on a clock/status register or outside the first bank is
    /// ignored, as if absent.
    pub fn new(io: P, fadt_century: Option<u8>) -> Self {
        let century = fadt_century.filter(|&i| (FIRST_NVRAM..BANK_SIZE).contains(&i));
        Self { io, century }
    }

    fn read_reg(&self, index: u8) -> u8 {
        self.io.outb(INDEX_PORT, index);
        self.io.inb(DATA_PORT)
    }

    fn wait_not_updating(&self) -> Result<(), RtcError> {
        for _ in 0..UIP_POLL_LIMIT {
            let a = self.read_reg(REG_STATUS_A);
            if a & DIVIDER_RESET == DIVIDER_RESET {
                return Err(RtcError::NotRunning { status_a: a });
            }
            if a & STATUS_A_UIP == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(RtcError::Unstable)
    }

    fn read_once(&self) -> Result<Registers, RtcError> {
        self.wait_not_updating()?;
        Ok(Registers {
            seconds: self.read_reg(REG_SECONDS),
            minutes: self.read_reg(REG_MINUTES),
            hours: self.read_reg(REG_HOURS),
            day: self.read_reg(REG_DAY),
            month: self.read_reg(REG_MONTH),
            year: self.read_reg(REG_YEAR),
            century: self.century.map(|i| self.read_reg(i)),
            status_b: self.read_reg(REG_STATUS_B),
        })
    }

    /// Two agreeing reads of the clock registers.
    pub fn read_registers(&self) -> Result<Registers, RtcError> {
        let mut last = self.read_once()?;
        for _ in 0..READ_ATTEMPTS {
            let now = self.read_once()?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        Err(RtcError::Unstable)
    }

    /// The current time in seconds since the Unix epoch (UTC), checked.
    pub fn read_unix_seconds(&self) -> Result<u64, RtcError> {
        self.read_registers()?.decode()?.unix_seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
    extern crate std;
    use std::sync::Mutex;

    fn regs(status_b: u8, t: [u8; 6], century: Option<u8>) -> Registers {
        Registers {
            year: t[0],
            month: t[1],
            day: t[2],
            hours: t[3],
            minutes: t[4],
            seconds: t[5],
            century,
            status_b,
        }
    }

    fn date(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> DateTime {
        DateTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        }
    }

    #[test]
    fn bcd() {
        assert_eq!(bcd_to_binary(0x00), Some(0));
        assert_eq!(bcd_to_binary(0x59), Some(59));
        assert_eq!(bcd_to_binary(0x99), Some(99));
        assert_eq!(bcd_to_binary(0x1a), None);
        assert_eq!(bcd_to_binary(0xa1), None);
        assert_eq!(bcd_to_binary(0xff), None);
    }

    #[test]
    fn bcd_24h() {
        // QEMU's default: status B = 0x02 (BCD, 24-hour).
        let r = regs(0x02, [0x26, 0x11, 0x23, 0x15, 0x40, 0x02], None);
        assert_eq!(r.decode(), Ok(date(2026, 11, 23, 15, 40, 2)));
        assert_eq!(r.decode().unwrap().unix_seconds(), Ok(1_795_448_402));
    }

    #[test]
    fn binary_24h() {
        let r = regs(0x06, [26, 11, 23, 15, 40, 2], None);
        assert_eq!(r.decode(), Ok(date(2026, 11, 23, 15, 40, 2)));
    }

    #[test]
    fn twelve_hour_modes() {
        // BCD 12-hour: 12 AM = 00, 12 PM = 12, 3 PM = 15.
        let at = |hours, b| {
            regs(b, [0x26, 0x11, 0x23, hours, 0, 0], None)
                .decode()
                .map(|d| d.hour)
        };
        assert_eq!(at(0x12, 0x00), Ok(0));
        assert_eq!(at(0x01, 0x00), Ok(1));
        assert_eq!(at(0x11, 0x00), Ok(11));
        assert_eq!(at(0x80 | 0x12, 0x00), Ok(12));
        assert_eq!(at(0x80 | 0x03, 0x00), Ok(15));
        assert_eq!(at(0x80 | 0x11, 0x00), Ok(23));
        // Binary 12-hour.
        assert_eq!(at(0x80 | 11, STATUS_B_BINARY), Ok(23));
        assert_eq!(at(12, STATUS_B_BINARY), Ok(0));
        // Hour 0 or 13 does not exist on a 12-hour clock.
        assert!(at(0x00, 0x00).is_err());
        assert!(at(0x13, 0x00).is_err());
        // In 24-hour mode, bit 7 is not PM: 0x95 is hour 95, refused.
        assert_eq!(at(0x95, STATUS_B_24H), Ok(95));
        let r = regs(STATUS_B_24H, [0x26, 0x11, 0x23, 0x95, 0, 0], None);
        assert_eq!(
            r.decode().unwrap().unix_seconds(),
            Err(RtcError::BadField {
                field: Field::Hour,
                value: 95
            })
        );
    }

    #[test]
    fn century_register() {
        let r = regs(0x02, [0x99, 0x12, 0x31, 0x23, 0x59, 0x59], Some(0x19));
        assert_eq!(r.decode().unwrap().year, 1999);
        // ... which the sanity window refuses.
        assert_eq!(
            r.decode().unwrap().unix_seconds(),
            Err(RtcError::YearOutOfRange { year: 1999 })
        );
        let r = regs(0x02, [0x00, 0x01, 0x01, 0x00, 0x00, 0x00], Some(0x21));
        assert_eq!(r.decode().unwrap().year, 2100);
        let r = regs(0x02, [0x00, 0x01, 0x01, 0x00, 0x00, 0x00], Some(0xff));
        assert!(r.decode().is_err());
    }

    #[test]
    fn absent_device_reads_as_error() {
        // Nothing on the bus: every register reads 0xff.
        let r = regs(0xff, [0xff; 6], None);
        assert!(r.decode().is_err());
        let r = regs(0x02, [0xff; 6], None);
        assert!(r.decode().is_err());
    }

    /// A fake MC146818: registers, an index latch, UIP set for the first
    /// `uip_reads` reads of status A, and seconds that tick after `tick_at`
    /// register reads.
    struct FakeCmos {
        regs: Mutex<[u8; 128]>,
        index: AtomicU8,
        uip_reads: AtomicU32,
        reads: AtomicU32,
        tick_at: u32,
    }

    impl PortIo for &FakeCmos {
        fn inb(&self, port: u16) -> u8 {
            assert_eq!(port, DATA_PORT);
            let n = self.reads.fetch_add(1, Relaxed) + 1;
            let mut regs = self.regs.lock().unwrap();
            if n == self.tick_at {
                regs[REG_SECONDS as usize] = 0x03;
            }
            let i = self.index.load(Relaxed);
            if i == REG_STATUS_A && self.uip_reads.load(Relaxed) > 0 {
                self.uip_reads.fetch_sub(1, Relaxed);
                return STATUS_A_UIP | 0x26;
            }
            regs[i as usize]
        }
        fn outb(&self, port: u16, value: u8) {
            assert_eq!(port, INDEX_PORT);
            assert!(value < 0x80, "NMI mask bit set");
            self.index.store(value, Relaxed);
        }
    }

    fn fake(uip_reads: u32, tick_at: u32) -> FakeCmos {
        let mut r = [0u8; 128];
        r[REG_SECONDS as usize] = 0x02;
        r[REG_MINUTES as usize] = 0x40;
        r[REG_HOURS as usize] = 0x15;
        r[REG_DAY as usize] = 0x23;
        r[REG_MONTH as usize] = 0x11;
        r[REG_YEAR as usize] = 0x26;
        r[REG_STATUS_A as usize] = 0x26;
        r[REG_STATUS_B as usize] = 0x02;
        r[0x32] = 0x20;
        FakeCmos {
            regs: Mutex::new(r),
            index: AtomicU8::new(0),
            uip_reads: AtomicU32::new(uip_reads),
            reads: AtomicU32::new(0),
            tick_at,
        }
    }

    #[test]
    fn reads_after_uip_and_until_stable() {
        let f = fake(5, 3);
        let cmos = Cmos::new(&f, Some(0x32));
        // The seconds ticked during the first read: the agreed value is
        // the later one.
        assert_eq!(cmos.read_unix_seconds(), Ok(1_795_448_403));
    }

    #[test]
    fn bogus_century_index_ignored() {
        let f = fake(0, 0);
        // 0x09 is the year register itself: not a century register.
        let cmos = Cmos::new(&f, Some(0x09));
        assert_eq!(cmos.read_registers().unwrap().century, None);
        let cmos = Cmos::new(&f, Some(0x80));
        assert_eq!(cmos.read_registers().unwrap().century, None);
    }

    #[test]
    fn absent_or_stopped_clock_is_refused_at_once() {
        let f = fake(0, 0);
        f.regs.lock().unwrap().fill(0xff);
        assert_eq!(
            Cmos::new(&f, None).read_unix_seconds(),
            Err(RtcError::NotRunning { status_a: 0xff })
        );
        // One status read, not a poll loop.
        assert_eq!(f.reads.load(Relaxed), 1);
        f.regs.lock().unwrap()[REG_STATUS_A as usize] = 0x66;
        assert_eq!(
            Cmos::new(&f, None).read_unix_seconds(),
            Err(RtcError::NotRunning { status_a: 0x66 })
        );
    }

    #[test]
    fn stuck_uip_is_an_error() {
        let f = fake(u32::MAX, 0);
        assert_eq!(
            Cmos::new(&f, None).read_unix_seconds(),
            Err(RtcError::Unstable)
        );
    }
}
