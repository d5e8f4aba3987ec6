//! Receive checksums of TCP and UDP, checked by the NIC layer before a
//! frame reaches smoltcp, eight bytes at a time. smoltcp's own check sums
//! 16-bit words one by one (a fifth of the instructions of a bulk receive
//! on arm64, `SKIFF_BENCH_PROFILE=tcp_bulk`); with this check in front,
//! `eth0` tells smoltcp to compute TCP/UDP checksums on transmit only. On
//! x86_64 the loop is an `add`/`adc` per 8 bytes. On arm64 it gains
//! nothing yet: the kernel target is built with strict alignment, so the
//! compiler assembles each unaligned 64-bit word from bytes (an aligned
//! view of the frame needs `unsafe`, which the kernel crate denies). A frame whose checksum is wrong is dropped here, as smoltcp
//! would drop it. What this cannot check (IPv4 fragments, IPv6 extension
//! headers other than hop-by-hop, routing and destination options) passes
//! unchecked; smoltcp (built without fragment reassembly) drops
//! fragments, and parses everything else with its usual length checks.

const ETH_HDR: usize = 14;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// The one's-complement sum of `data` as a big-endian 16-bit value (not
/// inverted), with an odd last byte padded with zero (RFC 1071). Sums
/// native-endian 64-bit words with end-around carry; the byte order is
/// fixed once at the end (RFC 1071's byte-order independence).
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, carry) = acc.overflowing_add(w);
        acc = s + u64::from(carry);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        let (s, carry) = acc.overflowing_add(u64::from_ne_bytes(last));
        acc = s + u64::from(carry);
    }
    let native = fold(acc);
    if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    }
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's-complement addition of 16-bit values.
fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// Sum of a pseudo-header's addresses (big-endian 16-bit words).
fn words(bytes: &[u8]) -> u16 {
    sum(bytes)
}

/// Whether `frame`'s TCP or UDP checksum is right, or cannot be checked
/// here (anything not TCP/UDP over IPv4/IPv6, fragments, short or odd
/// frames: smoltcp's parser judges those). False only for a checksum
/// that is present and wrong.
pub fn rx_ok(frame: &[u8]) -> bool {
    let Some(ethertype) = frame.get(12..14) else {
        return true;
    };
    let ip = &frame[ETH_HDR.min(frame.len())..];
    match ethertype {
        [0x08, 0x00] => v4_ok(ip),
        [0x86, 0xdd] => v6_ok(ip),
        _ => true,
    }
}

fn v4_ok(ip: &[u8]) -> bool {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return true;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let proto = ip[9];
    if ihl < 20 || total < ihl || total > ip.len() || frag & 0x3fff != 0 {
        return true;
    }
    let seg = &ip[ihl..total];
    if !matches!(proto, TCP | UDP) {
        return true;
    }
    if proto == UDP && seg.len() >= 8 && seg[6] == 0 && seg[7] == 0 {
        // UDP over IPv4 without a checksum.
        return true;
    }
    let len = u16::try_from(seg.len()).unwrap_or(u16::MAX);
    let pseudo = add(add(words(&ip[12..20]), u16::from(proto)), len);
    add(pseudo, sum(seg)) == 0xffff
}

fn v6_ok(ip: &[u8]) -> bool {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return true;
    }
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if 40 + payload > ip.len() {
        return true;
    }
    let mut next = ip[6];
    let mut at = 40;
    let end = 40 + payload;
    // Hop-by-hop, routing, destination options: skipped over.
    while matches!(next, 0 | 43 | 60) {
        let Some(h) = ip.get(at..at + 2) else {
            return true;
        };
        let len = (usize::from(h[1]) + 1) * 8;
        next = h[0];
        at += len;
        if at > end {
            return true;
        }
    }
    if !matches!(next, TCP | UDP) {
        return true;
    }
    let seg = &ip[at..end];
    let len = u32::try_from(seg.len()).unwrap_or(u32::MAX);
    let pseudo = add(
        add(words(&ip[8..40]), (len >> 16) as u16),
        add(len as u16, u16::from(next)),
    );
    add(pseudo, sum(seg)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        IpAddress, IpProtocol, IpRepr, Ipv4Address, Ipv6Address, TcpControl, TcpPacket, TcpRepr,
        TcpSeqNumber,
    };

    /// RFC 1071's plain 16-bit word sum.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn sum_matches_the_word_by_word_sum() {
        let mut x: u32 = 12345;
        let data: alloc::vec::Vec<u8> = (0..3000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for len in [0, 1, 2, 7, 8, 9, 15, 64, 1459, 1460, 2999, 3000] {
            for start in [0, 1, 3] {
                let d = &data[start..len.max(start)];
                assert_eq!(sum(d), naive(d), "len {len} start {start}");
            }
        }
        assert_eq!(sum(&[0xff; 64]), 0xffff);
    }

    fn tcp_repr(payload: &[u8]) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 7,
            dst_port: 40000,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(1234),
            ack_number: Some(TcpSeqNumber(99)),
            window_len: 512,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        }
    }

    /// An Ethernet frame carrying a TCP segment from `src` to `dst` (both
    /// v4 or both v6), checksums computed by smoltcp.
    fn tcp_frame(src: IpAddress, dst: IpAddress, payload: &[u8]) -> alloc::vec::Vec<u8> {
        let tcp = tcp_repr(payload);
        let ip = IpRepr::new(src, dst, IpProtocol::Tcp, tcp.buffer_len(), 64);
        let mut f = alloc::vec![0u8; ETH_HDR + ip.buffer_len()];
        let ethertype = match ip {
            IpRepr::Ipv4(_) => [0x08, 0x00],
            IpRepr::Ipv6(_) => [0x86, 0xdd],
        };
        f[12..14].copy_from_slice(&ethertype);
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut f[ETH_HDR..], &caps);
        let at = ETH_HDR + ip.header_len();
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut f[at..]),
            &src,
            &dst,
            &caps,
        );
        f
    }

    fn v4_frame(payload: &[u8]) -> alloc::vec::Vec<u8> {
        tcp_frame(
            IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 15)),
            IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 2)),
            payload,
        )
    }

    #[test]
    fn a_good_ipv4_segment_passes_and_a_flipped_byte_fails() {
        for len in [0usize, 1, 64, 1001, 1460] {
            let payload: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut f = v4_frame(&payload);
            assert!(rx_ok(&f), "len {len}");
            // Ethernet padding after the IP packet is not summed.
            f.extend_from_slice(&[0xab; 6]);
            assert!(rx_ok(&f), "padded, len {len}");
            let last = f.len() - 7;
            f[last] ^= 0x10;
            assert!(!rx_ok(&f), "corrupted, len {len}");
        }
    }

    #[test]
    fn a_good_ipv6_segment_passes_and_a_flipped_byte_fails() {
        let src = Ipv6Address::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
        let dst = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let mut f = tcp_frame(IpAddress::Ipv6(src), IpAddress::Ipv6(dst), &[0x5au8; 333]);
        assert!(rx_ok(&f));
        f[ETH_HDR + 40 + 25] ^= 1;
        assert!(!rx_ok(&f));
    }

    #[test]
    fn what_cannot_be_checked_passes() {
        let mut f = v4_frame(b"hello");
        let n = f.len();
        f[n - 1] ^= 1;
        // A fragment (MF set): left to smoltcp.
        f[ETH_HDR + 6] |= 0x20;
        assert!(rx_ok(&f));
        assert!(rx_ok(&[0u8; 10]));
        assert!(rx_ok(&[0x08, 0x06]));
    }
}
