//! virtio devices on the `virtio-drivers` crate: entropy (rng), block and
//! network, over the PCI transport (modern and transitional devices: the
//! crate speaks the modern interface, which QEMU's transitional devices also
//! offer), the MMIO transport (versions 1 and 2), and our [`legacy`] PCI
//! transport for legacy-only devices; [`AnyTransport`] is any of them.
//!
//! * [`hal`] meets the crate's `Hal` contract over the kernel's DMA layer.
//! * [`cmdline`] parses `virtio_mmio.device=` (x86 microvm).
//! * [`blk`] is the block driver ([`Blk`]), on the crate's transport and
//!   queue rather than its `VirtIOBlk` (a ring sized to the device).
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
//! otherwise, and for rng and net, the drivers poll the used
//! ring (see docs/devices.md).

pub mod blk;
pub mod cmdline;
pub mod hal;
pub mod irq;
pub mod legacy;
pub mod net;

use crate::pci::{Bdf, ConfigSpace};
use core::ptr::NonNull;
use hal::VirtioHal;
pub use legacy::LegacyPci;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, InterruptStatus, SomeTransport, Transport};
use virtio_drivers::PhysAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use virtio_drivers::transport::pci::virtio_device_type;
pub use virtio_drivers::transport::DeviceType;

/// The PCI vendor id of virtio devices.
pub const VIRTIO_VENDOR: u16 = 0x1af4;

/// Bytes per block-device sector.
pub const SECTOR: usize = blk::SECTOR;

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

/// `VIRTIO_F_VERSION_1`: the modern interface (FEATURES_OK must stick).
const F_VERSION_1: u64 = 1 << 32;

/// The start of initialisation (virtio 3.1.1) for our own drivers: reset,
/// ACKNOWLEDGE | DRIVER, accept the offered features within `wanted`, and
/// FEATURES_OK, read back on a modern device (which may refuse). Returns
/// (offered, accepted); on refusal the device is marked FAILED.
fn negotiate(t: &mut AnyTransport, wanted: u64, name: &str) -> Result<(u64, u64), DeviceError> {
    t.set_status(DeviceStatus::empty());
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let offered = t.read_device_features();
    let features = offered & wanted;
    t.write_driver_features(features);
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
    if features & F_VERSION_1 != 0 && !t.get_status().contains(DeviceStatus::FEATURES_OK) {
        log::warn!("virtio: {name} features-refused offered={offered:#x} wanted={features:#x}");
        t.set_status(DeviceStatus::FAILED);
        return Err(DeviceError::Init);
    }
    t.set_guest_page_size(4096);
    Ok((offered, features))
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

/// A transport for one device: one of the crate's (modern PCI, MMIO) or
/// our legacy PCI one. An enum because `Transport` is not object-safe.
#[derive(Debug)]
pub enum AnyTransport {
    Crate(SomeTransport<'static>),
    Legacy(LegacyPci),
}

impl From<SomeTransport<'static>> for AnyTransport {
    fn from(t: SomeTransport<'static>) -> Self {
        AnyTransport::Crate(t)
    }
}

impl From<LegacyPci> for AnyTransport {
    fn from(t: LegacyPci) -> Self {
        AnyTransport::Legacy(t)
    }
}

impl AnyTransport {
    /// The size the device fixes for `queue` (legacy PCI: the driver must
    /// build exactly that ring), or `None` where the driver chooses any
    /// size up to `max_queue_size` (modern PCI, MMIO). A legacy queue the
    /// device lacks reads as `Some(0)`.
    pub fn fixed_queue_size(&self, queue: u16) -> Option<u16> {
        match self {
            AnyTransport::Crate(_) => None,
            AnyTransport::Legacy(l) => Some(l.queue_size(queue).unwrap_or(0)),
        }
    }

    /// Whether the transport gave up on the device (a legacy queue set up
    /// with a size the device does not have).
    pub fn failed(&self) -> bool {
        match self {
            AnyTransport::Crate(_) => false,
            AnyTransport::Legacy(l) => l.failed(),
        }
    }

    /// Checks, before any queue is built, that each `(queue, ring size)`
    /// a driver is about to build fits a device that fixes its sizes; on a
    /// mismatch logs which and marks the device FAILED.
    pub fn check_queue_sizes(
        &mut self,
        name: &str,
        rings: &[(u16, usize)],
    ) -> Result<(), DeviceError> {
        for &(q, want) in rings {
            if let Some(fixed) = self.fixed_queue_size(q) {
                if usize::from(fixed) != want {
                    log::warn!(
                        "virtio: {name} legacy queue={q} has size={fixed}, the driver's ring is {want}; device failed"
                    );
                    self.set_status(DeviceStatus::FAILED);
                    return Err(DeviceError::Init);
                }
            }
        }
        Ok(())
    }
}

/// Delegates each `Transport` method to the variant.
macro_rules! each {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            AnyTransport::Crate($t) => $e,
            AnyTransport::Legacy($t) => $e,
        }
    };
}

