//! Frame-pointer backtraces (the kernel is built with
//! `-C force-frame-pointers=yes`): each frame record is (previous x29, x30).
//! Every record is checked against the page tables before it is read, so a
//! corrupt chain ends the walk instead of faulting.

use crate::mm;
use core::arch::asm;

fn readable(va: usize) -> bool {
    // Kernel half, not device memory, mapped.
    va >> 48 == 0xffff
        && !(mm::MMIO_BASE..mm::MMIO_END).contains(&va)
        && mm::translate(va).is_some_and(|(_, f)| !f.user)
}

/// Walks the frame pointers from the caller; `f(return address)` per frame,
/// at most `max` frames.
pub fn walk(max: usize, f: &mut dyn FnMut(usize)) {
    let mut fp: usize;
    // SAFETY: reads x29.
    unsafe { asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    for _ in 0..max {
        if fp == 0 || !fp.is_multiple_of(8) || !readable(fp) || !readable(fp + 8) {
            break;
        }
        // SAFETY: both aligned words of the record are in mapped, readable
        // kernel memory (checked above).
        let (next, lr) = unsafe {
            let p = fp as *const usize;
            (p.read_volatile(), p.add(1).read_volatile())
        };
        if lr == 0 {
            break;
        }
        f(lr);
        // The stack grows down: callers' records are at higher addresses.
        if next <= fp {
            break;
        }
        fp = next;
    }
}
