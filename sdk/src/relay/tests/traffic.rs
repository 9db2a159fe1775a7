//! Permissions, channels and data in both directions.

use std::time::Duration;

use super::*;
use crate::relay::UseError;
use crate::stun::{AddressFamily, Attribute, AttributeType, Class, Message, Method};

const PEER: &str = "203.0.113.5:40000";

/// `datagram` from the server is ours and comes out as `bytes` from the peer.
fn delivered_from_peer(net: &mut Net, datagram: &[u8], bytes: &[u8]) {
    assert!(net.client.handle_input(net.now, addr(SERVER), datagram));
    assert_eq!(
        net.client.poll_event(),
        Some(Event::Data {
            peer: addr(PEER),
            bytes: bytes.to_vec()
        })
    );
}

#[test]
fn nothing_can_be_sent_before_the_allocation() {
    let mut net = Net::new(config("secret"));
    assert_eq!(
        net.client.send_to(net.now, addr(PEER), b"x"),
        Err(UseError::NotAllocated)
    );
    assert_eq!(
        net.client.bind_channel(net.now, addr(PEER)),
        Err(UseError::NotAllocated)
    );
}

#[test]
fn a_peer_of_a_missing_family_is_refused() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    let v6 = addr("[2001:db8::9]:1");
    assert_eq!(
        net.client.send_to(net.now, v6, b"x"),
        Err(UseError::NoRelayedAddressForFamily {
            peer: v6,
            family: AddressFamily::V6
        })
    );
    let big = vec![0; 65_001];
    assert_eq!(
        net.client.send_to(net.now, addr(PEER), &big),
        Err(UseError::DataTooLong { len: 65_001 })
    );
}

#[test]
fn send_indications_create_the_permission_and_reach_the_peer() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    net.client.send_to(net.now, addr(PEER), b"hello").unwrap();
    net.pump();
    assert_eq!(
        net.take_events(),
        vec![Event::PermissionCreated {
            peer: addr(PEER).ip()
        }]
    );
    // CreatePermission went before the Send indication, so the server relayed it.
    assert_eq!(
        net.server.relayed,
        vec![(addr(PEER), b"hello".to_vec(), false)]
    );
    let send = Message::decode(net.wire.last().unwrap()).unwrap();
    assert_eq!(
        (send.class(), send.method()),
        (Class::Indication, Method::SEND)
    );
    assert!(!send.has_integrity());
    assert_eq!(
        send.get(AttributeType::XOR_PEER_ADDRESS),
        Some(&Attribute::XorPeerAddress(addr(PEER)))
    );

    // Data indications from the peer come out as Data events.
    let datagram = net.server.data_indication(addr(PEER), b"hi back");
    delivered_from_peer(&mut net, &datagram, b"hi back");
}

#[test]
fn permissions_are_refreshed_before_300_seconds() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    net.client
        .create_permission(net.now, addr(PEER).ip())
        .unwrap();
    net.pump();
    net.take_events();
    let count = |net: &Net| {
        net.server
            .requests
            .iter()
            .filter(|m| **m == Method::CREATE_PERMISSION)
            .count()
    };
    assert_eq!(count(&net), 1);
    net.advance(Duration::from_secs(239));
    assert_eq!(count(&net), 1);
    net.advance(Duration::from_secs(1));
    assert_eq!(count(&net), 2);
    net.advance(Duration::from_secs(1000));
    assert_eq!(count(&net), 6, "every 240 s");
    assert!(
        net.take_events()
            .iter()
            .all(|e| matches!(e, Event::Refreshed { .. })),
        "refreshing a permission is silent"
    );
}

