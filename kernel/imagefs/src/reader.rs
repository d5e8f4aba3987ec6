//! Reading an image: checked at mount (superblock, inode-table checksum,
//! every inode's extent inside the data area), then per data block on read.

use crate::{BLOCK, CRC, INODE_SIZE, MAGIC, MAX_INODES, MAX_NAME, ROOT_INO, SUPER_LEN, VERSION};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// A range a [`Source`] could not read (outside it, or a device error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// Where image bytes come from: a block device, a file, memory.
pub trait Source {
    /// Fills `buf` from byte `offset`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
    /// Size in bytes.
    fn size(&self) -> u64;
}

impl Source for [u8] {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let start = usize::try_from(offset).map_err(|_| Unreadable)?;
        let end = start.checked_add(buf.len()).ok_or(Unreadable)?;
        buf.copy_from_slice(self.get(start..end).ok_or(Unreadable)?);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

impl Source for Vec<u8> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        self.as_slice().read_exact_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a Skiff image (bad magic).
    NotAnImage,
    /// A version this kernel does not read.
    Version(u32),
    /// A checksum or a structural check failed; says which.
    Corrupt(&'static str),
    /// The source could not be read.
    Io,
    /// No such inode / name.
    NotFound,
    NotADirectory,
    NotAFile,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotAnImage => write!(f, "not a Skiff image (bad magic)"),
            Error::Version(v) => write!(f, "image version {v} is not supported (want 1)"),
            Error::Corrupt(what) => write!(f, "corrupt image: {what}"),
            Error::Io => write!(f, "image could not be read"),
            Error::NotFound => write!(f, "not found"),
            Error::NotADirectory => write!(f, "not a directory"),
            Error::NotAFile => write!(f, "not a regular file or symlink"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InodeInfo {
    pub ino: u32,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub mtime_ns: u64,
    first_block: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub ino: u32,
}

/// A mounted (validated) image.
pub struct Image<S: Source> {
    src: S,
    inodes: Vec<InodeInfo>,
    csum_off: u64,
    data_off: u64,
    data_blocks: u64,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

impl<S: Source> Image<S> {
    /// Validates the superblock, the inode table and every inode's extent.
    pub fn open(src: S) -> Result<Self, Error> {
        let mut sb = [0u8; SUPER_LEN];
        src.read_exact_at(0, &mut sb)
            .map_err(|_| Error::NotAnImage)?;
        if sb[..8] != MAGIC {
            return Err(Error::NotAnImage);
        }
        if CRC.checksum(&sb[..64]) != u32_at(&sb, 64) {
            return Err(Error::Corrupt("superblock checksum"));
        }
        let version = u32_at(&sb, 8);
        if version != VERSION {
            return Err(Error::Version(version));
        }
        if u64::from(u32_at(&sb, 12)) != BLOCK {
            return Err(Error::Corrupt("block size"));
        }
        let count = u32_at(&sb, 16);
        let table_crc = u32_at(&sb, 20);
        let (itab, csum_off, data_off, data_blocks, size) = (
            u64_at(&sb, 24),
            u64_at(&sb, 32),
            u64_at(&sb, 40),
            u64_at(&sb, 48),
            u64_at(&sb, 56),
        );
        if count == 0 || count > MAX_INODES {
            return Err(Error::Corrupt("inode count"));
        }
        if size > src.size() {
            return Err(Error::Corrupt("image is shorter than its superblock says"));
        }
        let table_len = u64::from(count) * INODE_SIZE;
        let data_end = data_blocks
            .checked_mul(BLOCK)
            .and_then(|d| d.checked_add(data_off))
            .ok_or(Error::Corrupt("data area"))?;
        let in_image = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= size);
        let csum_len = data_blocks
            .checked_mul(4)
            .ok_or(Error::Corrupt("data area"))?;
        if !in_image(itab, table_len) || !in_image(csum_off, csum_len) || data_end > size {
            return Err(Error::Corrupt("table outside the image"));
        }
        if data_off % BLOCK != 0 {
            return Err(Error::Corrupt("data area alignment"));
        }
        let mut table = vec![0u8; table_len as usize];
        src.read_exact_at(itab, &mut table).map_err(|_| Error::Io)?;
        if CRC.checksum(&table) != table_crc {
            return Err(Error::Corrupt("inode table checksum"));
        }
        let mut inodes = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let b = &table[i * INODE_SIZE as usize..(i + 1) * INODE_SIZE as usize];
            let kind = match b[0] {
                1 => Kind::File,
                2 => Kind::Directory,
                3 => Kind::Symlink,
                _ => return Err(Error::Corrupt("inode kind")),
            };
            let info = InodeInfo {
                ino: i as u32 + 1,
                kind,
                mode: u32_at(b, 4),
                uid: u32_at(b, 8),
                gid: u32_at(b, 12),
                nlink: u32_at(b, 16),
                size: u64_at(b, 24),
                mtime_ns: u64_at(b, 32),
                first_block: u64_at(b, 40),
            };
            let blocks = info.size.div_ceil(BLOCK);
            if info
                .first_block
                .checked_add(blocks)
                .is_none_or(|e| e > data_blocks)
            {
                return Err(Error::Corrupt("inode data outside the data area"));
            }
            inodes.push(info);
        }
        if inodes[ROOT_INO as usize - 1].kind != Kind::Directory {
            return Err(Error::Corrupt("root is not a directory"));
        }
        Ok(Image {
            src,
            inodes,
            csum_off,
            data_off,
            data_blocks,
        })
    }

    pub fn inode(&self, ino: u32) -> Result<InodeInfo, Error> {
        ino.checked_sub(1)
            .and_then(|i| self.inodes.get(i as usize))
            .copied()
            .ok_or(Error::NotFound)
    }

    pub fn inode_count(&self) -> u32 {
        self.inodes.len() as u32
    }

    /// Reads data block `n` (absolute) and checks its CRC.
    fn block(&self, n: u64, out: &mut [u8; BLOCK as usize]) -> Result<(), Error> {
        if n >= self.data_blocks {
            return Err(Error::Corrupt("block number"));
        }
        let mut c = [0u8; 4];
        self.src
            .read_exact_at(self.csum_off + n * 4, &mut c)
            .map_err(|_| Error::Io)?;
        self.src
            .read_exact_at(self.data_off + n * BLOCK, out)
            .map_err(|_| Error::Io)?;
        if CRC.checksum(out) != u32::from_le_bytes(c) {
            return Err(Error::Corrupt("data block checksum"));
        }
        Ok(())
    }

    /// Reads file (or symlink target, or directory) bytes at `offset`.
    pub fn read(&self, ino: u32, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let info = self.inode(ino)?;
        if offset >= info.size {
            return Ok(0);
        }
        let n = buf.len().min((info.size - offset) as usize);
        let mut block = [0u8; BLOCK as usize];
        let mut done = 0;
        while done < n {
            let pos = offset + done as u64;
            let (bi, within) = (pos / BLOCK, (pos % BLOCK) as usize);
            self.block(info.first_block + bi, &mut block)?;
            let take = (BLOCK as usize - within).min(n - done);
            buf[done..done + take].copy_from_slice(&block[within..within + take]);
            done += take;
        }
        Ok(n)
    }

    /// A directory's entries, sorted by name.
    pub fn entries(&self, ino: u32) -> Result<Vec<DirEntry>, Error> {
        let info = self.inode(ino)?;
        if info.kind != Kind::Directory {
            return Err(Error::NotADirectory);
        }
        let mut raw = vec![0u8; info.size as usize];
        self.read(ino, 0, &mut raw)?;
        let mut out = Vec::new();
        let mut at = 0;
        while at < raw.len() {
            let hdr = raw
                .get(at..at + 6)
                .ok_or(Error::Corrupt("directory entry"))?;
            let ino = u32_at(hdr, 0);
            let len = u16::from_le_bytes([hdr[4], hdr[5]]) as usize;
            let name = raw
                .get(at + 6..at + 6 + len)
                .ok_or(Error::Corrupt("directory entry name"))?;
            let name = core::str::from_utf8(name).map_err(|_| Error::Corrupt("entry name"))?;
            if name.is_empty() || len > MAX_NAME || name.contains('/') || self.inode(ino).is_err() {
                return Err(Error::Corrupt("directory entry"));
            }
            out.push(DirEntry {
                name: String::from(name),
                ino,
            });
            at += 6 + len;
        }
        Ok(out)
    }

    pub fn lookup(&self, dir: u32, name: &str) -> Result<u32, Error> {
        let entries = self.entries(dir)?;
        entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .map(|i| entries[i].ino)
            .map_err(|_| Error::NotFound)
    }

    pub fn readlink(&self, ino: u32) -> Result<String, Error> {
        let info = self.inode(ino)?;
        if info.kind != Kind::Symlink {
            return Err(Error::NotAFile);
        }
        let mut raw = vec![0u8; info.size as usize];
        self.read(ino, 0, &mut raw)?;
        String::from_utf8(raw).map_err(|_| Error::Corrupt("symlink target"))
    }
}
