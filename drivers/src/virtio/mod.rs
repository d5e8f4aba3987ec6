//! virtio devices on the `virtio-drivers` crate: entropy (rng), block and
//! network, over the PCI transport (modern and transitional devices: the
//! crate speaks the modern interface, which QEMU's transitional devices also
//! offer) and the MMIO transport (versions 1 and 2).
//!
//! * [`hal`] meets the crate's `Hal` contract over the kernel's DMA layer.
//! * [`cmdline`] parses `virtio_mmio.device=` (x86 microvm).
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

use crate::net::{NetDevice, NetError};
use crate::pci::{Bdf, ConfigSpace};
use core::ptr::NonNull;
use hal::VirtioHal;
use skiff_hal::CompletionWait;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::device::net::VirtIONet;
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

/// Receive/transmit ring size.
const NET_QUEUE: usize = 16;
/// Buffer per frame: MTU 1500 + Ethernet header, with room to spare (no
/// mergeable or large buffers negotiated by this driver yet).
const NET_BUF: usize = 2048;
/// virtio-net feature: the device reports link status in its config.
const NET_F_STATUS: u64 = 1 << 16;
/// virtio-net feature: the device's MTU is in its config.
const NET_F_MTU: u64 = 1 << 3;

/// A virtio network device.
pub struct Net {
    dev: Option<VirtIONet<VirtioHal, AnyTransport, NET_QUEUE>>,
    mac: [u8; 6],
    mtu: usize,
    link_up: Option<bool>,
}

impl Net {
    pub fn new(mut t: AnyTransport) -> Result<Self, DeviceError> {
        if t.device_type() != DeviceType::Network {
            return Err(DeviceError::WrongType);
        }
        let features = t.read_device_features();
        // virtio_net_config: mac[6] at 0, status u16 at 6, mtu u16 at 10.
        let link_up = if features & NET_F_STATUS != 0 {
            t.read_config_space::<u16>(6).ok().map(|s| s & 1 != 0)
        } else {
            None
        };
        let mtu = if features & NET_F_MTU != 0 {
            t.read_config_space::<u16>(10)
                .ok()
                .map(usize::from)
                .filter(|m| (68..=1500).contains(m))
                .unwrap_or(1500)
        } else {
            1500
        };
        let dev = VirtIONet::new(t, NET_BUF).map_err(|_| DeviceError::Init)?;
        Ok(Self {
            mac: dev.mac_address(),
            mtu,
            link_up,
            dev: Some(dev),
        })
    }

    /// Link state from the device config, when it reports one.
    pub fn link(&self) -> Option<bool> {
        self.link_up
    }

    fn broken(&mut self, what: &str, e: virtio_drivers::Error) -> NetError {
        if is_protocol_violation(&e) {
            log::warn!("virtio: net {what} protocol error={e}; reset");
            self.dev = None;
            NetError::Broken
        } else {
            NetError::Device
        }
    }
}

impl NetDevice for Net {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn link_up(&self) -> bool {
        self.link_up.unwrap_or(true)
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        if frame.len() > self.mtu + 14 || frame.len() < 14 {
            return Err(NetError::BadFrame);
        }
        let dev = self.dev.as_mut().ok_or(NetError::Broken)?;
        if !dev.can_send() {
            return Err(NetError::Busy);
        }
        let mut tx = dev.new_tx_buffer(frame.len());
        tx.packet_mut().copy_from_slice(frame);
        match dev.send(tx) {
            Ok(()) => Ok(()),
            Err(virtio_drivers::Error::QueueFull) => Err(NetError::Busy),
            Err(e) => Err(self.broken("send", e)),
        }
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        let dev = self.dev.as_mut().ok_or(NetError::Broken)?;
        if !dev.can_recv() {
            return Ok(None);
        }
        let rx = match dev.receive() {
            Ok(rx) => rx,
            Err(virtio_drivers::Error::NotReady) => return Ok(None),
            Err(e) => return Err(self.broken("receive", e)),
        };
        // The used-ring length is the device's word: a frame reaching past
        // the buffer (less the largest header, 12 bytes) is nonsense.
        if rx.packet_len() + 12 > rx.as_bytes().len() {
            log::warn!(
                "virtio: net rx len={} beyond buffer={}; reset",
                rx.packet_len(),
                rx.as_bytes().len()
            );
            self.dev = None;
            return Err(NetError::Broken);
        }
        let packet = rx.packet();
        let n = packet.len();
        let fits = n <= buf.len();
        if fits {
            buf[..n].copy_from_slice(packet);
        }
        let recycled = dev.recycle_rx_buffer(rx);
        if let Err(e) = recycled {
            return Err(self.broken("recycle", e));
        }
        if fits {
            Ok(Some(n))
        } else {
            Err(NetError::BufferTooSmall { needed: n })
        }
    }
}
