//! Connecting by offer/answer blobs that the game carries itself
//! (`Endpoint::create_offer` / `Endpoint::apply_signal`), on loopback. A
//! channel stands in for the game's lobby: blobs go into it as opaque bytes and
//! come out at the other player.
//!
//! - no relay: the blobs carry host candidates and the session is direct;
//! - a relay (tsunagi-relay in-process) on both sides: relay paths first, then
//!   the direct path; and with the host candidates removed from the blobs (as
//!   if NATs blocked every direct path), the session runs over the relay;
//! - crossed offers resolve to one session;
//! - malformed, foreign, stale and forged blobs give the documented errors,
//!   never a panic, and a forged answer never connects to another identity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tsunagi::path::PathKind;
use tsunagi::relay::{Config, Credentials};
use tsunagi::session::{Endpoint, Event, Events, Identity, PeerId, SessionConfig, SessionError};
use tsunagi::signal::{CandidateKind, Signal};
use tsunagi_relay::udp::Running;

use relay_support::start_tsunagi_relay;

async fn endpoint_with(timeout: Duration) -> (Endpoint, Events) {
    let mut config = SessionConfig::loopback(Identity::generate().unwrap());
    config.connect_timeout = timeout;
    Endpoint::bind(config).await.unwrap()
}

async fn endpoint() -> (Endpoint, Events) {
    endpoint_with(Duration::from_secs(10)).await
}

/// The game's lobby: opaque bytes in, the same bytes out at the other side.
struct Lobby {
    to_bob: (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>),
    to_alice: (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>),
}

impl Lobby {
    fn new() -> Lobby {
        Lobby {
            to_bob: mpsc::channel(4),
            to_alice: mpsc::channel(4),
        }
    }
}

/// Alice offers, Bob answers, through the lobby; `edit` may rewrite each blob
/// in transit (as a NAT would hide candidates). Returns when Alice applied the answer.
async fn exchange(alice: &Endpoint, bob: &Endpoint, mut edit: impl FnMut(Vec<u8>) -> Vec<u8>) {
    let mut lobby = Lobby::new();
    let offer = alice.create_offer(bob.peer_id()).await.unwrap();
    assert!(offer.len() <= tsunagi::signal::MAX_BLOB_LEN);
    lobby.to_bob.0.send(edit(offer)).await.unwrap();
    let offer = lobby.to_bob.1.recv().await.unwrap();
    let answer = bob
        .apply_signal(&offer)
        .await
        .unwrap()
        .expect("an offer gets an answer");
    lobby.to_alice.0.send(edit(answer)).await.unwrap();
    let answer = lobby.to_alice.1.recv().await.unwrap();
    assert_eq!(alice.apply_signal(&answer).await.unwrap(), None);
}

/// The first Connected (or the failure) within 15 s.
async fn connected(events: &mut Events, who: &str) -> (PeerId, PathKind) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Connected { peer, path, .. })) => return (peer, path),
            Ok(Some(Event::ConnectFailed { error, .. })) => {
                panic!("{who}: connect failed: {error}")
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("{who}: endpoint closed"),
            Err(_) => panic!("{who}: not connected within 15 s"),
        }
    }
}

/// Waits until `events` shows a message from `from`.
async fn message(events: &mut Events, from: PeerId) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Message { peer, bytes, .. })) if peer == from => return bytes.to_vec(),
            Ok(Some(_)) => {}
            Ok(None) => panic!("endpoint closed"),
            Err(_) => panic!("no message within 10 s"),
        }
    }
}

async fn add_relay(endpoint: &Endpoint, server: SocketAddr) {
    endpoint
        .path_handle()
        .add_relay(Config::new(server, Credentials::new("u", "p")));
}

/// tsunagi-relay on loopback, its address, and Alice and Bob with it as their relay.
async fn pair_with_relay() -> (Running, SocketAddr, (Endpoint, Events), (Endpoint, Events)) {
    let relay = start_tsunagi_relay();
    let server = relay.local_addresses()[0];
    let alice = endpoint().await;
    let bob = endpoint().await;
    add_relay(&alice.0, server).await;
    add_relay(&bob.0, server).await;
    (relay, server, alice, bob)
}

