//! Byte layouts the file calls exchange with user memory: `struct stat`
//! (x86_64's and aarch64's generic one differ), `struct statx`,
//! `struct statfs`, `linux_dirent64`, `struct termios`, `struct winsize`
//! and `struct flock`. Encoders write little-endian bytes at fixed offsets
//! so layouts are checked on the host for both arches.

use crate::fs::{FileType, Metadata};
use alloc::vec;
use alloc::vec::Vec;

/// Which `struct stat` layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatLayout {
    /// `arch/x86/include/uapi/asm/stat.h`: 144 bytes.
    X86_64,
    /// `include/uapi/asm-generic/stat.h`: 128 bytes.
    Generic,
}

impl StatLayout {
    /// The layout of the kernel's target arch (x86_64's on the host).
    pub const NATIVE: StatLayout = if cfg!(target_arch = "aarch64") {
        StatLayout::Generic
    } else {
        StatLayout::X86_64
    };

    pub const fn size(self) -> usize {
        match self {
            StatLayout::X86_64 => 144,
            StatLayout::Generic => 128,
        }
    }
}

fn put<const N: usize>(buf: &mut [u8], off: usize, bytes: [u8; N]) {
    buf[off..off + N].copy_from_slice(&bytes);
}

const NS: u64 = 1_000_000_000;

/// `st_blocks`: 512-byte units of whole 4 KiB pages, as ramfs/tmpfs count.
fn blocks(m: &Metadata) -> u64 {
    match m.kind {
        FileType::Regular | FileType::Directory | FileType::Symlink => m.size.div_ceil(4096) * 8,
        _ => 0,
    }
}

pub fn mode(m: &Metadata) -> u32 {
    m.kind.mode_bits() | (m.perm & 0o7777)
}

/// `struct stat` for `m` in `layout`.
pub fn encode_stat(m: &Metadata, layout: StatLayout) -> Vec<u8> {
    let mut b = vec![0u8; layout.size()];
    put(&mut b, 0, m.dev.to_le_bytes());
    put(&mut b, 8, m.ino.to_le_bytes());
    match layout {
        StatLayout::X86_64 => {
            put(&mut b, 16, u64::from(m.nlink).to_le_bytes());
            put(&mut b, 24, mode(m).to_le_bytes());
            put(&mut b, 28, m.uid.to_le_bytes());
            put(&mut b, 32, m.gid.to_le_bytes());
            put(&mut b, 40, m.rdev.to_le_bytes());
            put(&mut b, 48, m.size.to_le_bytes());
            put(&mut b, 56, 4096u64.to_le_bytes());
            put(&mut b, 64, blocks(m).to_le_bytes());
        }
        StatLayout::Generic => {
            put(&mut b, 16, mode(m).to_le_bytes());
            put(&mut b, 20, m.nlink.to_le_bytes());
            put(&mut b, 24, m.uid.to_le_bytes());
            put(&mut b, 28, m.gid.to_le_bytes());
            put(&mut b, 32, m.rdev.to_le_bytes());
            put(&mut b, 48, m.size.to_le_bytes());
            put(&mut b, 56, 4096u32.to_le_bytes());
            put(&mut b, 64, blocks(m).to_le_bytes());
        }
    }
    // Times sit at the same offsets in both layouts.
    for (off, t) in [(72, m.atime_ns), (88, m.mtime_ns), (104, m.ctime_ns)] {
        put(&mut b, off, (t / NS).to_le_bytes());
        put(&mut b, off + 8, (t % NS).to_le_bytes());
    }
    b
}

/// `STATX_BASIC_STATS`: every field but the birth time.
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_SIZE: usize = 256;

/// Linux's `MAJOR`/`MINOR` of a `new_encode_dev` number.
pub fn dev_major(dev: u64) -> u32 {
    ((dev & 0xfff00) >> 8) as u32
}

pub fn dev_minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32
}

