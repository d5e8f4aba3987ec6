//! The kernel command line: `key=value` options and bare flags for the
//! kernel, then ` -- ` and the application's argv.
//!
//! Values may be double-quoted to hold spaces (`app.env="A B"`), as on Linux.
//! Unknown keys are kept and reported once at boot (`cmdline: unknown
//! option=...`) instead of being silently dropped; a malformed value of a
//! known key is an error, so a typo never boots a kernel configured other
//! than asked.
//!
//! QEMU's microvm appends `virtio_mmio.device=SIZE@ADDR:IRQ` words for its
//! transports to whatever command line it was given — after the app's
//! arguments. Those trailing words are taken back as kernel options
//! ([`Options::virtio_mmio`]) rather than handed to the app.

use core::fmt;

/// Options the kernel understands, borrowed from the command line string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options<'a> {
    /// `ktest[=1]`: run the in-kernel tests, print the summary, power off.
    pub ktest: bool,
    /// `ktest.filter=SUBSTRING`: only tests whose name contains it.
    pub ktest_filter: Option<&'a str>,
    /// `debug_exit[=1]`: leave QEMU through isa-debug-exit / semihosting.
    pub debug_exit: bool,
    /// `boottime[=1]`: print the boot-phase timestamps.
    pub boottime: bool,
    /// `bench=SUITE`: run an in-guest benchmark suite and power off.
    pub bench: Option<&'a str>,
    /// `loglevel=off|error|warn|info|debug|trace`: console log verbosity.
    pub loglevel: Option<log::LevelFilter>,
    /// `strace[=1]`: log every system call of the app, strace style.
    pub strace: bool,
    /// `env=NAME=VALUE` (repeatable, in order): the app's environment.
    /// None given: [`DEFAULT_ENV`].
    pub env: arrayvec::ArrayVec<&'a str, MAX_ENV>,
    /// `argv0=NAME`: the `argv[0]` the app sees when it differs from the
    /// path that is run (the first word after ` -- `), as a shell passes
    /// the name typed.
    pub argv0: Option<&'a str>,
    /// Everything after ` -- `, unparsed (see [`Options::app_args`]),
    /// minus the trailing `virtio_mmio.device=` words QEMU appended.
    pub app: &'a str,
    /// `virtio_mmio.device=` values, from the kernel part and from the end
    /// of the line (where QEMU's microvm appends them), in order.
    pub virtio_mmio: arrayvec::ArrayVec<&'a str, MAX_VIRTIO_MMIO>,
    /// `devices.expect=LIST`: what a board's boot must find (ktest).
    pub devices_expect: Option<&'a str>,
    /// `root=/dev/vdX|image`: mount the SKIFFIMG image on that disk as `/`
    /// instead of the initramfs (docs/imagefs.md; checked at mount).
    pub root: Option<&'a str>,
    /// The first unknown `key[=value]`, reported at boot; the count of them.
    pub unknown: Option<&'a str>,
    pub unknown_count: usize,
}

/// The most `virtio_mmio.device=` options kept (QEMU's microvm has 24
/// transports; beyond this they are ignored with a warning by the caller).
pub const MAX_VIRTIO_MMIO: usize = 32;

/// The most `env=` options accepted.
pub const MAX_ENV: usize = 128;

/// The app's environment when no `env=` option is given.
pub const DEFAULT_ENV: [&str; 3] = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "TERM=linux"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// A boolean option with a value other than 0/1/yes/no/on/off/true/false.
    BadBool { key: &'a str, value: &'a str },
    /// A quote was opened and never closed.
    UnterminatedQuote,
    /// An option given an empty value where one is required.
    EmptyValue { key: &'a str },
    /// `loglevel=` with an unknown level.
    BadLogLevel { value: &'a str },
    /// `env=` without `NAME=` (or an empty name).
    BadEnv { value: &'a str },
    /// More than [`MAX_ENV`] `env=` options.
    TooManyEnv,
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::BadBool { key, value } => {
                write!(
                    f,
                    "option {key}={value}: expected 0/1, yes/no, on/off or true/false"
                )
            }
            CmdlineError::UnterminatedQuote => write!(f, "unterminated double quote"),
            CmdlineError::EmptyValue { key } => write!(f, "option {key} needs a value"),
            CmdlineError::BadLogLevel { value } => write!(
                f,
                "loglevel={value}: expected off, error, warn, info, debug or trace"
            ),
            CmdlineError::BadEnv { value } => {
                write!(f, "env={value}: expected env=NAME=VALUE")
            }
            CmdlineError::TooManyEnv => write!(f, "more than {MAX_ENV} env= options"),
        }
    }
}

