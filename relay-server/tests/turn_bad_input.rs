//! Hostile and broken input against the running `tsunagi-relay`: malformed and
//! truncated messages, wrong integrity, expired or forged REST credentials,
//! permission bypass attempts, denied peers. Each gets the right error or
//! silence, and a peer socket that must receive nothing receives nothing.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::turn::{TurnClient, code, metric, peer_socket, send_indication, start_turn};
use tsunagi::stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

const SILENCE: Duration = Duration::from_millis(300);

fn to_peers(relay: &common::Relay) -> u64 {
    metric(
        relay,
        "tsunagi_relay_relayed_packets_total{direction=\"to_peer\"}",
    )
    .unwrap_or(0)
}

#[test]
fn malformed_truncated_and_unauthenticated_requests() {
    let relay = start_turn("127.0.0.1:0", &["--user", "alice:pw"]);
    let server = relay.addresses[0];
    let mut client = TurnClient::new(server, "alice", "pw");
    // Unauthenticated: 401 with REALM and NONCE, small.
    let request = client.build(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    let response = client.exchange(&request).unwrap();
    assert_eq!(code(&response), Some(401));
    assert!(
        response.len() <= request.len() + 100,
        "{} bytes",
        response.len()
    );
    // Truncated and garbage: silence.
    client.nonce = "x".into();
    let signed = client.build(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    for cut in [1, 4, 19, 21, signed.len() - 3] {
        client.socket.send_to(&signed[..cut], server).unwrap();
        assert!(
            client.receive(SILENCE).is_none(),
            "answer to a {cut}-byte prefix"
        );
    }
    client.socket.send_to(&[0xFF; 64], server).unwrap();
    assert!(client.receive(SILENCE).is_none());
    // Header fine, attribute broken: 400.
    let mut broken = signed.clone();
    broken[2..4].copy_from_slice(&((signed.len() - 20 + 4) as u16).to_be_bytes());
    broken.extend([0x00, 0x20, 0x00, 0x08]); // XOR-MAPPED-ADDRESS claiming 8 bytes, none follow
    let r = client.exchange(&broken);
    assert!(r.is_none() || code(&r.unwrap()) == Some(400));
    // Wrong integrity: 401.
    let mut wrong = TurnClient::new(server, "alice", "not-pw");
    assert_eq!(
        code(&wrong.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)])),
        Some(401)
    );
    // A flipped bit inside a signed request: 401 (or 400 if it hit a length).
    let mut ok = TurnClient::new(server, "alice", "pw");
    ok.request(Method::ALLOCATE, &[Attribute::RequestedTransport(6)]);
    let mut tampered = ok.build(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    let at = tampered.len() - 40;
    tampered[at] ^= 0x01;
    let r = ok.exchange(&tampered);
    assert!(matches!(r.as_deref().and_then(code), Some(400 | 401)) || r.is_none());
    assert_eq!(
        metric(&relay, "tsunagi_relay_allocations_created_total"),
        Some(0)
    );
}

#[test]
fn expired_and_forged_rest_credentials() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--auth-secret", "old", "--auth-secret", "new"],
    );
    let server = relay.addresses[0];
    let ttl = Duration::from_secs(600);
    for (secret, now, want) in [
        ("new", common::unix_now(), None),
        ("old", common::unix_now(), None),
        ("new", common::unix_now() - 3600, Some(401)),
        ("forged", common::unix_now(), Some(401)),
    ] {
        let c = tsunagi::relay::rest_credentials(secret, "player", ttl, now);
        let mut client = TurnClient::new(server, &c.username, &c.password);
        let r = client.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
        assert_eq!(code(&r), want, "{secret} at {now}");
    }
    assert_eq!(metric(&relay, "tsunagi_relay_auth_failures_total"), Some(2));
}

