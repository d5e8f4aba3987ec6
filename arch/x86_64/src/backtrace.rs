//! Frame-pointer backtraces (the kernel is built with
//! `force-frame-pointers`). Each frame record is checked to be mapped before
//! it is read, and the chain must move up the stack, so a corrupt chain ends
//! the walk instead of faulting.

use crate::mm;

/// Walks frame pointers from the caller; calls `f(return_address)` per
/// frame, at most `max` times. Trap frames are linked in (see `trap.rs`), so
/// the walk continues through a fault into the interrupted code, whose
/// faulting pc is reported as one frame.
pub fn walk(max: usize, f: &mut dyn FnMut(usize)) {
    let mut fp: usize;
    // SAFETY: reads the frame-pointer register only.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    for _ in 0..max {
        if fp == 0 || !fp.is_multiple_of(8) || !readable(fp, 16) {
            return;
        }
        // SAFETY: `readable` checked both words are mapped and readable.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret == 0 {
            return;
        }
        f(ret);
        if next <= fp {
            return;
        }
        fp = next;
    }
}

fn readable(va: usize, len: usize) -> bool {
    let Some(end) = va.checked_add(len - 1) else {
        return false;
    };
    mm::translate(va).is_some_and(|(_, fl)| !fl.user)
        && mm::translate(end).is_some_and(|(_, fl)| !fl.user)
}
