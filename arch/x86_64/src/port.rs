//! x86 port I/O. Unsafe: a port write can reprogram any legacy device; the
//! callers (platform probes, the 16550 glue) say which device they address.

use x86_64::instructions::port::{Port, PortReadOnly, PortWriteOnly};

/// # Safety
/// Reading `port` must have no side effect the caller has not accounted for.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: forwarded to the caller.
    unsafe { PortReadOnly::<u8>::new(port).read() }
}

/// # Safety
/// Writing `value` to `port` must be what the addressed device expects.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe { PortWriteOnly::<u8>::new(port).write(value) }
}

/// # Safety
/// As [`inb`].
pub unsafe fn inw(port: u16) -> u16 {
    // SAFETY: forwarded to the caller.
    unsafe { PortReadOnly::<u16>::new(port).read() }
}

/// # Safety
/// As [`outb`].
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: forwarded to the caller.
    unsafe { PortWriteOnly::<u16>::new(port).write(value) }
}

/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u32>::new(port).read() }
}

/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u32>::new(port).write(value) }
}
