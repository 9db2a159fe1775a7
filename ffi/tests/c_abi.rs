//! Builds the C test and the C sample with gcc against `libtsunagi_ffi.a` and runs
//! them: the test under valgrind (no error and no definite or indirect leak allowed),
//! the sample directly.

mod common;

use std::process::Command;

use common::{NATIVE_LIBS, have, lib_dir, repo, run, scratch};

fn build_c(source: &str, out: &std::path::Path) {
    let repo = repo();
    run(Command::new("gcc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-g", "-I"])
        .arg(repo.join("bindings/c"))
        .arg(repo.join(source))
        .arg(lib_dir().join("libtsunagi_ffi.a"))
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(out));
}

#[test]
fn c_api_test_passes_under_valgrind() {
    if !have("gcc") {
        println!("SKIPPED(gcc not installed: the C ABI test needs it)");
        return;
    }
    let dir = scratch("c-api");
    let exe = dir.join("api_test");
    build_c("ffi/tests/c/api_test.c", &exe);
    let out = if have("valgrind") {
        let supp = repo().join("ffi/tests/valgrind.supp");
        run(Command::new("valgrind")
            .args([
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--show-leak-kinds=definite,indirect",
            ])
            .arg(format!("--suppressions={}", supp.display()))
            .arg(&exe))
    } else {
        println!("SKIPPED(valgrind not installed: the C test ran without it)");
        run(&mut Command::new(&exe))
    };
    assert!(String::from_utf8_lossy(&out.stdout).contains(" passed, 0 failed"));
}

#[test]
fn c_sample_connects_two_endpoints_on_loopback() {
    if !have("gcc") {
        println!("SKIPPED(gcc not installed: the C sample needs it)");
        return;
    }
    let dir = scratch("c-sample");
    let exe = dir.join("loopback");
    build_c("samples/c/loopback.c", &exe);
    let out = run(&mut Command::new(&exe));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bob got on channel 0: hello"), "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}
