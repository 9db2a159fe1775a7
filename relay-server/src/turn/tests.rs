//! Unit tests of the TURN core, without sockets: a client and peers drive a
//! [`Server`] on [`crate::VirtualSockets`] with a hand-moved clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tsunagi::stun::{
    AddressFamily, Attribute, AttributeType, ChannelData, Class, IntegrityKey, Message,
    MessageBuilder, Method, TransactionId,
};

use crate::counters::Counters;
use crate::{Server, ServerConfig, Transmit, TurnConfig};

pub(super) const LISTEN: &str = "192.0.2.1:3478";
pub(super) const CLIENT: &str = "198.51.100.7:40000";
pub(super) const PEER: &str = "203.0.113.9:5000";
pub(super) const REALM: &str = "tsunagi";
pub(super) const UNIX: u64 = 1_700_000_000;

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn config() -> TurnConfig {
    TurnConfig {
        realm: REALM.into(),
        users: [("alice".to_string(), "wonderland".to_string())].into(),
        auth_secrets: vec!["old-secret".into(), "new-secret".into()],
        relay_ips: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        relay_ports: Some(50_000..=50_999),
        listening: vec![addr(LISTEN)],
        ..TurnConfig::default()
    }
}

/// A client's view: its address and credentials, the server, the clock.
pub(super) struct Harness {
    pub server: Server,
    pub now: Instant,
    pub user: String,
    pub pass: String,
    pub nonce: String,
    pub seq: u8,
}

impl Harness {
    pub fn new(config: TurnConfig) -> Harness {
        let mut server = Server::with_virtual_turn(ServerConfig::default(), config);
        let now = Instant::now();
        server.set_clock(now, UNIX);
        Harness {
            server,
            now,
            user: "alice".into(),
            pass: "wonderland".into(),
            nonce: String::new(),
            seq: 0,
        }
    }

    pub fn counter(&self, pick: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        Counters::get(pick(&self.server.counters()))
    }

    pub fn key(&self) -> IntegrityKey {
        IntegrityKey::long_term_md5(&self.user, REALM, &self.pass)
    }

    pub fn tid(&mut self) -> TransactionId {
        self.seq = self.seq.wrapping_add(1);
        TransactionId::new([self.seq; 12])
    }

    /// A request signed with the harness credentials and current nonce.
    pub fn signed(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Vec<u8> {
        let tid = self.tid();
        let mut b = MessageBuilder::new(Class::Request, method, tid);
        for a in attrs {
            b.add(a).unwrap();
        }
        if self.nonce.is_empty() {
            // The first request of the dance carries no credentials.
            return b.finish_with_fingerprint();
        }
        b.add(&Attribute::Username(&self.user)).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(&self.nonce)).unwrap();
        b.add_integrity(&self.key());
        b.finish_with_fingerprint()
    }

    pub fn send_from(&mut self, from: &str, packet: &[u8]) -> Vec<Transmit> {
        let mut out = Vec::new();
        self.server
            .handle_at(self.now, addr(LISTEN), addr(from), packet, &mut out);
        out
    }

    pub fn peer_sends(&mut self, relayed: SocketAddr, peer: &str, data: &[u8]) -> Vec<Transmit> {
        let mut out = Vec::new();
        self.server
            .handle_relayed(self.now, relayed, addr(peer), data, &mut out);
        out
    }