fn is_direct(path: PathKind) -> bool {
    matches!(path, PathKind::DirectV4 | PathKind::DirectV6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_connect_two_endpoints_directly() {
    let (alice, mut alice_events) = endpoint().await;
    let (bob, mut bob_events) = endpoint().await;
    let start = Instant::now();
    exchange(&alice, &bob, |b| b).await;
    let (peer, path) = connected(&mut alice_events, "alice").await;
    assert_eq!(peer, bob.peer_id());
    assert!(is_direct(path), "{path}");
    let (peer, _) = connected(&mut bob_events, "bob").await;
    assert_eq!(peer, alice.peer_id());
    println!("direct by blobs: connected in {:?}", start.elapsed());
    alice.send(bob.peer_id(), 0, &b"hello"[..]).await.unwrap();
    assert_eq!(message(&mut bob_events, alice.peer_id()).await, b"hello");
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_with_a_relay_connect_and_end_on_the_direct_path() {
    let (relay, _, (alice, mut alice_events), (bob, mut bob_events)) = pair_with_relay().await;
    let start = Instant::now();
    let mut lobby_saw_relayed = false;
    let mut seen = Vec::new();
    exchange(&alice, &bob, |b| {
        seen.push(b.clone());
        b
    })
    .await;
    for blob in &seen {
        let signal = Signal::from_blob(blob).unwrap();
        lobby_saw_relayed |= signal
            .candidates
            .iter()
            .any(|c| c.kind == CandidateKind::Relayed);
    }
    assert!(lobby_saw_relayed, "the blobs carry relayed candidates");
    let (_, first) = connected(&mut alice_events, "alice").await;
    connected(&mut bob_events, "bob").await;
    println!(
        "relay configured: connected on {first} in {:?}",
        start.elapsed()
    );
    // The session ends on the direct path (at once, or by a PathChanged).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut path = first;
    while !is_direct(path) {
        match tokio::time::timeout_at(deadline, alice_events.recv()).await {
            Ok(Some(Event::PathChanged { path: p, .. })) => path = p,
            Ok(Some(_)) => {}
            Ok(None) => panic!("alice closed"),
            Err(_) => panic!("still on {path} after 10 s"),
        }
    }
    println!("upgraded to {path} after {:?}", start.elapsed());
    alice.send(bob.peer_id(), 0, &b"up"[..]).await.unwrap();
    assert_eq!(message(&mut bob_events, alice.peer_id()).await, b"up");
    // The relay path was there too, and works.
    let stats = alice
        .path_handle()
        .stats(tsunagi::path::virtual_addr(&tsunagi::path::PeerKey(
            *bob.peer_id().public_key(),
        )))
        .unwrap();
    assert!(
        stats
            .paths
            .iter()
            .any(|p| p.kind == PathKind::Relay && p.packets_received > 0),
        "{stats:?}"
    );
    alice.close().await;
    bob.close().await;
    drop(relay);
}

/// Keeps only relayed candidates, as if NATs blocked every direct path.
fn relayed_only(blob: Vec<u8>) -> Vec<u8> {
    let mut signal = Signal::from_blob(&blob).unwrap();
    signal
        .candidates
        .retain(|c| c.kind == CandidateKind::Relayed);
    assert!(!signal.candidates.is_empty(), "no relayed candidate");
    signal.to_blob().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_with_only_relayed_candidates_connect_over_the_relay() {
    let (relay, _, (alice, mut alice_events), (bob, mut bob_events)) = pair_with_relay().await;
    let start = Instant::now();
    exchange(&alice, &bob, relayed_only).await;
    let (_, path) = connected(&mut alice_events, "alice").await;
    assert_eq!(path, PathKind::Relay);
    connected(&mut bob_events, "bob").await;
    println!("relay only: connected in {:?}", start.elapsed());
    bob.send(alice.peer_id(), 0, &b"via relay"[..])
        .await
        .unwrap();
    assert_eq!(
        message(&mut alice_events, bob.peer_id()).await,
        b"via relay"
    );
    alice.close().await;
    bob.close().await;
    drop(relay);
}

/// Relay-first connects with the relay added right after binding (as the CLI
/// and the lab tests do) lose nothing on the way: every TURN request is
/// answered the first time (a retransmission costs 500 ms: the connect time
/// was ~10 ms or ~510 ms) and QUIC declares no packet lost (a first packet
/// the relay dropped for want of a permission would be). The relay may drop
/// the answering side's first path probe, sent before the offering side has
/// the answer and so a permission for it; probes are retried and never hold
/// QUIC back (it goes over every candidate path until one is confirmed).
/// A current-thread runtime, so that the first sends happen before the
/// reactor has ever seen the new sockets writable (tokio refused them as
/// WouldBlock, and they were dropped). The first retransmission timeout is
/// 5 s here, so only a lost datagram, never a slow machine, makes a
/// retransmission.
#[tokio::test]
async fn relay_first_connects_lose_nothing() {
    for round in 0..3 {
        let relay = start_tsunagi_relay();
        let server = relay.local_addresses()[0];
        let (alice, mut alice_events) = endpoint().await;
        let (bob, mut bob_events) = endpoint().await;
        for endpoint in [&alice, &bob] {
            let mut config = Config::new(server, Credentials::new("u", "p"));
            config.retransmit.initial_rto = Duration::from_secs(5);
            endpoint.path_handle().add_relay(config);
        }
        for (who, endpoint) in [("alice", &alice), ("bob", &bob)] {
            let paths = endpoint.path_handle();
            paths
                .wait_relay(server, Duration::from_secs(15))
                .await
                .unwrap();
            let status = paths.relay(server).unwrap();
            assert_eq!(
                status.retransmits, 0,
                "round {round}: {who}'s Allocate was lost and resent"
            );
        }
        exchange(&alice, &bob, relayed_only).await;
        let (_, path) = connected(&mut alice_events, "alice").await;
        assert_eq!(path, PathKind::Relay);
        connected(&mut bob_events, "bob").await;
        for (who, endpoint, peer) in [
            ("alice", &alice, bob.peer_id()),
            ("bob", &bob, alice.peer_id()),
        ] {
            let status = endpoint.path_handle().relay(server).unwrap();
            assert_eq!(
                status.retransmits, 0,
                "round {round}: a TURN request of {who} was resent"
            );
            let stats = endpoint.stats(peer).unwrap();
            assert_eq!(
                stats.packets_lost, 0,
                "round {round}: {who} lost QUIC packets"
            );
        }
        alice.close().await;
        bob.close().await;
        drop(relay);
    }
}

/// The answering side asks its relay for the permission (and channel) to the
/// offerer's relayed address before it makes the answer: the offerer sends its
/// first QUIC packet as soon as the answer arrives, and the relay drops data
/// for an allocation without a permission for its source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_comes_after_the_permission_for_the_offerer_is_requested() {
    let (relay, server, (alice, _alice_events), (bob, _bob_events)) = pair_with_relay().await;
    let offer = relayed_only(alice.create_offer(bob.peer_id()).await.unwrap());
    let alice_relayed: Vec<SocketAddr> = Signal::from_blob(&offer)
        .unwrap()
        .candidates
        .iter()
        .map(|c| c.addr)
        .collect();
    let answer = bob.apply_signal(&offer).await.unwrap();
    assert!(answer.is_some());
    let asked = bob.path_handle().relay(server).unwrap().peers;
    for relayed in &alice_relayed {
        assert!(
            asked.contains(relayed),
            "no permission asked for {relayed} before the answer: {asked:?}"
        );
    }
    alice.close().await;
    bob.close().await;
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_offers_make_one_session() {
    let (alice, mut alice_events) = endpoint().await;
    let (bob, mut bob_events) = endpoint().await;
    let to_bob = alice.create_offer(bob.peer_id()).await.unwrap();
    let to_alice = bob.create_offer(alice.peer_id()).await.unwrap();
    let at_bob = bob.apply_signal(&to_bob).await.unwrap();
    let at_alice = alice.apply_signal(&to_alice).await.unwrap();
    // Exactly one side answers: the offer of the smaller PeerId wins.
    match (at_bob, at_alice) {
        (Some(answer), None) => {
            assert!(alice.peer_id() < bob.peer_id());
            assert_eq!(alice.apply_signal(&answer).await.unwrap(), None);
        }
        (None, Some(answer)) => {
            assert!(bob.peer_id() < alice.peer_id());
            assert_eq!(bob.apply_signal(&answer).await.unwrap(), None);
        }
        other => panic!("expected one answer, got {other:?}"),
    }
    connected(&mut alice_events, "alice").await;
    connected(&mut bob_events, "bob").await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_blobs_give_clear_errors() {
    let (alice, _alice_events) = endpoint().await;
    let (bob, _bob_events) = endpoint().await;
    let offer = alice.create_offer(bob.peer_id()).await.unwrap();

    let refused = |r: Result<Option<Vec<u8>>, SessionError>| match r {
        Err(e) => e,
        Ok(v) => panic!("accepted: {v:?}"),
    };
    // Not blobs of this format.
    for bad in [
        Vec::new(),
        vec![9, 1, 2, 3],
        vec![1; 5000],
        b"hello, lobby".to_vec(),
    ] {
        let e = refused(bob.apply_signal(&bad).await);
        assert!(matches!(e, SessionError::BadSignal(_)), "{e}");
        println!("{e}");
    }
    let mut truncated = offer.clone();
    truncated.truncate(offer.len() / 2);
    let e = refused(bob.apply_signal(&truncated).await);
    assert!(matches!(e, SessionError::BadSignal(_)), "{e}");
    // Every single-byte corruption: an error or a valid signal, never a panic
    // (applied at Dave, whose attempts do not matter below).
    let (dave, _dave_events) = endpoint().await;
    for i in 0..offer.len() {
        let mut corrupt = offer.clone();
        corrupt[i] ^= 0x55;
        let _ = dave.apply_signal(&corrupt).await;
    }
    // Our own offer.
    let e = refused(alice.apply_signal(&offer).await);
    assert!(matches!(e, SessionError::OwnSignal), "{e}");
    assert!(matches!(
        alice.create_offer(alice.peer_id()).await,
        Err(SessionError::OwnSignal)
    ));

    // An answer without an offer: Carol answers an offer Alice never made to her.
    let (carol, _carol_events) = endpoint().await;
    let to_carol = dave.create_offer(carol.peer_id()).await.unwrap();
    let from_carol = carol.apply_signal(&to_carol).await.unwrap().unwrap();
    let e = refused(alice.apply_signal(&from_carol).await);
    assert!(
        matches!(e, SessionError::AnswerWithoutOffer(p) if p == carol.peer_id()),
        "{e}"
    );
    println!("{e}");

    // A stale answer: Alice made a newer offer to Bob since.
    let fresh = alice.create_offer(bob.peer_id()).await.unwrap();
    let old_answer = bob.apply_signal(&offer).await.unwrap().unwrap();
    let _ = alice.create_offer(bob.peer_id()).await.unwrap();
    let e = refused(alice.apply_signal(&old_answer).await);
    assert!(matches!(e, SessionError::UnknownAttempt { .. }), "{e}");
    println!("{e}");
    drop(fresh);

    for e in [&alice, &bob, &carol, &dave] {
        e.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_answer_never_connects_to_another_identity() {
    let (alice, mut alice_events) = endpoint_with(Duration::from_secs(4)).await;
    let (bob, _bob_events) = endpoint().await;
    let (mallory, mut mallory_events) = endpoint().await;
    // Alice offers to Bob; Mallory intercepts the offer, answers it, and
    // rewrites the answer's sender to Bob's id.
    let offer = alice.create_offer(bob.peer_id()).await.unwrap();
    let answer = mallory.apply_signal(&offer).await.unwrap().unwrap();
    let mut forged = Signal::from_blob(&answer).unwrap();
    forged.from = *bob.peer_id().public_key();
    let forged = forged.to_blob().unwrap();
    assert_eq!(alice.apply_signal(&forged).await.unwrap(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let error = loop {
        match tokio::time::timeout_at(deadline, alice_events.recv()).await {
            Ok(Some(Event::ConnectFailed { peer, error })) => {
                assert_eq!(peer, bob.peer_id());
                break error;
            }
            Ok(Some(Event::Connected { peer, .. })) => panic!("alice connected to {peer}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("alice closed"),
            Err(_) => panic!("no ConnectFailed within 15 s"),
        }
    };
    println!("forged answer: {error}");
    assert!(alice.peers().is_empty());
    while let Some(event) = mallory_events.try_recv() {
        assert!(
            !matches!(event, Event::Connected { .. }),
            "mallory got a session: {event:?}"
        );
    }
    for e in [&alice, &bob, &mallory] {
        e.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_attempts_are_bounded() {
    let (alice, _alice_events) = endpoint().await;
    let (bob, _bob_events) = endpoint().await;
    let offer = alice.create_offer(bob.peer_id()).await.unwrap();
    let answer = bob.apply_signal(&offer).await.unwrap().unwrap();
    // A lobby floods Alice with offers from 256 made-up identities (no candidates).
    let mut flood = Signal::from_blob(&offer).unwrap();
    flood.candidates.clear();
    for i in 0..256u32 {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        key[31] = 0xAA;
        flood.from = key;
        flood.attempt = u64::from(i);
        let reply = alice.apply_signal(&flood.to_blob().unwrap()).await.unwrap();
        assert!(reply.is_some());
    }
    // Her offer to Bob was the oldest attempt: it ended, so his answer finds none.
    let e = alice.apply_signal(&answer).await.unwrap_err();
    assert!(matches!(e, SessionError::AnswerWithoutOffer(_)), "{e}");
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_offer_gets_no_session_under_the_claimed_identity() {
    let relay = start_tsunagi_relay();
    let server = relay.local_addresses()[0];
    let (alice, mut alice_events) = endpoint().await;
    let (bob, _bob_events) = endpoint().await;
    let (mallory, mut mallory_events) = endpoint_with(Duration::from_secs(4)).await;
    add_relay(&alice, server).await;
    add_relay(&mallory, server).await;
    // Mallory offers to Alice but signs the offer with Bob's id; relayed
    // candidates only, so every packet of hers reaches Alice over the paths
    // Alice set up for "Bob".
    let offer = relayed_only(mallory.create_offer(alice.peer_id()).await.unwrap());
    let mut forged = Signal::from_blob(&offer).unwrap();
    forged.from = *bob.peer_id().public_key();
    let answer = alice
        .apply_signal(&forged.to_blob().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        mallory.apply_signal(&relayed_only(answer)).await.unwrap(),
        None
    );
    // Mallory's handshake reaches Alice, who closes it: Mallory's attempt ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, mallory_events.recv()).await {
            Ok(Some(Event::ConnectFailed { error, .. })) => {
                println!("mallory: connect failed: {error}");
                break;
            }
            Ok(Some(Event::Disconnected { reason, .. })) => {
                println!("mallory: disconnected: {reason:?}");
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("mallory closed"),
            Err(_) => panic!("mallory's forged session was neither refused nor closed in 15 s"),
        }
    }
    while let Some(event) = alice_events.try_recv() {
        assert!(
            !matches!(event, Event::Connected { .. }),
            "alice got a session: {event:?}"
        );
    }
    assert!(alice.peers().is_empty());
    for e in [&alice, &bob, &mallory] {
        e.close().await;
    }
    drop(relay);
}
