//! virtio-blk, written on the `virtio-drivers` crate's `Transport` and
//! `queue::VirtQueue` (with our `Hal`) rather than its `VirtIOBlk`: that
//! one has a fixed 16-entry queue, but a legacy virtio PCI device fixes
//! its queue size itself (QEMU: 256) and a driver must size its ring to
//! match, so the ring here is a const-generic size picked at probe time
//! ([`RingSize`]).
//!
//! Negotiated when offered: `RO`, `FLUSH`, `BLK_SIZE`, `SEG_MAX`,
//! `SIZE_MAX`, `VERSION_1` (no indirect descriptors, no event index). A
//! request is a 16-byte header, its data in segments of at most a page
//! (and at most `size_max`), and a status byte, each in its own
//! descriptor; a read or write larger than one request may carry
//! (`seg_max`, the ring size) is split ([`Limits`]).
//!
//! One request is in flight at a time, and its completion is checked
//! before it is used: the used id must be the request's chain, the used
//! length must fit the device-writable buffers and cover the status byte,
//! the status must be OK, IOERR or UNSUPP, and no further used entry may
//! appear. Anything else resets the device, logs `virtio: blk protocol
//! error=...; reset`, and the driver answers `DeviceError::Broken` from
//! then on.

use super::hal::VirtioHal;
use super::{AnyTransport, DeviceError};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use skiff_hal::CompletionWait;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// Bytes per block-device sector (the protocol's unit, whatever the
/// device's block size).
pub const SECTOR: usize = 512;

/// Feature bits (virtio 1.2, 5.2.3 and 6).
pub const F_SIZE_MAX: u64 = 1 << 1;
pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_RO: u64 = 1 << 5;
pub const F_BLK_SIZE: u64 = 1 << 6;
pub const F_FLUSH: u64 = 1 << 9;
pub const F_VERSION_1: u64 = 1 << 32;

/// What this driver accepts when offered.
pub const WANTED: u64 = F_SIZE_MAX | F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH | F_VERSION_1;

/// Request types (`virtio_blk_req.type`).
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;

/// Status byte values.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// `virtio_blk_config` offsets.
const CFG_CAPACITY: usize = 0;
const CFG_SIZE_MAX: usize = 8;
const CFG_SEG_MAX: usize = 12;
const CFG_BLK_SIZE: usize = 20;

/// The request queue.
const QUEUE: u16 = 0;

/// The largest data segment: one DMA page, so each segment's bounce
/// buffer is a single page (no contiguous run needed).
pub const SEG_BYTES: usize = 4096;

/// The ring sizes this driver is built for. A device that lets the driver
/// choose (modern PCI, MMIO) gets [`RingSize::R32`]: 30 data segments, so a
/// 64 KiB request (the kernel block layer's largest) is one request.
/// Legacy PCI devices fix the size; QEMU's is 256 (128 before QEMU 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingSize {
    R32,
    R128,
    R256,
}

impl RingSize {
    pub const CHOSEN: RingSize = RingSize::R32;
    pub const ALL: [RingSize; 3] = [RingSize::R32, RingSize::R128, RingSize::R256];

    pub fn entries(self) -> usize {
        match self {
            RingSize::R32 => 32,
            RingSize::R128 => 128,
            RingSize::R256 => 256,
        }
    }

    /// The ring for a queue whose size the device fixes (`fixed`, legacy
    /// PCI), else the one we choose if the device's maximum allows it.
    pub fn pick(fixed: Option<u16>, max: u32) -> Result<RingSize, RingError> {
        match fixed {
            Some(0) => Err(RingError::NoQueue),
            Some(n) => Self::ALL
                .into_iter()
                .find(|r| r.entries() == usize::from(n))
                .ok_or(RingError::FixedUnsupported { size: n }),
            None if max as usize >= Self::CHOSEN.entries() => Ok(Self::CHOSEN),
            None => Err(RingError::MaxTooSmall { max }),
        }
    }
}

