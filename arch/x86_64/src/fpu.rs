//! FP/SIMD state of threads. The kernel itself is soft-float (never touches
//! x87/SSE/AVX registers), so the scheduler saves and restores the state
//! eagerly at every switch: XSAVE/XRSTOR with XCR0 = every x87/SSE/AVX/
//! AVX-512 component the CPU has (and fits [`FpState`]), or FXSAVE/FXRSTOR
//! when the CPU lacks XSAVE. `init_this_cpu` enables the unit on each CPU.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Bytes of save area: the standard XSAVE layout up to the end of the
/// AVX-512 components (x87|SSE|AVX|opmask|ZMM_Hi256|Hi16_ZMM = 2688).
const AREA: usize = 2688;
/// XCR0 components we enable when the CPU has them (bits 0-2, 5-7).
const WANTED_XCR0: u64 = 0b1110_0111;

static USE_XSAVE: AtomicBool = AtomicBool::new(false);
/// XCR0 as set (0 without XSAVE).
static XCR0: AtomicU64 = AtomicU64::new(0);
/// Bytes of the standard-format XSAVE image for `XCR0` (CPUID.0xD.0:EBX),
/// or 512 (FXSAVE).
static IMAGE_SIZE: AtomicU32 = AtomicU32::new(FXSAVE_SIZE as u32);
/// MXCSR bits the CPU accepts (FXSAVE's MXCSR_MASK, 0xffbf if it says 0).
static MXCSR_MASK: AtomicU32 = AtomicU32::new(0xffbf);

/// Bytes of the legacy (FXSAVE) region.
const FXSAVE_SIZE: usize = 512;
/// Offset of MXCSR and of MXCSR_MASK in the legacy region.
const MXCSR: usize = 24;
const MXCSR_MASK_AT: usize = 28;
/// The XSAVE header: XSTATE_BV, XCOMP_BV, then 48 reserved bytes.
const XSAVE_HEADER: usize = 512;
const XSAVE_HEADER_SIZE: usize = 64;

/// How the FP/SIMD state is laid out as a memory image (what a signal
/// frame carries): `xsave` = the standard (non-compacted) XSAVE format of
/// `size` bytes for the `features` of XCR0; else the 512-byte FXSAVE image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub xsave: bool,
    pub size: usize,
    pub features: u64,
}

/// The image layout this CPU uses (fixed once `init_this_cpu` ran).
pub fn layout() -> Layout {
    let xsave = USE_XSAVE.load(Ordering::Relaxed);
    Layout {
        xsave,
        size: IMAGE_SIZE.load(Ordering::Relaxed) as usize,
        features: XCR0.load(Ordering::Relaxed),
    }
}

/// Why [`FpState::set_image`] refused an image: loading it would fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadImage {
    /// Not exactly `layout().size` bytes.
    Size,
    /// MXCSR has bits the CPU reserves.
    Mxcsr,
    /// XSAVE header: a component outside XCR0, a compacted format, or a
    /// non-zero reserved byte.
    Header,
}

/// One thread's FP/SIMD registers (an XSAVE or FXSAVE area).
#[repr(C, align(64))]
pub struct FpState {
    area: [u8; AREA],
}

