//! `tsunagi natcheck` end to end on loopback, against the RFC 5780 STUN service of
//! `tsunagi-relay` run in-process on 127.0.0.1 with the alternate 127.0.0.2 (Linux
//! routes all of 127.0.0.0/8 to loopback): no NAT, so endpoint-independent.

use std::net::SocketAddr;
use std::process::{Command, Output};

use tsunagi_relay::udp::{Options, start};

/// Starts the STUN service; its threads live until the test process exits.
fn relay() -> SocketAddr {
    let options = Options {
        listen: vec!["127.0.0.1:0".parse().expect("literal address")],
        rfc5780_alternate: Some("127.0.0.2:0".parse().expect("literal address")),
        ..Options::default()
    };
    let running = start(&options).expect(
        "cannot start the in-process STUN service on 127.0.0.1 + 127.0.0.2 \
         (Linux routes 127.0.0.0/8 to loopback; is loopback up?)",
    );
    let primary = running
        .rfc5780()
        .map(|r| r.primary())
        .expect("RFC 5780 is enabled");
    // Keep serving after this function returns.
    std::thread::spawn(move || running.wait());
    primary
}

fn natcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsunagi"))
        .arg("natcheck")
        .args(args)
        .env("LANG", "C")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()
        .expect("the tsunagi binary runs")
}

#[test]
fn json_on_loopback_says_no_nat_and_endpoint_independent() {
    let server = relay().to_string();
    let out = natcheck(&["--server", &server, "--json", "--quick"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let parsed = serde_json::from_str::<serde_json::Value>(&stdout);
    assert!(parsed.is_ok(), "not JSON ({parsed:?}):\n{stdout}\n{stderr}");
    let v = parsed.unwrap_or_default();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["server"], server.as_str());
    assert_eq!(v["mapping"], "endpoint-independent", "{v:#}");
    assert_eq!(v["filtering"], "endpoint-independent", "{v:#}");
    assert_eq!(
        v["mapped_address"], v["local_address"],
        "no NAT on loopback: {v:#}"
    );
    assert_eq!(
        v["server_other_address"]
            .as_str()
            .map(|a| a.starts_with("127.0.0.2:")),
        Some(true)
    );
    assert_eq!(v["quick"], true);
    assert_eq!(v["binding_lifetime_s"], serde_json::Value::Null);
    for key in [
        "port_allocation",
        "port_range",
        "hairpinning",
        "nat_layers",
        "cgn",
        "ipv6",
        "nat64_prefix",
        "port_mapping",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v:#}");
    }
}

#[test]
fn text_on_loopback_in_both_languages() {
    let server = relay().to_string();
    let out = natcheck(&["--server", &server, "--quick"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Open: players can reach this machine directly"),
        "{text}"
    );
    assert!(
        text.contains("open internet (no NAT, no firewall)"),
        "{text}"
    );
    assert!(text.contains("not measured (quick check"), "{text}");
    let out = natcheck(&["--server", &server, "--quick", "--lang", "ja"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("オープン: 他のプレイヤーがこのマシンに直接つながります"),
        "{text}"
    );
    assert!(text.contains("インターネット直結"), "{text}");
}

#[test]
fn a_silent_server_is_a_clear_error_with_exit_code_2() {
    // A port nobody listens on: the kernel answers ICMP port unreachable, the check
    // hears nothing.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent = socket.local_addr().expect("local address").to_string();
    drop(socket);
    let out = natcheck(&["--server", &silent, "--json", "--quick", "--timeout", "0.5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no answer from {silent} over UDP within 0.5 s")),
        "{stderr}"
    );
    assert!(stderr.contains("is UDP allowed out?"), "{stderr}");
}

#[test]
fn bad_arguments_say_what_to_do() {
    let out = natcheck(&["--server", "example.invalid:notaport"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not a port"), "{stderr}");
    let out = natcheck(&["--server", "127.0.0.1:3478", "--max-lifetime", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-lifetime 1 is not usable"));
}

#[test]
fn ipv6_on_loopback_is_reachable_when_the_host_has_it() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this host");
        return;
    }
    let options = Options {
        listen: vec![
            "127.0.0.1:0".parse().expect("literal address"),
            "[::1]:0".parse().expect("literal address"),
        ],
        rfc5780_alternate: Some("127.0.0.2:0".parse().expect("literal address")),
        ..Options::default()
    };
    let running = start(&options).expect("cannot start the in-process STUN service");
    let primary = running
        .rfc5780()
        .map(|r| r.primary())
        .expect("RFC 5780 is enabled");
    let v6 = running
        .local_addresses()
        .iter()
        .find(|a| a.is_ipv6())
        .copied()
        .expect("an IPv6 socket");
    std::thread::spawn(move || running.wait());
    let out = natcheck(&[
        "--server",
        &primary.to_string(),
        "--server6",
        &v6.to_string(),
        "--json",
        "--quick",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
    assert_eq!(v["ipv6"]["reachable"], true, "{v:#}");
    assert_eq!(v["ipv6"]["address"], "::1", "{v:#}");
}
