//! In-VM tests of real threads: spawn/join, yield, preemption, sleeping,
//! FP state across preemption, stack overflow, cross-CPU wakeups and
//! fairness. Multi-CPU tests skip themselves at -smp 1.

use super::kthread::{self as k, SpawnError};
use crate::sync::WaitQueue;
use crate::{arch, println, time};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use skiff_ktest::{check, check_eq, check_some, ktest, skip};

/// Spins for `ns` of wall time (doing nothing useful).
fn busy(ns: u64) {
    let end = time::now_ns() + ns;
    while time::now_ns() < end {
        core::hint::spin_loop();
    }
}

ktest! {
    /// Threads run their closures, join waits for them, and stacks are
    /// reused rather than leaked: after a warm-up round (which fills the
    /// stack cache and the stack area's page tables), five more rounds of 8
    /// threads (40 stacks) cost at most two stacks per CPU: a CPU holds the
    /// thread it last switched away from until its next switch, and a
    /// joined thread may still be finishing its exit there.
    fn spawn_and_join_reuse_stacks() {
        let round = |base: u64| -> Option<u64> {
            let sum = Arc::new(AtomicU64::new(0));
            let mut ts = Vec::new();
            for i in 1..=8u64 {
                let s = sum.clone();
                ts.push(k::spawn("adder", move || {
                    s.fetch_add(base + i, Ordering::SeqCst);
                }, None).ok()?);
            }
            for t in &ts {
                k::join(t);
                if !t.is_done() {
                    return None;
                }
            }
            Some(sum.load(Ordering::SeqCst))
        };
        check_eq!(check_some!(round(0)), 36);
        k::sleep(2_000_000);
        let frames_before = crate::mm::frame_stats().free_frames;
        for r in 1..=5u64 {
            check_eq!(check_some!(round(100 * r)), 800 * r + 36);
        }
        k::sleep(2_000_000);
        let per_cpu = (k::DEFAULT_STACK_BYTES / arch::mm::PAGE_SIZE) as u64;
        let lost = frames_before.saturating_sub(crate::mm::frame_stats().free_frames);
        check!(lost <= 2 * per_cpu * u64::from(k::online_cpus()));
        Ok(())
    }
}

ktest! {
    /// Two threads on one CPU alternate strictly through yield.
    fn yield_alternates_on_one_cpu() {
        let turn = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let mut ts = Vec::new();
        for me in 0..2usize {
            let (turn, log) = (turn.clone(), log.clone());
            ts.push(check_some!(k::spawn("yielder", move || {
                for _ in 0..50 {
                    let t0 = time::now_ns();
                    while turn.load(Ordering::SeqCst) % 2 != me {
                        k::yield_now();
                        if time::now_ns() - t0 > 2_000_000_000 {
                            return;
                        }
                    }
                    log.lock().push(me);
                    turn.fetch_add(1, Ordering::SeqCst);
                }
            }, Some(0)).ok()));
        }
        for t in &ts {
            k::join(t);
        }
        let log = log.lock();
        check_eq!(log.len(), 100);
        check!(log.iter().enumerate().all(|(i, &w)| w == i % 2));
        Ok(())
    }
}

ktest! {
    /// A thread spinning without yielding is preempted by the timer: the
    /// other thread pinned to the same CPU gets to run.
    fn timer_preempts_a_spinning_thread() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let spinner = check_some!(k::spawn("spinner", move || {
            let t0 = time::now_ns();
            while !f.load(Ordering::SeqCst) && time::now_ns() - t0 < 3_000_000_000 {
                core::hint::spin_loop();
            }
        }, Some(0)).ok());
        let f = flag.clone();
        let setter = check_some!(k::spawn("setter", move || f.store(true, Ordering::SeqCst), Some(0)).ok());
        let t0 = time::now_ns();
        k::join(&spinner);
        k::join(&setter);
        check!(flag.load(Ordering::SeqCst));
        check!(time::now_ns() - t0 < 1_000_000_000);
        check!(spinner.stats.preemptions.load(Ordering::Relaxed) >= 1);
        Ok(())
    }
}

