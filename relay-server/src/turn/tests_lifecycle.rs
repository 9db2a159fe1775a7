//! Unit tests of the TURN core: address families, lifetimes, quotas, bandwidth,
//! channel rules and hostile input.

use std::time::Duration;

use tsunagi::stun::{AddressFamily, Attribute, AttributeType, Message, Method};

use super::tests::{
    CLIENT, Harness, LISTEN, PEER, addr, channel_data, code, config, send_indication,
};
use crate::VirtualSockets;

#[test]
fn dual_allocation_and_family_bridging() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[Attribute::AdditionalAddressFamily(AddressFamily::V6)]);
    assert_eq!(r.len(), 2);
    assert!(r[0].is_ipv4() && r[1].is_ipv6());
    // The IPv4 client reaches an IPv6 peer from the IPv6 relayed address.
    let v6_peer = addr("[2001:db8:2::9]:7000");
    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(v6_peer)],
    );
    assert_eq!(code(&resp), None);
    let out = h.send_from(CLIENT, &send_indication(v6_peer, b"v4->v6"));
    assert_eq!((out[0].local, out[0].destination), (r[1], v6_peer));
    let out = h.peer_sends(r[1], "[2001:db8:2::9]:7000", b"v6->v4");
    assert_eq!(out[0].destination, addr(CLIENT));

    // Refresh with lifetime 0 and a family drops only that family.
    let resp = h.request(
        Method::REFRESH,
        &[
            Attribute::Lifetime(0),
            Attribute::RequestedAddressFamily(AddressFamily::V6),
        ],
    );
    assert_eq!(code(&resp), None);
    assert!(h.peer_sends(r[1], "[2001:db8:2::9]:7000", b"x").is_empty());
    let resp = h.request(
        Method::REFRESH,
        &[Attribute::RequestedAddressFamily(AddressFamily::V6)],
    );
    assert_eq!(code(&resp), Some(443));
    let resp = h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(v6_peer)],
    );
    assert_eq!(code(&resp), Some(443));
}

#[test]
fn ipv6_only_allocation_and_missing_family() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[Attribute::RequestedAddressFamily(AddressFamily::V6)]);
    assert!(r.len() == 1 && r[0].is_ipv6());

    let mut c = config();
    c.relay_ips.truncate(1); // IPv4 only
    let mut h = Harness::new(c);
    let attrs = [
        Attribute::RequestedTransport(17),
        Attribute::RequestedAddressFamily(AddressFamily::V6),
    ];
    assert_eq!(code(&h.request(Method::ALLOCATE, &attrs)), Some(440));
    let attrs = [
        Attribute::RequestedTransport(17),
        Attribute::AdditionalAddressFamily(AddressFamily::V6),
    ];
    let resp = h.request(Method::ALLOCATE, &attrs);
    let m = Message::decode(&resp).unwrap();
    assert_eq!(super::tests::relayed(&m).len(), 1);
    assert!(m.attributes().iter().any(|a| matches!(
        a,
        Attribute::AddressErrorCode { family: AddressFamily::V6, error } if error.code == 440
    )));
}

#[test]
fn refresh_lifetimes_and_expiry() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[Attribute::Lifetime(60)])[0];
    // Shorter than the default is raised to it; longer than the maximum capped.
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.now + Duration::from_secs(600))
    );
    let resp = h.request(Method::REFRESH, &[Attribute::Lifetime(100_000)]);
    let m = Message::decode(&resp).unwrap();
    assert_eq!(
        m.get(tsunagi::stun::AttributeType::LIFETIME),
        Some(&Attribute::Lifetime(3600))
    );
    h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(addr(PEER))],
    );
    // Permissions last 300 s.
    h.now += Duration::from_secs(301);
    assert!(h.peer_sends(r, PEER, b"late").is_empty());
    h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(addr(PEER))],
    );
    assert_eq!(h.peer_sends(r, PEER, b"ok").len(), 1);
    // The allocation expires at its lifetime; the driver's timer ends it.
    h.now += Duration::from_secs(3600);
    assert!(h.peer_sends(r, PEER, b"expired").is_empty());
    assert!(
        h.send_from(CLIENT, &send_indication(addr(PEER), b"x"))
            .is_empty()
    );
    h.server.handle_timeout(h.now);
    assert_eq!(h.server.poll_timeout(), None);
    assert_eq!(h.counter(|c| &c.allocations_active), 0);
    assert_eq!(h.counter(|c| &c.allocations_ended), 1);
    // A new allocation can be made on the same 5-tuple.
    h.allocate(&[]);
}

