//! Finding a program's interpreter and shared libraries the way the guest's
//! dynamic loader will, in a root directory on the host: `/` for x86_64
//! programs on an x86_64 host, a cross or multiarch root (default
//! `/usr/aarch64-linux-gnu`) for aarch64.
//!
//! Paths are *guest* paths (`/lib/x86_64-linux-gnu/libc.so.6`); the root maps
//! them to host files, following symbolic links inside the root (an absolute
//! link target is relative to the root, as it will be in the guest).
//!
//! Search order per `DT_NEEDED` name, as glibc's `ld.so(8)` does it: a name
//! with a slash is a path; else `DT_RPATH` of the object and of the program
//! (only when the object has no `DT_RUNPATH`), `LD_LIBRARY_PATH`,
//! `DT_RUNPATH`, then the system directories (`/lib/<triple>`,
//! `/usr/lib/<triple>`, `/lib`, `/usr/lib`). The image carries no
//! `ld.so.cache`, so `ld.so.conf` directories are not searched: the guest's
//! loader would not find libraries there either. musl's loader searches
//! `/etc/ld-musl-<arch>.path` (copied into the image when the root has it)
//! or `/lib:/usr/local/lib:/usr/lib`, and is itself `libc.so`.
//! `$ORIGIN` in a search path is the directory holding the object.
//! A candidate of another arch is skipped, as the loader skips it.

use crate::boards::Arch;
use crate::elfinfo::{self, ElfError, ElfInfo};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Symbolic links followed while resolving one path (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Why resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("library {name} (needed by {needed_by}) not found in {root}; searched {}", searched.join(":"))]
    MissingLibrary {
        name: String,
        needed_by: String,
        root: String,
        searched: Vec<String>,
    },
    #[error("interpreter {path} (PT_INTERP of {needed_by}) not found in {root}{hint}")]
    MissingInterpreter {
        path: String,
        needed_by: String,
        root: String,
        hint: String,
    },
    #[error("{path}: {source}")]
    BadElf {
        path: String,
        #[source]
        source: ElfError,
    },
    #[error("{path}: {message}")]
    BadPath { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One step of walking a guest path inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `guest` is a directory.
    Dir { guest: String },
    /// `guest` is a symbolic link with this target (verbatim).
    Symlink { guest: String, target: String },
    /// `guest` is a regular file at `host`.
    File { guest: String, host: PathBuf },
}

