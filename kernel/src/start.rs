//! The boot sequence on the boot CPU, from the arch's entry to the app (or
//! the ktest run) and power-off. Each phase is timestamped (`boottime=1`).

use crate::{arch, cmdline, console, mm, println};
use skiff_arch_api::BootArgs;
use skiff_platform::bootinfo;

/// The boot information, kept for everything that reads it later.
pub static BOOT_INFO: spin::Once<skiff_platform::BootInfo> = spin::Once::new();

/// The kernel's entry, named to the arch with `arch::entry!`.
pub fn kernel_main(args: BootArgs) -> ! {
    let boot = match bootinfo::from_boot_args(&args, &skiff_platform::probe::PhysMem) {
        Ok(b) => b,
        Err(e) => {
            arch::early_print("skiff: cannot read boot information: ");
            arch::early_print(e.message());
            arch::early_print("\n");
            arch::power::exit(crate::EXIT_KERNEL_FAILURE);
        }
    };
    console::init(&boot);
    let boot = BOOT_INFO.call_once(|| boot);
    let cmdline = boot.cmdline.as_str();
    let opts = match cmdline::Options::parse(cmdline) {
        Ok(o) => o,
        Err(e) => {
            println!("skiff: bad command line: {e}");
            exit(crate::EXIT_KERNEL_FAILURE);
        }
    };
    if let Some(first) = opts.unknown {
        println!(
            "cmdline: ignored unknown options count={} first={first}",
            opts.unknown_count
        );
    }
    if let Some(level) = opts.loglevel {
        console::set_log_level(level);
    }
    crate::boottime::set_enabled(opts.boottime);
    crate::boottime::mark("entry", args.entry_counter);
    println!(
        "skiff: booting protocol={} cmdline=\"{}\"",
        boot.protocol.name(),
        boot.cmdline.as_str()
    );
    if opts.debug_exit {
        arch::power::enable_debug_exit();
    }

    mm::init(boot);
    crate::boottime::mark("memory", arch::cpu::counter());
    arch::trap::set_handler(&crate::trap::KERNEL_TRAPS);

    let platform = skiff_platform::probe::init(boot);
    crate::time::init(platform.counter_hz);
    if let Some(w) = platform.wall_clock_at_boot {
        crate::time::set_wall_clock(w.unix_seconds.saturating_mul(1_000_000_000), w.counter);
    }
    crate::boottime::mark("platform", arch::cpu::counter());
    println!("{}", platform.summary());
    crate::boottime::report(platform.counter_hz);
    let platform = crate::PLATFORM.call_once(|| platform);

    // The boot CPU's context becomes its idle thread; the rest of boot
    // runs in the pinned "main" thread.
    let here = arch::smp::this_cpu_hw_id();
    let mut hw_ids = alloc::vec![here];
    hw_ids.extend(
        platform
            .firmware_info
            .cpus
            .iter()
            .map(|c| c.hw_id)
            .filter(|&id| id != here),
    );
    crate::sched::init(&hw_ids);
    let started = crate::sched::start_secondary_cpus();
    println!(
        "sched: cpus_online={} of={}",
        started + 1,
        crate::sched::cpu_count()
    );
    crate::random::seed_at_boot();
    let ktest = opts.ktest;
    let filter = opts.ktest_filter.map(alloc::string::String::from);
    let app = AppSpec {
        argv0: opts.argv0.map(alloc::string::String::from),
        argv: opts.app_args().map(alloc::string::String::from).collect(),
        envp: opts.app_env().map(alloc::string::String::from).collect(),
        strace: opts.strace,
        root: opts.root.map(alloc::string::String::from),
    };
    let bench = opts.bench.map(alloc::string::String::from);
    // The virtio-mmio transports named on the command line (QEMU's microvm
    // appends them after the app's arguments; `cmdline` takes them back).
    let virtio_mmio: alloc::string::String = opts
        .virtio_mmio
        .iter()
        .map(|v| alloc::format!("virtio_mmio.device={v} "))
        .collect();
    crate::sched::run_main(alloc::boxed::Box::new(move || {
        // Buses and drivers (virtio-rng reseeds the pool here).
        crate::devices::init(platform, &virtio_mmio);
        crate::boottime::mark("devices", arch::cpu::counter());
        if let Some(suite) = bench {
            exit(if crate::bench::run(&suite) { 0 } else { 1 });
        }
        main_thread(ktest, filter.as_deref(), app)
    }))
}

