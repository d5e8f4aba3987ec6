//! In-kernel tests for the spine, run inside the VM with `ktest=1`: the
//! frame allocator and heap on real RAM, page-table permissions (W^X proved
//! by taking the faults), timer delivery and accuracy, the command line the
//! kernel actually booted with, and frame-pointer backtraces.
//!
//! The fault tests deliberately touch memory they must not be allowed to;
//! that needs `unsafe`, confined to the three probe functions below, each run
//! under `arch::trap::catch_fault`.
#![allow(unsafe_code)]
// `&[a..b]` below is a list of one physical range, not a range of values.
#![allow(clippy::single_range_in_vec_init)]

use crate::mm::frame::{FrameAllocator, FrameError, FRAME_SIZE};
use crate::{arch, mm, time};
use alloc::{boxed::Box, vec::Vec};
use skiff_arch_api::{Access, PageFlags};
use skiff_ktest::{check, check_eq, check_some, ktest};

/// Writes back the byte already at `addr`: if the write is (wrongly)
/// allowed, nothing changes, so a failing test cannot corrupt the kernel.
fn probe_write(addr: usize) {
    // SAFETY: run under catch_fault; `addr` is a mapped kernel address (the
    // test expects a permission fault) and the value written is the one read.
    unsafe {
        let p = addr as *mut u8;
        p.write_volatile(p.read_volatile());
    }
}

fn probe_read(addr: usize) {
    // SAFETY: run under catch_fault; a fault is the expected outcome.
    unsafe {
        (addr as *const u8).read_volatile();
    }
}

fn probe_call(addr: usize) {
    // SAFETY: run under catch_fault. `addr` holds a bare return instruction,
    // so if the (expected) execute fault does not happen the call returns.
    let f: extern "C" fn() = unsafe { core::mem::transmute(addr) };
    f()
}

/// A bare `ret` in writable, non-executable data.
#[cfg(target_arch = "x86_64")]
static mut RET_IN_DATA: [u8; 16] = [0xc3; 16];
#[cfg(target_arch = "aarch64")]
static mut RET_IN_DATA: [u32; 4] = [0xd65f_03c0; 4];

static RODATA_WORD: u64 = 0x5ca1_ab1e;

#[inline(never)]
fn victim_function() -> u32 {
    core::hint::black_box(7)
}

ktest! {
    /// A private buddy over a block borrowed from the real allocator:
    /// alloc, exhaustion, double free, coalescing back to one block.
    fn frame_allocator_on_real_memory() {
        let before = mm::frame_stats();
        let block = check_some!(mm::alloc_frames(8).ok());
        check_eq!(block % (FRAME_SIZE << 8), 0);
        let mut local = FrameAllocator::new(&[block..block + (FRAME_SIZE << 8)]);
        let mut got = Vec::new();
        while let Ok(pa) = local.alloc(2) {
            check!(pa >= block && pa + (FRAME_SIZE << 2) <= block + (FRAME_SIZE << 8));
            got.push(pa);
        }
        check_eq!(got.len(), 64);
        check!(local.alloc(0) == Err(FrameError::OutOfFrames { order: 0 }));
        for pa in got.iter().rev() {
            check!(local.free(*pa, 2).is_ok());
        }
        check!(local.free(got[0], 2).is_err());
        check_eq!(local.stats().free_blocks[8], 1);
        check!(mm::free_frames(block, 8).is_ok());
        check!(mm::free_frames(block, 8).is_err());
        check!(mm::frame_stats() == before);
        Ok(())
    }
}

ktest! {
    fn global_frames_coalesce_after_mixed_sizes() {
        let before = mm::frame_stats();
        let mut held = Vec::new();
        for i in 0..64 {
            let order = [0, 1, 3, 9][i % 4];
            held.push((check_some!(mm::alloc_frames(order).ok()), order));
        }
        check!(mm::frame_stats().free_frames < before.free_frames);
        for (pa, order) in held {
            check!(mm::free_frames(pa, order).is_ok());
        }
        check!(mm::frame_stats() == before);
        Ok(())
    }
}

ktest! {
    fn heap_serves_small_large_and_aligned() {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..10_000u64 {
            v.push(i * 3);
        }
        check_eq!(v.iter().sum::<u64>(), 3 * 9_999 * 10_000 / 2);
        let big = alloc::vec![0xa5u8; 1 << 20];
        check!(big.iter().all(|&b| b == 0xa5));
        #[repr(align(4096))]
        struct Page([u8; 4096]);
        let p = Box::new(Page([1; 4096]));
        check_eq!(&*p as *const Page as usize % 4096, 0);
        check!(p.0.iter().all(|&b| b == 1));
        drop(big);
        // Memory freed is reused: 100 rounds of 64 KiB cannot exhaust the heap.
        for _ in 0..100 {
            let chunk = alloc::vec![0u8; 64 * 1024];
            check_eq!(chunk.len(), 64 * 1024);
        }
        Ok(())
    }
}

