//! Loopback tests of the session layer: identity checks, channels, datagrams, IPv6
//! preference and the poll API. Two real endpoints on 127.0.0.1 / ::1.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use tsunagi::session::{
    DisconnectReason, Endpoint, Event, Events, Identity, PathKind, PeerId, PollEndpoint,
    SessionConfig, SessionError,
};

const WAIT: Duration = Duration::from_secs(10);

async fn endpoint() -> (Endpoint, Events) {
    Endpoint::bind(SessionConfig::loopback(Identity::generate().unwrap()))
        .await
        .unwrap()
}

/// The next event that `pick` accepts, skipping others.
async fn next<T>(events: &mut Events, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("endpoint closed");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_and_both_sides_learn_the_peer() {
    let (a, mut a_events) = endpoint().await;
    let (b, mut b_events) = endpoint().await;
    let info = a.connect(b.peer_id(), &b.local_addrs()).await.unwrap();
    if info.path != PathKind::DirectV6 {
        // IPv6 was not confirmed within the head start (a loaded machine): the path layer
        // must move to IPv6 as soon as it is, and say so.
        let path = next(&mut a_events, |e| match e {
            Event::PathChanged { path, .. } => Some(path),
            _ => None,
        })
        .await;
        assert_eq!(
            path,
            PathKind::DirectV6,
            "both families work: IPv6 must win"
        );
    }
    assert_eq!(a.stats(b.peer_id()).unwrap().path, Some(PathKind::DirectV6));
    let (peer, outgoing) = next(&mut b_events, |e| match e {
        Event::Connected { peer, outgoing, .. } => Some((peer, outgoing)),
        _ => None,
    })
    .await;
    assert_eq!(
        peer,
        a.peer_id(),
        "the server learns the client's key from the handshake"
    );
    assert!(!outgoing);
    assert!(
        matches!(a_events.try_recv(), Some(Event::Connected { peer, .. }) if peer == b.peer_id())
            || info.path != PathKind::DirectV6
    );

    a.disconnect(b.peer_id(), "bye");
    let reason = next(&mut b_events, |e| match e {
        Event::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        DisconnectReason::ClosedByPeer {
            reason: "bye".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_rejected_with_a_clear_error() {
    let (a, _a_events) = endpoint().await;
    let (b, _b_events) = endpoint().await;
    let someone_else = Identity::generate().unwrap().peer_id();
    let error = a.connect(someone_else, &b.local_addrs()).await.unwrap_err();
    match &error {
        SessionError::WrongPeer {
            presented,
            expected,
        } => {
            assert_eq!(*presented, b.peer_id());
            assert_eq!(*expected, someone_else);
        }
        other => panic!("expected WrongPeer, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "peer presented key {}, expected {}",
            b.peer_id(),
            someone_else
        )),
        "{text}"
    );
    assert!(
        text.contains("the address belongs to another player"),
        "{text}"
    );
    // The same address with the right key still works afterwards.
    a.connect(b.peer_id(), &b.local_addrs()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_ordered_and_independent() {
    let (a, _a_events) = endpoint().await;
    let (b, mut b_events) = endpoint().await;
    a.connect(b.peer_id(), &b.local_addrs()).await.unwrap();
    const N: u32 = 500;
    // A big message on channel 0 first, then interleaved small ones on 0, 1 and 2.
    a.send(b.peer_id(), 0, vec![7u8; 200_000]).await.unwrap();
    for i in 0..N {
        for channel in 0..3u16 {
            let mut message = channel.to_be_bytes().to_vec();
            message.extend_from_slice(&i.to_be_bytes());
            a.send(b.peer_id(), channel, message).await.unwrap();
        }
    }
    let mut seen: HashMap<u16, Vec<u32>> = HashMap::new();
    let mut big = 0;
    let mut arrival: Vec<u16> = Vec::new();
    while seen.values().map(Vec::len).sum::<usize>() < 3 * N as usize {
        let (channel, bytes) = next(&mut b_events, |e| match e {
            Event::Message { channel, bytes, .. } => Some((channel, bytes)),
            _ => None,
        })
        .await;
        if bytes.len() == 200_000 {
            big += 1;
            continue;
        }
        assert_eq!(
            u16::from_be_bytes([bytes[0], bytes[1]]),
            channel,
            "message on the wrong channel"
        );
        seen.entry(channel)
            .or_default()
            .push(u32::from_be_bytes(bytes[2..6].try_into().unwrap()));
        arrival.push(channel);
    }
    for channel in 0..3u16 {
        assert_eq!(
            seen[&channel],
            (0..N).collect::<Vec<_>>(),
            "channel {channel} out of order or lossy"
        );
    }
    assert_eq!(big, 1);
    // Independence: channels 1 and 2 did not wait for all of channel 0 (which had a
    // 200 kB message in front) — their messages are interleaved with channel 0's.
    let first_not_zero = arrival.iter().position(|&c| c != 0).unwrap();
    assert!(
        first_not_zero < N as usize,
        "channels 1 and 2 waited behind channel 0"
    );

    let error = a.try_send(b.peer_id(), 8, &b"x"[..]).unwrap_err();
    assert!(
        matches!(
            error,
            SessionError::NoSuchChannel {
                channel: 8,
                channels: 8
            }
        ),
        "{error}"
    );
    let error = a
        .try_send(b.peer_id(), 0, vec![0u8; (1 << 20) + 1])
        .unwrap_err();
    assert!(
        matches!(
            error,
            SessionError::MessageTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_size_limit_is_enforced_with_a_clear_error() {
    let (a, _a_events) = endpoint().await;
    let (b, mut b_events) = endpoint().await;
    a.connect(b.peer_id(), &b.local_addrs()).await.unwrap();
    let limit = a.datagram_limit(b.peer_id()).unwrap();
    assert!(limit >= 1000, "limit {limit}");
    assert_eq!(a.stats(b.peer_id()).unwrap().datagram_limit, limit);

    let error = a
        .send_datagram(b.peer_id(), vec![1u8; limit + 1])
        .unwrap_err();
    match error {
        SessionError::DatagramTooLarge { size, limit: l } => {
            assert_eq!((size, l), (limit + 1, limit))
        }
        other => panic!("expected DatagramTooLarge, got {other:?}"),
    }
    assert!(
        error_text(a.send_datagram(b.peer_id(), vec![1u8; limit + 1]))
            .contains("exceeds the current limit")
    );

    // At the limit it goes through (retry: datagrams are unreliable).
    let bytes = tokio::time::timeout(WAIT, async {
        loop {
            a.send_datagram(b.peer_id(), vec![2u8; limit]).unwrap();
            let got = tokio::time::timeout(Duration::from_millis(200), async {
                loop {
                    if let Some(Event::Datagram { bytes, .. }) = b_events.recv().await {
                        return bytes;
                    }
                }
            })
            .await;
            if let Ok(bytes) = got {
                return bytes;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(bytes.len(), limit);
}

fn error_text(result: Result<(), SessionError>) -> String {
    result.err().map(|e| e.to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_takes_over_when_ipv6_is_silent() {
    let (a, _a_events) = endpoint().await;
    let (b, _b_events) = endpoint().await;
    // An IPv6 address where nothing answers (a bound socket that never reads).
    let silent = UdpSocket::bind("[::1]:0").unwrap();
    let v4: Vec<SocketAddr> = b
        .local_addrs()
        .into_iter()
        .filter(SocketAddr::is_ipv4)
        .collect();
    let mut addrs = vec![silent.local_addr().unwrap()];
    addrs.extend(v4);
    let info = a.connect(b.peer_id(), &addrs).await.unwrap();
    assert_eq!(info.path, PathKind::DirectV4);
    assert!(
        info.took < Duration::from_secs(2),
        "IPv4 fallback took {:?}",
        info.took
    );
}

#[test]
fn poll_api_round_trip() {
    let mut a = PollEndpoint::new(SessionConfig::loopback(Identity::generate().unwrap())).unwrap();
    let mut b = PollEndpoint::new(SessionConfig::loopback(Identity::generate().unwrap())).unwrap();
    let (a_id, b_id) = (a.peer_id(), b.peer_id());
    a.connect(b_id, b.local_addrs());

    let mut a_got: Vec<Event> = Vec::new();
    let mut b_got: Vec<Event> = Vec::new();
    let mut sent = false;
    let start = std::time::Instant::now();
    // A game loop at ~500 Hz: pump, drain, react.
    while start.elapsed() < WAIT {
        a.pump();
        b.pump();
        while let Some(event) = a.poll_event() {
            if let Event::Connected { peer, .. } = &event {
                assert_eq!(*peer, b_id);
                a.send_message(b_id, 3, b"reliable hello").unwrap();
                sent = true;
            }
            a_got.push(event);
        }
        if sent {
            // Unreliable: keep sending until one arrives.
            a.send_datagram(b_id, b"unreliable hello").unwrap();
        }
        while let Some(event) = b.poll_event() {
            if let Event::Message {
                peer,
                channel,
                bytes,
            } = &event
            {
                assert_eq!(
                    (*peer, *channel, &bytes[..]),
                    (a_id, 3, &b"reliable hello"[..])
                );
                b.send_message(a_id, 1, b"reply").unwrap();
            }
            b_got.push(event);
        }
        let replied = a_got
            .iter()
            .any(|e| matches!(e, Event::Message { channel: 1, .. }));
        let datagram = b_got.iter().any(
            |e| matches!(e, Event::Datagram { bytes, .. } if &bytes[..] == b"unreliable hello"),
        );
        if replied && datagram {
            let stats = a.stats(b_id).unwrap();
            assert_eq!(stats.path, Some(PathKind::DirectV6));
            assert!(stats.bytes_sent > 0 && stats.bytes_received > 0);
            assert!(stats.rtt < Duration::from_secs(1));
            assert!(
                b_got
                    .iter()
                    .any(|e| matches!(e, Event::Connected { peer, .. } if *peer == a_id))
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no round trip within {WAIT:?}: a saw {a_got:?}, b saw {b_got:?}");
}

#[test]
fn poll_api_reports_connect_failures_as_events() {
    let mut a = PollEndpoint::new(SessionConfig::loopback(Identity::generate().unwrap())).unwrap();
    let b = PollEndpoint::new(SessionConfig::loopback(Identity::generate().unwrap())).unwrap();
    let stranger: PeerId = Identity::generate().unwrap().peer_id();
    a.connect(stranger, b.local_addrs());
    let start = std::time::Instant::now();
    while start.elapsed() < WAIT {
        a.pump();
        if let Some(Event::ConnectFailed { peer, error }) = a.poll_event() {
            assert_eq!(peer, stranger);
            assert!(error.contains("belongs to another player"), "{error}");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no ConnectFailed event");
}
