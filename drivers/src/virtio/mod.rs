//! virtio devices on the `virtio-drivers` crate: entropy (rng), block and
//! network, over the PCI transport (modern and transitional devices: the
//! crate speaks the modern interface, which QEMU's transitional devices also
//! offer) and the MMIO transport (versions 1 and 2).
//!
//! * [`hal`] meets the crate's `Hal` contract over the kernel's DMA layer.
//! * [`cmdline`] parses `virtio_mmio.device=` (x86 microvm).
//! * [`net`] is the network driver ([`Net`]), on the crate's transport and
//!   queue rather than its `VirtIONet` (checksum offload and mergeable
//!   receive buffers).
//! * [`Rng`], [`Blk`], [`Net`] own one device each. Any error that means the
//!   device broke protocol (a used-ring entry that is not the request in
//!   flight, an impossible length, a config that will not read) resets the
//!   device and leaves the wrapper [`DeviceError::Broken`]: it is never used
//!   again.
//!
//! Requests are made from thread context. A [`Blk`] given a
//! `skiff_hal::CompletionWait` (the kernel does, when the device's
//! interrupt is wired) sleeps until its interrupt reports the request used;
//! otherwise, and for rng, net and blk flushes, the drivers poll the used
//! ring (see docs/devices.md).

pub mod cmdline;
pub mod hal;
pub mod irq;
pub mod net;

use crate::pci::{Bdf, ConfigSpace};
use core::ptr::NonNull;
use hal::VirtioHal;
use skiff_hal::CompletionWait;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{SomeTransport, Transport};

pub use virtio_drivers::transport::pci::virtio_device_type;
pub use virtio_drivers::transport::DeviceType;

/// The PCI vendor id of virtio devices.
pub const VIRTIO_VENDOR: u16 = 0x1af4;

/// Bytes per block-device sector.
pub const SECTOR: usize = SECTOR_SIZE;

/// Why a virtio device could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    /// The transport refused the device (bad magic, unsupported version,
    /// missing capability, BAR problem).
    Transport,
    /// Not a device type this wrapper drives.
    WrongType,
    /// Initialisation failed (queue setup, feature negotiation, DMA).
    Init,
    /// The device broke protocol and was reset; it is not used again.
    Broken,
    /// The device reported an I/O error for a request.
    Io,
    /// A request outside the device (sector past capacity, odd length).
    OutOfRange,
    /// The device is read-only.
    ReadOnly,
}

impl DeviceError {
    pub fn name(self) -> &'static str {
        match self {
            DeviceError::Transport => "transport",
            DeviceError::WrongType => "wrong-type",
            DeviceError::Init => "init",
            DeviceError::Broken => "broken",
            DeviceError::Io => "io",
            DeviceError::OutOfRange => "out-of-range",
            DeviceError::ReadOnly => "read-only",
        }
    }
}

/// Whether a crate error means the device broke protocol (and must be
/// reset) rather than a normal failure.
fn is_protocol_violation(e: &virtio_drivers::Error) -> bool {
    use virtio_drivers::Error as E;
    matches!(
        e,
        E::WrongToken | E::AlreadyUsed | E::InvalidParam | E::ConfigSpaceTooSmall
    )
}

/// A transport for one device.
pub type AnyTransport = SomeTransport<'static>;

/// The crate's configuration-space access over ours.
#[derive(Clone, Copy)]
struct Cam(&'static dyn ConfigSpace);

impl ConfigurationAccess for Cam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        self.0.read32(bdf(df), u16::from(offset & !3))
    }
    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        self.0.write32(bdf(df), u16::from(offset & !3), data)
    }
    #[allow(unsafe_code)]
    // SAFETY (of the contract): a copy of a shared reference; our
    // `ConfigSpace` serialises accesses itself.
    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}

fn bdf(df: DeviceFunction) -> Bdf {
    Bdf {
        bus: df.bus,
        device: df.device,
        function: df.function,
    }
}

/// Opens the PCI transport of a virtio function whose BARs are assigned,
/// decoding enabled, and whose capability list the bus layer already
/// walked without finding a loop (the crate's own walk is not
/// loop-protected).
pub fn pci_transport(cfg: &'static dyn ConfigSpace, at: Bdf) -> Result<AnyTransport, DeviceError> {
    let mut root = PciRoot::new(Cam(cfg));
    let df = DeviceFunction {
        bus: at.bus,
        device: at.device,
        function: at.function,
    };
    PciTransport::new::<VirtioHal, _>(&mut root, df)
        .map(SomeTransport::from)
        .map_err(|e| {
            log::warn!("virtio: pci={at} transport error={e}");
            DeviceError::Transport
        })
}

