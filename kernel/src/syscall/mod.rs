//! The one system-call table: a single declarative list (`syscalls!` in
//! [`table`]) names each implemented call, its argument kinds and its
//! handler. From it come dispatch (per-arch number → handler), the
//! strace-style log (`--strace`: name, decoded arguments, result), and the
//! once-per-name report of calls Skiff does not implement, which return
//! `-ENOSYS`. Names and numbers of every Linux call on both arches are in
//! [`numbers`] (generated), so even an unimplemented call is reported by
//! name.
//!
//! Handlers are generic over the process context `P` so this layer is
//! tested on the host with a fake process.

pub mod numbers;
pub mod trace;

use crate::errno::Errno;
use core::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// How `--strace` shows an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal (counts, fds, pids).
    Int,
    /// Unsigned decimal (sizes).
    Size,
    /// Hexadecimal (addresses, opaque values).
    Hex,
    /// A NUL-terminated path or string in user memory.
    Str,
    /// A buffer whose length is argument `n` (shown as a quoted prefix
    /// after the call for reads, before it for writes).
    BufIn(u8),
    BufOut(u8),
    /// `open` flags, symbolically.
    OpenFlags,
    /// File mode bits in octal.
    Mode,
    /// `AT_FDCWD` or a descriptor.
    DirFd,
}

/// The raw arguments of one call, as the arch's entry code found them.
pub type Args = [usize; 6];

/// A handler: the process, the arguments; `Ok(value)` or `Err(errno)`.
pub type Handler<P> = fn(&mut P, &Args) -> Result<usize, Errno>;

// `P` may be unsized (`dyn linux::Ctx`): one table then serves the real
// process on the target and fakes in host tests.

/// One implemented system call.
pub struct Entry<P: ?Sized + 'static> {
    pub name: &'static str,
    pub args: &'static [Arg],
    pub handler: Handler<P>,
}

/// What the table needs from a process to trace calls.
pub trait Process {
    /// Copies user memory for the trace (None if unreadable: shown as the
    /// address, like strace).
    fn read_user(&self, addr: usize, buf: &mut [u8]) -> Option<usize>;
    /// Where trace lines go (the console).
    fn trace_line(&self, line: &str);
    /// Whether `--strace` is on.
    fn tracing(&self) -> bool;
    /// Once-per-name report of an unimplemented call.
    fn report_unimplemented(&self, line: &str);
}

/// Number → entry lookup for one arch, built once from the table.
pub struct Table<P: ?Sized + 'static> {
    arch: Arch,
    by_nr: alloc::vec::Vec<Option<&'static Entry<P>>>,
    /// One flag per Linux syscall (index into `LINUX_SYSCALLS`): reported.
    reported: alloc::vec::Vec<AtomicBool>,
}

impl<P: Process + ?Sized + 'static> Table<P> {
    /// Builds the lookup for `arch`. Entries whose name is not a Linux
    /// syscall on this arch are a programming error caught by `new`'s
    /// caller tests (`table_names_are_linux_names`).
    pub fn new(arch: Arch, entries: &'static [Entry<P>]) -> Self {
        Self::from_parts(arch, &[entries])
    }

    /// Like [`Table::new`], from several lists (one per subsystem: files,
    /// memory, threads...). A name listed twice is a programming error;
    /// the later list wins.
    pub fn from_parts(arch: Arch, parts: &[&'static [Entry<P>]]) -> Self {
        let nr_of = |name: &str| {
            numbers::LINUX_SYSCALLS
                .iter()
                .find(|(n, _, _)| *n == name)
                .and_then(|&(_, x, a)| match arch {
                    Arch::X86_64 => x,
                    Arch::Aarch64 => a,
                })
        };
        let max = numbers::LINUX_SYSCALLS
            .iter()
            .filter_map(|&(_, x, a)| match arch {
                Arch::X86_64 => x,
                Arch::Aarch64 => a,
            })
            .max()
            .unwrap_or(0) as usize;
        let mut by_nr = alloc::vec![None; max + 1];
        for e in parts.iter().flat_map(|p| p.iter()) {
            if let Some(nr) = nr_of(e.name) {
                by_nr[nr as usize] = Some(e);
            }
        }
        let reported = (0..numbers::LINUX_SYSCALLS.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        Table {
            arch,
            by_nr,
            reported,
        }
    }

    /// The Linux name of call `nr` on this arch, if it has one.
    pub fn name_of(&self, nr: usize) -> Option<&'static str> {
        self.linux_index(nr).map(|i| numbers::LINUX_SYSCALLS[i].0)
    }

    fn linux_index(&self, nr: usize) -> Option<usize> {
        numbers::LINUX_SYSCALLS.iter().position(|&(_, x, a)| {
            let n = match self.arch {
                Arch::X86_64 => x,
                Arch::Aarch64 => a,
            };
            n.map(usize::from) == Some(nr)
        })
    }

    pub fn is_implemented(&self, nr: usize) -> bool {
        self.by_nr.get(nr).is_some_and(Option::is_some)
    }

    /// Runs call `nr`; returns the value for the app's return register
    /// (`-errno` on failure).
    pub fn dispatch(&self, p: &mut P, nr: usize, args: &Args) -> isize {
        let Some(entry) = self.by_nr.get(nr).copied().flatten() else {
            self.unimplemented(p, nr, args);
            return Errno::ENOSYS.as_ret();
        };
        let result = (entry.handler)(p, args);
        if p.tracing() {
            let line = trace::format_call(p, entry.name, entry.args, args, &result);
            p.trace_line(&line);
        }
        match result {
            Ok(v) => v as isize,
            Err(e) => e.as_ret(),
        }
    }

    fn unimplemented(&self, p: &mut P, nr: usize, args: &Args) {
        let idx = self.linux_index(nr);
        let first = match idx {
            Some(i) => !self.reported[i].swap(true, Ordering::Relaxed),
            None => true,
        };
        let name = idx.map(|i| numbers::LINUX_SYSCALLS[i].0);
        if first {
            let line = match name {
                Some(n) => {
                    alloc::format!("syscall: unimplemented name={n} nr={nr} returning=-ENOSYS")
                }
                None => alloc::format!("syscall: unknown nr={nr} returning=-ENOSYS"),
            };
            p.report_unimplemented(&line);
        }
        if p.tracing() {
            let line = alloc::format!(
                "{}({:#x}, {:#x}, {:#x}, ...) = -1 ENOSYS (not implemented)",
                name.unwrap_or("syscall"),
                args[0],
                args[1],
                args[2]
            );
            p.trace_line(&line);
        }
    }
}

#[cfg(test)]
mod tests;

/// Declares a table of implemented calls, the one list everything else is
/// derived from:
///
/// ```ignore
/// syscall_table! {
///     pub static TABLE: [Process] = {
///         read(Int, BufIn(2), Size) => sys_read;
///         getpid() => sys_getpid;
///     }
/// }
/// ```
#[macro_export]
macro_rules! syscall_table {
    ($vis:vis static $table:ident: [$p:ty] = {
        $( $name:ident ( $($arg:expr),* $(,)? ) => $handler:path ; )*
    }) => {
        $vis static $table: &[$crate::syscall::Entry<$p>] = &[
            $( $crate::syscall::Entry {
                name: stringify!($name),
                args: {
                    #[allow(unused_imports)]
                    use $crate::syscall::Arg::*;
                    &[$($arg),*]
                },
                handler: $handler,
            }, )*
        ];
    };
}
