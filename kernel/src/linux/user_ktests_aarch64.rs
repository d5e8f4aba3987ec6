//! In-kernel tests of the aarch64 user-mode edge (arch::user): SKELETON.
