//! Symbolising kernel backtraces on the host: a console line
//! `backtrace: #N pc=0x...` gets ` <function+0xoff at file:line>` appended:
//! the function from the kernel ELF's symbol table (demangled), the file
//! and line from its DWARF line table when the build has debug info.

use crate::console;
use crate::error::{Error, Result};
use object::{Object, ObjectSymbol, SymbolKind};
use std::path::Path;

/// The kernel's function symbols, sorted by address, and its line table.
#[derive(Default)]
pub struct Symbols {
    funcs: Vec<(u64, u64, String)>,
    lines: Option<addr2line::Loader>,
    /// Prefix stripped from source paths (the checkout root).
    root: String,
}

impl Symbols {
    /// Reads the function symbols and line table of an ELF file; `root`
    /// is stripped from source paths.
    pub fn load(path: &Path, root: &Path) -> Result<Symbols> {
        let data = std::fs::read(path).map_err(Error::io(path))?;
        let mut symbols = Self::parse(&data).map_err(|e| Error::BadElf {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // No DWARF is not an error: backtraces then show functions only.
        symbols.lines = addr2line::Loader::new(path).ok();
        symbols.root = format!("{}/", root.display());
        Ok(symbols)
    }

    pub fn parse(data: &[u8]) -> std::result::Result<Symbols, object::Error> {
        let file = object::File::parse(data)?;
        let mut funcs: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((
                    s.address(),
                    s.size(),
                    format!("{:#}", rustc_demangle::demangle(name)),
                ))
            })
            .collect();
        funcs.sort_by_key(|f| f.0);
        funcs.dedup_by_key(|f| f.0);
        Ok(Symbols {
            funcs,
            ..Symbols::default()
        })
    }

    #[cfg(test)]
    fn from_list(mut funcs: Vec<(u64, u64, String)>) -> Symbols {
        funcs.sort_by_key(|f| f.0);
        Symbols {
            funcs,
            ..Symbols::default()
        }
    }

    /// `file:line` of a code address from the DWARF line table.
    pub fn line(&self, pc: u64) -> Option<String> {
        let loc = self.lines.as_ref()?.find_location(pc).ok()??;
        let file = loc.file?;
        let file = file.strip_prefix(self.root.as_str()).unwrap_or(file);
        Some(match loc.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        })
    }

    /// `name+0xoff` for a code address, if a function covers it. A symbol
    /// of size 0 (assembly labels) covers up to the next symbol.
    pub fn resolve(&self, pc: u64) -> Option<String> {
        let i = self.funcs.partition_point(|f| f.0 <= pc).checked_sub(1)?;
        let (start, size, name) = &self.funcs[i];
        let off = pc - start;
        let covered = if *size > 0 {
            off < *size
        } else {
            self.funcs.get(i + 1).is_none_or(|next| pc < next.0)
        };
        covered.then(|| format!("{name}+{off:#x}"))
    }

    /// The console line with its symbol appended, when it is a backtrace line.
    pub fn annotate(&self, line: &str) -> Option<String> {
        let pc = console::parse_backtrace_pc(line)?;
        // A return address points after the call; look up the call itself.
        let pc = pc.saturating_sub(1);
        let name = self.resolve(pc)?;
        Some(match self.line(pc) {
            Some(at) => format!("{line} <{name} at {at}>"),
            None => format!("{line} <{name}>"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms() -> Symbols {
        Symbols::from_list(vec![
            (0x1000, 0x100, "skiff_kernel::start::kernel_main".into()),
            (0x1100, 0x20, "core::panicking::panic".into()),
            (0x2000, 0, "_start".into()),
            (0x3000, 0x10, "last".into()),
        ])
    }

    #[test]
    fn resolves_inside_functions() {
        let s = syms();
        assert_eq!(
            s.resolve(0x1000).as_deref(),
            Some("skiff_kernel::start::kernel_main+0x0")
        );
        assert_eq!(
            s.resolve(0x10ff).as_deref(),
            Some("skiff_kernel::start::kernel_main+0xff")
        );
        assert_eq!(
            s.resolve(0x1110).as_deref(),
            Some("core::panicking::panic+0x10")
        );
        assert_eq!(s.resolve(0x1200), None);
        assert_eq!(s.resolve(0x2abc).as_deref(), Some("_start+0xabc"));
        assert_eq!(s.resolve(0x3010), None);
        assert_eq!(s.resolve(0x10), None);
    }

    #[test]
    fn annotates_backtrace_lines_only() {
        let s = syms();
        assert_eq!(
            s.annotate("backtrace: #0 pc=0x1005").as_deref(),
            Some("backtrace: #0 pc=0x1005 <skiff_kernel::start::kernel_main+0x4>")
        );
        assert_eq!(s.annotate("platform: arch=x86_64"), None);
    }

    #[test]
    fn reads_a_real_elf() {
        // The test binary itself is an ELF with function symbols.
        let exe = std::env::current_exe().unwrap();
        let s = Symbols::load(&exe, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(s.funcs.len() > 100);
        // This very function, found by name, resolves to itself and to this file.
        let (addr, _, name) = s
            .funcs
            .iter()
            .find(|f| f.2.ends_with("symbols::tests::reads_a_real_elf"))
            .expect("test function symbol")
            .clone();
        assert_eq!(s.resolve(addr + 1), Some(format!("{name}+0x1")));
        let at = s.line(addr).expect("debug info of the test binary");
        assert!(at.starts_with("src/symbols.rs:"), "{at}");
    }
}