    /// Sends a signed request from `from`; on 401/438 takes the nonce and
    /// retries once. Returns the final response bytes.
    pub fn request_from(&mut self, from: &str, method: Method, attrs: &[Attribute<'_>]) -> Vec<u8> {
        for _ in 0..2 {
            let packet = self.signed(method, attrs);
            let out = self.send_from(from, &packet);
            assert_eq!(out.len(), 1, "one response");
            let m = Message::decode(&out[0].payload).unwrap();
            let code = m.error_code().map(|e| e.code);
            if matches!(code, Some(401 | 438))
                && let Some(Attribute::Nonce(n)) = m.get(AttributeType::NONCE)
                && *n != self.nonce
            {
                self.nonce = n.to_string();
                continue;
            }
            return out[0].payload.clone();
        }
        panic!("credentials dance did not settle");
    }

    pub fn request(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Vec<u8> {
        self.request_from(CLIENT, method, attrs)
    }

    /// Allocates for CLIENT; returns the relayed addresses.
    pub fn allocate(&mut self, attrs: &[Attribute<'_>]) -> Vec<SocketAddr> {
        let mut all = vec![Attribute::RequestedTransport(17)];
        all.extend_from_slice(attrs);
        let bytes = self.request(Method::ALLOCATE, &all);
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.class(), Class::SuccessResponse, "{:?}", m.error_code());
        m.verify_integrity(&self.key()).unwrap();
        relayed(&m)
    }
}

pub(super) fn relayed(m: &Message<'_>) -> Vec<SocketAddr> {
    m.attributes()
        .iter()
        .filter_map(|a| match a {
            Attribute::XorRelayedAddress(r) => Some(*r),
            _ => None,
        })
        .collect()
}

pub(super) fn code(bytes: &[u8]) -> Option<u16> {
    Message::decode(bytes).unwrap().error_code().map(|e| e.code)
}

pub(super) fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut b = MessageBuilder::new(Class::Indication, Method::SEND, TransactionId::new([3; 12]));
    b.add(&Attribute::XorPeerAddress(peer)).unwrap();
    b.add(&Attribute::Data(data)).unwrap();
    b.finish()
}

pub(super) fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ChannelData { channel, data }
        .encode(false, &mut out)
        .unwrap();
    out
}

#[test]
fn unauthenticated_allocate_is_challenged_small_and_stateless() {
    let mut h = Harness::new(config());
    let mut b = MessageBuilder::new(
        Class::Request,
        Method::ALLOCATE,
        TransactionId::new([1; 12]),
    );
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    let request = b.finish();
    let out = h.send_from(CLIENT, &request);
    let m = Message::decode(&out[0].payload).unwrap();
    assert_eq!(m.error_code().map(|e| e.code), Some(401));
    assert!(matches!(
        m.get(AttributeType::REALM),
        Some(Attribute::Realm(REALM))
    ));
    assert!(m.get(AttributeType::NONCE).is_some());
    assert!(out[0].payload.len() <= request.len() + 100, "amplification");
    assert_eq!(h.counter(|c| &c.allocations_active), 0);
}

#[test]
fn allocate_permission_send_data_and_channels() {
    let mut h = Harness::new(config());
    let relayed = h.allocate(&[]);
    assert_eq!(relayed.len(), 1);
    let r = relayed[0];
    assert!(r.is_ipv4() && (50_000..=50_999).contains(&r.port()));
    let peer = addr(PEER);

    // No permission yet: nothing relayed either way.
    assert!(h.send_from(CLIENT, &send_indication(peer, b"x")).is_empty());
    assert!(h.peer_sends(r, PEER, b"y").is_empty());
    assert_eq!(h.counter(|c| &c.unpermitted_drops), 2);

    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(peer)],
    );
    assert_eq!(code(&resp), None);
    let out = h.send_from(CLIENT, &send_indication(peer, b"hello"));
    assert_eq!(
        out,
        vec![Transmit {
            local: r,
            destination: peer,
            payload: b"hello".to_vec()
        }]
    );
    // Another port of a permitted IP is fine: permissions are per IP.
    let out = h.peer_sends(r, "203.0.113.9:6000", b"back");
    let m = Message::decode(&out[0].payload).unwrap();
    assert_eq!((m.class(), m.method()), (Class::Indication, Method::DATA));
    assert_eq!(m.get(AttributeType::DATA), Some(&Attribute::Data(b"back")));
    assert_eq!(
        m.get(AttributeType::XOR_PEER_ADDRESS),
        Some(&Attribute::XorPeerAddress(addr("203.0.113.9:6000")))
    );
    assert_eq!(
        (out[0].local, out[0].destination),
        (addr(LISTEN), addr(CLIENT))
    );

    // ChannelData on an unbound channel is dropped.
    assert!(h.send_from(CLIENT, &channel_data(0x4000, b"z")).is_empty());
    let resp = h.request(
        Method::CHANNEL_BIND,
        &[
            Attribute::ChannelNumber(0x4000),
            Attribute::XorPeerAddress(peer),
        ],
    );
    assert_eq!(code(&resp), None);
    let out = h.send_from(CLIENT, &channel_data(0x4000, b"via channel"));
    assert_eq!(out[0].payload, b"via channel");
    assert_eq!((out[0].local, out[0].destination), (r, peer));
    let out = h.peer_sends(r, PEER, b"reply");
    assert_eq!(out[0].payload, channel_data(0x4000, b"reply"));
    assert_eq!(h.counter(|c| &c.packets_to_peers), 2);
    assert_eq!(h.counter(|c| &c.packets_to_clients), 2);
    assert_eq!(h.counter(|c| &c.bytes_to_peers), 16);
}

