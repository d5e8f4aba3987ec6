//! The kernel console: the UART the platform named, behind a spin lock taken
//! with interrupts off (O(1) per byte, never held across anything that sleeps).

use crate::arch;
use core::fmt::{self, Write};
use skiff_drivers::serial::Uart;
use skiff_platform::BootInfo;
use spin::{Mutex, Once};

static CONSOLE: Once<&'static dyn Uart> = Once::new();
static LOCK: Mutex<()> = Mutex::new(());

/// Opens the console the platform chose for this boot and routes the
/// `log` facade (used by platform and drivers) to it.
pub fn init(boot: &BootInfo) {
    if let Some(uart) = skiff_platform::probe::console(boot) {
        CONSOLE.call_once(|| uart);
    }
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Lines from the `log` facade. Skiff's crates below the kernel write
/// greppable `subsystem: key=value` messages; warnings and errors are
/// tagged. Third-party crates (virtio-drivers, smoltcp) are held to
/// warnings and errors, prefixed with their crate (`virtio_drivers: ...`):
/// their informational chatter is not in that form, and the console is
/// also the application's stdout.
struct ConsoleLogger;
static LOGGER: ConsoleLogger = ConsoleLogger;

fn is_ours(target: &str) -> bool {
    target.starts_with("skiff")
}

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
            && (is_ours(metadata.target()) || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let target = record.target();
        let krate = target.split("::").next().unwrap_or(target);
        let (tag, sep) = if is_ours(target) {
            ("", "")
        } else {
            (krate, ": ")
        };
        match record.level() {
            log::Level::Error => print(format_args!("error: {tag}{sep}{}\n", record.args())),
            log::Level::Warn => print(format_args!("warning: {tag}{sep}{}\n", record.args())),
            _ => print(format_args!("{tag}{sep}{}\n", record.args())),
        }
    }

    fn flush(&self) {}
}

/// Sets how much of the `log` facade reaches the console (`loglevel=`).
pub fn set_log_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

struct Writer;

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match CONSOLE.get() {
            Some(uart) => uart.write_str(s),
            None => arch::early_print(s),
        }
        Ok(())
    }
}

pub fn print(args: fmt::Arguments) {
    arch::cpu::without_interrupts(|| {
        let _guard = LOCK.lock();
        let _ = Writer.write_fmt(args);
    });
}

/// Used by the panic handler: does not wait for a lock a panicking context
/// may hold.
pub fn print_unlocked(args: fmt::Arguments) {
    let _ = Writer.write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