#[test]
fn permission_bypass_attempts_relay_nothing() {
    let relay = start_turn("127.0.0.1:0", &["--user", "alice:pw"]);
    let server = relay.addresses[0];
    let peer = peer_socket("127.0.0.1:0");
    let peer_addr = peer.local_addr().unwrap();
    let mut client = TurnClient::new(server, "alice", "pw");
    let relayed = client.allocate(&[])[0];

    // Send indication without a permission: dropped.
    client.send_data(peer_addr, b"sneak");
    // ChannelData on a channel never bound: dropped.
    client
        .socket
        .send_to(&[0x40, 0x01, 0x00, 0x02, b'h', b'i'], server)
        .unwrap();
    // A stranger's Send indication (no allocation on its 5-tuple): dropped.
    let stranger = peer_socket("127.0.0.1:0");
    stranger
        .send_to(&send_indication(peer_addr, b"x"), server)
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        peer.recv_from(&mut buf).is_err(),
        "peer received data without permission"
    );
    // The peer cannot reach the client through the relay without a permission.
    peer.send_to(b"in", relayed).unwrap();
    assert!(client.receive(SILENCE).is_none());
    assert_eq!(to_peers(&relay), 0);

    // With a permission it flows both ways (the control for the above).
    assert_eq!(client.create_permission(peer_addr), None);
    client.send_data(peer_addr, b"legit");
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"legit"[..], relayed));
    peer.send_to(b"back", relayed).unwrap();
    let data = client.receive(Duration::from_secs(2)).unwrap();
    let m = Message::decode(&data).unwrap();
    assert_eq!(m.method(), Method::DATA);
    assert_eq!(to_peers(&relay), 1);
    assert!(metric(&relay, "tsunagi_relay_unpermitted_drops_total").unwrap_or(0) >= 3);
}

#[test]
fn denied_peers_get_403() {
    // No --allow-peer for 10/8 or the relay's own listener.
    let relay = start_turn("127.0.0.1:0", &["--user", "alice:pw"]);
    let server = relay.addresses[0];
    let mut client = TurnClient::new(server, "alice", "pw");
    client.allocate(&[]);
    for peer in [
        "10.0.0.1:9",
        "192.168.1.1:9",
        "169.254.1.1:9",
        "100.64.0.1:9",
    ] {
        let peer = peer.parse().unwrap();
        assert_eq!(client.create_permission(peer), Some(403), "{peer}");
        let bind = [
            Attribute::ChannelNumber(0x4000),
            Attribute::XorPeerAddress(peer),
        ];
        assert_eq!(
            code(&client.request(Method::CHANNEL_BIND, &bind)),
            Some(403),
            "{peer}"
        );
    }
    assert_eq!(
        client.create_permission(server),
        Some(403),
        "the relay's own TURN port"
    );
    assert_eq!(metric(&relay, "tsunagi_relay_denied_peers_total"), Some(9));
}

#[test]
fn ipv4_client_reaches_ipv6_peer_through_a_dual_allocation() {
    let relay = start_turn(
        "127.0.0.1:0",
        &[
            "--user",
            "alice:pw",
            "--relay-ip",
            "127.0.0.1",
            "--relay-ip",
            "::1",
        ],
    );
    let server = relay.addresses[0];
    let mut client = TurnClient::new(server, "alice", "pw");
    let relayed = client.allocate(&[Attribute::AdditionalAddressFamily(
        tsunagi::stun::AddressFamily::V6,
    )]);
    assert_eq!(relayed.len(), 2);
    let v6 = relayed[1];
    assert!(v6.is_ipv6());
    let peer = peer_socket("[::1]:0");
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(client.create_permission(peer_addr), None);
    client.send_data(peer_addr, b"v4 to v6");
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"v4 to v6"[..], v6));
    // And back: the IPv6 peer's datagram reaches the IPv4 client.
    peer.send_to(b"v6 to v4", v6).unwrap();
    let data = client.receive(Duration::from_secs(2)).unwrap();
    let m = Message::decode(&data).unwrap();
    assert_eq!(
        m.get(tsunagi::stun::AttributeType::DATA),
        Some(&Attribute::Data(b"v6 to v4"))
    );
    let _ = (
        Class::Request,
        MessageBuilder::new(Class::Request, Method::SEND, TransactionId::new([0; 12])),
    );
}
