//! `skiff run --disk`: the program's files in a SKIFFIMG image file system
//! (kernel/imagefs, docs/imagefs.md) on a read-only virtio disk instead of
//! an initramfs.
//!
//! The image is made from the packed initramfs (the same tree, so a run
//! from the disk sees exactly the files a run from the initramfs sees),
//! plus the mount points the kernel needs on a read-only root (`/dev`,
//! `/proc`, `/sys`, `/tmp`, `/run`). The disk is attached with the same
//! virtio-blk device kind as the board's scratch disk (PCI or mmio), and
//! the kernel is told `root=image`: it mounts the first disk whose first
//! sector carries the image magic, whatever order the bus lists disks in.

use crate::app::Packed;
use crate::boards::Board;
use crate::error::{Error, Result};
use skiff_imagefs::Builder;
use std::path::{Path, PathBuf};

/// The kernel option that selects the image root.
pub const ROOT_OPTION: &str = "root=image";

/// Directories the kernel mounts on; a read-only root must have them.
const MOUNT_POINTS: [(&str, u32); 5] = [
    ("/dev", 0o755),
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/tmp", 0o1777),
    ("/run", 0o755),
];

/// Writes the image for `packed` (whose initramfs is at `initrd`), adds
/// the disk and `root=image` to `argv` and returns the image's path
/// (removed after the run).
pub fn attach(
    root: &Path,
    board: &Board,
    packed: &Packed,
    _initrd: &Path,
    argv: &mut Vec<String>,
) -> Result<PathBuf> {
    let dir = crate::matrix::target_dir(root).join("skiff-run");
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let path = dir.join(format!("disk-{}.img", std::process::id()));
    let image = image_from_cpio(&packed.initrd)?;
    std::fs::write(&path, &image).map_err(Error::io(&path))?;
    if let Err(e) = add_disk(board, &path, argv) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    eprintln!(
        "skiff: disk image={} size={}KiB (root=image, read-only)",
        path.display(),
        image.len().div_ceil(1024)
    );
    Ok(path)
}

/// Adds the read-only disk holding `image` to `argv` (QEMU's arguments
/// for `board`) and `root=image` to its kernel command line.
pub fn add_disk(board: &Board, image: &Path, argv: &mut Vec<String>) -> Result<()> {
    let device = board
        .args
        .iter()
        .find_map(|a| {
            let kind = a.split(',').next()?;
            kind.starts_with("virtio-blk-").then(|| kind.to_string())
        })
        .ok_or_else(|| {
            Error::Usage(format!(
                "--disk: board {} declares no virtio-blk device in its args (boards/*.toml), so there is no bus to put the program's disk on; use a qemu-* board",
                board.name
            ))
        })?;
    let at = argv.iter().position(|a| a == "-append").ok_or_else(|| {
        Error::Usage(format!(
            "--disk: board {} takes no kernel command line (-append)",
            board.name
        ))
    })?;
    let cmdline = argv
        .get_mut(at + 1)
        .ok_or_else(|| Error::Usage("--disk: -append without a command line".into()))?;
    // Kernel options come before ` -- `: put it first.
    *cmdline = format!("{ROOT_OPTION} {cmdline}");
    let file = image.display().to_string();
    if file.contains(',') {
        return Err(Error::Usage(format!(
            "--disk: the image path {file} contains a comma, which QEMU's -drive cannot take"
        )));
    }
    argv.extend([
        "-drive".to_string(),
        format!("if=none,id=skiffroot,file={file},format=raw,readonly=on"),
        "-device".to_string(),
        format!("{device},drive=skiffroot"),
    ]);
    Ok(())
}

