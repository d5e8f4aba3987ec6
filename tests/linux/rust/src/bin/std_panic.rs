//! Panics: catch_unwind with the payload, drops during unwinding,
//! resume_unwind, a panicking thread's join, a panic hook, then an uncaught
//! panic (status 101).
use std::panic;
use std::sync::atomic::{AtomicU32, Ordering};

static DROPS: AtomicU32 = AtomicU32::new(0);

struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn deep(n: u32) -> u32 {
    let _g = Guard;
    if n == 0 {
        panic!("bottom reached");
    }
    deep(n - 1) + 1
}

fn main() {
    // The default hook writes to stderr, which shares Skiff's console with
    // stdout: this one prints the message to stdout instead (the panics
    // below happen one at a time, so the order is fixed).
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(not a string)");
        println!(
            "hook_message={msg:?} has_location={}",
            info.location().is_some()
        );
    }));
    let r = panic::catch_unwind(|| {
        let _g = Guard;
        panic!("boom {}", std::hint::black_box(42));
    });
    let msg = r.err().and_then(|p| match p.downcast::<String>() {
        Ok(s) => Some(*s),
        Err(p) => p.downcast::<&str>().ok().map(|s| s.to_string()),
    });
    println!("caught={msg:?} drops={}", DROPS.load(Ordering::SeqCst));

    let r = panic::catch_unwind(|| deep(10));
    println!(
        "deep_caught={} drops={}",
        r.is_err(),
        DROPS.load(Ordering::SeqCst)
    );

    let r = panic::catch_unwind(|| panic::resume_unwind(Box::new(7u32)));
    println!(
        "resumed={:?}",
        r.err().and_then(|p| p.downcast::<u32>().ok()).map(|b| *b)
    );

    let r = panic::catch_unwind(|| {
        let v: Vec<u32> = Vec::new();
        v[3]
    });
    println!("index_out_of_bounds_caught={}", r.is_err());

    let joined = std::thread::spawn(|| -> u32 { panic!("in a thread") }).join();
    let payload = joined
        .err()
        .and_then(|p| p.downcast::<&str>().ok())
        .map(|s| *s);
    println!("thread_panic={payload:?}");

    println!("about_to_panic=yes");
    let _g = Guard;
    panic!("uncaught");
}