#[test]
fn refresh_zero_deletes_and_other_users_are_refused() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[])[0];
    let alice_nonce = h.nonce.clone();
    h.user = format!("{}:bob", super::tests::UNIX + 100);
    h.pass = tsunagi::relay::rest_password("old-secret", &h.user);
    assert_eq!(code(&h.request(Method::REFRESH, &[])), Some(441));
    assert_eq!(h.counter(|c| &c.auth_failures), 1);
    h.user = "alice".into();
    h.pass = "wonderland".into();
    h.nonce = alice_nonce;
    let resp = h.request(Method::REFRESH, &[Attribute::Lifetime(0)]);
    assert_eq!(code(&resp), None);
    assert_eq!(h.counter(|c| &c.allocations_active), 0);
    assert!(h.peer_sends(r, PEER, b"x").is_empty());
    assert_eq!(
        code(&h.request(Method::REFRESH, &[Attribute::Lifetime(0)])),
        Some(437)
    );
}

#[test]
fn quotas() {
    let mut c = config();
    c.ip_quota = 2;
    c.user_quota = 3;
    c.max_allocations = 4;
    let mut h = Harness::new(c);
    let transport = [Attribute::RequestedTransport(17)];
    for port in 1..=2 {
        let resp = h.request_from(
            &format!("198.51.100.7:{port}"),
            Method::ALLOCATE,
            &transport,
        );
        assert_eq!(code(&resp), None);
    }
    let resp = h.request_from("198.51.100.7:3", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), Some(486), "per IP");
    let resp = h.request_from("198.51.100.8:1", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), None);
    let resp = h.request_from("198.51.100.9:1", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), Some(486), "per user");
    h.user = format!("{}:carol", super::tests::UNIX + 100);
    h.pass = tsunagi::relay::rest_password("old-secret", &h.user);
    let resp = h.request_from("198.51.100.9:1", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), None);
    let resp = h.request_from("198.51.100.10:1", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), Some(508), "global");
    assert_eq!(h.counter(|c| &c.quota_rejections), 2);
    assert_eq!(h.counter(|c| &c.capacity_rejections), 1);
    // Deleting one gives its quota back.
    let resp = h.request_from("198.51.100.9:1", Method::REFRESH, &[Attribute::Lifetime(0)]);
    assert_eq!(code(&resp), None);
    let resp = h.request_from("198.51.100.10:1", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), None);
}

#[test]
fn relay_ports_run_out_cleanly() {
    let mut c = config();
    c.relay_ports = Some(50_000..=50_001);
    let mut h = Harness::new(c);
    let transport = [Attribute::RequestedTransport(17)];
    for port in 1..=2 {
        let resp = h.request_from(
            &format!("198.51.100.7:{port}"),
            Method::ALLOCATE,
            &transport,
        );
        assert_eq!(code(&resp), None);
    }
    let resp = h.request_from("198.51.100.7:3", Method::ALLOCATE, &transport);
    assert_eq!(code(&resp), Some(508));
    let _ = VirtualSockets::default();
}

