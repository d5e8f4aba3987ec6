//! The arch-neutral parts of `execve` that look at what the caller hands
//! in: copying `argv`/`envp` from user memory within Linux's limits
//! (`E2BIG`, `EFAULT`), and the `#!` line of a script (Linux's
//! `binfmt_script`, byte for byte).

use crate::errno::{Errno, KResult};
use crate::linux::Ctx;
use alloc::vec::Vec;

/// Longest single argument or environment string, NUL included (Linux
/// `MAX_ARG_STRLEN`: 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The floor of the total limit whatever `RLIMIT_STACK` says (Linux
/// `ARG_MAX`: 32 pages).
pub const ARG_MIN_LIMIT: u64 = 32 * 4096;
/// Linux's `_STK_LIM`: the limit is at most 3/4 of it.
const STK_LIM: u64 = 8 << 20;
const PTR: u64 = 8;

/// Bytes `argv` and `envp` strings plus their pointers may take for a
/// stack limit of `rlimit_stack` (Linux `bprm_stack_limits`: a quarter of
/// the stack limit, at most 6 MiB, at least 128 KiB).
pub fn total_limit(rlimit_stack: u64) -> u64 {
    (rlimit_stack / 4).clamp(ARG_MIN_LIMIT, STK_LIM / 4 * 3)
}

/// The strings of one `execve`, with the room left under the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strings {
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
}

/// Reads a NUL-terminated pointer array at `addr` (NULL: empty), at most
/// `max` entries (more: `E2BIG`).
fn read_ptrs(ctx: &mut dyn Ctx, addr: usize, max: u64) -> KResult<Vec<usize>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    loop {
        let mut w = [0u8; 8];
        let at = addr
            .checked_add(out.len() * PTR as usize)
            .ok_or(Errno::EFAULT)?;
        ctx.copy_in(at, &mut w)?;
        let p = u64::from_le_bytes(w) as usize;
        if p == 0 {
            return Ok(out);
        }
        if out.len() as u64 >= max {
            return Err(Errno::E2BIG);
        }
        out.push(p);
    }
}

/// Copies the string at `addr` (without its NUL), a page at a time so a
/// string ending just before an unmapped page reads fine. `E2BIG` past
/// [`MAX_ARG_STRLEN`] or past `room` bytes (NUL included).
pub fn read_string(ctx: &mut dyn Ctx, addr: usize, room: u64) -> KResult<Vec<u8>> {
    let max = (MAX_ARG_STRLEN as u64).min(room) as usize;
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let page_end = (at | 0xfff).checked_add(1).ok_or(Errno::EFAULT)?;
        let n = (page_end - at).min(max - out.len());
        let mut buf = alloc::vec![0u8; n];
        ctx.copy_in(at, &mut buf)?;
        if let Some(i) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..i]);
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        if out.len() >= max {
            return Err(Errno::E2BIG);
        }
        at = page_end;
    }
}

/// Copies `argv` and `envp` in, as Linux does: both pointer arrays first
/// (counted against the limit), then the strings, each at most
/// [`MAX_ARG_STRLEN`], all of them within [`total_limit`].
pub fn copy_strings(
    ctx: &mut dyn Ctx,
    argv: usize,
    envp: usize,
    rlimit_stack: u64,
) -> KResult<Strings> {
    let limit = total_limit(rlimit_stack);
    let max_ptrs = limit / PTR;
    let argv_p = read_ptrs(ctx, argv, max_ptrs)?;
    let envp_p = read_ptrs(ctx, envp, max_ptrs)?;
    // An empty argv still gets one (empty) argument: count it.
    let ptr_bytes = (argv_p.len().max(1) + envp_p.len()) as u64 * PTR;
    if ptr_bytes >= limit {
        return Err(Errno::E2BIG);
    }
    let mut room = limit - ptr_bytes;
    let mut take = |ctx: &mut dyn Ctx, ptrs: &[usize]| -> KResult<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(ptrs.len());
        for &p in ptrs {
            let s = read_string(ctx, p, room)?;
            room -= s.len() as u64 + 1;
            out.push(s);
        }
        Ok(out)
    };
    let mut argv = take(ctx, &argv_p)?;
    let envp = take(ctx, &envp_p)?;
    if argv.is_empty() {
        // Linux 5.18+: a program never sees argc == 0.
        argv.push(Vec::new());
    }
    Ok(Strings { argv, envp })
}

/// How many bytes of a file the `#!` parser looks at (`BINPRM_BUF_SIZE`).
pub const SHEBANG_BUF: usize = 256;

/// A parsed `#!` line: the interpreter and its one optional argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    pub interp: Vec<u8>,
    pub arg: Option<Vec<u8>>,
}

