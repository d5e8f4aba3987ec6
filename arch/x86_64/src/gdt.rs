//! The GDT and TSS: flat kernel/user segments in the order `syscall`/`sysret`
//! want (STAR below), a TSS whose IST slots give #DF, NMI and #PF their own
//! stacks and whose rsp0 is the running thread's kernel stack top (updated
//! by `context::switch`), and the per-CPU setup that goes with them: the GS
//! base ([`crate::percpu`]) and the `syscall` MSRs ([`crate::user`]).
//! The boot CPU's IST stacks have an unmapped guard page below (see
//! `boot.rs` and `mm.rs`); every AP gets its own GDT, TSS and IST stacks
//! (a TSS is marked busy when loaded, so CPUs cannot share one). AP IST
//! stacks are static, 16 KiB each, without guard pages.

use crate::boot::sym_addr;
use core::cell::UnsafeCell;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot (0-based, as `set_stack_index` takes it) for double faults.
pub(crate) const IST_DOUBLE_FAULT: u16 = 0;
/// IST slot for NMIs.
pub(crate) const IST_NMI: u16 = 1;
/// IST slot for page faults: a kernel stack overflow faults on the guard
/// page, and the CPU could not push the fault frame on the exhausted stack
/// itself. (A page fault inside the page-fault handler would reuse this
/// stack; the kernel's fault path does not fault.)
pub(crate) const IST_PAGE_FAULT: u16 = 2;
/// CPUs the arch has per-CPU GDT/TSS slots for (slot 0 is the boot CPU).
pub(crate) const MAX_CPUS: usize = 16;
const AP_IST_BYTES: usize = 16 * 1024;

/// Selectors, fixed by the append order in `load`: 0x08 kernel code,
/// 0x10 kernel data, 0x18 user data, 0x20 user code, 0x28 the TSS.
/// `sysretq` loads CS = STAR[63:48] + 16 and SS = STAR[63:48] + 8 (RPL 3),
/// so user data must sit right below user code.
pub(crate) const KERNEL_CS: u16 = 0x08;
pub(crate) const USER_DS: u16 = 0x18 | 3;
pub(crate) const USER_CS: u16 = 0x20 | 3;

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

/// Per-CPU TSSs. rsp0 changes at every thread switch (through the pointer
/// in the CPU's `percpu` block), so they live in an `UnsafeCell`.
struct TssSlots(UnsafeCell<[TaskStateSegment; MAX_CPUS]>);
// SAFETY: slot `i` is set up once by CPU `i` (`load`), then only its rsp0
// is written, by that CPU, from assembly.
unsafe impl Sync for TssSlots {}
static TSS: TssSlots = TssSlots(UnsafeCell::new(
    [const { TaskStateSegment::new() }; MAX_CPUS],
));
/// Byte offset of rsp0 (privilege_stack_table[0]) in the TSS.
const TSS_RSP0_OFFSET: usize = 4;
static GDT: [Once<(GlobalDescriptorTable, Selectors)>; MAX_CPUS] =
    [const { Once::new() }; MAX_CPUS];

#[repr(C, align(16))]
struct IstStacks([[u8; AP_IST_BYTES]; 2]);
/// AP IST stacks; only ever used through the addresses put in each TSS.
static mut AP_IST: [IstStacks; MAX_CPUS] = [const { IstStacks([[0; AP_IST_BYTES]; 2]) }; MAX_CPUS];
#[repr(C, align(16))]
struct PfStack([u8; AP_IST_BYTES]);
/// Page-fault IST stacks, one per CPU slot (the boot CPU's included).
static mut PF_IST: [PfStack; MAX_CPUS] = [const { PfStack([0; AP_IST_BYTES]) }; MAX_CPUS];

fn pf_stack_top(slot: usize) -> u64 {
    (&raw const PF_IST as usize + (slot + 1) * AP_IST_BYTES) as u64
}

pub(crate) fn init() {
    load(0, || {
        (
            sym_addr!(__df_stack_top) as u64,
            sym_addr!(__nmi_stack_top) as u64,
        )
    });
}

/// The GDT/TSS of AP slot `slot` (1..MAX_CPUS), loaded on the calling CPU.
pub(crate) fn init_ap(slot: usize) {
    load(slot.clamp(1, MAX_CPUS - 1), || {
        let base = &raw const AP_IST as usize + slot * core::mem::size_of::<IstStacks>();
        (
            (base + AP_IST_BYTES) as u64,
            (base + 2 * AP_IST_BYTES) as u64,
        )
    });
}

fn load(slot: usize, ist: impl FnOnce() -> (u64, u64)) {
    let tss_ptr = GDT[slot].get().map_or_else(
        || {
            let (df, nmi) = ist();
            // SAFETY: this CPU owns slot `slot` and nothing references its
            // TSS yet (the GDT naming it is built right below).
            let tss = unsafe { &mut (*TSS.0.get())[slot] };
            tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = VirtAddr::new(df);
            tss.interrupt_stack_table[IST_NMI as usize] = VirtAddr::new(nmi);
            tss.interrupt_stack_table[IST_PAGE_FAULT as usize] = VirtAddr::new(pf_stack_top(slot));
            tss as *const TaskStateSegment
        },
        |_| {
            // SAFETY: only the address is taken.
            unsafe { &raw const (*TSS.0.get())[slot] }
        },
    );
    let (gdt, sel) = GDT[slot].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        // sysret wants user data right below user code.
        let udata = gdt.append(Descriptor::user_data_segment());
        let ucode = gdt.append(Descriptor::user_code_segment());
        // SAFETY: the TSS is a static that lives forever; the CPU reads it
        // while we write rsp0 with plain stores (as the hardware expects).
        let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(tss_ptr) });
        debug_assert!(
            code.0 == KERNEL_CS && udata.0 == USER_DS && ucode.0 == USER_CS,
            "gdt: selector order"
        );
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors name the descriptors of the GDT just loaded,
    // which lives in a static forever; each slot's TSS is loaded by one CPU.
    unsafe {
        CS::set_reg(sel.code);
        SS::set_reg(sel.data);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(sel.tss);
    }
    // Loading the null selectors above may clear the bases: set GS now.
    crate::percpu::install(slot, tss_ptr as u64 + TSS_RSP0_OFFSET as u64);
    crate::user::init_this_cpu();
}
