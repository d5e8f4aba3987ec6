//! Socket options: the `SOL_SOCKET` options every socket has
//! ([`SockOpts`], stored in atomics), and `getsockopt`/`setsockopt`
//! dispatch, which asks the socket's family first (TCP_NODELAY,
//! IPV6_V6ONLY, SO_PEERCRED...) and answers the generic ones here.
//! Values and limits are Linux's: `SO_RCVBUF`/`SO_SNDBUF` store twice the
//! value asked (capped at `rmem_max`/`wmem_max`, 212992, floored at 4608)
//! and report that.

use super::Socket;
use crate::errno::{Errno, KResult};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

pub const SOL_SOCKET: i32 = 1;
pub const SO_DEBUG: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_DONTROUTE: i32 = 5;
pub const SO_BROADCAST: i32 = 6;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_OOBINLINE: i32 = 10;
pub const SO_LINGER: i32 = 13;
pub const SO_REUSEPORT: i32 = 15;
pub const SO_PASSCRED: i32 = 16;
pub const SO_PEERCRED: i32 = 17;
pub const SO_RCVLOWAT: i32 = 18;
pub const SO_SNDLOWAT: i32 = 19;
pub const SO_RCVTIMEO: i32 = 20;
pub const SO_SNDTIMEO: i32 = 21;
pub const SO_ACCEPTCONN: i32 = 30;
pub const SO_SNDBUFFORCE: i32 = 32;
pub const SO_RCVBUFFORCE: i32 = 33;
pub const SO_PROTOCOL: i32 = 38;
pub const SO_DOMAIN: i32 = 39;

/// `net.core.rmem_max` / `wmem_max` defaults.
pub const BUF_MAX: u32 = 212_992;
/// `SOCK_MIN_RCVBUF` / `SOCK_MIN_SNDBUF`.
pub const BUF_MIN: u32 = 4608;

/// The generic options of one socket.
pub struct SockOpts {
    reuseaddr: AtomicBool,
    reuseport: AtomicBool,
    keepalive: AtomicBool,
    broadcast: AtomicBool,
    passcred: AtomicBool,
    oobinline: AtomicBool,
    dontroute: AtomicBool,
    debug: AtomicBool,
    rcvbuf: AtomicU32,
    sndbuf: AtomicU32,
    rcvlowat: AtomicU32,
    rcvtimeo_ns: AtomicU64,
    sndtimeo_ns: AtomicU64,
    /// `l_onoff` in the high half, `l_linger` in the low.
    linger: AtomicU64,
}

impl SockOpts {
    /// Options with the family's default buffer sizes.
    pub fn new(rcvbuf: u32, sndbuf: u32) -> SockOpts {
        SockOpts {
            reuseaddr: AtomicBool::new(false),
            reuseport: AtomicBool::new(false),
            keepalive: AtomicBool::new(false),
            broadcast: AtomicBool::new(false),
            passcred: AtomicBool::new(false),
            oobinline: AtomicBool::new(false),
            dontroute: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            rcvbuf: AtomicU32::new(rcvbuf),
            sndbuf: AtomicU32::new(sndbuf),
            rcvlowat: AtomicU32::new(1),
            rcvtimeo_ns: AtomicU64::new(0),
            sndtimeo_ns: AtomicU64::new(0),
            linger: AtomicU64::new(0),
        }
    }

    pub fn reuseaddr(&self) -> bool {
        self.reuseaddr.load(Ordering::Relaxed)
    }
    pub fn reuseport(&self) -> bool {
        self.reuseport.load(Ordering::Relaxed)
    }
    pub fn keepalive(&self) -> bool {
        self.keepalive.load(Ordering::Relaxed)
    }
    /// `SO_RCVBUF` as reported (twice what was asked).
    pub fn rcvbuf(&self) -> u32 {
        self.rcvbuf.load(Ordering::Relaxed)
    }
    pub fn sndbuf(&self) -> u32 {
        self.sndbuf.load(Ordering::Relaxed)
    }
    /// 0: no timeout.
    pub fn rcvtimeo_ns(&self) -> u64 {
        self.rcvtimeo_ns.load(Ordering::Relaxed)
    }
    pub fn sndtimeo_ns(&self) -> u64 {
        self.sndtimeo_ns.load(Ordering::Relaxed)
    }
}

