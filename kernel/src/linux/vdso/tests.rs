//! Host tests of the vDSO image (the one for the host's arch, assembled
//! into this test binary exactly as into the kernel) and of `install`.

use super::*;
use crate::linux::memory::fake::SharedPages;
use crate::mm::vma::AddressSpace;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// What each arch's image must export: (name, version), as glibc and
/// musl look them up.
fn expected() -> &'static [(&'static str, &'static str)] {
    match MACHINE {
        Machine::X86_64 => &[
            ("__vdso_clock_gettime", "LINUX_2.6"),
            ("clock_gettime", "LINUX_2.6"),
            ("__vdso_gettimeofday", "LINUX_2.6"),
            ("gettimeofday", "LINUX_2.6"),
            ("__vdso_time", "LINUX_2.6"),
            ("time", "LINUX_2.6"),
            ("__vdso_clock_getres", "LINUX_2.6"),
            ("clock_getres", "LINUX_2.6"),
            ("__vdso_getcpu", "LINUX_2.6"),
            ("getcpu", "LINUX_2.6"),
        ],
        Machine::Aarch64 => &[
            ("__kernel_clock_gettime", "LINUX_2.6.39"),
            ("__kernel_gettimeofday", "LINUX_2.6.39"),
            ("__kernel_clock_getres", "LINUX_2.6.39"),
        ],
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn cstr(b: &[u8], o: usize) -> &str {
    let end = b[o..].iter().position(|&c| c == 0).unwrap() + o;
    core::str::from_utf8(&b[o..end]).unwrap()
}

/// The SysV ELF hash (`elf_hash`), as glibc and musl compute it.
fn elf_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for &c in name.as_bytes() {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The image as a loader sees it through the program headers only (the
/// way glibc's `setup_vdso` and musl's `vdsosym` read it): the load
/// bias-free addresses of the dynamic tables.
struct Dynamic {
    entries: Vec<(u64, u64)>,
}

impl Dynamic {
    fn get(&self, tag: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == tag).map(|e| e.1)
    }
}

fn dynamic(img: &[u8]) -> Dynamic {
    assert_eq!(&img[..4], b"\x7fELF");
    assert_eq!(img[4], 2, "ELFCLASS64");
    assert_eq!(img[5], 1, "little-endian");
    assert_eq!(u16_at(img, 16), 3, "ET_DYN");
    let em = match MACHINE {
        Machine::X86_64 => 62,
        Machine::Aarch64 => 183,
    };
    assert_eq!(u16_at(img, 18), em);
    let (phoff, phentsize, phnum) = (
        u64_at(img, 32) as usize,
        u16_at(img, 54) as usize,
        u16_at(img, 56) as usize,
    );
    assert_eq!(phentsize, 56);
    let mut load = None;
    let mut dyn_at = None;
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let (ty, flags) = (u32_at(img, p), u32_at(img, p + 4));
        let (off, vaddr, filesz, memsz) = (
            u64_at(img, p + 8),
            u64_at(img, p + 16),
            u64_at(img, p + 32),
            u64_at(img, p + 40),
        );
        match ty {
            1 => {
                assert!(load.is_none(), "one PT_LOAD");
                assert_eq!((off, vaddr), (0, 0), "loaded from its first byte");
                assert_eq!(filesz, img.len() as u64, "PT_LOAD covers the image");
                assert_eq!(memsz, filesz);
                assert_eq!(flags, 5, "R+X, never W");
                load = Some(());
            }
            2 => {
                assert_eq!(off, vaddr);
                assert_eq!(flags & 2, 0, "dynamic read-only");
                dyn_at = Some((off as usize, memsz as usize));
            }
            t => panic!("unexpected program header type {t}"),
        }
    }
    assert!(load.is_some(), "PT_LOAD");
    let (at, size) = dyn_at.expect("PT_DYNAMIC");
    let mut entries = Vec::new();
    for i in 0..size / 16 {
        let (tag, val) = (u64_at(img, at + i * 16), u64_at(img, at + i * 16 + 8));
        if tag == 0 {
            return Dynamic { entries };
        }
        entries.push((tag, val));
    }
    panic!("no DT_NULL");
}

const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_SONAME: u64 = 14;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;

/// Looks `name` up through DT_HASH as glibc does, and checks its version
/// through DT_VERSYM/DT_VERDEF as musl's `checkver` does. The symbol's
/// value (an offset into the image) when found with `version`.
fn lookup(img: &[u8], d: &Dynamic, name: &str, version: &str) -> Option<u64> {
    let hash = d.get(DT_HASH).unwrap() as usize;
    let strtab = d.get(DT_STRTAB).unwrap() as usize;
    let symtab = d.get(DT_SYMTAB).unwrap() as usize;
    let versym = d.get(DT_VERSYM).unwrap() as usize;
    let verdef = d.get(DT_VERDEF).unwrap() as usize;
    let nbucket = u32_at(img, hash) as usize;
    let nchain = u32_at(img, hash + 4) as usize;
    let mut i = u32_at(img, hash + 8 + 4 * (elf_hash(name) as usize % nbucket)) as usize;
    let mut steps = 0;
    while i != 0 {
        assert!(i < nchain, "chain index in range");
        steps += 1;
        assert!(steps <= nchain, "chain loops");
        let s = symtab + 24 * i;
        let (st_name, info, shndx, value) = (
            u32_at(img, s) as usize,
            img[s + 4],
            u16_at(img, s + 6),
            u64_at(img, s + 8),
        );
        if cstr(img, strtab + st_name) == name {
            // musl: FUNC/NOTYPE/OBJECT, GLOBAL/WEAK, defined; glibc: not
            // SHN_ABS (its value would not be relocated).
            assert_eq!(info & 0xf, 2, "{name}: STT_FUNC");
            assert!(matches!(info >> 4, 1 | 2), "{name}: GLOBAL or WEAK");
            assert!(shndx != 0 && shndx < 0xff00, "{name}: in a section");
            let ndx = u16_at(img, versym + 2 * i) & 0x7fff;
            // Walk the version definitions for `ndx` (not the base).
            let mut v = verdef;
            loop {
                let (flags, vndx, vhash) =
                    (u16_at(img, v + 2), u16_at(img, v + 4), u32_at(img, v + 8));
                let (aux, next) = (u32_at(img, v + 12) as usize, u32_at(img, v + 16) as usize);
                if flags & 1 == 0 && vndx == ndx {
                    let vname = cstr(img, strtab + u32_at(img, v + aux) as usize);
                    assert_eq!(vhash, elf_hash(vname), "vd_hash of {vname}");
                    return (vname == version).then_some(value);
                }
                if next == 0 {
                    return None;
                }
                v += next;
            }
        }
        i = u32_at(img, hash + 8 + 4 * nbucket + 4 * i) as usize;
    }
    None
}

#[test]
fn image_is_a_shared_object_with_the_dynamic_table_loaders_need() {
    let img = image();
    let d = dynamic(img);
    for tag in [
        DT_HASH,
        DT_STRTAB,
        DT_SYMTAB,
        DT_STRSZ,
        DT_SYMENT,
        DT_SONAME,
        DT_VERSYM,
        DT_VERDEF,
        DT_VERDEFNUM,
    ] {
        let v = d
            .get(tag)
            .unwrap_or_else(|| panic!("dynamic tag {tag:#x} missing"));
        if ![DT_STRSZ, DT_SYMENT, DT_SONAME, DT_VERDEFNUM].contains(&tag) {
            assert!(v < img.len() as u64, "tag {tag:#x} points inside the image");
        }
    }
    assert_eq!(d.get(DT_SYMENT), Some(24));
    assert_eq!(d.get(DT_VERDEFNUM), Some(2));
    let strtab = d.get(DT_STRTAB).unwrap() as usize;
    assert!(strtab + d.get(DT_STRSZ).unwrap() as usize <= img.len());
    assert_eq!(
        cstr(img, strtab + d.get(DT_SONAME).unwrap() as usize),
        "linux-vdso.so.1"
    );
}

#[test]
fn image_needs_no_relocation() {
    let img = image();
    let d = dynamic(img);
    // DT_RELA DT_RELASZ DT_REL DT_RELSZ DT_TEXTREL DT_JMPREL DT_RELR.
    for tag in [7u64, 8, 17, 18, 22, 23, 36] {
        assert!(d.get(tag).is_none(), "dynamic tag {tag} present");
    }
    let f = elf::ElfBytes::<elf::endian::LittleEndian>::minimal_parse(img).unwrap();
    let (shdrs, _) = f.section_headers_with_strtab().unwrap();
    for sh in shdrs.unwrap().iter() {
        assert!(
            !matches!(sh.sh_type, elf::abi::SHT_REL | elf::abi::SHT_RELA),
            "relocation section"
        );
    }
    // The bytes do not depend on where the kernel was linked: they are
    // the same in every build of this crate, so two copies agree and no
    // word of the headers holds an address outside the image.
    assert_eq!(u64_at(img, 24), 0, "e_entry");
    assert!(u64_at(img, 40) < img.len() as u64, "e_shoff");
}

#[test]
fn every_symbol_resolves_by_hash_with_its_version() {
    let img = image();
    let d = dynamic(img);
    let text = text_range(img);
    for &(name, version) in expected() {
        let at =
            lookup(img, &d, name, version).unwrap_or_else(|| panic!("{name}@{version} not found"));
        assert!(text.contains(&at), "{name} in .text");
        // A wrong version is refused.
        assert_eq!(lookup(img, &d, name, "LINUX_9.9"), None, "{name}@LINUX_9.9");
    }
    assert_eq!(lookup(img, &d, "clock_settime", expected()[0].1), None);
    // Weak aliases share their prefixed symbol's code.
    if MACHINE == Machine::X86_64 {
        for base in [
            "clock_gettime",
            "gettimeofday",
            "time",
            "clock_getres",
            "getcpu",
        ] {
            let p = alloc::format!("__vdso_{base}");
            assert_eq!(
                lookup(img, &d, base, "LINUX_2.6"),
                lookup(img, &d, &p, "LINUX_2.6")
            );
        }
    }
}

/// `.text` by its section header.
fn text_range(img: &[u8]) -> core::ops::Range<u64> {
    let f = elf::ElfBytes::<elf::endian::LittleEndian>::minimal_parse(img).unwrap();
    let sh = f.section_header_by_name(".text").unwrap().expect(".text");
    assert_eq!(
        sh.sh_flags,
        u64::from(elf::abi::SHF_ALLOC | elf::abi::SHF_EXECINSTR)
    );
    sh.sh_addr..sh.sh_addr + sh.sh_size
}

#[test]
fn section_headers_agree_with_the_dynamic_table() {
    // Tools (readelf, gdb) read the sections; check the elf crate finds
    // the same symbols and versions through them.
    let img = image();
    let f = elf::ElfBytes::<elf::endian::LittleEndian>::minimal_parse(img).unwrap();
    let common = f.find_common_data().unwrap();
    let (syms, strs) = (common.dynsyms.unwrap(), common.dynsyms_strs.unwrap());
    let hash = common.sysv_hash.expect("sysv hash");
    let vers = f.symbol_version_table().unwrap().expect("version tables");
    for &(name, version) in expected() {
        let (i, sym) = hash
            .find(name.as_bytes(), &syms, &strs)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} by hash"));
        let d = dynamic(img);
        assert_eq!(Some(sym.st_value), lookup(img, &d, name, version));
        let def = vers.get_definition(i).unwrap().expect("definition");
        let names: Vec<&str> = def.names.map(|n| n.unwrap()).collect();
        assert_eq!(names, [version]);
    }
    assert_eq!(syms.len(), expected().len() + 1);
}

