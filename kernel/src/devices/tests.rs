//! ktests for the bus and driver layers, run on whatever devices the board
//! gives; each test skips when its device is absent. `devices_expected`
//! makes a board's `devices.expect=` command-line option (what the board
//! file attached) a hard check, so a board that should have a disk, a NIC or
//! an rng fails when it is missing or wrong.
//!
//! `devices.expect=` is a comma list of `blk:SECTORS`, `net:MAC`, `rng`,
//! `pci:VENDOR:DEVICE` (hex).

use super::{summary, with_blk, with_net};
use crate::devices::dma::KERNEL_DMA;
use alloc::vec;
use skiff_drivers::hal::DmaRegion;
use skiff_ktest::{check, check_eq, check_some, ktest, skip};

ktest! {
    /// DMA memory: zeroed, page aligned, contiguous (the direct map is
    /// linear), freed on drop so the frame count comes back.
    fn dma_region_zeroed_and_freed() {
        let before = crate::mm::frame_stats();
        {
            let mut r = check_some!(DmaRegion::new(&KERNEL_DMA, 3).ok());
            check_eq!(r.device_addr() % 4096, 0);
            check_eq!(r.len(), 3 * 4096);
            check!(r.as_slice().iter().all(|&b| b == 0));
            r.as_mut_slice().fill(0xa5);
            check!(r.as_slice()[3 * 4096 - 1] == 0xa5);
        }
        check!(crate::mm::frame_stats() == before);
        Ok(())
    }
}

ktest! {
    /// The bus walk saw the host bridge at 00:00.0 wherever the firmware
    /// describes PCI.
    fn pci_bus_walk_finds_host_bridge() {
        let fw = &check_some!(crate::PLATFORM.get()).firmware_info;
        let (_, functions) = summary();
        if fw.ecam.is_empty() && functions == 0 {
            skip!("no PCI on this machine");
        }
        check!(functions >= 1);
        Ok(())
    }
}

ktest! {
    /// virtio-rng: two reads differ and are not all zero.
    fn virtio_rng_gives_entropy() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        let Some(n) = super::rng_fill(&mut a) else {
            skip!("no virtio-rng");
        };
        check_eq!(n, 32);
        check_eq!(check_some!(super::rng_fill(&mut b)), 32);
        check!(a != b);
        check!(a.iter().any(|&x| x != 0));
        Ok(())
    }
}

ktest! {
    /// virtio-blk: writes a pattern over several sectors (one multi-sector
    /// request) at the start and end of the disk, flushes, reads back, and
    /// refuses a request past the end.
    fn virtio_blk_write_read_back() {
        let r = with_blk(0, |b| -> Result<(), skiff_ktest::Failure> {
            let cap = b.dev.capacity();
            check!(cap >= 16);
            let mut pattern = vec![0u8; 8 * 512];
            for (i, x) in pattern.iter_mut().enumerate() {
                *x = (i as u8).wrapping_mul(31).wrapping_add(7);
            }
            for &sector in &[1u64, cap - 8] {
                check!(b.dev.write(sector, &pattern).is_ok());
            }
            check!(b.dev.flush().is_ok());
            for &sector in &[1u64, cap - 8] {
                let mut back = vec![0u8; 8 * 512];
                check!(b.dev.read(sector, &mut back).is_ok());
                check!(back == pattern);
            }
            let mut one = vec![0u8; 512];
            check!(b.dev.read(cap, &mut one).is_err());
            check!(b.dev.read(0, &mut one[..100]).is_err());
            Ok(())
        });
        match r {
            None => skip!("no virtio-blk"),
            Some(r) => r,
        }
    }
}

