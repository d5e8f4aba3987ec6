//! `skiff run --disk`: the program's files in an image file system
//! (kernel/imagefs) on a virtio disk instead of an initramfs.

use crate::app::Packed;
use crate::boards::Board;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Writes the image for `packed` (whose initramfs is at `initrd`), adds
/// the disk to `argv` and returns the image's path (removed after the run).
pub fn attach(
    _root: &Path,
    _board: &Board,
    _packed: &Packed,
    _initrd: &Path,
    _argv: &mut Vec<String>,
) -> Result<PathBuf> {
    Err(Error::Usage("--disk is not implemented yet".into()))
}