fn memory() -> (Memory, SharedPages) {
    let pages = SharedPages::default();
    let space = AddressSpace::new(PAGE * 16..0x7fff_ffff_f000, 0x7f00_0000_0000, 0x1000_0000);
    (Memory::new(space, Box::new(pages.clone())), pages)
}

#[test]
fn install_maps_vvar_then_vdso_at_a_random_address() {
    let (mem, pages) = memory();
    let mut r = 17u64;
    let mut rnd = || {
        r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
        r >> 11
    };
    let base = install(&mem, MACHINE, &mut rnd).unwrap().unwrap();
    assert_eq!(base % PAGE, 0);
    let img = image();
    let mut got = alloc::vec![0u8; img.len()];
    assert!(pages.read(base, &mut got));
    assert_eq!(got, img, "the image at AT_SYSINFO_EHDR");
    let mut page = [0u8; clock::offset::END];
    assert!(pages.read(base - PAGE, &mut page));
    assert_eq!(page, clock::ClockPage::new().to_bytes());
    // /proc/self/maps: [vvar] r--p then [vdso] r-xp, as on Linux.
    let maps = mem.maps();
    let vvar = maps
        .lines()
        .find(|l| l.ends_with("[vvar]"))
        .expect("[vvar]");
    let vdso = maps
        .lines()
        .find(|l| l.ends_with("[vdso]"))
        .expect("[vdso]");
    assert!(vvar.starts_with(&alloc::format!("{:08x}-{:08x} r--p ", base - PAGE, base)));
    assert!(vdso.starts_with(&alloc::format!("{base:08x}-")));
    assert!(vdso.contains(" r-xp "));
    // Neither is writable by the app.
    assert!(!pages.write(base, &[0]));
    assert!(!pages.write(base - PAGE, &[0]));
    // Another install (another exec) lands elsewhere.
    let (mem2, _) = memory();
    let base2 = install(&mem2, MACHINE, &mut rnd).unwrap().unwrap();
    assert_ne!(base, base2);
}

#[test]
fn install_for_the_other_arch_is_none() {
    let (mem, _) = memory();
    let other = match MACHINE {
        Machine::X86_64 => Machine::Aarch64,
        Machine::Aarch64 => Machine::X86_64,
    };
    assert_eq!(install(&mem, other, &mut || 0).unwrap(), None);
    assert!(!mem.maps().contains("[vdso]"));
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod run;