#[test]
fn credentials_are_checked() {
    let mut h = Harness::new(config());
    h.pass = "wrong".into();
    let resp = h.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    assert_eq!(code(&resp), Some(401));
    assert_eq!(h.counter(|c| &c.auth_failures), 1);
    h.user = "mallory".into();
    let resp = h.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    assert_eq!(code(&resp), Some(401));
    assert_eq!(h.counter(|c| &c.allocations_active), 0);

    // SHA-256 integrity works too, and the answer uses it.
    let mut h = Harness::new(config());
    h.allocate(&[]);
    let tid = h.tid();
    let mut b = MessageBuilder::new(Class::Request, Method::REFRESH, tid);
    for a in [
        Attribute::Username("alice"),
        Attribute::Realm(REALM),
        Attribute::Nonce(&h.nonce.clone()),
    ] {
        b.add(&a).unwrap();
    }
    b.add_integrity_sha256(&h.key());
    let out = h.send_from(CLIENT, &b.finish());
    let m = Message::decode(&out[0].payload).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse);
    m.verify_integrity_sha256(&h.key()).unwrap();
}

#[test]
fn nonces_go_stale_and_are_bound_to_the_client() {
    let mut h = Harness::new(config());
    h.allocate(&[Attribute::Lifetime(3600)]);
    h.now += Duration::from_secs(601);
    let packet = h.signed(Method::REFRESH, &[]);
    let out = h.send_from(CLIENT, &packet);
    assert_eq!(code(&out[0].payload), Some(438));
    assert_eq!(h.counter(|c| &c.stale_nonces), 1);
    // The dance recovers with the fresh nonce.
    assert_eq!(code(&h.request(Method::REFRESH, &[])), None);
    // The same nonce from another address is stale there.
    let packet = h.signed(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    assert_eq!(
        code(&h.send_from("198.51.100.7:40001", &packet)[0].payload),
        Some(438)
    );
}

#[test]
fn rest_credentials() {
    let mut h = Harness::new(config());
    let username = format!("{}:player42", UNIX + 60);
    h.pass = tsunagi::relay::rest_password("new-secret", &username);
    h.user = username;
    h.allocate(&[]);

    let mut h = Harness::new(config());
    let username = format!("{}:player42", UNIX - 1);
    h.pass = tsunagi::relay::rest_password("old-secret", &username);
    h.user = username;
    let resp = h.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    assert_eq!(code(&resp), Some(401), "expired");

    let mut h = Harness::new(config());
    let username = format!("{}:player42", UNIX + 60);
    h.pass = tsunagi::relay::rest_password("guessed-secret", &username);
    h.user = username;
    let resp = h.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]);
    assert_eq!(code(&resp), Some(401), "forged");
    assert_eq!(h.counter(|c| &c.auth_failures), 1);
}

