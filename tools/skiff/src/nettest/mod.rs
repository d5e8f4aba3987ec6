//! `cargo skiff test`'s network phase: Skiff guests on the user network,
//! driven from the host through port forwards (`-p`) on 127.0.0.1 only.
//! - [`echo`]: DHCP and static configuration, a guest TCP/UDP echo server
//!   under 1 000 concurrent host connections (tests/linux/netecho.c).
//! - [`servers`]: unmodified Debian servers (redis, memcached, nginx) on
//!   both arches, from an initramfs and from a disk image.
//!
//! Each case prints `PASS|FAIL|SKIP net ARCH/NAME` like the other phases.

pub mod echo;
pub mod servers;

use crate::boards::Board;
use crate::cli::TestArgs;
use crate::matrix::Verdict;
use std::path::Path;

/// Runs the phase on the default board of each arch (or the `--board`s).
pub fn run(root: &Path, all: &[Board], args: &TestArgs) -> Vec<Verdict> {
    let boards = crate::linux_suite::phase_boards(all, args);
    let mut out = Vec::new();
    out.extend(echo::run(root, &boards, args));
    out.extend(servers::run(root, &boards, args));
    out
}
