//! `skiff run --net` and `-p`: the QEMU arguments for the guest's NIC
//! (user networking with DHCP and port forwards, a tap, or none), edited
//! into the board's arguments; and the open-file limit QEMU inherits
//! (every forwarded connection is a host socket in QEMU).

use crate::boards::Board;
use crate::cli::{Forward, NetArg, Proto};
use crate::error::{Error, Result};

/// The value of `key=` in a QEMU `a,b=c,...` option string.
fn opt<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// `hostfwd=` options for `forwards` (host side on 127.0.0.1 only).
fn hostfwds(forwards: &[Forward]) -> String {
    forwards
        .iter()
        .map(|f| {
            let proto = match f.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            format!(",hostfwd={proto}:127.0.0.1:{}-:{}", f.host, f.guest)
        })
        .collect()
}

/// Rewrites the board's `-netdev`/NIC arguments in `argv` for `net` and
/// `forwards`.
pub fn apply(
    board: &Board,
    net: &NetArg,
    forwards: &[Forward],
    argv: &mut Vec<String>,
) -> Result<()> {
    if *net == NetArg::Board && forwards.is_empty() {
        return Ok(());
    }
    let at = argv
        .windows(2)
        .position(|w| w[0] == "-netdev")
        .ok_or_else(|| {
            Error::Usage(format!(
                "board {} has no NIC (-netdev) for --net/-p to configure",
                board.name
            ))
        })?;
    let old = argv[at + 1].clone();
    let id = opt(&old, "id")
        .ok_or_else(|| Error::Usage(format!("board {}: -netdev {old} has no id=", board.name)))?
        .to_string();
    let is_user = old.starts_with("user,") || old == "user";
    let value = match net {
        NetArg::Board => {
            if !is_user {
                return Err(Error::Usage(format!(
                    "-p needs user networking; board {} has -netdev {old}",
                    board.name
                )));
            }
            format!("{old}{}", hostfwds(forwards))
        }
        NetArg::User { restrict } => format!(
            "user,id={id},restrict={}{}",
            if *restrict { "on" } else { "off" },
            hostfwds(forwards)
        ),
        NetArg::Tap(ifname) => format!("tap,id={id},ifname={ifname},script=no,downscript=no"),
        NetArg::None => {
            // The netdev and the NIC on it go.
            argv.drain(at..at + 2);
            let nic = argv
                .windows(2)
                .position(|w| w[0] == "-device" && opt(&w[1], "netdev") == Some(id.as_str()));
            if let Some(d) = nic {
                argv.drain(d..d + 2);
            }
            return Ok(());
        }
    };
    argv[at + 1] = value;
    Ok(())
}

/// Raises this process's soft open-file limit to the hard limit, so the
/// QEMU it spawns (which inherits it) can hold a socket per forwarded
/// connection. Returns the new soft limit; None if it cannot be done here.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = [0u64; 2];
    prlimit_nofile(None, &mut lim)?;
    if lim[0] < lim[1] {
        let want = [lim[1], lim[1]];
        prlimit_nofile(Some(&want), &mut lim)?;
        prlimit_nofile(None, &mut lim)?;
    }
    Some(lim[0])
}

/// `prlimit64(0, RLIMIT_NOFILE, new, old)` (this process); the std library
/// has no wrapper and the tool has no libc dependency.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn prlimit_nofile(new: Option<&[u64; 2]>, old: &mut [u64; 2]) -> Option<()> {
    const RLIMIT_NOFILE: usize = 7;
    let new_ptr = new.map_or(core::ptr::null(), |n| n.as_ptr());
    let old_ptr = old.as_mut_ptr();
    let ret: isize;
    // SAFETY: prlimit64 reads `new` (two u64s: rlim_cur, rlim_max, or
    // null) and writes `old` (two u64s); both outlive the call, and the
    // system call touches no other memory.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") 302isize => ret,
            in("rdi") 0usize,
            in("rsi") RLIMIT_NOFILE,
            in("rdx") new_ptr,
            in("r10") old_ptr,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    // SAFETY: as above (aarch64 numbering).
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") 261usize,
            inlateout("x0") 0isize => ret,
            in("x1") RLIMIT_NOFILE,
            in("x2") new_ptr,
            in("x3") old_ptr,
            options(nostack)
        );
    }
    (ret == 0).then_some(())
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn prlimit_nofile(_new: Option<&[u64; 2]>, _old: &mut [u64; 2]) -> Option<()> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::load_dir;
    use std::path::Path;

    fn board(name: &str) -> Board {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        load_dir(&root.join("boards"))
            .unwrap()
            .into_iter()
            .find(|b| b.name == name)
            .unwrap()
    }

    fn fwd(proto: Proto, host: u16, guest: u16) -> Forward {
        Forward { proto, host, guest }
    }

    fn netdev(argv: &[String]) -> Option<&str> {
        argv.windows(2)
            .find(|w| w[0] == "-netdev")
            .map(|w| w[1].as_str())
    }

    #[test]
    fn board_default_is_untouched() {
        let b = board("qemu-x86_64");
        let mut argv = b.args.clone();
        apply(&b, &NetArg::Board, &[], &mut argv).unwrap();
        assert_eq!(argv, b.args);
    }

    #[test]
    fn user_networks_and_forwards() {
        let b = board("qemu-x86_64");
        let f = [fwd(Proto::Tcp, 8080, 80), fwd(Proto::Udp, 5353, 53)];
        let mut argv = b.args.clone();
        apply(&b, &NetArg::User { restrict: false }, &f, &mut argv).unwrap();
        assert_eq!(
            netdev(&argv),
            Some("user,id=n0,restrict=off,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53")
        );
        assert_eq!(argv.len(), b.args.len());
        let mut argv = b.args.clone();
        apply(&b, &NetArg::User { restrict: true }, &[], &mut argv).unwrap();
        assert_eq!(netdev(&argv), Some("user,id=n0,restrict=on"));
        // -p alone keeps the board's restricted network.
        let mut argv = b.args.clone();
        apply(&b, &NetArg::Board, &f[..1], &mut argv).unwrap();
        assert_eq!(
            netdev(&argv),
            Some("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80")
        );
    }

    #[test]
    fn tap_and_none() {
        let b = board("qemu-aarch64");
        let mut argv = b.args.clone();
        apply(&b, &NetArg::Tap("tap0".into()), &[], &mut argv).unwrap();
        assert_eq!(
            netdev(&argv),
            Some("tap,id=n0,ifname=tap0,script=no,downscript=no")
        );
        let mut argv = b.args.clone();
        apply(&b, &NetArg::None, &[], &mut argv).unwrap();
        assert_eq!(netdev(&argv), None);
        assert!(!argv.iter().any(|a| a.contains("netdev=")));
        assert_eq!(argv.len(), b.args.len() - 4);
        // The other devices stay.
        assert!(argv.iter().any(|a| a.contains("virtio-rng")));
    }

    #[test]
    fn board_without_a_nic_is_an_error() {
        let mut b = board("qemu-x86_64");
        b.args.retain(|a| !a.contains("n0") && a != "-netdev");
        let mut argv = b.args.clone();
        assert!(apply(&b, &NetArg::None, &[], &mut argv).is_err());
    }

    #[test]
    fn nofile_limit_reaches_the_hard_limit() {
        if raise_nofile_limit().is_none() {
            return;
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[3], fields[4], "soft == hard: {line}");
    }
}
