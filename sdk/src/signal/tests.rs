//! The client against hand-made server answers, in simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::wire::{self, Wire};
use super::{Client, Event};
use crate::relay::Credentials;
use crate::stun::{IntegrityKey, Message, Method};

fn server() -> SocketAddr {
    "198.18.0.10:3478".parse().unwrap()
}

fn client(now: Instant) -> Client {
    Client::new(server(), Credentials::new("99:alice", "pw"), [1; 32], now)
}

/// The server's answer to the client's next request.
fn answer(c: &mut Client, reply: impl Fn(&Message<'_>) -> Vec<u8>) -> Vec<u8> {
    let t = c.poll_transmit().expect("a request");
    let m = Message::decode(&t.bytes).unwrap();
    assert!(m.verify_integrity(&IntegrityKey::short_term("pw")).is_ok());
    reply(&m)
}

fn registered(m: &Message<'_>) -> Vec<u8> {
    let w = Wire::Registered {
        mapped: Some("198.18.1.1:4000".parse().unwrap()),
        lifetime: 120,
    };
    wire::encode(
        &w,
        m.transaction_id(),
        None,
        Some(&IntegrityKey::short_term("pw")),
    )
    .unwrap()
}

#[test]
fn registers_then_refreshes_before_expiry() {
    let t0 = Instant::now();
    let mut c = client(t0);
    let r = answer(&mut c, registered);
    assert!(c.handle_input(t0, server(), &r));
    assert_eq!(
        c.poll_event(),
        Some(Event::Registered {
            mapped: Some("198.18.1.1:4000".parse().unwrap())
        })
    );
    assert!(c.is_registered());
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(90)));
    c.handle_timeout(t0 + Duration::from_secs(90));
    assert!(c.poll_transmit().is_some(), "refresh sent");
}

#[test]
fn forged_success_is_ignored() {
    let t0 = Instant::now();
    let mut c = client(t0);
    let forged = answer(&mut c, |m| {
        let w = Wire::Registered {
            mapped: None,
            lifetime: 120,
        };
        wire::encode(
            &w,
            m.transaction_id(),
            None,
            Some(&IntegrityKey::short_term("x")),
        )
        .unwrap()
    });
    assert!(c.handle_input(t0, server(), &forged));
    assert_eq!(c.poll_event(), None);
    assert!(!c.is_registered());
    // From another address it is not even ours.
    assert!(!c.handle_input(t0, "198.18.0.11:3478".parse().unwrap(), &forged));
}

#[test]
fn retransmits_then_gives_up_with_a_clear_reason() {
    let t0 = Instant::now();
    let mut c = client(t0);
    let mut sent = 0;
    while c.poll_transmit().is_some() {
        sent += 1;
    }
    while let Some(now) = c.poll_timeout() {
        c.handle_timeout(now);
        while c.poll_transmit().is_some() {
            sent += 1;
        }
        if let Some(Event::RegistrationFailed(why)) = c.poll_event() {
            assert!(why.contains("no answer"), "{why}");
            assert_eq!(sent, 6);
            assert!(
                now - t0 >= Duration::from_millis(250 * 31),
                "{:?}",
                now - t0
            );
            return;
        }
    }
    panic!("never gave up");
}

#[test]
fn signals_are_delivered_or_explained() {
    let t0 = Instant::now();
    let mut c = client(t0);
    let r = answer(&mut c, registered);
    c.handle_input(t0, server(), &r);
    c.poll_event();
    c.send(t0, [2; 32], b"offer");
    let ok = answer(&mut c, |m| {
        assert_eq!(
            wire::parse(m),
            Some(Wire::Signal {
                username: "99:alice",
                to: [2; 32],
                data: b"offer"
            })
        );
        wire::encode(
            &Wire::Sent,
            m.transaction_id(),
            None,
            Some(&IntegrityKey::short_term("pw")),
        )
        .unwrap()
    });
    c.handle_input(t0, server(), &ok);
    assert_eq!(c.poll_event(), Some(Event::Delivered { to: [2; 32] }));
    c.send(t0, [3; 32], b"offer");
    let missing = answer(&mut c, |m| {
        wire::encode_error(
            Method::RENDEZVOUS_SIGNAL,
            m.transaction_id(),
            404,
            "Peer Not Registered",
            None,
        )
        .unwrap()
    });
    c.handle_input(t0, server(), &missing);
    match c.poll_event() {
        Some(Event::Undeliverable { to, reason }) => {
            assert_eq!(to, [3; 32]);
            assert!(reason.contains("not registered"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn delivered_signals_need_our_integrity() {
    let t0 = Instant::now();
    let mut c = client(t0);
    let tid = crate::stun::TransactionId::new([9; 12]);
    let w = Wire::Deliver {
        from: [5; 32],
        data: b"answer",
    };
    let good = wire::encode(&w, tid, None, Some(&IntegrityKey::short_term("pw"))).unwrap();
    let bad = wire::encode(&w, tid, None, Some(&IntegrityKey::short_term("no"))).unwrap();
    assert!(c.handle_input(t0, server(), &bad));
    assert_eq!(c.poll_event(), None);
    assert!(c.handle_input(t0, server(), &good));
    assert_eq!(
        c.poll_event(),
        Some(Event::Received {
            from: [5; 32],
            data: b"answer".to_vec()
        })
    );
}

#[test]
fn arbitrary_input_never_panics() {
    use proptest::prelude::*;
    let t0 = Instant::now();
    proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..600))| {
        let mut c = client(t0);
        c.handle_input(t0, server(), &bytes);
    });
}

#[test]
fn rendezvous_is_told_from_other_stun_by_its_header() {
    let t0 = Instant::now();
    let mut c = client(t0);
    let register = c.poll_transmit().unwrap().bytes;
    assert!(wire::is_rendezvous(&register));
    let w = Wire::Deliver {
        from: [5; 32],
        data: b"x",
    };
    let deliver = wire::encode(&w, crate::stun::TransactionId::new([3; 12]), None, None).unwrap();
    assert!(wire::is_rendezvous(&deliver));
    let binding = crate::stun::MessageBuilder::new(
        crate::stun::Class::Request,
        Method::BINDING,
        crate::stun::TransactionId::new([1; 12]),
    )
    .finish();
    assert!(!wire::is_rendezvous(&binding));
    assert!(!wire::is_rendezvous(&[0x40; 40]));
    assert!(!wire::is_rendezvous(&register[..19]));
}

#[test]
fn deliveries_of_every_blob_length_decode() {
    let key = IntegrityKey::short_term("pw");
    for len in 0..=crate::signal::MAX_BLOB_LEN {
        let data = vec![0xA5u8; len];
        let w = Wire::Deliver {
            from: [5; 32],
            data: &data,
        };
        let bytes = wire::encode(
            &w,
            crate::stun::TransactionId::new([3; 12]),
            None,
            Some(&key),
        )
        .unwrap();
        let m = Message::decode(&bytes).unwrap_or_else(|e| panic!("length {len}: {e}"));
        assert!(wire::parse(&m).is_some(), "length {len}");
        assert!(m.verify_integrity(&key).is_ok(), "length {len}");
    }
}
