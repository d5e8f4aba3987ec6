//! Arguments, environment variables, the working directory and
//! std::process::exit: `std_env ARG... exit=N` exits with N.
use std::env;

fn main() {
    let args: Vec<String> = env::args().collect();
    println!("argc={}", args.len());
    for (i, a) in args.iter().enumerate().skip(1) {
        println!("arg{i}={a:?}");
    }
    println!("argv0_is_app={}", args[0].starts_with('/'));
    let mut vars: Vec<(String, String)> = env::vars()
        .filter(|(k, _)| k.starts_with("SKIFF_"))
        .collect();
    vars.sort();
    for (k, v) in &vars {
        println!("env {k}={v:?}");
    }
    println!("home={:?}", env::var("HOME").ok());
    println!("missing={:?}", env::var("SKIFF_NO_SUCH_VAR").err());
    env::set_var("SKIFF_SET", "later");
    println!("set_var={:?}", env::var("SKIFF_SET").ok());
    env::remove_var("SKIFF_SET");
    println!("removed={}", env::var_os("SKIFF_SET").is_none());
    println!(
        "cwd={}",
        env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    env::set_current_dir("/tmp").expect("chdir");
    println!(
        "cwd_after={}",
        env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    println!("temp_dir={}", env::temp_dir().display());
    let code = args
        .iter()
        .find_map(|a| a.strip_prefix("exit="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    println!("exiting={code}");
    std::process::exit(code);
}
