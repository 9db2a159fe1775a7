//! Allocating: the credential dance, nonces, families, refresh, release, timeouts.

use std::time::Duration;

use super::server::{DualMode, SimServer};
use super::*;
use crate::relay::{Error, FamilyUnavailable, RelayFamily};
use crate::stun::{AddressFamily, Attribute, AttributeType, Message, Method};

#[test]
fn auth_dance_first_unauthenticated_then_long_term_credentials() {
    let mut net = Net::new(config("secret"));
    let relayed = net.allocate();
    assert_eq!(relayed, vec![net.server.relayed_v4]);
    assert_eq!(net.client.mapped_address(), Some(addr(CLIENT)));
    assert!(net.client.is_allocated());

    let first = Message::decode(&net.wire[0]).unwrap();
    assert_eq!(first.method(), Method::ALLOCATE);
    assert!(!first.has_integrity());
    assert!(first.get(AttributeType::USERNAME).is_none());
    assert_eq!(
        first.get(AttributeType::REQUESTED_TRANSPORT),
        Some(&Attribute::RequestedTransport(17))
    );
    assert_eq!(
        first.get(AttributeType::LIFETIME),
        Some(&Attribute::Lifetime(600))
    );
    assert!(first.get(AttributeType::REQUESTED_ADDRESS_FAMILY).is_none());

    let second = Message::decode(&net.wire[1]).unwrap();
    assert_ne!(first.transaction_id(), second.transaction_id());
    assert_eq!(
        second.get(AttributeType::USERNAME),
        Some(&Attribute::Username("alice"))
    );
    assert_eq!(
        second.get(AttributeType::REALM),
        Some(&Attribute::Realm("tsunagi"))
    );
    assert_eq!(
        second.get(AttributeType::NONCE),
        Some(&Attribute::Nonce("nonce-0"))
    );
    assert!(second.verify_integrity(&net.server.key()).is_ok());
    assert_eq!(
        net.server.requests,
        vec![Method::ALLOCATE, Method::ALLOCATE]
    );
}

#[test]
fn wrong_password_fails_with_unauthorized() {
    let mut net = Net::new(config("wrong"));
    net.pump();
    assert_eq!(
        net.take_events(),
        vec![Event::Failed {
            reason: Error::Unauthorized {
                realm: "tsunagi".into()
            }
        }]
    );
    assert!(net.client.is_closed());
    assert_eq!(net.client.poll_timeout(), None);
}

#[test]
fn stale_nonce_is_retried_with_the_new_nonce() {
    let mut server = SimServer::new();
    server.stale_next = 2;
    let mut net = Net::with_server(config("secret"), server);
    net.allocate();
    let last = Message::decode(net.wire.last().unwrap()).unwrap();
    assert_eq!(
        last.get(AttributeType::NONCE),
        Some(&Attribute::Nonce("nonce-2"))
    );
    assert_eq!(net.server.requests.len(), 4);

    // A stale nonce on a refresh is retried too.
    net.server.stale_next = 1;
    net.advance(Duration::from_secs(480));
    assert_eq!(
        net.take_events(),
        vec![Event::Refreshed {
            lifetime: Duration::from_secs(600)
        }]
    );
}

#[test]
fn endless_stale_nonces_give_up() {
    let mut server = SimServer::new();
    server.stale_next = 100;
    let mut net = Net::with_server(config("secret"), server);
    net.pump();
    assert_eq!(
        net.take_events(),
        vec![Event::Failed {
            reason: Error::StaleNonceLoop { attempts: 4 }
        }]
    );
}