#[test]
fn denied_peers_get_403_and_nothing_is_installed() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[])[0];
    for peer in [
        "10.0.0.1:1",
        "127.0.0.1:1",
        "169.254.0.1:1",
        "100.64.1.1:1",
        LISTEN,
        "192.0.2.1:22",
    ] {
        let resp = h.request(
            Method::CREATE_PERMISSION,
            &[Attribute::XorPeerAddress(addr(peer))],
        );
        assert_eq!(code(&resp), Some(403), "{peer}");
        let resp = h.request(
            Method::CHANNEL_BIND,
            &[
                Attribute::ChannelNumber(0x4001),
                Attribute::XorPeerAddress(addr(peer)),
            ],
        );
        assert_eq!(code(&resp), Some(403), "{peer}");
    }
    // One denied peer among allowed ones: nothing installed.
    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[
            Attribute::XorPeerAddress(addr(PEER)),
            Attribute::XorPeerAddress(addr("10.0.0.1:1")),
        ],
    );
    assert_eq!(code(&resp), Some(403));
    assert!(
        h.send_from(CLIENT, &send_indication(addr(PEER), b"x"))
            .is_empty()
    );
    // Another allocation on the same relay is reachable (its port is in the range).
    let other = addr("192.0.2.1:50500");
    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(other)],
    );
    assert_eq!(code(&resp), None);
    assert_eq!(h.send_from(CLIENT, &send_indication(other, b"x")).len(), 1);
    // ... but that permission (per IP) does not open the relay's other ports.
    assert!(
        h.send_from(CLIENT, &send_indication(addr(LISTEN), b"x"))
            .is_empty()
    );
    assert!(
        h.send_from(CLIENT, &send_indication(addr("192.0.2.1:22"), b"x"))
            .is_empty()
    );
    assert_eq!(h.counter(|c| &c.denied_peers), 13);
    let _ = r;
}

#[test]
fn allow_peer_opens_a_range() {
    let mut c = config();
    c.allowed_peers = vec!["10.0.0.0/8".parse().unwrap()];
    let mut h = Harness::new(c);
    h.allocate(&[]);
    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(addr("10.1.2.3:4"))],
    );
    assert_eq!(code(&resp), None);
    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(addr("192.168.0.1:4"))],
    );
    assert_eq!(code(&resp), Some(403));
}

#[test]
fn allocate_errors() {
    let mut h = Harness::new(config());
    let resp = h.request(Method::ALLOCATE, &[]);
    assert_eq!(code(&resp), Some(400), "REQUESTED-TRANSPORT missing");
    let resp = h.request(Method::ALLOCATE, &[Attribute::RequestedTransport(6)]);
    assert_eq!(code(&resp), Some(442));
    for bad in [
        vec![
            Attribute::RequestedAddressFamily(AddressFamily::V4),
            Attribute::AdditionalAddressFamily(AddressFamily::V6),
        ],
        vec![Attribute::AdditionalAddressFamily(AddressFamily::V4)],
    ] {
        let mut attrs = vec![Attribute::RequestedTransport(17)];
        attrs.extend(bad);
        assert_eq!(code(&h.request(Method::ALLOCATE, &attrs)), Some(400));
    }
    let attrs = [
        Attribute::RequestedTransport(17),
        Attribute::ReservationToken(&[1; 8]),
    ];
    assert_eq!(
        code(&h.request(Method::ALLOCATE, &attrs)),
        Some(508),
        "unknown token"
    );
    assert_eq!(h.counter(|c| &c.allocations_active), 0);

    // EVEN-PORT without reservation is served.
    let r = h.allocate(&[
        Attribute::EvenPort {
            reserve_next: false,
        },
        Attribute::DontFragment,
    ]);
    assert_eq!(r[0].port() % 2, 0);
    // A retransmitted Allocate gets the same answer; a new one by the same user
    // replaces the allocation (tests_lifecycle covers it and other users' 437).
    let tid = TransactionId::new([h.seq; 12]);
    let mut b = MessageBuilder::new(Class::Request, Method::ALLOCATE, tid);
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    b.add(&Attribute::EvenPort {
        reserve_next: false,
    })
    .unwrap();
    b.add(&Attribute::DontFragment).unwrap();
    for a in [
        Attribute::Username("alice"),
        Attribute::Realm(REALM),
        Attribute::Nonce(&h.nonce.clone()),
    ] {
        b.add(&a).unwrap();
    }
    b.add_integrity(&h.key());
    let out = h.send_from(CLIENT, &b.finish_with_fingerprint());
    assert_eq!(relayed(&Message::decode(&out[0].payload).unwrap()), r);
    // Requests on no allocation: 437.
    assert_eq!(
        code(&h.request_from("198.51.100.8:1", Method::REFRESH, &[])),
        Some(437)
    );
    let peer = [Attribute::XorPeerAddress(addr(PEER))];
    assert_eq!(
        code(&h.request_from("198.51.100.8:1", Method::CREATE_PERMISSION, &peer)),
        Some(437)
    );
}

