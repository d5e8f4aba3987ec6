//! Real threads on the target: guarded stacks, the context switch, per-CPU
//! scheduler state, preemption, sleeping, wakeups across CPUs, load
//! balancing and secondary-CPU start-up. The decisions are [`CpuSched`]'s
//! (host-tested); this module carries them out. See docs/scheduler.md.
//!
//! Rules that keep it simple:
//! * Every touch of a CPU's scheduler state happens on that CPU with
//!   interrupts off (its spin locks are never contended, only needed to
//!   satisfy the type system). Other CPUs reach it only through
//!   `CpuShared::incoming` and an IPI.
//! * The switch happens in one place, [`switch_threads`]. Preemption
//!   switches from inside the interrupt handler (after the arch sent EOI):
//!   the preempted thread's trap frame stays on its own stack and it
//!   returns through the handler when switched back.
//! * A thread that switched away is kept alive by its CPU's `held` slot
//!   until the next switch there, so a finished thread's stack is never
//!   freed while it is still running on it.
//! * Allocator locks keep interrupts off while held, so an interrupt-time
//!   switch may drop (and free) a finished thread.

use super::cpu::{self as scpu, CpuSched, CpuShared, CpuStats, Reason};
use super::ktimer::{self, Pending};
use super::thread::{State, Thread, ThreadId};
use super::timerlist::TimerList;
use crate::sync::WaitQueue;
use crate::{arch, mm, println, time};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use skiff_arch_api::{Fault, PageFlags};
use spin::mutex::SpinMutex;
use spin::{Mutex, Once};

/// CPUs the kernel schedules on (the arch has per-CPU slots for as many).
pub const MAX_CPUS: usize = 16;
/// Default thread stack.
pub const DEFAULT_STACK_BYTES: usize = 64 * 1024;
/// Stack of the kernel's main thread (boot path and ktests).
pub const MAIN_STACK_BYTES: usize = 256 * 1024;
/// Largest stack `spawn` hands out.
pub const MAX_STACK_BYTES: usize = 512 * 1024;
/// Thread stacks live here, one window per stack: the stack at the top of
/// the window, everything below it (the guard page included) unmapped.
const STACK_AREA: usize = arch::mm::KERNEL_VM_BASE + 0x1_0000_0000;
const STACK_WINDOW: usize = 1 << 20;
const STACK_SLOTS: usize = 1 << 16;
const PAGE: usize = arch::mm::PAGE_SIZE;
/// The IPI number the scheduler uses ("look at your incoming queue").
pub const IPI_RESCHED: u8 = 0;
/// How often a busy CPU looks for an idler one to push work to.
const BALANCE_EVERY_NS: u64 = 10_000_000;
/// How long an idle CPU polls its incoming queue before halting.
const IDLE_POLL_NS: u64 = 20_000;

/// Why a thread (or a CPU) could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// No physical frames for the stack.
    OutOfMemory,
    /// Every stack window is in use.
    TooManyStacks,
    /// The stack could not be mapped.
    Map(skiff_arch_api::MapError),
    /// Stack size zero or above `MAX_STACK_BYTES`.
    BadStackSize,
    /// Pinned to a CPU that does not exist or is not online.
    NoSuchCpu,
    /// The scheduler is not running yet.
    NotStarted,
}

// ---- stacks ----
//
// Stack mappings never change under a running CPU's feet: there is no TLB
// shootdown yet, so a stack VA whose pages were unmapped on one CPU may
// still be cached in another CPU's TLB. Hence finished default-size stacks
// go to a cache, still mapped, and are reused as they are; any other stack
// is unmapped and freed and its VA window retired (never handed out again),
// so a stale translation elsewhere is never used.

/// Next never-used stack window.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Mapped default-size stacks ready for reuse.
static CACHE: Mutex<Vec<RawStack>> = Mutex::new(Vec::new());
const CACHE_MAX: usize = 64;

/// A mapped stack: `pages` frames at `phys` mapped below `top`.
#[derive(Debug, Clone, Copy)]
struct RawStack {
    top: usize,
    phys: u64,
    order: usize,
}

