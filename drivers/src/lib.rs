//! Skiff device drivers, one module per family: `serial` (16550, PL011) and
//! `rtc` (CMOS, PL031) now;
//! `virtio`, `xen`, `vmware`, `hyperv` join as they are written.
//!
//! Drivers reach hardware only through `skiff-hal` and never call the kernel.
//! They are safe Rust: the unsafe edge is `skiff_hal::Mmio`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod rtc;
pub mod serial;
