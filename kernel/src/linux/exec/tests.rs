//! exec on fake page tables: the host's own test binary (a PIE with an
//! interpreter) and its dynamic linker, mapped and read back.

use super::*;
use crate::linux::memory::fake::SharedPages;
use crate::loader::stack::{AT_BASE, AT_ENTRY, AT_EXECFN, AT_NULL, AT_PHDR, AT_PHNUM, AT_RANDOM};

fn host_machine() -> Machine {
    if cfg!(target_arch = "aarch64") {
        Machine::Aarch64
    } else {
        Machine::X86_64
    }
}

fn counter_rnd(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x ^ (x >> 29)
    }
}

fn word(p: &SharedPages, addr: u64) -> u64 {
    let mut b = [0u8; 8];
    assert!(p.read(addr, &mut b), "unmapped {addr:#x}");
    u64::from_le_bytes(b)
}

fn cstr(p: &SharedPages, mut addr: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = [0u8];
        assert!(p.read(addr, &mut b));
        if b[0] == 0 {
            return out;
        }
        out.push(b[0]);
        addr += 1;
    }
}

#[test]
fn loads_a_real_pie_and_its_interpreter() {
    let exe_path = std::env::current_exe().unwrap();
    let bytes = std::fs::read(&exe_path).unwrap();
    let exe = Image::parse("/bin/test", 1, 2, &bytes, host_machine()).unwrap();
    assert_eq!(exe.plan.kind, ElfKind::Dyn);
    let interp_bytes = exe.plan.interp.as_ref().and_then(|p| std::fs::read(p).ok());
    let interp = interp_bytes
        .as_deref()
        .map(|b| Image::parse("/lib/ld.so", 1, 3, b, host_machine()).unwrap());
    let argv: [&[u8]; 2] = [b"/bin/test", b"arg"];
    let envp: [&[u8]; 1] = [b"HOME=/"];
    let prog = Program {
        exe,
        interp,
        argv: &argv,
        envp: &envp,
        execfn: "/bin/test",
        machine: host_machine(),
        hwcap: Some((0x1234, 0x56)),
    };
    let pages = SharedPages::default();
    let (mem, st) = load(&prog, Box::new(pages.clone()), &mut counter_rnd(7)).unwrap();
    let plan = &prog.exe.plan;
    let bias = st.layout.bias;
    assert_eq!(bias % plan.align, 0, "bias honours the alignment");
    // Every file byte of every segment is where the plan says.
    for seg in &plan.segments {
        let mut got = vec![0u8; seg.filesz as usize];
        assert!(pages.read(bias + seg.vaddr, &mut got));
        assert_eq!(
            got,
            bytes[seg.offset as usize..(seg.offset + seg.filesz) as usize]
        );
        let g = pages.0.lock();
        let (prot, _) = g.pages.get(&((bias + seg.vaddr) & !0xfff)).unwrap();
        assert_eq!(
            (prot.write, prot.exec),
            (seg.perms.write, seg.perms.execute)
        );
    }
    // The initial stack: argc, argv, envp, auxv.
    let sp = st.sp;
    assert_eq!(sp % 16, 0);
    assert_eq!(word(&pages, sp), 2);
    assert_eq!(cstr(&pages, word(&pages, sp + 8)), b"/bin/test");
    assert_eq!(cstr(&pages, word(&pages, sp + 16)), b"arg");
    assert_eq!(word(&pages, sp + 24), 0);
    assert_eq!(cstr(&pages, word(&pages, sp + 32)), b"HOME=/");
    assert_eq!(word(&pages, sp + 40), 0);
    let mut aux = std::collections::BTreeMap::new();
    let mut p = sp + 48;
    loop {
        let (k, v) = (word(&pages, p), word(&pages, p + 8));
        aux.insert(k, v);
        p += 16;
        if k == AT_NULL {
            break;
        }
    }
    assert_eq!(aux[&AT_ENTRY], bias + plan.entry);
    assert_eq!(aux[&AT_PHNUM], u64::from(plan.phnum));
    assert_eq!(aux[&crate::loader::stack::AT_HWCAP], 0x1234);
    assert_eq!(aux[&crate::loader::stack::AT_HWCAP2], 0x56);
    assert_eq!(cstr(&pages, aux[&AT_EXECFN]), b"/bin/test");
    assert!(pages.read(aux[&AT_RANDOM], &mut [0u8; 16]));
    // AT_PHDR points at the program headers as mapped.
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap());
    assert_eq!(word(&pages, aux[&AT_PHDR]), word_of(&bytes, phoff));
    match (&prog.interp, st.interp_base) {
        (Some(ip), Some(base)) => {
            assert_eq!(aux[&AT_BASE], base);
            assert_eq!(st.pc, base + ip.plan.entry, "starts in the interpreter");
            assert!(base + ip.plan.span.end <= st.layout.mmap_base);
        }
        (None, None) => assert_eq!(st.pc, bias + plan.entry),
        _ => panic!("interpreter mismatch"),
    }
    // The stack is named, with the guard gap below it free.
    let maps = mem.maps();
    assert!(maps.contains("[stack]"), "{maps}");
    let bottom = st.layout.stack_top - crate::linux::process::STACK_SIZE;
    assert!(mem.with(|s, _| s.find(bottom - 1).is_none()));
    assert!(mem.with(|s, _| s.find(bottom - STACK_GUARD_GAP).is_none()));
    // Stack pages below the initial frame are demand-paged, zeroed.
    assert!(!pages.0.lock().pages.contains_key(&bottom));
    mem.fault(bottom, skiff_arch_api::Access::Write, false)
        .unwrap();
    assert_eq!(word(&pages, bottom), 0);
}

