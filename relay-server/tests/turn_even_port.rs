//! EVEN-PORT with the R bit and RESERVATION-TOKEN (RFC 8656 §7.2) on real
//! sockets: one client gets an even relayed port and a token, a second client
//! allocates with the token and gets the next port, and both relay to a peer
//! from those ports. Loopback only, a fraction of a second.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::RESPONSE;
use common::turn::{TurnClient, code, peer_socket, start_turn};
use tsunagi::stun::{Attribute, AttributeType, Class, Message, Method};

fn relayed_and_token(response: &[u8]) -> (SocketAddr, Option<[u8; 8]>) {
    let m = Message::decode(response).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", m.error_code());
    let relayed = m
        .attributes()
        .iter()
        .find_map(|a| match a {
            Attribute::XorRelayedAddress(r) => Some(*r),
            _ => None,
        })
        .unwrap();
    let token = match m.get(AttributeType::RESERVATION_TOKEN) {
        Some(Attribute::ReservationToken(t)) => Some(**t),
        _ => None,
    };
    (relayed, token)
}

/// `client` allocates an even port with the R bit; returns the port and the
/// RESERVATION-TOKEN for the next one.
fn reserve_even(client: &mut TurnClient) -> (SocketAddr, [u8; 8]) {
    let response = client.request(
        Method::ALLOCATE,
        &[
            Attribute::RequestedTransport(17),
            Attribute::EvenPort { reserve_next: true },
        ],
    );
    let (even, token) = relayed_and_token(&response);
    (even, token.expect("RESERVATION-TOKEN"))
}

/// `client` relays one datagram to `peer`, which must see it from `relayed`.
fn relays_from(client: &mut TurnClient, peer: &std::net::UdpSocket, relayed: SocketAddr) {
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(
        client.create_permission(peer_addr),
        None,
        "CreatePermission"
    );
    client.send_data(peer_addr, b"hi");
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).expect("the peer got the datagram");
    assert_eq!((&buf[..n], from), (&b"hi"[..], relayed));
}

#[test]
fn even_port_reservation_is_honoured_on_real_sockets() {
    let relay = start_turn("127.0.0.1:0", &["--user", "alice:pw"]);
    let server = relay.addresses[0];
    let peer = peer_socket("127.0.0.1:0");

    let mut rtp = TurnClient::new(server, "alice", "pw");
    let (even, token) = reserve_even(&mut rtp);
    assert_eq!(even.port() % 2, 0);

    let mut rtcp = TurnClient::new(server, "alice", "pw");
    let with_token = [
        Attribute::RequestedTransport(17),
        Attribute::ReservationToken(&token),
    ];
    let (next, none) = relayed_and_token(&rtcp.request(Method::ALLOCATE, &with_token));
    assert_eq!(next, SocketAddr::new(even.ip(), even.port() + 1));
    assert_eq!(none, None);

    relays_from(&mut rtp, &peer, even);
    relays_from(&mut rtcp, &peer, next);

    // Used once: a third client with the same token gets 508.
    let mut late = TurnClient::new(server, "alice", "pw");
    assert_eq!(
        code(&late.request(Method::ALLOCATE, &with_token)),
        Some(508)
    );
}

/// RESERVATION-TOKENs work across the driver's workers: SO_REUSEPORT spreads
/// clients over workers by 5-tuple, and the client claiming a token (the RTCP
/// socket, another source port) usually lands on another worker than the one
/// that reserved the port. Eight reservations, each claimed from a fresh
/// socket on a four-worker relay: with tokens local to a worker, all eight
/// would have to hash to the reserving worker (4^-8). Every claim must get the
/// reserved port, and relay through it both ways.
#[test]
fn reservation_tokens_are_claimed_on_any_worker() {
    use tsunagi_relay::udp::{Options, start};
    use tsunagi_relay::{Cidr, TurnConfig};

    let running = start(&Options {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: 4,
        turn: Some(TurnConfig {
            users: [("alice".to_string(), "pw".to_string())].into(),
            relay_ips: vec!["127.0.0.1".parse().unwrap()],
            relay_ports: None,
            allowed_peers: vec!["127.0.0.0/8".parse::<Cidr>().unwrap()],
            ..TurnConfig::default()
        }),
        ..Options::default()
    })
    .expect("relay starts on loopback");
    assert_eq!(running.workers(), 4);
    let server = running.local_addresses()[0];
    let peer = peer_socket("127.0.0.1:0");

    let mut claimed = Vec::new();
    for round in 0..8 {
        let mut rtp = TurnClient::new(server, "alice", "pw");
        let (even, token) = reserve_even(&mut rtp);
        let mut rtcp = TurnClient::new(server, "alice", "pw");
        let response = rtcp.request(
            Method::ALLOCATE,
            &[
                Attribute::RequestedTransport(17),
                Attribute::ReservationToken(&token),
            ],
        );
        assert_eq!(
            code(&response),
            None,
            "round {round}: the claim of a token failed"
        );
        let (next, _) = relayed_and_token(&response);
        assert_eq!(
            next,
            SocketAddr::new(even.ip(), even.port() + 1),
            "round {round}"
        );
        claimed.push((rtp, rtcp, next));
    }
    // The claiming worker sends from and receives on the adopted socket.
    for (_, rtcp, next) in &mut claimed {
        relays_from(rtcp, &peer, *next);
        peer.send_to(b"back", *next).unwrap();
        let data = rtcp.receive(RESPONSE).expect("a Data indication");
        let m = Message::decode(&data).unwrap();
        assert_eq!(m.method(), Method::DATA);
        assert!(
            m.attributes()
                .iter()
                .any(|a| matches!(a, Attribute::Data(d) if *d == b"back")),
            "{m:?}"
        );
    }
    assert!(running.shutdown(std::time::Duration::from_secs(5)));
}