impl Transport for AnyTransport {
    fn device_type(&self) -> DeviceType {
        each!(self, t => t.device_type())
    }
    fn read_device_features(&mut self) -> u64 {
        each!(self, t => t.read_device_features())
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        each!(self, t => t.write_driver_features(driver_features))
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        each!(self, t => t.max_queue_size(queue))
    }
    fn notify(&mut self, queue: u16) {
        each!(self, t => t.notify(queue))
    }
    fn get_status(&self) -> DeviceStatus {
        each!(self, t => t.get_status())
    }
    fn set_status(&mut self, status: DeviceStatus) {
        each!(self, t => t.set_status(status))
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        each!(self, t => t.set_guest_page_size(guest_page_size))
    }
    fn requires_legacy_layout(&self) -> bool {
        each!(self, t => t.requires_legacy_layout())
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        each!(self, t => t.queue_set(queue, size, descriptors, driver_area, device_area))
    }
    fn queue_unset(&mut self, queue: u16) {
        each!(self, t => t.queue_unset(queue))
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        each!(self, t => t.queue_used(queue))
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        each!(self, t => t.ack_interrupt())
    }
    fn read_config_generation(&self) -> u32 {
        each!(self, t => t.read_config_generation())
    }
    fn read_config_space<T: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        each!(self, t => t.read_config_space(offset))
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> virtio_drivers::Result<()> {
        each!(self, t => t.write_config_space(offset, value))
    }
}

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
        .map(|t| AnyTransport::from(SomeTransport::from(t)))
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
        Ok(t) => Ok(AnyTransport::from(SomeTransport::from(t))),
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

/// The ring size of the crate's `VirtIORng` (its private `QUEUE_SIZE`).
const RNG_RING: usize = 8;

impl Rng {
    pub fn new(mut t: AnyTransport) -> Result<Self, DeviceError> {
        if t.device_type() != DeviceType::EntropySource {
            return Err(DeviceError::WrongType);
        }
        // The crate's rng ring has 8 entries (as QEMU's legacy rng queue).
        t.check_queue_sizes("rng", &[(0, RNG_RING)])?;
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

// The blk driver is ours, on the crate's `Transport` and `VirtQueue`: the
// crate's `VirtIOBlk` has a fixed 16-entry queue, and legacy PCI devices
// fix the queue size themselves (see blk.rs).
pub use blk::Blk;

// ---- net ----

// The net driver is ours, on the crate's `Transport` and `VirtQueue`: the
// crate's `VirtIONet` cannot negotiate checksum offload or mergeable
// receive buffers (see net.rs).
pub use net::Net;

/// [`Net::new`] after checking that a device which fixes its queue sizes
/// (legacy PCI) has the driver's ring sizes: a mismatch fails the device
/// instead of handing it rings it would misread.
pub fn new_net(mut t: AnyTransport) -> Result<Net, DeviceError> {
    if t.device_type() != DeviceType::Network {
        return Err(DeviceError::WrongType);
    }
    t.check_queue_sizes("net", &[(0, net::RXQ), (1, net::TXQ)])?;
    Net::new(t)
}
