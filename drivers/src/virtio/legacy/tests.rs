//! Host tests of the legacy transport against a fake device behind a fake
//! I/O BAR that behaves like QEMU's legacy virtio PCI registers.

use super::*;
use crate::pci::fake::FakeConfig;
use crate::virtio::AnyTransport;
use skiff_hal::OutOfWindow;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// Device state behind the fake BAR.
#[derive(Default)]
struct Dev {
    host_features: u32,
    guest_features: u32,
    sizes: Vec<u16>,
    pfns: Vec<u32>,
    vectors: Vec<u16>,
    config_vector: u16,
    sel: u16,
    status: u8,
    isr: u8,
    notified: Vec<u16>,
    config: [u8; 32],
}

/// A legacy BAR0 of `len` bytes; MSI-X state comes from the same
/// configuration space the transport reads, as on a real device.
#[derive(Clone)]
struct FakeBar {
    dev: Arc<Mutex<Dev>>,
    len: usize,
    msix: Option<MsixCap>,
}

impl FakeBar {
    fn cfg_off(&self) -> usize {
        if self.msix.is_some_and(|m| m.enabled()) {
            0x18
        } else {
            0x14
        }
    }
    fn check(&self, off: usize, size: usize) -> Result<(), OutOfWindow> {
        if off + size > self.len || !off.is_multiple_of(size) {
            return Err(OutOfWindow { offset: off });
        }
        Ok(())
    }
    fn read(&self, off: usize, size: usize) -> Result<u32, OutOfWindow> {
        self.check(off, size)?;
        let mut d = self.dev.lock().unwrap();
        let sel = usize::from(d.sel);
        let c = self.cfg_off();
        let msix = self.msix.is_some_and(|m| m.enabled());
        Ok(match (off, size) {
            (0x00, 4) => d.host_features,
            (0x04, 4) => d.guest_features,
            (0x08, 4) => d.pfns.get(sel).copied().unwrap_or(0),
            (0x0c, 2) => u32::from(d.sizes.get(sel).copied().unwrap_or(0)),
            (0x0e, 2) => u32::from(d.sel),
            (0x12, 1) => u32::from(d.status),
            (0x13, 1) => u32::from(core::mem::take(&mut d.isr)),
            (0x14, 2) if msix => u32::from(d.config_vector),
            (0x16, 2) if msix => u32::from(d.vectors.get(sel).copied().unwrap_or(NO_VECTOR)),
            (o, n) if o >= c => {
                let mut v = 0u32;
                for i in 0..n {
                    v |= u32::from(d.config[o - c + i]) << (8 * i);
                }
                v
            }
            _ => panic!("fake: read of {size} bytes at {off:#x}"),
        })
    }
    fn write(&self, off: usize, size: usize, v: u32) -> Result<(), OutOfWindow> {
        self.check(off, size)?;
        let mut d = self.dev.lock().unwrap();
        let sel = usize::from(d.sel);
        let c = self.cfg_off();
        let msix = self.msix.is_some_and(|m| m.enabled());
        match (off, size) {
            (0x04, 4) => d.guest_features = v,
            (0x08, 4) => {
                if sel < d.pfns.len() {
                    d.pfns[sel] = v
                }
            }
            (0x0e, 2) => d.sel = v as u16,
            (0x10, 2) => d.notified.push(v as u16),
            (0x12, 1) => d.status = v as u8,
            (0x14, 2) if msix => d.config_vector = v as u16,
            (0x16, 2) if msix => {
                // Two vectors exist: anything else is refused.
                if sel < d.vectors.len() {
                    d.vectors[sel] = if v < 2 { v as u16 } else { NO_VECTOR };
                }
            }
            (o, n) if o >= c => {
                for i in 0..n {
                    d.config[o - c + i] = (v >> (8 * i)) as u8;
                }
            }
            _ => panic!("fake: write of {size} bytes at {off:#x}"),
        }
        Ok(())
    }
}