ktest! {
    /// virtio-blk: a transfer larger than one request carries (the ring's
    /// segments, `seg_max`, `size_max`) is split into several requests;
    /// every sector comes back with its own pattern, also when read back
    /// through a window that straddles a request boundary.
    fn virtio_blk_large_transfer_split() {
        let r = with_blk(0, |b| -> Result<(), skiff_ktest::Failure> {
            let step = b.dev.limits().request_bytes();
            check!(step >= 512 && step.is_multiple_of(512));
            // Header and status take a descriptor each.
            check!(b.dev.limits().max_segs + 2 <= b.dev.ring_entries());
            // Two and a half requests' worth, whole blocks.
            let blk = b.dev.limits().blk_size;
            let len = (step * 5 / 2).next_multiple_of(blk);
            let sectors = (len / 512) as u64;
            let cap = b.dev.capacity();
            let start = 64u64;
            if start + sectors > cap {
                skip!("disk too small for the split test");
            }
            let mut data = vec![0u8; len];
            for (i, x) in data.iter_mut().enumerate() {
                // Sector number and offset both show in each byte.
                *x = ((i / 512) as u8).wrapping_mul(37) ^ (i as u8);
            }
            check!(b.dev.write(start, &data).is_ok());
            let mut back = vec![0u8; len];
            check!(b.dev.read(start, &mut back).is_ok());
            check!(back == data);
            // A window across the first request boundary.
            let from = step - blk;
            let mut win = vec![0u8; 2 * blk];
            check!(b.dev.read(start + (from / 512) as u64, &mut win).is_ok());
            check!(win[..] == data[from..from + 2 * blk]);
            Ok(())
        });
        match r {
            None => skip!("no virtio-blk"),
            Some(r) => r,
        }
    }
}

ktest! {
    /// virtio-net: a sane MAC and one frame transmitted (a broadcast with
    /// the local-experimental EtherType 0x88b5, which QEMU's user network
    /// drops). Bad frames are refused before the device sees them.
    fn virtio_net_transmit_smoke() {
        let r = with_net(0, |n| -> Result<(), skiff_ktest::Failure> {
            let mac = n.mac();
            check!(mac != [0; 6] && mac[0] & 1 == 0);
            check!(n.mtu() >= 576);
            let mut frame = [0u8; 60];
            frame[..6].fill(0xff);
            frame[6..12].copy_from_slice(&mac);
            frame[12..14].copy_from_slice(&[0x88, 0xb5]);
            check!(n.send(&frame).is_ok());
            check!(n.send(&frame[..10]).is_err());
            let mut buf = [0u8; 2048];
            // Nothing answers; receive must not invent a frame or fail.
            check!(n.receive(&mut buf).is_ok());
            Ok(())
        });
        match r {
            None => skip!("no virtio-net"),
            Some(r) => r,
        }
    }
}

ktest! {
    /// virtio-net receive: a full-size ICMP echo to QEMU's user-network
    /// gateway (10.0.2.2, answered inside QEMU) comes back whole. With
    /// mergeable buffers negotiated (1 KiB each) the 1514-byte reply spans
    /// two, so this checks reassembly on a real device; the reply's IP and
    /// ICMP checksums and payload are verified byte for byte.
    fn virtio_net_receives_full_size_frame() {
        let r = with_net(0, |n| -> Result<(), skiff_ktest::Failure> {
            use skiff_drivers::net::{csum_add, csum_fold};
            let sum = |d: &[u8]| csum_fold(csum_add(0, d));
            let mac = n.mac();
            let (me, gw) = (NET_ME, NET_GW);
            let mut buf = vec![0u8; 2048];
            let gw_mac = match arp_gateway(n, &mut buf) {
                Ok(m) => m,
                Err(e) => {
                    crate::println!("devices: net receive error={e:?}");
                    check!(false);
                    None
                }
            };
            let Some(gw_mac) = gw_mac else {
                skip!("no ARP reply from the user-network gateway");
            };
            // ICMP echo, 1472 bytes of payload: a 1514-byte frame.
            let payload = 1472;
            let mut f = vec![0u8; 14 + 20 + 8 + payload];
            f[..6].copy_from_slice(&gw_mac);
            f[6..12].copy_from_slice(&mac);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let total = (20 + 8 + payload) as u16;
            f[14] = 0x45;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[18..20].copy_from_slice(&0x5a5au16.to_be_bytes());
            f[22] = 64;
            f[23] = 1;
            f[26..30].copy_from_slice(&me);
            f[30..34].copy_from_slice(&gw);
            let ip_sum = !sum(&f[14..34]);
            f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
            f[34] = 8;
            f[38..42].copy_from_slice(&[0x12, 0x34, 0, 1]);
            for (i, b) in f[42..].iter_mut().enumerate() {
                *b = (i * 13 + 7) as u8;
            }
            let icmp_sum = !sum(&f[34..]);
            f[36..38].copy_from_slice(&icmp_sum.to_be_bytes());
            check!(n.send(&f).is_ok());
            let deadline = crate::time::now_ns() + 2_000_000_000;
            loop {
                match n.receive(&mut buf) {
                    Ok(Some(len))
                        if len >= 42 && buf[12..14] == [8, 0] && buf[23] == 1 && buf[34] == 0 =>
                    {
                        check_eq!(len, f.len());
                        check_eq!(sum(&buf[14..34]), 0xffff);
                        check_eq!(sum(&buf[34..len]), 0xffff);
                        check!(buf[38..42] == f[38..42]);
                        check!(buf[42..len] == f[42..]);
                        return Ok(());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if crate::time::now_ns() >= deadline {
                            skip!("no echo reply from the user-network gateway");
                        }
                        core::hint::spin_loop();
                    }
                    Err(e) => {
                        crate::println!("devices: net receive error={e:?}");
                        check!(false);
                    }
                }
            }
        });
        match r {
            None => skip!("no virtio-net"),
            Some(r) => r,
        }
    }
}

