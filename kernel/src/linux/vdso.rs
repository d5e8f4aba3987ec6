//! The vDSO: a tiny ELF shared object mapped into the application (found
//! through `AT_SYSINFO_EHDR`) whose `clock_gettime`, `gettimeofday` and
//! `time` read the clock in user mode from a data page the kernel keeps
//! current, so the commonest time calls never enter the kernel. Being
//! written.
