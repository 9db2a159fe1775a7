//! Compiles the Unity package's engine-independent core (`Runtime/Native.cs`,
//! `Runtime/TsunagiEndpoint.cs`) with a console test using Mono's `mcs`, and runs it
//! with `mono` against `libtsunagi_ffi.so` (found through `LD_LIBRARY_PATH`).

mod common;

use std::process::Command;

use common::{have, lib_dir, repo, run, scratch};

#[test]
fn csharp_endpoints_exchange_messages_under_mono() {
    if !have("mcs") || !have("mono") {
        println!("SKIPPED(mono-mcs / mono-runtime not installed: the C# test needs them)");
        return;
    }
    let repo = repo();
    let runtime = repo.join("bindings/unity/Runtime");
    let exe = scratch("csharp").join("two_endpoints.exe");
    run(Command::new("mcs")
        .args(["-unsafe", "-warnaserror", "-nologo"])
        .arg(format!("-out:{}", exe.display()))
        .arg(runtime.join("Native.cs"))
        .arg(runtime.join("TsunagiEndpoint.cs"))
        .arg(repo.join("ffi/tests/cs/TwoEndpoints.cs")));
    let out = run(Command::new("mono")
        .arg(&exe)
        .env("LD_LIBRARY_PATH", lib_dir()));
    assert!(String::from_utf8_lossy(&out.stdout).contains(" passed, 0 failed"));
}