#[test]
fn bandwidth_limit_drops_and_counts() {
    let mut c = config();
    c.max_bytes_per_sec = 200_000;
    let mut h = Harness::new(c);
    let r = h.allocate(&[])[0];
    h.request(
        Method::CREATE_PERMISSION,
        &[Attribute::XorPeerAddress(addr(PEER))],
    );
    let data = vec![0u8; 1000];
    let sent: usize = (0..300)
        .map(|_| {
            h.send_from(CLIENT, &send_indication(addr(PEER), &data))
                .len()
        })
        .sum();
    // The burst is one second's worth.
    assert_eq!(sent, 200);
    assert_eq!(h.counter(|c| &c.bandwidth_drops), 100);
    h.now += Duration::from_millis(100);
    assert_eq!(h.peer_sends(r, PEER, &data).len(), 1, "refilled");
}

#[test]
fn channel_bind_rules() {
    let mut h = Harness::new(config());
    h.allocate(&[]);
    let peer = Attribute::XorPeerAddress(addr(PEER));
    for bad in [0x3FFFu16, 0x8000, 0xFFFF] {
        let mut raw = bad.to_be_bytes().to_vec();
        raw.extend([0, 0]);
        let number = Attribute::Unknown {
            typ: AttributeType::CHANNEL_NUMBER,
            value: &raw,
        };
        let resp = h.request(Method::CHANNEL_BIND, &[number, peer.clone()]);
        assert_eq!(code(&resp), Some(400), "{bad:#x}");
    }
    assert_eq!(
        code(&h.request(Method::CHANNEL_BIND, std::slice::from_ref(&peer))),
        Some(400)
    );
    assert_eq!(
        code(&h.request(Method::CHANNEL_BIND, &[Attribute::ChannelNumber(0x4000)])),
        Some(400)
    );
    assert_eq!(
        code(&h.request(
            Method::CHANNEL_BIND,
            &[Attribute::ChannelNumber(0x4000), peer.clone()]
        )),
        None
    );
    assert_eq!(
        code(&h.request(
            Method::CHANNEL_BIND,
            &[Attribute::ChannelNumber(0x4000), peer.clone()]
        )),
        None,
        "refresh"
    );
    let other = Attribute::XorPeerAddress(addr("203.0.113.10:1"));
    assert_eq!(
        code(&h.request(
            Method::CHANNEL_BIND,
            &[Attribute::ChannelNumber(0x4000), other]
        )),
        Some(400)
    );
    assert_eq!(
        code(&h.request(
            Method::CHANNEL_BIND,
            &[Attribute::ChannelNumber(0x4001), peer]
        )),
        Some(400)
    );
    // ChannelData on another client's 5-tuple, or malformed, is dropped.
    assert!(
        h.send_from("198.51.100.7:40001", &channel_data(0x4000, b"x"))
            .is_empty()
    );
    assert!(
        h.send_from(CLIENT, &[0x40, 0x00, 0x00, 0x10, 1, 2])
            .is_empty()
    );
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_turn_traffic_never_panics_never_amplifies_never_relays() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[])[0];
    let mut seeds = vec![
        h.signed(Method::ALLOCATE, &[Attribute::RequestedTransport(17)]),
        h.signed(Method::REFRESH, &[Attribute::Lifetime(600)]),
        h.signed(
            Method::CREATE_PERMISSION,
            &[Attribute::XorPeerAddress(addr(PEER))],
        ),
        h.signed(
            Method::CHANNEL_BIND,
            &[
                Attribute::ChannelNumber(0x4000),
                Attribute::XorPeerAddress(addr(PEER)),
            ],
        ),
        send_indication(addr(PEER), b"data"),
        channel_data(0x4000, b"data"),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let before = h.counter(|c| &c.packets_to_peers);
    for i in 0..20_000 {
        let seed = &seeds[i % seeds.len()];
        let mut packet = seed.clone();
        for _ in 0..1 + next(&mut state) % 4 {
            let at = (next(&mut state) as usize) % packet.len();
            match next(&mut state) % 3 {
                0 => packet[at] ^= 1 << (next(&mut state) % 8),
                1 => packet.truncate(at.max(1)),
                _ => packet.insert(at, next(&mut state) as u8),
            }
        }
        // From a stranger: nothing may be relayed, answers stay small.
        for out in h.send_from("198.51.100.99:9", &packet) {
            assert_eq!(out.local, addr(LISTEN));
            assert!(out.payload.len() <= packet.len() + 120, "amplified {i}");
        }
        let _ = h.peer_sends(r, "198.51.100.99:9", &packet);
    }
    assert_eq!(h.counter(|c| &c.packets_to_peers), before);
    assert_eq!(h.counter(|c| &c.packets_to_clients), 0);
    seeds.clear();
}