/// Why an MMIO slot holds no usable device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioProbe {
    /// The slot is there but empty (device id 0): QEMU's virt has 32 such
    /// slots, most unused.
    Empty,
    Error(DeviceError),
}

/// Opens the MMIO transport at `va` (`size` bytes mapped uncached).
///
/// The kernel vouches for the mapping: the only unsafe step, the crate's
/// pointer constructor, is taken here once.
pub fn mmio_transport(mmio: skiff_hal::Mmio) -> Result<AnyTransport, MmioProbe> {
    let size = mmio.len();
    if size < 0x100 {
        return Err(MmioProbe::Error(DeviceError::Transport));
    }
    // Magic "virt", then device id 0 means an empty slot.
    if mmio.read32(0) != Ok(0x7472_6976) {
        return Err(MmioProbe::Error(DeviceError::Transport));
    }
    if mmio.read32(8) == Ok(0) {
        return Err(MmioProbe::Empty);
    }
    let va = mmio.base();
    let header =
        NonNull::new(va as *mut VirtIOHeader).ok_or(MmioProbe::Error(DeviceError::Transport))?;
    #[allow(unsafe_code)]
    // SAFETY: `Mmio` is the HAL's promise that `va..va+size` maps device
    // registers for good; ownership of the window moves into the transport
    // (the `Mmio` value is consumed here).
    let t = unsafe { MmioTransport::new(header, size) };
    match t {
        Ok(t) => Ok(SomeTransport::from(t)),
        Err(e) => {
            log::warn!("virtio: mmio={va:#x} transport error={e}");
            Err(MmioProbe::Error(DeviceError::Transport))
        }
    }
}

/// The virtio device type behind a transport.
pub fn device_type(t: &AnyTransport) -> DeviceType {
    t.device_type()
}

/// The short name used in log lines (`virtio-net`, `virtio-blk`, ...).
pub fn type_name(t: DeviceType) -> &'static str {
    match t {
        DeviceType::Network => "virtio-net",
        DeviceType::Block => "virtio-blk",
        DeviceType::Console => "virtio-console",
        DeviceType::EntropySource => "virtio-rng",
        DeviceType::GPU => "virtio-gpu",
        DeviceType::Input => "virtio-input",
        DeviceType::Socket => "virtio-vsock",
        DeviceType::MemoryBalloon | DeviceType::MemoryBallooning => "virtio-balloon",
        _ => "virtio-other",
    }
}

// ---- rng ----

/// A virtio entropy source.
pub struct Rng {
    dev: Option<VirtIORng<VirtioHal, AnyTransport>>,
}

impl Rng {
    pub fn new(t: AnyTransport) -> Result<Self, DeviceError> {
        if t.device_type() != DeviceType::EntropySource {
            return Err(DeviceError::WrongType);
        }
        let dev = VirtIORng::new(t).map_err(|_| DeviceError::Init)?;
        Ok(Self { dev: Some(dev) })
    }

    /// Fills `out` as far as the device gives; returns how many bytes.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<usize, DeviceError> {
        let dev = self.dev.as_mut().ok_or(DeviceError::Broken)?;
        match dev.request_entropy(out) {
            Ok(n) if n <= out.len() => Ok(n),
            Ok(n) => {
                log::warn!(
                    "virtio: rng reported len={n} beyond buffer={}; reset",
                    out.len()
                );
                self.dev = None;
                Err(DeviceError::Broken)
            }
            Err(e) if is_protocol_violation(&e) => {
                log::warn!("virtio: rng protocol error={e}; reset");
                self.dev = None;
                Err(DeviceError::Broken)
            }
            Err(_) => Err(DeviceError::Io),
        }
    }
}

// ---- blk ----

/// A virtio block device. Requests are whole sectors.
pub struct Blk {
    dev: Option<VirtIOBlk<VirtioHal, AnyTransport>>,
    capacity: u64,
    readonly: bool,
    /// How reads and writes wait for completion: the kernel's interrupt
    /// wait when the device's interrupt is wired, else spinning.
    waiter: Option<&'static dyn CompletionWait>,
}

