//! Time: Instant is monotonic, sleeps last long enough, SystemTime is sane.
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn check(name: &str, ok: bool) {
    println!("{name}={}", if ok { "ok" } else { "FAIL" });
}

fn main() {
    let start = Instant::now();
    let mut prev = start;
    let mut monotonic = true;
    for _ in 0..100_000 {
        let now = Instant::now();
        monotonic &= now >= prev;
        prev = now;
    }
    check("instant_monotonic", monotonic);
    let before = Instant::now();
    thread::sleep(Duration::from_millis(20));
    let slept = before.elapsed();
    check("slept_at_least_20ms", slept >= Duration::from_millis(20));
    check("slept_under_5s", slept < Duration::from_secs(5));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(|| {
                let t = Instant::now();
                thread::sleep(Duration::from_millis(15));
                t.elapsed() >= Duration::from_millis(15)
            })
        })
        .collect();
    check(
        "threads_slept",
        threads.into_iter().all(|h| h.join().unwrap()),
    );
    check(
        "checked_sub",
        start
            .checked_duration_since(Instant::now())
            .is_none_or(|d| d.is_zero()),
    );

    let now = SystemTime::now();
    let since = now.duration_since(UNIX_EPOCH).expect("after the epoch");
    // 2020-01-01 and 2100-01-01.
    check("realtime_after_2020", since.as_secs() > 1_577_836_800);
    check("realtime_before_2100", since.as_secs() < 4_102_444_800);
    let later = SystemTime::now();
    check(
        "systemtime_not_backwards",
        later.duration_since(now).is_ok(),
    );
    check(
        "earlier_is_error",
        now.duration_since(now + Duration::from_secs(1)).is_err(),
    );
    check(
        "elapsed_small",
        now.elapsed()
            .map(|d| d < Duration::from_secs(5))
            .unwrap_or(false),
    );
}
