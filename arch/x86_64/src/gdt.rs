//! The GDT and TSS: flat kernel/user segments in the order `syscall`/`sysret`
//! will want, and a TSS whose IST slots give #DF and NMI their own stacks
//! (each with an unmapped guard page below, see `boot.rs` and `mm.rs`).

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

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

pub(crate) fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] =
            VirtAddr::new(sym_addr!(__df_stack_top) as u64);
        tss.interrupt_stack_table[IST_NMI as usize] =
            VirtAddr::new(sym_addr!(__nmi_stack_top) as u64);
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
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
    // which lives in a static forever.
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
