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

// ---- the mounted tree: procfs, sysfs, tmpfs, devfs ----

use super::procfs::{CpuInfo, MemInfo, ProcSources, ProcStatus};
use crate::mm::vma::{AddressSpace, Backing, Placement, Prot, Vma};

fn t_status() -> ProcStatus {
    ProcStatus {
        name: "app".into(),
        pid: 42,
        ppid: 0,
        threads: 3,
        umask: 0o22,
        vm_size_kb: 2048,
        vm_rss_kb: 512,
    }
}

/// `/proc/self/maps` from a real address space, as the process's source
/// will produce it.
fn t_maps() -> String {
    let mut s = AddressSpace::new(
        0x1_0000..0x7fff_ffff_f000,
        0x7f00_0000_0000,
        0x5555_5600_0000,
    );
    let exe = Vma {
        range: 0..0,
        prot: Prot::RX,
        shared: false,
        backing: Backing::File {
            dev: 0x1,
            ino: 7,
            offset: 0,
        },
        name: Some("/bin/app".into()),
    };
    s.map(Placement::Fixed(0x40_0000), 0x2000, exe).unwrap();
    s.maps()
}

pub(crate) fn test_sources() -> ProcSources {
    ProcSources {
        status: t_status,
        exe: || "/bin/app".into(),
        cwd: || "/".into(),
        cmdline: || b"app\0-v\0".to_vec(),
        maps: t_maps,
        fds: || vec![(0, "/dev/console".into()), (3, "/etc/hostname".into())],
        cpus: || CpuInfo {
            count: 4,
            model: "Skiff Virtual CPU".into(),
            features: "fpu sse2".into(),
        },
        memory: || MemInfo {
            total: 512 << 20,
            free: 256 << 20,
        },
        uptime_ns: || 12_345_000_000,
        boot_time_s: || 1_700_000_000,
        hostname: || "skiff".into(),
        osrelease: || "6.1.0-skiff".into(),
    }
}

pub(crate) fn test_tree() -> Arc<Vfs> {
    let archive = cpio::build(&[
        ("bin/app", S_IFREG | 0o755, b"\x7fELF"),
        ("etc/hostname", S_IFREG | 0o644, b"skiff\n"),
        ("lib", S_IFLNK | 0o777, b"usr/lib"),
        ("usr/lib", S_IFDIR | 0o755, b""),
    ]);
    // The boot image lives for the kernel's life: leak it here.
    mount_root(Some(archive.leak()), None, test_sources()).unwrap()
}

