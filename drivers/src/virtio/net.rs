//! virtio-net, written on the `virtio-drivers` crate's public lower-level
//! pieces (its `Transport` and `queue::VirtQueue`, with our `Hal`) rather
//! than its `VirtIONet`/`VirtIONetRaw`: those negotiate a fixed feature
//! set (MAC, STATUS, EVENT_IDX, INDIRECT_DESC, VERSION_1), so checksum
//! offload (`VIRTIO_NET_F_CSUM`, `GUEST_CSUM`) and mergeable receive
//! buffers (`MRG_RXBUF`) cannot be negotiated, and they keep the
//! per-packet `virtio_net_hdr` private (no NEEDS_CSUM / DATA_VALID /
//! num_buffers).
//!
//! What the device reports is checked before it is used: a used entry
//! naming a chain not in flight (bad id, or a used index run past what was
//! posted), a used length beyond its buffer or shorter than the header,
//! `num_buffers` of 0 or beyond the buffers posted or used, a GSO frame
//! (none negotiated), or a partial checksum outside the frame. Any of them
//! resets the device, logs `virtio: net at=... protocol error=...; reset`,
//! and the driver answers `NetError::Broken` from then on.
//!
//! The header parsing and frame reassembly ([`parse_rx_header`],
//! [`Assembler`]) are plain functions over bytes, tested on the host.

use super::hal::VirtioHal;
use super::{AnyTransport, DeviceError};
use crate::net::{self, NetDevice, NetError, Offloads, RxMeta, TxCsum, TxMeta};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// Feature bits (virtio 1.2, 5.1.3 and 6).
pub const F_CSUM: u64 = 1 << 0;
pub const F_GUEST_CSUM: u64 = 1 << 1;
pub const F_MTU: u64 = 1 << 3;
pub const F_MAC: u64 = 1 << 5;
pub const F_MRG_RXBUF: u64 = 1 << 15;
pub const F_STATUS: u64 = 1 << 16;
pub const F_ANY_LAYOUT: u64 = 1 << 27;
pub const F_VERSION_1: u64 = 1 << 32;

/// What this driver accepts when offered. No GSO/TSO in either direction
/// (so received frames are at most MTU-sized), no control queue, no
/// indirect descriptors or event index (one descriptor per buffer).
pub const WANTED: u64 =
    F_CSUM | F_GUEST_CSUM | F_MAC | F_MRG_RXBUF | F_STATUS | F_ANY_LAYOUT | F_VERSION_1;

/// `virtio_net_hdr.flags`.
pub const HDR_NEEDS_CSUM: u8 = 1;
pub const HDR_DATA_VALID: u8 = 2;
/// `virtio_net_hdr.gso_type` for an ordinary frame.
pub const GSO_NONE: u8 = 0;

/// Receive ring size (buffers posted), transmit ring size. 256 each: a
/// legacy device (VirtualBox, QEMU `disable-modern=on`) fixes its queue
/// sizes and QEMU's and VirtualBox's net queues have 256 entries; a
/// modern one takes any size up to its maximum (256 on QEMU).
pub const RXQ: usize = 256;
pub const TXQ: usize = 256;
/// Receive buffer size with mergeable buffers: a full-size frame (12 +
/// 1514 bytes) spans two, so merging is exercised by ordinary traffic.
const RX_BUF_MRG: usize = 1024;
/// Receive buffer size without: header + MTU 1500 frame, with room.
const RX_BUF_PLAIN: usize = 2048;
/// The largest frame sent: MTU 1500 + Ethernet header.
const TX_BUF: usize = 12 + 1514;

const QUEUE_RX: u16 = 0;
const QUEUE_TX: u16 = 1;