fn default_order() -> usize {
    (DEFAULT_STACK_BYTES / PAGE).trailing_zeros() as usize
}

/// A kernel stack: physically contiguous frames mapped at the top of its
/// window in the stack area, with the page below left unmapped as a guard.
pub struct KStack {
    raw: RawStack,
    /// Pages actually mapped, from the top (all of them once `new` is done).
    mapped: usize,
}

impl KStack {
    pub fn new(bytes: usize) -> Result<KStack, SpawnError> {
        if bytes == 0 || bytes > MAX_STACK_BYTES {
            return Err(SpawnError::BadStackSize);
        }
        let pages = bytes.div_ceil(PAGE).next_power_of_two();
        let order = pages.trailing_zeros() as usize;
        if order == default_order() {
            if let Some(raw) = arch::cpu::without_interrupts(|| CACHE.lock().pop()) {
                return Ok(KStack { raw, mapped: pages });
            }
        }
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        if slot >= STACK_SLOTS {
            return Err(SpawnError::TooManyStacks);
        }
        let phys = mm::alloc_frames(order).map_err(|_| SpawnError::OutOfMemory)?;
        let top = STACK_AREA + (slot + 1) * STACK_WINDOW;
        let mut stack = KStack {
            raw: RawStack { top, phys, order },
            mapped: 0,
        };
        for i in 1..=pages {
            let va = top - i * PAGE;
            // Page-table pages must start zeroed (stale entries would be live).
            let mut tables = || mm::alloc_filled_frame(&mut |_| {}).ok();
            arch::mm::map_page(
                va,
                phys + (va - (top - pages * PAGE)) as u64,
                PageFlags::KERNEL_RW,
                &mut tables,
            )
            .map_err(SpawnError::Map)?;
            stack.mapped = i;
        }
        Ok(stack)
    }

    pub fn top(&self) -> usize {
        self.raw.top
    }

    /// The unmapped page right below the stack.
    pub fn guard(&self) -> Range<usize> {
        let bottom = self.raw.top - (PAGE << self.raw.order);
        bottom - PAGE..bottom
    }
}

impl Drop for KStack {
    fn drop(&mut self) {
        let pages = 1usize << self.raw.order;
        if self.raw.order == default_order() && self.mapped == pages {
            let cached = arch::cpu::without_interrupts(|| {
                let mut c = CACHE.lock();
                (c.len() < CACHE_MAX).then(|| c.push(self.raw)).is_some()
            });
            if cached {
                return;
            }
        }
        for i in 1..=self.mapped {
            arch::mm::unmap_page(self.raw.top - i * PAGE);
        }
        if mm::free_frames(self.raw.phys, self.raw.order).is_err() {
            println!(
                "sched: stack frames at {:#x} were not allocated",
                self.raw.phys
            );
        }
        // The window is retired, not reused (see above).
    }
}

// ---- threads ----

type Entry = Box<dyn FnOnce() + Send>;

/// The target part of a thread.
#[derive(Default)]
pub struct ThreadExt {
    /// Saved registers; only `switch_threads` reaches inside (through a raw
    /// pointer, on the owning CPU with interrupts off).
    ctx: SpinMutex<arch::context::Context>,
    fp: Mutex<Box<arch::fpu::FpState>>,
    stack: Mutex<Option<KStack>>,
    entry: Mutex<Option<Entry>>,
    done: AtomicBool,
    overflowed: AtomicBool,
    joiners: WaitQueue,
}

impl Thread {
    /// True once the thread has finished (returned or was killed).
    pub fn is_done(&self) -> bool {
        self.ext.done.load(Ordering::Acquire)
    }

    /// True if the thread was killed for overflowing its stack.
    pub fn overflowed(&self) -> bool {
        self.ext.overflowed.load(Ordering::Acquire)
    }
}

// ---- per-CPU state ----

