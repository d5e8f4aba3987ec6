//! The program loader (the design card's "linker"): ELF load planning
//! ([`elf`]) and the System V initial stack ([`stack`]). Mapping the plan
//! into the address space comes with the Linux-ABI work; both halves here
//! are pure and host-tested.

pub mod elf;
pub mod stack;

#[cfg(test)]
mod tests;