/// How a device broke protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A used entry names a descriptor chain that is not in flight.
    BadUsedId { id: u16 },
    /// The used length runs past the buffer posted.
    UsedLenBeyondBuffer { len: u32, buffer: usize },
    /// The used length does not cover the `virtio_net_hdr`.
    ShortHeader { len: u32, header: usize },
    /// `num_buffers` is 0, or more than the buffers posted.
    NumBuffers { n: u16, posted: usize },
    /// A frame's later buffers were not used together with its first.
    MissingBuffers { want: u16, got: u16 },
    /// A GSO frame, though no GSO feature was negotiated.
    Gso { gso_type: u8 },
    /// NEEDS_CSUM without GUEST_CSUM, or a checksum field outside the frame.
    BadCsum { start: u16, offset: u16, len: usize },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtocolError::BadUsedId { id } => write!(f, "bad-used-id id={id}"),
            ProtocolError::UsedLenBeyondBuffer { len, buffer } => {
                write!(f, "used-len-beyond-buffer len={len} buffer={buffer}")
            }
            ProtocolError::ShortHeader { len, header } => {
                write!(f, "short-header len={len} header={header}")
            }
            ProtocolError::NumBuffers { n, posted } => {
                write!(f, "num-buffers n={n} posted={posted}")
            }
            ProtocolError::MissingBuffers { want, got } => {
                write!(f, "missing-buffers want={want} got={got}")
            }
            ProtocolError::Gso { gso_type } => write!(f, "gso-not-negotiated type={gso_type}"),
            ProtocolError::BadCsum { start, offset, len } => {
                write!(f, "bad-csum start={start} offset={offset} len={len}")
            }
        }
    }
}

/// What was negotiated, as the data path needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// `virtio_net_hdr` length: 12 with VERSION_1 or MRG_RXBUF (it has
    /// `num_buffers`), else 10 (legacy).
    pub hdr_len: usize,
    pub mrg_rxbuf: bool,
    pub guest_csum: bool,
    pub csum: bool,
}

impl NetConfig {
    pub fn from_features(f: u64) -> Self {
        let mrg_rxbuf = f & F_MRG_RXBUF != 0;
        NetConfig {
            hdr_len: if f & F_VERSION_1 != 0 || mrg_rxbuf {
                12
            } else {
                10
            },
            mrg_rxbuf,
            guest_csum: f & F_GUEST_CSUM != 0,
            csum: f & F_CSUM != 0,
        }
    }

    /// Size of each receive buffer posted.
    pub fn rx_buf(&self) -> usize {
        if self.mrg_rxbuf {
            RX_BUF_MRG
        } else {
            RX_BUF_PLAIN
        }
    }
}

/// A received `virtio_net_hdr` (little-endian; legacy devices on the
/// little-endian guests Skiff runs on use the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxHeader {
    pub flags: u8,
    pub gso_type: u8,
    pub csum_start: u16,
    pub csum_offset: u16,
    /// Buffers the frame spans (1 without MRG_RXBUF).
    pub num_buffers: u16,
}

/// Parses and checks the header at the start of a frame's first buffer.
/// `used_len` is the device's length for that buffer (header included),
/// `buffer` the buffer's size and `posted` how many receive buffers the
/// device held, this one included.
pub fn parse_rx_header(
    cfg: &NetConfig,
    first: &[u8],
    used_len: u32,
    posted: usize,
) -> Result<RxHeader, ProtocolError> {
    if used_len as usize > first.len() {
        return Err(ProtocolError::UsedLenBeyondBuffer {
            len: used_len,
            buffer: first.len(),
        });
    }
    if (used_len as usize) < cfg.hdr_len {
        return Err(ProtocolError::ShortHeader {
            len: used_len,
            header: cfg.hdr_len,
        });
    }
    let u16_at = |o: usize| u16::from_le_bytes([first[o], first[o + 1]]);
    let h = RxHeader {
        flags: first[0],
        gso_type: first[1],
        csum_start: u16_at(6),
        csum_offset: u16_at(8),
        num_buffers: if cfg.mrg_rxbuf { u16_at(10) } else { 1 },
    };
    if h.num_buffers == 0 || usize::from(h.num_buffers) > posted {
        return Err(ProtocolError::NumBuffers {
            n: h.num_buffers,
            posted,
        });
    }
    if h.gso_type != GSO_NONE {
        return Err(ProtocolError::Gso {
            gso_type: h.gso_type,
        });
    }
    Ok(h)
}

