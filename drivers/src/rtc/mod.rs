//! Battery-backed real-time clocks, read once at boot to give the kernel a
//! wall clock: the x86 CMOS RTC ([`cmos`]) and the Arm PL031 ([`pl031`]).
//!
//! Both report whole seconds. The pure parts (BCD, 12/24-hour decoding,
//! calendar → Unix seconds) live here and in [`cmos`] and are host-tested;
//! the sanity window [`MIN_YEAR`]..=[`MAX_YEAR`] rejects a clock that was
//! never set (counting from 1970) or garbage from an absent device.

pub mod cmos;
pub mod pl031;

/// Earliest year accepted as a real wall-clock reading.
pub const MIN_YEAR: u16 = 2000;
/// Latest year accepted as a real wall-clock reading.
pub const MAX_YEAR: u16 = 2200;

/// Why a real-time clock gave no usable time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcError {
    /// A register held a byte that is not valid BCD (e.g. 0xff: no device).
    BadBcd { register: u8, value: u8 },
    /// A calendar field outside its range (month 13, day 32, hour 24, ...).
    BadField { field: Field, value: u8 },
    /// A well-formed date outside [`MIN_YEAR`]..=[`MAX_YEAR`].
    YearOutOfRange { year: u16 },
    /// CMOS status register A holds the divider chain in reset (the clock
    /// is stopped) or reads as all ones (no device).
    NotRunning { status_a: u8 },
    /// The CMOS update-in-progress flag never cleared, or two reads never
    /// agreed: the device is absent or wedged.
    Unstable,
    /// The register window is smaller than the device's registers.
    WindowTooSmall,
    /// The PrimeCell identification registers do not say PL031.
    NotPl031,
}

/// A calendar field, named in [`RtcError::BadField`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
    Century,
}

/// A UTC calendar date and time as an RTC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: u16,
    /// 1..=12
    pub month: u8,
    /// 1..=days in month
    pub day: u8,
    /// 0..=23
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

pub fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl DateTime {
    /// Checks every field and the year window, then converts.
    pub fn unix_seconds(&self) -> Result<u64, RtcError> {
        let bad = |field, value| Err(RtcError::BadField { field, value });
        if !(1..=12).contains(&self.month) {
            return bad(Field::Month, self.month);
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return bad(Field::Day, self.day);
        }
        if self.hour > 23 {
            return bad(Field::Hour, self.hour);
        }
        if self.minute > 59 {
            return bad(Field::Minute, self.minute);
        }
        // 60 would be a leap second; RTCs do not produce one.
        if self.second > 59 {
            return bad(Field::Second, self.second);
        }
        if !(MIN_YEAR..=MAX_YEAR).contains(&self.year) {
            return Err(RtcError::YearOutOfRange { year: self.year });
        }
        let days = days_from_civil(self.year, self.month, self.day);
        Ok(days * 86_400
            + u64::from(self.hour) * 3600
            + u64::from(self.minute) * 60
            + u64::from(self.second))
    }

    /// The calendar date of `secs` after the Unix epoch (UTC).
    pub fn from_unix_seconds(secs: u64) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

/// Days from 1970-01-01 to `year-month-day` (year ≥ 1970, fields valid).
/// H. Hinnant's `days_from_civil`, restricted to non-negative results.
fn days_from_civil(year: u16, month: u8, day: u8) -> u64 {
    let y = u64::from(year) - u64::from(month <= 2);
    let era = y / 400;
    let yoe = y - era * 400;
    let m = u64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u16, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + u64::from(month <= 2)) as u16;
    (year, month, day)
}

/// Accepts a raw seconds-since-epoch reading (PL031) only if its year is in
/// the sanity window.
pub fn check_unix_seconds(secs: u64) -> Result<u64, RtcError> {
    let year = DateTime::from_unix_seconds(secs).year;
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        Ok(secs)
    } else {
        Err(RtcError::YearOutOfRange { year })
    }
}

/// `Display` of a Unix time as ISO 8601 UTC (`2026-11-23T15:40:02Z`).
pub struct Iso8601(pub u64);

