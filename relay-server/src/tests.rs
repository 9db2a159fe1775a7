//! Unit tests of the sans-IO core: every RFC 5780 path, every rejection, and the
//! amplification bound, without sockets.

use std::net::SocketAddr;

use tsunagi::stun::{
    Attribute, AttributeType, Class, ErrorCode, Message, MessageBuilder, Method, TransactionId,
};

use crate::{Rfc5780Addresses, Server, ServerConfig, Transmit};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PRIMARY: &str = "192.0.2.1:3478";
const ALTERNATE: &str = "192.0.2.2:3479";
const CLIENT: &str = "198.51.100.7:40000";

fn rfc5780_server() -> Server {
    let addresses = Rfc5780Addresses::new(addr(PRIMARY), addr(ALTERNATE)).unwrap();
    Server::new(ServerConfig {
        software: None,
        rfc5780: Some(addresses),
    })
}

fn request(attrs: &[Attribute<'_>], fingerprint: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([9; 12]));
    for a in attrs {
        b.add(a).unwrap();
    }
    if fingerprint {
        b.finish_with_fingerprint()
    } else {
        b.finish()
    }
}

fn handle(server: &mut Server, local: &str, packet: &[u8]) -> Vec<Transmit> {
    let mut out = Vec::new();
    server.handle(addr(local), addr(CLIENT), packet, &mut out);
    out
}

fn only(out: &[Transmit]) -> Message<'_> {
    assert_eq!(out.len(), 1, "expected exactly one datagram");
    Message::decode(&out[0].payload).unwrap()
}

#[test]
fn plain_binding_reflects_the_source() {
    let mut server = Server::new(ServerConfig::default());
    for (local, client) in [
        (PRIMARY, CLIENT),
        ("[2001:db8::1]:3478", "[2001:db8::7]:5000"),
    ] {
        let mut out = Vec::new();
        let req = request(&[], false);
        server.handle(addr(local), addr(client), &req, &mut out);
        let m = only(&out);
        assert_eq!(m.class(), Class::SuccessResponse);
        assert_eq!(m.transaction_id(), TransactionId::new([9; 12]));
        assert_eq!(m.xor_mapped_address(), Some(addr(client)));
        assert!(m.get(AttributeType::OTHER_ADDRESS).is_none());
        assert!(!m.has_fingerprint());
        assert_eq!(
            (out[0].local, out[0].destination),
            (addr(local), addr(client))
        );
    }
}

#[test]
fn rfc5780_origin_and_other_address_for_each_socket() {
    let mut server = rfc5780_server();
    let locals = [
        "192.0.2.1:3478",
        "192.0.2.1:3479",
        "192.0.2.2:3478",
        "192.0.2.2:3479",
    ];
    let others = [
        "192.0.2.2:3479",
        "192.0.2.2:3478",
        "192.0.2.1:3479",
        "192.0.2.1:3478",
    ];
    for (local, other) in locals.iter().zip(others) {
        let out = handle(&mut server, local, &request(&[], true));
        let m = only(&out);
        assert_eq!(
            m.get(AttributeType::RESPONSE_ORIGIN),
            Some(&Attribute::ResponseOrigin(addr(local)))
        );
        assert_eq!(
            m.get(AttributeType::OTHER_ADDRESS),
            Some(&Attribute::OtherAddress(addr(other)))
        );
        m.verify_fingerprint().unwrap();
        assert_eq!(out[0].local, addr(local));
    }
}

#[test]
fn change_request_answers_from_the_other_socket() {
    let mut server = rfc5780_server();
    let cases = [
        (false, false, "192.0.2.1:3478"),
        (true, false, "192.0.2.2:3478"),
        (false, true, "192.0.2.1:3479"),
        (true, true, "192.0.2.2:3479"),
    ];
    for (change_ip, change_port, source) in cases {
        let req = request(
            &[Attribute::ChangeRequest {
                change_ip,
                change_port,
            }],
            false,
        );
        let out = handle(&mut server, PRIMARY, &req);
        let m = only(&out);
        assert_eq!(out[0].local, addr(source));
        assert_eq!(out[0].destination, addr(CLIENT));
        assert_eq!(
            m.get(AttributeType::RESPONSE_ORIGIN),
            Some(&Attribute::ResponseOrigin(addr(source)))
        );
        assert_eq!(m.xor_mapped_address(), Some(addr(CLIENT)));
    }
}

