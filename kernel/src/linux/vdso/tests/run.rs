//! Runs the x86_64 image's code on the (x86_64 Linux) host: the image and
//! a clock page are mapped as the kernel maps them (clock page, then the
//! image read+exec) and its functions are called through the addresses
//! the dynamic table gives. The syscall fallbacks reach the host's Linux,
//! so they are checked against it; the counter path reads the host's TSC
//! with parameters chosen here.
// Calling machine code and mapping memory for it is unsafe by nature;
// this test module is the only place outside the arch edge that does it.
#![allow(unsafe_code)]

use super::super::clock::{offset, MODE_COUNTER};
use super::*;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

type ClockFn = unsafe extern "C" fn(i32, *mut [i64; 2]) -> i64;
type TodFn = unsafe extern "C" fn(*mut [i64; 2], *mut [i32; 2]) -> i64;
type TimeFn = unsafe extern "C" fn(*mut i64) -> i64;
type CpuFn = unsafe extern "C" fn(*mut u32, *mut u32, usize) -> i64;

/// A raw Linux syscall with three arguments.
fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let r: isize;
    // SAFETY: the calls made here (mmap, mprotect, munmap, clock_gettime)
    // touch only memory this module owns.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => r, in("rdi") a, in("rsi") b,
             in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let r: isize;
    // SAFETY: as in `syscall3`.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => r, in("rdi") a[0], in("rsi") a[1],
             in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

fn host_clock(id: i32) -> i64 {
    let mut ts = [0i64; 2];
    assert_eq!(syscall3(228, id as usize, ts.as_mut_ptr() as usize, 0), 0);
    ts[0] * 1_000_000_000 + ts[1]
}

/// The image mapped at `base` with its clock page below.
struct Mapped {
    page: *mut u8,
    base: usize,
    len: usize,
}

impl Mapped {
    fn new() -> Mapped {
        let img = image();
        let text = img.len().next_multiple_of(4096);
        let len = 4096 + text;
        // mmap(NULL, len, RW, MAP_PRIVATE|MAP_ANONYMOUS)
        let p = syscall6(9, [0, len, 3, 0x22, usize::MAX, 0]);
        assert!(p > 0, "mmap: {p}");
        let page = p as *mut u8;
        // SAFETY: `page .. page + len` was just mapped read-write for us.
        unsafe {
            core::ptr::copy_nonoverlapping(img.as_ptr(), page.add(4096), img.len());
        }
        assert_eq!(syscall3(10, p as usize + 4096, text, 5), 0, "mprotect R+X");
        Mapped {
            page,
            base: p as usize + 4096,
            len,
        }
    }

    fn field(&self, off: usize) -> &AtomicU64 {
        // SAFETY: the clock page is ours, 8-aligned fields, mapped RW for
        // the life of `self`.
        unsafe { &*(self.page.add(off) as *const AtomicU64) }
    }

    fn sym(&self, name: &str) -> usize {
        let img = image();
        let d = dynamic(img);
        self.base + lookup(img, &d, name, "LINUX_2.6").unwrap() as usize
    }

    fn clock_gettime(&self, id: i32) -> (i64, [i64; 2]) {
        let f: ClockFn = unsafe { core::mem::transmute(self.sym("__vdso_clock_gettime")) };
        let mut ts = [0i64; 2];
        // SAFETY: the vDSO's clock_gettime, with a valid timespec.
        let r = unsafe { f(id, &mut ts) };
        (r, ts)
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        syscall3(11, self.page as usize, self.len, 0);
    }
}

fn ns(ts: [i64; 2]) -> i64 {
    assert!((0..1_000_000_000).contains(&ts[1]), "tv_nsec {}", ts[1]);
    ts[0] * 1_000_000_000 + ts[1]
}

#[test]
fn syscall_mode_gives_the_kernels_clocks() {
    let m = Mapped::new();
    // The clock page is all zero: MODE_SYSCALL.
    for id in [0, 1, 4, 5, 6, 7] {
        let before = host_clock(id);
        let (r, ts) = m.clock_gettime(id);
        let after = host_clock(id);
        assert_eq!(r, 0);
        assert!((before..=after).contains(&ns(ts)), "clock {id}");
    }
    // Clocks the page never serves go to the syscall too.
    assert_eq!(m.clock_gettime(2).0, 0);
    assert_eq!(m.clock_gettime(99).0, -22, "EINVAL from the kernel");
    assert_eq!(m.clock_gettime(-1).0, -22);
    let tod: TodFn = unsafe { core::mem::transmute(m.sym("gettimeofday")) };
    let mut tv = [0i64; 2];
    let before = host_clock(0) / 1000;
    // SAFETY: valid pointers.
    assert_eq!(unsafe { tod(&mut tv, core::ptr::null_mut()) }, 0);
    assert!(tv[0] * 1_000_000 + tv[1] >= before);
    let getcpu: CpuFn = unsafe { core::mem::transmute(m.sym("__vdso_getcpu")) };
    let mut cpu = u32::MAX;
    // SAFETY: valid pointers.
    assert_eq!(unsafe { getcpu(&mut cpu, core::ptr::null_mut(), 0) }, 0);
    assert!(cpu < 65536);
}

