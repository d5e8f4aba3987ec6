//! User mode: the application's threads run at the lowest privilege level
//! in the kernel's one address space (DESIGN.md decision 2). This module is
//! the edge between them and the kernel: the saved user registers, the first
//! entry to user mode, system-call and user-fault entry (through the hooks
//! the kernel registers), the per-thread TLS register, and fault-safe copies
//! to and from user memory. Contract: docs/arch-contract.md, "User mode".
//!
//! SKELETON: signatures only; the arch user-mode work fills the bodies.

use crate::api::Fault;

/// One past the highest user address.
pub const USER_END: usize = 0;

/// The user-mode registers, saved on the thread's kernel stack at every
/// entry from user mode and restored on the way back.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct UserRegs {
    _todo: [usize; 0],
}

impl UserRegs {
    pub fn new(_pc: usize, _sp: usize) -> Self {
        unimplemented!("user mode")
    }
    pub fn pc(&self) -> usize {
        unimplemented!("user mode")
    }
    pub fn set_pc(&mut self, _pc: usize) {
        unimplemented!("user mode")
    }
    pub fn sp(&self) -> usize {
        unimplemented!("user mode")
    }
    pub fn set_sp(&mut self, _sp: usize) {
        unimplemented!("user mode")
    }
    pub fn syscall_nr(&self) -> usize {
        unimplemented!("user mode")
    }
    pub fn syscall_args(&self) -> [usize; 6] {
        unimplemented!("user mode")
    }
    pub fn set_ret(&mut self, _v: usize) {
        unimplemented!("user mode")
    }
    pub fn set_arg(&mut self, _i: usize, _v: usize) {
        unimplemented!("user mode")
    }
    pub fn dump(&self, _out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        unimplemented!("user mode")
    }
}

/// The kernel's entry points from user mode.
pub struct Hooks {
    pub syscall: fn(&mut UserRegs),
    pub fault: fn(&mut UserRegs, &Fault),
    pub return_to_user: fn(&mut UserRegs),
}

pub fn set_hooks(_h: &'static Hooks) {
    unimplemented!("user mode")
}

pub fn enter(_regs: &UserRegs) -> ! {
    unimplemented!("user mode")
}

pub fn tls() -> usize {
    unimplemented!("user mode")
}

pub fn set_tls(_v: usize) {
    unimplemented!("user mode")
}

pub fn copy_from_user(_dst: &mut [u8], _src: usize) -> Result<(), Fault> {
    unimplemented!("user mode")
}

pub fn copy_to_user(_dst: usize, _src: &[u8]) -> Result<(), Fault> {
    unimplemented!("user mode")
}

pub fn copy_cstr_from_user(_buf: &mut [u8], _src: usize) -> Result<Option<usize>, Fault> {
    unimplemented!("user mode")
}