#[test]
fn change_request_without_alternate_is_420() {
    let mut server = Server::new(ServerConfig::default());
    let req = request(
        &[Attribute::ChangeRequest {
            change_ip: true,
            change_port: false,
        }],
        false,
    );
    let out = handle(&mut server, PRIMARY, &req);
    let m = only(&out);
    assert_eq!(m.class(), Class::ErrorResponse);
    assert_eq!(m.error_code().map(|e| e.code), Some(420));
    assert_eq!(
        m.get(AttributeType::UNKNOWN_ATTRIBUTES),
        Some(&Attribute::UnknownAttributes(vec![
            AttributeType::CHANGE_REQUEST
        ]))
    );
    // A CHANGE-REQUEST asking for no change is harmless and answered.
    let req = request(
        &[Attribute::ChangeRequest {
            change_ip: false,
            change_port: false,
        }],
        false,
    );
    assert_eq!(
        only(&handle(&mut server, PRIMARY, &req)).class(),
        Class::SuccessResponse
    );
}

#[test]
fn response_port_redirects_to_the_same_ip() {
    let mut server = rfc5780_server();
    let out = handle(
        &mut server,
        PRIMARY,
        &request(&[Attribute::ResponsePort(41000)], false),
    );
    let m = only(&out);
    assert_eq!(out[0].destination, addr("198.51.100.7:41000"));
    assert_eq!(m.xor_mapped_address(), Some(addr(CLIENT)));
    let out = handle(
        &mut server,
        PRIMARY,
        &request(&[Attribute::ResponsePort(0)], false),
    );
    assert_eq!(only(&out).error_code().map(|e| e.code), Some(400));
}

#[test]
fn padding_is_mirrored_and_bounded() {
    let mut server = rfc5780_server();
    let pad = vec![0xAB; 500];
    let req = request(&[Attribute::Padding(&pad)], true);
    let out = handle(&mut server, PRIMARY, &req);
    let m = only(&out);
    assert!(matches!(m.get(AttributeType::PADDING), Some(Attribute::Padding(p)) if p.len() == 500));
    assert!(out[0].payload.len() <= req.len() + 64);
    let huge = vec![0; 4000];
    let req = request(&[Attribute::Padding(&huge)], true);
    let out = handle(&mut server, PRIMARY, &req);
    assert!(out[0].payload.len() <= crate::binding::MAX_RESPONSE);
    only(&out).verify_fingerprint().unwrap();
}

#[test]
fn padding_with_response_port_is_400() {
    let mut server = rfc5780_server();
    let req = request(
        &[Attribute::Padding(&[0; 8]), Attribute::ResponsePort(5000)],
        false,
    );
    let out = handle(&mut server, PRIMARY, &req);
    assert_eq!(out[0].destination, addr(CLIENT));
    assert_eq!(only(&out).error_code().map(|e| e.code), Some(400));
}

#[test]
fn unknown_required_attributes_are_420_and_optional_ones_ignored() {
    let mut server = rfc5780_server();
    let req = request(
        &[
            Attribute::Unknown {
                typ: AttributeType(0x7001),
                value: b"x",
            },
            Attribute::Unknown {
                typ: AttributeType(0x7001),
                value: b"y",
            },
            Attribute::Unknown {
                typ: AttributeType(0xC0DE),
                value: b"z",
            },
        ],
        true,
    );
    let out = handle(&mut server, PRIMARY, &req);
    let m = only(&out);
    assert_eq!(m.error_code(), Some(&ErrorCode::UNKNOWN_ATTRIBUTE));
    assert_eq!(
        m.get(AttributeType::UNKNOWN_ATTRIBUTES),
        Some(&Attribute::UnknownAttributes(vec![AttributeType(0x7001)]))
    );
    m.verify_fingerprint().unwrap();
    let req = request(
        &[Attribute::Unknown {
            typ: AttributeType(0xC0DE),
            value: b"z",
        }],
        false,
    );
    assert_eq!(
        only(&handle(&mut server, PRIMARY, &req)).class(),
        Class::SuccessResponse
    );
}