/// One CPU's scheduler state. Reached through `arch::percpu::base()`, which
/// holds this CPU's index into `CPUS`.
pub struct PerCpu {
    pub index: u32,
    pub hw_id: u64,
    sched: Mutex<Option<CpuSched>>,
    pub shared: Arc<CpuShared>,
    need_resched: AtomicBool,
    ipi_pending: AtomicBool,
    online: AtomicBool,
    /// Deadlines of this CPU: sleeping threads, timed waits, kernel timers.
    /// Taken with interrupts off only; other CPUs take it to cancel.
    pub(super) timers: SpinMutex<TimerList<Pending>>,
    /// End of the running thread's slice as last decided (0: none), so the
    /// timer can be re-armed when a deadline is added between decisions.
    slice_end_ns: AtomicU64,
    /// The thread last switched away from (kept alive until the next switch).
    held: Mutex<Option<Arc<Thread>>>,
    last_balance: AtomicU64,
    /// The deadline (ns) the hardware timer is armed for, 0 if none: an
    /// unchanged deadline is not re-programmed (it costs microseconds).
    armed_ns: AtomicU64,
    idle_thread: Arc<Thread>,
    /// Interrupt-time entries into the scheduler, for tests.
    pub irq_resched: AtomicU64,
    /// Preemption-off nesting (RCU read sections); preemption waits, blocking
    /// is a bug.
    preempt_off: AtomicU32,
    /// Quiescent states passed: bumped by every decision taken with
    /// preemption on (a switch, a preemption check, idle), never inside an
    /// RCU read section. `synchronize_rcu` waits for every other CPU's to move.
    quiescent: AtomicU64,
}

static CPUS: Once<Vec<PerCpu>> = Once::new();
static SHARED: Once<Vec<Arc<CpuShared>>> = Once::new();
static NEXT_TID: AtomicU64 = AtomicU64::new(1);
static ONLINE: AtomicU32 = AtomicU32::new(0);

fn next_tid() -> ThreadId {
    NEXT_TID.fetch_add(1, Ordering::Relaxed)
}

/// True once `init` ran on the boot CPU.
pub fn started() -> bool {
    CPUS.get().is_some()
}

pub(super) fn cpus() -> &'static [PerCpu] {
    CPUS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The calling CPU's state.
pub(super) fn this_cpu() -> &'static PerCpu {
    &cpus()[arch::percpu::base()]
}

/// The calling CPU's index (0 = boot CPU).
pub fn cpu_index() -> u32 {
    if started() {
        arch::percpu::base() as u32
    } else {
        0
    }
}

/// CPUs known to the scheduler, and how many are running.
pub fn cpu_count() -> u32 {
    cpus().len() as u32
}

pub fn online_cpus() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

fn with_sched<R>(cpu: &PerCpu, f: impl FnOnce(&mut CpuSched) -> R) -> R {
    let mut g = cpu.sched.lock();
    f(g.as_mut().expect("sched: CPU state not initialised"))
}

/// The running thread.
pub fn current() -> Arc<Thread> {
    arch::cpu::without_interrupts(|| with_sched(this_cpu(), |s| s.current().clone()))
}

/// Scheduler counters of CPU `index`: idle time, switches, preemptions.
pub fn cpu_stats(index: u32) -> Option<CpuStats> {
    let cpu = cpus().get(index as usize)?;
    // Account the idle time so far when asked about the calling CPU.
    arch::cpu::without_interrupts(|| cpu.sched.lock().as_ref().map(|s| s.stats))
}

/// Brings the scheduler up on the boot CPU, which keeps running the caller
/// as its idle thread's context until [`run_main`]. `hw_ids` lists every
/// CPU's arch id (boot CPU first).
pub fn init(hw_ids: &[u64]) {
    let now = time::now_ns();
    let n = hw_ids.len().clamp(1, MAX_CPUS);
    let shared: Vec<_> = (0..n as u32).map(|i| Arc::new(CpuShared::new(i))).collect();
    let mut list = Vec::with_capacity(n);
    for (i, sh) in shared.iter().enumerate() {
        let idle = Arc::new(Thread::new(next_tid(), "idle", i as u32, Some(i as u32)));
        let s = CpuSched::new(sh.clone(), idle.clone(), now);
        list.push(PerCpu {
            index: i as u32,
            hw_id: hw_ids[i],
            sched: Mutex::new(Some(s)),
            shared: sh.clone(),
            need_resched: AtomicBool::new(false),
            ipi_pending: AtomicBool::new(false),
            online: AtomicBool::new(i == 0),
            timers: SpinMutex::new(TimerList::with_capacity(64)),
            slice_end_ns: AtomicU64::new(0),
            held: Mutex::new(None),
            last_balance: AtomicU64::new(0),
            armed_ns: AtomicU64::new(0),
            idle_thread: idle,
            irq_resched: AtomicU64::new(0),
            preempt_off: AtomicU32::new(0),
            quiescent: AtomicU64::new(0),
        });
    }
    SHARED.call_once(|| shared);
    CPUS.call_once(|| list);
    // Stacks may be cached from interrupt context: never grow it there.
    CACHE.lock().reserve_exact(CACHE_MAX);
    arch::percpu::set_base(0);
    ONLINE.store(1, Ordering::Release);
    println!("sched: started cpus={n} fpu={}", arch::fpu::mode());
}

