//! The host tool's error type: every way `skiff` can fail before or around a
//! guest run, each variant saying what to do about it.

use std::io;
use std::path::PathBuf;

/// Everything that stops the host tool. The guest's own failures are not
/// errors here: they are exit statuses (see `docs/exit-status.md`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("board file {path}: {message}")]
    BadBoard { path: PathBuf, message: String },
    #[error("no board named `{0}` (see `cargo skiff boards` or boards/*.toml)")]
    UnknownBoard(String),
    #[error("no default board for arch `{0}`: exactly one boards/*.toml of that arch must say `default = true`")]
    NoDefaultBoard(String),
    #[error("unknown arch `{0}` (expected x86_64 or aarch64)")]
    UnknownArch(String),
    #[error("--board {board} is {board_arch} but --arch {arch} was given")]
    ArchMismatch {
        board: String,
        board_arch: String,
        arch: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("`{binary}` not found in PATH: install the Debian package `{package}` (apt-get install {package}; ci/setup.sh does it)")]
    QemuMissing { binary: String, package: String },
    #[error("Rust target `{target}` is not installed: run `rustup target add {target}` (or `rustup toolchain install` in the checkout, which installs everything rust-toolchain.toml lists)")]
    TargetMissing { target: String },
    #[error("`{0}` not found in PATH: install the Debian package `device-tree-compiler`")]
    DtcMissing(String),
    #[error("kernel build failed: `{command}` exited with {status}")]
    BuildFailed { command: String, status: String },
    #[error("kernel build produced no `skiff-kernel` executable (is the kernel's [[bin]] named skiff-kernel?)")]
    NoKernelArtifact,
    #[error("kernel ELF {path}: {message}")]
    BadElf { path: PathBuf, message: String },
    #[error(transparent)]
    Accel(#[from] crate::accel::AccelError),
    #[error(
        "app argument {0:?} contains a double quote, which the kernel command line cannot carry"
    )]
    UnquotableArg(String),
    #[error("Xen board not ready: {0}")]
    XenUnavailable(String),
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
}

impl Error {
    /// Attach the path to an I/O error.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
