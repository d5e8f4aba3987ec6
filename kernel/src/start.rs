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
    let ktest = opts.ktest;
    let filter = opts.ktest_filter.map(alloc::string::String::from);
    let program = opts.app_args().next().map(alloc::string::String::from);
    let bench = opts.bench.map(alloc::string::String::from);
    crate::sched::run_main(alloc::boxed::Box::new(move || {
        if let Some(suite) = bench {
            exit(if crate::bench::run(&suite) { 0 } else { 1 });
        }
        main_thread(ktest, filter.as_deref(), program.as_deref())
    }))
}

/// The rest of boot, after the scheduler is up: the ktests or the app.
fn main_thread(ktest: bool, filter: Option<&str>, program: Option<&str>) -> ! {
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
    match program {
        None => {
            println!("skiff: no application given (nothing after --); powering off");
            exit(0)
        }
        Some(program) => {
            // Fail loudly: running Linux programs is the next milestone.
            println!(
                "skiff: cannot run {program}: this kernel has no program loader yet (exit status {})",
                crate::EXIT_NO_LOADER
            );
            exit(crate::EXIT_NO_LOADER)
        }
    }
}

/// Prints the status line the host runner reads, then powers off.
pub fn exit(code: u8) -> ! {
    println!("{}{}", skiff_arch_api::exit::STATUS_LINE_PREFIX, code);
    arch::power::exit(code)
}