impl IoBar for FakeBar {
    fn len(&self) -> usize {
        self.len
    }
    fn read8(&self, o: usize) -> Result<u8, OutOfWindow> {
        self.read(o, 1).map(|v| v as u8)
    }
    fn read16(&self, o: usize) -> Result<u16, OutOfWindow> {
        self.read(o, 2).map(|v| v as u16)
    }
    fn read32(&self, o: usize) -> Result<u32, OutOfWindow> {
        self.read(o, 4)
    }
    fn write8(&self, o: usize, v: u8) -> Result<(), OutOfWindow> {
        self.write(o, 1, v.into())
    }
    fn write16(&self, o: usize, v: u16) -> Result<(), OutOfWindow> {
        self.write(o, 2, v.into())
    }
    fn write32(&self, o: usize, v: u32) -> Result<(), OutOfWindow> {
        self.write(o, 4, v)
    }
}

const BDF: Bdf = Bdf {
    bus: 0,
    device: 3,
    function: 0,
};
const MSIX_AT: u8 = 0x40;

/// A configuration space with an MSI-X capability at 0x40 (disabled).
fn msix_cap() -> (&'static FakeConfig, MsixCap) {
    let cfg: &'static FakeConfig = Box::leak(Box::default());
    cfg.add(BDF, 0x1af4, 0x1000, 0x02_00_00, [(0, 0); 6]);
    cfg.set(BDF, 0x40, 0x0002_0011);
    let cap = MsixCap {
        cfg,
        bdf: BDF,
        offset: MSIX_AT,
    };
    (cfg, cap)
}

fn set_msix(cfg: &FakeConfig, on: bool) {
    let v = cfg.get(BDF, 0x40);
    cfg.set(BDF, 0x40, if on { v | 1 << 31 } else { v & !(1 << 31) });
}

/// A net device (0x1000, subsystem 1) with queues of `sizes`.
fn net(sizes: &[u16], msix: Option<MsixCap>) -> (LegacyPci, FakeBar) {
    let bar = FakeBar {
        dev: Arc::new(Mutex::new(Dev {
            host_features: 0x7900_ffe7,
            sizes: sizes.to_vec(),
            pfns: vec![0; sizes.len()],
            vectors: vec![NO_VECTOR; sizes.len()],
            config_vector: NO_VECTOR,
            config: {
                let mut c = [0; 32];
                c[..12].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 0, 0, 0xdc, 0x05]);
                c
            },
            ..Dev::default()
        })),
        len: 0x20 + 0x10,
        msix,
    };
    let t = LegacyPci::new(Box::new(bar.clone()), 0x1000, 1, msix).unwrap();
    (t, bar)
}

#[test]
fn device_type_from_subsystem_id() {
    assert_eq!(transitional_type(0x1000, 1), Some(DeviceType::Network));
    assert_eq!(transitional_type(0x1001, 2), Some(DeviceType::Block));
    assert_eq!(
        transitional_type(0x1005, 4),
        Some(DeviceType::EntropySource)
    );
    // Modern-only ids, and subsystem ids that name no virtio type.
    assert_eq!(transitional_type(0x1041, 1), None);
    assert_eq!(transitional_type(0x1000, 0), None);
    assert_eq!(transitional_type(0x1000, 0xffff), None);
    let bar = FakeBar {
        dev: Arc::default(),
        len: 0x20,
        msix: None,
    };
    assert!(LegacyPci::new(Box::new(bar.clone()), 0x1041, 1, None).is_err());
    // A BAR too small for the header (with MSI-X: the vectors too).
    let small = FakeBar { len: 0x10, ..bar };
    assert!(LegacyPci::new(Box::new(small.clone()), 0x1000, 1, None).is_err());
    let (_, cap) = msix_cap();
    let header_only = FakeBar { len: 0x14, ..small };
    assert!(LegacyPci::new(Box::new(header_only.clone()), 0x1000, 1, None).is_ok());
    assert!(LegacyPci::new(Box::new(header_only), 0x1000, 1, Some(cap)).is_err());
}