impl core::fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let t = DateTime::from_unix_seconds(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn known_unix_times() {
        assert_eq!(dt(2000, 1, 1, 0, 0, 0).unix_seconds(), Ok(946_684_800));
        // 2000 is a leap year (divisible by 400).
        assert_eq!(dt(2000, 2, 29, 0, 0, 0).unix_seconds(), Ok(951_782_400));
        assert_eq!(dt(2000, 3, 1, 0, 0, 0).unix_seconds(), Ok(951_868_800));
        assert_eq!(dt(2024, 2, 29, 12, 0, 0).unix_seconds(), Ok(1_709_208_000));
        // `date -u -d 2026-11-23T15:40:02 +%s`
        assert_eq!(
            dt(2026, 11, 23, 15, 40, 2).unix_seconds(),
            Ok(1_795_448_402)
        );
        assert_eq!(dt(2038, 1, 19, 3, 14, 8).unix_seconds(), Ok(1 << 31));
        assert_eq!(
            dt(2106, 2, 7, 6, 28, 15).unix_seconds(),
            Ok(u32::MAX as u64)
        );
        assert_eq!(
            dt(2200, 12, 31, 23, 59, 59).unix_seconds(),
            Ok(7_289_654_399)
        );
    }

    #[test]
    fn leap_rules() {
        assert!(is_leap(2000) && is_leap(2024) && is_leap(2400));
        assert!(!is_leap(2100) && !is_leap(2026) && !is_leap(2200));
        // 2100 is not a leap year: Feb 29 is refused.
        assert_eq!(
            dt(2100, 2, 29, 0, 0, 0).unix_seconds(),
            Err(RtcError::BadField {
                field: Field::Day,
                value: 29
            })
        );
    }

    #[test]
    fn bad_fields_and_years_refused() {
        let e = |field, value| Err(RtcError::BadField { field, value });
        assert_eq!(dt(2026, 13, 1, 0, 0, 0).unix_seconds(), e(Field::Month, 13));
        assert_eq!(dt(2026, 0, 1, 0, 0, 0).unix_seconds(), e(Field::Month, 0));
        assert_eq!(dt(2026, 4, 31, 0, 0, 0).unix_seconds(), e(Field::Day, 31));
        assert_eq!(dt(2026, 4, 0, 0, 0, 0).unix_seconds(), e(Field::Day, 0));
        assert_eq!(dt(2026, 4, 1, 24, 0, 0).unix_seconds(), e(Field::Hour, 24));
        assert_eq!(
            dt(2026, 4, 1, 0, 60, 0).unix_seconds(),
            e(Field::Minute, 60)
        );
        assert_eq!(
            dt(2026, 4, 1, 0, 0, 60).unix_seconds(),
            e(Field::Second, 60)
        );
        assert_eq!(
            dt(1999, 12, 31, 23, 59, 59).unix_seconds(),
            Err(RtcError::YearOutOfRange { year: 1999 })
        );
        assert_eq!(
            dt(2201, 1, 1, 0, 0, 0).unix_seconds(),
            Err(RtcError::YearOutOfRange { year: 2201 })
        );
    }

    #[test]
    fn round_trip_every_day_2000_to_2200() {
        let start = dt(2000, 1, 1, 0, 0, 0).unix_seconds().unwrap();
        let end = dt(2200, 12, 31, 0, 0, 0).unix_seconds().unwrap();
        let mut s = start;
        let mut prev = dt(1999, 12, 31, 0, 0, 0);
        while s <= end {
            let d = DateTime::from_unix_seconds(s + 3723);
            assert_eq!(d.unix_seconds(), Ok(s + 3723));
            assert_eq!((d.hour, d.minute, d.second), (1, 2, 3));
            // Consecutive days are consecutive calendar dates.
            if d.day == 1 {
                assert_eq!(prev.day, days_in_month(prev.year, prev.month));
            } else {
                assert_eq!(d.day, prev.day + 1);
            }
            prev = d;
            s += 86_400;
        }
    }

    #[test]
    fn raw_seconds_window() {
        assert_eq!(check_unix_seconds(1_795_448_402), Ok(1_795_448_402));
        assert_eq!(
            check_unix_seconds(0),
            Err(RtcError::YearOutOfRange { year: 1970 })
        );
        assert_eq!(
            check_unix_seconds(946_684_799),
            Err(RtcError::YearOutOfRange { year: 1999 })
        );
        assert_eq!(check_unix_seconds(946_684_800), Ok(946_684_800));
    }

    #[test]
    fn iso8601() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Iso8601(1_795_448_402).to_string(), "2026-11-23T15:40:02Z");
        assert_eq!(Iso8601(0).to_string(), "1970-01-01T00:00:00Z");
    }
}