#[test]
fn unknown_comprehension_required_attribute_is_420() {
    let mut h = Harness::new(config());
    let unknown = Attribute::Unknown {
        typ: AttributeType(0x0042),
        value: b"?",
    };
    let resp = h.request(
        Method::ALLOCATE,
        &[Attribute::RequestedTransport(17), unknown],
    );
    let m = Message::decode(&resp).unwrap();
    assert_eq!(m.error_code().map(|e| e.code), Some(420));
    assert!(m.get(AttributeType::UNKNOWN_ATTRIBUTES).is_some());
}

pub(super) fn reservation_token(m: &Message<'_>) -> Option<[u8; 8]> {
    match m.get(AttributeType::RESERVATION_TOKEN) {
        Some(Attribute::ReservationToken(t)) => Some(**t),
        _ => None,
    }
}

#[test]
fn even_port_with_r_reserves_the_next_port_for_its_token() {
    let mut h = Harness::new(config());
    let even_r = [
        Attribute::RequestedTransport(17),
        Attribute::EvenPort { reserve_next: true },
    ];
    let bytes = h.request(Method::ALLOCATE, &even_r);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", m.error_code());
    m.verify_integrity(&h.key()).unwrap();
    let first = relayed(&m)[0];
    assert_eq!(first.port() % 2, 0);
    let token = reservation_token(&m).expect("RESERVATION-TOKEN in the response");
    assert!(h.server.poll_timeout().unwrap() <= h.now + Duration::from_secs(30));

    // Another client (e.g. the RTCP socket) gets port + 1 with the token.
    let with_token = [
        Attribute::RequestedTransport(17),
        Attribute::ReservationToken(&token),
    ];
    let bytes = h.request_from("198.51.100.8:40002", Method::ALLOCATE, &with_token);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", m.error_code());
    assert_eq!(
        relayed(&m),
        vec![SocketAddr::new(first.ip(), first.port() + 1)]
    );
    assert_eq!(reservation_token(&m), None);
    assert_eq!(h.counter(|c| &c.allocations_active), 2);

    // A token is good once.
    let bytes = h.request_from("198.51.100.9:40004", Method::ALLOCATE, &with_token);
    assert_eq!(code(&bytes), Some(508));
    assert_eq!(h.counter(|c| &c.allocations_active), 2);

    // Unused reservations end after 30 s, and their port with them.
    let bytes = h.request_from("198.51.100.10:40006", Method::ALLOCATE, &even_r);
    let m = Message::decode(&bytes).unwrap();
    let second = relayed(&m)[0];
    let token = reservation_token(&m).unwrap();
    h.now += Duration::from_secs(31);
    h.server.handle_timeout(h.now);
    let with_token = [
        Attribute::RequestedTransport(17),
        Attribute::ReservationToken(&token),
    ];
    let bytes = h.request_from("198.51.100.11:40008", Method::ALLOCATE, &with_token);
    assert_eq!(code(&bytes), Some(508), "expired");
    // Nothing arrives through the expired reservation's port.
    let next = SocketAddr::new(second.ip(), second.port() + 1);
    assert!(h.peer_sends(next, PEER, b"x").is_empty());
}

#[test]
fn even_port_with_r_in_a_full_range_is_508() {
    let mut h = Harness::new(TurnConfig {
        relay_ports: Some(50_000..=50_002),
        ..config()
    });
    let even_r = [
        Attribute::RequestedTransport(17),
        Attribute::EvenPort { reserve_next: true },
    ];
    // 50000 + 50001 reserved; then 50002 has no partner.
    let bytes = h.request(Method::ALLOCATE, &even_r);
    assert_eq!(
        Message::decode(&bytes).unwrap().class(),
        Class::SuccessResponse
    );
    let bytes = h.request_from("198.51.100.8:40002", Method::ALLOCATE, &even_r);
    assert_eq!(code(&bytes), Some(508));
    // The port it tried is free again: a plain Allocate gets it.
    let bytes = h.request_from(
        "198.51.100.9:40004",
        Method::ALLOCATE,
        &[Attribute::RequestedTransport(17)],
    );
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(relayed(&m)[0].port(), 50_002);
}