/// Why no ring could be sized for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The device fixes a queue size this driver is not built for.
    FixedUnsupported { size: u16 },
    /// The device's maximum is below the size we choose.
    MaxTooSmall { max: u32 },
    /// The device has no request queue (a fixed size of 0).
    NoQueue,
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::FixedUnsupported { size } => write!(
                f,
                "fixed queue size {size} not supported (supported: 32, 128, 256)"
            ),
            RingError::NoQueue => write!(f, "no request queue (size 0)"),
            RingError::MaxTooSmall { max } => write!(
                f,
                "queue size max {max} below the {} this driver uses",
                RingSize::CHOSEN.entries()
            ),
        }
    }
}

/// How a device broke protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// The used entry names a chain that is not the request in flight.
    BadUsedId { id: u16, want: u16 },
    /// The used length runs past the device-writable buffers.
    UsedLenBeyondBuffer { len: u32, writable: usize },
    /// The used length does not reach the status byte.
    StatusNotWritten,
    /// A status byte that is not OK, IOERR or UNSUPP.
    BadStatus { status: u8 },
    /// More used entries than requests in flight.
    ExtraUsed,
    /// The queue would not take a request that fits it (its state is
    /// corrupt).
    QueueRefused(virtio_drivers::Error),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtocolError::BadUsedId { id, want } => write!(f, "bad-used-id id={id} want={want}"),
            ProtocolError::UsedLenBeyondBuffer { len, writable } => {
                write!(f, "used-len-beyond-buffer len={len} writable={writable}")
            }
            ProtocolError::StatusNotWritten => write!(f, "status-not-written"),
            ProtocolError::BadStatus { status } => write!(f, "bad-status status={status}"),
            ProtocolError::ExtraUsed => write!(f, "extra-used-entry"),
            ProtocolError::QueueRefused(e) => write!(f, "queue-refused error={e}"),
        }
    }
}

/// What a well-formed completion said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    IoErr,
    Unsupp,
}

/// Checks a completion: `used_id`/`used_len` from the used ring, `token`
/// the request's chain, `writable` the bytes the device could write (read
/// data + the status byte), `status` the status byte as popped.
pub fn check_completion(
    token: u16,
    used_id: u16,
    used_len: u32,
    writable: usize,
    status: u8,
) -> Result<Status, ProtocolError> {
    if used_id != token {
        return Err(ProtocolError::BadUsedId {
            id: used_id,
            want: token,
        });
    }
    if used_len as usize > writable {
        return Err(ProtocolError::UsedLenBeyondBuffer {
            len: used_len,
            writable,
        });
    }
    if used_len == 0 {
        return Err(ProtocolError::StatusNotWritten);
    }
    match status {
        S_OK => Ok(Status::Ok),
        S_IOERR => Ok(Status::IoErr),
        S_UNSUPP => Ok(Status::Unsupp),
        status => Err(ProtocolError::BadStatus { status }),
    }
}

/// The request header (`virtio_blk_req` up to the data), little-endian
/// (legacy devices on the little-endian guests Skiff runs on agree).
pub fn header(kind: u32, sector: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    h
}

/// Per-request limits, from the config space and the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes per data segment (descriptor).
    pub seg_bytes: usize,
    /// Data segments per request.
    pub max_segs: usize,
    /// The device's block size: requests start and end on it.
    pub blk_size: usize,
}

