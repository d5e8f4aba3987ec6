//! The GDT and TSS: flat kernel/user segments in the order `syscall`/`sysret`
//! will want, and a TSS whose IST slots give #DF and NMI their own stacks.
//! The boot CPU's IST stacks have an unmapped guard page below (see
//! `boot.rs` and `mm.rs`); every AP gets its own GDT, TSS and IST stacks
//! (a TSS is marked busy when loaded, so CPUs cannot share one). AP IST
//! stacks are static, 16 KiB each, without guard pages.

use crate::boot::sym_addr;
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

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: [Once<TaskStateSegment>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];
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
    let tss = TSS[slot].call_once(|| {
        let (df, nmi) = ist();
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = VirtAddr::new(df);
        tss.interrupt_stack_table[IST_NMI as usize] = VirtAddr::new(nmi);
        tss.interrupt_stack_table[IST_PAGE_FAULT as usize] = VirtAddr::new(pf_stack_top(slot));
        tss
    });
    let (gdt, sel) = GDT[slot].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        // sysret wants user data right below user code.
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
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
}
