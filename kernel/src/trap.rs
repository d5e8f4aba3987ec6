//! The kernel's trap handlers, handed to the arch at boot. Interrupts do
//! the least work and return; unexpected faults in the kernel panic with the
//! arch's register dump already printed. Every interrupt ends at the
//! scheduler's preemption point.

use crate::println;
use core::sync::atomic::{AtomicU64, Ordering};
use skiff_arch_api::{Fault, FaultAction, Interrupt, TrapHandler};

pub struct KernelTraps;

pub static KERNEL_TRAPS: KernelTraps = KernelTraps;

static SPURIOUS: AtomicU64 = AtomicU64::new(0);
static DEVICE: AtomicU64 = AtomicU64::new(0);

impl TrapHandler for KernelTraps {
    fn interrupt(&self, irq: Interrupt) {
        match irq {
            Interrupt::Timer => {
                crate::time::on_timer_interrupt();
                crate::sched::on_timer_interrupt();
            }
            Interrupt::Spurious => {
                SPURIOUS.fetch_add(1, Ordering::Relaxed);
            }
            Interrupt::Ipi(_) => {
                crate::sched::on_ipi();
            }
            Interrupt::Device(line) => {
                DEVICE.fetch_add(1, Ordering::Relaxed);
                crate::devices::irq::dispatch(line);
            }
        }
        // Preemption point: may switch threads (see docs/scheduler.md).
        crate::sched::interrupt_exit();
    }

    fn fault(&self, fault: &Fault) -> FaultAction {
        // Kills the current thread (never returns) on a guard-page hit.
        crate::sched::check_stack_overflow(fault);
        println!(
            "trap: unhandled {} access={:?} addr={:#x} pc={:#x} user={} syndrome={:#x}",
            fault.name, fault.access, fault.addr, fault.pc, fault.user, fault.syndrome
        );
        FaultAction::Panic
    }
}

/// Spurious interrupts seen (for diagnostics and tests).
pub fn spurious_count() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}
