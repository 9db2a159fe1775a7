//! Helpers for the tests that build C, C++ and C# programs against the native library.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The directory holding `libtsunagi_ffi.a` and `.so`: the profile directory after
/// `cargo build`, or its `deps/` when only `cargo test` built the crate (this test
/// runs from `deps/`, and cargo does not copy a test build's libraries up).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let profile = deps.parent().unwrap().to_path_buf();
    let has_both = |dir: &Path| {
        dir.join("libtsunagi_ffi.a").exists() && dir.join("libtsunagi_ffi.so").exists()
    };
    // deps/ first: it always holds the library this test binary was built with.
    for dir in [deps, profile] {
        if has_both(&dir) {
            return dir;
        }
    }
    panic!(
        "libtsunagi_ffi.a/.so not found next to {}: build the crate first",
        exe.display()
    );
}

/// A fresh scratch directory for build outputs of `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = lib_dir().join("ffi-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True if `tool` runs (`tool --version`).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The native libraries a Rust staticlib needs on Linux.
pub const NATIVE_LIBS: &[&str] = &["-lpthread", "-ldl", "-lm", "-lrt"];

/// Runs `command`, printing its output; panics with it if it fails.
pub fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("$ {shown}\n{stdout}");
    if !out.status.success() {
        panic!("{shown} failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    if !stderr.is_empty() {
        // valgrind's summary and compiler notes, kept visible in the test log.
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        println!(
            "stderr (tail):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    out
}