ktest! {
    /// sleep(20 ms) never wakes early, and the median lateness of seven
    /// sleeps is within one timer granularity (2 ms): the median, because
    /// TCG vCPUs on a loaded host get descheduled now and then (the worst
    /// case is printed). Every CPU idles meanwhile (idle time accounted).
    fn sleeper_wakes_on_time_and_cpu_idles() {
        let idle_before: Vec<u64> = k::cpu_report().iter().map(|c| c.1).collect();
        let mut late = Vec::new();
        for _ in 0..7 {
            let t0 = time::now_ns();
            k::sleep(20_000_000);
            let slept = time::now_ns() - t0;
            check!(slept >= 20_000_000);
            late.push(slept - 20_000_000);
        }
        late.sort_unstable();
        println!("sched: sleep lateness median_us={} max_us={}", late[3] / 1_000, late[6] / 1_000);
        check!(late[3] <= 2_000_000);
        // Seven 20 ms sleeps with nothing else to run anywhere: every CPU
        // (this one included) spent most of the 140 ms idle. A CPU's idle
        // time is accounted when it next schedules, so poke each first.
        for c in 0..k::online_cpus() {
            let t = check_some!(k::spawn("poke", || {}, Some(c)).ok());
            k::join(&t);
        }
        let idle_after: Vec<u64> = k::cpu_report().iter().map(|c| c.1).collect();
        check_eq!(idle_after.len(), idle_before.len());
        for (after, before) in idle_after.iter().zip(&idle_before) {
            check!(after - before >= 100_000_000);
        }
        Ok(())
    }
}

ktest! {
    /// FP/SIMD registers survive preemption: two threads on one CPU load
    /// different patterns into XMM0-15, spin through several preemptions,
    /// and check their pattern is intact.
    fn fp_state_survives_preemption() {
        let ok = Arc::new(AtomicUsize::new(0));
        let mut ts = Vec::new();
        let ready = Arc::new(AtomicUsize::new(0));
        for seed in [0x1234_5678_9abc_def1u64, 0x0fed_cba9_8765_4321] {
            let (ok, ready) = (ok.clone(), ready.clone());
            ts.push(check_some!(k::spawn("fp", move || {
                let mut good = true;
                // Start together, so both are runnable for the whole test.
                ready.fetch_add(1, Ordering::SeqCst);
                while ready.load(Ordering::SeqCst) < 2 {
                    core::hint::spin_loop();
                }
                for _ in 0..30 {
                    arch::fpu::test_fill(seed);
                    busy(1_000_000);
                    good &= arch::fpu::test_check(seed);
                }
                if good {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            }, Some(0)).ok()));
        }
        for t in &ts {
            k::join(t);
        }
        check_eq!(ok.load(Ordering::SeqCst), 2);
        let preempted: u64 = ts.iter().map(|t| t.stats.preemptions.load(Ordering::Relaxed)).sum();
        check!(preempted >= 2);
        Ok(())
    }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let pad = core::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        return pad[0];
    }
    recurse(depth + 1).wrapping_add(core::hint::black_box(pad[1]))
}

ktest! {
    /// Unbounded recursion hits the guard page: the thread is killed with
    /// "stack overflow in thread NAME", the kernel and other threads go on.
    fn stack_overflow_is_caught_and_reported() {
        let t = check_some!(k::spawn("overflower", || {
            core::hint::black_box(recurse(0));
        }, None).ok());
        k::join(&t);
        check!(t.overflowed());
        check!(t.is_done());
        // Threads still work afterwards.
        let again = check_some!(k::spawn("after", || {}, None).ok());
        k::join(&again);
        Ok(())
    }
}

ktest! {
    fn spawn_rejects_bad_requests() {
        check!(matches!(k::spawn("nowhere", || {}, Some(k::MAX_CPUS as u32)), Err(SpawnError::NoSuchCpu)));
        check!(matches!(
            k::spawn_with("huge", alloc::boxed::Box::new(|| {}), None, k::MAX_STACK_BYTES + 1),
            Err(SpawnError::BadStackSize)
        ));
        Ok(())
    }
}

