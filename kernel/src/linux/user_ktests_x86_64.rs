//! In-kernel tests of the x86_64 user-mode edge (arch::user): SKELETON.