ktest! {
    fn text_is_not_writable() {
        let addr = victim_function as fn() -> u32 as usize;
        let fault = check_some!(arch::trap::catch_fault(probe_write, addr).err());
        check!(fault.access == Access::Write);
        check_eq!(fault.addr, addr);
        check!(fault.protection);
        check_eq!(victim_function(), 7);
        Ok(())
    }
}

ktest! {
    fn rodata_is_read_only() {
        let addr = &RODATA_WORD as *const u64 as usize;
        check!(arch::trap::catch_fault(probe_read, addr).is_ok());
        let fault = check_some!(arch::trap::catch_fault(probe_write, addr).err());
        check!(fault.access == Access::Write);
        check_eq!(fault.addr, addr);
        Ok(())
    }
}

ktest! {
    fn data_is_not_executable() {
        let addr = &raw const RET_IN_DATA as usize;
        let fault = check_some!(arch::trap::catch_fault(probe_call, addr).err());
        check!(fault.access == Access::Execute);
        check_eq!(fault.pc, addr);
        Ok(())
    }
}

ktest! {
    /// map_page / protect_page / unmap_page on a fresh frame, with the
    /// permissions proved by faults.
    fn page_mapping_round_trip() {
        let va = arch::mm::KERNEL_VM_BASE + 0x1000_0000;
        let frame = check_some!(mm::alloc_frames(0).ok());
        // Page-table pages must start zeroed (stale entries would be live).
        let mut alloc_table = || mm::alloc_filled_frame(&mut |_| {}).ok();
        check!(arch::mm::map_page(va, frame, PageFlags::KERNEL_RW, &mut alloc_table).is_ok());
        check!(arch::mm::map_page(va, frame, PageFlags::KERNEL_RW, &mut alloc_table).is_err());
        let (pa, flags) = check_some!(arch::mm::translate(va));
        check_eq!(pa, frame);
        check!(flags.write && !flags.execute && !flags.user);
        check!(arch::trap::catch_fault(probe_write, va).is_ok());
        check!(arch::mm::protect_page(va, PageFlags::KERNEL_RO).is_ok());
        let fault = check_some!(arch::trap::catch_fault(probe_write, va).err());
        check!(fault.access == Access::Write && fault.protection);
        check!(arch::trap::catch_fault(probe_read, va).is_ok());
        let writable_exec = PageFlags { write: true, execute: true, user: false };
        check!(arch::mm::protect_page(va, writable_exec).is_err());
        check_eq!(check_some!(arch::mm::unmap_page(va)), frame);
        let fault = check_some!(arch::trap::catch_fault(probe_read, va).err());
        check!(!fault.protection);
        check!(arch::mm::translate(va).is_none());
        check!(mm::free_frames(frame, 0).is_ok());
        Ok(())
    }
}

ktest! {
    /// 100 ms: the interrupt arrives, never early, and within 10% late.
    /// Under TCG the guest counter follows host time, so a loaded host can
    /// deschedule QEMU past the deadline; lateness gets three tries (a
    /// systematic error, like a wrong counter frequency, fails all three),
    /// earliness none.
    fn timer_fires_on_time() {
        let mut late = 0;
        for _ in 0..3 {
            let start = arch::cpu::counter();
            let fired = check_some!(time::wait_for_timer(100_000_000, 1_000_000_000));
            let elapsed_ns = time::ticks_to_ns(fired - start);
            check!(elapsed_ns >= 100_000_000);
            if elapsed_ns <= 110_000_000 {
                return Ok(());
            }
            late += 1;
        }
        check_eq!(late, 0);
        Ok(())
    }
}

ktest! {
    fn timer_rearms_repeatedly() {
        let before = time::timer_interrupts();
        for _ in 0..10 {
            check!(time::wait_for_timer(5_000_000, 500_000_000).is_some());
        }
        check_eq!(time::timer_interrupts() - before, 10);
        Ok(())
    }
}

ktest! {
    /// The command line this kernel booted with parses, and says ktest.
    fn booted_command_line_parses() {
        let boot = check_some!(crate::start::BOOT_INFO.get());
        let opts = check_some!(crate::cmdline::Options::parse(boot.cmdline.as_str()).ok());
        check!(opts.ktest);
        let sample = check_some!(crate::cmdline::Options::parse("ktest=0 -- /app a").ok());
        check!(!sample.ktest);
        check_eq!(sample.app_args().count(), 2);
        check!(crate::cmdline::Options::parse("ktest=perhaps").is_err());
        Ok(())
    }
}

#[inline(never)]
fn nested_walk(depth: u32, out: &mut Vec<usize>) {
    if depth == 0 {
        arch::backtrace::walk(16, &mut |pc| out.push(pc));
    } else {
        nested_walk(core::hint::black_box(depth - 1), out);
    }
}

ktest! {
    fn backtrace_walks_frame_pointers() {
        let mut pcs = Vec::new();
        nested_walk(3, &mut pcs);
        check!(pcs.len() >= 4);
        let text = arch::mm::kernel_sections().text;
        check!(pcs.iter().all(|pc| text.contains(pc)));
        Ok(())
    }
}