impl Limits {
    /// `size_max`, `seg_max`, `blk_size` are the config values of the
    /// features negotiated (None when not). Nonsense values are ignored
    /// with a warning: a zero `size_max`/`seg_max`, a block size that is
    /// not a power of two in 512..=65536.
    pub fn new(
        size_max: Option<u32>,
        seg_max: Option<u32>,
        blk_size: Option<u32>,
        ring: usize,
    ) -> Result<Limits, &'static str> {
        let seg_bytes = match size_max {
            Some(0) => {
                log::warn!("virtio: blk size_max=0 ignored");
                SEG_BYTES
            }
            Some(n) => (n as usize).min(SEG_BYTES),
            None => SEG_BYTES,
        };
        // Header and status take a descriptor each.
        let mut max_segs = ring - 2;
        match seg_max {
            Some(0) => log::warn!("virtio: blk seg_max=0 ignored"),
            Some(n) => max_segs = max_segs.min(n as usize),
            None => {}
        }
        let blk_size = match blk_size {
            Some(b) if b.is_power_of_two() && (512..=65536).contains(&b) => b as usize,
            Some(b) => {
                log::warn!("virtio: blk blk_size={b} ignored");
                SECTOR
            }
            None => SECTOR,
        };
        let l = Limits {
            seg_bytes,
            max_segs,
            blk_size,
        };
        if l.request_bytes() == 0 {
            return Err("size_max x seg_max below one block");
        }
        Ok(l)
    }

    /// The most data one request carries: whole blocks within
    /// `max_segs` segments of `seg_bytes`.
    pub fn request_bytes(&self) -> usize {
        let raw = self.seg_bytes * self.max_segs;
        raw - raw % self.blk_size
    }

    /// Whether `sector`/`len` (bytes) start and end on a block.
    pub fn aligned(&self, sector: u64, len: usize) -> bool {
        let per = (self.blk_size / SECTOR) as u64;
        sector.is_multiple_of(per) && len.is_multiple_of(self.blk_size)
    }
}

/// Checks a request against the capacity (sectors): a whole, non-empty
/// number of sectors that ends inside the disk.
pub fn check_range(capacity: u64, sector: u64, len: usize) -> Result<(), DeviceError> {
    if len == 0 || !len.is_multiple_of(SECTOR) {
        return Err(DeviceError::OutOfRange);
    }
    let end = sector
        .checked_add((len / SECTOR) as u64)
        .ok_or(DeviceError::OutOfRange)?;
    if end > capacity {
        return Err(DeviceError::OutOfRange);
    }
    Ok(())
}

/// Splits a transfer of `len` bytes at `sector` into requests:
/// (first sector, byte range) each.
pub fn split(
    limits: &Limits,
    sector: u64,
    len: usize,
) -> impl Iterator<Item = (u64, core::ops::Range<usize>)> {
    let step = limits.request_bytes();
    (0..len)
        .step_by(step)
        .map(move |off| (sector + (off / SECTOR) as u64, off..len.min(off + step)))
}

/// The queue, at the size the device wants.
enum Ring {
    R32(Box<VirtQueue<VirtioHal, 32>>),
    R128(Box<VirtQueue<VirtioHal, 128>>),
    R256(Box<VirtQueue<VirtioHal, 256>>),
}

/// Runs `$body` with `$q` bound to the queue, whatever its size.
macro_rules! with_ring {
    ($ring:expr, $q:ident => $body:expr) => {
        match $ring {
            Ring::R32($q) => $body,
            Ring::R128($q) => $body,
            Ring::R256($q) => $body,
        }
    };
}

impl Ring {
    fn new(t: &mut AnyTransport, size: RingSize) -> Result<Ring, virtio_drivers::Error> {
        Ok(match size {
            RingSize::R32 => Ring::R32(Box::new(VirtQueue::new(t, QUEUE, false, false)?)),
            RingSize::R128 => Ring::R128(Box::new(VirtQueue::new(t, QUEUE, false, false)?)),
            RingSize::R256 => Ring::R256(Box::new(VirtQueue::new(t, QUEUE, false, false)?)),
        })
    }
}

/// A request's buffers: the data segments go in `data` (device-readable
/// for a write, device-writable for a read).
enum Data<'a> {
    None,
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

/// The queue and transport of a live device.
struct Live {
    transport: AnyTransport,
    ring: Ring,
}

impl Drop for Live {
    fn drop(&mut self) {
        // Reset first, so the device stops using the ring before its
        // memory goes back. A request left in flight keeps its bounce
        // pages (a few, once per broken device).
        self.transport.set_status(DeviceStatus::empty());
        self.transport.queue_unset(QUEUE);
    }
}

