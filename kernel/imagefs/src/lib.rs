//! SKIFFIMG: the read-only image file system `skiff image` writes on the
//! host and the kernel mounts as `/` (docs/imagefs.md has the layout).
//!
//! The format is deliberately simple: a superblock, a table of fixed-size
//! inodes, and 4 KiB data blocks, each file's data contiguous. Everything
//! is little-endian. Integrity: the superblock and the inode table carry
//! CRC-32C checksums, and every data block has its own CRC-32C in a
//! checksum table, verified on each read — a corrupt image is refused at
//! mount or the read fails with [`Error::Corrupt`], never returns bad data.
//!
//! [`Image`] reads through any [`Source`] (the kernel's block device, or a
//! byte slice in tests) and bounds-checks every number it reads.
//! [`Builder`] (host side) lays an image out from an in-memory tree.
//! No `unsafe`, no_std + alloc. Depends only on `crc`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod builder;
mod reader;

pub use builder::{BuildError, Builder};
pub use reader::{DirEntry, Error, Image, InodeInfo, Kind, Source, Unreadable};

pub const MAGIC: [u8; 8] = *b"SKIFFIMG";
pub const VERSION: u32 = 1;
pub const BLOCK: u64 = 4096;
pub const INODE_SIZE: u64 = 64;
pub const ROOT_INO: u32 = 1;
/// Upper bounds the reader enforces before trusting any count.
pub const MAX_INODES: u32 = 1 << 24;
pub const MAX_NAME: usize = 255;

pub(crate) const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Superblock layout (offsets in bytes, all little-endian):
///
/// | off | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `SKIFFIMG` |
/// | 8 | 4 | version (1) |
/// | 12 | 4 | block size (4096) |
/// | 16 | 4 | inode count (inode numbers 1..=count; 1 is `/`) |
/// | 20 | 4 | CRC-32C of the inode table |
/// | 24 | 8 | inode table offset |
/// | 32 | 8 | checksum table offset (one CRC-32C per data block) |
/// | 40 | 8 | data offset (first data block) |
/// | 48 | 8 | data block count |
/// | 56 | 8 | image size in bytes |
/// | 64 | 4 | CRC-32C of bytes 0..64 |
pub(crate) const SUPER_LEN: usize = 68;

// Inode layout (64 bytes, see docs/imagefs.md): kind u8 (1 file, 2 dir,
// 3 symlink), pad[3], mode u32 (permission bits), uid u32, gid u32,
// nlink u32, pad u32, size u64, mtime (ns) u64, first data block u64,
// pad to 64.