#[test]
fn refresh_at_80_percent_and_expiry_when_the_server_goes_silent() {
    let mut server = SimServer::new();
    server.max_lifetime = 200;
    let mut net = Net::with_server(config("secret"), server);
    let start = net.now;
    net.allocate();
    assert_eq!(
        net.client.poll_timeout(),
        Some(start + Duration::from_secs(160))
    );

    net.advance(Duration::from_secs(159));
    assert!(net.take_events().is_empty());
    net.advance(Duration::from_secs(1));
    assert_eq!(
        net.take_events(),
        vec![Event::Refreshed {
            lifetime: Duration::from_secs(200)
        }]
    );
    let refresh = Message::decode(net.wire.last().unwrap()).unwrap();
    assert_eq!(refresh.method(), Method::REFRESH);
    assert_eq!(
        refresh.get(AttributeType::LIFETIME),
        Some(&Attribute::Lifetime(600))
    );

    // The server stops answering: the refresh at 160 s is retransmitted for
    // 39.5 s, retried at once, and the allocation expires at 200 s.
    net.server.drop_next = u32::MAX;
    net.advance(Duration::from_secs(199));
    assert!(net.take_events().is_empty(), "still within the lifetime");
    net.advance(Duration::from_secs(1));
    assert_eq!(
        net.take_events(),
        vec![Event::AllocationLost {
            reason: Error::Expired
        }]
    );
    assert!(net.client.is_closed());
    assert_eq!(net.client.poll_timeout(), None);
    let refreshes = net
        .server
        .requests
        .iter()
        .filter(|m| **m == Method::REFRESH)
        .count();
    assert_eq!(
        refreshes,
        1 + 7 + 1,
        "one answered, seven unanswered, one retry"
    );
}

#[test]
fn refresh_refused_with_437_loses_the_allocation() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    net.server.allocated = false;
    net.advance(Duration::from_secs(480));
    assert_eq!(
        net.take_events(),
        vec![Event::AllocationLost {
            reason: Error::AllocationMismatch
        }]
    );
}

#[test]
fn retransmits_per_rfc_8489_then_gives_up() {
    let mut server = SimServer::new();
    server.drop_next = u32::MAX;
    let mut net = Net::with_server(config("secret"), server);
    let start = net.now;
    net.pump();
    let mut sent_at = vec![Duration::ZERO];
    while let Some(at) = net.client.poll_timeout() {
        net.now = at;
        net.client.handle_timeout(at);
        if net.client.poll_transmit().is_some() {
            sent_at.push(at - start);
        }
        net.pump();
    }
    let ms: Vec<u128> = sent_at.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(net.client.retransmits(), 6);
    assert_eq!(net.now - start, Duration::from_millis(39_500));
    assert_eq!(
        net.take_events(),
        vec![Event::Failed {
            reason: Error::Timeout {
                server: addr(SERVER),
                method: Method::ALLOCATE,
                transmissions: 7
            }
        }]
    );
}

#[test]
fn a_lost_answer_is_recovered_by_retransmission() {
    let mut server = SimServer::new();
    server.drop_next = 2;
    let mut c = config("secret");
    c.retransmit = fast_retransmit();
    let mut net = Net::with_server(c, server);
    net.advance(Duration::from_millis(100));
    assert!(matches!(
        net.take_events().as_slice(),
        [Event::Allocated { .. }]
    ));
}

