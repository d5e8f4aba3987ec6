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
