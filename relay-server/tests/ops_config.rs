//! Configuration: precedence of flags, environment, file and defaults, and the
//! errors a mistyped file or variable gets.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tsunagi_relay::config::{self, ConfigError};

/// A stand-in with the kinds of flags the relay has.
#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "0.0.0.0:3478")]
    listen: Vec<SocketAddr>,
    #[arg(long, default_value = "info")]
    log: String,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long)]
    software: Option<String>,
    #[arg(long)]
    verbose_errors: bool,
    #[arg(long)]
    user: Vec<String>,
}

struct Setup {
    _dir: TempDir,
    file: PathBuf,
}

/// A temporary directory removed on drop (no extra dependency for one use).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file(contents: &str) -> Setup {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tsunagi-ops-config-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("relay.toml");
    std::fs::write(&file, contents).unwrap();
    Setup {
        _dir: TempDir(dir),
        file,
    }
}

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Args, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let argv: Vec<OsString> = std::iter::once("tsunagi-relay")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    config::load_from(argv, &|name| env.get(name).cloned())
}

/// The error that a config file with `contents` gives (and nothing else set).
fn config_error(contents: &str) -> String {
    let setup = file(contents);
    load(&["--config", setup.file.to_str().unwrap()], &[])
        .unwrap_err()
        .to_string()
}

const FILE: &str = r#"
# A relay for tests.
listen = ["127.0.0.1:4000", "[::1]:4000"]
log = "debug"
threads = 3
software = "from-file"
verbose-errors = true
"#;

#[test]
fn defaults_apply_without_any_source() {
    let args = load(&[], &[]).unwrap();
    assert_eq!(
        args.listen,
        vec!["0.0.0.0:3478".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(args.log, "info");
    assert_eq!(args.threads, 0);
    assert!(!args.verbose_errors);
}

#[test]
fn the_file_overrides_defaults() {
    let setup = file(FILE);
    let args = load(&["--config", setup.file.to_str().unwrap()], &[]).unwrap();
    assert_eq!(args.listen.len(), 2);
    assert_eq!(args.log, "debug");
    assert_eq!(args.threads, 3);
    assert_eq!(args.software.as_deref(), Some("from-file"));
    assert!(args.verbose_errors);
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let setup = file(FILE);
    let path = setup.file.to_str().unwrap();
    let env = [
        ("TSUNAGI_RELAY_CONFIG", path),
        ("TSUNAGI_RELAY_LOG", "warn"),
        ("TSUNAGI_RELAY_THREADS", "5"),
        ("TSUNAGI_RELAY_LISTEN", "127.0.0.2:1, 127.0.0.3:2"),
        ("TSUNAGI_RELAY_USER", "a:1,b:2"),
    ];
    let args = load(&["--threads", "7"], &env).unwrap();
    assert_eq!(args.threads, 7, "flag beats environment");
    assert_eq!(args.log, "warn", "environment beats file");
    assert_eq!(
        args.software.as_deref(),
        Some("from-file"),
        "file beats default"
    );
    let listen: Vec<String> = args.listen.iter().map(ToString::to_string).collect();
    assert_eq!(
        listen,
        ["127.0.0.2:1", "127.0.0.3:2"],
        "env list replaces the file's"
    );
    assert_eq!(args.user, ["a:1", "b:2"]);

    // A repeated flag replaces the lower levels' list, it does not add to it.
    let args = load(&["--listen", "10.0.0.1:9"], &env).unwrap();
    assert_eq!(
        args.listen,
        vec!["10.0.0.1:9".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn an_unknown_key_names_its_line_and_the_likely_key() {
    let message = config_error("threads = 2\n\nlistn = [\"127.0.0.1:1\"]\n");
    assert!(
        message.contains("line 3: unknown key `listn` — did you mean `listen`?"),
        "{message}"
    );
}

#[test]
fn snake_case_keys_are_pointed_to_the_dashed_spelling() {
    let message = config_error("verbose_errors = true\n");
    assert!(
        message.contains("line 1") && message.contains("`verbose-errors`"),
        "{message}"
    );
}

#[test]
fn a_bad_value_names_the_key_and_line() {
    let message = config_error("log = \"info\"\nlisten = [\"not-an-address\"]\n");
    assert!(message.contains("line 2: key `listen`"), "{message}");
    assert!(message.contains("not-an-address"), "{message}");

    let message = config_error("threads = [1, 2]\n");
    assert!(message.contains("expects a single value"), "{message}");

    let message = config_error("verbose-errors = \"yes\"\n");
    assert!(message.contains("expects true or false"), "{message}");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let message = load(&[], &[("TSUNAGI_RELAY_THREADS", "many")])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("environment variable TSUNAGI_RELAY_THREADS:"),
        "{message}"
    );
}

#[test]
fn broken_toml_and_missing_files_are_reported() {
    let message = config_error("threads = \n");
    assert!(
        message.contains("is not valid TOML") && message.contains("line 1"),
        "{message}"
    );

    let message = load(&["--config", "/nonexistent/relay.toml"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("cannot read the config file /nonexistent/relay.toml"),
        "{message}"
    );
}

#[test]
fn the_binary_reads_its_config_file() {
    let setup = file("listen = [\"127.0.0.1:0\"]\nlog = \"warn\"\nthreads = 1\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tsunagi-relay"))
        .args(["--config", setup.file.to_str().unwrap(), "--listn", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "a mistyped flag is an error");

    let setup = file("listen = [\"127.0.0.1:0\"]\nlisten-typo = 1\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tsunagi-relay"))
        .args(["--config", setup.file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2: unknown key `listen-typo`"),
        "{stderr}"
    );
}