/// Posts one request, waits for it and checks its completion.
fn request<const N: usize>(
    q: &mut VirtQueue<VirtioHal, N>,
    t: &mut AnyTransport,
    waiter: Option<&'static dyn CompletionWait>,
    seg_bytes: usize,
    hdr: &[u8; 16],
    data: Data<'_>,
) -> Result<Status, ProtocolError> {
    let mut status = [0u8; 1];
    let segs = match &data {
        Data::None => 0,
        Data::Read(b) => b.len().div_ceil(seg_bytes),
        Data::Write(b) => b.len().div_ceil(seg_bytes),
    };
    let mut inputs: Vec<&[u8]> = Vec::with_capacity(1 + segs);
    let mut outputs: Vec<&mut [u8]> = Vec::with_capacity(1 + segs);
    inputs.push(hdr);
    match data {
        Data::None => {}
        Data::Read(buf) => outputs.extend(buf.chunks_mut(seg_bytes)),
        Data::Write(buf) => inputs.extend(buf.chunks(seg_bytes)),
    }
    outputs.push(&mut status);
    let writable: usize = outputs.iter().map(|b| b.len()).sum();
    // SAFETY: the buffers (`hdr`, the caller's data, `status`) stay
    // borrowed, untouched, until `pop_used` below takes them back with the
    // same slices; if the device breaks protocol first the queue is
    // dropped (device reset) without touching them again. The device never
    // sees them anyway: `VirtioHal` bounces them through DMA pages.
    #[allow(unsafe_code)]
    let token = match unsafe { q.add(&inputs, &mut outputs) } {
        Ok(t) => t,
        // One request at a time, within the ring's descriptors: only
        // reachable if the queue state is corrupt.
        Err(e) => return Err(ProtocolError::QueueRefused(e)),
    };
    if q.should_notify() {
        t.notify(QUEUE);
    }
    {
        let mut done = || q.can_pop();
        match waiter {
            Some(w) => w.wait(&mut done),
            None => skiff_hal::spin_until(&mut done),
        }
    }
    let used_id = q.peek_used().unwrap_or(u16::MAX);
    if used_id != token {
        return Err(ProtocolError::BadUsedId {
            id: used_id,
            want: token,
        });
    }
    // SAFETY: the same slices `add` got for this token.
    #[allow(unsafe_code)]
    let used_len = unsafe { q.pop_used(token, &inputs, &mut outputs) }.map_err(|_| {
        ProtocolError::BadUsedId {
            id: used_id,
            want: token,
        }
    })?;
    if q.can_pop() {
        return Err(ProtocolError::ExtraUsed);
    }
    check_completion(token, used_id, used_len, writable, status[0])
}

/// A virtio block device. Requests are whole sectors.
pub struct Blk {
    live: Option<Live>,
    capacity: u64,
    readonly: bool,
    flush: bool,
    limits: Limits,
    ring: RingSize,
    /// How requests wait for completion: the kernel's interrupt wait when
    /// the device's interrupt is wired, else spinning.
    waiter: Option<&'static dyn CompletionWait>,
}

/// Which of the request kinds, for log lines and status mapping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

