//! The kernel panic handler: other CPUs halted (`arch::smp::stop_others`),
//! message, backtrace (addresses here; the host runner prints the function
//! names, see docs/debugging.md), exit status 255.

use crate::{arch, console::print_unlocked};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    arch::cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        arch::early_print("skiff: panic while panicking\n");
        arch::power::exit(crate::EXIT_KERNEL_PANIC);
    }
    // Other CPUs halt, so they neither print over the report nor go on
    // with state the panic found broken.
    let stopped = arch::smp::stop_others();
    print_unlocked(format_args!("skiff: kernel panic: {info}\n"));
    print_unlocked(format_args!("panic: other_cpus_stopped={stopped}\n"));
    let mut n = 0;
    arch::backtrace::walk(32, &mut |pc| {
        print_unlocked(format_args!("backtrace: #{n} pc={pc:#x}\n"));
        n += 1;
    });
    print_unlocked(format_args!(
        "{}{}\n",
        skiff_arch_api::exit::STATUS_LINE_PREFIX,
        crate::EXIT_KERNEL_PANIC
    ));
    arch::power::exit(crate::EXIT_KERNEL_PANIC)
}