/// Starts every other CPU `init` was given; returns how many came up.
pub fn start_secondary_cpus() -> u32 {
    #[cfg(target_arch = "x86_64")]
    match mm::low_page() {
        Some(pa) if arch::smp::set_trampoline_page(pa) => {}
        _ => {
            println!("sched: no trampoline page below 1 MiB; staying on one CPU");
            return 0;
        }
    }
    let mut started = 0;
    for cpu in cpus().iter().skip(1) {
        let stack = match KStack::new(DEFAULT_STACK_BYTES) {
            Ok(s) => s,
            Err(e) => {
                println!("sched: cpu={} stack: {e:?}", cpu.index);
                continue;
            }
        };
        let top = stack.top();
        *cpu.idle_thread.ext.stack.lock() = Some(stack);
        match arch::smp::start_cpu(cpu.hw_id, top, secondary_entry, cpu.index as usize) {
            Ok(()) => {
                // Wait until it runs its idle loop (it sets `online`).
                let t0 = time::now_ns();
                while !cpu.online.load(Ordering::Acquire) && time::now_ns() - t0 < 1_000_000_000 {
                    core::hint::spin_loop();
                }
                if cpu.online.load(Ordering::Acquire) {
                    started += 1;
                } else {
                    println!(
                        "sched: cpu={} hw_id={} never went online",
                        cpu.index, cpu.hw_id
                    );
                }
            }
            Err(e) => println!("sched: cpu={} hw_id={} failed: {e:?}", cpu.index, cpu.hw_id),
        }
    }
    started
}

extern "C" fn secondary_entry(index: usize) -> ! {
    arch::percpu::set_base(index);
    arch::irq::init_this_cpu();
    let cpu = this_cpu();
    // Idle time counts from now, not from `init`.
    arch::cpu::without_interrupts(|| reschedule(Reason::Preempt));
    cpu.online.store(true, Ordering::Release);
    ONLINE.fetch_add(1, Ordering::AcqRel);
    arch::cpu::enable_interrupts();
    idle_loop()
}

/// Runs `main` as the pinned "main" thread on the boot CPU and turns the
/// calling context into the boot CPU's idle thread. Never returns.
pub fn run_main(main: Entry) -> ! {
    match spawn_with("main", main, Some(0), MAIN_STACK_BYTES) {
        Ok(_) => {}
        Err(e) => panic!("sched: cannot start the main thread: {e:?}"),
    }
    arch::cpu::enable_interrupts();
    idle_loop()
}

fn idle_loop() -> ! {
    loop {
        let cpu = this_cpu();
        let t0 = time::now_ns();
        while cpu.shared.incoming.is_empty()
            && !cpu.need_resched.load(Ordering::Relaxed)
            && time::now_ns() - t0 < IDLE_POLL_NS
        {
            arch::cpu::relax();
        }
        arch::cpu::disable_interrupts();
        if cpu.shared.incoming.is_empty() && !cpu.need_resched.load(Ordering::Relaxed) {
            // `sti; hlt`: an IPI or timer between the check and the halt is
            // not lost. The interrupt itself switches to any woken thread.
            arch::cpu::wait_for_interrupt();
            // Not every arch leaves interrupts as it found them here.
            arch::cpu::disable_interrupts();
        }
        reschedule(Reason::Preempt);
        arch::cpu::enable_interrupts();
    }
}