impl Blk {
    pub fn new(t: AnyTransport) -> Result<Self, DeviceError> {
        if t.device_type() != DeviceType::Block {
            return Err(DeviceError::WrongType);
        }
        let dev = VirtIOBlk::new(t).map_err(|_| DeviceError::Init)?;
        Ok(Self {
            capacity: dev.capacity(),
            readonly: dev.readonly(),
            dev: Some(dev),
            waiter: None,
        })
    }

    /// Reads and writes then sleep in `waiter` until the device completes
    /// them (its interrupt wakes them) instead of spinning.
    pub fn set_waiter(&mut self, waiter: &'static dyn CompletionWait) {
        self.waiter = Some(waiter);
    }

    /// Whether requests complete by interrupt (a waiter is set).
    pub fn interrupt_driven(&self) -> bool {
        self.waiter.is_some()
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), DeviceError> {
        if len == 0 || !len.is_multiple_of(SECTOR) {
            return Err(DeviceError::OutOfRange);
        }
        let end = sector
            .checked_add((len / SECTOR) as u64)
            .ok_or(DeviceError::OutOfRange)?;
        if end > self.capacity {
            return Err(DeviceError::OutOfRange);
        }
        Ok(())
    }

    fn outcome(&mut self, r: virtio_drivers::Result) -> Result<(), DeviceError> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if is_protocol_violation(&e) => {
                log::warn!("virtio: blk protocol error={e}; reset");
                self.dev = None;
                Err(DeviceError::Broken)
            }
            Err(virtio_drivers::Error::Unsupported) => Err(DeviceError::ReadOnly),
            Err(_) => Err(DeviceError::Io),
        }
    }

    /// Reads `buf.len() / 512` sectors from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.check(sector, buf.len())?;
        let dev = self.dev.as_mut().ok_or(DeviceError::Broken)?;
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        // SAFETY: `req`, `buf` and `resp` stay borrowed here until the
        // matching `complete_read_blocks`, which always runs (`wait` only
        // returns once the request is used). The device never sees them
        // anyway: `VirtioHal::share` bounces them through DMA pages.
        #[allow(unsafe_code)]
        let r = match unsafe { dev.read_blocks_nb(sector as usize, &mut req, buf, &mut resp) } {
            Ok(token) => {
                wait_used(self.waiter, dev);
                // SAFETY: the same buffers as `read_blocks_nb` got.
                unsafe { dev.complete_read_blocks(token, &req, buf, &mut resp) }
            }
            Err(e) => Err(e),
        };
        self.outcome(r)
    }

    /// Writes `buf.len() / 512` sectors at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.check(sector, buf.len())?;
        if self.readonly {
            return Err(DeviceError::ReadOnly);
        }
        let dev = self.dev.as_mut().ok_or(DeviceError::Broken)?;
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        // SAFETY: as in `read`.
        #[allow(unsafe_code)]
        let r = match unsafe { dev.write_blocks_nb(sector as usize, &mut req, buf, &mut resp) } {
            Ok(token) => {
                wait_used(self.waiter, dev);
                // SAFETY: the same buffers as `write_blocks_nb` got.
                unsafe { dev.complete_write_blocks(token, &req, buf, &mut resp) }
            }
            Err(e) => Err(e),
        };
        self.outcome(r)
    }

    /// Makes earlier writes durable (a no-op if the device has no cache).
    pub fn flush(&mut self) -> Result<(), DeviceError> {
        let dev = self.dev.as_mut().ok_or(DeviceError::Broken)?;
        let r = dev.flush();
        self.outcome(r)
    }
}

/// Waits until the block queue has a used entry (the request in flight:
/// one at a time, so any other token is a protocol error that
/// `complete_*` reports as `WrongToken`).
fn wait_used(
    waiter: Option<&'static dyn CompletionWait>,
    dev: &mut VirtIOBlk<VirtioHal, AnyTransport>,
) {
    let mut done = || dev.peek_used().is_some();
    match waiter {
        Some(w) => w.wait(&mut done),
        None => skiff_hal::spin_until(&mut done),
    }
}

// ---- net ----

// The net driver is ours, on the crate's `Transport` and `VirtQueue`: the
// crate's `VirtIONet` cannot negotiate checksum offload or mergeable
// receive buffers (see net.rs).
pub use net::Net;
