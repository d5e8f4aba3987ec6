//! Threads and std::sync: Mutex, Condvar, Barrier, mpsc, RwLock, atomics,
//! thread-locals, scoped threads, park/unpark, a named thread.
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, RwLock};
use std::thread;
use std::time::Duration;

thread_local! {
    static COUNTER: Cell<u32> = const { Cell::new(0) };
}

fn main() {
    // Mutex: 4 threads x 10 000 increments.
    let total = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = Arc::clone(&total);
            thread::spawn(move || {
                for _ in 0..10_000 {
                    *t.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    println!("mutex_total={}", *total.lock().unwrap());

    // Condvar: a ping-pong of 100 rounds between two threads.
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let p2 = Arc::clone(&pair);
    let ponger = thread::spawn(move || {
        let (m, cv) = &*p2;
        let mut n = m.lock().unwrap();
        while *n < 200 {
            if *n % 2 == 1 {
                *n += 1;
                cv.notify_all();
            } else {
                n = cv.wait(n).unwrap();
            }
        }
    });
    {
        let (m, cv) = &*pair;
        let mut n = m.lock().unwrap();
        while *n < 200 {
            if *n % 2 == 0 {
                *n += 1;
                cv.notify_all();
            } else {
                n = cv.wait(n).unwrap();
            }
        }
    }
    ponger.join().unwrap();
    println!("condvar_rounds={}", *pair.0.lock().unwrap());
    let (m, cv) = &*pair;
    let (_g, res) = cv
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(30))
        .unwrap();
    println!("wait_timeout_timed_out={}", res.timed_out());

    // Barrier: every thread sees all arrivals before any leaves.
    let barrier = Arc::new(Barrier::new(4));
    let arrived = Arc::new(AtomicUsize::new(0));
    let leaders: usize = (0..4)
        .map(|_| {
            let (b, a) = (Arc::clone(&barrier), Arc::clone(&arrived));
            thread::spawn(move || {
                a.fetch_add(1, Ordering::SeqCst);
                let leader = b.wait().is_leader();
                assert_eq!(a.load(Ordering::SeqCst), 4);
                usize::from(leader)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    println!("barrier_leaders={leaders}");

    // mpsc: 3 producers, bounded and unbounded channels.
    let (tx, rx) = mpsc::channel();
    for p in 0..3u64 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..100u64 {
                tx.send(p * 1000 + i).unwrap();
            }
        });
    }
    drop(tx);
    let (count, sum) = rx.iter().fold((0, 0u64), |(c, s), v| (c + 1, s + v));
    println!("mpsc_count={count} mpsc_sum={sum}");
    let (stx, srx) = mpsc::sync_channel(1);
    let sender = thread::spawn(move || (0..50u32).all(|i| stx.send(i).is_ok()));
    let got: Vec<u32> = srx.iter().collect();
    println!(
        "sync_channel_in_order={} sent_ok={}",
        got == (0..50).collect::<Vec<_>>(),
        sender.join().unwrap()
    );
    println!(
        "recv_timeout={:?}",
        mpsc::channel::<u8>()
            .1
            .recv_timeout(Duration::from_millis(20))
            .err()
    );

    // Thread-locals are per thread.
    COUNTER.with(|c| c.set(7));
    let other = thread::spawn(|| {
        COUNTER.with(|c| c.set(c.get() + 1));
        COUNTER.with(Cell::get)
    })
    .join()
    .unwrap();
    println!("tls_main={} tls_thread={other}", COUNTER.with(Cell::get));

    // RwLock, scoped threads borrowing the stack.
    let data = RwLock::new(vec![1u32, 2, 3]);
    let mut lens = [0usize; 3];
    thread::scope(|s| {
        for l in lens.iter_mut() {
            s.spawn(|| *l = data.read().unwrap().len());
        }
    });
    data.write().unwrap().push(4);
    println!(
        "rwlock_reads={lens:?} after_write={}",
        data.read().unwrap().len()
    );

    // A named thread, park/unpark.
    let named = thread::Builder::new()
        .name("skiff-worker".into())
        .spawn(|| thread::current().name().map(str::to_string))
        .unwrap();
    println!("thread_name={}", named.join().unwrap().unwrap_or_default());
    let flag = Arc::new(AtomicUsize::new(0));
    let f2 = Arc::clone(&flag);
    let parked = thread::spawn(move || {
        while f2.load(Ordering::Acquire) == 0 {
            thread::park();
        }
        f2.load(Ordering::Acquire)
    });
    thread::sleep(Duration::from_millis(10));
    flag.store(5, Ordering::Release);
    parked.thread().unpark();
    println!("unparked_saw={}", parked.join().unwrap());
}
