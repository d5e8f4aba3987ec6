//! Socket system calls (`socket`, `bind`, `connect`, `sendmsg`, ...): the
//! Linux ABI side of AF_UNIX (here) and AF_INET/AF_INET6 (on the kernel's
//! network stack, `crate::net`). Being written (issue 5); the table below
//! lists what is implemented so far, everything else answers ENOSYS.

use super::Ctx;

crate::syscall_table! {
    pub static ENTRIES: [dyn Ctx] = {
    }
}