/// Our address and the gateway's on QEMU's user network (also used on a
/// tap test network set up the same way).
const NET_ME: [u8; 4] = [10, 0, 2, 15];
const NET_GW: [u8; 4] = [10, 0, 2, 2];

/// ARP who-has the gateway (which learns our MAC from it): its MAC, or
/// `None` when nothing answers within 2 s.
fn arp_gateway(
    n: &mut dyn skiff_drivers::net::NetDevice,
    buf: &mut [u8],
) -> Result<Option<[u8; 6]>, skiff_drivers::net::NetError> {
    let mac = n.mac();
    let mut arp = [0u8; 60];
    arp[..6].fill(0xff);
    arp[6..12].copy_from_slice(&mac);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&mac);
    arp[28..32].copy_from_slice(&NET_ME);
    arp[38..42].copy_from_slice(&NET_GW);
    n.send(&arp)?;
    let deadline = crate::time::now_ns() + 2_000_000_000;
    while crate::time::now_ns() < deadline {
        match n.receive(buf)? {
            Some(len) if len >= 42 && buf[12..14] == [8, 6] && buf[21] == 2 => {
                return Ok(<[u8; 6]>::try_from(&buf[22..28]).ok());
            }
            _ => core::hint::spin_loop(),
        }
    }
    Ok(None)
}

