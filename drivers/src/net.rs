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

/// Checksum work a device takes off the stack (what was negotiated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Frames sent through [`NetDevice::send_with`] with a [`TxCsum`]
    /// get their TCP/UDP checksum completed by the device (virtio
    /// `VIRTIO_NET_F_CSUM`).
    pub tx_csum: bool,
    /// The device may mark received frames whose TCP/UDP checksum it
    /// verified ([`RxMeta::csum_valid`]; virtio `VIRTIO_NET_F_GUEST_CSUM`).
    pub rx_csum_valid: bool,
}

/// A partial checksum for the device to complete: the Internet checksum
/// of `frame[start..]` is folded into the 16-bit field at
/// `start + offset`, which holds the pseudo-header sum ([`tx_csum_prepare`]
/// puts it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxCsum {
    pub start: u16,
    pub offset: u16,
}

/// How a frame is to be sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxMeta {
    pub csum: Option<TxCsum>,
}

/// What the device said about a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// Frame length in the caller's buffer.
    pub len: usize,
    /// The frame's TCP/UDP checksum was verified (or completed) by the
    /// device: the stack may skip verifying it. `false` says nothing.
    pub csum_valid: bool,
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

    /// Whether a frame sent now would be queued (a transmit slot is free,
    /// after reclaiming finished ones). The stack asks before it builds a
    /// frame, so a full queue holds packets back instead of dropping them.
    fn can_send(&mut self) -> bool {
        true
    }

    /// The checksum offloads in force (none unless the driver says so).
    fn offloads(&self) -> Offloads {
        Offloads::default()
    }

    /// Sends `frame` as [`send`](Self::send), with a partial checksum to
    /// complete. Drivers without transmit offload (this default) complete
    /// it in software, so the frame leaves correct either way.
    fn send_with(&mut self, frame: &[u8], meta: TxMeta) -> Result<(), NetError> {
        match meta.csum {
            None => self.send(frame),
            Some(c) => {
                let mut f = alloc::vec::Vec::from(frame);
                if !complete_csum(&mut f, c) {
                    return Err(NetError::BadFrame);
                }
                self.send(&f)
            }
        }
    }

    /// Receives as [`receive`](Self::receive), with what the device said
    /// about the frame (by default: nothing verified).
    fn receive_with(&mut self, buf: &mut [u8]) -> Result<Option<RxMeta>, NetError> {
        Ok(self.receive(buf)?.map(|len| RxMeta {
            len,
            csum_valid: false,
        }))
    }
}

// ---- checksums (RFC 1071), for offload set-up and software fallback ----

const ETH_HDR: usize = 14;

/// One's-complement sum of `data` (big-endian 16-bit words, an odd last
/// byte padded with zero) added to `acc`, not folded.
pub fn csum_add(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
        // Fold early so long buffers cannot overflow.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*b) << 8);
    }
    acc
}

