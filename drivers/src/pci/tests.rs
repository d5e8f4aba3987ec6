use super::fake::FakeConfig;
use super::*;

const fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf {
        bus,
        device,
        function,
    }
}

#[test]
fn header_decoding() {
    // virtio-net (modern), class 02:00.00, multifunction bit set.
    let h = Header::decode(0x1041_1af4, 0x0200_0001, 0x0080_0000).unwrap();
    assert_eq!((h.vendor, h.device), (0x1af4, 0x1041));
    assert_eq!((h.class, h.subclass, h.prog_if, h.revision), (2, 0, 0, 1));
    assert!(h.multifunction);
    assert_eq!(h.header_type, 0);
    assert!(Header::decode(0xffff_ffff, 0, 0).is_none());
    assert!(Header::decode(0x1234_0000, 0, 0).is_none());
}

#[test]
fn bar_size_arithmetic() {
    assert_eq!(bar_size(0xffff_c000, 0xf, 0xffff_ffff), Ok(0x4000));
    assert_eq!(bar_size(0xffff_ffe1, 0x3, 0xffff), Ok(0x20));
    assert_eq!(bar_size(0xffff_ffff_ffff_c00c, 0xf, u64::MAX), Ok(0x4000));
    assert_eq!(
        bar_size(0xffff_fff0_0000_000c, 0xf, u64::MAX),
        Ok(0x10_0000_0000)
    );
    assert_eq!(bar_size(0, 0xf, 0xffff_ffff), Ok(0));
    // Holes in the mask: a lying device.
    assert!(bar_size(0xff0f_c000, 0xf, 0xffff_ffff).is_err());
    assert!(bar_size(0x0fff_c000, 0xf, 0xffff_ffff).is_err());
}

#[test]
fn sizes_bars_and_restores_them() {
    let cfg = FakeConfig::default();
    let d = bdf(0, 2, 0);
    // BAR0 I/O 32 bytes, BAR1 mem32 4 KiB, BAR4/5 mem64 prefetchable 16 KiB.
    cfg.add(
        d,
        0x1af4,
        0x1000,
        0x02_00_00,
        [
            (0x1, 0xffff_ffe0),
            (0x0, 0xffff_f000),
            (0, 0),
            (0, 0),
            (0xc, 0xffff_c000),
            (0, 0xffff_ffff),
        ],
    );
    cfg.set(d, reg::COMMAND_STATUS, 0x3);
    cfg.set(d, reg::BAR0 + 4, 0xfebf_1000);
    let bars = read_bars(&cfg, d, 6).unwrap();
    assert_eq!(bars.len(), 3);
    assert_eq!((bars[0].kind, bars[0].size), (BarKind::Io, 32));
    assert_eq!(
        (bars[1].kind, bars[1].size, bars[1].address),
        (BarKind::Mem32, 4096, 0xfebf_1000)
    );
    assert_eq!(
        (bars[2].index, bars[2].kind, bars[2].size),
        (4, BarKind::Mem64, 0x4000)
    );
    assert!(bars[2].prefetchable);
    // Original values and the command register are back.
    assert_eq!(cfg.get(d, reg::BAR0 + 4), 0xfebf_1000);
    assert_eq!(cfg.get(d, reg::COMMAND_STATUS) & 0xffff, 0x3);
    write_bar(&cfg, d, &bars[2], 0x80_0000_4000);
    assert_eq!(cfg.get(d, reg::BAR0 + 16), 0x0000_400c);
    assert_eq!(cfg.get(d, reg::BAR0 + 20), 0x80);
}

#[test]
fn mem64_in_last_slot_is_refused() {
    let cfg = FakeConfig::default();
    let d = bdf(0, 3, 0);
    let mut bars = [(0, 0); 6];
    bars[5] = (0x4, 0xffff_c000);
    cfg.add(d, 0x1234, 0x1, 0, bars);
    assert_eq!(
        read_bars(&cfg, d, 6),
        Err(BarError::TruncatedMem64 { index: 5 })
    );
}

#[test]
fn allocator_stays_in_windows_and_aligns() {
    let windows = [
        Window {
            kind: WindowKind::Io,
            prefetchable: false,
            cpu_base: 0x3eff_0000,
            pci_base: 0,
            size: 0x1_0000,
        },
        Window {
            kind: WindowKind::Mem32,
            prefetchable: false,
            cpu_base: 0x1000_0000,
            pci_base: 0x1000_0000,
            size: 0x10_0000,
        },
        Window {
            kind: WindowKind::Mem64,
            prefetchable: true,
            cpu_base: 0x80_0000_0000,
            pci_base: 0x80_0000_0000,
            size: 0x1_0000,
        },
    ];
    let mut a = BarAllocator::new(&windows);
    // I/O never gets bus address 0.
    assert_eq!(a.allocate(BarKind::Io, 0x20), Ok(0x20));
    assert_eq!(a.allocate(BarKind::Mem32, 0x100), Ok(0x1000_0000));
    assert_eq!(a.allocate(BarKind::Mem32, 0x4000), Ok(0x1000_4000));
    assert_eq!(a.allocate(BarKind::Mem64, 0x4000), Ok(0x80_0000_0000));
    assert_eq!(a.allocate(BarKind::Mem64, 0x8000), Ok(0x80_0000_8000));
    // 64-bit window full: falls back to the 32-bit window.
    assert_eq!(a.allocate(BarKind::Mem64, 0x4000), Ok(0x1000_8000));
    // Too big for anything.
    assert_eq!(
        a.allocate(BarKind::Mem32, 0x100_0000),
        Err(NoSpace { size: 0x100_0000 })
    );
    assert!(
        a.allocate(BarKind::Mem32, 0x3000).is_err(),
        "not a power of two"
    );
    assert_eq!(windows[1].to_cpu(0x1000_4000, 0x4000), Some(0x1000_4000));
    assert_eq!(windows[1].to_cpu(0x100f_f000, 0x2000), None);
    assert_eq!(windows[0].to_cpu(0x20, 0x20), Some(0x3eff_0020));
}