fn int(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn flag(b: &AtomicBool) -> Vec<u8> {
    int(i32::from(b.load(Ordering::Relaxed)))
}

/// An `int` option value: EINVAL if shorter than 4 bytes.
pub fn int_arg(val: &[u8]) -> KResult<i32> {
    let b: [u8; 4] = val
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(Errno::EINVAL)?;
    Ok(i32::from_le_bytes(b))
}

fn timeval(ns: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    v.extend_from_slice(&((ns % 1_000_000_000 / 1000) as i64).to_le_bytes());
    v
}

fn timeval_arg(val: &[u8]) -> KResult<u64> {
    if val.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_le_bytes(val[..8].try_into().unwrap_or_default());
    let usec = i64::from_le_bytes(val[8..16].try_into().unwrap_or_default());
    if !(0..1_000_000).contains(&usec) {
        // Linux answers EDOM; the nearest errno this kernel has.
        return Err(Errno::EINVAL);
    }
    if sec < 0 {
        return Ok(0);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(usec as u64 * 1000))
}

/// `getsockopt`.
pub fn get(s: &dyn Socket, level: i32, name: i32) -> KResult<Vec<u8>> {
    if let Some(r) = s.get_option(level, name) {
        return r;
    }
    if level != SOL_SOCKET {
        return Err(Errno::ENOPROTOOPT);
    }
    let o = s.opts();
    Ok(match name {
        SO_TYPE => int(s.sock_type() as i32),
        SO_DOMAIN => int(i32::from(s.domain())),
        SO_PROTOCOL => int(s.protocol() as i32),
        SO_ERROR => int(s.take_error().map_or(0, |e| e as i32)),
        SO_ACCEPTCONN => int(i32::from(s.is_listening())),
        SO_REUSEADDR => flag(&o.reuseaddr),
        SO_REUSEPORT => flag(&o.reuseport),
        SO_KEEPALIVE => flag(&o.keepalive),
        SO_BROADCAST => flag(&o.broadcast),
        SO_PASSCRED => flag(&o.passcred),
        SO_OOBINLINE => flag(&o.oobinline),
        SO_DONTROUTE => flag(&o.dontroute),
        SO_DEBUG => flag(&o.debug),
        SO_RCVBUF => int(o.rcvbuf() as i32),
        SO_SNDBUF => int(o.sndbuf() as i32),
        SO_RCVLOWAT => int(o.rcvlowat.load(Ordering::Relaxed) as i32),
        SO_SNDLOWAT => int(1),
        SO_RCVTIMEO => timeval(o.rcvtimeo_ns()),
        SO_SNDTIMEO => timeval(o.sndtimeo_ns()),
        SO_LINGER => {
            let l = o.linger.load(Ordering::Relaxed);
            let mut v = int((l >> 32) as i32);
            v.extend_from_slice(&(l as u32).to_le_bytes());
            v
        }
        SO_PEERCRED => {
            let c = s.peer_cred();
            let mut v = Vec::with_capacity(12);
            v.extend_from_slice(&c.pid.to_le_bytes());
            v.extend_from_slice(&c.uid.to_le_bytes());
            v.extend_from_slice(&c.gid.to_le_bytes());
            v
        }
        _ => return Err(Errno::ENOPROTOOPT),
    })
}

fn buf_size(v: i32, force: bool) -> u32 {
    let v = v.max(0) as u32;
    let v = if force { v } else { v.min(BUF_MAX) };
    v.saturating_mul(2).max(BUF_MIN)
}

/// `setsockopt`.
pub fn set(s: &dyn Socket, level: i32, name: i32, val: &[u8]) -> KResult<()> {
    if let Some(r) = s.set_option(level, name, val) {
        return r;
    }
    if level != SOL_SOCKET {
        return Err(Errno::ENOPROTOOPT);
    }
    let o = s.opts();
    let set_flag = |b: &AtomicBool| -> KResult<()> {
        b.store(int_arg(val)? != 0, Ordering::Relaxed);
        Ok(())
    };
    match name {
        SO_REUSEADDR => set_flag(&o.reuseaddr),
        SO_REUSEPORT => set_flag(&o.reuseport),
        SO_KEEPALIVE => set_flag(&o.keepalive),
        SO_BROADCAST => set_flag(&o.broadcast),
        SO_PASSCRED => set_flag(&o.passcred),
        SO_OOBINLINE => set_flag(&o.oobinline),
        SO_DONTROUTE => set_flag(&o.dontroute),
        SO_DEBUG => set_flag(&o.debug),
        SO_RCVBUF | SO_RCVBUFFORCE => {
            let v = int_arg(val)?;
            o.rcvbuf
                .store(buf_size(v, name == SO_RCVBUFFORCE), Ordering::Relaxed);
            Ok(())
        }
        SO_SNDBUF | SO_SNDBUFFORCE => {
            let v = int_arg(val)?;
            o.sndbuf
                .store(buf_size(v, name == SO_SNDBUFFORCE), Ordering::Relaxed);
            Ok(())
        }
        SO_RCVLOWAT => {
            let v = int_arg(val)?;
            o.rcvlowat.store(v.max(1) as u32, Ordering::Relaxed);
            Ok(())
        }
        SO_RCVTIMEO => {
            o.rcvtimeo_ns.store(timeval_arg(val)?, Ordering::Relaxed);
            Ok(())
        }
        SO_SNDTIMEO => {
            o.sndtimeo_ns.store(timeval_arg(val)?, Ordering::Relaxed);
            Ok(())
        }
        SO_LINGER => {
            if val.len() < 8 {
                return Err(Errno::EINVAL);
            }
            let on = int_arg(&val[..4])? != 0;
            let secs = int_arg(&val[4..8])?.max(0) as u32;
            o.linger
                .store((u64::from(on) << 32) | u64::from(secs), Ordering::Relaxed);
            Ok(())
        }
        SO_TYPE | SO_DOMAIN | SO_PROTOCOL | SO_ERROR | SO_ACCEPTCONN | SO_PEERCRED => {
            Err(Errno::ENOPROTOOPT)
        }
        SO_SNDLOWAT => Err(Errno::ENOPROTOOPT),
        _ => Err(Errno::ENOPROTOOPT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_double_and_clamp_like_linux() {
        assert_eq!(buf_size(32768, false), 65536);
        assert_eq!(buf_size(1, false), BUF_MIN);
        assert_eq!(buf_size(10_000_000, false), 2 * BUF_MAX);
        assert_eq!(buf_size(-5, false), BUF_MIN);
        assert_eq!(timeval_arg(&timeval(1_500_000_000)), Ok(1_500_000_000));
        assert_eq!(int_arg(&[1, 0]), Err(Errno::EINVAL));
    }
}