fn rdtsc() -> u64 {
    // SAFETY: reads the TSC.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[test]
fn counter_mode_computes_from_the_page() {
    let m = Mapped::new();
    // ns = ticks since base (mult 2^32), realtime 1e18 later.
    let rt: u64 = 1_000_000_000_000_000_000;
    m.field(offset::BASE).store(rdtsc(), Ordering::Relaxed);
    m.field(offset::MULT).store(1 << 32, Ordering::Relaxed);
    m.field(offset::RT_OFFSET).store(rt, Ordering::Relaxed);
    m.field(offset::MODE).store(MODE_COUNTER, Ordering::Release);
    let mut last = 0;
    for _ in 0..10_000 {
        let (r, ts) = m.clock_gettime(1);
        assert_eq!(r, 0);
        let t = ns(ts);
        assert!(t >= last, "monotonic");
        last = t;
    }
    let lo = m.clock_gettime(1).1;
    let real = m.clock_gettime(0).1;
    let coarse = m.clock_gettime(5).1;
    let hi = m.clock_gettime(6).1;
    assert!(ns(lo) + rt as i64 <= ns(real) && ns(real) <= ns(coarse));
    assert!(ns(coarse) <= ns(hi) + rt as i64);
    // BOOTTIME and MONOTONIC_RAW are the monotonic clock.
    let b = ns(m.clock_gettime(7).1);
    assert!(b >= ns(hi) && ns(m.clock_gettime(4).1) >= b);
    // gettimeofday and time: the realtime clock, truncated.
    let tod: TodFn = unsafe { core::mem::transmute(m.sym("__vdso_gettimeofday")) };
    let time: TimeFn = unsafe { core::mem::transmute(m.sym("time")) };
    let mut tv = [0i64; 2];
    let mut tz = [7i32; 2];
    let r0 = ns(m.clock_gettime(0).1);
    // SAFETY: valid pointers.
    assert_eq!(unsafe { tod(&mut tv, &mut tz) }, 0);
    let mut t = 0i64;
    // SAFETY: valid pointer.
    let secs = unsafe { time(&mut t) };
    let r1 = ns(m.clock_gettime(0).1);
    assert!((0..1_000_000).contains(&tv[1]));
    let us = tv[0] * 1_000_000 + tv[1];
    assert!(r0 / 1000 <= us && us <= r1 / 1000);
    assert_eq!(tz, [0, 0]);
    assert_eq!(secs, t);
    assert!(r0 / 1_000_000_000 <= secs && secs <= r1 / 1_000_000_000);
    // SAFETY: NULL is allowed.
    assert_eq!(unsafe { time(core::ptr::null_mut()) }, secs);
    // clock_getres: 1 ns for the served clocks.
    let res: ClockFn = unsafe { core::mem::transmute(m.sym("clock_getres")) };
    let mut r = [9i64; 2];
    // SAFETY: valid pointers.
    assert_eq!(unsafe { res(1, &mut r) }, 0);
    assert_eq!(r, [0, 1]);
    assert_eq!(unsafe { res(1, core::ptr::null_mut()) }, 0);
    assert_eq!(unsafe { res(99, &mut r) }, -22);
}

#[test]
fn a_reader_waits_out_a_write() {
    let m = Mapped::new();
    m.field(offset::MULT).store(1 << 32, Ordering::Relaxed);
    m.field(offset::MODE).store(MODE_COUNTER, Ordering::Relaxed);
    // A write in progress: the read must not return until it ends, and
    // then with the new base.
    m.field(offset::SEQ).store(1, Ordering::Release);
    let seq = m.field(offset::SEQ) as *const AtomicU64 as usize;
    let base = m.field(offset::BASE) as *const AtomicU64 as usize;
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // SAFETY: the page outlives the thread (joined below).
        let (seq, base) = unsafe { (&*(seq as *const AtomicU64), &*(base as *const AtomicU64)) };
        let now = rdtsc();
        base.store(now, Ordering::Relaxed);
        seq.store(2, Ordering::Release);
        now
    });
    let (r, ts) = m.clock_gettime(1);
    let published = writer.join().unwrap();
    assert_eq!(r, 0);
    // Ticks since the new base: small (the old base 0 would give the whole
    // TSC value).
    assert!(
        (ns(ts) as u64) < rdtsc() - published + 1,
        "read the new page"
    );
}
