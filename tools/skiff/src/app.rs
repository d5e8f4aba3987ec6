//! Packing a Linux program for `cargo skiff run -- PROGRAM ARGS`: checks the
//! ELF on the host, resolves its interpreter and libraries ([`sysroot`]),
//! lays out the image's file tree (program, libraries at their real paths
//! with the root's symbolic links, `--add` files, `/etc`), writes it as a
//! cpio `newc` initramfs ([`cpio`]) and builds the kernel command line
//! (`strace=1 env=K=V ... argv0=... -- PATH ARGS`).
//!
//! Where the program goes (docs in README.md, "Running Linux programs"):
//! an absolute PROGRAM path inside the root (`--sysroot`, `/` for host-arch
//! programs) under a system directory (`/bin`, `/sbin`, `/usr`, `/lib*`,
//! `/opt`) keeps its path, so programs that find their data relative to
//! themselves (python3 and its stdlib) work, and so does a bare name found
//! in PATH (`ls`); any other program goes to `/app/<file name>`. `argv[0]` stays what the user typed, as a shell
//! passes it.

use crate::boards::Arch;
use crate::cpio;
use crate::elfinfo::{self, ElfError, ElfInfo};
use crate::sysroot::{self, ResolveError, Root, Step};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Directories whose programs keep their absolute path in the image.
const SYSTEM_PREFIXES: &[&str] = &["/bin/", "/sbin/", "/usr/", "/lib", "/opt/"];

/// The default environment every program gets (then `--env` in order).
pub const DEFAULT_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
];

/// The guest's host name (`/etc/hostname`, `/etc/hosts`).
pub const HOSTNAME: &str = "skiff";

/// Why a program cannot be packed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program}: cannot run on {arch}: {source}")]
    NotRunnable {
        program: String,
        arch: Arch,
        #[source]
        source: ElfError,
    },
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("library root {dir} for {arch} programs does not exist: give one with --sysroot, or install Debian's libc6-arm64-cross (ci/setup.sh does) for /usr/aarch64-linux-gnu")]
    NoSysroot { dir: PathBuf, arch: Arch },
    #[error("--add {0}: expected HOST:GUEST with an absolute GUEST path")]
    BadAdd(String),
    #[error("--env {0}: expected NAME=VALUE")]
    BadEnv(String),
    #[error("image path {path}: {message}")]
    Conflict { path: String, message: String },
    #[error("argument {0:?} contains a double quote, which the kernel command line cannot carry")]
    Unquotable(String),
    #[error("{0} is over 4 GiB, more than a cpio newc entry holds")]
    TooBig(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |source| AppError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One node of the image tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        perm: u32,
    },
    /// A regular file read from the host at pack time.
    HostFile {
        host: PathBuf,
        perm: u32,
    },
    /// A regular file with generated contents.
    Data {
        data: Vec<u8>,
        perm: u32,
    },
    Symlink {
        target: String,
    },
}

