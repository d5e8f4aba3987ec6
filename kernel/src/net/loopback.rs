//! The loopback device: every packet sent is received back, in order.
//! smoltcp has one too; this one lets the stack see whether packets are
//! still queued (so a poll loop knows when loopback traffic has settled)
//! and bounds the queue so a runaway sender cannot exhaust the heap.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The MTU of `lo` (Linux uses 65536; smoltcp's IP length field caps
/// packets at 65535).
pub const MTU: usize = 65535;
/// Packets queued at most; more are dropped, as a full device queue does.
const QUEUE_MAX: usize = 1024;

/// An IP-medium loopback device.
#[derive(Default)]
pub struct Loopback {
    queue: VecDeque<Vec<u8>>,
}

impl Loopback {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets sent and not yet received back.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

impl Device for Loopback {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = MTU;
        caps.medium = Medium::Ip;
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let buffer = self.queue.pop_front()?;
        Some((
            RxToken { buffer },
            TxToken {
                queue: &mut self.queue,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            queue: &mut self.queue,
        })
    }
}

pub struct RxToken {
    buffer: Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.buffer)
    }
}

pub struct TxToken<'a> {
    queue: &'a mut VecDeque<Vec<u8>>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buffer = vec![0; len];
        let r = f(&mut buffer);
        if self.queue.len() < QUEUE_MAX {
            self.queue.push_back(buffer);
        }
        r
    }
}
