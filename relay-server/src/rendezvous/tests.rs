//! Two SDK rendezvous clients and the service, wired in memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tsunagi::relay::{Credentials, rest_credentials};
use tsunagi::signal::{Client, Event};
use tsunagi::stun::Message;

use super::{Rendezvous, RendezvousConfig};

const SECRET: &str = "s3cret";

fn unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token for `name` under the current secret, valid for a minute.
fn credentials(name: &str) -> Credentials {
    rest_credentials(SECRET, name, Duration::from_secs(60), unix())
}

fn server_addr() -> SocketAddr {
    "198.18.0.10:3478".parse().unwrap()
}

fn service() -> Rendezvous {
    Rendezvous::new(RendezvousConfig {
        secrets: vec!["old".into(), SECRET.into()],
        max_peers: 3,
    })
}

struct Peer {
    addr: SocketAddr,
    client: Client,
}

fn peer(addr: &str, creds: Credentials, id: u8, now: Instant) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        client: Client::new(server_addr(), creds, [id; 32], now),
    }
}

/// Moves every pending datagram between the peers and the service until quiet.
fn pump(rv: &mut Rendezvous, peers: &mut [&mut Peer], now: Instant) {
    loop {
        let mut moved = false;
        let mut out = Vec::new();
        for p in peers.iter_mut() {
            while let Some(t) = p.client.poll_transmit() {
                moved = true;
                if let Ok(m) = Message::decode(&t.bytes) {
                    rv.handle(now, unix(), server_addr(), p.addr, &m, &mut out);
                }
            }
        }
        for t in out {
            moved = true;
            for p in peers.iter_mut() {
                if p.addr == t.destination {
                    assert!(p.client.handle_input(now, server_addr(), &t.payload));
                }
            }
        }
        if !moved {
            return;
        }
    }
}

fn events(p: &mut Peer) -> Vec<Event> {
    std::iter::from_fn(|| p.client.poll_event()).collect()
}

#[test]
fn offer_and_answer_pass_between_registered_peers() {
    let now = Instant::now();
    let mut rv = service();
    let mut alice = peer("198.18.1.1:4000", credentials("alice"), 1, now);
    let mut bob = peer("198.18.1.2:5000", credentials("bob"), 2, now);
    pump(&mut rv, &mut [&mut alice, &mut bob], now);
    assert_eq!(
        events(&mut alice),
        vec![Event::Registered {
            mapped: Some("198.18.1.1:4000".parse().unwrap())
        }]
    );
    assert_eq!(events(&mut bob).len(), 1);
    alice.client.send(now, [2; 32], b"offer");
    pump(&mut rv, &mut [&mut alice, &mut bob], now);
    assert_eq!(
        events(&mut bob),
        vec![Event::Received {
            from: [1; 32],
            data: b"offer".to_vec()
        }]
    );
    assert_eq!(events(&mut alice), vec![Event::Delivered { to: [2; 32] }]);
    bob.client.send(now, [1; 32], b"answer");
    pump(&mut rv, &mut [&mut alice, &mut bob], now);
    assert_eq!(
        events(&mut alice),
        vec![Event::Received {
            from: [2; 32],
            data: b"answer".to_vec()
        }]
    );
}