/// The image's file tree, keyed by normalised absolute guest path. Parent
/// directories are created on insert; a path through a symbolic link
/// already in the tree is followed, as the guest's path walk will.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn new() -> Tree {
        let mut t = Tree::default();
        t.nodes.insert("/".into(), Node::Dir { perm: 0o755 });
        t
    }

    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Resolves the directory part of `path` through the tree's links and
    /// creates missing directories; returns the final path to insert at.
    fn place(&mut self, path: &str) -> Result<String, AppError> {
        let path = sysroot::normalize(path);
        let mut pending = path.clone();
        let mut links = 0;
        'restart: loop {
            let comps: Vec<String> = pending
                .split('/')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            let mut prefix = String::new();
            for (i, c) in comps.iter().enumerate() {
                if i + 1 == comps.len() {
                    prefix.push('/');
                    prefix.push_str(c);
                    return Ok(prefix);
                }
                let parent = if prefix.is_empty() { "/" } else { &prefix };
                let here = format!("{}/{c}", parent.trim_end_matches('/'));
                match self.nodes.get(&here) {
                    None => {
                        self.nodes.insert(here.clone(), Node::Dir { perm: 0o755 });
                    }
                    Some(Node::Dir { .. }) => {}
                    Some(Node::Symlink { target }) => {
                        links += 1;
                        if links > 40 {
                            return Err(AppError::Conflict {
                                path,
                                message: "too many levels of symbolic links".into(),
                            });
                        }
                        let base = if target.starts_with('/') {
                            target.clone()
                        } else {
                            format!("{}/{target}", sysroot::dirname(&here))
                        };
                        pending =
                            sysroot::normalize(&format!("{base}/{}", comps[i + 1..].join("/")));
                        continue 'restart;
                    }
                    Some(_) => {
                        return Err(AppError::Conflict {
                            path,
                            message: format!("{here} is a file, not a directory"),
                        })
                    }
                }
                prefix = here;
            }
            return Ok("/".into());
        }
    }

    /// Inserts `node` at `path`. A directory over a directory merges; the
    /// same link twice is fine; anything else replacing a different node is
    /// a conflict (a later `--add` of a file over a file replaces it).
    pub fn insert(&mut self, path: &str, node: Node) -> Result<String, AppError> {
        let at = self.place(path)?;
        match (self.nodes.get(&at), &node) {
            (None, _) => {}
            (Some(Node::Dir { .. }), Node::Dir { .. }) => return Ok(at),
            (Some(old), new) if old == new => return Ok(at),
            (
                Some(Node::HostFile { .. } | Node::Data { .. }),
                Node::HostFile { .. } | Node::Data { .. },
            ) => {}
            (Some(_), _) => {
                return Err(AppError::Conflict {
                    path: at,
                    message: "already in the image as another kind of file".into(),
                })
            }
        }
        self.nodes.insert(at.clone(), node);
        Ok(at)
    }

    /// Copies a guest path from `root` with every directory and link on
    /// the way, so `/lib64/ld-linux-x86-64.so.2` arrives as Debian has it.
    pub fn copy_from_root(&mut self, root: &Root, guest: &str) -> Result<(), AppError> {
        for step in root.walk(guest)? {
            match step {
                Step::Dir { guest } => {
                    self.insert(&guest, Node::Dir { perm: 0o755 })?;
                }
                Step::Symlink { guest, target } => {
                    self.insert(&guest, Node::Symlink { target })?;
                }
                Step::File { guest, host } => {
                    let perm = file_perm(&host)?;
                    self.insert(&guest, Node::HostFile { host, perm })?;
                }
            }
        }
        Ok(())
    }

    /// `--add HOST:GUEST`: a file, a link, or a directory recursively (links
    /// inside are kept as links, not followed).
    pub fn add_host(&mut self, host: &Path, guest: &str) -> Result<(), AppError> {
        let meta = std::fs::symlink_metadata(host).map_err(io(host))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(host).map_err(io(host))?;
            self.insert(
                guest,
                Node::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
            )?;
        } else if meta.is_dir() {
            self.insert(
                guest,
                Node::Dir {
                    perm: perm_of(&meta),
                },
            )?;
            let mut entries: Vec<_> = std::fs::read_dir(host)
                .map_err(io(host))?
                .filter_map(|e| e.ok())
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                self.add_host(
                    &e.path(),
                    &format!("{}/{name}", guest.trim_end_matches('/')),
                )?;
            }
        } else if meta.is_file() {
            self.insert(
                guest,
                Node::HostFile {
                    host: host.to_path_buf(),
                    perm: perm_of(&meta),
                },
            )?;
        }
        // Sockets, FIFOs and devices are not copied.
        Ok(())
    }

    /// The cpio `newc` archive of the tree (parents before children).
    pub fn pack(&self) -> Result<Vec<u8>, AppError> {
        let mut a = cpio::Archive::new();
        for (path, node) in &self.nodes {
            match node {
                Node::Dir { perm } => a.dir(path, *perm),
                Node::Symlink { target } => a.symlink(path, target),
                Node::Data { data, perm } => a.file(path, *perm, data),
                Node::HostFile { host, perm } => {
                    let data = std::fs::read(host).map_err(io(host))?;
                    if u32::try_from(data.len()).is_err() {
                        return Err(AppError::TooBig(host.display().to_string()));
                    }
                    a.file(path, *perm, &data);
                }
            }
        }
        Ok(a.finish())
    }
}

fn perm_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

fn file_perm(host: &Path) -> Result<u32, AppError> {
    Ok(perm_of(&std::fs::metadata(host).map_err(io(host))?))
}

