//! `tsunagi peer listen` and `tsunagi peer connect` find each other by peer id
//! through tsunagi-relay (rendezvous + TURN, `--auth-secret`) run in-process on
//! loopback, and 20 messages come back.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use common::Reap;
use tsunagi_relay::TurnConfig;
use tsunagi_relay::udp::{Options, Running};

const SECRET: &str = "peer-test-secret";

/// tsunagi-relay on 127.0.0.1 with `--auth-secret` and loopback peers allowed.
fn start_relay() -> Running {
    let turn = TurnConfig {
        auth_secrets: vec![SECRET.to_owned()],
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        relay_ports: None,
        allowed_peers: vec!["127.0.0.0/8".parse().unwrap()],
        max_bytes_per_sec: 0,
        ..TurnConfig::default()
    };
    let options = Options {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: 1,
        turn: Some(turn),
        ..Options::default()
    };
    tsunagi_relay::udp::start(&options).expect("tsunagi-relay did not start on loopback")
}

fn token(name: &str) -> String {
    common::token(SECRET, name, Duration::from_secs(600))
}

/// Starts `tsunagi peer listen` as `name` against `server`; returns it, its first
/// stdout line, and the rest of its stdout (open while the caller holds it).
fn listen(server: &str, name: &str) -> (Reap, String, Lines<BufReader<ChildStdout>>) {
    let mut listener = Reap(
        Command::new(env!("CARGO_BIN_EXE_tsunagi"))
            .args(["peer", "--server", server, "--token", &token(name)])
            .arg("listen")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(listener.0.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("no ready line").unwrap();
    (listener, ready, lines)
}

#[test]
fn listen_and_connect_by_peer_id_through_the_rendezvous_server() {
    let relay = start_relay();
    let server = relay.local_addresses()[0].to_string();
    let (_listener, ready, _lines) = listen(&server, "bob");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["event"], "ready", "{ready}");
    let peer_id = ready["peer_id"].as_str().unwrap().to_owned();

    let out = Command::new(env!("CARGO_BIN_EXE_tsunagi"))
        .args(["peer", "--server", &server, "--token", &token("alice")])
        .args(["connect", &peer_id, "--count", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let paths = ["direct-ipv6", "direct-ipv4", "relay"];
    let first = &events[0];
    assert_eq!(first["event"], "connected", "{stdout}");
    assert!(paths.contains(&first["path"].as_str().unwrap()), "{first}");
    assert!(first["connect_ms"].as_u64().is_some(), "{first}");
    let echoes = events.iter().filter(|e| e["event"] == "echo").count();
    assert_eq!(echoes, 20, "{stdout}");
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "echo")
            .all(|e| e["rtt_ms"].as_f64().is_some())
    );
    for e in events.iter().filter(|e| e["event"] == "path") {
        assert!(paths.contains(&e["path"].as_str().unwrap()), "{e}");
    }
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{stdout}");
    assert_eq!(done["sent"], 20);
    assert_eq!(done["received"], 20);
    assert!(paths.contains(&done["path"].as_str().unwrap()), "{done}");
    eprintln!("{stdout}");
    drop(relay);
}

/// Polls `done` every 20 ms for at most 10 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn listen_releases_its_allocation_on_sigterm() {
    let relay = start_relay();
    let server = relay.local_addresses()[0].to_string();
    let registry = relay.registry();
    let allocations = || registry.core_total("allocations_active");
    let (mut listener, ready, _lines) = listen(&server, "carol");
    assert!(ready.contains("\"ready\""), "{ready}");
    wait_for("the listener's allocation", || allocations() == 1);
    let status = Command::new("kill")
        .args(["-TERM", &listener.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    wait_for("the listener's exit", || {
        exit = listener.0.try_wait().unwrap();
        exit.is_some()
    });
    assert!(exit.unwrap().success(), "{exit:?}");
    // Released (Refresh with LIFETIME 0), not left to expire in 10 minutes.
    wait_for("the release", || allocations() == 0);
}
