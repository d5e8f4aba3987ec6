//! Bringing the NIC up at boot: take the first NIC from the device layer,
//! configure `eth0` from the command line (DHCPv4 by default, static
//! `ip=`/`gw=`/`dns=`, `ip=off`), hook its interrupt to the network thread,
//! wait (bounded) for the DHCP lease before the app starts, and keep
//! `/run/resolv.conf` in step with the configuration. Also the
//! `net_expected` ktest (a board's `net.expect=`).

use super::config::NetConfig;
use super::nic::{self, IrqCount, NicIface};
use super::stack;
use crate::fs::{NewNode, Vfs, WaitQueue};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

/// How long boot waits for a DHCP lease before starting the app anyway.
const DHCP_WAIT_NS: u64 = 3_000_000_000;

impl IrqCount for crate::devices::irqs::DeviceIrq {
    fn count(&self) -> u64 {
        crate::devices::irqs::DeviceIrq::count(self)
    }
}

/// Woken at each configuration change.
static CHANGED: WaitQueue = WaitQueue::new();

/// Called by `nic` when eth0's configuration changed.
pub fn config_changed() {
    CHANGED.wake_all();
    // The network thread rewrites resolv.conf (outside the stack lock).
    stack::kick();
}

fn cmdline() -> &'static str {
    crate::start::BOOT_INFO
        .get()
        .map(|b| b.cmdline.as_str())
        .unwrap_or("")
}

/// Brings eth0 up (once; later calls return the first outcome): Ok(true)
/// with a NIC, Ok(false) without one, Err for a malformed network option.
pub fn bring_up() -> Result<bool, String> {
    static DONE: spin::Once<Result<bool, String>> = spin::Once::new();
    DONE.call_once(|| up(cmdline())).clone()
}

fn up(cmdline: &str) -> Result<bool, String> {
    let cfg = NetConfig::parse(cmdline).map_err(|e| format!("bad network option: {e}"))?;
    let Some(taken) = crate::devices::take_net() else {
        log::info!("net: no NIC; loopback only");
        return Ok(false);
    };
    let irq: Option<&'static dyn IrqCount> = match taken.irq {
        Some(i) => {
            // Interrupt context: only a flag and a wakeup.
            i.set_wake(stack::kick);
            Some(i)
        }
        None => None,
    };
    log::info!(
        "net: iface=eth0 at={} mtu={} link={} irq={}",
        taken.at,
        taken.dev.mtu(),
        if taken.dev.link_up() { "up" } else { "down" },
        if irq.is_some() { "wired" } else { "none" }
    );
    let iface = NicIface::new(taken.dev, &cfg, irq);
    if !cfg.wants_dhcp() {
        log::info!("{}", iface.info());
    }
    stack::with(|s| s.add_interface(Box::new(iface)));
    stack::start_thread();
    stack::kick();
    if cfg.wants_dhcp() {
        let deadline = crate::time::now_ns() + DHCP_WAIT_NS;
        CHANGED.wait_until_deadline(deadline, nic::configured);
        if !nic::configured() {
            log::warn!(
                "net: eth0 no DHCP lease after {} ms; starting without IPv4 (the lease may still come)",
                DHCP_WAIT_NS / 1_000_000
            );
        }
    }
    Ok(true)
}

/// The VFS `/run/resolv.conf` is kept in.
static VFS: spin::Once<Arc<Vfs>> = spin::Once::new();
/// The configuration generation last written to resolv.conf.
static WRITTEN: AtomicU64 = AtomicU64::new(u64::MAX);

/// Boot's step before the app: eth0 up, `/run/resolv.conf` written.
pub fn bring_up_for_app(vfs: &Arc<Vfs>) -> Result<(), String> {
    if bring_up()? {
        VFS.call_once(|| vfs.clone());
        update_resolv_conf();
    }
    Ok(())
}

/// Rewrites `/run/resolv.conf` if the configuration changed since the
/// last write (the network thread calls it after each poll).
pub fn update_resolv_conf() {
    let Some(vfs) = VFS.get() else { return };
    let generation = nic::generation();
    if WRITTEN.swap(generation, Ordering::AcqRel) == generation {
        return;
    }
    let Some(info) = nic::info() else { return };
    if let Err(e) = write_resolv_conf(vfs, &info.resolv_conf()) {
        log::warn!("net: cannot write /run/resolv.conf error={e:?}");
    }
}

fn write_resolv_conf(vfs: &Vfs, text: &str) -> crate::errno::KResult<()> {
    let root = vfs.root();
    let run = match vfs.resolve(&root, "/run", true) {
        Ok(d) => d,
        Err(_) => root.create("run", NewNode::Directory, 0o755)?,
    };
    let f = match vfs.lookup_in(&run, "resolv.conf") {
        Ok(f) => f,
        Err(_) => run.create("resolv.conf", NewNode::File, 0o644)?,
    };
    f.truncate(0)?;
    f.write_at(0, text.as_bytes())?;
    Ok(())
}

mod ktests {
    use skiff_ktest::{check, check_some, ktest, skip};

    ktest! {
        /// The board's `net.expect=` list (`addr:A/LEN`, `router:A`,
        /// `dns:A`, `source:dhcp|static`, `lease:SECS`) against eth0's
        /// configuration after bring-up (DHCP from QEMU's user network on
        /// the QEMU boards; under `restrict=on` its server names no router
        /// and no DNS server, so the boards expect neither).
        fn net_expected() {
            let Some(list) = super::cmdline()
                .split_ascii_whitespace()
                .take_while(|w| *w != "--")
                .find_map(|w| w.strip_prefix("net.expect="))
            else {
                skip!("the board sets no net.expect=");
            };
            check!(super::bring_up() == Ok(true));
            let info = check_some!(super::nic::info());
            let line = alloc::format!("{info}");
            for want in list.split(',') {
                let (k, v) = check_some!(want.split_once(':'));
                let ok = match k {
                    "addr" => info.addr.is_some_and(|a| alloc::format!("{a}") == v),
                    "router" => info.router.is_some_and(|a| alloc::format!("{a}") == v),
                    "dns" => info.dns.iter().any(|a| alloc::format!("{a}") == v),
                    "source" => line.contains(&alloc::format!(" source={v}")),
                    "lease" => info.lease_secs.is_some_and(|l| alloc::format!("{l}") == v),
                    _ => false,
                };
                if !ok {
                    crate::println!("net: expected {want}; have {line}");
                }
                check!(ok);
            }
            Ok(())
        }
    }
}