/// Where `/etc/resolv.conf` points: the file the kernel writes.
pub const RESOLV_CONF_TARGET: &str = "/run/resolv.conf";

/// The `/etc` files every image gets.
pub fn etc_files(hostname: &str) -> Vec<(&'static str, String)> {
    vec![
        ("/etc/hostname", format!("{hostname}\n")),
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".into(),
        ),
        ("/etc/group", "root:x:0:\nnogroup:x:65534:\n".into()),
        (
            "/etc/hosts",
            format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        ),
        (
            "/etc/nsswitch.conf",
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n".into(),
        ),
    ]
}

/// Where PROGRAM (as typed, `typed`) goes in the image. `root` is the root
/// host directory that stands for the guest's `/`.
pub fn guest_program_path(typed: &str, host: &Path, root: &Path) -> String {
    let file_name = host
        .file_name()
        .map_or_else(|| "program".into(), |n| n.to_string_lossy().into_owned());
    if typed.starts_with('/') {
        let canon_root = std::fs::canonicalize(root).ok();
        let host = sysroot::normalize(&host.to_string_lossy());
        for r in std::iter::once(root).chain(canon_root.as_deref()) {
            if let Ok(rel) = Path::new(&host).strip_prefix(r) {
                let guest = sysroot::normalize(&format!("/{}", rel.display()));
                if SYSTEM_PREFIXES.iter().any(|p| guest.starts_with(p)) {
                    return guest;
                }
            }
        }
    }
    format!("/app/{file_name}")
}

/// One word of the kernel command line: quoted when it holds spaces or is
/// empty (kernel/src/cmdline.rs removes the quotes).
pub fn quote_word(word: &str) -> Result<String, AppError> {
    if word.contains('"') {
        return Err(AppError::Unquotable(word.to_string()));
    }
    if word.is_empty() || word.contains(char::is_whitespace) {
        Ok(format!("\"{word}\""))
    } else {
        Ok(word.to_string())
    }
}

/// What the kernel is told about the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program's path in the image.
    pub path: String,
    /// `argv[0]` as typed (sent as `argv0=` when it differs from `path`).
    pub argv0: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The environment, `NAME=VALUE`, in order.
    pub env: Vec<String>,
    pub strace: bool,
}

impl Launch {
    /// The kernel command-line words: `strace=1`, `env=NAME=VALUE` for each
    /// variable, `argv0=...`, then `--`, the path and the arguments. Values
    /// and arguments with spaces are double-quoted (`env="A=b c"`).
    pub fn cmdline_words(&self) -> Result<Vec<String>, AppError> {
        let mut w = Vec::new();
        if self.strace {
            w.push("strace=1".to_string());
        }
        // kernel/src/cmdline.rs unquotes an option's value, not the word.
        for e in &self.env {
            w.push(format!("env={}", quote_word(e)?));
        }
        if self.argv0 != self.path {
            w.push(format!("argv0={}", quote_word(&self.argv0)?));
        }
        w.push("--".into());
        w.push(quote_word(&self.path)?);
        for a in &self.args {
            w.push(quote_word(a)?);
        }
        Ok(w)
    }
}

/// What `skiff run` asked for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub arch: Arch,
    /// The root for libraries (`--sysroot`, or [`Root::default_dir`]).
    pub sysroot: PathBuf,
    /// PROGRAM and its arguments as typed.
    pub argv: &'a [String],
    pub env: &'a [String],
    /// `--add HOST:GUEST`, verbatim.
    pub adds: &'a [String],
    pub strace: bool,
}

/// A packed program: the initramfs bytes and the launch description.
#[derive(Debug)]
pub struct Packed {
    pub initrd: Vec<u8>,
    pub launch: Launch,
    pub interp: Option<String>,
    pub libraries: Vec<String>,
    pub file_count: usize,
}

