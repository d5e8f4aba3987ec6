//! Skiff device drivers, one module per family: `serial` (16550, PL011),
//! `rtc` (CMOS, PL031), the `pci` bus layer and `virtio` (rng, blk, net over
//! the `virtio-drivers` crate, PCI and MMIO transports);
//! `xen`, `vmware`, `hyperv` join as they are written.
//!
//! Drivers reach hardware only through `skiff-hal` and never call the kernel.
//! They are safe Rust: the unsafe edge is `skiff_hal::Mmio`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

/// The HAL the drivers are written against, re-exported for the kernel,
/// which implements its DMA and interrupt traits.
pub use skiff_hal as hal;

pub mod net;
pub mod pci;
pub mod rtc;
pub mod serial;
pub mod virtio;
