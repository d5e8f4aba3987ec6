//! VFS and ramfs behaviour, checked against what Linux does.

use super::cpio::{self, S_IFDIR, S_IFLNK, S_IFREG};
use super::ramfs::{PopulateError, RamFs};
use super::*;

fn image() -> Vfs {
    let root = RamFs::new_root();
    let archive = cpio::build(&[
        ("bin", S_IFDIR | 0o755, b""),
        ("bin/busybox", S_IFREG | 0o755, b"\x7fELF..."),
        ("bin/sh", S_IFLNK | 0o777, b"busybox"),
        (
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            S_IFREG | 0o644,
            b"libc",
        ),
        ("lib", S_IFLNK | 0o777, b"usr/lib"),
        ("etc/hostname", S_IFREG | 0o644, b"skiff\n"),
        ("loop", S_IFLNK | 0o777, b"loop"),
        ("abs", S_IFLNK | 0o777, b"/etc"),
    ]);
    assert_eq!(RamFs::populate(&root, &archive).unwrap(), 8);
    Vfs::new(root)
}

fn read_all(n: &Arc<dyn Inode>) -> Vec<u8> {
    let mut buf = vec![0; n.metadata().size as usize];
    let got = n.read_at(0, &mut buf).unwrap();
    buf.truncate(got);
    buf
}

#[test]
fn walks_symlinks_dots_and_dotdot() {
    let v = image();
    let root = v.root();
    assert_eq!(
        read_all(&v.resolve(&root, "/bin/sh", true).unwrap()),
        b"\x7fELF..."
    );
    assert_eq!(
        v.resolve(&root, "/bin/sh", false).unwrap().metadata().kind,
        FileType::Symlink
    );
    let libc = v
        .resolve(&root, "/lib/x86_64-linux-gnu/./libc.so.6", true)
        .unwrap();
    assert_eq!(read_all(&libc), b"libc");
    let up = v
        .resolve(&root, "/usr/lib/../../etc/hostname", true)
        .unwrap();
    assert_eq!(read_all(&up), b"skiff\n");
    // `..` at the root stays at the root.
    let r = v.resolve(&root, "/../../etc/../..", true).unwrap();
    assert_eq!(r.metadata().ino, root.metadata().ino);
    // Relative to a cwd, and through an absolute symlink.
    let usr = v.resolve(&root, "/usr", true).unwrap();
    assert_eq!(
        read_all(&v.resolve(&usr, "../abs/hostname", true).unwrap()),
        b"skiff\n"
    );
}

#[test]
fn errors_match_linux() {
    let v = image();
    let root = v.root();
    let err = |p: &str| v.resolve(&root, p, true).err();
    assert_eq!(err("/nope"), Some(Errno::ENOENT));
    assert_eq!(err("/etc/hostname/x"), Some(Errno::ENOTDIR));
    assert_eq!(err("/etc/hostname/"), Some(Errno::ENOTDIR));
    assert_eq!(err("/loop"), Some(Errno::ELOOP));
    assert_eq!(err(""), Some(Errno::ENOENT));
    let long = "a".repeat(NAME_MAX + 1);
    assert_eq!(err(&format!("/{long}")), Some(Errno::ENAMETOOLONG));
    assert_eq!(err(&"/a".repeat(PATH_MAX)), Some(Errno::ENAMETOOLONG));
    // lstat of the loop itself works.
    assert!(v.resolve(&root, "/loop", false).is_ok());
}

#[test]
fn create_write_read_unlink_rename() {
    let v = image();
    let root = v.root();
    let p = v.resolve_parent(&root, "/etc/motd").unwrap();
    let f = p.dir.create(&p.name, NewNode::File, 0o644).unwrap();
    assert_eq!(f.write_at(5, b"hello").unwrap(), 5);
    assert_eq!(read_all(&f), b"\0\0\0\0\0hello");
    assert_eq!(
        p.dir.create(&p.name, NewNode::File, 0o644).err(),
        Some(Errno::EEXIST)
    );
    f.truncate(2).unwrap();
    assert_eq!(f.metadata().size, 2);
    // Hard link, then unlink the original: the data stays reachable.
    p.dir.link("motd2", &f).unwrap();
    assert_eq!(f.metadata().nlink, 2);
    p.dir.unlink("motd").unwrap();
    assert_eq!(f.metadata().nlink, 1);
    assert!(v.resolve(&root, "/etc/motd2", true).is_ok());
    // Rename across directories.
    let bin = v.resolve(&root, "/bin", true).unwrap();
    p.dir.rename("motd2", &bin, "motd").unwrap();
    assert!(v.resolve(&root, "/bin/motd", true).is_ok());
    assert_eq!(
        v.resolve(&root, "/etc/motd2", true).err(),
        Some(Errno::ENOENT)
    );
    // Directory rules.
    assert_eq!(p.dir.unlink("..").err(), Some(Errno::ENOENT));
    assert_eq!(root.unlink("etc").err(), Some(Errno::EISDIR));
    assert_eq!(root.rmdir("etc").err(), Some(Errno::ENOTEMPTY));
    let usr = v.resolve(&root, "/usr", true).unwrap();
    let lib = v.resolve(&root, "/usr/lib", true).unwrap();
    assert_eq!(
        usr.rename("lib", &lib, "x").err(),
        Some(Errno::EINVAL),
        "into itself"
    );
}