fn word_of(b: &[u8], off: u64) -> u64 {
    u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
}

#[test]
fn layout_is_randomised_and_sane() {
    let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let plan = LoadPlan::parse(&bytes, host_machine()).unwrap();
    let a = layout(Machine::X86_64, &plan, &mut counter_rnd(1));
    let b = layout(Machine::X86_64, &plan, &mut counter_rnd(2));
    assert_ne!(a.bias, b.bias);
    assert_ne!(a.stack_top, b.stack_top);
    assert_ne!(a.mmap_base, b.mmap_base);
    for l in [&a, &b] {
        assert_eq!(l.stack_top % PAGE, 0);
        assert!(l.stack_top <= Machine::X86_64.user_limit());
        assert!(l.mmap_base + STACK_GUARD_GAP <= l.stack_top - STACK_SIZE);
        assert!(l.bias + plan.span.end < l.mmap_base);
        assert!(l.brk_start >= l.bias + plan.span.end);
        assert!(l.brk_start - (l.bias + plan.span.end) < 32 << 20);
    }
    let mut exec_plan = plan.clone();
    exec_plan.kind = ElfKind::Exec;
    assert_eq!(
        layout(Machine::X86_64, &exec_plan, &mut counter_rnd(3)).bias,
        0
    );
}

#[test]
fn malformed_program_is_an_elf_error_naming_the_path() {
    let e = Image::parse("/bin/bad", 0, 0, b"#!/bin/sh\n", Machine::X86_64)
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "/bin/bad: not an ELF file (bad magic)");
}

#[test]
fn load_into_replaces_the_whole_address_space() {
    let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let prog = |argv: &'static [&'static [u8]]| Program {
        exe: Image::parse("/bin/test", 1, 2, &bytes, host_machine()).unwrap(),
        interp: None,
        argv,
        envp: &[],
        execfn: "/bin/test",
        machine: host_machine(),
        hwcap: None,
    };
    let pages = SharedPages::default();
    let (mem, first) = load(
        &prog(&[b"one"]),
        Box::new(pages.clone()),
        &mut counter_rnd(1),
    )
    .unwrap();
    // The old program's heap, an mmap and a touched page of each.
    let brk = mem.brk();
    assert_eq!(mem.set_brk(brk + 3 * PAGE), brk + 3 * PAGE);
    mem.fault(brk, skiff_arch_api::Access::Write, false)
        .unwrap();
    let anon = Vma {
        range: 0..0,
        prot: Prot::RW,
        shared: false,
        backing: Backing::Anonymous,
        name: None,
    };
    let extra = mem
        .map_filled(Placement::Hint(0), 4 * PAGE, anon, 0, b"old data")
        .unwrap();
    let second = load_into(&prog(&[b"two", b"args"]), &mem, &mut counter_rnd(2)).unwrap();
    assert_ne!(first.layout, second.layout, "a fresh random layout");
    // Nothing of the old program is left: neither its mapping nor its
    // heap, and every page present belongs to the new map.
    assert!(mem.with(|s, _| s.find(extra).is_none()));
    assert!(!pages.is_mapped(extra));
    assert_eq!(mem.brk(), second.layout.brk_start);
    let present: Vec<u64> = pages.0.lock().pages.keys().copied().collect();
    for va in present {
        assert!(mem.with(|s, _| s.find(va).is_some()), "stray page {va:#x}");
    }
    assert_eq!(mem.maps().matches("[stack]").count(), 1);
    assert_eq!(word(&pages, second.sp), 2, "the new argc");
}