#[test]
fn channel_binding_switches_to_channel_data_and_is_refreshed() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    let channel = net.client.bind_channel(net.now, addr(PEER)).unwrap();
    assert_eq!(channel, 0x4000);
    assert_eq!(net.client.channel(addr(PEER)), None, "not confirmed yet");
    net.pump();
    assert_eq!(
        net.take_events(),
        vec![Event::ChannelBound {
            peer: addr(PEER),
            channel
        }]
    );
    assert_eq!(net.client.channel(addr(PEER)), Some(0x4000));
    assert_eq!(net.client.bind_channel(net.now, addr(PEER)), Ok(0x4000));

    net.client.send_to(net.now, addr(PEER), b"abcde").unwrap();
    net.pump();
    let framed = net.wire.last().unwrap();
    assert_eq!(
        framed,
        &[0x40, 0x00, 0x00, 0x05, b'a', b'b', b'c', b'd', b'e']
    );
    assert_eq!(
        net.server.relayed,
        vec![(addr(PEER), b"abcde".to_vec(), true)]
    );

    // ChannelData from the server, padded as over TCP, comes out as data.
    let datagram = net.server.channel_data(addr(PEER), b"xyz").unwrap();
    assert_eq!(datagram.len(), 8);
    delivered_from_peer(&mut net, &datagram, b"xyz");
    // An unbound channel is not ours (it may be QUIC on a shared socket).
    assert!(
        !net.client
            .handle_input(net.now, addr(SERVER), &[0x40, 0x01, 0, 1, 7])
    );

    let binds = |net: &Net| {
        net.server
            .requests
            .iter()
            .filter(|m| **m == Method::CHANNEL_BIND)
            .count()
    };
    net.advance(Duration::from_secs(479));
    assert_eq!(binds(&net), 1);
    net.advance(Duration::from_secs(1));
    assert_eq!(binds(&net), 2, "rebound before the 10-minute expiry");
    let rebind = net.wire.iter().rev().find_map(|w| {
        let m = Message::decode(w).ok()?;
        (m.method() == Method::CHANNEL_BIND).then(|| m.get(AttributeType::CHANNEL_NUMBER).cloned())
    });
    assert_eq!(rebind, Some(Some(Attribute::ChannelNumber(0x4000))));
}

#[test]
fn channel_data_before_the_bind_answer_is_delivered() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    let channel = net.client.bind_channel(net.now, addr(PEER)).unwrap();
    // The server binds the channel, but its answer is lost.
    let request = net.client.poll_transmit().unwrap();
    assert_eq!(net.server.handle(addr(CLIENT), &request.bytes).len(), 1);
    assert_eq!(net.client.channel(addr(PEER)), None, "not confirmed yet");
    // The peer's data comes on the channel at once.
    let datagram = net.server.channel_data(addr(PEER), b"initial").unwrap();
    delivered_from_peer(&mut net, &datagram, b"initial");
    // Our sends stay Send indications until the binding is confirmed.
    net.client.send_to(net.now, addr(PEER), b"reply").unwrap();
    net.pump();
    assert_eq!(
        net.server.relayed,
        vec![(addr(PEER), b"reply".to_vec(), false)]
    );
    assert_eq!(
        net.take_events(),
        vec![Event::PermissionCreated {
            peer: addr(PEER).ip()
        }]
    );
    // The retransmitted ChannelBind confirms it.
    net.advance(Duration::from_millis(500));
    assert_eq!(
        net.take_events(),
        vec![Event::ChannelBound {
            peer: addr(PEER),
            channel
        }]
    );
    assert_eq!(net.client.channel(addr(PEER)), Some(channel));
    assert_eq!(net.client.retransmits(), 1);
}

#[test]
fn failed_channel_bind_falls_back_to_send_indications() {
    let mut net = Net::new(config("secret"));
    net.allocate();
    net.server.fail_with = Some((403, "Forbidden"));
    net.client.bind_channel(net.now, addr(PEER)).unwrap();
    net.pump();
    assert!(matches!(
        net.take_events().as_slice(),
        [Event::ChannelBindFailed {
            reason: crate::relay::Error::Forbidden { .. },
            ..
        }]
    ));
    assert_eq!(net.client.channel(addr(PEER)), None);
    net.server.fail_with = None;
    net.client
        .send_to(net.now, addr(PEER), b"still works")
        .unwrap();
    net.pump();
    assert_eq!(
        net.server.relayed,
        vec![(addr(PEER), b"still works".to_vec(), false)]
    );
    assert_eq!(
        net.client.bind_channel(net.now, addr(PEER)),
        Ok(0x4001),
        "numbers are not reused"
    );
}