/// Checks, resolves and packs `req`. Every failure is reported before boot.
pub fn pack(req: &Request) -> Result<Packed, AppError> {
    let (typed, args) = req
        .argv
        .split_first()
        .ok_or_else(|| AppError::BadEnv("no program given".into()))?;
    let host = resolve_program(typed, &req.sysroot)?;
    let data = std::fs::read(&host).map_err(io(&host))?;
    let info: ElfInfo =
        elfinfo::inspect(&data, req.arch).map_err(|source| AppError::NotRunnable {
            program: typed.clone(),
            arch: req.arch,
            source,
        })?;
    let mut env: Vec<String> = DEFAULT_ENV.iter().map(|s| s.to_string()).collect();
    for e in req.env {
        let (name, _) = e
            .split_once('=')
            .ok_or_else(|| AppError::BadEnv(e.clone()))?;
        if name.is_empty() {
            return Err(AppError::BadEnv(e.clone()));
        }
        // A later value of the same name replaces the earlier one.
        env.retain(|old| old.split_once('=').map(|(n, _)| n) != Some(name));
        env.push(e.clone());
    }
    let llp = env
        .iter()
        .find_map(|e| e.strip_prefix("LD_LIBRARY_PATH="))
        .map(str::to_string);

    let mut adds = Vec::new();
    for add in req.adds {
        let (h, g) = add
            .rsplit_once(':')
            .filter(|(h, g)| !h.is_empty() && g.starts_with('/'))
            .ok_or_else(|| AppError::BadAdd(add.clone()))?;
        adds.push((g.to_string(), PathBuf::from(h)));
    }
    let dynamic = info.interp.is_some() || !info.needed.is_empty();
    if dynamic && !req.sysroot.is_dir() {
        return Err(AppError::NoSysroot {
            dir: req.sysroot.clone(),
            arch: req.arch,
        });
    }
    let mut root = Root::new(req.sysroot.clone(), req.arch);
    root.overlays = adds.clone();
    // A bare name found in PATH counts as its absolute path (`ls` is
    // /usr/bin/ls in the image too).
    let placed = if typed.contains('/') {
        typed.clone()
    } else {
        host.display().to_string()
    };
    let guest = guest_program_path(&placed, &host, &root.dir);
    let set = sysroot::resolve(&root, &guest, &info, llp.as_deref())?;

    let mut tree = Tree::new();
    for d in ["/app", "/dev", "/etc", "/proc", "/root", "/sys", "/tmp"] {
        let perm = if d == "/tmp" { 0o1777 } else { 0o755 };
        tree.insert(d, Node::Dir { perm })?;
    }
    for (path, text) in etc_files(HOSTNAME) {
        tree.insert(
            path,
            Node::Data {
                data: text.into_bytes(),
                perm: 0o644,
            },
        )?;
    }
    // The kernel writes the resolver's servers (DHCP or dns=) to
    // /run/resolv.conf at boot (kernel/src/net/boot.rs).
    tree.insert(
        "/etc/resolv.conf",
        Node::Symlink {
            target: RESOLV_CONF_TARGET.into(),
        },
    )?;
    // What an --add provides arrives with the --add below.
    for p in set.interp.iter().chain(&set.libraries).chain(&set.extra) {
        if root.overlay(p).is_none() {
            tree.copy_from_root(&root, p)?;
        }
    }
    if guest.starts_with("/app/") {
        let perm = file_perm(&host)?;
        tree.insert(&guest, Node::HostFile { perm, host })?;
    } else {
        // Inside the root: bring its links along (/usr/bin/python3 ->
        // python3.11), as the libraries do.
        tree.copy_from_root(&root, &guest)?;
    }
    for (g, h) in &adds {
        tree.add_host(h, g)?;
    }
    let file_count = tree.nodes.len();
    let initrd = tree.pack()?;
    Ok(Packed {
        initrd,
        launch: Launch {
            path: guest,
            argv0: typed.clone(),
            args: args.to_vec(),
            env,
            strace: req.strace,
        },
        interp: set.interp,
        libraries: set.libraries,
        file_count,
    })
}