ktest! {
    /// Thread switch time on one CPU: two threads ping-pong through wait
    /// queues 2000 times. Prints ns per switch; fails only if it stalls.
    fn ping_pong_switch_time() {
        const ROUNDS: u64 = 2000;
        struct Pp {
            turn: AtomicU64,
            q: [WaitQueue; 2],
        }
        let pp = Arc::new(Pp { turn: AtomicU64::new(0), q: [WaitQueue::new(), WaitQueue::new()] });
        let mut ts = Vec::new();
        let t0 = time::now_ns();
        for me in 0..2u64 {
            let pp = pp.clone();
            ts.push(check_some!(k::spawn("pingpong", move || {
                for _ in 0..ROUNDS {
                    pp.q[me as usize].wait_until(|| pp.turn.load(Ordering::SeqCst) % 2 == me);
                    pp.turn.fetch_add(1, Ordering::SeqCst);
                    pp.q[1 - me as usize].wake_one();
                }
            }, Some(0)).ok()));
        }
        for t in &ts {
            k::join(t);
        }
        let ns = time::now_ns() - t0;
        check_eq!(pp.turn.load(Ordering::SeqCst), 2 * ROUNDS);
        let switches: u64 = ts.iter().map(|t| t.stats.switches.load(Ordering::Relaxed)).sum();
        check!(switches >= ROUNDS);
        println!("sched: pingpong rounds={} switches={} ns_per_switch={}", 2 * ROUNDS, switches, ns / switches);
        Ok(())
    }
}

ktest! {
    /// 10 000 wakeups of threads on other CPUs: every one arrives exactly
    /// once (a wakeup counter per thread matches the sends, none extra).
    fn cross_cpu_wakeups_none_lost_none_duplicated() {
        let n = k::online_cpus();
        if n < 2 {
            skip!("needs 2 cpus");
        }
        const WAKES: u64 = 10_000;
        struct Box1 {
            posted: AtomicU64,
            taken: AtomicU64,
            q: WaitQueue,
        }
        let receivers = (n - 1).min(3);
        let per = WAKES / u64::from(receivers);
        let mut boxes = Vec::new();
        let mut ts = Vec::new();
        for r in 0..receivers {
            let b = Arc::new(Box1 { posted: AtomicU64::new(0), taken: AtomicU64::new(0), q: WaitQueue::new() });
            boxes.push(b.clone());
            ts.push(check_some!(k::spawn("receiver", move || {
                while b.taken.load(Ordering::SeqCst) < per {
                    b.q.wait_until(|| b.posted.load(Ordering::SeqCst) > b.taken.load(Ordering::SeqCst));
                    b.taken.fetch_add(1, Ordering::SeqCst);
                }
            }, Some(1 + r)).ok()));
        }
        // The sender (main, CPU 0) posts one item at a time per receiver and
        // waits for it to be taken, so every wake is a real cross-CPU one.
        let t0 = time::now_ns();
        for i in 0..per {
            for b in &boxes {
                b.posted.fetch_add(1, Ordering::SeqCst);
                b.q.wake_one();
            }
            for b in &boxes {
                while b.taken.load(Ordering::SeqCst) <= i {
                    if time::now_ns() - t0 > 30_000_000_000 {
                        break;
                    }
                    core::hint::spin_loop();
                }
            }
        }
        for t in &ts {
            k::join(t);
        }
        for b in &boxes {
            check_eq!(b.taken.load(Ordering::SeqCst), per);
            check_eq!(b.posted.load(Ordering::SeqCst), per);
        }
        Ok(())
    }
}

ktest! {
    /// N busy threads on M CPUs (N = 2M): each gets its fair share within
    /// 15% and every CPU ran work (the balancer spread them).
    fn busy_threads_are_fair_across_cpus() {
        let m = k::online_cpus();
        if m < 2 {
            skip!("needs 2 cpus");
        }
        let n = 2 * m as usize;
        let stop = Arc::new(AtomicBool::new(false));
        let ran_on = Arc::new([const { AtomicBool::new(false) }; k::MAX_CPUS]);
        let mut ts = Vec::new();
        // Spawned unpinned: they start on the least-loaded CPUs and the
        // balancer evens out the rest.
        for _ in 0..n {
            let (stop, ran_on) = (stop.clone(), ran_on.clone());
            ts.push(check_some!(k::spawn("busy", move || {
                while !stop.load(Ordering::Relaxed) {
                    ran_on[k::cpu_index() as usize].store(true, Ordering::Relaxed);
                    core::hint::spin_loop();
                }
            }, None).ok()));
        }
        // Main sleeps on CPU 0, which then runs busy threads too.
        k::sleep(1_500_000_000);
        stop.store(true, Ordering::SeqCst);
        for t in &ts {
            k::join(t);
        }
        let cpu: Vec<u64> = ts.iter().map(|t| t.stats.cpu_ns.load(Ordering::Relaxed)).collect();
        let total: u64 = cpu.iter().sum();
        let fair = total / n as u64;
        println!("sched: fairness cpus={m} threads={n} cpu_ms={:?}", cpu.iter().map(|c| c / 1_000_000).collect::<Vec<_>>());
        for &c in &cpu {
            check!(c.abs_diff(fair) * 100 <= fair * 15);
        }
        for i in 0..m as usize {
            check!(ran_on[i].load(Ordering::Relaxed));
        }
        Ok(())
    }
}

