//! Inspecting a Linux program (or shared library) on the host before it is
//! packed into an image: is it a 64-bit little-endian Linux ELF for the
//! board's arch, is it an executable or a shared object, what interpreter
//! (`PT_INTERP`) and libraries (`DT_NEEDED`, with `DT_RUNPATH` / `DT_RPATH`)
//! does it ask for. Everything is read from the bytes with bounds checks, so
//! a truncated or hostile file is an [`ElfError`], never a panic.

use crate::boards::Arch;
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;

/// Why a file cannot run as a Linux program on the chosen arch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    #[error("a 32-bit ELF: Skiff runs 64-bit programs only")]
    Not64Bit,
    #[error("a big-endian ELF: Skiff runs little-endian programs only")]
    BigEndian,
    #[error("built for {found}, but the board is {want}")]
    WrongArch { found: String, want: Arch },
    #[error("not a Linux program (ELF OS ABI {0}, expected SYSV or GNU/Linux)")]
    NotLinux(u8),
    #[error("not an executable or shared object (ELF type {0})")]
    NotExecutable(u16),
    #[error("malformed ELF: {0}")]
    Malformed(&'static str),
}

/// ELF type, as far as the loader cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: fixed addresses (classic static or non-PIE).
    Exec,
    /// `ET_DYN`: PIE, static-pie or a shared library.
    Dyn,
}