/// `struct statx` for `m` (the same on every arch).
pub fn encode_statx(m: &Metadata) -> Vec<u8> {
    let mut b = vec![0u8; STATX_SIZE];
    put(&mut b, 0, STATX_BASIC_STATS.to_le_bytes());
    put(&mut b, 4, 4096u32.to_le_bytes());
    put(&mut b, 16, m.nlink.to_le_bytes());
    put(&mut b, 20, m.uid.to_le_bytes());
    put(&mut b, 24, m.gid.to_le_bytes());
    put(&mut b, 28, (mode(m) as u16).to_le_bytes());
    put(&mut b, 32, m.ino.to_le_bytes());
    put(&mut b, 40, m.size.to_le_bytes());
    put(&mut b, 48, blocks(m).to_le_bytes());
    // atime, btime (not kept: left 0 and not in the mask), ctime, mtime.
    for (off, t) in [(64, m.atime_ns), (96, m.ctime_ns), (112, m.mtime_ns)] {
        put(&mut b, off, (t / NS).to_le_bytes());
        put(&mut b, off + 8, ((t % NS) as u32).to_le_bytes());
    }
    put(&mut b, 128, dev_major(m.rdev).to_le_bytes());
    put(&mut b, 132, dev_minor(m.rdev).to_le_bytes());
    put(&mut b, 136, dev_major(m.dev).to_le_bytes());
    put(&mut b, 140, dev_minor(m.dev).to_le_bytes());
    b
}

pub const STATFS_SIZE: usize = 120;
/// `ST_VALID`: the flags field is meaningful.
const ST_VALID: u64 = 0x20;

/// `struct statfs` (64-bit: the same on x86_64 and aarch64). Memory file
/// systems report no block counts, as Linux's ramfs does.
pub fn encode_statfs(magic: u64, dev: u64) -> Vec<u8> {
    let mut b = vec![0u8; STATFS_SIZE];
    put(&mut b, 0, magic.to_le_bytes());
    put(&mut b, 8, 4096u64.to_le_bytes());
    put(&mut b, 56, (dev as u32).to_le_bytes());
    put(&mut b, 64, 255u64.to_le_bytes());
    put(&mut b, 72, 4096u64.to_le_bytes());
    put(&mut b, 80, ST_VALID.to_le_bytes());
    b
}

/// `d_type` of a directory entry.
pub fn dtype(kind: FileType) -> u8 {
    match kind {
        FileType::Fifo => 1,
        FileType::CharDevice => 2,
        FileType::Directory => 4,
        FileType::Regular => 8,
        FileType::Symlink => 10,
        FileType::Socket => 12,
    }
}

/// Header bytes of `linux_dirent64` before the name.
pub const DIRENT_HEADER: usize = 19;

/// Length of the record for a name of `name_len` bytes (NUL, 8-aligned).
pub fn dirent_len(name_len: usize) -> usize {
    (DIRENT_HEADER + name_len + 1).next_multiple_of(8)
}

/// Appends one `linux_dirent64` record.
pub fn push_dirent(out: &mut Vec<u8>, ino: u64, next: u64, kind: FileType, name: &str) {
    let len = dirent_len(name.len());
    let start = out.len();
    out.resize(start + len, 0);
    let b = &mut out[start..];
    put(b, 0, ino.to_le_bytes());
    put(b, 8, next.to_le_bytes());
    put(b, 16, (len as u16).to_le_bytes());
    b[18] = dtype(kind);
    b[DIRENT_HEADER..DIRENT_HEADER + name.len()].copy_from_slice(name.as_bytes());
}

/// `struct termios` (the kernel's, for TCGETS): 36 bytes on both arches.
pub const TERMIOS_SIZE: usize = 36;

/// Linux's `tty_std_termios` with the console's settings: ICRNL|IXON,
/// OPOST|ONLCR, B38400|CS8|CREAD|HUPCL, ISIG|ICANON|ECHO|ECHOE|ECHOK|
/// ECHOCTL|ECHOKE|IEXTEN, and the default control characters.
pub fn default_termios() -> [u8; TERMIOS_SIZE] {
    let mut b = [0u8; TERMIOS_SIZE];
    put(&mut b, 0, 0o2400u32.to_le_bytes());
    put(&mut b, 4, 0o5u32.to_le_bytes());
    put(&mut b, 8, 0o2277u32.to_le_bytes());
    put(&mut b, 12, 0o105073u32.to_le_bytes());
    // c_line 0, then c_cc.
    let cc: [u8; 17] = [
        3, 0o34, 0o177, 0o25, 4, 0, 1, 0, 0o21, 0o23, 0o32, 0, 0o22, 0o17, 0o27, 0o26, 0,
    ];
    b[17..17 + cc.len()].copy_from_slice(&cc);
    b
}

/// `struct winsize`: rows, columns (pixels 0).
pub fn encode_winsize(rows: u16, cols: u16) -> [u8; 8] {
    let mut b = [0u8; 8];
    put(&mut b, 0, rows.to_le_bytes());
    put(&mut b, 2, cols.to_le_bytes());
    b
}

/// `struct flock` (64-bit): 32 bytes; `l_type` is the first `short`.
pub const FLOCK_SIZE: usize = 32;
