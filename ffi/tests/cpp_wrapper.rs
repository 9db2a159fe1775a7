//! Builds the C++ wrapper test (`bindings/cpp/tsunagi.hpp`) with g++ in C++17 and C++20,
//! warnings as errors, without exceptions or RTTI, and runs it.

mod common;

use std::process::Command;

use common::{NATIVE_LIBS, have, lib_dir, repo, run, scratch};

#[test]
fn cpp_wrapper_exchanges_messages_in_cpp17_and_cpp20() {
    if !have("g++") {
        println!("SKIPPED(g++ not installed: the C++ wrapper test needs it)");
        return;
    }
    let repo = repo();
    let dir = scratch("cpp");
    for std in ["c++17", "c++20"] {
        let exe = dir.join(format!("wrapper_test_{std}"));
        run(Command::new("g++")
            .arg(format!("-std={std}"))
            .args([
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fno-exceptions",
                "-fno-rtti",
                "-I",
            ])
            .arg(repo.join("bindings/c"))
            .arg("-I")
            .arg(repo.join("bindings/cpp"))
            .arg(repo.join("ffi/tests/cpp/wrapper_test.cpp"))
            .arg(lib_dir().join("libtsunagi_ffi.a"))
            .args(NATIVE_LIBS)
            .arg("-o")
            .arg(&exe));
        let out = run(&mut Command::new(&exe));
        assert!(String::from_utf8_lossy(&out.stdout).contains(" passed, 0 failed"));
    }
}