fn with_caps(chain: &[(u8, u8, u8)], first: u8) -> (FakeConfig, Bdf) {
    let cfg = FakeConfig::default();
    let d = bdf(0, 4, 0);
    cfg.add(d, 0x1af4, 0x1042, 0x01_00_00, [(0, 0); 6]);
    cfg.set(d, reg::COMMAND_STATUS, STATUS_CAP_LIST);
    cfg.set(d, reg::CAP_PTR, u32::from(first));
    for &(at, id, next) in chain {
        cfg.set(d, u16::from(at), u32::from(id) | (u32::from(next) << 8));
    }
    (cfg, d)
}

#[test]
fn capability_walk() {
    let (cfg, d) = with_caps(
        &[(0x98, 0x11, 0x84), (0x84, 0x09, 0x70), (0x70, 0x09, 0)],
        0x98,
    );
    let caps = capabilities(&cfg, d).unwrap();
    let ids: Vec<_> = caps.iter().map(|c| (c.offset, c.id)).collect();
    assert_eq!(ids, [(0x98, 0x11), (0x84, 0x09), (0x70, 0x09)]);
}

#[test]
fn capability_loop_is_caught() {
    // 0x40 -> 0x50 -> 0x40 ...: a malicious device.
    let (cfg, d) = with_caps(&[(0x40, 0x09, 0x50), (0x50, 0x09, 0x40)], 0x40);
    assert_eq!(capabilities(&cfg, d), Err(CapError::Loop { at: 0x40 }));
    // Self-loop with reserved low bits set.
    let (cfg, d) = with_caps(&[(0x60, 0x05, 0x63)], 0x60);
    assert_eq!(capabilities(&cfg, d), Err(CapError::Loop { at: 0x60 }));
    // Into the header.
    let (cfg, d) = with_caps(&[(0x60, 0x05, 0x10)], 0x60);
    assert_eq!(
        capabilities(&cfg, d),
        Err(CapError::BadPointer { at: 0x10 })
    );
    // No capability list bit: empty, whatever the pointer says.
    let (cfg, d) = with_caps(&[(0x40, 0x09, 0x40)], 0x40);
    cfg.set(d, reg::COMMAND_STATUS, 0);
    assert_eq!(capabilities(&cfg, d), Ok(Vec::new()));
}

#[test]
fn enumeration_follows_multifunction() {
    let cfg = FakeConfig::default();
    cfg.add(bdf(0, 0, 0), 0x8086, 0x29c0, 0x06_00_00, [(0, 0); 6]);
    cfg.add(bdf(0, 2, 0), 0x1af4, 0x1041, 0x02_00_00, [(0, 0); 6]);
    // Function 1 without the multifunction bit on function 0: not seen.
    cfg.add(bdf(0, 2, 1), 0x1af4, 0x1042, 0x01_00_00, [(0, 0); 6]);
    cfg.add(bdf(0, 31, 0), 0x8086, 0x2918, 0x06_01_00, [(0, 0); 6]);
    cfg.set(bdf(0, 31, 0), reg::HEADER, 0x0080_0000);
    cfg.add(bdf(0, 31, 3), 0x8086, 0x2930, 0x0c_05_00, [(0, 0); 6]);
    cfg.set(bdf(0, 31, 3), reg::INTERRUPT, 0x0000_010a);
    let found = enumerate(&cfg, 0..=0);
    let bdfs: Vec<_> = found.iter().map(|f| f.bdf.to_string()).collect();
    assert_eq!(bdfs, ["00:00.0", "00:02.0", "00:1f.0", "00:1f.3"]);
    assert_eq!(found[3].interrupt_pin, 1);
    assert_eq!(found[1].header.class, 2);
}

#[test]
fn bar_list_format() {
    let bars = [
        Bar {
            index: 0,
            kind: BarKind::Io,
            prefetchable: false,
            address: 0xc000,
            size: 0x20,
        },
        Bar {
            index: 4,
            kind: BarKind::Mem64,
            prefetchable: true,
            address: 0xfe00_0000,
            size: 0x4000,
        },
    ];
    assert_eq!(
        BarList(&bars).to_string(),
        "0:io@0xc000+0x20,4:mem64@0xfe000000+0x4000"
    );
    assert_eq!(BarList(&[]).to_string(), "none");
}