impl Default for FpState {
    /// The state after FNINIT with MXCSR at its reset value (0x1f80); with
    /// XSAVE, the zero header (XSTATE_BV = 0) means "initial" for all parts.
    fn default() -> Self {
        let mut area = [0u8; AREA];
        area[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW
        area[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR
        FpState { area }
    }
}

impl FpState {
    /// The image (`layout().size` bytes), as `save` left it.
    pub fn image(&self) -> &[u8] {
        &self.area[..layout().size]
    }

    /// Replaces the state with `img` (`layout().size` bytes) after the
    /// checks that make `restore` of it safe: MXCSR within MXCSR_MASK and,
    /// with XSAVE, a standard-format header whose XSTATE_BV is within XCR0
    /// and whose reserved bytes are zero. On error `self` is unchanged.
    pub fn set_image(&mut self, img: &[u8]) -> Result<(), BadImage> {
        let l = layout();
        if img.len() != l.size {
            return Err(BadImage::Size);
        }
        let word = |at: usize| u32::from_le_bytes([img[at], img[at + 1], img[at + 2], img[at + 3]]);
        if word(MXCSR) & !MXCSR_MASK.load(Ordering::Relaxed) != 0 {
            return Err(BadImage::Mxcsr);
        }
        if l.xsave {
            let h = &img[XSAVE_HEADER..XSAVE_HEADER + XSAVE_HEADER_SIZE];
            let bv = u64::from_le_bytes(h[0..8].try_into().unwrap_or([0xff; 8]));
            if bv & !l.features != 0 || h[8..].iter().any(|&b| b != 0) {
                return Err(BadImage::Header);
            }
        }
        self.area[..l.size].copy_from_slice(img);
        Ok(())
    }
}

/// "xsave" or "fxsave", once `init_this_cpu` ran.
pub fn mode() -> &'static str {
    if USE_XSAVE.load(Ordering::Relaxed) {
        "xsave"
    } else {
        "fxsave"
    }
}

/// Turns the FPU/SSE unit on for this CPU (CR0.MP, CR4.OSFXSR/OSXMMEXCPT,
/// CR4.OSXSAVE and XCR0 when XSAVE exists) and loads the initial state.
pub(crate) fn init_this_cpu() {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    let has_xsave = crate::cpuid(1, 0).ecx & (1 << 26) != 0;
    // SAFETY: enabling the FPU and SSE state is what these bits are for;
    // the kernel (soft-float) never executes FP instructions itself.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            // NE: x87 errors raise #MF (vector 16), not the legacy IRQ 13.
            f.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            if has_xsave {
                f.insert(Cr4Flags::OSXSAVE);
            }
        });
    }
    if has_xsave {
        let supported = crate::cpuid(0xd, 0);
        let xcr0 = ((u64::from(supported.edx) << 32) | u64::from(supported.eax)) & WANTED_XCR0;
        // SAFETY: XCR0 only gets components CPUID 0xD says exist; x87 (bit 0)
        // is always among them and SSE (bit 1) with it.
        unsafe { set_xcr0(xcr0 | 0b11) };
        // CPUID.0xD.0:EBX is the area size for the XCR0 just set.
        let need = crate::cpuid(0xd, 0).ebx as usize;
        let mut set = xcr0 | 0b11;
        if need > AREA {
            set = (xcr0 & 0b111) | 0b11;
            // SAFETY: as above, a smaller subset (x87 | SSE | AVX if present).
            unsafe { set_xcr0(set) };
        }
        XCR0.store(set, Ordering::Relaxed);
        IMAGE_SIZE.store(crate::cpuid(0xd, 0).ebx, Ordering::Relaxed);
        USE_XSAVE.store(true, Ordering::Relaxed);
    }
    // SAFETY: resets x87 state; no FP state of any thread is live here.
    unsafe { core::arch::asm!("fninit", options(nomem, nostack)) };
    // The MXCSR bits this CPU accepts, from an FXSAVE image.
    #[repr(C, align(16))]
    struct Legacy([u8; FXSAVE_SIZE]);
    let mut probe = Legacy([0; FXSAVE_SIZE]);
    // SAFETY: 512 bytes, 16-byte aligned, as FXSAVE requires.
    unsafe { core::arch::asm!("fxsave64 [{0}]", in(reg) probe.0.as_mut_ptr(), options(nostack)) };
    let a = &probe.0;
    let mask = u32::from_le_bytes([
        a[MXCSR_MASK_AT],
        a[MXCSR_MASK_AT + 1],
        a[MXCSR_MASK_AT + 2],
        a[MXCSR_MASK_AT + 3],
    ]);
    if mask != 0 {
        MXCSR_MASK.store(mask, Ordering::Relaxed);
    }
}

unsafe fn set_xcr0(v: u64) {
    // SAFETY: forwarded to the caller (valid component bits only).
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") v as u32, in("edx") (v >> 32) as u32,
            options(nomem, nostack))
    };
}

