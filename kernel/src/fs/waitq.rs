//! The wait queue file objects wake when their state changes: the kernel's
//! [`crate::sync::WaitQueue`] on the target; on the host (unit tests, no
//! scheduler) a stand-in whose waits spin until the condition holds, so the
//! same file-system code is host-testable with std threads.

#[cfg(target_os = "none")]
pub use crate::sync::WaitQueue;

/// Host stand-in for the kernel wait queue (see the module doc).
#[cfg(not(target_os = "none"))]
#[derive(Default)]
pub struct WaitQueue;

#[cfg(not(target_os = "none"))]
impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue
    }

    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        while !cond() {
            core::hint::spin_loop();
            #[cfg(test)]
            std::thread::yield_now();
        }
    }

    pub fn wake_one(&self) -> bool {
        false
    }

    pub fn wake_all(&self) -> usize {
        0
    }
}
