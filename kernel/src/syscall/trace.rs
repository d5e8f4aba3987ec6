//! `--strace` lines in strace's own format, e.g.
//! `openat(AT_FDCWD, "/etc/hostname", O_RDONLY|O_CLOEXEC) = 3` and
//! `read(3, "skiff\n", 4096) = 6`, `= -1 ENOENT` on failure. Strings and
//! buffers are read from user memory through the process (an unreadable
//! pointer shows as its address, as strace does) and cut at 32 bytes.

use super::{Arg, Args, Process};
use crate::errno::Errno;
use alloc::string::String;
use core::fmt::Write;

const SHOW: usize = 32;
const AT_FDCWD: isize = -100;

fn quoted(out: &mut String, bytes: &[u8], truncated: bool) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:o}");
            }
        }
    }
    out.push('"');
    if truncated {
        out.push_str("...");
    }
}

fn user_bytes<P: Process + ?Sized>(p: &P, out: &mut String, addr: usize, len: usize) {
    let mut buf = [0u8; SHOW];
    let want = len.min(SHOW);
    match p.read_user(addr, &mut buf[..want]) {
        Some(n) => quoted(out, &buf[..n], len > SHOW),
        None => {
            let _ = write!(out, "{addr:#x}");
        }
    }
}

fn user_str<P: Process + ?Sized>(p: &P, out: &mut String, addr: usize) {
    let mut buf = [0u8; 256];
    match p.read_user(addr, &mut buf) {
        Some(n) => {
            let end = buf[..n].iter().position(|&b| b == 0);
            let s = &buf[..end.unwrap_or(n)];
            quoted(out, s, end.is_none());
        }
        None => {
            let _ = write!(out, "{addr:#x}");
        }
    }
}

/// Linux `O_*` flags, symbolically (x86_64 and aarch64 share these values
/// except O_DIRECTORY/O_NOFOLLOW/O_DIRECT/O_LARGEFILE, shown for x86_64).
pub fn open_flags(flags: usize) -> String {
    let mut s = String::from(match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    });
    const NAMES: &[(usize, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
    ];
    let mut rest = flags & !3;
    for &(bit, name) in NAMES {
        if rest & bit != 0 {
            s.push('|');
            s.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        let _ = write!(s, "|{rest:#o}");
    }
    s
}

/// One trace line for a completed call.
pub fn format_call<P: Process + ?Sized>(
    p: &P,
    name: &str,
    kinds: &[Arg],
    args: &Args,
    result: &Result<usize, Errno>,
) -> String {
    const O_CREAT: usize = 0o100;
    const O_TMPFILE: usize = 0o20000000;
    let mut out = String::from(name);
    out.push('(');
    for (i, kind) in kinds.iter().enumerate() {
        let a = args[i];
        // strace shows the mode only when the flags make it meaningful.
        if *kind == Arg::Mode
            && i > 0
            && kinds[i - 1] == Arg::OpenFlags
            && args[i - 1] & (O_CREAT | O_TMPFILE) == 0
        {
            continue;
        }
        if i > 0 {
            out.push_str(", ");
        }
        match *kind {
            Arg::Int => {
                let _ = write!(out, "{}", a as isize);
            }
            Arg::Size => {
                let _ = write!(out, "{a}");
            }
            Arg::Hex => {
                let _ = write!(out, "{a:#x}");
            }
            Arg::Str => user_str(p, &mut out, a),
            Arg::BufOut(len_arg) => user_bytes(p, &mut out, a, args[len_arg as usize]),
            Arg::BufIn(_) => match result {
                Ok(n) => user_bytes(p, &mut out, a, *n),
                Err(_) => {
                    let _ = write!(out, "{a:#x}");
                }
            },
            Arg::OpenFlags => out.push_str(&open_flags(a)),
            Arg::Mode => {
                let _ = write!(out, "0{a:o}");
            }
            Arg::DirFd => {
                if a as isize == AT_FDCWD || a as i32 == AT_FDCWD as i32 {
                    out.push_str("AT_FDCWD");
                } else {
                    let _ = write!(out, "{}", a as i32);
                }
            }
        }
    }
    out.push_str(") = ");
    match result {
        Ok(v) => {
            let _ = write!(out, "{}", *v as isize);
        }
        Err(e) => {
            let _ = write!(out, "-1 {e}");
        }
    }
    out
}
