//! Writes cpio `newc` archives (the initramfs format the kernel unpacks
//! into its root ramfs, and the one Linux guests boot from in benchmarks).
//! Format: "cpio: New ASCII Format" (man 5 cpio); the kernel's reader is
//! `kernel/src/fs/cpio.rs`.

/// File type bits of `mode`.
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

/// An archive being built in memory. Entries are written in the order
/// added; parents should be added before their children.
#[derive(Default)]
pub struct Archive {
    out: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    pub fn new() -> Self {
        Archive {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// A regular file with permission bits `perm` (e.g. 0o755).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | (perm & 0o7777), data);
    }

    /// A directory with permission bits `perm`.
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | (perm & 0o7777), &[]);
    }

    /// A symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, target.as_bytes());
    }

    /// Ends the archive (the `TRAILER!!!` entry) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, 0);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, ino, mode, data.len());
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, size: usize) {
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(size).expect("cpio newc: file over 4 GiB"),
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            u32::try_from(name.len() + 1).expect("cpio newc: name too long"),
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    /// newc aligns headers+names and file data to 4 bytes.
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_padding() {
        let mut a = Archive::new();
        a.file("/init", 0o755, b"abc");
        let out = a.finish();
        assert_eq!(&out[..6], b"070701");
        // ino 1, mode 0o100755 = 0x81ED, filesize 3, namesize 5 ("init\0").
        assert_eq!(&out[6..14], b"00000001");
        assert_eq!(&out[14..22], b"000081ED");
        assert_eq!(&out[54..62], b"00000003");
        assert_eq!(&out[94..102], b"00000005");
        // 110-byte header + 5-byte name = 115, padded to 116; data at 116.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..119], b"abc");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
