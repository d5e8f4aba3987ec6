//! `skiff run --net` and `-p`: the QEMU arguments for the guest's NIC
//! (user networking with DHCP and port forwards, a tap, or none), edited
//! into the board's arguments.

use crate::boards::Board;
use crate::cli::{Forward, NetArg};
use crate::error::{Error, Result};

/// Rewrites the board's `-netdev`/NIC arguments in `argv` for `net` and
/// `forwards`.
pub fn apply(
    _board: &Board,
    net: &NetArg,
    forwards: &[Forward],
    _argv: &mut Vec<String>,
) -> Result<()> {
    if *net == NetArg::Board && forwards.is_empty() {
        return Ok(());
    }
    Err(Error::Usage("--net and -p are not implemented yet".into()))
}