ktest! {
    /// virtio-net checksum offload: a UDP datagram to port 7 of the
    /// gateway, its checksum left to the device when `CSUM` was negotiated
    /// (`send_with`), comes back with a checksum that verifies (completed
    /// by the driver when the device hands it over partial, `NEEDS_CSUM`).
    /// Needs a UDP echo at 10.0.2.2:7: skips on QEMU's user network
    /// (`restrict=on` drops it); run on a tap network to exercise it.
    fn virtio_net_udp_echo_with_checksum_offload() {
        use skiff_drivers::net::{csum_add, csum_fold, l4_csum_ok, tx_csum_prepare, TxMeta};
        let r = with_net(0, |n| -> Result<(), skiff_ktest::Failure> {
            let mac = n.mac();
            let offloads = n.offloads();
            crate::println!(
                "devices: net offloads tx_csum={} rx_csum_valid={}",
                offloads.tx_csum,
                offloads.rx_csum_valid
            );
            let mut buf = vec![0u8; 2048];
            let Some(gw_mac) = check_some!(arp_gateway(n, &mut buf).ok()) else {
                skip!("no ARP reply from the gateway");
            };
            let payload = 1200;
            let mut f = vec![0u8; 14 + 20 + 8 + payload];
            f[..6].copy_from_slice(&gw_mac);
            f[6..12].copy_from_slice(&mac);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[16..18].copy_from_slice(&((28 + payload) as u16).to_be_bytes());
            f[22] = 64;
            f[23] = 17;
            f[26..30].copy_from_slice(&NET_ME);
            f[30..34].copy_from_slice(&NET_GW);
            let ip_sum = !csum_fold(csum_add(0, &f[14..34]));
            f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
            f[34..36].copy_from_slice(&40007u16.to_be_bytes());
            f[36..38].copy_from_slice(&7u16.to_be_bytes());
            f[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
            for (i, b) in f[42..].iter_mut().enumerate() {
                *b = (i * 31 + 3) as u8;
            }
            let csum = tx_csum_prepare(&mut f);
            check!(csum.is_some());
            check!(n.send_with(&f, TxMeta { csum }).is_ok());
            let deadline = crate::time::now_ns() + 2_000_000_000;
            loop {
                match n.receive_with(&mut buf) {
                    Ok(Some(m)) if m.len >= 42 && buf[23] == 17 && buf[34..36] == [0, 7] => {
                        check_eq!(m.len, f.len());
                        check!(l4_csum_ok(&buf[..m.len]));
                        check!(buf[42..m.len] == f[42..]);
                        crate::println!("devices: net udp echo csum_valid={}", m.csum_valid);
                        return Ok(());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if crate::time::now_ns() >= deadline {
                            skip!("no UDP echo at 10.0.2.2:7 (user network)");
                        }
                        core::hint::spin_loop();
                    }
                    Err(e) => {
                        crate::println!("devices: net receive error={e:?}");
                        check!(false);
                    }
                }
            }
        });
        match r {
            None => skip!("no virtio-net"),
            Some(r) => r,
        }
    }
}

ktest! {
    /// The board's `devices.expect=` list, checked against what was found.
    fn devices_expected() {
        let boot = check_some!(crate::start::BOOT_INFO.get());
        let Some(list) = boot
            .cmdline
            .as_str()
            .split_ascii_whitespace()
            .take_while(|w| *w != "--")
            .find_map(|w| w.strip_prefix("devices.expect="))
        else {
            skip!("the board sets no devices.expect=");
        };
        let (found, _) = summary();
        for want in list.split(',') {
            let ok = if want == "rng" {
                found.iter().any(|(k, _, _)| *k == "rng")
            } else if let Some(sectors) = want.strip_prefix("blk:") {
                let d = alloc::format!("capacity={sectors}");
                found.iter().any(|(k, _, det)| *k == "blk" && *det == d)
            } else if let Some(mac) = want.strip_prefix("net:") {
                let d = alloc::format!("mac={mac}");
                found.iter().any(|(k, _, det)| *k == "net" && *det == d)
            } else if let Some(at) = want.strip_prefix("at:") {
                found.iter().any(|(_, a, _)| a.starts_with(at))
            } else if let Some(mode) = want.strip_prefix("irq:") {
                // Every virtio PCI device's interrupt is wired this way
                // (`intx`: the board's functions have no MSI-X; a missing
                // `_PRT` route would leave them polled, and fail here).
                let modes = irq_modes();
                let pci: alloc::vec::Vec<_> = found
                    .iter()
                    .filter(|(_, a, _)| a.starts_with("pci:"))
                    .collect();
                !pci.is_empty()
                    && pci.iter().all(|(_, a, _)| {
                        modes.iter().any(|(at, m, _)| at == a && *m == mode)
                    })
            } else {
                false
            };
            if !ok {
                crate::println!("devices: expected={want} not found; have={found:?}");
            }
            check!(ok);
        }
        Ok(())
    }
}

/// (location, wiring mode, interrupts handled) of every device interrupt.
fn irq_modes() -> alloc::vec::Vec<(alloc::string::String, &'static str, u64)> {
    let g = super::REGISTRY.lock();
    g.as_ref()
        .map(|r| {
            r.irqs
                .iter()
                .map(|i| (i.at.clone(), i.mode(), i.count()))
                .collect()
        })
        .unwrap_or_default()
}

ktest! {
    /// PCI INTx (x86: the IOAPIC GSI from ACPI `_PRT`; arm64: the DT
    /// interrupt-map) really interrupts: after a disk read and a NIC
    /// transmit (or the stack's DHCP traffic), every device wired through
    /// INTx has handled at least one interrupt. Skips when nothing uses
    /// INTx (MSI-X and virtio-mmio boards).
    fn pci_intx_interrupts_fire() {
        if !irq_modes().iter().any(|(_, m, _)| *m == "intx") {
            skip!("no device interrupt wired through INTx");
        }
        // Traffic: a disk read, and a transmit on a NIC still in the
        // registry (one the network stack took has had DHCP traffic).
        let mut buf = vec![0u8; 512];
        let _ = with_blk(0, |b| b.dev.read(0, &mut buf));
        let _ = with_net(0, |n| {
            let mut frame = [0u8; 60];
            frame[..6].fill(0xff);
            frame[6..12].copy_from_slice(&n.mac());
            frame[12..14].copy_from_slice(&[0x88, 0xb5]);
            n.send(&frame).is_ok()
        });
        let deadline = crate::time::now_ns() + 3_000_000_000;
        loop {
            let quiet: alloc::vec::Vec<_> = irq_modes()
                .into_iter()
                .filter(|(_, m, n)| *m == "intx" && *n == 0)
                .collect();
            if quiet.is_empty() {
                break;
            }
            if crate::time::now_ns() >= deadline {
                crate::println!(
                    "devices: intx wired but never fired: {quiet:?} (dispatched, unclaimed)={:?}",
                    super::irq::counts()
                );
                check!(false);
            }
            crate::sched::sleep(10_000_000);
        }
        for (at, _, n) in irq_modes().iter().filter(|(_, m, _)| *m == "intx") {
            crate::println!("devices: intx at={at} interrupts={n}");
        }
        Ok(())
    }
}

/// Interrupts handled so far for the device at `at`, if it has one wired.
fn irq_count(at: &str) -> Option<u64> {
    super::irq_counts()
        .into_iter()
        .find(|(a, _, _)| a == at)
        .map(|i| i.2)
}

/// Waits (sleeping, interrupts on) up to a second for `at`'s interrupt
/// count to pass `before`.
fn irq_arrives(at: &str, before: u64) -> bool {
    let deadline = crate::time::now_ns() + 1_000_000_000;
    loop {
        if irq_count(at).unwrap_or(0) > before {
            return true;
        }
        if crate::time::now_ns() >= deadline {
            return false;
        }
        crate::sched::sleep(10_000_000);
    }
}

ktest! {
    /// Device interrupts: a read from the disk raises its interrupt (MSI-X
    /// on q35, an IOAPIC GSI on microvm, a GIC SPI on virt, PCI INTx through
    /// the GICv2 on virt-gicv2), the handler runs and the request completes
    /// by interrupt. Skips only when the board wires no interrupt for the
    /// disk; a wired interrupt that never arrives fails.
    fn virtio_blk_interrupt_delivered() {
        let Some((name, by_irq)) = with_blk(0, |b| (b.name.clone(), b.dev.interrupt_driven())) else {
            skip!("no virtio-blk");
        };
        let Some(before) = irq_count(&name) else {
            skip!("the disk has no interrupt route");
        };
        check!(by_irq);
        let mut buf = vec![0u8; 512];
        for sector in 0..4 {
            check!(with_blk(0, |b| b.dev.read(sector, &mut buf).is_ok()) == Some(true));
        }
        if !irq_arrives(&name, before) {
            crate::println!(
                "devices: no interrupt from disk at={name} after 4 reads (dispatched, unclaimed)={:?}",
                super::irq::counts()
            );
            check!(false);
        }
        Ok(())
    }
}

ktest! {
    /// The NIC's interrupt fires when a transmit completes (a broadcast
    /// with the local-experimental EtherType, dropped by QEMU's user
    /// network). Skips when the NIC was already handed to the network
    /// stack or has no interrupt route.
    fn virtio_net_interrupt_on_transmit() {
        let Some(mac) = with_net(0, |n| n.mac()) else {
            skip!("no virtio-net left in the registry");
        };
        let want = alloc::format!("mac={}", skiff_drivers::net::MacAddr(mac));
        let (found, _) = summary();
        let name = check_some!(found
            .iter()
            .find(|(k, _, d)| *k == "net" && *d == want)
            .map(|(_, at, _)| at.clone()));
        let Some(before) = irq_count(&name) else {
            skip!("the NIC has no interrupt route");
        };
        let mut frame = [0u8; 60];
        frame[..6].fill(0xff);
        frame[6..12].copy_from_slice(&mac);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        check!(with_net(0, |n| n.send(&frame).is_ok()) == Some(true));
        if !irq_arrives(&name, before) {
            crate::println!("devices: no interrupt from NIC at={name} after a transmit");
            check!(false);
        }
        Ok(())
    }
}

ktest! {
    /// An interrupt on a line nobody registered is counted as unclaimed
    /// (and logged once), never a panic; the registered devices' counts do
    /// not move.
    fn unknown_device_line_is_counted() {
        let line = 1023;
        check!(super::irq_counts().iter().all(|(_, l, _)| *l != line));
        let (dispatched, unclaimed) = super::irq::counts();
        crate::arch::cpu::without_interrupts(|| {
            super::irq::dispatch(line);
            super::irq::dispatch(line);
        });
        let (d, u) = super::irq::counts();
        // Other interrupts may arrive meanwhile: at least ours counted.
        check!(d >= dispatched + 2);
        check!(u >= unclaimed + 2);
        Ok(())
    }
}
