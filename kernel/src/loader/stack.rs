//! The System V initial process stack: what `_start` (or the dynamic
//! linker) finds at the stack pointer — `argc`, the `argv` and `envp`
//! pointer arrays, the auxiliary vector, then the strings and `AT_RANDOM`
//! bytes above them. Built as bytes for a known top address, so the layout
//! is tested on the host; the loader copies it into the mapped stack.
//!
//! Layout, from the top down: an 8-byte zero end marker, the `AT_EXECFN`
//! string, the environment strings, the argument strings, the `AT_PLATFORM`
//! string, 16 random bytes, padding, then (16-byte aligned at `argc`) argc,
//! argv[..], NULL, envp[..], NULL, auxv pairs ending with AT_NULL.

use alloc::vec;
use alloc::vec::Vec;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// Largest argv+envp string area we build (Linux's default is 1/4 of the
/// stack rlimit; 2 MiB is ample and bounded).
pub const MAX_STRINGS: usize = 2 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// argv/envp strings exceed [`MAX_STRINGS`] (Linux says E2BIG).
    TooBig,
    /// A string contains a NUL byte.
    EmbeddedNul,
}

/// What goes on the stack besides argv and envp.
#[derive(Debug, Clone)]
pub struct StackSpec<'a> {
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    /// Auxv pairs except the ones this module fills in (AT_RANDOM,
    /// AT_PLATFORM, AT_EXECFN, AT_NULL).
    pub auxv: &'a [(u64, u64)],
    pub random: [u8; 16],
    pub platform: &'a [u8],
    pub execfn: &'a [u8],
}

/// The stack image: `bytes` go at `sp .. top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialStack {
    pub sp: u64,
    pub bytes: Vec<u8>,
}