#[test]
fn rfc5766_channel_numbers_from_coturn_clients() {
    let mut h = Harness::new(config());
    let r = h.allocate(&[])[0];
    let raw = [0x7E, 0x32, 0, 0];
    let number = Attribute::Unknown {
        typ: AttributeType::CHANNEL_NUMBER,
        value: &raw,
    };
    let peer = Attribute::XorPeerAddress(addr(PEER));
    let resp = h.request(Method::CHANNEL_BIND, &[number.clone(), peer.clone()]);
    assert_eq!(code(&resp), None);
    Message::decode(&resp)
        .unwrap()
        .verify_integrity(&h.key())
        .unwrap();
    let mut cd = vec![0x7E, 0x32, 0, 2];
    cd.extend(b"hi");
    let out = h.send_from(CLIENT, &cd);
    assert_eq!(
        (out[0].destination, out[0].payload.as_slice()),
        (addr(PEER), &b"hi"[..])
    );
    let out = h.peer_sends(r, PEER, b"yo");
    assert_eq!(out[0].payload, [0x7E, 0x32, 0, 2, b'y', b'o']);
    // A wrong password is still refused on this path.
    h.pass = "wrong".into();
    let resp = h.request(Method::CHANNEL_BIND, &[number, peer]);
    assert_eq!(code(&resp), Some(401));
}

#[test]
fn a_new_allocate_by_the_same_user_replaces_a_stale_one_others_get_437() {
    // A client restarted behind a NAT that gives it the same external port
    // (MAP-E's port set) comes back from the 5-tuple of its dead allocation.
    let mut h = Harness::new(config());
    h.user = format!("{}:carol", super::tests::UNIX + 100);
    h.pass = tsunagi::relay::rest_password("new-secret", &h.user);
    let old = h.allocate(&[])[0];
    let perm = [Attribute::XorPeerAddress(addr(PEER))];
    assert_eq!(code(&h.request(Method::CREATE_PERMISSION, &perm)), None);
    // Another user from the same 5-tuple: still 437, the allocation stays.
    let carol = (h.user.clone(), h.pass.clone(), h.nonce.clone());
    h.user = format!("{}:mallory", super::tests::UNIX + 100);
    h.pass = tsunagi::relay::rest_password("new-secret", &h.user);
    assert_eq!(
        code(&h.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)])),
        Some(437)
    );
    assert_eq!(h.counter(|c| &c.allocations_active), 1);
    // The same NAME with a fresh token (new process, new EXPIRY): replaces it.
    h.user = format!("{}:carol", super::tests::UNIX + 200);
    h.pass = tsunagi::relay::rest_password("new-secret", &h.user);
    h.nonce = carol.2;
    let new = h.allocate(&[])[0];
    assert_eq!(h.counter(|c| &c.allocations_active), 1);
    assert_eq!(h.counter(|c| &c.allocations_ended), 1);
    // The old relayed port and its permissions are gone.
    assert!(h.peer_sends(old, PEER, b"x").is_empty());
    assert!(
        h.peer_sends(new, PEER, b"x").is_empty(),
        "no permission yet"
    );
    assert_eq!(code(&h.request(Method::CREATE_PERMISSION, &perm)), None);
    assert_eq!(h.peer_sends(new, PEER, b"x").len(), 1);
    // The old credentials (same NAME) also count as the same user.
    h.user = carol.0;
    h.pass = carol.1;
    h.allocate(&[]);
    assert_eq!(h.counter(|c| &c.allocations_active), 1);
}
