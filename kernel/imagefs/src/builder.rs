//! Writing an image from an in-memory tree (the host tool's side).

use crate::{BLOCK, CRC, INODE_SIZE, MAGIC, MAX_NAME, SUPER_LEN, VERSION};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The path's parent does not exist or is not a directory.
    NoParent(String),
    AlreadyExists(String),
    BadName(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoParent(p) => write!(f, "{p}: parent directory missing"),
            BuildError::AlreadyExists(p) => write!(f, "{p}: already in the image"),
            BuildError::BadName(p) => write!(f, "{p}: not a valid path in an image"),
        }
    }
}

enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, u32>),
    Symlink(String),
}

struct Entry {
    node: Node,
    mode: u32,
    nlink: u32,
}

/// Lays out an image. Paths are absolute (`/usr/bin/app`); parents must
/// be added first (or use [`Builder::dir_all`]).
pub struct Builder {
    nodes: Vec<Entry>,
    mtime_ns: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            nodes: vec![Entry {
                node: Node::Dir(BTreeMap::new()),
                mode: 0o755,
                nlink: 2,
            }],
            mtime_ns: 0,
        }
    }

    /// Timestamp given to every inode (reproducible images by default).
    pub fn mtime(mut self, ns: u64) -> Self {
        self.mtime_ns = ns;
        self
    }

    fn split(path: &str) -> Result<(Vec<&str>, &str), BuildError> {
        let bad = || BuildError::BadName(String::from(path));
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let (last, parents) = comps.split_last().ok_or_else(bad)?;
        if comps
            .iter()
            .any(|c| *c == "." || *c == ".." || c.len() > MAX_NAME)
        {
            return Err(bad());
        }
        Ok((parents.to_vec(), last))
    }

    fn dir_of(&self, parents: &[&str], path: &str) -> Result<u32, BuildError> {
        let mut at = 1u32;
        for p in parents {
            match &self.nodes[at as usize - 1].node {
                Node::Dir(d) => {
                    at = *d.get(*p).ok_or_else(|| BuildError::NoParent(path.into()))?;
                }
                _ => return Err(BuildError::NoParent(path.into())),
            }
        }
        match self.nodes[at as usize - 1].node {
            Node::Dir(_) => Ok(at),
            _ => Err(BuildError::NoParent(path.into())),
        }
    }

    fn add(&mut self, path: &str, node: Node, mode: u32) -> Result<u32, BuildError> {
        let (parents, name) = Self::split(path)?;
        let dir = self.dir_of(&parents, path)?;
        let is_dir = matches!(node, Node::Dir(_));
        self.nodes.push(Entry {
            node,
            mode: mode & 0o7777,
            nlink: if is_dir { 2 } else { 1 },
        });
        let ino = self.nodes.len() as u32;
        let parent = &mut self.nodes[dir as usize - 1];
        if let Node::Dir(d) = &mut parent.node {
            if d.contains_key(name) {
                self.nodes.pop();
                return Err(BuildError::AlreadyExists(path.into()));
            }
            d.insert(String::from(name), ino);
        }
        if is_dir {
            parent.nlink += 1;
        }
        Ok(ino)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), BuildError> {
        self.add(path, Node::Dir(BTreeMap::new()), mode).map(|_| ())
    }

    /// `mkdir -p`.
    pub fn dir_all(&mut self, path: &str, mode: u32) -> Result<(), BuildError> {
        let mut so_far = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            so_far.push('/');
            so_far.push_str(c);
            match self.dir(&so_far, mode) {
                Ok(()) | Err(BuildError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), BuildError> {
        self.add(path, Node::File(data), mode).map(|_| ())
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), BuildError> {
        self.add(path, Node::Symlink(String::from(target)), 0o777)
            .map(|_| ())
    }

    /// The finished image bytes.
    pub fn finish(self) -> Vec<u8> {
        // Serialise each node's data: files as is, dirs as entry lists.
        let datas: Vec<Vec<u8>> = self
            .nodes
            .iter()
            .map(|e| match &e.node {
                Node::File(d) => d.clone(),
                Node::Symlink(t) => t.as_bytes().to_vec(),
                Node::Dir(d) => {
                    let mut out = Vec::new();
                    for (name, ino) in d {
                        out.extend_from_slice(&ino.to_le_bytes());
                        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                        out.extend_from_slice(name.as_bytes());
                    }
                    out
                }
            })
            .collect();
        let count = self.nodes.len() as u64;
        let itab = BLOCK;
        let mut first_blocks = Vec::with_capacity(datas.len());
        let mut blocks = 0u64;
        for d in &datas {
            first_blocks.push(blocks);
            blocks += (d.len() as u64).div_ceil(BLOCK);
        }
        let csum_off = itab + (count * INODE_SIZE).next_multiple_of(BLOCK);
        let data_off = csum_off + (blocks * 4).next_multiple_of(BLOCK);
        let size = data_off + blocks * BLOCK;
        let mut img = vec![0u8; size as usize];
        for (i, (e, d)) in self.nodes.iter().zip(&datas).enumerate() {
            let o = (itab + i as u64 * INODE_SIZE) as usize;
            let b = &mut img[o..o + INODE_SIZE as usize];
            b[0] = match e.node {
                Node::File(_) => 1,
                Node::Dir(_) => 2,
                Node::Symlink(_) => 3,
            };
            b[4..8].copy_from_slice(&e.mode.to_le_bytes());
            b[16..20].copy_from_slice(&e.nlink.to_le_bytes());
            b[24..32].copy_from_slice(&(d.len() as u64).to_le_bytes());
            b[32..40].copy_from_slice(&self.mtime_ns.to_le_bytes());
            b[40..48].copy_from_slice(&first_blocks[i].to_le_bytes());
            let start = (data_off + first_blocks[i] * BLOCK) as usize;
            img[start..start + d.len()].copy_from_slice(d);
        }
        for n in 0..blocks {
            let s = (data_off + n * BLOCK) as usize;
            let c = CRC.checksum(&img[s..s + BLOCK as usize]);
            let o = (csum_off + n * 4) as usize;
            img[o..o + 4].copy_from_slice(&c.to_le_bytes());
        }
        let table_crc = CRC.checksum(&img[itab as usize..(itab + count * INODE_SIZE) as usize]);
        let mut sb = [0u8; SUPER_LEN];
        sb[..8].copy_from_slice(&MAGIC);
        sb[8..12].copy_from_slice(&VERSION.to_le_bytes());
        sb[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        sb[16..20].copy_from_slice(&(count as u32).to_le_bytes());
        sb[20..24].copy_from_slice(&table_crc.to_le_bytes());
        sb[24..32].copy_from_slice(&itab.to_le_bytes());
        sb[32..40].copy_from_slice(&csum_off.to_le_bytes());
        sb[40..48].copy_from_slice(&data_off.to_le_bytes());
        sb[48..56].copy_from_slice(&blocks.to_le_bytes());
        sb[56..64].copy_from_slice(&size.to_le_bytes());
        let c = CRC.checksum(&sb[..64]);
        sb[64..68].copy_from_slice(&c.to_le_bytes());
        img[..SUPER_LEN].copy_from_slice(&sb);
        img
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        b.dir_all("/usr/bin", 0o755).unwrap();
        b.file(
            "/usr/bin/app",
            (0..10_000u32).map(|i| i as u8).collect(),
            0o755,
        )
        .unwrap();
        b.file("/empty", Vec::new(), 0o644).unwrap();
        b.symlink("/bin", "usr/bin").unwrap();
        b.dir("/tmp", 0o1777).unwrap();
        b.finish()
    }

    #[test]
    fn round_trip() {
        let img = Image::open(sample()).unwrap();
        let root = img.entries(ROOT_INO).unwrap();
        let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bin", "empty", "tmp", "usr"]);
        let usr = img.lookup(ROOT_INO, "usr").unwrap();
        let bin = img.lookup(usr, "bin").unwrap();
        let app = img.lookup(bin, "app").unwrap();
        let info = img.inode(app).unwrap();
        assert_eq!(
            (info.kind, info.size, info.mode),
            (Kind::File, 10_000, 0o755)
        );
        let mut buf = vec![0u8; 10_000];
        assert_eq!(img.read(app, 0, &mut buf).unwrap(), 10_000);
        assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
        // Reads across block edges and past the end.
        let mut part = [0u8; 100];
        assert_eq!(img.read(app, 4050, &mut part).unwrap(), 100);
        assert_eq!(part[0], (4050 % 256) as u8);
        assert_eq!(img.read(app, 9_990, &mut part).unwrap(), 10);
        assert_eq!(img.read(app, 20_000, &mut part).unwrap(), 0);
        let link = img.lookup(ROOT_INO, "bin").unwrap();
        assert_eq!(img.readlink(link).unwrap(), "usr/bin");
        assert_eq!(
            img.inode(ROOT_INO).unwrap().nlink,
            4,
            "., .., tmp/.., usr/.."
        );
        assert_eq!(img.lookup(ROOT_INO, "nope"), Err(Error::NotFound));
        assert_eq!(img.entries(app), Err(Error::NotADirectory));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let good = sample();
        // Flip one byte in every 97th position: superblock, inode table,
        // checksum table and data all covered.
        for pos in (0..good.len()).step_by(97) {
            let mut bad = good.clone();
            bad[pos] ^= 0x40;
            let Ok(img) = Image::open(bad) else { continue };
            // Mount may pass (padding or data byte): every read must then
            // either fail with Corrupt or return exactly the original data.
            let orig = Image::open(good.clone()).unwrap();
            for ino in 1..=orig.inode_count() {
                let size = orig.inode(ino).unwrap().size as usize;
                let (mut a, mut b) = (vec![0u8; size], vec![0u8; size]);
                orig.read(ino, 0, &mut a).unwrap();
                match img.read(ino, 0, &mut b) {
                    Ok(_) => assert_eq!(a, b, "flip at {pos} returned bad data"),
                    Err(e) => assert!(matches!(e, Error::Corrupt(_)), "{e}"),
                }
            }
        }
    }

    #[test]
    fn bad_images_are_refused_with_the_reason() {
        assert_eq!(Image::open(vec![0u8; 10]).err(), Some(Error::NotAnImage));
        assert_eq!(
            Image::open(b"ELF...".to_vec()).err(),
            Some(Error::NotAnImage)
        );
        let mut s = sample();
        s[20] ^= 1;
        assert_eq!(
            Image::open(s).err(),
            Some(Error::Corrupt("superblock checksum"))
        );
        let truncated = sample()[..8192].to_vec();
        assert_eq!(
            Image::open(truncated).err(),
            Some(Error::Corrupt("image is shorter than its superblock says"))
        );
        let mut s = sample();
        s[4096 + 70] ^= 1; // second inode
        assert_eq!(
            Image::open(s).err(),
            Some(Error::Corrupt("inode table checksum"))
        );
    }

    #[test]
    fn builder_rejects_bad_trees() {
        let mut b = Builder::new();
        assert_eq!(
            b.file("/a/b", vec![], 0),
            Err(BuildError::NoParent("/a/b".into()))
        );
        b.file("/a", vec![], 0).unwrap();
        assert_eq!(
            b.file("/a", vec![], 0),
            Err(BuildError::AlreadyExists("/a".into()))
        );
        assert_eq!(
            b.file("/a/x", vec![], 0),
            Err(BuildError::NoParent("/a/x".into()))
        );
        assert_eq!(b.dir("/../x", 0), Err(BuildError::BadName("/../x".into())));
        assert_eq!(b.dir("/", 0), Err(BuildError::BadName("/".into())));
    }

    #[test]
    fn hostile_superblock_numbers_are_refused_not_trusted() {
        let good = sample();
        for (field, value) in [
            (16usize, u64::MAX),
            (24, u64::MAX),
            (32, u64::MAX),
            (40, 1),
            (48, u64::MAX / 2),
        ] {
            let mut s = good.clone();
            let width = if field == 16 { 4 } else { 8 };
            s[field..field + width].copy_from_slice(&value.to_le_bytes()[..width]);
            let c = CRC.checksum(&s[..64]);
            s[64..68].copy_from_slice(&c.to_le_bytes());
            assert!(
                matches!(Image::open(s), Err(Error::Corrupt(_))),
                "field {field}"
            );
        }
    }

    #[test]
    fn big_directories_span_blocks_and_every_name_is_found() {
        let mut b = Builder::new();
        b.dir("/d", 0o700).unwrap();
        let names: Vec<String> = (0..600)
            .map(|i| alloc::format!("file-{i:04}-{}", "x".repeat(i % 40)))
            .collect();
        for (i, n) in names.iter().enumerate() {
            b.file(
                &alloc::format!("/d/{n}"),
                alloc::vec![i as u8; i % 7],
                0o644,
            )
            .unwrap();
        }
        let img = Image::open(b.finish()).unwrap();
        let d = img.lookup(ROOT_INO, "d").unwrap();
        let info = img.inode(d).unwrap();
        assert!(info.size > BLOCK, "the directory spans blocks");
        assert_eq!((info.mode, info.kind), (0o700, Kind::Directory));
        assert_eq!(img.entries(d).unwrap().len(), 600);
        for (i, n) in names.iter().enumerate() {
            let f = img.lookup(d, n).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(img.read(f, 0, &mut buf).unwrap(), i % 7);
            assert!(buf[..i % 7].iter().all(|&x| x == i as u8));
        }
    }

    #[test]
    fn images_are_reproducible() {
        assert_eq!(sample(), sample());
    }
}
