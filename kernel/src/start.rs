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
    crate::PLATFORM.call_once(|| platform);
    arch::cpu::enable_interrupts();

    if opts.ktest {
        let summary = skiff_ktest::run(opts.ktest_filter, |name, result| match result {
            Ok(()) => println!("ktest: {name} ... ok"),
            Err(f) => println!("ktest: {name} ... FAILED: {f}"),
        });
        println!("{summary}");
        exit(if summary.failed == 0 && summary.passed > 0 {
            0
        } else {
            1
        });
    }
    match opts.app_args().next() {
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