/// Writes the transmit header for a frame into `out[..cfg.hdr_len]`.
pub fn write_tx_header(cfg: &NetConfig, csum: Option<TxCsum>, out: &mut [u8]) {
    out[..cfg.hdr_len].fill(0);
    if let Some(c) = csum {
        out[0] = HDR_NEEDS_CSUM;
        out[6..8].copy_from_slice(&c.start.to_le_bytes());
        out[8..10].copy_from_slice(&c.offset.to_le_bytes());
    }
}

/// Puts one received frame together from its buffers into the caller's
/// buffer, checking every length the device gave.
pub struct Assembler<'a> {
    cfg: NetConfig,
    out: &'a mut [u8],
    hdr: RxHeader,
    /// Frame bytes seen so far (copied while they fit).
    len: usize,
    /// Buffers taken so far.
    parts: u16,
}

impl<'a> Assembler<'a> {
    /// Starts with the first buffer (see [`parse_rx_header`]).
    pub fn first(
        cfg: NetConfig,
        out: &'a mut [u8],
        first: &[u8],
        used_len: u32,
        posted: usize,
    ) -> Result<Self, ProtocolError> {
        let hdr = parse_rx_header(&cfg, first, used_len, posted)?;
        let mut a = Assembler {
            cfg,
            out,
            hdr,
            len: 0,
            parts: 1,
        };
        a.copy(&first[cfg.hdr_len..used_len as usize]);
        Ok(a)
    }

    fn copy(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        if end <= self.out.len() {
            self.out[self.len..end].copy_from_slice(data);
        }
        self.len = end;
    }

    /// Buffers still to take for this frame.
    pub fn remaining(&self) -> u16 {
        self.hdr.num_buffers - self.parts
    }

    pub fn header(&self) -> RxHeader {
        self.hdr
    }

    /// Adds a later buffer of a merged frame.
    pub fn more(&mut self, buf: &[u8], used_len: u32) -> Result<(), ProtocolError> {
        if used_len as usize > buf.len() {
            return Err(ProtocolError::UsedLenBeyondBuffer {
                len: used_len,
                buffer: buf.len(),
            });
        }
        self.parts += 1;
        self.copy(&buf[..used_len as usize]);
        Ok(())
    }

    /// The frame, once every buffer is in: `Ok(Ok(meta))`, or
    /// `Ok(Err(BufferTooSmall))` when it did not fit the caller's buffer.
    /// A partial checksum (NEEDS_CSUM) is completed here.
    pub fn finish(self) -> Result<Result<RxMeta, NetError>, ProtocolError> {
        if self.remaining() != 0 {
            return Err(ProtocolError::MissingBuffers {
                want: self.hdr.num_buffers,
                got: self.parts,
            });
        }
        let h = self.hdr;
        let mut csum_valid = false;
        if h.flags & HDR_NEEDS_CSUM != 0 {
            let bad = ProtocolError::BadCsum {
                start: h.csum_start,
                offset: h.csum_offset,
                len: self.len,
            };
            let field = usize::from(h.csum_start) + usize::from(h.csum_offset);
            if !self.cfg.guest_csum || field + 2 > self.len {
                return Err(bad);
            }
            if self.len <= self.out.len() {
                let c = TxCsum {
                    start: h.csum_start,
                    offset: h.csum_offset,
                };
                if !net::complete_csum(&mut self.out[..self.len], c) {
                    return Err(bad);
                }
            }
            csum_valid = true;
        } else if h.flags & HDR_DATA_VALID != 0 && self.cfg.guest_csum {
            csum_valid = true;
        }
        if self.len > self.out.len() {
            return Ok(Err(NetError::BufferTooSmall { needed: self.len }));
        }
        Ok(Ok(RxMeta {
            len: self.len,
            csum_valid,
        }))
    }
}

/// Buffers and queues of a live device.
struct Live {
    transport: AnyTransport,
    rxq: VirtQueue<VirtioHal, RXQ>,
    txq: VirtQueue<VirtioHal, TXQ>,
    rx_bufs: Vec<Vec<u8>>,
    /// Receive buffer slot posted under each token (descriptor head).
    rx_slot: [Option<usize>; RXQ],
    rx_posted: usize,
    tx_bufs: Vec<Vec<u8>>,
    /// (slot, length shared) of the transmit in flight under each token.
    tx_inflight: [Option<(usize, usize)>; TXQ],
    tx_free: Vec<usize>,
}

