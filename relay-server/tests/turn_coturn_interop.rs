//! coturn's `turnutils_uclient` against `tsunagi-relay`: channels and Send
//! indications, to `turnutils_peer` (an echo peer) and client to client, with
//! static users and REST credentials. Loopback only.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::run_coturn_tool;
use common::turn::start_turn;

/// `turnutils_peer` on a free loopback port, killed on drop.
struct EchoPeer {
    child: Child,
    port: u16,
}

impl EchoPeer {
    fn start() -> EchoPeer {
        // Find a free port, then hand it to the peer (it takes no port 0). The
        // peer's readiness is checked by an echo before any test uses it.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let child = Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnutils_peer (install coturn)");
        let peer = EchoPeer { child, port };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        for _ in 0..100 {
            socket.send_to(b"ping", ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 16];
            if socket.recv_from(&mut buf).is_ok() {
                return peer;
            }
        }
        panic!("turnutils_peer on port {port} never echoed");
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `turnutils_uclient` reported.
#[derive(Debug)]
struct Report {
    sent: u64,
    received: u64,
    lost: u64,
    rtt_ms: f64,
}

fn field(out: &str, key: &str) -> Option<f64> {
    let at = out.rfind(key)? + key.len();
    let rest = out.get(at..)?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

fn uclient(port: u16, args: &[&str]) -> Report {
    let mut all: Vec<String> = vec!["-c".into(), "-p".into(), port.to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("127.0.0.1".into());
    let out = run_coturn_tool("turnutils_uclient", &all, Duration::from_secs(60));
    let report = Report {
        sent: field(&out, "tot_send_msgs=").unwrap_or(0.0) as u64,
        received: field(&out, "tot_recv_msgs=").unwrap_or(0.0) as u64,
        lost: field(&out, "Total lost packets").unwrap_or(-1.0) as u64,
        rtt_ms: field(&out, "Average round trip delay").unwrap_or(-1.0),
    };
    println!("turnutils_uclient {args:?}: {report:?}");
    assert!(
        report.sent > 0 && report.sent == report.received,
        "{report:?}\n{out}"
    );
    assert_eq!(report.lost, 0, "{out}");
    assert!(report.rtt_ms >= 0.0, "no round-trip figure in:\n{out}");
    report
}

#[test]
fn uclient_channels_and_send_indications_with_static_and_rest_credentials() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--user", "alice:pw", "--auth-secret", "s3cret"],
    );
    let port = relay.addresses[0].port();
    let peer = EchoPeer::start();
    let peer_port = peer.port.to_string();
    let to_peer = ["-e", "127.0.0.1", "-r", peer_port.as_str()];
    let static_user = ["-u", "alice", "-w", "pw"];
    let rest = ["-W", "s3cret"];
    let sizes = ["-n", "100", "-m", "5", "-l", "100"];
    let big = ["-n", "50", "-m", "3", "-l", "1000"];
    for (creds, send, size) in [
        (&static_user[..], false, &sizes),
        (&static_user[..], true, &sizes),
        (&rest[..], false, &big),
        (&rest[..], true, &sizes),
    ] {
        let mut args: Vec<&str> = creds.to_vec();
        args.extend(to_peer);
        args.extend(size.iter());
        if send {
            args.push("-s");
        }
        uclient(port, &args);
    }
}

#[test]
fn uclient_client_to_client() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--user", "alice:pw", "--auth-secret", "s3cret"],
    );
    let port = relay.addresses[0].port();
    uclient(
        port,
        &[
            "-y", "-u", "alice", "-w", "pw", "-n", "100", "-m", "4", "-l", "100",
        ],
    );
    uclient(
        port,
        &[
            "-y", "-s", "-W", "s3cret", "-n", "100", "-m", "4", "-l", "1000",
        ],
    );
}

#[test]
fn uclient_with_wrong_credentials_relays_nothing() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--user", "alice:pw", "--auth-secret", "s3cret"],
    );
    let port = relay.addresses[0].port().to_string();
    for creds in [["-u", "alice", "-w", "wrong"], ["-W", "guessed", "-u", "x"]] {
        let mut args: Vec<String> = ["-c", "-y", "-n", "5", "-p", &port]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(creds.iter().map(|s| s.to_string()));
        args.push("127.0.0.1".into());
        let out = run_coturn_tool("turnutils_uclient", &args, Duration::from_secs(60));
        assert!(!out.contains("tot_recv_msgs=5"), "{out}");
    }
    assert_eq!(
        common::turn::metric(&relay, "tsunagi_relay_allocations_created_total"),
        Some(0)
    );
}