/// Spawns a thread running `f`, with the default stack, on CPU `pin` (hard
/// pinned) or on the least loaded online CPU.
pub fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
    pin: Option<u32>,
) -> Result<Arc<Thread>, SpawnError> {
    spawn_with(name, Box::new(f), pin, DEFAULT_STACK_BYTES)
}

pub fn spawn_with(
    name: &str,
    f: Entry,
    pin: Option<u32>,
    stack_bytes: usize,
) -> Result<Arc<Thread>, SpawnError> {
    if !started() {
        return Err(SpawnError::NotStarted);
    }
    if let Some(p) = pin {
        let ok = cpus()
            .get(p as usize)
            .is_some_and(|c| c.online.load(Ordering::Acquire));
        if !ok {
            return Err(SpawnError::NoSuchCpu);
        }
    }
    let stack = KStack::new(stack_bytes)?;
    let t = Arc::new(Thread::new(next_tid(), name, 0, pin));
    *t.ext.ctx.lock() = arch::context::Context::new(stack.top(), thread_entry, 0);
    *t.ext.stack.lock() = Some(stack);
    *t.ext.entry.lock() = Some(f);
    let target = pin.unwrap_or_else(least_loaded_cpu);
    arch::cpu::without_interrupts(|| {
        let here = this_cpu();
        if target == here.index {
            with_sched(here, |s| s.spawn(t.clone()));
            here.need_resched.store(true, Ordering::Relaxed);
        } else {
            scpu::spawn_remote(t.clone(), &cpus()[target as usize].shared);
            kick(target);
        }
    });
    preempt_point();
    Ok(t)
}

fn least_loaded_cpu() -> u32 {
    let here = cpu_index();
    cpus()
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire))
        .min_by_key(|c| (c.shared.load(), c.index != here))
        .map_or(0, |c| c.index)
}

extern "C" fn thread_entry(_: usize) -> ! {
    let me = current();
    let f = me.ext.entry.lock().take();
    drop(me);
    if let Some(f) = f {
        f();
    }
    exit_current()
}

/// Ends the calling thread: joiners wake, the stack is freed once nothing
/// holds the thread any more.
pub fn exit_current() -> ! {
    arch::cpu::disable_interrupts();
    let me = with_sched(this_cpu(), |s| s.current().clone());
    me.ext.done.store(true, Ordering::Release);
    me.ext.joiners.wake_all();
    drop(me);
    reschedule(Reason::Exit);
    unreachable!("sched: a finished thread was switched back to")
}

/// Waits until `t` has finished.
pub fn join(t: &Thread) {
    t.ext.joiners.wait_until(|| t.is_done());
}

/// Gives the CPU to any other runnable thread here.
pub fn yield_now() {
    arch::cpu::without_interrupts(|| reschedule(Reason::Yield));
}

/// Blocks the calling thread until `deadline_ns` (`time::now_ns` scale).
pub fn sleep_until(deadline_ns: u64) {
    arch::cpu::without_interrupts(|| {
        if time::now_ns() >= deadline_ns {
            return;
        }
        let me = prepare_to_wait();
        // Only the timer wakes a sleeper, and it pops the entry first.
        let _ = ktimer::add_wait_timeout(deadline_ns, &me);
        drop(me);
        reschedule(Reason::Block);
    });
}

/// Blocks the calling thread for `ns` nanoseconds.
pub fn sleep(ns: u64) {
    sleep_until(time::now_ns().saturating_add(ns));
}

/// Marks the calling thread as waiting; the caller then calls [`block`].
/// (For wait queues: set waiting under the queue's lock, then block.)
pub(crate) fn prepare_to_wait() -> Arc<Thread> {
    let me = with_sched(this_cpu(), |s| s.current().clone());
    me.set_timed_out(false);
    me.set_state(State::Waiting);
    me
}

/// Switches away unless a wakeup already arrived. Interrupts must be off.
pub(crate) fn block() {
    reschedule(Reason::Block);
}