#[test]
fn config_offset_moves_with_msix() {
    let (cfg, cap) = msix_cap();
    let (mut t, bar) = net(&[256, 256], Some(cap));
    assert_eq!(t.config_offset(), 0x14);
    assert_eq!(t.read_config_space::<u8>(0), Ok(0x52));
    assert_eq!(t.read_config_space::<u16>(10), Ok(0x05dc));
    set_msix(cfg, true);
    assert_eq!(t.config_offset(), 0x18);
    assert_eq!(t.read_config_space::<u8>(5), Ok(0x56));
    assert_eq!(t.read_config_space::<u16>(6), Ok(1));
    t.write_config_space::<u16>(12, 0xbeef).unwrap();
    assert_eq!(bar.dev.lock().unwrap().config[12..14], [0xef, 0xbe]);
    // The vectors are registers now, not config.
    assert_eq!(route_queues_to_msix(t.regs(), 1), Ok(2));
    assert_eq!(bar.dev.lock().unwrap().vectors, [1, 1]);
    assert_eq!(bar.dev.lock().unwrap().config_vector, NO_VECTOR);
    assert_eq!(
        route_queues_to_msix(t.regs(), 5),
        Err(RouteError::Refused { queue: 0 })
    );
    set_msix(cfg, false);
    assert_eq!(t.read_config_space::<u8>(0), Ok(0x52));
}

#[test]
fn config_reads_past_the_bar_fail() {
    let (cfg, cap) = msix_cap();
    let (t, _) = net(&[256, 256], Some(cap));
    // BAR 0x30 bytes, config at 0x14: 0x1c bytes of config.
    assert_eq!(t.read_config_space::<u32>(0x18), Ok(0));
    assert_eq!(
        t.read_config_space::<u32>(0x19),
        Err(Error::ConfigSpaceTooSmall)
    );
    assert_eq!(
        t.read_config_space::<u8>(0x1c),
        Err(Error::ConfigSpaceTooSmall)
    );
    assert_eq!(
        t.read_config_space::<u8>(usize::MAX),
        Err(Error::ConfigSpaceTooSmall)
    );
    set_msix(cfg, true);
    // Four bytes fewer with MSI-X.
    assert_eq!(t.read_config_space::<u32>(0x14), Ok(0));
    assert_eq!(
        t.read_config_space::<u32>(0x18),
        Err(Error::ConfigSpaceTooSmall)
    );
}

#[test]
fn features_are_32_bits() {
    let (mut t, bar) = net(&[256, 256], None);
    assert_eq!(t.read_device_features(), 0x7900_ffe7);
    // VERSION_1 (bit 32) and above cannot be written.
    t.write_driver_features((1 << 32) | (1 << 33) | 0x20 | 0x1);
    assert_eq!(bar.dev.lock().unwrap().guest_features, 0x21);
    assert!(t.requires_legacy_layout());
    assert_eq!(t.read_config_generation(), 0);
}

/// The legacy layout of a queue of `n` at page `pfn`.
fn layout(pfn: u64, n: u64) -> (u64, u64, u64) {
    let d = pfn * 4096;
    let a = d + 16 * n;
    (d, a, (a + 6 + 2 * n).next_multiple_of(4096))
}

#[test]
fn queue_of_the_device_size_is_set_by_pfn() {
    let (mut t, bar) = net(&[256, 256], None);
    assert_eq!(t.max_queue_size(1), 256);
    assert!(!t.queue_used(1));
    let (d, a, u) = layout(0x1234, 256);
    assert_eq!(u - d, 8192);
    t.queue_set(1, 256, d, a, u);
    assert!(!t.failed());
    assert_eq!(bar.dev.lock().unwrap().pfns, [0, 0x1234]);
    assert!(t.queue_used(1));
    t.notify(1);
    assert_eq!(bar.dev.lock().unwrap().notified, [1]);
    t.queue_unset(1);
    assert!(!t.queue_used(1));
}

