//! Load-plan tests: a real PIE (this test binary), hand-built ELFs for every
//! rejection rule, and a mutation fuzz loop that must never panic.

use super::elf::*;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_TLS: u32 = 7;
const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

struct Ph {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn ph(kind: u32, flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
    Ph {
        kind,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
        align: 0x1000,
    }
}

/// A minimal little-endian ELF64 with the given headers; file size `size`.
fn build(machine: u16, etype: u16, entry: u64, phs: &[Ph], size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size.max(64 + 56 * phs.len())];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1; // version
    f[16..18].copy_from_slice(&etype.to_le_bytes());
    f[18..20].copy_from_slice(&machine.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    for (i, p) in phs.iter().enumerate() {
        let o = 64 + 56 * i;
        f[o..o + 4].copy_from_slice(&p.kind.to_le_bytes());
        f[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
        f[o + 8..o + 16].copy_from_slice(&p.offset.to_le_bytes());
        f[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
        f[o + 24..o + 32].copy_from_slice(&p.vaddr.to_le_bytes());
        f[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
        f[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
        f[o + 48..o + 56].copy_from_slice(&p.align.to_le_bytes());
    }
    f
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

fn good_exec() -> Vec<u8> {
    build(
        EM_X86_64,
        ET_EXEC,
        0x401000,
        &[
            ph(PT_LOAD, R, 0, 0x400000, 0x1000, 0x1000),
            ph(PT_LOAD, R | X, 0x1000, 0x401000, 0x1000, 0x1000),
            ph(PT_LOAD, R | W, 0x2000, 0x403000, 0x800, 0x3000),
        ],
        0x3000,
    )
}

#[test]
fn this_test_binary_is_a_valid_pie() {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let plan = LoadPlan::parse(&exe, Machine::X86_64).unwrap();
    assert_eq!(plan.kind, ElfKind::Dyn);
    assert!(plan.interp.as_deref().unwrap().contains("ld-linux"));
    assert!(plan.segments.iter().any(|s| s.perms.execute));
    assert!(plan
        .segments
        .iter()
        .all(|s| !(s.perms.write && s.perms.execute)));
    assert!(plan.phdr.is_some());
    assert!(plan.relro.is_some());
    assert!(plan.span.start.is_multiple_of(PAGE) && plan.span.end.is_multiple_of(PAGE));
    // And it is not an aarch64 program.
    assert_eq!(
        LoadPlan::parse(&exe, Machine::Aarch64),
        Err(ElfError::WrongMachine {
            found: "x86_64",
            want: "aarch64"
        })
    );
}

#[test]
fn static_exec_plan() {
    let plan = LoadPlan::parse(&good_exec(), Machine::X86_64).unwrap();
    assert_eq!(plan.kind, ElfKind::Exec);
    assert_eq!(plan.segments.len(), 3);
    assert_eq!(plan.span, 0x400000..0x406000);
    assert_eq!(plan.phdr, Some(0x400040));
    assert_eq!(plan.interp, None);
    assert!(plan.segments[2].memsz > plan.segments[2].filesz, "bss");
}

#[test]
fn aarch64_machine_is_accepted_for_aarch64() {
    let mut f = good_exec();
    f[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    assert!(LoadPlan::parse(&f, Machine::Aarch64).is_ok());
}

#[test]
fn rejections_name_the_problem() {
    let cases: Vec<(Vec<u8>, ElfError)> = vec![
        (b"#!/bin/sh\n".to_vec(), ElfError::NotElf),
        (
            good_exec()[..40].to_vec(),
            ElfError::Truncated("the ELF header"),
        ),
        (
            {
                let mut f = good_exec();
                f[4] = 1;
                f
            },
            ElfError::Not64Bit,
        ),
        (
            {
                let mut f = good_exec();
                f[5] = 2;
                f
            },
            ElfError::BigEndian,
        ),
        (
            build(
                EM_X86_64,
                1,
                0,
                &[ph(PT_LOAD, R | X, 0, 0, 0x100, 0x100)],
                0x100,
            ),
            ElfError::NotExecutable(1),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x1000,
                &[ph(PT_NOTE, R, 0, 0, 1, 1)],
                0x100,
            ),
            ElfError::NoLoadableSegment,
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400000,
                &[ph(PT_LOAD, R | X, 0, 0x400000, 0x5000, 0x5000)],
                0x1000,
            ),
            ElfError::SegmentOutOfFile(0),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400000,
                &[ph(PT_LOAD, R | X, 0, 0x400000, 0x800, 0x400)],
                0x1000,
            ),
            ElfError::FileLargerThanMemory(0),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400010,
                &[ph(PT_LOAD, R | X, 0x10, 0x400000, 0x100, 0x100)],
                0x1000,
            ),
            ElfError::MisalignedSegment(0),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400000,
                &[
                    ph(PT_LOAD, R | X, 0, 0x400000, 0x1000, 0x2000),
                    ph(PT_LOAD, R, 0x1000, 0x401000, 0x100, 0x100),
                ],
                0x2000,
            ),
            ElfError::SegmentsOverlap(0, 1),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400000,
                &[ph(PT_LOAD, R | W | X, 0, 0x400000, 0x100, 0x100)],
                0x1000,
            ),
            ElfError::WritableAndExecutable(0),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400000,
                &[ph(PT_LOAD, R | X, 0, 0xffff_8000_0000_0000, 0x100, 0x100)],
                0x1000,
            ),
            ElfError::SegmentOutsideUserSpace(0),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x400000,
                &[
                    ph(PT_LOAD, R | X, 0, 0x400000, 0x100, 0x100),
                    ph(PT_LOAD, R | W, 0x1000, 0x4000_0000_0000, 0x100, 0x100),
                ],
                0x2000,
            ),
            ElfError::ImageTooLarge(0x4000_0000_0000 + 0x1000 - 0x400000),
        ),
        (
            build(
                EM_X86_64,
                ET_EXEC,
                0x900000,
                &[ph(PT_LOAD, R | X, 0, 0x400000, 0x100, 0x100)],
                0x1000,
            ),
            ElfError::EntryNotExecutable(0x900000),
        ),
        (
            {
                let mut f = build(
                    EM_X86_64,
                    ET_DYN,
                    0x0,
                    &[
                        ph(PT_INTERP, R, 0x200, 0, 4, 4),
                        ph(PT_LOAD, R | X, 0, 0, 0x1000, 0x1000),
                    ],
                    0x1000,
                );
                f[0x200..0x204].copy_from_slice(b"/ld-");
                f
            },
            ElfError::BadInterpreter("not NUL-terminated"),
        ),
        (
            build(
                EM_X86_64,
                ET_DYN,
                0x0,
                &[
                    ph(PT_LOAD, R | X, 0, 0, 0x1000, 0x1000),
                    ph(PT_TLS, R, 0x2000, 0x2000, 0x10, 0x20),
                ],
                0x1000,
            ),
            ElfError::BadTls("initialisation image outside the loaded file data"),
        ),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        let got = LoadPlan::parse(&bytes, Machine::X86_64);
        assert_eq!(got, Err(want.clone()), "case {i}");
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn too_many_program_headers() {
    let mut f = good_exec();
    f[56..58].copy_from_slice(&1000u16.to_le_bytes());
    assert_eq!(
        LoadPlan::parse(&f, Machine::X86_64),
        Err(ElfError::TooManyHeaders(1000))
    );
}

/// xorshift64*: deterministic, dependency-free mutation source.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn fuzz(rounds: usize) {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let seeds = [good_exec(), exe[..exe.len().min(64 * 1024)].to_vec()];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for round in 0..rounds {
        let mut f = seeds[round % seeds.len()].clone();
        let header_bytes = (64 + 56 * 16).min(f.len());
        for _ in 0..1 + rng.next() % 8 {
            let i = (rng.next() as usize) % header_bytes;
            f[i] = rng.next() as u8;
        }
        if rng.next().is_multiple_of(16) {
            let cut = (rng.next() as usize) % f.len();
            f.truncate(cut);
        }
        // Must return, never panic; an accepted plan must be self-consistent.
        if let Ok(plan) = LoadPlan::parse(&f, Machine::X86_64) {
            assert!(plan.span.start <= plan.span.end);
            assert!(plan.segments.iter().all(|s| s.filesz <= s.memsz));
            assert!(plan
                .segments
                .windows(2)
                .all(|w| w[0].vaddr + w[0].memsz <= w[1].vaddr));
        }
    }
}

/// The bar: 10^6 mutated inputs (about 1.5 s), every run.
#[test]
fn mutated_headers_never_panic() {
    fuzz(1_000_000);
}