/// PROGRAM as a host file: an absolute path that exists inside the root
/// (`--sysroot`) is the root's file, so `--arch aarch64 --sysroot ROOT --
/// /usr/bin/python3` runs ROOT's python3 at its path; any other path with a
/// slash as it is; a bare name is found in the host's PATH.
fn resolve_program(typed: &str, sysroot: &Path) -> Result<PathBuf, AppError> {
    if typed.starts_with('/') && sysroot != Path::new("/") {
        // Through the root's canonical path (the placement rule strips it),
        // but not the file's own links: /usr/bin/python3 stays python3.
        if let Ok(root) = std::fs::canonicalize(sysroot) {
            let in_root = root.join(typed.trim_start_matches('/'));
            if in_root.is_file() {
                return Ok(in_root);
            }
        }
    }
    if typed.contains('/') {
        return Ok(PathBuf::from(typed));
    }
    crate::qemu::find_in_path(typed).ok_or_else(|| AppError::Io {
        path: PathBuf::from(typed),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_rule() {
        let r = Path::new("/");
        assert_eq!(
            guest_program_path("/usr/bin/python3", Path::new("/usr/bin/python3"), r),
            "/usr/bin/python3"
        );
        assert_eq!(
            guest_program_path("./hello", Path::new("/work/hello"), r),
            "/app/hello"
        );
        assert_eq!(
            guest_program_path("/tmp/hello", Path::new("/tmp/hello"), r),
            "/app/hello"
        );
        // Relative paths never keep their place, even into /usr.
        assert_eq!(
            guest_program_path("bin/x", Path::new("/usr/bin/x"), r),
            "/app/x"
        );
        let arm = Path::new("/srv/arm64");
        assert_eq!(
            guest_program_path(
                "/srv/arm64/usr/bin/sqlite3",
                Path::new("/srv/arm64/usr/bin/sqlite3"),
                arm
            ),
            "/usr/bin/sqlite3"
        );
        assert_eq!(
            guest_program_path("/home/u/a", Path::new("/home/u/a"), arm),
            "/app/a"
        );
    }

    #[test]
    fn cmdline_words_and_quoting() {
        let l = Launch {
            path: "/app/hello".into(),
            argv0: "./hello".into(),
            args: vec!["a b".into(), "".into(), "--".into(), "x=1".into()],
            env: vec!["HOME=/root".into(), "GREETING=hi there".into()],
            strace: true,
        };
        assert_eq!(
            l.cmdline_words().unwrap(),
            [
                "strace=1",
                "env=HOME=/root",
                "env=\"GREETING=hi there\"",
                "argv0=./hello",
                "--",
                "/app/hello",
                "\"a b\"",
                "\"\"",
                "--",
                "x=1"
            ]
        );
        let same = Launch {
            argv0: "/app/hello".into(),
            strace: false,
            env: vec![],
            args: vec![],
            ..l.clone()
        };
        assert_eq!(same.cmdline_words().unwrap(), ["--", "/app/hello"]);
        let bad = Launch {
            args: vec!["say \"hi\"".into()],
            ..l
        };
        assert!(matches!(bad.cmdline_words(), Err(AppError::Unquotable(_))));
    }

    #[test]
    fn etc_is_complete_and_parsable() {
        let files = etc_files("box");
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "/etc/hostname",
                "/etc/passwd",
                "/etc/group",
                "/etc/hosts",
                "/etc/nsswitch.conf"
            ]
        );
        for (name, text) in &files {
            assert!(text.ends_with('\n'), "{name}");
        }
        // passwd: 7 fields, root is uid 0 with home /root.
        for line in files[1].1.lines() {
            assert_eq!(line.split(':').count(), 7, "{line}");
        }
        assert!(files[1].1.starts_with("root:x:0:0:root:/root:"));
        for line in files[2].1.lines() {
            assert_eq!(line.split(':').count(), 4, "{line}");
        }
        assert!(files[3].1.contains("127.0.1.1\tbox\n"));
        assert_eq!(files[0].1, "box\n");
        assert!(files[4].1.contains("hosts: files dns\n"));
    }

    #[test]
    fn tree_follows_links_and_detects_conflicts() {
        let mut t = Tree::new();
        t.insert(
            "/lib",
            Node::Symlink {
                target: "usr/lib".into(),
            },
        )
        .unwrap();
        let at = t
            .insert(
                "/lib/x86_64-linux-gnu/libc.so.6",
                Node::Data {
                    data: b"c".to_vec(),
                    perm: 0o755,
                },
            )
            .unwrap();
        assert_eq!(at, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(t.get("/usr/lib"), Some(&Node::Dir { perm: 0o755 }));
        // Same link twice is fine; a directory where the link is is not.
        t.insert(
            "/lib",
            Node::Symlink {
                target: "usr/lib".into(),
            },
        )
        .unwrap();
        assert!(t.insert("/lib", Node::Dir { perm: 0o755 }).is_err());
        // A file used as a directory.
        assert!(t
            .insert(
                "/usr/lib/x86_64-linux-gnu/libc.so.6/x",
                Node::Dir { perm: 0o755 }
            )
            .is_err());
        // Later file content replaces earlier (an --add override).
        t.insert(
            "/etc/hostname",
            Node::Data {
                data: b"a\n".to_vec(),
                perm: 0o644,
            },
        )
        .unwrap();
        t.insert(
            "/etc/hostname",
            Node::Data {
                data: b"b\n".to_vec(),
                perm: 0o644,
            },
        )
        .unwrap();
        assert_eq!(
            t.get("/etc/hostname"),
            Some(&Node::Data {
                data: b"b\n".to_vec(),
                perm: 0o644
            })
        );
    }

    /// The names and modes of a newc archive's entries.
    fn cpio_entries(a: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
        loop {
            let h = &a[at..at + 110];
            let mode = hex(&h[14..22]);
            let size = hex(&h[54..62]) as usize;
            let namesize = hex(&h[94..102]) as usize;
            let name = String::from_utf8(a[at + 110..at + 110 + namesize - 1].to_vec()).unwrap();
            let data_at = (at + 110 + namesize).next_multiple_of(4);
            if name == "TRAILER!!!" {
                return out;
            }
            out.push((name, mode, a[data_at..data_at + size].to_vec()));
            at = (data_at + size).next_multiple_of(4);
        }
    }

    #[test]
    fn pack_a_dynamic_program_from_a_fake_root() {
        use crate::elfinfo::tests::fake_elf;
        use crate::sysroot::tests::{put, TempDir};
        use object::elf;
        let t = TempDir::new("pack");
        let r = &t.0;
        let lib = fake_elf(elf::EM_AARCH64, elf::ET_DYN, None, &[], None);
        put(r, "/lib/ld-linux-aarch64.so.1", &lib);
        put(r, "/lib/aarch64-linux-gnu/libc.so.6", &lib);
        std::os::unix::fs::symlink("libc.so.6", r.join("lib/aarch64-linux-gnu/libc.so")).unwrap();
        let prog = fake_elf(
            elf::EM_AARCH64,
            elf::ET_DYN,
            Some("/lib/ld-linux-aarch64.so.1"),
            &["libc.so.6"],
            None,
        );
        let host = TempDir::new("pack-host");
        put(&host.0, "/hello", &prog);
        put(&host.0, "/data/sub/x.txt", b"x\n");
        let argv = vec![host.0.join("hello").display().to_string(), "a b".into()];
        let adds = vec![format!("{}:/srv/data", host.0.join("data").display())];
        let env = vec!["LANG=C".to_string(), "HOME=/home".to_string()];
        let packed = pack(&Request {
            arch: Arch::Aarch64,
            sysroot: r.clone(),
            argv: &argv,
            env: &env,
            adds: &adds,
            strace: false,
        })
        .unwrap();
        assert_eq!(packed.launch.path, "/app/hello");
        assert_eq!(packed.launch.argv0, argv[0]);
        assert_eq!(packed.launch.args, ["a b"]);
        // Defaults first, --env in order, a repeated name replaced.
        assert_eq!(packed.launch.env, [DEFAULT_ENV[0], "LANG=C", "HOME=/home"]);
        assert_eq!(packed.libraries, ["/lib/aarch64-linux-gnu/libc.so.6"]);
        let entries = cpio_entries(&packed.initrd);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        for want in [
            "app/hello",
            "lib/ld-linux-aarch64.so.1",
            "lib/aarch64-linux-gnu/libc.so.6",
            "etc/passwd",
            "etc/hostname",
            "etc/nsswitch.conf",
            "tmp",
            "srv/data/sub/x.txt",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        // The unneeded libc.so link is not packed; /tmp is sticky.
        assert!(!names.contains(&"lib/aarch64-linux-gnu/libc.so"));
        let tmp = entries.iter().find(|e| e.0 == "tmp").unwrap();
        assert_eq!(tmp.1, cpio::S_IFDIR | 0o1777);
        let hostname = entries.iter().find(|e| e.0 == "etc/hostname").unwrap();
        assert_eq!(hostname.2, b"skiff\n");
        // Every parent precedes its children.
        for (i, n) in names.iter().enumerate() {
            if let Some((parent, _)) = n.rsplit_once('/') {
                let p = names.iter().position(|m| *m == parent);
                assert!(p.is_some_and(|p| p < i), "{parent} not before {n}");
            }
        }
    }

    #[test]
    fn absolute_program_comes_from_the_root_first() {
        use crate::elfinfo::tests::fake_elf;
        use crate::sysroot::tests::{put, TempDir};
        use object::elf;
        let t = TempDir::new("from-root");
        let r = &t.0;
        let prog = fake_elf(elf::EM_AARCH64, elf::ET_EXEC, None, &[], None);
        put(r, "/usr/bin/python3.11", &prog);
        std::os::unix::fs::symlink("python3.11", r.join("usr/bin/python3")).unwrap();
        let argv = vec![
            "/usr/bin/python3".to_string(),
            "-c".into(),
            "print(42)".into(),
        ];
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let relative = PathBuf::from(format!(
            "{up}{}",
            r.display().to_string().trim_start_matches('/')
        ));
        assert!(relative.is_relative() && relative.is_dir());
        let packed = pack(&Request {
            arch: Arch::Aarch64,
            // A relative root (`--sysroot build/debian/...`).
            sysroot: relative,
            argv: &argv,
            env: &[],
            adds: &[],
            strace: false,
        })
        .unwrap();
        assert_eq!(packed.launch.path, "/usr/bin/python3");
        let entries = cpio_entries(&packed.initrd);
        let link = entries.iter().find(|e| e.0 == "usr/bin/python3").unwrap();
        assert_eq!(
            (link.1 & 0o170000, &link.2[..]),
            (cpio::S_IFLNK, &b"python3.11"[..])
        );
        assert!(entries
            .iter()
            .any(|e| e.0 == "usr/bin/python3.11" && e.2 == prog));
        // Not in the root: the host path (here missing) as typed.
        assert_eq!(
            resolve_program("/no/such/prog", r).unwrap(),
            PathBuf::from("/no/such/prog")
        );
        assert_eq!(
            resolve_program("/usr/bin/python3", Path::new("/")).unwrap(),
            PathBuf::from("/usr/bin/python3")
        );
    }

    #[test]
    fn pack_refuses_other_arch_and_missing_libraries() {
        use crate::elfinfo::tests::fake_elf;
        use crate::sysroot::tests::{put, TempDir};
        use object::elf;
        let t = TempDir::new("refuse");
        let x86 = fake_elf(elf::EM_X86_64, elf::ET_EXEC, None, &[], None);
        put(&t.0, "/x86", &x86);
        let argv = vec![t.0.join("x86").display().to_string()];
        let req = Request {
            arch: Arch::Aarch64,
            sysroot: t.0.clone(),
            argv: &argv,
            env: &[],
            adds: &[],
            strace: false,
        };
        let e = pack(&req).unwrap_err();
        assert!(matches!(e, AppError::NotRunnable { .. }), "{e}");
        assert!(e
            .to_string()
            .contains("built for x86_64, but the board is aarch64"));
        let dynamic = fake_elf(elf::EM_AARCH64, elf::ET_DYN, None, &["libnope.so.1"], None);
        put(&t.0, "/dyn", &dynamic);
        let argv = vec![t.0.join("dyn").display().to_string()];
        let e = pack(&Request { argv: &argv, ..req }).unwrap_err();
        assert!(
            e.to_string()
                .contains("library libnope.so.1 (needed by /app/dyn) not found"),
            "{e}"
        );
    }

    #[test]
    fn pack_lists_parents_first() {
        let mut t = Tree::new();
        t.insert(
            "/a/b/c",
            Node::Data {
                data: b"x".to_vec(),
                perm: 0o644,
            },
        )
        .unwrap();
        t.insert("/a-b", Node::Dir { perm: 0o755 }).unwrap();
        let out = t.pack().unwrap();
        let text = String::from_utf8_lossy(&out);
        let pos = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(pos("a\0") < pos("a/b\0"));
        assert!(pos("a/b\0") < pos("a/b/c\0"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!"));
    }
}
