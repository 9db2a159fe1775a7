//! Builds the C test and the C sample with gcc against `libtsunagi_ffi.a` and runs
//! them: the test under valgrind (no error and no definite or indirect leak allowed),
//! the sample directly. The C test gets a tsunagi-relay (in-process, `--auth-secret`,
//! loopback) and two tokens for its relay, blob and connect-by-peer-id parts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "c-abi-test-secret";

/// tsunagi-relay on 127.0.0.1 with `--auth-secret`, loopback peers allowed.
fn start_relay() -> tsunagi_relay::udp::Running {
    let turn = tsunagi_relay::TurnConfig {
        auth_secrets: vec![SECRET.to_owned()],
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        relay_ports: None,
        allowed_peers: vec!["127.0.0.0/8".parse().unwrap()],
        max_bytes_per_sec: 0,
        ..tsunagi_relay::TurnConfig::default()
    };
    let options = tsunagi_relay::udp::Options {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: 1,
        turn: Some(turn),
        ..tsunagi_relay::udp::Options::default()
    };
    tsunagi_relay::udp::start(&options).expect("tsunagi-relay did not start on loopback")
}

fn token(name: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tsunagi::relay::rest_credentials(SECRET, name, Duration::from_secs(3600), now).to_token()
}

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
    let relay = start_relay();
    let args = [
        relay.local_addresses()[0].to_string(),
        token("alice"),
        token("bob"),
    ];
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
            .arg(&exe)
            .args(&args))
    } else {
        println!("SKIPPED(valgrind not installed: the C test ran without it)");
        run(Command::new(&exe).args(&args))
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("SKIPPED"), "{stdout}");
    relay.shutdown(Duration::from_secs(1));
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