#[test]
fn bad_tokens_identity_theft_and_strangers_are_refused() {
    let now = Instant::now();
    let mut rv = service();
    let forged = Credentials::new(format!("{}:mallory", unix() + 60), "not-the-mac");
    let mut m = peer("198.18.1.9:4000", forged, 9, now);
    let expired = rest_credentials(SECRET, "eve", Duration::from_secs(0), unix() - 10);
    let mut e = peer("198.18.1.8:4000", expired, 8, now);
    pump(&mut rv, &mut [&mut m, &mut e], now);
    for p in [&mut m, &mut e] {
        match events(p).as_slice() {
            [Event::RegistrationFailed(why)] => assert!(why.starts_with("401"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rv.registered(), 0);

    let mut alice = peer("198.18.1.1:4000", credentials("alice"), 1, now);
    // Another user with a valid token claims alice's identity.
    let mut thief = peer("198.18.1.7:4000", credentials("trudy"), 1, now);
    pump(&mut rv, &mut [&mut alice], now);
    pump(&mut rv, &mut [&mut thief], now);
    match events(&mut thief).as_slice() {
        [Event::RegistrationFailed(why)] => assert!(why.starts_with("409"), "{why}"),
        other => panic!("{other:?}"),
    }
    events(&mut alice);
    alice.client.send(now, [5; 32], b"offer");
    pump(&mut rv, &mut [&mut alice], now);
    let evs = events(&mut alice);
    assert!(
        matches!(evs.first(), Some(Event::Undeliverable { to, reason }) if *to == [5; 32] && reason.starts_with("404")),
        "{evs:?}"
    );
}

#[test]
fn capacity_is_bounded_and_registrations_expire() {
    let now = Instant::now();
    let mut rv = service();
    let mut peers: Vec<Peer> = (1..=4)
        .map(|i| {
            let c = credentials(&format!("p{i}"));
            peer(&format!("198.18.1.{i}:4000"), c, i, now)
        })
        .collect();
    for p in &mut peers {
        pump(&mut rv, &mut [p], now);
    }
    assert_eq!(rv.registered(), 3);
    match events(&mut peers[3]).as_slice() {
        [Event::RegistrationFailed(why)] => assert!(why.starts_with("508"), "{why}"),
        other => panic!("{other:?}"),
    }
    rv.handle_timeout(now + Duration::from_secs(601));
    assert_eq!(rv.registered(), 0);
}

#[test]
fn signals_are_rate_limited() {
    let now = Instant::now();
    let mut rv = service();
    let mut a = peer("198.18.1.1:4000", credentials("a"), 1, now);
    let mut b = peer("198.18.1.2:4000", credentials("b"), 2, now);
    pump(&mut rv, &mut [&mut a, &mut b], now);
    events(&mut a);
    for _ in 0..30 {
        a.client.send(now, [2; 32], b"x");
    }
    pump(&mut rv, &mut [&mut a, &mut b], now);
    let evs = events(&mut a);
    let delivered = evs
        .iter()
        .filter(|e| matches!(e, Event::Delivered { .. }))
        .count();
    let limited = evs
        .iter()
        .filter(|e| matches!(e, Event::Undeliverable { reason, .. } if reason.starts_with("429")))
        .count();
    assert_eq!((delivered, limited), (20, 10), "{evs:?}");
}

#[test]
fn a_restarted_client_at_the_same_address_replaces_its_stale_registration() {
    let now = Instant::now();
    let mut rv = service();
    let creds = || credentials("alice");
    let mut old = peer("198.18.1.1:4000", creds(), 1, now);
    let mut bob = peer("198.18.1.2:5000", credentials("bob"), 2, now);
    // Another user at that address is not replaced by alice.
    let mut carol = peer("198.18.1.1:4000", credentials("carol"), 4, now);
    pump(&mut rv, &mut [&mut old, &mut bob, &mut carol], now);
    assert_eq!(rv.registered(), 3);
    // The old process dies without a word; a new one gets the same port.
    drop(old);
    let mut new = peer("198.18.1.1:4000", creds(), 3, now);
    pump(&mut rv, &mut [&mut new, &mut bob], now);
    assert_eq!(events(&mut new).len(), 1, "registered");
    assert_eq!(rv.registered(), 3, "identity 1 replaced by 3, carol kept");
    // Its signals are credited to its own identity, every time.
    for i in 0..5u8 {
        new.client.send(now, [2; 32], &[i]);
        pump(&mut rv, &mut [&mut new, &mut bob], now);
        let got = events(&mut bob);
        assert!(
            got.contains(&Event::Received {
                from: [3; 32],
                data: vec![i]
            }),
            "{got:?}"
        );
    }
    // And the old identity is no longer registered.
    bob.client.send(now, [1; 32], b"to the dead");
    pump(&mut rv, &mut [&mut new, &mut bob], now);
    assert!(
        !events(&mut new)
            .iter()
            .any(|e| matches!(e, Event::Received { .. })),
        "nothing for the old identity reaches the new client"
    );
}
