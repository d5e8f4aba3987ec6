//! Socket addresses as the app passes them: decoding `struct sockaddr_un`,
//! `sockaddr_in` and `sockaddr_in6` (with Linux's length and family
//! checks) into [`SockAddr`], and encoding them back for `accept`,
//! `getsockname`, `recvfrom`. Layouts are the same on x86_64 and aarch64.

use crate::errno::{Errno, KResult};
use alloc::string::String;
use alloc::vec::Vec;

pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `sizeof(struct sockaddr_un)`: family and a 108-byte path.
pub const UNIX_ADDR_MAX: usize = 110;
const SIN_LEN: usize = 16;
const SIN6_LEN: usize = 28;
/// Linux accepts the RFC 2133 size (no scope id) too.
const SIN6_LEN_MIN: usize = 24;
/// The most any `getsockname` can write (`sizeof(struct sockaddr_storage)`).
pub const STORAGE_LEN: usize = 128;

/// An AF_UNIX name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnixAddr {
    /// Not bound (a `socketpair` end, a client that never bound).
    Unnamed,
    /// A file-system path.
    Path(String),
    /// The abstract namespace: the bytes after the leading NUL.
    Abstract(Vec<u8>),
}

/// A decoded socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// `AF_UNSPEC` (connect's "dissolve the association").
    Unspec,
    Unix(UnixAddr),
    V4 {
        ip: [u8; 4],
        port: u16,
    },
    V6 {
        ip: [u8; 16],
        port: u16,
        flowinfo: u32,
        scope_id: u32,
    },
}

fn family_of(raw: &[u8]) -> KResult<u16> {
    if raw.len() < 2 {
        return Err(Errno::EINVAL);
    }
    Ok(u16::from_le_bytes([raw[0], raw[1]]))
}