/// Saves this CPU's FP/SIMD registers into `s`. Also for the kernel's
/// own use on the running thread (signal frames): its user registers are
/// live in the CPU while it runs kernel code (soft-float), and a switch in
/// between saves and restores the same values.
pub fn save(s: &mut FpState) {
    let p = s.area.as_mut_ptr();
    if USE_XSAVE.load(Ordering::Relaxed) {
        // SAFETY: `p` is a 64-byte aligned area large enough for the
        // components XCR0 enables (checked in `init_this_cpu`).
        unsafe {
            core::arch::asm!("xsave64 [{0}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX,
                options(nostack))
        };
    } else {
        // SAFETY: 512 bytes, 16-byte aligned, as FXSAVE requires.
        unsafe { core::arch::asm!("fxsave64 [{0}]", in(reg) p, options(nostack)) };
    }
}

/// Loads this CPU's FP/SIMD registers from `s` (on the running thread:
/// its user FP state from now on, e.g. after `rt_sigreturn`).
pub fn restore(s: &FpState) {
    let p = s.area.as_ptr();
    if USE_XSAVE.load(Ordering::Relaxed) {
        // SAFETY: `s` came from `save` or `Default` (valid header: XCOMP_BV
        // = 0, XSTATE_BV within XCR0), 64-byte aligned.
        unsafe {
            core::arch::asm!("xrstor64 [{0}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX,
                options(nostack))
        };
    } else {
        // SAFETY: a valid FXSAVE image (from `save` or `Default`: MXCSR has
        // no reserved bits set).
        unsafe { core::arch::asm!("fxrstor64 [{0}]", in(reg) p, options(nostack)) };
    }
}

/// Test support (ktests): loads XMM0-XMM15 with a pattern derived from
/// `seed`. The kernel never uses these registers, so the values stay until
/// a context switch saves them (or someone else overwrites them).
pub fn test_fill(seed: u64) {
    let pattern = test_pattern(seed);
    // SAFETY: reads 256 bytes from `pattern`; writes only XMM registers,
    // which no kernel code uses (soft-float), so nothing is clobbered that
    // the compiler relies on.
    unsafe {
        core::arch::asm!(
            "movdqu xmm0, [{p}]", "movdqu xmm1, [{p} + 16]", "movdqu xmm2, [{p} + 32]",
            "movdqu xmm3, [{p} + 48]", "movdqu xmm4, [{p} + 64]", "movdqu xmm5, [{p} + 80]",
            "movdqu xmm6, [{p} + 96]", "movdqu xmm7, [{p} + 112]", "movdqu xmm8, [{p} + 128]",
            "movdqu xmm9, [{p} + 144]", "movdqu xmm10, [{p} + 160]", "movdqu xmm11, [{p} + 176]",
            "movdqu xmm12, [{p} + 192]", "movdqu xmm13, [{p} + 208]", "movdqu xmm14, [{p} + 224]",
            "movdqu xmm15, [{p} + 240]",
            p = in(reg) pattern.as_ptr(),
            options(nostack, readonly),
        )
    };
}

/// Test support: true if XMM0-XMM15 still hold `test_fill(seed)`'s pattern.
pub fn test_check(seed: u64) -> bool {
    let mut seen = [0u64; 32];
    // SAFETY: writes 256 bytes into `seen`; only reads XMM registers.
    unsafe {
        core::arch::asm!(
            "movdqu [{p}], xmm0", "movdqu [{p} + 16], xmm1", "movdqu [{p} + 32], xmm2",
            "movdqu [{p} + 48], xmm3", "movdqu [{p} + 64], xmm4", "movdqu [{p} + 80], xmm5",
            "movdqu [{p} + 96], xmm6", "movdqu [{p} + 112], xmm7", "movdqu [{p} + 128], xmm8",
            "movdqu [{p} + 144], xmm9", "movdqu [{p} + 160], xmm10", "movdqu [{p} + 176], xmm11",
            "movdqu [{p} + 192], xmm12", "movdqu [{p} + 208], xmm13", "movdqu [{p} + 224], xmm14",
            "movdqu [{p} + 240], xmm15",
            p = in(reg) seen.as_mut_ptr(),
            options(nostack),
        )
    };
    seen == test_pattern(seed)
}

fn test_pattern(seed: u64) -> [u64; 32] {
    let mut p = [0u64; 32];
    let mut x = seed | 1;
    for v in &mut p {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x;
    }
    p
}