/// The image of the tree in a cpio `newc` archive (as `app::pack` writes
/// it: directories before their contents), with the kernel's mount points
/// added where missing.
pub fn image_from_cpio(cpio: &[u8]) -> Result<Vec<u8>> {
    let bad = |what: String| Error::Usage(format!("--disk: initramfs: {what}"));
    let mut b = Builder::new();
    let mut at = 0usize;
    loop {
        let hdr = cpio
            .get(at..at + 110)
            .ok_or_else(|| bad(format!("truncated header at {at}")))?;
        if &hdr[..6] != b"070701" {
            return Err(bad(format!("bad magic at {at}")));
        }
        let field = |i: usize| -> Result<u32> {
            let s = std::str::from_utf8(&hdr[6 + i * 8..14 + i * 8])
                .map_err(|_| bad(format!("bad header at {at}")))?;
            u32::from_str_radix(s, 16).map_err(|_| bad(format!("bad header at {at}")))
        };
        let (mode, size, namesize) = (field(1)?, field(6)? as usize, field(11)? as usize);
        let name_end = at + 110 + namesize;
        let name = cpio
            .get(at + 110..name_end.saturating_sub(1))
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| bad(format!("bad name at {at}")))?;
        let data_at = name_end.next_multiple_of(4);
        let data = cpio
            .get(data_at..data_at + size)
            .ok_or_else(|| bad(format!("{name}: truncated data")))?;
        at = (data_at + size).next_multiple_of(4);
        if name == "TRAILER!!!" {
            break;
        }
        if name == "." || name.is_empty() {
            continue;
        }
        let path = format!("/{name}");
        let perm = mode & 0o7777;
        let added = match mode & 0o170000 {
            0o040000 => b.dir(&path, perm),
            0o100000 => b.file(&path, data.to_vec(), perm),
            0o120000 => {
                let target = std::str::from_utf8(data)
                    .map_err(|_| bad(format!("{name}: symlink target is not UTF-8")))?;
                b.symlink(&path, target)
            }
            other => return Err(bad(format!("{name}: file type {other:o} not supported"))),
        };
        added.map_err(|e| bad(e.to_string()))?;
    }
    for (dir, perm) in MOUNT_POINTS {
        match b.dir(dir, perm) {
            Ok(()) | Err(skiff_imagefs::BuildError::AlreadyExists(_)) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::Archive;
    use skiff_imagefs::{Image, Kind, ROOT_INO};

    fn archive() -> Vec<u8> {
        let mut a = Archive::new();
        a.dir("/", 0o755);
        a.dir("/bin", 0o755);
        a.file(
            "/bin/app",
            0o755,
            &(0..5000u32).map(|i| i as u8).collect::<Vec<_>>(),
        );
        a.dir("/tmp", 0o1777);
        a.symlink("/lib", "usr/lib");
        a.file("/etc-hostname", 0o644, b"skiff\n");
        a.finish()
    }

    #[test]
    fn the_image_holds_the_initramfs_tree_and_the_mount_points() {
        let img = Image::open(image_from_cpio(&archive()).unwrap()).unwrap();
        let names: Vec<String> = img
            .entries(ROOT_INO)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "etc-hostname",
                "lib",
                "proc",
                "run",
                "sys",
                "tmp"
            ]
        );
        let bin = img.lookup(ROOT_INO, "bin").unwrap();
        let app = img.lookup(bin, "app").unwrap();
        let info = img.inode(app).unwrap();
        assert_eq!((info.kind, info.mode, info.size), (Kind::File, 0o755, 5000));
        let mut buf = vec![0u8; 5000];
        img.read(app, 0, &mut buf).unwrap();
        assert!(buf.iter().enumerate().all(|(i, &x)| x == i as u8));
        let tmp = img.lookup(ROOT_INO, "tmp").unwrap();
        assert_eq!(img.inode(tmp).unwrap().mode, 0o1777, "kept, not replaced");
        let lib = img.lookup(ROOT_INO, "lib").unwrap();
        assert_eq!(img.readlink(lib).unwrap(), "usr/lib");
    }

    #[test]
    fn bad_archives_are_refused() {
        let good = archive();
        assert!(image_from_cpio(&good[..200]).is_err());
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(image_from_cpio(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
    }

    fn board(args: &[&str]) -> Board {
        let mut b =
            crate::boards::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards"))
                .unwrap()
                .into_iter()
                .find(|b| b.name == "qemu-x86_64")
                .unwrap();
        b.args = args.iter().map(|s| s.to_string()).collect();
        b
    }

    #[test]
    fn the_disk_uses_the_boards_bus_and_the_root_option() {
        let mut argv: Vec<String> = ["-append", "devices.expect=x -- /app/p a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let b = board(&["-device", "virtio-blk-device,drive=scratch"]);
        add_disk(&b, Path::new("/t/disk.img"), &mut argv).unwrap();
        assert_eq!(argv[1], "root=image devices.expect=x -- /app/p a");
        assert_eq!(
            argv[2..],
            [
                "-drive",
                "if=none,id=skiffroot,file=/t/disk.img,format=raw,readonly=on",
                "-device",
                "virtio-blk-device,drive=skiffroot"
            ]
        );
        let none = board(&["-device", "virtio-rng-pci"]);
        let err = add_disk(&none, Path::new("/t/d.img"), &mut argv).unwrap_err();
        assert!(err.to_string().contains("no virtio-blk device"), "{err}");
    }
}