#[test]
fn dual_allocation_gets_both_families() {
    let mut c = config("secret");
    c.family = RelayFamily::Dual;
    let mut net = Net::new(c);
    net.pump();
    let first = Message::decode(&net.wire[0]).unwrap();
    assert_eq!(
        first.get(AttributeType::ADDITIONAL_ADDRESS_FAMILY),
        Some(&Attribute::AdditionalAddressFamily(AddressFamily::V6))
    );
    assert!(first.get(AttributeType::REQUESTED_ADDRESS_FAMILY).is_none());
    match net.take_events().as_slice() {
        [
            Event::Allocated {
                relayed,
                unavailable,
                ..
            },
        ] => {
            assert_eq!(relayed.len(), 2);
            assert!(unavailable.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dual_allocation_falls_back_to_ipv4_on_address_error_or_440() {
    for mode in [DualMode::AddressError, DualMode::Reject] {
        let mut server = SimServer::new();
        server.dual = mode;
        server.relayed_v6 = None;
        let mut c = config("secret");
        c.family = RelayFamily::Dual;
        let mut net = Net::with_server(c, server);
        net.pump();
        let expected = vec![FamilyUnavailable {
            family: AddressFamily::V6,
            code: Some(440),
            reason: "Address Family not Supported".into(),
        }];
        match net.take_events().as_slice() {
            [
                Event::Allocated {
                    relayed,
                    unavailable,
                    ..
                },
            ] => {
                assert_eq!(relayed, &vec![net.server.relayed_v4], "{mode:?}");
                assert_eq!(unavailable, &expected, "{mode:?}");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
    }
}

#[test]
fn dual_allocation_reports_a_silently_ignored_family() {
    let mut server = SimServer::new();
    server.dual = DualMode::Ignore;
    let mut c = config("secret");
    c.family = RelayFamily::Dual;
    let mut net = Net::with_server(c, server);
    net.pump();
    match net.take_events().as_slice() {
        [
            Event::Allocated {
                relayed,
                unavailable,
                ..
            },
        ] => {
            assert_eq!(relayed.len(), 1);
            assert_eq!(unavailable.len(), 1);
            assert_eq!(
                (unavailable[0].family, unavailable[0].code),
                (AddressFamily::V6, None)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ipv6_only_request_reports_440_precisely() {
    let mut server = SimServer::new();
    server.relayed_v6 = None;
    let mut c = config("secret");
    c.family = RelayFamily::V6;
    let mut net = Net::with_server(c, server);
    net.pump();
    let first = Message::decode(&net.wire[0]).unwrap();
    assert_eq!(
        first.get(AttributeType::REQUESTED_ADDRESS_FAMILY),
        Some(&Attribute::RequestedAddressFamily(AddressFamily::V6))
    );
    assert_eq!(
        net.take_events(),
        vec![Event::Failed {
            reason: Error::AddressFamilyNotSupported {
                family: AddressFamily::V6
            }
        }]
    );
}

#[test]
fn error_codes_map_to_precise_errors() {
    let cases = [
        (
            300,
            Error::TryAlternate {
                alternate: addr("192.0.2.2:3478"),
            },
        ),
        (486, Error::QuotaReached),
        (508, Error::InsufficientCapacity),
        (442, Error::UnsupportedTransport),
        (
            403,
            Error::Forbidden {
                reason: "Forbidden".into(),
            },
        ),
        (
            599,
            Error::Server {
                code: 599,
                reason: "Odd".into(),
            },
        ),
    ];
    for (code, expected) in cases {
        let mut server = SimServer::new();
        let reason = match code {
            403 => "Forbidden",
            599 => "Odd",
            _ => "whatever",
        };
        server.fail_with = Some((code, reason));
        let mut net = Net::with_server(config("secret"), server);
        net.pump();
        assert_eq!(
            net.take_events(),
            vec![Event::Failed { reason: expected }],
            "code {code}"
        );
    }
}

#[test]
fn release_sends_lifetime_zero() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    net.client.release(net.now);
    net.pump();
    assert_eq!(net.take_events(), vec![Event::Released]);
    let last = Message::decode(net.wire.last().unwrap()).unwrap();
    assert_eq!(last.method(), Method::REFRESH);
    assert_eq!(
        last.get(AttributeType::LIFETIME),
        Some(&Attribute::Lifetime(0))
    );
    assert!(!net.server.allocated);
    assert!(net.client.is_closed());
    assert_eq!(net.client.poll_timeout(), None);
}

#[test]
fn release_completes_even_if_the_server_is_silent() {
    let mut c = config("secret");
    c.retransmit = fast_retransmit();
    let mut net = Net::new(c);
    net.allocate();
    net.server.drop_next = u32::MAX;
    net.client.release(net.now);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.take_events(), vec![Event::Released]);
}
