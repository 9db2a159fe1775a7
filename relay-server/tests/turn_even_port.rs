//! EVEN-PORT with the R bit and RESERVATION-TOKEN (RFC 8656 §7.2) on real
//! sockets: one client gets an even relayed port and a token, a second client
//! allocates with the token and gets the next port, and both relay to a peer
//! from those ports. Loopback only, a fraction of a second.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

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
    let response = rtp.request(
        Method::ALLOCATE,
        &[
            Attribute::RequestedTransport(17),
            Attribute::EvenPort { reserve_next: true },
        ],
    );
    let (even, token) = relayed_and_token(&response);
    assert_eq!(even.port() % 2, 0);
    let token = token.expect("RESERVATION-TOKEN");

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