#[test]
fn queue_size_mismatch_fails_the_device() {
    let (mut t, bar) = net(&[256, 256], None);
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let (d, a, u) = layout(0x1234, 16);
    t.queue_set(0, 16, d, a, u);
    assert!(t.failed());
    assert_eq!(bar.dev.lock().unwrap().pfns, [0, 0]);
    assert_eq!(t.get_status(), DeviceStatus::FAILED);
    // DRIVER_OK cannot revive it, nor may it be notified.
    t.finish_init();
    assert_eq!(t.get_status(), DeviceStatus::FAILED);
    t.notify(0);
    assert!(bar.dev.lock().unwrap().notified.is_empty());
    // A reset is still allowed.
    t.set_status(DeviceStatus::empty());
    assert_eq!(bar.dev.lock().unwrap().status, 0);
}

#[test]
fn queue_with_a_non_legacy_layout_fails() {
    let (mut t, bar) = net(&[256, 256], None);
    let (d, a, u) = layout(0x1234, 256);
    t.queue_set(0, 256, d, a, u + 4096);
    assert!(t.failed());
    let (mut t, _) = net(&[256, 256], None);
    t.queue_set(0, 256, d + 8, a + 8, u);
    assert!(t.failed());
    // A PFN beyond 32 bits.
    let (mut t, _) = net(&[8], None);
    let (d, a, u) = layout(1 << 32, 8);
    t.queue_set(0, 8, d, a, u);
    assert!(t.failed());
    assert_eq!(bar.dev.lock().unwrap().pfns, [0, 0]);
}

#[test]
fn bad_queue_sizes_read_as_no_queue() {
    let (mut t, _) = net(&[0, 100, 65535, 8], None);
    assert_eq!(t.max_queue_size(0), 0);
    assert_eq!(t.max_queue_size(1), 0);
    assert_eq!(t.max_queue_size(2), 0);
    assert_eq!(t.max_queue_size(3), 8);
    assert_eq!(t.max_queue_size(4), 0);
    assert_eq!(t.queue_count(), 0);
    let (t, _) = net(&[256, 256, 64], None);
    assert_eq!(t.queue_count(), 3);
}

#[test]
fn any_transport_checks_fixed_sizes() {
    let (t, bar) = net(&[256, 256], None);
    let mut any = AnyTransport::from(t);
    assert_eq!(any.fixed_queue_size(0), Some(256));
    assert_eq!(any.fixed_queue_size(2), Some(0));
    assert_eq!(any.check_queue_sizes("net", &[(0, 256), (1, 256)]), Ok(()));
    assert_eq!(bar.dev.lock().unwrap().status, 0);
    assert_eq!(
        any.check_queue_sizes("net", &[(0, 256), (1, 16)]),
        Err(crate::virtio::DeviceError::Init)
    );
    assert_eq!(bar.dev.lock().unwrap().status, 0x80);
}

#[test]
fn isr_read_acknowledges() {
    let (mut t, bar) = net(&[256, 256], None);
    bar.dev.lock().unwrap().isr = 1;
    assert!(ack_isr(t.regs()));
    assert_eq!(bar.dev.lock().unwrap().isr, 0);
    assert!(!ack_isr(t.regs()));
    bar.dev.lock().unwrap().isr = 3;
    assert_eq!(t.ack_interrupt().bits(), 3);
    assert_eq!(t.ack_interrupt().bits(), 0);
}

#[test]
fn drop_resets_the_device() {
    let (mut t, bar) = net(&[256, 256], None);
    t.set_status(DeviceStatus::ACKNOWLEDGE);
    assert_eq!(bar.dev.lock().unwrap().status, 1);
    drop(t);
    assert_eq!(bar.dev.lock().unwrap().status, 0);
}