fn spacetab(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn terminator(b: u8) -> bool {
    spacetab(b) || b == 0
}

/// Parses the start of a file as `binfmt_script` does. `None`: not a
/// script (no `#!`); `Err(ENOEXEC)`: a `#!` line without an interpreter,
/// or whose interpreter name does not fit in the first 256 bytes.
/// Everything after the interpreter name, trimmed at both ends, is the
/// one argument (spaces inside it are kept, as on Linux).
pub fn parse_shebang(head: &[u8]) -> Option<KResult<Shebang>> {
    if !head.starts_with(b"#!") {
        return None;
    }
    Some(parse_line(head))
}

fn parse_line(head: &[u8]) -> KResult<Shebang> {
    let mut buf = [0u8; SHEBANG_BUF];
    let n = head.len().min(SHEBANG_BUF);
    buf[..n].copy_from_slice(&head[..n]);
    // Linux keeps the last byte for a terminator.
    let buf_end = SHEBANG_BUF - 1;
    let mut end = match buf.iter().position(|&b| b == b'\n') {
        Some(i) => i,
        None => {
            let first = (2..buf_end)
                .find(|&i| !spacetab(buf[i]))
                .ok_or(Errno::ENOEXEC)?;
            // No terminator after the name: it was cut off.
            if !(first..buf_end).any(|i| terminator(buf[i])) {
                return Err(Errno::ENOEXEC);
            }
            buf_end
        }
    };
    while end > 2 && spacetab(buf[end - 1]) {
        end -= 1;
    }
    let name = (2..end)
        .find(|&i| !spacetab(buf[i]))
        .ok_or(Errno::ENOEXEC)?;
    let sep = (name..end).find(|&i| terminator(buf[i]));
    let name_end = sep.unwrap_or(end);
    let arg = match sep {
        Some(s) if buf[s] != 0 => (s..end).find(|&i| !spacetab(buf[i])).map(|a| {
            // The argument is a C string: it stops at a NUL.
            let stop = (a..end).find(|&i| buf[i] == 0).unwrap_or(end);
            buf[a..stop].to_vec()
        }),
        _ => None,
    };
    Ok(Shebang {
        interp: buf[name..name_end].to_vec(),
        arg,
    })
}

/// The argv a script runs with: the interpreter, its argument, the
/// script's path as given to `execve`, then the script's own arguments
/// after `argv[0]`.
pub fn script_argv(sb: &Shebang, script: &[u8], argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(argv.len() + 2);
    out.push(sb.interp.clone());
    if let Some(a) = &sb.arg {
        out.push(a.clone());
    }
    out.push(script.to_vec());
    out.extend(argv.iter().skip(1).cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::process::fake::FakeCtx;

    fn sb(line: &[u8]) -> Option<KResult<Shebang>> {
        parse_shebang(line)
    }

    fn ok(interp: &str, arg: Option<&str>) -> Option<KResult<Shebang>> {
        Some(Ok(Shebang {
            interp: interp.as_bytes().to_vec(),
            arg: arg.map(|a| a.as_bytes().to_vec()),
        }))
    }

    #[test]
    fn shebang_lines_parse_like_linux() {
        assert_eq!(sb(b"\x7fELF"), None);
        assert_eq!(sb(b"# comment"), None);
        assert_eq!(sb(b"#!/bin/sh\necho hi\n"), ok("/bin/sh", None));
        assert_eq!(sb(b"#! /bin/sh \n"), ok("/bin/sh", None));
        assert_eq!(
            sb(b"#!/usr/bin/env python3\n"),
            ok("/usr/bin/env", Some("python3"))
        );
        // One argument: the rest of the line, inner spaces kept.
        assert_eq!(
            sb(b"#!/bin/awk -f  -x y \t\n"),
            ok("/bin/awk", Some("-f  -x y"))
        );
        assert_eq!(sb(b"#!\t/bin/sh\t-e\n"), ok("/bin/sh", Some("-e")));
        // No newline in the file: the name still ends before the buffer does.
        assert_eq!(sb(b"#!/bin/sh"), ok("/bin/sh", None));
        assert_eq!(sb(b"#!/bin/sh -x"), ok("/bin/sh", Some("-x")));
        // No interpreter.
        assert_eq!(sb(b"#!\n"), Some(Err(Errno::ENOEXEC)));
        assert_eq!(sb(b"#!   \t \n"), Some(Err(Errno::ENOEXEC)));
        // Just `#!` in the file: the name is the empty string (opening it
        // then fails with ENOENT), as on Linux.
        assert_eq!(sb(b"#!"), ok("", None));
    }

    #[test]
    fn a_shebang_name_cut_off_by_the_buffer_is_enoexec() {
        let mut long = b"#!/".to_vec();
        long.extend(core::iter::repeat_n(b'a', 300));
        assert_eq!(sb(&long), Some(Err(Errno::ENOEXEC)));
        // A long argument is cut at 255 bytes instead.
        let mut arg = b"#!/bin/sh ".to_vec();
        arg.extend(core::iter::repeat_n(b'b', 300));
        let got = sb(&arg).unwrap().unwrap();
        assert_eq!(got.interp, b"/bin/sh");
        assert_eq!(got.arg.unwrap().len(), SHEBANG_BUF - 1 - 10);
    }

    #[test]
    fn script_argv_drops_argv0_and_inserts_the_path() {
        let s = Shebang {
            interp: b"/bin/sh".to_vec(),
            arg: Some(b"-e".to_vec()),
        };
        let argv = [b"name".to_vec(), b"a".to_vec(), b"b".to_vec()];
        let got = script_argv(&s, b"./x.sh", &argv);
        let want: Vec<&[u8]> = vec![b"/bin/sh", b"-e", b"./x.sh", b"a", b"b"];
        assert_eq!(got, want);
    }

    #[test]
    fn total_limit_follows_the_stack_rlimit() {
        assert_eq!(total_limit(8 << 20), 2 << 20);
        assert_eq!(total_limit(u64::MAX), 6 << 20);
        assert_eq!(total_limit(64 << 10), ARG_MIN_LIMIT);
    }

    /// Writes argv-style arrays of `strs` into fake user memory.
    fn put(ctx: &mut FakeCtx, strs: &[&[u8]]) -> usize {
        let bytes: usize = strs.iter().map(|s| s.len() + 1).sum();
        let len = ((strs.len() + 1) * 8 + bytes).next_multiple_of(4096) as u64;
        let base = ctx.scratch(len) as usize;
        let mut at = base + (strs.len() + 1) * 8;
        for (i, s) in strs.iter().enumerate() {
            ctx.copy_out(base + i * 8, &(at as u64).to_le_bytes())
                .unwrap();
            ctx.copy_out(at, s).unwrap();
            ctx.copy_out(at + s.len(), &[0]).unwrap();
            at += s.len() + 1;
        }
        ctx.copy_out(base + strs.len() * 8, &[0; 8]).unwrap();
        base
    }

    #[test]
    fn copies_argv_and_envp() {
        let mut ctx = FakeCtx::new();
        let a = put(&mut ctx, &[b"prog", b"", b"\xff\xfe bytes"]);
        let e = put(&mut ctx, &[b"A=1"]);
        let got = copy_strings(&mut ctx, a, e, 8 << 20).unwrap();
        assert_eq!(
            got.argv,
            vec![b"prog".to_vec(), vec![], b"\xff\xfe bytes".to_vec()]
        );
        assert_eq!(got.envp, vec![b"A=1".to_vec()]);
        // NULL arrays: no environment, and one empty argument.
        let got = copy_strings(&mut ctx, 0, 0, 8 << 20).unwrap();
        assert_eq!(got.argv, vec![Vec::<u8>::new()]);
        assert!(got.envp.is_empty());
    }

    #[test]
    fn bad_pointers_are_efault() {
        let mut ctx = FakeCtx::new();
        assert_eq!(
            copy_strings(&mut ctx, 0x1000, 0, 8 << 20),
            Err(Errno::EFAULT)
        );
        let a = put(&mut ctx, &[b"prog"]);
        // Point argv[0] at unmapped memory.
        ctx.copy_out(a, &0x2000u64.to_le_bytes()).unwrap();
        assert_eq!(copy_strings(&mut ctx, a, 0, 8 << 20), Err(Errno::EFAULT));
    }

    #[test]
    fn a_string_ending_at_the_last_mapped_byte_reads() {
        let mut ctx = FakeCtx::new();
        let page = ctx.scratch(4096) as usize;
        ctx.copy_out(page, &[b'x'; 4095]).unwrap();
        ctx.copy_out(page + 4095, &[0]).unwrap();
        assert_eq!(
            read_string(&mut ctx, page + 10, u64::MAX).unwrap().len(),
            4085
        );
    }

    #[test]
    fn limits_are_e2big() {
        let mut ctx = FakeCtx::new();
        // One string of MAX_ARG_STRLEN bytes (NUL included) is allowed,
        // one byte more is not.
        let fits = alloc::vec![b'a'; MAX_ARG_STRLEN - 1];
        let a = put(&mut ctx, &[&fits]);
        assert_eq!(
            copy_strings(&mut ctx, a, 0, 8 << 20).unwrap().argv[0].len(),
            fits.len()
        );
        let big = alloc::vec![b'a'; MAX_ARG_STRLEN];
        let a = put(&mut ctx, &[&big]);
        assert_eq!(copy_strings(&mut ctx, a, 0, 8 << 20), Err(Errno::E2BIG));
        // The total under an 8 MiB stack limit is 2 MiB: 17 strings of
        // 120 KiB fit, 18 do not.
        let s = alloc::vec![b'e'; 120 << 10];
        let many: Vec<&[u8]> = (0..17).map(|_| s.as_slice()).collect();
        let e = put(&mut ctx, &many);
        assert!(copy_strings(&mut ctx, 0, e, 8 << 20).is_ok());
        let many: Vec<&[u8]> = (0..18).map(|_| s.as_slice()).collect();
        let e = put(&mut ctx, &many);
        assert_eq!(copy_strings(&mut ctx, 0, e, 8 << 20), Err(Errno::E2BIG));
        // A larger stack limit lets them through.
        assert!(copy_strings(&mut ctx, 0, e, 16 << 20).is_ok());
        // Pointers alone can exceed the limit (128 KiB: 16384 pointers).
        let empties: Vec<&[u8]> = (0..16384).map(|_| &b""[..]).collect();
        let e = put(&mut ctx, &empties);
        assert_eq!(copy_strings(&mut ctx, 0, e, 0), Err(Errno::E2BIG));
    }
}
