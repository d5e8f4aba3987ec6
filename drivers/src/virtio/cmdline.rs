//! The `virtio_mmio.device=SIZE@ADDR:IRQ[:ID]` kernel parameter (Linux's
//! syntax), which QEMU's microvm passes for its virtio-mmio transports
//! when ACPI is off. SIZE takes a K/M/G suffix; ADDR and IRQ are C-style
//! numbers (0x hex or decimal).

/// One transport named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioSlot {
    pub base: u64,
    pub size: u64,
    /// An x86 GSI, or a GIC SPI number as the DT would give it.
    pub irq: u32,
}

/// Why a `virtio_mmio.device=` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    Syntax,
    /// Size 0, or base + size overflows.
    BadRange,
}

fn number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    number(digits)?.checked_mul(1 << shift)
}

/// Parses one value (`512@0xfeb00e00:12`).
pub fn parse_slot(value: &str) -> Result<MmioSlot, SlotError> {
    let (sz, rest) = value.split_once('@').ok_or(SlotError::Syntax)?;
    let mut parts = rest.split(':');
    let base = parts.next().and_then(number).ok_or(SlotError::Syntax)?;
    let irq = parts
        .next()
        .and_then(number)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(SlotError::Syntax)?;
    // An optional platform device id may follow; more is nonsense.
    if parts.nth(1).is_some() {
        return Err(SlotError::Syntax);
    }
    let size = size(sz).ok_or(SlotError::Syntax)?;
    if size == 0 || base.checked_add(size).is_none() {
        return Err(SlotError::BadRange);
    }
    Ok(MmioSlot { base, size, irq })
}

/// Every `virtio_mmio.device=` on `cmdline`, in order; malformed ones are
/// returned as errors so the caller can log them.
pub fn slots(cmdline: &str) -> impl Iterator<Item = Result<MmioSlot, SlotError>> + '_ {
    cmdline
        .split_ascii_whitespace()
        .take_while(|w| *w != "--")
        .filter_map(|w| w.strip_prefix("virtio_mmio.device="))
        .map(parse_slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_microvm_form() {
        // What QEMU 10's microvm appends for its first transports.
        let line = "console=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 \
                    virtio_mmio.device=512@0xfeb00c00:11 ktest=1 -- /bin/app virtio_mmio.device=1@2:3";
        let v: Vec<_> = slots(line).collect();
        assert_eq!(
            v,
            [
                Ok(MmioSlot {
                    base: 0xfeb0_0e00,
                    size: 512,
                    irq: 12
                }),
                Ok(MmioSlot {
                    base: 0xfeb0_0c00,
                    size: 512,
                    irq: 11
                }),
            ]
        );
    }

    #[test]
    fn suffixes_ids_and_garbage() {
        assert_eq!(
            parse_slot("4K@0x1000:5:3"),
            Ok(MmioSlot {
                base: 0x1000,
                size: 4096,
                irq: 5
            })
        );
        assert_eq!(parse_slot("1M@4096:0").unwrap().size, 1 << 20);
        assert_eq!(parse_slot("512@0x1000"), Err(SlotError::Syntax));
        assert_eq!(parse_slot("@0x1000:1"), Err(SlotError::Syntax));
        assert_eq!(parse_slot("512@zz:1"), Err(SlotError::Syntax));
        assert_eq!(parse_slot("512@0x1000:1:2:3"), Err(SlotError::Syntax));
        assert_eq!(parse_slot("0@0x1000:1"), Err(SlotError::BadRange));
        assert_eq!(
            parse_slot("4K@0xfffffffffffff000:1"),
            Err(SlotError::BadRange)
        );
        assert_eq!(parse_slot("99999999999G@0:1"), Err(SlotError::Syntax));
        assert_eq!(parse_slot("1@0:99999999999"), Err(SlotError::Syntax));
    }
}
