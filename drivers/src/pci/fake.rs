//! A configuration space in memory for host tests: functions with BARs
//! that size like real ones, and arbitrary capability lists.

use super::{Bdf, ConfigSpace};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One fake function: 4 KiB of registers plus the BAR size masks.
pub struct FakeFunction {
    pub regs: [u32; 1024],
    /// Per BAR dword: the read-only low bits (flags) and which bits are
    /// writable (the size mask); 0 for an unimplemented BAR.
    pub bar_masks: [u32; 6],
}

#[derive(Default)]
pub struct FakeConfig {
    pub functions: Mutex<BTreeMap<Bdf, FakeFunction>>,
}

impl FakeConfig {
    /// Adds an endpoint with `vendor:device`, class bytes, and BARs given
    /// as (flags, size mask) per dword.
    pub fn add(&self, bdf: Bdf, vendor: u16, device: u16, class: u32, bars: [(u32, u32); 6]) {
        let mut f = FakeFunction {
            regs: [0; 1024],
            bar_masks: [0; 6],
        };
        f.regs[0] = u32::from(vendor) | (u32::from(device) << 16);
        f.regs[2] = class << 8;
        for (i, (flags, mask)) in bars.iter().enumerate() {
            f.regs[4 + i] = *flags;
            f.bar_masks[i] = *mask;
        }
        self.functions.lock().unwrap().insert(bdf, f);
    }

    pub fn set(&self, bdf: Bdf, offset: u16, value: u32) {
        self.functions.lock().unwrap().get_mut(&bdf).unwrap().regs[usize::from(offset / 4)] = value;
    }

    pub fn get(&self, bdf: Bdf, offset: u16) -> u32 {
        self.read32(bdf, offset)
    }
}

impl ConfigSpace for FakeConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        match self.functions.lock().unwrap().get(&bdf) {
            Some(f) => f.regs[usize::from(offset / 4) % 1024],
            None => !0,
        }
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        let mut fs = self.functions.lock().unwrap();
        let Some(f) = fs.get_mut(&bdf) else { return };
        let i = usize::from(offset / 4);
        if (4..10).contains(&i) {
            let mask = f.bar_masks[i - 4];
            let flags = f.regs[i] & !mask & if f.regs[i] & 1 == 1 { 0x3 } else { 0xf };
            f.regs[i] = (value & mask) | flags;
        } else if i == 1 {
            // Status is read-only in this fake.
            f.regs[1] = (f.regs[1] & 0xffff_0000) | (value & 0xffff);
        } else if i < 1024 {
            f.regs[i] = value;
        }
    }
}
