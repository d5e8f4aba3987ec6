//! Devices: bus discovery (PCI, virtio-mmio), the kernel's implementation
//! of the driver HAL (DMA memory, IRQ registration) and the registry of
//! what was found. Being written (issue 5).
