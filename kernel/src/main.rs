//! The Skiff kernel binary: names the kernel's entry for the arch crate.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
skiff_kernel::arch::entry!(skiff_kernel::start::kernel_main);

/// Built for the host only so `cargo build --workspace` works; the kernel
/// runs under QEMU via `cargo skiff run`.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("skiff-kernel is a kernel image; boot it with `cargo skiff run`");
    std::process::exit(2);
}