impl Blk {
    pub fn new(mut t: AnyTransport) -> Result<Self, DeviceError> {
        if t.device_type() != DeviceType::Block {
            return Err(DeviceError::WrongType);
        }
        // virtio 3.1.1: features, then config, queue, DRIVER_OK.
        let (_, features) = super::negotiate(&mut t, WANTED, "blk")?;
        let fail = |t: &mut AnyTransport| {
            t.set_status(DeviceStatus::FAILED);
            DeviceError::Init
        };

        let has = |bit: u64| features & bit != 0;
        let cfg = t.read_consistent(|| {
            let lo = t.read_config_space::<u32>(CFG_CAPACITY)?;
            let hi = t.read_config_space::<u32>(CFG_CAPACITY + 4)?;
            let opt = |bit, off| -> virtio_drivers::Result<Option<u32>> {
                Ok(if has(bit) {
                    Some(t.read_config_space::<u32>(off)?)
                } else {
                    None
                })
            };
            Ok((
                u64::from(lo) | (u64::from(hi) << 32),
                opt(F_SIZE_MAX, CFG_SIZE_MAX)?,
                opt(F_SEG_MAX, CFG_SEG_MAX)?,
                opt(F_BLK_SIZE, CFG_BLK_SIZE)?,
            ))
        });
        let Ok((capacity, size_max, seg_max, blk_size)) = cfg else {
            log::warn!("virtio: blk config space unreadable");
            return Err(fail(&mut t));
        };
        if capacity > u64::MAX / SECTOR as u64 {
            log::warn!("virtio: blk capacity={capacity} sectors is nonsense");
            return Err(fail(&mut t));
        }

        // Legacy PCI fixes the size (0: no such queue); others let us choose.
        let fixed = t.fixed_queue_size(QUEUE);
        let max = t.max_queue_size(QUEUE);
        let ring_size = match RingSize::pick(fixed, max) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("virtio: blk refused: {e}");
                return Err(fail(&mut t));
            }
        };
        let limits = match Limits::new(size_max, seg_max, blk_size, ring_size.entries()) {
            Ok(l) => l,
            Err(why) => {
                log::warn!("virtio: blk refused: {why} (size_max={size_max:?} seg_max={seg_max:?} blk_size={blk_size:?})");
                return Err(fail(&mut t));
            }
        };
        let ring = match Ring::new(&mut t, ring_size) {
            Ok(r) => r,
            Err(e) => {
                log::warn!(
                    "virtio: blk queue of {} entries (device max {max}): {e}",
                    ring_size.entries()
                );
                return Err(fail(&mut t));
            }
        };
        t.finish_init();
        log::info!(
            "virtio: blk ring={} seg_bytes={} max_segs={} blk_size={} features={features:#x}",
            ring_size.entries(),
            limits.seg_bytes,
            limits.max_segs,
            limits.blk_size
        );
        Ok(Blk {
            live: Some(Live { transport: t, ring }),
            capacity,
            readonly: has(F_RO),
            flush: has(F_FLUSH),
            limits,
            ring: ring_size,
            waiter: None,
        })
    }

    /// Requests then sleep in `waiter` until the device completes them
    /// (its interrupt wakes them) instead of spinning.
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

    /// The request limits in force (segment size, segments, block size).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Entries in the request ring.
    pub fn ring_entries(&self) -> usize {
        self.ring.entries()
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), DeviceError> {
        check_range(self.capacity, sector, len)?;
        if !self.limits.aligned(sector, len) {
            return Err(DeviceError::OutOfRange);
        }
        Ok(())
    }

    /// One request, with the outcome mapped: a protocol error resets the
    /// device.
    fn one(&mut self, kind: Kind, sector: u64, data: Data<'_>) -> Result<(), DeviceError> {
        let live = self.live.as_mut().ok_or(DeviceError::Broken)?;
        let (ty, len) = match &data {
            Data::None => (T_FLUSH, 0),
            Data::Read(b) => (T_IN, b.len()),
            Data::Write(b) => (T_OUT, b.len()),
        };
        let hdr = header(ty, sector);
        let seg = self.limits.seg_bytes;
        let t = &mut live.transport;
        let r = with_ring!(&mut live.ring, q => request(q, t, self.waiter, seg, &hdr, data));
        let name = match kind {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Flush => "flush",
        };
        match r {
            Ok(Status::Ok) => Ok(()),
            Ok(Status::IoErr) => {
                log::warn!("virtio: blk {name} sector={sector} len={len} status=ioerr");
                Err(DeviceError::Io)
            }
            Ok(Status::Unsupp) => {
                log::warn!("virtio: blk {name} sector={sector} len={len} status=unsupp");
                // A write the device refuses: it is read-only after all.
                Err(if kind == Kind::Write {
                    DeviceError::ReadOnly
                } else {
                    DeviceError::Io
                })
            }
            Err(e) => {
                log::warn!("virtio: blk protocol error={e}; reset");
                self.live = None;
                Err(DeviceError::Broken)
            }
        }
    }

    /// Reads `buf.len() / 512` sectors from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.check(sector, buf.len())?;
        let limits = self.limits;
        for (at, range) in split(&limits, sector, buf.len()) {
            self.one(Kind::Read, at, Data::Read(&mut buf[range]))?;
        }
        Ok(())
    }

    /// Writes `buf.len() / 512` sectors at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.check(sector, buf.len())?;
        if self.readonly {
            return Err(DeviceError::ReadOnly);
        }
        let limits = self.limits;
        for (at, range) in split(&limits, sector, buf.len()) {
            self.one(Kind::Write, at, Data::Write(&buf[range]))?;
        }
        Ok(())
    }

    /// Makes earlier writes durable (a no-op if the device has no cache,
    /// i.e. did not offer `FLUSH`).
    pub fn flush(&mut self) -> Result<(), DeviceError> {
        if self.live.is_none() {
            return Err(DeviceError::Broken);
        }
        if !self.flush {
            return Ok(());
        }
        self.one(Kind::Flush, 0, Data::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_follows_the_device() {
        // A device that lets us choose gets our size if its maximum allows.
        assert_eq!(RingSize::pick(None, 1024), Ok(RingSize::R32));
        assert_eq!(RingSize::pick(None, 32), Ok(RingSize::R32));
        assert_eq!(
            RingSize::pick(None, 16),
            Err(RingError::MaxTooSmall { max: 16 })
        );
        // A fixed size is matched exactly, or refused.
        assert_eq!(RingSize::pick(Some(256), 256), Ok(RingSize::R256));
        assert_eq!(RingSize::pick(Some(128), 128), Ok(RingSize::R128));
        assert_eq!(
            RingSize::pick(Some(1024), 1024),
            Err(RingError::FixedUnsupported { size: 1024 })
        );
        assert_eq!(
            RingSize::pick(Some(64), 1024),
            Err(RingError::FixedUnsupported { size: 64 })
        );
        assert_eq!(RingSize::pick(Some(0), 0), Err(RingError::NoQueue));
        for r in RingSize::ALL {
            assert!(r.entries().is_power_of_two());
        }
    }

    #[test]
    fn header_layout() {
        let h = header(T_OUT, 0x0102_0304_0506_0708);
        assert_eq!(&h[..4], &[1, 0, 0, 0]);
        assert_eq!(&h[4..8], &[0; 4], "reserved/ioprio zero");
        assert_eq!(&h[8..], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&header(T_FLUSH, 0)[..4], &[4, 0, 0, 0]);
        assert_eq!(&header(T_IN, 0)[..], &[0; 16]);
    }

    #[test]
    fn limits_from_config() {
        // Nothing offered: page segments, ring minus header and status.
        let l = Limits::new(None, None, None, 32).unwrap();
        assert_eq!((l.seg_bytes, l.max_segs, l.blk_size), (4096, 30, 512));
        assert_eq!(l.request_bytes(), 30 * 4096);
        // QEMU's usual seg_max (queue size - 2) on a 256 ring.
        let l = Limits::new(None, Some(254), None, 256).unwrap();
        assert_eq!(l.max_segs, 254);
        // A tighter seg_max and size_max bind.
        let l = Limits::new(Some(1024), Some(3), None, 256).unwrap();
        assert_eq!((l.seg_bytes, l.max_segs), (1024, 3));
        assert_eq!(l.request_bytes(), 3072);
        // size_max above a page still gives page segments.
        assert_eq!(
            Limits::new(Some(1 << 20), None, None, 32)
                .unwrap()
                .seg_bytes,
            4096
        );
        // Zeroes are ignored.
        let l = Limits::new(Some(0), Some(0), None, 32).unwrap();
        assert_eq!((l.seg_bytes, l.max_segs), (4096, 30));
        // A request rounds down to whole blocks.
        let l = Limits::new(Some(3000), Some(3), Some(4096), 32).unwrap();
        assert_eq!(l.request_bytes(), 8192);
        // Too small to carry one block: refused.
        assert!(Limits::new(Some(100), Some(2), None, 32).is_err());
        assert!(Limits::new(Some(1000), Some(3), Some(4096), 32).is_err());
        // A block size that is not a power of two in range is ignored.
        assert_eq!(
            Limits::new(None, None, Some(1000), 32).unwrap().blk_size,
            512
        );
        assert_eq!(
            Limits::new(None, None, Some(256), 32).unwrap().blk_size,
            512
        );
        assert_eq!(
            Limits::new(None, None, Some(4096), 32).unwrap().blk_size,
            4096
        );
    }

    #[test]
    fn alignment_to_block_size() {
        let l = Limits::new(None, None, Some(4096), 32).unwrap();
        assert!(l.aligned(8, 4096));
        assert!(l.aligned(0, 8192));
        assert!(!l.aligned(1, 4096));
        assert!(!l.aligned(8, 512));
        let l = Limits::new(None, None, None, 32).unwrap();
        assert!(l.aligned(1, 512));
    }

    #[test]
    fn range_checks() {
        assert_eq!(check_range(16, 0, 16 * 512), Ok(()));
        assert_eq!(check_range(16, 15, 512), Ok(()));
        assert_eq!(check_range(16, 16, 512), Err(DeviceError::OutOfRange));
        assert_eq!(check_range(16, 15, 1024), Err(DeviceError::OutOfRange));
        assert_eq!(check_range(16, 0, 0), Err(DeviceError::OutOfRange));
        assert_eq!(check_range(16, 0, 100), Err(DeviceError::OutOfRange));
        assert_eq!(
            check_range(u64::MAX, u64::MAX, 512),
            Err(DeviceError::OutOfRange)
        );
    }

    #[test]
    fn split_honours_the_limits() {
        let l = Limits::new(Some(1024), Some(3), None, 256).unwrap();
        let parts: Vec<_> = split(&l, 100, 7 * 1024).collect();
        assert_eq!(
            parts,
            [(100, 0..3072), (106, 3072..6144), (112, 6144..7168)]
        );
        // Every part fits its segments.
        for (_, r) in &parts {
            assert!(r.len().div_ceil(l.seg_bytes) <= l.max_segs);
            assert_eq!(r.len() % SECTOR, 0);
        }
        // One request when it fits.
        let l = Limits::new(None, None, None, 32).unwrap();
        let parts: Vec<_> = split(&l, 7, 64 * 1024).collect();
        assert_eq!(parts, [(7, 0..64 * 1024)]);
        // The parts tile the transfer exactly.
        let l = Limits::new(Some(4096), Some(5), Some(4096), 32).unwrap();
        let len = 100 * 4096;
        let parts: Vec<_> = split(&l, 800, len).collect();
        let mut next = 0;
        for (sector, r) in &parts {
            assert_eq!(r.start, next);
            assert_eq!(*sector, 800 + (r.start / SECTOR) as u64);
            assert!(l.aligned(*sector, r.len()));
            next = r.end;
        }
        assert_eq!(next, len);
        assert_eq!(parts.len(), 20);
    }

    #[test]
    fn completion_checks() {
        // A read of 1024 bytes: 1025 writable.
        assert_eq!(check_completion(3, 3, 1025, 1025, S_OK), Ok(Status::Ok));
        assert_eq!(check_completion(3, 3, 1, 1, S_IOERR), Ok(Status::IoErr));
        assert_eq!(check_completion(3, 3, 1, 1, S_UNSUPP), Ok(Status::Unsupp));
        // Not the request in flight.
        assert_eq!(
            check_completion(3, 4, 1, 1, S_OK),
            Err(ProtocolError::BadUsedId { id: 4, want: 3 })
        );
        // Longer than the writable buffers.
        assert_eq!(
            check_completion(3, 3, 1026, 1025, S_OK),
            Err(ProtocolError::UsedLenBeyondBuffer {
                len: 1026,
                writable: 1025
            })
        );
        // Status never written.
        assert_eq!(
            check_completion(3, 3, 0, 1, S_OK),
            Err(ProtocolError::StatusNotWritten)
        );
        // A status byte outside the protocol.
        assert_eq!(
            check_completion(3, 3, 1, 1, 0xff),
            Err(ProtocolError::BadStatus { status: 0xff })
        );
        assert_eq!(
            check_completion(3, 3, 1, 1, 3),
            Err(ProtocolError::BadStatus { status: 3 })
        );
    }
}