ktest! {
    /// A thread pinned to each CPU runs there: the scheduler's CPU index,
    /// the arch's CPU number and the hardware id are distinct per CPU.
    fn pinned_threads_run_on_every_cpu() {
        let n = k::online_cpus();
        if n < 2 {
            skip!("needs 2 cpus");
        }
        let seen = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let mut ts = Vec::new();
        for c in 0..n {
            let seen = seen.clone();
            ts.push(check_some!(k::spawn("pinned", move || {
                let ids = (k::cpu_index(), arch::cpu::id(), arch::smp::this_cpu_hw_id());
                seen.lock().push((c, ids));
            }, Some(c)).ok()));
        }
        for t in &ts {
            k::join(t);
        }
        let seen = seen.lock();
        check_eq!(seen.len(), n as usize);
        for (i, &(c, (index, _, _))) in seen.iter().enumerate() {
            check_eq!(index, c);
            for &(_, (_, num, hw)) in seen.iter().skip(i + 1) {
                check!(num != seen[i].1 .1);
                check!(hw != seen[i].1 .2);
            }
        }
        Ok(())
    }
}

/// Reads the u64 at `va`.
fn read_u64(va: usize) -> u64 {
    #[allow(unsafe_code)]
    // SAFETY: `va` is 8-byte aligned and mapped (kernel RW) by the calling
    // test for as long as it reads it.
    unsafe {
        (va as *const u64).read_volatile()
    }
}

/// Writes the u64 at `va`.
fn write_u64(va: usize, v: u64) {
    #[allow(unsafe_code)]
    // SAFETY: as for `read_u64`; the page belongs to the test.
    unsafe {
        (va as *mut u64).write_volatile(v)
    }
}

ktest! {
    /// A page read on every CPU (so each caches its translation) is
    /// remapped to another frame; after `tlb_shootdown` every CPU reads the
    /// new frame's contents, not the old one's. A full flush (a range past
    /// the per-page threshold) works the same way.
    fn tlb_shootdown_reaches_every_cpu() {
        use skiff_arch_api::PageFlags;
        let va = arch::mm::KERNEL_VM_BASE + 0x1010_0000;
        let frames = [
            check_some!(crate::mm::alloc_frames(0).ok()),
            check_some!(crate::mm::alloc_frames(0).ok()),
            check_some!(crate::mm::alloc_frames(0).ok()),
        ];
        let mut tables = || crate::mm::alloc_frames(0).ok();
        check!(arch::mm::map_page(va, frames[0], PageFlags::KERNEL_RW, &mut tables).is_ok());
        write_u64(va, 0xaaaa);
        // Every CPU reads it: now each has the translation cached.
        let read_everywhere = |want: u64| -> Option<u32> {
            let ok = Arc::new(AtomicUsize::new(0));
            let mut ts = Vec::new();
            for c in 0..k::online_cpus() {
                let ok = ok.clone();
                ts.push(k::spawn("tlb-read", move || {
                    if read_u64(va) == want {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }, Some(c)).ok()?);
            }
            for t in &ts {
                k::join(t);
            }
            Some(ok.load(Ordering::SeqCst) as u32)
        };
        let all = k::online_cpus();
        check_eq!(check_some!(read_everywhere(0xaaaa)), all);
        for (i, &frame) in frames.iter().enumerate().skip(1) {
            check!(arch::mm::unmap_page(va).is_some());
            check!(arch::mm::map_page(va, frame, PageFlags::KERNEL_RW, &mut tables).is_ok());
            let value = 0xbbbb + i as u64;
            write_u64(va, value);
            if i == 1 {
                arch::smp::tlb_shootdown(va..va + arch::mm::PAGE_SIZE);
            } else {
                let pages = arch::smp::TLB_FULL_FLUSH_PAGES + 1;
                arch::smp::tlb_shootdown(va..va + pages * arch::mm::PAGE_SIZE);
            }
            check_eq!(check_some!(read_everywhere(value)), all);
        }
        check!(arch::mm::unmap_page(va).is_some());
        arch::smp::tlb_shootdown(va..va + arch::mm::PAGE_SIZE);
        for f in frames {
            check!(crate::mm::free_frames(f, 0).is_ok());
        }
        Ok(())
    }
}