#[test]
fn directory_nlink_and_dotdot_follow_renames() {
    let v = image();
    let root = v.root();
    let before = root.metadata().nlink;
    let d = root.create("d", NewNode::Directory, 0o755).unwrap();
    assert_eq!(root.metadata().nlink, before + 1);
    assert_eq!(d.metadata().nlink, 2);
    let etc = v.resolve(&root, "/etc", true).unwrap();
    root.rename("d", &etc, "d").unwrap();
    let moved = v.resolve(&root, "/etc/d", true).unwrap();
    let up = v.resolve(&moved, "..", true).unwrap();
    assert_eq!(up.metadata().ino, etc.metadata().ino);
    assert_eq!(root.metadata().nlink, before);
    root.rmdir("nope").unwrap_err();
    // A directory may replace an empty directory, not a full one or a file.
    root.create("empty", NewNode::Directory, 0o755).unwrap();
    assert_eq!(etc.rename("d", &root, "bin").err(), Some(Errno::ENOTEMPTY));
    assert_eq!(
        etc.rename("d", &etc, "hostname").err(),
        Some(Errno::ENOTDIR)
    );
    etc.rename("d", &root, "empty").unwrap();
    assert!(v.resolve(&root, "/empty", true).unwrap().is_dir());
    assert_eq!(v.resolve(&root, "/etc/d", true).err(), Some(Errno::ENOENT));
}

#[test]
fn mounts_are_entered_and_dotdot_leaves_them() {
    let mut v = image();
    let root = v.root();
    root.create("tmp", NewNode::Directory, 0o1777).unwrap();
    let tmp = RamFs::new_root();
    v.mount("/tmp", tmp.clone()).unwrap();
    let t = v.resolve(&root, "/tmp", true).unwrap();
    assert_eq!(t.metadata().dev, tmp.metadata().dev);
    t.create("x", NewNode::File, 0o600).unwrap();
    assert!(v.resolve(&root, "/tmp/x", true).is_ok());
    let out = v.resolve(&root, "/tmp/../etc/hostname", true).unwrap();
    assert_eq!(read_all(&out), b"skiff\n");
    // Cross-file-system link and rename are EXDEV.
    let etc = v.resolve(&root, "/etc", true).unwrap();
    let host = v.resolve(&root, "/etc/hostname", true).unwrap();
    assert_eq!(t.link("h", &host).err(), Some(Errno::EXDEV));
    assert_eq!(etc.rename("hostname", &t, "h").err(), Some(Errno::EXDEV));
    // As on Linux, a second mount on /tmp stacks and hides the first.
    v.mount("/tmp", RamFs::new_root()).unwrap();
    assert_eq!(v.resolve(&root, "/tmp/x", true).err(), Some(Errno::ENOENT));
}

#[test]
fn bad_archive_is_refused_with_the_reason() {
    let root = RamFs::new_root();
    let mut archive = cpio::build(&[("f", S_IFREG | 0o644, b"data")]);
    archive.truncate(archive.len() - 130);
    let err = RamFs::populate(&root, &archive).unwrap_err();
    assert!(matches!(err, PopulateError::Archive(_)), "{err}");
    // A file where a directory is needed.
    let archive = cpio::build(&[("a", S_IFREG, b"x"), ("a/b", S_IFREG, b"y")]);
    let err = RamFs::populate(&RamFs::new_root(), &archive).unwrap_err();
    assert_eq!(err, PopulateError::Fs("a/b".into(), Errno::ENOTDIR));
}

#[test]
fn readdir_lists_entries() {
    let v = image();
    let etc = v.resolve(&v.root(), "/etc", true).unwrap();
    let names: Vec<String> = etc.entries().unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["hostname"]);
    let f = v.resolve(&v.root(), "/etc/hostname", true).unwrap();
    assert_eq!(f.entries().err(), Some(Errno::ENOTDIR));
    assert_eq!(etc.read_at(0, &mut [0; 4]).err(), Some(Errno::EISDIR));
}
