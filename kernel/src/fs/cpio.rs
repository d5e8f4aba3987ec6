//! Reader for the cpio `newc` format (what `skiff` packs the initramfs in,
//! and what Linux's initramfs uses): 110-byte ASCII-hex headers, the name,
//! the data, each padded to 4 bytes, ending with `TRAILER!!!`.
//!
//! The archive comes from the boot loader, so every field is checked: a
//! truncated or corrupt archive is an error naming the entry and the
//! offset, never a panic or a read out of bounds.

use core::fmt;

/// One archive member, borrowing from the archive bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Path inside the archive, without a leading `./` or `/`.
    pub name: &'a str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub ino: u32,
    pub nlink: u32,
    pub data: &'a [u8],
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpioError {
    /// Header magic is not `070701`/`070702` at this offset.
    BadMagic { offset: usize },
    /// A header field is not 8 hex digits.
    BadField { offset: usize },
    /// The archive ends inside an entry.
    Truncated { offset: usize },
    /// The name is empty, not NUL-terminated, or not UTF-8.
    BadName { offset: usize },
    /// No `TRAILER!!!` entry before the end.
    NoTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::BadMagic { offset } => {
                write!(f, "not a cpio newc header at offset {offset}")
            }
            CpioError::BadField { offset } => write!(f, "bad header field at offset {offset}"),
            CpioError::Truncated { offset } => {
                write!(f, "archive truncated in the entry at offset {offset}")
            }
            CpioError::BadName { offset } => write!(f, "bad file name at offset {offset}"),
            CpioError::NoTrailer => write!(f, "archive has no TRAILER!!! entry"),
        }
    }
}

fn hex8(b: &[u8], offset: usize) -> Result<u32, CpioError> {
    let s = core::str::from_utf8(b).map_err(|_| CpioError::BadField { offset })?;
    u32::from_str_radix(s, 16).map_err(|_| CpioError::BadField { offset })
}

fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Iterates the members of a `newc` archive. Yields `Err` once and stops
/// on the first problem.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            done: false,
        }
    }

    fn entry(&mut self) -> Result<Option<Entry<'a>>, CpioError> {
        let at = self.pos;
        let header = self
            .data
            .get(at..at + 110)
            .ok_or(if at >= self.data.len() {
                CpioError::NoTrailer
            } else {
                CpioError::Truncated { offset: at }
            })?;
        if &header[..6] != b"070701" && &header[..6] != b"070702" {
            return Err(CpioError::BadMagic { offset: at });
        }
        let field = |i: usize| hex8(&header[6 + 8 * i..14 + 8 * i], at);
        let (ino, mode, uid, gid, nlink, mtime, filesize) = (
            field(0)?,
            field(1)?,
            field(2)?,
            field(3)?,
            field(4)?,
            field(5)?,
            field(6)? as usize,
        );
        let namesize = field(11)? as usize;
        let name_start = at + 110;
        let name_end = name_start
            .checked_add(namesize)
            .ok_or(CpioError::Truncated { offset: at })?;
        let raw_name = self
            .data
            .get(name_start..name_end)
            .ok_or(CpioError::Truncated { offset: at })?;
        let name = match raw_name.split_last() {
            Some((0, n)) if !n.is_empty() && !n.contains(&0) => n,
            _ => return Err(CpioError::BadName { offset: at }),
        };
        let name = core::str::from_utf8(name).map_err(|_| CpioError::BadName { offset: at })?;
        let data_start = align4(name_end);
        let data_end = data_start
            .checked_add(filesize)
            .ok_or(CpioError::Truncated { offset: at })?;
        let data = self
            .data
            .get(data_start..data_end)
            .ok_or(CpioError::Truncated { offset: at })?;
        self.pos = align4(data_end);
        if name == "TRAILER!!!" {
            return Ok(None);
        }
        let name = name.trim_start_matches("./").trim_start_matches('/');
        Ok(Some(Entry {
            name,
            mode,
            uid,
            gid,
            mtime,
            ino,
            nlink,
            data,
        }))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds a `newc` archive (used by host tests; the `skiff` tool has its
/// own writer). Entries: (name, mode, data).
#[cfg(test)]
pub fn build(entries: &[(&str, u32, &[u8])]) -> alloc::vec::Vec<u8> {
    use alloc::format;
    let mut out = alloc::vec::Vec::new();
    let mut push = |name: &str, mode: u32, data: &[u8], ino: usize| {
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (i, (name, mode, data)) in entries.iter().enumerate() {
        push(name, *mode, data, i + 1);
    }
    push("TRAILER!!!", 0, &[], 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn reads_what_was_built() {
        let a = build(&[
            ("./etc", S_IFDIR | 0o755, b""),
            ("etc/hostname", S_IFREG | 0o644, b"skiff\n"),
            ("bin/sh", S_IFLNK | 0o777, b"busybox"),
        ]);
        let entries: Vec<Entry> = Reader::new(&a).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "etc");
        assert_eq!(entries[1].data, b"skiff\n");
        assert_eq!(entries[2].mode & S_IFMT, S_IFLNK);
    }

    #[test]
    fn corruption_is_reported_with_an_offset() {
        let a = build(&[("f", S_IFREG | 0o644, b"hello world")]);
        let mut bad = a.clone();
        bad[0] = b'X';
        assert_eq!(
            Reader::new(&bad).next(),
            Some(Err(CpioError::BadMagic { offset: 0 }))
        );
        let mut bad = a.clone();
        bad[6 + 8 * 6] = b'z'; // filesize
        assert_eq!(
            Reader::new(&bad).next(),
            Some(Err(CpioError::BadField { offset: 0 }))
        );
        let cut = &a[..120];
        assert_eq!(
            Reader::new(cut).next(),
            Some(Err(CpioError::Truncated { offset: 0 }))
        );
        let no_trailer = &a[..a.len() - 124];
        let all: Vec<_> = Reader::new(no_trailer).collect();
        assert_eq!(all.last(), Some(&Err(CpioError::NoTrailer)));
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut a = build(&[("f", S_IFREG, b"x")]);
        a[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"ffffffff");
        assert!(matches!(
            Reader::new(&a).next(),
            Some(Err(CpioError::Truncated { .. }))
        ));
    }
}
