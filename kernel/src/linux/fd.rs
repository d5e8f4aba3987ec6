//! File descriptors: the per-process descriptor table and the file-system
//! state (root, cwd, umask) that `open`, `chdir` and friends use.
//!
//! SKELETON: the file-syscall work defines these.

/// The descriptor table: internally synchronised, shared by threads.
pub struct FdTable {}

/// Root, current directory and umask: internally synchronised.
pub struct FsState {}