/// Folds a sum to 16 bits (not inverted).
pub fn csum_fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Completes a partial checksum in software (what a device does for
/// `NEEDS_CSUM`): the field at `start + offset` holds the pseudo-header
/// sum; it becomes the inverted sum over `frame[start..]`. `false` when
/// the field lies outside the frame.
pub fn complete_csum(frame: &mut [u8], c: TxCsum) -> bool {
    let start = usize::from(c.start);
    let field = start + usize::from(c.offset);
    if start >= frame.len() || field + 2 > frame.len() {
        return false;
    }
    let sum = !csum_fold(csum_add(0, &frame[start..]));
    // UDP sends an all-zero result as 0xffff (RFC 768); TCP accepts either.
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Where a frame's TCP or UDP header sits: (L4 offset, checksum field
/// offset within it, pseudo-header sum, L4 length). `None` for anything
/// else (other protocols, IPv4 fragments or options past the frame,
/// IPv6 extension headers, truncated frames).
fn l4_of(frame: &[u8]) -> Option<(usize, usize, u32, usize)> {
    let ethertype = frame.get(12..14)?;
    let (l4, proto, pseudo, l4_len) = match ethertype {
        [0x08, 0x00] => {
            let ip = frame.get(ETH_HDR..ETH_HDR + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            // More-fragments or a fragment offset: the L4 checksum spans
            // fragments, no single frame can be completed.
            if ip[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return None;
            }
            let l4_len = total.checked_sub(ihl)?;
            if ETH_HDR + total > frame.len() {
                return None;
            }
            let proto = ip[9];
            let mut acc = csum_add(0, &ip[12..20]);
            acc = acc
                .wrapping_add(u32::from(proto))
                .wrapping_add(l4_len as u32);
            (ETH_HDR + ihl, proto, acc, l4_len)
        }
        [0x86, 0xdd] => {
            let ip = frame.get(ETH_HDR..ETH_HDR + 40)?;
            if ip[0] >> 4 != 6 {
                return None;
            }
            let l4_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if ETH_HDR + 40 + l4_len > frame.len() {
                return None;
            }
            let proto = ip[6];
            let mut acc = csum_add(0, &ip[8..40]);
            acc = acc
                .wrapping_add(u32::from(proto))
                .wrapping_add(l4_len as u32);
            (ETH_HDR + 40, proto, acc, l4_len)
        }
        _ => return None,
    };
    let field = match proto {
        6 if l4_len >= 20 => 16,
        17 if l4_len >= 8 => 6,
        _ => return None,
    };
    Some((l4, field, pseudo, l4_len))
}

/// Prepares a TCP or UDP frame for transmit checksum offload: writes the
/// pseudo-header sum into its checksum field and returns what the device
/// needs. `None` (frame untouched) when the frame is not one the device
/// can complete; the caller then checksums it in software (or the stack
/// already did).
pub fn tx_csum_prepare(frame: &mut [u8]) -> Option<TxCsum> {
    let (l4, field, pseudo, _) = l4_of(frame)?;
    let at = l4 + field;
    frame[at..at + 2].copy_from_slice(&csum_fold(pseudo).to_be_bytes());
    Some(TxCsum {
        start: u16::try_from(l4).ok()?,
        offset: field as u16,
    })
}

/// Whether a received frame's TCP or UDP checksum is right (`true` also
/// for frames that are neither, and for UDP over IPv4 without a checksum):
/// the software check a stack does when the device did not mark the frame
/// verified.
pub fn l4_csum_ok(frame: &[u8]) -> bool {
    let Some((l4, field, pseudo, l4_len)) = l4_of(frame) else {
        return true;
    };
    let seg = &frame[l4..l4 + l4_len];
    if field == 6 && seg[6..8] == [0, 0] && frame[12..14] == [0x08, 0x00] {
        return true;
    }
    csum_fold(csum_add(pseudo, seg)) == 0xffff
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + TCP (20-byte header) frame with `payload`.
    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (40 + payload.len()) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 2, 15]);
        f[30..34].copy_from_slice(&[10, 0, 2, 2]);
        f[34..36].copy_from_slice(&80u16.to_be_bytes());
        f[36..38].copy_from_slice(&40000u16.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x18;
        f.extend_from_slice(payload);
        f
    }

    /// Ethernet + IPv6 + UDP frame with `payload`.
    fn udp6(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        let l4 = (8 + payload.len()) as u16;
        f[18..20].copy_from_slice(&l4.to_be_bytes());
        f[20] = 17;
        f[21] = 64;
        f[22..38].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f[38..54].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f[58..60].copy_from_slice(&l4.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(csum_fold(csum_add(0, &data)), 0xddf2);
        // An odd last byte is padded with zero.
        assert_eq!(csum_fold(csum_add(0, &[0x12])), 0x1200);
    }

    #[test]
    fn prepare_then_complete_gives_a_valid_checksum() {
        for mut f in [tcp4(b"GET / HTTP/1.0\r\n\r\n"), tcp4(b"odd"), udp6(b"dns?")] {
            let c = tx_csum_prepare(&mut f).expect("tcp/udp frame");
            assert!(complete_csum(&mut f, c));
            assert!(l4_csum_ok(&f));
            // One flipped payload bit is caught.
            let last = f.len() - 1;
            f[last] ^= 0x10;
            assert!(!l4_csum_ok(&f));
        }
    }

    #[test]
    fn offsets_for_tcp_and_udp() {
        let mut t = tcp4(b"x");
        assert_eq!(
            tx_csum_prepare(&mut t),
            Some(TxCsum {
                start: 34,
                offset: 16
            })
        );
        let mut u = udp6(b"x");
        assert_eq!(
            tx_csum_prepare(&mut u),
            Some(TxCsum {
                start: 54,
                offset: 6
            })
        );
    }

    #[test]
    fn not_offloadable_frames_left_alone() {
        // An IPv4 fragment (more-fragments bit).
        let mut f = tcp4(b"abc");
        f[20] = 0x20;
        let before = f.clone();
        assert_eq!(tx_csum_prepare(&mut f), None);
        assert_eq!(f, before);
        // ICMP, ARP, truncated.
        let mut icmp = tcp4(b"abc");
        icmp[23] = 1;
        assert_eq!(tx_csum_prepare(&mut icmp), None);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(tx_csum_prepare(&mut arp), None);
        let mut short = tcp4(b"abc");
        short.truncate(40);
        assert_eq!(tx_csum_prepare(&mut short), None);
        assert!(l4_csum_ok(&arp));
    }

    #[test]
    fn complete_refuses_a_field_past_the_frame() {
        let mut f = tcp4(b"");
        assert!(!complete_csum(
            &mut f,
            TxCsum {
                start: 34,
                offset: 20
            }
        ));
        assert!(!complete_csum(
            &mut f,
            TxCsum {
                start: 60,
                offset: 0
            }
        ));
    }

    struct Plain(Vec<Vec<u8>>);
    impl NetDevice for Plain {
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 1]
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn link_up(&self) -> bool {
            true
        }
        fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
            self.0.push(frame.to_vec());
            Ok(())
        }
        fn receive(&mut self, _buf: &mut [u8]) -> Result<Option<usize>, NetError> {
            Ok(None)
        }
    }

    #[test]
    fn default_send_with_completes_in_software() {
        let mut d = Plain(Vec::new());
        assert_eq!(d.offloads(), Offloads::default());
        let mut f = tcp4(b"payload");
        let c = tx_csum_prepare(&mut f).unwrap();
        d.send_with(&f, TxMeta { csum: Some(c) }).unwrap();
        assert!(l4_csum_ok(&d.0[0]));
        assert_eq!(d.receive_with(&mut [0; 64]), Ok(None));
    }
}