/// Decodes `raw` (exactly `addrlen` bytes) for a socket of family
/// `family`. EINVAL for a bad length; a family other than the socket's is
/// EINVAL for AF_UNIX and EAFNOSUPPORT for the inet families (AF_UNSPEC
/// is returned as [`SockAddr::Unspec`] for the caller to judge).
pub fn decode(family: u16, raw: &[u8]) -> KResult<SockAddr> {
    if raw.len() > STORAGE_LEN {
        return Err(Errno::EINVAL);
    }
    let fam = family_of(raw)?;
    match family {
        AF_UNIX => {
            if fam != AF_UNIX || raw.len() > UNIX_ADDR_MAX {
                return Err(Errno::EINVAL);
            }
            let path = &raw[2..];
            if path.is_empty() {
                return Ok(SockAddr::Unix(UnixAddr::Unnamed));
            }
            if path[0] == 0 {
                return Ok(SockAddr::Unix(UnixAddr::Abstract(path[1..].to_vec())));
            }
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            let s = core::str::from_utf8(&path[..end]).map_err(|_| Errno::EINVAL)?;
            Ok(SockAddr::Unix(UnixAddr::Path(String::from(s))))
        }
        AF_INET | AF_INET6 => {
            if fam == AF_UNSPEC {
                return Ok(SockAddr::Unspec);
            }
            match fam {
                AF_INET if family == AF_INET => {
                    if raw.len() < SIN_LEN {
                        return Err(Errno::EINVAL);
                    }
                    Ok(SockAddr::V4 {
                        port: u16::from_be_bytes([raw[2], raw[3]]),
                        ip: [raw[4], raw[5], raw[6], raw[7]],
                    })
                }
                AF_INET6 if family == AF_INET6 => {
                    if raw.len() < SIN6_LEN_MIN {
                        return Err(Errno::EINVAL);
                    }
                    let mut ip = [0u8; 16];
                    ip.copy_from_slice(&raw[8..24]);
                    let scope_id = if raw.len() >= SIN6_LEN {
                        u32::from_le_bytes([raw[24], raw[25], raw[26], raw[27]])
                    } else {
                        0
                    };
                    Ok(SockAddr::V6 {
                        port: u16::from_be_bytes([raw[2], raw[3]]),
                        flowinfo: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
                        ip,
                        scope_id,
                    })
                }
                // An IPv6 socket given a too-short or AF_INET address.
                _ if family == AF_INET6 && raw.len() < SIN6_LEN_MIN => Err(Errno::EINVAL),
                _ if family == AF_INET && raw.len() < SIN_LEN => Err(Errno::EINVAL),
                _ => Err(Errno::EAFNOSUPPORT),
            }
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

impl SockAddr {
    /// The bytes the app gets back (what Linux writes, and its length).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SockAddr::Unspec => out.extend_from_slice(&AF_UNSPEC.to_le_bytes()),
            SockAddr::Unix(u) => {
                out.extend_from_slice(&AF_UNIX.to_le_bytes());
                match u {
                    UnixAddr::Unnamed => {}
                    UnixAddr::Path(p) => {
                        out.extend_from_slice(p.as_bytes());
                        out.push(0);
                    }
                    UnixAddr::Abstract(name) => {
                        out.push(0);
                        out.extend_from_slice(name);
                    }
                }
            }
            SockAddr::V4 { ip, port } => {
                out.extend_from_slice(&AF_INET.to_le_bytes());
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(ip);
                out.extend_from_slice(&[0; 8]);
            }
            SockAddr::V6 {
                ip,
                port,
                flowinfo,
                scope_id,
            } => {
                out.extend_from_slice(&AF_INET6.to_le_bytes());
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&flowinfo.to_be_bytes());
                out.extend_from_slice(ip);
                out.extend_from_slice(&scope_id.to_le_bytes());
            }
        }
        out
    }

    /// The unspecified address of `family` with port 0 (what an unbound
    /// inet socket's `getsockname` shows).
    pub fn any(family: u16) -> SockAddr {
        match family {
            AF_INET => SockAddr::V4 {
                ip: [0; 4],
                port: 0,
            },
            AF_INET6 => SockAddr::V6 {
                ip: [0; 16],
                port: 0,
                flowinfo: 0,
                scope_id: 0,
            },
            AF_UNIX => SockAddr::Unix(UnixAddr::Unnamed),
            _ => SockAddr::Unspec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(path: &[u8]) -> Vec<u8> {
        let mut v = AF_UNIX.to_le_bytes().to_vec();
        v.extend_from_slice(path);
        v
    }

    #[test]
    fn unix_paths_abstract_and_unnamed() {
        assert_eq!(
            decode(AF_UNIX, &un(b"/tmp/s\0junk")),
            Ok(SockAddr::Unix(UnixAddr::Path("/tmp/s".into())))
        );
        assert_eq!(
            decode(AF_UNIX, &un(b"\0name")),
            Ok(SockAddr::Unix(UnixAddr::Abstract(b"name".to_vec())))
        );
        assert_eq!(
            decode(AF_UNIX, &un(b"")),
            Ok(SockAddr::Unix(UnixAddr::Unnamed))
        );
        assert_eq!(decode(AF_UNIX, &[1]), Err(Errno::EINVAL));
        assert_eq!(decode(AF_UNIX, &un(&[b'a'; 109])), Err(Errno::EINVAL));
        let mut inet = un(b"x");
        inet[0] = AF_INET as u8;
        assert_eq!(decode(AF_UNIX, &inet), Err(Errno::EINVAL));
        let a = SockAddr::Unix(UnixAddr::Path("/a".into()));
        assert_eq!(a.encode(), un(b"/a\0"));
        let b = SockAddr::Unix(UnixAddr::Abstract(b"n".to_vec()));
        assert_eq!(b.encode(), un(b"\0n"));
        assert_eq!(SockAddr::any(AF_UNIX).encode(), un(b""));
    }

    #[test]
    fn inet_round_trip_and_errors() {
        let v4 = SockAddr::V4 {
            ip: [127, 0, 0, 1],
            port: 8080,
        };
        let raw = v4.encode();
        assert_eq!(raw.len(), 16);
        assert_eq!(&raw[2..4], &[0x1f, 0x90]);
        assert_eq!(decode(AF_INET, &raw), Ok(v4));
        assert_eq!(decode(AF_INET, &raw[..15]), Err(Errno::EINVAL));
        assert_eq!(decode(AF_INET6, &raw), Err(Errno::EINVAL));
        let v6 = SockAddr::V6 {
            ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            port: 443,
            flowinfo: 0,
            scope_id: 3,
        };
        let raw6 = v6.encode();
        assert_eq!(raw6.len(), 28);
        assert_eq!(decode(AF_INET6, &raw6), Ok(v6));
        assert_eq!(decode(AF_INET, &raw6), Err(Errno::EAFNOSUPPORT));
        let mut unspec = raw.clone();
        unspec[0] = 0;
        assert_eq!(decode(AF_INET, &unspec), Ok(SockAddr::Unspec));
        assert_eq!(decode(AF_INET, &[0; 200]), Err(Errno::EINVAL));
    }
}