/// Normalises an absolute guest path lexically (`.`, `..`, duplicate `/`).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The directory part of an absolute guest path (`/a/b` → `/a`).
pub fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// A root directory on the host that stands for the guest's `/`, with
/// `--add` overlays on top (a guest path and the host file or directory
/// that will be there; later overlays win).
#[derive(Debug, Clone)]
pub struct Root {
    pub dir: PathBuf,
    pub arch: Arch,
    pub overlays: Vec<(String, PathBuf)>,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>, arch: Arch) -> Root {
        Root {
            dir: dir.into(),
            arch,
            overlays: Vec::new(),
        }
    }

    /// The host path an overlay gives `guest`, if one covers it.
    pub fn overlay(&self, guest: &str) -> Option<PathBuf> {
        let guest = normalize(guest);
        self.overlays.iter().rev().find_map(|(g, h)| {
            let g = normalize(g);
            if guest == g {
                Some(h.clone())
            } else {
                let rest = guest.strip_prefix(&g)?;
                let rest = if g == "/" {
                    rest
                } else {
                    rest.strip_prefix('/')?
                };
                Some(h.join(rest))
            }
        })
    }

    /// The default root for `arch` on this host.
    pub fn default_dir(arch: Arch) -> PathBuf {
        if Arch::host() == Some(arch) {
            PathBuf::from("/")
        } else {
            PathBuf::from(format!("/usr/{}", triple(arch)))
        }
    }

    fn host(&self, guest: &str) -> PathBuf {
        self.dir.join(guest.trim_start_matches('/'))
    }

    /// Walks `guest` component by component, following symbolic links
    /// inside the root, and returns every directory, link and the final
    /// file met on the way (what the image needs to reproduce the path).
    pub fn walk(&self, guest: &str) -> Result<Vec<Step>, ResolveError> {
        let mut steps = Vec::new();
        let mut pending = normalize(guest);
        let mut links = 0;
        'restart: loop {
            let comps: Vec<&str> = pending.split('/').filter(|c| !c.is_empty()).collect();
            let mut prefix = String::new();
            for (i, c) in comps.iter().enumerate() {
                prefix.push('/');
                prefix.push_str(c);
                let host = self.host(&prefix);
                let meta = std::fs::symlink_metadata(&host).map_err(|source| ResolveError::Io {
                    path: host.clone(),
                    source,
                })?;
                let last = i + 1 == comps.len();
                if meta.file_type().is_symlink() {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ResolveError::BadPath {
                            path: guest.to_string(),
                            message: "too many levels of symbolic links".into(),
                        });
                    }
                    let target = std::fs::read_link(&host)
                        .map_err(|source| ResolveError::Io {
                            path: host.clone(),
                            source,
                        })?
                        .to_string_lossy()
                        .into_owned();
                    steps.push(Step::Symlink {
                        guest: prefix.clone(),
                        target: target.clone(),
                    });
                    let base = if target.starts_with('/') {
                        target
                    } else {
                        format!("{}/{target}", dirname(&prefix))
                    };
                    let rest = comps[i + 1..].join("/");
                    pending = normalize(&format!("{base}/{rest}"));
                    continue 'restart;
                } else if meta.is_dir() {
                    if !steps.contains(&Step::Dir {
                        guest: prefix.clone(),
                    }) {
                        steps.push(Step::Dir {
                            guest: prefix.clone(),
                        });
                    }
                    if last {
                        return Ok(steps);
                    }
                } else if last {
                    steps.push(Step::File {
                        guest: prefix,
                        host,
                    });
                    return Ok(steps);
                } else {
                    return Err(ResolveError::BadPath {
                        path: guest.to_string(),
                        message: format!("{prefix} is not a directory"),
                    });
                }
            }
            return Ok(steps);
        }
    }

    /// The host file a guest path ends at, if it is a regular file
    /// (overlays first).
    pub fn file(&self, guest: &str) -> Option<PathBuf> {
        if let Some(host) = self.overlay(guest) {
            return host.is_file().then_some(host);
        }
        match self.walk(guest).ok()?.pop()? {
            Step::File { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The loader's system directories for this arch.
    fn system_dirs(&self, musl: bool) -> Vec<String> {
        if musl {
            let path_file = format!("/etc/ld-musl-{}.path", self.arch.name());
            if let Some(host) = self.file(&path_file) {
                if let Ok(text) = std::fs::read_to_string(host) {
                    return text
                        .split(|c: char| c == ':' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                }
            }
            return ["/lib", "/usr/local/lib", "/usr/lib"]
                .map(String::from)
                .to_vec();
        }
        let t = triple(self.arch);
        vec![
            format!("/lib/{t}"),
            format!("/usr/lib/{t}"),
            "/lib".into(),
            "/usr/lib".into(),
        ]
    }
}

/// The Debian multiarch triple.
pub fn triple(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
    }
}

/// An object in the load set: its guest path and what it asks for.
#[derive(Debug, Clone)]
pub struct Object {
    pub guest: String,
    pub info: ElfInfo,
}

/// Everything the program needs in the image besides itself.
#[derive(Debug, Clone, Default)]
pub struct LoadSet {
    /// `PT_INTERP`, if dynamic.
    pub interp: Option<String>,
    /// Guest paths of the libraries, in breadth-first load order.
    pub libraries: Vec<String>,
    /// Extra guest files the loader reads (musl's `.path` file).
    pub extra: Vec<String>,
}

fn is_musl_loader(interp: &str) -> bool {
    interp
        .rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with("ld-musl-"))
}

fn expand_origin(dir: &str, origin: &str) -> String {
    dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
}

/// Resolves the interpreter and the transitive `DT_NEEDED` closure of
/// `program` (at guest path `program_guest`). `ld_library_path` is the
/// guest environment's `LD_LIBRARY_PATH`, if set.
pub fn resolve(
    root: &Root,
    program_guest: &str,
    program: &ElfInfo,
    ld_library_path: Option<&str>,
) -> Result<LoadSet, ResolveError> {
    let mut set = LoadSet::default();
    let root_name = root.dir.display().to_string();
    let musl = program.interp.as_deref().is_some_and(is_musl_loader);
    if let Some(interp) = &program.interp {
        let hint = if root.arch != Arch::host().unwrap_or(root.arch) || root.dir != Path::new("/") {
            format!(" (give the {} root with --sysroot)", root.arch)
        } else {
            String::new()
        };
        let host = root
            .file(interp)
            .ok_or_else(|| ResolveError::MissingInterpreter {
                path: interp.clone(),
                needed_by: program_guest.to_string(),
                root: root_name.clone(),
                hint,
            })?;
        check_arch(&host, interp, root.arch)?;
        set.interp = Some(interp.clone());
        if musl {
            let path_file = format!("/etc/ld-musl-{}.path", root.arch.name());
            if root.file(&path_file).is_some() {
                set.extra.push(path_file);
            }
        }
    }
    if program.needed.is_empty() {
        return Ok(set);
    }
    let llp: Vec<String> = ld_library_path
        .map(|s| {
            s.split(':')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let system = root.system_dirs(musl);
    let mut queue = vec![Object {
        guest: program_guest.to_string(),
        info: program.clone(),
    }];
    let mut seen_names: BTreeSet<String> = BTreeSet::new();
    let mut seen_paths: BTreeSet<String> = BTreeSet::new();
    let mut next = 0;
    while next < queue.len() {
        let obj = queue[next].clone();
        next += 1;
        for name in &obj.info.needed {
            if !seen_names.insert(name.clone()) {
                continue;
            }
            if musl && (name == "libc.so" || name.starts_with("libc.musl-")) {
                continue; // musl's loader is its libc
            }
            let origin = dirname(&obj.guest);
            let (found, searched) = if name.contains('/') {
                let p = normalize(&expand_origin(name, origin));
                (candidate(root, &p), vec![p])
            } else {
                let mut dirs: Vec<String> = Vec::new();
                if obj.info.runpath.is_empty() {
                    dirs.extend(obj.info.rpath.iter().cloned());
                    dirs.extend(program.rpath.iter().cloned());
                }
                dirs.extend(llp.iter().cloned());
                dirs.extend(obj.info.runpath.iter().cloned());
                dirs.extend(system.iter().cloned());
                let dirs: Vec<String> = dirs
                    .iter()
                    .map(|d| normalize(&expand_origin(d, origin)))
                    .collect();
                let found = dirs
                    .iter()
                    .find_map(|d| candidate(root, &format!("{d}/{name}")));
                (found, dirs)
            };
            let Some((guest, info)) = found else {
                return Err(ResolveError::MissingLibrary {
                    name: name.clone(),
                    needed_by: obj.guest.clone(),
                    root: root_name,
                    searched,
                });
            };
            if seen_paths.insert(guest.clone()) {
                set.libraries.push(guest.clone());
                queue.push(Object { guest, info });
            }
        }
    }
    Ok(set)
}

/// A library candidate: present, a regular file, an ELF of the root's arch.
fn candidate(root: &Root, guest: &str) -> Option<(String, ElfInfo)> {
    let host = root.file(guest)?;
    let data = std::fs::read(&host).ok()?;
    let info = elfinfo::inspect(&data, root.arch).ok()?;
    Some((guest.to_string(), info))
}

fn check_arch(host: &Path, guest: &str, arch: Arch) -> Result<(), ResolveError> {
    let data = std::fs::read(host).map_err(|source| ResolveError::Io {
        path: host.to_path_buf(),
        source,
    })?;
    elfinfo::inspect(&data, arch)
        .map(|_| ())
        .map_err(|source| ResolveError::BadElf {
            path: guest.to_string(),
            source,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::elfinfo::tests::fake_elf;
    use object::elf;
    use std::os::unix::fs::symlink;

    /// A temporary directory removed on drop.
    pub struct TempDir(pub PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "skiff-test-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn put(root: &Path, guest: &str, data: &[u8]) {
        let p = root.join(guest.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn lib(needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
        fake_elf(elf::EM_AARCH64, elf::ET_DYN, None, needed, runpath)
    }

    /// A Debian-like arm64 root: merged /usr, /lib -> usr/lib, the loader
    /// in the multiarch dir with an absolute /lib link to it.
    fn debian_root(t: &TempDir) -> Root {
        let r = &t.0;
        put(
            r,
            "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
            &lib(&[], None),
        );
        put(r, "/usr/lib/aarch64-linux-gnu/libc.so.6", &lib(&[], None));
        put(
            r,
            "/usr/lib/aarch64-linux-gnu/libm.so.6",
            &lib(&["libc.so.6"], None),
        );
        // An x86_64 library of the same name earlier in the search order
        // must be skipped, as ld.so skips it.
        put(
            r,
            "/usr/lib/aarch64-linux-gnu/libz.so.1",
            &fake_elf(elf::EM_X86_64, elf::ET_DYN, None, &[], None),
        );
        put(r, "/usr/lib/libz.so.1", &lib(&[], None));
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink(
            "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
            r.join("usr/lib/ld-linux-aarch64.so.1"),
        )
        .unwrap();
        Root::new(r.clone(), Arch::Aarch64)
    }

    fn program(needed: &[&str], runpath: Option<&str>) -> ElfInfo {
        let f = fake_elf(
            elf::EM_AARCH64,
            elf::ET_DYN,
            Some("/lib/ld-linux-aarch64.so.1"),
            needed,
            runpath,
        );
        elfinfo::inspect(&f, Arch::Aarch64).unwrap()
    }

    #[test]
    fn walk_reproduces_links() {
        let t = TempDir::new("walk");
        let root = debian_root(&t);
        let steps = root.walk("/lib/ld-linux-aarch64.so.1").unwrap();
        assert_eq!(
            steps[0],
            Step::Symlink {
                guest: "/lib".into(),
                target: "usr/lib".into()
            }
        );
        assert!(steps.contains(&Step::Symlink {
            guest: "/usr/lib/ld-linux-aarch64.so.1".into(),
            target: "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1".into()
        }));
        assert!(matches!(
            steps.last().unwrap(),
            Step::File { guest, .. } if guest == "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"
        ));
    }

    #[test]
    fn transitive_closure_in_load_order_skipping_other_arch() {
        let t = TempDir::new("closure");
        let root = debian_root(&t);
        let set = resolve(
            &root,
            "/app/p",
            &program(&["libm.so.6", "libz.so.1"], None),
            None,
        )
        .unwrap();
        assert_eq!(set.interp.as_deref(), Some("/lib/ld-linux-aarch64.so.1"));
        assert_eq!(
            set.libraries,
            [
                "/lib/aarch64-linux-gnu/libm.so.6",
                "/lib/libz.so.1",
                "/lib/aarch64-linux-gnu/libc.so.6"
            ]
        );
    }

    #[test]
    fn runpath_origin_and_ld_library_path_come_first() {
        let t = TempDir::new("runpath");
        let root = debian_root(&t);
        put(&t.0, "/app/lib/libm.so.6", &lib(&[], None));
        put(&t.0, "/opt/llp/libz.so.1", &lib(&[], None));
        let set = resolve(
            &root,
            "/app/p",
            &program(&["libm.so.6", "libz.so.1"], Some("$ORIGIN/lib")),
            Some("/opt/llp"),
        )
        .unwrap();
        assert_eq!(set.libraries, ["/app/lib/libm.so.6", "/opt/llp/libz.so.1"]);
    }

    #[test]
    fn added_files_are_found_before_the_root() {
        let t = TempDir::new("overlay");
        let mut root = debian_root(&t);
        let extra = TempDir::new("overlay-extra");
        put(&extra.0, "/libq.so.1", &lib(&["libc.so.6"], None));
        root.overlays.push(("/opt/q".into(), extra.0.clone()));
        let set = resolve(
            &root,
            "/app/p",
            &program(&["libq.so.1"], None),
            Some("/opt/q"),
        )
        .unwrap();
        assert_eq!(
            set.libraries,
            ["/opt/q/libq.so.1", "/lib/aarch64-linux-gnu/libc.so.6"]
        );
        assert_eq!(
            root.overlay("/opt/q/libq.so.1"),
            Some(extra.0.join("libq.so.1"))
        );
        assert_eq!(root.overlay("/opt/qq"), None);
    }

    #[test]
    fn missing_library_names_it_and_who_needs_it() {
        let t = TempDir::new("missing");
        let root = debian_root(&t);
        put(&t.0, "/usr/lib/libfoo.so.1", &lib(&["libbar.so.2"], None));
        let e = resolve(&root, "/app/p", &program(&["libfoo.so.1"], None), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, ResolveError::MissingLibrary { name, needed_by, .. }
                if name == "libbar.so.2" && needed_by == "/lib/libfoo.so.1"),
            "{msg}"
        );
        assert!(msg.contains("/usr/lib/aarch64-linux-gnu"), "{msg}");
    }

    #[test]
    fn missing_interpreter_is_reported() {
        let t = TempDir::new("nointerp");
        let root = Root::new(t.0.clone(), Arch::Aarch64);
        let e = resolve(&root, "/app/p", &program(&[], None), None).unwrap_err();
        assert!(matches!(e, ResolveError::MissingInterpreter { .. }), "{e}");
        assert!(e.to_string().contains("--sysroot"));
    }

    #[test]
    fn musl_loader_is_libc() {
        let t = TempDir::new("musl");
        let r = &t.0;
        put(r, "/usr/lib/musl/libc.so", &lib(&[], None));
        symlink("/usr/lib/musl/libc.so", {
            std::fs::create_dir_all(r.join("lib")).unwrap();
            r.join("lib/ld-musl-aarch64.so.1")
        })
        .unwrap();
        put(r, "/etc/ld-musl-aarch64.path", b"/usr/lib/musl\n/opt/m\n");
        put(r, "/opt/m/libq.so", &lib(&["libc.so"], None));
        let root = Root::new(r.clone(), Arch::Aarch64);
        let f = fake_elf(
            elf::EM_AARCH64,
            elf::ET_DYN,
            Some("/lib/ld-musl-aarch64.so.1"),
            &["libc.so", "libq.so"],
            None,
        );
        let info = elfinfo::inspect(&f, Arch::Aarch64).unwrap();
        let set = resolve(&root, "/app/p", &info, None).unwrap();
        assert_eq!(set.libraries, ["/opt/m/libq.so"]);
        assert_eq!(set.extra, ["/etc/ld-musl-aarch64.path"]);
    }

    #[test]
    fn link_loops_are_errors() {
        let t = TempDir::new("loop");
        symlink("b", t.0.join("a")).unwrap();
        symlink("a", t.0.join("b")).unwrap();
        let root = Root::new(t.0.clone(), Arch::X86_64);
        assert!(matches!(
            root.walk("/a/x"),
            Err(ResolveError::BadPath { .. })
        ));
    }

    #[test]
    fn path_helpers() {
        assert_eq!(normalize("/a//b/./c/../d"), "/a/b/d");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(dirname("/app/p"), "/app");
        assert_eq!(dirname("/p"), "/");
    }
}
