//! The rendezvous service in the real binary: two SDK clients on real UDP sockets
//! register with REST tokens and pass an offer and an answer; the relay runs with
//! several workers, so registration and delivery may cross workers.

#![allow(clippy::panic, clippy::unwrap_used)] // test code

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::turn::start_turn;
use tsunagi::relay::rest_credentials;
use tsunagi::signal::{Client, Event};

const SECRET: &str = "rendezvous-secret";

struct Peer {
    socket: UdpSocket,
    client: Client,
}

impl Peer {
    fn new(relay: std::net::SocketAddr, name: &str, id: u8) -> Peer {
        let now_unix = common::unix_now();
        let creds = rest_credentials(SECRET, name, Duration::from_secs(300), now_unix);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Peer {
            socket,
            client: Client::new(relay, creds, [id; 32], Instant::now()),
        }
    }

    /// Drives the client until `want` matches an event, within 5 s.
    fn until(&mut self, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            while let Some(t) = self.client.poll_transmit() {
                self.socket.send_to(&t.bytes, t.to).unwrap();
            }
            if let Some(e) = self.client.poll_event() {
                if want(&e) {
                    return e;
                }
                continue;
            }
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                self.client.handle_input(Instant::now(), from, &buf[..n]);
            }
            self.client.handle_timeout(Instant::now());
        }
        panic!("no matching rendezvous event within 5 s");
    }
}

#[test]
fn two_peers_exchange_offer_and_answer_through_the_relay() {
    // Two workers: registration and delivery may land on different ones.
    let relay = common::Relay::start(&[
        "--listen",
        "127.0.0.1:0",
        "--allow-peer",
        "127.0.0.0/8",
        "--threads",
        "2",
        "--auth-secret",
        SECRET,
    ]);
    let server = relay.addresses[0];
    let mut alice = Peer::new(server, "alice", 1);
    let mut bob = Peer::new(server, "bob", 2);
    let a = alice.until(|e| matches!(e, Event::Registered { .. }));
    assert_eq!(
        a,
        Event::Registered {
            mapped: Some(alice.socket.local_addr().unwrap())
        }
    );
    bob.until(|e| matches!(e, Event::Registered { .. }));

    alice
        .client
        .send(Instant::now(), [2; 32], b"offer from alice");
    alice.until(|e| *e == Event::Delivered { to: [2; 32] });
    let got = bob.until(|e| matches!(e, Event::Received { .. }));
    assert_eq!(
        got,
        Event::Received {
            from: [1; 32],
            data: b"offer from alice".to_vec()
        }
    );

    bob.client.send(Instant::now(), [1; 32], b"answer from bob");
    bob.until(|e| *e == Event::Delivered { to: [1; 32] });
    let got = alice.until(|e| matches!(e, Event::Received { .. }));
    assert_eq!(
        got,
        Event::Received {
            from: [2; 32],
            data: b"answer from bob".to_vec()
        }
    );

    alice.client.send(Instant::now(), [9; 32], b"to nobody");
    match alice.until(|e| matches!(e, Event::Undeliverable { .. })) {
        Event::Undeliverable { reason, .. } => assert!(reason.starts_with("404"), "{reason}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_forged_token_cannot_register() {
    let relay = start_turn("127.0.0.1:0", &["--auth-secret", SECRET]);
    let server = relay.addresses[0];
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let now_unix = common::unix_now();
    let forged = rest_credentials(
        "wrong-secret",
        "mallory",
        Duration::from_secs(300),
        now_unix,
    );
    let mut m = Peer {
        socket,
        client: Client::new(server, forged, [7; 32], Instant::now()),
    };
    match m.until(|e| matches!(e, Event::RegistrationFailed(_))) {
        Event::RegistrationFailed(why) => assert!(why.starts_with("401"), "{why}"),
        e => panic!("{e:?}"),
    }
}