impl Live {
    fn post_rx(&mut self, slot: usize) -> Result<(), ProtocolError> {
        let buf = self.rx_bufs[slot].as_mut_slice();
        // SAFETY: the buffer stays in `rx_bufs` (never resized or moved:
        // its heap block is fixed) and untouched until `pop_used` hands it
        // back for this token; the device never sees it anyway, `VirtioHal`
        // bounces it through a DMA block.
        #[allow(unsafe_code)]
        let token = unsafe { self.rxq.add(&[], &mut [buf]) }.map_err(|_| {
            // The ring has room for every buffer we own: not reachable
            // unless the queue state is corrupt.
            ProtocolError::BadUsedId { id: u16::MAX }
        })?;
        let t = usize::from(token);
        if t >= RXQ || self.rx_slot[t].is_some() {
            return Err(ProtocolError::BadUsedId { id: token });
        }
        self.rx_slot[t] = Some(slot);
        self.rx_posted += 1;
        Ok(())
    }

    /// Pops the next used receive buffer: (slot, used length).
    fn pop_rx(&mut self) -> Result<Option<(usize, u32)>, ProtocolError> {
        let Some(id) = self.rxq.peek_used() else {
            return Ok(None);
        };
        let slot = self
            .rx_slot
            .get(usize::from(id))
            .copied()
            .flatten()
            .ok_or(ProtocolError::BadUsedId { id })?;
        let buf = self.rx_bufs[slot].as_mut_slice();
        // SAFETY: `buf` is the buffer posted under `id` (recorded in
        // `rx_slot` when `add` returned that token).
        #[allow(unsafe_code)]
        let len = unsafe { self.rxq.pop_used(id, &[], &mut [buf]) }
            .map_err(|_| ProtocolError::BadUsedId { id })?;
        self.rx_slot[usize::from(id)] = None;
        self.rx_posted -= 1;
        Ok(Some((slot, len)))
    }

    /// Takes back every completed transmit buffer.
    fn reap_tx(&mut self) -> Result<(), ProtocolError> {
        while let Some(id) = self.txq.peek_used() {
            let (slot, n) = self
                .tx_inflight
                .get(usize::from(id))
                .copied()
                .flatten()
                .ok_or(ProtocolError::BadUsedId { id })?;
            let buf = &self.tx_bufs[slot][..n];
            // SAFETY: the same slice (slot and length) `send` added under
            // this token.
            #[allow(unsafe_code)]
            unsafe { self.txq.pop_used(id, &[buf], &mut []) }
                .map_err(|_| ProtocolError::BadUsedId { id })?;
            self.tx_inflight[usize::from(id)] = None;
            self.tx_free.push(slot);
        }
        Ok(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Reset first, so the device stops using the rings before their
        // memory goes back. Buffers still posted keep their bounce blocks
        // (a few pages, once per broken device).
        self.transport.set_status(DeviceStatus::empty());
        self.transport.queue_unset(QUEUE_RX);
        self.transport.queue_unset(QUEUE_TX);
    }
}

/// A virtio network device.
pub struct Net {
    live: Option<Live>,
    cfg: NetConfig,
    features: u64,
    mac: [u8; 6],
    mtu: usize,
    link_up: Option<bool>,
    /// Where it was found, for log lines.
    at: String,
}

impl Net {
    pub fn new(mut t: AnyTransport) -> Result<Self, DeviceError> {
        if t.device_type() != DeviceType::Network {
            return Err(DeviceError::WrongType);
        }
        // virtio 3.1.1: features, then queues, DRIVER_OK.
        let (offered, features) = super::negotiate(&mut t, WANTED, "net")?;
        let cfg = NetConfig::from_features(features);

        // virtio_net_config: mac[6] at 0, status u16 at 6, mtu u16 at 10.
        let mut mac = [0u8; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = t
                .read_config_space::<u8>(i)
                .map_err(|_| DeviceError::Init)?;
        }
        let link_up = if features & F_STATUS != 0 {
            t.read_config_space::<u16>(6).ok().map(|s| s & 1 != 0)
        } else {
            None
        };
        let mtu = if offered & F_MTU != 0 {
            t.read_config_space::<u16>(10)
                .ok()
                .map(usize::from)
                .filter(|m| (68..=1500).contains(m))
                .unwrap_or(1500)
        } else {
            1500
        };

        let fail = |t: &mut AnyTransport| {
            t.set_status(DeviceStatus::FAILED);
            DeviceError::Init
        };
        let rxq = match VirtQueue::new(&mut t, QUEUE_RX, false, false) {
            Ok(q) => q,
            Err(_) => return Err(fail(&mut t)),
        };
        let txq = match VirtQueue::new(&mut t, QUEUE_TX, false, false) {
            Ok(q) => q,
            Err(_) => {
                t.queue_unset(QUEUE_RX);
                return Err(fail(&mut t));
            }
        };
        let mut live = Live {
            transport: t,
            rxq,
            txq,
            rx_bufs: (0..RXQ).map(|_| vec![0u8; cfg.rx_buf()]).collect(),
            rx_slot: [None; RXQ],
            rx_posted: 0,
            tx_bufs: (0..TXQ).map(|_| vec![0u8; TX_BUF]).collect(),
            tx_inflight: [None; TXQ],
            tx_free: (0..TXQ).rev().collect(),
        };
        for slot in 0..RXQ {
            if live.post_rx(slot).is_err() {
                return Err(DeviceError::Init);
            }
        }
        live.transport.finish_init();
        if live.rxq.should_notify() {
            live.transport.notify(QUEUE_RX);
        }
        Ok(Net {
            live: Some(live),
            cfg,
            features,
            mac,
            mtu,
            link_up,
            at: String::from("?"),
        })
    }

