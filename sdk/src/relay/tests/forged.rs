//! Forged, misdirected and malformed answers are ignored without harm: the
//! client keeps waiting for the real answer, which still works.

use super::*;
use crate::stun::{
    Attribute, Class, ErrorCode, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};

/// Runs the 401 round and returns the authenticated Allocate, not yet delivered.
fn authenticated_allocate(net: &mut Net) -> Vec<u8> {
    let first = net.client.poll_transmit().unwrap();
    for answer in net.server.handle(addr(CLIENT), &first.bytes) {
        assert!(net.client.handle_input(net.now, addr(SERVER), &answer));
    }
    net.client.poll_transmit().unwrap().bytes
}

fn success(tid: TransactionId, method: Method, key: Option<&IntegrityKey>) -> Vec<u8> {
    let mut b = MessageBuilder::new(Class::SuccessResponse, method, tid);
    b.add(&Attribute::XorRelayedAddress(addr("192.0.2.66:1000")))
        .unwrap();
    b.add(&Attribute::Lifetime(600)).unwrap();
    if let Some(key) = key {
        b.add_integrity(key);
    }
    b.finish()
}

/// Delivers `request` to the server and its answer to the client.
fn finish(net: &mut Net, request: &[u8]) {
    for answer in net.server.handle(addr(CLIENT), request) {
        assert!(net.client.handle_input(net.now, addr(SERVER), &answer));
    }
    net.pump();
    match net.take_events().as_slice() {
        [Event::Allocated { relayed, .. }] => assert_eq!(relayed, &vec![net.server.relayed_v4]),
        other => panic!("the real answer must still work: {other:?}"),
    }
}

#[test]
fn forged_responses_are_ignored() {
    let mut net = Net::new(config("secret"));
    let request = authenticated_allocate(&mut net);
    let tid = Message::decode(&request).unwrap().transaction_id();
    let key = net.server.key();
    let wrong_key = IntegrityKey::long_term_md5("alice", "tsunagi", "guess");

    let mut tampered = success(tid, Method::ALLOCATE, Some(&key));
    tampered[30] ^= 1;
    let mut no_error_code = success(tid, Method::ALLOCATE, Some(&key));
    no_error_code[1] |= 0x10; // success → error class, without ERROR-CODE
    let unsigned_redirect = {
        let mut b = MessageBuilder::new(Class::ErrorResponse, Method::ALLOCATE, tid);
        b.add(&Attribute::ErrorCode(ErrorCode::new(300, "Try Alternate")))
            .unwrap();
        b.add(&Attribute::AlternateServer(addr("198.51.100.66:3478")))
            .unwrap();
        b.finish()
    };
    let forged: Vec<(&str, Vec<u8>)> = vec![
        (
            "wrong transaction id",
            success(TransactionId::new([1; 12]), Method::ALLOCATE, Some(&key)),
        ),
        (
            "wrong key",
            success(tid, Method::ALLOCATE, Some(&wrong_key)),
        ),
        ("altered after signing", tampered),
        ("unsigned success", success(tid, Method::ALLOCATE, None)),
        ("wrong method", success(tid, Method::REFRESH, Some(&key))),
        ("error class without ERROR-CODE", no_error_code),
        ("unsigned redirect", unsigned_redirect),
        ("truncated", request[..request.len() - 4].to_vec()),
        ("empty", Vec::new()),
        ("not STUN", vec![0xC0; 40]),
        ("ChannelData on no channel", vec![0x40, 0x00, 0x00, 0x00]),
    ];
    for (what, datagram) in &forged {
        assert!(
            !net.client.handle_input(net.now, addr(SERVER), datagram),
            "{what}"
        );
        assert_eq!(net.client.poll_event(), None, "{what}");
        assert!(
            !net.client.is_allocated() && !net.client.is_closed(),
            "{what}"
        );
    }
    // The genuine answer from another address is not the server's either.
    let genuine = net.server.handle(addr(CLIENT), &request).pop().unwrap();
    assert!(
        !net.client
            .handle_input(net.now, addr("192.0.2.1:3479"), &genuine)
    );
    net.server.allocated = false;
    finish(&mut net, &request);
}

#[test]
fn data_indications_without_peer_or_data_are_ignored() {
    let mut net = Net::new(config("secret"));
    let early = net.server.data_indication(addr("203.0.113.5:1"), b"x");
    assert!(
        !net.client.handle_input(net.now, addr(SERVER), &early),
        "no allocation yet"
    );
    net.allocate();
    let mut b = MessageBuilder::new(Class::Indication, Method::DATA, TransactionId::new([2; 12]));
    b.add(&Attribute::Data(b"no peer")).unwrap();
    assert!(!net.client.handle_input(net.now, addr(SERVER), &b.finish()));
    // A request or a Send indication from the server is not something a client takes.
    let mut b = MessageBuilder::new(Class::Indication, Method::SEND, TransactionId::new([2; 12]));
    b.add(&Attribute::XorPeerAddress(addr("203.0.113.5:1")))
        .unwrap();
    b.add(&Attribute::Data(b"x")).unwrap();
    assert!(!net.client.handle_input(net.now, addr(SERVER), &b.finish()));
    assert_eq!(net.client.poll_event(), None);
}
