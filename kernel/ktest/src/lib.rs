//! The in-kernel test registry (`#[ktest]`-style, as in Asterinas): any crate
//! declares tests with [`ktest!`]; they land in one link-time slice
//! ([`KTESTS`]) and the kernel runs them inside the VM when the command line
//! says `ktest=1`, printing one line per test and `ktest: N passed, M failed`.
//!
//! A test returns `Result<(), Failure>`; the `check*` macros return early with
//! the failing expression and its location, so a failing test never panics
//! the kernel and the run continues. Depends only on `linkme`.
#![no_std]

pub use linkme;

use core::fmt;

/// One registered test.
pub struct Ktest {
    /// `module::path::name`.
    pub name: &'static str,
    pub run: fn() -> Result<(), Failure>,
}

/// Why a test failed: what was checked, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub what: &'static str,
    pub file: &'static str,
    pub line: u32,
    /// Two values the check compared, when it compared any.
    pub values: Option<(i128, i128)>,
}

/// `Failure::file` of a test that skipped itself (see [`skip!`]).
pub const SKIP_FILE: &str = "<skip>";

impl Failure {
    /// True when the test skipped itself rather than failed.
    pub fn is_skip(&self) -> bool {
        self.file == SKIP_FILE
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}:{}", self.what, self.file, self.line)?;
        if let Some((a, b)) = self.values {
            write!(f, " (left={a} right={b})")?;
        }
        Ok(())
    }
}

#[linkme::distributed_slice]
pub static KTESTS: [Ktest];

/// Declares a kernel test: `ktest! { fn name() { check!(...); Ok(()) } }`.
#[macro_export]
macro_rules! ktest {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        fn $name() -> ::core::result::Result<(), $crate::Failure> $body

        const _: () = {
            #[$crate::linkme::distributed_slice($crate::KTESTS)]
            #[linkme(crate = $crate::linkme)]
            static TEST: $crate::Ktest = $crate::Ktest {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
            };
        };
    };
}

/// Fails the test unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::Failure {
                what: stringify!($cond),
                file: file!(),
                line: line!(),
                values: None,
            });
        }
    };
}

/// Fails the test unless `a == b` (integers; both are reported on failure).
#[macro_export]
macro_rules! check_eq {
    ($a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        if a != b {
            return Err($crate::Failure {
                what: concat!(stringify!($a), " == ", stringify!($b)),
                file: file!(),
                line: line!(),
                values: Some((a as i128, b as i128)),
            });
        }
    }};
}

/// Unwraps a `Result`/`Option`-like value or fails the test.
#[macro_export]
macro_rules! check_some {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => {
                return Err($crate::Failure {
                    what: concat!(stringify!($e), " is Some"),
                    file: file!(),
                    line: line!(),
                    values: None,
                })
            }
        }
    };
}

/// Ends the test as skipped (counted apart from passed and failed), e.g.
/// when it needs more CPUs than the machine has: `skip!("needs 2 cpus")`.
#[macro_export]
macro_rules! skip {
    ($why:expr) => {
        return Err($crate::Failure {
            what: $why,
            file: $crate::SKIP_FILE,
            line: 0,
            values: None,
        })
    };
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ktest: {} passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// Runs every test whose name contains `filter` (all when None), calling
/// `report(name, result)` after each. Tests run in name order so runs are
/// reproducible whatever order the linker chose.
pub fn run(filter: Option<&str>, mut report: impl FnMut(&str, &Result<(), Failure>)) -> Summary {
    let mut summary = Summary::default();
    let mut last: Option<&str> = None;
    // Selection by repeated minimum keeps this allocation-free: the slice is
    // small and this runs once per boot.
    loop {
        let next = KTESTS
            .iter()
            .filter(|t| last.is_none_or(|l| t.name > l))
            .min_by_key(|t| t.name);
        let Some(test) = next else { break };
        last = Some(test.name);
        if filter.is_some_and(|f| !test.name.contains(f)) {
            summary.skipped += 1;
            continue;
        }
        let result = (test.run)();
        match &result {
            Ok(()) => summary.passed += 1,
            Err(f) if f.is_skip() => summary.skipped += 1,
            Err(_) => summary.failed += 1,
        }
        report(test.name, &result);
    }
    summary
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    ktest! {
        fn passes() {
            check_eq!(2 + 2, 4);
            Ok(())
        }
    }

    ktest! {
        fn fails_on_purpose() {
            check_eq!(1 + 1, 3);
            Ok(())
        }
    }

    #[test]
    fn registry_runs_in_name_order_and_counts() {
        let mut seen = Vec::new();
        let s = run(None, |name, r| {
            seen.push((name.to_owned_string(), r.is_ok()))
        });
        assert_eq!(s.passed, 1);
        assert_eq!(s.failed, 1);
        assert_eq!(seen.len(), 2);
        assert!(seen[0].0 < seen[1].0);
        assert!(seen
            .iter()
            .any(|(n, ok)| n.ends_with("fails_on_purpose") && !ok));
    }

    #[test]
    fn filter_skips_the_rest() {
        let s = run(Some("passes"), |_, _| {});
        assert_eq!((s.passed, s.failed, s.skipped), (1, 0, 1));
    }

    #[test]
    fn failure_reports_values_and_place() {
        let r = fails_on_purpose().unwrap_err();
        assert_eq!(r.values, Some((2, 3)));
        assert!(std::format!("{r}").contains("lib.rs"));
    }

    trait ToOwnedString {
        fn to_owned_string(&self) -> std::string::String;
    }
    impl ToOwnedString for str {
        fn to_owned_string(&self) -> std::string::String {
            std::string::String::from(self)
        }
    }
}