/// Ends a wait that `prepare_to_wait` began without blocking (the condition
/// turned out true after the thread queued itself). If a waker already won
/// `Waiting → Waking`, the wakeup is in flight: `block` drains it and keeps
/// this thread running. Interrupts must be off.
pub(crate) fn cancel_wait(me: &Arc<Thread>) {
    if !me.transition(State::Waiting, State::Running) {
        block();
    }
}

/// Raises `t`'s interrupt and wakes it if it sits in an interruptible wait
/// (Dekker pairing with `sync::wait_any`: it sets `interruptible` then
/// checks the interrupt; this sets the interrupt then checks
/// `interruptible`, both SeqCst, so one of them sees the other). Returns
/// whether it woke the thread.
pub fn interrupt(t: &Arc<Thread>) -> bool {
    t.set_interrupt(true);
    t.in_interruptible_wait() && wake(t)
}

/// Wakes `t` if it is waiting: queues it on its CPU and makes that CPU look.
/// Returns false if it was not waiting.
pub fn wake(t: &Arc<Thread>) -> bool {
    wake_with(t, false)
}

/// [`wake`], recording whether it is the wait's deadline that ends it.
pub(super) fn wake_with(t: &Arc<Thread>, timed_out: bool) -> bool {
    let Some(shared) = SHARED.get() else {
        return false;
    };
    match scpu::wake_with(t, shared, timed_out) {
        Some(home) => {
            kick(home);
            true
        }
        None => false,
    }
}

/// Makes CPU `index` look at its incoming queue: the flag when it is this
/// CPU (acted on at the next preemption point), else one IPI (coalesced
/// until the target takes it).
fn kick(index: u32) {
    let here = arch::cpu::without_interrupts(|| arch::percpu::base() as u32);
    let cpu = &cpus()[index as usize];
    if index == here {
        cpu.need_resched.store(true, Ordering::Relaxed);
    } else if !cpu.ipi_pending.swap(true, Ordering::AcqRel) {
        arch::smp::send_ipi(cpu.hw_id, IPI_RESCHED);
    }
}

/// Acts on a pending reschedule if interrupts are on (thread context).
pub fn preempt_point() {
    if !started() || !arch::cpu::interrupts_enabled() {
        return;
    }
    arch::cpu::without_interrupts(|| {
        if this_cpu().need_resched.load(Ordering::Relaxed) {
            reschedule(Reason::Preempt);
        }
    });
}

/// The scheduler's part of the timer interrupt: wake expired sleepers, ask
/// for a decision, and now and then push work to a less loaded CPU.
pub(crate) fn on_timer_interrupt() {
    if !started() {
        return;
    }
    let cpu = this_cpu();
    // The one-shot has fired: nothing is armed any more.
    cpu.armed_ns.store(0, Ordering::Relaxed);
    let now = time::now_ns();
    ktimer::fire_expired(cpu, now);
    cpu.need_resched.store(true, Ordering::Relaxed);
    balance(cpu, now);
}

/// The scheduler's part of an IPI (every IPI, whatever its number: the
/// trap handler does not tell them apart). The arch's own requests (TLB
/// shootdown, stop) are served first.
pub(crate) fn on_ipi() {
    arch::smp::handle_ipi();
    if !started() {
        return;
    }
    let cpu = this_cpu();
    cpu.ipi_pending.store(false, Ordering::Release);
    cpu.need_resched.store(true, Ordering::Relaxed);
}

/// Called at the end of every interrupt handler, interrupts off.
pub(crate) fn interrupt_exit() {
    if !started() {
        return;
    }
    let cpu = this_cpu();
    if cpu.need_resched.load(Ordering::Relaxed) {
        cpu.irq_resched.fetch_add(1, Ordering::Relaxed);
        reschedule(Reason::Preempt);
    }
}

fn balance(cpu: &PerCpu, now: u64) {
    let last = cpu.last_balance.load(Ordering::Relaxed);
    if now.saturating_sub(last) < BALANCE_EVERY_NS || online_cpus() < 2 {
        return;
    }
    cpu.last_balance.store(now, Ordering::Relaxed);
    let Some(target) = cpus()
        .iter()
        .filter(|c| c.index != cpu.index && c.online.load(Ordering::Acquire))
        .min_by_key(|c| c.shared.load())
    else {
        return;
    };
    let moved = with_sched(cpu, |s| {
        s.balance_to(target.index, target.shared.load(), now)
    });
    if let Some(t) = moved {
        target.shared.incoming.push(t);
        kick(target.index);
    }
}

