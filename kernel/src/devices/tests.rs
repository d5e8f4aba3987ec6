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

ktest! {
    /// Device interrupts: after block I/O the disk's handler has run. Skips
    /// (saying why) while the trap handler does not yet hand device lines
    /// to `devices::irq::dispatch`.
    fn virtio_blk_interrupt_delivered() {
        let Some(name) = with_blk(0, |b| b.name.clone()) else {
            skip!("no virtio-blk");
        };
        let irqs = super::irq_counts();
        let Some(before) = irqs.iter().find(|(at, _, _)| *at == name).map(|i| i.2) else {
            skip!("the disk has no interrupt route");
        };
        let mut buf = vec![0u8; 512];
        check!(with_blk(0, |b| b.dev.read(0, &mut buf).is_ok()) == Some(true));
        // Give a just-raised interrupt a moment to arrive.
        crate::sched::sleep(2_000_000);
        if super::irq::counts().0 == 0 {
            skip!("no device interrupt dispatched (trap.rs does not call devices::irq::dispatch yet, or delivery is not working: see docs/devices.md)");
        }
        let after = super::irq_counts()
            .iter()
            .find(|(at, _, _)| *at == name)
            .map(|i| i.2)
            .unwrap_or(0);
        check!(after > before);
        Ok(())
    }
}