/// What the packer needs to know about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub kind: ElfKind,
    /// `PT_INTERP`: the dynamic loader's path inside the image.
    pub interp: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` entries (colon-separated in the file).
    pub runpath: Vec<String>,
    /// `DT_RPATH` entries (ignored by ld.so when `DT_RUNPATH` is present).
    pub rpath: Vec<String>,
}

/// A human name for an `e_machine` value.
pub fn machine_name(machine: u16) -> String {
    match machine {
        elf::EM_X86_64 => "x86_64".into(),
        elf::EM_AARCH64 => "aarch64".into(),
        elf::EM_386 => "i386".into(),
        elf::EM_ARM => "arm (32-bit)".into(),
        elf::EM_RISCV => "riscv".into(),
        elf::EM_PPC64 => "ppc64".into(),
        elf::EM_S390 => "s390".into(),
        other => format!("machine {other}"),
    }
}

fn machine_of(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => elf::EM_X86_64,
        Arch::Aarch64 => elf::EM_AARCH64,
    }
}

/// Checks the identification bytes (`e_ident`: class at 4, data at 5, OS
/// ABI at 7) and the machine before anything else,
/// so the error says the most useful thing (32-bit, other arch, ...).
fn check_ident(data: &[u8], arch: Arch) -> Result<(), ElfError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if data.len() < 20 {
        return Err(ElfError::Malformed("truncated ELF header"));
    }
    match data[4] {
        elf::ELFCLASS64 => {}
        elf::ELFCLASS32 => return Err(ElfError::Not64Bit),
        _ => return Err(ElfError::Malformed("bad EI_CLASS")),
    }
    match data[5] {
        elf::ELFDATA2LSB => {}
        elf::ELFDATA2MSB => return Err(ElfError::BigEndian),
        _ => return Err(ElfError::Malformed("bad EI_DATA")),
    }
    let machine = u16::from_le_bytes([data[18], data[19]]);
    if machine != machine_of(arch) {
        return Err(ElfError::WrongArch {
            found: machine_name(machine),
            want: arch,
        });
    }
    match data[7] {
        elf::ELFOSABI_SYSV | elf::ELFOSABI_GNU => Ok(()),
        other => Err(ElfError::NotLinux(other)),
    }
}

/// Splits a colon-separated search path, dropping empty entries.
fn split_path(s: &str) -> Vec<String> {
    s.split(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a 64-bit little-endian Linux ELF for `arch`.
pub fn inspect(data: &[u8], arch: Arch) -> Result<ElfInfo, ElfError> {
    check_ident(data, arch)?;
    let header = elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|_| ElfError::Malformed("truncated ELF header"))?;
    let endian = header
        .endian()
        .map_err(|_| ElfError::Malformed("bad endianness"))?;
    let kind = match header.e_type(endian) {
        elf::ET_EXEC => ElfKind::Exec,
        elf::ET_DYN => ElfKind::Dyn,
        other => return Err(ElfError::NotExecutable(other)),
    };
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|_| ElfError::Malformed("program headers outside the file"))?;
    let mut info = ElfInfo {
        kind,
        interp: None,
        needed: Vec::new(),
        runpath: Vec::new(),
        rpath: Vec::new(),
    };
    let mut dynamic = None;
    for ph in phdrs {
        if let Some(interp) = ph
            .interpreter(endian, data)
            .map_err(|_| ElfError::Malformed("PT_INTERP outside the file or not terminated"))?
        {
            let s = std::str::from_utf8(interp)
                .map_err(|_| ElfError::Malformed("PT_INTERP is not UTF-8"))?;
            if !s.starts_with('/') {
                return Err(ElfError::Malformed("PT_INTERP is not an absolute path"));
            }
            info.interp = Some(s.to_string());
        }
        if let Some(d) = ph
            .dynamic(endian, data)
            .map_err(|_| ElfError::Malformed("PT_DYNAMIC outside the file"))?
        {
            dynamic = Some(d);
        }
    }
    let Some(dynamic) = dynamic else {
        return Ok(info);
    };
    // DT_STRTAB is a virtual address: find the file bytes through PT_LOAD.
    let mut strtab_addr = None;
    let mut strsz = None;
    for d in dynamic {
        match d.tag32(endian) {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_STRTAB) => strtab_addr = Some(d.d_val(endian)),
            Some(elf::DT_STRSZ) => strsz = Some(d.d_val(endian)),
            _ => {}
        }
    }
    let (Some(addr), Some(size)) = (strtab_addr, strsz) else {
        return Ok(info);
    };
    let strtab = phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
        .find_map(|ph| ph.data_range(endian, data, addr, size).ok().flatten())
        .ok_or(ElfError::Malformed(
            "DT_STRTAB is not inside a loaded segment",
        ))?;
    let string = |off: u64| -> Result<String, ElfError> {
        let off = usize::try_from(off).map_err(|_| ElfError::Malformed("bad string offset"))?;
        let bytes = strtab
            .get(off..)
            .ok_or(ElfError::Malformed("dynamic string outside DT_STRTAB"))?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(ElfError::Malformed("dynamic string not terminated"))?;
        std::str::from_utf8(&bytes[..end])
            .map(str::to_string)
            .map_err(|_| ElfError::Malformed("dynamic string is not UTF-8"))
    };
    for d in dynamic {
        match d.tag32(endian) {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_NEEDED) => info.needed.push(string(d.d_val(endian))?),
            Some(elf::DT_RUNPATH) => info.runpath = split_path(&string(d.d_val(endian))?),
            Some(elf::DT_RPATH) => info.rpath = split_path(&string(d.d_val(endian))?),
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF64 little-endian file: `machine`, `e_type`, an
    /// optional PT_INTERP, and a PT_DYNAMIC with `needed` and `runpath`
    /// (string table inside a PT_LOAD mapping the whole file at vaddr 0).
    pub fn fake_elf(
        machine: u16,
        e_type: u16,
        interp: Option<&str>,
        needed: &[&str],
        runpath: Option<&str>,
    ) -> Vec<u8> {
        let phnum = 3usize;
        let mut f = vec![0u8; 64 + phnum * 56];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        // String table.
        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let off = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            off
        };
        let needed_offs: Vec<u64> = needed.iter().map(|n| add(n)).collect();
        let runpath_off = runpath.map(&mut add);
        let interp_off = f.len() as u64;
        let interp_bytes: Vec<u8> = interp
            .map(|s| {
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                v
            })
            .unwrap_or_default();
        f.extend_from_slice(&interp_bytes);
        while !f.len().is_multiple_of(8) {
            f.push(0);
        }
        let strtab_off = f.len() as u64;
        f.extend_from_slice(&strtab);
        while !f.len().is_multiple_of(8) {
            f.push(0);
        }
        let dyn_off = f.len() as u64;
        let mut dyns: Vec<(u64, u64)> = needed_offs
            .iter()
            .map(|&o| (u64::from(elf::DT_NEEDED), o))
            .collect();
        if let Some(o) = runpath_off {
            dyns.push((u64::from(elf::DT_RUNPATH), o));
        }
        dyns.push((u64::from(elf::DT_STRTAB), strtab_off));
        dyns.push((u64::from(elf::DT_STRSZ), strtab.len() as u64));
        dyns.push((0, 0));
        for (t, v) in &dyns {
            f.extend_from_slice(&t.to_le_bytes());
            f.extend_from_slice(&v.to_le_bytes());
        }
        let total = f.len() as u64;
        let mut ph = |i: usize, p_type: u32, off: u64, size: u64| {
            let p = 64 + i * 56;
            f[p..p + 4].copy_from_slice(&p_type.to_le_bytes());
            f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            f[p + 16..p + 24].copy_from_slice(&off.to_le_bytes());
            f[p + 24..p + 32].copy_from_slice(&off.to_le_bytes());
            f[p + 32..p + 40].copy_from_slice(&size.to_le_bytes());
            f[p + 40..p + 48].copy_from_slice(&size.to_le_bytes());
        };
        ph(0, elf::PT_LOAD, 0, total);
        if interp.is_some() {
            ph(1, elf::PT_INTERP, interp_off, interp_bytes.len() as u64);
        } else {
            ph(1, elf::PT_NOTE, 0, 0);
        }
        ph(2, elf::PT_DYNAMIC, dyn_off, (dyns.len() * 16) as u64);
        f
    }

    #[test]
    fn dynamic_program_interp_needed_runpath() {
        let f = fake_elf(
            elf::EM_X86_64,
            elf::ET_DYN,
            Some("/lib64/ld-linux-x86-64.so.2"),
            &["libm.so.6", "libc.so.6"],
            Some("$ORIGIN/../lib::/opt/x"),
        );
        let i = inspect(&f, Arch::X86_64).unwrap();
        assert_eq!(i.kind, ElfKind::Dyn);
        assert_eq!(i.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(i.needed, ["libm.so.6", "libc.so.6"]);
        assert_eq!(i.runpath, ["$ORIGIN/../lib", "/opt/x"]);
        assert!(i.rpath.is_empty());
    }

    #[test]
    fn static_program_has_nothing_to_resolve() {
        let f = fake_elf(elf::EM_AARCH64, elf::ET_EXEC, None, &[], None);
        let i = inspect(&f, Arch::Aarch64).unwrap();
        assert_eq!((i.kind, i.interp, i.needed.len()), (ElfKind::Exec, None, 0));
    }

    #[test]
    fn wrong_arch_names_both() {
        let f = fake_elf(elf::EM_AARCH64, elf::ET_EXEC, None, &[], None);
        let e = inspect(&f, Arch::X86_64).unwrap_err();
        assert_eq!(
            e,
            ElfError::WrongArch {
                found: "aarch64".into(),
                want: Arch::X86_64
            }
        );
        assert_eq!(e.to_string(), "built for aarch64, but the board is x86_64");
    }

    #[test]
    fn not_elf_32_bit_big_endian_other_os() {
        assert_eq!(
            inspect(b"#!/bin/sh\necho hi\n", Arch::X86_64),
            Err(ElfError::NotElf)
        );
        assert_eq!(inspect(b"", Arch::X86_64), Err(ElfError::NotElf));
        let good = fake_elf(elf::EM_X86_64, elf::ET_EXEC, None, &[], None);
        let mut f = good.clone();
        f[4] = 1;
        assert_eq!(inspect(&f, Arch::X86_64), Err(ElfError::Not64Bit));
        let mut f = good.clone();
        f[5] = 2;
        assert_eq!(inspect(&f, Arch::X86_64), Err(ElfError::BigEndian));
        let mut f = good.clone();
        f[7] = 9; // FreeBSD
        assert_eq!(inspect(&f, Arch::X86_64), Err(ElfError::NotLinux(9)));
        let mut f = good;
        f[16] = 1; // ET_REL
        assert_eq!(inspect(&f, Arch::X86_64), Err(ElfError::NotExecutable(1)));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let f = fake_elf(
            elf::EM_X86_64,
            elf::ET_DYN,
            Some("/lib/ld.so"),
            &["libc.so.6"],
            None,
        );
        assert!(inspect(&f, Arch::X86_64).is_ok());
        for len in 0..f.len() {
            let r = inspect(&f[..len], Arch::X86_64);
            assert!(r.is_err(), "truncated at {len} accepted: {r:?}");
        }
    }

    #[test]
    fn corrupt_offsets_are_errors() {
        let mut f = fake_elf(elf::EM_X86_64, elf::ET_DYN, None, &["libc.so.6"], None);
        // Point DT_NEEDED's string offset far outside the table.
        let dyn_start = f.len() - 4 * 16;
        f[dyn_start + 8..dyn_start + 16].copy_from_slice(&0xffff_ffffu64.to_le_bytes());
        assert!(matches!(
            inspect(&f, Arch::X86_64),
            Err(ElfError::Malformed(_))
        ));
    }
}
