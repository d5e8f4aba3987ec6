//! In-guest benchmarks (`bench=sched` on the command line; driven from the
//! host by `cargo skiff bench sched`). Each prints one greppable line,
//! `bench: name=NAME ops=N ns_per_op=X`, measured on the kernel's clock;
//! the host tool also boots the same kernel under `-icount shift=0`, where
//! one guest nanosecond is one guest instruction, which turns the same
//! figures into deterministic instruction counts.

use crate::sched::kthread as k;
use crate::sync::{Mutex, WaitQueue};
use crate::{println, time};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

fn report(name: &str, ops: u64, ns: u64) {
    println!("bench: name={name} ops={ops} ns_per_op={}", ns / ops.max(1));
}

/// Two threads hand a token back and forth through wait queues; `cpus`
/// says where each runs. Returns (hand-offs, elapsed ns).
fn ping_pong(rounds: u64, cpus: [u32; 2]) -> Option<(u64, u64)> {
    struct Pp {
        turn: AtomicU64,
        q: [WaitQueue; 2],
    }
    let pp = Arc::new(Pp {
        turn: AtomicU64::new(0),
        q: [WaitQueue::new(), WaitQueue::new()],
    });
    let t0 = time::now_ns();
    let mut ts = Vec::new();
    for me in 0..2u64 {
        let pp = pp.clone();
        let t = k::spawn(
            "bench-pingpong",
            move || {
                for _ in 0..rounds {
                    pp.q[me as usize].wait_until(|| pp.turn.load(Ordering::SeqCst) % 2 == me);
                    pp.turn.fetch_add(1, Ordering::SeqCst);
                    pp.q[1 - me as usize].wake_one();
                }
            },
            Some(cpus[me as usize]),
        )
        .ok()?;
        ts.push(t);
    }
    for t in &ts {
        k::join(t);
    }
    Some((2 * rounds, time::now_ns() - t0))
}

/// Latency from `wake_one` on CPU 0 to the woken thread running on CPU 1,
/// median of `n` wakeups spaced out so the target is idle each time. The
/// waker then blocks for the reply rather than spinning, so the measurement
/// does not depend on the waker's CPU giving way (it matters under icount,
/// where QEMU runs vCPUs round-robin).
fn wakeup_latency(n: usize) -> Option<u64> {
    struct W {
        q: WaitQueue,
        reply: WaitQueue,
        go: AtomicU64,
        woke_at: AtomicU64,
    }
    let w = Arc::new(W {
        q: WaitQueue::new(),
        reply: WaitQueue::new(),
        go: AtomicU64::new(0),
        woke_at: AtomicU64::new(0),
    });
    let w2 = w.clone();
    let waiter = k::spawn(
        "bench-waiter",
        move || {
            for i in 1..=n as u64 {
                w2.q.wait_until(|| w2.go.load(Ordering::SeqCst) >= i);
                w2.woke_at.store(time::now_ns(), Ordering::SeqCst);
                w2.reply.wake_one();
            }
        },
        Some(1),
    )
    .ok()?;
    let mut lat = Vec::with_capacity(n);
    for i in 1..=n as u64 {
        k::sleep(2_000_000); // let CPU 1 go idle
        w.woke_at.store(0, Ordering::SeqCst);
        let t0 = time::now_ns();
        w.go.store(i, Ordering::SeqCst);
        w.q.wake_one();
        w.reply.wait_until(|| w.woke_at.load(Ordering::SeqCst) != 0);
        lat.push(w.woke_at.load(Ordering::SeqCst).saturating_sub(t0));
    }
    k::join(&waiter);
    lat.sort_unstable();
    Some(lat[n / 2])
}

/// Runs suite `name`; false if it is unknown or could not run.
pub fn run(name: &str) -> bool {
    if name != "sched" {
        println!("bench: unknown suite {name} (known: sched)");
        return false;
    }
    let cpus = k::online_cpus();
    println!("bench: suite=sched cpus={cpus}");
    let Some((ops, ns)) = ping_pong(2000, [0, 0]) else {
        return false;
    };
    report("switch_1cpu", ops, ns);
    if cpus >= 2 {
        let Some((ops, ns)) = ping_pong(2000, [0, 1]) else {
            return false;
        };
        report("switch_2cpu", ops, ns);
        let Some(median) = wakeup_latency(101) else {
            return false;
        };
        report("wakeup_latency_2cpu", 1, median);
    } else {
        println!("bench: name=switch_2cpu skipped=needs-2-cpus");
        println!("bench: name=wakeup_latency_2cpu skipped=needs-2-cpus");
    }
    const N: u64 = 100_000;
    let m = Mutex::new(0u64);
    let t0 = time::now_ns();
    for _ in 0..N {
        *m.lock() += 1;
    }
    let ns = time::now_ns() - t0;
    if *m.lock() != N {
        return false;
    }
    report("mutex_uncontended", N, ns);
    println!("bench: done");
    true
}