/// Decides and, if needed, switches. Interrupts must be off.
fn reschedule(reason: Reason) {
    let cpu = this_cpu();
    if cpu.preempt_off.load(Ordering::Relaxed) != 0 {
        // Inside an RCU read section: a preemption waits for its end
        // (`preempt_enable`); anything else would break the section.
        assert!(
            reason == Reason::Preempt,
            "sched: blocking or yielding with preemption off (in an RCU read section)"
        );
        return;
    }
    cpu.quiescent.fetch_add(1, Ordering::SeqCst);
    cpu.need_resched.store(false, Ordering::Relaxed);
    let now = time::now_ns();
    let (prev, next, timer_at) = with_sched(cpu, |s| {
        let prev = s.current().clone();
        let d = s.schedule(now, reason);
        (prev, d.switch_to, d.timer_at)
    });
    cpu.slice_end_ns
        .store(timer_at.unwrap_or(0), Ordering::Relaxed);
    arm_timer(cpu, timer_at);
    if let Some(next) = next {
        switch_threads(cpu, prev, next);
    }
}

/// Programs this CPU's one-shot timer for the earliest of the slice end,
/// its first sleeper and (boot CPU) a `time::wait_for_timer` request.
fn arm_timer(cpu: &PerCpu, slice_end: Option<u64>) {
    let sleeper = cpu.timers.lock().first();
    let request = if cpu.index == 0 {
        time::requested_deadline_ns()
    } else {
        None
    };
    let at = [slice_end, sleeper, request].into_iter().flatten().min();
    let want = at.map_or(0, |ns| ns.max(1));
    if cpu.armed_ns.swap(want, Ordering::Relaxed) == want {
        return;
    }
    match at {
        Some(ns) => arch::timer::set_oneshot(time::ns_to_counter(ns)),
        None => arch::timer::cancel(),
    }
}

/// Re-arms this CPU's timer after a deadline was added to its list between
/// decisions (the slice end stays as last decided). Interrupts off.
pub(super) fn refresh_timer(cpu: &PerCpu) {
    let slice_end = match cpu.slice_end_ns.load(Ordering::Relaxed) {
        0 => None,
        ns => Some(ns),
    };
    arm_timer(cpu, slice_end);
}

/// Re-arms the calling CPU's timer (after `time` changed its request) by
/// taking a fresh decision.
pub(crate) fn rearm_timer() {
    if started() {
        arch::cpu::without_interrupts(|| reschedule(Reason::Preempt));
    }
}

/// The one place threads are switched. Interrupts are off.
fn switch_threads(cpu: &PerCpu, prev: Arc<Thread>, next: Arc<Thread>) {
    arch::fpu::save(&mut prev.ext.fp.lock());
    arch::fpu::restore(&next.ext.fp.lock());
    let from = prev.ext.ctx.as_mut_ptr();
    let to = next.ext.ctx.as_mut_ptr() as *const arch::context::Context;
    // Keep `prev` alive until the next switch on this CPU (it may have
    // exited: its stack is in use until `switch` has left it).
    let older = cpu.held.lock().replace(prev);
    drop(older);
    // `next` stays referenced by the CPU's scheduler as its current thread.
    drop(next);
    // SAFETY: interrupts are off; `from` and `to` point into threads kept
    // alive by this CPU (`held` and the scheduler's `current`); `to` was
    // saved by a switch or built by `Context::new` on a live stack, and no
    // other CPU runs it: a thread is only ever resumed by the CPU whose run
    // queue holds it, and it enters that queue only after its own switch
    // away has completed (see docs/scheduler.md, "who resumes a thread").
    #[allow(unsafe_code)]
    unsafe {
        arch::context::switch(from, to)
    };
}