fn cat(v: &Vfs, path: &str) -> String {
    let n = v.resolve(&v.root(), path, true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 7]; // small reads: offsets must work
    loop {
        let k = n.read_at(out.len() as u64, &mut buf).unwrap();
        if k == 0 {
            break;
        }
        out.extend_from_slice(&buf[..k]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn mount_root_builds_the_tree() {
    let v = test_tree();
    let root = v.root();
    for dir in ["/dev", "/proc", "/sys", "/tmp", "/etc", "/usr/lib"] {
        assert!(v.resolve(&root, dir, true).unwrap().is_dir(), "{dir}");
    }
    let tmp = v.resolve(&root, "/tmp", true).unwrap();
    assert_eq!(tmp.fs_magic(), magic::TMPFS);
    assert_eq!(tmp.metadata().perm, 0o1777);
    assert_eq!(root.fs_magic(), magic::RAMFS);
    assert_eq!(
        v.resolve(&root, "/proc", true).unwrap().fs_magic(),
        magic::PROC
    );
    assert_eq!(
        v.resolve(&root, "/bin/app", true).unwrap().metadata().perm,
        0o755
    );
    // /tmp is writable and separate from the root.
    tmp.create("f", NewNode::File, 0o600).unwrap();
    assert_ne!(
        v.resolve(&root, "/tmp/f", true).unwrap().metadata().dev,
        root.metadata().dev
    );
    assert_eq!(cat(&v, "/sys/devices/system/cpu/online"), "0-3\n");
    assert_eq!(cat(&v, "/sys/devices/system/cpu/possible"), "0-3\n");
    // A bad archive is an error, not a panic.
    let err = mount_root(Some(b"junk"), None, test_sources()).err();
    assert!(matches!(err, Some(MountError::Initrd(_))));
    // Image files are copied on first write, and the image is untouched.
    let image: &'static [u8] = cpio::build(&[("f", S_IFREG | 0o644, b"abcdef")]).leak();
    let r = RamFs::new_root();
    RamFs::populate_image(&r, image).unwrap();
    let f = r.lookup("f").unwrap();
    f.write_at(1, b"X").unwrap();
    assert_eq!(read_all(&f), b"aXcdef");
    let again = RamFs::new_root();
    RamFs::populate_image(&again, image).unwrap();
    let g = again.lookup("f").unwrap();
    assert_eq!(read_all(&g), b"abcdef");
    g.truncate(2).unwrap();
    assert_eq!(read_all(&g), b"ab");
    g.truncate(4).unwrap();
    assert_eq!(read_all(&g), b"ab\0\0");
    assert_eq!(g.append(b"!").unwrap(), 5);
    assert_eq!(read_all(&g), b"ab\0\0!");
}

#[test]
fn procfs_self_and_maps_come_from_the_sources() {
    let v = test_tree();
    let root = v.root();
    assert_eq!(
        v.resolve(&root, "/proc/self", false)
            .unwrap()
            .readlink()
            .unwrap(),
        "42"
    );
    assert_eq!(
        cat(&v, "/proc/self/maps"),
        "00400000-00402000 r-xp 00000000 00:01 7                                  /bin/app\n"
    );
    assert_eq!(cat(&v, "/proc/42/maps"), cat(&v, "/proc/self/maps"));
    assert_eq!(
        v.resolve(&root, "/proc/self/exe", false)
            .unwrap()
            .readlink()
            .unwrap(),
        "/bin/app"
    );
    // exe is followed like Linux's magic link would be, to the file.
    assert_eq!(cat(&v, "/proc/self/exe"), "\x7fELF");
    let status = cat(&v, "/proc/self/status");
    assert!(status.starts_with("Name:\tapp\n"), "{status}");
    assert!(status.contains("\nPid:\t42\n") && status.contains("\nThreads:\t3\n"));
    assert!(status.contains("\nVmRSS:\t     512 kB\n"), "{status}");
    assert!(status.contains("\nCpus_allowed_list:\t0-3\n"));
    assert_eq!(cat(&v, "/proc/self/cmdline"), "app\0-v\0");
    assert_eq!(cat(&v, "/proc/self/comm"), "app\n");
    // fd/: one link per descriptor, listed and looked up.
    let fd = v.resolve(&root, "/proc/self/fd", true).unwrap();
    let names: Vec<String> = fd.entries().unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["0", "3"]);
    assert_eq!(
        v.resolve(&root, "/proc/self/fd/3", false)
            .unwrap()
            .readlink()
            .unwrap(),
        "/etc/hostname"
    );
    assert_eq!(cat(&v, "/proc/self/fd/3"), "skiff\n");
    assert_eq!(
        v.resolve(&root, "/proc/self/fd/9", false).err(),
        Some(Errno::ENOENT)
    );
    // `..` climbs inside procfs and out of it.
    let up = v.resolve(&root, "/proc/self/fd/../..", true).unwrap();
    assert_eq!(up.metadata().ino, 1);
    assert_eq!(up.fs_magic(), magic::PROC);
    assert_eq!(cat(&v, "/proc/self/../../etc/hostname"), "skiff\n");
    // The pid directory is listed at the root.
    let top: Vec<String> = v
        .resolve(&root, "/proc", true)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(top.contains(&"42".to_string()) && top.contains(&"self".to_string()));
    // Read-only.
    let maps = v.resolve(&root, "/proc/self/maps", true).unwrap();
    assert_eq!(maps.write_at(0, b"x").err(), Some(Errno::EACCES));
}

#[test]
fn procfs_system_files() {
    let v = test_tree();
    assert_eq!(cat(&v, "/proc/sys/kernel/hostname"), "skiff\n");
    assert_eq!(cat(&v, "/proc/sys/kernel/osrelease"), "6.1.0-skiff\n");
    assert_eq!(cat(&v, "/proc/uptime"), "12.34 49.36\n");
    let mem = cat(&v, "/proc/meminfo");
    assert!(
        mem.starts_with("MemTotal:         524288 kB\nMemFree:          262144 kB\n"),
        "{mem}"
    );
    let cpu = cat(&v, "/proc/cpuinfo");
    assert_eq!(cpu.matches("processor\t: ").count(), 4);
    let stat = cat(&v, "/proc/stat");
    assert!(
        stat.starts_with("cpu  0 0 0 4936 0 0 0 0 0 0\ncpu0 0 0 0 1234 "),
        "{stat}"
    );
    assert!(stat.contains("\nbtime 1700000000\n"));
    assert!(cat(&v, "/proc/mounts").contains("tmpfs /tmp tmpfs"));
    assert_eq!(super::procfs::cpu_list(1), "0\n");
    let arm = super::procfs::cpuinfo_aarch64(&(test_sources().cpus)());
    assert!(arm.contains("Features\t: fpu sse2\n"));
}

#[test]
fn path_of_names_directories_across_mounts() {
    let v = test_tree();
    let root = v.root();
    let d = v.resolve(&root, "/lib", true).unwrap();
    assert_eq!(v.path_of(&d).unwrap(), "/usr/lib");
    let tmp = v.resolve(&root, "/tmp", true).unwrap();
    let sub = tmp.create("a", NewNode::Directory, 0o755).unwrap();
    assert_eq!(v.path_of(&sub).unwrap(), "/tmp/a");
    assert_eq!(v.path_of(&tmp).unwrap(), "/tmp");
    assert_eq!(v.path_of(&root).unwrap(), "/");
    let fd = v.resolve(&root, "/proc/self/fd", true).unwrap();
    assert_eq!(v.path_of(&fd).unwrap(), "/proc/42/fd");
    tmp.rmdir("a").unwrap();
    assert_eq!(v.path_of(&sub).err(), Some(Errno::ENOENT));
    assert!(v.is_mount_point(&tmp));
    assert!(!v.is_mount_point(&d));
}
