//! The interface network drivers offer the network stack: whole Ethernet
//! frames in and out, the MAC address, the MTU and the link state. The
//! kernel's smoltcp `Device` wraps a `NetDevice` (kernel/src/net).

/// Why a frame could not be sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No transmit slot free right now; try again after a completion.
    Busy,
    /// Shorter than an Ethernet header or longer than MTU + header.
    BadFrame,
    /// The received frame does not fit the caller's buffer; it was dropped.
    BufferTooSmall { needed: usize },
    /// The device reported an error for this frame.
    Device,
    /// The device broke protocol and was reset; it is gone.
    Broken,
}

/// A network interface card.
pub trait NetDevice: Send {
    fn mac(&self) -> [u8; 6];
    /// IP MTU (payload bytes after the 14-byte Ethernet header).
    fn mtu(&self) -> usize;
    fn link_up(&self) -> bool;
    /// Queues one Ethernet frame (without FCS) for transmission.
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError>;
    /// Copies the next received frame into `buf`: `Ok(Some(len))`, or
    /// `Ok(None)` when nothing is waiting.
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError>;
}

/// `52:54:00:12:34:56` form.
pub struct MacAddr(pub [u8; 6]);

impl core::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}