#[test]
fn malformed_requests_get_400_and_noise_is_dropped() {
    let mut server = rfc5780_server();
    // A valid header whose XOR-MAPPED-ADDRESS has family 7.
    let req = request(
        &[Attribute::Unknown {
            typ: AttributeType::XOR_MAPPED_ADDRESS,
            value: &[0, 7, 0, 0, 1, 2, 3, 4],
        }],
        false,
    );
    let out = handle(&mut server, PRIMARY, &req);
    let m = only(&out);
    assert_eq!(m.error_code().map(|e| e.code), Some(400));
    assert_eq!(m.transaction_id(), TransactionId::new([9; 12]));

    let mut bad_cookie = request(&[], false);
    bad_cookie[4] ^= 0xFF;
    let mut bad_fingerprint = request(&[], true);
    let last = bad_fingerprint.len() - 1;
    bad_fingerprint[last] ^= 1;
    let indication = {
        let b = MessageBuilder::new(
            Class::Indication,
            Method::BINDING,
            TransactionId::new([1; 12]),
        );
        b.finish()
    };
    let response = {
        let b = MessageBuilder::new(
            Class::SuccessResponse,
            Method::BINDING,
            TransactionId::new([1; 12]),
        );
        b.finish()
    };
    for packet in [
        &b""[..],
        b"\x17\x03\x03\x00\x10hello",
        b"\x40\x00\x00\x00",
        &bad_cookie,
        &bad_fingerprint,
        &indication,
        &response,
    ] {
        assert!(
            handle(&mut server, PRIMARY, packet).is_empty(),
            "answered {packet:?}"
        );
    }
}

#[test]
fn other_methods_are_refused_with_400() {
    let mut server = rfc5780_server();
    let b = MessageBuilder::new(
        Class::Request,
        Method::ALLOCATE,
        TransactionId::new([2; 12]),
    );
    let out = handle(&mut server, PRIMARY, &b.finish());
    let m = only(&out);
    assert_eq!(
        (m.class(), m.method()),
        (Class::ErrorResponse, Method::ALLOCATE)
    );
    assert_eq!(m.error_code().map(|e| e.code), Some(400));
}

#[test]
fn rfc5780_address_validation() {
    use crate::server::Rfc5780Error;
    let ok = Rfc5780Addresses::new(addr(PRIMARY), addr(ALTERNATE));
    assert!(ok.is_ok());
    assert!(matches!(
        Rfc5780Addresses::new(addr(PRIMARY), addr("[::1]:3479")),
        Err(Rfc5780Error::MixedFamilies { .. })
    ));
    assert!(matches!(
        Rfc5780Addresses::new(addr(PRIMARY), addr("192.0.2.1:3479")),
        Err(Rfc5780Error::SameIp(_))
    ));
    assert!(matches!(
        Rfc5780Addresses::new(addr(PRIMARY), addr("192.0.2.2:3478")),
        Err(Rfc5780Error::SamePort(3478))
    ));
    assert!(matches!(
        Rfc5780Addresses::new(addr("0.0.0.0:3478"), addr(ALTERNATE)),
        Err(Rfc5780Error::NotSpecific(_))
    ));
}

/// A small xorshift PRNG for the robustness test below.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_requests_never_panic_and_never_amplify() {
    let mut server = rfc5780_server();
    let seeds = [
        request(&[], true),
        request(
            &[Attribute::ChangeRequest {
                change_ip: true,
                change_port: true,
            }],
            true,
        ),
        request(
            &[Attribute::ResponsePort(9), Attribute::Software("client")],
            false,
        ),
        request(&[Attribute::Padding(&[1; 40])], true),
    ];
    let mut state = 0x1234_5678_9ABC_DEF0u64;
    for round in 0..50_000 {
        let mut packet = seeds[round % seeds.len()].clone();
        for _ in 0..(next(&mut state) % 3) {
            let i = (next(&mut state) as usize) % packet.len();
            packet[i] ^= next(&mut state) as u8;
        }
        if next(&mut state).is_multiple_of(8) {
            packet.truncate((next(&mut state) as usize) % (packet.len() + 1));
        }
        let out = handle(&mut server, PRIMARY, &packet);
        assert!(out.len() <= 1);
        for t in &out {
            let padded = Message::decode(&t.payload)
                .map(|m| m.get(AttributeType::PADDING).is_some())
                .unwrap_or(false);
            // Without PADDING a response is at most the header + XOR-MAPPED-ADDRESS,
            // RESPONSE-ORIGIN, OTHER-ADDRESS (or ERROR-CODE + a few types) + FINGERPRINT.
            if !padded {
                assert!(
                    t.payload.len() <= packet.len().max(20) + 100,
                    "{} -> {}",
                    packet.len(),
                    t.payload.len()
                );
            } else {
                assert!(t.payload.len() <= packet.len() + 100);
            }
        }
    }
}