/// The trap handler's check: a fault in a thread stack's guard page kills
/// that thread ("stack overflow in thread NAME") if it is the current one.
/// Returns only if the fault is not a stack overflow.
pub(crate) fn check_stack_overflow(fault: &Fault) {
    if !started() || fault.user {
        return;
    }
    let area = STACK_AREA..STACK_AREA + STACK_SLOTS * STACK_WINDOW;
    if !area.contains(&fault.addr) {
        return;
    }
    let me = with_sched(this_cpu(), |s| s.current().clone());
    let guard = me.ext.stack.lock().as_ref().map(KStack::guard);
    // Anything below the stack in its window is as good as the guard page.
    let in_window = guard.is_some_and(|g| {
        let window_start = g.end - (g.end - STACK_AREA) % STACK_WINDOW;
        (window_start..g.end).contains(&fault.addr)
    });
    if !in_window {
        println!(
            "sched: fault in the stack area addr={:#x} outside the current thread's window",
            fault.addr
        );
        return;
    }
    println!(
        "stack overflow in thread {} (id={} addr={:#x} pc={:#x})",
        me.name, me.id, fault.addr, fault.pc
    );
    me.ext.overflowed.store(true, Ordering::Release);
    drop(me);
    // We are on the arch's fault stack with interrupts off; the thread's
    // own stack is abandoned as it is.
    exit_current()
}

/// Idle and busy time of every online CPU: `(index, idle_ns, switches)`.
pub fn cpu_report() -> Vec<(u32, u64, u64)> {
    cpus()
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire))
        .filter_map(|c| cpu_stats(c.index).map(|s| (c.index, s.idle_ns, s.switches)))
        .collect()
}

/// Disables preemption on the calling CPU (nests) and returns its index;
/// pair with [`preempt_enable`]. While off, the thread must not block or
/// yield. Interrupts stay as they are.
pub fn preempt_disable() -> u32 {
    if !started() {
        return 0;
    }
    arch::cpu::without_interrupts(|| {
        let cpu = this_cpu();
        cpu.preempt_off.fetch_add(1, Ordering::Relaxed);
        cpu.index
    })
}

/// Ends a [`preempt_disable`] on CPU `index` (the same CPU: the thread
/// could not move meanwhile); acts on a preemption that waited.
pub fn preempt_enable(index: u32) {
    let Some(cpu) = cpus().get(index as usize) else {
        return;
    };
    let before = cpu.preempt_off.fetch_sub(1, Ordering::Relaxed);
    debug_assert!(before > 0, "sched: unbalanced preempt_enable");
    if before == 1 && cpu.need_resched.load(Ordering::Relaxed) {
        preempt_point();
    }
}

/// Waits until every other online CPU has passed a quiescent state (a
/// scheduling decision outside any RCU read section) after the call began:
/// an RCU grace period. Other CPUs are kicked (an IPI), so busy or halted
/// ones answer promptly. Must not be called inside a read section.
pub fn synchronize_rcu() {
    if !started() {
        return;
    }
    let me = cpu_index();
    assert!(
        cpus()[me as usize].preempt_off.load(Ordering::Relaxed) == 0,
        "sched: synchronize_rcu inside an RCU read section"
    );
    let gp = super::quiescent::GracePeriod::start(
        cpus()
            .iter()
            .filter(|c| c.index != me && c.online.load(Ordering::Acquire))
            .map(|c| (c.index, c.quiescent.load(Ordering::SeqCst))),
    );
    let mut rounds = 0u32;
    loop {
        let mut waiting = false;
        for i in gp.pending(|i| cpus()[i as usize].quiescent.load(Ordering::SeqCst)) {
            waiting = true;
            kick(i);
        }
        if !waiting {
            return;
        }
        rounds += 1;
        if rounds < 4 {
            yield_now();
        } else {
            sleep(20_000);
        }
    }
}

/// Interrupt-time reschedules taken by CPU `index` (diagnostics).
pub fn irq_reschedules(index: u32) -> u64 {
    cpus()
        .get(index as usize)
        .map_or(0, |c| c.irq_resched.load(Ordering::Relaxed))
}

/// Threads currently queued or running per CPU (load as published).
pub fn cpu_loads() -> Vec<usize> {
    cpus().iter().map(|c| c.shared.load()).collect()
}