/// One whitespace-separated word of the command line, quotes intact.
/// Quotes group spaces; they are removed by [`unquote`].
fn words(s: &str) -> impl Iterator<Item = Result<&str, CmdlineError<'_>>> {
    let mut rest = s;
    core::iter::from_fn(move || {
        rest = rest.trim_start_matches([' ', '\t', '\n']);
        if rest.is_empty() {
            return None;
        }
        let mut in_quote = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '"' => in_quote = !in_quote,
                ' ' | '\t' | '\n' if !in_quote => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        if in_quote {
            rest = "";
            return Some(Err(CmdlineError::UnterminatedQuote));
        }
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(Ok(word))
    })
}

/// Strips one pair of surrounding double quotes (`"a b"` → `a b`).
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_bool<'a>(key: &'a str, value: Option<&'a str>) -> Result<bool, CmdlineError<'a>> {
    match value.map(unquote) {
        None | Some("1" | "yes" | "on" | "true") => Ok(true),
        Some("0" | "no" | "off" | "false") => Ok(false),
        Some(value) => Err(CmdlineError::BadBool { key, value }),
    }
}

impl<'a> Options<'a> {
    pub fn parse(cmdline: &'a str) -> Result<Self, CmdlineError<'a>> {
        let (kernel_part, app) = split_app(cmdline);
        let (app, qemu_tail) = split_qemu_tail(app);
        let mut o = Options {
            app,
            ..Options::default()
        };

        for word in words(kernel_part) {
            let word = word?;
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            match key {
                "ktest" => o.ktest = parse_bool(key, value)?,
                "debug_exit" => o.debug_exit = parse_bool(key, value)?,
                "boottime" => o.boottime = parse_bool(key, value)?,
                "strace" => o.strace = parse_bool(key, value)?,
                "argv0" => match value.map(unquote) {
                    Some(v) if !v.is_empty() => o.argv0 = Some(v),
                    _ => return Err(CmdlineError::EmptyValue { key }),
                },
                "env" => {
                    let v = value.map(unquote).unwrap_or("");
                    if v.split_once('=').is_none_or(|(name, _)| name.is_empty()) {
                        return Err(CmdlineError::BadEnv { value: v });
                    }
                    o.env.try_push(v).map_err(|_| CmdlineError::TooManyEnv)?;
                }
                "loglevel" => {
                    let v = value.map(unquote).unwrap_or("");
                    o.loglevel = Some(
                        v.parse()
                            .map_err(|_| CmdlineError::BadLogLevel { value: v })?,
                    );
                }
                "bench" => match value.map(unquote) {
                    Some(v) if !v.is_empty() => o.bench = Some(v),
                    _ => return Err(CmdlineError::EmptyValue { key }),
                },
                "virtio_mmio.device" => {
                    let v = value.unwrap_or("");
                    if v.is_empty() {
                        return Err(CmdlineError::EmptyValue { key });
                    }
                    if o.virtio_mmio.try_push(v).is_err() {
                        o.unknown.get_or_insert(word);
                        o.unknown_count += 1;
                    }
                }
                "devices.expect" => match value.map(unquote) {
                    Some(v) if !v.is_empty() => o.devices_expect = Some(v),
                    _ => return Err(CmdlineError::EmptyValue { key }),
                },
                // The network's options: parsed (and refused when
                // malformed) by `net::config::NetConfig::parse` at bring-up;
                // `net.expect=` by the `net_expected` ktest.
                "ip" | "ip6" | "gw" | "dns" | "net.expect" => {
                    if value.is_none_or(|v| unquote(v).is_empty()) {
                        return Err(CmdlineError::EmptyValue { key });
                    }
                }
                "root" => match value.map(unquote) {
                    Some(v) if !v.is_empty() => o.root = Some(v),
                    _ => return Err(CmdlineError::EmptyValue { key }),
                },
                "ktest.filter" => match value.map(unquote) {
                    Some(v) if !v.is_empty() => o.ktest_filter = Some(v),
                    _ => return Err(CmdlineError::EmptyValue { key }),
                },
                _ => {
                    o.unknown.get_or_insert(word);
                    o.unknown_count += 1;
                }
            }
        }
        // Then the ones QEMU appended after the app's arguments.
        for word in words(qemu_tail) {
            if let Some(v) = word?.strip_prefix(VIRTIO_MMIO_KEY) {
                if o.virtio_mmio.try_push(v).is_err() {
                    o.unknown_count += 1;
                }
            }
        }
        // Validate the app part's quoting now so a bad argv fails at boot.
        for w in words(app) {
            w?;
        }
        Ok(o)
    }

    /// The app's environment: the `env=` options, or [`DEFAULT_ENV`].
    pub fn app_env(&self) -> impl Iterator<Item = &'a str> + '_ {
        let default: &[&'a str] = if self.env.is_empty() {
            &DEFAULT_ENV
        } else {
            &[]
        };
        self.env.iter().copied().chain(default.iter().copied())
    }

    /// The application's argv, quotes removed.
    pub fn app_args(&self) -> impl Iterator<Item = &'a str> {
        words(self.app).filter_map(Result::ok).map(unquote)
    }
}

