//! ELF load planning: turns an executable's bytes into a [`LoadPlan`] — the
//! segments to map with their permissions, the entry point, the interpreter
//! path, TLS, RELRO and stack flags — after checking everything the loader
//! will rely on. Parsing is done by the `elf` crate (safe, no allocation,
//! fuzzed upstream); the rules about what Skiff agrees to load are here.
//!
//! Nothing is mapped here: the plan is pure data, so every rule is tested on
//! the host against real binaries and against corrupted ones.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use elf::abi;
use elf::endian::LittleEndian;
use elf::ElfBytes;

pub const PAGE: u64 = 4096;
/// More program headers than any real program has; more is an attack.
pub const MAX_PHNUM: usize = 128;
/// Largest image span we agree to reserve (64 GiB).
pub const MAX_SPAN: u64 = 64 << 30;
pub const MAX_INTERP_LEN: usize = 4096;

/// The machine an ELF must be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
}

impl Machine {
    fn em(self) -> u16 {
        match self {
            Machine::X86_64 => abi::EM_X86_64,
            Machine::Aarch64 => abi::EM_AARCH64,
        }
    }

    /// First address above the user half (exclusive).
    pub fn user_limit(self) -> u64 {
        match self {
            Machine::X86_64 => 0x0000_7fff_ffff_f000,
            Machine::Aarch64 => 0x0000_ffff_ffff_f000,
        }
    }

    fn name(em: u16) -> &'static str {
        match em {
            abi::EM_X86_64 => "x86_64",
            abi::EM_AARCH64 => "aarch64",
            abi::EM_386 => "i386",
            abi::EM_ARM => "arm",
            abi::EM_RISCV => "riscv",
            abi::EM_PPC64 => "ppc64",
            abi::EM_S390 => "s390",
            _ => "another architecture",
        }
    }
}

