//! `SKIFF_BENCH_PROFILE=ROW cargo skiff bench net`: where Skiff's guest
//! instructions go during one row (or while idle). The icount pass boots
//! only the server of that row, on Skiff only, with the TCG plugin
//! `bench/tbprof.c` beside `bench/insncount.c`; the plugin counts executed
//! instructions per translation block and writes its table on request.
//! The host takes a snapshot before and after the row, subtracts, and
//! symbolises the block addresses against the kernel ELF
//! ([`crate::symbols`]), printing the top functions. Addresses outside
//! the kernel's symbols (the app, its libraries, the vDSO) are one bucket.
//!
//! `ROW` is a row name (`tcp_rr`, `redis_get`, ...) or `idle:SERVER`
//! (`idle:redis`: the server booted and left alone for 5 s).
//! `SKIFF_BENCH_PROFILE_TOP=N` sets how many functions are printed (25).

use crate::symbols::Symbols;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to profile and with what.
pub struct Profile {
    /// A row name, or `idle:SERVER`.
    pub target: String,
    pub plugin: PathBuf,
    pub symbols: Symbols,
    pub top: usize,
}

/// Instructions per block start address.
pub type Counts = HashMap<u64, u64>;

impl Profile {
    /// The profile asked for in the environment, if any.
    pub fn requested() -> Option<(String, usize)> {
        let target = std::env::var("SKIFF_BENCH_PROFILE").ok()?;
        let top = std::env::var("SKIFF_BENCH_PROFILE_TOP")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(25);
        Some((target, top))
    }

    /// The server an `idle:SERVER` target names.
    pub fn idle_server(&self) -> Option<&str> {
        self.target.strip_prefix("idle:")
    }
}

/// Asks the plugin whose `out=` is `base` for a snapshot in `dest` and
/// reads it.
pub fn snapshot(base: &Path, dest: &Path) -> Result<Counts, String> {
    let req = PathBuf::from(format!("{}.req", base.display()));
    let _ = std::fs::remove_file(dest);
    std::fs::write(&req, format!("{}\n", dest.display()))
        .map_err(|e| format!("{}: {e}", req.display()))?;
    let start = Instant::now();
    while req.exists() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the profiling plugin did not answer in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = std::fs::read_to_string(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(parse(&text))
}

/// `PC INSNS` lines (hex, decimal).
pub fn parse(text: &str) -> Counts {
    text.lines()
        .filter_map(|l| {
            let (pc, n) = l.split_once(' ')?;
            Some((u64::from_str_radix(pc, 16).ok()?, n.trim().parse().ok()?))
        })
        .collect()
}

/// Instructions per function between two snapshots, largest first, with
/// the total. Blocks outside the kernel's symbols are `[user space]`.
pub fn by_function(
    symbols: &Symbols,
    before: &Counts,
    after: &Counts,
) -> (Vec<(String, u64)>, u64) {
    let mut per: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for (pc, n) in after {
        let d = n.saturating_sub(before.get(pc).copied().unwrap_or(0));
        if d == 0 {
            continue;
        }
        total += d;
        let name = match symbols.resolve(*pc) {
            Some(s) => match s.rsplit_once('+') {
                Some((f, _)) => f.to_string(),
                None => s,
            },
            None => "[user space / unknown]".to_string(),
        };
        *per.entry(name).or_default() += d;
    }
    let mut v: Vec<(String, u64)> = per.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (v, total)
}

/// The report: top `top` functions with instructions per `unit` (request,
/// KiB or second) and their share of the total.
pub fn report(
    title: &str,
    funcs: &[(String, u64)],
    total: u64,
    units: u64,
    unit: &str,
    top: usize,
) -> String {
    let units = units.max(1);
    let mut s = format!(
        "profile: {title}: {total} instructions, {} per {unit}\n{:>12} {:>6}  function\n",
        total / units,
        format!("per {unit}"),
        "share"
    );
    for (name, n) in funcs.iter().take(top) {
        s.push_str(&format!(
            "{:>12} {:>5.1}%  {name}\n",
            n / units,
            *n as f64 * 100.0 / total.max(1) as f64
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_grouped_by_function() {
        let syms = Symbols::parse(&[]).ok();
        // No ELF at hand: every address is unknown, so one bucket.
        let syms = syms.unwrap_or_default();
        let before = parse("1000 10\n2000 5\n");
        let after = parse("1000 30\n2000 5\n3000 7\nzz 1\n");
        let (f, total) = by_function(&syms, &before, &after);
        assert_eq!(total, 27);
        assert_eq!(f, vec![("[user space / unknown]".to_string(), 27)]);
        let r = report("tcp_rr", &f, total, 9, "request", 5);
        assert!(r.contains("27 instructions, 3 per request"), "{r}");
        assert!(r.contains("100.0%"), "{r}");
    }
}
