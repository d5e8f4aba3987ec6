//! std::fs: files, directories, metadata, sorted read_dir, links, errors.
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn check(name: &str, ok: bool) {
    println!("{name}={}", if ok { "ok" } else { "FAIL" });
}

fn main() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("skiff-rs-fs-{}-{nanos}", std::process::id()));
    fs::create_dir(&dir).expect("create_dir");
    let f = dir.join("data.txt");

    fs::write(&f, b"hello, skiff\n").expect("write");
    println!("read_to_string={:?}", fs::read_to_string(&f).expect("read"));
    let md = fs::metadata(&f).expect("metadata");
    println!(
        "len={} is_file={} is_dir={}",
        md.len(),
        md.is_file(),
        md.is_dir()
    );
    check("nlink_one", md.nlink() == 1);

    let mut a = OpenOptions::new().append(true).open(&f).expect("append");
    a.write_all(b"second line\n").expect("append write");
    drop(a);
    let mut r = File::open(&f).expect("open");
    r.seek(SeekFrom::Start(7)).expect("seek");
    let mut tail = String::new();
    r.read_to_string(&mut tail).expect("read tail");
    println!("after_seek={tail:?}");
    println!("end={}", r.seek(SeekFrom::End(-5)).expect("seek end"));

    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).expect("chmod");
    println!(
        "mode={:o}",
        fs::metadata(&f).expect("md").permissions().mode() & 0o7777
    );

    let nested = dir.join("a/b/c");
    fs::create_dir_all(&nested).expect("create_dir_all");
    for name in ["zeta", "alpha", "mid", "Beta"] {
        fs::write(dir.join("a").join(name), name.as_bytes()).expect("write entry");
    }
    let mut names: Vec<String> = fs::read_dir(dir.join("a"))
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let kind = if e.file_type().expect("file_type").is_dir() {
                "d"
            } else {
                "f"
            };
            format!("{}:{kind}", e.file_name().to_string_lossy())
        })
        .collect();
    names.sort();
    println!("read_dir={}", names.join(","));

    let copied = dir.join("copy.txt");
    println!("copy_bytes={}", fs::copy(&f, &copied).expect("copy"));
    check("copy_same", fs::read(&f).ok() == fs::read(&copied).ok());
    fs::rename(&copied, dir.join("renamed.txt")).expect("rename");
    check(
        "renamed",
        !copied.exists() && dir.join("renamed.txt").is_file(),
    );

    std::os::unix::fs::symlink("data.txt", dir.join("link")).expect("symlink");
    println!(
        "read_link={}",
        fs::read_link(dir.join("link")).expect("readlink").display()
    );
    check(
        "symlink_metadata",
        fs::symlink_metadata(dir.join("link"))
            .expect("lstat")
            .file_type()
            .is_symlink(),
    );
    check(
        "follows_link",
        fs::metadata(dir.join("link")).expect("stat").len() == 25,
    );
    fs::hard_link(&f, dir.join("hard")).expect("hard_link");
    check("nlink_two", fs::metadata(&f).expect("md").nlink() == 2);
    check(
        "canonicalize",
        fs::canonicalize(dir.join("a/b/../../link")).ok() == fs::canonicalize(&f).ok(),
    );

    let kind = |r: std::io::Result<()>| {
        r.err()
            .map(|e| format!("{:?}", e.kind()))
            .unwrap_or("none".into())
    };
    println!(
        "open_missing={}",
        File::open(dir.join("missing"))
            .err()
            .map(|e| format!("{:?}", e.kind()))
            .unwrap_or_default()
    );
    println!("mkdir_exists={}", kind(fs::create_dir(dir.join("a"))));
    println!("rmdir_not_empty={}", kind(fs::remove_dir(dir.join("a"))));
    println!("unlink_dir={}", kind(fs::remove_file(dir.join("a"))));

    fs::remove_file(dir.join("hard")).expect("unlink");
    fs::remove_dir_all(&dir).expect("remove_dir_all");
    check("cleaned", !Path::new(&dir).exists());
}