/// Builds the image for a stack whose highest address is `top` (exclusive,
/// 16-byte aligned).
pub fn build(spec: &StackSpec, top: u64) -> Result<InitialStack, StackError> {
    let strings: usize = spec.argv.iter().chain(spec.envp).map(|s| s.len() + 1).sum();
    if strings > MAX_STRINGS {
        return Err(StackError::TooBig);
    }
    let all = spec
        .argv
        .iter()
        .chain(spec.envp)
        .chain([&spec.platform, &spec.execfn]);
    if all.into_iter().any(|s| s.contains(&0)) {
        return Err(StackError::EmbeddedNul);
    }

    // The string area, filled downwards from the top.
    let mut area: Vec<u8> = Vec::new();
    let mut cursor = top - 8; // end marker
    let mut put = |bytes: &[u8], nul: bool, area: &mut Vec<u8>| -> u64 {
        let len = bytes.len() + usize::from(nul);
        cursor -= len as u64;
        let mut chunk = bytes.to_vec();
        if nul {
            chunk.push(0);
        }
        // `area` is built top-down; prepend.
        area.splice(0..0, chunk);
        cursor
    };
    let execfn = put(spec.execfn, true, &mut area);
    let envs: Vec<u64> = spec
        .envp
        .iter()
        .rev()
        .map(|e| put(e, true, &mut area))
        .collect();
    let args: Vec<u64> = spec
        .argv
        .iter()
        .rev()
        .map(|a| put(a, true, &mut area))
        .collect();
    let platform = put(spec.platform, true, &mut area);
    let random = put(&spec.random, false, &mut area);
    let strings_bottom = cursor;

    let mut auxv: Vec<(u64, u64)> = spec.auxv.to_vec();
    auxv.extend([
        (AT_RANDOM, random),
        (AT_PLATFORM, platform),
        (AT_EXECFN, execfn),
        (AT_NULL, 0),
    ]);
    let words = 1 + args.len() + 1 + envs.len() + 1 + 2 * auxv.len();
    let sp = (strings_bottom - 8 * words as u64) & !15;

    let mut table: Vec<u64> = Vec::with_capacity(words);
    table.push(spec.argv.len() as u64);
    table.extend(args.iter().rev());
    table.push(0);
    table.extend(envs.iter().rev());
    table.push(0);
    for (k, v) in auxv {
        table.extend([k, v]);
    }

    let mut bytes = vec![0u8; (top - sp) as usize];
    for (i, w) in table.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let area_at = (strings_bottom - sp) as usize;
    bytes[area_at..area_at + area.len()].copy_from_slice(&area);
    Ok(InitialStack { sp, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &InitialStack, addr: u64) -> u64 {
        let i = (addr - s.sp) as usize;
        u64::from_le_bytes(s.bytes[i..i + 8].try_into().unwrap())
    }

    fn cstr(s: &InitialStack, addr: u64) -> &[u8] {
        let i = (addr - s.sp) as usize;
        let end = s.bytes[i..].iter().position(|&b| b == 0).unwrap();
        &s.bytes[i..i + end]
    }

    fn spec<'a>(argv: &'a [&'a [u8]], envp: &'a [&'a [u8]]) -> StackSpec<'a> {
        StackSpec {
            argv,
            envp,
            auxv: &[(AT_PAGESZ, 4096), (AT_ENTRY, 0x401000)],
            random: *b"0123456789abcdef",
            platform: b"x86_64",
            execfn: b"/bin/prog",
        }
    }

    #[test]
    fn layout_reads_back_like_libc_would() {
        let top = 0x7fff_0000_0000;
        let argv: [&[u8]; 3] = [b"/bin/prog", b"-x", b"hello world"];
        let envp: [&[u8]; 2] = [b"HOME=/", b"TERM=dumb"];
        let s = build(&spec(&argv, &envp), top).unwrap();
        assert_eq!(s.sp % 16, 0);
        assert_eq!(s.sp + s.bytes.len() as u64, top);
        let mut p = s.sp;
        assert_eq!(word(&s, p), 3);
        p += 8;
        for a in argv {
            assert_eq!(cstr(&s, word(&s, p)), a);
            p += 8;
        }
        assert_eq!(word(&s, p), 0);
        p += 8;
        for e in envp {
            assert_eq!(cstr(&s, word(&s, p)), e);
            p += 8;
        }
        assert_eq!(word(&s, p), 0);
        p += 8;
        let mut aux = Vec::new();
        loop {
            let (k, v) = (word(&s, p), word(&s, p + 8));
            p += 16;
            aux.push((k, v));
            if k == AT_NULL {
                break;
            }
        }
        let get = |key| aux.iter().find(|(k, _)| *k == key).unwrap().1;
        assert_eq!(get(AT_PAGESZ), 4096);
        assert_eq!(cstr(&s, get(AT_EXECFN)), b"/bin/prog");
        assert_eq!(cstr(&s, get(AT_PLATFORM)), b"x86_64");
        let r = (get(AT_RANDOM) - s.sp) as usize;
        assert_eq!(&s.bytes[r..r + 16], b"0123456789abcdef");
        // Every pointer points inside the image.
        for (k, v) in aux {
            if matches!(k, AT_EXECFN | AT_PLATFORM | AT_RANDOM) {
                assert!(v >= s.sp && v < top);
            }
        }
        // The end marker is zero.
        assert_eq!(word(&s, top - 8), 0);
    }

    #[test]
    fn empty_argv_and_env_still_valid() {
        let s = build(&spec(&[], &[]), 0x10_0000).unwrap();
        assert_eq!(word(&s, s.sp), 0);
        assert_eq!(word(&s, s.sp + 8), 0);
        assert_eq!(word(&s, s.sp + 16), 0);
        assert_eq!(s.sp % 16, 0);
    }

    #[test]
    fn oversized_and_nul_strings_are_refused() {
        let big = vec![b'a'; MAX_STRINGS];
        let argv: [&[u8]; 1] = [&big];
        assert_eq!(build(&spec(&argv, &[]), 1 << 40), Err(StackError::TooBig));
        let argv: [&[u8]; 1] = [b"a\0b"];
        assert_eq!(
            build(&spec(&argv, &[]), 1 << 40),
            Err(StackError::EmbeddedNul)
        );
    }
}