    /// Names the device in log lines (`pci:00:03.0`, `mmio:0x...`).
    pub fn set_location(&mut self, at: &str) {
        self.at = String::from(at);
    }

    /// Link state from the device config, when it reports one.
    pub fn link(&self) -> Option<bool> {
        self.link_up
    }

    /// The feature bits negotiated.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// `csum,guest_csum,mrg_rxbuf` as negotiated, for the boot log.
    pub fn offload_names(&self) -> String {
        let mut s = String::new();
        for (bit, name) in [
            (F_CSUM, "csum"),
            (F_GUEST_CSUM, "guest_csum"),
            (F_MRG_RXBUF, "mrg_rxbuf"),
        ] {
            if self.features & bit != 0 {
                if !s.is_empty() {
                    s.push(',');
                }
                s.push_str(name);
            }
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }

    fn broken(&mut self, e: ProtocolError) -> NetError {
        log::warn!("virtio: net at={} protocol error={e}; reset", self.at);
        self.live = None;
        NetError::Broken
    }

    fn send_inner(&mut self, frame: &[u8], csum: Option<TxCsum>) -> Result<(), NetError> {
        if frame.len() > self.mtu + 14 || frame.len() < 14 {
            return Err(NetError::BadFrame);
        }
        let cfg = self.cfg;
        let live = self.live.as_mut().ok_or(NetError::Broken)?;
        if let Err(e) = live.reap_tx() {
            return Err(self.broken(e));
        }
        let Some(slot) = live.tx_free.pop() else {
            return Err(NetError::Busy);
        };
        let n = cfg.hdr_len + frame.len();
        {
            let buf = &mut live.tx_bufs[slot];
            write_tx_header(&cfg, csum, buf);
            buf[cfg.hdr_len..n].copy_from_slice(frame);
        }
        let buf = &live.tx_bufs[slot][..n];
        // SAFETY: the slice stays in `tx_bufs`, untouched, until
        // `reap_tx` pops this token with the same slice.
        #[allow(unsafe_code)]
        let token = match unsafe { live.txq.add(&[buf], &mut []) } {
            Ok(t) => t,
            Err(_) => {
                live.tx_free.push(slot);
                return Err(NetError::Busy);
            }
        };
        match live.tx_inflight.get_mut(usize::from(token)) {
            Some(s @ None) => *s = Some((slot, n)),
            _ => return Err(self.broken(ProtocolError::BadUsedId { id: token })),
        }
        if live.txq.should_notify() {
            live.transport.notify(QUEUE_TX);
        }
        Ok(())
    }

    fn receive_inner(&mut self, out: &mut [u8]) -> Result<Option<RxMeta>, NetError> {
        let cfg = self.cfg;
        let live = self.live.as_mut().ok_or(NetError::Broken)?;
        let r = (|| -> Result<Option<Result<RxMeta, NetError>>, ProtocolError> {
            let posted = live.rx_posted;
            let Some((slot, len)) = live.pop_rx()? else {
                return Ok(None);
            };
            let mut taken = Vec::with_capacity(1);
            taken.push(slot);
            let mut asm = Assembler::first(cfg, out, &live.rx_bufs[slot], len, posted)?;
            while asm.remaining() > 0 {
                let Some((slot, len)) = live.pop_rx()? else {
                    let h = asm.header();
                    return Err(ProtocolError::MissingBuffers {
                        want: h.num_buffers,
                        got: h.num_buffers - asm.remaining(),
                    });
                };
                taken.push(slot);
                asm.more(&live.rx_bufs[slot], len)?;
            }
            let frame = asm.finish()?;
            for slot in taken {
                live.post_rx(slot)?;
            }
            if live.rxq.should_notify() {
                live.transport.notify(QUEUE_RX);
            }
            Ok(Some(frame))
        })();
        match r {
            Ok(None) => Ok(None),
            Ok(Some(Ok(meta))) => Ok(Some(meta)),
            Ok(Some(Err(e))) => Err(e),
            Err(e) => Err(self.broken(e)),
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
        self.send_inner(frame, None)
    }

    fn can_send(&mut self) -> bool {
        let Some(live) = self.live.as_mut() else {
            // Broken: let the send report it.
            return true;
        };
        if let Err(e) = live.reap_tx() {
            self.broken(e);
            return true;
        }
        let live = self.live.as_ref().expect("still live");
        !live.tx_free.is_empty() && live.txq.available_desc() > 0
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        Ok(self.receive_inner(buf)?.map(|m| m.len))
    }

    fn offloads(&self) -> Offloads {
        Offloads {
            tx_csum: self.cfg.csum,
            rx_csum_valid: self.cfg.guest_csum,
        }
    }

    fn send_with(&mut self, frame: &[u8], meta: TxMeta) -> Result<(), NetError> {
        match meta.csum {
            Some(c) if !self.cfg.csum => {
                let mut f = Vec::from(frame);
                if !net::complete_csum(&mut f, c) {
                    return Err(NetError::BadFrame);
                }
                self.send_inner(&f, None)
            }
            Some(c) => {
                let field = usize::from(c.start) + usize::from(c.offset);
                if field + 2 > frame.len() {
                    return Err(NetError::BadFrame);
                }
                self.send_inner(frame, Some(c))
            }
            None => self.send_inner(frame, None),
        }
    }

    fn receive_with(&mut self, buf: &mut [u8]) -> Result<Option<RxMeta>, NetError> {
        self.receive_inner(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODERN_MRG: u64 = F_VERSION_1 | F_MRG_RXBUF | F_CSUM | F_GUEST_CSUM;

    fn hdr(flags: u8, gso: u8, start: u16, off: u16, nbuf: u16) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = flags;
        h[1] = gso;
        h[6..8].copy_from_slice(&start.to_le_bytes());
        h[8..10].copy_from_slice(&off.to_le_bytes());
        h[10..12].copy_from_slice(&nbuf.to_le_bytes());
        h
    }

    fn buffer(size: usize, header: &[u8], payload: &[u8]) -> (Vec<u8>, u32) {
        let mut b = vec![0xeeu8; size];
        b[..header.len()].copy_from_slice(header);
        b[header.len()..header.len() + payload.len()].copy_from_slice(payload);
        (b, (header.len() + payload.len()) as u32)
    }

    #[test]
    fn header_length_follows_features() {
        assert_eq!(NetConfig::from_features(F_VERSION_1).hdr_len, 12);
        assert_eq!(NetConfig::from_features(F_MRG_RXBUF).hdr_len, 12);
        assert_eq!(NetConfig::from_features(0).hdr_len, 10);
        assert_eq!(NetConfig::from_features(F_MRG_RXBUF).rx_buf(), RX_BUF_MRG);
        assert_eq!(NetConfig::from_features(F_VERSION_1).rx_buf(), RX_BUF_PLAIN);
    }

    #[test]
    fn header_checks() {
        let cfg = NetConfig::from_features(MODERN_MRG);
        let (b, len) = buffer(64, &hdr(0, 0, 0, 0, 2), &[1; 20]);
        let h = parse_rx_header(&cfg, &b, len, 4).unwrap();
        assert_eq!(h.num_buffers, 2);
        // Used length past the buffer.
        assert_eq!(
            parse_rx_header(&cfg, &b, 65, 4),
            Err(ProtocolError::UsedLenBeyondBuffer {
                len: 65,
                buffer: 64
            })
        );
        // Shorter than the header.
        assert!(matches!(
            parse_rx_header(&cfg, &b, 11, 4),
            Err(ProtocolError::ShortHeader { .. })
        ));
        // num_buffers 0, or more than posted.
        let (b0, l0) = buffer(64, &hdr(0, 0, 0, 0, 0), &[1; 20]);
        assert_eq!(
            parse_rx_header(&cfg, &b0, l0, 4),
            Err(ProtocolError::NumBuffers { n: 0, posted: 4 })
        );
        let (b5, l5) = buffer(64, &hdr(0, 0, 0, 0, 5), &[1; 20]);
        assert!(parse_rx_header(&cfg, &b5, l5, 4).is_err());
        assert!(parse_rx_header(&cfg, &b5, l5, 5).is_ok());
        // GSO never negotiated.
        let (bg, lg) = buffer(64, &hdr(0, 1, 0, 0, 1), &[1; 20]);
        assert_eq!(
            parse_rx_header(&cfg, &bg, lg, 4),
            Err(ProtocolError::Gso { gso_type: 1 })
        );
        // Without MRG_RXBUF, num_buffers is not read (legacy 10-byte header).
        let legacy = NetConfig::from_features(0);
        let (bl, ll) = buffer(64, &hdr(0, 0, 0, 0, 0)[..10], &[1; 20]);
        assert_eq!(parse_rx_header(&legacy, &bl, ll, 1).unwrap().num_buffers, 1);
    }

    #[test]
    fn merged_frame_reassembled_in_order() {
        let cfg = NetConfig::from_features(MODERN_MRG);
        let frame: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
        let (b1, l1) = buffer(1024, &hdr(0, 0, 0, 0, 3), &frame[..1012]);
        let (b2, l2) = buffer(1024, &[], &frame[1012..2036]);
        let (b3, l3) = buffer(1024, &[], &frame[2036..]);
        let mut out = vec![0u8; 4096];
        let mut a = Assembler::first(cfg, &mut out, &b1, l1, 8).unwrap();
        assert_eq!(a.remaining(), 2);
        a.more(&b2, l2).unwrap();
        a.more(&b3, l3).unwrap();
        let m = a.finish().unwrap().unwrap();
        assert_eq!(m.len, 2500);
        assert!(!m.csum_valid);
        assert_eq!(&out[..2500], &frame[..]);
    }

    #[test]
    fn merged_frame_bad_lengths_and_missing_parts() {
        let cfg = NetConfig::from_features(MODERN_MRG);
        let (b1, l1) = buffer(1024, &hdr(0, 0, 0, 0, 2), &[9; 1012]);
        let mut out = vec![0u8; 4096];
        let mut a = Assembler::first(cfg, &mut out, &b1, l1, 8).unwrap();
        // A later buffer's used length past its buffer.
        assert_eq!(
            a.more(&[0; 100], 101),
            Err(ProtocolError::UsedLenBeyondBuffer {
                len: 101,
                buffer: 100
            })
        );
        let mut out = vec![0u8; 4096];
        let a = Assembler::first(cfg, &mut out, &b1, l1, 8).unwrap();
        // Finished before its second buffer.
        assert_eq!(
            a.finish().unwrap_err(),
            ProtocolError::MissingBuffers { want: 2, got: 1 }
        );
    }

    #[test]
    fn too_small_caller_buffer_reports_the_need() {
        let cfg = NetConfig::from_features(MODERN_MRG);
        let (b1, l1) = buffer(1024, &hdr(0, 0, 0, 0, 2), &[1; 1012]);
        let (b2, l2) = buffer(1024, &[], &[2; 500]);
        let mut out = vec![0u8; 1200];
        let mut a = Assembler::first(cfg, &mut out, &b1, l1, 8).unwrap();
        a.more(&b2, l2).unwrap();
        assert_eq!(
            a.finish().unwrap(),
            Err(NetError::BufferTooSmall { needed: 1512 })
        );
    }

    /// An Ethernet + IPv4 + UDP frame with `payload`, checksum field 0.
    fn udp4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 2, 15]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 2]);
        let udp = &mut f[34..42];
        udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        udp[2..4].copy_from_slice(&7u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn needs_csum_completed_and_marked_valid() {
        let cfg = NetConfig::from_features(MODERN_MRG);
        let mut frame = udp4(b"hello, checksum");
        let c = net::tx_csum_prepare(&mut frame).unwrap();
        assert_eq!((c.start, c.offset), (34, 6));
        assert!(!net::l4_csum_ok(&frame), "a partial checksum is not final");
        let (b, l) = buffer(1024, &hdr(HDR_NEEDS_CSUM, 0, c.start, c.offset, 1), &frame);
        let mut out = vec![0u8; 2048];
        let a = Assembler::first(cfg, &mut out, &b, l, 8).unwrap();
        let m = a.finish().unwrap().unwrap();
        assert!(m.csum_valid);
        assert!(net::l4_csum_ok(&out[..m.len]));

        // The checksum field past the frame is nonsense.
        let (b, l) = buffer(1024, &hdr(HDR_NEEDS_CSUM, 0, 34, 200, 1), &frame);
        let mut out = vec![0u8; 2048];
        let a = Assembler::first(cfg, &mut out, &b, l, 8).unwrap();
        assert!(matches!(a.finish(), Err(ProtocolError::BadCsum { .. })));

        // NEEDS_CSUM without GUEST_CSUM negotiated is nonsense too.
        let plain = NetConfig::from_features(F_VERSION_1 | F_MRG_RXBUF);
        let (b, l) = buffer(1024, &hdr(HDR_NEEDS_CSUM, 0, 34, 6, 1), &frame);
        let mut out = vec![0u8; 2048];
        let a = Assembler::first(plain, &mut out, &b, l, 8).unwrap();
        assert!(matches!(a.finish(), Err(ProtocolError::BadCsum { .. })));
    }

    #[test]
    fn data_valid_only_counts_with_guest_csum() {
        let frame = udp4(b"x");
        for (features, want) in [(MODERN_MRG, true), (F_VERSION_1 | F_MRG_RXBUF, false)] {
            let cfg = NetConfig::from_features(features);
            let (b, l) = buffer(1024, &hdr(HDR_DATA_VALID, 0, 0, 0, 1), &frame);
            let mut out = vec![0u8; 2048];
            let a = Assembler::first(cfg, &mut out, &b, l, 8).unwrap();
            assert_eq!(a.finish().unwrap().unwrap().csum_valid, want);
        }
    }

    #[test]
    fn tx_header_layout() {
        let cfg = NetConfig::from_features(F_VERSION_1 | F_CSUM);
        let mut out = [0xaau8; 16];
        write_tx_header(
            &cfg,
            Some(TxCsum {
                start: 34,
                offset: 16,
            }),
            &mut out,
        );
        assert_eq!(&out[..12], &hdr(HDR_NEEDS_CSUM, 0, 34, 16, 0));
        assert_eq!(out[12], 0xaa, "nothing past the header written");
        let legacy = NetConfig::from_features(0);
        let mut out = [0xaau8; 12];
        write_tx_header(&legacy, None, &mut out);
        assert_eq!(&out[..10], &[0; 10]);
        assert_eq!(&out[10..], &[0xaa, 0xaa]);
    }
}