/// The app to run, from the command line.
struct AppSpec {
    /// `argv[0]` as typed, when it differs from the path run (the first
    /// word after ` -- `).
    argv0: Option<alloc::string::String>,
    /// The path to run, then the arguments.
    argv: alloc::vec::Vec<alloc::string::String>,
    envp: alloc::vec::Vec<alloc::string::String>,
    strace: bool,
    /// `root=`: the disk whose image is `/` (else the initramfs).
    root: Option<alloc::string::String>,
}

/// The rest of boot, after the scheduler is up: the ktests or the app.
fn main_thread(ktest: bool, filter: Option<&str>, app: AppSpec) -> ! {
    if ktest {
        let summary = skiff_ktest::run(filter, |name, result| match result {
            Ok(()) => println!("ktest: {name} ... ok"),
            Err(f) if f.is_skip() => println!("ktest: {name} ... skipped: {}", f.what),
            Err(f) => println!("ktest: {name} ... FAILED: {f}"),
        });
        println!("{summary}");
        exit(if summary.failed == 0 && summary.passed > 0 {
            0
        } else {
            1
        });
    }
    if app.argv.is_empty() {
        println!("skiff: no application given (nothing after --); powering off");
        exit(0)
    }
    run_app(app)
}

/// Mounts the file systems (the initramfs as root), starts the app and
/// waits; the app's `exit_group` powers off with its status.
fn run_app(app: AppSpec) -> ! {
    use crate::linux::app as linux_app;
    let boot = BOOT_INFO
        .get()
        .expect("boot info is set before threads run");
    let initrd = boot.initrd.clone().and_then(|r| {
        let bytes = arch::mm::phys_slice(r.start, (r.end - r.start) as usize);
        if bytes.is_none() {
            println!(
                "skiff: initrd at {:#x}..{:#x} is not mapped; ignoring it",
                r.start, r.end
            );
        }
        bytes
    });
    crate::fs::set_clock(crate::time::realtime_ns);
    let console: alloc::sync::Arc<dyn crate::fs::devfs::Console> =
        alloc::sync::Arc::new(linux_app::ConsoleDevice);
    let mounted = match app.root.as_deref() {
        Some(spec) => {
            crate::block::virtio::mount_root_image(spec, Some(console), linux_app::proc_sources())
                .map_err(|e| alloc::format!("{e}"))
        }
        None => crate::fs::mount_root(initrd, Some(console), linux_app::proc_sources())
            .map_err(|e| alloc::format!("{e}")),
    };
    let vfs = match mounted {
        Ok(v) => v,
        Err(e) => {
            println!("skiff: cannot mount the root file system: {e}");
            exit(crate::EXIT_KERNEL_FAILURE)
        }
    };
    // The NIC up (DHCP lease waited for, bounded) and /run/resolv.conf
    // written before the app runs.
    if let Err(e) = crate::net::boot::bring_up_for_app(&vfs) {
        println!("skiff: {e}");
        exit(crate::EXIT_KERNEL_FAILURE)
    }
    match linux_app::start(vfs, app.argv, app.argv0, app.envp, app.strace) {
        Ok(thread) => {
            crate::sched::join(&thread);
            // The app thread ends only through exit_group or a crash, both
            // of which power off; reaching here means it was killed.
            println!("skiff: the app thread ended without an exit status");
            exit(crate::EXIT_KERNEL_FAILURE)
        }
        Err(e) => {
            println!("{e}");
            exit(e.exit_status())
        }
    }
}

/// Prints the status line the host runner reads, then powers off.
pub fn exit(code: u8) -> ! {
    println!("{}{}", skiff_arch_api::exit::STATUS_LINE_PREFIX, code);
    arch::power::exit(code)
}
