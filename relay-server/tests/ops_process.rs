//! The relay as operators run it: the HTTP endpoint (`/metrics`, `/healthz`),
//! graceful shutdown on SIGTERM / SIGINT, and dropping privileges.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::Relay;
use tsunagi::stun::{Class, Message, MessageBuilder, Method, TransactionId};

/// The relay on 127.0.0.1 (any port) with `args`.
fn start_relay(args: &[&str]) -> Relay {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Relay::start(&all)
}

/// Operating the relay's process.
impl Relay {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit up to `limit`; returns the status and how long it took.
    fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// One HTTP/1.1 GET; returns the status code and body.
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{body}")) as u64
}

/// Sends Binding requests and waits for each answer.
fn binding_exchanges(server: SocketAddr, n: u8) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for i in 0..n {
        let request =
            MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([i; 12]))
                .finish();
        socket.send_to(&request, server).unwrap();
        let mut buf = [0u8; 1500];
        let (len, _) = socket.recv_from(&mut buf).expect("a Binding response");
        let response = Message::decode(&buf[..len]).unwrap();
        assert_eq!(response.class(), Class::SuccessResponse);
    }
}

#[test]
fn metrics_count_traffic_and_healthz_answers() {
    let relay = start_relay(&["--http", "127.0.0.1:0", "--threads", "2"]);
    let http = relay.http.expect("a `listening http` line");
    binding_exchanges(relay.addresses[0], 5);
    // A datagram that is neither STUN nor ChannelData.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"\xffnot stun", relay.addresses[0])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let (status, body) = get(http, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&body, "tsunagi_relay_stun_requests_total"), 5);
    assert_eq!(
        metric(&body, "tsunagi_relay_udp_datagrams_received_total"),
        6
    );
    assert_eq!(metric(&body, "tsunagi_relay_udp_datagrams_sent_total"), 5);
    assert_eq!(metric(&body, "tsunagi_relay_malformed_total"), 1);
    assert_eq!(metric(&body, "tsunagi_relay_allocations"), 0);
    assert_eq!(metric(&body, "tsunagi_relay_workers"), 2);
    for name in [
        "tsunagi_relay_relayed_packets_total{direction=\"to_peer\"}",
        "tsunagi_relay_relayed_bytes_total{direction=\"to_client\"}",
        "tsunagi_relay_auth_failures_total",
        "tsunagi_relay_quota_hits_total{kind=\"allocation_quota\"}",
    ] {
        assert!(
            body.contains(&format!("{name} 0\n")),
            "{name} missing in:\n{body}"
        );
    }
    assert!(body.contains("# TYPE tsunagi_relay_allocations gauge"));

    assert_eq!(get(http, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(http, "/nope").0, 404);
}

#[test]
fn sigterm_stops_within_two_seconds_with_status_zero() {
    for signal in ["TERM", "INT"] {
        let mut relay = start_relay(&["--http", "127.0.0.1:0"]);
        binding_exchanges(relay.addresses[0], 1);
        relay.signal(signal);
        let (status, took) = relay
            .wait_exit(Duration::from_secs(5))
            .expect("the relay exits after SIG{signal}");
        assert!(status.success(), "SIG{signal}: exit status {status}");
        assert!(took < Duration::from_secs(2), "SIG{signal}: took {took:?}");
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn runs_as_nobody_when_asked() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs a test run as root");
        return;
    }
    let relay = start_relay(&["--user-id", "nobody", "--http", "127.0.0.1:0"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.pid())).unwrap();
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let nobody = "65534".to_string();
    assert_eq!(
        ids("Uid:"),
        vec![nobody.clone(); 4],
        "real, effective, saved, fs uid"
    );
    assert_eq!(ids("Gid:"), vec![nobody.clone(); 4]);
    assert_eq!(ids("Groups:"), vec![nobody]);
    // Every thread changed, and the service still answers.
    binding_exchanges(relay.addresses[0], 2);
    assert_eq!(get(relay.http.unwrap(), "/healthz").0, 200);
}

#[test]
fn an_unknown_user_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_tsunagi-relay"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--user-id",
            "no-such-user-tsunagi",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no user \"no-such-user-tsunagi\""),
        "{stderr}"
    );
}