const VIRTIO_MMIO_KEY: &str = "virtio_mmio.device=";

/// Splits QEMU's appended `virtio_mmio.device=` words off the end of the
/// app part: (the app's own words, the appended tail).
/// Runs before the heap exists: no allocation.
fn split_qemu_tail(app: &str) -> (&str, &str) {
    // Start of the current run of such words, if the last word was one.
    let mut run_start = None;
    for word in words(app) {
        let Ok(word) = word else { return (app, "") };
        if word.starts_with(VIRTIO_MMIO_KEY) {
            run_start.get_or_insert(word.as_ptr() as usize - app.as_ptr() as usize);
        } else {
            run_start = None;
        }
    }
    let cut = run_start.unwrap_or(app.len());
    (&app[..cut], &app[cut..])
}

/// Splits at the first ` -- ` word: kernel options before, app argv after.
fn split_app(cmdline: &str) -> (&str, &str) {
    for word in words(cmdline) {
        let Ok(word) = word else { break };
        if word == "--" {
            // Each word is a sub-slice of `cmdline`, so its offset is exact.
            let start = word.as_ptr() as usize - cmdline.as_ptr() as usize;
            return (&cmdline[..start], &cmdline[start + 2..]);
        }
    }
    (cmdline, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_is_all_defaults() {
        assert_eq!(Options::parse("").unwrap(), Options::default());
        assert_eq!(Options::parse("   ").unwrap(), Options::default());
    }

    #[test]
    fn flags_and_values() {
        let o = Options::parse("ktest debug_exit=1 boottime=off ktest.filter=mm::").unwrap();
        assert!(o.ktest && o.debug_exit && !o.boottime);
        assert_eq!(o.ktest_filter, Some("mm::"));
        assert_eq!(o.unknown_count, 0);
    }

    #[test]
    fn bad_bool_is_an_error_naming_the_key() {
        let e = Options::parse("ktest=maybe").unwrap_err();
        assert_eq!(
            e,
            CmdlineError::BadBool {
                key: "ktest",
                value: "maybe"
            }
        );
        assert!(e.to_string().contains("ktest=maybe"));
    }

    #[test]
    fn app_args_after_double_dash_with_quotes() {
        let o = Options::parse(r#"ktest=0 -- /bin/echo "hello world" -- x"#).unwrap();
        assert!(!o.ktest);
        let args: Vec<&str> = o.app_args().collect();
        assert_eq!(args, ["/bin/echo", "hello world", "--", "x"]);
    }

    #[test]
    fn kernel_options_after_double_dash_belong_to_the_app() {
        let o = Options::parse("-- prog ktest=1").unwrap();
        assert!(!o.ktest);
        assert_eq!(o.app_args().collect::<Vec<_>>(), ["prog", "ktest=1"]);
    }

    #[test]
    fn double_dash_inside_a_word_is_not_a_separator() {
        let o = Options::parse("foo--bar --x").unwrap();
        assert_eq!(o.app, "");
        assert_eq!(o.unknown, Some("foo--bar"));
        assert_eq!(o.unknown_count, 2);
    }

    #[test]
    fn unterminated_quote_is_reported() {
        assert_eq!(
            Options::parse(r#"ktest.filter="abc"#).unwrap_err(),
            CmdlineError::UnterminatedQuote
        );
        assert_eq!(
            Options::parse(r#"-- echo "abc"#).unwrap_err(),
            CmdlineError::UnterminatedQuote
        );
    }

    #[test]
    fn quoted_value_with_spaces() {
        let o = Options::parse(r#"ktest.filter="a b" ktest"#).unwrap();
        assert_eq!(o.ktest_filter, Some("a b"));
        assert!(o.ktest);
    }

    #[test]
    fn empty_filter_is_an_error() {
        assert_eq!(
            Options::parse("ktest.filter=").unwrap_err(),
            CmdlineError::EmptyValue {
                key: "ktest.filter"
            }
        );
    }

    #[test]
    fn bench_suite() {
        assert_eq!(Options::parse("bench=sched").unwrap().bench, Some("sched"));
        assert!(Options::parse("bench=").is_err());
    }

    #[test]
    fn log_levels() {
        let o = Options::parse("loglevel=debug").unwrap();
        assert_eq!(o.loglevel, Some(log::LevelFilter::Debug));
        assert_eq!(
            Options::parse("loglevel=loud").unwrap_err(),
            CmdlineError::BadLogLevel { value: "loud" }
        );
    }

    #[test]
    fn env_options_in_order_or_the_default() {
        let o = Options::parse(r#"env=A=1 strace env="B=x y" env=C= -- prog"#).unwrap();
        assert!(o.strace);
        assert_eq!(o.app_env().collect::<Vec<_>>(), ["A=1", "B=x y", "C="]);
        let o = Options::parse("-- prog").unwrap();
        assert!(!o.strace);
        assert_eq!(o.app_env().collect::<Vec<_>>(), DEFAULT_ENV);
        assert_eq!(
            Options::parse("env=NOVALUE").unwrap_err(),
            CmdlineError::BadEnv { value: "NOVALUE" }
        );
        assert_eq!(
            Options::parse("env==x").unwrap_err(),
            CmdlineError::BadEnv { value: "=x" }
        );
        assert!(Options::parse("strace=maybe").is_err());
    }

    #[test]
    fn qemu_appended_virtio_mmio_words_are_not_app_arguments() {
        let o = Options::parse(
            "virtio_mmio.device=512@0x1000:5 -- /app/ls -la virtio_mmio.device=x \
             / virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11",
        )
        .unwrap();
        assert_eq!(
            o.app_args().collect::<Vec<_>>(),
            ["/app/ls", "-la", "virtio_mmio.device=x", "/"]
        );
        assert_eq!(
            o.virtio_mmio.as_slice(),
            ["512@0x1000:5", "512@0xfeb00e00:12", "512@0xfeb00c00:11"]
        );
        assert_eq!(o.unknown_count, 0);
        // Without an app the appended words are ordinary kernel options.
        let o = Options::parse("ktest virtio_mmio.device=512@0x2000:6").unwrap();
        assert_eq!(o.virtio_mmio.as_slice(), ["512@0x2000:6"]);
        assert_eq!(o.app_args().count(), 0);
        let o = Options::parse("devices.expect=rng,blk:16384 -- a").unwrap();
        assert_eq!(o.devices_expect, Some("rng,blk:16384"));
    }

    #[test]
    fn root_names_the_root_disk() {
        let o = Options::parse("root=image debug_exit -- /app/p root=x").unwrap();
        assert_eq!(o.root, Some("image"));
        assert_eq!(o.app_args().collect::<Vec<_>>(), ["/app/p", "root=x"]);
        assert_eq!(Options::parse("-- a").unwrap().root, None);
        assert!(Options::parse("root= -- a").is_err());
    }

    #[test]
    fn argv0_names_the_program_as_typed() {
        let o = Options::parse("argv0=./hello -- /app/hello x").unwrap();
        assert_eq!(o.argv0, Some("./hello"));
        assert_eq!(o.app_args().collect::<Vec<_>>(), ["/app/hello", "x"]);
        assert!(Options::parse("argv0= -- x").is_err());
    }

    #[test]
    fn network_options_are_known() {
        let o = Options::parse(
            "ip=10.0.2.15/24 ip6=fd00::2/64 gw=10.0.2.2 dns=10.0.2.3 net.expect=addr:10.0.2.15/24 -- a",
        )
        .unwrap();
        assert_eq!(o.unknown_count, 0);
        assert_eq!(
            Options::parse("ip= -- a"),
            Err(CmdlineError::EmptyValue { key: "ip" })
        );
    }

    #[test]
    fn unknown_options_are_counted_not_fatal() {
        let o = Options::parse("console=ttyS0 quiet ktest").unwrap();
        assert_eq!(o.unknown, Some("console=ttyS0"));
        assert_eq!(o.unknown_count, 2);
        assert!(o.ktest);
    }
}
