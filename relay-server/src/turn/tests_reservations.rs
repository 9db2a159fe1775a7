//! Unit tests of port reservations (EVEN-PORT with R, RESERVATION-TOKEN): they
//! count against the allocation quotas, and a token is good on any core that
//! shares the reserving core's [`Shared`].

use std::net::SocketAddr;
use std::time::Duration;

use tsunagi::stun::{Attribute, Message, Method};

use super::tests::{Harness, PEER, UNIX, addr, code, config, relayed, reservation_token};
use crate::{Server, ServerConfig, Shared, TurnConfig, VirtualSockets};

const EVEN_R: [Attribute<'static>; 2] = [
    Attribute::RequestedTransport(17),
    Attribute::EvenPort { reserve_next: true },
];
const PLAIN: [Attribute<'static>; 1] = [Attribute::RequestedTransport(17)];

/// Allocates with EVEN-PORT (R) from `from`: the even relayed address and token.
fn reserve(h: &mut Harness, from: &str) -> (SocketAddr, [u8; 8]) {
    let bytes = h.request_from(from, Method::ALLOCATE, &EVEN_R);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(code(&bytes), None, "reserving Allocate from {from}");
    (relayed(&m)[0], reservation_token(&m).unwrap())
}

/// Allocates with `token` from `from`: the response.
fn claim(h: &mut Harness, from: &str, token: &[u8; 8]) -> Vec<u8> {
    let attrs = [
        Attribute::RequestedTransport(17),
        Attribute::ReservationToken(token),
    ];
    h.request_from(from, Method::ALLOCATE, &attrs)
}

/// Makes `h`'s server a core with `turn` on `shared` (as one worker of several).
fn core_on(h: &mut Harness, shared: &Shared, turn: &TurnConfig) {
    let sockets = Box::new(VirtualSockets::default());
    h.server = Server::with_turn(ServerConfig::default(), turn.clone(), sockets, shared);
    h.server.set_clock(h.now, UNIX);
}

fn plain(h: &mut Harness, from: &str) -> Option<u16> {
    code(&h.request_from(from, Method::ALLOCATE, &PLAIN))
}

#[test]
fn reservations_count_against_the_user_and_ip_quotas_until_they_expire() {
    for (user_quota, ip_quota) in [(3, 0), (0, 3)] {
        let mut h = Harness::new(TurnConfig {
            user_quota,
            ip_quota,
            ..config()
        });
        // An allocation that reserves a port counts twice.
        let _ = reserve(&mut h, "198.51.100.7:40000");
        // One left: another would need two, and takes nothing when refused.
        let bytes = h.request_from("198.51.100.7:40002", Method::ALLOCATE, &EVEN_R);
        assert_eq!(code(&bytes), Some(486), "quotas {user_quota}/{ip_quota}");
        assert_eq!(plain(&mut h, "198.51.100.7:40004"), None);
        assert_eq!(plain(&mut h, "198.51.100.7:40006"), Some(486));
        // The unclaimed reservation expires, and gives its count back.
        h.now += Duration::from_secs(31);
        assert!(h.server.poll_timeout().is_some_and(|at| at <= h.now));
        h.server.handle_timeout(h.now);
        assert_eq!(plain(&mut h, "198.51.100.7:40006"), None);
        assert_eq!(plain(&mut h, "198.51.100.7:40008"), Some(486));
    }
}

#[test]
fn a_claimed_reservation_becomes_the_allocations_count() {
    let mut h = Harness::new(TurnConfig {
        user_quota: 2,
        ..config()
    });
    let (even, token) = reserve(&mut h, "198.51.100.7:40000");
    assert_eq!(plain(&mut h, "198.51.100.7:40010"), Some(486), "reserved");
    // Claiming takes no more quota: the reservation's count moves over.
    let bytes = claim(&mut h, "198.51.100.7:40002", &token);
    let next = relayed(&Message::decode(&bytes).unwrap());
    assert_eq!(next, vec![SocketAddr::new(even.ip(), even.port() + 1)]);
    assert_eq!(plain(&mut h, "198.51.100.7:40004"), Some(486));
    // The claimed allocation's count ends with it (not with the 30 s).
    let bytes = h.request_from(
        "198.51.100.7:40002",
        Method::REFRESH,
        &[Attribute::Lifetime(0)],
    );
    assert_eq!(code(&bytes), None);
    assert_eq!(plain(&mut h, "198.51.100.7:40004"), None);
    h.now += Duration::from_secs(31);
    h.server.handle_timeout(h.now);
    assert_eq!(
        plain(&mut h, "198.51.100.7:40006"),
        Some(486),
        "no double release"
    );
}

#[test]
fn a_claim_from_another_client_ip_moves_the_count_or_leaves_the_reservation() {
    let mut h = Harness::new(TurnConfig {
        ip_quota: 2,
        ..config()
    });
    let (_, token) = reserve(&mut h, "198.51.100.7:40000");
    // 198.51.100.8 is full: its claim is refused and the reservation stays.
    assert_eq!(plain(&mut h, "198.51.100.8:1"), None);
    assert_eq!(plain(&mut h, "198.51.100.8:2"), None);
    assert_eq!(code(&claim(&mut h, "198.51.100.8:3", &token)), Some(486));
    assert_eq!(
        plain(&mut h, "198.51.100.7:40010"),
        Some(486),
        "still reserved"
    );
    // 198.51.100.9 takes it: its count goes up, the reserver's down.
    assert_eq!(code(&claim(&mut h, "198.51.100.9:1", &token)), None);
    assert_eq!(plain(&mut h, "198.51.100.9:2"), None);
    assert_eq!(plain(&mut h, "198.51.100.9:3"), Some(486));
    assert_eq!(plain(&mut h, "198.51.100.7:40002"), None);
    assert_eq!(plain(&mut h, "198.51.100.7:40004"), Some(486));
}

#[test]
fn a_token_is_good_on_another_core_and_expires_on_any() {
    let shared = Shared::new();
    let turn = TurnConfig {
        user_quota: 4,
        ..config()
    };
    let mut a = Harness::new(config());
    let mut b = Harness::new(config());
    b.now = a.now;
    core_on(&mut a, &shared, &turn);
    core_on(&mut b, &shared, &turn);

    // Reserved on core a, claimed on core b, which then relays on the port.
    let (even, token) = reserve(&mut a, "198.51.100.7:40000");
    let next = SocketAddr::new(even.ip(), even.port() + 1);
    let bytes = claim(&mut b, "198.51.100.7:40002", &token);
    assert_eq!(relayed(&Message::decode(&bytes).unwrap()), vec![next]);
    assert_eq!(
        code(&claim(&mut a, "198.51.100.7:40004", &token)),
        Some(508)
    );
    let permission = [Attribute::XorPeerAddress(addr(PEER))];
    let bytes = b.request_from("198.51.100.7:40002", Method::CREATE_PERMISSION, &permission);
    assert_eq!(code(&bytes), None);
    assert_eq!(b.peer_sends(next, PEER, b"rtcp").len(), 1);
    assert!(a.peer_sends(next, PEER, b"rtcp").is_empty(), "not a's port");

    // Another reservation (the user's quota of 4 is now full) expires for a
    // claim on core b although b's timer never ran for it: whichever core sees
    // it first ends it and gives its count back, once.
    let (_, token) = reserve(&mut a, "198.51.100.7:40006");
    assert_eq!(plain(&mut b, "198.51.100.7:40008"), Some(486));
    b.now += Duration::from_secs(31);
    assert_eq!(
        code(&claim(&mut b, "198.51.100.7:40010", &token)),
        Some(508)
    );
    a.now = b.now;
    a.server.handle_timeout(a.now);
    assert!(a.server.poll_timeout().is_some_and(|at| at > a.now));
    assert_eq!(plain(&mut a, "198.51.100.7:40012"), None);
    assert_eq!(plain(&mut b, "198.51.100.7:40014"), Some(486));
}

/// Cores on one `Shared` (one per worker) pick relay ports in different
/// orders: with one order they would all try the same ports first.
#[test]
fn cores_on_one_shared_pick_ports_in_different_orders() {
    let shared = Shared::new();
    let turn = TurnConfig {
        relay_ports: Some(1_024..=65_535),
        ..config()
    };
    let mut first_ports = Vec::new();
    for _ in 0..2 {
        let mut h = Harness::new(config());
        core_on(&mut h, &shared, &turn);
        let ports: Vec<u16> = (0..3)
            .map(|i| {
                let bytes = h.request_from(
                    &format!("198.51.100.7:{}", 40_000 + i),
                    Method::ALLOCATE,
                    &PLAIN,
                );
                relayed(&Message::decode(&bytes).unwrap())[0].port()
            })
            .collect();
        first_ports.push(ports);
    }
    // Equal only if two random starts in 64 512 ports coincide three times over.
    assert_ne!(first_ports[0], first_ports[1]);
}