/// Why an ELF was refused. Every variant says what was wrong in terms a
/// user can act on (see the `Display` impl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Truncated(&'static str),
    Malformed(String),
    Not64Bit,
    BigEndian,
    WrongMachine {
        found: &'static str,
        want: &'static str,
    },
    NotExecutable(u16),
    TooManyHeaders(usize),
    NoLoadableSegment,
    SegmentOutOfFile(usize),
    FileLargerThanMemory(usize),
    MisalignedSegment(usize),
    SegmentOutsideUserSpace(usize),
    SegmentsOverlap(usize, usize),
    SegmentsUnordered(usize),
    WritableAndExecutable(usize),
    ImageTooLarge(u64),
    EntryNotExecutable(u64),
    BadInterpreter(&'static str),
    BadTls(&'static str),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ElfError::*;
        match self {
            NotElf => write!(f, "not an ELF file (bad magic)"),
            Truncated(what) => write!(f, "truncated ELF: {what} runs past the end of the file"),
            Malformed(why) => write!(f, "malformed ELF: {why}"),
            Not64Bit => write!(f, "32-bit ELF; Skiff runs 64-bit programs only"),
            BigEndian => write!(f, "big-endian ELF; Skiff runs little-endian programs only"),
            WrongMachine { found, want } => {
                write!(f, "ELF is built for {found}, this kernel runs {want} programs")
            }
            NotExecutable(t) => write!(
                f,
                "ELF type {t} is not an executable (want ET_EXEC or ET_DYN; objects and core files don't run)"
            ),
            TooManyHeaders(n) => write!(f, "{n} program headers (more than {MAX_PHNUM})"),
            NoLoadableSegment => write!(f, "no PT_LOAD segment"),
            SegmentOutOfFile(i) => write!(f, "segment {i} lies outside the file"),
            FileLargerThanMemory(i) => write!(f, "segment {i} has p_filesz > p_memsz"),
            MisalignedSegment(i) => {
                write!(f, "segment {i}: p_vaddr and p_offset disagree modulo the page size")
            }
            SegmentOutsideUserSpace(i) => write!(f, "segment {i} lies outside user space"),
            SegmentsOverlap(a, b) => write!(f, "segments {a} and {b} overlap"),
            SegmentsUnordered(i) => write!(f, "PT_LOAD segment {i} is not in address order"),
            WritableAndExecutable(i) => {
                write!(f, "segment {i} is writable and executable; Skiff maps W^X only")
            }
            ImageTooLarge(n) => write!(f, "image spans {n} bytes (limit {MAX_SPAN})"),
            EntryNotExecutable(e) => {
                write!(f, "entry point {e:#x} is not inside an executable segment")
            }
            BadInterpreter(why) => write!(f, "bad PT_INTERP: {why}"),
            BadTls(why) => write!(f, "bad PT_TLS: {why}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One PT_LOAD, addresses before the load bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub perms: Perms,
}

impl Segment {
    /// Page-aligned virtual range the segment occupies.
    pub fn pages(&self) -> Range<u64> {
        self.vaddr & !(PAGE - 1)..(self.vaddr + self.memsz).next_multiple_of(PAGE)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls {
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// ET_EXEC: loads at its link addresses.
    Exec,
    /// ET_DYN: PIE, static-pie or a shared object (the interpreter); loads at
    /// a bias the loader picks.
    Dyn,
}

/// Everything the loader needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    pub kind: ElfKind,
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Page-aligned span of all segments (before bias).
    pub span: Range<u64>,
    /// Largest PT_LOAD alignment (the bias must honour it).
    pub align: u64,
    pub interp: Option<String>,
    /// Where the program headers are in memory (before bias), for AT_PHDR.
    pub phdr: Option<u64>,
    pub phent: u16,
    pub phnum: u16,
    pub tls: Option<Tls>,
    pub relro: Option<Range<u64>>,
    /// PT_GNU_STACK asked for an executable stack (ignored: stacks are NX).
    pub wants_exec_stack: bool,
}

fn perms(flags: u32) -> Perms {
    Perms {
        read: flags & abi::PF_R != 0,
        write: flags & abi::PF_W != 0,
        execute: flags & abi::PF_X != 0,
    }
}

impl LoadPlan {
    pub fn parse(data: &[u8], machine: Machine) -> Result<Self, ElfError> {
        if data.len() < 4 || data[..4] != abi::ELFMAGIC {
            return Err(ElfError::NotElf);
        }
        if data.len() < 64 {
            return Err(ElfError::Truncated("the ELF header"));
        }
        match data[abi::EI_CLASS] {
            abi::ELFCLASS64 => {}
            abi::ELFCLASS32 => return Err(ElfError::Not64Bit),
            c => return Err(ElfError::Malformed(alloc::format!("EI_CLASS {c}"))),
        }
        if data[abi::EI_DATA] == abi::ELFDATA2MSB {
            return Err(ElfError::BigEndian);
        }
        let phnum = usize::from(u16::from_le_bytes([data[56], data[57]]));
        if phnum > MAX_PHNUM {
            return Err(ElfError::TooManyHeaders(phnum));
        }
        let file = ElfBytes::<LittleEndian>::minimal_parse(data)
            .map_err(|e| ElfError::Malformed(alloc::format!("{e}")))?;
        let eh = &file.ehdr;
        if eh.e_machine != machine.em() {
            return Err(ElfError::WrongMachine {
                found: Machine::name(eh.e_machine),
                want: Machine::name(machine.em()),
            });
        }
        let kind = match eh.e_type {
            abi::ET_EXEC => ElfKind::Exec,
            abi::ET_DYN => ElfKind::Dyn,
            t => return Err(ElfError::NotExecutable(t)),
        };
        let phdrs = file
            .segments()
            .ok_or(ElfError::Truncated("the program header table"))?;
        let limit = machine.user_limit();
        let mut plan = LoadPlan {
            kind,
            entry: eh.e_entry,
            segments: Vec::new(),
            span: 0..0,
            align: PAGE,
            interp: None,
            phdr: None,
            phent: eh.e_phentsize,
            phnum: eh.e_phnum,
            tls: None,
            relro: None,
            wants_exec_stack: false,
        };
        let mut tls_header = None;
        for (i, ph) in phdrs.iter().enumerate() {
            let in_file = ph
                .p_offset
                .checked_add(ph.p_filesz)
                .is_some_and(|end| end <= data.len() as u64);
            match ph.p_type {
                abi::PT_LOAD => {
                    if !in_file {
                        return Err(ElfError::SegmentOutOfFile(i));
                    }
                    if ph.p_filesz > ph.p_memsz {
                        return Err(ElfError::FileLargerThanMemory(i));
                    }
                    if ph.p_align > 1 && !ph.p_align.is_power_of_two() {
                        return Err(ElfError::Malformed(alloc::format!(
                            "segment {i} alignment {} is not a power of two",
                            ph.p_align
                        )));
                    }
                    if ph.p_vaddr % PAGE != ph.p_offset % PAGE {
                        return Err(ElfError::MisalignedSegment(i));
                    }
                    let end = ph.p_vaddr.checked_add(ph.p_memsz);
                    if end.is_none_or(|e| e > limit) {
                        return Err(ElfError::SegmentOutsideUserSpace(i));
                    }
                    let seg = Segment {
                        vaddr: ph.p_vaddr,
                        memsz: ph.p_memsz,
                        offset: ph.p_offset,
                        filesz: ph.p_filesz,
                        perms: perms(ph.p_flags),
                    };
                    if seg.perms.write && seg.perms.execute {
                        return Err(ElfError::WritableAndExecutable(i));
                    }
                    if let Some(prev) = plan.segments.last() {
                        if seg.vaddr < prev.vaddr {
                            return Err(ElfError::SegmentsUnordered(i));
                        }
                        if seg.vaddr < prev.vaddr + prev.memsz {
                            return Err(ElfError::SegmentsOverlap(i - 1, i));
                        }
                    }
                    plan.align = plan.align.max(ph.p_align);
                    plan.segments.push(seg);
                }
                abi::PT_INTERP => {
                    if plan.interp.is_some() {
                        return Err(ElfError::BadInterpreter("more than one PT_INTERP"));
                    }
                    if !in_file {
                        return Err(ElfError::BadInterpreter("outside the file"));
                    }
                    let raw = &data[ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize];
                    let path = raw
                        .split_last()
                        .filter(|(last, _)| **last == 0)
                        .map(|(_, s)| s)
                        .ok_or(ElfError::BadInterpreter("not NUL-terminated"))?;
                    if path.is_empty() || path.len() > MAX_INTERP_LEN || path.contains(&0) {
                        return Err(ElfError::BadInterpreter("empty, too long or embedded NUL"));
                    }
                    let path = core::str::from_utf8(path)
                        .map_err(|_| ElfError::BadInterpreter("not UTF-8"))?;
                    plan.interp = Some(String::from(path));
                }
                abi::PT_PHDR => plan.phdr = Some(ph.p_vaddr),
                abi::PT_TLS => tls_header = Some(ph),
                abi::PT_GNU_RELRO => {
                    plan.relro = ph.p_vaddr.checked_add(ph.p_memsz).map(|e| ph.p_vaddr..e)
                }
                abi::PT_GNU_STACK => plan.wants_exec_stack = ph.p_flags & abi::PF_X != 0,
                _ => {}
            }
        }
        let (first, last) = match (plan.segments.first(), plan.segments.last()) {
            (Some(f), Some(l)) => (f.pages().start, l.pages().end),
            _ => return Err(ElfError::NoLoadableSegment),
        };
        if last - first > MAX_SPAN {
            return Err(ElfError::ImageTooLarge(last - first));
        }
        plan.span = first..last;
        let entry_ok = plan
            .segments
            .iter()
            .any(|s| s.perms.execute && (s.vaddr..s.vaddr + s.memsz).contains(&plan.entry));
        if !entry_ok {
            return Err(ElfError::EntryNotExecutable(plan.entry));
        }
        if let Some(ph) = tls_header {
            if ph.p_filesz > ph.p_memsz {
                return Err(ElfError::BadTls("p_filesz > p_memsz"));
            }
            if ph.p_align > 1 && !ph.p_align.is_power_of_two() {
                return Err(ElfError::BadTls("alignment is not a power of two"));
            }
            let inside = plan
                .segments
                .iter()
                .any(|s| ph.p_vaddr >= s.vaddr && ph.p_vaddr + ph.p_filesz <= s.vaddr + s.filesz);
            if !inside {
                return Err(ElfError::BadTls(
                    "initialisation image outside the loaded file data",
                ));
            }
            plan.tls = Some(Tls {
                vaddr: ph.p_vaddr,
                filesz: ph.p_filesz,
                memsz: ph.p_memsz,
                align: ph.p_align.max(1),
            });
        }
        if plan.phdr.is_none() {
            // No PT_PHDR: the headers are wherever the segment that holds
            // file offset e_phoff maps them.
            let table_end = eh.e_phoff + u64::from(eh.e_phnum) * u64::from(eh.e_phentsize);
            plan.phdr = plan
                .segments
                .iter()
                .find(|s| eh.e_phoff >= s.offset && table_end <= s.offset + s.filesz)
                .map(|s| s.vaddr + (eh.e_phoff - s.offset));
        }
        Ok(plan)
    }
}
